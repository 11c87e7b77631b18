/* fl-window.h: the console's main window.  It shows the sign-in page
 * until a session exists, then the fleet view of the session. */
#pragma once

#include <adwaita.h>

#include "fl-application.h"
#include "fl-session.h"
#include "fl-sign-in-page.h"

G_BEGIN_DECLS

#define FL_TYPE_WINDOW (fl_window_get_type ())
G_DECLARE_FINAL_TYPE (FlWindow, fl_window, FL, WINDOW, AdwApplicationWindow)

FlWindow     *fl_window_new                (FlApplication *application);

FlSignInPage *fl_window_get_sign_in_page   (FlWindow *self);
/* The current session, or NULL while signed out.  Transfer none. */
FlSession    *fl_window_get_session        (FlWindow *self);
/* The fleet view, or NULL while signed out.  Transfer none. */
GtkWidget    *fl_window_get_fleet_view     (FlWindow *self);

/* Shows the fleet view of session (replacing any other session). */
void          fl_window_set_session        (FlWindow  *self,
                                            FlSession *session);
/* Drops the session and shows the sign-in page on profile (NULL: keep
 * the selection), with message (NULL: none) as its inline notice. */
void          fl_window_show_sign_in       (FlWindow   *self,
                                            FlProfile  *profile,
                                            const char *message);

/* Restores the session of profile from the keyring (works offline); if
 * there are no tokens, shows the sign-in page on it. */
void          fl_window_open_profile       (FlWindow  *self,
                                            FlProfile *profile);

G_END_DECLS
