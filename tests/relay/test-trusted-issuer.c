/* test-trusted-issuer.c: tokens of a (simulated) Amazon Cognito user pool
 * elsewhere: the checks AWS documents, the claims we map, the token cache,
 * and the JWKS from a file or from an HTTP server on 127.0.0.1 (loading,
 * rotation, refetch limits, failures, timeouts). */
#define G_LOG_DOMAIN "test-trusted-issuer"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libsoup/soup.h>

#include "fieldline-core.h"
#include "fl-trusted-issuer-private.h"
#include "fl-trusted-issuer.h"

#define REGION "eu-west-1"
#define ISSUER "https://cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz"
#define OTHER_ISSUER "https://cognito-idp." REGION ".amazonaws.com/" REGION "_Other9876"
#define CLIENT_ID "4k2d9vqf7h1c0s8m3n5p6r7t2u"
#define SUB "9a1b2c3d-4e5f-4071-8a9b-0c1d2e3f4a5b"

/* Made once: RSA key generation is slow. */
static FlJwtKey *key_a;
static FlJwtKey *key_b;

typedef struct
{
  char            *dir;
  char            *jwks_path; /* holds key A's JWKS at first */
  gint64           clock_us;  /* the issuer's clock: stands still */
  FlTrustedIssuer *issuer;

  /* The JWKS server */
  SoupServer *server;
  char       *url; /* http://127.0.0.1:PORT/jwks.json */
  guint       requests;
  char       *body;
  guint       status;
  gboolean    pause;
  GPtrArray  *paused; /* SoupServerMessage */
} Fixture;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static gint64
fixture_clock (gpointer user_data)
{
  Fixture *f = user_data;

  return f->clock_us;
}

static gint64
now_s (Fixture *f)
{
  return fixture_clock (f) / G_USEC_PER_SEC;
}

static void
advance (Fixture *f,
         gint64   seconds)
{
  f->clock_us += seconds * G_USEC_PER_SEC;
}

static char *
node_to_string (JsonNode *node)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

static char *
object_to_string (JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

  json_node_set_object (node, obj);
  return node_to_string (node);
}

/* {"keys": [...]} with the public halves of k1 and k2 (either may be NULL) */
static char *
jwks_for (FlJwtKey *k1,
          FlJwtKey *k2)
{
  g_autoptr (JsonObject) root = json_object_new ();
  JsonArray             *keys = json_array_new ();

  if (k1 != NULL)
    json_array_add_element (keys, fl_jwt_key_to_jwk (k1));
  if (k2 != NULL)
    json_array_add_element (keys, fl_jwt_key_to_jwk (k2));
  json_object_set_array_member (root, "keys", keys);

  return object_to_string (root);
}

static void
write_file (const char *path,
            const char *contents)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

static void
set_body (Fixture    *f,
          const char *body)
{
  g_free (f->body);
  f->body = g_strdup (body);
}

static void
serve_keys (Fixture  *f,
            FlJwtKey *k1,
            FlJwtKey *k2)
{
  g_free (f->body);
  f->body = jwks_for (k1, k2);
  f->status = SOUP_STATUS_OK;
}

static JsonArray *
string_array (const char *first,
              ...)
{
  JsonArray  *array = json_array_new ();
  const char *s;
  va_list     args;

  va_start (args, first);
  for (s = first; s != NULL; s = va_arg (args, const char *))
    json_array_add_string_element (array, s);
  va_end (args);

  return array;
}

/* The claims of a Cognito access token, valid for lifetime seconds */
static JsonObject *
access_claims (Fixture *f,
               gint64   lifetime)
{
  JsonObject *c = json_object_new ();
  gint64      now = now_s (f);

  json_object_set_string_member (c, "sub", SUB);
  json_object_set_array_member (c, "cognito:groups", string_array ("viewer", "admin", NULL));
  json_object_set_string_member (c, "iss", ISSUER);
  json_object_set_string_member (c, "client_id", CLIENT_ID);
  json_object_set_string_member (c, "origin_jti", "5d2b8c1e-0f3a-4b6c-9d7e-1a2b3c4d5e6f");
  json_object_set_string_member (c, "event_id", "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b");
  json_object_set_string_member (c, "token_use", "access");
  json_object_set_string_member (c, "scope", "aws.cognito.signin.user.admin");
  json_object_set_int_member (c, "auth_time", now);
  json_object_set_int_member (c, "exp", now + lifetime);
  json_object_set_int_member (c, "iat", now);
  json_object_set_string_member (c, "jti", "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f");
  json_object_set_string_member (c, "username", "ada");

  return c;
}

/* The claims of a Cognito ID token, valid for lifetime seconds */
static JsonObject *
id_claims (Fixture *f,
           gint64   lifetime)
{
  JsonObject *c = json_object_new ();
  gint64      now = now_s (f);

  json_object_set_string_member (c, "sub", SUB);
  json_object_set_array_member (c, "cognito:groups", string_array ("operator", "lab-techs", NULL));
  json_object_set_boolean_member (c, "email_verified", TRUE);
  json_object_set_string_member (c, "iss", ISSUER);
  json_object_set_string_member (c, "cognito:username", "grace");
  json_object_set_string_member (c, "origin_jti", "5d2b8c1e-0f3a-4b6c-9d7e-1a2b3c4d5e6f");
  json_object_set_string_member (c, "aud", CLIENT_ID);
  json_object_set_string_member (c, "event_id", "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b");
  json_object_set_string_member (c, "token_use", "id");
  json_object_set_int_member (c, "auth_time", now);
  json_object_set_int_member (c, "exp", now + lifetime);
  json_object_set_int_member (c, "iat", now);
  json_object_set_string_member (c, "jti", "3b4c5d6e-7f8a-4b9c-8d0e-1f2a3b4c5d6e");
  json_object_set_string_member (c, "email", "grace@example.com");

  return c;
}

static char *
sign (FlJwtKey   *key,
      JsonObject *claims)
{
  g_autoptr (GError) error = NULL;
  char              *token = fl_jwt_sign (key, claims, &error);

  g_assert_no_error (error);
  g_assert_nonnull (token);
  return token;
}

static char *
b64 (const char *text)
{
  return fl_base64url_encode ((const guint8 *) text, strlen (text));
}

/* header.payload.signature from JSON texts and a signature in base64url */
static char *
craft (const char *header_json,
       const char *payload_json,
       const char *sig_b64)
{
  g_autofree char *h = b64 (header_json);
  g_autofree char *p = b64 (payload_json);

  return g_strconcat (h, ".", p, ".", sig_b64, NULL);
}

/* The n-th dot-separated part of token */
static char *
token_part (const char *token,
            guint       n)
{
  g_auto (GStrv) parts = g_strsplit (token, ".", -1);

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  return g_strdup (parts[n]);
}

static FlPrincipal *
assert_accepted (Fixture    *f,
                 const char *token)
{
  g_autoptr (GError) error = NULL;
  FlPrincipal       *principal = fl_trusted_issuer_authenticate (f->issuer, token, &error);

  g_assert_no_error (error);
  g_assert_nonnull (principal);
  return principal;
}

static void
assert_refused (Fixture    *f,
                const char *token,
                const char *why)
{
  g_autoptr (GError)      error = NULL;
  g_autoptr (FlPrincipal) principal = fl_trusted_issuer_authenticate (f->issuer, token, &error);

  g_assert_null (principal);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED);
  if (strstr (error->message, why) == NULL)
    g_error ("Refused with “%s”, not for “%s”", error->message, why);
}

static gboolean
flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context until no fetch is scheduled or running. */
static void
wait_idle (Fixture *f)
{
  gboolean timed_out = FALSE;
  guint    id = g_timeout_add_seconds (20, flag_cb, &timed_out);

  while (_fl_trusted_issuer_is_loading (f->issuer) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (id);
}

static void
wait_requests (Fixture *f,
               guint    n)
{
  gboolean timed_out = FALSE;
  guint    id = g_timeout_add_seconds (20, flag_cb, &timed_out);

  while (f->requests < n && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (id);
}

static void
spin (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, flag_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

static void
load_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static gboolean
load (FlTrustedIssuer *issuer,
      GCancellable    *cancellable,
      GError         **error)
{
  GAsyncResult *result = NULL;
  gboolean      ok;

  fl_trusted_issuer_load_async (issuer, cancellable, load_cb, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  ok = fl_trusted_issuer_load_finish (issuer, result, error);
  g_object_unref (result);

  return ok;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */

static void
server_cb (SoupServer        *server,
           SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           gpointer           user_data)
{
  Fixture *f = user_data;

  f->requests++;

  if (f->pause)
    {
      g_ptr_array_add (f->paused, g_object_ref (msg));
      soup_server_message_pause (msg);
      return;
    }

  if (f->status == SOUP_STATUS_FOUND)
    {
      soup_server_message_set_redirect (msg, SOUP_STATUS_FOUND, "https://example.com/jwks.json");
      return;
    }

  soup_server_message_set_status (msg, f->status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, f->body, strlen (f->body));
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *jwks = jwks_for (key_a, NULL);
  GSList            *uris;

  f->clock_us = g_get_real_time ();
  f->dir = g_dir_make_tmp ("fl-trusted-issuer-XXXXXX", &error);
  g_assert_no_error (error);
  f->jwks_path = g_build_filename (f->dir, "jwks.json", NULL);
  write_file (f->jwks_path, jwks);

  f->issuer = fl_trusted_issuer_new (ISSUER, CLIENT_ID, f->jwks_path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->issuer);
  _fl_trusted_issuer_set_clock (f->issuer, fixture_clock, f);

  f->paused = g_ptr_array_new_with_free_func (g_object_unref);
  serve_keys (f, key_a, NULL);
  f->server = soup_server_new ("server-header", "test-trusted-issuer ", NULL);
  soup_server_add_handler (f->server, NULL, server_cb, f, NULL);
  soup_server_listen_local (f->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);
  uris = soup_server_get_uris (f->server);
  g_assert_nonnull (uris);
  f->url = g_strdup_printf ("http://127.0.0.1:%d/jwks.json", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

/* Replaces the fixture's issuer with one that fetches f->url. */
static void
use_http_issuer (Fixture *f)
{
  g_autoptr (GError) error = NULL;

  g_assert_finalize_object (f->issuer);
  f->issuer = fl_trusted_issuer_new (ISSUER, CLIENT_ID, f->url, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->issuer);
  _fl_trusted_issuer_set_clock (f->issuer, fixture_clock, f);
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
  if (f->issuer != NULL)
    {
      wait_idle (f);
      g_assert_finalize_object (f->issuer);
      f->issuer = NULL;
    }

  for (guint i = 0; i < f->paused->len; i++)
    {
      SoupServerMessage *msg = g_ptr_array_index (f->paused, i);

      soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
      soup_server_message_unpause (msg);
    }
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_pointer (&f->paused, g_ptr_array_unref);

  soup_server_disconnect (f->server);
  g_assert_finalize_object (f->server);
  f->server = NULL;
  g_clear_pointer (&f->url, g_free);
  g_clear_pointer (&f->body, g_free);

  rm_rf (f->dir);
  g_clear_pointer (&f->dir, g_free);
  g_clear_pointer (&f->jwks_path, g_free);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */

static void
test_new_arguments (void)
{
  static const char *const bad_issuers[] = {
    "",
    "http://cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz",
    ISSUER "/",
    ISSUER "?x=1",
    ISSUER "#x",
    "HTTPS://cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz",
    "https://cognito-idp." REGION ".amazonaws.com:443/" REGION "_AbC123xyz",
    "https://cognito-idp." REGION ".amazonaws.com/us-east-1_AbC123xyz",
    "https://cognito-idp." REGION ".amazonaws.com/" REGION "_",
    "https://cognito-idp." REGION ".amazonaws.com/" REGION "_Ab/c",
    "https://cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz/.well-known/jwks.json",
    "https://cognito-idp." REGION ".amazonaws.com.evil.example/" REGION "_AbC123xyz",
    "https://cognito-idp.EU-WEST-1.amazonaws.com/EU-WEST-1_AbC123xyz",
    "https://evil.example/" REGION "_AbC123xyz",
    "https://user@cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz",
  };
  static const char *const bad_client_ids[] = { "", "has space", "a/b", "ünïcode" };
  static const char *const bad_urls[] = {
    "ftp://127.0.0.1/jwks.json",
    "http://example.com/jwks.json",
    "http://10.0.0.1/jwks.json",
    "https://user:secret@example.com/jwks.json",
    "https:///jwks.json",
    "file:///etc/passwd",
  };
  g_autofree char   *long_client_id = g_strnfill (129, 'a');
  g_autoptr (GError) error = NULL;
  FlTrustedIssuer   *issuer;

  issuer = fl_trusted_issuer_new (NULL, CLIENT_ID, "https://example.com/jwks.json", &error);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
  g_assert_null (issuer);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (bad_issuers); i++)
    {
      issuer = fl_trusted_issuer_new (bad_issuers[i], CLIENT_ID, "https://example.com/jwks.json", &error);
      if (issuer != NULL)
        g_error ("Issuer “%s” was accepted", bad_issuers[i]);
      g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
      g_clear_error (&error);
    }

  for (guint i = 0; i < G_N_ELEMENTS (bad_client_ids); i++)
    {
      issuer = fl_trusted_issuer_new (ISSUER, bad_client_ids[i], "https://example.com/jwks.json", &error);
      g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
      g_assert_null (issuer);
      g_clear_error (&error);
    }
  issuer = fl_trusted_issuer_new (ISSUER, NULL, "https://example.com/jwks.json", &error);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
  g_assert_null (issuer);
  g_clear_error (&error);
  issuer = fl_trusted_issuer_new (ISSUER, long_client_id, "https://example.com/jwks.json", &error);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
  g_assert_null (issuer);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (bad_urls); i++)
    {
      issuer = fl_trusted_issuer_new (ISSUER, CLIENT_ID, bad_urls[i], &error);
      if (issuer != NULL)
        g_error ("JWKS “%s” was accepted", bad_urls[i]);
      g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
      g_clear_error (&error);
    }
  issuer = fl_trusted_issuer_new (ISSUER, CLIENT_ID, "", &error);
  g_assert_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER);
  g_assert_null (issuer);
  g_clear_error (&error);

  /* Good ones: a URL is not fetched yet */
  {
    static const char *const good[][3] = {
      { ISSUER, CLIENT_ID, "https://example.com/jwks.json" },
      { ISSUER, "a+b_C9", "http://127.0.0.1:1/jwks.json" },
      { ISSUER, CLIENT_ID, "http://localhost:1/jwks.json" },
      { ISSUER, CLIENT_ID, "http://[::1]:1/jwks.json" },
      { "https://cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_Q1w2E3r4", CLIENT_ID, "https://example.com/j" },
      { "https://cognito-idp.us-gov-west-1.amazonaws.com/us-gov-west-1_Q1w2E3r4", CLIENT_ID, NULL },
    };

    for (guint i = 0; i < G_N_ELEMENTS (good); i++)
      {
        issuer = fl_trusted_issuer_new (good[i][0], good[i][1], good[i][2], &error);
        g_assert_no_error (error);
        g_assert_nonnull (issuer);
        g_assert_cmpstr (fl_trusted_issuer_get_issuer (issuer), ==, good[i][0]);
        g_assert_cmpstr (fl_trusted_issuer_get_client_id (issuer), ==, good[i][1]);
        if (good[i][2] != NULL)
          g_assert_cmpstr (fl_trusted_issuer_get_jwks (issuer), ==, good[i][2]);
        else
          g_assert_cmpstr (fl_trusted_issuer_get_jwks (issuer), ==,
                           "https://cognito-idp.us-gov-west-1.amazonaws.com/us-gov-west-1_Q1w2E3r4/.well-known/jwks.json");
        g_assert_false (_fl_trusted_issuer_is_loading (issuer));
        g_assert_finalize_object (issuer);
      }
  }
}

static void
assert_new_fails (const char *jwks_path,
                  GQuark      domain,
                  int         code)
{
  g_autoptr (GError) error = NULL;
  FlTrustedIssuer   *issuer = fl_trusted_issuer_new (ISSUER, CLIENT_ID, jwks_path, &error);

  g_assert_null (issuer);
  g_assert_error (error, domain, code);
  g_assert_nonnull (strstr (error->message, jwks_path));
}

static void
test_new_file (Fixture      *f,
               gconstpointer data)
{
  g_autofree char        *missing = g_build_filename (f->dir, "missing.json", NULL);
  g_autofree char        *path = g_build_filename (f->dir, "other.json", NULL);
  g_autofree char        *big = NULL;
  g_autofree char        *token = NULL;
  g_autoptr (JsonObject)  claims = access_claims (f, 3600);
  g_autoptr (FlPrincipal) principal = NULL;

  /* The fixture's file was read at once */
  token = sign (key_a, claims);
  principal = assert_accepted (f, token);
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));

  assert_new_fails (missing, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  assert_new_fails (f->dir, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY);

  write_file (path, "not json");
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  write_file (path, "[]");
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  write_file (path, "{\"keys\": []}");
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  /* only an EC key: not one we can use */
  write_file (path, "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"ec\", "
                    "\"x\": \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", "
                    "\"y\": \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}");
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  /* a bad RSA key */
  write_file (path, "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"x\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}");
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  /* too deep */
  big = g_strnfill (1000, '[');
  write_file (path, big);
  assert_new_fails (path, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  g_clear_pointer (&big, g_free);
  /* too large: 200 KiB of padding around a good key */
  {
    g_autofree char *jwks = jwks_for (key_a, NULL);
    g_autofree char *pad = g_strnfill (200 * 1024, 'x');

    big = g_strdup_printf ("{\"pad\": \"%s\", %s", pad, jwks + 1);
    write_file (path, big);
    assert_new_fails (path, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  }
}

/* ------------------------------------------------------------------ */
/* Accepted tokens                                                     */

static void
test_access_token (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (JsonObject)  claims = access_claims (f, 3600);
  g_autofree char        *token = sign (key_a, claims);
  g_autoptr (FlPrincipal) principal = assert_accepted (f, token);
  const char *const       groups[] = { "viewer", "admin", NULL };

  g_assert_cmpstr (principal->sub, ==, SUB);
  g_assert_cmpstr (principal->username, ==, "ada");
  g_assert_null (principal->email);
  g_assert_nonnull (principal->groups);
  g_assert_true (g_strv_equal ((const char *const *) principal->groups, groups));
  g_assert_cmpint (principal->role, ==, FL_ROLE_ADMIN);
  g_assert_cmpint (principal->expires_at, ==, json_object_get_int_member (claims, "exp"));
  g_assert_true (principal->access);

  /* as cached */
  {
    g_autoptr (FlPrincipal) again = assert_accepted (f, token);

    g_assert_cmpstr (again->sub, ==, SUB);
    g_assert_cmpstr (again->username, ==, "ada");
    g_assert_true (g_strv_equal ((const char *const *) again->groups, groups));
    g_assert_cmpint (again->role, ==, FL_ROLE_ADMIN);
    g_assert_cmpint (again->expires_at, ==, principal->expires_at);
    g_assert_true (again->access);
  }

  /* an access token has no email; one that says otherwise is not heard */
  {
    g_autofree char        *with_email = NULL;
    g_autoptr (FlPrincipal) p2 = NULL;

    json_object_set_string_member (claims, "email", "ada@example.com");
    with_email = sign (key_a, claims);
    p2 = assert_accepted (f, with_email);
    g_assert_null (p2->email);
    g_assert_cmpstr (p2->username, ==, "ada");
  }
}

static void
test_id_token (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (JsonObject)  claims = id_claims (f, 3600);
  g_autofree char        *token = sign (key_a, claims);
  g_autoptr (FlPrincipal) principal = assert_accepted (f, token);
  const char *const       groups[] = { "operator", "lab-techs", NULL };

  g_assert_cmpstr (principal->sub, ==, SUB);
  g_assert_cmpstr (principal->username, ==, "grace");
  g_assert_cmpstr (principal->email, ==, "grace@example.com");
  g_assert_true (g_strv_equal ((const char *const *) principal->groups, groups));
  g_assert_cmpint (principal->role, ==, FL_ROLE_OPERATOR);
  g_assert_cmpint (principal->expires_at, ==, json_object_get_int_member (claims, "exp"));
  g_assert_false (principal->access);

  /* as cached */
  {
    g_autoptr (FlPrincipal) again = assert_accepted (f, token);

    g_assert_cmpstr (again->email, ==, "grace@example.com");
    g_assert_cmpint (again->role, ==, FL_ROLE_OPERATOR);
    g_assert_false (again->access);
  }
}

static void
test_groups (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *token = NULL;

  /* no groups: no role */
  json_object_remove_member (claims, "cognito:groups");
  token = sign (key_a, claims);
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, token);

    g_assert_nonnull (principal->groups);
    g_assert_cmpuint (g_strv_length (principal->groups), ==, 0);
    g_assert_cmpint (principal->role, ==, FL_ROLE_NONE);
  }
  g_clear_pointer (&token, g_free);

  /* unknown groups only: no role */
  json_object_set_array_member (claims, "cognito:groups", string_array ("Admins", "us-east-1_xyz_Google", NULL));
  token = sign (key_a, claims);
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, token);

    g_assert_cmpuint (g_strv_length (principal->groups), ==, 2);
    g_assert_cmpint (principal->role, ==, FL_ROLE_NONE);
  }
  g_clear_pointer (&token, g_free);

  json_object_set_array_member (claims, "cognito:groups", string_array ("viewer", NULL));
  token = sign (key_a, claims);
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, token);

    g_assert_cmpint (principal->role, ==, FL_ROLE_VIEWER);
  }
  g_clear_pointer (&token, g_free);

  /* not a list of strings */
  json_object_set_string_member (claims, "cognito:groups", "admin");
  token = sign (key_a, claims);
  assert_refused (f, token, "groups");
  g_clear_pointer (&token, g_free);

  {
    JsonArray *mixed = string_array ("viewer", NULL);

    json_array_add_int_element (mixed, 1);
    json_object_set_array_member (claims, "cognito:groups", mixed);
  }
  token = sign (key_a, claims);
  assert_refused (f, token, "groups");
}

/* ------------------------------------------------------------------ */
/* Refused tokens                                                      */

static void
test_expired (Fixture      *f,
              gconstpointer data)
{
  static const gint64 lifetimes[] = { 0, -1, -30, -59, -60, -3600 };
  g_autofree char    *token = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (lifetimes); i++)
    {
      g_autoptr (JsonObject) access = access_claims (f, lifetimes[i]);
      g_autoptr (JsonObject) id = id_claims (f, lifetimes[i]);
      g_autofree char       *access_token = sign (key_a, access);
      g_autofree char       *id_token = sign (key_a, id);

      assert_refused (f, access_token, "expired");
      assert_refused (f, id_token, "expired");
    }

  /* one second to go is fine */
  {
    g_autoptr (JsonObject)  claims = access_claims (f, 1);
    g_autofree char        *t = sign (key_a, claims);
    g_autoptr (FlPrincipal) principal = assert_accepted (f, t);
  }

  /* A cached token expires all the same */
  {
    g_autoptr (JsonObject) claims = access_claims (f, 10);

    token = sign (key_a, claims);
  }
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, token);
  }
  advance (f, 9);
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, token);
  }
  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), >=, 1);
  advance (f, 1);
  assert_refused (f, token, "expired");
  assert_refused (f, token, "expired");

  /* no exp at all */
  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);
    g_autofree char       *t = NULL;

    json_object_remove_member (claims, "exp");
    t = sign (key_a, claims);
    assert_refused (f, t, "exp");
  }

  /* not valid before a time to come */
  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);
    g_autofree char       *t = NULL;

    json_object_set_int_member (claims, "nbf", now_s (f) + 120);
    t = sign (key_a, claims);
    assert_refused (f, t, "not valid yet");
  }
}

static void
test_wrong_issuer (Fixture      *f,
                   gconstpointer data)
{
  static const char *const issuers[] = {
    OTHER_ISSUER,
    ISSUER "/",
    "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123xyz",
    "http://cognito-idp." REGION ".amazonaws.com/" REGION "_AbC123xyz",
  };

  for (guint i = 0; i < G_N_ELEMENTS (issuers); i++)
    {
      g_autoptr (JsonObject) access = access_claims (f, 3600);
      g_autoptr (JsonObject) id = id_claims (f, 3600);
      g_autofree char       *access_token = NULL;
      g_autofree char       *id_token = NULL;

      json_object_set_string_member (access, "iss", issuers[i]);
      json_object_set_string_member (id, "iss", issuers[i]);
      access_token = sign (key_a, access);
      id_token = sign (key_a, id);
      assert_refused (f, access_token, "not issued by " ISSUER);
      assert_refused (f, id_token, "not issued by " ISSUER);
      g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, access_token));
    }

  /* no issuer, or not a string */
  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);
    g_autofree char       *t1 = NULL;
    g_autofree char       *t2 = NULL;

    json_object_remove_member (claims, "iss");
    t1 = sign (key_a, claims);
    assert_refused (f, t1, "not issued by");
    json_object_set_int_member (claims, "iss", 1);
    t2 = sign (key_a, claims);
    assert_refused (f, t2, "not issued by");
  }
}

static void
test_wrong_client (Fixture      *f,
                   gconstpointer data)
{
  g_autofree char *token = NULL;

  /* access token: client_id must be ours */
  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);

    json_object_set_string_member (claims, "client_id", "someoneelse1234567890abcd");
    token = sign (key_a, claims);
    assert_refused (f, token, "another app client");
    g_clear_pointer (&token, g_free);

    /* aud does not stand in for client_id */
    json_object_remove_member (claims, "client_id");
    json_object_set_string_member (claims, "aud", CLIENT_ID);
    token = sign (key_a, claims);
    assert_refused (f, token, "another app client");
    g_clear_pointer (&token, g_free);
  }

  /* ID token: aud must be ours */
  {
    g_autoptr (JsonObject) claims = id_claims (f, 3600);

    json_object_set_string_member (claims, "aud", "someoneelse1234567890abcd");
    token = sign (key_a, claims);
    assert_refused (f, token, "another app client");
    g_clear_pointer (&token, g_free);

    /* client_id does not stand in for aud */
    json_object_remove_member (claims, "aud");
    json_object_set_string_member (claims, "client_id", CLIENT_ID);
    token = sign (key_a, claims);
    assert_refused (f, token, "another app client");
    g_clear_pointer (&token, g_free);

    /* a case variant is another client */
    json_object_set_string_member (claims, "aud", "4K2D9VQF7H1C0S8M3N5P6R7T2U");
    token = sign (key_a, claims);
    assert_refused (f, token, "another app client");
    g_clear_pointer (&token, g_free);
  }
}

static void
test_token_use (Fixture      *f,
                gconstpointer data)
{
  static const char *const uses[] = { "refresh", "ID", "Access", "", "id " };

  for (guint i = 0; i < G_N_ELEMENTS (uses); i++)
    {
      g_autoptr (JsonObject) claims = access_claims (f, 3600);
      g_autofree char       *token = NULL;

      /* an ID token's aud too, so only token_use is wrong */
      json_object_set_string_member (claims, "aud", CLIENT_ID);
      json_object_set_string_member (claims, "token_use", uses[i]);
      token = sign (key_a, claims);
      assert_refused (f, token, "Token use");
    }

  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);
    g_autofree char       *t1 = NULL;
    g_autofree char       *t2 = NULL;

    json_object_remove_member (claims, "token_use");
    t1 = sign (key_a, claims);
    assert_refused (f, t1, "Token use");
    json_object_set_boolean_member (claims, "token_use", TRUE);
    t2 = sign (key_a, claims);
    assert_refused (f, t2, "Token use");
  }
}

static void
test_missing_subject (Fixture      *f,
                      gconstpointer data)
{
  g_autofree char *token = NULL;

  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);

    json_object_remove_member (claims, "sub");
    token = sign (key_a, claims);
    assert_refused (f, token, "no subject");
    g_clear_pointer (&token, g_free);

    json_object_set_string_member (claims, "sub", "");
    token = sign (key_a, claims);
    assert_refused (f, token, "no subject");
    g_clear_pointer (&token, g_free);
  }
  {
    g_autoptr (JsonObject) claims = access_claims (f, 3600);

    json_object_remove_member (claims, "username");
    json_object_set_string_member (claims, "cognito:username", "ada");
    token = sign (key_a, claims);
    assert_refused (f, token, "no username");
    g_clear_pointer (&token, g_free);
  }
  {
    g_autoptr (JsonObject) claims = id_claims (f, 3600);

    json_object_remove_member (claims, "cognito:username");
    json_object_set_string_member (claims, "username", "grace");
    token = sign (key_a, claims);
    assert_refused (f, token, "no username");
    g_clear_pointer (&token, g_free);
  }
}

static char *
public_key_pem (FlJwtKey *key)
{
  g_autoptr (JsonNode) jwk = fl_jwt_key_to_jwk (key);
  JsonObject          *obj = json_node_get_object (jwk);
  g_autofree guint8   *n = NULL;
  g_autofree guint8   *e = NULL;
  gsize                n_len = 0;
  gsize                e_len = 0;
  gnutls_pubkey_t      pubkey = NULL;
  gnutls_datum_t       m_d, e_d;
  gnutls_datum_t       out = { NULL, 0 };
  char                *pem;

  n = fl_base64url_decode (json_object_get_string_member (obj, "n"), &n_len);
  e = fl_base64url_decode (json_object_get_string_member (obj, "e"), &e_len);
  g_assert_nonnull (n);
  g_assert_nonnull (e);
  m_d.data = n;
  m_d.size = (unsigned int) n_len;
  e_d.data = e;
  e_d.size = (unsigned int) e_len;

  g_assert_cmpint (gnutls_pubkey_init (&pubkey), ==, 0);
  g_assert_cmpint (gnutls_pubkey_import_rsa_raw (pubkey, &m_d, &e_d), ==, 0);
  g_assert_cmpint (gnutls_pubkey_export2 (pubkey, GNUTLS_X509_FMT_PEM, &out), ==, 0);
  pem = g_strndup ((const char *) out.data, out.size);
  gnutls_free (out.data);
  gnutls_pubkey_deinit (pubkey);

  return pem;
}

/* header.payload signed with HMAC-SHA-256 under secret */
static char *
hs256_token (const char *header_json,
             const char *payload_json,
             const char *secret)
{
  g_autofree char *h = b64 (header_json);
  g_autofree char *p = b64 (payload_json);
  g_autofree char *input = g_strconcat (h, ".", p, NULL);
  g_autofree char *sig = NULL;
  guint8           mac[32];

  g_assert_cmpint (gnutls_hmac_fast (GNUTLS_MAC_SHA256, secret, strlen (secret), input, strlen (input), mac), ==, 0);
  sig = fl_base64url_encode (mac, sizeof mac);

  return g_strconcat (input, ".", sig, NULL);
}

static void
test_algorithms (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *payload = object_to_string (claims);
  g_autofree char       *good = sign (key_a, claims);
  g_autofree char       *good_sig = token_part (good, 2);
  g_autofree char       *pem = public_key_pem (key_a);
  g_autofree char       *jwks = jwks_for (key_a, NULL);
  const char            *kid = fl_jwt_key_get_kid (key_a);
  g_autofree char       *h_none = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"none\"}", kid);
  g_autofree char       *h_none2 = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"None\"}", kid);
  g_autofree char       *h_hs = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"HS256\"}", kid);
  g_autofree char       *h_rs512 = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"RS512\"}", kid);
  g_autofree char       *h_ps = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"PS256\"}", kid);
  g_autofree char       *h_noalg = g_strdup_printf ("{\"kid\":\"%s\"}", kid);

  /* the genuine article, to show the rest fail for their alg alone */
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, good);
  }

  {
    g_autofree char *t1 = craft (h_none, payload, "");
    g_autofree char *t2 = craft (h_none, payload, good_sig);
    g_autofree char *t3 = craft (h_none2, payload, "");
    g_autofree char *t4 = craft ("{\"alg\":\"none\"}", payload, "");
    g_autofree char *t5 = craft (h_rs512, payload, good_sig);
    g_autofree char *t6 = craft (h_ps, payload, good_sig);
    g_autofree char *t7 = craft (h_noalg, payload, good_sig);

    assert_refused (f, t1, "not RS256");
    assert_refused (f, t2, "not RS256");
    assert_refused (f, t3, "not RS256");
    assert_refused (f, t4, "not RS256");
    assert_refused (f, t5, "not RS256");
    assert_refused (f, t6, "not RS256");
    assert_refused (f, t7, "not RS256");
  }

  /* HS256 with the public key (as PEM, or the JWKS text) as the secret */
  {
    g_autofree char *t1 = hs256_token (h_hs, payload, pem);
    g_autofree char *t2 = hs256_token (h_hs, payload, jwks);
    g_autofree char *t3 = hs256_token ("{\"alg\":\"HS256\"}", payload, pem);

    assert_refused (f, t1, "not RS256");
    assert_refused (f, t2, "not RS256");
    assert_refused (f, t3, "not RS256");
  }
}

static void
test_unknown_key (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *token = sign (key_b, claims);
  g_autofree char       *payload = object_to_string (claims);
  g_autofree char       *made_up = craft ("{\"kid\":\"made-up\",\"alg\":\"RS256\"}", payload, "c2ln");
  g_autofree char       *no_kid = craft ("{\"alg\":\"RS256\"}", payload, "c2ln");

  assert_refused (f, token, "unknown key");
  /* the file is read again, as the pool may have new keys */
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));
  wait_idle (f);
  assert_refused (f, token, "unknown key");
  assert_refused (f, made_up, "unknown key");
  assert_refused (f, no_kid, "unknown key");
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));
}

static void
test_tampered (Fixture      *f,
               gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *viewer_token = NULL;
  g_autofree char       *header = NULL;
  g_autofree char       *sig = NULL;
  g_autofree char       *admin_payload = NULL;
  g_autofree char       *other_sig = NULL;

  json_object_set_array_member (claims, "cognito:groups", string_array ("viewer", NULL));
  viewer_token = sign (key_a, claims);
  header = token_part (viewer_token, 0);
  sig = token_part (viewer_token, 2);
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, viewer_token);

    g_assert_cmpint (principal->role, ==, FL_ROLE_VIEWER);
  }

  /* the same token with admin: the signature does not cover it */
  json_object_set_array_member (claims, "cognito:groups", string_array ("admin", NULL));
  {
    g_autofree char *json = object_to_string (claims);
    g_autofree char *p = b64 (json);
    g_autofree char *tampered = g_strconcat (header, ".", p, ".", sig, NULL);

    assert_refused (f, tampered, "signature is invalid");
    admin_payload = g_steal_pointer (&p);
  }

  /* key B's signature on the same claims under key A's kid */
  {
    g_autofree char *b_token = sign (key_b, claims);
    g_autofree char *swapped = NULL;

    other_sig = token_part (b_token, 2);
    swapped = g_strconcat (header, ".", admin_payload, ".", other_sig, NULL);
    assert_refused (f, swapped, "signature is invalid");
  }

  /* one bit of the signature */
  {
    g_autofree char *flipped = g_strdup (viewer_token);
    char            *last = flipped + strlen (flipped) - 2;

    *last = *last == 'A' ? 'B' : 'A';
    assert_refused (f, flipped, "signature");
  }

  /* a signature cut short */
  {
    g_autofree char *shorter = g_strndup (viewer_token, strlen (viewer_token) - 4);

    assert_refused (f, shorter, "signature");
  }
}

static void
test_malformed (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *good = sign (key_a, claims);
  g_autofree char       *header = token_part (good, 0);
  g_autofree char       *payload = token_part (good, 1);
  g_autofree char       *long_token = g_strnfill (20000, 'a');
  g_autofree char       *deep = NULL;
  g_autofree char       *deep_b64 = NULL;
  g_autofree char       *deep_token = NULL;
  g_autofree char       *array_token = NULL;
  g_autofree char       *latin1_token = NULL;
  g_autofree char       *trailing_newline = g_strconcat (good, "\n", NULL);
  g_autofree char       *leading_space = g_strconcat (" ", good, NULL);
  g_autofree char       *four_parts = g_strconcat (good, ".", payload, NULL);
  g_autofree char       *padded = g_strconcat (header, "=.", payload, ".c2ln", NULL);
  g_autofree char       *no_sig = g_strconcat (header, ".", payload, ".", NULL);
  g_autofree char       *bad_header = NULL;
  const char *const      garbage[] = {
         "abc",
         "a.b",
         "a.b.c",
         "..",
         "...",
         ".x.",
         "!!!.???.***",
         "e30.e30.e30",
         "eyJhbGciOiJSUzI1NiJ9",
         "Bearer x.y.z",
         "\xff\xfe.\xff.\xff",
  };

  for (guint i = 0; i < G_N_ELEMENTS (garbage); i++)
    {
      assert_refused (f, garbage[i], "");
      g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, garbage[i]));
    }

  assert_refused (f, NULL, "Missing token");
  assert_refused (f, "", "Missing token");
  assert_refused (f, long_token, "too long");
  assert_refused (f, trailing_newline, "Malformed");
  assert_refused (f, leading_space, "Malformed");
  assert_refused (f, four_parts, "Malformed");
  assert_refused (f, padded, "Malformed");
  assert_refused (f, no_sig, "Malformed");

  /* a payload nested too deep, an array, not UTF-8 */
  {
    g_autofree char *open = g_strnfill (200, '[');
    g_autofree char *close = g_strnfill (200, ']');

    deep = g_strdup_printf ("{\"iss\":\"%s\",\"x\":%s%s}", ISSUER, open, close);
  }
  deep_b64 = b64 (deep);
  deep_token = g_strconcat (header, ".", deep_b64, ".c2ln", NULL);
  assert_refused (f, deep_token, "Malformed");
  array_token = craft ("{\"alg\":\"RS256\"}", "[1,2]", "c2ln");
  assert_refused (f, array_token, "Malformed");
  latin1_token = craft ("{\"alg\":\"RS256\"}", "{\"iss\":\"caf\xe9\"}", "c2ln");
  assert_refused (f, latin1_token, "Malformed");
  bad_header = craft ("not json", "{\"iss\":\"" ISSUER "\"}", "c2ln");
  assert_refused (f, bad_header, "Malformed");

  /* the good one still passes after all that */
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, good);
  }
}

static void
test_claims_issuer (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *good = sign (key_a, claims);
  g_autofree char       *header = token_part (good, 0);
  g_autofree char       *unsigned_ours = NULL;
  g_autofree char       *theirs = NULL;
  g_autofree char       *odd_iss = NULL;

  g_assert_true (fl_trusted_issuer_claims_issuer (f->issuer, good));
  /* a claim only: the signature is not looked at */
  unsigned_ours = craft ("{\"alg\":\"none\"}", "{\"iss\":\"" ISSUER "\"}", "");
  g_assert_true (fl_trusted_issuer_claims_issuer (f->issuer, unsigned_ours));
  assert_refused (f, unsigned_ours, "not RS256");

  json_object_set_string_member (claims, "iss", OTHER_ISSUER);
  theirs = sign (key_a, claims);
  g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, theirs));
  odd_iss = craft ("{\"alg\":\"RS256\"}", "{\"iss\":[\"" ISSUER "\"]}", "c2ln");
  g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, odd_iss));
  g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, NULL));
  g_assert_false (fl_trusted_issuer_claims_issuer (f->issuer, ""));

  /* still true once the token is cached */
  {
    g_autoptr (FlPrincipal) principal = assert_accepted (f, good);
  }
  g_assert_true (fl_trusted_issuer_claims_issuer (f->issuer, good));
}

static void
test_cache (Fixture      *f,
            gconstpointer data)
{
  enum
  {
    N_TOKENS = 20,
    N_HITS = 500
  };
  g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func (g_free);
  gint64                t0, miss_us, hit_us;
  double                miss_mean, hit_mean;

  for (guint i = 0; i < N_TOKENS; i++)
    {
      g_autoptr (JsonObject) claims = access_claims (f, 3600);
      g_autofree char       *jti = g_strdup_printf ("jti-%u", i);

      json_object_set_string_member (claims, "jti", jti);
      g_ptr_array_add (tokens, sign (key_a, claims));
    }

  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), ==, 0);

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < N_TOKENS; i++)
    fl_principal_free (assert_accepted (f, g_ptr_array_index (tokens, i)));
  miss_us = g_get_monotonic_time () - t0;
  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), ==, N_TOKENS);

  t0 = g_get_monotonic_time ();
  for (guint j = 0; j < N_HITS; j++)
    for (guint i = 0; i < N_TOKENS; i++)
      {
        FlPrincipal *principal = assert_accepted (f, g_ptr_array_index (tokens, i));

        g_assert_cmpstr (principal->username, ==, "ada");
        fl_principal_free (principal);
      }
  hit_us = g_get_monotonic_time () - t0;
  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), ==, N_TOKENS);

  miss_mean = (double) miss_us / N_TOKENS;
  hit_mean = (double) hit_us / (N_TOKENS * N_HITS);
  g_test_message ("authenticate: %.1f µs uncached, %.2f µs cached", miss_mean, hit_mean);
  /* RSA and JSON against a hash and a copy: far apart on any machine */
  g_assert_cmpfloat (hit_mean * 5, <, miss_mean);
}

static void
test_cache_bounded (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);

  for (guint i = 0; i < 4096 + 10; i++)
    {
      g_autofree char *jti = g_strdup_printf ("jti-%u", i);
      g_autofree char *token = NULL;

      json_object_set_string_member (claims, "jti", jti);
      token = sign (key_a, claims);
      fl_principal_free (assert_accepted (f, token));
      g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), <=, 4096);
    }
  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), ==, 4096);

  /* expired entries make room first */
  advance (f, 3600);
  {
    g_autoptr (JsonObject) fresh = access_claims (f, 3600);
    g_autofree char       *token = sign (key_a, fresh);

    fl_principal_free (assert_accepted (f, token));
  }
  g_assert_cmpuint (_fl_trusted_issuer_get_token_cache_size (f->issuer), ==, 1);
}

/* ------------------------------------------------------------------ */
/* Reloading                                                           */

static void
test_file_reload (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *token_a = sign (key_a, claims);
  g_autofree char       *token_b = sign (key_b, claims);
  g_autofree char       *jwks_ab = jwks_for (key_a, key_b);
  g_autofree char       *jwks_b = jwks_for (key_b, NULL);
  g_autoptr (GError)     error = NULL;

  fl_principal_free (assert_accepted (f, token_a));
  assert_refused (f, token_b, "unknown key");
  wait_idle (f);

  write_file (f->jwks_path, jwks_ab);
  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);
  fl_principal_free (assert_accepted (f, token_a));
  fl_principal_free (assert_accepted (f, token_b));

  /* key A withdrawn: its token goes, though it was cached */
  write_file (f->jwks_path, jwks_b);
  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);
  assert_refused (f, token_a, "unknown key");
  fl_principal_free (assert_accepted (f, token_b));
  wait_idle (f);

  /* a bad file keeps the keys there were */
  write_file (f->jwks_path, "{\"keys\": 1}");
  g_assert_false (load (f->issuer, NULL, &error));
  g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  g_assert_nonnull (strstr (error->message, f->jwks_path));
  g_clear_error (&error);
  g_unlink (f->jwks_path);
  g_assert_false (load (f->issuer, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  fl_principal_free (assert_accepted (f, token_b));
  assert_refused (f, token_a, "unknown key");

  /* An unknown kid rereads the file by itself (a minute after the last) */
  write_file (f->jwks_path, jwks_ab);
  advance (f, 61);
  assert_refused (f, token_a, "unknown key");
  wait_idle (f);
  fl_principal_free (assert_accepted (f, token_a));
}

static void
test_http_rotation (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 7200);
  g_autofree char       *token_a = sign (key_a, claims);
  g_autofree char       *token_b = sign (key_b, claims);
  g_autofree char       *payload = object_to_string (claims);
  g_autoptr (GError)     error = NULL;

  use_http_issuer (f);
  g_assert_cmpuint (f->requests, ==, 0);

  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (f->requests, ==, 1);
  fl_principal_free (assert_accepted (f, token_a));

  /* The pool rotates to key B: its first token starts a refetch */
  serve_keys (f, key_b, NULL);
  assert_refused (f, token_b, "unknown key");
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 2);
  fl_principal_free (assert_accepted (f, token_b));
  /* key A is gone, with its cached token */
  assert_refused (f, token_a, "unknown key");

  /* A flood of unknown kids within the minute fetches nothing */
  for (guint i = 0; i < 200; i++)
    {
      g_autofree char *header = g_strdup_printf ("{\"kid\":\"made-up-%u\",\"alg\":\"RS256\"}", i);
      g_autofree char *t = craft (header, payload, "c2ln");

      assert_refused (f, t, "unknown key");
      assert_refused (f, token_a, "unknown key");
    }
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 2);

  advance (f, 59);
  assert_refused (f, token_a, "unknown key");
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));
  spin (50);
  g_assert_cmpuint (f->requests, ==, 2);

  /* a minute on: one more, and only one */
  advance (f, 2);
  for (guint i = 0; i < 100; i++)
    assert_refused (f, token_a, "unknown key");
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 3);
  for (guint i = 0; i < 100; i++)
    assert_refused (f, token_a, "unknown key");
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 3);

  /* another issuer's tokens never make us fetch */
  advance (f, 61);
  {
    g_autoptr (JsonObject) theirs = access_claims (f, 3600);
    g_autofree char       *t = NULL;

    json_object_set_string_member (theirs, "iss", OTHER_ISSUER);
    t = sign (key_a, theirs);
    assert_refused (f, t, "not issued by");
  }
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));

  /* an explicit load is never held back */
  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (f->requests, ==, 4);
  fl_principal_free (assert_accepted (f, token_b));

  /* nor does a refetch start while one runs, however late it is */
  advance (f, 61);
  assert_refused (f, token_a, "unknown key");
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));
  advance (f, 61);
  assert_refused (f, token_a, "unknown key");
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 5);
}

static void
test_http_first_token (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (JsonObject) claims = id_claims (f, 3600);
  g_autofree char       *token = sign (key_a, claims);

  /* never loaded: the first token fetches the keys */
  use_http_issuer (f);
  assert_refused (f, token, "unknown key");
  wait_idle (f);
  g_assert_cmpuint (f->requests, ==, 1);
  fl_principal_free (assert_accepted (f, token));
}

static void
test_http_periodic (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *token_b = sign (key_b, claims);
  g_autoptr (GError)     error = NULL;

  use_http_issuer (f);
  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (f->requests, ==, 1);

  serve_keys (f, key_a, key_b);
  _fl_trusted_issuer_set_refresh_interval (f->issuer, 100);
  wait_requests (f, 3);
  wait_idle (f);
  _fl_trusted_issuer_set_refresh_interval (f->issuer, 60 * 60 * 1000);

  /* B's first token passes: the keys came without its help */
  fl_principal_free (assert_accepted (f, token_b));
}

static void
assert_load_fails (Fixture    *f,
                   GQuark      domain,
                   int         code,
                   const char *why)
{
  g_autoptr (GError) error = NULL;
  guint              requests = f->requests;

  g_assert_false (load (f->issuer, NULL, &error));
  g_assert_error (error, domain, code);
  g_assert_cmpuint (f->requests, ==, requests + 1);
  if (strstr (error->message, why) == NULL || strstr (error->message, f->url) == NULL)
    g_error ("Load failed with “%s”, not for “%s”", error->message, why);
}

static void
test_http_failures (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 7200);
  g_autofree char       *token_a = sign (key_a, claims);
  g_autofree char       *token_b = sign (key_b, claims);
  g_autofree char       *big = NULL;
  g_autoptr (GError)     error = NULL;

  use_http_issuer (f);
  g_assert_true (load (f->issuer, NULL, &error));
  g_assert_no_error (error);

  f->status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
  assert_load_fails (f, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP 500");
  f->status = SOUP_STATUS_NOT_FOUND;
  assert_load_fails (f, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP 404");
  /* redirects are not followed */
  f->status = SOUP_STATUS_FOUND;
  assert_load_fails (f, G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP 302");
  f->status = SOUP_STATUS_OK;

  set_body (f, "<html>Service Unavailable</html>");
  assert_load_fails (f, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Not a JWKS");
  set_body (f, "{\"keys\": []}");
  assert_load_fails (f, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "no RS256");
  {
    g_autofree char *jwks = jwks_for (key_b, NULL);
    g_autofree char *pad = g_strnfill (200 * 1024, 'x');

    big = g_strdup_printf ("{\"pad\": \"%s\", %s", pad, jwks + 1);
    set_body (f, big);
    assert_load_fails (f, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE, "larger than");
  }

  /* the keys there were are kept */
  fl_principal_free (assert_accepted (f, token_a));
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));

  /* a load no one waits for says so in the log */
  f->status = SOUP_STATUS_INTERNAL_SERVER_ERROR;
  g_test_expect_message ("fl-trusted-issuer", G_LOG_LEVEL_WARNING, "*not refreshed*HTTP 500*");
  fl_trusted_issuer_load_async (f->issuer, NULL, NULL, NULL);
  wait_idle (f);
  g_test_assert_expected_messages ();
  f->status = SOUP_STATUS_OK;

  /* an automatic refetch that fails says so, and keeps them too */
  serve_keys (f, key_b, NULL);
  f->status = SOUP_STATUS_SERVICE_UNAVAILABLE;
  g_test_expect_message ("fl-trusted-issuer", G_LOG_LEVEL_WARNING, "*not refreshed*HTTP 503*");
  assert_refused (f, token_b, "unknown key");
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));
  wait_idle (f);
  g_test_assert_expected_messages ();
  fl_principal_free (assert_accepted (f, token_a));

  /* the server is back: the keys come once a minute has passed */
  f->status = SOUP_STATUS_OK;
  assert_refused (f, token_b, "unknown key");
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));
  advance (f, 60);
  assert_refused (f, token_b, "unknown key");
  wait_idle (f);
  fl_principal_free (assert_accepted (f, token_b));
  assert_refused (f, token_a, "unknown key");
}

static void
test_http_timeout (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (GError)       error = NULL;
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  GAsyncResult            *result = NULL;
  gint64                   t0;

  use_http_issuer (f);
  _fl_trusted_issuer_set_fetch_timeout (f->issuer, 300);
  f->pause = TRUE;

  t0 = g_get_monotonic_time ();
  g_assert_false (load (f->issuer, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_nonnull (strstr (error->message, "300 ms"));
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 5 * G_USEC_PER_SEC);
  g_assert_cmpuint (f->requests, ==, 1);
  g_clear_error (&error);

  /* a caller's cancellable */
  _fl_trusted_issuer_set_fetch_timeout (f->issuer, 20000);
  fl_trusted_issuer_load_async (f->issuer, cancellable, load_cb, &result);
  wait_requests (f, 2);
  g_cancellable_cancel (cancellable);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (fl_trusted_issuer_load_finish (f->issuer, result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_object (&result);
  g_assert_false (_fl_trusted_issuer_is_loading (f->issuer));
}

static void
test_http_dispose (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr (JsonObject) claims = access_claims (f, 3600);
  g_autofree char       *token = sign (key_a, claims);
  FlTrustedIssuer       *issuer;

  use_http_issuer (f);
  f->pause = TRUE;
  assert_refused (f, token, "unknown key");
  wait_requests (f, 1);
  g_assert_true (_fl_trusted_issuer_is_loading (f->issuer));

  /* the running refetch does not keep the issuer alive */
  issuer = g_steal_pointer (&f->issuer);
  g_assert_finalize_object (issuer);
  spin (100);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr (GError) error = NULL;
  int                ret;

  g_test_init (&argc, &argv, NULL);

  key_a = fl_jwt_key_generate (2048, &error);
  g_assert_no_error (error);
  key_b = fl_jwt_key_generate (2048, &error);
  g_assert_no_error (error);

#define ADD(path, func) \
  g_test_add ("/fieldline/trusted-issuer/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  g_test_add_func ("/fieldline/trusted-issuer/new/arguments", test_new_arguments);
  ADD ("new/file", test_new_file);
  ADD ("accept/access-token", test_access_token);
  ADD ("accept/id-token", test_id_token);
  ADD ("accept/groups", test_groups);
  ADD ("refuse/expired", test_expired);
  ADD ("refuse/wrong-issuer", test_wrong_issuer);
  ADD ("refuse/wrong-client", test_wrong_client);
  ADD ("refuse/token-use", test_token_use);
  ADD ("refuse/missing-subject", test_missing_subject);
  ADD ("refuse/algorithms", test_algorithms);
  ADD ("refuse/unknown-key", test_unknown_key);
  ADD ("refuse/tampered", test_tampered);
  ADD ("refuse/malformed", test_malformed);
  ADD ("claims-issuer", test_claims_issuer);
  ADD ("cache/fast", test_cache);
  ADD ("cache/bounded", test_cache_bounded);
  ADD ("jwks/file-reload", test_file_reload);
  ADD ("jwks/http-rotation", test_http_rotation);
  ADD ("jwks/http-first-token", test_http_first_token);
  ADD ("jwks/http-periodic", test_http_periodic);
  ADD ("jwks/http-failures", test_http_failures);
  ADD ("jwks/http-timeout", test_http_timeout);
  ADD ("jwks/http-dispose", test_http_dispose);

#undef ADD

  ret = g_test_run ();

  g_clear_pointer (&key_a, fl_jwt_key_free);
  g_clear_pointer (&key_b, fl_jwt_key_free);

  return ret;
}
