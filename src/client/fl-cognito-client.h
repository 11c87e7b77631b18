/* fl-cognito-client.h: the console's sign-in client for the Amazon
 * Cognito Identity Provider protocol.
 *
 * Each call is one or two POSTs to the endpoint with
 * "X-Amz-Target: AWSCognitoIdentityProviderService.<Op>" and an AWS JSON
 * 1.1 body.  The same code signs in to a lab relay (the endpoint is the
 * relay's base URL, e.g. "http://127.0.0.1:8080/") and to AWS
 * ("https://cognito-idp.REGION.amazonaws.com/").
 *
 * Nothing here blocks: every call is an _async/_finish pair that runs on
 * the thread-default main context of the thread that made the client
 * (the SRP arithmetic runs on a worker thread) and takes a GCancellable.
 * Failures are GErrors in FL_COGNITO_ERROR; a cancellation stays
 * G_IO_ERROR_CANCELLED, as everywhere in GIO.  Passwords and tokens are
 * never logged.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* ---- errors ------------------------------------------------------------ */

#define FL_COGNITO_ERROR (fl_cognito_error_quark ())

typedef enum
{
  FL_COGNITO_ERROR_NOT_AUTHORIZED,          /* NotAuthorizedException */
  FL_COGNITO_ERROR_USER_NOT_CONFIRMED,      /* UserNotConfirmedException */
  FL_COGNITO_ERROR_USERNAME_EXISTS,         /* UsernameExistsException */
  FL_COGNITO_ERROR_INVALID_PASSWORD,        /* InvalidPasswordException */
  FL_COGNITO_ERROR_CODE_MISMATCH,           /* CodeMismatchException */
  FL_COGNITO_ERROR_EXPIRED_CODE,            /* ExpiredCodeException */
  FL_COGNITO_ERROR_LIMIT_EXCEEDED,          /* LimitExceededException */
  FL_COGNITO_ERROR_TOO_MANY_REQUESTS,       /* TooManyRequestsException, TooManyFailedAttemptsException,
                                             * ThrottlingException */
  FL_COGNITO_ERROR_USER_NOT_FOUND,          /* UserNotFoundException */
  FL_COGNITO_ERROR_INVALID_PARAMETER,       /* InvalidParameterException; also a client made with an
                                             * endpoint that is not an http(s) URL or a user pool id
                                             * without "_" (no type name then) */
  FL_COGNITO_ERROR_RESOURCE_NOT_FOUND,      /* ResourceNotFoundException (e.g. no such app client) */
  FL_COGNITO_ERROR_PASSWORD_RESET_REQUIRED, /* PasswordResetRequiredException */
  FL_COGNITO_ERROR_NETWORK,                 /* unreachable, refused, timed out, DNS */
  FL_COGNITO_ERROR_TLS,                     /* certificate not trusted / handshake failed */
  FL_COGNITO_ERROR_PROTOCOL,                /* an answer that is not Cognito's */
  FL_COGNITO_ERROR_OTHER,                   /* any other __type: see fl_cognito_error_get_type_name;
                                             * also a sign-in challenge this client does not
                                             * support (MFA, ...), with no type name */
} FlCognitoError;

GQuark fl_cognito_error_quark (void);

/* The __type of the server's answer without its namespace, e.g.
 * "NotAuthorizedException", or NULL (errors not from the server, other
 * domains). */
const char *fl_cognito_error_get_type_name (const GError *error);

/* ---- results ----------------------------------------------------------- */

typedef struct
{
  char  *id_token;
  char  *access_token;
  char  *refresh_token;
  gint64 expires_at; /* of the ID and access tokens, unix seconds */
  char  *username;   /* the user's name in the pool (USER_ID_FOR_SRP when the
                      * pool names it): what refreshing wants */
} FlCognitoTokens;

/* Both wipe the tokens before freeing them. */
void             fl_cognito_tokens_free (FlCognitoTokens *tokens);
FlCognitoTokens *fl_cognito_tokens_copy (const FlCognitoTokens *tokens);

/* A sign-in that needs one more step: NEW_PASSWORD_REQUIRED (a user made
 * with a temporary password).  Answer it with
 * fl_cognito_client_respond_new_password_async() within a few minutes. */
typedef struct
{
  char *name; /* "NEW_PASSWORD_REQUIRED" */
  char *session;
  char *username; /* the user's name in the pool */
} FlCognitoChallenge;

void fl_cognito_challenge_free (FlCognitoChallenge *challenge);

/* ---- the client -------------------------------------------------------- */

#define FL_TYPE_COGNITO_CLIENT (fl_cognito_client_get_type ())
G_DECLARE_FINAL_TYPE (FlCognitoClient, fl_cognito_client, FL, COGNITO_CLIENT, GObject)

/* client_secret is for an app client with a secret (NULL: none); then
 * every call sends SECRET_HASH. */
FlCognitoClient *fl_cognito_client_new (const char *endpoint,
                                        const char *user_pool_id,
                                        const char *client_id,
                                        const char *client_secret);
const char      *fl_cognito_client_get_endpoint (FlCognitoClient *self);
const char      *fl_cognito_client_get_user_pool_id (FlCognitoClient *self);
const char      *fl_cognito_client_get_client_id (FlCognitoClient *self);

/* USER_SRP_AUTH; falls back to USER_PASSWORD_AUTH when the pool answers
 * that SRP is not enabled for the client.  Finishes with tokens, or NULL
 * and *challenge (NEW_PASSWORD_REQUIRED; challenge must not be NULL), or
 * NULL and an error.  The tokens' username is the user's name in the
 * pool, which SRP names (USER_ID_FOR_SRP): the one to refresh with. */
void             fl_cognito_client_sign_in_async (FlCognitoClient    *self,
                                                  const char         *username,
                                                  const char         *password,
                                                  GCancellable       *cancellable,
                                                  GAsyncReadyCallback callback,
                                                  gpointer            user_data);
FlCognitoTokens *fl_cognito_client_sign_in_finish (FlCognitoClient     *self,
                                                   GAsyncResult        *result,
                                                   FlCognitoChallenge **challenge,
                                                   GError             **error);

/* RespondToAuthChallenge NEW_PASSWORD_REQUIRED */
void             fl_cognito_client_respond_new_password_async (FlCognitoClient          *self,
                                                               const FlCognitoChallenge *challenge,
                                                               const char               *new_password,
                                                               GCancellable             *cancellable,
                                                               GAsyncReadyCallback       callback,
                                                               gpointer                  user_data);
FlCognitoTokens *fl_cognito_client_respond_new_password_finish (FlCognitoClient *self,
                                                                GAsyncResult    *result,
                                                                GError         **error);

/* REFRESH_TOKEN_AUTH.  username (nullable without a client secret) is the
 * tokens' username; SECRET_HASH is made with it.  The result keeps the
 * given refresh token (Cognito returns none), unless the server returned
 * a new one. */
void             fl_cognito_client_refresh_async (FlCognitoClient    *self,
                                                  const char         *username,
                                                  const char         *refresh_token,
                                                  GCancellable       *cancellable,
                                                  GAsyncReadyCallback callback,
                                                  gpointer            user_data);
FlCognitoTokens *fl_cognito_client_refresh_finish (FlCognitoClient *self,
                                                   GAsyncResult    *result,
                                                   GError         **error);

/* SignUp with the email attribute (email nullable).  *confirmed: whether
 * the user may sign in at once; *destination (nullable out): where the
 * code went, masked ("a***@e***"), or NULL when no code was sent. */
void     fl_cognito_client_sign_up_async (FlCognitoClient    *self,
                                          const char         *username,
                                          const char         *password,
                                          const char         *email,
                                          GCancellable       *cancellable,
                                          GAsyncReadyCallback callback,
                                          gpointer            user_data);
gboolean fl_cognito_client_sign_up_finish (FlCognitoClient *self,
                                           GAsyncResult    *result,
                                           gboolean        *confirmed,
                                           char           **destination,
                                           GError         **error);

/* ConfirmSignUp */
void     fl_cognito_client_confirm_sign_up_async (FlCognitoClient    *self,
                                                  const char         *username,
                                                  const char         *code,
                                                  GCancellable       *cancellable,
                                                  GAsyncReadyCallback callback,
                                                  gpointer            user_data);
gboolean fl_cognito_client_confirm_sign_up_finish (FlCognitoClient *self,
                                                   GAsyncResult    *result,
                                                   GError         **error);

/* ResendConfirmationCode; finishes with the masked destination */
void  fl_cognito_client_resend_code_async (FlCognitoClient    *self,
                                           const char         *username,
                                           GCancellable       *cancellable,
                                           GAsyncReadyCallback callback,
                                           gpointer            user_data);
char *fl_cognito_client_resend_code_finish (FlCognitoClient *self,
                                            GAsyncResult    *result,
                                            GError         **error);

/* ForgotPassword; finishes with the masked destination */
void  fl_cognito_client_forgot_password_async (FlCognitoClient    *self,
                                               const char         *username,
                                               GCancellable       *cancellable,
                                               GAsyncReadyCallback callback,
                                               gpointer            user_data);
char *fl_cognito_client_forgot_password_finish (FlCognitoClient *self,
                                                GAsyncResult    *result,
                                                GError         **error);

/* ConfirmForgotPassword */
void     fl_cognito_client_confirm_forgot_password_async (FlCognitoClient    *self,
                                                          const char         *username,
                                                          const char         *code,
                                                          const char         *new_password,
                                                          GCancellable       *cancellable,
                                                          GAsyncReadyCallback callback,
                                                          gpointer            user_data);
gboolean fl_cognito_client_confirm_forgot_password_finish (FlCognitoClient *self,
                                                           GAsyncResult    *result,
                                                           GError         **error);

/* GlobalSignOut: every refresh token of the user stops working */
void     fl_cognito_client_global_sign_out_async (FlCognitoClient    *self,
                                                  const char         *access_token,
                                                  GCancellable       *cancellable,
                                                  GAsyncReadyCallback callback,
                                                  gpointer            user_data);
gboolean fl_cognito_client_global_sign_out_finish (FlCognitoClient *self,
                                                   GAsyncResult    *result,
                                                   GError         **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlCognitoTokens, fl_cognito_tokens_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlCognitoChallenge, fl_cognito_challenge_free)

G_END_DECLS
