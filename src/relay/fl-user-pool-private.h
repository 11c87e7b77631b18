/* fl-user-pool-private.h: knobs for tests and benchmarks only.  Call them
 * right after fl_user_pool_open (), before any other use of the pool. */
#pragma once

#include "fl-user-pool.h"

G_BEGIN_DECLS

/* Returns the current time in microseconds since the epoch. */
typedef gint64 (*FlUserPoolClockFunc) (gpointer user_data);

/* Replaces the wall clock used for token times, token expiry, the token
 * cache, refresh-token expiry and sign-in throttling.  NULL restores
 * g_get_real_time (). */
void   _fl_user_pool_set_clock            (FlUserPool          *self,
                                           FlUserPoolClockFunc  clock,
                                           gpointer             user_data);

/* Sets the argon2id cost of new hashes (and of the dummy hash used for
 * unknown users).  Tests use tiny costs; the defaults are the real ones. */
void   _fl_user_pool_set_argon2_params    (FlUserPool          *self,
                                           guint32              t_cost,
                                           guint32              m_cost_kib,
                                           guint32              parallelism);

/* Drops every cached verified token, so the next authenticate does the
 * full RSA verification. */
void   _fl_user_pool_clear_token_cache    (FlUserPool          *self);
guint  _fl_user_pool_get_token_cache_size (FlUserPool          *self);

G_END_DECLS
