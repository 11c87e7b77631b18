/* fl-connection-reaper-private.h: for tests. */
#pragma once

#include "fl-connection-reaper.h"

G_BEGIN_DECLS

/* A reaper that uses public API only, as it does on a libsoup other than
 * 3.2: it follows the server's requests and closes the sockets of dead
 * connections. */
FlConnectionReaper *_fl_connection_reaper_new_following_requests (SoupServer *server);

G_END_DECLS
