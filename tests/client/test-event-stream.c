/* test-event-stream.c: FlEventStream against an in-process relay, and
 * against small in-test servers for what a relay will not do on demand
 * (close with 4008, send garbage, go silent). */
#define G_LOG_DOMAIN "test-event-stream"

#include "config.h"

#include <string.h>

#include <libsoup/soup.h>

#include "fieldline-client.h"
#include "fl-relay-private.h" /* the hub, to count its subscribers */
#include "fl-test-util.h"
#include "fl-user-pool.h"

#define DEVICE_ID "stream-1"

/* ---- what a stream did --------------------------------------------------- */

typedef struct
{
  FlEventStreamState state;
  gint64             time;
} StateChange;

typedef struct
{
  GPtrArray *events;      /* FlEvent, every one delivered */
  GArray    *batch_times; /* gint64, monotonic µs */
  GPtrArray *devices;     /* FlDevice */
  GPtrArray *errors;      /* GError */
  GArray    *states;      /* StateChange */
} Record;

static void
free_error (gpointer error)
{
  g_error_free (error);
}

static void
record_init (Record *record)
{
  record->events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  record->batch_times = g_array_new (FALSE, FALSE, sizeof (gint64));
  record->devices = g_ptr_array_new_with_free_func (g_object_unref);
  record->errors = g_ptr_array_new_with_free_func (free_error);
  record->states = g_array_new (FALSE, FALSE, sizeof (StateChange));
}

static void
record_clear (Record *record)
{
  g_clear_pointer (&record->events, g_ptr_array_unref);
  g_clear_pointer (&record->batch_times, g_array_unref);
  g_clear_pointer (&record->devices, g_ptr_array_unref);
  g_clear_pointer (&record->errors, g_ptr_array_unref);
  g_clear_pointer (&record->states, g_array_unref);
}

static gint64
last_recorded_seq (Record *record)
{
  if (record->events->len == 0)
    return 0;
  return fl_event_get_seq (g_ptr_array_index (record->events, record->events->len - 1));
}

static void
events_cb (FlEventStream *stream,
           GPtrArray     *events,
           Record        *record)
{
  gint64 now = g_get_monotonic_time ();

  g_assert_cmpuint (events->len, >, 0);
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);

      /* in seq order, across batches too, and never twice */
      g_assert_cmpint (fl_event_get_seq (event), >, last_recorded_seq (record));
      g_ptr_array_add (record->events, fl_event_ref (event));
    }
  /* last-seq is the batch's last event by the time it is delivered */
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, last_recorded_seq (record));
  g_array_append_val (record->batch_times, now);
}

static void
device_cb (FlEventStream *stream,
           FlDevice      *device,
           Record        *record)
{
  g_ptr_array_add (record->devices, g_object_ref (device));
}

static void
error_cb (FlEventStream *stream,
          const GError  *error,
          Record        *record)
{
  g_ptr_array_add (record->errors, g_error_copy (error));
}

static void
state_cb (FlEventStream *stream,
          GParamSpec    *pspec,
          Record        *record)
{
  StateChange change = { fl_event_stream_get_state (stream), g_get_monotonic_time () };

  g_array_append_val (record->states, change);
}

static void
record_connect (Record        *record,
                FlEventStream *stream)
{
  g_signal_connect (stream, "events", G_CALLBACK (events_cb), record);
  g_signal_connect (stream, "device", G_CALLBACK (device_cb), record);
  g_signal_connect (stream, "error", G_CALLBACK (error_cb), record);
  g_signal_connect (stream, "notify::state", G_CALLBACK (state_cb), record);
}

static guint
count_states (Record            *record,
              FlEventStreamState state)
{
  guint n = 0;

  for (guint i = 0; i < record->states->len; i++)
    n += g_array_index (record->states, StateChange, i).state == state;
  return n;
}

/* Every delivered seq from first on, without a gap. */
static void
assert_contiguous (Record *record,
                   gint64  first)
{
  for (guint i = 0; i < record->events->len; i++)
    g_assert_cmpint (fl_event_get_seq (g_ptr_array_index (record->events, i)), ==, first + i);
}

/* ---- conditions ---------------------------------------------------------- */

typedef struct
{
  FlEventStream     *stream;
  Record            *record;
  FlEventStreamState state;
  gint64             seq;
  guint              n;
  GPtrArray         *array;
} Wait;

static gboolean
has_state (gpointer data)
{
  Wait *wait = data;

  return fl_event_stream_get_state (wait->stream) == wait->state;
}

static gboolean
has_left_state (gpointer data)
{
  Wait *wait = data;

  return fl_event_stream_get_state (wait->stream) != wait->state;
}

static gboolean
has_last_seq (gpointer data)
{
  Wait *wait = data;

  return fl_event_stream_get_last_seq (wait->stream) == wait->seq;
}

static gboolean
has_n_events (gpointer data)
{
  Wait *wait = data;

  return wait->record->events->len >= wait->n;
}

static gboolean
has_n_state_changes (gpointer data)
{
  Wait *wait = data;

  return count_states (wait->record, wait->state) >= wait->n;
}

static void
wait_state (FlEventStream     *stream,
            FlEventStreamState state,
            guint              timeout_ms)
{
  Wait wait = { stream, NULL, state, 0, 0 };

  test_wait_until (has_state, &wait, timeout_ms, "a state");
}

static void
wait_last_seq (FlEventStream *stream,
               gint64         seq)
{
  Wait wait = { stream, NULL, 0, seq, 0 };

  test_wait_until (has_last_seq, &wait, 10000, "last-seq");
}

static void
wait_events (Record *record,
             guint   n,
             guint   timeout_ms)
{
  Wait wait = { NULL, record, 0, 0, n };

  test_wait_until (has_n_events, &wait, timeout_ms, "events");
  g_assert_cmpuint (record->events->len, ==, n);
}

static gboolean
array_is_long_enough (gpointer data)
{
  Wait *wait = data;

  return wait->array->len >= wait->n;
}

static void
wait_len (GPtrArray *array,
          guint      n)
{
  Wait wait = { NULL, NULL, 0, 0, n, array };

  test_wait_until (array_is_long_enough, &wait, 10000, "a signal");
}

/* ---- the relay side ------------------------------------------------------ */

typedef struct
{
  TestRelay     *relay;
  FlClient      *admin;
  char          *secret;
  FlEventStream *stream;
  Record         record;
  guint          n_tokens;
  GPtrArray     *ingested; /* char *, event ids the relay accepted */
  guint          in_flight;
  guint          ingest_source;
} Fixture;

static FlClient *
login (const char *url,
       const char *user)
{
  g_autoptr (FlClient)     client = fl_client_new (url);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  fl_client_login_async (client, user, TEST_PASSWORD, NULL, test_result_cb, &result);
  g_assert_true (fl_client_login_finish (client, test_wait_result (&result), &error));
  g_assert_no_error (error);

  return g_steal_pointer (&client);
}

static char *
events_url (TestRelay *relay)
{
  g_assert_true (g_str_has_prefix (relay->url, "http://"));
  return g_strconcat ("ws://", relay->url + strlen ("http://"), "/events", NULL);
}

static char *
token_cb (gpointer user_data)
{
  Fixture *fixture = user_data;

  fixture->n_tokens++;
  return g_strdup (fl_client_get_id_token (fixture->admin));
}

static void
fixture_setup (Fixture      *fixture,
               gconstpointer data)
{
  g_autoptr (JsonNode)     registration = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (FlDevice)     device = NULL;

  fixture->relay = test_relay_new ();
  fixture->admin = login (fixture->relay->url, TEST_ADMIN);
  fixture->ingested = g_ptr_array_new_with_free_func (g_free);
  record_init (&fixture->record);

  registration = json_from_string ("{\"deviceId\": \"" DEVICE_ID "\", \"name\": \"Stream 1\","
                                   " \"type\": \"environment_sensor\", \"model\": \"TH-1\","
                                   " \"manufacturer\": \"Acme\", \"capabilities\": {\"metrics\": [\"temperature\"]}}",
                                   &error);
  g_assert_no_error (error);
  fl_client_register_device_async (fixture->admin, json_node_get_object (registration), NULL, test_result_cb, &result);
  device = fl_client_register_device_finish (fixture->admin, test_wait_result (&result), &fixture->secret, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->secret);
}

static gboolean
hub_is_empty (gpointer data)
{
  Fixture *fixture = data;

  return fixture->relay->relay == NULL || fl_hub_get_n_subscribers (fixture->relay->relay->hub) == 0;
}

static gboolean
nothing_in_flight (gpointer data)
{
  Fixture *fixture = data;

  return fixture->in_flight == 0;
}

static void
fixture_teardown (Fixture      *fixture,
                  gconstpointer data)
{
  g_clear_handle_id (&fixture->ingest_source, g_source_remove);
  test_wait_until (nothing_in_flight, fixture, 30000, "ingests to finish");

  if (fixture->stream != NULL)
    {
      fl_event_stream_stop (fixture->stream);
      g_assert_cmpint (fl_event_stream_get_state (fixture->stream), ==, FL_EVENT_STREAM_DISCONNECTED);
      g_assert_cmpint (fl_event_stream_get_connected_since (fixture->stream), ==, 0);
      g_assert_finalize_object (g_steal_pointer (&fixture->stream));
    }
  /* both ends closed before the relay goes */
  test_wait_until (hub_is_empty, fixture, 10000, "the relay to see the stream close");

  g_clear_object (&fixture->admin);
  g_clear_pointer (&fixture->relay, test_relay_free);
  g_clear_pointer (&fixture->secret, g_free);
  g_clear_pointer (&fixture->ingested, g_ptr_array_unref);
  record_clear (&fixture->record);
}

static FlEventStream *
fixture_stream (Fixture *fixture)
{
  g_autofree char *url = events_url (fixture->relay);

  g_assert_null (fixture->stream);
  fixture->stream = fl_event_stream_new (url, token_cb, fixture, NULL);
  record_connect (&fixture->record, fixture->stream);

  return fixture->stream;
}

typedef struct
{
  Fixture   *fixture;
  GPtrArray *events;
} Ingest;

static void
ingest_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Ingest                    *ingest = user_data;
  Fixture                   *fixture = ingest->fixture;
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlIngestResult) reply = NULL;

  reply = fl_client_ingest_finish (FL_CLIENT (object), result, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (reply->accepted, ==, ingest->events->len);

  for (guint i = 0; i < ingest->events->len; i++)
    g_ptr_array_add (fixture->ingested, g_strdup (fl_event_get_id (g_ptr_array_index (ingest->events, i))));

  fixture->in_flight--;
  g_ptr_array_unref (ingest->events);
  g_free (ingest);
}

/* POSTs n new events of the device, without waiting. */
static void
ingest_async (Fixture *fixture,
              guint    n)
{
  Ingest *ingest = g_new0 (Ingest, 1);

  ingest->fixture = fixture;
  ingest->events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (JsonObject) values = json_object_new ();
      g_autofree char       *id = g_uuid_string_random ();

      json_object_set_double_member (values, "temperature", 20.0 + i % 10);
      g_ptr_array_add (ingest->events,
                       fl_event_new (id, g_get_real_time () / 1000, DEVICE_ID, "telemetry", values, NULL));
    }

  fixture->in_flight++;
  fl_client_ingest_async (fixture->admin, DEVICE_ID, fixture->secret, ingest->events, NULL, ingest_cb, ingest);
}

static void
ingest_sync (Fixture *fixture,
             guint    n)
{
  ingest_async (fixture, n);
  test_wait_until (nothing_in_flight, fixture, 30000, "the ingest");
}

/* The delivered events are the ingested ones, in the same order. */
static void
assert_ids (Fixture *fixture,
            guint    first_ingested)
{
  g_assert_cmpuint (fixture->record.events->len, ==, fixture->ingested->len - first_ingested);
  for (guint i = 0; i < fixture->record.events->len; i++)
    g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (fixture->record.events, i)), ==,
                     g_ptr_array_index (fixture->ingested, first_ingested + i));
}

/* ---- tests against the relay ---------------------------------------------- */

/* Without a resume point, live events only; they come in seq order. */
static void
test_live (Fixture      *fixture,
           gconstpointer data)
{
  FlEventStream *stream;
  gint64         since;
  gint64         last_seq = 0;

  ingest_sync (fixture, 3); /* seq 1..3, before the stream */

  stream = fixture_stream (fixture);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_DISCONNECTED);
  g_assert_cmpint (fl_event_stream_get_connected_since (stream), ==, 0);
  fl_event_stream_start (stream);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTING);

  /* the relay's last seq becomes the resume point once subscribed */
  wait_last_seq (stream, 3);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTED);
  since = fl_event_stream_get_connected_since (stream);
  g_assert_cmpint (since, >, 0);
  g_assert_cmpint (since, <=, g_get_monotonic_time ());
  g_assert_cmpuint (fixture->n_tokens, ==, 1);
  g_assert_cmpuint (fixture->record.events->len, ==, 0);

  ingest_sync (fixture, 5);
  ingest_sync (fixture, 5);
  wait_events (&fixture->record, 10, 10000);

  assert_contiguous (&fixture->record, 4);
  assert_ids (fixture, 3);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 13);
  g_object_get (stream, "last-seq", &last_seq, NULL);
  g_assert_cmpint (last_seq, ==, 13);
  g_assert_cmpuint (fixture->record.batch_times->len, >=, 1);
  g_assert_cmpuint (fixture->record.batch_times->len, <=, 10);

  /* the events are whole */
  {
    FlEvent *event = g_ptr_array_index (fixture->record.events, 0);
    double   value = 0;

    g_assert_cmpstr (fl_event_get_source (event), ==, DEVICE_ID);
    g_assert_cmpstr (fl_event_get_event_type (event), ==, "telemetry");
    g_assert_true (fl_event_get_metric (event, "temperature", &value));
    g_assert_cmpfloat (value, ==, 20.0);
    g_assert_cmpint (fl_event_get_received_at (event), >, 0);
  }

  /* the device went online with its first event, before the stream */
  g_assert_cmpuint (fixture->record.devices->len, ==, 0);
  g_assert_cmpuint (fixture->record.errors->len, ==, 0);
  g_assert_cmpuint (count_states (&fixture->record, FL_EVENT_STREAM_CONNECTED), ==, 1);
}

static gboolean
ingest_hundred_cb (gpointer user_data)
{
  Fixture *fixture = user_data;

  ingest_async (fixture, 100);
  if (fixture->ingested->len + 100 * fixture->in_flight >= 20001)
    {
      fixture->ingest_source = 0;
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* 10,000 events ingested at once come in far fewer batches, spaced by
 * the batch interval; so do 10,000 events/s. */
static void
test_burst (Fixture      *fixture,
            gconstpointer data)
{
  FlEventStream *stream;
  const guint    batch_ms = 16;
  gint64         started;
  gint64         elapsed;
  GArray        *times = fixture->record.batch_times;

  ingest_sync (fixture, 1);

  stream = fixture_stream (fixture);
  fl_event_stream_set_timing (stream, batch_ms, 300, 6600, 1000, 60000);
  fl_event_stream_start (stream);
  wait_last_seq (stream, 1);

  started = g_get_monotonic_time ();
  for (guint i = 0; i < 10; i++)
    ingest_async (fixture, 1000);
  wait_events (&fixture->record, 10000, 60000);
  elapsed = g_get_monotonic_time () - started;

  g_test_message ("10,000 events in %u batches in %" G_GINT64_FORMAT " ms",
                  times->len, elapsed / 1000);
  assert_contiguous (&fixture->record, 2);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 10001);
  g_assert_cmpuint (times->len, <, 1000);
  /* never two batches within an interval (the timer's ms rounding aside) */
  for (guint i = 1; i < times->len; i++)
    g_assert_cmpint (g_array_index (times, gint64, i) - g_array_index (times, gint64, i - 1), >=,
                     (gint64) (batch_ms - 1) * 1000);
  /* and not much more than the interval at this rate */
  g_assert_cmpuint (times->len, <=, elapsed / (batch_ms * 1000) + 2);

  /* 10,000 more at a steady 10,000 events/s (100 every 10 ms) */
  {
    guint first_batch = times->len;
    guint n_batches;

    started = g_get_monotonic_time ();
    fixture->ingest_source = g_timeout_add (10, ingest_hundred_cb, fixture);
    wait_events (&fixture->record, 20000, 60000);
    elapsed = g_get_monotonic_time () - started;
    n_batches = times->len - first_batch;

    g_test_message ("10,000 events at 10,000/s in %u batches in %" G_GINT64_FORMAT " ms (%.0f batches/s)",
                    n_batches, elapsed / 1000, n_batches * 1e6 / elapsed);
    assert_contiguous (&fixture->record, 2);
    g_assert_cmpuint (n_batches, >, 1);
    g_assert_cmpuint (n_batches, <=, elapsed / (batch_ms * 1000) + 2);
    for (guint i = first_batch + 1; i < times->len; i++)
      g_assert_cmpint (g_array_index (times, gint64, i) - g_array_index (times, gint64, i - 1), >=,
                       (gint64) (batch_ms - 1) * 1000);
  }
}

/* The relay goes away; the missed events are stored by a new relay on
 * the same data dir and another port; the stream, pointed there,
 * resumes from its last seq: all of them, once each. */
static void
test_resume (Fixture      *fixture,
             gconstpointer data)
{
  FlEventStream   *stream;
  g_autofree char *url = NULL;
  Wait             wait = { 0 };
  guint            old_port = fixture->relay->port;

  ingest_sync (fixture, 1);

  stream = fixture_stream (fixture);
  /* a backoff longer than the test: set_url() reconnects at once */
  fl_event_stream_set_timing (stream, 16, 300, 6600, 20000, 40000);
  fl_event_stream_start (stream);
  wait_last_seq (stream, 1);

  ingest_sync (fixture, 5);
  wait_events (&fixture->record, 5, 10000);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 6);

  test_relay_stop (fixture->relay);
  wait.stream = stream;
  wait.state = FL_EVENT_STREAM_CONNECTED;
  test_wait_until (has_left_state, &wait, 10000, "the stream to notice");

  /* relay B: a new port, so new tokens too (the issuer has the port) */
  fixture->relay->port = 0;
  test_relay_start (fixture->relay);
  g_assert_cmpuint (fixture->relay->port, !=, old_port);
  {
    /* the stream keeps trying relay A meanwhile, with the old token */
    FlClient *admin_b = login (fixture->relay->url, TEST_ADMIN);

    g_object_unref (fixture->admin);
    fixture->admin = admin_b;
  }

  ingest_sync (fixture, 7);
  ingest_sync (fixture, 3);
  g_assert_cmpuint (fixture->record.events->len, ==, 5);
  g_assert_cmpint (fl_event_stream_get_state (stream), !=, FL_EVENT_STREAM_CONNECTED);

  url = events_url (fixture->relay);
  fl_event_stream_set_url (stream, url);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTING);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 5000);
  wait_events (&fixture->record, 15, 10000);

  /* and live again */
  ingest_sync (fixture, 4);
  wait_events (&fixture->record, 19, 10000);

  assert_contiguous (&fixture->record, 2);
  assert_ids (fixture, 1);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 20);
  g_assert_cmpuint (count_states (&fixture->record, FL_EVENT_STREAM_CONNECTED), ==, 2);
  g_assert_cmpuint (count_states (&fixture->record, FL_EVENT_STREAM_DISCONNECTED), >=, 1);
}

/* Told the server answers again, a stream waiting out a long backoff
 * reconnects at once and resumes where it was. */
static void
test_reconnect (Fixture      *fixture,
                gconstpointer data)
{
  FlEventStream *stream = fixture_stream (fixture);
  Wait           wait = { 0 };

  fl_event_stream_set_timing (stream, 16, 300, 6600, 20000, 40000);
  fl_event_stream_start (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 5000);
  /* connected: nothing to do */
  fl_event_stream_reconnect (stream);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTED);
  ingest_sync (fixture, 2);
  wait_events (&fixture->record, 2, 10000);

  test_relay_stop (fixture->relay);
  wait.stream = stream;
  wait.state = FL_EVENT_STREAM_CONNECTED;
  test_wait_until (has_left_state, &wait, 10000, "the stream to notice");
  test_relay_start (fixture->relay);
  ingest_sync (fixture, 3);

  /* the backoff (at least 20 s) would keep it away for the whole wait */
  fl_event_stream_reconnect (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 5000);
  wait_events (&fixture->record, 5, 10000);
  assert_contiguous (&fixture->record, 1);
}

/* A stopped stream keeps its place: started again, it resumes. */
static void
test_stop_start (Fixture      *fixture,
                 gconstpointer data)
{
  FlEventStream *stream;

  stream = fixture_stream (fixture);
  fl_event_stream_set_since (stream, 0);
  ingest_sync (fixture, 2);
  fl_event_stream_start (stream);
  wait_last_seq (stream, 2);

  ingest_sync (fixture, 3);
  wait_events (&fixture->record, 3, 10000);

  fl_event_stream_stop (stream);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_DISCONNECTED);
  test_wait_until (hub_is_empty, fixture, 10000, "the relay to see the stream close");

  ingest_sync (fixture, 4);
  g_assert_cmpuint (fixture->record.events->len, ==, 3);

  fl_event_stream_start (stream);
  wait_events (&fixture->record, 7, 10000);
  assert_contiguous (&fixture->record, 3);
  assert_ids (fixture, 2);
  g_assert_cmpuint (fixture->n_tokens, ==, 2);
}

/* A stream given a resume point gets the stored events after it, then
 * live ones; and only its devices' events. */
static void
test_since_and_devices (Fixture      *fixture,
                        gconstpointer data)
{
  static const char *const devices[] = { DEVICE_ID, NULL };
  g_autoptr (JsonNode)     registration = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (FlDevice)     other = NULL;
  g_autoptr (GPtrArray)    other_events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autofree char         *other_secret = NULL;
  FlEventStream           *stream;

  registration = json_from_string ("{\"deviceId\": \"other-1\", \"name\": \"Other\", \"type\": \"x\"}", &error);
  g_assert_no_error (error);
  fl_client_register_device_async (fixture->admin, json_node_get_object (registration), NULL, test_result_cb, &result);
  other = fl_client_register_device_finish (fixture->admin, test_wait_result (&result), &other_secret, &error);
  g_assert_no_error (error);

  ingest_sync (fixture, 4); /* seq 1..4 */

  stream = fixture_stream (fixture);
  fl_event_stream_set_since (stream, 2);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 2);
  fl_event_stream_set_devices (stream, devices);
  fl_event_stream_start (stream);
  wait_events (&fixture->record, 2, 10000);
  assert_contiguous (&fixture->record, 3);

  /* the other device's events are not for this stream */
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr (JsonObject) values = json_object_new ();
      g_autofree char       *id = g_uuid_string_random ();

      g_ptr_array_add (other_events, fl_event_new (id, g_get_real_time () / 1000, "other-1", "telemetry", values, NULL));
    }
  {
    g_autoptr (GAsyncResult)   ingest_result = NULL;
    g_autoptr (FlIngestResult) reply = NULL;

    fl_client_ingest_async (fixture->admin, "other-1", other_secret, other_events, NULL, test_result_cb, &ingest_result);
    reply = fl_client_ingest_finish (fixture->admin, test_wait_result (&ingest_result), &error);
    g_assert_no_error (error);
    g_assert_cmpuint (reply->accepted, ==, 3);
  }
  ingest_sync (fixture, 2);
  wait_events (&fixture->record, 4, 10000);
  for (guint i = 0; i < fixture->record.events->len; i++)
    g_assert_cmpstr (fl_event_get_source (g_ptr_array_index (fixture->record.events, i)), ==, DEVICE_ID);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 9);
  assert_ids (fixture, 2);

  /* all devices again, while connected: the other device's next events
   * come too */
  /* (the new subscription has "since", so it does not matter whether the
   * relay has it before the event below is stored) */
  fl_event_stream_set_devices (stream, NULL);
  {
    g_autoptr (GAsyncResult)   ingest_result = NULL;
    g_autoptr (FlIngestResult) reply = NULL;
    g_autoptr (GPtrArray)      more = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
    g_autoptr (JsonObject)     values = json_object_new ();
    g_autofree char           *id = g_uuid_string_random ();

    g_ptr_array_add (more, fl_event_new (id, g_get_real_time () / 1000, "other-1", "telemetry", values, NULL));
    fl_client_ingest_async (fixture->admin, "other-1", other_secret, more, NULL, test_result_cb, &ingest_result);
    reply = fl_client_ingest_finish (fixture->admin, test_wait_result (&ingest_result), &error);
    g_assert_no_error (error);
    g_assert_cmpuint (reply->accepted, ==, 1);
  }
  wait_events (&fixture->record, 5, 10000);
  g_assert_cmpstr (fl_event_get_source (g_ptr_array_index (fixture->record.events, 4)), ==, "other-1");
  g_assert_cmpint (fl_event_get_seq (g_ptr_array_index (fixture->record.events, 4)), ==, 10);
}

static gboolean
ingest_tick_cb (gpointer user_data)
{
  ingest_async (user_data, 10);
  return G_SOURCE_CONTINUE;
}

typedef struct
{
  FlEventStream *stream;
  GArray        *since; /* gint64, each connected_since seen */
  gboolean       left;  /* the state ever left CONNECTED */
} Sampler;

static gboolean
sample_cb (gpointer user_data)
{
  Sampler *sampler = user_data;
  gint64   since = fl_event_stream_get_connected_since (sampler->stream);

  if (fl_event_stream_get_state (sampler->stream) != FL_EVENT_STREAM_CONNECTED || since == 0)
    sampler->left = TRUE;
  else if (g_array_index (sampler->since, gint64, sampler->since->len - 1) != since)
    g_array_append_val (sampler->since, since);

  return G_SOURCE_CONTINUE;
}

static gboolean
hub_has_one (gpointer data)
{
  Fixture *fixture = data;

  return fl_hub_get_n_subscribers (fixture->relay->relay->hub) == 1;
}

/* Connections are replaced every second while events pour in: the
 * stream stays connected, and every event comes once, in order. */
static void
test_replace (Fixture      *fixture,
              gconstpointer data)
{
  FlEventStream     *stream;
  g_autoptr (GArray) since = g_array_new (FALSE, FALSE, sizeof (gint64));
  Sampler            sampler = { NULL, since, FALSE };
  guint              sample_source;
  gint64             first;
  guint              n_states;

  ingest_sync (fixture, 1);

  stream = fixture_stream (fixture);
  fl_event_stream_set_timing (stream, 16, 300, 1, 50, 200);
  fl_event_stream_start (stream);
  wait_last_seq (stream, 1);
  n_states = fixture->record.states->len;

  first = fl_event_stream_get_connected_since (stream);
  g_array_append_val (since, first);
  sampler.stream = stream;
  sample_source = g_timeout_add (5, sample_cb, &sampler);
  fixture->ingest_source = g_timeout_add (20, ingest_tick_cb, fixture);

  test_run_for (4500);

  g_clear_handle_id (&fixture->ingest_source, g_source_remove);
  test_wait_until (nothing_in_flight, fixture, 30000, "ingests to finish");
  wait_events (&fixture->record, fixture->ingested->len - 1, 30000);
  g_source_remove (sample_source);

  g_test_message ("%u events over %u connections", fixture->record.events->len, since->len);
  g_assert_cmpuint (fixture->record.events->len, >, 500);
  assert_contiguous (&fixture->record, 2);
  /* replaced several times, never disconnected */
  g_assert_cmpuint (since->len, >=, 3);
  g_assert_false (sampler.left);
  g_assert_cmpuint (fixture->record.states->len, ==, n_states);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTED);
  g_assert_cmpuint (fixture->n_tokens, ==, since->len);
  /* the old connections are gone from the relay */
  test_wait_until (hub_has_one, fixture, 10000, "the old connections to close");

  /* the ids, as a set: requests in flight together commit in any order */
  {
    g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);

    for (guint i = 1; i < fixture->ingested->len; i++)
      g_hash_table_add (ids, g_ptr_array_index (fixture->ingested, i));
    for (guint i = 0; i < fixture->record.events->len; i++)
      g_assert_true (g_hash_table_remove (ids, fl_event_get_id (g_ptr_array_index (fixture->record.events, i))));
    g_assert_cmpuint (g_hash_table_size (ids), ==, 0);
  }
}

typedef struct
{
  FlClient *client;
  guint     n_tokens;
} Viewer;

static char *
viewer_token_cb (gpointer user_data)
{
  Viewer *viewer = user_data;

  viewer->n_tokens++;
  return g_strdup (fl_client_get_id_token (viewer->client));
}

/* A disabled user's stream is closed with 4001: signed out, and it
 * does not come back. */
static void
test_signed_out (Fixture      *fixture,
                 gconstpointer data)
{
  FlUserPool        *pool = fl_relay_get_user_pool (fixture->relay->relay);
  g_autoptr (GError) error = NULL;
  Viewer             viewer = { NULL, 0 };
  gint64             disabled_at;
  gint64             signed_out_at;

  g_assert_true (fl_user_pool_add_user (pool, "watcher", "watcher@example.com", TEST_PASSWORD, FL_ROLE_VIEWER, &error));
  g_assert_no_error (error);
  viewer.client = login (fixture->relay->url, "watcher");

  {
    g_autofree char *url = events_url (fixture->relay);

    fixture->stream = fl_event_stream_new (url, viewer_token_cb, &viewer, NULL);
    record_connect (&fixture->record, fixture->stream);
  }
  fl_event_stream_set_timing (fixture->stream, 16, 300, 6600, 50, 100);
  fl_event_stream_start (fixture->stream);
  wait_state (fixture->stream, FL_EVENT_STREAM_CONNECTED, 10000);
  g_assert_cmpuint (viewer.n_tokens, ==, 1);

  g_assert_true (fl_user_pool_set_user_enabled (pool, "watcher", FALSE, &error));
  g_assert_no_error (error);
  disabled_at = g_get_monotonic_time ();

  wait_state (fixture->stream, FL_EVENT_STREAM_SIGNED_OUT, 2500);
  signed_out_at = g_array_index (fixture->record.states, StateChange, fixture->record.states->len - 1).time;
  g_test_message ("signed out %" G_GINT64_FORMAT " ms after the user was disabled",
                  (signed_out_at - disabled_at) / 1000);
  g_assert_cmpint (fl_event_stream_get_connected_since (fixture->stream), ==, 0);

  /* no reconnect, though the backoff is 50 ms */
  test_run_for (1000);
  g_assert_cmpint (fl_event_stream_get_state (fixture->stream), ==, FL_EVENT_STREAM_SIGNED_OUT);
  g_assert_cmpuint (viewer.n_tokens, ==, 1);
  g_assert_cmpuint (count_states (&fixture->record, FL_EVENT_STREAM_CONNECTING), ==, 1);
  g_assert_true (hub_is_empty (fixture));

  g_assert_finalize_object (g_steal_pointer (&fixture->stream));
  g_clear_object (&viewer.client);
}

/* ---- backoff, against a port that refuses --------------------------------- */

static void
test_backoff (void)
{
  g_autoptr (GError)         error = NULL;
  g_autoptr (GSocket)        socket = NULL;
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  g_autoptr (FlEventStream)  stream = NULL;
  g_autofree char           *url = NULL;
  Record                     record;
  Wait                       wait = { 0 };
  const guint                min_ms = 40;
  const guint                max_ms = 320;
  const guint                n_attempts = 7;
  GArray                    *starts;
  guint                      n_tokens = 0;

  /* bound, never listening: connections are refused, and the port stays
   * ours */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  url = g_strdup_printf ("ws://127.0.0.1:%u/events",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

  record_init (&record);
  stream = fl_event_stream_new (url, NULL, NULL, NULL);
  record_connect (&record, stream);
  fl_event_stream_set_timing (stream, 16, 300, 6600, min_ms, max_ms);
  fl_event_stream_start (stream);

  wait.stream = stream;
  wait.record = &record;
  wait.state = FL_EVENT_STREAM_CONNECTING;
  wait.n = n_attempts;
  test_wait_until (has_n_state_changes, &wait, 20000, "connection attempts");
  fl_event_stream_stop (stream);
  (void) n_tokens;

  /* connecting and waiting alternate */
  for (guint i = 0; i + 1 < record.states->len; i++)
    g_assert_cmpint (g_array_index (record.states, StateChange, i).state, !=,
                     g_array_index (record.states, StateChange, i + 1).state);

  starts = g_array_new (FALSE, FALSE, sizeof (gint64));
  for (guint i = 0; i < record.states->len; i++)
    if (g_array_index (record.states, StateChange, i).state == FL_EVENT_STREAM_CONNECTING)
      g_array_append_val (starts, g_array_index (record.states, StateChange, i).time);
  g_assert_cmpuint (starts->len, ==, n_attempts);

  for (guint i = 1; i < starts->len; i++)
    {
      gint64 gap_ms = (g_array_index (starts, gint64, i) - g_array_index (starts, gint64, i - 1)) / 1000;
      guint  cap = MIN (min_ms << (i - 1), max_ms);
      guint  low = MAX (cap / 2, min_ms);

      g_test_message ("attempt %u: %" G_GINT64_FORMAT " ms after the one before (%u..%u)", i + 1, gap_ms, low, cap);
      g_assert_cmpint (gap_ms, >=, low);
      /* scheduling slack on a busy machine */
      g_assert_cmpint (gap_ms, <=, cap + 250);
    }
  g_array_unref (starts);

  /* stopped means stopped */
  test_run_for (3 * max_ms);
  g_assert_cmpuint (count_states (&record, FL_EVENT_STREAM_CONNECTING), ==, n_attempts);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_DISCONNECTED);

  g_assert_finalize_object (g_steal_pointer (&stream));
  record_clear (&record);
}

/* ---- a scripted relay ----------------------------------------------------- */

typedef struct _FakeRelay FakeRelay;

typedef struct
{
  FakeRelay               *fake;
  SoupWebsocketConnection *ws;
  char                    *authorization;
  GPtrArray               *received; /* char *, text messages */
  gboolean                 closed;
  gushort                  close_code; /* as the server saw it */
} FakeConn;

struct _FakeRelay
{
  SoupServer *server;
  char       *url;
  GPtrArray  *conns; /* FakeConn */
  gboolean    answer_pings;
  guint       n_pings;
};

static void
fake_message_cb (SoupWebsocketConnection *ws,
                 gint                     type,
                 GBytes                  *message,
                 FakeConn                *conn)
{
  gsize       length;
  const char *data = g_bytes_get_data (message, &length);
  char       *text = g_strndup (data, length);

  g_assert_cmpint (type, ==, SOUP_WEBSOCKET_DATA_TEXT);
  g_ptr_array_add (conn->received, text);

  if (strstr (text, "\"ping\"") != NULL)
    {
      conn->fake->n_pings++;
      if (conn->fake->answer_pings)
        soup_websocket_connection_send_text (ws, "{\"type\":\"pong\",\"time\":1}");
    }
}

static void
fake_closed_cb (SoupWebsocketConnection *ws,
                FakeConn                *conn)
{
  conn->closed = TRUE;
  conn->close_code = soup_websocket_connection_get_close_code (ws);
}

static void
fake_websocket_cb (SoupServer              *server,
                   SoupServerMessage       *msg,
                   const char              *path,
                   SoupWebsocketConnection *connection,
                   gpointer                 user_data)
{
  FakeRelay *fake = user_data;
  FakeConn  *conn = g_new0 (FakeConn, 1);

  conn->fake = fake;
  conn->ws = g_object_ref (connection);
  conn->authorization = g_strdup (soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                                "Authorization"));
  conn->received = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (connection, "message", G_CALLBACK (fake_message_cb), conn);
  g_signal_connect (connection, "closed", G_CALLBACK (fake_closed_cb), conn);
  g_ptr_array_add (fake->conns, conn);
}

static void
fake_conn_free (FakeConn *conn)
{
  g_signal_handlers_disconnect_by_data (conn->ws, conn);
  g_clear_object (&conn->ws);
  g_free (conn->authorization);
  g_ptr_array_unref (conn->received);
  g_free (conn);
}

static FakeRelay *
fake_relay_new (void)
{
  FakeRelay         *fake = g_new0 (FakeRelay, 1);
  g_autoptr (GError) error = NULL;
  GSList            *uris;

  fake->server = soup_server_new (NULL, NULL);
  fake->conns = g_ptr_array_new_with_free_func ((GDestroyNotify) fake_conn_free);
  fake->answer_pings = TRUE;
  soup_server_add_websocket_handler (fake->server, "/events", NULL, NULL, fake_websocket_cb, fake, NULL);
  g_assert_true (soup_server_listen_local (fake->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error));
  g_assert_no_error (error);

  uris = soup_server_get_uris (fake->server);
  g_assert_nonnull (uris);
  fake->url = g_strdup_printf ("ws://127.0.0.1:%d/events", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  return fake;
}

static gboolean
fake_all_closed (gpointer data)
{
  FakeRelay *fake = data;

  for (guint i = 0; i < fake->conns->len; i++)
    if (!((FakeConn *) g_ptr_array_index (fake->conns, i))->closed)
      return FALSE;
  return TRUE;
}

static void
fake_relay_free (FakeRelay *fake)
{
  test_wait_until (fake_all_closed, fake, 10000, "the fake relay's connections to close");
  soup_server_disconnect (fake->server);
  g_clear_object (&fake->server);
  g_ptr_array_unref (fake->conns);
  g_free (fake->url);
  g_free (fake);
}

static FakeConn *
fake_conn (FakeRelay *fake,
           guint      index)
{
  g_assert_cmpuint (index, <, fake->conns->len);
  return g_ptr_array_index (fake->conns, index);
}

typedef struct
{
  FakeRelay *fake;
  guint      conn;
  guint      n;
} FakeWait;

static gboolean
fake_has_conns (gpointer data)
{
  FakeWait *wait = data;

  return wait->fake->conns->len >= wait->n;
}

static gboolean
fake_has_messages (gpointer data)
{
  FakeWait *wait = data;

  return wait->fake->conns->len > wait->conn && fake_conn (wait->fake, wait->conn)->received->len >= wait->n;
}

static gboolean
fake_has_pings (gpointer data)
{
  FakeWait *wait = data;

  return wait->fake->n_pings >= wait->n;
}

static gboolean
fake_is_closed (gpointer data)
{
  FakeWait *wait = data;

  return fake_conn (wait->fake, wait->conn)->closed;
}

static JsonObject *
fake_message (FakeRelay *fake,
              guint      conn,
              guint      index)
{
  FakeWait             wait = { fake, conn, index + 1 };
  g_autoptr (GError)   error = NULL;
  g_autoptr (JsonNode) node = NULL;

  test_wait_until (fake_has_messages, &wait, 10000, "a message from the stream");
  node = json_from_string (g_ptr_array_index (fake_conn (fake, conn)->received, index), &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));

  return json_object_ref (json_node_get_object (node));
}

static char *
device_ids_of (JsonObject *message)
{
  JsonArray          *array = json_object_get_array_member (message, "deviceIds");
  g_autoptr (GString) out = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (array); i++)
    g_string_append_printf (out, "%s%s", i > 0 ? "," : "", json_array_get_string_element (array, i));
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static char *
counting_token_cb (gpointer user_data)
{
  guint *n = user_data;

  return g_strdup_printf ("token-%u", ++*n);
}

#define FAKE_EVENT(seq, id)                                                                            \
  "{\"type\":\"event\",\"event\":{\"id\":\"" id "\",\"timestamp\":1700000000000,\"source\":\"dev-a\"," \
  "\"type\":\"telemetry\",\"data\":{\"temperature\":21.5},\"seq\":" #seq ",\"receivedAt\":1700000000007}}"

/* The messages the stream sends, and what it makes of the relay's. */
static void
test_protocol (void)
{
  static const char *const  devices[] = { "dev-a", "dev-b", NULL };
  FakeRelay                *fake = fake_relay_new ();
  g_autoptr (FlEventStream) stream = NULL;
  g_autoptr (JsonObject)    message = NULL;
  g_autofree char          *ids = NULL;
  g_autofree char          *big = NULL;
  Record                    record;
  FakeWait                  wait = { fake, 0, 0 };
  guint                     n_tokens = 0;
  guint                     n_pings;
  static const guchar       binary[] = { 1, 2, 3 };
  GError                   *error;
  FlDevice                 *device;
  FlEvent                  *event;
  double                    value = 0;

  record_init (&record);
  stream = fl_event_stream_new (fake->url, counting_token_cb, &n_tokens, NULL);
  record_connect (&record, stream);
  /* a backoff far longer than the test: any reconnect seen is immediate */
  fl_event_stream_set_timing (stream, 16, 1, 6600, 30000, 60000);
  fl_event_stream_set_since (stream, 41);
  fl_event_stream_set_devices (stream, devices);
  fl_event_stream_start (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 10000);

  /* the token, the subscription from since, the alerts */
  g_assert_cmpstr (fake_conn (fake, 0)->authorization, ==, "Bearer token-1");
  message = fake_message (fake, 0, 0);
  g_assert_cmpstr (json_object_get_string_member (message, "action"), ==, "subscribe_devices");
  ids = device_ids_of (message);
  g_assert_cmpstr (ids, ==, "dev-a,dev-b");
  g_assert_cmpint (json_object_get_int_member (message, "since"), ==, 41);
  g_clear_pointer (&message, json_object_unref);
  message = fake_message (fake, 0, 1);
  g_assert_cmpstr (json_object_get_string_member (message, "action"), ==, "subscribe_alerts");
  g_clear_pointer (&message, json_object_unref);

  /* events: duplicates, old ones, garbage and invalid ones are dropped */
  {
    SoupWebsocketConnection *ws = fake_conn (fake, 0)->ws;

    soup_websocket_connection_send_text (ws, "{\"type\":\"subscribed\",\"deviceIds\":[\"dev-a\",\"dev-b\"],\"lastSeq\":100}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"subscribed_alerts\"}");
    soup_websocket_connection_send_text (ws, FAKE_EVENT (42, "e42"));
    soup_websocket_connection_send_text (ws, FAKE_EVENT (43, "e43"));
    soup_websocket_connection_send_text (ws, FAKE_EVENT (42, "e42"));
    soup_websocket_connection_send_text (ws, FAKE_EVENT (41, "e41"));
    soup_websocket_connection_send_text (ws, "not JSON");
    soup_websocket_connection_send_text (ws, "[1, 2]");
    soup_websocket_connection_send_text (ws, "{\"type\":\"event\"}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"event\",\"event\":{\"seq\":\"44\"}}");
    soup_websocket_connection_send_binary (ws, binary, sizeof binary);
    soup_websocket_connection_send_text (ws, "{\"type\":\"event\",\"event\":{\"seq\":45,\"source\":\"dev-a\",\"type\":\"telemetry\"}}");
    soup_websocket_connection_send_text (ws, FAKE_EVENT (45, "e45"));
    soup_websocket_connection_send_text (ws, "{\"type\":\"error\",\"error\":{\"code\":\"invalid_parameter\",\"message\":\"Bad since\"}}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"error\",\"error\":{\"code\":\"too_many_requests\",\"message\":\"You are behind\"}}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"device\",\"device\":{\"deviceId\":\"dev-a\",\"name\":\"A\",\"status\":\"online\",\"battery\":87,\"lastSeen\":1700000000000}}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"device\",\"device\":{\"deviceId\":\"bad id/\"}}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"device\"}");
    soup_websocket_connection_send_text (ws, "{\"type\":\"alert\",\"alert\":{}}");
  }
  /* a last device message marks the end of the script */
  soup_websocket_connection_send_text (fake_conn (fake, 0)->ws,
                                       "{\"type\":\"device\",\"device\":{\"deviceId\":\"dev-b\",\"status\":\"offline\"}}");
  wait_len (record.devices, 2);
  /* devices come at once, events with the next batch: all of them in it */
  wait_events (&record, 3, 10000);
  g_assert_cmpuint (record.batch_times->len, ==, 1);
  g_assert_cmpint (fl_event_get_seq (g_ptr_array_index (record.events, 0)), ==, 42);
  g_assert_cmpint (fl_event_get_seq (g_ptr_array_index (record.events, 1)), ==, 43);
  g_assert_cmpint (fl_event_get_seq (g_ptr_array_index (record.events, 2)), ==, 45);
  event = g_ptr_array_index (record.events, 2);
  g_assert_cmpstr (fl_event_get_id (event), ==, "e45");
  g_assert_cmpint (fl_event_get_received_at (event), ==, 1700000000007);
  g_assert_cmpint (fl_event_get_timestamp (event), ==, 1700000000000);
  g_assert_true (fl_event_get_metric (event, "temperature", &value));
  g_assert_cmpfloat (value, ==, 21.5);
  /* with a resume point, the relay's lastSeq does not move it */
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 45);

  g_assert_cmpuint (record.errors->len, ==, 2);
  error = g_ptr_array_index (record.errors, 0);
  g_assert_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_BAD_REQUEST);
  g_assert_cmpstr (error->message, ==, "Bad since");
  g_assert_cmpstr (fl_client_error_get_api_code (error), ==, "invalid_parameter");
  error = g_ptr_array_index (record.errors, 1);
  g_assert_error (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_TOO_MANY_REQUESTS);
  g_assert_cmpstr (fl_client_error_get_api_code (error), ==, "too_many_requests");

  device = g_ptr_array_index (record.devices, 0);
  g_assert_cmpstr (fl_device_get_device_id (device), ==, "dev-a");
  g_assert_cmpstr (fl_device_get_name (device), ==, "A");
  g_assert_cmpint (fl_device_get_status (device), ==, FL_DEVICE_STATUS_ONLINE);
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 87);
  g_assert_cmpint (fl_device_get_last_seen (device), ==, 1700000000000);
  device = g_ptr_array_index (record.devices, 1);
  g_assert_cmpstr (fl_device_get_device_id (device), ==, "dev-b");
  g_assert_cmpint (fl_device_get_status (device), ==, FL_DEVICE_STATUS_OFFLINE);

  /* pings, every ping_s; answered, so the stream stays */
  n_pings = fake->n_pings;
  wait.n = n_pings + 2;
  test_wait_until (fake_has_pings, &wait, 5000, "two pings");
  g_assert_cmpstr (g_ptr_array_index (fake_conn (fake, 0)->received, fake_conn (fake, 0)->received->len - 1), ==,
                   "{\"action\":\"ping\"}");
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTED);
  g_assert_cmpuint (fake->conns->len, ==, 1);

  /* 4008: back at once (the backoff is 30 s), from the last seq, with a
   * fresh token */
  soup_websocket_connection_close (fake_conn (fake, 0)->ws, 4008, "slow consumer");
  wait.n = 2;
  test_wait_until (fake_has_conns, &wait, 5000, "a new connection");
  g_assert_cmpstr (fake_conn (fake, 1)->authorization, ==, "Bearer token-2");
  message = fake_message (fake, 1, 0);
  g_assert_cmpstr (json_object_get_string_member (message, "action"), ==, "subscribe_devices");
  g_assert_cmpint (json_object_get_int_member (message, "since"), ==, 45);
  g_clear_pointer (&ids, g_free);
  ids = device_ids_of (message);
  g_assert_cmpstr (ids, ==, "dev-a,dev-b");
  g_clear_pointer (&message, json_object_unref);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 5000);
  wait.conn = 0;
  test_wait_until (fake_is_closed, &wait, 5000, "the first connection to close");

  /* a new device set applies to the open connection */
  fl_event_stream_set_devices (stream, NULL);
  message = fake_message (fake, 1, 2);
  g_assert_cmpstr (json_object_get_string_member (message, "action"), ==, "unsubscribe_devices");
  g_clear_pointer (&ids, g_free);
  ids = device_ids_of (message);
  g_assert_cmpstr (ids, ==, "*");
  g_clear_pointer (&message, json_object_unref);
  message = fake_message (fake, 1, 3);
  g_assert_cmpstr (json_object_get_string_member (message, "action"), ==, "subscribe_devices");
  g_clear_pointer (&ids, g_free);
  ids = device_ids_of (message);
  g_assert_cmpstr (ids, ==, "*");
  g_assert_cmpint (json_object_get_int_member (message, "since"), ==, 45);
  g_clear_pointer (&message, json_object_unref);

  /* a message over the payload bound ends the connection, not the
   * process; reconnecting waits for the backoff */
  big = g_malloc (5 * 1024 * 1024 + 1);
  memset (big, ' ', 5 * 1024 * 1024);
  big[5 * 1024 * 1024] = '\0';
  soup_websocket_connection_send_text (fake_conn (fake, 1)->ws, big);
  wait_state (stream, FL_EVENT_STREAM_DISCONNECTED, 10000);
  wait.conn = 1;
  test_wait_until (fake_is_closed, &wait, 10000, "the connection to close");
  /* (libsoup 3.2 drops such a connection without a close frame) */
  g_assert_cmpuint (fake_conn (fake, 1)->close_code, !=, SOUP_WEBSOCKET_CLOSE_NORMAL);
  g_assert_cmpuint (record.events->len, ==, 3);
  g_assert_cmpuint (record.errors->len, ==, 2);
  g_assert_cmpuint (n_tokens, ==, 2);
  g_assert_cmpuint (fake->conns->len, ==, 2);

  fl_event_stream_stop (stream);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_DISCONNECTED);
  g_assert_finalize_object (g_steal_pointer (&stream));
  fake_relay_free (fake);
  record_clear (&record);
}

/* stop() closes with 1000, and the relay sees it. */
static void
test_stop_closes (void)
{
  FakeRelay                *fake = fake_relay_new ();
  g_autoptr (FlEventStream) stream = fl_event_stream_new (fake->url, NULL, NULL, NULL);
  FakeWait                  wait = { fake, 0, 1 };

  fl_event_stream_start (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 10000);
  test_wait_until (fake_has_messages, &wait, 10000, "the subscription");
  /* no token function: no Authorization header */
  g_assert_null (fake_conn (fake, 0)->authorization);

  fl_event_stream_stop (stream);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_DISCONNECTED);
  test_wait_until (fake_is_closed, &wait, 10000, "the connection to close");
  g_assert_cmpuint (fake_conn (fake, 0)->close_code, ==, SOUP_WEBSOCKET_CLOSE_NORMAL);

  /* disposing a connected stream closes it too */
  fl_event_stream_start (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 10000);
  wait.n = 2;
  test_wait_until (fake_has_conns, &wait, 10000, "the second connection");
  g_assert_finalize_object (g_steal_pointer (&stream));
  wait.conn = 1;
  test_wait_until (fake_is_closed, &wait, 10000, "the connection to close");
  g_assert_cmpuint (fake_conn (fake, 1)->close_code, ==, SOUP_WEBSOCKET_CLOSE_NORMAL);

  fake_relay_free (fake);
}

/* ---- on a thread's own main context ---------------------------------------- */

typedef struct
{
  const char *url;
  gint        connected; /* atomic */
  gint        done;      /* atomic */
  guint       n_events;
} Worker;

static void
worker_events_cb (FlEventStream *stream,
                  GPtrArray     *events,
                  Worker        *worker)
{
  worker->n_events += events->len;
}

static gboolean
worker_wake_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static gpointer
worker_thread (gpointer data)
{
  Worker                   *worker = data;
  GMainContext             *context = g_main_context_new ();
  GSource                  *wake = g_timeout_source_new (20);
  gint64                    deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  g_autoptr (FlEventStream) stream = NULL;

  g_main_context_push_thread_default (context);
  g_source_set_callback (wake, worker_wake_cb, NULL, NULL);
  g_source_attach (wake, context);

  stream = fl_event_stream_new (worker->url, NULL, NULL, NULL);
  g_signal_connect (stream, "events", G_CALLBACK (worker_events_cb), worker);
  fl_event_stream_start (stream);

  while (fl_event_stream_get_state (stream) != FL_EVENT_STREAM_CONNECTED && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, TRUE);
  g_assert_cmpint (fl_event_stream_get_state (stream), ==, FL_EVENT_STREAM_CONNECTED);
  g_atomic_int_set (&worker->connected, TRUE);

  /* only this context runs here: the batch timer must be on it */
  while (worker->n_events < 1 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, TRUE);
  g_assert_cmpuint (worker->n_events, ==, 1);
  g_assert_cmpint (fl_event_stream_get_last_seq (stream), ==, 7);

  fl_event_stream_stop (stream);
  g_assert_finalize_object (g_steal_pointer (&stream));
  while (g_main_context_iteration (context, FALSE))
    ;

  g_source_destroy (wake);
  g_source_unref (wake);
  g_main_context_pop_thread_default (context);
  g_main_context_unref (context);
  g_atomic_int_set (&worker->done, TRUE);

  return NULL;
}

static gboolean
worker_is_connected (gpointer data)
{
  return g_atomic_int_get (&((Worker *) data)->connected);
}

static gboolean
worker_is_done (gpointer data)
{
  return g_atomic_int_get (&((Worker *) data)->done);
}

/* A stream made on a thread's own context stays on it. */
static void
test_thread_context (void)
{
  FakeRelay *fake = fake_relay_new ();
  Worker     worker = { fake->url, FALSE, FALSE, 0 };
  FakeWait   wait = { fake, 0, 2 };
  GThread   *thread = g_thread_new ("stream", worker_thread, &worker);

  test_wait_until (worker_is_connected, &worker, 20000, "the worker's stream to connect");
  test_wait_until (fake_has_messages, &wait, 10000, "the subscription");
  soup_websocket_connection_send_text (fake_conn (fake, 0)->ws, FAKE_EVENT (7, "e7"));
  test_wait_until (worker_is_done, &worker, 20000, "the worker");
  g_thread_join (thread);

  fake_relay_free (fake);
}

/* ---- a relay that answers the handshake, then nothing ---------------------- */

typedef struct
{
  GSocketService    *service;
  GSocketConnection *connection;
  GString           *request;
  guint8             buffer[4096];
  gboolean           upgraded;
  gsize              received_after;
  gboolean           eof;
  guint              port;
} Silent;

static void silent_read (Silent *silent);

static void
silent_read_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Silent            *silent = user_data;
  g_autoptr (GError) error = NULL;
  gssize             n = g_input_stream_read_finish (G_INPUT_STREAM (object), result, &error);
  const char        *end;

  if (n <= 0)
    {
      silent->eof = TRUE;
      return;
    }

  if (silent->upgraded)
    {
      silent->received_after += n;
      silent_read (silent);
      return;
    }

  g_string_append_len (silent->request, (const char *) silent->buffer, n);
  end = strstr (silent->request->str, "\r\n\r\n");
  if (end != NULL)
    {
      static const char     guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
      const char           *key = strstr (silent->request->str, "Sec-WebSocket-Key: ");
      g_autofree char      *key_value = NULL;
      g_autofree char      *accept = NULL;
      g_autofree char      *response = NULL;
      g_autoptr (GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
      guint8                digest[20];
      gsize                 digest_len = sizeof digest;
      gsize                 written = 0;

      g_assert_nonnull (key);
      key += strlen ("Sec-WebSocket-Key: ");
      key_value = g_strndup (key, strcspn (key, "\r\n"));
      g_checksum_update (sha1, (const guchar *) key_value, -1);
      g_checksum_update (sha1, (const guchar *) guid, -1);
      g_checksum_get_digest (sha1, digest, &digest_len);
      accept = g_base64_encode (digest, digest_len);
      response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                  accept);
      /* a few bytes into an empty socket buffer */
      g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (silent->connection)),
                                                response, strlen (response), &written, NULL, &error));
      g_assert_no_error (error);
      silent->upgraded = TRUE;
      silent->received_after = silent->request->len - (end + 4 - silent->request->str);
    }
  silent_read (silent);
}

static void
silent_read (Silent *silent)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (silent->connection)),
                             silent->buffer, sizeof silent->buffer, G_PRIORITY_DEFAULT, NULL,
                             silent_read_cb, silent);
}

static gboolean
silent_incoming_cb (GSocketService    *service,
                    GSocketConnection *connection,
                    GObject           *source,
                    Silent            *silent)
{
  g_assert_null (silent->connection);
  silent->connection = g_object_ref (connection);
  silent_read (silent);
  return TRUE;
}

static gboolean
silent_is_eof (gpointer data)
{
  return ((Silent *) data)->eof;
}

/* The connection opens and then nothing comes back, not even pongs (a
 * half-open connection): the stream gives up on it after two pings. */
static void
test_silent_relay (void)
{
  g_autoptr (GError)         error = NULL;
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) effective = NULL;
  g_autoptr (FlEventStream)  stream = NULL;
  g_autofree char           *url = NULL;
  Silent                     silent = { 0 };
  Record                     record;
  gint64                     connected_at;
  gint64                     lost_at;

  silent.service = g_socket_service_new ();
  silent.request = g_string_new (NULL);
  g_assert_true (g_socket_listener_add_address (G_SOCKET_LISTENER (silent.service), address,
                                                G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                                NULL, &effective, &error));
  g_assert_no_error (error);
  g_signal_connect (silent.service, "incoming", G_CALLBACK (silent_incoming_cb), &silent);
  g_socket_service_start (silent.service);
  url = g_strdup_printf ("ws://127.0.0.1:%u/events",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective)));

  record_init (&record);
  stream = fl_event_stream_new (url, NULL, NULL, NULL);
  record_connect (&record, stream);
  fl_event_stream_set_timing (stream, 16, 1, 6600, 30000, 60000);
  fl_event_stream_start (stream);
  wait_state (stream, FL_EVENT_STREAM_CONNECTED, 10000);
  connected_at = g_get_monotonic_time ();

  wait_state (stream, FL_EVENT_STREAM_DISCONNECTED, 5000);
  lost_at = g_get_monotonic_time ();
  g_test_message ("given up after %" G_GINT64_FORMAT " ms", (lost_at - connected_at) / 1000);
  g_assert_cmpint (lost_at - connected_at, >=, 1500 * 1000);
  g_assert_true (silent.upgraded);
  g_assert_cmpuint (silent.received_after, >, 0); /* the subscription and the pings */
  g_assert_cmpint (fl_event_stream_get_connected_since (stream), ==, 0);

  /* the connection let go closes once the relay's side ends */
  g_assert_true (g_socket_shutdown (g_socket_connection_get_socket (silent.connection), FALSE, TRUE, &error));
  g_assert_no_error (error);
  test_wait_until (silent_is_eof, &silent, 10000, "the stream to close its side");

  fl_event_stream_stop (stream);
  g_assert_finalize_object (g_steal_pointer (&stream));

  g_socket_service_stop (silent.service);
  g_socket_listener_close (G_SOCKET_LISTENER (silent.service));
  g_io_stream_close (G_IO_STREAM (silent.connection), NULL, NULL);
  g_clear_object (&silent.connection);
  g_clear_object (&silent.service);
  g_string_free (silent.request, TRUE);
  record_clear (&record);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/event-stream/protocol", test_protocol);
  g_test_add_func ("/fieldline/event-stream/stop-closes", test_stop_closes);
  g_test_add_func ("/fieldline/event-stream/backoff", test_backoff);
  g_test_add_func ("/fieldline/event-stream/silent-relay", test_silent_relay);
  g_test_add_func ("/fieldline/event-stream/thread-context", test_thread_context);
  g_test_add ("/fieldline/event-stream/live", Fixture, NULL, fixture_setup, test_live, fixture_teardown);
  g_test_add ("/fieldline/event-stream/burst", Fixture, NULL, fixture_setup, test_burst, fixture_teardown);
  g_test_add ("/fieldline/event-stream/since-and-devices", Fixture, NULL, fixture_setup, test_since_and_devices, fixture_teardown);
  g_test_add ("/fieldline/event-stream/stop-start", Fixture, NULL, fixture_setup, test_stop_start, fixture_teardown);
  g_test_add ("/fieldline/event-stream/resume", Fixture, NULL, fixture_setup, test_resume, fixture_teardown);
  g_test_add ("/fieldline/event-stream/reconnect", Fixture, NULL, fixture_setup, test_reconnect, fixture_teardown);
  g_test_add ("/fieldline/event-stream/replace", Fixture, NULL, fixture_setup, test_replace, fixture_teardown);
  g_test_add ("/fieldline/event-stream/signed-out", Fixture, NULL, fixture_setup, test_signed_out, fixture_teardown);

  return g_test_run ();
}
