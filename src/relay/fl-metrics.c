/* fl-metrics.c: the relay's counters and ingest latency. */
#define G_LOG_DOMAIN "fl-metrics"

#include "config.h"

#include <math.h>
#include <string.h>

#include "fl-metrics.h"

/* Latency buckets: 16 per power of two of microseconds, up to ~68 s. */
#define SUB_BUCKETS 16
#define N_BUCKETS   (26 * SUB_BUCKETS)
#define RATE_SLOTS  10

typedef struct {
  guint64 counts[N_BUCKETS];
  guint64 total;
} Histogram;

struct _FlMetrics
{
  guint64   accepted;
  guint64   duplicates;
  guint64   rejected;
  guint64   requests;

  /* accepted per wall-clock second, a ring */
  guint64   rate_slots[RATE_SLOTS];
  gint64    rate_second;

  /* this minute's and the last minute's latencies */
  Histogram histograms[2];
  gint64    histogram_minute;
};

FlMetrics *
fl_metrics_new (void)
{
  FlMetrics *self = g_new0 (FlMetrics, 1);

  self->rate_second = g_get_monotonic_time () / G_USEC_PER_SEC;
  self->histogram_minute = self->rate_second / 60;

  return self;
}

void
fl_metrics_free (FlMetrics *self)
{
  g_free (self);
}

static void
advance (FlMetrics *self)
{
  gint64 second = g_get_monotonic_time () / G_USEC_PER_SEC;
  gint64 minute = second / 60;

  if (second != self->rate_second)
    {
      for (gint64 s = self->rate_second + 1; s <= second && s <= self->rate_second + RATE_SLOTS; s++)
        self->rate_slots[s % RATE_SLOTS] = 0;
      self->rate_second = second;
    }

  if (minute != self->histogram_minute)
    {
      if (minute == self->histogram_minute + 1)
        self->histograms[1] = self->histograms[0];
      else
        memset (&self->histograms[1], 0, sizeof (Histogram));
      memset (&self->histograms[0], 0, sizeof (Histogram));
      self->histogram_minute = minute;
    }
}

static guint
bucket_of (gint64 us)
{
  guint exponent, sub;

  if (us < SUB_BUCKETS)
    return MAX (us, 0);

  exponent = g_bit_nth_msf ((gulong) us, -1);            /* >= 4 */
  sub = (us >> (exponent - 4)) & (SUB_BUCKETS - 1);     /* next 4 bits */

  return MIN ((exponent - 3) * SUB_BUCKETS + sub, N_BUCKETS - 1);
}

/* The upper edge of a bucket, in µs. */
static double
bucket_value (guint bucket)
{
  guint exponent, sub;

  if (bucket < SUB_BUCKETS)
    return bucket + 1;

  exponent = bucket / SUB_BUCKETS + 3;
  sub = bucket % SUB_BUCKETS;

  return ldexp (SUB_BUCKETS + sub + 1, exponent - 4);
}

void
fl_metrics_count_ingest (FlMetrics *self,
                         guint      accepted,
                         guint      duplicates,
                         guint      rejected,
                         gint64     latency_us)
{
  guint bucket;

  advance (self);

  self->accepted += accepted;
  self->duplicates += duplicates;
  self->rejected += rejected;
  self->rate_slots[self->rate_second % RATE_SLOTS] += accepted;

  bucket = bucket_of (latency_us);
  self->histograms[0].counts[bucket]++;
  self->histograms[0].total++;
}

void
fl_metrics_count_request (FlMetrics *self)
{
  self->requests++;
}

guint64
fl_metrics_get_accepted (FlMetrics *self)
{
  return self->accepted;
}

guint64
fl_metrics_get_duplicates (FlMetrics *self)
{
  return self->duplicates;
}

guint64
fl_metrics_get_rejected (FlMetrics *self)
{
  return self->rejected;
}

guint64
fl_metrics_get_requests (FlMetrics *self)
{
  return self->requests;
}

double
fl_metrics_get_rate (FlMetrics *self)
{
  guint64 sum = 0;

  advance (self);

  /* the current second is still filling: leave it out */
  for (guint i = 1; i < RATE_SLOTS; i++)
    sum += self->rate_slots[(self->rate_second - i + RATE_SLOTS * 2) % RATE_SLOTS];

  return sum / (double) (RATE_SLOTS - 1);
}

double
fl_metrics_get_latency_ms (FlMetrics *self,
                           double     q)
{
  guint64 total, rank, seen = 0;

  advance (self);

  total = self->histograms[0].total + self->histograms[1].total;
  if (total == 0)
    return 0;

  rank = (guint64) ceil (q * total);
  rank = CLAMP (rank, 1, total);
  for (guint b = 0; b < N_BUCKETS; b++)
    {
      seen += self->histograms[0].counts[b] + self->histograms[1].counts[b];
      if (seen >= rank)
        return bucket_value (b) / 1000.0;
    }

  return bucket_value (N_BUCKETS - 1) / 1000.0;
}
