/* fl-decimate.h: time series points, min-max decimation to a pixel grid,
 * and axis ticks for time and values.  No GTK: the console's chart and
 * its point cache both build on it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* One sample: t in ms since the Unix epoch, v its value.  This is the
 * canonical definition; a header that needs FlPoint without including this
 * one may define it with the same guard and the same layout. */
#ifndef FL_POINT_DEFINED
#define FL_POINT_DEFINED 1
typedef struct
{
  gint64 t;
  double v;
} FlPoint;
#endif

/* What one column (or one server-side bucket) holds: the first, last,
 * smallest and largest values and their times, the number of values and
 * their mean.  n == 0 means empty, and then nothing else is meaningful. */
typedef struct
{
  gint64 t_first, t_last;
  double first, last, min, max;
  gint64 t_min, t_max;
  guint  n;
  double avg;  /* the mean of the n values */
} FlBucket;

gsize   fl_points_lower_bound (const FlPoint *points,
                               gsize          n_points,
                               gint64         t);

guint   fl_decimate_minmax    (const FlPoint *points,
                               gsize          n_points,
                               gint64         from,
                               gint64         to,
                               guint          n_columns,
                               FlBucket      *out);

GArray *fl_time_ticks         (gint64  from,
                               gint64  to,
                               guint   max_ticks,
                               char  **unit_format);

GArray *fl_value_ticks        (double  min,
                               double  max,
                               guint   max_ticks,
                               double *step);

G_END_DECLS
