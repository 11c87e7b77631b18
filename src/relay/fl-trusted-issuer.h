/* fl-trusted-issuer.h: accepts the ID and access tokens of an Amazon
 * Cognito user pool somewhere else (in the cloud), so that its users can
 * use this relay.
 *
 * The pool's public keys (its JWKS) come from a file or from a URL; a URL
 * is fetched with libsoup, never on the caller's time: load_async at
 * start-up, then by itself every hour and when a token names a key it does
 * not know (at most once a minute).
 *
 * Threads: make, load and unref an issuer on one thread (it uses that
 * thread's default main context); authenticate and claims_issuer may be
 * called from any thread.
 */
#pragma once

#include <gio/gio.h>

#include "fl-user-pool.h"

G_BEGIN_DECLS

#define FL_TYPE_TRUSTED_ISSUER (fl_trusted_issuer_get_type ())
G_DECLARE_FINAL_TYPE (FlTrustedIssuer, fl_trusted_issuer, FL, TRUSTED_ISSUER, GObject)

/* issuer is https://cognito-idp.<region>.amazonaws.com/<pool id>, exactly
 * as the pool writes it into "iss".  jwks is a file path, or an https://
 * URL (http:// only to a loopback address), or NULL for the pool's own
 * <issuer>/.well-known/jwks.json.  A file is read at once and must hold at
 * least one RS256 key; a URL is only fetched by load_async (or by the
 * first token).  Bad arguments: FL_AUTH_ERROR_INVALID_PARAMETER. */
FlTrustedIssuer *fl_trusted_issuer_new             (const char          *issuer,
                                                    const char          *client_id,
                                                    const char          *jwks,
                                                    GError             **error);
const char      *fl_trusted_issuer_get_issuer      (FlTrustedIssuer     *self);
const char      *fl_trusted_issuer_get_client_id   (FlTrustedIssuer     *self);
/* The file path or URL the keys come from */
const char      *fl_trusted_issuer_get_jwks        (FlTrustedIssuer     *self);

/* (Re)reads the JWKS (fetches it, for a URL: 10 s at most) and on success
 * replaces the keys.  On failure the keys stay as they were; the error's
 * domain is that of what failed (G_IO_ERROR, a TLS or soup error for the
 * transfer, FL_JWT_ERROR_KEY for a bad document).  Without a callback, a
 * failure is logged with g_warning instead. */
void             fl_trusted_issuer_load_async      (FlTrustedIssuer     *self,
                                                    GCancellable        *cancellable,
                                                    GAsyncReadyCallback  callback,
                                                    gpointer             user_data);
gboolean         fl_trusted_issuer_load_finish     (FlTrustedIssuer     *self,
                                                    GAsyncResult        *result,
                                                    GError             **error);

/* A cheap look at the unverified payload: TRUE when its "iss" is this
 * issuer, so the relay can hand a token to the right verifier.  Proves
 * nothing about the token. */
gboolean         fl_trusted_issuer_claims_issuer   (FlTrustedIssuer     *self,
                                                    const char          *token);

/* Checks a bearer token as AWS documents for Cognito: RS256 with a known
 * kid and a good signature, exp in the future (no leeway), iss, then
 * token_use "access" (client_id must be ours) or "id" (aud must be ours).
 * Fast: a verified token is cached until it expires.  Every refusal is
 * FL_AUTH_ERROR_NOT_AUTHORIZED with a message that says why. */
FlPrincipal     *fl_trusted_issuer_authenticate    (FlTrustedIssuer     *self,
                                                    const char          *token,
                                                    GError             **error);

G_END_DECLS
