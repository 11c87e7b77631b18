/* fl-trusted-issuer.c: verifies the tokens of an Amazon Cognito user pool
 * that lives elsewhere, with the pool's published keys.
 *
 * The checks are those AWS documents for Cognito tokens ("Verifying a JSON
 * Web Token"): the JWT's shape, alg RS256, a kid in the pool's JWKS, the
 * signature, exp in the future, iss, then token_use with client_id (access
 * tokens) or aud (ID tokens).  fl_jwt_verify does the first ones.
 *
 * Keys come from a file or a URL.  A fetch reads at most MAX_JWKS_SIZE
 * bytes and takes at most FETCH_TIMEOUT_MS; a bad or failed fetch keeps
 * the keys there were.  Automatic fetches (hourly, and for unknown kids)
 * hold the issuer only weakly, so dropping it cancels them.
 *
 * Threads: fetches run on the main context that was the thread default
 * when the issuer was made.  authenticate runs on the caller's thread and
 * touches only memory, behind lock.
 */
#define G_LOG_DOMAIN "fl-trusted-issuer"

#include "config.h"

#include <string.h>

#include <libsoup/soup.h>

#include "fl-auth-private.h"
#include "fl-jwt.h"
#include "fl-token-cache.h"
#include "fl-trusted-issuer-private.h"
#include "fl-trusted-issuer.h"

/* Cognito's tokens are 1-2 KiB; anything far larger is not one. */
#define MAX_TOKEN_LEN 16384
#define MAX_JSON_DEPTH 32
/* Cognito's JWKS is about 1 KiB (two keys) */
#define MAX_JWKS_SIZE (128 * 1024)
#define MAX_CLIENT_ID_LEN 128
#define MAX_POOL_ID_LEN 55

#define FETCH_TIMEOUT_S 10
#define REFRESH_INTERVAL_MS (60 * 60 * 1000)
/* A kid we do not know makes us refetch the keys at most this often */
#define REFETCH_MIN_INTERVAL_US (60 * G_USEC_PER_SEC)

/* Verified-token cache */
#define TOKEN_CACHE_MAX 4096

struct _FlTrustedIssuer
{
  GObject parent_instance;

  char  *issuer;
  char  *client_id;
  char  *jwks;      /* the path or URL, as given (or derived) */
  GFile *jwks_file; /* for a file */
  GUri  *jwks_uri;  /* for a URL */

  GMainContext *context;     /* where fetches run */
  SoupSession  *session;     /* for a URL */
  GCancellable *cancellable; /* cancelled in dispose */
  GSource      *refresh_source;
  guint         fetch_timeout_ms;

  FlTrustedIssuerClockFunc clock;
  gpointer                 clock_data;

  GMutex        lock; /* guards everything below */
  FlJwtKeySet  *keys;
  char         *keys_json;       /* the keys as a JWKS, to see a change */
  guint         keys_generation; /* bumped when the keys change */
  FlTokenCache *token_cache;
  guint         n_fetches;       /* running */
  gboolean      refetch_pending; /* scheduled, not started yet */
  gboolean      refetched;       /* refetched_at is set */
  gint64        refetched_at;    /* µs: the last refetch for an unknown kid */
};

G_DEFINE_FINAL_TYPE (FlTrustedIssuer, fl_trusted_issuer, G_TYPE_OBJECT)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static gint64
issuer_now_us (FlTrustedIssuer *self)
{
  return self->clock != NULL ? self->clock (self->clock_data) : g_get_real_time ();
}

/* Rejects JSON nested deeper than max_depth before a parser sees it. */
static gboolean
json_nesting_ok (const char *data,
                 gsize       len)
{
  guint    depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      char c = data[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }

      if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > MAX_JSON_DEPTH)
            return FALSE;
        }
      else if (c == '}' || c == ']')
        {
          if (depth == 0)
            return FALSE;
          depth--;
        }
    }

  return TRUE;
}

/* Parses bounded, UTF-8, shallow JSON; NULL if it is not that. */
static JsonNode *
parse_json (const char *data,
            gsize       len,
            GError    **error)
{
  g_autoptr (JsonParser) parser = NULL;

  if (!g_utf8_validate (data, len, NULL) || !json_nesting_ok (data, len))
    {
      g_set_error (error, JSON_PARSER_ERROR, JSON_PARSER_ERROR_INVALID_DATA,
                   "Not UTF-8 JSON nested at most %u deep", MAX_JSON_DEPTH);
      return NULL;
    }

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) len, error))
    return NULL;

  return json_parser_steal_root (parser);
}

/* The unverified payload of a compact JWS, or NULL if token is not one.
 * Only ever used to route or to refuse early; never to accept. */
static JsonObject *
peek_payload (const char *token,
              gsize       len)
{
  g_autoptr (JsonNode) root = NULL;
  g_autofree char     *part = NULL;
  g_autofree guint8   *raw = NULL;
  const char          *dot1, *dot2;
  gsize                raw_len = 0;

  dot1 = memchr (token, '.', len);
  if (dot1 == NULL)
    return NULL;
  dot2 = memchr (dot1 + 1, '.', len - (gsize) (dot1 + 1 - token));
  if (dot2 == NULL || dot2 == dot1 + 1 || memchr (dot2 + 1, '.', len - (gsize) (dot2 + 1 - token)) != NULL)
    return NULL;

  part = g_strndup (dot1 + 1, dot2 - (dot1 + 1));
  raw = fl_base64url_decode (part, &raw_len);
  if (raw == NULL)
    return NULL;

  root = parse_json ((const char *) raw, raw_len, NULL);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;

  return json_node_dup_object (root);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */

/* https://cognito-idp.<region>.amazonaws.com[.cn]/<region>_<id>, the
 * "iss" of every token of the pool, byte for byte. */
static gboolean
check_issuer (const char *issuer,
              GError    **error)
{
  static const char prefix[] = "https://cognito-idp.";
  const char       *region, *pool, *p;
  gsize             region_len;
  gsize             id_len = 0;

  if (issuer == NULL || !g_str_has_prefix (issuer, prefix))
    goto bad;

  region = issuer + strlen (prefix);
  for (p = region; g_ascii_islower (*p) || g_ascii_isdigit (*p) || *p == '-'; p++)
    ;
  region_len = p - region;
  if (region_len == 0 || region_len > 32 || !g_ascii_islower (region[0]))
    goto bad;

  if (g_str_has_prefix (p, ".amazonaws.com/"))
    p += strlen (".amazonaws.com/");
  else if (g_str_has_prefix (p, ".amazonaws.com.cn/"))
    p += strlen (".amazonaws.com.cn/");
  else
    goto bad;

  /* A pool id starts with its region */
  pool = p;
  if (strncmp (pool, region, region_len) != 0 || pool[region_len] != '_')
    goto bad;
  for (p = pool + region_len + 1; g_ascii_isalnum (*p); p++)
    id_len++;
  if (id_len == 0 || *p != '\0' || (gsize) (p - pool) > MAX_POOL_ID_LEN)
    goto bad;

  return TRUE;

bad:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
               "“%s” is not a Cognito issuer: https://cognito-idp.<region>.amazonaws.com/<user pool id>, "
               "exactly as in the pool's tokens (no trailing slash)",
               issuer != NULL ? issuer : "");
  return FALSE;
}

/* Cognito's app client ids: [\w+]{1,128} */
static gboolean
check_client_id (const char *client_id,
                 GError    **error)
{
  gsize len = client_id != NULL ? strlen (client_id) : 0;

  if (len == 0 || len > MAX_CLIENT_ID_LEN)
    goto bad;

  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (client_id[i]) && client_id[i] != '_' && client_id[i] != '+')
      goto bad;

  return TRUE;

bad:
  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
               "An app client id is 1 to %d letters, digits, “_” or “+”", MAX_CLIENT_ID_LEN);
  return FALSE;
}

static gboolean
host_is_loopback (const char *host)
{
  g_autoptr (GInetAddress) address = NULL;

  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;

  address = g_inet_address_new_from_string (host);
  return address != NULL && g_inet_address_get_is_loopback (address);
}

static GUri *
check_jwks_url (const char *url,
                GError    **error)
{
  g_autoptr (GUri)   uri = NULL;
  g_autoptr (GError) local_error = NULL;
  const char        *scheme;
  const char        *host;

  uri = g_uri_parse (url, SOUP_HTTP_URI_FLAGS, &local_error);
  if (uri == NULL)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "“%s” is not a URL: %s", url, local_error->message);
      return NULL;
    }

  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if (host == NULL || *host == '\0' || g_uri_get_userinfo (uri) != NULL)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "The JWKS URL “%s” needs a host and no user name or password", url);
      return NULL;
    }

  if (g_strcmp0 (scheme, "https") == 0)
    return g_steal_pointer (&uri);

  if (g_strcmp0 (scheme, "http") == 0)
    {
      if (host_is_loopback (host))
        return g_steal_pointer (&uri);

      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "The JWKS URL “%s” must be https:// (http:// is for loopback addresses only)", url);
      return NULL;
    }

  g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
               "The JWKS “%s” must be a file or an https:// URL", url);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* A fixed-size buffer: a longer body fails with G_IO_ERROR_NO_SPACE. */
static GOutputStream *
jwks_buffer_new (void)
{
  return g_memory_output_stream_new (g_malloc (MAX_JWKS_SIZE), MAX_JWKS_SIZE, NULL, g_free);
}

static void
map_buffer_error (GError **error)
{
  if (error != NULL && g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
    {
      g_clear_error (error);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                   "The JWKS is larger than %u KiB", MAX_JWKS_SIZE / 1024);
    }
}

/* Parses a JWKS document; it must hold at least one RS256 key.  Sets
 * *keys_json to the keys' canonical JWKS. */
static FlJwtKeySet *
key_set_from_jwks (GBytes  *bytes,
                   char   **keys_json,
                   GError **error)
{
  g_autoptr (FlJwtKeySet)   keys = NULL;
  g_autoptr (JsonNode)      root = NULL;
  g_autoptr (JsonNode)      canonical = NULL;
  g_autoptr (JsonGenerator) gen = NULL;
  g_autoptr (GError)        local_error = NULL;
  gsize                     len = 0;
  const char               *data = g_bytes_get_data (bytes, &len);
  JsonArray                *array;

  root = parse_json (data != NULL ? data : "", len, &local_error);
  if (root == NULL)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "Not a JWKS: %s", local_error->message);
      return NULL;
    }

  keys = fl_jwt_key_set_new ();
  if (!fl_jwt_key_set_add_jwks (keys, root, error))
    return NULL;

  canonical = fl_jwt_key_set_to_jwks (keys);
  array = json_object_get_array_member (json_node_get_object (canonical), "keys");
  if (json_array_get_length (array) == 0)
    {
      g_set_error (error, FL_JWT_ERROR, FL_JWT_ERROR_KEY, "The JWKS has no RS256 signing key");
      return NULL;
    }

  gen = json_generator_new ();
  json_generator_set_root (gen, canonical);
  *keys_json = json_generator_to_data (gen, NULL);

  return g_steal_pointer (&keys);
}

static FlJwtKeySet *
load_file_sync (GFile   *file,
                char   **keys_json,
                GError **error)
{
  g_autoptr (GFileInputStream) in = NULL;
  g_autoptr (GOutputStream)    buffer = NULL;
  g_autoptr (GBytes)           bytes = NULL;

  in = g_file_read (file, NULL, error);
  if (in == NULL)
    return NULL;

  buffer = jwks_buffer_new ();
  if (g_output_stream_splice (buffer, G_INPUT_STREAM (in),
                              G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                              NULL, error)
      < 0)
    {
      map_buffer_error (error);
      return NULL;
    }

  bytes = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (buffer));
  return key_set_from_jwks (bytes, keys_json, error);
}

/* Takes keys_json. */
static void
issuer_set_keys (FlTrustedIssuer *self,
                 FlJwtKeySet     *keys,
                 char            *keys_json)
{
  gboolean changed = FALSE;

  g_mutex_lock (&self->lock);
  if (g_strcmp0 (self->keys_json, keys_json) != 0)
    {
      fl_jwt_key_set_unref (self->keys);
      self->keys = fl_jwt_key_set_ref (keys);
      g_free (self->keys_json);
      self->keys_json = g_steal_pointer (&keys_json);
      self->keys_generation++;
      /* a key may have been withdrawn: its tokens must go */
      fl_token_cache_clear (self->token_cache);
      changed = TRUE;
    }
  g_mutex_unlock (&self->lock);

  g_free (keys_json);
  g_debug ("Keys of %s %s", self->issuer, changed ? "replaced" : "unchanged");
}

/* ------------------------------------------------------------------ */
/* Fetching                                                            */

typedef struct
{
  GWeakRef       issuer;      /* automatic fetches hold the issuer weakly */
  GTask         *task;        /* load_async: holds it strongly; else NULL */
  char          *source;      /* the path or URL, for messages */
  GCancellable  *cancellable; /* this fetch's own */
  GCancellable  *parent;      /* cancels it, if set */
  gulong         parent_handler;
  GSource       *deadline;
  guint          timeout_ms;
  gboolean       timed_out;
  gboolean       warn; /* no one hears of a failure but the log */
  SoupMessage   *msg;
  GOutputStream *buffer;
} Fetch;

static void
fetch_free (Fetch *fetch)
{
  if (fetch->parent_handler != 0)
    g_cancellable_disconnect (fetch->parent, fetch->parent_handler);
  g_clear_object (&fetch->parent);
  if (fetch->deadline != NULL)
    g_source_destroy (fetch->deadline);
  g_clear_pointer (&fetch->deadline, g_source_unref);
  g_weak_ref_clear (&fetch->issuer);
  g_clear_object (&fetch->task);
  g_clear_pointer (&fetch->source, g_free);
  g_clear_object (&fetch->cancellable);
  g_clear_object (&fetch->msg);
  g_clear_object (&fetch->buffer);
  g_free (fetch);
}

static void
fetch_parent_cancelled_cb (GCancellable *parent,
                           gpointer      user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
}

static gboolean
fetch_deadline_cb (gpointer user_data)
{
  Fetch *fetch = user_data;

  fetch->timed_out = TRUE;
  g_cancellable_cancel (fetch->cancellable);

  return G_SOURCE_REMOVE;
}

/* Ends a fetch: applies the keys or reports the error (takes error). */
static void
fetch_complete (Fetch  *fetch,
                GBytes *body,
                GError *error)
{
  g_autoptr (FlTrustedIssuer) self = NULL;
  g_autoptr (GError)          local_error = error;
  g_autoptr (FlJwtKeySet)     keys = NULL;
  g_autofree char            *keys_json = NULL;
  gboolean                    cancelled;

  if (fetch->task != NULL)
    self = g_object_ref (g_task_get_source_object (fetch->task));
  else
    self = g_weak_ref_get (&fetch->issuer);

  if (local_error != NULL && fetch->timed_out && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (&local_error);
      g_set_error (&local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "No complete answer within %u ms", fetch->timeout_ms);
    }
  cancelled = g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  if (self != NULL && local_error == NULL)
    {
      keys = key_set_from_jwks (body, &keys_json, &local_error);
      if (keys != NULL)
        issuer_set_keys (self, keys, g_steal_pointer (&keys_json));
    }

  if (local_error != NULL)
    g_prefix_error (&local_error, "Could not load the JWKS from %s: ", fetch->source);

  if (self != NULL)
    {
      g_mutex_lock (&self->lock);
      self->n_fetches--;
      g_mutex_unlock (&self->lock);
    }

  if (local_error != NULL && self != NULL && !cancelled && fetch->warn)
    g_warning ("Keys of %s not refreshed: %s", self->issuer, local_error->message);

  if (fetch->task != NULL)
    {
      if (local_error != NULL)
        g_task_return_error (fetch->task, g_steal_pointer (&local_error));
      else
        g_task_return_boolean (fetch->task, TRUE);
    }

  fetch_free (fetch);
}

static void
fetch_splice_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Fetch             *fetch = user_data;
  g_autoptr (GBytes) bytes = NULL;
  GError            *error = NULL;

  if (g_output_stream_splice_finish (G_OUTPUT_STREAM (object), result, &error) < 0)
    {
      map_buffer_error (&error);
      fetch_complete (fetch, NULL, error);
      return;
    }

  bytes = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (fetch->buffer));
  fetch_complete (fetch, bytes, NULL);
}

static void
fetch_read_body (Fetch        *fetch,
                 GInputStream *stream)
{
  g_output_stream_splice_async (fetch->buffer, stream,
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, fetch->cancellable, fetch_splice_cb, fetch);
}

static void
fetch_send_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Fetch                   *fetch = user_data;
  g_autoptr (GInputStream) stream = NULL;
  GError                  *error = NULL;
  guint                    status;

  stream = soup_session_send_finish (SOUP_SESSION (object), result, &error);
  if (stream == NULL)
    {
      fetch_complete (fetch, NULL, error);
      return;
    }

  status = soup_message_get_status (fetch->msg);
  if (status != SOUP_STATUS_OK)
    {
      const char *phrase = soup_status_get_phrase (status);

      error = g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED, "HTTP %u%s%s", status,
                           phrase != NULL ? " " : "", phrase != NULL ? phrase : "");
      fetch_complete (fetch, NULL, error);
      return;
    }

  fetch_read_body (fetch, stream);
}

static void
fetch_file_read_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  Fetch                       *fetch = user_data;
  g_autoptr (GFileInputStream) stream = NULL;
  GError                      *error = NULL;

  stream = g_file_read_finish (G_FILE (object), result, &error);
  if (stream == NULL)
    {
      fetch_complete (fetch, NULL, error);
      return;
    }

  fetch_read_body (fetch, G_INPUT_STREAM (stream));
}

/* Reads the JWKS again, for task (load_async) or, with task NULL, for the
 * issuer itself.  With warn, a failure is logged. */
static void
fetch_start (FlTrustedIssuer *self,
             GTask           *task,
             gboolean         warn)
{
  Fetch        *fetch = g_new0 (Fetch, 1);
  GCancellable *parent = task != NULL ? g_task_get_cancellable (task) : self->cancellable;

  g_weak_ref_init (&fetch->issuer, self);
  fetch->task = task != NULL ? g_object_ref (task) : NULL;
  fetch->source = g_strdup (self->jwks);
  fetch->warn = warn;
  fetch->cancellable = g_cancellable_new ();
  fetch->buffer = jwks_buffer_new ();

  if (parent != NULL)
    {
      fetch->parent = g_object_ref (parent);
      fetch->parent_handler = g_cancellable_connect (parent, G_CALLBACK (fetch_parent_cancelled_cb),
                                                     g_object_ref (fetch->cancellable), g_object_unref);
    }

  fetch->timeout_ms = self->fetch_timeout_ms;
  fetch->deadline = g_timeout_source_new (fetch->timeout_ms);
  g_source_set_callback (fetch->deadline, fetch_deadline_cb, fetch, NULL);
  g_source_set_static_name (fetch->deadline, "[fl-trusted-issuer] fetch deadline");
  g_source_attach (fetch->deadline, self->context);

  g_mutex_lock (&self->lock);
  self->n_fetches++;
  g_mutex_unlock (&self->lock);

  g_debug ("Loading the keys of %s from %s", self->issuer, self->jwks);

  if (self->jwks_uri != NULL)
    {
      fetch->msg = soup_message_new_from_uri (SOUP_METHOD_GET, self->jwks_uri);
      soup_message_add_flags (fetch->msg, SOUP_MESSAGE_NO_REDIRECT);
      soup_message_headers_replace (soup_message_get_request_headers (fetch->msg), "Accept", "application/json");
      soup_session_send_async (self->session, fetch->msg, G_PRIORITY_DEFAULT, fetch->cancellable,
                               fetch_send_cb, fetch);
    }
  else
    {
      g_file_read_async (self->jwks_file, G_PRIORITY_DEFAULT, fetch->cancellable, fetch_file_read_cb, fetch);
    }
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static gboolean
refetch_cb (gpointer data)
{
  g_autoptr (FlTrustedIssuer) self = g_weak_ref_get (data);

  if (self != NULL)
    {
      g_mutex_lock (&self->lock);
      self->refetch_pending = FALSE;
      g_mutex_unlock (&self->lock);
      fetch_start (self, NULL, TRUE);
    }

  return G_SOURCE_REMOVE;
}

/* A token names a kid we do not know: the pool may have new keys.  At
 * most one such refetch a minute, and none while a fetch runs, so a flood
 * of made-up kids cannot make us hammer the JWKS URL. */
static void
maybe_refetch (FlTrustedIssuer *self,
               gint64           now_us)
{
  gboolean go = FALSE;

  g_mutex_lock (&self->lock);
  if (self->n_fetches == 0 && !self->refetch_pending && (!self->refetched || now_us - self->refetched_at >= REFETCH_MIN_INTERVAL_US || now_us < self->refetched_at))
    {
      self->refetched = TRUE;
      self->refetched_at = now_us;
      self->refetch_pending = TRUE;
      go = TRUE;
    }
  g_mutex_unlock (&self->lock);

  if (go)
    {
      GWeakRef *ref = g_new0 (GWeakRef, 1);

      g_debug ("A token of %s names an unknown key: refetching the keys", self->issuer);
      g_weak_ref_init (ref, self);
      g_main_context_invoke_full (self->context, G_PRIORITY_DEFAULT, refetch_cb, ref, weak_ref_free);
    }
}

/* The periodic reload; its source goes in dispose. */
static gboolean
refresh_cb (gpointer user_data)
{
  FlTrustedIssuer *self = user_data;
  gboolean         busy;

  g_mutex_lock (&self->lock);
  busy = self->n_fetches > 0 || self->refetch_pending;
  g_mutex_unlock (&self->lock);

  if (!busy)
    fetch_start (self, NULL, TRUE);

  return G_SOURCE_CONTINUE;
}

static void
issuer_arm_refresh (FlTrustedIssuer *self,
                    guint            interval_ms)
{
  if (self->refresh_source != NULL)
    g_source_destroy (self->refresh_source);
  g_clear_pointer (&self->refresh_source, g_source_unref);

  if (interval_ms % 1000 == 0)
    self->refresh_source = g_timeout_source_new_seconds (interval_ms / 1000);
  else
    self->refresh_source = g_timeout_source_new (interval_ms);
  g_source_set_callback (self->refresh_source, refresh_cb, self, NULL);
  g_source_set_static_name (self->refresh_source, "[fl-trusted-issuer] refresh");
  g_source_attach (self->refresh_source, self->context);
}

/* ------------------------------------------------------------------ */
/* GObject                                                             */

static void
fl_trusted_issuer_dispose (GObject *object)
{
  FlTrustedIssuer *self = FL_TRUSTED_ISSUER (object);

  g_cancellable_cancel (self->cancellable);
  if (self->refresh_source != NULL)
    g_source_destroy (self->refresh_source);
  g_clear_pointer (&self->refresh_source, g_source_unref);
  if (self->session != NULL)
    soup_session_abort (self->session);
  g_clear_object (&self->session);

  G_OBJECT_CLASS (fl_trusted_issuer_parent_class)->dispose (object);
}

static void
fl_trusted_issuer_finalize (GObject *object)
{
  FlTrustedIssuer *self = FL_TRUSTED_ISSUER (object);

  g_clear_pointer (&self->issuer, g_free);
  g_clear_pointer (&self->client_id, g_free);
  g_clear_pointer (&self->jwks, g_free);
  g_clear_object (&self->jwks_file);
  g_clear_pointer (&self->jwks_uri, g_uri_unref);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->keys, fl_jwt_key_set_unref);
  g_clear_pointer (&self->keys_json, g_free);
  g_clear_pointer (&self->token_cache, fl_token_cache_free);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (fl_trusted_issuer_parent_class)->finalize (object);
}

static void
fl_trusted_issuer_class_init (FlTrustedIssuerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_trusted_issuer_dispose;
  object_class->finalize = fl_trusted_issuer_finalize;
}

static void
fl_trusted_issuer_init (FlTrustedIssuer *self)
{
  g_mutex_init (&self->lock);
  self->context = g_main_context_ref_thread_default ();
  self->cancellable = g_cancellable_new ();
  self->fetch_timeout_ms = FETCH_TIMEOUT_S * 1000;
  self->keys = fl_jwt_key_set_new ();
  self->token_cache = fl_token_cache_new (TOKEN_CACHE_MAX);
}

/**
 * fl_trusted_issuer_new:
 * @issuer: https://cognito-idp.<region>.amazonaws.com/<user pool id>
 * @client_id: the app client whose tokens are accepted
 * @jwks: (nullable): a file path or URL; NULL for the pool's own
 *   <issuer>/.well-known/jwks.json
 *
 * Returns: (transfer full): the issuer, or NULL with @error set
 */
FlTrustedIssuer *
fl_trusted_issuer_new (const char *issuer,
                       const char *client_id,
                       const char *jwks,
                       GError    **error)
{
  g_autoptr (FlTrustedIssuer) self = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_issuer (issuer, error) || !check_client_id (client_id, error))
    return NULL;

  if (jwks != NULL && *jwks == '\0')
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_INVALID_PARAMETER,
                   "The JWKS must be a file or an https:// URL");
      return NULL;
    }

  self = g_object_new (FL_TYPE_TRUSTED_ISSUER, NULL);
  self->issuer = g_strdup (issuer);
  self->client_id = g_strdup (client_id);
  self->jwks = jwks != NULL ? g_strdup (jwks) : g_strconcat (issuer, "/.well-known/jwks.json", NULL);

  if (strstr (self->jwks, "://") != NULL)
    {
      self->jwks_uri = check_jwks_url (self->jwks, error);
      if (self->jwks_uri == NULL)
        return NULL;
      self->session = soup_session_new_with_options ("timeout", FETCH_TIMEOUT_S,
                                                     "user-agent", "fieldline-relay/" PACKAGE_VERSION " ",
                                                     NULL);
    }
  else
    {
      g_autoptr (FlJwtKeySet) keys = NULL;
      g_autoptr (GError)      local_error = NULL;
      char                   *keys_json = NULL;

      self->jwks_file = g_file_new_for_path (self->jwks);
      keys = load_file_sync (self->jwks_file, &keys_json, &local_error);
      if (keys == NULL)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                      "Could not load the JWKS from %s: ", self->jwks);
          return NULL;
        }
      issuer_set_keys (self, keys, keys_json);
    }

  issuer_arm_refresh (self, REFRESH_INTERVAL_MS);

  return g_steal_pointer (&self);
}

const char *
fl_trusted_issuer_get_issuer (FlTrustedIssuer *self)
{
  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), NULL);

  return self->issuer;
}

const char *
fl_trusted_issuer_get_client_id (FlTrustedIssuer *self)
{
  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), NULL);

  return self->client_id;
}

const char *
fl_trusted_issuer_get_jwks (FlTrustedIssuer *self)
{
  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), NULL);

  return self->jwks;
}

/**
 * fl_trusted_issuer_load_async:
 *
 * Reads the JWKS file again, or fetches the JWKS URL (at most 10 s), and
 * replaces the keys with it.  Call it on the thread the issuer was made
 * on.  Without a @callback, a failure is logged (g_warning).
 */
void
fl_trusted_issuer_load_async (FlTrustedIssuer    *self,
                              GCancellable       *cancellable,
                              GAsyncReadyCallback callback,
                              gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_TRUSTED_ISSUER (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_trusted_issuer_load_async);
  g_task_set_name (task, "fl_trusted_issuer_load_async");

  fetch_start (self, task, callback == NULL);
}

/**
 * fl_trusted_issuer_load_finish:
 *
 * Returns: TRUE if the keys were read (they may be the same as before)
 */
gboolean
fl_trusted_issuer_load_finish (FlTrustedIssuer *self,
                               GAsyncResult    *result,
                               GError         **error)
{
  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_trusted_issuer_load_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ------------------------------------------------------------------ */
/* Tokens                                                              */

/**
 * fl_trusted_issuer_claims_issuer:
 * @token: (nullable): a bearer token, from outside
 *
 * Returns: TRUE if @token's unverified "iss" is this issuer
 */
gboolean
fl_trusted_issuer_claims_issuer (FlTrustedIssuer *self,
                                 const char      *token)
{
  g_autoptr (JsonObject) payload = NULL;
  guint8                 digest[FL_TOKEN_CACHE_DIGEST_LEN];
  gboolean               cached;
  gsize                  len;

  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), FALSE);

  if (token == NULL)
    return FALSE;

  len = strnlen (token, MAX_TOKEN_LEN + 1);
  if (len == 0 || len > MAX_TOKEN_LEN)
    return FALSE;

  /* a token we verified is ours: skip the JSON */
  _fl_sha256 (token, len, digest);
  g_mutex_lock (&self->lock);
  cached = fl_token_cache_contains (self->token_cache, digest);
  g_mutex_unlock (&self->lock);
  if (cached)
    return TRUE;

  payload = peek_payload (token, len);
  return payload != NULL && g_strcmp0 (_fl_json_get_string (payload, "iss"), self->issuer) == 0;
}

static void
set_jwt_error (GError      **error,
               const GError *jwt_error)
{
  const char *why;

  switch (jwt_error->domain == FL_JWT_ERROR ? jwt_error->code : -1)
    {
    case FL_JWT_ERROR_MALFORMED:
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "Malformed token: %s.", jwt_error->message);
      return;
    case FL_JWT_ERROR_CLAIMS:
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "Invalid token: %s.", jwt_error->message);
      return;
    case FL_JWT_ERROR_ALGORITHM:
      why = "Token algorithm is not RS256.";
      break;
    case FL_JWT_ERROR_UNKNOWN_KEY:
      why = "Token was signed by an unknown key.";
      break;
    case FL_JWT_ERROR_SIGNATURE:
      why = "Token signature is invalid.";
      break;
    case FL_JWT_ERROR_EXPIRED:
      why = "Token has expired.";
      break;
    case FL_JWT_ERROR_NOT_YET_VALID:
      why = "Token is not valid yet.";
      break;
    default:
      why = "Invalid token.";
      break;
    }

  g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, why);
}

/* The claims the signature cannot vouch for, on verified claims: ours,
 * then the principal's own. */
static FlPrincipal *
principal_from_claims (FlTrustedIssuer *self,
                       JsonObject      *claims,
                       GError         **error)
{
  const char *use;

  if (g_strcmp0 (_fl_json_get_string (claims, "iss"), self->issuer) != 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "Token was not issued by %s.", self->issuer);
      return NULL;
    }

  use = _fl_json_get_string (claims, "token_use");
  if (g_strcmp0 (use, "access") == 0)
    {
      if (g_strcmp0 (_fl_json_get_string (claims, "client_id"), self->client_id) != 0)
        {
          g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                               "Access token was issued to another app client.");
          return NULL;
        }
    }
  else if (g_strcmp0 (use, "id") == 0)
    {
      if (g_strcmp0 (_fl_json_get_string (claims, "aud"), self->client_id) != 0)
        {
          g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                               "ID token audience is another app client.");
          return NULL;
        }
    }
  else
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                           "Token use is not \"access\" or \"id\".");
      return NULL;
    }

  return fl_principal_new_from_claims (claims, error);
}

/**
 * fl_trusted_issuer_authenticate:
 * @token: (nullable): the bearer token, from outside
 *
 * Returns: (transfer full): who @token speaks for, or NULL with
 *   FL_AUTH_ERROR_NOT_AUTHORIZED
 */
FlPrincipal *
fl_trusted_issuer_authenticate (FlTrustedIssuer *self,
                                const char      *token,
                                GError         **error)
{
  g_autoptr (GError)      local_error = NULL;
  g_autoptr (JsonObject)  payload = NULL;
  g_autoptr (JsonObject)  claims = NULL;
  g_autoptr (FlJwtKeySet) keys = NULL;
  g_autoptr (FlPrincipal) principal = NULL;
  guint8                  digest[FL_TOKEN_CACHE_DIGEST_LEN];
  gboolean                expired;
  guint                   generation;
  gint64                  now_us;
  gint64                  now;
  gsize                   len;

  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), NULL);

  if (token == NULL || *token == '\0')
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Missing token.");
      return NULL;
    }

  len = strnlen (token, MAX_TOKEN_LEN + 1);
  if (len > MAX_TOKEN_LEN)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Malformed token: it is too long.");
      return NULL;
    }

  now_us = issuer_now_us (self);
  now = now_us / G_USEC_PER_SEC;
  _fl_sha256 (token, len, digest);

  g_mutex_lock (&self->lock);
  principal = fl_token_cache_lookup (self->token_cache, digest, now, &expired);
  if (principal != NULL)
    {
      g_mutex_unlock (&self->lock);
      return g_steal_pointer (&principal);
    }
  if (expired)
    {
      g_mutex_unlock (&self->lock);
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED, "Token has expired.");
      return NULL;
    }
  keys = fl_jwt_key_set_ref (self->keys);
  generation = self->keys_generation;
  g_mutex_unlock (&self->lock);

  /* Refuse other issuers' tokens before any key work: they must not make
   * us refetch our keys. */
  payload = peek_payload (token, len);
  if (payload == NULL)
    {
      g_set_error_literal (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                           "Malformed token: not a JSON Web Token.");
      return NULL;
    }
  if (g_strcmp0 (_fl_json_get_string (payload, "iss"), self->issuer) != 0)
    {
      g_set_error (error, FL_AUTH_ERROR, FL_AUTH_ERROR_NOT_AUTHORIZED,
                   "Token was not issued by %s.", self->issuer);
      return NULL;
    }

  claims = fl_jwt_verify (keys, token, now, 0, &local_error);
  if (claims == NULL)
    {
      g_debug ("Token refused: %s", local_error->message);
      if (g_error_matches (local_error, FL_JWT_ERROR, FL_JWT_ERROR_UNKNOWN_KEY))
        maybe_refetch (self, now_us);
      set_jwt_error (error, local_error);
      return NULL;
    }

  principal = principal_from_claims (self, claims, error);
  if (principal == NULL)
    return NULL;

  g_mutex_lock (&self->lock);
  /* not if the keys changed meanwhile: its key may be gone */
  if (generation == self->keys_generation)
    fl_token_cache_insert (self->token_cache, digest, fl_principal_copy (principal), now);
  g_mutex_unlock (&self->lock);

  return g_steal_pointer (&principal);
}

/* ------------------------------------------------------------------ */
/* Private                                                             */

void
_fl_trusted_issuer_set_clock (FlTrustedIssuer         *self,
                              FlTrustedIssuerClockFunc clock,
                              gpointer                 user_data)
{
  g_return_if_fail (FL_IS_TRUSTED_ISSUER (self));

  self->clock = clock;
  self->clock_data = user_data;
}

void
_fl_trusted_issuer_set_refresh_interval (FlTrustedIssuer *self,
                                         guint            interval_ms)
{
  g_return_if_fail (FL_IS_TRUSTED_ISSUER (self));
  g_return_if_fail (interval_ms > 0);

  issuer_arm_refresh (self, interval_ms);
}

void
_fl_trusted_issuer_set_fetch_timeout (FlTrustedIssuer *self,
                                      guint            timeout_ms)
{
  g_return_if_fail (FL_IS_TRUSTED_ISSUER (self));
  g_return_if_fail (timeout_ms > 0);

  self->fetch_timeout_ms = timeout_ms;
}

gboolean
_fl_trusted_issuer_is_loading (FlTrustedIssuer *self)
{
  gboolean loading;

  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), FALSE);

  g_mutex_lock (&self->lock);
  loading = self->n_fetches > 0 || self->refetch_pending;
  g_mutex_unlock (&self->lock);

  return loading;
}

guint
_fl_trusted_issuer_get_token_cache_size (FlTrustedIssuer *self)
{
  guint size;

  g_return_val_if_fail (FL_IS_TRUSTED_ISSUER (self), 0);

  g_mutex_lock (&self->lock);
  size = fl_token_cache_get_size (self->token_cache);
  g_mutex_unlock (&self->lock);

  return size;
}
