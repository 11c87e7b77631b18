/* test-token-store.c: tokens in the keyring.  Runs twice: with libsecret's
 * file backend (SECRET_BACKEND=file), and through with-keyring.sh against
 * a real gnome-keyring-daemon in the private D-Bus session. */
#define G_LOG_DOMAIN "test-token-store"

#include "config.h"

#include <string.h>

#include "fl-token-store.h"
#include "shell-test-util.h"

static gboolean
using_file_backend (void)
{
  return g_strcmp0 (g_getenv ("SECRET_BACKEND"), "file") == 0;
}

static void
done_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static gboolean
store (const char       *profile,
       const FlTokenSet *tokens,
       GError          **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_token_store_store_async (profile, "Test", tokens, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  return fl_token_store_store_finish (result, error);
}

static FlTokenSet *
lookup (const char *profile,
        GError    **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_token_store_lookup_async (profile, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  return fl_token_store_lookup_finish (result, error);
}

static gboolean
clear (const char *profile,
       GError    **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_token_store_clear_async (profile, NULL, done_cb, &result);
  ST_WAIT_UNTIL (result != NULL);
  return fl_token_store_clear_finish (result, error);
}

static void
assert_same_tokens (const FlTokenSet *a,
                    const FlTokenSet *b)
{
  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_cmpstr (a->id_token, ==, b->id_token);
  g_assert_cmpstr (a->access_token, ==, b->access_token);
  g_assert_cmpstr (a->refresh_token, ==, b->refresh_token);
  g_assert_cmpint (a->expires_at, ==, b->expires_at);
  g_assert_cmpstr (a->username, ==, b->username);
}

static void
test_json (void)
{
  g_autoptr (FlTokenSet) set = fl_token_set_new ("id.t.x", "access.t.x", "refresh-t", 1700000000, "ada");
  g_autoptr (FlTokenSet) back = NULL;
  g_autoptr (FlTokenSet) copy = fl_token_set_copy (set);
  g_autofree char       *json = fl_token_set_to_json (set);
  const char            *bad[] = {
    "", "[]", "nope", "{}", "{\"accessToken\": 5}", "{\"accessToken\": \"a\", \"expiresAt\": \"x\"}",
  };

  back = fl_token_set_from_json (json, NULL);
  assert_same_tokens (set, back);
  assert_same_tokens (set, copy);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError)     error = NULL;
      g_autoptr (FlTokenSet) none = fl_token_set_from_json (bad[i], &error);

      g_assert_null (none);
      g_assert_error (error, FL_TOKEN_STORE_ERROR, FL_TOKEN_STORE_ERROR_CORRUPT);
      /* the message never quotes the secret */
      if (*bad[i] != '\0')
        g_assert_null (strstr (error->message, bad[i]));
    }
}

/* Every place on disk the console could have written to. */
static gboolean
disk_contains (const char *needle)
{
  const char *dirs[] = {
    g_get_home_dir (),
    g_get_user_config_dir (),
    g_get_user_data_dir (),
    g_get_user_cache_dir (),
    g_get_user_state_dir (),
    g_getenv ("FIELDLINE_TEST_KEYRING_DIR"), /* the daemon's, from with-keyring.sh */
    g_getenv ("FIELDLINE_TEST_SECRET_DIR"),  /* the file backend's */
  };

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    if (dirs[i] != NULL && st_tree_contains (dirs[i], needle))
      return TRUE;

  return FALSE;
}

static void
test_store_lookup_clear (void)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlTokenSet) none = NULL;
  g_autoptr (FlTokenSet) found = NULL;
  g_autoptr (FlTokenSet) other_found = NULL;
  g_autofree char       *nonce = g_uuid_string_random ();
  g_autofree char       *access = g_strconcat ("eyJ.access.", nonce, NULL);
  g_autofree char       *refresh = g_strconcat ("refresh-", nonce, NULL);
  g_autoptr (FlTokenSet) tokens = fl_token_set_new ("eyJ.id.x", access, refresh, 1800000000, "ada");
  g_autoptr (FlTokenSet) newer = fl_token_set_new ("eyJ.id.y", "eyJ.access.y", refresh, 1800003600, "ada");
  g_autoptr (FlTokenSet) other = fl_token_set_new (NULL, "eyJ.access.z", "refresh-z", 0, "bob");

  none = lookup ("lab-127.0.0.1-1", &error);
  g_assert_no_error (error);
  g_assert_null (none);
  g_assert_false (clear ("lab-127.0.0.1-1", &error));
  g_assert_no_error (error);

  g_assert_true (store ("lab-127.0.0.1-1", tokens, &error));
  g_assert_no_error (error);
  g_assert_true (store ("lab-127.0.0.1-2", other, &error));
  g_assert_no_error (error);

  found = lookup ("lab-127.0.0.1-1", &error);
  g_assert_no_error (error);
  assert_same_tokens (tokens, found);

  /* the tokens are nowhere on disk in the clear */
  g_assert_false (disk_contains (refresh));
  g_assert_false (disk_contains (access));

  /* storing again replaces */
  g_assert_true (store ("lab-127.0.0.1-1", newer, &error));
  g_assert_no_error (error);
  g_clear_pointer (&found, fl_token_set_free);
  found = lookup ("lab-127.0.0.1-1", &error);
  g_assert_no_error (error);
  assert_same_tokens (newer, found);

  /* clearing one profile leaves the other */
  g_assert_true (clear ("lab-127.0.0.1-1", &error));
  g_assert_no_error (error);
  g_clear_pointer (&found, fl_token_set_free);
  found = lookup ("lab-127.0.0.1-1", &error);
  g_assert_no_error (error);
  g_assert_null (found);

  other_found = lookup ("lab-127.0.0.1-2", &error);
  g_assert_no_error (error);
  assert_same_tokens (other, other_found);
  g_assert_true (clear ("lab-127.0.0.1-2", &error));
  g_assert_no_error (error);
}

/* Through the Secret Service itself: the item has our schema and the
 * profile attribute, and holds JSON. */
static void
test_secret_service_item (void)
{
  g_autoptr (GError)       error = NULL;
  g_autoptr (SecretService) service = NULL;
  g_autoptr (GHashTable)   attributes = NULL;
  g_autoptr (FlTokenSet)   tokens = fl_token_set_new ("eyJ.id", "eyJ.access", "refresh-1", 1800000000, "ada");
  GList                   *items;
  SecretItem              *item;
  g_autoptr (GHashTable)   item_attributes = NULL;
  SecretValue             *value;

  g_assert_true (store ("cloud-1234", tokens, &error));
  g_assert_no_error (error);

  service = secret_service_get_sync (SECRET_SERVICE_OPEN_SESSION, NULL, &error);
  g_assert_no_error (error);
  attributes = secret_attributes_build (fl_token_store_get_schema (), "profile", "cloud-1234", NULL);
  items = secret_service_search_sync (service, fl_token_store_get_schema (), attributes,
                                      SECRET_SEARCH_LOAD_SECRETS | SECRET_SEARCH_UNLOCK | SECRET_SEARCH_ALL,
                                      NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_length (items), ==, 1);

  item = items->data;
  item_attributes = secret_item_get_attributes (item);
  g_assert_cmpstr (g_hash_table_lookup (item_attributes, "profile"), ==, "cloud-1234");
  g_assert_cmpstr (g_hash_table_lookup (item_attributes, "xdg:schema"), ==, "io.github.fieldline.Fieldline.Tokens");
  value = secret_item_get_secret (item);
  g_assert_nonnull (value);
  {
    g_autoptr (FlTokenSet) back = fl_token_set_from_json (secret_value_get_text (value), &error);

    g_assert_no_error (error);
    assert_same_tokens (tokens, back);
  }
  secret_value_unref (value);
  g_list_free_full (items, g_object_unref);

  g_assert_true (clear ("cloud-1234", &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *secret_dir = NULL;
  int              status;

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  if (using_file_backend () && g_getenv ("SECRET_FILE_TEST_PATH") == NULL)
    {
      g_autofree char *path = NULL;

      secret_dir = g_dir_make_tmp ("fieldline-secret-XXXXXX", NULL);
      g_assert_nonnull (secret_dir);
      path = g_build_filename (secret_dir, "keyring.file", NULL);
      g_setenv ("SECRET_FILE_TEST_PATH", path, TRUE);
      g_setenv ("SECRET_FILE_TEST_PASSWORD", "test-password", TRUE);
      g_setenv ("FIELDLINE_TEST_SECRET_DIR", secret_dir, TRUE);
    }

  g_test_add_func ("/fieldline/console/token-store/json", test_json);
  g_test_add_func ("/fieldline/console/token-store/store-lookup-clear", test_store_lookup_clear);
  /* only where there is a Secret Service (with-keyring.sh) */
  if (!using_file_backend ())
    g_test_add_func ("/fieldline/console/token-store/secret-service-item", test_secret_service_item);

  status = g_test_run ();

  secret_service_disconnect ();
  if (secret_dir != NULL)
    st_remove_tree (secret_dir);

  return status;
}
