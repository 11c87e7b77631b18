/* test-profile.c: connection profiles and their JSON file. */
#define G_LOG_DOMAIN "test-profile"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "fl-profile-store.h"

#define WAIT_UNTIL(cond)                        \
  G_STMT_START                                  \
  {                                             \
    gint64 deadline_ = g_get_monotonic_time () + 10 * G_USEC_PER_SEC; \
    while (!(cond) && g_get_monotonic_time () < deadline_) \
      g_main_context_iteration (NULL, TRUE);    \
    g_assert_true (cond);                       \
  }                                             \
  G_STMT_END

static void
test_normalize_url (void)
{
  struct {
    const char *in;
    const char *out;
  } cases[] = {
    { "http://127.0.0.1:8080", "http://127.0.0.1:8080" },
    { "http://127.0.0.1:8080/", "http://127.0.0.1:8080" },
    { "  127.0.0.1:8080 ", "http://127.0.0.1:8080" },
    { "https://relay.example.org", "https://relay.example.org" },
    { "https://relay.example.org/api/", "https://relay.example.org/api" },
    { "ftp://relay.example.org", NULL },
    { "http://", NULL },
    { "", NULL },
    { "http://127.0.0.1:8080/?x=1", NULL },
    { "http://user:pw@127.0.0.1:8080", NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *out = fl_profile_normalize_url (cases[i].in);

      g_assert_cmpstr (out, ==, cases[i].out);
    }
}

static void
test_lab (void)
{
  g_autoptr (FlProfile) lab = fl_profile_new_lab ("127.0.0.1:8080/");
  g_autoptr (FlProfile) same = fl_profile_new_lab ("http://127.0.0.1:8080");
  g_autoptr (FlProfile) other = fl_profile_new_lab ("http://127.0.0.1:8081");
  g_autoptr (FlProfile) secure = fl_profile_new_lab ("https://127.0.0.1:8080");
  g_autofree char      *endpoint = NULL;

  g_assert_null (fl_profile_new_lab ("not a url at all://"));

  g_assert_nonnull (lab);
  g_assert_cmpint (fl_profile_get_kind (lab), ==, FL_PROFILE_LAB);
  g_assert_cmpstr (fl_profile_get_url (lab), ==, "http://127.0.0.1:8080");
  g_assert_cmpstr (fl_profile_get_id (lab), ==, fl_profile_get_id (same));
  g_assert_cmpstr (fl_profile_get_id (lab), !=, fl_profile_get_id (other));
  g_assert_cmpstr (fl_profile_get_id (lab), !=, fl_profile_get_id (secure));
  g_assert_cmpstr (fl_profile_get_name (lab), ==, "127.0.0.1:8080");

  /* before GET /config: the relay is the API, ws:// its /events */
  g_assert_cmpstr (fl_profile_get_api_url (lab), ==, "http://127.0.0.1:8080");
  g_assert_cmpstr (fl_profile_get_websocket_url (lab), ==, "ws://127.0.0.1:8080/events");
  g_assert_cmpstr (fl_profile_get_websocket_url (secure), ==, "wss://127.0.0.1:8080/events");
  g_assert_false (fl_profile_is_complete (lab));

  endpoint = fl_profile_dup_cognito_endpoint (lab);
  g_assert_cmpstr (endpoint, ==, "http://127.0.0.1:8080/");

  g_object_set (lab, "user-pool-id", "local_abc", "client-id", "client1",
                "websocket-url", "ws://10.0.0.1:8080/events", NULL);
  g_assert_true (fl_profile_is_complete (lab));
  g_assert_cmpstr (fl_profile_get_websocket_url (lab), ==, "ws://10.0.0.1:8080/events");
}

static void
test_cloud (void)
{
  g_autoptr (FlProfile) cloud = fl_profile_new_cloud ("Production", "eu-west-1", "eu-west-1_AbC123",
                                                      "client123", "https://api.example.org/prod",
                                                      "wss://ws.example.org/prod");
  g_autoptr (FlProfile) cloud2 = fl_profile_new_cloud ("Production", "eu-west-1", "eu-west-1_AbC123",
                                                       "client123", "https://api.example.org/prod",
                                                       "wss://ws.example.org/prod");
  g_autofree char      *endpoint = fl_profile_dup_cognito_endpoint (cloud);

  g_assert_cmpint (fl_profile_get_kind (cloud), ==, FL_PROFILE_CLOUD);
  g_assert_cmpstr (endpoint, ==, "https://cognito-idp.eu-west-1.amazonaws.com/");
  g_assert_cmpstr (fl_profile_get_region (cloud), ==, "eu-west-1");
  g_assert_cmpstr (fl_profile_get_user_pool_id (cloud), ==, "eu-west-1_AbC123");
  g_assert_cmpstr (fl_profile_get_client_id (cloud), ==, "client123");
  g_assert_cmpstr (fl_profile_get_api_url (cloud), ==, "https://api.example.org/prod");
  g_assert_cmpstr (fl_profile_get_websocket_url (cloud), ==, "wss://ws.example.org/prod");
  g_assert_null (fl_profile_get_url (cloud));
  g_assert_true (fl_profile_is_complete (cloud));
  /* ids are stable per profile and unique */
  g_assert_true (g_str_has_prefix (fl_profile_get_id (cloud), "cloud-"));
  g_assert_cmpstr (fl_profile_get_id (cloud), !=, fl_profile_get_id (cloud2));
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
save (FlProfileStore *store,
      GError        **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_profile_store_save_async (store, NULL, done_cb, &result);
  WAIT_UNTIL (result != NULL);
  return fl_profile_store_save_finish (store, result, error);
}

static gboolean
load (FlProfileStore *store,
      GError        **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_profile_store_load_async (store, NULL, done_cb, &result);
  WAIT_UNTIL (result != NULL);
  return fl_profile_store_load_finish (store, result, error);
}

static void
assert_same_profile (FlProfile *a,
                     FlProfile *b)
{
  const char *props[] = { "id", "name", "url", "region", "user-pool-id", "client-id", "api-url", "websocket-url" };

  g_assert_cmpint (fl_profile_get_kind (a), ==, fl_profile_get_kind (b));
  for (guint i = 0; i < G_N_ELEMENTS (props); i++)
    {
      g_autofree char *va = NULL;
      g_autofree char *vb = NULL;

      g_object_get (a, props[i], &va, NULL);
      g_object_get (b, props[i], &vb, NULL);
      g_assert_cmpstr (va, ==, vb);
    }
}

static void
test_store_round_trip (void)
{
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlProfileStore) store = fl_profile_store_new (NULL);
  g_autoptr (FlProfileStore) again = NULL;
  g_autoptr (FlProfile)      lab = fl_profile_new_lab ("http://127.0.0.1:8080");
  g_autoptr (FlProfile)      cloud = fl_profile_new_cloud ("Prod", "eu-west-1", "eu-west-1_AbC123", "client123",
                                                           "https://api.example.org", "wss://ws.example.org");
  g_autofree char           *expected_path = g_build_filename (g_get_user_config_dir (), "fieldline", "profiles.json", NULL);
  g_autofree char           *contents = NULL;
  g_autoptr (JsonParser)     parser = json_parser_new ();
  JsonArray                 *array;
  GStatBuf                   st;

  /* $XDG_CONFIG_HOME/fieldline/profiles.json, and none yet: empty */
  g_assert_cmpstr (fl_profile_store_get_path (store), ==, expected_path);
  g_assert_true (load (store, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 0);

  g_object_set (lab, "user-pool-id", "local_abc", "client-id", "labclient", "region", "local", NULL);
  fl_profile_store_add (store, lab);
  fl_profile_store_add (store, cloud);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 2);
  /* adding the same id again replaces */
  fl_profile_store_add (store, lab);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 2);

  g_assert_true (save (store, &error));
  g_assert_no_error (error);

  /* private to the user */
  g_assert_cmpint (g_stat (expected_path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0077, ==, 0);

  again = fl_profile_store_new (NULL);
  g_assert_true (load (again, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (again)), ==, 2);
  assert_same_profile (lab, fl_profile_store_lookup (again, fl_profile_get_id (lab)));
  assert_same_profile (cloud, fl_profile_store_lookup (again, fl_profile_get_id (cloud)));
  g_assert_true (fl_profile_store_find_lab (again, "127.0.0.1:8080/") == fl_profile_store_lookup (again, fl_profile_get_id (lab)));
  g_assert_null (fl_profile_store_find_lab (again, "http://127.0.0.1:9999"));

  /* the file holds only the profiles' public members: no secrets */
  g_assert_true (g_file_get_contents (expected_path, &contents, NULL, NULL));
  g_assert_true (json_parser_load_from_data (parser, contents, -1, NULL));
  array = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "profiles");
  g_assert_cmpuint (json_array_get_length (array), ==, 2);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *object = json_array_get_object_element (array, i);
      g_autoptr (GList) members = json_object_get_members (object);

      for (GList *l = members; l != NULL; l = l->next)
        {
          const char *allowed[] = { "id", "kind", "name", "url", "region", "userPoolId", "clientId", "apiUrl", "websocketUrl", NULL };

          if (!g_strv_contains (allowed, l->data))
            g_error ("unexpected member %s in profiles.json", (const char *) l->data);
        }
    }
  g_assert_null (strstr (contents, "oken"));
  g_assert_null (strstr (contents, "assword"));
  g_assert_null (strstr (contents, "ecret"));

  /* removal */
  g_assert_true (fl_profile_store_remove (again, fl_profile_get_id (cloud)));
  g_assert_false (fl_profile_store_remove (again, fl_profile_get_id (cloud)));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (again)), ==, 1);
}

static void
test_store_concurrent_saves (void)
{
  g_autoptr (FlProfileStore) store = fl_profile_store_new (NULL);
  g_autoptr (FlProfileStore) again = fl_profile_store_new (NULL);
  g_autoptr (GAsyncResult)   first = NULL;
  g_autoptr (GAsyncResult)   second = NULL;
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlProfile)      a = fl_profile_new_lab ("http://127.0.0.1:1");
  g_autoptr (FlProfile)      b = fl_profile_new_lab ("http://127.0.0.1:2");

  fl_profile_store_add (store, a);
  fl_profile_store_save_async (store, NULL, done_cb, &first);
  fl_profile_store_add (store, b);
  fl_profile_store_save_async (store, NULL, done_cb, &second);
  WAIT_UNTIL (first != NULL && second != NULL);
  g_assert_true (fl_profile_store_save_finish (store, first, &error));
  g_assert_true (fl_profile_store_save_finish (store, second, &error));
  g_assert_no_error (error);

  /* the last save wins: both profiles */
  g_assert_true (load (again, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (again)), ==, 2);
}

static void
test_store_bad_file (void)
{
  const char *bad[] = {
    "not json",
    "[]",
    "{\"profiles\": 3}",
    "{\"profiles\": [1]}",
    "{\"profiles\": [{\"kind\": \"lab\", \"url\": \"http://x\"}]}",
    "{\"profiles\": [{\"id\": \"a\", \"kind\": \"moon\"}]}",
    "{\"profiles\": [{\"id\": \"a\", \"kind\": \"lab\", \"url\": 7}]}",
    "{\"profiles\": [{\"id\": \"a\", \"kind\": \"lab\", \"url\": \"gopher://x\"}]}",
  };
  g_autoptr (FlProfileStore) store = fl_profile_store_new (NULL);
  g_autoptr (FlProfile)      kept = fl_profile_new_lab ("http://127.0.0.1:1");

  fl_profile_store_add (store, kept);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (fl_profile_store_load_from_data (store, bad[i], -1, &error));
      g_assert_nonnull (error);
      /* a failed load leaves the profiles as they were */
      g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (store)), ==, 1);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);

  g_test_add_func ("/fieldline/console/profile/normalize-url", test_normalize_url);
  g_test_add_func ("/fieldline/console/profile/lab", test_lab);
  g_test_add_func ("/fieldline/console/profile/cloud", test_cloud);
  g_test_add_func ("/fieldline/console/profile-store/round-trip", test_store_round_trip);
  g_test_add_func ("/fieldline/console/profile-store/concurrent-saves", test_store_concurrent_saves);
  g_test_add_func ("/fieldline/console/profile-store/bad-file", test_store_bad_file);

  return g_test_run ();
}
