/* fl-relay-private.h: what the relay's route files share. */
#pragma once

#include <libsoup/soup.h>

#include "fieldline-core.h"
#include "fl-connection-reaper.h"
#include "fl-http.h"
#include "fl-hub.h"
#include "fl-ingest.h"
#include "fl-mailer.h"
#include "fl-trusted-issuer.h"
#include "fl-metrics.h"
#include "fl-registry.h"
#include "fl-relay.h"
#include "fl-user-pool.h"

G_BEGIN_DECLS

typedef struct _FlDevicePoller FlDevicePoller;

struct _FlRelay
{
  GObject      parent_instance;

  SoupServer  *server;
  FlConnectionReaper *reaper;   /* closes what libsoup 3.2 leaves open */
  FlStore     *store;
  FlUserPool  *pool;
  FlMailer    *mailer;           /* confirmation and reset codes */
  FlTrustedIssuer *trusted;      /* a real Cognito pool's tokens, or NULL */
  FlRegistry  *registry;
  FlHub       *hub;
  FlIngest    *ingest;
  FlMetrics   *metrics;
  GPtrArray   *device_sessions;  /* FlDeviceSession, owned */
  FlDevicePoller *device_poller; /* the device sockets' I/O */

  char        *url;
  char        *data_dir;
  gsize        max_body_size;
  gsize        max_event_size;
  guint        tick_source;
  guint        ticks;
  guint        open_requests;    /* paused, reply not yet written */
  gint64       started_at;
  gboolean     shutting_down;
  GTask       *shutdown_task;
};

/* A request whose reply comes later (after a store query or commit).
 * The message is paused until fl_request_reply*() unpauses it. */
typedef struct
{
  FlRelay           *relay;
  SoupServerMessage *msg;
  GHashTable        *query;
  char              *device_id;
} FlRequest;

FlRequest   *_fl_request_new          (FlRelay           *relay,
                                       SoupServerMessage *msg,
                                       GHashTable        *query);
void         _fl_request_reply        (FlRequest *request,
                                       guint      status,
                                       GString   *json);
void         _fl_request_fail         (FlRequest *request,
                                       GError    *error);
void         _fl_request_finish       (FlRequest *request);

/* The operator behind the request's bearer token, if their role is at
 * least min_role. */
FlPrincipal *_fl_relay_authorize      (FlRelay           *self,
                                       SoupServerMessage *msg,
                                       GHashTable        *query,
                                       FlRole             min_role,
                                       GError           **error);

/* The request's body as a JSON object, or FL_CODEC_ERROR_MALFORMED. */
JsonObject  *_fl_read_json_object     (SoupServerMessage  *msg,
                                       GError            **error);

/* /users (fl-relay-users.c): name is NULL for /users itself. */
void         _fl_relay_handle_users   (FlRelay           *self,
                                       SoupServerMessage *msg,
                                       const char        *name,
                                       FlPrincipal       *principal);

/* Route handlers (fl-relay-routes.c). */
void         _fl_relay_route          (FlRelay           *self,
                                       SoupServerMessage *msg,
                                       const char        *path,
                                       GHashTable        *query);

/* The device WebSocket (fl-device-session.c). */
FlDevicePoller *_fl_device_poller_new     (FlRelay        *relay);
void         _fl_device_poller_free       (FlDevicePoller *poller);
/* At most session_max_in_flight messages of one device, and
 * max_in_flight_bytes of bodies from all, wait for the store. */
void         _fl_device_poller_set_limits (FlDevicePoller *poller,
                                           guint           session_max_in_flight,
                                           gsize           max_in_flight_bytes);
void         _fl_device_poller_get_in_flight (FlDevicePoller *poller,
                                              guint          *messages,
                                              gsize          *bytes,
                                              guint          *peak_messages,
                                              gsize          *peak_bytes);
/* Answers the handshake of an authenticated device. */
void         _fl_device_session_accept    (FlRelay           *self,
                                           SoupServerMessage *msg,
                                           FlDevice          *device);
/* Closes the session and drops it; the GDestroyNotify of
 * relay->device_sessions. */
void         _fl_device_session_close (gpointer                 session);
FlDevice    *_fl_device_session_get_device (gpointer            session);

G_END_DECLS
