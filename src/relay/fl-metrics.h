/* fl-metrics.h: the relay's counters and ingest latency, for GET /metrics
 * (JSON, or Prometheus text).  Main loop only. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _FlMetrics FlMetrics;

FlMetrics *fl_metrics_new             (void);
void       fl_metrics_free            (FlMetrics *self);

void       fl_metrics_count_ingest    (FlMetrics *self,
                                       guint      accepted,
                                       guint      duplicates,
                                       guint      rejected,
                                       gint64     latency_us);
void       fl_metrics_count_request   (FlMetrics *self);

guint64    fl_metrics_get_accepted    (FlMetrics *self);
guint64    fl_metrics_get_duplicates  (FlMetrics *self);
guint64    fl_metrics_get_rejected    (FlMetrics *self);
guint64    fl_metrics_get_requests    (FlMetrics *self);
/* accepted events per second over the last ten seconds */
double     fl_metrics_get_rate        (FlMetrics *self);
/* ingest latency (request in to acknowledgement out), in ms, over about
 * the last minute; q in 0..1 */
double     fl_metrics_get_latency_ms  (FlMetrics *self,
                                       double     q);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlMetrics, fl_metrics_free)

G_END_DECLS
