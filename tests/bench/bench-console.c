/* bench-console.c: the fleet view's figures (issue 4).
 *
 * Prepare (this process): a cache (FlCache) of 100,000 devices as the
 * relay describes them (six models, site and room tags, 70 % online) and
 * 1,000,000 telemetry points (1,000 devices interleaved, 500 events each
 * with two metrics, random UUIDv4 event ids).
 *
 * Measure (a fresh process, so start-up and RSS are the console's own):
 *   1. cold start: from the start of main() to the frame clock's first
 *      "after-paint" of a window whose fleet view shows the cached
 *      devices (the list, not a spinner);                      ≤ 500 ms
 *   2. VmRSS at that frame;                                    ≤ 150 MB
 *   3. filtering the 100,000 devices with a search string and a status
 *      (both set, each refilter synchronous: what the view gets);
 *      the first search, which builds the search keys, is shown apart,
 *      and the worse of the two is the figure;                 ≤ 50 ms
 *   4. frame times while 10,000 events/s go into the model through the
 *      stream's code path (fl_fleet_apply_events, cache included), in
 *      batches every 16 ms, for 5 s, with a frame every refresh: per
 *      frame, the main thread's time spent on it (its layout and paint,
 *      plus the batches applied since the previous frame); p99 ≤ 16 ms.
 *      Then the same while the list scrolls at 2,400 px/s (a stress
 *      figure, printed apart).
 *
 * Wall-clock figures on a shared machine include time the OS gave to
 * other processes; the filter figures also show this thread's CPU time.
 *
 * Needs a display: without one it prints a skip line and exits 0.
 *
 *   bench-console [--devices N] [--points N] [--keep DIR]
 */
#define G_LOG_DOMAIN "bench-console"

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <adwaita.h>
#include <glib/gstdio.h>

#include "fl-cache.h"
#include "fl-fleet-view.h"

#define EVENTS_PER_S   10000
#define BATCH_MS       16
#define FEED_SECONDS   5
#define SCROLL_PX_S    2400.0

static int n_devices = 100000;
static int n_points = 1000000;
static char *keep_dir = NULL;
static char *child_path = NULL;
/* Where the cold start goes: printed with --verbose. */
static gboolean verbose;

static GOptionEntry entries[] = {
  { "devices", 0, 0, G_OPTION_ARG_INT, &n_devices, "Devices in the cache", "N" },
  { "points", 0, 0, G_OPTION_ARG_INT, &n_points, "Telemetry points in the cache", "N" },
  { "keep", 0, 0, G_OPTION_ARG_FILENAME, &keep_dir, "Prepare into DIR and keep it (reused when present)", "DIR" },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Show where the cold start goes", NULL },
  { "child", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &child_path, NULL, NULL },
  { NULL },
};

static gint64 t_main;


static long vm_rss_kb (void);

static void
mark (const char *what)
{
  if (verbose)
    printf ("    %8.1f ms  %6.1f MB  %s\n", (g_get_monotonic_time () - t_main) / 1000.0, vm_rss_kb () / 1024.0, what);
}

static void
items_changed_before_cb (GListModel *model,
                         guint       position,
                         guint       removed,
                         guint       added)
{
  if (added > 1000)
    mark ("fleet items-changed (cache loaded, before the views)");
}

static void
items_changed_after_cb (GListModel *model,
                        guint       position,
                        guint       removed,
                        guint       added)
{
  if (added > 1000)
    mark ("fleet items-changed handled (sorted, filtered)");
}

/* ---- helpers --------------------------------------------------------------- */

static double
ms_since (gint64 t)
{
  return (g_get_monotonic_time () - t) / 1000.0;
}

static long
vm_rss_kb (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return -1;
  line = strstr (status, "VmRSS:");
  return line ? strtol (line + 6, NULL, 10) : -1;
}

/* This thread's CPU time: a slow step that did not use the CPU was
 * preempted (the machine is shared). */
static double
thread_cpu_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
verdict (const char *what,
         double      value,
         const char *unit,
         double      target)
{
  printf ("  %-58s %9.1f %-3s (target <= %g %s)  %s\n", what, value, unit, target, unit,
          value <= target ? "PASS" : "MISS");
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double da = *(const double *) a, db = *(const double *) b;

  return da < db ? -1 : da > db ? 1 : 0;
}

static double
percentile (GArray *values,
            double  p)
{
  g_autoptr (GArray) sorted = NULL;
  guint index;

  if (values->len == 0)
    return NAN;

  sorted = g_array_copy (values);
  qsort (sorted->data, sorted->len, sizeof (double), compare_doubles);
  index = (guint) ceil (p / 100.0 * sorted->len) - 1;

  return g_array_index (sorted, double, MIN (index, sorted->len - 1));
}

static void
summary (const char *what,
         GArray     *values)
{
  printf ("    %-30s n=%-5u p50 %6.2f  p99 %6.2f  max %6.2f ms\n", what, values->len,
          percentile (values, 50), percentile (values, 99), percentile (values, 100));
}

static gboolean
flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
wait_flag (gboolean *flag)
{
  while (!*flag)
    g_main_context_iteration (NULL, TRUE);
}

static void
result_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GAsyncResult *
wait_result (GAsyncResult **result)
{
  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);

  return *result;
}

/* ---- the fleet, as the relay describes it -------------------------------- */

static const char *bench_models[] = { "TH-1", "TH-2", "PM-10", "GW-3", "CO2-4", "EM-5" };
static const char *bench_kinds[] = { "Thermo", "Thermo", "Particles", "Gateway", "Air", "Meter" };
static const char *bench_sites[] = { "berlin", "lisbon", "oslo", "madrid", "vienna", "warsaw", "dublin", "prague" };

static FlDevice *
bench_device (guint  i,
              gint64 now)
{
  g_autofree char *id = g_strdup_printf ("dev-%06u", i);
  g_autofree char *json = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (FlDevice) device = fl_device_new (id);
  const char *site = bench_sites[i % G_N_ELEMENTS (bench_sites)];
  guint room = (i / 8) % 400;
  double status_draw = (i * 2654435761u % 1000) / 1000.0;

  json = g_strdup_printf ("{\"name\": \"%s %s-%u (%s)\", \"type\": \"sensor\", \"model\": \"%s\","
                          " \"manufacturer\": \"Acme\", \"firmware\": \"1.%u.%u\","
                          " \"tags\": [\"site:%s\", \"room:%s-%u\", \"sim\"],"
                          " \"capabilities\": {\"metrics\": [\"temperature\", \"humidity\", \"battery\", \"rssi\"],"
                          " \"commands\": [{\"name\": \"set_interval\", \"category\": \"configuration\","
                          " \"params\": {\"seconds\": {\"type\": \"integer\", \"min\": 1, \"max\": 3600}}}]}}",
                          bench_kinds[i % G_N_ELEMENTS (bench_models)], site, room, site,
                          bench_models[i % G_N_ELEMENTS (bench_models)], i % 5, i % 17,
                          site, site, room);
  node = json_from_string (json, NULL);
  g_assert_nonnull (node);
  g_assert_true (fl_device_update_from_json (device, json_node_get_object (node), TRUE, NULL));
  fl_device_set_status (device, status_draw < 0.70 ? FL_DEVICE_STATUS_ONLINE :
                                status_draw < 0.95 ? FL_DEVICE_STATUS_OFFLINE :
                                status_draw < 0.99 ? FL_DEVICE_STATUS_MAINTENANCE :
                                                     FL_DEVICE_STATUS_DECOMMISSIONED);
  fl_device_set_created_at (device, now - 90LL * 86400000);
  fl_device_set_updated_at (device, now - 86400000);
  fl_device_set_last_seen (device, now - (i % 3600) * 1000);
  {
    g_autoptr (JsonObject) data = json_object_new ();

    json_object_set_int_member (data, "battery", 20 + i % 80);
    json_object_set_int_member (data, "rssi", -40 - (int) (i % 60));
    fl_device_apply_event_data (device, data, fl_device_get_last_seen (device));
  }

  return g_steal_pointer (&device);
}

static FlEvent *
bench_event (const char *source,
             gint64      ts,
             gint64      seq,
             double      a,
             double      b,
             gboolean    four)
{
  g_autoptr (JsonObject) data = json_object_new ();
  g_autofree char *id = g_uuid_string_random ();
  FlEvent *event;

  json_object_set_double_member (data, "temperature", a);
  json_object_set_double_member (data, "humidity", b);
  if (four)
    {
      json_object_set_int_member (data, "battery", 20 + (gint64) a % 80);
      json_object_set_int_member (data, "rssi", -40 - (gint64) b % 60);
    }
  event = fl_event_new (id, ts, source, "telemetry", data, NULL);
  fl_event_set_seq (event, seq);
  fl_event_set_received_at (event, ts);

  return event;
}

static void
prepare (const char *path)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlCache) cache = NULL;
  gint64 now = g_get_real_time () / 1000;
  gint64 t0 = g_get_monotonic_time ();
  guint n_event_devices = 1000;
  guint per_device = (n_points / 2 + n_event_devices - 1) / n_event_devices;
  guint n_events = 0;
  gint64 seq = 0;

  fl_cache_open_async (path, NULL, result_cb, &result);
  cache = fl_cache_open_finish (wait_result (&result), &error);
  g_assert_no_error (error);
  g_clear_object (&result);
  fl_cache_set_limits (cache, per_device + 10, MAX (per_device + 10, FL_CACHE_DEFAULT_MAX_POINTS_PER_SERIES));

  for (int i = 0; i < n_devices; i += 10000)
    {
      g_autoptr (GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);

      for (int j = i; j < MIN (i + 10000, n_devices); j++)
        g_ptr_array_add (devices, bench_device (j, now));
      fl_cache_save_devices_async (cache, devices, NULL, result_cb, &result);
      g_assert_true (fl_cache_save_devices_finish (cache, wait_result (&result), &error));
      g_assert_no_error (error);
      g_clear_object (&result);
    }

  /* 1,000 devices interleaved, one event per device per round */
  for (guint round = 0; round < per_device; round += 10)
    {
      g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

      for (guint r = round; r < MIN (round + 10, per_device); r++)
        for (guint d = 0; d < n_event_devices; d++)
          {
            g_autofree char *source = g_strdup_printf ("dev-%06u", d * (n_devices / n_event_devices));
            gint64 ts = now - (gint64) (per_device - r) * 60000 - d;

            g_ptr_array_add (events, bench_event (source, ts, ++seq, 20 + sin (r / 30.0) * 5, 40 + r % 20, FALSE));
            n_events++;
          }
      fl_cache_add_events_async (cache, events, NULL, result_cb, &result);
      g_assert_true (fl_cache_add_events_finish (cache, wait_result (&result), &error));
      g_assert_no_error (error);
      g_clear_object (&result);
    }

  fl_cache_set_last_seq (cache, seq);
  fl_cache_set_last_sync (cache, now - 600000);
  fl_cache_close (cache);

  printf ("  prepared %d devices and %u events (%u points) in %.1f s\n",
          n_devices, n_events, n_events * 2, (g_get_monotonic_time () - t0) / 1e6);
}

/* ---- the measuring child ------------------------------------------------------ */

typedef struct
{
  GtkWidget     *window;
  FlFleet       *fleet;
  FlFleetView   *view;
  FlDevicesPage *page;
  GdkFrameClock *clock;

  double         first_frame_ms;
  double         list_frame_ms;
  long           rss_kb;
  gboolean       list_shown;

  /* frames while feeding */
  gboolean       recording;
  gint64         frame_start;
  gint64         last_after_paint;
  double         applied_since_frame;  /* ms of batches since the last frame */
  GArray        *frame_work;   /* ms, flush-events to after-paint */
  GArray        *frame_busy;   /* ms, that plus the batches before it */
  GArray        *intervals;    /* ms between after-paints */
  GArray        *apply_times;  /* ms per batch */
  GtkAdjustment *vadjustment;
  double         scroll_dir;
  gint64         last_tick;
} Child;

/* The first phase of a frame that runs (they run only when requested). */
static void
phase_cb (GdkFrameClock *clock,
          Child         *child)
{
  if (child->frame_start == 0)
    child->frame_start = g_get_monotonic_time ();
}

static void
after_paint_cb (GdkFrameClock *clock,
                Child         *child)
{
  gint64 now = g_get_monotonic_time ();

  if (child->first_frame_ms == 0)
    {
      child->first_frame_ms = (now - t_main) / 1000.0;
      mark ("first after-paint");
    }

  if (!child->list_shown && child->fleet != NULL && fl_fleet_get_loaded (child->fleet) &&
      g_list_model_get_n_items (G_LIST_MODEL (child->fleet)) > 0 &&
      g_strcmp0 (fl_devices_page_get_state (child->page), "list") == 0)
    {
      child->list_frame_ms = (now - t_main) / 1000.0;
      child->rss_kb = vm_rss_kb ();
      child->list_shown = TRUE;
      mark ("first after-paint with the devices");
      if (verbose && child->frame_start > 0)
        printf ("    (that frame: %.1f ms from its first phase)\n", (now - child->frame_start) / 1000.0);
    }

  if (child->recording && child->frame_start > 0)
    {
      double work = (now - child->frame_start) / 1000.0;
      double busy = work + child->applied_since_frame;

      g_array_append_val (child->frame_work, work);
      g_array_append_val (child->frame_busy, busy);
      if (child->last_after_paint > 0)
        {
          double interval = (now - child->last_after_paint) / 1000.0;

          g_array_append_val (child->intervals, interval);
          if (verbose && interval > 100)
            printf ("    long frame interval: %.1f ms (work %.1f, batches %.1f, scroll %.0f)\n", interval, work,
                    child->applied_since_frame, gtk_adjustment_get_value (child->vadjustment));
        }
      child->applied_since_frame = 0;
    }
  child->frame_start = 0;
  child->last_after_paint = now;
}

static void
window_realize_cb (GtkWidget *window,
                   Child     *child)
{
  child->clock = gtk_widget_get_frame_clock (window);
  g_signal_connect (child->clock, "flush-events", G_CALLBACK (phase_cb), child);
  g_signal_connect (child->clock, "before-paint", G_CALLBACK (phase_cb), child);
  g_signal_connect (child->clock, "update", G_CALLBACK (phase_cb), child);
  g_signal_connect (child->clock, "layout", G_CALLBACK (phase_cb), child);
  g_signal_connect (child->clock, "paint", G_CALLBACK (phase_cb), child);
  g_signal_connect (child->clock, "after-paint", G_CALLBACK (after_paint_cb), child);
}

/* The device list: the mapped list view (a dropdown's popover has one
 * too). */
static GtkWidget *
find_list_view (GtkWidget *widget)
{
  if (GTK_IS_LIST_VIEW (widget) && gtk_widget_get_mapped (widget))
    return widget;

  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_list_view (c);

      if (found != NULL)
        return found;
    }

  return NULL;
}

/* Scrolls the list like a steady flick while the events come. */
static gboolean
scroll_tick_cb (GtkWidget     *widget,
                GdkFrameClock *clock,
                gpointer       user_data)
{
  Child *child = user_data;
  gint64 now = gdk_frame_clock_get_frame_time (clock);
  double value, upper, page;

  if (!child->recording)
    return G_SOURCE_REMOVE;

  if (child->last_tick > 0)
    {
      value = gtk_adjustment_get_value (child->vadjustment);
      upper = gtk_adjustment_get_upper (child->vadjustment);
      page = gtk_adjustment_get_page_size (child->vadjustment);
      value += child->scroll_dir * SCROLL_PX_S * (now - child->last_tick) / 1e6;
      if (value >= upper - page || value <= 0)
        child->scroll_dir = -child->scroll_dir;
      gtk_adjustment_set_value (child->vadjustment, CLAMP (value, 0, upper - page));
    }
  child->last_tick = now;

  return G_SOURCE_CONTINUE;
}

typedef struct
{
  Child     *child;
  GPtrArray *events;  /* all of them, in order */
  guint      next;
  gint64     start;
  gboolean   done;
} Feed;

static gboolean
feed_cb (gpointer user_data)
{
  Feed *feed = user_data;
  Child *child = feed->child;
  double elapsed = (g_get_monotonic_time () - feed->start) / 1e6;
  guint due = MIN ((guint) (elapsed * EVENTS_PER_S), feed->events->len);
  g_autoptr (GPtrArray) batch = NULL;
  gint64 t0;
  double took, cpu0;

  if (feed->next >= feed->events->len)
    {
      feed->done = TRUE;
      return G_SOURCE_REMOVE;
    }
  if (due <= feed->next)
    return G_SOURCE_CONTINUE;

  batch = g_ptr_array_new_full (due - feed->next, (GDestroyNotify) fl_event_unref);
  for (; feed->next < due; feed->next++)
    g_ptr_array_add (batch, fl_event_ref (g_ptr_array_index (feed->events, feed->next)));

  t0 = g_get_monotonic_time ();
  cpu0 = thread_cpu_ms ();
  fl_fleet_apply_events (child->fleet, batch);
  took = ms_since (t0);
  if (verbose && took > 50)
    printf ("    slow batch: %.1f ms for %u events (%.1f ms on the CPU)\n", took, batch->len, thread_cpu_ms () - cpu0);
  g_array_append_val (child->apply_times, took);
  child->applied_since_frame += took;

  return G_SOURCE_CONTINUE;
}

/* A no-op tick keeps the frame clock running: a frame every refresh,
 * whatever changes, so the intervals show any stall. */
static gboolean
still_tick_cb (GtkWidget     *widget,
               GdkFrameClock *clock,
               gpointer       user_data)
{
  Child *child = user_data;

  return child->recording ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static void
feed_and_record (Child     *child,
                 GtkWidget *list_view,
                 gboolean   scrolling)
{
  Feed feed = { child, NULL, 0, 0, FALSE };
  gint64 now = g_get_real_time () / 1000;
  gint64 seq = fl_fleet_get_last_seq (child->fleet);
  guint n = EVENTS_PER_S * FEED_SECONDS;
  GRand *rand = g_rand_new_with_seed (scrolling ? 5 : 4);

  /* 1,000 devices' worth of realistic events, prepared first: random
   * devices of the 100,000, random UUIDv4 ids, four metrics each */
  feed.events = g_ptr_array_new_full (n, (GDestroyNotify) fl_event_unref);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("dev-%06u", g_rand_int_range (rand, 0, n_devices));

      g_ptr_array_add (feed.events, bench_event (id, now + i / 10, ++seq,
                                                 g_rand_double_range (rand, 15, 30),
                                                 g_rand_double_range (rand, 30, 60), TRUE));
    }
  g_rand_free (rand);

  g_array_set_size (child->frame_work, 0);
  g_array_set_size (child->frame_busy, 0);
  g_array_set_size (child->intervals, 0);
  g_array_set_size (child->apply_times, 0);
  child->applied_since_frame = 0;
  child->recording = TRUE;
  child->frame_start = 0;
  child->last_after_paint = 0;
  child->last_tick = 0;
  gtk_adjustment_set_value (child->vadjustment, 0);
  gtk_widget_add_tick_callback (list_view, scrolling ? scroll_tick_cb : still_tick_cb, child, NULL);

  feed.start = g_get_monotonic_time ();
  g_timeout_add (BATCH_MS, feed_cb, &feed);
  while (!feed.done)
    g_main_context_iteration (NULL, TRUE);
  child->recording = FALSE;

  g_ptr_array_unref (feed.events);
}

/* Wall time of one filter change (what the user waits for); *cpu gets
 * this thread's CPU time for it (the rest is the shared machine). */
static double
time_filter (FlDevicesPage *page,
             const char    *search,
             int            status,
             double        *cpu)
{
  gint64 t0 = g_get_monotonic_time ();
  double c0 = thread_cpu_ms ();

  fl_devices_page_set_filters (page, search, status, NULL);

  if (cpu != NULL)
    *cpu = thread_cpu_ms () - c0;
  return ms_since (t0);
}

static int
run_child (const char *path)
{
  Child child = { 0, };
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlCache) cache = NULL;
  GtkWidget *list_view;
  GtkWidget *scrolled;
  gboolean waited = FALSE;
  double cold_search, filter_ms = 0, worst_filter = 0, next_frame_ms, cpu = 0;
  char *tmp;
  guint shown = 0;
  gint64 t0;

  if (!gtk_init_check ())
    {
      printf ("SKIP console benchmark: no display (run under xvfb-run)\n");
      return 0;
    }
  adw_init ();
  mark ("gtk_init, adw_init");

  child.frame_work = g_array_new (FALSE, FALSE, sizeof (double));
  child.frame_busy = g_array_new (FALSE, FALSE, sizeof (double));
  child.intervals = g_array_new (FALSE, FALSE, sizeof (double));
  child.apply_times = g_array_new (FALSE, FALSE, sizeof (double));
  child.scroll_dir = 1;

  /* What the console does once signed in: open the profile's cache,
   * show the fleet view, start the fleet (cache first). */
  fl_cache_open_async (path, NULL, result_cb, &result);
  cache = fl_cache_open_finish (wait_result (&result), &error);
  g_assert_no_error (error);
  mark ("cache open");

  child.fleet = fl_fleet_new (cache);
  g_signal_connect (child.fleet, "items-changed", G_CALLBACK (items_changed_before_cb), NULL);
  /* the cache loads (on its threads) while the window is built */
  fl_fleet_start (child.fleet);
  child.view = FL_FLEET_VIEW (fl_fleet_view_new_for_fleet (child.fleet));
  child.page = fl_fleet_view_get_devices_page (child.view);
  child.window = gtk_window_new ();
  gtk_window_set_default_size (GTK_WINDOW (child.window), 1000, 700);
  gtk_window_set_child (GTK_WINDOW (child.window), GTK_WIDGET (child.view));
  g_signal_connect (child.window, "realize", G_CALLBACK (window_realize_cb), &child);
  g_signal_connect (child.fleet, "items-changed", G_CALLBACK (items_changed_after_cb), NULL);
  mark ("fleet view and window built");
  gtk_window_present (GTK_WINDOW (child.window));
  mark ("window presented");

  while (!child.list_shown)
    g_main_context_iteration (NULL, TRUE);

  printf ("  %-58s %9.1f ms\n", "first frame (any content)", child.first_frame_ms);
  verdict ("cold start: main() to the first frame showing the devices", child.list_frame_ms, "ms", 500);
  verdict ("VmRSS at that frame", child.rss_kb / 1024.0, "MB", 150);
  printf ("    (%u devices in the fleet)\n", g_list_model_get_n_items (G_LIST_MODEL (child.fleet)));

  /* let the first frames settle (the search keys are built meanwhile) */
  g_timeout_add (1000, flag_cb, &waited);
  wait_flag (&waited);
  printf ("  %-58s %9.1f MB\n", "VmRSS 1 s later (search keys built)", vm_rss_kb () / 1024.0);

  /* ---- filtering ---- */
  cold_search = time_filter (child.page, "berlin", FL_FLEET_FILTER_ANY_STATUS, &cpu);
  shown = g_list_model_get_n_items (fl_devices_page_get_model (child.page));
  printf ("  %-58s %9.1f ms  (CPU %.1f ms, %u shown)\n", "first search \"berlin\"", cold_search, cpu, shown);
  fl_devices_page_clear_filters (child.page);

  {
    static const struct { const char *search; int status; } queries[] = {
      { "lisbon-12", FL_DEVICE_STATUS_ONLINE },
      { "th-2 madrid", FL_DEVICE_STATUS_OFFLINE },
      { "dev-0123", FL_DEVICE_STATUS_ONLINE },
      { "room:oslo-7", FL_DEVICE_STATUS_MAINTENANCE },
      { "particles", FL_DEVICE_STATUS_ONLINE },
    };

    for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
      {
        double ms = time_filter (child.page, queries[i].search, queries[i].status, &cpu);

        shown = g_list_model_get_n_items (fl_devices_page_get_model (child.page));
        printf ("    %-44s %7.2f ms (CPU %5.2f ms, %u shown)\n",
                (tmp = g_strdup_printf ("search \"%s\" + status %s", queries[i].search,
                                        fl_device_status_to_string (queries[i].status))),
                ms, cpu, shown);
        g_free (tmp);
        worst_filter = MAX (worst_filter, ms);
        filter_ms += ms;
        t0 = g_get_monotonic_time ();
        fl_devices_page_clear_filters (child.page);
        printf ("    %-44s %7.2f ms\n", "clear filters", ms_since (t0));
      }
  }
  /* and the frame that shows a filtered list */
  time_filter (child.page, "berlin", FL_DEVICE_STATUS_ONLINE, NULL);
  {
    gint64 before = child.last_after_paint;

    t0 = g_get_monotonic_time ();
    while (child.last_after_paint == before)
      g_main_context_iteration (NULL, TRUE);
    next_frame_ms = ms_since (t0);
  }
  printf ("    %-44s %7.2f ms\n", "then the next frame", next_frame_ms);
  fl_devices_page_clear_filters (child.page);
  verdict ("filter 100,000 devices: search + status (worst of 5)", worst_filter, "ms", 50);
  verdict ("filter 100,000 devices: first search (with the keys)", cold_search, "ms", 50);

  /* ---- frames under 10,000 events/s: the list still, then scrolling ---- */
  list_view = find_list_view (GTK_WIDGET (child.page));
  g_assert_nonnull (list_view);
  scrolled = gtk_widget_get_ancestor (list_view, GTK_TYPE_SCROLLED_WINDOW);
  child.vadjustment = gtk_scrolled_window_get_vadjustment (GTK_SCROLLED_WINDOW (scrolled));

  for (guint pass = 0; pass < 2; pass++)
    {
      gboolean scrolling = pass == 1;
      double p99;

      feed_and_record (&child, list_view, scrolling);
      if (!scrolling)
        printf ("  %u events/s for %d s through fl_fleet_apply_events (the stream's path, cache included),\n"
                "  the list on screen, a frame every refresh:\n", EVENTS_PER_S, FEED_SECONDS);
      else
        printf ("  the same while the list scrolls at %.0f px/s (every frame repaints the list, rows rebind):\n",
                SCROLL_PX_S);
      summary ("batch apply", child.apply_times);
      summary ("frame layout+paint", child.frame_work);
      summary ("frame interval", child.intervals);
      summary ("main thread per frame", child.frame_busy);
      p99 = percentile (child.frame_busy, 99);
      if (!scrolling)
        verdict ("UI frame time under 10,000 events/s, p99", p99, "ms", 16);
      else
        verdict ("the same, scrolling (stress, not the target)", p99, "ms", 16);
    }

  printf ("    (renderer: GSK_RENDERER=%s, GDK_BACKEND=%s)\n",
          g_getenv ("GSK_RENDERER") ? g_getenv ("GSK_RENDERER") : "default",
          g_getenv ("GDK_BACKEND") ? g_getenv ("GDK_BACKEND") : "default");

  fl_fleet_stop (child.fleet);
  gtk_window_destroy (GTK_WINDOW (child.window));
  g_clear_object (&child.fleet);
  fl_cache_close (cache);
  g_array_unref (child.frame_work);
  g_array_unref (child.frame_busy);
  g_array_unref (child.intervals);
  g_array_unref (child.apply_times);

  return 0;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = g_option_context_new ("- the fleet view's figures");
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *self = NULL;
  int status = 0;

  t_main = g_get_monotonic_time ();

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }

  if (child_path != NULL)
    return run_child (child_path);

  setvbuf (stdout, NULL, _IOLBF, 0);
  printf ("console: the fleet view (%d devices, %d points in the cache, %u CPUs)\n",
          n_devices, n_points, g_get_num_processors ());

  /* no display, no figures: say so before preparing anything */
  if (!gtk_init_check ())
    {
      printf ("SKIP console benchmark: no display (run under xvfb-run)\n");
      return 0;
    }

  dir = keep_dir ? g_strdup (keep_dir) : g_dir_make_tmp ("bench-console-XXXXXX", &error);
  g_assert_no_error (error);
  g_mkdir_with_parents (dir, 0700);
  path = g_build_filename (dir, "cache.db", NULL);
  if (keep_dir == NULL || !g_file_test (path, G_FILE_TEST_EXISTS))
    prepare (path);

  /* measure in a fresh process */
  self = g_file_read_link ("/proc/self/exe", NULL);
  {
    const char *child_argv[] = { self ? self : argv[0], "--child", path, verbose ? "--verbose" : NULL, NULL };

    fflush (stdout);
    if (!g_spawn_sync (NULL, (char **) child_argv, NULL, G_SPAWN_CHILD_INHERITS_STDIN, NULL, NULL,
                       NULL, NULL, &status, &error))
      {
        g_printerr ("Could not start the measuring process: %s\n", error->message);
        status = 1;
      }
    else if (!g_spawn_check_wait_status (status, &error))
      {
        g_printerr ("The measuring process failed: %s\n", error->message);
        status = 1;
      }
  }

  if (keep_dir == NULL)
    {
      g_autofree char *wal = g_strconcat (path, "-wal", NULL);
      g_autofree char *shm = g_strconcat (path, "-shm", NULL);

      g_unlink (path);
      g_unlink (wal);
      g_unlink (shm);
      g_rmdir (dir);
    }

  return status;
}
