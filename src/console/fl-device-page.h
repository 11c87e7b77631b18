/* fl-device-page.h: one device of the fleet: its state, live values
 * (the latest value of each numeric data field), telemetry charts and
 * details (model, manufacturer, firmware, location, capabilities, tags).
 *
 * Charts start from the cache's recent points and follow the live stream
 * (the fleet's "events"); when a chart is moved or zoomed before what the
 * cache holds, the server's buckets (GET /devices/{id}/telemetry) fill
 * the range.
 */
#pragma once

#include <gtk/gtk.h>

#include "fl-chart.h"
#include "fl-fleet.h"

G_BEGIN_DECLS

#define FL_TYPE_DEVICE_PAGE (fl_device_page_get_type ())
G_DECLARE_FINAL_TYPE (FlDevicePage, fl_device_page, FL, DEVICE_PAGE, GtkWidget)

GtkWidget  *fl_device_page_new             (FlFleet *fleet);

FlFleet    *fl_device_page_get_fleet       (FlDevicePage *self);
/* The device shown, or NULL.  Transfer none. */
FlDevice   *fl_device_page_get_device      (FlDevicePage *self);
void        fl_device_page_set_device      (FlDevicePage *self,
                                            FlDevice     *device);

/* What the page shows for metric's live value ("21.5 °C"), or NULL when
 * it has none.  Transfer full. */
char       *fl_device_page_dup_live_value  (FlDevicePage *self,
                                            const char   *metric);
/* The chart of metric, or NULL.  Transfer none. */
FlChart    *fl_device_page_get_chart       (FlDevicePage *self,
                                            const char   *metric);
/* The metrics charted, sorted by first appearance.  Transfer full. */
GStrv       fl_device_page_dup_metrics     (FlDevicePage *self);

/* The unit of a well-known metric ("°C" for temperature), or NULL. */
const char *fl_device_page_metric_unit     (const char *metric);

G_END_DECLS
