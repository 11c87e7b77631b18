/* fl-cognito.c: the Cognito Identity Provider protocol over the relay's
 * user pool, so that standard Cognito clients (the AWS SDKs,
 * amazon-cognito-identity-js) sign in to a lab relay unchanged.
 *
 * POST / with "X-Amz-Target: AWSCognitoIdentityProviderService.<Op>" and
 * an AWS JSON 1.1 body.  Errors are Cognito's: HTTP 400 (500 for internal
 * faults), the x-amzn-ErrorType header and {"__type", "message"}.  Each
 * operation runs on the pool's worker threads (SQLite, password hashing);
 * codes go out through the mailer before the answer, so a client that
 * reads the outbox after SignUp finds its code.
 */
#define G_LOG_DOMAIN "fl-cognito"

#include "config.h"

#include <string.h>

#include "fl-cognito.h"
#include "fl-relay-private.h"

#define TARGET_PREFIX "AWSCognitoIdentityProviderService."
#define MAX_COGNITO_BODY (64 * 1024)

typedef struct _Call Call;
typedef JsonNode *(*OpFunc) (Call *call, GError **error);

struct _Call
{
  FlRelay           *relay;
  FlUserPool        *pool;
  FlRequest         *request; /* the paused message */
  JsonObject        *body;
  char              *client_address;
  OpFunc             func;
  gboolean           api;     /* /auth/...: the relay's own error format */
  FlCodeMessage     *mail;    /* to send before answering */
  JsonNode          *answer;
};

static void
call_free (Call *call)
{
  g_clear_pointer (&call->body, json_object_unref);
  g_free (call->client_address);
  g_clear_pointer (&call->mail, fl_code_message_free);
  g_clear_pointer (&call->answer, json_node_unref);
  g_free (call);
}

/* ---- errors -------------------------------------------------------------- */

#define COGNITO_ERROR (cognito_error_quark ())
static GQuark cognito_error_quark (void);
G_DEFINE_QUARK (fl-cognito-error-quark, cognito_error)

/* Errors of the protocol itself; the name is the message's __type */
typedef enum {
  COGNITO_ERROR_SERIALIZATION,
  COGNITO_ERROR_UNKNOWN_OPERATION,
  COGNITO_ERROR_INVALID_PARAMETER,
  COGNITO_ERROR_CODE_DELIVERY,
  COGNITO_ERROR_TOO_LARGE,
} CognitoError;

static const char *
error_type (const GError *error,
            guint        *status)
{
  *status = 400;
  if (error->domain == COGNITO_ERROR)
    switch ((CognitoError) error->code)
      {
      case COGNITO_ERROR_SERIALIZATION:
        return "SerializationException";
      case COGNITO_ERROR_UNKNOWN_OPERATION:
        return "UnknownOperationException";
      case COGNITO_ERROR_INVALID_PARAMETER:
        return "InvalidParameterException";
      case COGNITO_ERROR_CODE_DELIVERY:
        return "CodeDeliveryFailureException";
      case COGNITO_ERROR_TOO_LARGE:
        *status = 413;
        return "RequestEntityTooLargeException";
      default:
        break;
      }
  if (error->domain == FL_AUTH_ERROR)
    switch ((FlAuthError) error->code)
      {
      case FL_AUTH_ERROR_NOT_AUTHORIZED:
      case FL_AUTH_ERROR_FORBIDDEN:
        return "NotAuthorizedException";
      case FL_AUTH_ERROR_USER_NOT_FOUND:
        return "UserNotFoundException";
      case FL_AUTH_ERROR_USER_EXISTS:
        return "UsernameExistsException";
      case FL_AUTH_ERROR_INVALID_PASSWORD:
        return "InvalidPasswordException";
      case FL_AUTH_ERROR_INVALID_PARAMETER:
        return "InvalidParameterException";
      case FL_AUTH_ERROR_TOO_MANY_REQUESTS:
        return "TooManyRequestsException";
      case FL_AUTH_ERROR_USER_NOT_CONFIRMED:
        return "UserNotConfirmedException";
      case FL_AUTH_ERROR_CODE_MISMATCH:
        return "CodeMismatchException";
      case FL_AUTH_ERROR_EXPIRED_CODE:
        return "ExpiredCodeException";
      case FL_AUTH_ERROR_LIMIT_EXCEEDED:
        return "LimitExceededException";
      case FL_AUTH_ERROR_RESOURCE_NOT_FOUND:
        return "ResourceNotFoundException";
      case FL_AUTH_ERROR_PASSWORD_RESET_REQUIRED:
        return "PasswordResetRequiredException";
      case FL_AUTH_ERROR_UNSUPPORTED_TOKEN_TYPE:
        return "UnsupportedTokenTypeException";
      case FL_AUTH_ERROR_INTERNAL:
      default:
        break;
      }
  *status = 500;
  return "InternalErrorException";
}

static void
set_amz_headers (SoupServerMessage *msg)
{
  g_autofree char    *request_id = g_uuid_string_random ();
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (headers, "x-amzn-RequestId", request_id);
}

static void
reply_cognito_error (SoupServerMessage *msg,
                     const GError      *error)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode)    root = NULL;
  g_autofree char        *text = NULL;
  guint                   status;
  const char             *type = error_type (error, &status);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "__type");
  json_builder_add_string_value (builder, type);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, status == 500 ? "An internal error occurred." : error->message);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  text = fl_json_to_string (root, NULL);

  set_amz_headers (msg);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "x-amzn-ErrorType", type);
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/x-amz-json-1.1", SOUP_MEMORY_COPY, text, strlen (text));
}

static void
reply_cognito (SoupServerMessage *msg,
               JsonNode          *answer)
{
  g_autofree char *text = fl_json_to_string (answer, NULL);

  set_amz_headers (msg);
  soup_server_message_set_status (msg, 200, NULL);
  soup_server_message_set_response (msg, "application/x-amz-json-1.1", SOUP_MEMORY_COPY, text, strlen (text));
}

/* ---- members --------------------------------------------------------------
 * As in the AWS JSON protocol: a null member counts as absent; a member of
 * the wrong type is a SerializationException. */

static gboolean
member_string (JsonObject  *object,
               const char  *name,
               const char **value,
               GError     **error)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, name) : NULL;

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION,
                   "Expected a string for %s", name);
      return FALSE;
    }
  *value = json_node_get_string (node);
  return TRUE;
}

/* "1 validation error detected: Value null at 'clientId' ..." names the
 * member in lower camel case */
static gboolean
require_member (JsonObject  *object,
                const char  *name,
                const char **value,
                GError     **error)
{
  if (!member_string (object, name, value, error))
    return FALSE;
  if (*value == NULL)
    {
      g_autofree char *camel = g_strdup (name);

      camel[0] = g_ascii_tolower (camel[0]);
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                   "1 validation error detected: Value null at '%s' failed to satisfy constraint:"
                   " Member must not be null", camel);
      return FALSE;
    }
  return TRUE;
}

/* A map of strings (AuthParameters, ChallengeResponses); NULL if absent */
static gboolean
member_map (JsonObject  *object,
            const char  *name,
            JsonObject **map,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *map = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION, "Expected a map for %s", name);
      return FALSE;
    }
  *map = json_node_get_object (node);
  return TRUE;
}

static gboolean
require_param (JsonObject  *map,
               const char  *name,
               const char **value,
               GError     **error)
{
  if (!member_string (map, name, value, error))
    return FALSE;
  if (*value == NULL)
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                   "Missing required parameter %s", name);
      return FALSE;
    }
  return TRUE;
}

static JsonNode *
empty_answer (void)
{
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_node_take_object (node, json_object_new ());
  return node;
}

static JsonNode *
auth_result_answer (FlAuthResult *result)
{
  JsonObject *answer = json_object_new ();
  JsonNode   *node = json_node_new (JSON_NODE_OBJECT);

  if (result->tokens != NULL)
    {
      JsonObject *tokens = json_object_new ();

      json_object_set_string_member (tokens, "AccessToken", result->tokens->access_token);
      json_object_set_int_member (tokens, "ExpiresIn", result->tokens->expires_in);
      json_object_set_string_member (tokens, "IdToken", result->tokens->id_token);
      if (result->tokens->refresh_token != NULL)
        json_object_set_string_member (tokens, "RefreshToken", result->tokens->refresh_token);
      json_object_set_string_member (tokens, "TokenType", "Bearer");
      json_object_set_object_member (answer, "AuthenticationResult", tokens);
      json_object_set_object_member (answer, "ChallengeParameters", json_object_new ());
    }
  else
    {
      json_object_set_string_member (answer, "ChallengeName", result->challenge_name);
      json_object_set_object_member (answer, "ChallengeParameters",
                                     json_object_ref (result->challenge_parameters));
      if (result->session != NULL)
        json_object_set_string_member (answer, "Session", result->session);
    }
  json_node_take_object (node, answer);
  return node;
}

/* ---- the operations (on a worker thread) ---------------------------------- */

static JsonNode *
op_sign_up (Call    *call,
            GError **error)
{
  const char *client_id, *username, *password, *secret_hash, *email = NULL;
  g_autofree char *sub = NULL;
  JsonNode   *attributes;
  JsonObject *answer;
  JsonNode   *node;
  gboolean    confirmed = FALSE;

  if (!require_member (call->body, "ClientId", &client_id, error) ||
      !require_member (call->body, "Username", &username, error) ||
      !require_member (call->body, "Password", &password, error) ||
      !member_string (call->body, "SecretHash", &secret_hash, error))
    return NULL;
  attributes = json_object_get_member (call->body, "UserAttributes");
  if (attributes != NULL && !JSON_NODE_HOLDS_NULL (attributes))
    {
      JsonArray *array;

      if (!JSON_NODE_HOLDS_ARRAY (attributes))
        {
          g_set_error_literal (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION,
                               "Expected a list for UserAttributes");
          return NULL;
        }
      array = json_node_get_array (attributes);
      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode   *element = json_array_get_element (array, i);
          const char *name, *value;

          if (!JSON_NODE_HOLDS_OBJECT (element))
            {
              g_set_error_literal (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION,
                                   "Expected {Name, Value} in UserAttributes");
              return NULL;
            }
          if (!require_member (json_node_get_object (element), "Name", &name, error) ||
              !member_string (json_node_get_object (element), "Value", &value, error))
            return NULL;
          if (g_str_equal (name, "email"))
            email = value;
          else if (!g_str_equal (name, "name") && !g_str_equal (name, "preferred_username"))
            {
              g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                           "Attributes did not conform to the schema: Type for attribute {%s} could not be determined",
                           name);
              return NULL;
            }
        }
    }

  if (!fl_user_pool_check_client (call->pool, client_id, 0, username, secret_hash, error) ||
      !fl_user_pool_sign_up (call->pool, client_id, username, password, email, &sub, &confirmed, &call->mail, error))
    return NULL;

  answer = json_object_new ();
  json_object_set_boolean_member (answer, "UserConfirmed", confirmed);
  json_object_set_string_member (answer, "UserSub", sub);
  if (call->mail != NULL)
    json_object_set_member (answer, "CodeDeliveryDetails", fl_code_message_to_delivery_json (call->mail));
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, answer);
  return node;
}

static JsonNode *
op_confirm_sign_up (Call    *call,
                    GError **error)
{
  const char *client_id, *username, *code, *secret_hash;

  if (!require_member (call->body, "ClientId", &client_id, error) ||
      !require_member (call->body, "Username", &username, error) ||
      !require_member (call->body, "ConfirmationCode", &code, error) ||
      !member_string (call->body, "SecretHash", &secret_hash, error) ||
      !fl_user_pool_check_client (call->pool, client_id, 0, username, secret_hash, error) ||
      !fl_user_pool_confirm_sign_up (call->pool, client_id, username, code, call->client_address, error))
    return NULL;
  return empty_answer ();
}

static JsonNode *
code_answer (Call *call)
{
  JsonObject *answer = json_object_new ();
  JsonNode   *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_member (answer, "CodeDeliveryDetails", fl_code_message_to_delivery_json (call->mail));
  json_node_take_object (node, answer);
  return node;
}

/* ResendConfirmationCode and ForgotPassword: a code to send */
typedef FlCodeMessage *(*CodeFunc) (FlUserPool *pool,
                                    const char *client_id,
                                    const char *username,
                                    GError    **error);

static JsonNode *
code_op (Call     *call,
         CodeFunc  func,
         GError  **error)
{
  const char *client_id, *username, *secret_hash;

  if (!require_member (call->body, "ClientId", &client_id, error) ||
      !require_member (call->body, "Username", &username, error) ||
      !member_string (call->body, "SecretHash", &secret_hash, error) ||
      !fl_user_pool_check_client (call->pool, client_id, 0, username, secret_hash, error))
    return NULL;
  call->mail = func (call->pool, client_id, username, error);
  return call->mail != NULL ? code_answer (call) : NULL;
}

static JsonNode *
op_resend_code (Call    *call,
                GError **error)
{
  return code_op (call, fl_user_pool_resend_code, error);
}

static JsonNode *
op_forgot_password (Call    *call,
                    GError **error)
{
  return code_op (call, fl_user_pool_forgot_password, error);
}

static JsonNode *
op_confirm_forgot_password (Call    *call,
                            GError **error)
{
  const char *client_id, *username, *code, *password, *secret_hash;

  if (!require_member (call->body, "ClientId", &client_id, error) ||
      !require_member (call->body, "Username", &username, error) ||
      !require_member (call->body, "ConfirmationCode", &code, error) ||
      !require_member (call->body, "Password", &password, error) ||
      !member_string (call->body, "SecretHash", &secret_hash, error) ||
      !fl_user_pool_check_client (call->pool, client_id, 0, username, secret_hash, error) ||
      !fl_user_pool_confirm_forgot_password (call->pool, client_id, username, code, password,
                                             call->client_address, error))
    return NULL;
  return empty_answer ();
}

static JsonNode *
op_initiate_auth (Call    *call,
                  GError **error)
{
  g_autoptr (FlAuthResult) result = NULL;
  const char *flow, *client_id, *username = NULL, *secret_hash;
  JsonObject *params;

  if (!require_member (call->body, "AuthFlow", &flow, error) ||
      !require_member (call->body, "ClientId", &client_id, error) ||
      !member_map (call->body, "AuthParameters", &params, error) ||
      !member_string (params, "SECRET_HASH", &secret_hash, error))
    return NULL;

  if (g_str_equal (flow, "USER_PASSWORD_AUTH"))
    {
      const char *password;

      if (!require_param (params, "USERNAME", &username, error) ||
          !require_param (params, "PASSWORD", &password, error) ||
          !fl_user_pool_check_client (call->pool, client_id, FL_AUTH_FLOW_USER_PASSWORD, username, secret_hash, error))
        return NULL;
      result = fl_user_pool_password_auth (call->pool, client_id, username, password, call->client_address, error);
    }
  else if (g_str_equal (flow, "USER_SRP_AUTH"))
    {
      const char *srp_a;

      if (!require_param (params, "USERNAME", &username, error) ||
          !require_param (params, "SRP_A", &srp_a, error) ||
          !fl_user_pool_check_client (call->pool, client_id, FL_AUTH_FLOW_USER_SRP, username, secret_hash, error))
        return NULL;
      result = fl_user_pool_srp_auth (call->pool, client_id, username, srp_a, call->client_address, error);
    }
  else if (g_str_equal (flow, "REFRESH_TOKEN_AUTH") || g_str_equal (flow, "REFRESH_TOKEN"))
    {
      g_autofree char *owner = NULL;
      const char      *refresh_token;
      FlTokens        *tokens;

      if (!require_param (params, "REFRESH_TOKEN", &refresh_token, error) ||
          !fl_user_pool_check_client (call->pool, client_id, FL_AUTH_FLOW_REFRESH_TOKEN, NULL, NULL, error))
        return NULL;
      tokens = fl_user_pool_refresh (call->pool, client_id, refresh_token, &owner, error);
      if (tokens == NULL)
        return NULL;
      /* a client with a secret: SECRET_HASH over the token's user */
      if (!fl_user_pool_check_client (call->pool, client_id, 0, owner, secret_hash, error))
        {
          fl_tokens_free (tokens);
          return NULL;
        }
      result = g_new0 (FlAuthResult, 1);
      result->tokens = tokens;
    }
  else
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                   "1 validation error detected: Value '%s' at 'authFlow' failed to satisfy constraint:"
                   " Member must satisfy enum value set: [USER_SRP_AUTH, REFRESH_TOKEN_AUTH,"
                   " REFRESH_TOKEN, USER_PASSWORD_AUTH]", flow);
      return NULL;
    }
  return result != NULL ? auth_result_answer (result) : NULL;
}

static JsonNode *
op_respond_to_auth_challenge (Call    *call,
                              GError **error)
{
  g_autoptr (FlAuthResult) result = NULL;
  const char *name, *client_id, *session, *username, *secret_hash;
  JsonObject *responses;

  if (!require_member (call->body, "ChallengeName", &name, error) ||
      !require_member (call->body, "ClientId", &client_id, error) ||
      !member_string (call->body, "Session", &session, error) ||
      !member_map (call->body, "ChallengeResponses", &responses, error) ||
      !require_param (responses, "USERNAME", &username, error) ||
      !member_string (responses, "SECRET_HASH", &secret_hash, error) ||
      !fl_user_pool_check_client (call->pool, client_id, 0, username, secret_hash, error))
    return NULL;

  if (g_str_equal (name, "PASSWORD_VERIFIER"))
    {
      const char *block, *signature, *timestamp;

      if (!require_param (responses, "PASSWORD_CLAIM_SECRET_BLOCK", &block, error) ||
          !require_param (responses, "PASSWORD_CLAIM_SIGNATURE", &signature, error) ||
          !require_param (responses, "TIMESTAMP", &timestamp, error))
        return NULL;
      result = fl_user_pool_password_verifier (call->pool, client_id, username, block, timestamp, signature,
                                               call->client_address, error);
    }
  else if (g_str_equal (name, "NEW_PASSWORD_REQUIRED"))
    {
      const char *password;

      if (!require_param (responses, "NEW_PASSWORD", &password, error))
        return NULL;
      if (session == NULL)
        {
          g_set_error_literal (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                               "Missing required parameter Session");
          return NULL;
        }
      result = fl_user_pool_new_password (call->pool, client_id, session, username, password, error);
    }
  else
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_INVALID_PARAMETER,
                   "The challenge %s is not supported here (PASSWORD_VERIFIER, NEW_PASSWORD_REQUIRED)", name);
      return NULL;
    }
  return result != NULL ? auth_result_answer (result) : NULL;
}

static JsonNode *
op_get_user (Call    *call,
             GError **error)
{
  const char *token;

  if (!require_member (call->body, "AccessToken", &token, error))
    return NULL;
  return fl_user_pool_get_user (call->pool, token, error);
}

static JsonNode *
op_global_sign_out (Call    *call,
                    GError **error)
{
  const char *token;

  if (!require_member (call->body, "AccessToken", &token, error) ||
      !fl_user_pool_global_sign_out (call->pool, token, error))
    return NULL;
  return empty_answer ();
}

static JsonNode *
op_revoke_token (Call    *call,
                 GError **error)
{
  const char *token, *client_id, *secret;

  if (!require_member (call->body, "Token", &token, error) ||
      !require_member (call->body, "ClientId", &client_id, error) ||
      !member_string (call->body, "ClientSecret", &secret, error) ||
      !fl_user_pool_check_client_secret (call->pool, client_id, secret, error) ||
      !fl_user_pool_revoke_token (call->pool, client_id, token, error))
    return NULL;
  return empty_answer ();
}

static JsonNode *
op_change_password (Call    *call,
                    GError **error)
{
  const char *token, *previous, *proposed;

  if (!require_member (call->body, "AccessToken", &token, error) ||
      !require_member (call->body, "PreviousPassword", &previous, error) ||
      !require_member (call->body, "ProposedPassword", &proposed, error) ||
      !fl_user_pool_change_password (call->pool, token, previous, proposed, call->client_address, error))
    return NULL;
  return empty_answer ();
}

static const struct
{
  const char *name;
  OpFunc      func;
} operations[] = {
  { "SignUp", op_sign_up },
  { "ConfirmSignUp", op_confirm_sign_up },
  { "ResendConfirmationCode", op_resend_code },
  { "InitiateAuth", op_initiate_auth },
  { "RespondToAuthChallenge", op_respond_to_auth_challenge },
  { "GetUser", op_get_user },
  { "GlobalSignOut", op_global_sign_out },
  { "RevokeToken", op_revoke_token },
  { "ForgotPassword", op_forgot_password },
  { "ConfirmForgotPassword", op_confirm_forgot_password },
  { "ChangePassword", op_change_password },
};

/* ---- running a call -------------------------------------------------------- */

static void
call_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  Call     *call = task_data;
  GError   *error = NULL;
  JsonNode *answer = call->func (call, &error);

  if (answer == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, answer, (GDestroyNotify) json_node_unref);
}

/* Takes error. */
static void
call_reply_error (Call   *call,
                  GError *error)
{
  if (call->api)
    _fl_request_fail (call->request, error);
  else
    {
      reply_cognito_error (call->request->msg, error);
      _fl_request_finish (call->request);
    }
  g_error_free (error);
  call_free (call);
}

/* Cognito's member names in the relay's style: UserSub → userSub */
static JsonNode *
lower_camel (JsonNode *node)
{
  JsonObject    *in, *out;
  JsonObjectIter iter;
  const char    *name;
  JsonNode      *member;
  JsonNode      *copy;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return json_node_copy (node);
  in = json_node_get_object (node);
  out = json_object_new ();
  json_object_iter_init (&iter, in);
  while (json_object_iter_next (&iter, &name, &member))
    {
      g_autofree char *lower = g_strdup (name);

      lower[0] = g_ascii_tolower (lower[0]);
      json_object_set_member (out, lower, lower_camel (member));
    }
  copy = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (copy, out);
  return copy;
}

static void
call_reply (Call *call)
{
  if (call->api)
    {
      g_autoptr (JsonNode) answer = lower_camel (call->answer);
      g_autofree char     *text = fl_json_to_string (answer, NULL);

      _fl_request_reply (call->request, 200, g_string_new (text));
    }
  else
    {
      reply_cognito (call->request->msg, call->answer);
      _fl_request_finish (call->request);
    }
  call_free (call);
}

static void
mail_sent_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Call              *call = user_data;
  g_autoptr (GError) error = NULL;

  if (!fl_mailer_send_finish (FL_MAILER (source), result, &error))
    {
      g_warning ("Could not send the code to %s: %s", call->mail->destination, error->message);
      call_reply_error (call, g_error_new (COGNITO_ERROR, COGNITO_ERROR_CODE_DELIVERY,
                                           "Unable to deliver the code: %s", error->message));
      return;
    }
  call_reply (call);
}

static void
call_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Call              *call = user_data;
  g_autoptr (GError) error = NULL;

  call->answer = g_task_propagate_pointer (G_TASK (result), &error);
  if (call->answer == NULL)
    {
      call_reply_error (call, g_steal_pointer (&error));
      return;
    }
  if (call->mail != NULL && call->mail->to != NULL)
    {
      fl_mailer_send_async (call->relay->mailer, call->mail->to, call->mail->subject, call->mail->body,
                            NULL, mail_sent_cb, call);
      return;
    }
  call_reply (call);
}

static void
call_start (FlRelay           *self,
            SoupServerMessage *msg,
            JsonObject        *body,
            OpFunc             func,
            gboolean           api)
{
  Call *call = g_new0 (Call, 1);

  call->relay = self;
  call->pool = self->pool;
  call->body = json_object_ref (body);
  call->client_address = g_strdup (soup_server_message_get_remote_host (msg));
  call->func = func;
  call->api = api;
  call->request = _fl_request_new (self, msg, NULL);

  fl_user_pool_run_async (self->pool, (GTaskThreadFunc) call_thread, call, NULL, NULL, call_done_cb, call);
}

static JsonObject *
parse_body (SoupServerMessage *msg,
            GError           **error)
{
  SoupMessageBody   *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  JsonNode          *root;

  if (body->length > MAX_COGNITO_BODY)
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_TOO_LARGE,
                   "The request body is larger than %d bytes", MAX_COGNITO_BODY);
      return NULL;
    }
  bytes = soup_message_body_flatten (body);
  if (!json_parser_load_from_data (parser, g_bytes_get_data (bytes, NULL), (gssize) g_bytes_get_size (bytes), &local))
    {
      g_set_error (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION, "Malformed request body: %s", local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, COGNITO_ERROR, COGNITO_ERROR_SERIALIZATION,
                           "The request body is not a JSON object");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

void
_fl_relay_handle_cognito (FlRelay           *self,
                          SoupServerMessage *msg)
{
  SoupMessageHeaders    *headers = soup_server_message_get_request_headers (msg);
  const char            *target = soup_message_headers_get_one (headers, "X-Amz-Target");
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError)     error = NULL;
  OpFunc                 func = NULL;

  if (target != NULL && g_str_has_prefix (target, TARGET_PREFIX))
    for (guint i = 0; i < G_N_ELEMENTS (operations); i++)
      if (g_str_equal (target + strlen (TARGET_PREFIX), operations[i].name))
        func = operations[i].func;
  if (func == NULL)
    {
      error = g_error_new (COGNITO_ERROR, COGNITO_ERROR_UNKNOWN_OPERATION,
                           "Unknown operation %s", target != NULL ? target : "(no X-Amz-Target)");
      reply_cognito_error (msg, error);
      return;
    }
  body = parse_body (msg, &error);
  if (body == NULL)
    {
      reply_cognito_error (msg, error);
      return;
    }
  call_start (self, msg, body, func, FALSE);
}

/* ---- /auth/register and /auth/confirm: the same, in the relay's format ---- */

static JsonObject *
api_body (SoupServerMessage *msg,
          GError           **error)
{
  g_autoptr (GError) local = NULL;
  JsonObject        *body = parse_body (msg, &local);

  if (body == NULL)
    g_set_error (error, FL_API_ERROR, local->code == COGNITO_ERROR_TOO_LARGE ? FL_API_ERROR_TOO_LARGE : FL_API_ERROR_BAD_REQUEST,
                 "%s", local->message);
  return body;
}

/* {"username", "password", "email"} as SignUp for the relay's app client */
void
_fl_relay_handle_register (FlRelay           *self,
                           SoupServerMessage *msg)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) body = api_body (msg, &error);
  g_autoptr (JsonObject) sign_up = NULL;
  const char            *username, *password, *email;

  if (body == NULL ||
      !member_string (body, "username", &username, &error) ||
      !member_string (body, "password", &password, &error) ||
      !member_string (body, "email", &email, &error))
    goto fail;
  if (username == NULL || password == NULL)
    {
      g_set_error_literal (&error, FL_API_ERROR, FL_API_ERROR_BAD_REQUEST, "username and password are required");
      goto fail;
    }
  sign_up = json_object_new ();
  json_object_set_string_member (sign_up, "ClientId", fl_user_pool_get_client_id (self->pool));
  json_object_set_string_member (sign_up, "Username", username);
  json_object_set_string_member (sign_up, "Password", password);
  if (email != NULL)
    {
      JsonArray  *attributes = json_array_new ();
      JsonObject *attribute = json_object_new ();

      json_object_set_string_member (attribute, "Name", "email");
      json_object_set_string_member (attribute, "Value", email);
      json_array_add_object_element (attributes, attribute);
      json_object_set_array_member (sign_up, "UserAttributes", attributes);
    }
  call_start (self, msg, sign_up, op_sign_up, TRUE);
  return;

fail:
  if (error->domain == COGNITO_ERROR)
    error->domain = FL_API_ERROR, error->code = FL_API_ERROR_BAD_REQUEST;
  fl_http_reply_error (msg, error);
}

/* {"username", "code"} as ConfirmSignUp */
void
_fl_relay_handle_confirm (FlRelay           *self,
                          SoupServerMessage *msg)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) body = api_body (msg, &error);
  g_autoptr (JsonObject) confirm = NULL;
  const char            *username, *code;

  if (body == NULL ||
      !member_string (body, "username", &username, &error) ||
      !member_string (body, "code", &code, &error))
    goto fail;
  if (username == NULL || code == NULL)
    {
      g_set_error_literal (&error, FL_API_ERROR, FL_API_ERROR_BAD_REQUEST, "username and code are required");
      goto fail;
    }
  confirm = json_object_new ();
  json_object_set_string_member (confirm, "ClientId", fl_user_pool_get_client_id (self->pool));
  json_object_set_string_member (confirm, "Username", username);
  json_object_set_string_member (confirm, "ConfirmationCode", code);
  call_start (self, msg, confirm, op_confirm_sign_up, TRUE);
  return;

fail:
  if (error->domain == COGNITO_ERROR)
    error->domain = FL_API_ERROR, error->code = FL_API_ERROR_BAD_REQUEST;
  fl_http_reply_error (msg, error);
}
