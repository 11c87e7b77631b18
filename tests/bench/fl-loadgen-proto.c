#define G_LOG_DOMAIN "fl-loadgen-proto"

#include "config.h"

#include "fl-loadgen-proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-glib/json-glib.h>

G_DEFINE_QUARK (fl - loadgen - error - quark, fl_loadgen_error)

/* ---- PRNG and ids ------------------------------------------------------ */

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void
fl_rng_seed (FlRng  *rng,
             guint64 seed)
{
  for (guint i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&seed);
}

static const char hex_digits[] = "0123456789abcdef";

static inline void
put_hex (char   *out,
         guint64 value,
         int     digits)
{
  for (int i = digits - 1; i >= 0; i--)
    {
      out[i] = hex_digits[value & 0xf];
      value >>= 4;
    }
}

void
fl_uuid4_format (FlRng *rng,
                 char  *out)
{
  guint64 hi = fl_rng_next (rng);
  guint64 lo = fl_rng_next (rng);

  /* version 4 in the time_hi nibble, variant 10xx in clock_seq */
  hi = (hi & ~0xf000ull) | 0x4000ull;
  lo = (lo & ~(0xc000ull << 48)) | (0x8000ull << 48);

  put_hex (out, hi >> 32, 8);
  out[8] = '-';
  put_hex (out + 9, (hi >> 16) & 0xffff, 4);
  out[13] = '-';
  put_hex (out + 14, hi & 0xffff, 4);
  out[18] = '-';
  put_hex (out + 19, lo >> 48, 4);
  out[23] = '-';
  put_hex (out + 24, lo & 0xffffffffffffull, 12);
}

/* ---- byte buffers ---------------------------------------------------- */

void
fl_buf_clear (FlBuf *buf)
{
  g_clear_pointer (&buf->data, g_free);
  buf->len = buf->off = buf->cap = 0;
}

char *
fl_buf_reserve (FlBuf *buf,
                gsize  extra)
{
  if (buf->cap - buf->len >= extra)
    return buf->data + buf->len;

  if (buf->off > 0)
    {
      memmove (buf->data, buf->data + buf->off, buf->len - buf->off);
      buf->len -= buf->off;
      buf->off = 0;
      if (buf->cap - buf->len >= extra)
        return buf->data + buf->len;
    }

  gsize cap = MAX (buf->cap, 256);
  while (cap - buf->len < extra)
    cap *= 2;
  buf->data = g_realloc (buf->data, cap);
  buf->cap = cap;
  return buf->data + buf->len;
}

void
fl_buf_consume (FlBuf *buf,
                gsize  n)
{
  g_assert (n <= buf->len - buf->off);
  buf->off += n;
  if (buf->off == buf->len)
    buf->off = buf->len = 0;
}

void
fl_buf_append_u64 (FlBuf  *buf,
                   guint64 value)
{
  char tmp[20];
  int  n = 0;

  do
    {
      tmp[sizeof tmp - 1 - n++] = (char) ('0' + value % 10);
      value /= 10;
    }
  while (value != 0);
  fl_buf_append (buf, tmp + sizeof tmp - n, n);
}

void
fl_buf_append_i64 (FlBuf *buf,
                   gint64 value)
{
  if (value < 0)
    {
      fl_buf_append_lit (buf, "-");
      fl_buf_append_u64 (buf, (guint64) 0 - (guint64) value);
    }
  else
    fl_buf_append_u64 (buf, (guint64) value);
}

void
fl_buf_append_printf (FlBuf      *buf,
                      const char *format,
                      ...)
{
  va_list args;
  int     n;

  va_start (args, format);
  n = g_vsnprintf (NULL, 0, format, args);
  va_end (args);
  g_assert (n >= 0);

  char *dest = fl_buf_reserve (buf, (gsize) n + 1);
  va_start (args, format);
  g_vsnprintf (dest, (gulong) n + 1, format, args);
  va_end (args);
  buf->len += (gsize) n;
}

/* ---- HTTP/1.1 responses ------------------------------------------------ */

#define MAX_HEAD_SIZE (64 * 1024)

static gboolean
token_equal (const char *p,
             gsize       len,
             const char *token)
{
  return strlen (token) == len && g_ascii_strncasecmp (p, token, len) == 0;
}

/* Does the comma-separated header value contain token? */
static gboolean
list_has_token (const char *value,
                gsize       len,
                const char *token)
{
  const char *end = value + len;
  const char *p = value;

  while (p < end)
    {
      const char *comma = memchr (p, ',', (gsize) (end - p));
      const char *item_end = comma ? comma : end;
      const char *a = p;
      const char *b = item_end;

      while (a < b && (*a == ' ' || *a == '\t'))
        a++;
      while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
      if (token_equal (a, (gsize) (b - a), token))
        return TRUE;
      p = comma ? comma + 1 : end;
    }
  return FALSE;
}

static gboolean
parse_decimal (const char *p,
               gsize       len,
               guint64    *value)
{
  guint64 v = 0;

  if (len == 0 || len > 18)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!g_ascii_isdigit (p[i]))
        return FALSE;
      v = v * 10 + (guint64) (p[i] - '0');
    }
  *value = v;
  return TRUE;
}

/* Decodes a chunked body starting at data; *consumed includes trailers */
static FlParseStatus
parse_chunked (const char *data,
               gsize       len,
               FlBuf      *scratch,
               gsize      *consumed,
               GError    **error)
{
  gsize pos = 0;

  fl_buf_reset (scratch);
  for (;;)
    {
      const char *line_end = g_strstr_len (data + pos, (gssize) (len - pos), "\r\n");
      guint64     size = 0;
      gsize       digits = 0;

      if (line_end == NULL)
        {
          if (len - pos > 1024)
            goto bad;
          return FL_PARSE_INCOMPLETE;
        }
      for (const char *p = data + pos; p < line_end && g_ascii_isxdigit (*p); p++)
        {
          if (++digits > 12)
            goto bad;
          size = size * 16 + (guint64) g_ascii_xdigit_value (*p);
        }
      if (digits == 0)
        goto bad;
      pos = (gsize) (line_end - data) + 2;

      if (size == 0)
        {
          /* trailers, then an empty line */
          for (;;)
            {
              const char *end = g_strstr_len (data + pos, (gssize) (len - pos), "\r\n");
              if (end == NULL)
                return FL_PARSE_INCOMPLETE;
              gboolean empty = end == data + pos;
              pos = (gsize) (end - data) + 2;
              if (empty)
                {
                  *consumed = pos;
                  return FL_PARSE_DONE;
                }
            }
        }

      if (len - pos < size + 2)
        return FL_PARSE_INCOMPLETE;
      fl_buf_append (scratch, data + pos, size);
      pos += size;
      if (data[pos] != '\r' || data[pos + 1] != '\n')
        goto bad;
      pos += 2;
    }

bad:
  g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                       "malformed chunked body");
  return FL_PARSE_ERROR;
}

FlParseStatus
fl_http_parse_response (const char     *data,
                        gsize           len,
                        FlBuf          *scratch,
                        FlHttpResponse *response,
                        GError        **error)
{
  const char *head_end;
  const char *line;
  const char *line_end;
  gsize       head_len;
  gboolean    chunked = FALSE;
  gboolean    have_length = FALSE;
  guint64     content_length = 0;

  memset (response, 0, sizeof *response);

  head_end = len >= 4 ? memmem (data, len, "\r\n\r\n", 4) : NULL;
  if (head_end == NULL)
    {
      if (len > MAX_HEAD_SIZE)
        {
          g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                               "response head too large");
          return FL_PARSE_ERROR;
        }
      return FL_PARSE_INCOMPLETE;
    }
  head_len = (gsize) (head_end - data) + 4;

  /* "HTTP/1.1 200 OK" */
  line_end = memchr (data, '\r', head_len);
  if ((gsize) (line_end - data) < 12 || memcmp (data, "HTTP/1.", 7) != 0 || (data[7] != '0' && data[7] != '1') || data[8] != ' ' || !g_ascii_isdigit (data[9]) || !g_ascii_isdigit (data[10]) || !g_ascii_isdigit (data[11]) || (line_end - data > 12 && data[12] != ' '))
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                   "malformed status line: %.*s", (int) MIN (line_end - data, 80), data);
      return FL_PARSE_ERROR;
    }
  response->status = (data[9] - '0') * 100 + (data[10] - '0') * 10 + (data[11] - '0');
  response->keep_alive = data[7] == '1';

  for (line = line_end + 2; line < head_end + 2; line = line_end + 2)
    {
      const char *colon;
      const char *value;
      const char *value_end;
      gsize       name_len;
      gsize       value_len;

      line_end = memchr (line, '\r', (gsize) (head_end + 2 - line));
      if (line_end == NULL || line_end[1] != '\n')
        goto bad_header;
      colon = memchr (line, ':', (gsize) (line_end - line));
      if (colon == NULL || colon == line)
        goto bad_header;
      name_len = (gsize) (colon - line);
      value = colon + 1;
      value_end = line_end;
      while (value < value_end && (*value == ' ' || *value == '\t'))
        value++;
      while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
        value_end--;
      value_len = (gsize) (value_end - value);

      if (token_equal (line, name_len, "Content-Length"))
        {
          guint64 v;
          if (!parse_decimal (value, value_len, &v) || (have_length && v != content_length))
            goto bad_header;
          content_length = v;
          have_length = TRUE;
        }
      else if (token_equal (line, name_len, "Transfer-Encoding"))
        {
          if (list_has_token (value, value_len, "chunked"))
            chunked = TRUE;
        }
      else if (token_equal (line, name_len, "Connection"))
        {
          if (list_has_token (value, value_len, "close"))
            response->keep_alive = FALSE;
          else if (list_has_token (value, value_len, "keep-alive"))
            response->keep_alive = TRUE;
        }
      else if (token_equal (line, name_len, "Upgrade"))
        {
          if (list_has_token (value, value_len, "websocket"))
            response->upgrade_websocket = TRUE;
        }
      else if (token_equal (line, name_len, "Sec-WebSocket-Accept"))
        {
          response->ws_accept = value;
          response->ws_accept_len = value_len;
        }
    }

  if (response->status < 200 || response->status == 204 || response->status == 304)
    {
      response->body = data + head_len;
      response->consumed = head_len;
      return FL_PARSE_DONE;
    }

  if (chunked)
    {
      gsize         body_consumed = 0;
      FlParseStatus st = parse_chunked (data + head_len, len - head_len, scratch,
                                        &body_consumed, error);
      if (st != FL_PARSE_DONE)
        return st;
      response->body = scratch->data ? scratch->data : data + head_len;
      response->body_len = scratch->len;
      response->consumed = head_len + body_consumed;
      return FL_PARSE_DONE;
    }

  if (!have_length)
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                   "HTTP %d response has neither Content-Length nor chunked encoding",
                   response->status);
      return FL_PARSE_ERROR;
    }
  if (len - head_len < content_length)
    return FL_PARSE_INCOMPLETE;
  response->body = data + head_len;
  response->body_len = content_length;
  response->consumed = head_len + content_length;
  return FL_PARSE_DONE;

bad_header:
  g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
               "malformed response header near: %.*s",
               (int) MIN ((gsize) (head_end - line), 80), line);
  return FL_PARSE_ERROR;
}

/* ---- RFC 6455 -------------------------------------------------------- */

FlParseStatus
fl_ws_parse_frame (const char *data,
                   gsize       len,
                   gsize       max_payload,
                   FlWsFrame  *frame,
                   GError    **error)
{
  const guint8 *p = (const guint8 *) data;
  gsize         header = 2;
  guint64       payload_len;

  if (len < 2)
    return FL_PARSE_INCOMPLETE;

  frame->fin = (p[0] & 0x80) != 0;
  frame->opcode = p[0] & 0x0f;
  if ((p[0] & 0x70) != 0)
    {
      g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                           "frame with reserved bits set");
      return FL_PARSE_ERROR;
    }
  if (p[1] & 0x80)
    {
      g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                           "masked frame from the server");
      return FL_PARSE_ERROR;
    }
  switch (frame->opcode)
    {
    case FL_WS_CONTINUATION:
    case FL_WS_TEXT:
    case FL_WS_BINARY:
    case FL_WS_CLOSE:
    case FL_WS_PING:
    case FL_WS_PONG:
      break;
    default:
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                   "unknown opcode 0x%x", frame->opcode);
      return FL_PARSE_ERROR;
    }

  payload_len = p[1] & 0x7f;
  if (payload_len == 126)
    {
      if (len < 4)
        return FL_PARSE_INCOMPLETE;
      payload_len = ((guint64) p[2] << 8) | p[3];
      header = 4;
    }
  else if (payload_len == 127)
    {
      if (len < 10)
        return FL_PARSE_INCOMPLETE;
      payload_len = 0;
      for (int i = 0; i < 8; i++)
        payload_len = (payload_len << 8) | p[2 + i];
      header = 10;
      if (payload_len >> 63)
        {
          g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                               "frame length with the top bit set");
          return FL_PARSE_ERROR;
        }
    }

  if (frame->opcode >= FL_WS_CLOSE && (!frame->fin || payload_len > 125))
    {
      g_set_error_literal (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                           "fragmented or oversized control frame");
      return FL_PARSE_ERROR;
    }
  if (payload_len > max_payload)
    {
      g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL,
                   "frame payload of %" G_GUINT64_FORMAT " bytes is over the limit",
                   payload_len);
      return FL_PARSE_ERROR;
    }
  if (len - header < payload_len)
    return FL_PARSE_INCOMPLETE;

  frame->payload = data + header;
  frame->payload_len = (gsize) payload_len;
  frame->consumed = header + (gsize) payload_len;
  return FL_PARSE_DONE;
}

void
fl_ws_append_frame (FlBuf        *out,
                    guint8        opcode,
                    const void   *payload,
                    gsize         len,
                    const guint8 *mask)
{
  guint8       *dest = (guint8 *) fl_buf_reserve (out, len + 14);
  const guint8 *src = payload;
  gsize         header;
  guint8        mask8[8];
  guint64       mask64;
  gsize         i = 0;

  dest[0] = 0x80 | (opcode & 0x0f);
  if (len < 126)
    {
      dest[1] = 0x80 | (guint8) len;
      header = 2;
    }
  else if (len <= 0xffff)
    {
      dest[1] = 0x80 | 126;
      dest[2] = (guint8) (len >> 8);
      dest[3] = (guint8) len;
      header = 4;
    }
  else
    {
      dest[1] = 0x80 | 127;
      for (int k = 0; k < 8; k++)
        dest[2 + k] = (guint8) ((guint64) len >> (56 - 8 * k));
      header = 10;
    }
  memcpy (dest + header, mask, 4);
  header += 4;
  dest += header;

  /* mask eight bytes at a time; byte i is XORed with mask[i % 4] */
  memcpy (mask8, mask, 4);
  memcpy (mask8 + 4, mask, 4);
  memcpy (&mask64, mask8, 8);
  for (; i + 8 <= len; i += 8)
    {
      guint64 w;
      memcpy (&w, src + i, 8);
      w ^= mask64;
      memcpy (dest + i, &w, 8);
    }
  for (; i < len; i++)
    dest[i] = src[i] ^ mask[i & 3];

  out->len += header + len;
}

char *
fl_ws_accept_for_key (const char *key)
{
  g_autoptr (GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8                digest[20];
  gsize                 digest_len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, -1);
  g_checksum_update (sha1, (const guchar *) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", -1);
  g_checksum_get_digest (sha1, digest, &digest_len);
  return g_base64_encode (digest, digest_len);
}

/* ---- JSON scanners --------------------------------------------------- */

/* Points just past `"key"` + optional spaces + ':' + optional spaces */
static const char *
find_key_value (const char *data,
                gsize       len,
                const char *key)
{
  gsize       key_len = strlen (key);
  const char *end = data + len;
  const char *p = data;

  while (p < end)
    {
      const char *q = memmem (p, (gsize) (end - p), key, key_len);
      if (q == NULL)
        return NULL;
      p = q + key_len;
      if (q == data || q[-1] != '"' || p >= end || *p != '"')
        continue;
      p++;
      while (p < end && g_ascii_isspace (*p))
        p++;
      if (p >= end || *p != ':')
        continue;
      p++;
      while (p < end && g_ascii_isspace (*p))
        p++;
      return p;
    }
  return NULL;
}

gboolean
fl_json_find_int (const char *data,
                  gsize       len,
                  const char *key,
                  gint64     *value)
{
  const char *end = data + len;
  const char *p = find_key_value (data, len, key);
  char        tmp[40];
  gsize       n = 0;
  gboolean    integral = TRUE;

  if (p == NULL)
    return FALSE;
  while (p + n < end && n < sizeof tmp - 1 && (g_ascii_isdigit (p[n]) || p[n] == '-' || p[n] == '+' || p[n] == '.' || p[n] == 'e' || p[n] == 'E'))
    {
      if (!g_ascii_isdigit (p[n]) && !(n == 0 && p[n] == '-'))
        integral = FALSE;
      n++;
    }
  if (n == 0 || (n == 1 && p[0] == '-'))
    return FALSE;
  memcpy (tmp, p, n);
  tmp[n] = '\0';

  if (integral)
    {
      char *endptr = NULL;
      errno = 0;
      *value = g_ascii_strtoll (tmp, &endptr, 10);
      return errno == 0 && *endptr == '\0';
    }
  else
    {
      char  *endptr = NULL;
      double d = g_ascii_strtod (tmp, &endptr);
      if (*endptr != '\0' || !(d > -9.2e18 && d < 9.2e18))
        return FALSE;
      *value = (gint64) d;
      return TRUE;
    }
}

gboolean
fl_json_find_string (const char  *data,
                     gsize        len,
                     const char  *key,
                     const char **value,
                     gsize       *value_len)
{
  const char *end = data + len;
  const char *p = find_key_value (data, len, key);
  const char *q;

  if (p == NULL || p >= end || *p != '"')
    return FALSE;
  p++;
  for (q = p; q < end && *q != '"'; q++)
    if (*q == '\\')
      q++;
  if (q >= end)
    return FALSE;
  *value = p;
  *value_len = (gsize) (q - p);
  return TRUE;
}

int
fl_json_array_is_empty (const char *data,
                        gsize       len,
                        const char *key)
{
  const char *end = data + len;
  const char *p = find_key_value (data, len, key);

  if (p == NULL || p >= end || *p != '[')
    return -1;
  p++;
  while (p < end && g_ascii_isspace (*p))
    p++;
  if (p >= end)
    return -1;
  return *p == ']' ? 1 : 0;
}

static gboolean
ingest_result_parse_slow (const char     *data,
                          gsize           len,
                          FlIngestResult *result,
                          GError        **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  JsonObject            *obj;
  JsonNode              *node;

  if (!json_parser_load_from_data (parser, data, (gssize) len, error))
    return FALSE;
  node = json_parser_get_root (parser);
  if (!JSON_NODE_HOLDS_OBJECT (node))
    goto bad;
  obj = json_node_get_object (node);
  if (!json_object_has_member (obj, "accepted"))
    goto bad;
  result->accepted = json_object_get_int_member (obj, "accepted");
  result->duplicates = json_object_get_int_member_with_default (obj, "duplicates", 0);

  node = json_object_get_member (obj, "rejected");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *arr = json_node_get_array (node);

      result->rejected = json_array_get_length (arr);
      if (result->rejected > 0)
        {
          JsonNode        *first = json_array_get_element (arr, 0);
          g_autofree char *text = json_to_string (first, FALSE);
          result->first_rejection = g_steal_pointer (&text);
        }
    }
  return TRUE;

bad:
  g_set_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER,
               "not an ingest result: %.*s", (int) MIN (len, 200), data);
  return FALSE;
}

gboolean
fl_ingest_result_parse (const char     *data,
                        gsize           len,
                        FlIngestResult *result,
                        GError        **error)
{
  int empty;

  memset (result, 0, sizeof *result);
  empty = fl_json_array_is_empty (data, len, "rejected");
  if (empty != 0 && fl_json_find_int (data, len, "accepted", &result->accepted) && fl_json_find_int (data, len, "duplicates", &result->duplicates))
    return TRUE;
  return ingest_result_parse_slow (data, len, result, error);
}

void
fl_ingest_result_clear (FlIngestResult *result)
{
  g_clear_pointer (&result->first_rejection, g_free);
}

/* ---- figures --------------------------------------------------------- */

static int
compare_u64 (const void *a,
             const void *b)
{
  guint64 x = *(const guint64 *) a;
  guint64 y = *(const guint64 *) b;

  return x < y ? -1 : x > y;
}

void
fl_sort_u64 (guint64 *values,
             gsize    n)
{
  if (n > 1)
    qsort (values, n, sizeof *values, compare_u64);
}

guint64
fl_percentile (const guint64 *sorted,
               gsize          n,
               double         p)
{
  gsize rank;

  if (n == 0)
    return 0;
  rank = (gsize) ((p / 100.0) * (double) n + 0.999999999);
  rank = CLAMP (rank, 1, n);
  return sorted[rank - 1];
}
