/* test-decimate.c: min-max decimation against a naive one, its edge cases,
 * and the time and value axis ticks. */
#define G_LOG_DOMAIN "test-decimate"

#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "fieldline-core.h"

/* ms since the epoch of a UTC date and time */
static gint64
utc_ms (int y,
        int mo,
        int d,
        int h,
        int mi,
        int s)
{
  g_autoptr (GDateTime) dt = g_date_time_new_utc (y, mo, d, h, mi, s);

  g_assert_nonnull (dt);
  return g_date_time_to_unix (dt) * 1000;
}

static void
set_tz (const char *tz)
{
  g_setenv ("TZ", tz, TRUE);
  tzset ();
}

/* lower bound */

static void
test_lower_bound (void)
{
  const FlPoint points[] = { { 10, 1 }, { 20, 2 }, { 20, 3 }, { 30, 4 } };

  g_assert_cmpuint (fl_points_lower_bound (points, 4, 5), ==, 0);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 10), ==, 0);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 11), ==, 1);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 20), ==, 1);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 21), ==, 3);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 30), ==, 3);
  g_assert_cmpuint (fl_points_lower_bound (points, 4, 31), ==, 4);
  g_assert_cmpuint (fl_points_lower_bound (points, 0, 31), ==, 0);
  g_assert_cmpuint (fl_points_lower_bound (NULL, 0, 0), ==, 0);
}

/* decimation: exact expectations */

static void
test_minmax_exact (void)
{
  /* ten points, two per column over [0, 100) in 5 columns */
  const FlPoint points[] = {
    { 0, 5 }, { 10, 1 }, /* column 0 */
    { 20, 7 },
    { 30, 9 }, /* column 1 */
    { 40, 3 },
    { 50, 3 }, /* column 2: equal values */
    { 60, -2 },
    { 79, 4 }, /* column 3 */
    { 80, 8 },
    { 99, 6 }, /* column 4 */
  };
  FlBucket out[5];
  guint    filled;

  filled = fl_decimate_minmax (points, G_N_ELEMENTS (points), 0, 100, 5, out);
  g_assert_cmpuint (filled, ==, 5);

  g_assert_cmpuint (out[0].n, ==, 2);
  g_assert_cmpint (out[0].t_first, ==, 0);
  g_assert_cmpint (out[0].t_last, ==, 10);
  g_assert_cmpfloat (out[0].first, ==, 5);
  g_assert_cmpfloat (out[0].last, ==, 1);
  g_assert_cmpfloat (out[0].min, ==, 1);
  g_assert_cmpfloat (out[0].max, ==, 5);
  g_assert_cmpint (out[0].t_min, ==, 10);
  g_assert_cmpint (out[0].t_max, ==, 0);
  g_assert_cmpfloat (out[0].avg, ==, 3);

  g_assert_cmpfloat (out[1].min, ==, 7);
  g_assert_cmpfloat (out[1].max, ==, 9);
  g_assert_cmpint (out[1].t_min, ==, 20);
  g_assert_cmpint (out[1].t_max, ==, 30);

  /* ties keep the first time */
  g_assert_cmpfloat (out[2].min, ==, 3);
  g_assert_cmpint (out[2].t_min, ==, 40);
  g_assert_cmpint (out[2].t_max, ==, 40);

  g_assert_cmpuint (out[3].n, ==, 2);
  g_assert_cmpint (out[3].t_last, ==, 79);
  g_assert_cmpfloat (out[3].min, ==, -2);
  g_assert_cmpfloat (out[3].avg, ==, 1);

  g_assert_cmpint (out[4].t_first, ==, 80);
  g_assert_cmpint (out[4].t_last, ==, 99);
  g_assert_cmpfloat (out[4].last, ==, 6);

  /* a sub-range: [20, 60) in 2 columns of 20 ms; 60 is excluded */
  filled = fl_decimate_minmax (points, G_N_ELEMENTS (points), 20, 60, 2, out);
  g_assert_cmpuint (filled, ==, 2);
  g_assert_cmpuint (out[0].n, ==, 2);
  g_assert_cmpfloat (out[0].max, ==, 9);
  g_assert_cmpuint (out[1].n, ==, 2);
  g_assert_cmpint (out[1].t_last, ==, 50);

  /* 3 columns over [0, 100): boundaries at 33.3 and 66.7 ms */
  filled = fl_decimate_minmax (points, G_N_ELEMENTS (points), 0, 100, 3, out);
  g_assert_cmpuint (filled, ==, 3);
  g_assert_cmpuint (out[0].n, ==, 4); /* 0, 10, 20, 30 */
  g_assert_cmpuint (out[1].n, ==, 3); /* 40, 50, 60 */
  g_assert_cmpuint (out[2].n, ==, 3); /* 79, 80, 99 */
  g_assert_cmpfloat (out[0].max, ==, 9);
  g_assert_cmpfloat (out[1].min, ==, -2);
  g_assert_cmpint (out[1].t_min, ==, 60);
  g_assert_cmpfloat (out[2].first, ==, 4);
}

static void
test_minmax_nan (void)
{
  const FlPoint points[] = { { 0, NAN }, { 1, 2 }, { 2, NAN }, { 3, -1 }, { 4, NAN }, { 10, NAN } };
  FlBucket      out[2];

  g_assert_cmpuint (fl_decimate_minmax (points, G_N_ELEMENTS (points), 0, 20, 2, out), ==, 1);
  g_assert_cmpuint (out[0].n, ==, 2);
  g_assert_cmpint (out[0].t_first, ==, 1);
  g_assert_cmpint (out[0].t_last, ==, 3);
  g_assert_cmpfloat (out[0].min, ==, -1);
  g_assert_cmpfloat (out[0].max, ==, 2);
  g_assert_cmpfloat (out[0].avg, ==, 0.5);
  /* column 1 holds only a NaN: empty */
  g_assert_cmpuint (out[1].n, ==, 0);
}

/* decimation: edge cases */

static void
assert_all_empty (const FlBucket *out,
                  guint           n)
{
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (out[i].n, ==, 0);
}

static void
test_minmax_edges (void)
{
  const FlPoint one[] = { { 500, 42 } };
  FlPoint       many[100];
  FlBucket      out[1000];

  for (guint i = 0; i < G_N_ELEMENTS (many); i++)
    many[i] = (FlPoint){ 1000 + i, (double) ((i * 37) % 101) };

  /* empty input: every column is written, and empty */
  for (guint i = 0; i < G_N_ELEMENTS (out); i++)
    out[i].n = 99;
  g_assert_cmpuint (fl_decimate_minmax (NULL, 0, 0, 1000, 1000, out), ==, 0);
  assert_all_empty (out, 1000);

  /* no columns */
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 0, 5000, 0, NULL), ==, 0);

  /* an empty or inverted range */
  out[0].n = 99;
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 1050, 1050, 4, out), ==, 0);
  assert_all_empty (out, 4);
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 1060, 1050, 4, out), ==, 0);
  assert_all_empty (out, 4);

  /* one point, and where it lands */
  g_assert_cmpuint (fl_decimate_minmax (one, 1, 0, 1000, 10, out), ==, 1);
  for (guint i = 0; i < 10; i++)
    g_assert_cmpuint (out[i].n, ==, i == 5 ? 1 : 0);
  g_assert_cmpfloat (out[5].min, ==, 42);
  g_assert_cmpfloat (out[5].max, ==, 42);
  g_assert_cmpfloat (out[5].first, ==, 42);
  g_assert_cmpfloat (out[5].last, ==, 42);
  g_assert_cmpint (out[5].t_min, ==, 500);

  /* a point at from is in, one at to is out */
  g_assert_cmpuint (fl_decimate_minmax (one, 1, 500, 501, 3, out), ==, 1);
  g_assert_cmpuint (out[0].n, ==, 1);
  g_assert_cmpuint (fl_decimate_minmax (one, 1, 400, 500, 3, out), ==, 0);
  assert_all_empty (out, 3);

  /* all points in one column */
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 0, 100000, 50, out), ==, 1);
  g_assert_cmpuint (out[0].n, ==, 100);
  g_assert_cmpfloat (out[0].min, ==, 0);
  g_assert_cmpfloat (out[0].max, ==, 100);
  g_assert_cmpint (out[0].t_first, ==, 1000);
  g_assert_cmpint (out[0].t_last, ==, 1099);
  for (guint i = 1; i < 50; i++)
    g_assert_cmpuint (out[i].n, ==, 0);

  /* the range entirely before, then after, the data */
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 0, 1000, 10, out), ==, 0);
  assert_all_empty (out, 10);
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 1100, 9000, 10, out), ==, 0);
  assert_all_empty (out, 10);

  /* more columns than points: one point per used column */
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 1000, 1100, 1000, out), ==, 100);
  for (guint i = 0; i < 1000; i++)
    {
      g_assert_cmpuint (out[i].n, ==, i % 10 == 0 ? 1 : 0);
      if (out[i].n)
        g_assert_cmpint (out[i].t_first, ==, 1000 + i / 10);
    }

  /* one column per ms, exactly */
  g_assert_cmpuint (fl_decimate_minmax (many, 100, 1000, 1100, 100, out), ==, 100);
  for (guint i = 0; i < 100; i++)
    {
      g_assert_cmpuint (out[i].n, ==, 1);
      g_assert_cmpfloat (out[i].min, ==, many[i].v);
    }
}

/* decimation: random data against a naive implementation */

static guint64
naive_column (gint64 t,
              gint64 from,
              gint64 to,
              guint  n_columns)
{
  /* the definition, with 128-bit arithmetic so that it cannot overflow */
  __int128 off = (__int128) t - from;

  return (guint64) (off * n_columns / ((__int128) to - from));
}

static guint
naive_minmax (const FlPoint *points,
              gsize          n_points,
              gint64         from,
              gint64         to,
              guint          n_columns,
              FlBucket      *out,
              double        *sums)
{
  guint filled = 0;

  for (guint c = 0; c < n_columns; c++)
    {
      out[c] = (FlBucket){ 0 };
      sums[c] = 0;
    }
  if (to <= from)
    return 0;

  for (gsize i = 0; i < n_points; i++)
    {
      const FlPoint *p = &points[i];
      FlBucket      *b;

      if (p->t < from || p->t >= to || isnan (p->v))
        continue;
      b = &out[naive_column (p->t, from, to, n_columns)];
      if (b->n == 0)
        {
          filled++;
          b->t_first = p->t;
          b->first = p->v;
          b->min = b->max = p->v;
          b->t_min = b->t_max = p->t;
        }
      if (p->v < b->min)
        {
          b->min = p->v;
          b->t_min = p->t;
        }
      if (p->v > b->max)
        {
          b->max = p->v;
          b->t_max = p->t;
        }
      b->t_last = p->t;
      b->last = p->v;
      b->n++;
      sums[b - out] += p->v;
    }

  for (guint c = 0; c < n_columns; c++)
    if (out[c].n)
      out[c].avg = sums[c] / out[c].n;

  return filled;
}

static void
assert_buckets_equal (const FlBucket *a,
                      const FlBucket *b,
                      guint           n)
{
  for (guint c = 0; c < n; c++)
    {
      g_assert_cmpuint (a[c].n, ==, b[c].n);
      if (a[c].n == 0)
        continue;
      g_assert_cmpint (a[c].t_first, ==, b[c].t_first);
      g_assert_cmpint (a[c].t_last, ==, b[c].t_last);
      g_assert_cmpint (a[c].t_min, ==, b[c].t_min);
      g_assert_cmpint (a[c].t_max, ==, b[c].t_max);
      g_assert_cmpfloat (a[c].first, ==, b[c].first);
      g_assert_cmpfloat (a[c].last, ==, b[c].last);
      g_assert_cmpfloat (a[c].min, ==, b[c].min);
      g_assert_cmpfloat (a[c].max, ==, b[c].max);
      g_assert_cmpfloat (a[c].avg, ==, b[c].avg);
    }
}

static void
test_minmax_random (void)
{
  GRand *rand = g_rand_new_with_seed (g_test_rand_int ());

  for (guint iter = 0; iter < 2000; iter++)
    {
      gsize                n_points = g_rand_int_range (rand, 0, iter % 10 == 0 ? 20000 : 600);
      g_autofree FlPoint  *points = g_new (FlPoint, MAX (n_points, 1));
      guint                n_columns = g_rand_int_range (rand, 1, 2000);
      g_autofree FlBucket *got = g_new (FlBucket, n_columns);
      g_autofree FlBucket *want = g_new (FlBucket, n_columns);
      g_autofree double   *sums = g_new (double, n_columns);
      gint64               t = g_rand_int_range (rand, -100000, 100000);
      gint64               lo, hi, from, to;
      guint                filled;

      for (gsize i = 0; i < n_points; i++)
        {
          /* duplicates, small steps and gaps */
          switch (g_rand_int_range (rand, 0, 10))
            {
            case 0:
              break;
            case 1:
              t += g_rand_int_range (rand, 1000, 100000);
              break;
            default:
              t += g_rand_int_range (rand, 1, 30);
              break;
            }
          points[i].t = t;
          points[i].v = g_rand_int_range (rand, 0, 50) == 0 ? NAN : g_rand_double_range (rand, -1000, 1000);
          /* equal values, so that ties are exercised */
          if (g_rand_boolean (rand))
            points[i].v = round (points[i].v / 100);
        }

      /* ranges around, inside and outside the data */
      lo = n_points ? points[0].t : 0;
      hi = n_points ? points[n_points - 1].t : 1000;
      from = g_rand_int_range (rand, (gint32) (lo - (hi - lo) / 4 - 10), (gint32) (hi + 10));
      to = from + g_rand_int_range (rand, 1, (gint32) ((hi - lo) * 3 / 2 + 20));
      if (iter % 50 == 0)
        to = from; /* empty */

      filled = fl_decimate_minmax (points, n_points, from, to, n_columns, got);
      g_assert_cmpuint (filled, ==, naive_minmax (points, n_points, from, to, n_columns, want, sums));
      assert_buckets_equal (got, want, n_columns);
    }

  g_rand_free (rand);
}

static int
compare_points (const void *a,
                const void *b)
{
  const FlPoint *pa = a, *pb = b;

  return (pa->t > pb->t) - (pa->t < pb->t);
}

/* Times near the ends of gint64, where (t - from) * n_columns overflows
 * 64 bits */
static void
test_minmax_huge_range (void)
{
  const gint64 from = G_MININT64 / 2 - 12345;
  const gint64 to = G_MAXINT64 / 2 + 6789;
  const guint  n_columns = 1920;
  FlPoint      points[1000];
  FlBucket     got[1920], want[1920];
  double       sums[1920];
  GRand       *rand = g_rand_new_with_seed (7);
  /* the first time of column 960: from + ceil (960 * span / n_columns) */
  gint64 boundary = from + (gint64) ((((__int128) to - from) * 960 + n_columns - 1) / n_columns);

  for (guint i = 0; i < G_N_ELEMENTS (points); i++)
    {
      double x = g_rand_double_range (rand, (double) from - 1e16, (double) to + 1e16);

      points[i] = (FlPoint){ (gint64) x, g_rand_double (rand) };
    }
  /* a point exactly on a column boundary, and one just before it */
  points[0].t = boundary;
  points[1].t = boundary - 1;
  qsort (points, G_N_ELEMENTS (points), sizeof (FlPoint), compare_points);

  g_assert_cmpuint (fl_decimate_minmax (points, G_N_ELEMENTS (points), from, to, n_columns, got), ==,
                    naive_minmax (points, G_N_ELEMENTS (points), from, to, n_columns, want, sums));
  assert_buckets_equal (got, want, n_columns);
  g_assert_cmpuint (naive_column (boundary, from, to, n_columns), ==, 960);
  g_assert_cmpuint (naive_column (boundary - 1, from, to, n_columns), ==, 959);
  g_assert_cmpint (got[960].t_first, ==, boundary);
  g_assert_cmpint (got[959].t_last, ==, boundary - 1);
  g_rand_free (rand);
}

/* time ticks */

static void
assert_ticks (GArray       *ticks,
              const gint64 *want,
              guint         n_want)
{
  g_assert_cmpuint (ticks->len, ==, n_want);
  for (guint i = 0; i < n_want; i++)
    g_assert_cmpint (g_array_index (ticks, gint64, i), ==, want[i]);
}

static void
test_time_ticks_utc (void)
{
  g_autoptr (GArray) ticks = NULL;
  g_autofree char   *format = NULL;
  gint64             base = utc_ms (2024, 5, 14, 10, 0, 0);

  set_tz ("UTC");

  /* one hour, 7 ticks at most: every 10 minutes, both ends included */
  ticks = fl_time_ticks (base, base + 3600000, 7, &format);
  g_assert_cmpstr (format, ==, "%H:%M");
  g_assert_cmpuint (ticks->len, ==, 7);
  for (guint i = 0; i < 7; i++)
    g_assert_cmpint (g_array_index (ticks, gint64, i), ==, base + i * 600000);
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);

  /* 6 at most: every 15 minutes */
  ticks = fl_time_ticks (base, base + 3600000, 6, &format);
  g_assert_cmpuint (ticks->len, ==, 5);
  g_assert_cmpint (g_array_index (ticks, gint64, 1), ==, base + 900000);
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);

  /* a minute: 5 s steps, with seconds in the format */
  ticks = fl_time_ticks (base, base + 59000, 12, &format);
  g_assert_cmpstr (format, ==, "%H:%M:%S");
  g_assert_cmpuint (ticks->len, ==, 12);
  g_assert_cmpint (g_array_index (ticks, gint64, 11), ==, base + 55000);
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);

  /* an unaligned start: 10:03:17.250 to 10:48 in 5 ticks is 10 minutes */
  {
    const gint64 want[] = { base + 600000, base + 1200000, base + 1800000, base + 2400000 };

    ticks = fl_time_ticks (base + 197250, base + 48 * 60000, 5, &format);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
    g_clear_pointer (&format, g_free);
  }

  /* three days: midnights */
  {
    const gint64 want[] = { utc_ms (2024, 1, 2, 0, 0, 0), utc_ms (2024, 1, 3, 0, 0, 0), utc_ms (2024, 1, 4, 0, 0, 0) };

    ticks = fl_time_ticks (utc_ms (2024, 1, 1, 12, 0, 0), utc_ms (2024, 1, 4, 12, 0, 0), 4, &format);
    g_assert_cmpstr (format, ==, "%b %-d");
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
    g_clear_pointer (&format, g_free);
  }

  /* 20 days in 4 ticks: weeks, on Mondays (2024-03-04 is a Monday) */
  {
    const gint64 want[] = { utc_ms (2024, 3, 4, 0, 0, 0), utc_ms (2024, 3, 11, 0, 0, 0), utc_ms (2024, 3, 18, 0, 0, 0) };

    ticks = fl_time_ticks (utc_ms (2024, 3, 1, 0, 0, 0), utc_ms (2024, 3, 21, 0, 0, 0), 4, &format);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
    g_clear_pointer (&format, g_free);
  }

  /* most of a year: the 1st of each month */
  ticks = fl_time_ticks (utc_ms (2024, 1, 15, 0, 0, 0), utc_ms (2024, 12, 31, 0, 0, 0), 12, &format);
  g_assert_cmpstr (format, ==, "%b %Y");
  g_assert_cmpuint (ticks->len, ==, 11);
  for (guint i = 0; i < 11; i++)
    g_assert_cmpint (g_array_index (ticks, gint64, i), ==, utc_ms (2024, 2 + i, 1, 0, 0, 0));
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);

  /* thirty years in 7 ticks: every 5 years */
  ticks = fl_time_ticks (utc_ms (2000, 1, 1, 0, 0, 0), utc_ms (2030, 1, 1, 0, 0, 0), 7, &format);
  g_assert_cmpstr (format, ==, "%Y");
  g_assert_cmpuint (ticks->len, ==, 7);
  g_assert_cmpint (g_array_index (ticks, gint64, 1), ==, utc_ms (2005, 1, 1, 0, 0, 0));
  g_assert_cmpint (g_array_index (ticks, gint64, 6), ==, utc_ms (2030, 1, 1, 0, 0, 0));
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);

  /* before 1970 */
  {
    const gint64 want[] = { utc_ms (1969, 12, 31, 23, 59, 58), utc_ms (1969, 12, 31, 23, 59, 59), 0 };

    ticks = fl_time_ticks (-2500, 500, 3, &format);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
    g_clear_pointer (&format, g_free);
  }

  /* nothing to do */
  ticks = fl_time_ticks (base, base - 1, 10, &format);
  g_assert_cmpuint (ticks->len, ==, 0);
  g_assert_nonnull (format);
  g_clear_pointer (&ticks, g_array_unref);
  g_clear_pointer (&format, g_free);
  ticks = fl_time_ticks (base, base + 3600000, 0, NULL);
  g_assert_cmpuint (ticks->len, ==, 0);
  g_clear_pointer (&ticks, g_array_unref);

  /* a single instant on a second boundary */
  ticks = fl_time_ticks (base, base, 3, NULL);
  g_assert_cmpuint (ticks->len, ==, 1);
  g_assert_cmpint (g_array_index (ticks, gint64, 0), ==, base);
}

/* India is UTC+5:30: hours by the local clock fall on UTC half hours */
static void
test_time_ticks_local_offset (void)
{
  g_autoptr (GArray) ticks = NULL;
  gint64             from = utc_ms (2024, 3, 1, 0, 0, 0);

  set_tz ("IST-5:30");
  ticks = fl_time_ticks (from, from + 6 * 3600000, 7, NULL);
  g_assert_cmpuint (ticks->len, ==, 6);
  for (guint i = 0; i < ticks->len; i++)
    g_assert_cmpint (g_array_index (ticks, gint64, i), ==, from + 1800000 + i * 3600000);
  set_tz ("UTC");
}

/* Central Europe, across both daylight saving changes of 2024: 3-hour
 * steps stay on 0, 3, 6... by the local clock */
static void
test_time_ticks_dst (void)
{
  g_autoptr (GArray) ticks = NULL;

  set_tz ("CET-1CEST,M3.5.0,M10.5.0/3");

  /* spring forward at 01:00Z on March 31: 00:00 CET, then 03:00 CEST two
   * hours later */
  {
    const gint64 want[] = {
      utc_ms (2024, 3, 30, 23, 0, 0),
      utc_ms (2024, 3, 31, 1, 0, 0),
      utc_ms (2024, 3, 31, 4, 0, 0),
      utc_ms (2024, 3, 31, 7, 0, 0),
      utc_ms (2024, 3, 31, 10, 0, 0),
    };

    ticks = fl_time_ticks (utc_ms (2024, 3, 30, 21, 0, 0), utc_ms (2024, 3, 31, 12, 0, 0), 6, NULL);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
  }

  /* fall back at 01:00Z on October 27: 00:00 CEST, then 03:00 CET four
   * hours later */
  {
    const gint64 want[] = {
      utc_ms (2024, 10, 26, 22, 0, 0),
      utc_ms (2024, 10, 27, 2, 0, 0),
      utc_ms (2024, 10, 27, 5, 0, 0),
      utc_ms (2024, 10, 27, 8, 0, 0),
      utc_ms (2024, 10, 27, 11, 0, 0),
    };

    ticks = fl_time_ticks (utc_ms (2024, 10, 26, 21, 0, 0), utc_ms (2024, 10, 27, 12, 0, 0), 6, NULL);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
  }

  /* days across the change stay on local midnight */
  {
    const gint64 want[] = { utc_ms (2024, 3, 30, 23, 0, 0), utc_ms (2024, 3, 31, 22, 0, 0) };

    ticks = fl_time_ticks (utc_ms (2024, 3, 30, 12, 0, 0), utc_ms (2024, 4, 1, 12, 0, 0), 3, NULL);
    assert_ticks (ticks, want, G_N_ELEMENTS (want));
    g_clear_pointer (&ticks, g_array_unref);
  }

  set_tz ("UTC");
}

/* Any range: ticks ascending, inside it, never more than asked, and the
 * step the smallest that fits (the ticks of a smaller one would not) */
static void
test_time_ticks_random (void)
{
  GRand      *rand = g_rand_new_with_seed (g_test_rand_int ());
  const char *zones[] = { "UTC", "IST-5:30", "CET-1CEST,M3.5.0,M10.5.0/3", "<-0345>3:45" };

  for (guint iter = 0; iter < 400; iter++)
    {
      gint64             from = (gint64) g_rand_double_range (rand, 0, 2e12);
      gint64             span = (gint64) exp (g_rand_double_range (rand, log (1000), log (5e11)));
      guint              max_ticks = g_rand_int_range (rand, 4, 15);
      g_autoptr (GArray) ticks = NULL;

      set_tz (zones[iter % G_N_ELEMENTS (zones)]);
      ticks = fl_time_ticks (from, from + span, max_ticks, NULL);
      g_assert_cmpuint (ticks->len, <=, max_ticks);
      /* there is always a step with at least one tick in a range this
       * short, except for the biggest ones */
      if (span < (gint64) 1e11)
        g_assert_cmpuint (ticks->len, >=, 1);
      for (guint i = 0; i < ticks->len; i++)
        {
          gint64 t = g_array_index (ticks, gint64, i);

          g_assert_cmpint (t, >=, from);
          g_assert_cmpint (t, <=, from + span);
          g_assert_cmpint (t % 1000, ==, 0);
          if (i > 0)
            g_assert_cmpint (t, >, g_array_index (ticks, gint64, i - 1));
        }
    }

  set_tz ("UTC");
  g_rand_free (rand);
}

/* value ticks */

static void
assert_value_ticks (double        min,
                    double        max,
                    guint         max_ticks,
                    double        want_step,
                    const double *want,
                    guint         n_want)
{
  double             step = -1;
  g_autoptr (GArray) ticks = fl_value_ticks (min, max, max_ticks, &step);

  g_assert_cmpfloat (step, ==, want_step);
  g_assert_cmpuint (ticks->len, ==, n_want);
  for (guint i = 0; i < n_want; i++)
    {
      g_assert_cmpfloat (g_array_index (ticks, double, i), ==, want[i]);
      g_assert_false (signbit (g_array_index (ticks, double, i)) && want[i] == 0);
    }
}

static void
test_value_ticks (void)
{
  {
    const double want[] = { 0, 0.2, 0.4, 0.6, 0.8, 1 };
    assert_value_ticks (0, 1, 6, 0.2, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1 };
    assert_value_ticks (0, 1, 11, 0.1, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 0, 10, 20 };
    assert_value_ticks (-7, 23, 5, 10, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 19, 20, 21, 22, 23, 24 };
    assert_value_ticks (18.2, 24.9, 8, 1, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 18.5, 19, 19.5, 20, 20.5, 21, 21.5, 22, 22.5, 23, 23.5, 24, 24.5 };
    assert_value_ticks (18.2, 24.9, 13, 0.5, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 0.6 };
    assert_value_ticks (0.5, 0.7, 1, 0.2, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 1e6, 2e6, 3e6, 4e6, 5e6 };
    assert_value_ticks (1e6, 5e6, 5, 1e6, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { -1, -0.9, -0.8, -0.7, -0.6, -0.5 };
    assert_value_ticks (-1, -0.5, 6, 0.1, want, G_N_ELEMENTS (want));
  }
  {
    /* no "-0" */
    const double want[] = { -1, 0, 1 };
    assert_value_ticks (-1, 1, 3, 1, want, G_N_ELEMENTS (want));
  }
  {
    const double want[] = { 0.0015, 0.002, 0.0025 };
    assert_value_ticks (0.0012, 0.0026, 3, 0.0005, want, G_N_ELEMENTS (want));
  }
  {
    /* one value: itself, no step */
    const double want[] = { 21.5 };
    assert_value_ticks (21.5, 21.5, 5, 0, want, G_N_ELEMENTS (want));
  }
  /* values a double barely resolves: an answer, not an endless loop */
  {
    double             step = 0;
    g_autoptr (GArray) ticks = fl_value_ticks (1e9, 1e9 + 1e-6, 5, &step);

    g_assert_cmpuint (ticks->len, <=, 5);
    g_assert_cmpfloat (step, >=, 1e-7);
  }
  /* nothing */
  assert_value_ticks (2, 1, 5, 0, NULL, 0);
  assert_value_ticks (NAN, 1, 5, 0, NULL, 0);
  assert_value_ticks (0, INFINITY, 5, 0, NULL, 0);
  assert_value_ticks (0, 1, 0, 0, NULL, 0);
}

static double
smaller_nice_step (double step)
{
  double e = pow (10, floor (log10 (step) + 1e-9));
  double m = step / e;

  if (m > 4.5)
    return 2 * e;
  if (m > 1.5)
    return e;
  return e / 2;
}

static void
test_value_ticks_random (void)
{
  GRand *rand = g_rand_new_with_seed (g_test_rand_int ());

  for (guint iter = 0; iter < 5000; iter++)
    {
      double             min = g_rand_double_range (rand, -1e4, 1e4) * pow (10, g_rand_int_range (rand, -6, 6));
      double             max = min + g_rand_double (rand) * pow (10, g_rand_int_range (rand, -6, 8));
      guint              max_ticks = g_rand_int_range (rand, 1, 20);
      double             step = 0;
      g_autoptr (GArray) ticks = fl_value_ticks (min, max, max_ticks, &step);
      double             smaller;

      /* spans a double can resolve against the values */
      if (max - min < fabs (min) * 1e-6)
        continue;
      g_assert_cmpuint (ticks->len, <=, max_ticks);
      g_assert_cmpfloat (step, >, 0);
      for (guint i = 0; i < ticks->len; i++)
        {
          double v = g_array_index (ticks, double, i);

          g_assert_cmpfloat (v, >=, min - step * 1e-6);
          g_assert_cmpfloat (v, <=, max + step * 1e-6);
          /* on the step */
          g_assert_cmpfloat (fabs (v / step - round (v / step)), <, 1e-6 + fabs (v / step) * 1e-12);
          if (i > 0)
            g_assert_cmpfloat_with_epsilon (v - g_array_index (ticks, double, i - 1), step, step * 1e-6);
        }
      /* the next smaller nice step would have been too many */
      smaller = smaller_nice_step (step);
      g_assert_cmpfloat (floor (max / smaller + 1e-9) - ceil (min / smaller - 1e-9) + 1, >, max_ticks);
    }

  g_rand_free (rand);
}

int
main (int    argc,
      char **argv)
{
  set_tz ("UTC");
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/decimate/lower-bound", test_lower_bound);
  g_test_add_func ("/fieldline/decimate/minmax-exact", test_minmax_exact);
  g_test_add_func ("/fieldline/decimate/minmax-nan", test_minmax_nan);
  g_test_add_func ("/fieldline/decimate/minmax-edges", test_minmax_edges);
  g_test_add_func ("/fieldline/decimate/minmax-random", test_minmax_random);
  g_test_add_func ("/fieldline/decimate/minmax-huge-range", test_minmax_huge_range);
  g_test_add_func ("/fieldline/decimate/time-ticks-utc", test_time_ticks_utc);
  g_test_add_func ("/fieldline/decimate/time-ticks-local-offset", test_time_ticks_local_offset);
  g_test_add_func ("/fieldline/decimate/time-ticks-dst", test_time_ticks_dst);
  g_test_add_func ("/fieldline/decimate/time-ticks-random", test_time_ticks_random);
  g_test_add_func ("/fieldline/decimate/value-ticks", test_value_ticks);
  g_test_add_func ("/fieldline/decimate/value-ticks-random", test_value_ticks_random);

  return g_test_run ();
}
