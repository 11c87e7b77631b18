/* test-relay-stream.c: the relay's WebSockets end to end, against an
 * in-process relay: the operators' live stream on /events (subscribing,
 * resuming with "since", device filters, errors, a subscriber too slow
 * to keep up) and the device channel on /device. */
#define G_LOG_DOMAIN "test-relay-stream"

#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay-fixture.h"

/* ---- small helpers ----------------------------------------------------- */

static gint64
member_int (JsonObject *obj,
            const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    g_error ("Member “%s” is missing or not an integer", name);

  return json_node_get_int (node);
}

static const char *
member_string (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    g_error ("Member “%s” is missing or not a string", name);

  return json_node_get_string (node);
}

static JsonObject *
member_object (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    g_error ("Member “%s” is missing or not an object", name);

  return json_node_get_object (node);
}

static RfWs *
connect_subscriber (RfFixture *f)
{
  g_autofree char *path = g_strdup_printf ("/events?token=%s", f->viewer_token);
  RfWs            *ws = rf_ws_connect (f, path, NULL);

  if (!ws->connected)
    g_error ("The /events handshake failed (HTTP %u): %s", ws->status, ws->error ? ws->error->message : "");
  g_assert_cmpuint (ws->status, ==, SOUP_STATUS_SWITCHING_PROTOCOLS);

  return ws;
}

/* Subscribes and returns the "subscribed" reply's lastSeq. */
static gint64
subscribe (RfWs       *ws,
           const char *device_ids,
           gint64      since)
{
  g_autofree char *message = NULL;
  JsonObject      *reply;

  if (since >= 0)
    message = g_strdup_printf ("{\"action\":\"subscribe_devices\",\"deviceIds\":%s,\"since\":%" G_GINT64_FORMAT "}",
                               device_ids, since);
  else
    message = g_strdup_printf ("{\"action\":\"subscribe_devices\",\"deviceIds\":%s}", device_ids);
  rf_ws_send (ws, message);

  /* only device news may come first; an event would be lost to the test */
  for (;;)
    {
      reply = rf_ws_next (ws);
      if (g_str_equal (member_string (reply, "type"), "subscribed"))
        break;
      g_assert_cmpstr (member_string (reply, "type"), ==, "device");
    }
  g_assert_nonnull (json_object_get_array_member (reply, "deviceIds"));

  return member_int (reply, "lastSeq");
}

static RfWs *
connect_device (RfFixture  *f,
                const char *device_id,
                const char *secret)
{
  g_autofree char *basic = rf_basic_header (device_id, secret);
  RfWs            *ws = rf_ws_connect (f, "/device", basic);

  if (!ws->connected)
    g_error ("The /device handshake failed (HTTP %u): %s", ws->status, ws->error ? ws->error->message : "");

  return ws;
}

/* A batch of n events for the ingest, ids prefix-<first>..; data may be NULL. */
static char *
event_batch (const char *prefix,
             guint       first,
             guint       n,
             const char *data)
{
  GString *out = g_string_new ("[");
  gint64   ts = rf_now_ms ();

  for (guint i = first; i < first + n; i++)
    {
      g_autofree char *id = g_strdup_printf ("%s-%05u", prefix, i);
      g_autofree char *event = rf_event_json (id, ts + i, NULL, "telemetry", data ? data : "{\"temperature\":20.5}");

      g_string_append_printf (out, "%s%s", i > first ? "," : "", event);
    }
  g_string_append_c (out, ']');

  return g_string_free (out, FALSE);
}

static void
ingest_ok (RfFixture  *f,
           const char *device_id,
           const char *secret,
           const char *body,
           gint64      accepted)
{
  g_autoptr (RfReply) reply = rf_ingest (f, device_id, secret, body);

  rf_assert_status (reply, 200);
  g_assert_cmpint (member_int (rf_reply_object (reply), "accepted"), ==, accepted);
}

/* Every stored seq (optionally of one device), in order. */
static GArray *
stored_seqs (RfFixture  *f,
             const char *query)
{
  g_autoptr (GPtrArray) events = rf_fetch_events (f, query, 1000);
  GArray               *seqs = g_array_new (FALSE, FALSE, sizeof (gint64));

  for (guint i = 0; i < events->len; i++)
    {
      gint64 seq = member_int (g_ptr_array_index (events, i), "seq");
      g_array_append_val (seqs, seq);
    }

  return seqs;
}

static guint
count_done (GPtrArray *replies)
{
  guint n = 0;

  for (guint i = 0; i < replies->len; i++)
    n += ((RfReply *) g_ptr_array_index (replies, i))->done;

  return n;
}

/* ---- the live stream ---------------------------------------------------- */

static void
check_event_message (JsonObject *message,
                     const char *id,
                     const char *source)
{
  JsonObject *event = member_object (message, "event");

  g_assert_cmpstr (member_string (message, "type"), ==, "event");
  g_assert_cmpstr (member_string (event, "id"), ==, id);
  g_assert_cmpstr (member_string (event, "source"), ==, source);
  g_assert_cmpint (member_int (event, "seq"), >, 0);
  g_assert_cmpint (member_int (event, "receivedAt"), >, 0);
  g_assert_cmpint (member_int (event, "timestamp"), >, 0);
}

static void
test_stream_subscribe (RfFixture    *f,
                       gconstpointer data)
{
  g_autoptr (RfWs) ws = connect_subscriber (f);
  g_autofree char *secret = NULL;
  JsonObject      *reply, *message, *device;
  gint64           last_seq;

  rf_ws_send (ws, "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"]}");
  reply = rf_ws_next (ws);
  g_assert_cmpstr (member_string (reply, "type"), ==, "subscribed");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply, "deviceIds")), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (reply, "deviceIds"), 0), ==, "*");
  last_seq = member_int (reply, "lastSeq");
  g_assert_cmpint (last_seq, ==, 0);

  /* a new device is news */
  secret = rf_register_device (f, "live-1", NULL);
  device = member_object (rf_ws_next_of_type (ws, "device"), "device");
  g_assert_cmpstr (member_string (device, "deviceId"), ==, "live-1");
  g_assert_cmpstr (member_string (device, "status"), ==, "offline");
  g_assert_false (json_object_has_member (device, "deviceSecret"));
  g_assert_false (json_object_has_member (device, "secretHash"));

  /* its first event: it comes online, then the event */
  {
    g_autofree char *event = rf_event_json ("live-e1", rf_now_ms (), NULL, "telemetry", "{\"temperature\":22}");
    ingest_ok (f, "live-1", secret, event, 1);
  }
  message = rf_ws_next (ws);
  g_assert_cmpstr (member_string (message, "type"), ==, "device");
  g_assert_cmpstr (member_string (member_object (message, "device"), "status"), ==, "online");
  message = rf_ws_next (ws);
  check_event_message (message, "live-e1", "live-1");
  g_assert_cmpint (member_int (member_object (message, "event"), "seq"), >, last_seq);
  g_assert_cmpint (member_int (member_object (member_object (message, "event"), "data"), "temperature"), ==, 22);

  /* a duplicate is not published again; a new one is */
  {
    g_autofree char    *dup = rf_event_json ("live-e1", rf_now_ms (), NULL, "telemetry", "{\"temperature\":22}");
    g_autofree char    *next = rf_event_json ("live-e2", rf_now_ms (), NULL, "telemetry", NULL);
    g_autoptr (RfReply) reply_dup = rf_ingest (f, "live-1", secret, dup);

    rf_assert_status (reply_dup, 200);
    ingest_ok (f, "live-1", secret, next, 1);
    rf_ws_sync (ws);
    g_assert_cmpuint (rf_ws_count_unread (ws, "event"), ==, 1);
    check_event_message (rf_ws_next_of_type (ws, "event"), "live-e2", "live-1");
  }

  rf_ws_close (ws);
  g_assert_cmpuint (soup_websocket_connection_get_close_code (ws->conn), ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
}

/* The token in the Authorization header instead of ?token= */
static void
test_stream_header_token (RfFixture    *f,
                          gconstpointer data)
{
  g_autofree char *bearer = g_strdup_printf ("Bearer %s", f->operator_token);
  g_autoptr (RfWs) ws = rf_ws_connect (f, "/events", bearer);
  g_autofree char *secret = rf_register_device (f, "hdr-1", NULL);
  g_autofree char *event = rf_event_json ("hdr-e1", rf_now_ms (), NULL, "telemetry", NULL);

  g_assert_true (ws->connected);
  subscribe (ws, "[\"*\"]", -1);
  ingest_ok (f, "hdr-1", secret, event, 1);
  check_event_message (rf_ws_next_of_type (ws, "event"), "hdr-e1", "hdr-1");
}

static void
test_stream_device_messages (RfFixture    *f,
                             gconstpointer data)
{
  g_autoptr (RfWs) ws = connect_subscriber (f);
  g_autofree char *secret = rf_register_device (f, "dm-1", NULL);
  g_autoptr (RfWs) channel = NULL;
  JsonObject      *device;

  subscribe (ws, "[\"*\"]", -1);

  /* connecting the device channel brings it online */
  channel = connect_device (f, "dm-1", secret);
  device = member_object (rf_ws_next_of_type (ws, "device"), "device");
  g_assert_cmpstr (member_string (device, "deviceId"), ==, "dm-1");
  g_assert_cmpstr (member_string (device, "status"), ==, "online");
  g_assert_cmpint (member_int (device, "lastSeen"), >, 0);

  /* an operator's change is news too */
  {
    g_autoptr (RfReply) reply = rf_request_json (f, "PUT", "/devices/dm-1", f->admin_token, "{\"status\":\"maintenance\"}");

    rf_assert_status (reply, 200);
    device = member_object (rf_ws_next_of_type (ws, "device"), "device");
    g_assert_cmpstr (member_string (device, "status"), ==, "maintenance");
  }

  /* decommissioning: the news, and the device channel is closed */
  {
    g_autoptr (RfReply) reply = rf_request_json (f, "DELETE", "/devices/dm-1", f->admin_token, NULL);

    rf_assert_status (reply, 200);
    device = member_object (rf_ws_next_of_type (ws, "device"), "device");
    g_assert_cmpstr (member_string (device, "status"), ==, "decommissioned");
    RF_WAIT_UNTIL (channel->closed);
    g_assert_cmpuint (soup_websocket_connection_get_close_code (channel->conn), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
  }
}

static void
test_stream_ping_and_errors (RfFixture    *f,
                             gconstpointer data)
{
  g_autoptr (RfWs) ws = connect_subscriber (f);
  struct
  {
    const char *message;
    const char *code;
  } cases[] = {
    { "{\"action\":\"dance\"}", "bad_request" },
    { "{\"deviceIds\":[\"*\"]}", "bad_request" },
    { "{\"action\":42}", "bad_request" },
    { "{\"action\":\"subscribe_devices\"}", "invalid_parameter" },
    { "{\"action\":\"subscribe_devices\",\"deviceIds\":\"*\"}", "invalid_parameter" },
    { "{\"action\":\"subscribe_devices\",\"deviceIds\":[1]}", "invalid_parameter" },
    { "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"],\"since\":\"10\"}", "invalid_parameter" },
    { "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"],\"since\":-1}", "invalid_parameter" },
    { "{\"action\":", "malformed_json" },
    { "not json at all", "malformed_json" },
    { "[\"subscribe_devices\"]", "malformed_json" },
  };
  JsonObject *pong;

  rf_ws_send (ws, "{\"action\":\"ping\"}");
  pong = rf_ws_next (ws);
  g_assert_cmpstr (member_string (pong, "type"), ==, "pong");
  g_assert_cmpint (member_int (pong, "time"), >, rf_now_ms () - 60000);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      JsonObject *error;

      g_test_message ("message: %s", cases[i].message);
      rf_ws_send (ws, cases[i].message);
      error = rf_ws_next (ws);
      g_assert_cmpstr (member_string (error, "type"), ==, "error");
      rf_assert_error_member (error, cases[i].code);
    }

  /* binary frames are not understood either */
  {
    static const guint8 bytes[] = { 0x7b, 0x7d };
    JsonObject         *error;

    soup_websocket_connection_send_binary (ws->conn, bytes, sizeof bytes);
    error = rf_ws_next (ws);
    g_assert_cmpstr (member_string (error, "type"), ==, "error");
    rf_assert_error_member (error, "bad_request");
  }

  /* none of that closed the connection: it still works */
  g_assert_false (ws->closed);
  rf_ws_send (ws, "{\"action\":\"ping\"}");
  g_assert_cmpstr (member_string (rf_ws_next (ws), "type"), ==, "pong");
  {
    g_autofree char *secret = rf_register_device (f, "err-1", NULL);
    g_autofree char *event = rf_event_json ("err-e1", rf_now_ms (), NULL, "telemetry", NULL);

    subscribe (ws, "[\"*\"]", -1);
    ingest_ok (f, "err-1", secret, event, 1);
    check_event_message (rf_ws_next_of_type (ws, "event"), "err-e1", "err-1");
  }

  rf_ws_send (ws, "{\"action\":\"subscribe_alerts\"}");
  g_assert_cmpstr (member_string (rf_ws_next_of_type (ws, "subscribed_alerts"), "type"), ==, "subscribed_alerts");
}

static void
test_stream_handshake_auth (RfFixture    *f,
                            gconstpointer data)
{
  g_autofree char *bad_query = g_strdup ("/events?token=not.a.token");
  struct
  {
    const char *path;
    const char *authorization;
  } cases[] = {
    { "/events", NULL },
    { "/events?token=", NULL },
    { bad_query, NULL },
    { "/events", "Bearer not.a.token" },
    { "/events", "Basic dmlld2VyOlN1cDNyLVNlY3JldCE=" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (RfWs)    ws = NULL;
      g_autoptr (RfReply) raw = NULL;

      g_test_message ("GET %s (%s)", cases[i].path, cases[i].authorization ? cases[i].authorization : "no header");
      ws = rf_ws_connect (f, cases[i].path, cases[i].authorization);
      g_assert_true (ws->failed);
      g_assert_cmpuint (ws->status, ==, 401);

      raw = rf_upgrade_request (f, cases[i].path, cases[i].authorization);
      rf_assert_error (raw, 401, "unauthorized");
      g_assert_null (rf_reply_header (raw, "Sec-WebSocket-Accept"));
    }

  /* nobody was let in */
  g_assert_cmpuint (fl_hub_get_n_subscribers (f->relay->hub), ==, 0);

  /* the real token works both ways */
  {
    g_autofree char *bearer = g_strdup_printf ("Bearer %s", f->viewer_token);
    g_autoptr (RfWs) by_query = connect_subscriber (f);
    g_autoptr (RfWs) by_header = rf_ws_connect (f, "/events", bearer);

    g_assert_true (by_header->connected);
    RF_WAIT_UNTIL (fl_hub_get_n_subscribers (f->relay->hub) == 2);
  }
}

/* Resuming: every stored event after "since", in order, then the live
 * ones, while more are ingested concurrently; no gap, no duplicate. */
static void
resume (RfFixture *f,
        guint      n_before,
        guint      since_index,
        guint      n_requests,
        guint      per_request)
{
  g_autofree char      *secret = rf_register_device (f, "res-1", NULL);
  g_autoptr (RfWs)      ws = NULL;
  g_autoptr (GArray)    before = NULL;
  g_autoptr (GArray)    all = NULL;
  g_autoptr (GPtrArray) replies = g_ptr_array_new_with_free_func ((GDestroyNotify) rf_reply_free);
  g_autoptr (GArray)    received = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64                since;
  guint                 expected;
  gboolean              replies_checked = FALSE;

  for (guint done = 0; done < n_before; done += 500)
    {
      g_autofree char *batch = event_batch ("res", done, MIN (500, n_before - done), NULL);
      ingest_ok (f, "res-1", secret, batch, MIN (500, n_before - done));
    }
  before = stored_seqs (f, NULL);
  g_assert_cmpuint (before->len, ==, n_before);
  since = since_index > 0 ? g_array_index (before, gint64, since_index - 1) : 0;

  ws = connect_subscriber (f);
  {
    g_autofree char *message = g_strdup_printf ("{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"],"
                                                "\"since\":%" G_GINT64_FORMAT "}",
                                                since);
    rf_ws_send (ws, message);
  }

  /* more events arrive while it catches up */
  for (guint r = 0; r < n_requests; r++)
    {
      g_autofree char *batch = event_batch ("live", r * per_request, per_request, NULL);
      g_ptr_array_add (replies, rf_ingest_async (f, "res-1", secret, batch));
    }

  expected = n_before - since_index + n_requests * per_request;
  while (received->len < expected)
    {
      JsonObject *message;

      /* a failed ingest would leave the stream short: say so */
      if (!replies_checked && count_done (replies) == replies->len)
        {
          for (guint r = 0; r < replies->len; r++)
            rf_assert_status ((RfReply *) g_ptr_array_index (replies, r), 200);
          replies_checked = TRUE;
        }

      message = rf_ws_next (ws);
      const char *type = member_string (message, "type");

      if (g_str_equal (type, "event"))
        {
          gint64 seq = member_int (member_object (message, "event"), "seq");
          g_array_append_val (received, seq);
        }
      else
        g_assert_true (g_str_equal (type, "subscribed") || g_str_equal (type, "device"));
    }

  RF_WAIT_UNTIL (count_done (replies) == replies->len);
  for (guint r = 0; r < replies->len; r++)
    {
      RfReply *reply = g_ptr_array_index (replies, r);

      rf_assert_status (reply, 200);
      g_assert_cmpint (member_int (rf_reply_object (reply), "accepted"), ==, per_request);
    }

  /* nothing more after those */
  rf_ws_sync (ws);
  g_assert_cmpuint (rf_ws_count_unread (ws, "event"), ==, 0);

  /* exactly the stored events after since, in seq order */
  all = stored_seqs (f, NULL);
  g_assert_cmpuint (all->len, ==, n_before + n_requests * per_request);
  g_assert_cmpuint (received->len, ==, all->len - since_index);
  for (guint i = 0; i < received->len; i++)
    {
      gint64 want = g_array_index (all, gint64, since_index + i);
      gint64 got = g_array_index (received, gint64, i);

      if (got != want)
        g_error ("Event %u of the stream has seq %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT
                 " (a gap, a duplicate or out of order)",
                 i, got, want);
    }
}

static void
test_stream_resume (RfFixture    *f,
                    gconstpointer data)
{
  resume (f, 50, 10, 10, 5);
}

/* The catch-up spans several store pages (1000 each). */
static void
test_stream_resume_large (RfFixture    *f,
                          gconstpointer data)
{
  resume (f, 2500, 100, 40, 25);
}

static char *
unread_event_ids (RfWs *ws)
{
  GString *out = g_string_new (NULL);

  while (ws->next < ws->messages->len)
    {
      JsonObject *message = rf_ws_next (ws);

      if (g_str_equal (member_string (message, "type"), "event"))
        g_string_append_printf (out, "%s%s", out->len ? " " : "", member_string (member_object (message, "event"), "id"));
    }

  return g_string_free (out, FALSE);
}

static void
ingest_one (RfFixture  *f,
            const char *device_id,
            const char *secret,
            const char *event_id)
{
  g_autofree char *event = rf_event_json (event_id, rf_now_ms (), NULL, "telemetry", NULL);

  ingest_ok (f, device_id, secret, event, 1);
}

static void
test_stream_device_filter (RfFixture    *f,
                           gconstpointer data)
{
  g_autofree char *secret_a = rf_register_device (f, "flt-a", NULL);
  g_autofree char *secret_b = rf_register_device (f, "flt-b", NULL);
  g_autoptr (RfWs) ws = connect_subscriber (f);
  JsonObject      *reply;

  rf_ws_send (ws, "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"flt-a\"]}");
  reply = rf_ws_next (ws);
  g_assert_cmpstr (member_string (reply, "type"), ==, "subscribed");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply, "deviceIds")), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (reply, "deviceIds"), 0), ==, "flt-a");

  /* only flt-a's events and status */
  ingest_one (f, "flt-a", secret_a, "fa-1");
  ingest_one (f, "flt-b", secret_b, "fb-1");
  ingest_one (f, "flt-a", secret_a, "fa-2");
  rf_ws_sync (ws);
  for (guint i = ws->next; i < ws->messages->len; i++)
    {
      JsonObject *message = g_ptr_array_index (ws->messages, i);

      if (g_str_equal (member_string (message, "type"), "device"))
        g_assert_cmpstr (member_string (member_object (message, "device"), "deviceId"), ==, "flt-a");
    }
  {
    g_autofree char *ids = unread_event_ids (ws);
    g_assert_cmpstr (ids, ==, "fa-1 fa-2");
  }

  /* unsubscribed: nothing more */
  rf_ws_send (ws, "{\"action\":\"unsubscribe_devices\",\"deviceIds\":[\"flt-a\"]}");
  reply = rf_ws_next (ws);
  g_assert_cmpstr (member_string (reply, "type"), ==, "unsubscribed");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (reply, "deviceIds")), ==, 0);
  ingest_one (f, "flt-a", secret_a, "fa-3");
  ingest_one (f, "flt-b", secret_b, "fb-2");
  rf_ws_sync (ws);
  {
    g_autofree char *ids = unread_event_ids (ws);
    g_assert_cmpstr (ids, ==, "");
  }

  /* subscriptions add up */
  subscribe (ws, "[\"flt-b\"]", -1);
  ingest_one (f, "flt-a", secret_a, "fa-4");
  ingest_one (f, "flt-b", secret_b, "fb-3");
  rf_ws_sync (ws);
  {
    g_autofree char *ids = unread_event_ids (ws);
    g_assert_cmpstr (ids, ==, "fb-3");
  }
  subscribe (ws, "[\"flt-a\"]", -1);
  ingest_one (f, "flt-a", secret_a, "fa-5");
  ingest_one (f, "flt-b", secret_b, "fb-4");
  rf_ws_sync (ws);
  {
    g_autofree char *ids = unread_event_ids (ws);
    g_assert_cmpstr (ids, ==, "fa-5 fb-4");
  }

  /* ["*"] unsubscribes from everything */
  rf_ws_send (ws, "{\"action\":\"unsubscribe_devices\",\"deviceIds\":[\"*\"]}");
  rf_ws_next_of_type (ws, "unsubscribed");
  ingest_one (f, "flt-a", secret_a, "fa-6");
  ingest_one (f, "flt-b", secret_b, "fb-5");
  rf_ws_sync (ws);
  {
    g_autofree char *ids = unread_event_ids (ws);
    g_assert_cmpstr (ids, ==, "");
  }

  /* resuming with a filter: only flt-a's history (while the newest
   * stored event is flt-b's), then flt-a's live events */
  {
    g_autoptr (RfWs) second = connect_subscriber (f);
    g_autofree char *ids = NULL;

    subscribe (second, "[\"flt-a\"]", 0);
    ingest_one (f, "flt-b", secret_b, "fb-6");
    ingest_one (f, "flt-a", secret_a, "fa-7");
    RF_WAIT_UNTIL (rf_ws_count_unread (second, "event") >= 7);
    rf_ws_sync (second);
    ids = unread_event_ids (second);
    g_assert_cmpstr (ids, ==, "fa-1 fa-2 fa-3 fa-4 fa-5 fa-6 fa-7");
  }
}

/* ---- the device channel -------------------------------------------------- */

static JsonObject *
next_ack (RfWs *ws)
{
  JsonObject *ack = rf_ws_next (ws);

  g_assert_cmpstr (member_string (ack, "type"), ==, "ack");
  return ack;
}

static void
assert_ack (JsonObject *ack,
            gint64      accepted,
            gint64      duplicates,
            guint       n_rejected)
{
  JsonArray *rejected = json_object_get_array_member (ack, "rejected");

  g_assert_false (json_object_has_member (ack, "error"));
  g_assert_cmpint (member_int (ack, "accepted"), ==, accepted);
  g_assert_cmpint (member_int (ack, "duplicates"), ==, duplicates);
  g_assert_nonnull (rejected);
  g_assert_cmpuint (json_array_get_length (rejected), ==, n_rejected);
}

static void
test_device_ws_ack (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "wsd", NULL);
  g_autofree char       *other_secret = rf_register_device (f, "wsd-other", NULL);
  g_autoptr (GHashTable) expected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (RfWs)       ws = connect_device (f, "wsd", secret);
  gint64                 ts = rf_now_ms ();

  /* connected is alive */
  {
    g_autoptr (RfReply) reply = rf_get (f, "/devices/wsd", f->viewer_token);

    rf_assert_status (reply, 200);
    g_assert_cmpstr (member_string (rf_reply_object (reply), "status"), ==, "online");
    g_assert_cmpuint (f->relay->device_sessions->len, ==, 1);
  }

  /* five messages at once; five acks, in message order */
  for (guint k = 1; k <= 5; k++)
    {
      g_autofree char *prefix = g_strdup_printf ("ack%u", k);
      g_autofree char *batch = event_batch (prefix, 0, k, NULL);

      rf_ws_send (ws, batch);
      for (guint i = 0; i < k; i++)
        g_hash_table_add (expected, g_strdup_printf ("%s-%05u", prefix, i));
    }
  for (guint k = 1; k <= 5; k++)
    assert_ack (next_ack (ws), k, 0, 0);

  /* a refused message does not overtake those before it */
  {
    g_autofree char *first = event_batch ("ord1", 0, 1, NULL);
    g_autofree char *last = event_batch ("ord2", 0, 2, NULL);
    JsonObject      *ack;

    rf_ws_send (ws, first);
    rf_ws_send (ws, "{\"id\":");
    rf_ws_send (ws, last);
    assert_ack (next_ack (ws), 1, 0, 0);
    ack = next_ack (ws);
    rf_assert_error_member (ack, "malformed_json");
    g_assert_false (json_object_has_member (ack, "accepted"));
    assert_ack (next_ack (ws), 2, 0, 0);
    g_hash_table_add (expected, g_strdup ("ord1-00000"));
    g_hash_table_add (expected, g_strdup ("ord2-00000"));
    g_hash_table_add (expected, g_strdup ("ord2-00001"));
  }

  /* another device's source: rejected in a batch, refused alone */
  {
    g_autofree char *good = rf_event_json ("own-1", ts, "wsd", "telemetry", NULL);
    g_autofree char *spoof = rf_event_json ("spoof-1", ts, "wsd-other", "telemetry", NULL);
    g_autofree char *batch = g_strdup_printf ("[%s,%s]", good, spoof);
    JsonObject      *ack;

    rf_ws_send (ws, batch);
    ack = next_ack (ws);
    assert_ack (ack, 1, 0, 1);
    g_assert_cmpint (member_int (json_array_get_object_element (json_object_get_array_member (ack, "rejected"), 0), "index"), ==, 1);
    rf_assert_error_member (json_array_get_object_element (json_object_get_array_member (ack, "rejected"), 0), "forbidden_source");
    g_hash_table_add (expected, g_strdup ("own-1"));

    rf_ws_send (ws, spoof);
    rf_assert_error_member (next_ack (ws), "forbidden_source");
  }

  /* a duplicate, NDJSON, and a binary frame */
  {
    g_autofree char    *again = event_batch ("ack1", 0, 1, NULL);
    g_autofree char    *e1 = rf_event_json ("nd-1", ts, NULL, "telemetry", NULL);
    g_autofree char    *e2 = rf_event_json ("nd-2", ts, NULL, "heartbeat", NULL);
    g_autofree char    *ndjson = g_strdup_printf ("%s\n%s\n", e1, e2);
    static const guint8 bytes[] = { '[', ']' };

    rf_ws_send (ws, again);
    assert_ack (next_ack (ws), 0, 1, 0);
    rf_ws_send (ws, ndjson);
    assert_ack (next_ack (ws), 2, 0, 0);
    g_hash_table_add (expected, g_strdup ("nd-1"));
    g_hash_table_add (expected, g_strdup ("nd-2"));
    soup_websocket_connection_send_binary (ws->conn, bytes, sizeof bytes);
    rf_assert_error_member (next_ack (ws), "malformed_json");
  }

  /* still open, and what was acknowledged is exactly what is stored */
  g_assert_false (ws->closed);
  rf_assert_stored_events (f, expected);
  g_assert_nonnull (other_secret);
}

static void
test_device_ws_auth (RfFixture    *f,
                     gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "wsa", NULL);
  g_autofree char *wrong = rf_basic_header ("wsa", "not-the-secret");
  g_autofree char *unknown = rf_basic_header ("nobody", secret);
  g_autofree char *bearer = g_strdup_printf ("Bearer %s", f->admin_token);
  const char      *headers[] = { wrong, unknown, bearer, NULL };

  for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
    {
      g_autoptr (RfWs)    ws = rf_ws_connect (f, "/device", headers[i]);
      g_autoptr (RfReply) raw = rf_upgrade_request (f, "/device", headers[i]);
      const char         *challenge;

      g_test_message ("Authorization: %s", headers[i] ? headers[i] : "(none)");
      g_assert_true (ws->failed);
      g_assert_cmpuint (ws->status, ==, 401);
      rf_assert_error (raw, 401, "unauthorized");
      challenge = rf_reply_header (raw, "WWW-Authenticate");
      g_assert_nonnull (challenge);
      g_assert_true (g_str_has_prefix (challenge, "Basic"));
    }

  g_assert_cmpuint (f->relay->device_sessions->len, ==, 0);
  {
    g_autoptr (RfReply) reply = rf_get (f, "/devices/wsa", f->viewer_token);

    rf_assert_status (reply, 200);
    g_assert_cmpstr (member_string (rf_reply_object (reply), "status"), ==, "offline");
  }

  /* the right secret gets in */
  {
    g_autoptr (RfWs) ws = connect_device (f, "wsa", secret);
    g_assert_cmpuint (f->relay->device_sessions->len, ==, 1);
  }
}

/* Shutting down closes every WebSocket with "going away". */
static void
test_stream_shutdown (RfFixture    *f,
                      gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "bye", NULL);
  g_autoptr (RfWs) subscriber = connect_subscriber (f);
  g_autoptr (RfWs) device = connect_device (f, "bye", secret);
  gpointer         weak;

  subscribe (subscriber, "[\"*\"]", -1);
  rf_relay_shutdown_and_wait (f->relay);

  RF_WAIT_UNTIL (subscriber->closed && device->closed);
  g_assert_cmpuint (soup_websocket_connection_get_close_code (subscriber->conn), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
  g_assert_cmpuint (soup_websocket_connection_get_close_code (device->conn), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);

  weak = f->relay;
  g_object_add_weak_pointer (G_OBJECT (f->relay), &weak);
  g_clear_object (&f->relay);
  g_assert_null (weak);
}

/* ---- a subscriber that stops reading --------------------------------------- */

/* A WebSocket client on a plain socket, in a thread, with a small
 * receive buffer: it does the handshake by hand, subscribes, and then
 * stops reading until told to resume. */
typedef struct
{
  guint16 port;
  char   *token;

  GMutex   lock;
  GCond    cond;
  gboolean resume;     /* main → thread */
  gint     subscribed; /* thread → main (atomic) */
  gint     finished;   /* thread → main (atomic) */

  /* results, read by the main thread once finished */
  GPtrArray *texts;      /* text messages after "subscribed" */
  int        close_code; /* -1: no close frame */
  char      *failure;
} SlowClient;

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static gboolean
send_all (int         fd,
          const void *data,
          gsize       len)
{
  const guint8 *p = data;

  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      len -= n;
    }

  return TRUE;
}

/* Reads more bytes into buf; FALSE at EOF or on an error. */
static gboolean
read_more (int         fd,
           GByteArray *buf)
{
  guint8  chunk[4096];
  ssize_t n;

  do
    n = recv (fd, chunk, sizeof chunk, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return FALSE;
  g_byte_array_append (buf, chunk, n);

  return TRUE;
}

/* A client frame: FIN, opcode, masked payload. */
static gboolean
send_frame (int           fd,
            guint8        opcode,
            const guint8 *payload,
            gsize         len)
{
  g_autoptr (GByteArray) frame = g_byte_array_new ();
  guint32                mask = g_random_int ();
  guint8                 header[4] = { 0x80 | opcode, 0, 0, 0 };
  guint8                 mask_bytes[4];

  g_assert_cmpuint (len, <, 65536);
  if (len < 126)
    {
      header[1] = 0x80 | len;
      g_byte_array_append (frame, header, 2);
    }
  else
    {
      header[1] = 0x80 | 126;
      header[2] = len >> 8;
      header[3] = len & 0xff;
      g_byte_array_append (frame, header, 4);
    }
  memcpy (mask_bytes, &mask, 4);
  g_byte_array_append (frame, mask_bytes, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = payload[i] ^ mask_bytes[i % 4];
      g_byte_array_append (frame, &b, 1);
    }

  return send_all (fd, frame->data, frame->len);
}

/* Reads one server frame (unmasked) from fd through buf.  Returns FALSE
 * at EOF; sets *opcode and *payload. */
static gboolean
read_frame (int         fd,
            GByteArray *buf,
            guint8     *opcode,
            GBytes    **payload)
{
  guint64 len;
  gsize   header;

  while (buf->len < 2)
    if (!read_more (fd, buf))
      return FALSE;

  len = buf->data[1] & 0x7f;
  header = 2;
  g_assert_false (buf->data[1] & 0x80); /* servers do not mask */
  if (len == 126)
    header = 4;
  else if (len == 127)
    header = 10;
  while (buf->len < header)
    if (!read_more (fd, buf))
      return FALSE;
  if (len == 126)
    len = ((guint64) buf->data[2] << 8) | buf->data[3];
  else if (len == 127)
    {
      len = 0;
      for (guint i = 2; i < 10; i++)
        len = (len << 8) | buf->data[i];
    }
  g_assert_cmpuint (len, <, 16 * 1024 * 1024);
  while (buf->len < header + len)
    if (!read_more (fd, buf))
      return FALSE;

  /* libsoup does not fragment what it sends */
  g_assert_true (buf->data[0] & 0x80);
  *opcode = buf->data[0] & 0x0f;
  *payload = g_bytes_new (buf->data + header, len);
  g_byte_array_remove_range (buf, 0, header + len);

  return TRUE;
}

static void
slow_fail (SlowClient *slow,
           const char *what)
{
  if (slow->failure == NULL)
    slow->failure = g_strdup_printf ("%s (%s)", what, g_strerror (errno));
}

static gpointer
slow_client_thread (gpointer data)
{
  SlowClient            *slow = data;
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  struct sockaddr_in     addr = { 0 };
  struct timeval         timeout = { .tv_sec = 60 };
  int                    rcvbuf = 4096;
  int                    fd = -1;
  guint8                 key_bytes[16];
  g_autofree char       *key = NULL;
  g_autofree char       *request = NULL;
  g_autofree char       *expected_accept = NULL;

  slow->close_code = -1;

  fd = socket (AF_INET, SOCK_STREAM, 0);
  /* a small receive window, set before connecting; a timeout so that a
   * relay that never answers cannot hang the test */
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  addr.sin_family = AF_INET;
  addr.sin_port = htons (slow->port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      slow_fail (slow, "connect");
      goto out;
    }

  for (guint i = 0; i < sizeof key_bytes; i++)
    key_bytes[i] = g_random_int_range (0, 256);
  key = g_base64_encode (key_bytes, sizeof key_bytes);
  {
    g_autofree char      *concat = g_strconcat (key, WS_GUID, NULL);
    guint8                digest[20];
    gsize                 digest_len = sizeof digest;
    g_autoptr (GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);

    g_checksum_update (sha1, (const guchar *) concat, -1);
    g_checksum_get_digest (sha1, digest, &digest_len);
    expected_accept = g_base64_encode (digest, digest_len);
  }

  request = g_strdup_printf ("GET /events?token=%s HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "\r\n",
                             slow->token, slow->port, key);
  if (!send_all (fd, request, strlen (request)))
    {
      slow_fail (slow, "sending the handshake");
      goto out;
    }

  /* the 101 and its headers */
  for (;;)
    {
      guint8 *end = buf->len >= 4 ? memmem (buf->data, buf->len, "\r\n\r\n", 4) : NULL;

      if (end != NULL)
        {
          gsize            head_len = end + 4 - buf->data;
          g_autofree char *head = g_strndup ((char *) buf->data, head_len);
          g_autofree char *accept_line = g_strdup_printf ("Sec-WebSocket-Accept: %s\r\n", expected_accept);

          if (!g_str_has_prefix (head, "HTTP/1.1 101") || strstr (head, accept_line) == NULL)
            {
              slow->failure = g_strdup_printf ("a bad handshake reply: %s", head);
              goto out;
            }
          g_byte_array_remove_range (buf, 0, head_len);
          break;
        }
      if (!read_more (fd, buf))
        {
          slow_fail (slow, "reading the handshake");
          goto out;
        }
    }

  {
    static const char subscribe_text[] = "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"]}";

    if (!send_frame (fd, 0x1, (const guint8 *) subscribe_text, strlen (subscribe_text)))
      {
        slow_fail (slow, "sending subscribe");
        goto out;
      }
  }

  /* up to the "subscribed" reply */
  for (;;)
    {
      guint8             opcode;
      g_autoptr (GBytes) payload = NULL;

      if (!read_frame (fd, buf, &opcode, &payload))
        {
          slow_fail (slow, "reading the subscribed reply");
          goto out;
        }
      if (opcode == 0x1 && memmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), "\"subscribed\"", strlen ("\"subscribed\"")) != NULL)
        break;
    }

  /* now stop reading until the test says so */
  g_atomic_int_set (&slow->subscribed, TRUE);
  g_main_context_wakeup (NULL);
  g_mutex_lock (&slow->lock);
  while (!slow->resume)
    g_cond_wait (&slow->cond, &slow->lock);
  g_mutex_unlock (&slow->lock);

  /* everything that is left, up to the end of the connection */
  for (;;)
    {
      guint8             opcode;
      g_autoptr (GBytes) payload = NULL;

      if (!read_frame (fd, buf, &opcode, &payload))
        break;

      if (opcode == 0x1)
        g_ptr_array_add (slow->texts, g_strndup (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload)));
      else if (opcode == 0x8)
        {
          const guint8 *p = g_bytes_get_data (payload, NULL);

          slow->close_code = g_bytes_get_size (payload) >= 2 ? (p[0] << 8 | p[1]) : 1005;
          /* answer the close; the relay then ends the connection */
          send_frame (fd, 0x8, p, MIN (g_bytes_get_size (payload), 2));
        }
      else if (opcode == 0x9)
        send_frame (fd, 0xA, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
    }

out:
  if (fd >= 0)
    close (fd);
  g_atomic_int_set (&slow->finished, TRUE);
  g_main_context_wakeup (NULL);

  return NULL;
}

static const RfOptions slow_options = { .max_subscriber_lag = 64 * 1024 };

/* Counts the hub's "Disconnecting subscriber" messages. */
static void
hub_log_cb (const char    *log_domain,
            GLogLevelFlags log_level,
            const char    *message,
            gpointer       user_data)
{
  guint *n_disconnected = user_data;

  if (g_str_has_prefix (message, "Disconnecting subscriber viewer"))
    (*n_disconnected)++;
  else
    g_log_default_handler (log_domain, log_level, message, NULL);
}

static void
test_stream_slow_subscriber (RfFixture    *f,
                             gconstpointer data)
{
  enum
  {
    N_REQUESTS = 60,
    PER_REQUEST = 25
  };
  g_autofree char   *secret = rf_register_device (f, "fast", NULL);
  g_autoptr (RfWs)   normal = connect_subscriber (f);
  g_autoptr (GArray) normal_seqs = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) all = NULL;
  g_autofree char   *pad = g_strnfill (600, 'p');
  g_autofree char   *event_data = g_strdup_printf ("{\"temperature\":1.5,\"pad\":\"%s\"}", pad);
  SlowClient         slow = { 0 };
  GThread           *thread;
  gint64             worst_us = 0;
  const char        *colon = strrchr (f->url, ':');
  guint              n_slow_events = 0, n_disconnected = 0, log_handler;
  gboolean           saw_error = FALSE;

  subscribe (normal, "[\"*\"]", -1);

  slow.port = g_ascii_strtoull (colon + 1, NULL, 10);
  slow.token = f->viewer_token;
  slow.texts = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&slow.lock);
  g_cond_init (&slow.cond);
  thread = g_thread_new ("slow-subscriber", slow_client_thread, &slow);
  RF_WAIT_UNTIL (g_atomic_int_get (&slow.subscribed) || g_atomic_int_get (&slow.finished));
  if (slow.failure != NULL)
    g_error ("The slow client failed: %s", slow.failure);
  RF_WAIT_UNTIL (fl_hub_get_n_subscribers (f->relay->hub) == 2);

  log_handler = g_log_set_handler ("fl-hub", G_LOG_LEVEL_MESSAGE, hub_log_cb, &n_disconnected);

  /* ingest goes on at its own pace: no request waits for the slow one */
  for (guint r = 0; r < N_REQUESTS; r++)
    {
      g_autofree char *batch = event_batch ("slow", r * PER_REQUEST, PER_REQUEST, event_data);
      gint64           start = g_get_monotonic_time ();

      ingest_ok (f, "fast", secret, batch, PER_REQUEST);
      worst_us = MAX (worst_us, g_get_monotonic_time () - start);
    }
  g_test_message ("slowest ingest request: %" G_GINT64_FORMAT " ms", worst_us / 1000);
  g_assert_cmpint (worst_us, <, 5 * G_USEC_PER_SEC);

  /* the normal subscriber gets every event, in order */
  while (normal_seqs->len < N_REQUESTS * PER_REQUEST)
    {
      JsonObject *message = rf_ws_next (normal);

      if (g_str_equal (member_string (message, "type"), "event"))
        {
          gint64 seq = member_int (member_object (message, "event"), "seq");
          g_array_append_val (normal_seqs, seq);
        }
      else
        g_assert_cmpstr (member_string (message, "type"), ==, "device");
    }
  all = stored_seqs (f, NULL);
  g_assert_cmpuint (all->len, ==, N_REQUESTS * PER_REQUEST);
  g_assert_cmpmem (normal_seqs->data, normal_seqs->len * sizeof (gint64), all->data, all->len * sizeof (gint64));
  g_assert_false (normal->closed);

  /* by now the slow one is far behind (about 1 MB were published while
   * its window is a few KB) and must have been cut off */
  g_log_remove_handler ("fl-hub", log_handler);
  if (n_disconnected != 1)
    g_error ("The relay did not disconnect the subscriber that stopped reading (%u disconnections); "
             "it would queue for it without bound",
             n_disconnected);

  /* let it read what it was sent */
  g_mutex_lock (&slow.lock);
  slow.resume = TRUE;
  g_cond_signal (&slow.cond);
  g_mutex_unlock (&slow.lock);
  RF_WAIT_UNTIL_MS (g_atomic_int_get (&slow.finished), 30000);
  g_thread_join (thread);

  if (slow.failure != NULL)
    g_error ("The slow client failed: %s", slow.failure);

  /* a gap-free prefix of the events, then an error, then close 4008 */
  for (guint i = 0; i < slow.texts->len; i++)
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_autoptr (GError)     error = NULL;
      JsonObject            *message;
      const char            *type;

      json_parser_load_from_data (parser, g_ptr_array_index (slow.texts, i), -1, &error);
      g_assert_no_error (error);
      message = json_node_get_object (json_parser_get_root (parser));
      type = member_string (message, "type");

      g_assert_false (saw_error); /* the error is the last message */
      if (g_str_equal (type, "event"))
        {
          gint64 seq = member_int (member_object (message, "event"), "seq");

          g_assert_cmpuint (n_slow_events, <, all->len);
          if (seq != g_array_index (all, gint64, n_slow_events))
            g_error ("The slow subscriber's event %u has seq %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT,
                     n_slow_events, seq, g_array_index (all, gint64, n_slow_events));
          n_slow_events++;
        }
      else if (g_str_equal (type, "error"))
        {
          rf_assert_error_member (message, "too_many_requests");
          saw_error = TRUE;
        }
      else
        g_assert_cmpstr (type, ==, "device");
    }

  g_test_message ("the slow subscriber got %u of %u events before it was cut off",
                  n_slow_events, N_REQUESTS * PER_REQUEST);
  g_assert_cmpuint (n_slow_events, <, N_REQUESTS * PER_REQUEST);
  g_assert_true (saw_error);
  g_assert_cmpint (slow.close_code, ==, 4008);

  /* the relay let go of it */
  RF_WAIT_UNTIL (fl_hub_get_n_subscribers (f->relay->hub) == 1);

  g_ptr_array_unref (slow.texts);
  g_mutex_clear (&slow.lock);
  g_cond_clear (&slow.cond);
}

/* ---- main ------------------------------------------------------------------- */

#define ADD(path, func) \
  g_test_add ("/fieldline/relay/" path, RfFixture, NULL, rf_fixture_set_up, func, rf_fixture_tear_down)
#define ADD_WITH(path, options, func) \
  g_test_add ("/fieldline/relay/" path, RfFixture, options, rf_fixture_set_up, func, rf_fixture_tear_down)

/* A live stream ends (close code 4001) when its user is disabled or its
 * sign-in is signed out; others stay. */
static void
test_stream_signed_out (RfFixture    *f,
                        gconstpointer data)
{
  g_autofree char    *operator_path = g_strdup_printf ("/events?token=%s", f->operator_token);
  g_autoptr (RfWs)    viewer = connect_subscriber (f);
  g_autoptr (RfWs)    operator = rf_ws_connect (f, operator_path, NULL);
  g_autoptr (RfReply) disable = NULL;

  g_assert_true (operator->connected);
  disable = rf_request_json (f, "PATCH", "/users/operator", f->admin_token, "{\"enabled\":false}");
  rf_assert_status (disable, 200);

  RF_WAIT_UNTIL (operator->closed);
  g_assert_cmpuint (soup_websocket_connection_get_close_code (operator->conn), ==, 4001);
  g_assert_false (viewer->closed);
  rf_ws_sync (viewer);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  ADD ("stream/subscribe", test_stream_subscribe);
  ADD ("stream/header-token", test_stream_header_token);
  ADD ("stream/device-messages", test_stream_device_messages);
  ADD ("stream/ping-and-errors", test_stream_ping_and_errors);
  ADD ("stream/handshake-auth", test_stream_handshake_auth);
  ADD ("stream/resume", test_stream_resume);
  ADD ("stream/resume-large", test_stream_resume_large);
  ADD ("stream/device-filter", test_stream_device_filter);
  ADD ("stream/shutdown", test_stream_shutdown);
  ADD ("stream/signed-out", test_stream_signed_out);
  ADD_WITH ("stream/slow-subscriber", &slow_options, test_stream_slow_subscriber);

  ADD ("device-ws/ack", test_device_ws_ack);
  ADD ("device-ws/auth", test_device_ws_auth);

  return g_test_run ();
}
