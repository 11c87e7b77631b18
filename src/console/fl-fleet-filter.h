/* fl-fleet-filter.h: the devices page's filter: search text, status and
 * tag, over a fleet of up to 100,000 devices within a few milliseconds.
 *
 * The search text is split at white space; a device matches when every
 * term is found, case-insensitively, in its id, name, model or one of its
 * tags; the tag filter matches a tag exactly.  Each device's casefolded
 * search key can be built once and matched many times
 * (fl_fleet_filter_append_key(), fl_fleet_filter_match_key()).
 */
#pragma once

#include <gtk/gtk.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

/* Any status (the default). */
#define FL_FLEET_FILTER_ANY_STATUS (-1)

#define FL_TYPE_FLEET_FILTER (fl_fleet_filter_get_type ())
G_DECLARE_FINAL_TYPE (FlFleetFilter, fl_fleet_filter, FL, FLEET_FILTER, GtkFilter)

FlFleetFilter *fl_fleet_filter_new            (void);

const char     *fl_fleet_filter_get_search     (FlFleetFilter *self);
void            fl_fleet_filter_set_search     (FlFleetFilter *self,
                                                 const char     *search);
/* An FlDeviceStatus, or FL_FLEET_FILTER_ANY_STATUS. */
int             fl_fleet_filter_get_status     (FlFleetFilter *self);
void            fl_fleet_filter_set_status     (FlFleetFilter *self,
                                                 int             status);
/* NULL: any tag. */
const char     *fl_fleet_filter_get_tag        (FlFleetFilter *self);
void            fl_fleet_filter_set_tag        (FlFleetFilter *self,
                                                 const char     *tag);
/* Sets all three with one "changed" (one refilter). */
void            fl_fleet_filter_set            (FlFleetFilter *self,
                                                 const char     *search,
                                                 int             status,
                                                 const char     *tag);
/* TRUE when neither search, status nor tag restricts anything. */
gboolean        fl_fleet_filter_is_empty       (FlFleetFilter *self);

gboolean        fl_fleet_filter_match_device   (FlFleetFilter *self,
                                                 FlDevice       *device);

/* Appends device's search key to out: its id, name, model and tags,
 * casefolded, "\n" between them, then a NUL, then its tags as they are,
 * each after a "\x1f" and the last one followed by one, then a NUL.
 * Returns where (from the key's start) the tags part begins. */
gsize           fl_fleet_filter_append_key     (FlDevice *device,
                                                 GString  *out);
/* The match on a key made by fl_fleet_filter_append_key(): key its
 * start, tags its tags part, status the device's. */
gboolean        fl_fleet_filter_match_key      (FlFleetFilter *self,
                                                 int             status,
                                                 const char     *key,
                                                 const char     *tags);

G_END_DECLS
