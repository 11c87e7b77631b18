/* fl-cognito-client.c: sign-in, sign-up and password reset over the
 * Cognito Identity Provider protocol (AWS JSON 1.1 over HTTP POST).
 *
 * One POST per operation, through call_async(): it writes the body, sends
 * it, reads at most MAX_ANSWER bytes of answer and turns everything that
 * is not a 2xx JSON object into a GError in FL_COGNITO_ERROR.  Everything
 * read from the server is checked (type, length, characters) before use.
 *
 * Only InitiateAuth for USER_SRP_AUTH and REFRESH_TOKEN_AUTH are marked
 * SOUP_MESSAGE_IDEMPOTENT, which lets libsoup send them on a kept-alive
 * connection: a repeat of them changes nothing on the server (a new SRP
 * challenge, new ID and access tokens; no failed attempt is counted).
 * libsoup 3.2 never sends a POST twice by itself, so if such a connection
 * turns out to be closed, call_sent_cb() sends them once more on a new
 * one.  Every other operation is not safe to repeat (the server answers
 * an SRP challenge or a code once, counts a wrong password, SignUp and
 * ForgotPassword send mail, GlobalSignOut revokes the very token it
 * carries), so libsoup sends each on a connection of its own, and only
 * once.
 */
#define G_LOG_DOMAIN "fl-cognito-client"

#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "fl-cognito-client.h"
#include "fl-srp.h"

#define TARGET_PREFIX "AWSCognitoIdentityProviderService."
#define AMZ_JSON "application/x-amz-json-1.1"

#define TIMEOUT_S 30      /* connecting, and any wait for the server */
#define IDLE_TIMEOUT_S 60 /* kept-alive connections */

/* Bounds on what the server sends */
#define MAX_ANSWER (256 * 1024)
#define READ_CHUNK (16 * 1024)
#define MAX_TOKEN_LEN (16 * 1024) /* JWTs, refresh tokens, sessions */
#define MAX_NAME_LEN 512          /* user names, destinations */
#define MAX_HEX_LEN 2048          /* SALT, SRP_B (3072 bits: 768 digits) */
#define MAX_TYPE_LEN 128          /* __type */
#define MAX_MESSAGE_CHARS 512
#define MAX_CHALLENGE_NAME_LEN 64
#define MAX_EXPIRES_IN (G_GINT64_CONSTANT (10) * 366 * 24 * 3600)

/* ---- errors -------------------------------------------------------------- */

typedef struct
{
  char *type_name;
} FlCognitoErrorPrivate;

static void
fl_cognito_error_private_init (FlCognitoErrorPrivate *priv)
{
}

static void
fl_cognito_error_private_copy (const FlCognitoErrorPrivate *src,
                               FlCognitoErrorPrivate       *dest)
{
  dest->type_name = g_strdup (src->type_name);
}

static void
fl_cognito_error_private_clear (FlCognitoErrorPrivate *priv)
{
  g_clear_pointer (&priv->type_name, g_free);
}

G_DEFINE_EXTENDED_ERROR (FlCognitoError, fl_cognito_error)

/**
 * fl_cognito_error_get_type_name:
 * @error: a #GError
 *
 * Returns: (nullable) (transfer none): the server's __type, without its
 *   namespace, e.g. "NotAuthorizedException"
 */
const char *
fl_cognito_error_get_type_name (const GError *error)
{
  if (error == NULL || error->domain != FL_COGNITO_ERROR)
    return NULL;
  return fl_cognito_error_get_private (error)->type_name;
}

static GError *G_GNUC_PRINTF (3, 4)
    cognito_error_new (FlCognitoError code,
                       const char    *type_name,
                       const char    *format,
                       ...)
{
  GError *error;
  va_list args;

  va_start (args, format);
  error = g_error_new_valist (FL_COGNITO_ERROR, code, format, args);
  va_end (args);
  fl_cognito_error_get_private (error)->type_name = g_strdup (type_name);

  return error;
}

static const struct
{
  const char    *type_name;
  FlCognitoError code;
} error_types[] = {
  { "NotAuthorizedException", FL_COGNITO_ERROR_NOT_AUTHORIZED },
  { "UserNotConfirmedException", FL_COGNITO_ERROR_USER_NOT_CONFIRMED },
  { "UsernameExistsException", FL_COGNITO_ERROR_USERNAME_EXISTS },
  { "InvalidPasswordException", FL_COGNITO_ERROR_INVALID_PASSWORD },
  { "CodeMismatchException", FL_COGNITO_ERROR_CODE_MISMATCH },
  { "ExpiredCodeException", FL_COGNITO_ERROR_EXPIRED_CODE },
  { "LimitExceededException", FL_COGNITO_ERROR_LIMIT_EXCEEDED },
  { "TooManyRequestsException", FL_COGNITO_ERROR_TOO_MANY_REQUESTS },
  { "TooManyFailedAttemptsException", FL_COGNITO_ERROR_TOO_MANY_REQUESTS },
  { "ThrottlingException", FL_COGNITO_ERROR_TOO_MANY_REQUESTS },
  { "UserNotFoundException", FL_COGNITO_ERROR_USER_NOT_FOUND },
  { "InvalidParameterException", FL_COGNITO_ERROR_INVALID_PARAMETER },
  { "ResourceNotFoundException", FL_COGNITO_ERROR_RESOURCE_NOT_FOUND },
  { "PasswordResetRequiredException", FL_COGNITO_ERROR_PASSWORD_RESET_REQUIRED },
};

static FlCognitoError
error_code_for_type (const char *type_name)
{
  for (guint i = 0; i < G_N_ELEMENTS (error_types); i++)
    if (g_str_equal (type_name, error_types[i].type_name))
      return error_types[i].code;
  return FL_COGNITO_ERROR_OTHER;
}

/* ---- wiping -------------------------------------------------------------- */

static void
wipe_string (char *str)
{
  if (str != NULL)
    explicit_bzero (str, strlen (str));
}

static void
wipe_free (char *str)
{
  wipe_string (str);
  g_free (str);
}

static void
wipe_gstring_free (gpointer data)
{
  GString *str = data;

  explicit_bzero (str->str, str->allocated_len);
  g_string_free (str, TRUE);
}

/* ---- results -------------------------------------------------------------- */

void
fl_cognito_tokens_free (FlCognitoTokens *tokens)
{
  if (tokens == NULL)
    return;

  wipe_free (tokens->id_token);
  wipe_free (tokens->access_token);
  wipe_free (tokens->refresh_token);
  g_free (tokens->username);
  g_free (tokens);
}

/**
 * fl_cognito_tokens_copy:
 *
 * Returns: (transfer full) (nullable): a copy of @tokens
 */
FlCognitoTokens *
fl_cognito_tokens_copy (const FlCognitoTokens *tokens)
{
  FlCognitoTokens *copy;

  if (tokens == NULL)
    return NULL;

  copy = g_new0 (FlCognitoTokens, 1);
  copy->id_token = g_strdup (tokens->id_token);
  copy->access_token = g_strdup (tokens->access_token);
  copy->refresh_token = g_strdup (tokens->refresh_token);
  copy->expires_at = tokens->expires_at;
  copy->username = g_strdup (tokens->username);

  return copy;
}

void
fl_cognito_challenge_free (FlCognitoChallenge *challenge)
{
  if (challenge == NULL)
    return;

  g_free (challenge->name);
  wipe_free (challenge->session);
  g_free (challenge->username);
  g_free (challenge);
}

/* What a sign-in step ends with: tokens or a challenge */
typedef struct
{
  FlCognitoTokens    *tokens;
  FlCognitoChallenge *challenge;
} AuthOutcome;

static void
auth_outcome_free (AuthOutcome *outcome)
{
  g_clear_pointer (&outcome->tokens, fl_cognito_tokens_free);
  g_clear_pointer (&outcome->challenge, fl_cognito_challenge_free);
  g_free (outcome);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AuthOutcome, auth_outcome_free)

/* ---- the object ----------------------------------------------------------- */

struct _FlCognitoClient
{
  GObject parent_instance;

  char        *endpoint;
  char        *user_pool_id;
  char        *client_id;
  char        *client_secret; /* wiped */
  char        *pool_name;     /* user_pool_id after "_"; NULL if it has none */
  GUri        *uri;           /* NULL if endpoint is not an http(s) URL */
  SoupSession *session;
};

G_DEFINE_FINAL_TYPE (FlCognitoClient, fl_cognito_client, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_ENDPOINT,
  PROP_USER_POOL_ID,
  PROP_CLIENT_ID,
  PROP_CLIENT_SECRET,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static GUri *
parse_endpoint (const char *endpoint)
{
  g_autoptr (GUri) uri = NULL;
  const char      *scheme;
  const char      *host;

  if (endpoint == NULL)
    return NULL;
  uri = g_uri_parse (endpoint, SOUP_HTTP_URI_FLAGS, NULL);
  if (uri == NULL)
    return NULL;
  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if (scheme == NULL || (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0) || host == NULL || *host == '\0')
    return NULL;

  return g_steal_pointer (&uri);
}

static void
fl_cognito_client_constructed (GObject *object)
{
  FlCognitoClient *self = FL_COGNITO_CLIENT (object);
  g_autofree char *user_agent = g_strdup_printf ("fieldline/%s", PACKAGE_VERSION);
  const char      *underscore;

  G_OBJECT_CLASS (fl_cognito_client_parent_class)->constructed (object);

  self->uri = parse_endpoint (self->endpoint);
  underscore = self->user_pool_id != NULL ? strchr (self->user_pool_id, '_') : NULL;
  if (underscore != NULL && underscore[1] != '\0')
    self->pool_name = g_strdup (underscore + 1);

  /* "timeout" also bounds connecting; "idle-timeout" closes unused
   * kept-alive connections. */
  self->session = soup_session_new_with_options ("timeout", TIMEOUT_S,
                                                 "idle-timeout", IDLE_TIMEOUT_S,
                                                 "user-agent", user_agent,
                                                 NULL);
}

static void
fl_cognito_client_dispose (GObject *object)
{
  FlCognitoClient *self = FL_COGNITO_CLIENT (object);

  if (self->session != NULL)
    soup_session_abort (self->session);
  g_clear_object (&self->session);

  G_OBJECT_CLASS (fl_cognito_client_parent_class)->dispose (object);
}

static void
fl_cognito_client_finalize (GObject *object)
{
  FlCognitoClient *self = FL_COGNITO_CLIENT (object);

  g_clear_pointer (&self->endpoint, g_free);
  g_clear_pointer (&self->user_pool_id, g_free);
  g_clear_pointer (&self->client_id, g_free);
  g_clear_pointer (&self->client_secret, wipe_free);
  g_clear_pointer (&self->pool_name, g_free);
  g_clear_pointer (&self->uri, g_uri_unref);

  G_OBJECT_CLASS (fl_cognito_client_parent_class)->finalize (object);
}

static void
fl_cognito_client_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  FlCognitoClient *self = FL_COGNITO_CLIENT (object);

  switch (prop_id)
    {
    case PROP_ENDPOINT:
      g_value_set_string (value, self->endpoint);
      break;
    case PROP_USER_POOL_ID:
      g_value_set_string (value, self->user_pool_id);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->client_id);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_cognito_client_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  FlCognitoClient *self = FL_COGNITO_CLIENT (object);

  switch (prop_id)
    {
    case PROP_ENDPOINT:
      self->endpoint = g_value_dup_string (value);
      break;
    case PROP_USER_POOL_ID:
      self->user_pool_id = g_value_dup_string (value);
      break;
    case PROP_CLIENT_ID:
      self->client_id = g_value_dup_string (value);
      break;
    case PROP_CLIENT_SECRET:
      self->client_secret = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_cognito_client_class_init (FlCognitoClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = fl_cognito_client_constructed;
  object_class->dispose = fl_cognito_client_dispose;
  object_class->finalize = fl_cognito_client_finalize;
  object_class->get_property = fl_cognito_client_get_property;
  object_class->set_property = fl_cognito_client_set_property;

  properties[PROP_ENDPOINT] = g_param_spec_string ("endpoint", NULL, NULL, NULL,
                                                   G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_USER_POOL_ID] = g_param_spec_string ("user-pool-id", NULL, NULL, NULL,
                                                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_CLIENT_ID] = g_param_spec_string ("client-id", NULL, NULL, NULL,
                                                    G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* write-only: the secret never leaves the object */
  properties[PROP_CLIENT_SECRET] = g_param_spec_string ("client-secret", NULL, NULL, NULL,
                                                        G_PARAM_WRITABLE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
fl_cognito_client_init (FlCognitoClient *self)
{
}

/**
 * fl_cognito_client_new:
 * @endpoint: the relay's base URL or https://cognito-idp.REGION.amazonaws.com/
 * @user_pool_id: e.g. "eu-west-1_AbC123"
 * @client_id: the app client
 * @client_secret: (nullable): the app client's secret, if it has one
 *
 * Returns: (transfer full): a new client for the thread-default main
 *   context of the caller
 */
FlCognitoClient *
fl_cognito_client_new (const char *endpoint,
                       const char *user_pool_id,
                       const char *client_id,
                       const char *client_secret)
{
  g_return_val_if_fail (endpoint != NULL, NULL);
  g_return_val_if_fail (user_pool_id != NULL, NULL);
  g_return_val_if_fail (client_id != NULL, NULL);

  return g_object_new (FL_TYPE_COGNITO_CLIENT,
                       "endpoint", endpoint,
                       "user-pool-id", user_pool_id,
                       "client-id", client_id,
                       "client-secret", client_secret,
                       NULL);
}

const char *
fl_cognito_client_get_endpoint (FlCognitoClient *self)
{
  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), NULL);
  return self->endpoint;
}

const char *
fl_cognito_client_get_user_pool_id (FlCognitoClient *self)
{
  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), NULL);
  return self->user_pool_id;
}

const char *
fl_cognito_client_get_client_id (FlCognitoClient *self)
{
  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), NULL);
  return self->client_id;
}

/* SECRET_HASH: Base64 (HMAC-SHA256 (secret, username + client id)), or
 * NULL for a client without a secret */
static char *
secret_hash (FlCognitoClient *self,
             const char      *username)
{
  GHmac *hmac;
  guint8 digest[32];
  gsize  digest_len = sizeof digest;
  char  *ret;

  if (self->client_secret == NULL || username == NULL)
    return NULL;

  hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) self->client_secret, strlen (self->client_secret));
  g_hmac_update (hmac, (const guchar *) username, -1);
  g_hmac_update (hmac, (const guchar *) self->client_id, -1);
  g_hmac_get_digest (hmac, digest, &digest_len);
  g_hmac_unref (hmac);

  ret = g_base64_encode (digest, digest_len);
  explicit_bzero (digest, sizeof digest);
  return ret;
}

/* ---- request bodies --------------------------------------------------------
 * Written by hand rather than with json-glib so that the only copy of a
 * password is a buffer that is wiped when libsoup lets go of it: the
 * text is measured first and written into a buffer of exactly that size,
 * so it never moves. */

typedef enum
{
  ITEM_STRING,
  ITEM_OPEN_OBJECT,
  ITEM_OPEN_ARRAY,
  ITEM_CLOSE_OBJECT,
  ITEM_CLOSE_ARRAY,
} ItemKind;

typedef struct
{
  ItemKind    kind;
  const char *name;  /* NULL in an array */
  const char *value; /* ITEM_STRING */
} Item;

typedef struct
{
  Item  items[24];
  guint n_items;
} Body;

static void
body_add (Body       *body,
          ItemKind    kind,
          const char *name,
          const char *value)
{
  g_assert (body->n_items < G_N_ELEMENTS (body->items));
  body->items[body->n_items++] = (Item){ kind, name, value };
}

/* Leaves out a NULL value, as AWS JSON leaves out absent members */
static void
body_string (Body       *body,
             const char *name,
             const char *value)
{
  if (value != NULL)
    body_add (body, ITEM_STRING, name, value);
}

typedef struct
{
  GString *out; /* NULL: only measure */
  gsize    size;
} Writer;

static void
write_raw (Writer     *w,
           const char *text,
           gsize       len)
{
  if (w->out != NULL)
    g_string_append_len (w->out, text, (gssize) len);
  w->size += len;
}

static void
write_json_string (Writer     *w,
                   const char *text)
{
  write_raw (w, "\"", 1);
  for (const char *p = text; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;
      char   escaped[8];

      if (c == '"' || c == '\\')
        {
          escaped[0] = '\\';
          escaped[1] = (char) c;
          write_raw (w, escaped, 2);
        }
      else if (c < 0x20)
        {
          g_snprintf (escaped, sizeof escaped, "\\u%04x", c);
          write_raw (w, escaped, 6);
        }
      else
        write_raw (w, p, 1);
    }
  write_raw (w, "\"", 1);
}

static void
write_body (const Body *body,
            Writer     *w)
{
  gboolean first = TRUE;

  write_raw (w, "{", 1);
  for (guint i = 0; i < body->n_items; i++)
    {
      const Item *item = &body->items[i];

      if (item->kind == ITEM_CLOSE_OBJECT || item->kind == ITEM_CLOSE_ARRAY)
        {
          write_raw (w, item->kind == ITEM_CLOSE_OBJECT ? "}" : "]", 1);
          first = FALSE;
          continue;
        }
      if (!first)
        write_raw (w, ",", 1);
      if (item->name != NULL)
        {
          write_json_string (w, item->name);
          write_raw (w, ":", 1);
        }
      switch (item->kind)
        {
        case ITEM_STRING:
          write_json_string (w, item->value);
          first = FALSE;
          break;
        case ITEM_OPEN_OBJECT:
          write_raw (w, "{", 1);
          first = TRUE;
          break;
        case ITEM_OPEN_ARRAY:
          write_raw (w, "[", 1);
          first = TRUE;
          break;
        case ITEM_CLOSE_OBJECT:
        case ITEM_CLOSE_ARRAY:
        default:
          g_assert_not_reached ();
        }
    }
  write_raw (w, "}", 1);
}

/* NULL (and an INVALID_PARAMETER error) if a string is not UTF-8 */
static GBytes *
body_to_bytes (const Body *body,
               GError    **error)
{
  Writer   measure = { NULL, 0 };
  Writer   w;
  GString *out;

  for (guint i = 0; i < body->n_items; i++)
    {
      const Item *item = &body->items[i];

      if ((item->name != NULL && !g_utf8_validate (item->name, -1, NULL)) || (item->value != NULL && !g_utf8_validate (item->value, -1, NULL)))
        {
          g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_INVALID_PARAMETER,
                       "The value of %s is not valid UTF-8", item->name != NULL ? item->name : "an element");
          return NULL;
        }
    }

  write_body (body, &measure);
  out = g_string_sized_new (measure.size + 1);
  w.out = out;
  w.size = 0;
  write_body (body, &w);
  g_assert (out->len == measure.size);

  return g_bytes_new_with_free_func (out->str, out->len, wipe_gstring_free, out);
}

/* ---- reading answers ------------------------------------------------------- */

typedef enum
{
  TEXT_PLAIN, /* UTF-8 without control characters */
  TEXT_TOKEN, /* printable ASCII without spaces (JWTs, base64, sessions) */
  TEXT_HEX,
} TextKind;

static gboolean
text_is (const char *text,
         TextKind    kind)
{
  switch (kind)
    {
    case TEXT_HEX:
      for (const char *p = text; *p != '\0'; p++)
        if (!g_ascii_isxdigit (*p))
          return FALSE;
      return TRUE;
    case TEXT_TOKEN:
      for (const char *p = text; *p != '\0'; p++)
        if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f)
          return FALSE;
      return TRUE;
    case TEXT_PLAIN:
      if (!g_utf8_validate (text, -1, NULL))
        return FALSE;
      for (const char *p = text; *p != '\0'; p++)
        if ((guchar) *p < 0x20 || (guchar) *p == 0x7f)
          return FALSE;
      return TRUE;
    default:
      return FALSE;
    }
}

/* A string member of an answer: *value is NULL if it is absent or null
 * (as in AWS JSON); FALSE and a PROTOCOL error if it has another type, is
 * empty, longer than max_len or has characters it may not. */
static gboolean
answer_string (JsonObject  *object,
               const char  *name,
               TextKind     kind,
               gsize        max_len,
               const char **value,
               GError     **error)
{
  JsonNode   *node = json_object_get_member (object, name);
  const char *text;

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer's %s is not a string", name);
      return FALSE;
    }
  text = json_node_get_string (node);
  if (*text == '\0' || strlen (text) > max_len || !text_is (text, kind))
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer's %s is empty, too long or malformed", name);
      return FALSE;
    }
  *value = text;
  return TRUE;
}

static gboolean
require_string (JsonObject  *object,
                const char  *name,
                TextKind     kind,
                gsize        max_len,
                const char **value,
                GError     **error)
{
  if (!answer_string (object, name, kind, max_len, value, error))
    return FALSE;
  if (*value == NULL)
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer has no %s", name);
      return FALSE;
    }
  return TRUE;
}

/* An object member: *value NULL if absent or null */
static gboolean
answer_object (JsonObject  *object,
               const char  *name,
               JsonObject **value,
               GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer's %s is not an object", name);
      return FALSE;
    }
  *value = json_node_get_object (node);
  return TRUE;
}

static gboolean
require_object (JsonObject  *object,
                const char  *name,
                JsonObject **value,
                GError     **error)
{
  if (!answer_object (object, name, value, error))
    return FALSE;
  if (*value == NULL)
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer has no %s", name);
      return FALSE;
    }
  return TRUE;
}

static JsonObject *
parse_object (GByteArray *data,
              GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError)     local = NULL;
  JsonNode              *root;

  if (data->len == 0)
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer is empty");
      return NULL;
    }
  if (!json_parser_load_from_data (parser, (const char *) data->data, (gssize) data->len, &local))
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer is not JSON: %s", local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer is not a JSON object");
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

/* A server's message, safe to show: valid UTF-8, one line, not too long */
static char *
clean_message (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  GString         *out = g_string_new (NULL);
  const char      *p = valid;

  for (guint chars = 0; *p != '\0' && chars < MAX_MESSAGE_CHARS; p = g_utf8_next_char (p), chars++)
    {
      gunichar c = g_utf8_get_char (p);

      g_string_append_unichar (out, g_unichar_iscntrl (c) ? ' ' : c);
    }
  if (*p != '\0')
    g_string_append (out, "…");

  return g_strstrip (g_string_free (out, FALSE));
}

static gboolean
is_type_name (const char *text)
{
  gsize len = strlen (text);

  if (len == 0 || len > MAX_TYPE_LEN)
    return FALSE;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_')
      return FALSE;
  return TRUE;
}

/* ---- one operation --------------------------------------------------------- */

typedef struct
{
  char                *operation;
  GBytes              *body;       /* wiped when freed */
  gboolean             idempotent; /* safe to send twice */
  gboolean             resent;
  SoupMessage         *msg;
  GInputStream        *stream;
  GByteArray          *answer;
  GTlsCertificateFlags tls_errors; /* of a certificate we refused */
} Call;

static void
call_free (Call *call)
{
  g_free (call->operation);
  g_clear_pointer (&call->body, g_bytes_unref);
  g_clear_object (&call->msg);
  g_clear_object (&call->stream);
  g_clear_pointer (&call->answer, g_byte_array_unref);
  g_free (call);
}

static char *
describe_certificate_errors (GTlsCertificateFlags flags)
{
  static const struct
  {
    GTlsCertificateFlags flag;
    const char          *text;
  } reasons[] = {
    { G_TLS_CERTIFICATE_UNKNOWN_CA, "it is not signed by a known authority" },
    { G_TLS_CERTIFICATE_BAD_IDENTITY, "it is not for this host" },
    { G_TLS_CERTIFICATE_NOT_ACTIVATED, "it is not valid yet" },
    { G_TLS_CERTIFICATE_EXPIRED, "it has expired" },
    { G_TLS_CERTIFICATE_REVOKED, "it has been revoked" },
    { G_TLS_CERTIFICATE_INSECURE, "it uses an insecure algorithm" },
    { G_TLS_CERTIFICATE_GENERIC_ERROR, "it is not valid" },
  };
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (reasons); i++)
    if (flags & reasons[i].flag)
      {
        if (out->len > 0)
          g_string_append (out, ", ");
        g_string_append (out, reasons[i].text);
      }
  if (out->len == 0)
    g_string_append (out, "it is not valid");

  return g_string_free (out, FALSE);
}

/* The endpoint's host[:port], for messages */
static char *
endpoint_host (FlCognitoClient *self)
{
  int port = g_uri_get_port (self->uri);

  if (port > 0)
    return g_strdup_printf ("%s:%d", g_uri_get_host (self->uri), port);
  return g_strdup (g_uri_get_host (self->uri));
}

/* A failure to get an answer.  Takes error; passes a cancellation on. */
static GError *
transport_error (FlCognitoClient *self,
                 Call            *call,
                 GError          *error)
{
  g_autofree char     *host = endpoint_host (self);
  GTlsCertificateFlags tls_errors = call->tls_errors;
  GError              *ret;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || error->domain == FL_COGNITO_ERROR)
    return error;

  if (tls_errors == 0)
    tls_errors = soup_message_get_tls_peer_certificate_errors (call->msg);

  if (tls_errors != 0 || g_error_matches (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE))
    {
      g_autofree char *reasons = describe_certificate_errors (tls_errors);

      ret = cognito_error_new (FL_COGNITO_ERROR_TLS, NULL,
                               "The certificate of %s is not trusted: %s", host, reasons);
    }
  else if (error->domain == G_TLS_ERROR)
    ret = cognito_error_new (FL_COGNITO_ERROR_TLS, NULL,
                             "A secure connection to %s failed: %s", host, error->message);
  else if (error->domain == SOUP_SESSION_ERROR)
    ret = cognito_error_new (FL_COGNITO_ERROR_PROTOCOL, NULL,
                             "%s did not answer in HTTP: %s", host, error->message);
  else if (error->domain == G_RESOLVER_ERROR)
    ret = cognito_error_new (FL_COGNITO_ERROR_NETWORK, NULL,
                             "Cannot find the host %s: %s", g_uri_get_host (self->uri), error->message);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    ret = cognito_error_new (FL_COGNITO_ERROR_NETWORK, NULL,
                             "%s did not answer within %d seconds", host, TIMEOUT_S);
  else
    ret = cognito_error_new (FL_COGNITO_ERROR_NETWORK, NULL,
                             "Cannot reach %s: %s", host, error->message);

  g_debug ("%s: %s", call->operation, error->message);
  g_error_free (error);
  return ret;
}

/* A non-2xx answer: Cognito's error, or PROTOCOL if it is not one */
static GError *
answer_error (FlCognitoClient *self,
              Call            *call)
{
  SoupMessageHeaders    *headers = soup_message_get_response_headers (call->msg);
  const char            *header = soup_message_headers_get_one (headers, "x-amzn-ErrorType");
  guint                  status = soup_message_get_status (call->msg);
  g_autoptr (JsonObject) object = parse_object (call->answer, NULL);
  g_autofree char       *type_name = NULL;
  g_autofree char       *message = NULL;
  FlCognitoError         code;

  /* "NotAuthorizedException:http://internal.amazon.com/coral/..." */
  if (header != NULL)
    type_name = g_strndup (header, strcspn (header, ":"));
  /* "com.amazonaws.cognito...#NotAuthorizedException" */
  if ((type_name == NULL || *type_name == '\0') && object != NULL)
    {
      JsonNode *node = json_object_get_member (object, "__type");

      g_clear_pointer (&type_name, g_free);
      if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
        {
          const char *text = json_node_get_string (node);
          const char *hash = strrchr (text, '#');

          type_name = g_strdup (hash != NULL ? hash + 1 : text);
        }
    }
  if (type_name != NULL)
    g_strstrip (type_name);

  if (status < 400 || type_name == NULL || !is_type_name (type_name))
    {
      g_autofree char *host = endpoint_host (self);

      return cognito_error_new (FL_COGNITO_ERROR_PROTOCOL, NULL,
                                "%s answered HTTP %u %s, which is not a Cognito answer",
                                host, status, soup_status_get_phrase (status) != NULL ? soup_status_get_phrase (status) : "");
    }

  if (object != NULL)
    {
      static const char *const names[] = { "message", "Message" };

      for (guint i = 0; i < G_N_ELEMENTS (names) && message == NULL; i++)
        {
          JsonNode *node = json_object_get_member (object, names[i]);

          if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
            message = clean_message (json_node_get_string (node));
        }
    }
  if (message != NULL && *message == '\0')
    g_clear_pointer (&message, g_free);

  code = error_code_for_type (type_name);
  g_debug ("%s: HTTP %u %s", call->operation, status, type_name);
  if (code == FL_COGNITO_ERROR_OTHER)
    return cognito_error_new (code, type_name, "%s%s%s", type_name,
                              message != NULL ? ": " : "", message != NULL ? message : "");
  return cognito_error_new (code, type_name, "%s", message != NULL ? message : type_name);
}

static void
call_finished (GTask *task)
{
  FlCognitoClient *self = g_task_get_source_object (task);
  Call            *call = g_task_get_task_data (task);
  guint            status = soup_message_get_status (call->msg);
  GError          *error = NULL;
  JsonObject      *object;

  if (status < 200 || status >= 300)
    {
      g_task_return_error (task, answer_error (self, call));
      return;
    }

  g_debug ("%s: HTTP %u", call->operation, status);
  object = parse_object (call->answer, &error);
  if (object == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, object, (GDestroyNotify) json_object_unref);
}

static void read_more (GTask *task);

static void
call_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  Call              *call = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, &error);
  gsize              len;
  gconstpointer      data;

  if (bytes == NULL)
    {
      g_task_return_error (task, transport_error (g_task_get_source_object (task), call, g_steal_pointer (&error)));
      return;
    }

  data = g_bytes_get_data (bytes, &len);
  if (len == 0)
    {
      call_finished (task);
      return;
    }
  if (len > MAX_ANSWER - call->answer->len)
    {
      g_autofree char *host = endpoint_host (g_task_get_source_object (task));

      /* closing an unfinished body drops the connection */
      g_input_stream_close_async (call->stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                               "%s answered with more than %d bytes, which is not a Cognito answer",
                               host, MAX_ANSWER);
      return;
    }
  g_byte_array_append (call->answer, data, (guint) len);
  read_more (g_steal_pointer (&task));
}

static void
read_more (GTask *task)
{
  Call *call = g_task_get_task_data (task);

  g_input_stream_read_bytes_async (call->stream, READ_CHUNK, G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), call_read_cb, task);
}

/* Whether the connection went away before any answer: what a kept-alive
 * connection that the server has closed meanwhile looks like. */
static gboolean
is_dropped_connection (const GError *error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE) || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED) || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT);
}

static void call_send (GTask *task);

static void
call_sent_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  Call              *call = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;

  call->stream = soup_session_send_finish (SOUP_SESSION (source), result, &error);
  if (call->stream == NULL)
    {
      /* libsoup 3.2 never sends a POST again by itself; an operation that
       * is safe to repeat gets one more try, on a new connection. */
      if (call->idempotent && !call->resent && is_dropped_connection (error))
        {
          g_debug ("%s: %s; sending it again", call->operation, error->message);
          call->resent = TRUE;
          call_send (g_steal_pointer (&task));
          return;
        }
      g_task_return_error (task, transport_error (g_task_get_source_object (task), call, g_steal_pointer (&error)));
      return;
    }
  call->answer = g_byte_array_new ();
  read_more (g_steal_pointer (&task));
}

/* Refuses a certificate the system does not trust (libsoup asks only
 * then), remembering why for the error message. */
static gboolean
accept_certificate_cb (SoupMessage         *msg,
                       GTlsCertificate     *certificate,
                       GTlsCertificateFlags errors,
                       gpointer             user_data)
{
  Call *call = user_data;

  call->tls_errors = errors;
  return FALSE;
}

static void
call_send (GTask *task)
{
  FlCognitoClient *self = g_task_get_source_object (task);
  Call            *call = g_task_get_task_data (task);
  g_autofree char *target = g_strconcat (TARGET_PREFIX, call->operation, NULL);
  SoupMessageFlags flags = SOUP_MESSAGE_NO_REDIRECT;

  if (call->msg != NULL)
    g_signal_handlers_disconnect_by_data (call->msg, call);
  g_clear_object (&call->msg);
  call->tls_errors = 0;

  call->msg = soup_message_new_from_uri (SOUP_METHOD_POST, self->uri);
  soup_message_headers_replace (soup_message_get_request_headers (call->msg), "X-Amz-Target", target);
  soup_message_set_request_body_from_bytes (call->msg, AMZ_JSON, call->body);
  /* Without SOUP_MESSAGE_IDEMPOTENT libsoup sends a POST on a connection
   * of its own; with it, on a kept-alive one. */
  if (call->idempotent && !call->resent)
    flags |= SOUP_MESSAGE_IDEMPOTENT;
  if (call->resent)
    flags |= SOUP_MESSAGE_NEW_CONNECTION;
  soup_message_add_flags (call->msg, flags);
  g_signal_connect (call->msg, "accept-certificate", G_CALLBACK (accept_certificate_cb), call);

  g_debug ("%s: POST %s", call->operation, self->endpoint);
  soup_session_send_async (self->session, call->msg, G_PRIORITY_DEFAULT, g_task_get_cancellable (task),
                           call_sent_cb, task);
}

/* POSTs body as operation; finishes with the answer, a JsonObject, or an
 * error.  idempotent: a repeat of the operation changes nothing on the
 * server. */
static void
call_async (FlCognitoClient    *self,
            const char         *operation,
            const Body         *body,
            gboolean            idempotent,
            GCancellable       *cancellable,
            GAsyncReadyCallback callback,
            gpointer            user_data)
{
  g_autoptr (GTask)  task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GError) error = NULL;
  Call              *call = g_new0 (Call, 1);

  g_task_set_source_tag (task, call_async);
  g_task_set_task_data (task, call, (GDestroyNotify) call_free);
  call->operation = g_strdup (operation);
  call->idempotent = idempotent;

  if (self->uri == NULL)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_INVALID_PARAMETER,
                               "The endpoint “%s” is not an http or https URL", self->endpoint);
      return;
    }
  call->body = body_to_bytes (body, &error);
  if (call->body == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  call_send (g_steal_pointer (&task));
}

static JsonObject *
call_finish (FlCognitoClient *self,
             GAsyncResult    *result,
             GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == call_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- the public operations' tasks ---------------------------------------- */

/* The task of a public _async function (tagged source_tag), finished by
 * done_cb once operation answers. */
static void
start_call (FlCognitoClient    *self,
            gpointer            source_tag,
            const char         *operation,
            const Body         *body,
            GCancellable       *cancellable,
            GAsyncReadyCallback done_cb,
            GAsyncReadyCallback callback,
            gpointer            user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  call_async (self, operation, body, FALSE, cancellable, done_cb, task);
}

static gboolean
boolean_finish (FlCognitoClient *self,
                GAsyncResult    *result,
                gpointer         source_tag,
                GError         **error)
{
  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static gpointer
pointer_finish (FlCognitoClient *self,
                GAsyncResult    *result,
                gpointer         source_tag,
                GError         **error)
{
  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- answers of the sign-in operations ------------------------------------- */

static FlCognitoTokens *
tokens_from_answer (JsonObject *answer,
                    const char *username,
                    const char *refresh_token,
                    GError    **error)
{
  g_autoptr (FlCognitoTokens) tokens = NULL;
  JsonObject                 *result;
  JsonNode                   *expires_node;
  const char                 *id_token, *access_token, *new_refresh_token, *token_type;
  gint64                      expires_in;

  if (!require_object (answer, "AuthenticationResult", &result, error) || !require_string (result, "IdToken", TEXT_TOKEN, MAX_TOKEN_LEN, &id_token, error) || !require_string (result, "AccessToken", TEXT_TOKEN, MAX_TOKEN_LEN, &access_token, error) || !answer_string (result, "RefreshToken", TEXT_TOKEN, MAX_TOKEN_LEN, &new_refresh_token, error) || !answer_string (result, "TokenType", TEXT_TOKEN, MAX_NAME_LEN, &token_type, error))
    return NULL;

  if (token_type != NULL && g_ascii_strcasecmp (token_type, "Bearer") != 0)
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer's tokens are of the type “%s”, not Bearer", token_type);
      return NULL;
    }
  expires_node = json_object_get_member (result, "ExpiresIn");
  if (expires_node == NULL || !JSON_NODE_HOLDS_VALUE (expires_node) || json_node_get_value_type (expires_node) != G_TYPE_INT64)
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer's ExpiresIn is missing or not an integer");
      return NULL;
    }
  expires_in = json_node_get_int (expires_node);
  if (expires_in <= 0 || expires_in > MAX_EXPIRES_IN)
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                   "The answer's ExpiresIn (%" G_GINT64_FORMAT ") is out of range", expires_in);
      return NULL;
    }
  if (new_refresh_token == NULL && refresh_token == NULL)
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer has no RefreshToken");
      return NULL;
    }

  tokens = g_new0 (FlCognitoTokens, 1);
  tokens->id_token = g_strdup (id_token);
  tokens->access_token = g_strdup (access_token);
  tokens->refresh_token = g_strdup (new_refresh_token != NULL ? new_refresh_token : refresh_token);
  tokens->expires_at = g_get_real_time () / G_USEC_PER_SEC + expires_in;
  tokens->username = g_strdup (username);

  return g_steal_pointer (&tokens);
}

static gboolean
is_challenge_name (const char *text)
{
  gsize len = strlen (text);

  if (len == 0 || len > MAX_CHALLENGE_NAME_LEN)
    return FALSE;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isupper (*p) && !g_ascii_isdigit (*p) && *p != '_')
      return FALSE;
  return TRUE;
}

/* The challenge the answer names, or NULL (and no error) if it names none */
static gboolean
answer_challenge_name (JsonObject  *answer,
                       const char **name,
                       GError     **error)
{
  if (!answer_string (answer, "ChallengeName", TEXT_TOKEN, MAX_CHALLENGE_NAME_LEN, name, error))
    return FALSE;
  if (*name != NULL && !is_challenge_name (*name))
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer's ChallengeName is malformed");
      return FALSE;
    }
  return TRUE;
}

/* The end of a sign-in step: tokens, NEW_PASSWORD_REQUIRED or an error.
 * username is the user's name in the pool. */
static AuthOutcome *
auth_outcome_from_answer (JsonObject *answer,
                          const char *username,
                          GError    **error)
{
  g_autoptr (AuthOutcome) outcome = g_new0 (AuthOutcome, 1);
  JsonObject             *result;
  JsonObject             *parameters;
  const char             *name;
  const char             *session;
  const char             *user_id;

  if (!answer_object (answer, "AuthenticationResult", &result, error) || !answer_challenge_name (answer, &name, error))
    return NULL;

  if (result != NULL)
    {
      outcome->tokens = tokens_from_answer (answer, username, NULL, error);
      return outcome->tokens != NULL ? g_steal_pointer (&outcome) : NULL;
    }
  if (name == NULL)
    {
      g_set_error_literal (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                           "The answer has neither AuthenticationResult nor ChallengeName");
      return NULL;
    }
  if (!g_str_equal (name, "NEW_PASSWORD_REQUIRED"))
    {
      g_set_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_OTHER,
                   "Signing in needs the %s step, which Fieldline does not support", name);
      return NULL;
    }

  if (!require_string (answer, "Session", TEXT_TOKEN, MAX_TOKEN_LEN, &session, error) || !answer_object (answer, "ChallengeParameters", &parameters, error))
    return NULL;
  user_id = NULL;
  if (parameters != NULL && !answer_string (parameters, "USER_ID_FOR_SRP", TEXT_PLAIN, MAX_NAME_LEN, &user_id, error))
    return NULL;

  outcome->challenge = g_new0 (FlCognitoChallenge, 1);
  outcome->challenge->name = g_strdup (name);
  outcome->challenge->session = g_strdup (session);
  outcome->challenge->username = g_strdup (user_id != NULL ? user_id : username);

  return g_steal_pointer (&outcome);
}

/* ---- sign-in ---------------------------------------------------------------- */

typedef struct
{
  char        *username;
  char        *password; /* wiped */
  char        *pool_name;
  FlSrpClient *srp;
  char        *srp_a;
  /* PASSWORD_VERIFIER */
  char *user_id; /* USER_ID_FOR_SRP */
  char *salt;
  char *srp_b;
  char *secret_block;
  char *session; /* wiped */
  char *timestamp;
  char *signature; /* wiped */
} SignIn;

static void
sign_in_free (SignIn *sign_in)
{
  g_free (sign_in->username);
  wipe_free (sign_in->password);
  g_free (sign_in->pool_name);
  g_clear_pointer (&sign_in->srp, fl_srp_client_free);
  g_free (sign_in->srp_a);
  g_free (sign_in->user_id);
  g_free (sign_in->salt);
  g_free (sign_in->srp_b);
  g_free (sign_in->secret_block);
  wipe_free (sign_in->session);
  g_free (sign_in->timestamp);
  wipe_free (sign_in->signature);
  g_free (sign_in);
}

static gboolean
srp_not_enabled (const GError *error)
{
  g_autofree char *lower = NULL;

  if (!g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_INVALID_PARAMETER) || strstr (error->message, "USER_SRP_AUTH") == NULL)
    return FALSE;
  lower = g_ascii_strdown (error->message, -1);
  return strstr (lower, "not enabled") != NULL || strstr (lower, "not allowed") != NULL || strstr (lower, "not supported") != NULL;
}

static void
sign_in_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  FlCognitoClient       *self = FL_COGNITO_CLIENT (source);
  SignIn                *sign_in = g_task_get_task_data (task);
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (self, result, &error);
  AuthOutcome           *outcome;

  if (answer == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  outcome = auth_outcome_from_answer (answer, sign_in->user_id != NULL ? sign_in->user_id : sign_in->username,
                                      &error);
  if (outcome == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, outcome, (GDestroyNotify) auth_outcome_free);
}

static void
password_auth (GTask *task)
{
  FlCognitoClient *self = g_task_get_source_object (task);
  SignIn          *sign_in = g_task_get_task_data (task);
  g_autofree char *hash = secret_hash (self, sign_in->username);
  Body             body = { 0 };

  body_string (&body, "AuthFlow", "USER_PASSWORD_AUTH");
  body_string (&body, "ClientId", self->client_id);
  body_add (&body, ITEM_OPEN_OBJECT, "AuthParameters", NULL);
  body_string (&body, "USERNAME", sign_in->username);
  body_string (&body, "PASSWORD", sign_in->password);
  body_string (&body, "SECRET_HASH", hash);
  body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);

  /* a repeat would count as a second failed attempt */
  call_async (self, "InitiateAuth", &body, FALSE, g_task_get_cancellable (task), sign_in_done_cb, task);
}

static void
srp_sign_thread (GTask        *thread_task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  SignIn               *sign_in = task_data;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  GError               *error = NULL;

  sign_in->timestamp = fl_srp_format_timestamp (now);
  sign_in->signature = fl_srp_client_sign (sign_in->srp, sign_in->pool_name, sign_in->user_id, sign_in->password,
                                           sign_in->salt, sign_in->srp_b, sign_in->secret_block,
                                           sign_in->timestamp, &error);
  if (sign_in->signature == NULL)
    g_task_return_error (thread_task, error);
  else
    g_task_return_boolean (thread_task, TRUE);
}

static void
srp_signed_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  FlCognitoClient   *self = FL_COGNITO_CLIENT (source);
  SignIn            *sign_in = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autofree char   *hash = NULL;
  GCancellable      *cancellable;
  Body               body = { 0 };

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (error->domain == FL_SRP_ERROR && error->code == FL_SRP_ERROR_INVALID_PARAMETER)
        g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                                 "The PASSWORD_VERIFIER challenge is malformed: %s", error->message);
      else if (error->domain == FL_SRP_ERROR)
        g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_OTHER,
                                 "Cannot answer the PASSWORD_VERIFIER challenge: %s", error->message);
      else
        g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  hash = secret_hash (self, sign_in->user_id);
  body_string (&body, "ChallengeName", "PASSWORD_VERIFIER");
  body_string (&body, "ClientId", self->client_id);
  body_string (&body, "Session", sign_in->session);
  body_add (&body, ITEM_OPEN_OBJECT, "ChallengeResponses", NULL);
  body_string (&body, "USERNAME", sign_in->user_id);
  body_string (&body, "PASSWORD_CLAIM_SECRET_BLOCK", sign_in->secret_block);
  body_string (&body, "PASSWORD_CLAIM_SIGNATURE", sign_in->signature);
  body_string (&body, "TIMESTAMP", sign_in->timestamp);
  body_string (&body, "SECRET_HASH", hash);
  body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);

  /* the server answers a challenge once */
  cancellable = g_task_get_cancellable (task);
  call_async (self, "RespondToAuthChallenge", &body, FALSE, cancellable, sign_in_done_cb, g_steal_pointer (&task));
}

/* Keeps the PASSWORD_VERIFIER parameters; FALSE and a PROTOCOL error if
 * they are not all there. */
static gboolean
take_verifier_parameters (SignIn     *sign_in,
                          JsonObject *answer,
                          GError    **error)
{
  JsonObject *parameters;
  const char *salt, *srp_b, *secret_block, *user_id, *username, *session;

  if (!require_object (answer, "ChallengeParameters", &parameters, error) || !require_string (parameters, "SALT", TEXT_HEX, MAX_HEX_LEN, &salt, error) || !require_string (parameters, "SRP_B", TEXT_HEX, MAX_HEX_LEN, &srp_b, error) || !require_string (parameters, "SECRET_BLOCK", TEXT_TOKEN, MAX_TOKEN_LEN, &secret_block, error) || !answer_string (parameters, "USER_ID_FOR_SRP", TEXT_PLAIN, MAX_NAME_LEN, &user_id, error) || !answer_string (parameters, "USERNAME", TEXT_PLAIN, MAX_NAME_LEN, &username, error) || !answer_string (answer, "Session", TEXT_TOKEN, MAX_TOKEN_LEN, &session, error))
    return FALSE;

  sign_in->salt = g_strdup (salt);
  sign_in->srp_b = g_strdup (srp_b);
  sign_in->secret_block = g_strdup (secret_block);
  sign_in->user_id = g_strdup (user_id != NULL ? user_id : username != NULL ? username
                                                                            : sign_in->username);
  sign_in->session = g_strdup (session);
  return TRUE;
}

static void
srp_initiated_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  FlCognitoClient       *self = FL_COGNITO_CLIENT (source);
  SignIn                *sign_in = g_task_get_task_data (task);
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (self, result, &error);
  g_autoptr (GTask)      thread_task = NULL;
  GCancellable          *cancellable;
  const char            *name;

  if (answer == NULL)
    {
      if (srp_not_enabled (error))
        {
          g_debug ("USER_SRP_AUTH is not enabled for the client; trying USER_PASSWORD_AUTH");
          password_auth (g_steal_pointer (&task));
          return;
        }
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (!answer_challenge_name (answer, &name, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (g_strcmp0 (name, "PASSWORD_VERIFIER") != 0)
    {
      /* tokens at once, or another challenge */
      AuthOutcome *outcome = auth_outcome_from_answer (answer, sign_in->username, &error);

      if (outcome == NULL)
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_pointer (task, outcome, (GDestroyNotify) auth_outcome_free);
      return;
    }
  if (!take_verifier_parameters (sign_in, answer, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* two 3072-bit exponentiations: off the main loop */
  cancellable = g_task_get_cancellable (task);
  thread_task = g_task_new (self, cancellable, srp_signed_cb, g_steal_pointer (&task));
  g_task_set_source_tag (thread_task, srp_sign_thread);
  g_task_set_task_data (thread_task, sign_in, NULL);
  g_task_run_in_thread (thread_task, srp_sign_thread);
}

static void
srp_start_thread (GTask        *thread_task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  SignIn *sign_in = task_data;

  sign_in->srp = fl_srp_client_new ();
  sign_in->srp_a = fl_srp_client_get_public_hex (sign_in->srp);
  g_task_return_boolean (thread_task, TRUE);
}

static void
srp_started_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  FlCognitoClient   *self = FL_COGNITO_CLIENT (source);
  SignIn            *sign_in = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autofree char   *hash = NULL;
  GCancellable      *cancellable;
  Body               body = { 0 };

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  hash = secret_hash (self, sign_in->username);
  body_string (&body, "AuthFlow", "USER_SRP_AUTH");
  body_string (&body, "ClientId", self->client_id);
  body_add (&body, ITEM_OPEN_OBJECT, "AuthParameters", NULL);
  body_string (&body, "USERNAME", sign_in->username);
  body_string (&body, "SRP_A", sign_in->srp_a);
  body_string (&body, "SECRET_HASH", hash);
  body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);

  /* safe to repeat: a new challenge, nothing counted */
  cancellable = g_task_get_cancellable (task);
  call_async (self, "InitiateAuth", &body, TRUE, cancellable, srp_initiated_cb, g_steal_pointer (&task));
}

/**
 * fl_cognito_client_sign_in_async:
 *
 * USER_SRP_AUTH, or USER_PASSWORD_AUTH for an app client without SRP.
 */
void
fl_cognito_client_sign_in_async (FlCognitoClient    *self,
                                 const char         *username,
                                 const char         *password,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GTask) thread_task = NULL;
  SignIn           *sign_in;

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (password != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_cognito_client_sign_in_async);
  sign_in = g_new0 (SignIn, 1);
  sign_in->username = g_strdup (username);
  sign_in->password = g_strdup (password);
  sign_in->pool_name = g_strdup (self->pool_name);
  g_task_set_task_data (task, sign_in, (GDestroyNotify) sign_in_free);

  if (self->pool_name == NULL)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_INVALID_PARAMETER,
                               "The user pool id “%s” has no “_”", self->user_pool_id);
      return;
    }

  thread_task = g_task_new (self, cancellable, srp_started_cb, g_steal_pointer (&task));
  g_task_set_source_tag (thread_task, srp_start_thread);
  g_task_set_task_data (thread_task, sign_in, NULL);
  g_task_run_in_thread (thread_task, srp_start_thread);
}

/**
 * fl_cognito_client_sign_in_finish:
 * @challenge: (out) (transfer full) (nullable): set to the challenge the
 *   user must answer when this returns NULL without an error
 *
 * Returns: (transfer full) (nullable): the tokens
 */
FlCognitoTokens *
fl_cognito_client_sign_in_finish (FlCognitoClient     *self,
                                  GAsyncResult        *result,
                                  FlCognitoChallenge **challenge,
                                  GError             **error)
{
  g_autoptr (AuthOutcome) outcome = NULL;

  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_cognito_client_sign_in_async, NULL);
  g_return_val_if_fail (challenge != NULL, NULL);

  *challenge = NULL;
  outcome = g_task_propagate_pointer (G_TASK (result), error);
  if (outcome == NULL)
    return NULL;
  if (outcome->challenge != NULL)
    {
      *challenge = g_steal_pointer (&outcome->challenge);
      return NULL;
    }
  return g_steal_pointer (&outcome->tokens);
}

/* ---- NEW_PASSWORD_REQUIRED --------------------------------------------------- */

static void
new_password_done_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr (GTask)       task = user_data;
  FlCognitoClient        *self = FL_COGNITO_CLIENT (source);
  const char             *username = g_task_get_task_data (task);
  g_autoptr (GError)      error = NULL;
  g_autoptr (JsonObject)  answer = call_finish (self, result, &error);
  g_autoptr (AuthOutcome) outcome = NULL;

  if (answer != NULL)
    outcome = auth_outcome_from_answer (answer, username, &error);
  if (outcome == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (outcome->challenge != NULL)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                               "The server asked for a new password again");
      return;
    }
  g_task_return_pointer (task, g_steal_pointer (&outcome->tokens), (GDestroyNotify) fl_cognito_tokens_free);
}

void
fl_cognito_client_respond_new_password_async (FlCognitoClient          *self,
                                              const FlCognitoChallenge *challenge,
                                              const char               *new_password,
                                              GCancellable             *cancellable,
                                              GAsyncReadyCallback       callback,
                                              gpointer                  user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char  *hash = NULL;
  Body              body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (challenge != NULL && challenge->name != NULL && challenge->username != NULL);
  g_return_if_fail (new_password != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_cognito_client_respond_new_password_async);
  g_task_set_task_data (task, g_strdup (challenge->username), g_free);

  hash = secret_hash (self, challenge->username);
  body_string (&body, "ChallengeName", challenge->name);
  body_string (&body, "ClientId", self->client_id);
  body_string (&body, "Session", challenge->session);
  body_add (&body, ITEM_OPEN_OBJECT, "ChallengeResponses", NULL);
  body_string (&body, "USERNAME", challenge->username);
  body_string (&body, "NEW_PASSWORD", new_password);
  body_string (&body, "SECRET_HASH", hash);
  body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);

  call_async (self, "RespondToAuthChallenge", &body, FALSE, cancellable,
              new_password_done_cb, g_steal_pointer (&task));
}

/**
 * fl_cognito_client_respond_new_password_finish:
 *
 * Returns: (transfer full) (nullable): the tokens
 */
FlCognitoTokens *
fl_cognito_client_respond_new_password_finish (FlCognitoClient *self,
                                               GAsyncResult    *result,
                                               GError         **error)
{
  return pointer_finish (self, result, fl_cognito_client_respond_new_password_async, error);
}

/* ---- refresh ------------------------------------------------------------------ */

typedef struct
{
  char *username;
  char *refresh_token; /* wiped */
} Refresh;

static void
refresh_free (Refresh *refresh)
{
  g_free (refresh->username);
  wipe_free (refresh->refresh_token);
  g_free (refresh);
}

static void
refresh_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  FlCognitoClient       *self = FL_COGNITO_CLIENT (source);
  Refresh               *refresh = g_task_get_task_data (task);
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (self, result, &error);
  FlCognitoTokens       *tokens = NULL;

  if (answer != NULL)
    tokens = tokens_from_answer (answer, refresh->username, refresh->refresh_token, &error);
  if (tokens == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, tokens, (GDestroyNotify) fl_cognito_tokens_free);
}

void
fl_cognito_client_refresh_async (FlCognitoClient    *self,
                                 const char         *username,
                                 const char         *refresh_token,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char  *hash = NULL;
  Refresh          *refresh;
  Body              body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (refresh_token != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_cognito_client_refresh_async);
  refresh = g_new0 (Refresh, 1);
  refresh->username = g_strdup (username);
  refresh->refresh_token = g_strdup (refresh_token);
  g_task_set_task_data (task, refresh, (GDestroyNotify) refresh_free);

  if (self->client_secret != NULL && username == NULL)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_INVALID_PARAMETER,
                               "Refreshing for an app client with a secret needs the username");
      return;
    }

  hash = secret_hash (self, username);
  body_string (&body, "AuthFlow", "REFRESH_TOKEN_AUTH");
  body_string (&body, "ClientId", self->client_id);
  body_add (&body, ITEM_OPEN_OBJECT, "AuthParameters", NULL);
  body_string (&body, "REFRESH_TOKEN", refresh_token);
  body_string (&body, "SECRET_HASH", hash);
  body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);

  /* safe to repeat: new ID and access tokens, nothing else changes */
  call_async (self, "InitiateAuth", &body, TRUE, cancellable, refresh_done_cb, g_steal_pointer (&task));
}

/**
 * fl_cognito_client_refresh_finish:
 *
 * Returns: (transfer full) (nullable): the tokens
 */
FlCognitoTokens *
fl_cognito_client_refresh_finish (FlCognitoClient *self,
                                  GAsyncResult    *result,
                                  GError         **error)
{
  return pointer_finish (self, result, fl_cognito_client_refresh_async, error);
}

/* ---- sign-up, codes, passwords, sign-out --------------------------------------- */

typedef struct
{
  gboolean confirmed;
  char    *destination;
} SignUpResult;

static void
sign_up_result_free (SignUpResult *result)
{
  g_free (result->destination);
  g_free (result);
}

/* CodeDeliveryDetails.Destination; NULL without an error if absent and
 * not required */
static gboolean
answer_destination (JsonObject  *answer,
                    gboolean     required,
                    const char **destination,
                    GError     **error)
{
  JsonObject *details;

  *destination = NULL;
  if (!(required ? require_object : answer_object) (answer, "CodeDeliveryDetails", &details, error))
    return FALSE;
  if (details == NULL)
    return TRUE;
  return (required ? require_string : answer_string) (details, "Destination", TEXT_PLAIN, MAX_NAME_LEN,
                                                      destination, error);
}

static void
sign_up_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  FlCognitoClient       *self = FL_COGNITO_CLIENT (source);
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (self, result, &error);
  SignUpResult          *sign_up;
  JsonNode              *confirmed;
  const char            *destination;

  if (answer == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  confirmed = json_object_get_member (answer, "UserConfirmed");
  if (confirmed == NULL || !JSON_NODE_HOLDS_VALUE (confirmed) || json_node_get_value_type (confirmed) != G_TYPE_BOOLEAN)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL,
                               "The answer's UserConfirmed is missing or not a boolean");
      return;
    }
  if (!answer_destination (answer, FALSE, &destination, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  sign_up = g_new0 (SignUpResult, 1);
  sign_up->confirmed = json_node_get_boolean (confirmed);
  sign_up->destination = g_strdup (destination);
  g_task_return_pointer (task, sign_up, (GDestroyNotify) sign_up_result_free);
}

void
fl_cognito_client_sign_up_async (FlCognitoClient    *self,
                                 const char         *username,
                                 const char         *password,
                                 const char         *email,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data)
{
  g_autofree char *hash = NULL;
  Body             body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (password != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  hash = secret_hash (self, username);
  body_string (&body, "ClientId", self->client_id);
  body_string (&body, "Username", username);
  body_string (&body, "Password", password);
  body_string (&body, "SecretHash", hash);
  if (email != NULL)
    {
      body_add (&body, ITEM_OPEN_ARRAY, "UserAttributes", NULL);
      body_add (&body, ITEM_OPEN_OBJECT, NULL, NULL);
      body_string (&body, "Name", "email");
      body_string (&body, "Value", email);
      body_add (&body, ITEM_CLOSE_OBJECT, NULL, NULL);
      body_add (&body, ITEM_CLOSE_ARRAY, NULL, NULL);
    }

  start_call (self, fl_cognito_client_sign_up_async, "SignUp", &body,
              cancellable, sign_up_done_cb, callback, user_data);
}

/**
 * fl_cognito_client_sign_up_finish:
 * @confirmed: (out) (optional): whether the user may sign in at once
 * @destination: (out) (optional) (transfer full) (nullable): where the
 *   code went, masked
 */
gboolean
fl_cognito_client_sign_up_finish (FlCognitoClient *self,
                                  GAsyncResult    *result,
                                  gboolean        *confirmed,
                                  char           **destination,
                                  GError         **error)
{
  SignUpResult *sign_up;

  g_return_val_if_fail (FL_IS_COGNITO_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_cognito_client_sign_up_async, FALSE);

  if (confirmed != NULL)
    *confirmed = FALSE;
  if (destination != NULL)
    *destination = NULL;

  sign_up = g_task_propagate_pointer (G_TASK (result), error);
  if (sign_up == NULL)
    return FALSE;
  if (confirmed != NULL)
    *confirmed = sign_up->confirmed;
  if (destination != NULL)
    *destination = g_steal_pointer (&sign_up->destination);
  sign_up_result_free (sign_up);
  return TRUE;
}

/* Answers that only have to be objects */
static void
empty_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (FL_COGNITO_CLIENT (source), result, &error);

  if (answer == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

/* Answers with CodeDeliveryDetails */
static void
destination_done_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr (GTask)      task = user_data;
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) answer = call_finish (FL_COGNITO_CLIENT (source), result, &error);
  const char            *destination;

  if (answer == NULL || !answer_destination (answer, TRUE, &destination, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, g_strdup (destination), g_free);
}

/* ClientId, Username and SecretHash, which most operations start with */
static void
body_user (Body            *body,
           FlCognitoClient *self,
           const char      *username,
           char           **hash)
{
  *hash = secret_hash (self, username);
  body_string (body, "ClientId", self->client_id);
  body_string (body, "Username", username);
  body_string (body, "SecretHash", *hash);
}

void
fl_cognito_client_confirm_sign_up_async (FlCognitoClient    *self,
                                         const char         *username,
                                         const char         *code,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data)
{
  g_autofree char *hash = NULL;
  Body             body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (code != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  body_user (&body, self, username, &hash);
  body_string (&body, "ConfirmationCode", code);
  start_call (self, fl_cognito_client_confirm_sign_up_async, "ConfirmSignUp", &body,
              cancellable, empty_done_cb, callback, user_data);
}

gboolean
fl_cognito_client_confirm_sign_up_finish (FlCognitoClient *self,
                                          GAsyncResult    *result,
                                          GError         **error)
{
  return boolean_finish (self, result, fl_cognito_client_confirm_sign_up_async, error);
}

void
fl_cognito_client_resend_code_async (FlCognitoClient    *self,
                                     const char         *username,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data)
{
  g_autofree char *hash = NULL;
  Body             body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  body_user (&body, self, username, &hash);
  start_call (self, fl_cognito_client_resend_code_async, "ResendConfirmationCode", &body,
              cancellable, destination_done_cb, callback, user_data);
}

/**
 * fl_cognito_client_resend_code_finish:
 *
 * Returns: (transfer full) (nullable): the masked destination of the code
 */
char *
fl_cognito_client_resend_code_finish (FlCognitoClient *self,
                                      GAsyncResult    *result,
                                      GError         **error)
{
  return pointer_finish (self, result, fl_cognito_client_resend_code_async, error);
}

void
fl_cognito_client_forgot_password_async (FlCognitoClient    *self,
                                         const char         *username,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data)
{
  g_autofree char *hash = NULL;
  Body             body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  body_user (&body, self, username, &hash);
  start_call (self, fl_cognito_client_forgot_password_async, "ForgotPassword", &body,
              cancellable, destination_done_cb, callback, user_data);
}

/**
 * fl_cognito_client_forgot_password_finish:
 *
 * Returns: (transfer full) (nullable): the masked destination of the code
 */
char *
fl_cognito_client_forgot_password_finish (FlCognitoClient *self,
                                          GAsyncResult    *result,
                                          GError         **error)
{
  return pointer_finish (self, result, fl_cognito_client_forgot_password_async, error);
}

void
fl_cognito_client_confirm_forgot_password_async (FlCognitoClient    *self,
                                                 const char         *username,
                                                 const char         *code,
                                                 const char         *new_password,
                                                 GCancellable       *cancellable,
                                                 GAsyncReadyCallback callback,
                                                 gpointer            user_data)
{
  g_autofree char *hash = NULL;
  Body             body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (code != NULL);
  g_return_if_fail (new_password != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  body_user (&body, self, username, &hash);
  body_string (&body, "ConfirmationCode", code);
  body_string (&body, "Password", new_password);
  start_call (self, fl_cognito_client_confirm_forgot_password_async, "ConfirmForgotPassword", &body,
              cancellable, empty_done_cb, callback, user_data);
}

gboolean
fl_cognito_client_confirm_forgot_password_finish (FlCognitoClient *self,
                                                  GAsyncResult    *result,
                                                  GError         **error)
{
  return boolean_finish (self, result, fl_cognito_client_confirm_forgot_password_async, error);
}

void
fl_cognito_client_global_sign_out_async (FlCognitoClient    *self,
                                         const char         *access_token,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data)
{
  Body body = { 0 };

  g_return_if_fail (FL_IS_COGNITO_CLIENT (self));
  g_return_if_fail (access_token != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  body_string (&body, "AccessToken", access_token);
  /* a repeat would fail: the token it carries is revoked by the first */
  start_call (self, fl_cognito_client_global_sign_out_async, "GlobalSignOut", &body,
              cancellable, empty_done_cb, callback, user_data);
}

gboolean
fl_cognito_client_global_sign_out_finish (FlCognitoClient *self,
                                          GAsyncResult    *result,
                                          GError         **error)
{
  return boolean_finish (self, result, fl_cognito_client_global_sign_out_async, error);
}
