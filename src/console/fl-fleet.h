/* fl-fleet.h: the console's fleet, a GListModel of FlDevice in device id
 * order, fed by the cache, the server and the live stream.
 *
 * fl_fleet_start() shows the cache at once (FlCache's devices), then
 * lists the server's devices page by page, updating the device objects
 * in place (by id) and adding new ones, and then follows the /events
 * stream from the cache's last seq: events update the devices, go to the
 * cache, and are handed on in "events" for the views (a device page's
 * charts).  Changes are batched: one "devices-changed" per stream batch
 * or server page, with the set of devices whose values changed; the
 * model's own items-changed is emitted only when a device is added or
 * removed, or its status, name, model or tags (what the devices page
 * filters and sorts on) changed, once per changed range.
 *
 * When the server cannot be reached the cached devices stay; "online"
 * turns FALSE, the sync is retried with exponential backoff, and the
 * stream, which reconnects on its own, resumes with "since".
 */
#pragma once

#include <gio/gio.h>

#include "fieldline-client.h"
#include "fl-cache.h"
#include "fl-session.h"

G_BEGIN_DECLS

#define FL_TYPE_FLEET (fl_fleet_get_type ())
G_DECLARE_FINAL_TYPE (FlFleet, fl_fleet, FL, FLEET, GObject)

/* cache: an open cache, or NULL: then fl_fleet_start() opens the
 * session's profile's cache at fl_cache_default_path(), or goes without
 * one when there is no session. */
FlFleet       *fl_fleet_new               (FlCache *cache);

/* The session whose client, tokens and websocket URL the fleet uses;
 * "online" follows the session's. */
void           fl_fleet_set_session       (FlFleet   *self,
                                           FlSession *session);
FlSession     *fl_fleet_get_session       (FlFleet *self);
/* The same without a session (tests, tools): a signed-in client and the
 * /events URL; "online" is then the fleet's own view of the server. */
void           fl_fleet_set_client        (FlFleet    *self,
                                           FlClient   *client,
                                           const char *websocket_url);
FlClient      *fl_fleet_get_client        (FlFleet *self);
FlCache       *fl_fleet_get_cache         (FlFleet *self);
/* The live stream once started (NULL before), transfer none. */
FlEventStream *fl_fleet_get_stream        (FlFleet *self);

/* Loads the cache, then syncs and follows the stream (when there is a
 * client or session).  Idempotent. */
void           fl_fleet_start             (FlFleet *self);
/* Stops syncing and the stream; the devices stay. */
void           fl_fleet_stop              (FlFleet *self);
/* Syncs with the server now (resetting the retry backoff). */
void           fl_fleet_refresh           (FlFleet *self);

/* The device with device_id, or NULL.  Transfer none. */
FlDevice      *fl_fleet_lookup            (FlFleet    *self,
                                           const char *device_id);
/* The position of device_id in the model, or G_MAXUINT. */
guint          fl_fleet_find              (FlFleet    *self,
                                           const char *device_id);

/* The same devices sorted by name (ASCII case-insensitive, then id), as
 * the devices page lists them; kept in step with the fleet (one
 * items-changed per changed range, like the fleet's own).  Transfer
 * none. */
GListModel    *fl_fleet_get_by_name       (FlFleet *self);

/* The tags of all devices, sorted (a GtkStringList), for filters.
 * Transfer none; it changes as devices come and go. */
GListModel    *fl_fleet_get_tags          (FlFleet *self);

gboolean       fl_fleet_get_online        (FlFleet *self);
gboolean       fl_fleet_get_syncing       (FlFleet *self);
/* TRUE from a failed sync (or a lost stream) until a sync succeeds: the
 * server is known to be out of reach (a retry may be under way). */
gboolean       fl_fleet_get_sync_failed   (FlFleet *self);
/* TRUE while the live event stream is connected. */
gboolean       fl_fleet_get_live          (FlFleet *self);
/* TRUE once the cache was read (or there is none). */
gboolean       fl_fleet_get_loaded        (FlFleet *self);
/* Unix ms of the last complete sync (kept in the cache), 0 if never. */
gint64         fl_fleet_get_last_sync     (FlFleet *self);
/* The seq of the last event applied (the stream's resume point). */
gint64         fl_fleet_get_last_seq      (FlFleet *self);
/* Seconds until the next sync attempt after a failure, 0 if none due. */
guint          fl_fleet_get_retry_delay   (FlFleet *self);

/* ---- the update paths (the stream's and the sync's; public for tests
 * and the benchmark) ---- */

/* Replaces the whole model with devices (sorted by id here); what the
 * cache's load does. */
void           fl_fleet_set_devices       (FlFleet   *self,
                                           GPtrArray *devices);
/* Applies a batch of stream events (FlEvent, seq order): updates the
 * devices, hands the events to the cache and emits "devices-changed"
 * and "events" once each.  Events at or below the last seq are dropped
 * (already applied). */
void           fl_fleet_apply_events      (FlFleet   *self,
                                           GPtrArray *events);
/* Merges server records (FlDevice, any order) into the model: updates
 * known devices in place and adds new ones. */
void           fl_fleet_merge_devices     (FlFleet   *self,
                                           GPtrArray *devices);

/* ---- for the views: how a device's state reads ---- */

/* "Online", "Offline"... (translated) */
const char    *fl_fleet_status_label      (FlDeviceStatus status);
/* A symbolic icon whose shape tells the status apart without color. */
const char    *fl_fleet_status_icon_name  (FlDeviceStatus status);
/* "just now", "5 min ago", "3 h ago", "2 days ago" or "never" (ms 0);
 * transfer full. */
char          *fl_fleet_format_relative   (gint64 then_ms,
                                           gint64 now_ms);
/* A local date and time: "14:02" today, "3 Mar, 14:02" this year, else
 * with the year; transfer full. */
char          *fl_fleet_format_time       (gint64 ms);

G_END_DECLS
