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

#include "fl-jwt.h"
#include "fl-user-pool-private.h"
#include "fl-user-pool.h"

/* clang-format off */
G_DEFINE_QUARK (fl-auth-error-quark, fl_auth_error)
/* clang-format on */

#define SCHEMA_VERSION 1

/* Token lifetimes, as Cognito's defaults */
#define TOKEN_LIFETIME_S 3600
#define REFRESH_LIFETIME_S (30 * 24 * 3600)
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

typedef struct
{
  guint8       digest[32]; /* SHA-256 of the token: the hash table key */
  FlPrincipal *principal;
} CachedToken;

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

  GMutex      cache_lock;      /* guards token_cache, disabled_subs */
  GHashTable *token_cache;     /* digest → CachedToken */
  GHashTable *disabled_subs;   /* sub → sub */
  gint64      cache_pruned_at; /* s */

  GMutex      throttle_lock;
  GHashTable *user_throttle; /* folded username → Throttle */
  GHashTable *addr_throttle; /* client address → Throttle */
};

G_DEFINE_FINAL_TYPE (FlUserPool, fl_user_pool, G_TYPE_OBJECT)

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
  g_free (principal);
}

static FlPrincipal *
principal_copy (const FlPrincipal *src)
{
  FlPrincipal *p = g_new0 (FlPrincipal, 1);

  p->sub = g_strdup (src->sub);
  p->username = g_strdup (src->username);
  p->email = g_strdup (src->email);
  p->groups = g_strdupv (src->groups);
  p->role = src->role;
  p->expires_at = src->expires_at;

  return p;
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

static void
sha256 (const void *data,
        gsize       len,
        guint8      digest[32])
{
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, data, len, digest) < 0)
    g_error ("SHA-256 failed");
}

static const char *
json_get_string (JsonObject *obj,
                 const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

static gboolean
json_get_int (JsonObject *obj,
              const char *name,
              gint64     *value)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;

  *value = json_node_get_int (node);
  return TRUE;
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
check_password_policy (const char *password,
                       GError    **error)
{
  g_autoptr (GPtrArray) problems = NULL;
  g_autofree char      *joined = NULL;
  gboolean              upper = FALSE, lower = FALSE, digit = FALSE, symbol = FALSE;
  glong                 n_chars;
  gsize                 len;

  if (password == NULL || (len = strlen (password)) > MAX_PASSWORD_BYTES || !g_utf8_validate (password, -1, NULL))
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PASSWORD,
                   "Password did not conform with policy: Password must be 8 to %d characters of UTF-8",
                   MAX_PASSWORD_CHARS);
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
  if (n_chars < 8)
    g_ptr_array_add (problems, (gpointer) "Password not long enough");
  if (n_chars > MAX_PASSWORD_CHARS)
    g_ptr_array_add (problems, (gpointer) "Password is too long");
  if (!upper)
    g_ptr_array_add (problems, (gpointer) "Password must have uppercase characters");
  if (!lower)
    g_ptr_array_add (problems, (gpointer) "Password must have lowercase characters");
  if (!digit)
    g_ptr_array_add (problems, (gpointer) "Password must have numeric characters");
  if (!symbol)
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

  /* later: if (version < 2) { ... } */

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

#define USER_COLUMNS "id, username, sub, email, email_verified, status, enabled, password_hash"

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

  if (gnutls_rnd (GNUTLS_RND_KEY, raw, sizeof raw) < 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "No random numbers");
      return NULL;
    }
  token = fl_base64url_encode (raw, sizeof raw);
  gnutls_memset (raw, 0, sizeof raw);
  sha256 (token, strlen (token), digest);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db,
                     "INSERT INTO refresh_tokens (token_hash, user_id, client_id, origin_jti, event_id,"
                     " auth_time, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     error);
  if (stmt != NULL)
    {
      sqlite3_bind_blob (stmt, 1, digest, sizeof digest, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, user->id);
      sqlite3_bind_text (stmt, 3, self->client_id, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 4, origin_jti, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 5, event_id, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 6, auth_time);
      sqlite3_bind_int64 (stmt, 7, now);
      sqlite3_bind_int64 (stmt, 8, now + REFRESH_LIFETIME_S);
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

  g_mutex_lock (&self->state_lock);
  issuer = g_strdup (self->issuer);
  g_mutex_unlock (&self->state_lock);

  /* ID token, claims in Cognito's order */
  json_object_set_string_member (id_claims, "sub", user->sub);
  set_groups_claim (id_claims, groups);
  if (user->email != NULL)
    json_object_set_boolean_member (id_claims, "email_verified", user->email_verified);
  json_object_set_string_member (id_claims, "iss", issuer);
  json_object_set_string_member (id_claims, "cognito:username", user->username);
  json_object_set_string_member (id_claims, "origin_jti", origin_jti);
  json_object_set_string_member (id_claims, "aud", self->client_id);
  json_object_set_string_member (id_claims, "event_id", event_id);
  json_object_set_string_member (id_claims, "token_use", "id");
  json_object_set_int_member (id_claims, "auth_time", auth_time);
  json_object_set_int_member (id_claims, "exp", now + TOKEN_LIFETIME_S);
  json_object_set_int_member (id_claims, "iat", now);
  json_object_set_string_member (id_claims, "jti", id_jti);
  if (user->email != NULL)
    json_object_set_string_member (id_claims, "email", user->email);

  /* Access token */
  json_object_set_string_member (access_claims, "sub", user->sub);
  set_groups_claim (access_claims, groups);
  json_object_set_string_member (access_claims, "iss", issuer);
  json_object_set_string_member (access_claims, "client_id", self->client_id);
  json_object_set_string_member (access_claims, "origin_jti", origin_jti);
  json_object_set_string_member (access_claims, "event_id", event_id);
  json_object_set_string_member (access_claims, "token_use", "access");
  json_object_set_string_member (access_claims, "scope", ACCESS_SCOPE);
  json_object_set_int_member (access_claims, "auth_time", auth_time);
  json_object_set_int_member (access_claims, "exp", now + TOKEN_LIFETIME_S);
  json_object_set_int_member (access_claims, "iat", now);
  json_object_set_string_member (access_claims, "jti", access_jti);
  json_object_set_string_member (access_claims, "username", user->username);

  tokens->expires_in = TOKEN_LIFETIME_S;
  tokens->id_token = fl_jwt_sign (self->id_key, id_claims, error);
  if (tokens->id_token == NULL)
    return NULL;
  tokens->access_token = fl_jwt_sign (self->access_key, access_claims, error);
  if (tokens->access_token == NULL)
    return NULL;

  if (with_refresh)
    {
      tokens->refresh_token = issue_refresh_token (self, user, origin_jti, event_id, auth_time, now, error);
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
cached_token_free (CachedToken *entry)
{
  fl_principal_free (entry->principal);
  g_free (entry);
}

static guint
digest_hash (gconstpointer key)
{
  guint h;

  memcpy (&h, key, sizeof h);
  return h;
}

static gboolean
digest_equal (gconstpointer a,
              gconstpointer b)
{
  return memcmp (a, b, 32) == 0;
}

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
  g_clear_pointer (&self->token_cache, g_hash_table_unref);
  g_clear_pointer (&self->disabled_subs, g_hash_table_unref);
  g_clear_pointer (&self->user_throttle, g_hash_table_unref);
  g_clear_pointer (&self->addr_throttle, g_hash_table_unref);
  g_mutex_clear (&self->db_lock);
  g_mutex_clear (&self->state_lock);
  g_mutex_clear (&self->cache_lock);
  g_mutex_clear (&self->throttle_lock);

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
  self->token_cache = g_hash_table_new_full (digest_hash, digest_equal, NULL,
                                             (GDestroyNotify) cached_token_free);
  self->disabled_subs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->user_throttle = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->addr_throttle = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
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
  g_autoptr (DbStmt) stmt = db_prepare (self->db, "DELETE FROM refresh_tokens WHERE expires_at <= ?1", error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, pool_now_s (self));

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

  if (!load_disabled_subs (self, error) || !prune_refresh_tokens (self, error))
    return NULL;

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
  g_autoptr (DbStmt) stmt = NULL;
  g_autofree char   *hash = NULL;
  g_autofree char   *sub = NULL;
  Argon2Params       params;
  gint64             now;
  int                rc;

  g_return_val_if_fail (FL_IS_USER_POOL (self), FALSE);
  g_return_val_if_fail (role >= FL_ROLE_NONE && role <= FL_ROLE_ADMIN, FALSE);

  if (email != NULL && *email == '\0')
    email = NULL;

  if (!check_username (username, error) || !check_email (email, error) || !check_password_policy (password, error))
    return FALSE;

  params = pool_get_argon2 (self);
  hash = hash_password (&params, password, error);
  if (hash == NULL)
    return FALSE;

  sub = g_uuid_string_random ();
  now = pool_now_s (self);

  g_mutex_lock (&self->db_lock);

  if (!db_exec (self->db, "BEGIN IMMEDIATE", error))
    goto out;

  stmt = db_prepare (self->db,
                     "INSERT INTO users (username, sub, email, email_verified, status, enabled,"
                     " password_hash, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, 0, 'CONFIRMED', 1, ?4, ?5, ?5)",
                     error);
  if (stmt == NULL)
    goto rollback;
  sqlite3_bind_text (stmt, 1, username, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, sub, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, email, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 5, now);

  rc = sqlite3_step (stmt);
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_USER_EXISTS, "User account already exists");
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

static void
evict_cached_tokens_of (FlUserPool *self,
                        const char *sub)
{
  GHashTableIter iter;
  gpointer       value;

  g_hash_table_iter_init (&iter, self->token_cache);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      CachedToken *entry = value;

      if (strcmp (entry->principal->sub, sub) == 0)
        g_hash_table_iter_remove (&iter);
    }
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
      evict_cached_tokens_of (self, user->sub);
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
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlTokens)   tokens = NULL;
  g_autofree char       *dummy = NULL;
  g_autofree char       *origin_jti = NULL;
  g_autofree char       *event_id = NULL;
  Argon2Params           params;
  int                    rc;

  if (g_task_return_error_if_cancelled (task))
    return;

  /* again: failures may have been recorded while this one waited */
  if (!throttle_check (self, data->username, data->client_address, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* made (the first time) on every path, so both cost the same */
  dummy = pool_dup_dummy_hash (self);
  if (dummy == NULL)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Password hashing failed");
      return;
    }

  g_mutex_lock (&self->db_lock);
  user = db_load_user (self, data->username, 0, &error);
  g_mutex_unlock (&self->db_lock);
  if (error != NULL)
    {
      g_warning ("Sign-in failed: %s", error->message);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Sign-in failed");
      return;
    }

  /* Unknown users are checked against the dummy hash: same time, same
   * answer as a wrong password. */
  rc = argon2id_verify (user != NULL ? user->password_hash : dummy,
                        data->password, strlen (data->password));

  if (user == NULL || rc == ARGON2_VERIFY_MISMATCH)
    {
      throttle_record (self, data->username, data->client_address, FALSE);
      g_debug ("Sign-in refused: wrong username or password");
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, NOT_AUTHORIZED_MESSAGE);
      return;
    }

  if (rc != ARGON2_OK)
    {
      g_warning ("Cannot check the password of user %s: %s", user->username, argon2_error_message (rc));
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Sign-in failed");
      return;
    }

  throttle_record (self, data->username, data->client_address, TRUE);

  if (!user->enabled)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "User is disabled.");
      return;
    }
  if (g_strcmp0 (user->status, "CONFIRMED") != 0)
    {
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "User is not confirmed.");
      return;
    }

  /* Move old hashes to the current parameters while we have the password */
  params = pool_get_argon2 (self);
  if (hash_needs_update (user->password_hash, &params))
    {
      g_autofree char   *hash = hash_password (&params, data->password, NULL);
      g_autoptr (DbStmt) stmt = NULL;

      g_mutex_lock (&self->db_lock);
      if (hash != NULL && (stmt = db_prepare (self->db, "UPDATE users SET password_hash = ?1 WHERE id = ?2", NULL)) != NULL)
        {
          sqlite3_bind_text (stmt, 1, hash, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (stmt, 2, user->id);
          if (sqlite3_step (stmt) != SQLITE_DONE)
            g_warning ("Could not rehash the password of %s: %s", user->username, sqlite3_errmsg (self->db));
        }
      g_clear_pointer (&stmt, sqlite3_finalize);
      g_mutex_unlock (&self->db_lock);
    }

  origin_jti = g_uuid_string_random ();
  event_id = g_uuid_string_random ();
  tokens = mint_tokens (self, user, origin_jti, event_id, pool_now_s (self), TRUE, &error);
  if (tokens == NULL)
    {
      g_warning ("Could not mint tokens: %s", error->message);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Sign-in failed");
      return;
    }

  g_debug ("User %s signed in", user->username);
  g_task_return_pointer (task, g_steal_pointer (&tokens), (GDestroyNotify) fl_tokens_free);
}

static void
hash_pool_func (gpointer data,
                gpointer user_data)
{
  GTask *task = data;

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
  FlUserPool            *self = source_object;
  const char            *token = task_data;
  g_autoptr (DbStmt)     stmt = NULL;
  g_autoptr (UserRecord) user = NULL;
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlTokens)   tokens = NULL;
  g_autofree char       *origin_jti = NULL;
  g_autofree char       *event_id = NULL;
  const char            *refused = NULL;
  guint8                 digest[32];
  gint64                 user_id = 0;
  gint64                 auth_time = 0;
  gint64                 now = pool_now_s (self);
  int                    rc;

  if (g_task_return_error_if_cancelled (task))
    return;

  sha256 (token, strlen (token), digest);

  g_mutex_lock (&self->db_lock);
  stmt = db_prepare (self->db,
                     "SELECT user_id, client_id, origin_jti, event_id, auth_time, expires_at, revoked"
                     " FROM refresh_tokens WHERE token_hash = ?1",
                     &error);
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

          if (g_strcmp0 ((const char *) sqlite3_column_text (stmt, 1), self->client_id) != 0)
            refused = "Invalid Refresh Token";
          else if (sqlite3_column_int (stmt, 6) != 0)
            refused = "Refresh Token has been revoked";
          else if (now >= sqlite3_column_int64 (stmt, 5))
            refused = "Refresh Token has expired";
        }
      else if (rc == SQLITE_DONE)
        refused = "Invalid Refresh Token";
      else
        db_error (self->db, "refresh tokens", &error);
    }
  g_clear_pointer (&stmt, sqlite3_finalize);

  if (error == NULL && refused == NULL)
    {
      user = db_load_user (self, NULL, user_id, &error);
      if (user == NULL && error == NULL)
        refused = "Invalid Refresh Token";
    }
  g_mutex_unlock (&self->db_lock);

  if (error != NULL)
    {
      g_warning ("Refresh failed: %s", error->message);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Refresh failed");
      return;
    }

  if (refused == NULL && !user->enabled)
    refused = "User is disabled.";

  if (refused != NULL)
    {
      g_debug ("Refresh refused: %s", refused);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "%s", refused);
      return;
    }

  tokens = mint_tokens (self, user, origin_jti, event_id, auth_time, FALSE, &error);
  if (tokens == NULL)
    {
      g_warning ("Could not mint tokens: %s", error->message);
      g_task_return_new_error (task, FL_AUTH_ERROR, FL_AUTH_ERROR_INTERNAL, "Refresh failed");
      return;
    }

  g_task_return_pointer (task, g_steal_pointer (&tokens), (GDestroyNotify) fl_tokens_free);
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
/* Bearer tokens                                                       */

/* Builds the principal from verified claims, checking what the
 * signature cannot: issuer, token_use (which must match the key that
 * signed it), audience or client_id, subject. */
static FlPrincipal *
principal_from_claims (FlUserPool *self,
                       JsonObject *claims,
                       const char *expected_use,
                       GError    **error)
{
  g_autoptr (FlPrincipal)  principal = g_new0 (FlPrincipal, 1);
  g_autoptr (GStrvBuilder) groups = g_strv_builder_new ();
  const char              *iss, *use, *sub, *username, *email;
  gboolean                 iss_ok;
  JsonNode                *groups_node;
  gint64                   exp;

  iss = json_get_string (claims, "iss");
  g_mutex_lock (&self->state_lock);
  iss_ok = iss != NULL && strcmp (iss, self->issuer) == 0;
  g_mutex_unlock (&self->state_lock);
  if (!iss_ok)
    goto invalid;

  use = json_get_string (claims, "token_use");
  if (use == NULL || strcmp (use, expected_use) != 0)
    goto invalid;

  if (strcmp (use, "id") == 0)
    {
      if (g_strcmp0 (json_get_string (claims, "aud"), self->client_id) != 0)
        goto invalid;
      username = json_get_string (claims, "cognito:username");
      email = json_get_string (claims, "email");
    }
  else
    {
      if (g_strcmp0 (json_get_string (claims, "client_id"), self->client_id) != 0)
        goto invalid;
      username = json_get_string (claims, "username");
      email = NULL;
    }

  sub = json_get_string (claims, "sub");
  if (sub == NULL || *sub == '\0' || username == NULL || !json_get_int (claims, "exp", &exp))
    goto invalid;

  groups_node = json_object_get_member (claims, "cognito:groups");
  if (groups_node != NULL)
    {
      JsonArray *array;

      if (!JSON_NODE_HOLDS_ARRAY (groups_node))
        goto invalid;
      array = json_node_get_array (groups_node);
      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode *node = json_array_get_element (array, i);

          if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
            goto invalid;
          g_strv_builder_add (groups, json_node_get_string (node));
        }
    }

  principal->sub = g_strdup (sub);
  principal->username = g_strdup (username);
  principal->email = g_strdup (email);
  principal->groups = g_strv_builder_end (groups);
  principal->role = fl_role_from_groups ((const char *const *) principal->groups);
  principal->expires_at = exp;

  return g_steal_pointer (&principal);

invalid:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Invalid token.");
  return NULL;
}

/* Called with cache_lock held; takes principal. */
static void
cache_insert (FlUserPool  *self,
              const guint8 digest[32],
              FlPrincipal *principal,
              gint64       now)
{
  CachedToken *entry;

  /* Expired entries go at the latest a minute after their expiry (on the
   * next insert), or at once when the cache is full. */
  if (g_hash_table_size (self->token_cache) >= TOKEN_CACHE_MAX || now - self->cache_pruned_at >= 60)
    {
      GHashTableIter iter;
      gpointer       value;

      self->cache_pruned_at = now;
      g_hash_table_iter_init (&iter, self->token_cache);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        if (((CachedToken *) value)->principal->expires_at <= now)
          g_hash_table_iter_remove (&iter);

      /* still full of live tokens: drop any one */
      if (g_hash_table_size (self->token_cache) >= TOKEN_CACHE_MAX)
        {
          g_hash_table_iter_init (&iter, self->token_cache);
          if (g_hash_table_iter_next (&iter, NULL, NULL))
            g_hash_table_iter_remove (&iter);
        }
    }

  entry = g_new0 (CachedToken, 1);
  memcpy (entry->digest, digest, sizeof entry->digest);
  entry->principal = principal;
  g_hash_table_replace (self->token_cache, entry->digest, entry);
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
  guint8                  digest[32];
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
  sha256 (token, len, digest);

  g_mutex_lock (&self->cache_lock);
  {
    CachedToken *entry = g_hash_table_lookup (self->token_cache, digest);

    if (entry != NULL && now < entry->principal->expires_at)
      {
        FlPrincipal *copy = principal_copy (entry->principal);

        g_mutex_unlock (&self->cache_lock);
        return copy;
      }
    if (entry != NULL)
      g_hash_table_remove (self->token_cache, digest);
  }
  g_mutex_unlock (&self->cache_lock);

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
  cache_insert (self, digest, principal_copy (principal), now);
  g_mutex_unlock (&self->cache_lock);

  return g_steal_pointer (&principal);
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
  g_hash_table_remove_all (self->token_cache);
  g_mutex_unlock (&self->cache_lock);
}

guint
_fl_user_pool_get_token_cache_size (FlUserPool *self)
{
  guint size;

  g_return_val_if_fail (FL_IS_USER_POOL (self), 0);

  g_mutex_lock (&self->cache_lock);
  size = g_hash_table_size (self->token_cache);
  g_mutex_unlock (&self->cache_lock);

  return size;
}
