/* test-device.c: the device model, its validation and its store form. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "fieldline-core.h"

static JsonObject *
object_from (const char *json)
{
  g_autoptr (JsonNode) node = json_from_string (json, NULL);

  g_assert_nonnull (node);
  return json_object_ref (json_node_get_object (node));
}

static void
test_register_and_serialize (void)
{
  g_autoptr (FlDevice) device = fl_device_new ("dev-1");
  g_autoptr (FlDevice) back = NULL;
  g_autoptr (JsonObject) body = object_from (
      "{\"name\":\"Boiler room\",\"type\":\"sensor\",\"model\":\"TH-1\",\"manufacturer\":\"Acme\","
      "\"tags\":[\"site-a\",\"floor-2\"],\"heartbeatTimeoutSec\":30,"
      "\"capabilities\":{\"metrics\":[\"temperature\"],\"commands\":[{\"name\":\"set_interval\",\"category\":\"configuration\","
      "\"params\":{\"seconds\":{\"type\":\"integer\",\"min\":1,\"max\":3600,\"required\":true}}}]},"
      "\"location\":{\"lat\":52.5,\"lon\":13.4}}");
  g_autoptr (GError) error = NULL;
  g_autofree char *stored = NULL;
  double lat, lon, alt;

  g_assert_true (fl_device_update_from_json (device, body, TRUE, &error));
  g_assert_no_error (error);
  fl_device_set_secret_hash (device, "abc");
  g_assert_cmpstr (fl_device_get_name (device), ==, "Boiler room");
  g_assert_true (fl_device_has_tag (device, "floor-2"));
  g_assert_cmpuint (fl_device_get_heartbeat_timeout (device), ==, 30);
  g_assert_true (isnan (fl_device_get_battery (device)));

  stored = fl_device_serialize (device);
  back = fl_device_deserialize (stored, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_device_get_device_id (back), ==, "dev-1");
  g_assert_cmpstr (fl_device_get_secret_hash (back), ==, "abc");
  g_assert_cmpstr (fl_device_get_model (back), ==, "TH-1");
  g_assert_cmpuint (fl_device_get_heartbeat_timeout (back), ==, 30);
  g_assert_true (fl_device_get_location (back, &lat, &lon, &alt));
  g_assert_cmpfloat (lat, ==, 52.5);
  g_assert_true (fl_device_has_tag (back, "site-a"));
  g_assert_true (json_object_has_member (fl_device_get_capabilities (back), "commands"));
}

static void
test_api_json_hides_secret (void)
{
  g_autoptr (FlDevice) device = fl_device_new ("dev-1");
  g_autoptr (JsonNode) node = NULL;
  JsonObject *object;

  fl_device_set_secret_hash (device, "abc");
  node = fl_device_to_json_node (device);
  g_assert_nonnull (node);
  object = json_node_get_object (node);
  g_assert_false (json_object_has_member (object, "secretHash"));
  g_assert_cmpstr (json_object_get_string_member (object, "status"), ==, "offline");
  g_assert_true (json_object_get_null_member (object, "battery"));
  g_assert_true (json_object_get_null_member (object, "lastSeen"));
}

static void
test_invalid_bodies (void)
{
  static const char *bodies[] = {
    "{\"name\":5}",
    "{\"name\":\"\"}",
    "{\"tags\":\"a\"}",
    "{\"tags\":[1]}",
    "{\"heartbeatTimeoutSec\":0}",
    "{\"heartbeatTimeoutSec\":\"60\"}",
    "{\"capabilities\":[]}",
    "{\"capabilities\":{\"metrics\":[1]}}",
    "{\"capabilities\":{\"commands\":[{\"category\":\"x\"}]}}",
    "{\"capabilities\":{\"commands\":[{\"name\":\"a\",\"params\":{\"p\":{\"type\":\"date\"}}}]}}",
    "{\"capabilities\":{\"commands\":[{\"name\":\"a\"},{\"name\":\"a\"}]}}",
    "{\"location\":{\"lat\":100,\"lon\":0}}",
    "{\"location\":{\"lat\":\"x\"}}",
    "{\"surprise\":true}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bodies); i++)
    {
      g_autoptr (FlDevice) device = fl_device_new ("d");
      g_autoptr (JsonObject) body = object_from (bodies[i]);
      g_autoptr (GError) error = NULL;

      g_test_message ("%s", bodies[i]);
      g_assert_false (fl_device_update_from_json (device, body, TRUE, &error));
      g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD);
      /* nothing applied */
      g_assert_cmpstr (fl_device_get_name (device), ==, "d");
    }
}

static void
test_status_updates (void)
{
  g_autoptr (FlDevice) device = fl_device_new ("d");
  g_autoptr (JsonObject) maintenance = object_from ("{\"status\":\"maintenance\"}");
  g_autoptr (JsonObject) online = object_from ("{\"status\":\"online\"}");
  g_autoptr (JsonObject) gone = object_from ("{\"status\":\"decommissioned\"}");
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_device_update_from_json (device, maintenance, FALSE, &error));
  g_assert_cmpint (fl_device_get_status (device), ==, FL_DEVICE_STATUS_MAINTENANCE);
  g_assert_false (fl_device_update_from_json (device, online, FALSE, &error));
  g_clear_error (&error);
  g_assert_false (fl_device_update_from_json (device, gone, FALSE, &error));
  g_assert_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD);
}

static void
test_well_known_fields (void)
{
  g_autoptr (FlDevice) device = fl_device_new ("d");
  g_autoptr (JsonObject) data = object_from ("{\"battery\":87,\"signal\":50,\"lat\":1.5,\"lon\":2.5,\"alt\":3,"
                                             "\"firmware\":\"1.4.2\",\"model\":\"TH-1\",\"manufacturer\":\"Acme\"}");
  g_autoptr (JsonObject) again = object_from ("{\"battery\":87}");
  g_autoptr (JsonObject) bad = object_from ("{\"battery\":150,\"rssi\":20,\"lat\":200,\"lon\":0}");
  double lat, lon, alt;

  g_assert_true (fl_device_apply_event_data (device, data, 1000));
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 87);
  g_assert_cmpfloat (fl_device_get_rssi (device), ==, -75);
  g_assert_true (fl_device_get_location (device, &lat, &lon, &alt));
  g_assert_cmpfloat (alt, ==, 3);
  g_assert_cmpstr (fl_device_get_firmware (device), ==, "1.4.2");
  g_assert_cmpint (fl_device_get_last_seen (device), ==, 1000);

  g_assert_false (fl_device_apply_event_data (device, again, 2000));
  g_assert_cmpint (fl_device_get_last_seen (device), ==, 2000);

  /* out-of-range values are ignored, not applied */
  g_assert_false (fl_device_apply_event_data (device, bad, 3000));
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 87);
}

static void
test_device_ids (void)
{
  g_autofree char *long_id = g_strnfill (FL_DEVICE_MAX_ID_LENGTH + 1, 'a');

  g_assert_true (fl_device_id_is_valid ("sim-0001.a_b"));
  g_assert_false (fl_device_id_is_valid (""));
  g_assert_false (fl_device_id_is_valid ("a/b"));
  g_assert_false (fl_device_id_is_valid ("a:b"));
  g_assert_false (fl_device_id_is_valid (long_id));
}

/* A store's record builds the device it was written from, sharing the
 * refcounted texts rather than copying them. */
static void
test_record (void)
{
  g_autoptr (FlDevice)   source = fl_device_new ("dev-7");
  g_autoptr (FlDevice)   built = NULL;
  g_autoptr (FlDevice)   bare = NULL;
  g_autoptr (JsonObject) body = object_from (
      "{\"name\":\"Cold store\",\"type\":\"sensor\",\"model\":\"TH-2\",\"manufacturer\":\"Acme\","
      "\"firmware\":\"1.4.2\",\"tags\":[\"site:oslo\",\"room:7\"],\"heartbeatTimeoutSec\":90,"
      "\"capabilities\":{\"metrics\":[\"temperature\",\"humidity\"]},"
      "\"location\":{\"lat\":59.9,\"lon\":10.7,\"alt\":12.5}}");
  g_autoptr (GError)     error = NULL;
  g_autofree char       *expected = NULL;
  g_autofree char       *got = NULL;
  g_autofree char       *bare_json = NULL;
  GRefString            *type = g_ref_string_new ("sensor");
  GRefString            *model = g_ref_string_new ("TH-2");
  GRefString            *manufacturer = g_ref_string_new ("Acme");
  GRefString            *firmware = g_ref_string_new ("1.4.2");
  GRefString            *capabilities = g_ref_string_new ("{\"metrics\":[\"temperature\",\"humidity\"]}");
  const char            *tags[] = { "site:oslo", "room:7", NULL };
  FlDeviceRecord         record = {
    .device_id = "dev-7",
    .name = "Cold store",
    .device_type = type,
    .model = model,
    .manufacturer = manufacturer,
    .firmware = firmware,
    .capabilities = capabilities,
    .tags = tags,
    .secret_hash = "ab12",
    .status = FL_DEVICE_STATUS_MAINTENANCE,
    .heartbeat_timeout = 90,
    .has_location = TRUE,
    .lat = 59.9,
    .lon = 10.7,
    .alt = 12.5,
    .battery = 81,
    .rssi = -67,
    .last_seen = 1700000000123,
    .created_at = 1690000000000,
    .updated_at = 1695000000000,
  };

  g_assert_true (fl_device_update_from_json (source, body, TRUE, &error));
  g_assert_no_error (error);
  fl_device_set_status (source, FL_DEVICE_STATUS_MAINTENANCE);
  fl_device_set_secret_hash (source, "ab12");
  fl_device_set_last_seen (source, 1700000000123);
  fl_device_set_created_at (source, 1690000000000);
  fl_device_set_updated_at (source, 1695000000000);
  {
    g_autoptr (JsonObject) data = object_from ("{\"battery\":81,\"rssi\":-67}");

    fl_device_apply_event_data (source, data, 0);
  }
  expected = fl_device_serialize (source);

  built = fl_device_new_from_record (&record);
  got = fl_device_serialize (built);
  g_assert_cmpstr (got, ==, expected);

  /* shared, not copied */
  g_assert_true (fl_device_get_model (built) == model);
  g_assert_true (fl_device_get_firmware (built) == firmware);
  g_assert_true (fl_device_has_tag (built, "room:7"));
  g_assert_false (fl_device_has_tag (built, "room"));
  g_assert_cmpuint (g_strv_length ((GStrv) fl_device_get_tags (built)), ==, 2);
  g_assert_true (json_object_has_member (fl_device_get_capabilities (built), "metrics"));

  /* the caller's references are its own; the device keeps the texts */
  g_ref_string_release (type);
  g_ref_string_release (model);
  g_ref_string_release (manufacturer);
  g_ref_string_release (firmware);
  g_ref_string_release (capabilities);
  g_clear_pointer (&got, g_free);
  got = fl_device_serialize (built);
  g_assert_cmpstr (got, ==, expected);

  /* a later change replaces a shared text without touching the others */
  {
    g_autoptr (JsonObject) data = object_from ("{\"firmware\":\"1.5.0\"}");

    g_assert_true (fl_device_apply_event_data (built, data, 0));
    g_assert_cmpstr (fl_device_get_firmware (built), ==, "1.5.0");
    g_assert_cmpstr (fl_device_get_model (built), ==, "TH-2");
  }

  /* the least a record may hold: an id and a status */
  bare = fl_device_new_from_record (&(FlDeviceRecord){ .device_id = "dev-8", .battery = NAN, .rssi = NAN });
  bare_json = fl_device_serialize (bare);
  g_assert_cmpstr (fl_device_get_name (bare), ==, "dev-8");
  g_assert_cmpuint (fl_device_get_heartbeat_timeout (bare), ==, FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC);
  g_assert_cmpuint (json_object_get_size (fl_device_get_capabilities (bare)), ==, 0);
  g_assert_nonnull (strstr (bare_json, "\"capabilities\":{},\"tags\":[]"));
  g_assert_nonnull (strstr (bare_json, "\"battery\":null"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fieldline/device/register-serialize", test_register_and_serialize);
  g_test_add_func ("/fieldline/device/api-json", test_api_json_hides_secret);
  g_test_add_func ("/fieldline/device/invalid-bodies", test_invalid_bodies);
  g_test_add_func ("/fieldline/device/status-updates", test_status_updates);
  g_test_add_func ("/fieldline/device/well-known-fields", test_well_known_fields);
  g_test_add_func ("/fieldline/device/ids", test_device_ids);
  g_test_add_func ("/fieldline/device/record", test_record);

  return g_test_run ();
}
