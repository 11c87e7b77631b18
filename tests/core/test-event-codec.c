/* test-event-codec.c: validation, normalisation and batch splitting. */
#include "config.h"

#include <string.h>

#include "fieldline-core.h"

static const FlEventParseOptions plain = { .received_at = 1700000000000 };

static FlEvent *
parse_one (const char   *json,
           const FlEventParseOptions *options,
           GError      **error)
{
  g_autoptr (JsonNode) node = json_from_string (json, NULL);

  g_assert_nonnull (node);
  return fl_event_from_json_node (node, options ? options : &plain, error);
}

static void
test_valid_event (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) event = NULL;
  double value;

  event = parse_one ("{\"id\":\"e1\",\"timestamp\":1700000000123,\"source\":\"dev-1\",\"type\":\"telemetry\","
                     "\"data\":{\"temperature\":21.5,\"humidity\":40,\"label\":\"x\"},"
                     "\"metadata\":{\"version\":\"1\",\"tags\":[\"a\"],\"priority\":\"high\"}}",
                     NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_event_get_id (event), ==, "e1");
  g_assert_cmpint (fl_event_get_timestamp (event), ==, 1700000000123);
  g_assert_cmpstr (fl_event_get_source (event), ==, "dev-1");
  g_assert_cmpstr (fl_event_get_event_type (event), ==, "telemetry");
  g_assert_true (fl_event_get_metric (event, "temperature", &value));
  g_assert_cmpfloat (value, ==, 21.5);
  g_assert_true (fl_event_get_metric (event, "humidity", &value));
  g_assert_cmpfloat (value, ==, 40);
  g_assert_false (fl_event_get_metric (event, "label", &value));
  g_assert_false (fl_event_get_metric (event, "missing", &value));
  g_assert_nonnull (fl_event_get_metadata (event));
}

static void
test_missing_timestamp_becomes_received_at (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) event = parse_one ("{\"id\":\"e1\",\"source\":\"d\",\"type\":\"heartbeat\"}", NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpint (fl_event_get_timestamp (event), ==, plain.received_at);
  g_assert_cmpuint (json_object_get_size (fl_event_get_data (event)), ==, 0);
}

static void
test_missing_id (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) event = parse_one ("{\"source\":\"d\",\"type\":\"telemetry\"}", NULL, &error);
  FlEventParseOptions assign = plain;
  g_autoptr (FlEvent) assigned = NULL;

  g_assert_null (event);
  g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD);
  g_assert_nonnull (strstr (error->message, "id"));

  assign.assign_ids = TRUE;
  g_clear_error (&error);
  assigned = parse_one ("{\"source\":\"d\",\"type\":\"telemetry\"}", &assign, &error);
  g_assert_no_error (error);
  g_assert_true (g_uuid_string_is_valid (fl_event_get_id (assigned)));
}

static void
test_invalid_fields (void)
{
  static const struct {
    const char *json;
    int         code;
    const char *field;
  } cases[] = {
    { "[1]", FL_CODEC_ERROR_MALFORMED, "object" },
    { "{\"id\":5,\"source\":\"d\",\"type\":\"t\"}", FL_CODEC_ERROR_INVALID_FIELD, "id" },
    { "{\"id\":\"\",\"source\":\"d\",\"type\":\"t\"}", FL_CODEC_ERROR_INVALID_FIELD, "id" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"Not Snake\"}", FL_CODEC_ERROR_INVALID_FIELD, "type" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"timestamp\":\"now\"}", FL_CODEC_ERROR_INVALID_FIELD, "timestamp" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"timestamp\":1.5}", FL_CODEC_ERROR_INVALID_FIELD, "timestamp" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"timestamp\":-1}", FL_CODEC_ERROR_INVALID_FIELD, "timestamp" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"data\":[]}", FL_CODEC_ERROR_INVALID_FIELD, "data" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"metadata\":{\"priority\":\"urgent\"}}", FL_CODEC_ERROR_INVALID_FIELD, "priority" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"metadata\":{\"tags\":[1]}}", FL_CODEC_ERROR_INVALID_FIELD, "tags" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"metadata\":{\"version\":2}}", FL_CODEC_ERROR_INVALID_FIELD, "version" },
    { "{\"id\":\"e\",\"source\":\"d\",\"type\":\"t\",\"metadata\":\"x\"}", FL_CODEC_ERROR_INVALID_FIELD, "metadata" },
    { "{\"id\":\"e\",\"type\":\"t\"}", FL_CODEC_ERROR_MISSING_FIELD, "source" },
    { "{\"id\":\"e\",\"source\":\"d\"}", FL_CODEC_ERROR_MISSING_FIELD, "type" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (FlEvent) event = parse_one (cases[i].json, NULL, &error);

      g_test_message ("case %u: %s", i, cases[i].json);
      g_assert_null (event);
      g_assert_error (error, FL_CODEC_ERROR, cases[i].code);
      g_assert_nonnull (strstr (error->message, cases[i].field));
    }
}

static void
test_long_id (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *id = g_strnfill (FL_EVENT_MAX_ID_LENGTH + 1, 'a');
  g_autofree char *json = g_strdup_printf ("{\"id\":\"%s\",\"source\":\"d\",\"type\":\"t\"}", id);
  g_autoptr (FlEvent) event = parse_one (json, NULL, &error);

  g_assert_null (event);
  g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD);
}

static void
test_device_sends_as_itself (void)
{
  FlEventParseOptions device = plain;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) defaulted = NULL;
  g_autoptr (FlEvent) other = NULL;

  device.device_id = "dev-1";
  defaulted = parse_one ("{\"id\":\"e\",\"type\":\"t\"}", &device, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_event_get_source (defaulted), ==, "dev-1");

  other = parse_one ("{\"id\":\"e\",\"source\":\"dev-2\",\"type\":\"t\"}", &device, &error);
  g_assert_null (other);
  g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_FORBIDDEN);
}

static void
test_json_round_trip (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (FlEvent) event = parse_one ("{\"id\":\"q\\\"uote\\n\",\"timestamp\":5,\"source\":\"d\",\"type\":\"t\","
                                         "\"data\":{\"x\":0.1,\"y\":3,\"z\":1e300,\"s\":\"\\u0001\",\"n\":null,\"a\":[true,false]},"
                                         "\"unknown\":1}",
                                         NULL, &error);
  g_autoptr (FlEvent) back = NULL;
  const char *json;

  g_assert_no_error (error);
  fl_event_set_seq (event, 42);
  fl_event_set_received_at (event, 99);
  json = fl_event_get_json (event);
  g_assert_cmpuint (strlen (json), ==, fl_event_get_json_length (event));
  g_assert_nonnull (strstr (json, "\"x\":0.1,"));
  g_assert_nonnull (strstr (json, "\"y\":3,"));
  g_assert_nonnull (strstr (json, "\"seq\":42"));
  g_assert_nonnull (strstr (json, "\"receivedAt\":99"));
  g_assert_null (strstr (json, "unknown"));

  back = parse_one (json, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_event_get_id (back), ==, "q\"uote\n");
  g_assert_cmpint (fl_event_get_timestamp (back), ==, 5);
  g_assert_cmpfloat (json_object_get_double_member (fl_event_get_data (back), "z"), ==, 1e300);
  g_assert_cmpstr (json_object_get_string_member (fl_event_get_data (back), "s"), ==, "\001");

  /* changing seq rebuilds the text */
  fl_event_set_seq (event, 43);
  g_assert_nonnull (strstr (fl_event_get_json (event), "\"seq\":43"));
}

static GArray *
parse_batch (const char *body,
             GError    **error)
{
  return fl_event_parse_batch (body, strlen (body), &plain, error);
}

static void
test_batch_array_with_bad_elements (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) items = parse_batch (" [ {\"id\":\"a\",\"source\":\"d\",\"type\":\"t\"},\n"
                                          "   {\"id\":7,\"source\":\"d\",\"type\":\"t\"},"
                                          "   \"str\",  {\"id\":\"b\",\"source\":\"d\",\"type\":\"t\",\"data\":{\"s\":\"]}\"}} ] ",
                                          &error);

  g_assert_no_error (error);
  g_assert_cmpuint (items->len, ==, 4);
  g_assert_nonnull (g_array_index (items, FlEventParseItem, 0).event);
  g_assert_error (g_array_index (items, FlEventParseItem, 1).error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD);
  g_assert_error (g_array_index (items, FlEventParseItem, 2).error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED);
  g_assert_nonnull (g_array_index (items, FlEventParseItem, 3).event);
  g_assert_cmpuint (g_array_index (items, FlEventParseItem, 3).index, ==, 3);
}

static void
test_batch_ndjson (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) items = parse_batch ("{\"id\":\"a\",\"source\":\"d\",\"type\":\"t\"}\n"
                                          "{\"id\":\"b\",\"source\":\"d\",\"type\":\"t\"}\r\n"
                                          "\n{\"id\":\"c\",\"source\":\"d\",\"type\":\"t\"}\n",
                                          &error);

  g_assert_no_error (error);
  g_assert_cmpuint (items->len, ==, 3);
  g_assert_cmpstr (fl_event_get_id (g_array_index (items, FlEventParseItem, 2).event), ==, "c");
}

static void
test_batch_malformed (void)
{
  static const char *bodies[] = {
    "", "   ", "{", "[", "[{}", "[{},]", "[{} {}]", "{\"id\":}", "{}{", "[]x", "{\"a\":\"unterminated}",
    "]", "}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bodies); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GArray) items = parse_batch (bodies[i], &error);

      g_test_message ("body %u: %s", i, bodies[i]);
      if (items != NULL)
        {
          /* a value that splits cleanly but is not an event is reported
           * per index, never accepted */
          for (guint j = 0; j < items->len; j++)
            g_assert_null (g_array_index (items, FlEventParseItem, j).event);
        }
      else
        g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED);
    }
}

static void
test_batch_empty_array (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) items = parse_batch ("[ ]", &error);

  g_assert_no_error (error);
  g_assert_cmpuint (items->len, ==, 0);
}

static void
test_event_size_limit (void)
{
  FlEventParseOptions small = plain;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) items = NULL;
  g_autofree char *big = g_strnfill (200, 'x');
  g_autofree char *body = g_strdup_printf ("[{\"id\":\"a\",\"source\":\"d\",\"type\":\"t\"},"
                                           "{\"id\":\"b\",\"source\":\"d\",\"type\":\"t\",\"data\":{\"s\":\"%s\"}}]", big);

  small.max_event_size = 100;
  items = fl_event_parse_batch (body, strlen (body), &small, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (items->len, ==, 2);
  g_assert_nonnull (g_array_index (items, FlEventParseItem, 0).event);
  g_assert_error (g_array_index (items, FlEventParseItem, 1).error, FL_CODEC_ERROR, FL_CODEC_ERROR_TOO_LARGE);
}

/* Random bytes and random cuts of a good body never crash the splitter
 * or the parser. */
static void
test_batch_fuzz (void)
{
  const char *good = "[{\"id\":\"a\",\"source\":\"d\",\"type\":\"t\",\"data\":{\"v\":[1,{\"x\":\"]\\\"\"}]}}]";
  GRand *rand = g_rand_new_with_seed (1234);

  for (guint i = 0; i < 20000; i++)
    {
      char buf[96];
      gsize len = g_rand_int_range (rand, 0, strlen (good) + 1);
      g_autoptr (GError) error = NULL;
      g_autoptr (GArray) items = NULL;

      memcpy (buf, good, len);
      if (i % 2)
        for (guint j = 0; j < 3 && len > 0; j++)
          buf[g_rand_int_range (rand, 0, len)] = "[]{}\",:\\ x1"[g_rand_int_range (rand, 0, 11)];
      items = fl_event_parse_batch (buf, len, &plain, &error);
      g_assert_true ((items != NULL) != (error != NULL));
    }

  g_rand_free (rand);
}

static void
test_append_int (void)
{
  static const struct { gint64 value; const char *text; } cases[] = {
    { 0, "0" }, { 7, "7" }, { -1, "-1" }, { 1700000000000, "1700000000000" },
    { G_MAXINT64, "9223372036854775807" }, { G_MININT64, "-9223372036854775808" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GString) out = g_string_new ("x");

      fl_json_append_int (out, cases[i].value);
      g_assert_cmpstr (out->str + 1, ==, cases[i].text);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/codec/valid", test_valid_event);
  g_test_add_func ("/fieldline/codec/missing-timestamp", test_missing_timestamp_becomes_received_at);
  g_test_add_func ("/fieldline/codec/missing-id", test_missing_id);
  g_test_add_func ("/fieldline/codec/invalid-fields", test_invalid_fields);
  g_test_add_func ("/fieldline/codec/long-id", test_long_id);
  g_test_add_func ("/fieldline/codec/device-as-itself", test_device_sends_as_itself);
  g_test_add_func ("/fieldline/codec/json-round-trip", test_json_round_trip);
  g_test_add_func ("/fieldline/codec/batch-array", test_batch_array_with_bad_elements);
  g_test_add_func ("/fieldline/codec/batch-ndjson", test_batch_ndjson);
  g_test_add_func ("/fieldline/codec/batch-malformed", test_batch_malformed);
  g_test_add_func ("/fieldline/codec/batch-empty", test_batch_empty_array);
  g_test_add_func ("/fieldline/codec/event-size", test_event_size_limit);
  g_test_add_func ("/fieldline/codec/batch-fuzz", test_batch_fuzz);
  g_test_add_func ("/fieldline/codec/append-int", test_append_int);

  return g_test_run ();
}
