/* fl-decimate.c: min-max decimation of sorted points to columns, and
 * axis ticks.
 *
 * Decimation never loses an extreme: each column keeps the exact first,
 * last, smallest and largest value of the points that fall in it, so a
 * chart that draws one vertical min-max segment per pixel column shows the
 * same envelope as one that draws every point.  The points are sorted, so
 * a column's points are a contiguous run: each run is found by a binary
 * search for the column's boundary, and only the runs' values are read.
 * The cost is one pass over the points in range plus O(log n) per
 * non-empty column, with one division per column (none per point). */
#define G_LOG_DOMAIN "fl-decimate"

#include "config.h"

#include <math.h>

#include "fl-decimate.h"

/**
 * fl_points_lower_bound:
 * @points: (array length=n_points): points sorted by t, ascending
 * @n_points: their number
 * @t: a time, ms
 *
 * Returns: the index of the first point with a time >= @t, or @n_points
 */
gsize
fl_points_lower_bound (const FlPoint *points,
                       gsize          n_points,
                       gint64         t)
{
  gsize lo = 0;
  gsize hi = n_points;

  while (lo < hi)
    {
      gsize mid = lo + (hi - lo) / 2;

      if (points[mid].t < t)
        lo = mid + 1;
      else
        hi = mid;
    }

  return lo;
}

/* floor (a * b / c) and ceil (a * b / c), exactly, for a * b that may not
 * fit 64 bits (a column index times a span of ms) */
static inline guint64
mul_div_floor (guint64 a,
               guint64 b,
               guint64 c)
{
#ifdef __SIZEOF_INT128__
  return (guint64) (((unsigned __int128) a * b) / c);
#else
  guint64 q = b / c, r = b % c;

  /* a * b / c = a * q + a * r / c, with a * r < a * c; exact while a * r
   * fits, which holds for any pixel count times a span below 2^52 ms */
  return a * q + (a * r) / c;
#endif
}

static inline guint64
mul_div_ceil (guint64 a,
              guint64 b,
              guint64 c)
{
#ifdef __SIZEOF_INT128__
  unsigned __int128 p = (unsigned __int128) a * b;

  return (guint64) ((p + c - 1) / c);
#else
  guint64 q = b / c, r = b % c;

  return a * q + (a * r + c - 1) / c;
#endif
}

static gboolean fill_bucket_nan (FlBucket      *b,
                                 const FlPoint *p,
                                 gsize          n);

/* Fills @b from points[0..n) (n > 0); returns FALSE when the run held
 * only NaNs.  The common case has no NaN: one tight loop, and a NaN
 * anywhere shows in the sum, which sends the run to the careful loop. */
static inline gboolean
fill_bucket (FlBucket      *b,
             const FlPoint *p,
             gsize          n)
{
  double min, max, sum;
  gint64 t_min, t_max;

  min = max = sum = p[0].v;
  t_min = t_max = p[0].t;
  for (gsize i = 1; i < n; i++)
    {
      double v = p[i].v;

      if (v < min)
        {
          min = v;
          t_min = p[i].t;
        }
      else if (v > max)
        {
          max = v;
          t_max = p[i].t;
        }
      sum += v;
    }

  if (G_UNLIKELY (isnan (sum)))
    return fill_bucket_nan (b, p, n);

  b->t_first = p[0].t;
  b->first = p[0].v;
  b->t_last = p[n - 1].t;
  b->last = p[n - 1].v;
  b->min = min;
  b->max = max;
  b->t_min = t_min;
  b->t_max = t_max;
  b->n = (guint) n;
  b->avg = sum / n;
  return TRUE;
}

/* The same, skipping NaN values */
static gboolean
fill_bucket_nan (FlBucket      *b,
                 const FlPoint *p,
                 gsize          n)
{
  gsize          i = 0;
  double         min, max, sum;
  gint64         t_min, t_max;
  const FlPoint *last;

  while (i < n && isnan (p[i].v))
    i++;
  if (i == n)
    return FALSE;

  b->t_first = p[i].t;
  b->first = p[i].v;
  min = max = sum = p[i].v;
  t_min = t_max = p[i].t;
  last = &p[i];
  b->n = 1;

  for (i++; i < n; i++)
    {
      double v = p[i].v;

      if (G_UNLIKELY (isnan (v)))
        continue;
      if (v < min)
        {
          min = v;
          t_min = p[i].t;
        }
      if (v > max)
        {
          max = v;
          t_max = p[i].t;
        }
      sum += v;
      last = &p[i];
      b->n++;
    }

  b->t_last = last->t;
  b->last = last->v;
  b->min = min;
  b->max = max;
  b->t_min = t_min;
  b->t_max = t_max;
  b->avg = sum / b->n;
  return TRUE;
}

/**
 * fl_decimate_minmax:
 * @points: (array length=n_points): points sorted by t, ascending
 * @n_points: their number
 * @from: the start of the range, ms, inclusive
 * @to: the end of the range, ms, exclusive
 * @n_columns: how many columns [from, to) is cut into
 * @out: (array length=n_columns) (out caller-allocates): the columns
 *
 * A point at time t in [@from, @to) goes to column
 * floor ((t - @from) * @n_columns / (@to - @from)).  Each column receives
 * the exact first, last, min and max (with their times), the count and
 * the mean of its points; NaN values are skipped.  Empty columns have
 * n == 0.  All @n_columns entries of @out are written.
 *
 * Returns: the number of non-empty columns
 */
guint
fl_decimate_minmax (const FlPoint *points,
                    gsize          n_points,
                    gint64         from,
                    gint64         to,
                    guint          n_columns,
                    FlBucket      *out)
{
  guint64 span;
  gsize   i, end;
  guint   filled = 0;

  g_return_val_if_fail (n_columns == 0 || out != NULL, 0);
  g_return_val_if_fail (n_points == 0 || points != NULL, 0);

  for (guint c = 0; c < n_columns; c++)
    out[c] = (FlBucket){ 0 };

  if (n_columns == 0 || n_points == 0 || to <= from)
    return 0;

  span = (guint64) to - (guint64) from;
  i = fl_points_lower_bound (points, n_points, from);
  end = i + fl_points_lower_bound (points + i, n_points - i, to);

  while (i < end)
    {
      guint64 off = (guint64) points[i].t - (guint64) from;
      guint64 c = mul_div_floor (off, n_columns, span);
      gsize   stop;

      if (c + 1 >= n_columns)
        {
          c = n_columns - 1;
          stop = end;
        }
      else
        {
          /* the first time in column c + 1 */
          gint64 bound = (gint64) ((guint64) from + mul_div_ceil (c + 1, span, n_columns));

          stop = i + fl_points_lower_bound (points + i, end - i, bound);
        }

      if (fill_bucket (&out[c], points + i, stop - i))
        filled++;
      i = stop;
    }

  return filled;
}

/* Ticks on a time axis */

typedef enum
{
  STEP_SECOND,
  STEP_MINUTE,
  STEP_HOUR,
  STEP_DAY,
  STEP_WEEK,
  STEP_MONTH,
  STEP_YEAR,
} StepUnit;

typedef struct
{
  StepUnit unit;
  guint    n;
} TimeStep;

static const TimeStep time_steps[] = {
  { STEP_SECOND, 1 },
  { STEP_SECOND, 2 },
  { STEP_SECOND, 5 },
  { STEP_SECOND, 10 },
  { STEP_SECOND, 15 },
  { STEP_SECOND, 30 },
  { STEP_MINUTE, 1 },
  { STEP_MINUTE, 2 },
  { STEP_MINUTE, 5 },
  { STEP_MINUTE, 10 },
  { STEP_MINUTE, 15 },
  { STEP_MINUTE, 30 },
  { STEP_HOUR, 1 },
  { STEP_HOUR, 2 },
  { STEP_HOUR, 3 },
  { STEP_HOUR, 6 },
  { STEP_HOUR, 12 },
  { STEP_DAY, 1 },
  { STEP_DAY, 2 },
  { STEP_WEEK, 1 },
  { STEP_MONTH, 1 },
  { STEP_MONTH, 2 },
  { STEP_MONTH, 3 },
  { STEP_MONTH, 6 },
  { STEP_YEAR, 1 },
  { STEP_YEAR, 2 },
  { STEP_YEAR, 5 },
  { STEP_YEAR, 10 },
  { STEP_YEAR, 20 },
  { STEP_YEAR, 50 },
  { STEP_YEAR, 100 },
  { STEP_YEAR, 200 },
  { STEP_YEAR, 500 },
  { STEP_YEAR, 1000 },
};

#define MS_PER_HOUR (G_GINT64_CONSTANT (3600) * 1000)
#define MS_PER_DAY (24 * MS_PER_HOUR)

/* The longest a step can be in absolute time (a local day can have 25
 * hours), so that an interval of span ms surely holds at least
 * span / step_max_ms ticks */
static gint64
step_max_ms (const TimeStep *step)
{
  switch (step->unit)
    {
    case STEP_SECOND:
      return step->n * G_GINT64_CONSTANT (1000);
    case STEP_MINUTE:
      return step->n * G_GINT64_CONSTANT (60000);
    case STEP_HOUR:
      return (step->n + 1) * MS_PER_HOUR;
    case STEP_DAY:
      return step->n * (MS_PER_DAY + MS_PER_HOUR);
    case STEP_WEEK:
      return 7 * MS_PER_DAY + MS_PER_HOUR;
    case STEP_MONTH:
      return step->n * 31 * MS_PER_DAY + MS_PER_HOUR;
    case STEP_YEAR:
    default:
      return step->n * 366 * MS_PER_DAY + MS_PER_HOUR;
    }
}

static const char *
step_format (const TimeStep *step)
{
  switch (step->unit)
    {
    case STEP_SECOND:
      return "%H:%M:%S";
    case STEP_MINUTE:
    case STEP_HOUR:
      return "%H:%M";
    case STEP_DAY:
    case STEP_WEEK:
      return "%b %-d";
    case STEP_MONTH:
      return "%b %Y";
    case STEP_YEAR:
    default:
      return "%Y";
    }
}

/* The latest aligned tick at or before @dt, in local time */
static GDateTime *
step_floor (GDateTime      *dt,
            const TimeStep *step)
{
  int y, mo, d, h, mi, s;

  g_date_time_get_ymd (dt, &y, &mo, &d);
  h = g_date_time_get_hour (dt);
  mi = g_date_time_get_minute (dt);
  s = g_date_time_get_second (dt);

  switch (step->unit)
    {
    case STEP_SECOND:
      return g_date_time_new_local (y, mo, d, h, mi, s - s % (int) step->n);
    case STEP_MINUTE:
      return g_date_time_new_local (y, mo, d, h, mi - mi % (int) step->n, 0);
    case STEP_HOUR:
      return g_date_time_new_local (y, mo, d, h - h % (int) step->n, 0, 0);
    case STEP_DAY:
      {
        g_autoptr (GDateTime) midnight = g_date_time_new_local (y, mo, d, 0, 0, 0);
        GDate                 date;

        if (midnight == NULL || step->n == 1)
          return g_steal_pointer (&midnight);
        /* multi-day steps keep a fixed phase on the day count, so that
         * they stay evenly spaced across month ends */
        g_date_clear (&date, 1);
        g_date_set_dmy (&date, d, mo, y);
        return g_date_time_add_days (midnight, -(int) (g_date_get_julian (&date) % step->n));
      }
    case STEP_WEEK:
      {
        g_autoptr (GDateTime) midnight = g_date_time_new_local (y, mo, d, 0, 0, 0);

        if (midnight == NULL)
          return NULL;
        /* weeks start on Monday (ISO 8601) */
        return g_date_time_add_days (midnight, 1 - g_date_time_get_day_of_week (midnight));
      }
    case STEP_MONTH:
      return g_date_time_new_local (y, mo - (mo - 1) % (int) step->n, 1, 0, 0, 0);
    case STEP_YEAR:
    default:
      return g_date_time_new_local (MAX (1, y - y % (int) step->n), 1, 1, 0, 0, 0);
    }
}

/* The tick after @dt, which is aligned */
static GDateTime *
step_next (GDateTime      *dt,
           const TimeStep *step)
{
  switch (step->unit)
    {
    case STEP_SECOND:
      return g_date_time_add_seconds (dt, step->n);
    case STEP_MINUTE:
      return g_date_time_add_minutes (dt, step->n);
    case STEP_HOUR:
      {
        /* by the local clock, so that a daylight saving change keeps
         * ticks on multiples of n hours */
        int y, mo, d;
        int h = g_date_time_get_hour (dt);
        int next = (h / (int) step->n + 1) * (int) step->n;

        g_date_time_get_ymd (dt, &y, &mo, &d);
        if (next < 24)
          {
            GDateTime *ret = g_date_time_new_local (y, mo, d, next, 0, 0);

            /* a fall-back hour can map an aligned hour to the past */
            if (ret != NULL && g_date_time_compare (ret, dt) <= 0)
              {
                g_date_time_unref (ret);
                ret = g_date_time_add_hours (dt, step->n);
              }
            return ret;
          }
        else
          {
            g_autoptr (GDateTime) midnight = g_date_time_new_local (y, mo, d, 0, 0, 0);

            return midnight ? g_date_time_add_days (midnight, 1) : NULL;
          }
      }
    case STEP_DAY:
      return g_date_time_add_days (dt, step->n);
    case STEP_WEEK:
      return g_date_time_add_weeks (dt, 1);
    case STEP_MONTH:
      return g_date_time_add_months (dt, step->n);
    case STEP_YEAR:
    default:
      return g_date_time_add_years (dt, step->n);
    }
}

static gint64
floor_div (gint64 a,
           gint64 b)
{
  gint64 q = a / b;

  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Appends to @ticks the ticks of @step within [from, to]; FALSE when
 * there are more than @max_ticks of them (@ticks is then emptied) */
static gboolean
generate_ticks (gint64          from,
                gint64          to,
                guint           max_ticks,
                const TimeStep *step,
                GArray         *ticks)
{
  g_autoptr (GDateTime) start = g_date_time_new_from_unix_local (floor_div (from, 1000));
  g_autoptr (GDateTime) cur = NULL;
  guint                 iterations = 0;

  g_array_set_size (ticks, 0);
  if (start == NULL)
    return FALSE;

  cur = step_floor (start, step);
  while (cur != NULL)
    {
      gint64     ms = g_date_time_to_unix (cur) * 1000;
      GDateTime *next;

      if (ms > to)
        return TRUE;
      if (ms >= from)
        {
          if (ticks->len == max_ticks)
            {
              g_array_set_size (ticks, 0);
              return FALSE;
            }
          g_array_append_val (ticks, ms);
        }

      /* at most a couple of ticks fall before from */
      if (++iterations > max_ticks + 4)
        break;

      next = step_next (cur, step);
      if (next != NULL && g_date_time_compare (next, cur) <= 0)
        g_clear_pointer (&next, g_date_time_unref);
      g_date_time_unref (cur);
      cur = next;
    }

  /* out of GDateTime's range, or a broken time zone */
  g_array_set_size (ticks, 0);
  return FALSE;
}

/**
 * fl_time_ticks:
 * @from: the start of the axis, ms since the epoch
 * @to: its end, ms, inclusive
 * @max_ticks: the most ticks wanted
 * @unit_format: (out) (optional) (transfer full): a g_date_time_format()
 *   format suited to the step ("%H:%M:%S", "%H:%M", "%b %-d", "%b %Y" or
 *   "%Y")
 *
 * Chooses the smallest step among 1, 2, 5, 10, 15 and 30 seconds; 1, 2, 5,
 * 10, 15 and 30 minutes; 1, 2, 3, 6 and 12 hours; 1 and 2 days; a week
 * (from Monday); 1, 2, 3 and 6 months; and 1, 2, 5, 10... years that gives
 * at most @max_ticks ticks in [@from, @to], aligned to the local time
 * (hours to multiples of the step by the local clock, days to local
 * midnight, months to the 1st).
 *
 * Returns: (transfer full) (element-type gint64): the ticks, ms, ascending;
 *   empty when @to < @from or @max_ticks is 0
 */
GArray *
fl_time_ticks (gint64 from,
               gint64 to,
               guint  max_ticks,
               char **unit_format)
{
  GArray         *ticks = g_array_new (FALSE, FALSE, sizeof (gint64));
  const TimeStep *chosen = NULL;

  if (to >= from && max_ticks > 0)
    {
      guint64 span = (guint64) to - (guint64) from;

      for (guint i = 0; i < G_N_ELEMENTS (time_steps); i++)
        {
          const TimeStep *step = &time_steps[i];

          if (span / (guint64) step_max_ms (step) > max_ticks)
            continue;
          if (generate_ticks (from, to, max_ticks, step, ticks))
            {
              chosen = step;
              break;
            }
        }
    }

  if (unit_format != NULL)
    *unit_format = g_strdup (chosen ? step_format (chosen) : "%H:%M:%S");

  return ticks;
}

/* Ticks on a value axis */

/**
 * fl_value_ticks:
 * @min: the bottom of the axis
 * @max: its top
 * @max_ticks: the most ticks wanted
 * @step: (out) (optional): the step chosen, 0 when there is none
 *
 * Chooses the smallest step m * 10^k (m = 1, 2 or 5) that puts at most
 * @max_ticks of its multiples in [@min, @max].  A tick is computed from its
 * integer multiple, so 0.1 steps give 0.3, not 0.30000000000000004.
 *
 * Returns: (transfer full) (element-type double): the ticks, ascending;
 *   [@min] alone when @min == @max; empty when @max < @min, either is not
 *   finite or @max_ticks is 0
 */
GArray *
fl_value_ticks (double  min,
                double  max,
                guint   max_ticks,
                double *step)
{
  static const int mantissas[] = { 1, 2, 5 };
  GArray          *ticks = g_array_new (FALSE, FALSE, sizeof (double));
  double           span = max - min;
  int              k;

  if (step != NULL)
    *step = 0;

  if (max_ticks == 0 || !isfinite (min) || !isfinite (max) || max < min || !isfinite (span))
    return ticks;

  if (!(span > 0))
    {
      g_array_append_val (ticks, min);
      return ticks;
    }

  k = (int) floor (log10 (span / max_ticks)) - 1;
  k = CLAMP (k, -300, 300);

  for (; k <= 308; k++)
    {
      for (guint j = 0; j < G_N_ELEMENTS (mantissas); j++)
        {
          int    m = mantissas[j];
          double scale = pow (10.0, ABS (k));
          double s = k >= 0 ? m * scale : m / scale;
          double lo = ceil (min / s - 1e-9);
          double hi = floor (max / s + 1e-9);

          if (!isfinite (s) || s <= 0)
            continue;
          /* multiples beyond 2^52 are not integers a double can count */
          if (fabs (lo) > 0x1p52 || fabs (hi) > 0x1p52)
            continue;
          if (hi - lo + 1 > max_ticks)
            continue;

          for (guint n = 0; lo + n <= hi; n++)
            {
              double i = lo + n;
              double v = k >= 0 ? i * m * scale : (i * m) / scale;

              if (v == 0)
                v = 0; /* not -0 */
              g_array_append_val (ticks, v);
            }
          if (step != NULL)
            *step = s;
          return ticks;
        }
    }

  return ticks;
}
