/* test-cognito.c: the relay's Cognito Identity Provider protocol end to
 * end (POST / with X-Amz-Target and an AWS JSON 1.1 body), against an
 * in-process relay that starts with no users: sign-up and its codes in
 * the outbox, USER_PASSWORD_AUTH, USER_SRP_AUTH (with the core's SRP
 * client), refresh, GetUser, GlobalSignOut and RevokeToken, password
 * reset and change, NEW_PASSWORD_REQUIRED, app clients with a secret or
 * fewer flows, the protocol's own errors, and /auth/register and
 * /auth/confirm, which wrap the same code in the relay's error format. */
#define G_LOG_DOMAIN "test-cognito"

#include "config.h"

#include <string.h>

#include "fl-srp.h"
#include "fl-user-pool-private.h"
#include "relay-fixture.h"

#define TARGET_PREFIX "AWSCognitoIdentityProviderService."
#define AMZ_JSON "application/x-amz-json-1.1"
#define MAX_BODY (64 * 1024)

#define PASSWORD "Tr1cky-Passw0rd!"
#define NEW_PASSWORD "N3w-Battery-Staple!"
#define THIRD_PASSWORD "Th1rd-Time-Lucky?"
#define WRONG_PASSWORD "Wr0ng-Passw0rd!"
#define TEMPORARY_PASSWORD "Temp0rary-Pass!"

#define NOT_AUTHORIZED "Incorrect username or password."
#define TOKEN_LIFETIME 3600
#define ACCESS_SCOPE "aws.cognito.signin.user.admin"

#define CONFIRMATION_PHRASE "Your confirmation code is"
#define RESET_PHRASE "Your password reset code is"

/* N of the RFC 5054 3072-bit group, which Cognito's SRP uses */
static const char srp_n_hex[] = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74"
                                "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437"
                                "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed"
                                "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05"
                                "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb"
                                "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b"
                                "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718"
                                "3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33"
                                "a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7"
                                "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864"
                                "d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2"
                                "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff";

/* ---- the fixture ------------------------------------------------------- */

typedef struct
{
  RfFixture   rf; /* its own relay: no users until a test adds them */
  FlUserPool *pool;
  const char *client_id; /* the relay's own app client (all flows, no secret) */
  char       *pool_name; /* the pool id after "_", as SRP mixes it in */
  char       *issuer;    /* <relay url>/<pool id> */
  char       *outbox;
  GHashTable *seen_mail; /* outbox file names read already */
} CgFixture;

static void
cg_set_up (CgFixture    *f,
           gconstpointer data)
{
  static const RfOptions no_relay = { .no_relay = TRUE };
  g_autoptr (GError)     error = NULL;
  FlRelayOptions         options = { 0 };
  const char            *pool_id;

  /* the shared fixture's directory and session, but a relay without its
   * three users: the first user to sign up is to become the admin */
  rf_fixture_set_up (&f->rf, &no_relay);
  options.data_dir = f->rf.dir;
  options.listen = "127.0.0.1:0";
  f->rf.relay = fl_relay_new (&options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->rf.relay);
  f->rf.url = g_strdup (fl_relay_get_url (f->rf.relay));

  f->pool = fl_relay_get_user_pool (f->rf.relay);
  /* Tiny argon2 costs: these tests are about the protocol, not hashing. */
  _fl_user_pool_set_argon2_params (f->pool, 1, 64, 1);
  f->client_id = fl_relay_get_client_id (f->rf.relay);
  pool_id = fl_relay_get_pool_id (f->rf.relay);
  g_assert_nonnull (strchr (pool_id, '_'));
  f->pool_name = g_strdup (strchr (pool_id, '_') + 1);
  f->issuer = g_strdup_printf ("%s/%s", f->rf.url, pool_id);
  f->outbox = g_build_filename (f->rf.dir, "outbox", NULL);
  f->seen_mail = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
cg_tear_down (CgFixture    *f,
              gconstpointer data)
{
  rf_fixture_tear_down (&f->rf, NULL);
  f->pool = NULL;
  f->client_id = NULL;
  g_clear_pointer (&f->pool_name, g_free);
  g_clear_pointer (&f->issuer, g_free);
  g_clear_pointer (&f->outbox, g_free);
  g_clear_pointer (&f->seen_mail, g_hash_table_unref);
}

/* ---- small helpers ----------------------------------------------------- */

static void G_GNUC_PRINTF (4, 5)
    fail_at (const char *file,
             int         line,
             const char *func,
             const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list          args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_assertion_message (G_LOG_DOMAIN, file, line, func, message);
}

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

static gboolean
is_lower_hex (const char *text)
{
  return *text != '\0' && strspn (text, "0123456789abcdef") == strlen (text);
}

static gboolean
holds_string (JsonNode *node)
{
  return node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

static const char *
string_member (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (!holds_string (node))
    g_error ("Member “%s” is missing or not a string", name);

  return json_node_get_string (node);
}

static gint64
int_member (JsonObject *obj,
            const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    g_error ("Member “%s” is missing or not an integer", name);

  return json_node_get_int (node);
}

static gboolean
bool_member (JsonObject *obj,
             const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    g_error ("Member “%s” is missing or not a boolean", name);

  return json_node_get_boolean (node);
}

static JsonObject *
object_member (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    g_error ("Member “%s” is missing or not an object", name);

  return json_node_get_object (node);
}

static char *
object_text (JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);

  return json_to_string (node, FALSE);
}

/* An object of string members from name, value pairs ending in a NULL
 * name; a NULL value leaves its member out. */
static JsonObject *
object_from_pairs_valist (const char *first_name,
                          va_list     args)
{
  JsonObject *obj = json_object_new ();

  for (const char *name = first_name; name != NULL; name = va_arg (args, const char *))
    {
      const char *value = va_arg (args, const char *);

      if (value != NULL)
        json_object_set_string_member (obj, name, value);
    }

  return obj;
}

static JsonObject *object_from_pairs (const char *first_name,
                                      ...) G_GNUC_NULL_TERMINATED;

static JsonObject *
object_from_pairs (const char *first_name,
                   ...)
{
  JsonObject *obj;
  va_list     args;

  va_start (args, first_name);
  obj = object_from_pairs_valist (first_name, args);
  va_end (args);

  return obj;
}

/* ---- Cognito calls ----------------------------------------------------- */

/* POST / with header: target (none when target is NULL) and body as
 * application/x-amz-json-1.1. */
static RfReply *
cg_post (CgFixture  *f,
         const char *header,
         const char *target,
         const char *body)
{
  SoupMessage       *msg = rf_message_new (&f->rf, "POST", "/", NULL);
  g_autoptr (GBytes) bytes = g_bytes_new (body, strlen (body));

  if (target != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (msg), header, target);
  soup_message_set_request_body_from_bytes (msg, AMZ_JSON, bytes);

  return rf_send (&f->rf, msg);
}

static RfReply *
cg_call (CgFixture  *f,
         const char *operation,
         const char *body)
{
  g_autofree char *target = g_strconcat (TARGET_PREFIX, operation, NULL);

  return cg_post (f, "X-Amz-Target", target, body);
}

/* Takes body. */
static RfReply *
cg_call_object (CgFixture  *f,
                const char *operation,
                JsonObject *body)
{
  g_autoptr (JsonObject) owned = body;
  g_autofree char       *text = object_text (owned);

  return cg_call (f, operation, text);
}

static RfReply *cg_call_pairs (CgFixture  *f,
                               const char *operation,
                               const char *first_name,
                               ...) G_GNUC_NULL_TERMINATED;

/* operation with a flat body of string members */
static RfReply *
cg_call_pairs (CgFixture  *f,
               const char *operation,
               const char *first_name,
               ...)
{
  JsonObject *body;
  va_list     args;

  va_start (args, first_name);
  body = object_from_pairs_valist (first_name, args);
  va_end (args);

  return cg_call_object (f, operation, body);
}

static void
check_amz_reply (RfReply    *reply,
                 const char *file,
                 int         line,
                 const char *func)
{
  const char *content_type = rf_reply_header (reply, "Content-Type");
  const char *request_id = rf_reply_header (reply, "x-amzn-RequestId");

  if (content_type == NULL || !g_str_has_prefix (content_type, AMZ_JSON))
    fail_at (file, line, func, "HTTP %u: Content-Type is %s, not " AMZ_JSON ": %s",
             reply->status, content_type ? content_type : "missing", rf_reply_text (reply));
  if (request_id == NULL || *request_id == '\0')
    fail_at (file, line, func, "HTTP %u: no x-amzn-RequestId", reply->status);
  if (reply->json == NULL || !JSON_NODE_HOLDS_OBJECT (reply->json))
    fail_at (file, line, func, "HTTP %u: the body is not a JSON object: %s", reply->status, rf_reply_text (reply));
}

/* 200, no x-amzn-ErrorType, an AWS JSON object: returns it (borrowed). */
static JsonObject *
cg_assert_ok_impl (RfReply    *reply,
                   const char *file,
                   int         line,
                   const char *func)
{
  const char *error_type;

  rf_assert_status_impl (reply, 200, file, line, func);
  error_type = rf_reply_header (reply, "x-amzn-ErrorType");
  if (error_type != NULL)
    fail_at (file, line, func, "HTTP 200 with x-amzn-ErrorType %s", error_type);
  check_amz_reply (reply, file, line, func);

  return json_node_get_object (reply->json);
}

/* status, x-amzn-ErrorType: type and exactly {"__type": type, "message"},
 * the message non-empty and matching message (a glob) unless NULL. */
static void
cg_assert_error_impl (RfReply    *reply,
                      guint       status,
                      const char *type,
                      const char *message,
                      const char *file,
                      int         line,
                      const char *func)
{
  const char *error_type;
  JsonObject *obj;
  JsonNode   *type_node, *message_node;

  rf_assert_status_impl (reply, status, file, line, func);
  error_type = rf_reply_header (reply, "x-amzn-ErrorType");
  if (g_strcmp0 (error_type, type) != 0)
    fail_at (file, line, func, "HTTP %u: x-amzn-ErrorType is %s, expected %s: %s",
             status, error_type ? error_type : "missing", type, rf_reply_text (reply));
  check_amz_reply (reply, file, line, func);

  obj = json_node_get_object (reply->json);
  type_node = json_object_get_member (obj, "__type");
  message_node = json_object_get_member (obj, "message");
  if (json_object_get_size (obj) != 2 || !holds_string (type_node) || !holds_string (message_node))
    fail_at (file, line, func, "HTTP %u: not a {\"__type\",\"message\"} body: %s", status, rf_reply_text (reply));
  if (g_strcmp0 (json_node_get_string (type_node), type) != 0)
    fail_at (file, line, func, "HTTP %u: __type is %s, expected %s", status, json_node_get_string (type_node), type);
  if (*json_node_get_string (message_node) == '\0')
    fail_at (file, line, func, "HTTP %u %s: an empty message", status, type);
  if (message != NULL && !g_pattern_match_simple (message, json_node_get_string (message_node)))
    fail_at (file, line, func, "HTTP %u %s: the message “%s” does not match “%s”",
             status, type, json_node_get_string (message_node), message);
}

/* 200 and exactly {} */
static void
cg_assert_empty_impl (RfReply    *reply,
                      const char *file,
                      int         line,
                      const char *func)
{
  JsonObject *obj = cg_assert_ok_impl (reply, file, line, func);

  if (json_object_get_size (obj) != 0)
    fail_at (file, line, func, "expected {}, got %s", rf_reply_text (reply));
}

#define cg_assert_ok(reply) \
  cg_assert_ok_impl ((reply), __FILE__, __LINE__, G_STRFUNC)
#define cg_assert_error(reply, status, type, message) \
  cg_assert_error_impl ((reply), (status), (type), (message), __FILE__, __LINE__, G_STRFUNC)
#define cg_assert_empty(reply) \
  cg_assert_empty_impl ((reply), __FILE__, __LINE__, G_STRFUNC)

/* Makes a call and checks its error, or its {}, freeing the reply. */
#define check_error(call, status, type, message)           \
  G_STMT_START                                             \
  {                                                        \
    g_autoptr (RfReply) reply_ = (call);                   \
    cg_assert_error (reply_, (status), (type), (message)); \
  }                                                        \
  G_STMT_END

#define check_empty(call)                \
  G_STMT_START                           \
  {                                      \
    g_autoptr (RfReply) reply_ = (call); \
    cg_assert_empty (reply_);            \
  }                                      \
  G_STMT_END

/* ---- the outbox -------------------------------------------------------- */

/* The texts of the outbox messages not read before (and now read). */
static GPtrArray *
new_mail (CgFixture *f)
{
  GPtrArray       *texts = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open (f->outbox, 0, NULL);
  const char      *name;

  if (dir == NULL)
    return texts;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char   *path = NULL;
      g_autoptr (GError) error = NULL;
      char              *text = NULL;

      if (!g_str_has_suffix (name, ".eml") || g_hash_table_contains (f->seen_mail, name))
        continue;
      path = g_build_filename (f->outbox, name, NULL);
      g_file_get_contents (path, &text, NULL, &error);
      g_assert_no_error (error);
      g_ptr_array_add (texts, text);
      g_hash_table_add (f->seen_mail, g_strdup (name));
    }

  return texts;
}

static void
assert_no_new_mail (CgFixture *f)
{
  g_autoptr (GPtrArray) mail = new_mail (f);

  g_assert_cmpuint (mail->len, ==, 0);
}

/* The code in the one message written since the last look, which must
 * go to email and say "<phrase> NNNNNN". */
static char *
take_code (CgFixture  *f,
           const char *email,
           const char *phrase)
{
  g_autoptr (GPtrArray)  mail = new_mail (f);
  g_autofree char       *to = g_strdup_printf ("\r\nTo: %s\r\n", email);
  g_autofree char       *pattern = g_strdup_printf ("%s ([0-9]{6})\r\n", phrase);
  g_autoptr (GRegex)     regex = g_regex_new (pattern, 0, 0, NULL);
  g_autoptr (GMatchInfo) match = NULL;
  const char            *text;

  g_assert_cmpuint (mail->len, ==, 1);
  text = g_ptr_array_index (mail, 0);
  if (strstr (text, to) == NULL)
    g_error ("The message is not to %s:\n%s", email, text);
  if (!g_regex_match (regex, text, 0, &match))
    g_error ("No “%s NNNNNN” in the message:\n%s", phrase, text);

  return g_match_info_fetch (match, 1);
}

/* Another six-digit code than code */
static char *
other_code (const char *code)
{
  guint64 value = g_ascii_strtoull (code, NULL, 10);

  return g_strdup_printf ("%06u", (guint) ((value + 1) % 1000000));
}

/* CodeDeliveryDetails: an email to the masked address */
static void
assert_delivery (JsonObject *obj,
                 const char *destination)
{
  JsonObject *details = object_member (obj, "CodeDeliveryDetails");

  g_assert_cmpstr (string_member (details, "Destination"), ==, destination);
  g_assert_cmpstr (string_member (details, "DeliveryMedium"), ==, "EMAIL");
  g_assert_cmpstr (string_member (details, "AttributeName"), ==, "email");
}

/* ---- sign-up ----------------------------------------------------------- */

/* SignUp; email NULL sends no UserAttributes. */
static RfReply *
sign_up (CgFixture  *f,
         const char *client_id,
         const char *username,
         const char *password,
         const char *email)
{
  JsonObject *body = object_from_pairs ("ClientId", client_id, "Username", username, "Password", password, NULL);

  if (email != NULL)
    {
      JsonArray *attributes = json_array_new ();

      json_array_add_object_element (attributes, object_from_pairs ("Name", "email", "Value", email, NULL));
      json_object_set_array_member (body, "UserAttributes", attributes);
    }

  return cg_call_object (f, "SignUp", body);
}

/* "alice@example.org" → "a***@e***" */
static char *
masked (const char *email)
{
  return g_strdup_printf ("%c***@%c***", email[0], strchr (email, '@')[1]);
}

/* A SignUp with PASSWORD that must work: not confirmed, a code by email.
 * Returns the code; sub_out (optional) gets the UserSub. */
static char *
sign_up_ok (CgFixture  *f,
            const char *username,
            const char *email,
            char      **sub_out)
{
  g_autoptr (RfReply) reply = sign_up (f, f->client_id, username, PASSWORD, email);
  g_autofree char    *destination = masked (email);
  JsonObject         *obj = cg_assert_ok (reply);

  g_assert_false (bool_member (obj, "UserConfirmed"));
  g_assert_true (g_uuid_string_is_valid (string_member (obj, "UserSub")));
  assert_delivery (obj, destination);
  g_assert_cmpuint (json_object_get_size (obj), ==, 3);
  if (sub_out != NULL)
    *sub_out = g_strdup (string_member (obj, "UserSub"));

  return take_code (f, email, CONFIRMATION_PHRASE);
}

static RfReply *
confirm_sign_up (CgFixture  *f,
                 const char *username,
                 const char *code)
{
  return cg_call_pairs (f, "ConfirmSignUp",
                        "ClientId", f->client_id,
                        "Username", username,
                        "ConfirmationCode", code,
                        NULL);
}

/* A confirmed user with PASSWORD; returns its sub. */
static char *
add_user (CgFixture  *f,
          const char *username,
          const char *email)
{
  char               *sub = NULL;
  g_autofree char    *code = sign_up_ok (f, username, email, &sub);
  g_autoptr (RfReply) reply = confirm_sign_up (f, username, code);

  cg_assert_empty (reply);
  return sub;
}

/* ---- sign-in ----------------------------------------------------------- */

static RfReply *initiate_auth (CgFixture  *f,
                               const char *client_id,
                               const char *flow,
                               const char *first_name,
                               ...) G_GNUC_NULL_TERMINATED;

/* InitiateAuth with AuthParameters from name, value pairs */
static RfReply *
initiate_auth (CgFixture  *f,
               const char *client_id,
               const char *flow,
               const char *first_name,
               ...)
{
  JsonObject *body = object_from_pairs ("AuthFlow", flow, "ClientId", client_id, NULL);
  va_list     args;

  va_start (args, first_name);
  json_object_set_object_member (body, "AuthParameters", object_from_pairs_valist (first_name, args));
  va_end (args);

  return cg_call_object (f, "InitiateAuth", body);
}

static RfReply *respond_to_challenge (CgFixture  *f,
                                      const char *client_id,
                                      const char *challenge,
                                      const char *session,
                                      const char *first_name,
                                      ...) G_GNUC_NULL_TERMINATED;

/* RespondToAuthChallenge with ChallengeResponses from name, value pairs;
 * session NULL sends none. */
static RfReply *
respond_to_challenge (CgFixture  *f,
                      const char *client_id,
                      const char *challenge,
                      const char *session,
                      const char *first_name,
                      ...)
{
  JsonObject *body = object_from_pairs ("ChallengeName", challenge, "ClientId", client_id, "Session", session, NULL);
  va_list     args;

  va_start (args, first_name);
  json_object_set_object_member (body, "ChallengeResponses", object_from_pairs_valist (first_name, args));
  va_end (args);

  return cg_call_object (f, "RespondToAuthChallenge", body);
}

static RfReply *
password_auth (CgFixture  *f,
               const char *username,
               const char *password)
{
  return initiate_auth (f, f->client_id, "USER_PASSWORD_AUTH", "USERNAME", username, "PASSWORD", password, NULL);
}

static RfReply *
refresh (CgFixture  *f,
         const char *client_id,
         const char *flow,
         const char *refresh_token)
{
  return initiate_auth (f, client_id, flow, "REFRESH_TOKEN", refresh_token, NULL);
}

/* An AuthenticationResult and nothing of a challenge: returns the tokens.
 * with_refresh: a RefreshToken must be there (a sign-in) or must not (a
 * refresh). */
static FlTokens *
assert_tokens_impl (RfReply    *reply,
                    gboolean    with_refresh,
                    const char *file,
                    int         line,
                    const char *func)
{
  JsonObject *obj = cg_assert_ok_impl (reply, file, line, func);
  FlTokens   *tokens;
  JsonObject *result;

  if (json_object_has_member (obj, "ChallengeName") || json_object_has_member (obj, "Session") || !json_object_has_member (obj, "AuthenticationResult"))
    fail_at (file, line, func, "not an AuthenticationResult: %s", rf_reply_text (reply));
  if (json_object_has_member (obj, "ChallengeParameters"))
    g_assert_cmpuint (json_object_get_size (object_member (obj, "ChallengeParameters")), ==, 0);

  result = object_member (obj, "AuthenticationResult");
  tokens = g_new0 (FlTokens, 1);
  tokens->id_token = g_strdup (string_member (result, "IdToken"));
  tokens->access_token = g_strdup (string_member (result, "AccessToken"));
  tokens->expires_in = (guint) int_member (result, "ExpiresIn");
  g_assert_cmpuint (tokens->expires_in, ==, TOKEN_LIFETIME);
  g_assert_cmpstr (string_member (result, "TokenType"), ==, "Bearer");
  if (with_refresh)
    tokens->refresh_token = g_strdup (string_member (result, "RefreshToken"));
  else if (json_object_has_member (result, "RefreshToken"))
    fail_at (file, line, func, "a refresh must not return a RefreshToken: %s", rf_reply_text (reply));
  g_assert_cmpuint (json_object_get_size (result), ==, with_refresh ? 5 : 4);
  g_assert_cmpstr (tokens->id_token, !=, tokens->access_token);

  return tokens;
}

#define assert_tokens(reply, with_refresh) \
  assert_tokens_impl ((reply), (with_refresh), __FILE__, __LINE__, G_STRFUNC)

/* USER_PASSWORD_AUTH that must work */
static FlTokens *
sign_in (CgFixture  *f,
         const char *username,
         const char *password)
{
  g_autoptr (RfReply) reply = password_auth (f, username, password);

  return assert_tokens (reply, TRUE);
}

/* Base64 (HMAC-SHA256 (secret, username + client_id)) */
static char *
secret_hash (const char *secret,
             const char *username,
             const char *client_id)
{
  g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) secret, strlen (secret));
  guint8            digest[32];
  gsize             len = sizeof digest;

  g_hmac_update (hmac, (const guchar *) username, -1);
  g_hmac_update (hmac, (const guchar *) client_id, -1);
  g_hmac_get_digest (hmac, digest, &len);
  g_assert_cmpuint (len, ==, sizeof digest);

  return g_base64_encode (digest, len);
}

/* ---- tokens ------------------------------------------------------------ */

/* The JSON object in part index (0 header, 1 claims) of a compact JWS. */
static JsonObject *
jwt_part (const char *token,
          guint       index)
{
  g_auto (GStrv)         parts = g_strsplit (token, ".", 4);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree guint8     *raw = NULL;
  g_autoptr (GError)     error = NULL;
  gsize                  len = 0;

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  raw = fl_base64url_decode (parts[index], &len);
  g_assert_nonnull (raw);
  json_parser_load_from_data (parser, (const char *) raw, (gssize) len, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static JsonObject *
jwt_claims (const char *token)
{
  return jwt_part (token, 1);
}

/* The cognito:groups claim joined with ","; "" when there is none */
static char *
claim_groups (JsonObject *claims)
{
  JsonNode                *node = json_object_get_member (claims, "cognito:groups");
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  g_auto (GStrv)           groups = NULL;
  JsonArray               *array;

  if (node == NULL)
    return g_strdup ("");
  g_assert_true (JSON_NODE_HOLDS_ARRAY (node));
  array = json_node_get_array (node);
  g_assert_cmpuint (json_array_get_length (array), >, 0);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *element = json_array_get_element (array, i);

      g_assert_true (holds_string (element));
      g_strv_builder_add (builder, json_node_get_string (element));
    }
  groups = g_strv_builder_end (builder);

  return g_strjoinv (",", groups);
}

static char *
token_groups (const char *token)
{
  g_autoptr (JsonObject) claims = jwt_claims (token);

  return claim_groups (claims);
}

/* Cognito's claims in the ID and access tokens of one sign-in for
 * username (sub) through client_id, minted between not_before and
 * not_after (s): what each must have, what each must not, and what they
 * share. */
static void
assert_token_claims (CgFixture      *f,
                     const FlTokens *tokens,
                     const char     *client_id,
                     const char     *username,
                     const char     *sub,
                     gint64          not_before,
                     gint64          not_after)
{
  g_autoptr (JsonObject) id_header = jwt_part (tokens->id_token, 0);
  g_autoptr (JsonObject) access_header = jwt_part (tokens->access_token, 0);
  g_autoptr (JsonObject) id = jwt_claims (tokens->id_token);
  g_autoptr (JsonObject) access = jwt_claims (tokens->access_token);
  g_autofree char       *id_groups = claim_groups (id);
  g_autofree char       *access_groups = claim_groups (access);

  /* RS256, and each token use signed with a key of its own */
  g_assert_cmpstr (string_member (id_header, "alg"), ==, "RS256");
  g_assert_cmpstr (string_member (access_header, "alg"), ==, "RS256");
  g_assert_cmpstr (string_member (id_header, "kid"), !=, string_member (access_header, "kid"));

  /* the ID token */
  g_assert_cmpstr (string_member (id, "sub"), ==, sub);
  g_assert_cmpstr (string_member (id, "aud"), ==, client_id);
  g_assert_cmpstr (string_member (id, "token_use"), ==, "id");
  g_assert_cmpstr (string_member (id, "iss"), ==, f->issuer);
  g_assert_cmpstr (string_member (id, "cognito:username"), ==, username);
  g_assert_cmpint (int_member (id, "iat"), >=, not_before);
  g_assert_cmpint (int_member (id, "iat"), <=, not_after);
  g_assert_cmpint (int_member (id, "exp"), ==, int_member (id, "iat") + TOKEN_LIFETIME);
  g_assert_cmpint (int_member (id, "auth_time"), >, 0);
  g_assert_cmpint (int_member (id, "auth_time"), <=, int_member (id, "iat"));
  g_assert_true (g_uuid_string_is_valid (string_member (id, "jti")));
  g_assert_true (g_uuid_string_is_valid (string_member (id, "origin_jti")));
  g_assert_true (g_uuid_string_is_valid (string_member (id, "event_id")));
  g_assert_false (json_object_has_member (id, "client_id"));
  g_assert_false (json_object_has_member (id, "scope"));
  g_assert_false (json_object_has_member (id, "username"));

  /* the access token */
  g_assert_cmpstr (string_member (access, "sub"), ==, sub);
  g_assert_cmpstr (string_member (access, "client_id"), ==, client_id);
  g_assert_cmpstr (string_member (access, "token_use"), ==, "access");
  g_assert_cmpstr (string_member (access, "scope"), ==, ACCESS_SCOPE);
  g_assert_cmpstr (string_member (access, "iss"), ==, f->issuer);
  g_assert_cmpstr (string_member (access, "username"), ==, username);
  g_assert_cmpint (int_member (access, "iat"), >=, not_before);
  g_assert_cmpint (int_member (access, "iat"), <=, not_after);
  g_assert_cmpint (int_member (access, "exp"), ==, int_member (access, "iat") + TOKEN_LIFETIME);
  g_assert_true (g_uuid_string_is_valid (string_member (access, "jti")));
  g_assert_false (json_object_has_member (access, "aud"));
  g_assert_false (json_object_has_member (access, "cognito:username"));
  g_assert_false (json_object_has_member (access, "email"));

  /* one sign-in: the same origin, event and time; tokens of their own */
  g_assert_cmpint (int_member (access, "auth_time"), ==, int_member (id, "auth_time"));
  g_assert_cmpstr (string_member (access, "origin_jti"), ==, string_member (id, "origin_jti"));
  g_assert_cmpstr (string_member (access, "event_id"), ==, string_member (id, "event_id"));
  g_assert_cmpstr (string_member (access, "jti"), !=, string_member (id, "jti"));
  g_assert_cmpstr (access_groups, ==, id_groups);
}

/* ---- SRP --------------------------------------------------------------- */

/* USER_SRP_AUTH: checks the PASSWORD_VERIFIER challenge and returns its
 * parameters.  secret_hash may be NULL. */
static JsonObject *
srp_challenge (CgFixture  *f,
               const char *client_id,
               const char *username,
               const char *srp_a,
               const char *secret_hash)
{
  g_autoptr (RfReply) reply = initiate_auth (f, client_id, "USER_SRP_AUTH",
                                             "USERNAME", username,
                                             "SRP_A", srp_a,
                                             "SECRET_HASH", secret_hash,
                                             NULL);
  JsonObject         *obj = cg_assert_ok (reply);
  JsonObject         *params;
  g_autofree guchar  *block = NULL;
  gsize               block_len = 0;

  g_assert_cmpstr (string_member (obj, "ChallengeName"), ==, "PASSWORD_VERIFIER");
  g_assert_false (json_object_has_member (obj, "AuthenticationResult"));
  params = object_member (obj, "ChallengeParameters");
  g_assert_true (is_lower_hex (string_member (params, "SALT")));
  g_assert_cmpuint (strlen (string_member (params, "SALT")), <=, 32);
  /* lower-case hex without leading zeros, no longer than N */
  g_assert_true (is_lower_hex (string_member (params, "SRP_B")));
  g_assert_cmpint (string_member (params, "SRP_B")[0], !=, '0');
  g_assert_cmpuint (strlen (string_member (params, "SRP_B")), <=, strlen (srp_n_hex));
  block = g_base64_decode (string_member (params, "SECRET_BLOCK"), &block_len);
  g_assert_cmpuint (block_len, >=, 16);
  g_assert_cmpint (g_ascii_strcasecmp (string_member (params, "USERNAME"), username), ==, 0);
  g_assert_cmpstr (string_member (params, "USER_ID_FOR_SRP"), ==, string_member (params, "USERNAME"));
  g_assert_cmpuint (json_object_get_size (params), ==, 5);

  return json_object_ref (params);
}

/* RespondToAuthChallenge PASSWORD_VERIFIER for params, signed by client
 * with password, with the TIMESTAMP of when.  secret_hash may be NULL. */
static RfReply *
srp_respond (CgFixture   *f,
             const char  *client_id,
             FlSrpClient *client,
             JsonObject  *params,
             const char  *password,
             GDateTime   *when,
             const char  *secret_hash)
{
  g_autofree char   *timestamp = fl_srp_format_timestamp (when);
  g_autofree char   *signature = NULL;
  g_autoptr (GError) error = NULL;

  signature = fl_srp_client_sign (client, f->pool_name, string_member (params, "USER_ID_FOR_SRP"), password,
                                  string_member (params, "SALT"), string_member (params, "SRP_B"),
                                  string_member (params, "SECRET_BLOCK"), timestamp, &error);
  g_assert_no_error (error);
  g_assert_nonnull (signature);

  return respond_to_challenge (f, client_id, "PASSWORD_VERIFIER", NULL,
                               "USERNAME", string_member (params, "USERNAME"),
                               "PASSWORD_CLAIM_SECRET_BLOCK", string_member (params, "SECRET_BLOCK"),
                               "TIMESTAMP", timestamp,
                               "PASSWORD_CLAIM_SIGNATURE", signature,
                               "SECRET_HASH", secret_hash,
                               NULL);
}

/* The whole USER_SRP_AUTH exchange, now; returns the answer to the
 * challenge. */
static RfReply *
srp_sign_in (CgFixture  *f,
             const char *client_id,
             const char *username,
             const char *password,
             const char *secret_hash)
{
  g_autoptr (FlSrpClient) client = fl_srp_client_new ();
  g_autofree char        *a_hex = fl_srp_client_get_public_hex (client);
  g_autoptr (JsonObject)  params = NULL;
  g_autoptr (GDateTime)   now = g_date_time_new_now_utc ();

  g_assert_true (is_lower_hex (a_hex));
  params = srp_challenge (f, client_id, username, a_hex, secret_hash);

  return srp_respond (f, client_id, client, params, password, now, secret_hash);
}

/* An SRP_A that is 0 mod N: refused at InitiateAuth, or with a challenge
 * that not even the right password can answer. */
static void
assert_srp_a_refused (CgFixture  *f,
                      const char *username,
                      const char *a_hex)
{
  g_autoptr (RfReply)     reply = initiate_auth (f, f->client_id, "USER_SRP_AUTH",
                                                 "USERNAME", username, "SRP_A", a_hex, NULL);
  g_autoptr (FlSrpClient) client = NULL;
  g_autoptr (JsonObject)  params = NULL;
  g_autoptr (GDateTime)   now = NULL;
  g_autoptr (RfReply)     answer = NULL;

  if (reply->status != 200)
    {
      cg_assert_error (reply, 400, "NotAuthorizedException", NULL);
      return;
    }

  params = json_object_ref (object_member (cg_assert_ok (reply), "ChallengeParameters"));
  client = fl_srp_client_new ();
  now = g_date_time_new_now_utc ();
  answer = srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL);
  cg_assert_error (answer, 400, "NotAuthorizedException", NOT_AUTHORIZED);
}

/* ---- the other operations --------------------------------------------- */

static RfReply *
get_user (CgFixture  *f,
          const char *access_token)
{
  return cg_call_pairs (f, "GetUser", "AccessToken", access_token, NULL);
}

/* A GetUser that must work: checks Username and returns the
 * UserAttributes as name → value (each name once). */
static GHashTable *
get_user_ok (CgFixture  *f,
             const char *access_token,
             const char *username)
{
  g_autoptr (RfReply) reply = get_user (f, access_token);
  JsonObject         *obj = cg_assert_ok (reply);
  GHashTable         *attributes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  JsonNode           *node = json_object_get_member (obj, "UserAttributes");
  JsonArray          *array;

  g_assert_cmpstr (string_member (obj, "Username"), ==, username);
  g_assert_true (node != NULL && JSON_NODE_HOLDS_ARRAY (node));
  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode   *element = json_array_get_element (array, i);
      JsonObject *attribute;

      g_assert_true (JSON_NODE_HOLDS_OBJECT (element));
      attribute = json_node_get_object (element);
      g_assert_cmpuint (json_object_get_size (attribute), ==, 2);
      g_assert_true (g_hash_table_insert (attributes,
                                          g_strdup (string_member (attribute, "Name")),
                                          g_strdup (string_member (attribute, "Value"))));
    }

  return attributes;
}

/* The relay's REST API with token as the bearer: GET /devices works, or
 * is refused with 401. */
static void
assert_rest_access (CgFixture  *f,
                    const char *token,
                    gboolean    allowed)
{
  g_autoptr (RfReply) reply = rf_get (&f->rf, "/devices", token);

  if (allowed)
    rf_assert_status (reply, 200);
  else
    rf_assert_error (reply, 401, "unauthorized");
}

static RfReply *
resend_code (CgFixture  *f,
             const char *username)
{
  return cg_call_pairs (f, "ResendConfirmationCode", "ClientId", f->client_id, "Username", username, NULL);
}

static RfReply *
forgot_password (CgFixture  *f,
                 const char *username)
{
  return cg_call_pairs (f, "ForgotPassword", "ClientId", f->client_id, "Username", username, NULL);
}

static RfReply *
confirm_forgot_password (CgFixture  *f,
                         const char *username,
                         const char *code,
                         const char *password)
{
  return cg_call_pairs (f, "ConfirmForgotPassword",
                        "ClientId", f->client_id,
                        "Username", username,
                        "ConfirmationCode", code,
                        "Password", password,
                        NULL);
}

static RfReply *
change_password (CgFixture  *f,
                 const char *access_token,
                 const char *previous,
                 const char *proposed)
{
  return cg_call_pairs (f, "ChangePassword",
                        "AccessToken", access_token,
                        "PreviousPassword", previous,
                        "ProposedPassword", proposed,
                        NULL);
}

static RfReply *
global_sign_out (CgFixture  *f,
                 const char *access_token)
{
  return cg_call_pairs (f, "GlobalSignOut", "AccessToken", access_token, NULL);
}

static RfReply *
revoke_token (CgFixture  *f,
              const char *client_id,
              const char *token)
{
  return cg_call_pairs (f, "RevokeToken", "Token", token, "ClientId", client_id, NULL);
}

static RfReply *
new_password (CgFixture  *f,
              const char *session,
              const char *username,
              const char *password)
{
  return respond_to_challenge (f, f->client_id, "NEW_PASSWORD_REQUIRED", session,
                               "USERNAME", username,
                               "NEW_PASSWORD", password,
                               NULL);
}

/* A SignUp body of exactly size bytes: its password fills it out. */
static char *
sized_sign_up_body (const char *client_id,
                    gsize       size)
{
  g_autofree char *head = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"carol\",\"Password\":\"", client_id);
  const char      *tail = "\"}";
  g_autofree char *password = g_strnfill (size - strlen (head) - strlen (tail), 'a');
  char            *body = g_strconcat (head, password, tail, NULL);

  g_assert_cmpuint (strlen (body), ==, size);
  return body;
}

/* ---- tests: sign-up ---------------------------------------------------- */

/* SignUp: an unconfirmed user and a code by email; the first user of a
 * pool administers it, the ones after it view. */
static void
test_sign_up (CgFixture    *f,
              gconstpointer data)
{
  g_autoptr (RfReply)  reply = NULL;
  g_autoptr (FlTokens) alice = NULL;
  g_autoptr (FlTokens) bob = NULL;
  g_autofree char     *alice_sub = NULL;
  g_autofree char     *alice_code = NULL;
  g_autofree char     *bob_sub = NULL;
  g_autofree char     *bob_code = NULL;
  g_autofree char     *alice_groups = NULL;
  g_autofree char     *bob_groups = NULL;
  JsonObject          *obj;

  reply = sign_up (f, f->client_id, "alice", PASSWORD, "alice@example.org");
  obj = cg_assert_ok (reply);
  g_assert_false (bool_member (obj, "UserConfirmed"));
  alice_sub = g_strdup (string_member (obj, "UserSub"));
  g_assert_true (g_uuid_string_is_valid (alice_sub));
  /* the address masked as Cognito masks it */
  assert_delivery (obj, "a***@e***");
  g_assert_cmpuint (json_object_get_size (obj), ==, 3);
  g_clear_pointer (&reply, rf_reply_free);
  alice_code = take_code (f, "alice@example.org", CONFIRMATION_PHRASE);

  /* the name is taken, whatever the address, and no code goes out */
  check_error (sign_up (f, f->client_id, "alice", PASSWORD, "mallory@example.org"),
               400, "UsernameExistsException", "User already exists");
  assert_no_new_mail (f);

  bob_code = sign_up_ok (f, "bob", "bob@example.com", &bob_sub);
  g_assert_cmpstr (bob_sub, !=, alice_sub);
  check_empty (confirm_sign_up (f, "alice", alice_code));
  check_empty (confirm_sign_up (f, "bob", bob_code));

  alice = sign_in (f, "alice", PASSWORD);
  bob = sign_in (f, "bob", PASSWORD);
  alice_groups = token_groups (alice->id_token);
  bob_groups = token_groups (bob->id_token);
  g_assert_cmpstr (alice_groups, ==, "admin");
  g_assert_cmpstr (bob_groups, ==, "viewer");

  /* and the relay's roles follow the groups: only the admin adds devices */
  reply = rf_request_json (&f->rf, "POST", "/devices", bob->access_token,
                           "{\"deviceId\":\"d1\",\"name\":\"D1\",\"type\":\"sensor\"}");
  rf_assert_error (reply, 403, "forbidden");
  g_clear_pointer (&reply, rf_reply_free);
  reply = rf_request_json (&f->rf, "POST", "/devices", alice->access_token,
                           "{\"deviceId\":\"d1\",\"name\":\"D1\",\"type\":\"sensor\"}");
  rf_assert_status (reply, 201);
}

/* What SignUp refuses, with Cognito's error types; none of it makes a
 * user or sends a code. */
static void
test_sign_up_invalid (CgFixture    *f,
                      gconstpointer data)
{
  g_autoptr (FlTokens) tokens = NULL;
  g_autofree char     *valid = NULL;
  g_autofree char     *body = NULL;
  g_autofree char     *code = NULL;
  g_autofree char     *groups = NULL;

  valid = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"carol\",\"Password\":\"%s\","
                           "\"UserAttributes\":[{\"Name\":\"email\",\"Value\":\"carol@example.org\"}]}",
                           f->client_id, PASSWORD);

  /* the pool's rules */
  check_error (sign_up (f, f->client_id, "carol", "weak", "carol@example.org"),
               400, "InvalidPasswordException", "Password did not conform with policy: *Password not long enough*");
  check_error (sign_up (f, f->client_id, "carol", PASSWORD, NULL),
               400, "InvalidParameterException", "*email*");
  check_error (sign_up (f, "nosuchclient", "carol", PASSWORD, "carol@example.org"),
               400, "ResourceNotFoundException", "*nosuchclient*");

  /* a required member missing, or null, which counts as absent */
  check_error (cg_call_pairs (f, "SignUp", "ClientId", f->client_id, "Password", PASSWORD, NULL),
               400, "InvalidParameterException",
               "1 validation error detected: Value null at 'username' failed to satisfy constraint: Member must not be null");
  body = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":null,\"Password\":\"%s\"}", f->client_id, PASSWORD);
  check_error (cg_call (f, "SignUp", body),
               400, "InvalidParameterException", "1 validation error detected: Value null at 'username'*");
  g_clear_pointer (&body, g_free);

  /* members of the wrong type */
  body = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":42,\"Password\":\"%s\"}", f->client_id, PASSWORD);
  check_error (cg_call (f, "SignUp", body), 400, "SerializationException", NULL);
  g_clear_pointer (&body, g_free);
  body = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"carol\",\"Password\":\"%s\","
                          "\"UserAttributes\":{\"Name\":\"email\",\"Value\":\"carol@example.org\"}}",
                          f->client_id, PASSWORD);
  check_error (cg_call (f, "SignUp", body), 400, "SerializationException", NULL);
  g_clear_pointer (&body, g_free);

  /* not JSON, or not an object */
  check_error (cg_call (f, "SignUp", "{\"ClientId\":"), 400, "SerializationException", NULL);
  check_error (cg_call (f, "SignUp", "[]"), 400, "SerializationException", NULL);
  check_error (cg_call (f, "SignUp", ""), 400, "SerializationException", NULL);

  /* operations: unknown, misspelt, missing, under another service */
  check_error (cg_call (f, "AdminCreateUser", valid), 400, "UnknownOperationException", NULL);
  check_error (cg_call (f, "signUp", valid), 400, "UnknownOperationException", NULL);
  check_error (cg_post (f, "X-Amz-Target", NULL, valid), 400, "UnknownOperationException", NULL);
  check_error (cg_post (f, "X-Amz-Target", "AWSCognitoIdentityService.SignUp", valid),
               400, "UnknownOperationException", NULL);

  /* 64 KiB of body is read (and its password refused); a byte more is not */
  body = sized_sign_up_body (f->client_id, MAX_BODY);
  check_error (cg_call (f, "SignUp", body), 400, "InvalidPasswordException", NULL);
  g_clear_pointer (&body, g_free);
  body = sized_sign_up_body (f->client_id, MAX_BODY + 1);
  check_error (cg_call (f, "SignUp", body), 413, "RequestEntityTooLargeException", NULL);
  g_clear_pointer (&body, g_free);

  assert_no_new_mail (f);

  /* none of that made a user: the next one is the first, the admin; a
   * null optional member is as good as none */
  body = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"carol\",\"Password\":\"%s\",\"SecretHash\":null,"
                          "\"UserAttributes\":[{\"Name\":\"email\",\"Value\":\"carol@example.org\"}]}",
                          f->client_id, PASSWORD);
  {
    g_autoptr (RfReply) reply = cg_call (f, "SignUp", body);
    JsonObject         *obj = cg_assert_ok (reply);

    g_assert_false (bool_member (obj, "UserConfirmed"));
  }
  code = take_code (f, "carol@example.org", CONFIRMATION_PHRASE);
  check_empty (confirm_sign_up (f, "carol", code));
  tokens = sign_in (f, "carol", PASSWORD);
  groups = token_groups (tokens->id_token);
  g_assert_cmpstr (groups, ==, "admin");
}

/* ConfirmSignUp and ResendConfirmationCode */
static void
test_confirm (CgFixture    *f,
              gconstpointer data)
{
  g_autofree char     *code = sign_up_ok (f, "alice", "alice@example.org", NULL);
  g_autofree char     *wrong = other_code (code);
  g_autofree char     *bob_code = NULL;
  g_autofree char     *bob_new_code = NULL;
  g_autoptr (FlTokens) tokens = NULL;

  /* the right password, but no sign-in before the confirmation */
  check_error (password_auth (f, "alice", PASSWORD), 400, "UserNotConfirmedException", "User is not confirmed.");

  check_error (confirm_sign_up (f, "alice", wrong),
               400, "CodeMismatchException", "Invalid verification code provided, please try again.");
  check_empty (confirm_sign_up (f, "alice", code));
  /* a code works once */
  check_error (confirm_sign_up (f, "alice", code),
               400, "NotAuthorizedException", "User cannot be confirmed. Current status is CONFIRMED");
  check_error (resend_code (f, "alice"), 400, "InvalidParameterException", NULL);
  check_error (resend_code (f, "nobody"), 400, "UserNotFoundException", NULL);
  check_error (confirm_sign_up (f, "nobody", code), 400, "UserNotFoundException", NULL);
  assert_no_new_mail (f);

  tokens = sign_in (f, "alice", PASSWORD);

  /* a new code replaces the one before */
  bob_code = sign_up_ok (f, "bob", "bob@example.com", NULL);
  {
    g_autoptr (RfReply) reply = resend_code (f, "bob");
    JsonObject         *obj = cg_assert_ok (reply);

    assert_delivery (obj, "b***@e***");
    g_assert_cmpuint (json_object_get_size (obj), ==, 1);
  }
  bob_new_code = take_code (f, "bob@example.com", CONFIRMATION_PHRASE);
  if (!g_str_equal (bob_code, bob_new_code)) /* one time in a million they are the same */
    check_error (confirm_sign_up (f, "bob", bob_code), 400, "CodeMismatchException", NULL);
  check_empty (confirm_sign_up (f, "bob", bob_new_code));
}

/* ---- tests: sign-in ---------------------------------------------------- */

/* USER_PASSWORD_AUTH: the tokens and their claims, and the refusals */
static void
test_password_auth (CgFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (FlTokens)   tokens = NULL;
  g_autoptr (FlTokens)   again = NULL;
  g_autoptr (JsonObject) id = NULL;
  g_autoptr (JsonObject) again_id = NULL;
  g_autofree char       *groups = NULL;
  gint64                 before, after;

  before = now_s ();
  tokens = sign_in (f, "alice", PASSWORD);
  after = now_s ();
  assert_token_claims (f, tokens, f->client_id, "alice", sub, before, after);

  id = jwt_claims (tokens->id_token);
  /* a sign-in of now, for alice's confirmed address */
  g_assert_cmpint (int_member (id, "auth_time"), >=, before);
  g_assert_cmpint (int_member (id, "auth_time"), <=, after);
  g_assert_cmpstr (string_member (id, "email"), ==, "alice@example.org");
  g_assert_true (bool_member (id, "email_verified"));
  groups = claim_groups (id);
  g_assert_cmpstr (groups, ==, "admin");

  /* both tokens are bearer tokens of the relay's own API */
  assert_rest_access (f, tokens->access_token, TRUE);
  assert_rest_access (f, tokens->id_token, TRUE);

  /* another sign-in is another origin, with its own refresh token */
  again = sign_in (f, "alice", PASSWORD);
  again_id = jwt_claims (again->id_token);
  g_assert_cmpstr (string_member (again_id, "origin_jti"), !=, string_member (id, "origin_jti"));
  g_assert_cmpstr (string_member (again_id, "event_id"), !=, string_member (id, "event_id"));
  g_assert_cmpstr (again->refresh_token, !=, tokens->refresh_token);

  /* a wrong password and an unknown user look alike */
  check_error (password_auth (f, "alice", WRONG_PASSWORD), 400, "NotAuthorizedException", NOT_AUTHORIZED);
  check_error (password_auth (f, "nobody", PASSWORD), 400, "NotAuthorizedException", NOT_AUTHORIZED);

  /* what the flow needs */
  check_error (initiate_auth (f, f->client_id, "USER_PASSWORD_AUTH", "USERNAME", "alice", NULL),
               400, "InvalidParameterException", "*PASSWORD*");
  check_error (initiate_auth (f, f->client_id, "CUSTOM_AUTH", "USERNAME", "alice", NULL),
               400, "InvalidParameterException", "1 validation error detected: Value 'CUSTOM_AUTH' at 'authFlow'*");
  check_error (initiate_auth (f, "nosuchclient", "USER_PASSWORD_AUTH", "USERNAME", "alice", "PASSWORD", PASSWORD, NULL),
               400, "ResourceNotFoundException", NULL);
}

/* USER_SRP_AUTH with the core's SRP client, PASSWORD_VERIFIER answered */
static void
test_srp (CgFixture    *f,
          gconstpointer data)
{
  g_autofree char        *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (FlSrpClient) client = fl_srp_client_new ();
  g_autofree char        *a_hex = fl_srp_client_get_public_hex (client);
  g_autoptr (GDateTime)   now = g_date_time_new_now_utc ();
  g_autoptr (JsonObject)  params = NULL;
  g_autoptr (RfReply)     reply = NULL;
  g_autoptr (FlTokens)    tokens = NULL;
  g_autoptr (FlTokens)    upper = NULL;
  g_autoptr (GHashTable)  attributes = NULL;
  g_autoptr (JsonObject)  upper_id = NULL;
  gint64                  before, after;

  g_assert_true (is_lower_hex (a_hex));
  before = now_s ();
  params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);
  g_assert_cmpstr (string_member (params, "USERNAME"), ==, "alice");
  reply = srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL);
  after = now_s ();
  tokens = assert_tokens (reply, TRUE);
  assert_token_claims (f, tokens, f->client_id, "alice", sub, before, after);

  attributes = get_user_ok (f, tokens->access_token, "alice");
  g_assert_cmpstr (g_hash_table_lookup (attributes, "sub"), ==, sub);
  assert_rest_access (f, tokens->access_token, TRUE);
  g_clear_pointer (&reply, rf_reply_free);

  /* the name in another case: the challenge names the user as stored,
   * and the client signs for USER_ID_FOR_SRP */
  reply = srp_sign_in (f, f->client_id, "ALICE", PASSWORD, NULL);
  upper = assert_tokens (reply, TRUE);
  upper_id = jwt_claims (upper->id_token);
  g_assert_cmpstr (string_member (upper_id, "cognito:username"), ==, "alice");
  g_assert_cmpstr (string_member (upper_id, "sub"), ==, sub);
}

/* What PASSWORD_VERIFIER refuses: all NotAuthorizedException */
static void
test_srp_refusals (CgFixture    *f,
                   gconstpointer data)
{
  g_autofree char        *alice_sub = add_user (f, "alice", "alice@example.org");
  g_autofree char        *bob_sub = add_user (f, "bob", "bob@example.com");
  g_autoptr (FlSrpClient) client = fl_srp_client_new ();
  g_autofree char        *a_hex = fl_srp_client_get_public_hex (client);
  g_autoptr (GDateTime)   now = g_date_time_new_now_utc ();
  g_autoptr (GDateTime)   stale = g_date_time_add_minutes (now, -10);
  g_autoptr (GDateTime)   ahead = g_date_time_add_minutes (now, 10);

  /* an answer works once: the same RespondToAuthChallenge again fails */
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);
    g_autoptr (RfReply)    first = srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL);
    g_autoptr (RfReply)    replay = srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL);
    g_autoptr (FlTokens)   tokens = assert_tokens (first, TRUE);

    cg_assert_error (replay, 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }

  /* the wrong password */
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);

    check_error (srp_respond (f, f->client_id, client, params, WRONG_PASSWORD, now, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }

  /* a TIMESTAMP ten minutes old, or ten minutes ahead */
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);

    check_error (srp_respond (f, f->client_id, client, params, PASSWORD, stale, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);

    check_error (srp_respond (f, f->client_id, client, params, PASSWORD, ahead, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }

  /* alice's challenge answered as bob, and a SECRET_BLOCK never issued */
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);

    json_object_set_string_member (params, "USERNAME", "bob");
    check_error (srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "alice", a_hex, NULL);
    guint8                 raw[96] = { 0 };
    g_autofree char       *forged = NULL;

    for (guint i = 0; i < sizeof raw; i++)
      raw[i] = (guint8) g_random_int_range (0, 256);
    forged = g_base64_encode (raw, sizeof raw);
    json_object_set_string_member (params, "SECRET_BLOCK", forged);
    check_error (srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }

  /* an A that is 0 mod N makes the shared secret known to anyone */
  assert_srp_a_refused (f, "bob", "0");
  assert_srp_a_refused (f, "bob", srp_n_hex);
  check_error (initiate_auth (f, f->client_id, "USER_SRP_AUTH", "USERNAME", "bob", "SRP_A", "not-hex", NULL),
               400, "NotAuthorizedException", NULL);

  /* an unknown user gets a challenge like anyone's, which nothing answers */
  {
    g_autoptr (JsonObject) params = srp_challenge (f, f->client_id, "nobody", a_hex, NULL);

    g_assert_cmpstr (string_member (params, "USERNAME"), ==, "nobody");
    check_error (srp_respond (f, f->client_id, client, params, PASSWORD, now, NULL),
                 400, "NotAuthorizedException", NOT_AUTHORIZED);
  }

  /* after all that, both still sign in */
  {
    g_autoptr (RfReply)  reply = srp_sign_in (f, f->client_id, "alice", PASSWORD, NULL);
    g_autoptr (FlTokens) tokens = assert_tokens (reply, TRUE);
  }
  {
    g_autoptr (RfReply)  reply = srp_sign_in (f, f->client_id, "bob", PASSWORD, NULL);
    g_autoptr (FlTokens) tokens = assert_tokens (reply, TRUE);
  }
}

/* An unknown user's challenge must not give away that the user does not
 * exist: a known user's SALT is the same in every challenge, so an
 * unknown user's must be too. */
static void
test_srp_unknown_user (CgFixture    *f,
                       gconstpointer data)
{
  g_autofree char        *sub = NULL;
  g_autoptr (FlSrpClient) client = fl_srp_client_new ();
  g_autofree char        *a_hex = fl_srp_client_get_public_hex (client);
  g_autoptr (JsonObject)  known = NULL;
  g_autoptr (JsonObject)  known_again = NULL;
  g_autoptr (JsonObject)  unknown = NULL;
  g_autoptr (JsonObject)  unknown_again = NULL;

  /* An unknown user's challenge must not give it away: its SALT is as
   * stable as a real user's (same name, any case). */

  sub = add_user (f, "alice", "alice@example.org");
  known = srp_challenge (f, f->client_id, "alice", a_hex, NULL);
  known_again = srp_challenge (f, f->client_id, "alice", a_hex, NULL);
  g_assert_cmpstr (string_member (known, "SALT"), ==, string_member (known_again, "SALT"));

  unknown = srp_challenge (f, f->client_id, "nobody", a_hex, NULL);
  unknown_again = srp_challenge (f, f->client_id, "nobody", a_hex, NULL);
  g_assert_cmpuint (strlen (string_member (unknown, "SALT")), ==, strlen (string_member (known, "SALT")));
  g_assert_cmpstr (string_member (unknown, "SALT"), ==, string_member (unknown_again, "SALT"));
  /* and the user's name in another case is the same name */
  {
    g_autoptr (JsonObject) upper = srp_challenge (f, f->client_id, "NOBODY", a_hex, NULL);

    g_assert_cmpstr (string_member (upper, "SALT"), ==, string_member (unknown, "SALT"));
  }
}

/* REFRESH_TOKEN_AUTH and its alias REFRESH_TOKEN */
static void
test_refresh (CgFixture    *f,
              gconstpointer data)
{
  static const char *const flows[] = { "REFRESH_TOKEN_AUTH", "REFRESH_TOKEN" };
  g_autofree char         *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (FlTokens)     tokens = sign_in (f, "alice", PASSWORD);
  g_autoptr (JsonObject)   first = jwt_claims (tokens->id_token);
  g_autoptr (GError)       error = NULL;
  g_autofree char         *other_id = NULL;
  g_autofree char         *other_secret = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (flows); i++)
    {
      g_autoptr (RfReply)    reply = NULL;
      g_autoptr (FlTokens)   fresh = NULL;
      g_autoptr (JsonObject) id = NULL;
      g_autoptr (GHashTable) attributes = NULL;
      gint64                 before, after;

      g_test_message ("AuthFlow %s", flows[i]);
      before = now_s ();
      reply = refresh (f, f->client_id, flows[i], tokens->refresh_token);
      after = now_s ();
      fresh = assert_tokens (reply, FALSE);
      assert_token_claims (f, fresh, f->client_id, "alice", sub, before, after);

      /* new tokens of the same sign-in */
      id = jwt_claims (fresh->id_token);
      g_assert_cmpstr (string_member (id, "origin_jti"), ==, string_member (first, "origin_jti"));
      g_assert_cmpstr (string_member (id, "event_id"), ==, string_member (first, "event_id"));
      g_assert_cmpint (int_member (id, "auth_time"), ==, int_member (first, "auth_time"));
      g_assert_cmpstr (string_member (id, "jti"), !=, string_member (first, "jti"));
      g_assert_cmpstr (fresh->access_token, !=, tokens->access_token);

      attributes = get_user_ok (f, fresh->access_token, "alice");
      g_assert_cmpstr (g_hash_table_lookup (attributes, "sub"), ==, sub);
    }

  /* garbage, a well-formed token never issued, another client's token */
  check_error (refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", "garbage"),
               400, "NotAuthorizedException", "Invalid Refresh Token");
  check_error (refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
               400, "NotAuthorizedException", "Invalid Refresh Token");
  g_assert_true (fl_user_pool_add_client (f->pool, "other", FALSE, FL_AUTH_FLOWS_ALL, &other_id, &other_secret, &error));
  g_assert_no_error (error);
  check_error (refresh (f, other_id, "REFRESH_TOKEN_AUTH", tokens->refresh_token),
               400, "NotAuthorizedException", NULL);

  /* no AuthParameters at all */
  check_error (cg_call_pairs (f, "InitiateAuth", "AuthFlow", "REFRESH_TOKEN_AUTH", "ClientId", f->client_id, NULL),
               400, "InvalidParameterException", "*REFRESH_TOKEN*");
}

/* ---- tests: the signed-in user ----------------------------------------- */

/* GetUser takes an access token, not an ID token */
static void
test_get_user (CgFixture    *f,
               gconstpointer data)
{
  g_autofree char       *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (FlTokens)   tokens = sign_in (f, "alice", PASSWORD);
  g_autoptr (GHashTable) attributes = get_user_ok (f, tokens->access_token, "alice");

  g_assert_cmpuint (g_hash_table_size (attributes), ==, 3);
  g_assert_cmpstr (g_hash_table_lookup (attributes, "sub"), ==, sub);
  g_assert_cmpstr (g_hash_table_lookup (attributes, "email"), ==, "alice@example.org");
  g_assert_cmpstr (g_hash_table_lookup (attributes, "email_verified"), ==, "true");

  check_error (get_user (f, tokens->id_token), 400, "NotAuthorizedException", "Invalid Access Token");
  check_error (get_user (f, "garbage"), 400, "NotAuthorizedException", NULL);
  check_error (cg_call (f, "GetUser", "{}"),
               400, "InvalidParameterException", "1 validation error detected: Value null at 'accessToken'*");
}

/* GlobalSignOut ends every sign-in of the user's, everywhere */
static void
test_global_sign_out (CgFixture    *f,
                      gconstpointer data)
{
  g_autofree char       *alice_sub = add_user (f, "alice", "alice@example.org");
  g_autofree char       *bob_sub = add_user (f, "bob", "bob@example.com");
  g_autoptr (FlTokens)   first = sign_in (f, "alice", PASSWORD);
  g_autoptr (FlTokens)   second = sign_in (f, "alice", PASSWORD);
  g_autoptr (FlTokens)   bob = sign_in (f, "bob", PASSWORD);
  g_autoptr (FlTokens)   third = NULL;
  g_autoptr (GHashTable) attributes = NULL;
  g_autoptr (GHashTable) bob_attributes = NULL;

  /* the token works until then, with the relay's API too */
  assert_rest_access (f, first->access_token, TRUE);
  assert_rest_access (f, second->id_token, TRUE);

  check_empty (global_sign_out (f, first->access_token));

  check_error (get_user (f, first->access_token), 400, "NotAuthorizedException", "Access Token has been revoked");
  check_error (get_user (f, second->access_token), 400, "NotAuthorizedException", "Access Token has been revoked");
  assert_rest_access (f, first->access_token, FALSE);
  assert_rest_access (f, first->id_token, FALSE);
  assert_rest_access (f, second->access_token, FALSE);
  assert_rest_access (f, second->id_token, FALSE);
  check_error (refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", first->refresh_token),
               400, "NotAuthorizedException", "Refresh Token has been revoked");
  check_error (refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", second->refresh_token),
               400, "NotAuthorizedException", "Refresh Token has been revoked");
  check_error (global_sign_out (f, first->access_token), 400, "NotAuthorizedException", NULL);

  /* bob is still signed in, and alice can sign in again */
  bob_attributes = get_user_ok (f, bob->access_token, "bob");
  assert_rest_access (f, bob->access_token, TRUE);
  third = sign_in (f, "alice", PASSWORD);
  attributes = get_user_ok (f, third->access_token, "alice");
  assert_rest_access (f, third->access_token, TRUE);
}

/* RevokeToken ends the one sign-in its refresh token came from */
static void
test_revoke_token (CgFixture    *f,
                   gconstpointer data)
{
  g_autofree char       *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (FlTokens)   kept = sign_in (f, "alice", PASSWORD);
  g_autoptr (FlTokens)   revoked = sign_in (f, "alice", PASSWORD);
  g_autoptr (GHashTable) attributes = NULL;

  /* the relay has seen (and cached) both before */
  assert_rest_access (f, revoked->access_token, TRUE);
  assert_rest_access (f, revoked->id_token, TRUE);
  assert_rest_access (f, kept->access_token, TRUE);

  check_empty (revoke_token (f, f->client_id, revoked->refresh_token));

  check_error (get_user (f, revoked->access_token), 400, "NotAuthorizedException", "Access Token has been revoked");
  assert_rest_access (f, revoked->access_token, FALSE);
  assert_rest_access (f, revoked->id_token, FALSE);
  check_error (refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", revoked->refresh_token),
               400, "NotAuthorizedException", "Refresh Token has been revoked");

  /* the other sign-in goes on */
  attributes = get_user_ok (f, kept->access_token, "alice");
  assert_rest_access (f, kept->access_token, TRUE);
  {
    g_autoptr (RfReply)  reply = refresh (f, f->client_id, "REFRESH_TOKEN_AUTH", kept->refresh_token);
    g_autoptr (FlTokens) fresh = assert_tokens (reply, FALSE);
  }

  /* revoking again is no error; an access token is no refresh token; the
   * client must exist */
  check_empty (revoke_token (f, f->client_id, revoked->refresh_token));
  check_error (revoke_token (f, f->client_id, kept->access_token), 400, "UnsupportedTokenTypeException", NULL);
  check_error (revoke_token (f, "nosuchclient", kept->refresh_token), 400, "ResourceNotFoundException", NULL);
  assert_rest_access (f, kept->access_token, TRUE);
}

/* ForgotPassword, ConfirmForgotPassword and ChangePassword */
static void
test_passwords (CgFixture    *f,
                gconstpointer data)
{
  g_autofree char     *sub = add_user (f, "alice", "alice@example.org");
  g_autofree char     *code = NULL;
  g_autofree char     *wrong = NULL;
  g_autoptr (FlTokens) tokens = NULL;
  g_autoptr (FlTokens) changed = NULL;

  {
    g_autoptr (RfReply) reply = forgot_password (f, "alice");
    JsonObject         *obj = cg_assert_ok (reply);

    assert_delivery (obj, "a***@e***");
    g_assert_cmpuint (json_object_get_size (obj), ==, 1);
  }
  code = take_code (f, "alice@example.org", RESET_PHRASE);
  wrong = other_code (code);

  check_error (confirm_forgot_password (f, "alice", wrong, NEW_PASSWORD), 400, "CodeMismatchException", NULL);
  check_error (confirm_forgot_password (f, "alice", code, "weak"), 400, "InvalidPasswordException", NULL);
  check_empty (confirm_forgot_password (f, "alice", code, NEW_PASSWORD));

  /* the new password signs in, the old one not */
  tokens = sign_in (f, "alice", NEW_PASSWORD);
  check_error (password_auth (f, "alice", PASSWORD), 400, "NotAuthorizedException", NOT_AUTHORIZED);
  /* a reset code works once; an unknown user gets none */
  check_error (confirm_forgot_password (f, "alice", code, THIRD_PASSWORD), 400, "ExpiredCodeException", NULL);
  check_error (forgot_password (f, "nobody"), 400, "UserNotFoundException", NULL);
  assert_no_new_mail (f);

  check_error (change_password (f, tokens->access_token, WRONG_PASSWORD, THIRD_PASSWORD),
               400, "NotAuthorizedException", NOT_AUTHORIZED);
  check_error (change_password (f, tokens->access_token, NEW_PASSWORD, "weak"), 400, "InvalidPasswordException", NULL);
  check_error (change_password (f, tokens->id_token, NEW_PASSWORD, THIRD_PASSWORD), 400, "NotAuthorizedException", NULL);
  check_empty (change_password (f, tokens->access_token, NEW_PASSWORD, THIRD_PASSWORD));

  changed = sign_in (f, "alice", THIRD_PASSWORD);
  check_error (password_auth (f, "alice", NEW_PASSWORD), 400, "NotAuthorizedException", NOT_AUTHORIZED);
  /* SRP follows the password too */
  {
    g_autoptr (RfReply)  reply = srp_sign_in (f, f->client_id, "alice", THIRD_PASSWORD, NULL);
    g_autoptr (FlTokens) srp = assert_tokens (reply, TRUE);
  }
  check_error (srp_sign_in (f, f->client_id, "alice", NEW_PASSWORD, NULL), 400, "NotAuthorizedException", NOT_AUTHORIZED);
}

/* A user made with a temporary password chooses a new one at the first
 * sign-in */
static void
test_new_password_required (CgFixture    *f,
                            gconstpointer data)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (RfReply)    reply = NULL;
  g_autoptr (FlTokens)   tokens = NULL;
  g_autoptr (FlTokens)   later = NULL;
  g_autoptr (JsonObject) id = NULL;
  g_autoptr (GHashTable) attributes = NULL;
  g_autofree char       *session = NULL;
  g_autofree char       *groups = NULL;
  JsonObject            *obj, *params;
  gint64                 before, after;

  g_assert_true (fl_user_pool_create_user (f->pool, "frank", "frank@example.org", TEMPORARY_PASSWORD,
                                           TRUE, FL_ROLE_OPERATOR, &error));
  g_assert_no_error (error);

  reply = password_auth (f, "frank", TEMPORARY_PASSWORD);
  obj = cg_assert_ok (reply);
  g_assert_cmpstr (string_member (obj, "ChallengeName"), ==, "NEW_PASSWORD_REQUIRED");
  g_assert_false (json_object_has_member (obj, "AuthenticationResult"));
  session = g_strdup (string_member (obj, "Session"));
  g_assert_cmpuint (strlen (session), >=, 32);
  params = object_member (obj, "ChallengeParameters");
  g_assert_cmpstr (string_member (params, "USER_ID_FOR_SRP"), ==, "frank");
  g_assert_cmpstr (string_member (params, "requiredAttributes"), ==, "[]");
  g_assert_nonnull (strstr (string_member (params, "userAttributes"), "frank@example.org"));
  g_clear_pointer (&reply, rf_reply_free);

  /* SRP with the temporary password ends in the same challenge */
  reply = srp_sign_in (f, f->client_id, "frank", TEMPORARY_PASSWORD, NULL);
  obj = cg_assert_ok (reply);
  g_assert_cmpstr (string_member (obj, "ChallengeName"), ==, "NEW_PASSWORD_REQUIRED");
  g_assert_cmpstr (string_member (obj, "Session"), !=, session);
  g_clear_pointer (&reply, rf_reply_free);

  /* a bogus session, none, a password against the policy */
  check_error (new_password (f, "bogus-session", "frank", NEW_PASSWORD),
               400, "NotAuthorizedException", "Invalid session for the user, session is expired.");
  check_error (new_password (f, NULL, "frank", NEW_PASSWORD), 400, "InvalidParameterException", "*Session*");
  check_error (new_password (f, session, "frank", "weak"), 400, "InvalidPasswordException", NULL);

  before = now_s ();
  reply = new_password (f, session, "frank", NEW_PASSWORD);
  after = now_s ();
  tokens = assert_tokens (reply, TRUE);
  attributes = get_user_ok (f, tokens->access_token, "frank");
  assert_token_claims (f, tokens, f->client_id, "frank", g_hash_table_lookup (attributes, "sub"), before, after);
  id = jwt_claims (tokens->id_token);
  groups = claim_groups (id);
  g_assert_cmpstr (groups, ==, "operator");
  /* an address nobody has confirmed */
  g_assert_false (bool_member (id, "email_verified"));
  g_assert_cmpstr (g_hash_table_lookup (attributes, "email_verified"), ==, "false");

  /* the session is spent; from now on the new password signs in at once */
  check_error (new_password (f, session, "frank", THIRD_PASSWORD), 400, "NotAuthorizedException", NULL);
  later = sign_in (f, "frank", NEW_PASSWORD);
  check_error (password_auth (f, "frank", TEMPORARY_PASSWORD), 400, "NotAuthorizedException", NOT_AUTHORIZED);
}

/* ---- tests: app clients ------------------------------------------------ */

/* A client with a secret wants SECRET_HASH; a client without a flow
 * refuses it */
static void
test_app_clients (CgFixture    *f,
                  gconstpointer data)
{
  g_autofree char     *sub = add_user (f, "alice", "alice@example.org");
  g_autoptr (GError)   error = NULL;
  g_autofree char     *id = NULL;
  g_autofree char     *secret = NULL;
  g_autofree char     *srp_id = NULL;
  g_autofree char     *srp_secret = NULL;
  g_autofree char     *good = NULL;
  g_autofree char     *bad = NULL;
  g_autofree char     *unable = NULL;
  g_autoptr (FlTokens) tokens = NULL;
  gint64               before, after;

  g_assert_true (fl_user_pool_add_client (f->pool, "secret-client", TRUE, FL_AUTH_FLOWS_ALL, &id, &secret, &error));
  g_assert_no_error (error);
  g_assert_nonnull (secret);
  g_assert_cmpstr (id, !=, f->client_id);
  good = secret_hash (secret, "alice", id);
  bad = secret_hash (secret, "bob", id);
  unable = g_strdup_printf ("Unable to verify secret hash for client %s", id);

  check_error (initiate_auth (f, id, "USER_PASSWORD_AUTH", "USERNAME", "alice", "PASSWORD", PASSWORD, NULL),
               400, "NotAuthorizedException", "*SECRET_HASH*");
  check_error (initiate_auth (f, id, "USER_PASSWORD_AUTH", "USERNAME", "alice", "PASSWORD", PASSWORD,
                              "SECRET_HASH", bad, NULL),
               400, "NotAuthorizedException", unable);
  before = now_s ();
  {
    g_autoptr (RfReply) reply = initiate_auth (f, id, "USER_PASSWORD_AUTH", "USERNAME", "alice", "PASSWORD", PASSWORD,
                                               "SECRET_HASH", good, NULL);

    tokens = assert_tokens (reply, TRUE);
  }
  after = now_s ();
  assert_token_claims (f, tokens, id, "alice", sub, before, after);

  /* a refresh, with SECRET_HASH over the token's user */
  check_error (refresh (f, id, "REFRESH_TOKEN_AUTH", tokens->refresh_token), 400, "NotAuthorizedException", NULL);
  {
    g_autoptr (RfReply)  reply = initiate_auth (f, id, "REFRESH_TOKEN_AUTH", "REFRESH_TOKEN", tokens->refresh_token,
                                                "SECRET_HASH", good, NULL);
    g_autoptr (FlTokens) fresh = assert_tokens (reply, FALSE);
  }
  /* SRP, with SECRET_HASH in both steps */
  {
    g_autoptr (RfReply)  reply = srp_sign_in (f, id, "alice", PASSWORD, good);
    g_autoptr (FlTokens) srp = assert_tokens (reply, TRUE);
  }
  /* SignUp, and RevokeToken with the client's secret */
  check_error (sign_up (f, id, "bob", PASSWORD, "bob@example.com"), 400, "NotAuthorizedException", "*SECRET_HASH*");
  assert_no_new_mail (f);
  check_error (revoke_token (f, id, tokens->refresh_token), 400, "NotAuthorizedException", NULL);
  check_empty (cg_call_pairs (f, "RevokeToken", "Token", tokens->refresh_token, "ClientId", id,
                              "ClientSecret", secret, NULL));

  /* a client for SRP only */
  g_assert_true (fl_user_pool_add_client (f->pool, "srp-only", FALSE, FL_AUTH_FLOW_USER_SRP, &srp_id, &srp_secret, &error));
  g_assert_no_error (error);
  g_assert_null (srp_secret);
  check_error (initiate_auth (f, srp_id, "USER_PASSWORD_AUTH", "USERNAME", "alice", "PASSWORD", PASSWORD, NULL),
               400, "InvalidParameterException", "USER_PASSWORD_AUTH flow not enabled for this client");
  {
    g_autoptr (RfReply)    reply = srp_sign_in (f, srp_id, "alice", PASSWORD, NULL);
    g_autoptr (FlTokens)   srp = assert_tokens (reply, TRUE);
    g_autoptr (JsonObject) claims = jwt_claims (srp->id_token);

    g_assert_cmpstr (string_member (claims, "aud"), ==, srp_id);
    check_error (refresh (f, srp_id, "REFRESH_TOKEN_AUTH", srp->refresh_token),
                 400, "InvalidParameterException", "*flow not enabled for this client");
  }
}

/* ---- tests: the relay's own routes, and the protocol's edges ----------- */

/* /auth/register and /auth/confirm: SignUp and ConfirmSignUp in the
 * relay's {"error": {"code", "message"}} format */
static void
test_api_register (CgFixture    *f,
                   gconstpointer data)
{
  g_autoptr (RfReply)  reply = NULL;
  g_autoptr (FlTokens) tokens = NULL;
  g_autofree char     *code = NULL;
  g_autofree char     *wrong = NULL;
  g_autofree char     *body = NULL;
  g_autofree char     *groups = NULL;
  JsonObject          *obj, *details;

#define REGISTER(json) rf_request_json (&f->rf, "POST", "/auth/register", NULL, (json))
#define CONFIRM(json) rf_request_json (&f->rf, "POST", "/auth/confirm", NULL, (json))
#define CHECK_API_ERROR(call, status, code)     \
  G_STMT_START                                  \
  {                                             \
    g_autoptr (RfReply) reply_ = (call);        \
    rf_assert_error (reply_, (status), (code)); \
  }                                             \
  G_STMT_END

  reply = REGISTER ("{\"username\":\"alice\",\"password\":\"" PASSWORD "\",\"email\":\"alice@example.org\"}");
  rf_assert_status (reply, 200);
  /* SignUp's answer, its names in the relay's lower camel case */
  obj = rf_reply_object (reply);
  g_assert_false (bool_member (obj, "userConfirmed"));
  g_assert_true (g_uuid_string_is_valid (string_member (obj, "userSub")));
  details = object_member (obj, "codeDeliveryDetails");
  g_assert_cmpstr (string_member (details, "destination"), ==, "a***@e***");
  g_assert_cmpstr (string_member (details, "deliveryMedium"), ==, "EMAIL");
  g_assert_cmpstr (string_member (details, "attributeName"), ==, "email");
  g_assert_cmpuint (json_object_get_size (obj), ==, 3);
  g_clear_pointer (&reply, rf_reply_free);
  code = take_code (f, "alice@example.org", CONFIRMATION_PHRASE);
  wrong = other_code (code);

  CHECK_API_ERROR (REGISTER ("{\"username\":\"alice\",\"password\":\"" PASSWORD "\",\"email\":\"alice@example.org\"}"),
                   409, "user_exists");
  CHECK_API_ERROR (REGISTER ("{\"username\":\"bob\",\"password\":\"weak\",\"email\":\"bob@example.com\"}"),
                   400, "invalid_password");
  CHECK_API_ERROR (REGISTER ("{\"username\":\"bob\",\"password\":\"" PASSWORD "\"}"), 400, "invalid_parameter");
  CHECK_API_ERROR (REGISTER ("{\"username\":\"bob\",\"email\":\"bob@example.com\"}"), 400, "bad_request");
  CHECK_API_ERROR (REGISTER ("{\"username\":42,\"password\":\"" PASSWORD "\",\"email\":\"bob@example.com\"}"),
                   400, "bad_request");
  CHECK_API_ERROR (REGISTER ("{\"username\":"), 400, "bad_request");
  assert_no_new_mail (f);

  body = g_strdup_printf ("{\"username\":\"alice\",\"code\":\"%s\"}", wrong);
  CHECK_API_ERROR (CONFIRM (body), 400, "code_mismatch");
  g_clear_pointer (&body, g_free);
  CHECK_API_ERROR (CONFIRM ("{\"username\":\"alice\"}"), 400, "bad_request");
  body = g_strdup_printf ("{\"username\":\"nobody\",\"code\":\"%s\"}", code);
  CHECK_API_ERROR (CONFIRM (body), 404, "user_not_found");
  g_clear_pointer (&body, g_free);

  body = g_strdup_printf ("{\"username\":\"alice\",\"code\":\"%s\"}", code);
  reply = CONFIRM (body);
  rf_assert_status (reply, 200);
  g_assert_cmpuint (json_object_get_size (rf_reply_object (reply)), ==, 0);
  g_clear_pointer (&reply, rf_reply_free);
  CHECK_API_ERROR (CONFIRM (body), 401, "not_authorized");

  /* the user is the pool's, for Cognito and for /auth/login alike */
  tokens = sign_in (f, "alice", PASSWORD);
  groups = token_groups (tokens->id_token);
  g_assert_cmpstr (groups, ==, "admin");
  reply = rf_request_json (&f->rf, "POST", "/auth/login", NULL, "{\"username\":\"alice\",\"password\":\"" PASSWORD "\"}");
  rf_assert_status (reply, 200);
  g_assert_nonnull (string_member (rf_reply_object (reply), "idToken"));

#undef REGISTER
#undef CONFIRM
#undef CHECK_API_ERROR
}

/* Header names are case-insensitive; operation names are not */
static void
test_header_case (CgFixture    *f,
                  gconstpointer data)
{
  g_autofree char     *body = NULL;
  g_autofree char     *code = NULL;
  g_autofree char     *confirm = NULL;
  g_autoptr (FlTokens) tokens = NULL;

  body = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"alice\",\"Password\":\"%s\","
                          "\"UserAttributes\":[{\"Name\":\"email\",\"Value\":\"alice@example.org\"}]}",
                          f->client_id, PASSWORD);
  {
    g_autoptr (RfReply) reply = cg_post (f, "x-amz-target", TARGET_PREFIX "SignUp", body);
    JsonObject         *obj = cg_assert_ok (reply);

    g_assert_false (bool_member (obj, "UserConfirmed"));
  }
  code = take_code (f, "alice@example.org", CONFIRMATION_PHRASE);

  confirm = g_strdup_printf ("{\"ClientId\":\"%s\",\"Username\":\"alice\",\"ConfirmationCode\":\"%s\"}",
                             f->client_id, code);
  check_error (cg_post (f, "x-amz-target", TARGET_PREFIX "confirmSignUp", confirm),
               400, "UnknownOperationException", NULL);
  check_empty (cg_post (f, "X-AMZ-TARGET", TARGET_PREFIX "ConfirmSignUp", confirm));
  tokens = sign_in (f, "alice", PASSWORD);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/fieldline/cognito/" path, CgFixture, NULL, cg_set_up, func, cg_tear_down)

  ADD ("sign-up", test_sign_up);
  ADD ("sign-up/invalid", test_sign_up_invalid);
  ADD ("sign-up/confirm", test_confirm);
  ADD ("sign-in/password", test_password_auth);
  ADD ("sign-in/srp", test_srp);
  ADD ("sign-in/srp-refusals", test_srp_refusals);
  ADD ("sign-in/srp-unknown-user", test_srp_unknown_user);
  ADD ("sign-in/refresh", test_refresh);
  ADD ("sign-in/new-password-required", test_new_password_required);
  ADD ("user/get", test_get_user);
  ADD ("user/global-sign-out", test_global_sign_out);
  ADD ("user/revoke-token", test_revoke_token);
  ADD ("user/passwords", test_passwords);
  ADD ("clients", test_app_clients);
  ADD ("api/register", test_api_register);
  ADD ("protocol/header-case", test_header_case);

#undef ADD

  return g_test_run ();
}
