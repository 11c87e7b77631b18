/* bench-chart.c: what a frame of the telemetry chart costs.
 *
 * Two series of 1,000,000 points each (one a second, about 11.6 days: a
 * random walk and a noisy daily wave) in an FlChart allocated 1280x400 in
 * a real window.  Each frame moves the range a little (so the chart must
 * decimate again) and then times, as GTK does for a frame:
 *
 *   snapshot  gtk_widget_snapshot_child () of the chart, which decimates
 *             both series to the plot's pixel columns and records the
 *             drawing;
 *   render    gsk_renderer_render_texture () of that node with a
 *             GskCairoRenderer (the renderer the console's tests and CI
 *             use; no GL).
 *
 * Decimation alone (fl_decimate_minmax () of both series at the plot's
 * width) is also timed, outside the frame.  Two views: all 2,000,000
 * points in range, then a tenth of them.  50 frames each; figures are
 * median, p99 (nearest rank: with n = 50 that is the 50th value, the
 * max) and max, in ms.  The target, one frame within 16 ms at p99, is
 * reported as PASS or MISS; the benchmark fails only if something breaks.
 *
 * Needs a display (CI runs it under Xvfb); without one it says so and
 * exits 77 (skipped).  FL_BENCH_CHART_SAVE=PREFIX saves each view's last
 * frame as PREFIX-SECONDS.png. */
#define G_LOG_DOMAIN "bench-chart"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gtk/gtk.h>

#include "fl-chart-private.h"
#include "fl-chart.h"

#define WIDTH 1280
#define HEIGHT 400
#define N_POINTS 1000000
#define N_FRAMES 50
#define TARGET_MS 16.0

static gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static double
ms_since (gint64 start_ns)
{
  return (double) (now_ns () - start_ns) / 1e6;
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

typedef struct
{
  double median, p99, max;
} Stats;

static Stats
stats_of (double *v,
          guint   n)
{
  Stats s;
  guint rank = (guint) ((99 * n + 99) / 100); /* nearest rank, 1-based */

  qsort (v, n, sizeof (double), compare_doubles);
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.p99 = v[MAX (rank, 1) - 1];
  s.max = v[n - 1];
  return s;
}

static void
print_stats (const char *what,
             double     *v,
             guint       n)
{
  Stats s = stats_of (v, n);

  printf ("  %-40s median %7.2f  p99 %7.2f  max %7.2f ms\n", what, s.median, s.p99, s.max);
}

static GArray *
make_series (guint  which,
             gint64 start)
{
  GArray *points = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), N_POINTS);
  GRand  *rand = g_rand_new_with_seed (42 + which);
  double  v = 20;

  g_array_set_size (points, N_POINTS);
  for (guint i = 0; i < N_POINTS; i++)
    {
      FlPoint *p = &g_array_index (points, FlPoint, i);

      p->t = start + (gint64) i * 1000;
      if (which == 0)
        {
          v += g_rand_double_range (rand, -0.05, 0.05);
          p->v = v;
        }
      else
        p->v = 50 + 20 * sin (i * 2 * G_PI / 86400) + g_rand_double_range (rand, -2, 2);
    }

  g_rand_free (rand);
  return points;
}

static gboolean
timeout_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* One view: N_FRAMES frames over ranges of the given width, each shifted
 * a little from the last; returns whether the frame p99 met the target */
static gboolean
run_view (const char  *title,
          GtkWidget   *window,
          FlChart     *chart,
          GskRenderer *renderer,
          GArray     **series,
          gint64       from,
          gint64       span)
{
  double               snapshot_ms[N_FRAMES], render_ms[N_FRAMES], frame_ms[N_FRAMES], decimate_ms[N_FRAMES];
  g_autofree FlBucket *columns = NULL;
  graphene_rect_t      plot;
  guint                n_columns;
  gsize                in_view = 0;
  Stats                frame;
  gboolean             pass;

  fl_chart_set_range (chart, from, from + span);
  if (!_fl_chart_get_plot_area (chart, &plot))
    g_error ("the chart has no size");
  n_columns = (guint) plot.size.width;
  columns = g_new (FlBucket, n_columns);

  for (guint k = 0; k < N_FRAMES; k++)
    {
      /* a shift of 0.2% of the width a frame, as a slow drag would */
      gint64         f = from + (gint64) k * span / 500;
      GtkSnapshot   *snapshot;
      GskRenderNode *node;
      GdkTexture    *texture;
      gint64         start;

      start = now_ns ();
      for (guint s = 0; s < 2; s++)
        fl_decimate_minmax ((const FlPoint *) (gpointer) series[s]->data, series[s]->len,
                            f, f + span + 1, n_columns, columns);
      decimate_ms[k] = ms_since (start);

      fl_chart_set_range (chart, f, f + span);

      start = now_ns ();
      snapshot = gtk_snapshot_new ();
      gtk_widget_snapshot_child (window, GTK_WIDGET (chart), snapshot);
      node = gtk_snapshot_free_to_node (snapshot);
      snapshot_ms[k] = ms_since (start);

      start = now_ns ();
      texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, WIDTH, HEIGHT));
      render_ms[k] = ms_since (start);
      frame_ms[k] = snapshot_ms[k] + render_ms[k];

      if (node == NULL || texture == NULL || gdk_texture_get_width (texture) != WIDTH || gdk_texture_get_height (texture) != HEIGHT)
        g_error ("frame %u: nothing rendered", k);
      /* FL_BENCH_CHART_SAVE=PREFIX keeps each view's last frame */
      if (k == N_FRAMES - 1 && g_getenv ("FL_BENCH_CHART_SAVE") != NULL)
        {
          g_autofree char *path = g_strdup_printf ("%s-%" G_GINT64_FORMAT ".png", g_getenv ("FL_BENCH_CHART_SAVE"), span / 1000);

          if (!gdk_texture_save_to_png (texture, path))
            g_error ("could not save %s", path);
        }
      g_object_unref (texture);
      gsk_render_node_unref (node);
    }

  for (guint s = 0; s < 2; s++)
    {
      const FlPoint *p = (const FlPoint *) (gpointer) series[s]->data;
      gsize          i0 = fl_points_lower_bound (p, series[s]->len, from);

      in_view += fl_points_lower_bound (p + i0, series[s]->len - i0, from + span + 1);
    }

  printf ("%s: %" G_GSIZE_FORMAT " points in view, %u columns, %d frames\n", title, in_view, n_columns, N_FRAMES);
  print_stats ("decimation (2 series, alone)", decimate_ms, N_FRAMES);
  print_stats ("snapshot (decimation + drawing)", snapshot_ms, N_FRAMES);
  print_stats ("render to texture (GskCairoRenderer)", render_ms, N_FRAMES);
  frame = stats_of (frame_ms, N_FRAMES);
  printf ("  %-40s median %7.2f  p99 %7.2f  max %7.2f ms\n", "frame (snapshot + render)", frame.median, frame.p99, frame.max);
  pass = frame.p99 <= TARGET_MS;
  printf ("%s  frame p99 <= %.0f ms: median %.2f, p99 %.2f\n\n", pass ? "PASS" : "MISS", TARGET_MS, frame.median, frame.p99);
  return pass;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr (GError)      error = NULL;
  g_autoptr (GskRenderer) renderer = NULL;
  GArray                 *series[2];
  GtkWidget              *window;
  FlChart                *chart;
  gint64                  start_t, start;
  gboolean                expired = FALSE;
  guint                   id;

  if (!gtk_init_check ())
    {
      printf ("SKIP: bench-chart needs a display (run it under xvfb-run)\n");
      return 77;
    }

  printf ("FlChart frame cost: 2 series x %d points, %dx%d, %u CPUs, GSK_RENDERER=%s\n\n",
          N_POINTS, WIDTH, HEIGHT, g_get_num_processors (), g_getenv ("GSK_RENDERER") ? g_getenv ("GSK_RENDERER") : "(default)");

  window = gtk_window_new ();
  gtk_window_set_decorated (GTK_WINDOW (window), FALSE);
  gtk_window_set_default_size (GTK_WINDOW (window), WIDTH, HEIGHT);
  chart = fl_chart_new ();
  gtk_window_set_child (GTK_WINDOW (window), GTK_WIDGET (chart));
  gtk_window_present (GTK_WINDOW (window));

  id = g_timeout_add (10000, timeout_cb, &expired);
  while ((gtk_widget_get_width (GTK_WIDGET (chart)) != WIDTH || gtk_widget_get_height (GTK_WIDGET (chart)) != HEIGHT) && !expired)
    g_main_context_iteration (NULL, TRUE);
  if (expired)
    g_error ("the window was never allocated %dx%d", WIDTH, HEIGHT);
  g_source_remove (id);

  renderer = gsk_cairo_renderer_new ();
  if (!gsk_renderer_realize (renderer, NULL, &error))
    g_error ("GskCairoRenderer: %s", error->message);

  start_t = (g_get_real_time () / 1000 / 1000) * 1000 - (gint64) N_POINTS * 1000;
  start = now_ns ();
  series[0] = make_series (0, start_t);
  series[1] = make_series (1, start_t);
  printf ("generated 2 x %d points in %.0f ms\n", N_POINTS, ms_since (start));

  start = now_ns ();
  fl_chart_add_series (chart, "Temperature", "°C", NULL);
  fl_chart_add_series (chart, "Humidity", "%", NULL);
  fl_chart_set_points (chart, 0, series[0]);
  fl_chart_set_points (chart, 1, series[1]);
  printf ("set_points (2 series, takes a ref)   %.2f ms\n", ms_since (start));

  /* the first frame, through the real frame clock */
  while (g_main_context_iteration (NULL, FALSE))
    ;

  start = now_ns ();
  {
    g_autofree char *summary = fl_chart_dup_summary (chart);

    printf ("summary (2 series, all in view)      %.2f ms: %s\n\n", ms_since (start), summary);
  }

  run_view ("all the data", window, chart, renderer, series, start_t, (gint64) N_POINTS * 1000);
  run_view ("a tenth of it", window, chart, renderer, series, start_t + (gint64) N_POINTS * 450, (gint64) N_POINTS * 100);

  /* live: follow with a one-hour window, ten new points a frame */
  {
    double frame_ms[N_FRAMES];
    gint64 newest = start_t + (gint64) (N_POINTS - 1) * 1000;
    Stats  s;

    fl_chart_set_range (chart, newest - 3600000, newest);
    fl_chart_set_follow (chart, TRUE);

    /* the first append copies the arrays set_points gave (the chart
     * never writes to its caller's array) */
    {
      FlPoint fresh = { newest + 1000, 20 };

      start = now_ns ();
      fl_chart_append_points (chart, 0, &fresh, 1);
      fl_chart_append_points (chart, 1, &fresh, 1);
      printf ("first live append (copies 2 x %d points once)  %.2f ms\n", N_POINTS, ms_since (start));
      newest += 1000;
    }

    for (guint k = 0; k < N_FRAMES; k++)
      {
        FlPoint        fresh[10];
        GtkSnapshot   *snapshot;
        GskRenderNode *node;
        GdkTexture    *texture;

        start = now_ns ();
        for (guint i = 0; i < 10; i++)
          fresh[i] = (FlPoint){ newest + (i + 1) * 100, 20 + i * 0.01 };
        newest += 1000;
        fl_chart_append_points (chart, 0, fresh, 10);
        fl_chart_append_points (chart, 1, fresh, 10);
        snapshot = gtk_snapshot_new ();
        gtk_widget_snapshot_child (window, GTK_WIDGET (chart), snapshot);
        node = gtk_snapshot_free_to_node (snapshot);
        texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, WIDTH, HEIGHT));
        frame_ms[k] = ms_since (start);
        g_object_unref (texture);
        gsk_render_node_unref (node);
      }
    s = stats_of (frame_ms, N_FRAMES);
    printf ("live (follow, 1 h in view, 2 x 10 appended a frame): frame median %.2f, p99 %.2f, max %.2f ms\n",
            s.median, s.p99, s.max);
  }

  gsk_renderer_unrealize (renderer);
  gtk_window_destroy (GTK_WINDOW (window));
  g_array_unref (series[0]);
  g_array_unref (series[1]);
  return 0;
}
