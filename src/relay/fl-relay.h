/* fl-relay.h: the relay as one object: store, user pool, hub and the HTTP
 * + WebSocket server in front of them.  main.c parses the command line and
 * runs one of these; tests run one in-process on 127.0.0.1 port 0. */
#pragma once

#include <gio/gio.h>

#include "fl-user-pool.h"

G_BEGIN_DECLS

#define FL_TYPE_RELAY (fl_relay_get_type ())
G_DECLARE_FINAL_TYPE (FlRelay, fl_relay, FL, RELAY, GObject)

typedef struct {
  const char *data_dir;
  const char *listen;         /* "HOST:PORT"; port 0 picks a free one */
  const char *tls_cert_file;  /* both or neither */
  const char *tls_key_file;
  gsize       max_body_size;  /* 0: PLATFORM.md's default, 1 MiB */
  gsize       max_event_size; /* 0: 64 KiB */
  guint64     max_subscriber_lag; /* bytes a live subscriber may fall
                                   * behind; 0: FL_HUB_DEFAULT_MAX_LAG_BYTES */

  /* identity */
  const char *public_url;       /* the issuer's base instead of the listening URL */
  gboolean    auto_confirm;     /* sign-ups need no code */
  const char *smtp_url;         /* NULL: codes go to DATA_DIR/outbox/ as .eml files */
  const char *smtp_from;
  guint       token_lifetime;   /* s; 0: 3600 */
  guint       refresh_lifetime; /* s; 0: 30 days */
  const char *password_policy;  /* fl_password_policy_parse; NULL: Cognito's default */
  const char *cognito_issuer;   /* accept a real Cognito pool's tokens too */
  const char *cognito_client_id;
  const char *cognito_jwks;     /* file or URL */
} FlRelayOptions;

/* Opens the store and user pool in options->data_dir and starts listening.
 * Runs on the thread-default main context. */
FlRelay    *fl_relay_new           (const FlRelayOptions *options,
                                    GError              **error);
/* "http://127.0.0.1:40123" (https with TLS) */
const char *fl_relay_get_url       (FlRelay *self);
const char *fl_relay_get_pool_id   (FlRelay *self);
const char *fl_relay_get_client_id (FlRelay *self);

/* The relay's user pool, e.g. to add users in tests. */
FlUserPool *fl_relay_get_user_pool (FlRelay *self);

/* Stops accepting, lets in-flight requests finish, commits everything
 * acknowledged and closes the store; calls back when done. */
void        fl_relay_shutdown_async  (FlRelay             *self,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
gboolean    fl_relay_shutdown_finish (FlRelay      *self,
                                      GAsyncResult *result,
                                      GError      **error);

G_END_DECLS
