/* fl-devices-page.c: the fleet's devices as a virtualised list.
 *
 * GtkListView keeps ~200 rows (FlDeviceRow, one widget each) whatever
 * the fleet's size.  The bound rows are in the "bound" set:
 * "devices-changed" updates those whose device is in the changed set,
 * and a 30 s timer refreshes their "last seen", so neither rebuilds a
 * row.
 */
#define G_LOG_DOMAIN "fl-devices-page"

#include "config.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <math.h>

#include "fl-fleet-filter-model.h"
#include "fl-device-row.h"
#include "fl-devices-page.h"
#include "fl-a11y.h"

#define LAST_SEEN_REFRESH 30

struct _FlDevicesPage
{
  GtkWidget            parent_instance;

  FlFleet             *fleet;
  FlFleetFilter      *filter;
  FlFleetFilterModel *filter_model;
  GListModel          *slots;   /* FlSlotModel, below */
  GtkNoSelection      *selection;
  GListStore          *tag_sections;
  GtkFlattenListModel *tag_model;
  GHashTable          *bound;  /* FlDeviceRow set: the rows bound to a device */
  guint                last_seen_source;
  gboolean             narrow;
  guint                narrow_idle;
  gboolean             updating_controls;

  GtkWidget           *box;
  GtkBox              *filter_box;
  GtkSearchEntry      *search_entry;
  GtkDropDown         *status_dropdown;
  GtkDropDown         *tag_dropdown;
  GtkStack            *stack;
  GtkBox              *header_box;
  GtkListView         *list_view;
  GtkLabel            *count_label;
  GtkSpinner          *loading_spinner;
};

G_DEFINE_FINAL_TYPE (FlDevicesPage, fl_devices_page, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_FLEET,
  N_PROPS
};

enum {
  DEVICE_ACTIVATED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* The status dropdown's rows, in order. */
static const int status_rows[] = {
  FL_FLEET_FILTER_ANY_STATUS,
  FL_DEVICE_STATUS_ONLINE,
  FL_DEVICE_STATUS_OFFLINE,
  FL_DEVICE_STATUS_MAINTENANCE,
  FL_DEVICE_STATUS_DECOMMISSIONED,
};

/* ---- slots -------------------------------------------------------------------
 *
 * GtkListView (4.8) keeps its row widgets only for items that survive an
 * items-changed: when the filter changes, the ~400 rows it keeps are torn
 * down and built again (~55 ms for 100,000 devices).  So the view does
 * not show the filtered model itself but "slots", one per position, whose
 * device changes in place: a new filter rebinds the live slots (a pointer
 * each; rows read their device when drawn) and only a change of length
 * reaches the view, as an items-changed at the end.
 */

#define FL_TYPE_DEVICE_SLOT (fl_device_slot_get_type ())
G_DECLARE_FINAL_TYPE (FlDeviceSlot, fl_device_slot, FL, DEVICE_SLOT, GObject)

#define FL_TYPE_SLOT_MODEL (fl_slot_model_get_type ())
G_DECLARE_FINAL_TYPE (FlSlotModel, fl_slot_model, FL, SLOT_MODEL, GObject)

struct _FlDeviceSlot
{
  GObject      parent_instance;
  FlSlotModel *model;     /* not a reference; cleared when the model goes */
  guint        position;  /* fixed */
  FlDevice    *device;
  FlDeviceRow *row;       /* the row showing it, if any */
};

struct _FlSlotModel
{
  GObject     parent_instance;
  GListModel *base;
  GHashTable *live;       /* position -> FlDeviceSlot (not a reference) */
  guint       n_items;    /* what the view sees: MIN (base's, limit) */
  guint       limit;
  GtkWidget  *ticker;     /* the list view (weak) */
  guint       tick_id;
  guint       ticks;
};

/* When the list fills up, the first frame shows this many rows (of the
 * ~200 GtkListView would build at once); the rest come a frame later. */
#define FIRST_SCREEN 64

G_DEFINE_FINAL_TYPE (FlDeviceSlot, fl_device_slot, G_TYPE_OBJECT)

static void
fl_device_slot_finalize (GObject *object)
{
  FlDeviceSlot *slot = FL_DEVICE_SLOT (object);

  if (slot->model != NULL)
    g_hash_table_remove (slot->model->live, GUINT_TO_POINTER (slot->position));
  g_clear_object (&slot->device);

  G_OBJECT_CLASS (fl_device_slot_parent_class)->finalize (object);
}

static void
fl_device_slot_class_init (FlDeviceSlotClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_device_slot_finalize;
}

static void
fl_device_slot_init (FlDeviceSlot *slot)
{
}

static void
slot_set_device (FlDeviceSlot *slot,
                 FlDevice     *device)
{
  if (!g_set_object (&slot->device, device))
    return;

  if (slot->row != NULL)
    fl_device_row_set_device (slot->row, device);
}

static GType
fl_slot_model_get_item_type (GListModel *model)
{
  return FL_TYPE_DEVICE_SLOT;
}

static guint
fl_slot_model_get_n_items (GListModel *model)
{
  return FL_SLOT_MODEL (model)->n_items;
}

static gpointer
fl_slot_model_get_item (GListModel *model,
                        guint       position)
{
  FlSlotModel *self = FL_SLOT_MODEL (model);
  FlDeviceSlot *slot;

  if (position >= self->n_items)
    return NULL;

  slot = g_hash_table_lookup (self->live, GUINT_TO_POINTER (position));
  if (slot != NULL)
    return g_object_ref (slot);

  slot = g_object_new (FL_TYPE_DEVICE_SLOT, NULL);
  slot->model = self;
  slot->position = position;
  slot->device = g_list_model_get_item (self->base, position);
  g_hash_table_insert (self->live, GUINT_TO_POINTER (position), slot);

  return slot;
}

static void
fl_slot_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = fl_slot_model_get_item_type;
  iface->get_n_items = fl_slot_model_get_n_items;
  iface->get_item = fl_slot_model_get_item;
}

G_DEFINE_FINAL_TYPE_WITH_CODE (FlSlotModel, fl_slot_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, fl_slot_model_list_model_init))

static void
set_n_items (FlSlotModel *self,
             guint        n)
{
  guint old_n = self->n_items;

  self->n_items = n;
  if (n < old_n)
    g_list_model_items_changed (G_LIST_MODEL (self), n, old_n - n, 0);
  else if (n > old_n)
    g_list_model_items_changed (G_LIST_MODEL (self), old_n, 0, n - old_n);
}

static gboolean
lift_limit_cb (GtkWidget     *widget,
               GdkFrameClock *clock,
               gpointer       user_data)
{
  FlSlotModel *self = user_data;

  /* the first tick is the frame that shows the first screen */
  if (++self->ticks < 2)
    return G_SOURCE_CONTINUE;

  self->tick_id = 0;
  self->limit = G_MAXUINT;
  set_n_items (self, g_list_model_get_n_items (self->base));

  return G_SOURCE_REMOVE;
}

static void
base_items_changed_cb (GListModel  *base,
                       guint        position,
                       guint        removed,
                       guint        added,
                       FlSlotModel *self)
{
  guint old_n = self->n_items;
  guint new_n;

  if (old_n == 0 && g_list_model_get_n_items (base) > FIRST_SCREEN &&
      self->ticker != NULL && self->tick_id == 0)
    {
      self->limit = FIRST_SCREEN;
      self->ticks = 0;
      self->tick_id = gtk_widget_add_tick_callback (self->ticker, lift_limit_cb, self, NULL);
    }
  new_n = MIN (g_list_model_get_n_items (base), self->limit);
  /* the same length in place: only that range; else all after position */
  guint end = removed == added ? position + added : MIN (old_n, new_n);
  GHashTableIter iter;
  gpointer slot;

  g_hash_table_iter_init (&iter, self->live);
  while (g_hash_table_iter_next (&iter, NULL, &slot))
    {
      FlDeviceSlot *s = slot;

      if (s->position >= position && s->position < end)
        {
          g_autoptr (FlDevice) device = g_list_model_get_item (base, s->position);

          slot_set_device (s, device);
        }
    }

  set_n_items (self, new_n);
}

static void
fl_slot_model_dispose (GObject *object)
{
  FlSlotModel *self = FL_SLOT_MODEL (object);
  GHashTableIter iter;
  gpointer slot;

  g_hash_table_iter_init (&iter, self->live);
  while (g_hash_table_iter_next (&iter, NULL, &slot))
    FL_DEVICE_SLOT (slot)->model = NULL;
  g_hash_table_remove_all (self->live);

  if (self->base != NULL)
    g_signal_handlers_disconnect_by_data (self->base, self);
  g_clear_object (&self->base);
  if (self->ticker != NULL)
    {
      if (self->tick_id != 0)
        gtk_widget_remove_tick_callback (self->ticker, self->tick_id);
      g_object_remove_weak_pointer (G_OBJECT (self->ticker), (gpointer *) &self->ticker);
      self->ticker = NULL;
    }
  self->tick_id = 0;

  G_OBJECT_CLASS (fl_slot_model_parent_class)->dispose (object);
}

static void
fl_slot_model_finalize (GObject *object)
{
  g_clear_pointer (&FL_SLOT_MODEL (object)->live, g_hash_table_unref);

  G_OBJECT_CLASS (fl_slot_model_parent_class)->finalize (object);
}

static void
fl_slot_model_class_init (FlSlotModelClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = fl_slot_model_dispose;
  G_OBJECT_CLASS (klass)->finalize = fl_slot_model_finalize;
}

static void
fl_slot_model_init (FlSlotModel *self)
{
  self->live = g_hash_table_new (NULL, NULL);
  self->limit = G_MAXUINT;
}

/* ticker: the list view, whose frames pace the first screen */
static FlSlotModel *
fl_slot_model_new (GListModel *base,
                   GtkWidget  *ticker)
{
  FlSlotModel *self = g_object_new (FL_TYPE_SLOT_MODEL, NULL);

  self->base = g_object_ref (base);
  self->ticker = ticker;
  g_object_add_weak_pointer (G_OBJECT (ticker), (gpointer *) &self->ticker);
  self->n_items = g_list_model_get_n_items (base);
  g_signal_connect (base, "items-changed", G_CALLBACK (base_items_changed_cb), self);

  return self;
}

/* ---- rows ------------------------------------------------------------------ */

static void
row_setup_cb (GtkSignalListItemFactory *factory,
              GtkListItem              *item,
              FlDevicesPage            *self)
{
  gtk_list_item_set_child (item, fl_device_row_new ());
}

static void
row_bind_cb (GtkSignalListItemFactory *factory,
             GtkListItem              *item,
             FlDevicesPage            *self)
{
  FlDeviceRow *row = FL_DEVICE_ROW (gtk_list_item_get_child (item));
  FlDeviceSlot *slot = gtk_list_item_get_item (item);

  slot->row = row;
  fl_device_row_set_device (row, slot->device);
  g_hash_table_add (self->bound, row);
}

static void
row_unbind_cb (GtkSignalListItemFactory *factory,
               GtkListItem              *item,
               FlDevicesPage            *self)
{
  FlDeviceRow *row = FL_DEVICE_ROW (gtk_list_item_get_child (item));
  FlDeviceSlot *slot = gtk_list_item_get_item (item);

  if (slot != NULL && slot->row == row)
    slot->row = NULL;
  g_hash_table_remove (self->bound, row);
  fl_device_row_set_device (row, NULL);
}

static void
devices_changed_cb (FlFleet       *fleet,
                    GHashTable    *changed,
                    FlDevicesPage *self)
{
  GHashTableIter iter;
  gpointer row;
  gint64 now_ms = g_get_real_time () / 1000;

  /* ~200 bound rows against a set: no row is rebuilt */
  g_hash_table_iter_init (&iter, self->bound);
  while (g_hash_table_iter_next (&iter, &row, NULL))
    if (g_hash_table_contains (changed, fl_device_row_get_device (row)))
      fl_device_row_update (row, now_ms);
}

static gboolean
refresh_last_seen_cb (gpointer user_data)
{
  FlDevicesPage *self = user_data;
  GHashTableIter iter;
  gpointer row;
  gint64 now_ms = g_get_real_time () / 1000;

  g_hash_table_iter_init (&iter, self->bound);
  while (g_hash_table_iter_next (&iter, &row, NULL))
    fl_device_row_update (row, now_ms);

  return G_SOURCE_CONTINUE;
}

/* ---- state ---------------------------------------------------------------- */

static void
update_state (FlDevicesPage *self)
{
  guint shown = g_list_model_get_n_items (G_LIST_MODEL (self->filter_model));
  guint total = self->fleet ? g_list_model_get_n_items (G_LIST_MODEL (self->fleet)) : 0;
  g_autofree char *count = NULL;
  const char *page;

  if (shown > 0)
    page = "list";
  else if (total > 0)
    page = "no-match";
  else if (self->fleet != NULL && !fl_fleet_get_loaded (self->fleet))
    page = "loading";
  else
    page = "empty";

  gtk_stack_set_visible_child_name (self->stack, page);
  gtk_spinner_set_spinning (self->loading_spinner, g_str_equal (page, "loading"));

  if (shown == total)
    count = g_strdup_printf (ngettext ("%u device", "%u devices", total), total);
  else
    /* Translators: "12 of 100,000 devices" */
    count = g_strdup_printf (ngettext ("%u of %u device", "%u of %u devices", total), shown, total);
  gtk_label_set_label (self->count_label, count);

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "devices.clear-filters",
                                 !fl_fleet_filter_is_empty (self->filter));
}

static void
filter_items_changed_cb (GListModel    *model,
                         guint          position,
                         guint          removed,
                         guint          added,
                         FlDevicesPage *self)
{
  if (removed != added)
    update_state (self);
}

static void
fleet_loaded_cb (FlFleet       *fleet,
                 GParamSpec    *pspec,
                 FlDevicesPage *self)
{
  update_state (self);
}

/* ---- controls ----------------------------------------------------------- */

static void
search_changed_cb (GtkSearchEntry *entry,
                   FlDevicesPage  *self)
{
  if (self->updating_controls)
    return;

  fl_fleet_filter_set_search (self->filter, gtk_editable_get_text (GTK_EDITABLE (entry)));
  update_state (self);
}

static void
stop_search_cb (GtkSearchEntry *entry,
                FlDevicesPage  *self)
{
  gtk_editable_set_text (GTK_EDITABLE (entry), "");
}

static void
search_activate_cb (GtkSearchEntry *entry,
                    FlDevicesPage  *self)
{
  /* Enter on a search with one result opens it. */
  if (g_list_model_get_n_items (G_LIST_MODEL (self->filter_model)) == 1)
    {
      g_autoptr (FlDevice) device = g_list_model_get_item (G_LIST_MODEL (self->filter_model), 0);

      g_signal_emit (self, signals[DEVICE_ACTIVATED], 0, device);
    }
}

static void
status_selected_cb (GtkDropDown   *dropdown,
                    GParamSpec    *pspec,
                    FlDevicesPage *self)
{
  guint selected = gtk_drop_down_get_selected (dropdown);

  if (self->updating_controls)
    return;

  fl_fleet_filter_set_status (self->filter,
                               selected < G_N_ELEMENTS (status_rows) ? status_rows[selected] : FL_FLEET_FILTER_ANY_STATUS);
  update_state (self);
}

static void
tag_selected_cb (GtkDropDown   *dropdown,
                 GParamSpec    *pspec,
                 FlDevicesPage *self)
{
  guint selected = gtk_drop_down_get_selected (dropdown);
  g_autoptr (GtkStringObject) item = NULL;

  if (self->updating_controls)
    return;

  /* Row 0 is "All tags". */
  if (selected != GTK_INVALID_LIST_POSITION && selected > 0)
    item = g_list_model_get_item (G_LIST_MODEL (self->tag_model), selected);

  fl_fleet_filter_set_tag (self->filter, item != NULL ? gtk_string_object_get_string (item) : NULL);
  update_state (self);
}

/* The tag list grows while the dropdown shows it: keep the chosen tag. */
static void
tags_changed_cb (GListModel    *model,
                 guint          position,
                 guint          removed,
                 guint          added,
                 FlDevicesPage *self)
{
  const char *tag = fl_fleet_filter_get_tag (self->filter);
  guint n = g_list_model_get_n_items (model);
  guint selected = 0;

  if (tag != NULL)
    for (guint i = 1; i < n; i++)
      {
        g_autoptr (GtkStringObject) item = g_list_model_get_item (model, i);

        if (g_strcmp0 (gtk_string_object_get_string (item), tag) == 0)
          {
            selected = i;
            break;
          }
      }

  self->updating_controls = TRUE;
  gtk_drop_down_set_selected (self->tag_dropdown, selected);
  self->updating_controls = FALSE;

  if (tag != NULL && selected == 0)
    fl_fleet_filter_set_tag (self->filter, NULL);
}

static void
row_activate_cb (GtkListView   *view,
                 guint          position,
                 FlDevicesPage *self)
{
  g_autoptr (FlDevice) device = g_list_model_get_item (G_LIST_MODEL (self->filter_model), position);

  if (device != NULL)
    g_signal_emit (self, signals[DEVICE_ACTIVATED], 0, device);
}

static void
clear_filters_action (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  fl_devices_page_clear_filters (FL_DEVICES_PAGE (widget));
}

static void
focus_search_action (GtkWidget  *widget,
                     const char *action_name,
                     GVariant   *parameter)
{
  fl_devices_page_focus_search (FL_DEVICES_PAGE (widget));
}

/* ---- narrow layout -------------------------------------------------------- */

/* The rows adapt by themselves; the filters go on two lines. */
static void
apply_narrow (FlDevicesPage *self)
{
  gtk_orientable_set_orientation (GTK_ORIENTABLE (self->filter_box),
                                  self->narrow ? GTK_ORIENTATION_VERTICAL : GTK_ORIENTATION_HORIZONTAL);
}

static gboolean
narrow_idle_cb (gpointer user_data)
{
  FlDevicesPage *self = user_data;

  self->narrow_idle = 0;
  apply_narrow (self);

  return G_SOURCE_REMOVE;
}

static void
fl_devices_page_measure (GtkWidget      *widget,
                         GtkOrientation  orientation,
                         int             for_size,
                         int            *minimum,
                         int            *natural,
                         int            *minimum_baseline,
                         int            *natural_baseline)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (widget);

  gtk_widget_measure (self->box, orientation, for_size, minimum, natural, minimum_baseline, natural_baseline);
  /* Narrow mode is entered from the allocation: never ask for more
   * than a phone's width. */
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    *minimum = MIN (*minimum, 360);
}

static void
fl_devices_page_size_allocate (GtkWidget *widget,
                               int        width,
                               int        height,
                               int        baseline)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (widget);
  gboolean narrow = width < FL_DEVICE_ROW_NARROW_WIDTH;

  /* Changing the filter box during an allocation would relayout within it:
   * apply on the next idle (one frame later). */
  if (narrow != self->narrow)
    {
      self->narrow = narrow;
      if (self->narrow_idle == 0)
        self->narrow_idle = g_idle_add_full (G_PRIORITY_HIGH_IDLE, narrow_idle_cb, self, NULL);
    }

  gtk_widget_allocate (self->box, width, height, baseline, NULL);
}

/* ---- public ------------------------------------------------------------------ */

static void
set_fleet (FlDevicesPage *self,
           FlFleet       *fleet)
{
  GtkStringList *all_tags;

  g_return_if_fail (self->fleet == NULL);

  self->fleet = g_object_ref (fleet);
  fl_fleet_filter_model_set_base (self->filter_model, fl_fleet_get_by_name (fleet));

  all_tags = gtk_string_list_new ((const char *[]) { _("All tags"), NULL });
  g_list_store_append (self->tag_sections, all_tags);
  g_list_store_append (self->tag_sections, fl_fleet_get_tags (fleet));
  g_object_unref (all_tags);

  g_signal_connect_object (fleet, "devices-changed", G_CALLBACK (devices_changed_cb), self, 0);
  g_signal_connect_object (fleet, "notify::loaded", G_CALLBACK (fleet_loaded_cb), self, 0);
  g_signal_connect_object (self->tag_model, "items-changed", G_CALLBACK (tags_changed_cb), self, 0);

  update_state (self);
}

GtkWidget *
fl_devices_page_new (FlFleet *fleet)
{
  g_return_val_if_fail (FL_IS_FLEET (fleet), NULL);

  return g_object_new (FL_TYPE_DEVICES_PAGE, "fleet", fleet, NULL);
}

FlFleet *
fl_devices_page_get_fleet (FlDevicesPage *self)
{
  g_return_val_if_fail (FL_IS_DEVICES_PAGE (self), NULL);

  return self->fleet;
}

FlFleetFilter *
fl_devices_page_get_filter (FlDevicesPage *self)
{
  g_return_val_if_fail (FL_IS_DEVICES_PAGE (self), NULL);

  return self->filter;
}

GListModel *
fl_devices_page_get_model (FlDevicesPage *self)
{
  g_return_val_if_fail (FL_IS_DEVICES_PAGE (self), NULL);

  return G_LIST_MODEL (self->filter_model);
}

void
fl_devices_page_focus_search (FlDevicesPage *self)
{
  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
  gtk_editable_select_region (GTK_EDITABLE (self->search_entry), 0, -1);
}

void
fl_devices_page_set_search (FlDevicesPage *self,
                            const char    *text)
{
  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), text ? text : "");
  /* now, not after the entry's search delay */
  fl_fleet_filter_set_search (self->filter, text);
  update_state (self);
}

void
fl_devices_page_set_status (FlDevicesPage *self,
                            int            status)
{
  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  for (guint i = 0; i < G_N_ELEMENTS (status_rows); i++)
    if (status_rows[i] == status)
      {
        gtk_drop_down_set_selected (self->status_dropdown, i);
        return;
      }

  g_return_if_reached ();
}

void
fl_devices_page_set_tag (FlDevicesPage *self,
                         const char    *tag)
{
  guint n;

  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  if (tag == NULL)
    {
      gtk_drop_down_set_selected (self->tag_dropdown, 0);
      return;
    }

  n = g_list_model_get_n_items (G_LIST_MODEL (self->tag_model));
  for (guint i = 1; i < n; i++)
    {
      g_autoptr (GtkStringObject) item = g_list_model_get_item (G_LIST_MODEL (self->tag_model), i);

      if (g_strcmp0 (gtk_string_object_get_string (item), tag) == 0)
        {
          gtk_drop_down_set_selected (self->tag_dropdown, i);
          return;
        }
    }

  /* A tag no device has: nothing matches. */
  fl_fleet_filter_set_tag (self->filter, tag);
  update_state (self);
}

static guint
tag_row (FlDevicesPage *self,
         const char    *tag)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->tag_model));

  if (tag == NULL)
    return 0;

  for (guint i = 1; i < n; i++)
    {
      g_autoptr (GtkStringObject) item = g_list_model_get_item (G_LIST_MODEL (self->tag_model), i);

      if (g_strcmp0 (gtk_string_object_get_string (item), tag) == 0)
        return i;
    }

  return GTK_INVALID_LIST_POSITION;
}

void
fl_devices_page_set_filters (FlDevicesPage *self,
                             const char    *search,
                             int            status,
                             const char    *tag)
{
  guint status_index = 0, tag_index;

  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  for (guint i = 0; i < G_N_ELEMENTS (status_rows); i++)
    if (status_rows[i] == status)
      status_index = i;
  tag_index = tag_row (self, tag);

  /* the controls show it, the filter changes once */
  self->updating_controls = TRUE;
  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), search ? search : "");
  gtk_drop_down_set_selected (self->status_dropdown, status_index);
  gtk_drop_down_set_selected (self->tag_dropdown, tag_index == GTK_INVALID_LIST_POSITION ? 0 : tag_index);
  self->updating_controls = FALSE;

  fl_fleet_filter_set (self->filter, search, status, tag);
  update_state (self);
}

void
fl_devices_page_clear_filters (FlDevicesPage *self)
{
  g_return_if_fail (FL_IS_DEVICES_PAGE (self));

  fl_devices_page_set_filters (self, NULL, FL_FLEET_FILTER_ANY_STATUS, NULL);
}

const char *
fl_devices_page_get_state (FlDevicesPage *self)
{
  g_return_val_if_fail (FL_IS_DEVICES_PAGE (self), NULL);

  return gtk_stack_get_visible_child_name (self->stack);
}

gboolean
fl_devices_page_get_narrow (FlDevicesPage *self)
{
  g_return_val_if_fail (FL_IS_DEVICES_PAGE (self), FALSE);

  return self->narrow;
}

/* ---- GObject ----------------------------------------------------------------- */

static void
fl_devices_page_dispose (GObject *object)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (object);

  g_clear_handle_id (&self->last_seen_source, g_source_remove);
  g_clear_handle_id (&self->narrow_idle, g_source_remove);

  gtk_widget_dispose_template (GTK_WIDGET (self), FL_TYPE_DEVICES_PAGE);
  self->box = NULL;

  if (self->tag_model != NULL)
    g_signal_handlers_disconnect_by_data (self->tag_model, self);
  if (self->filter_model != NULL)
    g_signal_handlers_disconnect_by_data (self->filter_model, self);

  g_clear_object (&self->selection);
  g_clear_object (&self->slots);
  g_clear_object (&self->filter_model);
  g_clear_object (&self->filter);
  g_clear_object (&self->tag_model);
  g_clear_object (&self->tag_sections);
  g_clear_object (&self->fleet);

  G_OBJECT_CLASS (fl_devices_page_parent_class)->dispose (object);
}

static void
fl_devices_page_finalize (GObject *object)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (object);

  g_clear_pointer (&self->bound, g_hash_table_unref);

  G_OBJECT_CLASS (fl_devices_page_parent_class)->finalize (object);
}

static void
fl_devices_page_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (object);

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
fl_devices_page_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  FlDevicesPage *self = FL_DEVICES_PAGE (object);

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
fl_devices_page_class_init (FlDevicesPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_devices_page_dispose;
  object_class->finalize = fl_devices_page_finalize;
  object_class->get_property = fl_devices_page_get_property;
  object_class->set_property = fl_devices_page_set_property;

  widget_class->measure = fl_devices_page_measure;
  widget_class->size_allocate = fl_devices_page_size_allocate;

  properties[PROP_FLEET] =
    g_param_spec_object ("fleet", NULL, NULL, FL_TYPE_FLEET,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlDevicesPage::device-activated:
   * @device: the device whose row was activated
   */
  signals[DEVICE_ACTIVATED] =
    g_signal_new ("device-activated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, FL_TYPE_DEVICE);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/fieldline/Fieldline/fl-devices-page.ui");
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, box);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, filter_box);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, search_entry);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, status_dropdown);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, tag_dropdown);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, stack);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, header_box);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, list_view);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, count_label);
  gtk_widget_class_bind_template_child (widget_class, FlDevicesPage, loading_spinner);
  gtk_widget_class_bind_template_callback (widget_class, search_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, stop_search_cb);
  gtk_widget_class_bind_template_callback (widget_class, search_activate_cb);
  gtk_widget_class_bind_template_callback (widget_class, status_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, tag_selected_cb);
  gtk_widget_class_bind_template_callback (widget_class, row_activate_cb);
  gtk_widget_class_bind_template_callback (widget_class, row_setup_cb);
  gtk_widget_class_bind_template_callback (widget_class, row_bind_cb);
  gtk_widget_class_bind_template_callback (widget_class, row_unbind_cb);

  gtk_widget_class_install_action (widget_class, "devices.clear-filters", NULL, clear_filters_action);
  gtk_widget_class_install_action (widget_class, "devices.focus-search", NULL, focus_search_action);

  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_GROUP);
}

static void
fl_devices_page_init (FlDevicesPage *self)
{
  self->bound = g_hash_table_new (NULL, NULL);

  g_type_ensure (FL_TYPE_FLEET_FILTER);
  gtk_widget_init_template (GTK_WIDGET (self));
  /* the names the .ui gives the dropdowns, for the buttons keyboard focus lands on */
  fl_a11y_name_inner_buttons (GTK_WIDGET (self->status_dropdown), _("Status filter"));
  fl_a11y_name_inner_buttons (GTK_WIDGET (self->tag_dropdown), _("Tag filter"));

  self->filter = fl_fleet_filter_new ();
  /* The fleet's own name order (a GtkSortListModel took 200 ms to sort
   * 100,000 devices and doubled the cost of each filter change), filtered
   * over a compact index of keys (a GtkFilterListModel, reading each of
   * the 100,000 devices, took 35-50 ms a change). */
  self->filter_model = fl_fleet_filter_model_new (NULL, self->filter);
  self->slots = G_LIST_MODEL (fl_slot_model_new (G_LIST_MODEL (self->filter_model), GTK_WIDGET (self->list_view)));
  self->selection = gtk_no_selection_new (g_object_ref (self->slots));
  gtk_list_view_set_model (self->list_view, GTK_SELECTION_MODEL (self->selection));
  gtk_box_append (self->header_box, fl_device_row_new_header ());
  g_signal_connect (self->filter_model, "items-changed", G_CALLBACK (filter_items_changed_cb), self);

  self->tag_sections = g_list_store_new (G_TYPE_LIST_MODEL);
  self->tag_model = gtk_flatten_list_model_new (G_LIST_MODEL (g_object_ref (self->tag_sections)));
  gtk_drop_down_set_expression (self->tag_dropdown,
                                gtk_property_expression_new (GTK_TYPE_STRING_OBJECT, NULL, "string"));
  gtk_drop_down_set_model (self->tag_dropdown, G_LIST_MODEL (self->tag_model));

  gtk_search_entry_set_key_capture_widget (self->search_entry, GTK_WIDGET (self->list_view));

  self->last_seen_source = g_timeout_add_seconds (LAST_SEEN_REFRESH, refresh_last_seen_cb, self);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "devices.clear-filters", FALSE);
}
