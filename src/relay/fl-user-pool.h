/* fl-user-pool.h: the relay's user pool: users, groups, password sign-in
 * and the RS256 tokens it issues.  Shaped to grow into the full Cognito
 * Identity Provider protocol (see issue "Identity").
 *
 * Users live in <data-dir>/users.db, signing keys in <data-dir>/keys/.
 * Password hashing is slow on purpose: the async calls run it on a worker
 * thread, never on the main loop.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define FL_AUTH_ERROR (fl_auth_error_quark ())

typedef enum {
  FL_AUTH_ERROR_NOT_AUTHORIZED,    /* wrong password, bad or expired token */
  FL_AUTH_ERROR_USER_NOT_FOUND,
  FL_AUTH_ERROR_USER_EXISTS,
  FL_AUTH_ERROR_INVALID_PASSWORD,  /* breaks the password policy */
  FL_AUTH_ERROR_INVALID_PARAMETER,
  FL_AUTH_ERROR_TOO_MANY_REQUESTS,
  FL_AUTH_ERROR_FORBIDDEN,         /* authenticated, but the role may not */
  FL_AUTH_ERROR_INTERNAL,
} FlAuthError;

GQuark fl_auth_error_quark (void);

typedef enum {
  FL_ROLE_NONE = 0,
  FL_ROLE_VIEWER,
  FL_ROLE_OPERATOR,
  FL_ROLE_ADMIN,
} FlRole;

const char *fl_role_to_string   (FlRole      role);
gboolean    fl_role_from_string (const char *str,
                                 FlRole     *role);

/* Who a valid token speaks for. */
typedef struct {
  char   *sub;
  char   *username;
  char   *email;
  char  **groups;
  FlRole  role;       /* the highest role among the groups */
  gint64  expires_at; /* seconds */
} FlPrincipal;

void         fl_principal_free   (FlPrincipal *principal);

typedef struct {
  char  *id_token;
  char  *access_token;
  char  *refresh_token;
  guint  expires_in;   /* seconds */
} FlTokens;

void         fl_tokens_free      (FlTokens *tokens);
JsonNode    *fl_tokens_to_json   (FlTokens *tokens);

#define FL_TYPE_USER_POOL (fl_user_pool_get_type ())
G_DECLARE_FINAL_TYPE (FlUserPool, fl_user_pool, FL, USER_POOL, GObject)

/* Opens the pool in data_dir, creating its database, pool id, app client
 * id and signing keys on first use.  Synchronous: call at start-up. */
FlUserPool  *fl_user_pool_open            (const char  *data_dir,
                                           GError     **error);
/* e.g. "local_AbC123xyz" */
const char  *fl_user_pool_get_pool_id     (FlUserPool  *self);
const char  *fl_user_pool_get_client_id   (FlUserPool  *self);
/* The token issuer, http(s)://HOST:PORT/<poolId>; set once the relay
 * knows its address. */
void         fl_user_pool_set_issuer      (FlUserPool  *self,
                                           const char  *issuer);
const char  *fl_user_pool_get_issuer      (FlUserPool  *self);

/* Synchronous, for the command line. */
gboolean     fl_user_pool_add_user        (FlUserPool  *self,
                                           const char  *username,
                                           const char  *email,
                                           const char  *password,
                                           FlRole       role,
                                           GError     **error);

/* USER_PASSWORD_AUTH.  client_address is the peer's IP address without
 * port (NULL if unknown): failed sign-ins are throttled per user and per
 * address (FL_AUTH_ERROR_TOO_MANY_REQUESTS).  An unknown user and a wrong
 * password fail alike: FL_AUTH_ERROR_NOT_AUTHORIZED. */
void         fl_user_pool_login_async     (FlUserPool          *self,
                                           const char          *username,
                                           const char          *password,
                                           const char          *client_address,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
FlTokens    *fl_user_pool_login_finish    (FlUserPool    *self,
                                           GAsyncResult  *result,
                                           GError       **error);

/* REFRESH_TOKEN_AUTH.  As in Cognito, the result has new ID and access
 * tokens and no refresh token (refresh_token is NULL). */
void         fl_user_pool_refresh_async   (FlUserPool          *self,
                                           const char          *refresh_token,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
FlTokens    *fl_user_pool_refresh_finish  (FlUserPool    *self,
                                           GAsyncResult  *result,
                                           GError       **error);

/* Checks a bearer token (ID or access token): RS256 signature by one of
 * the pool's keys, expiry, issuer, token_use, audience/client_id.  Fast
 * (a verified token is cached until it expires); safe on the main loop. */
FlPrincipal *fl_user_pool_authenticate    (FlUserPool  *self,
                                           const char  *token,
                                           GError     **error);

/* {"keys": [...]} for /<poolId>/.well-known/jwks.json */
JsonNode    *fl_user_pool_get_jwks        (FlUserPool  *self);

/* The highest role among Cognito group names (admin, operator, viewer);
 * other names are ignored.  groups may be NULL. */
FlRole       fl_role_from_groups          (const char * const *groups);

/* Synchronous, for the command line: makes role the user's only group
 * (no group for FL_ROLE_NONE).  Takes effect in tokens minted after it. */
gboolean     fl_user_pool_set_user_role   (FlUserPool  *self,
                                           const char  *username,
                                           FlRole       role,
                                           GError     **error);
/* Synchronous, for the command line.  A disabled user cannot sign in or
 * refresh, its refresh tokens are revoked, and fl_user_pool_authenticate
 * refuses its unexpired tokens at once (Cognito's AdminDisableUser). */
gboolean     fl_user_pool_set_user_enabled (FlUserPool *self,
                                            const char *username,
                                            gboolean    enabled,
                                            GError    **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlPrincipal, fl_principal_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlTokens, fl_tokens_free)

G_END_DECLS
