/* fl-devices-page.h: the fleet's devices as a virtualised list, with a
 * search entry and status and tag filters.
 *
 * The list is the fleet in name order (fl_fleet_get_by_name()), filtered
 * by an FlFleetFilter over a compact index of search keys
 * (FlFleetFilterModel: ~2-5 ms for 100,000 devices), shown by a
 * GtkListView of FlDeviceRow: status (icon and text), name and id,
 * battery, signal and last seen, with a header above.  Rows follow the
 * fleet's "devices-changed" without being rebuilt, the last-seen column
 * is refreshed every 30 s, and a filter change rebinds the rows in place
 * (GTK 4.8 would otherwise build ~400 new row widgets).
 */
#pragma once

#include <gtk/gtk.h>

#include "fl-fleet-filter.h"
#include "fl-fleet.h"

G_BEGIN_DECLS

#define FL_TYPE_DEVICES_PAGE (fl_devices_page_get_type ())
G_DECLARE_FINAL_TYPE (FlDevicesPage, fl_devices_page, FL, DEVICES_PAGE, GtkWidget)

GtkWidget      *fl_devices_page_new           (FlFleet *fleet);

FlFleet        *fl_devices_page_get_fleet     (FlDevicesPage *self);
/* The filter the search entry and the dropdowns drive.  Transfer none. */
FlFleetFilter *fl_devices_page_get_filter    (FlDevicesPage *self);
/* What the list shows: the fleet sorted by name and filtered.  Transfer
 * none. */
GListModel     *fl_devices_page_get_model     (FlDevicesPage *self);

/* Focuses the search entry and selects its text. */
void            fl_devices_page_focus_search  (FlDevicesPage *self);
/* The search text, status (FlDeviceStatus or FL_FLEET_FILTER_ANY_STATUS)
 * and tag (NULL: any), as the controls set them. */
void            fl_devices_page_set_search    (FlDevicesPage *self,
                                               const char    *text);
void            fl_devices_page_set_status    (FlDevicesPage *self,
                                               int            status);
void            fl_devices_page_set_tag       (FlDevicesPage *self,
                                               const char    *tag);
/* All three at once: one refilter. */
void            fl_devices_page_set_filters   (FlDevicesPage *self,
                                               const char    *search,
                                               int            status,
                                               const char    *tag);
/* Empties the search and resets both filters (one refilter). */
void            fl_devices_page_clear_filters (FlDevicesPage *self);

/* The name of the visible GtkStack page: "list", "no-match", "empty" or
 * "loading". */
const char     *fl_devices_page_get_state     (FlDevicesPage *self);
/* TRUE below 600 px: fewer columns, filters on two lines. */
gboolean        fl_devices_page_get_narrow    (FlDevicesPage *self);

G_END_DECLS
