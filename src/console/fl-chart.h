/* fl-chart.h: a telemetry chart: time series over a time range, live or
 * historical, with zoom, pan, a hover readout and a text summary. */
#pragma once

#include <gtk/gtk.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

#define FL_TYPE_CHART (fl_chart_get_type ())
G_DECLARE_FINAL_TYPE (FlChart, fl_chart, FL, CHART, GtkWidget)

FlChart  *fl_chart_new           (void);

guint     fl_chart_add_series    (FlChart       *self,
                                  const char    *name,
                                  const char    *unit,
                                  const GdkRGBA *color);
guint     fl_chart_get_n_series  (FlChart       *self);
void      fl_chart_set_points    (FlChart       *self,
                                  guint          series,
                                  GArray        *points);
void      fl_chart_append_points (FlChart       *self,
                                  guint          series,
                                  const FlPoint *points,
                                  gsize          n_points);
void      fl_chart_set_buckets   (FlChart        *self,
                                  guint           series,
                                  const FlBucket *buckets,
                                  guint           n_buckets,
                                  gint64          from,
                                  gint64          bucket_ms);
void      fl_chart_clear         (FlChart       *self);

void      fl_chart_set_range     (FlChart       *self,
                                  gint64         from,
                                  gint64         to);
void      fl_chart_get_range     (FlChart       *self,
                                  gint64        *from,
                                  gint64        *to);
void      fl_chart_reset_range   (FlChart       *self);

gboolean  fl_chart_get_follow    (FlChart       *self);
void      fl_chart_set_follow    (FlChart       *self,
                                  gboolean       follow);

char     *fl_chart_dup_summary   (FlChart       *self);

G_END_DECLS
