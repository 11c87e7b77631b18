/* fl-store.h: the relay's event and device store, on SQLite.
 *
 * One writer thread owns the write connection and commits many events per
 * transaction (group commit); a small pool of reader threads, each with its
 * own connection, answers queries.  WAL mode, so readers never block the
 * writer.  Every callback runs on the main context that was the thread
 * default when the call was made.
 */
#pragma once

#include <gio/gio.h>

#include "fl-event.h"
#include "fl-device.h"

G_BEGIN_DECLS

#define FL_STORE_ERROR (fl_store_error_quark ())

typedef enum {
  FL_STORE_ERROR_FAILED,      /* SQLite said no */
  FL_STORE_ERROR_NOT_FOUND,
  FL_STORE_ERROR_CLOSED,      /* the store is shutting down */
  FL_STORE_ERROR_BAD_CURSOR,
  FL_STORE_ERROR_SCHEMA,      /* a database from a newer version */
} FlStoreError;

GQuark fl_store_error_quark (void);

#define FL_TYPE_STORE (fl_store_get_type ())
G_DECLARE_FINAL_TYPE (FlStore, fl_store, FL, STORE, GObject)

/* Opens (creating and migrating) the database at path and starts the
 * writer and reader threads.  Synchronous: call it at start-up. */
FlStore    *fl_store_open                  (const char *path,
                                            GError    **error);
/* Commits everything queued, stops the threads and closes the database.
 * Safe to call twice; finalize calls it too. */
void        fl_store_close                 (FlStore *self);

/* ---- events ---------------------------------------------------------- */

/* Appends events (an array of FlEvent).  Each is deduplicated on its id
 * against everything stored; each new one gets its seq and receivedAt
 * (received_at ms) and is committed.  The callback runs only after the
 * transaction holding them has committed. */
void        fl_store_append_async          (FlStore             *self,
                                            GPtrArray           *events,
                                            gint64               received_at,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
/* Returns an array of FlEvent: the events that were new, now with seq
 * set, in seq order.  *duplicates counts the rest. */
GPtrArray  *fl_store_append_finish        (FlStore      *self,
                                            GAsyncResult *result,
                                            guint        *duplicates,
                                            GError      **error);

typedef struct {
  const char  *device_id;   /* NULL: all devices */
  const char  *event_type;  /* NULL: all types */
  gint64       from;        /* ms, inclusive; G_MININT64: unbounded */
  gint64       to;          /* ms, exclusive; G_MAXINT64: unbounded */
  gint64       after_seq;   /* cursor: only events with a larger seq; 0: none */
  guint        limit;       /* 1..1000 */
  gboolean     descending;  /* newest first (cursor then means smaller seq) */
} FlEventQuery;

/* Events matching query by timestamp range, in seq order.  The finish
 * returns FlEvents; *next_cursor is the seq to pass as after_seq for the
 * next page, or 0 when there is none. */
void        fl_store_query_events_async   (FlStore             *self,
                                            const FlEventQuery  *query,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
GPtrArray  *fl_store_query_events_finish  (FlStore      *self,
                                            GAsyncResult *result,
                                            gint64       *next_cursor,
                                            GError      **error);

void        fl_store_get_event_async      (FlStore             *self,
                                            const char          *event_id,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
FlEvent    *fl_store_get_event_finish     (FlStore      *self,
                                            GAsyncResult *result,
                                            GError      **error);

/* Stored events with seq > since_seq, in seq order, up to limit; for a
 * subscriber resuming.  device_ids NULL means every device. */
void        fl_store_events_since_async   (FlStore             *self,
                                            gint64               since_seq,
                                            const char * const  *device_ids,
                                            guint                limit,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
GPtrArray  *fl_store_events_since_finish  (FlStore      *self,
                                            GAsyncResult *result,
                                            GError      **error);

typedef struct {
  gint64 t;       /* bucket start, ms */
  double min;
  double max;
  double avg;
  gint64 count;
} FlTelemetryBucket;

/* Buckets of one metric of one device over [from, to): about `points`
 * buckets of equal width.  Works for any range (a year included) without
 * reading every raw point.  Returns a GArray of FlTelemetryBucket, empty
 * buckets left out; *bucket_ms gets the width used. */
void        fl_store_telemetry_async      (FlStore             *self,
                                            const char          *device_id,
                                            const char          *metric,
                                            gint64               from,
                                            gint64               to,
                                            guint                points,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
GArray     *fl_store_telemetry_finish     (FlStore      *self,
                                            GAsyncResult *result,
                                            gint64       *bucket_ms,
                                            GError      **error);

/* ---- devices --------------------------------------------------------- */

/* All stored devices, for the relay's in-memory registry at start-up.
 * Synchronous. */
GPtrArray  *fl_store_load_devices         (FlStore  *self,
                                            GError  **error);
/* Queues a write of the device's current state (a snapshot is taken now)
 * into the next group commit.  Fire and forget: a later save of the same
 * device in the same group wins. */
void        fl_store_save_device          (FlStore  *self,
                                            FlDevice *device);

/* ---- numbers --------------------------------------------------------- */

gint64      fl_store_get_last_seq         (FlStore *self);
guint64     fl_store_get_event_count      (FlStore *self);
guint64     fl_store_get_size_bytes       (FlStore *self);
guint64     fl_store_get_commit_count     (FlStore *self);

G_END_DECLS
