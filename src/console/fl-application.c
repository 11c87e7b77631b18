/* fl-application.c: the fieldline console application. */
#define G_LOG_DOMAIN "fl-application"

#include "config.h"

#include <glib/gi18n.h>

#include "fl-console-private.h"
#include "fl-window.h"

#define SCHEMA_ID "io.github.fieldline.Fieldline"
#define RESOURCE_BASE_PATH "/io/github/fieldline/Fieldline"

struct _FlApplication
{
  AdwApplication  parent_instance;

  FlProfileStore *store;
  GSettings      *settings;
  gboolean        ready;
  GQueue          pending; /* GApplicationCommandLine, until ready */
};

G_DEFINE_FINAL_TYPE (FlApplication, fl_application, ADW_TYPE_APPLICATION)

enum {
  PROP_0,
  PROP_READY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const GOptionEntry option_entries[] = {
  { "connect", 'c', 0, G_OPTION_ARG_STRING, NULL,
    N_("Open the console on the lab relay at URL (a connection is added if new)"), N_("URL") },
  { "version", 0, 0, G_OPTION_ARG_NONE, NULL, N_("Show the version and exit"), NULL },
  { NULL }
};

/* ---- windows ----------------------------------------------------------- */

static FlWindow *
get_window (FlApplication *self,
            gboolean      *created)
{
  GList *windows = gtk_application_get_windows (GTK_APPLICATION (self));

  for (GList *l = windows; l != NULL; l = l->next)
    {
      if (FL_IS_WINDOW (l->data))
        {
          *created = FALSE;
          return l->data;
        }
    }

  *created = TRUE;
  return fl_window_new (self);
}

static FlProfile *
last_profile (FlApplication *self)
{
  g_autofree char *id = NULL;

  if (self->settings != NULL)
    id = g_settings_get_string (self->settings, "last-profile");
  if (id != NULL && *id != '\0')
    {
      FlProfile *profile = fl_profile_store_lookup (self->store, id);

      if (profile != NULL)
        return profile;
    }

  if (g_list_model_get_n_items (G_LIST_MODEL (self->store)) > 0)
    {
      g_autoptr (FlProfile) first = g_list_model_get_item (G_LIST_MODEL (self->store), 0);
      return first; /* the store holds the reference */
    }

  return NULL;
}

static void
present_window (FlApplication *self)
{
  gboolean  created;
  FlWindow *window = get_window (self, &created);

  if (created)
    fl_window_open_profile (window, last_profile (self));
  gtk_window_present (GTK_WINDOW (window));
}

/* ---- --connect --------------------------------------------------------- */

static void
save_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!fl_profile_store_save_finish (FL_PROFILE_STORE (object), result, &error))
    g_warning ("Could not save the connections: %s", error->message);
}

static FlProfile *
connect_full (FlApplication  *self,
              const char     *url,
              const char     *username,
              GError        **error)
{
  g_autoptr (FlProfile) created_profile = NULL;
  FlProfile            *profile;
  FlWindow             *window;
  gboolean              created;

  profile = fl_profile_store_find_lab (self->store, url);
  if (profile == NULL)
    {
      created_profile = fl_profile_new_lab (url);
      if (created_profile == NULL)
        {
          /* Translators: %s is what the user passed to --connect */
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("“%s” is not a relay address; use one like http://127.0.0.1:8080"), url);
          return NULL;
        }
      fl_profile_store_add (self->store, created_profile);
      fl_profile_store_save_async (self->store, NULL, save_cb, NULL);
      profile = created_profile;
    }

  if (self->settings != NULL)
    g_settings_set_string (self->settings, "last-profile", fl_profile_get_id (profile));

  window = get_window (self, &created);
  fl_window_open_profile (window, profile);
  /* the lab command says who its user is */
  fl_sign_in_page_suggest_username (fl_window_get_sign_in_page (window), username);
  gtk_window_present (GTK_WINDOW (window));

  return profile;
}

FlProfile *
fl_application_connect (FlApplication  *self,
                        const char     *url,
                        GError        **error)
{
  g_return_val_if_fail (FL_IS_APPLICATION (self), NULL);
  g_return_val_if_fail (url != NULL, NULL);
  g_return_val_if_fail (self->ready, NULL);

  return connect_full (self, url, NULL, error);
}

/* ---- command line ------------------------------------------------------ */

int
_fl_application_command_line (FlApplication           *self,
                              GApplicationCommandLine *cmdline)
{
  GVariantDict      *options = g_application_command_line_get_options_dict (cmdline);
  g_autofree char   *url = NULL;
  g_autoptr (GError) error = NULL;

  if (!self->ready)
    {
      /* answered once the profiles are loaded; the remote waits */
      g_queue_push_tail (&self->pending, g_object_ref (cmdline));
      return EXIT_SUCCESS;
    }

  if (g_variant_dict_lookup (options, "connect", "s", &url))
    {
      /* FIELDLINE_USER: the lab's user, from the invoking environment */
      const char *username = g_application_command_line_getenv (cmdline, "FIELDLINE_USER");

      if (connect_full (self, url, username, &error) == NULL)
        {
          g_application_command_line_printerr (cmdline, "fieldline: %s\n", error->message);
          g_application_command_line_set_exit_status (cmdline, EXIT_FAILURE);
          return EXIT_FAILURE;
        }
      return EXIT_SUCCESS;
    }

  present_window (self);
  return EXIT_SUCCESS;
}

static int
fl_application_command_line (GApplication            *app,
                             GApplicationCommandLine *cmdline)
{
  return _fl_application_command_line (FL_APPLICATION (app), cmdline);
}

static int
fl_application_handle_local_options (GApplication *app,
                                     GVariantDict *options)
{
  if (g_variant_dict_contains (options, "version"))
    {
      g_print ("fieldline %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }

  return -1;
}

static void
fl_application_activate (GApplication *app)
{
  FlApplication *self = FL_APPLICATION (app);

  if (!self->ready)
    return; /* a window opens when the profiles are loaded */

  present_window (self);
}

/* ---- start-up ---------------------------------------------------------- */

static void
load_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr (FlApplication) self = user_data;
  g_autoptr (GError)        error = NULL;
  GApplicationCommandLine  *cmdline;

  if (!fl_profile_store_load_finish (FL_PROFILE_STORE (object), result, &error))
    g_warning ("Could not read the connections: %s", error->message);

  self->ready = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_READY]);

  while ((cmdline = g_queue_pop_head (&self->pending)) != NULL)
    {
      _fl_application_command_line (self, cmdline);
      g_object_unref (cmdline);
    }

  g_application_release (G_APPLICATION (self));
}

static void
quit_action (GSimpleAction *action,
             GVariant      *parameter,
             gpointer       user_data)
{
  FlApplication *self = user_data;
  GList         *windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (self)));

  /* closing saves each window's size */
  for (GList *l = windows; l != NULL; l = l->next)
    gtk_window_close (l->data);
  g_list_free (windows);

  g_application_quit (G_APPLICATION (self));
}

static void
about_action (GSimpleAction *action,
              GVariant      *parameter,
              gpointer       user_data)
{
  FlApplication *self = user_data;
  GtkWindow     *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkWidget     *about;
  const char    *developers[] = { "The Fieldline developers", NULL };

  about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                        "transient-for", parent,
                        "modal", TRUE,
                        "application-name", _("Fieldline"),
                        "application-icon", "io.github.fieldline.Fieldline",
                        "developer-name", _("The Fieldline developers"),
                        "version", PACKAGE_VERSION,
                        "website", "https://github.com/fieldline/fieldline",
                        "issue-url", "https://github.com/fieldline/fieldline/issues",
                        "license-type", GTK_LICENSE_GPL_3_0,
                        "copyright", "© 2024 The Fieldline developers",
                        "comments", _("Watch and manage a fleet of IoT devices, live or offline."),
                        "developers", developers,
                        /* Translators: your names, one a line */
                        "translator-credits", _("translator-credits"),
                        NULL);
  gtk_window_present (GTK_WINDOW (about));
}

static const GActionEntry app_actions[] = {
  { "quit", quit_action },
  { "about", about_action },
};

static void
fl_application_startup (GApplication *app)
{
  FlApplication      *self = FL_APPLICATION (app);
  GSettingsSchemaSource *source;
  g_autoptr (GSettingsSchema) schema = NULL;
  static const struct {
    const char *action;
    const char *accels[3];
  } accels[] = {
    { "app.quit", { "<Control>q", NULL } },
    { "win.show-help-overlay", { "<Control>question", NULL } },
    { "win.refresh", { "<Control>r", "F5", NULL } },
    { "win.search", { "<Control>f", NULL } },
    { "window.close", { "<Control>w", NULL } },
  };

  G_APPLICATION_CLASS (fl_application_parent_class)->startup (app);

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions, G_N_ELEMENTS (app_actions), self);
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (self), accels[i].action, accels[i].accels);

  /* Without the schema installed (a build tree), the console runs
   * without remembering window sizes and the last connection. */
  source = g_settings_schema_source_get_default ();
  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, SCHEMA_ID, TRUE);
  if (schema != NULL)
    self->settings = g_settings_new (SCHEMA_ID);
  else
    g_debug ("Schema %s is not installed: settings are not kept", SCHEMA_ID);

  /* the window waits for the profiles */
  g_application_hold (app);
  fl_profile_store_load_async (self->store, NULL, load_cb, g_object_ref (self));
}

/* ---- GObject ----------------------------------------------------------- */

static void
fl_application_finalize (GObject *object)
{
  FlApplication *self = FL_APPLICATION (object);

  g_queue_clear_full (&self->pending, g_object_unref);
  g_clear_object (&self->store);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (fl_application_parent_class)->finalize (object);
}

static void
fl_application_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  FlApplication *self = FL_APPLICATION (object);

  switch (prop_id)
    {
    case PROP_READY:
      g_value_set_boolean (value, self->ready);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_application_class_init (FlApplicationClass *klass)
{
  GObjectClass      *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = fl_application_finalize;
  object_class->get_property = fl_application_get_property;

  app_class->startup = fl_application_startup;
  app_class->activate = fl_application_activate;
  app_class->command_line = fl_application_command_line;
  app_class->handle_local_options = fl_application_handle_local_options;

  properties[PROP_READY] = g_param_spec_boolean ("ready", NULL, NULL, FALSE,
                                                 G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
fl_application_init (FlApplication *self)
{
  self->store = fl_profile_store_new (NULL);
  g_queue_init (&self->pending);

  g_application_add_main_option_entries (G_APPLICATION (self), option_entries);
  g_application_set_option_context_parameter_string (G_APPLICATION (self), NULL);
  g_application_set_option_context_summary (G_APPLICATION (self),
                                            _("The Fieldline console: watch and manage a fleet of IoT devices."));
}

/**
 * fl_application_new:
 *
 * Returns: (transfer full): the application
 */
FlApplication *
fl_application_new (void)
{
  return g_object_new (FL_TYPE_APPLICATION,
                       "application-id", APPLICATION_ID,
                       "flags", G_APPLICATION_HANDLES_COMMAND_LINE,
                       /* the same for the .Devel id */
                       "resource-base-path", RESOURCE_BASE_PATH,
                       NULL);
}

FlProfileStore *
fl_application_get_profile_store (FlApplication *self)
{
  g_return_val_if_fail (FL_IS_APPLICATION (self), NULL);
  return self->store;
}

GSettings *
fl_application_get_settings (FlApplication *self)
{
  g_return_val_if_fail (FL_IS_APPLICATION (self), NULL);
  return self->settings;
}

gboolean
fl_application_get_ready (FlApplication *self)
{
  g_return_val_if_fail (FL_IS_APPLICATION (self), FALSE);
  return self->ready;
}
