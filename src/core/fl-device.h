/* fl-device.h: a device, as PLATFORM.md (Device) describes it. */
#pragma once

#include <json-glib/json-glib.h>

#include "fl-event.h"

G_BEGIN_DECLS

typedef enum {
  FL_DEVICE_STATUS_OFFLINE,
  FL_DEVICE_STATUS_ONLINE,
  FL_DEVICE_STATUS_MAINTENANCE,
  FL_DEVICE_STATUS_DECOMMISSIONED,
} FlDeviceStatus;

const char *fl_device_status_to_string   (FlDeviceStatus status);
gboolean    fl_device_status_from_string (const char     *str,
                                          FlDeviceStatus *status);

#define FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC 60
#define FL_DEVICE_MAX_ID_LENGTH                 128

#define FL_TYPE_DEVICE (fl_device_get_type ())
G_DECLARE_FINAL_TYPE (FlDevice, fl_device, FL, DEVICE, GObject)

FlDevice       *fl_device_new                   (const char *device_id);

/**
 * FlDeviceRecord:
 *
 * A device's fields as a store keeps them, once they came from an
 * FlDevice (and so were validated then).  The #GRefString fields are
 * shared, not copied: a store loading a fleet passes one string for all
 * the devices of one model, firmware or set of capabilities.
 */
typedef struct
{
  const char         *device_id;
  const char         *name;           /* NULL: the id */
  GRefString         *device_type;    /* NULL: none */
  GRefString         *model;
  GRefString         *manufacturer;
  GRefString         *firmware;
  GRefString         *capabilities;   /* a compact JSON object; NULL: {} */
  const char *const  *tags;           /* NULL: none */
  const char         *secret_hash;
  FlDeviceStatus      status;
  guint               heartbeat_timeout;
  gboolean            has_location;
  double              lat;
  double              lon;
  double              alt;
  double              battery;        /* NAN: unknown */
  double              rssi;           /* NAN: unknown */
  gint64              last_seen;
  gint64              created_at;
  gint64              updated_at;
} FlDeviceRecord;

FlDevice       *fl_device_new_from_record       (const FlDeviceRecord *record);

const char     *fl_device_get_device_id         (FlDevice *self);
const char     *fl_device_get_name              (FlDevice *self);
const char     *fl_device_get_device_type       (FlDevice *self);
const char     *fl_device_get_model             (FlDevice *self);
const char     *fl_device_get_manufacturer      (FlDevice *self);
const char     *fl_device_get_firmware          (FlDevice *self);
FlDeviceStatus  fl_device_get_status            (FlDevice *self);
gint64          fl_device_get_last_seen         (FlDevice *self);
gint64          fl_device_get_created_at        (FlDevice *self);
gint64          fl_device_get_updated_at        (FlDevice *self);
guint           fl_device_get_heartbeat_timeout (FlDevice *self);
/* battery (percent) and rssi (dBm) are NAN until known */
double          fl_device_get_battery           (FlDevice *self);
double          fl_device_get_rssi              (FlDevice *self);
gboolean        fl_device_get_location          (FlDevice *self,
                                                 double   *lat,
                                                 double   *lon,
                                                 double   *alt);
JsonObject     *fl_device_get_capabilities      (FlDevice *self);
const char    *const *fl_device_get_tags        (FlDevice *self);
gboolean        fl_device_has_tag               (FlDevice   *self,
                                                 const char *tag);
/* SHA-256 (hex) of the device secret; never the secret itself */
const char     *fl_device_get_secret_hash       (FlDevice *self);

void            fl_device_set_status            (FlDevice       *self,
                                                 FlDeviceStatus  status);
void            fl_device_set_last_seen         (FlDevice *self,
                                                 gint64    last_seen);
void            fl_device_set_updated_at        (FlDevice *self,
                                                 gint64    updated_at);
void            fl_device_set_created_at        (FlDevice *self,
                                                 gint64    created_at);
void            fl_device_set_secret_hash       (FlDevice   *self,
                                                 const char *secret_hash);

/* Applies the well-known fields of an event's data (battery, rssi or
 * signal, lat/lon/alt, firmware, model, manufacturer) at time ts (ms).
 * Returns TRUE when a field the operator sees changed. */
gboolean        fl_device_apply_event_data      (FlDevice   *self,
                                                 JsonObject *data,
                                                 gint64      ts);

/* The same, from an event's data fields (no JsonObject needed). */
gboolean        fl_device_apply_event           (FlDevice      *self,
                                                 const FlEvent *event,
                                                 gint64         ts);

/* Applies the fields of a registration (POST /devices) or an update (PUT)
 * body after validating all of them; on error nothing changes. */
gboolean        fl_device_update_from_json      (FlDevice   *self,
                                                 JsonObject *object,
                                                 gboolean    registering,
                                                 GError    **error);

/* The device as API JSON (deviceId, name, ... updatedAt). */
JsonNode       *fl_device_to_json_node          (FlDevice *self);
void            fl_device_append_json           (FlDevice *self,
                                                 GString  *out);

/* The store's own row form: everything, the secret hash included. */
char           *fl_device_serialize             (FlDevice *self);
FlDevice       *fl_device_deserialize           (const char *text,
                                                 GError    **error);

/* Checks a capabilities object: {"metrics": [string], "commands":
 * [{"name", "category", "params": {NAME: {"type", "min", "max",
 * "required", "enum"}}}]}. */
gboolean        fl_capabilities_validate        (JsonNode *node,
                                                 GError  **error);

gboolean        fl_device_id_is_valid           (const char *device_id);

G_END_DECLS
