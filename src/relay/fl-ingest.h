/* fl-ingest.h: the device → store → hub path.  A body from a device
 * (HTTP or WebSocket) is split, validated and normalised here, appended
 * to the store, and only once committed noted in the registry, published
 * to the hub and acknowledged. */
#pragma once

#include <gio/gio.h>

#include "fieldline-core.h"
#include "fl-hub.h"
#include "fl-metrics.h"
#include "fl-registry.h"

G_BEGIN_DECLS

#define FL_TYPE_INGEST (fl_ingest_get_type ())
G_DECLARE_FINAL_TYPE (FlIngest, fl_ingest, FL, INGEST, GObject)

FlIngest *fl_ingest_new             (FlStore    *store,
                                     FlRegistry *registry,
                                     FlHub      *hub,
                                     FlMetrics  *metrics,
                                     gsize       max_event_size);

/* Ingests body (one event, an array, or NDJSON) sent by device.
 * started_us is g_get_monotonic_time() when the request arrived. */
void      fl_ingest_submit_async    (FlIngest            *self,
                                     FlDevice            *device,
                                     GBytes              *body,
                                     gint64               started_us,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data);
/* The reply, {"accepted","duplicates","rejected":[{"index","error"}]};
 * fails when the body as a whole is bad (or a single event is). */
GString  *fl_ingest_submit_finish   (FlIngest      *self,
                                     GAsyncResult  *result,
                                     GError       **error);

/* Requests submitted and not yet acknowledged. */
guint     fl_ingest_get_in_flight   (FlIngest *self);

G_END_DECLS
