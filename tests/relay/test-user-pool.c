/* test-user-pool.c: the relay's Cognito-shaped user pool: ids, users,
 * sign-in, tokens and their claims, throttling, refresh, bearer checks. */
#define G_LOG_DOMAIN "test-user-pool"

#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "fieldline-core.h"
#include "fl-user-pool-private.h"
#include "fl-user-pool.h"

#define PASSWORD "Corr3ct-Horse"

typedef struct
{
  char       *dir;
  FlUserPool *pool;
  gint64      offset_us; /* added to the real clock */
} Fixture;

static gint64
fixture_clock (gpointer user_data)
{
  Fixture *f = user_data;

  return g_get_real_time () + f->offset_us;
}

static gint64
fixture_now_s (Fixture *f)
{
  return fixture_clock (f) / G_USEC_PER_SEC;
}

static void
advance (Fixture *f,
         gint64   seconds)
{
  f->offset_us += seconds * G_USEC_PER_SEC;
}

static FlUserPool *
open_pool (Fixture    *f,
           const char *dir,
           gboolean    fast)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *issuer = NULL;
  FlUserPool        *pool = fl_user_pool_open (dir, &error);

  g_assert_no_error (error);
  g_assert_nonnull (pool);
  _fl_user_pool_set_clock (pool, fixture_clock, f);
  if (fast)
    _fl_user_pool_set_argon2_params (pool, 1, 64, 1);
  issuer = g_strdup_printf ("http://127.0.0.1:4242/%s", fl_user_pool_get_pool_id (pool));
  fl_user_pool_set_issuer (pool, issuer);

  return pool;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("fl-user-pool-XXXXXX", &error);
  g_assert_no_error (error);
  f->offset_us = 0;
  f->pool = open_pool (f, f->dir, data == NULL);
}

static void
rm_rf (const char *path)
{
  GDir       *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          rm_rf (child);
        }
      g_dir_close (dir);
      g_rmdir (path);
    }
  else
    {
      g_unlink (path);
    }
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_clear_object (&f->pool);
  rm_rf (f->dir);
  g_clear_pointer (&f->dir, g_free);
}

/* ------------------------------------------------------------------ */
/* Async helpers: run the call, wait on a main loop */

typedef struct
{
  GMainLoop    *loop;
  GAsyncResult *result;
} Wait;

static void
wait_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Wait *w = user_data;

  w->result = g_object_ref (result);
  g_main_loop_quit (w->loop);
}

static FlTokens *
login (FlUserPool *pool,
       const char *username,
       const char *password,
       const char *address,
       GError    **error)
{
  Wait      w = { g_main_loop_new (NULL, FALSE), NULL };
  FlTokens *tokens;

  fl_user_pool_login_async (pool, username, password, address, NULL, wait_cb, &w);
  g_main_loop_run (w.loop);
  tokens = fl_user_pool_login_finish (pool, w.result, error);
  g_object_unref (w.result);
  g_main_loop_unref (w.loop);

  return tokens;
}

static FlTokens *
refresh (FlUserPool *pool,
         const char *refresh_token,
         GError    **error)
{
  Wait      w = { g_main_loop_new (NULL, FALSE), NULL };
  FlTokens *tokens;

  fl_user_pool_refresh_async (pool, refresh_token, NULL, wait_cb, &w);
  g_main_loop_run (w.loop);
  tokens = fl_user_pool_refresh_finish (pool, w.result, error);
  g_object_unref (w.result);
  g_main_loop_unref (w.loop);

  return tokens;
}

static void
add_user (FlUserPool *pool,
          const char *username,
          const char *email,
          FlRole      role)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_user_pool_add_user (pool, username, email, PASSWORD, role, &error));
  g_assert_no_error (error);
}

static FlTokens *
login_ok (FlUserPool *pool,
          const char *username)
{
  g_autoptr (GError) error = NULL;
  FlTokens          *tokens = login (pool, username, PASSWORD, "192.0.2.1", &error);

  g_assert_no_error (error);
  g_assert_nonnull (tokens);
  return tokens;
}

static void
assert_login_fails (FlUserPool *pool,
                    const char *username,
                    const char *password,
                    const char *address,
                    FlAuthError code)
{
  g_autoptr (GError)   error = NULL;
  g_autoptr (FlTokens) tokens = login (pool, username, password, address, &error);

  g_assert_null (tokens);
  g_assert_error (error, FL_AUTH_ERROR, (gint) code);
}

/* ------------------------------------------------------------------ */
/* Token helpers */

static JsonObject *
decode_part (const char *token,
             guint       index)
{
  g_auto (GStrv)       parts = g_strsplit (token, ".", -1);
  g_autofree guint8   *raw = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (GError)   error = NULL;
  gsize                len;

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  raw = fl_base64url_decode (parts[index], &len);
  g_assert_nonnull (raw);
  node = json_from_string ((const char *) raw, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));

  return json_node_dup_object (node);
}

static void
assert_uuid (JsonObject *claims,
             const char *name)
{
  g_assert_true (json_object_has_member (claims, name));
  g_assert_true (g_uuid_string_is_valid (json_object_get_string_member (claims, name)));
}

static void
assert_groups (JsonObject *claims,
               const char *group)
{
  JsonArray *groups = json_object_get_array_member (claims, "cognito:groups");

  g_assert_nonnull (groups);
  g_assert_cmpuint (json_array_get_length (groups), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (groups, 0), ==, group);
}

static void
assert_auth_fails (FlUserPool *pool,
                   const char *token)
{
  g_autoptr (GError)      error = NULL;
  g_autoptr (FlPrincipal) principal = fl_user_pool_authenticate (pool, token, &error);

  g_assert_null (principal);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
}

static FlPrincipal *
auth_ok (FlUserPool *pool,
         const char *token)
{
  g_autoptr (GError) error = NULL;
  FlPrincipal       *principal = fl_user_pool_authenticate (pool, token, &error);

  g_assert_no_error (error);
  g_assert_nonnull (principal);
  return principal;
}

static char *
b64_json (JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char     *text = NULL;

  json_node_set_object (node, obj);
  text = json_to_string (node, FALSE);
  return fl_base64url_encode ((const guint8 *) text, strlen (text));
}

static gboolean
file_contains (const char *path,
               const char *needle)
{
  g_autofree char *contents = NULL;
  gsize            len = 0;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return FALSE;

  return memmem (contents, len, needle, strlen (needle)) != NULL;
}

/* ------------------------------------------------------------------ */

static void
test_open (Fixture      *f,
           gconstpointer data)
{
  g_autofree char     *pool_id = g_strdup (fl_user_pool_get_pool_id (f->pool));
  g_autofree char     *client_id = g_strdup (fl_user_pool_get_client_id (f->pool));
  g_autofree char     *db = g_build_filename (f->dir, "users.db", NULL);
  g_autofree char     *id_pem = g_build_filename (f->dir, "keys", "id-token.pem", NULL);
  g_autofree char     *access_pem = g_build_filename (f->dir, "keys", "access-token.pem", NULL);
  g_autofree char     *keys_dir = g_build_filename (f->dir, "keys", NULL);
  g_autoptr (JsonNode) jwks = fl_user_pool_get_jwks (f->pool);
  g_autoptr (JsonNode) jwks2 = NULL;
  g_autofree char     *jwks_text = json_to_string (jwks, FALSE);
  g_autofree char     *jwks_text2 = NULL;
  JsonArray           *keys;
  GStatBuf             st;

  g_assert_true (g_regex_match_simple ("^local_[A-Za-z0-9]{9}$", pool_id, 0, 0));
  g_assert_true (g_regex_match_simple ("^[a-z0-9]{26}$", client_id, 0, 0));
  /* amazon-cognito-identity-js checks pool ids with this */
  g_assert_true (g_regex_match_simple ("^[\\w-]+_[0-9a-zA-Z]+$", pool_id, 0, 0));

  keys = json_object_get_array_member (json_node_get_object (jwks), "keys");
  g_assert_cmpuint (json_array_get_length (keys), ==, 2);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (keys, 0), "kid"), !=,
                   json_object_get_string_member (json_array_get_object_element (keys, 1), "kid"));

  g_assert_cmpint (g_stat (db, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (id_pem, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (access_pem, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (keys_dir, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0077, ==, 0);

  g_assert_true (g_str_has_suffix (fl_user_pool_get_issuer (f->pool), pool_id));

  /* reopen: the same ids and keys */
  g_clear_object (&f->pool);
  f->pool = open_pool (f, f->dir, TRUE);
  g_assert_cmpstr (fl_user_pool_get_pool_id (f->pool), ==, pool_id);
  g_assert_cmpstr (fl_user_pool_get_client_id (f->pool), ==, client_id);
  jwks2 = fl_user_pool_get_jwks (f->pool);
  jwks_text2 = json_to_string (jwks2, FALSE);
  g_assert_cmpstr (jwks_text2, ==, jwks_text);

  /* another directory: other ids */
  {
    g_autofree char       *dir2 = g_build_filename (f->dir, "other", NULL);
    g_autoptr (FlUserPool) other = open_pool (f, dir2, TRUE);

    g_assert_cmpstr (fl_user_pool_get_pool_id (other), !=, pool_id);
    g_assert_cmpstr (fl_user_pool_get_client_id (other), !=, client_id);
  }

  /* issuer: a trailing slash is dropped */
  fl_user_pool_set_issuer (f->pool, "http://example.test:8080/abc/");
  g_assert_cmpstr (fl_user_pool_get_issuer (f->pool), ==, "http://example.test:8080/abc");
}

static void
test_login_claims (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (FlTokens)   tokens = NULL;
  g_autoptr (JsonObject) id = NULL;
  g_autoptr (JsonObject) access = NULL;
  g_autoptr (JsonObject) id_header = NULL;
  g_autoptr (JsonObject) access_header = NULL;
  g_autoptr (JsonNode)   json = NULL;
  g_autoptr (JsonNode)   jwks = fl_user_pool_get_jwks (f->pool);
  g_autofree char       *db = g_build_filename (f->dir, "users.db", NULL);
  g_autofree char       *wal = g_build_filename (f->dir, "users.db-wal", NULL);
  const char            *issuer = fl_user_pool_get_issuer (f->pool);
  const char            *client_id = fl_user_pool_get_client_id (f->pool);
  gint64                 before = fixture_now_s (f);
  gint64                 after;
  JsonArray             *keys;

  add_user (f->pool, "alice", "alice@example.com", FL_ROLE_OPERATOR);
  tokens = login_ok (f->pool, "alice");
  after = fixture_now_s (f);

  g_assert_cmpuint (tokens->expires_in, ==, 3600);
  g_assert_nonnull (tokens->refresh_token);
  g_assert_cmpuint (strlen (tokens->refresh_token), >=, 43);

  id = decode_part (tokens->id_token, 1);
  access = decode_part (tokens->access_token, 1);
  id_header = decode_part (tokens->id_token, 0);
  access_header = decode_part (tokens->access_token, 0);

  /* headers: RS256, two different keys, both in the JWKS */
  g_assert_cmpstr (json_object_get_string_member (id_header, "alg"), ==, "RS256");
  g_assert_cmpstr (json_object_get_string_member (access_header, "alg"), ==, "RS256");
  g_assert_cmpstr (json_object_get_string_member (id_header, "kid"), !=,
                   json_object_get_string_member (access_header, "kid"));
  keys = json_object_get_array_member (json_node_get_object (jwks), "keys");
  {
    gboolean found_id = FALSE, found_access = FALSE;

    for (guint i = 0; i < json_array_get_length (keys); i++)
      {
        const char *kid = json_object_get_string_member (json_array_get_object_element (keys, i), "kid");

        found_id |= g_strcmp0 (kid, json_object_get_string_member (id_header, "kid")) == 0;
        found_access |= g_strcmp0 (kid, json_object_get_string_member (access_header, "kid")) == 0;
      }
    g_assert_true (found_id && found_access);
  }

  /* ID token */
  assert_uuid (id, "sub");
  g_assert_cmpstr (json_object_get_string_member (id, "aud"), ==, client_id);
  g_assert_cmpstr (json_object_get_string_member (id, "email"), ==, "alice@example.com");
  g_assert_true (json_node_get_value_type (json_object_get_member (id, "email_verified")) == G_TYPE_BOOLEAN);
  g_assert_false (json_object_get_boolean_member (id, "email_verified"));
  g_assert_cmpstr (json_object_get_string_member (id, "token_use"), ==, "id");
  g_assert_cmpstr (json_object_get_string_member (id, "iss"), ==, issuer);
  g_assert_cmpstr (json_object_get_string_member (id, "cognito:username"), ==, "alice");
  assert_groups (id, "operator");
  g_assert_cmpint (json_object_get_int_member (id, "auth_time"), >=, before);
  g_assert_cmpint (json_object_get_int_member (id, "auth_time"), <=, after);
  g_assert_cmpint (json_object_get_int_member (id, "iat"), >=, before);
  g_assert_cmpint (json_object_get_int_member (id, "iat"), <=, after);
  g_assert_cmpint (json_object_get_int_member (id, "exp"), ==, json_object_get_int_member (id, "iat") + 3600);
  assert_uuid (id, "jti");
  assert_uuid (id, "origin_jti");
  assert_uuid (id, "event_id");
  g_assert_false (json_object_has_member (id, "client_id"));

  /* access token */
  g_assert_cmpstr (json_object_get_string_member (access, "sub"), ==, json_object_get_string_member (id, "sub"));
  g_assert_cmpstr (json_object_get_string_member (access, "client_id"), ==, client_id);
  g_assert_cmpstr (json_object_get_string_member (access, "username"), ==, "alice");
  g_assert_cmpstr (json_object_get_string_member (access, "scope"), ==, "aws.cognito.signin.user.admin");
  g_assert_cmpstr (json_object_get_string_member (access, "token_use"), ==, "access");
  g_assert_cmpstr (json_object_get_string_member (access, "iss"), ==, issuer);
  assert_groups (access, "operator");
  g_assert_cmpint (json_object_get_int_member (access, "auth_time"), ==, json_object_get_int_member (id, "auth_time"));
  g_assert_cmpint (json_object_get_int_member (access, "exp"), ==, json_object_get_int_member (access, "iat") + 3600);
  assert_uuid (access, "jti");
  g_assert_cmpstr (json_object_get_string_member (access, "jti"), !=, json_object_get_string_member (id, "jti"));
  g_assert_cmpstr (json_object_get_string_member (access, "origin_jti"), ==, json_object_get_string_member (id, "origin_jti"));
  g_assert_cmpstr (json_object_get_string_member (access, "event_id"), ==, json_object_get_string_member (id, "event_id"));
  g_assert_false (json_object_has_member (access, "aud"));
  g_assert_false (json_object_has_member (access, "email"));

  /* the JSON shape the REST API returns */
  json = fl_tokens_to_json (tokens);
  {
    JsonObject *obj = json_node_get_object (json);

    g_assert_cmpstr (json_object_get_string_member (obj, "idToken"), ==, tokens->id_token);
    g_assert_cmpstr (json_object_get_string_member (obj, "accessToken"), ==, tokens->access_token);
    g_assert_cmpstr (json_object_get_string_member (obj, "refreshToken"), ==, tokens->refresh_token);
    g_assert_cmpint (json_object_get_int_member (obj, "expiresIn"), ==, 3600);
  }

  /* neither the password nor the refresh token is on disk */
  g_assert_false (file_contains (db, PASSWORD));
  g_assert_false (file_contains (wal, PASSWORD));
  g_assert_false (file_contains (db, tokens->refresh_token));
  g_assert_false (file_contains (wal, tokens->refresh_token));

  /* a second sign-in is a new session */
  {
    g_autoptr (FlTokens)   again = login_ok (f->pool, "alice");
    g_autoptr (JsonObject) id2 = decode_part (again->id_token, 1);

    g_assert_cmpstr (json_object_get_string_member (id2, "origin_jti"), !=, json_object_get_string_member (id, "origin_jti"));
    g_assert_cmpstr (json_object_get_string_member (id2, "sub"), ==, json_object_get_string_member (id, "sub"));
    g_assert_cmpstr (again->refresh_token, !=, tokens->refresh_token);
  }

  /* usernames are case-insensitive; the token carries the stored form */
  {
    g_autoptr (FlTokens)   upper = login_ok (f->pool, "ALICE");
    g_autoptr (JsonObject) id3 = decode_part (upper->id_token, 1);

    g_assert_cmpstr (json_object_get_string_member (id3, "cognito:username"), ==, "alice");
  }

  /* a user without email gets no email claims, and no groups claim
   * without a group */
  add_user (f->pool, "nomail", NULL, FL_ROLE_NONE);
  {
    g_autoptr (FlTokens)   t = login_ok (f->pool, "nomail");
    g_autoptr (JsonObject) c = decode_part (t->id_token, 1);

    g_assert_false (json_object_has_member (c, "email"));
    g_assert_false (json_object_has_member (c, "email_verified"));
    g_assert_false (json_object_has_member (c, "cognito:groups"));
  }
}

static void
test_wrong_password (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr (GError)   e1 = NULL;
  g_autoptr (GError)   e2 = NULL;
  g_autoptr (FlTokens) t1 = NULL;
  g_autoptr (FlTokens) t2 = NULL;

  add_user (f->pool, "bob", "bob@example.com", FL_ROLE_VIEWER);

  t1 = login (f->pool, "bob", "Wr0ng-Password", "192.0.2.10", &e1);
  t2 = login (f->pool, "nobody", "Wr0ng-Password", "192.0.2.11", &e2);
  g_assert_null (t1);
  g_assert_null (t2);
  g_assert_error (e1, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  g_assert_error (e2, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  g_assert_cmpstr (e1->message, ==, "Incorrect username or password.");
  g_assert_cmpstr (e2->message, ==, e1->message);

  /* the password is case-sensitive, whitespace counts */
  assert_login_fails (f->pool, "bob", "cORR3CT-hORSE", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  assert_login_fails (f->pool, "bob", PASSWORD " ", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);

  /* missing fields; absurd ones */
  {
    g_autofree char *huge = g_strnfill (100000, 'A');

    assert_login_fails (f->pool, "", PASSWORD, NULL, FL_AUTH_ERROR_INVALID_PARAMETER);
    assert_login_fails (f->pool, NULL, PASSWORD, NULL, FL_AUTH_ERROR_INVALID_PARAMETER);
    assert_login_fails (f->pool, "bob", "", NULL, FL_AUTH_ERROR_INVALID_PARAMETER);
    assert_login_fails (f->pool, "bob", NULL, NULL, FL_AUTH_ERROR_INVALID_PARAMETER);
    assert_login_fails (f->pool, "bob", huge, NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
    assert_login_fails (f->pool, huge, PASSWORD, NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
    assert_login_fails (f->pool, "b\xff\xfe", PASSWORD, NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  }

  /* still fine afterwards */
  {
    g_autoptr (FlTokens) t = login_ok (f->pool, "bob");
  }
}

static void
test_password_policy (Fixture      *f,
                      gconstpointer data)
{
  static const struct
  {
    const char *password;
    const char *missing[4];
  } cases[] = {
    { "Ab1!", { "not long enough" } },
    { "abcdefg1!", { "uppercase" } },
    { "ABCDEFG1!", { "lowercase" } },
    { "Abcdefgh!", { "numeric" } },
    { "Abcdefg12", { "symbol" } },
    { "abcdefgh", { "uppercase", "numeric", "symbol" } },
    { "", { "not long enough", "uppercase", "lowercase", "numeric" } },
    { " Abcdef1!", { "space" } },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char   *name = g_strdup_printf ("weak%u", i);

      g_assert_false (fl_user_pool_add_user (f->pool, name, NULL, cases[i].password, FL_ROLE_VIEWER, &error));
      g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD);
      for (guint j = 0; j < G_N_ELEMENTS (cases[i].missing) && cases[i].missing[j]; j++)
        {
          if (strstr (error->message, cases[i].missing[j]) == NULL)
            g_error ("\"%s\": message \"%s\" does not say \"%s\"", cases[i].password, error->message, cases[i].missing[j]);
        }
    }

  /* exactly at the policy; non-ASCII counts as characters */
  {
    g_autoptr (GError) error = NULL;

    g_assert_true (fl_user_pool_add_user (f->pool, "ok1", NULL, "Abcdef1!", FL_ROLE_VIEWER, &error));
    g_assert_no_error (error);
    g_assert_true (fl_user_pool_add_user (f->pool, "ok2", NULL, "Ab1!éééé", FL_ROLE_VIEWER, &error));
    g_assert_no_error (error);
    /* 7 characters in 10 bytes */
    g_assert_false (fl_user_pool_add_user (f->pool, "ok3", NULL, "Ab1!ééé", FL_ROLE_VIEWER, &error));
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD);
    g_assert_nonnull (strstr (error->message, "not long enough"));
    g_clear_error (&error);
    /* letters outside ASCII do not count as upper or lower case */
    g_assert_false (fl_user_pool_add_user (f->pool, "ok4", NULL, "Äbc1!xyzé", FL_ROLE_VIEWER, &error));
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD);
    g_assert_nonnull (strstr (error->message, "uppercase"));
  }
}

static void
test_duplicate (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  add_user (f->pool, "carol", "carol@example.com", FL_ROLE_VIEWER);

  g_assert_false (fl_user_pool_add_user (f->pool, "carol", NULL, PASSWORD, FL_ROLE_ADMIN, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS);
  g_clear_error (&error);

  g_assert_false (fl_user_pool_add_user (f->pool, "Carol", NULL, PASSWORD, FL_ROLE_ADMIN, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS);
  g_clear_error (&error);

  /* bad usernames and emails */
  {
    g_autofree char *long_name = g_strnfill (129, 'x');
    const char      *names[] = { "", "with space", "tab\there", "new\nline", long_name, "\xff" };
    const char      *emails[] = { "no-at", "@example.com", "a@", "a@b@c", "sp ace@example.com" };

    for (guint i = 0; i < G_N_ELEMENTS (names); i++)
      {
        g_assert_false (fl_user_pool_add_user (f->pool, names[i], NULL, PASSWORD, FL_ROLE_VIEWER, &error));
        g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
        g_clear_error (&error);
      }
    for (guint i = 0; i < G_N_ELEMENTS (emails); i++)
      {
        g_assert_false (fl_user_pool_add_user (f->pool, "dave", emails[i], PASSWORD, FL_ROLE_VIEWER, &error));
        g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
        g_clear_error (&error);
      }
  }

  /* the first carol is untouched */
  {
    g_autoptr (FlTokens)    t = login_ok (f->pool, "carol");
    g_autoptr (FlPrincipal) p = auth_ok (f->pool, t->access_token);

    g_assert_cmpint (p->role, ==, FL_ROLE_VIEWER);
  }
}

static void
test_throttle (Fixture      *f,
               gconstpointer data)
{
  const char *addr = "198.51.100.7";

  add_user (f->pool, "erin", NULL, FL_ROLE_VIEWER);

  for (guint i = 0; i < 5; i++)
    assert_login_fails (f->pool, "erin", "Wr0ng-Password", addr, FL_AUTH_ERROR_NOT_AUTHORIZED);

  /* closed now, even for the right password, from anywhere */
  assert_login_fails (f->pool, "erin", PASSWORD, addr, FL_AUTH_ERROR_TOO_MANY_REQUESTS);
  assert_login_fails (f->pool, "erin", PASSWORD, "203.0.113.9", FL_AUTH_ERROR_TOO_MANY_REQUESTS);
  assert_login_fails (f->pool, "ERIN", PASSWORD, NULL, FL_AUTH_ERROR_TOO_MANY_REQUESTS);

  /* the first window is short; a success clears the count */
  advance (f, 2);
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "erin", PASSWORD, addr, &error);

    g_assert_no_error (error);
  }
  for (guint i = 0; i < 4; i++)
    assert_login_fails (f->pool, "erin", "Wr0ng-Password", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "erin", PASSWORD, NULL, &error);

    g_assert_no_error (error);
  }

  /* windows grow, but never past 15 minutes: an attacker who tries again
   * after each window closes never locks the user out for longer */
  for (guint i = 0; i < 30; i++)
    {
      assert_login_fails (f->pool, "erin", "Wr0ng-Password", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
      if (i >= 5)
        assert_login_fails (f->pool, "erin", PASSWORD, NULL, FL_AUTH_ERROR_TOO_MANY_REQUESTS);
      advance (f, 15 * 60 + 1);
    }
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "erin", PASSWORD, NULL, &error);

    g_assert_no_error (error);
  }

  /* attempts while closed do not count: hammering does not extend it */
  for (guint i = 0; i < 5; i++)
    assert_login_fails (f->pool, "erin", "Wr0ng-Password", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  for (guint i = 0; i < 50; i++)
    assert_login_fails (f->pool, "erin", "Wr0ng-Password", NULL, FL_AUTH_ERROR_TOO_MANY_REQUESTS);
  advance (f, 2);
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "erin", PASSWORD, NULL, &error);

    g_assert_no_error (error);
  }

  /* unknown users are throttled the same way */
  for (guint i = 0; i < 5; i++)
    assert_login_fails (f->pool, "ghost", "Wr0ng-Password", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  assert_login_fails (f->pool, "ghost", "Wr0ng-Password", NULL, FL_AUTH_ERROR_TOO_MANY_REQUESTS);
}

static void
test_throttle_address (Fixture      *f,
                       gconstpointer data)
{
  const char *addr = "198.51.100.8";

  add_user (f->pool, "frank", NULL, FL_ROLE_VIEWER);

  /* 20 failures from one address, spread over many usernames */
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *name = g_strdup_printf ("guess%u", i);

      assert_login_fails (f->pool, name, "Wr0ng-Password", addr, FL_AUTH_ERROR_NOT_AUTHORIZED);
    }

  assert_login_fails (f->pool, "frank", PASSWORD, addr, FL_AUTH_ERROR_TOO_MANY_REQUESTS);
  {
    /* not from elsewhere */
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "frank", PASSWORD, "198.51.100.9", &error);

    g_assert_no_error (error);
  }

  advance (f, 2);
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "frank", PASSWORD, addr, &error);

    g_assert_no_error (error);
  }

  /* a success does not clear an address's count: the next failure from
   * it closes it again */
  assert_login_fails (f->pool, "guess99", "Wr0ng-Password", addr, FL_AUTH_ERROR_NOT_AUTHORIZED);
  assert_login_fails (f->pool, "frank", PASSWORD, addr, FL_AUTH_ERROR_TOO_MANY_REQUESTS);

  /* but an hour of quiet does */
  advance (f, 3601);
  for (guint i = 0; i < 19; i++)
    {
      g_autofree char *name = g_strdup_printf ("again%u", i);

      assert_login_fails (f->pool, name, "Wr0ng-Password", addr, FL_AUTH_ERROR_NOT_AUTHORIZED);
    }
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlTokens) t = login (f->pool, "frank", PASSWORD, addr, &error);

    g_assert_no_error (error);
  }
}

static void
test_refresh (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (FlTokens)   tokens = NULL;
  g_autoptr (FlTokens)   fresh = NULL;
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) id = NULL;
  g_autoptr (JsonObject) id2 = NULL;
  g_autoptr (JsonObject) access2 = NULL;
  g_autoptr (JsonNode)   json = NULL;

  add_user (f->pool, "grace", "grace@example.com", FL_ROLE_ADMIN);
  tokens = login_ok (f->pool, "grace");

  advance (f, 120);
  fresh = refresh (f->pool, tokens->refresh_token, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fresh);
  g_assert_null (fresh->refresh_token);
  g_assert_cmpuint (fresh->expires_in, ==, 3600);

  id = decode_part (tokens->id_token, 1);
  id2 = decode_part (fresh->id_token, 1);
  access2 = decode_part (fresh->access_token, 1);
  g_assert_cmpstr (json_object_get_string_member (id2, "sub"), ==, json_object_get_string_member (id, "sub"));
  g_assert_cmpstr (json_object_get_string_member (id2, "origin_jti"), ==, json_object_get_string_member (id, "origin_jti"));
  g_assert_cmpstr (json_object_get_string_member (access2, "origin_jti"), ==, json_object_get_string_member (id, "origin_jti"));
  g_assert_cmpstr (json_object_get_string_member (id2, "jti"), !=, json_object_get_string_member (id, "jti"));
  g_assert_cmpint (json_object_get_int_member (id2, "auth_time"), ==, json_object_get_int_member (id, "auth_time"));
  g_assert_cmpint (json_object_get_int_member (id2, "iat"), >=, json_object_get_int_member (id, "iat") + 120);
  g_assert_cmpstr (json_object_get_string_member (id2, "token_use"), ==, "id");
  g_assert_cmpstr (json_object_get_string_member (access2, "token_use"), ==, "access");

  json = fl_tokens_to_json (fresh);
  g_assert_false (json_object_has_member (json_node_get_object (json), "refreshToken"));

  {
    g_autoptr (FlPrincipal) p1 = auth_ok (f->pool, fresh->id_token);
    g_autoptr (FlPrincipal) p2 = auth_ok (f->pool, fresh->access_token);

    g_assert_cmpint (p1->role, ==, FL_ROLE_ADMIN);
    g_assert_cmpint (p2->role, ==, FL_ROLE_ADMIN);
  }

  /* the refresh token can be used again */
  {
    g_autoptr (FlTokens) again = refresh (f->pool, tokens->refresh_token, &error);

    g_assert_no_error (error);
    g_assert_nonnull (again);
  }

  /* garbage */
  {
    g_autofree char *huge = g_strnfill (1 << 20, 'A');
    g_autofree char *unknown = g_strnfill (43, 'A');
    g_autofree char *almost = g_strdup (tokens->refresh_token);
    g_autofree char *longer = g_strconcat (tokens->refresh_token, "A", NULL);
    g_autofree char *shorter = g_strndup (tokens->refresh_token, strlen (tokens->refresh_token) - 1);
    const char      *bad[] = { "", "garbage", "....", unknown, huge, almost, longer, shorter,
                               tokens->id_token, tokens->access_token, "\xff\xfe", NULL };

    almost[0] = almost[0] == 'A' ? 'B' : 'A';
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autoptr (GError)   e = NULL;
        g_autoptr (FlTokens) t = refresh (f->pool, bad[i], &e);

        g_assert_null (t);
        g_assert_error (e, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
      }
  }

  /* another pool does not know it */
  {
    g_autofree char       *dir2 = g_build_filename (f->dir, "other", NULL);
    g_autoptr (FlUserPool) other = open_pool (f, dir2, TRUE);
    g_autoptr (GError)     e = NULL;
    g_autoptr (FlTokens)   t = refresh (other, tokens->refresh_token, &e);

    g_assert_null (t);
    g_assert_error (e, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  }

  /* 30 days later it has expired */
  advance (f, 30 * 24 * 3600);
  {
    g_autoptr (GError)   e = NULL;
    g_autoptr (FlTokens) t = refresh (f->pool, tokens->refresh_token, &e);

    g_assert_null (t);
    g_assert_error (e, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  }
}

static void
test_authenticate (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (FlTokens)   tokens = NULL;
  g_autoptr (JsonObject) id = NULL;
  const char            *issuer;

  add_user (f->pool, "heidi", "heidi@example.com", FL_ROLE_OPERATOR);
  tokens = login_ok (f->pool, "heidi");
  id = decode_part (tokens->id_token, 1);

  /* both token kinds, and the cache */
  _fl_user_pool_clear_token_cache (f->pool);
  for (guint round = 0; round < 2; round++)
    {
      g_autoptr (FlPrincipal) p = auth_ok (f->pool, tokens->id_token);
      g_autoptr (FlPrincipal) q = auth_ok (f->pool, tokens->access_token);

      g_assert_cmpstr (p->sub, ==, json_object_get_string_member (id, "sub"));
      g_assert_cmpstr (p->username, ==, "heidi");
      g_assert_cmpstr (p->email, ==, "heidi@example.com");
      g_assert_cmpstrv (p->groups, ((const char *[]){ "operator", NULL }));
      g_assert_cmpint (p->role, ==, FL_ROLE_OPERATOR);
      g_assert_cmpint (p->expires_at, ==, json_object_get_int_member (id, "exp"));

      g_assert_cmpstr (q->sub, ==, p->sub);
      g_assert_cmpstr (q->username, ==, "heidi");
      g_assert_null (q->email);
      g_assert_cmpstrv (q->groups, ((const char *[]){ "operator", NULL }));
      g_assert_cmpint (q->role, ==, FL_ROLE_OPERATOR);
      g_assert_cmpuint (_fl_user_pool_get_token_cache_size (f->pool), ==, 2);
    }

  /* nothing, garbage */
  assert_auth_fails (f->pool, NULL);
  assert_auth_fails (f->pool, "");
  assert_auth_fails (f->pool, "garbage");
  assert_auth_fails (f->pool, "a.b.c");
  assert_auth_fails (f->pool, tokens->refresh_token);
  {
    g_autofree char *prefix = g_strndup (tokens->id_token, strlen (tokens->id_token) - 1);

    assert_auth_fails (f->pool, prefix);
  }

  /* alg none, with the pool's own kid and the token's own claims */
  {
    g_autoptr (JsonObject) header = decode_part (tokens->id_token, 0);
    g_autofree char       *p = b64_json (id);
    g_autofree char       *h = NULL;
    g_autofree char       *t = NULL;

    json_object_set_string_member (header, "alg", "none");
    h = b64_json (header);
    t = g_strdup_printf ("%s.%s.", h, p);
    assert_auth_fails (f->pool, t);
  }

  /* signed by a fresh key (unknown kid) */
  {
    g_autoptr (GError)   error = NULL;
    g_autoptr (FlJwtKey) key = fl_jwt_key_generate (2048, &error);
    g_autofree char     *t = NULL;

    g_assert_no_error (error);
    t = fl_jwt_sign (key, id, &error);
    g_assert_no_error (error);
    assert_auth_fails (f->pool, t);
  }

  /* signed by a fresh key, naming the pool's kid */
  {
    g_autoptr (JsonObject) header = decode_part (tokens->id_token, 0);
    g_autofree char       *h = b64_json (header);
    g_autofree char       *p = NULL;
    g_autofree char       *input = NULL;
    g_autofree char       *sig_b64 = NULL;
    g_autofree char       *t = NULL;
    gnutls_x509_privkey_t  x509;
    gnutls_privkey_t       priv;
    gnutls_datum_t         d, sig = { NULL, 0 };

    json_object_set_array_member (id, "cognito:groups", json_array_new ());
    json_array_add_string_element (json_object_get_array_member (id, "cognito:groups"), "admin");
    p = b64_json (id);
    input = g_strdup_printf ("%s.%s", h, p);
    d.data = (unsigned char *) input;
    d.size = strlen (input);
    g_assert_cmpint (gnutls_x509_privkey_init (&x509), ==, 0);
    g_assert_cmpint (gnutls_x509_privkey_generate (x509, GNUTLS_PK_RSA, 2048, 0), ==, 0);
    g_assert_cmpint (gnutls_privkey_init (&priv), ==, 0);
    g_assert_cmpint (gnutls_privkey_import_x509 (priv, x509, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE), ==, 0);
    g_assert_cmpint (gnutls_privkey_sign_data2 (priv, GNUTLS_SIGN_RSA_SHA256, 0, &d, &sig), ==, 0);
    sig_b64 = fl_base64url_encode (sig.data, sig.size);
    gnutls_free (sig.data);
    gnutls_privkey_deinit (priv);
    t = g_strdup_printf ("%s.%s", input, sig_b64);
    assert_auth_fails (f->pool, t);

    /* and the genuine signature over the changed claims */
    {
      g_auto (GStrv)   parts = g_strsplit (tokens->id_token, ".", -1);
      g_autofree char *t2 = g_strdup_printf ("%s.%s.%s", parts[0], p, parts[2]);

      assert_auth_fails (f->pool, t2);
    }
  }

  /* minted by another pool */
  {
    g_autofree char       *dir2 = g_build_filename (f->dir, "other", NULL);
    g_autoptr (FlUserPool) other = open_pool (f, dir2, TRUE);
    g_autoptr (FlTokens)   t = NULL;

    /* same issuer even, to be sure the keys are what refuses it */
    fl_user_pool_set_issuer (other, fl_user_pool_get_issuer (f->pool));
    add_user (other, "heidi", "heidi@example.com", FL_ROLE_ADMIN);
    t = login_ok (other, "heidi");
    assert_auth_fails (f->pool, t->id_token);
    assert_auth_fails (f->pool, t->access_token);
    /* and the other way round */
    assert_auth_fails (other, tokens->id_token);
  }

  /* other issuer: minted while the pool had another address */
  issuer = fl_user_pool_get_issuer (f->pool);
  {
    g_autofree char     *saved = g_strdup (issuer);
    g_autoptr (FlTokens) t = NULL;

    fl_user_pool_set_issuer (f->pool, "http://10.9.8.7:1234/elsewhere");
    t = login_ok (f->pool, "heidi");
    {
      g_autoptr (FlPrincipal) p = auth_ok (f->pool, t->id_token);
    }
    fl_user_pool_set_issuer (f->pool, saved);
    assert_auth_fails (f->pool, t->id_token);
    assert_auth_fails (f->pool, t->access_token);
    /* the old ones are good again (the cache was flushed both times) */
    {
      g_autoptr (FlPrincipal) p = auth_ok (f->pool, tokens->id_token);
    }
  }

  /* expired: minted two hours ago */
  {
    g_autoptr (FlTokens) old = NULL;

    advance (f, -2 * 3600);
    old = login_ok (f->pool, "heidi");
    advance (f, 2 * 3600);
    assert_auth_fails (f->pool, old->id_token);
    assert_auth_fails (f->pool, old->access_token);
  }

  /* expired while cached */
  {
    g_autoptr (FlPrincipal) p = auth_ok (f->pool, tokens->access_token);

    advance (f, 3600);
    assert_auth_fails (f->pool, tokens->access_token);
    assert_auth_fails (f->pool, tokens->id_token);
    advance (f, -3600);
  }
}

static void
test_roles (Fixture      *f,
            gconstpointer data)
{
  static const struct
  {
    FlRole      role;
    const char *name;
  } roles[] = {
    { FL_ROLE_NONE, "none" },
    { FL_ROLE_VIEWER, "viewer" },
    { FL_ROLE_OPERATOR, "operator" },
    { FL_ROLE_ADMIN, "admin" },
  };
  FlRole role;

  for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
    {
      g_autofree char        *user = g_strdup_printf ("user-%s", roles[i].name);
      g_autoptr (FlTokens)    t = NULL;
      g_autoptr (FlPrincipal) p = NULL;

      g_assert_cmpstr (fl_role_to_string (roles[i].role), ==, roles[i].name);
      g_assert_true (fl_role_from_string (roles[i].name, &role));
      g_assert_cmpint (role, ==, roles[i].role);

      add_user (f->pool, user, NULL, roles[i].role);
      t = login_ok (f->pool, user);
      p = auth_ok (f->pool, t->id_token);
      g_assert_cmpint (p->role, ==, roles[i].role);
      g_assert_nonnull (p->groups);
      if (roles[i].role == FL_ROLE_NONE)
        g_assert_cmpuint (g_strv_length (p->groups), ==, 0);
      else
        g_assert_cmpstrv (p->groups, ((const char *[]){ roles[i].name, NULL }));
    }

  g_assert_false (fl_role_from_string ("root", &role));
  g_assert_false (fl_role_from_string ("Admin", &role));
  g_assert_false (fl_role_from_string (NULL, &role));

  g_assert_cmpint (fl_role_from_groups (NULL), ==, FL_ROLE_NONE);
  g_assert_cmpint (fl_role_from_groups ((const char *[]){ "staff", NULL }), ==, FL_ROLE_NONE);
  g_assert_cmpint (fl_role_from_groups ((const char *[]){ "viewer", "admin", "operator", NULL }), ==, FL_ROLE_ADMIN);
  g_assert_cmpint (fl_role_from_groups ((const char *[]){ "viewer", "operator", NULL }), ==, FL_ROLE_OPERATOR);

  /* a role change shows in tokens minted afterwards, refresh included */
  {
    g_autoptr (GError)      error = NULL;
    g_autoptr (FlTokens)    t = login_ok (f->pool, "user-viewer");
    g_autoptr (FlTokens)    r = NULL;
    g_autoptr (FlPrincipal) p = NULL;

    g_assert_true (fl_user_pool_set_user_role (f->pool, "user-viewer", FL_ROLE_ADMIN, &error));
    g_assert_no_error (error);
    r = refresh (f->pool, t->refresh_token, &error);
    g_assert_no_error (error);
    p = auth_ok (f->pool, r->access_token);
    g_assert_cmpint (p->role, ==, FL_ROLE_ADMIN);

    g_assert_false (fl_user_pool_set_user_role (f->pool, "nobody", FL_ROLE_ADMIN, &error));
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND);
  }
}

static void
test_disable (Fixture      *f,
              gconstpointer data)
{
  g_autoptr (FlTokens) tokens = NULL;
  g_autoptr (GError)   error = NULL;

  add_user (f->pool, "ivan", NULL, FL_ROLE_ADMIN);
  tokens = login_ok (f->pool, "ivan");
  {
    g_autoptr (FlPrincipal) p = auth_ok (f->pool, tokens->id_token);
  }

  g_assert_true (fl_user_pool_set_user_enabled (f->pool, "ivan", FALSE, &error));
  g_assert_no_error (error);

  assert_auth_fails (f->pool, tokens->id_token);
  assert_auth_fails (f->pool, tokens->access_token);
  {
    g_autoptr (FlTokens) t = refresh (f->pool, tokens->refresh_token, &error);

    g_assert_null (t);
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
    g_clear_error (&error);
  }
  {
    g_autoptr (FlTokens) t = login (f->pool, "ivan", PASSWORD, NULL, &error);

    g_assert_null (t);
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
    g_assert_cmpstr (error->message, ==, "User is disabled.");
    g_clear_error (&error);
  }

  /* still disabled after a restart */
  g_clear_object (&f->pool);
  f->pool = open_pool (f, f->dir, TRUE);
  assert_auth_fails (f->pool, tokens->id_token);

  g_assert_true (fl_user_pool_set_user_enabled (f->pool, "ivan", TRUE, &error));
  g_assert_no_error (error);
  {
    g_autoptr (FlTokens)    t = login_ok (f->pool, "ivan");
    g_autoptr (FlPrincipal) p = auth_ok (f->pool, t->id_token);
  }
  /* revoked refresh tokens stay revoked */
  {
    g_autoptr (FlTokens) t = refresh (f->pool, tokens->refresh_token, &error);

    g_assert_null (t);
    g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
    g_clear_error (&error);
  }

  g_assert_false (fl_user_pool_set_user_enabled (f->pool, "nobody", FALSE, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND);
}

/* With the real argon2 parameters: the hash is stored with them, the main
 * loop keeps running while a password is checked, and an unknown user
 * costs about as much as a wrong password. */
static gboolean
count_idle_cb (gpointer user_data)
{
  guint *count = user_data;

  (*count)++;
  return G_SOURCE_CONTINUE;
}

static double
timed_login_fails (FlUserPool *pool,
                   const char *username)
{
  gint64 start = g_get_monotonic_time ();

  assert_login_fails (pool, username, "Wr0ng-Password", NULL, FL_AUTH_ERROR_NOT_AUTHORIZED);
  return (g_get_monotonic_time () - start) / 1000.0;
}

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static void
test_real_argon2 (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *db_path = g_build_filename (f->dir, "users.db", NULL);
  g_autofree char *hash = NULL;
  sqlite3         *db = NULL;
  sqlite3_stmt    *stmt = NULL;
  double           known[3], unknown[3];
  guint            idles = 0;
  guint            idle_id;

  add_user (f->pool, "judy", NULL, FL_ROLE_VIEWER);

  g_assert_cmpint (sqlite3_open_v2 (db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT password_hash FROM users WHERE username = 'judy'", -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  hash = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  g_assert_true (g_str_has_prefix (hash, "$argon2id$v=19$m=19456,t=2,p=1$"));

  idle_id = g_idle_add (count_idle_cb, &idles);
  {
    g_autoptr (FlTokens) t = login_ok (f->pool, "judy");
  }
  g_source_remove (idle_id);
  g_test_message ("main loop iterations during a sign-in: %u", idles);
  g_assert_cmpuint (idles, >, 10);

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *ghost = g_strdup_printf ("ghost%u", i);

      known[i] = timed_login_fails (f->pool, "judy");
      unknown[i] = timed_login_fails (f->pool, ghost);
    }
  qsort (known, 3, sizeof (double), compare_doubles);
  qsort (unknown, 3, sizeof (double), compare_doubles);
  g_test_message ("wrong password %.1f ms, unknown user %.1f ms (medians)", known[1], unknown[1]);
  g_assert_cmpfloat (unknown[1], >, known[1] / 3);
  g_assert_cmpfloat (unknown[1], <, known[1] * 3);
}

/* Rotation: new keys sign from the next open; the retired ones stay
 * published and their tokens stay valid until they expire; a day later
 * they are gone. */
static void
test_rotate_keys (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (GError)      error = NULL;
  g_autoptr (FlTokens)    old_tokens = NULL;
  g_autoptr (FlTokens)    new_tokens = NULL;
  g_autoptr (FlPrincipal) principal = NULL;
  g_autoptr (JsonNode)    jwks = NULL;
  g_autofree char        *old_kid_jwks = NULL;

  g_assert_true (fl_user_pool_add_user (f->pool, "carol", NULL, "Rotate-Me-1", FL_ROLE_VIEWER, &error));
  g_assert_no_error (error);
  old_tokens = login (f->pool, "carol", "Rotate-Me-1", NULL, &error);
  g_assert_no_error (error);
  jwks = fl_user_pool_get_jwks (f->pool);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (jwks), "keys")), ==, 2);
  g_clear_pointer (&jwks, json_node_unref);

  g_assert_true (fl_user_pool_rotate_keys (f->pool, &error));
  g_assert_no_error (error);
  g_clear_object (&f->pool);
  f->pool = open_pool (f, f->dir, TRUE);

  /* four keys published, the old token still accepted */
  jwks = fl_user_pool_get_jwks (f->pool);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (jwks), "keys")), ==, 4);
  g_clear_pointer (&jwks, json_node_unref);
  principal = fl_user_pool_authenticate (f->pool, old_tokens->access_token, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (principal->username, ==, "carol");
  g_clear_pointer (&principal, fl_principal_free);

  /* new tokens are signed by other keys */
  new_tokens = login (f->pool, "carol", "Rotate-Me-1", NULL, &error);
  g_assert_no_error (error);
  {
    g_auto (GStrv) a = g_strsplit (old_tokens->access_token, ".", 2);
    g_auto (GStrv) b = g_strsplit (new_tokens->access_token, ".", 2);

    g_assert_cmpstr (a[0], !=, b[0]); /* the header holds the kid */
  }

  /* retired more than a day ago (the longest token lifetime): gone
   * (the pool reads the retirement time from the file name at open) */
  {
    g_autofree char *retired = g_build_filename (f->dir, "keys", "retired", NULL);
    g_autoptr (GDir) dir = g_dir_open (retired, 0, NULL);
    g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
    const char *name;

    g_assert_nonnull (dir);
    while ((name = g_dir_read_name (dir)) != NULL)
      g_ptr_array_add (names, g_strdup (name));
    g_assert_cmpuint (names->len, ==, 2);
    for (guint i = 0; i < names->len; i++)
      {
        const char      *n = g_ptr_array_index (names, i);
        g_autofree char *prefix = g_strndup (n, strrchr (n, '-') - n);
        g_autofree char *from = g_build_filename (retired, n, NULL);
        g_autofree char *to_name = g_strdup_printf ("%s-%" G_GINT64_FORMAT ".pem", prefix,
                                                    fixture_now_s (f) - 25 * 3600);
        g_autofree char *to = g_build_filename (retired, to_name, NULL);

        g_assert_cmpint (g_rename (from, to), ==, 0);
      }
  }
  g_clear_object (&f->pool);
  f->pool = open_pool (f, f->dir, TRUE);
  jwks = fl_user_pool_get_jwks (f->pool);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (jwks), "keys")), ==, 2);
}

/* The code in a sign-up message */
static char *
code_of (FlCodeMessage *message)
{
  const char *p = strstr (message->body, "code is ");

  g_assert_nonnull (p);
  return g_strndup (p + strlen ("code is "), 6);
}

/* Sign-up codes: one use, 24 hours, five wrong attempts; reset codes: an
 * hour. */
static void
test_codes (Fixture      *f,
            gconstpointer data)
{
  const char             *client = fl_user_pool_get_client_id (f->pool);
  g_autoptr (GError)      error = NULL;
  g_autoptr (FlCodeMessage) message = NULL;
  g_autoptr (FlCodeMessage) again = NULL;
  g_autoptr (FlCodeMessage) reset = NULL;
  g_autofree char        *sub = NULL;
  g_autofree char        *code = NULL;
  g_autofree char        *code2 = NULL;
  g_autofree char        *reset_code = NULL;
  gboolean                confirmed = TRUE;

  g_assert_true (fl_user_pool_sign_up (f->pool, client, "ines", "Ines-Pass-1!", "ines@example.com",
                                       &sub, &confirmed, &message, &error));
  g_assert_no_error (error);
  g_assert_false (confirmed);
  g_assert_cmpstr (message->to, ==, "ines@example.com");
  g_assert_cmpstr (message->destination, ==, "i***@e***");
  code = code_of (message);

  /* a day later the code has expired */
  advance (f, 24 * 3600 + 1);
  g_assert_false (fl_user_pool_confirm_sign_up (f->pool, client, "ines", code, NULL, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_EXPIRED_CODE);
  g_clear_error (&error);

  /* a new one; five wrong attempts use it up */
  again = fl_user_pool_resend_code (f->pool, client, "ines", &error);
  g_assert_no_error (error);
  code2 = code_of (again);
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *wrong = g_strdup_printf ("%06u", (guint) (g_ascii_strtoull (code2, NULL, 10) + 1 + i) % 1000000u);

      advance (f, 120); /* past the sign-in throttle's pauses */
      g_assert_false (fl_user_pool_confirm_sign_up (f->pool, client, "ines", wrong, NULL, &error));
      g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_CODE_MISMATCH);
      g_clear_error (&error);
    }
  /* (past the throttle's pause after five failures) even the right code
   * is refused now */
  advance (f, 60);
  g_assert_false (fl_user_pool_confirm_sign_up (f->pool, client, "ines", code2, NULL, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);

  advance (f, 3600);
  g_clear_pointer (&again, fl_code_message_free);
  g_clear_pointer (&code2, g_free);
  again = fl_user_pool_resend_code (f->pool, client, "ines", &error);
  g_assert_no_error (error);
  code2 = code_of (again);
  g_assert_true (fl_user_pool_confirm_sign_up (f->pool, client, "ines", code2, NULL, &error));
  g_assert_no_error (error);
  /* once */
  g_assert_false (fl_user_pool_confirm_sign_up (f->pool, client, "ines", code2, NULL, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  g_clear_error (&error);

  /* a reset code lasts an hour */
  reset = fl_user_pool_forgot_password (f->pool, client, "ines", &error);
  g_assert_no_error (error);
  g_assert_true (strstr (reset->subject, "reset") != NULL);
  reset_code = code_of (reset);
  advance (f, 3601);
  g_assert_false (fl_user_pool_confirm_forgot_password (f->pool, client, "ines", reset_code, "New-Pass-2!", NULL, &error));
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_EXPIRED_CODE);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/fieldline/user-pool/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("open", test_open);
  ADD ("login-claims", test_login_claims);
  ADD ("wrong-password", test_wrong_password);
  ADD ("password-policy", test_password_policy);
  ADD ("duplicate", test_duplicate);
  ADD ("throttle", test_throttle);
  ADD ("throttle-address", test_throttle_address);
  ADD ("refresh", test_refresh);
  ADD ("authenticate", test_authenticate);
  ADD ("roles", test_roles);
  ADD ("disable", test_disable);
  ADD ("rotate-keys", test_rotate_keys);
  ADD ("codes", test_codes);
  g_test_add ("/fieldline/user-pool/real-argon2", Fixture, GINT_TO_POINTER (1),
              fixture_set_up, test_real_argon2, fixture_tear_down);

#undef ADD

  return g_test_run ();
}
