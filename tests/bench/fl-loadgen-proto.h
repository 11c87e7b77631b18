/* fl-loadgen-proto.h: wire-level helpers of the relay load generator.
 *
 * A fast PRNG and UUIDv4 formatter, growable byte buffers, an incremental
 * HTTP/1.1 response parser, RFC 6455 client framing (masked frames out,
 * unmasked frames in) and a few cheap scanners for the relay's fixed-shape
 * JSON answers.  Nothing here does I/O: fl-loadgen.c owns the sockets, and
 * fl-loadgen-selftest.c checks these pieces on their own.
 */
#pragma once

#include <string.h>

#include <glib.h>

G_BEGIN_DECLS

#define FL_LOADGEN_ERROR (fl_loadgen_error_quark ())

typedef enum
{
  FL_LOADGEN_ERROR_PROTOCOL,   /* the peer broke HTTP or RFC 6455 */
  FL_LOADGEN_ERROR_BAD_ANSWER, /* well-formed, but not what the contract says */
} FlLoadgenError;

GQuark fl_loadgen_error_quark (void);

/* ---- PRNG and ids ------------------------------------------------------ */

/* xoshiro256**: fast, and good enough for ids and masking keys */
typedef struct
{
  guint64 s[4];
} FlRng;

void fl_rng_seed (FlRng  *rng,
                  guint64 seed);

static inline guint64
fl_rng_rotl (guint64 x,
             int     k)
{
  return (x << k) | (x >> (64 - k));
}

static inline guint64
fl_rng_next (FlRng *rng)
{
  guint64 *s = rng->s;
  guint64  result = fl_rng_rotl (s[1] * 5, 7) * 9;
  guint64  t = s[1] << 17;

  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = fl_rng_rotl (s[3], 45);
  return result;
}

/* Uniform enough for small bounds */
static inline guint32
fl_rng_below (FlRng  *rng,
              guint32 bound)
{
  return (guint32) (((fl_rng_next (rng) >> 32) * bound) >> 32);
}

#define FL_UUID_LEN 36

/* Writes 36 characters (no NUL): a random RFC 9562 version 4 UUID */
void fl_uuid4_format (FlRng *rng,
                      char  *out);

/* ---- byte buffers ---------------------------------------------------- */

typedef struct
{
  char *data;
  gsize len; /* bytes held, from data[0] */
  gsize off; /* bytes at the front already consumed (sent or parsed) */
  gsize cap;
} FlBuf;

void fl_buf_clear (FlBuf *buf);
/* Room for extra more bytes after data + len; compacts or grows */
char *fl_buf_reserve (FlBuf *buf,
                      gsize  extra);
void  fl_buf_consume (FlBuf *buf,
                      gsize  n);

static inline void
fl_buf_reset (FlBuf *buf)
{
  buf->len = buf->off = 0;
}

static inline const char *
fl_buf_head (const FlBuf *buf)
{
  return buf->data + buf->off;
}

static inline gsize
fl_buf_pending (const FlBuf *buf)
{
  return buf->len - buf->off;
}

static inline void
fl_buf_append (FlBuf      *buf,
               const void *data,
               gsize       n)
{
  memcpy (fl_buf_reserve (buf, n), data, n);
  buf->len += n;
}

#define fl_buf_append_lit(buf, lit) fl_buf_append ((buf), "" lit, sizeof (lit) - 1)

static inline void
fl_buf_append_str (FlBuf      *buf,
                   const char *str)
{
  fl_buf_append (buf, str, strlen (str));
}

void fl_buf_append_u64 (FlBuf  *buf,
                        guint64 value);
void fl_buf_append_i64 (FlBuf *buf,
                        gint64 value);
void fl_buf_append_printf (FlBuf      *buf,
                           const char *format,
                           ...) G_GNUC_PRINTF (2, 3);

/* ---- HTTP/1.1 responses ------------------------------------------------ */

typedef enum
{
  FL_PARSE_ERROR = -1,
  FL_PARSE_INCOMPLETE = 0,
  FL_PARSE_DONE = 1,
} FlParseStatus;

typedef struct
{
  int         status;
  gboolean    keep_alive;
  gboolean    upgrade_websocket; /* "Upgrade: websocket" was present */
  const char *ws_accept;         /* Sec-WebSocket-Accept value, not NUL-terminated */
  gsize       ws_accept_len;
  const char *body; /* into the input, or into scratch for chunked bodies */
  gsize       body_len;
  gsize       consumed; /* bytes of the input this response used */
} FlHttpResponse;

/* Parses one response at the start of data.  Bodies are framed by
 * Content-Length or chunked encoding (decoded into scratch); 1xx, 204 and
 * 304 have none.  A response without either is refused: the relay speaks
 * keep-alive HTTP/1.1. */
FlParseStatus fl_http_parse_response (const char     *data,
                                      gsize           len,
                                      FlBuf          *scratch,
                                      FlHttpResponse *response,
                                      GError        **error);

/* ---- RFC 6455 -------------------------------------------------------- */

enum
{
  FL_WS_CONTINUATION = 0x0,
  FL_WS_TEXT = 0x1,
  FL_WS_BINARY = 0x2,
  FL_WS_CLOSE = 0x8,
  FL_WS_PING = 0x9,
  FL_WS_PONG = 0xA,
};

typedef struct
{
  gboolean    fin;
  guint8      opcode;
  const char *payload;
  gsize       payload_len;
  gsize       consumed;
} FlWsFrame;

/* Parses one server-to-client frame at the start of data.  Refuses masked
 * frames, reserved bits (no extension is negotiated), unknown opcodes,
 * fragmented or oversized control frames and payloads over max_payload. */
FlParseStatus fl_ws_parse_frame (const char *data,
                                 gsize       len,
                                 gsize       max_payload,
                                 FlWsFrame  *frame,
                                 GError    **error);

/* Appends one client frame (FIN set) masked with mask */
void fl_ws_append_frame (FlBuf        *out,
                         guint8        opcode,
                         const void   *payload,
                         gsize         len,
                         const guint8 *mask);

/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key */
char *fl_ws_accept_for_key (const char *key);

/* ---- JSON scanners --------------------------------------------------- */

/* These look for the first "key" in the text, so they suit only the
 * relay's small fixed-shape answers where that key is unique. */
gboolean fl_json_find_int (const char *data,
                           gsize       len,
                           const char *key,
                           gint64     *value);
/* The raw (still escaped) characters of "key": "value" */
gboolean fl_json_find_string (const char  *data,
                              gsize        len,
                              const char  *key,
                              const char **value,
                              gsize       *value_len);
/* 1: "key": [] ; 0: a non-empty array; -1: missing or not an array */
int fl_json_array_is_empty (const char *data,
                            gsize       len,
                            const char *key);

typedef struct
{
  gint64 accepted;
  gint64 duplicates;
  guint  rejected;
  char  *first_rejection; /* "#3 bad_event: message", or NULL */
} FlIngestResult;

/* Parses {"accepted": n, "duplicates": n, "rejected": [...]} (the HTTP
 * answer and the WebSocket ack share it), scanning first and falling back
 * to json-glib when something was rejected. */
gboolean fl_ingest_result_parse (const char     *data,
                                 gsize           len,
                                 FlIngestResult *result,
                                 GError        **error);
void     fl_ingest_result_clear (FlIngestResult *result);

/* ---- figures --------------------------------------------------------- */

/* Nearest-rank percentile (0 < p <= 100) of sorted values */
guint64 fl_percentile (const guint64 *sorted,
                       gsize          n,
                       double         p);
void    fl_sort_u64 (guint64 *values,
                     gsize    n);

/* fl-loadgen-selftest.c: `fl-loadgen --self-test` runs these checks */
int fl_loadgen_self_test (int    argc,
                          char **argv);

G_END_DECLS
