/* relay-fixture.h: an in-process relay for the relay's integration tests.
 *
 * Each test gets a temporary data directory, a relay on 127.0.0.1 port 0,
 * three users (admin, operator, viewer) signed in over HTTP through
 * POST /auth/login, and an async SoupSession.  Every helper that waits
 * iterates the thread-default main context under a deadline, never
 * sleeps, and fails the test when the deadline passes. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "fl-relay-private.h"

G_BEGIN_DECLS

#define RF_PASSWORD "Sup3r-Secret!"
#define RF_TIMEOUT_MS 15000

/* What a test wants from its relay (the g_test_add data pointer). */
typedef struct
{
  guint64  max_subscriber_lag; /* 0: the relay's default */
  gboolean tls;                /* a self-signed certificate made with openssl */
  gboolean no_relay;           /* the test starts (and stops) its own */
  gboolean cognito;            /* also trust RF_COGNITO_ISSUER (f->cognito_key) */
} RfOptions;

/* A "real" Cognito pool the relay trusts with RfOptions.cognito */
#define RF_COGNITO_ISSUER    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1"
#define RF_COGNITO_CLIENT_ID "cloudclient123"

typedef struct
{
  char            *dir;
  char            *cert_file; /* with RfOptions.tls */
  char            *key_file;
  GTlsCertificate *certificate;
  FlJwtKey        *cognito_key; /* with RfOptions.cognito: signs its tokens */
  RfOptions        options;

  FlRelay     *relay;
  char        *url; /* fl_relay_get_url(); no trailing slash */
  SoupSession *session;

  char *admin_token;    /* an ID token */
  char *operator_token; /* an access token */
  char *viewer_token;   /* an ID token */
  char *admin_refresh_token;
} RfFixture;

/* ---- waiting --------------------------------------------------------- */

gboolean rf_deadline_cb (gpointer user_data);

/* Iterates the thread-default main context until cond holds; fails the
 * test after timeout_ms. */
#define RF_WAIT_UNTIL_MS(cond, timeout_ms)                                              \
  G_STMT_START                                                                          \
  {                                                                                     \
    gboolean rf_timed_out_ = FALSE;                                                     \
    guint    rf_source_ = g_timeout_add ((timeout_ms), rf_deadline_cb, &rf_timed_out_); \
    while (!(cond) && !rf_timed_out_)                                                   \
      g_main_context_iteration (NULL, TRUE);                                            \
    if (!rf_timed_out_)                                                                 \
      g_source_remove (rf_source_);                                                     \
    if (!(cond))                                                                        \
      g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,                 \
                           "timed out waiting for: " #cond);                            \
  }                                                                                     \
  G_STMT_END

#define RF_WAIT_UNTIL(cond) RF_WAIT_UNTIL_MS (cond, RF_TIMEOUT_MS)

/* ---- set-up ------------------------------------------------------------ */

void rf_fixture_set_up (RfFixture    *f,
                        gconstpointer data);
void rf_fixture_tear_down (RfFixture    *f,
                           gconstpointer data);

/* Starts a relay on f->dir with f->options (the fixture does this unless
 * no_relay), adds the three users if they are missing and signs them in. */
void rf_fixture_start_relay (RfFixture *f);
/* Waits until no WebSocket is left on the relay's side, shuts it down
 * and checks that it was finalized. */
void rf_fixture_stop_relay (RfFixture *f);
/* Shuts the relay down and waits for the shutdown to finish; does not
 * drop the fixture's reference. */
void rf_relay_shutdown_and_wait (FlRelay *relay);

/* ---- HTTP ----------------------------------------------------------- */

typedef struct
{
  SoupMessage *msg;
  guint        status; /* 0 when the exchange failed */
  GBytes      *body;
  JsonNode    *json;  /* NULL when the body is not JSON */
  GError      *error; /* transport error */
  gboolean     done;
} RfReply;

void rf_reply_free (RfReply *reply);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RfReply, rf_reply_free)

/* A message for f's relay: path may carry a query string. */
SoupMessage *rf_message_new (RfFixture  *f,
                             const char *method,
                             const char *path,
                             const char *token);
void         rf_message_set_json (SoupMessage *msg,
                                  const char  *json);
void         rf_message_set_basic (SoupMessage *msg,
                                   const char  *user,
                                   const char  *secret);

/* Starts sending msg (takes it); the reply fills in when done. */
RfReply *rf_send_async (RfFixture   *f,
                        SoupMessage *msg);
void     rf_reply_wait (RfReply *reply);
/* Sends msg (takes it) and waits for the reply. */
RfReply *rf_send (RfFixture   *f,
                  SoupMessage *msg);

RfReply *rf_get (RfFixture  *f,
                 const char *path,
                 const char *token);
RfReply *rf_request_json (RfFixture  *f,
                          const char *method,
                          const char *path,
                          const char *token,
                          const char *json);
/* POST /ingest with Basic auth (NULL user: none). */
RfReply *rf_ingest (RfFixture  *f,
                    const char *user,
                    const char *secret,
                    const char *body);
RfReply *rf_ingest_async (RfFixture  *f,
                          const char *user,
                          const char *secret,
                          const char *body);

/* The reply's body as an object (fails the test when it is not one). */
JsonObject *rf_reply_object (RfReply *reply);
const char *rf_reply_text (RfReply *reply);
const char *rf_reply_header (RfReply    *reply,
                             const char *name);

void rf_assert_status_impl (RfReply    *reply,
                            guint       status,
                            const char *file,
                            int         line,
                            const char *func);
void rf_assert_error_impl (RfReply    *reply,
                           guint       status,
                           const char *code,
                           const char *file,
                           int         line,
                           const char *func);

/* The status, with the body in the failure message. */
#define rf_assert_status(reply, status) \
  rf_assert_status_impl ((reply), (status), __FILE__, __LINE__, G_STRFUNC)
/* The status and a {"error": {"code", "message"}} body: code (when not
 * NULL) as given, message non-empty, nothing else at the top level. */
#define rf_assert_error(reply, status, code) \
  rf_assert_error_impl ((reply), (status), (code), __FILE__, __LINE__, G_STRFUNC)

/* {"error": {...}} nested in obj (a WebSocket message or a rejection):
 * checks code and a non-empty message. */
void rf_assert_error_member (JsonObject *obj,
                             const char *code);

/* ---- devices and events ------------------------------------------------ */

/* Registers a device as admin; extra_members is "" or ",\"tags\":[...]"
 * etc.  Returns its secret. */
char *rf_register_device (RfFixture  *f,
                          const char *device_id,
                          const char *extra_members);

/* One event as JSON; timestamp < 0 and source NULL leave them out; data
 * is an object's text or NULL for {}. */
char *rf_event_json (const char *id,
                     gint64      timestamp,
                     const char *source,
                     const char *type,
                     const char *data);

/* Every event GET /events?<query> returns, following nextCursor with
 * limit=page; checks that seq strictly increases across pages.  Returns
 * JsonObjects (owned). */
GPtrArray *rf_fetch_events (RfFixture  *f,
                            const char *query,
                            guint       page);

/* Checks that the stored events are exactly the ids in expected (a set
 * of strings): each once, with seq and receivedAt, seq increasing. */
void rf_assert_stored_events (RfFixture  *f,
                              GHashTable *expected);

gint64 rf_now_ms (void);
char  *rf_basic_header (const char *user,
                        const char *secret);

/* ---- WebSockets ------------------------------------------------------- */

typedef struct
{
  SoupWebsocketConnection *conn;
  SoupMessage             *msg;
  GPtrArray               *messages; /* JsonObject, as received */
  guint                    next;     /* the first one not yet read */
  gboolean                 connected;
  gboolean                 failed;
  gboolean                 closed;
  GError                  *error;
  guint                    status; /* the handshake's HTTP status */
} RfWs;

/* A WebSocket handshake request sent as plain HTTP, to read the status
 * and body of a refused one. */
RfReply *rf_upgrade_request (RfFixture  *f,
                             const char *path,
                             const char *authorization);

/* Connects to path (which may carry ?token=); authorization is a whole
 * Authorization header value or NULL.  Waits until the handshake is
 * done, successful or not. */
RfWs *rf_ws_connect (RfFixture  *f,
                     const char *path,
                     const char *authorization);
void  rf_ws_send (RfWs       *ws,
                  const char *text);
/* The next message not read yet (waiting for it); borrowed. */
JsonObject *rf_ws_next (RfWs *ws);
/* The next message of type (skipping others); borrowed. */
JsonObject *rf_ws_next_of_type (RfWs       *ws,
                                const char *type);
/* Sends a ping action and returns once its pong arrives; the messages
 * before the pong are left unread. */
void rf_ws_sync (RfWs *ws);
/* How many unread messages of type there are (before any pong). */
guint rf_ws_count_unread (RfWs       *ws,
                          const char *type);
/* Closes from the client side and waits for "closed". */
void rf_ws_close (RfWs *ws);
void rf_ws_free (RfWs *ws);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RfWs, rf_ws_free)

/* The relay's own count of WebSockets: subscribers plus device sessions. */
guint rf_relay_n_websockets (FlRelay *relay);

G_END_DECLS
