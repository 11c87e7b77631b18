/* fl-trusted-issuer-private.h: knobs for tests only.  Call them right after
 * fl_trusted_issuer_new (), before any other use of the issuer. */
#pragma once

#include "fl-trusted-issuer.h"

G_BEGIN_DECLS

/* Returns the current time in microseconds since the epoch. */
typedef gint64 (*FlTrustedIssuerClockFunc) (gpointer user_data);

/* Replaces the wall clock used for token expiry, the token cache and the
 * once-a-minute limit on refetches for unknown keys.  NULL restores
 * g_get_real_time (). */
void     _fl_trusted_issuer_set_clock            (FlTrustedIssuer          *self,
                                                  FlTrustedIssuerClockFunc  clock,
                                                  gpointer                  user_data);

/* The period of the automatic reload (an hour) and the deadline of one
 * fetch (10 s), in milliseconds. */
void     _fl_trusted_issuer_set_refresh_interval (FlTrustedIssuer          *self,
                                                  guint                     interval_ms);
void     _fl_trusted_issuer_set_fetch_timeout    (FlTrustedIssuer          *self,
                                                  guint                     timeout_ms);

/* TRUE while a load or refetch is scheduled or running */
gboolean _fl_trusted_issuer_is_loading           (FlTrustedIssuer          *self);

guint    _fl_trusted_issuer_get_token_cache_size (FlTrustedIssuer          *self);

G_END_DECLS
