/* fl-event-codec.c: events from and to JSON, with validation and
 * normalisation as PLATFORM.md (Event) describes them. */
#define G_LOG_DOMAIN "fl-event-codec"

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl-event-codec.h"

G_DEFINE_QUARK (fl-codec-error-quark, fl_codec_error)

#define MAX_TIMESTAMP G_GINT64_CONSTANT (253402300799999) /* 9999-12-31 */
#define MAX_TYPE_LENGTH 64
#define MAX_SOURCE_LENGTH 128

const char *
fl_codec_error_code (const GError *error)
{
  if (error == NULL || error->domain != FL_CODEC_ERROR)
    return "bad_request";

  switch ((FlCodecError) error->code)
    {
    case FL_CODEC_ERROR_MALFORMED:
      return "malformed_json";
    case FL_CODEC_ERROR_MISSING_FIELD:
      return "missing_field";
    case FL_CODEC_ERROR_INVALID_FIELD:
      return "invalid_field";
    case FL_CODEC_ERROR_TOO_LARGE:
      return "too_large";
    case FL_CODEC_ERROR_FORBIDDEN:
      return "forbidden_source";
    default:
      return "bad_request";
    }
}

/* ---- writing ---------------------------------------------------------- */

void
fl_json_append_string (GString    *out,
                       const char *str)
{
  const guchar *p = (const guchar *) str;
  const guchar *run = p;

  g_string_append_c (out, '"');
  for (; *p != '\0'; p++)
    {
      guchar c = *p;

      if (c >= 0x20 && c != '"' && c != '\\')
        continue;

      g_string_append_len (out, (const char *) run, p - run);
      run = p + 1;
      switch (c)
        {
        case '"':
          g_string_append (out, "\\\"");
          break;
        case '\\':
          g_string_append (out, "\\\\");
          break;
        case '\n':
          g_string_append (out, "\\n");
          break;
        case '\r':
          g_string_append (out, "\\r");
          break;
        case '\t':
          g_string_append (out, "\\t");
          break;
        case '\b':
          g_string_append (out, "\\b");
          break;
        case '\f':
          g_string_append (out, "\\f");
          break;
        default:
          g_string_append_printf (out, "\\u%04x", c);
          break;
        }
    }
  g_string_append_len (out, (const char *) run, p - run);
  g_string_append_c (out, '"');
}

/* The shortest text that reads back as the same double, so 0.1 stays
 * "0.1" rather than "0.10000000000000001". */
static void
append_double (GString *out,
               double   value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (value))
    {
      g_string_append (out, "null");
      return;
    }

  for (int precision = 15; precision <= 17; precision++)
    {
      g_ascii_formatd (buf, sizeof buf, precision == 15 ? "%.15g" : precision == 16 ? "%.16g" : "%.17g", value);
      if (g_ascii_strtod (buf, NULL) == value)
        break;
    }
  g_string_append (out, buf);
  /* keep it a JSON number that reads back as a double */
  if (strpbrk (buf, ".eEn") == NULL)
    g_string_append (out, ".0");
}

static void append_node (GString  *out,
                         JsonNode *node);

static void
append_object_members (GString    *out,
                       JsonObject *object)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *member;
  gboolean first = TRUE;

  g_string_append_c (out, '{');
  json_object_iter_init_ordered (&iter, object);
  while (json_object_iter_next_ordered (&iter, &name, &member))
    {
      if (!first)
        g_string_append_c (out, ',');
      first = FALSE;
      fl_json_append_string (out, name);
      g_string_append_c (out, ':');
      append_node (out, member);
    }
  g_string_append_c (out, '}');
}

static void
append_node (GString  *out,
             JsonNode *node)
{
  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      append_object_members (out, json_node_get_object (node));
      break;

    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint n = json_array_get_length (array);

        g_string_append_c (out, '[');
        for (guint i = 0; i < n; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            append_node (out, json_array_get_element (array, i));
          }
        g_string_append_c (out, ']');
      }
      break;

    case JSON_NODE_NULL:
      g_string_append (out, "null");
      break;

    case JSON_NODE_VALUE:
      switch (json_node_get_value_type (node))
        {
        case G_TYPE_INT64:
          g_string_append_printf (out, "%" G_GINT64_FORMAT, json_node_get_int (node));
          break;
        case G_TYPE_DOUBLE:
          append_double (out, json_node_get_double (node));
          break;
        case G_TYPE_BOOLEAN:
          g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
          break;
        case G_TYPE_STRING:
          fl_json_append_string (out, json_node_get_string (node));
          break;
        default:
          g_string_append (out, "null");
          break;
        }
      break;

    default:
      g_string_append (out, "null");
      break;
    }
}

/**
 * fl_json_to_string:
 * @length: (out) (optional)
 *
 * Serialises @node compactly, doubles in their shortest exact form.
 *
 * Returns: (transfer full): the text
 */
char *
fl_json_to_string (JsonNode *node,
                   gsize    *length)
{
  GString *out = g_string_sized_new (128);

  append_node (out, node);
  if (length != NULL)
    *length = out->len;

  return g_string_free (out, FALSE);
}

/* ---- splitting a body into values ------------------------------------ */

static inline gboolean
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds the end of the JSON value starting at body[pos]; only brackets
 * and strings are tracked, json-glib checks the rest when it parses the
 * value.  Returns FALSE when the value is cut off. */
static gboolean
scan_value (const char *body,
            gsize       length,
            gsize       pos,
            gsize      *end)
{
  guint depth = 0;
  gsize i = pos;

  if (body[i] != '{' && body[i] != '[' && body[i] != '"')
    {
      /* a scalar: up to the next separator */
      while (i < length && !is_space (body[i]) && body[i] != ',' && body[i] != ']' && body[i] != '}')
        i++;
      *end = i;
      return TRUE;
    }

  for (; i < length; i++)
    {
      char c = body[i];

      if (c == '"')
        {
          for (i++; i < length && body[i] != '"'; i++)
            if (body[i] == '\\')
              i++;
          if (i >= length)
            return FALSE;
          if (depth == 0)
            {
              *end = i + 1;
              return TRUE;
            }
        }
      else if (c == '{' || c == '[')
        {
          if (++depth > 64)
            return FALSE;
        }
      else if (c == '}' || c == ']')
        {
          if (depth == 0)
            return FALSE;
          if (--depth == 0)
            {
              *end = i + 1;
              return TRUE;
            }
        }
    }

  return FALSE;
}

static void
push_span (GArray *spans,
           gsize   offset,
           gsize   len)
{
  gsize pair[2] = { offset, len };

  g_array_append_vals (spans, pair, 2);
}

gboolean
fl_json_split_values (const char *body,
                      gsize       length,
                      GArray     *spans,
                      gboolean   *is_array,
                      GError    **error)
{
  gsize i = 0;

  g_return_val_if_fail (spans != NULL, FALSE);
  g_return_val_if_fail (g_array_get_element_size (spans) == sizeof (gsize), FALSE);

  *is_array = FALSE;

  while (i < length && is_space (body[i]))
    i++;
  if (i == length)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                           "The request body is empty");
      return FALSE;
    }

  if (body[i] == '[')
    {
      *is_array = TRUE;
      i++;
      while (i < length && is_space (body[i]))
        i++;
      if (i < length && body[i] == ']')
        i++;
      else
        for (;;)
          {
            gsize end;

            if (i >= length || !scan_value (body, length, i, &end) || end == i)
              goto malformed;
            push_span (spans, i, end - i);
            i = end;
            while (i < length && is_space (body[i]))
              i++;
            if (i < length && body[i] == ',')
              {
                i++;
                while (i < length && is_space (body[i]))
                  i++;
                continue;
              }
            if (i < length && body[i] == ']')
              {
                i++;
                break;
              }
            goto malformed;
          }

      while (i < length && is_space (body[i]))
        i++;
      if (i != length)
        goto malformed;
      return TRUE;
    }

  /* One value, or NDJSON: values separated by white space (newlines). */
  while (i < length)
    {
      gsize end;

      if (!scan_value (body, length, i, &end) || end == i)
        goto malformed;
      push_span (spans, i, end - i);
      i = end;
      if (i < length && !is_space (body[i]))
        goto malformed;
      while (i < length && is_space (body[i]))
        i++;
    }

  return TRUE;

malformed:
  g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
               "The request body is not valid JSON (near byte %" G_GSIZE_FORMAT ")", i);
  return FALSE;
}

/* ---- validation ------------------------------------------------------ */

static gboolean
is_lower_snake (const char *s)
{
  if (!g_ascii_islower (*s))
    return FALSE;
  for (; *s != '\0'; s++)
    if (!g_ascii_islower (*s) && !g_ascii_isdigit (*s) && *s != '_')
      return FALSE;
  return TRUE;
}

static const char *
node_type_name (JsonNode *node)
{
  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      return "an object";
    case JSON_NODE_ARRAY:
      return "an array";
    case JSON_NODE_NULL:
      return "null";
    case JSON_NODE_VALUE:
      switch (json_node_get_value_type (node))
        {
        case G_TYPE_INT64:
        case G_TYPE_DOUBLE:
          return "a number";
        case G_TYPE_BOOLEAN:
          return "a boolean";
        case G_TYPE_STRING:
          return "a string";
        default:
          return "a value";
        }
    default:
      return "a value";
    }
}

static gboolean
is_string (JsonNode *node)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

/* Returns the string member, NULL when absent (or null); sets error when
 * present with another type or out of the length bounds. */
static const char *
get_string_member (JsonObject  *object,
                   const char  *name,
                   gsize        max_len,
                   GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);
  const char *value;
  gsize len;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return NULL;

  if (!is_string (node))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                   "Field “%s” must be a string, not %s", name, node_type_name (node));
      return NULL;
    }

  value = json_node_get_string (node);
  len = strlen (value);
  if (len == 0 || len > max_len)
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                   "Field “%s” must be 1 to %" G_GSIZE_FORMAT " characters long", name, max_len);
      return NULL;
    }

  return value;
}

static JsonObject *
normalise_metadata (JsonNode  *node,
                    GError   **error)
{
  JsonObject *in;
  g_autoptr (JsonObject) out = NULL;
  JsonObjectIter iter;
  const char *name;
  JsonNode *member;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                   "Field “metadata” must be an object, not %s", node_type_name (node));
      return NULL;
    }

  in = json_node_get_object (node);
  out = json_object_new ();

  json_object_iter_init_ordered (&iter, in);
  while (json_object_iter_next_ordered (&iter, &name, &member))
    {
      if (g_str_equal (name, "version"))
        {
          if (!is_string (member))
            {
              g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “metadata.version” must be a string, not %s", node_type_name (member));
              return NULL;
            }
        }
      else if (g_str_equal (name, "tags"))
        {
          JsonArray *tags;

          if (!JSON_NODE_HOLDS_ARRAY (member))
            {
              g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “metadata.tags” must be an array of strings, not %s", node_type_name (member));
              return NULL;
            }
          tags = json_node_get_array (member);
          for (guint i = 0; i < json_array_get_length (tags); i++)
            if (!is_string (json_array_get_element (tags, i)))
              {
                g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                             "Field “metadata.tags[%u]” must be a string", i);
                return NULL;
              }
        }
      else if (g_str_equal (name, "priority"))
        {
          const char *priority = is_string (member) ? json_node_get_string (member) : NULL;

          if (priority == NULL || (!g_str_equal (priority, "low") && !g_str_equal (priority, "medium") && !g_str_equal (priority, "high")))
            {
              g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                                   "Field “metadata.priority” must be “low”, “medium” or “high”");
              return NULL;
            }
        }

      json_object_set_member (out, name, json_node_copy (member));
    }

  return g_steal_pointer (&out);
}

FlEvent *
fl_event_from_json_node (JsonNode                  *node,
                         const FlEventParseOptions *options,
                         GError                   **error)
{
  JsonObject *object;
  JsonNode *member;
  const char *id;
  const char *source;
  const char *event_type;
  g_autofree char *assigned_id = NULL;
  g_autoptr (JsonObject) metadata = NULL;
  JsonObject *data = NULL;
  gint64 timestamp;
  GError *local_error = NULL;

  g_return_val_if_fail (node != NULL, NULL);
  g_return_val_if_fail (options != NULL, NULL);

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                   "An event must be a JSON object, not %s", node_type_name (node));
      return NULL;
    }
  object = json_node_get_object (node);

  /* id: the idempotency key */
  id = get_string_member (object, "id", FL_EVENT_MAX_ID_LENGTH, &local_error);
  if (local_error != NULL)
    goto fail;
  if (id == NULL)
    {
      if (!options->assign_ids)
        {
          g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD,
                               "Field “id” is required (it is the idempotency key)");
          return NULL;
        }
      id = assigned_id = g_uuid_string_random ();
    }

  /* source: the device; on the device channel it must be the sender */
  source = get_string_member (object, "source", MAX_SOURCE_LENGTH, &local_error);
  if (local_error != NULL)
    goto fail;
  if (source == NULL)
    {
      if (options->device_id == NULL)
        {
          g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD,
                               "Field “source” is required");
          return NULL;
        }
      source = options->device_id;
    }
  else if (options->device_id != NULL && !g_str_equal (source, options->device_id))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_FORBIDDEN,
                   "Device “%s” may not send events as “%s”", options->device_id, source);
      return NULL;
    }

  /* type: a lower_snake word */
  event_type = get_string_member (object, "type", MAX_TYPE_LENGTH, &local_error);
  if (local_error != NULL)
    goto fail;
  if (event_type == NULL)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD,
                           "Field “type” is required");
      return NULL;
    }
  if (!is_lower_snake (event_type))
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “type” must be a lower_snake word, like “telemetry”");
      return NULL;
    }

  /* timestamp: integer ms; a missing one becomes receivedAt */
  member = json_object_get_member (object, "timestamp");
  if (member == NULL || JSON_NODE_HOLDS_NULL (member))
    timestamp = options->received_at;
  else if (JSON_NODE_HOLDS_VALUE (member) && json_node_get_value_type (member) == G_TYPE_INT64)
    {
      timestamp = json_node_get_int (member);
      if (timestamp < 0 || timestamp > MAX_TIMESTAMP)
        {
          g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                               "Field “timestamp” must be milliseconds since the Unix epoch, between 0 and year 9999");
          return NULL;
        }
    }
  else
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                   "Field “timestamp” must be an integer (milliseconds since the Unix epoch), not %s",
                   node_type_name (member));
      return NULL;
    }

  /* data: an object; absent means empty */
  member = json_object_get_member (object, "data");
  if (member != NULL && !JSON_NODE_HOLDS_NULL (member))
    {
      if (!JSON_NODE_HOLDS_OBJECT (member))
        {
          g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                       "Field “data” must be an object, not %s", node_type_name (member));
          return NULL;
        }
      data = json_node_get_object (member);
    }

  member = json_object_get_member (object, "metadata");
  if (member != NULL && !JSON_NODE_HOLDS_NULL (member))
    {
      metadata = normalise_metadata (member, error);
      if (metadata == NULL)
        return NULL;
    }

  return fl_event_new (id, timestamp, source, event_type, data, metadata);

fail:
  g_propagate_error (error, local_error);
  return NULL;
}

static void
clear_item (gpointer data)
{
  FlEventParseItem *item = data;

  g_clear_pointer (&item->event, fl_event_unref);
  g_clear_error (&item->error);
}

GArray *
fl_event_parse_batch (const char                *body,
                      gsize                      length,
                      const FlEventParseOptions *options,
                      GError                   **error)
{
  g_autoptr (GArray) spans = g_array_new (FALSE, FALSE, sizeof (gsize));
  g_autoptr (GArray) items = NULL;
  g_autoptr (JsonParser) parser = NULL;
  gsize max_event_size = options->max_event_size ? options->max_event_size : FL_EVENT_DEFAULT_MAX_EVENT_SIZE;
  gboolean is_array;
  guint n;

  if (!fl_json_split_values (body, length, spans, &is_array, error))
    return NULL;

  n = spans->len / 2;
  items = g_array_sized_new (FALSE, TRUE, sizeof (FlEventParseItem), n);
  g_array_set_clear_func (items, clear_item);
  parser = json_parser_new_immutable ();

  for (guint i = 0; i < n; i++)
    {
      gsize offset = g_array_index (spans, gsize, 2 * i);
      gsize len = g_array_index (spans, gsize, 2 * i + 1);
      FlEventParseItem item = { .index = i };
      GError *local_error = NULL;

      if (len > max_event_size)
        g_set_error (&item.error, FL_CODEC_ERROR, FL_CODEC_ERROR_TOO_LARGE,
                     "The event is %" G_GSIZE_FORMAT " bytes; the limit is %" G_GSIZE_FORMAT,
                     len, max_event_size);
      else if (!json_parser_load_from_data (parser, body + offset, len, &local_error))
        {
          g_set_error (&item.error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                       "The event is not valid JSON: %s", local_error->message);
          g_clear_error (&local_error);
        }
      else
        item.event = fl_event_from_json_node (json_parser_get_root (parser), options, &item.error);

      /* A body that is not JSON at all fails as a whole. */
      if (n == 1 && !is_array && item.error != NULL && item.error->code == FL_CODEC_ERROR_MALFORMED)
        {
          g_propagate_error (error, item.error);
          return NULL;
        }

      g_array_append_val (items, item);
    }

  return g_steal_pointer (&items);
}
