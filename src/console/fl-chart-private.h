/* fl-chart-private.h: FlChart's insides, for its tests and benchmark. */
#pragma once

#include "fl-chart.h"

G_BEGIN_DECLS

typedef struct
{
  char     *name;
  char     *unit;  /* or NULL */
  GdkRGBA   color;

  GArray   *points;         /* FlPoint, t ascending, or NULL */
  gboolean  points_shared;  /* the caller may hold a ref: copy before appending */

  /* server-side buckets: bucket i covers [buckets_from + i * bucket_ms,
   * buckets_from + (i + 1) * bucket_ms) */
  FlBucket *buckets;
  guint     n_buckets;
  gint64    buckets_from;
  gint64    bucket_ms;

  /* the points in the visible range, decimated to the plot's columns */
  FlBucket *columns;
  guint     n_columns;
  guint     columns_alloc;
} FlChartSeries;

struct _FlChart
{
  GtkWidget        parent_instance;

  GPtrArray       *series;  /* FlChartSeries */

  /* the visible range, ms since the epoch, both ends included */
  gint64           from;
  gint64           to;
  gboolean         auto_range;  /* the range is the data's extent */
  gboolean         follow;      /* the range ends at the newest point */

  /* layout for the current size, range and data */
  gboolean         layout_valid;
  int              layout_width;
  int              layout_height;
  int              text_height;
  int              left_margin;
  graphene_rect_t  plot;
  guint            n_columns;
  double           y_min;
  double           y_max;
  double           y_step;
  GArray          *y_ticks;   /* double */
  GArray          *x_ticks;   /* gint64 */
  char            *x_format;
  gboolean         has_data;  /* anything in the visible range */

  /* the pointer, for the readout */
  gboolean         has_pointer;
  double           pointer_x;
  double           pointer_y;

  /* drag and pinch */
  gint64           gesture_from;
  gint64           gesture_to;
  gint64           gesture_anchor;

  guint            summary_source;
};

/* Pointer position in widget coordinates, as motion events set it */
void      _fl_chart_set_pointer     (FlChart         *self,
                                     double           x,
                                     double           y);
void      _fl_chart_unset_pointer   (FlChart         *self);
/* The readout's text: the pointer's time, then "name: value unit" for
 * each series with a point in range, one a line; NULL when there is no
 * readout */
char     *_fl_chart_dup_readout     (FlChart         *self);
/* The plot area in widget coordinates (computes the layout) */
gboolean  _fl_chart_get_plot_area   (FlChart         *self,
                                     graphene_rect_t *area);
double    _fl_chart_x_for_time      (FlChart         *self,
                                     gint64           t);
double    _fl_chart_y_for_value     (FlChart         *self,
                                     double           v);
/* Updates the accessible description now rather than after the delay */
void      _fl_chart_flush_summary   (FlChart         *self);

G_END_DECLS
