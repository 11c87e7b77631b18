/* fl-device-filter.h: the devices page's filter: search text, status and
 * tag, over a fleet of up to 100,000 devices within a few milliseconds.
 *
 * The search text is split at white space; a device matches when every
 * term is found, case-insensitively, in its id, name, model or one of its
 * tags.  Each device's casefolded search key is computed once and kept on
 * the device (fl_device_filter_invalidate_key() drops it after the
 * device's name, model or tags change).
 */
#pragma once

#include <gtk/gtk.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

/* Any status (the default). */
#define FL_DEVICE_FILTER_ANY_STATUS (-1)

#define FL_TYPE_DEVICE_FILTER (fl_device_filter_get_type ())
G_DECLARE_FINAL_TYPE (FlDeviceFilter, fl_device_filter, FL, DEVICE_FILTER, GtkFilter)

FlDeviceFilter *fl_device_filter_new            (void);

const char     *fl_device_filter_get_search     (FlDeviceFilter *self);
void            fl_device_filter_set_search     (FlDeviceFilter *self,
                                                 const char     *search);
/* An FlDeviceStatus, or FL_DEVICE_FILTER_ANY_STATUS. */
int             fl_device_filter_get_status     (FlDeviceFilter *self);
void            fl_device_filter_set_status     (FlDeviceFilter *self,
                                                 int             status);
/* NULL: any tag. */
const char     *fl_device_filter_get_tag        (FlDeviceFilter *self);
void            fl_device_filter_set_tag        (FlDeviceFilter *self,
                                                 const char     *tag);
/* Sets all three with one "changed" (one refilter). */
void            fl_device_filter_set            (FlDeviceFilter *self,
                                                 const char     *search,
                                                 int             status,
                                                 const char     *tag);
/* TRUE when neither search, status nor tag restricts anything. */
gboolean        fl_device_filter_is_empty       (FlDeviceFilter *self);

gboolean        fl_device_filter_match_device   (FlDeviceFilter *self,
                                                 FlDevice       *device);

/* Computes the search key of device if it has none yet, e.g. to spread
 * the work of a first search. */
void            fl_device_filter_prepare_key    (FlDevice *device);
/* Drops device's search key (its name, model or tags changed). */
void            fl_device_filter_invalidate_key (FlDevice *device);

G_END_DECLS
