/* fl-event-stream.c: the console's client of the operators' live stream.
 *
 * Relay → console (src/relay/fl-hub.c):
 *   {"type": "event", "event": {..., "seq", "receivedAt"}}
 *   {"type": "device", "device": {...}}           a status change
 *   {"type": "error", "error": {code, message}}
 *   {"type": "subscribed", "deviceIds": [...], "lastSeq"}
 *   {"type": "subscribed_alerts"}, {"type": "pong", "time"}
 * Console → relay:
 *   {"action": "subscribe_devices", "deviceIds": ["*"] | [...], "since"?}
 *   {"action": "unsubscribe_devices", "deviceIds": ["*"]}
 *   {"action": "subscribe_alerts"}, {"action": "ping"}
 *
 * Connections.  The stream has at most one primary connection (the one
 * that made it CONNECTED) and one "next" connection: either being
 * opened, or, when the primary is about to get too old for a cloud
 * gateway, open and waiting for its "subscribed" reply before it takes
 * over.  Connections that are done are detached: they close themselves
 * and free themselves once libsoup says "closed", whether or not the
 * stream is still there.
 *
 * Merging.  Every connection delivers, from where it started, every
 * matching event in seq order without a gap, so accepting an event only
 * when its seq is above the last accepted one (received_seq) leaves no
 * gap and no duplicate, however two connections interleave.
 */
#define G_LOG_DOMAIN "fl-event-stream"

#include "config.h"

#include <string.h>

#include <libsoup/soup.h>

#include "fl-client-private.h"
#include "fl-event-stream.h"

/* An event is at most the relay's body limit (1 MiB by default); a
 * device record is far smaller. */
#define MAX_INCOMING_PAYLOAD (4 * 1024 * 1024)
#define HANDSHAKE_TIMEOUT_S 30
/* a connection that lasted this long resets the backoff */
#define BACKOFF_RESET_US (30 * G_USEC_PER_SEC)
#define MAX_BACKOFF_SHIFT 20

#define CLOSE_SIGNED_OUT 4001
#define CLOSE_TOO_SLOW 4008

/* clang-format off */
G_DEFINE_ENUM_TYPE (FlEventStreamState, fl_event_stream_state,
                    G_DEFINE_ENUM_VALUE (FL_EVENT_STREAM_DISCONNECTED, "disconnected"),
                    G_DEFINE_ENUM_VALUE (FL_EVENT_STREAM_CONNECTING, "connecting"),
                    G_DEFINE_ENUM_VALUE (FL_EVENT_STREAM_CONNECTED, "connected"),
                    G_DEFINE_ENUM_VALUE (FL_EVENT_STREAM_SIGNED_OUT, "signed-out"))
/* clang-format on */

typedef struct
{
  FlEventStream           *stream; /* not a ref; NULL once detached */
  guint                    id;
  GCancellable            *cancellable;
  SoupMessage             *message;
  SoupWebsocketConnection *ws; /* NULL while connecting */
  GSource                 *handshake_timeout;
  GSource                 *ping_source;
  gint64                   opened_at; /* monotonic µs */
  gint64                   last_received;
  gint64                   last_ping;
  gboolean                 sent_since; /* its subscription had a resume point */
  gboolean                 progress;   /* it brought a new event */
} Conn;

struct _FlEventStream
{
  GObject parent_instance;

  char                  *url;
  FlEventStreamTokenFunc token_func;
  gpointer               token_data;
  GDestroyNotify         token_destroy;
  char                 **device_ids; /* NULL: all */

  SoupSession *session;
  Conn        *primary;
  Conn        *next;
  guint        next_conn_id;

  FlEventStreamState state;
  gboolean           running;
  gint64             connected_since;

  /* seq of the last event delivered, and of the last one accepted
   * (delivered or waiting in pending) */
  gint64     last_seq;
  gint64     received_seq;
  gboolean   have_resume_point;
  GPtrArray *pending; /* FlEvent, in seq order */
  gint64     last_flush;

  guint         attempt; /* backoff exponent */
  GMainContext *context; /* where everything runs */
  GSource      *retry_source;
  GSource      *age_source;
  GSource      *flush_source;

  guint batch_ms;
  guint ping_s;
  guint max_age_s;
  guint backoff_min_ms;
  guint backoff_max_ms;
};

G_DEFINE_FINAL_TYPE (FlEventStream, fl_event_stream, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_STATE,
  PROP_LAST_SEQ,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  EVENTS,
  DEVICE,
  ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void connect_now (FlEventStream *self);
static void schedule_retry (FlEventStream *self);
static void conn_lost (FlEventStream *self,
                       Conn          *conn,
                       gushort        code,
                       gboolean       closed);

/* ---- timers ------------------------------------------------------------ */

/* Timers run on the context the stream was made on (g_timeout_add would
 * use the global default context).  The stream keeps a reference to each
 * source it may have to destroy. */
static GSource *
add_timeout (GMainContext *context,
             guint         ms,
             GSourceFunc   func,
             gpointer      data,
             const char   *name)
{
  GSource *source = g_timeout_source_new (ms);

  g_source_set_callback (source, func, data, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, context);

  return source;
}

static void
clear_source (GSource **source)
{
  if (*source == NULL)
    return;

  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

/* ---- state ------------------------------------------------------------- */

static void
set_state (FlEventStream     *self,
           FlEventStreamState state)
{
  if (self->state == state)
    return;

  g_debug ("State %d → %d", self->state, state);
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static void
set_last_seq (FlEventStream *self,
              gint64         seq)
{
  if (self->last_seq == seq)
    return;

  self->last_seq = seq;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_SEQ]);
}

/* ---- connections ------------------------------------------------------- */

static void
conn_free (Conn *conn)
{
  clear_source (&conn->handshake_timeout);
  clear_source (&conn->ping_source);
  if (conn->ws != NULL)
    g_signal_handlers_disconnect_by_data (conn->ws, conn);
  g_clear_object (&conn->ws);
  g_clear_object (&conn->message);
  g_clear_object (&conn->cancellable);
  g_free (conn);
}

/* Lets go of a connection: one being opened is cancelled (the callback
 * frees it), an open one is closed and frees itself when closed. */
static void
conn_detach (Conn       *conn,
             gushort     code,
             const char *reason)
{
  conn->stream = NULL;
  clear_source (&conn->ping_source);

  if (conn->ws == NULL)
    {
      g_cancellable_cancel (conn->cancellable);
      return;
    }

  switch (soup_websocket_connection_get_state (conn->ws))
    {
    case SOUP_WEBSOCKET_STATE_OPEN:
      g_debug ("Closing connection %u (%u, %s)", conn->id, code, reason);
      soup_websocket_connection_close (conn->ws, code, reason);
      break;
    case SOUP_WEBSOCKET_STATE_CLOSING:
      break;
    case SOUP_WEBSOCKET_STATE_CLOSED:
    default:
      conn_free (conn);
      break;
    }
}

static void
send_text (Conn       *conn,
           const char *text)
{
  if (conn->ws != NULL && soup_websocket_connection_get_state (conn->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text (conn->ws, text);
}

static void
send_subscribe (FlEventStream *self,
                Conn          *conn,
                gboolean       resubscribe)
{
  g_autoptr (GString) out = g_string_new (NULL);

  if (resubscribe)
    send_text (conn, "{\"action\":\"unsubscribe_devices\",\"deviceIds\":[\"*\"]}");

  g_string_append (out, "{\"action\":\"subscribe_devices\",\"deviceIds\":[");
  if (self->device_ids == NULL)
    g_string_append (out, "\"*\"");
  else
    for (guint i = 0; self->device_ids[i] != NULL; i++)
      {
        if (i > 0)
          g_string_append_c (out, ',');
        fl_json_append_string (out, self->device_ids[i]);
      }
  g_string_append_c (out, ']');

  /* Without a resume point (the very first subscription), only live
   * events: "since": 0 would replay the whole store. */
  conn->sent_since = self->have_resume_point || self->received_seq > 0;
  if (conn->sent_since)
    {
      g_string_append (out, ",\"since\":");
      fl_json_append_int (out, self->received_seq);
    }
  g_string_append_c (out, '}');

  g_debug ("Connection %u: %s", conn->id, out->str);
  send_text (conn, out->str);
  if (!resubscribe)
    send_text (conn, "{\"action\":\"subscribe_alerts\"}");
}

/* ---- batching ---------------------------------------------------------- */

static gboolean
flush_cb (gpointer user_data)
{
  FlEventStream            *self = user_data;
  g_autoptr (FlEventStream) hold = g_object_ref (self);
  g_autoptr (GPtrArray)     batch = NULL;

  g_clear_pointer (&self->flush_source, g_source_unref);
  self->last_flush = g_get_monotonic_time ();

  if (self->pending->len == 0)
    return G_SOURCE_REMOVE;

  batch = g_steal_pointer (&self->pending);
  self->pending = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

  /* everything accepted is delivered now */
  set_last_seq (self, self->received_seq);
  g_signal_emit (self, signals[EVENTS], 0, batch);

  return G_SOURCE_REMOVE;
}

/* At most one batch per batch_ms: the first event after a quiet spell
 * goes out at once, the ones behind it wait for the interval. */
static void
schedule_flush (FlEventStream *self)
{
  gint64 now;
  gint64 due;
  guint  delay_ms = 0;

  if (self->flush_source != NULL)
    return;

  now = g_get_monotonic_time ();
  due = self->last_flush + (gint64) self->batch_ms * 1000;
  if (self->last_flush > 0 && due > now)
    delay_ms = (guint) ((due - now + 999) / 1000);

  self->flush_source = add_timeout (self->context, delay_ms, flush_cb, self, "[fl-event-stream] flush");
}

/* ---- messages from the relay ------------------------------------------- */

static void
handle_event (FlEventStream *self,
              Conn          *conn,
              JsonObject    *object)
{
  g_autoptr (GError)  error = NULL;
  g_autoptr (FlEvent) event = NULL;
  JsonObject         *inner = _fl_json_get_object (object, "event");
  gint64              seq;

  if (inner == NULL || !_fl_json_get_int (inner, "seq", &seq) || seq <= 0)
    {
      g_debug ("Connection %u: ignoring an event without a seq", conn->id);
      return;
    }

  /* already delivered, by this connection or another */
  if (seq <= self->received_seq)
    return;

  /* the REST client's reader: it also takes seq and receivedAt */
  event = _fl_client_event_from_json (json_object_get_member (object, "event"), &error);
  if (event == NULL)
    {
      g_debug ("Connection %u: ignoring event %" G_GINT64_FORMAT ": %s", conn->id, seq, error->message);
      return;
    }

  self->received_seq = seq;
  conn->progress = TRUE;
  g_ptr_array_add (self->pending, g_steal_pointer (&event));
  schedule_flush (self);
}

static void
handle_device (FlEventStream *self,
               Conn          *conn,
               JsonObject    *object)
{
  g_autoptr (GError)   error = NULL;
  g_autoptr (FlDevice) device = NULL;

  /* the REST client's validating reader (fl_device_deserialize trusts
   * its input: it is for the store's own records) */
  device = _fl_client_device_from_json (json_object_get_member (object, "device"), &error);
  if (device == NULL)
    {
      g_debug ("Connection %u: ignoring a device message: %s", conn->id, error->message);
      return;
    }

  g_signal_emit (self, signals[DEVICE], 0, device);
}

static FlClientError
client_error_for_code (const char *code)
{
  static const struct
  {
    const char   *code;
    FlClientError client_code;
  } codes[] = {
    { "unauthorized", FL_CLIENT_ERROR_UNAUTHORIZED },
    { "forbidden", FL_CLIENT_ERROR_FORBIDDEN },
    { "not_found", FL_CLIENT_ERROR_NOT_FOUND },
    { "conflict", FL_CLIENT_ERROR_CONFLICT },
    { "too_large", FL_CLIENT_ERROR_TOO_LARGE },
    { "unprocessable", FL_CLIENT_ERROR_INVALID },
    { "too_many_requests", FL_CLIENT_ERROR_TOO_MANY_REQUESTS },
    { "internal", FL_CLIENT_ERROR_SERVER },
    { "unavailable", FL_CLIENT_ERROR_SERVER },
  };

  for (guint i = 0; code != NULL && i < G_N_ELEMENTS (codes); i++)
    if (g_str_equal (code, codes[i].code))
      return codes[i].client_code;

  /* bad_request, invalid_parameter, malformed, ...: about what we sent */
  return FL_CLIENT_ERROR_BAD_REQUEST;
}

static void
handle_error (FlEventStream *self,
              Conn          *conn,
              JsonObject    *object)
{
  JsonObject        *inner = _fl_json_get_object (object, "error");
  const char        *code = _fl_json_get_string (inner, "code");
  const char        *message = _fl_json_get_string (inner, "message");
  g_autoptr (GError) error = NULL;

  if (message == NULL || *message == '\0')
    message = "The relay reported an error";
  g_debug ("Connection %u: the relay says %s: %s", conn->id, code != NULL ? code : "(no code)", message);

  error = _fl_client_error_new (client_error_for_code (code), code, 0, "%s", message);
  g_signal_emit (self, signals[ERROR], 0, error);
}

static void
promote (FlEventStream *self,
         Conn          *conn);

static void
handle_subscribed (FlEventStream *self,
                   Conn          *conn,
                   JsonObject    *object)
{
  gint64 last_seq;

  /* A subscription without a resume point starts live after the relay's
   * lastSeq: from now on that is the resume point.  (Without a lastSeq
   * there is none yet: "since": 0 would replay the whole store.) */
  if (!conn->sent_since && _fl_json_get_int (object, "lastSeq", &last_seq) && last_seq >= 0)
    {
      if (last_seq > self->received_seq)
        {
          self->received_seq = last_seq;
          if (self->pending->len == 0)
            set_last_seq (self, last_seq);
        }
      self->have_resume_point = TRUE;
    }

  /* a replacement takes over once the relay confirmed its subscription */
  if (conn == self->next && self->primary != NULL)
    promote (self, conn);
}

static void
message_cb (SoupWebsocketConnection *ws,
            gint                     type,
            GBytes                  *message,
            gpointer                 user_data)
{
  Conn                     *conn = user_data;
  FlEventStream            *self = conn->stream;
  g_autoptr (FlEventStream) hold = NULL;
  g_autoptr (JsonParser)    parser = NULL;
  g_autoptr (GError)        error = NULL;
  JsonNode                 *root;
  JsonObject               *object;
  const char               *kind;
  const char               *data;
  gsize                     length;

  conn->last_received = g_get_monotonic_time ();
  if (self == NULL)
    return;

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      g_debug ("Connection %u: ignoring a binary message", conn->id);
      return;
    }

  data = g_bytes_get_data (message, &length);
  parser = json_parser_new_immutable ();
  if (length > G_MAXSSIZE || !json_parser_load_from_data (parser, data, (gssize) length, &error) || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_debug ("Connection %u: ignoring a message that is not a JSON object", conn->id);
      return;
    }

  object = json_node_get_object (root);
  kind = _fl_json_get_string (object, "type");
  hold = g_object_ref (self);

  if (g_strcmp0 (kind, "event") == 0)
    handle_event (self, conn, object);
  else if (g_strcmp0 (kind, "device") == 0)
    handle_device (self, conn, object);
  else if (g_strcmp0 (kind, "error") == 0)
    handle_error (self, conn, object);
  else if (g_strcmp0 (kind, "subscribed") == 0)
    handle_subscribed (self, conn, object);
  else
    g_debug ("Connection %u: %s", conn->id, kind != NULL ? kind : "a message without a type");
}

static void
pong_cb (SoupWebsocketConnection *ws,
         GBytes                  *message,
         gpointer                 user_data)
{
  Conn *conn = user_data;

  conn->last_received = g_get_monotonic_time ();
}

static gboolean
ping_cb (gpointer user_data)
{
  Conn *conn = user_data;

  /* Nothing at all since the last ping, not even its pong: the peer or
   * the path is gone (a half-open TCP connection).  Move on at once; the
   * connection closes itself (libsoup gives up waiting for the peer's
   * close frame after a few seconds). */
  if (conn->last_ping > 0 && conn->last_received < conn->last_ping)
    {
      g_debug ("Connection %u: no answer to the last ping", conn->id);
      g_clear_pointer (&conn->ping_source, g_source_unref);
      conn_lost (conn->stream, conn, 0, FALSE);
      return G_SOURCE_REMOVE;
    }

  conn->last_ping = g_get_monotonic_time ();
  send_text (conn, "{\"action\":\"ping\"}");

  return G_SOURCE_CONTINUE;
}

static void
signed_out (FlEventStream *self)
{
  g_debug ("Signed out: not reconnecting");

  self->running = FALSE;
  clear_source (&self->retry_source);
  clear_source (&self->age_source);
  if (self->next != NULL)
    conn_detach (g_steal_pointer (&self->next), SOUP_WEBSOCKET_CLOSE_NORMAL, "signed out");
  if (self->primary != NULL)
    conn_detach (g_steal_pointer (&self->primary), SOUP_WEBSOCKET_CLOSE_NORMAL, "signed out");
  self->connected_since = 0;
  /* events already received are still delivered (flush_source stays) */
  set_state (self, FL_EVENT_STREAM_SIGNED_OUT);
}

/* A connection of the stream ended (code: the relay's close code, or 0):
 * take it out, let it go, and decide what comes next. */
static void
conn_lost (FlEventStream *self,
           Conn          *conn,
           gushort        code,
           gboolean       closed)
{
  g_autoptr (FlEventStream) hold = g_object_ref (self);
  gint64                    lasted = g_get_monotonic_time () - conn->opened_at;
  gboolean                  progress = conn->progress;

  if (conn == self->next)
    self->next = NULL;
  else if (conn == self->primary)
    {
      self->primary = NULL;
      self->connected_since = 0;
      clear_source (&self->age_source);
    }

  if (closed)
    conn_free (conn);
  else
    conn_detach (conn, SOUP_WEBSOCKET_CLOSE_NORMAL, "no answer");

  if (lasted > BACKOFF_RESET_US)
    self->attempt = 0;

  if (code == CLOSE_SIGNED_OUT)
    {
      signed_out (self);
      return;
    }

  if (self->primary != NULL)
    {
      /* the replacement failed; the primary carries on */
      schedule_retry (self);
      return;
    }

  if (self->next != NULL)
    {
      /* the primary went first: the replacement takes over now if it is
       * open (it resumes with since), or once it opens */
      if (self->next->ws != NULL)
        promote (self, self->next);
      else
        set_state (self, FL_EVENT_STREAM_CONNECTING);
      return;
    }

  /* too slow: the store has everything; resume at once unless the
   * connection got nowhere */
  if (code == CLOSE_TOO_SLOW && (progress || lasted > BACKOFF_RESET_US) && self->running)
    {
      connect_now (self);
      return;
    }

  schedule_retry (self);
}

static void
closed_cb (SoupWebsocketConnection *ws,
           gpointer                 user_data)
{
  Conn          *conn = user_data;
  FlEventStream *self = conn->stream;
  gushort        code = soup_websocket_connection_get_close_code (ws);

  g_debug ("Connection %u closed (%u)", conn->id, code);

  if (self == NULL)
    conn_free (conn);
  else
    conn_lost (self, conn, code, TRUE);
}

static gboolean
age_cb (gpointer user_data)
{
  FlEventStream *self = user_data;

  g_clear_pointer (&self->age_source, g_source_unref);
  if (self->next == NULL && self->running)
    {
      g_debug ("Connection %u is old: opening its replacement", self->primary->id);
      connect_now (self);
    }

  return G_SOURCE_REMOVE;
}

static void
promote (FlEventStream *self,
         Conn          *conn)
{
  g_assert (conn == self->next);

  self->next = NULL;
  if (self->primary != NULL)
    {
      g_debug ("Connection %u replaces %u", conn->id, self->primary->id);
      if (g_get_monotonic_time () - self->primary->opened_at > BACKOFF_RESET_US)
        self->attempt = 0;
      conn_detach (g_steal_pointer (&self->primary), SOUP_WEBSOCKET_CLOSE_NORMAL, "replaced");
    }

  self->primary = conn;
  self->connected_since = conn->opened_at;

  clear_source (&self->age_source);
  if (self->max_age_s > 0)
    self->age_source = add_timeout (self->context, self->max_age_s * 1000, age_cb, self,
                                    "[fl-event-stream] max age");

  set_state (self, FL_EVENT_STREAM_CONNECTED);
}

static void
conn_open (FlEventStream           *self,
           Conn                    *conn,
           SoupWebsocketConnection *ws)
{
  conn->ws = ws;
  conn->opened_at = conn->last_received = g_get_monotonic_time ();

  soup_websocket_connection_set_max_incoming_payload_size (ws, MAX_INCOMING_PAYLOAD);
  soup_websocket_connection_set_keepalive_interval (ws, self->ping_s);
  g_signal_connect (ws, "message", G_CALLBACK (message_cb), conn);
  g_signal_connect (ws, "pong", G_CALLBACK (pong_cb), conn);
  g_signal_connect (ws, "closed", G_CALLBACK (closed_cb), conn);

  /* JSON pings, not only WebSocket ones: cloud gateways count only data
   * frames as activity */
  if (self->ping_s > 0)
    conn->ping_source = add_timeout (self->context, self->ping_s * 1000, ping_cb, conn,
                                     "[fl-event-stream] ping");

  send_subscribe (self, conn, FALSE);
}

static void
connect_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  Conn                     *conn = user_data;
  FlEventStream            *self = conn->stream;
  g_autoptr (FlEventStream) hold = NULL;
  g_autoptr (GError)        error = NULL;
  SoupWebsocketConnection  *ws;

  clear_source (&conn->handshake_timeout);
  ws = soup_session_websocket_connect_finish (SOUP_SESSION (object), result, &error);

  if (self == NULL)
    {
      /* detached while connecting */
      if (ws != NULL)
        {
          conn->ws = ws;
          g_signal_connect (ws, "closed", G_CALLBACK (closed_cb), conn);
          soup_websocket_connection_close (ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
        }
      else
        conn_free (conn);
      return;
    }

  hold = g_object_ref (self);
  g_assert (conn == self->next);

  if (ws == NULL)
    {
      g_debug ("Connection %u failed (HTTP %u): %s", conn->id,
               soup_message_get_status (conn->message), error->message);
      self->next = NULL;
      conn_free (conn);
      schedule_retry (self);
      return;
    }

  g_debug ("Connection %u open", conn->id);
  conn_open (self, conn, ws);

  /* A first connection is the stream at once; a replacement waits for
   * its "subscribed" reply (handle_subscribed).  It may have closed
   * already if the subscription failed. */
  if (conn == self->next && self->primary == NULL)
    promote (self, conn);
}

static gboolean
handshake_timeout_cb (gpointer user_data)
{
  Conn *conn = user_data;

  g_clear_pointer (&conn->handshake_timeout, g_source_unref);
  g_debug ("Connection %u: no handshake after %d s", conn->id, HANDSHAKE_TIMEOUT_S);
  g_cancellable_cancel (conn->cancellable);

  return G_SOURCE_REMOVE;
}

static char *
http_url (const char *url)
{
  /* libsoup wants the http(s) form of the address for the upgrade */
  if (g_ascii_strncasecmp (url, "wss:", 4) == 0)
    return g_strconcat ("https:", url + 4, NULL);
  if (g_ascii_strncasecmp (url, "ws:", 3) == 0)
    return g_strconcat ("http:", url + 3, NULL);
  return g_strdup (url);
}

static void
connect_now (FlEventStream *self)
{
  g_autofree char *uri = http_url (self->url);
  g_autofree char *token = NULL;
  Conn            *conn;

  clear_source (&self->retry_source);
  if (self->next != NULL || !self->running)
    return;

  if (self->token_func != NULL)
    token = self->token_func (self->token_data);
  if (!self->running || self->next != NULL)
    return; /* the token function stopped us */

  conn = g_new0 (Conn, 1);
  conn->stream = self;
  conn->id = ++self->next_conn_id;
  conn->cancellable = g_cancellable_new ();
  conn->message = soup_message_new ("GET", uri);

  if (conn->message == NULL)
    {
      g_warning ("Not a valid WebSocket URL: %s", self->url);
      conn_free (conn);
      schedule_retry (self);
      return;
    }

  if (token != NULL && *token != '\0')
    {
      g_autofree char *authorization = g_strconcat ("Bearer ", token, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (conn->message),
                                    "Authorization", authorization);
    }

  g_debug ("Connection %u to %s%s", conn->id, self->url, self->primary != NULL ? " (replacement)" : "");
  self->next = conn;
  conn->handshake_timeout = add_timeout (self->context, HANDSHAKE_TIMEOUT_S * 1000, handshake_timeout_cb, conn,
                                         "[fl-event-stream] handshake timeout");
  soup_session_websocket_connect_async (self->session, conn->message, NULL, NULL,
                                        G_PRIORITY_DEFAULT, conn->cancellable,
                                        connect_cb, conn);

  if (self->primary == NULL)
    set_state (self, FL_EVENT_STREAM_CONNECTING);
}

/* Exponential backoff with "equal jitter": attempt n waits between half
 * of min·2ⁿ and min·2ⁿ, capped at max, and never less than min. */
static guint
backoff_delay (FlEventStream *self)
{
  guint64 cap = self->backoff_min_ms;
  guint64 low;

  for (guint i = 0; i < MIN (self->attempt, MAX_BACKOFF_SHIFT) && cap < self->backoff_max_ms; i++)
    cap *= 2;
  cap = MIN (cap, self->backoff_max_ms);
  low = MAX (cap / 2, self->backoff_min_ms);
  if (low >= cap)
    return (guint) cap;

  return (guint) g_random_int_range ((gint32) low, (gint32) cap + 1);
}

static gboolean
retry_cb (gpointer user_data)
{
  FlEventStream *self = user_data;

  g_clear_pointer (&self->retry_source, g_source_unref);
  connect_now (self);

  return G_SOURCE_REMOVE;
}

static void
schedule_retry (FlEventStream *self)
{
  guint delay;

  if (!self->running)
    return;

  if (self->primary == NULL && self->next == NULL)
    {
      self->connected_since = 0;
      set_state (self, FL_EVENT_STREAM_DISCONNECTED);
      if (!self->running)
        return;
    }

  if (self->retry_source != NULL)
    return;

  delay = backoff_delay (self);
  self->attempt = MIN (self->attempt + 1, MAX_BACKOFF_SHIFT);
  g_debug ("Reconnecting in %u ms", delay);
  self->retry_source = add_timeout (self->context, delay, retry_cb, self, "[fl-event-stream] retry");
}

/* ---- the object -------------------------------------------------------- */

static void
stop_everything (FlEventStream *self)
{
  self->running = FALSE;
  clear_source (&self->retry_source);
  clear_source (&self->age_source);
  clear_source (&self->flush_source);
  if (self->next != NULL)
    conn_detach (g_steal_pointer (&self->next), SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  if (self->primary != NULL)
    conn_detach (g_steal_pointer (&self->primary), SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  self->connected_since = 0;

  /* what was not delivered is asked for again after a restart */
  if (self->pending != NULL)
    g_ptr_array_set_size (self->pending, 0);
  self->received_seq = self->last_seq;
}

static void
fl_event_stream_dispose (GObject *object)
{
  FlEventStream *self = FL_EVENT_STREAM (object);

  stop_everything (self);

  if (self->token_destroy != NULL)
    g_clear_pointer (&self->token_data, self->token_destroy);
  self->token_data = NULL;
  self->token_func = NULL;
  self->token_destroy = NULL;

  g_clear_object (&self->session);

  G_OBJECT_CLASS (fl_event_stream_parent_class)->dispose (object);
}

static void
fl_event_stream_finalize (GObject *object)
{
  FlEventStream *self = FL_EVENT_STREAM (object);

  g_clear_pointer (&self->url, g_free);
  g_clear_pointer (&self->device_ids, g_strfreev);
  g_clear_pointer (&self->pending, g_ptr_array_unref);
  g_clear_pointer (&self->context, g_main_context_unref);

  G_OBJECT_CLASS (fl_event_stream_parent_class)->finalize (object);
}

static void
fl_event_stream_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  FlEventStream *self = FL_EVENT_STREAM (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_LAST_SEQ:
      g_value_set_int64 (value, self->last_seq);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_event_stream_class_init (FlEventStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_event_stream_dispose;
  object_class->finalize = fl_event_stream_finalize;
  object_class->get_property = fl_event_stream_get_property;

  properties[PROP_STATE] = g_param_spec_enum ("state", NULL, NULL,
                                              FL_TYPE_EVENT_STREAM_STATE, FL_EVENT_STREAM_DISCONNECTED,
                                              G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_LAST_SEQ] = g_param_spec_int64 ("last-seq", NULL, NULL,
                                                  0, G_MAXINT64, 0,
                                                  G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * FlEventStream::events:
   * @events: (element-type FlEvent): events, in seq order
   *
   * New events, at most once per batch interval.
   */
  signals[EVENTS] = g_signal_new ("events", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                  G_TYPE_PTR_ARRAY | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * FlEventStream::device:
   * @device: the device, as the relay sent it
   *
   * A device's status or record changed.
   */
  signals[DEVICE] = g_signal_new ("device", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, FL_TYPE_DEVICE);

  /**
   * FlEventStream::error:
   * @error: what the relay said, in FL_CLIENT_ERROR (with its API code)
   *
   * The relay sent an error message; informational, the stream goes on.
   */
  signals[ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                 0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                 G_TYPE_ERROR | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
fl_event_stream_init (FlEventStream *self)
{
  self->pending = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  self->context = g_main_context_ref_thread_default ();
  self->session = soup_session_new_with_options ("user-agent", "fieldline/" PACKAGE_VERSION, NULL);
  self->batch_ms = FL_EVENT_STREAM_DEFAULT_BATCH_MS;
  self->ping_s = FL_EVENT_STREAM_DEFAULT_PING_S;
  self->max_age_s = FL_EVENT_STREAM_DEFAULT_MAX_AGE_S;
  self->backoff_min_ms = FL_EVENT_STREAM_DEFAULT_BACKOFF_MIN_MS;
  self->backoff_max_ms = FL_EVENT_STREAM_DEFAULT_BACKOFF_MAX_MS;
}

/**
 * fl_event_stream_new:
 * @websocket_url: the /events socket, ws(s)://host:port/events
 * @token_func: (scope notified) (nullable): gives the bearer token
 * @user_data: (closure token_func)
 * @destroy: (destroy token_func) (nullable)
 *
 * Returns: (transfer full): a stopped stream
 */
FlEventStream *
fl_event_stream_new (const char            *websocket_url,
                     FlEventStreamTokenFunc token_func,
                     gpointer               user_data,
                     GDestroyNotify         destroy)
{
  FlEventStream *self;

  g_return_val_if_fail (websocket_url != NULL, NULL);

  self = g_object_new (FL_TYPE_EVENT_STREAM, NULL);
  self->url = g_strdup (websocket_url);
  self->token_func = token_func;
  self->token_data = user_data;
  self->token_destroy = destroy;

  return self;
}

void
fl_event_stream_set_url (FlEventStream *self,
                         const char    *websocket_url)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));
  g_return_if_fail (websocket_url != NULL);

  if (g_strcmp0 (self->url, websocket_url) == 0)
    return;

  g_free (self->url);
  self->url = g_strdup (websocket_url);

  /* waiting to reconnect to the old address: try the new one now */
  fl_event_stream_reconnect (self);
}

/**
 * fl_event_stream_reconnect:
 *
 * A stream waiting out its backoff after losing its connection tries
 * again at once, with the backoff reset: what a caller does when it
 * learns the server answers again (a REST call succeeded).  Nothing
 * happens when the stream is connected, connecting or stopped.
 */
void
fl_event_stream_reconnect (FlEventStream *self)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));

  if (self->running && self->primary == NULL && self->next == NULL)
    {
      self->attempt = 0;
      connect_now (self);
    }
}

void
fl_event_stream_set_since (FlEventStream *self,
                           gint64         seq)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));
  g_return_if_fail (seq >= 0);

  g_ptr_array_set_size (self->pending, 0);
  clear_source (&self->flush_source);
  self->received_seq = seq;
  self->have_resume_point = seq > 0;
  set_last_seq (self, seq);
}

gint64
fl_event_stream_get_last_seq (FlEventStream *self)
{
  g_return_val_if_fail (FL_IS_EVENT_STREAM (self), 0);

  return self->last_seq;
}

void
fl_event_stream_set_devices (FlEventStream     *self,
                             const char *const *device_ids)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));

  g_clear_pointer (&self->device_ids, g_strfreev);
  if (device_ids != NULL)
    {
      gboolean all = FALSE;

      for (guint i = 0; device_ids[i] != NULL; i++)
        all |= g_str_equal (device_ids[i], "*");
      if (!all)
        self->device_ids = g_strdupv ((char **) device_ids);
    }

  if (self->primary != NULL)
    send_subscribe (self, self->primary, TRUE);
  if (self->next != NULL && self->next->ws != NULL)
    send_subscribe (self, self->next, TRUE);
}

void
fl_event_stream_start (FlEventStream *self)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));

  if (self->running)
    return;

  self->running = TRUE;
  self->attempt = 0;
  connect_now (self);
}

void
fl_event_stream_stop (FlEventStream *self)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));

  stop_everything (self);
  set_state (self, FL_EVENT_STREAM_DISCONNECTED);
}

FlEventStreamState
fl_event_stream_get_state (FlEventStream *self)
{
  g_return_val_if_fail (FL_IS_EVENT_STREAM (self), FL_EVENT_STREAM_DISCONNECTED);

  return self->state;
}

gint64
fl_event_stream_get_connected_since (FlEventStream *self)
{
  g_return_val_if_fail (FL_IS_EVENT_STREAM (self), 0);

  return self->connected_since;
}

void
fl_event_stream_set_timing (FlEventStream *self,
                            guint          batch_ms,
                            guint          ping_s,
                            guint          max_age_s,
                            guint          backoff_min_ms,
                            guint          backoff_max_ms)
{
  g_return_if_fail (FL_IS_EVENT_STREAM (self));
  g_return_if_fail (backoff_min_ms > 0);
  g_return_if_fail (backoff_min_ms <= backoff_max_ms);
  g_return_if_fail (backoff_max_ms <= G_MAXINT32 - 1);
  g_return_if_fail (ping_s <= G_MAXUINT / 1000 && max_age_s <= G_MAXUINT / 1000);

  self->batch_ms = batch_ms;
  self->ping_s = ping_s;
  self->max_age_s = max_age_s;
  self->backoff_min_ms = backoff_min_ms;
  self->backoff_max_ms = backoff_max_ms;
}
