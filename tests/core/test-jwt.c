/* test-jwt.c: RS256 tokens and JWKS: round trips, and every way a token
 * from outside can be wrong. */
#define G_LOG_DOMAIN "test-jwt"

#include "config.h"

#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "fieldline-core.h"

/* Keys are slow to make: two for the whole run */
static FlJwtKey *key1;
static FlJwtKey *key2;
/* A raw GnuTLS key, to sign anything at all (forgeries) */
static gnutls_privkey_t raw_key;

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

static char *
b64 (const char *text)
{
  return fl_base64url_encode ((const guint8 *) text, strlen (text));
}

static char *
make_token (const char *header_json,
            const char *payload_json,
            const char *sig_b64)
{
  g_autofree char *h = b64 (header_json);
  g_autofree char *p = b64 (payload_json);

  return g_strdup_printf ("%s.%s.%s", h, p, sig_b64);
}

/* header.payload signed with RS256 by raw_key, whatever the header says */
static char *
forge_rs256 (const char *header_json,
             const char *payload_json)
{
  g_autofree char *h = b64 (header_json);
  g_autofree char *p = b64 (payload_json);
  g_autofree char *input = g_strdup_printf ("%s.%s", h, p);
  g_autofree char *sig_b64 = NULL;
  gnutls_datum_t   data = { (unsigned char *) input, strlen (input) };
  gnutls_datum_t   sig = { NULL, 0 };

  g_assert_cmpint (gnutls_privkey_sign_data2 (raw_key, GNUTLS_SIGN_RSA_SHA256, 0, &data, &sig), ==, 0);
  sig_b64 = fl_base64url_encode (sig.data, sig.size);
  gnutls_free (sig.data);

  return g_strdup_printf ("%s.%s", input, sig_b64);
}

static JsonObject *
claims_new (gint64 exp)
{
  JsonObject *claims = json_object_new ();

  json_object_set_string_member (claims, "sub", "5f0c6a2e-3d7b-4a52-9a39-1f0e1c2b3a4d");
  json_object_set_string_member (claims, "iss", "http://127.0.0.1:1/local_test");
  json_object_set_int_member (claims, "exp", exp);
  json_object_set_int_member (claims, "iat", now_s ());

  return claims;
}

static FlJwtKeySet *
set_with (FlJwtKey *key)
{
  FlJwtKeySet *set = fl_jwt_key_set_new ();

  fl_jwt_key_set_add_key (set, key);
  return set;
}

static char *
sign_valid (FlJwtKey *key)
{
  g_autoptr (JsonObject) claims = claims_new (now_s () + 600);
  g_autoptr (GError)     error = NULL;
  char                  *token = fl_jwt_sign (key, claims, &error);

  g_assert_no_error (error);
  g_assert_nonnull (token);
  return token;
}

static void
assert_refused (FlJwtKeySet *set,
                const char  *token,
                FlJwtError   code)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) claims = fl_jwt_verify (set, token, now_s (), 0, &error);

  g_assert_null (claims);
  g_assert_error (error, FL_JWT_ERROR, (gint) code);
}

/* Refused with any FL_JWT_ERROR code */
static void
assert_refused_any (FlJwtKeySet *set,
                    const char  *token)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (JsonObject) claims = fl_jwt_verify (set, token, now_s (), 0, &error);

  g_assert_null (claims);
  g_assert_nonnull (error);
  g_assert_true (error->domain == FL_JWT_ERROR);
}

static char *
kid_header (const char *alg,
            const char *kid)
{
  return g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"%s\"}", kid, alg);
}

static char *
valid_payload (void)
{
  return g_strdup_printf ("{\"sub\":\"x\",\"exp\":%" G_GINT64_FORMAT "}", now_s () + 600);
}

/* ------------------------------------------------------------------ */

static void
test_base64url (void)
{
  static const struct
  {
    const char *in;
    const char *out;
  } vectors[] = {
    { "", "" },
    { "f", "Zg" },
    { "fo", "Zm8" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg" },
    { "fooba", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy" },
  };
  static const char *bad[] = {
    "Zg==",
    "Zm8=",
    "Z",
    "Zm9vY",
    "Zm9v Yg",
    "Zm+v",
    "Zm/v",
    "Zm9v\n",
    "Zh",
    "Zm9",
    "Zm-=",
    "\xff\xfe",
  };
  guint8 all[256];
  gsize  len;

  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++)
    {
      g_autofree char   *enc = fl_base64url_encode ((const guint8 *) vectors[i].in, strlen (vectors[i].in));
      g_autofree guint8 *dec = fl_base64url_decode (vectors[i].out, &len);

      g_assert_cmpstr (enc, ==, vectors[i].out);
      g_assert_nonnull (dec);
      g_assert_cmpmem (dec, len, vectors[i].in, strlen (vectors[i].in));
    }

  /* the URL-safe characters, both ways */
  {
    const guint8       bytes[] = { 0xfb, 0xff, 0xbf };
    g_autofree char   *enc = fl_base64url_encode (bytes, sizeof bytes);
    g_autofree guint8 *dec = NULL;

    g_assert_cmpstr (enc, ==, "-_-_");
    dec = fl_base64url_decode ("-_-_", &len);
    g_assert_cmpmem (dec, len, bytes, sizeof bytes);
  }

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_null (fl_base64url_decode (bad[i], &len));

  for (guint i = 0; i < sizeof all; i++)
    all[i] = (guint8) i;
  for (gsize n = 0; n <= sizeof all; n++)
    {
      g_autofree char   *enc = fl_base64url_encode (all, n);
      g_autofree guint8 *dec = fl_base64url_decode (enc, &len);

      g_assert_nonnull (dec);
      g_assert_cmpmem (dec, len, all, n);
      g_assert_null (strchr (enc, '='));
      g_assert_null (strchr (enc, '+'));
      g_assert_null (strchr (enc, '/'));
    }
}

static void
test_round_trip (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autoptr (JsonObject)  claims = claims_new (now_s () + 600);
  g_autoptr (JsonObject)  verified = NULL;
  g_autoptr (GError)      error = NULL;
  g_autofree char        *token = NULL;
  g_autofree guint8      *header = NULL;
  g_autofree char        *expected_header = NULL;
  g_auto (GStrv)          parts = NULL;
  gsize                   len;

  json_object_set_string_member (claims, "cognito:username", "ünïcødé \"quoted\"");
  token = fl_jwt_sign (key1, claims, &error);
  g_assert_no_error (error);

  parts = g_strsplit (token, ".", -1);
  g_assert_cmpuint (g_strv_length (parts), ==, 3);
  header = fl_base64url_decode (parts[0], &len);
  expected_header = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":\"RS256\"}", fl_jwt_key_get_kid (key1));
  g_assert_cmpmem (header, len, expected_header, strlen (expected_header));
  g_assert_cmpuint (strlen (parts[2]), ==, 342); /* 256 bytes */

  verified = fl_jwt_verify (set, token, now_s (), 0, &error);
  g_assert_no_error (error);
  g_assert_nonnull (verified);
  g_assert_cmpstr (json_object_get_string_member (verified, "sub"), ==, "5f0c6a2e-3d7b-4a52-9a39-1f0e1c2b3a4d");
  g_assert_cmpstr (json_object_get_string_member (verified, "cognito:username"), ==, "ünïcødé \"quoted\"");
  g_assert_cmpint (json_object_get_int_member (verified, "exp"), ==, json_object_get_int_member (claims, "exp"));

  /* RS256 is deterministic: the same claims sign the same */
  {
    g_autofree char *again = fl_jwt_sign (key1, claims, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (again, ==, token);
  }

  /* a set with both keys verifies tokens of each */
  {
    g_autoptr (FlJwtKeySet) both = set_with (key1);
    g_autofree char        *t2 = sign_valid (key2);
    g_autoptr (JsonObject)  c1 = NULL;
    g_autoptr (JsonObject)  c2 = NULL;

    fl_jwt_key_set_add_key (both, key2);
    c1 = fl_jwt_verify (both, token, now_s (), 0, &error);
    g_assert_no_error (error);
    c2 = fl_jwt_verify (both, t2, now_s (), 0, &error);
    g_assert_no_error (error);
    g_assert_nonnull (c1);
    g_assert_nonnull (c2);
  }
}

static void
test_alg_none (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  const char             *kid = fl_jwt_key_get_kid (key1);
  g_autofree char        *payload = valid_payload ();
  g_autofree char        *valid = sign_valid (key1);
  g_auto (GStrv)          parts = g_strsplit (valid, ".", -1);
  static const char      *algs[] = { "none", "None", "NONE", "nOnE", "" };

  for (guint i = 0; i < G_N_ELEMENTS (algs); i++)
    {
      g_autofree char *header = kid_header (algs[i], kid);
      g_autofree char *unsigned_token = make_token (header, payload, "");
      g_autofree char *with_sig = make_token (header, payload, parts[2]);

      assert_refused (set, unsigned_token, FL_JWT_ERROR_ALGORITHM);
      assert_refused (set, with_sig, FL_JWT_ERROR_ALGORITHM);
    }

  /* no alg at all, or not a string */
  {
    g_autofree char *h1 = g_strdup_printf ("{\"kid\":\"%s\"}", kid);
    g_autofree char *h2 = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":null}", kid);
    g_autofree char *h3 = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":[\"RS256\"]}", kid);
    g_autofree char *h4 = g_strdup_printf ("{\"kid\":\"%s\",\"alg\":256}", kid);
    const char      *headers[] = { h1, h2, h3, h4 };

    for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
      {
        g_autofree char *t = make_token (headers[i], payload, parts[2]);

        assert_refused (set, t, FL_JWT_ERROR_ALGORITHM);
      }
  }
}

static void
test_alg_hs256 (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autoptr (JsonNode)    jwk = fl_jwt_key_to_jwk (key1);
  const char             *kid = fl_jwt_key_get_kid (key1);
  const char             *n_b64 = json_object_get_string_member (json_node_get_object (jwk), "n");
  g_autofree char        *jwk_text = json_to_string (jwk, FALSE);
  g_autofree char        *payload = valid_payload ();
  const char             *secrets[] = { jwk_text, n_b64 };
  static const char      *others[] = { "RS512", "RS384", "PS256", "ES256", "EdDSA", "rs256", "RS256 ", "HS512" };

  /* The classic confusion: HMAC keyed with the public key */
  for (guint i = 0; i < G_N_ELEMENTS (secrets); i++)
    {
      g_autofree char  *header = kid_header ("HS256", kid);
      g_autofree char  *h = b64 (header);
      g_autofree char  *p = b64 (payload);
      g_autofree char  *input = g_strdup_printf ("%s.%s", h, p);
      g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, (const guchar *) secrets[i], strlen (secrets[i]));
      guint8            mac[32];
      gsize             mac_len = sizeof mac;
      g_autofree char  *mac_b64 = NULL;
      g_autofree char  *token = NULL;

      g_hmac_update (hmac, (const guchar *) input, -1);
      g_hmac_get_digest (hmac, mac, &mac_len);
      mac_b64 = fl_base64url_encode (mac, mac_len);
      token = g_strdup_printf ("%s.%s", input, mac_b64);

      assert_refused (set, token, FL_JWT_ERROR_ALGORITHM);
    }

  /* Any other alg, even with a real RS256 signature */
  for (guint i = 0; i < G_N_ELEMENTS (others); i++)
    {
      g_autofree char *header = kid_header (others[i], kid);
      g_autofree char *token = forge_rs256 (header, payload);

      assert_refused (set, token, FL_JWT_ERROR_ALGORITHM);
    }
}

static void
test_unknown_kid (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autoptr (FlJwtKeySet) empty = fl_jwt_key_set_new ();
  g_autofree char        *other = sign_valid (key2);
  g_autofree char        *mine = sign_valid (key1);
  g_autofree char        *payload = valid_payload ();
  g_auto (GStrv)          parts = g_strsplit (mine, ".", -1);

  assert_refused (set, other, FL_JWT_ERROR_UNKNOWN_KEY);
  assert_refused (empty, mine, FL_JWT_ERROR_UNKNOWN_KEY);

  {
    const char *headers[] = {
      "{\"alg\":\"RS256\"}",
      "{\"alg\":\"RS256\",\"kid\":null}",
      "{\"alg\":\"RS256\",\"kid\":42}",
      "{\"alg\":\"RS256\",\"kid\":\"\"}",
      "{\"alg\":\"RS256\",\"kid\":\"../../etc/passwd\"}",
    };

    for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
      {
        g_autofree char *t = make_token (headers[i], payload, parts[2]);

        assert_refused (set, t, FL_JWT_ERROR_UNKNOWN_KEY);
      }
  }

  /* Signed by a stranger's key but naming ours */
  {
    g_autofree char *header = kid_header ("RS256", fl_jwt_key_get_kid (key1));
    g_autofree char *forged = forge_rs256 (header, payload);

    assert_refused (set, forged, FL_JWT_ERROR_SIGNATURE);
  }

  /* Header keys that name keys by other means are never used */
  {
    g_autoptr (JsonNode) jwk = fl_jwt_key_to_jwk (key2);
    g_autofree char     *jwk_text = json_to_string (jwk, FALSE);
    g_autofree char     *header = g_strdup_printf ("{\"alg\":\"RS256\",\"jwk\":%s,\"jku\":\"http://evil/\"}", jwk_text);
    g_autofree char     *forged = forge_rs256 (header, payload);

    assert_refused (set, forged, FL_JWT_ERROR_UNKNOWN_KEY);
  }
}

static void
test_tampered_payload (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autofree char        *token = sign_valid (key1);
  g_auto (GStrv)          parts = g_strsplit (token, ".", -1);
  g_autofree guint8      *payload = NULL;
  gsize                   len;

  /* new claims, old header and signature */
  {
    g_autoptr (JsonObject) claims = claims_new (now_s () + 600);
    g_autoptr (JsonNode)   node = json_node_new (JSON_NODE_OBJECT);
    g_autofree char       *text = NULL;
    g_autofree char       *p = NULL;
    g_autofree char       *t = NULL;

    json_object_set_string_member (claims, "sub", "admin");
    json_node_set_object (node, claims);
    text = json_to_string (node, FALSE);
    p = b64 (text);
    t = g_strdup_printf ("%s.%s.%s", parts[0], p, parts[2]);
    assert_refused (set, t, FL_JWT_ERROR_SIGNATURE);
  }

  /* one changed character anywhere in the payload */
  payload = fl_base64url_decode (parts[1], &len);
  g_assert_nonnull (payload);
  for (gsize i = 0; i < strlen (parts[1]); i++)
    {
      g_autofree char *copy = g_strdup (token);
      char            *c = copy + strlen (parts[0]) + 1 + i;

      *c = *c == 'A' ? 'B' : 'A';
      assert_refused_any (set, copy);
    }

  /* a different header (same key) */
  {
    g_autofree char *header = g_strdup_printf ("{\"alg\":\"RS256\",\"kid\":\"%s\"}", fl_jwt_key_get_kid (key1));
    g_autofree char *h = b64 (header);
    g_autofree char *t = g_strdup_printf ("%s.%s.%s", h, parts[1], parts[2]);

    assert_refused (set, t, FL_JWT_ERROR_SIGNATURE);
  }
}

static void
test_tampered_signature (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autofree char        *token = sign_valid (key1);
  g_autofree char        *other = sign_valid (key2);
  g_auto (GStrv)          parts = g_strsplit (token, ".", -1);
  g_auto (GStrv)          other_parts = g_strsplit (other, ".", -1);
  g_autofree guint8      *sig = NULL;
  gsize                   sig_len;

  sig = fl_base64url_decode (parts[2], &sig_len);
  g_assert_cmpuint (sig_len, ==, 256);

  /* each bit of the first, middle and last bytes */
  for (guint pos = 0; pos < 3; pos++)
    {
      gsize byte = pos == 0 ? 0 : pos == 1 ? sig_len / 2
                                           : sig_len - 1;

      for (guint bit = 0; bit < 8; bit++)
        {
          g_autofree guint8 *copy = g_memdup2 (sig, sig_len);
          g_autofree char   *s = NULL;
          g_autofree char   *t = NULL;

          copy[byte] ^= 1u << bit;
          s = fl_base64url_encode (copy, sig_len);
          t = g_strdup_printf ("%s.%s.%s", parts[0], parts[1], s);
          assert_refused (set, t, FL_JWT_ERROR_SIGNATURE);
        }
    }

  /* too short, too long, zero, another key's */
  {
    g_autofree char   *shorter = fl_base64url_encode (sig, sig_len - 1);
    g_autofree guint8 *longer_raw = g_malloc0 (sig_len + 1);
    g_autofree char   *longer = NULL;
    g_autofree guint8 *zero_raw = g_malloc0 (sig_len);
    g_autofree char   *zero = fl_base64url_encode (zero_raw, sig_len);
    const char        *sigs[4];

    memcpy (longer_raw + 1, sig, sig_len);
    longer = fl_base64url_encode (longer_raw, sig_len + 1);
    sigs[0] = shorter;
    sigs[1] = longer;
    sigs[2] = zero;
    sigs[3] = other_parts[2];

    for (guint i = 0; i < G_N_ELEMENTS (sigs); i++)
      {
        g_autofree char *t = g_strdup_printf ("%s.%s.%s", parts[0], parts[1], sigs[i]);

        assert_refused (set, t, FL_JWT_ERROR_SIGNATURE);
      }
  }

  /* empty, padded, standard base64, non-canonical last character */
  {
    g_autofree char *padded = g_strdup_printf ("%s.%s.%s==", parts[0], parts[1], parts[2]);
    g_autofree char *empty = g_strdup_printf ("%s.%s.", parts[0], parts[1]);
    g_autofree char *std = g_strdup_printf ("%s.%s.%s", parts[0], parts[1], parts[2]);
    g_autofree char *noncanon = g_strdup (token);
    char            *last = noncanon + strlen (noncanon) - 1;

    g_strdelimit (std + strlen (parts[0]) + strlen (parts[1]) + 2, "-", '+');
    g_strdelimit (std + strlen (parts[0]) + strlen (parts[1]) + 2, "_", '/');

    /* 256 bytes → 342 characters, the last carrying 2 unused bits */
    *last = *last == 'A' ? 'B' : (*last == 'B' ? 'A' : *last ^ 1);

    assert_refused (set, padded, FL_JWT_ERROR_MALFORMED);
    assert_refused (set, empty, FL_JWT_ERROR_MALFORMED);
    if (strcmp (std, token) != 0)
      assert_refused (set, std, FL_JWT_ERROR_MALFORMED);
    assert_refused_any (set, noncanon);
  }
}

static void
test_garbage (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autofree char        *token = sign_valid (key1);
  g_autofree char        *payload = valid_payload ();
  g_auto (GStrv)          parts = g_strsplit (token, ".", -1);
  g_autoptr (GRand)       rand = g_rand_new_with_seed (20240501);
  g_autoptr (GString)     deep = g_string_new ("{\"alg\":\"RS256\",\"x\":");
  g_autofree char        *deep_token = NULL;
  g_autofree char        *huge = NULL;
  static const char      *shapes[] = {
         "",
         ".",
         "..",
         "...",
         "....",
         "a",
         "a.b",
         "a.b.c",
         "a.b.c.d",
         "..c",
         "a..",
         ".b.",
         "e30.e30.",
         "e30.e30.e30",
         "e30..",
         "bnVsbA.e30.AA",
         "W10.e30.AA",
         "IiI.e30.AA",
         "MQ.e30.AA",
         "eyJ.eyJ.eyJ",
         "=.=.=",
         "e30=.e30=.AA==",
         " e30.e30.AA",
         "e30.e30.AA ",
         "e30\n.e30.AA",
         "\xc3\x28.e30.AA",
         "Bearer e30.e30.AA",
  };
  static const char *headers[] = {
    "null",
    "[]",
    "\"RS256\"",
    "1",
    "true",
    "{",
    "{\"alg\":\"RS256\"",
    "{\"alg\":\"RS256\",}",
    "{\"alg\":\"RS256\"}garbage",
    "\xff\xfe{}",
    "{\"alg\":\"RS\\u0000256\"}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    assert_refused_any (set, shapes[i]);

  for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
    {
      g_autofree char *t = make_token (headers[i], payload, parts[2]);

      assert_refused_any (set, t);
    }

  /* header with a NUL byte inside */
  {
    const guint8     raw[] = "{\"alg\":\"RS256\"}\0{}";
    g_autofree char *h = fl_base64url_encode (raw, sizeof raw - 1);
    g_autofree char *t = g_strdup_printf ("%s.%s.%s", h, parts[1], parts[2]);

    assert_refused_any (set, t);
  }

  /* nested far too deep for the parser to be asked */
  for (guint i = 0; i < 1500; i++)
    g_string_append_c (deep, '[');
  for (guint i = 0; i < 1500; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  deep_token = make_token (deep->str, payload, parts[2]);
  assert_refused (set, deep_token, FL_JWT_ERROR_MALFORMED);

  /* far too long */
  huge = g_strnfill (100000, 'A');
  huge[30000] = '.';
  huge[60000] = '.';
  assert_refused (set, huge, FL_JWT_ERROR_MALFORMED);

  /* every prefix of a valid token */
  for (gsize n = 0; n < strlen (token); n++)
    {
      g_autofree char *prefix = g_strndup (token, n);

      assert_refused_any (set, prefix);
    }

  /* random mutations: never accepted, never a crash */
  for (guint round = 0; round < 3000; round++)
    {
      g_autofree char       *copy = g_strdup (token);
      gsize                  len = strlen (copy);
      guint                  edits = g_rand_int_range (rand, 1, 4);
      g_autoptr (GError)     error = NULL;
      g_autoptr (JsonObject) claims = NULL;

      for (guint e = 0; e < edits; e++)
        {
          gsize at = g_rand_int_range (rand, 0, (gint32) len);

          switch (g_rand_int_range (rand, 0, 3))
            {
            case 0:
              copy[at] = (char) g_rand_int_range (rand, 1, 256);
              break;
            case 1:
              copy[at] = '.';
              break;
            default:
              copy[at] = '\0';
              len = at > 0 ? at : 1;
              break;
            }
        }

      claims = fl_jwt_verify (set, copy, now_s (), 0, &error);
      if (strcmp (copy, token) == 0)
        continue;
      g_assert_null (claims);
      g_assert_nonnull (error);
      g_assert_true (error->domain == FL_JWT_ERROR);
    }

  /* signed, but the payload is not an object */
  {
    g_autofree char   *header = kid_header ("RS256", fl_jwt_key_get_kid (key1));
    static const char *payloads[] = { "[]", "null", "42", "\"x\"", "{", "" };

    for (guint i = 0; i < G_N_ELEMENTS (payloads); i++)
      {
        /* Only raw_key can sign arbitrary payloads; make a set that
         * trusts it under key1's kid through a JWKS. */
        g_autoptr (FlJwtKeySet) trusting = fl_jwt_key_set_new ();
        g_autoptr (JsonNode)    jwks = NULL;
        g_autoptr (GError)      error = NULL;
        g_autofree char        *t = forge_rs256 (header, payloads[i]);
        gnutls_datum_t          m = { NULL, 0 }, e = { NULL, 0 };
        gnutls_pubkey_t         pub;
        g_autofree char        *n_b64 = NULL;
        g_autofree char        *e_b64 = NULL;
        g_autofree char        *text = NULL;

        g_assert_cmpint (gnutls_pubkey_init (&pub), ==, 0);
        g_assert_cmpint (gnutls_pubkey_import_privkey (pub, raw_key, 0, 0), ==, 0);
        g_assert_cmpint (gnutls_pubkey_export_rsa_raw2 (pub, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ), ==, 0);
        n_b64 = fl_base64url_encode (m.data, m.size);
        e_b64 = fl_base64url_encode (e.data, e.size);
        gnutls_free (m.data);
        gnutls_free (e.data);
        gnutls_pubkey_deinit (pub);
        text = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}]}",
                                fl_jwt_key_get_kid (key1), n_b64, e_b64);
        jwks = json_from_string (text, &error);
        g_assert_no_error (error);
        g_assert_true (fl_jwt_key_set_add_jwks (trusting, jwks, &error));
        g_assert_no_error (error);

        assert_refused (trusting, t, FL_JWT_ERROR_MALFORMED);
      }
  }
}

static void
test_expired (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  gint64                  now = now_s ();
  struct
  {
    gint64   exp;
    guint    leeway;
    gboolean ok;
  } cases[] = {
    { now - 3600, 0, FALSE },
    { now - 1, 0, FALSE },
    { now, 0, FALSE }, /* exp is the first invalid second */
    { now + 1, 0, TRUE },
    { now - 5, 10, TRUE },
    { now - 10, 10, FALSE },
    { G_MININT64, 0, FALSE },
    { G_MAXINT64, 0, TRUE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (JsonObject) claims = claims_new (cases[i].exp);
      g_autoptr (GError)     error = NULL;
      g_autofree char       *t = fl_jwt_sign (key1, claims, &error);
      g_autoptr (JsonObject) verified = NULL;

      g_assert_no_error (error);
      verified = fl_jwt_verify (set, t, now, cases[i].leeway, &error);
      if (cases[i].ok)
        {
          g_assert_no_error (error);
          g_assert_nonnull (verified);
        }
      else
        {
          g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_EXPIRED);
          g_assert_null (verified);
        }
    }

  /* exp must be there and be a number */
  {
    const char *bad[] = { "{\"sub\":\"x\"}", "{\"exp\":\"9999999999\"}", "{\"exp\":null}",
                          "{\"exp\":[1]}", "{\"exp\":true}", "{\"exp\":1e300}", "{\"exp\":{}}" };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autoptr (GError)     error = NULL;
        g_autoptr (JsonNode)   node = json_from_string (bad[i], &error);
        g_autoptr (JsonObject) verified = NULL;
        g_autofree char       *t = NULL;

        g_assert_no_error (error);
        t = fl_jwt_sign (key1, json_node_get_object (node), &error);
        g_assert_no_error (error);
        verified = fl_jwt_verify (set, t, now, 0, &error);
        g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_CLAIMS);
        g_assert_null (verified);
      }
  }

  /* a fractional exp is fine */
  {
    g_autoptr (JsonObject) claims = claims_new (0);
    g_autoptr (GError)     error = NULL;
    g_autofree char       *t = NULL;
    g_autoptr (JsonObject) verified = NULL;

    json_object_set_double_member (claims, "exp", (double) now + 60.5);
    t = fl_jwt_sign (key1, claims, &error);
    verified = fl_jwt_verify (set, t, now, 0, &error);
    g_assert_no_error (error);
    g_assert_nonnull (verified);
  }
}

static void
test_nbf (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  gint64                  now = now_s ();
  struct
  {
    gint64   nbf;
    guint    leeway;
    gboolean ok;
  } cases[] = {
    { now + 100, 0, FALSE },
    { now + 1, 0, FALSE },
    { now, 0, TRUE },
    { now - 100, 0, TRUE },
    { now + 100, 200, TRUE },
    { G_MAXINT64, 0, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (JsonObject) claims = claims_new (now + 600);
      g_autoptr (GError)     error = NULL;
      g_autofree char       *t = NULL;
      g_autoptr (JsonObject) verified = NULL;

      json_object_set_int_member (claims, "nbf", cases[i].nbf);
      t = fl_jwt_sign (key1, claims, &error);
      g_assert_no_error (error);
      verified = fl_jwt_verify (set, t, now, cases[i].leeway, &error);
      if (cases[i].ok)
        {
          g_assert_no_error (error);
          g_assert_nonnull (verified);
        }
      else
        {
          g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_NOT_YET_VALID);
          g_assert_null (verified);
        }
    }

  {
    g_autoptr (JsonObject) claims = claims_new (now + 600);
    g_autoptr (GError)     error = NULL;
    g_autofree char       *t = NULL;
    g_autoptr (JsonObject) verified = NULL;

    json_object_set_string_member (claims, "nbf", "soon");
    t = fl_jwt_sign (key1, claims, &error);
    verified = fl_jwt_verify (set, t, now, 0, &error);
    g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_CLAIMS);
    g_assert_null (verified);
  }
}

/* RFC 7638, recomputed here independently of fl-jwt.c */
static char *
thumbprint (const char *n_b64,
            const char *e_b64)
{
  g_autofree char      *canon = g_strdup_printf ("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e_b64, n_b64);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8                digest[32];
  gsize                 len = sizeof digest;

  g_checksum_update (sum, (const guchar *) canon, -1);
  g_checksum_get_digest (sum, digest, &len);

  return fl_base64url_encode (digest, len);
}

static void
test_jwks (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autoptr (FlJwtKeySet) imported = fl_jwt_key_set_new ();
  g_autoptr (JsonNode)    jwks = NULL;
  g_autoptr (JsonNode)    reparsed = NULL;
  g_autoptr (JsonNode)    again = NULL;
  g_autoptr (GError)      error = NULL;
  g_autofree char        *text = NULL;
  g_autofree char        *text2 = NULL;
  g_autofree char        *t1 = sign_valid (key1);
  g_autofree char        *t2 = sign_valid (key2);
  JsonArray              *keys;

  fl_jwt_key_set_add_key (set, key2);
  jwks = fl_jwt_key_set_to_jwks (set);
  text = json_to_string (jwks, FALSE);
  reparsed = json_from_string (text, &error);
  g_assert_no_error (error);

  keys = json_object_get_array_member (json_node_get_object (reparsed), "keys");
  g_assert_cmpuint (json_array_get_length (keys), ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      JsonObject        *jwk = json_array_get_object_element (keys, i);
      FlJwtKey          *key = i == 0 ? key1 : key2;
      g_autofree guint8 *n = NULL;
      g_autofree char   *tp = NULL;
      gsize              n_len;

      g_assert_cmpstr (json_object_get_string_member (jwk, "kty"), ==, "RSA");
      g_assert_cmpstr (json_object_get_string_member (jwk, "alg"), ==, "RS256");
      g_assert_cmpstr (json_object_get_string_member (jwk, "use"), ==, "sig");
      g_assert_cmpstr (json_object_get_string_member (jwk, "e"), ==, "AQAB");
      g_assert_cmpstr (json_object_get_string_member (jwk, "kid"), ==, fl_jwt_key_get_kid (key));
      g_assert_false (json_object_has_member (jwk, "d"));
      g_assert_false (json_object_has_member (jwk, "p"));
      n = fl_base64url_decode (json_object_get_string_member (jwk, "n"), &n_len);
      g_assert_cmpuint (n_len, ==, 256);
      g_assert_cmpuint (n[0] & 0x80, !=, 0);
      tp = thumbprint (json_object_get_string_member (jwk, "n"), json_object_get_string_member (jwk, "e"));
      g_assert_cmpstr (tp, ==, fl_jwt_key_get_kid (key));
      g_assert_cmpuint (strlen (tp), ==, 43);
    }
  g_assert_cmpstr (fl_jwt_key_get_kid (key1), !=, fl_jwt_key_get_kid (key2));

  g_assert_true (fl_jwt_key_set_add_jwks (imported, reparsed, &error));
  g_assert_no_error (error);

  {
    g_autoptr (JsonObject) c1 = fl_jwt_verify (imported, t1, now_s (), 0, &error);

    g_assert_no_error (error);
    g_assert_nonnull (c1);
  }
  {
    g_autoptr (JsonObject) c2 = fl_jwt_verify (imported, t2, now_s (), 0, &error);

    g_assert_no_error (error);
    g_assert_nonnull (c2);
  }

  /* and out again the same */
  again = fl_jwt_key_set_to_jwks (imported);
  text2 = json_to_string (again, FALSE);
  g_assert_cmpstr (text2, ==, text);

  /* single JWK */
  {
    g_autoptr (JsonNode) jwk = fl_jwt_key_to_jwk (key1);
    JsonObject          *obj = json_node_get_object (jwk);

    g_assert_cmpstr (json_object_get_string_member (obj, "kid"), ==, fl_jwt_key_get_kid (key1));
    g_assert_cmpuint (json_object_get_size (obj), ==, 6);
  }
}

static void
test_jwks_bad (void)
{
  g_autoptr (JsonNode) good = fl_jwt_key_to_jwk (key1);
  g_autofree char     *good_text = json_to_string (good, FALSE);
  JsonObject          *g = json_node_get_object (good);
  const char          *n = json_object_get_string_member (g, "n");
  g_autofree char     *small_n = g_strndup (n, 171); /* 1024 bits */
  g_autofree char     *bad_small = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", small_n);
  g_autofree char     *bad_e = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"%s\",\"e\":\"AQ\"}]}", n);
  g_autofree char     *bad_e2 = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"%s\",\"e\":\"AAAAAAAAAAAAAAAAAAAB\"}]}", n);
  g_autofree char     *bad_n = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"s\",\"n\":\"%s+\",\"e\":\"AQAB\"}]}", n);
  g_autofree char     *no_kid = g_strdup_printf ("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", n);
  g_autofree char     *mixed = g_strdup_printf ("{\"keys\":[%s, 7]}", good_text);
  g_autofree char     *skipped = g_strdup_printf ("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\"},"
                                                      "{\"kty\":\"RSA\",\"alg\":\"RS512\",\"kid\":\"r5\",\"n\":\"%s\",\"e\":\"AQAB\"},"
                                                      "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"en\",\"n\":\"%s\",\"e\":\"AQAB\"},%s]}",
                                                  n, n, good_text);
  const char          *bad[] = {
             "[]",
             "{}",
             "{\"keys\":{}}",
             "{\"keys\":[1]}",
             "{\"keys\":[{}]}",
             "{\"keys\":[{\"kty\":\"RSA\"}]}",
             bad_small,
             bad_e,
             bad_e2,
             bad_n,
             no_kid,
             mixed,
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (FlJwtKeySet) set = fl_jwt_key_set_new ();
      g_autoptr (GError)      error = NULL;
      g_autoptr (JsonNode)    node = json_from_string (bad[i], &error);
      g_autoptr (JsonNode)    out = NULL;

      g_assert_no_error (error);
      g_assert_false (fl_jwt_key_set_add_jwks (set, node, &error));
      g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
      /* all or nothing */
      out = fl_jwt_key_set_to_jwks (set);
      g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (out), "keys")), ==, 0);
    }

  {
    g_autoptr (FlJwtKeySet) set = fl_jwt_key_set_new ();
    g_autoptr (GError)      error = NULL;
    g_autoptr (JsonNode)    node = json_from_string (skipped, &error);
    g_autoptr (JsonNode)    out = NULL;
    g_autofree char        *t = sign_valid (key1);
    g_autoptr (JsonObject)  claims = NULL;

    g_assert_true (fl_jwt_key_set_add_jwks (set, node, &error));
    g_assert_no_error (error);
    out = fl_jwt_key_set_to_jwks (set);
    g_assert_cmpuint (json_array_get_length (json_object_get_array_member (json_node_get_object (out), "keys")), ==, 1);
    claims = fl_jwt_verify (set, t, now_s (), 0, &error);
    g_assert_no_error (error);
  }

  {
    g_autoptr (FlJwtKeySet) set = fl_jwt_key_set_new ();
    g_autoptr (GError)      error = NULL;

    g_assert_false (fl_jwt_key_set_add_jwks (set, NULL, &error));
    g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
  }
}

static void
test_load_or_create (void)
{
  g_autoptr (GError)   error = NULL;
  g_autofree char     *dir = g_dir_make_tmp ("fl-jwt-XXXXXX", &error);
  g_autofree char     *path = g_build_filename (dir, "keys", "signing.pem", NULL);
  g_autofree char     *keys_dir = g_build_filename (dir, "keys", NULL);
  g_autofree char     *kid = NULL;
  g_autofree char     *contents = NULL;
  g_autoptr (FlJwtKey) a = NULL;
  g_autoptr (FlJwtKey) b = NULL;
  g_autoptr (GDir)     listing = NULL;
  GStatBuf             st;
  guint                n_files = 0;

  g_assert_no_error (error);

  a = fl_jwt_key_load_or_create (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (a);
  kid = g_strdup (fl_jwt_key_get_kid (a));

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (g_stat (keys_dir, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 0077, ==, 0);

  g_assert_true (g_file_get_contents (path, &contents, NULL, &error));
  g_assert_true (g_str_has_prefix (contents, "-----BEGIN PRIVATE KEY-----"));

  /* no temporary files left behind */
  listing = g_dir_open (keys_dir, 0, &error);
  g_assert_no_error (error);
  while (g_dir_read_name (listing) != NULL)
    n_files++;
  g_assert_cmpuint (n_files, ==, 1);

  b = fl_jwt_key_load_or_create (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_jwt_key_get_kid (b), ==, kid);

  /* a key loaded from disk signs what the first one verifies */
  {
    g_autoptr (FlJwtKeySet) set = set_with (a);
    g_autofree char        *t = sign_valid (b);
    g_autoptr (JsonObject)  claims = fl_jwt_verify (set, t, now_s (), 0, &error);

    g_assert_no_error (error);
    g_assert_nonnull (claims);
  }

  /* a damaged key file is an error, and is left alone */
  {
    g_autofree char     *bad = g_build_filename (dir, "bad.pem", NULL);
    g_autofree char     *after = NULL;
    g_autoptr (FlJwtKey) c = NULL;

    g_assert_true (g_file_set_contents_full (bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                                             -1, G_FILE_SET_CONTENTS_NONE, 0600, &error));
    c = fl_jwt_key_load_or_create (bad, &error);
    g_assert_null (c);
    g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
    g_clear_error (&error);
    g_assert_true (g_file_get_contents (bad, &after, NULL, NULL));
    g_assert_true (g_str_has_prefix (after, "-----BEGIN PRIVATE KEY-----\nAAAA"));
    g_unlink (bad);
  }

  /* too small a key is refused */
  {
    g_autoptr (FlJwtKey) small = fl_jwt_key_generate (1024, &error);

    g_assert_null (small);
    g_assert_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY);
    g_clear_error (&error);
  }

  g_unlink (path);
  g_rmdir (keys_dir);
  g_rmdir (dir);
}

typedef struct
{
  FlJwtKeySet *set;
  const char  *token;
  guint        ok;
} ThreadData;

static gpointer
thread_func (gpointer user_data)
{
  ThreadData *data = user_data;

  for (guint i = 0; i < 50; i++)
    {
      g_autoptr (GError)     error = NULL;
      g_autoptr (JsonObject) claims = fl_jwt_verify (data->set, data->token, now_s (), 0, &error);
      g_autofree char       *t = sign_valid (key1);

      if (claims != NULL && t != NULL)
        data->ok++;
    }

  return NULL;
}

static void
test_threads (void)
{
  g_autoptr (FlJwtKeySet) set = set_with (key1);
  g_autofree char        *token = sign_valid (key1);
  ThreadData              data[4];
  GThread                *threads[4];

  for (guint i = 0; i < 4; i++)
    {
      data[i] = (ThreadData){ set, token, 0 };
      threads[i] = g_thread_new ("verify", thread_func, &data[i]);
    }
  for (guint i = 0; i < 4; i++)
    {
      g_thread_join (threads[i]);
      g_assert_cmpuint (data[i].ok, ==, 50);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GError)    error = NULL;
  gnutls_x509_privkey_t x509;
  int                   ret;

  g_test_init (&argc, &argv, NULL);

  key1 = fl_jwt_key_generate (2048, &error);
  g_assert_no_error (error);
  key2 = fl_jwt_key_generate (0, &error);
  g_assert_no_error (error);

  g_assert_cmpint (gnutls_x509_privkey_init (&x509), ==, 0);
  g_assert_cmpint (gnutls_x509_privkey_generate (x509, GNUTLS_PK_RSA, 2048, 0), ==, 0);
  g_assert_cmpint (gnutls_privkey_init (&raw_key), ==, 0);
  g_assert_cmpint (gnutls_privkey_import_x509 (raw_key, x509, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE), ==, 0);

  g_test_add_func ("/fieldline/jwt/base64url", test_base64url);
  g_test_add_func ("/fieldline/jwt/round-trip", test_round_trip);
  g_test_add_func ("/fieldline/jwt/alg-none", test_alg_none);
  g_test_add_func ("/fieldline/jwt/alg-hs256", test_alg_hs256);
  g_test_add_func ("/fieldline/jwt/unknown-kid", test_unknown_kid);
  g_test_add_func ("/fieldline/jwt/tampered-payload", test_tampered_payload);
  g_test_add_func ("/fieldline/jwt/tampered-signature", test_tampered_signature);
  g_test_add_func ("/fieldline/jwt/garbage", test_garbage);
  g_test_add_func ("/fieldline/jwt/expired", test_expired);
  g_test_add_func ("/fieldline/jwt/nbf", test_nbf);
  g_test_add_func ("/fieldline/jwt/jwks", test_jwks);
  g_test_add_func ("/fieldline/jwt/jwks-bad", test_jwks_bad);
  g_test_add_func ("/fieldline/jwt/load-or-create", test_load_or_create);
  g_test_add_func ("/fieldline/jwt/threads", test_threads);

  ret = g_test_run ();

  fl_jwt_key_free (key1);
  fl_jwt_key_free (key2);
  gnutls_privkey_deinit (raw_key);

  return ret;
}
