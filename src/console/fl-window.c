/* fl-window.c: the console's main window. */
#define G_LOG_DOMAIN "fl-window"

#include "config.h"

#include <glib/gi18n.h>

#include "fl-fleet-view.h"
#include "fl-window.h"

struct _FlWindow
{
  AdwApplicationWindow parent_instance;

  FlSession           *session;
  GtkWidget           *fleet_view;
  GCancellable        *cancellable; /* the keyring lookup of open_profile */

  /* template */
  GtkStack            *main_stack;
  FlSignInPage        *sign_in_page;
  AdwBin              *fleet_bin;
};

G_DEFINE_FINAL_TYPE (FlWindow, fl_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_SESSION,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
update_actions (FlWindow *self)
{
  gboolean signed_in = self->session != NULL;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.sign-out", signed_in);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.refresh", signed_in);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.search", signed_in);
}

static GSettings *
get_settings (FlWindow *self)
{
  GtkApplication *app = gtk_window_get_application (GTK_WINDOW (self));

  return FL_IS_APPLICATION (app) ? fl_application_get_settings (FL_APPLICATION (app)) : NULL;
}

static void
remember_profile (FlWindow  *self,
                  FlProfile *profile)
{
  GSettings *settings = get_settings (self);

  if (settings != NULL && profile != NULL)
    g_settings_set_string (settings, "last-profile", fl_profile_get_id (profile));
}

/* ---- session ----------------------------------------------------------- */

static void
clear_session (FlWindow *self)
{
  if (self->session != NULL)
    g_signal_handlers_disconnect_by_data (self->session, self);
  adw_bin_set_child (self->fleet_bin, NULL);
  self->fleet_view = NULL;
  if (self->session != NULL)
    {
      g_clear_object (&self->session);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SESSION]);
    }
  update_actions (self);
}

static void
session_signed_out_cb (FlSession *session,
                       FlWindow  *self)
{
  g_autoptr (FlProfile) profile = g_object_ref (fl_session_get_profile (session));

  if (fl_session_get_expired (session))
    fl_window_show_sign_in (self, profile, _("Your session has expired; sign in again."));
  else
    fl_window_show_sign_in (self, profile, NULL);
}

void
fl_window_set_session (FlWindow  *self,
                       FlSession *session)
{
  g_return_if_fail (FL_IS_WINDOW (self));
  g_return_if_fail (FL_IS_SESSION (session));

  if (self->session == session)
    return;

  g_cancellable_cancel (self->cancellable);
  clear_session (self);

  self->session = g_object_ref (session);
  g_signal_connect_object (session, "signed-out", G_CALLBACK (session_signed_out_cb), self, 0);

  self->fleet_view = fl_fleet_view_new (session);
  adw_bin_set_child (self->fleet_bin, self->fleet_view);
  gtk_stack_set_visible_child_name (self->main_stack, "fleet");

  remember_profile (self, fl_session_get_profile (session));
  update_actions (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SESSION]);
}

FlSession *
fl_window_get_session (FlWindow *self)
{
  g_return_val_if_fail (FL_IS_WINDOW (self), NULL);
  return self->session;
}

GtkWidget *
fl_window_get_fleet_view (FlWindow *self)
{
  g_return_val_if_fail (FL_IS_WINDOW (self), NULL);
  return self->fleet_view;
}

FlSignInPage *
fl_window_get_sign_in_page (FlWindow *self)
{
  g_return_val_if_fail (FL_IS_WINDOW (self), NULL);
  return self->sign_in_page;
}

void
fl_window_show_sign_in (FlWindow   *self,
                        FlProfile  *profile,
                        const char *message)
{
  g_return_if_fail (FL_IS_WINDOW (self));

  clear_session (self);

  if (profile != NULL)
    fl_sign_in_page_set_profile (self->sign_in_page, profile);
  fl_sign_in_page_set_notice (self->sign_in_page, message);
  gtk_stack_set_visible_child_name (self->main_stack, "sign-in");
  fl_sign_in_page_focus_form (self->sign_in_page);
}

static void
signed_in_cb (FlWindow  *self,
              FlSession *session)
{
  fl_window_set_session (self, session);
}

/* ---- restoring a session from the keyring ----------------------------- */

typedef struct
{
  FlWindow  *self;
  FlProfile *profile;
} OpenData;

static void
open_data_free (OpenData *data)
{
  g_clear_object (&data->self);
  g_clear_object (&data->profile);
  g_free (data);
}

static void
lookup_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  OpenData              *data = user_data;
  FlWindow              *self = data->self;
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlTokenSet) tokens = NULL;
  g_autoptr (FlSession)  session = NULL;

  tokens = fl_token_store_lookup_finish (result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      open_data_free (data);
      return;
    }

  if (tokens == NULL || !fl_profile_is_complete (data->profile))
    {
      if (error != NULL)
        g_debug ("No tokens from the keyring: %s", error->message);
      fl_window_show_sign_in (self, data->profile, NULL);
      open_data_free (data);
      return;
    }

  /* at once, offline until a request gets through */
  session = fl_session_new (data->profile, tokens, FALSE);
  fl_window_set_session (self, session);
  open_data_free (data);
}

void
fl_window_open_profile (FlWindow  *self,
                        FlProfile *profile)
{
  OpenData *data;

  g_return_if_fail (FL_IS_WINDOW (self));
  g_return_if_fail (profile == NULL || FL_IS_PROFILE (profile));

  if (self->session != NULL && profile != NULL
      && g_strcmp0 (fl_profile_get_id (fl_session_get_profile (self->session)), fl_profile_get_id (profile)) == 0)
    return; /* already signed in there */

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);

  if (profile == NULL)
    {
      fl_window_show_sign_in (self, NULL, NULL);
      return;
    }

  fl_sign_in_page_set_profile (self->sign_in_page, profile);
  if (self->session == NULL)
    gtk_stack_set_visible_child_name (self->main_stack, "loading");

  self->cancellable = g_cancellable_new ();
  data = g_new0 (OpenData, 1);
  data->self = g_object_ref (self);
  data->profile = g_object_ref (profile);
  fl_token_store_lookup_async (fl_profile_get_id (profile), self->cancellable, lookup_cb, data);
}

/* ---- actions ----------------------------------------------------------- */

static void
sign_out_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr (FlWindow) self = user_data;
  g_autoptr (GError)   error = NULL;

  /* the session's "signed-out" already showed the sign-in page */
  if (!fl_session_sign_out_finish (FL_SESSION (object), result, &error))
    g_warning ("Could not remove the tokens from the keyring: %s", error->message);
}

static void
sign_out_action (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  FlWindow *self = FL_WINDOW (widget);

  if (self->session == NULL)
    return;

  gtk_widget_action_set_enabled (widget, "win.sign-out", FALSE);
  fl_session_sign_out_async (self->session, NULL, sign_out_cb, g_object_ref (self));
}

static void
refresh_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  FlWindow *self = FL_WINDOW (widget);

  if (self->fleet_view != NULL)
    gtk_widget_activate_action (self->fleet_view, "fleet.refresh", NULL);
}

static void
search_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  FlWindow *self = FL_WINDOW (widget);

  if (self->fleet_view != NULL)
    gtk_widget_activate_action (self->fleet_view, "fleet.search", NULL);
}

/* ---- window state ----------------------------------------------------- */

static gboolean
fl_window_close_request (GtkWindow *window)
{
  FlWindow  *self = FL_WINDOW (window);
  GSettings *settings = get_settings (self);

  if (settings != NULL)
    {
      int width, height;

      gtk_window_get_default_size (window, &width, &height);
      g_settings_delay (settings);
      g_settings_set_boolean (settings, "window-maximized", gtk_window_is_maximized (window));
      if (!gtk_window_is_maximized (window) && width > 0 && height > 0)
        {
          g_settings_set (settings, "window-size", "(ii)", width, height);
        }
      g_settings_apply (settings);
    }

  return GTK_WINDOW_CLASS (fl_window_parent_class)->close_request (window);
}

static void
restore_state (FlWindow *self)
{
  GSettings *settings = get_settings (self);
  int        width, height;

  if (settings == NULL)
    return;

  g_settings_get (settings, "window-size", "(ii)", &width, &height);
  gtk_window_set_default_size (GTK_WINDOW (self), width, height);
  if (g_settings_get_boolean (settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));
}

/* ---- GObject ----------------------------------------------------------- */

/* "application" is not a construct property: it is set after
 * constructed(), so the window picks up the store and settings here. */
static void
application_changed_cb (FlWindow *self)
{
  GtkApplication *app = gtk_window_get_application (GTK_WINDOW (self));

  if (!FL_IS_APPLICATION (app))
    return;

  if (fl_sign_in_page_get_store (self->sign_in_page) == NULL)
    fl_sign_in_page_set_store (self->sign_in_page, fl_application_get_profile_store (FL_APPLICATION (app)));
  restore_state (self);
}

static void
fl_window_constructed (GObject *object)
{
  FlWindow *self = FL_WINDOW (object);

  G_OBJECT_CLASS (fl_window_parent_class)->constructed (object);

  g_signal_connect (self, "notify::application", G_CALLBACK (application_changed_cb), NULL);
  application_changed_cb (self);

#if DEVELOPMENT_BUILD
  gtk_widget_add_css_class (GTK_WIDGET (self), "devel");
#endif
}

static void
fl_window_dispose (GObject *object)
{
  FlWindow *self = FL_WINDOW (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  if (self->session != NULL)
    g_signal_handlers_disconnect_by_data (self->session, self);
  g_clear_object (&self->session);
  self->fleet_view = NULL;

  gtk_widget_dispose_template (GTK_WIDGET (self), FL_TYPE_WINDOW);

  G_OBJECT_CLASS (fl_window_parent_class)->dispose (object);
}

static void
fl_window_get_property (GObject    *object,
                        guint       prop_id,
                        GValue     *value,
                        GParamSpec *pspec)
{
  FlWindow *self = FL_WINDOW (object);

  switch (prop_id)
    {
    case PROP_SESSION:
      g_value_set_object (value, self->session);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_window_class_init (FlWindowClass *klass)
{
  GObjectClass   *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->constructed = fl_window_constructed;
  object_class->dispose = fl_window_dispose;
  object_class->get_property = fl_window_get_property;
  window_class->close_request = fl_window_close_request;

  properties[PROP_SESSION] = g_param_spec_object ("session", NULL, NULL, FL_TYPE_SESSION,
                                                  G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (FL_TYPE_SIGN_IN_PAGE);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/fieldline/Fieldline/fl-window.ui");
  gtk_widget_class_bind_template_child (widget_class, FlWindow, main_stack);
  gtk_widget_class_bind_template_child (widget_class, FlWindow, sign_in_page);
  gtk_widget_class_bind_template_child (widget_class, FlWindow, fleet_bin);
  gtk_widget_class_bind_template_callback (widget_class, signed_in_cb);

  gtk_widget_class_install_action (widget_class, "win.sign-out", NULL, sign_out_action);
  gtk_widget_class_install_action (widget_class, "win.refresh", NULL, refresh_action);
  gtk_widget_class_install_action (widget_class, "win.search", NULL, search_action);
}

static void
fl_window_init (FlWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  update_actions (self);
}

FlWindow *
fl_window_new (FlApplication *application)
{
  return g_object_new (FL_TYPE_WINDOW, "application", application, NULL);
}
