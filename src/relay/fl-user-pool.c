/* fl-user-pool.c: the relay's user pool, shaped like an Amazon Cognito
 * user pool: users and groups in SQLite, argon2id password hashes, RS256
 * ID and access tokens with Cognito's claims, opaque refresh tokens.
 *
 * Threads: fl_user_pool_authenticate runs on the caller's thread (the main
 * loop) and touches only memory.  Password hashing runs on a small shared
 * thread pool (one thread per CPU: each hash holds 19 MiB), everything
 * that touches SQLite on worker threads, behind db_lock.
 */
#define G_LOG_DOMAIN "fl-user-pool"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "fl-auth-private.h"
#include "fl-jwt.h"
#include "fl-srp.h"
#include "fl-token-cache.h"
#include "fl-user-pool-private.h"
#include "fl-user-pool.h"

/* clang-format off */
G_DEFINE_QUARK (fl-auth-error-quark, fl_auth_error)
/* clang-format on */

#define SCHEMA_VERSION 2

/* Token lifetimes, as Cognito's defaults (fl_user_pool_set_lifetimes) */
#define TOKEN_LIFETIME_S 3600
#define REFRESH_LIFETIME_S (30 * 24 * 3600)
#define MAX_TOKEN_LIFETIME_S (24 * 3600)

/* Codes sent by email: six digits, valid once, for a day (sign-up) or an
 * hour (password reset), and refused after CODE_MAX_ATTEMPTS wrong ones */
#define SIGNUP_CODE_LIFETIME_S (24 * 3600)
#define RESET_CODE_LIFETIME_S 3600
#define CODE_MAX_ATTEMPTS 5

/* Sign-in state between two calls: an SRP exchange (keyed by its secret
 * block) and a NEW_PASSWORD_REQUIRED session, as Cognito's 3 minutes */
#define FLOW_LIFETIME_US (3 * 60 * G_USEC_PER_SEC)
#define FLOW_MAX_ENTRIES 4096

#define ACCESS_SCOPE "aws.cognito.signin.user.admin"

/* argon2id at OWASP's first recommended setting: t = 2 passes over
 * m = 19 MiB with p = 1 lane.  About 30-60 ms on one core of the CI
 * machines; the hash output is 32 bytes with a 16-byte random salt. */
#define ARGON2_T_COST 2
#define ARGON2_M_COST_KIB (19 * 1024)
#define ARGON2_LANES 1
#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32

#define MAX_USERNAME_CHARS 128
#define MAX_PASSWORD_CHARS 256
#define MAX_PASSWORD_BYTES 1024
#define MAX_EMAIL_LEN 254
#define MAX_TOKEN_LEN 16384
#define REFRESH_TOKEN_BYTES 32
#define REFRESH_TOKEN_LEN 43 /* base64url of 32 bytes */

/* Sign-in throttling.  Each user and each client address counts failed
 * sign-ins.  From the FREE-th failure on, each failure closes sign-in for
 * 1 s, 2 s, 4 s, ... up to THROTTLE_CAP; attempts while closed are refused
 * without being counted, so no one (attacker or not) can push a window
 * past the cap: a user is never locked out for more than 15 minutes at a
 * time.  A success clears the user's count; an address's count is only
 * forgotten after an hour without failures (so an attacker cannot clear
 * it by signing in to an account of their own). */
#define THROTTLE_USER_FREE 5
#define THROTTLE_ADDR_FREE 20
#define THROTTLE_BASE_US G_GINT64_CONSTANT (1000000)
#define THROTTLE_CAP_US (15 * 60 * THROTTLE_BASE_US)
#define THROTTLE_FORGET_US (60 * 60 * THROTTLE_BASE_US)
#define THROTTLE_MAX_ENTRIES 10000

/* Verified-token cache */
#define TOKEN_CACHE_MAX 4096

/* Sign-ins waiting for a hashing thread beyond this are refused */
#define MAX_PENDING_LOGINS 64

#define NOT_AUTHORIZED_MESSAGE "Incorrect username or password."

typedef struct
{
  guint32 t_cost;
  guint32 m_cost_kib;
  guint32 lanes;
} Argon2Params;

typedef struct
{
  guint  failures;
  gint64 last_failure;  /* µs */
  gint64 blocked_until; /* µs */
} Throttle;

struct _FlUserPool
{
  GObject parent_instance;

  char *data_dir;
  char *pool_id;
  char *client_id;

  FlUserPoolClockFunc clock;
  gpointer            clock_data;

  /* Signing keys: ID tokens and access tokens use different keys; a token
   * must verify with the key of its own token_use. */
  FlJwtKey    *id_key;
  FlJwtKey    *access_key;
  FlJwtKeySet *id_keys;
  FlJwtKeySet *access_keys;
  FlJwtKeySet *all_keys; /* published as the JWKS */

  GMutex   db_lock; /* guards db */
  sqlite3 *db;

  GMutex       state_lock; /* guards issuer, argon2, dummy_hash */
  char        *issuer;
  GPtrArray   *old_issuers; /* keeps get_issuer () results valid */
  Argon2Params argon2;
  char        *dummy_hash;

  GMutex        cache_lock; /* guards token_cache, disabled_subs */
  FlTokenCache *token_cache;
  GHashTable   *disabled_subs; /* sub → sub */

  GMutex      throttle_lock;
  GHashTable *user_throttle; /* folded username → Throttle */
  GHashTable *addr_throttle; /* client address → Throttle */

  /* under state_lock */
  guint            token_lifetime;   /* s, ID and access tokens */
  guint            refresh_lifetime; /* s */
  gboolean         auto_confirm;
  FlPasswordPolicy policy;
  GHashTable      *clients;          /* client id → AppClient */

  /* under cache_lock, with disabled_subs: the sign-ins signed out
   * (GlobalSignOut, RevokeToken), whose access tokens are refused */
  GHashTable *revoked_origins; /* origin_jti → origin_jti */

  GMutex      flow_lock;
  GHashTable *srp_flows;       /* secret block (base64) → SrpFlow */
  GHashTable *new_password_flows; /* session → PasswordFlow */

  GPtrArray  *retired_keys;    /* FlJwtKey, still published */
  char       *fake_salt_key;   /* makes unknown users' SRP salts stable */
};

/* An operation for the hashing threads (fl_user_pool_run_async) */
typedef struct
{
  GTaskThreadFunc func;
  gpointer        data;
  GDestroyNotify  data_free;
} PoolJob;

/* An app client, as Cognito's UserPoolClient */
typedef struct
{
  char       *client_id;
  char       *name;
  char       *secret; /* NULL: a public client */
  FlAuthFlows flows;
} AppClient;

static void
app_client_free (AppClient *client)
{
  g_free (client->client_id);
  g_free (client->name);
  if (client->secret != NULL)
    gnutls_memset (client->secret, 0, strlen (client->secret));
  g_free (client->secret);
  g_free (client);
}

G_DEFINE_FINAL_TYPE (FlUserPool, fl_user_pool, G_TYPE_OBJECT)

typedef struct _SrpFlow      SrpFlow;
typedef struct _PasswordFlow PasswordFlow;
static void srp_flow_free      (SrpFlow *flow);
static void password_flow_free (PasswordFlow *flow);
static gboolean load_clients      (FlUserPool *self,
                                   GError    **error);
static gboolean load_retired_keys (FlUserPool *self,
                                   GError    **error);

/* A users row with its groups */
typedef struct
{
  gint64   id;
  char    *username;
  char    *sub;
  char    *email;
  char    *status;
  char    *password_hash;
  gboolean email_verified;
  gboolean enabled;
  GStrv    groups;
  GBytes  *srp_salt;     /* NULL until a password is set with SRP */
  GBytes  *srp_verifier;
} UserRecord;

static void
user_record_free (UserRecord *user)
{
  if (user == NULL)
    return;

  g_free (user->username);
  g_free (user->sub);
  g_free (user->email);
  g_free (user->status);
  g_free (user->password_hash);
  g_strfreev (user->groups);
  g_clear_pointer (&user->srp_salt, g_bytes_unref);
  g_clear_pointer (&user->srp_verifier, g_bytes_unref);
  g_free (user);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UserRecord, user_record_free)

/* ------------------------------------------------------------------ */
/* Roles, principals, tokens                                          */

const char *
fl_role_to_string (FlRole role)
{
  switch (role)
    {
    case FL_ROLE_VIEWER:
      return "viewer";
    case FL_ROLE_OPERATOR:
      return "operator";
    case FL_ROLE_ADMIN:
      return "admin";
    case FL_ROLE_NONE:
    default:
      return "none";
    }
}

gboolean
fl_role_from_string (const char *str,
                     FlRole     *role)
{
  static const FlRole roles[] = { FL_ROLE_NONE, FL_ROLE_VIEWER, FL_ROLE_OPERATOR, FL_ROLE_ADMIN };

  if (str == NULL)
    return FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (roles); i++)
    {
      if (strcmp (str, fl_role_to_string (roles[i])) == 0)
        {
          if (role != NULL)
            *role = roles[i];
          return TRUE;
        }
    }

  return FALSE;
}

FlRole
fl_role_from_groups (const char *const *groups)
{
  FlRole best = FL_ROLE_NONE;

  for (guint i = 0; groups != NULL && groups[i] != NULL; i++)
    {
      FlRole role;

      if (fl_role_from_string (groups[i], &role) && role > best)
        best = role;
    }

  return best;
}

void
fl_principal_free (FlPrincipal *principal)
{
  if (principal == NULL)
    return;

  g_free (principal->sub);
  g_free (principal->username);
  g_free (principal->email);
  g_strfreev (principal->groups);
  g_free (principal->origin_jti);
  g_free (principal);
}

FlPrincipal *
fl_principal_copy (const FlPrincipal *src)
{
  FlPrincipal *p = g_new0 (FlPrincipal, 1);

  p->sub = g_strdup (src->sub);
  p->username = g_strdup (src->username);
  p->email = g_strdup (src->email);
  p->groups = g_strdupv (src->groups);
  p->role = src->role;
  p->expires_at = src->expires_at;
  p->access = src->access;
  p->origin_jti = g_strdup (src->origin_jti);

  return p;
}

/* Any 64-bit double beyond ±2^53 s is no date */
#define MAX_DOUBLE_DATE 9007199254740992.0

/**
 * fl_principal_new_from_claims:
 * @claims: the payload of a token whose signature was verified
 *
 * Maps Cognito claims to who they speak for.  Checks only that the claims
 * it reads are there and well typed; iss, aud, client_id and which
 * token_use is wanted are the caller's to check.
 *
 * Returns: (transfer full): the principal, or NULL with
 *   FL_AUTH_ERROR_NOT_AUTHORIZED
 */
FlPrincipal *
fl_principal_new_from_claims (JsonObject *claims,
                              GError    **error)
{
  g_autoptr (FlPrincipal)  principal = NULL;
  g_autoptr (GStrvBuilder) groups = NULL;
  const char              *use, *sub, *username, *email;
  JsonNode                *node;
  GType                    exp_type = G_TYPE_INVALID;
  gint64                   exp;

  g_return_val_if_fail (claims != NULL, NULL);

  use = _fl_json_get_string (claims, "token_use");
  if (g_strcmp0 (use, "access") == 0)
    {
      username = _fl_json_get_string (claims, "username");
      email = NULL;
    }
  else if (g_strcmp0 (use, "id") == 0)
    {
      username = _fl_json_get_string (claims, "cognito:username");
      email = _fl_json_get_string (claims, "email");
    }
  else
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                           "Token use is not \"access\" or \"id\".");
      return NULL;
    }

  sub = _fl_json_get_string (claims, "sub");
  if (sub == NULL || *sub == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Token has no subject.");
      return NULL;
    }
  if (username == NULL || *username == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Token has no username.");
      return NULL;
    }

  groups = g_strv_builder_new ();
  node = json_object_get_member (claims, "cognito:groups");
  if (node != NULL)
    {
      JsonArray *array = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
      guint      n = array != NULL ? json_array_get_length (array) : 0;

      for (guint i = 0; i < n; i++)
        {
          JsonNode *element = json_array_get_element (array, i);

          if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
            {
              array = NULL;
              break;
            }
          g_strv_builder_add (groups, json_node_get_string (element));
        }

      if (array == NULL)
        {
          g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                               "Token groups are not a list of names.");
          return NULL;
        }
    }

  /* an integer, or a double as some encoders write it */
  node = json_object_get_member (claims, "exp");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node))
    exp_type = json_node_get_value_type (node);
  if (exp_type == G_TYPE_INT64)
    exp = json_node_get_int (node);
  else if (exp_type == G_TYPE_DOUBLE && ABS (json_node_get_double (node)) < MAX_DOUBLE_DATE)
    exp = (gint64) json_node_get_double (node);
  else
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Token has no expiry time.");
      return NULL;
    }

  principal = g_new0 (FlPrincipal, 1);
  principal->sub = g_strdup (sub);
  principal->username = g_strdup (username);
  principal->email = g_strdup (email);
  principal->groups = g_strv_builder_end (groups);
  principal->role = fl_role_from_groups ((const char *const *) principal->groups);
  principal->expires_at = exp;
  principal->access = strcmp (use, "access") == 0;
  principal->origin_jti = g_strdup (_fl_json_get_string (claims, "origin_jti"));

  return g_steal_pointer (&principal);
}

static void
wipe_string (char *s)
{
  if (s != NULL)
    {
      gnutls_memset (s, 0, strlen (s));
      g_free (s);
    }
}

void
fl_tokens_free (FlTokens *tokens)
{
  if (tokens == NULL)
    return;

  wipe_string (tokens->id_token);
  wipe_string (tokens->access_token);
  wipe_string (tokens->refresh_token);
  g_free (tokens);
}

/**
 * fl_tokens_to_json:
 *
 * Returns: (transfer full): {idToken, accessToken, refreshToken,
 *   expiresIn}; refreshToken is left out when there is none (a refresh
 *   returns no new refresh token, as in Cognito)
 */
JsonNode *
fl_tokens_to_json (FlTokens *tokens)
{
  JsonObject *obj;
  JsonNode   *node;

  g_return_val_if_fail (tokens != NULL, NULL);

  obj = json_object_new ();
  json_object_set_string_member (obj, "idToken", tokens->id_token);
  json_object_set_string_member (obj, "accessToken", tokens->access_token);
  if (tokens->refresh_token != NULL)
    json_object_set_string_member (obj, "refreshToken", tokens->refresh_token);
  json_object_set_int_member (obj, "expiresIn", tokens->expires_in);

  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, obj);

  return node;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static gint64
pool_now_us (FlUserPool *self)
{
  return self->clock != NULL ? self->clock (self->clock_data) : g_get_real_time ();
}

static gint64
pool_now_s (FlUserPool *self)
{
  return pool_now_us (self) / G_USEC_PER_SEC;
}

/* len characters drawn uniformly from alphabet (rejection sampling) */
static char *
random_string (const char *alphabet,
               gsize       len)
{
  gsize n = strlen (alphabet);
  guint limit = 256 - (256 % n);
  char *out = g_malloc (len + 1);
  gsize i = 0;

  while (i < len)
    {
      guint8 buf[32];

      if (gnutls_rnd (GNUTLS_RND_NONCE, buf, sizeof buf) < 0)
        g_error ("The system random number generator failed");
      for (gsize j = 0; j < sizeof buf && i < len; j++)
        if (buf[j] < limit)
          out[i++] = alphabet[buf[j] % n];
    }
  out[len] = '\0';

  return out;
}

/* ------------------------------------------------------------------ */
/* Input checks                                                        */

static gboolean
check_username (const char *username,
                GError    **error)
{
  glong n_chars;

  if (username == NULL || *username == '\0')
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER, "A username is required.");
      return FALSE;
    }

  if (strlen (username) > MAX_USERNAME_CHARS * 4 || !g_utf8_validate (username, -1, NULL) || (n_chars = g_utf8_strlen (username, -1)) > MAX_USERNAME_CHARS)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "A username is 1 to %d characters of UTF-8.", MAX_USERNAME_CHARS);
      return FALSE;
    }

  for (const char *p = username; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_isspace (c) || g_unichar_iscntrl (c) || !g_unichar_isdefined (c))
        {
          g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                       "A username may not contain spaces or control characters.");
          return FALSE;
        }
    }

  return TRUE;
}

static gboolean
check_email (const char *email,
             GError    **error)
{
  const char *at;

  if (email == NULL)
    return TRUE;

  at = strchr (email, '@');
  if (strlen (email) > MAX_EMAIL_LEN || !g_utf8_validate (email, -1, NULL) || at == NULL || at == email || at[1] == '\0' || strchr (at + 1, '@') != NULL)
    goto bad;

  for (const char *p = email; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_isspace (c) || g_unichar_iscntrl (c))
        goto bad;
    }

  return TRUE;

bad:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER, "Invalid email address format.");
  return FALSE;
}

/* At least 8 characters with an uppercase letter, a lowercase letter, a
 * digit and a symbol (ASCII punctuation), as Cognito's default policy.
 * The message names everything that is missing. */
static gboolean
check_password_policy (const FlPasswordPolicy *policy,
                       const char             *password,
                       GError                **error)
{
  g_autoptr (GPtrArray) problems = NULL;
  g_autofree char      *joined = NULL;
  gboolean              upper = FALSE, lower = FALSE, digit = FALSE, symbol = FALSE;
  glong                 n_chars;
  gsize                 len;

  if (password == NULL || (len = strlen (password)) > MAX_PASSWORD_BYTES || !g_utf8_validate (password, -1, NULL))
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD,
                   "Password did not conform with policy: Password must be %u to %d characters of UTF-8",
                   policy->min_length, MAX_PASSWORD_CHARS);
      return FALSE;
    }

  for (const char *p = password; *p; p++)
    {
      if (g_ascii_isupper (*p))
        upper = TRUE;
      else if (g_ascii_islower (*p))
        lower = TRUE;
      else if (g_ascii_isdigit (*p))
        digit = TRUE;
      else if (g_ascii_ispunct (*p))
        symbol = TRUE;
    }

  problems = g_ptr_array_new ();
  n_chars = g_utf8_strlen (password, -1);
  if (n_chars < (glong) policy->min_length)
    g_ptr_array_add (problems, (gpointer) "Password not long enough");
  if (n_chars > MAX_PASSWORD_CHARS)
    g_ptr_array_add (problems, (gpointer) "Password is too long");
  if (policy->require_upper && !upper)
    g_ptr_array_add (problems, (gpointer) "Password must have uppercase characters");
  if (policy->require_lower && !lower)
    g_ptr_array_add (problems, (gpointer) "Password must have lowercase characters");
  if (policy->require_digit && !digit)
    g_ptr_array_add (problems, (gpointer) "Password must have numeric characters");
  if (policy->require_symbol && !symbol)
    g_ptr_array_add (problems, (gpointer) "Password must have symbol characters");
  if (len > 0 && (g_ascii_isspace (password[0]) || g_ascii_isspace (password[len - 1])))
    g_ptr_array_add (problems, (gpointer) "Password must not begin or end with a space");

  if (problems->len == 0)
    return TRUE;

  g_ptr_array_add (problems, NULL);
  joined = g_strjoinv ("; ", (char **) problems->pdata);
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD,
               "Password did not conform with policy: %s", joined);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* argon2id                                                            */

static Argon2Params
pool_get_argon2 (FlUserPool *self)
{
  Argon2Params params;

  g_mutex_lock (&self->state_lock);
  params = self->argon2;
  g_mutex_unlock (&self->state_lock);

  return params;
}

static char *
hash_password (const Argon2Params *params,
               const char         *password,
               GError            **error)
{
  guint8           salt[ARGON2_SALT_LEN];
  g_autofree char *encoded = NULL;
  gsize            encoded_len;
  int              rc;

  if (gnutls_rnd (GNUTLS_RND_NONCE, salt, sizeof salt) < 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No random numbers");
      return NULL;
    }

  encoded_len = argon2_encodedlen (params->t_cost, params->m_cost_kib, params->lanes,
                                   ARGON2_SALT_LEN, ARGON2_HASH_LEN, Argon2_id);
  encoded = g_malloc0 (encoded_len);
  rc = argon2id_hash_encoded (params->t_cost, params->m_cost_kib, params->lanes,
                              password, strlen (password), salt, sizeof salt,
                              ARGON2_HASH_LEN, encoded, encoded_len);
  if (rc != ARGON2_OK)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL,
                   "Password hashing failed: %s", argon2_error_message (rc));
      return NULL;
    }

  return g_steal_pointer (&encoded);
}

/* Whether an encoded hash was made with other parameters than params. */
static gboolean
hash_needs_update (const char         *encoded,
                   const Argon2Params *params)
{
  g_autofree char *prefix = g_strdup_printf ("$argon2id$v=%d$m=%u,t=%u,p=%u$",
                                             ARGON2_VERSION_NUMBER, params->m_cost_kib,
                                             params->t_cost, params->lanes);

  return !g_str_has_prefix (encoded, prefix);
}

/* A hash of a random password, verified against when the user does not
 * exist, so that unknown users cost as much time as wrong passwords. */
static char *
pool_dup_dummy_hash (FlUserPool *self)
{
  Argon2Params     params;
  g_autofree char *hash = NULL;
  g_autofree char *password = NULL;
  char            *ret;

  g_mutex_lock (&self->state_lock);
  ret = g_strdup (self->dummy_hash);
  params = self->argon2;
  g_mutex_unlock (&self->state_lock);

  if (ret != NULL)
    return ret;

  password = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 32);
  hash = hash_password (&params, password, NULL);
  if (hash == NULL)
    return NULL;

  g_mutex_lock (&self->state_lock);
  if (self->dummy_hash == NULL && !hash_needs_update (hash, &self->argon2))
    self->dummy_hash = g_strdup (hash);
  g_mutex_unlock (&self->state_lock);

  return g_steal_pointer (&hash);
}

/* ------------------------------------------------------------------ */
/* SQLite                                                              */

static gboolean
db_error (sqlite3    *db,
          const char *what,
          GError    **error)
{
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL,
               "User database: %s: %s", what, sqlite3_errmsg (db));
  return FALSE;
}

static gboolean
db_exec (sqlite3    *db,
         const char *sql,
         GError    **error)
{
  char *msg = NULL;

  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "User database: %s", msg ? msg : "error");
      sqlite3_free (msg);
      return FALSE;
    }

  return TRUE;
}

static sqlite3_stmt *
db_prepare (sqlite3    *db,
            const char *sql,
            GError    **error)
{
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL) != SQLITE_OK)
    {
      db_error (db, "prepare", error);
      return NULL;
    }

  return stmt;
}

typedef sqlite3_stmt DbStmt;
G_DEFINE_AUTOPTR_CLEANUP_FUNC (DbStmt, sqlite3_finalize)

static const char schema_v1[] = "CREATE TABLE meta ("
                                "  key   TEXT PRIMARY KEY,"
                                "  value TEXT NOT NULL"
                                ") WITHOUT ROWID;"
                                /* One row per user, as Cognito's user record.  status is Cognito's
                                 * UserStatus: UNCONFIRMED, CONFIRMED, FORCE_CHANGE_PASSWORD,
                                 * RESET_REQUIRED.  Times are seconds since the epoch. */
                                "CREATE TABLE users ("
                                "  id             INTEGER PRIMARY KEY,"
                                "  username       TEXT NOT NULL UNIQUE COLLATE NOCASE,"
                                "  sub            TEXT NOT NULL UNIQUE,"
                                "  email          TEXT,"
                                "  email_verified INTEGER NOT NULL DEFAULT 0,"
                                "  status         TEXT NOT NULL DEFAULT 'CONFIRMED',"
                                "  enabled        INTEGER NOT NULL DEFAULT 1,"
                                "  password_hash  TEXT NOT NULL," /* argon2id, encoded */
                                "  created_at     INTEGER NOT NULL,"
                                "  updated_at     INTEGER NOT NULL"
                                ");"
                                "CREATE INDEX users_email ON users (email);"
                                /* Cognito groups; precedence: lower wins */
                                "CREATE TABLE groups ("
                                "  name        TEXT PRIMARY KEY,"
                                "  precedence  INTEGER NOT NULL,"
                                "  description TEXT"
                                ") WITHOUT ROWID;"
                                "INSERT INTO groups (name, precedence, description) VALUES"
                                "  ('admin', 0, 'Users, devices and alert rules'),"
                                "  ('operator', 1, 'Commands and acknowledgements'),"
                                "  ('viewer', 2, 'Read only');"
                                "CREATE TABLE user_groups ("
                                "  user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
                                "  group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,"
                                "  PRIMARY KEY (user_id, group_name)"
                                ") WITHOUT ROWID;"
                                /* Refresh tokens are stored only as their SHA-256.  origin_jti and
                                 * event_id tie the tokens minted from one sign-in together (for
                                 * GlobalSignOut and RevokeToken). */
                                "CREATE TABLE refresh_tokens ("
                                "  token_hash BLOB PRIMARY KEY,"
                                "  user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
                                "  client_id  TEXT NOT NULL,"
                                "  origin_jti TEXT NOT NULL,"
                                "  event_id   TEXT NOT NULL,"
                                "  auth_time  INTEGER NOT NULL,"
                                "  created_at INTEGER NOT NULL,"
                                "  expires_at INTEGER NOT NULL,"
                                "  revoked    INTEGER NOT NULL DEFAULT 0"
                                ") WITHOUT ROWID;"
                                "CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);"
                                "CREATE INDEX refresh_tokens_origin ON refresh_tokens (origin_jti);"
                                "CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);";

/* Version 2: the Cognito protocol.  users get an SRP salt and verifier
 * (made whenever a password is set); codes holds the emailed codes
 * (hashed, one per user and purpose); clients the app clients. */
static const char schema_v2[] = "ALTER TABLE users ADD COLUMN srp_salt BLOB;"
                                "ALTER TABLE users ADD COLUMN srp_verifier BLOB;"
                                "CREATE TABLE codes ("
                                "  user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
                                "  purpose    TEXT NOT NULL," /* signup, reset */
                                "  code_hash  BLOB NOT NULL,"
                                "  expires_at INTEGER NOT NULL,"
                                "  attempts   INTEGER NOT NULL DEFAULT 0,"
                                "  PRIMARY KEY (user_id, purpose)"
                                ") WITHOUT ROWID;"
                                /* flows: a space-separated list of ALLOW_... names */
                                "CREATE TABLE clients ("
                                "  client_id  TEXT PRIMARY KEY,"
                                "  name       TEXT NOT NULL,"
                                "  secret     TEXT,"
                                "  flows      TEXT NOT NULL,"
                                "  created_at INTEGER NOT NULL"
                                ") WITHOUT ROWID;"
                                "INSERT INTO clients (client_id, name, secret, flows, created_at)"
                                "  SELECT value, 'fieldline', NULL,"
                                "    'ALLOW_USER_SRP_AUTH ALLOW_USER_PASSWORD_AUTH ALLOW_REFRESH_TOKEN_AUTH',"
                                "    strftime ('%s', 'now') FROM meta WHERE key = 'client_id';";

static gboolean
meta_set (sqlite3    *db,
          const char *key,
          const char *value,
          GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    return db_error (db, "meta", error);

  return TRUE;
}

static char *
meta_get (sqlite3    *db,
          const char *key,
          GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (db, "SELECT value FROM meta WHERE key = ?1", error);

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step (stmt) != SQLITE_ROW)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "User database: no %s", key);
      return NULL;
    }

  return g_strdup ((const char *) sqlite3_column_text (stmt, 0));
}

static gboolean
db_migrate (sqlite3 *db,
            gint64   now,
            GError **error)
{
  g_autoptr (DbStmt) stmt = NULL;
  gint64             version;

  if (!db_exec (db, "BEGIN IMMEDIATE", error))
    return FALSE;

  stmt = db_prepare (db, "PRAGMA user_version", error);
  if (stmt == NULL || sqlite3_step (stmt) != SQLITE_ROW)
    goto failed;
  version = sqlite3_column_int64 (stmt, 0);
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (version > SCHEMA_VERSION)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL,
                   "users.db has schema version %" G_GINT64_FORMAT "; this relay knows up to %d",
                   version, SCHEMA_VERSION);
      goto failed;
    }

  if (version < 1)
    {
      g_autofree char *pool_id = NULL;
      g_autofree char *pool_suffix = NULL;
      g_autofree char *client_id = NULL;
      g_autofree char *created = NULL;

      /* Cognito's shapes: <region>_<9 alnum> ("local" is our region) and
       * 26 lowercase alnum */
      pool_suffix = random_string ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 9);
      pool_id = g_strconcat ("local_", pool_suffix, NULL);
      client_id = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 26);
      created = g_strdup_printf ("%" G_GINT64_FORMAT, now);

      if (!db_exec (db, schema_v1, error) || !meta_set (db, "pool_id", pool_id, error) || !meta_set (db, "client_id", client_id, error) || !meta_set (db, "created_at", created, error))
        goto failed;
    }

  if (version < 2 && !db_exec (db, schema_v2, error))
    goto failed;

  if (version != SCHEMA_VERSION)
    {
      g_autofree char *sql = g_strdup_printf ("PRAGMA user_version = %d", SCHEMA_VERSION);

      if (!db_exec (db, sql, error))
        goto failed;
    }

  return db_exec (db, "COMMIT", error);

failed:
  db_exec (db, "ROLLBACK", NULL);
  return FALSE;
}

static gboolean
db_open (FlUserPool *self,
         GError    **error)
{
  g_autofree char *path = g_build_filename (self->data_dir, "users.db", NULL);
  int              fd;

  /* Made here so that it (and SQLite's -wal and -shm, which copy its
   * mode) is private to us: it holds password and token hashes. */
  fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not open %s: %s", path, g_strerror (saved_errno));
      return FALSE;
    }
  close (fd);

  if (sqlite3_open_v2 (path, &self->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE,
                       NULL)
      != SQLITE_OK)
    {
      if (self->db == NULL)
        {
          g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Could not open %s", path);
          return FALSE;
        }
      return db_error (self->db, "open", error);
    }

  sqlite3_busy_timeout (self->db, 5000);
  sqlite3_extended_result_codes (self->db, 1);

  return db_exec (self->db,
                  "PRAGMA journal_mode = WAL;"
                  "PRAGMA synchronous = NORMAL;"
                  "PRAGMA foreign_keys = ON;",
                  error)
         && db_migrate (self->db, pool_now_s (self), error);
}

/* Called with db_lock held. */
static GStrv
db_load_groups (FlUserPool *self,
                gint64      user_id,
                GError    **error)
{
  g_autoptr (DbStmt)       stmt = NULL;
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  int                      rc;

  stmt = db_prepare (self->db, "SELECT group_name FROM user_groups WHERE user_id = ?1 ORDER BY group_name", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, user_id);

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_strv_builder_add (builder, (const char *) sqlite3_column_text (stmt, 0));

  if (rc != SQLITE_DONE)
    {
      db_error (self->db, "groups", error);
      return NULL;
    }

  return g_strv_builder_end (builder);
}

#define USER_COLUMNS "id, username, sub, email, email_verified, status, enabled, password_hash," \
                     " srp_salt, srp_verifier"

/* Called with db_lock held.  Returns NULL without an error if there is
 * no such user. */
static UserRecord *
db_load_user (FlUserPool *self,
              const char *username,
              gint64      user_id,
              GError    **error)
{
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (UserRecord) user = NULL;
  int                    rc;

  if (username != NULL)
    {
      stmt = db_prepare (self->db, "SELECT " USER_COLUMNS " FROM users WHERE username = ?1", error);
      if (stmt == NULL)
        return NULL;
      sqlite3_bind_text (stmt, 1, username, -1, SQLITE_STATIC);
    }
  else
    {
      stmt = db_prepare (self->db, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", error);
      if (stmt == NULL)
        return NULL;
      sqlite3_bind_int64 (stmt, 1, user_id);
    }

  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    return NULL;
  if (rc != SQLITE_ROW)
    {
      db_error (self->db, "users", error);
      return NULL;
    }

  user = g_new0 (UserRecord, 1);
  user->id = sqlite3_column_int64 (stmt, 0);
  user->username = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
  user->sub = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
  user->email = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
  user->email_verified = sqlite3_column_int (stmt, 4) != 0;
  user->status = g_strdup ((const char *) sqlite3_column_text (stmt, 5));
  user->enabled = sqlite3_column_int (stmt, 6) != 0;
  user->password_hash = g_strdup ((const char *) sqlite3_column_text (stmt, 7));
  if (sqlite3_column_type (stmt, 8) == SQLITE_BLOB && sqlite3_column_type (stmt, 9) == SQLITE_BLOB)
    {
      user->srp_salt = g_bytes_new (sqlite3_column_blob (stmt, 8), sqlite3_column_bytes (stmt, 8));
      user->srp_verifier = g_bytes_new (sqlite3_column_blob (stmt, 9), sqlite3_column_bytes (stmt, 9));
    }

  user->groups = db_load_groups (self, user->id, error);
  if (user->groups == NULL)
    return NULL;

  return g_steal_pointer (&user);
}

/* Called with db_lock held. */
static gboolean
db_set_role (FlUserPool *self,
             gint64      user_id,
             FlRole      role,
             GError    **error)
{
  g_autoptr (DbStmt) del = NULL;
  g_autoptr (DbStmt) ins = NULL;

  del = db_prepare (self->db, "DELETE FROM user_groups WHERE user_id = ?1", error);
  if (del == NULL)
    return FALSE;
  sqlite3_bind_int64 (del, 1, user_id);
  if (sqlite3_step (del) != SQLITE_DONE)
    return db_error (self->db, "groups", error);

  if (role == FL_ROLE_NONE)
    return TRUE;

  ins = db_prepare (self->db, "INSERT INTO user_groups (user_id, group_name) VALUES (?1, ?2)", error);
  if (ins == NULL)
    return FALSE;
  sqlite3_bind_int64 (ins, 1, user_id);
  sqlite3_bind_text (ins, 2, fl_role_to_string (role), -1, SQLITE_STATIC);
  if (sqlite3_step (ins) != SQLITE_DONE)
    return db_error (self->db, "groups", error);

  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Token minting: the one place tokens are made                        */

static void
set_groups_claim (JsonObject        *claims,
                  const char *const *groups)
{
  JsonArray *array;

  /* Cognito leaves the claim out for a user in no group */
  if (groups == NULL || groups[0] == NULL)
    return;

  array = json_array_new ();
  for (guint i = 0; groups[i] != NULL; i++)
    json_array_add_string_element (array, groups[i]);
  json_object_set_array_member (claims, "cognito:groups", array);
}

static char *
issue_refresh_token (FlUserPool       *self,
                     const UserRecord *user,
                     const char       *client_id,
                     const char       *origin_jti,
                     const char       *event_id,
                     gint64            auth_time,
                     gint64            now,
                     GError          **error)
{
  g_autoptr (DbStmt) stmt = NULL;
  gboolean           ok = FALSE;
  guint8             raw[REFRESH_TOKEN_BYTES];
  guint8             digest[32];
  char              *token;
  gint64             refresh_lifetime;

  g_mutex_lock (&self->state_lock);
  refresh_lifetime = self->refresh_lifetime;
  g_mutex_unlock (&self->state_lock);

  if (gnutls_rnd (GNUTLS_RND_KEY, raw, sizeof raw) < 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No random numbers");
      return NULL;
    }
  token = fl_base64url_encode (raw, sizeof raw);
  gnutls_memset (raw, 0, sizeof raw);
  _fl_sha256 (token, strlen (token), digest);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db,
                     "INSERT INTO refresh_tokens (token_hash, user_id, client_id, origin_jti, event_id,"
                     " auth_time, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     error);
  if (stmt != NULL)
    {
      sqlite3_bind_blob (stmt, 1, digest, sizeof digest, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, user->id);
      sqlite3_bind_text (stmt, 3, client_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 4, origin_jti, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 5, event_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 6, auth_time);
      sqlite3_bind_int64 (stmt, 7, now);
      sqlite3_bind_int64 (stmt, 8, now + refresh_lifetime);
      if (sqlite3_step (stmt) == SQLITE_DONE)
        ok = TRUE;
      else
        db_error (self->db, "refresh token", error);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  g_mutex_unlock (&self->db_lock);

  if (!ok)
    {
      wipe_string (token);
      return NULL;
    }

  return token;
}

/* Mints an ID token and an access token for user, from the sign-in
 * (origin_jti, event_id, auth_time), and with with_refresh also a new
 * refresh token for that sign-in.  SignUp, SRP and the rest will all end
 * here. */
static FlTokens *
mint_tokens (FlUserPool       *self,
             const UserRecord *user,
             const char       *client_id,
             const char       *origin_jti,
             const char       *event_id,
             gint64            auth_time,
             gboolean          with_refresh,
             GError          **error)
{
  g_autoptr (JsonObject) id_claims = json_object_new ();
  g_autoptr (JsonObject) access_claims = json_object_new ();
  g_autoptr (FlTokens)   tokens = g_new0 (FlTokens, 1);
  g_autofree char       *issuer = NULL;
  g_autofree char       *id_jti = g_uuid_string_random ();
  g_autofree char       *access_jti = g_uuid_string_random ();
  const char *const     *groups = (const char *const *) user->groups;
  gint64                 now = pool_now_s (self);
  gint64                 lifetime;

  g_mutex_lock (&self->state_lock);
  issuer = g_strdup (self->issuer);
  lifetime = self->token_lifetime;
  g_mutex_unlock (&self->state_lock);

  /* ID token, claims in Cognito's order */
  json_object_set_string_member (id_claims, "sub", user->sub);
  set_groups_claim (id_claims, groups);
  if (user->email != NULL)
    json_object_set_boolean_member (id_claims, "email_verified", user->email_verified);
  json_object_set_string_member (id_claims, "iss", issuer);
  json_object_set_string_member (id_claims, "cognito:username", user->username);
  json_object_set_string_member (id_claims, "origin_jti", origin_jti);
  json_object_set_string_member (id_claims, "aud", client_id);
  json_object_set_string_member (id_claims, "event_id", event_id);
  json_object_set_string_member (id_claims, "token_use", "id");
  json_object_set_int_member (id_claims, "auth_time", auth_time);
  json_object_set_int_member (id_claims, "exp", now + lifetime);
  json_object_set_int_member (id_claims, "iat", now);
  json_object_set_string_member (id_claims, "jti", id_jti);
  if (user->email != NULL)
    json_object_set_string_member (id_claims, "email", user->email);

  /* Access token */
  json_object_set_string_member (access_claims, "sub", user->sub);
  set_groups_claim (access_claims, groups);
  json_object_set_string_member (access_claims, "iss", issuer);
  json_object_set_string_member (access_claims, "client_id", client_id);
  json_object_set_string_member (access_claims, "origin_jti", origin_jti);
  json_object_set_string_member (access_claims, "event_id", event_id);
  json_object_set_string_member (access_claims, "token_use", "access");
  json_object_set_string_member (access_claims, "scope", ACCESS_SCOPE);
  json_object_set_int_member (access_claims, "auth_time", auth_time);
  json_object_set_int_member (access_claims, "exp", now + lifetime);
  json_object_set_int_member (access_claims, "iat", now);
  json_object_set_string_member (access_claims, "jti", access_jti);
  json_object_set_string_member (access_claims, "username", user->username);

  tokens->expires_in = (guint) lifetime;
  tokens->id_token = fl_jwt_sign (self->id_key, id_claims, error);
  if (tokens->id_token == NULL)
    return NULL;
  tokens->access_token = fl_jwt_sign (self->access_key, access_claims, error);
  if (tokens->access_token == NULL)
    return NULL;

  if (with_refresh)
    {
      tokens->refresh_token = issue_refresh_token (self, user, client_id, origin_jti, event_id, auth_time, now, error);
      if (tokens->refresh_token == NULL)
        return NULL;
    }

  return g_steal_pointer (&tokens);
}

/* ------------------------------------------------------------------ */
/* Throttling                                                          */

static gboolean
throttle_is_stale (const Throttle *t,
                   gint64          now)
{
  return now >= t->blocked_until && now - t->last_failure >= THROTTLE_FORGET_US;
}

/* Called with throttle_lock held.  Returns the µs until key may try
 * again, or 0. */
static gint64
throttle_wait (GHashTable *table,
               const char *key,
               gint64      now)
{
  Throttle *t;

  if (key == NULL || (t = g_hash_table_lookup (table, key)) == NULL)
    return 0;

  if (throttle_is_stale (t, now))
    {
      g_hash_table_remove (table, key);
      return 0;
    }

  return now < t->blocked_until ? t->blocked_until - now : 0;
}

/* Called with throttle_lock held. */
static void
throttle_make_room (GHashTable *table,
                    gint64      now)
{
  GHashTableIter iter;
  gpointer       key, value;
  gpointer       victim = NULL;
  guint          fewest = G_MAXUINT;

  if (g_hash_table_size (table) < THROTTLE_MAX_ENTRIES)
    return;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (throttle_is_stale (value, now))
      g_hash_table_iter_remove (&iter);

  if (g_hash_table_size (table) < THROTTLE_MAX_ENTRIES)
    return;

  /* Full of live entries: forget the least suspicious one */
  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Throttle *t = value;

      if (t->failures < fewest)
        {
          fewest = t->failures;
          victim = key;
        }
    }
  g_hash_table_remove (table, victim);
}

/* Called with throttle_lock held. */
static void
throttle_fail (GHashTable *table,
               const char *key,
               guint       free_failures,
               gint64      now)
{
  Throttle *t;

  if (key == NULL)
    return;

  t = g_hash_table_lookup (table, key);
  if (t != NULL && throttle_is_stale (t, now))
    {
      g_hash_table_remove (table, key);
      t = NULL;
    }

  if (t == NULL)
    {
      throttle_make_room (table, now);
      t = g_new0 (Throttle, 1);
      g_hash_table_insert (table, g_strdup (key), t);
    }

  if (t->failures < G_MAXUINT)
    t->failures++;
  t->last_failure = now;

  if (t->failures >= free_failures)
    {
      guint  shift = t->failures - free_failures;
      gint64 delay = shift >= 20 ? THROTTLE_CAP_US : MIN (THROTTLE_BASE_US << shift, THROTTLE_CAP_US);

      t->blocked_until = now + delay;
    }
}

static char *
throttle_user_key (const char *username)
{
  /* the users table compares usernames with ASCII NOCASE */
  return g_ascii_strdown (username, -1);
}

/* An IP address, without port; bounded, whatever the caller passes */
static char *
throttle_addr_key (const char *address)
{
  return address != NULL && *address != '\0' ? g_strndup (address, 64) : NULL;
}

static gboolean
throttle_check (FlUserPool *self,
                const char *username,
                const char *address_in,
                GError    **error)
{
  g_autofree char *user_key = throttle_user_key (username);
  g_autofree char *address = throttle_addr_key (address_in);
  gint64           now = pool_now_us (self);
  gint64           wait;

  g_mutex_lock (&self->throttle_lock);
  wait = MAX (throttle_wait (self->user_throttle, user_key, now),
              throttle_wait (self->addr_throttle, address, now));
  g_mutex_unlock (&self->throttle_lock);

  if (wait > 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_TOO_MANY_REQUESTS,
                   "Password attempts exceeded. Try again in %" G_GINT64_FORMAT " seconds.",
                   (wait + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC);
      return FALSE;
    }

  return TRUE;
}

static void
throttle_record (FlUserPool *self,
                 const char *username,
                 const char *address_in,
                 gboolean    success)
{
  g_autofree char *user_key = throttle_user_key (username);
  g_autofree char *address = throttle_addr_key (address_in);
  gint64           now = pool_now_us (self);

  g_mutex_lock (&self->throttle_lock);
  if (success)
    {
      g_hash_table_remove (self->user_throttle, user_key);
    }
  else
    {
      throttle_fail (self->user_throttle, user_key, THROTTLE_USER_FREE, now);
      throttle_fail (self->addr_throttle, address, THROTTLE_ADDR_FREE, now);
    }
  g_mutex_unlock (&self->throttle_lock);
}

/* ------------------------------------------------------------------ */
/* GObject                                                             */

static void
fl_user_pool_finalize (GObject *object)
{
  FlUserPool *self = (FlUserPool *) object;

  g_clear_pointer (&self->db, sqlite3_close);
  g_clear_pointer (&self->data_dir, g_free);
  g_clear_pointer (&self->pool_id, g_free);
  g_clear_pointer (&self->client_id, g_free);
  g_clear_pointer (&self->id_key, fl_jwt_key_free);
  g_clear_pointer (&self->access_key, fl_jwt_key_free);
  g_clear_pointer (&self->id_keys, fl_jwt_key_set_unref);
  g_clear_pointer (&self->access_keys, fl_jwt_key_set_unref);
  g_clear_pointer (&self->all_keys, fl_jwt_key_set_unref);
  g_clear_pointer (&self->issuer, g_free);
  g_clear_pointer (&self->old_issuers, g_ptr_array_unref);
  g_clear_pointer (&self->dummy_hash, g_free);
  g_clear_pointer (&self->token_cache, fl_token_cache_free);
  g_clear_pointer (&self->disabled_subs, g_hash_table_unref);
  g_clear_pointer (&self->user_throttle, g_hash_table_unref);
  g_clear_pointer (&self->addr_throttle, g_hash_table_unref);
  g_mutex_clear (&self->db_lock);
  g_mutex_clear (&self->state_lock);
  g_mutex_clear (&self->cache_lock);
  g_mutex_clear (&self->throttle_lock);
  g_clear_pointer (&self->clients, g_hash_table_unref);
  g_clear_pointer (&self->revoked_origins, g_hash_table_unref);
  g_clear_pointer (&self->srp_flows, g_hash_table_unref);
  g_clear_pointer (&self->new_password_flows, g_hash_table_unref);
  g_clear_pointer (&self->retired_keys, g_ptr_array_unref);
  g_clear_pointer (&self->fake_salt_key, g_free);
  g_mutex_clear (&self->flow_lock);

  G_OBJECT_CLASS (fl_user_pool_parent_class)->finalize (object);
}

static void
fl_user_pool_class_init (FlUserPoolClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_user_pool_finalize;
}

static void
fl_user_pool_init (FlUserPool *self)
{
  g_mutex_init (&self->db_lock);
  g_mutex_init (&self->state_lock);
  g_mutex_init (&self->cache_lock);
  g_mutex_init (&self->throttle_lock);

  self->argon2.t_cost = ARGON2_T_COST;
  self->argon2.m_cost_kib = ARGON2_M_COST_KIB;
  self->argon2.lanes = ARGON2_LANES;
  self->old_issuers = g_ptr_array_new_with_free_func (g_free);
  self->token_cache = fl_token_cache_new (TOKEN_CACHE_MAX);
  self->disabled_subs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->user_throttle = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->addr_throttle = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  g_mutex_init (&self->flow_lock);
  self->token_lifetime = TOKEN_LIFETIME_S;
  self->refresh_lifetime = REFRESH_LIFETIME_S;
  self->policy = (FlPasswordPolicy) { 8, TRUE, TRUE, TRUE, TRUE };
  self->clients = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) app_client_free);
  self->revoked_origins = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->srp_flows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) srp_flow_free);
  self->new_password_flows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                    (GDestroyNotify) password_flow_free);
  self->retired_keys = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_jwt_key_free);
}

static gboolean
load_revoked_origins (FlUserPool *self,
                      GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (self->db, "SELECT DISTINCT origin_jti FROM refresh_tokens WHERE revoked = 1", error);
  int                rc;

  if (stmt == NULL)
    return FALSE;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_hash_table_add (self->revoked_origins, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
  return rc == SQLITE_DONE ? TRUE : db_error (self->db, "refresh tokens", error);
}

static gboolean
load_disabled_subs (FlUserPool *self,
                    GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (self->db, "SELECT sub FROM users WHERE enabled = 0", error);
  int                rc;

  if (stmt == NULL)
    return FALSE;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      char *sub = g_strdup ((const char *) sqlite3_column_text (stmt, 0));

      g_hash_table_add (self->disabled_subs, sub);
    }

  return rc == SQLITE_DONE ? TRUE : db_error (self->db, "users", error);
}

static gboolean
prune_refresh_tokens (FlUserPool *self,
                      GError    **error)
{
  /* a revoked row stays while access tokens minted from it may live */
  g_autoptr (DbStmt) stmt = db_prepare (self->db, "DELETE FROM refresh_tokens WHERE expires_at + ?2 <= ?1", error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, pool_now_s (self));
  sqlite3_bind_int64 (stmt, 2, MAX_TOKEN_LIFETIME_S);

  return sqlite3_step (stmt) == SQLITE_DONE ? TRUE : db_error (self->db, "refresh tokens", error);
}

/**
 * fl_user_pool_open:
 * @data_dir: the relay's data directory (made with mode 0700 if missing)
 *
 * Returns: (transfer full): the pool
 */
FlUserPool *
fl_user_pool_open (const char *data_dir,
                   GError    **error)
{
  g_autoptr (FlUserPool) self = NULL;
  g_autofree char       *keys_dir = NULL;
  g_autofree char       *id_path = NULL;
  g_autofree char       *access_path = NULL;

  g_return_val_if_fail (data_dir != NULL, NULL);

  self = g_object_new (FL_TYPE_USER_POOL, NULL);
  self->data_dir = g_strdup (data_dir);

  keys_dir = g_build_filename (data_dir, "keys", NULL);
  if (g_mkdir_with_parents (data_dir, 0700) != 0 || g_mkdir_with_parents (keys_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not create %s: %s", keys_dir, g_strerror (saved_errno));
      return NULL;
    }

  if (!db_open (self, error))
    return NULL;

  self->pool_id = meta_get (self->db, "pool_id", error);
  if (self->pool_id == NULL)
    return NULL;
  self->client_id = meta_get (self->db, "client_id", error);
  if (self->client_id == NULL)
    return NULL;

  if (!load_disabled_subs (self, error) || !prune_refresh_tokens (self, error) ||
      !load_clients (self, error) || !load_revoked_origins (self, error))
    return NULL;
  self->fake_salt_key = meta_get (self->db, "fake_salt_key", NULL);
  if (self->fake_salt_key == NULL)
    {
      self->fake_salt_key = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 43);
      if (!meta_set (self->db, "fake_salt_key", self->fake_salt_key, error))
        return NULL;
    }

  id_path = g_build_filename (keys_dir, "id-token.pem", NULL);
  access_path = g_build_filename (keys_dir, "access-token.pem", NULL);
  self->id_key = fl_jwt_key_load_or_create (id_path, error);
  if (self->id_key == NULL)
    return NULL;
  self->access_key = fl_jwt_key_load_or_create (access_path, error);
  if (self->access_key == NULL)
    return NULL;

  self->id_keys = fl_jwt_key_set_new ();
  fl_jwt_key_set_add_key (self->id_keys, self->id_key);
  self->access_keys = fl_jwt_key_set_new ();
  fl_jwt_key_set_add_key (self->access_keys, self->access_key);
  self->all_keys = fl_jwt_key_set_new ();
  fl_jwt_key_set_add_key (self->all_keys, self->id_key);
  fl_jwt_key_set_add_key (self->all_keys, self->access_key);
  if (!load_retired_keys (self, error))
    return NULL;

  /* until the relay knows its address */
  self->issuer = g_strdup_printf ("http://localhost/%s", self->pool_id);

  g_debug ("Opened user pool %s in %s", self->pool_id, data_dir);

  return g_steal_pointer (&self);
}

const char *
fl_user_pool_get_pool_id (FlUserPool *self)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  return self->pool_id;
}

const char *
fl_user_pool_get_client_id (FlUserPool *self)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  return self->client_id;
}

/**
 * fl_user_pool_set_issuer:
 * @issuer: e.g. http://127.0.0.1:8080/local_AbC123xyz (a trailing slash is
 *   dropped)
 *
 * Tokens minted from now on carry @issuer, and only tokens with @issuer
 * are accepted.
 */
void
fl_user_pool_set_issuer (FlUserPool *self,
                         const char *issuer)
{
  g_autofree char *copy = NULL;
  gsize            len;

  g_return_if_fail (FL_IS_USER_POOL (self));
  g_return_if_fail (issuer != NULL && *issuer != '\0');

  copy = g_strdup (issuer);
  len = strlen (copy);
  while (len > 1 && copy[len - 1] == '/')
    copy[--len] = '\0';

  g_mutex_lock (&self->state_lock);
  if (g_strcmp0 (self->issuer, copy) != 0)
    {
      if (self->issuer != NULL)
        g_ptr_array_add (self->old_issuers, self->issuer);
      self->issuer = g_steal_pointer (&copy);
    }
  g_mutex_unlock (&self->state_lock);

  _fl_user_pool_clear_token_cache (self);
}

/**
 * fl_user_pool_get_issuer:
 *
 * Returns: (transfer none): the issuer; it stays valid while the pool
 *   lives
 */
const char *
fl_user_pool_get_issuer (FlUserPool *self)
{
  const char *issuer;

  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  g_mutex_lock (&self->state_lock);
  issuer = self->issuer;
  g_mutex_unlock (&self->state_lock);

  return issuer;
}

JsonNode *
fl_user_pool_get_jwks (FlUserPool *self)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  return fl_jwt_key_set_to_jwks (self->all_keys);
}

/* ------------------------------------------------------------------ */
/* Users                                                               */

/**
 * fl_user_pool_add_user:
 * @email: (nullable): the user's email address
 *
 * Adds a confirmed, enabled user in the group of @role.  Hashes the
 * password on the calling thread: for the command line, not the main
 * loop.
 */
gboolean
fl_user_pool_add_user (FlUserPool *self,
                       const char *username,
                       const char *email,
                       const char *password,
                       FlRole      role,
                       GError    **error)
{
  return fl_user_pool_create_user (self, username, email, password, FALSE, role, error);
}

gboolean
fl_user_pool_set_user_role (FlUserPool *self,
                            const char *username,
                            FlRole      role,
                            GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (GError)     local_error = NULL;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);
  g_return_val_if_fail (username != NULL, FALSE);
  g_return_val_if_fail (role >= FL_ROLE_NONE && role <= FL_ROLE_ADMIN, FALSE);

  g_mutex_lock (&self->db_lock);

  if (!db_exec (self->db, "BEGIN IMMEDIATE", &local_error))
    goto out;

  user = db_load_user (self, username, 0, &local_error);
  if (user == NULL)
    {
      if (local_error == NULL)
        g_set_error (&local_error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND, "User does not exist.");
      goto rollback;
    }

  stmt = db_prepare (self->db, "UPDATE users SET updated_at = ?1 WHERE id = ?2", &local_error);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_int64 (stmt, 1, pool_now_s (self));
  sqlite3_bind_int64 (stmt, 2, user->id);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      db_error (self->db, "users", &local_error);
      goto rollback;
    }

  if (db_set_role (self, user->id, role, &local_error) && db_exec (self->db, "COMMIT", &local_error))
    goto out;

rollback:
  db_exec (self->db, "ROLLBACK", NULL);
out:
  g_mutex_unlock (&self->db_lock);

  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  return TRUE;
}

gboolean
fl_user_pool_set_user_enabled (FlUserPool *self,
                               const char *username,
                               gboolean    enabled,
                               GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (DbStmt)     revoke = NULL;
  g_autoptr (GError)     local_error = NULL;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);
  g_return_val_if_fail (username != NULL, FALSE);

  g_mutex_lock (&self->db_lock);

  if (!db_exec (self->db, "BEGIN IMMEDIATE", &local_error))
    goto out;

  user = db_load_user (self, username, 0, &local_error);
  if (user == NULL)
    {
      if (local_error == NULL)
        g_set_error (&local_error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND, "User does not exist.");
      goto rollback;
    }

  stmt = db_prepare (self->db, "UPDATE users SET enabled = ?1, updated_at = ?2 WHERE id = ?3", &local_error);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_int (stmt, 1, enabled ? 1 : 0);
  sqlite3_bind_int64 (stmt, 2, pool_now_s (self));
  sqlite3_bind_int64 (stmt, 3, user->id);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      db_error (self->db, "users", &local_error);
      goto rollback;
    }

  if (!enabled)
    {
      revoke = db_prepare (self->db, "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1", &local_error);
      if (revoke == NULL)
        goto rollback;
      sqlite3_bind_int64 (revoke, 1, user->id);
      if (sqlite3_step (revoke) != SQLITE_DONE)
        {
          db_error (self->db, "refresh tokens", &local_error);
          goto rollback;
        }
    }

  if (db_exec (self->db, "COMMIT", &local_error))
    goto out;

rollback:
  db_exec (self->db, "ROLLBACK", NULL);
out:
  g_mutex_unlock (&self->db_lock);

  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  g_mutex_lock (&self->cache_lock);
  if (enabled)
    {
      g_hash_table_remove (self->disabled_subs, user->sub);
    }
  else
    {
      g_hash_table_add (self->disabled_subs, g_strdup (user->sub));
      fl_token_cache_remove_sub (self->token_cache, user->sub);
    }
  g_mutex_unlock (&self->cache_lock);

  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Sign-in                                                             */

typedef struct
{
  char *username;
  char *password;
  char *client_address;
} LoginData;

static void
login_data_free (LoginData *data)
{
  g_free (data->username);
  wipe_string (data->password);
  g_free (data->client_address);
  g_free (data);
}

static void
login_thread (GTask        *task,
              FlUserPool   *self,
              LoginData    *data,
              GCancellable *cancellable)
{
  g_autoptr (FlAuthResult) result = NULL;
  GError                  *error = NULL;

  if (g_task_return_error_if_cancelled (task))
    return;
  result = fl_user_pool_password_auth (self, self->client_id, data->username, data->password,
                                       data->client_address, &error);
  if (result == NULL)
    g_task_return_error (task, error);
  else if (result->tokens == NULL)
    g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                             "A new password is required (%s): sign in with the Cognito protocol",
                             result->challenge_name);
  else
    g_task_return_pointer (task, g_steal_pointer (&result->tokens), (GDestroyNotify) fl_tokens_free);
}

static void
hash_pool_func (gpointer data,
                gpointer user_data)
{
  GTask *task = data;

  if (g_task_get_source_tag (task) == fl_user_pool_run_async)
    {
      PoolJob *job = g_task_get_task_data (task);

      if (!g_task_return_error_if_cancelled (task))
        job->func (task, g_task_get_source_object (task), job->data, g_task_get_cancellable (task));
    }
  else
    login_thread (task, g_task_get_source_object (task), g_task_get_task_data (task),
                  g_task_get_cancellable (task));
  g_object_unref (task);
}

/* Password hashes run here rather than in GIO's shared pool: each holds
 * 19 MiB and a core for tens of ms, so at most one per CPU runs at once
 * and a burst of sign-ins cannot starve other GTask work. */
static GThreadPool *
get_hash_pool (void)
{
  static GThreadPool *pool = NULL;

  if (g_once_init_enter (&pool))
    {
      GThreadPool *p = g_thread_pool_new (hash_pool_func, NULL,
                                          (gint) MAX (1, g_get_num_processors ()),
                                          FALSE, NULL);

      g_once_init_leave (&pool, p);
    }

  return pool;
}

/**
 * fl_user_pool_login_async:
 * @client_address: (nullable): the client's address, for throttling
 *
 * Cognito's USER_PASSWORD_AUTH.  The password is checked on a worker
 * thread.  Fails with FL_AUTH_ERROR_NOT_AUTHORIZED ("Incorrect username
 * or password.") for an unknown user and a wrong password alike, and with
 * FL_AUTH_ERROR_TOO_MANY_REQUESTS while sign-in is throttled.
 */
void
fl_user_pool_login_async (FlUserPool         *self,
                          const char         *username,
                          const char         *password,
                          const char         *client_address,
                          GCancellable       *cancellable,
                          GAsyncReadyCallback callback,
                          gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GError) error = NULL;
  LoginData         *data;

  g_return_if_fail (FL_IS_USER_POOL (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_user_pool_login_async);
  g_task_set_name (task, "fl_user_pool_login_async");

  if (username == NULL || *username == '\0' || password == NULL || *password == '\0')
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                               "Missing required parameter USERNAME or PASSWORD");
      return;
    }

  /* No user has such a name or password: refuse without hashing */
  if (strlen (username) > MAX_USERNAME_CHARS * 4 || !g_utf8_validate (username, -1, NULL) || strlen (password) > MAX_PASSWORD_BYTES)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return;
    }

  if (!throttle_check (self, username, client_address, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (g_thread_pool_unprocessed (get_hash_pool ()) >= MAX_PENDING_LOGINS)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_TOO_MANY_REQUESTS,
                               "Too many sign-ins at once; try again later.");
      return;
    }

  data = g_new0 (LoginData, 1);
  data->username = g_strdup (username);
  data->password = g_strdup (password);
  data->client_address = g_strdup (client_address);
  g_task_set_task_data (task, data, (GDestroyNotify) login_data_free);

  if (!g_thread_pool_push (get_hash_pool (), g_object_ref (task), &error))
    {
      g_object_unref (task);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No worker thread: %s", error->message);
    }
}

/**
 * fl_user_pool_login_finish:
 *
 * Returns: (transfer full): the tokens
 */
FlTokens *
fl_user_pool_login_finish (FlUserPool   *self,
                           GAsyncResult *result,
                           GError      **error)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_user_pool_login_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ------------------------------------------------------------------ */
/* Refresh                                                             */

static gboolean
refresh_token_well_formed (const char *token)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  return token != NULL && strnlen (token, REFRESH_TOKEN_LEN + 1) == REFRESH_TOKEN_LEN && strspn (token, alphabet) == REFRESH_TOKEN_LEN;
}

static void
refresh_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  FlUserPool *self = source_object;
  FlTokens   *tokens;
  GError     *error = NULL;

  if (g_task_return_error_if_cancelled (task))
    return;
  tokens = fl_user_pool_refresh (self, self->client_id, task_data, NULL, &error);
  if (tokens == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, tokens, (GDestroyNotify) fl_tokens_free);
}

/**
 * fl_user_pool_refresh_async:
 *
 * Cognito's REFRESH_TOKEN_AUTH: new ID and access tokens for the sign-in
 * the refresh token came from (same origin_jti, auth_time and groups as
 * they are now).  As in Cognito, no new refresh token is returned.
 */
void
fl_user_pool_refresh_async (FlUserPool         *self,
                            const char         *refresh_token,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_USER_POOL (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_user_pool_refresh_async);
  g_task_set_name (task, "fl_user_pool_refresh_async");

  if (!refresh_token_well_formed (refresh_token))
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid Refresh Token");
      return;
    }

  g_task_set_task_data (task, g_strdup (refresh_token), (GDestroyNotify) wipe_string);
  g_task_run_in_thread (task, refresh_thread);
}

/**
 * fl_user_pool_refresh_finish:
 *
 * Returns: (transfer full): the tokens; refresh_token is NULL
 */
FlTokens *
fl_user_pool_refresh_finish (FlUserPool   *self,
                             GAsyncResult *result,
                             GError      **error)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_user_pool_refresh_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

gboolean
fl_user_pool_set_lifetimes (FlUserPool *self,
                            guint       token_lifetime,
                            guint       refresh_lifetime,
                            GError    **error)
{
  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);

  /* Cognito's bounds */
  if (token_lifetime < 300 || token_lifetime > MAX_TOKEN_LIFETIME_S)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "Token lifetime must be 300 to %d seconds", MAX_TOKEN_LIFETIME_S);
      return FALSE;
    }
  if (refresh_lifetime < 3600 || refresh_lifetime > 10u * 365 * 24 * 3600)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Refresh token lifetime must be 1 hour to 10 years");
      return FALSE;
    }

  g_mutex_lock (&self->state_lock);
  self->token_lifetime = token_lifetime;
  self->refresh_lifetime = refresh_lifetime;
  g_mutex_unlock (&self->state_lock);
  return TRUE;
}

void
fl_user_pool_set_auto_confirm (FlUserPool *self,
                               gboolean    auto_confirm)
{
  g_return_if_fail (FL_IS_USER_POOL (self));

  g_mutex_lock (&self->state_lock);
  self->auto_confirm = auto_confirm;
  g_mutex_unlock (&self->state_lock);
}

void
fl_user_pool_set_password_policy (FlUserPool             *self,
                                  const FlPasswordPolicy *policy)
{
  g_return_if_fail (FL_IS_USER_POOL (self));
  g_return_if_fail (policy != NULL && policy->min_length >= 6);

  g_mutex_lock (&self->state_lock);
  self->policy = *policy;
  g_mutex_unlock (&self->state_lock);
}

static FlPasswordPolicy
pool_get_policy (FlUserPool *self)
{
  FlPasswordPolicy policy;

  g_mutex_lock (&self->state_lock);
  policy = self->policy;
  g_mutex_unlock (&self->state_lock);
  return policy;
}

gboolean
fl_password_policy_parse (const char       *text,
                          FlPasswordPolicy *policy,
                          GError          **error)
{
  g_auto (GStrv) items = NULL;
  FlPasswordPolicy p = { 8, FALSE, FALSE, FALSE, FALSE };

  g_return_val_if_fail (text != NULL && policy != NULL, FALSE);

  items = g_strsplit (text, ",", -1);
  for (guint i = 0; items[i] != NULL; i++)
    {
      const char *item = g_strstrip (items[i]);
      guint64     n;

      if (g_str_has_prefix (item, "min="))
        {
          if (!g_ascii_string_to_unsigned (item + 4, 10, 6, 99, &n, NULL))
            goto bad;
          p.min_length = (guint) n;
        }
      else if (g_str_equal (item, "upper"))
        p.require_upper = TRUE;
      else if (g_str_equal (item, "lower"))
        p.require_lower = TRUE;
      else if (g_str_equal (item, "digit"))
        p.require_digit = TRUE;
      else if (g_str_equal (item, "symbol"))
        p.require_symbol = TRUE;
      else if (!g_str_equal (item, "none"))
        goto bad;
    }
  *policy = p;
  return TRUE;

bad:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
               "Bad password policy “%s”: expected min=N (6 to 99), upper, lower, digit, symbol or none, comma-separated",
               text);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* App clients                                                         */

static const struct
{
  FlAuthFlows flow;
  const char *name;
} flow_names[] = {
  { FL_AUTH_FLOW_USER_SRP, "ALLOW_USER_SRP_AUTH" },
  { FL_AUTH_FLOW_USER_PASSWORD, "ALLOW_USER_PASSWORD_AUTH" },
  { FL_AUTH_FLOW_REFRESH_TOKEN, "ALLOW_REFRESH_TOKEN_AUTH" },
};

static FlAuthFlows
flows_from_text (const char *text)
{
  g_auto (GStrv) names = g_strsplit (text != NULL ? text : "", " ", -1);
  FlAuthFlows flows = 0;

  for (guint i = 0; names[i] != NULL; i++)
    for (guint k = 0; k < G_N_ELEMENTS (flow_names); k++)
      if (g_str_equal (names[i], flow_names[k].name))
        flows |= flow_names[k].flow;
  return flows;
}

static char *
flows_to_text (FlAuthFlows flows)
{
  GString *out = g_string_new (NULL);

  for (guint k = 0; k < G_N_ELEMENTS (flow_names); k++)
    if (flows & flow_names[k].flow)
      {
        if (out->len > 0)
          g_string_append_c (out, ' ');
        g_string_append (out, flow_names[k].name);
      }
  return g_string_free (out, FALSE);
}

/* Called at open. */
static gboolean
load_clients (FlUserPool *self,
              GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (self->db, "SELECT client_id, name, secret, flows FROM clients", error);
  int                rc;

  if (stmt == NULL)
    return FALSE;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      AppClient *client = g_new0 (AppClient, 1);

      client->client_id = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
      client->name = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
      client->secret = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
      client->flows = flows_from_text ((const char *) sqlite3_column_text (stmt, 3));
      g_hash_table_replace (self->clients, client->client_id, client);
    }
  return rc == SQLITE_DONE ? TRUE : db_error (self->db, "clients", error);
}

gboolean
fl_user_pool_add_client (FlUserPool *self,
                         const char *name,
                         gboolean    with_secret,
                         FlAuthFlows flows,
                         char      **client_id_out,
                         char      **secret_out,
                         GError    **error)
{
  g_autofree char   *client_id = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 26);
  g_autofree char   *secret = NULL;
  g_autofree char   *flows_text = NULL;
  g_autoptr (DbStmt) stmt = NULL;
  AppClient         *client;
  gboolean           ok = FALSE;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);

  if (name == NULL || *name == '\0' || strlen (name) > 128 || !g_utf8_validate (name, -1, NULL))
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "A client name is 1 to 128 characters");
      return FALSE;
    }
  if (with_secret)
    secret = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 51);
  flows_text = flows_to_text (flows);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db, "INSERT INTO clients (client_id, name, secret, flows, created_at)"
                               " VALUES (?1, ?2, ?3, ?4, ?5)", error);
  if (stmt != NULL)
    {
      sqlite3_bind_text (stmt, 1, client_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, name, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 3, secret, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 4, flows_text, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 5, pool_now_s (self));
      ok = sqlite3_step (stmt) == SQLITE_DONE || db_error (self->db, "clients", error);
    }
  g_mutex_unlock (&self->db_lock);
  if (!ok)
    return FALSE;

  client = g_new0 (AppClient, 1);
  client->client_id = g_strdup (client_id);
  client->name = g_strdup (name);
  client->secret = g_strdup (secret);
  client->flows = flows;
  g_mutex_lock (&self->state_lock);
  g_hash_table_replace (self->clients, client->client_id, client);
  g_mutex_unlock (&self->state_lock);

  if (client_id_out != NULL)
    *client_id_out = g_steal_pointer (&client_id);
  if (secret_out != NULL)
    *secret_out = g_steal_pointer (&secret);
  return TRUE;
}

JsonNode *
fl_user_pool_list_clients (FlUserPool *self)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  GHashTableIter          iter;
  gpointer                value;

  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "UserPoolClients");
  json_builder_begin_array (builder);
  g_mutex_lock (&self->state_lock);
  g_hash_table_iter_init (&iter, self->clients);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      AppClient *client = value;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "ClientId");
      json_builder_add_string_value (builder, client->client_id);
      json_builder_set_member_name (builder, "ClientName");
      json_builder_add_string_value (builder, client->name);
      json_builder_set_member_name (builder, "HasSecret");
      json_builder_add_boolean_value (builder, client->secret != NULL);
      json_builder_set_member_name (builder, "ExplicitAuthFlows");
      json_builder_begin_array (builder);
      for (guint k = 0; k < G_N_ELEMENTS (flow_names); k++)
        if (client->flows & flow_names[k].flow)
          json_builder_add_string_value (builder, flow_names[k].name);
      json_builder_end_array (builder);
      json_builder_end_object (builder);
    }
  g_mutex_unlock (&self->state_lock);
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

static gboolean
equal_in_constant_time (const char *a,
                        const char *b)
{
  gsize    la = strlen (a), lb = strlen (b);
  guint8   diff = la != lb;

  for (gsize i = 0; i < MIN (la, lb); i++)
    diff |= (guint8) (a[i] ^ b[i]);
  return diff == 0;
}

gboolean
fl_user_pool_check_client_secret (FlUserPool *self,
                                  const char *client_id,
                                  const char *secret,
                                  GError    **error)
{
  g_autofree char *expected = NULL;
  gboolean         known;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);

  g_mutex_lock (&self->state_lock);
  {
    AppClient *client = client_id != NULL ? g_hash_table_lookup (self->clients, client_id) : NULL;

    known = client != NULL;
    if (known)
      expected = g_strdup (client->secret);
  }
  g_mutex_unlock (&self->state_lock);

  if (!known)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_RESOURCE_NOT_FOUND,
                   "User pool client %s does not exist.", client_id != NULL ? client_id : "");
      return FALSE;
    }
  if (expected != NULL && (secret == NULL || !equal_in_constant_time (expected, secret)))
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "Unable to verify secret for client %s", client_id);
      return FALSE;
    }
  return TRUE;
}

gboolean
fl_user_pool_check_client (FlUserPool *self,
                           const char *client_id,
                           FlAuthFlows flow,
                           const char *username,
                           const char *secret_hash,
                           GError    **error)
{
  g_autofree char *secret = NULL;
  FlAuthFlows      flows = 0;
  gboolean         known;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);

  g_mutex_lock (&self->state_lock);
  {
    AppClient *client = client_id != NULL ? g_hash_table_lookup (self->clients, client_id) : NULL;

    known = client != NULL;
    if (known)
      {
        secret = g_strdup (client->secret);
        flows = client->flows;
      }
  }
  g_mutex_unlock (&self->state_lock);

  if (!known)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_RESOURCE_NOT_FOUND,
                   "User pool client %s does not exist.", client_id != NULL ? client_id : "");
      return FALSE;
    }
  if (flow != 0 && !(flows & flow))
    {
      const char *name = flow == FL_AUTH_FLOW_USER_SRP ? "USER_SRP_AUTH"
                         : flow == FL_AUTH_FLOW_USER_PASSWORD ? "USER_PASSWORD_AUTH"
                                                              : "REFRESH_TOKEN";

      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "%s flow not enabled for this client", name);
      return FALSE;
    }
  /* REFRESH_TOKEN_AUTH checks it once the token names its user */
  if (secret != NULL && username != NULL)
    {
      g_autofree char *message = NULL;
      g_autofree char *expected = NULL;
      guint8           mac[32];

      if (secret_hash == NULL)
        {
          g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                       "Client %s is configured with secret but SECRET_HASH was not received", client_id);
          return FALSE;
        }
      message = g_strconcat (username != NULL ? username : "", client_id, NULL);
      if (gnutls_hmac_fast (GNUTLS_MAC_SHA256, secret, strlen (secret), message, strlen (message), mac) < 0)
        {
          g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "HMAC failed");
          return FALSE;
        }
      expected = g_base64_encode (mac, sizeof mac);
      if (!equal_in_constant_time (expected, secret_hash))
        {
          g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                       "Unable to verify secret hash for client %s", client_id);
          return FALSE;
        }
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Results                                                             */

void
fl_auth_result_free (FlAuthResult *result)
{
  if (result == NULL)
    return;
  g_clear_pointer (&result->tokens, fl_tokens_free);
  g_free (result->challenge_name);
  g_free (result->session);
  g_clear_pointer (&result->challenge_parameters, json_object_unref);
  g_free (result);
}

void
fl_code_message_free (FlCodeMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->to);
  g_free (message->subject);
  wipe_string (message->body);
  g_free (message->destination);
  g_free (message);
}

JsonNode *
fl_code_message_to_delivery_json (FlCodeMessage *message)
{
  g_autoptr (JsonObject) details = json_object_new ();
  JsonNode              *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (details, "Destination", message->destination);
  json_object_set_string_member (details, "DeliveryMedium", "EMAIL");
  json_object_set_string_member (details, "AttributeName", "email");
  json_node_set_object (node, details);
  return node;
}

/* "alice@example.com" → "a***@e***", as Cognito shows it */
static char *
mask_email (const char *email)
{
  const char *at = email != NULL ? strchr (email, '@') : NULL;

  if (at == NULL || at == email || at[1] == '\0')
    return g_strdup ("***");
  return g_strdup_printf ("%c***@%c***", email[0], at[1]);
}

static FlCodeMessage *
code_message_new (const UserRecord *user,
                  const char       *code,
                  gboolean          reset)
{
  FlCodeMessage *message = g_new0 (FlCodeMessage, 1);

  message->to = g_strdup (user->email);
  message->destination = mask_email (user->email);
  if (reset)
    {
      message->subject = g_strdup ("Your Fieldline password reset code");
      message->body = g_strdup_printf ("Hello %s,\r\n\r\n"
                                       "Your password reset code is %s\r\n\r\n"
                                       "It is valid for one hour. If you did not ask to reset your "
                                       "password, you can ignore this message.\r\n",
                                       user->username, code);
    }
  else
    {
      message->subject = g_strdup ("Your Fieldline verification code");
      message->body = g_strdup_printf ("Hello %s,\r\n\r\n"
                                       "Your confirmation code is %s\r\n\r\n"
                                       "It is valid for 24 hours.\r\n",
                                       user->username, code);
    }
  return message;
}

/* ------------------------------------------------------------------ */
/* Passwords and codes                                                 */

/* The part of the pool id after "_", which SRP mixes in */
static const char *
pool_srp_name (FlUserPool *self)
{
  const char *underscore = strchr (self->pool_id, '_');

  return underscore != NULL ? underscore + 1 : self->pool_id;
}

typedef struct
{
  char   *hash;     /* argon2id */
  GBytes *salt;     /* SRP */
  GBytes *verifier;
} PasswordSecrets;

static void
password_secrets_clear (PasswordSecrets *secrets)
{
  g_clear_pointer (&secrets->hash, g_free);
  g_clear_pointer (&secrets->salt, g_bytes_unref);
  g_clear_pointer (&secrets->verifier, g_bytes_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PasswordSecrets, password_secrets_clear)

/* Slow (argon2id, a modular exponentiation): not under db_lock. */
static gboolean
password_secrets_make (FlUserPool      *self,
                       const char      *username,
                       const char      *password,
                       PasswordSecrets *secrets,
                       GError         **error)
{
  Argon2Params params = pool_get_argon2 (self);

  secrets->hash = hash_password (&params, password, error);
  if (secrets->hash == NULL)
    return FALSE;
  return fl_srp_make_verifier (pool_srp_name (self), username, password,
                               &secrets->salt, &secrets->verifier, error);
}

/* Called with db_lock held.  status NULL keeps it. */
static gboolean
db_store_password (FlUserPool            *self,
                   gint64                 user_id,
                   const PasswordSecrets *secrets,
                   const char            *status,
                   GError               **error)
{
  g_autoptr (DbStmt) stmt = NULL;
  gsize              salt_len, verifier_len;
  gconstpointer      salt = g_bytes_get_data (secrets->salt, &salt_len);
  gconstpointer      verifier = g_bytes_get_data (secrets->verifier, &verifier_len);

  stmt = db_prepare (self->db,
                     "UPDATE users SET password_hash = ?1, srp_salt = ?2, srp_verifier = ?3,"
                     " status = coalesce (?4, status), updated_at = ?5 WHERE id = ?6",
                     error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, secrets->hash, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 2, salt, (int) salt_len, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 3, verifier, (int) verifier_len, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 5, pool_now_s (self));
  sqlite3_bind_int64 (stmt, 6, user_id);
  return sqlite3_step (stmt) == SQLITE_DONE || db_error (self->db, "users", error);
}

/* Called with db_lock held. */
static gboolean
db_set_status (FlUserPool *self,
               gint64      user_id,
               const char *status,
               gboolean    email_verified,
               GError    **error)
{
  g_autoptr (DbStmt) stmt = db_prepare (self->db,
                                        "UPDATE users SET status = ?1, email_verified = max (email_verified, ?2),"
                                        " updated_at = ?3 WHERE id = ?4",
                                        error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, status, -1, SQLITE_STATIC);
  sqlite3_bind_int (stmt, 2, email_verified ? 1 : 0);
  sqlite3_bind_int64 (stmt, 3, pool_now_s (self));
  sqlite3_bind_int64 (stmt, 4, user_id);
  return sqlite3_step (stmt) == SQLITE_DONE || db_error (self->db, "users", error);
}

static void
code_digest (const char *sub,
             const char *code,
             guint8      digest[32])
{
  g_autofree char *text = g_strconcat (sub, ":", code, NULL);

  _fl_sha256 (text, strlen (text), digest);
}

/* Called with db_lock held: a new six-digit code replaces the user's
 * code for purpose. */
static char *
db_new_code (FlUserPool       *self,
             const UserRecord *user,
             const char       *purpose,
             gint64            lifetime,
             GError          **error)
{
  g_autoptr (DbStmt) stmt = NULL;
  g_autofree char   *code = NULL;
  guint32            r;
  guint8             digest[32];

  /* uniform over 000000-999999 */
  do
    {
      if (gnutls_rnd (GNUTLS_RND_KEY, &r, sizeof r) < 0)
        {
          g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No random numbers");
          return NULL;
        }
    }
  while (r >= 4294000000u);
  code = g_strdup_printf ("%06u", r % 1000000u);
  code_digest (user->sub, code, digest);

  stmt = db_prepare (self->db, "INSERT OR REPLACE INTO codes (user_id, purpose, code_hash, expires_at, attempts)"
                               " VALUES (?1, ?2, ?3, ?4, 0)", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, user->id);
  sqlite3_bind_text (stmt, 2, purpose, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 3, digest, sizeof digest, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 4, pool_now_s (self) + lifetime);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      db_error (self->db, "codes", error);
      return NULL;
    }
  return g_steal_pointer (&code);
}

/* Called with db_lock held.  A code works once; wrong codes count, and
 * after CODE_MAX_ATTEMPTS the code is gone. */
static gboolean
db_use_code (FlUserPool       *self,
             const UserRecord *user,
             const char       *purpose,
             const char       *code,
             GError          **error)
{
  g_autoptr (DbStmt) stmt = NULL;
  g_autoptr (DbStmt) update = NULL;
  guint8             digest[32];
  gboolean           match;
  gint64             expires_at, attempts;
  int                rc;

  stmt = db_prepare (self->db, "SELECT code_hash, expires_at, attempts FROM codes"
                               " WHERE user_id = ?1 AND purpose = ?2", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, user->id);
  sqlite3_bind_text (stmt, 2, purpose, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_EXPIRED_CODE,
                           "Invalid code provided, please request a code again.");
      return FALSE;
    }
  if (rc != SQLITE_ROW)
    return db_error (self->db, "codes", error);

  code_digest (user->sub, code != NULL ? code : "", digest);
  match = sqlite3_column_bytes (stmt, 0) == sizeof digest &&
          gnutls_memcmp (sqlite3_column_blob (stmt, 0), digest, sizeof digest) == 0;
  expires_at = sqlite3_column_int64 (stmt, 1);
  attempts = sqlite3_column_int64 (stmt, 2);
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (attempts >= CODE_MAX_ATTEMPTS)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_LIMIT_EXCEEDED,
                           "Attempt limit exceeded, please try after some time.");
      return FALSE;
    }
  if (pool_now_s (self) >= expires_at)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_EXPIRED_CODE,
                           "Invalid code provided, please request a code again.");
      return FALSE;
    }

  update = db_prepare (self->db,
                       match ? "DELETE FROM codes WHERE user_id = ?1 AND purpose = ?2"
                             : "UPDATE codes SET attempts = attempts + 1 WHERE user_id = ?1 AND purpose = ?2",
                       error);
  if (update == NULL)
    return FALSE;
  sqlite3_bind_int64 (update, 1, user->id);
  sqlite3_bind_text (update, 2, purpose, -1, SQLITE_STATIC);
  if (sqlite3_step (update) != SQLITE_DONE)
    return db_error (self->db, "codes", error);

  if (!match)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_CODE_MISMATCH,
                           "Invalid verification code provided, please try again.");
      return FALSE;
    }
  return TRUE;
}

static UserRecord *
load_user (FlUserPool *self,
           const char *username,
           GError    **error)
{
  UserRecord *user;

  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, username, 0, error);
  g_mutex_unlock (&self->db_lock);
  return user;
}

static gboolean
username_plausible (const char *username)
{
  return username != NULL && *username != '\0' && strlen (username) <= MAX_USERNAME_CHARS * 4 &&
         g_utf8_validate (username, -1, NULL);
}

static void
set_user_not_found (GError **error)
{
  g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND,
                       "Username/client id combination not found.");
}

static void
set_internal (GError    **error,
              const char *what,
              GError     *cause)
{
  g_warning ("%s: %s", what, cause != NULL ? cause->message : "failed");
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "%s", what);
}

/* Called with db_lock held, after a transaction that used a code failed:
 * a wrong code's attempt is kept (it counts towards the limit), anything
 * else is undone. */
static void
db_end_failed_code_step (FlUserPool   *self,
                         const GError *local)
{
  if (g_error_matches (local, FL_AUTH_ERROR, FL_AUTH_ERROR_CODE_MISMATCH))
    db_exec (self->db, "COMMIT", NULL);
  else
    db_exec (self->db, "ROLLBACK", NULL);
}

/* The error of a failed code step: a refusal counts as a failed attempt
 * for the throttle and goes to the caller as it is; anything else is an
 * internal fault.  Takes local. */
static void
fail_code_step (FlUserPool *self,
                const char *username,
                const char *client_address,
                GError     *local,
                const char *what,
                GError    **error)
{
  if (local->domain == FL_AUTH_ERROR && local->code != FL_AUTH_ERROR_INTERNAL)
    {
      throttle_record (self, username, client_address, FALSE);
      g_propagate_error (error, local);
      return;
    }
  set_internal (error, what, local);
  g_error_free (local);
}

/* ------------------------------------------------------------------ */
/* Sign-in state between calls                                         */

struct _SrpFlow
{
  FlSrpServer *server;
  char        *srp_a;
  char        *username; /* as stored: USER_ID_FOR_SRP */
  char        *client_id;
  gboolean     fake;     /* an unknown user: never succeeds */
  gint64       created;  /* µs, monotonic */
};

static void
srp_flow_free (SrpFlow *flow)
{
  g_clear_pointer (&flow->server, fl_srp_server_free);
  g_free (flow->srp_a);
  g_free (flow->username);
  g_free (flow->client_id);
  g_free (flow);
}

struct _PasswordFlow
{
  char  *username;
  char  *client_id;
  gint64 created; /* µs, monotonic */
};

static void
password_flow_free (PasswordFlow *flow)
{
  g_free (flow->username);
  g_free (flow->client_id);
  g_free (flow);
}

/* Keeps flow under key (taken) until flow_take or its expiry. */
static gboolean
flow_put (FlUserPool *self,
          GHashTable *table,
          char       *key,
          gpointer    flow,
          gint64 (*created_of) (gpointer),
          GError    **error)
{
  gint64 now = g_get_monotonic_time ();

  g_mutex_lock (&self->flow_lock);
  if (g_hash_table_size (table) >= FLOW_MAX_ENTRIES)
    {
      GHashTableIter iter;
      gpointer       value;

      g_hash_table_iter_init (&iter, table);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        if (now - created_of (value) >= FLOW_LIFETIME_US)
          g_hash_table_iter_remove (&iter);
    }
  if (g_hash_table_size (table) >= FLOW_MAX_ENTRIES)
    {
      g_mutex_unlock (&self->flow_lock);
      g_free (key);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_TOO_MANY_REQUESTS,
                           "Too many sign-ins in progress; try again later.");
      return FALSE;
    }
  g_hash_table_replace (table, key, flow);
  g_mutex_unlock (&self->flow_lock);
  return TRUE;
}

/* Takes a flow out (each is used once); NULL when unknown or expired. */
static gpointer
flow_take (FlUserPool *self,
           GHashTable *table,
           const char *key,
           gint64 (*created_of) (gpointer),
           GDestroyNotify free_func)
{
  gpointer value = NULL;

  if (key == NULL)
    return NULL;
  g_mutex_lock (&self->flow_lock);
  {
    gpointer stolen_key = NULL;

    if (g_hash_table_steal_extended (table, key, &stolen_key, &value))
      g_free (stolen_key);
  }
  g_mutex_unlock (&self->flow_lock);
  if (value != NULL && g_get_monotonic_time () - created_of (value) >= FLOW_LIFETIME_US)
    {
      free_func (value);
      value = NULL;
    }
  return value;
}

static gint64
srp_flow_created (gpointer flow)
{
  return ((SrpFlow *) flow)->created;
}

static gint64
password_flow_created (gpointer flow)
{
  return ((PasswordFlow *) flow)->created;
}

static char *
random_token (gsize n_bytes)
{
  g_autofree guint8 *raw = g_malloc (n_bytes);

  if (gnutls_rnd (GNUTLS_RND_NONCE, raw, n_bytes) < 0)
    return NULL;
  return g_base64_encode (raw, n_bytes);
}

/* After the password checked out: tokens, or NEW_PASSWORD_REQUIRED. */
static FlAuthResult *
finish_sign_in (FlUserPool       *self,
                const UserRecord *user,
                const char       *client_id,
                GError          **error)
{
  g_autoptr (FlAuthResult) result = g_new0 (FlAuthResult, 1);
  g_autoptr (GError)       local = NULL;

  if (!user->enabled)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "User is disabled.");
      return NULL;
    }
  if (g_strcmp0 (user->status, "UNCONFIRMED") == 0)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_CONFIRMED, "User is not confirmed.");
      return NULL;
    }
  if (g_strcmp0 (user->status, "RESET_REQUIRED") == 0)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_PASSWORD_RESET_REQUIRED,
                           "Password reset required for the user");
      return NULL;
    }

  if (g_strcmp0 (user->status, "FORCE_CHANGE_PASSWORD") == 0)
    {
      PasswordFlow    *flow = g_new0 (PasswordFlow, 1);
      g_autofree char *attributes = NULL;
      char            *session = random_token (96);

      if (session == NULL)
        {
          password_flow_free (flow);
          set_internal (error, "No random numbers", NULL);
          return NULL;
        }
      flow->username = g_strdup (user->username);
      flow->client_id = g_strdup (client_id);
      flow->created = g_get_monotonic_time ();
      result->session = g_strdup (session);
      if (!flow_put (self, self->new_password_flows, session, flow, password_flow_created, error))
        {
          password_flow_free (flow);
          return NULL;
        }
      result->challenge_name = g_strdup ("NEW_PASSWORD_REQUIRED");
      result->challenge_parameters = json_object_new ();
      json_object_set_string_member (result->challenge_parameters, "USER_ID_FOR_SRP", user->username);
      json_object_set_string_member (result->challenge_parameters, "requiredAttributes", "[]");
      attributes = user->email != NULL
                     ? g_strdup_printf ("{\"email\":\"%s\"}", user->email) /* check_email allows no quotes */
                     : g_strdup ("{}");
      json_object_set_string_member (result->challenge_parameters, "userAttributes", attributes);
      return g_steal_pointer (&result);
    }

  {
    g_autofree char *origin_jti = g_uuid_string_random ();
    g_autofree char *event_id = g_uuid_string_random ();

    result->tokens = mint_tokens (self, user, client_id, origin_jti, event_id, pool_now_s (self), TRUE, &local);
  }
  if (result->tokens == NULL)
    {
      set_internal (error, "Could not mint tokens", local);
      return NULL;
    }
  g_debug ("User %s signed in", user->username);
  return g_steal_pointer (&result);
}

/* ------------------------------------------------------------------ */
/* The operations                                                      */

gboolean
fl_user_pool_sign_up (FlUserPool     *self,
                      const char     *client_id,
                      const char     *username,
                      const char     *password,
                      const char     *email,
                      char          **sub_out,
                      gboolean       *confirmed_out,
                      FlCodeMessage **message_out,
                      GError        **error)
{
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (UserRecord)   user = NULL;
  g_autoptr (DbStmt)       stmt = NULL;
  g_autoptr (DbStmt)       count = NULL;
  g_autoptr (GError)       local = NULL;
  g_autofree char         *sub = g_uuid_string_random ();
  g_autofree char         *code = NULL;
  FlPasswordPolicy         policy = pool_get_policy (self);
  gboolean                 auto_confirm;
  FlRole                   role = FL_ROLE_VIEWER;
  gint64                   now = pool_now_s (self);
  int                      rc;

  g_mutex_lock (&self->state_lock);
  auto_confirm = self->auto_confirm;
  g_mutex_unlock (&self->state_lock);

  if (!check_username (username, error) || !check_password_policy (&policy, password, error))
    return FALSE;
  if (email == NULL || *email == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Attributes did not conform to the schema: email: The attribute is required");
      return FALSE;
    }
  if (!check_email (email, error))
    return FALSE;
  if (!password_secrets_make (self, username, password, &secrets, &local))
    {
      set_internal (error, "Sign-up failed", local);
      return FALSE;
    }

  g_mutex_lock (&self->db_lock);
  if (!db_exec (self->db, "BEGIN IMMEDIATE", &local))
    goto failed;

  /* the first user of a new pool administers it */
  count = db_prepare (self->db, "SELECT count (*) FROM users", &local);
  if (count == NULL || sqlite3_step (count) != SQLITE_ROW)
    goto failed;
  if (sqlite3_column_int64 (count, 0) == 0)
    role = FL_ROLE_ADMIN;

  stmt = db_prepare (self->db,
                     "INSERT INTO users (username, sub, email, email_verified, status, enabled,"
                     " password_hash, srp_salt, srp_verifier, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?9)",
                     &local);
  if (stmt == NULL)
    goto failed;
  sqlite3_bind_text (stmt, 1, username, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, sub, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, email, -1, SQLITE_STATIC);
  sqlite3_bind_int (stmt, 4, auto_confirm ? 1 : 0);
  sqlite3_bind_text (stmt, 5, auto_confirm ? "CONFIRMED" : "UNCONFIRMED", -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 6, secrets.hash, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 7, g_bytes_get_data (secrets.salt, NULL), (int) g_bytes_get_size (secrets.salt), SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 8, g_bytes_get_data (secrets.verifier, NULL), (int) g_bytes_get_size (secrets.verifier), SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 9, now);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    {
      db_exec (self->db, "ROLLBACK", NULL);
      g_mutex_unlock (&self->db_lock);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS, "User already exists");
      return FALSE;
    }
  if (rc != SQLITE_DONE)
    {
      db_error (self->db, "users", &local);
      goto failed;
    }
  if (!db_set_role (self, sqlite3_last_insert_rowid (self->db), role, &local))
    goto failed;
  user = db_load_user (self, username, 0, &local);
  if (user == NULL)
    goto failed;
  if (!auto_confirm && (code = db_new_code (self, user, "signup", SIGNUP_CODE_LIFETIME_S, &local)) == NULL)
    goto failed;
  if (!db_exec (self->db, "COMMIT", &local))
    goto failed;
  g_mutex_unlock (&self->db_lock);

  g_debug ("User %s signed up (%s)", username, fl_role_to_string (role));
  if (sub_out != NULL)
    *sub_out = g_steal_pointer (&sub);
  if (confirmed_out != NULL)
    *confirmed_out = auto_confirm;
  if (message_out != NULL)
    *message_out = code != NULL ? code_message_new (user, code, FALSE) : NULL;
  if (code != NULL)
    wipe_string (g_steal_pointer (&code));
  return TRUE;

failed:
  db_exec (self->db, "ROLLBACK", NULL);
  g_mutex_unlock (&self->db_lock);
  set_internal (error, "Sign-up failed", local);
  return FALSE;
}

gboolean
fl_user_pool_confirm_sign_up (FlUserPool *self,
                              const char *client_id,
                              const char *username,
                              const char *code,
                              const char *client_address,
                              GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  gboolean               ok;

  if (!username_plausible (username) || code == NULL)
    {
      set_user_not_found (error);
      return FALSE;
    }
  if (!throttle_check (self, username, client_address, error))
    return FALSE;

  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, username, 0, &local);
  if (user == NULL || local != NULL)
    {
      g_mutex_unlock (&self->db_lock);
      if (local != NULL)
        set_internal (error, "Confirmation failed", local);
      else
        set_user_not_found (error);
      return FALSE;
    }
  if (g_strcmp0 (user->status, "UNCONFIRMED") != 0)
    {
      g_mutex_unlock (&self->db_lock);
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "User cannot be confirmed. Current status is %s", user->status);
      return FALSE;
    }
  ok = db_exec (self->db, "BEGIN IMMEDIATE", &local) &&
       db_use_code (self, user, "signup", code, &local) &&
       db_set_status (self, user->id, "CONFIRMED", TRUE, &local) &&
       db_exec (self->db, "COMMIT", &local);
  if (!ok)
    {
      db_end_failed_code_step (self, local);
      g_mutex_unlock (&self->db_lock);
      fail_code_step (self, username, client_address, g_steal_pointer (&local), "Confirmation failed", error);
      return FALSE;
    }
  g_mutex_unlock (&self->db_lock);
  g_debug ("User %s confirmed", user->username);
  return TRUE;
}

FlCodeMessage *
fl_user_pool_resend_code (FlUserPool *self,
                          const char *client_id,
                          const char *username,
                          GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autofree char       *code = NULL;

  if (!username_plausible (username))
    {
      set_user_not_found (error);
      return NULL;
    }
  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, username, 0, &local);
  if (user != NULL && g_strcmp0 (user->status, "UNCONFIRMED") == 0)
    code = db_new_code (self, user, "signup", SIGNUP_CODE_LIFETIME_S, &local);
  g_mutex_unlock (&self->db_lock);

  if (local != NULL)
    {
      set_internal (error, "Could not make a code", local);
      return NULL;
    }
  if (user == NULL)
    {
      set_user_not_found (error);
      return NULL;
    }
  if (code == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER, "User is already confirmed.");
      return NULL;
    }
  {
    FlCodeMessage *message = code_message_new (user, code, FALSE);

    wipe_string (g_steal_pointer (&code));
    return message;
  }
}

/* With the password at hand: moves an old hash to the current argon2
 * parameters and gives a user from before SRP its verifier. */
static void
upgrade_password (FlUserPool       *self,
                  const UserRecord *user,
                  const char       *password)
{
  Argon2Params params = pool_get_argon2 (self);
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (GError) local = NULL;

  if (!hash_needs_update (user->password_hash, &params) && user->srp_verifier != NULL)
    return;
  if (!password_secrets_make (self, user->username, password, &secrets, &local))
    {
      g_warning ("Could not update the password of %s: %s", user->username, local->message);
      return;
    }
  g_mutex_lock (&self->db_lock);
  if (!db_store_password (self, user->id, &secrets, NULL, &local))
    g_warning ("Could not update the password of %s: %s", user->username, local->message);
  g_mutex_unlock (&self->db_lock);
}

FlAuthResult *
fl_user_pool_password_auth (FlUserPool *self,
                            const char *client_id,
                            const char *username,
                            const char *password,
                            const char *client_address,
                            GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autofree char       *dummy = NULL;
  int                    rc;

  if (username == NULL || *username == '\0' || password == NULL || *password == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Missing required parameter USERNAME or PASSWORD");
      return NULL;
    }
  /* No user has such a name or password: refuse without hashing */
  if (!username_plausible (username) || strlen (password) > MAX_PASSWORD_BYTES)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  if (!throttle_check (self, username, client_address, error))
    return NULL;

  /* made (the first time) on every path, so both cost the same */
  dummy = pool_dup_dummy_hash (self);
  if (dummy == NULL)
    {
      set_internal (error, "Password hashing failed", NULL);
      return NULL;
    }
  user = load_user (self, username, &local);
  if (local != NULL)
    {
      set_internal (error, "Sign-in failed", local);
      return NULL;
    }

  /* Unknown users are checked against the dummy hash: same time, same
   * answer as a wrong password. */
  rc = argon2id_verify (user != NULL ? user->password_hash : dummy, password, strlen (password));
  if (user == NULL || rc == ARGON2_VERIFY_MISMATCH)
    {
      throttle_record (self, username, client_address, FALSE);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  if (rc != ARGON2_OK)
    {
      g_warning ("Cannot check the password of user %s: %s", user->username, argon2_error_message (rc));
      set_internal (error, "Sign-in failed", NULL);
      return NULL;
    }
  throttle_record (self, username, client_address, TRUE);
  upgrade_password (self, user, password);

  return finish_sign_in (self, user, client_id, error);
}

FlAuthResult *
fl_user_pool_srp_auth (FlUserPool *self,
                       const char *client_id,
                       const char *username,
                       const char *srp_a,
                       const char *client_address,
                       GError    **error)
{
  g_autoptr (FlAuthResult) result = g_new0 (FlAuthResult, 1);
  g_autoptr (UserRecord)   user = NULL;
  g_autoptr (GError)       local = NULL;
  g_autoptr (GBytes)       fake_salt = NULL;
  g_autoptr (GBytes)       fake_verifier = NULL;
  g_autofree char         *salt_hex = NULL;
  g_autofree char         *b_hex = NULL;
  SrpFlow                 *flow;
  char                    *secret_block;
  GBytes                  *salt, *verifier;

  if (username == NULL || *username == '\0' || srp_a == NULL || *srp_a == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Missing required parameter USERNAME or SRP_A");
      return NULL;
    }
  if (!username_plausible (username) || strlen (srp_a) > 2048 ||
      strspn (srp_a, "0123456789abcdefABCDEF") != strlen (srp_a))
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  if (!throttle_check (self, username, client_address, error))
    return NULL;

  user = load_user (self, username, &local);
  if (local != NULL)
    {
      set_internal (error, "Sign-in failed", local);
      return NULL;
    }

  flow = g_new0 (SrpFlow, 1);
  if (user != NULL && user->srp_verifier != NULL)
    {
      salt = user->srp_salt;
      verifier = user->srp_verifier;
      flow->username = g_strdup (user->username);
    }
  else
    {
      /* an unknown user (or one from before SRP, who signs in once with
       * USER_PASSWORD_AUTH to get a verifier) gets a challenge that looks
       * the same and can never be answered: its salt is the same on
       * every call, as a real user's is */
      g_autofree char *random_password = random_string ("abcdefghijklmnopqrstuvwxyz0123456789", 32);
      g_autofree char *folded = g_utf8_casefold (username, -1);
      guint8           mac[32];

      if (gnutls_hmac_fast (GNUTLS_MAC_SHA256, self->fake_salt_key, strlen (self->fake_salt_key),
                            folded, strlen (folded), mac) < 0)
        {
          srp_flow_free (flow);
          set_internal (error, "Sign-in failed", NULL);
          return NULL;
        }
      fake_salt = g_bytes_new (mac, 16);
      fake_verifier = fl_srp_compute_verifier (pool_srp_name (self), username, random_password, fake_salt);
      salt = fake_salt;
      verifier = fake_verifier;
      flow->username = g_strdup (user != NULL ? user->username : username);
      flow->fake = TRUE;
    }

  flow->server = fl_srp_server_new (verifier, &local);
  if (flow->server == NULL)
    {
      srp_flow_free (flow);
      set_internal (error, "Sign-in failed", local);
      return NULL;
    }
  flow->srp_a = g_strdup (srp_a);
  flow->client_id = g_strdup (client_id);
  flow->created = g_get_monotonic_time ();
  b_hex = fl_srp_server_get_public_hex (flow->server);
  {
    gsize         n;
    const guint8 *data = g_bytes_get_data (salt, &n);
    GString      *hex = g_string_sized_new (2 * n);

    for (gsize i = 0; i < n; i++)
      g_string_append_printf (hex, "%02x", data[i]);
    salt_hex = g_string_free (hex, FALSE);
  }

  secret_block = random_token (96);
  if (secret_block == NULL)
    {
      srp_flow_free (flow);
      set_internal (error, "No random numbers", NULL);
      return NULL;
    }
  result->challenge_name = g_strdup ("PASSWORD_VERIFIER");
  result->challenge_parameters = json_object_new ();
  json_object_set_string_member (result->challenge_parameters, "SALT", salt_hex);
  json_object_set_string_member (result->challenge_parameters, "SECRET_BLOCK", secret_block);
  json_object_set_string_member (result->challenge_parameters, "SRP_B", b_hex);
  json_object_set_string_member (result->challenge_parameters, "USERNAME", flow->username);
  json_object_set_string_member (result->challenge_parameters, "USER_ID_FOR_SRP", flow->username);
  if (!flow_put (self, self->srp_flows, secret_block, flow, srp_flow_created, error))
    {
      srp_flow_free (flow);
      return NULL;
    }
  return g_steal_pointer (&result);
}

FlAuthResult *
fl_user_pool_password_verifier (FlUserPool *self,
                                const char *client_id,
                                const char *username,
                                const char *secret_block,
                                const char *timestamp,
                                const char *signature,
                                const char *client_address,
                                GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autoptr (GBytes)     block = NULL;
  SrpFlow               *flow;
  gboolean               ok;

  if (username == NULL || secret_block == NULL || timestamp == NULL || signature == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Missing required parameter USERNAME, PASSWORD_CLAIM_SECRET_BLOCK,"
                           " PASSWORD_CLAIM_SIGNATURE or TIMESTAMP");
      return NULL;
    }
  flow = flow_take (self, self->srp_flows, secret_block, srp_flow_created, (GDestroyNotify) srp_flow_free);
  if (flow == NULL || g_ascii_strcasecmp (flow->username, username) != 0 ||
      g_strcmp0 (flow->client_id, client_id) != 0)
    {
      g_clear_pointer (&flow, srp_flow_free);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  if (!throttle_check (self, username, client_address, error))
    {
      srp_flow_free (flow);
      return NULL;
    }

  {
    gsize   n = 0;
    guchar *raw = g_base64_decode (secret_block, &n);

    block = g_bytes_new_take (raw, n);
  }
  /* the signature, and TIMESTAMP within FL_SRP_TIMESTAMP_LEEWAY of the
   * pool's clock */
  ok = _fl_srp_server_verify_at (flow->server, flow->srp_a, pool_srp_name (self), flow->username,
                                 block, timestamp, signature, pool_now_s (self), NULL, &local) &&
       !flow->fake;
  if (!ok)
    {
      g_debug ("SRP sign-in refused for %s: %s", username, local != NULL ? local->message : "unknown user");
      srp_flow_free (flow);
      throttle_record (self, username, client_address, FALSE);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  throttle_record (self, username, client_address, TRUE);

  user = load_user (self, flow->username, &local);
  srp_flow_free (flow);
  if (user == NULL)
    {
      if (local != NULL)
        set_internal (error, "Sign-in failed", local);
      else
        g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return NULL;
    }
  return finish_sign_in (self, user, client_id, error);
}

FlAuthResult *
fl_user_pool_new_password (FlUserPool *self,
                           const char *client_id,
                           const char *session,
                           const char *username,
                           const char *new_password,
                           GError    **error)
{
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (UserRecord)   user = NULL;
  g_autoptr (GError)       local = NULL;
  FlPasswordPolicy         policy = pool_get_policy (self);
  PasswordFlow            *flow;
  gboolean                 ok;

  if (new_password == NULL || username == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Missing required parameter USERNAME or NEW_PASSWORD");
      return NULL;
    }
  if (!check_password_policy (&policy, new_password, error))
    return NULL;
  flow = flow_take (self, self->new_password_flows, session, password_flow_created,
                    (GDestroyNotify) password_flow_free);
  if (flow == NULL || g_ascii_strcasecmp (flow->username, username) != 0 ||
      g_strcmp0 (flow->client_id, client_id) != 0)
    {
      g_clear_pointer (&flow, password_flow_free);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                           "Invalid session for the user, session is expired.");
      return NULL;
    }
  if (!password_secrets_make (self, flow->username, new_password, &secrets, &local))
    {
      password_flow_free (flow);
      set_internal (error, "Could not set the password", local);
      return NULL;
    }
  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, flow->username, 0, &local);
  ok = user != NULL && g_strcmp0 (user->status, "FORCE_CHANGE_PASSWORD") == 0 &&
       db_store_password (self, user->id, &secrets, "CONFIRMED", &local);
  g_clear_pointer (&user, user_record_free);
  if (ok)
    user = db_load_user (self, flow->username, 0, &local);
  g_mutex_unlock (&self->db_lock);
  password_flow_free (flow);
  if (user == NULL)
    {
      if (local != NULL)
        set_internal (error, "Could not set the password", local);
      else
        g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                             "Invalid session for the user, session is expired.");
      return NULL;
    }
  return finish_sign_in (self, user, client_id, error);
}

FlTokens *
fl_user_pool_refresh (FlUserPool *self,
                      const char *client_id,
                      const char *token,
                      char      **username_out,
                      GError    **error)
{
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autoptr (FlTokens)   tokens = NULL;
  g_autofree char       *origin_jti = NULL;
  g_autofree char       *event_id = NULL;
  const char            *refused = NULL;
  guint8                 digest[32];
  gint64                 user_id = 0;
  gint64                 auth_time = 0;
  gint64                 now = pool_now_s (self);
  int                    rc;

  if (!refresh_token_well_formed (token))
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid Refresh Token");
      return NULL;
    }
  _fl_sha256 (token, strlen (token), digest);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db,
                     "SELECT user_id, client_id, origin_jti, event_id, auth_time, expires_at, revoked"
                     " FROM refresh_tokens WHERE token_hash = ?1",
                     &local);
  if (stmt != NULL)
    {
      sqlite3_bind_blob (stmt, 1, digest, sizeof digest, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          user_id = sqlite3_column_int64 (stmt, 0);
          origin_jti = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
          event_id = g_strdup ((const char *) sqlite3_column_text (stmt, 3));
          auth_time = sqlite3_column_int64 (stmt, 4);

          if (g_strcmp0 ((const char *) sqlite3_column_text (stmt, 1), client_id) != 0)
            refused = "Invalid Refresh Token";
          else if (sqlite3_column_int (stmt, 6) != 0)
            refused = "Refresh Token has been revoked";
          else if (now >= sqlite3_column_int64 (stmt, 5))
            refused = "Refresh Token has expired";
        }
      else if (rc == SQLITE_DONE)
        refused = "Invalid Refresh Token";
      else
        db_error (self->db, "refresh tokens", &local);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  if (local == NULL && refused == NULL)
    {
      user = db_load_user (self, NULL, user_id, &local);
      if (user == NULL && local == NULL)
        refused = "Invalid Refresh Token";
    }
  g_mutex_unlock (&self->db_lock);

  if (local != NULL)
    {
      set_internal (error, "Refresh failed", local);
      return NULL;
    }
  if (refused == NULL && !user->enabled)
    refused = "User is disabled.";
  if (refused != NULL)
    {
      g_debug ("Refresh refused: %s", refused);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, refused);
      return NULL;
    }

  tokens = mint_tokens (self, user, client_id, origin_jti, event_id, auth_time, FALSE, &local);
  if (tokens == NULL)
    {
      set_internal (error, "Refresh failed", local);
      return NULL;
    }
  if (username_out != NULL)
    *username_out = g_strdup (user->username);
  return g_steal_pointer (&tokens);
}

/* An access token of this pool, not revoked: for GetUser and the rest. */
static UserRecord *
user_from_access_token (FlUserPool *self,
                        const char *access_token,
                        GError    **error)
{
  g_autoptr (FlPrincipal) principal = NULL;
  g_autoptr (GError)      local = NULL;
  UserRecord             *user;

  principal = fl_user_pool_authenticate (self, access_token, &local);
  if (principal == NULL || !principal->access)
    {
      if (local != NULL && strstr (local->message, "revoked") != NULL)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid Access Token");
      return NULL;
    }
  user = load_user (self, principal->username, &local);
  if (user == NULL)
    {
      if (local != NULL)
        set_internal (error, "Could not load the user", local);
      else
        g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid Access Token");
    }
  return user;
}

JsonNode *
fl_user_pool_get_user (FlUserPool *self,
                       const char *access_token,
                       GError    **error)
{
  g_autoptr (UserRecord)  user = user_from_access_token (self, access_token, error);
  g_autoptr (JsonBuilder) builder = NULL;

  if (user == NULL)
    return NULL;
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "Username");
  json_builder_add_string_value (builder, user->username);
  json_builder_set_member_name (builder, "UserAttributes");
  json_builder_begin_array (builder);
#define ATTR(name, value)                                \
  G_STMT_START                                           \
  {                                                      \
    json_builder_begin_object (builder);                 \
    json_builder_set_member_name (builder, "Name");      \
    json_builder_add_string_value (builder, name);       \
    json_builder_set_member_name (builder, "Value");     \
    json_builder_add_string_value (builder, value);      \
    json_builder_end_object (builder);                   \
  }                                                      \
  G_STMT_END
  ATTR ("sub", user->sub);
  if (user->email != NULL)
    {
      ATTR ("email_verified", user->email_verified ? "true" : "false");
      ATTR ("email", user->email);
    }
#undef ATTR
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

/* Revokes refresh tokens (all of the user's, or one sign-in's) and
 * refuses the access tokens minted from them from now on. */
static gboolean
revoke_sign_ins (FlUserPool       *self,
                 const UserRecord *user,
                 const char       *origin_jti,
                 GError          **error)
{
  g_autoptr (DbStmt)    stmt = NULL;
  g_autoptr (GPtrArray) origins = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError)    local = NULL;
  gboolean              ok = FALSE;
  int                   rc;

  g_mutex_lock (&self->db_lock);
  if (!db_exec (self->db, "BEGIN IMMEDIATE", &local))
    goto out;
  stmt = db_prepare (self->db,
                     origin_jti != NULL ? "SELECT DISTINCT origin_jti FROM refresh_tokens WHERE user_id = ?1 AND origin_jti = ?2"
                                        : "SELECT DISTINCT origin_jti FROM refresh_tokens WHERE user_id = ?1",
                     &local);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_int64 (stmt, 1, user->id);
  if (origin_jti != NULL)
    sqlite3_bind_text (stmt, 2, origin_jti, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (origins, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
  if (rc != SQLITE_DONE)
    {
      db_error (self->db, "refresh tokens", &local);
      goto rollback;
    }
  g_clear_pointer (&stmt, sqlite3_finalize);
  stmt = db_prepare (self->db,
                     origin_jti != NULL ? "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1 AND origin_jti = ?2"
                                        : "UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ?1",
                     &local);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_int64 (stmt, 1, user->id);
  if (origin_jti != NULL)
    sqlite3_bind_text (stmt, 2, origin_jti, -1, SQLITE_STATIC);
  if (sqlite3_step (stmt) != SQLITE_DONE)
    {
      db_error (self->db, "refresh tokens", &local);
      goto rollback;
    }
  ok = db_exec (self->db, "COMMIT", &local);
  if (ok)
    goto out;
rollback:
  db_exec (self->db, "ROLLBACK", NULL);
out:
  g_mutex_unlock (&self->db_lock);
  if (!ok)
    {
      set_internal (error, "Sign-out failed", local);
      return FALSE;
    }

  g_mutex_lock (&self->cache_lock);
  for (guint i = 0; i < origins->len; i++)
    g_hash_table_add (self->revoked_origins, g_strdup (g_ptr_array_index (origins, i)));
  fl_token_cache_remove_sub (self->token_cache, user->sub);
  g_mutex_unlock (&self->cache_lock);
  return TRUE;
}

gboolean
fl_user_pool_global_sign_out (FlUserPool *self,
                              const char *access_token,
                              GError    **error)
{
  g_autoptr (UserRecord) user = user_from_access_token (self, access_token, error);

  if (user == NULL)
    return FALSE;
  if (!revoke_sign_ins (self, user, NULL, error))
    return FALSE;
  g_debug ("User %s signed out everywhere", user->username);
  return TRUE;
}

gboolean
fl_user_pool_revoke_token (FlUserPool *self,
                           const char *client_id,
                           const char *token,
                           GError    **error)
{
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autofree char       *origin_jti = NULL;
  g_autofree char       *token_client = NULL;
  gint64                 user_id = 0;
  guint8                 digest[32];
  int                    rc;

  if (!refresh_token_well_formed (token))
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_UNSUPPORTED_TOKEN_TYPE,
                           "The token is not a refresh token.");
      return FALSE;
    }
  _fl_sha256 (token, strlen (token), digest);
  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db, "SELECT user_id, client_id, origin_jti FROM refresh_tokens WHERE token_hash = ?1", &local);
  if (stmt != NULL)
    {
      sqlite3_bind_blob (stmt, 1, digest, sizeof digest, SQLITE_STATIC);
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          user_id = sqlite3_column_int64 (stmt, 0);
          token_client = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
          origin_jti = g_strdup ((const char *) sqlite3_column_text (stmt, 2));
          user = db_load_user (self, NULL, user_id, &local);
        }
      else if (rc != SQLITE_DONE)
        db_error (self->db, "refresh tokens", &local);
    }
  g_mutex_unlock (&self->db_lock);

  if (local != NULL)
    {
      set_internal (error, "Revocation failed", local);
      return FALSE;
    }
  /* an unknown token is revoked already, as far as anyone can tell */
  if (user == NULL)
    return TRUE;
  if (g_strcmp0 (token_client, client_id) != 0)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                           "The token was not issued to this client.");
      return FALSE;
    }
  return revoke_sign_ins (self, user, origin_jti, error);
}

FlCodeMessage *
fl_user_pool_forgot_password (FlUserPool *self,
                              const char *client_id,
                              const char *username,
                              GError    **error)
{
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     local = NULL;
  g_autofree char       *code = NULL;

  if (!username_plausible (username))
    {
      set_user_not_found (error);
      return NULL;
    }
  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, username, 0, &local);
  if (user != NULL && user->enabled && user->email != NULL)
    code = db_new_code (self, user, "reset", RESET_CODE_LIFETIME_S, &local);
  g_mutex_unlock (&self->db_lock);

  if (local != NULL)
    {
      set_internal (error, "Could not make a code", local);
      return NULL;
    }
  if (user == NULL)
    {
      set_user_not_found (error);
      return NULL;
    }
  if (!user->enabled)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "User is disabled.");
      return NULL;
    }
  if (code == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Cannot reset password for the user as there is no registered/verified email or phone_number");
      return NULL;
    }
  {
    FlCodeMessage *message = code_message_new (user, code, TRUE);

    wipe_string (g_steal_pointer (&code));
    return message;
  }
}

gboolean
fl_user_pool_confirm_forgot_password (FlUserPool *self,
                                      const char *client_id,
                                      const char *username,
                                      const char *code,
                                      const char *new_password,
                                      const char *client_address,
                                      GError    **error)
{
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (UserRecord)   user = NULL;
  g_autoptr (GError)       local = NULL;
  FlPasswordPolicy         policy = pool_get_policy (self);
  gboolean                 ok;

  if (!username_plausible (username) || code == NULL)
    {
      set_user_not_found (error);
      return FALSE;
    }
  if (!check_password_policy (&policy, new_password, error))
    return FALSE;
  if (!throttle_check (self, username, client_address, error))
    return FALSE;
  user = load_user (self, username, &local);
  if (user == NULL)
    {
      if (local != NULL)
        set_internal (error, "Password reset failed", local);
      else
        set_user_not_found (error);
      return FALSE;
    }
  if (!password_secrets_make (self, user->username, new_password, &secrets, &local))
    {
      set_internal (error, "Password reset failed", local);
      return FALSE;
    }

  g_mutex_lock (&self->db_lock);
  ok = db_exec (self->db, "BEGIN IMMEDIATE", &local) &&
       db_use_code (self, user, "reset", code, &local) &&
       db_store_password (self, user->id, &secrets,
                          g_strcmp0 (user->status, "UNCONFIRMED") == 0 ? NULL : "CONFIRMED", &local) &&
       db_exec (self->db, "COMMIT", &local);
  if (!ok)
    {
      db_end_failed_code_step (self, local);
      g_mutex_unlock (&self->db_lock);
      fail_code_step (self, username, client_address, g_steal_pointer (&local), "Password reset failed", error);
      return FALSE;
    }
  g_mutex_unlock (&self->db_lock);
  g_debug ("User %s reset the password", user->username);
  return TRUE;
}

gboolean
fl_user_pool_change_password (FlUserPool *self,
                              const char *access_token,
                              const char *previous_password,
                              const char *proposed_password,
                              const char *client_address,
                              GError    **error)
{
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (UserRecord)   user = NULL;
  g_autoptr (GError)       local = NULL;
  FlPasswordPolicy         policy = pool_get_policy (self);
  gboolean                 ok;
  int                      rc;

  if (previous_password == NULL || proposed_password == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                           "Missing required parameter PreviousPassword or ProposedPassword");
      return FALSE;
    }
  user = user_from_access_token (self, access_token, error);
  if (user == NULL)
    return FALSE;
  if (!check_password_policy (&policy, proposed_password, error) ||
      !throttle_check (self, user->username, client_address, error))
    return FALSE;
  rc = strlen (previous_password) > MAX_PASSWORD_BYTES
         ? ARGON2_VERIFY_MISMATCH
         : argon2id_verify (user->password_hash, previous_password, strlen (previous_password));
  if (rc != ARGON2_OK)
    {
      throttle_record (self, user->username, client_address, FALSE);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return FALSE;
    }
  throttle_record (self, user->username, client_address, TRUE);
  if (!password_secrets_make (self, user->username, proposed_password, &secrets, &local))
    {
      set_internal (error, "Could not change the password", local);
      return FALSE;
    }
  g_mutex_lock (&self->db_lock);
  ok = db_store_password (self, user->id, &secrets, NULL, &local);
  g_mutex_unlock (&self->db_lock);
  if (!ok)
    {
      set_internal (error, "Could not change the password", local);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Administration                                                      */

gboolean
fl_user_pool_create_user (FlUserPool *self,
                          const char *username,
                          const char *email,
                          const char *password,
                          gboolean    temporary,
                          FlRole      role,
                          GError    **error)
{
  g_auto (PasswordSecrets) secrets = { NULL, NULL, NULL };
  g_autoptr (DbStmt)       stmt = NULL;
  g_autoptr (GError)       local = NULL;
  g_autofree char         *sub = NULL;
  FlPasswordPolicy         policy;
  gint64                   now;
  int                      rc;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);
  g_return_val_if_fail (role >= FL_ROLE_NONE && role <= FL_ROLE_ADMIN, FALSE);

  if (email != NULL && *email == '\0')
    email = NULL;
  policy = pool_get_policy (self);
  if (!check_username (username, error) || !check_email (email, error) ||
      !check_password_policy (&policy, password, error))
    return FALSE;
  if (!password_secrets_make (self, username, password, &secrets, error))
    return FALSE;

  sub = g_uuid_string_random ();
  now = pool_now_s (self);

  g_mutex_lock (&self->db_lock);
  if (!db_exec (self->db, "BEGIN IMMEDIATE", error))
    goto out;
  stmt = db_prepare (self->db,
                     "INSERT INTO users (username, sub, email, email_verified, status, enabled,"
                     " password_hash, srp_salt, srp_verifier, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?9)",
                     error);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_text (stmt, 1, username, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, sub, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, email, -1, SQLITE_STATIC);
  /* as AdminCreateUser without email_verified: the address is not
   * verified until the user proves it */
  sqlite3_bind_int (stmt, 4, 0);
  sqlite3_bind_text (stmt, 5, temporary ? "FORCE_CHANGE_PASSWORD" : "CONFIRMED", -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 6, secrets.hash, -1, SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 7, g_bytes_get_data (secrets.salt, NULL), (int) g_bytes_get_size (secrets.salt), SQLITE_STATIC);
  sqlite3_bind_blob (stmt, 8, g_bytes_get_data (secrets.verifier, NULL), (int) g_bytes_get_size (secrets.verifier), SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 9, now);

  rc = sqlite3_step (stmt);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS, "User account already exists");
      goto rollback;
    }
  if (rc != SQLITE_DONE)
    {
      db_error (self->db, "add user", error);
      goto rollback;
    }
  if (!db_set_role (self, sqlite3_last_insert_rowid (self->db), role, error) || !db_exec (self->db, "COMMIT", error))
    goto rollback;

  g_mutex_unlock (&self->db_lock);
  g_debug ("Added user %s as %s", username, fl_role_to_string (role));
  return TRUE;

rollback:
  db_exec (self->db, "ROLLBACK", NULL);
out:
  g_mutex_unlock (&self->db_lock);
  return FALSE;
}

static void
user_to_json (JsonBuilder      *builder,
              const UserRecord *user)
{
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "username");
  json_builder_add_string_value (builder, user->username);
  json_builder_set_member_name (builder, "sub");
  json_builder_add_string_value (builder, user->sub);
  json_builder_set_member_name (builder, "email");
  if (user->email != NULL)
    json_builder_add_string_value (builder, user->email);
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "emailVerified");
  json_builder_add_boolean_value (builder, user->email_verified);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, user->status);
  json_builder_set_member_name (builder, "enabled");
  json_builder_add_boolean_value (builder, user->enabled);
  json_builder_set_member_name (builder, "groups");
  json_builder_begin_array (builder);
  for (guint k = 0; user->groups[k] != NULL; k++)
    json_builder_add_string_value (builder, user->groups[k]);
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "role");
  json_builder_add_string_value (builder, fl_role_to_string (fl_role_from_groups ((const char *const *) user->groups)));
  json_builder_end_object (builder);
}

JsonNode *
fl_user_pool_list_users (FlUserPool *self,
                         GError    **error)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (DbStmt)      stmt = NULL;
  g_autoptr (GArray)      ids = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GError)      local = NULL;
  int                     rc;

  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "users");
  json_builder_begin_array (builder);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db, "SELECT id FROM users ORDER BY username", &local);
  if (stmt != NULL)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          gint64 id = sqlite3_column_int64 (stmt, 0);

          g_array_append_val (ids, id);
        }
      if (rc != SQLITE_DONE)
        db_error (self->db, "users", &local);
    }
  for (guint i = 0; local == NULL && i < ids->len; i++)
    {
      g_autoptr (UserRecord) user = db_load_user (self, NULL, g_array_index (ids, gint64, i), &local);

      if (user != NULL)
        user_to_json (builder, user);
    }
  g_mutex_unlock (&self->db_lock);
  if (local != NULL)
    {
      set_internal (error, "Could not list users", local);
      return NULL;
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  return json_builder_get_root (builder);
}

JsonNode *
fl_user_pool_get_user_json (FlUserPool *self,
                            const char *username,
                            GError    **error)
{
  g_autoptr (JsonBuilder) builder = NULL;
  g_autoptr (UserRecord)  user = NULL;
  g_autoptr (GError)      local = NULL;

  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  user = load_user (self, username, &local);
  if (user == NULL)
    {
      if (local != NULL)
        set_internal (error, "Could not load the user", local);
      else
        g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_NOT_FOUND, "User does not exist.");
      return NULL;
    }
  builder = json_builder_new ();
  user_to_json (builder, user);
  return json_builder_get_root (builder);
}

/* ------------------------------------------------------------------ */
/* Signing keys: current ones in keys/, retired ones in keys/retired/  */

static const char *const key_names[] = { "id-token", "access-token" };

gboolean
fl_user_pool_rotate_keys (FlUserPool *self,
                          GError    **error)
{
  g_autofree char *keys_dir = g_build_filename (self->data_dir, "keys", NULL);
  g_autofree char *retired_dir = g_build_filename (keys_dir, "retired", NULL);
  gint64           now = pool_now_s (self);

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);

  if (g_mkdir_with_parents (retired_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                   "Could not create %s: %s", retired_dir, g_strerror (saved_errno));
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (key_names); i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.pem", key_names[i]);
      g_autofree char *current = g_build_filename (keys_dir, name, NULL);
      g_autofree char *retired_name = g_strdup_printf ("%s-%" G_GINT64_FORMAT ".pem", key_names[i], now);
      g_autofree char *retired = g_build_filename (retired_dir, retired_name, NULL);
      g_autoptr (FlJwtKey) key = NULL;

      if (g_rename (current, retired) != 0 && errno != ENOENT)
        {
          int saved_errno = errno;

          g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                       "Could not retire %s: %s", current, g_strerror (saved_errno));
          return FALSE;
        }
      key = fl_jwt_key_load_or_create (current, error);
      if (key == NULL)
        return FALSE;
    }
  return TRUE;
}

/* Adds the retired keys whose tokens may still be alive to the key sets
 * (verification and JWKS); deletes older ones. */
static gboolean
load_retired_keys (FlUserPool *self,
                   GError    **error)
{
  g_autofree char *retired_dir = g_build_filename (self->data_dir, "keys", "retired", NULL);
  g_autoptr (GDir) dir = g_dir_open (retired_dir, 0, NULL);
  const char      *name;
  gint64           now = pool_now_s (self);

  if (dir == NULL)
    return TRUE;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (retired_dir, name, NULL);
      const char      *dash = strrchr (name, '-');
      gint64           retired_at;
      gboolean         id_key = g_str_has_prefix (name, "id-token-");
      FlJwtKey        *key;

      if (dash == NULL || !g_str_has_suffix (name, ".pem") ||
          (!id_key && !g_str_has_prefix (name, "access-token-")))
        continue;
      retired_at = g_ascii_strtoll (dash + 1, NULL, 10);
      /* a token signed just before the rotation lives MAX_TOKEN_LIFETIME_S
       * at most */
      if (retired_at <= 0 || now - retired_at > MAX_TOKEN_LIFETIME_S)
        {
          g_unlink (path);
          continue;
        }
      key = fl_jwt_key_load_or_create (path, error);
      if (key == NULL)
        return FALSE;
      fl_jwt_key_set_add_key (id_key ? self->id_keys : self->access_keys, key);
      fl_jwt_key_set_add_key (self->all_keys, key);
      g_ptr_array_add (self->retired_keys, key);
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Running the operations                                              */

static void
pool_job_free (PoolJob *job)
{
  if (job->data_free != NULL)
    job->data_free (job->data);
  g_free (job);
}

/**
 * fl_user_pool_run_async:
 *
 * Runs func (task, self, task_data, cancellable) on the pool's hashing
 * threads; func returns through task.  Refused with
 * FL_AUTH_ERROR_TOO_MANY_REQUESTS when too many are waiting.
 */
void
fl_user_pool_run_async (FlUserPool         *self,
                        GTaskThreadFunc     func,
                        gpointer            task_data,
                        GDestroyNotify      task_data_free,
                        GCancellable       *cancellable,
                        GAsyncReadyCallback callback,
                        gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GError) error = NULL;
  PoolJob           *job;

  g_return_if_fail (FL_IS_USER_POOL (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_user_pool_run_async);
  job = g_new0 (PoolJob, 1);
  job->func = func;
  job->data = task_data;
  job->data_free = task_data_free;
  g_task_set_task_data (task, job, (GDestroyNotify) pool_job_free);

  if (g_thread_pool_unprocessed (get_hash_pool ()) >= MAX_PENDING_LOGINS)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_TOO_MANY_REQUESTS,
                               "Too many requests at once; try again later.");
      return;
    }
  if (!g_thread_pool_push (get_hash_pool (), g_object_ref (task), &error))
    {
      g_object_unref (task);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No worker thread: %s", error->message);
    }
}

/* ------------------------------------------------------------------ */
/* Bearer tokens                                                       */

/* Builds the principal from verified claims, checking what the
 * signature cannot: issuer, token_use (which must match the key that
 * signed it), audience or client_id, then the claims of the principal.
 * Every refusal is "Invalid token.". */
static FlPrincipal *
principal_from_claims (FlUserPool *self,
                       JsonObject *claims,
                       const char *expected_use,
                       GError    **error)
{
  FlPrincipal *principal;
  const char  *iss, *use, *client;
  gboolean     iss_ok, client_ok;

  iss = _fl_json_get_string (claims, "iss");
  g_mutex_lock (&self->state_lock);
  iss_ok = iss != NULL && strcmp (iss, self->issuer) == 0;
  g_mutex_unlock (&self->state_lock);
  if (!iss_ok)
    goto invalid;

  use = _fl_json_get_string (claims, "token_use");
  if (use == NULL || strcmp (use, expected_use) != 0)
    goto invalid;

  client = _fl_json_get_string (claims, strcmp (use, "id") == 0 ? "aud" : "client_id");
  g_mutex_lock (&self->state_lock);
  client_ok = client != NULL && g_hash_table_contains (self->clients, client);
  g_mutex_unlock (&self->state_lock);
  if (!client_ok)
    goto invalid;

  principal = fl_principal_new_from_claims (claims, NULL);
  if (principal == NULL)
    goto invalid;

  return principal;

invalid:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid token.");
  return NULL;
}

/**
 * fl_user_pool_authenticate:
 * @token: (nullable): the bearer token, from outside
 *
 * Returns: (transfer full): who @token speaks for, or NULL with
 *   FL_AUTH_ERROR_NOT_AUTHORIZED
 */
FlPrincipal *
fl_user_pool_authenticate (FlUserPool *self,
                           const char *token,
                           GError    **error)
{
  g_autoptr (GError)      local_error = NULL;
  g_autoptr (JsonObject)  claims = NULL;
  g_autoptr (FlPrincipal) principal = NULL;
  const char             *use = "id";
  guint8                  digest[FL_TOKEN_CACHE_DIGEST_LEN];
  gint64                  now;
  gsize                   len;

  g_return_val_if_fail (FL_IS_USER_POOL (self), NULL);

  if (token == NULL || *token == '\0')
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Missing token.");
      return NULL;
    }

  len = strnlen (token, MAX_TOKEN_LEN + 1);
  if (len > MAX_TOKEN_LEN)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid token.");
      return NULL;
    }

  now = pool_now_s (self);
  _fl_sha256 (token, len, digest);

  g_mutex_lock (&self->cache_lock);
  principal = fl_token_cache_lookup (self->token_cache, digest, now, NULL);
  g_mutex_unlock (&self->cache_lock);
  if (principal != NULL)
    return g_steal_pointer (&principal);

  /* ID tokens and access tokens are signed with different keys: a token
   * is checked against the key of the use it claims. */
  claims = fl_jwt_verify (self->id_keys, token, now, 0, &local_error);
  if (claims == NULL && g_error_matches (local_error, FL_JWT_ERROR, FL_JWT_ERROR_UNKNOWN_KEY))
    {
      g_clear_error (&local_error);
      use = "access";
      claims = fl_jwt_verify (self->access_keys, token, now, 0, &local_error);
    }

  if (claims == NULL)
    {
      g_debug ("Token refused: %s", local_error->message);
      if (g_error_matches (local_error, FL_JWT_ERROR, FL_JWT_ERROR_EXPIRED))
        g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Token has expired.");
      else
        g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid token.");
      return NULL;
    }

  principal = principal_from_claims (self, claims, use, error);
  if (principal == NULL)
    {
      g_debug ("Token refused: claims do not match this pool");
      return NULL;
    }

  g_mutex_lock (&self->cache_lock);
  if (g_hash_table_contains (self->disabled_subs, principal->sub))
    {
      g_mutex_unlock (&self->cache_lock);
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "User is disabled.");
      return NULL;
    }
  {
    const char *origin = _fl_json_get_string (claims, "origin_jti");

    if (origin != NULL && g_hash_table_contains (self->revoked_origins, origin))
      {
        g_mutex_unlock (&self->cache_lock);
        g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                     principal->access ? "Access Token has been revoked" : "Token has been revoked");
        return NULL;
      }
  }
  fl_token_cache_insert (self->token_cache, digest, fl_principal_copy (principal), now);
  g_mutex_unlock (&self->cache_lock);

  return g_steal_pointer (&principal);
}

gboolean
fl_user_pool_principal_revoked (FlUserPool        *self,
                                const FlPrincipal *principal)
{
  gboolean revoked;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);
  g_return_val_if_fail (principal != NULL, FALSE);

  g_mutex_lock (&self->cache_lock);
  revoked = g_hash_table_contains (self->disabled_subs, principal->sub) ||
            (principal->origin_jti != NULL && g_hash_table_contains (self->revoked_origins, principal->origin_jti));
  g_mutex_unlock (&self->cache_lock);
  return revoked;
}

/* ------------------------------------------------------------------ */
/* Private                                                             */

void
_fl_user_pool_set_clock (FlUserPool         *self,
                         FlUserPoolClockFunc clock,
                         gpointer            user_data)
{
  g_return_if_fail (FL_IS_USER_POOL (self));

  self->clock = clock;
  self->clock_data = user_data;
}

void
_fl_user_pool_set_argon2_params (FlUserPool *self,
                                 guint32     t_cost,
                                 guint32     m_cost_kib,
                                 guint32     parallelism)
{
  g_return_if_fail (FL_IS_USER_POOL (self));
  g_return_if_fail (t_cost >= 1 && parallelism >= 1 && m_cost_kib >= 8 * parallelism);

  g_mutex_lock (&self->state_lock);
  self->argon2.t_cost = t_cost;
  self->argon2.m_cost_kib = m_cost_kib;
  self->argon2.lanes = parallelism;
  g_clear_pointer (&self->dummy_hash, g_free);
  g_mutex_unlock (&self->state_lock);
}

void
_fl_user_pool_clear_token_cache (FlUserPool *self)
{
  g_return_if_fail (FL_IS_USER_POOL (self));

  g_mutex_lock (&self->cache_lock);
  fl_token_cache_clear (self->token_cache);
  g_mutex_unlock (&self->cache_lock);
}

guint
_fl_user_pool_get_token_cache_size (FlUserPool *self)
{
  guint size;

  g_return_val_if_fail (FL_IS_USER_POOL (self), 0);

  g_mutex_lock (&self->cache_lock);
  size = fl_token_cache_get_size (self->token_cache);
  g_mutex_unlock (&self->cache_lock);

  return size;
}
