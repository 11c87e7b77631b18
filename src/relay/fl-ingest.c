/* fl-ingest.c: the device → store → hub path. */
#define G_LOG_DOMAIN "fl-ingest"

#include "config.h"

#include "fl-http.h"
#include "fl-ingest.h"

struct _FlIngest
{
  GObject     parent_instance;

  FlStore    *store;
  FlRegistry *registry;
  FlHub      *hub;
  FlMetrics  *metrics;  /* not owned; the relay's */
  gsize       max_event_size;
  guint       in_flight;
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

static void
fl_ingest_finalize (GObject *object)
{
  FlIngest *self = FL_INGEST (object);

  g_clear_object (&self->store);
  g_clear_object (&self->registry);
  g_clear_object (&self->hub);

  G_OBJECT_CLASS (fl_ingest_parent_class)->finalize (object);
}

static void
fl_ingest_class_init (FlIngestClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_ingest_finalize;
}

static void
fl_ingest_init (FlIngest *self)
{
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

static void
append_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (GTask) task = user_data;
  FlIngest *self = g_task_get_source_object (task);
  Submission *submission = g_task_get_task_data (task);
  g_autoptr (GPtrArray) stored = NULL;
  g_autoptr (GError) error = NULL;
  guint duplicates = 0;
  gboolean status_changed = FALSE;

  self->in_flight--;

  stored = fl_store_append_finish (FL_STORE (source), result, &duplicates, &error);
  if (stored == NULL)
    {
      fl_metrics_count_ingest (self->metrics, 0, 0, submission->n_submitted + submission->n_rejected,
                               g_get_monotonic_time () - submission->started_us);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* Committed: now the device record, the live stream, the ack. */
  for (guint i = 0; i < stored->len; i++)
    status_changed |= fl_registry_note_event (self->registry, submission->device, g_ptr_array_index (stored, i));
  if (status_changed)
    fl_hub_publish_device (self->hub, submission->device);
  fl_hub_publish_events (self->hub, stored);

  finish (self, task, submission, stored->len, duplicates);
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
      g_string_append_printf (submission->rejected, "{\"index\":%u,", item->index);
      {
        g_autoptr (GString) body_json = g_string_new (NULL);

        fl_api_error_append_json (item->error, body_json);
        /* {"error":{...}} without its braces */
        g_string_append_len (submission->rejected, body_json->str + 1, body_json->len - 1);
      }
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
  self->in_flight++;
  fl_store_append_async (self->store, events, options.received_at, NULL, append_cb, g_steal_pointer (&task));
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
