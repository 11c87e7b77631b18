/* fl-token-cache.c: verified bearer tokens, by the SHA-256 of the token.
 *
 * A GHashTable keyed by the digest inside each entry.  Pruning walks the
 * whole table, so it runs at most once a minute, or when the table is
 * full.
 */
#define G_LOG_DOMAIN "fl-token-cache"

#include "config.h"

#include <string.h>

#include "fl-token-cache.h"

/* Expired entries go at the latest this long after their expiry */
#define PRUNE_INTERVAL_S 60

typedef struct
{
  guint8       digest[FL_TOKEN_CACHE_DIGEST_LEN]; /* the key */
  FlPrincipal *principal;
} CachedToken;

struct _FlTokenCache
{
  GHashTable *entries; /* digest → CachedToken */
  guint       max_entries;
  gint64      pruned_at; /* s */
};

static guint
digest_hash (gconstpointer key)
{
  guint h;

  /* the digest is uniform already */
  memcpy (&h, key, sizeof h);
  return h;
}

static gboolean
digest_equal (gconstpointer a,
              gconstpointer b)
{
  return memcmp (a, b, FL_TOKEN_CACHE_DIGEST_LEN) == 0;
}

static void
cached_token_free (gpointer data)
{
  CachedToken *entry = data;

  fl_principal_free (entry->principal);
  g_free (entry);
}

FlTokenCache *
fl_token_cache_new (guint max_entries)
{
  FlTokenCache *self;

  g_return_val_if_fail (max_entries > 0, NULL);

  self = g_new0 (FlTokenCache, 1);
  self->entries = g_hash_table_new_full (digest_hash, digest_equal, NULL, cached_token_free);
  self->max_entries = max_entries;

  return self;
}

void
fl_token_cache_free (FlTokenCache *self)
{
  if (self == NULL)
    return;

  g_clear_pointer (&self->entries, g_hash_table_unref);
  g_free (self);
}

/**
 * fl_token_cache_lookup:
 * @expired: (out) (optional): set to TRUE when an expired entry was
 *   found (and removed)
 *
 * Returns: (transfer full) (nullable): a copy of the token's principal, or
 *   NULL if it is not cached or has expired
 */
FlPrincipal *
fl_token_cache_lookup (FlTokenCache *self,
                       const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN],
                       gint64        now,
                       gboolean     *expired)
{
  CachedToken *entry;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (digest != NULL, NULL);

  if (expired != NULL)
    *expired = FALSE;

  entry = g_hash_table_lookup (self->entries, digest);
  if (entry == NULL)
    return NULL;

  if (now < entry->principal->expires_at)
    return fl_principal_copy (entry->principal);

  g_hash_table_remove (self->entries, digest);
  if (expired != NULL)
    *expired = TRUE;

  return NULL;
}

gboolean
fl_token_cache_contains (FlTokenCache *self,
                         const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN])
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (digest != NULL, FALSE);

  return g_hash_table_contains (self->entries, digest);
}

/**
 * fl_token_cache_insert:
 * @principal: (transfer full): who the token speaks for
 */
void
fl_token_cache_insert (FlTokenCache *self,
                       const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN],
                       FlPrincipal  *principal,
                       gint64        now)
{
  CachedToken *entry;

  g_return_if_fail (self != NULL);
  g_return_if_fail (digest != NULL);
  g_return_if_fail (principal != NULL);

  /* Expired entries go at the latest a minute after their expiry (on the
   * next insert), or at once when the cache is full. */
  if (g_hash_table_size (self->entries) >= self->max_entries || now - self->pruned_at >= PRUNE_INTERVAL_S)
    {
      GHashTableIter iter;
      gpointer       value;

      self->pruned_at = now;
      g_hash_table_iter_init (&iter, self->entries);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        if (((CachedToken *) value)->principal->expires_at <= now)
          g_hash_table_iter_remove (&iter);

      /* still full of live tokens: drop any one */
      if (g_hash_table_size (self->entries) >= self->max_entries)
        {
          g_hash_table_iter_init (&iter, self->entries);
          if (g_hash_table_iter_next (&iter, NULL, NULL))
            g_hash_table_iter_remove (&iter);
        }
    }

  entry = g_new0 (CachedToken, 1);
  memcpy (entry->digest, digest, sizeof entry->digest);
  entry->principal = principal;
  g_hash_table_replace (self->entries, entry->digest, entry);
}

void
fl_token_cache_remove_sub (FlTokenCache *self,
                           const char   *sub)
{
  GHashTableIter iter;
  gpointer       value;

  g_return_if_fail (self != NULL);
  g_return_if_fail (sub != NULL);

  g_hash_table_iter_init (&iter, self->entries);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (strcmp (((CachedToken *) value)->principal->sub, sub) == 0)
      g_hash_table_iter_remove (&iter);
}

void
fl_token_cache_clear (FlTokenCache *self)
{
  g_return_if_fail (self != NULL);

  g_hash_table_remove_all (self->entries);
}

guint
fl_token_cache_get_size (FlTokenCache *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return g_hash_table_size (self->entries);
}
