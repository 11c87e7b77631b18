/* fl-device-row.h: one row of the device list (or its header).
 *
 * One widget that draws its columns itself: status (icon and text, so
 * never by color alone), name and id, battery, signal and last seen.  A
 * GtkListView of 4.8 keeps ~200 rows alive; a row of child widgets per
 * column costs ~20 widgets each, this one costs one.  Binding a device
 * only marks the row: its texts are read when it is drawn (or asked
 * for), so rebinding the rows no one sees costs nothing.  Below 600 px
 * the signal and last-seen columns are left out.  Its accessible label
 * says everything the row shows.
 */
#pragma once

#include <gtk/gtk.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

typedef enum {
  FL_DEVICE_ROW_STATUS,
  FL_DEVICE_ROW_NAME,
  FL_DEVICE_ROW_ID,
  FL_DEVICE_ROW_BATTERY,
  FL_DEVICE_ROW_SIGNAL,
  FL_DEVICE_ROW_LAST_SEEN,
  FL_DEVICE_ROW_N_TEXTS
} FlDeviceRowText;

#define FL_DEVICE_ROW_NARROW_WIDTH 600

#define FL_TYPE_DEVICE_ROW (fl_device_row_get_type ())
G_DECLARE_FINAL_TYPE (FlDeviceRow, fl_device_row, FL, DEVICE_ROW, GtkWidget)

GtkWidget  *fl_device_row_new         (void);
/* The column titles, laid out as the rows are. */
GtkWidget  *fl_device_row_new_header  (void);

/* NULL to unbind. */
void        fl_device_row_set_device  (FlDeviceRow *self,
                                       FlDevice    *device);
FlDevice   *fl_device_row_get_device  (FlDeviceRow *self);
/* Reads the device again (now_ms for "last seen"); redraws only when a
 * text changed.  Returns TRUE when one did. */
gboolean    fl_device_row_update      (FlDeviceRow *self,
                                       gint64       now_ms);
/* What a column shows (for tests and the accessible label). */
const char *fl_device_row_get_text    (FlDeviceRow     *self,
                                       FlDeviceRowText  text);

G_END_DECLS
