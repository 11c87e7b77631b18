/* test-sim.c: the simulator engine (FlSim) in-process against a relay. */
#define G_LOG_DOMAIN "test-sim"

#include "config.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "fieldline-client.h"
#include "fl-sim.h"
#include "fl-test-util.h"

typedef struct
{
  TestRelay *relay;
  char      *state_dir;
  FlClient  *admin;
} Fixture;

typedef struct
{
  FlSim        *sim;
  GAsyncResult *result;
  GHashTable   *generated; /* event id → device id */
  gboolean      ready;
} SimRun;

/* ---- fixture ----------------------------------------------------------- */

static void
fixture_setup (Fixture      *fixture,
               gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  fixture->relay = test_relay_new ();
  fixture->state_dir = g_dir_make_tmp ("fieldline-sim-state-XXXXXX", &error);
  g_assert_no_error (error);

  fixture->admin = fl_client_new (fixture->relay->url);
  fl_client_login_async (fixture->admin, TEST_ADMIN, TEST_PASSWORD, NULL, test_result_cb, &result);
  g_assert_true (fl_client_login_finish (fixture->admin, test_wait_result (&result), &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture      *fixture,
                  gconstpointer data)
{
  g_clear_object (&fixture->admin);
  g_clear_pointer (&fixture->relay, test_relay_free);
  test_rm_rf (fixture->state_dir);
  g_clear_pointer (&fixture->state_dir, g_free);
}

static char *
state_path (Fixture    *fixture,
            const char *name)
{
  return g_build_filename (fixture->state_dir, name, NULL);
}

static FlSimOptions
default_options (Fixture       *fixture,
                 const char    *state_file,
                 FlSimTransport transport)
{
  FlSimOptions options = { 0 };

  options.url = fixture->relay->url;
  options.username = TEST_ADMIN;
  options.password = TEST_PASSWORD;
  options.n_devices = 5;
  options.rate = 100;
  options.transport = transport;
  options.prefix = "sim";
  options.state_file = state_file;
  options.backoff_initial_ms = 50;
  options.backoff_max_ms = 400;
  options.flush_timeout_ms = 20000;

  return options;
}

/* ---- running a sim ----------------------------------------------------- */

static void
generated_cb (FlSim   *sim,
              FlEvent *event,
              SimRun  *run)
{
  g_assert_true (g_hash_table_insert (run->generated, g_strdup (fl_event_get_id (event)),
                                      g_strdup (fl_event_get_source (event))));
}

static void
ready_cb (FlSim  *sim,
          SimRun *run)
{
  run->ready = TRUE;
}

static SimRun *
sim_run_start (const FlSimOptions *options,
               GCancellable       *cancellable)
{
  g_autoptr (GError) error = NULL;
  SimRun            *run = g_new0 (SimRun, 1);

  run->sim = fl_sim_new (options, &error);
  g_assert_no_error (error);
  run->generated = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_signal_connect (run->sim, "event-generated", G_CALLBACK (generated_cb), run);
  g_signal_connect (run->sim, "ready", G_CALLBACK (ready_cb), run);

  fl_sim_run_async (run->sim, cancellable, test_result_cb, &run->result);

  return run;
}

static void
sim_run_free (SimRun *run)
{
  g_clear_object (&run->result);
  g_clear_object (&run->sim);
  g_clear_pointer (&run->generated, g_hash_table_unref);
  g_free (run);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SimRun, sim_run_free)

typedef struct
{
  SimRun *run;
  guint64 acked;
} AckedAtLeast;

static gboolean
acked_at_least (gpointer data)
{
  AckedAtLeast *wait = data;
  FlSimStats    stats;

  g_assert_null (wait->run->result); /* it must not have stopped */
  fl_sim_get_stats (wait->run->sim, &stats);
  return stats.acked >= wait->acked;
}

static void
wait_acked (SimRun *run,
            guint64 acked)
{
  AckedAtLeast wait = { run, acked };

  test_wait_until (acked_at_least, &wait, 60000, "the simulator's events to be acknowledged");
}

static void
sim_run_stop (SimRun *run)
{
  g_autoptr (GError) error = NULL;

  fl_sim_stop (run->sim);
  g_assert_true (fl_sim_run_finish (run->sim, test_wait_result (&run->result), &error));
  g_assert_no_error (error);
}

/* ---- reading back ------------------------------------------------------ */

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
      g_autofree char         *next = NULL;
      FlEventListQuery         query = { 0 };

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

static FlDevice *
fetch_device (FlClient   *client,
              const char *device_id)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  FlDevice                *device;

  fl_client_get_device_async (client, device_id, NULL, test_result_cb, &result);
  device = fl_client_get_device_finish (client, test_wait_result (&result), &error);
  g_assert_no_error (error);

  return device;
}

static JsonObject *
read_state (const char *path)
{
  g_autoptr (GError)   error = NULL;
  g_autofree char     *text = NULL;
  g_autoptr (JsonNode) node = NULL;
  GStatBuf             st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  node = json_from_string (text, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));

  return json_object_ref (json_object_get_object_member (json_node_get_object (node), "devices"));
}

static const char *
state_secret (JsonObject *devices,
              const char *device_id)
{
  JsonObject *entry = json_object_get_object_member (devices, device_id);

  g_assert_nonnull (entry);
  return json_object_get_string_member (entry, "deviceSecret");
}

static gboolean
is_uuid_v4 (const char *id)
{
  return g_uuid_string_is_valid (id) && id[14] == '4' && strchr ("89abAB", id[19]) != NULL;
}

static gboolean
get_number (JsonObject *data,
            const char *name,
            double     *value)
{
  JsonNode *node = json_object_get_member (data, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  *value = json_node_get_double (node);
  return TRUE;
}

/* Every device sent realistic events, and the store holds each generated
 * event exactly once. */
static void
check_events (Fixture *fixture,
              SimRun  *run,
              gint64   started_ms)
{
  g_auto (GStrv) ids = fl_sim_dup_device_ids (run->sim);
  gint64         now_ms = g_get_real_time () / 1000;
  guint          total = 0;

  for (guint d = 0; ids[d] != NULL; d++)
    {
      g_autoptr (GPtrArray)  events = fetch_events (fixture->admin, ids[d]);
      g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
      guint                  n_status = 0, n_telemetry = 0, n_location = 0;

      g_assert_cmpuint (events->len, >, 0);

      for (guint i = 0; i < events->len; i++)
        {
          FlEvent    *event = g_ptr_array_index (events, i);
          const char *type = fl_event_get_event_type (event);
          JsonObject *data = fl_event_get_data (event);
          JsonObject *metadata = fl_event_get_metadata (event);
          double      value = 0, lat = 0, lon = 0;

          g_assert_true (is_uuid_v4 (fl_event_get_id (event)));
          g_assert_true (g_hash_table_add (seen, (gpointer) fl_event_get_id (event)));
          g_assert_cmpstr (g_hash_table_lookup (run->generated, fl_event_get_id (event)), ==, ids[d]);
          g_assert_cmpstr (fl_event_get_source (event), ==, ids[d]);
          g_assert_cmpint (fl_event_get_timestamp (event), >=, started_ms - 1000);
          g_assert_cmpint (fl_event_get_timestamp (event), <=, now_ms + 1000);
          g_assert_nonnull (metadata);
          g_assert_cmpuint (json_array_get_length (json_object_get_array_member (metadata, "tags")), ==, 3);

          if (g_str_equal (type, "status"))
            {
              n_status++;
              g_assert_nonnull (json_object_get_string_member (data, "firmware"));
              g_assert_nonnull (json_object_get_string_member (data, "model"));
              g_assert_nonnull (json_object_get_string_member (data, "manufacturer"));
            }
          else if (g_str_equal (type, "telemetry"))
            {
              n_telemetry++;
              g_assert_true (get_number (data, "temperature", &value));
              g_assert_cmpfloat (value, >, -30);
              g_assert_cmpfloat (value, <, 50);
              g_assert_true (get_number (data, "humidity", &value));
              g_assert_cmpfloat (value, >=, 0);
              g_assert_cmpfloat (value, <=, 100);
              g_assert_true (get_number (data, "battery", &value));
              g_assert_cmpfloat (value, >=, 0);
              g_assert_cmpfloat (value, <=, 100);
              g_assert_true (get_number (data, "rssi", &value));
              g_assert_cmpfloat (value, >=, -120);
              g_assert_cmpfloat (value, <=, -20);
            }
          else if (g_str_equal (type, "location"))
            {
              n_location++;
              g_assert_true (get_number (data, "lat", &lat));
              g_assert_true (get_number (data, "lon", &lon));
              /* the sites are in western Europe */
              g_assert_cmpfloat (lat, >, 40);
              g_assert_cmpfloat (lat, <, 60);
              g_assert_cmpfloat (lon, >, 0);
              g_assert_cmpfloat (lon, <, 20);
            }
          else
            g_assert_cmpstr (type, ==, "heartbeat");
        }

      /* power-on status first thing; a location in the first minute */
      g_assert_cmpuint (n_status, ==, 1);
      g_assert_cmpuint (n_location, >=, 1);
      g_assert_cmpuint (n_telemetry, >, 0);
      total += events->len;
    }

  /* nothing was lost and nothing stored twice */
  g_assert_cmpuint (total, ==, g_hash_table_size (run->generated));
}

static void
check_stopped_clean (SimRun *run)
{
  FlSimStats stats;

  fl_sim_get_stats (run->sim, &stats);
  g_test_message ("generated %" G_GUINT64_FORMAT " sent %" G_GUINT64_FORMAT
                  " acked %" G_GUINT64_FORMAT " duplicates %" G_GUINT64_FORMAT
                  " resent %" G_GUINT64_FORMAT " failures %" G_GUINT64_FORMAT
                  " reconnects %" G_GUINT64_FORMAT,
                  stats.generated, stats.sent, stats.acked, stats.duplicates,
                  stats.resent, stats.failures, stats.reconnects);
  g_assert_cmpuint (stats.queued, ==, 0);
  g_assert_cmpuint (stats.dropped, ==, 0);
  g_assert_cmpuint (stats.rejected, ==, 0);
  g_assert_cmpuint (stats.generated, ==, g_hash_table_size (run->generated));
  g_assert_cmpuint (stats.acked, ==, stats.generated);
  g_assert_cmpuint (stats.accepted + stats.duplicates, ==, stats.generated);
  g_assert_cmpuint (stats.connected, ==, 0);
}

/* ---- tests ------------------------------------------------------------- */

static void
test_stream (Fixture      *fixture,
             gconstpointer data)
{
  FlSimTransport         transport = GPOINTER_TO_INT (data);
  g_autofree char       *path = state_path (fixture, "state.json");
  FlSimOptions           options = default_options (fixture, path, transport);
  gint64                 started_ms = g_get_real_time () / 1000;
  g_autoptr (SimRun)     run = sim_run_start (&options, NULL);
  g_autoptr (JsonObject) devices = NULL;
  g_autoptr (FlDevice)   device = NULL;
  g_auto (GStrv)         ids = NULL;
  FlSimStats             stats;
  JsonArray             *metrics;
  JsonArray             *commands;

  wait_acked (run, 200);
  g_assert_true (run->ready);
  g_assert_true (fl_sim_is_streaming (run->sim));
  g_assert_cmpstr (fl_sim_get_state_file (run->sim), ==, path);
  fl_sim_get_stats (run->sim, &stats);
  g_assert_cmpuint (stats.n_devices, ==, 5);
  g_assert_cmpuint (stats.failures, ==, 0);
  if (transport == FL_SIM_TRANSPORT_WEBSOCKET)
    g_assert_cmpuint (stats.connected, ==, 5);

  sim_run_stop (run);
  check_stopped_clean (run);
  check_events (fixture, run, started_ms);

  /* the relay knows the devices as the sim described them */
  ids = fl_sim_dup_device_ids (run->sim);
  g_assert_cmpuint (g_strv_length (ids), ==, 5);
  g_assert_cmpstr (ids[0], ==, "sim-0001");
  device = fetch_device (fixture->admin, ids[0]);
  g_assert_nonnull (fl_device_get_model (device));
  g_assert_nonnull (fl_device_get_manufacturer (device));
  g_assert_nonnull (fl_device_get_firmware (device));
  g_assert_true (fl_device_has_tag (device, "sim"));
  g_assert_false (isnan (fl_device_get_battery (device)));
  g_assert_false (isnan (fl_device_get_rssi (device)));
  g_assert_true (fl_device_get_location (device, NULL, NULL, NULL));
  metrics = json_object_get_array_member (fl_device_get_capabilities (device), "metrics");
  g_assert_cmpuint (json_array_get_length (metrics), ==, 4);
  commands = json_object_get_array_member (fl_device_get_capabilities (device), "commands");
  g_assert_cmpuint (json_array_get_length (commands), ==, 3);

  /* the secrets are kept, readable by the user only */
  devices = read_state (path);
  for (guint i = 0; ids[i] != NULL; i++)
    g_assert_nonnull (state_secret (devices, ids[i]));
}

/* --backfill: each device first sends its last ten minutes, oldest first
 * and starting with its power-on status, then streams live. */
static void
test_backfill (Fixture      *fixture,
               gconstpointer data)
{
  g_autofree char   *path = state_path (fixture, "state.json");
  FlSimOptions       options = default_options (fixture, path, FL_SIM_TRANSPORT_WEBSOCKET);
  gint64             started_ms = g_get_real_time () / 1000;
  g_autoptr (SimRun) run = NULL;
  g_auto (GStrv)     ids = NULL;

  options.rate = 5;            /* 1 event/s per device: 600 each */
  options.backfill_sec = 600;
  run = sim_run_start (&options, NULL);
  wait_acked (run, 5 * 600);
  sim_run_stop (run);
  check_stopped_clean (run);

  ids = fl_sim_dup_device_ids (run->sim);
  for (guint d = 0; ids[d] != NULL; d++)
    {
      g_autoptr (GPtrArray) events = fetch_events (fixture->admin, ids[d]);
      FlEvent              *oldest = NULL;
      guint                 n_past = 0, n_status = 0;

      for (guint i = 0; i < events->len; i++)
        {
          FlEvent *event = g_ptr_array_index (events, i);
          gint64   ts = fl_event_get_timestamp (event);

          g_assert_cmpint (ts, >=, started_ms - 601 * 1000);
          if (ts < started_ms - 1000)
            n_past++;
          if (oldest == NULL || ts < fl_event_get_timestamp (oldest))
            oldest = event;
          n_status += g_str_equal (fl_event_get_event_type (event), "status");
        }
      /* history over the whole span, then the live stream */
      g_assert_cmpuint (n_past, >=, 595);
      g_assert_cmpuint (events->len, >, n_past);
      g_assert_cmpint (fl_event_get_timestamp (oldest), <, started_ms - 590 * 1000);
      g_assert_cmpstr (fl_event_get_event_type (oldest), ==, "status");
      g_assert_cmpuint (n_status, ==, 1);
    }
}

/* A restarted sim reuses its devices; one without its state gets new
 * secrets for the devices that exist. */
static void
test_state_reuse (Fixture      *fixture,
                  gconstpointer data)
{
  g_autofree char         *path = state_path (fixture, "state.json");
  g_autofree char         *fresh_path = state_path (fixture, "fresh/state.json");
  FlSimOptions             options = default_options (fixture, path, FL_SIM_TRANSPORT_WEBSOCKET);
  g_autoptr (JsonObject)   first = NULL;
  g_autoptr (JsonObject)   second = NULL;
  g_autoptr (JsonObject)   third = NULL;
  g_autoptr (GPtrArray)    page = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  FlSimStats               stats;

  options.n_devices = 3;

  {
    g_autoptr (SimRun) run = sim_run_start (&options, NULL);

    wait_acked (run, 50);
    sim_run_stop (run);
    check_stopped_clean (run);
  }
  first = read_state (path);

  /* again with the same state: same devices, same secrets, no failure */
  {
    g_autoptr (SimRun) run = sim_run_start (&options, NULL);

    wait_acked (run, 50);
    sim_run_stop (run);
    check_stopped_clean (run);
    fl_sim_get_stats (run->sim, &stats);
    g_assert_cmpuint (stats.failures, ==, 0);
  }
  second = read_state (path);
  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *id = g_strdup_printf ("sim-%04u", i);

      g_assert_cmpstr (state_secret (first, id), ==, state_secret (second, id));
    }

  /* without the state: the devices exist, so they get new secrets */
  options.state_file = fresh_path;
  {
    g_autoptr (SimRun) run = sim_run_start (&options, NULL);

    wait_acked (run, 50);
    sim_run_stop (run);
    check_stopped_clean (run);
    fl_sim_get_stats (run->sim, &stats);
    g_assert_cmpuint (stats.failures, ==, 0);
  }
  third = read_state (fresh_path);
  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *id = g_strdup_printf ("sim-%04u", i);

      g_assert_cmpstr (state_secret (first, id), !=, state_secret (third, id));
    }

  /* and the old state's secrets no longer work: the sim registers again */
  options.state_file = path;
  {
    g_autoptr (SimRun) run = sim_run_start (&options, NULL);

    wait_acked (run, 50);
    sim_run_stop (run);
    check_stopped_clean (run);
  }

  /* still three devices on the relay */
  fl_client_list_devices_async (fixture->admin, NULL, NULL, test_result_cb, &result);
  page = fl_client_list_devices_finish (fixture->admin, test_wait_result (&result), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (page->len, ==, 3);
}

/* The relay goes away and comes back on the same port and data dir: the
 * sim reconnects, resends what was not acknowledged, and every event it
 * generated is stored exactly once. */
static void
test_relay_restart (Fixture      *fixture,
                    gconstpointer data)
{
  FlSimTransport     transport = GPOINTER_TO_INT (data);
  g_autofree char   *path = state_path (fixture, "state.json");
  FlSimOptions       options = default_options (fixture, path, transport);
  gint64             started_ms = g_get_real_time () / 1000;
  g_autoptr (SimRun) run = NULL;
  guint              port = fixture->relay->port;
  g_autofree char   *url = g_strdup (fixture->relay->url);
  guint              generated_at_stop;
  FlSimStats         stats;

  options.n_devices = 4;
  options.rate = 200;
  run = sim_run_start (&options, NULL);

  wait_acked (run, 200);

  test_relay_stop (fixture->relay);
  generated_at_stop = g_hash_table_size (run->generated);

  /* the sim keeps measuring while the relay is away */
  test_run_for (1500);
  fl_sim_get_stats (run->sim, &stats);
  g_assert_null (run->result);
  if (transport == FL_SIM_TRANSPORT_WEBSOCKET)
    g_assert_cmpuint (stats.connected, ==, 0);
  g_assert_cmpuint (stats.queued, >, 0);
  g_assert_cmpuint (g_hash_table_size (run->generated), >, generated_at_stop);
  g_test_message ("%u events queued while the relay was away", stats.queued);

  test_relay_start (fixture->relay);
  g_assert_cmpuint (fixture->relay->port, ==, port);
  g_assert_cmpstr (fixture->relay->url, ==, url);

  /* everything generated so far, and then some */
  wait_acked (run, g_hash_table_size (run->generated) + 100);

  sim_run_stop (run);
  check_stopped_clean (run);
  fl_sim_get_stats (run->sim, &stats);
  g_assert_cmpuint (stats.failures, >, 0);

  check_events (fixture, run, started_ms);
}

static void
test_wrong_password (Fixture      *fixture,
                     gconstpointer data)
{
  g_autofree char   *path = state_path (fixture, "state.json");
  FlSimOptions       options = default_options (fixture, path, FL_SIM_TRANSPORT_WEBSOCKET);
  g_autoptr (SimRun) run = NULL;
  g_autoptr (GError) error = NULL;

  options.password = "Wrong-Passw0rd!";
  run = sim_run_start (&options, NULL);
  g_assert_false (fl_sim_run_finish (run->sim, test_wait_result (&run->result), &error));
  g_assert_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED);
  g_assert_false (run->ready);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_cancel (Fixture      *fixture,
             gconstpointer data)
{
  g_autofree char         *path = state_path (fixture, "state.json");
  FlSimOptions             options = default_options (fixture, path, FL_SIM_TRANSPORT_WEBSOCKET);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (SimRun)       run = sim_run_start (&options, cancellable);
  g_autoptr (GError)       error = NULL;

  wait_acked (run, 20);
  g_idle_add (cancel_cb, cancellable);
  g_assert_false (fl_sim_run_finish (run->sim, test_wait_result (&run->result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_bad_options (void)
{
  FlSimOptions       options = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (FlSim)  sim = NULL;

  options.url = "ftp://example";
  options.username = "u";
  options.password = "p";
  options.n_devices = 1;
  sim = fl_sim_new (&options, &error);
  g_assert_null (sim);
  g_assert_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION);
  g_clear_error (&error);

  options.url = "http://127.0.0.1:1";
  options.n_devices = 0;
  g_assert_null (fl_sim_new (&options, &error));
  g_assert_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION);
  g_clear_error (&error);

  options.n_devices = 1;
  options.flaky_fraction = 1.5;
  g_assert_null (fl_sim_new (&options, &error));
  g_assert_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION);
  g_clear_error (&error);

  options.flaky_fraction = 0;
  options.backfill_sec = 8 * 24 * 3600;
  g_assert_null (fl_sim_new (&options, &error));
  g_assert_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION);
  g_clear_error (&error);

  options.backfill_sec = 0;
  options.prefix = "bad prefix/";
  g_assert_null (fl_sim_new (&options, &error));
  g_assert_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION);
  g_clear_error (&error);

  options.prefix = NULL;
  sim = fl_sim_new (&options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (sim);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/sim/bad-options", test_bad_options);
  g_test_add ("/fieldline/sim/stream-websocket", Fixture,
              GINT_TO_POINTER (FL_SIM_TRANSPORT_WEBSOCKET),
              fixture_setup, test_stream, fixture_teardown);
  g_test_add ("/fieldline/sim/stream-http", Fixture,
              GINT_TO_POINTER (FL_SIM_TRANSPORT_HTTP),
              fixture_setup, test_stream, fixture_teardown);
  g_test_add ("/fieldline/sim/backfill", Fixture, NULL,
              fixture_setup, test_backfill, fixture_teardown);
  g_test_add ("/fieldline/sim/state-reuse", Fixture, NULL,
              fixture_setup, test_state_reuse, fixture_teardown);
  g_test_add ("/fieldline/sim/relay-restart-websocket", Fixture,
              GINT_TO_POINTER (FL_SIM_TRANSPORT_WEBSOCKET),
              fixture_setup, test_relay_restart, fixture_teardown);
  g_test_add ("/fieldline/sim/relay-restart-http", Fixture,
              GINT_TO_POINTER (FL_SIM_TRANSPORT_HTTP),
              fixture_setup, test_relay_restart, fixture_teardown);
  g_test_add ("/fieldline/sim/wrong-password", Fixture, NULL,
              fixture_setup, test_wrong_password, fixture_teardown);
  g_test_add ("/fieldline/sim/cancel", Fixture, NULL,
              fixture_setup, test_cancel, fixture_teardown);

  return g_test_run ();
}
