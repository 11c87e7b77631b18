/* fl-device-session.c: one device's WebSocket (GET /device).
 *
 * Each text message is one event, an array or NDJSON, ingested like a
 * POST /ingest body; every message is answered, in order, with
 * {"type": "ack", "accepted", "duplicates", "rejected"} once its events
 * are committed (or {"type": "ack", "error": {...}} when it was refused
 * as a whole). */
#define G_LOG_DOMAIN "fl-device-session"

#include "config.h"

#include "fl-relay-private.h"

#define KEEPALIVE_SECONDS 30
#define MAX_PENDING_ACKS  1024

typedef struct
{
  FlRelay                 *relay;       /* not a ref: the relay outlives it */
  SoupWebsocketConnection *connection;
  FlDevice                *device;
  GQueue                   pending;     /* Ack, in message order */
  gboolean                 gone;
} Session;

typedef struct
{
  GString *reply;  /* NULL until answered */
} Ack;

static void
ack_free (Ack *ack)
{
  if (ack->reply != NULL)
    g_string_free (ack->reply, TRUE);
  g_free (ack);
}

static void
session_clear (Session *session)
{
  g_signal_handlers_disconnect_by_data (session->connection, session);
  g_clear_object (&session->connection);
  g_clear_object (&session->device);
  g_queue_clear_full (&session->pending, (GDestroyNotify) ack_free);
}

static void
session_unref (Session *session)
{
  g_rc_box_release_full (session, (GDestroyNotify) session_clear);
}

FlDevice *
_fl_device_session_get_device (gpointer data)
{
  Session *session = data;

  return session->device;
}

/* The relay's list dropped the session: close it if it is still open. */
void
_fl_device_session_close (gpointer data)
{
  Session *session = data;

  if (!session->gone)
    {
      session->gone = TRUE;
      if (soup_websocket_connection_get_state (session->connection) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_close (session->connection, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
    }
  session_unref (session);
}

static void
flush_acks (Session *session)
{
  Ack *ack;

  while ((ack = g_queue_peek_head (&session->pending)) != NULL && ack->reply != NULL)
    {
      g_queue_pop_head (&session->pending);
      if (!session->gone && soup_websocket_connection_get_state (session->connection) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_text (session->connection, ack->reply->str);
      ack_free (ack);
    }
}

static GString *
error_reply (const GError *error)
{
  GString *out = g_string_new ("{\"type\":\"ack\",");
  g_autoptr (GString) body = g_string_new (NULL);

  fl_api_error_append_json (error, body);
  g_string_append_len (out, body->str + 1, body->len - 1);

  return out;
}

typedef struct
{
  Session *session;
  Ack     *ack;
} Pending;

static void
ingest_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Pending *pending = user_data;
  Session *session = pending->session;
  g_autoptr (GError) error = NULL;
  GString *reply;

  reply = fl_ingest_submit_finish (FL_INGEST (source), result, &error);
  if (reply != NULL)
    {
      /* {"accepted":...} → {"type":"ack","accepted":...} */
      g_string_insert (reply, 1, "\"type\":\"ack\",");
      pending->ack->reply = reply;
    }
  else
    pending->ack->reply = error_reply (error);

  flush_acks (session);
  session_unref (session);
  g_free (pending);
}

static void
message_cb (SoupWebsocketConnection *connection,
            gint                     type,
            GBytes                  *message,
            gpointer                 user_data)
{
  Session *session = user_data;
  Ack *ack = g_new0 (Ack, 1);
  Pending *pending;

  g_queue_push_tail (&session->pending, ack);

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      g_autoptr (GError) error = g_error_new_literal (FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                                                      "Send events as JSON text messages");
      ack->reply = error_reply (error);
      flush_acks (session);
      return;
    }

  if (g_queue_get_length (&session->pending) > MAX_PENDING_ACKS)
    {
      /* A device that never waits for its acks is cut off rather than
       * allowed to queue without bound; what it sent so far is kept. */
      soup_websocket_connection_close (connection, SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION, "too many messages in flight");
      return;
    }

  pending = g_new0 (Pending, 1);
  pending->session = g_rc_box_acquire (session);
  pending->ack = ack;
  fl_ingest_submit_async (session->relay->ingest, session->device, message, g_get_monotonic_time (),
                          NULL, ingest_cb, pending);
}

static void
closed_cb (SoupWebsocketConnection *connection,
           gpointer                 user_data)
{
  Session *session = user_data;

  session->gone = TRUE;
  g_ptr_array_remove_fast (session->relay->device_sessions, session);
}

void
_fl_device_session_start (FlRelay                 *self,
                          SoupWebsocketConnection *connection,
                          FlDevice                *device)
{
  Session *session = g_rc_box_new0 (Session);

  session->relay = self;
  session->connection = g_object_ref (connection);
  session->device = g_object_ref (device);
  g_queue_init (&session->pending);

  soup_websocket_connection_set_max_incoming_payload_size (connection, self->max_body_size);
  soup_websocket_connection_set_keepalive_interval (connection, KEEPALIVE_SECONDS);
  g_signal_connect (connection, "message", G_CALLBACK (message_cb), session);
  g_signal_connect (connection, "closed", G_CALLBACK (closed_cb), session);

  g_ptr_array_add (self->device_sessions, session);

  if (fl_registry_note_alive (self->registry, device, fl_now_ms ()))
    fl_hub_publish_device (self->hub, device);
}
