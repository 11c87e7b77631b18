/* bench-store.c: FlStore ingest, latency, dedupe and query figures.
 *
 * Realistic traffic: 1,000 devices interleaved (plus one device that gets
 * one event in ten, holding a year of two-minute data for the telemetry
 * query), random UUIDv4 ids,
 * four numeric metrics per telemetry event, millions of events.  Events
 * are made and submitted on the main thread, as the relay does, with many
 * appends in flight; the writer thread commits them in groups.
 *
 *   bench-store [--events N] [--devices N] [--paced-seconds S] [--dir DIR] [--keep]
 *
 * The paced latency phases shrink the store's tunables so that every kind
 * of maintenance (generation freezes, index batches, rollup writes) and
 * checkpoints happen many times during them; each phase prints how many
 * did, and the store's own memory.
 */
#define G_LOG_DOMAIN "bench-store"

#include "config.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include <glib/gstdio.h>

#include "fl-store.h"
#include "fl-store-private.h"

#define YEAR_MS      ((gint64) 365 * 24 * 3600 * 1000)
#define YEAR_DEVICE  "dev-year"

static guint    opt_events = 3000000;
static guint    opt_devices = 1000;
static char    *opt_dir = NULL;
static gboolean opt_keep = FALSE;
static double   opt_paced_seconds = 30;

typedef struct {
  FlStore    *store;
  GMainLoop  *loop;
  GRand      *rand;
  char      **device_names;
  gint64     *device_counter;
  gint64      base_ts;
  gint64      year_start;
  gint64      year_counter;
  gint64      year_points;
  gint64      year_step;
  guint64     made;

  /* one phase */
  guint64     to_submit;
  guint64     submitted;
  guint64     acked;
  guint64     duplicates;
  guint       in_flight;
  guint       window;
  guint       batch;
  GArray     *latencies;     /* gint64 us, per request */
  GArray     *worst;         /* Outlier: the slowest requests of a paced phase */
  GPtrArray  *resend_ids;    /* ids kept for the duplicate phase */
  guint       resend_pos;
  gboolean    resend;
  guint       keep_every;
  GArray     *query_latencies;
  guint       queries_in_flight;
  gboolean    paced;
} Bench;

typedef struct {
  Bench  *bench;
  gint64  start;
  guint   n;
} Pending;

typedef struct {
  gint64 latency;
  gint64 acked_at;   /* real time, us */
} Outlier;

#define N_WORST 8

/* Keeps the N_WORST slowest requests (when each was acked, to line them
 * up with the store's debug log). */
static void
note_outlier (Bench  *b,
              gint64  lat)
{
  Outlier o = { lat, g_get_real_time () };
  guint k = 0;

  if (b->worst->len == N_WORST &&
      g_array_index (b->worst, Outlier, N_WORST - 1).latency >= lat)
    return;
  while (k < b->worst->len && g_array_index (b->worst, Outlier, k).latency >= lat)
    k++;
  g_array_insert_val (b->worst, k, o);
  if (b->worst->len > N_WORST)
    g_array_set_size (b->worst, N_WORST);
}

static gint64
now_us (void)
{
  return g_get_monotonic_time ();
}

static FlEvent *
make_event (Bench      *b,
            const char *id)
{
  g_autofree char *uuid = NULL;
  JsonObject *data = json_object_new ();
  const char *source;
  const char *type = "telemetry";
  gint64 ts;
  FlEvent *event;

  b->made++;
  if (b->made % 10 == 0)
    {
      /* the year device: its events spread evenly over the last year */
      source = YEAR_DEVICE;
      ts = b->year_start + (b->year_counter++ % b->year_points) * b->year_step;
    }
  else
    {
      guint d = g_rand_int_range (b->rand, 0, opt_devices);

      source = b->device_names[d];
      ts = b->base_ts + b->device_counter[d]++ * 1000;
      if (b->device_counter[d] % 10 == 0)
        type = "heartbeat";
    }

  if (g_str_equal (type, "telemetry"))
    {
      json_object_set_double_member (data, "temperature", 15.0 + g_rand_double_range (b->rand, 0, 15));
      json_object_set_int_member (data, "humidity", g_rand_int_range (b->rand, 20, 80));
      json_object_set_int_member (data, "battery", g_rand_int_range (b->rand, 10, 100));
      json_object_set_int_member (data, "rssi", g_rand_int_range (b->rand, -100, -40));
    }
  if (id == NULL)
    id = uuid = g_uuid_string_random ();
  event = fl_event_new (id, ts, source, type, data, NULL);
  json_object_unref (data);
  return event;
}

static void submit_more (Bench *b);

static void
append_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Pending *p = user_data;
  Bench *b = p->bench;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) stored = NULL;
  guint dups = 0;
  gint64 lat = now_us () - p->start;

  stored = fl_store_append_finish (FL_STORE (source), result, &dups, &error);
  if (stored == NULL)
    g_error ("append failed: %s", error->message);
  b->acked += p->n;
  b->duplicates += dups;
  b->in_flight--;
  if (b->latencies != NULL)
    g_array_append_val (b->latencies, lat);
  if (b->worst != NULL)
    note_outlier (b, lat);
  g_free (p);

  if (!b->paced && b->submitted < b->to_submit)
    submit_more (b);
  else if (b->submitted >= b->to_submit && b->in_flight == 0)
    g_main_loop_quit (b->loop);
}

static void
submit_one (Bench *b)
{
  guint n = (guint) MIN ((guint64) b->batch, b->to_submit - b->submitted);
  GPtrArray *events = g_ptr_array_new_full (n, (GDestroyNotify) fl_event_unref);
  Pending *p = g_new0 (Pending, 1);

  for (guint i = 0; i < n; i++)
    {
      FlEvent *event;

      if (b->resend)
        {
          const char *id = g_ptr_array_index (b->resend_ids, b->resend_pos++ % b->resend_ids->len);

          event = make_event (b, id);
        }
      else
        {
          event = make_event (b, NULL);
          if (b->resend_ids != NULL && b->made % b->keep_every == 0)
            g_ptr_array_add (b->resend_ids, g_strdup (fl_event_get_id (event)));
        }
      g_ptr_array_add (events, event);
    }
  p->bench = b;
  p->n = n;
  p->start = now_us ();
  b->submitted += n;
  b->in_flight++;
  fl_store_append_async (b->store, events, g_get_real_time () / 1000, NULL, append_cb, p);
  g_ptr_array_unref (events);
}

static void
submit_more (Bench *b)
{
  while (b->in_flight < b->window && b->submitted < b->to_submit)
    submit_one (b);
}

static int
cmp_i64 (gconstpointer a,
         gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static double
percentile (GArray *values,
            double  p)
{
  gsize i;

  if (values->len == 0)
    return 0;
  g_array_sort (values, cmp_i64);
  i = (gsize) floor (p * (values->len - 1));
  return (double) g_array_index (values, gint64, i);
}

static void
print_rss (const char *when)
{
  g_autofree char *status = NULL;

  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    {
      g_auto(GStrv) lines = g_strsplit (status, "\n", -1);

      for (guint i = 0; lines[i] != NULL; i++)
        if (g_str_has_prefix (lines[i], "VmRSS") || g_str_has_prefix (lines[i], "VmHWM"))
          printf ("  %s %s\n", when, lines[i]);
    }
}

/* The store's memory: SQLite's allocator (page caches, statements), the
 * store's own structures, and malloc's view of the whole process. */
static void
print_store_memory (Bench *b)
{
  struct mallinfo2 mi = mallinfo2 ();
  sqlite3_int64 cur = 0, hw = 0;

  sqlite3_status64 (SQLITE_STATUS_MEMORY_USED, &cur, &hw, 0);
  printf ("  store memory: SQLite %.1f MiB (high water %.1f MiB), store structures %.1f MiB;"
          " process heap in use %.1f MiB\n",
          cur / 1048576.0, hw / 1048576.0, _fl_store_get_heap_bytes (b->store) / 1048576.0,
          (mi.uordblks + mi.hblkhd) / 1048576.0);
}

static void
print_maintenance (Bench                         *b,
                   const FlStoreMaintenanceStats *m0)
{
  FlStoreMaintenanceStats m;

  _fl_store_get_maintenance_stats (b->store, &m);
  printf ("  maintenance: %" G_GUINT64_FORMAT " slices (longest %.2f ms), %" G_GUINT64_FORMAT
          " generation freezes, %" G_GUINT64_FORMAT " index batches, %" G_GUINT64_FORMAT
          " rollup rounds + %" G_GUINT64_FORMAT " device writes, %" G_GUINT64_FORMAT
          " checkpoints, %" G_GUINT64_FORMAT " WAL restarts, WAL max %.1f MiB\n"
          "  writer waited for WAL restarts %" G_GUINT64_FORMAT " times, %.1f ms in all, longest %.1f ms\n",
          m.slices - m0->slices, m.slice_max_usec / 1000.0, m.freezes - m0->freezes,
          m.index_batches - m0->index_batches, m.rollup_rounds - m0->rollup_rounds,
          m.rollup_devices - m0->rollup_devices, m.checkpoints - m0->checkpoints,
          m.wal_restarts - m0->wal_restarts, m.wal_max_bytes / 1048576.0,
          m.restart_waits - m0->restart_waits,
          (m.restart_wait_usec - m0->restart_wait_usec) / 1000.0,
          m.restart_wait_max_usec / 1000.0);
}

/* Run-queue wait of the writer thread (ns, from /proc schedstat): time it
 * was runnable but not running, i.e. waiting for a CPU. */
static gint64
writer_runqueue_wait_ns (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  const char *tid;

  while (dir != NULL && (tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *comm_path = g_build_filename ("/proc/self/task", tid, "comm", NULL);
      g_autofree char *stat_path = g_build_filename ("/proc/self/task", tid, "schedstat", NULL);
      g_autofree char *comm = NULL;
      g_autofree char *stat = NULL;

      if (g_file_get_contents (comm_path, &comm, NULL, NULL) &&
          g_str_has_prefix (comm, "fl-store-writer") &&
          g_file_get_contents (stat_path, &stat, NULL, NULL))
        {
          g_auto(GStrv) fields = g_strsplit (stat, " ", -1);

          if (g_strv_length (fields) >= 2)
            return g_ascii_strtoll (fields[1], NULL, 10);
        }
    }
  return 0;
}

/* One ingest phase: total events in batches of batch with window in flight. */
static void
run_phase (Bench      *b,
           const char *name,
           guint64     total,
           guint       batch,
           guint       window)
{
  gint64 busy0 = _fl_store_get_writer_busy_usec (b->store);
  gint64 cpu0 = _fl_store_get_writer_cpu_usec (b->store);
  gint64 rq0 = writer_runqueue_wait_ns ();
  guint64 commits0 = fl_store_get_commit_count (b->store);
  guint64 probes0 = _fl_store_get_dedupe_probes (b->store);
  FlStoreMaintenanceStats m0;
  gint64 t0, t1, busy, cpu;
  guint64 commits;
  double secs;

  b->to_submit = total;
  b->submitted = b->acked = b->duplicates = 0;
  b->batch = batch;
  b->window = window;
  b->latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  _fl_store_get_maintenance_stats (b->store, &m0);

  t0 = now_us ();
  submit_more (b);
  g_main_loop_run (b->loop);
  t1 = now_us ();

  busy = _fl_store_get_writer_busy_usec (b->store) - busy0;
  cpu = _fl_store_get_writer_cpu_usec (b->store) - cpu0;
  commits = fl_store_get_commit_count (b->store) - commits0;
  secs = (t1 - t0) / 1e6;
  printf ("%s\n", name);
  printf ("  %" G_GUINT64_FORMAT " events (%" G_GUINT64_FORMAT " duplicates) in %.2f s: %.0f events/s end to end\n",
          b->acked, b->duplicates, secs, b->acked / secs);
  printf ("  writer busy %.2f s wall, %.2f s CPU: %.0f events/s of writer wall time, %.0f per writer CPU second\n",
          busy / 1e6, cpu / 1e6, b->acked / (busy / 1e6), b->acked / (cpu / 1e6));
  printf ("  writer thread waited %.2f s for a CPU (run queue; the rest of wall - CPU is I/O and idle)\n",
          (writer_runqueue_wait_ns () - rq0) / 1e9);
  printf ("  %" G_GUINT64_FORMAT " commits, %.0f events per commit; %" G_GUINT64_FORMAT " SQLite dedupe probes\n",
          commits,
          commits ? (double) b->acked / commits : 0.0,
          _fl_store_get_dedupe_probes (b->store) - probes0);
  printf ("  append-to-ack latency per request (saturated, %u in flight): p50 %.1f ms, p99 %.1f ms\n",
          window, percentile (b->latencies, 0.50) / 1000, percentile (b->latencies, 0.99) / 1000);
  if (b->query_latencies != NULL && b->query_latencies->len > 0)
    {
      printf ("  reader queries during the phase: %u, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              b->query_latencies->len,
              percentile (b->query_latencies, 0.50) / 1000,
              percentile (b->query_latencies, 0.99) / 1000,
              percentile (b->query_latencies, 1.0) / 1000);
      g_array_set_size (b->query_latencies, 0);
    }
  printf ("  store: last seq %" G_GINT64_FORMAT ", %" G_GUINT64_FORMAT " events, %.1f MiB, %u dedupe generations\n",
          fl_store_get_last_seq (b->store), fl_store_get_event_count (b->store),
          fl_store_get_size_bytes (b->store) / 1048576.0, _fl_store_get_generation_count (b->store));
  print_maintenance (b, &m0);
  print_store_memory (b);
  print_rss ("process");
  fflush (stdout);
  g_clear_pointer (&b->latencies, g_array_unref);
}

/* ---- queries while ingesting ----------------------------------------- */

typedef struct {
  Bench  *bench;
  gint64  start;
} QueryPending;

static void
bg_query_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  QueryPending *q = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) events = NULL;
  gint64 lat = now_us () - q->start;

  events = fl_store_query_events_finish (FL_STORE (source), result, NULL, &error);
  if (events == NULL)
    g_error ("query failed: %s", error->message);
  g_array_append_val (q->bench->query_latencies, lat);
  q->bench->queries_in_flight--;
  g_free (q);
}

static gboolean
bg_query_tick (gpointer user_data)
{
  Bench *b = user_data;
  FlEventQuery query = { 0 };
  QueryPending *q;

  if (b->queries_in_flight > 0)
    return G_SOURCE_CONTINUE;
  q = g_new0 (QueryPending, 1);
  q->bench = b;
  q->start = now_us ();
  query.device_id = b->device_names[g_rand_int_range (b->rand, 0, opt_devices)];
  query.from = G_MININT64;
  query.to = G_MAXINT64;
  query.limit = 50;
  query.descending = TRUE;
  b->queries_in_flight++;
  fl_store_query_events_async (b->store, &query, NULL, bg_query_cb, q);
  return G_SOURCE_CONTINUE;
}

/* ---- paced latency --------------------------------------------------- */

typedef struct {
  Bench  *b;
  gint64  t0;
  gint64  duration;
  double  rate;
} Paced;

static gboolean
paced_tick (gpointer user_data)
{
  Paced *pc = user_data;
  Bench *b = pc->b;
  gint64 elapsed = now_us () - pc->t0;
  guint64 due = (guint64) (pc->rate * MIN (elapsed, pc->duration) / 1e6);

  while (b->submitted < due)
    submit_one (b);
  if (elapsed >= pc->duration)
    {
      b->to_submit = b->submitted;
      if (b->in_flight == 0)
        g_main_loop_quit (b->loop);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static void
run_paced (Bench  *b,
           double  rate,
           guint   batch,
           double  seconds)
{
  Paced pc = { b, now_us (), (gint64) (seconds * 1e6), rate };
  guint64 commits0 = fl_store_get_commit_count (b->store);
  gint64 busy0 = _fl_store_get_writer_busy_usec (b->store);
  gint64 cpu0 = _fl_store_get_writer_cpu_usec (b->store);
  FlStoreMaintenanceStats m0;
  guint id;

  _fl_store_get_maintenance_stats (b->store, &m0);

  b->to_submit = G_MAXUINT64;
  b->submitted = b->acked = b->duplicates = 0;
  b->batch = batch;
  b->window = G_MAXUINT;
  b->latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  b->paced = TRUE;
  b->worst = g_array_new (FALSE, FALSE, sizeof (Outlier));
  id = g_timeout_add (1, paced_tick, &pc);
  g_main_loop_run (b->loop);
  b->paced = FALSE;
  (void) id;

  printf ("Paced %.0f events/s in batches of %u for %.0f s\n", rate, batch, seconds);
  printf ("  %" G_GUINT64_FORMAT " events, %" G_GUINT64_FORMAT " commits; append-to-ack latency: "
          "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
          b->acked, fl_store_get_commit_count (b->store) - commits0,
          percentile (b->latencies, 0.50) / 1000, percentile (b->latencies, 0.99) / 1000,
          percentile (b->latencies, 0.999) / 1000, percentile (b->latencies, 1.0) / 1000);
  printf ("  writer busy %.2f s wall, %.2f s CPU\n",
          (_fl_store_get_writer_busy_usec (b->store) - busy0) / 1e6,
          (_fl_store_get_writer_cpu_usec (b->store) - cpu0) / 1e6);
  print_maintenance (b, &m0);
  print_store_memory (b);
  printf ("  slowest acks:");
  for (guint k = 0; k < b->worst->len; k++)
    {
      const Outlier *o = &g_array_index (b->worst, Outlier, k);
      g_autoptr(GDateTime) at = g_date_time_new_from_unix_utc (o->acked_at / G_USEC_PER_SEC);

      printf (" %.1f ms at %02d:%02d:%02d.%03d;", o->latency / 1000.0, g_date_time_get_hour (at),
              g_date_time_get_minute (at), g_date_time_get_second (at),
              (int) (o->acked_at % G_USEC_PER_SEC / 1000));
    }
  printf ("\n");
  fflush (stdout);
  g_clear_pointer (&b->latencies, g_array_unref);
  g_clear_pointer (&b->worst, g_array_unref);
}

/* ---- read queries ------------------------------------------------------- */

typedef struct {
  GMainLoop *loop;
  GAsyncResult *result;
} Wait;

static void
wait_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Wait *w = user_data;

  w->result = g_object_ref (result);
  g_main_loop_quit (w->loop);
}

static GAsyncResult *
wait_result (Wait *w)
{
  g_main_loop_run (w->loop);
  return w->result;
}

static void
time_telemetry (Bench      *b,
                const char *label,
                const char *device,
                const char *metric,
                gint64      from,
                gint64      to,
                guint       points)
{
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));
  guint n_buckets = 0;
  gint64 width = 0, count = 0;

  for (guint i = 0; i < 15; i++)
    {
      Wait w = { b->loop, NULL };
      g_autoptr(GError) error = NULL;
      g_autoptr(GArray) buckets = NULL;
      gint64 t0 = now_us (), dt;

      fl_store_telemetry_async (b->store, device, metric, from, to, points, NULL, wait_cb, &w);
      buckets = fl_store_telemetry_finish (b->store, wait_result (&w), &width, &error);
      dt = now_us () - t0;
      g_object_unref (w.result);
      if (buckets == NULL)
        g_error ("telemetry failed: %s", error->message);
      g_array_append_val (times, dt);
      n_buckets = buckets->len;
      count = 0;
      for (guint k = 0; k < buckets->len; k++)
        count += g_array_index (buckets, FlTelemetryBucket, k).count;
    }
  printf ("  telemetry %-34s %4u buckets of %8.1f min, %7" G_GINT64_FORMAT " points: median %.2f ms, max %.2f ms\n",
          label, n_buckets, width / 60000.0, count,
          percentile (times, 0.5) / 1000, percentile (times, 1.0) / 1000);
}

static void
time_query (Bench              *b,
            const char         *label,
            const FlEventQuery *query)
{
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));
  guint n = 0;

  for (guint i = 0; i < 15; i++)
    {
      Wait w = { b->loop, NULL };
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) events = NULL;
      gint64 t0 = now_us (), dt;

      fl_store_query_events_async (b->store, query, NULL, wait_cb, &w);
      events = fl_store_query_events_finish (b->store, wait_result (&w), NULL, &error);
      dt = now_us () - t0;
      g_object_unref (w.result);
      if (events == NULL)
        g_error ("query failed: %s", error->message);
      n = events->len;
      g_array_append_val (times, dt);
    }
  printf ("  query_events %-31s %4u events: median %.2f ms, max %.2f ms\n",
          label, n, percentile (times, 0.5) / 1000, percentile (times, 1.0) / 1000);
}

static void
time_get (Bench *b)
{
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));

  for (guint i = 0; i < 200; i++)
    {
      Wait w = { b->loop, NULL };
      g_autoptr(GError) error = NULL;
      g_autoptr(FlEvent) event = NULL;
      const char *id = g_ptr_array_index (b->resend_ids, g_rand_int_range (b->rand, 0, b->resend_ids->len));
      gint64 t0 = now_us (), dt;

      fl_store_get_event_async (b->store, id, NULL, wait_cb, &w);
      event = fl_store_get_event_finish (b->store, wait_result (&w), &error);
      dt = now_us () - t0;
      g_object_unref (w.result);
      if (event == NULL || !g_str_equal (fl_event_get_id (event), id))
        g_error ("get_event failed: %s", error ? error->message : "wrong event");
      g_array_append_val (times, dt);
    }
  printf ("  get_event (random stored id)                   : median %.2f ms, p99 %.2f ms\n",
          percentile (times, 0.5) / 1000, percentile (times, 0.99) / 1000);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  GOptionEntry entries[] = {
    { "events", 0, 0, G_OPTION_ARG_INT, &opt_events, "Events in the main ingest phase", "N" },
    { "devices", 0, 0, G_OPTION_ARG_INT, &opt_devices, "Devices interleaved", "N" },
    { "dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_dir, "Directory for the database", "DIR" },
    { "keep", 0, 0, G_OPTION_ARG_NONE, &opt_keep, "Keep the database", NULL },
    { "paced-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &opt_paced_seconds, "Length of each paced latency phase", "S" },
    { NULL }
  };
  Bench b = { 0 };
  gint64 t0, now_ms;
  guint tick;

  context = g_option_context_new ("- FlStore benchmark");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  opt_devices = MAX (opt_devices, 1);

  dir = opt_dir ? g_strdup (opt_dir) : g_dir_make_tmp ("bench-store-XXXXXX", &error);
  if (dir == NULL)
    g_error ("%s", error->message);
  path = g_build_filename (dir, "store.db", NULL);

  printf ("FlStore benchmark: %s\n", path);
  printf ("  %u events in the main phase, %u devices interleaved + 1 with a year of data (1 in 10 events),"
          " random UUIDv4 ids, %u CPUs\n", opt_events, opt_devices, g_get_num_processors ());

  t0 = now_us ();
  b.store = fl_store_open (path, &error);
  if (b.store == NULL)
    g_error ("open: %s", error->message);
  printf ("  open (empty): %.1f ms\n", (now_us () - t0) / 1000.0);

  b.loop = g_main_loop_new (NULL, FALSE);
  b.rand = g_rand_new_with_seed (42);
  b.device_names = g_new0 (char *, opt_devices + 1);
  b.device_counter = g_new0 (gint64, opt_devices);
  for (guint i = 0; i < opt_devices; i++)
    b.device_names[i] = g_strdup_printf ("dev-%05u", i);
  now_ms = g_get_real_time () / 1000;
  b.base_ts = now_ms - 3600 * 1000;
  b.year_start = floor (now_ms / 60000.0) * 60000 - YEAR_MS;
  b.year_points = MAX (opt_events / 10, 1000);
  b.year_step = YEAR_MS / b.year_points;
  b.resend_ids = g_ptr_array_new_with_free_func (g_free);
  b.keep_every = 10;
  b.query_latencies = g_array_new (FALSE, FALSE, sizeof (gint64));

  /* 1. the main ingest: batches of 100, many in flight, queries alongside */
  tick = g_timeout_add (50, bg_query_tick, &b);
  run_phase (&b, "Ingest: batches of 100, 200 batches in flight", opt_events, 100, 200);
  g_source_remove (tick);

  /* 2. batches of 1 (one WebSocket message each) */
  run_phase (&b, "Ingest: batches of 1, 4000 in flight", MAX (opt_events / 10, 1000), 1, 4000);

  /* 3. latency at a moderate rate, with small tunables so that every kind
   * of maintenance happens many times */
  _fl_store_set_tuning (b.store, 32768, 8192, 32768);
  run_paced (&b, 10000, 1, opt_paced_seconds);
  run_paced (&b, 10000, 100, opt_paced_seconds);
  _fl_store_set_tuning (b.store, 131072, 32768, 262144);   /* the defaults */

  /* 4. duplicates: re-send stored ids */
  b.resend = TRUE;
  run_phase (&b, "Duplicates: re-sending stored ids, batches of 100", MIN ((guint64) b.resend_ids->len, 300000), 100, 200);
  b.resend = FALSE;

  /* 5. reads (data still partly un-indexed and not rolled up: realistic) */
  printf ("Reads\n");
  {
    gint64 end = b.year_start + YEAR_MS;
    FlEventQuery q = { 0 };

    time_telemetry (&b, "year, 365 points (hour rollups)", YEAR_DEVICE, "temperature",
                    b.year_start, end, 365);
    time_telemetry (&b, "year, 1000 points", YEAR_DEVICE, "temperature",
                    b.year_start, end, 1000);
    time_telemetry (&b, "30 days, 720 points", YEAR_DEVICE, "temperature",
                    end - 30 * 24 * 3600000LL, end, 720);
    time_telemetry (&b, "1 day, 288 points (minute rollups)", YEAR_DEVICE, "temperature",
                    end - 24 * 3600000LL, end, 288);
    time_telemetry (&b, "3 hours, 300 points (raw)", YEAR_DEVICE, "temperature",
                    end - 3 * 3600000LL + 12345, end - 777, 300);
    time_telemetry (&b, "1 hour of a 1 Hz device (raw)", b.device_names[7], "temperature",
                    b.base_ts, b.base_ts + 3600000, 360);

    q.from = G_MININT64;
    q.to = G_MAXINT64;
    q.limit = 100;
    q.descending = TRUE;
    q.device_id = b.device_names[3];
    time_query (&b, "device, newest 100", &q);
    q.descending = FALSE;
    time_query (&b, "device, oldest 100", &q);
    q.from = b.base_ts + 600000;
    q.to = b.base_ts + 1200000;
    time_query (&b, "device, 10-minute range", &q);
    q.device_id = NULL;
    q.from = G_MININT64;
    q.to = G_MAXINT64;
    q.descending = TRUE;
    time_query (&b, "all devices, newest 100", &q);
    q.event_type = "heartbeat";
    time_query (&b, "type=heartbeat, newest 100", &q);
    time_get (&b);
  }

  t0 = now_us ();
  fl_store_close (b.store);
  printf ("close: %.1f ms; database %.1f MiB\n", (now_us () - t0) / 1000.0,
          fl_store_get_size_bytes (b.store) / 1048576.0);
  g_clear_object (&b.store);

  t0 = now_us ();
  b.store = fl_store_open (path, &error);
  if (b.store == NULL)
    g_error ("reopen: %s", error->message);
  printf ("reopen with %" G_GUINT64_FORMAT " events: %.1f ms\n",
          fl_store_get_event_count (b.store), (now_us () - t0) / 1000.0);
  print_rss ("end");
  fl_store_close (b.store);
  g_clear_object (&b.store);

  if (!opt_keep)
    {
      const char *suffixes[] = { "", "-wal", "-shm" };

      for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
        {
          g_autofree char *f = g_strconcat (path, suffixes[i], NULL);

          g_unlink (f);
        }
      if (opt_dir == NULL)
        g_rmdir (dir);
    }

  g_main_loop_unref (b.loop);
  g_rand_free (b.rand);
  g_strfreev (b.device_names);
  g_free (b.device_counter);
  g_ptr_array_unref (b.resend_ids);
  g_array_unref (b.query_latencies);
  return 0;
}
