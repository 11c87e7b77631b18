/* fl-hub.h: the operators' live stream.  Committed events, device status
 * changes (and, later, alerts and command updates) fan out from here to
 * every /events WebSocket whose subscription matches.
 *
 * Each subscriber is bounded: the hub tracks how many bytes it has handed
 * to a connection that the peer has not yet acknowledged, and a
 * subscriber that falls further behind than the limit is told so and
 * disconnected, so it can never stall ingest or the others.  It never
 * drops an event while the subscriber stays connected; a subscriber that
 * reconnects with "since" gets everything it missed from the store. */
#pragma once

#include <libsoup/soup.h>

#include "fieldline-core.h"
#include "fl-registry.h"
#include "fl-user-pool.h"

G_BEGIN_DECLS

#define FL_HUB_DEFAULT_MAX_LAG_BYTES (8 * 1024 * 1024)

#define FL_TYPE_HUB (fl_hub_get_type ())
G_DECLARE_FINAL_TYPE (FlHub, fl_hub, FL, HUB, GObject)

FlHub      *fl_hub_new                  (FlStore    *store,
                                         FlRegistry *registry);
void        fl_hub_set_max_lag_bytes    (FlHub      *self,
                                         guint64     max_lag_bytes);

/* Takes over an accepted /events WebSocket; takes principal. */
void        fl_hub_add_subscriber       (FlHub                   *self,
                                         SoupWebsocketConnection *connection,
                                         FlPrincipal             *principal);

/* Events just committed, in seq order. */
void        fl_hub_publish_events       (FlHub     *self,
                                         GPtrArray *events);
/* A device's status or record changed. */
void        fl_hub_publish_device       (FlHub    *self,
                                         FlDevice *device);

guint       fl_hub_get_n_subscribers    (FlHub *self);
gint64      fl_hub_get_last_published   (FlHub *self);

/* Closes every subscriber (going away), for shutdown. */
void        fl_hub_close_all            (FlHub *self);

/* Closes (code 4001) the live streams whose principal revoked says was
 * signed out or disabled; returns how many. */
typedef gboolean (*FlHubRevokedFunc) (const FlPrincipal *principal,
                                      gpointer           user_data);
guint       fl_hub_close_signed_out     (FlHub            *self,
                                         FlHubRevokedFunc  revoked,
                                         gpointer          user_data);

G_END_DECLS
