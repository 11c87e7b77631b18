/* fl-device.c: a device, as PLATFORM.md (Device) describes it. */
#define G_LOG_DOMAIN "fl-device"

#include "config.h"

#include <math.h>
#include <string.h>

#include "fl-device.h"
#include "fl-event.h"
#include "fl-event-codec.h"

#define MAX_TEXT_LENGTH   128
#define MAX_TAG_LENGTH    64
#define MAX_TAGS          32
#define MAX_HEARTBEAT_SEC 86400

struct _FlDevice
{
  GObject         parent_instance;

  char           *device_id;
  char           *name;
  /* Values most devices of a fleet share: refcounted, so that a store
   * loading many devices keeps one copy of each (see FlDeviceRecord). */
  GRefString     *device_type;
  GRefString     *model;
  GRefString     *manufacturer;
  GRefString     *firmware;
  GRefString     *capabilities_json;  /* compact text, ~10x smaller than a
                                       * tree; NULL for {} */
  char           *secret_hash;
  GStrv           tags;               /* one block: see strv_pack() */
  JsonObject     *capabilities;       /* parsed on first request */
  FlDeviceStatus  status;
  guint           heartbeat_timeout;
  gboolean        has_location;
  double          lat;
  double          lon;
  double          alt;
  double          battery;
  double          rssi;
  gint64          last_seen;
  gint64          created_at;
  gint64          updated_at;
};

G_DEFINE_FINAL_TYPE (FlDevice, fl_device, G_TYPE_OBJECT)

static const char *status_names[] = {
  [FL_DEVICE_STATUS_OFFLINE] = "offline",
  [FL_DEVICE_STATUS_ONLINE] = "online",
  [FL_DEVICE_STATUS_MAINTENANCE] = "maintenance",
  [FL_DEVICE_STATUS_DECOMMISSIONED] = "decommissioned",
};

const char *
fl_device_status_to_string (FlDeviceStatus status)
{
  g_return_val_if_fail (status <= FL_DEVICE_STATUS_DECOMMISSIONED, "offline");

  return status_names[status];
}

gboolean
fl_device_status_from_string (const char     *str,
                              FlDeviceStatus *status)
{
  for (guint i = 0; i < G_N_ELEMENTS (status_names); i++)
    if (g_strcmp0 (str, status_names[i]) == 0)
      {
        *status = i;
        return TRUE;
      }

  return FALSE;
}

gboolean
fl_device_id_is_valid (const char *device_id)
{
  gsize len;

  if (device_id == NULL)
    return FALSE;

  len = strlen (device_id);
  if (len == 0 || len > FL_DEVICE_MAX_ID_LENGTH)
    return FALSE;

  /* Ids appear in URLs and in HTTP Basic credentials. */
  for (const char *p = device_id; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;

  return TRUE;
}

/* Copies a string vector into one allocation (pointers, then the text), so
 * a device's tags cost one block, freed with g_free(). */
static GStrv
strv_pack (const char *const *strv)
{
  gsize  n = 0, bytes = 0;
  char **packed;
  char  *text;

  for (; strv != NULL && strv[n] != NULL; n++)
    bytes += strlen (strv[n]) + 1;

  packed = g_malloc ((n + 1) * sizeof (char *) + bytes);
  text = (char *) (packed + n + 1);
  for (gsize i = 0; i < n; i++)
    {
      gsize len = strlen (strv[i]) + 1;

      packed[i] = memcpy (text, strv[i], len);
      text += len;
    }
  packed[n] = NULL;

  return packed;
}

/* Replaces a shared text field with a copy of value (NULL clears it). */
static void
set_ref_string (GRefString **field,
                const char  *value)
{
  g_clear_pointer (field, g_ref_string_release);
  if (value != NULL)
    *field = g_ref_string_new (value);
}

/* The same, sharing value. */
static void
share_ref_string (GRefString **field,
                  GRefString  *value)
{
  g_clear_pointer (field, g_ref_string_release);
  if (value != NULL)
    *field = g_ref_string_acquire (value);
}

static void
fl_device_finalize (GObject *object)
{
  FlDevice *self = FL_DEVICE (object);

  g_clear_pointer (&self->device_id, g_free);
  g_clear_pointer (&self->name, g_free);
  g_clear_pointer (&self->device_type, g_ref_string_release);
  g_clear_pointer (&self->model, g_ref_string_release);
  g_clear_pointer (&self->manufacturer, g_ref_string_release);
  g_clear_pointer (&self->firmware, g_ref_string_release);
  g_clear_pointer (&self->secret_hash, g_free);
  g_clear_pointer (&self->tags, g_free);
  g_clear_pointer (&self->capabilities, json_object_unref);
  g_clear_pointer (&self->capabilities_json, g_ref_string_release);

  G_OBJECT_CLASS (fl_device_parent_class)->finalize (object);
}

static void
fl_device_class_init (FlDeviceClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = fl_device_finalize;
}

static void
fl_device_init (FlDevice *self)
{
  self->status = FL_DEVICE_STATUS_OFFLINE;
  self->heartbeat_timeout = FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC;
  self->battery = NAN;
  self->rssi = NAN;
  self->tags = strv_pack (NULL);
}

FlDevice *
fl_device_new (const char *device_id)
{
  FlDevice *self;

  g_return_val_if_fail (device_id != NULL, NULL);

  self = g_object_new (FL_TYPE_DEVICE, NULL);
  self->device_id = g_strdup (device_id);
  self->name = g_strdup (device_id);

  return self;
}

/**
 * fl_device_new_from_record:
 *
 * Builds a device from the fields a store kept, as they are: the store
 * wrote them from a device, so they are not validated again (the text of
 * the capabilities included: a damaged one reads as {}).  This is what
 * makes loading 100,000 devices take tens of milliseconds.
 *
 * Returns: (transfer full): the device
 */
FlDevice *
fl_device_new_from_record (const FlDeviceRecord *record)
{
  FlDevice *self;

  g_return_val_if_fail (record != NULL && record->device_id != NULL, NULL);
  g_return_val_if_fail (record->status <= FL_DEVICE_STATUS_DECOMMISSIONED, NULL);

  self = g_object_new (FL_TYPE_DEVICE, NULL);
  self->device_id = g_strdup (record->device_id);
  self->name = g_strdup (record->name != NULL ? record->name : record->device_id);
  share_ref_string (&self->device_type, record->device_type);
  share_ref_string (&self->model, record->model);
  share_ref_string (&self->manufacturer, record->manufacturer);
  share_ref_string (&self->firmware, record->firmware);
  share_ref_string (&self->capabilities_json, record->capabilities);
  if (record->tags != NULL && record->tags[0] != NULL)
    {
      g_free (self->tags);
      self->tags = strv_pack (record->tags);
    }
  self->secret_hash = g_strdup (record->secret_hash);
  self->status = record->status;
  self->heartbeat_timeout = record->heartbeat_timeout > 0 ? record->heartbeat_timeout
                                                          : FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC;
  self->has_location = record->has_location;
  if (record->has_location)
    {
      self->lat = record->lat;
      self->lon = record->lon;
      self->alt = isnan (record->alt) ? 0 : record->alt; /* as fl_device_deserialize() */
    }
  self->battery = record->battery;
  self->rssi = record->rssi;
  self->last_seen = record->last_seen;
  self->created_at = record->created_at;
  self->updated_at = record->updated_at;

  return self;
}

const char *
fl_device_get_device_id (FlDevice *self)
{
  return self->device_id;
}

const char *
fl_device_get_name (FlDevice *self)
{
  return self->name;
}

const char *
fl_device_get_device_type (FlDevice *self)
{
  return self->device_type;
}

const char *
fl_device_get_model (FlDevice *self)
{
  return self->model;
}

const char *
fl_device_get_manufacturer (FlDevice *self)
{
  return self->manufacturer;
}

const char *
fl_device_get_firmware (FlDevice *self)
{
  return self->firmware;
}

FlDeviceStatus
fl_device_get_status (FlDevice *self)
{
  return self->status;
}

gint64
fl_device_get_last_seen (FlDevice *self)
{
  return self->last_seen;
}

gint64
fl_device_get_created_at (FlDevice *self)
{
  return self->created_at;
}

gint64
fl_device_get_updated_at (FlDevice *self)
{
  return self->updated_at;
}

guint
fl_device_get_heartbeat_timeout (FlDevice *self)
{
  return self->heartbeat_timeout;
}

double
fl_device_get_battery (FlDevice *self)
{
  return self->battery;
}

double
fl_device_get_rssi (FlDevice *self)
{
  return self->rssi;
}

gboolean
fl_device_get_location (FlDevice *self,
                        double   *lat,
                        double   *lon,
                        double   *alt)
{
  if (lat)
    *lat = self->lat;
  if (lon)
    *lon = self->lon;
  if (alt)
    *alt = self->alt;

  return self->has_location;
}

/**
 * fl_device_get_capabilities:
 *
 * Returns: (transfer none): the capabilities object, read-only
 */
JsonObject *
fl_device_get_capabilities (FlDevice *self)
{
  if (self->capabilities == NULL)
    {
      g_autoptr (JsonNode) node = NULL;

      if (self->capabilities_json != NULL)
        node = json_from_string (self->capabilities_json, NULL);
      self->capabilities = node != NULL && JSON_NODE_HOLDS_OBJECT (node) ?
                           json_object_ref (json_node_get_object (node)) : json_object_new ();
    }

  return self->capabilities;
}

static void
set_capabilities (FlDevice *self,
                  JsonNode *node)
{
  g_autofree char *text = fl_json_to_string (node, NULL);

  set_ref_string (&self->capabilities_json, g_str_equal (text, "{}") ? NULL : text);
  g_clear_pointer (&self->capabilities, json_object_unref);
}

const char * const *
fl_device_get_tags (FlDevice *self)
{
  return (const char * const *) self->tags;
}

gboolean
fl_device_has_tag (FlDevice   *self,
                   const char *tag)
{
  return g_strv_contains ((const char * const *) self->tags, tag);
}

const char *
fl_device_get_secret_hash (FlDevice *self)
{
  return self->secret_hash;
}

void
fl_device_set_status (FlDevice       *self,
                      FlDeviceStatus  status)
{
  self->status = status;
}

void
fl_device_set_last_seen (FlDevice *self,
                         gint64    last_seen)
{
  self->last_seen = last_seen;
}

void
fl_device_set_updated_at (FlDevice *self,
                          gint64    updated_at)
{
  self->updated_at = updated_at;
}

void
fl_device_set_created_at (FlDevice *self,
                          gint64    created_at)
{
  self->created_at = created_at;
}

void
fl_device_set_secret_hash (FlDevice   *self,
                           const char *secret_hash)
{
  g_free (self->secret_hash);
  self->secret_hash = g_strdup (secret_hash);
}

/* ---- events ----------------------------------------------------------- */

/* The well-known fields come from a JsonObject (a client's view) or an
 * event's fields (the relay's hot path): one rule set for both. */
typedef struct
{
  gboolean    (*number) (gconstpointer source, const char *name, double *value);
  const char *(*text)   (gconstpointer source, const char *name);
} FieldSource;

static gboolean
object_number (gconstpointer source,
               const char   *name,
               double       *value)
{
  JsonNode *node = json_object_get_member ((JsonObject *) source, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;

  switch (json_node_get_value_type (node))
    {
    case G_TYPE_INT64:
      *value = (double) json_node_get_int (node);
      return TRUE;
    case G_TYPE_DOUBLE:
      *value = json_node_get_double (node);
      return isfinite (*value);
    default:
      return FALSE;
    }
}

static const char *
object_text (gconstpointer source,
             const char   *name)
{
  JsonNode *node = json_object_get_member ((JsonObject *) source, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

static gboolean
event_number (gconstpointer source,
              const char   *name,
              double       *value)
{
  return fl_event_get_metric (source, name, value) && isfinite (*value);
}

static const char *
event_text (gconstpointer source,
            const char   *name)
{
  return fl_event_get_text (source, name);
}

static const FieldSource object_fields = { object_number, object_text };
static const FieldSource event_fields = { event_number, event_text };

static gboolean
set_text (GRefString **field,
          const char  *value)
{
  if (value == NULL || *value == '\0' || strlen (value) > MAX_TEXT_LENGTH || g_strcmp0 (*field, value) == 0)
    return FALSE;

  set_ref_string (field, value);

  return TRUE;
}

static gboolean
set_double (double *field,
            double  value)
{
  if (*field == value)
    return FALSE;

  *field = value;
  return TRUE;
}

static gboolean
apply_fields (FlDevice          *self,
              const FieldSource *fields,
              gconstpointer      source,
              gint64             ts)
{
  gboolean changed = FALSE;
  double value, lat, lon;

  if (ts > self->last_seen)
    self->last_seen = ts;

  if (fields->number (source, "battery", &value) && value >= 0 && value <= 100)
    changed |= set_double (&self->battery, value);

  if (fields->number (source, "rssi", &value) && value >= -200 && value <= 0)
    changed |= set_double (&self->rssi, value);
  else if (fields->number (source, "signal", &value) && value >= 0 && value <= 100)
    /* signal in percent: 0 % is -100 dBm, 100 % is -50 dBm */
    changed |= set_double (&self->rssi, -100.0 + value / 2.0);

  if (fields->number (source, "lat", &lat) && fields->number (source, "lon", &lon) &&
      lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)
    {
      changed |= !self->has_location;
      self->has_location = TRUE;
      changed |= set_double (&self->lat, lat);
      changed |= set_double (&self->lon, lon);
      if (fields->number (source, "alt", &value))
        changed |= set_double (&self->alt, value);
    }

  changed |= set_text (&self->firmware, fields->text (source, "firmware"));
  changed |= set_text (&self->model, fields->text (source, "model"));
  changed |= set_text (&self->manufacturer, fields->text (source, "manufacturer"));

  return changed;
}

gboolean
fl_device_apply_event_data (FlDevice   *self,
                            JsonObject *data,
                            gint64      ts)
{
  g_return_val_if_fail (FL_IS_DEVICE (self), FALSE);

  if (data == NULL)
    {
      if (ts > self->last_seen)
        self->last_seen = ts;
      return FALSE;
    }

  return apply_fields (self, &object_fields, data, ts);
}

gboolean
fl_device_apply_event (FlDevice      *self,
                       const FlEvent *event,
                       gint64         ts)
{
  g_return_val_if_fail (FL_IS_DEVICE (self), FALSE);

  return apply_fields (self, &event_fields, event, ts);
}

/* ---- validation of registration and update bodies -------------------- */

static gboolean
is_string_node (JsonNode *node)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

static gboolean
is_number_node (JsonNode *node)
{
  GType type;

  if (!JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  type = json_node_get_value_type (node);
  return type == G_TYPE_INT64 || type == G_TYPE_DOUBLE;
}

static gboolean
invalid (GError    **error,
         const char *format,
         ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError    **error,
         const char *format,
         ...)
{
  va_list args;

  va_start (args, format);
  g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_INVALID_FIELD, "");
  if (error != NULL && *error != NULL)
    {
      g_free ((*error)->message);
      (*error)->message = g_strdup_vprintf (format, args);
    }
  va_end (args);

  return FALSE;
}

static gboolean
check_text (JsonObject  *object,
            const char  *name,
            gsize        max_len,
            const char **out,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);
  const char *value;
  gsize len;

  *out = NULL;
  if (node == NULL)
    return TRUE;

  if (!is_string_node (node))
    return invalid (error, "Field “%s” must be a string", name);

  value = json_node_get_string (node);
  len = strlen (value);
  if (len == 0 || len > max_len)
    return invalid (error, "Field “%s” must be 1 to %" G_GSIZE_FORMAT " characters long", name, max_len);

  *out = value;
  return TRUE;
}

static const char *param_types[] = { "integer", "number", "string", "boolean", NULL };

static gboolean
check_command (JsonNode *node,
               guint     index,
               GError  **error)
{
  JsonObject *command;
  JsonNode *member;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return invalid (error, "capabilities.commands[%u] must be an object", index);
  command = json_node_get_object (node);

  member = json_object_get_member (command, "name");
  if (member == NULL || !is_string_node (member) || *json_node_get_string (member) == '\0')
    return invalid (error, "capabilities.commands[%u].name must be a non-empty string", index);

  member = json_object_get_member (command, "category");
  if (member != NULL && !is_string_node (member))
    return invalid (error, "capabilities.commands[%u].category must be a string", index);

  member = json_object_get_member (command, "params");
  if (member != NULL)
    {
      JsonObjectIter iter;
      const char *name;
      JsonNode *spec_node;

      if (!JSON_NODE_HOLDS_OBJECT (member))
        return invalid (error, "capabilities.commands[%u].params must be an object", index);

      json_object_iter_init (&iter, json_node_get_object (member));
      while (json_object_iter_next (&iter, &name, &spec_node))
        {
          JsonObject *spec;
          JsonNode *field;

          if (!JSON_NODE_HOLDS_OBJECT (spec_node))
            return invalid (error, "capabilities.commands[%u].params.%s must be an object", index, name);
          spec = json_node_get_object (spec_node);

          field = json_object_get_member (spec, "type");
          if (field == NULL || !is_string_node (field) ||
              !g_strv_contains (param_types, json_node_get_string (field)))
            return invalid (error, "capabilities.commands[%u].params.%s.type must be integer, number, string or boolean", index, name);

          field = json_object_get_member (spec, "min");
          if (field != NULL && !is_number_node (field))
            return invalid (error, "capabilities.commands[%u].params.%s.min must be a number", index, name);
          field = json_object_get_member (spec, "max");
          if (field != NULL && !is_number_node (field))
            return invalid (error, "capabilities.commands[%u].params.%s.max must be a number", index, name);
          field = json_object_get_member (spec, "required");
          if (field != NULL && !(JSON_NODE_HOLDS_VALUE (field) && json_node_get_value_type (field) == G_TYPE_BOOLEAN))
            return invalid (error, "capabilities.commands[%u].params.%s.required must be a boolean", index, name);
          field = json_object_get_member (spec, "enum");
          if (field != NULL && !JSON_NODE_HOLDS_ARRAY (field))
            return invalid (error, "capabilities.commands[%u].params.%s.enum must be an array", index, name);
        }
    }

  return TRUE;
}

gboolean
fl_capabilities_validate (JsonNode *node,
                          GError  **error)
{
  JsonObject *object;
  JsonNode *member;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return invalid (error, "Field “capabilities” must be an object");
  object = json_node_get_object (node);

  member = json_object_get_member (object, "metrics");
  if (member != NULL)
    {
      JsonArray *metrics;

      if (!JSON_NODE_HOLDS_ARRAY (member))
        return invalid (error, "capabilities.metrics must be an array of strings");
      metrics = json_node_get_array (member);
      for (guint i = 0; i < json_array_get_length (metrics); i++)
        if (!is_string_node (json_array_get_element (metrics, i)))
          return invalid (error, "capabilities.metrics[%u] must be a string", i);
    }

  member = json_object_get_member (object, "commands");
  if (member != NULL)
    {
      JsonArray *commands;
      g_autoptr (GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);

      if (!JSON_NODE_HOLDS_ARRAY (member))
        return invalid (error, "capabilities.commands must be an array");
      commands = json_node_get_array (member);
      for (guint i = 0; i < json_array_get_length (commands); i++)
        {
          JsonNode *command = json_array_get_element (commands, i);
          const char *name;

          if (!check_command (command, i, error))
            return FALSE;
          name = json_object_get_string_member (json_node_get_object (command), "name");
          if (!g_hash_table_add (names, (gpointer) name))
            return invalid (error, "capabilities.commands declares “%s” twice", name);
        }
    }

  return TRUE;
}

/* Fields a client may send back unchanged from a GET; they are ignored. */
static const char *read_only_fields[] = {
  "status", "lastSeen", "battery", "rssi", "createdAt", "updatedAt", "firmware", NULL,
};

static const char *writable_fields[] = {
  "deviceId", "name", "type", "model", "manufacturer", "capabilities", "tags",
  "heartbeatTimeoutSec", "location", NULL,
};

gboolean
fl_device_update_from_json (FlDevice   *self,
                            JsonObject *object,
                            gboolean    registering,
                            GError    **error)
{
  const char *name = NULL, *type = NULL, *model = NULL, *manufacturer = NULL, *firmware = NULL;
  JsonNode *capabilities, *tags_node, *timeout_node, *location, *status_node;
  g_auto (GStrv) tags = NULL;
  gint64 heartbeat = -1;
  double lat = 0, lon = 0, alt = 0;
  FlDeviceStatus status = self->status;
  gboolean set_status = FALSE;
  JsonObjectIter iter;
  const char *member_name;
  JsonNode *member;

  g_return_val_if_fail (FL_IS_DEVICE (self), FALSE);

  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &member_name, &member))
    if (!g_strv_contains (writable_fields, member_name) &&
        !g_strv_contains (read_only_fields, member_name))
      return invalid (error, "Unknown field “%s”", member_name);

  if (!check_text (object, "name", MAX_TEXT_LENGTH, &name, error) ||
      !check_text (object, "type", 64, &type, error) ||
      !check_text (object, "model", MAX_TEXT_LENGTH, &model, error) ||
      !check_text (object, "manufacturer", MAX_TEXT_LENGTH, &manufacturer, error))
    return FALSE;
  if (registering && !check_text (object, "firmware", MAX_TEXT_LENGTH, &firmware, error))
    return FALSE;

  capabilities = json_object_get_member (object, "capabilities");
  if (capabilities != NULL && !fl_capabilities_validate (capabilities, error))
    return FALSE;

  tags_node = json_object_get_member (object, "tags");
  if (tags_node != NULL)
    {
      JsonArray *array;
      guint n;

      if (!JSON_NODE_HOLDS_ARRAY (tags_node))
        return invalid (error, "Field “tags” must be an array of strings");
      array = json_node_get_array (tags_node);
      n = json_array_get_length (array);
      if (n > MAX_TAGS)
        return invalid (error, "A device may have at most %d tags", MAX_TAGS);
      tags = g_new0 (char *, n + 1);
      for (guint i = 0; i < n; i++)
        {
          JsonNode *tag = json_array_get_element (array, i);

          if (!is_string_node (tag) || *json_node_get_string (tag) == '\0' ||
              strlen (json_node_get_string (tag)) > MAX_TAG_LENGTH)
            return invalid (error, "tags[%u] must be a string of 1 to %d characters", i, MAX_TAG_LENGTH);
          tags[i] = g_strdup (json_node_get_string (tag));
        }
    }

  timeout_node = json_object_get_member (object, "heartbeatTimeoutSec");
  if (timeout_node != NULL)
    {
      if (!JSON_NODE_HOLDS_VALUE (timeout_node) || json_node_get_value_type (timeout_node) != G_TYPE_INT64 ||
          json_node_get_int (timeout_node) < 1 || json_node_get_int (timeout_node) > MAX_HEARTBEAT_SEC)
        return invalid (error, "Field “heartbeatTimeoutSec” must be an integer from 1 to %d", MAX_HEARTBEAT_SEC);
      heartbeat = json_node_get_int (timeout_node);
    }

  location = json_object_get_member (object, "location");
  if (location != NULL && !JSON_NODE_HOLDS_NULL (location))
    {
      JsonObject *loc;
      JsonNode *n_lat, *n_lon, *n_alt;

      if (!JSON_NODE_HOLDS_OBJECT (location))
        return invalid (error, "Field “location” must be an object {lat, lon, alt}");
      loc = json_node_get_object (location);
      n_lat = json_object_get_member (loc, "lat");
      n_lon = json_object_get_member (loc, "lon");
      n_alt = json_object_get_member (loc, "alt");
      if (n_lat == NULL || n_lon == NULL || !is_number_node (n_lat) || !is_number_node (n_lon))
        return invalid (error, "Field “location” needs numbers “lat” and “lon”");
      lat = json_node_get_double (n_lat);
      lon = json_node_get_double (n_lon);
      if (lat < -90 || lat > 90 || lon < -180 || lon > 180)
        return invalid (error, "Field “location” is out of range (lat -90..90, lon -180..180)");
      if (n_alt != NULL && !JSON_NODE_HOLDS_NULL (n_alt))
        {
          if (!is_number_node (n_alt))
            return invalid (error, "Field “location.alt” must be a number");
          alt = json_node_get_double (n_alt);
        }
    }

  /* An update may put a device into maintenance, and take it out of
   * maintenance or decommissioning ("offline"); online and offline are
   * otherwise the relay's to decide, from what the device sends.  A value
   * equal to the current status is accepted and ignored, so a client can
   * send back what it read. */
  status_node = json_object_get_member (object, "status");
  if (!registering && status_node != NULL)
    {
      if (!is_string_node (status_node) || !fl_device_status_from_string (json_node_get_string (status_node), &status))
        return invalid (error, "Field “status” must be “maintenance” or “offline”");
      if (status != self->status)
        {
          if (status == FL_DEVICE_STATUS_DECOMMISSIONED)
            return invalid (error, "Deactivate a device with DELETE, not by setting its status");
          if (status == FL_DEVICE_STATUS_ONLINE)
            return invalid (error, "A device becomes online by sending; set “maintenance” or “offline”");
          set_status = TRUE;
        }
    }

  /* Everything checked: apply. */
  if (name)
    {
      g_free (self->name);
      self->name = g_strdup (name);
    }
  if (type)
    set_ref_string (&self->device_type, type);
  if (model)
    set_ref_string (&self->model, model);
  if (manufacturer)
    set_ref_string (&self->manufacturer, manufacturer);
  if (firmware)
    set_ref_string (&self->firmware, firmware);
  if (capabilities != NULL)
    set_capabilities (self, capabilities);
  if (tags != NULL)
    {
      g_free (self->tags);
      self->tags = strv_pack ((const char *const *) tags);
    }
  if (heartbeat > 0)
    self->heartbeat_timeout = heartbeat;
  if (location != NULL)
    {
      self->has_location = !JSON_NODE_HOLDS_NULL (location);
      self->lat = lat;
      self->lon = lon;
      self->alt = alt;
    }
  if (set_status)
    self->status = status;

  return TRUE;
}

/* ---- JSON out --------------------------------------------------------- */

static void
append_text_member (GString    *out,
                    const char *name,
                    const char *value)
{
  g_string_append_printf (out, ",\"%s\":", name);
  if (value != NULL)
    fl_json_append_string (out, value);
  else
    g_string_append (out, "null");
}

static void
append_number_member (GString    *out,
                      const char *separator,
                      const char *name,
                      double      value)
{
  g_string_append_printf (out, "%s\"%s\":", separator, name);
  if (isnan (value))
    g_string_append (out, "null");
  else if (value == (double) (gint64) value)
    g_string_append_printf (out, "%" G_GINT64_FORMAT, (gint64) value);
  else
    {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];

      g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.10g", value));
    }
}

static void
append_json (FlDevice *self,
             GString  *out,
             gboolean  with_secret_hash)
{
  g_string_append (out, "{\"deviceId\":");
  fl_json_append_string (out, self->device_id);
  append_text_member (out, "name", self->name);
  append_text_member (out, "type", self->device_type);
  append_text_member (out, "model", self->model);
  append_text_member (out, "manufacturer", self->manufacturer);
  append_text_member (out, "firmware", self->firmware);
  append_text_member (out, "status", fl_device_status_to_string (self->status));
  if (self->last_seen > 0)
    g_string_append_printf (out, ",\"lastSeen\":%" G_GINT64_FORMAT, self->last_seen);
  else
    g_string_append (out, ",\"lastSeen\":null");
  append_number_member (out, ",", "battery", self->battery);
  append_number_member (out, ",", "rssi", self->rssi);
  if (self->has_location)
    {
      g_string_append (out, ",\"location\":{");
      append_number_member (out, "", "lat", self->lat);
      append_number_member (out, ",", "lon", self->lon);
      append_number_member (out, ",", "alt", self->alt);
      g_string_append_c (out, '}');
    }
  else
    g_string_append (out, ",\"location\":null");

  g_string_append (out, ",\"capabilities\":");
  g_string_append (out, self->capabilities_json != NULL ? self->capabilities_json : "{}");

  g_string_append (out, ",\"tags\":[");
  for (guint i = 0; self->tags[i] != NULL; i++)
    {
      if (i > 0)
        g_string_append_c (out, ',');
      fl_json_append_string (out, self->tags[i]);
    }
  g_string_append_c (out, ']');
  g_string_append_printf (out, ",\"heartbeatTimeoutSec\":%u", self->heartbeat_timeout);
  g_string_append_printf (out, ",\"createdAt\":%" G_GINT64_FORMAT ",\"updatedAt\":%" G_GINT64_FORMAT,
                          self->created_at, self->updated_at);
  if (with_secret_hash && self->secret_hash != NULL)
    append_text_member (out, "secretHash", self->secret_hash);
  g_string_append_c (out, '}');
}

void
fl_device_append_json (FlDevice *self,
                       GString  *out)
{
  append_json (self, out, FALSE);
}

/**
 * fl_device_to_json_node:
 *
 * Returns: (transfer full): the device as API JSON
 */
JsonNode *
fl_device_to_json_node (FlDevice *self)
{
  g_autoptr (GString) out = g_string_new (NULL);

  fl_device_append_json (self, out);

  return json_from_string (out->str, NULL);
}

/**
 * fl_device_serialize:
 *
 * Returns: (transfer full): the store's row form, secret hash included
 */
char *
fl_device_serialize (FlDevice *self)
{
  GString *out = g_string_new (NULL);

  append_json (self, out, TRUE);

  return g_string_free (out, FALSE);
}

static const char *
get_optional_string (JsonObject *object,
                     const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && is_string_node (node) ? json_node_get_string (node) : NULL;
}

static double
get_optional_number (JsonObject *object,
                     const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && is_number_node (node) ? json_node_get_double (node) : NAN;
}

/**
 * fl_device_deserialize:
 *
 * Reads the form fl_device_serialize() writes.
 *
 * Returns: (transfer full): the device, or NULL with @error set
 */
FlDevice *
fl_device_deserialize (const char *text,
                       GError    **error)
{
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (FlDevice) self = NULL;
  JsonObject *object;
  const char *device_id;
  JsonNode *node;
  GError *local_error = NULL;

  root = json_from_string (text, &local_error);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MALFORMED,
                   "Not a stored device: %s", local_error ? local_error->message : "not an object");
      g_clear_error (&local_error);
      return NULL;
    }
  object = json_node_get_object (root);

  device_id = get_optional_string (object, "deviceId");
  if (device_id == NULL)
    {
      g_set_error_literal (error, FL_CODEC_ERROR, FL_CODEC_ERROR_MISSING_FIELD,
                           "A stored device has no deviceId");
      return NULL;
    }

  self = fl_device_new (device_id);
  g_free (self->name);
  self->name = g_strdup (get_optional_string (object, "name"));
  set_ref_string (&self->device_type, get_optional_string (object, "type"));
  set_ref_string (&self->model, get_optional_string (object, "model"));
  set_ref_string (&self->manufacturer, get_optional_string (object, "manufacturer"));
  set_ref_string (&self->firmware, get_optional_string (object, "firmware"));
  self->secret_hash = g_strdup (get_optional_string (object, "secretHash"));
  if (!fl_device_status_from_string (get_optional_string (object, "status"), &self->status))
    self->status = FL_DEVICE_STATUS_OFFLINE;
  self->battery = get_optional_number (object, "battery");
  self->rssi = get_optional_number (object, "rssi");
  if (!isnan (get_optional_number (object, "lastSeen")))
    self->last_seen = json_object_get_int_member (object, "lastSeen");
  self->created_at = json_object_get_int_member_with_default (object, "createdAt", 0);
  self->updated_at = json_object_get_int_member_with_default (object, "updatedAt", 0);
  self->heartbeat_timeout = json_object_get_int_member_with_default (object, "heartbeatTimeoutSec",
                                                                     FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC);

  node = json_object_get_member (object, "location");
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *loc = json_node_get_object (node);

      self->has_location = TRUE;
      self->lat = get_optional_number (loc, "lat");
      self->lon = get_optional_number (loc, "lon");
      self->alt = get_optional_number (loc, "alt");
      if (isnan (self->alt))
        self->alt = 0;
    }

  node = json_object_get_member (object, "capabilities");
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    set_capabilities (self, node);

  node = json_object_get_member (object, "tags");
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      guint n = json_array_get_length (array);
      g_autofree const char **tags = g_new0 (const char *, n + 1);

      for (guint i = 0, j = 0; i < n; i++)
        if (is_string_node (json_array_get_element (array, i)))
          tags[j++] = json_array_get_string_element (array, i);
      g_free (self->tags);
      self->tags = strv_pack (tags);
    }

  return g_steal_pointer (&self);
}
