/* fl-event.c: one event, as devices send it and the relay stores it.
 *
 * An event keeps the text of its data and metadata, and the scalar
 * members of data as fields, all in the same allocation as the event:
 * ingest builds one at memory speed and the store and the live stream
 * splice its text.  JsonObjects are made only when someone asks. */
#define G_LOG_DOMAIN "fl-event"

#include "config.h"

#include <string.h>

#include "fl-event.h"
#include "fl-event-codec.h"

struct _FlEvent
{
  gatomicrefcount  ref_count;
  const char      *id;
  const char      *source;
  const char      *event_type;
  const char      *data_json;
  const char      *metadata_json;  /* or NULL */
  gsize            data_len;
  FlEventField    *fields;
  guint            n_fields;
  gint64           timestamp;
  gint64           seq;
  gint64           received_at;
  JsonObject      *data;           /* parsed on demand */
  JsonObject      *metadata;
  GString         *json;           /* cached normalised text, or NULL */
  char             strings[];      /* every string above lives here */
};

G_DEFINE_BOXED_TYPE (FlEvent, fl_event, fl_event_ref, fl_event_unref)

FlEvent *
_fl_event_new_from_parts (const char         *id,
                          gint64              timestamp,
                          const char         *source,
                          const char         *event_type,
                          const char         *data_json,
                          gsize               data_len,
                          const char         *metadata_json,
                          gsize               metadata_len,
                          const FlEventField *fields,
                          guint               n_fields)
{
  gsize id_len = strlen (id) + 1;
  gsize source_len = strlen (source) + 1;
  gsize type_len = strlen (event_type) + 1;
  gsize size = id_len + source_len + type_len + data_len + 1 + (metadata_json ? metadata_len + 1 : 0);
  gsize fields_offset;
  FlEvent *self;
  char *p;

  for (guint i = 0; i < n_fields; i++)
    size += strlen (fields[i].name) + 1 + (fields[i].text ? strlen (fields[i].text) + 1 : 0);

  /* the struct, the strings, then the (aligned) field array */
  fields_offset = sizeof (FlEvent) + size;
  fields_offset = (fields_offset + G_ALIGNOF (FlEventField) - 1) & ~(gsize) (G_ALIGNOF (FlEventField) - 1);
  self = g_malloc0 (fields_offset + n_fields * sizeof (FlEventField));

  g_atomic_ref_count_init (&self->ref_count);
  self->timestamp = timestamp;
  p = self->strings;

#define COPY(dst, src, len) G_STMT_START { dst = p; memcpy (p, src, len); p[len] = '\0'; p += len + 1; } G_STMT_END
  COPY (self->id, id, id_len - 1);
  COPY (self->source, source, source_len - 1);
  COPY (self->event_type, event_type, type_len - 1);
  COPY (self->data_json, data_json, data_len);
  self->data_len = data_len;
  if (metadata_json != NULL)
    COPY (self->metadata_json, metadata_json, metadata_len);

  self->fields = (FlEventField *) ((char *) self + fields_offset);
  self->n_fields = n_fields;
  for (guint i = 0; i < n_fields; i++)
    {
      COPY (self->fields[i].name, fields[i].name, strlen (fields[i].name));
      if (fields[i].text != NULL)
        COPY (self->fields[i].text, fields[i].text, strlen (fields[i].text));
      self->fields[i].number = fields[i].number;
    }
#undef COPY

  return self;
}

static JsonObject *
parse_object (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();

  if (text == NULL || !json_parser_load_from_data (parser, text, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

/**
 * fl_event_new:
 * @data: (nullable): NULL means an empty object
 * @metadata: (nullable):
 *
 * Builds an event from JSON objects, e.g. in a device or a test.  The
 * values are not validated; events from outside go through the codec.
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
  g_autoptr (GArray) fields = g_array_new (FALSE, FALSE, sizeof (FlEventField));
  g_autoptr (JsonNode) data_node = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *data_json = NULL;
  g_autofree char *metadata_json = NULL;
  gsize data_len = 0, metadata_len = 0;
  JsonObjectIter iter;
  const char *name;
  JsonNode *member;

  g_return_val_if_fail (id != NULL, NULL);
  g_return_val_if_fail (source != NULL, NULL);
  g_return_val_if_fail (event_type != NULL, NULL);

  if (data != NULL)
    {
      json_node_set_object (data_node, data);
      json_object_iter_init_ordered (&iter, data);
      while (json_object_iter_next_ordered (&iter, &name, &member))
        {
          FlEventField field = { .name = name };

          if (!JSON_NODE_HOLDS_VALUE (member))
            continue;
          switch (json_node_get_value_type (member))
            {
            case G_TYPE_INT64:
              field.number = json_node_get_int (member);
              break;
            case G_TYPE_DOUBLE:
              field.number = json_node_get_double (member);
              break;
            case G_TYPE_STRING:
              field.text = json_node_get_string (member);
              break;
            default:
              continue;
            }
          g_array_append_val (fields, field);
        }
      data_json = fl_json_to_string (data_node, &data_len);
    }
  else
    {
      data_json = g_strdup ("{}");
      data_len = 2;
    }

  if (metadata != NULL)
    {
      g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);

      json_node_set_object (node, metadata);
      metadata_json = fl_json_to_string (node, &metadata_len);
    }

  return _fl_event_new_from_parts (id, timestamp, source, event_type, data_json, data_len,
                                   metadata_json, metadata_len,
                                   (FlEventField *) (void *) fields->data, fields->len);
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

  g_clear_pointer (&self->data, json_object_unref);
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

const char *
fl_event_get_data_json (const FlEvent *self,
                        gsize         *length)
{
  if (length != NULL)
    *length = self->data_len;

  return self->data_json;
}

const char *
fl_event_get_metadata_json (const FlEvent *self)
{
  return self->metadata_json;
}

/* Parses text once, even when threads race for it. */
static JsonObject *
get_parsed (JsonObject **slot,
            const char  *text)
{
  JsonObject *object = g_atomic_pointer_get (slot);

  if (object == NULL && text != NULL)
    {
      object = parse_object (text);
      if (object == NULL)
        return NULL;
      if (!g_atomic_pointer_compare_and_exchange (slot, NULL, object))
        {
          json_object_unref (object);
          object = g_atomic_pointer_get (slot);
        }
    }

  return object;
}

/**
 * fl_event_get_data:
 *
 * Returns: (transfer none): the data object; treat it as read-only
 */
JsonObject *
fl_event_get_data (const FlEvent *self)
{
  /* a cache: the event stays logically const */
  return get_parsed (&((FlEvent *) self)->data, self->data_json);
}

/**
 * fl_event_get_metadata:
 *
 * Returns: (transfer none) (nullable): the metadata object, read-only
 */
JsonObject *
fl_event_get_metadata (const FlEvent *self)
{
  return get_parsed (&((FlEvent *) self)->metadata, self->metadata_json);
}

guint
fl_event_get_n_fields (const FlEvent *self)
{
  return self->n_fields;
}

const FlEventField *
fl_event_get_field (const FlEvent *self,
                    guint          index)
{
  g_return_val_if_fail (index < self->n_fields, NULL);

  return &self->fields[index];
}

gboolean
fl_event_get_metric (const FlEvent *self,
                     const char    *name,
                     double        *value)
{
  /* the last member of a name wins, as in a parsed object */
  for (guint i = self->n_fields; i > 0; i--)
    if (strcmp (self->fields[i - 1].name, name) == 0)
      {
        if (self->fields[i - 1].text != NULL)
          return FALSE;
        *value = self->fields[i - 1].number;
        return TRUE;
      }

  return FALSE;
}

const char *
fl_event_get_text (const FlEvent *self,
                   const char    *name)
{
  for (guint i = self->n_fields; i > 0; i--)
    if (strcmp (self->fields[i - 1].name, name) == 0)
      return self->fields[i - 1].text;

  return NULL;
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
fl_event_build_json (FlEvent *self)
{
  GString *out = g_string_sized_new (128 + self->data_len);

  g_string_append (out, "{\"id\":");
  fl_json_append_string (out, self->id);
  g_string_append (out, ",\"timestamp\":");
  fl_json_append_int (out, self->timestamp);
  g_string_append (out, ",\"source\":");
  fl_json_append_string (out, self->source);
  g_string_append (out, ",\"type\":");
  fl_json_append_string (out, self->event_type);
  g_string_append (out, ",\"data\":");
  g_string_append_len (out, self->data_json, self->data_len);
  if (self->metadata_json != NULL)
    {
      g_string_append (out, ",\"metadata\":");
      g_string_append (out, self->metadata_json);
    }
  if (self->seq > 0)
    {
      g_string_append (out, ",\"seq\":");
      fl_json_append_int (out, self->seq);
    }
  if (self->received_at > 0)
    {
      g_string_append (out, ",\"receivedAt\":");
      fl_json_append_int (out, self->received_at);
    }
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
  JsonObject *data = fl_event_get_data (self);
  JsonObject *metadata = fl_event_get_metadata (self);

  json_object_set_string_member (object, "id", self->id);
  json_object_set_int_member (object, "timestamp", self->timestamp);
  json_object_set_string_member (object, "source", self->source);
  json_object_set_string_member (object, "type", self->event_type);
  json_object_set_object_member (object, "data", data ? json_object_ref (data) : json_object_new ());
  if (metadata != NULL)
    json_object_set_object_member (object, "metadata", json_object_ref (metadata));
  if (self->seq > 0)
    json_object_set_int_member (object, "seq", self->seq);
  if (self->received_at > 0)
    json_object_set_int_member (object, "receivedAt", self->received_at);

  json_node_take_object (node, object);

  return node;
}
