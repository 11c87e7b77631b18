/* bench-cache.c: FlCache figures for the console's cold start and live
 * stream.
 *
 * Fill (this process): 100,000 devices as the relay describes them (six
 * kinds with their capabilities, site and floor tags, one in ten with a
 * tag of its own); 1,000,000 points of one series (one device, one
 * metric); then the live stream: 1,000 devices interleaved, random UUIDv4
 * event ids, five numeric fields per event, millions of events, as fast as
 * the cache takes them and then paced at 10,000 events/s.
 *
 * Measure (a fresh process, so its RSS is the console's): open, load the
 * 100,000 devices, load the 1,000,000-point series, VmRSS; once with the
 * file's pages dropped from the OS cache and once warm.
 *
 *   bench-cache [--devices N] [--hot-points N] [--stream-events N] [--keep DIR]
 */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <sqlite3.h>

#include "fl-cache.h"

static int   n_devices = 100000;
static int   n_hot_points = 1000000;
static int   n_stream_events = 3000000;
static int   stream_devices = 1000;
static char *keep_dir = NULL;
static char *measure_path = NULL;

static GOptionEntry entries[] = {
  { "devices", 0, 0, G_OPTION_ARG_INT, &n_devices, "Devices to fill", "N" },
  { "hot-points", 0, 0, G_OPTION_ARG_INT, &n_hot_points, "Points of the one big series", "N" },
  { "stream-events", 0, 0, G_OPTION_ARG_INT, &n_stream_events, "Events of the live stream", "N" },
  { "stream-devices", 0, 0, G_OPTION_ARG_INT, &stream_devices, "Devices of the live stream", "N" },
  { "keep", 0, 0, G_OPTION_ARG_FILENAME, &keep_dir, "Fill into DIR and keep it", "DIR" },
  { "measure", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &measure_path, NULL, NULL },
  { NULL },
};

/* ---- helpers ----------------------------------------------------------- */

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

/* CPU time of the whole process (all threads), ms; *system its kernel part */
static double
cpu_ms (double *system)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  if (system != NULL)
    *system = usage.ru_stime.tv_sec * 1e3 + usage.ru_stime.tv_usec / 1e3;
  return usage.ru_utime.tv_sec * 1e3 + usage.ru_utime.tv_usec / 1e3 + usage.ru_stime.tv_sec * 1e3 + usage.ru_stime.tv_usec / 1e3;
}

/* CPU time of the cache's worker thread (named "fl-cache"), ms */
static double
worker_cpu_ms (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  const char      *tid;
  double           total = 0;

  while (dir != NULL && (tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *comm_path = g_build_filename ("/proc/self/task", tid, "comm", NULL);
      g_autofree char *stat_path = g_build_filename ("/proc/self/task", tid, "stat", NULL);
      g_autofree char *comm = NULL;
      g_autofree char *stat = NULL;
      g_auto (GStrv)   fields = NULL;
      const char      *after;

      if (!g_file_get_contents (comm_path, &comm, NULL, NULL) || !g_str_has_prefix (comm, "fl-cache") || !g_file_get_contents (stat_path, &stat, NULL, NULL) || (after = strrchr (stat, ')')) == NULL)
        continue;
      /* after ") ": state is field 3; utime and stime are fields 14 and 15 */
      fields = g_strsplit (after + 2, " ", 0);
      if (g_strv_length (fields) > 13)
        total += (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) * 1000.0 / sysconf (_SC_CLK_TCK);
    }

  return total;
}

static long
vm_rss_kb (void)
{
  g_autofree char *status = NULL;
  const char      *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  line = strstr (status, "VmRSS:");

  return line != NULL ? strtol (line + 6, NULL, 10) : -1;
}

static void
result_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **slot = user_data;

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
open_cache (const char *path)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  FlCache                 *cache;

  fl_cache_open_async (path, NULL, result_cb, &result);
  cache = fl_cache_open_finish (wait_for (&result), &error);
  g_assert_no_error (error);

  return cache;
}

static void
uuid4 (char out[37])
{
  static const char hex[] = "0123456789abcdef";
  guint32           r[4] = { g_random_int (), g_random_int (), g_random_int (), g_random_int () };
  guint8           *b = (guint8 *) r;
  int               k = 0;

  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  for (int i = 0; i < 16; i++)
    {
      if (i == 4 || i == 6 || i == 8 || i == 10)
        out[k++] = '-';
      out[k++] = hex[b[i] >> 4];
      out[k++] = hex[b[i] & 15];
    }
  out[k] = '\0';
}

/* ---- the fleet --------------------------------------------------------- */

static const struct
{
  const char *type;
  const char *model;
  const char *manufacturer;
  const char *capabilities;
} kinds[] = {
  { "thermometer", "TH-1", "Acme",
    "{\"metrics\":[\"temperature\",\"humidity\",\"battery\"],\"commands\":[{\"name\":\"set_interval\","
    "\"category\":\"configuration\",\"params\":{\"seconds\":{\"type\":\"integer\",\"min\":1,\"max\":3600,"
    "\"required\":true}}}]}" },
  { "pump", "P-200", "Hydrotech",
    "{\"metrics\":[\"flow\",\"pressure\",\"rpm\"],\"commands\":[{\"name\":\"start\",\"category\":\"control\","
    "\"params\":{}},{\"name\":\"stop\",\"category\":\"control\",\"params\":{}},{\"name\":\"set_speed\","
    "\"category\":\"control\",\"params\":{\"rpm\":{\"type\":\"integer\",\"min\":0,\"max\":3000,\"required\":true}}}]}" },
  { "meter", "EM-3", "Voltix",
    "{\"metrics\":[\"power\",\"energy\",\"voltage\",\"current\"],\"commands\":[{\"name\":\"reset_counter\","
    "\"category\":\"maintenance\",\"params\":{}}]}" },
  { "tracker", "GT-9", "Roam",
    "{\"metrics\":[\"lat\",\"lon\",\"speed\",\"battery\"],\"commands\":[{\"name\":\"locate\",\"category\":\"query\","
    "\"params\":{}},{\"name\":\"set_mode\",\"category\":\"configuration\",\"params\":{\"mode\":{\"type\":\"string\","
    "\"enum\":[\"eco\",\"normal\",\"live\"],\"required\":true}}}]}" },
  { "gateway", "GW-1", "Acme", "{\"metrics\":[\"uptime\",\"clients\"],\"commands\":[{\"name\":\"reboot\","
                               "\"category\":\"maintenance\",\"params\":{}}]}" },
  { "valve", "V-50", "Hydrotech", "{}" },
};

static const char *statuses[] = { "online", "online", "online", "offline", "maintenance" };

static FlDevice *
fleet_device (guint i)
{
  g_autoptr (GString) json = g_string_new (NULL);
  g_autoptr (GError)  error = NULL;
  guint               k = i % G_N_ELEMENTS (kinds);
  FlDevice           *device;

  g_string_append_printf (json, "{\"deviceId\":\"dev-%06u\",\"name\":\"%s %u\",\"type\":\"%s\",\"model\":\"%s\","
                                "\"manufacturer\":\"%s\",\"firmware\":\"1.%u.%u\",\"status\":\"%s\","
                                "\"lastSeen\":%" G_GINT64_FORMAT ",",
                          i, kinds[k].type, i, kinds[k].type, kinds[k].model, kinds[k].manufacturer,
                          g_random_int_range (0, 5), g_random_int_range (0, 20),
                          statuses[g_random_int_range (0, G_N_ELEMENTS (statuses))],
                          (gint64) 1700000000000 + g_random_int_range (0, 86400000));
  if (k != 4)
    g_string_append_printf (json, "\"battery\":%d,\"rssi\":%d,", g_random_int_range (0, 101), -g_random_int_range (40, 110));
  else
    g_string_append (json, "\"battery\":null,\"rssi\":null,");
  if (g_random_int_range (0, 10) < 8)
    g_string_append_printf (json, "\"location\":{\"lat\":%.5f,\"lon\":%.5f,\"alt\":%d},",
                            g_random_double_range (-60, 70), g_random_double_range (-180, 180),
                            g_random_int_range (0, 500));
  g_string_append_printf (json, "\"capabilities\":%s,\"tags\":[\"site-%02d\",\"floor-%d\"%s%s%s],"
                                "\"heartbeatTimeoutSec\":%d,\"createdAt\":1690000000000,\"updatedAt\":1700000000000}",
                          kinds[k].capabilities, g_random_int_range (0, 40), g_random_int_range (0, 10),
                          i % 10 == 0 ? ",\"asset-" : "", i % 10 == 0 ? "x" : "", i % 10 == 0 ? "\"" : "",
                          k == 3 ? 300 : 60);
  device = fl_device_deserialize (json->str, &error);
  g_assert_no_error (error);

  return device;
}

/* ---- fill -------------------------------------------------------------- */

typedef struct
{
  guint   pending;
  guint   done;
  double  started;
  GArray *latencies; /* ms per call, paced phase */
} Stream;

typedef struct
{
  Stream *stream;
  double  issued;
} Call;

static void
stream_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Call              *call = user_data;
  g_autoptr (GError) error = NULL;

  if (!fl_cache_add_events_finish (FL_CACHE (source), result, &error))
    g_error ("add_events: %s", error->message);
  call->stream->pending--;
  call->stream->done++;
  if (call->stream->latencies != NULL)
    {
      double latency = now_ms () - call->issued;

      g_array_append_val (call->stream->latencies, latency);
    }
  g_free (call);
}

static void
stream_add (FlCache   *cache,
            Stream    *stream,
            GPtrArray *events)
{
  Call *call = g_new0 (Call, 1);

  call->stream = stream;
  call->issued = now_ms ();
  stream->pending++;
  fl_cache_add_events_async (cache, events, NULL, stream_cb, call);
}

/* Events as the relay's WebSocket delivers them: parsed from JSON text. */
static GPtrArray *
stream_batch (guint   n,
              gint64 *seq)
{
  GPtrArray          *events = g_ptr_array_new_full (n, (GDestroyNotify) fl_event_unref);
  FlEventParseOptions options = { 0 };
  char                text[512], id[37];

  for (guint i = 0; i < n; i++)
    {
      int                device = g_random_int_range (0, stream_devices);
      gint64             ts = (gint64) 1700000000000 + *seq * 7;
      g_autoptr (GError) error = NULL;
      FlEvent           *event;
      int                len;

      uuid4 (id);
      len = g_snprintf (text, sizeof text,
                        "{\"id\":\"%s\",\"timestamp\":%" G_GINT64_FORMAT ",\"source\":\"dev-%06d\","
                        "\"type\":\"telemetry\",\"data\":{\"temperature\":%.2f,\"humidity\":%d,"
                        "\"battery\":%d,\"rssi\":%d,\"pressure\":%.1f,\"firmware\":\"1.4.2\"}}",
                        id, ts, device, g_random_double_range (-10, 40), g_random_int_range (0, 100),
                        g_random_int_range (0, 101), -g_random_int_range (40, 110),
                        g_random_double_range (950, 1050));
      event = fl_event_parse (text, len, &options, &error);
      g_assert_no_error (error);
      fl_event_set_seq (event, ++*seq);
      fl_event_set_received_at (event, ts + 20);
      g_ptr_array_add (events, event);
    }

  return events;
}

static int
double_cmp (gconstpointer a,
            gconstpointer b)
{
  double da = *(const double *) a, db = *(const double *) b;

  return da < db ? -1 : da > db;
}

static double
percentile (GArray *values,
            double  p)
{
  guint i;

  if (values->len == 0)
    return NAN;
  g_array_sort (values, double_cmp);
  i = MIN (values->len - 1, (guint) (p * values->len));
  return g_array_index (values, double, i);
}

static void
fill (const char *path)
{
  g_autoptr (FlCache)      cache = open_cache (path);
  g_autoptr (GPtrArray)    devices = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  Stream                   stream = { 0 };
  gint64                   seq = 0;
  double                   t0, t1, w0, w1, gen_ms = 0;
  guint                    batch = 1000;

  /* devices */
  for (int i = 0; i < n_devices; i++)
    g_ptr_array_add (devices, fleet_device (i));
  t0 = now_ms ();
  fl_cache_save_devices_async (cache, devices, NULL, result_cb, &result);
  t1 = now_ms ();
  g_assert_true (fl_cache_save_devices_finish (cache, wait_for (&result), &error));
  g_clear_object (&result);
  printf ("save_devices (%d): %.0f ms on the caller, %.0f ms in all\n", n_devices, t1 - t0, now_ms () - t0);
  g_clear_pointer (&devices, g_ptr_array_unref);

  /* one device, one metric: the big series */
  fl_cache_set_limits (cache, FL_CACHE_DEFAULT_MAX_EVENTS_PER_DEVICE, MAX (n_hot_points, 1));
  t0 = now_ms ();
  for (int i = 0; i < n_hot_points; i += 10000)
    {
      GPtrArray *events = g_ptr_array_new_full (10000, (GDestroyNotify) fl_event_unref);
      double     g0 = now_ms ();

      for (int j = i; j < MIN (n_hot_points, i + 10000); j++)
        {
          g_autoptr (JsonObject) data = json_object_new ();
          char                   id[37];

          uuid4 (id);
          json_object_set_double_member (data, "value", sin (j / 1000.0) * 100);
          g_ptr_array_add (events, fl_event_new (id, (gint64) 1600000000000 + j * 1000LL, "hot", "telemetry",
                                                 data, NULL));
        }
      gen_ms += now_ms () - g0;
      while (stream.pending >= 4)
        g_main_context_iteration (NULL, TRUE);
      stream_add (cache, &stream, events);
      g_ptr_array_unref (events);
    }
  while (stream.pending > 0)
    g_main_context_iteration (NULL, TRUE);
  t1 = now_ms ();
  printf ("add_events, 1 device × 1 metric: %d events in %.0f ms (%.0f ms making them) = %.0f events/s\n",
          n_hot_points, t1 - t0, gen_ms, n_hot_points / ((t1 - t0) / 1000.0));

  /* the live stream, as fast as it goes (the limit stays up for the big
   * series) */
  gen_ms = 0;
  stream.done = 0;
  t0 = now_ms ();
  w0 = worker_cpu_ms ();
  {
    double lap = t0;
    int    lap_events = 0;

    for (int i = 0; i < n_stream_events; i += batch)
      {
        double                g0 = now_ms ();
        g_autoptr (GPtrArray) events = stream_batch (batch, &seq);

        gen_ms += now_ms () - g0;
        while (stream.pending >= 8)
          g_main_context_iteration (NULL, TRUE);
        stream_add (cache, &stream, events);
        lap_events += batch;
        if (now_ms () - lap > 10000)
          {
            printf ("  … %d events, last %.0f s: %.0f events/s\n", i + batch, (now_ms () - lap) / 1000,
                    lap_events / ((now_ms () - lap) / 1000.0));
            lap = now_ms ();
            lap_events = 0;
          }
      }
    while (stream.pending > 0)
      g_main_context_iteration (NULL, TRUE);
  }
  t1 = now_ms ();
  w1 = worker_cpu_ms ();
  printf ("add_events, %d devices interleaved, UUIDv4 ids, 5 metrics: %d events (%d points) in %.1f s = "
          "%.0f events/s (making them took %.1f s of the main thread); the worker's CPU: %.1f µs per event, "
          "so %.0f events/s on a core of its own\n",
          stream_devices, n_stream_events, n_stream_events * 5, (t1 - t0) / 1000, n_stream_events / ((t1 - t0) / 1000.0),
          gen_ms / 1000, (w1 - w0) * 1000 / n_stream_events, n_stream_events / ((w1 - w0) / 1000));

  /* paced at 10,000 events/s: 500 every 50 ms, for 20 s */
  stream.latencies = g_array_new (FALSE, FALSE, sizeof (double));
  t0 = now_ms ();
  for (int tick = 0; tick < 400; tick++)
    {
      g_autoptr (GPtrArray) events = stream_batch (500, &seq);

      stream_add (cache, &stream, events);
      while (now_ms () < t0 + (tick + 1) * 50.0)
        {
          while (g_main_context_iteration (NULL, FALSE))
            ;
          g_usleep (1000);
        }
    }
  t1 = now_ms ();
  while (stream.pending > 0)
    g_main_context_iteration (NULL, TRUE);
  printf ("paced 10,000 events/s for 20 s (500 per call): call latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
          "all done %.0f ms after the last call\n",
          percentile (stream.latencies, 0.5), percentile (stream.latencies, 0.99),
          percentile (stream.latencies, 1.0), now_ms () - t1);
  g_clear_pointer (&stream.latencies, g_array_unref);

  fl_cache_set_last_seq (cache, seq);
  t0 = now_ms ();
  fl_cache_close (cache);
  printf ("close (flushes staged points): %.0f ms\n", now_ms () - t0);
}

/* ---- measure ----------------------------------------------------------- */

static void
drop_from_page_cache (const char *path)
{
  const char *suffixes[] = { "", "-wal" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (path, suffixes[i], NULL);
      int              fd = open (file, O_RDONLY);

      if (fd < 0)
        continue;
      fdatasync (fd);
      posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
      close (fd);
    }
}

static void
measure (const char *path)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GPtrArray)    devices = NULL;
  g_autoptr (GArray)       points = NULL;
  g_autoptr (GArray)       spread = NULL;
  g_autoptr (GPtrArray)    events = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (FlCache)      cache = NULL;
  long                     rss0 = vm_rss_kb (), rss1, rss2;
  double                   t0, t_open, t_devices, t_points, t_small, cpu0, cpu_devices, cpu_points, sys0, sys1;

  cpu0 = cpu_ms (&sys0);
  t0 = now_ms ();
  cache = open_cache (path);
  t_open = now_ms () - t0;

  fl_cache_load_devices_async (cache, NULL, result_cb, &result);
  devices = fl_cache_load_devices_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  t_devices = now_ms () - t0 - t_open;
  cpu_devices = cpu_ms (&sys1) - cpu0;
  rss1 = vm_rss_kb ();

  fl_cache_set_limits (cache, FL_CACHE_DEFAULT_MAX_EVENTS_PER_DEVICE, MAX (n_hot_points, 1));
  cpu0 = cpu_ms (NULL);
  t0 = now_ms ();
  fl_cache_load_points_async (cache, "hot", "value", G_MININT64, G_MAXINT64, NULL, result_cb, &result);
  points = fl_cache_load_points_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  t_points = now_ms () - t0;
  cpu_points = cpu_ms (NULL) - cpu0;
  rss2 = vm_rss_kb ();

  t0 = now_ms ();
  fl_cache_load_points_async (cache, "dev-000042", "temperature", G_MININT64, G_MAXINT64, NULL, result_cb, &result);
  spread = fl_cache_load_points_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  fl_cache_load_events_async (cache, "dev-000042", 0, NULL, result_cb, &result);
  events = fl_cache_load_events_finish (cache, wait_for (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  t_small = now_ms () - t0;

  printf ("  open %.1f ms, load_devices (%u) %.1f ms, open + load_devices %.1f ms "
          "(CPU, all threads: %.0f ms, %.0f ms of it in the kernel)\n",
          t_open, devices->len, t_devices, t_open + t_devices, cpu_devices, sys1 - sys0);
  printf ("  load_points (%u, one series) %.1f ms (CPU %.0f ms)\n", points->len, t_points, cpu_points);
  printf ("  load_points (%u, a stream series) + load_events (%u) %.1f ms\n", spread->len, events->len, t_small);
  printf ("  VmRSS: %ld MB at start, %ld MB with the devices, %ld MB with devices and points\n",
          rss0 / 1024, rss1 / 1024, rss2 / 1024);

  g_assert_cmpuint (devices->len, ==, n_devices);
  g_assert_cmpuint (points->len, ==, n_hot_points);
}

static void
run_measure (const char *self,
             const char *path,
             gboolean    cold)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *devices = g_strdup_printf ("%d", n_devices);
  g_autofree char   *hot = g_strdup_printf ("%d", n_hot_points);
  const char        *argv[] = { self, "--measure", path, "--devices", devices, "--hot-points", hot, NULL };
  int                status;

  if (cold)
    drop_from_page_cache (path);
  printf ("%s:\n", cold ? "cold (the file dropped from the OS page cache)" : "warm");
  fflush (stdout);
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL, NULL, NULL, &status, &error) || !g_spawn_check_wait_status (status, &error))
    g_error ("measure: %s", error->message);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = g_option_context_new ("- FlCache figures");
  g_autoptr (GError)         error = NULL;
  g_autofree char           *dir = NULL;
  g_autofree char           *path = NULL;
  g_autofree char           *self = NULL;
  GStatBuf                   st;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  if (measure_path != NULL)
    {
      measure (measure_path);
      return 0;
    }

  self = g_file_read_link ("/proc/self/exe", NULL);
  dir = keep_dir != NULL ? g_strdup (keep_dir) : g_dir_make_tmp ("bench-cache-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "cache.db", NULL);

  printf ("FlCache on SQLite %s, %u CPUs\n", sqlite3_libversion (), g_get_num_processors ());
  fill (path);
  if (g_stat (path, &st) == 0)
    printf ("file: %.0f MB\n", st.st_size / 1e6);

  run_measure (self, path, TRUE);
  run_measure (self, path, FALSE);

  if (keep_dir == NULL)
    {
      g_autofree char *wal = g_strconcat (path, "-wal", NULL);
      g_autofree char *shm = g_strconcat (path, "-shm", NULL);

      g_unlink (path);
      g_unlink (wal);
      g_unlink (shm);
      g_rmdir (dir);
    }

  return 0;
}
