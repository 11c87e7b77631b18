/* fl-client.h: an asynchronous client of the Fieldline REST + WebSocket
 * API (PLATFORM.md), for the relay and the cloud deployment alike.
 *
 * Nothing here blocks: every call is an _async/_finish pair that runs on
 * the thread-default main context of the caller and takes a GCancellable.
 * Failures are GErrors in FL_CLIENT_ERROR (cancellation stays
 * G_IO_ERROR_CANCELLED, as everywhere in GIO).
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

/* ---- errors ------------------------------------------------------------ */

#define FL_CLIENT_ERROR (fl_client_error_quark ())

typedef enum {
  FL_CLIENT_ERROR_NETWORK,           /* no connection, connection lost, TLS */
  FL_CLIENT_ERROR_PROTOCOL,          /* a reply the client does not understand */
  FL_CLIENT_ERROR_BAD_REQUEST,       /* 400 */
  FL_CLIENT_ERROR_UNAUTHORIZED,      /* 401 */
  FL_CLIENT_ERROR_FORBIDDEN,         /* 403 */
  FL_CLIENT_ERROR_NOT_FOUND,         /* 404 */
  FL_CLIENT_ERROR_CONFLICT,          /* 409 */
  FL_CLIENT_ERROR_TOO_LARGE,         /* 413 */
  FL_CLIENT_ERROR_INVALID,           /* 422 */
  FL_CLIENT_ERROR_TOO_MANY_REQUESTS, /* 429 */
  FL_CLIENT_ERROR_SERVER,            /* 5xx */
  FL_CLIENT_ERROR_HTTP,              /* any other status that is not 2xx */
} FlClientError;

GQuark      fl_client_error_quark            (void);

/* The API's lower_snake code from {"error": {"code"}} ("not_found", ...),
 * or NULL when the server sent none (and for network errors).  The
 * GError's message is the API's message when there was one. */
const char *fl_client_error_get_api_code     (const GError *error);
/* The HTTP status, or 0 when no response arrived. */
guint       fl_client_error_get_http_status  (const GError *error);
/* Seconds from a Retry-After header (429, 503), or 0. */
guint       fl_client_error_get_retry_after  (const GError *error);

/* ---- plain results ----------------------------------------------------- */

/* GET /config */
typedef struct {
  char *user_pool_id;
  char *client_id;
  char *region;
  char *issuer;
  char *api_url;
  char *websocket_url;
} FlClientConfig;

void fl_client_config_free (FlClientConfig *config);

/* One event of a batch that the server refused. */
typedef struct {
  guint  index;   /* position in the batch */
  char  *code;    /* lower_snake, or NULL */
  char  *message;
} FlIngestRejection;

/* The answer to a batch of events, over HTTP or the device channel. */
typedef struct {
  guint   accepted;
  guint   duplicates;
  GArray *rejected;   /* of FlIngestRejection, in index order */
} FlIngestResult;

void fl_ingest_result_free (FlIngestResult *result);

/* GET /devices filters; NULL or 0 leaves one out. */
typedef struct {
  const char *status;  /* "online", "offline", ... */
  const char *tag;
  const char *q;
  const char *cursor;  /* from the previous page */
  guint       limit;
} FlDeviceListQuery;

/* GET /events filters; NULL or 0 leaves one out. */
typedef struct {
  const char *device_id;
  const char *event_type;
  gint64      from;    /* ms, inclusive */
  gint64      to;      /* ms, exclusive */
  const char *cursor;
  guint       limit;
} FlEventListQuery;

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlClientConfig, fl_client_config_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlIngestResult, fl_ingest_result_free)

/* ---- the client -------------------------------------------------------- */

typedef struct _FlDeviceChannel FlDeviceChannel;

#define FL_TYPE_CLIENT (fl_client_get_type ())
G_DECLARE_FINAL_TYPE (FlClient, fl_client, FL, CLIENT, GObject)

/* base_url: "http://127.0.0.1:8080", or an API's root with a path. */
FlClient   *fl_client_new                  (const char *base_url);

const char *fl_client_get_base_url         (FlClient *self);
/* The root of the WebSocket API, which device channels (/device) hang
 * from: base-url with ws(s):// by default.  Not GET /config's
 * websocketUrl, which is the /events socket itself. */
const char *fl_client_get_websocket_url    (FlClient *self);
void        fl_client_set_websocket_url    (FlClient   *self,
                                            const char *websocket_url);

/* Tokens from login or refresh; NULL when signed out.  Operators' calls
 * send the ID token as Bearer.  "tokens-changed" is emitted on change,
 * so a console can keep the refresh token in its keyring. */
const char *fl_client_get_id_token         (FlClient *self);
const char *fl_client_get_access_token     (FlClient *self);
const char *fl_client_get_refresh_token    (FlClient *self);
/* Real time in seconds when the ID token expires, 0 if unknown. */
gint64      fl_client_get_token_expiry     (FlClient *self);
gboolean    fl_client_is_signed_in         (FlClient *self);
/* Restores tokens kept from an earlier session (any may be NULL). */
void        fl_client_set_tokens           (FlClient   *self,
                                            const char *id_token,
                                            const char *access_token,
                                            const char *refresh_token,
                                            gint64      expiry);
void        fl_client_sign_out             (FlClient *self);

/* GET /config */
void            fl_client_get_config_async          (FlClient            *self,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
FlClientConfig *fl_client_get_config_finish         (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* POST /auth/login; keeps the tokens. */
void            fl_client_login_async               (FlClient            *self,
                                                     const char          *username,
                                                     const char          *password,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean        fl_client_login_finish              (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* POST /auth/refresh with the kept refresh token.  Calls with a Bearer
 * token do this by themselves once when they get a 401. */
void            fl_client_refresh_async             (FlClient            *self,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean        fl_client_refresh_finish            (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* POST /devices with a registration body ({deviceId?, name, type, model,
 * manufacturer, capabilities, tags, heartbeatTimeoutSec}).  Returns the
 * device and, in device_secret, the secret the relay shows only once. */
void            fl_client_register_device_async     (FlClient            *self,
                                                     JsonObject          *registration,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
FlDevice       *fl_client_register_device_finish    (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     char         **device_secret,
                                                     GError       **error);

/* GET /devices/{deviceId} */
void            fl_client_get_device_async          (FlClient            *self,
                                                     const char          *device_id,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
FlDevice       *fl_client_get_device_finish         (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* POST /devices/{deviceId}/secret: a new secret; the old one stops
 * working.  Returns the new secret. */
void            fl_client_rotate_device_secret_async  (FlClient            *self,
                                                       const char          *device_id,
                                                       GCancellable        *cancellable,
                                                       GAsyncReadyCallback  callback,
                                                       gpointer             user_data);
char           *fl_client_rotate_device_secret_finish (FlClient      *self,
                                                       GAsyncResult  *result,
                                                       GError       **error);

/* GET /devices.  Returns FlDevices; *next_cursor is NULL on the last
 * page. */
void            fl_client_list_devices_async        (FlClient                *self,
                                                     const FlDeviceListQuery *query,
                                                     GCancellable            *cancellable,
                                                     GAsyncReadyCallback      callback,
                                                     gpointer                 user_data);
GPtrArray      *fl_client_list_devices_finish       (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     char         **next_cursor,
                                                     GError       **error);

/* GET /events.  Returns FlEvents (with seq and receivedAt); *next_cursor
 * is NULL on the last page. */
void            fl_client_list_events_async         (FlClient               *self,
                                                     const FlEventListQuery *query,
                                                     GCancellable           *cancellable,
                                                     GAsyncReadyCallback     callback,
                                                     gpointer                user_data);
GPtrArray      *fl_client_list_events_finish        (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     char         **next_cursor,
                                                     GError       **error);

/* POST /ingest as a device (HTTP Basic with its id and secret), with
 * events (FlEvents) as one JSON array. */
void            fl_client_ingest_async              (FlClient            *self,
                                                     const char          *device_id,
                                                     const char          *device_secret,
                                                     GPtrArray           *events,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
FlIngestResult *fl_client_ingest_finish             (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* Any other call as the signed-in operator: method, a path relative to
 * base-url ("/alerts?x=1", already escaped) and an optional JSON body.
 * Returns the reply's JSON, or NULL (and no error) for an empty reply. */
void            fl_client_call_async                (FlClient            *self,
                                                     const char          *method,
                                                     const char          *path,
                                                     JsonNode            *body,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
JsonNode       *fl_client_call_finish               (FlClient      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);

/* Opens the device WebSocket (GET /device, upgraded, with HTTP Basic). */
void             fl_client_open_device_channel_async  (FlClient            *self,
                                                       const char          *device_id,
                                                       const char          *device_secret,
                                                       GCancellable        *cancellable,
                                                       GAsyncReadyCallback  callback,
                                                       gpointer             user_data);
FlDeviceChannel *fl_client_open_device_channel_finish (FlClient      *self,
                                                       GAsyncResult  *result,
                                                       GError       **error);

G_END_DECLS
