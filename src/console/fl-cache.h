/* fl-cache.h: the console's local cache of one connection profile.
 *
 * It keeps the fleet (devices), each device's newest events and the
 * telemetry points derived from them, so the console shows its fleet at
 * once on start and stays browsable offline.  One SQLite database per
 * profile, in WAL mode, owned by one worker thread: every call returns at
 * once and its callback runs on the main context that was the thread
 * default when the call was made.  Calls complete in the order they were
 * made, and a read sees every write made before it.
 */
#pragma once

#include <gio/gio.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

#define FL_CACHE_ERROR (fl_cache_error_quark ())

typedef enum {
  FL_CACHE_ERROR_FAILED,   /* SQLite said no (disk full, permissions, ...) */
  FL_CACHE_ERROR_CORRUPT,  /* the file is not a database, or is damaged */
  FL_CACHE_ERROR_FOREIGN,  /* an SQLite database, but not a Fieldline cache */
  FL_CACHE_ERROR_VERSION,  /* a cache written by a newer Fieldline */
  FL_CACHE_ERROR_CLOSED,   /* fl_cache_close() was called */
} FlCacheError;

GQuark fl_cache_error_quark (void);

#define FL_CACHE_DEFAULT_MAX_EVENTS_PER_DEVICE 200
#define FL_CACHE_DEFAULT_MAX_POINTS_PER_SERIES 200000

/* Points are FlPoint (fl-decimate.h): t in ms since the Unix epoch, v. */

#define FL_TYPE_CACHE (fl_cache_get_type ())
G_DECLARE_FINAL_TYPE (FlCache, fl_cache, FL, CACHE, GObject)

/* $XDG_DATA_HOME/fieldline/profiles/<profile_id>/cache.db */
char      *fl_cache_default_path        (const char *profile_id);

/* Opens the cache at path, creating it (and its folder) or migrating it.
 * A file that is not a Fieldline cache is left alone and reported. */
void       fl_cache_open_async          (const char          *path,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
FlCache   *fl_cache_open_finish         (GAsyncResult  *result,
                                         GError       **error);

/* Finishes everything queued (writes included), then closes the database.
 * Blocks until then: call it when the profile goes away or at exit.
 * Later calls fail with FL_CACHE_ERROR_CLOSED.  Dispose closes too. */
void       fl_cache_close               (FlCache *self);

/* Every device, in device id order.  Returns an array of FlDevice. */
void       fl_cache_load_devices_async  (FlCache             *self,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
GPtrArray *fl_cache_load_devices_finish (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* Inserts or replaces devices (an array of FlDevice).  The devices are
 * copied (fl_device_serialize(), about 3 µs each) before this returns, so
 * they may change afterwards.  Without a callback, errors are logged. */
void       fl_cache_save_devices_async  (FlCache             *self,
                                         GPtrArray           *devices,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
gboolean   fl_cache_save_devices_finish (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* Removes devices (an array of ids) with their events and telemetry. */
void       fl_cache_delete_devices_async  (FlCache             *self,
                                           GPtrArray           *device_ids,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean   fl_cache_delete_devices_finish (FlCache       *self,
                                           GAsyncResult  *result,
                                           GError       **error);

/* Adds events (an array of FlEvent, as the relay sends them; an event
 * already cached, same source, timestamp and id, is skipped).  Each
 * device keeps its newest max_events_per_device events, and every numeric
 * member of an event's data becomes a point (source, member, timestamp,
 * value); each series keeps its newest max_points_per_series points.
 * The events are shared with the worker, not copied (their JSON text is
 * built here, on the caller's thread): do not change their seq or
 * receivedAt afterwards.  Without a callback, errors are logged. */
void       fl_cache_add_events_async    (FlCache             *self,
                                         GPtrArray           *events,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
gboolean   fl_cache_add_events_finish   (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* A device's newest events, newest first (by timestamp); limit 0 means
 * all that are kept.  Returns an array of FlEvent. */
void       fl_cache_load_events_async   (FlCache             *self,
                                         const char          *device_id,
                                         guint                limit,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
GPtrArray *fl_cache_load_events_finish  (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* The points of one series with from <= t < to (ms), t ascending.
 * Returns an array of FlPoint. */
void       fl_cache_load_points_async   (FlCache             *self,
                                         const char          *device_id,
                                         const char          *metric,
                                         gint64               from,
                                         gint64               to,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
GArray    *fl_cache_load_points_finish  (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* The metrics seen for a device, sorted. */
void       fl_cache_list_metrics_async  (FlCache             *self,
                                         const char          *device_id,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
GStrv      fl_cache_list_metrics_finish (FlCache       *self,
                                         GAsyncResult  *result,
                                         GError       **error);

/* Resume points: the last event seq seen (for the WebSocket's "since")
 * and the time of the last full sync (ms).  Readable at once after open;
 * setting one takes effect at once and is written by the worker, in
 * order with the other calls. */
gint64     fl_cache_get_last_seq        (FlCache *self);
void       fl_cache_set_last_seq        (FlCache *self,
                                         gint64   seq);
gint64     fl_cache_get_last_sync       (FlCache *self);
void       fl_cache_set_last_sync       (FlCache *self,
                                         gint64   unix_ms);

/* Both limits are at least 1.  They apply from the next call on and are
 * not stored; a lower limit hides the excess at once and drops it
 * later. */
void       fl_cache_set_limits          (FlCache *self,
                                         guint    max_events_per_device,
                                         guint    max_points_per_series);

G_END_DECLS
