/* fl-token-store.h: a profile's tokens in the keyring, through libsecret.
 *
 * One secret per profile, with the schema
 * "io.github.fieldline.Fieldline.Tokens" and the attribute "profile" (the
 * profile's id).  The secret is one JSON object holding the ID, access
 * and refresh tokens, their expiry and the username.  Tokens never go to
 * files or logs.
 */
#pragma once

#include <gio/gio.h>
#include <libsecret/secret.h>

G_BEGIN_DECLS

#define FL_TOKEN_STORE_ERROR (fl_token_store_error_quark ())

typedef enum {
  FL_TOKEN_STORE_ERROR_CORRUPT,  /* the keyring's secret is not ours */
} FlTokenStoreError;

GQuark fl_token_store_error_quark (void);

typedef struct {
  char   *id_token;
  char   *access_token;
  char   *refresh_token;
  gint64  expires_at;     /* real time, seconds; 0 when unknown */
  char   *username;
} FlTokenSet;

#define FL_TYPE_TOKEN_SET (fl_token_set_get_type ())
GType       fl_token_set_get_type (void);
FlTokenSet *fl_token_set_new      (const char *id_token,
                                   const char *access_token,
                                   const char *refresh_token,
                                   gint64      expires_at,
                                   const char *username);
FlTokenSet *fl_token_set_copy     (const FlTokenSet *set);
/* Wipes the tokens' memory before freeing it. */
void        fl_token_set_free     (FlTokenSet *set);

/* The JSON form kept as the secret.  Transfer full. */
char       *fl_token_set_to_json   (const FlTokenSet *set);
FlTokenSet *fl_token_set_from_json (const char  *json,
                                    GError     **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlTokenSet, fl_token_set_free)

const SecretSchema *fl_token_store_get_schema (void);

/* label: shown in keyring managers, e.g. the profile's name. */
void        fl_token_store_store_async   (const char          *profile_id,
                                          const char          *label,
                                          const FlTokenSet    *tokens,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
gboolean    fl_token_store_store_finish  (GAsyncResult  *result,
                                          GError       **error);

/* NULL without an error when the keyring has no tokens for the profile. */
void        fl_token_store_lookup_async  (const char          *profile_id,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
FlTokenSet *fl_token_store_lookup_finish (GAsyncResult  *result,
                                          GError       **error);

/* TRUE when something was removed. */
void        fl_token_store_clear_async   (const char          *profile_id,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
gboolean    fl_token_store_clear_finish  (GAsyncResult  *result,
                                          GError       **error);

G_END_DECLS
