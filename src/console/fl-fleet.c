/* fl-fleet.c: the console's fleet model.
 *
 * The devices live in two arrays, by id (the fleet's own GListModel) and
 * by name (fl_fleet_get_by_name(), what the devices page lists), and a
 * hash table by id that holds their references.  A load from the cache
 * builds all three on a worker thread (the devices are nobody else's
 * yet); after that every change goes through apply_changes(), which turns
 * a batch of inserted, touched and removed devices into as few
 * items-changed signals per order as it can: one per cluster of changed
 * positions (a server page is one cluster in the id order: pages come in
 * id order), or one for all when the clusters are many.  Value changes
 * (battery, signal, last seen...) emit no items-changed at all, only one
 * "devices-changed" per batch, which the rows on screen watch: 10,000
 * events/s cost a hash lookup and a field update each.
 */
#define G_LOG_DOMAIN "fl-fleet"

#include "config.h"

#include <glib/gi18n.h>
#include <gtk/gtk.h>
#include <math.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "fl-event-stream.h"
#include "fl-fleet.h"

#define SYNC_PAGE_SIZE     1000
#define RETRY_MIN_MS       1000
#define RETRY_MAX_MS       60000
#define SAVE_INTERVAL_S    30
#define SAVE_CHUNK         500
/* Changed positions closer than this share one items-changed. */
#define RUN_GAP            64
/* Beyond this many clusters, one items-changed covers them all. */
#define MAX_RUNS           32
/* Unknown devices in a batch fetched one by one; more start a sync. */
#define MAX_SINGLE_FETCHES 16

/* ---- the name-ordered model ------------------------------------------------ */

#define FL_TYPE_FLEET_NAMES (fl_fleet_names_get_type ())
G_DECLARE_FINAL_TYPE (FlFleetNames, fl_fleet_names, FL, FLEET_NAMES, GObject)

struct _FlFleetNames
{
  GObject    parent_instance;
  GPtrArray *devices;  /* borrowed: the fleet's by_id holds the refs */
};

static GType
fl_fleet_names_get_item_type (GListModel *model)
{
  return FL_TYPE_DEVICE;
}

static guint
fl_fleet_names_get_n_items (GListModel *model)
{
  return FL_FLEET_NAMES (model)->devices->len;
}

static gpointer
fl_fleet_names_get_item (GListModel *model,
                         guint       position)
{
  FlFleetNames *self = FL_FLEET_NAMES (model);

  if (position >= self->devices->len)
    return NULL;

  return g_object_ref (g_ptr_array_index (self->devices, position));
}

static void
fl_fleet_names_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = fl_fleet_names_get_item_type;
  iface->get_n_items = fl_fleet_names_get_n_items;
  iface->get_item = fl_fleet_names_get_item;
}

G_DEFINE_FINAL_TYPE_WITH_CODE (FlFleetNames, fl_fleet_names, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, fl_fleet_names_list_model_init))

static void
fl_fleet_names_finalize (GObject *object)
{
  g_clear_pointer (&FL_FLEET_NAMES (object)->devices, g_ptr_array_unref);

  G_OBJECT_CLASS (fl_fleet_names_parent_class)->finalize (object);
}

static void
fl_fleet_names_class_init (FlFleetNamesClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_fleet_names_finalize;
}

static void
fl_fleet_names_init (FlFleetNames *self)
{
  self->devices = g_ptr_array_new ();
}

struct _FlFleet
{
  GObject        parent_instance;

  GPtrArray     *devices;  /* FlDevice, by id (strcmp); refs in by_id */
  FlFleetNames  *by_name;  /* the same, by name */
  GHashTable    *by_id;    /* id (the device's own string) -> FlDevice (ref) */
  GHashTable    *tag_set;  /* tag -> NULL */
  GtkStringList *tags;

  FlCache       *cache;
  FlSession     *session;
  FlClient      *client;
  char          *websocket_url;
  FlEventStream *stream;
  GCancellable  *cancellable;       /* everything; cancelled on stop */
  GCancellable  *sync_cancellable;

  gboolean       started;
  gboolean       loaded;
  gboolean       syncing;
  gboolean       online;
  gboolean       live;              /* the stream is connected */
  gboolean       stream_was_connected;
  gboolean       sync_pending;      /* the last sync failed: sync on reconnect */
  gint64         last_sync;
  gint64         last_seq;

  GHashTable    *sync_seen;         /* FlDevice set, during a sync */
  guint          retry_source;
  guint          retry_delay_ms;
  gint64         retry_due;         /* monotonic µs */

  GHashTable    *dirty;             /* FlDevice set, to save to the cache */
  guint          save_source;
  GHashTable    *fetching;          /* id set of single device fetches */
};

static void fl_fleet_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (FlFleet, fl_fleet, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, fl_fleet_list_model_init))

enum {
  PROP_0,
  PROP_ONLINE,
  PROP_SYNCING,
  PROP_LOADED,
  PROP_LAST_SYNC,
  PROP_LAST_SEQ,
  PROP_SYNC_FAILED,
  PROP_LIVE,
  PROP_N_ITEMS,
  N_PROPS
};

enum {
  DEVICES_CHANGED,
  EVENTS,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void sync_start (FlFleet *self);
static void stream_start (FlFleet *self);

/* ---- GListModel ------------------------------------------------------- */

static GType
fl_fleet_get_item_type (GListModel *model)
{
  return FL_TYPE_DEVICE;
}

static guint
fl_fleet_get_n_items (GListModel *model)
{
  return FL_FLEET (model)->devices->len;
}

static gpointer
fl_fleet_get_item (GListModel *model,
                   guint       position)
{
  FlFleet *self = FL_FLEET (model);

  if (position >= self->devices->len)
    return NULL;

  return g_object_ref (g_ptr_array_index (self->devices, position));
}

static void
fl_fleet_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = fl_fleet_get_item_type;
  iface->get_n_items = fl_fleet_get_n_items;
  iface->get_item = fl_fleet_get_item;
}

/* ---- small helpers ---------------------------------------------------- */

static int
compare_by_id (gconstpointer a,
               gconstpointer b)
{
  FlDevice *da = *(FlDevice **) a;
  FlDevice *db = *(FlDevice **) b;

  return strcmp (fl_device_get_device_id (da), fl_device_get_device_id (db));
}

/* The index of the first device whose id is >= id. */
static guint
lower_bound (GPtrArray  *devices,
             const char *id)
{
  guint lo = 0, hi = devices->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;

      if (strcmp (fl_device_get_device_id (g_ptr_array_index (devices, mid)), id) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }

  return lo;
}

static gboolean
same_double (double a,
             double b)
{
  return (isnan (a) && isnan (b)) || a == b;
}

static void
set_online (FlFleet  *self,
            gboolean  online)
{
  if (self->online == online)
    return;

  self->online = online;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ONLINE]);
}

static void
set_live (FlFleet  *self,
          gboolean  live)
{
  if (self->live == live)
    return;

  self->live = live;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LIVE]);
}

/* The fleet is as the server has it, now: after a sync, and up to the
 * moment a live stream (following a good sync) ends. */
static void
mark_in_sync (FlFleet *self)
{
  self->last_sync = g_get_real_time () / 1000;
  if (self->cache != NULL)
    fl_cache_set_last_sync (self->cache, self->last_sync);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_SYNC]);
}

static void
set_sync_pending (FlFleet  *self,
                  gboolean  pending)
{
  if (self->sync_pending == pending)
    return;

  self->sync_pending = pending;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SYNC_FAILED]);
}

static void
set_syncing (FlFleet  *self,
             gboolean  syncing)
{
  if (self->syncing == syncing)
    return;

  self->syncing = syncing;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SYNCING]);
}

static gboolean
is_network_error (const GError *error)
{
  return g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK) ||
         error->domain == G_IO_ERROR || error->domain == G_RESOLVER_ERROR ||
         error->domain == G_TLS_ERROR;
}

static void
report_error (FlFleet      *self,
              const GError *error)
{
  if (self->session != NULL)
    fl_session_report_network_error (self->session, error);
  else if (is_network_error (error))
    set_online (self, FALSE);
}

static void
report_success (FlFleet *self)
{
  if (self->session != NULL)
    fl_session_report_success (self->session);
  else
    set_online (self, TRUE);
}

/* ---- tags ------------------------------------------------------------- */

typedef struct
{
  const char *tag;
  char       *key;  /* g_utf8_collate_key () */
} TagKey;

static int
compare_tag_keys (gconstpointer a,
                  gconstpointer b)
{
  return strcmp (((const TagKey *) a)->key, ((const TagKey *) b)->key);
}

static void
add_tags (FlFleet  *self,
          FlDevice *device,
          gboolean *added)
{
  const char * const *tags = fl_device_get_tags (device);

  for (guint i = 0; tags != NULL && tags[i] != NULL; i++)
    if (!g_hash_table_contains (self->tag_set, tags[i]))
      {
        g_hash_table_add (self->tag_set, g_strdup (tags[i]));
        *added = TRUE;
      }
}

/* Tags are only added: a tag no device has any more stays in the list
 * (and matches nothing) until the next start.  Sorted by collation keys
 * (a g_utf8_collate() per comparison took ~30 ms for 3,000 tags). */
static void
publish_tags (FlFleet *self)
{
  g_autofree const char **tags = NULL;
  g_autofree TagKey *keys = NULL;
  g_autofree const char **sorted = NULL;
  guint n = 0;

  tags = (const char **) g_hash_table_get_keys_as_array (self->tag_set, &n);
  keys = g_new (TagKey, n);
  for (guint i = 0; i < n; i++)
    {
      keys[i].tag = tags[i];
      keys[i].key = g_utf8_collate_key (tags[i], -1);
    }
  qsort (keys, n, sizeof (TagKey), compare_tag_keys);

  sorted = g_new0 (const char *, n + 1);
  for (guint i = 0; i < n; i++)
    {
      sorted[i] = keys[i].tag;
      g_free (keys[i].key);
    }
  gtk_string_list_splice (self->tags, 0, g_list_model_get_n_items (G_LIST_MODEL (self->tags)), sorted);
}

/* ---- the two orders ------------------------------------------------------ */

/* Names order: case-insensitive (ASCII, no allocation), then id.  The
 * same order as the folded keys the loader sorts by. */
static int
compare_names (FlDevice *a,
               FlDevice *b)
{
  const char *na = fl_device_get_name (a);
  const char *nb = fl_device_get_name (b);
  int cmp = g_ascii_strcasecmp (na ? na : "", nb ? nb : "");

  return cmp != 0 ? cmp : strcmp (fl_device_get_device_id (a), fl_device_get_device_id (b));
}

static int
compare_names_p (gconstpointer a,
                 gconstpointer b)
{
  return compare_names (*(FlDevice **) a, *(FlDevice **) b);
}

/* The first index of array (in name order) not before device. */
static guint
lower_bound_name (GPtrArray *array,
                  FlDevice  *device)
{
  guint lo = 0, hi = array->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;

      if (compare_names (g_ptr_array_index (array, mid), device) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }

  return lo;
}

/* device's index in array, by a search in its order, else by a scan. */
static guint
find_device (GPtrArray *array,
             FlDevice  *device,
             gboolean   by_name)
{
  guint pos = by_name ? lower_bound_name (array, device) : lower_bound (array, fl_device_get_device_id (device));

  if (pos < array->len && g_ptr_array_index (array, pos) == device)
    return pos;

  for (guint i = 0; i < array->len; i++)
    if (g_ptr_array_index (array, i) == device)
      {
        g_debug ("Device %s out of place in the %s order", fl_device_get_device_id (device), by_name ? "name" : "id");
        return i;
      }

  return G_MAXUINT;
}

/* ---- splicing an order -------------------------------------------------------- */

typedef enum {
  EDIT_INSERT,  /* device goes before the old entry at pos */
  EDIT_REMOVE,  /* the old entry at pos goes */
  EDIT_TOUCH,   /* the old entry at pos stays; its filter keys changed */
} EditKind;

typedef struct
{
  guint     pos;
  EditKind  kind;
  guint     seq;     /* inserts at one pos keep their order */
  FlDevice *device;
} Edit;

typedef struct
{
  guint old_start, old_end;  /* in the old array */
  guint new_start, new_end;  /* in the new array */
} Run;

static int
compare_edits (gconstpointer a,
               gconstpointer b)
{
  const Edit *ea = a, *eb = b;

  if (ea->pos != eb->pos)
    return ea->pos < eb->pos ? -1 : 1;
  if ((ea->kind == EDIT_INSERT) != (eb->kind == EDIT_INSERT))
    return ea->kind == EDIT_INSERT ? -1 : 1;
  return ea->seq < eb->seq ? -1 : ea->seq > eb->seq ? 1 : 0;
}

/* Applies edits to *array_p and tells model: one items-changed per
 * cluster of edits (edits less than RUN_GAP entries apart share one), or
 * one for all when the clusters are more than MAX_RUNS.  Between two
 * signals the array is always what the signals so far describe. */
static void
splice_edits (GListModel  *model,
              GPtrArray  **array_p,
              GArray      *edits)
{
  GPtrArray *old = *array_p;
  g_autoptr (GPtrArray) merged = NULL;
  g_autoptr (GArray) runs = NULL;
  gboolean in_run = FALSE;
  Run run = { 0, };
  guint oi = 0;
  int delta = 0;

  if (edits->len == 0)
    return;

  g_array_sort (edits, compare_edits);
  merged = g_ptr_array_sized_new (old->len + edits->len);
  runs = g_array_new (FALSE, FALSE, sizeof (Run));

  for (guint k = 0; k < edits->len; k++)
    {
      Edit *e = &g_array_index (edits, Edit, k);

      if (e->kind != EDIT_INSERT && e->pos < oi)
        continue;  /* that entry was edited already */

      while (oi < e->pos && oi < old->len)
        g_ptr_array_add (merged, g_ptr_array_index (old, oi++));

      if (in_run && e->pos >= run.old_end + RUN_GAP)
        {
          g_array_append_val (runs, run);
          in_run = FALSE;
        }
      if (!in_run)
        {
          run.old_start = run.old_end = e->pos;
          run.new_start = e->pos + delta;
          in_run = TRUE;
        }

      switch (e->kind)
        {
        case EDIT_INSERT:
          g_ptr_array_add (merged, e->device);
          delta++;
          break;
        case EDIT_REMOVE:
          oi++;
          delta--;
          run.old_end = e->pos + 1;
          break;
        case EDIT_TOUCH:
          g_ptr_array_add (merged, g_ptr_array_index (old, oi++));
          run.old_end = e->pos + 1;
          break;
        default:
          g_assert_not_reached ();
        }
      run.new_end = run.old_end + delta;
    }
  while (oi < old->len)
    g_ptr_array_add (merged, g_ptr_array_index (old, oi++));
  if (in_run)
    g_array_append_val (runs, run);

  if (runs->len > MAX_RUNS)
    {
      Run all = { g_array_index (runs, Run, 0).old_start, g_array_index (runs, Run, runs->len - 1).old_end,
                  g_array_index (runs, Run, 0).new_start, g_array_index (runs, Run, runs->len - 1).new_end };

      g_array_set_size (runs, 0);
      g_array_append_val (runs, all);
    }

  if (runs->len == 1)
    {
      Run *r = &g_array_index (runs, Run, 0);

      *array_p = g_steal_pointer (&merged);
      g_list_model_items_changed (model, r->old_start, r->old_end - r->old_start, r->new_end - r->new_start);
      g_ptr_array_unref (old);
      return;
    }

  /* From the last run to the first: the positions before a run are still
   * the old ones when it is emitted. */
  {
    GPtrArray *current = old;

    for (guint r = runs->len; r-- > 0;)
      {
        Run *run_r = &g_array_index (runs, Run, r);
        GPtrArray *next = g_ptr_array_sized_new (current->len - (run_r->old_end - run_r->old_start) +
                                                 (run_r->new_end - run_r->new_start));

        for (guint k = 0; k < run_r->old_start; k++)
          g_ptr_array_add (next, g_ptr_array_index (current, k));
        for (guint k = run_r->new_start; k < run_r->new_end; k++)
          g_ptr_array_add (next, g_ptr_array_index (merged, k));
        for (guint k = run_r->old_end; k < current->len; k++)
          g_ptr_array_add (next, g_ptr_array_index (current, k));

        *array_p = next;
        g_list_model_items_changed (model, run_r->old_start,
                                    run_r->old_end - run_r->old_start, run_r->new_end - run_r->new_start);
        g_ptr_array_unref (current);
        current = next;
      }
  }
}

static void
add_edit (GArray    *edits,
          guint      pos,
          EditKind   kind,
          FlDevice  *device)
{
  Edit e = { pos, kind, edits->len, device };

  if (pos != G_MAXUINT)
    g_array_append_val (edits, e);
}

/* The changes of one batch, applied to both orders. */
typedef struct
{
  GPtrArray  *inserts;  /* new devices (refs), any order */
  GHashTable *touched;  /* known devices whose status, model or tags changed */
  GPtrArray  *renamed;  /* known devices renamed: already out of the name order */
  GHashTable *removed;  /* devices to drop */
} Changes;

static void
changes_clear (Changes *c)
{
  g_clear_pointer (&c->inserts, g_ptr_array_unref);
  g_clear_pointer (&c->touched, g_hash_table_unref);
  g_clear_pointer (&c->renamed, g_ptr_array_unref);
  g_clear_pointer (&c->removed, g_hash_table_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Changes, changes_clear)

static void
apply_changes (FlFleet *self,
               Changes *c)
{
  g_autoptr (GArray) id_edits = g_array_new (FALSE, FALSE, sizeof (Edit));
  g_autoptr (GArray) name_edits = g_array_new (FALSE, FALSE, sizeof (Edit));
  g_autoptr (GPtrArray) name_inserts = g_ptr_array_new ();
  gboolean tags_added = FALSE;
  guint n_before = self->devices->len;
  GHashTableIter iter;
  gpointer device;

  /* new devices: into by_id (which holds the references) */
  if (c->inserts != NULL)
    {
      g_ptr_array_sort (c->inserts, compare_by_id);
      for (guint i = 0; i < c->inserts->len; i++)
        {
          FlDevice *d = g_ptr_array_index (c->inserts, i);

          g_hash_table_insert (self->by_id, (gpointer) fl_device_get_device_id (d), g_object_ref (d));
          add_edit (id_edits, lower_bound (self->devices, fl_device_get_device_id (d)), EDIT_INSERT, d);
          g_ptr_array_add (name_inserts, d);
          add_tags (self, d, &tags_added);
        }
    }

  if (c->touched != NULL)
    {
      g_hash_table_iter_init (&iter, c->touched);
      while (g_hash_table_iter_next (&iter, &device, NULL))
        {
          add_edit (id_edits, find_device (self->devices, device, FALSE), EDIT_TOUCH, device);
          add_edit (name_edits, find_device (self->by_name->devices, device, TRUE), EDIT_TOUCH, device);
          add_tags (self, device, &tags_added);
        }
    }

  if (c->renamed != NULL)
    for (guint i = 0; i < c->renamed->len; i++)
      {
        FlDevice *d = g_ptr_array_index (c->renamed, i);

        add_edit (id_edits, find_device (self->devices, d, FALSE), EDIT_TOUCH, d);
        g_ptr_array_add (name_inserts, d);
        add_tags (self, d, &tags_added);
      }

  if (c->removed != NULL)
    {
      g_hash_table_iter_init (&iter, c->removed);
      while (g_hash_table_iter_next (&iter, &device, NULL))
        {
          add_edit (id_edits, find_device (self->devices, device, FALSE), EDIT_REMOVE, device);
          add_edit (name_edits, find_device (self->by_name->devices, device, TRUE), EDIT_REMOVE, device);
        }
    }

  /* inserts into the name order, in name order */
  g_ptr_array_sort (name_inserts, compare_names_p);
  for (guint i = 0; i < name_inserts->len; i++)
    {
      FlDevice *d = g_ptr_array_index (name_inserts, i);

      add_edit (name_edits, lower_bound_name (self->by_name->devices, d), EDIT_INSERT, d);
    }

  splice_edits (G_LIST_MODEL (self), &self->devices, id_edits);
  splice_edits (G_LIST_MODEL (self->by_name), &self->by_name->devices, name_edits);

  /* the references go last */
  if (c->removed != NULL)
    {
      g_hash_table_iter_init (&iter, c->removed);
      while (g_hash_table_iter_next (&iter, &device, NULL))
        {
          g_hash_table_remove (self->dirty, device);
          if (self->sync_seen != NULL)
            g_hash_table_remove (self->sync_seen, device);
          g_hash_table_remove (self->by_id, fl_device_get_device_id (device));
        }
    }

  if (tags_added)
    publish_tags (self);

  if (self->devices->len != n_before)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
}

/* Takes renamed devices out of the name order before their names change
 * (the search for them needs the old names). */
static void
take_out_of_name_order (FlFleet   *self,
                        GPtrArray *devices)
{
  g_autoptr (GArray) edits = g_array_new (FALSE, FALSE, sizeof (Edit));

  for (guint i = 0; i < devices->len; i++)
    {
      FlDevice *d = g_ptr_array_index (devices, i);

      add_edit (edits, find_device (self->by_name->devices, d, TRUE), EDIT_REMOVE, d);
    }

  splice_edits (G_LIST_MODEL (self->by_name), &self->by_name->devices, edits);
}

/* ---- loading: both orders built off the main thread ---------------------- */

typedef struct
{
  GPtrArray  *devices;   /* by id (borrowed; by_id has the refs) */
  GPtrArray  *by_name;   /* borrowed */
  GHashTable *by_id;     /* as FlFleet's */
  GHashTable *tag_set;
} Prepared;

static void
prepared_free (Prepared *p)
{
  g_clear_pointer (&p->devices, g_ptr_array_unref);
  g_clear_pointer (&p->by_name, g_ptr_array_unref);
  g_clear_pointer (&p->by_id, g_hash_table_unref);
  g_clear_pointer (&p->tag_set, g_hash_table_unref);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Prepared, prepared_free)

typedef struct
{
  const char *key;
  FlDevice   *device;
} NameKey;

static int
compare_name_keys (gconstpointer a,
                   gconstpointer b)
{
  return strcmp (((const NameKey *) a)->key, ((const NameKey *) b)->key);
}

/* The name order of p->devices, on a second thread while the first
 * builds the table by id and the tags.  strcmp over folded keys
 * "name\x01id" in one arena sorts 100,000 devices in ~15 ms (the same
 * order as compare_names()). */
static gpointer
sort_names_thread (gpointer data)
{
  Prepared *p = data;
  guint n = p->devices->len;
  g_autofree NameKey *keys = g_new (NameKey, n);
  g_autoptr (GString) arena = g_string_sized_new (n * 40);

  for (guint i = 0; i < n; i++)
    {
      FlDevice *d = g_ptr_array_index (p->devices, i);
      const char *name = fl_device_get_name (d);

      keys[i].key = GSIZE_TO_POINTER (arena->len);
      keys[i].device = d;
      for (const char *c = name ? name : ""; *c != '\0'; c++)
        g_string_append_c (arena, g_ascii_tolower (*c));
      g_string_append_c (arena, '\x01');
      g_string_append (arena, fl_device_get_device_id (d));
      g_string_append_c (arena, '\0');
    }
  for (guint i = 0; i < n; i++)
    keys[i].key = arena->str + GPOINTER_TO_SIZE (keys[i].key);
  qsort (keys, n, sizeof (NameKey), compare_name_keys);

  p->by_name = g_ptr_array_sized_new (n);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (p->by_name, keys[i].device);

  return NULL;
}

/* The table by id and the tags; FALSE when the devices are not in strict
 * id order (then nothing is done). */
static gboolean
build_index (Prepared *p)
{
  const char *previous = NULL;

  for (guint i = 0; i < p->devices->len; i++)
    {
      FlDevice *d = g_ptr_array_index (p->devices, i);
      const char *id = fl_device_get_device_id (d);
      const char * const *tags = fl_device_get_tags (d);

      if (previous != NULL && strcmp (previous, id) >= 0)
        {
          g_hash_table_remove_all (p->by_id);
          g_hash_table_remove_all (p->tag_set);
          return FALSE;
        }
      previous = id;

      g_hash_table_insert (p->by_id, (gpointer) id, g_object_ref (d));
      for (guint t = 0; tags != NULL && tags[t] != NULL; t++)
        if (!g_hash_table_contains (p->tag_set, tags[t]))
          g_hash_table_add (p->tag_set, g_strdup (tags[t]));
    }

  return TRUE;
}

/* Sorts devices (which nothing else sees yet) both ways, in two threads.
 * Thread-safe: it only reads them. */
static Prepared *
prepare_devices (GPtrArray *devices)
{
  g_autoptr (Prepared) p = g_new0 (Prepared, 1);
  GThread *names;
  gboolean in_order;

  /* borrowed: the caller keeps devices alive until the install */
  p->devices = g_ptr_array_sized_new (devices->len);
  if (devices->len > 0)
    g_ptr_array_extend (p->devices, devices, NULL, NULL);
  p->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_object_unref);
  p->tag_set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  /* The cache gives them in id order, without duplicates: assume so,
   * check while building the table, start again if not. */
  names = g_thread_new ("fl-fleet-names", sort_names_thread, p);
  in_order = build_index (p);
  g_thread_join (names);

  if (!in_order)
    {
      guint n = 0;

      g_ptr_array_sort (p->devices, compare_by_id);
      /* a duplicate id: the first stays */
      for (guint i = 0; i < p->devices->len; i++)
        if (n == 0 || strcmp (fl_device_get_device_id (p->devices->pdata[n - 1]),
                              fl_device_get_device_id (p->devices->pdata[i])) != 0)
          p->devices->pdata[n++] = p->devices->pdata[i];
      g_ptr_array_set_size (p->devices, n);

      g_clear_pointer (&p->by_name, g_ptr_array_unref);
      sort_names_thread (p);
      build_index (p);
    }

  return g_steal_pointer (&p);
}

/* Loading 100,000 devices leaves ~15 MB of freed buffers (the cache's
 * rows, the sort keys) in glibc's heaps; give the pages back. */
static void
release_memory (void)
{
#ifdef __GLIBC__
  malloc_trim (0);
#endif
}

/* task_data: the cache's array of devices, which this thread drops once
 * the table by id holds its own references (100,000 unrefs that need
 * not delay the first frame), with the garbage the load left. */
static void
prepare_thread (GTask        *task,
                gpointer      source,
                gpointer      task_data,
                GCancellable *cancellable)
{
  GPtrArray *devices = task_data;
  gint64 start = g_get_monotonic_time ();
  Prepared *p = prepare_devices (devices);

  g_ptr_array_unref (devices);
  release_memory ();
  g_debug ("%u devices sorted both ways in %.1f ms", p->devices->len, (g_get_monotonic_time () - start) / 1000.0);
  g_task_return_pointer (task, p, (GDestroyNotify) prepared_free);
}

/* Replaces everything with p's devices. */
static void
install_prepared (FlFleet  *self,
                  Prepared *p)
{
  GPtrArray *old_devices = self->devices;
  GPtrArray *old_names = self->by_name->devices;
  g_autoptr (GHashTable) old_by_id = self->by_id;
  g_autoptr (GHashTable) old_tags = self->tag_set;

  self->devices = g_steal_pointer (&p->devices);
  self->by_name->devices = g_steal_pointer (&p->by_name);
  self->by_id = g_steal_pointer (&p->by_id);
  self->tag_set = g_steal_pointer (&p->tag_set);
  g_hash_table_remove_all (self->dirty);

  /* the old objects stay alive (old_by_id) until the signals are out */
  g_list_model_items_changed (G_LIST_MODEL (self), 0, old_devices->len, self->devices->len);
  g_list_model_items_changed (G_LIST_MODEL (self->by_name), 0, old_names->len, self->by_name->devices->len);
  g_ptr_array_unref (old_devices);
  g_ptr_array_unref (old_names);

  publish_tags (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);
}

void
fl_fleet_set_devices (FlFleet   *self,
                      GPtrArray *devices)
{
  g_autoptr (Prepared) p = NULL;

  g_return_if_fail (FL_IS_FLEET (self));
  g_return_if_fail (devices != NULL);

  p = prepare_devices (devices);
  install_prepared (self, p);
}

/* ---- merging server records ------------------------------------------ */

enum {
  MERGE_VALUES = 1 << 0,  /* something a row shows */
  MERGE_STATUS = 1 << 1,  /* the status filter's input */
  MERGE_KEY    = 1 << 2,  /* name, model or tags: search and sort keys */
};

static gboolean
strv_equal (const char * const *a,
            const char * const *b)
{
  guint i;

  for (i = 0; a[i] != NULL && b[i] != NULL; i++)
    if (strcmp (a[i], b[i]) != 0)
      return FALSE;

  return a[i] == NULL && b[i] == NULL;
}

static void
copy_member (JsonObject *to,
             JsonObject *from,
             const char *name)
{
  JsonNode *node = json_object_get_member (from, name);

  if (node != NULL && !JSON_NODE_HOLDS_NULL (node))
    json_object_set_member (to, name, json_node_copy (node));
}

/* Copies src (a server record of the same device) into dst, through
 * FlDevice's own setters and validators.  Returns MERGE_* flags. */
static guint
merge_device (FlDevice *dst,
              FlDevice *src)
{
  guint flags = 0;
  gboolean dst_has_loc, src_has_loc;
  double dlat, dlon, dalt, slat, slon, salt;

  if (fl_device_get_status (dst) != fl_device_get_status (src))
    {
      fl_device_set_status (dst, fl_device_get_status (src));
      flags |= MERGE_STATUS | MERGE_VALUES;
    }

  /* The record's descriptive part changes with updatedAt. */
  if (fl_device_get_updated_at (dst) != fl_device_get_updated_at (src) ||
      g_strcmp0 (fl_device_get_name (dst), fl_device_get_name (src)) != 0 ||
      !strv_equal (fl_device_get_tags (dst), fl_device_get_tags (src)))
    {
      g_autoptr (JsonNode) node = fl_device_to_json_node (src);
      g_autoptr (JsonObject) update = json_object_new ();
      g_autoptr (GError) error = NULL;
      JsonObject *record = json_node_get_object (node);
      static const char *members[] = {
        "name", "type", "model", "manufacturer", "capabilities", "tags", "heartbeatTimeoutSec", "location",
      };

      for (guint i = 0; i < G_N_ELEMENTS (members); i++)
        copy_member (update, record, members[i]);

      if (!fl_device_update_from_json (dst, update, FALSE, &error))
        g_debug ("Device %s: the server's record does not apply: %s",
                 fl_device_get_device_id (dst), error->message);
      fl_device_set_updated_at (dst, fl_device_get_updated_at (src));
      fl_device_set_created_at (dst, fl_device_get_created_at (src));
      flags |= MERGE_KEY | MERGE_VALUES;
    }

  /* The reported part: battery, signal, location, firmware... */
  dst_has_loc = fl_device_get_location (dst, &dlat, &dlon, &dalt);
  src_has_loc = fl_device_get_location (src, &slat, &slon, &salt);
  if (!same_double (fl_device_get_battery (dst), fl_device_get_battery (src)) ||
      !same_double (fl_device_get_rssi (dst), fl_device_get_rssi (src)) ||
      (src_has_loc && (!dst_has_loc || dlat != slat || dlon != slon || dalt != salt)) ||
      g_strcmp0 (fl_device_get_firmware (dst), fl_device_get_firmware (src)) != 0 ||
      g_strcmp0 (fl_device_get_model (dst), fl_device_get_model (src)) != 0 ||
      g_strcmp0 (fl_device_get_manufacturer (dst), fl_device_get_manufacturer (src)) != 0)
    {
      g_autoptr (JsonObject) data = json_object_new ();

      if (!isnan (fl_device_get_battery (src)))
        json_object_set_double_member (data, "battery", fl_device_get_battery (src));
      if (!isnan (fl_device_get_rssi (src)))
        json_object_set_double_member (data, "rssi", fl_device_get_rssi (src));
      if (src_has_loc)
        {
          json_object_set_double_member (data, "lat", slat);
          json_object_set_double_member (data, "lon", slon);
          json_object_set_double_member (data, "alt", salt);
        }
      if (fl_device_get_firmware (src) != NULL)
        json_object_set_string_member (data, "firmware", fl_device_get_firmware (src));
      if (fl_device_get_model (src) != NULL)
        json_object_set_string_member (data, "model", fl_device_get_model (src));
      if (fl_device_get_manufacturer (src) != NULL)
        json_object_set_string_member (data, "manufacturer", fl_device_get_manufacturer (src));

      if (g_strcmp0 (fl_device_get_model (dst), fl_device_get_model (src)) != 0)
        flags |= MERGE_KEY;
      fl_device_apply_event_data (dst, data, fl_device_get_last_seen (dst));
      flags |= MERGE_VALUES;
    }

  if (fl_device_get_last_seen (src) > fl_device_get_last_seen (dst))
    {
      fl_device_set_last_seen (dst, fl_device_get_last_seen (src));
      flags |= MERGE_VALUES;
    }

  return flags;
}

static void schedule_save (FlFleet *self);

static void
merge_devices (FlFleet    *self,
               GPtrArray  *devices,
               GHashTable *seen)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (devices->len);
  g_autoptr (GHashTable) changed = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) renamed_set = g_hash_table_new (NULL, NULL);
  g_auto (Changes) c = { 0, };

  c.inserts = g_ptr_array_new_with_free_func (g_object_unref);
  c.touched = g_hash_table_new (NULL, NULL);
  c.renamed = g_ptr_array_new ();

  /* one record per id (the later wins), in id order */
  for (guint i = 0; i < devices->len; i++)
    g_ptr_array_add (sorted, g_ptr_array_index (devices, i));
  g_ptr_array_sort (sorted, compare_by_id);
  for (guint i = 0, j = 0; i < sorted->len; i++)
    {
      if (i + 1 < sorted->len &&
          strcmp (fl_device_get_device_id (g_ptr_array_index (sorted, i)),
                  fl_device_get_device_id (g_ptr_array_index (sorted, i + 1))) == 0)
        continue;
      sorted->pdata[j++] = sorted->pdata[i];
      if (i + 1 == sorted->len)
        g_ptr_array_set_size (sorted, j);
    }

  /* Renamed devices leave the name order while it can still find them. */
  for (guint i = 0; i < sorted->len; i++)
    {
      FlDevice *src = g_ptr_array_index (sorted, i);
      FlDevice *dst = g_hash_table_lookup (self->by_id, fl_device_get_device_id (src));

      if (dst != NULL && g_strcmp0 (fl_device_get_name (dst), fl_device_get_name (src)) != 0)
        {
          g_ptr_array_add (c.renamed, dst);
          g_hash_table_add (renamed_set, dst);
        }
    }
  if (c.renamed->len > 0)
    take_out_of_name_order (self, c.renamed);

  for (guint i = 0; i < sorted->len; i++)
    {
      FlDevice *src = g_ptr_array_index (sorted, i);
      FlDevice *dst = g_hash_table_lookup (self->by_id, fl_device_get_device_id (src));

      if (dst != NULL)
        {
          guint flags = merge_device (dst, src);

          if ((flags & (MERGE_STATUS | MERGE_KEY)) && !g_hash_table_contains (renamed_set, dst))
            g_hash_table_add (c.touched, dst);
          if (flags != 0)
            {
              g_hash_table_add (changed, dst);
              g_hash_table_add (self->dirty, dst);
            }
          if (seen != NULL)
            g_hash_table_add (seen, dst);
        }
      else
        {
          g_ptr_array_add (c.inserts, g_object_ref (src));
          g_hash_table_add (self->dirty, src);
          if (seen != NULL)
            g_hash_table_add (seen, src);
        }
    }

  apply_changes (self, &c);

  if (g_hash_table_size (changed) > 0)
    g_signal_emit (self, signals[DEVICES_CHANGED], 0, changed);

  if (g_hash_table_size (self->dirty) > 0)
    schedule_save (self);
}

void
fl_fleet_merge_devices (FlFleet   *self,
                        GPtrArray *devices)
{
  g_return_if_fail (FL_IS_FLEET (self));
  g_return_if_fail (devices != NULL);

  merge_devices (self, devices, self->sync_seen);
}

/* ---- the cache --------------------------------------------------------- */

/* Saving serializes each device on the main thread (~5 µs): under a
 * heavy stream nearly every device is dirty, so saves go out in chunks
 * from a low-priority idle, never 100,000 in one frame. */
static gboolean
save_chunk_cb (gpointer user_data)
{
  FlFleet *self = user_data;
  g_autoptr (GPtrArray) chunk = NULL;
  GHashTableIter iter;
  gpointer device;

  if (self->cache == NULL || g_hash_table_size (self->dirty) == 0)
    {
      self->save_source = 0;
      return G_SOURCE_REMOVE;
    }

  chunk = g_ptr_array_new_full (SAVE_CHUNK, g_object_unref);
  g_hash_table_iter_init (&iter, self->dirty);
  while (chunk->len < SAVE_CHUNK && g_hash_table_iter_next (&iter, &device, NULL))
    {
      g_ptr_array_add (chunk, g_object_ref (device));
      g_hash_table_iter_remove (&iter);
    }

  fl_cache_save_devices_async (self->cache, chunk, NULL, NULL, NULL); /* errors are logged */

  return G_SOURCE_CONTINUE;
}

static gboolean
save_timeout_cb (gpointer user_data)
{
  FlFleet *self = user_data;

  self->save_source = g_idle_add_full (G_PRIORITY_LOW, save_chunk_cb, self, NULL);

  return G_SOURCE_REMOVE;
}

static void
schedule_save (FlFleet *self)
{
  if (self->cache == NULL || self->save_source != 0)
    return;

  self->save_source = g_timeout_add_seconds (SAVE_INTERVAL_S, save_timeout_cb, self);
}

/* Everything at once: on stop. */
static void
save_now (FlFleet *self)
{
  g_autoptr (GPtrArray) devices = NULL;
  GHashTableIter iter;
  gpointer device;

  g_clear_handle_id (&self->save_source, g_source_remove);

  if (self->cache == NULL || g_hash_table_size (self->dirty) == 0)
    return;

  devices = g_ptr_array_new_full (g_hash_table_size (self->dirty), g_object_unref);
  g_hash_table_iter_init (&iter, self->dirty);
  while (g_hash_table_iter_next (&iter, &device, NULL))
    g_ptr_array_add (devices, g_object_ref (device));
  g_hash_table_remove_all (self->dirty);

  fl_cache_save_devices_async (self->cache, devices, NULL, NULL, NULL);
}

/* Soon, in chunks: after a sync. */
static void
save_soon (FlFleet *self)
{
  if (self->cache == NULL || g_hash_table_size (self->dirty) == 0)
    return;

  g_clear_handle_id (&self->save_source, g_source_remove);
  self->save_source = g_idle_add_full (G_PRIORITY_LOW, save_chunk_cb, self, NULL);
}

static void
add_events_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!fl_cache_add_events_finish (FL_CACHE (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_warning ("Could not add events to the cache: %s", error->message);
}

/* ---- events --------------------------------------------------------------- */

static void fetch_device (FlFleet    *self,
                          const char *device_id);

void
fl_fleet_apply_events (FlFleet   *self,
                       GPtrArray *events)
{
  g_autoptr (GHashTable) changed = NULL;
  g_autoptr (GHashTable) rekeyed = NULL;
  g_autoptr (GPtrArray) accepted = NULL;
  g_autoptr (GPtrArray) unknown = NULL;
  gint64 last_seq;

  g_return_if_fail (FL_IS_FLEET (self));
  g_return_if_fail (events != NULL);

  if (events->len == 0)
    return;

  changed = g_hash_table_new (NULL, NULL);
  accepted = g_ptr_array_new_full (events->len, (GDestroyNotify) fl_event_unref);
  last_seq = self->last_seq;

  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);
      gint64 seq = fl_event_get_seq (event);
      const char *model;
      FlDevice *device;
      gint64 seen_before;
      gboolean created = FALSE;

      if (seq > 0 && seq <= last_seq)
        continue;  /* applied before: a replay overlapping what we have */
      if (seq > last_seq)
        last_seq = seq;

      g_ptr_array_add (accepted, fl_event_ref (event));

      device = g_hash_table_lookup (self->by_id, fl_event_get_source (event));
      if (device == NULL)
        {
          if (!fl_device_id_is_valid (fl_event_get_source (event)))
            continue;
          if (unknown == NULL)
            unknown = g_ptr_array_new_with_free_func (g_object_unref);
          /* known from now on; its record follows */
          device = fl_device_new (fl_event_get_source (event));
          g_ptr_array_add (unknown, device);
          g_hash_table_insert (self->by_id, (gpointer) fl_device_get_device_id (device), g_object_ref (device));
          created = TRUE;
        }

      /* a new model (a well-known data field) changes the search key */
      model = fl_event_get_text (event, "model");
      if (model != NULL && g_strcmp0 (model, fl_device_get_model (device)) != 0 && !created &&
          (unknown == NULL || !g_ptr_array_find (unknown, device, NULL)))
        {
          if (rekeyed == NULL)
            rekeyed = g_hash_table_new (NULL, NULL);
          g_hash_table_add (rekeyed, device);
        }

      seen_before = fl_device_get_last_seen (device);
      if (fl_device_apply_event (device, event, fl_event_get_timestamp (event)) ||
          fl_device_get_last_seen (device) != seen_before)
        {
          g_hash_table_add (changed, device);
          g_hash_table_add (self->dirty, device);
        }
    }

  if (rekeyed != NULL)
    {
      Changes c = { NULL, rekeyed, NULL, NULL };

      /* the lists look at them again */
      apply_changes (self, &c);
    }

  if (unknown != NULL)
    {
      Changes c = { unknown, NULL, NULL, NULL };

      /* Placeholders until the server's record comes: they are in by_id
       * already (apply_changes takes another reference). */
      for (guint i = 0; i < unknown->len; i++)
        g_hash_table_remove (self->by_id, fl_device_get_device_id (g_ptr_array_index (unknown, i)));
      apply_changes (self, &c);

      if (unknown->len <= MAX_SINGLE_FETCHES)
        for (guint i = 0; i < unknown->len; i++)
          fetch_device (self, fl_device_get_device_id (g_ptr_array_index (unknown, i)));
      else
        fl_fleet_refresh (self);
    }

  if (accepted->len == 0)
    return;

  if (self->cache != NULL)
    {
      fl_cache_add_events_async (self->cache, accepted, NULL, add_events_cb, NULL);
      fl_cache_set_last_seq (self->cache, last_seq);
    }

  if (last_seq != self->last_seq)
    {
      self->last_seq = last_seq;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_SEQ]);
    }

  if (g_hash_table_size (changed) > 0)
    {
      schedule_save (self);
      g_signal_emit (self, signals[DEVICES_CHANGED], 0, changed);
    }

  g_signal_emit (self, signals[EVENTS], 0, accepted);
}

/* ---- single devices --------------------------------------------------------- */

typedef struct
{
  FlFleet *self;
  char    *device_id;
} FetchData;

static void
fetch_data_free (FetchData *data)
{
  g_clear_object (&data->self);
  g_free (data->device_id);
  g_free (data);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FetchData, fetch_data_free)

static void
fetch_device_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (FetchData) data = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlDevice) device = NULL;
  FlFleet *self = data->self;

  device = fl_client_get_device_finish (FL_CLIENT (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  g_hash_table_remove (self->fetching, data->device_id);

  if (device == NULL)
    {
      g_debug ("Could not fetch device %s: %s", data->device_id, error->message);
      if (!g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NOT_FOUND))
        report_error (self, error);
      return;
    }

  {
    g_autoptr (GPtrArray) one = g_ptr_array_new ();

    g_ptr_array_add (one, device);
    merge_devices (self, one, NULL);
  }
}

static void
fetch_device (FlFleet    *self,
              const char *device_id)
{
  FetchData *data;

  if (self->client == NULL || g_hash_table_contains (self->fetching, device_id))
    return;

  g_hash_table_add (self->fetching, g_strdup (device_id));
  data = g_new0 (FetchData, 1);
  data->self = g_object_ref (self);
  data->device_id = g_strdup (device_id);
  fl_client_get_device_async (self->client, device_id, self->cancellable, fetch_device_cb, data);
}

/* ---- sync ------------------------------------------------------------------ */

static gboolean
retry_cb (gpointer user_data)
{
  FlFleet *self = user_data;

  self->retry_source = 0;
  self->retry_due = 0;
  sync_start (self);

  return G_SOURCE_REMOVE;
}

static void
schedule_retry (FlFleet *self)
{
  guint delay;

  g_clear_handle_id (&self->retry_source, g_source_remove);

  self->retry_delay_ms = self->retry_delay_ms == 0 ? RETRY_MIN_MS : MIN (self->retry_delay_ms * 2, RETRY_MAX_MS);
  /* ±20 % jitter, so a fleet of consoles does not return in step */
  delay = self->retry_delay_ms * g_random_double_range (0.8, 1.2);
  self->retry_due = g_get_monotonic_time () + (gint64) delay * 1000;
  self->retry_source = g_timeout_add (delay, retry_cb, self);
  g_debug ("Sync retry in %u ms", delay);
}

static void sync_fetch_page (FlFleet    *self,
                             const char *cursor);

static void
sync_finish (FlFleet *self)
{
  g_autoptr (GHashTable) removed = g_hash_table_new (NULL, NULL);
  g_autoptr (GHashTable) seen = g_steal_pointer (&self->sync_seen);

  /* Devices the server does not list any more: gone (a relay reset). */
  for (guint i = 0; i < self->devices->len; i++)
    {
      FlDevice *device = g_ptr_array_index (self->devices, i);

      if (!g_hash_table_contains (seen, device) &&
          !g_hash_table_contains (self->fetching, fl_device_get_device_id (device)))
        g_hash_table_add (removed, device);
    }
  if (g_hash_table_size (removed) > 0)
    {
      Changes c = { NULL, NULL, NULL, removed };

      g_debug ("%u cached devices are not on the server any more", g_hash_table_size (removed));
      if (self->cache != NULL)
        {
          g_autoptr (GPtrArray) ids = g_ptr_array_new_full (g_hash_table_size (removed), g_free);
          GHashTableIter        iter;
          gpointer              device;

          g_hash_table_iter_init (&iter, removed);
          while (g_hash_table_iter_next (&iter, &device, NULL))
            g_ptr_array_add (ids, g_strdup (fl_device_get_device_id (device)));
          fl_cache_delete_devices_async (self->cache, ids, NULL, NULL, NULL);
        }
      apply_changes (self, &c);
    }

  mark_in_sync (self);
  /* the server answers: the stream need not wait out its backoff */
  if (self->stream != NULL)
    fl_event_stream_reconnect (self->stream);

  self->retry_delay_ms = 0;
  set_sync_pending (self, FALSE);
  g_clear_object (&self->sync_cancellable);
  set_syncing (self, FALSE);
  save_soon (self);

  if (self->stream == NULL)
    stream_start (self);
}

static void
sync_page_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (FlFleet) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) page = NULL;
  g_autofree char *next = NULL;

  page = fl_client_list_devices_finish (FL_CLIENT (source), result, &next, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  if (page == NULL)
    {
      g_debug ("Sync failed: %s", error->message);
      g_clear_pointer (&self->sync_seen, g_hash_table_unref);
      g_clear_object (&self->sync_cancellable);
      set_sync_pending (self, TRUE);
      set_syncing (self, FALSE);
      report_error (self, error);
      schedule_retry (self);

      /* Follow the stream anyway: it retries on its own, and tells us
       * when the server is back. */
      if (self->stream == NULL)
        stream_start (self);
      return;
    }

  report_success (self);
  merge_devices (self, page, self->sync_seen);

  if (next != NULL)
    sync_fetch_page (self, next);
  else
    sync_finish (self);
}

static void
sync_fetch_page (FlFleet    *self,
                 const char *cursor)
{
  FlDeviceListQuery query = { .cursor = cursor, .limit = SYNC_PAGE_SIZE };

  fl_client_list_devices_async (self->client, &query, self->sync_cancellable, sync_page_cb, g_object_ref (self));
}

static void
sync_start (FlFleet *self)
{
  if (!self->started || !self->loaded || self->client == NULL || self->syncing)
    return;

  g_clear_handle_id (&self->retry_source, g_source_remove);
  self->retry_due = 0;

  set_syncing (self, TRUE);
  self->sync_seen = g_hash_table_new (NULL, NULL);
  self->sync_cancellable = g_cancellable_new ();
  sync_fetch_page (self, NULL);
}

/* ---- the stream ------------------------------------------------------------ */

static char *
stream_token_cb (gpointer user_data)
{
  FlFleet *self = user_data;
  const char *token;

  if (self->session != NULL)
    return fl_session_dup_access_token (self->session);
  if (self->client == NULL)
    return NULL;

  token = fl_client_get_access_token (self->client);
  if (token == NULL)
    token = fl_client_get_id_token (self->client);

  return g_strdup (token);
}

static void
stream_events_cb (FlEventStream *stream,
                  GPtrArray     *events,
                  FlFleet       *self)
{
  fl_fleet_apply_events (self, events);
}

static void
stream_device_cb (FlEventStream *stream,
                  FlDevice      *device,
                  FlFleet       *self)
{
  g_autoptr (GPtrArray) one = g_ptr_array_new ();

  g_ptr_array_add (one, device);
  merge_devices (self, one, NULL);
}

static void
stream_state_cb (FlEventStream *stream,
                 GParamSpec    *pspec,
                 FlFleet       *self)
{
  set_live (self, fl_event_stream_get_state (stream) == FL_EVENT_STREAM_CONNECTED);

  switch (fl_event_stream_get_state (stream))
    {
    case FL_EVENT_STREAM_CONNECTED:
      self->stream_was_connected = TRUE;
      report_success (self);
      /* Back after an outage: what changed meanwhile that the stream
       * does not replay (registrations, status changes) comes from a
       * sync. */
      if (self->sync_pending)
        fl_fleet_refresh (self);
      break;

    case FL_EVENT_STREAM_DISCONNECTED:
      if (self->stream_was_connected)
        {
          g_autoptr (GError) error = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                                                          "The live stream was disconnected");

          self->stream_was_connected = FALSE;
          if (!self->sync_pending && self->last_sync > 0)
            mark_in_sync (self);
          set_sync_pending (self, TRUE);
          report_error (self, error);
        }
      break;

    case FL_EVENT_STREAM_CONNECTING:
    case FL_EVENT_STREAM_SIGNED_OUT:
    default:
      break;
    }
}

static void
stream_start (FlFleet *self)
{
  if (!self->started || self->stream != NULL || self->websocket_url == NULL)
    return;

  self->stream = fl_event_stream_new (self->websocket_url, stream_token_cb, self, NULL);
  fl_event_stream_set_since (self->stream, self->last_seq);
  g_signal_connect_object (self->stream, "events", G_CALLBACK (stream_events_cb), self, 0);
  g_signal_connect_object (self->stream, "device", G_CALLBACK (stream_device_cb), self, 0);
  g_signal_connect_object (self->stream, "notify::state", G_CALLBACK (stream_state_cb), self, 0);
  fl_event_stream_start (self->stream);
}

/* ---- start ------------------------------------------------------------------ */

static void
set_loaded (FlFleet *self)
{
  self->loaded = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADED]);

  if (self->client != NULL)
    sync_start (self);
}

static void
prepared_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  FlFleet *self = FL_FLEET (source);
  g_autoptr (Prepared) p = g_task_propagate_pointer (G_TASK (result), NULL);

  if (p == NULL)
    return;

  /* Something came first (a test's set_devices): merge instead (p's
   * table by id keeps the devices alive meanwhile). */
  if (self->devices->len == 0)
    install_prepared (self, p);
  else
    merge_devices (self, p->devices, NULL);

  set_loaded (self);
}

static void
load_devices_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr (FlFleet) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  g_autoptr (GTask) task = NULL;

  devices = fl_cache_load_devices_finish (FL_CACHE (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  g_debug ("Cache: %u devices read", devices ? devices->len : 0);
  if (devices == NULL)
    {
      g_warning ("Could not read the cached devices: %s", error->message);
      set_loaded (self);
      return;
    }

  /* Both orders, the table by id and the tags are built on a worker
   * thread: nothing else sees these devices yet. */
  task = g_task_new (self, self->cancellable, prepared_cb, NULL);
  g_task_set_source_tag (task, load_devices_cb);
  g_task_set_task_data (task, g_steal_pointer (&devices), NULL);  /* the thread drops it */
  g_task_run_in_thread (task, prepare_thread);
}

static void
load_cache (FlFleet *self)
{
  gint64 last_sync;

  self->last_seq = MAX (self->last_seq, fl_cache_get_last_seq (self->cache));
  last_sync = fl_cache_get_last_sync (self->cache);
  if (last_sync != self->last_sync)
    {
      self->last_sync = last_sync;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_SYNC]);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_SEQ]);

  fl_cache_load_devices_async (self->cache, self->cancellable, load_devices_cb, g_object_ref (self));
}

static void
open_cache_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr (FlFleet) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlCache) cache = NULL;

  cache = fl_cache_open_finish (result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  if (cache == NULL)
    {
      /* Still usable: online only. */
      g_warning ("Could not open the cache: %s", error->message);
      set_loaded (self);
      return;
    }

  self->cache = g_steal_pointer (&cache);
  load_cache (self);
}

void
fl_fleet_start (FlFleet *self)
{
  g_return_if_fail (FL_IS_FLEET (self));

  if (self->started)
    return;

  self->started = TRUE;
  if (self->cancellable == NULL)
    self->cancellable = g_cancellable_new ();

  if (self->loaded)
    {
      sync_start (self);
      return;
    }

  if (self->cache != NULL)
    load_cache (self);
  else if (self->session != NULL)
    {
      g_autofree char *path = fl_cache_default_path (fl_profile_get_id (fl_session_get_profile (self->session)));

      fl_cache_open_async (path, self->cancellable, open_cache_cb, g_object_ref (self));
    }
  else
    set_loaded (self);
}

void
fl_fleet_stop (FlFleet *self)
{
  g_return_if_fail (FL_IS_FLEET (self));

  if (!self->started)
    return;

  self->started = FALSE;
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  if (self->sync_cancellable != NULL)
    g_cancellable_cancel (self->sync_cancellable);
  g_clear_object (&self->sync_cancellable);
  g_clear_pointer (&self->sync_seen, g_hash_table_unref);
  g_hash_table_remove_all (self->fetching);
  g_clear_handle_id (&self->retry_source, g_source_remove);
  self->retry_due = 0;
  set_syncing (self, FALSE);
  if (self->live && !self->sync_pending && self->last_sync > 0)
    mark_in_sync (self);

  if (self->stream != NULL)
    {
      fl_event_stream_stop (self->stream);
      g_signal_handlers_disconnect_by_data (self->stream, self);
      g_clear_object (&self->stream);
    }
  set_live (self, FALSE);

  save_now (self);
}

void
fl_fleet_refresh (FlFleet *self)
{
  g_return_if_fail (FL_IS_FLEET (self));

  self->retry_delay_ms = 0;
  if (!self->syncing)
    sync_start (self);
}

/* ---- session ---------------------------------------------------------------- */

static void
session_online_cb (FlSession  *session,
                   GParamSpec *pspec,
                   FlFleet    *self)
{
  gboolean online = fl_session_get_online (session);

  set_online (self, online);
  if (online && self->sync_pending && !self->syncing)
    fl_fleet_refresh (self);
}

static void
session_signed_out_cb (FlSession *session,
                       FlFleet   *self)
{
  fl_fleet_stop (self);
}

void
fl_fleet_set_session (FlFleet   *self,
                      FlSession *session)
{
  g_return_if_fail (FL_IS_FLEET (self));
  g_return_if_fail (session == NULL || FL_IS_SESSION (session));
  g_return_if_fail (!self->started);

  if (self->session == session)
    return;

  if (self->session != NULL)
    g_signal_handlers_disconnect_by_data (self->session, self);
  g_set_object (&self->session, session);

  if (session != NULL)
    {
      g_set_object (&self->client, fl_session_get_client (session));
      g_free (self->websocket_url);
      self->websocket_url = g_strdup (fl_session_get_websocket_url (session));
      g_signal_connect_object (session, "notify::online", G_CALLBACK (session_online_cb), self, 0);
      g_signal_connect_object (session, "signed-out", G_CALLBACK (session_signed_out_cb), self, 0);
      set_online (self, fl_session_get_online (session));
    }
}

FlSession *
fl_fleet_get_session (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return self->session;
}

void
fl_fleet_set_client (FlFleet    *self,
                     FlClient   *client,
                     const char *websocket_url)
{
  g_return_if_fail (FL_IS_FLEET (self));
  g_return_if_fail (client == NULL || FL_IS_CLIENT (client));
  g_return_if_fail (!self->started);

  g_set_object (&self->client, client);
  g_free (self->websocket_url);
  self->websocket_url = g_strdup (websocket_url);
}

/* ---- getters ------------------------------------------------------------- */

FlClient *
fl_fleet_get_client (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return self->client;
}

FlCache *
fl_fleet_get_cache (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return self->cache;
}

FlEventStream *
fl_fleet_get_stream (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return self->stream;
}

GListModel *
fl_fleet_get_by_name (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return G_LIST_MODEL (self->by_name);
}

FlDevice *
fl_fleet_lookup (FlFleet    *self,
                 const char *device_id)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);
  g_return_val_if_fail (device_id != NULL, NULL);

  return g_hash_table_lookup (self->by_id, device_id);
}

guint
fl_fleet_find (FlFleet    *self,
               const char *device_id)
{
  guint pos;

  g_return_val_if_fail (FL_IS_FLEET (self), G_MAXUINT);
  g_return_val_if_fail (device_id != NULL, G_MAXUINT);

  pos = lower_bound (self->devices, device_id);
  if (pos < self->devices->len &&
      strcmp (fl_device_get_device_id (g_ptr_array_index (self->devices, pos)), device_id) == 0)
    return pos;

  return G_MAXUINT;
}

GListModel *
fl_fleet_get_tags (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), NULL);

  return G_LIST_MODEL (self->tags);
}

gboolean
fl_fleet_get_online (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), FALSE);

  return self->online;
}

gboolean
fl_fleet_get_syncing (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), FALSE);

  return self->syncing;
}

gboolean
fl_fleet_get_sync_failed (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), FALSE);

  return self->sync_pending;
}

gboolean
fl_fleet_get_live (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), FALSE);

  return self->live;
}

gboolean
fl_fleet_get_loaded (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), FALSE);

  return self->loaded;
}

gint64
fl_fleet_get_last_sync (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), 0);

  return self->last_sync;
}

gint64
fl_fleet_get_last_seq (FlFleet *self)
{
  g_return_val_if_fail (FL_IS_FLEET (self), 0);

  return self->last_seq;
}

guint
fl_fleet_get_retry_delay (FlFleet *self)
{
  gint64 now;

  g_return_val_if_fail (FL_IS_FLEET (self), 0);

  if (self->retry_due == 0)
    return 0;

  now = g_get_monotonic_time ();
  return self->retry_due > now ? (guint) ((self->retry_due - now + 999999) / 1000000) : 0;
}

/* ---- for the views ------------------------------------------------------------ */

const char *
fl_fleet_status_label (FlDeviceStatus status)
{
  switch (status)
    {
    case FL_DEVICE_STATUS_ONLINE:
      return C_("device status", "Online");
    case FL_DEVICE_STATUS_OFFLINE:
      return C_("device status", "Offline");
    case FL_DEVICE_STATUS_MAINTENANCE:
      return C_("device status", "Maintenance");
    case FL_DEVICE_STATUS_DECOMMISSIONED:
      return C_("device status", "Decommissioned");
    default:
      return C_("device status", "Unknown");
    }
}

const char *
fl_fleet_status_icon_name (FlDeviceStatus status)
{
  switch (status)
    {
    case FL_DEVICE_STATUS_ONLINE:
      return "emblem-ok-symbolic";
    case FL_DEVICE_STATUS_OFFLINE:
      return "network-offline-symbolic";
    case FL_DEVICE_STATUS_MAINTENANCE:
      return "applications-engineering-symbolic";
    case FL_DEVICE_STATUS_DECOMMISSIONED:
      return "action-unavailable-symbolic";
    default:
      return "dialog-question-symbolic";
    }
}

char *
fl_fleet_format_relative (gint64 then_ms,
                          gint64 now_ms)
{
  gint64 s;

  if (then_ms <= 0)
    /* Translators: when a device was last seen */
    return g_strdup (C_("last seen", "Never"));

  s = (now_ms - then_ms) / 1000;
  if (s < 60)
    /* Translators: when a device was last seen (also for a clock a bit ahead) */
    return g_strdup (C_("last seen", "Just now"));
  if (s < 3600)
    /* Translators: when a device was last seen */
    return g_strdup_printf (ngettext ("%d minute ago", "%d minutes ago", (gulong) (s / 60)), (int) (s / 60));
  if (s < 86400)
    return g_strdup_printf (ngettext ("%d hour ago", "%d hours ago", (gulong) (s / 3600)), (int) (s / 3600));
  if (s < 86400 * 365)
    return g_strdup_printf (ngettext ("%d day ago", "%d days ago", (gulong) (s / 86400)), (int) (s / 86400));

  return g_strdup_printf (ngettext ("%d year ago", "%d years ago", (gulong) (s / (86400 * 365))), (int) (s / (86400 * 365)));
}

char *
fl_fleet_format_time (gint64 ms)
{
  g_autoptr (GDateTime) when = NULL;
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();

  if (ms <= 0)
    return g_strdup (C_("last sync", "Never"));

  when = g_date_time_new_from_unix_local (ms / 1000);
  if (when == NULL)
    return g_strdup ("?");

  if (g_date_time_get_year (when) == g_date_time_get_year (now) &&
      g_date_time_get_day_of_year (when) == g_date_time_get_day_of_year (now))
    /* Translators: a time today, see g_date_time_format() */
    return g_date_time_format (when, _("%H:%M"));
  if (g_date_time_get_year (when) == g_date_time_get_year (now))
    /* Translators: a date this year and a time, see g_date_time_format() */
    return g_date_time_format (when, _("%e %b, %H:%M"));

  /* Translators: a date and a time, see g_date_time_format() */
  return g_date_time_format (when, _("%e %b %Y, %H:%M"));
}

/* ---- GObject --------------------------------------------------------------- */

static void
fl_fleet_dispose (GObject *object)
{
  FlFleet *self = FL_FLEET (object);

  fl_fleet_stop (self);
  g_clear_handle_id (&self->save_source, g_source_remove);

  if (self->session != NULL)
    g_signal_handlers_disconnect_by_data (self->session, self);
  g_clear_object (&self->session);
  g_clear_object (&self->client);
  g_clear_object (&self->cache);

  G_OBJECT_CLASS (fl_fleet_parent_class)->dispose (object);
}

static void
fl_fleet_finalize (GObject *object)
{
  FlFleet *self = FL_FLEET (object);

  g_clear_pointer (&self->devices, g_ptr_array_unref);
  g_clear_object (&self->by_name);
  g_clear_pointer (&self->dirty, g_hash_table_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  g_clear_pointer (&self->tag_set, g_hash_table_unref);
  g_clear_pointer (&self->fetching, g_hash_table_unref);
  g_clear_object (&self->tags);
  g_clear_pointer (&self->websocket_url, g_free);

  G_OBJECT_CLASS (fl_fleet_parent_class)->finalize (object);
}

static void
fl_fleet_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  FlFleet *self = FL_FLEET (object);

  switch (prop_id)
    {
    case PROP_ONLINE:
      g_value_set_boolean (value, self->online);
      break;
    case PROP_SYNCING:
      g_value_set_boolean (value, self->syncing);
      break;
    case PROP_LOADED:
      g_value_set_boolean (value, self->loaded);
      break;
    case PROP_LAST_SYNC:
      g_value_set_int64 (value, self->last_sync);
      break;
    case PROP_LAST_SEQ:
      g_value_set_int64 (value, self->last_seq);
      break;
    case PROP_SYNC_FAILED:
      g_value_set_boolean (value, self->sync_pending);
      break;
    case PROP_LIVE:
      g_value_set_boolean (value, self->live);
      break;
    case PROP_N_ITEMS:
      g_value_set_uint (value, self->devices->len);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_fleet_class_init (FlFleetClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_fleet_dispose;
  object_class->finalize = fl_fleet_finalize;
  object_class->get_property = fl_fleet_get_property;

  properties[PROP_ONLINE] =
    g_param_spec_boolean ("online", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_SYNCING] =
    g_param_spec_boolean ("syncing", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LOADED] =
    g_param_spec_boolean ("loaded", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LAST_SYNC] =
    g_param_spec_int64 ("last-sync", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LAST_SEQ] =
    g_param_spec_int64 ("last-seq", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_SYNC_FAILED] =
    g_param_spec_boolean ("sync-failed", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LIVE] =
    g_param_spec_boolean ("live", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlFleet::devices-changed:
   * @devices: (element-type FlDevice): the set of devices whose values
   *   changed (keys; the values are meaningless)
   *
   * Once per stream batch or server page.
   */
  signals[DEVICES_CHANGED] =
    g_signal_new ("devices-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_HASH_TABLE | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * FlFleet::events:
   * @events: (element-type FlEvent): the events just applied, seq order
   */
  signals[EVENTS] =
    g_signal_new ("events", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  G_TYPE_PTR_ARRAY | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
fl_fleet_init (FlFleet *self)
{
  self->devices = g_ptr_array_new ();
  self->by_name = g_object_new (FL_TYPE_FLEET_NAMES, NULL);
  self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_object_unref);
  self->tag_set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->tags = gtk_string_list_new (NULL);
  self->dirty = g_hash_table_new (NULL, NULL);
  self->fetching = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

FlFleet *
fl_fleet_new (FlCache *cache)
{
  FlFleet *self;

  g_return_val_if_fail (cache == NULL || FL_IS_CACHE (cache), NULL);

  self = g_object_new (FL_TYPE_FLEET, NULL);
  if (cache != NULL)
    self->cache = g_object_ref (cache);

  return self;
}
