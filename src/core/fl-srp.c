/* fl-srp.c: SRP-6a as Amazon Cognito does it, on GMP and GnuTLS.
 *
 * The group is RFC 5054's 3072-bit prime with g = 2 and H = SHA-256.  As in
 * amazon-cognito-identity-js, a number is hashed as the bytes of its
 * "padHex": big-endian, with a 0x00 byte in front when the top bit is set
 * (PAD below), so:
 *
 *   k = H(PAD(N) | PAD(g))            u = H(PAD(A) | PAD(B))
 *   x = H(PAD(salt) | H(pool | user | ":" | password))
 *   v = g^x   A = g^a   B = k*v + g^b            (mod N)
 *   S = (B - k*g^x)^(a + u*x) = (A * v^u)^b      (mod N)
 *   key = HKDF-SHA256(ikm PAD(S), salt PAD(u), "Caldera Derived Key")[0..16]
 *   signature = HMAC-SHA256(key, pool | user | secret block | timestamp)
 *
 * Hex, base64 and timestamps from the other side are checked and get a
 * GError.  Secret exponents go through mpz_powm_sec, and secrets are wiped
 * when freed (GMP's own scratch memory is not).
 */
#define G_LOG_DOMAIN "fl-srp"

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <gmp.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "fl-srp.h"

#define N_BYTES 384       /* the group's size, and a verifier's */
#define PRIVATE_BYTES 128 /* a and b, as Cognito's client picks a */
#define SALT_BYTES 16
#define MAX_NUMBER_HEX 1024 /* SRP_A, SRP_B, SALT: up to 4096 bits */
#define HASH_LEN 32
#define KEY_LEN 16

/* RFC 5054, appendix A, 3072-bit group */
static const char group_n_hex[] = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
                                  "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
                                  "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
                                  "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
                                  "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
                                  "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
                                  "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
                                  "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
                                  "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
                                  "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
                                  "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
                                  "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

static const char hkdf_info[] = "Caldera Derived Key\x01";

static mpz_t group_n;
static mpz_t group_g;
static mpz_t group_k;

struct _FlSrpServer
{
  mpz_t    v;
  mpz_t    b;
  mpz_t    B;
  gboolean used;
};

struct _FlSrpClient
{
  mpz_t a;
  mpz_t A;
};

/* clang-format off */
G_DEFINE_QUARK (fl-srp-error-quark, fl_srp_error)
/* clang-format on */

/* ------------------------------------------------------------------ */
/* numbers and hashes                                                  */

#define CHECK_GNUTLS(call)                                     \
  G_STMT_START                                                 \
  {                                                            \
    int check_ret_ = (call);                                   \
    if (check_ret_ < 0)                                        \
      g_error ("%s: %s", #call, gnutls_strerror (check_ret_)); \
  }                                                            \
  G_STMT_END

/* Zeroes every limb z ever had, then frees them. */
static void
mpz_wipe (mpz_t z)
{
  if (z->_mp_alloc > 0)
    gnutls_memset (z->_mp_d, 0, (size_t) z->_mp_alloc * sizeof (mp_limb_t));
  mpz_clear (z);
}

/* PAD(n) as bytes; n >= 0.  PAD(0) is one 0x00 byte, as padHex gives "00". */
static guint8 *
pad (const mpz_t n,
     gsize      *len)
{
  gsize   count = (mpz_sizeinbase (n, 2) + 7) / 8;
  guint8 *out = g_malloc0 (count + 1);
  gsize   written = 0;

  mpz_export (out + 1, &written, 1, 1, 1, 0, n);
  g_assert (written <= count);
  if (written == 0 || out[1] >= 0x80)
    {
      *len = written + 1;
    }
  else
    {
      memmove (out, out + 1, written);
      *len = written;
    }

  return out;
}

/* for public numbers only */
static void
hash_number (gnutls_hash_hd_t hd,
             const mpz_t      n)
{
  gsize   len;
  guint8 *bytes = pad (n, &len);

  CHECK_GNUTLS (gnutls_hash (hd, bytes, len));
  g_free (bytes);
}

/* out = H(PAD(a) | PAD(b)) */
static void
hash_pair (mpz_t       out,
           const mpz_t a,
           const mpz_t b)
{
  gnutls_hash_hd_t hd;
  guint8           digest[HASH_LEN];

  CHECK_GNUTLS (gnutls_hash_init (&hd, GNUTLS_DIG_SHA256));
  hash_number (hd, a);
  hash_number (hd, b);
  gnutls_hash_deinit (hd, digest);
  mpz_import (out, HASH_LEN, 1, 1, 1, 0, digest);
}

static char *
mpz_to_hex (const mpz_t n)
{
  return mpz_get_str (g_malloc (mpz_sizeinbase (n, 16) + 2), 16, n);
}

static void
group_init (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      mpz_init_set_str (group_n, group_n_hex, 16);
      mpz_init_set_ui (group_g, 2);
      mpz_init (group_k);
      hash_pair (group_k, group_n, group_g);
      g_once_init_leave (&initialized, 1);
    }
}

/* r = base^exp mod N for a secret exp >= 0 */
static void
powm_secret (mpz_t       r,
             const mpz_t base,
             const mpz_t exp)
{
  if (mpz_sgn (exp) == 0)
    mpz_set_ui (r, 1);
  else
    mpz_powm_sec (r, base, exp, group_n);
}

/* Strict: 1..max hex digits and nothing else (mpz_set_str would skip
 * white space). */
static gboolean
parse_hex (mpz_t       out,
           const char *hex,
           gsize       max)
{
  gsize len;

  if (hex == NULL)
    return FALSE;
  len = strnlen (hex, max + 1);
  if (len == 0 || len > max)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (hex[i]))
      return FALSE;

  return mpz_set_str (out, hex, 16) == 0;
}

/* Strict: padded base64 that is not empty, in its one encoding (the
 * decoder alone skips what it does not know). */
static guint8 *
decode_base64 (const char *text,
               gsize      *len)
{
  g_autofree guint8 *out = NULL;
  g_autofree char   *again = NULL;

  if (text == NULL || text[0] == '\0')
    return NULL;
  out = g_base64_decode (text, len);
  again = g_base64_encode (out, *len);

  return strcmp (again, text) == 0 ? g_steal_pointer (&out) : NULL;
}

static gboolean
random_private (mpz_t    out,
                GError **error)
{
  guint8 buf[PRIVATE_BYTES];

  do
    {
      if (gnutls_rnd (GNUTLS_RND_KEY, buf, sizeof buf) < 0)
        {
          g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_FAILED, "No random numbers");
          break;
        }
      mpz_import (out, sizeof buf, 1, 1, 1, 0, buf);
    }
  while (mpz_sgn (out) == 0);
  gnutls_memset (buf, 0, sizeof buf);

  return mpz_sgn (out) != 0;
}

/* x = H(PAD(salt) | H(pool | user | ":" | password)) */
static void
compute_x (mpz_t       x,
           const char *pool_name,
           const char *user_id,
           const char *password,
           const mpz_t salt)
{
  gnutls_hash_hd_t hd;
  guint8           inner[HASH_LEN];
  guint8           digest[HASH_LEN];

  CHECK_GNUTLS (gnutls_hash_init (&hd, GNUTLS_DIG_SHA256));
  CHECK_GNUTLS (gnutls_hash (hd, pool_name, strlen (pool_name)));
  CHECK_GNUTLS (gnutls_hash (hd, user_id, strlen (user_id)));
  CHECK_GNUTLS (gnutls_hash (hd, ":", 1));
  CHECK_GNUTLS (gnutls_hash (hd, password, strlen (password)));
  gnutls_hash_deinit (hd, inner);

  CHECK_GNUTLS (gnutls_hash_init (&hd, GNUTLS_DIG_SHA256));
  hash_number (hd, salt);
  CHECK_GNUTLS (gnutls_hash (hd, inner, sizeof inner));
  gnutls_hash_deinit (hd, digest);
  mpz_import (x, HASH_LEN, 1, 1, 1, 0, digest);
  gnutls_memset (inner, 0, sizeof inner);
  gnutls_memset (digest, 0, sizeof digest);
}

/* HKDF-SHA256 (RFC 5869), one block: the first KEY_LEN bytes of
 * HMAC(HMAC(PAD(u), PAD(S)), info | 0x01) */
static void
derive_key (guint8      key[KEY_LEN],
            const mpz_t S,
            const mpz_t u)
{
  guint8  prk[HASH_LEN];
  guint8  okm[HASH_LEN];
  gsize   s_len, u_len;
  guint8 *s_bytes = pad (S, &s_len);
  guint8 *u_bytes = pad (u, &u_len);

  CHECK_GNUTLS (gnutls_hmac_fast (GNUTLS_MAC_SHA256, u_bytes, u_len, s_bytes, s_len, prk));
  CHECK_GNUTLS (gnutls_hmac_fast (GNUTLS_MAC_SHA256, prk, sizeof prk, hkdf_info, sizeof hkdf_info - 1, okm));
  memcpy (key, okm, KEY_LEN);

  gnutls_memset (s_bytes, 0, s_len);
  gnutls_memset (prk, 0, sizeof prk);
  gnutls_memset (okm, 0, sizeof okm);
  g_free (s_bytes);
  g_free (u_bytes);
}

/* base64 (HMAC-SHA256 (key, pool | user | secret block | timestamp)) */
static char *
sign (const guint8 key[KEY_LEN],
      const char  *pool_name,
      const char  *user_id,
      const void  *secret_block,
      gsize        secret_block_len,
      const char  *timestamp)
{
  gnutls_hmac_hd_t hd;
  guint8           mac[HASH_LEN];

  CHECK_GNUTLS (gnutls_hmac_init (&hd, GNUTLS_MAC_SHA256, key, KEY_LEN));
  CHECK_GNUTLS (gnutls_hmac (hd, pool_name, strlen (pool_name)));
  CHECK_GNUTLS (gnutls_hmac (hd, user_id, strlen (user_id)));
  CHECK_GNUTLS (gnutls_hmac (hd, secret_block, secret_block_len));
  CHECK_GNUTLS (gnutls_hmac (hd, timestamp, strlen (timestamp)));
  gnutls_hmac_deinit (hd, mac);

  return g_base64_encode (mac, sizeof mac);
}

static void
trace_fill (FlSrpTrace   *trace,
            const mpz_t   x,
            const mpz_t   u,
            const mpz_t   S,
            const guint8 *key)
{
  if (trace == NULL)
    return;
  _fl_srp_trace_clear (trace);
  trace->k_hex = mpz_to_hex (group_k);
  trace->x_hex = x != NULL ? mpz_to_hex (x) : NULL;
  trace->u_hex = mpz_to_hex (u);
  trace->s_hex = mpz_to_hex (S);
  trace->key_hex = g_malloc0 (2 * KEY_LEN + 1);
  for (guint i = 0; i < 2 * KEY_LEN; i++)
    trace->key_hex[i] = "0123456789abcdef"[(key[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
}

/* ------------------------------------------------------------------ */
/* verifiers                                                           */

/**
 * fl_srp_compute_verifier:
 *
 * Returns: (transfer full): v = g^x mod N, 384 bytes, big-endian
 */
GBytes *
fl_srp_compute_verifier (const char *pool_name,
                         const char *user_id,
                         const char *password,
                         GBytes     *salt)
{
  const guint8 *salt_data;
  gsize         salt_len;
  guint8       *out;
  gsize         written = 0;
  mpz_t         s, x, v;

  g_return_val_if_fail (pool_name != NULL, NULL);
  g_return_val_if_fail (user_id != NULL, NULL);
  g_return_val_if_fail (password != NULL, NULL);
  g_return_val_if_fail (salt != NULL, NULL);

  group_init ();
  salt_data = g_bytes_get_data (salt, &salt_len);
  mpz_inits (s, x, v, NULL);
  mpz_import (s, salt_len, 1, 1, 1, 0, salt_data);
  compute_x (x, pool_name, user_id, password, s);
  powm_secret (v, group_g, x);

  out = g_malloc0 (N_BYTES);
  g_assert (mpz_sizeinbase (v, 2) <= N_BYTES * 8);
  mpz_export (out + N_BYTES - (mpz_sizeinbase (v, 2) + 7) / 8, &written, 1, 1, 1, 0, v);

  mpz_clear (s);
  mpz_wipe (x);
  mpz_wipe (v);

  return g_bytes_new_take (out, N_BYTES);
}

/**
 * fl_srp_make_verifier:
 * @salt_out: (out): 16 random bytes
 * @verifier_out: (out): see fl_srp_compute_verifier()
 */
gboolean
fl_srp_make_verifier (const char *pool_name,
                      const char *user_id,
                      const char *password,
                      GBytes    **salt_out,
                      GBytes    **verifier_out,
                      GError    **error)
{
  g_autoptr (GBytes) salt = NULL;
  guint8             buf[SALT_BYTES];

  g_return_val_if_fail (salt_out != NULL && verifier_out != NULL, FALSE);

  if (gnutls_rnd (GNUTLS_RND_KEY, buf, sizeof buf) < 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_FAILED, "No random numbers");
      return FALSE;
    }
  salt = g_bytes_new (buf, sizeof buf);
  *verifier_out = fl_srp_compute_verifier (pool_name, user_id, password, salt);
  *salt_out = g_steal_pointer (&salt);

  return *verifier_out != NULL;
}

/* ------------------------------------------------------------------ */
/* server                                                              */

/* b_hex NULL: a random b */
static FlSrpServer *
server_new (GBytes     *verifier,
            const char *b_hex,
            GError    **error)
{
  g_autoptr (FlSrpServer) self = NULL;
  const guint8           *data;
  gsize                   len;
  mpz_t                   gb;

  g_return_val_if_fail (verifier != NULL, NULL);

  group_init ();
  self = g_new0 (FlSrpServer, 1);
  mpz_inits (self->v, self->b, self->B, NULL);

  data = g_bytes_get_data (verifier, &len);
  if (len > 0 && len <= N_BYTES)
    mpz_import (self->v, len, 1, 1, 1, 0, data);
  if (mpz_sgn (self->v) == 0 || mpz_cmp (self->v, group_n) >= 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "Not a verifier");
      return NULL;
    }

  /* B = k*v + g^b, which must not be 0 */
  mpz_init (gb);
  do
    {
      if (b_hex != NULL ? !parse_hex (self->b, b_hex, MAX_NUMBER_HEX) || mpz_sgn (self->b) == 0
                        : !random_private (self->b, error))
        break;
      powm_secret (gb, group_g, self->b);
      mpz_mul (self->B, group_k, self->v);
      mpz_add (self->B, self->B, gb);
      mpz_mod (self->B, self->B, group_n);
    }
  while (mpz_sgn (self->B) == 0 && b_hex == NULL);
  mpz_wipe (gb);

  if (mpz_sgn (self->B) == 0)
    {
      if (b_hex != NULL)
        g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "Not a private value");
      return NULL;
    }

  return g_steal_pointer (&self);
}

/**
 * fl_srp_server_new:
 * @verifier: see fl_srp_compute_verifier()
 *
 * Returns: (transfer full): a challenge with a random b
 */
FlSrpServer *
fl_srp_server_new (GBytes  *verifier,
                   GError **error)
{
  return server_new (verifier, NULL, error);
}

FlSrpServer *
_fl_srp_server_new_with_private (GBytes     *verifier,
                                 const char *b_hex,
                                 GError    **error)
{
  g_return_val_if_fail (b_hex != NULL, NULL);

  return server_new (verifier, b_hex, error);
}

/**
 * fl_srp_server_get_public_hex:
 *
 * Returns: (transfer full): SRP_B
 */
char *
fl_srp_server_get_public_hex (FlSrpServer *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  return mpz_to_hex (self->B);
}

gboolean
_fl_srp_server_verify_at (FlSrpServer *self,
                          const char  *a_hex,
                          const char  *pool_name,
                          const char  *user_id,
                          GBytes      *secret_block,
                          const char  *timestamp,
                          const char  *signature_b64,
                          gint64       now,
                          FlSrpTrace  *trace,
                          GError     **error)
{
  g_autofree char *expected = NULL;
  const guint8    *block;
  gsize            block_len;
  gint64           when;
  guint8           key[KEY_LEN];
  gboolean         ok = FALSE;
  mpz_t            A, u, S, t;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (pool_name != NULL && user_id != NULL, FALSE);
  g_return_val_if_fail (secret_block != NULL, FALSE);

  if (self->used)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED, "The challenge was already answered");
      return FALSE;
    }
  self->used = TRUE;

  mpz_inits (A, u, S, t, NULL);
  if (!parse_hex (A, a_hex, MAX_NUMBER_HEX))
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SRP_A is not hex");
      goto out;
    }
  mpz_mod (t, A, group_n);
  if (mpz_sgn (t) == 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SRP_A mod N is 0");
      goto out;
    }
  if (timestamp == NULL || !fl_srp_parse_timestamp (timestamp, &when))
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "TIMESTAMP is malformed");
      goto out;
    }
  if (when > now + FL_SRP_TIMESTAMP_LEEWAY || when < now - FL_SRP_TIMESTAMP_LEEWAY)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED, "TIMESTAMP is too far from the server's clock");
      goto out;
    }
  hash_pair (u, A, self->B);
  if (mpz_sgn (u) == 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "u is 0");
      goto out;
    }

  /* S = (A * v^u)^b; u is public */
  mpz_powm (S, self->v, u, group_n);
  mpz_mul (t, t, S);
  mpz_mod (t, t, group_n);
  powm_secret (S, t, self->b);
  derive_key (key, S, u);

  block = g_bytes_get_data (secret_block, &block_len);
  expected = sign (key, pool_name, user_id, block, block_len, timestamp);
  trace_fill (trace, NULL, u, S, key);
  gnutls_memset (key, 0, sizeof key);

  if (signature_b64 == NULL || strlen (signature_b64) != strlen (expected) || gnutls_memcmp (signature_b64, expected, strlen (expected)) != 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_NOT_AUTHORIZED, "Incorrect username or password");
      goto out;
    }
  ok = TRUE;

out:
  mpz_clear (A);
  mpz_clear (u);
  mpz_wipe (S);
  mpz_wipe (t);
  /* b answers one challenge only */
  mpz_wipe (self->b);
  mpz_init (self->b);

  return ok;
}

/**
 * fl_srp_server_verify:
 * @a_hex: SRP_A
 * @secret_block: the SECRET_BLOCK this challenge sent, decoded
 * @timestamp: TIMESTAMP
 * @signature_b64: PASSWORD_CLAIM_SIGNATURE
 *
 * Returns: TRUE if the client knows the password
 */
gboolean
fl_srp_server_verify (FlSrpServer *self,
                      const char  *a_hex,
                      const char  *pool_name,
                      const char  *user_id,
                      GBytes      *secret_block,
                      const char  *timestamp,
                      const char  *signature_b64,
                      GError     **error)
{
  return _fl_srp_server_verify_at (self, a_hex, pool_name, user_id, secret_block, timestamp, signature_b64,
                                   g_get_real_time () / G_USEC_PER_SEC, NULL, error);
}

void
fl_srp_server_free (FlSrpServer *self)
{
  if (self == NULL)
    return;
  mpz_wipe (self->v);
  mpz_wipe (self->b);
  mpz_clear (self->B);
  g_free (self);
}

/* ------------------------------------------------------------------ */
/* client                                                              */

/* moves a into the client */
static FlSrpClient *
client_new_take (mpz_t a)
{
  FlSrpClient *self = g_new0 (FlSrpClient, 1);

  group_init ();
  mpz_inits (self->a, self->A, NULL);
  mpz_swap (self->a, a);
  mpz_clear (a);
  powm_secret (self->A, group_g, self->a);

  return self;
}

/**
 * fl_srp_client_new:
 *
 * Returns: (transfer full): a client with a random a
 */
FlSrpClient *
fl_srp_client_new (void)
{
  g_autoptr (GError) error = NULL;
  mpz_t              a;

  mpz_init (a);
  if (!random_private (a, &error))
    g_error ("%s", error->message);

  return client_new_take (a);
}

FlSrpClient *
_fl_srp_client_new_with_private (const char *a_hex)
{
  mpz_t a;

  mpz_init (a);
  if (!parse_hex (a, a_hex, MAX_NUMBER_HEX) || mpz_sgn (a) == 0)
    {
      mpz_wipe (a);
      return NULL;
    }

  return client_new_take (a);
}

/**
 * fl_srp_client_get_public_hex:
 *
 * Returns: (transfer full): SRP_A
 */
char *
fl_srp_client_get_public_hex (FlSrpClient *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  return mpz_to_hex (self->A);
}

char *
_fl_srp_client_sign_traced (FlSrpClient *self,
                            const char  *pool_name,
                            const char  *user_id,
                            const char  *password,
                            const char  *salt_hex,
                            const char  *b_hex,
                            const char  *secret_block_b64,
                            const char  *timestamp,
                            FlSrpTrace  *trace,
                            GError     **error)
{
  g_autofree guint8 *block = NULL;
  gsize              block_len = 0;
  guint8             key[KEY_LEN];
  char              *signature = NULL;
  mpz_t              salt, B, u, x, t, e, S;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (pool_name != NULL && user_id != NULL && password != NULL, NULL);
  g_return_val_if_fail (timestamp != NULL, NULL);

  mpz_inits (salt, B, u, x, t, e, S, NULL);
  if (!parse_hex (salt, salt_hex, MAX_NUMBER_HEX))
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SALT is not hex");
      goto out;
    }
  if (!parse_hex (B, b_hex, MAX_NUMBER_HEX))
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SRP_B is not hex");
      goto out;
    }
  mpz_mod (t, B, group_n);
  if (mpz_sgn (t) == 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SRP_B mod N is 0");
      goto out;
    }
  block = decode_base64 (secret_block_b64, &block_len);
  if (block == NULL)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "SECRET_BLOCK is not base64");
      goto out;
    }
  hash_pair (u, self->A, B);
  if (mpz_sgn (u) == 0)
    {
      g_set_error (error, FL_SRP_ERROR, FL_SRP_ERROR_INVALID_PARAMETER, "u is 0");
      goto out;
    }

  /* S = (B - k*g^x)^(a + u*x) */
  compute_x (x, pool_name, user_id, password, salt);
  powm_secret (S, group_g, x);
  mpz_mul (S, S, group_k);
  mpz_sub (t, t, S);
  mpz_mod (t, t, group_n);
  mpz_mul (e, u, x);
  mpz_add (e, e, self->a);
  powm_secret (S, t, e);
  derive_key (key, S, u);

  signature = sign (key, pool_name, user_id, block, block_len, timestamp);
  trace_fill (trace, x, u, S, key);
  gnutls_memset (key, 0, sizeof key);

out:
  mpz_clear (salt);
  mpz_clear (B);
  mpz_clear (u);
  mpz_wipe (x);
  mpz_wipe (t);
  mpz_wipe (e);
  mpz_wipe (S);

  return signature;
}

/**
 * fl_srp_client_sign:
 * @salt_hex: SALT
 * @b_hex: SRP_B
 * @secret_block_b64: SECRET_BLOCK
 * @timestamp: the TIMESTAMP to send, see fl_srp_format_timestamp()
 *
 * Returns: (transfer full) (nullable): PASSWORD_CLAIM_SIGNATURE
 */
char *
fl_srp_client_sign (FlSrpClient *self,
                    const char  *pool_name,
                    const char  *user_id,
                    const char  *password,
                    const char  *salt_hex,
                    const char  *b_hex,
                    const char  *secret_block_b64,
                    const char  *timestamp,
                    GError     **error)
{
  return _fl_srp_client_sign_traced (self, pool_name, user_id, password, salt_hex, b_hex,
                                     secret_block_b64, timestamp, NULL, error);
}

void
fl_srp_client_free (FlSrpClient *self)
{
  if (self == NULL)
    return;
  mpz_wipe (self->a);
  mpz_clear (self->A);
  g_free (self);
}

void
_fl_srp_trace_clear (FlSrpTrace *trace)
{
  g_clear_pointer (&trace->k_hex, g_free);
  g_clear_pointer (&trace->x_hex, g_free);
  g_clear_pointer (&trace->u_hex, g_free);
  g_clear_pointer (&trace->s_hex, g_free);
  g_clear_pointer (&trace->key_hex, g_free);
}

/* ------------------------------------------------------------------ */
/* timestamps                                                          */

/* GDateTime's day of week: 1 is Monday */
static const char weekday_names[7][4] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char month_names[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/**
 * fl_srp_format_timestamp:
 *
 * Returns: (transfer full): @time as a TIMESTAMP, in UTC and English
 *   whatever the locale
 */
char *
fl_srp_format_timestamp (GDateTime *time)
{
  g_autoptr (GDateTime) utc = NULL;

  g_return_val_if_fail (time != NULL, NULL);

  utc = g_date_time_to_utc (time);
  return g_strdup_printf ("%s %s %d %02d:%02d:%02d UTC %d",
                          weekday_names[g_date_time_get_day_of_week (utc) - 1],
                          month_names[g_date_time_get_month (utc) - 1],
                          g_date_time_get_day_of_month (utc),
                          g_date_time_get_hour (utc),
                          g_date_time_get_minute (utc),
                          g_date_time_get_second (utc),
                          g_date_time_get_year (utc));
}

/**
 * fl_srp_parse_timestamp:
 * @unix_seconds: (out) (optional)
 */
gboolean
fl_srp_parse_timestamp (const char *text,
                        gint64     *unix_seconds)
{
  g_autoptr (GDateTime) t = NULL;
  g_autofree char      *again = NULL;
  char                  month_name[4];
  int                   month, day, hour, minute, second, year;

  g_return_val_if_fail (text != NULL, FALSE);

  /* Read leniently, then demand that the time is written back exactly as
   * text: that refuses padding, spacing, case and a wrong weekday. */
  if (sscanf (text, "%*3s %3s %2d %2d:%2d:%2d UTC %4d", month_name, &day, &hour, &minute, &second, &year) != 6)
    return FALSE;
  for (month = 0; month < 12 && strcmp (month_name, month_names[month]) != 0; month++)
    ;
  if (month == 12 || year < 1970)
    return FALSE;
  /* NULL for a day, hour, minute or second out of range */
  t = g_date_time_new_utc (year, month + 1, day, hour, minute, second);
  if (t == NULL)
    return FALSE;
  again = fl_srp_format_timestamp (t);
  if (strcmp (again, text) != 0)
    return FALSE;

  if (unix_seconds != NULL)
    *unix_seconds = g_date_time_to_unix (t);

  return TRUE;
}
