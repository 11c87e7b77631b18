/* fl-store.c: the relay's event and device store, on SQLite.
 *
 * The naive schema (a UNIQUE index on the text id and an index on
 * (device, ts), maintained per row) dirties a random leaf page of each
 * index per event, so every commit writes KBs per event to the WAL.  Here
 * every per-event write is an append at the end of a B-tree, and whatever
 * needs another order is built behind the log in large sorted batches.
 *
 * - The log.  `events` (seq INTEGER PRIMARY KEY, device, ts, type,
 *   received_at) is a narrow table of small integers (cheap to scan), and
 *   `bodies` (seq INTEGER PRIMARY KEY, id, json) holds each event's
 *   normalised JSON text, so reads and fan-out only splice text.  Devices,
 *   types and metrics are interned into small integers (`sources`,
 *   `types`, `metrics`).
 *
 * - Dedupe on the event id, exact and over all history, without a random
 *   B-tree that grows with history.  Each id gets a 64-bit hash (salted per
 *   database).  The hashes of the newest events live in an in-memory "hot"
 *   set (open addressing, hash -> seq).  When it holds generation_size
 *   entries it is frozen: sorted by hash and written to `dedupe` (gen,
 *   hash, seq), a WITHOUT ROWID table that therefore only gets appends, in
 *   maintenance slices, with a split-block Bloom filter (~10 bits
 *   per id, kept in `gens` and loaded at open).  A lookup checks the hot
 *   set(s) and the Bloom filters and only probes SQLite on a hit; every
 *   hash match is confirmed by comparing the stored id text, so distinct
 *   ids with the same hash are never taken as duplicates.  At open the hot
 *   set is rebuilt from the log rows after the last frozen generation.
 *   Lookups cost one Bloom probe per generation: memory and time grow
 *   with history (1.25 bytes per stored id).  The generations are
 *   searched by a stage thread ahead of the writer (see "the dedupe
 *   stage" below), so that cost is off the writer's thread.
 *
 * - Lookup indexes are built behind the log: `ix_dev_seq` (device, seq),
 *   WITHOUT ROWID and covering (ts, type), and `ix_dev_min` (device,
 *   minute -> lo_seq, hi_seq), one row per device and minute of event
 *   time: a query by time reads ix_dev_seq between the seqs of the minutes
 *   it covers, with the time range as a filter (a per-event (device, ts)
 *   index cost a quarter of the writer's time).  A batch (index_batch
 *   rows, or what is there after INDEX_MAX_AGE_USEC) is sorted by device
 *   (in linear time), so it dirties about one leaf page per device, and is
 *   written in maintenance slices; it counts once complete
 *   (meta.indexed_upto).  Queries read the indexes for seq <= indexed_upto
 *   and scan the un-indexed tail of the narrow log.
 *
 * - Telemetry rollups (`rollups`: device, metric, res, t -> min, max, sum,
 *   count; res is one minute and one hour) are accumulated in memory by the
 *   writer from every numeric member of each event's data (read from the
 *   JSON text it has just built) and written in key order per device.
 *   Each device has its own watermark (sources.rolled_upto; meta
 *   rolled_upto is a floor for all of them), so a chatty device is written
 *   alone and the un-rolled tail of any device stays short.  A query uses
 *   the coarsest rollup whose resolution divides the bucket width, raw
 *   events for the parts of [from, to) that are not whole rollup buckets,
 *   and adds the events after the device's watermark.
 *
 * - Threads.  One writer thread owns the write connection.  It blocks for
 *   the first queued request, drains what else is queued (up to
 *   GROUP_MAX_EVENTS events), runs one transaction of appends only,
 *   commits, and only then completes the requests' tasks (one idle source
 *   per main context per group).  Maintenance (generation freezes, index
 *   batches, rollup writes) runs in transactions of its own, each about
 *   MAINT_SLICE_USEC of work, when the queue is empty, so an append waits
 *   for one short slice at most; when maintenance lags (sustained load)
 *   one longer slice also runs after each group.  A generation's sort and
 *   Bloom filter are built on a short-lived helper thread.  A dedupe
 *   stage thread, with a read-only connection, searches the frozen
 *   generations for each append before the writer gets it.  Two reader
 *   threads (a GThreadPool) answer queries, each with a read-only
 *   connection of its own, in WAL mode, so they never block the writer.  The in-memory dedupe state is shared with readers (get_event)
 *   under a GRWLock.  A checkpointer thread (at a lower priority)
 *   copies the WAL into the database and makes it start over, holding a
 *   read transaction so that SQLite never does that in the writer's
 *   transactions (see checkpoint_thread_func); the writer never
 *   checkpoints, syncs or truncates.  It waits for a restart of the WAL
 *   only when idle right after a checkpoint pass (1-3 ms), or when the
 *   WAL passes its bound under sustained load.
 *
 * - Durability.  WAL with synchronous=NORMAL: a commit is atomic and
 *   survives a crash of the process (the WAL frames are in the OS page
 *   cache when COMMIT returns); only a power loss or kernel crash may lose
 *   the last commits before the next checkpoint's fsync.  That is the
 *   trade the relay makes for group commit without an fsync per group.
 */

#define G_LOG_DOMAIN "fl-store"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fl-store.h"
#include "fl-store-private.h"
#include "fl-event-codec.h"

G_DEFINE_QUARK (fl-store-error-quark, fl_store_error)

/* ---- tuning ------------------------------------------------------------ */

#define SCHEMA_VERSION            2
#define GROUP_MAX_EVENTS          20000
#define DEFAULT_GENERATION_SIZE   131072
#define DEFAULT_INDEX_BATCH       32768
#define DEFAULT_ROLLUP_BATCH      262144
#define ROLLUP_DEVICE_MAX_PENDING 2048     /* a chatty device is written alone */
#define ROLLUP_DEVICE_MAX_CELLS   256      /* so is one with many cells (a short write) */
#define ROLLUP_MAX_CELLS          49152    /* memory bound of the cells */
#define ROLLUP_MAX_AGE_USEC       (30 * G_USEC_PER_SEC)
#define INDEX_MAX_AGE_USEC        (2 * G_USEC_PER_SEC)
#define IDLE_TICK_USEC            (1 * G_USEC_PER_SEC)
#define IDLE_INDEX_MIN_ROWS       1024
#define N_READERS                 2
#define WRITER_CACHE_KIB          6144
#define READER_CACHE_KIB          2048
#define STAGE_CACHE_KIB           256      /* the dedupe stage's connection (random probes) */
#define CHECKPOINT_EVERY_BYTES    (4 * 1024 * 1024)    /* WAL growth that wakes the checkpointer */
#define WAL_RESTART_BYTES         (72 * 1024 * 1024)   /* then the WAL is made to start over, when idle */
#define WAL_HARD_BYTES            (88 * 1024 * 1024)   /* and past this, between groups too */
#define WAL_MUST_BYTES            (108 * 1024 * 1024)  /* and past this, whatever it costs */
#define WAL_HARD_MAX_LEFT         4096                 /* frames not checkpointed yet, at most (between groups) */
#define WAL_RESTART_WAIT_USEC     (10 * 1000)          /* the writer waits that long at most (idle) */
#define WAL_RESTART_FRESH_USEC    (30 * 1000)          /* ... only that soon after a checkpoint pass */
#define WAL_HARD_WAIT_USEC        (2 * G_USEC_PER_SEC) /* (past WAL_MUST_BYTES) */
#define WAL_RESTART_EVERY_USEC    (100 * 1000)         /* between two attempts */
#define WAL_RESTART_MAX_LEFT      256                  /* frames not checkpointed yet, at most */
#define MAINT_SLICE_USEC          1500     /* a maintenance transaction, queue empty */
#define MAINT_MIN_WORK_USEC       200      /* its work, when its commit takes the rest */
#define MAINT_BACKLOG_SLICE_USEC  8000     /* one between groups when maintenance lags */
#define DB_CHUNK_BYTES            (16 * 1024 * 1024)   /* the checkpointer grows the file by that much */
#define JOURNAL_SIZE_LIMIT        (192 * 1024 * 1024)  /* above the WAL's bound: never truncated while open */
#define BLOOM_BITS_PER_KEY        10

#define MINUTE_MS ((gint64) 60 * 1000)
#define HOUR_MS   ((gint64) 60 * 60 * 1000)
#define TS_LIMIT  ((gint64) 1 << 52)       /* telemetry range clamp */
/* floor (ts / MINUTE_MS) in SQL, whose % keeps the dividend's sign */
#define MINUTE_OF_TS "((ts - ((ts % 60000) + 60000) % 60000) / 60000)"

/* ---- small helpers ----------------------------------------------------- */

static inline gint64
floor_div (gint64 a,
           gint64 b)
{
  gint64 q = a / b;

  if ((a % b != 0) && ((a < 0) != (b < 0)))
    q--;
  return q;
}

static inline gint64
floor_to (gint64 a,
          gint64 m)
{
  return floor_div (a, m) * m;
}

static inline gint64
ceil_to (gint64 a,
         gint64 m)
{
  return -floor_to (-a, m);
}

/* ---- the id hash --------------------------------------------------------
 * Part of the on-disk format (dedupe.hash, gens.bloom): never change it
 * without a migration that rebuilds the generations. */

static inline guint64
mum (guint64 a,
     guint64 b)
{
  unsigned __int128 r = (unsigned __int128) a * b;

  return (guint64) r ^ (guint64) (r >> 64);
}

static inline guint64
load64_le (const guchar *p)
{
  guint64 v;

  memcpy (&v, p, 8);
  return GUINT64_FROM_LE (v);
}

static guint64
id_hash (guint64     salt,
         const char *str,
         gsize       len)
{
  const guchar *p = (const guchar *) str;
  guint64 h = salt ^ mum (len ^ G_GUINT64_CONSTANT (0xa0761d6478bd642f),
                          G_GUINT64_CONSTANT (0xe7037ed1a0b428db));
  gsize n = len;

  while (n >= 16)
    {
      h = mum (load64_le (p) ^ G_GUINT64_CONSTANT (0xa0761d6478bd642f),
               load64_le (p + 8) ^ h ^ G_GUINT64_CONSTANT (0x8ebc6af09c88c6e3));
      p += 16;
      n -= 16;
    }
  if (n > 0)
    {
      guchar buf[16] = { 0 };

      memcpy (buf, p, n);
      h = mum (load64_le (buf) ^ G_GUINT64_CONSTANT (0x589965cc75374cc3),
               load64_le (buf + 8) ^ h ^ G_GUINT64_CONSTANT (0x1d8e4e27c47d124f));
    }
  /* splitmix64 finaliser */
  h ^= h >> 30;
  h *= G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  h ^= h >> 27;
  h *= G_GUINT64_CONSTANT (0x94d049bb133111eb);
  h ^= h >> 31;
  return h;
}

/* ---- split-block Bloom filter: 512-bit blocks, one bit in each of the
 * eight 64-bit words, so a lookup touches one cache line. ---------------- */

typedef struct {
  gint64   gen;
  gint64   first_seq;
  gint64   last_seq;
  guint64  count;
  guint32  n_blocks;
  guint64 *words;   /* n_blocks * 8 */
} Generation;

static inline guint64
bloom_rehash (guint64 h)
{
  h ^= h >> 33;
  h *= G_GUINT64_CONSTANT (0xff51afd7ed558ccd);
  h ^= h >> 33;
  h *= G_GUINT64_CONSTANT (0xc4ceb9fe1a85ec53);
  h ^= h >> 33;
  return h;
}

static inline guint64 *
bloom_block (const Generation *g,
             guint64           h)
{
  guint32 b = (guint32) (((h >> 32) * (guint64) g->n_blocks) >> 32);

  return g->words + (gsize) b * 8;
}

static void
bloom_add (Generation *g,
           guint64     h)
{
  guint64 *w = bloom_block (g, h);
  guint64 h2 = bloom_rehash (h);

  for (guint i = 0; i < 8; i++)
    w[i] |= G_GUINT64_CONSTANT (1) << ((h2 >> (6 * i)) & 63);
}

static inline gboolean
bloom_may_contain (const Generation *g,
                   guint64           h)
{
  const guint64 *w = bloom_block (g, h);
  guint64 h2 = bloom_rehash (h);

  for (guint i = 0; i < 8; i++)
    if (!(w[i] & (G_GUINT64_CONSTANT (1) << ((h2 >> (6 * i)) & 63))))
      return FALSE;
  return TRUE;
}

static void
generation_free (Generation *g)
{
  g_free (g->words);
  g_free (g);
}

/* ---- the hot set: open addressing, linear probing, a multimap from hash
 * to seq (seq stored as an offset from base; 0 marks an empty slot). ----- */

typedef struct {
  guint64 *hashes;
  guint32 *offs;
  gsize    mask;
  gsize    count;
  gint64   base;
} HotSet;

static HotSet *
hot_set_new (gint64 base,
             gsize  max_entries)
{
  HotSet *hs = g_new0 (HotSet, 1);
  gsize cap = 1024;

  while (cap < max_entries + max_entries / 2)
    cap <<= 1;
  hs->hashes = g_new (guint64, cap);
  hs->offs = g_new0 (guint32, cap);
  hs->mask = cap - 1;
  hs->base = base;
  return hs;
}

static void
hot_set_free (HotSet *hs)
{
  if (hs == NULL)
    return;
  g_free (hs->hashes);
  g_free (hs->offs);
  g_free (hs);
}

static inline void
hot_set_put (HotSet  *hs,
             guint64  h,
             guint32  off)
{
  gsize i = (gsize) (h ^ (h >> 29)) & hs->mask;

  while (hs->offs[i] != 0)
    i = (i + 1) & hs->mask;
  hs->hashes[i] = h;
  hs->offs[i] = off;
  hs->count++;
}

static void
hot_set_grow (HotSet *hs)
{
  guint64 *hashes = hs->hashes;
  guint32 *offs = hs->offs;
  gsize old_cap = hs->mask + 1;

  hs->hashes = g_new (guint64, old_cap * 2);
  hs->offs = g_new0 (guint32, old_cap * 2);
  hs->mask = old_cap * 2 - 1;
  hs->count = 0;
  for (gsize i = 0; i < old_cap; i++)
    if (offs[i] != 0)
      hot_set_put (hs, hashes[i], offs[i]);
  g_free (hashes);
  g_free (offs);
}

/* Callers hold the dedupe lock for writing (the set may grow). */
static inline void
hot_set_insert (HotSet *hs,
                guint64 h,
                gint64  seq)
{
  g_assert (seq > hs->base && seq - hs->base < G_MAXUINT32);
  if ((hs->count + 1) * 10 > (hs->mask + 1) * 7)
    hot_set_grow (hs);
  hot_set_put (hs, h, (guint32) (seq - hs->base));
}

/* Calls func for each seq stored under h; stops when it returns TRUE. */
typedef gboolean (*SeqFunc) (gint64 seq, gpointer user_data);

static inline gboolean
hot_set_foreach_match (const HotSet *hs,
                       guint64       h,
                       SeqFunc       func,
                       gpointer      user_data)
{
  gsize i = (gsize) (h ^ (h >> 29)) & hs->mask;

  while (hs->offs[i] != 0)
    {
      if (hs->hashes[i] == h && func (hs->base + hs->offs[i], user_data))
        return TRUE;
      i = (i + 1) & hs->mask;
    }
  return FALSE;
}

/* ---- rollup cells (writer memory) -------------------------------------- */

typedef struct {
  guint32 device;
  guint32 metric;
  gint64  t;       /* minute start */
  double  min;
  double  max;
  double  sum;
  gint64  count;
} RollCell;

static gboolean
roll_cell_equal (gconstpointer a,
                 gconstpointer b)
{
  const RollCell *x = a, *y = b;

  return x->device == y->device && x->metric == y->metric && x->t == y->t;
}

static int
roll_cell_cmp (gconstpointer a,
               gconstpointer b)
{
  const RollCell *x = *(RollCell * const *) a, *y = *(RollCell * const *) b;

  if (x->device != y->device)
    return x->device < y->device ? -1 : 1;
  if (x->metric != y->metric)
    return x->metric < y->metric ? -1 : 1;
  return (x->t > y->t) - (x->t < y->t);
}

/* The writer's view of a device: its id, and its rollup cells not
 * written yet.  Each device has its own rollup watermark
 * (sources.rolled_upto), so a chatty device is written alone and its
 * un-rolled tail stays short. */
typedef struct {
  guint32     id;
  gboolean    dirty;     /* in self->dirty_devices */
  gboolean    queued;    /* in self->full_devices */
  guint32     pending;   /* events since its rollups were last written */
  GHashTable *cells;     /* RollCell set (metric, minute), or NULL */
} DeviceSlot;

static void
device_slot_free (DeviceSlot *slot)
{
  g_clear_pointer (&slot->cells, g_hash_table_unref);
  g_free (slot);
}

/* An un-indexed log row, kept by the writer for the next index batch. */
typedef struct {
  gint64  seq;
  gint64  ts;
  guint32 device;
  guint32 type;
} IxEntry;

/* A row of ix_dev_min: the seqs of a device's events in one minute of
 * their timestamps lie in [lo, hi]. */
typedef struct {
  gint64  minute;
  gint64  lo;
  gint64  hi;
  guint32 device;
} IxMinute;

static int
ix_minute_cmp (gconstpointer a,
               gconstpointer b)
{
  const IxMinute *x = a, *y = b;

  if (x->device != y->device)
    return x->device < y->device ? -1 : 1;
  return (x->minute > y->minute) - (x->minute < y->minute);
}

/* ---- requests to the writer -------------------------------------------- */

typedef enum {
  REQ_APPEND,
  REQ_SAVE_DEVICE,
  REQ_SYNC,
  REQ_CLOSE,
} RequestKind;

typedef struct {
  RequestKind  kind;
  GTask       *task;          /* APPEND, SYNC */
  GPtrArray   *events;        /* APPEND */
  gint64       received_at;   /* APPEND */
  guint64     *hashes;        /* APPEND: the ids' hashes (dedupe stage) */
  gint64      *found;         /* APPEND: a stored event with that id (its seq), or 0 */
  gint64       checked_gen;   /* APPEND: the stage searched generations up to this one */
  GPtrArray   *accepted;      /* APPEND: result */
  guint        duplicates;    /* APPEND: result */
  gboolean     freeze;        /* SYNC */
  char        *device_id;     /* SAVE_DEVICE */
  char        *device_text;   /* SAVE_DEVICE */
  GError      *error;         /* the outcome, when it failed */
} Request;

typedef struct {
  GPtrArray *events;
  guint      duplicates;
} AppendResult;

static void
append_result_free (AppendResult *r)
{
  g_clear_pointer (&r->events, g_ptr_array_unref);
  g_free (r);
}

static void
request_free (Request *req)
{
  if (req == NULL)
    return;
  g_clear_error (&req->error);
  g_clear_object (&req->task);
  g_clear_pointer (&req->events, g_ptr_array_unref);
  g_clear_pointer (&req->accepted, g_ptr_array_unref);
  g_free (req->hashes);
  g_free (req->found);
  g_free (req->device_id);
  g_free (req->device_text);
  g_free (req);
}

typedef struct {
  gint64  hash;   /* as SQLite orders it */
  gint64  seq;
} HashSeq;

static int
hash_seq_cmp (gconstpointer a,
              gconstpointer b)
{
  const HashSeq *x = a, *y = b;

  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

/* ---- reader connections ------------------------------------------------ */

typedef struct {
  sqlite3    *db;
  GHashTable *stmts;   /* SQL text (static) -> sqlite3_stmt */
} Reader;

/* ---- the store ----------------------------------------------------------- */

struct _FlStore
{
  GObject       parent_instance;

  char         *path;
  char         *wal_path;

  GMutex        lock;          /* closed + queue pushes */
  gboolean      closed;
  GAsyncQueue  *queue;         /* Request */
  GThread      *writer_thread;
  GAsyncQueue  *staged;        /* Request, for the dedupe stage */
  guint         n_staged;      /* requests in the stage (under lock) */
  GThread      *stage_thread;
  Reader       *stage_reader;  /* its connection */

  GThreadPool  *pool;
  GAsyncQueue  *readers;       /* idle Reader */
  GPtrArray    *all_readers;

  /* writer-owned */
  sqlite3      *db;
  GHashTable   *wstmts;
  guint64       salt;
  guint         hash_bits;     /* 0: all 64 */
  gint64        next_seq;
  gint64        indexed_upto;
  gint64        rolled_upto;
  gint64        frozen_upto;
  gint64        next_gen;
  GHashTable   *device_ids;    /* name -> DeviceSlot */
  GPtrArray    *device_slots;  /* id -> DeviceSlot (borrowed) */
  GHashTable   *type_ids;      /* name -> id (GUINT_TO_POINTER) */
  GHashTable   *metric_ids;    /* name -> id */
  guint32       next_device_id;
  guint32       next_type_id;
  guint32       next_metric_id;
  GPtrArray    *dirty_devices; /* DeviceSlot with pending events */
  GPtrArray    *full_devices;  /* DeviceSlot over ROLLUP_DEVICE_MAX_PENDING */
  guint64       roll_cells;    /* cells in memory */
  guint64       roll_pending;  /* events since the last full rollup write */
  gint64        roll_first_pending_usec;
  gint64        last_index_usec;
  GHashTable   *device_saves;  /* device id -> text, per group */
  GArray       *hashes;        /* guint64 scratch */
  GArray       *ix_pending;    /* IxEntry after the batch being built, if valid */
  gboolean      ix_pending_valid;
  GArray       *ix_by_seq;     /* the batch being built, (device, seq) order */
  GArray       *ix_minutes;    /* its IxMinute, (device, minute) order */
  guint         ix_pos_seq;
  guint         ix_pos_min;
  gint64        ix_build_upto; /* 0: no batch being built */
  GPtrArray    *roll_round;    /* DeviceSlot (borrowed) of a full rollup write, id order */
  guint         roll_round_pos;
  gint64        roll_round_upto;
  gint          wal_frames;    /* from the WAL hook, after each commit */
  gint          page_size;
  gint64        last_size_usec;
  guint         maint_delay_usec; /* test hook: per row of maintenance */
  gint64        slice_work_usec; /* work budget of an idle slice, so that with its commit it takes MAINT_SLICE_USEC */
  GThread      *freeze_thread; /* sorts the entries of freezing, builds new_gen's filter */
  gint          freeze_ready;  /* atomic: freeze_thread is done */

  /* the checkpointer: copies WAL frames into the database off the writer */
  GThread      *ckpt_thread;
  GMutex        ckpt_lock;
  GCond         ckpt_cond;
  gboolean      ckpt_wanted;
  gboolean      ckpt_quit;
  guint64       ckpt_signalled_at;   /* WAL size at the last wake-up */
  gint          ckpt_restart;        /* RESTART_*: the writer waits for a WAL restart */
  gint64        last_restart_usec;   /* writer: last attempt */
  gint          ckpt_backfilled;     /* atomic: frames in the database after the last pass */
  gint64        ckpt_pass_end_usec;  /* atomic: when the last pass ended (0: one is running) */

  /* dedupe state, shared with readers under dedupe_lock; the writer
   * reads it without the lock (it is the only one to change it) */
  GRWLock       dedupe_lock;
  HotSet       *hot;
  HotSet       *freezing;      /* being written as new_gen */
  Generation   *new_gen;       /* its Bloom filter is complete */
  HashSeq      *freeze_entries;
  gsize         freeze_n;
  gsize         freeze_pos;
  gboolean      freeze_done;   /* its gens row is in the open transaction */
  GPtrArray    *gens;          /* Generation, oldest first */

  /* tuning (atomics, set by _fl_store_set_tuning) */
  guint         generation_size;
  guint         index_batch;
  guint         rollup_batch;

  /* counters (atomics) */
  gint64        last_seq;
  guint64       event_count;
  guint64       commit_count;
  guint64       size_bytes;
  gint64        busy_usec;
  gint64        busy_cpu_usec;
  guint64       dedupe_probes;
  guint         n_gens;
  FlStoreMaintenanceStats mstats;
};

G_DEFINE_FINAL_TYPE (FlStore, fl_store, G_TYPE_OBJECT)

static void fl_store_writer_stop (FlStore *self);

/* ---- SQLite helpers ----------------------------------------------------- */

static gboolean
set_sqlite_error (GError    **error,
                  sqlite3    *db,
                  int         rc,
                  const char *what)
{
  g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
               "%s: %s (%d)", what,
               db ? sqlite3_errmsg (db) : sqlite3_errstr (rc), rc);
  return FALSE;
}

static gboolean
exec_sql (sqlite3     *db,
          const char  *sql,
          GError     **error)
{
  char *msg = NULL;
  int rc = sqlite3_exec (db, sql, NULL, NULL, &msg);

  if (rc != SQLITE_OK)
    {
      g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                   "%s: %s", sql, msg ? msg : sqlite3_errstr (rc));
      sqlite3_free (msg);
      return FALSE;
    }
  return TRUE;
}

/* A cached prepared statement, reset and with its bindings cleared. */
static sqlite3_stmt *
cached_stmt (sqlite3     *db,
             GHashTable  *cache,
             const char  *sql,
             GError     **error)
{
  sqlite3_stmt *stmt = g_hash_table_lookup (cache, sql);
  int rc;

  if (stmt != NULL)
    {
      sqlite3_reset (stmt);
      sqlite3_clear_bindings (stmt);
      return stmt;
    }
  rc = sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (error, db, rc, "prepare");
      return NULL;
    }
  g_hash_table_insert (cache, (gpointer) sql, stmt);
  return stmt;
}

static GHashTable *
stmt_cache_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                (GDestroyNotify) sqlite3_finalize);
}

/* Runs stmt to the end, expecting no rows. */
static gboolean
step_done (sqlite3       *db,
           sqlite3_stmt  *stmt,
           GError       **error)
{
  int rc = sqlite3_step (stmt);

  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return set_sqlite_error (error, db, rc, "step");
  return TRUE;
}

static gboolean
query_int64 (sqlite3     *db,
             const char  *sql,
             gint64      *out,
             GError     **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);

  if (rc != SQLITE_OK)
    return set_sqlite_error (error, db, rc, "prepare");
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64 (stmt, 0);
  else if (rc == SQLITE_DONE)
    *out = 0;
  sqlite3_finalize (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return set_sqlite_error (error, db, rc, sql);
  return TRUE;
}

static gboolean
open_connection (const char  *path,
                 gboolean     readonly,
                 sqlite3    **out,
                 GError     **error)
{
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_NOMUTEX;
  int rc;

  flags |= readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  rc = sqlite3_open_v2 (path, &db, flags, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                   "Cannot open %s: %s", path,
                   db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
      sqlite3_close (db);
      return FALSE;
    }
  sqlite3_extended_result_codes (db, 1);
  sqlite3_busy_timeout (db, 10000);
  *out = db;
  return TRUE;
}

/* ---- schema and migrations ---------------------------------------------
 * migrations[i] takes user_version i to i + 1, in one transaction. */

static const char * const migrations[] = {
  /* 0 -> 1 */
  "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
  "INSERT INTO meta (key, value) VALUES"
  "  ('indexed_upto', 0), ('rolled_upto', 0), ('frozen_upto', 0),"
  "  ('salt', random ());"
  /* rolled_upto: this device's events up to it are in the rollups */
  "CREATE TABLE sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
  "  rolled_upto INTEGER NOT NULL DEFAULT 0);"
  "CREATE TABLE types (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
  "CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
  /* the log: appends only */
  "CREATE TABLE events (seq INTEGER PRIMARY KEY, device INTEGER NOT NULL,"
  "  ts INTEGER NOT NULL, type INTEGER NOT NULL, received_at INTEGER NOT NULL);"
  "CREATE TABLE bodies (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, json TEXT NOT NULL);"
  /* indexes built behind the log in sorted batches */
  "CREATE TABLE ix_dev_seq (device INTEGER NOT NULL, seq INTEGER NOT NULL,"
  "  ts INTEGER NOT NULL, type INTEGER NOT NULL,"
  "  PRIMARY KEY (device, seq)) WITHOUT ROWID;"
  "CREATE TABLE ix_dev_ts (device INTEGER NOT NULL, ts INTEGER NOT NULL,"
  "  seq INTEGER NOT NULL, type INTEGER NOT NULL,"
  "  PRIMARY KEY (device, ts, seq)) WITHOUT ROWID;"
  /* dedupe generations */
  "CREATE TABLE gens (gen INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL,"
  "  last_seq INTEGER NOT NULL, count INTEGER NOT NULL,"
  "  n_blocks INTEGER NOT NULL, bloom BLOB NOT NULL);"
  "CREATE TABLE dedupe (gen INTEGER NOT NULL, hash INTEGER NOT NULL,"
  "  seq INTEGER NOT NULL, PRIMARY KEY (gen, hash, seq)) WITHOUT ROWID;"
  /* telemetry rollups; res is the bucket width in ms */
  "CREATE TABLE rollups (device INTEGER NOT NULL, metric INTEGER NOT NULL,"
  "  res INTEGER NOT NULL, t INTEGER NOT NULL, min REAL NOT NULL,"
  "  max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,"
  "  PRIMARY KEY (device, metric, res, t)) WITHOUT ROWID;"
  "CREATE TABLE devices (device_id TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;",
  /* 1 -> 2: the (device, ts) index becomes a map of each device's minutes
   * to seq ranges (one row per device and minute, not per event);
   * queries by time read ix_dev_seq within those ranges */
  "CREATE TABLE ix_dev_min (device INTEGER NOT NULL, minute INTEGER NOT NULL,"
  "  lo_seq INTEGER NOT NULL, hi_seq INTEGER NOT NULL,"
  "  PRIMARY KEY (device, minute)) WITHOUT ROWID;"
  "INSERT INTO ix_dev_min (device, minute, lo_seq, hi_seq)"
  "  SELECT device, " MINUTE_OF_TS ", min (seq), max (seq) FROM ix_dev_seq"
  "  WHERE true GROUP BY 1, 2;"
  "DROP TABLE ix_dev_ts;",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == SCHEMA_VERSION);

static gboolean
migrate (sqlite3  *db,
         GError  **error)
{
  gint64 version = 0;

  if (!query_int64 (db, "PRAGMA user_version", &version, error))
    return FALSE;
  if (version > (gint64) G_N_ELEMENTS (migrations))
    {
      g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_SCHEMA,
                   "The database has schema version %" G_GINT64_FORMAT
                   "; this build knows up to %u",
                   version, (guint) G_N_ELEMENTS (migrations));
      return FALSE;
    }

  for (gint64 v = version; v < (gint64) G_N_ELEMENTS (migrations); v++)
    {
      g_autofree char *set_version = NULL;

      if (!exec_sql (db, "BEGIN IMMEDIATE", error))
        return FALSE;
      /* re-check inside the write lock: another process may have won */
      if (!query_int64 (db, "PRAGMA user_version", &version, error))
        goto fail;
      if (version != v)
        {
          exec_sql (db, "ROLLBACK", NULL);
          return migrate (db, error);
        }
      set_version = g_strdup_printf ("PRAGMA user_version = %" G_GINT64_FORMAT, v + 1);
      if (!exec_sql (db, migrations[v], error) ||
          !exec_sql (db, set_version, error) ||
          !exec_sql (db, "COMMIT", error))
        goto fail;
      g_debug ("Migrated %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT, v, v + 1);
    }
  return TRUE;

fail:
  exec_sql (db, "ROLLBACK", NULL);
  return FALSE;
}

/* ---- counters ------------------------------------------------------------ */

/* Returns the size of the WAL file. */
static guint64
update_size (FlStore *self)
{
  struct stat st;
  guint64 size = 0, wal = 0;

  if (stat (self->path, &st) == 0)
    size += st.st_size;
  if (stat (self->wal_path, &st) == 0)
    wal = st.st_size;
  __atomic_store_n (&self->size_bytes, size + wal, __ATOMIC_RELAXED);
  return wal;
}

static gint64
thread_cpu_usec (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (gint64) ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

enum {
  RESTART_NONE,
  RESTART_WANTED,     /* the writer waits, no transaction open */
  RESTART_RUNNING,    /* the checkpointer writes: the writer must wait */
};

/* ---- the checkpointer -----------------------------------------------
 * The writer does not checkpoint on commit (wal_autocheckpoint = 0; its
 * WAL hook only records the WAL's size): this thread, on its own
 * connection, copies WAL frames into the database with PASSIVE
 * checkpoints (never blocking the writer or readers) whenever the WAL
 * grew by CHECKPOINT_EVERY_BYTES.
 *
 * The WAL starting over costs an fsync of its new header, paid by the
 * connection whose write transaction finds the WAL wholly copied.  Left
 * to SQLite, that is the writer, at its first transaction after a pass
 * that caught up, which then held its appends for the fsync (measured:
 * 4-25 ms, and 117 ms when it also truncated the file to
 * journal_size_limit).  So the checkpointer keeps a read transaction open
 * on a second connection ("the pin", at the end of the WAL as of its
 * last pass): it holds a read mark, and SQLite restarts a WAL only when
 * no reader holds one, so the writer never does.  Under continuous
 * writes a checkpoint never quite catches up anyway; the WAL starts over
 * only when the writer asks (writer_wal_restart): once it is over
 * WAL_RESTART_BYTES and the checkpointer is nearly caught up, the writer,
 * with its queue empty, waits (WAL_RESTART_WAIT_USEC at most) while the
 * checkpointer, pin released, copies the rest and runs a one-row write
 * transaction itself, which starts the WAL over and pays the sync of its
 * new header (synchronous=NORMAL: that sync only).  The file is never
 * truncated while the store is open (journal_size_limit is above the
 * WAL's bound): it is reused from its start, with no block allocation
 * or release in the writer's way. */

static void
pin_end (sqlite3 *pin)
{
  if (pin != NULL && !sqlite3_get_autocommit (pin))
    exec_sql (pin, "COMMIT", NULL);
}

/* A read transaction at the current end of the WAL. */
static void
pin_begin (sqlite3 *pin)
{
  sqlite3_stmt *stmt = NULL;

  if (pin == NULL || !exec_sql (pin, "BEGIN", NULL))
    return;
  if (sqlite3_prepare_v2 (pin, "SELECT count (*) FROM meta", -1, &stmt, NULL) != SQLITE_OK ||
      sqlite3_step (stmt) != SQLITE_ROW)
    pin_end (pin);
  sqlite3_finalize (stmt);
}

static gpointer
checkpoint_thread_func (gpointer data)
{
  FlStore *self = data;
  sqlite3 *db = NULL;
  sqlite3 *pin = NULL;
  g_autoptr(GError) error = NULL;

  gint64 dummy;

  /* background work: on a busy machine the writer and the callers'
   * threads get the CPU first (the WAL's bound makes the writer wait for
   * this thread if it falls far behind) */
  if (setpriority (PRIO_PROCESS, (id_t) gettid (), 10) != 0)
    g_debug ("Checkpointer: cannot lower its priority: %s", g_strerror (errno));

  /* a connection learns that the database is in WAL mode when it first
   * reads it; until then a checkpoint is a no-op */
  if (!open_connection (self->path, FALSE, &db, &error) ||
      !exec_sql (db, "PRAGMA synchronous = NORMAL", &error) ||
      !query_int64 (db, "SELECT count (*) FROM sqlite_schema", &dummy, &error))
    {
      g_warning ("Checkpointer: %s", error->message);
      if (db != NULL)
        sqlite3_close (db);
      return NULL;
    }
  /* the database file grows in large steps: a checkpoint's fdatasync then
   * rarely has a size change to journal, only data to write */
  {
    int chunk = DB_CHUNK_BYTES;

    sqlite3_file_control (db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
  }
  if (!open_connection (self->path, TRUE, &pin, &error) ||
      !exec_sql (pin, "PRAGMA cache_size = -64", &error))
    {
      /* the writer then restarts the WAL itself at times: slower, not wrong */
      g_warning ("Checkpointer: %s", error->message);
      g_clear_error (&error);
      if (pin != NULL)
        sqlite3_close (pin);
      pin = NULL;
    }
  g_mutex_lock (&self->ckpt_lock);
  for (;;)
    {
      int log = 0, done = 0, rc;

      gboolean restart;

      while (!self->ckpt_wanted && !self->ckpt_quit && self->ckpt_restart != RESTART_WANTED)
        g_cond_wait (&self->ckpt_cond, &self->ckpt_lock);
      if (self->ckpt_quit)
        break;
      restart = self->ckpt_restart == RESTART_WANTED;
      self->ckpt_wanted = FALSE;
      g_mutex_unlock (&self->ckpt_lock);
      {
        gint64 t0 = g_get_monotonic_time ();

        /* the pin moves to the end of the WAL: everything before it may
         * be copied, and the WAL still cannot start over under the writer */
        __atomic_store_n (&self->ckpt_pass_end_usec, 0, __ATOMIC_RELAXED);
        pin_end (pin);
        pin_begin (pin);
        rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        __atomic_store_n (&self->ckpt_pass_end_usec, g_get_monotonic_time (), __ATOMIC_RELAXED);
        __atomic_fetch_add (&self->mstats.checkpoints, 1, __ATOMIC_RELAXED);
        __atomic_store_n (&self->ckpt_backfilled, rc == SQLITE_OK ? done : 0, __ATOMIC_RELAXED);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
          g_warning ("Checkpoint failed: %s", sqlite3_errmsg (db));
        g_debug ("Checkpoint: rc %d, %d of %d frames, %.1f ms", rc, done, log,
                 (g_get_monotonic_time () - t0) / 1000.0);
      }
      g_mutex_lock (&self->ckpt_lock);
      if (restart && self->ckpt_restart == RESTART_WANTED)
        {
          /* Everything is in the database and the writer waits: a small
           * write transaction here starts the WAL over (and pays the
           * sync of its new header), so the writer never does. */
          if (rc == SQLITE_OK && done == log && log > 0)
            {
              self->ckpt_restart = RESTART_RUNNING;
              g_mutex_unlock (&self->ckpt_lock);
              pin_end (pin);
              if (!exec_sql (db, "BEGIN IMMEDIATE;"
                                 "INSERT OR REPLACE INTO meta (key, value) VALUES ('wal_restart', 0);"
                                 "COMMIT", &error))
                {
                  g_warning ("Checkpointer: %s", error->message);
                  g_clear_error (&error);
                  exec_sql (db, "ROLLBACK", NULL);
                }
              g_mutex_lock (&self->ckpt_lock);
            }
          self->ckpt_restart = RESTART_NONE;
          g_cond_broadcast (&self->ckpt_cond);
        }
    }
  g_mutex_unlock (&self->ckpt_lock);
  pin_end (pin);
  if (pin != NULL)
    sqlite3_close (pin);
  sqlite3_close (db);
  return NULL;
}

/* Makes the WAL start over: waits while the checkpointer copies the rest
 * of it and restarts it.  Under continuous commits a PASSIVE checkpoint
 * never catches up, so the WAL would only grow.  With the queue empty
 * (hard FALSE): over WAL_RESTART_BYTES, only if the checkpointer is
 * nearly caught up, and WAL_RESTART_WAIT_USEC at most.  Between groups
 * under sustained load (hard): over WAL_HARD_BYTES on the same terms
 * with a longer final pass allowed, and over WAL_MUST_BYTES for as long
 * as the checkpointer needs (WAL_HARD_WAIT_USEC at most): the queue
 * grows meanwhile, but the WAL stays bounded. */
static void
writer_wal_restart (FlStore  *self,
                    gboolean  hard)
{
  gint64 now = g_get_monotonic_time ();
  gint64 end = now + (hard ? WAL_HARD_WAIT_USEC : WAL_RESTART_WAIT_USEC);
  guint64 wal_bytes = (guint64) self->wal_frames * (self->page_size + 24);
  guint64 over = wal_bytes / WAL_RESTART_BYTES;
  gint max_left;
  gint64 waited, pass_end;
  gboolean must;

  if ((hard ? wal_bytes < WAL_HARD_BYTES : over == 0) ||
      now - self->last_restart_usec < WAL_RESTART_EVERY_USEC)
    return;
  /* the larger the WAL, the longer a final pass we accept */
  max_left = hard ? WAL_HARD_MAX_LEFT : WAL_RESTART_MAX_LEFT << MIN (over - 1, 4);
  /* past WAL_MUST_BYTES the bound comes first */
  must = hard && wal_bytes >= WAL_MUST_BYTES;
  if (hard && !must)
    end = now + 5 * WAL_RESTART_WAIT_USEC;
  g_mutex_lock (&self->ckpt_lock);
  pass_end = __atomic_load_n (&self->ckpt_pass_end_usec, __ATOMIC_RELAXED);
  if (!must &&
      (self->wal_frames - __atomic_load_n (&self->ckpt_backfilled, __ATOMIC_RELAXED) > max_left ||
       pass_end == 0 || now - pass_end > WAL_RESTART_FRESH_USEC))
    {
      /* The final pass syncs the WAL (all written since the last pass)
       * and the database: measured 20+ ms when the last pass was long
       * ago, 1-3 ms right after one.  So a pass first, and the restart
       * at the first idle moment after it. */
      self->ckpt_wanted = TRUE;
      g_cond_signal (&self->ckpt_cond);
      g_mutex_unlock (&self->ckpt_lock);
      return;
    }
  self->last_restart_usec = now;
  self->ckpt_restart = RESTART_WANTED;
  g_cond_signal (&self->ckpt_cond);
  while (self->ckpt_restart == RESTART_WANTED &&
         g_cond_wait_until (&self->ckpt_cond, &self->ckpt_lock, end))
    ;
  if (self->ckpt_restart == RESTART_WANTED)
    self->ckpt_restart = RESTART_NONE;   /* too slow: go on */
  while (self->ckpt_restart == RESTART_RUNNING)
    g_cond_wait (&self->ckpt_cond, &self->ckpt_lock);
  g_mutex_unlock (&self->ckpt_lock);
  waited = g_get_monotonic_time () - now;
  self->mstats.restart_waits++;
  self->mstats.restart_wait_usec += waited;
  if ((guint64) waited > self->mstats.restart_wait_max_usec)
    self->mstats.restart_wait_max_usec = waited;
  g_debug ("WAL restart attempt%s: %.1f ms", must ? " (must)" : hard ? " (hard)" : "", waited / 1000.0);
}

/* The writer connection's WAL hook: called after each commit with the
 * WAL's size in frames (it drops when the WAL starts over). */
static int
wal_hook_cb (void       *data,
             sqlite3    *db,
             const char *name,
             int         n_frames)
{
  FlStore *self = data;

  if (n_frames < self->wal_frames)
    self->mstats.wal_restarts++;
  self->wal_frames = n_frames;
  return SQLITE_OK;
}

/* Wakes the checkpointer when the WAL grew by CHECKPOINT_EVERY_BYTES
 * since it last did; the writer itself never checkpoints. */
static void
checkpoint_after_commit (FlStore *self)
{
  guint64 frame_bytes = (guint64) self->page_size + 24;
  guint64 wal_bytes = (guint64) self->wal_frames * frame_bytes;

  if (wal_bytes > self->mstats.wal_max_bytes)
    self->mstats.wal_max_bytes = wal_bytes;
  if (wal_bytes < self->ckpt_signalled_at)
    self->ckpt_signalled_at = 0;   /* it restarted */
  if (wal_bytes - self->ckpt_signalled_at >= CHECKPOINT_EVERY_BYTES)
    {
      self->ckpt_signalled_at = wal_bytes;
      g_mutex_lock (&self->ckpt_lock);
      self->ckpt_wanted = TRUE;
      g_cond_signal (&self->ckpt_cond);
      g_mutex_unlock (&self->ckpt_lock);
    }
}

/* ---- writer: state --------------------------------------------------- */

static inline guint64
store_hash (FlStore    *self,
            const char *id)
{
  guint64 h = id_hash (self->salt, id, strlen (id));

  if (self->hash_bits > 0 && self->hash_bits < 64)
    h &= (G_GUINT64_CONSTANT (1) << self->hash_bits) - 1;
  return h;
}

static gboolean
meta_get (FlStore     *self,
          const char  *key,
          gint64      *value,
          GError     **error)
{
  sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts,
                                    "SELECT value FROM meta WHERE key = ?1", error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  *value = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return set_sqlite_error (error, self->db, rc, "meta");
  return TRUE;
}

static gboolean
meta_set (FlStore     *self,
          const char  *key,
          gint64       value,
          GError     **error)
{
  sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts,
                                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                                    error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, value);
  return step_done (self->db, stmt, error);
}

static gboolean
load_names (FlStore     *self,
            const char  *sql,
            GHashTable  *table,
            gboolean     devices,
            guint32     *next_id,
            GError     **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);
  guint32 max_id = 0;

  if (rc != SQLITE_OK)
    return set_sqlite_error (error, self->db, rc, "prepare");
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      guint32 id = (guint32) sqlite3_column_int64 (stmt, 0);
      char *name = g_strdup ((const char *) sqlite3_column_text (stmt, 1));

      if (devices)
        {
          DeviceSlot *slot = g_new0 (DeviceSlot, 1);

          slot->id = id;
          g_hash_table_insert (table, name, slot);
          if (self->device_slots->len <= id)
            g_ptr_array_set_size (self->device_slots, id + 1);
          g_ptr_array_index (self->device_slots, id) = slot;
        }
      else
        g_hash_table_insert (table, name, GUINT_TO_POINTER (id));
      max_id = MAX (max_id, id);
    }
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, self->db, rc, sql);
  *next_id = max_id + 1;
  return TRUE;
}

static gboolean writer_roll_add_event_values (FlStore *self, DeviceSlot *slot,
                                              gint64 ts, const char *metric,
                                              double value, GError **error);
static gboolean writer_roll_flush_all (FlStore *self, GError **error);
static gboolean writer_freeze_prepared (FlStore *self, gboolean wait);
static void writer_roll_note_event (FlStore *self, DeviceSlot *slot);

/* Accumulates the events that are not in the rollups yet, from their
 * stored JSON, and writes them: after a crash or a failed commit the
 * in-memory cells were lost. */
static gboolean
writer_roll_catch_up (FlStore  *self,
                      GError  **error)
{
  sqlite3_stmt *stmt = NULL;
  gint64 last = self->next_seq - 1;
  int rc;

  if (self->rolled_upto >= last)
    return TRUE;
  rc = sqlite3_prepare_v2 (self->db,
                           "SELECT e.device, e.ts, j.key, j.value, e.seq"
                           " FROM events e JOIN sources s ON s.id = e.device"
                           " JOIN bodies b ON b.seq = e.seq,"
                           " json_each (b.json, '$.data') j"
                           " WHERE e.seq > ?1 AND e.seq > s.rolled_upto"
                           " AND j.type IN ('integer', 'real')",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    return set_sqlite_error (error, self->db, rc, "prepare");
  sqlite3_bind_int64 (stmt, 1, self->rolled_upto);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      guint32 device = (guint32) sqlite3_column_int64 (stmt, 0);
      DeviceSlot *slot = device < self->device_slots->len
        ? g_ptr_array_index (self->device_slots, device) : NULL;

      if (slot == NULL)
        continue;
      if (!writer_roll_add_event_values (self, slot, sqlite3_column_int64 (stmt, 1),
                                         (const char *) sqlite3_column_text (stmt, 2),
                                         sqlite3_column_double (stmt, 3), error))
        {
          sqlite3_finalize (stmt);
          return FALSE;
        }
      writer_roll_note_event (self, slot);
    }
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, self->db, rc, "rollup catch-up");
  g_debug ("Rollup catch-up after seq %" G_GINT64_FORMAT, self->rolled_upto);
  return writer_roll_flush_all (self, error);
}

/* Rebuilds every piece of writer memory from the database: at open, and
 * after a failed commit (nothing in memory is trusted then). */
static gboolean
writer_load_state (FlStore  *self,
                   GError  **error)
{
  sqlite3_stmt *stmt = NULL;
  gint64 last = 0;
  int rc;
  g_autoptr(GPtrArray) gens = g_ptr_array_new_with_free_func ((GDestroyNotify) generation_free);
  HotSet *hot;
  gint64 salt;
  guint gen_size = __atomic_load_n (&self->generation_size, __ATOMIC_RELAXED);

  writer_freeze_prepared (self, TRUE);
  g_clear_pointer (&self->roll_round, g_ptr_array_unref);
  g_ptr_array_set_size (self->dirty_devices, 0);
  g_ptr_array_set_size (self->full_devices, 0);
  g_ptr_array_set_size (self->device_slots, 0);
  g_hash_table_remove_all (self->device_ids);
  g_hash_table_remove_all (self->type_ids);
  g_hash_table_remove_all (self->metric_ids);
  g_hash_table_remove_all (self->device_saves);
  self->roll_cells = 0;
  self->roll_pending = 0;
  self->last_index_usec = g_get_monotonic_time ();

  if (!meta_get (self, "salt", &salt, error) ||
      !meta_get (self, "indexed_upto", &self->indexed_upto, error) ||
      !meta_get (self, "rolled_upto", &self->rolled_upto, error) ||
      !meta_get (self, "frozen_upto", &self->frozen_upto, error) ||
      !query_int64 (self->db, "SELECT coalesce (max (seq), 0) FROM events", &last, error) ||
      !query_int64 (self->db, "SELECT coalesce (max (gen), 0) + 1 FROM gens", &self->next_gen, error))
    return FALSE;
  self->salt = (guint64) salt;
  self->next_seq = last + 1;
  /* rows logged but not indexed by an earlier run are indexed from SQL */
  g_array_set_size (self->ix_pending, 0);
  g_array_set_size (self->ix_by_seq, 0);
  g_array_set_size (self->ix_minutes, 0);
  self->ix_build_upto = 0;
  self->ix_pending_valid = self->indexed_upto == last;

  if (!load_names (self, "SELECT id, name FROM sources", self->device_ids, TRUE,
                   &self->next_device_id, error) ||
      !load_names (self, "SELECT id, name FROM types", self->type_ids, FALSE,
                   &self->next_type_id, error) ||
      !load_names (self, "SELECT id, name FROM metrics", self->metric_ids, FALSE,
                   &self->next_metric_id, error))
    return FALSE;

  /* the generations' Bloom filters */
  rc = sqlite3_prepare_v2 (self->db,
                           "SELECT gen, first_seq, last_seq, count, n_blocks, bloom"
                           " FROM gens ORDER BY gen", -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    return set_sqlite_error (error, self->db, rc, "prepare");
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      Generation *g = g_new0 (Generation, 1);
      const void *blob = sqlite3_column_blob (stmt, 5);
      gsize bytes = sqlite3_column_bytes (stmt, 5);

      g->gen = sqlite3_column_int64 (stmt, 0);
      g->first_seq = sqlite3_column_int64 (stmt, 1);
      g->last_seq = sqlite3_column_int64 (stmt, 2);
      g->count = sqlite3_column_int64 (stmt, 3);
      g->n_blocks = (guint32) sqlite3_column_int64 (stmt, 4);
      g->words = g_new0 (guint64, (gsize) g->n_blocks * 8);
      g_ptr_array_add (gens, g);
      if (bytes != (gsize) g->n_blocks * 64)
        {
          sqlite3_finalize (stmt);
          g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                       "Generation %" G_GINT64_FORMAT " has a bad Bloom filter", g->gen);
          return FALSE;
        }
      memcpy (g->words, blob, bytes);
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
      for (gsize i = 0; i < (gsize) g->n_blocks * 8; i++)
        g->words[i] = GUINT64_FROM_LE (g->words[i]);
#endif
    }
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, self->db, rc, "gens");

  /* the hot set: the ids logged after the last frozen generation */
  hot = hot_set_new (self->frozen_upto,
                     MAX ((gsize) gen_size, (gsize) (last - self->frozen_upto)) + GROUP_MAX_EVENTS);
  g_rw_lock_writer_lock (&self->dedupe_lock);
  rc = sqlite3_prepare_v2 (self->db, "SELECT seq, id FROM bodies WHERE seq > ?1",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      hot_set_free (hot);
      return set_sqlite_error (error, self->db, rc, "prepare");
    }
  sqlite3_bind_int64 (stmt, 1, self->frozen_upto);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *id = (const char *) sqlite3_column_text (stmt, 1);

      hot_set_insert (hot, store_hash (self, id), sqlite3_column_int64 (stmt, 0));
    }
  g_rw_lock_writer_unlock (&self->dedupe_lock);
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    {
      hot_set_free (hot);
      return set_sqlite_error (error, self->db, rc, "hot set");
    }

  g_rw_lock_writer_lock (&self->dedupe_lock);
  hot_set_free (self->hot);
  self->hot = hot;
  g_clear_pointer (&self->freezing, hot_set_free);
  g_clear_pointer (&self->new_gen, generation_free);
  g_clear_pointer (&self->freeze_entries, g_free);
  self->freeze_done = FALSE;
  g_ptr_array_unref (self->gens);
  self->gens = g_steal_pointer (&gens);
  g_rw_lock_writer_unlock (&self->dedupe_lock);
  __atomic_store_n (&self->n_gens, self->gens->len, __ATOMIC_RELAXED);

  __atomic_store_n (&self->last_seq, last, __ATOMIC_RELAXED);
  if (!query_int64 (self->db, "SELECT count (*) FROM events", &last, error))
    return FALSE;
  __atomic_store_n (&self->event_count, (guint64) last, __ATOMIC_RELAXED);

  return TRUE;
}

/* writer_load_state, then the rollups of the events after rolled_upto. */
static gboolean
writer_recover (FlStore  *self,
                GError  **error)
{
  g_autofree char *sql = NULL;

  if (!writer_load_state (self, error))
    return FALSE;
  /* rows of a generation whose freezing was cut short; and the rollups
   * of the events logged after the last rollup write */
  sql = g_strdup_printf ("DELETE FROM dedupe WHERE gen >= %" G_GINT64_FORMAT, self->next_gen);
  if (!exec_sql (self->db, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (!exec_sql (self->db, sql, error) ||
      !writer_roll_catch_up (self, error) ||
      !exec_sql (self->db, "COMMIT", error))
    {
      exec_sql (self->db, "ROLLBACK", NULL);
      return FALSE;
    }
  return TRUE;
}

/* ---- writer: names -------------------------------------------------- */

static gboolean
writer_intern (FlStore     *self,
               GHashTable  *table,
               const char  *sql,
               guint32     *next_id,
               const char  *name,
               guint32     *out,
               GError     **error)
{
  gpointer value;
  sqlite3_stmt *stmt;

  if (g_hash_table_lookup_extended (table, name, NULL, &value))
    {
      *out = GPOINTER_TO_UINT (value);
      return TRUE;
    }
  stmt = cached_stmt (self->db, self->wstmts, sql, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, *next_id);
  sqlite3_bind_text (stmt, 2, name, -1, SQLITE_STATIC);
  if (!step_done (self->db, stmt, error))
    return FALSE;
  *out = (*next_id)++;
  g_hash_table_insert (table, g_strdup (name), GUINT_TO_POINTER (*out));
  return TRUE;
}

static DeviceSlot *
writer_device (FlStore     *self,
               const char  *name,
               GError     **error)
{
  DeviceSlot *slot = g_hash_table_lookup (self->device_ids, name);
  sqlite3_stmt *stmt;

  if (slot != NULL)
    return slot;
  stmt = cached_stmt (self->db, self->wstmts,
                      "INSERT INTO sources (id, name) VALUES (?1, ?2)", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, self->next_device_id);
  sqlite3_bind_text (stmt, 2, name, -1, SQLITE_STATIC);
  if (!step_done (self->db, stmt, error))
    return NULL;
  slot = g_new0 (DeviceSlot, 1);
  slot->id = self->next_device_id++;
  g_hash_table_insert (self->device_ids, g_strdup (name), slot);
  if (self->device_slots->len <= slot->id)
    g_ptr_array_set_size (self->device_slots, slot->id + 1);
  g_ptr_array_index (self->device_slots, slot->id) = slot;
  return slot;
}

/* ---- writer: rollups ------------------------------------------------ */

static guint
roll_cell_key_hash (gconstpointer p)
{
  const RollCell *c = p;
  guint64 h = (guint64) c->metric * G_GUINT64_CONSTANT (0x9e3779b97f4a7c15) ^
              (guint64) c->t * G_GUINT64_CONSTANT (0xc2b2ae3d27d4eb4f);

  return (guint) (h ^ (h >> 32));
}

static void
writer_roll_add (FlStore    *self,
                 DeviceSlot *slot,
                 gint64      ts,
                 guint32     metric,
                 double      value)
{
  RollCell probe = { slot->id, metric, floor_to (ts, MINUTE_MS), 0, 0, 0, 0 };
  RollCell *cell;

  if (slot->cells == NULL)
    slot->cells = g_hash_table_new_full (roll_cell_key_hash, roll_cell_equal, g_free, NULL);
  cell = g_hash_table_lookup (slot->cells, &probe);
  if (cell == NULL)
    {
      cell = g_new (RollCell, 1);
      *cell = probe;
      cell->min = cell->max = value;
      cell->sum = value;
      cell->count = 1;
      g_hash_table_add (slot->cells, cell);
      self->roll_cells++;
      if (g_hash_table_size (slot->cells) >= ROLLUP_DEVICE_MAX_CELLS && !slot->queued)
        {
          slot->queued = TRUE;
          g_ptr_array_add (self->full_devices, slot);
        }
      return;
    }
  if (value < cell->min)
    cell->min = value;
  if (value > cell->max)
    cell->max = value;
  cell->sum += value;
  cell->count++;
}

static gboolean
writer_roll_add_event_values (FlStore     *self,
                              DeviceSlot  *slot,
                              gint64       ts,
                              const char  *metric,
                              double       value,
                              GError     **error)
{
  guint32 metric_id;

  if (!writer_intern (self, self->metric_ids,
                      "INSERT INTO metrics (id, name) VALUES (?1, ?2)",
                      &self->next_metric_id, metric, &metric_id, error))
    return FALSE;
  writer_roll_add (self, slot, ts, metric_id, value);
  return TRUE;
}

/* Every event counts, with metrics or not: the watermark of a device
 * that sends no metrics moves on too. */
static void
writer_roll_note_event (FlStore    *self,
                        DeviceSlot *slot)
{
  if (self->roll_pending++ == 0)
    self->roll_first_pending_usec = g_get_monotonic_time ();
  if (!slot->dirty)
    {
      slot->dirty = TRUE;
      g_ptr_array_add (self->dirty_devices, slot);
    }
  if (++slot->pending >= ROLLUP_DEVICE_MAX_PENDING && !slot->queued)
    {
      slot->queued = TRUE;
      g_ptr_array_add (self->full_devices, slot);
    }
}

static gboolean
writer_roll_upsert (FlStore   *self,
                    guint32    device,
                    guint32    metric,
                    gint64     res,
                    gint64     t,
                    double     min,
                    double     max,
                    double     sum,
                    gint64     count,
                    GError   **error)
{
  sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts,
                                    "INSERT INTO rollups (device, metric, res, t, min, max, sum, count)"
                                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                                    " ON CONFLICT (device, metric, res, t) DO UPDATE SET"
                                    "  min = min (min, excluded.min), max = max (max, excluded.max),"
                                    "  sum = sum + excluded.sum, count = count + excluded.count",
                                    error);

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, device);
  sqlite3_bind_int64 (stmt, 2, metric);
  sqlite3_bind_int64 (stmt, 3, res);
  sqlite3_bind_int64 (stmt, 4, t);
  sqlite3_bind_double (stmt, 5, min);
  sqlite3_bind_double (stmt, 6, max);
  sqlite3_bind_double (stmt, 7, sum);
  sqlite3_bind_int64 (stmt, 8, count);
  return step_done (self->db, stmt, error);
}

/* Writes one device's minute cells, and the hour cells derived from
 * them, in key order, and moves its watermark to the last seq.  The cells
 * are dropped at once: a failed commit reloads everything anyway. */
static gboolean
writer_roll_flush_device (FlStore     *self,
                          DeviceSlot  *slot,
                          GError     **error)
{
  g_autoptr(GPtrArray) cells = NULL;
  sqlite3_stmt *stmt;
  GHashTableIter iter;
  gpointer key;
  guint i = 0;

  if (slot->pending == 0)
    return TRUE;
  if (slot->cells != NULL)
    {
      cells = g_ptr_array_sized_new (g_hash_table_size (slot->cells));
      g_hash_table_iter_init (&iter, slot->cells);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        g_ptr_array_add (cells, key);
      g_ptr_array_sort (cells, roll_cell_cmp);
      while (i < cells->len)
        {
          const RollCell *first = g_ptr_array_index (cells, i);
          guint j = i;

          /* one metric: minute rows, then hour rows (key order) */
          while (j < cells->len)
            {
              const RollCell *c = g_ptr_array_index (cells, j);

              if (c->metric != first->metric)
                break;
              if (!writer_roll_upsert (self, c->device, c->metric, MINUTE_MS, c->t,
                                       c->min, c->max, c->sum, c->count, error))
                return FALSE;
              j++;
            }
          for (guint k = i; k < j;)
            {
              const RollCell *c = g_ptr_array_index (cells, k);
              gint64 hour = floor_to (c->t, HOUR_MS);
              double min = c->min, max = c->max, sum = c->sum;
              gint64 count = c->count;

              for (k++; k < j; k++)
                {
                  const RollCell *d = g_ptr_array_index (cells, k);

                  if (floor_to (d->t, HOUR_MS) != hour)
                    break;
                  min = MIN (min, d->min);
                  max = MAX (max, d->max);
                  sum += d->sum;
                  count += d->count;
                }
              if (!writer_roll_upsert (self, c->device, c->metric, HOUR_MS, hour,
                                       min, max, sum, count, error))
                return FALSE;
            }
          i = j;
        }
    }

  stmt = cached_stmt (self->db, self->wstmts,
                      "UPDATE sources SET rolled_upto = ?2 WHERE id = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, slot->id);
  sqlite3_bind_int64 (stmt, 2, self->next_seq - 1);
  if (!step_done (self->db, stmt, error))
    return FALSE;

  if (cells != NULL)
    {
      g_ptr_array_set_size (cells, 0);
      self->roll_cells -= g_hash_table_size (slot->cells);
      g_clear_pointer (&slot->cells, g_hash_table_unref);
    }
  slot->pending = 0;
  return TRUE;
}

static int
slot_cmp (gconstpointer a,
          gconstpointer b)
{
  const DeviceSlot *x = *(DeviceSlot * const *) a, *y = *(DeviceSlot * const *) b;

  return (x->id > y->id) - (x->id < y->id);
}

/* Writes the cells of every device; then all events so far are rolled
 * up (the meta watermark, which readers and the catch-up start from). */
static gboolean
writer_roll_flush_all (FlStore  *self,
                       GError  **error)
{
  gint64 upto = self->next_seq - 1;
  guint n = self->dirty_devices->len;

  /* a round in progress: its devices are not in dirty_devices */
  if (self->roll_round != NULL)
    {
      for (; self->roll_round_pos < self->roll_round->len; self->roll_round_pos++)
        {
          DeviceSlot *slot = g_ptr_array_index (self->roll_round, self->roll_round_pos);

          if (!writer_roll_flush_device (self, slot, error))
            return FALSE;
          slot->dirty = FALSE;
          slot->queued = FALSE;
        }
      g_clear_pointer (&self->roll_round, g_ptr_array_unref);
    }

  g_ptr_array_sort (self->dirty_devices, slot_cmp);
  for (guint i = 0; i < self->dirty_devices->len; i++)
    {
      DeviceSlot *slot = g_ptr_array_index (self->dirty_devices, i);

      if (!writer_roll_flush_device (self, slot, error))
        return FALSE;
      slot->dirty = FALSE;
      slot->queued = FALSE;
    }
  g_ptr_array_set_size (self->dirty_devices, 0);
  g_ptr_array_set_size (self->full_devices, 0);
  if (!meta_set (self, "rolled_upto", upto, error))
    return FALSE;
  g_debug ("Rollups written for %u devices, up to seq %" G_GINT64_FORMAT, n, upto);
  self->rolled_upto = upto;
  self->roll_pending = 0;
  return TRUE;
}

static inline gboolean slice_over (FlStore *self, guint *n, gint64 deadline);

/* A full rollup write in slices: the devices dirty when it starts are
 * written in id order, a range per maintenance transaction, each up to
 * its newest event; once all are, every event up to the start is rolled
 * up (meta rolled_upto).  Devices with events since then are dirty again
 * for the next round. */
static gboolean
writer_roll_round_step (FlStore  *self,
                        gint64    deadline,
                        GError  **error)
{
  guint n = 0;

  if (self->roll_round == NULL)
    {
      self->roll_round = g_steal_pointer (&self->dirty_devices);
      self->dirty_devices = g_ptr_array_new ();
      g_ptr_array_sort (self->roll_round, slot_cmp);
      self->roll_round_pos = 0;
      self->roll_round_upto = self->next_seq - 1;
      self->roll_pending = 0;
    }
  while (self->roll_round_pos < self->roll_round->len)
    {
      DeviceSlot *slot = g_ptr_array_index (self->roll_round, self->roll_round_pos++);

      if (!writer_roll_flush_device (self, slot, error))
        return FALSE;
      slot->dirty = FALSE;
      slot->queued = FALSE;
      n += 31;   /* a device is worth about 32 rows */
      if (slice_over (self, &n, deadline))
        break;
    }
  if (self->roll_round_pos < self->roll_round->len)
    return TRUE;
  if (!meta_set (self, "rolled_upto", self->roll_round_upto, error))
    return FALSE;
  self->rolled_upto = self->roll_round_upto;
  g_clear_pointer (&self->roll_round, g_ptr_array_unref);
  self->mstats.rollup_rounds++;
  return TRUE;
}

/* ---- writer: index batches ------------------------------------------ */

/* TRUE when a maintenance slice has used its time (checked every 32
 * rows; deadline G_MAXINT64: no limit).  n counts the slice's rows. */
static inline gboolean
slice_over (FlStore *self,
            guint   *n,
            gint64   deadline)
{
  if (G_UNLIKELY (self->maint_delay_usec != 0))
    {
      g_usleep (self->maint_delay_usec);
      return deadline != G_MAXINT64 && g_get_monotonic_time () >= deadline;
    }
  return (++*n & 31) == 0 && deadline != G_MAXINT64 && g_get_monotonic_time () >= deadline;
}

/* Writes entries[*pos..] into one index until the deadline. */
static gboolean
writer_insert_ix (FlStore     *self,
                  const char  *sql,
                  GArray      *entries,
                  guint       *pos,
                  gint64       deadline,
                  GError     **error)
{
  sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts, sql, error);
  guint n = 0;

  if (stmt == NULL)
    return FALSE;
  while (*pos < entries->len)
    {
      const IxEntry *e = &g_array_index (entries, IxEntry, *pos);

      sqlite3_bind_int64 (stmt, 1, e->device);
      sqlite3_bind_int64 (stmt, 2, e->seq);
      sqlite3_bind_int64 (stmt, 3, e->ts);
      sqlite3_bind_int64 (stmt, 4, e->type);
      if (!step_done (self->db, stmt, error))
        return FALSE;
      (*pos)++;
      if (slice_over (self, &n, deadline))
        break;
    }
  return TRUE;
}

/* The ix_dev_min rows of entries (in (device, seq) order) into minutes,
 * in (device, minute) order: one per device and minute. */
static void
ix_collect_minutes (const IxEntry *entries,
                    guint          n,
                    GArray        *minutes)
{
  g_array_set_size (minutes, 0);
  for (guint i = 0; i < n;)
    {
      guint first = minutes->len;
      guint32 device = entries[i].device;
      gboolean sorted = TRUE;

      for (; i < n && entries[i].device == device; i++)
        {
          gint64 minute = floor_div (entries[i].ts, MINUTE_MS);
          IxMinute *last = minutes->len > first
            ? &g_array_index (minutes, IxMinute, minutes->len - 1) : NULL;

          if (last != NULL && last->minute == minute)
            {
              last->hi = entries[i].seq;   /* seq order */
              continue;
            }
          if (last != NULL && last->minute > minute)
            sorted = FALSE;
          g_array_append_val (minutes, ((IxMinute) { minute, entries[i].seq, entries[i].seq, device }));
        }
      if (!sorted)
        {
          /* out-of-order timestamps: merge the runs of each minute */
          IxMinute *m = &g_array_index (minutes, IxMinute, first);
          guint len = minutes->len - first, out = 0;

          qsort (m, len, sizeof (IxMinute), ix_minute_cmp);
          for (guint k = 1; k < len; k++)
            {
              if (m[k].minute == m[out].minute)
                {
                  m[out].lo = MIN (m[out].lo, m[k].lo);
                  m[out].hi = MAX (m[out].hi, m[k].hi);
                }
              else
                m[++out] = m[k];
            }
          g_array_set_size (minutes, first + out + 1);
        }
    }
}

/* Writes ix_minutes[ix_pos_min..] into ix_dev_min until the deadline,
 * widening the seq range of a minute already there. */
static gboolean
writer_insert_minutes (FlStore  *self,
                       gint64    deadline,
                       GError  **error)
{
  sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts,
                                    "INSERT INTO ix_dev_min (device, minute, lo_seq, hi_seq)"
                                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (device, minute)"
                                    " DO UPDATE SET lo_seq = min (lo_seq, excluded.lo_seq),"
                                    " hi_seq = max (hi_seq, excluded.hi_seq)", error);
  guint n = 0;

  if (stmt == NULL)
    return FALSE;
  while (self->ix_pos_min < self->ix_minutes->len)
    {
      const IxMinute *m = &g_array_index (self->ix_minutes, IxMinute, self->ix_pos_min);

      sqlite3_bind_int64 (stmt, 1, m->device);
      sqlite3_bind_int64 (stmt, 2, m->minute);
      sqlite3_bind_int64 (stmt, 3, m->lo);
      sqlite3_bind_int64 (stmt, 4, m->hi);
      if (!step_done (self->db, stmt, error))
        return FALSE;
      self->ix_pos_min++;
      if (slice_over (self, &n, deadline))
        break;
    }
  return TRUE;
}

static gboolean
writer_index_done (FlStore  *self,
                   gint64    upto,
                   GError  **error)
{
  if (!meta_set (self, "indexed_upto", upto, error))
    return FALSE;
  g_debug ("Indexed %" G_GINT64_FORMAT " rows", upto - self->indexed_upto);
  /* a failed commit reloads the state, which resets all this */
  self->indexed_upto = upto;
  self->ix_build_upto = 0;
  self->mstats.index_batches++;
  g_array_set_size (self->ix_by_seq, 0);
  g_array_set_size (self->ix_minutes, 0);
  return TRUE;
}

/* Indexes the log rows after indexed_upto.  A batch is sorted into each
 * index's key order, so it dirties about one leaf page per device; it is
 * written in slices over several maintenance transactions (each slice a
 * range of devices, so no page is written twice), and counts only once complete:
 * readers take index rows with seq <= indexed_upto and scan the log after
 * it, so a partly written batch is invisible to them. */
static gboolean
writer_build_index (FlStore  *self,
                    gint64    deadline,
                    GError  **error)
{
  gint64 upto = self->next_seq - 1;

  if (self->ix_build_upto == 0)
    {
      if (upto <= self->indexed_upto)
        return TRUE;
      if (!self->ix_pending_valid ||
          self->ix_pending->len != (guint) (upto - self->indexed_upto))
        {
          /* rows logged by an earlier run (or before a failed commit):
           * from the log, in one go; OR IGNORE for rows of a batch that was
           * cut short */
          static const char * const sqls[] = {
            "INSERT OR IGNORE INTO ix_dev_seq (device, seq, ts, type)"
            " SELECT device, seq, ts, type FROM events WHERE seq > ?1 AND seq <= ?2"
            " ORDER BY device, seq",
            "INSERT INTO ix_dev_min (device, minute, lo_seq, hi_seq)"
            " SELECT device, " MINUTE_OF_TS ", min (seq), max (seq) FROM events"
            " WHERE seq > ?1 AND seq <= ?2 GROUP BY 1, 2 ORDER BY 1, 2"
            " ON CONFLICT (device, minute) DO UPDATE SET lo_seq = min (lo_seq, excluded.lo_seq),"
            " hi_seq = max (hi_seq, excluded.hi_seq)",
          };

          for (guint i = 0; i < G_N_ELEMENTS (sqls); i++)
            {
              sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts, sqls[i], error);

              if (stmt == NULL)
                return FALSE;
              sqlite3_bind_int64 (stmt, 1, self->indexed_upto);
              sqlite3_bind_int64 (stmt, 2, upto);
              if (!step_done (self->db, stmt, error))
                return FALSE;
            }
          g_array_set_size (self->ix_pending, 0);
          self->ix_pending_valid = TRUE;
          return writer_index_done (self, upto, error);
        }

      /* start a batch: what is pending now (in seq order), in linear time:
       * a stable counting sort by device gives (device, seq) order, and
       * within a device ts is nearly always ascending, so its minutes
       * come in runs */
      {
        guint n_dev = self->device_slots->len + 1;
        g_autofree guint *start = g_new0 (guint, n_dev + 1);
        const IxEntry *in = (const IxEntry *) self->ix_pending->data;
        IxEntry *by_seq;
        guint index_batch = __atomic_load_n (&self->index_batch, __ATOMIC_RELAXED);
        /* a bounded batch (memory, and the length of its slices) */
        guint n = MIN (self->ix_pending->len, 2 * MAX (index_batch, 32768u));

        upto = in[n - 1].seq;

        g_array_set_size (self->ix_by_seq, n);
        by_seq = (IxEntry *) self->ix_by_seq->data;
        for (guint i = 0; i < n; i++)
          start[MIN (in[i].device, n_dev - 1) + 1]++;
        for (guint d = 1; d <= n_dev; d++)
          start[d] += start[d - 1];
        for (guint i = 0; i < n; i++)
          by_seq[start[MIN (in[i].device, n_dev - 1)]++] = in[i];
        ix_collect_minutes (by_seq, n, self->ix_minutes);
        g_array_remove_range (self->ix_pending, 0, n);
      }
      self->ix_pos_seq = self->ix_pos_min = 0;
      self->ix_build_upto = upto;
    }

  if (!writer_insert_ix (self, "INSERT OR IGNORE INTO ix_dev_seq (device, seq, ts, type)"
                         " VALUES (?1, ?2, ?3, ?4)", self->ix_by_seq, &self->ix_pos_seq,
                         deadline, error))
    return FALSE;
  if (self->ix_pos_seq < self->ix_by_seq->len)
    return TRUE;
  if (!writer_insert_minutes (self, deadline, error))
    return FALSE;
  if (self->ix_pos_min < self->ix_minutes->len)
    return TRUE;
  return writer_index_done (self, self->ix_build_upto, error);
}

/* ---- writer: dedupe ------------------------------------------------- */

typedef struct {
  FlStore    *self;
  const char *id;
  GError    **error;
  gboolean    failed;
} IdCheck;

static gboolean
id_check_seq (gint64   seq,
              gpointer user_data)
{
  IdCheck *check = user_data;
  FlStore *self = check->self;
  sqlite3_stmt *stmt;
  gboolean same;
  int rc;

  if (check->failed)
    return TRUE;
  __atomic_fetch_add (&self->dedupe_probes, 1, __ATOMIC_RELAXED);
  stmt = cached_stmt (self->db, self->wstmts, "SELECT id FROM bodies WHERE seq = ?1", check->error);
  if (stmt == NULL)
    {
      check->failed = TRUE;
      return TRUE;
    }
  sqlite3_bind_int64 (stmt, 1, seq);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      set_sqlite_error (check->error, self->db, rc, "dedupe");
      sqlite3_reset (stmt);
      check->failed = TRUE;
      return TRUE;
    }
  same = rc == SQLITE_ROW &&
         g_strcmp0 ((const char *) sqlite3_column_text (stmt, 0), check->id) == 0;
  sqlite3_reset (stmt);
  return same;
}

/* TRUE in *dup when an event with this id is stored (or was added earlier
 * in the open transaction). */
static gboolean
writer_lookup (FlStore     *self,
               const char  *id,
               guint64      h,
               gint64       checked_gen,
               gboolean    *dup,
               GError     **error)
{
  IdCheck check = { self, id, error, FALSE };

  *dup = FALSE;
  if (hot_set_foreach_match (self->hot, h, id_check_seq, &check) ||
      (self->freezing != NULL &&
       hot_set_foreach_match (self->freezing, h, id_check_seq, &check)))
    {
      *dup = !check.failed;
      return !check.failed;
    }
  if (check.failed)
    return FALSE;

  for (guint i = self->gens->len; i > 0; i--)
    {
      const Generation *g = g_ptr_array_index (self->gens, i - 1);
      sqlite3_stmt *stmt;
      int rc;

      if (g->gen <= checked_gen)
        break;
      if (!bloom_may_contain (g, h))
        continue;
      __atomic_fetch_add (&self->dedupe_probes, 1, __ATOMIC_RELAXED);
      stmt = cached_stmt (self->db, self->wstmts,
                          "SELECT seq FROM dedupe WHERE gen = ?1 AND hash = ?2", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, g->gen);
      sqlite3_bind_int64 (stmt, 2, (gint64) h);
      {
        g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (gint64));

        while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
          {
            gint64 seq = sqlite3_column_int64 (stmt, 0);

            g_array_append_val (seqs, seq);
          }
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
          return set_sqlite_error (error, self->db, rc, "dedupe");
        for (guint k = 0; k < seqs->len; k++)
          {
            if (id_check_seq (g_array_index (seqs, gint64, k), &check))
              {
                *dup = !check.failed;
                return !check.failed;
              }
          }
      }
    }
  return TRUE;
}

/* Sorts the entries of the frozen hot set by hash and builds the Bloom
 * filter of new_gen, off the writer thread: self->freezing no longer
 * changes, and the writer touches freeze_entries and new_gen->words only
 * once freeze_ready is set (and the thread joined). */
static gpointer
freeze_prepare_func (gpointer data)
{
  FlStore *self = data;
  const HotSet *hs = self->freezing;
  Generation *g = self->new_gen;
  HashSeq *entries = g_new (HashSeq, hs->count);
  gsize n = 0;

  for (gsize i = 0; i <= hs->mask; i++)
    if (hs->offs[i] != 0)
      {
        entries[n].hash = (gint64) hs->hashes[i];
        entries[n].seq = hs->base + hs->offs[i];
        n++;
      }
  g_assert (n == hs->count);
  qsort (entries, n, sizeof (HashSeq), hash_seq_cmp);
  g->count = n;
  g->n_blocks = (guint32) MAX ((guint64) 1, (n * BLOOM_BITS_PER_KEY + 511) / 512);
  g->words = g_new0 (guint64, (gsize) g->n_blocks * 8);
  for (gsize i = 0; i < n; i++)
    bloom_add (g, (guint64) entries[i].hash);
  self->freeze_entries = entries;
  self->freeze_n = n;
  __atomic_store_n (&self->freeze_ready, TRUE, __ATOMIC_RELEASE);
  return NULL;
}

/* TRUE when the generation being frozen can be written; wait: block
 * until it can. */
static gboolean
writer_freeze_prepared (FlStore  *self,
                        gboolean  wait)
{
  if (self->freeze_thread == NULL)
    return TRUE;
  if (!wait && !__atomic_load_n (&self->freeze_ready, __ATOMIC_ACQUIRE))
    return FALSE;
  g_thread_join (g_steal_pointer (&self->freeze_thread));
  return TRUE;
}

/* Starts freezing the hot set into a generation: the hot set becomes
 * `freezing` and a new one takes the next ids; a helper thread sorts its
 * entries and builds the Bloom filter (writer_freeze_prepared).  Lookups
 * (and readers) keep seeing the entries in freezing; writer_freeze_step
 * writes the rows, a slice per maintenance transaction, then the gens
 * row; writer_publish swaps them once that has committed.  A crash in
 * between leaves rows of an unknown generation, which writer_recover
 * deletes; the hot set is rebuilt from the log. */
static void
writer_freeze_start (FlStore *self)
{
  HotSet *hs = self->hot;
  Generation *g;
  gint64 last = self->next_seq - 1;
  guint gen_size = __atomic_load_n (&self->generation_size, __ATOMIC_RELAXED);

  g_assert (self->freezing == NULL && self->new_gen == NULL && self->freeze_thread == NULL);
  if (hs->count == 0)
    return;

  g = g_new0 (Generation, 1);
  g->gen = self->next_gen;
  g->first_seq = hs->base + 1;
  g->last_seq = last;

  g_rw_lock_writer_lock (&self->dedupe_lock);
  self->freezing = self->hot;
  self->hot = hot_set_new (last, (gsize) gen_size + GROUP_MAX_EVENTS);
  g_rw_lock_writer_unlock (&self->dedupe_lock);
  self->new_gen = g;
  self->freeze_entries = NULL;
  self->freeze_n = 0;
  self->freeze_pos = 0;
  self->freeze_done = FALSE;
  self->freeze_ready = FALSE;
  self->freeze_thread = g_thread_new ("fl-store-freeze", freeze_prepare_func, self);
  g_debug ("Freezing generation %" G_GINT64_FORMAT ": %" G_GSIZE_FORMAT " ids", g->gen, hs->count);
}

/* Writes the rows of the generation being frozen until the deadline;
 * its gens row with the last of them.  Call once prepared. */
static gboolean
writer_freeze_step (FlStore  *self,
                    gint64    deadline,
                    GError  **error)
{
  Generation *g = self->new_gen;
  g_autofree guint64 *le_words = NULL;
  sqlite3_stmt *stmt;
  guint n = 0;

  g_assert (self->freeze_thread == NULL);
  stmt = cached_stmt (self->db, self->wstmts,
                      "INSERT INTO dedupe (gen, hash, seq) VALUES (?1, ?2, ?3)", error);
  if (stmt == NULL)
    return FALSE;
  /* if this transaction fails, writer_recover starts over */
  while (self->freeze_pos < self->freeze_n)
    {
      gsize i = self->freeze_pos++;

      sqlite3_bind_int64 (stmt, 1, g->gen);
      sqlite3_bind_int64 (stmt, 2, self->freeze_entries[i].hash);
      sqlite3_bind_int64 (stmt, 3, self->freeze_entries[i].seq);
      if (!step_done (self->db, stmt, error))
        return FALSE;
      if (slice_over (self, &n, deadline))
        break;
    }
  if (self->freeze_pos < self->freeze_n)
    return TRUE;

  le_words = g_new (guint64, (gsize) g->n_blocks * 8);
  for (gsize i = 0; i < (gsize) g->n_blocks * 8; i++)
    le_words[i] = GUINT64_TO_LE (g->words[i]);
  stmt = cached_stmt (self->db, self->wstmts,
                      "INSERT INTO gens (gen, first_seq, last_seq, count, n_blocks, bloom)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, g->gen);
  sqlite3_bind_int64 (stmt, 2, g->first_seq);
  sqlite3_bind_int64 (stmt, 3, g->last_seq);
  sqlite3_bind_int64 (stmt, 4, (gint64) g->count);
  sqlite3_bind_int64 (stmt, 5, g->n_blocks);
  sqlite3_bind_blob (stmt, 6, le_words, (int) (g->n_blocks * 64), SQLITE_STATIC);
  if (!step_done (self->db, stmt, error) ||
      !meta_set (self, "frozen_upto", g->last_seq, error))
    return FALSE;
  self->freeze_done = TRUE;
  return TRUE;
}

/* After a commit: a generation whose gens row committed replaces its
 * hot set. */
static void
writer_publish (FlStore *self)
{
  if (!self->freeze_done)
    return;
  g_rw_lock_writer_lock (&self->dedupe_lock);
  g_ptr_array_add (self->gens, g_steal_pointer (&self->new_gen));
  g_clear_pointer (&self->freezing, hot_set_free);
  g_rw_lock_writer_unlock (&self->dedupe_lock);
  g_clear_pointer (&self->freeze_entries, g_free);
  self->freeze_done = FALSE;
  self->frozen_upto = ((Generation *) g_ptr_array_index (self->gens, self->gens->len - 1))->last_seq;
  self->next_gen++;
  self->mstats.freezes++;
  __atomic_store_n (&self->n_gens, self->gens->len, __ATOMIC_RELAXED);
  g_debug ("Generation %" G_GINT64_FORMAT " frozen", self->next_gen - 1);
}

/* ---- writer: appending ---------------------------------------------- */

typedef struct {
  FlStore    *self;
  DeviceSlot *device;
  gint64      ts;
  GError    **error;
  guint       n;
} RollScan;

static gboolean
roll_scan_number (const char *name,
                  double      value,
                  gpointer    user_data)
{
  RollScan *scan = user_data;

  if (!isfinite (value))
    return TRUE;
  scan->n++;
  return writer_roll_add_event_values (scan->self, scan->device, scan->ts, name, value,
                                       scan->error);
}

static gboolean
writer_append_event (FlStore     *self,
                     FlEvent     *event,
                     guint64      h,
                     gint64       checked_gen,
                     gint64       received_at,
                     gboolean    *dup,
                     GError     **error)
{
  const char *id = fl_event_get_id (event);
  DeviceSlot *device;
  guint32 type_id;
  gint64 seq, ts;
  sqlite3_stmt *stmt;
  const char *json;

  if (!writer_lookup (self, id, h, checked_gen, dup, error))
    return FALSE;
  if (*dup)
    return TRUE;

  device = writer_device (self, fl_event_get_source (event), error);
  if (device == NULL ||
      !writer_intern (self, self->type_ids, "INSERT INTO types (id, name) VALUES (?1, ?2)",
                      &self->next_type_id, fl_event_get_event_type (event), &type_id, error))
    return FALSE;

  seq = self->next_seq;
  ts = fl_event_get_timestamp (event);
  fl_event_set_seq (event, seq);
  fl_event_set_received_at (event, received_at);
  json = fl_event_get_json (event);

  stmt = cached_stmt (self->db, self->wstmts,
                      "INSERT INTO events (seq, device, ts, type, received_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5)", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, seq);
  sqlite3_bind_int64 (stmt, 2, device->id);
  sqlite3_bind_int64 (stmt, 3, ts);
  sqlite3_bind_int64 (stmt, 4, type_id);
  sqlite3_bind_int64 (stmt, 5, received_at);
  if (!step_done (self->db, stmt, error))
    return FALSE;

  stmt = cached_stmt (self->db, self->wstmts,
                      "INSERT INTO bodies (seq, id, json) VALUES (?1, ?2, ?3)", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, seq);
  sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, json, (int) fl_event_get_json_length (event), SQLITE_STATIC);
  if (!step_done (self->db, stmt, error))
    return FALSE;

  self->next_seq++;
  if (self->ix_pending_valid)
    {
      IxEntry ix = { seq, ts, device->id, type_id };

      g_array_append_val (self->ix_pending, ix);
    }

  /* readers may look at the hot set (get_event) */
  g_rw_lock_writer_lock (&self->dedupe_lock);
  hot_set_insert (self->hot, h, seq);
  g_rw_lock_writer_unlock (&self->dedupe_lock);

  /* every numeric member of data is a metric */
  {
    RollScan scan = { self, device, ts, error, 0 };

    /* the codec collected them while validating the event */
    for (guint i = 0; i < fl_event_get_n_fields (event); i++)
      {
        const FlEventField *field = fl_event_get_field (event, i);

        if (field->text == NULL && !roll_scan_number (field->name, field->number, &scan))
          return FALSE;
      }
    writer_roll_note_event (self, device);
  }
  return TRUE;
}

static gboolean
writer_save_devices (FlStore  *self,
                     GError  **error)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, self->device_saves);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      sqlite3_stmt *stmt = cached_stmt (self->db, self->wstmts,
                                        "INSERT OR REPLACE INTO devices (device_id, data)"
                                        " VALUES (?1, ?2)", error);

      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
      if (!step_done (self->db, stmt, error))
        return FALSE;
    }
  g_hash_table_remove_all (self->device_saves);
  return TRUE;
}

/* What maintenance is due: MAINT_NONE, MAINT_DUE (run it while the
 * queue is empty) or MAINT_BEHIND (it lags: run slices between groups
 * too).  idle: nothing came for IDLE_TICK_USEC. */
typedef enum {
  MAINT_NONE,
  MAINT_DUE,
  MAINT_BEHIND,
} MaintLevel;

static MaintLevel
writer_maintenance_due (FlStore  *self,
                        gint64    now,
                        gboolean  idle)
{
  guint index_batch = __atomic_load_n (&self->index_batch, __ATOMIC_RELAXED);
  guint rollup_batch = __atomic_load_n (&self->rollup_batch, __ATOMIC_RELAXED);
  guint gen_size = __atomic_load_n (&self->generation_size, __ATOMIC_RELAXED);
  gint64 tail = self->next_seq - 1 - self->indexed_upto;
  MaintLevel level = MAINT_NONE;

  if (tail >= 2 * (gint64) index_batch ||
      self->hot->count >= (gsize) gen_size + gen_size / 2 ||
      self->roll_cells >= ROLLUP_MAX_CELLS + ROLLUP_MAX_CELLS / 2 ||
      self->roll_pending >= 2 * (guint64) rollup_batch ||
      self->full_devices->len > 0)
    level = MAINT_BEHIND;

  if (self->freezing != NULL)
    {
      if (!self->freeze_done && writer_freeze_prepared (self, FALSE))
        return MAX (level, MAINT_DUE);
    }
  else if (self->hot->count >= gen_size)
    return MAX (level, MAINT_DUE);
  if (self->ix_build_upto != 0 || tail >= (gint64) index_batch ||
      (tail >= IDLE_INDEX_MIN_ROWS && now - self->last_index_usec >= INDEX_MAX_AGE_USEC) ||
      (idle && tail > 0))
    return MAX (level, MAINT_DUE);
  if (self->roll_round != NULL || self->full_devices->len > 0 ||
      self->roll_pending >= rollup_batch || self->roll_cells >= ROLLUP_MAX_CELLS ||
      (self->roll_pending > 0 && now - self->roll_first_pending_usec >= ROLLUP_MAX_AGE_USEC))
    return MAX (level, MAINT_DUE);
  return MAINT_NONE;   /* lagging, but waiting for the freeze thread */
}

/* Writes the devices queued in full_devices, until deadline. */
static gboolean
writer_roll_flush_full (FlStore  *self,
                        gint64    deadline,
                        GError  **error)
{
  while (self->full_devices->len > 0)
    {
      DeviceSlot *slot = g_ptr_array_steal_index_fast (self->full_devices,
                                                       self->full_devices->len - 1);

      slot->queued = FALSE;
      if (!writer_roll_flush_device (self, slot, error))
        return FALSE;
      self->mstats.rollup_devices++;
      if (g_get_monotonic_time () >= deadline)
        break;
    }
  return TRUE;
}

/* Maintenance work until deadline (G_MAXINT64 with force: all of it,
 * including the tail after the index batch being built).  Runs in a
 * transaction of its own (writer_maintenance_slice), or in a group's for
 * a sync or close. */
static gboolean
writer_maintenance (FlStore  *self,
                    gboolean  force,
                    gboolean  idle,
                    gint64    deadline,
                    GError  **error)
{
  guint index_batch = __atomic_load_n (&self->index_batch, __ATOMIC_RELAXED);
  guint rollup_batch = __atomic_load_n (&self->rollup_batch, __ATOMIC_RELAXED);
  guint gen_size = __atomic_load_n (&self->generation_size, __ATOMIC_RELAXED);
  gint64 tail = self->next_seq - 1 - self->indexed_upto;
  gint64 now = g_get_monotonic_time ();

  if (force)
    deadline = G_MAXINT64;

  /* devices over ROLLUP_DEVICE_MAX_CELLS first, each a short write: left
   * behind the other work under sustained load, one of them gathered
   * cells for tens of ms of writing, which no slice could cut (measured:
   * 60-80 ms, the device with a year of data) */
  if (!force && !writer_roll_flush_full (self, deadline, error))
    return FALSE;
  if (g_get_monotonic_time () >= deadline)
    return TRUE;

  /* dedupe first: the hot set is the largest piece of memory */
  if (self->freezing == NULL && self->hot->count >= gen_size)
    writer_freeze_start (self);
  if (self->freezing != NULL && !self->freeze_done &&
      writer_freeze_prepared (self, force) &&
      !writer_freeze_step (self, deadline, error))
    return FALSE;
  if (g_get_monotonic_time () >= deadline)
    return TRUE;

  /* index batches: large (cheap writes), or older than INDEX_MAX_AGE_USEC
   * at lower rates (short tails) */
  if (self->ix_build_upto != 0)
    {
      if (!writer_build_index (self, deadline, error))
        return FALSE;
    }
  else if (tail > 0 &&
           (force || tail >= (gint64) index_batch || idle ||
            (tail >= IDLE_INDEX_MIN_ROWS && now - self->last_index_usec >= INDEX_MAX_AGE_USEC)))
    {
      self->last_index_usec = now;
      if (!writer_build_index (self, deadline, error))
        return FALSE;
    }
  /* forced: whatever came after the batch that was being built, too */
  while (force && self->indexed_upto < self->next_seq - 1)
    if (!writer_build_index (self, G_MAXINT64, error))
      return FALSE;
  if (g_get_monotonic_time () >= deadline)
    return TRUE;

  /* rollups: chatty devices alone, everything by count, age or memory.
   * The chatty ones first: a device's write is not sliced, and one that
   * waited for whole rounds under sustained load held a write of tens of
   * ms (measured: 81 ms, a device with a year of data) */
  if (force)
    return writer_roll_flush_all (self, error);
  if (!writer_roll_flush_full (self, deadline, error))
    return FALSE;
  if (g_get_monotonic_time () >= deadline)
    return TRUE;
  if (self->roll_round != NULL || self->roll_pending >= rollup_batch ||
      self->roll_cells >= ROLLUP_MAX_CELLS ||
      (self->roll_pending > 0 && now - self->roll_first_pending_usec >= ROLLUP_MAX_AGE_USEC))
    return writer_roll_round_step (self, deadline, error);
  return TRUE;
}

static void writer_fail (FlStore *self);

/* One maintenance transaction of about budget_usec. */
static gboolean
writer_maintenance_slice (FlStore  *self,
                          gint64    budget_usec,
                          gboolean  idle,
                          GError  **error)
{
  gint64 t0 = g_get_monotonic_time ();
  gint64 dt, t_work;
  gint64 ix0 = self->indexed_upto, pos0 = self->freeze_pos;
  gboolean round0 = self->roll_round != NULL, building0 = self->ix_build_upto != 0;
  int rc;

  gint64 work_usec = budget_usec;

  /* the commit writes what the work dirtied (index and rollup pages are
   * many per row), and can take longer than the work: the work's share
   * of an idle slice follows what the last ones took */
  if (budget_usec == MAINT_SLICE_USEC)
    {
      if (self->slice_work_usec == 0)
        self->slice_work_usec = MAINT_SLICE_USEC;
      work_usec = self->slice_work_usec;
    }
  if (!exec_sql (self->db, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (!writer_maintenance (self, FALSE, idle, t0 + work_usec, error))
    goto fail;
  t_work = g_get_monotonic_time ();
  rc = sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (error, self->db, rc, "COMMIT");
      goto fail;
    }
  writer_publish (self);
  dt = g_get_monotonic_time () - t0;
  if (budget_usec == MAINT_SLICE_USEC && dt > 0)
    {
      gint64 w = dt > budget_usec ? work_usec * budget_usec / dt : work_usec + work_usec / 8;

      self->slice_work_usec = CLAMP (w, MAINT_MIN_WORK_USEC, MAINT_SLICE_USEC);
    }
  if (dt > 4 * budget_usec)
    g_debug ("Slow maintenance slice: %.1f ms work, %.1f ms commit (index %d->%d, freeze rows %"
             G_GSIZE_FORMAT ", round %d->%d, indexed %" G_GINT64_FORMAT ")",
             (t_work - t0) / 1000.0, (g_get_monotonic_time () - t_work) / 1000.0,
             building0, self->ix_build_upto != 0, self->freeze_pos - pos0,
             round0, self->roll_round != NULL, self->indexed_upto - ix0);
  self->mstats.slices++;
  if ((guint64) dt > self->mstats.slice_max_usec)
    self->mstats.slice_max_usec = dt;
  return TRUE;

fail:
  writer_fail (self);
  return FALSE;
}

/* One group: one transaction.  Fills each request's results; on failure
 * everything is rolled back and the writer state reloaded. */
static gboolean
writer_run_group (FlStore    *self,
                  GPtrArray  *group,
                  GError    **error)
{
  gboolean force = FALSE, freeze = FALSE;
  guint64 stored = 0;
  gint64 t_start = g_get_monotonic_time (), t_appended, t_maintained, t_committed;
  int rc;

  for (guint i = 0; i < group->len; i++)
    {
      Request *req = g_ptr_array_index (group, i);

      if (req->kind == REQ_SYNC || req->kind == REQ_CLOSE)
        force = TRUE;
      if (req->kind == REQ_SYNC && req->freeze)
        freeze = TRUE;
    }

  if (!exec_sql (self->db, "BEGIN IMMEDIATE", error))
    return FALSE;

  for (guint i = 0; i < group->len; i++)
    {
      Request *req = g_ptr_array_index (group, i);

      switch (req->kind)
        {
        case REQ_APPEND:
          if (g_task_return_error_if_cancelled (req->task))
            {
              g_clear_object (&req->task);
              break;
            }
          req->accepted = g_ptr_array_new_full (req->events->len, (GDestroyNotify) fl_event_unref);
          req->duplicates = 0;
          /* hashes first (the dedupe stage may have them), with
           * prefetches of the hot-set slots and of the Bloom blocks of
           * the generations the stage has not searched: the misses
           * overlap */
          g_array_set_size (self->hashes, req->events->len);
          for (guint k = 0; k < req->events->len; k++)
            {
              guint64 h = req->hashes != NULL
                ? req->hashes[k]
                : store_hash (self, fl_event_get_id (g_ptr_array_index (req->events, k)));

              g_array_index (self->hashes, guint64, k) = h;
              __builtin_prefetch (&self->hot->offs[(gsize) (h ^ (h >> 29)) & self->hot->mask]);
              for (guint g = self->gens->len; g > 0; g--)
                {
                  const Generation *gen = g_ptr_array_index (self->gens, g - 1);

                  if (gen->gen <= req->checked_gen)
                    break;
                  __builtin_prefetch (bloom_block (gen, h));
                }
            }
          for (guint k = 0; k < req->events->len; k++)
            {
              FlEvent *event = g_ptr_array_index (req->events, k);
              guint64 h = g_array_index (self->hashes, guint64, k);
              gboolean dup = req->found != NULL && req->found[k] != 0;

              if (!dup &&
                  !writer_append_event (self, event, h, req->checked_gen,
                                        req->received_at, &dup, error))
                goto fail;
              if (dup)
                req->duplicates++;
              else
                {
                  g_ptr_array_add (req->accepted, fl_event_ref (event));
                  stored++;
                }
            }
          break;

        case REQ_SAVE_DEVICE:
          g_hash_table_replace (self->device_saves,
                                g_steal_pointer (&req->device_id),
                                g_steal_pointer (&req->device_text));
          break;

        case REQ_SYNC:
        case REQ_CLOSE:
        default:
          break;
        }
    }

  t_appended = g_get_monotonic_time ();
  /* maintenance only for a barrier (sync, close): see the writer loop */
  if (!writer_save_devices (self, error) ||
      (force && !writer_maintenance (self, TRUE, FALSE, G_MAXINT64, error)))
    goto fail;
  t_maintained = g_get_monotonic_time ();
  if (freeze)
    {
      if (self->freezing == NULL)
        writer_freeze_start (self);
      if (self->freezing != NULL && !self->freeze_done &&
          (!writer_freeze_prepared (self, TRUE) ||
           !writer_freeze_step (self, G_MAXINT64, error)))
        goto fail;
    }

  rc = sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (error, self->db, rc, "COMMIT");
      goto fail;
    }

  t_committed = g_get_monotonic_time ();
  if (t_committed - t_start > 10000)
    g_debug ("Slow group: %" G_GUINT64_FORMAT " events; appends %.1f ms, maintenance %.1f ms,"
             " commit %.1f ms", stored, (t_appended - t_start) / 1000.0,
             (t_maintained - t_appended) / 1000.0, (t_committed - t_maintained) / 1000.0);
  writer_publish (self);
  __atomic_store_n (&self->last_seq, self->next_seq - 1, __ATOMIC_RELAXED);
  __atomic_fetch_add (&self->event_count, stored, __ATOMIC_RELAXED);
  __atomic_fetch_add (&self->commit_count, 1, __ATOMIC_RELAXED);
  return TRUE;

fail:
  /* the events' seq was set; they are not stored */
  for (guint i = 0; i < group->len; i++)
    {
      Request *req = g_ptr_array_index (group, i);

      if (req->kind == REQ_APPEND && req->accepted != NULL)
        for (guint k = 0; k < req->accepted->len; k++)
          fl_event_set_seq (g_ptr_array_index (req->accepted, k), 0);
    }
  writer_fail (self);
  return FALSE;
}

/* After a failed transaction: nothing in memory is trusted. */
static void
writer_fail (FlStore *self)
{
  g_autoptr(GError) local = NULL;

  exec_sql (self->db, "ROLLBACK", NULL);
  if (!writer_recover (self, &local))
    g_warning ("Cannot reload the store state: %s", local->message);
}

/* Runs in the tasks' main context: each g_task_return_* then calls the
 * callback at once (GTask does when it is called from a source of the
 * task's context), so a group costs one cross-thread wake-up per context,
 * not one per request. */
static gboolean
complete_requests_cb (gpointer data)
{
  GPtrArray *requests = data;

  for (guint i = 0; i < requests->len; i++)
    {
      Request *req = g_ptr_array_index (requests, i);

      if (req->error != NULL)
        g_task_return_error (req->task, g_steal_pointer (&req->error));
      else if (req->kind == REQ_APPEND)
        {
          AppendResult *r = g_new0 (AppendResult, 1);

          r->events = g_steal_pointer (&req->accepted);
          r->duplicates = req->duplicates;
          g_task_return_pointer (req->task, r, (GDestroyNotify) append_result_free);
        }
      else
        g_task_return_boolean (req->task, TRUE);
    }
  return G_SOURCE_REMOVE;
}

static void
writer_complete (GPtrArray    *group,
                 const GError *error)
{
  GMainContext *contexts[4] = { NULL, };
  GPtrArray *batches[4] = { NULL, };
  guint n_contexts = 0;

  for (guint i = 0; i < group->len; i++)
    {
      Request *req = g_ptr_array_index (group, i);
      GMainContext *context;
      guint k;

      if (req->task == NULL)
        continue;
      if (error != NULL)
        req->error = g_error_copy (error);
      context = g_task_get_context (req->task);
      for (k = 0; k < n_contexts; k++)
        if (contexts[k] == context)
          break;
      if (k == n_contexts)
        {
          if (n_contexts == G_N_ELEMENTS (contexts))
            {
              /* many contexts: each request on its own */
              GPtrArray *one = g_ptr_array_new_with_free_func ((GDestroyNotify) request_free);

              g_ptr_array_add (one, req);
              g_ptr_array_index (group, i) = NULL;
              complete_requests_cb (one);
              g_ptr_array_unref (one);
              continue;
            }
          contexts[k] = context;
          batches[k] = g_ptr_array_new_with_free_func ((GDestroyNotify) request_free);
          n_contexts++;
        }
      g_ptr_array_add (batches[k], req);
      g_ptr_array_index (group, i) = NULL;
    }

  for (guint k = 0; k < n_contexts; k++)
    {
      GSource *source = g_idle_source_new ();

      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, complete_requests_cb, batches[k],
                             (GDestroyNotify) g_ptr_array_unref);
      g_source_set_static_name (source, "[fl-store] complete");
      g_source_attach (source, contexts[k]);
      g_source_unref (source);
    }
}

/* Between transactions: the WAL's size for fl_store_get_size_bytes
 * (at most every 100 ms), and the checkpointer's wake-up. */
static void
writer_after_commit (FlStore *self)
{
  gint64 now = g_get_monotonic_time ();

  checkpoint_after_commit (self);
  if (now - self->last_size_usec >= 100000)
    {
      self->last_size_usec = now;
      update_size (self);
    }
}

static gpointer
writer_thread_func (gpointer data)
{
  FlStore *self = data;
  gboolean closing = FALSE;
  g_autoptr(GPtrArray) group = g_ptr_array_new_with_free_func ((GDestroyNotify) request_free);

  /* Requests first: a group commit never waits behind maintenance.
   * Maintenance (freezing generations, index batches, rollup writes) runs
   * in transactions of its own of about MAINT_SLICE_USEC when the queue
   * is empty, so a request waits for at most one slice; when it lags
   * behind (sustained load), also one longer slice after each group. */
  while (!closing)
    {
      MaintLevel due = writer_maintenance_due (self, g_get_monotonic_time (), FALSE);
      Request *req = due != MAINT_NONE
        ? g_async_queue_try_pop (self->queue)
        : g_async_queue_timeout_pop (self->queue, IDLE_TICK_USEC);
      guint n_events = 0;
      g_autoptr(GError) error = NULL;
      gint64 t0 = g_get_monotonic_time (), c0 = thread_cpu_usec ();

      if (req == NULL)
        {
          gboolean idle = due == MAINT_NONE;

          writer_wal_restart (self, FALSE);

          if (idle && writer_maintenance_due (self, t0, TRUE) == MAINT_NONE)
            continue;
          if (!writer_maintenance_slice (self, MAINT_SLICE_USEC, idle, &error))
            g_warning ("Maintenance failed: %s", error->message);
        }
      else
        {
          g_ptr_array_add (group, req);
          if (req->kind == REQ_APPEND)
            n_events += req->events->len;
          closing = req->kind == REQ_CLOSE;
          while (!closing && n_events < GROUP_MAX_EVENTS &&
                 (req = g_async_queue_try_pop (self->queue)) != NULL)
            {
              g_ptr_array_add (group, req);
              if (req->kind == REQ_APPEND)
                n_events += req->events->len;
              closing = req->kind == REQ_CLOSE;
            }
          if (!writer_run_group (self, group, &error))
            g_warning ("Group commit of %u requests failed: %s", group->len, error->message);
          writer_complete (group, error);
          g_ptr_array_set_size (group, 0);
          g_clear_error (&error);
          /* continuous load: the queue is never empty, so the WAL can
           * only start over between groups (waits are queueing anyway) */
          if (!closing)
            writer_wal_restart (self, TRUE);
          /* lagging: as long as the group took, so it keeps up */
          if (!closing && due == MAINT_BEHIND &&
              !writer_maintenance_slice (self, MAX (MAINT_BACKLOG_SLICE_USEC,
                                                    g_get_monotonic_time () - t0),
                                         FALSE, &error))
            g_warning ("Maintenance failed: %s", error->message);
        }
      writer_after_commit (self);
      __atomic_fetch_add (&self->busy_usec, g_get_monotonic_time () - t0, __ATOMIC_RELAXED);
      __atomic_fetch_add (&self->busy_cpu_usec, thread_cpu_usec () - c0, __ATOMIC_RELAXED);
    }

  /* Everything before the close request is committed and completed (the
   * queue is FIFO and nothing is pushed after a close). */
  writer_freeze_prepared (self, TRUE);
  sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  update_size (self);
  return NULL;
}

/* ---- readers ------------------------------------------------------------ */

typedef enum {
  JOB_QUERY,
  JOB_GET,
  JOB_SINCE,
  JOB_TELEMETRY,
} JobKind;

typedef struct {
  JobKind       kind;
  FlEventQuery  query;
  char         *device_id;
  char         *event_type;
  char         *event_id;
  char        **device_ids;
  gint64        since;
  guint         limit;
  char         *metric;
  gint64        from;
  gint64        to;
  guint         points;
} Job;

static void
job_free (Job *job)
{
  g_free (job->device_id);
  g_free (job->event_type);
  g_free (job->event_id);
  g_strfreev (job->device_ids);
  g_free (job->metric);
  g_free (job);
}

typedef struct {
  GPtrArray *events;
  gint64     next_cursor;
} QueryResult;

static void
query_result_free (QueryResult *r)
{
  g_clear_pointer (&r->events, g_ptr_array_unref);
  g_free (r);
}

typedef struct {
  GArray *buckets;
  gint64  bucket_ms;
} TelemetryResult;

static void
telemetry_result_free (TelemetryResult *r)
{
  g_clear_pointer (&r->buckets, g_array_unref);
  g_free (r);
}

static void
reader_free (Reader *r)
{
  g_clear_pointer (&r->stmts, g_hash_table_unref);
  if (r->db != NULL)
    sqlite3_close (r->db);
  g_free (r);
}

static Reader *
reader_new (const char  *path,
            gint         cache_kib,
            GError     **error)
{
  Reader *r = g_new0 (Reader, 1);
  g_autofree char *pragma = NULL;

  if (!open_connection (path, TRUE, &r->db, error))
    {
      g_free (r);
      return NULL;
    }
  pragma = g_strdup_printf ("PRAGMA cache_size = -%d", cache_kib);
  if (!exec_sql (r->db, pragma, error) ||
      !exec_sql (r->db, "PRAGMA temp_store = MEMORY", error))
    {
      reader_free (r);
      return NULL;
    }
  r->stmts = stmt_cache_new ();
  return r;
}

static gboolean
reader_begin (Reader  *r,
              GError **error)
{
  return exec_sql (r->db, "BEGIN", error);
}

static void
reader_end (Reader *r)
{
  exec_sql (r->db, "COMMIT", NULL);
}

static sqlite3_stmt *
rstmt (Reader      *r,
       const char  *sql,
       GError     **error)
{
  return cached_stmt (r->db, r->stmts, sql, error);
}

/* The id of a name in sources/types/metrics; 0 if unknown. */
static gboolean
reader_name_id (Reader      *r,
                const char  *sql,
                const char  *name,
                gint64      *id,
                GError     **error)
{
  sqlite3_stmt *stmt = rstmt (r, sql, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  *id = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return set_sqlite_error (error, r->db, rc, "name");
  return TRUE;
}

static gboolean
reader_meta (Reader      *r,
             const char  *key,
             gint64      *value,
             GError     **error)
{
  return reader_name_id (r, "SELECT value FROM meta WHERE key = ?1", key, value, error);
}

/* Loads the stored event at seq; NULL (no error) if there is none. */
static FlEvent *
reader_load_event (Reader      *r,
                   gint64       seq,
                   GError     **error)
{
  sqlite3_stmt *stmt = rstmt (r,
                              "SELECT b.json, e.received_at FROM bodies b, events e"
                              " WHERE b.seq = ?1 AND e.seq = ?1", error);
  g_autoptr(GError) local = NULL;
  FlEventParseOptions options = { 0 };
  FlEvent *event;
  int rc;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, seq);
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      sqlite3_reset (stmt);
      if (rc != SQLITE_DONE)
        set_sqlite_error (error, r->db, rc, "load event");
      return NULL;
    }
  options.received_at = sqlite3_column_int64 (stmt, 1);
  options.max_event_size = G_MAXSIZE;
  event = fl_event_parse ((const char *) sqlite3_column_text (stmt, 0), sqlite3_column_bytes (stmt, 0),
                          &options, &local);
  sqlite3_reset (stmt);
  if (event == NULL)
    {
      g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                   "Stored event %" G_GINT64_FORMAT " does not load: %s", seq, local->message);
      return NULL;
    }
  fl_event_set_seq (event, seq);
  fl_event_set_received_at (event, options.received_at);
  return event;
}

static gboolean
reader_load_events (Reader     *r,
                    GArray     *seqs,
                    GPtrArray  *out,
                    GError    **error)
{
  for (guint i = 0; i < seqs->len; i++)
    {
      g_autoptr(GError) local = NULL;
      FlEvent *event = reader_load_event (r, g_array_index (seqs, gint64, i), &local);

      if (event == NULL)
        {
          if (local != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          continue;
        }
      g_ptr_array_add (out, event);
    }
  return TRUE;
}

/* Appends to seqs the seq column of stmt's rows. */
static gboolean
collect_seqs (Reader        *r,
              sqlite3_stmt  *stmt,
              GArray        *seqs,
              GError       **error)
{
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 seq = sqlite3_column_int64 (stmt, 0);

      g_array_append_val (seqs, seq);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, r->db, rc, "query");
  return TRUE;
}

/* Narrows the open seq range (lo, hi) to the events of device with ts in
 * [from, to) that ix_dev_min knows of (the indexed ones); *lo >= *hi - 1
 * when there are none. */
static gboolean
reader_minute_range (Reader   *r,
                     gint64    device,
                     gint64    from,
                     gint64    to,
                     gint64   *lo,
                     gint64   *hi,
                     GError  **error)
{
  sqlite3_stmt *stmt = rstmt (r, "SELECT min (lo_seq), max (hi_seq) FROM ix_dev_min"
                                 " WHERE device = ?1 AND minute >= ?2 AND minute <= ?3", error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, device);
  sqlite3_bind_int64 (stmt, 2, from == G_MININT64 ? G_MININT64 : floor_div (from, MINUTE_MS));
  sqlite3_bind_int64 (stmt, 3, to == G_MAXINT64 ? G_MAXINT64 : floor_div (to - 1, MINUTE_MS));
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW && sqlite3_column_type (stmt, 0) != SQLITE_NULL)
    {
      *lo = MAX (*lo, sqlite3_column_int64 (stmt, 0) - 1);
      *hi = MIN (*hi, sqlite3_column_int64 (stmt, 1) + 1);
    }
  else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    *lo = *hi;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return set_sqlite_error (error, r->db, rc, "query");
  return TRUE;
}

/* Seqs in (lo, hi) matching the query, at most limit, in order. */
static gboolean
query_part (Reader              *r,
            const FlEventQuery  *q,
            gint64               device,
            gint64               type,
            gboolean             indexed,
            gint64               lo,
            gint64               hi,
            guint                limit,
            GArray              *seqs,
            GError             **error)
{
  const char *sql;
  sqlite3_stmt *stmt;
  gboolean from_bounded = q->from != G_MININT64;
  gboolean to_bounded = q->to != G_MAXINT64;

  if (lo + 1 >= hi || limit == 0)
    return TRUE;

  if (indexed && device > 0)
    {
      /* a time range first narrows the seq range through the minute map,
       * then the seq index is read with the time range as a filter */
      if ((from_bounded || to_bounded) &&
          !reader_minute_range (r, device, q->from, q->to, &lo, &hi, error))
        return FALSE;
      if (lo + 1 >= hi)
        return TRUE;
      sql = q->descending
          ? "SELECT seq FROM ix_dev_seq WHERE device = ?1 AND seq > ?4 AND seq < ?5"
            " AND ts >= ?2 AND ts < ?3 AND (?6 = 0 OR type = ?6) ORDER BY seq DESC LIMIT ?7"
          : "SELECT seq FROM ix_dev_seq WHERE device = ?1 AND seq > ?4 AND seq < ?5"
            " AND ts >= ?2 AND ts < ?3 AND (?6 = 0 OR type = ?6) ORDER BY seq LIMIT ?7";
    }
  else
    sql = q->descending
      ? "SELECT seq FROM events WHERE seq > ?4 AND seq < ?5 AND (?1 = 0 OR device = ?1)"
        " AND ts >= ?2 AND ts < ?3 AND (?6 = 0 OR type = ?6) ORDER BY seq DESC LIMIT ?7"
      : "SELECT seq FROM events WHERE seq > ?4 AND seq < ?5 AND (?1 = 0 OR device = ?1)"
        " AND ts >= ?2 AND ts < ?3 AND (?6 = 0 OR type = ?6) ORDER BY seq LIMIT ?7";

  stmt = rstmt (r, sql, error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, device);
  sqlite3_bind_int64 (stmt, 2, q->from);
  sqlite3_bind_int64 (stmt, 3, q->to);
  sqlite3_bind_int64 (stmt, 4, lo);
  sqlite3_bind_int64 (stmt, 5, hi);
  sqlite3_bind_int64 (stmt, 6, type);
  sqlite3_bind_int64 (stmt, 7, limit);
  return collect_seqs (r, stmt, seqs, error);
}

static QueryResult *
reader_query (Reader              *r,
              const FlEventQuery  *q,
              GError             **error)
{
  g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (gint64));
  QueryResult *result = g_new0 (QueryResult, 1);
  gint64 device = 0, type = 0, indexed = 0, lo, hi;
  guint limit = q->limit == 0 ? 100 : MIN (q->limit, 1000);
  guint want = limit + 1;

  result->events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  if (q->from >= q->to)
    return result;

  if (!reader_begin (r, error))
    goto fail;
  if (q->device_id != NULL &&
      (!reader_name_id (r, "SELECT id FROM sources WHERE name = ?1", q->device_id, &device, error)))
    goto fail_tx;
  if (q->event_type != NULL &&
      (!reader_name_id (r, "SELECT id FROM types WHERE name = ?1", q->event_type, &type, error)))
    goto fail_tx;
  if ((q->device_id != NULL && device == 0) || (q->event_type != NULL && type == 0))
    {
      reader_end (r);
      return result;
    }
  if (!reader_meta (r, "indexed_upto", &indexed, error))
    goto fail_tx;

  if (!q->descending)
    {
      lo = MAX (q->after_seq, 0);
      hi = G_MAXINT64;
      /* indexed rows first (smaller seqs), then the tail */
      if (!query_part (r, q, device, type, TRUE, lo, MIN (hi, indexed + 1), want, seqs, error) ||
          !query_part (r, q, device, type, FALSE, MAX (lo, indexed), hi, want - seqs->len,
                       seqs, error))
        goto fail_tx;
    }
  else
    {
      lo = 0;
      hi = q->after_seq > 0 ? q->after_seq : G_MAXINT64;
      if (!query_part (r, q, device, type, FALSE, MAX (lo, indexed), hi, want, seqs, error) ||
          !query_part (r, q, device, type, TRUE, lo, MIN (hi, indexed + 1), want - seqs->len,
                       seqs, error))
        goto fail_tx;
    }

  if (seqs->len > limit)
    {
      g_array_set_size (seqs, limit);
      result->next_cursor = g_array_index (seqs, gint64, limit - 1);
    }
  if (!reader_load_events (r, seqs, result->events, error))
    goto fail_tx;
  reader_end (r);
  return result;

fail_tx:
  reader_end (r);
fail:
  query_result_free (result);
  return NULL;
}

typedef struct {
  Reader     *r;
  const char *id;
  gint64      found;
  GError    **error;
  gboolean    failed;
} ReaderIdCheck;

static gboolean
reader_id_check (gint64   seq,
                 gpointer user_data)
{
  ReaderIdCheck *c = user_data;
  sqlite3_stmt *stmt = rstmt (c->r, "SELECT id FROM bodies WHERE seq = ?1", c->error);
  int rc;

  if (stmt == NULL)
    {
      c->failed = TRUE;
      return TRUE;
    }
  sqlite3_bind_int64 (stmt, 1, seq);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW &&
      g_strcmp0 ((const char *) sqlite3_column_text (stmt, 0), c->id) == 0)
    c->found = seq;
  else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      set_sqlite_error (c->error, c->r->db, rc, "get event");
      c->failed = TRUE;
    }
  sqlite3_reset (stmt);
  return c->found != 0 || c->failed;
}

static gboolean
collect_seq (gint64   seq,
             gpointer user_data)
{
  g_array_append_val ((GArray *) user_data, seq);
  return FALSE;
}

static FlEvent *
reader_get (FlStore     *self,
            Reader      *r,
            const char  *id,
            GError     **error)
{
  guint64 h = store_hash (self, id);
  g_autoptr(GArray) hot = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GArray) gens = g_array_new (FALSE, FALSE, sizeof (gint64));
  ReaderIdCheck check = { r, id, 0, error, FALSE };
  FlEvent *event = NULL;

  /* The in-memory dedupe state is at least as new as anything committed
   * (the hot set gets an id before its commit, a generation replaces its
   * hot set only after its commit), and the snapshot below is taken after
   * this look, so a committed event is always found in one of them. */
  g_rw_lock_reader_lock (&self->dedupe_lock);
  hot_set_foreach_match (self->hot, h, collect_seq, hot);
  if (self->freezing != NULL)
    hot_set_foreach_match (self->freezing, h, collect_seq, hot);
  for (guint i = 0; i < self->gens->len; i++)
    {
      const Generation *g = g_ptr_array_index (self->gens, i);

      if (bloom_may_contain (g, h))
        g_array_append_val (gens, g->gen);
    }
  g_rw_lock_reader_unlock (&self->dedupe_lock);

  if (!reader_begin (r, error))
    return NULL;
  for (guint i = 0; i < hot->len && check.found == 0 && !check.failed; i++)
    reader_id_check (g_array_index (hot, gint64, i), &check);
  for (guint i = gens->len; i > 0 && check.found == 0 && !check.failed; i--)
    {
      g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (gint64));
      sqlite3_stmt *stmt = rstmt (r, "SELECT seq FROM dedupe WHERE gen = ?1 AND hash = ?2", error);

      if (stmt == NULL)
        {
          check.failed = TRUE;
          break;
        }
      sqlite3_bind_int64 (stmt, 1, g_array_index (gens, gint64, i - 1));
      sqlite3_bind_int64 (stmt, 2, (gint64) h);
      if (!collect_seqs (r, stmt, seqs, error))
        {
          check.failed = TRUE;
          break;
        }
      for (guint k = 0; k < seqs->len && check.found == 0 && !check.failed; k++)
        reader_id_check (g_array_index (seqs, gint64, k), &check);
    }
  if (!check.failed && check.found != 0)
    event = reader_load_event (r, check.found, error);
  reader_end (r);
  if (check.failed)
    return NULL;
  if (event == NULL && error != NULL && *error == NULL)
    g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_NOT_FOUND, "No event %s", id);
  return event;
}

static int
gint64_cmp (gconstpointer a,
            gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static GPtrArray *
reader_since (Reader       *r,
              gint64        since,
              char * const *device_ids,
              guint         limit,
              GError      **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GHashTable) devices = NULL;
  gint64 indexed = 0;
  sqlite3_stmt *stmt;

  limit = limit == 0 ? 1000 : MIN (limit, 10000);
  since = MAX (since, 0);
  if (device_ids != NULL)
    {
      for (guint i = 0; device_ids[i] != NULL; i++)
        if (g_str_equal (device_ids[i], "*"))
          {
            device_ids = NULL;
            break;
          }
    }

  if (!reader_begin (r, error))
    return NULL;

  if (device_ids == NULL)
    {
      stmt = rstmt (r, "SELECT seq FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", error);
      if (stmt == NULL)
        goto fail;
      sqlite3_bind_int64 (stmt, 1, since);
      sqlite3_bind_int64 (stmt, 2, limit);
      if (!collect_seqs (r, stmt, seqs, error))
        goto fail;
    }
  else
    {
      int rc;

      devices = g_hash_table_new (g_int64_hash, g_int64_equal);
      for (guint i = 0; device_ids[i] != NULL; i++)
        {
          gint64 *id = g_new (gint64, 1);

          if (!reader_name_id (r, "SELECT id FROM sources WHERE name = ?1", device_ids[i], id, error))
            {
              g_free (id);
              goto fail;
            }
          if (*id != 0 && !g_hash_table_contains (devices, id))
            g_hash_table_add (devices, id);
          else
            g_free (id);
        }
      if (g_hash_table_size (devices) == 0)
        {
          g_hash_table_foreach (devices, (GHFunc) g_free, NULL);
          reader_end (r);
          return g_steal_pointer (&out);
        }
      if (!reader_meta (r, "indexed_upto", &indexed, error))
        goto fail_devices;

      /* indexed part: per device on ix_dev_seq, merged */
      {
        GHashTableIter iter;
        gpointer key;

        g_hash_table_iter_init (&iter, devices);
        while (g_hash_table_iter_next (&iter, &key, NULL))
          {
            stmt = rstmt (r,
                          "SELECT seq FROM ix_dev_seq WHERE device = ?1 AND seq > ?2"
                          " AND seq <= ?3 ORDER BY seq LIMIT ?4", error);
            if (stmt == NULL)
              goto fail_devices;
            sqlite3_bind_int64 (stmt, 1, *(gint64 *) key);
            sqlite3_bind_int64 (stmt, 2, since);
            sqlite3_bind_int64 (stmt, 3, indexed);
            sqlite3_bind_int64 (stmt, 4, limit);
            if (!collect_seqs (r, stmt, seqs, error))
              goto fail_devices;
          }
        g_array_sort (seqs, gint64_cmp);
        if (seqs->len > limit)
          g_array_set_size (seqs, limit);
      }
      /* the un-indexed tail */
      if (seqs->len < limit)
        {
          stmt = rstmt (r, "SELECT seq, device FROM events WHERE seq > ?1 ORDER BY seq", error);
          if (stmt == NULL)
            goto fail_devices;
          sqlite3_bind_int64 (stmt, 1, MAX (since, indexed));
          while (seqs->len < limit && (rc = sqlite3_step (stmt)) == SQLITE_ROW)
            {
              gint64 dev = sqlite3_column_int64 (stmt, 1);

              if (g_hash_table_contains (devices, &dev))
                {
                  gint64 seq = sqlite3_column_int64 (stmt, 0);

                  g_array_append_val (seqs, seq);
                }
            }
          sqlite3_reset (stmt);
          if (seqs->len < limit && rc != SQLITE_DONE)
            {
              set_sqlite_error (error, r->db, rc, "since");
              goto fail_devices;
            }
        }
      g_hash_table_foreach (devices, (GHFunc) g_free, NULL);
    }

  if (!reader_load_events (r, seqs, out, error))
    goto fail;
  reader_end (r);
  return g_steal_pointer (&out);

fail_devices:
  g_hash_table_foreach (devices, (GHFunc) g_free, NULL);
fail:
  reader_end (r);
  return NULL;
}

/* ---- telemetry ---------------------------------------------------------- */

typedef struct {
  gint64             first;   /* first bucket index */
  gint64             width;
  guint              n;
  FlTelemetryBucket *cells;
} Buckets;

static inline void
buckets_add (Buckets *b,
             gint64   t,
             double   min,
             double   max,
             double   sum,
             gint64   count)
{
  gint64 idx = floor_div (t, b->width) - b->first;
  FlTelemetryBucket *c;

  if (idx < 0 || idx >= b->n)
    return;
  c = &b->cells[idx];
  if (c->count == 0)
    {
      c->min = min;
      c->max = max;
      c->avg = sum;   /* the sum, until the end */
      c->count = count;
      return;
    }
  c->min = MIN (c->min, min);
  c->max = MAX (c->max, max);
  c->avg += sum;
  c->count += count;
}

/* Adds the (ts, value) rows of stmt. */
static gboolean
telemetry_add_raw (Reader        *r,
                   sqlite3_stmt  *stmt,
                   Buckets       *b,
                   GError       **error)
{
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      double v = sqlite3_column_double (stmt, 1);

      buckets_add (b, sqlite3_column_int64 (stmt, 0), v, v, v, 1);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, r->db, rc, "telemetry");
  return TRUE;
}

/* Values of metric in the log past the device index (seq > after), in
 * [lo, hi): the short tail the index batches have not reached yet. */
static gboolean
telemetry_raw_unindexed (Reader      *r,
                         gint64       device,
                         const char  *metric,
                         gint64       after,
                         gint64       lo,
                         gint64       hi,
                         Buckets     *b,
                         GError     **error)
{
  sqlite3_stmt *stmt;

  stmt = rstmt (r,
                "SELECT e.ts, j.value FROM events e JOIN bodies bo ON bo.seq = e.seq,"
                " json_each (bo.json, '$.data') j"
                " WHERE e.seq > ?1 AND e.device = ?2 AND e.ts >= ?3 AND e.ts < ?4"
                " AND j.key = ?5 AND j.type IN ('integer', 'real')", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, after);
  sqlite3_bind_int64 (stmt, 2, device);
  sqlite3_bind_int64 (stmt, 3, lo);
  sqlite3_bind_int64 (stmt, 4, hi);
  sqlite3_bind_text (stmt, 5, metric, -1, SQLITE_STATIC);
  return telemetry_add_raw (r, stmt, b, error);
}

/* Raw events of device with ts in [lo, hi), any seq. */
static gboolean
telemetry_raw_range (Reader      *r,
                     gint64       device,
                     const char  *metric,
                     gint64       indexed,
                     gint64       lo,
                     gint64       hi,
                     Buckets     *b,
                     GError     **error)
{
  sqlite3_stmt *stmt;
  gint64 seq_lo = 0, seq_hi = indexed + 1;

  if (lo >= hi)
    return TRUE;
  if (!reader_minute_range (r, device, lo, hi, &seq_lo, &seq_hi, error))
    return FALSE;
  if (seq_lo + 1 < seq_hi)
    {
      stmt = rstmt (r,
                    "SELECT x.ts, j.value FROM ix_dev_seq x JOIN bodies bo ON bo.seq = x.seq,"
                    " json_each (bo.json, '$.data') j"
                    " WHERE x.device = ?1 AND x.seq > ?2 AND x.seq < ?3 AND x.ts >= ?4"
                    " AND x.ts < ?5 AND j.key = ?6 AND j.type IN ('integer', 'real')", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, device);
      sqlite3_bind_int64 (stmt, 2, seq_lo);
      sqlite3_bind_int64 (stmt, 3, seq_hi);
      sqlite3_bind_int64 (stmt, 4, lo);
      sqlite3_bind_int64 (stmt, 5, hi);
      sqlite3_bind_text (stmt, 6, metric, -1, SQLITE_STATIC);
      if (!telemetry_add_raw (r, stmt, b, error))
        return FALSE;
    }

  return telemetry_raw_unindexed (r, device, metric, indexed, lo, hi, b, error);
}

/* Raw events of device with seq > rolled and ts in [lo, hi): the part the
 * rollups do not hold yet. */
static gboolean
telemetry_raw_tail (Reader      *r,
                    gint64       device,
                    const char  *metric,
                    gint64       indexed,
                    gint64       rolled,
                    gint64       lo,
                    gint64       hi,
                    Buckets     *b,
                    GError     **error)
{
  sqlite3_stmt *stmt;

  if (lo >= hi)
    return TRUE;
  if (rolled < indexed)
    {
      stmt = rstmt (r,
                    "SELECT x.ts, j.value FROM ix_dev_seq x JOIN bodies bo ON bo.seq = x.seq,"
                    " json_each (bo.json, '$.data') j"
                    " WHERE x.device = ?1 AND x.seq > ?2 AND x.seq <= ?3 AND x.ts >= ?4"
                    " AND x.ts < ?5 AND j.key = ?6 AND j.type IN ('integer', 'real')", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, device);
      sqlite3_bind_int64 (stmt, 2, rolled);
      sqlite3_bind_int64 (stmt, 3, indexed);
      sqlite3_bind_int64 (stmt, 4, lo);
      sqlite3_bind_int64 (stmt, 5, hi);
      sqlite3_bind_text (stmt, 6, metric, -1, SQLITE_STATIC);
      if (!telemetry_add_raw (r, stmt, b, error))
        return FALSE;
    }
  return telemetry_raw_unindexed (r, device, metric, MAX (indexed, rolled), lo, hi, b, error);
}

static gboolean
telemetry_rollup (Reader   *r,
                  gint64    device,
                  gint64    metric,
                  gint64    res,
                  gint64    lo,
                  gint64    hi,
                  Buckets  *b,
                  GError  **error)
{
  sqlite3_stmt *stmt;
  int rc;

  if (lo >= hi)
    return TRUE;
  stmt = rstmt (r,
                "SELECT t, min, max, sum, count FROM rollups WHERE device = ?1"
                " AND metric = ?2 AND res = ?3 AND t >= ?4 AND t < ?5", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, device);
  sqlite3_bind_int64 (stmt, 2, metric);
  sqlite3_bind_int64 (stmt, 3, res);
  sqlite3_bind_int64 (stmt, 4, lo);
  sqlite3_bind_int64 (stmt, 5, hi);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    buckets_add (b, sqlite3_column_int64 (stmt, 0),
                 sqlite3_column_double (stmt, 1), sqlite3_column_double (stmt, 2),
                 sqlite3_column_double (stmt, 3), sqlite3_column_int64 (stmt, 4));
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, r->db, rc, "telemetry");
  return TRUE;
}

/* The bucket width for about points buckets over range ms, and the
 * coarsest rollup resolution that divides it (0: raw events). */
static void
telemetry_plan (gint64  range,
                guint   points,
                gint64 *width,
                gint64 *res)
{
  gint64 w;

  points = points == 0 ? 100 : MIN (points, 10000);
  w = MAX ((gint64) 1, (range + points - 1) / points);
  if (w >= HOUR_MS || range / MINUTE_MS > 50000)
    {
      w = ceil_to (w, HOUR_MS);
      *res = HOUR_MS;
    }
  else if (w >= MINUTE_MS)
    {
      w = ceil_to (w, MINUTE_MS);
      *res = MINUTE_MS;
    }
  else
    *res = 0;
  *width = w;
}

static TelemetryResult *
reader_telemetry (Reader      *r,
                  const char  *device_id,
                  const char  *metric,
                  gint64       from,
                  gint64       to,
                  guint        points,
                  GError     **error)
{
  TelemetryResult *result = g_new0 (TelemetryResult, 1);
  Buckets b = { 0 };
  gint64 device = 0, metric_id = 0, indexed = 0, rolled = 0, device_rolled = 0, res;

  from = CLAMP (from, -TS_LIMIT, TS_LIMIT);
  to = CLAMP (to, -TS_LIMIT, TS_LIMIT);
  result->buckets = g_array_new (FALSE, FALSE, sizeof (FlTelemetryBucket));
  telemetry_plan (MAX (to - from, 1), points, &result->bucket_ms, &res);
  if (from >= to)
    return result;

  b.width = result->bucket_ms;
  b.first = floor_div (from, b.width);
  b.n = (guint) (floor_div (to - 1, b.width) - b.first + 1);
  b.cells = g_new0 (FlTelemetryBucket, b.n);

  if (!reader_begin (r, error))
    goto fail;
  if (!reader_name_id (r, "SELECT id FROM sources WHERE name = ?1", device_id, &device, error) ||
      !reader_name_id (r, "SELECT id FROM metrics WHERE name = ?1", metric, &metric_id, error) ||
      !reader_meta (r, "indexed_upto", &indexed, error) ||
      !reader_meta (r, "rolled_upto", &rolled, error) ||
      !reader_name_id (r, "SELECT rolled_upto FROM sources WHERE name = ?1", device_id,
                       &device_rolled, error))
    goto fail_tx;
  /* everything up to the larger of the two is in the rollups */
  rolled = MAX (rolled, device_rolled);

  if (device != 0 && metric_id != 0)
    {
      gint64 m_lo = ceil_to (from, MINUTE_MS), m_hi = floor_to (to, MINUTE_MS);

      if (res == 0 || m_lo >= m_hi)
        {
          if (!telemetry_raw_range (r, device, metric, indexed, from, to, &b, error))
            goto fail_tx;
        }
      else
        {
          gint64 h_lo = ceil_to (from, HOUR_MS), h_hi = floor_to (to, HOUR_MS);

          /* raw edges shorter than a minute, whole minutes and hours from
           * the rollups, and the events not rolled up yet */
          if (!telemetry_raw_range (r, device, metric, indexed, from, m_lo, &b, error) ||
              !telemetry_raw_range (r, device, metric, indexed, m_hi, to, &b, error))
            goto fail_tx;
          if (res == HOUR_MS && h_lo < h_hi)
            {
              if (!telemetry_rollup (r, device, metric_id, HOUR_MS, h_lo, h_hi, &b, error) ||
                  !telemetry_rollup (r, device, metric_id, MINUTE_MS, m_lo, h_lo, &b, error) ||
                  !telemetry_rollup (r, device, metric_id, MINUTE_MS, h_hi, m_hi, &b, error))
                goto fail_tx;
            }
          else if (!telemetry_rollup (r, device, metric_id, MINUTE_MS, m_lo, m_hi, &b, error))
            goto fail_tx;
          if (!telemetry_raw_tail (r, device, metric, indexed, rolled, m_lo, m_hi, &b, error))
            goto fail_tx;
        }
    }
  reader_end (r);

  for (guint i = 0; i < b.n; i++)
    {
      FlTelemetryBucket c = b.cells[i];

      if (c.count == 0)
        continue;
      c.t = (b.first + i) * b.width;
      c.avg = c.avg / (double) c.count;
      g_array_append_val (result->buckets, c);
    }
  g_free (b.cells);
  return result;

fail_tx:
  reader_end (r);
fail:
  g_free (b.cells);
  telemetry_result_free (result);
  return NULL;
}

static void
reader_job_func (gpointer data,
                 gpointer user_data)
{
  g_autoptr(GTask) task = data;
  FlStore *self = user_data;
  Job *job = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  gboolean returned = FALSE;
  Reader *r;

  if (g_task_return_error_if_cancelled (task))
    return;

  r = g_async_queue_pop (self->readers);
  switch (job->kind)
    {
    case JOB_QUERY:
      {
        QueryResult *res = reader_query (r, &job->query, &error);

        if (res != NULL)
          {
            g_task_return_pointer (task, res, (GDestroyNotify) query_result_free);
            returned = TRUE;
          }
      }
      break;

    case JOB_GET:
      {
        FlEvent *event = reader_get (self, r, job->event_id, &error);

        if (event != NULL)
          {
            g_task_return_pointer (task, event, (GDestroyNotify) fl_event_unref);
            returned = TRUE;
          }
      }
      break;

    case JOB_SINCE:
      {
        GPtrArray *events = reader_since (r, job->since, job->device_ids, job->limit, &error);

        if (events != NULL)
          {
            g_task_return_pointer (task, events, (GDestroyNotify) g_ptr_array_unref);
            returned = TRUE;
          }
      }
      break;

    case JOB_TELEMETRY:
      {
        TelemetryResult *res = reader_telemetry (r, job->device_id, job->metric, job->from,
                                                 job->to, job->points, &error);

        if (res != NULL)
          {
            g_task_return_pointer (task, res, (GDestroyNotify) telemetry_result_free);
            returned = TRUE;
          }
      }
      break;

    default:
      g_assert_not_reached ();
    }
  g_async_queue_push (self->readers, r);

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else if (!returned)
    g_task_return_new_error (task, FL_STORE_ERROR, FL_STORE_ERROR_FAILED, "Query failed");
}

/* ---- GObject ------------------------------------------------------------ */

/* ---- the dedupe stage ---------------------------------------------------
 *
 * Once history holds dozens of frozen generations, searching them is the
 * writer's largest cost per new event: one Bloom probe per generation (a
 * cache miss each) and, at ~0.8% false positives per filter, a B-tree
 * probe for a good part of all new ids.  A published generation never
 * changes, so that search runs ahead of the writer, on a thread of its
 * own with a read-only connection: it hashes the ids, marks each one it
 * finds (stored, hence committed) and notes the newest generation it
 * searched.  The writer then searches only its hot sets and the
 * generations published since.  Requests keep their order: while any
 * request is in the stage, every new one goes through it too. */

typedef struct {
  guint  k;       /* the event's index in its request */
  gint64 gen;
} StageCandidate;

static void
stage_search (FlStore *self,
              Request *req)
{
  GPtrArray *events = req->events;
  g_autoptr(GArray) cands = g_array_new (FALSE, FALSE, sizeof (StageCandidate));
  g_autoptr(GArray) seqs = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GError) error = NULL;
  Reader *r = self->stage_reader;
  gint64 newest = -1;
  gboolean ok = TRUE;

  req->hashes = g_new (guint64, events->len);
  for (guint k = 0; k < events->len; k++)
    req->hashes[k] = store_hash (self, fl_event_get_id (g_ptr_array_index (events, k)));

  /* the Bloom filters, newest first, with every block prefetched before
   * it is read */
  g_rw_lock_reader_lock (&self->dedupe_lock);
  if (self->gens->len > 0)
    {
      newest = ((Generation *) g_ptr_array_index (self->gens, self->gens->len - 1))->gen;
      for (guint k = 0; k < events->len; k++)
        for (guint g = 0; g < self->gens->len; g++)
          __builtin_prefetch (bloom_block (g_ptr_array_index (self->gens, g), req->hashes[k]));
      for (guint k = 0; k < events->len; k++)
        for (guint g = self->gens->len; g > 0; g--)
          {
            const Generation *gen = g_ptr_array_index (self->gens, g - 1);

            if (bloom_may_contain (gen, req->hashes[k]))
              {
                StageCandidate c = { k, gen->gen };

                g_array_append_val (cands, c);
              }
          }
    }
  g_rw_lock_reader_unlock (&self->dedupe_lock);

  if (cands->len > 0)
    {
      /* this snapshot starts after the generations were published,
       * hence after their rows committed */
      req->found = g_new0 (gint64, events->len);
      ok = reader_begin (r, &error);
      for (guint i = 0; ok && i < cands->len; i++)
        {
          const StageCandidate *c = &g_array_index (cands, StageCandidate, i);
          ReaderIdCheck check = { r, fl_event_get_id (g_ptr_array_index (events, c->k)),
                                  0, &error, FALSE };
          sqlite3_stmt *stmt;

          if (req->found[c->k] != 0)
            continue;
          __atomic_fetch_add (&self->dedupe_probes, 1, __ATOMIC_RELAXED);
          stmt = rstmt (r, "SELECT seq FROM dedupe WHERE gen = ?1 AND hash = ?2", &error);
          ok = stmt != NULL;
          if (!ok)
            break;
          sqlite3_bind_int64 (stmt, 1, c->gen);
          sqlite3_bind_int64 (stmt, 2, (gint64) req->hashes[c->k]);
          g_array_set_size (seqs, 0);
          ok = collect_seqs (r, stmt, seqs, &error);
          for (guint j = 0; ok && j < seqs->len && check.found == 0; j++)
            {
              reader_id_check (g_array_index (seqs, gint64, j), &check);
              ok = !check.failed;
            }
          req->found[c->k] = check.found;
        }
      reader_end (r);
    }

  if (!ok)
    {
      /* the writer searches everything itself */
      g_warning ("Dedupe stage: %s", error->message);
      g_clear_pointer (&req->found, g_free);
      newest = -1;
    }
  req->checked_gen = newest;
}

static gpointer
stage_thread_func (gpointer data)
{
  FlStore *self = data;
  gboolean closing = FALSE;

  while (!closing)
    {
      Request *req = g_async_queue_pop (self->staged);

      closing = req->kind == REQ_CLOSE;
      if (req->kind == REQ_APPEND)
        stage_search (self, req);
      g_mutex_lock (&self->lock);
      g_async_queue_push (self->queue, req);
      self->n_staged--;
      g_mutex_unlock (&self->lock);
    }
  return NULL;
}

/* Queues a request for the writer, through the dedupe stage when there
 * are generations to search (or the stage holds requests).  Call with
 * self->lock held. */
static void
route_request (FlStore *self,
               Request *req)
{
  if (self->stage_thread != NULL &&
      (self->n_staged > 0 || req->kind == REQ_CLOSE ||
       (req->kind == REQ_APPEND && __atomic_load_n (&self->n_gens, __ATOMIC_RELAXED) > 0)))
    {
      self->n_staged++;
      g_async_queue_push (self->staged, req);
    }
  else
    g_async_queue_push (self->queue, req);
}

static void
fl_store_finalize (GObject *object)
{
  FlStore *self = (FlStore *) object;

  fl_store_close (self);

  g_clear_pointer (&self->queue, g_async_queue_unref);
  g_clear_pointer (&self->staged, g_async_queue_unref);
  g_clear_pointer (&self->readers, g_async_queue_unref);
  g_clear_pointer (&self->all_readers, g_ptr_array_unref);
  g_clear_pointer (&self->device_ids, g_hash_table_unref);
  g_clear_pointer (&self->type_ids, g_hash_table_unref);
  g_clear_pointer (&self->metric_ids, g_hash_table_unref);
  g_clear_pointer (&self->dirty_devices, g_ptr_array_unref);
  g_clear_pointer (&self->full_devices, g_ptr_array_unref);
  g_clear_pointer (&self->device_slots, g_ptr_array_unref);
  g_clear_pointer (&self->freeze_entries, g_free);
  g_clear_pointer (&self->device_saves, g_hash_table_unref);
  g_clear_pointer (&self->hashes, g_array_unref);
  g_clear_pointer (&self->ix_pending, g_array_unref);
  g_clear_pointer (&self->ix_by_seq, g_array_unref);
  g_clear_pointer (&self->ix_minutes, g_array_unref);
  g_mutex_clear (&self->ckpt_lock);
  g_cond_clear (&self->ckpt_cond);
  g_clear_pointer (&self->hot, hot_set_free);
  g_clear_pointer (&self->freezing, hot_set_free);
  g_clear_pointer (&self->new_gen, generation_free);
  g_clear_pointer (&self->gens, g_ptr_array_unref);
  g_rw_lock_clear (&self->dedupe_lock);
  g_mutex_clear (&self->lock);
  g_clear_pointer (&self->path, g_free);
  g_clear_pointer (&self->wal_path, g_free);

  G_OBJECT_CLASS (fl_store_parent_class)->finalize (object);
}

static void
fl_store_class_init (FlStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = fl_store_finalize;
}

static void
fl_store_init (FlStore *self)
{
  g_mutex_init (&self->lock);
  g_rw_lock_init (&self->dedupe_lock);
  self->queue = g_async_queue_new ();
  self->staged = g_async_queue_new ();
  self->readers = g_async_queue_new ();
  self->all_readers = g_ptr_array_new_with_free_func ((GDestroyNotify) reader_free);
  self->device_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) device_slot_free);
  self->device_slots = g_ptr_array_new ();
  self->dirty_devices = g_ptr_array_new ();
  self->full_devices = g_ptr_array_new ();
  self->type_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->metric_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->device_saves = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->gens = g_ptr_array_new_with_free_func ((GDestroyNotify) generation_free);
  self->hashes = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->ix_pending = g_array_new (FALSE, FALSE, sizeof (IxEntry));
  self->ix_by_seq = g_array_new (FALSE, FALSE, sizeof (IxEntry));
  self->ix_minutes = g_array_new (FALSE, FALSE, sizeof (IxMinute));
  g_mutex_init (&self->ckpt_lock);
  g_cond_init (&self->ckpt_cond);
  self->generation_size = DEFAULT_GENERATION_SIZE;
  self->index_batch = DEFAULT_INDEX_BATCH;
  self->rollup_batch = DEFAULT_ROLLUP_BATCH;
  self->closed = TRUE;   /* until open succeeds */
}

static guint
env_uint (const char *name,
          guint       fallback)
{
  const char *value = g_getenv (name);
  guint64 v;

  if (value == NULL || !g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT32, &v, NULL))
    return fallback;
  return (guint) v;
}

FlStore *
fl_store_open (const char  *path,
               GError     **error)
{
  g_autoptr(FlStore) self = NULL;
  g_autofree char *pragma = NULL;
  g_autoptr(GError) local = NULL;
  gint64 rc64 = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (FL_TYPE_STORE, NULL);
  self->path = g_strdup (path);
  self->wal_path = g_strconcat (path, "-wal", NULL);
  self->generation_size = env_uint ("FL_STORE_GENERATION_SIZE", DEFAULT_GENERATION_SIZE);
  self->index_batch = env_uint ("FL_STORE_INDEX_BATCH", DEFAULT_INDEX_BATCH);
  self->rollup_batch = env_uint ("FL_STORE_ROLLUP_BATCH", DEFAULT_ROLLUP_BATCH);
  self->hash_bits = env_uint ("FL_STORE_HASH_BITS", 0);

  if (!open_connection (path, FALSE, &self->db, error))
    return NULL;
  self->wstmts = stmt_cache_new ();

  pragma = g_strdup_printf ("PRAGMA cache_size = -%d;"
                            "PRAGMA wal_autocheckpoint = 0;"
                            "PRAGMA journal_size_limit = %d;",
                            WRITER_CACHE_KIB, JOURNAL_SIZE_LIMIT);
  /* WAL + synchronous=NORMAL: see the top of this file */
  if (!query_int64 (self->db, "PRAGMA journal_mode = WAL", &rc64, error) ||
      !exec_sql (self->db, "PRAGMA synchronous = NORMAL;"
                           "PRAGMA temp_store = MEMORY;"
                           "PRAGMA foreign_keys = OFF;", error) ||
      !exec_sql (self->db, pragma, error))
    return NULL;
  {
    sqlite3_stmt *stmt = NULL;
    gboolean wal = FALSE;

    if (sqlite3_prepare_v2 (self->db, "PRAGMA journal_mode", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step (stmt) == SQLITE_ROW)
      wal = g_ascii_strcasecmp ((const char *) sqlite3_column_text (stmt, 0), "wal") == 0;
    sqlite3_finalize (stmt);
    if (!wal)
      {
        g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                     "Cannot put %s in WAL mode", path);
        return NULL;
      }
  }

  {
    gint64 page_size = 4096;

    if (!query_int64 (self->db, "PRAGMA page_size", &page_size, error))
      return NULL;
    self->page_size = (gint) page_size;
  }
  sqlite3_wal_hook (self->db, wal_hook_cb, self);

  /* writer_recover also rolls up events logged after the last rollup
   * write (after a crash) */
  if (!migrate (self->db, error) ||
      !writer_recover (self, error))
    return NULL;

  for (guint i = 0; i < N_READERS; i++)
    {
      Reader *r = reader_new (path, READER_CACHE_KIB, error);

      if (r == NULL)
        return NULL;
      g_ptr_array_add (self->all_readers, r);
      g_async_queue_push (self->readers, r);
    }

  update_size (self);
  self->pool = g_thread_pool_new (reader_job_func, self, N_READERS, TRUE, error);
  if (self->pool == NULL)
    return NULL;
  self->stage_reader = reader_new (path, STAGE_CACHE_KIB, error);
  if (self->stage_reader == NULL)
    return NULL;
  self->closed = FALSE;
  self->stage_thread = g_thread_new ("fl-store-dedupe", stage_thread_func, self);
  self->writer_thread = g_thread_new ("fl-store-writer", writer_thread_func, self);
  self->ckpt_thread = g_thread_new ("fl-store-ckpt", checkpoint_thread_func, self);

  return g_steal_pointer (&self);
}

static void
fl_store_writer_stop (FlStore *self)
{
  Request *req = g_new0 (Request, 1);

  req->kind = REQ_CLOSE;
  g_mutex_lock (&self->lock);
  route_request (self, req);
  g_mutex_unlock (&self->lock);
  if (self->stage_thread != NULL)
    g_thread_join (g_steal_pointer (&self->stage_thread));
  g_clear_pointer (&self->stage_reader, reader_free);
  g_mutex_lock (&self->ckpt_lock);
  self->ckpt_quit = TRUE;
  g_cond_signal (&self->ckpt_cond);
  g_mutex_unlock (&self->ckpt_lock);
  if (self->ckpt_thread != NULL)
    g_thread_join (g_steal_pointer (&self->ckpt_thread));
  g_thread_join (g_steal_pointer (&self->writer_thread));
}

void
fl_store_close (FlStore *self)
{
  gboolean was_open;

  g_return_if_fail (FL_IS_STORE (self));

  g_mutex_lock (&self->lock);
  was_open = !self->closed;
  self->closed = TRUE;
  g_mutex_unlock (&self->lock);

  /* No new request gets in now.  The reader jobs already queued finish
   * first, then the writer commits everything queued before its close
   * request (FIFO), completes those tasks, checkpoints and stops. */
  if (self->pool != NULL)
    g_thread_pool_free (g_steal_pointer (&self->pool), FALSE, TRUE);
  if (was_open && self->writer_thread != NULL)
    {
      if (self->writer_thread == g_thread_self ())
        g_critical ("fl_store_close() called from the store's writer thread");
      else
        fl_store_writer_stop (self);
    }
  g_clear_pointer (&self->stage_reader, reader_free);
  g_clear_pointer (&self->wstmts, g_hash_table_unref);
  if (self->db != NULL)
    {
      sqlite3_close (self->db);
      self->db = NULL;
    }
  while (self->readers != NULL && g_async_queue_try_pop (self->readers) != NULL)
    ;
  if (self->all_readers != NULL)
    g_ptr_array_set_size (self->all_readers, 0);
}

/* Pushes a request unless the store is closed. */
static gboolean
push_request (FlStore *self,
              Request *req)
{
  gboolean ok;

  g_mutex_lock (&self->lock);
  ok = !self->closed;
  if (ok)
    route_request (self, req);
  g_mutex_unlock (&self->lock);
  return ok;
}

static gboolean
push_job (FlStore *self,
          GTask   *task)
{
  gboolean ok;

  g_mutex_lock (&self->lock);
  ok = !self->closed;
  if (ok)
    ok = g_thread_pool_push (self->pool, g_object_ref (task), NULL);
  g_mutex_unlock (&self->lock);
  return ok;
}

static void
return_closed (GTask *task)
{
  g_task_return_new_error (task, FL_STORE_ERROR, FL_STORE_ERROR_CLOSED,
                           "The store is closed");
}

/* ---- events ------------------------------------------------------------- */

void
fl_store_append_async (FlStore             *self,
                       GPtrArray           *events,
                       gint64               received_at,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Request *req;

  g_return_if_fail (FL_IS_STORE (self));
  g_return_if_fail (events != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_store_append_async);
  /* once committed, an append reports success even if cancelled late */
  g_task_set_check_cancellable (task, FALSE);

  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);
      const char *id = fl_event_get_id (event);

      if (id == NULL || *id == '\0' ||
          fl_event_get_source (event) == NULL ||
          fl_event_get_event_type (event) == NULL)
        {
          g_task_return_new_error (task, FL_STORE_ERROR, FL_STORE_ERROR_FAILED,
                                   "Event %u has no id, source or type", i);
          return;
        }
    }

  req = g_new0 (Request, 1);
  req->kind = REQ_APPEND;
  req->task = g_object_ref (task);
  req->events = g_ptr_array_ref (events);
  req->received_at = received_at;
  req->checked_gen = -1;
  if (!push_request (self, req))
    {
      request_free (req);
      return_closed (task);
    }
}

GPtrArray *
fl_store_append_finish (FlStore       *self,
                        GAsyncResult  *result,
                        guint         *duplicates,
                        GError       **error)
{
  AppendResult *r;
  GPtrArray *events;

  g_return_val_if_fail (FL_IS_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_store_append_async, NULL);

  r = g_task_propagate_pointer (G_TASK (result), error);
  if (r == NULL)
    return NULL;
  if (duplicates != NULL)
    *duplicates = r->duplicates;
  events = g_steal_pointer (&r->events);
  append_result_free (r);
  return events;
}

static void
submit_job (FlStore             *self,
            Job                 *job,
            gpointer             source_tag,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  g_task_set_task_data (task, job, (GDestroyNotify) job_free);
  if (!push_job (self, task))
    return_closed (task);
}

void
fl_store_query_events_async (FlStore             *self,
                             const FlEventQuery  *query,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  Job *job;

  g_return_if_fail (FL_IS_STORE (self));
  g_return_if_fail (query != NULL);

  job = g_new0 (Job, 1);
  job->kind = JOB_QUERY;
  job->query = *query;
  job->device_id = g_strdup (query->device_id);
  job->event_type = g_strdup (query->event_type);
  job->query.device_id = job->device_id;
  job->query.event_type = job->event_type;
  submit_job (self, job, fl_store_query_events_async, cancellable, callback, user_data);
}

GPtrArray *
fl_store_query_events_finish (FlStore       *self,
                              GAsyncResult  *result,
                              gint64        *next_cursor,
                              GError       **error)
{
  QueryResult *r;
  GPtrArray *events;

  g_return_val_if_fail (FL_IS_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_store_query_events_async, NULL);

  r = g_task_propagate_pointer (G_TASK (result), error);
  if (r == NULL)
    return NULL;
  if (next_cursor != NULL)
    *next_cursor = r->next_cursor;
  events = g_steal_pointer (&r->events);
  query_result_free (r);
  return events;
}

void
fl_store_get_event_async (FlStore             *self,
                          const char          *event_id,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  Job *job;

  g_return_if_fail (FL_IS_STORE (self));
  g_return_if_fail (event_id != NULL);

  job = g_new0 (Job, 1);
  job->kind = JOB_GET;
  job->event_id = g_strdup (event_id);
  submit_job (self, job, fl_store_get_event_async, cancellable, callback, user_data);
}

FlEvent *
fl_store_get_event_finish (FlStore       *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (FL_IS_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_store_get_event_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
fl_store_events_since_async (FlStore             *self,
                             gint64               since_seq,
                             const char * const  *device_ids,
                             guint                limit,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  Job *job;

  g_return_if_fail (FL_IS_STORE (self));

  job = g_new0 (Job, 1);
  job->kind = JOB_SINCE;
  job->since = since_seq;
  job->device_ids = g_strdupv ((char **) device_ids);
  job->limit = limit;
  submit_job (self, job, fl_store_events_since_async, cancellable, callback, user_data);
}

GPtrArray *
fl_store_events_since_finish (FlStore       *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (FL_IS_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_store_events_since_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
fl_store_telemetry_async (FlStore             *self,
                          const char          *device_id,
                          const char          *metric,
                          gint64               from,
                          gint64               to,
                          guint                points,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  Job *job;

  g_return_if_fail (FL_IS_STORE (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (metric != NULL);

  job = g_new0 (Job, 1);
  job->kind = JOB_TELEMETRY;
  job->device_id = g_strdup (device_id);
  job->metric = g_strdup (metric);
  job->from = from;
  job->to = to;
  job->points = points;
  submit_job (self, job, fl_store_telemetry_async, cancellable, callback, user_data);
}

GArray *
fl_store_telemetry_finish (FlStore       *self,
                           GAsyncResult  *result,
                           gint64        *bucket_ms,
                           GError       **error)
{
  TelemetryResult *r;
  GArray *buckets;

  g_return_val_if_fail (FL_IS_STORE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_store_telemetry_async, NULL);

  r = g_task_propagate_pointer (G_TASK (result), error);
  if (r == NULL)
    return NULL;
  if (bucket_ms != NULL)
    *bucket_ms = r->bucket_ms;
  buckets = g_steal_pointer (&r->buckets);
  telemetry_result_free (r);
  return buckets;
}

/* ---- devices ------------------------------------------------------------ */

GPtrArray *
fl_store_load_devices (FlStore  *self,
                       GError  **error)
{
  g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func (g_object_unref);
  sqlite3_stmt *stmt = NULL;
  Reader *r;
  int rc;

  g_return_val_if_fail (FL_IS_STORE (self), NULL);

  g_mutex_lock (&self->lock);
  if (self->closed)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, FL_STORE_ERROR, FL_STORE_ERROR_CLOSED, "The store is closed");
      return NULL;
    }
  g_mutex_unlock (&self->lock);
  /* a connection of its own: this is a start-up call, and the pool's
   * connections belong to the reader threads */
  r = reader_new (self->path, READER_CACHE_KIB, error);
  if (r == NULL)
    return NULL;

  rc = sqlite3_prepare_v2 (r->db, "SELECT device_id, data FROM devices ORDER BY device_id",
                           -1, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (error, r->db, rc, "prepare");
      reader_free (r);
      return NULL;
    }
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      g_autoptr(GError) local = NULL;
      FlDevice *device = fl_device_deserialize ((const char *) sqlite3_column_text (stmt, 1), &local);

      if (device == NULL)
        {
          g_warning ("Skipping stored device %s: %s",
                     (const char *) sqlite3_column_text (stmt, 0), local->message);
          continue;
        }
      g_ptr_array_add (devices, device);
    }
  sqlite3_finalize (stmt);
  if (rc != SQLITE_DONE)
    set_sqlite_error (error, r->db, rc, "load devices");
  reader_free (r);
  if (rc != SQLITE_DONE)
    return NULL;
  return g_steal_pointer (&devices);
}

void
fl_store_save_device (FlStore  *self,
                      FlDevice *device)
{
  Request *req;

  g_return_if_fail (FL_IS_STORE (self));
  g_return_if_fail (FL_IS_DEVICE (device));

  req = g_new0 (Request, 1);
  req->kind = REQ_SAVE_DEVICE;
  req->device_id = g_strdup (fl_device_get_device_id (device));
  req->device_text = fl_device_serialize (device);
  if (!push_request (self, req))
    {
      g_debug ("Device %s not saved: the store is closed", req->device_id);
      request_free (req);
    }
}

/* ---- numbers ------------------------------------------------------------ */

gint64
fl_store_get_last_seq (FlStore *self)
{
  g_return_val_if_fail (FL_IS_STORE (self), 0);
  return __atomic_load_n (&self->last_seq, __ATOMIC_RELAXED);
}

guint64
fl_store_get_event_count (FlStore *self)
{
  g_return_val_if_fail (FL_IS_STORE (self), 0);
  return __atomic_load_n (&self->event_count, __ATOMIC_RELAXED);
}

guint64
fl_store_get_size_bytes (FlStore *self)
{
  g_return_val_if_fail (FL_IS_STORE (self), 0);
  return __atomic_load_n (&self->size_bytes, __ATOMIC_RELAXED);
}

guint64
fl_store_get_commit_count (FlStore *self)
{
  g_return_val_if_fail (FL_IS_STORE (self), 0);
  return __atomic_load_n (&self->commit_count, __ATOMIC_RELAXED);
}

/* ---- private hooks ------------------------------------------------------ */

void
_fl_store_set_tuning (FlStore *self,
                      guint    generation_size,
                      guint    index_batch,
                      guint    rollup_batch)
{
  g_return_if_fail (FL_IS_STORE (self));

  if (generation_size > 0)
    __atomic_store_n (&self->generation_size, generation_size, __ATOMIC_RELAXED);
  if (index_batch > 0)
    __atomic_store_n (&self->index_batch, index_batch, __ATOMIC_RELAXED);
  if (rollup_batch > 0)
    __atomic_store_n (&self->rollup_batch, rollup_batch, __ATOMIC_RELAXED);
}

void
_fl_store_sync_async (FlStore             *self,
                      gboolean             freeze,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Request *req;

  g_return_if_fail (FL_IS_STORE (self));

  task = g_task_new (self, NULL, callback, user_data);
  g_task_set_source_tag (task, _fl_store_sync_async);
  req = g_new0 (Request, 1);
  req->kind = REQ_SYNC;
  req->freeze = freeze;
  req->task = g_object_ref (task);
  if (!push_request (self, req))
    {
      request_free (req);
      return_closed (task);
    }
}

gboolean
_fl_store_sync_finish (FlStore       *self,
                       GAsyncResult  *result,
                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

guint
_fl_store_get_generation_count (FlStore *self)
{
  return __atomic_load_n (&self->n_gens, __ATOMIC_RELAXED);
}

gint64
_fl_store_get_writer_busy_usec (FlStore *self)
{
  return __atomic_load_n (&self->busy_usec, __ATOMIC_RELAXED);
}

gint64
_fl_store_get_writer_cpu_usec (FlStore *self)
{
  return __atomic_load_n (&self->busy_cpu_usec, __ATOMIC_RELAXED);
}

guint64
_fl_store_get_dedupe_probes (FlStore *self)
{
  return __atomic_load_n (&self->dedupe_probes, __ATOMIC_RELAXED);
}

void
_fl_store_get_maintenance_stats (FlStore                 *self,
                                 FlStoreMaintenanceStats *stats)
{
  const guint64 *src = (const guint64 *) &self->mstats;
  guint64 *dst = (guint64 *) stats;

  g_return_if_fail (FL_IS_STORE (self));
  G_STATIC_ASSERT (sizeof (FlStoreMaintenanceStats) % sizeof (guint64) == 0);
  for (gsize i = 0; i < sizeof (FlStoreMaintenanceStats) / sizeof (guint64); i++)
    dst[i] = __atomic_load_n (&src[i], __ATOMIC_RELAXED);
}

static guint64
hot_set_bytes (const HotSet *hs)
{
  return hs == NULL ? 0 : (guint64) (hs->mask + 1) * (sizeof (guint64) + sizeof (guint32));
}

guint64
_fl_store_get_heap_bytes (FlStore *self)
{
  guint64 bytes = 0;

  g_return_val_if_fail (FL_IS_STORE (self), 0);

  g_rw_lock_reader_lock (&self->dedupe_lock);
  bytes += hot_set_bytes (self->hot) + hot_set_bytes (self->freezing);
  for (guint i = 0; i < self->gens->len; i++)
    bytes += (guint64) ((Generation *) g_ptr_array_index (self->gens, i))->n_blocks * 64;
  g_rw_lock_reader_unlock (&self->dedupe_lock);
  /* writer-owned, read racily: sizes only */
  bytes += (guint64) __atomic_load_n (&self->freeze_n, __ATOMIC_RELAXED) * sizeof (HashSeq);
  /* a cell, its malloc header and its GHashTable slot */
  bytes += __atomic_load_n (&self->roll_cells, __ATOMIC_RELAXED) * (sizeof (RollCell) + 16 + 24);
  if (self->ix_pending != NULL)
    bytes += ((guint64) self->ix_pending->len + self->ix_by_seq->len) * sizeof (IxEntry) +
             (guint64) self->ix_minutes->len * sizeof (IxMinute);
  return bytes;
}

void
_fl_store_set_maintenance_delay (FlStore *self,
                                 guint    usec)
{
  g_return_if_fail (FL_IS_STORE (self));
  __atomic_store_n (&self->maint_delay_usec, usec, __ATOMIC_RELAXED);
}
