/* fl-ingest.c: the device → store → hub path. */
#define G_LOG_DOMAIN "fl-ingest"

#include "config.h"

#include "fl-http.h"
#include "fl-ingest.h"

/* Requests that arrive in the same main-loop iteration go to the store
 * as one append: a Part is one request's share of it. */
typedef struct
{
  GTask *task;
  guint  first;
  guint  count;
} Part;

struct _FlIngest
{
  GObject     parent_instance;

  FlStore    *store;
  FlRegistry *registry;
  FlHub      *hub;
  FlMetrics  *metrics;  /* not owned; the relay's */
  gsize       max_event_size;
  guint       in_flight;

  GPtrArray  *pending_events;  /* FlEvent, for the next append */
  GArray     *pending_parts;   /* Part */
  guint       flush_source;
};

G_DEFINE_FINAL_TYPE (FlIngest, fl_ingest, G_TYPE_OBJECT)

typedef struct
{
  FlDevice *device;
  GArray   *items;    /* FlEventParseItem */
  GString  *rejected; /* the "rejected" array's members, JSON */
  guint     n_rejected;
  guint     n_submitted;
  gint64    started_us;
} Submission;

static void
submission_free (Submission *submission)
{
  g_clear_object (&submission->device);
  g_clear_pointer (&submission->items, g_array_unref);
  if (submission->rejected != NULL)
    g_string_free (submission->rejected, TRUE);
  g_free (submission);
}

static void flush (FlIngest *self);

static void
fl_ingest_dispose (GObject *object)
{
  FlIngest *self = FL_INGEST (object);

  /* what was submitted still goes to the store */
  if (self->flush_source != 0)
    {
      GSource *source = g_main_context_find_source_by_id (g_main_context_get_thread_default (), self->flush_source);

      if (source != NULL)
        g_source_destroy (source);
      self->flush_source = 0;
      flush (self);
    }

  G_OBJECT_CLASS (fl_ingest_parent_class)->dispose (object);
}

static void
fl_ingest_finalize (GObject *object)
{
  FlIngest *self = FL_INGEST (object);

  g_clear_pointer (&self->pending_events, g_ptr_array_unref);
  g_clear_pointer (&self->pending_parts, g_array_unref);

  g_clear_object (&self->store);
  g_clear_object (&self->registry);
  g_clear_object (&self->hub);

  G_OBJECT_CLASS (fl_ingest_parent_class)->finalize (object);
}

static void
fl_ingest_class_init (FlIngestClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_ingest_dispose;
  object_class->finalize = fl_ingest_finalize;
}

static void
fl_ingest_init (FlIngest *self)
{
  self->pending_events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  self->pending_parts = g_array_new (FALSE, FALSE, sizeof (Part));
}

FlIngest *
fl_ingest_new (FlStore    *store,
               FlRegistry *registry,
               FlHub      *hub,
               FlMetrics  *metrics,
               gsize       max_event_size)
{
  FlIngest *self = g_object_new (FL_TYPE_INGEST, NULL);

  self->store = g_object_ref (store);
  self->registry = g_object_ref (registry);
  self->hub = g_object_ref (hub);
  self->metrics = metrics;
  self->max_event_size = max_event_size;

  return self;
}

guint
fl_ingest_get_in_flight (FlIngest *self)
{
  return self->in_flight;
}

static GString *
build_reply (Submission *submission,
             guint       accepted,
             guint       duplicates)
{
  GString *out = g_string_sized_new (64 + (submission->rejected ? submission->rejected->len : 0));

  g_string_printf (out, "{\"accepted\":%u,\"duplicates\":%u,\"rejected\":[", accepted, duplicates);
  if (submission->rejected != NULL)
    g_string_append_len (out, submission->rejected->str, submission->rejected->len);
  g_string_append (out, "]}");

  return out;
}

static void
finish (FlIngest   *self,
        GTask      *task,
        Submission *submission,
        guint       accepted,
        guint       duplicates)
{
  fl_metrics_count_ingest (self->metrics, accepted, duplicates, submission->n_rejected,
                           g_get_monotonic_time () - submission->started_us);
  g_task_return_pointer (task, build_reply (submission, accepted, duplicates),
                         (GDestroyNotify) (void (*) (void)) g_string_free);
}

typedef struct
{
  GPtrArray *events;  /* what was appended, FlEvent */
  GArray    *parts;   /* Part */
} Append;

static void
append_free (Append *append)
{
  g_ptr_array_unref (append->events);
  g_array_unref (append->parts);
  g_free (append);
}

static void
append_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Append *append = user_data;
  FlIngest *self = NULL;
  g_autoptr (GPtrArray) stored = NULL;
  g_autoptr (GError) error = NULL;
  guint duplicates = 0;

  stored = fl_store_append_finish (FL_STORE (source), result, &duplicates, &error);

  for (guint p = 0; p < append->parts->len; p++)
    {
      Part *part = &g_array_index (append->parts, Part, p);
      g_autoptr (GTask) task = g_steal_pointer (&part->task);
      Submission *submission = g_task_get_task_data (task);
      guint accepted = 0;
      gboolean status_changed = FALSE;

      self = g_task_get_source_object (task);
      self->in_flight--;

      if (stored == NULL)
        {
          fl_metrics_count_ingest (self->metrics, 0, 0, submission->n_submitted + submission->n_rejected,
                                   g_get_monotonic_time () - submission->started_us);
          g_task_return_error (task, g_error_copy (error));
          continue;
        }

      /* Committed: now the device record and, below, the live stream.
       * An event the store took has its seq; a duplicate has none. */
      for (guint i = part->first; i < part->first + part->count; i++)
        {
          FlEvent *event = g_ptr_array_index (append->events, i);

          if (fl_event_get_seq (event) == 0)
            continue;
          accepted++;
          status_changed |= fl_registry_note_event (self->registry, submission->device, event);
        }
      if (status_changed)
        fl_hub_publish_device (self->hub, submission->device);

      finish (self, task, submission, accepted, part->count - accepted);
    }

  /* one fan-out, in seq order, for everything committed together */
  if (stored != NULL && self != NULL)
    fl_hub_publish_events (self->hub, stored);

  append_free (append);
}

static gboolean
flush_cb (gpointer user_data)
{
  FlIngest *self = user_data;

  self->flush_source = 0;
  flush (self);

  return G_SOURCE_REMOVE;
}

static void
flush (FlIngest *self)
{
  Append *append = g_new0 (Append, 1);

  append->events = g_steal_pointer (&self->pending_events);
  append->parts = g_steal_pointer (&self->pending_parts);
  self->pending_events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  self->pending_parts = g_array_new (FALSE, FALSE, sizeof (Part));

  fl_store_append_async (self->store, append->events, fl_now_ms (), NULL, append_cb, append);
}

/* Queues a request's events for the next append.  Requests read in the
 * same main-loop iteration share one: the store's writer then handles
 * one task, not one per request, and the hub fans out once. */
static void
queue_append (FlIngest  *self,
              GTask     *task,
              GPtrArray *events)
{
  Part part = { task, self->pending_events->len, events->len };

  for (guint i = 0; i < events->len; i++)
    g_ptr_array_add (self->pending_events, fl_event_ref (g_ptr_array_index (events, i)));
  g_array_append_val (self->pending_parts, part);
  self->in_flight++;

  if (self->flush_source == 0)
    {
      g_autoptr (GSource) source = g_idle_source_new ();
      g_autoptr (GMainContext) context = g_main_context_ref_thread_default ();

      g_source_set_priority (source, G_PRIORITY_HIGH);
      g_source_set_callback (source, flush_cb, self, NULL);
      g_source_set_static_name (source, "[fl-ingest] flush");
      self->flush_source = g_source_attach (source, context);
    }
}

static gboolean
is_array_body (const char *data,
               gsize       len)
{
  gsize i = 0;

  while (i < len && g_ascii_isspace (data[i]))
    i++;

  return i < len && data[i] == '[';
}

void
fl_ingest_submit_async (FlIngest            *self,
                        FlDevice            *device,
                        GBytes              *body,
                        gint64               started_us,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (GError) error = NULL;
  Submission *submission;
  FlEventParseOptions options = {
    .max_event_size = self->max_event_size,
    .received_at = fl_now_ms (),
    .device_id = fl_device_get_device_id (device),
  };
  const char *data;
  gsize len;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_ingest_submit_async);

  submission = g_new0 (Submission, 1);
  submission->device = g_object_ref (device);
  submission->started_us = started_us;
  g_task_set_task_data (task, submission, (GDestroyNotify) submission_free);

  data = g_bytes_get_data (body, &len);
  submission->items = fl_event_parse_batch (data, len, &options, &error);
  if (submission->items == NULL)
    {
      fl_metrics_count_ingest (self->metrics, 0, 0, 1, g_get_monotonic_time () - started_us);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  events = g_ptr_array_new_full (submission->items->len, (GDestroyNotify) fl_event_unref);
  for (guint i = 0; i < submission->items->len; i++)
    {
      FlEventParseItem *item = &g_array_index (submission->items, FlEventParseItem, i);

      if (item->event != NULL)
        {
          g_ptr_array_add (events, fl_event_ref (item->event));
          continue;
        }

      /* A body of one event that is bad fails as a request. */
      if (submission->items->len == 1 && !is_array_body (data, len))
        {
          fl_metrics_count_ingest (self->metrics, 0, 0, 1, g_get_monotonic_time () - started_us);
          g_task_return_error (task, g_steal_pointer (&item->error));
          return;
        }

      if (submission->rejected == NULL)
        submission->rejected = g_string_new (NULL);
      else
        g_string_append_c (submission->rejected, ',');
      g_string_append_printf (submission->rejected, "{\"index\":%u,\"error\":", item->index);
      fl_api_error_append_object (item->error, submission->rejected);
      g_string_append_c (submission->rejected, '}');
      submission->n_rejected++;
    }

  /* The parsed tree is no longer needed; the events hold what they use. */
  g_clear_pointer (&submission->items, g_array_unref);

  if (events->len == 0)
    {
      finish (self, task, submission, 0, 0);
      return;
    }

  submission->n_submitted = events->len;
  queue_append (self, g_steal_pointer (&task), events);
}

GString *
fl_ingest_submit_finish (FlIngest      *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_ingest_submit_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
