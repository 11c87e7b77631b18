/* fl-device-session.c: one device's WebSocket (GET /device).
 *
 * Each text message is one event, an array or NDJSON, ingested like a
 * POST /ingest body; every message is answered, in order, with
 * {"type": "ack", "accepted", "duplicates", "rejected"} once its events
 * are committed (or {"type": "ack", "error": {...}} when it was refused
 * as a whole).
 *
 * Why not SoupWebsocketConnection: libsoup 3.2's connection destroys its
 * input GSource at every read and attaches a new one afterwards, and it
 * keeps a keepalive timeout source per connection.  GLib 2.74 keeps a
 * context's poll records in one list sorted by fd, so each attach and
 * destroy walks it, and every main loop iteration prepares, polls and
 * checks every source: with 10,000 device connections the relay spent
 * most of its time in g_main_context_add_poll/remove_poll, prepare and
 * check.  Here libsoup does the handshake and hands over the connection;
 * every device socket then sits in one epoll set, and the main context
 * sees a single fd (the epoll one) and a single one-second tick,
 * whatever the number of devices.  Frames are parsed from one shared
 * read buffer; a session keeps bytes only for a partial frame, unsent
 * output or a fragmented message.
 *
 * Back-pressure: a session stops reading its socket while
 * SESSION_MAX_IN_FLIGHT of its messages wait for the store or
 * SESSION_MAX_UNSENT bytes of acks wait for the device to read them, and
 * every session stops while the bodies in flight from all devices add up
 * to poller->max_in_flight_bytes; the ones stopped for the latter resume
 * in order.  A flooding device gets its acks later; nothing is dropped.
 *
 * Plain connections keep only the fd (a dup; libsoup's stream objects are
 * closed and freed).  TLS connections keep their GIOStream and read and
 * write through it, with the socket's fd in the epoll set. */
#define G_LOG_DOMAIN "fl-device-session"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>

#include "fl-relay-private.h"

#define KEEPALIVE_SECONDS 30
#define CLOSE_TIMEOUT_SECONDS 5
#define SESSION_MAX_IN_FLIGHT 32       /* messages at the store */
#define SESSION_MAX_UNSENT (64 * 1024) /* ack bytes not yet written */
#define DEFAULT_MAX_IN_FLIGHT_BYTES (4 * 1024 * 1024)
#define READ_CHUNK (64 * 1024)
#define MAX_EPOLL_EVENTS 256

enum
{
  OP_CONTINUATION = 0x0,
  OP_TEXT = 0x1,
  OP_BINARY = 0x2,
  OP_CLOSE = 0x8,
  OP_PING = 0x9,
  OP_PONG = 0xa,
};

typedef enum
{
  STATE_OPEN,
  STATE_CLOSING, /* our close frame is queued or sent */
  STATE_CLOSED,  /* the fd is closed */
} State;

struct _FlDevicePoller
{
  FlRelay *relay; /* not a ref; NULL once the relay is gone */
  int      epfd;
  GSource *source;
  guint    tick_source;
  GQueue   sessions; /* Session, with an open fd */
  GQueue   starved;  /* Session, stopped by the total in flight, in order */
  guint8  *buf;      /* the shared read buffer, READ_CHUNK */

  gsize max_in_flight_bytes;
  guint session_max_in_flight;
  gsize in_flight_bytes;
  gsize peak_in_flight_bytes;
  guint in_flight_messages;
  guint peak_in_flight_messages;
};

typedef struct
{
  FlDevicePoller *poller; /* a ref */
  FlDevice       *device;
  GIOStream      *stream; /* TLS only */
  int             fd;
  State           state;
  guint32         events; /* the epoll interest */
  gboolean        listed; /* in relay->device_sessions */
  gboolean        close_received;
  gboolean        reading;

  GByteArray *in;      /* bytes of a partial frame (or not yet parsed) */
  GByteArray *message; /* the fragments of a message so far */
  guint8      message_opcode;
  GByteArray *out; /* bytes not yet written */
  gsize       out_sent;

  GQueue pending; /* Ack, in message order */
  guint  in_flight;
  gsize  in_flight_bytes;

  GList  all_link;     /* in poller->sessions */
  GList  starved_link; /* in poller->starved */
  gint64 last_rx_us;
  gint64 last_ping_us;
  gint64 closing_since_us;
} Session;

typedef struct
{
  GString *reply; /* NULL until answered */
} Ack;

static void session_read (Session *session);
static void session_flush (Session *session);

/* ---- life cycle -------------------------------------------------------- */

static FlDevicePoller *
poller_ref (FlDevicePoller *poller)
{
  return g_rc_box_acquire (poller);
}

static void
poller_clear (FlDevicePoller *poller)
{
  g_free (poller->buf);
}

static void
poller_unref (FlDevicePoller *poller)
{
  g_rc_box_release_full (poller, (GDestroyNotify) poller_clear);
}

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
  g_assert (session->state == STATE_CLOSED);
  g_clear_object (&session->device);
  g_clear_pointer (&session->in, g_byte_array_unref);
  g_clear_pointer (&session->message, g_byte_array_unref);
  g_clear_pointer (&session->out, g_byte_array_unref);
  g_queue_clear_full (&session->pending, (GDestroyNotify) ack_free);
  g_clear_pointer (&session->poller, poller_unref);
}

static Session *
session_ref (Session *session)
{
  return g_rc_box_acquire (session);
}

static void
session_unref (Session *session)
{
  g_rc_box_release_full (session, (GDestroyNotify) session_clear);
}

static void
set_events (Session *session,
            guint32  events)
{
  struct epoll_event event = { .events = events, .data.ptr = session };

  if (session->state == STATE_CLOSED || session->events == events)
    return;
  if (epoll_ctl (session->poller->epfd, EPOLL_CTL_MOD, session->fd, &event) != 0)
    g_warning ("epoll_ctl: %s", g_strerror (errno));
  session->events = events;
}

static void
unstarve (Session *session)
{
  if (session->starved_link.data != NULL)
    {
      g_queue_unlink (&session->poller->starved, &session->starved_link);
      session->starved_link.data = NULL;
    }
}

/* Closes the fd now; what is unsent is dropped. */
static void
session_close_now (Session *session)
{
  FlDevicePoller *poller = session->poller;

  if (session->state == STATE_CLOSED)
    return;
  session->state = STATE_CLOSED;

  epoll_ctl (poller->epfd, EPOLL_CTL_DEL, session->fd, NULL);
  if (session->stream != NULL)
    {
      g_io_stream_close_async (session->stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      g_clear_object (&session->stream);
    }
  else
    close (session->fd);
  session->fd = -1;

  unstarve (session);
  g_queue_unlink (&poller->sessions, &session->all_link);
  g_clear_pointer (&session->out, g_byte_array_unref);
  g_clear_pointer (&session->in, g_byte_array_unref);
  g_clear_pointer (&session->message, g_byte_array_unref);

  /* the relay's list lets go of it (and its ref) */
  if (session->listed && poller->relay != NULL && poller->relay->device_sessions != NULL)
    g_ptr_array_remove_fast (poller->relay->device_sessions, session);

  session_unref (session); /* the fd's */
}

/* ---- writing ------------------------------------------------------------ */

static gssize
raw_write (Session      *session,
           const guint8 *data,
           gsize         len)
{
  if (session->stream != NULL)
    {
      GOutputStream     *output = g_io_stream_get_output_stream (session->stream);
      g_autoptr (GError) error = NULL;
      gssize             n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (output), data, len, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return 0;
      if (n < 0)
        g_debug ("write: %s", error->message);
      return n;
    }
  else
    {
      gssize n;

      do
        n = send (session->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);

      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
      return n;
    }
}

static gsize
unsent (Session *session)
{
  return session->out != NULL ? session->out->len - session->out_sent : 0;
}

static gboolean session_may_read (Session *session);

static void
update_interest (Session *session)
{
  guint32 events = 0;

  if (session->state == STATE_CLOSED)
    return;
  if (session_may_read (session))
    events |= EPOLLIN | EPOLLRDHUP;
  if (unsent (session) > 0)
    events |= EPOLLOUT;
  set_events (session, events);
}

/* Queues a frame and writes what the socket takes now. */
static void
send_frame (Session      *session,
            guint8        opcode,
            const guint8 *payload,
            gsize         len)
{
  guint8 header[10];
  gsize  header_len;

  if (session->state == STATE_CLOSED)
    return;

  header[0] = 0x80 | opcode;
  if (len < 126)
    {
      header[1] = len;
      header_len = 2;
    }
  else if (len <= G_MAXUINT16)
    {
      header[1] = 126;
      header[2] = len >> 8;
      header[3] = len & 0xff;
      header_len = 4;
    }
  else
    {
      header[1] = 127;
      for (guint i = 0; i < 8; i++)
        header[2 + i] = ((guint64) len >> (56 - 8 * i)) & 0xff;
      header_len = 10;
    }

  if (session->out == NULL)
    {
      session->out = g_byte_array_sized_new (header_len + len);
      session->out_sent = 0;
    }
  g_byte_array_append (session->out, header, header_len);
  if (len > 0)
    g_byte_array_append (session->out, payload, len);

  session_flush (session);
}

static void
maybe_resume (Session *session);

static void
session_flush (Session *session)
{
  while (unsent (session) > 0)
    {
      gssize n = raw_write (session, session->out->data + session->out_sent, unsent (session));

      if (n < 0)
        {
          session_close_now (session);
          return;
        }
      if (n == 0)
        break;
      session->out_sent += n;
    }

  if (unsent (session) == 0)
    {
      g_clear_pointer (&session->out, g_byte_array_unref);
      session->out_sent = 0;

      /* A server closes the TCP connection once both close frames went. */
      if (session->state == STATE_CLOSING && session->close_received)
        {
          session_close_now (session);
          return;
        }
    }

  update_interest (session);
  maybe_resume (session);
}

static void
send_close (Session    *session,
            gushort     code,
            const char *reason)
{
  guint8 payload[125];
  gsize  len = 0;

  if (session->state != STATE_OPEN)
    return;

  if (code != 0)
    {
      gsize reason_len = reason != NULL ? MIN (strlen (reason), sizeof payload - 2) : 0;

      payload[0] = code >> 8;
      payload[1] = code & 0xff;
      if (reason_len > 0)
        memcpy (payload + 2, reason, reason_len);
      len = 2 + reason_len;
    }

  send_frame (session, OP_CLOSE, payload, len);
  if (session->state == STATE_CLOSED)
    return;
  session->state = STATE_CLOSING;
  session->closing_since_us = g_get_monotonic_time ();
  unstarve (session);
  g_clear_pointer (&session->message, g_byte_array_unref);
  if (session->close_received && unsent (session) == 0)
    session_close_now (session);
  else
    update_interest (session);
}

/* ---- acks ---------------------------------------------------------------- */

static void
flush_acks (Session *session)
{
  Ack *ack;

  while ((ack = g_queue_peek_head (&session->pending)) != NULL && ack->reply != NULL)
    {
      g_queue_pop_head (&session->pending);
      if (session->state == STATE_OPEN)
        send_frame (session, OP_TEXT, (const guint8 *) ack->reply->str, ack->reply->len);
      ack_free (ack);
    }
}

static GString *
error_reply (const GError *error)
{
  GString *out = g_string_new ("{\"type\":\"ack\",\"error\":");

  fl_api_error_append_object (error, out);
  g_string_append_c (out, '}');

  return out;
}

typedef struct
{
  Session *session;
  Ack     *ack;
  gsize    size;
} Pending;

static void resume_starved (FlDevicePoller *poller);

static void
ingest_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Pending           *pending = user_data;
  Session           *session = pending->session;
  FlDevicePoller    *poller = session->poller;
  g_autoptr (GError) error = NULL;
  GString           *reply;

  session->in_flight--;
  session->in_flight_bytes -= pending->size;
  poller->in_flight_messages--;
  poller->in_flight_bytes -= pending->size;

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
  maybe_resume (session);
  resume_starved (poller);

  session_unref (session);
  g_free (pending);
}

/* ---- reading ------------------------------------------------------------- */

static gboolean
session_may_read (Session *session)
{
  FlDevicePoller *poller = session->poller;

  if (session->state == STATE_CLOSING)
    return !session->close_received; /* for the peer's close frame */
  if (session->state != STATE_OPEN)
    return FALSE;

  return session->in_flight < poller->session_max_in_flight && unsent (session) < SESSION_MAX_UNSENT && poller->in_flight_bytes < poller->max_in_flight_bytes && session->starved_link.data == NULL;
}

/* Reads again if the session was stopped and may go on. */
static void
maybe_resume (Session *session)
{
  if (session->state == STATE_CLOSED || session->reading || !session_may_read (session))
    return;

  if (!(session->events & EPOLLIN) || session->in != NULL || session->stream != NULL)
    {
      /* what was left unparsed (or is buffered in TLS) does not wake epoll */
      session_read (session);
    }
}

static void
resume_starved (FlDevicePoller *poller)
{
  while (poller->starved.head != NULL && poller->in_flight_bytes < poller->max_in_flight_bytes)
    {
      Session *session = poller->starved.head->data;

      unstarve (session);
      session_ref (session);
      maybe_resume (session);
      update_interest (session);
      session_unref (session);
    }
}

static void
fail (Session    *session,
      gushort     code,
      const char *reason)
{
  g_debug ("closing %s's channel: %s", fl_device_get_device_id (session->device), reason);
  send_close (session, code, reason);
}

static void
deliver (Session      *session,
         guint8        opcode,
         const guint8 *data,
         gsize         len)
{
  FlDevicePoller    *poller = session->poller;
  Ack               *ack;
  Pending           *pending;
  g_autoptr (GBytes) message = NULL;

  if (session->state != STATE_OPEN || poller->relay == NULL)
    return;

  if (opcode == OP_TEXT && !g_utf8_validate_len ((const char *) data, len, NULL))
    {
      fail (session, SOUP_WEBSOCKET_CLOSE_BAD_DATA, "Text is not valid UTF-8");
      return;
    }

  ack = g_new0 (Ack, 1);
  g_queue_push_tail (&session->pending, ack);

  if (opcode != OP_TEXT)
    {
      g_autoptr (GError) error = g_error_new_literal (FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                                                      "Send events as JSON text messages");
      ack->reply = error_reply (error);
      flush_acks (session);
      return;
    }

  message = g_bytes_new (data, len);
  pending = g_new0 (Pending, 1);
  pending->session = session_ref (session);
  pending->ack = ack;
  pending->size = len;
  session->in_flight++;
  session->in_flight_bytes += len;
  poller->in_flight_messages++;
  poller->in_flight_bytes += len;
  poller->peak_in_flight_bytes = MAX (poller->peak_in_flight_bytes, poller->in_flight_bytes);
  poller->peak_in_flight_messages = MAX (poller->peak_in_flight_messages, poller->in_flight_messages);

  fl_ingest_submit_async (poller->relay->ingest, session->device, message, g_get_monotonic_time (),
                          NULL, ingest_cb, pending);
}

static void
handle_close_frame (Session      *session,
                    const guint8 *payload,
                    gsize         len)
{
  gushort code = len >= 2 ? (payload[0] << 8) | payload[1] : 0;

  session->close_received = TRUE;
  if (session->state == STATE_OPEN)
    {
      /* echo its code */
      send_close (session, code != 0 ? code : SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      return;
    }
  if (session->state == STATE_CLOSING && unsent (session) == 0)
    session_close_now (session);
}

static void
handle_frame (Session *session,
              gboolean fin,
              guint8   opcode,
              guint8  *payload,
              gsize    len)
{
  FlDevicePoller *poller = session->poller;
  gsize           max = poller->relay != NULL ? poller->relay->max_body_size : 0;

  switch (opcode)
    {
    case OP_PING:
      if (session->state == STATE_OPEN)
        send_frame (session, OP_PONG, payload, len);
      return;
    case OP_PONG:
      return;
    case OP_CLOSE:
      handle_close_frame (session, payload, len);
      return;
    case OP_TEXT:
    case OP_BINARY:
      if (session->message != NULL)
        {
          fail (session, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, "A new message inside a fragmented one");
          return;
        }
      if (fin)
        {
          deliver (session, opcode, payload, len);
          return;
        }
      session->message = g_byte_array_sized_new (len);
      session->message_opcode = opcode;
      g_byte_array_append (session->message, payload, len);
      return;
    case OP_CONTINUATION:
      if (session->message == NULL)
        {
          fail (session, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, "A continuation without a message");
          return;
        }
      if (max > 0 && session->message->len + len >= max)
        {
          fail (session, SOUP_WEBSOCKET_CLOSE_TOO_BIG, "Message too big");
          return;
        }
      g_byte_array_append (session->message, payload, len);
      if (fin)
        {
          g_autoptr (GByteArray) message = g_steal_pointer (&session->message);

          deliver (session, session->message_opcode, message->data, message->len);
        }
      return;
    default:
      fail (session, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, "Unknown opcode");
      return;
    }
}

/* Parses and handles the whole frames at the start of data; returns the
 * bytes used.  Stops early once the session may not read on. */
static gsize
parse_frames (Session *session,
              guint8  *data,
              gsize    len)
{
  gsize at = 0;

  while (session->state != STATE_CLOSED && session_may_read (session))
    {
      guint8  *frame = data + at;
      gsize    avail = len - at;
      gsize    header_len = 2;
      guint64  payload_len;
      gboolean fin;
      guint8   opcode;
      gsize    max = session->poller->relay != NULL ? session->poller->relay->max_body_size : 0;

      if (avail < 2)
        break;

      fin = (frame[0] & 0x80) != 0;
      opcode = frame[0] & 0x0f;
      payload_len = frame[1] & 0x7f;

      if ((frame[0] & 0x70) != 0 || (frame[1] & 0x80) == 0)
        {
          /* no extensions were agreed; a client masks every frame */
          fail (session, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, "Reserved bits set or frame not masked");
          return len;
        }
      if (opcode >= 0x8 && (!fin || payload_len > 125))
        {
          fail (session, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, "Bad control frame");
          return len;
        }

      if (payload_len == 126)
        {
          if (avail < 4)
            break;
          payload_len = ((guint64) frame[2] << 8) | frame[3];
          header_len = 4;
        }
      else if (payload_len == 127)
        {
          if (avail < 10)
            break;
          payload_len = 0;
          for (guint i = 0; i < 8; i++)
            payload_len = (payload_len << 8) | frame[2 + i];
          header_len = 10;
        }

      if (max > 0 && payload_len >= max)
        {
          fail (session, SOUP_WEBSOCKET_CLOSE_TOO_BIG, "Message too big");
          return len;
        }

      header_len += 4; /* the mask */
      if (avail < header_len + payload_len)
        break;

      {
        const guint8 *mask = frame + header_len - 4;
        guint8       *payload = frame + header_len;

        for (gsize i = 0; i < payload_len; i++)
          payload[i] ^= mask[i & 3];

        at += header_len + payload_len;
        handle_frame (session, fin, opcode, payload, payload_len);
      }
    }

  return at;
}

/* Parses what it can of data (the shared buffer or session->in) and
 * keeps the rest in session->in. */
static void
consume (Session *session,
         guint8  *data,
         gsize    len,
         gboolean from_in)
{
  gsize used = parse_frames (session, data, len);

  if (session->state == STATE_CLOSED)
    return;

  if (from_in)
    {
      if (used >= session->in->len)
        g_clear_pointer (&session->in, g_byte_array_unref);
      else if (used > 0)
        g_byte_array_remove_range (session->in, 0, used);
    }
  else if (used < len)
    {
      session->in = g_byte_array_sized_new (len - used);
      g_byte_array_append (session->in, data + used, len - used);
    }
}

/* Returns bytes read, 0 at end of file, -1 when nothing is there now and
 * -2 on errors. */
static gssize
raw_read (Session *session,
          guint8  *buf,
          gsize    len)
{
  if (session->stream != NULL)
    {
      GInputStream      *input = g_io_stream_get_input_stream (session->stream);
      g_autoptr (GError) error = NULL;
      gssize             n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (input), buf, len, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return -1;
      if (n < 0)
        {
          g_debug ("read: %s", error->message);
          return -2;
        }
      return n;
    }
  else
    {
      gssize n;

      do
        n = recv (session->fd, buf, len, MSG_DONTWAIT);
      while (n < 0 && errno == EINTR);

      if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
      return n;
    }
}

static void
session_read (Session *session)
{
  FlDevicePoller *poller = session->poller;

  if (session->reading)
    return;
  session->reading = TRUE;
  session_ref (session);

  /* first what was left over */
  if (session->in != NULL)
    consume (session, session->in->data, session->in->len, TRUE);

  while (session->state != STATE_CLOSED && session_may_read (session))
    {
      gsize  room = READ_CHUNK;
      gssize n;

      if (session->in != NULL)
        {
          /* a partial frame: read after it, growing it as needed */
          gsize len = session->in->len;

          g_byte_array_set_size (session->in, len + READ_CHUNK);
          n = raw_read (session, session->in->data + len, READ_CHUNK);
          g_byte_array_set_size (session->in, len + MAX (n, 0));
          if (n > 0)
            {
              session->last_rx_us = g_get_monotonic_time ();
              consume (session, session->in->data, session->in->len, TRUE);
            }
        }
      else
        {
          n = raw_read (session, poller->buf, room);
          if (n > 0)
            {
              session->last_rx_us = g_get_monotonic_time ();
              consume (session, poller->buf, n, FALSE);
            }
        }

      if (n == 0 || n == -2)
        {
          session_close_now (session);
          break;
        }
      if (n == -1)
        break;
      /* a short read of a plain socket left nothing behind */
      if (session->stream == NULL && n < READ_CHUNK)
        break;
    }

  if (session->state == STATE_OPEN && session->starved_link.data == NULL && poller->in_flight_bytes >= poller->max_in_flight_bytes)
    {
      /* stopped by the total: wait in line */
      session->starved_link.data = session;
      g_queue_push_tail_link (&poller->starved, &session->starved_link);
    }

  session->reading = FALSE;
  update_interest (session);
  session_unref (session);
}

/* ---- the poller ---------------------------------------------------------- */

static gboolean
epoll_cb (gint         fd,
          GIOCondition condition,
          gpointer     user_data)
{
  FlDevicePoller    *poller = user_data;
  struct epoll_event events[MAX_EPOLL_EVENTS];
  int                n;

  do
    n = epoll_wait (poller->epfd, events, G_N_ELEMENTS (events), 0);
  while (n < 0 && errno == EINTR);

  /* each one lives until the batch is done, whatever the others do */
  for (int i = 0; i < n; i++)
    session_ref (events[i].data.ptr);

  for (int i = 0; i < n; i++)
    {
      Session *session = events[i].data.ptr;

      if (session->state != STATE_CLOSED && (events[i].events & EPOLLOUT))
        session_flush (session);
      if (session->state != STATE_CLOSED && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        {
          /* reads, or (stopped) takes EPOLLIN out of the interest */
          session_read (session);
          if (session->state != STATE_CLOSED && (events[i].events & (EPOLLHUP | EPOLLERR)))
            session_close_now (session);
        }
    }

  for (int i = 0; i < n; i++)
    session_unref (events[i].data.ptr);

  return G_SOURCE_CONTINUE;
}

static gboolean
tick_cb (gpointer user_data)
{
  FlDevicePoller *poller = user_data;
  gint64          now = g_get_monotonic_time ();
  GList          *l = poller->sessions.head;

  while (l != NULL)
    {
      Session *session = l->data;

      /* closing or pinging one session touches no other */
      l = l->next;
      if (session->state == STATE_CLOSING && now - session->closing_since_us > CLOSE_TIMEOUT_SECONDS * G_USEC_PER_SEC)
        session_close_now (session);
      else if (session->state == STATE_OPEN && now - MAX (session->last_rx_us, session->last_ping_us) > KEEPALIVE_SECONDS * G_USEC_PER_SEC)
        {
          session->last_ping_us = now;
          send_frame (session, OP_PING, NULL, 0);
        }
    }

  return G_SOURCE_CONTINUE;
}

FlDevicePoller *
_fl_device_poller_new (FlRelay *relay)
{
  FlDevicePoller *poller = g_rc_box_new0 (FlDevicePoller);

  poller->relay = relay;
  poller->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (poller->epfd < 0)
    g_error ("epoll_create1: %s", g_strerror (errno));
  poller->buf = g_malloc (READ_CHUNK);
  poller->max_in_flight_bytes = DEFAULT_MAX_IN_FLIGHT_BYTES;
  poller->session_max_in_flight = SESSION_MAX_IN_FLIGHT;
  g_queue_init (&poller->sessions);
  g_queue_init (&poller->starved);

  poller->source = g_unix_fd_source_new (poller->epfd, G_IO_IN);
  g_source_set_callback (poller->source, G_SOURCE_FUNC (epoll_cb), poller, NULL);
  g_source_set_static_name (poller->source, "[fieldline] device sockets");
  g_source_attach (poller->source, NULL);

  poller->tick_source = g_timeout_add_seconds (1, tick_cb, poller);
  g_source_set_static_name (g_main_context_find_source_by_id (NULL, poller->tick_source), "[fieldline] device keepalive");

  return poller;
}

/* Closes what is still open (the relay's list is empty by now). */
void
_fl_device_poller_free (FlDevicePoller *poller)
{
  while (poller->sessions.head != NULL)
    session_close_now (poller->sessions.head->data);

  poller->relay = NULL;
  g_clear_handle_id (&poller->tick_source, g_source_remove);
  g_source_destroy (poller->source);
  g_clear_pointer (&poller->source, g_source_unref);
  close (poller->epfd);
  poller->epfd = -1;
  poller_unref (poller);
}

void
_fl_device_poller_set_limits (FlDevicePoller *poller,
                              guint           session_max_in_flight,
                              gsize           max_in_flight_bytes)
{
  poller->session_max_in_flight = MAX (session_max_in_flight, 1);
  poller->max_in_flight_bytes = MAX (max_in_flight_bytes, 1);
}

void
_fl_device_poller_get_in_flight (FlDevicePoller *poller,
                                 guint          *messages,
                                 gsize          *bytes,
                                 guint          *peak_messages,
                                 gsize          *peak_bytes)
{
  if (messages != NULL)
    *messages = poller->in_flight_messages;
  if (bytes != NULL)
    *bytes = poller->in_flight_bytes;
  if (peak_messages != NULL)
    *peak_messages = poller->peak_in_flight_messages;
  if (peak_bytes != NULL)
    *peak_bytes = poller->peak_in_flight_bytes;
}

/* ---- sessions ------------------------------------------------------------ */

FlDevice *
_fl_device_session_get_device (gpointer data)
{
  Session *session = data;

  return session->device;
}

/* The relay's list dropped the session: close it if it is still open
 * (the peer's close frame is waited for, up to CLOSE_TIMEOUT_SECONDS). */
void
_fl_device_session_close (gpointer data)
{
  Session *session = data;

  session->listed = FALSE;
  if (session->state == STATE_OPEN)
    send_close (session, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
  session_unref (session);
}

typedef struct
{
  FlRelay  *relay;
  FlDevice *device;
} Accept;

static void
accept_free (Accept *accept)
{
  g_clear_object (&accept->relay);
  g_clear_object (&accept->device);
  g_free (accept);
}

static void
session_start (FlRelay   *self,
               GIOStream *stream,
               GSocket   *socket,
               FlDevice  *device)
{
  FlDevicePoller    *poller = self->device_poller;
  Session           *session;
  struct epoll_event event = { .events = EPOLLIN | EPOLLRDHUP };
  GInputStream      *input = g_io_stream_get_input_stream (stream);
  GByteArray        *early = NULL;

  /* Bytes libsoup read past the handshake are in its stream's buffer. */
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      gssize             n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (input), poller->buf, READ_CHUNK,
                                                                       NULL, &error);
      if (n <= 0)
        break;
      if (early == NULL)
        early = g_byte_array_new ();
      g_byte_array_append (early, poller->buf, n);
    }

  session = g_rc_box_new0 (Session);
  session->poller = poller_ref (poller);
  session->device = g_object_ref (device);
  session->in = early;
  session->last_rx_us = g_get_monotonic_time ();
  g_queue_init (&session->pending);

  if (soup_server_is_https (self->server))
    {
      session->stream = g_object_ref (stream);
      session->fd = g_socket_get_fd (socket);
    }
  else
    {
      /* only the fd is needed: libsoup's objects go */
      session->fd = fcntl (g_socket_get_fd (socket), F_DUPFD_CLOEXEC, 3);
      g_io_stream_close (stream, NULL, NULL);
      if (session->fd < 0)
        {
          g_warning ("Cannot keep a device connection: %s", g_strerror (errno));
          session->state = STATE_CLOSED;
          session_unref (session);
          return;
        }
    }

  event.data.ptr = session;
  session->events = event.events;
  if (epoll_ctl (poller->epfd, EPOLL_CTL_ADD, session->fd, &event) != 0)
    {
      g_warning ("epoll_ctl: %s", g_strerror (errno));
      if (session->stream == NULL)
        close (session->fd);
      g_clear_object (&session->stream);
      session->state = STATE_CLOSED;
      session_unref (session);
      return;
    }

  /* the fd's ref, and the relay list's */
  session->all_link.data = session;
  g_queue_push_tail_link (&poller->sessions, &session->all_link);
  session->listed = TRUE;
  g_ptr_array_add (self->device_sessions, session_ref (session));

  if (fl_registry_note_alive (self->registry, device, fl_now_ms ()))
    fl_hub_publish_device (self->hub, device);

  if (session->in != NULL)
    session_read (session);
}

static void
wrote_informational_cb (SoupServerMessage *msg,
                        gpointer           user_data)
{
  Accept               *accept = user_data;
  FlRelay              *self = accept->relay;
  g_autoptr (GSocket)   socket = NULL;
  g_autoptr (GIOStream) stream = NULL;

  if (soup_server_message_get_status (msg) != SOUP_STATUS_SWITCHING_PROTOCOLS)
    return;

  g_signal_handlers_disconnect_by_func (msg, wrote_informational_cb, user_data);
  socket = g_object_ref (soup_server_message_get_socket (msg));
  stream = soup_server_message_steal_connection (msg);

  if (self->shutting_down || self->device_poller == NULL)
    {
      g_io_stream_close (stream, NULL, NULL);
      return;
    }

  session_start (self, stream, socket, accept->device);
}

/* The handshake of GET /device by an authenticated device: libsoup
 * answers 101 and hands the connection over once that is written. */
void
_fl_device_session_accept (FlRelay           *self,
                           SoupServerMessage *msg,
                           FlDevice          *device)
{
  Accept *accept;

  if (!soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL))
    return; /* libsoup set the error status */

  accept = g_new0 (Accept, 1);
  accept->relay = g_object_ref (self);
  accept->device = g_object_ref (device);
  g_signal_connect_data (msg, "wrote-informational", G_CALLBACK (wrote_informational_cb), accept,
                         (GClosureNotify) (void (*) (void)) accept_free, 0);
}
