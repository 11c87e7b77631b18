/* fl-profile-store.c: the console's connection profiles, as JSON. */
#define G_LOG_DOMAIN "fl-profile-store"

#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "fl-profile-store.h"

#define FORMAT_VERSION 1

struct _FlProfileStore
{
  GObject     parent_instance;

  char       *path;
  GListStore *profiles;

  /* saves run one at a time */
  gboolean    saving;
  GQueue      waiting_saves; /* GTask */
};

static void fl_profile_store_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (FlProfileStore, fl_profile_store, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, fl_profile_store_list_model_init))

G_DEFINE_QUARK (fl-profile-store-error-quark, fl_profile_store_error)

enum {
  PROP_0,
  PROP_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* The members of a profile in the file: properties, never secrets. */
static const char *const profile_members[][2] = {
  { "name", "name" },
  { "url", "url" },
  { "region", "region" },
  { "userPoolId", "user-pool-id" },
  { "clientId", "client-id" },
  { "apiUrl", "api-url" },
  { "websocketUrl", "websocket-url" },
};

/* ---- GListModel -------------------------------------------------------- */

static GType
fl_profile_store_get_item_type (GListModel *model)
{
  return FL_TYPE_PROFILE;
}

static guint
fl_profile_store_get_n_items (GListModel *model)
{
  FlProfileStore *self = FL_PROFILE_STORE (model);

  return g_list_model_get_n_items (G_LIST_MODEL (self->profiles));
}

static gpointer
fl_profile_store_get_item (GListModel *model,
                           guint       position)
{
  FlProfileStore *self = FL_PROFILE_STORE (model);

  return g_list_model_get_item (G_LIST_MODEL (self->profiles), position);
}

static void
fl_profile_store_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = fl_profile_store_get_item_type;
  iface->get_n_items = fl_profile_store_get_n_items;
  iface->get_item = fl_profile_store_get_item;
}

static void
items_changed_cb (GListModel     *model,
                  guint           position,
                  guint           removed,
                  guint           added,
                  FlProfileStore *self)
{
  g_list_model_items_changed (G_LIST_MODEL (self), position, removed, added);
}

/* ---- GObject ----------------------------------------------------------- */

static void
fl_profile_store_constructed (GObject *object)
{
  FlProfileStore *self = FL_PROFILE_STORE (object);

  G_OBJECT_CLASS (fl_profile_store_parent_class)->constructed (object);

  if (self->path == NULL)
    self->path = g_build_filename (g_get_user_config_dir (), "fieldline", "profiles.json", NULL);
}

static void
fl_profile_store_finalize (GObject *object)
{
  FlProfileStore *self = FL_PROFILE_STORE (object);

  /* every waiting save holds a reference on the store */
  g_assert (g_queue_is_empty (&self->waiting_saves));

  g_clear_pointer (&self->path, g_free);
  g_clear_object (&self->profiles);

  G_OBJECT_CLASS (fl_profile_store_parent_class)->finalize (object);
}

static void
fl_profile_store_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  FlProfileStore *self = FL_PROFILE_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_profile_store_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  FlProfileStore *self = FL_PROFILE_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      self->path = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_profile_store_class_init (FlProfileStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = fl_profile_store_constructed;
  object_class->finalize = fl_profile_store_finalize;
  object_class->get_property = fl_profile_store_get_property;
  object_class->set_property = fl_profile_store_set_property;

  properties[PROP_PATH] = g_param_spec_string ("path", NULL, NULL, NULL,
                                               G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
fl_profile_store_init (FlProfileStore *self)
{
  self->profiles = g_list_store_new (FL_TYPE_PROFILE);
  g_signal_connect (self->profiles, "items-changed", G_CALLBACK (items_changed_cb), self);
  g_queue_init (&self->waiting_saves);
}

/**
 * fl_profile_store_new:
 * @path: (nullable): the file, or %NULL for the default
 *
 * Returns: (transfer full): an empty store; load it with
 *   fl_profile_store_load_async()
 */
FlProfileStore *
fl_profile_store_new (const char *path)
{
  return g_object_new (FL_TYPE_PROFILE_STORE, "path", path, NULL);
}

const char *
fl_profile_store_get_path (FlProfileStore *self)
{
  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), NULL);
  return self->path;
}

static gboolean
find_profile (FlProfileStore *self,
              const char     *id,
              guint          *position)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->profiles));

  for (guint i = 0; i < n; i++)
    {
      g_autoptr (FlProfile) profile = g_list_model_get_item (G_LIST_MODEL (self->profiles), i);

      if (g_strcmp0 (fl_profile_get_id (profile), id) == 0)
        {
          *position = i;
          return TRUE;
        }
    }

  return FALSE;
}

void
fl_profile_store_add (FlProfileStore *self,
                      FlProfile      *profile)
{
  guint position;

  g_return_if_fail (FL_IS_PROFILE_STORE (self));
  g_return_if_fail (FL_IS_PROFILE (profile));

  if (find_profile (self, fl_profile_get_id (profile), &position))
    g_list_store_splice (self->profiles, position, 1, (gpointer *) &profile, 1);
  else
    g_list_store_append (self->profiles, profile);
}

gboolean
fl_profile_store_remove (FlProfileStore *self,
                         const char     *id)
{
  guint position;

  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), FALSE);

  if (id == NULL || !find_profile (self, id, &position))
    return FALSE;

  g_list_store_remove (self->profiles, position);
  return TRUE;
}

FlProfile *
fl_profile_store_lookup (FlProfileStore *self,
                         const char     *id)
{
  g_autoptr (FlProfile) profile = NULL;
  guint position;

  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), NULL);

  if (id == NULL || !find_profile (self, id, &position))
    return NULL;

  /* the list store holds the reference */
  profile = g_list_model_get_item (G_LIST_MODEL (self->profiles), position);
  return profile;
}

FlProfile *
fl_profile_store_find_lab (FlProfileStore *self,
                           const char     *url)
{
  g_autofree char *normal = fl_profile_normalize_url (url);
  guint            n;

  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), NULL);

  if (normal == NULL)
    return NULL;

  n = g_list_model_get_n_items (G_LIST_MODEL (self->profiles));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (FlProfile) profile = g_list_model_get_item (G_LIST_MODEL (self->profiles), i);
      g_autofree char *profile_url = NULL;

      if (fl_profile_get_kind (profile) != FL_PROFILE_LAB)
        continue;
      profile_url = fl_profile_normalize_url (fl_profile_get_url (profile));
      if (g_strcmp0 (profile_url, normal) == 0)
        return profile; /* the list store holds the reference */
    }

  return NULL;
}

/* ---- JSON -------------------------------------------------------------- */

char *
fl_profile_store_to_data (FlProfileStore *self)
{
  g_autoptr (JsonBuilder)   builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode)      root = NULL;
  guint                     n;

  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, FORMAT_VERSION);
  json_builder_set_member_name (builder, "profiles");
  json_builder_begin_array (builder);

  n = g_list_model_get_n_items (G_LIST_MODEL (self->profiles));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (FlProfile) profile = g_list_model_get_item (G_LIST_MODEL (self->profiles), i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_string_value (builder, fl_profile_get_id (profile));
      json_builder_set_member_name (builder, "kind");
      json_builder_add_string_value (builder, fl_profile_get_kind (profile) == FL_PROFILE_CLOUD ? "cloud" : "lab");

      for (guint j = 0; j < G_N_ELEMENTS (profile_members); j++)
        {
          g_autofree char *value = NULL;

          g_object_get (profile, profile_members[j][1], &value, NULL);
          if (value == NULL)
            continue;
          json_builder_set_member_name (builder, profile_members[j][0]);
          json_builder_add_string_value (builder, value);
        }
      json_builder_end_object (builder);
    }

  json_builder_end_array (builder);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);

  return json_generator_to_data (generator, NULL);
}

static FlProfile *
profile_from_json (JsonObject  *object,
                   guint        index,
                   GError     **error)
{
  g_autoptr (FlProfile) profile = NULL;
  JsonNode             *node;
  const char           *id;
  const char           *kind;

  node = json_object_get_member (object, "id");
  id = node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING ? json_node_get_string (node) : NULL;
  node = json_object_get_member (object, "kind");
  kind = node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING ? json_node_get_string (node) : NULL;

  if (id == NULL || *id == '\0' || kind == NULL || (!g_str_equal (kind, "lab") && !g_str_equal (kind, "cloud")))
    {
      g_set_error (error, FL_PROFILE_STORE_ERROR, FL_PROFILE_STORE_ERROR_PARSE,
                   "Profile %u has no id or kind", index);
      return NULL;
    }

  profile = g_object_new (FL_TYPE_PROFILE,
                          "id", id,
                          "kind", g_str_equal (kind, "cloud") ? FL_PROFILE_CLOUD : FL_PROFILE_LAB,
                          NULL);

  for (guint j = 0; j < G_N_ELEMENTS (profile_members); j++)
    {
      node = json_object_get_member (object, profile_members[j][0]);
      if (node == NULL || JSON_NODE_HOLDS_NULL (node))
        continue;
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
        {
          g_set_error (error, FL_PROFILE_STORE_ERROR, FL_PROFILE_STORE_ERROR_PARSE,
                       "Profile %u: %s is not a string", index, profile_members[j][0]);
          return NULL;
        }
      g_object_set (profile, profile_members[j][1], json_node_get_string (node), NULL);
    }

  if (fl_profile_get_kind (profile) == FL_PROFILE_LAB)
    {
      g_autofree char *url = fl_profile_normalize_url (fl_profile_get_url (profile));

      if (url == NULL)
        {
          g_set_error (error, FL_PROFILE_STORE_ERROR, FL_PROFILE_STORE_ERROR_PARSE,
                       "Lab profile %u has no valid URL", index);
          return NULL;
        }
    }

  return g_steal_pointer (&profile);
}

gboolean
fl_profile_store_load_from_data (FlProfileStore  *self,
                                 const char      *data,
                                 gssize           length,
                                 GError         **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GPtrArray)  loaded = g_ptr_array_new_with_free_func (g_object_unref);
  JsonNode              *root;
  JsonNode              *node;
  JsonArray             *array;
  guint                  n_old;

  g_return_val_if_fail (FL_IS_PROFILE_STORE (self), FALSE);

  if (!json_parser_load_from_data (parser, data, length, error))
    return FALSE;

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)
      || (node = json_object_get_member (json_node_get_object (root), "profiles")) == NULL
      || !JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error_literal (error, FL_PROFILE_STORE_ERROR, FL_PROFILE_STORE_ERROR_PARSE,
                           "Not a profile list");
      return FALSE;
    }

  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode  *element = json_array_get_element (array, i);
      FlProfile *profile;

      if (!JSON_NODE_HOLDS_OBJECT (element))
        {
          g_set_error (error, FL_PROFILE_STORE_ERROR, FL_PROFILE_STORE_ERROR_PARSE,
                       "Profile %u is not an object", i);
          return FALSE;
        }
      profile = profile_from_json (json_node_get_object (element), i, error);
      if (profile == NULL)
        return FALSE;
      g_ptr_array_add (loaded, profile);
    }

  n_old = g_list_model_get_n_items (G_LIST_MODEL (self->profiles));
  g_list_store_splice (self->profiles, 0, n_old, loaded->pdata, loaded->len);

  return TRUE;
}

/* ---- loading ----------------------------------------------------------- */

static void
load_contents_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  FlProfileStore    *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;
  g_autofree char   *contents = NULL;
  gsize              length = 0;

  if (!g_file_load_contents_finish (G_FILE (object), result, &contents, &length, NULL, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          g_list_store_remove_all (self->profiles);
          g_task_return_boolean (task, TRUE);
        }
      else
        g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (!fl_profile_store_load_from_data (self, contents, length, &error))
    {
      g_prefix_error (&error, "%s: ", self->path);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

void
fl_profile_store_load_async (FlProfileStore      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GFile) file = NULL;

  g_return_if_fail (FL_IS_PROFILE_STORE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_profile_store_load_async);

  file = g_file_new_for_path (self->path);
  g_file_load_contents_async (file, cancellable, load_contents_cb, g_steal_pointer (&task));
}

gboolean
fl_profile_store_load_finish (FlProfileStore  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_profile_store_load_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- saving ------------------------------------------------------------ */

typedef struct
{
  char   *path;
  GBytes *data;
} SaveData;

static void
save_data_free (SaveData *data)
{
  g_free (data->path);
  g_bytes_unref (data->data);
  g_free (data);
}

static void start_save (FlProfileStore *self,
                        GTask          *task);

static void
save_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  SaveData        *data = task_data;
  g_autofree char *dir = g_path_get_dirname (data->path);
  g_autoptr (GError) error = NULL;
  gsize            length;
  const char      *contents = g_bytes_get_data (data->data, &length);

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               "Cannot create %s: %s", dir, g_strerror (saved_errno));
      return;
    }

  if (!g_file_set_contents_full (data->path, contents, length,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
save_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  FlProfileStore *self = FL_PROFILE_STORE (object);
  GTask          *next;

  /* result is the task itself, which called back its caller already */
  self->saving = FALSE;
  next = g_queue_pop_head (&self->waiting_saves);
  if (next != NULL)
    start_save (self, next);
}

typedef struct
{
  GAsyncReadyCallback callback;
  gpointer            user_data;
} SaveCaller;

static void
save_thread_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autofree SaveCaller *caller = user_data;

  if (caller->callback != NULL)
    caller->callback (object, result, caller->user_data);
  save_done_cb (object, result, NULL);
}

static void
start_save (FlProfileStore *self,
            GTask          *task)
{
  SaveData *data = g_new0 (SaveData, 1);
  char     *text = fl_profile_store_to_data (self);

  self->saving = TRUE;
  data->path = g_strdup (self->path);
  /* the state at the moment the save starts */
  data->data = g_bytes_new_take (text, strlen (text));
  g_task_set_task_data (task, data, (GDestroyNotify) save_data_free);
  g_task_run_in_thread (task, save_thread);
  g_object_unref (task);
}

void
fl_profile_store_save_async (FlProfileStore      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  SaveCaller *caller;
  GTask      *task;

  g_return_if_fail (FL_IS_PROFILE_STORE (self));

  /* the task calls save_thread_cb, which calls the caller and then
   * starts the next waiting save */
  caller = g_new0 (SaveCaller, 1);
  caller->callback = callback;
  caller->user_data = user_data;
  task = g_task_new (self, cancellable, save_thread_cb, caller);
  g_task_set_source_tag (task, fl_profile_store_save_async);

  if (self->saving)
    g_queue_push_tail (&self->waiting_saves, task);
  else
    start_save (self, task);
}

gboolean
fl_profile_store_save_finish (FlProfileStore  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_profile_store_save_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
