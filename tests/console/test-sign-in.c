/* test-sign-in.c: FlSignInPage and FlSession against an in-process relay:
 * sign-in, the inline errors, a temporary password, registration with the
 * emailed code, a forgotten password, refresh, expiry and sign-out.
 * Tokens go to libsecret's file backend (see test-token-store for the
 * real keyring). */
#define G_LOG_DOMAIN "test-sign-in"

#include "config.h"

#include <string.h>

#include <adwaita.h>

#include "fl-cognito-client.h"
#include "fl-sign-in-page.h"
#include "fl-token-store.h"
#include "shell-test-util.h"

#define CONFIRMATION_PHRASE "Your confirmation code is"
#define RESET_PHRASE "Your password reset code is"

typedef struct
{
  gboolean tls;
  gboolean closed_port; /* no relay: a URL where nothing listens */
} Options;

typedef struct
{
  StRelay        *relay;
  char           *url;
  FlProfileStore *store;
  FlProfile      *profile;
  GtkWindow      *window;
  FlSignInPage   *page;
  FlSession      *session;
  guint           n_signed_in;
  guint           n_signed_out;
} Fixture;

/* ---- helpers ----------------------------------------------------------- */

static void
signed_in_cb (FlSignInPage *page,
              FlSession    *session,
              Fixture      *f)
{
  f->n_signed_in++;
  g_set_object (&f->session, session);
}

static void
signed_out_cb (FlSession *session,
               Fixture   *f)
{
  f->n_signed_out++;
}

static GtkWidget *
child (Fixture    *f,
       const char *name)
{
  GObject *object = gtk_widget_get_template_child (GTK_WIDGET (f->page), FL_TYPE_SIGN_IN_PAGE, name);

  g_assert_nonnull (object);
  return GTK_WIDGET (object);
}

static void
set_text (Fixture    *f,
          const char *row,
          const char *text)
{
  gtk_editable_set_text (GTK_EDITABLE (child (f, row)), text);
}

static const char *
get_text (Fixture    *f,
          const char *row)
{
  return gtk_editable_get_text (GTK_EDITABLE (child (f, row)));
}

static void
activate (Fixture    *f,
          const char *action)
{
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (f->page), action, NULL));
}

/* Activates action and waits until its request finished. */
static void
run (Fixture    *f,
     const char *action)
{
  activate (f, action);
  g_assert_true (fl_sign_in_page_get_busy (f->page));
  ST_WAIT_UNTIL (!fl_sign_in_page_get_busy (f->page));
}

static void
wait_signed_in (Fixture *f)
{
  ST_WAIT_UNTIL (f->n_signed_in > 0 || (fl_sign_in_page_get_error (f->page) != NULL && !fl_sign_in_page_get_busy (f->page)));
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpuint (f->n_signed_in, ==, 1);
  g_assert_nonnull (f->session);
}

static void
done_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static FlTokenSet *
keyring_lookup (const char *profile_id)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  FlTokenSet              *tokens;

  fl_token_store_lookup_async (profile_id, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  tokens = fl_token_store_lookup_finish (result, &error);
  g_assert_no_error (error);

  return tokens;
}

/* Whether the keyring holds access_token for the profile (NULL: holds
 * nothing for it). */
static gboolean
keyring_has_access_token (const char *profile_id,
                          const char *access_token)
{
  g_autoptr (FlTokenSet) tokens = keyring_lookup (profile_id);

  if (access_token == NULL)
    return tokens == NULL;
  return tokens != NULL && g_strcmp0 (tokens->access_token, access_token) == 0;
}

/* GET /devices with the session's client: the tokens work. */
static void
assert_client_works (FlSession *session)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (GPtrArray)    devices = NULL;
  FlDeviceListQuery        query = { 0 };

  fl_client_list_devices_async (fl_session_get_client (session), &query, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  devices = fl_client_list_devices_finish (fl_session_get_client (session), result, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (devices);
}

static FlUserPool *
pool (Fixture *f)
{
  return fl_relay_get_user_pool (f->relay->relay);
}

/* ---- fixture ----------------------------------------------------------- */

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  const Options *options = data;

  if (options != NULL && options->closed_port)
    f->url = st_closed_port_url ();
  else
    {
      f->relay = st_relay_new (options != NULL && options->tls);
      f->url = g_strdup (f->relay->url);
    }

  f->store = fl_profile_store_new (NULL);
  f->profile = fl_profile_new_lab (f->url);
  fl_profile_store_add (f->store, f->profile);

  f->page = fl_sign_in_page_new (f->store);
  g_signal_connect (f->page, "signed-in", G_CALLBACK (signed_in_cb), f);
  f->window = GTK_WINDOW (gtk_window_new ());
  gtk_window_set_default_size (f->window, 360, 640);
  gtk_window_set_child (f->window, GTK_WIDGET (f->page));
  gtk_window_present (f->window);

  fl_sign_in_page_set_profile (f->page, f->profile);
  g_assert_true (fl_sign_in_page_get_profile (f->page) == f->profile);
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_object_add_weak_pointer (G_OBJECT (f->page), (gpointer *) &f->page);
  gtk_window_destroy (f->window);
  ST_WAIT_UNTIL (f->page == NULL);

  if (f->session != NULL)
    {
      g_signal_handlers_disconnect_by_data (f->session, f);
      g_assert_finalize_object (g_steal_pointer (&f->session));
    }
  g_clear_object (&f->profile);
  /* a save started by the page may still hold the store */
  g_object_add_weak_pointer (G_OBJECT (f->store), (gpointer *) &f->store);
  g_object_unref (f->store);
  ST_WAIT_UNTIL (f->store == NULL);
  g_clear_pointer (&f->relay, st_relay_free);
  g_free (f->url);
}

/* ---- the .ui files ----------------------------------------------------- */

static void
assert_accessible_controls (GtkWidget *widget)
{
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    assert_accessible_controls (c);

  if (ADW_IS_ENTRY_ROW (widget) || ADW_IS_COMBO_ROW (widget))
    {
      const char *title = adw_preferences_row_get_title (ADW_PREFERENCES_ROW (widget));

      g_assert_nonnull (title);
      g_assert_cmpstr (title, !=, "");
    }
  else if (GTK_IS_BUTTON (widget) && !GTK_IS_MENU_BUTTON (gtk_widget_get_parent (widget)))
    {
      const char *label = gtk_button_get_label (GTK_BUTTON (widget));
      const char *icon = gtk_button_get_icon_name (GTK_BUTTON (widget));

      /* an icon-only button needs a tooltip (and an accessible label) */
      if (icon != NULL && (label == NULL || *label == '\0'))
        g_assert_nonnull (gtk_widget_get_tooltip_text (widget));
    }
  else if (GTK_IS_MENU_BUTTON (widget))
    g_assert_nonnull (gtk_widget_get_tooltip_text (widget));
}

static void
test_ui_files (void)
{
  g_autoptr (GtkBuilder)     builder = NULL;
  g_autoptr (GBytes)         css = NULL;
  g_autoptr (FlProfileStore) store = fl_profile_store_new (NULL);
  GtkWidget                 *page;
  GObject                   *overlay;

  page = GTK_WIDGET (fl_sign_in_page_new (store));
  g_object_ref_sink (page);
  /* no profiles yet: the page asks for one */
  g_assert_cmpstr (fl_sign_in_page_get_form (FL_SIGN_IN_PAGE (page)), ==, "add-profile");
  assert_accessible_controls (page);
  g_assert_finalize_object (page);

  builder = gtk_builder_new_from_resource ("/io/github/fieldline/Fieldline/gtk/help-overlay.ui");
  overlay = gtk_builder_get_object (builder, "help_overlay");
  g_assert_true (GTK_IS_SHORTCUTS_WINDOW (overlay));
  gtk_window_destroy (GTK_WINDOW (overlay));

  css = g_resources_lookup_data ("/io/github/fieldline/Fieldline/style.css", 0, NULL);
  g_assert_nonnull (css);
  g_assert_cmpuint (g_bytes_get_size (css), >, 0);
}

/* ---- sign-in ----------------------------------------------------------- */

static void
test_sign_in (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (FlTokenSet) kept = NULL;
  g_autofree char       *access = NULL;
  g_autofree char       *description = NULL;
  g_autofree char       *saved = NULL;
  g_autofree char       *websocket = g_strconcat ("ws", f->url + strlen ("http"), "/events", NULL);
  gint64                 due;

  /* the first run against a lab says where it signs in */
  description = g_strdup_printf ("Sign in to the lab relay at %s", f->url);
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (child (f, "description"))), ==, description);

  /* empty fields are refused inline, without a request */
  activate (f, "sign-in.sign-in");
  g_assert_false (fl_sign_in_page_get_busy (f->page));
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "Enter your username and password.");

  set_text (f, "username_row", "ada");
  set_text (f, "password_row", ST_PASSWORD);
  activate (f, "sign-in.sign-in");
  wait_signed_in (f);

  g_assert_cmpstr (fl_session_get_username (f->session), ==, "ada");
  g_assert_true (fl_session_get_online (f->session));
  g_assert_true (fl_session_get_profile (f->session) == f->profile);
  access = fl_session_dup_access_token (f->session);
  g_assert_nonnull (access);
  g_assert_cmpstr (fl_session_get_websocket_url (f->session), ==, websocket);

  /* the lab's pool and app client came from GET /config */
  g_assert_cmpstr (fl_profile_get_user_pool_id (f->profile), ==, fl_relay_get_pool_id (f->relay->relay));
  g_assert_cmpstr (fl_profile_get_client_id (f->profile), ==, fl_relay_get_client_id (f->relay->relay));
  /* ... and were saved, without any token */
  ST_WAIT_UNTIL (g_file_get_contents (fl_profile_store_get_path (f->store), &saved, NULL, NULL)
                 && strstr (saved, fl_relay_get_pool_id (f->relay->relay)) != NULL);
  g_assert_null (strstr (saved, access));

  /* the password is gone from the form */
  g_assert_cmpstr (get_text (f, "password_row"), ==, "");

  /* the tokens are in the keyring */
  kept = keyring_lookup (fl_profile_get_id (f->profile));
  g_assert_nonnull (kept);
  g_assert_cmpstr (kept->access_token, ==, access);
  g_assert_nonnull (kept->refresh_token);
  g_assert_cmpstr (kept->username, ==, "ada");

  /* a silent refresh five minutes before expiry */
  due = fl_session_get_refresh_due (f->session);
  g_assert_cmpint (due, >=, kept->expires_at - 5 * 60 - 2);
  g_assert_cmpint (due, <=, kept->expires_at - 5 * 60 + 2);

  assert_client_works (f->session);
}

static void
test_wrong_password (Fixture      *f,
                     gconstpointer data)
{
  set_text (f, "username_row", "ada");
  set_text (f, "password_row", "not-the-password");
  run (f, "sign-in.sign-in");

  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "Incorrect username or password.");
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (child (f, "error_label"))), ==, "Incorrect username or password.");
  g_assert_true (gtk_revealer_get_reveal_child (GTK_REVEALER (child (f, "error_revealer"))));
  g_assert_cmpint (gtk_accessible_get_accessible_role (GTK_ACCESSIBLE (child (f, "error_box"))), ==, GTK_ACCESSIBLE_ROLE_ALERT);
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");
  g_assert_cmpuint (f->n_signed_in, ==, 0);

  /* an unknown user reads the same */
  set_text (f, "username_row", "nobody");
  run (f, "sign-in.sign-in");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "Incorrect username or password.");

  /* and the right password then works, typed as a user does: Enter in
   * the username goes on to the password, Enter there signs in */
  set_text (f, "username_row", "ada");
  set_text (f, "password_row", ST_PASSWORD);
  g_signal_emit_by_name (child (f, "username_row"), "entry-activated");
  {
    GtkWidget *focus = gtk_root_get_focus (GTK_ROOT (f->window));

    g_assert_nonnull (focus);
    g_assert_true (focus == child (f, "password_row") || gtk_widget_is_ancestor (focus, child (f, "password_row")));
  }
  g_signal_emit_by_name (child (f, "password_row"), "entry-activated");
  wait_signed_in (f);
  g_assert_false (gtk_revealer_get_reveal_child (GTK_REVEALER (child (f, "error_revealer"))));
}

static void
test_unreachable (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *expected = g_strdup_printf ("Cannot reach the server at %s. Check the address and your network connection.", f->url);

  set_text (f, "username_row", "ada");
  set_text (f, "password_row", ST_PASSWORD);
  run (f, "sign-in.sign-in");

  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, expected);
  g_assert_cmpuint (f->n_signed_in, ==, 0);
}

static void
test_tls_failure (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *expected = NULL;

  g_assert_true (g_str_has_prefix (f->url, "https://"));
  expected = g_strdup_printf ("The secure connection to %s failed: the server’s certificate is not trusted.", f->url);

  set_text (f, "username_row", "ada");
  set_text (f, "password_row", ST_PASSWORD);
  run (f, "sign-in.sign-in");

  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, expected);
  g_assert_cmpuint (f->n_signed_in, ==, 0);
}

static void
test_new_password_required (Fixture      *f,
                            gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  fl_user_pool_create_user (pool (f), "grace", "grace@example.org", "Temp0rary-Pass", TRUE, FL_ROLE_VIEWER, &error);
  g_assert_no_error (error);

  set_text (f, "username_row", "grace");
  set_text (f, "password_row", "Temp0rary-Pass");
  run (f, "sign-in.sign-in");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "new-password");
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (child (f, "heading"))), ==, "Choose a New Password");
  g_assert_cmpuint (f->n_signed_in, ==, 0);

  /* the two must match */
  set_text (f, "new_password_row", "N3w-Password!");
  set_text (f, "new_password_confirm_row", "N3w-Passw0rd!");
  activate (f, "sign-in.new-password");
  g_assert_false (fl_sign_in_page_get_busy (f->page));
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "The two passwords are not the same.");

  /* the policy is the server's */
  set_text (f, "new_password_row", "short");
  set_text (f, "new_password_confirm_row", "short");
  run (f, "sign-in.new-password");
  g_assert_true (g_str_has_prefix (fl_sign_in_page_get_error (f->page), "The password is not strong enough: "));
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "new-password");

  set_text (f, "new_password_row", "N3w-Password!");
  set_text (f, "new_password_confirm_row", "N3w-Password!");
  activate (f, "sign-in.new-password");
  wait_signed_in (f);
  g_assert_cmpstr (fl_session_get_username (f->session), ==, "grace");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");
  assert_client_works (f->session);
}

static void
test_sign_up_and_confirm (Fixture      *f,
                          gconstpointer data)
{
  g_autofree char *code = NULL;

  activate (f, "sign-in.show-sign-up");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-up");
  g_assert_true (gtk_widget_get_visible (child (f, "back_button")));

  set_text (f, "sign_up_username_row", "hedy");
  set_text (f, "sign_up_email_row", "hedy@example.org");
  set_text (f, "sign_up_password_row", ST_PASSWORD);
  run (f, "sign-in.sign-up");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "confirm");
  g_assert_cmpstr (get_text (f, "confirm_username_row"), ==, "hedy");
  /* "Enter the code sent to h***@e***." */
  g_assert_true (g_str_has_prefix (gtk_label_get_text (GTK_LABEL (child (f, "description"))), "Enter the code sent to "));

  code = st_relay_take_code (f->relay, "hedy@example.org", CONFIRMATION_PHRASE);

  /* a wrong code first */
  set_text (f, "confirm_code_row", strcmp (code, "000000") == 0 ? "111111" : "000000");
  run (f, "sign-in.confirm");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "The code is not correct. Check it and try again.");

  set_text (f, "confirm_code_row", code);
  activate (f, "sign-in.confirm");
  /* confirmed, then signed in with the sign-up's password */
  wait_signed_in (f);
  g_assert_cmpstr (fl_session_get_username (f->session), ==, "hedy");
  assert_client_works (f->session);
}

static void
test_username_taken (Fixture      *f,
                     gconstpointer data)
{
  activate (f, "sign-in.show-sign-up");
  set_text (f, "sign_up_username_row", "ada");
  set_text (f, "sign_up_email_row", "ada2@example.org");
  set_text (f, "sign_up_password_row", ST_PASSWORD);
  run (f, "sign-in.sign-up");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "This username is already taken. Choose another one.");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-up");

  /* back, with Escape's action */
  activate (f, "sign-in.back");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
}

static void
test_unconfirmed_user (Fixture      *f,
                       gconstpointer data)
{
  g_autofree char *code = NULL;
  GtkWidget       *action_button;

  activate (f, "sign-in.show-sign-up");
  set_text (f, "sign_up_username_row", "lin");
  set_text (f, "sign_up_email_row", "lin@example.org");
  set_text (f, "sign_up_password_row", ST_PASSWORD);
  run (f, "sign-in.sign-up");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "confirm");
  code = st_relay_take_code (f->relay, "lin@example.org", CONFIRMATION_PHRASE);

  /* leave without confirming; later, sign in */
  activate (f, "sign-in.back");
  activate (f, "sign-in.back");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");
  set_text (f, "username_row", "lin");
  set_text (f, "password_row", ST_PASSWORD);
  run (f, "sign-in.sign-in");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==,
                   "This account is not confirmed yet. Enter the confirmation code that was emailed to you.");

  /* the error offers to enter the code */
  action_button = child (f, "error_action_button");
  g_assert_true (gtk_widget_get_visible (action_button));
  g_assert_cmpstr (gtk_actionable_get_action_name (GTK_ACTIONABLE (action_button)), ==, "sign-in.show-confirm");
  g_assert_true (gtk_widget_is_sensitive (action_button));
  g_signal_emit_by_name (action_button, "clicked");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "confirm");
  g_assert_cmpstr (get_text (f, "confirm_username_row"), ==, "lin");

  set_text (f, "confirm_code_row", code);
  activate (f, "sign-in.confirm");
  wait_signed_in (f);
  g_assert_cmpstr (fl_session_get_username (f->session), ==, "lin");
}

static void
test_forgot_password (Fixture      *f,
                      gconstpointer data)
{
  g_autofree char *code = NULL;

  set_text (f, "username_row", "ada");
  activate (f, "sign-in.show-forgot-password");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "forgot");
  g_assert_cmpstr (get_text (f, "forgot_username_row"), ==, "ada");

  run (f, "sign-in.forgot-password");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "reset");

  code = st_relay_take_code (f->relay, "ada@example.org", RESET_PHRASE);
  set_text (f, "reset_code_row", code);
  set_text (f, "reset_password_row", "An0ther-Secret!");
  activate (f, "sign-in.reset-password");
  wait_signed_in (f);
  g_assert_cmpstr (fl_session_get_username (f->session), ==, "ada");
}

/* ---- the session ------------------------------------------------------- */

static void
sign_in (Fixture *f)
{
  set_text (f, "username_row", "ada");
  set_text (f, "password_row", ST_PASSWORD);
  activate (f, "sign-in.sign-in");
  wait_signed_in (f);
  g_signal_connect (f->session, "signed-out", G_CALLBACK (signed_out_cb), f);
}

static void
report_unauthorized (FlSession *session)
{
  g_autoptr (GError) unauthorized = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED, "expired");

  fl_session_report_network_error (session, unauthorized);
}

static gboolean
access_token_changed (FlSession  *session,
                      const char *before)
{
  g_autofree char *now = fl_session_dup_access_token (session);

  return now != NULL && g_strcmp0 (now, before) != 0;
}

static void
test_refresh (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  g_autoptr (FlTokenSet)   kept = NULL;
  g_autofree char         *before = NULL;
  g_autofree char         *after = NULL;

  sign_in (f);
  before = fl_session_dup_access_token (f->session);
  g_assert_cmpint (fl_session_get_refresh_due (f->session), >, 0);

  /* a 401 the fleet views report starts a refresh at once */
  report_unauthorized (f->session);
  g_assert_cmpint (fl_session_get_refresh_due (f->session), ==, 0); /* running */
  ST_WAIT_UNTIL (access_token_changed (f->session, before));
  g_assert_cmpint (fl_session_get_refresh_due (f->session), >, 0);
  assert_client_works (f->session);

  /* another 401 right after was for the old tokens: no second refresh */
  report_unauthorized (f->session);
  g_assert_cmpint (fl_session_get_refresh_due (f->session), >, 0);

  /* an explicit refresh */
  g_free (before);
  before = fl_session_dup_access_token (f->session);
  fl_session_refresh_async (f->session, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  g_assert_true (fl_session_refresh_finish (f->session, result, &error));
  g_assert_no_error (error);

  after = fl_session_dup_access_token (f->session);
  g_assert_nonnull (after);
  g_assert_cmpstr (after, !=, before);
  g_assert_cmpuint (f->n_signed_out, ==, 0);
  g_assert_true (fl_session_get_online (f->session));
  assert_client_works (f->session);

  /* the keyring follows, refresh token kept */
  ST_WAIT_UNTIL (keyring_has_access_token (fl_profile_get_id (f->profile), after));
  kept = keyring_lookup (fl_profile_get_id (f->profile));
  g_assert_nonnull (kept->refresh_token);
}

static void
count_cb (GObject    *object,
          GParamSpec *pspec,
          guint      *count)
{
  (*count)++;
}

static void
test_online_reports (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError) network = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK, "down");
  g_autoptr (GError) server = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_SERVER, "500");
  g_autoptr (GError) cancelled = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
  g_autoptr (GError) refused = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, "refused");
  guint              notifies = 0;

  sign_in (f);
  g_signal_connect (f->session, "notify::online", G_CALLBACK (count_cb), &notifies);

  g_assert_true (fl_session_get_online (f->session));
  fl_session_report_network_error (f->session, network);
  g_assert_false (fl_session_get_online (f->session));
  g_assert_cmpuint (notifies, ==, 1);
  fl_session_report_network_error (f->session, network);
  g_assert_cmpuint (notifies, ==, 1); /* notified on change only */
  fl_session_report_network_error (f->session, cancelled);
  g_assert_false (fl_session_get_online (f->session));
  fl_session_report_success (f->session);
  g_assert_true (fl_session_get_online (f->session));
  g_assert_cmpuint (notifies, ==, 2);
  fl_session_report_network_error (f->session, refused);
  g_assert_false (fl_session_get_online (f->session));
  /* a 500 came from the server: online */
  fl_session_report_network_error (f->session, server);
  g_assert_true (fl_session_get_online (f->session));
  g_assert_cmpuint (f->n_signed_out, ==, 0);
}

static void
test_expired_session (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;

  sign_in (f);

  /* the server stops honouring the refresh token */
  fl_user_pool_set_user_enabled (pool (f), "ada", FALSE, &error);
  g_assert_no_error (error);

  fl_session_refresh_async (f->session, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  g_assert_false (fl_session_refresh_finish (f->session, result, &error));
  g_assert_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED);

  g_assert_cmpuint (f->n_signed_out, ==, 1);
  g_assert_true (fl_session_get_expired (f->session));
  g_assert_null (fl_session_dup_access_token (f->session));
  g_assert_cmpint (fl_session_get_refresh_due (f->session), ==, 0);

  /* and the keyring forgets the tokens */
  ST_WAIT_UNTIL (keyring_has_access_token (fl_profile_get_id (f->profile), NULL));
}

static void
test_sign_out (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GAsyncResult)    refresh_result = NULL;
  g_autoptr (GError)          error = NULL;
  g_autoptr (FlTokenSet)      kept = NULL;
  g_autoptr (FlCognitoClient) cognito = NULL;
  g_autoptr (FlCognitoTokens) refreshed = NULL;
  g_autofree char            *endpoint = NULL;

  sign_in (f);
  kept = keyring_lookup (fl_profile_get_id (f->profile));
  g_assert_nonnull (kept);

  fl_session_sign_out_async (f->session, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  g_assert_true (fl_session_sign_out_finish (f->session, result, &error));
  g_assert_no_error (error);

  g_assert_cmpuint (f->n_signed_out, ==, 1);
  g_assert_false (fl_session_get_expired (f->session));
  g_assert_null (fl_session_dup_access_token (f->session));
  g_assert_false (fl_client_is_signed_in (fl_session_get_client (f->session)));
  {
    g_autoptr (FlTokenSet) none = keyring_lookup (fl_profile_get_id (f->profile));
    g_assert_null (none);
  }

  /* GlobalSignOut: the old refresh token is dead */
  endpoint = fl_profile_dup_cognito_endpoint (f->profile);
  cognito = fl_cognito_client_new (endpoint, fl_profile_get_user_pool_id (f->profile),
                                   fl_profile_get_client_id (f->profile), NULL);
  fl_cognito_client_refresh_async (cognito, kept->username, kept->refresh_token, NULL, done_cb, &refresh_result);
  ST_WAIT_UNTIL (refresh_result != NULL);
  refreshed = fl_cognito_client_refresh_finish (cognito, refresh_result, &error);
  g_assert_null (refreshed);
  g_assert_error (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED);
}

/* ---- adding a connection ---------------------------------------------- */

static void
test_add_profile (Fixture      *f,
                  gconstpointer data)
{
  FlProfile *profile;

  activate (f, "sign-in.add-profile");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "add-profile");

  set_text (f, "lab_url_row", "ftp://nope");
  activate (f, "sign-in.save-profile");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==,
                   "This is not a relay address. Enter one like http://127.0.0.1:8080.");
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (f->store)), ==, 1);

  set_text (f, "lab_url_row", "127.0.0.1:1");
  activate (f, "sign-in.save-profile");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (f->store)), ==, 2);
  profile = fl_sign_in_page_get_profile (f->page);
  g_assert_cmpstr (fl_profile_get_url (profile), ==, "http://127.0.0.1:1");
  g_assert_cmpstr (fl_sign_in_page_get_form (f->page), ==, "sign-in");

  /* a cloud deployment */
  activate (f, "sign-in.add-profile");
  adw_combo_row_set_selected (ADW_COMBO_ROW (child (f, "kind_row")), 1);
  g_assert_true (gtk_widget_get_visible (child (f, "cloud_group")));
  g_assert_false (gtk_widget_get_visible (child (f, "lab_group")));
  set_text (f, "cloud_name_row", "Production");
  set_text (f, "cloud_region_row", "eu-west-1");
  set_text (f, "cloud_pool_row", "eu-west-1_AbC123");
  set_text (f, "cloud_client_row", "client123");
  set_text (f, "cloud_api_row", "https://api.example.org/prod");
  set_text (f, "cloud_websocket_row", "https://ws.example.org/prod");
  activate (f, "sign-in.save-profile");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, "The WebSocket URL must start with wss:// or ws://.");
  set_text (f, "cloud_websocket_row", "wss://ws.example.org/prod");
  activate (f, "sign-in.save-profile");
  g_assert_cmpstr (fl_sign_in_page_get_error (f->page), ==, NULL);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (f->store)), ==, 3);
  profile = fl_sign_in_page_get_profile (f->page);
  g_assert_cmpint (fl_profile_get_kind (profile), ==, FL_PROFILE_CLOUD);
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (child (f, "description"))), ==, "Sign in to Production");
}

int
main (int   argc,
      char *argv[])
{
  static const Options tls = { .tls = TRUE };
  static const Options closed = { .closed_port = TRUE };
  g_autofree char     *home = st_isolate_dirs ();
  g_autofree char     *secret_dir = NULL;
  g_autofree char     *secret_path = NULL;
  int                  status;

  g_test_init (&argc, &argv, NULL);

  /* tokens in libsecret's file backend, in a directory of the test's */
  secret_dir = g_dir_make_tmp ("fieldline-sign-in-XXXXXX", NULL);
  g_assert_nonnull (secret_dir);
  secret_path = g_build_filename (secret_dir, "keyring.file", NULL);
  g_setenv ("SECRET_BACKEND", "file", TRUE);
  g_setenv ("SECRET_FILE_TEST_PATH", secret_path, TRUE);
  g_setenv ("SECRET_FILE_TEST_PASSWORD", "test-password", TRUE);

  gtk_init ();
  adw_init ();

#define ADD(path, func, data) \
  g_test_add ("/fieldline/console/" path, Fixture, data, fixture_set_up, func, fixture_tear_down)

  g_test_add_func ("/fieldline/console/ui-files/sign-in-page", test_ui_files);
  ADD ("sign-in/success", test_sign_in, NULL);
  ADD ("sign-in/wrong-password", test_wrong_password, NULL);
  ADD ("sign-in/unreachable", test_unreachable, &closed);
  ADD ("sign-in/tls-failure", test_tls_failure, &tls);
  ADD ("sign-in/new-password-required", test_new_password_required, NULL);
  ADD ("sign-in/sign-up-and-confirm", test_sign_up_and_confirm, NULL);
  ADD ("sign-in/username-taken", test_username_taken, NULL);
  ADD ("sign-in/unconfirmed-user", test_unconfirmed_user, NULL);
  ADD ("sign-in/forgot-password", test_forgot_password, NULL);
  ADD ("sign-in/add-profile", test_add_profile, &closed);
  ADD ("session/refresh", test_refresh, NULL);
  ADD ("session/online-reports", test_online_reports, NULL);
  ADD ("session/expired", test_expired_session, NULL);
  ADD ("session/sign-out", test_sign_out, NULL);

  status = g_test_run ();

  secret_service_disconnect ();
  st_remove_tree (secret_dir);
  st_remove_tree (home);

  return status;
}
