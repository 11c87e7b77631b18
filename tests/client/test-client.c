/* test-client.c: FlClient and FlDeviceChannel against an in-process relay. */
#define G_LOG_DOMAIN "test-client"

#include "config.h"

#include <libsoup/soup.h>

#include "fieldline-client.h"
#include "fl-client-private.h"
#include "fl-test-util.h"

static TestRelay *relay;

/* ---- helpers ----------------------------------------------------------- */

static FlClient *
new_client (const char *user)
{
  g_autoptr (FlClient)     client = fl_client_new (relay->url);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  if (user != NULL)
    {
      fl_client_login_async (client, user, TEST_PASSWORD, NULL, test_result_cb, &result);
      g_assert_true (fl_client_login_finish (client, test_wait_result (&result), &error));
      g_assert_no_error (error);
      g_assert_true (fl_client_is_signed_in (client));
    }

  return g_steal_pointer (&client);
}

static JsonObject *
registration_for (const char *device_id,
                  const char *tag)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *text = g_strdup_printf (
        "{\"deviceId\": \"%s\", \"name\": \"Test %s\", \"type\": \"environment_sensor\","
          " \"model\": \"TH-1\", \"manufacturer\": \"Acme Sensors\","
          " \"capabilities\": {\"metrics\": [\"temperature\", \"humidity\"],"
          "   \"commands\": [{\"name\": \"set_interval\", \"category\": \"configuration\","
          "     \"params\": {\"seconds\": {\"type\": \"integer\", \"min\": 1, \"max\": 3600, \"required\": true}}}]},"
          " \"tags\": [\"%s\", \"site:test\"], \"heartbeatTimeoutSec\": 60}",
        device_id, device_id, tag);
  g_autoptr (JsonNode) node = json_from_string (text, &error);

  g_assert_no_error (error);
  return json_object_ref (json_node_get_object (node));
}

static FlDevice *
register_device (FlClient   *client,
                 const char *device_id,
                 const char *tag,
                 char      **secret)
{
  g_autoptr (JsonObject)   registration = registration_for (device_id, tag);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  FlDevice                *device;

  fl_client_register_device_async (client, registration, NULL, test_result_cb, &result);
  device = fl_client_register_device_finish (client, test_wait_result (&result), secret, &error);
  g_assert_no_error (error);
  g_assert_nonnull (device);

  return device;
}

static FlEvent *
make_event (const char *device_id,
            const char *type,
            double      temperature)
{
  g_autoptr (JsonObject) data = json_object_new ();
  g_autofree char       *id = g_uuid_string_random ();

  json_object_set_double_member (data, "temperature", temperature);
  return fl_event_new (id, g_get_real_time () / 1000, device_id, type, data, NULL);
}

static GPtrArray *
make_events (const char *device_id,
             guint       n)
{
  GPtrArray *events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (events, make_event (device_id, "telemetry", 20.0 + i));

  return events;
}

static FlIngestResult *
ingest (FlClient   *client,
        const char *device_id,
        const char *secret,
        GPtrArray  *events,
        GError    **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_client_ingest_async (client, device_id, secret, events, NULL, test_result_cb, &result);
  return fl_client_ingest_finish (client, test_wait_result (&result), error);
}

static GPtrArray *
fetch_events (FlClient   *client,
              const char *device_id)
{
  GPtrArray       *all = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autofree char *cursor = NULL;

  do
    {
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GError)       error = NULL;
      g_autoptr (GPtrArray)    page = NULL;
      FlEventListQuery         query = { 0 };
      g_autofree char         *next = NULL;

      query.device_id = device_id;
      query.cursor = cursor;
      query.limit = 1000;
      fl_client_list_events_async (client, &query, NULL, test_result_cb, &result);
      page = fl_client_list_events_finish (client, test_wait_result (&result), &next, &error);
      g_assert_no_error (error);

      for (guint i = 0; i < page->len; i++)
        g_ptr_array_add (all, fl_event_ref (g_ptr_array_index (page, i)));

      g_free (cursor);
      cursor = g_steal_pointer (&next);
    }
  while (cursor != NULL);

  return all;
}

static void
assert_client_error (const GError *error,
                     FlClientError code,
                     guint         status,
                     const char   *api_code)
{
  g_assert_error (error, FL_CLIENT_ERROR, (int) code);
  g_assert_cmpuint (fl_client_error_get_http_status (error), ==, status);
  if (api_code != NULL)
    g_assert_cmpstr (fl_client_error_get_api_code (error), ==, api_code);
  g_assert_nonnull (error->message);
  g_assert_cmpstr (error->message, !=, "");
}

/* ---- error mapping, without a server ------------------------------------ */

static void
test_error_mapping (void)
{
  static const struct
  {
    guint         status;
    FlClientError code;
  } cases[] = {
    { 400, FL_CLIENT_ERROR_BAD_REQUEST },
    { 401, FL_CLIENT_ERROR_UNAUTHORIZED },
    { 403, FL_CLIENT_ERROR_FORBIDDEN },
    { 404, FL_CLIENT_ERROR_NOT_FOUND },
    { 409, FL_CLIENT_ERROR_CONFLICT },
    { 413, FL_CLIENT_ERROR_TOO_LARGE },
    { 422, FL_CLIENT_ERROR_INVALID },
    { 429, FL_CLIENT_ERROR_TOO_MANY_REQUESTS },
    { 500, FL_CLIENT_ERROR_SERVER },
    { 503, FL_CLIENT_ERROR_SERVER },
    { 418, FL_CLIENT_ERROR_HTTP },
  };
  static const char  body_text[] = "{\"error\":{\"code\":\"some_code\",\"message\":\"Some message\"}}";
  static const char  junk_text[] = "<html>oops</html>";
  static const char  gateway_text[] = "{\"message\":\"Forbidden\"}";
  g_autoptr (GBytes) body = g_bytes_new_static (body_text, strlen (body_text));
  g_autoptr (GBytes) junk = g_bytes_new_static (junk_text, strlen (junk_text));
  g_autoptr (GBytes) gateway = g_bytes_new_static (gateway_text, strlen (gateway_text));

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = _fl_client_error_new_for_status (cases[i].status, NULL, body, 7);
      g_autoptr (GError) copy = NULL;

      assert_client_error (error, cases[i].code, cases[i].status, "some_code");
      g_assert_cmpstr (error->message, ==, "Some message");
      g_assert_cmpuint (fl_client_error_get_retry_after (error), ==, 7);

      /* the extra fields survive a copy */
      copy = g_error_copy (error);
      assert_client_error (copy, cases[i].code, cases[i].status, "some_code");
    }

  {
    g_autoptr (GError) error = _fl_client_error_new_for_status (502, "Bad Gateway", junk, 0);

    assert_client_error (error, FL_CLIENT_ERROR_SERVER, 502, NULL);
    g_assert_null (fl_client_error_get_api_code (error));
    g_assert_cmpstr (error->message, ==, "HTTP 502 Bad Gateway");
  }
  {
    g_autoptr (GError) error = _fl_client_error_new_for_status (403, NULL, gateway, 0);

    assert_client_error (error, FL_CLIENT_ERROR_FORBIDDEN, 403, NULL);
    g_assert_cmpstr (error->message, ==, "Forbidden");
  }
  {
    g_autoptr (GError) io = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, "refused");
    g_autoptr (GError) error = _fl_client_error_new_network (g_steal_pointer (&io));

    assert_client_error (error, FL_CLIENT_ERROR_NETWORK, 0, NULL);
  }

  /* other domains have no extra fields */
  {
    g_autoptr (GError) other = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "x");

    g_assert_null (fl_client_error_get_api_code (other));
    g_assert_cmpuint (fl_client_error_get_http_status (other), ==, 0);
  }
}

/* ---- discovery and sign-in --------------------------------------------- */

static void
test_config (void)
{
  g_autoptr (FlClient)       client = new_client (NULL);
  g_autoptr (GAsyncResult)   result = NULL;
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlClientConfig) config = NULL;

  g_assert_cmpstr (fl_client_get_base_url (client), ==, relay->url);
  g_assert_true (g_str_has_prefix (fl_client_get_websocket_url (client), "ws://127.0.0.1:"));

  fl_client_get_config_async (client, NULL, test_result_cb, &result);
  config = fl_client_get_config_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (config);
  g_assert_cmpstr (config->user_pool_id, ==, fl_relay_get_pool_id (relay->relay));
  g_assert_cmpstr (config->client_id, ==, fl_relay_get_client_id (relay->relay));
  g_assert_nonnull (config->issuer);
  g_assert_nonnull (config->api_url);
  g_assert_true (g_str_has_prefix (config->websocket_url, "ws://"));
}

static void
tokens_changed_cb (FlClient *client,
                   guint    *count)
{
  (*count)++;
}

static void
test_login (void)
{
  g_autoptr (FlClient)     client = new_client (NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autofree char         *first_id_token = NULL;
  guint                    changes = 0;

  g_signal_connect (client, "tokens-changed", G_CALLBACK (tokens_changed_cb), &changes);
  g_assert_false (fl_client_is_signed_in (client));

  fl_client_login_async (client, TEST_ADMIN, TEST_PASSWORD, NULL, test_result_cb, &result);
  g_assert_true (fl_client_login_finish (client, test_wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&result);

  g_assert_true (fl_client_is_signed_in (client));
  g_assert_nonnull (fl_client_get_id_token (client));
  g_assert_nonnull (fl_client_get_access_token (client));
  g_assert_nonnull (fl_client_get_refresh_token (client));
  g_assert_cmpint (fl_client_get_token_expiry (client), >, g_get_real_time () / G_USEC_PER_SEC);
  g_assert_cmpuint (changes, ==, 1);
  first_id_token = g_strdup (fl_client_get_id_token (client));

  fl_client_refresh_async (client, NULL, test_result_cb, &result);
  g_assert_true (fl_client_refresh_finish (client, test_wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&result);
  g_assert_cmpuint (changes, ==, 2);
  g_assert_nonnull (fl_client_get_id_token (client));
  g_assert_nonnull (fl_client_get_refresh_token (client));

  /* a call with a bad token refreshes once by itself */
  fl_client_set_tokens (client, "not-a-token", "not-a-token",
                        fl_client_get_refresh_token (client), 0);
  fl_client_call_async (client, "GET", "/devices?limit=1", NULL, NULL, test_result_cb, &result);
  {
    g_autoptr (JsonNode) node = fl_client_call_finish (client, test_wait_result (&result), &error);

    g_assert_no_error (error);
    g_assert_nonnull (node);
    g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  }
  g_clear_object (&result);
  g_assert_cmpstr (fl_client_get_id_token (client), !=, "not-a-token");

  fl_client_sign_out (client);
  g_assert_false (fl_client_is_signed_in (client));
}

static void
test_login_wrong_password (void)
{
  g_autoptr (FlClient)     client = new_client (NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  fl_client_login_async (client, TEST_ADMIN, "Wrong-Passw0rd!", NULL, test_result_cb, &result);
  g_assert_false (fl_client_login_finish (client, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, "not_authorized");
  g_assert_false (fl_client_is_signed_in (client));
}

/* ---- devices ----------------------------------------------------------- */

static void
test_register (void)
{
  g_autoptr (FlClient)     client = new_client (TEST_ADMIN);
  g_autoptr (FlDevice)     device = NULL;
  g_autoptr (FlDevice)     fetched = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (JsonObject)   registration = NULL;
  g_autofree char         *secret = NULL;
  JsonArray               *metrics;

  device = register_device (client, "reg-1", "group:reg", &secret);
  g_assert_cmpstr (fl_device_get_device_id (device), ==, "reg-1");
  g_assert_cmpstr (fl_device_get_name (device), ==, "Test reg-1");
  g_assert_cmpstr (fl_device_get_device_type (device), ==, "environment_sensor");
  g_assert_cmpstr (fl_device_get_model (device), ==, "TH-1");
  g_assert_cmpstr (fl_device_get_manufacturer (device), ==, "Acme Sensors");
  g_assert_true (fl_device_has_tag (device, "group:reg"));
  g_assert_true (fl_device_has_tag (device, "site:test"));
  g_assert_cmpuint (fl_device_get_heartbeat_timeout (device), ==, 60);
  g_assert_cmpint (fl_device_get_created_at (device), >, 0);
  metrics = json_object_get_array_member (fl_device_get_capabilities (device), "metrics");
  g_assert_cmpuint (json_array_get_length (metrics), ==, 2);
  g_assert_nonnull (secret);
  g_assert_cmpuint (strlen (secret), >=, 16);

  /* GET /devices/{id} */
  fl_client_get_device_async (client, "reg-1", NULL, test_result_cb, &result);
  fetched = fl_client_get_device_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_device_get_model (fetched), ==, "TH-1");
  g_assert_cmpint (fl_device_get_status (fetched), ==, FL_DEVICE_STATUS_OFFLINE);
  g_clear_object (&result);

  /* the same id again: 409 */
  registration = registration_for ("reg-1", "group:reg");
  fl_client_register_device_async (client, registration, NULL, test_result_cb, &result);
  g_assert_null (fl_client_register_device_finish (client, test_wait_result (&result), NULL, &error));
  assert_client_error (error, FL_CLIENT_ERROR_CONFLICT, 409, NULL);
}

static void
test_device_errors (void)
{
  g_autoptr (FlClient)     admin = new_client (TEST_ADMIN);
  g_autoptr (FlClient)     viewer = new_client (TEST_VIEWER);
  g_autoptr (FlClient)     anonymous = new_client (NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (JsonObject)   registration = NULL;
  g_autoptr (JsonObject)   bad = NULL;
  g_autoptr (GPtrArray)    devices = NULL;

  /* unknown device: 404 */
  fl_client_get_device_async (admin, "no-such-device", NULL, test_result_cb, &result);
  g_assert_null (fl_client_get_device_finish (admin, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_NOT_FOUND, 404, "not_found");
  g_clear_error (&error);
  g_clear_object (&result);

  /* a viewer may not register: 403 */
  registration = registration_for ("viewer-1", "group:viewer");
  fl_client_register_device_async (viewer, registration, NULL, test_result_cb, &result);
  g_assert_null (fl_client_register_device_finish (viewer, test_wait_result (&result), NULL, &error));
  assert_client_error (error, FL_CLIENT_ERROR_FORBIDDEN, 403, NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  /* no token: 401 */
  fl_client_list_devices_async (anonymous, NULL, NULL, test_result_cb, &result);
  devices = fl_client_list_devices_finish (anonymous, test_wait_result (&result), NULL, &error);
  g_assert_null (devices);
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  /* a bad registration: the relay names the field */
  bad = registration_for ("bad-1", "group:bad");
  json_object_set_int_member (bad, "heartbeatTimeoutSec", -5);
  fl_client_register_device_async (admin, bad, NULL, test_result_cb, &result);
  g_assert_null (fl_client_register_device_finish (admin, test_wait_result (&result), NULL, &error));
  g_assert_true (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_BAD_REQUEST) || g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_INVALID));
  g_assert_nonnull (fl_client_error_get_api_code (error));
  g_assert_nonnull (strstr (error->message, "heartbeatTimeoutSec"));
}

static void
test_network_errors (void)
{
  g_autoptr (GSocket)        socket = NULL;
  g_autoptr (GSocketAddress) address = NULL;
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (FlClient)       client = NULL;
  g_autoptr (GAsyncResult)   result = NULL;
  g_autoptr (GError)         error = NULL;
  g_autoptr (GCancellable)   cancellable = g_cancellable_new ();
  g_autofree char           *url = NULL;
  guint                      port;

  /* a port nobody listens on: bind one and close it */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new (loopback, 0);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);

  url = g_strdup_printf ("http://127.0.0.1:%u", port);
  client = fl_client_new (url);

  fl_client_get_config_async (client, NULL, test_result_cb, &result);
  g_assert_null (fl_client_get_config_finish (client, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_NETWORK, 0, NULL);
  g_assert_null (fl_client_error_get_api_code (error));
  g_clear_error (&error);
  g_clear_object (&result);

  fl_client_open_device_channel_async (client, "dev", "secret", NULL, test_result_cb, &result);
  g_assert_null (fl_client_open_device_channel_finish (client, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_NETWORK, 0, NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  /* cancellation stays G_IO_ERROR_CANCELLED */
  g_clear_object (&client);
  client = fl_client_new (relay->url);
  g_cancellable_cancel (cancellable);
  fl_client_get_config_async (client, cancellable, test_result_cb, &result);
  g_assert_null (fl_client_get_config_finish (client, test_wait_result (&result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_list_devices (void)
{
  g_autoptr (FlClient)  client = new_client (TEST_ADMIN);
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autofree char      *cursor = NULL;
  guint                 pages = 0;

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char     *id = g_strdup_printf ("page-%u", i);
      g_autoptr (FlDevice) device = register_device (client, id, "group:page", NULL);
    }

  do
    {
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GError)       error = NULL;
      g_autoptr (GPtrArray)    page = NULL;
      g_autofree char         *next = NULL;
      FlDeviceListQuery        query = { 0 };

      query.tag = "group:page";
      query.limit = 2;
      query.cursor = cursor;
      fl_client_list_devices_async (client, &query, NULL, test_result_cb, &result);
      page = fl_client_list_devices_finish (client, test_wait_result (&result), &next, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (page->len, <=, 2);

      for (guint i = 0; i < page->len; i++)
        {
          FlDevice *device = g_ptr_array_index (page, i);

          g_assert_true (fl_device_has_tag (device, "group:page"));
          g_assert_cmpstr (fl_device_get_model (device), ==, "TH-1");
          g_ptr_array_add (seen, g_strdup (fl_device_get_device_id (device)));
        }

      g_free (cursor);
      cursor = g_steal_pointer (&next);
      pages++;
    }
  while (cursor != NULL && pages < 10);

  g_assert_null (cursor);
  g_assert_cmpuint (pages, >=, 3);
  g_assert_cmpuint (seen->len, ==, 5);
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *id = g_strdup_printf ("page-%u", i);

      g_assert_true (g_ptr_array_find_with_equal_func (seen, id, g_str_equal, NULL));
    }
}

/* ---- ingest over HTTP -------------------------------------------------- */

static void
test_ingest_http (void)
{
  g_autoptr (FlClient)  admin = new_client (TEST_ADMIN);
  g_autoptr (FlClient)  device_client = new_client (NULL);
  g_autoptr (FlDevice)  device = NULL;
  g_autoptr (GPtrArray) events = make_events ("http-1", 10);
  g_autoptr (GPtrArray) mixed = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GPtrArray) stored = NULL;
  g_autoptr (GError)    error = NULL;
  g_autofree char      *secret = NULL;
  FlIngestResult       *result;

  device = register_device (admin, "http-1", "group:http", &secret);

  result = ingest (device_client, "http-1", secret, events, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (result->accepted, ==, 10);
  g_assert_cmpuint (result->duplicates, ==, 0);
  g_assert_cmpuint (result->rejected->len, ==, 0);
  fl_ingest_result_free (result);

  /* the same ids again are duplicates */
  result = ingest (device_client, "http-1", secret, events, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (result->accepted, ==, 0);
  g_assert_cmpuint (result->duplicates, ==, 10);
  fl_ingest_result_free (result);

  /* good events are kept beside bad ones, which are named by index */
  g_ptr_array_add (mixed, make_event ("http-1", "telemetry", 1.0));
  g_ptr_array_add (mixed, make_event ("http-1", "Not Lower Snake", 2.0));
  g_ptr_array_add (mixed, make_event ("someone-else", "telemetry", 3.0));
  result = ingest (device_client, "http-1", secret, mixed, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (result->accepted, ==, 1);
  g_assert_cmpuint (result->rejected->len, ==, 2);
  g_assert_cmpuint (g_array_index (result->rejected, FlIngestRejection, 0).index, ==, 1);
  g_assert_cmpuint (g_array_index (result->rejected, FlIngestRejection, 1).index, ==, 2);
  g_assert_nonnull (g_array_index (result->rejected, FlIngestRejection, 0).message);
  fl_ingest_result_free (result);

  /* a wrong secret, and an unknown device: 401 */
  g_assert_null (ingest (device_client, "http-1", "not-the-secret", events, &error));
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, NULL);
  g_clear_error (&error);
  g_assert_null (ingest (device_client, "nobody", "not-the-secret", events, &error));
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, NULL);
  g_clear_error (&error);

  /* what GET /events gives back */
  stored = fetch_events (admin, "http-1");
  g_assert_cmpuint (stored->len, ==, 11);
  for (guint i = 0; i < stored->len; i++)
    {
      FlEvent *event = g_ptr_array_index (stored, i);
      double   temperature;

      g_assert_cmpstr (fl_event_get_source (event), ==, "http-1");
      g_assert_cmpint (fl_event_get_seq (event), >, 0);
      g_assert_cmpint (fl_event_get_received_at (event), >, 0);
      g_assert_true (fl_event_get_metric (event, "temperature", &temperature));
    }
}

static void
test_too_large (void)
{
  g_autoptr (FlClient)  admin = new_client (TEST_ADMIN);
  g_autoptr (FlDevice)  device = NULL;
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GError)    error = NULL;
  g_autofree char      *secret = NULL;
  g_autofree char      *filler = g_strnfill (1000, 'x');
  FlIngestResult       *result;

  device = register_device (admin, "big-1", "group:big", &secret);

  /* about 1.2 MiB: over the 1 MiB body limit */
  for (guint i = 0; i < 1200; i++)
    {
      g_autoptr (JsonObject) data = json_object_new ();
      g_autofree char       *id = g_uuid_string_random ();

      json_object_set_string_member (data, "note", filler);
      g_ptr_array_add (events, fl_event_new (id, g_get_real_time () / 1000, "big-1", "note", data, NULL));
    }

  result = ingest (admin, "big-1", secret, events, &error);
  g_assert_null (result);
  assert_client_error (error, FL_CLIENT_ERROR_TOO_LARGE, 413, NULL);
}

static void
test_rotate_secret (void)
{
  g_autoptr (FlClient)     admin = new_client (TEST_ADMIN);
  g_autoptr (FlDevice)     device = NULL;
  g_autoptr (GPtrArray)    events = make_events ("rot-1", 2);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autofree char         *secret = NULL;
  g_autofree char         *new_secret = NULL;
  FlIngestResult          *ack;

  device = register_device (admin, "rot-1", "group:rot", &secret);

  fl_client_rotate_device_secret_async (admin, "rot-1", NULL, test_result_cb, &result);
  new_secret = fl_client_rotate_device_secret_finish (admin, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (new_secret);
  g_assert_cmpstr (new_secret, !=, secret);
  g_clear_object (&result);

  g_assert_null (ingest (admin, "rot-1", secret, events, &error));
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, NULL);
  g_clear_error (&error);

  ack = ingest (admin, "rot-1", new_secret, events, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ack->accepted, ==, 2);
  fl_ingest_result_free (ack);

  /* unknown device: 404 */
  fl_client_rotate_device_secret_async (admin, "no-such-device", NULL, test_result_cb, &result);
  g_assert_null (fl_client_rotate_device_secret_finish (admin, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_NOT_FOUND, 404, "not_found");
}

/* ---- the device channel ------------------------------------------------ */

static void
free_error (gpointer error)
{
  if (error != NULL)
    g_error_free (error);
}

typedef struct
{
  GPtrArray *acks;   /* FlIngestResult, in completion order */
  GPtrArray *errors; /* GError or NULL, same order */
  guint      closed;
} ChannelRecord;

static void
send_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  ChannelRecord  *record = user_data;
  GError         *error = NULL;
  FlIngestResult *ack = fl_device_channel_send_events_finish (FL_DEVICE_CHANNEL (object), result, &error);

  g_ptr_array_add (record->acks, ack);
  g_ptr_array_add (record->errors, error);
}

static void
closed_cb (FlDeviceChannel *channel,
           ChannelRecord   *record)
{
  record->closed++;
}

static gboolean
acks_at_least (gpointer data)
{
  ChannelRecord *record = ((gpointer *) data)[0];
  guint          n = GPOINTER_TO_UINT (((gpointer *) data)[1]);

  return record->acks->len >= n;
}

static void
wait_acks (ChannelRecord *record,
           guint          n)
{
  gpointer data[2] = { record, GUINT_TO_POINTER (n) };

  test_wait_until (acks_at_least, data, 10000, "acks");
}

static gboolean
channel_closed (gpointer data)
{
  return ((ChannelRecord *) data)->closed > 0;
}

static double
metric_value (FlClient   *client,
              const char *name)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (JsonNode)     node = NULL;

  fl_client_call_async (client, "GET", "/metrics", NULL, NULL, test_result_cb, &result);
  node = fl_client_call_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));

  return json_object_get_double_member (json_node_get_object (node), name);
}

static gboolean
relay_has_no_device_channels (gpointer data)
{
  return metric_value (data, "connectedDevices") == 0;
}

static void
test_device_channel (void)
{
  g_autoptr (FlClient)        admin = new_client (TEST_ADMIN);
  g_autoptr (FlClient)        device_client = new_client (NULL);
  g_autoptr (FlDevice)        device = NULL;
  g_autoptr (FlDeviceChannel) channel = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;
  g_autoptr (GPtrArray)       batch1 = make_events ("chan-1", 1);
  g_autoptr (GPtrArray)       batch2 = make_events ("chan-1", 5);
  g_autoptr (GPtrArray)       batch3 = make_events ("chan-1", 10);
  g_autoptr (GPtrArray)       mixed = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GPtrArray)       stored = NULL;
  g_autofree char            *secret = NULL;
  ChannelRecord               record = { 0 };
  FlIngestResult             *ack;

  record.acks = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_ingest_result_free);
  record.errors = g_ptr_array_new_with_free_func (free_error);

  device = register_device (admin, "chan-1", "group:chan", &secret);

  /* a wrong secret is refused on the upgrade */
  fl_client_open_device_channel_async (device_client, "chan-1", "wrong", NULL, test_result_cb, &result);
  g_assert_null (fl_client_open_device_channel_finish (device_client, test_wait_result (&result), &error));
  assert_client_error (error, FL_CLIENT_ERROR_UNAUTHORIZED, 401, NULL);
  g_clear_error (&error);
  g_clear_object (&result);

  fl_client_open_device_channel_async (device_client, "chan-1", secret, NULL, test_result_cb, &result);
  channel = fl_client_open_device_channel_finish (device_client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (channel);
  g_assert_true (fl_device_channel_is_open (channel));
  g_assert_cmpstr (fl_device_channel_get_device_id (channel), ==, "chan-1");
  g_signal_connect (channel, "closed", G_CALLBACK (closed_cb), &record);

  /* three batches without waiting: acked in order */
  fl_device_channel_send_events_async (channel, batch1, NULL, send_cb, &record);
  fl_device_channel_send_events_async (channel, batch2, NULL, send_cb, &record);
  fl_device_channel_send_events_async (channel, batch3, NULL, send_cb, &record);
  g_assert_cmpuint (fl_device_channel_get_n_pending (channel), ==, 3);
  wait_acks (&record, 3);
  g_assert_cmpuint (fl_device_channel_get_n_pending (channel), ==, 0);
  for (guint i = 0; i < 3; i++)
    g_assert_null (g_ptr_array_index (record.errors, i));
  g_assert_cmpuint (((FlIngestResult *) g_ptr_array_index (record.acks, 0))->accepted, ==, 1);
  g_assert_cmpuint (((FlIngestResult *) g_ptr_array_index (record.acks, 1))->accepted, ==, 5);
  g_assert_cmpuint (((FlIngestResult *) g_ptr_array_index (record.acks, 2))->accepted, ==, 10);

  /* a batch again: duplicates */
  fl_device_channel_send_events_async (channel, batch2, NULL, send_cb, &record);
  wait_acks (&record, 4);
  ack = g_ptr_array_index (record.acks, 3);
  g_assert_nonnull (ack);
  g_assert_cmpuint (ack->accepted, ==, 0);
  g_assert_cmpuint (ack->duplicates, ==, 5);

  /* an event as another device is rejected, its neighbour kept */
  g_ptr_array_add (mixed, make_event ("someone-else", "telemetry", 1.0));
  g_ptr_array_add (mixed, make_event ("chan-1", "telemetry", 2.0));
  fl_device_channel_send_events_async (channel, mixed, NULL, send_cb, &record);
  wait_acks (&record, 5);
  ack = g_ptr_array_index (record.acks, 4);
  g_assert_nonnull (ack);
  g_assert_cmpuint (ack->accepted, ==, 1);
  g_assert_cmpuint (ack->rejected->len, ==, 1);
  g_assert_cmpuint (g_array_index (ack->rejected, FlIngestRejection, 0).index, ==, 0);

  stored = fetch_events (admin, "chan-1");
  g_assert_cmpuint (stored->len, ==, 17);

  /* the relay saw the device */
  {
    g_autoptr (FlDevice) fetched = NULL;

    g_clear_object (&result);
    fl_client_get_device_async (admin, "chan-1", NULL, test_result_cb, &result);
    fetched = fl_client_get_device_finish (admin, test_wait_result (&result), &error);
    g_assert_no_error (error);
    g_assert_cmpint (fl_device_get_status (fetched), ==, FL_DEVICE_STATUS_ONLINE);
    g_assert_cmpint (fl_device_get_last_seen (fetched), >, 0);
  }

  /* a clean close; both ends let go */
  fl_device_channel_close (channel);
  test_wait_until (channel_closed, &record, 10000, "the channel to close");
  g_assert_false (fl_device_channel_is_open (channel));
  g_assert_null (fl_device_channel_get_error (channel));
  test_wait_until (relay_has_no_device_channels, admin, 10000, "the relay to drop the channel");

  /* nothing goes out on a closed channel */
  fl_device_channel_send_events_async (channel, batch1, NULL, send_cb, &record);
  wait_acks (&record, 6);
  g_assert_null (g_ptr_array_index (record.acks, 5));
  g_assert_error ((GError *) g_ptr_array_index (record.errors, 5), FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK);

  g_ptr_array_unref (record.acks);
  g_ptr_array_unref (record.errors);
}

/* Events in flight when the relay closes the channel fail with a network
 * error; the device resends them. */
static void
test_device_channel_relay_gone (void)
{
  g_autoptr (TestRelay)       own = test_relay_new ();
  g_autoptr (FlClient)        admin = NULL;
  g_autoptr (FlClient)        device_client = fl_client_new (own->url);
  g_autoptr (FlDevice)        device = NULL;
  g_autoptr (FlDeviceChannel) channel = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GError)          error = NULL;
  g_autoptr (GPtrArray)       batch = make_events ("gone-1", 3);
  g_autofree char            *secret = NULL;
  ChannelRecord               record = { 0 };
  TestRelay                  *saved = relay;

  record.acks = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_ingest_result_free);
  record.errors = g_ptr_array_new_with_free_func (free_error);

  relay = own;
  admin = new_client (TEST_ADMIN);
  relay = saved;

  device = register_device (admin, "gone-1", "group:gone", &secret);
  fl_client_open_device_channel_async (device_client, "gone-1", secret, NULL, test_result_cb, &result);
  channel = fl_client_open_device_channel_finish (device_client, test_wait_result (&result), &error);
  g_assert_no_error (error);
  g_signal_connect (channel, "closed", G_CALLBACK (closed_cb), &record);

  fl_device_channel_send_events_async (channel, batch, NULL, send_cb, &record);
  wait_acks (&record, 1);
  g_assert_nonnull (g_ptr_array_index (record.acks, 0));

  test_relay_stop (own);
  test_wait_until (channel_closed, &record, 10000, "the channel to close");
  g_assert_error (fl_device_channel_get_error (channel), FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK);

  g_ptr_array_unref (record.acks);
  g_ptr_array_unref (record.errors);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  relay = test_relay_new ();

  g_test_add_func ("/fieldline/client/error-mapping", test_error_mapping);
  g_test_add_func ("/fieldline/client/config", test_config);
  g_test_add_func ("/fieldline/client/login", test_login);
  g_test_add_func ("/fieldline/client/login-wrong-password", test_login_wrong_password);
  g_test_add_func ("/fieldline/client/register", test_register);
  g_test_add_func ("/fieldline/client/device-errors", test_device_errors);
  g_test_add_func ("/fieldline/client/network-errors", test_network_errors);
  g_test_add_func ("/fieldline/client/list-devices", test_list_devices);
  g_test_add_func ("/fieldline/client/ingest-http", test_ingest_http);
  g_test_add_func ("/fieldline/client/too-large", test_too_large);
  g_test_add_func ("/fieldline/client/rotate-secret", test_rotate_secret);
  g_test_add_func ("/fieldline/client/device-channel", test_device_channel);
  g_test_add_func ("/fieldline/client/device-channel-relay-gone", test_device_channel_relay_gone);

  ret = g_test_run ();

  g_clear_pointer (&relay, test_relay_free);

  return ret;
}
