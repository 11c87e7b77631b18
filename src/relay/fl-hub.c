/* fl-hub.c: the operators' live stream. */
#define G_LOG_DOMAIN "fl-hub"

#include "config.h"

#include <netinet/in.h>
#include <linux/tcp.h> /* tcpi_bytes_acked, which glibc's header lacks */
#include <string.h>
#include <sys/socket.h>

#include "fl-http.h"
#include "fl-hub.h"

#define CATCH_UP_PAGE      1000
#define MAX_MESSAGE_SIZE   (64 * 1024)
#define MAX_DEVICE_IDS     10000
#define KEEPALIVE_SECONDS  30

#define CLOSE_SLOW_CONSUMER 4008
#define CLOSE_SIGNED_OUT    4001

typedef struct
{
  FlHub                   *hub;        /* not a ref: the hub outlives it */
  SoupWebsocketConnection *connection;
  FlPrincipal             *principal;
  GHashTable              *devices;    /* device ids, or NULL */
  gboolean                 all_devices;
  gboolean                 alerts;
  gint64                   last_sent;  /* seq of the last event sent */
  gboolean                 catching_up;
  gboolean                 catch_up_again;
  GCancellable            *cancellable;
  int                      fd;         /* for TCP_INFO, or -1 */
  guint64                  handed;     /* bytes given to the connection */
  guint64                  acked_base; /* tcpi_bytes_acked at the start */
  guint                    resume_source;
  gboolean                 gone;
} Subscriber;

struct _FlHub
{
  GObject     parent_instance;

  FlStore    *store;
  FlRegistry *registry;
  GPtrArray  *subscribers;  /* Subscriber, owned */
  gint64      last_published;
  guint64     max_lag_bytes;
};

G_DEFINE_FINAL_TYPE (FlHub, fl_hub, G_TYPE_OBJECT)

static void catch_up (Subscriber *sub);

/* Subscribers are reference counted (g_rc_box): the hub's list holds one
 * reference and each store query in flight another. */
static void
subscriber_clear (Subscriber *sub)
{
  g_clear_handle_id (&sub->resume_source, g_source_remove);
  g_cancellable_cancel (sub->cancellable);
  g_clear_object (&sub->cancellable);
  g_signal_handlers_disconnect_by_data (sub->connection, sub);
  g_clear_object (&sub->connection);
  g_clear_pointer (&sub->principal, fl_principal_free);
  g_clear_pointer (&sub->devices, g_hash_table_unref);
}

static void
subscriber_unref (Subscriber *sub)
{
  g_rc_box_release_full (sub, (GDestroyNotify) subscriber_clear);
}

static void
fl_hub_dispose (GObject *object)
{
  FlHub *self = FL_HUB (object);

  g_clear_pointer (&self->subscribers, g_ptr_array_unref);

  G_OBJECT_CLASS (fl_hub_parent_class)->dispose (object);
}

static void
fl_hub_finalize (GObject *object)
{
  FlHub *self = FL_HUB (object);

  g_clear_object (&self->store);
  g_clear_object (&self->registry);

  G_OBJECT_CLASS (fl_hub_parent_class)->finalize (object);
}

static void
fl_hub_class_init (FlHubClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_hub_dispose;
  object_class->finalize = fl_hub_finalize;
}

static void
fl_hub_init (FlHub *self)
{
  self->subscribers = g_ptr_array_new_with_free_func ((GDestroyNotify) subscriber_unref);
  self->max_lag_bytes = FL_HUB_DEFAULT_MAX_LAG_BYTES;
}

FlHub *
fl_hub_new (FlStore    *store,
            FlRegistry *registry)
{
  FlHub *self = g_object_new (FL_TYPE_HUB, NULL);

  self->store = g_object_ref (store);
  self->registry = g_object_ref (registry);
  self->last_published = fl_store_get_last_seq (store);

  return self;
}

void
fl_hub_set_max_lag_bytes (FlHub   *self,
                          guint64  max_lag_bytes)
{
  self->max_lag_bytes = max_lag_bytes;
}

guint
fl_hub_get_n_subscribers (FlHub *self)
{
  return self->subscribers->len;
}

gint64
fl_hub_get_last_published (FlHub *self)
{
  return self->last_published;
}

/* ---- flow control ---------------------------------------------------- */

static int
connection_fd (SoupWebsocketConnection *connection)
{
  GIOStream *stream = soup_websocket_connection_get_io_stream (connection);

  /* libsoup's SoupIOStream ("base-iostream") and TLS ("base-io-stream")
   * wrap the socket connection */
  while (stream != NULL && !G_IS_SOCKET_CONNECTION (stream))
    {
      GObjectClass *klass = G_OBJECT_GET_CLASS (stream);
      GIOStream *base = NULL;
      const char *property;

      if (g_object_class_find_property (klass, "base-iostream"))
        property = "base-iostream";
      else if (g_object_class_find_property (klass, "base-io-stream"))
        property = "base-io-stream";
      else
        return -1;
      g_object_get (stream, property, &base, NULL);
      if (base == NULL)
        return -1;
      g_object_unref (base); /* the TLS stream keeps it alive */
      stream = base;
    }

  if (stream == NULL)
    return -1;

  return g_socket_get_fd (g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream)));
}

static guint64
bytes_acked (Subscriber *sub)
{
  struct tcp_info info;
  socklen_t len = sizeof info;

  if (sub->fd < 0)
    return 0;

  memset (&info, 0, sizeof info);
  if (getsockopt (sub->fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
    return 0;

  return info.tcpi_bytes_acked;
}

/* Bytes handed to the connection that the peer has not acknowledged:
 * what sits in libsoup's queue and the kernel's send buffer. */
static guint64
lag_bytes (Subscriber *sub)
{
  guint64 acked;

  if (sub->fd < 0)
    return 0;

  acked = bytes_acked (sub) - sub->acked_base;
  return sub->handed > acked ? sub->handed - acked : 0;
}

static void
send_text (Subscriber *sub,
           const char *text,
           gsize       len)
{
  if (sub->gone || soup_websocket_connection_get_state (sub->connection) != SOUP_WEBSOCKET_STATE_OPEN)
    return;

  soup_websocket_connection_send_text (sub->connection, text);
  /* payload plus an unmasked frame header */
  sub->handed += len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
}

static void
send_error (Subscriber *sub,
            GError     *error)
{
  g_autoptr (GString) out = g_string_new ("{\"type\":\"error\",\"error\":");

  fl_api_error_append_object (error, out);
  g_string_append_c (out, '}');
  send_text (sub, out->str, out->len);
}

static void
drop_subscriber (Subscriber *sub,
                 gushort     code,
                 const char *reason)
{
  if (sub->gone)
    return;

  sub->gone = TRUE;
  g_cancellable_cancel (sub->cancellable);
  if (soup_websocket_connection_get_state (sub->connection) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (sub->connection, code, reason);
}

static gboolean
check_lag (Subscriber *sub)
{
  guint64 lag = lag_bytes (sub);
  g_autoptr (GError) error = NULL;

  if (lag <= sub->hub->max_lag_bytes)
    return TRUE;

  g_message ("Disconnecting subscriber %s: %" G_GUINT64_FORMAT " bytes behind",
             sub->principal->username, lag);
  error = g_error_new (FL_API_ERROR, FL_API_ERROR_TOO_MANY_REQUESTS,
                       "You are %" G_GUINT64_FORMAT " bytes behind the live stream; reconnect with “since” to resume",
                       lag);
  send_error (sub, error);
  drop_subscriber (sub, CLOSE_SLOW_CONSUMER, "slow consumer");

  return FALSE;
}

/* ---- delivery -------------------------------------------------------- */

static gboolean
wants_device (Subscriber *sub,
              const char *device_id)
{
  return sub->all_devices || (sub->devices != NULL && g_hash_table_contains (sub->devices, device_id));
}

static void
send_event (Subscriber *sub,
            FlEvent    *event,
            GString    *scratch)
{
  g_string_truncate (scratch, 0);
  g_string_append (scratch, "{\"type\":\"event\",\"event\":");
  g_string_append_len (scratch, fl_event_get_json (event), fl_event_get_json_length (event));
  g_string_append_c (scratch, '}');
  send_text (sub, scratch->str, scratch->len);
  sub->last_sent = fl_event_get_seq (event);
}

void
fl_hub_publish_events (FlHub     *self,
                       GPtrArray *events)
{
  g_autoptr (GString) scratch = NULL;

  if (events->len == 0)
    return;

  self->last_published = MAX (self->last_published,
                              fl_event_get_seq (g_ptr_array_index (events, events->len - 1)));

  if (self->subscribers->len == 0)
    return;

  scratch = g_string_sized_new (512);
  for (guint s = 0; s < self->subscribers->len; s++)
    {
      Subscriber *sub = g_ptr_array_index (self->subscribers, s);
      gboolean sent = FALSE;

      if (sub->gone || sub->catching_up)
        continue;

      for (guint i = 0; i < events->len; i++)
        {
          FlEvent *event = g_ptr_array_index (events, i);

          /* a catch-up may already have sent it */
          if (fl_event_get_seq (event) <= sub->last_sent)
            continue;
          if (!wants_device (sub, fl_event_get_source (event)))
            continue;
          send_event (sub, event, scratch);
          sent = TRUE;
        }

      if (sent)
        check_lag (sub);
    }
}

void
fl_hub_publish_device (FlHub    *self,
                       FlDevice *device)
{
  g_autoptr (GString) out = NULL;

  if (self->subscribers->len == 0)
    return;

  out = g_string_new ("{\"type\":\"device\",\"device\":");
  fl_device_append_json (device, out);
  g_string_append_c (out, '}');

  for (guint s = 0; s < self->subscribers->len; s++)
    {
      Subscriber *sub = g_ptr_array_index (self->subscribers, s);

      if (!sub->gone && wants_device (sub, fl_device_get_device_id (device)))
        send_text (sub, out->str, out->len);
    }
}

/* ---- catching up from the store -------------------------------------- */

static void deliver_catch_up (Subscriber *sub,
                              GPtrArray  *events,
                              GError     *error);

static void
events_since_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Subscriber *sub = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) events = NULL;

  events = fl_store_events_since_finish (FL_STORE (source), result, &error);
  if (!sub->gone)
    deliver_catch_up (sub, events, error);
  subscriber_unref (sub);
}

static gboolean
resume_catch_up_cb (gpointer user_data)
{
  Subscriber *sub = user_data;

  sub->resume_source = 0;
  catch_up (sub);

  return G_SOURCE_REMOVE;
}

static void
deliver_catch_up (Subscriber *sub,
                  GPtrArray  *events,
                  GError     *error)
{
  g_autoptr (GString) scratch = NULL;

  if (events == NULL)
    {
      sub->catching_up = FALSE;
      send_error (sub, error);
      drop_subscriber (sub, SOUP_WEBSOCKET_CLOSE_SERVER_ERROR, "store error");
      return;
    }

  scratch = g_string_sized_new (512);
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);

      if (fl_event_get_seq (event) > sub->last_sent && wants_device (sub, fl_event_get_source (event)))
        send_event (sub, event, scratch);
      else
        sub->last_sent = MAX (sub->last_sent, fl_event_get_seq (event));
    }

  if (sub->gone)
    return;

  /* Done once the store has nothing newer than what the hub has already
   * published: from here on, live delivery continues without a gap, and
   * the seq check there skips anything this catch-up already sent. */
  if (events->len < CATCH_UP_PAGE && sub->last_sent >= sub->hub->last_published && !sub->catch_up_again)
    {
      sub->catching_up = FALSE;
      return;
    }

  sub->catch_up_again = FALSE;

  /* Slow readers are paced here rather than dropped: the store holds
   * what they have not read yet. */
  if (lag_bytes (sub) > sub->hub->max_lag_bytes / 2)
    {
      sub->resume_source = g_timeout_add (50, resume_catch_up_cb, sub);
      return;
    }

  catch_up (sub);
}

static void
catch_up (Subscriber *sub)
{
  g_autofree char **ids = NULL;

  if (sub->gone)
    return;

  sub->catching_up = TRUE;
  if (!sub->all_devices)
    {
      if (sub->devices == NULL || g_hash_table_size (sub->devices) == 0)
        {
          sub->catching_up = FALSE;
          return;
        }
      ids = (char **) g_hash_table_get_keys_as_array (sub->devices, NULL);
    }

  fl_store_events_since_async (sub->hub->store, sub->last_sent, (const char * const *) ids,
                               CATCH_UP_PAGE, sub->cancellable, events_since_cb, g_rc_box_acquire (sub));
}

/* ---- messages from the subscriber ------------------------------------ */

static gboolean
read_device_ids (JsonObject  *object,
                 GPtrArray   *ids,
                 gboolean    *all,
                 GError     **error)
{
  JsonNode *node = json_object_get_member (object, "deviceIds");
  JsonArray *array;

  *all = FALSE;
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error_literal (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                           "“deviceIds” must be an array of device ids, or [\"*\"]");
      return FALSE;
    }

  array = json_node_get_array (node);
  if (json_array_get_length (array) > MAX_DEVICE_IDS)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                   "At most %d device ids per message", MAX_DEVICE_IDS);
      return FALSE;
    }

  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *element = json_array_get_element (array, i);
      const char *id;

      if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
        {
          g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                       "deviceIds[%u] must be a string", i);
          return FALSE;
        }
      id = json_node_get_string (element);
      if (g_str_equal (id, "*"))
        *all = TRUE;
      else
        g_ptr_array_add (ids, (gpointer) id);
    }

  return TRUE;
}

static void
reply_subscribed (Subscriber *sub,
                  const char *type)
{
  g_autoptr (GString) out = g_string_new (NULL);

  g_string_printf (out, "{\"type\":\"%s\",\"deviceIds\":[", type);
  if (sub->all_devices)
    g_string_append (out, "\"*\"");
  else if (sub->devices != NULL)
    {
      GHashTableIter iter;
      const char *id;
      gboolean first = TRUE;

      g_hash_table_iter_init (&iter, sub->devices);
      while (g_hash_table_iter_next (&iter, (gpointer *) &id, NULL))
        {
          if (!first)
            g_string_append_c (out, ',');
          first = FALSE;
          fl_json_append_string (out, id);
        }
    }
  g_string_append_printf (out, "],\"lastSeq\":%" G_GINT64_FORMAT "}", sub->hub->last_published);
  send_text (sub, out->str, out->len);
}

static gboolean
handle_subscribe (Subscriber  *sub,
                  JsonObject  *object,
                  GError     **error)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new ();
  JsonNode *since_node;
  gint64 since = -1;
  gboolean all;

  if (!read_device_ids (object, ids, &all, error))
    return FALSE;

  since_node = json_object_get_member (object, "since");
  if (since_node != NULL && !JSON_NODE_HOLDS_NULL (since_node))
    {
      if (!JSON_NODE_HOLDS_VALUE (since_node) || json_node_get_value_type (since_node) != G_TYPE_INT64 ||
          json_node_get_int (since_node) < 0)
        {
          g_set_error_literal (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                               "“since” must be the last seq you have seen (an integer ≥ 0)");
          return FALSE;
        }
      since = json_node_get_int (since_node);
    }

  if (all)
    sub->all_devices = TRUE;
  for (guint i = 0; i < ids->len; i++)
    {
      if (sub->devices == NULL)
        sub->devices = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      g_hash_table_add (sub->devices, g_strdup (g_ptr_array_index (ids, i)));
    }

  reply_subscribed (sub, "subscribed");

  if (since >= 0)
    {
      sub->last_sent = MIN (since, sub->hub->last_published);
      if (sub->catching_up)
        sub->catch_up_again = TRUE; /* a page is in flight; go round again */
      else
        catch_up (sub);
    }

  return TRUE;
}

static gboolean
handle_unsubscribe (Subscriber  *sub,
                    JsonObject  *object,
                    GError     **error)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new ();
  gboolean all;

  if (!read_device_ids (object, ids, &all, error))
    return FALSE;

  if (all)
    {
      sub->all_devices = FALSE;
      g_clear_pointer (&sub->devices, g_hash_table_unref);
    }
  for (guint i = 0; i < ids->len && sub->devices != NULL; i++)
    g_hash_table_remove (sub->devices, g_ptr_array_index (ids, i));

  reply_subscribed (sub, "unsubscribed");
  return TRUE;
}

static void
message_cb (SoupWebsocketConnection *connection,
            gint                     type,
            GBytes                  *message,
            gpointer                 user_data)
{
  Subscriber *sub = user_data;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) error = NULL;
  JsonObject *object;
  const char *action;
  gsize len;
  const char *data = g_bytes_get_data (message, &len);

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      error = g_error_new_literal (FL_API_ERROR, FL_API_ERROR_BAD_REQUEST, "Send JSON text messages");
      goto fail;
    }

  if (!json_parser_load_from_data (parser, data, len, &error))
    {
      g_clear_error (&error);
      error = g_error_new_literal (FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED, "The message is not valid JSON");
      goto fail;
    }

  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      error = g_error_new_literal (FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED, "A message must be a JSON object");
      goto fail;
    }
  object = json_node_get_object (json_parser_get_root (parser));
  action = json_object_get_member (object, "action") &&
           JSON_NODE_HOLDS_VALUE (json_object_get_member (object, "action")) ?
           json_object_get_string_member (object, "action") : NULL;

  if (g_strcmp0 (action, "subscribe_devices") == 0)
    {
      if (!handle_subscribe (sub, object, &error))
        goto fail;
    }
  else if (g_strcmp0 (action, "unsubscribe_devices") == 0)
    {
      if (!handle_unsubscribe (sub, object, &error))
        goto fail;
    }
  else if (g_strcmp0 (action, "subscribe_alerts") == 0)
    {
      static const char reply[] = "{\"type\":\"subscribed_alerts\"}";
      sub->alerts = TRUE;
      send_text (sub, reply, sizeof reply - 1);
    }
  else if (g_strcmp0 (action, "unsubscribe_alerts") == 0)
    {
      static const char reply[] = "{\"type\":\"unsubscribed_alerts\"}";
      sub->alerts = FALSE;
      send_text (sub, reply, sizeof reply - 1);
    }
  else if (g_strcmp0 (action, "ping") == 0)
    {
      g_autofree char *reply = g_strdup_printf ("{\"type\":\"pong\",\"time\":%" G_GINT64_FORMAT "}", fl_now_ms ());
      send_text (sub, reply, strlen (reply));
    }
  else
    {
      error = g_error_new (FL_API_ERROR, FL_API_ERROR_BAD_REQUEST,
                           "Unknown action “%s”; use subscribe_devices, unsubscribe_devices, subscribe_alerts or ping",
                           action ? action : "");
      goto fail;
    }

  return;

fail:
  send_error (sub, error);
}

static void
closed_cb (SoupWebsocketConnection *connection,
           gpointer                 user_data)
{
  Subscriber *sub = user_data;
  FlHub *self = sub->hub;

  sub->gone = TRUE;
  g_ptr_array_remove_fast (self->subscribers, sub);
}

void
fl_hub_add_subscriber (FlHub                   *self,
                       SoupWebsocketConnection *connection,
                       FlPrincipal             *principal)
{
  Subscriber *sub = g_rc_box_new0 (Subscriber);

  sub->hub = self;
  sub->connection = g_object_ref (connection);
  sub->principal = principal;
  sub->cancellable = g_cancellable_new ();
  sub->last_sent = self->last_published;
  sub->fd = connection_fd (connection);
  sub->acked_base = bytes_acked (sub);

  soup_websocket_connection_set_max_incoming_payload_size (connection, MAX_MESSAGE_SIZE);
  soup_websocket_connection_set_keepalive_interval (connection, KEEPALIVE_SECONDS);
  g_signal_connect (connection, "message", G_CALLBACK (message_cb), sub);
  g_signal_connect (connection, "closed", G_CALLBACK (closed_cb), sub);

  g_ptr_array_add (self->subscribers, sub);
}

guint
fl_hub_close_signed_out (FlHub            *self,
                         FlHubRevokedFunc  revoked,
                         gpointer          user_data)
{
  guint closed = 0;

  for (guint i = 0; i < self->subscribers->len; i++)
    {
      Subscriber *sub = g_ptr_array_index (self->subscribers, i);

      if (!sub->gone && revoked (sub->principal, user_data))
        {
          g_message ("Closing the live stream of %s: signed out", sub->principal->username);
          drop_subscriber (sub, CLOSE_SIGNED_OUT, "signed out");
          closed++;
        }
    }
  return closed;
}

void
fl_hub_close_all (FlHub *self)
{
  for (guint i = 0; i < self->subscribers->len; i++)
    drop_subscriber (g_ptr_array_index (self->subscribers, i), SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "relay shutting down");
}
