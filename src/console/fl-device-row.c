/* fl-device-row.c: a row of the device list, drawn in one widget.
 *
 * Its texts are read from the device when it is drawn after a bind, or
 * at once on an update (a few snprintf), and laid out (PangoLayout,
 * cached per column) only when drawn: of the ~200 rows GtkListView
 * keeps, only those on screen ever are.  An update that changes a text
 * redraws the row; the height never changes.
 */
#define G_LOG_DOMAIN "fl-device-row"

#include "config.h"

#include <glib/gi18n.h>
#include <math.h>

#include "fl-device-row.h"
#include "fl-fleet.h"

#define PAD_X        12
#define PAD_Y        6
#define GAP          12
#define ICON_SIZE    16
#define ICON_GAP     6
#define SMALL_SCALE  0.83

enum {
  ICON_STATUS,
  ICON_BATTERY,
  ICON_SIGNAL,
  N_ICONS
};

typedef enum {
  TONE_NORMAL,
  TONE_DIM,
  TONE_SUCCESS,
  TONE_WARNING,
} Tone;

struct _FlDeviceRow
{
  GtkWidget    parent_instance;

  gboolean     header;
  FlDevice    *device;
  char        *texts[FL_DEVICE_ROW_N_TEXTS];
  PangoLayout *layouts[FL_DEVICE_ROW_N_TEXTS];
  const char  *icon_names[N_ICONS];
  Tone         status_tone;
  Tone         battery_tone;
  gboolean     stale;   /* texts not read from device yet */
  gboolean     rtl;     /* while drawing: columns mirrored */
  int          width;   /* while drawing */
};

G_DEFINE_FINAL_TYPE (FlDeviceRow, fl_device_row, GTK_TYPE_WIDGET)

/* ---- what it shows ---------------------------------------------------------- */

static const char *
battery_icon_name (double battery)
{
  static const char *levels[] = {
    "battery-level-0-symbolic", "battery-level-10-symbolic", "battery-level-20-symbolic",
    "battery-level-30-symbolic", "battery-level-40-symbolic", "battery-level-50-symbolic",
    "battery-level-60-symbolic", "battery-level-70-symbolic", "battery-level-80-symbolic",
    "battery-level-90-symbolic", "battery-level-100-symbolic",
  };

  if (isnan (battery))
    return "battery-missing-symbolic";

  return levels[CLAMP ((int) ((battery + 5) / 10), 0, 10)];
}

static const char *
signal_icon_name (double rssi)
{
  if (isnan (rssi))
    return "network-wireless-offline-symbolic";
  if (rssi >= -55)
    return "network-wireless-signal-excellent-symbolic";
  if (rssi >= -67)
    return "network-wireless-signal-good-symbolic";
  if (rssi >= -80)
    return "network-wireless-signal-ok-symbolic";
  if (rssi >= -90)
    return "network-wireless-signal-weak-symbolic";

  return "network-wireless-signal-none-symbolic";
}

/* Takes text; returns TRUE when it differs from what is shown. */
static gboolean
take_text (FlDeviceRow     *self,
           FlDeviceRowText  which,
           char            *text)
{
  if (g_strcmp0 (self->texts[which], text) == 0)
    {
      g_free (text);
      return FALSE;
    }

  g_free (self->texts[which]);
  self->texts[which] = text;
  g_clear_object (&self->layouts[which]);

  return TRUE;
}

static void
update_accessible (FlDeviceRow *self)
{
  g_autofree char *label = NULL;

  if (self->device == NULL)
    return;

  /* Translators: a device row read by a screen reader: name, id,
   * status, battery, signal, last seen */
  label = g_strdup_printf (_("%s, %s, %s, battery %s, signal %s, last seen %s"),
                           self->texts[FL_DEVICE_ROW_NAME], self->texts[FL_DEVICE_ROW_ID],
                           self->texts[FL_DEVICE_ROW_STATUS], self->texts[FL_DEVICE_ROW_BATTERY],
                           self->texts[FL_DEVICE_ROW_SIGNAL], self->texts[FL_DEVICE_ROW_LAST_SEEN]);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL, label, -1);
}

/* Reads the device into the texts; TRUE when one changed. */
static gboolean
fill (FlDeviceRow *self,
      gint64       now_ms)
{
  FlDevice *device = self->device;
  FlDeviceStatus status;
  const char *name;
  double battery, rssi;
  gboolean changed = FALSE;
  const char *icons[N_ICONS];
  Tone status_tone, battery_tone;

  self->stale = FALSE;
  if (device == NULL || self->header)
    return FALSE;

  status = fl_device_get_status (device);
  name = fl_device_get_name (device);
  battery = fl_device_get_battery (device);
  rssi = fl_device_get_rssi (device);

  changed |= take_text (self, FL_DEVICE_ROW_STATUS, g_strdup (fl_fleet_status_label (status)));
  changed |= take_text (self, FL_DEVICE_ROW_NAME, g_strdup (name != NULL ? name : fl_device_get_device_id (device)));
  changed |= take_text (self, FL_DEVICE_ROW_ID, g_strdup (fl_device_get_device_id (device)));
  if (isnan (battery))
    changed |= take_text (self, FL_DEVICE_ROW_BATTERY, g_strdup (C_("unknown value", "—")));
  else
    /* Translators: battery charge; %.0f is the number, then a percent sign */
    changed |= take_text (self, FL_DEVICE_ROW_BATTERY, g_strdup_printf (C_("battery", "%.0f %%"), battery));
  if (isnan (rssi))
    changed |= take_text (self, FL_DEVICE_ROW_SIGNAL, g_strdup (C_("unknown value", "—")));
  else
    /* Translators: signal strength in dBm */
    changed |= take_text (self, FL_DEVICE_ROW_SIGNAL, g_strdup_printf (C_("signal", "%.0f dBm"), rssi));
  changed |= take_text (self, FL_DEVICE_ROW_LAST_SEEN, fl_fleet_format_relative (fl_device_get_last_seen (device), now_ms));

  icons[ICON_STATUS] = fl_fleet_status_icon_name (status);
  icons[ICON_BATTERY] = battery_icon_name (battery);
  icons[ICON_SIGNAL] = signal_icon_name (rssi);
  for (guint i = 0; i < N_ICONS; i++)
    if (self->icon_names[i] != icons[i])
      {
        self->icon_names[i] = icons[i];
        changed = TRUE;
      }

  status_tone = status == FL_DEVICE_STATUS_ONLINE ? TONE_SUCCESS :
                status == FL_DEVICE_STATUS_MAINTENANCE ? TONE_WARNING :
                status == FL_DEVICE_STATUS_DECOMMISSIONED ? TONE_DIM : TONE_NORMAL;
  battery_tone = !isnan (battery) && battery < 20 ? TONE_WARNING : TONE_NORMAL;
  if (status_tone != self->status_tone || battery_tone != self->battery_tone)
    {
      self->status_tone = status_tone;
      self->battery_tone = battery_tone;
      changed = TRUE;
    }

  if (changed)
    update_accessible (self);

  return changed;
}

static void
ensure_texts (FlDeviceRow *self)
{
  if (self->stale)
    fill (self, g_get_real_time () / 1000);
}

gboolean
fl_device_row_update (FlDeviceRow *self,
                      gint64       now_ms)
{
  g_return_val_if_fail (FL_IS_DEVICE_ROW (self), FALSE);

  if (self->stale)
    return FALSE;  /* read when drawn */

  if (!fill (self, now_ms))
    return FALSE;

  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

/* Binding only marks the row: ~400 rows are rebound when the list
 * changes a lot, only those drawn (or asked) read their device. */
void
fl_device_row_set_device (FlDeviceRow *self,
                          FlDevice    *device)
{
  g_return_if_fail (FL_IS_DEVICE_ROW (self));
  g_return_if_fail (device == NULL || FL_IS_DEVICE (device));
  g_return_if_fail (!self->header);

  if (!g_set_object (&self->device, device))
    return;

  self->stale = device != NULL;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

FlDevice *
fl_device_row_get_device (FlDeviceRow *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_ROW (self), NULL);

  return self->device;
}

const char *
fl_device_row_get_text (FlDeviceRow     *self,
                        FlDeviceRowText  text)
{
  g_return_val_if_fail (FL_IS_DEVICE_ROW (self), NULL);
  g_return_val_if_fail (text < FL_DEVICE_ROW_N_TEXTS, NULL);

  ensure_texts (self);
  return self->texts[text];
}

/* ---- layout and drawing -------------------------------------------------------- */

typedef struct
{
  gboolean narrow;
  int status_x, status_w;
  int name_x, name_w;
  int battery_x, battery_w;
  int signal_x, signal_w;
  int seen_x, seen_w;
} Columns;

/* The columns of a row (and the header) width wide. */
static void
compute_columns (int      width,
                 Columns *c)
{
  int x = PAD_X;

  c->narrow = width < FL_DEVICE_ROW_NARROW_WIDTH;
  /* narrow: the status as its icon alone, so the name keeps the room */
  c->status_w = c->narrow ? ICON_SIZE : 140;
  c->battery_w = c->narrow ? 72 : 90;
  c->signal_w = c->narrow ? 0 : 110;
  c->seen_w = c->narrow ? 0 : 150;

  c->status_x = x;
  x += c->status_w + GAP;
  c->name_x = x;
  c->name_w = MAX (40, width - PAD_X - x - GAP - c->battery_w -
                        (c->narrow ? 0 : GAP + c->signal_w + GAP + c->seen_w));
  x += c->name_w + GAP;
  c->battery_x = x;
  x += c->battery_w + GAP;
  c->signal_x = x;
  x += c->signal_w + GAP;
  c->seen_x = x;
}

static PangoLayout *
get_layout (FlDeviceRow     *self,
            FlDeviceRowText  which,
            int              width,
            gboolean         small)
{
  PangoLayout *layout = self->layouts[which];

  if (layout == NULL)
    {
      layout = gtk_widget_create_pango_layout (GTK_WIDGET (self), self->texts[which]);
      pango_layout_set_ellipsize (layout, which == FL_DEVICE_ROW_ID ? PANGO_ELLIPSIZE_MIDDLE : PANGO_ELLIPSIZE_END);
      pango_layout_set_single_paragraph_mode (layout, TRUE);
      if (small || self->header)
        {
          PangoAttrList *attrs = pango_attr_list_new ();

          if (small)
            pango_attr_list_insert (attrs, pango_attr_scale_new (SMALL_SCALE));
          if (self->header)
            pango_attr_list_insert (attrs, pango_attr_weight_new (PANGO_WEIGHT_BOLD));
          pango_layout_set_attributes (layout, attrs);
          pango_attr_list_unref (attrs);
        }
      self->layouts[which] = layout;
    }

  if (pango_layout_get_width (layout) != width * PANGO_SCALE)
    pango_layout_set_width (layout, MAX (width, 1) * PANGO_SCALE);

  return layout;
}

static void
tone_color (GtkWidget *widget,
            Tone       tone,
            GdkRGBA   *color)
{
  GtkStyleContext *context = gtk_widget_get_style_context (widget);

  gtk_style_context_get_color (context, color);
  switch (tone)
    {
    case TONE_DIM:
      color->alpha *= 0.55;
      break;
    case TONE_SUCCESS:
      if (!gtk_style_context_lookup_color (context, "success_color", color))
        gtk_style_context_get_color (context, color);
      break;
    case TONE_WARNING:
      if (!gtk_style_context_lookup_color (context, "warning_color", color))
        gtk_style_context_get_color (context, color);
      break;
    case TONE_NORMAL:
    default:
      break;
    }
}

static int
draw_text (FlDeviceRow     *self,
           GtkSnapshot     *snapshot,
           FlDeviceRowText  which,
           int              x,
           int              y,
           int              width,
           gboolean         small,
           const GdkRGBA   *color)
{
  PangoLayout *layout;
  int height;

  if (self->texts[which] == NULL || width <= 0)
    return 0;

  layout = get_layout (self, which, width, small);
  pango_layout_get_pixel_size (layout, NULL, &height);
  if (self->rtl)
    x = self->width - x - width;
  gtk_snapshot_save (snapshot);
  gtk_snapshot_translate (snapshot, &GRAPHENE_POINT_INIT (x, y - height / 2));
  gtk_snapshot_append_layout (snapshot, layout, color);
  gtk_snapshot_restore (snapshot);

  return height;
}

static void
draw_icon (FlDeviceRow   *self,
           GtkSnapshot   *snapshot,
           const char    *icon_name,
           int            x,
           int            y,
           const GdkRGBA *color)
{
  GtkIconTheme *theme = gtk_icon_theme_get_for_display (gtk_widget_get_display (GTK_WIDGET (self)));
  g_autoptr (GtkIconPaintable) icon = NULL;
  GdkRGBA colors[4] = { *color, *color, *color, *color };

  if (icon_name == NULL)
    return;

  icon = gtk_icon_theme_lookup_icon (theme, icon_name, NULL, ICON_SIZE, gtk_widget_get_scale_factor (GTK_WIDGET (self)),
                                     gtk_widget_get_direction (GTK_WIDGET (self)), 0);
  if (self->rtl)
    x = self->width - x - ICON_SIZE;
  gtk_snapshot_save (snapshot);
  gtk_snapshot_translate (snapshot, &GRAPHENE_POINT_INIT (x, y - ICON_SIZE / 2));
  gtk_symbolic_paintable_snapshot_symbolic (GTK_SYMBOLIC_PAINTABLE (icon), snapshot, ICON_SIZE, ICON_SIZE, colors, 4);
  gtk_snapshot_restore (snapshot);
}

static void
fl_device_row_snapshot (GtkWidget   *widget,
                        GtkSnapshot *snapshot)
{
  FlDeviceRow *self = FL_DEVICE_ROW (widget);
  int width = gtk_widget_get_width (widget);
  int height = gtk_widget_get_height (widget);
  int mid = height / 2;
  GdkRGBA normal, dim, status_color, battery_color;
  Columns c;

  if (!self->header && self->device == NULL)
    return;

  ensure_texts (self);
  /* the columns in logical order; drawn mirrored right to left */
  compute_columns (width, &c);
  self->rtl = gtk_widget_get_direction (widget) == GTK_TEXT_DIR_RTL;
  self->width = width;
  tone_color (widget, TONE_NORMAL, &normal);
  tone_color (widget, TONE_DIM, &dim);

  if (self->header)
    {
      if (!c.narrow)
        draw_text (self, snapshot, FL_DEVICE_ROW_STATUS, c.status_x, mid, c.status_w, FALSE, &dim);
      draw_text (self, snapshot, FL_DEVICE_ROW_NAME, c.name_x, mid, c.name_w, FALSE, &dim);
      draw_text (self, snapshot, FL_DEVICE_ROW_BATTERY, c.battery_x, mid, c.battery_w, FALSE, &dim);
      if (!c.narrow)
        {
          draw_text (self, snapshot, FL_DEVICE_ROW_SIGNAL, c.signal_x, mid, c.signal_w, FALSE, &dim);
          draw_text (self, snapshot, FL_DEVICE_ROW_LAST_SEEN, c.seen_x, mid, c.seen_w, FALSE, &dim);
        }
      return;
    }

  tone_color (widget, self->status_tone, &status_color);
  tone_color (widget, self->battery_tone, &battery_color);

  /* status: icon and text (the icon alone when narrow) */
  draw_icon (self, snapshot, self->icon_names[ICON_STATUS], c.status_x, mid, &status_color);
  if (!c.narrow)
    draw_text (self, snapshot, FL_DEVICE_ROW_STATUS, c.status_x + ICON_SIZE + ICON_GAP, mid,
               c.status_w - ICON_SIZE - ICON_GAP, FALSE, &status_color);

  /* name over id (the id alone when they are the same) */
  if (g_strcmp0 (self->texts[FL_DEVICE_ROW_NAME], self->texts[FL_DEVICE_ROW_ID]) == 0)
    draw_text (self, snapshot, FL_DEVICE_ROW_NAME, c.name_x, mid, c.name_w, FALSE, &normal);
  else
    {
      PangoLayout *name = get_layout (self, FL_DEVICE_ROW_NAME, c.name_w, FALSE);
      PangoLayout *id = get_layout (self, FL_DEVICE_ROW_ID, c.name_w, TRUE);
      int name_h, id_h, top;

      pango_layout_get_pixel_size (name, NULL, &name_h);
      pango_layout_get_pixel_size (id, NULL, &id_h);
      top = (height - name_h - id_h) / 2;
      draw_text (self, snapshot, FL_DEVICE_ROW_NAME, c.name_x, top + name_h / 2, c.name_w, FALSE, &normal);
      draw_text (self, snapshot, FL_DEVICE_ROW_ID, c.name_x, top + name_h + id_h / 2, c.name_w, TRUE, &dim);
    }

  draw_icon (self, snapshot, self->icon_names[ICON_BATTERY], c.battery_x, mid, &battery_color);
  draw_text (self, snapshot, FL_DEVICE_ROW_BATTERY, c.battery_x + ICON_SIZE + ICON_GAP, mid,
             c.battery_w - ICON_SIZE - ICON_GAP, FALSE, &battery_color);

  if (!c.narrow)
    {
      draw_icon (self, snapshot, self->icon_names[ICON_SIGNAL], c.signal_x, mid, &normal);
      draw_text (self, snapshot, FL_DEVICE_ROW_SIGNAL, c.signal_x + ICON_SIZE + ICON_GAP, mid,
                 c.signal_w - ICON_SIZE - ICON_GAP, FALSE, &normal);
      draw_text (self, snapshot, FL_DEVICE_ROW_LAST_SEEN, c.seen_x, mid, c.seen_w, FALSE, &normal);
    }
}

static void
fl_device_row_measure (GtkWidget      *widget,
                       GtkOrientation  orientation,
                       int             for_size,
                       int            *minimum,
                       int            *natural,
                       int            *minimum_baseline,
                       int            *natural_baseline)
{
  FlDeviceRow *self = FL_DEVICE_ROW (widget);

  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      /* narrow columns fit 360 px */
      *minimum = 300;
      *natural = 900;
    }
  else
    {
      PangoContext *context = gtk_widget_get_pango_context (widget);
      PangoFontMetrics *metrics = pango_context_get_metrics (context, NULL, NULL);
      int line = PANGO_PIXELS_CEIL (pango_font_metrics_get_height (metrics));

      if (line <= 0)
        line = PANGO_PIXELS_CEIL (pango_font_metrics_get_ascent (metrics) + pango_font_metrics_get_descent (metrics));
      pango_font_metrics_unref (metrics);
      /* the header: one line; a row: the name and the (smaller) id */
      *minimum = *natural = self->header ? line + 2 * PAD_Y
                                         : line + (int) ceil (line * SMALL_SCALE) + 2 * PAD_Y;
    }
}

static void
drop_layouts (FlDeviceRow *self)
{
  for (guint i = 0; i < FL_DEVICE_ROW_N_TEXTS; i++)
    g_clear_object (&self->layouts[i]);
}

/* Icons are read (SVG) and rendered the first time they are drawn: the
 * first rows would pay for ~20 of them.  The header, which is there
 * before the devices, has them ready in the meantime. */
static gboolean
warm_icons_cb (gpointer user_data)
{
  GtkWidget *widget = user_data;
  static const char *names[] = {
    "emblem-ok-symbolic", "network-offline-symbolic", "applications-engineering-symbolic",
    "action-unavailable-symbolic", "battery-missing-symbolic",
    "battery-level-0-symbolic", "battery-level-10-symbolic", "battery-level-20-symbolic",
    "battery-level-30-symbolic", "battery-level-40-symbolic", "battery-level-50-symbolic",
    "battery-level-60-symbolic", "battery-level-70-symbolic", "battery-level-80-symbolic",
    "battery-level-90-symbolic", "battery-level-100-symbolic",
    "network-wireless-offline-symbolic", "network-wireless-signal-excellent-symbolic",
    "network-wireless-signal-good-symbolic", "network-wireless-signal-ok-symbolic",
    "network-wireless-signal-weak-symbolic", "network-wireless-signal-none-symbolic",
  };
  GtkIconTheme *theme = gtk_icon_theme_get_for_display (gtk_widget_get_display (widget));
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  GdkRGBA color = { 0, 0, 0, 1 };
  GdkRGBA colors[4] = { color, color, color, color };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr (GtkIconPaintable) icon =
        gtk_icon_theme_lookup_icon (theme, names[i], NULL, ICON_SIZE, gtk_widget_get_scale_factor (widget),
                                    gtk_widget_get_direction (widget), 0);

      gtk_symbolic_paintable_snapshot_symbolic (GTK_SYMBOLIC_PAINTABLE (icon), snapshot, ICON_SIZE, ICON_SIZE, colors, 4);
    }
  g_clear_pointer (&snapshot, gtk_snapshot_free_to_node);
  g_object_unref (widget);

  return G_SOURCE_REMOVE;
}

static void
fl_device_row_realize (GtkWidget *widget)
{
  GTK_WIDGET_CLASS (fl_device_row_parent_class)->realize (widget);

  if (FL_DEVICE_ROW (widget)->header)
    g_idle_add_full (G_PRIORITY_LOW, warm_icons_cb, g_object_ref (widget), NULL);
}

static void
fl_device_row_css_changed (GtkWidget         *widget,
                           GtkCssStyleChange *change)
{
  /* the font may have changed */
  drop_layouts (FL_DEVICE_ROW (widget));
  GTK_WIDGET_CLASS (fl_device_row_parent_class)->css_changed (widget, change);
}

static void
fl_device_row_direction_changed (GtkWidget        *widget,
                                 GtkTextDirection  previous)
{
  drop_layouts (FL_DEVICE_ROW (widget));
  gtk_widget_queue_draw (widget);
}

/* ---- GObject ------------------------------------------------------------------ */

static void
fl_device_row_dispose (GObject *object)
{
  FlDeviceRow *self = FL_DEVICE_ROW (object);

  g_clear_object (&self->device);
  drop_layouts (self);

  G_OBJECT_CLASS (fl_device_row_parent_class)->dispose (object);
}

static void
fl_device_row_finalize (GObject *object)
{
  FlDeviceRow *self = FL_DEVICE_ROW (object);

  for (guint i = 0; i < FL_DEVICE_ROW_N_TEXTS; i++)
    g_clear_pointer (&self->texts[i], g_free);

  G_OBJECT_CLASS (fl_device_row_parent_class)->finalize (object);
}

static void
fl_device_row_class_init (FlDeviceRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_device_row_dispose;
  object_class->finalize = fl_device_row_finalize;

  widget_class->snapshot = fl_device_row_snapshot;
  widget_class->measure = fl_device_row_measure;
  widget_class->css_changed = fl_device_row_css_changed;
  widget_class->realize = fl_device_row_realize;
  widget_class->direction_changed = fl_device_row_direction_changed;

  gtk_widget_class_set_css_name (widget_class, "devicerow");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_GROUP);
}

static void
fl_device_row_init (FlDeviceRow *self)
{
}

GtkWidget *
fl_device_row_new (void)
{
  return g_object_new (FL_TYPE_DEVICE_ROW, NULL);
}

GtkWidget *
fl_device_row_new_header (void)
{
  FlDeviceRow *self = g_object_new (FL_TYPE_DEVICE_ROW, NULL);

  self->header = TRUE;
  self->texts[FL_DEVICE_ROW_STATUS] = g_strdup (_("Status"));
  self->texts[FL_DEVICE_ROW_NAME] = g_strdup (_("Device"));
  self->texts[FL_DEVICE_ROW_BATTERY] = g_strdup (_("Battery"));
  self->texts[FL_DEVICE_ROW_SIGNAL] = g_strdup (_("Signal"));
  self->texts[FL_DEVICE_ROW_LAST_SEEN] = g_strdup (_("Last Seen"));
  /* a screen reader reads the rows' own labels; the header is decoration */
  gtk_accessible_update_state (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_STATE_HIDDEN, TRUE, -1);

  return GTK_WIDGET (self);
}
