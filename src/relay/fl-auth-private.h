/* fl-auth-private.h: small helpers the FL_AUTH_ERROR modules share
 * (fl-user-pool.c, fl-trusted-issuer.c). */
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

static inline void
_fl_sha256 (const void *data,
            gsize       len,
            guint8      digest[32])
{
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, digest) < 0)
    g_error ("SHA-256 failed");
}

/* The string member name of obj; NULL if it is missing or not a string */
static inline const char *
_fl_json_get_string (JsonObject *obj,
                     const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

G_END_DECLS
