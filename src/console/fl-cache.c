/* fl-cache.c: the console's local cache of one connection profile.
 *
 * One worker thread owns the SQLite connection and serves a FIFO queue of
 * requests; consecutive writes share one transaction (each in its own
 * savepoint, so one failure does not undo its neighbours).  Results go
 * back through GTask, so callbacks run on the caller's main context, in
 * the order of the calls.
 *
 * Devices.  Each device is one row of columns (its capabilities, which
 * devices of a kind share, interned as JSON text), from which the loader
 * builds FlDevices with the core's own setters, without parsing a JSON
 * document per device; a pool of threads builds them while the worker
 * reads.  A save checks that the columns rebuild the device exactly (same
 * fl_device_serialize() text); a device that does not round-trip that way
 * is stored as its full text instead.
 *
 * Events.  One row per event, keyed (device, timestamp, id), so each
 * device's events are adjacent and a duplicate is ignored.  A device is
 * trimmed to its newest max_events_per_device once it holds a quarter
 * more, and reads never return more than the limit.
 *
 * Points.  A row per point was too slow both ways (a 1,000-device stream
 * of 5 metrics dirties a leaf page per series per commit: under 8,000
 * events/s; and stepping 1,000,000 rows takes about 125 ms), so each
 * series is stored as chunks: blobs of up to CHUNK_POINTS (t, v) pairs,
 * sorted.  New points are kept in memory per series and made durable as
 * one staging blob per transaction.  Once COMPACT_POINTS are staged, a
 * compaction moves each series' points (those staged so far) to its
 * chunks, a few series per short transaction between requests, noting in
 * the series row how far its staged points are in chunks; when all are
 * done the staging rows go.  Close compacts everything.  After a crash,
 * open replays the staging rows each series does not have yet.  A series
 * over its limit hides its oldest points at once (everything older than a
 * cutoff time) and deletes whole chunks at compaction.
 */
#define G_LOG_DOMAIN "fl-cache"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <sqlite3.h>

#include "fl-cache.h"

#define SCHEMA_VERSION 1
#define CACHE_APP_ID 0x466c4361  /* "FlCa", in PRAGMA application_id */
#define CHUNK_POINTS 1024        /* points per chunk, at most (16 KiB) */
#define MERGE_BELOW 128          /* a smaller newest chunk takes new points */
#define COMPACT_POINTS (1 << 19) /* staged points that start a compaction (8 MiB) */
#define COMPACT_STEP_USEC 8000   /* a compaction step's work, about */
#define GROUP_MAX_REQUESTS 256   /* writes per transaction, at most */
#define GROUP_MAX_ITEMS 65536    /* devices or events per transaction */
#define BATCH_ROWS 2048          /* devices per build job */
#define STAGED_SIZE 24           /* series id, t, v */
#define TAG_SEPARATOR '\x1f'     /* a tag holding it round-trips as JSON */
#define BUILDER_CACHE_SIZE 4096  /* shared texts per build job */
#define MAX_TAGS_PER_DEVICE 64   /* the core allows 32 */
#define MAX_TAGS_TEXT      8192  /* joined tags (32 of up to 64 bytes fit) */
#define CACHE_SIZE "-8192"       /* SQLite's page cache, KiB: the events' working set */
#define LOAD_CACHE_SIZE "-1024"  /* … while load_devices scans */

G_STATIC_ASSERT (sizeof (FlPoint) == 16);

/* clang-format off */
G_DEFINE_QUARK (fl-cache-error-quark, fl_cache_error)
/* clang-format on */

struct _FlCache
{
  GObject parent_instance;

  GAsyncQueue *queue;    /* Request, to the worker */
  GThread     *thread;   /* NULL once closed */
  gint64       last_seq; /* set by the worker while opening */
  gint64       last_sync;
};

/* ---- requests ---------------------------------------------------------- */

typedef enum
{
  REQUEST_OPEN,
  REQUEST_CLOSE,
  REQUEST_LIMITS,
  REQUEST_META,
  REQUEST_SAVE_DEVICES,
  REQUEST_DELETE_DEVICES,
  REQUEST_ADD_EVENTS,
  REQUEST_LOAD_DEVICES,
  REQUEST_LOAD_EVENTS,
  REQUEST_LOAD_POINTS,
  REQUEST_LIST_METRICS,
} RequestKind;

typedef struct
{
  RequestKind kind;
  GTask      *task;       /* NULL for CLOSE, LIMITS and META */
  gboolean    log_errors; /* no callback: nobody else sees an error */
  GPtrArray  *items;      /* serialised devices or device ids (char *), or FlEvent */
  char       *path;
  char       *device_id;
  char       *metric;
  const char *meta_key;
  gint64      from; /* also META's value */
  gint64      to;
  guint       limit; /* also LIMITS' events per device */
  guint       max_points;
} Request;

static void
request_free (Request *req)
{
  g_clear_object (&req->task);
  g_clear_pointer (&req->items, g_ptr_array_unref);
  g_clear_pointer (&req->path, g_free);
  g_clear_pointer (&req->device_id, g_free);
  g_clear_pointer (&req->metric, g_free);
  g_free (req);
}

static gboolean
request_is_write (const Request *req)
{
  switch (req->kind)
    {
    case REQUEST_LIMITS:
    case REQUEST_META:
    case REQUEST_SAVE_DEVICES:
    case REQUEST_DELETE_DEVICES:
    case REQUEST_ADD_EVENTS:
      return TRUE;
    case REQUEST_OPEN:
    case REQUEST_CLOSE:
    case REQUEST_LOAD_DEVICES:
    case REQUEST_LOAD_EVENTS:
    case REQUEST_LOAD_POINTS:
    case REQUEST_LIST_METRICS:
    default:
      return FALSE;
    }
}

/* Hands a write's outcome to its caller (or to the log). */
static void
request_return (Request *req,
                GError  *error)
{
  if (error != NULL && (req->task == NULL || req->log_errors) && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_warning ("%s", error->message);

  if (req->task == NULL)
    g_clear_error (&error);
  else if (error != NULL)
    g_task_return_error (req->task, error);
  else
    g_task_return_boolean (req->task, TRUE);
}

/* ---- the worker -------------------------------------------------------- */

typedef struct
{
  gint64   id;
  char    *device;
  char    *metric;
  gint64   n_chunked;   /* points in chunks, hidden ones included */
  GArray  *pending;     /* FlPoint not yet in chunks, as they came */
  gboolean sorted;      /* pending is in t order */
  gint64   staged_upto; /* staging rows up to this id are in chunks */
  guint    compact_n;   /* pending points the running compaction moves */
  gint64   newest_id;   /* the newest chunk (0: none; -1: not looked up) */
  gint64   newest_t1;
  gint64   newest_n;
} Series;

typedef struct
{
  GAsyncQueue *queue;
  sqlite3     *db;
  GHashTable  *stmts; /* SQL text → sqlite3_stmt */
  GThreadPool *pool;  /* builds and converts devices */
  guint        max_events;
  guint        max_points;
  GHashTable  *event_counts;     /* device id → guint *, events stored */
  GHashTable  *series;           /* device id → (metric → Series) */
  GHashTable  *series_by_id;     /* &Series.id → Series */
  GHashTable  *capabilities_ids; /* capabilities text → gint64 * */
  GByteArray  *staging;          /* this transaction's new points */
  guint64      staged;           /* points pending in all series */
  gint64       staging_last;     /* the newest staging row's id */
  gint64       compacting;       /* a compaction's last staging row, or 0 */
  GQueue       compact_queue;    /* Series it has still to move */
  gboolean     reload;           /* a write failed: rebuild the caches */
} Worker;

static void
series_free (Series *s)
{
  g_free (s->device);
  g_free (s->metric);
  g_array_unref (s->pending);
  g_free (s);
}

static void pool_run (gpointer data,
                      gpointer user_data);

static Worker *
worker_new (GAsyncQueue *queue)
{
  Worker *w = g_new0 (Worker, 1);

  w->queue = g_async_queue_ref (queue);
  w->stmts = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) sqlite3_finalize);
  w->pool = g_thread_pool_new (pool_run, NULL, g_get_num_processors (), FALSE, NULL);
  w->max_events = FL_CACHE_DEFAULT_MAX_EVENTS_PER_DEVICE;
  w->max_points = FL_CACHE_DEFAULT_MAX_POINTS_PER_SERIES;
  w->event_counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  w->series = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_hash_table_unref);
  w->series_by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  w->capabilities_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  w->staging = g_byte_array_new ();

  return w;
}

static void
worker_free (Worker *w)
{
  g_thread_pool_free (w->pool, FALSE, TRUE);
  g_hash_table_destroy (w->stmts);
  if (w->db != NULL)
    sqlite3_close (w->db);
  g_hash_table_destroy (w->event_counts);
  g_hash_table_destroy (w->series_by_id);
  g_hash_table_destroy (w->series);
  g_hash_table_destroy (w->capabilities_ids);
  g_byte_array_unref (w->staging);
  g_queue_clear (&w->compact_queue);
  g_async_queue_unref (w->queue);
  g_free (w);
}

/* ---- SQLite helpers ---------------------------------------------------- */

static FlCacheError
error_code (int rc)
{
  int primary = rc & 0xff;

  return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ? FL_CACHE_ERROR_CORRUPT : FL_CACHE_ERROR_FAILED;
}

static gboolean
set_sqlite_error (GError    **error,
                  sqlite3    *db,
                  int         rc,
                  const char *what)
{
  g_set_error (error, FL_CACHE_ERROR, error_code (rc), "Cache: %s: %s", what,
               db != NULL ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
  return FALSE;
}

static gboolean
exec_sql (Worker     *w,
          const char *sql,
          GError    **error)
{
  char *message = NULL;
  int   rc = sqlite3_exec (w->db, sql, NULL, NULL, &message);

  if (rc == SQLITE_OK)
    return TRUE;

  g_set_error (error, FL_CACHE_ERROR, error_code (rc), "Cache: %s: %s", sql,
               message != NULL ? message : sqlite3_errstr (rc));
  sqlite3_free (message);
  return FALSE;
}

/* A prepared statement, kept for the connection's life.  Reset it after
 * use. */
static sqlite3_stmt *
worker_stmt (Worker     *w,
             const char *sql,
             GError    **error)
{
  sqlite3_stmt *stmt = g_hash_table_lookup (w->stmts, sql);
  int           rc;

  if (stmt != NULL)
    return stmt;

  rc = sqlite3_prepare_v3 (w->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
  if (rc != SQLITE_OK)
    {
      set_sqlite_error (error, w->db, rc, "prepare");
      return NULL;
    }
  g_hash_table_insert (w->stmts, (gpointer) sql, stmt);

  return stmt;
}

/* Steps a statement that returns no rows, and resets it. */
static gboolean
step_done (Worker       *w,
           sqlite3_stmt *stmt,
           const char   *what,
           GError      **error)
{
  int rc = sqlite3_step (stmt);

  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, what);

  return TRUE;
}

static gboolean
query_int64 (Worker     *w,
             const char *sql,
             gint64     *out,
             GError    **error)
{
  sqlite3_stmt *stmt = NULL;
  int           rc = sqlite3_prepare_v2 (w->db, sql, -1, &stmt, NULL);

  *out = 0;
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64 (stmt, 0);
      rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
  if (rc != SQLITE_OK)
    set_sqlite_error (error, w->db, rc, sql);
  sqlite3_finalize (stmt);

  return rc == SQLITE_OK;
}

static void
bind_text_or_null (sqlite3_stmt *stmt,
                   int           index,
                   const char   *text)
{
  if (text != NULL)
    sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null (stmt, index);
}

static void
bind_double_or_null (sqlite3_stmt *stmt,
                     int           index,
                     double        value)
{
  if (!isnan (value))
    sqlite3_bind_double (stmt, index, value);
  else
    sqlite3_bind_null (stmt, index);
}

/* ---- points on disk: little-endian (t, v) pairs ------------------------ */

static void
append_le64 (GByteArray *out,
             guint64     value)
{
  value = GUINT64_TO_LE (value);
  g_byte_array_append (out, (const guint8 *) &value, 8);
}

static void
append_points (GByteArray    *out,
               const FlPoint *points,
               guint          n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  g_byte_array_append (out, (const guint8 *) points, n * sizeof (FlPoint));
#else
  for (guint i = 0; i < n; i++)
    {
      guint64 bits;

      memcpy (&bits, &points[i].v, 8);
      append_le64 (out, (guint64) points[i].t);
      append_le64 (out, bits);
    }
#endif
}

static inline guint64
read_le64 (const guint8 *p)
{
  guint64 value;

  memcpy (&value, p, 8);
  return GUINT64_FROM_LE (value);
}

static inline FlPoint
read_point (const guint8 *p)
{
  FlPoint point;
  guint64 bits = read_le64 (p + 8);

  point.t = (gint64) read_le64 (p);
  memcpy (&point.v, &bits, 8);
  return point;
}

static int
point_cmp (gconstpointer a,
           gconstpointer b)
{
  const FlPoint *pa = a, *pb = b;

  return pa->t < pb->t ? -1 : pa->t > pb->t;
}

/* ---- building devices -------------------------------------------------- */

/* A device as columns.  The strings belong to a batch's GStringChunk (or,
 * for json and capabilities, to the request or the load). */
typedef struct
{
  const char *id;
  const char *json; /* the stored form, when the columns are not exact */
  const char *name;
  const char *type;
  const char *model;
  const char *manufacturer;
  const char *firmware;
  const char *status;
  const char *secret_hash;
  const char *tags;         /* joined by TAG_SEPARATOR, or NULL */
  const char *capabilities; /* JSON text, or NULL for none */
  gint64      capabilities_id;
  gint64      last_seen;
  gint64      created_at;
  gint64      updated_at;
  gint64      heartbeat;
  double      battery;
  double      rssi;
  gboolean    has_location;
  double      lat;
  double      lon;
  double      alt;
} DeviceRow;

/* What a build job shares between the devices it builds: one copy of each
 * model, manufacturer, firmware, type and capabilities text. */
typedef struct
{
  GHashTable *shared; /* GRefString → itself */
} Builder;

static void
builder_init (Builder *b)
{
  b->shared = g_hash_table_new_full (g_str_hash, g_str_equal, (GDestroyNotify) g_ref_string_release, NULL);
}

static void
builder_clear (Builder *b)
{
  g_clear_pointer (&b->shared, g_hash_table_unref);
}

/* Returns (transfer none) the job's copy of text; the devices hold their
 * own references, so the table may be emptied at any time. */
static GRefString *
builder_share (Builder    *b,
               const char *text)
{
  GRefString *shared;

  if (text == NULL)
    return NULL;

  shared = g_hash_table_lookup (b->shared, text);
  if (shared == NULL)
    {
      if (g_hash_table_size (b->shared) >= BUILDER_CACHE_SIZE)
        g_hash_table_remove_all (b->shared);
      shared = g_ref_string_new (text);
      g_hash_table_add (b->shared, shared);
    }

  return shared;
}

/* Builds the device a row describes.  The columns were written from a
 * device by row_from_device() and checked to rebuild it exactly (else the
 * row has json), so they are taken as they are. */
static FlDevice *
builder_build (Builder         *b,
               const DeviceRow *row,
               GError         **error)
{
  FlDeviceRecord record = { 0 };
  const char    *tags[MAX_TAGS_PER_DEVICE + 1];
  char           tags_text[MAX_TAGS_TEXT];

  if (row->json != NULL)
    return fl_device_deserialize (row->json, error);

  if (!fl_device_status_from_string (row->status, &record.status))
    {
      g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT, "Unknown device status “%s”", row->status);
      return NULL;
    }

  /* tags: split a copy of the joined text in place */
  if (row->tags != NULL)
    {
      gsize n = 0;

      if (g_strlcpy (tags_text, row->tags, sizeof tags_text) >= sizeof tags_text)
        {
          g_set_error_literal (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT, "Tags too long");
          return NULL;
        }
      for (char *start = tags_text;;)
        {
          char *end = strchr (start, TAG_SEPARATOR);

          if (n == MAX_TAGS_PER_DEVICE)
            {
              g_set_error_literal (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT, "Too many tags");
              return NULL;
            }
          tags[n++] = start;
          if (end == NULL)
            break;
          *end = '\0';
          start = end + 1;
        }
      tags[n] = NULL;
      record.tags = tags;
    }

  record.device_id = row->id;
  record.name = row->name;
  record.device_type = builder_share (b, row->type);
  record.model = builder_share (b, row->model);
  record.manufacturer = builder_share (b, row->manufacturer);
  record.firmware = builder_share (b, row->firmware);
  record.capabilities = builder_share (b, row->capabilities);
  record.secret_hash = row->secret_hash;
  record.heartbeat_timeout = CLAMP (row->heartbeat, 0, G_MAXUINT);
  record.has_location = row->has_location;
  record.lat = row->lat;
  record.lon = row->lon;
  record.alt = row->alt;
  record.battery = row->battery;
  record.rssi = row->rssi;
  record.last_seen = row->last_seen;
  record.created_at = row->created_at;
  record.updated_at = row->updated_at;

  return fl_device_new_from_record (&record);
}

/* Fills row from a device the caller no longer shares. */
static void
row_from_device (DeviceRow    *row,
                 FlDevice     *device,
                 GStringChunk *strings)
{
  JsonObject        *capabilities = fl_device_get_capabilities (device);
  const char *const *tags = fl_device_get_tags (device);

#define DUP(s) ((s) != NULL ? g_string_chunk_insert (strings, (s)) : NULL)
  memset (row, 0, sizeof *row);
  row->id = DUP (fl_device_get_device_id (device));
  row->name = DUP (fl_device_get_name (device));
  row->type = DUP (fl_device_get_device_type (device));
  row->model = DUP (fl_device_get_model (device));
  row->manufacturer = DUP (fl_device_get_manufacturer (device));
  row->firmware = DUP (fl_device_get_firmware (device));
  row->secret_hash = DUP (fl_device_get_secret_hash (device));
#undef DUP
  row->status = fl_device_status_to_string (fl_device_get_status (device));
  row->last_seen = fl_device_get_last_seen (device);
  row->created_at = fl_device_get_created_at (device);
  row->updated_at = fl_device_get_updated_at (device);
  row->heartbeat = fl_device_get_heartbeat_timeout (device);
  row->battery = fl_device_get_battery (device);
  row->rssi = fl_device_get_rssi (device);
  row->has_location = fl_device_get_location (device, &row->lat, &row->lon, &row->alt);

  if (json_object_get_size (capabilities) > 0)
    {
      g_autoptr (JsonNode) node = json_node_alloc ();
      g_autofree char     *text = NULL;

      json_node_init_object (node, capabilities);
      text = fl_json_to_string (node, NULL);
      row->capabilities = g_string_chunk_insert (strings, text);
    }
  if (tags[0] != NULL)
    {
      g_autofree char *joined = g_strjoinv ((const char[]){ TAG_SEPARATOR, '\0' }, (GStrv) tags);

      row->tags = g_string_chunk_insert (strings, joined);
    }
}

/* ---- parallel device jobs ---------------------------------------------- */

typedef struct
{
  GMutex lock;
  GCond  cond;
  guint  pending;
} Join;

typedef struct _Batch Batch;

struct _Batch
{
  void (*func) (Batch *batch);
  Join         *join;
  GStringChunk *strings;
  GArray       *rows;  /* DeviceRow */
  GPtrArray    *texts; /* save: serialised devices, borrowed */
  guint         first; /* save: texts[first, last) */
  guint         last;
  GPtrArray    *devices; /* load: FlDevice */
  GError       *error;
};

static Batch *
batch_new (void (*func) (Batch *batch))
{
  Batch *batch = g_new0 (Batch, 1);

  batch->func = func;
  batch->strings = g_string_chunk_new (64 * 1024);
  batch->rows = g_array_sized_new (FALSE, FALSE, sizeof (DeviceRow), BATCH_ROWS);

  return batch;
}

static void
batch_free (Batch *batch)
{
  g_string_chunk_free (batch->strings);
  g_array_unref (batch->rows);
  g_clear_pointer (&batch->devices, g_ptr_array_unref);
  g_clear_error (&batch->error);
  g_free (batch);
}

static void
pool_run (gpointer data,
          gpointer user_data)
{
  Batch *batch = data;
  Join  *join = batch->join;

  batch->func (batch);

  g_mutex_lock (&join->lock);
  if (--join->pending == 0)
    g_cond_signal (&join->cond);
  g_mutex_unlock (&join->lock);
}

static void
worker_submit (Worker *w,
               Join   *join,
               Batch  *batch)
{
  batch->join = join;
  g_mutex_lock (&join->lock);
  join->pending++;
  g_mutex_unlock (&join->lock);
  g_thread_pool_push (w->pool, batch, NULL);
}

static void
join_wait (Join *join)
{
  g_mutex_lock (&join->lock);
  while (join->pending > 0)
    g_cond_wait (&join->cond, &join->lock);
  g_mutex_unlock (&join->lock);
}

/* Load: rows → FlDevices. */
static void
batch_build (Batch *batch)
{
  Builder b;

  builder_init (&b);
  batch->devices = g_ptr_array_new_full (batch->rows->len, g_object_unref);
  for (guint i = 0; i < batch->rows->len; i++)
    {
      const DeviceRow   *row = &g_array_index (batch->rows, DeviceRow, i);
      g_autoptr (GError) local = NULL;
      FlDevice          *device = builder_build (&b, row, &local);

      if (device == NULL)
        {
          g_set_error (&batch->error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT,
                       "Cache: device “%s” does not load: %s", row->id, local->message);
          break;
        }
      g_ptr_array_add (batch->devices, device);
    }
  builder_clear (&b);
}

/* Save: serialised devices → rows, checked to rebuild exactly. */
static void
batch_convert (Batch *batch)
{
  Builder b;

  builder_init (&b);
  for (guint i = batch->first; i < batch->last; i++)
    {
      const char          *text = g_ptr_array_index (batch->texts, i);
      g_autoptr (FlDevice) copy = NULL;
      g_autoptr (FlDevice) built = NULL;
      g_autofree char     *rebuilt = NULL;
      DeviceRow            row;

      copy = fl_device_deserialize (text, &batch->error);
      if (copy == NULL)
        break;
      row_from_device (&row, copy, batch->strings);
      built = builder_build (&b, &row, NULL);
      if (built != NULL)
        rebuilt = fl_device_serialize (built);
      if (rebuilt == NULL || !g_str_equal (rebuilt, text))
        row.json = text;
      g_array_append_val (batch->rows, row);
    }
  builder_clear (&b);
}

/* ---- devices ----------------------------------------------------------- */

#define SQL_UPSERT_DEVICE                                                                              \
  "INSERT OR REPLACE INTO devices (id, json, name, type, model, manufacturer, firmware, status, "      \
  "last_seen, battery, rssi, lat, lon, alt, heartbeat, created_at, updated_at, secret_hash, tags, "    \
  "capabilities) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, " \
  "?18, ?19, ?20)"

#define SQL_LOAD_DEVICES                                                                            \
  "SELECT id, json, name, type, model, manufacturer, firmware, status, last_seen, battery, rssi, "  \
  "lat, lon, alt, heartbeat, created_at, updated_at, secret_hash, tags, capabilities FROM devices " \
  "ORDER BY id"

static gboolean
worker_capabilities_id (Worker     *w,
                        const char *text,
                        gint64     *id,
                        GError    **error)
{
  gint64       *cached = g_hash_table_lookup (w->capabilities_ids, text);
  sqlite3_stmt *stmt;
  int           rc;

  if (cached != NULL)
    {
      *id = *cached;
      return TRUE;
    }

  stmt = worker_stmt (w, "SELECT id FROM capabilities WHERE json = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    *id = sqlite3_column_int64 (stmt, 0);
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, "find capabilities");

  if (rc == SQLITE_DONE)
    {
      stmt = worker_stmt (w, "INSERT INTO capabilities (json) VALUES (?1)", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, text, -1, SQLITE_STATIC);
      if (!step_done (w, stmt, "store capabilities", error))
        return FALSE;
      *id = sqlite3_last_insert_rowid (w->db);
    }

  g_hash_table_insert (w->capabilities_ids, g_strdup (text), g_memdup2 (id, sizeof *id));
  return TRUE;
}

/* Converts the devices on the pool, then writes them. */
static gboolean
worker_save_devices (Worker    *w,
                     GPtrArray *texts,
                     GError   **error)
{
  g_autoptr (GPtrArray) batches = g_ptr_array_new_with_free_func ((GDestroyNotify) batch_free);
  sqlite3_stmt         *stmt;
  Join                  join = { 0 };

  g_mutex_init (&join.lock);
  g_cond_init (&join.cond);
  for (guint first = 0; first < texts->len; first += BATCH_ROWS / 4)
    {
      Batch *batch = batch_new (batch_convert);

      batch->texts = texts;
      batch->first = first;
      batch->last = MIN (texts->len, first + BATCH_ROWS / 4);
      g_ptr_array_add (batches, batch);
      worker_submit (w, &join, batch);
    }
  join_wait (&join);
  g_mutex_clear (&join.lock);
  g_cond_clear (&join.cond);

  stmt = worker_stmt (w, SQL_UPSERT_DEVICE, error);
  if (stmt == NULL)
    return FALSE;

  for (guint i = 0; i < batches->len; i++)
    {
      Batch *batch = g_ptr_array_index (batches, i);

      if (batch->error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&batch->error));
          return FALSE;
        }

      for (guint j = 0; j < batch->rows->len; j++)
        {
          DeviceRow *row = &g_array_index (batch->rows, DeviceRow, j);
          gint64     capabilities_id = 0;

          if (row->capabilities != NULL && row->json == NULL && !worker_capabilities_id (w, row->capabilities, &capabilities_id, error))
            return FALSE;

          sqlite3_bind_text (stmt, 1, row->id, -1, SQLITE_STATIC);
          bind_text_or_null (stmt, 2, row->json);
          bind_text_or_null (stmt, 3, row->name);
          bind_text_or_null (stmt, 4, row->type);
          bind_text_or_null (stmt, 5, row->model);
          bind_text_or_null (stmt, 6, row->manufacturer);
          bind_text_or_null (stmt, 7, row->firmware);
          sqlite3_bind_text (stmt, 8, row->status, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (stmt, 9, row->last_seen);
          bind_double_or_null (stmt, 10, row->battery);
          bind_double_or_null (stmt, 11, row->rssi);
          bind_double_or_null (stmt, 12, row->has_location ? row->lat : NAN);
          bind_double_or_null (stmt, 13, row->has_location ? row->lon : NAN);
          bind_double_or_null (stmt, 14, row->has_location ? row->alt : NAN);
          sqlite3_bind_int64 (stmt, 15, row->heartbeat);
          sqlite3_bind_int64 (stmt, 16, row->created_at);
          sqlite3_bind_int64 (stmt, 17, row->updated_at);
          bind_text_or_null (stmt, 18, row->secret_hash);
          bind_text_or_null (stmt, 19, row->tags);
          if (capabilities_id > 0)
            sqlite3_bind_int64 (stmt, 20, capabilities_id);
          else
            sqlite3_bind_null (stmt, 20);
          if (!step_done (w, stmt, "store a device", error))
            return FALSE;
        }
    }

  return TRUE;
}

static const char *
column_text (sqlite3_stmt *stmt,
             int           index,
             GStringChunk *strings)
{
  const char *text = (const char *) sqlite3_column_text (stmt, index);

  if (text == NULL)
    return NULL;

  return g_string_chunk_insert_len (strings, text, sqlite3_column_bytes (stmt, index));
}

static double
column_double (sqlite3_stmt *stmt,
               int           index)
{
  return sqlite3_column_type (stmt, index) == SQLITE_NULL ? NAN : sqlite3_column_double (stmt, index);
}

/* Reads the rows on this thread while the pool builds devices from the
 * rows read so far. */
static GPtrArray *
worker_load_devices (Worker       *w,
                     GCancellable *cancellable,
                     GError      **error)
{
  g_autoptr (GHashTable) capabilities = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  g_autoptr (GPtrArray)  batches = g_ptr_array_new_with_free_func ((GDestroyNotify) batch_free);
  GPtrArray             *devices;
  sqlite3_stmt          *stmt;
  Batch                 *batch = NULL;
  Join                   join = { 0 };
  guint                  n = 0;
  int                    rc;

  stmt = worker_stmt (w, "SELECT id, json FROM capabilities", error);
  if (stmt == NULL)
    return NULL;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_hash_table_insert (capabilities,
                         g_memdup2 (&(gint64){ sqlite3_column_int64 (stmt, 0) }, sizeof (gint64)),
                         g_strdup ((const char *) sqlite3_column_text (stmt, 1)));
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    {
      set_sqlite_error (error, w->db, rc, "load capabilities");
      return NULL;
    }

  stmt = worker_stmt (w, SQL_LOAD_DEVICES, error);
  if (stmt == NULL)
    return NULL;

  /* a scan needs no page cache: keep it from growing the heap */
  exec_sql (w, "PRAGMA cache_size = " LOAD_CACHE_SIZE, NULL);
  g_mutex_init (&join.lock);
  g_cond_init (&join.cond);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      DeviceRow row;

      if (batch == NULL)
        {
          if (g_cancellable_is_cancelled (cancellable))
            break;
          batch = batch_new (batch_build);
          g_ptr_array_add (batches, batch);
        }

      row.id = column_text (stmt, 0, batch->strings);
      row.json = column_text (stmt, 1, batch->strings);
      row.name = column_text (stmt, 2, batch->strings);
      row.type = column_text (stmt, 3, batch->strings);
      row.model = column_text (stmt, 4, batch->strings);
      row.manufacturer = column_text (stmt, 5, batch->strings);
      row.firmware = column_text (stmt, 6, batch->strings);
      row.status = column_text (stmt, 7, batch->strings);
      row.last_seen = sqlite3_column_int64 (stmt, 8);
      row.battery = column_double (stmt, 9);
      row.rssi = column_double (stmt, 10);
      row.has_location = sqlite3_column_type (stmt, 11) != SQLITE_NULL;
      row.lat = column_double (stmt, 11);
      row.lon = column_double (stmt, 12);
      row.alt = column_double (stmt, 13);
      row.heartbeat = sqlite3_column_int64 (stmt, 14);
      row.created_at = sqlite3_column_int64 (stmt, 15);
      row.updated_at = sqlite3_column_int64 (stmt, 16);
      row.secret_hash = column_text (stmt, 17, batch->strings);
      row.tags = column_text (stmt, 18, batch->strings);
      row.capabilities_id = sqlite3_column_int64 (stmt, 19);
      row.capabilities = row.capabilities_id > 0 ? g_hash_table_lookup (capabilities, &row.capabilities_id) : NULL;
      if (row.id == NULL || row.status == NULL || (row.capabilities_id > 0 && row.capabilities == NULL))
        {
          rc = SQLITE_CORRUPT;
          break;
        }
      g_array_append_val (batch->rows, row);
      n++;

      if (batch->rows->len == BATCH_ROWS)
        {
          worker_submit (w, &join, batch);
          batch = NULL;
        }
    }
  sqlite3_reset (stmt);
  exec_sql (w, "PRAGMA cache_size = " CACHE_SIZE, NULL);
  if (batch != NULL)
    worker_submit (w, &join, batch);
  join_wait (&join);
  g_mutex_clear (&join.lock);
  g_cond_clear (&join.cond);

  if (rc == SQLITE_CORRUPT)
    {
      g_set_error_literal (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT, "Cache: a device row is damaged");
      return NULL;
    }
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    {
      set_sqlite_error (error, w->db, rc, "load devices");
      return NULL;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  devices = g_ptr_array_new_full (n, g_object_unref);
  for (guint i = 0; i < batches->len; i++)
    {
      batch = g_ptr_array_index (batches, i);
      if (batch->error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&batch->error));
          g_ptr_array_unref (devices);
          return NULL;
        }
      for (guint j = 0; j < batch->devices->len; j++)
        g_ptr_array_add (devices, g_steal_pointer (&batch->devices->pdata[j]));
      g_ptr_array_set_free_func (batch->devices, NULL);
    }

  return devices;
}

/* ---- series and points ------------------------------------------------- */

static Series *
worker_add_series (Worker     *w,
                   gint64      id,
                   const char *device,
                   const char *metric,
                   gint64      staged_upto,
                   GError    **error)
{
  GHashTable   *metrics;
  sqlite3_stmt *stmt;
  gint64        n_chunked = 0;
  Series       *s;
  int           rc;

  /* the chunks' counts, from the index alone */
  stmt = worker_stmt (w, "SELECT coalesce(sum(n), 0) FROM chunks WHERE series = ?1", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    n_chunked = sqlite3_column_int64 (stmt, 0);
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW)
    {
      set_sqlite_error (error, w->db, rc, "count a series");
      return NULL;
    }

  s = g_new0 (Series, 1);
  s->id = id;
  s->device = g_strdup (device);
  s->metric = g_strdup (metric);
  s->n_chunked = n_chunked;
  s->pending = g_array_new (FALSE, FALSE, sizeof (FlPoint));
  s->sorted = TRUE;
  s->staged_upto = staged_upto;
  s->newest_id = n_chunked > 0 ? -1 : 0;

  metrics = g_hash_table_lookup (w->series, device);
  if (metrics == NULL)
    {
      metrics = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) series_free);
      g_hash_table_insert (w->series, g_strdup (device), metrics);
    }
  g_hash_table_insert (metrics, s->metric, s);
  g_hash_table_insert (w->series_by_id, &s->id, s);

  return s;
}

/* The series (device, metric): cached, stored or, with create, new.
 * NULL without an error means it does not exist. */
static Series *
worker_series (Worker     *w,
               const char *device,
               const char *metric,
               gboolean    create,
               GError    **error)
{
  GHashTable   *metrics = g_hash_table_lookup (w->series, device);
  Series       *s = metrics != NULL ? g_hash_table_lookup (metrics, metric) : NULL;
  sqlite3_stmt *stmt;
  gint64        id, staged_upto;
  int           rc;

  if (s != NULL)
    return s;

  stmt = worker_stmt (w, "SELECT id, staged_upto FROM series WHERE device = ?1 AND metric = ?2", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, metric, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  id = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
  staged_upto = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 1) : 0;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      set_sqlite_error (error, w->db, rc, "find a series");
      return NULL;
    }
  if (id > 0)
    return worker_add_series (w, id, device, metric, staged_upto, error);
  if (!create)
    return NULL;

  stmt = worker_stmt (w, "INSERT INTO series (device, metric) VALUES (?1, ?2)", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, metric, -1, SQLITE_STATIC);
  if (!step_done (w, stmt, "add a series", error))
    return NULL;

  return worker_add_series (w, sqlite3_last_insert_rowid (w->db), device, metric, 0, error);
}

static Series *
worker_series_by_id (Worker  *w,
                     gint64   id,
                     GError **error)
{
  Series       *s = g_hash_table_lookup (w->series_by_id, &id);
  sqlite3_stmt *stmt;
  int           rc;

  if (s != NULL)
    return s;

  g_autofree char *device = NULL;
  g_autofree char *metric = NULL;
  gint64           staged_upto = 0;

  stmt = worker_stmt (w, "SELECT device, metric, staged_upto FROM series WHERE id = ?1", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      device = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
      metric = g_strdup ((const char *) sqlite3_column_text (stmt, 1));
      staged_upto = sqlite3_column_int64 (stmt, 2);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    {
      set_sqlite_error (error, w->db, rc, "find a series");
      return NULL;
    }
  if (device == NULL || metric == NULL)
    return NULL;

  return worker_add_series (w, id, device, metric, staged_upto, error);
}

/* The first n pending points in t order: pending itself or a sorted
 * copy (pending stays in arrival order, as in the staging rows). */
static GArray *
series_sorted_pending (Series *s,
                       guint   n)
{
  GArray *sorted;

  if (s->sorted && n == s->pending->len)
    return g_array_ref (s->pending);

  sorted = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), n);
  g_array_append_vals (sorted, s->pending->data, n);
  if (!s->sorted)
    g_array_sort (sorted, point_cmp);
  return sorted;
}

static void
series_drop_pending (Series *s,
                     guint   n)
{
  const FlPoint *points;

  g_array_remove_range (s->pending, 0, n);
  points = (const FlPoint *) (gpointer) s->pending->data;
  s->sorted = TRUE;
  for (guint i = 1; i < s->pending->len && s->sorted; i++)
    s->sorted = points[i].t >= points[i - 1].t;
}

/* A new point: in memory now, in this transaction's staging blob. */
static void
worker_stage_point (Worker *w,
                    Series *s,
                    gint64  t,
                    double  v)
{
  FlPoint point = { t, v };

  if (s->pending->len > 0 && t < g_array_index (s->pending, FlPoint, s->pending->len - 1).t)
    s->sorted = FALSE;
  g_array_append_val (s->pending, point);
  w->staged++;

  append_le64 (w->staging, (guint64) s->id);
  append_points (w->staging, &point, 1);
}

static gboolean
worker_write_staging (Worker  *w,
                      GError **error)
{
  sqlite3_stmt *stmt;

  if (w->staging->len == 0)
    return TRUE;

  stmt = worker_stmt (w, "INSERT INTO staging (data) VALUES (?1)", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_blob (stmt, 1, w->staging->data, w->staging->len, SQLITE_STATIC);
  if (!step_done (w, stmt, "stage points", error))
    return FALSE;
  w->staging_last = sqlite3_last_insert_rowid (w->db);
  g_byte_array_set_size (w->staging, 0);

  return TRUE;
}

/* Rebuilds the pending points from the staging rows (after a crash, or
 * after a failed write), but for what each series has in chunks. */
static gboolean
worker_recover (Worker  *w,
                GError **error)
{
  sqlite3_stmt *stmt = worker_stmt (w, "SELECT id, data FROM staging ORDER BY id", error);
  int           rc;

  if (stmt == NULL)
    return FALSE;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64        row = sqlite3_column_int64 (stmt, 0);
      const guint8 *data = sqlite3_column_blob (stmt, 1);
      gsize         size = sqlite3_column_bytes (stmt, 1);

      w->staging_last = row;

      if (size % STAGED_SIZE != 0)
        {
          sqlite3_reset (stmt);
          g_set_error_literal (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT, "Cache: staged points are damaged");
          return FALSE;
        }
      for (gsize offset = 0; offset < size; offset += STAGED_SIZE)
        {
          Series *s = worker_series_by_id (w, (gint64) read_le64 (data + offset), error);
          FlPoint point = read_point (data + offset + 8);

          if (s == NULL)
            {
              if (error != NULL && *error != NULL)
                {
                  sqlite3_reset (stmt);
                  return FALSE;
                }
              continue;
            }
          if (row <= s->staged_upto)
            continue;
          if (s->pending->len > 0 && point.t < g_array_index (s->pending, FlPoint, s->pending->len - 1).t)
            s->sorted = FALSE;
          g_array_append_val (s->pending, point);
          w->staged++;
        }
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, "read staged points");

  return TRUE;
}

/* After a failed write the caches may hold what was rolled back: start
 * again from what the database holds. */
static void
worker_reload (Worker *w)
{
  g_autoptr (GError) error = NULL;

  g_hash_table_remove_all (w->event_counts);
  g_hash_table_remove_all (w->series_by_id);
  g_hash_table_remove_all (w->series);
  g_hash_table_remove_all (w->capabilities_ids);
  g_byte_array_set_size (w->staging, 0);
  w->staged = 0;
  w->compacting = 0;
  g_queue_clear (&w->compact_queue);
  w->reload = FALSE;

  if (!worker_recover (w, &error))
    g_warning ("%s", error->message);
}

static gboolean worker_series_cutoff (Worker  *w,
                                      Series  *s,
                                      gint64  *cutoff,
                                      gint64  *tie_skip,
                                      GError **error);

/* Appends a series' first n pending points to its chunks (filling up its
 * newest chunk first) and notes that staging rows up to staged_upto are
 * in them; then deletes the chunks its limit hides entirely. */
static gboolean
worker_flush_series (Worker  *w,
                     Series  *s,
                     guint    n,
                     gint64   staged_upto,
                     GError **error)
{
  g_autoptr (GByteArray) blob = g_byte_array_new ();
  g_autoptr (GArray)     sorted = series_sorted_pending (s, n);
  const FlPoint         *points = (const FlPoint *) (gpointer) sorted->data;
  sqlite3_stmt          *stmt;
  guint                  done = 0;
  int                    rc;

  if (n > 0)
    {
      /* A small newest chunk takes the new points, so that chunks of a
       * slow series grow; a bigger one is left as it is (rewriting it at
       * every compaction would cost more than it saves). */
      if (s->newest_id < 0)
        {
          stmt = worker_stmt (w, "SELECT id, t1, n FROM chunks WHERE series = ?1 "
                                 "ORDER BY t0 DESC, t1 DESC, n DESC, id DESC LIMIT 1",
                              error);
          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_int64 (stmt, 1, s->id);
          rc = sqlite3_step (stmt);
          s->newest_id = 0;
          if (rc == SQLITE_ROW)
            {
              s->newest_id = sqlite3_column_int64 (stmt, 0);
              s->newest_t1 = sqlite3_column_int64 (stmt, 1);
              s->newest_n = sqlite3_column_int64 (stmt, 2);
            }
          sqlite3_reset (stmt);
          if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            {
              s->newest_id = -1;
              return set_sqlite_error (error, w->db, rc, "find a chunk");
            }
        }

      if (s->newest_id > 0 && s->newest_n < MERGE_BELOW && s->newest_t1 <= points[0].t)
        {
          gint64 newest_id = s->newest_id, newest_n = s->newest_n;

          stmt = worker_stmt (w, "SELECT data FROM chunks WHERE id = ?1", error);
          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_int64 (stmt, 1, newest_id);
          rc = sqlite3_step (stmt);
          if (rc == SQLITE_ROW && sqlite3_column_bytes (stmt, 0) == newest_n * (gint64) sizeof (FlPoint))
            g_byte_array_append (blob, sqlite3_column_blob (stmt, 0), newest_n * sizeof (FlPoint));
          sqlite3_reset (stmt);
          if (rc != SQLITE_ROW || blob->len == 0)
            return set_sqlite_error (error, w->db, rc == SQLITE_ROW ? SQLITE_CORRUPT : rc, "read a chunk");

          done = MIN (CHUNK_POINTS - newest_n, n);
          append_points (blob, points, done);
          stmt = worker_stmt (w, "UPDATE chunks SET t1 = ?2, n = ?3, data = ?4 WHERE id = ?1", error);
          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_int64 (stmt, 1, newest_id);
          sqlite3_bind_int64 (stmt, 2, points[done - 1].t);
          sqlite3_bind_int64 (stmt, 3, newest_n + done);
          sqlite3_bind_blob (stmt, 4, blob->data, blob->len, SQLITE_STATIC);
          if (!step_done (w, stmt, "extend a chunk", error))
            return FALSE;
          s->newest_t1 = points[done - 1].t;
          s->newest_n = newest_n + done;
        }

      stmt = worker_stmt (w, "INSERT INTO chunks (series, t0, t1, n, data) VALUES (?1, ?2, ?3, ?4, ?5)", error);
      if (stmt == NULL)
        return FALSE;
      while (done < n)
        {
          guint take = MIN (CHUNK_POINTS, n - done);

          g_byte_array_set_size (blob, 0);
          append_points (blob, points + done, take);
          sqlite3_bind_int64 (stmt, 1, s->id);
          sqlite3_bind_int64 (stmt, 2, points[done].t);
          sqlite3_bind_int64 (stmt, 3, points[done + take - 1].t);
          sqlite3_bind_int64 (stmt, 4, take);
          sqlite3_bind_blob (stmt, 5, blob->data, blob->len, SQLITE_STATIC);
          if (!step_done (w, stmt, "add a chunk", error))
            return FALSE;
          /* the newest by t0, as long as the points came in order */
          if (s->newest_id == 0 || points[done].t >= s->newest_t1)
            {
              s->newest_id = sqlite3_last_insert_rowid (w->db);
              s->newest_t1 = points[done + take - 1].t;
              s->newest_n = take;
            }
          else
            s->newest_id = -1;
          done += take;
        }
    }

  g_clear_pointer (&sorted, g_array_unref);
  series_drop_pending (s, n);
  s->n_chunked += n;
  w->staged -= n;

  stmt = worker_stmt (w, "UPDATE series SET staged_upto = ?2 WHERE id = ?1", error);
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_int64 (stmt, 1, s->id);
  sqlite3_bind_int64 (stmt, 2, staged_upto);
  if (!step_done (w, stmt, "mark staged points", error))
    return FALSE;
  s->staged_upto = staged_upto;

  /* Chunks all of whose points the limit hides go. */
  if (s->n_chunked > w->max_points)
    {
      gint64 cutoff, tie_skip;

      if (!worker_series_cutoff (w, s, &cutoff, &tie_skip, error))
        return FALSE;
      stmt = worker_stmt (w, "DELETE FROM chunks WHERE series = ?1 AND t0 < ?2 AND t1 < ?2 RETURNING n", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, s->id);
      sqlite3_bind_int64 (stmt, 2, cutoff);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          s->n_chunked -= sqlite3_column_int64 (stmt, 0);
          s->newest_id = -1;
        }
      sqlite3_reset (stmt);
      if (rc != SQLITE_DONE)
        return set_sqlite_error (error, w->db, rc, "drop old chunks");
    }

  return TRUE;
}

/* Starts moving every point staged so far into chunks. */
static void
worker_start_compaction (Worker *w)
{
  GHashTableIter iter;
  Series        *s;

  g_return_if_fail (w->compacting == 0);

  if (w->staged == 0)
    return;

  /* every pending point is in a staging row by now */
  w->compacting = w->staging_last;
  g_hash_table_iter_init (&iter, w->series_by_id);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &s))
    if (s->pending->len > 0)
      {
        s->compact_n = s->pending->len;
        g_queue_push_tail (&w->compact_queue, s);
      }
  if (g_queue_is_empty (&w->compact_queue))
    w->staged = 0;
}

/* Moves some series (for about budget µs; 0: all), in one transaction;
 * the last step drops the staging rows. */
static gboolean
worker_compact_step (Worker  *w,
                     gint64   budget,
                     GError **error)
{
  gint64        deadline = g_get_monotonic_time () + budget;
  sqlite3_stmt *stmt;
  Series       *s;

  if (!exec_sql (w, "BEGIN", error))
    return FALSE;

  while ((s = g_queue_peek_head (&w->compact_queue)) != NULL)
    {
      if (!worker_flush_series (w, s, s->compact_n, w->compacting, error))
        goto failed;
      s->compact_n = 0;
      g_queue_pop_head (&w->compact_queue);
      if (budget > 0 && g_get_monotonic_time () > deadline)
        break;
    }

  if (g_queue_is_empty (&w->compact_queue))
    {
      stmt = worker_stmt (w, "DELETE FROM staging WHERE id <= ?1", error);
      if (stmt == NULL)
        goto failed;
      sqlite3_bind_int64 (stmt, 1, w->compacting);
      if (!step_done (w, stmt, "drop staged points", error))
        goto failed;
    }

  if (!exec_sql (w, "COMMIT", error))
    goto failed;
  if (g_queue_is_empty (&w->compact_queue))
    w->compacting = 0;

  return TRUE;

failed:
  exec_sql (w, "ROLLBACK", NULL);
  worker_reload (w);
  return FALSE;
}

/* Moves every pending point into chunks, at once. */
static gboolean
worker_compact_all (Worker  *w,
                    GError **error)
{
  while (w->compacting != 0 || w->staged > 0)
    {
      if (w->compacting == 0)
        worker_start_compaction (w);
      if (!worker_compact_step (w, 0, error))
        return FALSE;
    }

  return TRUE;
}

/* Where a series' limit cuts: points with t < *cutoff are hidden, and so
 * are the first *tie_skip of those with t == *cutoff; the rest are the
 * newest max_points.  Reads the oldest chunks, as many as it takes. */
static gboolean
worker_series_cutoff (Worker  *w,
                      Series  *s,
                      gint64  *cutoff,
                      gint64  *tie_skip,
                      GError **error)
{
  gint64             total = s->n_chunked + s->pending->len;
  gint64             hidden = total > w->max_points ? total - w->max_points : 0;
  g_autoptr (GArray) oldest = NULL;
  g_autoptr (GArray) sorted = NULL;
  const FlPoint     *pending;
  gint64             max_t1 = G_MININT64;
  sqlite3_stmt      *stmt;
  gint64             before = 0;
  guint              i = 0, j = 0;
  int                rc = SQLITE_DONE;

  *cutoff = G_MININT64;
  *tie_skip = 0;
  if (hidden == 0)
    return TRUE;

  sorted = series_sorted_pending (s, s->pending->len);
  pending = (const FlPoint *) (gpointer) sorted->data;
  oldest = g_array_new (FALSE, FALSE, sizeof (FlPoint));

  if (s->n_chunked > 0)
    {
      stmt = worker_stmt (w, "SELECT t0, t1, n, data FROM chunks WHERE series = ?1 ORDER BY t0", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_int64 (stmt, 1, s->id);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          gint64        t0 = sqlite3_column_int64 (stmt, 0);
          gint64        n = sqlite3_column_int64 (stmt, 2);
          const guint8 *data = sqlite3_column_blob (stmt, 3);
          gint64        below = 0;

          /* Everything older than t0 is in hand: enough of it? */
          if (max_t1 < t0)
            below = oldest->len;
          else
            for (guint k = 0; k < oldest->len; k++)
              below += g_array_index (oldest, FlPoint, k).t < t0;
          while (j < s->pending->len && pending[j].t < t0)
            j++;
          if (below + j > hidden)
            break;

          if (sqlite3_column_bytes (stmt, 3) != n * (gint64) sizeof (FlPoint))
            {
              rc = SQLITE_CORRUPT;
              break;
            }
          for (gint64 k = 0; k < n; k++)
            {
              FlPoint point = read_point (data + k * sizeof (FlPoint));

              g_array_append_val (oldest, point);
            }
          max_t1 = MAX (max_t1, sqlite3_column_int64 (stmt, 1));
        }
      sqlite3_reset (stmt);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return set_sqlite_error (error, w->db, rc, "read old points");
      g_array_sort (oldest, point_cmp);
    }

  /* The point at index hidden of the merged, sorted points is the oldest
   * one shown. */
  j = 0;
  for (gint64 k = 0; k <= hidden; k++)
    {
      FlPoint point;

      if (j >= s->pending->len || (i < oldest->len && g_array_index (oldest, FlPoint, i).t <= pending[j].t))
        point = g_array_index (oldest, FlPoint, i++);
      else
        point = pending[j++];

      if (k < hidden)
        {
          before = point.t == *cutoff ? before + 1 : 1;
          *cutoff = point.t;
        }
      else
        {
          *tie_skip = point.t == *cutoff ? before : 0;
          *cutoff = point.t;
        }
    }

  return TRUE;
}

static GArray *
worker_load_points (Worker     *w,
                    const char *device,
                    const char *metric,
                    gint64      from,
                    gint64      to,
                    GError    **error)
{
  g_autoptr (GArray) points = NULL;
  GError            *local = NULL;
  Series            *s = worker_series (w, device, metric, FALSE, &local);
  gint64             total, cutoff, tie_skip;
  sqlite3_stmt      *stmt;
  int                rc;

  if (local != NULL)
    {
      g_propagate_error (error, local);
      return NULL;
    }
  if (s == NULL || from >= to)
    return g_array_new (FALSE, FALSE, sizeof (FlPoint));

  if (!worker_series_cutoff (w, s, &cutoff, &tie_skip, error))
    return NULL;
  total = s->n_chunked + s->pending->len;
  points = g_array_sized_new (FALSE, FALSE, sizeof (FlPoint), MIN (MIN (total, w->max_points), 1 << 16));
  from = MAX (from, cutoff);

#define TAKE(point)                                  \
  G_STMT_START                                       \
  {                                                  \
    if ((point).t >= from && (point).t < to)         \
      {                                              \
        if ((point).t == cutoff && tie_skip > 0)     \
          tie_skip--;                                \
        else                                         \
          g_array_append_vals (points, &(point), 1); \
      }                                              \
  }                                                  \
  G_STMT_END

  if (s->n_chunked > 0)
    {
      stmt = worker_stmt (w, "SELECT t0, t1, n, data FROM chunks WHERE series = ?1 AND t0 < ?3 AND t1 >= ?2 "
                             "ORDER BY t0",
                          error);
      if (stmt == NULL)
        return NULL;
      sqlite3_bind_int64 (stmt, 1, s->id);
      sqlite3_bind_int64 (stmt, 2, from);
      sqlite3_bind_int64 (stmt, 3, to);
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        {
          gint64        t0 = sqlite3_column_int64 (stmt, 0);
          gint64        t1 = sqlite3_column_int64 (stmt, 1);
          gint64        n = sqlite3_column_int64 (stmt, 2);
          const guint8 *data = sqlite3_column_blob (stmt, 3);

          if (sqlite3_column_bytes (stmt, 3) != n * (gint64) sizeof (FlPoint))
            {
              rc = SQLITE_CORRUPT;
              break;
            }

          if (t0 > from && t1 < to)
            {
              /* the whole chunk: one copy */
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
              g_array_append_vals (points, data, n);
#else
              for (gint64 i = 0; i < n; i++)
                {
                  FlPoint point = read_point (data + i * sizeof (FlPoint));
                  g_array_append_val (points, point);
                }
#endif
              continue;
            }
          for (gint64 i = 0; i < n; i++)
            {
              FlPoint point = read_point (data + i * sizeof (FlPoint));

              TAKE (point);
            }
        }
      sqlite3_reset (stmt);
      if (rc != SQLITE_DONE)
        {
          set_sqlite_error (error, w->db, rc, "load points");
          return NULL;
        }
    }

  for (guint i = 0; i < s->pending->len; i++)
    TAKE (g_array_index (s->pending, FlPoint, i));
#undef TAKE

  /* Chunks and pending points overlap only when data came late. */
  for (guint i = 1; i < points->len; i++)
    if (g_array_index (points, FlPoint, i).t < g_array_index (points, FlPoint, i - 1).t)
      {
        g_array_sort (points, point_cmp);
        break;
      }

  return g_steal_pointer (&points);
}

static GStrv
worker_list_metrics (Worker     *w,
                     const char *device,
                     GError    **error)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  sqlite3_stmt            *stmt = worker_stmt (w, "SELECT metric FROM series WHERE device = ?1 ORDER BY metric", error);
  int                      rc;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_strv_builder_add (builder, (const char *) sqlite3_column_text (stmt, 0));
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, "list metrics"), NULL;

  return g_strv_builder_end (builder);
}

/* ---- events ------------------------------------------------------------ */

/* The events stored for a device; a pointer into the cache. */
static guint *
worker_event_count (Worker     *w,
                    const char *device,
                    GError    **error)
{
  guint        *count = g_hash_table_lookup (w->event_counts, device);
  sqlite3_stmt *stmt;
  int           rc;

  if (count != NULL)
    return count;

  stmt = worker_stmt (w, "SELECT count(*) FROM events WHERE device = ?1", error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    {
      count = g_new (guint, 1);
      *count = sqlite3_column_int64 (stmt, 0);
      g_hash_table_insert (w->event_counts, g_strdup (device), count);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW)
    set_sqlite_error (error, w->db, rc, "count events");

  return count;
}

static gboolean
worker_add_events (Worker    *w,
                   GPtrArray *events,
                   GError   **error)
{
  sqlite3_stmt *insert, *trim;
  guint         slack = MAX (1, w->max_events / 4);

  insert = worker_stmt (w, "INSERT OR IGNORE INTO events (device, ts, id, seq, received_at, json) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        error);
  trim = worker_stmt (w, "DELETE FROM events WHERE device = ?1 AND (ts, id) < "
                         "(SELECT ts, id FROM events WHERE device = ?1 ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?2)",
                      error);
  if (insert == NULL || trim == NULL)
    return FALSE;

  for (guint i = 0; i < events->len; i++)
    {
      FlEvent    *event = g_ptr_array_index (events, i);
      const char *source = fl_event_get_source (event);
      gint64      ts = fl_event_get_timestamp (event);
      guint      *count;

      if (source == NULL || fl_event_get_id (event) == NULL)
        continue;
      count = worker_event_count (w, source, error);
      if (count == NULL)
        return FALSE;

      sqlite3_bind_text (insert, 1, source, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (insert, 2, ts);
      sqlite3_bind_text (insert, 3, fl_event_get_id (event), -1, SQLITE_STATIC);
      sqlite3_bind_int64 (insert, 4, fl_event_get_seq (event));
      sqlite3_bind_int64 (insert, 5, fl_event_get_received_at (event));
      /* built by the caller's thread: here it is only read */
      sqlite3_bind_text (insert, 6, fl_event_get_json (event), fl_event_get_json_length (event), SQLITE_STATIC);
      if (!step_done (w, insert, "store an event", error))
        return FALSE;
      if (sqlite3_changes (w->db) == 0)
        continue; /* a duplicate: its points are there too */

      if (++*count > w->max_events + slack)
        {
          sqlite3_bind_text (trim, 1, source, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (trim, 2, w->max_events - 1);
          if (!step_done (w, trim, "drop old events", error))
            return FALSE;
          *count = w->max_events;
        }

      for (guint f = 0; f < fl_event_get_n_fields (event); f++)
        {
          const FlEventField *field = fl_event_get_field (event, f);
          Series             *s;

          if (field->text != NULL || !isfinite (field->number))
            continue;
          s = worker_series (w, source, field->name, TRUE, error);
          if (s == NULL)
            return FALSE;
          worker_stage_point (w, s, ts, field->number);
        }
    }

  return TRUE;
}

static GPtrArray *
worker_load_events (Worker     *w,
                    const char *device,
                    guint       limit,
                    GError    **error)
{
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  sqlite3_stmt         *stmt = worker_stmt (w, "SELECT json, seq, received_at FROM events WHERE device = ?1 "
                                                       "ORDER BY ts DESC, id DESC LIMIT ?2",
                                            error);
  int                   rc;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, device, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, limit > 0 ? MIN (limit, w->max_events) : w->max_events);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      FlEventParseOptions options = { 0 };
      g_autoptr (GError)  local = NULL;
      FlEvent            *event;

      options.max_event_size = G_MAXSIZE;
      options.received_at = sqlite3_column_int64 (stmt, 2);
      event = fl_event_parse ((const char *) sqlite3_column_text (stmt, 0), sqlite3_column_bytes (stmt, 0),
                              &options, &local);
      if (event == NULL)
        {
          sqlite3_reset (stmt);
          g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT,
                       "Cache: an event of “%s” does not load: %s", device, local->message);
          return NULL;
        }
      fl_event_set_seq (event, sqlite3_column_int64 (stmt, 1));
      fl_event_set_received_at (event, options.received_at);
      g_ptr_array_add (events, event);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, "load events"), NULL;

  return g_steal_pointer (&events);
}

/* ---- deleting devices -------------------------------------------------- */

/* Forgets a device's series in memory: pending points included (their
 * staging rows stay until the next compaction drops them; recovery skips
 * rows of series that are gone). */
static void
worker_forget_series (Worker     *w,
                      const char *device)
{
  GHashTable    *metrics = g_hash_table_lookup (w->series, device);
  GHashTableIter iter;
  Series        *s;

  if (metrics == NULL)
    return;

  g_hash_table_iter_init (&iter, metrics);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &s))
    {
      g_queue_remove (&w->compact_queue, s);
      w->staged -= MIN (w->staged, s->pending->len);
      g_hash_table_remove (w->series_by_id, &s->id);
    }
  g_hash_table_remove (w->series, device);
}

/* Removes devices (ids) with their events and telemetry. */
static gboolean
worker_delete_devices (Worker    *w,
                       GPtrArray *ids,
                       GError   **error)
{
  static const char *const statements[] = {
    "DELETE FROM devices WHERE id = ?1",
    "DELETE FROM events WHERE device = ?1",
    "DELETE FROM chunks WHERE series IN (SELECT id FROM series WHERE device = ?1)",
    "DELETE FROM series WHERE device = ?1",
  };

  for (guint i = 0; i < ids->len; i++)
    {
      const char *id = g_ptr_array_index (ids, i);

      for (guint j = 0; j < G_N_ELEMENTS (statements); j++)
        {
          sqlite3_stmt *stmt = worker_stmt (w, statements[j], error);

          if (stmt == NULL)
            return FALSE;
          sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
          if (!step_done (w, stmt, "delete a device", error))
            return FALSE;
        }
      /* on a failure the worker reloads all of this from the database */
      worker_forget_series (w, id);
      g_hash_table_remove (w->event_counts, id);
    }

  return TRUE;
}

/* ---- opening and closing ----------------------------------------------- */

static const char *const migrations[] = {
  /* 1: the first schema */
  "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
  "CREATE TABLE capabilities (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);"
  "CREATE TABLE devices ("
  "  id TEXT PRIMARY KEY NOT NULL, json TEXT,"
  "  name TEXT, type TEXT, model TEXT, manufacturer TEXT, firmware TEXT, status TEXT NOT NULL,"
  "  last_seen INTEGER NOT NULL, battery REAL, rssi REAL, lat REAL, lon REAL, alt REAL,"
  "  heartbeat INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
  "  secret_hash TEXT, tags TEXT, capabilities INTEGER) WITHOUT ROWID;"
  "CREATE TABLE events ("
  "  device TEXT NOT NULL, ts INTEGER NOT NULL, id TEXT NOT NULL,"
  "  seq INTEGER NOT NULL, received_at INTEGER NOT NULL, json TEXT NOT NULL,"
  "  PRIMARY KEY (device, ts, id)) WITHOUT ROWID;"
  "CREATE TABLE series ("
  "  id INTEGER PRIMARY KEY, device TEXT NOT NULL, metric TEXT NOT NULL,"
  "  staged_upto INTEGER NOT NULL DEFAULT 0, UNIQUE (device, metric));"
  "CREATE TABLE chunks ("
  "  id INTEGER PRIMARY KEY, series INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL,"
  "  n INTEGER NOT NULL, data BLOB NOT NULL);"
  "CREATE INDEX chunks_by_series ON chunks (series, t0, t1, n);"
  /* AUTOINCREMENT: series.staged_upto compares with ids never reused */
  "CREATE TABLE staging (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL);",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == SCHEMA_VERSION);

static gboolean
worker_migrate (Worker  *w,
                gint64   version,
                GError **error)
{
  for (gint64 v = version; v < SCHEMA_VERSION; v++)
    {
      g_autofree char *pragmas = g_strdup_printf ("PRAGMA user_version = %" G_GINT64_FORMAT ";"
                                                  "PRAGMA application_id = %d;",
                                                  v + 1, CACHE_APP_ID);

      if (!exec_sql (w, "BEGIN IMMEDIATE", error))
        return FALSE;
      if (!exec_sql (w, migrations[v], error) || !exec_sql (w, pragmas, error) || !exec_sql (w, "COMMIT", error))
        {
          exec_sql (w, "ROLLBACK", NULL);
          return FALSE;
        }
    }

  return TRUE;
}

static gboolean
worker_open (Worker     *w,
             const char *path,
             gint64     *last_seq,
             gint64     *last_sync,
             GError    **error)
{
  g_autofree char   *dir = g_path_get_dirname (path);
  g_autoptr (GError) local = NULL;
  gint64             application_id, n_objects, version;
  sqlite3_stmt      *stmt;
  int                rc;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_FAILED,
                   "Cache: cannot create “%s”: %s", dir, g_strerror (saved_errno));
      return FALSE;
    }

  rc = sqlite3_open_v2 (path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_FAILED, "Cache: cannot open “%s”: %s", path,
                   w->db != NULL ? sqlite3_errmsg (w->db) : sqlite3_errstr (rc));
      return FALSE;
    }
  sqlite3_extended_result_codes (w->db, 1);
  sqlite3_busy_timeout (w->db, 5000);

  /* Read the header before writing anything: a foreign file stays as it is. */
  if (!query_int64 (w, "PRAGMA application_id", &application_id, &local) || !query_int64 (w, "SELECT count(*) FROM sqlite_schema", &n_objects, &local) || !query_int64 (w, "PRAGMA user_version", &version, &local))
    {
      if (g_error_matches (local, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT))
        g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_CORRUPT,
                     "“%s” is not a Fieldline cache: it is damaged or not a database", path);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (n_objects > 0 && application_id != CACHE_APP_ID)
    {
      g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_FOREIGN,
                   "“%s” is an SQLite database, but not a Fieldline cache", path);
      return FALSE;
    }
  if (version > SCHEMA_VERSION)
    {
      g_set_error (error, FL_CACHE_ERROR, FL_CACHE_ERROR_VERSION,
                   "“%s” was written by a newer Fieldline (cache version %" G_GINT64_FORMAT ", this one reads %d)",
                   path, version, SCHEMA_VERSION);
      return FALSE;
    }

  if (!exec_sql (w, "PRAGMA journal_mode = WAL;"
                    "PRAGMA synchronous = NORMAL;"
                    "PRAGMA journal_size_limit = 67108864;"
                    "PRAGMA cache_size = " CACHE_SIZE ";"
                    "PRAGMA wal_autocheckpoint = 8192",
                 error)
      || !worker_migrate (w, version, error))
    return FALSE;

  stmt = worker_stmt (w, "SELECT key, value FROM meta", error);
  if (stmt == NULL)
    return FALSE;
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      const char *key = (const char *) sqlite3_column_text (stmt, 0);

      if (g_strcmp0 (key, "last_seq") == 0)
        *last_seq = sqlite3_column_int64 (stmt, 1);
      else if (g_strcmp0 (key, "last_sync") == 0)
        *last_sync = sqlite3_column_int64 (stmt, 1);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return set_sqlite_error (error, w->db, rc, "read resume points");

  return worker_recover (w, error);
}

static void
worker_close (Worker *w)
{
  g_autoptr (GError) error = NULL;

  if (w->db == NULL)
    return;

  /* the next open then has nothing to replay */
  if (!worker_compact_all (w, &error))
    g_warning ("%s", error->message);
  g_clear_error (&error);
  exec_sql (w, "PRAGMA optimize", NULL);

  g_hash_table_remove_all (w->stmts);
  if (sqlite3_close (w->db) != SQLITE_OK)
    g_warning ("Cache: close: %s", sqlite3_errmsg (w->db));
  w->db = NULL;
}

/* ---- the worker's loop ------------------------------------------------- */

static gboolean
worker_apply (Worker  *w,
              Request *req,
              GError **error)
{
  sqlite3_stmt *stmt;

  switch (req->kind)
    {
    case REQUEST_SAVE_DEVICES:
      return worker_save_devices (w, req->items, error);

    case REQUEST_DELETE_DEVICES:
      return worker_delete_devices (w, req->items, error);

    case REQUEST_ADD_EVENTS:
      return worker_add_events (w, req->items, error);

    case REQUEST_META:
      stmt = worker_stmt (w, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", error);
      if (stmt == NULL)
        return FALSE;
      sqlite3_bind_text (stmt, 1, req->meta_key, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (stmt, 2, req->from);
      return step_done (w, stmt, "store a resume point", error);

    case REQUEST_LIMITS:
      w->max_events = req->limit;
      w->max_points = req->max_points;
      return TRUE;

    case REQUEST_OPEN:
    case REQUEST_CLOSE:
    case REQUEST_LOAD_DEVICES:
    case REQUEST_LOAD_EVENTS:
    case REQUEST_LOAD_POINTS:
    case REQUEST_LIST_METRICS:
    default:
      g_assert_not_reached ();
    }
}

/* Consecutive writes share one transaction, each in a savepoint; their
 * callers hear back after the commit. */
static void
worker_write_group (Worker    *w,
                    GPtrArray *group)
{
  g_autofree GError **errors = g_new0 (GError *, group->len);
  g_autoptr (GError)  txn_error = NULL;

  if (exec_sql (w, "BEGIN", &txn_error))
    {
      for (guint i = 0; i < group->len; i++)
        {
          Request *req = g_ptr_array_index (group, i);
          guint    mark = w->staging->len;

          if (req->task != NULL && g_cancellable_set_error_if_cancelled (g_task_get_cancellable (req->task), &errors[i]))
            continue;
          if (!exec_sql (w, "SAVEPOINT request", &errors[i]))
            continue;
          if (!worker_apply (w, req, &errors[i]))
            {
              exec_sql (w, "ROLLBACK TO request", NULL);
              g_byte_array_set_size (w->staging, mark);
              w->reload = TRUE;
            }
          exec_sql (w, "RELEASE request", NULL);
        }

      if (!worker_write_staging (w, &txn_error) || !exec_sql (w, "COMMIT", &txn_error))
        {
          exec_sql (w, "ROLLBACK", NULL);
          w->reload = TRUE;
        }
    }

  if (w->reload)
    worker_reload (w);

  for (guint i = 0; i < group->len; i++)
    {
      GError *error = errors[i];

      if (error == NULL && txn_error != NULL)
        error = g_error_copy (txn_error);
      request_return (g_ptr_array_index (group, i), error);
    }
}

static void
worker_read (Worker  *w,
             Request *req)
{
  GCancellable  *cancellable = g_task_get_cancellable (req->task);
  GError        *error = NULL;
  gpointer       result = NULL;
  GDestroyNotify free_func = NULL;

  if (g_task_return_error_if_cancelled (req->task))
    return;

  switch (req->kind)
    {
    case REQUEST_LOAD_DEVICES:
      result = worker_load_devices (w, cancellable, &error);
      free_func = (GDestroyNotify) g_ptr_array_unref;
      break;

    case REQUEST_LOAD_EVENTS:
      result = worker_load_events (w, req->device_id, req->limit, &error);
      free_func = (GDestroyNotify) g_ptr_array_unref;
      break;

    case REQUEST_LOAD_POINTS:
      result = worker_load_points (w, req->device_id, req->metric, req->from, req->to, &error);
      free_func = (GDestroyNotify) g_array_unref;
      break;

    case REQUEST_LIST_METRICS:
      result = worker_list_metrics (w, req->device_id, &error);
      free_func = (GDestroyNotify) g_strfreev;
      break;

    case REQUEST_OPEN:
    case REQUEST_CLOSE:
    case REQUEST_LIMITS:
    case REQUEST_META:
    case REQUEST_SAVE_DEVICES:
    case REQUEST_DELETE_DEVICES:
    case REQUEST_ADD_EVENTS:
    default:
      g_assert_not_reached ();
    }

  if (result != NULL)
    g_task_return_pointer (req->task, result, free_func);
  else
    g_task_return_error (req->task, error);
}

static void
worker_compact_some (Worker *w)
{
  g_autoptr (GError) error = NULL;

  if (!worker_compact_step (w, COMPACT_STEP_USEC, &error))
    g_warning ("%s", error->message);
}

static guint
request_n_items (const Request *req)
{
  return req->items != NULL ? req->items->len : 1;
}

static gpointer
worker_thread (gpointer data)
{
  Worker  *w = data;
  Request *next = NULL;
  gboolean running = TRUE;

  while (running)
    {
      Request *req = next;

      /* a compaction goes on while nothing else waits */
      if (req == NULL && w->compacting != 0)
        {
          req = g_async_queue_try_pop (w->queue);
          if (req == NULL)
            {
              worker_compact_some (w);
              continue;
            }
        }
      if (req == NULL)
        req = g_async_queue_pop (w->queue);
      next = NULL;
      if (req->kind == REQUEST_OPEN)
        {
          FlCache *cache = g_task_get_task_data (req->task);
          GError  *error = NULL;
          gint64   last_seq = 0, last_sync = 0;

          if (!g_task_return_error_if_cancelled (req->task))
            {
              if (worker_open (w, req->path, &last_seq, &last_sync, &error))
                {
                  /* the caller reads them only after this returns */
                  cache->last_seq = last_seq;
                  cache->last_sync = last_sync;
                  g_task_return_pointer (req->task, g_object_ref (cache), g_object_unref);
                }
              else
                {
                  g_task_return_error (req->task, error);
                  running = FALSE;
                }
            }
          else
            running = FALSE;
          request_free (req);
        }
      else if (req->kind == REQUEST_CLOSE)
        {
          worker_close (w);
          request_free (req);
          running = FALSE;
        }
      else if (!request_is_write (req))
        {
          worker_read (w, req);
          request_free (req);
        }
      else
        {
          g_autoptr (GPtrArray) group = g_ptr_array_new_with_free_func ((GDestroyNotify) request_free);
          guint                 n_items = request_n_items (req);

          g_ptr_array_add (group, req);
          while (group->len < GROUP_MAX_REQUESTS && n_items < GROUP_MAX_ITEMS && (req = g_async_queue_try_pop (w->queue)) != NULL)
            {
              if (!request_is_write (req))
                {
                  next = req;
                  break;
                }
              g_ptr_array_add (group, req);
              n_items += request_n_items (req);
            }
          worker_write_group (w, group);
          g_clear_pointer (&group, g_ptr_array_unref);

          if (w->compacting == 0 && w->staged >= COMPACT_POINTS)
            worker_start_compaction (w);
          if (w->compacting != 0)
            worker_compact_some (w);
        }
    }

  worker_free (w);
  return NULL;
}

/* ---- FlCache ----------------------------------------------------------- */

G_DEFINE_FINAL_TYPE (FlCache, fl_cache, G_TYPE_OBJECT)

static void
fl_cache_dispose (GObject *object)
{
  fl_cache_close (FL_CACHE (object));

  G_OBJECT_CLASS (fl_cache_parent_class)->dispose (object);
}

static void
fl_cache_finalize (GObject *object)
{
  FlCache *self = FL_CACHE (object);

  g_clear_pointer (&self->queue, g_async_queue_unref);

  G_OBJECT_CLASS (fl_cache_parent_class)->finalize (object);
}

static void
fl_cache_class_init (FlCacheClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_cache_dispose;
  object_class->finalize = fl_cache_finalize;
}

static void
fl_cache_init (FlCache *self)
{
  self->queue = g_async_queue_new_full ((GDestroyNotify) request_free);
}

char *
fl_cache_default_path (const char *profile_id)
{
  g_return_val_if_fail (profile_id != NULL && *profile_id != '\0', NULL);
  g_return_val_if_fail (strchr (profile_id, G_DIR_SEPARATOR) == NULL && !g_str_equal (profile_id, "..") && !g_str_equal (profile_id, "."), NULL);

  return g_build_filename (g_get_user_data_dir (), "fieldline", "profiles", profile_id, "cache.db", NULL);
}

void
fl_cache_open_async (const char         *path,
                     GCancellable       *cancellable,
                     GAsyncReadyCallback callback,
                     gpointer            user_data)
{
  FlCache *self;
  Request *req;

  g_return_if_fail (path != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  self = g_object_new (FL_TYPE_CACHE, NULL);
  req = g_new0 (Request, 1);
  req->kind = REQUEST_OPEN;
  req->path = g_strdup (path);
  req->task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (req->task, fl_cache_open_async);
  g_task_set_task_data (req->task, self, g_object_unref);

  g_async_queue_push (self->queue, req);
  self->thread = g_thread_new ("fl-cache", worker_thread, worker_new (self->queue));
}

/**
 * fl_cache_open_finish:
 *
 * Returns: (transfer full): the cache, or NULL with @error set
 */
FlCache *
fl_cache_open_finish (GAsyncResult *result,
                      GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_cache_open_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
fl_cache_close (FlCache *self)
{
  GThread *thread;
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));

  thread = g_steal_pointer (&self->thread);
  if (thread == NULL)
    return;

  req = g_new0 (Request, 1);
  req->kind = REQUEST_CLOSE;
  g_async_queue_push (self->queue, req);

  /* The worker can drop the last reference (with a finished task): it
   * then closes on its own. */
  if (thread == g_thread_self ())
    g_thread_unref (thread);
  else
    g_thread_join (thread);
}

static Request *
request_new (FlCache            *self,
             RequestKind         kind,
             GCancellable       *cancellable,
             GAsyncReadyCallback callback,
             gpointer            user_data,
             gpointer            source_tag)
{
  Request *req = g_new0 (Request, 1);

  req->kind = kind;
  req->log_errors = callback == NULL;
  req->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (req->task, source_tag);
  /* A write the worker has applied succeeded, cancelled or not since. */
  if (request_is_write (req))
    g_task_set_check_cancellable (req->task, FALSE);

  return req;
}

static void
cache_push (FlCache *self,
            Request *req)
{
  if (self->thread != NULL)
    {
      g_async_queue_push (self->queue, req);
      return;
    }

  if (req->task != NULL)
    {
      if (req->log_errors)
        g_warning ("Cache: a write after close is lost");
      g_task_return_new_error (req->task, FL_CACHE_ERROR, FL_CACHE_ERROR_CLOSED, "The cache is closed");
    }
  request_free (req);
}

static gpointer
cache_propagate (FlCache      *self,
                 GAsyncResult *result,
                 gpointer      source_tag,
                 GError      **error)
{
  g_return_val_if_fail (FL_IS_CACHE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static gboolean
cache_propagate_boolean (FlCache      *self,
                         GAsyncResult *result,
                         gpointer      source_tag,
                         GError      **error)
{
  g_return_val_if_fail (FL_IS_CACHE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
fl_cache_load_devices_async (FlCache            *self,
                             GCancellable       *cancellable,
                             GAsyncReadyCallback callback,
                             gpointer            user_data)
{
  g_return_if_fail (FL_IS_CACHE (self));

  cache_push (self, request_new (self, REQUEST_LOAD_DEVICES, cancellable, callback, user_data,
                                 fl_cache_load_devices_async));
}

/**
 * fl_cache_load_devices_finish:
 *
 * Returns: (transfer container) (element-type FlDevice): the devices
 */
GPtrArray *
fl_cache_load_devices_finish (FlCache      *self,
                              GAsyncResult *result,
                              GError      **error)
{
  return cache_propagate (self, result, fl_cache_load_devices_async, error);
}

void
fl_cache_save_devices_async (FlCache            *self,
                             GPtrArray          *devices,
                             GCancellable       *cancellable,
                             GAsyncReadyCallback callback,
                             gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (devices != NULL);

  req = request_new (self, REQUEST_SAVE_DEVICES, cancellable, callback, user_data, fl_cache_save_devices_async);
  /* Devices change on the caller's thread (live events): the worker reads
   * a copy, the one form that holds everything. */
  req->items = g_ptr_array_new_full (devices->len, g_free);
  for (guint i = 0; i < devices->len; i++)
    {
      FlDevice *device = g_ptr_array_index (devices, i);

      if (FL_IS_DEVICE (device))
        g_ptr_array_add (req->items, fl_device_serialize (device));
      else
        g_critical ("%s: element %u is not an FlDevice", G_STRFUNC, i);
    }

  cache_push (self, req);
}

gboolean
fl_cache_save_devices_finish (FlCache      *self,
                              GAsyncResult *result,
                              GError      **error)
{
  return cache_propagate_boolean (self, result, fl_cache_save_devices_async, error);
}

/**
 * fl_cache_delete_devices_async:
 * @device_ids: (element-type utf8): the ids of the devices to remove
 *
 * Removes devices from the cache, with their events and telemetry: what
 * the console does with devices the server no longer has.  Ids the cache
 * does not hold are ignored.  Without a callback, errors are logged.
 */
void
fl_cache_delete_devices_async (FlCache            *self,
                               GPtrArray          *device_ids,
                               GCancellable       *cancellable,
                               GAsyncReadyCallback callback,
                               gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (device_ids != NULL);

  req = request_new (self, REQUEST_DELETE_DEVICES, cancellable, callback, user_data, fl_cache_delete_devices_async);
  req->items = g_ptr_array_new_full (device_ids->len, g_free);
  for (guint i = 0; i < device_ids->len; i++)
    g_ptr_array_add (req->items, g_strdup (g_ptr_array_index (device_ids, i)));

  cache_push (self, req);
}

gboolean
fl_cache_delete_devices_finish (FlCache      *self,
                                GAsyncResult *result,
                                GError      **error)
{
  return cache_propagate_boolean (self, result, fl_cache_delete_devices_async, error);
}

void
fl_cache_add_events_async (FlCache            *self,
                           GPtrArray          *events,
                           GCancellable       *cancellable,
                           GAsyncReadyCallback callback,
                           gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (events != NULL);

  req = request_new (self, REQUEST_ADD_EVENTS, cancellable, callback, user_data, fl_cache_add_events_async);
  req->items = g_ptr_array_new_full (events->len, (GDestroyNotify) fl_event_unref);
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);

      /* Build (and cache) the event's text on this thread, so that the
       * worker only reads it. */
      fl_event_get_json (event);
      g_ptr_array_add (req->items, fl_event_ref (event));
    }

  cache_push (self, req);
}

gboolean
fl_cache_add_events_finish (FlCache      *self,
                            GAsyncResult *result,
                            GError      **error)
{
  return cache_propagate_boolean (self, result, fl_cache_add_events_async, error);
}

void
fl_cache_load_events_async (FlCache            *self,
                            const char         *device_id,
                            guint               limit,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (device_id != NULL);

  req = request_new (self, REQUEST_LOAD_EVENTS, cancellable, callback, user_data, fl_cache_load_events_async);
  req->device_id = g_strdup (device_id);
  req->limit = limit;
  cache_push (self, req);
}

/**
 * fl_cache_load_events_finish:
 *
 * Returns: (transfer container) (element-type FlEvent): the events, newest first
 */
GPtrArray *
fl_cache_load_events_finish (FlCache      *self,
                             GAsyncResult *result,
                             GError      **error)
{
  return cache_propagate (self, result, fl_cache_load_events_async, error);
}

void
fl_cache_load_points_async (FlCache            *self,
                            const char         *device_id,
                            const char         *metric,
                            gint64              from,
                            gint64              to,
                            GCancellable       *cancellable,
                            GAsyncReadyCallback callback,
                            gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (device_id != NULL);
  g_return_if_fail (metric != NULL);

  req = request_new (self, REQUEST_LOAD_POINTS, cancellable, callback, user_data, fl_cache_load_points_async);
  req->device_id = g_strdup (device_id);
  req->metric = g_strdup (metric);
  req->from = from;
  req->to = to;
  cache_push (self, req);
}

/**
 * fl_cache_load_points_finish:
 *
 * Returns: (transfer full) (element-type FlPoint): the points, t ascending
 */
GArray *
fl_cache_load_points_finish (FlCache      *self,
                             GAsyncResult *result,
                             GError      **error)
{
  return cache_propagate (self, result, fl_cache_load_points_async, error);
}

void
fl_cache_list_metrics_async (FlCache            *self,
                             const char         *device_id,
                             GCancellable       *cancellable,
                             GAsyncReadyCallback callback,
                             gpointer            user_data)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (device_id != NULL);

  req = request_new (self, REQUEST_LIST_METRICS, cancellable, callback, user_data, fl_cache_list_metrics_async);
  req->device_id = g_strdup (device_id);
  cache_push (self, req);
}

/**
 * fl_cache_list_metrics_finish:
 *
 * Returns: (transfer full): the metric names, sorted
 */
GStrv
fl_cache_list_metrics_finish (FlCache      *self,
                              GAsyncResult *result,
                              GError      **error)
{
  return cache_propagate (self, result, fl_cache_list_metrics_async, error);
}

static void
cache_set_meta (FlCache    *self,
                const char *key,
                gint64      value)
{
  Request *req = g_new0 (Request, 1);

  req->kind = REQUEST_META;
  req->meta_key = key;
  req->from = value;
  cache_push (self, req);
}

gint64
fl_cache_get_last_seq (FlCache *self)
{
  g_return_val_if_fail (FL_IS_CACHE (self), 0);

  return self->last_seq;
}

void
fl_cache_set_last_seq (FlCache *self,
                       gint64   seq)
{
  g_return_if_fail (FL_IS_CACHE (self));

  self->last_seq = seq;
  cache_set_meta (self, "last_seq", seq);
}

gint64
fl_cache_get_last_sync (FlCache *self)
{
  g_return_val_if_fail (FL_IS_CACHE (self), 0);

  return self->last_sync;
}

void
fl_cache_set_last_sync (FlCache *self,
                        gint64   unix_ms)
{
  g_return_if_fail (FL_IS_CACHE (self));

  self->last_sync = unix_ms;
  cache_set_meta (self, "last_sync", unix_ms);
}

void
fl_cache_set_limits (FlCache *self,
                     guint    max_events_per_device,
                     guint    max_points_per_series)
{
  Request *req;

  g_return_if_fail (FL_IS_CACHE (self));
  g_return_if_fail (max_events_per_device > 0);
  g_return_if_fail (max_points_per_series > 0);

  req = g_new0 (Request, 1);
  req->kind = REQUEST_LIMITS;
  req->limit = max_events_per_device;
  req->max_points = max_points_per_series;
  cache_push (self, req);
}
