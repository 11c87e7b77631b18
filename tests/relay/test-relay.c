/* test-relay.c: the relay's REST API end to end, against an in-process
 * relay: discovery, sign-in, bearer tokens, roles, devices, ingest,
 * events, telemetry, metrics, routing, restart, shutdown and TLS.  The
 * live stream and the device WebSocket are in test-relay-stream.c. */
#define G_LOG_DOMAIN "test-relay"

#include "config.h"

#include <math.h>
#include <string.h>

#include "relay-fixture.h"

/* ---- small helpers ----------------------------------------------------- */

static gint64
member_int (JsonObject *obj,
            const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    g_error ("Member “%s” is missing or not an integer", name);

  return json_node_get_int (node);
}

static double
member_double (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || (json_node_get_value_type (node) != G_TYPE_INT64 && json_node_get_value_type (node) != G_TYPE_DOUBLE))
    g_error ("Member “%s” is missing or not a number", name);

  return json_node_get_double (node);
}

static const char *
member_string (JsonObject *obj,
               const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    g_error ("Member “%s” is missing or not a string", name);

  return json_node_get_string (node);
}

static GHashTable *
string_set_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

/* Checks an ingest reply: 200 and the counts; returns the "rejected" array. */
static JsonArray *
assert_ingest_counts (RfReply *reply,
                      gint64   accepted,
                      gint64   duplicates,
                      guint    n_rejected)
{
  JsonObject *obj;
  JsonArray  *rejected;

  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);
  g_assert_cmpint (member_int (obj, "accepted"), ==, accepted);
  g_assert_cmpint (member_int (obj, "duplicates"), ==, duplicates);
  rejected = json_object_get_array_member (obj, "rejected");
  g_assert_nonnull (rejected);
  g_assert_cmpuint (json_array_get_length (rejected), ==, n_rejected);

  return rejected;
}

/* rejected[i] is {"index": index, "error": {"code": code, "message"}} */
static void
assert_rejection (JsonArray  *rejected,
                  guint       i,
                  gint64      index,
                  const char *code)
{
  JsonObject *item = json_array_get_object_element (rejected, i);

  g_assert_nonnull (item);
  g_assert_cmpint (member_int (item, "index"), ==, index);
  rf_assert_error_member (item, code);
}

static guint
count_done (GPtrArray *replies)
{
  guint n = 0;

  for (guint i = 0; i < replies->len; i++)
    n += ((RfReply *) g_ptr_array_index (replies, i))->done;

  return n;
}

/* The deviceIds of a GET /devices reply, in order, joined by spaces. */
static char *
device_ids_of (RfReply *reply)
{
  JsonArray *devices = json_object_get_array_member (rf_reply_object (reply), "devices");
  GString   *out = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (devices); i++)
    {
      JsonObject *device = json_array_get_object_element (devices, i);

      if (i > 0)
        g_string_append_c (out, ' ');
      g_string_append (out, member_string (device, "deviceId"));
      /* the secret is shown once, at registration, and never again */
      g_assert_false (json_object_has_member (device, "deviceSecret"));
      g_assert_false (json_object_has_member (device, "secretHash"));
    }

  return g_string_free (out, FALSE);
}

static char *
list_device_ids (RfFixture  *f,
                 const char *query)
{
  g_autofree char    *path = g_strconcat ("/devices", query ? "?" : "", query ? query : "", NULL);
  g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);

  rf_assert_status (reply, 200);
  return device_ids_of (reply);
}

static JsonObject *
get_device (RfFixture  *f,
            const char *device_id)
{
  g_autofree char    *path = g_strdup_printf ("/devices/%s", device_id);
  g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);
  JsonObject         *obj;

  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);
  g_assert_cmpstr (member_string (obj, "deviceId"), ==, device_id);
  g_assert_false (json_object_has_member (obj, "deviceSecret"));
  g_assert_false (json_object_has_member (obj, "secretHash"));

  return json_object_ref (obj);
}

/* The JSON object in part index (0 header, 1 claims) of a compact JWS. */
static JsonObject *
jwt_part (const char *token,
          guint       index)
{
  g_auto (GStrv)         parts = g_strsplit (token, ".", 3);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree guint8     *raw = NULL;
  g_autoptr (GError)     error = NULL;
  gsize                  len = 0;

  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  raw = fl_base64url_decode (parts[index], &len);
  g_assert_nonnull (raw);
  json_parser_load_from_data (parser, (const char *) raw, len, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static char *
jwt_encode_part (JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);
  g_autofree char     *text = json_to_string (node, FALSE);

  return fl_base64url_encode ((const guint8 *) text, strlen (text));
}

/* GET /devices with token must be refused with 401 and an error body. */
static void
assert_token_refused (RfFixture  *f,
                      const char *token)
{
  g_autoptr (RfReply) reply = rf_get (f, "/devices", token);
  g_autoptr (RfReply) events = rf_get (f, "/events", token);

  rf_assert_error (reply, 401, "unauthorized");
  rf_assert_error (events, 401, "unauthorized");
}

/* ---- discovery ------------------------------------------------------------ */

static void
test_config (RfFixture    *f,
             gconstpointer data)
{
  g_autoptr (RfReply) reply = rf_get (f, "/config", NULL);
  g_autofree char    *issuer = g_strdup_printf ("%s/%s", f->url, fl_relay_get_pool_id (f->relay));
  g_autofree char    *websocket = g_strconcat ("ws", f->url + strlen ("http"), "/events", NULL);
  JsonObject         *obj;

  rf_assert_status (reply, 200);
  g_assert_true (g_str_has_prefix (rf_reply_header (reply, "Content-Type"), "application/json"));
  obj = rf_reply_object (reply);
  g_assert_cmpstr (member_string (obj, "userPoolId"), ==, fl_relay_get_pool_id (f->relay));
  g_assert_cmpstr (member_string (obj, "clientId"), ==, fl_relay_get_client_id (f->relay));
  g_assert_cmpstr (member_string (obj, "issuer"), ==, issuer);
  g_assert_cmpstr (member_string (obj, "apiUrl"), ==, f->url);
  g_assert_cmpstr (member_string (obj, "websocketUrl"), ==, websocket);
  g_assert_nonnull (member_string (obj, "region"));

  /* the issuer is the one in the tokens */
  {
    g_autoptr (JsonObject) claims = jwt_part (f->admin_token, 1);
    g_assert_cmpstr (member_string (claims, "iss"), ==, issuer);
  }
}

static void
test_health (RfFixture    *f,
             gconstpointer data)
{
  g_autoptr (RfReply) reply = rf_get (f, "/health", NULL);
  g_autoptr (RfReply) post = rf_request_json (f, "POST", "/health", NULL, "{}");

  rf_assert_status (reply, 200);
  g_assert_cmpstr (member_string (rf_reply_object (reply), "status"), ==, "ok");

  rf_assert_error (post, 405, "method_not_allowed");
  g_assert_cmpstr (rf_reply_header (post, "Allow"), ==, "GET");
}

static void
test_jwks (RfFixture    *f,
           gconstpointer data)
{
  g_autofree char       *path = g_strdup_printf ("/%s/.well-known/jwks.json", fl_relay_get_pool_id (f->relay));
  g_autoptr (RfReply)    reply = rf_get (f, path, NULL);
  g_autoptr (RfReply)    other = rf_get (f, "/local_NoSuchPool/.well-known/jwks.json", NULL);
  g_autoptr (GHashTable) kids = g_hash_table_new (g_str_hash, g_str_equal);
  const char            *tokens[] = { f->admin_token, f->operator_token, f->viewer_token };
  JsonArray             *keys;

  rf_assert_status (reply, 200);
  keys = json_object_get_array_member (rf_reply_object (reply), "keys");
  g_assert_nonnull (keys);
  g_assert_cmpuint (json_array_get_length (keys), >=, 1);

  for (guint i = 0; i < json_array_get_length (keys); i++)
    {
      JsonObject *key = json_array_get_object_element (keys, i);

      g_assert_cmpstr (member_string (key, "kty"), ==, "RSA");
      g_assert_cmpstr (member_string (key, "alg"), ==, "RS256");
      g_assert_cmpstr (member_string (key, "use"), ==, "sig");
      g_assert_cmpuint (strlen (member_string (key, "n")), >=, 340); /* ≥ 2048 bits */
      g_assert_cmpstr (member_string (key, "e"), !=, "");
      /* public keys only */
      g_assert_false (json_object_has_member (key, "d"));
      g_assert_false (json_object_has_member (key, "p"));
      g_hash_table_add (kids, (gpointer) member_string (key, "kid"));
    }

  /* ID and access tokens are signed by published keys */
  for (guint i = 0; i < G_N_ELEMENTS (tokens); i++)
    {
      g_autoptr (JsonObject) header = jwt_part (tokens[i], 0);

      g_assert_cmpstr (member_string (header, "alg"), ==, "RS256");
      g_assert_true (g_hash_table_contains (kids, member_string (header, "kid")));
    }

  rf_assert_error (other, 404, "not_found");
}

/* ---- sign-in ------------------------------------------------------------- */

static void
test_login (RfFixture    *f,
            gconstpointer data)
{
  g_autoptr (RfReply) reply = NULL;
  JsonObject         *obj;
  const char         *id_token, *access_token;

  reply = rf_request_json (f, "POST", "/auth/login", NULL,
                           "{\"username\":\"operator\",\"password\":\"" RF_PASSWORD "\"}");
  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);
  id_token = member_string (obj, "idToken");
  access_token = member_string (obj, "accessToken");
  g_assert_cmpstr (member_string (obj, "refreshToken"), !=, "");
  g_assert_cmpint (member_int (obj, "expiresIn"), >, 0);

  /* both tokens work as bearer tokens */
  {
    g_autoptr (RfReply) with_id = rf_get (f, "/devices", id_token);
    g_autoptr (RfReply) with_access = rf_get (f, "/devices", access_token);

    rf_assert_status (with_id, 200);
    rf_assert_status (with_access, 200);
  }

  /* the claims say who and what */
  {
    g_autoptr (JsonObject) claims = jwt_part (id_token, 1);
    JsonArray             *groups = json_object_get_array_member (claims, "cognito:groups");

    g_assert_cmpstr (member_string (claims, "cognito:username"), ==, "operator");
    g_assert_cmpstr (member_string (claims, "token_use"), ==, "id");
    g_assert_cmpstr (member_string (claims, "aud"), ==, fl_relay_get_client_id (f->relay));
    g_assert_nonnull (groups);
    g_assert_cmpuint (json_array_get_length (groups), ==, 1);
    g_assert_cmpstr (json_array_get_string_element (groups, 0), ==, "operator");
  }
}

static void
test_login_errors (RfFixture    *f,
                   gconstpointer data)
{
  struct
  {
    const char *body;
    guint       status;
    const char *code;
  } cases[] = {
    { "{\"username\":\"admin\",\"password\":\"Wr0ng-Password\"}", 401, "not_authorized" },
    { "{\"username\":\"nobody\",\"password\":\"" RF_PASSWORD "\"}", 401, "not_authorized" },
    { "{\"username\":\"admin\"}", 400, "missing_field" },
    { "{\"password\":\"" RF_PASSWORD "\"}", 400, "missing_field" },
    { "{\"username\":\"admin\",\"password\":42}", 400, "invalid_field" },
    { "{\"username\":\"admin\",", 400, "malformed_json" },
    { "[\"admin\"]", 400, "malformed_json" },
    { "", 400, "malformed_json" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (RfReply) reply = NULL;

      g_test_message ("login body: %s", cases[i].body);
      reply = rf_request_json (f, "POST", "/auth/login", NULL, cases[i].body);
      rf_assert_error (reply, cases[i].status, cases[i].code);
      g_assert_false (json_object_has_member (rf_reply_object (reply), "idToken"));
    }

  {
    g_autoptr (RfReply) reply = rf_get (f, "/auth/login", NULL);
    rf_assert_error (reply, 405, "method_not_allowed");
  }
}

static void
test_refresh (RfFixture    *f,
              gconstpointer data)
{
  g_autofree char    *body = g_strdup_printf ("{\"refreshToken\":\"%s\"}", f->admin_refresh_token);
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/auth/refresh", NULL, body);
  g_autoptr (RfReply) garbage = rf_request_json (f, "POST", "/auth/refresh", NULL, "{\"refreshToken\":\"not-a-refresh-token\"}");
  g_autoptr (RfReply) missing = rf_request_json (f, "POST", "/auth/refresh", NULL, "{}");
  JsonObject         *obj;

  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);

  /* new tokens that work, with admin's role */
  {
    g_autofree char    *device = g_strdup_printf ("{\"deviceId\":\"after-refresh\",\"name\":\"R\"}");
    g_autoptr (RfReply) post = rf_request_json (f, "POST", "/devices", member_string (obj, "idToken"), device);
    g_autoptr (RfReply) get = rf_get (f, "/devices", member_string (obj, "accessToken"));

    rf_assert_status (post, 201);
    rf_assert_status (get, 200);
  }

  rf_assert_error (garbage, 401, "not_authorized");
  rf_assert_error (missing, 400, "missing_field");
}

/* ---- bearer tokens ----------------------------------------------------------- */

static void
test_token_missing (RfFixture    *f,
                    gconstpointer data)
{
  const char *paths[] = { "/devices", "/devices/x", "/events", "/events/x", "/metrics", "/devices/x/telemetry?metric=t" };

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr (RfReply) reply = rf_get (f, paths[i], NULL);

      rf_assert_error (reply, 401, "unauthorized");
      g_assert_nonnull (rf_reply_header (reply, "WWW-Authenticate"));
      g_assert_true (g_str_has_prefix (rf_reply_header (reply, "WWW-Authenticate"), "Bearer"));
    }

  /* a device's Basic credentials are not an operator's token */
  {
    SoupMessage        *msg = rf_message_new (f, "GET", "/devices", NULL);
    g_autoptr (RfReply) reply = NULL;

    rf_message_set_basic (msg, "admin", RF_PASSWORD);
    reply = rf_send (f, msg);
    rf_assert_error (reply, 401, "unauthorized");
  }
}

static void
test_token_garbage (RfFixture    *f,
                    gconstpointer data)
{
  const char *tokens[] = {
    "not-a-token",
    "aaaa.bbbb.cccc",
    "eyJhbGciOiJSUzI1NiJ9.e30.",
    "...",
  };

  for (guint i = 0; i < G_N_ELEMENTS (tokens); i++)
    assert_token_refused (f, tokens[i]);

  /* a real token with a byte of its signature changed */
  {
    g_autofree char *token = g_strdup (f->admin_token);
    gsize            len = strlen (token);

    token[len - 5] = token[len - 5] == 'A' ? 'B' : 'A';
    assert_token_refused (f, token);
  }
}

/* alg "none", and a real signature under altered claims */
static void
test_token_alg_none (RfFixture    *f,
                     gconstpointer data)
{
  g_autoptr (JsonObject) claims = jwt_part (f->viewer_token, 1);
  g_autoptr (JsonObject) header = json_object_new ();
  g_auto (GStrv)         parts = g_strsplit (f->viewer_token, ".", 3);
  g_autoptr (JsonArray)  groups = json_array_new ();
  g_autofree char       *header_b64 = NULL;
  g_autofree char       *claims_b64 = NULL;

  /* the viewer, promoted to admin */
  json_array_add_string_element (groups, "admin");
  json_object_set_array_member (claims, "cognito:groups", json_array_ref (groups));
  claims_b64 = jwt_encode_part (claims);

  json_object_set_string_member (header, "alg", "none");
  json_object_set_string_member (header, "typ", "JWT");
  header_b64 = jwt_encode_part (header);

  {
    g_autofree char    *unsigned_token = g_strdup_printf ("%s.%s.", header_b64, claims_b64);
    g_autofree char    *with_signature = g_strdup_printf ("%s.%s.%s", header_b64, claims_b64, parts[2]);
    g_autofree char    *tampered = g_strdup_printf ("%s.%s.%s", parts[0], claims_b64, parts[2]);
    g_autoptr (RfReply) post = NULL;

    assert_token_refused (f, unsigned_token);
    assert_token_refused (f, with_signature);
    assert_token_refused (f, tampered);

    post = rf_request_json (f, "POST", "/devices", tampered, "{\"deviceId\":\"forged\"}");
    rf_assert_error (post, 401, "unauthorized");
  }

  /* the viewer's own token is still only a viewer's */
  {
    g_autoptr (RfReply) post = rf_request_json (f, "POST", "/devices", f->viewer_token, "{\"deviceId\":\"forged\"}");
    rf_assert_error (post, 403, "forbidden");
  }
}

/* Plausible claims for admin, as the relay issues them, with new times. */
static JsonObject *
admin_claims (RfFixture *f,
              gint64     iat,
              gint64     exp)
{
  JsonObject      *claims = jwt_part (f->admin_token, 1);
  g_autofree char *jti = g_uuid_string_random ();

  json_object_set_int_member (claims, "iat", iat);
  json_object_set_int_member (claims, "auth_time", iat);
  json_object_set_int_member (claims, "exp", exp);
  json_object_set_string_member (claims, "jti", jti);

  return claims;
}

static void
test_token_foreign_key (RfFixture    *f,
                        gconstpointer data)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlJwtKey)   key = fl_jwt_key_generate (2048, &error);
  gint64                 now = rf_now_ms () / 1000;
  g_autoptr (JsonObject) claims = admin_claims (f, now, now + 3600);
  g_autofree char       *token = NULL;
  g_autoptr (JsonObject) header = NULL;

  g_assert_no_error (error);
  token = fl_jwt_sign (key, claims, &error);
  g_assert_no_error (error);

  /* well-formed RS256 with the relay's issuer: only the key is wrong */
  header = jwt_part (token, 0);
  g_assert_cmpstr (member_string (header, "alg"), ==, "RS256");
  assert_token_refused (f, token);
}

static void
test_token_expired (RfFixture    *f,
                    gconstpointer data)
{
  g_autoptr (GError)     error = NULL;
  g_autofree char       *path = g_build_filename (f->dir, "keys", "id-token.pem", NULL);
  g_autoptr (FlJwtKey)   key = NULL;
  gint64                 now = rf_now_ms () / 1000;
  g_autoptr (JsonObject) expired_claims = admin_claims (f, now - 7200, now - 3600);
  g_autoptr (JsonObject) fresh_claims = admin_claims (f, now, now + 600);
  g_autofree char       *expired = NULL;
  g_autofree char       *fresh = NULL;

  /* the relay's own ID-token key, as it stored it */
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  key = fl_jwt_key_load_or_create (path, &error);
  g_assert_no_error (error);

  expired = fl_jwt_sign (key, expired_claims, &error);
  g_assert_no_error (error);
  fresh = fl_jwt_sign (key, fresh_claims, &error);
  g_assert_no_error (error);

  /* the same key and claims are accepted while fresh: only expiry differs */
  {
    g_autoptr (RfReply) reply = rf_get (f, "/devices", fresh);
    rf_assert_status (reply, 200);
  }
  assert_token_refused (f, expired);

  /* a token that expired a second ago */
  {
    g_autoptr (JsonObject) just = admin_claims (f, now - 600, now - 1);
    g_autofree char       *token = fl_jwt_sign (key, just, &error);

    g_assert_no_error (error);
    assert_token_refused (f, token);
  }
}

/* ---- roles ---------------------------------------------------------------- */

static void
test_roles (RfFixture    *f,
            gconstpointer data)
{
  const char *body = "{\"deviceId\":\"role-dev\",\"name\":\"Roles\"}";

  {
    g_autoptr (RfReply) viewer_list = rf_get (f, "/devices", f->viewer_token);
    g_autoptr (RfReply) operator_list = rf_get (f, "/devices", f->operator_token);

    rf_assert_status (viewer_list, 200);
    rf_assert_status (operator_list, 200);
  }

  {
    g_autoptr (RfReply) viewer_post = rf_request_json (f, "POST", "/devices", f->viewer_token, body);
    g_autoptr (RfReply) operator_post = rf_request_json (f, "POST", "/devices", f->operator_token, body);
    g_autoptr (RfReply) admin_post = NULL;

    rf_assert_error (viewer_post, 403, "forbidden");
    rf_assert_error (operator_post, 403, "forbidden");

    /* nothing was registered by the refused requests */
    {
      g_autoptr (RfReply) get = rf_get (f, "/devices/role-dev", f->viewer_token);
      rf_assert_error (get, 404, "not_found");
    }

    admin_post = rf_request_json (f, "POST", "/devices", f->admin_token, body);
    rf_assert_status (admin_post, 201);
  }

  /* changes are for admins; reading is for everyone */
  {
    const char *tokens[] = { f->viewer_token, f->operator_token };

    for (guint i = 0; i < G_N_ELEMENTS (tokens); i++)
      {
        g_autoptr (RfReply) get = rf_get (f, "/devices/role-dev", tokens[i]);
        g_autoptr (RfReply) put = rf_request_json (f, "PUT", "/devices/role-dev", tokens[i], "{\"name\":\"x\"}");
        g_autoptr (RfReply) del = rf_request_json (f, "DELETE", "/devices/role-dev", tokens[i], NULL);
        g_autoptr (RfReply) secret = rf_request_json (f, "POST", "/devices/role-dev/secret", tokens[i], NULL);

        rf_assert_status (get, 200);
        rf_assert_error (put, 403, "forbidden");
        rf_assert_error (del, 403, "forbidden");
        rf_assert_error (secret, 403, "forbidden");
      }
  }

  {
    g_autoptr (JsonObject) device = get_device (f, "role-dev");
    g_assert_cmpstr (member_string (device, "name"), ==, "Roles");
    g_assert_cmpstr (member_string (device, "status"), ==, "offline");
  }
}

/* ---- devices -------------------------------------------------------------- */

static void
test_device_register (RfFixture    *f,
                      gconstpointer data)
{
  const char         *body = "{\"deviceId\":\"th-1\",\"name\":\"Greenhouse\",\"type\":\"sensor\",\"model\":\"TH-1\","
                             "\"manufacturer\":\"Acme\",\"tags\":[\"greenhouse\",\"north\"],\"heartbeatTimeoutSec\":120,"
                             "\"capabilities\":{\"metrics\":[\"temperature\",\"humidity\"],\"commands\":[{\"name\":\"set_interval\","
                             "\"category\":\"configuration\",\"params\":{\"seconds\":{\"type\":\"integer\",\"min\":1,\"max\":3600,\"required\":true}}}]}}";
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/devices", f->admin_token, body);
  g_autoptr (RfReply) again = NULL;
  JsonObject         *obj;
  JsonArray          *tags;
  const char         *secret;
  gint64              created_at;

  rf_assert_status (reply, 201);
  obj = rf_reply_object (reply);
  g_assert_cmpstr (member_string (obj, "deviceId"), ==, "th-1");
  g_assert_cmpstr (member_string (obj, "name"), ==, "Greenhouse");
  g_assert_cmpstr (member_string (obj, "type"), ==, "sensor");
  g_assert_cmpstr (member_string (obj, "model"), ==, "TH-1");
  g_assert_cmpstr (member_string (obj, "manufacturer"), ==, "Acme");
  g_assert_cmpstr (member_string (obj, "status"), ==, "offline");
  g_assert_true (json_node_is_null (json_object_get_member (obj, "lastSeen")));
  g_assert_cmpint (member_int (obj, "heartbeatTimeoutSec"), ==, 120);
  tags = json_object_get_array_member (obj, "tags");
  g_assert_cmpuint (json_array_get_length (tags), ==, 2);
  g_assert_cmpstr (json_array_get_string_element (tags, 0), ==, "greenhouse");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_object_get_object_member (obj, "capabilities"), "metrics")), ==, 2);
  created_at = member_int (obj, "createdAt");
  g_assert_cmpint (created_at, >, rf_now_ms () - 60000);
  g_assert_cmpint (created_at, <=, rf_now_ms ());
  secret = member_string (obj, "deviceSecret");
  g_assert_cmpuint (strlen (secret), >=, 32);
  g_assert_false (json_object_has_member (obj, "secretHash"));

  /* shown once: not in GET, not in the list */
  {
    g_autoptr (JsonObject) device = get_device (f, "th-1");
    g_autofree char       *ids = list_device_ids (f, NULL);

    g_assert_cmpint (member_int (device, "createdAt"), ==, created_at);
    g_assert_cmpstr (ids, ==, "th-1");
  }

  /* and the secret works */
  {
    g_autofree char    *event = rf_event_json ("reg-1", rf_now_ms (), NULL, "heartbeat", NULL);
    g_autoptr (RfReply) ingest = rf_ingest (f, "th-1", secret, event);

    assert_ingest_counts (ingest, 1, 0, 0);
  }

  /* the same id again is a conflict, and changes nothing */
  again = rf_request_json (f, "POST", "/devices", f->admin_token, "{\"deviceId\":\"th-1\",\"name\":\"Impostor\"}");
  rf_assert_error (again, 409, "conflict");
  {
    g_autoptr (JsonObject) device = get_device (f, "th-1");
    g_autoptr (RfReply)    ingest = NULL;
    g_autofree char       *event = rf_event_json ("reg-2", rf_now_ms (), NULL, "heartbeat", NULL);

    g_assert_cmpstr (member_string (device, "name"), ==, "Greenhouse");
    ingest = rf_ingest (f, "th-1", secret, event);
    assert_ingest_counts (ingest, 1, 0, 0);
  }
}

static void
test_device_generated_id (RfFixture    *f,
                          gconstpointer data)
{
  g_autoptr (RfReply) first = rf_request_json (f, "POST", "/devices", f->admin_token, "{\"name\":\"Anonymous\"}");
  g_autoptr (RfReply) second = rf_request_json (f, "POST", "/devices", f->admin_token, "{\"deviceId\":null,\"name\":\"Anonymous\"}");
  const char         *id1, *id2;

  rf_assert_status (first, 201);
  rf_assert_status (second, 201);
  id1 = member_string (rf_reply_object (first), "deviceId");
  id2 = member_string (rf_reply_object (second), "deviceId");
  g_assert_cmpstr (id1, !=, "");
  g_assert_cmpstr (id1, !=, id2);
  g_assert_true (fl_device_id_is_valid (id1));
  g_assert_cmpstr (member_string (rf_reply_object (first), "deviceSecret"), !=, "");

  {
    g_autoptr (JsonObject) device = get_device (f, id1);
    g_assert_cmpstr (member_string (device, "name"), ==, "Anonymous");
  }
}

static void
test_device_invalid (RfFixture    *f,
                     gconstpointer data)
{
  g_autofree char *long_id = g_strnfill (FL_DEVICE_MAX_ID_LENGTH + 1, 'a');
  g_autofree char *long_id_body = g_strdup_printf ("{\"deviceId\":\"%s\"}", long_id);
  struct
  {
    const char *body;
    const char *code;
  } cases[] = {
    { "{\"deviceId\":\"bad id!\",\"name\":\"x\"}", "invalid_field" },
    { "{\"deviceId\":\"a/b\",\"name\":\"x\"}", "invalid_field" },
    { "{\"deviceId\":\"\",\"name\":\"x\"}", "invalid_field" },
    { "{\"deviceId\":42,\"name\":\"x\"}", "invalid_field" },
    { long_id_body, "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"name\":42}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"tags\":\"north\"}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"tags\":[1,2]}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"heartbeatTimeoutSec\":\"60\"}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"heartbeatTimeoutSec\":0}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"capabilities\":{\"metrics\":\"temperature\"}}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"location\":{\"lat\":95,\"lon\":0}}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",\"colour\":\"red\"}", "invalid_field" },
    { "{\"deviceId\":\"ok-1\",", "malformed_json" },
    { "[{\"deviceId\":\"ok-1\"}]", "malformed_json" },
    { "\"ok-1\"", "malformed_json" },
    { "", "malformed_json" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (RfReply) reply = NULL;

      g_test_message ("register body: %.80s", cases[i].body);
      reply = rf_request_json (f, "POST", "/devices", f->admin_token, cases[i].body);
      rf_assert_error (reply, 400, cases[i].code);
    }

  /* none of them registered anything */
  {
    g_autofree char *ids = list_device_ids (f, NULL);
    g_assert_cmpstr (ids, ==, "");
  }
}

static void
test_device_get (RfFixture    *f,
                 gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "getme", ",\"tags\":[\"a\"]");
  g_autoptr (JsonObject) device = get_device (f, "getme");
  g_autoptr (RfReply)    unknown = rf_get (f, "/devices/nope", f->viewer_token);
  g_autoptr (RfReply)    trailing = rf_get (f, "/devices/getme/", f->viewer_token);

  g_assert_cmpstr (member_string (device, "name"), ==, "Device getme");
  g_assert_cmpstr (member_string (device, "status"), ==, "offline");
  g_assert_true (json_object_has_member (device, "capabilities"));
  g_assert_true (json_object_has_member (device, "location"));
  g_assert_cmpint (member_int (device, "updatedAt"), >=, member_int (device, "createdAt"));

  rf_assert_error (unknown, 404, "not_found");
  rf_assert_status (trailing, 200);
}

static void
register_named (RfFixture  *f,
                const char *body)
{
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/devices", f->admin_token, body);

  rf_assert_status (reply, 201);
}

static void
test_device_filters (RfFixture    *f,
                     gconstpointer data)
{
  g_autoptr (RfReply) bad_status = NULL;
  g_autoptr (RfReply) reply = NULL;

  register_named (f, "{\"deviceId\":\"roof-1\",\"name\":\"Roof Sensor\",\"tags\":[\"roof\",\"north\"]}");
  register_named (f, "{\"deviceId\":\"roof-2\",\"name\":\"Roof Sensor\",\"tags\":[\"roof\"]}");
  register_named (f, "{\"deviceId\":\"cellar\",\"name\":\"Cellar Pump\",\"tags\":[\"cellar\"]}");
  register_named (f, "{\"deviceId\":\"cold-1\",\"name\":\"Kühlraum Straße\"}");

  /* roof-1 online by sending, cellar in maintenance */
  {
    g_autoptr (RfReply) rotate = rf_request_json (f, "POST", "/devices/roof-1/secret", f->admin_token, NULL);
    g_autofree char    *event = rf_event_json ("filter-1", rf_now_ms (), NULL, "heartbeat", NULL);
    g_autoptr (RfReply) ingest = NULL;

    rf_assert_status (rotate, 200);
    ingest = rf_ingest (f, "roof-1", member_string (rf_reply_object (rotate), "deviceSecret"), event);
    assert_ingest_counts (ingest, 1, 0, 0);
  }
  reply = rf_request_json (f, "PUT", "/devices/cellar", f->admin_token, "{\"status\":\"maintenance\"}");
  rf_assert_status (reply, 200);

  {
    struct
    {
      const char *query;
      const char *ids;
    } cases[] = {
      { NULL, "cellar cold-1 roof-1 roof-2" },
      { "status=online", "roof-1" },
      { "status=offline", "cold-1 roof-2" },
      { "status=maintenance", "cellar" },
      { "status=decommissioned", "" },
      { "tag=roof", "roof-1 roof-2" },
      { "tag=north", "roof-1" },
      { "tag=cellar", "cellar" },
      { "tag=nowhere", "" },
      { "q=pump", "cellar" },        /* name, any case */
      { "q=ROOF", "roof-1 roof-2" }, /* id and name */
      { "q=sensor", "roof-1 roof-2" },
      { "q=SOR", "roof-1 roof-2" },  /* not at the first "s" */
      { "q=of-", "roof-1 roof-2" },
      { "q=roof-2", "roof-2" },
      { "q=zzz", "" },
      { "q=K%C3%9CHL", "cold-1" },   /* "KÜHL": Unicode case folding */
      { "q=strasse", "cold-1" },     /* "ß" folds to "ss" */
      { "q=raum%20s", "cold-1" },
      { "tag=roof&status=online", "roof-1" },
      { "tag=roof&q=2", "roof-2" },
      { "status=&tag=&q=", "cellar cold-1 roof-1 roof-2" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autofree char *ids = NULL;

        g_test_message ("GET /devices?%s", cases[i].query ? cases[i].query : "");
        ids = list_device_ids (f, cases[i].query);
        g_assert_cmpstr (ids, ==, cases[i].ids);
      }
  }

  /* a search after a rename and a registration finds them as they are */
  {
    g_autoptr (RfReply) renamed = rf_request_json (f, "PUT", "/devices/cellar", f->admin_token,
                                                   "{\"name\":\"Boiler Room\"}");
    g_autofree char    *ids = NULL;

    rf_assert_status (renamed, 200);
    register_named (f, "{\"deviceId\":\"attic\",\"name\":\"Attic Pump\"}");
    ids = list_device_ids (f, "q=pump");
    g_assert_cmpstr (ids, ==, "attic");
    g_clear_pointer (&ids, g_free);
    ids = list_device_ids (f, "q=BOILER");
    g_assert_cmpstr (ids, ==, "cellar");
    g_clear_pointer (&ids, g_free);
    ids = list_device_ids (f, "q=%C3%9F");  /* "ß": cold-1's name, folded */
    g_assert_cmpstr (ids, ==, "cold-1");

    /* renamed again and again (the keys' block is compacted on the way) */
    for (guint i = 0; i < 12; i++)
      {
        g_autofree char    *body = g_strdup_printf ("{\"name\":\"Boiler Room %u\"}", i);
        g_autoptr (RfReply) again = rf_request_json (f, "PUT", "/devices/cellar", f->admin_token, body);

        rf_assert_status (again, 200);
      }
    g_clear_pointer (&ids, g_free);
    ids = list_device_ids (f, "q=room%2011");
    g_assert_cmpstr (ids, ==, "cellar");
    g_clear_pointer (&ids, g_free);
    ids = list_device_ids (f, "q=room%2010");
    g_assert_cmpstr (ids, ==, "");
    g_clear_pointer (&ids, g_free);
    ids = list_device_ids (f, "q=%20");
    g_assert_cmpstr (ids, ==, "attic cellar cold-1 roof-1 roof-2");
  }

  bad_status = rf_get (f, "/devices?status=sleeping", f->viewer_token);
  rf_assert_error (bad_status, 400, "invalid_parameter");
}

static void
test_device_paging (RfFixture    *f,
                    gconstpointer data)
{
  g_autoptr (GHashTable) seen = string_set_new ();
  g_autofree char       *cursor = NULL;
  guint                  pages = 0;
  GString               *order = g_string_new (NULL);

  for (guint i = 0; i < 25; i++)
    {
      g_autofree char *id = g_strdup_printf ("page-%02u", (i * 7) % 25); /* registered out of order */
      g_autofree char *secret = rf_register_device (f, id, NULL);
    }

  for (;;)
    {
      g_autofree char    *path = g_strdup_printf ("/devices?limit=10%s%s", cursor ? "&cursor=" : "", cursor ? cursor : "");
      g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);
      JsonArray          *devices;
      JsonNode           *next;

      rf_assert_status (reply, 200);
      devices = json_object_get_array_member (rf_reply_object (reply), "devices");
      pages++;
      g_assert_cmpuint (json_array_get_length (devices), ==, pages < 3 ? 10 : 5);

      for (guint i = 0; i < json_array_get_length (devices); i++)
        {
          const char *id = member_string (json_array_get_object_element (devices, i), "deviceId");

          g_assert_true (g_hash_table_add (seen, g_strdup (id)));
          g_string_append_printf (order, "%s ", id);
        }

      next = json_object_get_member (rf_reply_object (reply), "nextCursor");
      g_assert_nonnull (next);
      g_clear_pointer (&cursor, g_free);
      if (JSON_NODE_HOLDS_NULL (next))
        break;
      g_assert_cmpuint (pages, <, 3);
      cursor = g_uri_escape_string (json_node_get_string (next), NULL, FALSE);
    }

  g_assert_cmpuint (pages, ==, 3);
  g_assert_cmpuint (g_hash_table_size (seen), ==, 25);
  /* in deviceId order */
  {
    GString *expected = g_string_new (NULL);

    for (guint i = 0; i < 25; i++)
      g_string_append_printf (expected, "page-%02u ", i);
    g_assert_cmpstr (order->str, ==, expected->str);
    g_string_free (expected, TRUE);
  }
  g_string_free (order, TRUE);

  /* a cursor works with a filter too: the 2nd page of q=page-1 (page-10..19) */
  {
    g_autofree char    *ids1 = list_device_ids (f, "q=page-1&limit=4");
    g_autoptr (RfReply) first = rf_get (f, "/devices?q=page-1&limit=4", f->viewer_token);
    g_autofree char    *next = NULL;
    g_autofree char    *path = NULL;
    g_autoptr (RfReply) second = NULL;
    g_autofree char    *ids2 = NULL;

    g_assert_cmpstr (ids1, ==, "page-10 page-11 page-12 page-13");
    rf_assert_status (first, 200);
    next = g_uri_escape_string (member_string (rf_reply_object (first), "nextCursor"), NULL, FALSE);
    path = g_strdup_printf ("/devices?q=page-1&limit=4&cursor=%s", next);
    second = rf_get (f, path, f->viewer_token);
    rf_assert_status (second, 200);
    ids2 = device_ids_of (second);
    g_assert_cmpstr (ids2, ==, "page-14 page-15 page-16 page-17");
  }

  {
    g_autofree char *long_id = g_strnfill (FL_DEVICE_MAX_ID_LENGTH + 1, 'a');
    g_autofree char *long_cursor = fl_base64url_encode ((const guint8 *) long_id, strlen (long_id));
    /* not base64url; three NUL bytes; not base64url; a too long id */
    const char *bad_cursors[] = { "!!!", "AAAA", "not%20base64", long_cursor };
    const char *bad_limits[] = { "0", "-1", "abc", "1001", "10x", "99999999999999999999" };

    for (guint i = 0; i < G_N_ELEMENTS (bad_cursors); i++)
      {
        g_autofree char    *path = g_strdup_printf ("/devices?cursor=%s", bad_cursors[i]);
        g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);

        g_test_message ("%s", path);
        rf_assert_error (reply, 400, "invalid_cursor");
      }
    for (guint i = 0; i < G_N_ELEMENTS (bad_limits); i++)
      {
        g_autofree char    *path = g_strdup_printf ("/devices?limit=%s", bad_limits[i]);
        g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);

        g_test_message ("%s", path);
        rf_assert_error (reply, 400, "invalid_parameter");
      }
  }
}

static void
test_device_update (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "upd", ",\"tags\":[\"old\"],\"model\":\"M1\"");
  g_autoptr (JsonObject) before = get_device (f, "upd");
  g_autoptr (RfReply)    reply = NULL;
  JsonObject            *obj;

  reply = rf_request_json (f, "PUT", "/devices/upd", f->admin_token,
                           "{\"name\":\"Renamed\",\"tags\":[\"new\",\"shiny\"],\"status\":\"maintenance\"}");
  rf_assert_status (reply, 200);
  obj = rf_reply_object (reply);
  g_assert_cmpstr (member_string (obj, "name"), ==, "Renamed");
  g_assert_cmpstr (member_string (obj, "status"), ==, "maintenance");
  g_assert_cmpstr (member_string (obj, "model"), ==, "M1"); /* untouched */
  g_assert_false (json_object_has_member (obj, "deviceSecret"));
  g_assert_cmpint (member_int (obj, "updatedAt"), >=, member_int (before, "updatedAt"));
  g_assert_cmpint (member_int (obj, "createdAt"), ==, member_int (before, "createdAt"));

  {
    g_autoptr (JsonObject) device = get_device (f, "upd");
    JsonArray             *tags = json_object_get_array_member (device, "tags");

    g_assert_cmpstr (member_string (device, "name"), ==, "Renamed");
    g_assert_cmpstr (member_string (device, "status"), ==, "maintenance");
    g_assert_cmpuint (json_array_get_length (tags), ==, 2);
    g_assert_cmpstr (json_array_get_string_element (tags, 0), ==, "new");
    g_assert_cmpstr (json_array_get_string_element (tags, 1), ==, "shiny");
  }

  {
    struct
    {
      const char *body;
      const char *code;
    } cases[] = {
      { "{\"deviceId\":\"other\"}", "invalid_field" },
      { "{\"deviceId\":42}", "invalid_field" },
      { "{\"status\":\"online\"}", "invalid_field" },
      { "{\"status\":\"decommissioned\"}", "invalid_field" },
      { "{\"status\":\"asleep\"}", "invalid_field" },
      { "{\"name\":\"Half\",\"tags\":\"not-an-array\"}", "invalid_field" },
      { "{\"colour\":\"red\"}", "invalid_field" },
      { "{\"name\":", "malformed_json" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr (RfReply) bad = NULL;

        g_test_message ("PUT body: %s", cases[i].body);
        bad = rf_request_json (f, "PUT", "/devices/upd", f->admin_token, cases[i].body);
        rf_assert_error (bad, 400, cases[i].code);
      }
  }

  /* a refused update changed nothing (not even the name of a half-valid one) */
  {
    g_autoptr (JsonObject) device = get_device (f, "upd");

    g_assert_cmpstr (member_string (device, "deviceId"), ==, "upd");
    g_assert_cmpstr (member_string (device, "name"), ==, "Renamed");
    g_assert_cmpstr (member_string (device, "status"), ==, "maintenance");
  }

  /* the same deviceId may be sent back; maintenance ends with "offline" */
  {
    g_autoptr (RfReply) same = rf_request_json (f, "PUT", "/devices/upd", f->admin_token,
                                                "{\"deviceId\":\"upd\",\"status\":\"offline\"}");
    g_autoptr (RfReply) unknown = rf_request_json (f, "PUT", "/devices/nope", f->admin_token, "{\"name\":\"x\"}");

    rf_assert_status (same, 200);
    g_assert_cmpstr (member_string (rf_reply_object (same), "status"), ==, "offline");
    rf_assert_error (unknown, 404, "not_found");
  }
}

static void
test_device_delete (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char    *secret = rf_register_device (f, "old-dev", NULL);
  g_autoptr (RfReply) reply = NULL;
  g_autofree char    *event = rf_event_json ("before-delete", rf_now_ms (), NULL, "telemetry", "{\"temperature\":20}");

  {
    g_autoptr (RfReply) ingest = rf_ingest (f, "old-dev", secret, event);
    assert_ingest_counts (ingest, 1, 0, 0);
  }

  reply = rf_request_json (f, "DELETE", "/devices/old-dev", f->admin_token, NULL);
  rf_assert_status (reply, 200);
  g_assert_cmpstr (member_string (rf_reply_object (reply), "status"), ==, "decommissioned");

  {
    g_autoptr (JsonObject) device = get_device (f, "old-dev");
    g_autofree char       *ids = list_device_ids (f, "status=decommissioned");

    g_assert_cmpstr (member_string (device, "status"), ==, "decommissioned");
    g_assert_cmpstr (ids, ==, "old-dev");
  }

  /* its credentials are refused from now on */
  {
    g_autofree char    *after = rf_event_json ("after-delete", rf_now_ms (), NULL, "telemetry", NULL);
    g_autoptr (RfReply) ingest = rf_ingest (f, "old-dev", secret, after);
    g_autoptr (RfWs)    ws = NULL;
    g_autofree char    *basic = rf_basic_header ("old-dev", secret);

    rf_assert_error (ingest, 403, "forbidden");
    ws = rf_ws_connect (f, "/device", basic);
    g_assert_true (ws->failed);
    g_assert_cmpuint (ws->status, ==, 403);
    {
      g_autoptr (RfReply) raw = rf_upgrade_request (f, "/device", basic);
      rf_assert_error (raw, 403, "forbidden");
    }
  }

  /* its history is kept */
  {
    g_autoptr (GPtrArray) events = rf_fetch_events (f, "device=old-dev", 100);

    g_assert_cmpuint (events->len, ==, 1);
    g_assert_cmpstr (member_string (g_ptr_array_index (events, 0), "id"), ==, "before-delete");
  }

  /* deleting again is harmless; deleting nothing is 404; it cannot come
   * back to life through PUT */
  {
    g_autoptr (RfReply) again = rf_request_json (f, "DELETE", "/devices/old-dev", f->admin_token, NULL);
    g_autoptr (RfReply) unknown = rf_request_json (f, "DELETE", "/devices/nope", f->admin_token, NULL);

    rf_assert_status (again, 200);
    g_assert_cmpstr (member_string (rf_reply_object (again), "status"), ==, "decommissioned");
    rf_assert_error (unknown, 404, "not_found");
  }
}

static void
test_device_rotate_secret (RfFixture    *f,
                           gconstpointer data)
{
  g_autofree char    *old_secret = rf_register_device (f, "rot", NULL);
  g_autoptr (RfReply) reply = rf_request_json (f, "POST", "/devices/rot/secret", f->admin_token, NULL);
  g_autofree char    *new_secret = NULL;
  g_autofree char    *e1 = rf_event_json ("rot-1", rf_now_ms (), NULL, "heartbeat", NULL);
  g_autofree char    *e2 = rf_event_json ("rot-2", rf_now_ms (), NULL, "heartbeat", NULL);

  rf_assert_status (reply, 200);
  g_assert_cmpstr (member_string (rf_reply_object (reply), "deviceId"), ==, "rot");
  new_secret = g_strdup (member_string (rf_reply_object (reply), "deviceSecret"));
  g_assert_cmpstr (new_secret, !=, old_secret);

  {
    g_autoptr (RfReply) with_old = rf_ingest (f, "rot", old_secret, e1);
    g_autoptr (RfReply) with_new = rf_ingest (f, "rot", new_secret, e2);

    rf_assert_error (with_old, 401, "unauthorized");
    assert_ingest_counts (with_new, 1, 0, 0);
  }

  {
    g_autoptr (RfReply)    get = rf_get (f, "/devices/rot/secret", f->admin_token);
    g_autoptr (RfReply)    unknown = rf_request_json (f, "POST", "/devices/nope/secret", f->admin_token, NULL);
    g_autoptr (JsonObject) device = get_device (f, "rot");

    rf_assert_error (get, 405, "method_not_allowed");
    rf_assert_error (unknown, 404, "not_found");
  }
}

/* ---- ingest ------------------------------------------------------------------ */

static JsonObject *
get_event (RfFixture  *f,
           const char *id)
{
  g_autofree char    *escaped = g_uri_escape_string (id, NULL, FALSE);
  g_autofree char    *path = g_strdup_printf ("/events/%s", escaped);
  g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);

  rf_assert_status (reply, 200);
  g_assert_cmpstr (member_string (rf_reply_object (reply), "id"), ==, id);

  return json_object_ref (rf_reply_object (reply));
}

static void
test_ingest_single (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-a", NULL);
  g_autoptr (GHashTable) expected = string_set_new ();
  gint64                 ts = rf_now_ms () - 5000;
  g_autofree char       *event = rf_event_json ("single-1", ts, NULL, "telemetry",
                                                "{\"temperature\":21.5,\"humidity\":40}");
  gint64                 before = rf_now_ms ();

  {
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-a", secret, event);

    assert_ingest_counts (reply, 1, 0, 0);
    g_hash_table_add (expected, g_strdup ("single-1"));
  }

  /* the same id again is a duplicate, not a second event */
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr (RfReply) reply = rf_ingest (f, "dev-a", secret, event);
      assert_ingest_counts (reply, 0, 1, 0);
    }

  /* normalised: source filled in, seq and receivedAt added */
  {
    g_autoptr (JsonObject) stored = get_event (f, "single-1");
    JsonObject            *stored_data = json_object_get_object_member (stored, "data");

    g_assert_cmpstr (member_string (stored, "source"), ==, "dev-a");
    g_assert_cmpstr (member_string (stored, "type"), ==, "telemetry");
    g_assert_cmpint (member_int (stored, "timestamp"), ==, ts);
    g_assert_cmpint (member_int (stored, "seq"), >, 0);
    g_assert_cmpint (member_int (stored, "receivedAt"), >=, before);
    g_assert_cmpint (member_int (stored, "receivedAt"), <=, rf_now_ms ());
    g_assert_cmpfloat (member_double (stored_data, "temperature"), ==, 21.5);
    g_assert_cmpint (member_int (stored_data, "humidity"), ==, 40);
  }

  /* its own id as source, and metadata */
  {
    g_autoptr (RfReply)    reply = rf_ingest (f, "dev-a", secret,
                                              "{\"id\":\"single-2\",\"timestamp\":1700000000000,\"source\":\"dev-a\","
                                                 "\"type\":\"status\",\"data\":{},\"metadata\":{\"version\":\"1\","
                                                 "\"tags\":[\"x\"],\"priority\":\"high\"}}");
    g_autoptr (JsonObject) stored = NULL;

    assert_ingest_counts (reply, 1, 0, 0);
    g_hash_table_add (expected, g_strdup ("single-2"));
    stored = get_event (f, "single-2");
    g_assert_cmpstr (member_string (json_object_get_object_member (stored, "metadata"), "priority"), ==, "high");
  }

  rf_assert_stored_events (f, expected);
}

static void
test_ingest_batch (RfFixture    *f,
                   gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-b", NULL);
  g_autoptr (GHashTable) expected = string_set_new ();
  gint64                 ts = rf_now_ms () - 60000;

  /* an array: good, no id, good, wrong type, good, unknown priority */
  {
    g_autofree char *body = g_strdup_printf (
        "[{\"id\":\"b-1\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{\"t\":1}},"
        "{\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}},"
        "{\"id\":\"b-2\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"heartbeat\",\"data\":{}},"
        "{\"id\":\"b-bad-type\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":5,\"data\":{}},"
        "{\"id\":\"b-3\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"location\",\"data\":{\"lat\":1,\"lon\":2}},"
        "{\"id\":\"b-bad-prio\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"status\",\"data\":{},\"metadata\":{\"priority\":\"urgent\"}}]",
        ts, ts, ts + 1, ts + 2, ts + 3, ts + 4);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, body);
    JsonArray          *rejected = assert_ingest_counts (reply, 3, 0, 3);

    assert_rejection (rejected, 0, 1, "missing_field");
    assert_rejection (rejected, 1, 3, "invalid_field");
    assert_rejection (rejected, 2, 5, "invalid_field");
    g_hash_table_add (expected, g_strdup ("b-1"));
    g_hash_table_add (expected, g_strdup ("b-2"));
    g_hash_table_add (expected, g_strdup ("b-3"));
  }

  /* a batch mixing new events and duplicates (of earlier ones and
   * within itself) */
  {
    g_autofree char *body = g_strdup_printf (
        "[{\"id\":\"b-1\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{\"t\":1}},"
        "{\"id\":\"b-4\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}},"
        "{\"id\":\"b-4\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}}]",
        ts, ts + 5, ts + 5);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, body);

    assert_ingest_counts (reply, 1, 2, 0);
    g_hash_table_add (expected, g_strdup ("b-4"));
  }

  /* NDJSON, with a bad line in the middle */
  {
    g_autofree char *body = g_strdup_printf (
        "{\"id\":\"nd-1\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}}\n"
        "{\"id\":\"nd-bad\",\"timestamp\":\"yesterday\",\"type\":\"telemetry\",\"data\":{}}\n"
        "{\"id\":\"nd-2\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}}\n",
        ts + 10, ts + 11);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, body);
    JsonArray          *rejected = assert_ingest_counts (reply, 2, 0, 1);

    assert_rejection (rejected, 0, 1, "invalid_field");
    g_hash_table_add (expected, g_strdup ("nd-1"));
    g_hash_table_add (expected, g_strdup ("nd-2"));
  }

  /* NDJSON with CRLF and no final newline */
  {
    g_autofree char *body = g_strdup_printf (
        "{\"id\":\"nd-3\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}}\r\n"
        "{\"id\":\"nd-4\",\"timestamp\":%" G_GINT64_FORMAT ",\"type\":\"telemetry\",\"data\":{}}",
        ts + 12, ts + 13);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, body);

    assert_ingest_counts (reply, 2, 0, 0);
    g_hash_table_add (expected, g_strdup ("nd-3"));
    g_hash_table_add (expected, g_strdup ("nd-4"));
  }

  /* an empty array is a valid, empty batch */
  {
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, "[]");
    assert_ingest_counts (reply, 0, 0, 0);
  }

  /* an array of one bad event is still a batch: 200 with the rejection */
  {
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-b", secret, "[{\"timestamp\":1,\"type\":\"telemetry\",\"data\":{}}]");
    JsonArray          *rejected = assert_ingest_counts (reply, 0, 0, 1);

    assert_rejection (rejected, 0, 0, "missing_field");
  }

  /* a missing timestamp becomes receivedAt */
  {
    g_autofree char       *body = rf_event_json ("no-ts", -1, NULL, "heartbeat", NULL);
    g_autoptr (RfReply)    reply = rf_ingest (f, "dev-b", secret, body);
    g_autoptr (JsonObject) stored = NULL;

    assert_ingest_counts (reply, 1, 0, 0);
    g_hash_table_add (expected, g_strdup ("no-ts"));
    stored = get_event (f, "no-ts");
    g_assert_cmpint (member_int (stored, "timestamp"), ==, member_int (stored, "receivedAt"));
  }

  rf_assert_stored_events (f, expected);
}

/* Whitespace before a JSON array does not make it a single event. */
static void
test_ingest_batch_whitespace (RfFixture    *f,
                              gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-w", NULL);
  g_autofree char       *good = rf_event_json ("ws-1", rf_now_ms (), NULL, "telemetry", NULL);
  g_autofree char       *two = g_strdup_printf ("\n [%s, {\"type\":\"telemetry\"}]", good);
  g_autoptr (GHashTable) expected = string_set_new ();
  const char            *bodies[] = {
               " [{\"timestamp\":1,\"type\":\"telemetry\",\"data\":{}}]",
               "\r\n[{\"timestamp\":1,\"type\":\"telemetry\",\"data\":{}}]",
               "\t[ {\"timestamp\":1,\"type\":\"telemetry\",\"data\":{}} ]\n",
  };

  /* two elements: the good one is stored, the bad one reported */
  {
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-w", secret, two);
    JsonArray          *rejected = assert_ingest_counts (reply, 1, 0, 1);

    assert_rejection (rejected, 0, 1, "missing_field");
    g_hash_table_add (expected, g_strdup ("ws-1"));
  }

  /* one bad element: still a batch, so 200 and the rejection */
  for (guint i = 0; i < G_N_ELEMENTS (bodies); i++)
    {
      g_autoptr (RfReply) reply = NULL;
      JsonArray          *rejected;

      g_test_message ("batch of one bad event: “%s”", bodies[i]);
      reply = rf_ingest (f, "dev-w", secret, bodies[i]);
      rejected = assert_ingest_counts (reply, 0, 0, 1);
      assert_rejection (rejected, 0, 0, "missing_field");
    }

  rf_assert_stored_events (f, expected);
}

static void
test_ingest_source (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-c", NULL);
  g_autofree char       *other_secret = rf_register_device (f, "dev-d", NULL); /* a device to impersonate */
  g_autoptr (GHashTable) expected = string_set_new ();
  gint64                 ts = rf_now_ms ();

  /* one event as another device: refused as a whole */
  {
    g_autofree char    *body = rf_event_json ("spoof-1", ts, "dev-d", "telemetry", NULL);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-c", secret, body);

    rf_assert_error (reply, 403, "forbidden_source");
  }

  /* in a batch: that one rejected, the others stored */
  {
    g_autofree char    *good1 = rf_event_json ("src-1", ts, "dev-c", "telemetry", NULL);
    g_autofree char    *spoof = rf_event_json ("spoof-2", ts, "dev-d", "telemetry", NULL);
    g_autofree char    *good2 = rf_event_json ("src-2", ts, NULL, "telemetry", NULL);
    g_autofree char    *body = g_strdup_printf ("[%s,%s,%s]", good1, spoof, good2);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-c", secret, body);
    JsonArray          *rejected = assert_ingest_counts (reply, 2, 0, 1);

    assert_rejection (rejected, 0, 1, "forbidden_source");
    g_hash_table_add (expected, g_strdup ("src-1"));
    g_hash_table_add (expected, g_strdup ("src-2"));
  }

  /* dev-d did not send anything: nothing is stored as dev-d */
  {
    g_autoptr (GPtrArray)  events = rf_fetch_events (f, "device=dev-d", 100);
    g_autoptr (JsonObject) device = get_device (f, "dev-d");

    g_assert_cmpuint (events->len, ==, 0);
    g_assert_cmpstr (member_string (device, "status"), ==, "offline");
  }

  g_assert_nonnull (other_secret);
  rf_assert_stored_events (f, expected);
}

static void
assert_basic_challenge (RfReply *reply)
{
  const char *challenge = rf_reply_header (reply, "WWW-Authenticate");

  rf_assert_error (reply, 401, "unauthorized");
  if (challenge == NULL || !g_str_has_prefix (challenge, "Basic"))
    g_error ("POST /ingest 401: WWW-Authenticate is “%s”, not a Basic challenge", challenge ? challenge : "(none)");
}

static void
test_ingest_auth (RfFixture    *f,
                  gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-e", NULL);
  g_autofree char       *body = rf_event_json ("auth-1", rf_now_ms (), NULL, "telemetry", NULL);
  g_autoptr (GHashTable) expected = string_set_new ();

  {
    g_autoptr (RfReply) wrong = rf_ingest (f, "dev-e", "not-the-secret", body);
    g_autoptr (RfReply) empty = rf_ingest (f, "dev-e", "", body);
    g_autoptr (RfReply) unknown = rf_ingest (f, "nobody", secret, body);
    g_autoptr (RfReply) none = rf_ingest (f, NULL, NULL, body);

    assert_basic_challenge (wrong);
    assert_basic_challenge (empty);
    assert_basic_challenge (unknown);
    assert_basic_challenge (none);
  }

  /* an operator's bearer token is not a device credential */
  {
    SoupMessage        *msg = rf_message_new (f, "POST", "/ingest", f->admin_token);
    g_autoptr (RfReply) reply = NULL;

    rf_message_set_json (msg, body);
    reply = rf_send (f, msg);
    assert_basic_challenge (reply);
  }

  /* Basic without a colon, and not base64 */
  {
    const char *headers[] = { "Basic ZGV2LWU=", "Basic !!!!", "Basic" };

    for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
      {
        SoupMessage        *msg = rf_message_new (f, "POST", "/ingest", NULL);
        g_autoptr (RfReply) reply = NULL;

        soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", headers[i]);
        rf_message_set_json (msg, body);
        reply = rf_send (f, msg);
        assert_basic_challenge (reply);
      }
  }

  /* none of that stored anything; the right secret still works */
  {
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-e", secret, body);

    assert_ingest_counts (reply, 1, 0, 0);
    g_hash_table_add (expected, g_strdup ("auth-1"));
  }
  rf_assert_stored_events (f, expected);
}

static void
test_ingest_bodies (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char       *secret = rf_register_device (f, "dev-f", NULL);
  g_autoptr (GHashTable) expected = string_set_new ();
  gint64                 ts = rf_now_ms ();

  {
    struct
    {
      const char *body;
      const char *code;
    } cases[] = {
      { "{\"id\":\"x\",", "malformed_json" },
      { "not json", "malformed_json" },
      { "[{\"id\":\"x\"", "malformed_json" },
      { "42", "malformed_json" },
      { "", NULL },
      { "   ", NULL },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr (RfReply) reply = NULL;

        g_test_message ("ingest body: “%s”", cases[i].body);
        reply = rf_ingest (f, "dev-f", secret, cases[i].body);
        rf_assert_error (reply, 400, cases[i].code);
      }
  }

  /* a body over 1 MiB: 413, refused before it is read */
  {
    GString            *big = g_string_new ("[");
    g_autoptr (RfReply) reply = NULL;

    for (guint i = 0; big->len <= 1024 * 1024 + 10; i++)
      {
        g_autofree char *id = g_strdup_printf ("big-%u", i);
        g_autofree char *event = rf_event_json (id, ts, NULL, "telemetry",
                                                "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");

        if (i > 0)
          g_string_append_c (big, ',');
        g_string_append (big, event);
      }
    g_string_append_c (big, ']');
    reply = rf_ingest (f, "dev-f", secret, big->str);
    rf_assert_error (reply, 413, "too_large");
    g_string_free (big, TRUE);
  }

  /* one event over 64 KiB: 413 as a single event; rejected in a batch */
  {
    g_autofree char    *pad = g_strnfill (66 * 1024, 'y');
    g_autofree char    *event_data = g_strdup_printf ("{\"pad\":\"%s\"}", pad);
    g_autofree char    *huge = rf_event_json ("huge-1", ts, NULL, "telemetry", event_data);
    g_autofree char    *small = rf_event_json ("small-1", ts, NULL, "telemetry", NULL);
    g_autofree char    *batch = g_strdup_printf ("[%s,%s]", small, huge);
    g_autoptr (RfReply) single = rf_ingest (f, "dev-f", secret, huge);
    g_autoptr (RfReply) in_batch = rf_ingest (f, "dev-f", secret, batch);
    JsonArray          *rejected;

    rf_assert_error (single, 413, "too_large");
    rejected = assert_ingest_counts (in_batch, 1, 0, 1);
    assert_rejection (rejected, 0, 1, "too_large");
    g_hash_table_add (expected, g_strdup ("small-1"));
  }

  /* a chunked body: 411 */
  {
    SoupMessage             *msg = rf_message_new (f, "POST", "/ingest", NULL);
    g_autofree char         *event = rf_event_json ("chunked-1", ts, NULL, "telemetry", NULL);
    gsize                    len = strlen (event);
    g_autoptr (GInputStream) stream = g_memory_input_stream_new_from_data (g_steal_pointer (&event), len, g_free);
    g_autoptr (RfReply)      reply = NULL;

    rf_message_set_basic (msg, "dev-f", secret);
    soup_message_set_request_body (msg, "application/json", stream, -1);
    soup_message_headers_set_encoding (soup_message_get_request_headers (msg), SOUP_ENCODING_CHUNKED);
    reply = rf_send (f, msg);
    rf_assert_error (reply, 411, "length_required");
  }

  /* only POST */
  {
    const char *methods[] = { "GET", "PUT", "DELETE" };

    for (guint i = 0; i < G_N_ELEMENTS (methods); i++)
      {
        SoupMessage        *msg = rf_message_new (f, methods[i], "/ingest", NULL);
        g_autoptr (RfReply) reply = NULL;

        rf_message_set_basic (msg, "dev-f", secret);
        reply = rf_send (f, msg);
        rf_assert_error (reply, 405, "method_not_allowed");
        g_assert_cmpstr (rf_reply_header (reply, "Allow"), ==, "POST");
      }
  }

  /* after all that, the relay still answers and ingests */
  {
    g_autoptr (RfReply) health = rf_get (f, "/health", NULL);
    g_autofree char    *event = rf_event_json ("after-1", ts, NULL, "telemetry", NULL);
    g_autoptr (RfReply) reply = rf_ingest (f, "dev-f", secret, event);

    rf_assert_status (health, 200);
    assert_ingest_counts (reply, 1, 0, 0);
    g_hash_table_add (expected, g_strdup ("after-1"));
  }

  rf_assert_stored_events (f, expected);
}

/* Many requests at once from many connections, with duplicates across
 * them: every accepted event is stored once, and the counts add up. */
static void
test_ingest_concurrent (RfFixture    *f,
                        gconstpointer data)
{
  enum
  {
    N_DEVICES = 4,
    N_REQUESTS = 80,
    PER_REQUEST = 25
  };
  g_autoptr (GHashTable) expected = string_set_new ();
  g_autoptr (GPtrArray)  replies = g_ptr_array_new_with_free_func ((GDestroyNotify) rf_reply_free);
  char                  *secrets[N_DEVICES];
  gint64                 accepted = 0, duplicates = 0;
  gint64                 ts = rf_now_ms ();
  /* as many connections as requests, as a fleet reconnecting at once */
  g_autoptr (SoupSession) burst = soup_session_new_with_options ("max-conns", N_REQUESTS,
                                                                 "max-conns-per-host", N_REQUESTS, NULL);
  SoupSession            *fixture_session = f->session;

  for (guint d = 0; d < N_DEVICES; d++)
    {
      g_autofree char *id = g_strdup_printf ("conc-%u", d);
      secrets[d] = rf_register_device (f, id, NULL);
    }

  for (guint r = 0; r < N_REQUESTS; r++)
    {
      guint            d = r % N_DEVICES;
      g_autofree char *device = g_strdup_printf ("conc-%u", d);
      GString         *body = g_string_new ("[");

      for (guint i = 0; i < PER_REQUEST; i++)
        {
          /* requests r and r + N_DEVICES overlap by half their ids */
          guint            n = (r / N_DEVICES) * (PER_REQUEST / 2) + i;
          g_autofree char *id = g_strdup_printf ("conc-%u-%04u", d, n);
          g_autofree char *event = rf_event_json (id, ts + n, NULL, "telemetry", "{\"temperature\":1}");

          if (i > 0)
            g_string_append_c (body, ',');
          g_string_append (body, event);
          g_hash_table_add (expected, g_steal_pointer (&id));
        }
      g_string_append_c (body, ']');
      f->session = burst;
      g_ptr_array_add (replies, rf_ingest_async (f, device, secrets[d], body->str));
      f->session = fixture_session;
      g_string_free (body, TRUE);
    }

  /* all answered, and all with 200 (a burst of connections included) */
  RF_WAIT_UNTIL (count_done (replies) == replies->len);
  {
    guint    n_failed = 0;
    RfReply *first_failed = NULL;

    for (guint r = 0; r < replies->len; r++)
      {
        RfReply *reply = g_ptr_array_index (replies, r);

        if (reply->status != 200)
          {
            n_failed++;
            first_failed = first_failed ? first_failed : reply;
          }
      }
    if (first_failed != NULL)
      g_test_message ("%u of %u concurrent requests failed", n_failed, replies->len);
    if (first_failed != NULL)
      rf_assert_status (first_failed, 200);
  }

  for (guint r = 0; r < replies->len; r++)
    {
      RfReply *reply = g_ptr_array_index (replies, r);

      accepted += member_int (rf_reply_object (reply), "accepted");
      duplicates += member_int (rf_reply_object (reply), "duplicates");
    }

  g_assert_cmpint (accepted, ==, g_hash_table_size (expected));
  g_assert_cmpint (accepted + duplicates, ==, N_REQUESTS * PER_REQUEST);
  rf_assert_stored_events (f, expected);

  for (guint d = 0; d < N_DEVICES; d++)
    g_free (secrets[d]);
}

/* ---- device state from events ---------------------------------------------- */

static void
test_device_status (RfFixture    *f,
                    gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "field-1", NULL);
  gint64           before = rf_now_ms ();
  g_autofree char *event = rf_event_json ("st-1", before - 1000, NULL, "telemetry",
                                          "{\"temperature\":19.5,\"battery\":87,\"rssi\":-67,\"firmware\":\"1.4.2\","
                                          "\"lat\":52.52,\"lon\":13.40,\"alt\":34,\"model\":\"TH-1\",\"manufacturer\":\"Acme\"}");

  {
    g_autoptr (JsonObject) device = get_device (f, "field-1");

    g_assert_cmpstr (member_string (device, "status"), ==, "offline");
    g_assert_true (json_node_is_null (json_object_get_member (device, "lastSeen")));
  }

  {
    g_autoptr (RfReply)    reply = rf_ingest (f, "field-1", secret, event);
    g_autoptr (JsonObject) device = NULL;
    JsonObject            *location;

    assert_ingest_counts (reply, 1, 0, 0);
    device = get_device (f, "field-1");
    g_assert_cmpstr (member_string (device, "status"), ==, "online");
    /* lastSeen is the relay's clock, not the device's */
    g_assert_cmpint (member_int (device, "lastSeen"), >=, before);
    g_assert_cmpint (member_int (device, "lastSeen"), <=, rf_now_ms ());
    g_assert_cmpfloat (member_double (device, "battery"), ==, 87);
    g_assert_cmpfloat (member_double (device, "rssi"), ==, -67);
    g_assert_cmpstr (member_string (device, "firmware"), ==, "1.4.2");
    g_assert_cmpstr (member_string (device, "model"), ==, "TH-1");
    g_assert_cmpstr (member_string (device, "manufacturer"), ==, "Acme");
    location = json_object_get_object_member (device, "location");
    g_assert_nonnull (location);
    g_assert_cmpfloat_with_epsilon (member_double (location, "lat"), 52.52, 1e-9);
    g_assert_cmpfloat_with_epsilon (member_double (location, "lon"), 13.40, 1e-9);
    g_assert_cmpfloat_with_epsilon (member_double (location, "alt"), 34, 1e-9);
  }

  /* later data wins; signal in percent maps to dBm */
  {
    g_autofree char       *later = rf_event_json ("st-2", rf_now_ms (), NULL, "heartbeat",
                                                  "{\"battery\":55,\"signal\":50,\"firmware\":\"1.5.0\"}");
    g_autoptr (RfReply)    reply = rf_ingest (f, "field-1", secret, later);
    g_autoptr (JsonObject) device = NULL;

    assert_ingest_counts (reply, 1, 0, 0);
    device = get_device (f, "field-1");
    g_assert_cmpfloat (member_double (device, "battery"), ==, 55);
    g_assert_cmpfloat (member_double (device, "rssi"), ==, -75);
    g_assert_cmpstr (member_string (device, "firmware"), ==, "1.5.0");
    g_assert_cmpstr (member_string (device, "status"), ==, "online");
  }

  /* the list agrees */
  {
    g_autofree char *ids = list_device_ids (f, "status=online");
    g_assert_cmpstr (ids, ==, "field-1");
  }
}

/* ---- events ----------------------------------------------------------------- */

/* 35 events: dev-x sends telemetry and heartbeats alternately, dev-y
 * telemetry; timestamps base + i s, ingested in 5 batches. */
static gint64
ingest_event_fixture (RfFixture *f)
{
  g_autofree char *secret_x = rf_register_device (f, "dev-x", NULL);
  g_autofree char *secret_y = rf_register_device (f, "dev-y", NULL);
  gint64           base = (rf_now_ms () / 1000) * 1000 - 3600 * 1000;

  for (guint batch = 0; batch < 5; batch++)
    {
      GString *body_x = g_string_new ("[");
      GString *body_y = g_string_new ("[");

      for (guint j = 0; j < 7; j++)
        {
          guint            i = batch * 7 + j;
          gboolean         to_y = i % 5 == 4;
          g_autofree char *id = g_strdup_printf ("ev-%02u", i);
          g_autofree char *event = rf_event_json (id, base + i * 1000, NULL,
                                                  to_y ? "telemetry" : (i % 2 ? "heartbeat" : "telemetry"), NULL);
          GString         *body = to_y ? body_y : body_x;

          if (body->len > 1)
            g_string_append_c (body, ',');
          g_string_append (body, event);
        }
      g_string_append_c (body_x, ']');
      g_string_append_c (body_y, ']');
      {
        g_autoptr (RfReply) rx = rf_ingest (f, "dev-x", secret_x, body_x->str);
        g_autoptr (RfReply) ry = rf_ingest (f, "dev-y", secret_y, body_y->str);

        rf_assert_status (rx, 200);
        rf_assert_status (ry, 200);
      }
      g_string_free (body_x, TRUE);
      g_string_free (body_y, TRUE);
    }

  return base;
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static char *
ids_of (GPtrArray *events)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < events->len; i++)
    g_string_append_printf (out, "%s%s", i ? " " : "", member_string (g_ptr_array_index (events, i), "id"));

  return g_string_free (out, FALSE);
}

/* The same, sorted (for results whose seq order mixes the two devices'
 * batches). */
static char *
sorted_ids_of (GPtrArray *events)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new ();

  for (guint i = 0; i < events->len; i++)
    g_ptr_array_add (ids, (gpointer) member_string (g_ptr_array_index (events, i), "id"));
  g_ptr_array_sort (ids, compare_strings);
  g_ptr_array_add (ids, NULL);

  return g_strjoinv (" ", (char **) ids->pdata);
}

static void
test_events_paging (RfFixture    *f,
                    gconstpointer data)
{
  g_autoptr (GPtrArray)  all = NULL;
  g_autoptr (GPtrArray)  paged = NULL;
  g_autoptr (GPtrArray)  small = NULL;
  g_autoptr (GPtrArray)  desc = NULL;
  g_autoptr (GHashTable) seen = string_set_new ();

  ingest_event_fixture (f);

  all = rf_fetch_events (f, NULL, 1000);
  g_assert_cmpuint (all->len, ==, 35);
  paged = rf_fetch_events (f, NULL, 10);
  small = rf_fetch_events (f, NULL, 1);
  g_assert_cmpuint (paged->len, ==, 35);
  g_assert_cmpuint (small->len, ==, 35);

  for (guint i = 0; i < all->len; i++)
    {
      JsonObject *a = g_ptr_array_index (all, i);

      g_assert_true (g_hash_table_add (seen, g_strdup (member_string (a, "id"))));
      g_assert_cmpint (member_int (a, "seq"), ==, member_int (g_ptr_array_index (paged, i), "seq"));
      g_assert_cmpint (member_int (a, "seq"), ==, member_int (g_ptr_array_index (small, i), "seq"));
    }

  /* newest first, paged the other way */
  desc = rf_fetch_events (f, "order=desc", 10);
  g_assert_cmpuint (desc->len, ==, 35);
  for (guint i = 0; i < desc->len; i++)
    g_assert_cmpint (member_int (g_ptr_array_index (desc, i), "seq"), ==,
                     member_int (g_ptr_array_index (all, all->len - 1 - i), "seq"));

  /* the default page is 100 and nextCursor is null at the end */
  {
    g_autoptr (RfReply) reply = rf_get (f, "/events", f->viewer_token);

    rf_assert_status (reply, 200);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (rf_reply_object (reply), "events")), ==, 35);
    g_assert_true (json_node_is_null (json_object_get_member (rf_reply_object (reply), "nextCursor")));
  }
}

static void
test_events_filters (RfFixture    *f,
                     gconstpointer data)
{
  gint64 base = ingest_event_fixture (f);

  {
    g_autoptr (GPtrArray) y = rf_fetch_events (f, "device=dev-y", 3);
    g_autofree char      *ids = ids_of (y);

    g_assert_cmpstr (ids, ==, "ev-04 ev-09 ev-14 ev-19 ev-24 ev-29 ev-34");
  }
  {
    g_autoptr (GPtrArray) x = rf_fetch_events (f, "device=dev-x", 10);
    g_autoptr (GPtrArray) none = rf_fetch_events (f, "device=nobody", 10);

    g_assert_cmpuint (x->len, ==, 28);
    for (guint i = 0; i < x->len; i++)
      g_assert_cmpstr (member_string (g_ptr_array_index (x, i), "source"), ==, "dev-x");
    g_assert_cmpuint (none->len, ==, 0);
  }
  {
    g_autoptr (GPtrArray) hb = rf_fetch_events (f, "type=heartbeat", 4);
    g_autoptr (GPtrArray) hb_y = rf_fetch_events (f, "type=heartbeat&device=dev-y", 4);
    g_autoptr (GPtrArray) tele_x = rf_fetch_events (f, "type=telemetry&device=dev-x", 4);

    /* odd i, not sent by dev-y (i % 5 == 4) */
    g_assert_cmpuint (hb->len, ==, 14);
    for (guint i = 0; i < hb->len; i++)
      g_assert_cmpstr (member_string (g_ptr_array_index (hb, i), "type"), ==, "heartbeat");
    g_assert_cmpuint (hb_y->len, ==, 0);
    g_assert_cmpuint (tele_x->len, ==, 14);
  }

  /* from is inclusive, to exclusive, on the device's timestamp */
  {
    g_autofree char      *query = g_strdup_printf ("from=%" G_GINT64_FORMAT "&to=%" G_GINT64_FORMAT,
                                                   base + 10000, base + 20000);
    g_autoptr (GPtrArray) range = rf_fetch_events (f, query, 3);
    g_autofree char      *ids = sorted_ids_of (range);

    g_assert_cmpstr (ids, ==, "ev-10 ev-11 ev-12 ev-13 ev-14 ev-15 ev-16 ev-17 ev-18 ev-19");
  }
  {
    g_autofree char      *query = g_strdup_printf ("from=%" G_GINT64_FORMAT "&device=dev-y&order=desc", base + 20000);
    g_autoptr (GPtrArray) range = rf_fetch_events (f, query, 2);
    g_autofree char      *ids = ids_of (range);

    g_assert_cmpstr (ids, ==, "ev-34 ev-29 ev-24");
  }

  /* ISO 8601 works as well as milliseconds */
  {
    g_autoptr (GDateTime) from = g_date_time_new_from_unix_utc ((base + 30000) / 1000);
    g_autofree char      *iso = g_date_time_format_iso8601 (from);
    g_autofree char      *escaped = g_uri_escape_string (iso, NULL, FALSE);
    g_autofree char      *query = g_strdup_printf ("from=%s", escaped);
    g_autoptr (GPtrArray) range = rf_fetch_events (f, query, 100);
    g_autofree char      *ids = sorted_ids_of (range);

    g_assert_cmpstr (ids, ==, "ev-30 ev-31 ev-32 ev-33 ev-34");
  }

  /* an empty range */
  {
    g_autofree char      *query = g_strdup_printf ("from=%" G_GINT64_FORMAT "&to=%" G_GINT64_FORMAT,
                                                   base + 100000, base + 200000);
    g_autoptr (GPtrArray) range = rf_fetch_events (f, query, 10);

    g_assert_cmpuint (range->len, ==, 0);
  }
}

static void
test_events_bad_params (RfFixture    *f,
                        gconstpointer data)
{
  struct
  {
    const char *query;
    const char *code;
  } cases[] = {
    { "limit=0", "invalid_parameter" },
    { "limit=-5", "invalid_parameter" },
    { "limit=1001", "invalid_parameter" },
    { "limit=ten", "invalid_parameter" },
    { "from=yesterday", "invalid_parameter" },
    { "to=2024-13-45T00:00:00Z", "invalid_parameter" },
    { "from=12abc", "invalid_parameter" },
    { "cursor=abc", "invalid_cursor" },
    { "cursor=0", "invalid_cursor" },
    { "cursor=-3", "invalid_cursor" },
    { "order=sideways", "invalid_parameter" },
  };

  ingest_event_fixture (f);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char    *path = g_strdup_printf ("/events?%s", cases[i].query);
      g_autoptr (RfReply) reply = NULL;

      g_test_message ("GET %s", path);
      reply = rf_get (f, path, f->viewer_token);
      rf_assert_error (reply, 400, cases[i].code);
    }
}

static void
test_events_get (RfFixture    *f,
                 gconstpointer data)
{
  ingest_event_fixture (f);

  {
    g_autoptr (JsonObject) plain = get_event (f, "ev-07");

    g_assert_cmpstr (member_string (plain, "source"), ==, "dev-x");
    g_assert_cmpstr (member_string (plain, "type"), ==, "heartbeat");
    g_assert_cmpint (member_int (plain, "seq"), >, 0);
  }

  {
    g_autoptr (RfReply) unknown = rf_get (f, "/events/no-such-event", f->viewer_token);
    g_autoptr (RfReply) unauthorized = rf_get (f, "/events/ev-07", NULL);

    rf_assert_error (unknown, 404, "not_found");
    rf_assert_error (unauthorized, 401, "unauthorized");
  }
}

/* Event ids are any 1..128 characters (PLATFORM.md): escaped in the path,
 * each finds its own event. */
static void
test_events_get_escaped_ids (RfFixture    *f,
                             gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "dev-g", NULL);
  const char      *odd_ids[] = { "ev with space:ü?#&", "pct%41x", "pctAx", "ev/with/slashes" };

  for (guint i = 0; i < G_N_ELEMENTS (odd_ids); i++)
    {
      g_autofree char    *event_data = g_strdup_printf ("{\"n\":%u}", i);
      g_autofree char    *event = rf_event_json (odd_ids[i], 1700000000123 + i, NULL, "command_ack", event_data);
      g_autoptr (RfReply) reply = rf_ingest (f, "dev-g", secret, event);

      assert_ingest_counts (reply, 1, 0, 0);
    }

  /* get_event checks that the reply is the event asked for */
  for (guint i = 0; i < G_N_ELEMENTS (odd_ids); i++)
    {
      g_autoptr (JsonObject) odd = NULL;

      g_test_message ("GET /events/{%s}", odd_ids[i]);
      odd = get_event (f, odd_ids[i]);
      g_assert_cmpstr (member_string (odd, "type"), ==, "command_ack");
      g_assert_cmpint (member_int (odd, "timestamp"), ==, 1700000000123 + i);
      g_assert_cmpint (member_int (json_object_get_object_member (odd, "data"), "n"), ==, i);
    }
}

/* ---- telemetry -------------------------------------------------------------------- */

typedef struct
{
  gint64 ts;
  double value;
} Point;

static void
test_telemetry (RfFixture    *f,
                gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "tele", NULL);
  g_autofree char *other_secret = rf_register_device (f, "tele-other", NULL);
  /* a minute-aligned hour ago, so buckets are whole minutes */
  gint64   base = (rf_now_ms () / 60000) * 60000 - 3600 * 1000;
  Point    points[90];
  GString *body = g_string_new ("[");
  GString *other = g_string_new ("[");

  for (guint i = 0; i < G_N_ELEMENTS (points); i++)
    {
      g_autofree char *id = g_strdup_printf ("t-%02u", i);
      g_autofree char *other_id = g_strdup_printf ("o-%02u", i);
      g_autofree char *event_data = NULL;
      g_autofree char *event = NULL;
      g_autofree char *other_event = NULL;
      char             buf[G_ASCII_DTOSTR_BUF_SIZE];

      points[i].ts = base + i * 1000 + (i % 3) * 100;
      points[i].value = 20.0 + ((i * 37) % 11) * 0.25 - (i / 30);
      event_data = g_strdup_printf ("{\"temperature\":%s,\"humidity\":%u}",
                                    g_ascii_dtostr (buf, sizeof buf, points[i].value), 1000 + i);
      event = rf_event_json (id, points[i].ts, NULL, "telemetry", event_data);
      other_event = rf_event_json (other_id, points[i].ts, NULL, "telemetry", "{\"temperature\":-100}");
      g_string_append_printf (body, "%s%s", i ? "," : "", event);
      g_string_append_printf (other, "%s%s", i ? "," : "", other_event);
    }
  g_string_append_c (body, ']');
  g_string_append_c (other, ']');

  {
    g_autoptr (RfReply) r1 = rf_ingest (f, "tele", secret, body->str);
    g_autoptr (RfReply) r2 = rf_ingest (f, "tele-other", other_secret, other->str);

    assert_ingest_counts (r1, G_N_ELEMENTS (points), 0, 0);
    assert_ingest_counts (r2, G_N_ELEMENTS (points), 0, 0);
  }
  g_string_free (body, TRUE);
  g_string_free (other, TRUE);

  /* three one-minute ranges at different resolutions, and one range that
   * starts and ends mid-minute */
  {
    struct
    {
      gint64 from;
      gint64 to;
      guint  points;
    } queries[] = {
      { base, base + 90000, 6 },
      { base, base + 90000, 90 },
      { base, base + 120000, 2 },
      { base + 15500, base + 75500, 4 },
      { base - 3600 * 1000, base + 3600 * 1000, 200 },
    };

    for (guint q = 0; q < G_N_ELEMENTS (queries); q++)
      {
        g_autofree char    *path = g_strdup_printf ("/devices/tele/telemetry?metric=temperature&from=%" G_GINT64_FORMAT
                                                    "&to=%" G_GINT64_FORMAT "&points=%u",
                                                    queries[q].from, queries[q].to, queries[q].points);
        g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);
        JsonObject         *obj;
        JsonArray          *buckets;
        gint64              bucket_ms, total = 0, expected_total = 0, last_t = G_MININT64;

        g_test_message ("GET %s", path);
        rf_assert_status (reply, 200);
        obj = rf_reply_object (reply);
        g_assert_cmpstr (member_string (obj, "deviceId"), ==, "tele");
        g_assert_cmpstr (member_string (obj, "metric"), ==, "temperature");
        g_assert_cmpint (member_int (obj, "from"), ==, queries[q].from);
        g_assert_cmpint (member_int (obj, "to"), ==, queries[q].to);
        bucket_ms = member_int (obj, "bucketMs");
        g_assert_cmpint (bucket_ms, >, 0);
        buckets = json_object_get_array_member (obj, "buckets");
        g_assert_nonnull (buckets);
        /* about as many as asked for */
        g_assert_cmpuint (json_array_get_length (buckets), <=, queries[q].points + 1);

        for (guint b = 0; b < json_array_get_length (buckets); b++)
          {
            JsonObject *bucket = json_array_get_object_element (buckets, b);
            gint64      t = member_int (bucket, "t");
            gint64      lo = MAX (t, queries[q].from), hi = MIN (t + bucket_ms, queries[q].to);
            double      min = INFINITY, max = -INFINITY, sum = 0;
            gint64      count = 0;

            g_assert_cmpint (t, >, last_t);
            last_t = t;
            for (guint i = 0; i < G_N_ELEMENTS (points); i++)
              if (points[i].ts >= lo && points[i].ts < hi)
                {
                  min = MIN (min, points[i].value);
                  max = MAX (max, points[i].value);
                  sum += points[i].value;
                  count++;
                }

            g_assert_cmpint (member_int (bucket, "count"), ==, count);
            g_assert_cmpint (count, >, 0); /* empty buckets are left out */
            g_assert_cmpfloat_with_epsilon (member_double (bucket, "min"), min, 1e-7);
            g_assert_cmpfloat_with_epsilon (member_double (bucket, "max"), max, 1e-7);
            g_assert_cmpfloat_with_epsilon (member_double (bucket, "avg"), sum / count, 1e-7);
            total += count;
          }

        for (guint i = 0; i < G_N_ELEMENTS (points); i++)
          expected_total += points[i].ts >= queries[q].from && points[i].ts < queries[q].to;
        g_assert_cmpint (total, ==, expected_total);
      }
  }

  /* a metric nobody sent: no buckets */
  {
    g_autofree char    *path = g_strdup_printf ("/devices/tele/telemetry?metric=pressure&from=%" G_GINT64_FORMAT
                                                "&to=%" G_GINT64_FORMAT,
                                                base, base + 90000);
    g_autoptr (RfReply) reply = rf_get (f, path, f->viewer_token);

    rf_assert_status (reply, 200);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (rf_reply_object (reply), "buckets")), ==, 0);
  }

  {
    g_autofree char *from_after_to = g_strdup_printf ("/devices/tele/telemetry?metric=temperature&from=%" G_GINT64_FORMAT
                                                      "&to=%" G_GINT64_FORMAT,
                                                      base + 1000, base);
    g_autofree char *from_is_to = g_strdup_printf ("/devices/tele/telemetry?metric=temperature&from=%" G_GINT64_FORMAT
                                                   "&to=%" G_GINT64_FORMAT,
                                                   base, base);
    struct
    {
      const char *path;
      guint       status;
      const char *code;
    } cases[] = {
      { "/devices/tele/telemetry", 400, "invalid_parameter" },
      { "/devices/tele/telemetry?metric=", 400, "invalid_parameter" },
      { from_after_to, 400, "invalid_parameter" },
      { from_is_to, 400, "invalid_parameter" },
      { "/devices/tele/telemetry?metric=temperature&points=0", 400, "invalid_parameter" },
      { "/devices/tele/telemetry?metric=temperature&from=soon", 400, "invalid_parameter" },
      { "/devices/nope/telemetry?metric=temperature", 404, "not_found" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr (RfReply) reply = NULL;

        g_test_message ("GET %s", cases[i].path);
        reply = rf_get (f, cases[i].path, f->viewer_token);
        rf_assert_error (reply, cases[i].status, cases[i].code);
      }
  }
}

/* ---- metrics ------------------------------------------------------------------- */

static GHashTable *
parse_prometheus (const char *text)
{
  GHashTable            *values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GHashTable) typed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto (GStrv)         lines = g_strsplit (text, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) fields = NULL;
      char          *end = NULL;
      double         value;

      if (lines[i][0] == '\0')
        continue;
      if (g_str_has_prefix (lines[i], "# TYPE "))
        {
          fields = g_strsplit (lines[i] + strlen ("# TYPE "), " ", 2);
          g_assert_cmpuint (g_strv_length (fields), ==, 2);
          g_assert_true (g_str_equal (fields[1], "counter") || g_str_equal (fields[1], "gauge"));
          g_hash_table_add (typed, g_strdup (fields[0]));
          continue;
        }
      if (g_str_has_prefix (lines[i], "# HELP "))
        continue;
      g_assert_false (g_str_has_prefix (lines[i], "#"));

      fields = g_strsplit (lines[i], " ", -1);
      g_assert_cmpuint (g_strv_length (fields), ==, 2);
      g_assert_true (g_regex_match_simple ("^[a-zA-Z_:][a-zA-Z0-9_:]*$", fields[0], 0, 0));
      g_assert_true (g_hash_table_contains (typed, fields[0]));
      value = g_ascii_strtod (fields[1], &end);
      g_assert_true (end != fields[1] && *end == '\0');
      g_assert_true (g_hash_table_insert (values, g_strdup (fields[0]), g_memdup2 (&value, sizeof value)));
    }

  return values;
}

static void
assert_prometheus (RfReply *reply,
                   gint64   accepted)
{
  g_autoptr (GHashTable) values = NULL;
  double                *v;

  rf_assert_status (reply, 200);
  g_assert_true (g_str_has_prefix (rf_reply_header (reply, "Content-Type"), "text/plain"));
  values = parse_prometheus (rf_reply_text (reply));
  v = g_hash_table_lookup (values, "fieldline_events_accepted_total");
  g_assert_nonnull (v);
  g_assert_cmpfloat (*v, ==, accepted);
  g_assert_nonnull (g_hash_table_lookup (values, "fieldline_devices"));
  g_assert_nonnull (g_hash_table_lookup (values, "fieldline_connected_clients"));
}

static void
test_metrics (RfFixture    *f,
              gconstpointer data)
{
  g_autofree char *secret = rf_register_device (f, "metered", NULL);
  gint64           ts = rf_now_ms ();

  {
    g_autofree char    *e1 = rf_event_json ("m-1", ts, NULL, "telemetry", "{\"temperature\":1}");
    g_autofree char    *e2 = rf_event_json ("m-2", ts, NULL, "telemetry", "{\"temperature\":2}");
    g_autofree char    *e3 = rf_event_json ("m-3", ts, NULL, "telemetry", "{\"temperature\":3}");
    g_autofree char    *batch = g_strdup_printf ("[%s,%s,{\"type\":\"telemetry\"},%s]", e1, e2, e3);
    g_autoptr (RfReply) r1 = rf_ingest (f, "metered", secret, batch);
    g_autoptr (RfReply) r2 = rf_ingest (f, "metered", secret, e1);

    assert_ingest_counts (r1, 3, 0, 1);
    assert_ingest_counts (r2, 0, 1, 0);
  }

  {
    g_autoptr (RfReply) reply = rf_get (f, "/metrics", f->viewer_token);
    JsonObject         *obj;
    const char         *numbers[] = {
              "eventsPerSecond",
              "ingestLatencyP50Ms",
              "ingestLatencyP99Ms",
              "requestsTotal",
              "connectedClients",
              "connectedDevices",
              "activeAlerts",
              "pendingCommands",
              "storeBytes",
              "uptimeSeconds",
    };

    rf_assert_status (reply, 200);
    g_assert_true (g_str_has_prefix (rf_reply_header (reply, "Content-Type"), "application/json"));
    obj = rf_reply_object (reply);
    g_assert_cmpint (member_int (obj, "eventsTotal"), ==, 3);
    g_assert_cmpint (member_int (obj, "duplicatesTotal"), ==, 1);
    g_assert_cmpint (member_int (obj, "rejectedTotal"), ==, 1);
    g_assert_cmpint (member_int (obj, "devicesTotal"), ==, 1);
    g_assert_cmpint (member_int (obj, "devicesOnline"), ==, 1);
    g_assert_cmpint (member_int (obj, "storedEvents"), ==, 3);
    g_assert_cmpint (member_int (obj, "lastSeq"), >=, 3);
    for (guint i = 0; i < G_N_ELEMENTS (numbers); i++)
      g_assert_cmpfloat (member_double (obj, numbers[i]), >=, 0);
    g_assert_cmpfloat (member_double (obj, "requestsTotal"), >, 0);
  }

  {
    SoupMessage        *msg = rf_message_new (f, "GET", "/metrics", f->viewer_token);
    g_autoptr (RfReply) reply = NULL;

    soup_message_headers_replace (soup_message_get_request_headers (msg), "Accept", "text/plain");
    reply = rf_send (f, msg);
    assert_prometheus (reply, 3);
  }
  {
    g_autoptr (RfReply) reply = rf_get (f, "/metrics?format=prometheus", f->operator_token);
    assert_prometheus (reply, 3);
  }
  {
    SoupMessage        *msg = rf_message_new (f, "GET", "/metrics", f->viewer_token);
    g_autoptr (RfReply) reply = NULL;

    soup_message_headers_replace (soup_message_get_request_headers (msg), "Accept", "application/json");
    reply = rf_send (f, msg);
    rf_assert_status (reply, 200);
    g_assert_cmpint (member_int (rf_reply_object (reply), "eventsTotal"), ==, 3);
  }
  {
    g_autoptr (RfReply) reply = rf_get (f, "/metrics", NULL);
    rf_assert_error (reply, 401, "unauthorized");
  }
}

/* ---- routing ------------------------------------------------------------------- */

static void
test_routes (RfFixture    *f,
             gconstpointer data)
{
  struct
  {
    const char *method;
    const char *path;
    guint       status;
    const char *code;
    const char *allow;
  } cases[] = {
    { "GET", "/nope", 404, "not_found", NULL },
    { "GET", "/", 404, "not_found", NULL },
    { "GET", "/devices/x/bogus", 404, "not_found", NULL },
    { "GET", "/devices/x/telemetry/extra", 404, "not_found", NULL },
    { "GET", "/events/a/b", 404, "not_found", NULL },
    { "GET", "/auth/whoami", 404, "not_found", NULL },
    { "DELETE", "/config", 405, "method_not_allowed", "GET" },
    { "POST", "/events", 405, "method_not_allowed", "GET" },
    { "DELETE", "/events/x", 405, "method_not_allowed", "GET" },
    { "PATCH", "/devices", 405, "method_not_allowed", "GET, POST" },
    { "POST", "/devices/x", 405, "method_not_allowed", "GET, PUT, DELETE" },
    { "POST", "/devices/x/telemetry", 405, "method_not_allowed", "GET" },
    { "GET", "/auth/login", 405, "method_not_allowed", "POST" },
    { "PUT", "/auth/refresh", 405, "method_not_allowed", "POST" },
    { "POST", "/metrics", 405, "method_not_allowed", "GET" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      SoupMessage        *msg = rf_message_new (f, cases[i].method, cases[i].path, f->admin_token);
      g_autoptr (RfReply) reply = NULL;

      g_test_message ("%s %s", cases[i].method, cases[i].path);
      if (g_str_equal (cases[i].method, "POST") || g_str_equal (cases[i].method, "PUT") || g_str_equal (cases[i].method, "PATCH"))
        rf_message_set_json (msg, "{}");
      reply = rf_send (f, msg);
      rf_assert_error (reply, cases[i].status, cases[i].code);
      if (cases[i].allow != NULL)
        g_assert_cmpstr (rf_reply_header (reply, "Allow"), ==, cases[i].allow);
    }

  /* the relay is fine after all of them */
  {
    g_autoptr (RfReply) reply = rf_get (f, "/health", NULL);
    rf_assert_status (reply, 200);
  }
}

/* ---- restart ------------------------------------------------------------------ */

static char *
jwks_kids (RfFixture *f)
{
  g_autofree char    *path = g_strdup_printf ("/%s/.well-known/jwks.json", fl_relay_get_pool_id (f->relay));
  g_autoptr (RfReply) reply = rf_get (f, path, NULL);
  JsonArray          *keys;
  GString            *out = g_string_new (NULL);

  rf_assert_status (reply, 200);
  keys = json_object_get_array_member (rf_reply_object (reply), "keys");
  for (guint i = 0; i < json_array_get_length (keys); i++)
    g_string_append_printf (out, "%s ", member_string (json_array_get_object_element (keys, i), "kid"));

  return g_string_free (out, FALSE);
}

static void
test_restart (RfFixture    *f,
              gconstpointer data)
{
  g_autofree char       *secret_a = rf_register_device (f, "keep-a", ",\"tags\":[\"kept\"],\"heartbeatTimeoutSec\":3600");
  g_autofree char       *secret_b = rf_register_device (f, "keep-b", NULL);
  g_autoptr (GPtrArray)  events_before = NULL;
  g_autoptr (GPtrArray)  events_after = NULL;
  g_autoptr (JsonObject) a_before = NULL;
  g_autoptr (JsonObject) b_before = NULL;
  g_autofree char       *pool_id = g_strdup (fl_relay_get_pool_id (f->relay));
  g_autofree char       *client_id = g_strdup (fl_relay_get_client_id (f->relay));
  g_autofree char       *kids_before = jwks_kids (f);
  gint64                 ts = rf_now_ms ();
  gint64                 last_seq;

  for (guint i = 0; i < 20; i++)
    {
      g_autofree char    *id = g_strdup_printf ("keep-%02u", i);
      g_autofree char    *event_data = g_strdup_printf ("{\"temperature\":%u,\"battery\":%u}", i, 90 - i);
      g_autofree char    *event = rf_event_json (id, ts + i, NULL, "telemetry", event_data);
      g_autoptr (RfReply) reply = rf_ingest (f, i % 4 ? "keep-a" : "keep-b", i % 4 ? secret_a : secret_b, event);

      assert_ingest_counts (reply, 1, 0, 0);
    }
  {
    g_autoptr (RfReply) reply = rf_request_json (f, "PUT", "/devices/keep-b", f->admin_token,
                                                 "{\"status\":\"maintenance\",\"name\":\"Kept B\"}");
    rf_assert_status (reply, 200);
  }

  events_before = rf_fetch_events (f, NULL, 7);
  a_before = get_device (f, "keep-a");
  b_before = get_device (f, "keep-b");
  last_seq = member_int (g_ptr_array_index (events_before, events_before->len - 1), "seq");

  rf_fixture_stop_relay (f);
  rf_fixture_start_relay (f);

  /* the same pool, client and keys */
  g_assert_cmpstr (fl_relay_get_pool_id (f->relay), ==, pool_id);
  g_assert_cmpstr (fl_relay_get_client_id (f->relay), ==, client_id);
  {
    g_autofree char *kids_after = jwks_kids (f);
    g_assert_cmpstr (kids_after, ==, kids_before);
  }

  /* the same devices */
  {
    g_autoptr (JsonObject) a = get_device (f, "keep-a");
    g_autoptr (JsonObject) b = get_device (f, "keep-b");
    g_autofree char       *ids = list_device_ids (f, "tag=kept");

    g_assert_cmpstr (ids, ==, "keep-a");
    g_assert_cmpint (member_int (a, "createdAt"), ==, member_int (a_before, "createdAt"));
    g_assert_cmpint (member_int (a, "lastSeen"), ==, member_int (a_before, "lastSeen"));
    g_assert_cmpfloat (member_double (a, "battery"), ==, member_double (a_before, "battery"));
    g_assert_cmpint (member_int (a, "heartbeatTimeoutSec"), ==, 3600);
    g_assert_cmpstr (member_string (a, "status"), ==, "online");
    g_assert_cmpstr (member_string (b, "name"), ==, "Kept B");
    g_assert_cmpstr (member_string (b, "status"), ==, "maintenance");
    g_assert_cmpint (member_int (b, "updatedAt"), ==, member_int (b_before, "updatedAt"));
  }

  /* the same events, with the same seqs */
  events_after = rf_fetch_events (f, NULL, 1000);
  g_assert_cmpuint (events_after->len, ==, events_before->len);
  for (guint i = 0; i < events_after->len; i++)
    {
      JsonObject *before = g_ptr_array_index (events_before, i);
      JsonObject *after = g_ptr_array_index (events_after, i);

      g_assert_cmpstr (member_string (after, "id"), ==, member_string (before, "id"));
      g_assert_cmpint (member_int (after, "seq"), ==, member_int (before, "seq"));
      g_assert_cmpint (member_int (after, "receivedAt"), ==, member_int (before, "receivedAt"));
    }

  /* secrets still work; ids are still known; seq goes on */
  {
    g_autofree char       *old_event = rf_event_json ("keep-05", ts + 5, NULL, "telemetry", "{\"temperature\":5}");
    g_autofree char       *new_event = rf_event_json ("keep-new", ts + 100, NULL, "telemetry", NULL);
    g_autoptr (RfReply)    dup = rf_ingest (f, "keep-a", secret_a, old_event);
    g_autoptr (RfReply)    fresh = rf_ingest (f, "keep-b", secret_b, new_event);
    g_autoptr (RfReply)    wrong = rf_ingest (f, "keep-a", secret_b, new_event);
    g_autoptr (JsonObject) stored = NULL;

    assert_ingest_counts (dup, 0, 1, 0);
    assert_ingest_counts (fresh, 1, 0, 0);
    rf_assert_error (wrong, 401, "unauthorized");
    stored = get_event (f, "keep-new");
    g_assert_cmpint (member_int (stored, "seq"), >, last_seq);
  }
}

/* ---- shutdown -------------------------------------------------------------------- */

static void
drain_shutdown_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  gboolean          *done = user_data;
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_relay_shutdown_finish (FL_RELAY (source), result, &error));
  g_assert_no_error (error);
  *done = TRUE;
}

static void
events_since_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GPtrArray        **out = user_data;
  g_autoptr (GError) error = NULL;

  *out = fl_store_events_since_finish (FL_STORE (source), result, &error);
  g_assert_no_error (error);
}

/* Every event id in the store at path, read with FlStore itself. */
static GHashTable *
stored_ids (const char *dir)
{
  g_autofree char    *path = g_build_filename (dir, "events.db", NULL);
  g_autoptr (GError)  error = NULL;
  g_autoptr (FlStore) store = fl_store_open (path, &error);
  GHashTable         *ids = string_set_new ();
  gint64              since = 0;

  g_assert_no_error (error);
  for (;;)
    {
      g_autoptr (GPtrArray) page = NULL;

      fl_store_events_since_async (store, since, NULL, 1000, NULL, events_since_cb, &page);
      RF_WAIT_UNTIL (page != NULL);
      if (page->len == 0)
        break;
      for (guint i = 0; i < page->len; i++)
        {
          FlEvent *event = g_ptr_array_index (page, i);

          g_assert_cmpint (fl_event_get_seq (event), >, since);
          since = fl_event_get_seq (event);
          g_assert_true (g_hash_table_add (ids, g_strdup (fl_event_get_id (event))));
        }
    }
  fl_store_close (store);

  return ids;
}

static void
test_shutdown_drains (RfFixture    *f,
                      gconstpointer data)
{
  enum
  {
    N_EARLY = 60,
    N_LATE = 20,
    PER_REQUEST = 20
  };
  g_autofree char       *secret = rf_register_device (f, "drain", NULL);
  g_autoptr (GPtrArray)  early = g_ptr_array_new_with_free_func ((GDestroyNotify) rf_reply_free);
  g_autoptr (GPtrArray)  late = g_ptr_array_new_with_free_func ((GDestroyNotify) rf_reply_free);
  g_autoptr (GPtrArray)  bodies = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) stored = NULL;
  gboolean               shut = FALSE;
  guint                  done_at_shutdown, n_ok = 0, n_unavailable = 0, n_failed = 0;
  gint64                 ts = rf_now_ms ();
  gpointer               weak;
  /* Eight keep-alive connections carry all the requests, as a few
   * gateways would: requests queue in the session and reach the relay
   * while it drains, on connections it has already accepted. */
  g_autoptr (SoupSession) session = soup_session_new_with_options ("max-conns", 8, "max-conns-per-host", 8, NULL);
  SoupSession            *fixture_session = f->session;
  /* and one idle keep-alive connection for a probe without a body */
  g_autoptr (SoupSession) probe_session = soup_session_new_with_options ("max-conns", 1, NULL);
  g_autoptr (RfReply)     probe = NULL;

  f->session = probe_session;
  {
    g_autoptr (RfReply) warm = rf_get (f, "/health", NULL);
    rf_assert_status (warm, 200);
  }
  f->session = session;

  for (guint r = 0; r < N_EARLY + N_LATE; r++)
    {
      GString *body = g_string_new ("[");

      for (guint i = 0; i < PER_REQUEST; i++)
        {
          g_autofree char *id = g_strdup_printf ("drain-%03u-%02u", r, i);
          g_autofree char *event = rf_event_json (id, ts + r, NULL, "telemetry", "{\"temperature\":7}");

          g_string_append_printf (body, "%s%s", i ? "," : "", event);
        }
      g_string_append_c (body, ']');
      g_ptr_array_add (bodies, g_string_free (body, FALSE));
    }

  for (guint r = 0; r < N_EARLY; r++)
    g_ptr_array_add (early, rf_ingest_async (f, "drain", secret, g_ptr_array_index (bodies, r)));

  /* shut down while requests are in flight */
  RF_WAIT_UNTIL (count_done (early) >= 5 && fl_ingest_get_in_flight (f->relay->ingest) > 0);
  done_at_shutdown = count_done (early);
  g_test_message ("%u of %u requests answered when shutdown starts; %u in ingest",
                  done_at_shutdown, N_EARLY, fl_ingest_get_in_flight (f->relay->ingest));
  g_assert_cmpuint (done_at_shutdown, <, N_EARLY);
  fl_relay_shutdown_async (f->relay, NULL, drain_shutdown_cb, &shut);

  /* a request on an open connection while the relay drains: 503 */
  f->session = probe_session;
  probe = rf_send_async (f, rf_message_new (f, "GET", "/health", NULL));
  f->session = session;

  /* and some more arrive during the shutdown */
  for (guint r = 0; r < N_LATE; r++)
    g_ptr_array_add (late, rf_ingest_async (f, "drain", secret, g_ptr_array_index (bodies, N_EARLY + r)));

  RF_WAIT_UNTIL_MS (shut && probe->done && count_done (early) == early->len && count_done (late) == late->len, 60000);
  f->session = fixture_session;
  rf_assert_error (probe, 503, "unavailable");

  weak = f->relay;
  g_object_add_weak_pointer (G_OBJECT (f->relay), &weak);
  g_clear_object (&f->relay);
  g_assert_null (weak);

  stored = stored_ids (f->dir);

  for (guint r = 0; r < N_EARLY + N_LATE; r++)
    {
      RfReply *reply = r < N_EARLY ? g_ptr_array_index (early, r) : g_ptr_array_index (late, r - N_EARLY);

      if (reply->status == 200)
        {
          /* acknowledged: every event of it is in the store */
          assert_ingest_counts (reply, PER_REQUEST, 0, 0);
          for (guint i = 0; i < PER_REQUEST; i++)
            {
              g_autofree char *id = g_strdup_printf ("drain-%03u-%02u", r, i);

              if (!g_hash_table_contains (stored, id))
                g_error ("Request %u got 200 but event %s is not in the store", r, id);
            }
          n_ok++;
          if (r >= N_EARLY)
            g_error ("Request %u was sent after shutdown began and got 200", r);
        }
      else if (reply->status == 503)
        {
          /* refused: told to come back, and nothing of it was stored */
          rf_assert_error (reply, 503, "unavailable");
          for (guint i = 0; i < PER_REQUEST; i++)
            {
              g_autofree char *id = g_strdup_printf ("drain-%03u-%02u", r, i);
              g_assert_false (g_hash_table_contains (stored, id));
            }
          n_unavailable++;
        }
      else if (reply->status == 0 && reply->error != NULL)
        {
          n_failed++; /* the connection closed: the device retries */
          if (n_failed == 1)
            g_test_message ("request %u: %s", r, reply->error->message);
        }
      else
        rf_assert_status (reply, 200);
    }

  g_test_message ("%u acknowledged, %u refused with 503, %u connections closed", n_ok, n_unavailable, n_failed);
  /* what was in flight when the shutdown began was answered, not cut */
  g_assert_cmpuint (n_ok, >, done_at_shutdown);
  g_assert_cmpuint (n_ok + n_unavailable + n_failed, ==, N_EARLY + N_LATE);
}

/* ---- TLS ------------------------------------------------------------------------- */

static void
test_tls (RfFixture    *f,
          gconstpointer data)
{
  g_autofree char *secret = NULL;

  g_assert_true (g_str_has_prefix (f->url, "https://127.0.0.1:"));

  {
    g_autoptr (RfReply) health = rf_get (f, "/health", NULL);
    g_autoptr (RfReply) config = rf_get (f, "/config", NULL);
    g_autofree char    *wss = g_strconcat ("wss", f->url + strlen ("https"), "/events", NULL);

    rf_assert_status (health, 200);
    rf_assert_status (config, 200);
    g_assert_cmpstr (member_string (rf_reply_object (config), "apiUrl"), ==, f->url);
    g_assert_cmpstr (member_string (rf_reply_object (config), "websocketUrl"), ==, wss);
  }

  /* without accepting that certificate, a new connection fails */
  {
    g_autofree char        *uri = g_strconcat (f->url, "/health", NULL);
    g_autoptr (SoupSession) session = soup_session_new ();
    SoupSession            *fixture_session = f->session;
    g_autoptr (RfReply)     reply = NULL;

    f->session = session;
    reply = rf_send (f, soup_message_new ("GET", uri));
    f->session = fixture_session;

    g_assert_cmpuint (reply->status, ==, 0);
    g_assert_error (reply->error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
  }

  secret = rf_register_device (f, "tls-dev", NULL);

  /* wss:// for the device channel and the live stream */
  {
    g_autofree char *basic = rf_basic_header ("tls-dev", secret);
    g_autofree char *path = g_strdup_printf ("/events?token=%s", f->viewer_token);
    g_autoptr (RfWs) device = rf_ws_connect (f, "/device", basic);
    g_autoptr (RfWs) stream = rf_ws_connect (f, path, NULL);
    g_autofree char *event = rf_event_json ("tls-1", rf_now_ms (), NULL, "telemetry", "{\"temperature\":3}");
    g_autofree char *batch = g_strdup_printf ("[%s]", event);
    JsonObject      *ack, *message;

    g_assert_true (device->connected);
    g_assert_true (stream->connected);
    rf_ws_send (stream, "{\"action\":\"subscribe_devices\",\"deviceIds\":[\"*\"]}");
    rf_ws_next_of_type (stream, "subscribed");

    rf_ws_send (device, batch);
    ack = rf_ws_next (device);
    g_assert_cmpstr (member_string (ack, "type"), ==, "ack");
    g_assert_cmpint (member_int (ack, "accepted"), ==, 1);

    message = rf_ws_next_of_type (stream, "event");
    g_assert_cmpstr (member_string (json_object_get_object_member (message, "event"), "id"), ==, "tls-1");

    rf_ws_close (device);
    rf_ws_close (stream);
  }
}

/* ---- main ----------------------------------------------------------------------- */

static const RfOptions tls_options = { .tls = TRUE };
static const RfOptions cognito_options = { .cognito = TRUE };

#define ADD(path, func) \
  g_test_add ("/fieldline/relay/" path, RfFixture, NULL, rf_fixture_set_up, func, rf_fixture_tear_down)
#define ADD_WITH(path, options, func) \
  g_test_add ("/fieldline/relay/" path, RfFixture, options, rf_fixture_set_up, func, rf_fixture_tear_down)

/* /users: admins list, create (with a temporary password), change the
 * group of and disable users; nobody else may, and an admin cannot lock
 * themselves out. */
static void
test_users (RfFixture    *f,
            gconstpointer data)
{
  g_autoptr (RfReply) list = rf_get (f, "/users", f->admin_token);
  JsonArray          *users;

  rf_assert_status (list, 200);
  users = json_object_get_array_member (rf_reply_object (list), "users");
  g_assert_cmpuint (json_array_get_length (users), ==, 3);
  g_assert_cmpstr (member_string (json_array_get_object_element (users, 0), "username"), ==, "admin");
  g_assert_cmpstr (member_string (json_array_get_object_element (users, 0), "role"), ==, "admin");

  /* only admins */
  {
    g_autoptr (RfReply) op = rf_get (f, "/users", f->operator_token);
    g_autoptr (RfReply) viewer = rf_request_json (f, "PATCH", "/users/operator", f->viewer_token,
                                                  "{\"enabled\":false}");
    g_autoptr (RfReply) anonymous = rf_get (f, "/users", NULL);

    rf_assert_error (op, 403, "forbidden");
    rf_assert_error (viewer, 403, "forbidden");
    rf_assert_error (anonymous, 401, "unauthorized");
  }

  /* create: FORCE_CHANGE_PASSWORD, then sign-in asks for a new password */
  {
    g_autoptr (RfReply) created = rf_request_json (f, "POST", "/users", f->admin_token,
                                                   "{\"username\":\"dana\",\"email\":\"dana@example.com\","
                                                   "\"group\":\"operator\",\"temporaryPassword\":\"Temp-Pass-1!\"}");
    g_autoptr (RfReply) again = rf_request_json (f, "POST", "/users", f->admin_token,
                                                 "{\"username\":\"dana\",\"temporaryPassword\":\"Temp-Pass-1!\"}");
    g_autoptr (RfReply) weak = rf_request_json (f, "POST", "/users", f->admin_token,
                                                "{\"username\":\"weak\",\"temporaryPassword\":\"short\"}");
    g_autoptr (RfReply) login = rf_request_json (f, "POST", "/auth/login", NULL,
                                                 "{\"username\":\"dana\",\"password\":\"Temp-Pass-1!\"}");

    rf_assert_status (created, 201);
    g_assert_cmpstr (member_string (rf_reply_object (created), "status"), ==, "FORCE_CHANGE_PASSWORD");
    g_assert_cmpstr (member_string (rf_reply_object (created), "role"), ==, "operator");
    rf_assert_error (again, 409, "user_exists");
    rf_assert_error (weak, 400, "invalid_password");
    rf_assert_error (login, 401, "not_authorized");
  }

  /* change the group, then disable: the operator's token stops working */
  {
    g_autoptr (RfReply) demote = rf_request_json (f, "PATCH", "/users/operator", f->admin_token,
                                                  "{\"group\":\"viewer\"}");
    g_autoptr (RfReply) disable = rf_request_json (f, "PATCH", "/users/operator", f->admin_token,
                                                   "{\"enabled\":false}");
    g_autoptr (RfReply) refused = rf_get (f, "/devices", f->operator_token);
    g_autoptr (RfReply) one = rf_get (f, "/users/operator", f->admin_token);

    rf_assert_status (demote, 200);
    g_assert_cmpstr (member_string (rf_reply_object (demote), "role"), ==, "viewer");
    rf_assert_status (disable, 200);
    rf_assert_error (refused, 401, "unauthorized");
    rf_assert_status (one, 200);
    g_assert_false (json_object_get_boolean_member (rf_reply_object (one), "enabled"));
  }

  /* bad input */
  {
    g_autoptr (RfReply) self_disable = rf_request_json (f, "PATCH", "/users/admin", f->admin_token,
                                                        "{\"enabled\":false}");
    g_autoptr (RfReply) self_demote = rf_request_json (f, "PATCH", "/users/ADMIN", f->admin_token,
                                                       "{\"group\":\"operator\"}");
    g_autoptr (RfReply) unknown = rf_request_json (f, "PATCH", "/users/nobody", f->admin_token,
                                                   "{\"group\":\"viewer\"}");
    g_autoptr (RfReply) bad_group = rf_request_json (f, "PATCH", "/users/viewer", f->admin_token,
                                                     "{\"group\":\"root\"}");
    g_autoptr (RfReply) bad_enabled = rf_request_json (f, "PATCH", "/users/viewer", f->admin_token,
                                                       "{\"enabled\":\"no\"}");
    g_autoptr (RfReply) nothing = rf_request_json (f, "PATCH", "/users/viewer", f->admin_token, "{}");
    g_autoptr (RfReply) not_json = rf_request_json (f, "PATCH", "/users/viewer", f->admin_token, "{");
    g_autoptr (RfReply) method = rf_request_json (f, "DELETE", "/users/viewer", f->admin_token, NULL);
    g_autoptr (RfReply) missing = rf_get (f, "/users/nobody", f->admin_token);

    rf_assert_error (self_disable, 409, "conflict");
    rf_assert_error (self_demote, 409, "conflict");
    rf_assert_error (unknown, 404, "user_not_found");
    rf_assert_error (bad_group, 400, "invalid_parameter");
    rf_assert_error (bad_enabled, 400, "invalid_parameter");
    rf_assert_error (nothing, 400, "invalid_parameter");
    rf_assert_error (not_json, 400, "malformed_json");
    rf_assert_error (method, 405, "method_not_allowed");
    rf_assert_error (missing, 404, "user_not_found");
  }
}

/* With --cognito-issuer the relay also takes a real Cognito pool's
 * tokens, roles from their groups; other pools' and forged ones not. */
static char *
cognito_token (RfFixture  *f,
               const char *issuer,
               const char *client_id,
               const char *group,
               gint64      exp)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) claims = json_object_new ();
  gint64                 now = rf_now_ms () / 1000;
  char                  *token;

  json_object_set_string_member (claims, "sub", "4b0c5f1e-0000-4000-8000-000000000001");
  if (group != NULL)
    {
      JsonArray *groups = json_array_new ();

      json_array_add_string_element (groups, group);
      json_object_set_array_member (claims, "cognito:groups", groups);
    }
  json_object_set_string_member (claims, "iss", issuer);
  json_object_set_string_member (claims, "client_id", client_id);
  json_object_set_string_member (claims, "origin_jti", "5d9e0000-0000-4000-8000-000000000002");
  json_object_set_string_member (claims, "token_use", "access");
  json_object_set_string_member (claims, "scope", "aws.cognito.signin.user.admin");
  json_object_set_int_member (claims, "auth_time", now);
  json_object_set_int_member (claims, "exp", exp > 0 ? exp : now + 3600);
  json_object_set_int_member (claims, "iat", now);
  json_object_set_string_member (claims, "jti", "7f000000-0000-4000-8000-000000000003");
  json_object_set_string_member (claims, "username", "cloud-operator");
  token = fl_jwt_sign (f->cognito_key, claims, &error);
  g_assert_no_error (error);
  return token;
}

static void
test_trusted_cognito_pool (RfFixture    *f,
                           gconstpointer data)
{
  gint64           now = rf_now_ms () / 1000;
  g_autofree char *operator = cognito_token (f, RF_COGNITO_ISSUER, RF_COGNITO_CLIENT_ID, "operator", 0);
  g_autofree char *no_group = cognito_token (f, RF_COGNITO_ISSUER, RF_COGNITO_CLIENT_ID, NULL, 0);
  g_autofree char *other_client = cognito_token (f, RF_COGNITO_ISSUER, "someotherclient", "admin", 0);
  g_autofree char *other_pool = cognito_token (f, "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other1",
                                               RF_COGNITO_CLIENT_ID, "admin", 0);
  g_autofree char *expired = cognito_token (f, RF_COGNITO_ISSUER, RF_COGNITO_CLIENT_ID, "operator", now - 10);

  {
    g_autoptr (RfReply) ok = rf_get (f, "/devices", operator);
    g_autoptr (RfReply) not_admin = rf_request_json (f, "POST", "/devices", operator, "{\"deviceId\":\"cloud-1\"}");
    g_autoptr (RfReply) forbidden = rf_get (f, "/devices", no_group);
    g_autoptr (RfReply) client = rf_get (f, "/devices", other_client);
    g_autoptr (RfReply) pool = rf_get (f, "/devices", other_pool);
    g_autoptr (RfReply) late = rf_get (f, "/devices", expired);

    rf_assert_status (ok, 200);
    rf_assert_error (not_admin, 403, "forbidden");
    rf_assert_error (forbidden, 403, "forbidden");
    rf_assert_error (client, 401, "unauthorized");
    rf_assert_error (pool, 401, "unauthorized");
    rf_assert_error (late, 401, "unauthorized");
  }

  /* the relay's own users still sign in */
  {
    g_autoptr (RfReply) own = rf_get (f, "/devices", f->viewer_token);

    rf_assert_status (own, 200);
  }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  ADD ("discovery/config", test_config);
  ADD ("discovery/health", test_health);
  ADD ("discovery/jwks", test_jwks);

  ADD ("auth/login", test_login);
  ADD ("auth/login-errors", test_login_errors);
  ADD ("auth/refresh", test_refresh);

  ADD ("tokens/missing", test_token_missing);
  ADD ("tokens/garbage", test_token_garbage);
  ADD ("tokens/alg-none", test_token_alg_none);
  ADD ("tokens/foreign-key", test_token_foreign_key);
  ADD ("tokens/expired", test_token_expired);

  ADD ("roles", test_roles);

  ADD ("devices/register", test_device_register);
  ADD ("devices/generated-id", test_device_generated_id);
  ADD ("devices/invalid", test_device_invalid);
  ADD ("devices/get", test_device_get);
  ADD ("devices/filters", test_device_filters);
  ADD ("devices/paging", test_device_paging);
  ADD ("devices/update", test_device_update);
  ADD ("devices/delete", test_device_delete);
  ADD ("devices/rotate-secret", test_device_rotate_secret);
  ADD ("devices/status-from-events", test_device_status);

  ADD ("ingest/single", test_ingest_single);
  ADD ("ingest/batch", test_ingest_batch);
  ADD ("ingest/batch-whitespace", test_ingest_batch_whitespace);
  ADD ("ingest/source", test_ingest_source);
  ADD ("ingest/auth", test_ingest_auth);
  ADD ("ingest/bodies", test_ingest_bodies);
  ADD ("ingest/concurrent", test_ingest_concurrent);

  ADD ("events/paging", test_events_paging);
  ADD ("events/filters", test_events_filters);
  ADD ("events/bad-params", test_events_bad_params);
  ADD ("events/get", test_events_get);
  ADD ("events/get-escaped-ids", test_events_get_escaped_ids);

  ADD ("telemetry", test_telemetry);
  ADD ("metrics", test_metrics);
  ADD ("routes", test_routes);
  ADD ("users", test_users);
  g_test_add ("/fieldline/relay/auth/trusted-cognito-pool", RfFixture, &cognito_options,
              rf_fixture_set_up, test_trusted_cognito_pool, rf_fixture_tear_down);

  ADD ("restart", test_restart);
  ADD ("shutdown/drains", test_shutdown_drains);
  ADD_WITH ("tls", &tls_options, test_tls);

  return g_test_run ();
}
