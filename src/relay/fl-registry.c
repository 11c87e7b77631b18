/* fl-registry.c: every device the relay knows, in memory. */
#define G_LOG_DOMAIN "fl-registry"

#include "config.h"

#include <string.h>

#include "fl-http.h"
#include "fl-registry.h"
#include "fl-user-pool.h"

struct _FlRegistry
{
  GObject     parent_instance;

  FlStore    *store;
  GHashTable *by_id;   /* device id -> FlDevice (owned) */
  GPtrArray  *sorted;  /* FlDevice, by device id (refs held by by_id) */
  GHashTable *dirty;   /* FlDevice set, to be saved */
  /* Search keys (see append_key()): one block of text, and each device's
   * key's offset in it, in the order of sorted. */
  GByteArray *key_text;
  GArray     *key_offsets; /* guint */
  gsize       key_waste;   /* bytes of keys replaced since the last compaction */
};

G_DEFINE_FINAL_TYPE (FlRegistry, fl_registry, G_TYPE_OBJECT)

static int
compare_devices (gconstpointer a,
                 gconstpointer b)
{
  FlDevice *da = *(FlDevice **) a;
  FlDevice *db = *(FlDevice **) b;

  return strcmp (fl_device_get_device_id (da), fl_device_get_device_id (db));
}

/* Index of the first device whose id is > after (or >= when inclusive). */
static guint
lower_bound (FlRegistry *self,
             const char *id,
             gboolean    inclusive)
{
  guint lo = 0, hi = self->sorted->len;

  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      int cmp = strcmp (fl_device_get_device_id (g_ptr_array_index (self->sorted, mid)), id);

      if (cmp < 0 || (!inclusive && cmp == 0))
        lo = mid + 1;
      else
        hi = mid;
    }

  return lo;
}

static void
fl_registry_finalize (GObject *object)
{
  FlRegistry *self = FL_REGISTRY (object);

  g_clear_pointer (&self->dirty, g_hash_table_unref);
  g_clear_pointer (&self->key_text, g_byte_array_unref);
  g_clear_pointer (&self->key_offsets, g_array_unref);
  g_clear_pointer (&self->sorted, g_ptr_array_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  g_clear_object (&self->store);

  G_OBJECT_CLASS (fl_registry_parent_class)->finalize (object);
}

static void
fl_registry_class_init (FlRegistryClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_registry_finalize;
}

static void
fl_registry_init (FlRegistry *self)
{
  self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_object_unref);
  self->sorted = g_ptr_array_new ();
  self->dirty = g_hash_table_new (NULL, NULL);
  self->key_text = g_byte_array_new ();
  self->key_offsets = g_array_new (FALSE, FALSE, sizeof (guint));
}

/* A device's search key is its id and its name casefolded, each ending
 * in a NUL ("id\0name\0").  A search runs on the relay's main loop: it
 * reads the keys, in one block, and folds nothing (a scan of 100,000
 * devices: ~1.5 ms instead of 59, bench-registry).  A changed key is
 * appended and the block compacted, in id order, when half of it is
 * waste. */
static guint
append_key (FlRegistry *self,
            FlDevice   *device)
{
  g_autofree char *id = g_utf8_casefold (fl_device_get_device_id (device), -1);
  g_autofree char *name = g_utf8_casefold (fl_device_get_name (device) ? fl_device_get_name (device) : "", -1);
  guint            offset = self->key_text->len;

  g_byte_array_append (self->key_text, (const guint8 *) id, strlen (id) + 1);
  g_byte_array_append (self->key_text, (const guint8 *) name, strlen (name) + 1);

  return offset;
}

static const char *
key_at (FlRegistry *self,
        guint       index)
{
  return (const char *) self->key_text->data + g_array_index (self->key_offsets, guint, index);
}

static gsize
key_length (const char *key)
{
  gsize id_len = strlen (key) + 1;

  return id_len + strlen (key + id_len) + 1;
}

static void
compact_keys (FlRegistry *self)
{
  GByteArray *text = g_byte_array_sized_new (self->key_text->len - self->key_waste);

  for (guint i = 0; i < self->key_offsets->len; i++)
    {
      const char *key = key_at (self, i);
      guint       offset = text->len;

      g_byte_array_append (text, (const guint8 *) key, key_length (key));
      g_array_index (self->key_offsets, guint, i) = offset;
    }
  g_byte_array_unref (self->key_text);
  self->key_text = text;
  self->key_waste = 0;
}

/* Keeps device's key current: a device just inserted into sorted, or one
 * whose name may have changed. */
static void
update_key (FlRegistry *self,
            FlDevice   *device,
            gboolean    inserted)
{
  guint index = lower_bound (self, fl_device_get_device_id (device), TRUE);
  guint offset = append_key (self, device);

  if (inserted)
    g_array_insert_val (self->key_offsets, index, offset);
  else
    {
      self->key_waste += key_length (key_at (self, index));
      g_array_index (self->key_offsets, guint, index) = offset;
      if (self->key_waste > self->key_text->len / 2)
        compact_keys (self);
    }
}

FlRegistry *
fl_registry_new (FlStore  *store,
                 GError  **error)
{
  g_autoptr (FlRegistry) self = g_object_new (FL_TYPE_REGISTRY, NULL);
  g_autoptr (GPtrArray) devices = NULL;

  self->store = g_object_ref (store);

  devices = fl_store_load_devices (store, error);
  if (devices == NULL)
    return NULL;

  for (guint i = 0; i < devices->len; i++)
    {
      FlDevice *device = g_ptr_array_index (devices, i);

      g_hash_table_insert (self->by_id, (gpointer) fl_device_get_device_id (device), g_object_ref (device));
      g_ptr_array_add (self->sorted, device);
    }
  g_ptr_array_sort (self->sorted, compare_devices);
  g_array_set_size (self->key_offsets, 0);
  for (guint i = 0; i < self->sorted->len; i++)
    {
      guint offset = append_key (self, g_ptr_array_index (self->sorted, i));

      g_array_append_val (self->key_offsets, offset);
    }

  return g_steal_pointer (&self);
}

FlDevice *
fl_registry_lookup (FlRegistry *self,
                    const char *device_id)
{
  return g_hash_table_lookup (self->by_id, device_id);
}

guint
fl_registry_get_n_devices (FlRegistry *self)
{
  return g_hash_table_size (self->by_id);
}

guint
fl_registry_get_n_online (FlRegistry *self)
{
  guint n = 0;

  for (guint i = 0; i < self->sorted->len; i++)
    n += fl_device_get_status (g_ptr_array_index (self->sorted, i)) == FL_DEVICE_STATUS_ONLINE;

  return n;
}

static void
mark_dirty (FlRegistry *self,
            FlDevice   *device)
{
  g_hash_table_add (self->dirty, device);
}

static char *
hash_secret (const char *secret)
{
  return g_compute_checksum_for_string (G_CHECKSUM_SHA256, secret, -1);
}

static char *
new_secret (void)
{
  guint8 bytes[32];

  for (guint i = 0; i < sizeof bytes; i += 4)
    {
      guint32 r = g_random_int ();
      memcpy (bytes + i, &r, 4);
    }

  return fl_base64url_encode (bytes, sizeof bytes);
}

gboolean
fl_registry_register (FlRegistry *self,
                      FlDevice   *device,
                      char      **secret,
                      GError    **error)
{
  const char *id = fl_device_get_device_id (device);
  gint64 now = fl_now_ms ();
  g_autofree char *hash = NULL;

  if (g_hash_table_contains (self->by_id, id))
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_CONFLICT,
                   "A device with id “%s” is already registered", id);
      return FALSE;
    }

  *secret = new_secret ();
  hash = hash_secret (*secret);
  fl_device_set_secret_hash (device, hash);
  fl_device_set_created_at (device, now);
  fl_device_set_updated_at (device, now);

  g_hash_table_insert (self->by_id, (gpointer) id, g_object_ref (device));
  g_ptr_array_insert (self->sorted, lower_bound (self, id, TRUE), device);
  update_key (self, device, TRUE);
  fl_store_save_device (self->store, device);

  return TRUE;
}

char *
fl_registry_rotate_secret (FlRegistry *self,
                           FlDevice   *device)
{
  g_autofree char *secret = new_secret ();
  g_autofree char *hash = hash_secret (secret);

  fl_device_set_secret_hash (device, hash);
  fl_registry_touch (self, device);

  return g_steal_pointer (&secret);
}

void
fl_registry_touch (FlRegistry *self,
                   FlDevice   *device)
{
  fl_device_set_updated_at (device, fl_now_ms ());
  g_hash_table_remove (self->dirty, device);
  update_key (self, device, FALSE); /* its name may have changed */
  fl_store_save_device (self->store, device);
}

/* Compares in time independent of where the strings differ. */
static gboolean
equal_constant_time (const char *a,
                     const char *b)
{
  gsize la = strlen (a), lb = strlen (b);
  guint8 diff = la != lb;

  for (gsize i = 0; i < la && i < lb; i++)
    diff |= (guint8) (a[i] ^ b[i]);

  return diff == 0;
}

FlDevice *
fl_registry_authenticate (FlRegistry *self,
                          const char *device_id,
                          const char *secret,
                          GError    **error)
{
  FlDevice *device = g_hash_table_lookup (self->by_id, device_id);
  g_autofree char *hash = hash_secret (secret);

  if (device == NULL || fl_device_get_secret_hash (device) == NULL ||
      !equal_constant_time (hash, fl_device_get_secret_hash (device)))
    {
      g_set_error_literal (error, FL_API_ERROR, FL_API_ERROR_UNAUTHORIZED,
                           "Unknown device or wrong device secret");
      return NULL;
    }

  if (fl_device_get_status (device) == FL_DEVICE_STATUS_DECOMMISSIONED)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_FORBIDDEN,
                   "Device “%s” is decommissioned", device_id);
      return NULL;
    }

  return device;
}

static gboolean
set_online (FlRegistry *self,
            FlDevice   *device)
{
  if (fl_device_get_status (device) != FL_DEVICE_STATUS_OFFLINE)
    return FALSE;

  fl_device_set_status (device, FL_DEVICE_STATUS_ONLINE);
  return TRUE;
}

gboolean
fl_registry_note_alive (FlRegistry *self,
                        FlDevice   *device,
                        gint64      now)
{
  if (now > fl_device_get_last_seen (device))
    fl_device_set_last_seen (device, now);
  mark_dirty (self, device);

  return set_online (self, device);
}

gboolean
fl_registry_note_event (FlRegistry *self,
                        FlDevice   *device,
                        FlEvent    *event)
{
  /* lastSeen is the relay's clock: device clocks drift, and liveness must
   * not depend on them. */
  fl_device_apply_event (device, event, fl_event_get_received_at (event));
  mark_dirty (self, device);

  return set_online (self, device);
}

GPtrArray *
fl_registry_expire (FlRegistry *self,
                    gint64      now)
{
  GPtrArray *expired = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  FlDevice *device;

  g_hash_table_iter_init (&iter, self->by_id);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &device))
    {
      if (fl_device_get_status (device) != FL_DEVICE_STATUS_ONLINE)
        continue;
      if (fl_device_get_last_seen (device) + (gint64) fl_device_get_heartbeat_timeout (device) * 1000 > now)
        continue;

      fl_device_set_status (device, FL_DEVICE_STATUS_OFFLINE);
      mark_dirty (self, device);
      g_ptr_array_add (expired, g_object_ref (device));
    }

  return expired;
}

void
fl_registry_flush (FlRegistry *self)
{
  GHashTableIter iter;
  FlDevice *device;

  g_hash_table_iter_init (&iter, self->dirty);
  while (g_hash_table_iter_next (&iter, (gpointer *) &device, NULL))
    fl_store_save_device (self->store, device);
  g_hash_table_remove_all (self->dirty);
}

/* Does a key (append_key()) hold needle (casefolded) in its id or name? */
static gboolean
key_contains (const char *key,
              const char *needle_folded)
{
  return strstr (key, needle_folded) != NULL ||
         strstr (key + strlen (key) + 1, needle_folded) != NULL;
}

GPtrArray *
fl_registry_list (FlRegistry           *self,
                  const FlDeviceFilter *filter,
                  char                **next_cursor)
{
  GPtrArray *page = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *q = filter->q ? g_utf8_casefold (filter->q, -1) : NULL;
  guint i = filter->after ? lower_bound (self, filter->after, FALSE) : 0;

  *next_cursor = NULL;

  for (; i < self->sorted->len; i++)
    {
      FlDevice *device = g_ptr_array_index (self->sorted, i);

      if (!filter->any_status && fl_device_get_status (device) != filter->status)
        continue;
      if (filter->tag != NULL && !fl_device_has_tag (device, filter->tag))
        continue;
      if (q != NULL && !key_contains (key_at (self, i), q))
        continue;

      if (page->len == filter->limit)
        {
          FlDevice *last = g_ptr_array_index (page, page->len - 1);

          *next_cursor = g_strdup (fl_device_get_device_id (last));
          break;
        }
      g_ptr_array_add (page, g_object_ref (device));
    }

  return page;
}
