/* test-application.c: the console application: `fieldline --connect URL`
 * (through the command-line handler), the window restoring a session
 * from the keyring, the window actions, expiry and sign-out.
 *
 * The fleet view is a stand-in defined here (fl_fleet_view_new), so the
 * shell is tested on its own: the linker takes this definition and never
 * pulls the real view from the console library. */
#define G_LOG_DOMAIN "test-application"

#include "config.h"

#include <string.h>

#include <adwaita.h>
#include <glib/gstdio.h>

#include "fl-cognito-client.h"
#include "fl-console-private.h"
#include "fl-window.h"
#include "shell-test-util.h"

/* ---- a stand-in fleet view -------------------------------------------- */

/* as in fl-fleet-view.h, without the fleet's headers */
GtkWidget *fl_fleet_view_new (FlSession *session);

#define TEST_TYPE_FLEET_VIEW (test_fleet_view_get_type ())
G_DECLARE_FINAL_TYPE (TestFleetView, test_fleet_view, TEST, FLEET_VIEW, AdwBin)

struct _TestFleetView
{
  AdwBin     parent_instance;
  FlSession *session;
  guint      n_refresh;
  guint      n_search;
};

G_DEFINE_FINAL_TYPE (TestFleetView, test_fleet_view, ADW_TYPE_BIN)

static void
test_fleet_view_action (GtkWidget  *widget,
                        const char *action_name,
                        GVariant   *parameter)
{
  TestFleetView *self = TEST_FLEET_VIEW (widget);

  if (g_str_equal (action_name, "fleet.refresh"))
    self->n_refresh++;
  else
    self->n_search++;
}

static void
test_fleet_view_dispose (GObject *object)
{
  g_clear_object (&TEST_FLEET_VIEW (object)->session);
  G_OBJECT_CLASS (test_fleet_view_parent_class)->dispose (object);
}

static void
test_fleet_view_class_init (TestFleetViewClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = test_fleet_view_dispose;
  gtk_widget_class_install_action (GTK_WIDGET_CLASS (klass), "fleet.refresh", NULL, test_fleet_view_action);
  gtk_widget_class_install_action (GTK_WIDGET_CLASS (klass), "fleet.search", NULL, test_fleet_view_action);
}

static void
test_fleet_view_init (TestFleetView *self)
{
}

GtkWidget *
fl_fleet_view_new (FlSession *session)
{
  TestFleetView *view = g_object_new (TEST_TYPE_FLEET_VIEW, NULL);

  view->session = g_object_ref (session);
  return GTK_WIDGET (view);
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct
{
  gboolean relay;
} Options;

typedef struct
{
  StRelay       *relay;
  FlApplication *app;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  const Options    *options = data;
  g_autoptr (GError) error = NULL;
  g_autofree char  *profiles = g_build_filename (g_get_user_config_dir (), "fieldline", "profiles.json", NULL);

  if (options != NULL && options->relay)
    f->relay = st_relay_new (FALSE);

  /* a fresh start: no profiles, no last profile */
  g_unlink (profiles);
  g_unsetenv ("FIELDLINE_USER");

  f->app = fl_application_new ();
  /* one process runs many: no bus name, and an object path each */
  g_application_set_flags (G_APPLICATION (f->app), G_APPLICATION_HANDLES_COMMAND_LINE | G_APPLICATION_NON_UNIQUE);
  {
    static guint n_apps;
    g_autofree char *id = g_strdup_printf ("%s.Test%u", APPLICATION_ID, ++n_apps);

    g_application_set_application_id (G_APPLICATION (f->app), id);
  }
  g_assert_true (g_application_register (G_APPLICATION (f->app), NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (fl_application_get_settings (f->app));
  g_settings_set_string (fl_application_get_settings (f->app), "last-profile", "");
  ST_WAIT_UNTIL (fl_application_get_ready (f->app));
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  GList *windows;

  while ((windows = gtk_application_get_windows (GTK_APPLICATION (f->app))) != NULL)
    gtk_window_destroy (windows->data);

  /* A registered GApplication that never ran is kept alive by its own
   * D-Bus exports until shutdown, which only g_application_run() does:
   * drop the reference without waiting for finalization. */
  g_clear_object (&f->app);

  g_clear_pointer (&f->relay, st_relay_free);
}

/* ---- helpers ----------------------------------------------------------- */

static FlWindow *
the_window (Fixture *f)
{
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (f->app));

  g_assert_cmpuint (g_list_length (windows), ==, 1);
  g_assert_true (FL_IS_WINDOW (windows->data));
  return windows->data;
}

static const char *
visible_page (FlWindow *window)
{
  GtkStack *stack = GTK_STACK (gtk_widget_get_template_child (GTK_WIDGET (window), FL_TYPE_WINDOW, "main_stack"));

  return gtk_stack_get_visible_child_name (stack);
}

static GtkWidget *
page_child (FlWindow   *window,
            const char *name)
{
  FlSignInPage *page = fl_window_get_sign_in_page (window);

  return GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (page), FL_TYPE_SIGN_IN_PAGE, name));
}

/* Runs the command-line handler as GApplication would for
 * `fieldline ARGS` with options (an a{sv}, floating) and env. */
static int
run_command_line (Fixture     *f,
                  GVariant    *options,
                  const char  *const *env)
{
  const char *argv[] = { "fieldline", NULL };
  g_autoptr (GApplicationCommandLine) cmdline = NULL;
  GVariantBuilder platform;

  g_variant_builder_init (&platform, G_VARIANT_TYPE_VARDICT);
  if (env != NULL)
    g_variant_builder_add (&platform, "{sv}", "environ", g_variant_new_bytestring_array (env, -1));

  cmdline = g_object_new (G_TYPE_APPLICATION_COMMAND_LINE,
                          "arguments", g_variant_new_bytestring_array (argv, -1),
                          "options", options,
                          "platform-data", g_variant_builder_end (&platform),
                          NULL);
  _fl_application_command_line (f->app, cmdline);
  return g_application_command_line_get_exit_status (cmdline);
}

static GVariant *
connect_options (const char *url)
{
  GVariantDict dict;

  g_variant_dict_init (&dict, NULL);
  g_variant_dict_insert (&dict, "connect", "s", url);
  return g_variant_dict_end (&dict);
}

static gboolean
focus_within (GtkWindow *window,
              GtkWidget *widget)
{
  GtkWidget *focus = gtk_window_get_focus (window);

  return focus != NULL && (focus == widget || gtk_widget_is_ancestor (focus, widget));
}

static void
done_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* Signs in as ada with Cognito and keeps the tokens in the keyring for
 * profile, as an earlier run of the console would have. */
static void
keep_tokens (Fixture   *f,
             FlProfile *profile)
{
  g_autoptr (GError)          error = NULL;
  g_autoptr (GAsyncResult)    result = NULL;
  g_autoptr (GAsyncResult)    stored = NULL;
  g_autoptr (FlCognitoClient) cognito = NULL;
  g_autoptr (FlCognitoTokens) tokens = NULL;
  g_autoptr (FlCognitoChallenge) challenge = NULL;
  g_autoptr (FlTokenSet)      set = NULL;
  g_autofree char            *endpoint = NULL;

  g_object_set (profile,
                "user-pool-id", fl_relay_get_pool_id (f->relay->relay),
                "client-id", fl_relay_get_client_id (f->relay->relay),
                NULL);
  endpoint = fl_profile_dup_cognito_endpoint (profile);
  cognito = fl_cognito_client_new (endpoint, fl_profile_get_user_pool_id (profile), fl_profile_get_client_id (profile), NULL);
  fl_cognito_client_sign_in_async (cognito, "ada", ST_PASSWORD, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  tokens = fl_cognito_client_sign_in_finish (cognito, result, &challenge, &error);
  g_assert_no_error (error);
  g_assert_null (challenge);
  g_assert_nonnull (tokens);

  set = fl_token_set_new (tokens->id_token, tokens->access_token, tokens->refresh_token, tokens->expires_at, tokens->username);
  fl_token_store_store_async (fl_profile_get_id (profile), "test", set, NULL, done_cb, &stored);
  ST_WAIT_UNTIL (stored != NULL);
  g_assert_true (fl_token_store_store_finish (stored, &error));
  g_assert_no_error (error);
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

static gboolean
keyring_empty (const char *profile_id)
{
  g_autoptr (FlTokenSet) tokens = keyring_lookup (profile_id);

  return tokens == NULL;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_connect (Fixture      *f,
              gconstpointer data)
{
  g_autofree char *url = st_closed_port_url ();
  g_autofree char *url_slash = g_strconcat (url, "/", NULL);
  g_autofree char *expected = g_strdup_printf ("Sign in to the lab relay at %s", url);
  g_autofree char *saved = NULL;
  g_autofree char *last = NULL;
  FlProfileStore  *store = fl_application_get_profile_store (f->app);
  g_autoptr (FlProfile) profile = NULL;
  FlWindow        *window;

  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 0);

  /* fieldline --connect URL/ */
  g_assert_cmpint (run_command_line (f, connect_options (url_slash), NULL), ==, EXIT_SUCCESS);

  /* the lab profile, created and remembered */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 1);
  profile = g_list_model_get_item (G_LIST_MODEL (store), 0);
  g_assert_cmpint (fl_profile_get_kind (profile), ==, FL_PROFILE_LAB);
  g_assert_cmpstr (fl_profile_get_url (profile), ==, url);
  last = g_settings_get_string (fl_application_get_settings (f->app), "last-profile");
  g_assert_cmpstr (last, ==, fl_profile_get_id (profile));
  ST_WAIT_UNTIL (g_file_get_contents (fl_profile_store_get_path (store), &saved, NULL, NULL)
                 && strstr (saved, url) != NULL);

  /* a window on it: no tokens, so the sign-in page, saying where,
   * with the username field focused */
  window = the_window (f);
  ST_WAIT_UNTIL (g_strcmp0 (visible_page (window), "sign-in") == 0);
  g_assert_true (fl_sign_in_page_get_profile (fl_window_get_sign_in_page (window)) == profile);
  g_assert_cmpstr (fl_sign_in_page_get_form (fl_window_get_sign_in_page (window)), ==, "sign-in");
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (page_child (window, "description"))), ==, expected);
  g_assert_true (focus_within (GTK_WINDOW (window), page_child (window, "username_row")));
  g_assert_null (fl_window_get_session (window));

  /* a second invocation, spelt differently, reuses profile and window */
  g_assert_cmpint (run_command_line (f, connect_options (url + strlen ("http://")), NULL), ==, EXIT_SUCCESS);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 1);
  g_assert_true (the_window (f) == window);

  /* not a relay address: an error, nothing added */
  g_assert_cmpint (run_command_line (f, connect_options ("gopher://x"), NULL), ==, EXIT_FAILURE);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 1);
}

static void
test_connect_with_lab_user (Fixture      *f,
                            gconstpointer data)
{
  g_autofree char  *url = st_closed_port_url ();
  const char *const env[] = { "FIELDLINE_USER=operator", NULL };
  FlWindow         *window;

  g_assert_cmpint (run_command_line (f, connect_options (url), env), ==, EXIT_SUCCESS);
  window = the_window (f);
  ST_WAIT_UNTIL (g_strcmp0 (visible_page (window), "sign-in") == 0);

  /* the lab's user filled in: the password is what is left to type */
  g_assert_cmpstr (gtk_editable_get_text (GTK_EDITABLE (page_child (window, "username_row"))), ==, "operator");
  g_assert_true (focus_within (GTK_WINDOW (window), page_child (window, "password_row")));
}

static void
test_window_ui (Fixture      *f,
                gconstpointer data)
{
  g_auto (GStrv) accels = NULL;
  FlWindow      *window;

  /* a plain start without profiles: the page asks for a connection */
  g_application_activate (G_APPLICATION (f->app));
  window = the_window (f);
  ST_WAIT_UNTIL (g_strcmp0 (visible_page (window), "sign-in") == 0);
  g_assert_cmpstr (fl_sign_in_page_get_form (fl_window_get_sign_in_page (window)), ==, "add-profile");

  /* the shortcuts window came from the resources */
  g_assert_nonnull (gtk_application_window_get_help_overlay (GTK_APPLICATION_WINDOW (window)));

  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (f->app), "win.refresh");
  g_assert_true (g_strv_contains ((const char *const *) accels, "<Control>r"));
  g_clear_pointer (&accels, g_strfreev);
  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (f->app), "win.search");
  g_assert_true (g_strv_contains ((const char *const *) accels, "<Control>f"));
  g_clear_pointer (&accels, g_strfreev);
  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (f->app), "app.quit");
  g_assert_true (g_strv_contains ((const char *const *) accels, "<Control>q"));
  g_clear_pointer (&accels, g_strfreev);
  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (f->app), "win.show-help-overlay");
  g_assert_true (g_strv_contains ((const char *const *) accels, "<Control>question"));

  /* the about window */
  g_action_group_activate_action (G_ACTION_GROUP (f->app), "about", NULL);
  {
    GListModel            *toplevels = gtk_window_get_toplevels (); /* transfer none */
    g_autoptr (GtkWindow)  about = NULL;

    for (guint i = 0; i < g_list_model_get_n_items (toplevels) && about == NULL; i++)
      {
        g_autoptr (GObject) toplevel = g_list_model_get_item (toplevels, i);

        if (ADW_IS_ABOUT_WINDOW (toplevel))
          about = GTK_WINDOW (g_object_ref (toplevel));
      }

    g_assert_nonnull (about);
    g_assert_cmpstr (adw_about_window_get_application_name (ADW_ABOUT_WINDOW (about)), ==, "Fieldline");
    g_assert_true (gtk_window_get_transient_for (about) == GTK_WINDOW (window));
    gtk_window_destroy (about);
  }

  /* closing keeps the window's size for the next start */
  {
    GSettings *settings = fl_application_get_settings (f->app);
    int        width = 0, height = 0;

    gtk_window_set_default_size (GTK_WINDOW (window), 640, 480);
    gtk_window_close (GTK_WINDOW (window));
    g_settings_get (settings, "window-size", "(ii)", &width, &height);
    g_assert_cmpint (width, ==, 640);
    g_assert_cmpint (height, ==, 480);
    g_assert_false (g_settings_get_boolean (settings, "window-maximized"));

    /* and a new window starts with it */
    g_application_activate (G_APPLICATION (f->app));
    window = the_window (f);
    gtk_window_get_default_size (GTK_WINDOW (window), &width, &height);
    g_assert_cmpint (width, ==, 640);
    g_assert_cmpint (height, ==, 480);
  }
}

static void
test_restore_session (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr (FlProfile) profile = fl_profile_new_lab (f->relay->url);
  g_autoptr (GError)    error = NULL;
  FlWindow             *window;
  FlSession            *session;
  TestFleetView        *view;

  keep_tokens (f, profile);
  fl_profile_store_add (fl_application_get_profile_store (f->app), profile);
  g_settings_set_string (fl_application_get_settings (f->app), "last-profile", fl_profile_get_id (profile));

  /* start: the session comes from the keyring, no sign-in page */
  g_application_activate (G_APPLICATION (f->app));
  window = the_window (f);
  ST_WAIT_UNTIL (fl_window_get_session (window) != NULL);
  g_assert_cmpstr (visible_page (window), ==, "fleet");
  session = fl_window_get_session (window);
  g_assert_true (fl_session_get_profile (session) == profile);
  g_assert_cmpstr (fl_session_get_username (session), ==, "ada");
  /* offline until a request gets through */
  g_assert_false (fl_session_get_online (session));

  view = TEST_FLEET_VIEW (fl_window_get_fleet_view (window));
  g_assert_true (view->session == session);

  /* the window's refresh and search go to the fleet view */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.refresh", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.search", NULL));
  g_assert_cmpuint (view->n_refresh, ==, 1);
  g_assert_cmpuint (view->n_search, ==, 1);

  /* the server refuses the refresh: back to sign-in, saying why */
  fl_user_pool_set_user_enabled (fl_relay_get_user_pool (f->relay->relay), "ada", FALSE, &error);
  g_assert_no_error (error);
  fl_session_refresh_async (session, NULL, NULL, NULL);
  ST_WAIT_UNTIL (fl_window_get_session (window) == NULL);
  g_assert_cmpstr (visible_page (window), ==, "sign-in");
  g_assert_null (fl_window_get_fleet_view (window));
  g_assert_cmpstr (gtk_label_get_text (GTK_LABEL (page_child (window, "notice_label"))), ==,
                   "Your session has expired; sign in again.");
  g_assert_true (gtk_revealer_get_reveal_child (GTK_REVEALER (page_child (window, "notice_revealer"))));
  g_assert_true (fl_sign_in_page_get_profile (fl_window_get_sign_in_page (window)) == profile);
  ST_WAIT_UNTIL (keyring_empty (fl_profile_get_id (profile)));
}

static void
test_sign_out (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (FlProfile) profile = fl_profile_new_lab (f->relay->url);
  FlWindow             *window;

  keep_tokens (f, profile);
  fl_profile_store_add (fl_application_get_profile_store (f->app), profile);

  /* --connect to a relay whose tokens are kept: signed in at once */
  g_assert_cmpint (run_command_line (f, connect_options (f->relay->url), NULL), ==, EXIT_SUCCESS);
  window = the_window (f);
  ST_WAIT_UNTIL (fl_window_get_session (window) != NULL);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.sign-out", NULL));
  ST_WAIT_UNTIL (fl_window_get_session (window) == NULL);
  g_assert_cmpstr (visible_page (window), ==, "sign-in");
  /* no notice after a sign-out of one's own */
  g_assert_false (gtk_revealer_get_reveal_child (GTK_REVEALER (page_child (window, "notice_revealer"))));
  ST_WAIT_UNTIL (keyring_empty (fl_profile_get_id (profile)));
}

int
main (int   argc,
      char *argv[])
{
  static const Options with_relay = { .relay = TRUE };
  g_autofree char     *home = st_isolate_dirs ();
  g_autofree char     *secret_path = g_build_filename (home, "keyring.file", NULL);
  int                  status;

  g_test_init (&argc, &argv, NULL);

  g_setenv ("SECRET_BACKEND", "file", TRUE);
  g_setenv ("SECRET_FILE_TEST_PATH", secret_path, TRUE);
  g_setenv ("SECRET_FILE_TEST_PASSWORD", "test-password", TRUE);

#define ADD(path, func, data) \
  g_test_add ("/fieldline/console/" path, Fixture, data, fixture_set_up, func, fixture_tear_down)

  ADD ("application/connect", test_connect, NULL);
  ADD ("application/connect-with-lab-user", test_connect_with_lab_user, NULL);
  ADD ("ui-files/window", test_window_ui, NULL);
  ADD ("application/restore-session", test_restore_session, &with_relay);
  ADD ("application/sign-out", test_sign_out, &with_relay);

  status = g_test_run ();

  secret_service_disconnect ();
  st_remove_tree (home);

  return status;
}
