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
  FL_AUTH_ERROR_USER_NOT_CONFIRMED,
  FL_AUTH_ERROR_CODE_MISMATCH,
  FL_AUTH_ERROR_EXPIRED_CODE,
  FL_AUTH_ERROR_LIMIT_EXCEEDED,    /* too many wrong codes */
  FL_AUTH_ERROR_RESOURCE_NOT_FOUND, /* no such app client */
  FL_AUTH_ERROR_PASSWORD_RESET_REQUIRED,
  FL_AUTH_ERROR_UNSUPPORTED_TOKEN_TYPE,
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
  gboolean access;    /* an access token (not an ID token) */
  char    *origin_jti; /* the sign-in the token came from */
} FlPrincipal;

void         fl_principal_free   (FlPrincipal *principal);
FlPrincipal *fl_principal_copy   (const FlPrincipal *principal);

/* Who the verified claims of a Cognito token speak for: sub, the username
 * ("username" in an access token, "cognito:username" and "email" in an ID
 * token, by token_use), cognito:groups (a list of names: groups and role),
 * exp (an integer or a double), origin_jti.  A missing or ill-typed claim
 * is FL_AUTH_ERROR_NOT_AUTHORIZED with a message that names it.  Checks
 * neither iss nor aud/client_id: the caller does, as it needs. */
FlPrincipal *fl_principal_new_from_claims (JsonObject *claims,
                                           GError    **error);

typedef struct {
  char  *id_token;
  char  *access_token;
  char  *refresh_token;
  guint  expires_in;   /* seconds */
} FlTokens;

void         fl_tokens_free      (FlTokens *tokens);
JsonNode    *fl_tokens_to_json   (FlTokens *tokens);

/* The outcome of a sign-in step: tokens, or the next challenge. */
typedef struct {
  FlTokens   *tokens;
  char       *challenge_name;       /* PASSWORD_VERIFIER, NEW_PASSWORD_REQUIRED */
  char       *session;              /* NEW_PASSWORD_REQUIRED */
  JsonObject *challenge_parameters; /* string members, as Cognito's */
} FlAuthResult;

void         fl_auth_result_free (FlAuthResult *result);

/* A code to send by email, and Cognito's CodeDeliveryDetails of it.  to
 * is NULL when nothing is to be sent (an unknown user, answered as if). */
typedef struct {
  char *to;
  char *subject;
  char *body;
  char *destination; /* masked, e.g. "a***@e***" */
} FlCodeMessage;

void         fl_code_message_free (FlCodeMessage *message);
JsonNode    *fl_code_message_to_delivery_json (FlCodeMessage *message);

typedef enum {
  FL_AUTH_FLOW_USER_PASSWORD = 1 << 0,
  FL_AUTH_FLOW_USER_SRP      = 1 << 1,
  FL_AUTH_FLOW_REFRESH_TOKEN = 1 << 2,
} FlAuthFlows;

#define FL_AUTH_FLOWS_ALL (FL_AUTH_FLOW_USER_PASSWORD | FL_AUTH_FLOW_USER_SRP | FL_AUTH_FLOW_REFRESH_TOKEN)

typedef struct {
  guint    min_length;
  gboolean require_upper;
  gboolean require_lower;
  gboolean require_digit;
  gboolean require_symbol;
} FlPasswordPolicy;

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

/* Whether the principal's sign-in was signed out (GlobalSignOut,
 * RevokeToken) or its user disabled since its token was checked; cheap,
 * for the main loop.  FL_HUB's live streams are closed on it. */
gboolean     fl_user_pool_principal_revoked (FlUserPool        *self,
                                             const FlPrincipal *principal);

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

/* ---- configuration (call at start-up) ---- */

/* ID/access token and refresh token lifetimes in seconds (Cognito's
 * defaults: 3600 and 30 days; tokens from 5 minutes to 1 day, refresh
 * tokens from 1 hour to 10 years). */
gboolean     fl_user_pool_set_lifetimes   (FlUserPool  *self,
                                           guint        token_lifetime,
                                           guint        refresh_lifetime,
                                           GError     **error);
/* Sign-ups are confirmed at once, without a code (for labs). */
void         fl_user_pool_set_auto_confirm (FlUserPool *self,
                                            gboolean    auto_confirm);
void         fl_user_pool_set_password_policy (FlUserPool             *self,
                                               const FlPasswordPolicy *policy);
/* Parses "min=8,upper,lower,digit,symbol" (any subset; "none" for no
 * character classes). */
gboolean     fl_password_policy_parse     (const char        *text,
                                           FlPasswordPolicy  *policy,
                                           GError           **error);

/* ---- app clients ---- */

/* Synchronous.  Adds an app client allowed the given flows; with
 * with_secret it gets a secret, which *secret receives. */
gboolean     fl_user_pool_add_client      (FlUserPool  *self,
                                           const char  *name,
                                           gboolean     with_secret,
                                           FlAuthFlows  flows,
                                           char       **client_id,
                                           char       **secret,
                                           GError     **error);
/* {"UserPoolClients": [{ClientId, ClientName, ...}]} without secrets */
JsonNode    *fl_user_pool_list_clients    (FlUserPool  *self);
/* Checks that client_id exists (FL_AUTH_ERROR_RESOURCE_NOT_FOUND), allows
 * flow (0: any), and, for a client with a secret, that secret_hash is
 * Base64(HMAC-SHA256(secret, username + client_id)); with username NULL
 * that is left to the caller (REFRESH_TOKEN_AUTH checks it once the token
 * names its user). */
gboolean     fl_user_pool_check_client    (FlUserPool  *self,
                                           const char  *client_id,
                                           FlAuthFlows  flow,
                                           const char  *username,
                                           const char  *secret_hash,
                                           GError     **error);

/* RevokeToken's ClientSecret, for a client with a secret */
gboolean     fl_user_pool_check_client_secret (FlUserPool *self,
                                               const char *client_id,
                                               const char *secret,
                                               GError    **error);

/* ---- the Cognito operations ----
 * Blocking (SQLite, password hashing): run them with
 * fl_user_pool_run_async, which uses the pool's bounded hashing threads.
 * client_address (nullable) is for throttling.  The client has been
 * checked with fl_user_pool_check_client. */

void         fl_user_pool_run_async       (FlUserPool          *self,
                                           GTaskThreadFunc      func,
                                           gpointer             task_data,
                                           GDestroyNotify       task_data_free,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);

gboolean      fl_user_pool_sign_up           (FlUserPool     *self,
                                              const char     *client_id,
                                              const char     *username,
                                              const char     *password,
                                              const char     *email,
                                              char          **sub,
                                              gboolean       *confirmed,
                                              FlCodeMessage **message,
                                              GError        **error);
gboolean      fl_user_pool_confirm_sign_up   (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              const char  *code,
                                              const char  *client_address,
                                              GError     **error);
FlCodeMessage *fl_user_pool_resend_code      (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              GError     **error);
FlAuthResult *fl_user_pool_password_auth     (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              const char  *password,
                                              const char  *client_address,
                                              GError     **error);
/* USER_SRP_AUTH: the PASSWORD_VERIFIER challenge for SRP_A (hex) */
FlAuthResult *fl_user_pool_srp_auth          (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              const char  *srp_a,
                                              const char  *client_address,
                                              GError     **error);
FlAuthResult *fl_user_pool_password_verifier (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              const char  *secret_block,
                                              const char  *timestamp,
                                              const char  *signature,
                                              const char  *client_address,
                                              GError     **error);
FlAuthResult *fl_user_pool_new_password      (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *session,
                                              const char  *username,
                                              const char  *new_password,
                                              GError     **error);
/* REFRESH_TOKEN_AUTH; username_out (nullable) receives the user's name,
 * for the SECRET_HASH check of a client with a secret */
FlTokens     *fl_user_pool_refresh           (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *refresh_token,
                                              char       **username_out,
                                              GError     **error);
/* GetUser: {"Username", "UserAttributes": [{"Name", "Value"}]} */
JsonNode     *fl_user_pool_get_user          (FlUserPool  *self,
                                              const char  *access_token,
                                              GError     **error);
gboolean      fl_user_pool_global_sign_out   (FlUserPool  *self,
                                              const char  *access_token,
                                              GError     **error);
gboolean      fl_user_pool_revoke_token      (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *refresh_token,
                                              GError     **error);
FlCodeMessage *fl_user_pool_forgot_password  (FlUserPool  *self,
                                              const char  *client_id,
                                              const char  *username,
                                              GError     **error);
gboolean      fl_user_pool_confirm_forgot_password (FlUserPool *self,
                                                    const char *client_id,
                                                    const char *username,
                                                    const char *code,
                                                    const char *new_password,
                                                    const char *client_address,
                                                    GError    **error);
gboolean      fl_user_pool_change_password   (FlUserPool  *self,
                                              const char  *access_token,
                                              const char  *previous_password,
                                              const char  *proposed_password,
                                              const char  *client_address,
                                              GError     **error);

/* ---- administration (blocking) ---- */

/* {"users": [{username, sub, email, emailVerified, status, enabled,
 * groups, role}]}, by name */
JsonNode     *fl_user_pool_list_users        (FlUserPool  *self,
                                              GError     **error);
/* One user as in the list; FL_AUTH_ERROR_USER_NOT_FOUND */
JsonNode     *fl_user_pool_get_user_json     (FlUserPool  *self,
                                              const char  *username,
                                              GError     **error);
/* A user with a temporary password must choose a new one at the first
 * sign-in (NEW_PASSWORD_REQUIRED), as Cognito's AdminCreateUser. */
gboolean      fl_user_pool_create_user       (FlUserPool  *self,
                                              const char  *username,
                                              const char  *email,
                                              const char  *password,
                                              gboolean     temporary,
                                              FlRole       role,
                                              GError     **error);
/* Moves the signing keys to keys/retired/ and makes new ones; retired
 * keys stay published (and accepted) until their tokens have expired.
 * Takes effect for a relay when it starts. */
gboolean      fl_user_pool_rotate_keys       (FlUserPool  *self,
                                              GError     **error);


G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlPrincipal, fl_principal_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlTokens, fl_tokens_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlAuthResult, fl_auth_result_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlCodeMessage, fl_code_message_free)

G_END_DECLS
