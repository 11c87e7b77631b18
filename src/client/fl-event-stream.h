/* fl-event-stream.h: the console's client of the operators' live stream
 * (the relay's /events WebSocket, PLATFORM.md "WebSocket API").
 *
 * The stream connects with "Authorization: Bearer <token>" (a fresh token
 * from the token function before each connection), subscribes to the
 * devices it was given (all by default) from the last seq it has seen,
 * and from then on delivers the relay's events in seq order, batched, at
 * most once per batch interval, without gaps or duplicates:
 *
 * - a lost connection is reopened with exponential backoff and jitter,
 *   and resumes with "since";
 * - close code 4008 (too slow) is resumed at once;
 * - close code 4001 (signed out) ends in FL_EVENT_STREAM_SIGNED_OUT;
 * - cloud gateways drop idle connections (10 min) and old ones (2 h), so
 *   the stream pings and, before a connection gets that old, opens a
 *   replacement, subscribes it with "since", and closes the old one only
 *   once the replacement's subscription is confirmed.  Events from both
 *   are merged by seq.
 *
 * Signals: "events" (a GPtrArray of FlEvent, in seq order, at most once
 * per batch interval), "device" (an FlDevice whose status changed; as it
 * arrives, not batched) and "error" (a GError in FL_CLIENT_ERROR for an
 * error message from the relay, with its API code; informational).
 *
 * Nothing blocks.  Everything runs on the thread-default main context of
 * the caller of fl_event_stream_new(); use the stream from there only.
 */
#pragma once

#include <gio/gio.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

typedef enum {
  FL_EVENT_STREAM_DISCONNECTED, /* stopped, or waiting to reconnect */
  FL_EVENT_STREAM_CONNECTING,
  FL_EVENT_STREAM_CONNECTED,
  FL_EVENT_STREAM_SIGNED_OUT,   /* the relay closed it with 4001; no reconnect */
} FlEventStreamState;

GType fl_event_stream_state_get_type (void) G_GNUC_CONST;
#define FL_TYPE_EVENT_STREAM_STATE (fl_event_stream_state_get_type ())

/* Returns a fresh access token (transfer full, nullable: no
 * Authorization header then); called before each connection.  The
 * console refreshes its tokens on its own, so this must not block. */
typedef char *(*FlEventStreamTokenFunc) (gpointer user_data);

#define FL_EVENT_STREAM_DEFAULT_BATCH_MS       16
#define FL_EVENT_STREAM_DEFAULT_PING_S         300
#define FL_EVENT_STREAM_DEFAULT_MAX_AGE_S      6600 /* 1 h 50 min */
#define FL_EVENT_STREAM_DEFAULT_BACKOFF_MIN_MS 1000
#define FL_EVENT_STREAM_DEFAULT_BACKOFF_MAX_MS 60000

#define FL_TYPE_EVENT_STREAM (fl_event_stream_get_type ())
G_DECLARE_FINAL_TYPE (FlEventStream, fl_event_stream, FL, EVENT_STREAM, GObject)

/* websocket_url: "ws(s)://host:port/events", e.g. GET /config's
 * websocketUrl.  destroy frees user_data when the stream is disposed. */
FlEventStream      *fl_event_stream_new                 (const char             *websocket_url,
                                                         FlEventStreamTokenFunc  token_func,
                                                         gpointer                user_data,
                                                         GDestroyNotify          destroy);

/* The URL used from the next connection on (the relay moved); a stream
 * waiting to reconnect tries it at once. */
void                fl_event_stream_set_url             (FlEventStream *self,
                                                         const char    *websocket_url);
/* Waiting out a backoff: try again now (the server answers again). */
void                fl_event_stream_reconnect           (FlEventStream *self);

/* The resume point, e.g. the last seq in the console's cache; call
 * before fl_event_stream_start().  0 (the default) means none: the
 * first connection delivers live events only. */
void                fl_event_stream_set_since           (FlEventStream *self,
                                                         gint64         seq);
/* The seq of the last event delivered by "events" (or the relay's last
 * seq when the first subscription had no resume point): where the
 * stream resumes.  Also the "last-seq" property. */
gint64              fl_event_stream_get_last_seq        (FlEventStream *self);

/* The devices to follow; NULL (the default) means all ("*").  While
 * connected, the subscription is changed at once. */
void                fl_event_stream_set_devices         (FlEventStream      *self,
                                                         const char * const *device_ids);

void                fl_event_stream_start               (FlEventStream *self);
/* Closes the connection (1000), cancels every timer and drops events not
 * delivered yet (last-seq stays at the last delivered one, so a later
 * start resumes from there). */
void                fl_event_stream_stop                (FlEventStream *self);

FlEventStreamState  fl_event_stream_get_state           (FlEventStream *self);
/* Monotonic µs at which the current connection opened, 0 when not
 * connected.  It changes when a replacement connection takes over. */
gint64              fl_event_stream_get_connected_since (FlEventStream *self);

/* Tuning, for tests; takes effect from the next connection.  ping_s 0
 * and max_age_s 0 turn pings and replacement off. */
void                fl_event_stream_set_timing          (FlEventStream *self,
                                                         guint          batch_ms,
                                                         guint          ping_s,
                                                         guint          max_age_s,
                                                         guint          backoff_min_ms,
                                                         guint          backoff_max_ms);

G_END_DECLS
