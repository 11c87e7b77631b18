/* fl-profile-store.h: the console's connection profiles, kept as JSON in
 * $XDG_CONFIG_HOME/fieldline/profiles.json.  The file holds no secrets:
 * tokens live in the keyring (FlTokenStore).
 *
 * The store is a GListModel of FlProfile, in the order profiles were
 * added.  Loading and saving are asynchronous.
 */
#pragma once

#include <gio/gio.h>

#include "fl-profile.h"

G_BEGIN_DECLS

#define FL_PROFILE_STORE_ERROR (fl_profile_store_error_quark ())

typedef enum {
  FL_PROFILE_STORE_ERROR_PARSE,   /* the file is not a profile list */
} FlProfileStoreError;

GQuark fl_profile_store_error_quark (void);

#define FL_TYPE_PROFILE_STORE (fl_profile_store_get_type ())
G_DECLARE_FINAL_TYPE (FlProfileStore, fl_profile_store, FL, PROFILE_STORE, GObject)

/* path: the JSON file, or NULL for $XDG_CONFIG_HOME/fieldline/profiles.json */
FlProfileStore *fl_profile_store_new            (const char *path);
const char     *fl_profile_store_get_path       (FlProfileStore *self);

/* Replaces the profiles with the file's.  A missing file is an empty
 * list, not an error. */
void            fl_profile_store_load_async     (FlProfileStore      *self,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
gboolean        fl_profile_store_load_finish    (FlProfileStore  *self,
                                                 GAsyncResult    *result,
                                                 GError         **error);
/* Writes the file (atomically, mode 0600).  Saves are serialized: one
 * started while another runs writes the latest state after it. */
void            fl_profile_store_save_async     (FlProfileStore      *self,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
gboolean        fl_profile_store_save_finish    (FlProfileStore  *self,
                                                 GAsyncResult    *result,
                                                 GError         **error);

/* Adds profile, or replaces the one with its id. */
void            fl_profile_store_add            (FlProfileStore *self,
                                                 FlProfile      *profile);
gboolean        fl_profile_store_remove         (FlProfileStore *self,
                                                 const char     *id);
/* Transfer none; NULL when absent. */
FlProfile      *fl_profile_store_lookup         (FlProfileStore *self,
                                                 const char     *id);
/* The lab profile of the relay at url (any spelling
 * fl_profile_normalize_url accepts), or NULL.  Transfer none. */
FlProfile      *fl_profile_store_find_lab       (FlProfileStore *self,
                                                 const char     *url);

/* The JSON text of the file (no secrets).  Transfer full. */
char           *fl_profile_store_to_data        (FlProfileStore *self);
gboolean        fl_profile_store_load_from_data (FlProfileStore  *self,
                                                 const char      *data,
                                                 gssize           length,
                                                 GError         **error);

G_END_DECLS
