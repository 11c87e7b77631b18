/* test-cache.c: FlCache, the console's local cache of a profile. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "fl-cache.h"

/* ---- waiting for results ----------------------------------------------- */

static void
result_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **slot = user_data;

  g_assert_null (*slot);
  *slot = g_object_ref (result);
}

static GAsyncResult *
wait_for (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);

  return *slot;
}

static FlCache *
open_cache (const char *path,
            GError    **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_cache_open_async (path, NULL, result_cb, &result);
  return fl_cache_open_finish (wait_for (&result), error);
}

static GPtrArray *
load_devices (FlCache *cache)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  GPtrArray               *devices;

  fl_cache_load_devices_async (cache, NULL, result_cb, &result);
  devices = fl_cache_load_devices_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (devices);

  return devices;
}

static void
save_devices (FlCache   *cache,
              GPtrArray *devices)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  fl_cache_save_devices_async (cache, devices, NULL, result_cb, &result);
  g_assert_true (fl_cache_save_devices_finish (cache, wait_for (&result), &error));
  g_assert_no_error (error);
}

static void
add_events (FlCache   *cache,
            GPtrArray *events)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  fl_cache_add_events_async (cache, events, NULL, result_cb, &result);
  g_assert_true (fl_cache_add_events_finish (cache, wait_for (&result), &error));
  g_assert_no_error (error);
}

static GPtrArray *
load_events (FlCache    *cache,
             const char *device_id,
             guint       limit)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  GPtrArray               *events;

  fl_cache_load_events_async (cache, device_id, limit, NULL, result_cb, &result);
  events = fl_cache_load_events_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (events);

  return events;
}

static GArray *
load_points (FlCache    *cache,
             const char *device_id,
             const char *metric,
             gint64      from,
             gint64      to)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  GArray                  *points;

  fl_cache_load_points_async (cache, device_id, metric, from, to, NULL, result_cb, &result);
  points = fl_cache_load_points_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (points);

  return points;
}

static GStrv
list_metrics (FlCache    *cache,
              const char *device_id)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  GStrv                    metrics;

  fl_cache_list_metrics_async (cache, device_id, NULL, result_cb, &result);
  metrics = fl_cache_list_metrics_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (metrics);

  return metrics;
}

/* ---- fixtures ---------------------------------------------------------- */

static char *
test_path (void)
{
  /* G_TEST_OPTION_ISOLATE_DIRS: a fresh XDG_DATA_HOME per test */
  return fl_cache_default_path ("test-profile");
}

/* A device as the relay describes it. */
static FlDevice *
make_device (const char *id,
             const char *extra)
{
  g_autofree char   *text = NULL;
  g_autoptr (GError) error = NULL;
  FlDevice          *device;

  text = g_strdup_printf ("{\"deviceId\":\"%s\",\"name\":\"Sensor %s\",\"type\":\"thermometer\",\"model\":\"TH-1\","
                          "\"manufacturer\":\"Acme\",\"firmware\":\"1.4.2\",\"status\":\"online\","
                          "\"lastSeen\":1700000000000,\"battery\":87,\"rssi\":-67.5,"
                          "\"location\":{\"lat\":52.52,\"lon\":13.4,\"alt\":34},"
                          "\"capabilities\":{\"metrics\":[\"temperature\"],\"commands\":[{\"name\":\"set_interval\","
                          "\"category\":\"configuration\",\"params\":{\"seconds\":{\"type\":\"integer\",\"min\":1,"
                          "\"max\":3600,\"required\":true}}}]},\"tags\":[\"site-a\",\"floor-2\"],"
                          "\"heartbeatTimeoutSec\":90,\"createdAt\":1690000000000,\"updatedAt\":1700000000000%s}",
                          id, id, extra != NULL ? extra : "");
  device = fl_device_deserialize (text, &error);
  g_assert_no_error (error);

  return device;
}

static FlDevice *make_device_printf (const char *format,
                                     ...) G_GNUC_PRINTF (1, 2);

static FlDevice *
make_device_printf (const char *format,
                    ...)
{
  g_autofree char *id = NULL;
  va_list          args;

  va_start (args, format);
  id = g_strdup_vprintf (format, args);
  va_end (args);

  return make_device (id, NULL);
}

static FlEvent *
make_event (const char *source,
            const char *id,
            gint64      timestamp,
            gint64      seq,
            const char *data)
{
  g_autofree char    *text = NULL;
  g_autoptr (GError)  error = NULL;
  FlEventParseOptions options = { 0 };
  FlEvent            *event;

  text = g_strdup_printf ("{\"id\":\"%s\",\"timestamp\":%" G_GINT64_FORMAT ",\"source\":\"%s\","
                          "\"type\":\"telemetry\",\"data\":%s}",
                          id, timestamp, source, data);
  event = fl_event_parse (text, strlen (text), &options, &error);
  g_assert_no_error (error);
  g_assert_nonnull (event);
  fl_event_set_seq (event, seq);
  fl_event_set_received_at (event, timestamp + 5);

  return event;
}

static void
assert_same_device (FlDevice *a,
                    FlDevice *b)
{
  g_autofree char *ta = fl_device_serialize (a);
  g_autofree char *tb = fl_device_serialize (b);

  g_assert_cmpstr (ta, ==, tb);
}

static GPtrArray *
numbered_events (const char *source,
                 guint       first,
                 guint       n,
                 gint64      t0)
{
  GPtrArray *events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

  for (guint i = first; i < first + n; i++)
    {
      g_autofree char *id = g_strdup_printf ("%s-e%05u", source, i);
      g_autofree char *data = g_strdup_printf ("{\"value\":%u,\"firmware\":\"1.0\"}", i);

      g_ptr_array_add (events, make_event (source, id, t0 + i * 1000, i + 1, data));
    }

  return events;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_default_path (void)
{
  g_autofree char    *path = fl_cache_default_path ("work");
  g_autofree char    *expected = g_build_filename (g_get_user_data_dir (), "fieldline", "profiles", "work",
                                                   "cache.db", NULL);
  g_autoptr (FlCache) cache = NULL;
  g_autoptr (GError)  error = NULL;

  g_assert_cmpstr (path, ==, expected);

  /* the folders are created on open */
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  cache = open_cache (path, &error);
  g_assert_no_error (error);
  g_assert_true (FL_IS_CACHE (cache));
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
}

static void
test_devices (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) first = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) second = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (FlDevice)  plain = fl_device_new ("a-plain");
  FlDevice             *mike;

  g_assert_nonnull (cache);

  /* an empty cache */
  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 0);
  g_clear_pointer (&loaded, g_ptr_array_unref);

  g_ptr_array_add (first, make_device ("zulu", NULL));
  g_ptr_array_add (first, make_device ("alpha", NULL));
  g_ptr_array_add (first, make_device ("mike", ",\"secretHash\":\"abcdef\""));
  save_devices (cache, first);

  /* upsert: mike changes, bravo and a bare device are new */
  mike = make_device ("mike", NULL);
  fl_device_set_status (mike, FL_DEVICE_STATUS_MAINTENANCE);
  fl_device_set_last_seen (mike, 1800000000000);
  g_ptr_array_add (second, mike);
  g_ptr_array_add (second, make_device ("bravo", NULL));
  g_ptr_array_add (second, g_object_ref (plain));
  save_devices (cache, second);

  /* a saved device may change afterwards: the cache holds its own copy */
  fl_device_set_status (mike, FL_DEVICE_STATUS_OFFLINE);

  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 5);
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 0)), ==, "a-plain");
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 1)), ==, "alpha");
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 2)), ==, "bravo");
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 3)), ==, "mike");
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 4)), ==, "zulu");

  /* every field survives, as the core serialises it */
  assert_same_device (g_ptr_array_index (loaded, 0), plain);
  assert_same_device (g_ptr_array_index (loaded, 1), g_ptr_array_index (first, 1));
  assert_same_device (g_ptr_array_index (loaded, 4), g_ptr_array_index (first, 0));
  g_assert_cmpint (fl_device_get_status (g_ptr_array_index (loaded, 3)), ==, FL_DEVICE_STATUS_MAINTENANCE);
  g_assert_cmpint (fl_device_get_last_seen (g_ptr_array_index (loaded, 3)), ==, 1800000000000);
  /* the replaced row has no secret hash any more */
  g_assert_null (fl_device_get_secret_hash (g_ptr_array_index (loaded, 3)));
  g_assert_cmpfloat (fl_device_get_battery (g_ptr_array_index (loaded, 1)), ==, 87);
  g_assert_cmpfloat (fl_device_get_rssi (g_ptr_array_index (loaded, 1)), ==, -67.5);
  g_assert_true (isnan (fl_device_get_battery (g_ptr_array_index (loaded, 0))));
  g_assert_true (fl_device_has_tag (g_ptr_array_index (loaded, 2), "floor-2"));
  g_assert_cmpuint (fl_device_get_heartbeat_timeout (g_ptr_array_index (loaded, 2)), ==, 90);
  g_assert_true (json_object_has_member (fl_device_get_capabilities (g_ptr_array_index (loaded, 2)), "commands"));
}

/* Devices the columns cannot rebuild (here: values the registration
 * rules refuse) are stored whole and still come back exactly. */
static void
test_devices_unusual (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (GString)   many_tags = g_string_new ("{\"deviceId\":\"tags\",\"tags\":[");
  g_autoptr (GError)    error = NULL;
  g_autofree char      *long_name = NULL;
  char                  name[201];

  for (guint i = 0; i < 40; i++)
    g_string_append_printf (many_tags, "%s\"t%u\"", i > 0 ? "," : "", i);
  g_string_append (many_tags, "]}");
  memset (name, 'n', 200);
  name[200] = '\0';
  long_name = g_strdup_printf ("{\"deviceId\":\"long\",\"name\":\"%s\",\"battery\":250,\"name2\":1}", name);

  g_ptr_array_add (devices, fl_device_deserialize (many_tags->str, &error));
  g_assert_no_error (error);
  g_ptr_array_add (devices, fl_device_deserialize (long_name, &error));
  g_assert_no_error (error);
  g_ptr_array_add (devices, fl_device_deserialize ("{\"deviceId\":\"quotes\",\"name\":\"a \\\"b\\\" \\\\ \\u00e9\"}", &error));
  g_assert_no_error (error);
  /* rules the columns' setters apply but the stored form does not: out of
   * range readings, no name */
  g_ptr_array_add (devices, fl_device_deserialize ("{\"deviceId\":\"odd\",\"name\":\"Odd\",\"battery\":250,\"rssi\":5}", &error));
  g_assert_no_error (error);
  g_ptr_array_add (devices, fl_device_deserialize ("{\"deviceId\":\"nameless\",\"name\":null}", &error));
  g_assert_no_error (error);
  save_devices (cache, devices);

  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 5);
  assert_same_device (g_ptr_array_index (loaded, 0), g_ptr_array_index (devices, 1));
  assert_same_device (g_ptr_array_index (loaded, 1), g_ptr_array_index (devices, 4));
  assert_same_device (g_ptr_array_index (loaded, 2), g_ptr_array_index (devices, 3));
  assert_same_device (g_ptr_array_index (loaded, 3), g_ptr_array_index (devices, 2));
  assert_same_device (g_ptr_array_index (loaded, 4), g_ptr_array_index (devices, 0));
  g_assert_cmpuint (g_strv_length ((GStrv) fl_device_get_tags (g_ptr_array_index (loaded, 4))), ==, 40);
  g_assert_cmpfloat (fl_device_get_battery (g_ptr_array_index (loaded, 0)), ==, 250);
  g_assert_cmpfloat (fl_device_get_battery (g_ptr_array_index (loaded, 2)), ==, 250);
  g_assert_cmpfloat (fl_device_get_rssi (g_ptr_array_index (loaded, 2)), ==, 5);
  g_assert_null (fl_device_get_name (g_ptr_array_index (loaded, 1)));
}

static void
test_events_limit (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GPtrArray) loaded = NULL;

  g_assert_nonnull (cache);
  fl_cache_set_limits (cache, 5, 1000);

  /* 12 events of dev-a, out of timestamp order, and 2 of dev-b */
  for (guint i = 0; i < 12; i++)
    {
      guint            k = (i * 7) % 12; /* a permutation of 0..11 */
      g_autofree char *id = g_strdup_printf ("a-%02u", k);

      g_ptr_array_add (events, make_event ("dev-a", id, 1000 + k * 10, 100 + k, "{\"temperature\":20}"));
    }
  g_ptr_array_add (events, make_event ("dev-b", "b-1", 5, 1, "{}"));
  g_ptr_array_add (events, make_event ("dev-b", "b-2", 6, 2, "{}"));
  add_events (cache, events);

  /* the 5 newest, newest first, with their seq and receivedAt */
  loaded = load_events (cache, "dev-a", 0);
  g_assert_cmpuint (loaded->len, ==, 5);
  for (guint i = 0; i < 5; i++)
    {
      FlEvent         *event = g_ptr_array_index (loaded, i);
      g_autofree char *id = g_strdup_printf ("a-%02u", 11 - i);

      g_assert_cmpstr (fl_event_get_id (event), ==, id);
      g_assert_cmpint (fl_event_get_timestamp (event), ==, 1000 + (11 - i) * 10);
      g_assert_cmpint (fl_event_get_seq (event), ==, 100 + 11 - i);
      g_assert_cmpint (fl_event_get_received_at (event), ==, 1000 + (11 - i) * 10 + 5);
      g_assert_cmpstr (fl_event_get_source (event), ==, "dev-a");
    }
  g_clear_pointer (&loaded, g_ptr_array_unref);

  loaded = load_events (cache, "dev-a", 2);
  g_assert_cmpuint (loaded->len, ==, 2);
  g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (loaded, 0)), ==, "a-11");
  g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (loaded, 1)), ==, "a-10");
  g_clear_pointer (&loaded, g_ptr_array_unref);

  loaded = load_events (cache, "dev-b", 0);
  g_assert_cmpuint (loaded->len, ==, 2);
  g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (loaded, 0)), ==, "b-2");
  g_clear_pointer (&loaded, g_ptr_array_unref);

  loaded = load_events (cache, "nobody", 0);
  g_assert_cmpuint (loaded->len, ==, 0);
  g_clear_pointer (&loaded, g_ptr_array_unref);

  /* many more, in several calls: still the newest 5 */
  for (guint round = 0; round < 4; round++)
    {
      g_autoptr (GPtrArray) more = numbered_events ("dev-a", 100 + round * 10, 10, 100000);

      add_events (cache, more);
    }
  loaded = load_events (cache, "dev-a", 100);
  g_assert_cmpuint (loaded->len, ==, 5);
  g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (loaded, 0)), ==, "dev-a-e00139");
  g_assert_cmpstr (fl_event_get_id (g_ptr_array_index (loaded, 4)), ==, "dev-a-e00135");
  g_clear_pointer (&loaded, g_ptr_array_unref);

  /* a higher limit does not bring back what was dropped */
  fl_cache_set_limits (cache, 1000, 1000);
  loaded = load_events (cache, "dev-a", 0);
  g_assert_cmpuint (loaded->len, >=, 5);
  g_assert_cmpuint (loaded->len, <, 12);
}

static void
test_events_duplicates (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) events = numbered_events ("dev", 0, 10, 0);
  g_autoptr (GPtrArray) overlap = numbered_events ("dev", 5, 10, 0);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (GArray)    points = NULL;

  add_events (cache, events);
  add_events (cache, overlap); /* a replay: 5 seen, 5 new */

  loaded = load_events (cache, "dev", 0);
  g_assert_cmpuint (loaded->len, ==, 15);
  points = load_points (cache, "dev", "value", G_MININT64, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 15);
  for (guint i = 0; i < 15; i++)
    g_assert_cmpfloat (g_array_index (points, FlPoint, i).v, ==, i);
}

static void
test_points (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GArray)    points = NULL;
  g_auto (GStrv)        metrics = NULL;

  /* out of order; numbers (integers too) are metrics, the rest is not */
  g_ptr_array_add (events, make_event ("d1", "e3", 3000, 3, "{\"temp\":23.5,\"hum\":40,\"firmware\":\"1.0\",\"ok\":true}"));
  g_ptr_array_add (events, make_event ("d1", "e1", 1000, 1, "{\"temp\":21.5,\"hum\":41,\"nested\":{\"x\":1},\"list\":[1,2]}"));
  g_ptr_array_add (events, make_event ("d1", "e2", 2000, 2, "{\"temp\":-22,\"note\":\"hi\",\"none\":null}"));
  g_ptr_array_add (events, make_event ("d1", "e4", 4000, 4, "{\"temp\":24.25}"));
  g_ptr_array_add (events, make_event ("d2", "f1", 1000, 5, "{\"temp\":99}"));
  add_events (cache, events);

  metrics = list_metrics (cache, "d1");
  g_assert_cmpuint (g_strv_length (metrics), ==, 2);
  g_assert_cmpstr (metrics[0], ==, "hum");
  g_assert_cmpstr (metrics[1], ==, "temp");
  g_clear_pointer (&metrics, g_strfreev);
  metrics = list_metrics (cache, "nobody");
  g_assert_cmpuint (g_strv_length (metrics), ==, 0);

  points = load_points (cache, "d1", "temp", 0, 10000);
  g_assert_cmpuint (points->len, ==, 4);
  g_assert_cmpint (g_array_index (points, FlPoint, 0).t, ==, 1000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, 21.5);
  g_assert_cmpint (g_array_index (points, FlPoint, 1).t, ==, 2000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 1).v, ==, -22);
  g_assert_cmpint (g_array_index (points, FlPoint, 2).t, ==, 3000);
  g_assert_cmpint (g_array_index (points, FlPoint, 3).t, ==, 4000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 3).v, ==, 24.25);
  g_clear_pointer (&points, g_array_unref);

  /* [from, to) */
  points = load_points (cache, "d1", "temp", 2000, 4000);
  g_assert_cmpuint (points->len, ==, 2);
  g_assert_cmpint (g_array_index (points, FlPoint, 0).t, ==, 2000);
  g_assert_cmpint (g_array_index (points, FlPoint, 1).t, ==, 3000);
  g_clear_pointer (&points, g_array_unref);

  points = load_points (cache, "d1", "temp", 2001, 3000);
  g_assert_cmpuint (points->len, ==, 0);
  g_clear_pointer (&points, g_array_unref);

  points = load_points (cache, "d1", "hum", 0, 10000);
  g_assert_cmpuint (points->len, ==, 2);
  g_clear_pointer (&points, g_array_unref);

  points = load_points (cache, "d1", "firmware", 0, 10000);
  g_assert_cmpuint (points->len, ==, 0);
  g_clear_pointer (&points, g_array_unref);

  points = load_points (cache, "d2", "temp", 0, 10000);
  g_assert_cmpuint (points->len, ==, 1);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, 99);
}

/* The limit keeps the newest points even among equal timestamps. */
static void
test_points_limit_ties (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  const gint64          times[] = { 1, 2, 2, 2, 3 };

  g_assert_nonnull (cache);
  fl_cache_set_limits (cache, 100, 3);
  for (guint i = 0; i < G_N_ELEMENTS (times); i++)
    {
      g_autofree char *id = g_strdup_printf ("e%u", i);

      g_ptr_array_add (events, make_event ("dev", id, times[i], i + 1, "{\"x\":7}"));
    }
  add_events (cache, events);

  for (guint round = 0; round < 2; round++)
    {
      g_autoptr (GArray) points = load_points (cache, "dev", "x", G_MININT64, G_MAXINT64);
      g_autoptr (GArray) later = load_points (cache, "dev", "x", 2, 3);

      g_assert_cmpuint (points->len, ==, 3);
      g_assert_cmpint (g_array_index (points, FlPoint, 0).t, ==, 2);
      g_assert_cmpint (g_array_index (points, FlPoint, 1).t, ==, 2);
      g_assert_cmpint (g_array_index (points, FlPoint, 2).t, ==, 3);
      g_assert_cmpuint (later->len, ==, 2);

      /* the same from chunks */
      fl_cache_close (cache);
      g_clear_object (&cache);
      cache = open_cache (path, NULL);
      g_assert_nonnull (cache);
      fl_cache_set_limits (cache, 100, 3);
    }
}

/* Whole chunks, small chunks extended on the next flush, late data, and
 * the limit; across several closes (each one flushes).  Chunks hold up
 * to 1,024 points; one of fewer than 128 takes the next points. */
static void
test_points_chunks (void)
{
  g_autofree char    *path = test_path ();
  g_autoptr (FlCache) cache = NULL;
  g_autoptr (GArray)  points = NULL;
  const guint         rounds[] = { 1100, 150, 100, 100 }; /* 1024 + 76; 226; 100; 200 */
  guint               n_expected = 0;

  for (guint round = 0; round < G_N_ELEMENTS (rounds); round++)
    {
      g_autoptr (GPtrArray) events = NULL;

      cache = open_cache (path, NULL);
      g_assert_nonnull (cache);

      events = numbered_events ("dev", n_expected, rounds[round], 1000000);
      add_events (cache, events);
      n_expected += events->len;

      points = load_points (cache, "dev", "value", G_MININT64, G_MAXINT64);
      g_assert_cmpuint (points->len, ==, n_expected);
      for (guint i = 0; i < points->len; i++)
        {
          g_assert_cmpint (g_array_index (points, FlPoint, i).t, ==, 1000000 + i * 1000);
          g_assert_cmpfloat (g_array_index (points, FlPoint, i).v, ==, i);
        }
      g_clear_pointer (&points, g_array_unref);

      fl_cache_close (cache);
      g_clear_object (&cache);
    }

  cache = open_cache (path, NULL);
  g_assert_nonnull (cache);

  /* a range inside and across chunks */
  points = load_points (cache, "dev", "value", 1000000 + 500 * 1000, 1000000 + 1400 * 1000);
  g_assert_cmpuint (points->len, ==, 900);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, 500);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 899).v, ==, 1399);
  g_clear_pointer (&points, g_array_unref);

  /* late points, older than all the chunks */
  {
    g_autoptr (GPtrArray) late = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

    g_ptr_array_add (late, make_event ("dev", "late-1", 500, 1, "{\"value\":-1}"));
    g_ptr_array_add (late, make_event ("dev", "late-2", 999999 + 100 * 1000, 2, "{\"value\":-2}"));
    add_events (cache, late);
  }
  points = load_points (cache, "dev", "value", G_MININT64, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, n_expected + 2);
  g_assert_cmpint (g_array_index (points, FlPoint, 0).t, ==, 500);
  for (guint i = 1; i < points->len; i++)
    g_assert_cmpint (g_array_index (points, FlPoint, i).t, >, g_array_index (points, FlPoint, i - 1).t);
  g_clear_pointer (&points, g_array_unref);

  /* a lower limit hides the oldest at once: the newest 1000 stay */
  fl_cache_set_limits (cache, 200, 1000);
  points = load_points (cache, "dev", "value", G_MININT64, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 1000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 999).v, ==, n_expected - 1);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, n_expected - 1000);
  g_clear_pointer (&points, g_array_unref);

  /* and after a close (which drops whole chunks) and reopen with the
   * same limit, the same 1000 */
  fl_cache_close (cache);
  g_clear_object (&cache);
  cache = open_cache (path, NULL);
  g_assert_nonnull (cache);
  fl_cache_set_limits (cache, 200, 1000);
  points = load_points (cache, "dev", "value", G_MININT64, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 1000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, n_expected - 1000);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 999).v, ==, n_expected - 1);
  g_clear_pointer (&points, g_array_unref);

  /* chunks of hidden points only are gone from the file (here the one
   * of the late points) */
  fl_cache_close (cache);
  {
    sqlite3      *db = NULL;
    sqlite3_stmt *stmt = NULL;

    g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT sum(n) FROM chunks", -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    g_assert_cmpint (sqlite3_column_int64 (stmt, 0), <, n_expected + 2);
    g_assert_cmpint (sqlite3_column_int64 (stmt, 0), >=, 1000);
    sqlite3_finalize (stmt);
    /* close moved every staged point */
    g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM staging", -1, &stmt, NULL), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
    g_assert_cmpint (sqlite3_column_int64 (stmt, 0), ==, 0);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
  }
}

/* More than the in-memory threshold: the worker compacts while open, and
 * the limit holds (points in memory and in chunks). */
static void
test_points_compaction (void)
{
  g_autofree char    *path = test_path ();
  g_autoptr (FlCache) cache = open_cache (path, NULL);
  const guint         n_devices = 20, per_device = 6000;
  g_autoptr (GArray)  points = NULL;
  sqlite3            *db = NULL;
  sqlite3_stmt       *stmt = NULL;

  g_assert_nonnull (cache);
  fl_cache_set_limits (cache, 10, 5500);

  for (guint i = 0; i < per_device; i += 100)
    {
      g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

      for (guint j = i; j < i + 100; j++)
        for (guint d = 0; d < n_devices; d++)
          {
            g_autofree char *source = g_strdup_printf ("dev-%02u", d);
            g_autofree char *id = g_strdup_printf ("%u-%u", d, j);
            g_autofree char *data = g_strdup_printf ("{\"a\":%u,\"b\":%u,\"c\":1,\"d\":2,\"e\":3}", j, d);

            g_ptr_array_add (events, make_event (source, id, 1000 * j, j * n_devices + d + 1, data));
          }
      /* fire and forget, as the console does */
      fl_cache_add_events_async (cache, events, NULL, NULL, NULL);
    }

  /* 20 × 6000 × 5 = 600,000 points: more than one compaction's worth
   * (524,288) */
  points = load_points (cache, "dev-07", "a", G_MININT64, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 5500);
  for (guint i = 0; i < points->len; i++)
    g_assert_cmpfloat (g_array_index (points, FlPoint, i).v, ==, 500 + i);
  g_clear_pointer (&points, g_array_unref);
  points = load_points (cache, "dev-19", "b", 0, 1000 * 1000);
  g_assert_cmpuint (points->len, ==, 500);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, 19);
  g_assert_cmpint (g_array_index (points, FlPoint, 0).t, ==, 500 * 1000);
  g_clear_pointer (&points, g_array_unref);

  /* the compaction happened while open: points are in chunks */
  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM chunks", -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int64 (stmt, 0), >, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
}

/* Points not yet compacted are durable: a copy of the files taken while
 * the cache is open (as after a crash) has them. */
static void
test_points_after_crash (void)
{
  g_autofree char      *path = test_path ();
  g_autofree char      *copy = g_strconcat (path, "-copy.db", NULL);
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (FlCache)   recovered = NULL;
  g_autoptr (GPtrArray) events = numbered_events ("dev", 0, 300, 0);
  g_autoptr (GArray)    points = NULL;
  const char           *suffixes[] = { "", "-wal" };

  add_events (cache, events);
  fl_cache_set_last_seq (cache, 300);
  {
    /* a read after the write: the write is committed */
    g_autoptr (GArray) before = load_points (cache, "dev", "value", 0, G_MAXINT64);
    g_assert_cmpuint (before->len, ==, 300);
  }

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *from = g_strconcat (path, suffixes[i], NULL);
      g_autofree char *to = g_strconcat (copy, suffixes[i], NULL);
      g_autofree char *contents = NULL;
      gsize            length;

      g_assert_true (g_file_get_contents (from, &contents, &length, NULL));
      g_assert_true (g_file_set_contents (to, contents, length, NULL));
    }

  recovered = open_cache (copy, NULL);
  g_assert_nonnull (recovered);
  g_assert_cmpint (fl_cache_get_last_seq (recovered), ==, 300);
  points = load_points (recovered, "dev", "value", 0, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 300);
  g_assert_cmpfloat (g_array_index (points, FlPoint, 299).v, ==, 299);
}

static void
delete_devices (FlCache           *cache,
                const char *const *ids)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (GPtrArray)    array = g_ptr_array_new ();

  for (guint i = 0; ids[i] != NULL; i++)
    g_ptr_array_add (array, (gpointer) ids[i]);
  fl_cache_delete_devices_async (cache, array, NULL, result_cb, &result);
  g_assert_true (fl_cache_delete_devices_finish (cache, wait_for (&result), &error));
  g_assert_no_error (error);
}

/* Devices gone from the server go from the cache with their history; a
 * device of the same id coming back starts afresh, across a reopen too
 * (the staged points of the old one are not recovered). */
static void
test_delete_devices (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (GPtrArray) events_a = numbered_events ("dev-a", 0, 300, 0);
  g_autoptr (GPtrArray) events_b = numbered_events ("dev-b", 0, 300, 0);
  g_autoptr (GPtrArray) again_b = numbered_events ("dev-b", 1000, 10, 0);
  const char           *gone[] = { "dev-b", "dev-unknown", NULL };

  g_ptr_array_add (devices, make_device ("dev-a", NULL));
  g_ptr_array_add (devices, make_device ("dev-b", NULL));
  g_ptr_array_add (devices, make_device ("dev-c", NULL));
  save_devices (cache, devices);
  add_events (cache, events_a);
  add_events (cache, events_b);

  delete_devices (cache, gone);

  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 2);
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 0)), ==, "dev-a");
  g_assert_cmpstr (fl_device_get_device_id (g_ptr_array_index (loaded, 1)), ==, "dev-c");
  {
    g_autoptr (GPtrArray) events = load_events (cache, "dev-b", 0);
    g_autoptr (GArray)    points = load_points (cache, "dev-b", "value", 0, G_MAXINT64);
    g_auto (GStrv)        metrics = list_metrics (cache, "dev-b");
    g_autoptr (GArray)    kept = load_points (cache, "dev-a", "value", 0, G_MAXINT64);

    g_assert_cmpuint (events->len, ==, 0);
    g_assert_cmpuint (points->len, ==, 0);
    g_assert_cmpuint (g_strv_length (metrics), ==, 0);
    g_assert_cmpuint (kept->len, ==, 300);
  }

  /* it comes back: only what came since */
  add_events (cache, again_b);
  {
    g_autoptr (GArray) points = load_points (cache, "dev-b", "value", 0, G_MAXINT64);

    g_assert_cmpuint (points->len, ==, 10);
    g_assert_cmpfloat (g_array_index (points, FlPoint, 0).v, ==, 1000);
  }

  fl_cache_close (cache);
  g_clear_object (&cache);
  cache = open_cache (path, NULL);
  {
    g_autoptr (GArray)    points = load_points (cache, "dev-b", "value", 0, G_MAXINT64);
    g_autoptr (GArray)    kept = load_points (cache, "dev-a", "value", 0, G_MAXINT64);
    g_autoptr (GPtrArray) events = load_events (cache, "dev-b", 0);

    g_assert_cmpuint (points->len, ==, 10);
    g_assert_cmpuint (kept->len, ==, 300);
    g_assert_cmpuint (events->len, ==, 10);
  }
}

static gint64
query_int (sqlite3    *db,
           const char *sql,
           gint64      arg)
{
  sqlite3_stmt *stmt = NULL;
  gint64        value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  sqlite3_bind_int64 (stmt, 1, arg);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);

  return value;
}

/* A snapshot taken while a compaction moves points into chunks, series
 * by series (as the file is after a crash then), has every point once. */
static void
test_points_crash_while_compacting (void)
{
  g_autofree char    *path = test_path ();
  g_autofree char    *copy = g_strconcat (path, "-snapshot.db", NULL);
  g_autoptr (FlCache) cache = open_cache (path, NULL);
  g_autoptr (FlCache) recovered = NULL;
  const guint         n_devices = 1000, per_round = 150;
  const gint64        n_series = n_devices * 5;
  sqlite3            *live = NULL;
  gint64              caught = 0;
  guint               sent = 0, n = 0;

  g_assert_nonnull (cache);
  fl_cache_set_limits (cache, 5, 100000);
  g_assert_cmpint (sqlite3_open_v2 (path, &live, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);

  /* Rounds of 1,000 devices × 5 metrics × 150 events = 750,000 points: a
   * compaction of 5,000 series starts after 524,288 staged and takes many
   * steps.  Watch for its first chunks, then snapshot at once; try again
   * if the snapshot missed it. */
  for (guint round = 0; round < 3 && caught == 0; round++)
    {
      g_autoptr (GPtrArray) calls = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
      gint64                first_t = 1000 * (gint64) sent;
      gint64                partly;

      /* made first, then sent at once: the compaction then runs while
       * this thread watches, however slow making events is */
      for (guint i = 0; i < per_round; i++, sent++)
        {
          GPtrArray *events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

          for (guint d = 0; d < n_devices; d++)
            {
              g_autofree char *source = g_strdup_printf ("dev-%04u", d);
              g_autofree char *id = g_strdup_printf ("%u-%u", d, sent);
              g_autofree char *data = g_strdup_printf ("{\"a\":%u,\"b\":%u,\"c\":%u,\"d\":%u,\"e\":%u}",
                                                       sent, sent, sent, sent, sent);

              g_ptr_array_add (events, make_event (source, id, 1000 * (gint64) sent, sent * n_devices + d + 1, data));
            }
          g_ptr_array_add (calls, events);
        }
      for (guint i = 0; i < calls->len; i++)
        fl_cache_add_events_async (cache, g_ptr_array_index (calls, i), NULL, NULL, NULL);

      /* an online backup is a consistent snapshot */
      while (query_int (live, "SELECT count(*) FROM chunks WHERE t1 >= ?1", first_t) == 0)
        {
          while (g_main_context_iteration (NULL, FALSE))
            ;
          g_usleep (500);
        }
      {
        sqlite3        *to = NULL;
        sqlite3_backup *backup;

        g_assert_cmpint (sqlite3_open (copy, &to), ==, SQLITE_OK);
        backup = sqlite3_backup_init (to, "main", live, "main");
        g_assert_nonnull (backup);
        g_assert_cmpint (sqlite3_backup_step (backup, -1), ==, SQLITE_DONE);
        g_assert_cmpint (sqlite3_backup_finish (backup), ==, SQLITE_OK);
        partly = query_int (to, "SELECT count(*) FROM (SELECT series FROM chunks GROUP BY series HAVING max(t1) >= ?1)",
                            first_t);
        sqlite3_close (to);
      }
      g_test_message ("round %u: the snapshot has %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " series compacted",
                      round, partly, n_series);
      if (partly > 0 && partly < n_series)
        caught = partly;
    }
  sqlite3_close (live);
  /* the snapshot caught a compaction halfway */
  g_assert_cmpint (caught, >, 0);

  /* In the snapshot every series has the same points, once, in order: as
   * many as the calls it holds (each call commits whole). */
  recovered = open_cache (copy, NULL);
  g_assert_nonnull (recovered);
  fl_cache_set_limits (recovered, 5, 100000);
  for (guint d = 0; d < n_devices; d += 3)
    {
      g_autofree char *source = g_strdup_printf ("dev-%04u", d);
      const char      *metrics[] = { "a", "e" };

      for (guint m = 0; m < G_N_ELEMENTS (metrics); m++)
        {
          g_autoptr (GArray) points = load_points (recovered, source, metrics[m], G_MININT64, G_MAXINT64);

          if (n == 0)
            n = points->len;
          g_assert_cmpuint (points->len, ==, n);
          for (guint i = 0; i < points->len; i++)
            {
              g_assert_cmpint (g_array_index (points, FlPoint, i).t, ==, 1000 * (gint64) i);
              g_assert_cmpfloat (g_array_index (points, FlPoint, i).v, ==, i);
            }
        }
    }
  g_assert_cmpuint (n, >, 0);
  g_assert_cmpuint (n, <=, sent);

  /* and once the snapshot compacts (on close), still once each, and the
   * staging rows are gone */
  fl_cache_close (recovered);
  g_clear_object (&recovered);
  recovered = open_cache (copy, NULL);
  g_assert_nonnull (recovered);
  {
    g_autoptr (GArray) points = load_points (recovered, "dev-0999", "c", G_MININT64, G_MAXINT64);

    g_assert_cmpuint (points->len, ==, n);
  }
  fl_cache_close (recovered);
  g_assert_cmpint (sqlite3_open_v2 (copy, &live, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (query_int (live, "SELECT count(*) FROM staging WHERE id > ?1", -1), ==, 0);
  sqlite3_close (live);
}

static void
test_reopen (void)
{
  g_autofree char      *path = test_path ();
  g_autoptr (FlCache)   cache = open_cache (path, NULL);
  g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray) events = numbered_events ("alpha", 0, 20, 5000);
  g_autoptr (GPtrArray) loaded = NULL;
  g_autoptr (GArray)    points = NULL;
  g_auto (GStrv)        metrics = NULL;

  g_assert_nonnull (cache);
  g_assert_cmpint (fl_cache_get_last_seq (cache), ==, 0);
  g_assert_cmpint (fl_cache_get_last_sync (cache), ==, 0);

  g_ptr_array_add (devices, make_device ("alpha", NULL));
  g_ptr_array_add (devices, make_device ("beta", NULL));
  /* fire and forget, then close: close waits for them */
  fl_cache_save_devices_async (cache, devices, NULL, NULL, NULL);
  fl_cache_add_events_async (cache, events, NULL, NULL, NULL);
  fl_cache_set_last_seq (cache, 4242);
  fl_cache_set_last_sync (cache, 1700000000123);
  g_assert_cmpint (fl_cache_get_last_seq (cache), ==, 4242);
  g_assert_cmpint (fl_cache_get_last_sync (cache), ==, 1700000000123);
  fl_cache_close (cache);
  g_clear_object (&cache);

  cache = open_cache (path, NULL);
  g_assert_nonnull (cache);
  /* at once, before any other call */
  g_assert_cmpint (fl_cache_get_last_seq (cache), ==, 4242);
  g_assert_cmpint (fl_cache_get_last_sync (cache), ==, 1700000000123);

  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 2);
  assert_same_device (g_ptr_array_index (loaded, 0), g_ptr_array_index (devices, 0));
  assert_same_device (g_ptr_array_index (loaded, 1), g_ptr_array_index (devices, 1));
  g_clear_pointer (&loaded, g_ptr_array_unref);

  loaded = load_events (cache, "alpha", 0);
  g_assert_cmpuint (loaded->len, ==, 20);
  g_assert_cmpstr (fl_event_get_json (g_ptr_array_index (loaded, 0)), ==,
                   fl_event_get_json (g_ptr_array_index (events, 19)));

  points = load_points (cache, "alpha", "value", 0, G_MAXINT64);
  g_assert_cmpuint (points->len, ==, 20);
  g_assert_cmpint (g_array_index (points, FlPoint, 19).t, ==, 5000 + 19 * 1000);

  metrics = list_metrics (cache, "alpha");
  g_assert_cmpstrv (metrics, ((const char *[]){ "value", NULL }));

  /* and again, once more */
  fl_cache_set_last_seq (cache, 4243);
  fl_cache_close (cache);
  g_clear_object (&cache);
  cache = open_cache (path, NULL);
  g_assert_nonnull (cache);
  g_assert_cmpint (fl_cache_get_last_seq (cache), ==, 4243);
  g_assert_cmpint (fl_cache_get_last_sync (cache), ==, 1700000000123);
}

static void
assert_open_fails (const char *path,
                   int         code)
{
  g_autoptr (GError)  error = NULL;
  g_autoptr (FlCache) cache = open_cache (path, &error);

  g_assert_null (cache);
  g_assert_error (error, FL_CACHE_ERROR, code);
  g_assert_nonnull (strstr (error->message, path));
}

static void
sql (const char *path,
     const char *statements)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, statements, NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
}

static void
test_bad_files (void)
{
  g_autofree char    *dir = g_build_filename (g_get_user_data_dir (), "bad", NULL);
  g_autofree char    *garbage = g_build_filename (dir, "garbage.db", NULL);
  g_autofree char    *foreign = g_build_filename (dir, "foreign.db", NULL);
  g_autofree char    *newer = g_build_filename (dir, "newer.db", NULL);
  g_autofree char    *damaged = g_build_filename (dir, "damaged.db", NULL);
  g_autofree char    *contents = NULL;
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GError)  error = NULL;
  gsize               length;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);

  /* not a database */
  for (guint i = 0; i < 500; i++)
    g_string_append (text, "This is not an SQLite database. ");
  g_assert_true (g_file_set_contents (garbage, text->str, text->len, NULL));
  assert_open_fails (garbage, FL_CACHE_ERROR_CORRUPT);

  /* another program's database is left alone */
  sql (foreign, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');");
  assert_open_fails (foreign, FL_CACHE_ERROR_FOREIGN);
  g_assert_true (g_file_get_contents (foreign, &contents, &length, NULL));
  g_assert_null (g_strstr_len (contents, length, "CREATE TABLE devices"));
  g_clear_pointer (&contents, g_free);

  /* a cache from the future */
  {
    g_autoptr (FlCache) cache = open_cache (newer, NULL);

    g_assert_nonnull (cache);
    fl_cache_close (cache);
  }
  sql (newer, "PRAGMA user_version = 99");
  assert_open_fails (newer, FL_CACHE_ERROR_VERSION);

  /* a cache whose pages after the first were overwritten */
  {
    g_autoptr (FlCache)      cache = open_cache (damaged, NULL);
    g_autoptr (GPtrArray)    devices = g_ptr_array_new_with_free_func (g_object_unref);
    g_autoptr (GAsyncResult) result = NULL;
    g_autoptr (GPtrArray)    loaded = NULL;

    for (guint i = 0; i < 200; i++)
      g_ptr_array_add (devices, make_device_printf ("d%03u", i));
    save_devices (cache, devices);
    fl_cache_close (cache);
    g_clear_object (&cache);

    g_assert_true (g_file_get_contents (damaged, &contents, &length, NULL));
    g_assert_cmpuint (length, >, 8192);
    memset (contents + 4096, 0x5a, length - 4096);
    g_assert_true (g_file_set_contents (damaged, contents, length, NULL));

    cache = open_cache (damaged, &error);
    if (cache != NULL)
      {
        fl_cache_load_devices_async (cache, NULL, result_cb, &result);
        loaded = fl_cache_load_devices_finish (cache, wait_for (&result), &error);
        g_assert_null (loaded);
      }
    g_assert_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT);
  }
}

static void
test_cancel (void)
{
  g_autofree char         *path = test_path ();
  g_autoptr (FlCache)      cache = open_cache (path, NULL);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GPtrArray)    devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray)    many = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GAsyncResult) save_result = NULL;
  g_autoptr (GAsyncResult) big_result = NULL;
  g_autoptr (GAsyncResult) load_result = NULL;
  g_autoptr (GAsyncResult) events_result = NULL;
  g_autoptr (GPtrArray)    loaded = NULL;
  g_autoptr (GError)       error = NULL;

  g_assert_nonnull (cache);

  /* a write cancelled before it runs is not applied */
  g_ptr_array_add (devices, make_device ("cancelled", NULL));
  g_cancellable_cancel (cancellable);
  fl_cache_save_devices_async (cache, devices, cancellable, result_cb, &save_result);
  g_assert_false (fl_cache_save_devices_finish (cache, wait_for (&save_result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 0);
  g_clear_pointer (&loaded, g_ptr_array_unref);

  /* a read cancelled while it waits behind a long write */
  g_clear_object (&cancellable);
  cancellable = g_cancellable_new ();
  for (guint i = 0; i < 3000; i++)
    g_ptr_array_add (many, make_device_printf ("d%05u", i));
  fl_cache_save_devices_async (cache, many, NULL, result_cb, &big_result);
  fl_cache_load_devices_async (cache, cancellable, result_cb, &load_result);
  fl_cache_load_events_async (cache, "d00001", 0, cancellable, result_cb, &events_result);
  g_cancellable_cancel (cancellable);

  g_assert_true (fl_cache_save_devices_finish (cache, wait_for (&big_result), &error));
  g_assert_no_error (error);
  g_assert_null (fl_cache_load_devices_finish (cache, wait_for (&load_result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (fl_cache_load_events_finish (cache, wait_for (&events_result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* the cache goes on */
  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 3000);
}

typedef struct
{
  GArray *order;
  guint   index;
} Call;

static void
ordered_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Call              *call = user_data;
  FlCache           *cache = FL_CACHE (source);
  g_autoptr (GError) error = NULL;
  GPtrArray         *array = NULL;
  GArray            *points = NULL;

  g_array_append_val (call->order, call->index);

  /* every read sees the writes made before it */
  if (g_task_get_source_tag (G_TASK (result)) == fl_cache_load_devices_async)
    {
      array = fl_cache_load_devices_finish (cache, result, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (array->len, ==, call->index / 4 + 1);
      g_ptr_array_unref (array);
    }
  else if (g_task_get_source_tag (G_TASK (result)) == fl_cache_load_points_async)
    {
      points = fl_cache_load_points_finish (cache, result, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (points->len, ==, call->index / 4 + 1);
      g_array_unref (points);
    }
  else if (g_task_get_source_tag (G_TASK (result)) == fl_cache_save_devices_async)
    g_assert_true (fl_cache_save_devices_finish (cache, result, &error));
  else
    g_assert_true (fl_cache_add_events_finish (cache, result, &error));
  g_assert_no_error (error);
}

static void
test_order (void)
{
  g_autofree char    *path = test_path ();
  g_autoptr (FlCache) cache = open_cache (path, NULL);
  g_autoptr (GArray)  order = g_array_new (FALSE, FALSE, sizeof (guint));
  const guint         n_rounds = 50;
  Call                calls[4 * 50];

  g_assert_nonnull (cache);

  /* writes and reads interleaved, all issued at once */
  for (guint round = 0; round < n_rounds; round++)
    {
      g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);
      g_autoptr (GPtrArray) events = numbered_events ("dev", round, 1, 0);

      for (guint k = 0; k < 4; k++)
        calls[round * 4 + k] = (Call){ order, round * 4 + k };
      g_ptr_array_add (devices, make_device_printf ("d%03u", round));
      /* two writes in a row (they share a transaction), two reads */
      fl_cache_save_devices_async (cache, devices, NULL, ordered_cb, &calls[round * 4]);
      fl_cache_add_events_async (cache, events, NULL, ordered_cb, &calls[round * 4 + 1]);
      fl_cache_load_devices_async (cache, NULL, ordered_cb, &calls[round * 4 + 2]);
      fl_cache_load_points_async (cache, "dev", "value", G_MININT64, G_MAXINT64, NULL, ordered_cb,
                                  &calls[round * 4 + 3]);
    }

  while (order->len < 4 * n_rounds)
    g_main_context_iteration (NULL, TRUE);
  for (guint i = 0; i < order->len; i++)
    g_assert_cmpuint (g_array_index (order, guint, i), ==, i);
}

static void
context_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GMainContext        **context = user_data;
  g_autoptr (GPtrArray) devices = fl_cache_load_devices_finish (FL_CACHE (source), result, NULL);

  g_assert_nonnull (devices);
  *context = g_main_context_ref_thread_default ();
}

static void
test_main_context (void)
{
  g_autofree char         *path = test_path ();
  g_autoptr (FlCache)      cache = open_cache (path, NULL);
  g_autoptr (GMainContext) context = g_main_context_new ();
  g_autoptr (GMainContext) seen = NULL;
  g_autoptr (GPtrArray)    devices = NULL;

  g_assert_nonnull (cache);

  g_main_context_push_thread_default (context);
  fl_cache_load_devices_async (cache, NULL, context_cb, &seen);
  g_main_context_pop_thread_default (context);

  /* a later call on the default context completes first, and the first
   * one has not run there */
  devices = load_devices (cache);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_null (seen);

  while (seen == NULL)
    g_main_context_iteration (context, TRUE);
  g_assert_true (seen == context);
}

static void
test_closed (void)
{
  g_autofree char         *path = test_path ();
  g_autoptr (FlCache)      cache = open_cache (path, NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  g_assert_nonnull (cache);
  fl_cache_close (cache);
  fl_cache_close (cache); /* twice is fine */

  fl_cache_load_devices_async (cache, NULL, result_cb, &result);
  g_assert_null (fl_cache_load_devices_finish (cache, wait_for (&result), &error));
  g_assert_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CLOSED);
}

/* The last reference can go while work is queued: the work still runs. */
static void
test_unref_with_pending (void)
{
  g_autofree char         *path = test_path ();
  FlCache                 *cache = open_cache (path, NULL);
  g_autoptr (GPtrArray)    devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GPtrArray)    loaded = NULL;
  g_autoptr (GAsyncResult) result = NULL;

  g_assert_nonnull (cache);
  for (guint i = 0; i < 500; i++)
    g_ptr_array_add (devices, make_device_printf ("d%03u", i));
  fl_cache_save_devices_async (cache, devices, NULL, result_cb, &result);
  g_object_unref (cache);
  wait_for (&result);
  g_clear_object (&result); /* the task held the last reference */

  cache = open_cache (path, NULL);
  g_assert_nonnull (cache);
  loaded = load_devices (cache);
  g_assert_cmpuint (loaded->len, ==, 500);
  g_object_unref (cache);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/fieldline/cache/default-path", test_default_path);
  g_test_add_func ("/fieldline/cache/devices", test_devices);
  g_test_add_func ("/fieldline/cache/devices-unusual", test_devices_unusual);
  g_test_add_func ("/fieldline/cache/events-limit", test_events_limit);
  g_test_add_func ("/fieldline/cache/events-duplicates", test_events_duplicates);
  g_test_add_func ("/fieldline/cache/points", test_points);
  g_test_add_func ("/fieldline/cache/points-limit-ties", test_points_limit_ties);
  g_test_add_func ("/fieldline/cache/points-chunks", test_points_chunks);
  g_test_add_func ("/fieldline/cache/points-compaction", test_points_compaction);
  g_test_add_func ("/fieldline/cache/points-after-crash", test_points_after_crash);
  g_test_add_func ("/fieldline/cache/points-crash-while-compacting", test_points_crash_while_compacting);
  g_test_add_func ("/fieldline/cache/delete-devices", test_delete_devices);
  g_test_add_func ("/fieldline/cache/reopen", test_reopen);
  g_test_add_func ("/fieldline/cache/bad-files", test_bad_files);
  g_test_add_func ("/fieldline/cache/cancel", test_cancel);
  g_test_add_func ("/fieldline/cache/order", test_order);
  g_test_add_func ("/fieldline/cache/main-context", test_main_context);
  g_test_add_func ("/fieldline/cache/closed", test_closed);
  g_test_add_func ("/fieldline/cache/unref-with-pending", test_unref_with_pending);

  return g_test_run ();
}
