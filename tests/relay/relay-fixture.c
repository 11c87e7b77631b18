/* relay-fixture.c: an in-process relay for the relay's integration tests. */
#define G_LOG_DOMAIN "test-relay"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "fl-user-pool-private.h"
#include "relay-fixture.h"

static const struct
{
  const char *name;
  FlRole      role;
} users[] = {
  { "admin", FL_ROLE_ADMIN },
  { "operator", FL_ROLE_OPERATOR },
  { "viewer", FL_ROLE_VIEWER },
};

gboolean
rf_deadline_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

gint64
rf_now_ms (void)
{
  return g_get_real_time () / 1000;
}

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

/* ---- files ----------------------------------------------------------- */

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char      *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
    }
  g_rmdir (path);
}

/* A self-signed certificate for 127.0.0.1, made with the openssl command
 * (installed by .ci/install-deps). */
static void
make_certificate (RfFixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *err_text = NULL;
  int                wait_status = 0;
  const char        *argv[] = {
           "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
           "-keyout", NULL, "-out", NULL, "-days", "2",
           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
           NULL
  };

  f->cert_file = g_build_filename (f->dir, "cert.pem", NULL);
  f->key_file = g_build_filename (f->dir, "key.pem", NULL);
  argv[7] = f->key_file;
  argv[9] = f->cert_file;

  /* Test set-up, before any server runs: a blocking spawn is fine here. */
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err_text, &wait_status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (wait_status, &error))
    g_error ("openssl failed: %s\n%s", error->message, err_text);

  f->certificate = g_tls_certificate_new_from_file (f->cert_file, &error);
  g_assert_no_error (error);
}

/* ---- HTTP --------------------------------------------------------------- */

void
rf_reply_free (RfReply *reply)
{
  /* the send callback writes into the reply */
  g_assert_true (reply->done);
  g_clear_object (&reply->msg);
  g_clear_pointer (&reply->body, g_bytes_unref);
  g_clear_pointer (&reply->json, json_node_unref);
  g_clear_error (&reply->error);
  g_free (reply);
}

static gboolean
accept_certificate_cb (SoupMessage         *msg,
                       GTlsCertificate     *certificate,
                       GTlsCertificateFlags errors,
                       gpointer             user_data)
{
  RfFixture *f = user_data;

  /* Only the certificate this test made, however self-signed. */
  return f->certificate != NULL && g_tls_certificate_is_same (certificate, f->certificate);
}

static SoupMessage *
message_new_for_uri (RfFixture  *f,
                     const char *method,
                     const char *uri)
{
  SoupMessage *msg = soup_message_new (method, uri);

  if (msg == NULL)
    g_error ("Not a valid URI: %s", uri);
  if (f->certificate != NULL)
    g_signal_connect (msg, "accept-certificate", G_CALLBACK (accept_certificate_cb), f);

  return msg;
}

SoupMessage *
rf_message_new (RfFixture  *f,
                const char *method,
                const char *path,
                const char *token)
{
  g_autofree char *uri = g_strconcat (f->url, path, NULL);
  SoupMessage     *msg = message_new_for_uri (f, method, uri);

  if (token != NULL)
    {
      g_autofree char *value = g_strconcat ("Bearer ", token, NULL);
      soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", value);
    }

  return msg;
}

void
rf_message_set_json (SoupMessage *msg,
                     const char  *json)
{
  g_autoptr (GBytes) bytes = g_bytes_new (json, strlen (json));

  soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
}

char *
rf_basic_header (const char *user,
                 const char *secret)
{
  g_autofree char *pair = g_strconcat (user, ":", secret, NULL);
  g_autofree char *encoded = g_base64_encode ((const guchar *) pair, strlen (pair));

  return g_strconcat ("Basic ", encoded, NULL);
}

void
rf_message_set_basic (SoupMessage *msg,
                      const char  *user,
                      const char  *secret)
{
  g_autofree char *value = rf_basic_header (user, secret);

  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", value);
}

static void
send_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  RfReply *reply = user_data;

  reply->body = soup_session_send_and_read_finish (SOUP_SESSION (source), result, &reply->error);
  if (reply->body != NULL)
    {
      gsize                  len;
      const char            *data = g_bytes_get_data (reply->body, &len);
      g_autoptr (JsonParser) parser = json_parser_new ();

      reply->status = soup_message_get_status (reply->msg);
      if (len > 0 && json_parser_load_from_data (parser, data, len, NULL))
        reply->json = json_node_ref (json_parser_get_root (parser));
    }
  reply->done = TRUE;
}

RfReply *
rf_send_async (RfFixture   *f,
               SoupMessage *msg)
{
  RfReply *reply = g_new0 (RfReply, 1);

  reply->msg = msg;
  soup_session_send_and_read_async (f->session, msg, G_PRIORITY_DEFAULT, NULL, send_cb, reply);

  return reply;
}

void
rf_reply_wait (RfReply *reply)
{
  RF_WAIT_UNTIL (reply->done);
}

RfReply *
rf_send (RfFixture   *f,
         SoupMessage *msg)
{
  RfReply *reply = rf_send_async (f, msg);

  rf_reply_wait (reply);
  return reply;
}

RfReply *
rf_get (RfFixture  *f,
        const char *path,
        const char *token)
{
  return rf_send (f, rf_message_new (f, "GET", path, token));
}

RfReply *
rf_request_json (RfFixture  *f,
                 const char *method,
                 const char *path,
                 const char *token,
                 const char *json)
{
  SoupMessage *msg = rf_message_new (f, method, path, token);

  if (json != NULL)
    rf_message_set_json (msg, json);
  return rf_send (f, msg);
}

RfReply *
rf_ingest_async (RfFixture  *f,
                 const char *user,
                 const char *secret,
                 const char *body)
{
  SoupMessage *msg = rf_message_new (f, "POST", "/ingest", NULL);

  if (user != NULL)
    rf_message_set_basic (msg, user, secret);
  rf_message_set_json (msg, body);
  return rf_send_async (f, msg);
}

RfReply *
rf_ingest (RfFixture  *f,
           const char *user,
           const char *secret,
           const char *body)
{
  RfReply *reply = rf_ingest_async (f, user, secret, body);

  rf_reply_wait (reply);
  return reply;
}

const char *
rf_reply_text (RfReply *reply)
{
  static char empty[] = "";
  gsize       len;
  const char *data;

  if (reply->body == NULL)
    return empty;
  data = g_bytes_get_data (reply->body, &len);
  /* libsoup's bodies end in a NUL beyond their length */
  return len > 0 ? data : empty;
}

const char *
rf_reply_header (RfReply    *reply,
                 const char *name)
{
  return soup_message_headers_get_one (soup_message_get_response_headers (reply->msg), name);
}

JsonObject *
rf_reply_object (RfReply *reply)
{
  if (reply->json == NULL || !JSON_NODE_HOLDS_OBJECT (reply->json))
    fail_at (__FILE__, __LINE__, G_STRFUNC, "%s %s: the body is not a JSON object: %s",
             soup_message_get_method (reply->msg), g_uri_get_path (soup_message_get_uri (reply->msg)),
             rf_reply_text (reply));

  return json_node_get_object (reply->json);
}

void
rf_assert_status_impl (RfReply    *reply,
                       guint       status,
                       const char *file,
                       int         line,
                       const char *func)
{
  if (reply->status == status)
    return;

  if (reply->error != NULL)
    fail_at (file, line, func, "%s %s: expected HTTP %u, the exchange failed: %s",
             soup_message_get_method (reply->msg), g_uri_get_path (soup_message_get_uri (reply->msg)),
             status, reply->error->message);
  fail_at (file, line, func, "%s %s: expected HTTP %u, got %u: %.2000s",
           soup_message_get_method (reply->msg), g_uri_get_path (soup_message_get_uri (reply->msg)),
           status, reply->status, rf_reply_text (reply));
}

static gboolean
check_error_object (JsonObject *obj,
                    const char *code,
                    char      **why)
{
  JsonNode   *error_node = json_object_get_member (obj, "error");
  JsonObject *error;
  JsonNode   *code_node, *message_node;

  if (error_node == NULL || !JSON_NODE_HOLDS_OBJECT (error_node))
    {
      *why = g_strdup ("no \"error\" object");
      return FALSE;
    }
  error = json_node_get_object (error_node);
  code_node = json_object_get_member (error, "code");
  message_node = json_object_get_member (error, "message");

  if (code_node == NULL || !JSON_NODE_HOLDS_VALUE (code_node) || json_node_get_value_type (code_node) != G_TYPE_STRING)
    {
      *why = g_strdup ("error.code is not a string");
      return FALSE;
    }
  if (code != NULL && !g_str_equal (json_node_get_string (code_node), code))
    {
      *why = g_strdup_printf ("error.code is “%s”, expected “%s”", json_node_get_string (code_node), code);
      return FALSE;
    }
  if (message_node == NULL || !JSON_NODE_HOLDS_VALUE (message_node) || json_node_get_value_type (message_node) != G_TYPE_STRING || *json_node_get_string (message_node) == '\0')
    {
      *why = g_strdup ("error.message is not a non-empty string");
      return FALSE;
    }
  if (json_object_get_size (error) != 2)
    {
      *why = g_strdup ("error has members besides code and message");
      return FALSE;
    }

  return TRUE;
}

void
rf_assert_error_impl (RfReply    *reply,
                      guint       status,
                      const char *code,
                      const char *file,
                      int         line,
                      const char *func)
{
  g_autofree char *why = NULL;
  const char      *content_type;

  rf_assert_status_impl (reply, status, file, line, func);

  content_type = rf_reply_header (reply, "Content-Type");
  if (content_type == NULL || !g_str_has_prefix (content_type, "application/json"))
    fail_at (file, line, func, "HTTP %u: Content-Type is %s, not application/json", status,
             content_type ? content_type : "missing");

  if (reply->json == NULL || !JSON_NODE_HOLDS_OBJECT (reply->json))
    fail_at (file, line, func, "HTTP %u: the body is not a JSON object: %s", status, rf_reply_text (reply));

  if (json_object_get_size (json_node_get_object (reply->json)) != 1 || !check_error_object (json_node_get_object (reply->json), code, &why))
    fail_at (file, line, func, "HTTP %u: not a {\"error\":{\"code\",\"message\"}} body (%s): %s",
             status, why ? why : "other top-level members", rf_reply_text (reply));
}

void
rf_assert_error_member (JsonObject *obj,
                        const char *code)
{
  g_autofree char *why = NULL;

  if (!check_error_object (obj, code, &why))
    {
      g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);
      g_autofree char     *text = json_to_string (node, FALSE);

      fail_at (__FILE__, __LINE__, G_STRFUNC, "%s: %s", why, text);
    }
}

/* ---- devices and events ------------------------------------------------- */

char *
rf_register_device (RfFixture  *f,
                    const char *device_id,
                    const char *extra_members)
{
  g_autofree char    *body = g_strdup_printf ("{\"deviceId\":\"%s\",\"name\":\"Device %s\",\"type\":\"sensor\"%s}",
                                              device_id, device_id, extra_members ? extra_members : "");
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/devices", f->admin_token, body);
  JsonObject         *obj;

  rf_assert_status (reply, 201);
  obj = rf_reply_object (reply);
  g_assert_cmpstr (json_object_get_string_member (obj, "deviceId"), ==, device_id);
  g_assert_true (json_object_has_member (obj, "deviceSecret"));

  return g_strdup (json_object_get_string_member (obj, "deviceSecret"));
}

char *
rf_event_json (const char *id,
               gint64      timestamp,
               const char *source,
               const char *type,
               const char *data)
{
  GString *out = g_string_new ("{\"id\":");

  fl_json_append_string (out, id);
  if (timestamp >= 0)
    g_string_append_printf (out, ",\"timestamp\":%" G_GINT64_FORMAT, timestamp);
  if (source != NULL)
    {
      g_string_append (out, ",\"source\":");
      fl_json_append_string (out, source);
    }
  g_string_append (out, ",\"type\":");
  fl_json_append_string (out, type ? type : "telemetry");
  g_string_append_printf (out, ",\"data\":%s}", data ? data : "{}");

  return g_string_free (out, FALSE);
}

GPtrArray *
rf_fetch_events (RfFixture  *f,
                 const char *query,
                 guint       page)
{
  GPtrArray       *events = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  g_autofree char *cursor = NULL;
  gboolean         descending = query != NULL && strstr (query, "order=desc") != NULL;
  gint64           last_seq = descending ? G_MAXINT64 : 0;

  for (guint round = 0; round < 100000; round++)
    {
      g_autofree char    *path = g_strdup_printf ("/events?limit=%u%s%s%s%s", page,
                                               query && *query ? "&" : "", query ? query : "",
                                               cursor ? "&cursor=" : "", cursor ? cursor : "");
      g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);
      JsonObject         *obj;
      JsonArray          *array;
      JsonNode           *next;

      rf_assert_status (reply, 200);
      obj = rf_reply_object (reply);
      array = json_object_get_array_member (obj, "events");
      g_assert_nonnull (array);
      g_assert_cmpuint (json_array_get_length (array), <=, page);

      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonObject *event = json_array_get_object_element (array, i);
          gint64      seq = json_object_get_int_member (event, "seq");

          if (descending)
            g_assert_cmpint (seq, <, last_seq);
          else
            g_assert_cmpint (seq, >, last_seq);
          last_seq = seq;
          g_ptr_array_add (events, json_object_ref (event));
        }

      next = json_object_get_member (obj, "nextCursor");
      g_assert_nonnull (next);
      g_clear_pointer (&cursor, g_free);
      if (JSON_NODE_HOLDS_NULL (next))
        return events;
      g_assert_cmpint (json_array_get_length (array), ==, page);
      cursor = g_uri_escape_string (json_node_get_string (next), NULL, FALSE);
    }

  g_assert_not_reached ();
}

void
rf_assert_stored_events (RfFixture  *f,
                         GHashTable *expected)
{
  g_autoptr (GPtrArray)  events = rf_fetch_events (f, NULL, 1000);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter         iter;
  const char            *id;

  for (guint i = 0; i < events->len; i++)
    {
      JsonObject *event = g_ptr_array_index (events, i);

      id = json_object_get_string_member (event, "id");
      if (!g_hash_table_contains (expected, id))
        g_error ("Event “%s” is stored but was never accepted", id);
      if (!g_hash_table_add (seen, (gpointer) id))
        g_error ("Event “%s” is stored twice", id);
      g_assert_cmpint (json_object_get_int_member_with_default (event, "seq", 0), >, 0);
      g_assert_cmpint (json_object_get_int_member_with_default (event, "receivedAt", 0), >, 0);
    }

  g_hash_table_iter_init (&iter, expected);
  while (g_hash_table_iter_next (&iter, (gpointer *) &id, NULL))
    if (!g_hash_table_contains (seen, id))
      g_error ("Event “%s” was accepted but is not stored", id);

  g_assert_cmpuint (events->len, ==, g_hash_table_size (expected));
}

/* ---- WebSockets -------------------------------------------------------- */

RfReply *
rf_upgrade_request (RfFixture  *f,
                    const char *path,
                    const char *authorization)
{
  SoupMessage *msg = rf_message_new (f, "GET", path, NULL);

  soup_websocket_client_prepare_handshake (msg, NULL, NULL, NULL);
  if (authorization != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", authorization);

  return rf_send (f, msg);
}

static void
ws_message_cb (SoupWebsocketConnection *conn,
               gint                     type,
               GBytes                  *message,
               gpointer                 user_data)
{
  RfWs                  *ws = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError)     error = NULL;
  gsize                  len;
  const char            *data = g_bytes_get_data (message, &len);

  g_assert_cmpint (type, ==, SOUP_WEBSOCKET_DATA_TEXT);
  if (!json_parser_load_from_data (parser, data, len, &error))
    g_error ("A WebSocket message is not JSON (%s): %.*s", error->message, (int) len, data);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  g_ptr_array_add (ws->messages, json_object_ref (json_node_get_object (json_parser_get_root (parser))));
}

static void
ws_closed_cb (SoupWebsocketConnection *conn,
              gpointer                 user_data)
{
  RfWs *ws = user_data;

  ws->closed = TRUE;
}

static void
ws_connect_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  RfWs *ws = user_data;

  ws->conn = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &ws->error);
  if (ws->conn == NULL)
    {
      ws->failed = TRUE;
      return;
    }

  g_signal_connect (ws->conn, "message", G_CALLBACK (ws_message_cb), ws);
  g_signal_connect (ws->conn, "closed", G_CALLBACK (ws_closed_cb), ws);
  ws->connected = TRUE;
}

RfWs *
rf_ws_connect (RfFixture  *f,
               const char *path,
               const char *authorization)
{
  RfWs *ws = g_new0 (RfWs, 1);
  /* http://… → ws://…, https://… → wss://… */
  g_autofree char *uri = g_strconcat ("ws", f->url + strlen ("http"), path, NULL);

  ws->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  ws->msg = message_new_for_uri (f, "GET", uri);
  if (authorization != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (ws->msg), "Authorization", authorization);

  soup_session_websocket_connect_async (f->session, ws->msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        ws_connect_cb, ws);
  RF_WAIT_UNTIL (ws->connected || ws->failed);
  ws->status = soup_message_get_status (ws->msg);

  return ws;
}

void
rf_ws_send (RfWs       *ws,
            const char *text)
{
  g_assert_nonnull (ws->conn);
  g_assert_cmpint (soup_websocket_connection_get_state (ws->conn), ==, SOUP_WEBSOCKET_STATE_OPEN);
  soup_websocket_connection_send_text (ws->conn, text);
}

JsonObject *
rf_ws_next (RfWs *ws)
{
  RF_WAIT_UNTIL (ws->next < ws->messages->len || ws->closed);
  if (ws->next >= ws->messages->len)
    g_error ("The WebSocket closed (code %u) before the next message arrived",
             soup_websocket_connection_get_close_code (ws->conn));

  return g_ptr_array_index (ws->messages, ws->next++);
}

static const char *
message_type (JsonObject *obj)
{
  return json_object_get_string_member_with_default (obj, "type", "");
}

JsonObject *
rf_ws_next_of_type (RfWs       *ws,
                    const char *type)
{
  for (;;)
    {
      JsonObject *obj = rf_ws_next (ws);

      if (g_str_equal (message_type (obj), type))
        return obj;
    }
}

void
rf_ws_sync (RfWs *ws)
{
  guint from = ws->messages->len;
  guint found = G_MAXUINT;

  rf_ws_send (ws, "{\"action\":\"ping\"}");
  for (;;)
    {
      RF_WAIT_UNTIL (ws->messages->len > from || ws->closed);
      g_assert_false (ws->closed);
      for (; from < ws->messages->len; from++)
        if (g_str_equal (message_type (g_ptr_array_index (ws->messages, from)), "pong"))
          {
            found = from;
            break;
          }
      if (found != G_MAXUINT)
        break;
    }

  /* the pong is this helper's; the messages around it stay for the test */
  g_ptr_array_remove_index (ws->messages, found);
}

guint
rf_ws_count_unread (RfWs       *ws,
                    const char *type)
{
  guint n = 0;

  for (guint i = ws->next; i < ws->messages->len; i++)
    n += g_str_equal (message_type (g_ptr_array_index (ws->messages, i)), type);

  return n;
}

void
rf_ws_close (RfWs *ws)
{
  if (ws->conn == NULL)
    return;
  if (soup_websocket_connection_get_state (ws->conn) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (ws->conn, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  RF_WAIT_UNTIL (ws->closed);
}

void
rf_ws_free (RfWs *ws)
{
  if (ws->conn != NULL)
    {
      rf_ws_close (ws);
      g_signal_handlers_disconnect_by_data (ws->conn, ws);
      g_clear_object (&ws->conn);
    }
  g_clear_object (&ws->msg);
  g_clear_pointer (&ws->messages, g_ptr_array_unref);
  g_clear_error (&ws->error);
  g_free (ws);
}

guint
rf_relay_n_websockets (FlRelay *relay)
{
  return fl_hub_get_n_subscribers (relay->hub) + relay->device_sessions->len;
}

/* ---- the relay ------------------------------------------------------- */

static void
sign_in (RfFixture  *f,
         const char *username,
         char      **id_token,
         char      **access_token,
         char      **refresh_token)
{
  g_autofree char    *body = g_strdup_printf ("{\"username\":\"%s\",\"password\":\"%s\"}", username, RF_PASSWORD);
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/auth/login", NULL, body);
  JsonObject         *obj;

  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);
  if (id_token != NULL)
    *id_token = g_strdup (json_object_get_string_member (obj, "idToken"));
  if (access_token != NULL)
    *access_token = g_strdup (json_object_get_string_member (obj, "accessToken"));
  if (refresh_token != NULL)
    *refresh_token = g_strdup (json_object_get_string_member (obj, "refreshToken"));
}

void
rf_fixture_start_relay (RfFixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *jwks = g_build_filename (f->dir, "cognito-jwks.json", NULL);
  FlRelayOptions     options = {
        .data_dir = f->dir,
        .listen = "127.0.0.1:0",
        .tls_cert_file = f->cert_file,
        .tls_key_file = f->key_file,
        .max_subscriber_lag = f->options.max_subscriber_lag,
        .cognito_issuer = f->options.cognito ? RF_COGNITO_ISSUER : NULL,
        .cognito_client_id = f->options.cognito ? RF_COGNITO_CLIENT_ID : NULL,
        .cognito_jwks = f->options.cognito ? jwks : NULL,
  };
  FlUserPool *pool;

  g_assert_null (f->relay);
  f->relay = fl_relay_new (&options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->relay);

  g_free (f->url);
  f->url = g_strdup (fl_relay_get_url (f->relay));
  g_assert_true (g_str_has_prefix (f->url, f->options.tls ? "https://127.0.0.1:" : "http://127.0.0.1:"));

  /* Tiny argon2 costs: these tests are about the relay, not hashing. */
  pool = fl_relay_get_user_pool (f->relay);
  _fl_user_pool_set_argon2_params (pool, 1, 64, 1);
  for (guint i = 0; i < G_N_ELEMENTS (users); i++)
    {
      g_autofree char *email = g_strdup_printf ("%s@example.org", users[i].name);

      if (!fl_user_pool_add_user (pool, users[i].name, email, RF_PASSWORD, users[i].role, &error))
        {
          /* a relay restarted on the same data dir has them already */
          g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS);
          g_clear_error (&error);
        }
    }

  g_clear_pointer (&f->admin_token, g_free);
  g_clear_pointer (&f->operator_token, g_free);
  g_clear_pointer (&f->viewer_token, g_free);
  g_clear_pointer (&f->admin_refresh_token, g_free);
  sign_in (f, "admin", &f->admin_token, NULL, &f->admin_refresh_token);
  sign_in (f, "operator", NULL, &f->operator_token, NULL);
  sign_in (f, "viewer", &f->viewer_token, NULL, NULL);
}

static void
shutdown_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  gboolean          *done = user_data;
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_relay_shutdown_finish (FL_RELAY (source), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

void
rf_relay_shutdown_and_wait (FlRelay *relay)
{
  gboolean done = FALSE;

  fl_relay_shutdown_async (relay, NULL, shutdown_cb, &done);
  RF_WAIT_UNTIL_MS (done, 30000);
}

void
rf_fixture_stop_relay (RfFixture *f)
{
  gpointer weak;

  if (f->relay == NULL)
    return;

  /* Both ends of every WebSocket are closed before the relay goes. */
  RF_WAIT_UNTIL (rf_relay_n_websockets (f->relay) == 0);
  rf_relay_shutdown_and_wait (f->relay);

  weak = f->relay;
  g_object_add_weak_pointer (G_OBJECT (f->relay), &weak);
  g_clear_object (&f->relay);
  /* nothing (a request, a task) may still hold the relay */
  g_assert_null (weak);
}

void
rf_fixture_set_up (RfFixture    *f,
                   gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  if (data != NULL)
    f->options = *(const RfOptions *) data;

  f->dir = g_dir_make_tmp ("fl-relay-test-XXXXXX", &error);
  g_assert_no_error (error);

  /* At most 10 connections at a time: the relay's listen backlog is
   * GSocket's default of 10, and a larger burst of connects is reset
   * (see /fieldline/relay/ingest/concurrent, which makes one on purpose). */
  f->session = soup_session_new_with_options ("max-conns", 10,
                                              "max-conns-per-host", 10,
                                              "timeout", 60,
                                              NULL);

  if (f->options.tls)
    make_certificate (f);
  if (f->options.cognito)
    {
      g_autoptr (FlJwtKeySet) set = fl_jwt_key_set_new ();
      g_autoptr (JsonNode)    node = NULL;
      g_autofree char        *path = g_build_filename (f->dir, "cognito-jwks.json", NULL);
      g_autofree char        *text = NULL;

      f->cognito_key = fl_jwt_key_generate (2048, &error);
      g_assert_no_error (error);
      fl_jwt_key_set_add_key (set, f->cognito_key);
      node = fl_jwt_key_set_to_jwks (set);
      text = fl_json_to_string (node, NULL);
      g_assert_true (g_file_set_contents (path, text, -1, &error));
      g_assert_no_error (error);
    }
  if (!f->options.no_relay)
    rf_fixture_start_relay (f);
}

void
rf_fixture_tear_down (RfFixture    *f,
                      gconstpointer data)
{
  rf_fixture_stop_relay (f);

  soup_session_abort (f->session);
  g_clear_object (&f->session);
  while (g_main_context_iteration (NULL, FALSE))
    ;

  remove_tree (f->dir);
  g_clear_pointer (&f->dir, g_free);
  g_clear_pointer (&f->cert_file, g_free);
  g_clear_pointer (&f->key_file, g_free);
  g_clear_object (&f->certificate);
  g_clear_pointer (&f->cognito_key, fl_jwt_key_free);
  g_clear_pointer (&f->url, g_free);
  g_clear_pointer (&f->admin_token, g_free);
  g_clear_pointer (&f->operator_token, g_free);
  g_clear_pointer (&f->viewer_token, g_free);
  g_clear_pointer (&f->admin_refresh_token, g_free);
}
