/* fl-session.c: a signed-in (or cached, offline) session of a profile. */
#define G_LOG_DOMAIN "fl-session"

#include "config.h"

#include "fl-cognito-client.h"
#include "fl-session.h"

/* The silent refresh runs this long before the tokens expire. */
#define REFRESH_AHEAD_S     (5 * 60)
/* After a network failure, the refresh is retried with backoff. */
#define RETRY_MIN_S         5
#define RETRY_MAX_S         (5 * 60)
/* A 401 this soon after a refresh was for a request with the old
 * tokens: no new refresh for it. */
#define FRESH_S             10

struct _FlSession
{
  GObject          parent_instance;

  FlProfile       *profile;
  FlClient        *client;
  FlCognitoClient *cognito;
  FlTokenSet      *tokens;     /* NULL once signed out */
  char            *username;

  GCancellable    *cancellable;
  guint            refresh_source;
  gint64           refresh_due;
  guint            retry_s;
  gint64           refreshed_at; /* monotonic, s */
  GPtrArray       *refresh_waiters; /* GTask, while a refresh runs */

  guint            online : 1;
  guint            expired : 1;
  guint            signed_out : 1;
};

G_DEFINE_FINAL_TYPE (FlSession, fl_session, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_PROFILE,
  PROP_USERNAME,
  PROP_ONLINE,
  N_PROPS
};

enum {
  SIGNED_OUT,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint       signals[N_SIGNALS];

static void schedule_refresh (FlSession *self);
static void start_refresh    (FlSession *self);

/* ---- state ------------------------------------------------------------- */

static void
set_online (FlSession *self,
            gboolean   online)
{
  online = !!online;
  if (self->online == (guint) online)
    return;

  g_debug ("%s: %s", fl_profile_get_id (self->profile), online ? "online" : "offline");
  self->online = online;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ONLINE]);
}

static void
clear_refresh_timer (FlSession *self)
{
  g_clear_handle_id (&self->refresh_source, g_source_remove);
  self->refresh_due = 0;
}

static void
token_store_clear_cb (GObject      *object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!fl_token_store_clear_finish (result, &error) && error != NULL)
    g_debug ("Could not remove the tokens from the keyring: %s", error->message);
}

/* Drops the tokens and tells the console; once. */
static void
drop_tokens (FlSession *self,
             gboolean   expired)
{
  if (self->signed_out)
    return;

  self->signed_out = TRUE;
  self->expired = !!expired;
  clear_refresh_timer (self);
  g_clear_pointer (&self->tokens, fl_token_set_free);
  fl_client_sign_out (self->client);

  g_signal_emit (self, signals[SIGNED_OUT], 0);
}

static void
token_store_store_cb (GObject      *object,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr (GError) error = NULL;

  if (!fl_token_store_store_finish (result, &error))
    g_debug ("Could not keep the refreshed tokens in the keyring: %s", error->message);
}

static void
take_tokens (FlSession        *self,
             const FlTokenSet *tokens)
{
  FlTokenSet *copy = fl_token_set_copy (tokens);

  /* Cognito sends no new refresh token on refresh */
  if (copy->refresh_token == NULL && self->tokens != NULL)
    copy->refresh_token = g_strdup (self->tokens->refresh_token);
  if (copy->username == NULL)
    copy->username = g_strdup (self->username);

  g_clear_pointer (&self->tokens, fl_token_set_free);
  self->tokens = copy;

  /* The REST client gets no refresh token: the session refreshes through
   * Cognito, for a lab and the cloud alike. */
  fl_client_set_tokens (self->client, copy->id_token, copy->access_token, NULL, copy->expires_at);
}

/* ---- refresh ----------------------------------------------------------- */

static gboolean
refresh_timeout_cb (gpointer user_data)
{
  FlSession *self = user_data;

  self->refresh_source = 0;
  self->refresh_due = 0;
  start_refresh (self);

  return G_SOURCE_REMOVE;
}

static void
schedule_refresh_in (FlSession *self,
                     gint64     seconds)
{
  clear_refresh_timer (self);
  if (self->signed_out)
    return;

  seconds = MAX (seconds, 0);
  self->refresh_due = g_get_real_time () / G_USEC_PER_SEC + seconds;
  if (seconds == 0)
    self->refresh_source = g_idle_add (refresh_timeout_cb, self);
  else
    self->refresh_source = g_timeout_add_seconds ((guint) MIN (seconds, G_MAXUINT / 1000), refresh_timeout_cb, self);
}

static void
schedule_refresh (FlSession *self)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  if (self->tokens == NULL || self->tokens->expires_at <= 0)
    {
      clear_refresh_timer (self);
      return;
    }

  schedule_refresh_in (self, self->tokens->expires_at - REFRESH_AHEAD_S - now);
}

static void
finish_refresh (FlSession *self,
                GError    *error)
{
  g_autoptr (GPtrArray) waiters = g_steal_pointer (&self->refresh_waiters);

  for (guint i = 0; waiters != NULL && i < waiters->len; i++)
    {
      GTask *task = g_ptr_array_index (waiters, i);

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

static void
refresh_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (FlSession)       self = user_data;
  g_autoptr (GError)          error = NULL;
  g_autoptr (FlCognitoTokens) tokens = NULL;

  tokens = fl_cognito_client_refresh_finish (FL_COGNITO_CLIENT (object), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) || self->signed_out)
    {
      if (error == NULL)
        error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "Signed out");
      finish_refresh (self, error);
      return;
    }

  if (tokens != NULL)
    {
      g_autoptr (FlTokenSet) set = fl_token_set_new (tokens->id_token, tokens->access_token, tokens->refresh_token,
                                                     tokens->expires_at, tokens->username);

      g_debug ("%s: tokens refreshed", fl_profile_get_id (self->profile));
      take_tokens (self, set);
      self->retry_s = 0;
      self->refreshed_at = g_get_monotonic_time () / G_USEC_PER_SEC;
      set_online (self, TRUE);
      fl_token_store_store_async (fl_profile_get_id (self->profile), fl_profile_get_name (self->profile),
                                  self->tokens, NULL, token_store_store_cb, NULL);
      schedule_refresh (self);
      finish_refresh (self, NULL);
      return;
    }

  if (g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NETWORK)
      || g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_TLS)
      || g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_TOO_MANY_REQUESTS)
      || g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_PROTOCOL))
    {
      /* try again later; the cached tokens stay */
      if (!g_error_matches (error, FL_COGNITO_ERROR, FL_COGNITO_ERROR_TOO_MANY_REQUESTS))
        set_online (self, FALSE);
      self->retry_s = self->retry_s == 0 ? RETRY_MIN_S : MIN (self->retry_s * 2, RETRY_MAX_S);
      g_debug ("%s: refresh failed (%s); again in %u s", fl_profile_get_id (self->profile),
               error->message, self->retry_s);
      schedule_refresh_in (self, self->retry_s);
      finish_refresh (self, error);
      return;
    }

  /* The server refused the refresh token: the session is over. */
  g_debug ("%s: refresh refused (%s)", fl_profile_get_id (self->profile), error->message);
  set_online (self, TRUE);
  fl_token_store_clear_async (fl_profile_get_id (self->profile), NULL, token_store_clear_cb, NULL);
  finish_refresh (self, error);
  drop_tokens (self, TRUE);
}

static void
start_refresh (FlSession *self)
{
  if (self->signed_out)
    return;
  if (self->refresh_waiters != NULL)
    return; /* one runs */

  clear_refresh_timer (self);
  self->refresh_waiters = g_ptr_array_new_with_free_func (g_object_unref);

  if (self->tokens == NULL || self->tokens->refresh_token == NULL)
    {
      g_autoptr (GError) error = g_error_new_literal (FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED,
                                                      "No refresh token");
      finish_refresh (self, error);
      drop_tokens (self, TRUE);
      return;
    }

  fl_cognito_client_refresh_async (self->cognito, self->tokens->username, self->tokens->refresh_token,
                                   self->cancellable, refresh_cb, g_object_ref (self));
}

void
fl_session_refresh_async (FlSession           *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_SESSION (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_session_refresh_async);

  if (self->signed_out)
    {
      g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED, "Signed out");
      return;
    }

  start_refresh (self);
  if (self->refresh_waiters != NULL)
    g_ptr_array_add (self->refresh_waiters, g_steal_pointer (&task));
  else
    g_task_return_new_error (task, FL_COGNITO_ERROR, FL_COGNITO_ERROR_NOT_AUTHORIZED, "Signed out");
}

gboolean
fl_session_refresh_finish (FlSession     *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_session_refresh_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

gint64
fl_session_get_refresh_due (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), 0);
  return self->refresh_source != 0 ? self->refresh_due : 0;
}

/* ---- GObject ----------------------------------------------------------- */

static void
fl_session_dispose (GObject *object)
{
  FlSession *self = FL_SESSION (object);

  g_cancellable_cancel (self->cancellable);
  clear_refresh_timer (self);

  G_OBJECT_CLASS (fl_session_parent_class)->dispose (object);
}

static void
fl_session_finalize (GObject *object)
{
  FlSession *self = FL_SESSION (object);

  g_assert (self->refresh_waiters == NULL);

  g_clear_object (&self->profile);
  g_clear_object (&self->client);
  g_clear_object (&self->cognito);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->tokens, fl_token_set_free);
  g_clear_pointer (&self->username, g_free);

  G_OBJECT_CLASS (fl_session_parent_class)->finalize (object);
}

static void
fl_session_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  FlSession *self = FL_SESSION (object);

  switch (prop_id)
    {
    case PROP_PROFILE:
      g_value_set_object (value, self->profile);
      break;
    case PROP_USERNAME:
      g_value_set_string (value, self->username);
      break;
    case PROP_ONLINE:
      g_value_set_boolean (value, self->online);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_session_class_init (FlSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_session_dispose;
  object_class->finalize = fl_session_finalize;
  object_class->get_property = fl_session_get_property;

  properties[PROP_PROFILE] = g_param_spec_object ("profile", NULL, NULL, FL_TYPE_PROFILE,
                                                  G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_USERNAME] = g_param_spec_string ("username", NULL, NULL, NULL,
                                                   G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_ONLINE] = g_param_spec_boolean ("online", NULL, NULL, FALSE,
                                                  G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlSession::signed-out:
   *
   * The tokens are gone: the user signed out, or the server refused the
   * refresh (then fl_session_get_expired() is %TRUE).
   */
  signals[SIGNED_OUT] = g_signal_new ("signed-out", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                      0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
fl_session_init (FlSession *self)
{
  self->cancellable = g_cancellable_new ();
}

/**
 * fl_session_new:
 * @profile: a complete profile (fl_profile_is_complete())
 * @tokens: the tokens of the sign-in
 * @online: whether they came from the server just now
 *
 * Returns: (transfer full): a session
 */
FlSession *
fl_session_new (FlProfile        *profile,
                const FlTokenSet *tokens,
                gboolean          online)
{
  FlSession       *self;
  g_autofree char *endpoint = NULL;

  g_return_val_if_fail (FL_IS_PROFILE (profile), NULL);
  g_return_val_if_fail (tokens != NULL, NULL);

  self = g_object_new (FL_TYPE_SESSION, NULL);
  self->profile = g_object_ref (profile);
  self->username = g_strdup (tokens->username);
  self->online = !!online;

  self->client = fl_client_new (fl_profile_get_api_url (profile));
  endpoint = fl_profile_dup_cognito_endpoint (profile);
  self->cognito = fl_cognito_client_new (endpoint, fl_profile_get_user_pool_id (profile),
                                         fl_profile_get_client_id (profile), NULL);

  take_tokens (self, tokens);
  schedule_refresh (self);

  return self;
}

/* ---- accessors --------------------------------------------------------- */

FlProfile *
fl_session_get_profile (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), NULL);
  return self->profile;
}

FlClient *
fl_session_get_client (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), NULL);
  return self->client;
}

const char *
fl_session_get_username (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), NULL);
  return self->username;
}

const char *
fl_session_get_websocket_url (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), NULL);
  return fl_profile_get_websocket_url (self->profile);
}

char *
fl_session_dup_access_token (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), NULL);
  return self->tokens != NULL ? g_strdup (self->tokens->access_token) : NULL;
}

gboolean
fl_session_get_online (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), FALSE);
  return self->online;
}

gboolean
fl_session_get_expired (FlSession *self)
{
  g_return_val_if_fail (FL_IS_SESSION (self), FALSE);
  return self->expired;
}

/* ---- reports from the fleet views -------------------------------------- */

static gboolean
error_reached_server (const GError *error)
{
  if (error->domain == FL_CLIENT_ERROR)
    return error->code != FL_CLIENT_ERROR_NETWORK;
  if (error->domain == FL_COGNITO_ERROR)
    return error->code != FL_COGNITO_ERROR_NETWORK && error->code != FL_COGNITO_ERROR_TLS;
  /* transport errors: G_IO_ERROR, G_RESOLVER_ERROR, G_TLS_ERROR, ... */
  return FALSE;
}

void
fl_session_report_network_error (FlSession    *self,
                                 const GError *error)
{
  g_return_if_fail (FL_IS_SESSION (self));
  g_return_if_fail (error != NULL);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  set_online (self, error_reached_server (error));

  if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED)
      && (self->refreshed_at == 0 || g_get_monotonic_time () / G_USEC_PER_SEC - self->refreshed_at >= FRESH_S))
    start_refresh (self);
}

void
fl_session_report_success (FlSession *self)
{
  g_return_if_fail (FL_IS_SESSION (self));

  set_online (self, TRUE);

  /* back online after a refresh failed for the network: retry now if the
   * tokens are due */
  if (self->tokens != NULL && self->retry_s > 0 && self->refresh_waiters == NULL
      && self->tokens->expires_at - REFRESH_AHEAD_S <= g_get_real_time () / G_USEC_PER_SEC)
    schedule_refresh_in (self, 0);
}

/* ---- sign out ---------------------------------------------------------- */

static void
sign_out_clear_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  FlSession         *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;

  fl_token_store_clear_finish (result, &error);
  drop_tokens (self, FALSE);

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

static void
global_sign_out_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr (GTask)  task = user_data;
  FlSession         *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;

  /* best effort: offline, the keyring is cleared all the same */
  if (!fl_cognito_client_global_sign_out_finish (FL_COGNITO_CLIENT (object), result, &error))
    g_debug ("GlobalSignOut failed: %s", error->message);

  fl_token_store_clear_async (fl_profile_get_id (self->profile), NULL, sign_out_clear_cb, g_steal_pointer (&task));
}

void
fl_session_sign_out_async (FlSession           *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_SESSION (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_session_sign_out_async);

  clear_refresh_timer (self);

  if (self->tokens != NULL && self->tokens->access_token != NULL)
    fl_cognito_client_global_sign_out_async (self->cognito, self->tokens->access_token, NULL,
                                             global_sign_out_cb, g_steal_pointer (&task));
  else
    fl_token_store_clear_async (fl_profile_get_id (self->profile), NULL, sign_out_clear_cb, g_steal_pointer (&task));
}

gboolean
fl_session_sign_out_finish (FlSession     *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_session_sign_out_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
