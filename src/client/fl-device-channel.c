/* fl-device-channel.c: a device's WebSocket to the relay.
 *
 * Device → relay: each text message is a batch, the same body POST
 *                 /ingest takes (we send a JSON array of events).
 * Relay → device: {"type": "ack", "accepted", "duplicates", "rejected"}
 *                 once per message, in order, after the events are
 *                 committed; {"type": "ack", "error": {code, message}}
 *                 for a message refused as a whole;
 *                 {"type": "command", ...} for the device.
 */
#define G_LOG_DOMAIN "fl-device-channel"

#include "config.h"

#include <libsoup/soup.h>

#include "fl-client-private.h"

#define MAX_INCOMING_PAYLOAD (1024 * 1024)

struct _FlDeviceChannel
{
  GObject parent_instance;

  SoupWebsocketConnection *connection;
  char                    *device_id;

  /* GTasks of batches sent and not acknowledged, oldest first */
  GQueue  pending;
  guint64 next_batch;

  guint  keepalive;
  gint64 last_received;
  guint  watchdog_id;

  GError  *error;
  gboolean closed;
};

G_DEFINE_FINAL_TYPE (FlDeviceChannel, fl_device_channel, G_TYPE_OBJECT)

enum
{
  COMMAND,
  CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

typedef struct
{
  guint64 batch;
} Batch;

static void
fail_pending (FlDeviceChannel *self)
{
  GTask *task;

  while ((task = g_queue_pop_head (&self->pending)) != NULL)
    {
      if (self->error != NULL)
        g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                                 "The device channel closed before the relay acknowledged the events: %s",
                                 self->error->message);
      else
        g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                                 "The device channel closed before the relay acknowledged the events");
      g_object_unref (task);
    }
}

static void
set_error (FlDeviceChannel *self,
           GError          *error)
{
  if (self->error == NULL)
    self->error = error;
  else
    g_error_free (error);
}

static void
connection_closed_cb (FlDeviceChannel         *self,
                      SoupWebsocketConnection *connection)
{
  g_autoptr (FlDeviceChannel) hold = g_object_ref (self);
  gushort                     code = soup_websocket_connection_get_close_code (connection);

  if (self->closed)
    return;

  self->closed = TRUE;
  g_clear_handle_id (&self->watchdog_id, g_source_remove);

  g_debug ("Device channel of %s closed (%u)", self->device_id, code);

  if (self->error == NULL && code != SOUP_WEBSOCKET_CLOSE_NORMAL && code != SOUP_WEBSOCKET_CLOSE_GOING_AWAY)
    {
      const char *reason = soup_websocket_connection_get_close_data (connection);

      if (code == SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION)
        set_error (self, _fl_client_error_new (FL_CLIENT_ERROR_PROTOCOL, NULL, 0,
                                               "The relay closed the device channel: %s",
                                               reason != NULL && *reason ? reason : "policy violation"));
      else
        set_error (self, _fl_client_error_new (FL_CLIENT_ERROR_NETWORK, NULL, 0,
                                               "The device channel closed (%u%s%s)", code,
                                               reason != NULL && *reason ? ": " : "",
                                               reason != NULL ? reason : ""));
    }
  else if (self->error == NULL && code == SOUP_WEBSOCKET_CLOSE_GOING_AWAY)
    set_error (self, _fl_client_error_new (FL_CLIENT_ERROR_NETWORK, NULL, 0,
                                           "The relay is going away"));

  fail_pending (self);
  g_signal_emit (self, signals[CLOSED], 0);
}

static void
connection_error_cb (FlDeviceChannel         *self,
                     GError                  *error,
                     SoupWebsocketConnection *connection)
{
  g_debug ("Device channel of %s: %s", self->device_id, error->message);
  set_error (self, _fl_client_error_new (FL_CLIENT_ERROR_NETWORK, NULL, 0, "%s", error->message));
}

static void
connection_pong_cb (FlDeviceChannel         *self,
                    GBytes                  *message,
                    SoupWebsocketConnection *connection)
{
  self->last_received = g_get_monotonic_time ();
}

static void
handle_ack (FlDeviceChannel *self,
            JsonObject      *object)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GTask)  task = NULL;
  FlIngestResult    *result;
  JsonObject        *inner;
  Batch             *batch;

  task = g_queue_pop_head (&self->pending);
  if (task == NULL)
    {
      g_debug ("Device channel of %s: an ack for no batch", self->device_id);
      return;
    }

  batch = g_task_get_task_data (task);
  g_debug ("Device channel of %s: ack for batch %" G_GUINT64_FORMAT, self->device_id, batch->batch);

  if ((inner = _fl_json_get_object (object, "error")) != NULL)
    {
      const char   *code = _fl_json_get_string (inner, "code");
      const char   *message = _fl_json_get_string (inner, "message");
      FlClientError client_code = FL_CLIENT_ERROR_BAD_REQUEST;

      if (g_strcmp0 (code, "too_large") == 0)
        client_code = FL_CLIENT_ERROR_TOO_LARGE;
      else if (g_strcmp0 (code, "forbidden") == 0)
        client_code = FL_CLIENT_ERROR_FORBIDDEN;

      g_task_return_error (task, _fl_client_error_new (client_code, code, 0, "%s",
                                                       message != NULL ? message : "The relay refused the events"));
      return;
    }

  result = _fl_ingest_result_new_from_json (object, &error);
  if (result == NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_pointer (task, result, (GDestroyNotify) fl_ingest_result_free);
}

static void
handle_error (FlDeviceChannel *self,
              JsonObject      *object)
{
  JsonObject *inner = _fl_json_get_object (object, "error");
  const char *code = _fl_json_get_string (inner, "code");
  const char *message = _fl_json_get_string (inner, "message");

  g_debug ("Device channel of %s: relay says %s: %s", self->device_id,
           code != NULL ? code : "error", message != NULL ? message : "");
}

static void
connection_message_cb (FlDeviceChannel         *self,
                       gint                     type,
                       GBytes                  *message,
                       SoupWebsocketConnection *connection)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError)     error = NULL;
  JsonObject            *object;
  JsonNode              *root;
  const char            *data;
  const char            *kind;
  gsize                  length;

  self->last_received = g_get_monotonic_time ();

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      g_debug ("Device channel of %s: ignoring a binary message", self->device_id);
      return;
    }

  data = g_bytes_get_data (message, &length);
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) length, &error) || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_debug ("Device channel of %s: ignoring a message that is not a JSON object",
               self->device_id);
      return;
    }

  object = json_node_get_object (root);
  kind = _fl_json_get_string (object, "type");

  if (g_strcmp0 (kind, "ack") == 0 || (kind == NULL && json_object_has_member (object, "accepted")))
    handle_ack (self, object);
  else if (g_strcmp0 (kind, "command") == 0)
    {
      JsonObject *command = _fl_json_get_object (object, "command");

      g_signal_emit (self, signals[COMMAND], 0, command != NULL ? command : object);
    }
  else if (g_strcmp0 (kind, "error") == 0)
    handle_error (self, object);
  else
    g_debug ("Device channel of %s: ignoring a message of type %s",
             self->device_id, kind != NULL ? kind : "(none)");
}

static gboolean
watchdog_cb (gpointer user_data)
{
  FlDeviceChannel *self = user_data;
  gint64           silence = g_get_monotonic_time () - self->last_received;

  if (self->keepalive > 0 && silence > 3 * (gint64) self->keepalive * G_USEC_PER_SEC)
    {
      g_debug ("Device channel of %s: no answer for %" G_GINT64_FORMAT " s",
               self->device_id, silence / G_USEC_PER_SEC);
      set_error (self, _fl_client_error_new (FL_CLIENT_ERROR_NETWORK, NULL, 0,
                                             "The relay stopped answering"));
      self->watchdog_id = 0;
      /* libsoup gives up waiting for the peer's close frame after a
       * few seconds, then "closed" follows */
      fl_device_channel_close (self);
      return G_SOURCE_REMOVE;
    }

  return G_SOURCE_CONTINUE;
}

static void
fl_device_channel_dispose (GObject *object)
{
  FlDeviceChannel *self = FL_DEVICE_CHANNEL (object);

  g_clear_handle_id (&self->watchdog_id, g_source_remove);

  if (self->connection != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->connection, self);
      if (soup_websocket_connection_get_state (self->connection) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (self->connection, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      g_clear_object (&self->connection);
    }

  self->closed = TRUE;
  fail_pending (self);

  G_OBJECT_CLASS (fl_device_channel_parent_class)->dispose (object);
}

static void
fl_device_channel_finalize (GObject *object)
{
  FlDeviceChannel *self = FL_DEVICE_CHANNEL (object);

  g_clear_pointer (&self->device_id, g_free);
  g_clear_error (&self->error);

  G_OBJECT_CLASS (fl_device_channel_parent_class)->finalize (object);
}

static void
fl_device_channel_class_init (FlDeviceChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_device_channel_dispose;
  object_class->finalize = fl_device_channel_finalize;

  /**
   * FlDeviceChannel::command:
   * @command: the command message
   *
   * The relay sent a command for the device.
   */
  signals[COMMAND] = g_signal_new ("command", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                   0, NULL, NULL, NULL, G_TYPE_NONE, 1, JSON_TYPE_OBJECT);

  /**
   * FlDeviceChannel::closed:
   *
   * The channel closed; fl_device_channel_get_error() tells why.
   * Batches not acknowledged have failed by then.
   */
  signals[CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
fl_device_channel_init (FlDeviceChannel *self)
{
  g_queue_init (&self->pending);
  self->next_batch = 1;
}

FlDeviceChannel *
_fl_device_channel_new (SoupWebsocketConnection *connection,
                        const char              *device_id)
{
  FlDeviceChannel *self = g_object_new (FL_TYPE_DEVICE_CHANNEL, NULL);

  self->connection = g_object_ref (connection);
  self->device_id = g_strdup (device_id);
  self->last_received = g_get_monotonic_time ();

  soup_websocket_connection_set_max_incoming_payload_size (connection, MAX_INCOMING_PAYLOAD);

  g_signal_connect_object (connection, "message", G_CALLBACK (connection_message_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (connection, "pong", G_CALLBACK (connection_pong_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (connection, "error", G_CALLBACK (connection_error_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (connection, "closed", G_CALLBACK (connection_closed_cb),
                           self, G_CONNECT_SWAPPED);

  fl_device_channel_set_keepalive (self, FL_DEVICE_CHANNEL_DEFAULT_KEEPALIVE_SEC);

  return self;
}

const char *
fl_device_channel_get_device_id (FlDeviceChannel *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_CHANNEL (self), NULL);

  return self->device_id;
}

gboolean
fl_device_channel_is_open (FlDeviceChannel *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_CHANNEL (self), FALSE);

  return !self->closed && self->connection != NULL && soup_websocket_connection_get_state (self->connection) == SOUP_WEBSOCKET_STATE_OPEN;
}

guint
fl_device_channel_get_n_pending (FlDeviceChannel *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_CHANNEL (self), 0);

  return self->pending.length;
}

/**
 * fl_device_channel_get_error:
 *
 * Returns: (nullable) (transfer none): why the channel closed
 */
const GError *
fl_device_channel_get_error (FlDeviceChannel *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_CHANNEL (self), NULL);

  return self->error;
}

void
fl_device_channel_set_keepalive (FlDeviceChannel *self,
                                 guint            interval)
{
  g_return_if_fail (FL_IS_DEVICE_CHANNEL (self));

  self->keepalive = interval;
  g_clear_handle_id (&self->watchdog_id, g_source_remove);

  if (self->connection == NULL || self->closed)
    return;

  soup_websocket_connection_set_keepalive_interval (self->connection, interval);
  if (interval > 0)
    self->watchdog_id = g_timeout_add_seconds (interval, watchdog_cb, self);
}

void
fl_device_channel_send_events_async (FlDeviceChannel    *self,
                                     GPtrArray          *events,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GBytes) bytes = NULL;
  Batch             *batch;

  g_return_if_fail (FL_IS_DEVICE_CHANNEL (self));
  g_return_if_fail (events != NULL);
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_device_channel_send_events_async);

  if (!fl_device_channel_is_open (self))
    {
      g_task_return_new_error (task, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK,
                               "The device channel is closed");
      return;
    }

  batch = g_new0 (Batch, 1);
  batch->batch = self->next_batch++;
  g_task_set_task_data (task, batch, g_free);

  bytes = _fl_events_to_json_array (events);

  g_queue_push_tail (&self->pending, g_steal_pointer (&task));
  soup_websocket_connection_send_message (self->connection, SOUP_WEBSOCKET_DATA_TEXT, bytes);
}

/**
 * fl_device_channel_send_events_finish:
 *
 * Returns: (transfer full): the relay's ack
 */
FlIngestResult *
fl_device_channel_send_events_finish (FlDeviceChannel *self,
                                      GAsyncResult    *result,
                                      GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_device_channel_send_events_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
fl_device_channel_send_message (FlDeviceChannel *self,
                                JsonObject      *message)
{
  g_autoptr (JsonNode) node = NULL;
  g_autofree char     *text = NULL;

  g_return_if_fail (FL_IS_DEVICE_CHANNEL (self));
  g_return_if_fail (message != NULL);

  if (!fl_device_channel_is_open (self))
    return;

  node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, message);
  text = fl_json_to_string (node, NULL);
  soup_websocket_connection_send_text (self->connection, text);
}

void
fl_device_channel_close (FlDeviceChannel *self)
{
  g_return_if_fail (FL_IS_DEVICE_CHANNEL (self));

  if (self->connection == NULL || self->closed)
    return;

  switch (soup_websocket_connection_get_state (self->connection))
    {
    case SOUP_WEBSOCKET_STATE_OPEN:
      soup_websocket_connection_close (self->connection, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      break;
    case SOUP_WEBSOCKET_STATE_CLOSING:
    case SOUP_WEBSOCKET_STATE_CLOSED:
    default:
      break;
    }
}
