/* fl-fleet-filter-model.c: FlDevices filtered over a compact index.
 *
 * entries[] has one Entry per base position: the device's status and
 * where its key (fl_fleet_filter_append_key()) is in arena.  A refilter
 * walks entries[] and the arena in order; matches[] holds the matching
 * base positions, ascending (NULL while the filter lets everything
 * through).  A base items-changed replaces the entries of its range (their
 * keys are rebuilt; the old ones are garbage, reclaimed by compaction)
 * and the matches in it.
 */
#define G_LOG_DOMAIN "fl-fleet-filter-model"

#include "config.h"

#include <string.h>

#include "fl-fleet-filter-model.h"

#define UNBUILT        G_MAXUINT32
#define BUILD_SLICE_US 4000
/* Compact when more than half the arena, and at least this, is garbage. */
#define COMPACT_MIN    (1 << 20)

typedef struct
{
  guint32 key;     /* offset of the key in arena, or UNBUILT */
  guint32 tags;    /* offset of its tags part from key */
  guint8  status;
} Entry;

struct _FlFleetFilterModel
{
  GObject         parent_instance;

  GListModel     *base;
  FlFleetFilter *filter;
  GArray         *entries;   /* Entry */
  GString        *arena;
  gsize           garbage;   /* bytes of arena no entry points to */
  guint           n_unbuilt;
  guint           build_next;
  guint           build_source;
  GArray         *matches;   /* guint32, or NULL: everything */
};

static void fl_fleet_filter_model_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (FlFleetFilterModel, fl_fleet_filter_model, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, fl_fleet_filter_model_list_model_init))

/* ---- GListModel ------------------------------------------------------------- */

static GType
fl_fleet_filter_model_get_item_type (GListModel *model)
{
  return FL_TYPE_DEVICE;
}

static guint
fl_fleet_filter_model_get_n_items (GListModel *model)
{
  FlFleetFilterModel *self = FL_FLEET_FILTER_MODEL (model);

  return self->matches != NULL ? self->matches->len : self->entries->len;
}

static gpointer
fl_fleet_filter_model_get_item (GListModel *model,
                                 guint       position)
{
  FlFleetFilterModel *self = FL_FLEET_FILTER_MODEL (model);

  if (self->base == NULL)
    return NULL;

  if (self->matches != NULL)
    {
      if (position >= self->matches->len)
        return NULL;
      position = g_array_index (self->matches, guint32, position);
    }

  return g_list_model_get_item (self->base, position);
}

static void
fl_fleet_filter_model_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = fl_fleet_filter_model_get_item_type;
  iface->get_n_items = fl_fleet_filter_model_get_n_items;
  iface->get_item = fl_fleet_filter_model_get_item;
}

/* ---- the index ----------------------------------------------------------------- */

static gsize
entry_size (FlFleetFilterModel *self,
            const Entry         *e)
{
  const char *key = self->arena->str + e->key;

  return e->tags + strlen (key + e->tags) + 1;
}

static void
build_entry (FlFleetFilterModel *self,
             guint                position)
{
  Entry *e = &g_array_index (self->entries, Entry, position);
  g_autoptr (FlDevice) device = NULL;

  if (e->key != UNBUILT)
    return;

  device = g_list_model_get_item (self->base, position);
  g_return_if_fail (FL_IS_DEVICE (device));
  g_return_if_fail (self->arena->len < UNBUILT);

  e->key = self->arena->len;
  e->tags = fl_fleet_filter_append_key (device, self->arena);
  e->status = fl_device_get_status (device);
  self->n_unbuilt--;
}

void
fl_fleet_filter_model_build_keys (FlFleetFilterModel *self)
{
  g_return_if_fail (FL_IS_FLEET_FILTER_MODEL (self));

  for (guint i = 0; self->n_unbuilt > 0 && i < self->entries->len; i++)
    build_entry (self, i);

  g_clear_handle_id (&self->build_source, g_source_remove);
}

guint
fl_fleet_filter_model_get_n_keys (FlFleetFilterModel *self)
{
  g_return_val_if_fail (FL_IS_FLEET_FILTER_MODEL (self), 0);

  return self->entries->len - self->n_unbuilt;
}

/* Keys are built a slice at a time, so a list of 100,000 shows at once
 * and its first search does not wait for them. */
static gboolean
build_idle_cb (gpointer user_data)
{
  FlFleetFilterModel *self = user_data;
  gint64 deadline = g_get_monotonic_time () + BUILD_SLICE_US;

  while (self->n_unbuilt > 0)
    {
      if (self->build_next >= self->entries->len)
        self->build_next = 0;
      build_entry (self, self->build_next++);
      if ((self->build_next & 255) == 0 && g_get_monotonic_time () > deadline)
        return G_SOURCE_CONTINUE;
    }

  self->build_source = 0;
  return G_SOURCE_REMOVE;
}

static void
schedule_build (FlFleetFilterModel *self)
{
  if (self->n_unbuilt > 0 && self->build_source == 0)
    self->build_source = g_idle_add_full (G_PRIORITY_LOW, build_idle_cb, self, NULL);
}

/* Copies the live keys into a new arena (in list order). */
static void
maybe_compact (FlFleetFilterModel *self)
{
  GString *arena;

  if (self->garbage < COMPACT_MIN || self->garbage < self->arena->len / 2)
    return;

  arena = g_string_sized_new (self->arena->len - self->garbage + 1024);
  for (guint i = 0; i < self->entries->len; i++)
    {
      Entry *e = &g_array_index (self->entries, Entry, i);
      gsize size;

      if (e->key == UNBUILT)
        continue;
      size = entry_size (self, e);
      g_string_append_len (arena, self->arena->str + e->key, size);
      e->key = arena->len - size;
    }

  g_string_free (self->arena, TRUE);
  self->arena = arena;
  self->garbage = 0;
}

static inline gboolean
match_entry (FlFleetFilterModel *self,
             guint                position)
{
  const Entry *e = &g_array_index (self->entries, Entry, position);
  const char *key = self->arena->str + e->key;

  return fl_fleet_filter_match_key (self->filter, e->status, key, key + e->tags);
}

/* ---- following the base ------------------------------------------------------- */

static guint
lower_bound (GArray *matches,
             guint32 position)
{
  guint lo = 0, hi = matches->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;

      if (g_array_index (matches, guint32, mid) < position)
        lo = mid + 1;
      else
        hi = mid;
    }

  return lo;
}

static void
base_items_changed_cb (GListModel          *base,
                       guint                position,
                       guint                removed,
                       guint                added,
                       FlFleetFilterModel *self)
{
  static const Entry unbuilt = { UNBUILT, 0, 0 };
  g_autoptr (GArray) found = NULL;
  guint lo, hi;
  int delta = (int) added - (int) removed;

  /* the index */
  for (guint i = position; i < position + removed; i++)
    {
      Entry *e = &g_array_index (self->entries, Entry, i);

      if (e->key == UNBUILT)
        self->n_unbuilt--;
      else
        self->garbage += entry_size (self, e);
    }
  g_array_remove_range (self->entries, position, removed);
  if (added > 0)
    {
      g_autofree Entry *fresh = g_new (Entry, added);

      for (guint i = 0; i < added; i++)
        fresh[i] = unbuilt;
      g_array_insert_vals (self->entries, position, fresh, added);
    }
  self->n_unbuilt += added;

  if (self->matches == NULL)
    {
      g_list_model_items_changed (G_LIST_MODEL (self), position, removed, added);
      schedule_build (self);
      maybe_compact (self);
      return;
    }

  /* the matches in the range: looked at again (their keys built now) */
  lo = lower_bound (self->matches, position);
  hi = lower_bound (self->matches, position + removed);
  for (guint k = hi; k < self->matches->len; k++)
    g_array_index (self->matches, guint32, k) += delta;

  found = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint32 p = position; p < position + added; p++)
    {
      build_entry (self, p);
      if (match_entry (self, p))
        g_array_append_val (found, p);
    }

  g_array_remove_range (self->matches, lo, hi - lo);
  g_array_insert_vals (self->matches, lo, found->data, found->len);

  if (hi - lo > 0 || found->len > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), lo, hi - lo, found->len);
  schedule_build (self);
  maybe_compact (self);
}

/* ---- following the filter -------------------------------------------------------- */

static inline guint32
nth (GArray *matches,
     guint   i)
{
  return matches != NULL ? g_array_index (matches, guint32, i) : i;
}

static void
refilter (FlFleetFilterModel *self,
          GtkFilterChange      change)
{
  GArray *old = self->matches;
  GArray *matches = NULL;
  guint old_n = old != NULL ? old->len : self->entries->len;
  guint new_n, prefix = 0, suffix = 0;

  if (!fl_fleet_filter_is_empty (self->filter))
    {
      fl_fleet_filter_model_build_keys (self);

      matches = g_array_sized_new (FALSE, FALSE, sizeof (guint32), 1024);
      if (change == GTK_FILTER_CHANGE_MORE_STRICT && old != NULL)
        {
          /* only what matched may still match */
          for (guint i = 0; i < old->len; i++)
            {
              guint32 p = g_array_index (old, guint32, i);

              if (match_entry (self, p))
                g_array_append_val (matches, p);
            }
        }
      else
        {
          for (guint32 p = 0; p < self->entries->len; p++)
            if (match_entry (self, p))
              g_array_append_val (matches, p);
        }
    }

  self->matches = matches;
  new_n = matches != NULL ? matches->len : self->entries->len;

  /* one items-changed for what differs between the ends */
  while (prefix < old_n && prefix < new_n && nth (old, prefix) == nth (matches, prefix))
    prefix++;
  while (suffix < old_n - prefix && suffix < new_n - prefix &&
         nth (old, old_n - 1 - suffix) == nth (matches, new_n - 1 - suffix))
    suffix++;

  if (old != NULL)
    g_array_unref (old);

  if (old_n - prefix - suffix > 0 || new_n - prefix - suffix > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), prefix, old_n - prefix - suffix, new_n - prefix - suffix);
}

static void
filter_changed_cb (GtkFilter           *filter,
                   GtkFilterChange      change,
                   FlFleetFilterModel *self)
{
  refilter (self, change);
}

/* ---- public ------------------------------------------------------------------------- */

void
fl_fleet_filter_model_set_base (FlFleetFilterModel *self,
                                 GListModel          *base)
{
  guint old_n, n;

  g_return_if_fail (FL_IS_FLEET_FILTER_MODEL (self));
  g_return_if_fail (base == NULL || G_IS_LIST_MODEL (base));

  if (self->base == base)
    return;

  old_n = g_list_model_get_n_items (G_LIST_MODEL (self));

  if (self->base != NULL)
    g_signal_handlers_disconnect_by_data (self->base, self);
  g_set_object (&self->base, base);

  g_array_set_size (self->entries, 0);
  g_string_truncate (self->arena, 0);
  self->garbage = 0;
  self->build_next = 0;
  g_clear_pointer (&self->matches, g_array_unref);

  n = base != NULL ? g_list_model_get_n_items (base) : 0;
  g_array_set_size (self->entries, n);
  for (guint i = 0; i < n; i++)
    g_array_index (self->entries, Entry, i).key = UNBUILT;
  self->n_unbuilt = n;

  if (base != NULL)
    g_signal_connect (base, "items-changed", G_CALLBACK (base_items_changed_cb), self);

  if (!fl_fleet_filter_is_empty (self->filter))
    {
      /* everything to nothing, then the matches */
      self->matches = g_array_new (FALSE, FALSE, sizeof (guint32));
      if (old_n > 0)
        g_list_model_items_changed (G_LIST_MODEL (self), 0, old_n, 0);
      refilter (self, GTK_FILTER_CHANGE_DIFFERENT);
    }
  else if (old_n > 0 || n > 0)
    g_list_model_items_changed (G_LIST_MODEL (self), 0, old_n, n);

  schedule_build (self);
}

GListModel *
fl_fleet_filter_model_get_base (FlFleetFilterModel *self)
{
  g_return_val_if_fail (FL_IS_FLEET_FILTER_MODEL (self), NULL);

  return self->base;
}

FlFleetFilter *
fl_fleet_filter_model_get_filter (FlFleetFilterModel *self)
{
  g_return_val_if_fail (FL_IS_FLEET_FILTER_MODEL (self), NULL);

  return self->filter;
}

/* ---- GObject ------------------------------------------------------------------- */

static void
fl_fleet_filter_model_dispose (GObject *object)
{
  FlFleetFilterModel *self = FL_FLEET_FILTER_MODEL (object);

  g_clear_handle_id (&self->build_source, g_source_remove);
  if (self->base != NULL)
    g_signal_handlers_disconnect_by_data (self->base, self);
  g_clear_object (&self->base);
  if (self->filter != NULL)
    g_signal_handlers_disconnect_by_data (self->filter, self);
  g_clear_object (&self->filter);

  G_OBJECT_CLASS (fl_fleet_filter_model_parent_class)->dispose (object);
}

static void
fl_fleet_filter_model_finalize (GObject *object)
{
  FlFleetFilterModel *self = FL_FLEET_FILTER_MODEL (object);

  g_clear_pointer (&self->entries, g_array_unref);
  g_clear_pointer (&self->matches, g_array_unref);
  if (self->arena != NULL)
    g_string_free (g_steal_pointer (&self->arena), TRUE);

  G_OBJECT_CLASS (fl_fleet_filter_model_parent_class)->finalize (object);
}

static void
fl_fleet_filter_model_class_init (FlFleetFilterModelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_fleet_filter_model_dispose;
  object_class->finalize = fl_fleet_filter_model_finalize;
}

static void
fl_fleet_filter_model_init (FlFleetFilterModel *self)
{
  self->entries = g_array_new (FALSE, FALSE, sizeof (Entry));
  self->arena = g_string_new (NULL);
}

FlFleetFilterModel *
fl_fleet_filter_model_new (GListModel     *base,
                            FlFleetFilter *filter)
{
  FlFleetFilterModel *self;

  g_return_val_if_fail (base == NULL || G_IS_LIST_MODEL (base), NULL);
  g_return_val_if_fail (FL_IS_FLEET_FILTER (filter), NULL);

  self = g_object_new (FL_TYPE_FLEET_FILTER_MODEL, NULL);
  self->filter = g_object_ref (filter);
  g_signal_connect (filter, "changed", G_CALLBACK (filter_changed_cb), self);
  fl_fleet_filter_model_set_base (self, base);

  return self;
}
