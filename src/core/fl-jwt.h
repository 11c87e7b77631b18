/* fl-jwt.h: RS256 JSON Web Tokens and JWKS, on GnuTLS. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define FL_JWT_ERROR (fl_jwt_error_quark ())

typedef enum {
  FL_JWT_ERROR_MALFORMED,     /* not three base64url parts of JSON */
  FL_JWT_ERROR_ALGORITHM,     /* alg is not RS256 (alg: none included) */
  FL_JWT_ERROR_UNKNOWN_KEY,   /* no key with that kid */
  FL_JWT_ERROR_SIGNATURE,     /* signature does not verify */
  FL_JWT_ERROR_EXPIRED,
  FL_JWT_ERROR_NOT_YET_VALID,
  FL_JWT_ERROR_CLAIMS,        /* issuer, token_use, audience, ... wrong */
  FL_JWT_ERROR_KEY,           /* a key could not be made, read or written */
} FlJwtError;

GQuark fl_jwt_error_quark (void);

/* A private RSA signing key and its kid. */
typedef struct _FlJwtKey FlJwtKey;

FlJwtKey   *fl_jwt_key_generate          (guint        bits,
                                          GError     **error);
/* Reads the PEM private key at path, or creates one (mode 0600). */
FlJwtKey   *fl_jwt_key_load_or_create    (const char  *path,
                                          GError     **error);
void        fl_jwt_key_free              (FlJwtKey    *key);
const char *fl_jwt_key_get_kid           (FlJwtKey    *key);
/* The public half as a JWK: {kty, alg, use, kid, n, e}. */
JsonNode   *fl_jwt_key_to_jwk            (FlJwtKey    *key);
/* Signs claims (a JSON object) into a compact JWS with header
 * {"kid", "alg": "RS256"}. */
char       *fl_jwt_sign                  (FlJwtKey    *key,
                                          JsonObject  *claims,
                                          GError     **error);

/* Public keys by kid, for verification. */
typedef struct _FlJwtKeySet FlJwtKeySet;

FlJwtKeySet *fl_jwt_key_set_new          (void);
FlJwtKeySet *fl_jwt_key_set_ref          (FlJwtKeySet *set);
void         fl_jwt_key_set_unref        (FlJwtKeySet *set);
void         fl_jwt_key_set_add_key      (FlJwtKeySet *set,
                                          FlJwtKey    *key);
/* Adds every key of a JWKS document ({"keys": [...]}). */
gboolean     fl_jwt_key_set_add_jwks     (FlJwtKeySet *set,
                                          JsonNode    *jwks,
                                          GError     **error);
/* {"keys": [...]} */
JsonNode    *fl_jwt_key_set_to_jwks      (FlJwtKeySet *set);

/* Checks the header (alg RS256, a known kid), the signature, and exp/nbf
 * against now (seconds), with leeway seconds of slack.  Returns the
 * claims. */
JsonObject  *fl_jwt_verify               (FlJwtKeySet *set,
                                          const char  *token,
                                          gint64       now,
                                          guint        leeway,
                                          GError     **error);

/* base64url without padding */
char        *fl_base64url_encode         (const guint8 *data,
                                          gsize         len);
guint8      *fl_base64url_decode         (const char   *text,
                                          gsize        *out_len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlJwtKey, fl_jwt_key_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlJwtKeySet, fl_jwt_key_set_unref)

G_END_DECLS
