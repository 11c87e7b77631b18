/* fl-sign-in-page.h: choosing or adding a connection profile and signing
 * in to it, with registration, confirmation codes, forgotten passwords
 * and the new password a temporary one requires.
 *
 * When a sign-in succeeds, "signed-in" is emitted with the new FlSession.
 * Every failure is shown inline, in a label announced to screen readers.
 *
 * Widget actions (group "sign-in"): sign-in, sign-up, show-sign-up,
 * confirm, resend-code, show-confirm, forgot-password, reset-password,
 * new-password, add-profile, save-profile, back.
 */
#pragma once

#include <adwaita.h>

#include "fl-profile-store.h"
#include "fl-session.h"

G_BEGIN_DECLS

#define FL_TYPE_SIGN_IN_PAGE (fl_sign_in_page_get_type ())
G_DECLARE_FINAL_TYPE (FlSignInPage, fl_sign_in_page, FL, SIGN_IN_PAGE, AdwBin)

FlSignInPage   *fl_sign_in_page_new              (FlProfileStore *store);

FlProfileStore *fl_sign_in_page_get_store        (FlSignInPage   *self);
void            fl_sign_in_page_set_store        (FlSignInPage   *self,
                                                  FlProfileStore *store);
/* The selected profile, or NULL.  Transfer none. */
FlProfile      *fl_sign_in_page_get_profile      (FlSignInPage *self);
void            fl_sign_in_page_set_profile      (FlSignInPage *self,
                                                  FlProfile    *profile);

/* Fills in the username of the sign-in form, unless one was typed
 * already (the lab command passes its user this way). */
void            fl_sign_in_page_suggest_username (FlSignInPage *self,
                                                  const char   *username);

/* The inline notice above the form (e.g. "Your session has expired;
 * sign in again"), or NULL to hide it. */
void            fl_sign_in_page_set_notice       (FlSignInPage *self,
                                                  const char   *notice);
/* The inline error currently shown, or NULL. */
const char     *fl_sign_in_page_get_error        (FlSignInPage *self);
/* The form shown: "sign-in", "new-password", "sign-up", "confirm",
 * "forgot", "reset", "add-profile". */
const char     *fl_sign_in_page_get_form         (FlSignInPage *self);
/* TRUE while a request runs. */
gboolean        fl_sign_in_page_get_busy         (FlSignInPage *self);

/* Moves the keyboard focus to the first empty field of the form. */
void            fl_sign_in_page_focus_form       (FlSignInPage *self);

G_END_DECLS
