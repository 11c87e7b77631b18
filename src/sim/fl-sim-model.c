/* fl-sim-model.c: a simulated device's identity and readings. */
#define G_LOG_DOMAIN "fl-sim-model"

#include "config.h"

#include <math.h>

#include "fl-sim-model.h"

#define LOCATION_INTERVAL_MS (60 * 1000)
#define MS_PER_HOUR (3600.0 * 1000.0)

typedef struct
{
  const char *model;
  const char *manufacturer;
  const char *type;
  const char *firmware[3];
} CatalogEntry;

static const CatalogEntry catalog[] = {
  { "TH-1", "Acme Sensors", "environment_sensor", { "1.4.2", "1.4.3", "1.5.0" } },
  { "EnviroNode 3", "Northwind IoT", "environment_sensor", { "3.0.7", "3.1.0", "3.1.2" } },
  { "ClimaTrack S", "Helix Devices", "climate_logger", { "2.2.0", "2.2.1", "2.3.4" } },
  { "AirSense Mini", "Kestrel Labs", "air_monitor", { "0.9.8", "1.0.1", "1.0.3" } },
};

typedef struct
{
  const char *name;
  double      lat;
  double      lon;
  double      alt;
} Site;

static const Site sites[] = {
  { "berlin", 52.5200, 13.4050, 34.0 },
  { "hamburg", 53.5511, 9.9937, 6.0 },
  { "munich", 48.1372, 11.5756, 519.0 },
  { "lyon", 45.7640, 4.8357, 173.0 },
  { "rotterdam", 51.9244, 4.4777, 2.0 },
};

typedef struct
{
  const char *name;
  double      temperature; /* mean, °C */
  double      amplitude;   /* of the daily cycle, °C */
  double      humidity;    /* mean, % */
} Room;

static const Room rooms[] = {
  { "office", 21.5, 1.5, 42.0 },
  { "lab", 20.5, 1.0, 45.0 },
  { "warehouse", 15.0, 4.0, 55.0 },
  { "server-room", 23.5, 0.8, 35.0 },
  { "greenhouse", 24.0, 6.0, 75.0 },
  { "cold-store", 4.0, 0.6, 85.0 },
};

struct _FlSimModel
{
  char               *device_id;
  const CatalogEntry *entry;
  const Site         *site;
  const Room         *room;
  const char         *firmware;
  guint               room_number;
  char               *tags[3];

  double temperature_base;
  double temperature_amplitude;
  double temperature_drift;
  double humidity_base;
  double humidity_drift;

  double   battery;      /* % */
  double   drain_per_ms; /* % per ms */
  double   charge_per_ms;
  gboolean charging;

  double rssi_base; /* dBm */
  double rssi;

  double home_lat;
  double home_lon;
  double lat;
  double lon;
  double alt;

  gint64 boot_ms;
  gint64 last_update_ms;
  gint64 last_event_ms;
  gint64 last_heartbeat_ms;
  gint64 last_location_ms;
  char  *status_reason; /* set: the next event is status */
};

static double
gaussian (GRand *rand)
{
  /* Box-Muller */
  double u1 = g_rand_double_range (rand, 1e-12, 1.0);
  double u2 = g_rand_double (rand);

  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

static double
round_to (double value,
          double scale)
{
  return round (value * scale) / scale;
}

FlSimModel *
fl_sim_model_new (const char *device_id)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (g_str_hash (device_id));
  FlSimModel       *model = g_new0 (FlSimModel, 1);

  model->device_id = g_strdup (device_id);
  model->entry = &catalog[g_rand_int_range (rand, 0, G_N_ELEMENTS (catalog))];
  model->site = &sites[g_rand_int_range (rand, 0, G_N_ELEMENTS (sites))];
  model->room = &rooms[g_rand_int_range (rand, 0, G_N_ELEMENTS (rooms))];
  model->firmware = model->entry->firmware[g_rand_int_range (rand, 0, G_N_ELEMENTS (model->entry->firmware))];
  model->room_number = g_rand_int_range (rand, 1, 10);

  model->tags[0] = g_strdup_printf ("site:%s", model->site->name);
  model->tags[1] = g_strdup_printf ("room:%s-%u", model->room->name, model->room_number);
  model->tags[2] = g_strdup ("sim");

  model->temperature_base = model->room->temperature + g_rand_double_range (rand, -1.5, 1.5);
  model->temperature_amplitude = model->room->amplitude * g_rand_double_range (rand, 0.7, 1.3);
  model->humidity_base = model->room->humidity + g_rand_double_range (rand, -5.0, 5.0);

  /* a full battery lasts 6 to 18 hours and charges in about an hour */
  model->battery = g_rand_double_range (rand, 35.0, 100.0);
  model->drain_per_ms = 100.0 / (g_rand_double_range (rand, 6.0, 18.0) * MS_PER_HOUR);
  model->charge_per_ms = 100.0 / (g_rand_double_range (rand, 0.75, 1.5) * MS_PER_HOUR);

  model->rssi_base = g_rand_double_range (rand, -88.0, -52.0);
  model->rssi = model->rssi_base;

  /* within a couple of hundred metres of the site */
  model->home_lat = model->site->lat + g_rand_double_range (rand, -0.002, 0.002);
  model->home_lon = model->site->lon + g_rand_double_range (rand, -0.003, 0.003);
  model->lat = model->home_lat;
  model->lon = model->home_lon;
  model->alt = model->site->alt + 3.5 * g_rand_int_range (rand, 0, 6);

  model->status_reason = g_strdup ("power_on");

  return model;
}

void
fl_sim_model_free (FlSimModel *model)
{
  if (model == NULL)
    return;

  g_free (model->device_id);
  for (guint i = 0; i < G_N_ELEMENTS (model->tags); i++)
    g_free (model->tags[i]);
  g_free (model->status_reason);
  g_free (model);
}

const char *
fl_sim_model_get_device_id (FlSimModel *model)
{
  return model->device_id;
}

gint64
fl_sim_model_get_last_event_time (FlSimModel *model)
{
  return model->last_event_ms;
}

gint64
fl_sim_model_get_last_heartbeat (FlSimModel *model)
{
  return model->last_heartbeat_ms;
}

void
fl_sim_model_reboot (FlSimModel *model,
                     const char *reason)
{
  g_free (model->status_reason);
  model->status_reason = g_strdup (reason);
}

static JsonArray *
tags_array (FlSimModel *model)
{
  JsonArray *array = json_array_new ();

  for (guint i = 0; i < G_N_ELEMENTS (model->tags); i++)
    json_array_add_string_element (array, model->tags[i]);

  return array;
}

static JsonObject *
command (const char *name,
         const char *category,
         JsonObject *params)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "name", name);
  json_object_set_string_member (object, "category", category);
  json_object_set_object_member (object, "params", params);

  return object;
}

JsonObject *
fl_sim_model_build_registration (FlSimModel *model)
{
  JsonObject      *registration = json_object_new ();
  JsonObject      *capabilities = json_object_new ();
  JsonArray       *metrics = json_array_new ();
  JsonArray       *commands = json_array_new ();
  JsonObject      *params;
  JsonObject      *param;
  g_autofree char *name = NULL;

  json_array_add_string_element (metrics, "temperature");
  json_array_add_string_element (metrics, "humidity");
  json_array_add_string_element (metrics, "battery");
  json_array_add_string_element (metrics, "rssi");
  json_object_set_array_member (capabilities, "metrics", metrics);

  params = json_object_new ();
  param = json_object_new ();
  json_object_set_string_member (param, "type", "integer");
  json_object_set_int_member (param, "min", 1);
  json_object_set_int_member (param, "max", 3600);
  json_object_set_boolean_member (param, "required", TRUE);
  json_object_set_object_member (params, "seconds", param);
  json_array_add_object_element (commands, command ("set_interval", "configuration", params));

  json_array_add_object_element (commands, command ("reboot", "maintenance", json_object_new ()));

  params = json_object_new ();
  param = json_object_new ();
  json_object_set_string_member (param, "type", "boolean");
  json_object_set_boolean_member (param, "required", TRUE);
  json_object_set_object_member (params, "on", param);
  json_array_add_object_element (commands, command ("set_led", "control", params));

  json_object_set_array_member (capabilities, "commands", commands);

  name = g_strdup_printf ("%s %s-%u (%s)", model->entry->model, model->room->name,
                          model->room_number, model->site->name);

  json_object_set_string_member (registration, "deviceId", model->device_id);
  json_object_set_string_member (registration, "name", name);
  json_object_set_string_member (registration, "type", model->entry->type);
  json_object_set_string_member (registration, "model", model->entry->model);
  json_object_set_string_member (registration, "manufacturer", model->entry->manufacturer);
  json_object_set_object_member (registration, "capabilities", capabilities);
  json_object_set_array_member (registration, "tags", tags_array (model));
  json_object_set_int_member (registration, "heartbeatTimeoutSec", FL_DEVICE_DEFAULT_HEARTBEAT_TIMEOUT_SEC);

  return registration;
}

static FlEvent *
make_event (FlSimModel *model,
            gint64      now_ms,
            const char *type,
            JsonObject *data,
            const char *priority)
{
  g_autoptr (JsonObject) metadata = json_object_new ();
  g_autofree char       *id = g_uuid_string_random ();

  json_object_set_string_member (metadata, "version", model->firmware);
  json_object_set_array_member (metadata, "tags", tags_array (model));
  json_object_set_string_member (metadata, "priority", priority);

  model->last_event_ms = now_ms;

  return fl_event_new (id, now_ms, model->device_id, type, data, metadata);
}

/* Moves the slow processes on to now_ms. */
static void
advance (FlSimModel *model,
         gint64      now_ms,
         GRand      *rand)
{
  gint64 dt = model->last_update_ms > 0 ? MAX (now_ms - model->last_update_ms, 0) : 0;

  if (model->boot_ms == 0)
    model->boot_ms = now_ms;
  model->last_update_ms = now_ms;

  if (model->charging)
    {
      model->battery += model->charge_per_ms * dt;
      if (model->battery >= 100.0)
        {
          model->battery = 100.0;
          model->charging = FALSE;
        }
    }
  else
    {
      model->battery -= model->drain_per_ms * dt;
      if (model->battery <= 12.0)
        model->charging = TRUE;
    }
  model->battery = CLAMP (model->battery, 0.0, 100.0);

  /* mean-reverting random walks */
  model->temperature_drift = 0.97 * model->temperature_drift + 0.08 * gaussian (rand);
  model->humidity_drift = 0.97 * model->humidity_drift + 0.3 * gaussian (rand);
  model->rssi += 0.1 * (model->rssi_base - model->rssi) + 1.5 * gaussian (rand);
  model->rssi = CLAMP (model->rssi, -110.0, -30.0);
  model->lat += 0.05 * (model->home_lat - model->lat) + 2e-6 * gaussian (rand);
  model->lon += 0.05 * (model->home_lon - model->lon) + 3e-6 * gaussian (rand);
}

static double
temperature_at (FlSimModel *model,
                gint64      now_ms,
                GRand      *rand)
{
  /* local solar hour; warmest around 15:00 */
  double hour = fmod ((double) now_ms / MS_PER_HOUR + model->site->lon / 15.0, 24.0);
  double cycle = sin (2.0 * G_PI * (hour - 9.0) / 24.0);

  return model->temperature_base + model->temperature_amplitude * cycle + model->temperature_drift + 0.05 * gaussian (rand);
}

static FlEvent *
status_event (FlSimModel *model,
              gint64      now_ms)
{
  g_autoptr (JsonObject) data = json_object_new ();
  g_autofree char       *reason = g_steal_pointer (&model->status_reason);

  json_object_set_string_member (data, "state", "online");
  json_object_set_string_member (data, "reason", reason);
  json_object_set_string_member (data, "firmware", model->firmware);
  json_object_set_string_member (data, "model", model->entry->model);
  json_object_set_string_member (data, "manufacturer", model->entry->manufacturer);
  json_object_set_double_member (data, "battery", round_to (model->battery, 10));

  /* a status event tells the relay the device is alive too */
  model->last_heartbeat_ms = now_ms;

  return make_event (model, now_ms, "status", data, "medium");
}

static FlEvent *
location_event (FlSimModel *model,
                gint64      now_ms)
{
  g_autoptr (JsonObject) data = json_object_new ();

  json_object_set_double_member (data, "lat", round_to (model->lat, 1e6));
  json_object_set_double_member (data, "lon", round_to (model->lon, 1e6));
  json_object_set_double_member (data, "alt", round_to (model->alt, 10));

  model->last_location_ms = now_ms;

  return make_event (model, now_ms, "location", data, "low");
}

static FlEvent *
telemetry_event (FlSimModel *model,
                 gint64      now_ms,
                 GRand      *rand)
{
  g_autoptr (JsonObject) data = json_object_new ();
  double                 temperature = temperature_at (model, now_ms, rand);
  double                 humidity;

  /* warmer air holds more water: relative humidity falls as it warms */
  humidity = model->humidity_base - 1.8 * (temperature - model->temperature_base) + model->humidity_drift + 0.2 * gaussian (rand);
  humidity = CLAMP (humidity, 5.0, 100.0);

  json_object_set_double_member (data, "temperature", round_to (temperature, 100));
  json_object_set_double_member (data, "humidity", round_to (humidity, 10));
  json_object_set_double_member (data, "battery", round_to (model->battery, 10));
  json_object_set_int_member (data, "rssi", (gint64) round (model->rssi));

  return make_event (model, now_ms, "telemetry", data,
                     model->battery < 15.0 ? "high" : "low");
}

FlEvent *
fl_sim_model_next_event (FlSimModel *model,
                         gint64      now_ms,
                         GRand      *rand)
{
  advance (model, now_ms, rand);

  if (model->status_reason != NULL)
    return status_event (model, now_ms);

  if (now_ms - model->last_location_ms >= LOCATION_INTERVAL_MS)
    return location_event (model, now_ms);

  return telemetry_event (model, now_ms, rand);
}

FlEvent *
fl_sim_model_heartbeat (FlSimModel *model,
                        gint64      now_ms)
{
  g_autoptr (JsonObject) data = json_object_new ();

  if (model->boot_ms == 0)
    model->boot_ms = now_ms;

  json_object_set_int_member (data, "uptime", (now_ms - model->boot_ms) / 1000);
  model->last_heartbeat_ms = now_ms;

  return make_event (model, now_ms, "heartbeat", data, "low");
}
