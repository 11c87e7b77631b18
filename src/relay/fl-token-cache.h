/* fl-token-cache.h: the bearer tokens a verifier has checked, keyed by the
 * SHA-256 of the token, each with who it speaks for, until it expires.
 * The user pool and the trusted issuer each keep one, so that a token seen
 * before costs a hash and a copy instead of an RSA verification.
 *
 * Threads: not thread-safe; callers guard every call with a lock of their
 * own.
 */
#pragma once

#include <glib.h>

#include "fl-user-pool.h"

G_BEGIN_DECLS

/* The key: SHA-256 of the token */
#define FL_TOKEN_CACHE_DIGEST_LEN 32

typedef struct _FlTokenCache FlTokenCache;

/* Holds at most max_entries tokens. */
FlTokenCache *fl_token_cache_new        (guint         max_entries);
void          fl_token_cache_free       (FlTokenCache *self);

/* A copy of the principal of the token with this digest, or NULL if there
 * is none or it has expired (now >= expires_at, in seconds).  An expired
 * entry is removed and sets *expired (nullable) to TRUE. */
FlPrincipal  *fl_token_cache_lookup     (FlTokenCache *self,
                                         const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN],
                                         gint64        now,
                                         gboolean     *expired);
/* Whether the digest is there, expired or not */
gboolean      fl_token_cache_contains   (FlTokenCache *self,
                                         const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN]);
/* Takes principal and replaces any entry with the same digest.  Expired
 * entries go at the latest a minute after their expiry (on the next
 * insert), or at once when the cache is full; a cache still full of live
 * tokens then drops any one of them. */
void          fl_token_cache_insert     (FlTokenCache *self,
                                         const guint8  digest[FL_TOKEN_CACHE_DIGEST_LEN],
                                         FlPrincipal  *principal,
                                         gint64        now);
/* Drops every token of this subject (a user disabled or signed out) */
void          fl_token_cache_remove_sub (FlTokenCache *self,
                                         const char   *sub);
void          fl_token_cache_clear      (FlTokenCache *self);
guint         fl_token_cache_get_size   (FlTokenCache *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlTokenCache, fl_token_cache_free)

G_END_DECLS
