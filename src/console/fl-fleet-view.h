/* fl-fleet-view.h: the fleet view of a session (devices list and device
 * pages), shown by FlWindow once signed in.
 *
 * An AdwLeaflet (folded: a navigation stack, adaptive down to 360 px):
 * the devices page, then the page of the device a row opened, with a
 * back button.  A revealer above the list says when the server cannot be
 * reached ("Offline — showing data from <last sync>") and offers a
 * retry.  Widget actions: fleet.refresh, fleet.search (the window
 * forwards Ctrl+R and Ctrl+F), fleet.back (Alt+Left).
 */
#pragma once

#include <gtk/gtk.h>

#include "fl-device-page.h"
#include "fl-devices-page.h"
#include "fl-fleet.h"
#include "fl-session.h"

G_BEGIN_DECLS

#define FL_TYPE_FLEET_VIEW (fl_fleet_view_get_type ())
G_DECLARE_FINAL_TYPE (FlFleetView, fl_fleet_view, FL, FLEET_VIEW, GtkWidget)

/* The fleet of session (its profile's cache), started at once. */
GtkWidget     *fl_fleet_view_new                (FlSession *session);
/* A view of fleet as it is (the caller starts it); tests, benchmark. */
GtkWidget     *fl_fleet_view_new_for_fleet      (FlFleet *fleet);

FlFleet       *fl_fleet_view_get_fleet          (FlFleetView *self);
FlDevicesPage *fl_fleet_view_get_devices_page   (FlFleetView *self);
FlDevicePage  *fl_fleet_view_get_device_page    (FlFleetView *self);

/* Opens device's page (as activating its row does). */
void           fl_fleet_view_show_device        (FlFleetView *self,
                                                 FlDevice    *device);
/* Back to the devices page. */
void           fl_fleet_view_show_devices       (FlFleetView *self);
/* "devices" or "device". */
const char    *fl_fleet_view_get_visible_page   (FlFleetView *self);

/* The offline notice, when it is shown, else NULL.  Transfer none. */
const char    *fl_fleet_view_get_offline_text   (FlFleetView *self);

G_END_DECLS
