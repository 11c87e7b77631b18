/* fl-loadgen-selftest.c: checks of the load generator's own wire code,
 * run by `fl-loadgen --self-test` (the loadgen-self-test meson test). */
#define G_LOG_DOMAIN "fl-loadgen-selftest"

#include "config.h"

#include "fl-loadgen-proto.h"

/* ---- ids ---------------------------------------------------------------- */

static void
test_uuid4 (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  FlRng                  rng;

  fl_rng_seed (&rng, 42);
  for (guint i = 0; i < 100000; i++)
    {
      char id[FL_UUID_LEN + 1];

      fl_uuid4_format (&rng, id);
      id[FL_UUID_LEN] = '\0';
      g_assert_true (g_uuid_string_is_valid (id));
      for (guint k = 0; k < FL_UUID_LEN; k++)
        {
          if (k == 8 || k == 13 || k == 18 || k == 23)
            g_assert_cmpint (id[k], ==, '-');
          else
            g_assert_true (g_ascii_isxdigit (id[k]) && !g_ascii_isupper (id[k]));
        }
      g_assert_cmpint (id[14], ==, '4');
      g_assert_true (strchr ("89ab", id[19]) != NULL);
      g_assert_true (g_hash_table_add (seen, g_strdup (id)));
    }
}

static void
test_rng_below (void)
{
  FlRng rng;
  guint counts[10] = { 0 };

  fl_rng_seed (&rng, 7);
  for (guint i = 0; i < 100000; i++)
    counts[fl_rng_below (&rng, 10)]++;
  for (guint i = 0; i < 10; i++)
    g_assert_cmpuint (counts[i], >, 9000);
}

/* ---- buffers -------------------------------------------------------------- */

static void
test_buf (void)
{
  FlBuf buf = { 0 };

  fl_buf_append_lit (&buf, "a");
  fl_buf_append_u64 (&buf, 0);
  fl_buf_append_u64 (&buf, G_MAXUINT64);
  fl_buf_append_i64 (&buf, -67);
  fl_buf_append_i64 (&buf, G_MININT64);
  fl_buf_append_printf (&buf, "|%s|", "x");
  fl_buf_append (&buf, "", 1);
  g_assert_cmpstr (buf.data, ==, "a018446744073709551615-67-9223372036854775808|x|");

  /* consuming and reserving keep the unconsumed bytes */
  fl_buf_reset (&buf);
  for (guint i = 0; i < 1000; i++)
    fl_buf_append_lit (&buf, "0123456789");
  fl_buf_consume (&buf, 9995);
  g_assert_cmpuint (fl_buf_pending (&buf), ==, 5);
  fl_buf_reserve (&buf, buf.cap);
  g_assert_cmpuint (buf.off, ==, 0);
  g_assert_cmpmem (fl_buf_head (&buf), 5, "56789", 5);
  fl_buf_consume (&buf, 5);
  g_assert_cmpuint (buf.len, ==, 0);
  fl_buf_clear (&buf);
}

/* ---- HTTP ----------------------------------------------------------------- */

/* Feeds text in pieces of step bytes; returns the parse once complete */
static FlParseStatus
parse_in_steps (const char     *text,
                gsize           step,
                FlBuf          *scratch,
                FlHttpResponse *r,
                GError        **error)
{
  gsize len = strlen (text);

  for (gsize n = step < len ? step : len;; n = MIN (n + step, len))
    {
      FlParseStatus st = fl_http_parse_response (text, n, scratch, r, error);

      if (st != FL_PARSE_INCOMPLETE || n == len)
        return st;
    }
}

static void
test_http_content_length (void)
{
  const char *text = "HTTP/1.1 200 OK\r\n"
                     "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
                     "content-type: application/json\r\n"
                     "Content-Length:  45 \r\n"
                     "\r\n"
                     "{\"accepted\":100,\"duplicates\":0,\"rejected\":[]}"
                     "HTTP/1.1 204 No Content\r\n\r\n";
  FlBuf       scratch = { 0 };

  for (gsize step = 1; step < 200; step += 13)
    {
      FlHttpResponse     r;
      g_autoptr (GError) error = NULL;

      g_assert_cmpint (parse_in_steps (text, step, &scratch, &r, &error), ==, FL_PARSE_DONE);
      g_assert_no_error (error);
      g_assert_cmpint (r.status, ==, 200);
      g_assert_true (r.keep_alive);
      g_assert_cmpmem (r.body, r.body_len, "{\"accepted\":100,\"duplicates\":0,\"rejected\":[]}", 45);

      /* the second, bodiless response follows */
      g_assert_cmpint (fl_http_parse_response (text + r.consumed, strlen (text + r.consumed),
                                               &scratch, &r, &error),
                       ==, FL_PARSE_DONE);
      g_assert_cmpint (r.status, ==, 204);
      g_assert_cmpuint (r.body_len, ==, 0);
    }
  fl_buf_clear (&scratch);
}

static void
test_http_chunked (void)
{
  const char *text = "HTTP/1.1 201 Created\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "Connection: close\r\n"
                     "\r\n"
                     "5\r\nhello\r\n"
                     "1;ext=1\r\n,\r\n"
                     "A\r\n world 123\r\n"
                     "0\r\n"
                     "X-Trailer: yes\r\n"
                     "\r\n";
  FlBuf       scratch = { 0 };

  for (gsize step = 1; step < 40; step += 3)
    {
      FlHttpResponse     r;
      g_autoptr (GError) error = NULL;

      g_assert_cmpint (parse_in_steps (text, step, &scratch, &r, &error), ==, FL_PARSE_DONE);
      g_assert_no_error (error);
      g_assert_cmpint (r.status, ==, 201);
      g_assert_false (r.keep_alive);
      g_assert_cmpmem (r.body, r.body_len, "hello, world 123", 16);
      g_assert_cmpuint (r.consumed, ==, strlen (text));
    }
  fl_buf_clear (&scratch);
}

static void
test_http_upgrade (void)
{
  /* RFC 6455 section 1.3's example, then a frame right behind the head */
  const char         text[] = "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                              "\r\n"
                              "\x81\x02hi";
  g_autofree char   *accept = fl_ws_accept_for_key ("dGhlIHNhbXBsZSBub25jZQ==");
  FlBuf              scratch = { 0 };
  FlHttpResponse     r;
  FlWsFrame          f;
  g_autoptr (GError) error = NULL;

  g_assert_cmpstr (accept, ==, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  g_assert_cmpint (fl_http_parse_response (text, sizeof text - 1, &scratch, &r, &error), ==, FL_PARSE_DONE);
  g_assert_cmpint (r.status, ==, 101);
  g_assert_true (r.upgrade_websocket);
  g_assert_cmpmem (r.ws_accept, r.ws_accept_len, accept, strlen (accept));
  g_assert_cmpuint (sizeof text - 1 - r.consumed, ==, 4);
  g_assert_cmpint (fl_ws_parse_frame (text + r.consumed, 4, 1024, &f, &error), ==, FL_PARSE_DONE);
  g_assert_cmpint (f.opcode, ==, FL_WS_TEXT);
  g_assert_cmpmem (f.payload, f.payload_len, "hi", 2);
  fl_buf_clear (&scratch);
}

static void
test_http_malformed (void)
{
  const char *bad[] = {
    "HTTP/2 200 OK\r\n\r\n",
    "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
    "HTTP/1.1 200 OK\r\n\r\nbody without a length",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
  };
  FlBuf scratch = { 0 };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      FlHttpResponse     r;
      g_autoptr (GError) error = NULL;

      g_assert_cmpint (fl_http_parse_response (bad[i], strlen (bad[i]), &scratch, &r, &error), ==, FL_PARSE_ERROR);
      g_assert_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL);
    }
  fl_buf_clear (&scratch);
}

/* ---- WebSocket ----------------------------------------------------------- */

/* Decodes one client frame as a server would */
static gsize
decode_client_frame (const guint8 *p,
                     guint8       *opcode,
                     GByteArray   *payload)
{
  gsize         len = p[1] & 0x7f;
  gsize         header = 2;
  const guint8 *mask;

  g_assert_cmpint (p[0] & 0x80, ==, 0x80); /* FIN */
  g_assert_cmpint (p[0] & 0x70, ==, 0);    /* no RSV */
  g_assert_cmpint (p[1] & 0x80, ==, 0x80); /* masked */
  *opcode = p[0] & 0x0f;
  if (len == 126)
    {
      len = (gsize) p[2] << 8 | p[3];
      g_assert_cmpuint (len, >=, 126);
      header = 4;
    }
  else if (len == 127)
    {
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | p[2 + i];
      g_assert_cmpuint (len, >, 0xffff);
      header = 10;
    }
  mask = p + header;
  g_byte_array_set_size (payload, 0);
  for (gsize i = 0; i < len; i++)
    {
      guint8 byte = p[header + 4 + i] ^ mask[i % 4];
      g_byte_array_append (payload, &byte, 1);
    }
  return header + 4 + len;
}

static void
test_ws_client_frames (void)
{
  static const gsize     sizes[] = { 0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 200003 };
  const guint8           mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
  g_autoptr (GByteArray) payload = g_byte_array_new ();
  FlBuf                  out = { 0 };
  FlRng                  rng;

  /* RFC 6455 section 5.7: a masked "Hello" */
  fl_ws_append_frame (&out, FL_WS_TEXT, "Hello", 5, mask);
  g_assert_cmpmem (out.data, out.len, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);

  fl_rng_seed (&rng, 1);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree guint8 *data = g_malloc (sizes[i] + 1);
      guint8             opcode;
      guint8             key[4];

      for (gsize k = 0; k < sizes[i]; k++)
        data[k] = (guint8) fl_rng_next (&rng);
      for (int k = 0; k < 4; k++)
        key[k] = (guint8) fl_rng_next (&rng);
      fl_buf_reset (&out);
      /* an unaligned start in the buffer */
      fl_buf_append_lit (&out, "x");
      fl_ws_append_frame (&out, FL_WS_BINARY, data, sizes[i], key);
      g_assert_cmpuint (decode_client_frame ((const guint8 *) out.data + 1, &opcode, payload), ==, out.len - 1);
      g_assert_cmpint (opcode, ==, FL_WS_BINARY);
      g_assert_cmpmem (payload->data, payload->len, data, sizes[i]);
    }
  fl_buf_clear (&out);
}

static void
test_ws_server_frames (void)
{
  g_autoptr (GError) error = NULL;
  guint8             big[10 + 70000];
  FlWsFrame          f;

  /* fragments and control frames */
  g_assert_cmpint (fl_ws_parse_frame ("\x01\x03"
                                      "abc",
                                      5, 1024, &f, &error),
                   ==, FL_PARSE_DONE);
  g_assert_false (f.fin);
  g_assert_cmpint (f.opcode, ==, FL_WS_TEXT);
  g_assert_cmpint (fl_ws_parse_frame ("\x80\x01"
                                      "d",
                                      3, 1024, &f, &error),
                   ==, FL_PARSE_DONE);
  g_assert_true (f.fin);
  g_assert_cmpint (f.opcode, ==, FL_WS_CONTINUATION);
  g_assert_cmpint (fl_ws_parse_frame ("\x89\x00", 2, 1024, &f, &error), ==, FL_PARSE_DONE);
  g_assert_cmpint (f.opcode, ==, FL_WS_PING);
  g_assert_cmpint (fl_ws_parse_frame ("\x88\x02\x03\xe8", 4, 1024, &f, &error), ==, FL_PARSE_DONE);
  g_assert_cmpint (f.opcode, ==, FL_WS_CLOSE);

  /* 16- and 64-bit lengths, incomplete until the last byte */
  big[0] = 0x81;
  big[1] = 127;
  memset (big + 2, 0, 8);
  big[7] = 0x00;
  big[8] = (70000 >> 8) & 0xff;
  big[9] = 70000 & 0xff;
  big[7] = (70000 >> 16) & 0xff;
  memset (big + 10, 'x', 70000);
  g_assert_cmpint (fl_ws_parse_frame ((char *) big, 9, 1 << 20, &f, &error), ==, FL_PARSE_INCOMPLETE);
  g_assert_cmpint (fl_ws_parse_frame ((char *) big, sizeof big - 1, 1 << 20, &f, &error), ==, FL_PARSE_INCOMPLETE);
  g_assert_cmpint (fl_ws_parse_frame ((char *) big, sizeof big, 1 << 20, &f, &error), ==, FL_PARSE_DONE);
  g_assert_cmpuint (f.payload_len, ==, 70000);
  g_assert_cmpuint (f.consumed, ==, sizeof big);
  g_assert_cmpint (fl_ws_parse_frame ("\x81\x7e\x01\x00", 4, 1024, &f, &error), ==, FL_PARSE_INCOMPLETE);

  /* refusals */
  {
    const struct
    {
      const char *data;
      gsize       len;
    } bad[] = {
      { "\x81\x81\x00\x00\x00\x00"
        "a",
        7 }, /* masked from a server */
      { "\xc1\x01"
        "a",
        3 },                                              /* RSV1 without an extension */
      { "\x83\x00", 2 },                                  /* reserved opcode */
      { "\x09\x00", 2 },                                  /* fragmented ping */
      { "\x89\x7e\x00\x7e", 4 },                          /* control frame over 125 */
      { "\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10 }, /* top bit of a 64-bit length */
      { "\x81\x7e\x08\x00", 4 },                          /* over max_payload */
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_clear_error (&error);
        g_assert_cmpint (fl_ws_parse_frame (bad[i].data, bad[i].len, 1024, &f, &error), ==, FL_PARSE_ERROR);
        g_assert_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_PROTOCOL);
      }
  }
}

/* ---- JSON scanners -------------------------------------------------------- */

static void
test_json_scan (void)
{
  const char *ack = "{\"type\" : \"ack\", \"accepted\": 50,\"duplicates\":0 ,\"rejected\" : [ ] }";
  const char *event = "{\"type\":\"event\",\"event\":{\"seq\":123456789012,\"data\":{\"sentNs\":8.64e13,\"benchSeq\":17}}}";
  const char *type;
  gsize       type_len;
  gint64      v;

  g_assert_true (fl_json_find_string (ack, strlen (ack), "type", &type, &type_len));
  g_assert_cmpmem (type, type_len, "ack", 3);
  g_assert_true (fl_json_find_int (ack, strlen (ack), "accepted", &v));
  g_assert_cmpint (v, ==, 50);
  g_assert_true (fl_json_find_int (ack, strlen (ack), "duplicates", &v));
  g_assert_cmpint (v, ==, 0);
  g_assert_cmpint (fl_json_array_is_empty (ack, strlen (ack), "rejected"), ==, 1);
  g_assert_false (fl_json_find_int (ack, strlen (ack), "missing", &v));
  g_assert_cmpint (fl_json_array_is_empty (ack, strlen (ack), "missing"), ==, -1);

  /* "seq" must not match "benchSeq" or a value */
  g_assert_true (fl_json_find_int (event, strlen (event), "seq", &v));
  g_assert_cmpint (v, ==, 123456789012);
  g_assert_true (fl_json_find_int (event, strlen (event), "sentNs", &v));
  g_assert_cmpint (v, ==, 86400000000000);
  g_assert_true (fl_json_find_int (event, strlen (event), "benchSeq", &v));
  g_assert_cmpint (v, ==, 17);
  g_assert_false (fl_json_find_int ("{\"x\":\"seq\",\"y\":1}", 17, "seq", &v));

  /* escaped quotes inside a string value */
  g_assert_true (fl_json_find_string ("{\"m\":\"a\\\"b\"}", 12, "m", &type, &type_len));
  g_assert_cmpmem (type, type_len, "a\\\"b", 4);

  /* a truncated text is not read past its end */
  g_assert_false (fl_json_find_int (ack, 24, "accepted", &v) && v != 50);
}

static void
test_ingest_result (void)
{
  const char        *ok = "{\"accepted\":100,\"duplicates\":2,\"rejected\":[]}";
  const char        *rejected = "{\"accepted\":1,\"duplicates\":0,\"rejected\":[{\"index\":1,\"error\":"
                                "{\"code\":\"bad_event\",\"message\":\"source is not this device\"}}]}";
  FlIngestResult     res;
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_ingest_result_parse (ok, strlen (ok), &res, &error));
  g_assert_cmpint (res.accepted, ==, 100);
  g_assert_cmpint (res.duplicates, ==, 2);
  g_assert_cmpuint (res.rejected, ==, 0);
  fl_ingest_result_clear (&res);

  g_assert_true (fl_ingest_result_parse (rejected, strlen (rejected), &res, &error));
  g_assert_cmpint (res.accepted, ==, 1);
  g_assert_cmpuint (res.rejected, ==, 1);
  g_assert_nonnull (strstr (res.first_rejection, "bad_event"));
  fl_ingest_result_clear (&res);

  g_assert_false (fl_ingest_result_parse ("{\"error\":{}}", 12, &res, &error));
  g_assert_error (error, FL_LOADGEN_ERROR, FL_LOADGEN_ERROR_BAD_ANSWER);
  g_clear_error (&error);
  g_assert_false (fl_ingest_result_parse ("not json", 8, &res, &error));
  g_assert_nonnull (error);
}

static void
test_percentile (void)
{
  guint64 v[100];

  for (guint i = 0; i < 100; i++)
    v[i] = 100 - i;
  fl_sort_u64 (v, 100);
  g_assert_cmpuint (fl_percentile (v, 100, 50), ==, 50);
  g_assert_cmpuint (fl_percentile (v, 100, 99), ==, 99);
  g_assert_cmpuint (fl_percentile (v, 100, 100), ==, 100);
  g_assert_cmpuint (fl_percentile (v, 1, 99), ==, 1);
  g_assert_cmpuint (fl_percentile (v, 0, 50), ==, 0);
}

int
fl_loadgen_self_test (int    argc,
                      char **argv)
{
  /* g_test_init would refuse --self-test: pass the rest on without it */
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  int                   test_argc;
  char                **test_argv;

  for (int i = 0; i < argc; i++)
    if (!g_str_equal (argv[i], "--self-test"))
      g_ptr_array_add (args, argv[i]);
  g_ptr_array_add (args, NULL);
  test_argc = (int) args->len - 1;
  test_argv = (char **) args->pdata;
  g_test_init (&test_argc, &test_argv, NULL);

  g_test_add_func ("/fieldline/loadgen/uuid4", test_uuid4);
  g_test_add_func ("/fieldline/loadgen/rng-below", test_rng_below);
  g_test_add_func ("/fieldline/loadgen/buf", test_buf);
  g_test_add_func ("/fieldline/loadgen/http/content-length", test_http_content_length);
  g_test_add_func ("/fieldline/loadgen/http/chunked", test_http_chunked);
  g_test_add_func ("/fieldline/loadgen/http/upgrade", test_http_upgrade);
  g_test_add_func ("/fieldline/loadgen/http/malformed", test_http_malformed);
  g_test_add_func ("/fieldline/loadgen/ws/client-frames", test_ws_client_frames);
  g_test_add_func ("/fieldline/loadgen/ws/server-frames", test_ws_server_frames);
  g_test_add_func ("/fieldline/loadgen/json/scan", test_json_scan);
  g_test_add_func ("/fieldline/loadgen/json/ingest-result", test_ingest_result);
  g_test_add_func ("/fieldline/loadgen/percentile", test_percentile);
  return g_test_run ();
}
