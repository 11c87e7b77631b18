/* test-chart.c: FlChart in a real window under Xvfb: its summary and
 * accessible description, range actions and key bindings, follow mode,
 * live appends, pixels of an offscreen render and the hover readout. */
#define G_LOG_DOMAIN "test-chart"

#include "config.h"

#include <math.h>
#include <string.h>

#include <gtk/gtk.h>

#include "fl-chart-private.h"
#include "fl-chart.h"

#define WIDTH 800
#define HEIGHT 300

typedef struct
{
  GtkWidget    *window;
  FlChart      *chart;
  GdkPaintable *paintable;
  gboolean      invalidated;
  guint         range_changes;
  gint64        last_from;
  gint64        last_to;
  guint         follow_notifies;
} Fixture;

static const GdkRGBA red = { 1, 0, 0, 1 };
static const GdkRGBA blue = { 0, 0, 1, 1 };

static gint64
utc_ms (int y,
        int mo,
        int d,
        int h,
        int mi,
        int s)
{
  g_autoptr (GDateTime) dt = g_date_time_new_utc (y, mo, d, h, mi, s);

  return g_date_time_to_unix (dt) * 1000;
}

/* 10:00 UTC on a fixed day (TZ is UTC in this test) */
#define T10 utc_ms (2024, 5, 14, 10, 0, 0)

static gboolean
timeout_cb (gpointer data)
{
  gboolean *expired = data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until *flag is set; fails after 10 s */
static void
wait_for_flag (gboolean *flag)
{
  gboolean expired = FALSE;
  guint    id = g_timeout_add (10000, timeout_cb, &expired);

  while (!*flag && !expired)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (expired);
  g_source_remove (id);
}

static void
invalidate_contents_cb (GdkPaintable *paintable,
                        Fixture      *f)
{
  f->invalidated = TRUE;
}

static void
range_changed_cb (FlChart *chart,
                  gint64   from,
                  gint64   to,
                  Fixture *f)
{
  f->range_changes++;
  f->last_from = from;
  f->last_to = to;
}

static void
follow_notify_cb (GObject    *object,
                  GParamSpec *pspec,
                  Fixture    *f)
{
  f->follow_notifies++;
}

static void
fixture_setup (Fixture      *f,
               gconstpointer data)
{
  gboolean expired = FALSE;
  guint    id;

  f->window = gtk_window_new ();
  gtk_window_set_decorated (GTK_WINDOW (f->window), FALSE);
  gtk_window_set_default_size (GTK_WINDOW (f->window), WIDTH, HEIGHT);
  f->chart = fl_chart_new ();
  gtk_window_set_child (GTK_WINDOW (f->window), GTK_WIDGET (f->chart));
  g_signal_connect (f->chart, "range-changed", G_CALLBACK (range_changed_cb), f);
  g_signal_connect (f->chart, "notify::follow", G_CALLBACK (follow_notify_cb), f);
  gtk_window_present (GTK_WINDOW (f->window));

  id = g_timeout_add (10000, timeout_cb, &expired);
  while ((gtk_widget_get_width (GTK_WIDGET (f->chart)) != WIDTH || gtk_widget_get_height (GTK_WIDGET (f->chart)) != HEIGHT) && !expired)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (expired);
  g_source_remove (id);

  f->paintable = gtk_widget_paintable_new (GTK_WIDGET (f->chart));
  g_signal_connect (f->paintable, "invalidate-contents", G_CALLBACK (invalidate_contents_cb), f);
}

static void
fixture_teardown (Fixture      *f,
                  gconstpointer data)
{
  g_object_add_weak_pointer (G_OBJECT (f->chart), (gpointer *) &f->chart);
  g_clear_object (&f->paintable);
  gtk_window_destroy (GTK_WINDOW (f->window));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  /* the chart dies with its window: no leaked reference or source */
  g_assert_null (f->chart);
}

/* Points every step_s seconds from start, n of them, values from fn */
static GArray *
make_points (gint64 start,
             guint  n,
             int    step_s,
             double (*fn) (guint i))
{
  GArray *points = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), n);

  for (guint i = 0; i < n; i++)
    {
      FlPoint p = { start + (gint64) i * step_s * 1000, fn (i) };

      g_array_append_val (points, p);
    }
  return points;
}

/* 121 points from 18.2 to 24.9, ending at 21.3 */
static double
temperature (guint i)
{
  if (i == 30)
    return 18.2;
  if (i == 90)
    return 24.9;
  if (i == 120)
    return 21.3;
  return 20 + (i % 7) * 0.5;
}

static double
constant_90 (guint i)
{
  return 90;
}

static double
constant_10 (guint i)
{
  return 10;
}

static double
ramp (guint i)
{
  return i;
}

/* Renders the chart's last frame offscreen (after a new frame) and
 * returns its pixels, B G R A premultiplied, stride WIDTH * 4 */
static guint8 *
render (Fixture *f)
{
  g_autoptr (GError)      error = NULL;
  g_autoptr (GskRenderer) renderer = gsk_cairo_renderer_new ();
  g_autoptr (GdkTexture)  texture = NULL;
  GtkSnapshot            *snapshot;
  GskRenderNode          *node;
  guint8                 *pixels;

  f->invalidated = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (f->chart));
  wait_for_flag (&f->invalidated);

  g_assert_cmpint (gdk_paintable_get_intrinsic_width (f->paintable), ==, WIDTH);
  g_assert_cmpint (gdk_paintable_get_intrinsic_height (f->paintable), ==, HEIGHT);

  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (f->paintable, snapshot, WIDTH, HEIGHT);
  node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);

  g_assert_true (gsk_renderer_realize (renderer, NULL, &error));
  g_assert_no_error (error);
  texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, WIDTH, HEIGHT));
  gsk_renderer_unrealize (renderer);
  gsk_render_node_unref (node);

  g_assert_cmpint (gdk_texture_get_width (texture), ==, WIDTH);
  g_assert_cmpint (gdk_texture_get_height (texture), ==, HEIGHT);
  /* FL_TEST_CHART_DUMP=DIR saves each render, to look at */
  if (g_getenv ("FL_TEST_CHART_DUMP") != NULL)
    {
      static guint     n_dumps;
      g_autofree char *name = g_strdup_printf ("chart-%02u.png", n_dumps++);
      g_autofree char *path = g_build_filename (g_getenv ("FL_TEST_CHART_DUMP"), name, NULL);

      g_assert_true (gdk_texture_save_to_png (texture, path));
      g_test_message ("rendered %s", path);
    }
  pixels = g_malloc0 (WIDTH * HEIGHT * 4);
  gdk_texture_download (texture, pixels, WIDTH * 4);
  return pixels;
}

/* Whether the pixel is mostly opaque and of @color's hue (the pixels are
 * premultiplied: an antialiased edge keeps the hue, with less alpha) */
static gboolean
is_color (const guint8  *pixels,
          int            x,
          int            y,
          const GdkRGBA *color)
{
  const guint8 *p;
  double        want[3] = { color->blue, color->green, color->red };

  if (x < 0 || y < 0 || x >= WIDTH || y >= HEIGHT)
    return FALSE;
  p = pixels + (gsize) y * WIDTH * 4 + x * 4;
  if (p[3] < 128)
    return FALSE;
  for (guint c = 0; c < 3; c++)
    if (fabs (p[c] - want[c] * p[3]) > 0.25 * p[3])
      return FALSE;
  return TRUE;
}

/* Pixels of @color in the rectangle */
static guint
count_color (const guint8  *pixels,
             const GdkRGBA *color,
             int            x0,
             int            y0,
             int            x1,
             int            y1)
{
  guint n = 0;

  for (int y = MAX (0, y0); y < MIN (HEIGHT, y1); y++)
    for (int x = MAX (0, x0); x < MIN (WIDTH, x1); x++)
      n += is_color (pixels, x, y, color);
  return n;
}

/* The summary */

static void
test_summary (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GArray) points = make_points (T10, 121, 30, temperature);
  g_autofree char   *summary = NULL;
  g_autofree char   *count = NULL;
  g_autofree char   *want = NULL;
  guint              temp, humidity;

  g_assert_cmpint (gtk_accessible_get_accessible_role (GTK_ACCESSIBLE (f->chart)), ==, GTK_ACCESSIBLE_ROLE_IMG);

  summary = fl_chart_dup_summary (f->chart);
  g_assert_cmpstr (summary, ==, "Empty chart");
  g_clear_pointer (&summary, g_free);

  temp = fl_chart_add_series (f->chart, "Temperature", "°C", &red);
  humidity = fl_chart_add_series (f->chart, "Humidity", "%", NULL);
  g_assert_cmpuint (temp, ==, 0);
  g_assert_cmpuint (humidity, ==, 1);
  fl_chart_set_points (f->chart, temp, points);
  fl_chart_set_range (f->chart, T10, T10 + 3600000);

  summary = fl_chart_dup_summary (f->chart);
  g_assert_cmpstr (summary, ==,
                   "Temperature (°C): 121 points from 10:00 to 11:00, min 18.2, max 24.9, latest 21.3; "
                   "Humidity (%): no data");
  g_clear_pointer (&summary, g_free);

  /* the first half hour: 61 points, the 18.2 in it, not the 24.9; under
   * an hour, the times have seconds */
  fl_chart_set_range (f->chart, T10, T10 + 1800000);
  summary = fl_chart_dup_summary (f->chart);
  g_assert_cmpstr (summary, ==,
                   "Temperature (°C): 61 points from 10:00:00 to 10:30:00, min 18.2, max 23, latest 22; "
                   "Humidity (%): no data");
  g_clear_pointer (&summary, g_free);

  /* one point, and no unit */
  {
    const FlPoint one = { T10 + 60000, 40.5 };
    guint         dew = fl_chart_add_series (f->chart, "Dew", NULL, NULL);

    fl_chart_append_points (f->chart, dew, &one, 1);
    summary = fl_chart_dup_summary (f->chart);
    g_assert_true (g_str_has_suffix (summary, "; Dew: 1 point from 10:01:00 to 10:01:00, min 40.5, max 40.5, latest 40.5"));
    g_clear_pointer (&summary, g_free);
  }

  /* a count in the thousands, in the locale's digits */
  {
    g_autoptr (GArray) many = make_points (T10, 1234, 1, ramp);

    fl_chart_set_points (f->chart, humidity, many);
    fl_chart_set_range (f->chart, T10, T10 + 3600000);
    count = g_strdup_printf ("%'u", 1234u);
    want = g_strdup_printf ("Humidity (%%): %s points from 10:00:00 to 10:20:33, min 0, max 1233, latest 1233", count);
    summary = fl_chart_dup_summary (f->chart);
    g_assert_nonnull (strstr (summary, want));
    g_clear_pointer (&summary, g_free);
  }
}

/* The summary is the accessible description, updated after a delay */
static void
test_accessible_description (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr (GArray) points = make_points (T10, 121, 30, temperature);
  g_autofree char   *before = NULL;
  g_autofree char   *after = NULL;
  g_autofree char   *error = NULL;
  const FlPoint      late = { T10 + 3600000 + 30000, 30 };
  gboolean           updated = FALSE;
  gint64             deadline;
  guint              temp;

  temp = fl_chart_add_series (f->chart, "Temperature", "°C", &red);
  fl_chart_set_points (f->chart, temp, points);
  fl_chart_set_range (f->chart, T10, T10 + 3600000);
  _fl_chart_flush_summary (f->chart);
  before = fl_chart_dup_summary (f->chart);
  gtk_test_accessible_assert_property (f->chart, GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, before);

  /* new data changes the summary at once, the description only later */
  fl_chart_set_range (f->chart, T10, T10 + 3600000 + 60000);
  fl_chart_append_points (f->chart, temp, &late, 1);
  after = fl_chart_dup_summary (f->chart);
  g_assert_cmpstr (before, !=, after);
  g_assert_nonnull (strstr (after, "122 points"));
  gtk_test_accessible_assert_property (f->chart, GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, before);

  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!updated && g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (NULL, FALSE);
      g_clear_pointer (&error, g_free);
      error = gtk_test_accessible_check_property (GTK_ACCESSIBLE (f->chart), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, after);
      updated = error == NULL;
      g_usleep (1000);
    }
  g_assert_true (updated);
}

/* Range, actions and key bindings */

static void
assert_range (FlChart *chart,
              gint64   from,
              gint64   to)
{
  gint64 got_from = 0, got_to = 0;

  fl_chart_get_range (chart, &got_from, &got_to);
  g_assert_cmpint (got_from, ==, from);
  g_assert_cmpint (got_to, ==, to);
}

static void
test_range_actions (Fixture      *f,
                    gconstpointer data)
{
  /* 1001 points, one a second, from T10 */
  g_autoptr (GArray) points = make_points (T10, 1001, 1, ramp);
  guint              s = fl_chart_add_series (f->chart, "Ramp", NULL, &red);
  guint              changes;

  /* auto range: the data's extent */
  fl_chart_set_points (f->chart, s, points);
  assert_range (f->chart, T10, T10 + 1000000);
  g_assert_cmpuint (f->range_changes, >=, 1);
  g_assert_cmpint (f->last_from, ==, T10);
  g_assert_cmpint (f->last_to, ==, T10 + 1000000);

  fl_chart_set_range (f->chart, T10 + 200000, T10 + 600000);
  assert_range (f->chart, T10 + 200000, T10 + 600000);
  g_assert_cmpint (f->last_from, ==, T10 + 200000);
  g_assert_cmpint (f->last_to, ==, T10 + 600000);

  /* the same range again: no signal */
  changes = f->range_changes;
  fl_chart_set_range (f->chart, T10 + 200000, T10 + 600000);
  g_assert_cmpuint (f->range_changes, ==, changes);

  /* zoom by 2 around the middle */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-in", NULL));
  assert_range (f->chart, T10 + 300000, T10 + 500000);
  g_assert_cmpuint (f->range_changes, ==, changes + 1);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-out", NULL));
  assert_range (f->chart, T10 + 200000, T10 + 600000);

  /* pan by a tenth of the width */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.pan-left", NULL));
  assert_range (f->chart, T10 + 160000, T10 + 560000);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.pan-right", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.pan-right", NULL));
  assert_range (f->chart, T10 + 240000, T10 + 640000);

  /* reset: all the data, and it stays so as data grows */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.reset", NULL));
  assert_range (f->chart, T10, T10 + 1000000);
  {
    const FlPoint more = { T10 + 1500000, 3 };

    fl_chart_append_points (f->chart, s, &more, 1);
    assert_range (f->chart, T10, T10 + 1500000);
  }

  /* zoom stops at a second */
  fl_chart_set_range (f->chart, T10, T10 + 3000);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-in", NULL));
  assert_range (f->chart, T10 + 750, T10 + 2250);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-in", NULL));
  assert_range (f->chart, T10 + 1000, T10 + 2000);
  gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-in", NULL);
  assert_range (f->chart, T10 + 1000, T10 + 2000);

  /* follow toggles */
  g_assert_false (fl_chart_get_follow (f->chart));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.follow", NULL));
  g_assert_true (fl_chart_get_follow (f->chart));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.follow", NULL));
  g_assert_false (fl_chart_get_follow (f->chart));
  g_assert_cmpuint (f->follow_notifies, ==, 2);
}

/* The keys each action is bound to, from the chart's shortcut controller */
static char *
action_for_key (FlChart *chart,
                guint    keyval)
{
  g_autoptr (GListModel) controllers = gtk_widget_observe_controllers (GTK_WIDGET (chart));

  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++)
    {
      g_autoptr (GtkEventController) controller = g_list_model_get_item (controllers, i);

      if (!GTK_IS_SHORTCUT_CONTROLLER (controller))
        continue;
      for (guint j = 0; j < g_list_model_get_n_items (G_LIST_MODEL (controller)); j++)
        {
          g_autoptr (GtkShortcut) shortcut = g_list_model_get_item (G_LIST_MODEL (controller), j);
          GtkShortcutTrigger     *trigger = gtk_shortcut_get_trigger (shortcut);
          GtkShortcutAction      *action = gtk_shortcut_get_action (shortcut);

          if (GTK_IS_KEYVAL_TRIGGER (trigger) && GTK_IS_NAMED_ACTION (action) && gtk_keyval_trigger_get_keyval (GTK_KEYVAL_TRIGGER (trigger)) == keyval && gtk_keyval_trigger_get_modifiers (GTK_KEYVAL_TRIGGER (trigger)) == 0)
            return g_strdup (gtk_named_action_get_action_name (GTK_NAMED_ACTION (action)));
        }
    }
  return NULL;
}

static void
test_key_bindings (Fixture      *f,
                   gconstpointer data)
{
  const struct
  {
    guint       keyval;
    const char *action;
  } bindings[] = {
    { GDK_KEY_plus, "chart.zoom-in" },
    { GDK_KEY_KP_Add, "chart.zoom-in" },
    { GDK_KEY_minus, "chart.zoom-out" },
    { GDK_KEY_KP_Subtract, "chart.zoom-out" },
    { GDK_KEY_Left, "chart.pan-left" },
    { GDK_KEY_Right, "chart.pan-right" },
    { GDK_KEY_Home, "chart.reset" },
    { GDK_KEY_f, "chart.follow" },
  };

  g_assert_true (gtk_widget_get_focusable (GTK_WIDGET (f->chart)));
  for (guint i = 0; i < G_N_ELEMENTS (bindings); i++)
    {
      g_autofree char *action = action_for_key (f->chart, bindings[i].keyval);

      g_assert_cmpstr (action, ==, bindings[i].action);
    }
  g_assert_null (action_for_key (f->chart, GDK_KEY_a));
}

/* Follow mode */

static void
test_follow (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GArray) points = make_points (T10, 600, 1, ramp);
  guint              s = fl_chart_add_series (f->chart, "Live", NULL, &red);
  gint64             newest = T10 + 599000;

  fl_chart_set_points (f->chart, s, points);
  fl_chart_set_range (f->chart, T10, T10 + 60000);
  g_object_set (f->chart, "follow", TRUE, NULL);
  g_assert_cmpuint (f->follow_notifies, ==, 1);
  assert_range (f->chart, newest - 60000, newest);

  /* live points move the range; its width stays */
  for (guint i = 1; i <= 100; i++)
    {
      FlPoint p = { newest + i * 1000, i };

      fl_chart_append_points (f->chart, s, &p, 1);
      assert_range (f->chart, p.t - 60000, p.t);
      g_assert_cmpint (f->last_to, ==, p.t);
    }
  newest += 100000;

  /* a late point does not move it */
  {
    const FlPoint late = { newest - 30500, -1 };

    fl_chart_append_points (f->chart, s, &late, 1);
    assert_range (f->chart, newest - 60000, newest);
  }

  /* panning turns follow off, and new points no longer move the range */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.pan-left", NULL));
  g_assert_false (fl_chart_get_follow (f->chart));
  g_assert_cmpuint (f->follow_notifies, ==, 2);
  assert_range (f->chart, newest - 66000, newest - 6000);
  {
    const FlPoint p = { newest + 1000, 0 };

    fl_chart_append_points (f->chart, s, &p, 1);
    newest += 1000;
    assert_range (f->chart, newest - 67000, newest - 7000);
  }

  /* and so does zooming */
  fl_chart_set_follow (f->chart, TRUE);
  assert_range (f->chart, newest - 60000, newest);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->chart), "chart.zoom-in", NULL));
  g_assert_false (fl_chart_get_follow (f->chart));
  assert_range (f->chart, newest - 45000, newest - 15000);
}

/* Appending: order kept, late points in place, the caller's array intact */
static void
test_append (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GArray) mine = g_array_new (FALSE, FALSE, sizeof (FlPoint));
  const FlPoint      first[] = { { 1000, 1 }, { 2000, 2 }, { 5000, 5 } };
  const FlPoint      second[] = { { 3000, 3 } };
  const FlPoint      third[] = { { 4000, 4 }, { 6000, 6 }, { 2000, 2.5 } };
  guint              s = fl_chart_add_series (f->chart, "S", NULL, NULL);
  FlChartSeries     *series;
  const double       want[] = { 1, 2, 2.5, 3, 4, 5, 6, 7, 8 };

  g_array_append_vals (mine, first, 3);
  fl_chart_set_points (f->chart, s, mine);
  fl_chart_append_points (f->chart, s, second, 1);
  fl_chart_append_points (f->chart, s, third, 3);
  {
    const FlPoint tail[] = { { 7000, 7 }, { 8000, 8 } };

    fl_chart_append_points (f->chart, s, tail, 2);
  }

  /* the caller's array is untouched */
  g_assert_cmpuint (mine->len, ==, 3);
  g_assert_cmpint (g_array_index (mine, FlPoint, 2).t, ==, 5000);

  series = g_ptr_array_index (f->chart->series, s);
  g_assert_cmpuint (series->points->len, ==, G_N_ELEMENTS (want));
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    {
      g_assert_cmpfloat (g_array_index (series->points, FlPoint, i).v, ==, want[i]);
      if (i > 0)
        g_assert_cmpint (g_array_index (series->points, FlPoint, i).t, >=, g_array_index (series->points, FlPoint, i - 1).t);
    }

  /* many live points, one at a time, in amortised constant time: a
   * million take well under a few seconds even in a debug build */
  {
    gint64 start = g_get_monotonic_time ();

    for (guint i = 0; i < 1000000; i++)
      {
        FlPoint p = { 10000 + i, i };

        fl_chart_append_points (f->chart, s, &p, 1);
      }
    g_assert_cmpuint (series->points->len, ==, G_N_ELEMENTS (want) + 1000000);
    g_assert_cmpint (g_get_monotonic_time () - start, <, 20 * G_USEC_PER_SEC);
  }

  /* clear removes the series */
  fl_chart_clear (f->chart);
  g_assert_cmpuint (fl_chart_get_n_series (f->chart), ==, 0);
}

/* Pixels */

static void
test_render (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GArray) high = make_points (T10, 200, 10, constant_90);
  g_autoptr (GArray) low = make_points (T10, 200, 10, constant_10);
  g_autofree guint8 *pixels = NULL;
  graphene_rect_t    plot;
  int                px0, py0, px1, py1, y_high, y_low;
  guint              s_high, s_low, n;

  s_high = fl_chart_add_series (f->chart, "High", NULL, &red);
  s_low = fl_chart_add_series (f->chart, "Low", NULL, &blue);
  fl_chart_set_points (f->chart, s_high, high);
  fl_chart_set_points (f->chart, s_low, low);
  fl_chart_set_range (f->chart, T10, T10 + 1990000);
  _fl_chart_unset_pointer (f->chart);

  pixels = render (f);
  g_assert_true (_fl_chart_get_plot_area (f->chart, &plot));
  px0 = (int) ceil (plot.origin.x);
  py0 = (int) ceil (plot.origin.y);
  px1 = (int) floor (plot.origin.x + plot.size.width);
  py1 = (int) floor (plot.origin.y + plot.size.height);
  g_assert_cmpint (px1 - px0, >, WIDTH / 2);
  g_assert_cmpint (py1 - py0, >, HEIGHT / 2);

  /* the high series: a line across the top of the plot, nowhere else */
  y_high = (int) _fl_chart_y_for_value (f->chart, 90);
  g_assert_cmpint (y_high, <, py0 + (py1 - py0) / 4);
  n = count_color (pixels, &red, px0, py0, px1, py1);
  g_assert_cmpuint (n, >=, (guint) (px1 - px0) * 9 / 10);
  g_assert_cmpuint (count_color (pixels, &red, px0, py0, px1, py0 + (py1 - py0) / 4), ==, n);
  for (int x = px0 + 10; x < px1 - 10; x += 50)
    g_assert_cmpuint (count_color (pixels, &red, x, y_high - 2, x + 1, y_high + 3), >=, 1);

  /* the low series: along the bottom */
  y_low = (int) _fl_chart_y_for_value (f->chart, 10);
  g_assert_cmpint (y_low, >, py1 - (py1 - py0) / 4);
  n = count_color (pixels, &blue, px0, py0, px1, py1);
  g_assert_cmpuint (n, >=, (guint) (px1 - px0) * 9 / 10);
  g_assert_cmpuint (count_color (pixels, &blue, px0, py1 - (py1 - py0) / 4, px1, py1 + 1), ==, n);

  /* the legend names them above the plot, with their colors */
  g_assert_cmpuint (count_color (pixels, &red, 0, 0, WIDTH, py0 - 1), >, 0);
  g_assert_cmpuint (count_color (pixels, &blue, 0, 0, WIDTH, py0 - 1), >, 0);

  /* the range halves: the same lines, still across */
  g_clear_pointer (&pixels, g_free);
  fl_chart_set_range (f->chart, T10 + 500000, T10 + 1000000);
  pixels = render (f);
  g_assert_cmpuint (count_color (pixels, &red, px0, py0, px1, py0 + (py1 - py0) / 4), >=, (guint) (px1 - px0) * 9 / 10);
}

/* A single spike among 200,000 flat points survives decimation */
static void
test_render_spike (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (GArray) points = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), 200000);
  g_autofree guint8 *pixels = NULL;
  gint64             t_spike = T10 + 123457;
  graphene_rect_t    plot;
  guint              s;
  int                x_spike, y_top, y_flat;

  for (guint i = 0; i < 200000; i++)
    {
      FlPoint p = { T10 + i, T10 + i == t_spike ? 100 : 0 };

      g_array_append_val (points, p);
    }
  s = fl_chart_add_series (f->chart, "Spiky", NULL, &red);
  fl_chart_set_points (f->chart, s, points);
  fl_chart_set_range (f->chart, T10, T10 + 199999);

  pixels = render (f);
  g_assert_true (_fl_chart_get_plot_area (f->chart, &plot));
  x_spike = (int) _fl_chart_x_for_time (f->chart, t_spike);
  y_top = (int) _fl_chart_y_for_value (f->chart, 100);
  y_flat = (int) _fl_chart_y_for_value (f->chart, 0);
  g_assert_cmpint (y_flat - y_top, >, 100);

  /* the spike reaches the top at its time, and only there */
  g_assert_cmpuint (count_color (pixels, &red, x_spike - 2, y_top - 2, x_spike + 3, y_top + 3), >, 0);
  g_assert_cmpuint (count_color (pixels, &red, (int) plot.origin.x, (int) plot.origin.y, x_spike - 3, y_flat - 10), ==, 0);
  g_assert_cmpuint (count_color (pixels, &red, x_spike + 4, (int) plot.origin.y, (int) (plot.origin.x + plot.size.width), y_flat - 10), ==, 0);
  /* and the flat line is there on both sides */
  g_assert_cmpuint (count_color (pixels, &red, (int) plot.origin.x + 5, y_flat - 2, x_spike - 5, y_flat + 3), >, 100);
  g_assert_cmpuint (count_color (pixels, &red, x_spike + 5, y_flat - 2, (int) (plot.origin.x + plot.size.width) - 5, y_flat + 3), >, 100);
}

/* The hover readout */

static double
temp_by_minute (guint i)
{
  return 20 + i * 0.1;
}

static double
humidity_by_2min (guint i)
{
  return 40 + i;
}

static void
test_readout (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GArray) temp = make_points (T10, 61, 60, temp_by_minute);
  g_autoptr (GArray) humidity = make_points (T10 + 30000, 30, 120, humidity_by_2min);
  g_autofree char   *readout = NULL;
  g_autofree guint8 *with_pointer = NULL;
  g_autofree guint8 *without = NULL;
  graphene_rect_t    plot;
  double             x, y;
  guint              s_temp, s_hum;
  int                line_with = 0, line_without = 0;

  s_temp = fl_chart_add_series (f->chart, "Temperature", "°C", &red);
  s_hum = fl_chart_add_series (f->chart, "Humidity", "%", &blue);
  fl_chart_add_series (f->chart, "Empty", NULL, NULL);
  fl_chart_set_points (f->chart, s_temp, temp);
  fl_chart_set_points (f->chart, s_hum, humidity);
  fl_chart_set_range (f->chart, T10, T10 + 3600000);
  g_assert_true (_fl_chart_get_plot_area (f->chart, &plot));

  /* no pointer, no readout */
  g_assert_null (_fl_chart_dup_readout (f->chart));

  /* at 10:10:20: temperature's nearest is 10:10:00 (21), humidity's is
   * 10:10:30 (45); the empty series is left out */
  x = _fl_chart_x_for_time (f->chart, T10 + 620000);
  y = plot.origin.y + plot.size.height / 2;
  _fl_chart_set_pointer (f->chart, x, y);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_cmpstr (readout, ==, "10:10:20\nTemperature: 21 °C\nHumidity: 45 %");
  g_clear_pointer (&readout, g_free);

  /* at 10:11:40: 10:12:00 (21.2) and 10:12:30 (46) */
  _fl_chart_set_pointer (f->chart, _fl_chart_x_for_time (f->chart, T10 + 700000), y);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_cmpstr (readout, ==, "10:11:40\nTemperature: 21.2 °C\nHumidity: 46 %");
  g_clear_pointer (&readout, g_free);

  /* only points in the visible range count */
  fl_chart_set_range (f->chart, T10 + 630000, T10 + 3600000);
  _fl_chart_set_pointer (f->chart, _fl_chart_x_for_time (f->chart, T10 + 630000), y);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_cmpstr (readout, ==, "10:10:30\nTemperature: 21.1 °C\nHumidity: 45 %");
  g_clear_pointer (&readout, g_free);

  /* far from every point (the data ends at 11:00, the pointer is at
   * 13:00): nothing to read out but the time */
  fl_chart_set_range (f->chart, T10, T10 + 4 * 3600000);
  _fl_chart_set_pointer (f->chart, _fl_chart_x_for_time (f->chart, T10 + 3 * 3600000), y);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_nonnull (readout);
  g_assert_null (strstr (readout, "Temperature"));
  g_assert_null (strstr (readout, "Humidity"));
  g_clear_pointer (&readout, g_free);
  fl_chart_set_range (f->chart, T10, T10 + 3600000);

  /* the pointer's line is drawn: a column of pixels that is not there
   * without the pointer */
  _fl_chart_set_pointer (f->chart, x, y);
  with_pointer = render (f);
  _fl_chart_unset_pointer (f->chart);
  g_assert_null (_fl_chart_dup_readout (f->chart));
  without = render (f);
  for (int py = (int) plot.origin.y + 1; py < (int) (plot.origin.y + plot.size.height) - 1; py++)
    {
      line_with += with_pointer[(gsize) py * WIDTH * 4 + lround (x) * 4 + 3] > 40;
      line_without += without[(gsize) py * WIDTH * 4 + lround (x) * 4 + 3] > 40;
    }
  g_assert_cmpint (line_with, >, (int) plot.size.height * 8 / 10);
  g_assert_cmpint (line_without, <, (int) plot.size.height / 4);
  /* and the box shows the series' colors beside the line */
  g_assert_cmpuint (count_color (with_pointer, &red, (int) x + 8, (int) plot.origin.y, (int) x + 30, (int) plot.origin.y + 60), >, 10);
  g_assert_cmpuint (count_color (without, &red, (int) x + 8, (int) plot.origin.y, (int) x + 30, (int) plot.origin.y + 60), <, 10);

  /* the pointer over the legend or the axes: nothing */
  _fl_chart_set_pointer (f->chart, x, plot.origin.y - 5);
  g_assert_null (_fl_chart_dup_readout (f->chart));
  _fl_chart_set_pointer (f->chart, plot.origin.x - 5, y);
  g_assert_null (_fl_chart_dup_readout (f->chart));
}

/* Server-side buckets: a band and a mean line, the summary and readout */
static void
test_buckets (Fixture      *f,
              gconstpointer data)
{
  FlBucket           buckets[24] = { 0 };
  g_autofree char   *count = NULL;
  g_autofree char   *want = NULL;
  g_autofree char   *summary = NULL;
  g_autofree char   *readout = NULL;
  g_autofree guint8 *pixels = NULL;
  graphene_rect_t    plot;
  gint64             day = utc_ms (2024, 5, 14, 0, 0, 0);
  guint              s;
  int                y_avg;

  for (guint i = 0; i < 24; i++)
    {
      buckets[i].n = 60;
      buckets[i].min = 10 + i;
      buckets[i].max = 30 + i;
      buckets[i].avg = 20 + i;
    }
  buckets[5].n = 0; /* a gap */

  s = fl_chart_add_series (f->chart, "Temperature", "°C", &red);
  fl_chart_set_buckets (f->chart, s, buckets, 24, day, 3600000);

  /* auto range: the buckets' extent */
  g_assert_cmpint (f->last_from, ==, day);
  g_assert_cmpint (f->last_to, ==, day + 24 * 3600000 - 1);

  count = g_strdup_printf ("%'u", 1380u);
  want = g_strdup_printf ("Temperature (°C): %s points from 00:00 to 23:59, min 10, max 53, latest 43", count);
  summary = fl_chart_dup_summary (f->chart);
  g_assert_cmpstr (summary, ==, want);
  g_clear_pointer (&summary, g_free);

  g_assert_true (_fl_chart_get_plot_area (f->chart, &plot));
  _fl_chart_set_pointer (f->chart, _fl_chart_x_for_time (f->chart, day + 2 * 3600000 + 1800000), plot.origin.y + 10);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_cmpstr (readout, ==, "02:30:00\nTemperature: 22 °C");
  g_clear_pointer (&readout, g_free);
  /* over the gap: no value */
  _fl_chart_set_pointer (f->chart, _fl_chart_x_for_time (f->chart, day + 5 * 3600000 + 1800000), plot.origin.y + 10);
  readout = _fl_chart_dup_readout (f->chart);
  g_assert_cmpstr (readout, ==, "05:30:00");
  _fl_chart_unset_pointer (f->chart);

  /* the mean line in full color, the band lighter around it */
  pixels = render (f);
  y_avg = (int) _fl_chart_y_for_value (f->chart, 32);
  {
    int           x = (int) _fl_chart_x_for_time (f->chart, day + 12 * 3600000 + 1800000);
    int           y_band = (int) _fl_chart_y_for_value (f->chart, 38);
    const guint8 *band = pixels + (gsize) y_band * WIDTH * 4 + x * 4;

    g_assert_cmpuint (count_color (pixels, &red, x - 1, y_avg - 2, x + 2, y_avg + 3), >, 0);
    /* translucent red: some alpha, red only */
    g_assert_cmpint (band[3], >, 20);
    g_assert_cmpint (band[3], <, 160);
    g_assert_cmpint (band[2], >, band[0] + 20);
    g_assert_cmpint (band[2], >, band[1] + 20);
  }
  /* nothing in the gap's hour above the neighbours' bands */
  {
    int           x = (int) _fl_chart_x_for_time (f->chart, day + 5 * 3600000 + 1800000);
    const guint8 *gap = pixels + (gsize) (int) _fl_chart_y_for_value (f->chart, 25) * WIDTH * 4 + x * 4;

    g_assert_cmpint (gap[3], <, 20);
  }
}

int
main (int    argc,
      char **argv)
{
  /* fixed times and number formats; the test AT context, to read the
   * accessible description */
  g_setenv ("TZ", "UTC", TRUE);
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);
  g_setenv ("GTK_A11Y", "test", TRUE);
  gtk_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add ("/fieldline/chart/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("summary", test_summary);
  ADD ("accessible-description", test_accessible_description);
  ADD ("range-actions", test_range_actions);
  ADD ("key-bindings", test_key_bindings);
  ADD ("follow", test_follow);
  ADD ("append", test_append);
  ADD ("render", test_render);
  ADD ("render-spike", test_render_spike);
  ADD ("readout", test_readout);
  ADD ("buckets", test_buckets);
#undef ADD

  return g_test_run ();
}
