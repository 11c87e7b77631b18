/* fl-session.h: a signed-in (or cached, offline) session of a profile.
 *
 * The session owns the REST client of the profile and keeps its tokens
 * fresh: a silent refresh five minutes before expiry, and on the 401s
 * the fleet views report.  The tokens are kept only in the keyring
 * (FlTokenStore).  When the refresh is refused, or the user signs out,
 * the tokens are dropped and "signed-out" is emitted.
 */
#pragma once

#include <gio/gio.h>

#include "fieldline-client.h"
#include "fl-profile.h"
#include "fl-token-store.h"

G_BEGIN_DECLS

#define FL_TYPE_SESSION (fl_session_get_type ())
G_DECLARE_FINAL_TYPE (FlSession, fl_session, FL, SESSION, GObject)

FlProfile  *fl_session_get_profile        (FlSession *self);
/* The REST client, with the session's current tokens. */
FlClient   *fl_session_get_client         (FlSession *self);
const char *fl_session_get_username       (FlSession *self);
/* The /events WebSocket: ws(s)://.../events. */
const char *fl_session_get_websocket_url  (FlSession *self);
/* The current access token, or NULL when signed out.  Transfer full. */
char       *fl_session_dup_access_token   (FlSession *self);

/* Property "online": the last request reached the server.  A session
 * restored from the keyring starts offline until a request succeeds. */
gboolean    fl_session_get_online         (FlSession *self);
/* The fleet views report their failures and successes here.  A network
 * failure flips "online" off; a 401 (FL_CLIENT_ERROR_UNAUTHORIZED)
 * starts a refresh. */
void        fl_session_report_network_error (FlSession    *self,
                                             const GError *error);
void        fl_session_report_success     (FlSession *self);

/* GlobalSignOut (best effort), then clears the keyring; emits
 * "signed-out". */
void        fl_session_sign_out_async     (FlSession           *self,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean    fl_session_sign_out_finish    (FlSession     *self,
                                           GAsyncResult  *result,
                                           GError       **error);

/* ---- for the application shell and tests ---- */

/* A session of profile with tokens (from a sign-in, or the keyring).
 * online: whether the tokens just came from the server.  The session
 * keeps the tokens in the keyring and refreshes them before expiry. */
FlSession  *fl_session_new                (FlProfile        *profile,
                                           const FlTokenSet *tokens,
                                           gboolean          online);
/* TRUE once "signed-out" was emitted because the server refused the
 * refresh (the session expired), FALSE after a sign-out. */
gboolean    fl_session_get_expired        (FlSession *self);
/* Refreshes the tokens now (REFRESH_TOKEN_AUTH through Cognito).  A
 * refusal emits "signed-out" and returns FL_COGNITO_ERROR_NOT_AUTHORIZED. */
void        fl_session_refresh_async      (FlSession           *self,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean    fl_session_refresh_finish     (FlSession     *self,
                                           GAsyncResult  *result,
                                           GError       **error);
/* Real time (s) at which the silent refresh is due; 0 when none is. */
gint64      fl_session_get_refresh_due    (FlSession *self);

G_END_DECLS
