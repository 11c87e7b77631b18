/* fl-client.c: the REST side of the Fieldline API client. */
#define G_LOG_DOMAIN "fl-client"

#include "config.h"

#include <string.h>

#include <libsoup/soup.h>

#include "fl-client-private.h"

#define DEFAULT_MAX_CONNECTIONS 6

/* ---- errors ------------------------------------------------------------ */

typedef struct
{
  char *api_code;
  guint http_status;
  guint retry_after;
} FlClientErrorPrivate;

static void
fl_client_error_private_init (FlClientErrorPrivate *priv)
{
}

static void
fl_client_error_private_copy (const FlClientErrorPrivate *src,
                              FlClientErrorPrivate       *dest)
{
  dest->api_code = g_strdup (src->api_code);
  dest->http_status = src->http_status;
  dest->retry_after = src->retry_after;
}

static void
fl_client_error_private_clear (FlClientErrorPrivate *priv)
{
  g_clear_pointer (&priv->api_code, g_free);
}

G_DEFINE_EXTENDED_ERROR (FlClientError, fl_client_error)

static FlClientErrorPrivate *
get_error_private (const GError *error)
{
  if (error == NULL || error->domain != FL_CLIENT_ERROR)
    return NULL;
  return fl_client_error_get_private (error);
}

/**
 * fl_client_error_get_api_code:
 * @error: a #GError
 *
 * Returns: (nullable) (transfer none): the API's error code
 */
const char *
fl_client_error_get_api_code (const GError *error)
{
  FlClientErrorPrivate *priv = get_error_private (error);

  return priv != NULL ? priv->api_code : NULL;
}

guint
fl_client_error_get_http_status (const GError *error)
{
  FlClientErrorPrivate *priv = get_error_private (error);

  return priv != NULL ? priv->http_status : 0;
}

guint
fl_client_error_get_retry_after (const GError *error)
{
  FlClientErrorPrivate *priv = get_error_private (error);

  return priv != NULL ? priv->retry_after : 0;
}

GError *
_fl_client_error_new (FlClientError code,
                      const char   *api_code,
                      guint         http_status,
                      const char   *format,
                      ...)
{
  FlClientErrorPrivate *priv;
  GError               *error;
  va_list               args;

  va_start (args, format);
  error = g_error_new_valist (FL_CLIENT_ERROR, code, format, args);
  va_end (args);

  priv = fl_client_error_get_private (error);
  priv->api_code = g_strdup (api_code);
  priv->http_status = http_status;

  return error;
}

static FlClientError
error_code_for_status (guint status)
{
  switch (status)
    {
    case SOUP_STATUS_BAD_REQUEST:
      return FL_CLIENT_ERROR_BAD_REQUEST;
    case SOUP_STATUS_UNAUTHORIZED:
      return FL_CLIENT_ERROR_UNAUTHORIZED;
    case SOUP_STATUS_FORBIDDEN:
      return FL_CLIENT_ERROR_FORBIDDEN;
    case SOUP_STATUS_NOT_FOUND:
      return FL_CLIENT_ERROR_NOT_FOUND;
    case SOUP_STATUS_CONFLICT:
      return FL_CLIENT_ERROR_CONFLICT;
    case SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE:
      return FL_CLIENT_ERROR_TOO_LARGE;
    case SOUP_STATUS_UNPROCESSABLE_ENTITY:
      return FL_CLIENT_ERROR_INVALID;
    case 429: /* Too Many Requests; libsoup 3.2 has no name for it */
      return FL_CLIENT_ERROR_TOO_MANY_REQUESTS;
    default:
      return status >= 500 && status < 600 ? FL_CLIENT_ERROR_SERVER
                                           : FL_CLIENT_ERROR_HTTP;
    }
}

static JsonNode *
parse_json (const char *data,
            gsize       length,
            GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError)     local_error = NULL;
  JsonNode              *root;

  if (length > G_MAXSSIZE || !json_parser_load_from_data (parser, data, (gssize) length, &local_error))
    {
      g_set_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                   "The server's reply is not JSON: %s",
                   local_error != NULL ? local_error->message : "too long");
      return NULL;
    }

  root = json_parser_get_root (parser);
  if (root == NULL)
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "The server's reply is empty");
      return NULL;
    }

  return json_node_ref (root);
}

GError *
_fl_client_error_new_for_status (guint       status,
                                 const char *reason,
                                 GBytes     *body,
                                 guint       retry_after)
{
  g_autoptr (JsonNode) node = NULL;
  g_autofree char     *fallback = NULL;
  const char          *api_code = NULL;
  const char          *message = NULL;
  GError              *error;

  if (body != NULL && g_bytes_get_size (body) > 0)
    {
      gsize       length;
      const char *data = g_bytes_get_data (body, &length);

      node = parse_json (data, length, NULL);
    }

  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *object = json_node_get_object (node);
      JsonObject *inner = _fl_json_get_object (object, "error");

      if (inner != NULL)
        {
          api_code = _fl_json_get_string (inner, "code");
          message = _fl_json_get_string (inner, "message");
        }
      else
        {
          /* Gateways and Cognito say {"message"} or {"error": "code"} */
          api_code = _fl_json_get_string (object, "error");
          message = _fl_json_get_string (object, "message");
        }
    }

  if (message == NULL || *message == '\0')
    message = fallback = g_strdup_printf ("HTTP %u %s", status,
                                          reason != NULL && *reason != '\0' ? reason : soup_status_get_phrase (status));

  error = _fl_client_error_new (error_code_for_status (status), api_code, status,
                                "%s", message);
  fl_client_error_get_private (error)->retry_after = retry_after;

  return error;
}

GError *
_fl_client_error_new_network (GError *error)
{
  GError *ret;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || error->domain == FL_CLIENT_ERROR)
    return error;

  ret = _fl_client_error_new (FL_CLIENT_ERROR_NETWORK, NULL, 0, "%s", error->message);
  g_error_free (error);

  return ret;
}

/* ---- JSON helpers ------------------------------------------------------ */

static JsonNode *
get_member (JsonObject *object,
            const char *member)
{
  if (object == NULL)
    return NULL;
  return json_object_get_member (object, member);
}

const char *
_fl_json_get_string (JsonObject *object,
                     const char *member)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

gboolean
_fl_json_get_int (JsonObject *object,
                  const char *member,
                  gint64     *value)
{
  JsonNode *node = get_member (object, member);
  GType     type;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;

  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64)
    {
      *value = json_node_get_int (node);
      return TRUE;
    }
  if (type == G_TYPE_DOUBLE)
    {
      double d = json_node_get_double (node);

      if (d >= (double) G_MININT64 && d <= (double) G_MAXINT64)
        {
          *value = (gint64) d;
          return TRUE;
        }
    }
  return FALSE;
}

static gboolean
get_double (JsonObject *object,
            const char *member,
            double     *value)
{
  JsonNode *node = get_member (object, member);
  GType     type;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;

  type = json_node_get_value_type (node);
  if (type != G_TYPE_INT64 && type != G_TYPE_DOUBLE)
    return FALSE;

  *value = json_node_get_double (node);
  return TRUE;
}

JsonObject *
_fl_json_get_object (JsonObject *object,
                     const char *member)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

JsonArray *
_fl_json_get_array (JsonObject *object,
                    const char *member)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
}

/* A cursor may come as a string or a number. */
static char *
dup_cursor (JsonObject *object)
{
  static const char *const names[] = { "nextCursor", "cursor", "next" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      const char *str = _fl_json_get_string (object, names[i]);
      gint64      number;

      if (str != NULL && *str != '\0')
        return g_strdup (str);
      if (_fl_json_get_int (object, names[i], &number) && number > 0)
        return g_strdup_printf ("%" G_GINT64_FORMAT, number);
    }

  return NULL;
}

static JsonObject *
reply_object (JsonNode *node,
              GError  **error)
{
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "The server's reply is not a JSON object");
      return NULL;
    }
  return json_node_get_object (node);
}

/* ---- results ----------------------------------------------------------- */

void
fl_client_config_free (FlClientConfig *config)
{
  if (config == NULL)
    return;

  g_free (config->user_pool_id);
  g_free (config->client_id);
  g_free (config->region);
  g_free (config->issuer);
  g_free (config->api_url);
  g_free (config->websocket_url);
  g_free (config);
}

static void
clear_rejection (gpointer data)
{
  FlIngestRejection *rejection = data;

  g_clear_pointer (&rejection->code, g_free);
  g_clear_pointer (&rejection->message, g_free);
}

void
fl_ingest_result_free (FlIngestResult *result)
{
  if (result == NULL)
    return;

  g_clear_pointer (&result->rejected, g_array_unref);
  g_free (result);
}

static guint
clamp_count (gint64 value)
{
  return (guint) CLAMP (value, 0, G_MAXUINT);
}

FlIngestResult *
_fl_ingest_result_new_from_json (JsonObject *object,
                                 GError    **error)
{
  g_autoptr (FlIngestResult) result = g_new0 (FlIngestResult, 1);
  JsonArray                 *rejected;
  gint64                     value;

  result->rejected = g_array_new (FALSE, TRUE, sizeof (FlIngestRejection));
  g_array_set_clear_func (result->rejected, clear_rejection);

  if (!_fl_json_get_int (object, "accepted", &value))
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "The ingest reply has no \"accepted\" count");
      return NULL;
    }
  result->accepted = clamp_count (value);

  if (_fl_json_get_int (object, "duplicates", &value))
    result->duplicates = clamp_count (value);

  rejected = _fl_json_get_array (object, "rejected");
  for (guint i = 0; rejected != NULL && i < json_array_get_length (rejected); i++)
    {
      JsonNode         *element = json_array_get_element (rejected, i);
      JsonObject       *item;
      JsonObject       *inner;
      FlIngestRejection rejection = { 0 };

      if (!JSON_NODE_HOLDS_OBJECT (element))
        continue;
      item = json_node_get_object (element);

      if (_fl_json_get_int (item, "index", &value))
        rejection.index = clamp_count (value);

      if ((inner = _fl_json_get_object (item, "error")) != NULL)
        {
          rejection.code = g_strdup (_fl_json_get_string (inner, "code"));
          rejection.message = g_strdup (_fl_json_get_string (inner, "message"));
        }
      else
        {
          rejection.code = g_strdup (_fl_json_get_string (item, "code"));
          rejection.message = g_strdup (_fl_json_get_string (item, "error"));
          if (rejection.message == NULL)
            rejection.message = g_strdup (_fl_json_get_string (item, "message"));
        }
      if (rejection.message == NULL)
        rejection.message = g_strdup ("rejected");

      g_array_append_val (result->rejected, rejection);
    }

  return g_steal_pointer (&result);
}

GBytes *
_fl_events_to_json_array (GPtrArray *events)
{
  GString *out = g_string_sized_new (256 * events->len + 2);

  g_string_append_c (out, '[');
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);

      if (i > 0)
        g_string_append_c (out, ',');
      g_string_append_len (out, fl_event_get_json (event),
                           fl_event_get_json_length (event));
    }
  g_string_append_c (out, ']');

  return g_string_free_to_bytes (out);
}

/* The API's device JSON into an FlDevice.  The registration fields go
 * through fl_device_update_from_json(), which validates them; the fields
 * only the relay sets (status, times, battery, rssi) through the setters
 * and fl_device_apply_event_data().  (fl_device_deserialize() reads the
 * store's trusted form and does not check member types.) */
FlDevice *
_fl_client_device_from_json (JsonNode *node,
                  GError  **error)
{
  static const char *const registration_fields[] = {
    "name",
    "type",
    "model",
    "manufacturer",
    "firmware",
    "capabilities",
    "tags",
    "heartbeatTimeoutSec",
    "location",
  };
  g_autoptr (FlDevice)   device = NULL;
  g_autoptr (JsonObject) registration = NULL;
  g_autoptr (JsonObject) data = NULL;
  g_autoptr (GError)     local_error = NULL;
  JsonObject            *object;
  const char            *device_id;
  const char            *str;
  FlDeviceStatus         status;
  gint64                 last_seen = 0;
  gint64                 created_at = 0;
  gint64                 updated_at = 0;
  double                 number;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "A device in the reply is not a JSON object");
      return NULL;
    }
  object = json_node_get_object (node);

  device_id = _fl_json_get_string (object, "deviceId");
  if (device_id == NULL || !fl_device_id_is_valid (device_id))
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "A device in the reply has no valid deviceId");
      return NULL;
    }

  device = fl_device_new (device_id);

  registration = json_object_new ();
  for (guint i = 0; i < G_N_ELEMENTS (registration_fields); i++)
    {
      JsonNode *member = json_object_get_member (object, registration_fields[i]);

      if (member != NULL && !JSON_NODE_HOLDS_NULL (member))
        json_object_set_member (registration, registration_fields[i],
                                json_node_copy (member));
    }
  if (!fl_device_update_from_json (device, registration, TRUE, &local_error))
    {
      g_set_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                   "Device %s in the reply is not valid: %s",
                   device_id, local_error->message);
      return NULL;
    }

  _fl_json_get_int (object, "lastSeen", &last_seen);
  _fl_json_get_int (object, "createdAt", &created_at);
  _fl_json_get_int (object, "updatedAt", &updated_at);

  data = json_object_new ();
  if (get_double (object, "battery", &number))
    json_object_set_double_member (data, "battery", number);
  if (get_double (object, "rssi", &number))
    json_object_set_double_member (data, "rssi", number);
  if (json_object_get_size (data) > 0)
    fl_device_apply_event_data (device, data, last_seen);

  if ((str = _fl_json_get_string (object, "status")) != NULL && fl_device_status_from_string (str, &status))
    fl_device_set_status (device, status);

  fl_device_set_last_seen (device, last_seen);
  fl_device_set_created_at (device, created_at);
  fl_device_set_updated_at (device, updated_at);

  return g_steal_pointer (&device);
}

static GPtrArray *
devices_from_json (JsonArray *array,
                   GError   **error)
{
  g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; array != NULL && i < json_array_get_length (array); i++)
    {
      FlDevice *device = _fl_client_device_from_json (json_array_get_element (array, i), error);

      if (device == NULL)
        return NULL;
      g_ptr_array_add (devices, device);
    }

  return g_steal_pointer (&devices);
}

FlEvent *
_fl_client_event_from_json (JsonNode *node,
                 GError  **error)
{
  FlEventParseOptions options = { 0 };
  g_autoptr (GError)  local_error = NULL;
  g_autoptr (FlEvent) event = NULL;
  JsonObject         *object;
  gint64              value;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "An event in the reply is not a JSON object");
      return NULL;
    }

  event = fl_event_from_json_node (node, &options, &local_error);
  if (event == NULL)
    {
      g_set_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                   "An event in the reply is not valid: %s", local_error->message);
      return NULL;
    }

  object = json_node_get_object (node);
  if (_fl_json_get_int (object, "seq", &value))
    fl_event_set_seq (event, value);
  if (_fl_json_get_int (object, "receivedAt", &value))
    fl_event_set_received_at (event, value);

  return g_steal_pointer (&event);
}

/* ---- the client -------------------------------------------------------- */

struct _FlClient
{
  GObject parent_instance;

  SoupSession *session;
  char        *base_url;
  char        *websocket_url;
  guint        max_connections;

  char  *id_token;
  char  *access_token;
  char  *refresh_token;
  gint64 token_expiry;
};

G_DEFINE_FINAL_TYPE (FlClient, fl_client, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_BASE_URL,
  PROP_WEBSOCKET_URL,
  PROP_MAX_CONNECTIONS,
  N_PROPS
};

enum
{
  TOKENS_CHANGED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint       signals[N_SIGNALS];

static char *
strip_trailing_slashes (const char *url)
{
  char *ret = g_strdup (url);
  gsize len = strlen (ret);

  while (len > 0 && ret[len - 1] == '/')
    ret[--len] = '\0';

  return ret;
}

static void
fl_client_constructed (GObject *object)
{
  FlClient        *self = FL_CLIENT (object);
  g_autofree char *user_agent = g_strdup_printf ("fieldline/%s", PACKAGE_VERSION);

  G_OBJECT_CLASS (fl_client_parent_class)->constructed (object);

  self->session = soup_session_new_with_options ("max-conns", MAX (self->max_connections, 10u),
                                                 "max-conns-per-host", self->max_connections,
                                                 "timeout", 60,
                                                 "user-agent", user_agent,
                                                 NULL);

  if (self->websocket_url == NULL && self->base_url != NULL)
    {
      if (g_str_has_prefix (self->base_url, "https:"))
        self->websocket_url = g_strconcat ("wss:", self->base_url + strlen ("https:"), NULL);
      else if (g_str_has_prefix (self->base_url, "http:"))
        self->websocket_url = g_strconcat ("ws:", self->base_url + strlen ("http:"), NULL);
      else
        self->websocket_url = g_strdup (self->base_url);
    }
}

static void
fl_client_dispose (GObject *object)
{
  FlClient *self = FL_CLIENT (object);

  if (self->session != NULL)
    soup_session_abort (self->session);
  g_clear_object (&self->session);

  G_OBJECT_CLASS (fl_client_parent_class)->dispose (object);
}

static void
fl_client_finalize (GObject *object)
{
  FlClient *self = FL_CLIENT (object);

  g_clear_pointer (&self->base_url, g_free);
  g_clear_pointer (&self->websocket_url, g_free);
  g_clear_pointer (&self->id_token, g_free);
  g_clear_pointer (&self->access_token, g_free);
  g_clear_pointer (&self->refresh_token, g_free);

  G_OBJECT_CLASS (fl_client_parent_class)->finalize (object);
}

static void
fl_client_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  FlClient *self = FL_CLIENT (object);

  switch (prop_id)
    {
    case PROP_BASE_URL:
      g_value_set_string (value, self->base_url);
      break;
    case PROP_WEBSOCKET_URL:
      g_value_set_string (value, self->websocket_url);
      break;
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, self->max_connections);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_client_set_property (GObject      *object,
                        guint         prop_id,
                        const GValue *value,
                        GParamSpec   *pspec)
{
  FlClient *self = FL_CLIENT (object);

  switch (prop_id)
    {
    case PROP_BASE_URL:
      g_clear_pointer (&self->base_url, g_free);
      if (g_value_get_string (value) != NULL)
        self->base_url = strip_trailing_slashes (g_value_get_string (value));
      break;
    case PROP_WEBSOCKET_URL:
      fl_client_set_websocket_url (self, g_value_get_string (value));
      break;
    case PROP_MAX_CONNECTIONS:
      self->max_connections = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_client_class_init (FlClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = fl_client_constructed;
  object_class->dispose = fl_client_dispose;
  object_class->finalize = fl_client_finalize;
  object_class->get_property = fl_client_get_property;
  object_class->set_property = fl_client_set_property;

  properties[PROP_BASE_URL] = g_param_spec_string ("base-url", NULL, NULL, NULL,
                                                   G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_WEBSOCKET_URL] = g_param_spec_string ("websocket-url", NULL, NULL, NULL,
                                                        G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  /* Keep-alive HTTP connections to the server at most; construct-only. */
  properties[PROP_MAX_CONNECTIONS] = g_param_spec_uint ("max-connections", NULL, NULL, 1, 256, DEFAULT_MAX_CONNECTIONS,
                                                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[TOKENS_CHANGED] = g_signal_new ("tokens-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                          0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
fl_client_init (FlClient *self)
{
  self->max_connections = DEFAULT_MAX_CONNECTIONS;
}

/**
 * fl_client_new:
 * @base_url: the API's root URL
 *
 * Returns: (transfer full): a new client
 */
FlClient *
fl_client_new (const char *base_url)
{
  g_return_val_if_fail (base_url != NULL, NULL);

  return g_object_new (FL_TYPE_CLIENT, "base-url", base_url, NULL);
}

const char *
fl_client_get_base_url (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), NULL);

  return self->base_url;
}

const char *
fl_client_get_websocket_url (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), NULL);

  return self->websocket_url;
}

void
fl_client_set_websocket_url (FlClient   *self,
                             const char *websocket_url)
{
  g_autofree char *url = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));

  if (websocket_url == NULL)
    return;

  url = strip_trailing_slashes (websocket_url);
  if (g_strcmp0 (url, self->websocket_url) == 0)
    return;

  g_free (self->websocket_url);
  self->websocket_url = g_steal_pointer (&url);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_WEBSOCKET_URL]);
}

const char *
fl_client_get_id_token (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), NULL);

  return self->id_token;
}

const char *
fl_client_get_access_token (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), NULL);

  return self->access_token;
}

const char *
fl_client_get_refresh_token (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), NULL);

  return self->refresh_token;
}

gint64
fl_client_get_token_expiry (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), 0);

  return self->token_expiry;
}

gboolean
fl_client_is_signed_in (FlClient *self)
{
  g_return_val_if_fail (FL_IS_CLIENT (self), FALSE);

  return self->id_token != NULL || self->access_token != NULL;
}

static void
replace_string (char      **field,
                const char *value)
{
  char *copy = g_strdup (value);

  g_free (*field);
  *field = copy;
}

void
fl_client_set_tokens (FlClient   *self,
                      const char *id_token,
                      const char *access_token,
                      const char *refresh_token,
                      gint64      expiry)
{
  g_return_if_fail (FL_IS_CLIENT (self));

  replace_string (&self->id_token, id_token);
  replace_string (&self->access_token, access_token);
  replace_string (&self->refresh_token, refresh_token);
  self->token_expiry = expiry;

  g_signal_emit (self, signals[TOKENS_CHANGED], 0);
}

void
fl_client_sign_out (FlClient *self)
{
  g_return_if_fail (FL_IS_CLIENT (self));

  fl_client_set_tokens (self, NULL, NULL, NULL, 0);
}

/* ---- requests ---------------------------------------------------------- */

typedef enum
{
  AUTH_NONE,
  AUTH_BEARER,
  AUTH_BASIC,
} AuthKind;

typedef struct
{
  char        *method;
  char        *path;
  GBytes      *body;
  AuthKind     auth;
  char        *authorization;
  gboolean     idempotent;
  gboolean     retried;
  SoupMessage *message;
} Request;

static void
request_free (Request *request)
{
  g_clear_pointer (&request->method, g_free);
  g_clear_pointer (&request->path, g_free);
  g_clear_pointer (&request->body, g_bytes_unref);
  g_clear_pointer (&request->authorization, g_free);
  g_clear_object (&request->message);
  g_free (request);
}

static char *
basic_authorization (const char *user,
                     const char *password)
{
  g_autofree char *pair = g_strdup_printf ("%s:%s", user, password);
  g_autofree char *encoded = g_base64_encode ((const guchar *) pair, strlen (pair));

  return g_strconcat ("Basic ", encoded, NULL);
}

static void request_send (FlClient *self,
                          GTask    *task);

static void
request_refresh_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  FlClient          *self = FL_CLIENT (object);
  g_autoptr (GTask)  task = user_data;
  g_autoptr (GError) error = NULL;

  if (!fl_client_refresh_finish (self, result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED,
                                 "The session has expired: %s", error->message);
      return;
    }

  request_send (self, g_steal_pointer (&task));
}

static guint
parse_retry_after (SoupMessage *message)
{
  const char *value = soup_message_headers_get_one (soup_message_get_response_headers (message),
                                                    "Retry-After");
  guint64     seconds;

  if (value != NULL && g_ascii_string_to_unsigned (value, 10, 0, 86400, &seconds, NULL))
    return (guint) seconds;
  return 0;
}

static void
request_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  SoupSession       *session = SOUP_SESSION (object);
  g_autoptr (GTask)  task = user_data;
  FlClient          *self = g_task_get_source_object (task);
  Request           *request = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  JsonNode          *node;
  const char        *data;
  gsize              length;
  guint              status;

  bytes = soup_session_send_and_read_finish (session, result, &error);
  if (bytes == NULL)
    {
      g_debug ("%s %s: %s", request->method, request->path, error->message);
      g_task_return_error (task, _fl_client_error_new_network (g_steal_pointer (&error)));
      return;
    }

  status = soup_message_get_status (request->message);
  g_debug ("%s %s: %u", request->method, request->path, status);

  if (status == SOUP_STATUS_UNAUTHORIZED && request->auth == AUTH_BEARER && !request->retried && self->refresh_token != NULL)
    {
      GCancellable *cancellable = g_task_get_cancellable (task);

      request->retried = TRUE;
      fl_client_refresh_async (self, cancellable, request_refresh_cb, g_steal_pointer (&task));
      return;
    }

  if (!SOUP_STATUS_IS_SUCCESSFUL (status))
    {
      g_task_return_error (task,
                           _fl_client_error_new_for_status (status,
                                                            soup_message_get_reason_phrase (request->message),
                                                            bytes,
                                                            parse_retry_after (request->message)));
      return;
    }

  data = g_bytes_get_data (bytes, &length);
  if (length == 0)
    {
      g_task_return_pointer (task, NULL, NULL);
      return;
    }

  node = parse_json (data, length, &error);
  if (node == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, node, (GDestroyNotify) json_node_unref);
}

static void
request_send (FlClient *self,
              GTask    *task)
{
  Request            *request = g_task_get_task_data (task);
  g_autofree char    *uri = g_strconcat (self->base_url, request->path, NULL);
  SoupMessageHeaders *headers;

  g_clear_object (&request->message);
  request->message = soup_message_new (request->method, uri);
  if (request->message == NULL)
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                               "Not a valid URL: %s", uri);
      g_object_unref (task);
      return;
    }

  headers = soup_message_get_request_headers (request->message);
  soup_message_headers_replace (headers, "Accept", "application/json");

  if (request->auth == AUTH_BEARER)
    {
      const char *token = self->id_token != NULL ? self->id_token : self->access_token;

      if (token != NULL)
        {
          g_autofree char *value = g_strconcat ("Bearer ", token, NULL);

          soup_message_headers_replace (headers, "Authorization", value);
        }
    }
  else if (request->auth == AUTH_BASIC)
    soup_message_headers_replace (headers, "Authorization", request->authorization);

  if (request->body != NULL)
    soup_message_set_request_body_from_bytes (request->message, "application/json",
                                              request->body);

  /* libsoup never sends a POST on a connection used before, unless it
   * is marked idempotent (GET, PUT and DELETE are by their method); a
   * POST /ingest is, by its event ids, and it must reuse the pool */
  if (request->idempotent)
    soup_message_add_flags (request->message, SOUP_MESSAGE_IDEMPOTENT);

  soup_session_send_and_read_async (self->session, request->message, G_PRIORITY_DEFAULT,
                                    g_task_get_cancellable (task), request_cb, task);
}

static void
request_async (FlClient           *self,
               const char         *method,
               const char         *path,
               GBytes             *body,
               AuthKind            auth,
               const char         *authorization,
               gboolean            idempotent,
               GCancellable       *cancellable,
               GAsyncReadyCallback callback,
               gpointer            user_data)
{
  GTask   *task;
  Request *request;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, request_async);

  request = g_new0 (Request, 1);
  request->method = g_strdup (method);
  request->path = g_strdup (path);
  request->body = body != NULL ? g_bytes_ref (body) : NULL;
  request->auth = auth;
  request->authorization = g_strdup (authorization);
  request->idempotent = idempotent;
  g_task_set_task_data (task, request, (GDestroyNotify) request_free);

  request_send (self, task);
}

static JsonNode *
request_finish (FlClient     *self,
                GAsyncResult *result,
                GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == request_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static GBytes *
node_to_bytes (JsonNode *node)
{
  gsize length;
  char *text = fl_json_to_string (node, &length);

  return g_bytes_new_take (text, length);
}

static GBytes *
object_to_bytes (JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (node, object);
  return node_to_bytes (node);
}

/* Appends "&name=value" (or "?name=value" first) with value escaped. */
static void
append_query (GString    *path,
              const char *name,
              const char *value)
{
  g_autofree char *escaped = NULL;

  if (value == NULL)
    return;

  escaped = g_uri_escape_string (value, NULL, FALSE);
  g_string_append_c (path, strchr (path->str, '?') != NULL ? '&' : '?');
  g_string_append (path, name);
  g_string_append_c (path, '=');
  g_string_append (path, escaped);
}

static void
append_query_int (GString    *path,
                  const char *name,
                  gint64      value)
{
  char buf[32];

  g_snprintf (buf, sizeof buf, "%" G_GINT64_FORMAT, value);
  append_query (path, name, buf);
}

static char *
escape_segment (const char *segment)
{
  return g_uri_escape_string (segment, NULL, FALSE);
}

/* ---- GET /config ------------------------------------------------------- */

static void
get_config_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  FlClientConfig      *config;
  JsonObject          *reply;

  if (error != NULL || (reply = reply_object (node, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  config = g_new0 (FlClientConfig, 1);
  config->user_pool_id = g_strdup (_fl_json_get_string (reply, "userPoolId"));
  config->client_id = g_strdup (_fl_json_get_string (reply, "clientId"));
  config->region = g_strdup (_fl_json_get_string (reply, "region"));
  config->issuer = g_strdup (_fl_json_get_string (reply, "issuer"));
  config->api_url = g_strdup (_fl_json_get_string (reply, "apiUrl"));
  config->websocket_url = g_strdup (_fl_json_get_string (reply, "websocketUrl"));

  g_task_return_pointer (task, config, (GDestroyNotify) fl_client_config_free);
}

void
fl_client_get_config_async (FlClient           *self,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_get_config_async);

  request_async (self, "GET", "/config", NULL, AUTH_NONE, NULL, FALSE, cancellable,
                 get_config_cb, g_steal_pointer (&task));
}

/**
 * fl_client_get_config_finish:
 *
 * Returns: (transfer full): the configuration
 */
FlClientConfig *
fl_client_get_config_finish (FlClient     *self,
                             GAsyncResult *result,
                             GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_get_config_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- POST /auth/login, /auth/refresh ----------------------------------- */

static gboolean
take_tokens (FlClient   *self,
             JsonObject *reply,
             gboolean    keep_refresh_token,
             GError    **error)
{
  const char      *id_token = _fl_json_get_string (reply, "idToken");
  const char      *access_token = _fl_json_get_string (reply, "accessToken");
  const char      *refresh_token = _fl_json_get_string (reply, "refreshToken");
  g_autofree char *old_refresh_token = NULL;
  gint64           expires_in = 0;

  if (id_token == NULL && access_token == NULL)
    {
      g_set_error_literal (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                           "The sign-in reply holds no token");
      return FALSE;
    }

  /* Cognito does not send a new refresh token on refresh */
  if (refresh_token == NULL && keep_refresh_token)
    refresh_token = old_refresh_token = g_strdup (self->refresh_token);

  _fl_json_get_int (reply, "expiresIn", &expires_in);

  fl_client_set_tokens (self, id_token, access_token, refresh_token,
                        expires_in > 0 ? g_get_real_time () / G_USEC_PER_SEC + expires_in : 0);

  return TRUE;
}

static void
login_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  JsonObject          *reply;

  if (error != NULL || (reply = reply_object (node, &error)) == NULL || !take_tokens (self, reply, FALSE, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

void
fl_client_login_async (FlClient           *self,
                       const char         *username,
                       const char         *password,
                       GCancellable       *cancellable,
                       GAsyncReadyCallback callback,
                       gpointer            user_data)
{
  g_autoptr (GTask)      task = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GBytes)     bytes = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (username != NULL);
  g_return_if_fail (password != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_login_async);

  body = json_object_new ();
  json_object_set_string_member (body, "username", username);
  json_object_set_string_member (body, "password", password);
  bytes = object_to_bytes (body);

  request_async (self, "POST", "/auth/login", bytes, AUTH_NONE, NULL, FALSE, cancellable,
                 login_cb, g_steal_pointer (&task));
}

gboolean
fl_client_login_finish (FlClient     *self,
                        GAsyncResult *result,
                        GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_login_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
refresh_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  JsonObject          *reply;

  if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED))
    {
      /* The refresh token is no good any more: signed out */
      fl_client_sign_out (self);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (error != NULL || (reply = reply_object (node, &error)) == NULL || !take_tokens (self, reply, TRUE, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

void
fl_client_refresh_async (FlClient           *self,
                         GCancellable       *cancellable,
                         GAsyncReadyCallback callback,
                         gpointer            user_data)
{
  g_autoptr (GTask)      task = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GBytes)     bytes = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_refresh_async);

  if (self->refresh_token == NULL)
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED,
                               "Not signed in");
      return;
    }

  body = json_object_new ();
  json_object_set_string_member (body, "refreshToken", self->refresh_token);
  bytes = object_to_bytes (body);

  request_async (self, "POST", "/auth/refresh", bytes, AUTH_NONE, NULL, FALSE, cancellable,
                 refresh_cb, g_steal_pointer (&task));
}

gboolean
fl_client_refresh_finish (FlClient     *self,
                          GAsyncResult *result,
                          GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_refresh_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- devices ----------------------------------------------------------- */

typedef struct
{
  FlDevice *device;
  char     *secret;
} RegisterResult;

static void
register_result_free (RegisterResult *result)
{
  g_clear_object (&result->device);
  g_clear_pointer (&result->secret, g_free);
  g_free (result);
}

static void
register_device_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  g_autoptr (FlDevice) device = NULL;
  RegisterResult      *ret;
  JsonObject          *reply;
  const char          *secret;

  if (error != NULL || (reply = reply_object (node, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* {device fields..., deviceSecret} or {"device": {...}, "deviceSecret"} */
  secret = _fl_json_get_string (reply, "deviceSecret");
  if (json_object_has_member (reply, "device") && !json_object_has_member (reply, "deviceId"))
    device = _fl_client_device_from_json (json_object_get_member (reply, "device"), &error);
  else
    device = _fl_client_device_from_json (node, &error);

  if (device == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (secret == NULL || *secret == '\0')
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                               "The registration reply holds no deviceSecret");
      return;
    }

  ret = g_new0 (RegisterResult, 1);
  ret->device = g_steal_pointer (&device);
  ret->secret = g_strdup (secret);
  g_task_return_pointer (task, ret, (GDestroyNotify) register_result_free);
}

void
fl_client_register_device_async (FlClient           *self,
                                 JsonObject         *registration,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GBytes) bytes = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (registration != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_register_device_async);

  bytes = object_to_bytes (registration);
  request_async (self, "POST", "/devices", bytes, AUTH_BEARER, NULL, FALSE, cancellable,
                 register_device_cb, g_steal_pointer (&task));
}

/**
 * fl_client_register_device_finish:
 * @device_secret: (out) (optional) (transfer full): the device's secret
 *
 * Returns: (transfer full): the registered device
 */
FlDevice *
fl_client_register_device_finish (FlClient     *self,
                                  GAsyncResult *result,
                                  char        **device_secret,
                                  GError      **error)
{
  RegisterResult *ret;
  FlDevice       *device;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_register_device_async, NULL);

  ret = g_task_propagate_pointer (G_TASK (result), error);
  if (ret == NULL)
    return NULL;

  device = g_steal_pointer (&ret->device);
  if (device_secret != NULL)
    *device_secret = g_steal_pointer (&ret->secret);
  register_result_free (ret);

  return device;
}

static void
get_device_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  FlDevice            *device;

  if (error != NULL || (device = _fl_client_device_from_json (node, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_pointer (task, device, g_object_unref);
}

void
fl_client_get_device_async (FlClient           *self,
                            const char         *device_id,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char  *escaped = NULL;
  g_autofree char  *path = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_get_device_async);

  escaped = escape_segment (device_id);
  path = g_strconcat ("/devices/", escaped, NULL);
  request_async (self, "GET", path, NULL, AUTH_BEARER, NULL, FALSE, cancellable,
                 get_device_cb, g_steal_pointer (&task));
}

/**
 * fl_client_get_device_finish:
 *
 * Returns: (transfer full): the device
 */
FlDevice *
fl_client_get_device_finish (FlClient     *self,
                             GAsyncResult *result,
                             GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_get_device_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
rotate_device_secret_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  JsonObject          *reply;
  const char          *secret;

  if (error != NULL || (reply = reply_object (node, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  secret = _fl_json_get_string (reply, "deviceSecret");
  if (secret == NULL || *secret == '\0')
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                               "The reply holds no deviceSecret");
      return;
    }

  g_task_return_pointer (task, g_strdup (secret), g_free);
}

void
fl_client_rotate_device_secret_async (FlClient           *self,
                                      const char         *device_id,
                                      GCancellable       *cancellable,
                                      GAsyncReadyCallback callback,
                                      gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char  *escaped = NULL;
  g_autofree char  *path = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_rotate_device_secret_async);

  escaped = escape_segment (device_id);
  path = g_strconcat ("/devices/", escaped, "/secret", NULL);
  request_async (self, "POST", path, NULL, AUTH_BEARER, NULL, FALSE, cancellable,
                 rotate_device_secret_cb, g_steal_pointer (&task));
}

/**
 * fl_client_rotate_device_secret_finish:
 *
 * Returns: (transfer full): the new secret
 */
char *
fl_client_rotate_device_secret_finish (FlClient     *self,
                                       GAsyncResult *result,
                                       GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_rotate_device_secret_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- pages of devices and events --------------------------------------- */

typedef struct
{
  GPtrArray *items;
  char      *next_cursor;
} Page;

static void
page_free (Page *page)
{
  g_clear_pointer (&page->items, g_ptr_array_unref);
  g_clear_pointer (&page->next_cursor, g_free);
  g_free (page);
}

/* A page is a bare array or {"<name>" | "items": [...], "nextCursor"}. */
static JsonArray *
page_items (JsonNode   *node,
            const char *name,
            char      **next_cursor,
            GError    **error)
{
  JsonObject *object;
  JsonArray  *array;

  *next_cursor = NULL;

  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    return json_node_get_array (node);

  if ((object = reply_object (node, error)) == NULL)
    return NULL;

  array = _fl_json_get_array (object, name);
  if (array == NULL)
    array = _fl_json_get_array (object, "items");
  if (array == NULL)
    {
      g_set_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_PROTOCOL,
                   "The reply has no \"%s\" list", name);
      return NULL;
    }

  *next_cursor = dup_cursor (object);
  return array;
}

static void
list_devices_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  g_autofree char     *next_cursor = NULL;
  JsonArray           *array = NULL;
  GPtrArray           *devices = NULL;
  Page                *page;

  if (error != NULL || (array = page_items (node, "devices", &next_cursor, &error)) == NULL || (devices = devices_from_json (array, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  page = g_new0 (Page, 1);
  page->items = devices;
  page->next_cursor = g_steal_pointer (&next_cursor);
  g_task_return_pointer (task, page, (GDestroyNotify) page_free);
}

void
fl_client_list_devices_async (FlClient                *self,
                              const FlDeviceListQuery *query,
                              GCancellable            *cancellable,
                              GAsyncReadyCallback      callback,
                              gpointer                 user_data)
{
  g_autoptr (GTask)   task = NULL;
  g_autoptr (GString) path = g_string_new ("/devices");

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_list_devices_async);

  if (query != NULL)
    {
      append_query (path, "status", query->status);
      append_query (path, "tag", query->tag);
      append_query (path, "q", query->q);
      append_query (path, "cursor", query->cursor);
      if (query->limit > 0)
        append_query_int (path, "limit", query->limit);
    }

  request_async (self, "GET", path->str, NULL, AUTH_BEARER, NULL, FALSE, cancellable,
                 list_devices_cb, g_steal_pointer (&task));
}

static GPtrArray *
page_finish (GTask   *task,
             char   **next_cursor,
             GError **error)
{
  Page      *page = g_task_propagate_pointer (task, error);
  GPtrArray *items;

  if (next_cursor != NULL)
    *next_cursor = NULL;
  if (page == NULL)
    return NULL;

  items = g_steal_pointer (&page->items);
  if (next_cursor != NULL)
    *next_cursor = g_steal_pointer (&page->next_cursor);
  page_free (page);

  return items;
}

/**
 * fl_client_list_devices_finish:
 * @next_cursor: (out) (optional) (transfer full) (nullable): the next page
 *
 * Returns: (transfer full) (element-type FlDevice): the devices
 */
GPtrArray *
fl_client_list_devices_finish (FlClient     *self,
                               GAsyncResult *result,
                               char        **next_cursor,
                               GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_list_devices_async, NULL);

  return page_finish (G_TASK (result), next_cursor, error);
}

static void
list_events_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  FlClient             *self = FL_CLIENT (object);
  g_autoptr (GTask)     task = user_data;
  g_autoptr (GError)    error = NULL;
  g_autoptr (JsonNode)  node = request_finish (self, result, &error);
  g_autofree char      *next_cursor = NULL;
  g_autoptr (GPtrArray) events = NULL;
  JsonArray            *array = NULL;
  Page                 *page;

  if (error != NULL || (array = page_items (node, "events", &next_cursor, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  events = g_ptr_array_new_full (json_array_get_length (array),
                                 (GDestroyNotify) fl_event_unref);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      FlEvent *event = _fl_client_event_from_json (json_array_get_element (array, i), &error);

      if (event == NULL)
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      g_ptr_array_add (events, event);
    }

  page = g_new0 (Page, 1);
  page->items = g_steal_pointer (&events);
  page->next_cursor = g_steal_pointer (&next_cursor);
  g_task_return_pointer (task, page, (GDestroyNotify) page_free);
}

void
fl_client_list_events_async (FlClient               *self,
                             const FlEventListQuery *query,
                             GCancellable           *cancellable,
                             GAsyncReadyCallback     callback,
                             gpointer                user_data)
{
  g_autoptr (GTask)   task = NULL;
  g_autoptr (GString) path = g_string_new ("/events");

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_list_events_async);

  if (query != NULL)
    {
      append_query (path, "device", query->device_id);
      append_query (path, "type", query->event_type);
      if (query->from != 0)
        append_query_int (path, "from", query->from);
      if (query->to != 0)
        append_query_int (path, "to", query->to);
      append_query (path, "cursor", query->cursor);
      if (query->limit > 0)
        append_query_int (path, "limit", query->limit);
    }

  request_async (self, "GET", path->str, NULL, AUTH_BEARER, NULL, FALSE, cancellable,
                 list_events_cb, g_steal_pointer (&task));
}

/**
 * fl_client_list_events_finish:
 * @next_cursor: (out) (optional) (transfer full) (nullable): the next page
 *
 * Returns: (transfer full) (element-type FlEvent): the events
 */
GPtrArray *
fl_client_list_events_finish (FlClient     *self,
                              GAsyncResult *result,
                              char        **next_cursor,
                              GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_list_events_async, NULL);

  return page_finish (G_TASK (result), next_cursor, error);
}

/* ---- POST /ingest ------------------------------------------------------ */

static void
ingest_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  FlClient            *self = FL_CLIENT (object);
  g_autoptr (GTask)    task = user_data;
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = request_finish (self, result, &error);
  FlIngestResult      *ingest;
  JsonObject          *reply;

  if (error != NULL || (reply = reply_object (node, &error)) == NULL || (ingest = _fl_ingest_result_new_from_json (reply, &error)) == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_pointer (task, ingest, (GDestroyNotify) fl_ingest_result_free);
}

void
fl_client_ingest_async (FlClient           *self,
                        const char         *device_id,
                        const char         *device_secret,
                        GPtrArray          *events,
                        GCancellable       *cancellable,
                        GAsyncReadyCallback callback,
                        gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autofree char   *authorization = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (device_secret != NULL);
  g_return_if_fail (events != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_ingest_async);

  bytes = _fl_events_to_json_array (events);
  authorization = basic_authorization (device_id, device_secret);
  request_async (self, "POST", "/ingest", bytes, AUTH_BASIC, authorization, TRUE, cancellable,
                 ingest_cb, g_steal_pointer (&task));
}

/**
 * fl_client_ingest_finish:
 *
 * Returns: (transfer full): how the relay took the events
 */
FlIngestResult *
fl_client_ingest_finish (FlClient     *self,
                         GAsyncResult *result,
                         GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_ingest_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- any call ---------------------------------------------------------- */

static void
call_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  FlClient          *self = FL_CLIENT (object);
  g_autoptr (GTask)  task = user_data;
  g_autoptr (GError) error = NULL;
  JsonNode          *node = request_finish (self, result, &error);

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, node, (GDestroyNotify) json_node_unref);
}

void
fl_client_call_async (FlClient           *self,
                      const char         *method,
                      const char         *path,
                      JsonNode           *body,
                      GCancellable       *cancellable,
                      GAsyncReadyCallback callback,
                      gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GBytes) bytes = NULL;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (method != NULL);
  g_return_if_fail (path != NULL && path[0] == '/');
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_call_async);

  if (body != NULL)
    bytes = node_to_bytes (body);
  request_async (self, method, path, bytes, AUTH_BEARER, NULL, FALSE, cancellable,
                 call_cb, g_steal_pointer (&task));
}

/**
 * fl_client_call_finish:
 *
 * Returns: (transfer full) (nullable): the reply
 */
JsonNode *
fl_client_call_finish (FlClient     *self,
                       GAsyncResult *result,
                       GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_call_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- the device channel ------------------------------------------------ */

typedef struct
{
  SoupMessage *message;
  char        *device_id;
} OpenChannel;

static void
open_channel_free (OpenChannel *data)
{
  g_clear_object (&data->message);
  g_clear_pointer (&data->device_id, g_free);
  g_free (data);
}

static void
open_device_channel_cb (GObject      *object,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  SoupSession                        *session = SOUP_SESSION (object);
  g_autoptr (GTask)                   task = user_data;
  OpenChannel                        *data = g_task_get_task_data (task);
  g_autoptr (SoupWebsocketConnection) connection = NULL;
  g_autoptr (GError)                  error = NULL;
  guint                               status;

  connection = soup_session_websocket_connect_finish (session, result, &error);
  if (connection == NULL)
    {
      status = soup_message_get_status (data->message);
      g_debug ("Device channel of %s: %u %s", data->device_id, status, error->message);

      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && status >= 300 && status < 600)
        g_task_return_error (task,
                             _fl_client_error_new_for_status (status,
                                                              soup_message_get_reason_phrase (data->message),
                                                              NULL,
                                                              parse_retry_after (data->message)));
      else
        g_task_return_error (task, _fl_client_error_new_network (g_steal_pointer (&error)));
      return;
    }

  g_task_return_pointer (task, _fl_device_channel_new (connection, data->device_id),
                         g_object_unref);
}

void
fl_client_open_device_channel_async (FlClient           *self,
                                     const char         *device_id,
                                     const char         *device_secret,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree char  *authorization = NULL;
  g_autofree char  *uri = NULL;
  OpenChannel      *data;

  g_return_if_fail (FL_IS_CLIENT (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (device_secret != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_client_open_device_channel_async);

  /* libsoup wants the http(s) form of the address for the upgrade */
  if (g_str_has_prefix (self->websocket_url, "wss:"))
    uri = g_strconcat ("https:", self->websocket_url + strlen ("wss:"), "/device", NULL);
  else if (g_str_has_prefix (self->websocket_url, "ws:"))
    uri = g_strconcat ("http:", self->websocket_url + strlen ("ws:"), "/device", NULL);
  else
    uri = g_strconcat (self->websocket_url, "/device", NULL);

  data = g_new0 (OpenChannel, 1);
  data->device_id = g_strdup (device_id);
  data->message = soup_message_new ("GET", uri);
  g_task_set_task_data (task, data, (GDestroyNotify) open_channel_free);

  if (data->message == NULL)
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                               "Not a valid URL: %s", uri);
      return;
    }

  authorization = basic_authorization (device_id, device_secret);
  soup_message_headers_replace (soup_message_get_request_headers (data->message),
                                "Authorization", authorization);

  soup_session_websocket_connect_async (self->session, data->message, NULL, NULL,
                                        G_PRIORITY_DEFAULT, cancellable,
                                        open_device_channel_cb, g_steal_pointer (&task));
}

/**
 * fl_client_open_device_channel_finish:
 *
 * Returns: (transfer full): the open channel
 */
FlDeviceChannel *
fl_client_open_device_channel_finish (FlClient     *self,
                                      GAsyncResult *result,
                                      GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_client_open_device_channel_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
