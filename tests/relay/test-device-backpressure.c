/* test-device-backpressure.c: the device WebSocket under a device that
 * sends without waiting for its acks: every message is acknowledged, in
 * order, and what waits for the store stays bounded. */
#define G_LOG_DOMAIN "test-device-backpressure"

#include "config.h"

#include <string.h>

#include "relay-fixture.h"

#define N_MESSAGES 300

static char *
batch (const char *prefix,
       guint       message,
       guint       n,
       GHashTable *expected)
{
  GString *out = g_string_new ("[");
  gint64   ts = rf_now_ms ();

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("%s-%04u-%u", prefix, message, i);
      g_autofree char *event = rf_event_json (id, ts + i, NULL, "telemetry", "{\"temperature\":20.5}");

      g_string_append_printf (out, "%s%s", i > 0 ? "," : "", event);
      g_hash_table_add (expected, g_steal_pointer (&id));
    }
  g_string_append_c (out, ']');

  return g_string_free (out, FALSE);
}

static RfWs *
connect_device (RfFixture  *f,
                const char *device_id,
                const char *secret)
{
  g_autofree char *basic = rf_basic_header (device_id, secret);
  RfWs            *ws = rf_ws_connect (f, "/device", basic);

  if (!ws->connected)
    g_error ("The /device handshake failed (HTTP %u)", ws->status);

  return ws;
}

static void
assert_acks_in_order (RfWs *ws)
{
  for (guint k = 0; k < N_MESSAGES; k++)
    {
      JsonObject *ack = rf_ws_next (ws);

      g_assert_cmpstr (json_object_get_string_member (ack, "type"), ==, "ack");
      g_assert_false (json_object_has_member (ack, "error"));
      /* message k carries k % 4 + 1 events: the count tells them apart */
      g_assert_cmpint (json_object_get_int_member (ack, "accepted"), ==, k % 4 + 1);
      g_assert_cmpint (json_object_get_int_member (ack, "duplicates"), ==, 0);
    }
}

/* One device floods; at most two of its messages wait for the store. */
static void
test_flood_one (RfFixture    *f,
                gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "bp-1", NULL);
  g_autoptr (GHashTable) expected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (RfWs)       ws = NULL;
  guint                  messages, peak_messages;
  gsize                  bytes, peak_bytes;

  _fl_device_poller_set_limits (f->relay->device_poller, 2, 64 * 1024);
  ws = connect_device (f, "bp-1", secret);

  for (guint k = 0; k < N_MESSAGES; k++)
    {
      g_autofree char *text = batch ("one", k, k % 4 + 1, expected);

      rf_ws_send (ws, text);
    }
  assert_acks_in_order (ws);

  _fl_device_poller_get_in_flight (f->relay->device_poller, &messages, &bytes, &peak_messages, &peak_bytes);
  g_assert_cmpuint (messages, ==, 0);
  g_assert_cmpuint (bytes, ==, 0);
  g_assert_cmpuint (peak_messages, <=, 2);
  g_assert_cmpuint (peak_messages, >=, 1);
  g_assert_false (ws->closed);
  rf_assert_stored_events (f, expected);
}

/* Three devices flood past a small total: each gets all its acks, in
 * order, and the total waits at most one message past the limit. */
static void
test_flood_total (RfFixture    *f,
                  gconstpointer data)
{
  static const char     *ids[] = { "bp-a", "bp-b", "bp-c" };
  g_autoptr (GHashTable) expected = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  RfWs                  *ws[G_N_ELEMENTS (ids)];
  const gsize            limit = 2048;
  gsize                  largest = 0;
  guint                  messages;
  gsize                  bytes, peak_bytes;

  _fl_device_poller_set_limits (f->relay->device_poller, 16, limit);
  for (guint d = 0; d < G_N_ELEMENTS (ids); d++)
    {
      g_autofree char *secret = rf_register_device (f, ids[d], NULL);

      ws[d] = connect_device (f, ids[d], secret);
    }

  for (guint k = 0; k < N_MESSAGES; k++)
    for (guint d = 0; d < G_N_ELEMENTS (ids); d++)
      {
        g_autofree char *text = batch (ids[d], k, k % 4 + 1, expected);

        largest = MAX (largest, strlen (text));
        rf_ws_send (ws[d], text);
      }
  for (guint d = 0; d < G_N_ELEMENTS (ids); d++)
    assert_acks_in_order (ws[d]);

  _fl_device_poller_get_in_flight (f->relay->device_poller, &messages, &bytes, NULL, &peak_bytes);
  g_assert_cmpuint (messages, ==, 0);
  g_assert_cmpuint (bytes, ==, 0);
  g_assert_cmpuint (peak_bytes, <, limit + largest);
  rf_assert_stored_events (f, expected);

  for (guint d = 0; d < G_N_ELEMENTS (ids); d++)
    {
      g_assert_false (ws[d]->closed);
      rf_ws_close (ws[d]);
      rf_ws_free (ws[d]);
    }
  RF_WAIT_UNTIL (f->relay->device_sessions->len == 0);
}

#define ADD(path, func) \
  g_test_add ("/fieldline/relay/" path, RfFixture, NULL, rf_fixture_set_up, func, rf_fixture_tear_down)

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  ADD ("device-ws/backpressure-one", test_flood_one);
  ADD ("device-ws/backpressure-total", test_flood_total);

  return g_test_run ();
}
