/* fl-event.c: one event, as devices send it and the relay stores it. */
#define G_LOG_DOMAIN "fl-event"

#include "config.h"

#include "fl-event.h"
#include "fl-event-codec.h"

struct _FlEvent
{
  gatomicrefcount  ref_count;
  char            *id;
  char            *source;
  char            *event_type;
  JsonObject      *data;
  JsonObject      *metadata;
  gint64           timestamp;
  gint64           seq;
  gint64           received_at;
  GString         *json; /* cached normalised text, or NULL */
};

G_DEFINE_BOXED_TYPE (FlEvent, fl_event, fl_event_ref, fl_event_unref)

/**
 * fl_event_new:
 * @data: (nullable): taken by reference; NULL means an empty object
 * @metadata: (nullable): taken by reference
 *
 * Returns: (transfer full): a new event with seq 0
 */
FlEvent *
fl_event_new (const char *id,
              gint64      timestamp,
              const char *source,
              const char *event_type,
              JsonObject *data,
              JsonObject *metadata)
{
  FlEvent *self;

  g_return_val_if_fail (id != NULL, NULL);
  g_return_val_if_fail (source != NULL, NULL);
  g_return_val_if_fail (event_type != NULL, NULL);

  self = g_new0 (FlEvent, 1);
  g_atomic_ref_count_init (&self->ref_count);
  self->id = g_strdup (id);
  self->timestamp = timestamp;
  self->source = g_strdup (source);
  self->event_type = g_strdup (event_type);
  self->data = data ? json_object_ref (data) : json_object_new ();
  self->metadata = metadata ? json_object_ref (metadata) : NULL;

  return self;
}

FlEvent *
fl_event_ref (FlEvent *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  g_atomic_ref_count_inc (&self->ref_count);

  return self;
}

void
fl_event_unref (FlEvent *self)
{
  g_return_if_fail (self != NULL);

  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;

  g_free (self->id);
  g_free (self->source);
  g_free (self->event_type);
  json_object_unref (self->data);
  g_clear_pointer (&self->metadata, json_object_unref);
  if (self->json != NULL)
    g_string_free (self->json, TRUE);
  g_free (self);
}

const char *
fl_event_get_id (const FlEvent *self)
{
  return self->id;
}

gint64
fl_event_get_timestamp (const FlEvent *self)
{
  return self->timestamp;
}

const char *
fl_event_get_source (const FlEvent *self)
{
  return self->source;
}

const char *
fl_event_get_event_type (const FlEvent *self)
{
  return self->event_type;
}

/**
 * fl_event_get_data:
 *
 * Returns: (transfer none): the data object; treat it as read-only
 */
JsonObject *
fl_event_get_data (const FlEvent *self)
{
  return self->data;
}

/**
 * fl_event_get_metadata:
 *
 * Returns: (transfer none) (nullable): the metadata object, read-only
 */
JsonObject *
fl_event_get_metadata (const FlEvent *self)
{
  return self->metadata;
}

gint64
fl_event_get_seq (const FlEvent *self)
{
  return self->seq;
}

gint64
fl_event_get_received_at (const FlEvent *self)
{
  return self->received_at;
}

static void
fl_event_drop_json (FlEvent *self)
{
  if (self->json != NULL)
    {
      g_string_free (self->json, TRUE);
      self->json = NULL;
    }
}

void
fl_event_set_seq (FlEvent *self,
                  gint64   seq)
{
  if (self->seq != seq)
    {
      self->seq = seq;
      fl_event_drop_json (self);
    }
}

void
fl_event_set_received_at (FlEvent *self,
                          gint64   received_at)
{
  if (self->received_at != received_at)
    {
      self->received_at = received_at;
      fl_event_drop_json (self);
    }
}

static void
append_object (GString    *out,
               JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *text = NULL;
  gsize len = 0;

  json_node_set_object (node, object);
  text = fl_json_to_string (node, &len);
  g_string_append_len (out, text, len);
}

static void
fl_event_build_json (FlEvent *self)
{
  GString *out = g_string_sized_new (256);

  g_string_append (out, "{\"id\":");
  fl_json_append_string (out, self->id);
  g_string_append_printf (out, ",\"timestamp\":%" G_GINT64_FORMAT ",\"source\":", self->timestamp);
  fl_json_append_string (out, self->source);
  g_string_append (out, ",\"type\":");
  fl_json_append_string (out, self->event_type);
  g_string_append (out, ",\"data\":");
  append_object (out, self->data);
  if (self->metadata != NULL)
    {
      g_string_append (out, ",\"metadata\":");
      append_object (out, self->metadata);
    }
  if (self->seq > 0)
    g_string_append_printf (out, ",\"seq\":%" G_GINT64_FORMAT, self->seq);
  if (self->received_at > 0)
    g_string_append_printf (out, ",\"receivedAt\":%" G_GINT64_FORMAT, self->received_at);
  g_string_append_c (out, '}');

  self->json = out;
}

/**
 * fl_event_get_json:
 *
 * The event's normalised JSON text, with seq and receivedAt once set.
 * Built on first use; not thread-safe against a concurrent setter.
 *
 * Returns: (transfer none): the text, valid until seq or receivedAt change
 */
const char *
fl_event_get_json (FlEvent *self)
{
  if (self->json == NULL)
    fl_event_build_json (self);

  return self->json->str;
}

gsize
fl_event_get_json_length (FlEvent *self)
{
  if (self->json == NULL)
    fl_event_build_json (self);

  return self->json->len;
}

/**
 * fl_event_to_json_node:
 *
 * Returns: (transfer full): the event as a JSON object node
 */
JsonNode *
fl_event_to_json_node (const FlEvent *self)
{
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (object, "id", self->id);
  json_object_set_int_member (object, "timestamp", self->timestamp);
  json_object_set_string_member (object, "source", self->source);
  json_object_set_string_member (object, "type", self->event_type);
  json_object_set_object_member (object, "data", json_object_ref (self->data));
  if (self->metadata != NULL)
    json_object_set_object_member (object, "metadata", json_object_ref (self->metadata));
  if (self->seq > 0)
    json_object_set_int_member (object, "seq", self->seq);
  if (self->received_at > 0)
    json_object_set_int_member (object, "receivedAt", self->received_at);

  json_node_take_object (node, object);

  return node;
}

gboolean
fl_event_get_metric (const FlEvent *self,
                     const char    *name,
                     double        *value)
{
  JsonNode *node = json_object_get_member (self->data, name);

  if (node == NULL || JSON_NODE_TYPE (node) != JSON_NODE_VALUE)
    return FALSE;

  switch (json_node_get_value_type (node))
    {
    case G_TYPE_INT64:
      *value = (double) json_node_get_int (node);
      return TRUE;
    case G_TYPE_DOUBLE:
      *value = json_node_get_double (node);
      return TRUE;
    default:
      return FALSE;
    }
}
