/* fl-relay.c: the relay as one object: store, user pool, hub and the HTTP
 * + WebSocket server in front of them. */
#define G_LOG_DOMAIN "fl-relay"

#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>

#include "fl-relay-private.h"

G_DEFINE_FINAL_TYPE (FlRelay, fl_relay, G_TYPE_OBJECT)

#define TICK_MS              1000
#define SHUTDOWN_GRACE_SEC   10
#define LISTEN_BACKLOG       1024
#define TRIM_EVERY_TICKS     10

/* ---- requests answered later ------------------------------------------ */

/* A paused request counts as open until its reply has been written (or
 * its client has gone): the shutdown drain waits for those. */
static void
reply_done_cb (SoupServerMessage *msg,
               FlRelay           *relay)
{
  if (g_object_steal_data (G_OBJECT (msg), "fl-open") == NULL)
    return;

  g_assert (relay->open_requests > 0);
  relay->open_requests--;
}

FlRequest *
_fl_request_new (FlRelay           *relay,
                 SoupServerMessage *msg,
                 GHashTable        *query)
{
  FlRequest *request = g_new0 (FlRequest, 1);

  relay->open_requests++;
  g_object_set_data (G_OBJECT (msg), "fl-open", GINT_TO_POINTER (1));
  g_signal_connect_object (msg, "finished", G_CALLBACK (reply_done_cb), relay, 0);
  g_signal_connect_object (msg, "disconnected", G_CALLBACK (reply_done_cb), relay, 0);

  request->relay = g_object_ref (relay);
  request->msg = g_object_ref (msg);
  request->query = query ? g_hash_table_ref (query) : NULL;

  /* A status now keeps libsoup's WebSocket step away from this message
   * (it runs for paths like /events when no status is set); the real one
   * replaces it before the reply is written. */
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_pause (msg);

  return request;
}

static void
request_free (FlRequest *request)
{
  soup_server_message_unpause (request->msg);
  g_clear_object (&request->msg);
  g_clear_pointer (&request->query, g_hash_table_unref);
  g_clear_pointer (&request->device_id, g_free);
  g_clear_object (&request->relay);
  g_free (request);
}

/* Takes json. */
void
_fl_request_reply (FlRequest *request,
                   guint      status,
                   GString   *json)
{
  fl_http_reply_json (request->msg, status, json);
  request_free (request);
}

void
_fl_request_fail (FlRequest *request,
                  GError    *error)
{
  fl_http_reply_error (request->msg, error);
  request_free (request);
}

/* For a reply the caller has set on request->msg itself. */
void
_fl_request_finish (FlRequest *request)
{
  request_free (request);
}

/* ---- authorization ---------------------------------------------------- */

FlPrincipal *
_fl_relay_authorize (FlRelay           *self,
                     SoupServerMessage *msg,
                     GHashTable        *query,
                     FlRole             min_role,
                     GError           **error)
{
  g_autofree char *token = fl_http_dup_bearer_token (msg, query, query != NULL);
  g_autoptr (FlPrincipal) principal = NULL;
  g_autoptr (GError) local_error = NULL;

  if (token == NULL)
    {
      g_set_error_literal (error, FL_API_ERROR, FL_API_ERROR_UNAUTHORIZED,
                           "Sign in first: send “Authorization: Bearer <token>”");
      return NULL;
    }

  if (self->trusted != NULL && fl_trusted_issuer_claims_issuer (self->trusted, token))
    principal = fl_trusted_issuer_authenticate (self->trusted, token, &local_error);
  else
    principal = fl_user_pool_authenticate (self->pool, token, &local_error);
  if (principal == NULL)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_UNAUTHORIZED,
                   "The token is not valid: %s", local_error->message);
      return NULL;
    }

  if (principal->role < min_role)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_FORBIDDEN,
                   "This needs the %s role; %s is %s",
                   fl_role_to_string (min_role), principal->username, fl_role_to_string (principal->role));
      return NULL;
    }

  return g_steal_pointer (&principal);
}

/* ---- the server ------------------------------------------------------- */

static gboolean
is_websocket_upgrade (SoupServerMessage *msg)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);

  return soup_message_headers_header_contains (headers, "Upgrade", "websocket") &&
         soup_server_message_get_method (msg) == SOUP_METHOD_GET;
}

/* Bodies over the limit are refused from their headers, before libsoup
 * reads them. */
static void
early_handler_cb (SoupServer        *server,
                  SoupServerMessage *msg,
                  const char        *path,
                  GHashTable        *query,
                  gpointer           user_data)
{
  FlRelay *self = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  goffset length = soup_message_headers_get_content_length (headers);

  if (self->shutting_down)
    {
      g_autoptr (GError) error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_UNAVAILABLE,
                                                      "The relay is shutting down");
      soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection", "close");
      fl_http_reply_error (msg, error);
      return;
    }

  if (length > (goffset) self->max_body_size ||
      soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CHUNKED)
    {
      g_autoptr (GError) error = NULL;

      if (length > (goffset) self->max_body_size)
        error = g_error_new (FL_API_ERROR, FL_API_ERROR_TOO_LARGE,
                             "The request body is %" G_GOFFSET_FORMAT " bytes; the limit is %" G_GSIZE_FORMAT,
                             length, self->max_body_size);
      else
        error = g_error_new (FL_API_ERROR, FL_API_ERROR_LENGTH_REQUIRED,
                             "Send the body with a Content-Length (at most %" G_GSIZE_FORMAT " bytes), not chunked",
                             self->max_body_size);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection", "close");
      fl_http_reply_error (msg, error);
    }
}

static void
handler_cb (SoupServer        *server,
            SoupServerMessage *msg,
            const char        *path,
            GHashTable        *query,
            gpointer           user_data)
{
  FlRelay *self = user_data;
  g_autoptr (GError) error = NULL;

  fl_metrics_count_request (self->metrics);

  if (is_websocket_upgrade (msg) && (g_str_equal (path, "/events") || g_str_equal (path, "/device")))
    {
      /* Check credentials before the handshake is accepted.  /events:
       * leaving the status unset lets libsoup go on to its WebSocket
       * handler.  /device: the device session answers the handshake and
       * takes the connection from libsoup. */
      if (g_str_equal (path, "/events"))
        {
          FlPrincipal *principal = _fl_relay_authorize (self, msg, query, FL_ROLE_VIEWER, &error);

          if (principal == NULL)
            fl_http_reply_error (msg, error);
          else
            g_object_set_data_full (G_OBJECT (msg), "fl-principal", principal, (GDestroyNotify) fl_principal_free);
        }
      else
        {
          g_autofree char *user = NULL;
          g_autofree char *secret = NULL;
          FlDevice *device = NULL;

          if (!fl_http_get_basic_auth (msg, &user, &secret))
            error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_UNAUTHORIZED,
                                         "Devices authenticate with “Authorization: Basic base64(deviceId:deviceSecret)”");
          else
            device = fl_registry_authenticate (self->registry, user, secret, &error);

          if (device == NULL)
            {
              soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                            "WWW-Authenticate", "Basic realm=\"fieldline-devices\"");
              fl_http_reply_error (msg, error);
            }
          else
            _fl_device_session_accept (self, msg, device);
        }
      return;
    }

  _fl_relay_route (self, msg, path, query);

  /* Every plain request must leave with a status (or paused with the
   * placeholder one), or libsoup would try a WebSocket handshake. */
  g_assert (soup_server_message_get_status (msg) != 0);
}

static void
events_websocket_cb (SoupServer              *server,
                     SoupServerMessage       *msg,
                     const char              *path,
                     SoupWebsocketConnection *connection,
                     gpointer                 user_data)
{
  FlRelay *self = user_data;
  FlPrincipal *principal = g_object_steal_data (G_OBJECT (msg), "fl-principal");

  if (principal == NULL || self->shutting_down)
    {
      g_clear_pointer (&principal, fl_principal_free);
      soup_websocket_connection_close (connection, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "not authorized");
      return;
    }

  fl_hub_add_subscriber (self->hub, connection, principal);
}

/* ---- housekeeping ------------------------------------------------------ */

static gboolean
principal_revoked (const FlPrincipal *principal,
                   gpointer           user_data)
{
  return fl_user_pool_principal_revoked (FL_USER_POOL (user_data), principal);
}

static gboolean
tick_cb (gpointer user_data)
{
  FlRelay *self = user_data;
  g_autoptr (GPtrArray) expired = fl_registry_expire (self->registry, fl_now_ms ());

  for (guint i = 0; i < expired->len; i++)
    fl_hub_publish_device (self->hub, g_ptr_array_index (expired, i));
  fl_registry_flush (self->registry);
  /* GlobalSignOut, RevokeToken and disabled users end live streams too */
  fl_hub_close_signed_out (self->hub, principal_revoked, self->pool);

  /* Bursts leave free memory at the top of the heaps; give it back now
   * and then (a millisecond or two of work every ten seconds). */
  if (++self->ticks % TRIM_EVERY_TICKS == 0)
    malloc_trim (0);

  return G_SOURCE_CONTINUE;
}

/* ---- life cycle ------------------------------------------------------- */

static void
fl_relay_dispose (GObject *object)
{
  FlRelay *self = FL_RELAY (object);

  g_clear_handle_id (&self->tick_source, g_source_remove);
  if (self->server != NULL)
    soup_server_disconnect (self->server);
  g_clear_pointer (&self->device_sessions, g_ptr_array_unref);
  g_clear_pointer (&self->device_poller, _fl_device_poller_free);
  g_clear_object (&self->reaper);
  g_clear_object (&self->server);
  if (self->hub != NULL)
    fl_hub_close_all (self->hub);
  g_clear_object (&self->ingest);
  g_clear_object (&self->hub);
  if (self->registry != NULL)
    fl_registry_flush (self->registry);
  g_clear_object (&self->registry);
  if (self->store != NULL)
    fl_store_close (self->store);
  g_clear_object (&self->store);
  g_clear_object (&self->pool);
  g_clear_object (&self->mailer);
  g_clear_object (&self->trusted);

  G_OBJECT_CLASS (fl_relay_parent_class)->dispose (object);
}

static void
fl_relay_finalize (GObject *object)
{
  FlRelay *self = FL_RELAY (object);

  g_clear_pointer (&self->metrics, fl_metrics_free);
  g_clear_pointer (&self->url, g_free);
  g_clear_pointer (&self->data_dir, g_free);

  G_OBJECT_CLASS (fl_relay_parent_class)->finalize (object);
}

static void
fl_relay_class_init (FlRelayClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_relay_dispose;
  object_class->finalize = fl_relay_finalize;
}

static void
fl_relay_init (FlRelay *self)
{
  self->metrics = fl_metrics_new ();
  self->device_sessions = g_ptr_array_new_with_free_func (_fl_device_session_close);
  self->started_at = fl_now_ms ();
}

static GSocketAddress *
parse_listen_address (const char  *listen,
                      GError     **error)
{
  g_autofree char *host = NULL;
  const char *colon;
  guint64 port;

  if (listen[0] == '[')
    {
      const char *end = strchr (listen, ']');

      if (end == NULL || end[1] != ':')
        goto bad;
      host = g_strndup (listen + 1, end - listen - 1);
      colon = end + 1;
    }
  else
    {
      colon = strrchr (listen, ':');
      if (colon == NULL)
        goto bad;
      host = g_strndup (listen, colon - listen);
    }

  if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    goto bad;

  {
    g_autoptr (GInetAddress) address = g_inet_address_new_from_string (*host ? host : "127.0.0.1");

    if (address == NULL)
      goto bad;
    return g_inet_socket_address_new (address, port);
  }

bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "“%s” is not HOST:PORT with a numeric host (e.g. 127.0.0.1:8080 or [::1]:0)", listen);
  return NULL;
}

/* soup_server_listen() leaves GSocket's listen backlog of 10, so a fleet
 * reconnecting at once would see resets; make the socket ourselves. */
static gboolean
listen_on (SoupServer               *server,
           GSocketAddress           *address,
           SoupServerListenOptions   options,
           GError                  **error)
{
  g_autoptr (GSocket) socket = NULL;

  socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return FALSE;

  g_socket_set_listen_backlog (socket, LISTEN_BACKLOG);
  if (!g_socket_bind (socket, address, TRUE, error) ||
      !g_socket_listen (socket, error))
    return FALSE;

  return soup_server_listen_socket (server, socket, options, error);
}

FlRelay *
fl_relay_new (const FlRelayOptions *options,
              GError              **error)
{
  g_autoptr (FlRelay) self = g_object_new (FL_TYPE_RELAY, NULL);
  g_autoptr (GSocketAddress) address = NULL;
  g_autofree char *store_path = NULL;
  g_autofree char *issuer = NULL;
  SoupServerListenOptions listen_options = 0;
  GSList *uris;

  g_return_val_if_fail (options != NULL && options->data_dir != NULL, NULL);

  self->data_dir = g_strdup (options->data_dir);
  self->max_body_size = options->max_body_size ? options->max_body_size : FL_EVENT_DEFAULT_MAX_BODY_SIZE;
  self->max_event_size = options->max_event_size ? options->max_event_size : FL_EVENT_DEFAULT_MAX_EVENT_SIZE;

  if (g_mkdir_with_parents (options->data_dir, 0700) != 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Cannot create the data directory %s: %s", options->data_dir, g_strerror (saved_errno));
      return NULL;
    }

  address = parse_listen_address (options->listen ? options->listen : "127.0.0.1:8080", error);
  if (address == NULL)
    return NULL;

  store_path = g_build_filename (options->data_dir, "events.db", NULL);
  self->store = fl_store_open (store_path, error);
  if (self->store == NULL)
    return NULL;

  self->pool = fl_user_pool_open (options->data_dir, error);
  if (self->pool == NULL)
    return NULL;
  if (!fl_user_pool_set_lifetimes (self->pool,
                                   options->token_lifetime > 0 ? options->token_lifetime : 3600,
                                   options->refresh_lifetime > 0 ? options->refresh_lifetime : 30 * 24 * 3600,
                                   error))
    return NULL;
  fl_user_pool_set_auto_confirm (self->pool, options->auto_confirm);
  if (options->password_policy != NULL)
    {
      FlPasswordPolicy policy;

      if (!fl_password_policy_parse (options->password_policy, &policy, error))
        return NULL;
      fl_user_pool_set_password_policy (self->pool, &policy);
    }
  {
    g_autofree char *outbox = g_build_filename (options->data_dir, "outbox", NULL);

    self->mailer = fl_mailer_new (outbox, options->smtp_url, options->smtp_from, error);
    if (self->mailer == NULL)
      return NULL;
  }
  if (options->cognito_issuer != NULL)
    {
      if (options->cognito_client_id == NULL || options->cognito_jwks == NULL)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               "--cognito-issuer needs --cognito-client-id and --cognito-jwks");
          return NULL;
        }
      self->trusted = fl_trusted_issuer_new (options->cognito_issuer, options->cognito_client_id,
                                             options->cognito_jwks, error);
      if (self->trusted == NULL)
        return NULL;
      fl_trusted_issuer_load_async (self->trusted, NULL, NULL, NULL);
    }

  self->registry = fl_registry_new (self->store, error);
  if (self->registry == NULL)
    return NULL;

  self->hub = fl_hub_new (self->store, self->registry);
  if (options->max_subscriber_lag > 0)
    fl_hub_set_max_lag_bytes (self->hub, options->max_subscriber_lag);
  self->ingest = fl_ingest_new (self->store, self->registry, self->hub, self->metrics, self->max_event_size);

  self->server = soup_server_new ("server-header", "fieldline-relay/" PACKAGE_VERSION " ", NULL);
  self->reaper = fl_connection_reaper_new (self->server);

  self->device_poller = _fl_device_poller_new (self);

  if (options->tls_cert_file != NULL || options->tls_key_file != NULL)
    {
      g_autoptr (GTlsCertificate) certificate = NULL;

      if (options->tls_cert_file == NULL || options->tls_key_file == NULL)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               "TLS needs both a certificate and a key file");
          return NULL;
        }
      certificate = g_tls_certificate_new_from_files (options->tls_cert_file, options->tls_key_file, error);
      if (certificate == NULL)
        return NULL;
      soup_server_set_tls_certificate (self->server, certificate);
      listen_options |= SOUP_SERVER_LISTEN_HTTPS;
    }

  soup_server_add_early_handler (self->server, NULL, early_handler_cb, self, NULL);
  soup_server_add_handler (self->server, NULL, handler_cb, self, NULL);
  soup_server_add_handler (self->server, "/events", handler_cb, self, NULL);
  soup_server_add_handler (self->server, "/device", handler_cb, self, NULL);
  soup_server_add_websocket_handler (self->server, "/events", NULL, NULL, events_websocket_cb, self, NULL);

  if (!listen_on (self->server, address, listen_options, error))
    return NULL;

  uris = soup_server_get_uris (self->server);
  if (uris != NULL)
    {
      g_autofree char *text = g_uri_to_string (uris->data);
      gsize len = strlen (text);

      if (len > 0 && text[len - 1] == '/')
        text[len - 1] = '\0';
      self->url = g_steal_pointer (&text);
    }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  issuer = g_strdup_printf ("%s/%s", options->public_url != NULL ? options->public_url : self->url,
                            fl_user_pool_get_pool_id (self->pool));
  fl_user_pool_set_issuer (self->pool, issuer);

  self->tick_source = g_timeout_add (TICK_MS, tick_cb, self);

  return g_steal_pointer (&self);
}

const char *
fl_relay_get_url (FlRelay *self)
{
  return self->url;
}

const char *
fl_relay_get_pool_id (FlRelay *self)
{
  return fl_user_pool_get_pool_id (self->pool);
}

const char *
fl_relay_get_client_id (FlRelay *self)
{
  return fl_user_pool_get_client_id (self->pool);
}

FlUserPool *
fl_relay_get_user_pool (FlRelay *self)
{
  return self->pool;
}

/* ---- shutdown ---------------------------------------------------------- */

static void
finish_shutdown (FlRelay *self)
{
  g_autoptr (GTask) task = g_steal_pointer (&self->shutdown_task);

  g_clear_handle_id (&self->tick_source, g_source_remove);

  /* Nobody is waiting for an acknowledgement any more: close the rest,
   * write the devices, and let the store commit what is queued. */
  fl_hub_close_all (self->hub);
  g_ptr_array_set_size (self->device_sessions, 0);
  soup_server_disconnect (self->server);
  fl_registry_flush (self->registry);
  fl_store_close (self->store);

  g_task_return_boolean (task, TRUE);
}

static gboolean
drain_cb (gpointer user_data)
{
  FlRelay *self = user_data;
  gint64 waited = g_get_monotonic_time () - GPOINTER_TO_SIZE (g_task_get_task_data (self->shutdown_task));

  /* In flight: events not yet committed, and answers not yet written (a
   * reply set a moment ago still needs a few iterations to go out, and
   * disconnecting first would lose the acknowledgement). */
  if ((fl_ingest_get_in_flight (self->ingest) > 0 || self->open_requests > 0) &&
      waited < SHUTDOWN_GRACE_SEC * G_USEC_PER_SEC)
    return G_SOURCE_CONTINUE;

  finish_shutdown (self);
  return G_SOURCE_REMOVE;
}

void
fl_relay_shutdown_async (FlRelay             *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;
  GSList *listeners;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_relay_shutdown_async);

  if (self->shutting_down)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING, "Already shutting down");
      return;
    }
  self->shutting_down = TRUE;

  /* Stop taking connections; requests in flight get their answers. */
  listeners = soup_server_get_listeners (self->server);
  for (GSList *l = listeners; l != NULL; l = l->next)
    g_socket_close (l->data, NULL);
  g_slist_free (listeners);

  g_task_set_task_data (task, GSIZE_TO_POINTER ((gsize) g_get_monotonic_time ()), NULL);
  self->shutdown_task = g_steal_pointer (&task);
  g_timeout_add (10, drain_cb, self);
}

gboolean
fl_relay_shutdown_finish (FlRelay      *self,
                          GAsyncResult *result,
                          GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
