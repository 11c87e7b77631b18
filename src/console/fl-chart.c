/* fl-chart.c: a telemetry chart.
 *
 * Series of points (raw, live or historical) and of server-side buckets
 * (min, max and mean per interval, for long ranges) over one time axis.
 * Each frame decimates the points in the visible range to one min-max
 * column per pixel (fl_decimate_minmax(), exact: no extreme is lost) and
 * draws a polyline through the columns, so the cost of a frame depends on
 * the points in range and the width, never on zoom level tricks.  The
 * decimation is cached until the range, the data or the size changes: a
 * hover redraw does not decimate again.
 *
 * The range is [from, to], both ends included.  Three modes: auto (the
 * data's extent, the initial mode, and Home), follow (the width stays, the
 * right edge is the newest point) and manual (set_range, zoom, pan).
 * Zooming and panning by the user turn follow off.
 *
 * Input: ctrl+scroll and pinch zoom around the pointer; horizontal
 * (touchpad) scroll, shift+scroll and drag pan; plain vertical scroll is
 * left to the page.  Keyboard: + and - zoom, Left and Right pan, Home
 * shows all the data, f toggles follow; each is a chart.* action.
 *
 * Accessibility: role IMG, and a text summary of the visible data as the
 * description, updated at most every SUMMARY_DELAY_MS. */
#define G_LOG_DOMAIN "fl-chart"

#include "config.h"

#include <locale.h>
#include <math.h>
#include <string.h>

#include <glib/gi18n.h>

#include "fl-chart-private.h"

#define MIN_SPAN_MS G_GINT64_CONSTANT (1000)
#define MAX_SPAN_MS (G_GINT64_CONSTANT (200) * 366 * 24 * 3600 * 1000)
#define RANGE_LIMIT_MS (G_GINT64_CONSTANT (1) << 60)
#define DEFAULT_SPAN_MS (G_GINT64_CONSTANT (3600) * 1000)
#define SINGLE_SPAN_MS (G_GINT64_CONSTANT (60) * 1000)
#define ZOOM_STEP 2.0         /* keyboard and action zoom factor */
#define ZOOM_WHEEL 1.25       /* per wheel notch */
#define PIXELS_PER_NOTCH 20.0 /* smooth scroll pixels counted as a notch */
#define PAN_FRACTION 0.1      /* keyboard and wheel pan, of the width */
#define SUMMARY_DELAY_MS 500
#define LINE_WIDTH 1.5

enum
{
  PROP_0,
  PROP_FOLLOW,
  N_PROPS
};

enum
{
  RANGE_CHANGED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint       signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (FlChart, fl_chart, GTK_TYPE_WIDGET)

/* Adwaita's palette, for series added without a color */
static const char *const default_colors[] = {
  "#3584e4",
  "#e66100",
  "#26a269",
  "#c01c28",
  "#9141ac",
  "#986a44",
  "#e5a50a",
  "#2190a4",
};

static void
series_free (gpointer data)
{
  FlChartSeries *s = data;

  g_clear_pointer (&s->name, g_free);
  g_clear_pointer (&s->unit, g_free);
  g_clear_pointer (&s->points, g_array_unref);
  g_clear_pointer (&s->buckets, g_free);
  g_clear_pointer (&s->columns, g_free);
  g_free (s);
}

static inline FlChartSeries *
get_series (FlChart *self,
            guint    i)
{
  return g_ptr_array_index (self->series, i);
}

static inline const FlPoint *
series_points (FlChartSeries *s,
               gsize         *n)
{
  if (s->points == NULL)
    {
      *n = 0;
      return NULL;
    }
  *n = s->points->len;
  return (const FlPoint *) (gpointer) s->points->data;
}

/* Formatting */

/* A value with 4 significant digits and no trailing zeros, in the
 * locale's notation */
static char *
format_value (double v)
{
  int   decimals;
  char *str;

  if (!isfinite (v))
    return g_strdup (isnan (v) ? "–" : (v > 0 ? "∞" : "−∞"));
  if (v == 0)
    return g_strdup ("0");
  if (fabs (v) >= 1e15 || fabs (v) < 1e-6)
    return g_strdup_printf ("%.4g", v);

  decimals = 3 - (int) floor (log10 (fabs (v)));
  decimals = CLAMP (decimals, 0, 9);
  str = g_strdup_printf ("%.*f", decimals, v);
  if (decimals > 0)
    {
      const char *point = localeconv ()->decimal_point;
      gsize       len = strlen (str);
      gsize       point_len = strlen (point);

      while (len > 0 && str[len - 1] == '0')
        str[--len] = '\0';
      if (len >= point_len && strcmp (str + len - point_len, point) == 0)
        str[len - point_len] = '\0';
    }
  if (strcmp (str, "-0") == 0)
    {
      g_free (str);
      str = g_strdup ("0");
    }
  return str;
}

/* A value on the axis, with the decimals the step needs */
static char *
format_tick_value (double v,
                   double step)
{
  int decimals;

  if (!(step > 0))
    return format_value (v);
  decimals = -(int) floor (log10 (step) + 1e-9);
  return g_strdup_printf ("%.*f", CLAMP (decimals, 0, 9), v);
}

static char *
format_value_with_unit (double      v,
                        const char *unit)
{
  g_autofree char *value = format_value (v);

  if (unit == NULL || *unit == '\0')
    return g_steal_pointer (&value);
  /* Translators: a value and its unit, e.g. "21.3 °C" */
  return g_strdup_printf (C_ ("value with unit", "%s %s"), value, unit);
}

static GDateTime *
local_time (gint64 ms)
{
  gint64 s = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);

  return g_date_time_new_from_unix_local (s);
}

static char *
format_time (gint64      ms,
             const char *format)
{
  g_autoptr (GDateTime) dt = local_time (ms);

  if (dt == NULL)
    return g_strdup ("?");
  return g_date_time_format (dt, format);
}

static gboolean
same_local_day (gint64 a,
                gint64 b)
{
  g_autoptr (GDateTime) da = local_time (a);
  g_autoptr (GDateTime) db = local_time (b);

  return da && db && g_date_time_get_year (da) == g_date_time_get_year (db) && g_date_time_get_day_of_year (da) == g_date_time_get_day_of_year (db);
}

static char *
series_label (FlChartSeries *s)
{
  if (s->unit == NULL || *s->unit == '\0')
    return g_strdup (s->name);
  /* Translators: a series name and its unit, e.g. "Temperature (°C)" */
  return g_strdup_printf (_ ("%s (%s)"), s->name, s->unit);
}

/* Geometry */

static inline double
x_for_time (FlChart *self,
            gint64   t)
{
  double span = (double) (self->to - self->from) + 1;

  return self->plot.origin.x + (double) (t - self->from) * self->plot.size.width / span;
}

static inline gint64
time_for_x (FlChart *self,
            double   x)
{
  double span = (double) (self->to - self->from) + 1;

  return self->from + (gint64) floor ((x - self->plot.origin.x) * span / self->plot.size.width);
}

static inline double
y_for_value (FlChart *self,
             double   v)
{
  double y = self->plot.origin.y + self->plot.size.height - (v - self->y_min) * self->plot.size.height / (self->y_max - self->y_min);

  /* keep cairo's fixed point coordinates in range */
  return CLAMP (y, -1e5, 1e5);
}

static inline double
column_x (FlChart *self,
          guint    c)
{
  return self->plot.origin.x + (c + 0.5) * self->plot.size.width / self->n_columns;
}

/* The range */

static void
update_action_state (FlChart *self)
{
  gint64 span = self->to - self->from;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chart.zoom-in", span > MIN_SPAN_MS);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chart.zoom-out", span < MAX_SPAN_MS);
}

static void schedule_summary (FlChart *self);

static void
invalidate (FlChart *self)
{
  self->layout_valid = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  schedule_summary (self);
}

/* Sets the range after clamping its width and position; emits
 * range-changed when it changed */
static void
apply_range (FlChart *self,
             gint64   from,
             gint64   to)
{
  if (to - from < MIN_SPAN_MS)
    {
      gint64 mid = from + (to - from) / 2;

      from = mid - MIN_SPAN_MS / 2;
      to = from + MIN_SPAN_MS;
    }
  else if (to - from > MAX_SPAN_MS)
    {
      gint64 mid = from + (to - from) / 2;

      from = mid - MAX_SPAN_MS / 2;
      to = from + MAX_SPAN_MS;
    }
  if (from < -RANGE_LIMIT_MS)
    {
      to += -RANGE_LIMIT_MS - from;
      from = -RANGE_LIMIT_MS;
    }
  if (to > RANGE_LIMIT_MS)
    {
      from -= to - RANGE_LIMIT_MS;
      to = RANGE_LIMIT_MS;
    }

  if (from == self->from && to == self->to)
    return;

  self->from = from;
  self->to = to;
  update_action_state (self);
  invalidate (self);
  g_signal_emit (self, signals[RANGE_CHANGED], 0, from, to);
}

/* The first and last times of all the data; FALSE when there is none */
static gboolean
data_extent (FlChart *self,
             gint64  *first,
             gint64  *last)
{
  gboolean found = FALSE;

  *first = G_MAXINT64;
  *last = G_MININT64;

  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries *s = get_series (self, i);
      gsize          n;
      const FlPoint *p = series_points (s, &n);

      if (n > 0)
        {
          *first = MIN (*first, p[0].t);
          *last = MAX (*last, p[n - 1].t);
          found = TRUE;
        }
      if (s->n_buckets > 0)
        {
          *first = MIN (*first, s->buckets_from);
          *last = MAX (*last, s->buckets_from + (gint64) s->n_buckets * s->bucket_ms - 1);
          found = TRUE;
        }
    }

  return found;
}

/* The time of the newest point, or of the end of the buckets, or now */
static gint64
newest_time (FlChart *self)
{
  gint64 newest = G_MININT64;
  gint64 bucket_end = G_MININT64;

  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries *s = get_series (self, i);
      gsize          n;
      const FlPoint *p = series_points (s, &n);

      if (n > 0)
        newest = MAX (newest, p[n - 1].t);
      if (s->n_buckets > 0)
        bucket_end = MAX (bucket_end, s->buckets_from + (gint64) s->n_buckets * s->bucket_ms - 1);
    }

  if (newest != G_MININT64)
    return newest;
  if (bucket_end != G_MININT64)
    return bucket_end;
  return g_get_real_time () / 1000;
}

/* Moves the range for the current mode after the data changed */
static void
update_range_for_mode (FlChart *self)
{
  if (self->follow)
    {
      gint64 span = self->to - self->from;
      gint64 newest = newest_time (self);

      apply_range (self, newest - span, newest);
    }
  else if (self->auto_range)
    {
      gint64 first, last;

      if (!data_extent (self, &first, &last))
        return;
      if (last - first < MIN_SPAN_MS)
        {
          /* a single instant: a minute around it */
          first -= SINGLE_SPAN_MS / 2;
          last = first + SINGLE_SPAN_MS;
        }
      apply_range (self, first, last);
    }
}

static void
data_changed (FlChart *self)
{
  invalidate (self);
  update_range_for_mode (self);
}

/* A change of range by the user: leaves the auto and follow modes */
static void
user_range (FlChart *self,
            gint64   from,
            gint64   to)
{
  self->auto_range = FALSE;
  fl_chart_set_follow (self, FALSE);
  apply_range (self, from, to);
}

static void
zoom_at (FlChart *self,
         double   factor,
         gint64   anchor,
         gint64   from,
         gint64   to)
{
  gint64 new_from, new_to;

  if (!(factor > 0) || !isfinite (factor))
    return;

  anchor = CLAMP (anchor, from, to);
  new_from = anchor - (gint64) llround ((double) (anchor - from) * factor);
  new_to = anchor + (gint64) llround ((double) (to - anchor) * factor);

  /* at the limits, keep the anchor where it is on the screen */
  if (new_to - new_from < MIN_SPAN_MS || new_to - new_from > MAX_SPAN_MS)
    {
      gint64 span = new_to - new_from < MIN_SPAN_MS ? MIN_SPAN_MS : MAX_SPAN_MS;
      double frac = to > from ? (double) (anchor - from) / (double) (to - from) : 0.5;

      new_from = anchor - (gint64) llround (frac * (double) span);
      new_to = new_from + span;
    }

  user_range (self, new_from, new_to);
}

static void
pan_by (FlChart *self,
        gint64   dt)
{
  if (dt != 0)
    user_range (self, self->from + dt, self->to + dt);
}

/* Layout */

static PangoLayout *
create_label_layout (FlChart *self)
{
  PangoLayout   *layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), NULL);
  PangoAttrList *attrs = pango_attr_list_new ();

  pango_attr_list_insert (attrs, pango_attr_scale_new (PANGO_SCALE_SMALL));
  pango_attr_list_insert (attrs, pango_attr_font_features_new ("tnum=1"));
  pango_layout_set_attributes (layout, attrs);
  pango_attr_list_unref (attrs);

  return layout;
}

static int
text_width (PangoLayout *layout,
            const char  *text)
{
  int w, h;

  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_size (layout, &w, &h);
  return w;
}

static void
decimate_all (FlChart *self)
{
  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries *s = get_series (self, i);
      gsize          n;
      const FlPoint *p = series_points (s, &n);

      if (s->columns_alloc < self->n_columns)
        {
          s->columns = g_renew (FlBucket, s->columns, self->n_columns);
          s->columns_alloc = self->n_columns;
        }
      s->n_columns = self->n_columns;
      fl_decimate_minmax (p, n, self->from, self->to + 1, s->n_columns, s->columns);
    }
}

static void
visible_buckets (FlChart       *self,
                 FlChartSeries *s,
                 guint         *first,
                 guint         *end)
{
  gint64 k0, k1;

  *first = *end = 0;
  if (s->n_buckets == 0 || s->bucket_ms <= 0)
    return;

  /* buckets that overlap [from, to] */
  k0 = (self->from - s->buckets_from) / s->bucket_ms;
  if ((self->from - s->buckets_from) % s->bucket_ms < 0)
    k0--;
  k1 = (self->to - s->buckets_from) / s->bucket_ms + 1;
  if ((self->to - s->buckets_from) % s->bucket_ms < 0)
    k1--;
  *first = (guint) CLAMP (k0, 0, (gint64) s->n_buckets);
  *end = (guint) CLAMP (k1, 0, (gint64) s->n_buckets);
}

/* The value range of the visible data (the decimated columns and the
 * buckets); FALSE when there is none */
static gboolean
visible_value_range (FlChart *self,
                     double  *min,
                     double  *max)
{
  gboolean found = FALSE;

  *min = INFINITY;
  *max = -INFINITY;
  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries *s = get_series (self, i);
      guint          k0, k1;

      for (guint c = 0; c < s->n_columns; c++)
        {
          if (s->columns[c].n == 0)
            continue;
          *min = MIN (*min, s->columns[c].min);
          *max = MAX (*max, s->columns[c].max);
          found = TRUE;
        }

      visible_buckets (self, s, &k0, &k1);
      for (guint k = k0; k < k1; k++)
        {
          const FlBucket *b = &s->buckets[k];

          if (b->n == 0 || !isfinite (b->min) || !isfinite (b->max))
            continue;
          *min = MIN (*min, b->min);
          *max = MAX (*max, b->max);
          found = TRUE;
        }
    }

  return found && isfinite (*min) && isfinite (*max);
}

static void
ensure_layout (FlChart *self)
{
  int                     width = gtk_widget_get_width (GTK_WIDGET (self));
  int                     height = gtk_widget_get_height (GTK_WIDGET (self));
  g_autoptr (PangoLayout) layout = NULL;
  int                     text_w, text_h, time_label_w, top, right, bottom, left;
  double                  min, max, plot_h;
  guint                   max_ticks;

  layout = create_label_layout (self);
  pango_layout_set_text (layout, "0:", -1);
  pango_layout_get_pixel_size (layout, &text_w, &text_h);

  if (self->layout_valid && width == self->layout_width && height == self->layout_height && text_h == self->text_height)
    return;

  self->layout_valid = TRUE;
  self->layout_width = width;
  self->layout_height = height;
  self->text_height = text_h;

  time_label_w = MAX (text_width (layout, "00:00:00"), text_width (layout, "Sep 30"));
  top = self->series->len > 0 ? text_h + 12 : 8;
  bottom = text_h + 8;
  right = time_label_w / 2 + 4;
  left = self->left_margin > 0 ? self->left_margin : 40;
  plot_h = MAX (1, height - top - bottom);

  /* decimate for the width the current margin leaves; the value range
   * does not depend on the width */
  for (guint pass = 0; pass < 2; pass++)
    {
      int label_w = 0;

      self->plot = GRAPHENE_RECT_INIT (left, top, MAX (1, width - left - right), plot_h);
      self->n_columns = MAX (1, (guint) self->plot.size.width);
      decimate_all (self);

      if (pass == 1)
        break;

      self->has_data = visible_value_range (self, &min, &max);
      if (!self->has_data)
        {
          min = 0;
          max = 1;
        }
      else if (min == max)
        {
          double pad = min != 0 ? fabs (min) * 0.1 : 1;

          min -= pad;
          max += pad;
        }
      else
        {
          double pad = (max - min) * 0.05;

          min -= pad;
          max += pad;
        }
      self->y_min = min;
      self->y_max = max;

      g_clear_pointer (&self->y_ticks, g_array_unref);
      max_ticks = MAX (2, (guint) (plot_h / (text_h * 2.5)));
      self->y_ticks = fl_value_ticks (min, max, max_ticks, &self->y_step);

      for (guint i = 0; i < self->y_ticks->len; i++)
        {
          g_autofree char *label = format_tick_value (g_array_index (self->y_ticks, double, i), self->y_step);

          label_w = MAX (label_w, text_width (layout, label));
        }
      self->left_margin = MAX (24, label_w + 10);
      if (self->left_margin == left)
        break;
      left = self->left_margin;
    }

  g_clear_pointer (&self->x_ticks, g_array_unref);
  g_clear_pointer (&self->x_format, g_free);
  max_ticks = MAX (2, (guint) (self->plot.size.width / (time_label_w + 24)));
  self->x_ticks = fl_time_ticks (self->from, self->to, max_ticks, &self->x_format);
}

/* Drawing */

static void
get_colors (FlChart *self,
            GdkRGBA *fg,
            GdkRGBA *bg)
{
  GtkStyleContext *context = gtk_widget_get_style_context (GTK_WIDGET (self));

  gtk_style_context_get_color (context, fg);
  if (!gtk_style_context_lookup_color (context, "view_bg_color", bg) && !gtk_style_context_lookup_color (context, "theme_base_color", bg))
    {
      /* a light text color is on a dark background */
      double lum = 0.299 * fg->red + 0.587 * fg->green + 0.114 * fg->blue;

      *bg = lum > 0.5 ? (GdkRGBA){ 0.14, 0.14, 0.14, 1 } : (GdkRGBA){ 1, 1, 1, 1 };
    }
}

static void
set_source (cairo_t       *cr,
            const GdkRGBA *color,
            double         alpha)
{
  cairo_set_source_rgba (cr, color->red, color->green, color->blue, color->alpha * alpha);
}

static void
append_text (GtkSnapshot   *snapshot,
             PangoLayout   *layout,
             const GdkRGBA *color,
             double         x,
             double         y)
{
  gtk_snapshot_save (snapshot);
  gtk_snapshot_translate (snapshot, &GRAPHENE_POINT_INIT ((float) x, (float) y));
  gtk_snapshot_append_layout (snapshot, layout, color);
  gtk_snapshot_restore (snapshot);
}

static void
draw_grid (FlChart       *self,
           cairo_t       *cr,
           const GdkRGBA *fg)
{
  const graphene_rect_t *r = &self->plot;
  double                 right = r->origin.x + r->size.width;
  double                 bottom = r->origin.y + r->size.height;

  cairo_set_line_width (cr, 1);
  set_source (cr, fg, 0.12);
  for (guint i = 0; i < self->y_ticks->len; i++)
    {
      double y = round (y_for_value (self, g_array_index (self->y_ticks, double, i))) + 0.5;

      cairo_move_to (cr, r->origin.x, y);
      cairo_line_to (cr, right, y);
    }
  for (guint i = 0; i < self->x_ticks->len; i++)
    {
      double x = round (x_for_time (self, g_array_index (self->x_ticks, gint64, i))) + 0.5;

      cairo_move_to (cr, x, r->origin.y);
      cairo_line_to (cr, x, bottom);
    }
  cairo_stroke (cr);

  set_source (cr, fg, 0.45);
  cairo_move_to (cr, r->origin.x + 0.5, r->origin.y);
  cairo_line_to (cr, r->origin.x + 0.5, bottom + 0.5);
  cairo_line_to (cr, right, bottom + 0.5);
  cairo_stroke (cr);
}

/* Moves (*x0, *y0) along the line to (x1, y1) onto the nearest vertical
 * just outside the plot, when it is further out */
static void
pull_in (FlChart *self,
         double  *x0,
         double  *y0,
         double   x1,
         double   y1)
{
  double left = self->plot.origin.x - 2;
  double right = self->plot.origin.x + self->plot.size.width + 2;
  double edge;

  if (*x0 < left)
    edge = left;
  else if (*x0 > right)
    edge = right;
  else
    return;

  if (x1 != *x0)
    *y0 += (y1 - *y0) * (edge - *x0) / (x1 - *x0);
  *x0 = edge;
}

typedef struct
{
  cairo_t *cr;
  gboolean started;
  double   x, y;
} PathState;

static inline void
path_to (PathState *ps,
         double     x,
         double     y)
{
  if (!ps->started)
    {
      cairo_move_to (ps->cr, x, y);
      ps->started = TRUE;
    }
  else if (x != ps->x || y != ps->y)
    cairo_line_to (ps->cr, x, y);
  ps->x = x;
  ps->y = y;
}

/* A straight line between two vertices, pulled in to the plot's edges */
static void
add_segment (FlChart *self,
             cairo_t *cr,
             double   x0,
             double   y0,
             double   x1,
             double   y1)
{
  pull_in (self, &x0, &y0, x1, y1);
  pull_in (self, &x1, &y1, x0, y0);
  cairo_move_to (cr, x0, y0);
  cairo_line_to (cr, x1, y1);
}

/* More points than columns: each column is one box from its smallest to
 * its largest value, stretched to meet its neighbours halfway (which is
 * what a polyline through the points covers in that column), so the
 * rasterizer sees a few boxes rather than thousands of overlapping
 * strokes.  Lines are stroked only across empty columns and to the
 * points outside the range. */
static void
draw_series_dense (FlChart       *self,
                   cairo_t       *cr,
                   FlChartSeries *s,
                   const FlPoint *prev,
                   const FlPoint *next)
{
  const FlBucket *cols = s->columns;
  double          half = LINE_WIDTH / 2;
  int             last = -1;

  for (guint c = 0; c < s->n_columns; c++)
    {
      const FlBucket *b = &cols[c];
      double          lo, hi, y_top, y_bottom, x;

      if (b->n == 0)
        continue;
      lo = b->min;
      hi = b->max;
      if (c > 0 && cols[c - 1].n > 0)
        {
          double mid = (cols[c - 1].last + b->first) / 2;

          lo = MIN (lo, mid);
          hi = MAX (hi, mid);
        }
      if (c + 1 < s->n_columns && cols[c + 1].n > 0)
        {
          double mid = (b->last + cols[c + 1].first) / 2;

          lo = MIN (lo, mid);
          hi = MAX (hi, mid);
        }
      x = column_x (self, c) - 0.5;
      y_top = y_for_value (self, hi) - half;
      y_bottom = y_for_value (self, lo) + half;
      cairo_rectangle (cr, x, y_top, 1, y_bottom - y_top);
    }
  set_source (cr, &s->color, 1);
  cairo_fill (cr);

  /* the lines across gaps */
  for (guint c = 0; c < s->n_columns; c++)
    {
      if (cols[c].n == 0)
        continue;
      if (last < 0 && prev != NULL)
        add_segment (self, cr, x_for_time (self, prev->t), y_for_value (self, prev->v),
                     column_x (self, c), y_for_value (self, cols[c].first));
      else if (last >= 0 && (guint) last + 1 < c)
        add_segment (self, cr, column_x (self, last), y_for_value (self, cols[last].last),
                     column_x (self, c), y_for_value (self, cols[c].first));
      last = c;
    }
  if (last >= 0 && next != NULL)
    add_segment (self, cr, column_x (self, last), y_for_value (self, cols[last].last),
                 x_for_time (self, next->t), y_for_value (self, next->v));
  cairo_set_line_width (cr, LINE_WIDTH);
  cairo_stroke (cr);
}

/* As many points as columns or fewer: a polyline through them (through
 * each column's first, extremes and last) */
static void
draw_series_sparse (FlChart       *self,
                    cairo_t       *cr,
                    FlChartSeries *s,
                    const FlPoint *prev,
                    const FlPoint *next)
{
  PathState ps = { cr, FALSE, 0, 0 };
  gint      first_col = -1;
  guint     n_drawn = 0;

  for (guint c = 0; c < s->n_columns && first_col < 0; c++)
    if (s->columns[c].n > 0)
      first_col = c;

  /* the line in from the point before the range */
  if (prev != NULL)
    {
      double x0 = x_for_time (self, prev->t), y0 = y_for_value (self, prev->v);
      double x1, y1;

      if (first_col >= 0)
        {
          x1 = column_x (self, first_col);
          y1 = y_for_value (self, s->columns[first_col].first);
        }
      else
        {
          x1 = x_for_time (self, next->t);
          y1 = y_for_value (self, next->v);
        }
      pull_in (self, &x0, &y0, x1, y1);
      path_to (&ps, x0, y0);
    }

  for (guint c = MAX (first_col, 0); first_col >= 0 && c < s->n_columns; c++)
    {
      const FlBucket *b = &s->columns[c];
      double          x;

      if (b->n == 0)
        continue;
      x = column_x (self, c);
      path_to (&ps, x, y_for_value (self, b->first));
      /* the extremes in the order they happened */
      if (b->t_min <= b->t_max)
        {
          path_to (&ps, x, y_for_value (self, b->min));
          path_to (&ps, x, y_for_value (self, b->max));
        }
      else
        {
          path_to (&ps, x, y_for_value (self, b->max));
          path_to (&ps, x, y_for_value (self, b->min));
        }
      path_to (&ps, x, y_for_value (self, b->last));
      n_drawn += b->n;
    }

  /* and out to the point after it */
  if (next != NULL)
    {
      double x0 = x_for_time (self, next->t), y0 = y_for_value (self, next->v);

      pull_in (self, &x0, &y0, ps.x, ps.y);
      path_to (&ps, x0, y0);
    }

  set_source (cr, &s->color, 1);
  cairo_set_line_width (cr, LINE_WIDTH);
  cairo_set_line_join (cr, CAIRO_LINE_JOIN_BEVEL);
  cairo_stroke (cr);

  /* a lone point has no line: a dot */
  if (n_drawn == 1 && prev == NULL && next == NULL)
    {
      cairo_arc (cr, ps.x, ps.y, 2.5, 0, 2 * G_PI);
      cairo_fill (cr);
    }
}

static void
draw_series_points (FlChart       *self,
                    cairo_t       *cr,
                    FlChartSeries *s)
{
  gsize          n, i0, i1;
  const FlPoint *p = series_points (s, &n);
  const FlPoint *prev = NULL, *next = NULL;

  if (n == 0)
    return;

  i0 = fl_points_lower_bound (p, n, self->from);
  i1 = i0 + fl_points_lower_bound (p + i0, n - i0, self->to + 1);
  if (i0 > 0 && !isnan (p[i0 - 1].v))
    prev = &p[i0 - 1];
  if (i1 < n && !isnan (p[i1].v))
    next = &p[i1];

  /* nothing in range and no line across it */
  if (i1 == i0 && (prev == NULL || next == NULL))
    return;

  if (i1 - i0 > s->n_columns)
    draw_series_dense (self, cr, s, prev, next);
  else
    draw_series_sparse (self, cr, s, prev, next);
}

static void
draw_series_buckets (FlChart       *self,
                     cairo_t       *cr,
                     FlChartSeries *s)
{
  double left = self->plot.origin.x - 2;
  double right = self->plot.origin.x + self->plot.size.width + 2;
  guint  k0, k1;

  visible_buckets (self, s, &k0, &k1);

  for (guint k = k0; k < k1;)
    {
      guint run_end;

      if (s->buckets[k].n == 0)
        {
          k++;
          continue;
        }
      for (run_end = k; run_end < k1 && s->buckets[run_end].n > 0; run_end++)
        ;

      /* the min-max band: along the maxima, back along the minima */
      for (guint j = k; j < run_end; j++)
        {
          gint64 start = s->buckets_from + (gint64) j * s->bucket_ms;
          double x0 = CLAMP (x_for_time (self, start), left, right);
          double x1 = CLAMP (x_for_time (self, start + s->bucket_ms), left, right);
          double y = y_for_value (self, s->buckets[j].max);

          if (j == k)
            cairo_move_to (cr, x0, y);
          else
            cairo_line_to (cr, x0, y);
          cairo_line_to (cr, x1, y);
        }
      for (guint j = run_end; j-- > k;)
        {
          gint64 start = s->buckets_from + (gint64) j * s->bucket_ms;
          double x0 = CLAMP (x_for_time (self, start), left, right);
          double x1 = CLAMP (x_for_time (self, start + s->bucket_ms), left, right);
          double y = y_for_value (self, s->buckets[j].min);

          cairo_line_to (cr, x1, y);
          cairo_line_to (cr, x0, y);
        }
      cairo_close_path (cr);
      set_source (cr, &s->color, 0.25);
      cairo_fill (cr);

      /* the mean through the middles */
      for (guint j = k; j < run_end; j++)
        {
          gint64 mid = s->buckets_from + (gint64) j * s->bucket_ms + s->bucket_ms / 2;
          double x = CLAMP (x_for_time (self, mid), left, right);
          double y = y_for_value (self, s->buckets[j].avg);

          if (j == k)
            cairo_move_to (cr, x, y);
          else
            cairo_line_to (cr, x, y);
        }
      if (run_end - k == 1)
        {
          /* one bucket: a level line across it */
          gint64 start = s->buckets_from + (gint64) k * s->bucket_ms;

          cairo_new_path (cr);
          cairo_move_to (cr, CLAMP (x_for_time (self, start), left, right), y_for_value (self, s->buckets[k].avg));
          cairo_line_to (cr, CLAMP (x_for_time (self, start + s->bucket_ms), left, right), y_for_value (self, s->buckets[k].avg));
        }
      set_source (cr, &s->color, 1);
      cairo_set_line_width (cr, LINE_WIDTH);
      cairo_stroke (cr);

      k = run_end;
    }
}

static char *
x_tick_label (FlChart *self,
              gint64   t)
{
  /* a day's first tick on an axis of hours names the day */
  if (self->x_format != NULL && strstr (self->x_format, "%H") != NULL)
    {
      g_autoptr (GDateTime) dt = local_time (t);

      if (dt != NULL && g_date_time_get_hour (dt) == 0 && g_date_time_get_minute (dt) == 0 && g_date_time_get_second (dt) == 0)
        return g_date_time_format (dt, "%b %-d");
    }
  return format_time (t, self->x_format ? self->x_format : "%H:%M:%S");
}

static void
draw_labels (FlChart       *self,
             GtkSnapshot   *snapshot,
             PangoLayout   *layout,
             const GdkRGBA *fg)
{
  GdkRGBA dim = *fg;
  int     width = gtk_widget_get_width (GTK_WIDGET (self));
  double  bottom = self->plot.origin.y + self->plot.size.height;
  double  legend_x = self->plot.origin.x;

  dim.alpha *= 0.75;

  for (guint i = 0; i < self->y_ticks->len; i++)
    {
      double           v = g_array_index (self->y_ticks, double, i);
      g_autofree char *label = format_tick_value (v, self->y_step);
      int              w, h;

      pango_layout_set_text (layout, label, -1);
      pango_layout_get_pixel_size (layout, &w, &h);
      append_text (snapshot, layout, &dim, self->plot.origin.x - 6 - w, round (y_for_value (self, v) - h / 2.0));
    }

  for (guint i = 0; i < self->x_ticks->len; i++)
    {
      gint64           t = g_array_index (self->x_ticks, gint64, i);
      g_autofree char *label = x_tick_label (self, t);
      int              w, h;
      double           x;

      pango_layout_set_text (layout, label, -1);
      pango_layout_get_pixel_size (layout, &w, &h);
      x = round (x_for_time (self, t) - w / 2.0);
      x = CLAMP (x, 0, MAX (0, width - w));
      append_text (snapshot, layout, &dim, x, bottom + 4);
    }

  /* the legend, above the plot */
  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries   *s = get_series (self, i);
      g_autofree char *label = series_label (s);
      int              w, h;
      double           y;

      pango_layout_set_text (layout, label, -1);
      pango_layout_get_pixel_size (layout, &w, &h);
      y = (self->plot.origin.y - 4 - h) / 2.0;
      gtk_snapshot_append_color (snapshot, &s->color,
                                 &GRAPHENE_RECT_INIT ((float) legend_x, (float) round (y + h / 2.0 - 1.5), 14, 3));
      append_text (snapshot, layout, fg, legend_x + 18, round (y));
      legend_x += 18 + w + 16;
    }

  if (!self->has_data)
    {
      int w, h;

      pango_layout_set_text (layout, _ ("No data"), -1);
      pango_layout_get_pixel_size (layout, &w, &h);
      append_text (snapshot, layout, &dim,
                   round (self->plot.origin.x + (self->plot.size.width - w) / 2),
                   round (self->plot.origin.y + (self->plot.size.height - h) / 2));
    }
}

/* The readout */

typedef struct
{
  gboolean found;
  gint64   t;
  double   v;
} ReadoutValue;

/* How far (in x) a point may be from the pointer to be read out */
#define READOUT_MAX_DISTANCE_PX 24.0

/* The time under the pointer and each series' value nearest to it in the
 * visible range (within READOUT_MAX_DISTANCE_PX); FALSE when the pointer
 * is not over the plot */
static gboolean
compute_readout (FlChart      *self,
                 gint64       *t_pointer,
                 ReadoutValue *values)
{
  const graphene_rect_t *r = &self->plot;
  gint64                 tp;

  if (!self->has_pointer || !graphene_rect_contains_point (r, &GRAPHENE_POINT_INIT ((float) self->pointer_x, (float) self->pointer_y)))
    return FALSE;

  tp = CLAMP (time_for_x (self, self->pointer_x), self->from, self->to);
  *t_pointer = tp;

  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries *s = get_series (self, i);
      gsize          n, i0, i1, j;
      const FlPoint *p = series_points (s, &n);
      const FlPoint *best = NULL;

      values[i].found = FALSE;
      if (n > 0)
        {
          i0 = fl_points_lower_bound (p, n, self->from);
          i1 = i0 + fl_points_lower_bound (p + i0, n - i0, self->to + 1);
          j = i0 + fl_points_lower_bound (p + i0, i1 - i0, tp);
          if (j < i1)
            best = &p[j];
          if (j > i0 && (best == NULL || tp - p[j - 1].t <= best->t - tp))
            best = &p[j - 1];
        }
      /* a point far from the pointer says nothing about the time under it */
      if (best != NULL && fabs (x_for_time (self, best->t) - self->pointer_x) > READOUT_MAX_DISTANCE_PX)
        best = NULL;
      if (best != NULL && !isnan (best->v))
        {
          values[i].found = TRUE;
          values[i].t = best->t;
          values[i].v = best->v;
          continue;
        }

      /* no point: the bucket under the pointer, by its mean */
      if (s->n_buckets > 0 && tp >= s->buckets_from)
        {
          gint64 k = (tp - s->buckets_from) / s->bucket_ms;

          if (k < s->n_buckets && s->buckets[k].n > 0)
            {
              values[i].found = TRUE;
              values[i].t = s->buckets_from + k * s->bucket_ms + s->bucket_ms / 2;
              values[i].v = s->buckets[k].avg;
            }
        }
    }

  return TRUE;
}

static const char *
readout_time_format (FlChart *self)
{
  if (same_local_day (self->from, self->to))
    return "%H:%M:%S";
  /* Translators: the time under the pointer on a chart that spans
   * several days; see g_date_time_format() */
  return _ ("%b %-d %H:%M:%S");
}

static GPtrArray *
readout_lines (FlChart      *self,
               gint64        tp,
               ReadoutValue *values)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);

  g_ptr_array_add (lines, format_time (tp, readout_time_format (self)));
  for (guint i = 0; i < self->series->len; i++)
    {
      FlChartSeries   *s = get_series (self, i);
      g_autofree char *value = NULL;

      if (!values[i].found)
        {
          g_ptr_array_add (lines, NULL);
          continue;
        }
      value = format_value_with_unit (values[i].v, s->unit);
      /* Translators: a series and its value in the chart's readout */
      g_ptr_array_add (lines, g_strdup_printf (_ ("%s: %s"), s->name, value));
    }

  return lines;
}

static void
draw_readout (FlChart       *self,
              GtkSnapshot   *snapshot,
              PangoLayout   *layout,
              const GdkRGBA *fg,
              const GdkRGBA *bg)
{
  const graphene_rect_t   *r = &self->plot;
  g_autofree ReadoutValue *values = g_new0 (ReadoutValue, MAX (1, self->series->len));
  g_autoptr (GPtrArray)    lines = NULL;
  int                      box_w = 0, line_h = self->text_height, box_h;
  double                   x, box_x, box_y;
  gint64                   tp;
  cairo_t                 *cr;

  if (!compute_readout (self, &tp, values))
    return;

  lines = readout_lines (self, tp, values);
  for (guint i = 0; i < lines->len; i++)
    {
      const char *line = g_ptr_array_index (lines, i);

      if (line != NULL)
        box_w = MAX (box_w, text_width (layout, line) + (i > 0 ? 14 : 0));
    }
  box_w += 12;
  box_h = 8;
  for (guint i = 0; i < lines->len; i++)
    if (g_ptr_array_index (lines, i) != NULL)
      box_h += line_h + 2;

  x = round (self->pointer_x) + 0.5;
  box_x = x + 12;
  if (box_x + box_w > r->origin.x + r->size.width)
    box_x = x - 12 - box_w;
  box_x = MAX (box_x, 0);
  box_y = r->origin.y + 6;

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, self->layout_width, self->layout_height));

  /* the line at the pointer and a dot on each nearest point */
  cairo_set_line_width (cr, 1);
  set_source (cr, fg, 0.5);
  cairo_move_to (cr, x, r->origin.y);
  cairo_line_to (cr, x, r->origin.y + r->size.height);
  cairo_stroke (cr);

  cairo_save (cr);
  cairo_rectangle (cr, r->origin.x, r->origin.y, r->size.width, r->size.height);
  cairo_clip (cr);
  for (guint i = 0; i < self->series->len; i++)
    {
      if (!values[i].found)
        continue;
      cairo_arc (cr, x_for_time (self, values[i].t), y_for_value (self, values[i].v), 3.5, 0, 2 * G_PI);
      set_source (cr, &get_series (self, i)->color, 1);
      cairo_fill_preserve (cr);
      set_source (cr, bg, 1);
      cairo_set_line_width (cr, 1.5);
      cairo_stroke (cr);
    }
  cairo_restore (cr);

  /* the box */
  cairo_rectangle (cr, box_x + 0.5, box_y + 0.5, box_w, box_h);
  set_source (cr, bg, 0.94);
  cairo_fill_preserve (cr);
  set_source (cr, fg, 0.3);
  cairo_set_line_width (cr, 1);
  cairo_stroke (cr);
  cairo_destroy (cr);

  {
    double y = box_y + 4;

    for (guint i = 0; i < lines->len; i++)
      {
        const char *line = g_ptr_array_index (lines, i);

        if (line == NULL)
          continue;
        pango_layout_set_text (layout, line, -1);
        if (i > 0)
          {
            FlChartSeries *s = get_series (self, i - 1);

            gtk_snapshot_append_color (snapshot, &s->color,
                                       &GRAPHENE_RECT_INIT ((float) box_x + 6, (float) (y + line_h / 2.0 - 4), 8, 8));
            append_text (snapshot, layout, fg, box_x + 20, y);
          }
        else
          append_text (snapshot, layout, fg, box_x + 6, y);
        y += line_h + 2;
      }
  }
}

static void
fl_chart_snapshot (GtkWidget   *widget,
                   GtkSnapshot *snapshot)
{
  FlChart                *self = FL_CHART (widget);
  g_autoptr (PangoLayout) layout = NULL;
  const graphene_rect_t  *r;
  GdkRGBA                 fg, bg;
  cairo_t                *cr;

  if (gtk_widget_get_width (widget) <= 0 || gtk_widget_get_height (widget) <= 0)
    return;

  ensure_layout (self);
  get_colors (self, &fg, &bg);
  r = &self->plot;

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, self->layout_width, self->layout_height));
  draw_grid (self, cr, &fg);
  cairo_rectangle (cr, r->origin.x, r->origin.y, r->size.width, r->size.height);
  cairo_clip (cr);
  for (guint i = 0; i < self->series->len; i++)
    draw_series_buckets (self, cr, get_series (self, i));
  for (guint i = 0; i < self->series->len; i++)
    draw_series_points (self, cr, get_series (self, i));
  cairo_destroy (cr);

  layout = create_label_layout (self);
  draw_labels (self, snapshot, layout, &fg);
  draw_readout (self, snapshot, layout, &fg, &bg);
}

static void
fl_chart_measure (GtkWidget     *widget,
                  GtkOrientation orientation,
                  int            for_size,
                  int           *minimum,
                  int           *natural,
                  int           *minimum_baseline,
                  int           *natural_baseline)
{
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      *minimum = 160;
      *natural = 480;
    }
  else
    {
      *minimum = 120;
      *natural = 240;
    }
}

/* The summary */

static void
append_series_summary (FlChart       *self,
                       FlChartSeries *s,
                       GString       *out)
{
  g_autofree char *label = series_label (s);
  gsize            n_points;
  const FlPoint   *p = series_points (s, &n_points);
  FlBucket         total = { 0 };
  gint64           t_first = 0, t_last = 0;
  double           latest = 0;
  g_autofree char *count = NULL, *from = NULL, *to = NULL, *min = NULL, *max = NULL, *last = NULL;
  const char      *time_format;

  fl_decimate_minmax (p, n_points, self->from, self->to + 1, 1, &total);
  if (total.n > 0)
    {
      t_first = total.t_first;
      t_last = total.t_last;
      latest = total.last;
    }
  else
    {
      /* no points in range: the buckets' */
      guint k0, k1;

      visible_buckets (self, s, &k0, &k1);
      for (guint k = k0; k < k1; k++)
        {
          const FlBucket *b = &s->buckets[k];
          gint64          start = s->buckets_from + (gint64) k * s->bucket_ms;

          if (b->n == 0)
            continue;
          if (total.n == 0)
            {
              t_first = MAX (start, self->from);
              total.min = b->min;
              total.max = b->max;
            }
          total.min = MIN (total.min, b->min);
          total.max = MAX (total.max, b->max);
          total.n += b->n;
          t_last = MIN (start + s->bucket_ms - 1, self->to);
          latest = b->avg;
        }
    }

  if (total.n == 0)
    {
      /* Translators: a chart series with nothing in the visible range */
      g_string_append_printf (out, _ ("%s: no data"), label);
      return;
    }

  if (!same_local_day (t_first, t_last))
    /* Translators: a date and time in a chart's summary; see
     * g_date_time_format() */
    time_format = _ ("%b %-d %H:%M");
  else if (t_last - t_first >= DEFAULT_SPAN_MS)
    time_format = "%H:%M";
  else
    time_format = "%H:%M:%S";

  count = g_strdup_printf ("%'u", total.n);
  from = format_time (t_first, time_format);
  to = format_time (t_last, time_format);
  min = format_value (total.min);
  max = format_value (total.max);
  last = format_value (latest);
  /* Translators: a chart series' summary for screen readers: its name
   * (and unit), the number of points, the times of the first and last,
   * the smallest, largest and latest values */
  g_string_append_printf (out,
                          ngettext ("%s: %s point from %s to %s, min %s, max %s, latest %s",
                                    "%s: %s points from %s to %s, min %s, max %s, latest %s",
                                    total.n),
                          label, count, from, to, min, max, last);
}

/**
 * fl_chart_dup_summary:
 * @self: a #FlChart
 *
 * A text summary of the visible data, one clause per series, e.g.
 * "Temperature (°C): 1,234 points from 10:00 to 11:00, min 18.2, max
 * 24.9, latest 21.3".  It is also the chart's accessible description.
 *
 * Returns: (transfer full): the summary
 */
char *
fl_chart_dup_summary (FlChart *self)
{
  GString *out;

  g_return_val_if_fail (FL_IS_CHART (self), NULL);

  if (self->series->len == 0)
    return g_strdup (_ ("Empty chart"));

  out = g_string_new (NULL);
  for (guint i = 0; i < self->series->len; i++)
    {
      if (i > 0)
        g_string_append (out, "; ");
      append_series_summary (self, get_series (self, i), out);
    }

  return g_string_free (out, FALSE);
}

void
_fl_chart_flush_summary (FlChart *self)
{
  g_autofree char *summary = NULL;

  g_clear_handle_id (&self->summary_source, g_source_remove);
  summary = fl_chart_dup_summary (self);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, summary,
                                  -1);
}

static gboolean
summary_timeout_cb (gpointer data)
{
  FlChart *self = data;

  self->summary_source = 0;
  _fl_chart_flush_summary (self);
  return G_SOURCE_REMOVE;
}

static void
schedule_summary (FlChart *self)
{
  /* at most one update per delay, however fast live data comes */
  if (self->summary_source == 0)
    {
      self->summary_source = g_timeout_add (SUMMARY_DELAY_MS, summary_timeout_cb, self);
      g_source_set_name_by_id (self->summary_source, "[fieldline] chart summary");
    }
}

/* Input */

void
_fl_chart_set_pointer (FlChart *self,
                       double   x,
                       double   y)
{
  g_return_if_fail (FL_IS_CHART (self));

  self->has_pointer = TRUE;
  self->pointer_x = x;
  self->pointer_y = y;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
_fl_chart_unset_pointer (FlChart *self)
{
  g_return_if_fail (FL_IS_CHART (self));

  if (!self->has_pointer)
    return;
  self->has_pointer = FALSE;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

char *
_fl_chart_dup_readout (FlChart *self)
{
  g_autofree ReadoutValue *values = NULL;
  g_autoptr (GPtrArray)    lines = NULL;
  GString                 *out;
  gint64                   tp;

  g_return_val_if_fail (FL_IS_CHART (self), NULL);

  if (gtk_widget_get_width (GTK_WIDGET (self)) <= 0)
    return NULL;
  ensure_layout (self);
  values = g_new0 (ReadoutValue, MAX (1, self->series->len));
  if (!compute_readout (self, &tp, values))
    return NULL;

  lines = readout_lines (self, tp, values);
  out = g_string_new (NULL);
  for (guint i = 0; i < lines->len; i++)
    {
      const char *line = g_ptr_array_index (lines, i);

      if (line == NULL)
        continue;
      if (out->len > 0)
        g_string_append_c (out, '\n');
      g_string_append (out, line);
    }

  return g_string_free (out, FALSE);
}

gboolean
_fl_chart_get_plot_area (FlChart         *self,
                         graphene_rect_t *area)
{
  g_return_val_if_fail (FL_IS_CHART (self), FALSE);

  if (gtk_widget_get_width (GTK_WIDGET (self)) <= 0)
    return FALSE;
  ensure_layout (self);
  *area = self->plot;
  return TRUE;
}

double
_fl_chart_x_for_time (FlChart *self,
                      gint64   t)
{
  ensure_layout (self);
  return x_for_time (self, t);
}

double
_fl_chart_y_for_value (FlChart *self,
                       double   v)
{
  ensure_layout (self);
  return y_for_value (self, v);
}

static void
motion_enter_cb (GtkEventControllerMotion *controller,
                 double                    x,
                 double                    y,
                 FlChart                  *self)
{
  _fl_chart_set_pointer (self, x, y);
}

static void
motion_cb (GtkEventControllerMotion *controller,
           double                    x,
           double                    y,
           FlChart                  *self)
{
  _fl_chart_set_pointer (self, x, y);
}

static void
motion_leave_cb (GtkEventControllerMotion *controller,
                 FlChart                  *self)
{
  _fl_chart_unset_pointer (self);
}

/* The time under the pointer, or the middle of the range */
static gint64
zoom_anchor (FlChart *self)
{
  if (self->has_pointer && self->layout_valid)
    return CLAMP (time_for_x (self, self->pointer_x), self->from, self->to);
  return self->from + (self->to - self->from) / 2;
}

static gint64
pixels_to_ms (FlChart *self,
              double   pixels)
{
  double width = self->layout_valid ? self->plot.size.width : MAX (1, gtk_widget_get_width (GTK_WIDGET (self)));

  return (gint64) llround (pixels * (double) (self->to - self->from) / MAX (1.0, width));
}

static gboolean
scroll_cb (GtkEventControllerScroll *controller,
           double                    dx,
           double                    dy,
           FlChart                  *self)
{
  GdkModifierType state = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (controller));
  gboolean        wheel = gtk_event_controller_scroll_get_unit (controller) == GDK_SCROLL_UNIT_WHEEL;

  if (state & GDK_CONTROL_MASK)
    {
      double notches = wheel ? dy : dy / PIXELS_PER_NOTCH;

      if (notches != 0)
        zoom_at (self, pow (ZOOM_WHEEL, notches), zoom_anchor (self), self->from, self->to);
      return TRUE;
    }

  /* shift turns a vertical wheel horizontal */
  if ((state & GDK_SHIFT_MASK) && dx == 0)
    {
      dx = dy;
      dy = 0;
    }

  /* a vertical scroll belongs to the page */
  if (dx == 0 || fabs (dx) < fabs (dy))
    return FALSE;

  if (wheel)
    pan_by (self, (gint64) llround (dx * PAN_FRACTION * (double) (self->to - self->from)));
  else
    pan_by (self, pixels_to_ms (self, dx));
  return TRUE;
}

static void
drag_begin_cb (GtkGestureDrag *gesture,
               double          x,
               double          y,
               FlChart        *self)
{
  gtk_widget_grab_focus (GTK_WIDGET (self));
  self->gesture_from = self->from;
  self->gesture_to = self->to;
}

static void
drag_update_cb (GtkGestureDrag *gesture,
                double          offset_x,
                double          offset_y,
                FlChart        *self)
{
  gint64 dt = -pixels_to_ms (self, offset_x);

  if (dt == 0 && self->from == self->gesture_from)
    return;
  user_range (self, self->gesture_from + dt, self->gesture_to + dt);
}

static void
zoom_begin_cb (GtkGesture       *gesture,
               GdkEventSequence *sequence,
               FlChart          *self)
{
  double x, y;

  self->gesture_from = self->from;
  self->gesture_to = self->to;
  if (self->layout_valid && gtk_gesture_get_bounding_box_center (gesture, &x, &y))
    self->gesture_anchor = CLAMP (time_for_x (self, x), self->from, self->to);
  else
    self->gesture_anchor = self->from + (self->to - self->from) / 2;
}

static void
zoom_scale_changed_cb (GtkGestureZoom *gesture,
                       double          scale,
                       FlChart        *self)
{
  if (scale > 0)
    zoom_at (self, 1 / scale, self->gesture_anchor, self->gesture_from, self->gesture_to);
}

/* Actions */

static void
zoom_in_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  FlChart *self = FL_CHART (widget);

  zoom_at (self, 1 / ZOOM_STEP, self->from + (self->to - self->from) / 2, self->from, self->to);
}

static void
zoom_out_action (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  FlChart *self = FL_CHART (widget);

  zoom_at (self, ZOOM_STEP, self->from + (self->to - self->from) / 2, self->from, self->to);
}

static void
pan_left_action (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  FlChart *self = FL_CHART (widget);

  pan_by (self, -(gint64) llround (PAN_FRACTION * (double) (self->to - self->from)));
}

static void
pan_right_action (GtkWidget  *widget,
                  const char *action_name,
                  GVariant   *parameter)
{
  FlChart *self = FL_CHART (widget);

  pan_by (self, (gint64) llround (PAN_FRACTION * (double) (self->to - self->from)));
}

static void
reset_action (GtkWidget  *widget,
              const char *action_name,
              GVariant   *parameter)
{
  fl_chart_reset_range (FL_CHART (widget));
}

static void
follow_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  FlChart *self = FL_CHART (widget);

  fl_chart_set_follow (self, !self->follow);
}

/* GObject */

static void
fl_chart_dispose (GObject *object)
{
  FlChart *self = FL_CHART (object);

  g_clear_handle_id (&self->summary_source, g_source_remove);

  G_OBJECT_CLASS (fl_chart_parent_class)->dispose (object);
}

static void
fl_chart_finalize (GObject *object)
{
  FlChart *self = FL_CHART (object);

  g_clear_pointer (&self->series, g_ptr_array_unref);
  g_clear_pointer (&self->y_ticks, g_array_unref);
  g_clear_pointer (&self->x_ticks, g_array_unref);
  g_clear_pointer (&self->x_format, g_free);

  G_OBJECT_CLASS (fl_chart_parent_class)->finalize (object);
}

static void
fl_chart_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  FlChart *self = FL_CHART (object);

  switch (prop_id)
    {
    case PROP_FOLLOW:
      g_value_set_boolean (value, self->follow);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_chart_set_property (GObject      *object,
                       guint         prop_id,
                       const GValue *value,
                       GParamSpec   *pspec)
{
  FlChart *self = FL_CHART (object);

  switch (prop_id)
    {
    case PROP_FOLLOW:
      fl_chart_set_follow (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_chart_class_init (FlChartClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_chart_dispose;
  object_class->finalize = fl_chart_finalize;
  object_class->get_property = fl_chart_get_property;
  object_class->set_property = fl_chart_set_property;

  widget_class->snapshot = fl_chart_snapshot;
  widget_class->measure = fl_chart_measure;

  /**
   * FlChart:follow:
   *
   * Live-follow: the range keeps its width and ends at the newest point
   * (now, when there is none).  Zooming and panning turn it off.
   */
  properties[PROP_FOLLOW] = g_param_spec_boolean ("follow", NULL, NULL,
                                                  FALSE,
                                                  G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlChart::range-changed:
   * @self: the chart
   * @from: the new range's start, ms since the epoch
   * @to: its end, ms, included
   *
   * The visible range changed, by the user, the owner or the data (auto
   * and follow modes): the owner may fetch buckets for it.
   */
  signals[RANGE_CHANGED] = g_signal_new ("range-changed",
                                         G_TYPE_FROM_CLASS (klass),
                                         G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL,
                                         G_TYPE_NONE, 2, G_TYPE_INT64, G_TYPE_INT64);

  gtk_widget_class_install_action (widget_class, "chart.zoom-in", NULL, zoom_in_action);
  gtk_widget_class_install_action (widget_class, "chart.zoom-out", NULL, zoom_out_action);
  gtk_widget_class_install_action (widget_class, "chart.pan-left", NULL, pan_left_action);
  gtk_widget_class_install_action (widget_class, "chart.pan-right", NULL, pan_right_action);
  gtk_widget_class_install_action (widget_class, "chart.reset", NULL, reset_action);
  gtk_widget_class_install_action (widget_class, "chart.follow", NULL, follow_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_plus, 0, "chart.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_equal, 0, "chart.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Add, 0, "chart.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_minus, 0, "chart.zoom-out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Subtract, 0, "chart.zoom-out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Left, 0, "chart.pan-left", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Left, 0, "chart.pan-left", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Right, 0, "chart.pan-right", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Right, 0, "chart.pan-right", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Home, 0, "chart.reset", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Home, 0, "chart.reset", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_f, 0, "chart.follow", NULL);

  gtk_widget_class_set_css_name (widget_class, "chart");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
fl_chart_init (FlChart *self)
{
  GtkEventController *controller;
  GtkGesture         *gesture;

  self->series = g_ptr_array_new_with_free_func (series_free);
  self->to = g_get_real_time () / 1000;
  self->from = self->to - DEFAULT_SPAN_MS;
  self->auto_range = TRUE;
  self->y_ticks = g_array_new (FALSE, FALSE, sizeof (double));
  self->x_ticks = g_array_new (FALSE, FALSE, sizeof (gint64));

  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_focus_on_click (GTK_WIDGET (self), TRUE);
  gtk_widget_set_overflow (GTK_WIDGET (self), GTK_OVERFLOW_HIDDEN);

  controller = gtk_event_controller_motion_new ();
  g_signal_connect (controller, "enter", G_CALLBACK (motion_enter_cb), self);
  g_signal_connect (controller, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (controller, "leave", G_CALLBACK (motion_leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), controller);

  controller = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
  g_signal_connect (controller, "scroll", G_CALLBACK (scroll_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), controller);

  gesture = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (gesture), GDK_BUTTON_PRIMARY);
  g_signal_connect (gesture, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (gesture, "drag-update", G_CALLBACK (drag_update_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (gesture));

  gesture = gtk_gesture_zoom_new ();
  g_signal_connect (gesture, "begin", G_CALLBACK (zoom_begin_cb), self);
  g_signal_connect (gesture, "scale-changed", G_CALLBACK (zoom_scale_changed_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (gesture));

  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _ ("Telemetry chart"),
                                  -1);
  update_action_state (self);
  schedule_summary (self);
}

/* API */

/**
 * fl_chart_new:
 *
 * Returns: (transfer full): a new, empty chart showing the last hour
 */
FlChart *
fl_chart_new (void)
{
  return g_object_new (FL_TYPE_CHART, NULL);
}

/**
 * fl_chart_add_series:
 * @self: a #FlChart
 * @name: the series' name, for the legend, readout and summary
 * @unit: (nullable): its unit, e.g. "°C"
 * @color: (nullable): its color, or %NULL for the next of a palette
 *
 * Returns: the series' index, for the other calls
 */
guint
fl_chart_add_series (FlChart       *self,
                     const char    *name,
                     const char    *unit,
                     const GdkRGBA *color)
{
  FlChartSeries *s;

  g_return_val_if_fail (FL_IS_CHART (self), 0);
  g_return_val_if_fail (name != NULL, 0);

  s = g_new0 (FlChartSeries, 1);
  s->name = g_strdup (name);
  s->unit = g_strdup (unit);
  if (color != NULL)
    s->color = *color;
  else
    gdk_rgba_parse (&s->color, default_colors[self->series->len % G_N_ELEMENTS (default_colors)]);
  g_ptr_array_add (self->series, s);

  invalidate (self);
  return self->series->len - 1;
}

guint
fl_chart_get_n_series (FlChart *self)
{
  g_return_val_if_fail (FL_IS_CHART (self), 0);

  return self->series->len;
}

static int
compare_points (gconstpointer a,
                gconstpointer b)
{
  const FlPoint *pa = a, *pb = b;

  return (pa->t > pb->t) - (pa->t < pb->t);
}

/**
 * fl_chart_set_points:
 * @self: a #FlChart
 * @series: a series index
 * @points: (nullable) (element-type FlPoint): its points, t ascending
 *
 * Replaces the series' points.  The chart takes a reference to @points
 * and does not change it: appending later copies it once.  Points out of
 * order are accepted (sorted in a private copy).
 */
void
fl_chart_set_points (FlChart *self,
                     guint    series,
                     GArray  *points)
{
  FlChartSeries *s;

  g_return_if_fail (FL_IS_CHART (self));
  g_return_if_fail (series < self->series->len);
  g_return_if_fail (points == NULL || g_array_get_element_size (points) == sizeof (FlPoint));

  s = get_series (self, series);
  g_clear_pointer (&s->points, g_array_unref);
  s->points_shared = FALSE;

  if (points != NULL)
    {
      const FlPoint *p = (const FlPoint *) (gpointer) points->data;
      gboolean       sorted = TRUE;

      for (guint i = 1; i < points->len && sorted; i++)
        sorted = p[i - 1].t <= p[i].t;

      if (sorted)
        {
          s->points = g_array_ref (points);
          s->points_shared = TRUE;
        }
      else
        {
          g_debug ("series %u: points out of order, sorting a copy", series);
          s->points = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), points->len);
          g_array_append_vals (s->points, points->data, points->len);
          g_array_sort (s->points, compare_points);
        }
    }

  data_changed (self);
}

/**
 * fl_chart_append_points:
 * @self: a #FlChart
 * @series: a series index
 * @points: (array length=n_points): new points
 * @n_points: their number
 *
 * Adds live points; amortised O(1) each when they come in time order (a
 * late point is inserted in place).
 */
void
fl_chart_append_points (FlChart       *self,
                        guint          series,
                        const FlPoint *points,
                        gsize          n_points)
{
  FlChartSeries *s;

  g_return_if_fail (FL_IS_CHART (self));
  g_return_if_fail (series < self->series->len);
  g_return_if_fail (n_points == 0 || points != NULL);

  if (n_points == 0)
    return;

  s = get_series (self, series);
  if (s->points == NULL || s->points_shared)
    {
      GArray *own;
      guint   len = s->points ? s->points->len : 0;

      own = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), len + n_points + 1024);
      if (len > 0)
        g_array_append_vals (own, s->points->data, len);
      g_clear_pointer (&s->points, g_array_unref);
      s->points = own;
      s->points_shared = FALSE;
    }

  for (gsize i = 0; i < n_points;)
    {
      guint  len = s->points->len;
      gint64 last = len > 0 ? g_array_index (s->points, FlPoint, len - 1).t : G_MININT64;
      gsize  run = i;

      /* the run of points in order after the last one, in one append */
      while (run < n_points && points[run].t >= last)
        last = points[run++].t;
      if (run > i)
        {
          g_array_append_vals (s->points, points + i, run - i);
          i = run;
          continue;
        }

      /* a late point: after the points of its time */
      {
        const FlPoint *p = (const FlPoint *) (gpointer) s->points->data;
        gsize          at = points[i].t == G_MAXINT64 ? len : fl_points_lower_bound (p, len, points[i].t + 1);

        g_array_insert_val (s->points, at, points[i]);
        i++;
      }
    }

  data_changed (self);
}

/**
 * fl_chart_set_buckets:
 * @self: a #FlChart
 * @series: a series index
 * @buckets: (array length=n_buckets) (nullable): server-side buckets
 * @n_buckets: their number
 * @from: the start of the first bucket, ms
 * @bucket_ms: the width of each
 *
 * Shows buckets of a long range as a min-max band and a line through the
 * means.  Of each bucket only n (0 for a gap), min, max and avg are used.
 * The buckets replace the series' previous ones (none with @n_buckets 0);
 * they are drawn under its points, if it has any.
 */
void
fl_chart_set_buckets (FlChart        *self,
                      guint           series,
                      const FlBucket *buckets,
                      guint           n_buckets,
                      gint64          from,
                      gint64          bucket_ms)
{
  FlChartSeries *s;

  g_return_if_fail (FL_IS_CHART (self));
  g_return_if_fail (series < self->series->len);
  g_return_if_fail (n_buckets == 0 || buckets != NULL);
  g_return_if_fail (n_buckets == 0 || bucket_ms > 0);

  s = get_series (self, series);
  g_clear_pointer (&s->buckets, g_free);
  s->n_buckets = n_buckets;
  s->buckets_from = from;
  s->bucket_ms = bucket_ms;
  if (n_buckets > 0)
    s->buckets = g_memdup2 (buckets, sizeof (FlBucket) * n_buckets);

  data_changed (self);
}

/**
 * fl_chart_clear:
 * @self: a #FlChart
 *
 * Removes every series and its data (indices start at 0 again).  The
 * range and the follow mode stay.
 */
void
fl_chart_clear (FlChart *self)
{
  g_return_if_fail (FL_IS_CHART (self));

  g_ptr_array_set_size (self->series, 0);
  data_changed (self);
}

/**
 * fl_chart_set_range:
 * @self: a #FlChart
 * @from: the start, ms since the epoch
 * @to: the end, ms, included; more than @from
 *
 * Shows [@from, @to] (at least a second, at most 200 years) and turns
 * follow off: to follow with a given width, set the range, then follow.
 */
void
fl_chart_set_range (FlChart *self,
                    gint64   from,
                    gint64   to)
{
  g_return_if_fail (FL_IS_CHART (self));
  g_return_if_fail (to > from);

  user_range (self, from, to);
}

/**
 * fl_chart_get_range:
 * @self: a #FlChart
 * @from: (out) (optional): the start, ms since the epoch
 * @to: (out) (optional): the end, ms, included
 */
void
fl_chart_get_range (FlChart *self,
                    gint64  *from,
                    gint64  *to)
{
  g_return_if_fail (FL_IS_CHART (self));

  if (from != NULL)
    *from = self->from;
  if (to != NULL)
    *to = self->to;
}

/**
 * fl_chart_reset_range:
 * @self: a #FlChart
 *
 * Shows all the data, and keeps showing all of it as it grows (the
 * chart.reset action, Home).  Turns follow off.
 */
void
fl_chart_reset_range (FlChart *self)
{
  g_return_if_fail (FL_IS_CHART (self));

  fl_chart_set_follow (self, FALSE);
  self->auto_range = TRUE;
  update_range_for_mode (self);
}

gboolean
fl_chart_get_follow (FlChart *self)
{
  g_return_val_if_fail (FL_IS_CHART (self), FALSE);

  return self->follow;
}

void
fl_chart_set_follow (FlChart *self,
                     gboolean follow)
{
  g_return_if_fail (FL_IS_CHART (self));

  follow = !!follow;
  if (self->follow == follow)
    return;

  self->follow = follow;
  if (follow)
    {
      self->auto_range = FALSE;
      update_range_for_mode (self);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FOLLOW]);
}
