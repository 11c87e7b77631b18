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

/* An integer in decimal; printf's machinery costs more than the rest of an
 * event's serialisation. */
void
fl_json_append_int (GString *out,
                    gint64   value)
{
  char buf[24];
  char *p = buf + sizeof buf;
  guint64 u = value < 0 ? -(guint64) value : (guint64) value;

  do
    {
      *--p = (char) ('0' + u % 10);
      u /= 10;
    }
  while (u != 0);
  if (value < 0)
    *--p = '-';
  g_string_append_len (out, p, buf + sizeof buf - p);
}

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
          fl_json_append_int (out, json_node_get_int (node));
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

/* ---- the scanner --------------------------------------------------------
 *
 * A strict RFC 8259 scanner for the ingest path.  It validates an event in
 * one pass, decodes the strings it needs, copies data and metadata as
 * compact text, and collects the scalar members of data.  Syntax errors
 * stop it (the body cannot be split further); errors of meaning are
 * recorded, and scanning goes on to the end of the event.
 */

#define MAX_DEPTH 64

typedef struct
{
  const char *start;
  const char *p;
  const char *end;
  GString    *scratch;  /* decoded strings and compact texts */
  GString    *key;      /* the member name being scanned */
  GString    *names;    /* field names and decoded string values */
  GArray     *fields;   /* FieldSpan */
  GError     *error;    /* the first error of meaning */
} Scanner;

typedef struct
{
  gsize  name;  /* offsets into names */
  gssize text;  /* -1 for a number */
  double number;
} FieldSpan;

static inline void
skip_ws (Scanner *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
    s->p++;
}

static void
meaning_error (Scanner    *s,
               int         code,
               const char *format,
               ...) G_GNUC_PRINTF (3, 4);

static void
meaning_error (Scanner    *s,
               int         code,
               const char *format,
               ...)
{
  va_list args;

  if (s->error != NULL)
    return;

  va_start (args, format);
  s->error = g_error_new_valist (FL_CODEC_ERROR, code, format, args);
  va_end (args);
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static gboolean
read_hex4 (const char *p,
           const char *end,
           gunichar   *out)
{
  gunichar value = 0;

  if (end - p < 4)
    return FALSE;
  for (int i = 0; i < 4; i++)
    {
      int h = hex_value (p[i]);

      if (h < 0)
        return FALSE;
      value = value * 16 + h;
    }
  *out = value;
  return TRUE;
}

/* Scans the string at s->p (on its opening quote).  Appends its raw text,
 * quotes included, to raw, and its decoded value to decoded (either may be
 * NULL).  FALSE on a syntax error. */
static gboolean
scan_string (Scanner *s,
             GString *raw,
             GString *decoded)
{
  const char *begin = s->p;
  const char *run;
  gboolean escaped = FALSE;

  s->p++;
  run = s->p;
  while (s->p < s->end)
    {
      guchar c = *s->p;

      if (c == '"')
        break;
      if (c < 0x20)
        return FALSE;
      if (c != '\\')
        {
          s->p++;
          continue;
        }

      escaped = TRUE;
      if (decoded != NULL)
        g_string_append_len (decoded, run, s->p - run);
      if (s->end - s->p < 2)
        return FALSE;
      switch (s->p[1])
        {
        case '"': case '\\': case '/':
          if (decoded) g_string_append_c (decoded, s->p[1]);
          s->p += 2;
          break;
        case 'b':
          if (decoded) g_string_append_c (decoded, '\b');
          s->p += 2;
          break;
        case 'f':
          if (decoded) g_string_append_c (decoded, '\f');
          s->p += 2;
          break;
        case 'n':
          if (decoded) g_string_append_c (decoded, '\n');
          s->p += 2;
          break;
        case 'r':
          if (decoded) g_string_append_c (decoded, '\r');
          s->p += 2;
          break;
        case 't':
          if (decoded) g_string_append_c (decoded, '\t');
          s->p += 2;
          break;
        case 'u':
          {
            gunichar cp, low;

            if (!read_hex4 (s->p + 2, s->end, &cp))
              return FALSE;
            s->p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF)
              {
                /* a surrogate pair */
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    !read_hex4 (s->p + 2, s->end, &low) || low < 0xDC00 || low > 0xDFFF)
                  return FALSE;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                s->p += 6;
              }
            else if (cp >= 0xDC00 && cp <= 0xDFFF)
              return FALSE;
            if (cp == 0)
              return FALSE; /* NUL would cut C strings short */
            if (decoded)
              g_string_append_unichar (decoded, cp);
          }
          break;
        default:
          return FALSE;
        }
      run = s->p;
    }

  if (s->p >= s->end)
    return FALSE;

  /* bytes above 0x7f must be UTF-8 */
  if (!g_utf8_validate_len (begin + 1, s->p - begin - 1, NULL))
    return FALSE;

  if (decoded != NULL)
    {
      if (escaped)
        g_string_append_len (decoded, run, s->p - run);
      else
        g_string_append_len (decoded, begin + 1, s->p - begin - 1);
    }
  s->p++;
  if (raw != NULL)
    g_string_append_len (raw, begin, s->p - begin);

  return TRUE;
}

/* Scans a number; *is_integer says whether it had no fraction or
 * exponent. */
static gboolean
scan_number (Scanner    *s,
             GString    *raw,
             double     *value,
             gboolean   *is_integer,
             gint64     *integer)
{
  const char *begin = s->p;
  char stack_buf[64];
  g_autofree char *heap_buf = NULL;
  char *text;
  gsize len;

  *is_integer = TRUE;
  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p >= s->end)
    return FALSE;
  if (*s->p == '0')
    s->p++;
  else if (*s->p >= '1' && *s->p <= '9')
    while (s->p < s->end && g_ascii_isdigit (*s->p))
      s->p++;
  else
    return FALSE;

  if (s->p < s->end && *s->p == '.')
    {
      *is_integer = FALSE;
      s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return FALSE;
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
    {
      *is_integer = FALSE;
      s->p++;
      if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
        s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return FALSE;
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }

  len = s->p - begin;
  if (raw != NULL)
    g_string_append_len (raw, begin, len);

  if (value == NULL && integer == NULL)
    return TRUE;

  text = len < sizeof stack_buf ? stack_buf : (heap_buf = g_malloc (len + 1));
  memcpy (text, begin, len);
  text[len] = '\0';

  if (value != NULL)
    *value = g_ascii_strtod (text, NULL);
  if (integer != NULL && *is_integer &&
      !g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, integer, NULL))
    *is_integer = FALSE; /* out of range: treat as a plain number */

  return TRUE;
}

static gboolean
scan_literal (Scanner    *s,
              GString    *raw,
              const char *word)
{
  gsize len = strlen (word);

  if ((gsize) (s->end - s->p) < len || memcmp (s->p, word, len) != 0)
    return FALSE;
  s->p += len;
  if (raw != NULL)
    g_string_append_len (raw, word, len);
  return TRUE;
}

typedef enum {
  KIND_OBJECT, KIND_ARRAY, KIND_STRING, KIND_NUMBER, KIND_BOOLEAN, KIND_NULL, KIND_INVALID
} Kind;

static Kind
peek_kind (Scanner *s)
{
  if (s->p >= s->end)
    return KIND_INVALID;
  switch (*s->p)
    {
    case '{': return KIND_OBJECT;
    case '[': return KIND_ARRAY;
    case '"': return KIND_STRING;
    case 't': case 'f': return KIND_BOOLEAN;
    case 'n': return KIND_NULL;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      return KIND_NUMBER;
    default:
      return KIND_INVALID;
    }
}

static const char *
kind_name (Kind kind)
{
  static const char *names[] = {
    "an object", "an array", "a string", "a number", "a boolean", "null", "not a value",
  };

  return names[kind];
}

/* Scans any value, appending its compact text to raw (may be NULL). */
static gboolean
scan_value (Scanner *s,
            GString *raw,
            guint    depth)
{
  switch (peek_kind (s))
    {
    case KIND_STRING:
      return scan_string (s, raw, NULL);

    case KIND_NUMBER:
      {
        gboolean is_integer;
        return scan_number (s, raw, NULL, &is_integer, NULL);
      }

    case KIND_BOOLEAN:
      return scan_literal (s, raw, *s->p == 't' ? "true" : "false");

    case KIND_NULL:
      return scan_literal (s, raw, "null");

    case KIND_OBJECT:
    case KIND_ARRAY:
      {
        gboolean object = *s->p == '{';
        char close = object ? '}' : ']';
        gboolean first = TRUE;

        if (depth >= MAX_DEPTH)
          return FALSE;
        if (raw)
          g_string_append_c (raw, *s->p);
        s->p++;
        skip_ws (s);
        if (s->p < s->end && *s->p == close)
          {
            s->p++;
            if (raw)
              g_string_append_c (raw, close);
            return TRUE;
          }
        for (;;)
          {
            if (!first && raw)
              g_string_append_c (raw, ',');
            first = FALSE;
            skip_ws (s);
            if (object)
              {
                if (peek_kind (s) != KIND_STRING || !scan_string (s, raw, NULL))
                  return FALSE;
                skip_ws (s);
                if (s->p >= s->end || *s->p != ':')
                  return FALSE;
                s->p++;
                if (raw)
                  g_string_append_c (raw, ':');
                skip_ws (s);
              }
            if (!scan_value (s, raw, depth + 1))
              return FALSE;
            skip_ws (s);
            if (s->p >= s->end)
              return FALSE;
            if (*s->p == ',')
              {
                s->p++;
                continue;
              }
            if (*s->p == close)
              {
                s->p++;
                if (raw)
                  g_string_append_c (raw, close);
                return TRUE;
              }
            return FALSE;
          }
      }

    case KIND_INVALID:
    default:
      return FALSE;
    }
}

/* Iterates the members of the object at s->p: calls member() on each with
 * the decoded name in s->key; member() scans the value.  Nested calls
 * reuse s->key, so member() must be done with the name before it scans a
 * nested object. */
typedef gboolean (*MemberFunc) (Scanner  *s,
                                gpointer  user_data);

static gboolean
scan_members (Scanner    *s,
              MemberFunc  member,
              gpointer    user_data)
{
  s->p++; /* '{' */
  skip_ws (s);
  if (s->p < s->end && *s->p == '}')
    {
      s->p++;
      return TRUE;
    }

  for (;;)
    {
      skip_ws (s);
      g_string_truncate (s->key, 0);
      if (peek_kind (s) != KIND_STRING || !scan_string (s, NULL, s->key))
        return FALSE;
      skip_ws (s);
      if (s->p >= s->end || *s->p != ':')
        return FALSE;
      s->p++;
      skip_ws (s);
      if (!member (s, user_data))
        return FALSE;
      skip_ws (s);
      if (s->p >= s->end)
        return FALSE;
      if (*s->p == ',')
        {
          s->p++;
          continue;
        }
      if (*s->p == '}')
        {
          s->p++;
          return TRUE;
        }
      return FALSE;
    }
}

/* ---- events ------------------------------------------------------------- */

typedef struct
{
  gssize   id, source, type;      /* offsets into scratch, or -1 */
  gssize   data, metadata;
  gsize    data_len, metadata_len;
  gint64   timestamp;
  gboolean has_timestamp;
  gboolean first;                 /* for the members being copied */
} EventParts;

static gboolean
is_lower_snake (const char *str)
{
  if (!g_ascii_islower (*str))
    return FALSE;
  for (; *str != '\0'; str++)
    if (!g_ascii_islower (*str) && !g_ascii_isdigit (*str) && *str != '_')
      return FALSE;
  return TRUE;
}

/* A string member, decoded into scratch with a NUL; *offset is -1 for
 * null.  Errors of meaning for other types and lengths. */
static gboolean
take_string (Scanner    *s,
             const char *field,
             gsize       max_len,
             gssize     *offset)
{
  Kind kind = peek_kind (s);
  gsize begin;

  *offset = -1;
  if (kind == KIND_NULL)
    return scan_literal (s, NULL, "null");
  if (kind != KIND_STRING)
    {
      meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD, "Field “%s” must be a string, not %s", field, kind_name (kind));
      return scan_value (s, NULL, 1);
    }

  begin = s->scratch->len;
  if (!scan_string (s, NULL, s->scratch))
    return FALSE;
  /* characters <= bytes: count them only when the bytes are too many */
  if (s->scratch->len == begin ||
      (s->scratch->len - begin > max_len &&
       g_utf8_strlen (s->scratch->str + begin, s->scratch->len - begin) > (glong) max_len))
    meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD, "Field “%s” must be 1 to %" G_GSIZE_FORMAT " characters long",
                   field, max_len);
  g_string_append_c (s->scratch, '\0');
  *offset = begin;

  return TRUE;
}

static void
begin_member (Scanner  *s,
              gboolean *first)
{
  if (!*first)
    g_string_append_c (s->scratch, ',');
  *first = FALSE;
  fl_json_append_string (s->scratch, s->key->str);
  g_string_append_c (s->scratch, ':');
}

static gboolean
data_member (Scanner  *s,
             gpointer  user_data)
{
  EventParts *parts = user_data;
  Kind kind = peek_kind (s);
  FieldSpan field = { .name = s->names->len, .text = -1 };
  gboolean is_integer;

  begin_member (s, &parts->first);

  if (kind != KIND_NUMBER && kind != KIND_STRING)
    return scan_value (s, s->scratch, 2);

  g_string_append_len (s->names, s->key->str, s->key->len + 1);
  if (kind == KIND_NUMBER)
    {
      if (!scan_number (s, s->scratch, &field.number, &is_integer, NULL))
        return FALSE;
    }
  else
    {
      field.text = s->names->len;
      if (!scan_string (s, s->scratch, s->names))
        return FALSE;
      g_string_append_c (s->names, '\0');
    }
  g_array_append_val (s->fields, field);

  return TRUE;
}

static gboolean
metadata_member (Scanner  *s,
                 gpointer  user_data)
{
  EventParts *parts = user_data;
  Kind kind = peek_kind (s);
  const char *key = s->key->str;

  if (g_str_equal (key, "version") && kind != KIND_STRING)
    meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                   "Field “metadata.version” must be a string, not %s", kind_name (kind));
  else if (g_str_equal (key, "priority"))
    {
      gsize begin = s->names->len;
      gboolean ok = FALSE;

      begin_member (s, &parts->first);
      if (kind == KIND_STRING)
        {
          if (!scan_string (s, s->scratch, s->names))
            return FALSE;
          ok = g_str_equal (s->names->str + begin, "low") || g_str_equal (s->names->str + begin, "medium") ||
               g_str_equal (s->names->str + begin, "high");
          g_string_truncate (s->names, begin);
        }
      else if (!scan_value (s, s->scratch, 2))
        return FALSE;
      if (!ok)
        meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                       "Field “metadata.priority” must be “low”, “medium” or “high”");
      return TRUE;
    }
  else if (g_str_equal (key, "tags"))
    {
      guint index = 0;

      begin_member (s, &parts->first);
      if (kind != KIND_ARRAY)
        {
          meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                         "Field “metadata.tags” must be an array of strings, not %s", kind_name (kind));
          return scan_value (s, s->scratch, 2);
        }
      g_string_append_c (s->scratch, '[');
      s->p++;
      skip_ws (s);
      if (s->p < s->end && *s->p == ']')
        s->p++;
      else
        for (;; index++)
          {
            skip_ws (s);
            if (index > 0)
              g_string_append_c (s->scratch, ',');
            if (peek_kind (s) != KIND_STRING)
              meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD, "Field “metadata.tags[%u]” must be a string", index);
            if (!scan_value (s, s->scratch, 3))
              return FALSE;
            skip_ws (s);
            if (s->p < s->end && *s->p == ',')
              {
                s->p++;
                continue;
              }
            if (s->p < s->end && *s->p == ']')
              {
                s->p++;
                break;
              }
            return FALSE;
          }
      g_string_append_c (s->scratch, ']');
      return TRUE;
    }

  begin_member (s, &parts->first);
  return scan_value (s, s->scratch, 2);
}

static gboolean
copy_object (Scanner    *s,
             EventParts *parts,
             const char *field,
             MemberFunc  member,
             gssize     *offset,
             gsize      *len)
{
  Kind kind = peek_kind (s);
  gsize begin = s->scratch->len;

  *offset = -1;
  if (kind == KIND_NULL)
    return scan_literal (s, NULL, "null");
  if (kind != KIND_OBJECT)
    {
      meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD, "Field “%s” must be an object, not %s", field, kind_name (kind));
      return scan_value (s, NULL, 1);
    }

  g_string_append_c (s->scratch, '{');
  parts->first = TRUE;
  if (!scan_members (s, member, parts))
    return FALSE;
  g_string_append_c (s->scratch, '}');
  *len = s->scratch->len - begin;
  g_string_append_c (s->scratch, '\0');
  *offset = begin;

  return TRUE;
}

static gboolean
event_member (Scanner  *s,
              gpointer  user_data)
{
  EventParts *parts = user_data;
  const char *key = s->key->str;

  switch (key[0])
    {
    case 'i':
      if (g_str_equal (key, "id"))
        return take_string (s, "id", FL_EVENT_MAX_ID_LENGTH, &parts->id);
      break;
    case 's':
      if (g_str_equal (key, "source"))
        return take_string (s, "source", MAX_SOURCE_LENGTH, &parts->source);
      break;
    case 't':
      if (g_str_equal (key, "type"))
        return take_string (s, "type", MAX_TYPE_LENGTH, &parts->type);
      if (g_str_equal (key, "timestamp"))
        {
          Kind kind = peek_kind (s);
          gboolean is_integer = FALSE;
          double value;

          if (kind == KIND_NULL)
            {
              parts->has_timestamp = FALSE;
              return scan_literal (s, NULL, "null");
            }
          if (kind != KIND_NUMBER)
            {
              meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                             "Field “timestamp” must be an integer (milliseconds since the Unix epoch), not %s",
                             kind_name (kind));
              return scan_value (s, NULL, 1);
            }
          if (!scan_number (s, NULL, &value, &is_integer, &parts->timestamp))
            return FALSE;
          if (!is_integer)
            meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “timestamp” must be an integer (milliseconds since the Unix epoch), not a fraction");
          else if (parts->timestamp < 0 || parts->timestamp > MAX_TIMESTAMP)
            meaning_error (s, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “timestamp” must be milliseconds since the Unix epoch, between 0 and year 9999");
          parts->has_timestamp = TRUE;
          return TRUE;
        }
      break;
    case 'd':
      if (g_str_equal (key, "data"))
        {
          g_array_set_size (s->fields, 0);
          g_string_truncate (s->names, 0);
          return copy_object (s, parts, "data", data_member, &parts->data, &parts->data_len);
        }
      break;
    case 'm':
      if (g_str_equal (key, "metadata"))
        return copy_object (s, parts, "metadata", metadata_member, &parts->metadata, &parts->metadata_len);
      break;
    default:
      break;
    }

  /* seq, receivedAt and unknown members are dropped */
  return scan_value (s, NULL, 1);
}

/* Scans one value at s->p as an event.  Returns FALSE on a syntax error;
 * otherwise *event is set, or *error when the value is not a valid
 * event. */
static gboolean
scan_event (Scanner                   *s,
            const FlEventParseOptions *options,
            FlEvent                  **event,
            GError                   **error)
{
  EventParts parts = { -1, -1, -1, -1, -1, 0, 0, 0, FALSE, TRUE };
  Kind kind = peek_kind (s);
  g_autofree char *assigned_id = NULL;
  g_autofree FlEventField *fields = NULL;
  const char *id, *source, *type;

  *event = NULL;
  g_string_truncate (s->scratch, 0);
  g_string_truncate (s->names, 0);
  g_array_set_size (s->fields, 0);
  g_clear_error (&s->error);

  if (kind != KIND_OBJECT)
    {
      if (!scan_value (s, NULL, 0))
        return FALSE;
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                   "An event must be a JSON object, not %s", kind_name (kind));
      return TRUE;
    }

  if (!scan_members (s, event_member, &parts))
    return FALSE;

  if (s->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&s->error));
      return TRUE;
    }

  /* id: the idempotency key */
  if (parts.id < 0)
    {
      if (!options->assign_ids)
        {
          g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD,
                               "Field “id” is required (it is the idempotency key)");
          return TRUE;
        }
      assigned_id = g_uuid_string_random ();
    }

  if (parts.type < 0)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD, "Field “type” is required");
      return TRUE;
    }
  type = s->scratch->str + parts.type;
  if (!is_lower_snake (type))
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD,
                           "Field “type” must be a lower_snake word, like “telemetry”");
      return TRUE;
    }

  /* source: the device; on the device channel it must be the sender */
  if (parts.source < 0)
    {
      if (options->device_id == NULL)
        {
          g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD, "Field “source” is required");
          return TRUE;
        }
      source = options->device_id;
    }
  else
    {
      source = s->scratch->str + parts.source;
      if (options->device_id != NULL && !g_str_equal (source, options->device_id))
        {
          g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_FORBIDDEN,
                       "Device “%s” may not send events as “%s”", options->device_id, source);
          return TRUE;
        }
    }

  id = assigned_id ? assigned_id : s->scratch->str + parts.id;

  fields = g_new (FlEventField, s->fields->len + 1);
  for (guint i = 0; i < s->fields->len; i++)
    {
      FieldSpan *span = &g_array_index (s->fields, FieldSpan, i);

      fields[i].name = s->names->str + span->name;
      fields[i].text = span->text >= 0 ? s->names->str + span->text : NULL;
      fields[i].number = span->number;
    }

  *event = _fl_event_new_from_parts (id,
                                     parts.has_timestamp ? parts.timestamp : options->received_at,
                                     source, type,
                                     parts.data >= 0 ? s->scratch->str + parts.data : "{}",
                                     parts.data >= 0 ? parts.data_len : 2,
                                     parts.metadata >= 0 ? s->scratch->str + parts.metadata : NULL,
                                     parts.metadata_len,
                                     fields, s->fields->len);
  return TRUE;
}

static void
scanner_init (Scanner    *s,
              const char *body,
              gsize       length)
{
  s->start = s->p = body;
  s->end = body + length;
  s->scratch = g_string_sized_new (1024);
  s->names = g_string_sized_new (256);
  s->key = g_string_sized_new (64);
  s->fields = g_array_new (FALSE, FALSE, sizeof (FieldSpan));
  s->error = NULL;
}

static void
scanner_clear (Scanner *s)
{
  g_string_free (s->scratch, TRUE);
  g_string_free (s->names, TRUE);
  g_string_free (s->key, TRUE);
  g_array_unref (s->fields);
  g_clear_error (&s->error);
}

static void
set_malformed (Scanner  *s,
               GError  **error)
{
  g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
               "The request body is not valid JSON (near byte %" G_GSIZE_FORMAT ")",
               (gsize) (s->p - s->start));
}

static void
clear_item (gpointer data)
{
  FlEventParseItem *item = data;

  g_clear_pointer (&item->event, fl_event_unref);
  g_clear_error (&item->error);
}

/* Scans one element, checks its size and appends it to items.  FALSE on
 * a syntax error. */
static gboolean
scan_item (Scanner                   *s,
           const FlEventParseOptions *options,
           gsize                      max_event_size,
           GArray                    *items)
{
  FlEventParseItem item = { .index = items->len };
  const char *begin = s->p;

  if (!scan_event (s, options, &item.event, &item.error))
    {
      g_clear_pointer (&item.event, fl_event_unref);
      g_clear_error (&item.error);
      return FALSE;
    }

  if ((gsize) (s->p - begin) > max_event_size)
    {
      g_clear_pointer (&item.event, fl_event_unref);
      g_clear_error (&item.error);
      g_set_error (&item.error, FL_CODEC_ERROR, FL_CODEC_ERROR_TOO_LARGE,
                   "The event is %" G_GSIZE_FORMAT " bytes; the limit is %" G_GSIZE_FORMAT,
                   (gsize) (s->p - begin), max_event_size);
    }

  g_array_append_val (items, item);
  return TRUE;
}

GArray *
fl_event_parse_batch (const char                *body,
                      gsize                      length,
                      const FlEventParseOptions *options,
                      GError                   **error)
{
  gsize max_event_size = options->max_event_size ? options->max_event_size : FL_EVENT_DEFAULT_MAX_EVENT_SIZE;
  g_autoptr (GArray) items = g_array_new (FALSE, TRUE, sizeof (FlEventParseItem));
  Scanner s;

  g_array_set_clear_func (items, clear_item);
  scanner_init (&s, body, length);

  skip_ws (&s);
  if (s.p == s.end)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED, "The request body is empty");
      goto fail;
    }

  if (*s.p == '[')
    {
      /* An array: a syntax error anywhere leaves no way to find the next
       * element, so the body fails as a whole. */
      s.p++;
      skip_ws (&s);
      if (s.p < s.end && *s.p == ']')
        s.p++;
      else
        for (;;)
          {
            skip_ws (&s);
            if (!scan_item (&s, options, max_event_size, items))
              goto malformed;
            skip_ws (&s);
            if (s.p < s.end && *s.p == ',')
              {
                s.p++;
                continue;
              }
            if (s.p < s.end && *s.p == ']')
              {
                s.p++;
                break;
              }
            goto malformed;
          }
      skip_ws (&s);
      if (s.p != s.end)
        goto malformed;
    }
  else
    {
      /* One event, or NDJSON: a line that is not JSON is reported by its
       * index and scanning resumes on the next line. */
      gboolean only_syntax_error = FALSE;

      while (s.p < s.end)
        {
          const char *line = s.p;
          guint n_before = items->len;
          FlEventParseItem item = { .index = n_before };
          const char *newline;

          if (scan_item (&s, options, max_event_size, items) &&
              (s.p == s.end || *s.p == '\n' || *s.p == '\r' || *s.p == ' ' || *s.p == '\t'))
            {
              skip_ws (&s);
              continue;
            }

          g_array_set_size (items, n_before);
          g_set_error (&item.error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                       "Line %u is not valid JSON", n_before + 1);
          g_array_append_val (items, item);
          only_syntax_error = n_before == 0;
          newline = memchr (line, '\n', s.end - line);
          s.p = newline ? newline + 1 : s.end;
          skip_ws (&s);
        }

      /* a body that is one broken value is simply not JSON */
      if (items->len == 1 && only_syntax_error)
        {
          s.p = s.start;
          goto malformed;
        }
    }

  scanner_clear (&s);
  return g_steal_pointer (&items);

malformed:
  set_malformed (&s, error);
fail:
  scanner_clear (&s);
  return NULL;
}

FlEvent *
fl_event_parse (const char                *text,
                gsize                      length,
                const FlEventParseOptions *options,
                GError                   **error)
{
  Scanner s;
  FlEvent *event = NULL;
  GError *local_error = NULL;

  scanner_init (&s, text, length);
  skip_ws (&s);
  if (!scan_event (&s, options, &event, &local_error) || (skip_ws (&s), s.p != s.end))
    {
      g_clear_pointer (&event, fl_event_unref);
      g_clear_error (&local_error);
      set_malformed (&s, &local_error);
    }
  scanner_clear (&s);

  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }

  return event;
}

FlEvent *
fl_event_from_json_node (JsonNode                  *node,
                         const FlEventParseOptions *options,
                         GError                   **error)
{
  g_autofree char *text = NULL;
  gsize len;

  g_return_val_if_fail (node != NULL, NULL);
  g_return_val_if_fail (options != NULL, NULL);

  text = fl_json_to_string (node, &len);
  return fl_event_parse (text, len, options, error);
}
