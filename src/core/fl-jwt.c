/* fl-jwt.c: RS256 JSON Web Tokens (RFC 7515/7519) and JWKS (RFC 7517),
 * on GnuTLS.
 *
 * Everything in a token is outside input: its length, its three parts,
 * their base64url, their JSON and every claim are checked before use, and a
 * bad token gets a GError, never an assertion.  Only RS256 is accepted; a
 * header's "jku", "jwk", "x5u" and "x5c" are never used to find a key.
 */
#define G_LOG_DOMAIN "fl-jwt"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "fl-jwt.h"

/* Cognito's tokens are 1-2 KiB; anything far larger is not ours. */
#define MAX_TOKEN_LEN 16384
#define MAX_HEADER_LEN 2048 /* decoded header bytes */
#define MAX_JSON_DEPTH 32
#define MAX_KEY_FILE_SIZE 65536
#define MIN_RSA_BITS 2048
#define MAX_RSA_BITS 8192
#define DEFAULT_RSA_BITS 2048

/* clang-format off */
G_DEFINE_QUARK (fl-jwt-error-quark, fl_jwt_error)
/* clang-format on */

/* ------------------------------------------------------------------ */
/* base64url                                                           */

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* byte → 6-bit value, or -1 for bytes outside the alphabet */
static gint8 b64url_table[256];

static void
b64url_table_init (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      memset (b64url_table, -1, sizeof b64url_table);
      for (guint i = 0; i < 64; i++)
        b64url_table[(guint8) b64url_alphabet[i]] = (gint8) i;
      g_once_init_leave (&initialized, 1);
    }
}

/**
 * fl_base64url_encode:
 *
 * Returns: (transfer full): @data in base64url, without padding
 */
char *
fl_base64url_encode (const guint8 *data,
                     gsize         len)
{
  char *out;
  char *p;
  gsize i;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (len < G_MAXSIZE / 2, NULL);

  out = g_malloc ((len + 2) / 3 * 4 + 1);
  p = out;

  for (i = 0; i + 3 <= len; i += 3)
    {
      guint32 v = ((guint32) data[i] << 16) | ((guint32) data[i + 1] << 8) | data[i + 2];

      *p++ = b64url_alphabet[(v >> 18) & 0x3f];
      *p++ = b64url_alphabet[(v >> 12) & 0x3f];
      *p++ = b64url_alphabet[(v >> 6) & 0x3f];
      *p++ = b64url_alphabet[v & 0x3f];
    }

  if (len - i == 1)
    {
      guint32 v = (guint32) data[i] << 16;

      *p++ = b64url_alphabet[(v >> 18) & 0x3f];
      *p++ = b64url_alphabet[(v >> 12) & 0x3f];
    }
  else if (len - i == 2)
    {
      guint32 v = ((guint32) data[i] << 16) | ((guint32) data[i + 1] << 8);

      *p++ = b64url_alphabet[(v >> 18) & 0x3f];
      *p++ = b64url_alphabet[(v >> 12) & 0x3f];
      *p++ = b64url_alphabet[(v >> 6) & 0x3f];
    }

  *p = '\0';

  return out;
}

/* Strict: only the 64 alphabet characters, no padding, no whitespace, and
 * the unused low bits of the last character must be zero, so that each
 * byte string has exactly one encoding.  The result is NUL-terminated
 * (not counted in out_len).  Returns NULL if text is not base64url. */
static guint8 *
b64url_decode_len (const char *text,
                   gsize       len,
                   gsize      *out_len)
{
  g_autofree guint8 *out = NULL;
  gsize              n = 0;
  gsize              i;
  gsize              rem = len % 4;

  b64url_table_init ();

  if (rem == 1)
    return NULL;

  out = g_malloc (len / 4 * 3 + 3 + 1);

  for (i = 0; i + 4 <= len; i += 4)
    {
      gint8   a = b64url_table[(guint8) text[i]];
      gint8   b = b64url_table[(guint8) text[i + 1]];
      gint8   c = b64url_table[(guint8) text[i + 2]];
      gint8   d = b64url_table[(guint8) text[i + 3]];
      guint32 v;

      if ((a | b | c | d) < 0)
        return NULL;

      v = ((guint32) a << 18) | ((guint32) b << 12) | ((guint32) c << 6) | (guint32) d;
      out[n++] = (v >> 16) & 0xff;
      out[n++] = (v >> 8) & 0xff;
      out[n++] = v & 0xff;
    }

  if (rem == 2)
    {
      gint8 a = b64url_table[(guint8) text[i]];
      gint8 b = b64url_table[(guint8) text[i + 1]];

      if ((a | b) < 0 || (b & 0x0f) != 0)
        return NULL;
      out[n++] = (guint8) ((a << 2) | (b >> 4));
    }
  else if (rem == 3)
    {
      gint8 a = b64url_table[(guint8) text[i]];
      gint8 b = b64url_table[(guint8) text[i + 1]];
      gint8 c = b64url_table[(guint8) text[i + 2]];

      if ((a | b | c) < 0 || (c & 0x03) != 0)
        return NULL;
      out[n++] = (guint8) ((a << 2) | (b >> 4));
      out[n++] = (guint8) (((b & 0x0f) << 4) | (c >> 2));
    }

  out[n] = 0;
  if (out_len != NULL)
    *out_len = n;

  return g_steal_pointer (&out);
}

/**
 * fl_base64url_decode:
 * @out_len: (out) (optional): the number of bytes decoded
 *
 * Decodes unpadded base64url strictly (see b64url_decode_len).
 *
 * Returns: (transfer full) (nullable): the bytes, NUL-terminated for
 *   convenience, or NULL if @text is not valid base64url
 */
guint8 *
fl_base64url_decode (const char *text,
                     gsize      *out_len)
{
  g_return_val_if_fail (text != NULL, NULL);

  return b64url_decode_len (text, strlen (text), out_len);
}

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void
datum_clear (gnutls_datum_t *d)
{
  if (d->data != NULL)
    gnutls_free (d->data);
  d->data = NULL;
  d->size = 0;
}

static void
datum_clear_secret (gnutls_datum_t *d)
{
  if (d->data != NULL)
    gnutls_memset (d->data, 0, d->size);
  datum_clear (d);
}

/* Strips leading zero bytes, as JWK's "n" and "e" want. */
static char *
b64url_encode_unsigned (const gnutls_datum_t *d)
{
  guint off = 0;

  while (off + 1 < d->size && d->data[off] == 0)
    off++;

  return fl_base64url_encode (d->data + off, d->size - off);
}

/* RFC 7638 thumbprint of an RSA public key: SHA-256 over the required
 * members in lexicographic order, without whitespace. */
static char *
rsa_thumbprint (const char *n_b64,
                const char *e_b64)
{
  g_autofree char *canonical = NULL;
  guint8           digest[32];

  canonical = g_strdup_printf ("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e_b64, n_b64);
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, canonical, strlen (canonical), digest) < 0)
    return NULL;

  return fl_base64url_encode (digest, sizeof digest);
}

/* Rejects JSON nested deeper than max_depth before a parser sees it; a
 * header is parsed before its signature is checked. */
static gboolean
json_nesting_ok (const guint8 *data,
                 gsize         len,
                 guint         max_depth)
{
  guint    depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      guint8 c = data[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }

      if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > max_depth)
            return FALSE;
        }
      else if (c == '}' || c == ']')
        {
          if (depth == 0)
            return FALSE;
          depth--;
        }
    }

  return TRUE;
}

/* Decodes one base64url part of a token and parses it as a JSON object. */
static JsonObject *
decode_json_part (const char *part,
                  gsize       len,
                  gsize       max_decoded,
                  const char *what,
                  GError    **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (JsonNode)   root = NULL;
  g_autoptr (GError)     local_error = NULL;
  g_autofree guint8     *raw = NULL;
  gsize                  raw_len = 0;

  if (len == 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "Empty %s", what);
      return NULL;
    }

  raw = b64url_decode_len (part, len, &raw_len);
  if (raw == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The %s is not base64url", what);
      return NULL;
    }

  if (raw_len > max_decoded)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The %s is too large", what);
      return NULL;
    }

  if (!g_utf8_validate ((const char *) raw, raw_len, NULL) || !json_nesting_ok (raw, raw_len, MAX_JSON_DEPTH))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The %s is not a JSON object", what);
      return NULL;
    }

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) raw, (gssize) raw_len, &local_error))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The %s is not JSON", what);
      return NULL;
    }

  root = json_parser_steal_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The %s is not a JSON object", what);
      return NULL;
    }

  return json_node_dup_object (root);
}

/* A NumericDate claim (RFC 7519 §2): a JSON number of seconds. */
static gboolean
get_numeric_date (JsonObject *claims,
                  const char *name,
                  gboolean   *present,
                  gint64     *value,
                  GError    **error)
{
  JsonNode *node = json_object_get_member (claims, name);

  *present = FALSE;
  if (node == NULL)
    return TRUE;

  if (JSON_NODE_HOLDS_VALUE (node))
    {
      GType type = json_node_get_value_type (node);

      if (type == G_TYPE_INT64)
        {
          *value = json_node_get_int (node);
          *present = TRUE;
          return TRUE;
        }
      if (type == G_TYPE_DOUBLE)
        {
          double d = json_node_get_double (node);

          /* within ±2^53 s, i.e. any date that means something */
          if (isfinite (d) && d > -9007199254740992.0 && d < 9007199254740992.0)
            {
              *value = (gint64) floor (d);
              *present = TRUE;
              return TRUE;
            }
        }
    }

  g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_CLAIMS, "The claim \"%s\" is not a number", name);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* FlJwtKey                                                            */

struct _FlJwtKey
{
  GMutex           lock; /* a GnuTLS object is used by one thread at a time */
  gnutls_privkey_t privkey;
  gnutls_pubkey_t  pubkey;
  char            *kid;
  char            *n_b64;
  char            *e_b64;
  char            *header_b64; /* base64url of {"kid":...,"alg":"RS256"} */
};

void
fl_jwt_key_free (FlJwtKey *key)
{
  if (key == NULL)
    return;

  g_clear_pointer (&key->privkey, gnutls_privkey_deinit);
  g_clear_pointer (&key->pubkey, gnutls_pubkey_deinit);
  g_clear_pointer (&key->kid, g_free);
  g_clear_pointer (&key->n_b64, g_free);
  g_clear_pointer (&key->e_b64, g_free);
  g_clear_pointer (&key->header_b64, g_free);
  g_mutex_clear (&key->lock);
  g_free (key);
}

/* Takes ownership of x509 in every case. */
static FlJwtKey *
key_from_x509 (gnutls_x509_privkey_t x509,
               GError              **error)
{
  g_autoptr (FlJwtKey)      key = NULL;
  g_autoptr (JsonBuilder)   builder = NULL;
  g_autoptr (JsonGenerator) gen = NULL;
  g_autoptr (JsonNode)      header = NULL;
  g_autofree char          *header_json = NULL;
  gnutls_datum_t            m = { NULL, 0 };
  gnutls_datum_t            e = { NULL, 0 };
  unsigned int              bits = 0;
  int                       algo;
  int                       ret;

  algo = gnutls_x509_privkey_get_pk_algorithm2 (x509, &bits);
  if (algo != GNUTLS_PK_RSA || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)
    {
      gnutls_x509_privkey_deinit (x509);
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "Not an RSA key of %u to %u bits", MIN_RSA_BITS, MAX_RSA_BITS);
      return NULL;
    }

  key = g_new0 (FlJwtKey, 1);
  g_mutex_init (&key->lock);

  if ((ret = gnutls_privkey_init (&key->privkey)) < 0)
    {
      gnutls_x509_privkey_deinit (x509);
      goto gnutls_failed;
    }

  if ((ret = gnutls_privkey_import_x509 (key->privkey, x509, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0)
    {
      gnutls_x509_privkey_deinit (x509);
      goto gnutls_failed;
    }

  if ((ret = gnutls_pubkey_init (&key->pubkey)) < 0 || (ret = gnutls_pubkey_import_privkey (key->pubkey, key->privkey, GNUTLS_KEY_DIGITAL_SIGNATURE, 0)) < 0 || (ret = gnutls_pubkey_export_rsa_raw2 (key->pubkey, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ)) < 0)
    goto gnutls_failed;

  key->n_b64 = b64url_encode_unsigned (&m);
  key->e_b64 = b64url_encode_unsigned (&e);
  datum_clear (&m);
  datum_clear (&e);

  key->kid = rsa_thumbprint (key->n_b64, key->e_b64);
  if (key->kid == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Could not hash the public key");
      return NULL;
    }

  /* Cognito's header order: kid, then alg */
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "kid");
  json_builder_add_string_value (builder, key->kid);
  json_builder_set_member_name (builder, "alg");
  json_builder_add_string_value (builder, "RS256");
  json_builder_end_object (builder);
  header = json_builder_get_root (builder);
  gen = json_generator_new ();
  json_generator_set_root (gen, header);
  header_json = json_generator_to_data (gen, NULL);
  key->header_b64 = fl_base64url_encode ((const guint8 *) header_json, strlen (header_json));

  return g_steal_pointer (&key);

gnutls_failed:
  datum_clear (&m);
  datum_clear (&e);
  g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Key error: %s", gnutls_strerror (ret));
  return NULL;
}

/**
 * fl_jwt_key_generate:
 * @bits: the RSA modulus size: 2048 to 8192, or 0 for 2048
 *
 * Returns: (transfer full): a new signing key
 */
FlJwtKey *
fl_jwt_key_generate (guint    bits,
                     GError **error)
{
  gnutls_x509_privkey_t x509 = NULL;
  int                   ret;

  if (bits == 0)
    bits = DEFAULT_RSA_BITS;

  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "RSA keys must have %u to %u bits", MIN_RSA_BITS, MAX_RSA_BITS);
      return NULL;
    }

  if ((ret = gnutls_x509_privkey_init (&x509)) < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Key error: %s", gnutls_strerror (ret));
      return NULL;
    }

  if ((ret = gnutls_x509_privkey_generate (x509, GNUTLS_PK_RSA, bits, 0)) < 0)
    {
      gnutls_x509_privkey_deinit (x509);
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "Could not generate an RSA key: %s", gnutls_strerror (ret));
      return NULL;
    }

  return key_from_x509 (x509, error);
}

static FlJwtKey *
key_from_pem (const char *pem,
              gsize       len,
              const char *path,
              GError    **error)
{
  gnutls_x509_privkey_t x509 = NULL;
  gnutls_datum_t        d;
  int                   ret;

  if ((ret = gnutls_x509_privkey_init (&x509)) < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Key error: %s", gnutls_strerror (ret));
      return NULL;
    }

  d.data = (unsigned char *) pem;
  d.size = (unsigned int) len;
  /* PKCS#8 (what we write) or PKCS#1, unencrypted */
  ret = gnutls_x509_privkey_import2 (x509, &d, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
  if (ret < 0)
    {
      gnutls_x509_privkey_deinit (x509);
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "%s is not a PEM private key: %s", path, gnutls_strerror (ret));
      return NULL;
    }

  return key_from_x509 (x509, error);
}

static FlJwtKey *
key_load (const char *path,
          GError    **error)
{
  g_autofree char *contents = NULL;
  GStatBuf         st;
  gsize            len = 0;
  FlJwtKey        *key;
  int              saved_errno;
  int              fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not open %s: %s", path, g_strerror (saved_errno));
      return NULL;
    }

  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || st.st_size > MAX_KEY_FILE_SIZE)
    {
      close (fd);
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "%s is not a key file", path);
      return NULL;
    }

  if ((st.st_mode & 077) != 0)
    g_warning ("Signing key %s can be read by other users; chmod 600 it", path);

  contents = g_malloc (st.st_size + 1);
  while (len < (gsize) st.st_size)
    {
      gssize n = read (fd, contents + len, st.st_size - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          saved_errno = n < 0 ? errno : EIO;
          close (fd);
          gnutls_memset (contents, 0, st.st_size);
          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                       "Could not read %s: %s", path, g_strerror (saved_errno));
          return NULL;
        }
      len += n;
    }
  close (fd);
  contents[len] = '\0';

  key = key_from_pem (contents, len, path, error);
  gnutls_memset (contents, 0, len);

  return key;
}

static gboolean
write_all (int           fd,
           const guint8 *data,
           gsize         len)
{
  while (len > 0)
    {
      gssize n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      len -= n;
    }

  return TRUE;
}

static void
fsync_dir (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int              fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

  if (fd >= 0)
    {
      fsync (fd);
      close (fd);
    }
}

/* Writes a new key next to path (mode 0600), then link()s it into place,
 * which fails instead of replacing a key another process made first.
 * Returns FALSE with *exists set if path appeared meanwhile. */
static gboolean
key_write_new (FlJwtKey   *key,
               const char *path,
               gboolean   *exists,
               GError    **error)
{
  gnutls_x509_privkey_t x509 = NULL;
  gnutls_datum_t        pem = { NULL, 0 };
  g_autofree char      *tmp = NULL;
  int                   saved_errno = 0;
  int                   ret;
  int                   fd;

  *exists = FALSE;

  g_mutex_lock (&key->lock);
  ret = gnutls_privkey_export_x509 (key->privkey, &x509);
  g_mutex_unlock (&key->lock);
  if (ret >= 0)
    ret = gnutls_x509_privkey_export2_pkcs8 (x509, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &pem);
  g_clear_pointer (&x509, gnutls_x509_privkey_deinit);
  if (ret < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "Could not export the key: %s", gnutls_strerror (ret));
      return FALSE;
    }

  tmp = g_strconcat (path, ".XXXXXX", NULL);
  fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      saved_errno = errno;
      datum_clear_secret (&pem);
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not create %s: %s", tmp, g_strerror (saved_errno));
      return FALSE;
    }

  if (!write_all (fd, pem.data, pem.size) || fsync (fd) != 0)
    saved_errno = errno ? errno : EIO;
  datum_clear_secret (&pem);
  if (close (fd) != 0 && saved_errno == 0)
    saved_errno = errno;

  if (saved_errno == 0 && link (tmp, path) != 0)
    {
      saved_errno = errno;
      if (saved_errno == EEXIST)
        *exists = TRUE;
    }

  g_unlink (tmp);

  if (saved_errno != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not write %s: %s", path, g_strerror (saved_errno));
      return FALSE;
    }

  fsync_dir (path);

  return TRUE;
}

/**
 * fl_jwt_key_load_or_create:
 * @path: a PEM file
 *
 * Reads the private key at @path, or makes a 2048-bit one and writes it
 * there atomically with mode 0600 (its directory is made with mode 0700
 * if missing).  If two processes race, both end up with the same key.
 *
 * Returns: (transfer full): the key
 */
FlJwtKey *
fl_jwt_key_load_or_create (const char *path,
                           GError    **error)
{
  g_autoptr (GError)   local_error = NULL;
  g_autoptr (FlJwtKey) key = NULL;
  g_autofree char     *dir = NULL;
  gboolean             exists = FALSE;

  g_return_val_if_fail (path != NULL, NULL);

  key = key_load (path, &local_error);
  if (key != NULL)
    return g_steal_pointer (&key);

  if (!g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  g_clear_error (&local_error);

  dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not create %s: %s", dir, g_strerror (saved_errno));
      return NULL;
    }

  key = fl_jwt_key_generate (DEFAULT_RSA_BITS, error);
  if (key == NULL)
    return NULL;

  if (!key_write_new (key, path, &exists, &local_error))
    {
      if (exists)
        return key_load (path, error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  g_debug ("Created signing key %s (kid %s)", path, key->kid);

  return g_steal_pointer (&key);
}

const char *
fl_jwt_key_get_kid (FlJwtKey *key)
{
  g_return_val_if_fail (key != NULL, NULL);

  return key->kid;
}

static JsonNode *
make_jwk (const char *kid,
          const char *n_b64,
          const char *e_b64)
{
  JsonObject *obj = json_object_new ();
  JsonNode   *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (obj, "alg", "RS256");
  json_object_set_string_member (obj, "e", e_b64);
  json_object_set_string_member (obj, "kid", kid);
  json_object_set_string_member (obj, "kty", "RSA");
  json_object_set_string_member (obj, "n", n_b64);
  json_object_set_string_member (obj, "use", "sig");
  json_node_take_object (node, obj);

  return node;
}

/**
 * fl_jwt_key_to_jwk:
 *
 * Returns: (transfer full): the public half as a JWK
 */
JsonNode *
fl_jwt_key_to_jwk (FlJwtKey *key)
{
  g_return_val_if_fail (key != NULL, NULL);

  return make_jwk (key->kid, key->n_b64, key->e_b64);
}

/**
 * fl_jwt_sign:
 * @claims: the payload
 *
 * Returns: (transfer full): header.payload.signature
 */
char *
fl_jwt_sign (FlJwtKey   *key,
             JsonObject *claims,
             GError    **error)
{
  g_autoptr (JsonGenerator) gen = NULL;
  g_autoptr (JsonNode)      root = NULL;
  g_autofree char          *payload_json = NULL;
  g_autofree char          *payload_b64 = NULL;
  g_autofree char          *signing_input = NULL;
  g_autofree char          *sig_b64 = NULL;
  gnutls_datum_t            data;
  gnutls_datum_t            sig = { NULL, 0 };
  gsize                     payload_len = 0;
  int                       ret;

  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (claims != NULL, NULL);

  root = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (root, claims);
  gen = json_generator_new ();
  json_generator_set_root (gen, root);
  payload_json = json_generator_to_data (gen, &payload_len);
  payload_b64 = fl_base64url_encode ((const guint8 *) payload_json, payload_len);
  signing_input = g_strconcat (key->header_b64, ".", payload_b64, NULL);

  data.data = (unsigned char *) signing_input;
  data.size = (unsigned int) strlen (signing_input);

  g_mutex_lock (&key->lock);
  ret = gnutls_privkey_sign_data2 (key->privkey, GNUTLS_SIGN_RSA_SHA256, 0, &data, &sig);
  g_mutex_unlock (&key->lock);

  if (ret < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Could not sign: %s", gnutls_strerror (ret));
      return NULL;
    }

  sig_b64 = fl_base64url_encode (sig.data, sig.size);
  datum_clear (&sig);

  return g_strconcat (signing_input, ".", sig_b64, NULL);
}

/* ------------------------------------------------------------------ */
/* FlJwtKeySet                                                         */

typedef struct
{
  gatomicrefcount ref_count;
  GMutex          lock;
  gnutls_pubkey_t pubkey;
  char           *kid;
  char           *n_b64;
  char           *e_b64;
} PublicKey;

static PublicKey *
public_key_ref (PublicKey *pk)
{
  g_atomic_ref_count_inc (&pk->ref_count);
  return pk;
}

static void
public_key_unref (PublicKey *pk)
{
  if (pk == NULL || !g_atomic_ref_count_dec (&pk->ref_count))
    return;

  g_clear_pointer (&pk->pubkey, gnutls_pubkey_deinit);
  g_clear_pointer (&pk->kid, g_free);
  g_clear_pointer (&pk->n_b64, g_free);
  g_clear_pointer (&pk->e_b64, g_free);
  g_mutex_clear (&pk->lock);
  g_free (pk);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PublicKey, public_key_unref)

/* n and e are big-endian unsigned integers (leading zeros allowed). */
static PublicKey *
public_key_new (const char   *kid,
                const guint8 *n,
                gsize         n_len,
                const guint8 *e,
                gsize         e_len,
                GError      **error)
{
  g_autoptr (PublicKey) pk = NULL;
  gnutls_datum_t        m_d;
  gnutls_datum_t        e_d;
  gsize                 bits;
  int                   ret;

  while (n_len > 0 && n[0] == 0)
    n++, n_len--;
  while (e_len > 0 && e[0] == 0)
    e++, e_len--;

  bits = n_len * 8;
  if (n_len > 0)
    {
      guint8 top = n[0];

      while ((top & 0x80) == 0)
        top <<= 1, bits--;
    }

  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "RSA key \"%s\" has %" G_GSIZE_FORMAT " bits; %u to %u are accepted",
                   kid, bits, MIN_RSA_BITS, MAX_RSA_BITS);
      return NULL;
    }

  /* an odd public exponent > 1 that fits in 64 bits */
  if (e_len == 0 || e_len > 8 || (e[e_len - 1] & 1) == 0 || (e_len == 1 && e[0] == 1))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "RSA key \"%s\" has a bad exponent", kid);
      return NULL;
    }

  pk = g_new0 (PublicKey, 1);
  g_atomic_ref_count_init (&pk->ref_count);
  g_mutex_init (&pk->lock);
  pk->kid = g_strdup (kid);
  pk->n_b64 = fl_base64url_encode (n, n_len);
  pk->e_b64 = fl_base64url_encode (e, e_len);

  m_d.data = (unsigned char *) n;
  m_d.size = (unsigned int) n_len;
  e_d.data = (unsigned char *) e;
  e_d.size = (unsigned int) e_len;

  if ((ret = gnutls_pubkey_init (&pk->pubkey)) < 0 || (ret = gnutls_pubkey_import_rsa_raw (pk->pubkey, &m_d, &e_d)) < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                   "RSA key \"%s\" could not be imported: %s", kid, gnutls_strerror (ret));
      return NULL;
    }

  return g_steal_pointer (&pk);
}

struct _FlJwtKeySet
{
  gatomicrefcount ref_count;
  GMutex          lock;   /* guards by_kid and order */
  GHashTable     *by_kid; /* kid → PublicKey */
  GPtrArray      *order;  /* PublicKey, in the order added */
};

/**
 * fl_jwt_key_set_new:
 *
 * Returns: (transfer full): an empty key set; safe to use from several
 *   threads
 */
FlJwtKeySet *
fl_jwt_key_set_new (void)
{
  FlJwtKeySet *set = g_new0 (FlJwtKeySet, 1);

  g_atomic_ref_count_init (&set->ref_count);
  g_mutex_init (&set->lock);
  set->by_kid = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify) public_key_unref);
  set->order = g_ptr_array_new_with_free_func ((GDestroyNotify) public_key_unref);

  return set;
}

FlJwtKeySet *
fl_jwt_key_set_ref (FlJwtKeySet *set)
{
  g_return_val_if_fail (set != NULL, NULL);

  g_atomic_ref_count_inc (&set->ref_count);
  return set;
}

void
fl_jwt_key_set_unref (FlJwtKeySet *set)
{
  if (set == NULL || !g_atomic_ref_count_dec (&set->ref_count))
    return;

  g_clear_pointer (&set->by_kid, g_hash_table_unref);
  g_clear_pointer (&set->order, g_ptr_array_unref);
  g_mutex_clear (&set->lock);
  g_free (set);
}

/* Takes pk; a key with the same kid is replaced. */
static void
key_set_insert (FlJwtKeySet *set,
                PublicKey   *pk)
{
  PublicKey *old;

  g_mutex_lock (&set->lock);
  old = g_hash_table_lookup (set->by_kid, pk->kid);
  if (old != NULL)
    g_ptr_array_remove (set->order, old);
  g_hash_table_replace (set->by_kid, pk->kid, public_key_ref (pk));
  g_ptr_array_add (set->order, pk);
  g_mutex_unlock (&set->lock);
}

void
fl_jwt_key_set_add_key (FlJwtKeySet *set,
                        FlJwtKey    *key)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *n = NULL;
  g_autofree guint8 *e = NULL;
  gsize              n_len = 0;
  gsize              e_len = 0;
  PublicKey         *pk;

  g_return_if_fail (set != NULL);
  g_return_if_fail (key != NULL);

  n = fl_base64url_decode (key->n_b64, &n_len);
  e = fl_base64url_decode (key->e_b64, &e_len);
  g_assert (n != NULL && e != NULL);

  pk = public_key_new (key->kid, n, n_len, e, e_len, &error);
  if (pk == NULL)
    {
      /* only if GnuTLS runs out of memory: our keys are checked when made */
      g_critical ("Could not add key %s: %s", key->kid, error->message);
      return;
    }

  key_set_insert (set, pk);
}

static const char *
jwk_string (JsonObject *jwk,
            const char *name)
{
  JsonNode *node = json_object_get_member (jwk, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

/**
 * fl_jwt_key_set_add_jwks:
 * @jwks: a JWKS document: {"keys": [...]}
 *
 * Adds every RS256 signing key of @jwks.  Keys of other types or uses
 * ("kty" other than "RSA", "alg" other than "RS256", "use" other than
 * "sig") are skipped.  A malformed document or RSA key fails the whole
 * call and adds nothing.
 */
gboolean
fl_jwt_key_set_add_jwks (FlJwtKeySet *set,
                         JsonNode    *jwks,
                         GError     **error)
{
  g_autoptr (GPtrArray) found = NULL;
  JsonObject           *root;
  JsonNode             *keys_node;
  JsonArray            *keys;
  guint                 n_keys;

  g_return_val_if_fail (set != NULL, FALSE);

  if (jwks == NULL || !JSON_NODE_HOLDS_OBJECT (jwks))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "A JWKS must be a JSON object");
      return FALSE;
    }

  root = json_node_get_object (jwks);
  keys_node = json_object_get_member (root, "keys");
  if (keys_node == NULL || !JSON_NODE_HOLDS_ARRAY (keys_node))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "A JWKS needs a \"keys\" array");
      return FALSE;
    }

  keys = json_node_get_array (keys_node);
  n_keys = json_array_get_length (keys);
  found = g_ptr_array_new_with_free_func ((GDestroyNotify) public_key_unref);

  for (guint i = 0; i < n_keys; i++)
    {
      JsonNode          *node = json_array_get_element (keys, i);
      g_autofree guint8 *n = NULL;
      g_autofree guint8 *e = NULL;
      const char        *kty, *alg, *use, *kid, *n_b64, *e_b64;
      gsize              n_len = 0;
      gsize              e_len = 0;
      JsonObject        *jwk;
      PublicKey         *pk;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        {
          g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "JWKS key %u is not an object", i);
          return FALSE;
        }
      jwk = json_node_get_object (node);

      kty = jwk_string (jwk, "kty");
      alg = jwk_string (jwk, "alg");
      use = jwk_string (jwk, "use");
      if (kty == NULL)
        {
          g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "JWKS key %u has no \"kty\"", i);
          return FALSE;
        }
      if (strcmp (kty, "RSA") != 0 || (json_object_has_member (jwk, "alg") && g_strcmp0 (alg, "RS256") != 0) || (json_object_has_member (jwk, "use") && g_strcmp0 (use, "sig") != 0))
        {
          g_debug ("Skipping JWKS key %u: not an RS256 signing key", i);
          continue;
        }

      kid = jwk_string (jwk, "kid");
      n_b64 = jwk_string (jwk, "n");
      e_b64 = jwk_string (jwk, "e");
      if (kid == NULL || *kid == '\0' || strlen (kid) > 256 || n_b64 == NULL || e_b64 == NULL)
        {
          g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                       "JWKS key %u needs \"kid\", \"n\" and \"e\" strings", i);
          return FALSE;
        }

      n = fl_base64url_decode (n_b64, &n_len);
      e = fl_base64url_decode (e_b64, &e_len);
      if (n == NULL || e == NULL)
        {
          g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY,
                       "JWKS key %u: \"n\" or \"e\" is not base64url", i);
          return FALSE;
        }

      pk = public_key_new (kid, n, n_len, e, e_len, error);
      if (pk == NULL)
        return FALSE;
      g_ptr_array_add (found, pk);
    }

  for (guint i = 0; i < found->len; i++)
    key_set_insert (set, public_key_ref (g_ptr_array_index (found, i)));

  return TRUE;
}

/**
 * fl_jwt_key_set_to_jwks:
 *
 * Returns: (transfer full): {"keys": [...]}, in the order keys were added
 */
JsonNode *
fl_jwt_key_set_to_jwks (FlJwtKeySet *set)
{
  JsonObject *root;
  JsonArray  *keys;
  JsonNode   *node;

  g_return_val_if_fail (set != NULL, NULL);

  keys = json_array_new ();
  g_mutex_lock (&set->lock);
  for (guint i = 0; i < set->order->len; i++)
    {
      PublicKey *pk = g_ptr_array_index (set->order, i);

      json_array_add_element (keys, make_jwk (pk->kid, pk->n_b64, pk->e_b64));
    }
  g_mutex_unlock (&set->lock);

  root = json_object_new ();
  json_object_set_array_member (root, "keys", keys);
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, root);

  return node;
}

static PublicKey *
key_set_lookup (FlJwtKeySet *set,
                const char  *kid)
{
  PublicKey *pk;

  g_mutex_lock (&set->lock);
  pk = g_hash_table_lookup (set->by_kid, kid);
  if (pk != NULL)
    public_key_ref (pk);
  g_mutex_unlock (&set->lock);

  return pk;
}

/* ------------------------------------------------------------------ */
/* Verification                                                        */

/**
 * fl_jwt_verify:
 * @token: a compact JWS, from outside
 * @now: the current time in seconds since the epoch
 * @leeway: seconds of clock skew to allow for exp and nbf
 *
 * Checks, in order: the shape (three base64url parts; the header a JSON
 * object), alg == "RS256" (so never "none" nor HMAC), no "crit", a kid
 * that is in @set, the RSASSA-PKCS1-v1_5 SHA-256 signature, the payload a
 * JSON object, "exp" present and not passed, and "nbf" (if present)
 * reached.  A token without "exp" is refused (FL_JWT_ERROR_CLAIMS): a
 * token that never expires is never what we want.  Claims other than
 * exp and nbf are left to the caller.
 *
 * Returns: (transfer full): the claims, or NULL with @error set
 */
JsonObject *
fl_jwt_verify (FlJwtKeySet *set,
               const char  *token,
               gint64       now,
               guint        leeway,
               GError     **error)
{
  g_autoptr (JsonObject) header = NULL;
  g_autoptr (JsonObject) claims = NULL;
  g_autoptr (PublicKey)  pk = NULL;
  g_autofree guint8     *sig = NULL;
  const char            *dot1, *dot2, *payload, *sig_b64, *kid;
  JsonNode              *alg_node;
  JsonNode              *kid_node;
  gnutls_datum_t         data;
  gnutls_datum_t         sig_d;
  gsize                  len, header_len, payload_len, sig_b64_len;
  gsize                  sig_len = 0;
  gboolean               present;
  gint64                 exp = 0;
  gint64                 nbf = 0;
  int                    ret;

  g_return_val_if_fail (set != NULL, NULL);

  if (token == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "No token");
      return NULL;
    }

  len = strnlen (token, MAX_TOKEN_LEN + 1);
  if (len > MAX_TOKEN_LEN)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The token is too long");
      return NULL;
    }

  dot1 = memchr (token, '.', len);
  dot2 = dot1 ? memchr (dot1 + 1, '.', len - (dot1 + 1 - token)) : NULL;
  if (dot2 == NULL || memchr (dot2 + 1, '.', len - (dot2 + 1 - token)) != NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED,
                   "A token has three parts separated by dots");
      return NULL;
    }

  header_len = dot1 - token;
  payload = dot1 + 1;
  payload_len = dot2 - payload;
  sig_b64 = dot2 + 1;
  sig_b64_len = len - (sig_b64 - token);

  /* Header */
  header = decode_json_part (token, header_len, MAX_HEADER_LEN, "header", error);
  if (header == NULL)
    return NULL;

  alg_node = json_object_get_member (header, "alg");
  if (alg_node == NULL || !JSON_NODE_HOLDS_VALUE (alg_node) || json_node_get_value_type (alg_node) != G_TYPE_STRING || strcmp (json_node_get_string (alg_node), "RS256") != 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_ALGORITHM, "Only RS256 tokens are accepted");
      return NULL;
    }

  if (json_object_has_member (header, "crit"))
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED,
                   "The token needs header extensions this verifier does not know");
      return NULL;
    }

  kid_node = json_object_get_member (header, "kid");
  if (kid_node == NULL || !JSON_NODE_HOLDS_VALUE (kid_node) || json_node_get_value_type (kid_node) != G_TYPE_STRING)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_UNKNOWN_KEY, "The token names no key");
      return NULL;
    }
  kid = json_node_get_string (kid_node);

  pk = key_set_lookup (set, kid);
  if (pk == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_UNKNOWN_KEY, "The token's key is unknown");
      return NULL;
    }

  /* Signature */
  if (sig_b64_len == 0 || (sig = b64url_decode_len (sig_b64, sig_b64_len, &sig_len)) == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_MALFORMED, "The signature is not base64url");
      return NULL;
    }

  data.data = (unsigned char *) token;
  data.size = (unsigned int) (dot2 - token);
  sig_d.data = sig;
  sig_d.size = (unsigned int) sig_len;

  g_mutex_lock (&pk->lock);
  ret = gnutls_pubkey_verify_data2 (pk->pubkey, GNUTLS_SIGN_RSA_SHA256, 0, &data, &sig_d);
  g_mutex_unlock (&pk->lock);

  if (ret < 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_SIGNATURE, "The signature does not verify");
      return NULL;
    }

  /* Payload: signed by a key we trust, but still checked */
  claims = decode_json_part (payload, payload_len, MAX_TOKEN_LEN, "payload", error);
  if (claims == NULL)
    return NULL;

  if (!get_numeric_date (claims, "exp", &present, &exp, error))
    return NULL;
  if (!present)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_CLAIMS, "The token has no \"exp\"");
      return NULL;
    }
  /* exp is the first second at which the token is no longer valid */
  if (now - (gint64) leeway >= exp)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_EXPIRED, "The token has expired");
      return NULL;
    }

  if (!get_numeric_date (claims, "nbf", &present, &nbf, error))
    return NULL;
  if (present && now + (gint64) leeway < nbf)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_NOT_YET_VALID, "The token is not valid yet");
      return NULL;
    }

  return g_steal_pointer (&claims);
}
