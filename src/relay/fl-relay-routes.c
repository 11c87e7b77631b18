/* fl-relay-routes.c: the REST API (PLATFORM.md, REST API). */
#define G_LOG_DOMAIN "fl-relay-routes"

#include "config.h"

#include <string.h>

#include "fl-cognito.h"
#include "fl-relay-private.h"

#define DEFAULT_PAGE 100
#define MAX_PAGE     1000

/* ---- small helpers ------------------------------------------------------ */

JsonObject *
_fl_read_json_object (SoupServerMessage  *msg,
                      GError            **error)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local_error = NULL;
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  if (len == 0)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                           "The request needs a JSON object body");
      return NULL;
    }

  if (!json_parser_load_from_data (parser, data, len, &local_error))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                   "The request body is not valid JSON: %s", local_error->message);
      return NULL;
    }

  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                           "The request body must be a JSON object");
      return NULL;
    }

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/* A string member that must be there. */
static const char *
require_string (JsonObject  *object,
                const char  *name,
                GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD, "Field “%s” is required", name);
      return NULL;
    }
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING ||
      *json_node_get_string (node) == '\0')
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD, "Field “%s” must be a non-empty string", name);
      return NULL;
    }

  return json_node_get_string (node);
}

static void
reply_device (SoupServerMessage *msg,
              guint              status,
              FlDevice          *device,
              const char        *secret)
{
  GString *out = g_string_new (NULL);

  fl_device_append_json (device, out);
  if (secret != NULL)
    {
      g_string_truncate (out, out->len - 1);
      g_string_append (out, ",\"deviceSecret\":");
      fl_json_append_string (out, secret);
      g_string_append_c (out, '}');
    }
  fl_http_reply_json (msg, status, out);
}

static void
reply_not_found (SoupServerMessage *msg,
                 const char        *what,
                 const char        *id)
{
  g_autoptr (GError) error = g_error_new (FL_API_ERROR, FL_API_ERROR_NOT_FOUND, "No %s “%s”", what, id);

  fl_http_reply_error (msg, error);
}

static void
reply_method_not_allowed (SoupServerMessage *msg,
                          const char        *allow)
{
  g_autoptr (GError) error = g_error_new (FL_API_ERROR, FL_API_ERROR_METHOD_NOT_ALLOWED,
                                          "%s is not allowed here; use %s",
                                          soup_server_message_get_method (msg), allow);

  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow", allow);
  fl_http_reply_error (msg, error);
}

/* ---- discovery and health ---------------------------------------------- */

static char *
public_base (FlRelay           *self,
             SoupServerMessage *msg,
             const char        *scheme)
{
  const char *host = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Host");
  gboolean tls = g_str_has_prefix (self->url, "https:");

  if (host == NULL || *host == '\0' || strpbrk (host, "/\\\"' ") != NULL)
    return g_strdup_printf ("%s%s", tls ? (scheme[0] == 'w' ? "wss" : "https") : scheme,
                            strchr (self->url, ':'));

  return g_strdup_printf ("%s%s://%s", scheme, tls ? "s" : "", host);
}

static void
handle_config (FlRelay           *self,
               SoupServerMessage *msg)
{
  g_autofree char *api = public_base (self, msg, "http");
  g_autofree char *ws = public_base (self, msg, "ws");
  GString *out = g_string_new ("{\"userPoolId\":");

  fl_json_append_string (out, fl_user_pool_get_pool_id (self->pool));
  g_string_append (out, ",\"clientId\":");
  fl_json_append_string (out, fl_user_pool_get_client_id (self->pool));
  g_string_append (out, ",\"region\":\"local\",\"issuer\":");
  fl_json_append_string (out, fl_user_pool_get_issuer (self->pool));
  g_string_append (out, ",\"apiUrl\":");
  fl_json_append_string (out, api);
  g_string_append (out, ",\"websocketUrl\":");
  {
    g_autofree char *events = g_strconcat (ws, "/events", NULL);
    fl_json_append_string (out, events);
  }
  g_string_append (out, ",\"cognitoEndpoint\":");
  fl_json_append_string (out, api);
  g_string_append_printf (out, ",\"version\":\"%s\"}", PACKAGE_VERSION);

  fl_http_reply_json (msg, 200, out);
}

/* ---- sign-in ------------------------------------------------------------ */

static void
tokens_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  FlRequest *request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlTokens) tokens = NULL;
  g_autoptr (JsonNode) node = NULL;

  if (soup_server_message_get_uri (request->msg) != NULL &&
      g_str_has_suffix (g_uri_get_path (soup_server_message_get_uri (request->msg)), "/refresh"))
    tokens = fl_user_pool_refresh_finish (FL_USER_POOL (source), result, &error);
  else
    tokens = fl_user_pool_login_finish (FL_USER_POOL (source), result, &error);

  if (tokens == NULL)
    {
      _fl_request_fail (request, error);
      return;
    }

  node = fl_tokens_to_json (tokens);
  {
    g_autofree char *text = fl_json_to_string (node, NULL);
    _fl_request_reply (request, 200, g_string_new (text));
  }
}

static void
handle_login (FlRelay           *self,
              SoupServerMessage *msg)
{
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError) error = NULL;
  const char *username, *password;

  if ((body = _fl_read_json_object (msg, &error)) == NULL ||
      (username = require_string (body, "username", &error)) == NULL ||
      (password = require_string (body, "password", &error)) == NULL)
    {
      fl_http_reply_error (msg, error);
      return;
    }

  fl_user_pool_login_async (self->pool, username, password, soup_server_message_get_remote_host (msg),
                            NULL, tokens_cb, _fl_request_new (self, msg, NULL));
}

static void
handle_refresh (FlRelay           *self,
                SoupServerMessage *msg)
{
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError) error = NULL;
  const char *refresh_token;

  if ((body = _fl_read_json_object (msg, &error)) == NULL ||
      (refresh_token = require_string (body, "refreshToken", &error)) == NULL)
    {
      fl_http_reply_error (msg, error);
      return;
    }

  fl_user_pool_refresh_async (self->pool, refresh_token, NULL, tokens_cb, _fl_request_new (self, msg, NULL));
}

/* OpenID Connect discovery, as Cognito publishes it for a pool */
static void
handle_openid_configuration (FlRelay           *self,
                             SoupServerMessage *msg)
{
  const char            *issuer = fl_user_pool_get_issuer (self->pool);
  g_autoptr (JsonObject) doc = json_object_new ();
  g_autoptr (JsonNode)   node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char       *jwks_uri = g_strconcat (issuer, "/.well-known/jwks.json", NULL);
  g_autofree char       *text = NULL;
  JsonArray             *array;

  json_object_set_string_member (doc, "issuer", issuer);
  json_object_set_string_member (doc, "jwks_uri", jwks_uri);
  array = json_array_new ();
  json_array_add_string_element (array, "public");
  json_object_set_array_member (doc, "subject_types_supported", array);
  array = json_array_new ();
  json_array_add_string_element (array, "RS256");
  json_object_set_array_member (doc, "id_token_signing_alg_values_supported", array);
  array = json_array_new ();
  json_array_add_string_element (array, "code");
  json_array_add_string_element (array, "token");
  json_object_set_array_member (doc, "response_types_supported", array);
  array = json_array_new ();
  json_array_add_string_element (array, "openid");
  json_array_add_string_element (array, "email");
  json_array_add_string_element (array, "profile");
  json_object_set_array_member (doc, "scopes_supported", array);
  json_node_set_object (node, doc);
  text = fl_json_to_string (node, NULL);
  fl_http_reply_json (msg, 200, g_string_new (text));
}

static void
handle_jwks (FlRelay           *self,
             SoupServerMessage *msg)
{
  g_autoptr (JsonNode) jwks = fl_user_pool_get_jwks (self->pool);
  g_autofree char *text = fl_json_to_string (jwks, NULL);

  fl_http_reply_json (msg, 200, g_string_new (text));
}

/* ---- devices --------------------------------------------------------------- */

static void
handle_list_devices (FlRelay           *self,
                     SoupServerMessage *msg,
                     GHashTable        *query)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) page = NULL;
  g_autofree char *next = NULL;
  g_autofree char *after = NULL;
  FlDeviceFilter filter = { .any_status = TRUE };
  const char *status = query ? g_hash_table_lookup (query, "status") : NULL;
  const char *cursor = query ? g_hash_table_lookup (query, "cursor") : NULL;
  gint64 limit;
  GString *out;

  if (!fl_http_query_int64 (query, "limit", DEFAULT_PAGE, 1, MAX_PAGE, &limit, &error))
    {
      fl_http_reply_error (msg, error);
      return;
    }
  if (status != NULL && *status != '\0')
    {
      if (!fl_device_status_from_string (status, &filter.status))
        {
          error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                                       "Parameter “status” must be online, offline, maintenance or decommissioned");
          fl_http_reply_error (msg, error);
          return;
        }
      filter.any_status = FALSE;
    }
  if (cursor != NULL && *cursor != '\0')
    {
      gsize len = 0;
      g_autofree guint8 *decoded = fl_base64url_decode (cursor, &len);

      if (decoded == NULL || len == 0 || len > FL_DEVICE_MAX_ID_LENGTH || memchr (decoded, 0, len))
        {
          error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_CURSOR,
                                       "Parameter “cursor” is not a cursor this API returned");
          fl_http_reply_error (msg, error);
          return;
        }
      after = g_strndup ((char *) decoded, len);
    }

  filter.tag = query ? g_hash_table_lookup (query, "tag") : NULL;
  filter.q = query ? g_hash_table_lookup (query, "q") : NULL;
  if (filter.tag != NULL && *filter.tag == '\0')
    filter.tag = NULL;
  if (filter.q != NULL && *filter.q == '\0')
    filter.q = NULL;
  filter.after = after;
  filter.limit = limit;

  page = fl_registry_list (self->registry, &filter, &next);

  out = g_string_sized_new (512 * page->len + 64);
  g_string_append (out, "{\"devices\":[");
  for (guint i = 0; i < page->len; i++)
    {
      if (i > 0)
        g_string_append_c (out, ',');
      fl_device_append_json (g_ptr_array_index (page, i), out);
    }
  g_string_append (out, "],\"nextCursor\":");
  if (next != NULL)
    {
      g_autofree char *encoded = fl_base64url_encode ((guint8 *) next, strlen (next));
      fl_json_append_string (out, encoded);
    }
  else
    g_string_append (out, "null");
  g_string_append_c (out, '}');

  fl_http_reply_json (msg, 200, out);
}

static void
handle_register_device (FlRelay           *self,
                        SoupServerMessage *msg)
{
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlDevice) device = NULL;
  g_autofree char *generated = NULL;
  g_autofree char *secret = NULL;
  const char *device_id = NULL;
  JsonNode *id_node;

  if ((body = _fl_read_json_object (msg, &error)) == NULL)
    goto fail;

  id_node = json_object_get_member (body, "deviceId");
  if (id_node != NULL && !JSON_NODE_HOLDS_NULL (id_node))
    {
      if (!JSON_NODE_HOLDS_VALUE (id_node) || json_node_get_value_type (id_node) != G_TYPE_STRING ||
          !fl_device_id_is_valid (json_node_get_string (id_node)))
        {
          error = g_error_new (FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                               "Field “deviceId” must be 1 to %d characters of letters, digits, “-”, “_” and “.”",
                               FL_DEVICE_MAX_ID_LENGTH);
          goto fail;
        }
      device_id = json_node_get_string (id_node);
    }
  else
    device_id = generated = g_uuid_string_random ();

  device = fl_device_new (device_id);
  if (!fl_device_update_from_json (device, body, TRUE, &error) ||
      !fl_registry_register (self->registry, device, &secret, &error))
    goto fail;

  fl_hub_publish_device (self->hub, device);
  reply_device (msg, 201, device, secret);
  return;

fail:
  fl_http_reply_error (msg, error);
}

static void
handle_update_device (FlRelay           *self,
                      SoupServerMessage *msg,
                      FlDevice          *device)
{
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (GError) error = NULL;
  JsonNode *id_node;

  if ((body = _fl_read_json_object (msg, &error)) == NULL)
    goto fail;

  id_node = json_object_get_member (body, "deviceId");
  if (id_node != NULL &&
      (!JSON_NODE_HOLDS_VALUE (id_node) || json_node_get_value_type (id_node) != G_TYPE_STRING ||
       !g_str_equal (json_node_get_string (id_node), fl_device_get_device_id (device))))
    {
      error = g_error_new_literal (FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                                   "Field “deviceId” cannot be changed");
      goto fail;
    }

  if (!fl_device_update_from_json (device, body, FALSE, &error))
    goto fail;

  fl_registry_touch (self->registry, device);
  fl_hub_publish_device (self->hub, device);
  reply_device (msg, 200, device, NULL);
  return;

fail:
  fl_http_reply_error (msg, error);
}

static void
handle_delete_device (FlRelay           *self,
                      SoupServerMessage *msg,
                      FlDevice          *device)
{
  if (fl_device_get_status (device) != FL_DEVICE_STATUS_DECOMMISSIONED)
    {
      fl_device_set_status (device, FL_DEVICE_STATUS_DECOMMISSIONED);
      fl_registry_touch (self->registry, device);
      fl_hub_publish_device (self->hub, device);

      /* its open device channels end too */
      for (guint i = self->device_sessions->len; i > 0; i--)
        {
          gpointer session = g_ptr_array_index (self->device_sessions, i - 1);

          if (_fl_device_session_get_device (session) == device)
            g_ptr_array_remove_index_fast (self->device_sessions, i - 1);
        }
    }

  reply_device (msg, 200, device, NULL);
}

static void
handle_rotate_secret (FlRelay           *self,
                      SoupServerMessage *msg,
                      FlDevice          *device)
{
  g_autofree char *secret = fl_registry_rotate_secret (self->registry, device);
  GString *out = g_string_new ("{\"deviceId\":");

  fl_json_append_string (out, fl_device_get_device_id (device));
  g_string_append (out, ",\"deviceSecret\":");
  fl_json_append_string (out, secret);
  g_string_append_c (out, '}');
  fl_http_reply_json (msg, 200, out);
}

static void
telemetry_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  FlRequest *request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) buckets = NULL;
  gint64 bucket_ms = 0;
  GString *out;

  buckets = fl_store_telemetry_finish (FL_STORE (source), result, &bucket_ms, &error);
  if (buckets == NULL)
    {
      _fl_request_fail (request, error);
      return;
    }

  out = g_string_sized_new (64 * buckets->len + 256);
  g_string_append (out, "{\"deviceId\":");
  fl_json_append_string (out, request->device_id);
  g_string_append (out, ",\"metric\":");
  fl_json_append_string (out, g_hash_table_lookup (request->query, "metric"));
  g_string_append_printf (out, ",\"from\":%s,\"to\":%s,\"bucketMs\":%" G_GINT64_FORMAT ",\"buckets\":[",
                          (char *) g_object_get_data (G_OBJECT (request->msg), "fl-from"),
                          (char *) g_object_get_data (G_OBJECT (request->msg), "fl-to"),
                          bucket_ms);
  for (guint i = 0; i < buckets->len; i++)
    {
      FlTelemetryBucket *b = &g_array_index (buckets, FlTelemetryBucket, i);
      char min[G_ASCII_DTOSTR_BUF_SIZE], max[G_ASCII_DTOSTR_BUF_SIZE], avg[G_ASCII_DTOSTR_BUF_SIZE];

      g_string_append_printf (out, "%s{\"t\":%" G_GINT64_FORMAT ",\"min\":%s,\"max\":%s,\"avg\":%s,\"count\":%" G_GINT64_FORMAT "}",
                              i > 0 ? "," : "", b->t,
                              g_ascii_formatd (min, sizeof min, "%.10g", b->min),
                              g_ascii_formatd (max, sizeof max, "%.10g", b->max),
                              g_ascii_formatd (avg, sizeof avg, "%.10g", b->avg),
                              b->count);
    }
  g_string_append (out, "]}");

  _fl_request_reply (request, 200, out);
}

static void
handle_telemetry (FlRelay           *self,
                  SoupServerMessage *msg,
                  GHashTable        *query,
                  FlDevice          *device)
{
  g_autoptr (GError) error = NULL;
  const char *metric = query ? g_hash_table_lookup (query, "metric") : NULL;
  gint64 now = fl_now_ms ();
  gint64 from, to, points;
  FlRequest *request;

  if (metric == NULL || *metric == '\0' || strlen (metric) > 128)
    {
      error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                                   "Parameter “metric” is required, e.g. ?metric=temperature");
      goto fail;
    }
  if (!fl_http_query_time (query, "from", now - 24 * 3600 * 1000, &from, &error) ||
      !fl_http_query_time (query, "to", now, &to, &error) ||
      !fl_http_query_int64 (query, "points", 200, 1, 10000, &points, &error))
    goto fail;
  if (from >= to)
    {
      error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                                   "Parameter “from” must be before “to”");
      goto fail;
    }

  request = _fl_request_new (self, msg, query);
  request->device_id = g_strdup (fl_device_get_device_id (device));
  g_object_set_data_full (G_OBJECT (msg), "fl-from", g_strdup_printf ("%" G_GINT64_FORMAT, from), g_free);
  g_object_set_data_full (G_OBJECT (msg), "fl-to", g_strdup_printf ("%" G_GINT64_FORMAT, to), g_free);
  fl_store_telemetry_async (self->store, request->device_id, metric, from, to, points, NULL, telemetry_cb, request);
  return;

fail:
  fl_http_reply_error (msg, error);
}

/* ---- events ---------------------------------------------------------------- */

static void
append_events (GString   *out,
               GPtrArray *events)
{
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);

      if (i > 0)
        g_string_append_c (out, ',');
      g_string_append_len (out, fl_event_get_json (event), fl_event_get_json_length (event));
    }
}

static void
query_events_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  FlRequest *request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) events = NULL;
  gint64 next = 0;
  GString *out;

  events = fl_store_query_events_finish (FL_STORE (source), result, &next, &error);
  if (events == NULL)
    {
      _fl_request_fail (request, error);
      return;
    }

  out = g_string_sized_new (256 * events->len + 64);
  g_string_append (out, "{\"events\":[");
  append_events (out, events);
  if (next > 0)
    g_string_append_printf (out, "],\"nextCursor\":\"%" G_GINT64_FORMAT "\"}", next);
  else
    g_string_append (out, "],\"nextCursor\":null}");

  _fl_request_reply (request, 200, out);
}

static void
handle_query_events (FlRelay           *self,
                     SoupServerMessage *msg,
                     GHashTable        *query)
{
  g_autoptr (GError) error = NULL;
  FlEventQuery q = { 0 };
  const char *order = query ? g_hash_table_lookup (query, "order") : NULL;
  const char *cursor = query ? g_hash_table_lookup (query, "cursor") : NULL;
  gint64 limit;

  q.device_id = query ? g_hash_table_lookup (query, "device") : NULL;
  q.event_type = query ? g_hash_table_lookup (query, "type") : NULL;
  if (q.device_id != NULL && *q.device_id == '\0')
    q.device_id = NULL;
  if (q.event_type != NULL && *q.event_type == '\0')
    q.event_type = NULL;

  if (!fl_http_query_time (query, "from", G_MININT64, &q.from, &error) ||
      !fl_http_query_time (query, "to", G_MAXINT64, &q.to, &error) ||
      !fl_http_query_int64 (query, "limit", DEFAULT_PAGE, 1, MAX_PAGE, &limit, &error))
    goto fail;
  q.limit = limit;

  if (cursor != NULL && *cursor != '\0' &&
      !g_ascii_string_to_signed (cursor, 10, 1, G_MAXINT64, &q.after_seq, NULL))
    {
      error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_CURSOR,
                                   "Parameter “cursor” is not a cursor this API returned");
      goto fail;
    }

  if (order != NULL && *order != '\0')
    {
      if (g_str_equal (order, "desc"))
        q.descending = TRUE;
      else if (!g_str_equal (order, "asc"))
        {
          error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                                       "Parameter “order” must be asc or desc");
          goto fail;
        }
    }

  fl_store_query_events_async (self->store, &q, NULL, query_events_cb, _fl_request_new (self, msg, query));
  return;

fail:
  fl_http_reply_error (msg, error);
}

static void
get_event_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  FlRequest *request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) event = NULL;

  event = fl_store_get_event_finish (FL_STORE (source), result, &error);
  if (event == NULL)
    {
      _fl_request_fail (request, error);
      return;
    }

  _fl_request_reply (request, 200, g_string_new_len (fl_event_get_json (event), fl_event_get_json_length (event)));
}

/* ---- ingest ------------------------------------------------------------------ */

static void
ingest_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  FlRequest *request = user_data;
  g_autoptr (GError) error = NULL;
  GString *reply;

  reply = fl_ingest_submit_finish (FL_INGEST (source), result, &error);
  if (reply == NULL)
    _fl_request_fail (request, error);
  else
    _fl_request_reply (request, 200, reply);
}

static void
handle_ingest (FlRelay           *self,
               SoupServerMessage *msg)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *user = NULL;
  g_autofree char *secret = NULL;
  g_autoptr (GBytes) body = NULL;
  FlDevice *device;

  if (!fl_http_get_basic_auth (msg, &user, &secret))
    {
      error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_UNAUTHORIZED,
                                   "Devices authenticate with “Authorization: Basic base64(deviceId:deviceSecret)”");
      goto fail;
    }

  device = fl_registry_authenticate (self->registry, user, secret, &error);
  if (device == NULL)
    goto fail;

  body = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  fl_ingest_submit_async (self->ingest, device, body, g_get_monotonic_time (), NULL, ingest_cb,
                          _fl_request_new (self, msg, NULL));
  return;

fail:
  if (error->domain == FL_API_ERROR && error->code == FL_API_ERROR_UNAUTHORIZED)
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                  "WWW-Authenticate", "Basic realm=\"fieldline-devices\"");
  fl_http_reply_error (msg, error);
}

/* ---- metrics --------------------------------------------------------------------- */

static gboolean
wants_prometheus (SoupServerMessage *msg,
                  GHashTable        *query)
{
  const char *format = query ? g_hash_table_lookup (query, "format") : NULL;
  const char *accept = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Accept");

  if (format != NULL)
    return g_str_equal (format, "prometheus");

  return accept != NULL && strstr (accept, "text/plain") != NULL && strstr (accept, "application/json") == NULL;
}

static void
handle_metrics (FlRelay           *self,
                SoupServerMessage *msg,
                GHashTable        *query)
{
  FlMetrics *m = self->metrics;
  struct {
    const char *json;
    const char *prom;
    const char *type;
    const char *help;
    double      value;
  } rows[] = {
    { "eventsTotal", "fieldline_events_accepted_total", "counter", "Events stored", fl_metrics_get_accepted (m) },
    { "duplicatesTotal", "fieldline_events_duplicate_total", "counter", "Events refused as duplicates", fl_metrics_get_duplicates (m) },
    { "rejectedTotal", "fieldline_events_rejected_total", "counter", "Events rejected as invalid", fl_metrics_get_rejected (m) },
    { "eventsPerSecond", "fieldline_events_per_second", "gauge", "Events stored per second, last 10 s", fl_metrics_get_rate (m) },
    { "ingestLatencyP50Ms", "fieldline_ingest_latency_p50_ms", "gauge", "Ingest request to acknowledgement, median, ms", fl_metrics_get_latency_ms (m, 0.5) },
    { "ingestLatencyP99Ms", "fieldline_ingest_latency_p99_ms", "gauge", "Ingest request to acknowledgement, 99th percentile, ms", fl_metrics_get_latency_ms (m, 0.99) },
    { "requestsTotal", "fieldline_http_requests_total", "counter", "HTTP requests", fl_metrics_get_requests (m) },
    { "connectedClients", "fieldline_connected_clients", "gauge", "Operator WebSocket connections", fl_hub_get_n_subscribers (self->hub) },
    { "connectedDevices", "fieldline_connected_devices", "gauge", "Device WebSocket connections", self->device_sessions->len },
    { "openConnections", "fieldline_open_connections", "gauge", "Open HTTP connections, WebSockets included", fl_connection_reaper_get_n_connections (self->reaper) },
    { "devicesTotal", "fieldline_devices", "gauge", "Registered devices", fl_registry_get_n_devices (self->registry) },
    { "devicesOnline", "fieldline_devices_online", "gauge", "Devices online", fl_registry_get_n_online (self->registry) },
    { "activeAlerts", "fieldline_active_alerts", "gauge", "Active alerts", 0 },
    { "pendingCommands", "fieldline_pending_commands", "gauge", "Commands waiting for their device", 0 },
    { "storedEvents", "fieldline_store_events", "gauge", "Events in the store", fl_store_get_event_count (self->store) },
    { "lastSeq", "fieldline_store_last_seq", "gauge", "Highest seq stored", fl_store_get_last_seq (self->store) },
    { "storeBytes", "fieldline_store_bytes", "gauge", "Store size on disk, bytes", fl_store_get_size_bytes (self->store) },
    { "commitsTotal", "fieldline_store_commits_total", "counter", "Store transactions committed", fl_store_get_commit_count (self->store) },
    { "uptimeSeconds", "fieldline_uptime_seconds", "gauge", "Seconds since the relay started", (fl_now_ms () - self->started_at) / 1000 },
  };
  GString *out = g_string_new (NULL);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (wants_prometheus (msg, query))
    {
      for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
        g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n",
                                rows[i].prom, rows[i].help, rows[i].prom, rows[i].type, rows[i].prom,
                                g_ascii_formatd (buf, sizeof buf, "%.15g", rows[i].value));
      fl_http_reply_text (msg, 200, "text/plain; version=0.0.4; charset=utf-8", out);
      return;
    }

  g_string_append_c (out, '{');
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    g_string_append_printf (out, "%s\"%s\":%s", i > 0 ? "," : "", rows[i].json,
                            g_ascii_formatd (buf, sizeof buf, "%.15g", rows[i].value));
  g_string_append_c (out, '}');
  fl_http_reply_json (msg, 200, out);
}

/* ---- the router ------------------------------------------------------------------ */

static gboolean
method_is (SoupServerMessage *msg,
           const char        *method)
{
  return g_str_equal (soup_server_message_get_method (msg), method);
}

void
_fl_relay_route (FlRelay           *self,
                 SoupServerMessage *msg,
                 const char        *path,
                 GHashTable        *query)
{
  /* libsoup hands over the path already percent-decoded */
  g_auto (GStrv) raw = g_strsplit (path + (path[0] == '/'), "/", 5);
  g_autoptr (GPtrArray) parts = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (FlPrincipal) principal = NULL;
  g_autoptr (GError) error = NULL;
  const char *p0, *p1 = NULL, *p2 = NULL;
  guint n;

  for (guint i = 0; raw[i] != NULL; i++)
    g_ptr_array_add (parts, g_strdup (raw[i]));
  if (parts->len == 0) /* "/" splits into nothing */
    g_ptr_array_add (parts, g_strdup (""));
  /* a trailing slash names the same resource */
  if (parts->len > 1 && *(char *) g_ptr_array_index (parts, parts->len - 1) == '\0')
    g_ptr_array_set_size (parts, parts->len - 1);

  n = parts->len;
  p0 = g_ptr_array_index (parts, 0);
  if (n > 1)
    p1 = g_ptr_array_index (parts, 1);
  if (n > 2)
    p2 = g_ptr_array_index (parts, 2);

  /* The Cognito Identity Provider protocol: POST / */
  if (n == 1 && *p0 == '\0' && method_is (msg, "POST"))
    return _fl_relay_handle_cognito (self, msg);

  /* No token needed: discovery, health, sign-in, keys, devices. */
  if (n == 1 && g_str_equal (p0, "config"))
    {
      if (!method_is (msg, "GET"))
        return reply_method_not_allowed (msg, "GET");
      return handle_config (self, msg);
    }
  if (n == 1 && g_str_equal (p0, "health"))
    {
      if (!method_is (msg, "GET"))
        return reply_method_not_allowed (msg, "GET");
      return fl_http_reply_json (msg, 200, g_string_new ("{\"status\":\"ok\"}"));
    }
  if (n == 2 && g_str_equal (p0, "auth") &&
      (g_str_equal (p1, "login") || g_str_equal (p1, "refresh") ||
       g_str_equal (p1, "register") || g_str_equal (p1, "confirm")))
    {
      if (!method_is (msg, "POST"))
        return reply_method_not_allowed (msg, "POST");
      if (g_str_equal (p1, "register"))
        return _fl_relay_handle_register (self, msg);
      if (g_str_equal (p1, "confirm"))
        return _fl_relay_handle_confirm (self, msg);
      return g_str_equal (p1, "login") ? handle_login (self, msg) : handle_refresh (self, msg);
    }
  if (n == 3 && g_str_equal (p0, fl_user_pool_get_pool_id (self->pool)) &&
      g_str_equal (p1, ".well-known") &&
      (g_str_equal (p2, "jwks.json") || g_str_equal (p2, "openid-configuration")))
    {
      if (!method_is (msg, "GET"))
        return reply_method_not_allowed (msg, "GET");
      return g_str_equal (p2, "jwks.json") ? handle_jwks (self, msg) : handle_openid_configuration (self, msg);
    }
  if (n == 1 && g_str_equal (p0, "ingest"))
    {
      if (!method_is (msg, "POST"))
        return reply_method_not_allowed (msg, "POST");
      return handle_ingest (self, msg);
    }

  /* Operator routes. */
  if (g_str_equal (p0, "devices") && n <= 3)
    {
      FlDevice *device = NULL;
      gboolean read = method_is (msg, "GET");

      if (n == 1 && !read && !method_is (msg, "POST"))
        return reply_method_not_allowed (msg, "GET, POST");
      if (n == 2 && !read && !method_is (msg, "PUT") && !method_is (msg, "DELETE"))
        return reply_method_not_allowed (msg, "GET, PUT, DELETE");
      if (n == 3 && g_str_equal (p2, "telemetry") && !read)
        return reply_method_not_allowed (msg, "GET");
      if (n == 3 && g_str_equal (p2, "secret") && !method_is (msg, "POST"))
        return reply_method_not_allowed (msg, "POST");
      if (n == 3 && !g_str_equal (p2, "telemetry") && !g_str_equal (p2, "secret"))
        goto not_found;

      principal = _fl_relay_authorize (self, msg, NULL, read ? FL_ROLE_VIEWER : FL_ROLE_ADMIN, &error);
      if (principal == NULL)
        goto fail;

      if (n == 1)
        return read ? handle_list_devices (self, msg, query) : handle_register_device (self, msg);

      device = fl_registry_lookup (self->registry, p1);
      if (device == NULL)
        return reply_not_found (msg, "device", p1);

      if (n == 2)
        {
          if (read)
            return reply_device (msg, 200, device, NULL);
          if (method_is (msg, "PUT"))
            return handle_update_device (self, msg, device);
          return handle_delete_device (self, msg, device);
        }
      if (g_str_equal (p2, "telemetry"))
        return handle_telemetry (self, msg, query, device);
      return handle_rotate_secret (self, msg, device);
    }

  /* an event id may hold any character, "/" included: it is the rest */
  if (g_str_equal (p0, "events") && n > 2)
    {
      p1 = path + strlen ("/events/");
      n = 2;
    }
  if (g_str_equal (p0, "events") && n <= 2)
    {
      if (!method_is (msg, "GET"))
        return reply_method_not_allowed (msg, "GET");
      principal = _fl_relay_authorize (self, msg, NULL, FL_ROLE_VIEWER, &error);
      if (principal == NULL)
        goto fail;
      if (n == 1)
        return handle_query_events (self, msg, query);
      fl_store_get_event_async (self->store, p1, NULL, get_event_cb, _fl_request_new (self, msg, query));
      return;
    }

  if (g_str_equal (p0, "users") && n <= 2)
    {
      if (n == 1 && !method_is (msg, "GET") && !method_is (msg, "POST"))
        return reply_method_not_allowed (msg, "GET, POST");
      if (n == 2 && !method_is (msg, "GET") && !method_is (msg, "PATCH"))
        return reply_method_not_allowed (msg, "GET, PATCH");
      principal = _fl_relay_authorize (self, msg, NULL, FL_ROLE_ADMIN, &error);
      if (principal == NULL)
        goto fail;
      return _fl_relay_handle_users (self, msg, n == 2 ? p1 : NULL, principal);
    }

  if (n == 1 && g_str_equal (p0, "metrics"))
    {
      if (!method_is (msg, "GET"))
        return reply_method_not_allowed (msg, "GET");
      principal = _fl_relay_authorize (self, msg, NULL, FL_ROLE_VIEWER, &error);
      if (principal == NULL)
        goto fail;
      return handle_metrics (self, msg, query);
    }

not_found:
  error = g_error_new (FL_API_ERROR, FL_API_ERROR_NOT_FOUND, "No route for %s %s",
                       soup_server_message_get_method (msg), path);
fail:
  fl_http_reply_error (msg, error);
}
