/* fl-srp.h: SRP-6a as Amazon Cognito does it (USER_SRP_AUTH,
 * PASSWORD_VERIFIER), on GMP and GnuTLS. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define FL_SRP_ERROR (fl_srp_error_quark ())

typedef enum {
  FL_SRP_ERROR_INVALID_PARAMETER, /* bad hex, base64, timestamp; A, B or u is 0 mod N */
  FL_SRP_ERROR_NOT_AUTHORIZED,    /* wrong signature (wrong password), stale timestamp, reused challenge */
  FL_SRP_ERROR_FAILED,            /* no random numbers */
} FlSrpError;

GQuark fl_srp_error_quark (void);

/* How far (seconds) a client's TIMESTAMP may be from the server's clock. */
#define FL_SRP_TIMESTAMP_LEEWAY 300

/* In all of these, pool_name is the part of the user pool id after the
 * "_" ("AbC123" of "local_AbC123") and user_id is USER_ID_FOR_SRP. */

/* ---- the server: verifiers and one PASSWORD_VERIFIER challenge ---- */

/* A random 16-byte salt and its verifier (384 bytes, big-endian). */
gboolean     fl_srp_make_verifier          (const char   *pool_name,
                                            const char   *user_id,
                                            const char   *password,
                                            GBytes      **salt_out,
                                            GBytes      **verifier_out,
                                            GError      **error);
GBytes      *fl_srp_compute_verifier       (const char   *pool_name,
                                            const char   *user_id,
                                            const char   *password,
                                            GBytes       *salt);

/* One challenge, for one verifier, with a random private value b. */
typedef struct _FlSrpServer FlSrpServer;

FlSrpServer *fl_srp_server_new             (GBytes       *verifier,
                                            GError      **error);
/* SRP_B: lower-case hex without leading zeros, as Cognito sends it. */
char        *fl_srp_server_get_public_hex  (FlSrpServer  *self);
/* Checks the client's SRP_A, TIMESTAMP (against the clock, within
 * FL_SRP_TIMESTAMP_LEEWAY) and PASSWORD_CLAIM_SIGNATURE.  A challenge is
 * answered once: later calls fail with FL_SRP_ERROR_NOT_AUTHORIZED. */
gboolean     fl_srp_server_verify          (FlSrpServer  *self,
                                            const char   *a_hex,
                                            const char   *pool_name,
                                            const char   *user_id,
                                            GBytes       *secret_block,
                                            const char   *timestamp,
                                            const char   *signature_b64,
                                            GError      **error);
void         fl_srp_server_free            (FlSrpServer  *self);

/* ---- the client (USER_SRP_AUTH) ---- */

typedef struct _FlSrpClient FlSrpClient;

/* A random private value a. */
FlSrpClient *fl_srp_client_new             (void);
/* SRP_A: lower-case hex without leading zeros, as Cognito's clients send
 * it. */
char        *fl_srp_client_get_public_hex  (FlSrpClient  *self);
/* PASSWORD_CLAIM_SIGNATURE (base64) for the challenge parameters SALT,
 * SRP_B and SECRET_BLOCK and the TIMESTAMP the client will send. */
char        *fl_srp_client_sign            (FlSrpClient  *self,
                                            const char   *pool_name,
                                            const char   *user_id,
                                            const char   *password,
                                            const char   *salt_hex,
                                            const char   *b_hex,
                                            const char   *secret_block_b64,
                                            const char   *timestamp,
                                            GError      **error);
void         fl_srp_client_free            (FlSrpClient  *self);

/* ---- TIMESTAMP: "EEE MMM d HH:mm:ss UTC yyyy", English, UTC ---- */

/* e.g. "Fri Nov 6 08:03:09 UTC 2026" (the day is not zero-padded) */
char        *fl_srp_format_timestamp       (GDateTime    *time);
/* Strict: exactly what fl_srp_format_timestamp() writes (so no padding,
 * and the right weekday) for a real time in 1970-9999.  FALSE for
 * anything else. */
gboolean     fl_srp_parse_timestamp        (const char   *text,
                                            gint64       *unix_seconds);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlSrpServer, fl_srp_server_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlSrpClient, fl_srp_client_free)

/* ---- For tests only: fixed private values, intermediate values ----
 *
 * Never use these outside tests: a fixed private value breaks SRP. */

/* Lower-case hex without leading zeros (key_hex: 16 bytes, 32 digits).
 * A server leaves x_hex NULL. */
typedef struct {
  char *k_hex;
  char *x_hex;
  char *u_hex;
  char *s_hex;
  char *key_hex;
} FlSrpTrace;

void         _fl_srp_trace_clear           (FlSrpTrace   *trace);
/* NULL if a_hex is not hex or is 0 */
FlSrpClient *_fl_srp_client_new_with_private (const char *a_hex);
FlSrpServer *_fl_srp_server_new_with_private (GBytes     *verifier,
                                              const char *b_hex,
                                              GError    **error);
/* fl_srp_client_sign, filling trace (optional) */
char        *_fl_srp_client_sign_traced    (FlSrpClient  *self,
                                            const char   *pool_name,
                                            const char   *user_id,
                                            const char   *password,
                                            const char   *salt_hex,
                                            const char   *b_hex,
                                            const char   *secret_block_b64,
                                            const char   *timestamp,
                                            FlSrpTrace   *trace,
                                            GError      **error);
/* fl_srp_server_verify with the clock at now (seconds), filling trace
 * (optional) */
gboolean     _fl_srp_server_verify_at      (FlSrpServer  *self,
                                            const char   *a_hex,
                                            const char   *pool_name,
                                            const char   *user_id,
                                            GBytes       *secret_block,
                                            const char   *timestamp,
                                            const char   *signature_b64,
                                            gint64        now,
                                            FlSrpTrace   *trace,
                                            GError      **error);

G_END_DECLS
