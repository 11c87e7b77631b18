/* fl-fleet-view.c: the fleet view: devices list, device page, offline
 * notice. */
#define G_LOG_DOMAIN "fl-fleet-view"

#include "config.h"

#include <adwaita.h>
#include <glib/gi18n.h>

#include "fl-fleet-view.h"

struct _FlFleetView
{
  GtkWidget       parent_instance;

  FlFleet        *fleet;
  FlDevicesPage  *devices_page;
  FlDevicePage   *device_page;
  char           *offline_text;

  AdwLeaflet     *leaflet;
  GtkBox         *devices_box;
  AdwWindowTitle *window_title;
  GtkSpinner     *sync_spinner;
  GtkRevealer    *offline_revealer;
  GtkLabel       *offline_label;
};

G_DEFINE_FINAL_TYPE (FlFleetView, fl_fleet_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_FLEET,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* libadwaita 1.2 has no AdwBanner: a revealer with the warning colors. */
static const char banner_css[] =
  ".fl-offline-banner { background-color: @warning_bg_color; color: @warning_fg_color;"
  " padding: 6px 12px; }";

/* ---- state ------------------------------------------------------------------ */

static void
update_status (FlFleetView *self)
{
  gboolean online = fl_fleet_get_online (self->fleet);
  gboolean syncing = fl_fleet_get_syncing (self->fleet);
  gboolean loaded = fl_fleet_get_loaded (self->fleet);
  gint64 last_sync = fl_fleet_get_last_sync (self->fleet);
  g_autofree char *when = last_sync > 0 ? fl_fleet_format_time (last_sync) : NULL;
  g_autofree char *subtitle = NULL;
  /* A session starts offline until its first answer: say "offline" once
   * the cache is shown and an attempt failed (and through the retries
   * that follow), or when no attempt is under way. */
  gboolean show_offline = !online && loaded && (!syncing || fl_fleet_get_sync_failed (self->fleet));

  g_clear_pointer (&self->offline_text, g_free);
  if (show_offline)
    {
      if (last_sync > 0)
        /* Translators: %s is the time of the last sync, "14:02" or "3 Mar, 14:02" */
        self->offline_text = g_strdup_printf (_("Offline — showing data from %s"), when);
      else if (g_list_model_get_n_items (G_LIST_MODEL (self->fleet)) > 0)
        self->offline_text = g_strdup (_("Offline — showing cached data"));
      else
        self->offline_text = g_strdup (_("Offline — the server cannot be reached"));
      gtk_label_set_label (self->offline_label, self->offline_text);
    }
  gtk_revealer_set_reveal_child (self->offline_revealer, show_offline);

  gtk_spinner_set_spinning (self->sync_spinner, syncing);
  gtk_widget_set_visible (GTK_WIDGET (self->sync_spinner), syncing);

  if (syncing)
    subtitle = g_strdup (_("Syncing…"));
  else if (!online)
    subtitle = g_strdup (C_("connection state", "Offline"));
  else if (fl_fleet_get_live (self->fleet))
    /* Translators: the fleet's events arrive as they happen */
    subtitle = g_strdup (C_("connection state", "Live"));
  else if (when != NULL)
    /* Translators: %s is a time, "14:02" */
    subtitle = g_strdup_printf (_("Synced at %s"), when);
  adw_window_title_set_subtitle (self->window_title, subtitle);
}

static void
fleet_notify_cb (FlFleet     *fleet,
                 GParamSpec  *pspec,
                 FlFleetView *self)
{
  update_status (self);
}

/* ---- navigation ------------------------------------------------------------- */

void
fl_fleet_view_show_device (FlFleetView *self,
                           FlDevice    *device)
{
  g_return_if_fail (FL_IS_FLEET_VIEW (self));
  g_return_if_fail (FL_IS_DEVICE (device));

  fl_device_page_set_device (self->device_page, device);
  adw_leaflet_set_visible_child (self->leaflet, GTK_WIDGET (self->device_page));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "fleet.back", TRUE);
}

void
fl_fleet_view_show_devices (FlFleetView *self)
{
  g_return_if_fail (FL_IS_FLEET_VIEW (self));

  adw_leaflet_set_visible_child (self->leaflet, GTK_WIDGET (self->devices_box));
}

const char *
fl_fleet_view_get_visible_page (FlFleetView *self)
{
  g_return_val_if_fail (FL_IS_FLEET_VIEW (self), NULL);

  return adw_leaflet_get_visible_child (self->leaflet) == GTK_WIDGET (self->device_page) ? "device" : "devices";
}

static void
device_activated_cb (FlDevicesPage *page,
                     FlDevice      *device,
                     FlFleetView   *self)
{
  fl_fleet_view_show_device (self, device);
}

static void
visible_child_cb (AdwLeaflet  *leaflet,
                  GParamSpec  *pspec,
                  FlFleetView *self)
{
  gboolean on_device = adw_leaflet_get_visible_child (leaflet) == GTK_WIDGET (self->device_page);

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "fleet.back", on_device);
}

static void
transition_cb (AdwLeaflet  *leaflet,
               GParamSpec  *pspec,
               FlFleetView *self)
{
  /* Back on the list: let the device page go (its charts and loads). */
  if (!adw_leaflet_get_child_transition_running (leaflet) &&
      adw_leaflet_get_visible_child (leaflet) != GTK_WIDGET (self->device_page))
    {
      fl_device_page_set_device (self->device_page, NULL);
      gtk_widget_grab_focus (GTK_WIDGET (self->devices_page));
    }
}

/* ---- actions ---------------------------------------------------------------- */

static void
refresh_action (GtkWidget  *widget,
                const char *action_name,
                GVariant   *parameter)
{
  fl_fleet_refresh (FL_FLEET_VIEW (widget)->fleet);
}

static void
search_action (GtkWidget  *widget,
               const char *action_name,
               GVariant   *parameter)
{
  FlFleetView *self = FL_FLEET_VIEW (widget);

  fl_fleet_view_show_devices (self);
  fl_devices_page_focus_search (self->devices_page);
}

static void
back_action (GtkWidget  *widget,
             const char *action_name,
             GVariant   *parameter)
{
  fl_fleet_view_show_devices (FL_FLEET_VIEW (widget));
}

/* ---- public ------------------------------------------------------------------ */

static void
set_fleet (FlFleetView *self,
           FlFleet     *fleet)
{
  self->fleet = g_object_ref (fleet);

  self->devices_page = FL_DEVICES_PAGE (fl_devices_page_new (fleet));
  gtk_widget_set_vexpand (GTK_WIDGET (self->devices_page), TRUE);
  gtk_box_append (self->devices_box, GTK_WIDGET (self->devices_page));
  g_signal_connect_object (self->devices_page, "device-activated", G_CALLBACK (device_activated_cb), self, 0);

  self->device_page = FL_DEVICE_PAGE (fl_device_page_new (fleet));
  adw_leaflet_page_set_name (adw_leaflet_append (self->leaflet, GTK_WIDGET (self->device_page)), "device");

  g_signal_connect_object (fleet, "notify::online", G_CALLBACK (fleet_notify_cb), self, 0);
  g_signal_connect_object (fleet, "notify::syncing", G_CALLBACK (fleet_notify_cb), self, 0);
  g_signal_connect_object (fleet, "notify::loaded", G_CALLBACK (fleet_notify_cb), self, 0);
  g_signal_connect_object (fleet, "notify::last-sync", G_CALLBACK (fleet_notify_cb), self, 0);
  g_signal_connect_object (fleet, "notify::sync-failed", G_CALLBACK (fleet_notify_cb), self, 0);
  g_signal_connect_object (fleet, "notify::live", G_CALLBACK (fleet_notify_cb), self, 0);
  update_status (self);
}

GtkWidget *
fl_fleet_view_new_for_fleet (FlFleet *fleet)
{
  g_return_val_if_fail (FL_IS_FLEET (fleet), NULL);

  return g_object_new (FL_TYPE_FLEET_VIEW, "fleet", fleet, NULL);
}

GtkWidget *
fl_fleet_view_new (FlSession *session)
{
  g_autoptr (FlFleet) fleet = NULL;
  GtkWidget *view;

  g_return_val_if_fail (FL_IS_SESSION (session), NULL);

  fleet = fl_fleet_new (NULL);
  fl_fleet_set_session (fleet, session);
  /* the cache opens and loads on its threads while the view is built */
  fl_fleet_start (fleet);
  view = fl_fleet_view_new_for_fleet (fleet);

  return view;
}

FlFleet *
fl_fleet_view_get_fleet (FlFleetView *self)
{
  g_return_val_if_fail (FL_IS_FLEET_VIEW (self), NULL);

  return self->fleet;
}

FlDevicesPage *
fl_fleet_view_get_devices_page (FlFleetView *self)
{
  g_return_val_if_fail (FL_IS_FLEET_VIEW (self), NULL);

  return self->devices_page;
}

FlDevicePage *
fl_fleet_view_get_device_page (FlFleetView *self)
{
  g_return_val_if_fail (FL_IS_FLEET_VIEW (self), NULL);

  return self->device_page;
}

const char *
fl_fleet_view_get_offline_text (FlFleetView *self)
{
  g_return_val_if_fail (FL_IS_FLEET_VIEW (self), NULL);

  return gtk_revealer_get_reveal_child (self->offline_revealer) ? self->offline_text : NULL;
}

/* ---- GObject ----------------------------------------------------------------- */

static void
fl_fleet_view_dispose (GObject *object)
{
  FlFleetView *self = FL_FLEET_VIEW (object);

  /* The view owns the fleet of its session: stop its network work now
   * rather than whenever the last reference goes. */
  if (self->fleet != NULL && fl_fleet_get_session (self->fleet) != NULL)
    fl_fleet_stop (self->fleet);

  gtk_widget_dispose_template (GTK_WIDGET (self), FL_TYPE_FLEET_VIEW);
  self->devices_page = NULL;
  self->device_page = NULL;

  g_clear_object (&self->fleet);

  G_OBJECT_CLASS (fl_fleet_view_parent_class)->dispose (object);
}

static void
fl_fleet_view_finalize (GObject *object)
{
  FlFleetView *self = FL_FLEET_VIEW (object);

  g_clear_pointer (&self->offline_text, g_free);

  G_OBJECT_CLASS (fl_fleet_view_parent_class)->finalize (object);
}

static void
fl_fleet_view_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  FlFleetView *self = FL_FLEET_VIEW (object);

  switch (prop_id)
    {
    case PROP_FLEET:
      g_value_set_object (value, self->fleet);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_fleet_view_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  FlFleetView *self = FL_FLEET_VIEW (object);

  switch (prop_id)
    {
    case PROP_FLEET:
      if (g_value_get_object (value) != NULL)
        set_fleet (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_fleet_view_class_init (FlFleetViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_fleet_view_dispose;
  object_class->finalize = fl_fleet_view_finalize;
  object_class->get_property = fl_fleet_view_get_property;
  object_class->set_property = fl_fleet_view_set_property;

  properties[PROP_FLEET] =
    g_param_spec_object ("fleet", NULL, NULL, FL_TYPE_FLEET,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/fieldline/Fieldline/fl-fleet-view.ui");
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, leaflet);
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, devices_box);
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, window_title);
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, sync_spinner);
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, offline_revealer);
  gtk_widget_class_bind_template_child (widget_class, FlFleetView, offline_label);
  gtk_widget_class_bind_template_callback (widget_class, visible_child_cb);
  gtk_widget_class_bind_template_callback (widget_class, transition_cb);

  gtk_widget_class_install_action (widget_class, "fleet.refresh", NULL, refresh_action);
  gtk_widget_class_install_action (widget_class, "fleet.search", NULL, search_action);
  gtk_widget_class_install_action (widget_class, "fleet.back", NULL, back_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Left, GDK_ALT_MASK, "fleet.back", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Left, GDK_ALT_MASK, "fleet.back", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Back, 0, "fleet.back", NULL);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
}

static void
fl_fleet_view_init (FlFleetView *self)
{
  static gboolean css_loaded;

  gtk_widget_init_template (GTK_WIDGET (self));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "fleet.back", FALSE);

  if (!css_loaded && gdk_display_get_default () != NULL)
    {
      g_autoptr (GtkCssProvider) provider = gtk_css_provider_new ();

      gtk_css_provider_load_from_data (provider, banner_css, -1);
      gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (provider),
                                                  GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
      css_loaded = TRUE;
    }
}
