/* fl-connection-reaper.c: closes the keep-alive connections that libsoup
 * 3.2's SoupServer keeps open after their client closed them while idle.
 *
 * Why they stay open (libsoup 3.2.3, soup_server_message_io_http1_finished()
 * in libsoup/server/http1/soup-server-message-io-http1.c): after a
 * response on a keep-alive connection it creates the connection's next
 * SoupServerMessage and watches the socket for its request.  That message
 * gets its completion callback (SoupServer's request_finished(), the code
 * that disconnects connections) only when the first bytes of a request
 * arrive, which is also when "request-started" is emitted.  When the
 * client closes instead, libsoup reads the end of file, finishes the
 * message as interrupted, finds no completion callback and drops the
 * message without disconnecting anything: nothing watches the socket any
 * more, the SoupServerConnection stays in the server's client list and the
 * fd stays open in CLOSE-WAIT until soup_server_disconnect().
 *
 * On libsoup 3.2 the reaper learns each SoupServerConnection when it is
 * accepted, from an emission hook on SoupListener::new-connection (once
 * per connection, before SoupServer's own handler), and keeps weak
 * references to it and its GSocket.  Every live SoupServerMessage holds a
 * reference to its connection: the one in flight (paused or not, whatever
 * its client did) and the one waiting for the next request alike.  So a
 * connection that only the server's client list holds, with its socket
 * still open, is one libsoup has given up on and will never read again,
 * whether its peer closed, reset, or (TLS) sent close_notify and waits for
 * ours.  Once a second the reaper releases those by emitting
 * "disconnected" on them, as soup_server_connection_disconnect() does:
 * SoupServer drops the connection from its list and its reference, and
 * finalizing the connection closes the stream (with a close_notify for
 * TLS) and frees everything.  When SOUP_SERVER_HTTP2 is set, which turns
 * HTTP/2 on in libsoup 3.2, an idle HTTP/2 connection would look the same,
 * so then only those whose peer has closed (a MSG_PEEK | MSG_DONTWAIT
 * recv() that reads nothing) go.  A connection stolen for a WebSocket is
 * finalized, or at least leaves the server's list ("disconnected" is
 * emitted on it), while its socket stays open; it is left alone.
 *
 * libsoup 3.2.3 also leaks every accepted GSocket, however its connection
 * ends: SoupListener's listen_watch() never drops the reference
 * g_socket_accept() gave it (about 400 bytes a connection; the fd is
 * closed).  When the socket has that extra reference as it is accepted,
 * the reaper drops it once the socket is closed, its connection finalized
 * and nothing else holds it.
 *
 * Elsewhere (another libsoup, or SoupServerConnection not as expected) the
 * reaper falls back on public API: it follows the server's request
 * signals to know which connections have no request in flight, and closes
 * the GSocket of one that has been idle at end of file for two sweeps in
 * a row (libsoup's watch on it has run by then).  That releases the fd;
 * the few objects around it stay until the server is disconnected (about
 * 2 KB a connection, 28 KB with TLS), and a TLS client that waits for our
 * close_notify waits.  On a libsoup without the bug it finds nothing to
 * do.
 *
 * Cost: on libsoup 3.2 nothing per request; per connection, the hook and
 * two weak references; per sweep, a look at each connection, and no system
 * call.  The fallback costs two signal handlers and two hash lookups per
 * request, and one recv() per idle connection and sweep. */
#define G_LOG_DOMAIN "fl-connection-reaper"

#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "fl-connection-reaper-private.h"

#define SWEEP_INTERVAL_SEC 1
#define EOF_SWEEPS_TO_CLOSE 2 /* fallback; see above */

struct _FlConnectionReaper
{
  GObject parent_instance;

  SoupServer *server;           /* weak */
  GHashTable *connections;      /* GSocket (weak) -> Connection */
  guint       n_closed;         /* connections whose socket is closed */
  gboolean    follows_requests; /* the fallback */
  gboolean    setup_pending;
  GSource    *sweep_source;
  GSource    *setup_source;
  guint64     n_reaped;
};

G_DEFINE_FINAL_TYPE (FlConnectionReaper, fl_connection_reaper, G_TYPE_OBJECT)

typedef struct
{
  FlConnectionReaper *reaper;
  GSocket            *socket;    /* weak; the hash table's key */
  GObject            *soup_conn; /* weak; its SoupServerConnection, while alive */
  gulong              disconnected_handler;
  gboolean            soup_conn_known;
  gboolean            detached;      /* out of the server's list: disconnected or stolen */
  gboolean            socket_leaked; /* SoupListener keeps a reference to it */
  gboolean            closed;        /* the socket is */

  /* the fallback's */
  gboolean multiplexed; /* HTTP/2: left alone */
  guint    in_flight;   /* requests started and not finished */
  guint    eof_sweeps;  /* sweeps in a row that found it idle at EOF */
} Connection;

static void track_soup_conn (FlConnectionReaper *self,
                             GObject            *soup_conn);
static void finish_setup (FlConnectionReaper *self);

/* ---- libsoup 3.2's internals ---------------------------------------------- */

typedef enum
{
  INTERNALS_NOT_YET, /* no SoupListener yet in this process */
  INTERNALS_KNOWN,   /* the hook is installed */
  INTERNALS_UNKNOWN,
} Internals;

G_LOCK_DEFINE_STATIC (internals);
static Internals internals;         /* under the lock */
static guint     new_connection_id; /* SoupListener::new-connection */
static guint     disconnected_id;   /* SoupServerConnection::disconnected */
static gboolean  http2_possible;    /* SoupServer's own switch for it in 3.2 */
static GList    *hooked_reapers;    /* under the lock */

/* SoupListener::new-connection: tells the reaper of the listener's server. */
static gboolean
new_connection_hook (GSignalInvocationHint *hint,
                     guint                  n_params,
                     const GValue          *params,
                     gpointer               user_data)
{
  gpointer listener = g_value_get_object (&params[0]);
  GObject *soup_conn = g_value_get_object (&params[1]);

  G_LOCK (internals);
  for (GList *l = hooked_reapers; l != NULL; l = l->next)
    {
      FlConnectionReaper *self = l->data;

      /* SoupServer's handler on its listeners has the server as data. */
      if (self->server == NULL)
        continue;
      if (g_signal_handler_find (listener, G_SIGNAL_MATCH_ID | G_SIGNAL_MATCH_DATA, new_connection_id, 0, NULL, NULL, self->server) != 0)
        {
          track_soup_conn (self, soup_conn);
          break;
        }
    }
  G_UNLOCK (internals);

  return TRUE;
}

static gboolean
signal_is (guint signal_id,
           guint n_params,
           GType param_type)
{
  GSignalQuery query;

  if (signal_id == 0)
    return FALSE;
  g_signal_query (signal_id, &query);

  if (query.return_type != G_TYPE_NONE || query.n_params != n_params)
    return FALSE;

  return n_params == 0 || (query.param_types[0] & ~G_SIGNAL_TYPE_STATIC_SCOPE) == param_type;
}

/* Checks that libsoup is the one described above and installs the hook,
 * once SoupListener exists (from the first soup_server_listen*() on). */
static Internals
look_up_internals (void)
{
  Internals result;

  G_LOCK (internals);

  if (internals == INTERNALS_NOT_YET && (soup_get_major_version () != 3 || soup_get_minor_version () != 2))
    internals = INTERNALS_UNKNOWN;

  if (internals == INTERNALS_NOT_YET && g_type_from_name ("SoupListener") != 0)
    {
      GType listener_type = g_type_from_name ("SoupListener");
      GType conn_type = g_type_from_name ("SoupServerConnection");
      /* Its signals exist once its class does (with its first instance). */
      GObjectClass *conn_class = g_type_is_a (conn_type, G_TYPE_OBJECT) ? g_type_class_ref (conn_type) : NULL;
      guint         new_connection = g_signal_lookup ("new-connection", listener_type);
      guint         disconnected = conn_class != NULL ? g_signal_lookup ("disconnected", conn_type) : 0;
      GParamSpec   *socket_pspec = conn_class != NULL ? g_object_class_find_property (conn_class, "socket") : NULL;
      gboolean      as_expected = conn_class != NULL;

      as_expected = as_expected && signal_is (new_connection, 1, conn_type);
      as_expected = as_expected && signal_is (disconnected, 0, G_TYPE_NONE);
      as_expected = as_expected && socket_pspec != NULL && (socket_pspec->flags & G_PARAM_READABLE);
      as_expected = as_expected && socket_pspec->value_type == G_TYPE_SOCKET;

      if (as_expected)
        {
          new_connection_id = new_connection;
          disconnected_id = disconnected;
          http2_possible = g_getenv ("SOUP_SERVER_HTTP2") != NULL;
          g_signal_add_emission_hook (new_connection, 0, new_connection_hook, NULL, NULL);
          internals = INTERNALS_KNOWN;
        }
      else
        internals = INTERNALS_UNKNOWN;
      g_clear_pointer (&conn_class, g_type_class_unref);
    }

  result = internals;
  G_UNLOCK (internals);

  return result;
}

/* ref_count is a private field of GObject, but readable; nothing in the
 * public API tells who holds an object. */
static guint
ref_count (gpointer object)
{
  return g_atomic_int_get ((gint *) &G_OBJECT (object)->ref_count);
}

/* ---- connections ---------------------------------------------------- */

static void
socket_finalized_cb (gpointer data,
                     GObject *where_the_socket_was)
{
  Connection *c = data;

  c->socket = NULL;
  g_hash_table_remove (c->reaper->connections, where_the_socket_was);
}

static void
soup_conn_finalized_cb (gpointer data,
                        GObject *where_the_conn_was)
{
  Connection *c = data;

  c->soup_conn = NULL;
}

static void
soup_conn_disconnected_cb (GObject *soup_conn,
                           gpointer user_data)
{
  Connection *c = user_data;

  c->detached = TRUE;
}

static void
connection_free (gpointer data)
{
  Connection *c = data;

  if (c->closed)
    c->reaper->n_closed--;
  if (c->socket != NULL)
    g_object_weak_unref (G_OBJECT (c->socket), socket_finalized_cb, c);
  if (c->soup_conn != NULL)
    {
      g_signal_handler_disconnect (c->soup_conn, c->disconnected_handler);
      g_object_weak_unref (c->soup_conn, soup_conn_finalized_cb, c);
    }
  g_free (c);
}

static Connection *
lookup_connection (FlConnectionReaper *self,
                   GSocket            *socket)
{
  Connection *c = g_hash_table_lookup (self->connections, socket);

  if (c == NULL)
    {
      c = g_new0 (Connection, 1);
      c->reaper = self;
      c->socket = socket;
      g_object_weak_ref (G_OBJECT (socket), socket_finalized_cb, c);
      g_hash_table_insert (self->connections, socket, c);
    }

  return c;
}

static void
track_soup_conn (FlConnectionReaper *self,
                 GObject            *soup_conn)
{
  g_autoptr (GSocket) socket = NULL;
  Connection         *c;

  g_object_get (soup_conn, "socket", &socket, NULL);
  if (socket == NULL)
    return;

  c = lookup_connection (self, socket);
  if (!c->soup_conn_known)
    {
      /* SoupListener's, the connection's and ours: SoupListener keeps the
       * one g_socket_accept() gave it (fixed libsoups drop it before they
       * emit new-connection). */
      c->socket_leaked = ref_count (socket) == 3;
      c->soup_conn_known = TRUE;
      c->soup_conn = soup_conn;
      g_object_weak_ref (soup_conn, soup_conn_finalized_cb, c);
      c->disconnected_handler = g_signal_connect (soup_conn, "disconnected", G_CALLBACK (soup_conn_disconnected_cb), c);
    }
}

/* Whether the peer has closed (or reset) the connection; nothing is read. */
static gboolean
peer_has_closed (GSocket *socket)
{
  char   byte;
  gssize n;

  do
    n = recv (g_socket_get_fd (socket), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);

  if (n >= 0)
    return n == 0; /* end of file, or the bytes of a request */

  return errno != EAGAIN && errno != EWOULDBLOCK;
}

/* Whether c is a connection libsoup has given up on (and, in the
 * fallback, whose peer closed). */
static gboolean
is_dead (Connection *c)
{
  if (c->soup_conn_known)
    {
      /* Out of the server's list with its socket open: stolen, e.g. for a
       * WebSocket (a kept message may still hold the connection). */
      if (c->soup_conn == NULL || c->detached)
        return FALSE;

      /* A message of it is alive: in flight, or waiting for a request. */
      if (ref_count (c->soup_conn) != 1)
        return FALSE;

      /* Only the server's list holds it: libsoup will not read it again,
       * whether the peer closed or (TLS) sent close_notify and waits for
       * ours.  An idle HTTP/2 connection would look the same. */
      return !http2_possible || peer_has_closed (c->socket);
    }

  if (c->in_flight > 0 || c->multiplexed || !peer_has_closed (c->socket))
    {
      c->eof_sweeps = 0;
      return FALSE;
    }

  return ++c->eof_sweeps >= EOF_SWEEPS_TO_CLOSE;
}

/* Releases a dead connection; its entry goes with the socket. */
static void
reap (FlConnectionReaper *self,
      Connection         *c)
{
  g_autoptr (GSocket) socket = g_object_ref (c->socket);

  if (c->soup_conn != NULL)
    {
      g_autoptr (GObject) soup_conn = g_object_ref (c->soup_conn);

      /* SoupServer forgets the connection and drops its reference;
       * dropping ours finalizes it, which closes the stream. */
      g_signal_emit (soup_conn, disconnected_id, 0);
    }

  if (!g_socket_is_closed (socket))
    g_socket_close (socket, NULL);

  self->n_reaped++;
}

/* Forgets c, whose socket is closed; when SoupListener leaked a reference
 * to the socket, once its SoupServerConnection is gone and that reference
 * is the last one left, which is dropped.  Returns whether c was removed
 * through iter. */
static gboolean
forget_closed (GHashTableIter *iter,
               Connection     *c)
{
  GSocket *socket = c->socket;
  gboolean leaked = c->socket_leaked;

  if (leaked && (c->soup_conn != NULL || ref_count (socket) != 1))
    return FALSE;

  g_hash_table_iter_remove (iter); /* and the weak reference with it */
  if (leaked)
    g_object_unref (socket);

  return TRUE;
}

static gboolean
sweep_cb (gpointer user_data)
{
  FlConnectionReaper   *self = user_data;
  g_autoptr (GPtrArray) dead = g_ptr_array_new ();
  GHashTableIter        iter;
  Connection           *c;

  if (self->setup_pending)
    finish_setup (self);

  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &c))
    {
      if (!c->closed && g_socket_is_closed (c->socket))
        {
          c->closed = TRUE;
          self->n_closed++;
        }

      if (c->closed)
        forget_closed (&iter, c);
      else if (is_dead (c))
        g_ptr_array_add (dead, c);
    }

  /* Reaping closes sockets: their entries go at the next sweep. */
  for (guint i = 0; i < dead->len; i++)
    reap (self, g_ptr_array_index (dead, i));

  if (dead->len > 0)
    g_debug ("Closed %u connection(s) their clients had closed; %u open",
             dead->len, fl_connection_reaper_get_n_connections (self));

  return G_SOURCE_CONTINUE;
}

/* ---- the fallback: the server's request signals --------------------------- */

static void
request_started_cb (SoupServer        *server,
                    SoupServerMessage *msg,
                    gpointer           user_data)
{
  FlConnectionReaper *self = user_data;
  GSocket            *socket = soup_server_message_get_socket (msg);
  Connection         *c;

  if (socket == NULL)
    return; /* soup_server_accept_iostream() */

  c = lookup_connection (self, socket);
  c->in_flight++;
  c->eof_sweeps = 0;
}

/* request-finished and request-aborted */
static void
request_ended_cb (SoupServer        *server,
                  SoupServerMessage *msg,
                  gpointer           user_data)
{
  FlConnectionReaper *self = user_data;
  GSocket            *socket = soup_server_message_get_socket (msg);
  Connection         *c;

  if (socket == NULL)
    return;

  c = lookup_connection (self, socket);
  if (c->in_flight > 0)
    c->in_flight--;
  c->eof_sweeps = 0;
  if (soup_server_message_get_http_version (msg) == SOUP_HTTP_2_0)
    c->multiplexed = TRUE;
}

static void
follow_requests (FlConnectionReaper *self)
{
  g_debug ("libsoup %u.%u.%u: following requests; only the sockets of dead connections will be closed",
           soup_get_major_version (), soup_get_minor_version (), soup_get_micro_version ());

  self->follows_requests = TRUE;
  g_signal_connect (self->server, "request-started", G_CALLBACK (request_started_cb), self);
  g_signal_connect (self->server, "request-finished", G_CALLBACK (request_ended_cb), self);
  g_signal_connect (self->server, "request-aborted", G_CALLBACK (request_ended_cb), self);
}

/* ---- life cycle ------------------------------------------------------- */

/* Once some server listens: the hook is in place, or the reaper follows
 * requests instead. */
static void
finish_setup (FlConnectionReaper *self)
{
  Internals found = look_up_internals ();

  if (found == INTERNALS_NOT_YET)
    return;

  self->setup_pending = FALSE;
  if (found == INTERNALS_UNKNOWN && self->server != NULL)
    {
      G_LOCK (internals);
      hooked_reapers = g_list_remove (hooked_reapers, self);
      G_UNLOCK (internals);
      follow_requests (self);
    }
}

/* Runs before the server's first accept, having a higher priority. */
static gboolean
setup_cb (gpointer user_data)
{
  FlConnectionReaper *self = user_data;

  finish_setup (self); /* or from the sweeps, if not listening yet */
  g_clear_pointer (&self->setup_source, g_source_unref);

  return G_SOURCE_REMOVE;
}

static void
fl_connection_reaper_dispose (GObject *object)
{
  FlConnectionReaper *self = FL_CONNECTION_REAPER (object);
  GHashTableIter      iter;
  Connection         *c;

  G_LOCK (internals);
  hooked_reapers = g_list_remove (hooked_reapers, self);
  G_UNLOCK (internals);

  if (self->sweep_source != NULL)
    {
      g_source_destroy (self->sweep_source);
      g_clear_pointer (&self->sweep_source, g_source_unref);
    }
  if (self->setup_source != NULL)
    {
      g_source_destroy (self->setup_source);
      g_clear_pointer (&self->setup_source, g_source_unref);
    }

  if (self->server != NULL)
    {
      if (self->follows_requests)
        g_signal_handlers_disconnect_by_data (self->server, self);
      g_clear_weak_pointer (&self->server);
    }

  /* Connections the server has closed, e.g. in soup_server_disconnect(),
   * can be finished with now; the others are forgotten. */
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &c))
    if (!g_socket_is_closed (c->socket) || !forget_closed (&iter, c))
      g_hash_table_iter_remove (&iter);

  G_OBJECT_CLASS (fl_connection_reaper_parent_class)->dispose (object);
}

static void
fl_connection_reaper_finalize (GObject *object)
{
  FlConnectionReaper *self = FL_CONNECTION_REAPER (object);

  g_clear_pointer (&self->connections, g_hash_table_unref);

  G_OBJECT_CLASS (fl_connection_reaper_parent_class)->finalize (object);
}

static void
fl_connection_reaper_class_init (FlConnectionReaperClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_connection_reaper_dispose;
  object_class->finalize = fl_connection_reaper_finalize;
}

static void
fl_connection_reaper_init (FlConnectionReaper *self)
{
  self->connections = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, connection_free);
}

static FlConnectionReaper *
reaper_new (SoupServer *server,
            Internals   internals_found)
{
  FlConnectionReaper      *self;
  g_autoptr (GMainContext) context = g_main_context_ref_thread_default ();

  self = g_object_new (FL_TYPE_CONNECTION_REAPER, NULL);
  g_set_weak_pointer (&self->server, server);

  switch (internals_found)
    {
    case INTERNALS_UNKNOWN:
      follow_requests (self);
      break;

    case INTERNALS_NOT_YET:
      /* Known once the server listens, before it accepts anything. */
      self->setup_pending = TRUE;
      self->setup_source = g_idle_source_new ();
      g_source_set_priority (self->setup_source, G_PRIORITY_HIGH);
      g_source_set_callback (self->setup_source, setup_cb, self, NULL);
      g_source_set_static_name (self->setup_source, "[fieldline] connection reaper setup");
      g_source_attach (self->setup_source, context);
      G_GNUC_FALLTHROUGH;

    case INTERNALS_KNOWN:
    default:
      G_LOCK (internals);
      hooked_reapers = g_list_prepend (hooked_reapers, self);
      G_UNLOCK (internals);
      break;
    }

  self->sweep_source = g_timeout_source_new_seconds (SWEEP_INTERVAL_SEC);
  g_source_set_callback (self->sweep_source, sweep_cb, self, NULL);
  g_source_set_static_name (self->sweep_source, "[fieldline] connection reaper");
  g_source_attach (self->sweep_source, context);

  return self;
}

FlConnectionReaper *
fl_connection_reaper_new (SoupServer *server)
{
  g_return_val_if_fail (SOUP_IS_SERVER (server), NULL);

  return reaper_new (server, look_up_internals ());
}

FlConnectionReaper *
_fl_connection_reaper_new_following_requests (SoupServer *server)
{
  g_return_val_if_fail (SOUP_IS_SERVER (server), NULL);

  return reaper_new (server, INTERNALS_UNKNOWN);
}

guint
fl_connection_reaper_get_n_connections (FlConnectionReaper *self)
{
  g_return_val_if_fail (FL_IS_CONNECTION_REAPER (self), 0);

  return g_hash_table_size (self->connections) - self->n_closed;
}

guint64
fl_connection_reaper_get_n_reaped (FlConnectionReaper *self)
{
  g_return_val_if_fail (FL_IS_CONNECTION_REAPER (self), 0);

  return self->n_reaped;
}
