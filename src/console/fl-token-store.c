/* fl-token-store.c: a profile's tokens in the keyring, through libsecret. */
#define G_LOG_DOMAIN "fl-token-store"

#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "fl-token-store.h"

G_DEFINE_QUARK (fl-token-store-error-quark, fl_token_store_error)

G_DEFINE_BOXED_TYPE (FlTokenSet, fl_token_set, fl_token_set_copy, fl_token_set_free)

#define SECRET_CONTENT_TYPE "application/json"

const SecretSchema *
fl_token_store_get_schema (void)
{
  static const SecretSchema schema = {
    "io.github.fieldline.Fieldline.Tokens",
    SECRET_SCHEMA_NONE,
    {
      { "profile", SECRET_SCHEMA_ATTRIBUTE_STRING },
      { NULL, 0 },
    },
    0, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  };

  return &schema;
}

/* ---- the token set ----------------------------------------------------- */

FlTokenSet *
fl_token_set_new (const char *id_token,
                  const char *access_token,
                  const char *refresh_token,
                  gint64      expires_at,
                  const char *username)
{
  FlTokenSet *set = g_new0 (FlTokenSet, 1);

  set->id_token = g_strdup (id_token);
  set->access_token = g_strdup (access_token);
  set->refresh_token = g_strdup (refresh_token);
  set->expires_at = expires_at;
  set->username = g_strdup (username);

  return set;
}

FlTokenSet *
fl_token_set_copy (const FlTokenSet *set)
{
  g_return_val_if_fail (set != NULL, NULL);

  return fl_token_set_new (set->id_token, set->access_token, set->refresh_token,
                           set->expires_at, set->username);
}

static void
wipe_string (char **str)
{
  if (*str != NULL)
    {
      explicit_bzero (*str, strlen (*str));
      g_clear_pointer (str, g_free);
    }
}

void
fl_token_set_free (FlTokenSet *set)
{
  if (set == NULL)
    return;

  wipe_string (&set->id_token);
  wipe_string (&set->access_token);
  wipe_string (&set->refresh_token);
  g_clear_pointer (&set->username, g_free);
  g_free (set);
}

char *
fl_token_set_to_json (const FlTokenSet *set)
{
  g_autoptr (JsonBuilder)   builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode)      root = NULL;

  g_return_val_if_fail (set != NULL, NULL);

  json_builder_begin_object (builder);
#define ADD_STRING(name, value)                          \
  if ((value) != NULL)                                   \
    {                                                    \
      json_builder_set_member_name (builder, (name));    \
      json_builder_add_string_value (builder, (value));  \
    }
  ADD_STRING ("idToken", set->id_token);
  ADD_STRING ("accessToken", set->access_token);
  ADD_STRING ("refreshToken", set->refresh_token);
  ADD_STRING ("username", set->username);
#undef ADD_STRING
  json_builder_set_member_name (builder, "expiresAt");
  json_builder_add_int_value (builder, set->expires_at);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);

  return json_generator_to_data (generator, NULL);
}

static gboolean
get_optional_string (JsonObject  *object,
                     const char  *member,
                     const char **value)
{
  JsonNode *node = json_object_get_member (object, member);

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return FALSE;
  *value = json_node_get_string (node);
  return TRUE;
}

FlTokenSet *
fl_token_set_from_json (const char  *json,
                        GError     **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject            *object;
  JsonNode              *root;
  JsonNode              *node;
  const char            *id_token, *access_token, *refresh_token, *username;
  gint64                 expires_at = 0;

  if (json == NULL || !json_parser_load_from_data (parser, json, -1, NULL)
      || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    goto corrupt;

  object = json_node_get_object (root);
  if (!get_optional_string (object, "idToken", &id_token)
      || !get_optional_string (object, "accessToken", &access_token)
      || !get_optional_string (object, "refreshToken", &refresh_token)
      || !get_optional_string (object, "username", &username))
    goto corrupt;

  node = json_object_get_member (object, "expiresAt");
  if (node != NULL)
    {
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
        goto corrupt;
      expires_at = json_node_get_int (node);
    }

  if (refresh_token == NULL && access_token == NULL)
    goto corrupt;

  return fl_token_set_new (id_token, access_token, refresh_token, expires_at, username);

corrupt:
  /* never the secret's text in the message */
  g_set_error_literal (error, FL_TOKEN_STORE_ERROR, FL_TOKEN_STORE_ERROR_CORRUPT,
                       "The keyring's token secret is not readable");
  return NULL;
}

/* The secret_password_* calls go through libsecret's backend: the
 * Secret Service, or the file backend that SECRET_BACKEND=file selects
 * for tests. */

/* ---- store ------------------------------------------------------------- */

static void
store_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  g_autoptr (GError) error = NULL;

  if (!secret_password_store_finish (result, &error))
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

void
fl_token_store_store_async (const char          *profile_id,
                            const char          *label,
                            const FlTokenSet    *tokens,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr (GTask)        task = NULL;
  g_autoptr (SecretValue)  value = NULL;
  g_autoptr (GHashTable)   attributes = NULL;
  g_autofree char         *full_label = NULL;
  char                    *json;

  g_return_if_fail (profile_id != NULL);
  g_return_if_fail (tokens != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_token_store_store_async);

  json = fl_token_set_to_json (tokens);
  /* the value takes the text and wipes it when freed */
  value = secret_value_new_full (json, -1, SECRET_CONTENT_TYPE, (GDestroyNotify) secret_password_free);

  attributes = secret_attributes_build (fl_token_store_get_schema (), "profile", profile_id, NULL);
  /* not translated: the keyring's label stays stable across locales */
  full_label = g_strdup_printf ("Fieldline: %s", label != NULL ? label : profile_id);

  secret_password_storev_binary (fl_token_store_get_schema (), attributes, SECRET_COLLECTION_DEFAULT,
                                 full_label, value, cancellable, store_cb, g_steal_pointer (&task));
}

gboolean
fl_token_store_store_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_token_store_store_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- lookup ------------------------------------------------------------ */

static void
lookup_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (GTask)       task = user_data;
  g_autoptr (GError)      error = NULL;
  g_autoptr (SecretValue) value = NULL;
  FlTokenSet             *set;

  value = secret_password_lookup_binary_finish (result, &error);
  if (error != NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (value == NULL)
    {
      g_task_return_pointer (task, NULL, NULL);
      return;
    }

  set = fl_token_set_from_json (secret_value_get_text (value), &error);
  if (set == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, set, (GDestroyNotify) fl_token_set_free);
}

void
fl_token_store_lookup_async (const char          *profile_id,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr (GTask)      task = NULL;
  g_autoptr (GHashTable) attributes = NULL;

  g_return_if_fail (profile_id != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_token_store_lookup_async);

  attributes = secret_attributes_build (fl_token_store_get_schema (), "profile", profile_id, NULL);
  secret_password_lookupv (fl_token_store_get_schema (), attributes, cancellable,
                           lookup_cb, g_steal_pointer (&task));
}

/**
 * fl_token_store_lookup_finish:
 *
 * Returns: (transfer full) (nullable): the tokens, or %NULL (without an
 *   error when there are none)
 */
FlTokenSet *
fl_token_store_lookup_finish (GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_token_store_lookup_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- clear ------------------------------------------------------------- */

static void
clear_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  g_autoptr (GError) error = NULL;
  gboolean           removed;

  removed = secret_password_clear_finish (result, &error);
  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, removed);
}

void
fl_token_store_clear_async (const char          *profile_id,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr (GTask)      task = NULL;
  g_autoptr (GHashTable) attributes = NULL;

  g_return_if_fail (profile_id != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_token_store_clear_async);

  attributes = secret_attributes_build (fl_token_store_get_schema (), "profile", profile_id, NULL);
  secret_password_clearv (fl_token_store_get_schema (), attributes, cancellable,
                          clear_cb, g_steal_pointer (&task));
}

gboolean
fl_token_store_clear_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_token_store_clear_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
