/* fl-application.h: the fieldline console application.
 *
 * Single instance (a second `fieldline --connect URL` is handed to the
 * running one), app actions with shortcuts, the profile store and the
 * settings.
 */
#pragma once

#include <adwaita.h>

#include "fl-profile-store.h"

G_BEGIN_DECLS

#define FL_TYPE_APPLICATION (fl_application_get_type ())
G_DECLARE_FINAL_TYPE (FlApplication, fl_application, FL, APPLICATION, AdwApplication)

FlApplication  *fl_application_new                 (void);
FlProfileStore *fl_application_get_profile_store   (FlApplication *self);
/* The settings, or NULL when the schema is not installed. */
GSettings      *fl_application_get_settings        (FlApplication *self);

/* TRUE once the profiles were loaded; command lines wait for it. */
gboolean        fl_application_get_ready           (FlApplication *self);

/* What `fieldline --connect URL` does: finds or creates the lab profile
 * of the relay at url, remembers it as the last one, saves the profiles
 * and presents a window on it.  Returns the profile (transfer none), or
 * NULL with an error when url is not an http(s) URL. */
FlProfile      *fl_application_connect             (FlApplication  *self,
                                                    const char     *url,
                                                    GError        **error);

G_END_DECLS
