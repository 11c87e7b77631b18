/* fl-connection-reaper.h: closes the keep-alive connections that
 * libsoup 3.2's SoupServer keeps open after their client closed them
 * while idle (one CLOSE-WAIT socket and one fd per connection, forever).
 *
 * Create one for a SoupServer before its main context runs, e.g. right
 * after soup_server_new().  Once a second it releases the connections
 * libsoup has given up on, which frees them too on libsoup 3.2 (elsewhere
 * it closes their sockets).  Connections with a request in flight (paused
 * or not, whatever their client did), connections stolen from the server
 * (WebSockets) and live HTTP/2 ones are never touched.  Nothing is added
 * to the cost of a request on libsoup 3.2.  On a libsoup without the bug
 * it finds nothing to do.  fl-connection-reaper.c tells the details. */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

#define FL_TYPE_CONNECTION_REAPER (fl_connection_reaper_get_type ())
G_DECLARE_FINAL_TYPE (FlConnectionReaper, fl_connection_reaper, FL, CONNECTION_REAPER, GObject)

/* Runs on the thread-default main context, which must be the server's. */
FlConnectionReaper *fl_connection_reaper_new (SoupServer *server);

/* Connections the server holds open: accepted and not yet closed,
 * including ones upgraded to WebSocket. */
guint fl_connection_reaper_get_n_connections (FlConnectionReaper *self);

/* Connections closed by the reaper since it was created. */
guint64 fl_connection_reaper_get_n_reaped (FlConnectionReaper *self);

G_END_DECLS
