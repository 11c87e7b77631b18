/* fl-store-private.h: test and benchmark hooks of FlStore.  Not part of
 * the API the relay uses. */
#pragma once

#include "fl-store.h"

G_BEGIN_DECLS

/* Tuning, applied from the next group commit on.  0 keeps a value.
 * generation_size: dedupe entries kept in the in-memory "hot" set before
 *   they are frozen into an immutable sorted generation (default 131072;
 *   also FL_STORE_GENERATION_SIZE in the environment at open).
 * index_batch: un-indexed log rows that trigger a sorted index build
 *   (default 32768; FL_STORE_INDEX_BATCH).
 * rollup_batch: events accumulated in memory before the telemetry rollups
 *   are written (default 262144; FL_STORE_ROLLUP_BATCH). */
void     _fl_store_set_tuning            (FlStore *self,
                                          guint    generation_size,
                                          guint    index_batch,
                                          guint    rollup_batch);

/* A barrier through the writer: everything queued before it is committed,
 * and in the same transaction the log is fully indexed, the rollups are
 * written and, with freeze, the hot dedupe set becomes a generation. */
void     _fl_store_sync_async            (FlStore             *self,
                                          gboolean             freeze,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
gboolean _fl_store_sync_finish           (FlStore      *self,
                                          GAsyncResult *result,
                                          GError      **error);

guint    _fl_store_get_generation_count  (FlStore *self);
/* Microseconds the writer thread spent inside group commits. */
gint64   _fl_store_get_writer_busy_usec  (FlStore *self);
/* CPU time (CLOCK_THREAD_CPUTIME_ID) the writer thread spent there. */
gint64   _fl_store_get_writer_cpu_usec   (FlStore *self);
/* SQLite probes done by dedupe lookups (Bloom positives and hot hits). */
guint64  _fl_store_get_dedupe_probes     (FlStore *self);

/* What the writer did besides appending (counters since open). */
typedef struct {
  guint64 slices;            /* maintenance transactions */
  guint64 slice_max_usec;    /* longest of them, work and commit */
  guint64 freezes;           /* generations written */
  guint64 index_batches;     /* index batches completed */
  guint64 rollup_rounds;     /* full rollup writes completed */
  guint64 rollup_devices;    /* single-device rollup writes */
  guint64 checkpoints;       /* checkpointer passes */
  guint64 wal_restarts;      /* times the WAL started over from its beginning */
  guint64 wal_max_bytes;     /* largest WAL seen after a commit */
  guint64 restart_waits;     /* times the writer waited for a WAL restart */
  guint64 restart_wait_usec; /* how long in all */
  guint64 restart_wait_max_usec; /* the longest */
} FlStoreMaintenanceStats;

void     _fl_store_get_maintenance_stats (FlStore                 *self,
                                          FlStoreMaintenanceStats *stats);

/* Bytes of heap the store holds outside SQLite: hot sets, Bloom filters,
 * rollup cells, index batches (capacities, not estimates of use). */
guint64  _fl_store_get_heap_bytes        (FlStore *self);

/* Test hook: every row a maintenance slice writes also sleeps usec (a
 * slow disk); slices still end at their time budget. */
void     _fl_store_set_maintenance_delay (FlStore *self,
                                          guint    usec);

/* FL_STORE_HASH_BITS=n in the environment at open keeps only n bits of
 * every id hash (tests: forces hash collisions between distinct ids). */

G_END_DECLS
