/* fl-device-page.c: one device: state, live values, charts, details.
 *
 * Each metric has a live-value row and (unless it is a coordinate) a
 * chart.  A chart gets the cache's points of the last CACHED_SPAN_MS at
 * once and the stream's points as they come (follow mode).  When its
 * range reaches before what was loaded, the cache is asked for the
 * longer range (debounced).  Where the cache's points start later than
 * the range (a first sign-in, a long time away), the server is asked for
 * buckets of the part they miss; for ranges longer than the cache keeps,
 * for buckets of the whole range.
 */
#define G_LOG_DOMAIN "fl-device-page"

#include "config.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "fl-device-page.h"
#include "fl-a11y.h"

#define CACHED_SPAN_MS   (G_GINT64_CONSTANT (24) * 3600 * 1000)
#define RANGE_DEBOUNCE   300
#define CHART_HEIGHT     180
#define FUTURE_SLACK_MS  (G_GINT64_CONSTANT (5) * 60 * 1000)

typedef struct _Metric Metric;

struct _FlDevicePage
{
  GtkWidget       parent_instance;

  FlFleet        *fleet;
  FlDevice       *device;
  GCancellable   *cancellable;  /* per device */
  GHashTable     *metrics;      /* name -> Metric */
  GPtrArray      *order;        /* Metric, as they appeared */
  gint64          range_span;   /* ms, from the range dropdown */

  GtkWidget      *box;
  AdwWindowTitle *window_title;
  GtkImage       *status_icon;
  GtkLabel       *status_label;
  AdwActionRow   *last_seen_row;
  AdwActionRow   *battery_row;
  AdwActionRow   *signal_row;
  AdwPreferencesGroup *live_group;
  AdwActionRow   *no_values_row;
  GtkDropDown    *range_dropdown;
  GtkBox         *charts_box;
  GtkLabel       *no_charts_label;
  AdwActionRow   *id_row;
  AdwActionRow   *model_row;
  AdwActionRow   *manufacturer_row;
  AdwActionRow   *firmware_row;
  AdwActionRow   *type_row;
  AdwActionRow   *location_row;
  AdwActionRow   *tags_row;
  AdwActionRow   *metrics_row;
  AdwActionRow   *commands_row;
  AdwActionRow   *registered_row;
};

struct _Metric
{
  FlDevicePage *self;
  char         *name;
  AdwActionRow *row;
  GtkLabel     *value_label;
  gboolean      has_value;
  double        value;
  gint64        t;

  GtkWidget    *chart_box;   /* heading + chart; NULL for coordinates */
  FlChart      *chart;
  guint         series;
  gint64        loaded_from; /* the cache's points are loaded from here on */
  gboolean      loading;
  GArray       *pending;     /* live points while a load runs */
  guint         range_source;
  gint64        want_from, want_to;
  gint64        buckets_from, buckets_to;
  guint         buckets_asked; /* requests made: only the last one's reply counts */
};

G_DEFINE_FINAL_TYPE (FlDevicePage, fl_device_page, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_FLEET,
  PROP_DEVICE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static const gint64 range_spans[] = {
  G_GINT64_CONSTANT (3600) * 1000,
  G_GINT64_CONSTANT (24) * 3600 * 1000,
  G_GINT64_CONSTANT (7) * 24 * 3600 * 1000,
  G_GINT64_CONSTANT (30) * 24 * 3600 * 1000,
  G_GINT64_CONSTANT (365) * 24 * 3600 * 1000,
};

/* ---- metrics: names, units, values --------------------------------------- */

static const struct {
  const char *name;
  const char *label;
  const char *unit;
} known_metrics[] = {
  { "temperature", N_("Temperature"), "°C" },
  { "humidity", N_("Humidity"), "%" },
  { "battery", N_("Battery"), "%" },
  { "rssi", N_("Signal Strength"), "dBm" },
  { "signal", N_("Signal"), "%" },
  { "pressure", N_("Pressure"), "hPa" },
  { "co2", N_("CO₂"), "ppm" },
  { "voltage", N_("Voltage"), "V" },
  { "current", N_("Current"), "A" },
  { "power", N_("Power"), "W" },
  { "energy", N_("Energy"), "kWh" },
  { "lux", N_("Illuminance"), "lx" },
  { "alt", N_("Altitude"), "m" },
  { "lat", N_("Latitude"), "°" },
  { "lon", N_("Longitude"), "°" },
  { "uptime", N_("Uptime"), "s" },
};

const char *
fl_device_page_metric_unit (const char *metric)
{
  for (guint i = 0; i < G_N_ELEMENTS (known_metrics); i++)
    if (g_strcmp0 (known_metrics[i].name, metric) == 0)
      return known_metrics[i].unit;

  return NULL;
}

static char *
metric_label (const char *metric)
{
  char *label;

  for (guint i = 0; i < G_N_ELEMENTS (known_metrics); i++)
    if (g_str_equal (known_metrics[i].name, metric))
      return g_strdup (_(known_metrics[i].label));

  /* "flow_rate" -> "Flow rate" */
  label = g_strdelimit (g_strdup (metric), "_", ' ');
  if (label[0] != '\0')
    label[0] = g_ascii_toupper (label[0]);

  return label;
}

static gboolean
is_coordinate (const char *metric)
{
  return g_str_equal (metric, "lat") || g_str_equal (metric, "lon") || g_str_equal (metric, "alt");
}

static char *
format_value (double      value,
              const char *unit)
{
  char number[G_ASCII_DTOSTR_BUF_SIZE];

  if (value == floor (value) && fabs (value) < 1e12)
    g_snprintf (number, sizeof number, "%.0f", value);
  else if (fabs (value) >= 100)
    g_snprintf (number, sizeof number, "%.1f", value);
  else
    g_snprintf (number, sizeof number, "%.3g", value);

  if (unit == NULL)
    return g_strdup (number);

  /* Translators: a value and its unit, e.g. "21.5 °C" */
  return g_strdup_printf (C_("value with unit", "%s %s"), number, unit);
}

static void
metric_free (Metric *m)
{
  g_clear_handle_id (&m->range_source, g_source_remove);
  g_clear_pointer (&m->pending, g_array_unref);
  g_free (m->name);
  g_free (m);
}

/* ---- state and details ------------------------------------------------------ */

static void
set_subtitle (AdwActionRow *row,
              const char   *text)
{
  adw_action_row_set_subtitle (row, text != NULL && *text != '\0' ? text : C_("unknown value", "—"));
}

static void
update_state (FlDevicePage *self)
{
  FlDevice *device = self->device;
  FlDeviceStatus status;
  g_autofree char *seen = NULL;
  g_autofree char *seen_at = NULL;
  g_autofree char *seen_text = NULL;
  double battery, rssi;

  if (device == NULL)
    return;

  status = fl_device_get_status (device);
  gtk_image_set_from_icon_name (self->status_icon, fl_fleet_status_icon_name (status));
  gtk_label_set_label (self->status_label, fl_fleet_status_label (status));

  seen = fl_fleet_format_relative (fl_device_get_last_seen (device), g_get_real_time () / 1000);
  if (fl_device_get_last_seen (device) > 0)
    {
      seen_at = fl_fleet_format_time (fl_device_get_last_seen (device));
      /* Translators: "3 minutes ago (14:02)" */
      seen_text = g_strdup_printf (C_("last seen", "%s (%s)"), seen, seen_at);
    }
  set_subtitle (self->last_seen_row, seen_text ? seen_text : seen);

  battery = fl_device_get_battery (device);
  if (!isnan (battery))
    {
      g_autofree char *text = format_value (battery, "%");

      set_subtitle (self->battery_row, text);
    }
  else
    set_subtitle (self->battery_row, NULL);

  rssi = fl_device_get_rssi (device);
  if (!isnan (rssi))
    {
      g_autofree char *text = format_value (rssi, "dBm");

      set_subtitle (self->signal_row, text);
    }
  else
    set_subtitle (self->signal_row, NULL);
}

static void
update_details (FlDevicePage *self)
{
  FlDevice *device = self->device;
  const char * const *tags;
  JsonObject *capabilities;
  double lat, lon, alt;
  g_autofree char *registered = NULL;

  if (device == NULL)
    return;

  adw_window_title_set_title (self->window_title, fl_device_get_name (device));
  adw_window_title_set_subtitle (self->window_title,
                                 g_strcmp0 (fl_device_get_name (device), fl_device_get_device_id (device)) != 0 ?
                                 fl_device_get_device_id (device) : NULL);

  set_subtitle (self->id_row, fl_device_get_device_id (device));
  set_subtitle (self->model_row, fl_device_get_model (device));
  set_subtitle (self->manufacturer_row, fl_device_get_manufacturer (device));
  set_subtitle (self->firmware_row, fl_device_get_firmware (device));
  set_subtitle (self->type_row, fl_device_get_device_type (device));

  if (fl_device_get_location (device, &lat, &lon, &alt))
    {
      /* Translators: latitude, longitude and altitude */
      g_autofree char *text = g_strdup_printf (_("%.5f, %.5f (%.0f m)"), lat, lon, alt);

      set_subtitle (self->location_row, text);
    }
  else
    set_subtitle (self->location_row, NULL);

  tags = fl_device_get_tags (device);
  {
    g_autofree char *text = g_strjoinv (", ", (char **) tags);

    set_subtitle (self->tags_row, text);
  }

  capabilities = fl_device_get_capabilities (device);
  {
    g_autoptr (GString) metrics = g_string_new (NULL);
    g_autoptr (GString) commands = g_string_new (NULL);
    JsonArray *array;

    if (json_object_has_member (capabilities, "metrics") &&
        JSON_NODE_HOLDS_ARRAY (json_object_get_member (capabilities, "metrics")))
      {
        array = json_object_get_array_member (capabilities, "metrics");
        for (guint i = 0; i < json_array_get_length (array); i++)
          {
            JsonNode *node = json_array_get_element (array, i);

            if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
              g_string_append_printf (metrics, "%s%s", metrics->len ? ", " : "", json_node_get_string (node));
          }
      }

    if (json_object_has_member (capabilities, "commands") &&
        JSON_NODE_HOLDS_ARRAY (json_object_get_member (capabilities, "commands")))
      {
        array = json_object_get_array_member (capabilities, "commands");
        for (guint i = 0; i < json_array_get_length (array); i++)
          {
            JsonNode *node = json_array_get_element (array, i);
            JsonObject *command;
            const char *name, *category;

            if (!JSON_NODE_HOLDS_OBJECT (node))
              continue;
            command = json_node_get_object (node);
            name = json_object_get_string_member_with_default (command, "name", NULL);
            category = json_object_get_string_member_with_default (command, "category", NULL);
            if (name == NULL)
              continue;
            if (commands->len > 0)
              g_string_append (commands, "\n");
            if (category != NULL)
              /* Translators: a command and its category, "reboot (maintenance)" */
              g_string_append_printf (commands, C_("command", "%s (%s)"), name, category);
            else
              g_string_append (commands, name);
          }
      }

    set_subtitle (self->metrics_row, metrics->str);
    set_subtitle (self->commands_row, commands->str);
  }

  if (fl_device_get_created_at (device) > 0)
    registered = fl_fleet_format_time (fl_device_get_created_at (device));
  set_subtitle (self->registered_row, registered);
}

/* ---- charts ------------------------------------------------------------------ */

static void metric_load_points (Metric *m,
                                gint64  from);
static void metric_fetch_buckets (Metric *m,
                                  gint64  from,
                                  gint64  to);

typedef struct
{
  FlDevicePage *self;
  char         *metric;
  gint64        from;
  gint64        to;
  guint         serial;
} Request;

static void
request_free (Request *request)
{
  g_clear_object (&request->self);
  g_free (request->metric);
  g_free (request);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Request, request_free)

static Request *
request_new (Metric *m,
             gint64  from,
             gint64  to)
{
  Request *request = g_new0 (Request, 1);

  request->self = g_object_ref (m->self);
  request->metric = g_strdup (m->name);
  request->from = from;
  request->to = to;

  return request;
}

static void
points_loaded_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr (Request) request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) points = NULL;
  Metric *m;
  gint64 last_t = G_MININT64;

  points = fl_cache_load_points_finish (FL_CACHE (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  m = g_hash_table_lookup (request->self->metrics, request->metric);
  if (m == NULL)
    return;

  m->loading = FALSE;
  if (points == NULL)
    {
      g_warning ("Could not read the cached %s points: %s", request->metric, error->message);
      g_array_set_size (m->pending, 0);
      return;
    }

  if (points->len > 0)
    {
      FlPoint *last = &g_array_index (points, FlPoint, points->len - 1);

      last_t = last->t;
      if (!m->has_value || last->t >= m->t)
        {
          g_autofree char *text = format_value (last->v, fl_device_page_metric_unit (m->name));

          m->has_value = TRUE;
          m->value = last->v;
          m->t = last->t;
          gtk_label_set_label (m->value_label, text);
        }
    }

  if (m->chart == NULL)
    return;

  fl_chart_set_points (m->chart, m->series, points);

  /* The cache holds what the console saw: on a first sign-in, or after a
   * long time away, it starts later than the range.  The server has the
   * rest, as buckets. */
  {
    gint64 range_from, range_to;
    gint64 cached_from = points->len > 0 ? g_array_index (points, FlPoint, 0).t : g_get_real_time () / 1000;

    fl_chart_get_range (m->chart, &range_from, &range_to);
    if (cached_from - range_from > (range_to - range_from) / 100)
      metric_fetch_buckets (m, range_from, MIN (cached_from, range_to));
  }

  /* What the stream brought while the cache was read, and the cache did
   * not have yet. */
  for (guint i = 0; i < m->pending->len; i++)
    {
      FlPoint *p = &g_array_index (m->pending, FlPoint, i);

      if (p->t > last_t)
        fl_chart_append_points (m->chart, m->series, p, 1);
    }
  g_array_set_size (m->pending, 0);
}

static void
metric_load_points (Metric *m,
                    gint64  from)
{
  FlDevicePage *self = m->self;
  FlCache *cache = fl_fleet_get_cache (self->fleet);
  gint64 to = g_get_real_time () / 1000 + FUTURE_SLACK_MS;

  if (cache == NULL || self->device == NULL)
    return;

  m->loading = TRUE;
  m->loaded_from = from;
  fl_cache_load_points_async (cache, fl_device_get_device_id (self->device), m->name, from, to,
                              self->cancellable, points_loaded_cb, request_new (m, from, to));
}

static void
buckets_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (Request) request = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) reply = NULL;
  g_autofree FlBucket *buckets = NULL;
  JsonObject *object;
  JsonArray *array;
  gint64 bucket_ms, base;
  guint n;
  Metric *m;

  reply = fl_client_call_finish (FL_CLIENT (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  m = g_hash_table_lookup (request->self->metrics, request->metric);
  if (m == NULL || m->chart == NULL || request->serial != m->buckets_asked)
    return;

  if (reply == NULL)
    {
      g_debug ("No buckets for %s: %s", request->metric, error ? error->message : "empty reply");
      return;
    }

  /* Outside input: check everything. */
  if (!JSON_NODE_HOLDS_OBJECT (reply))
    return;
  object = json_node_get_object (reply);
  bucket_ms = json_object_get_int_member_with_default (object, "bucketMs", 0);
  if (bucket_ms <= 0 || !json_object_has_member (object, "buckets") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "buckets")))
    {
      g_debug ("Malformed telemetry reply for %s", request->metric);
      return;
    }
  array = json_object_get_array_member (object, "buckets");

  /* The server's buckets are aligned to multiples of their width and
   * leave out the empty ones; the chart wants them contiguous. */
  base = request->from >= 0 ? request->from / bucket_ms * bucket_ms
                            : -((-request->from + bucket_ms - 1) / bucket_ms) * bucket_ms;
  if ((request->to - base) / bucket_ms + 1 > 100000)
    return;
  n = (guint) ((request->to - base) / bucket_ms + 1);
  buckets = g_new0 (FlBucket, n);

  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      JsonObject *b;
      gint64 t, index;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        continue;
      b = json_node_get_object (node);
      t = json_object_get_int_member_with_default (b, "t", G_MININT64);
      if (t == G_MININT64 || t < base)
        continue;
      index = (t - base) / bucket_ms;
      if (index >= n)
        continue;

      buckets[index].n = (guint) CLAMP (json_object_get_int_member_with_default (b, "count", 0), 0, G_MAXUINT);
      buckets[index].min = json_object_get_double_member_with_default (b, "min", NAN);
      buckets[index].max = json_object_get_double_member_with_default (b, "max", NAN);
      buckets[index].avg = json_object_get_double_member_with_default (b, "avg", NAN);
      if (isnan (buckets[index].min) || isnan (buckets[index].max) || isnan (buckets[index].avg))
        buckets[index].n = 0;
      buckets[index].t_first = buckets[index].t_min = t;
      buckets[index].t_last = buckets[index].t_max = t + bucket_ms - 1;
      buckets[index].first = buckets[index].last = buckets[index].avg;
    }

  m->buckets_from = request->from;
  m->buckets_to = request->to;
  fl_chart_set_buckets (m->chart, m->series, buckets, n, base, bucket_ms);
}

static void
metric_fetch_buckets (Metric *m,
                      gint64  from,
                      gint64  to)
{
  FlDevicePage *self = m->self;
  FlClient *client = fl_fleet_get_client (self->fleet);
  g_autofree char *device = NULL;
  g_autofree char *metric = NULL;
  g_autofree char *path = NULL;
  Request *request;
  int points;

  if (client == NULL || self->device == NULL || !fl_client_is_signed_in (client))
    return;
  if (m->buckets_from <= from && m->buckets_to >= to && m->buckets_to > 0)
    return;

  points = CLAMP (gtk_widget_get_width (GTK_WIDGET (m->chart)), 100, 2000);
  device = g_uri_escape_string (fl_device_get_device_id (self->device), NULL, FALSE);
  metric = g_uri_escape_string (m->name, NULL, FALSE);
  path = g_strdup_printf ("/devices/%s/telemetry?metric=%s&from=%" G_GINT64_FORMAT "&to=%" G_GINT64_FORMAT "&points=%d",
                          device, metric, from, to, points);
  request = request_new (m, from, to);
  request->serial = ++m->buckets_asked;
  fl_client_call_async (client, "GET", path, NULL, self->cancellable, buckets_cb, request);
}

static gboolean
range_timeout_cb (gpointer user_data)
{
  Metric *m = user_data;

  m->range_source = 0;

  /* A longer range than loaded: the cache, whose reply asks the server
   * for what it lacks; otherwise, for a long range, the server. */
  if (m->want_from < m->loaded_from && !m->loading)
    metric_load_points (m, m->want_from);
  else if (m->want_to - m->want_from > CACHED_SPAN_MS || m->want_from < g_get_real_time () / 1000 - CACHED_SPAN_MS)
    metric_fetch_buckets (m, m->want_from, m->want_to);

  return G_SOURCE_REMOVE;
}

static void
chart_range_changed_cb (FlChart *chart,
                        gint64   from,
                        gint64   to,
                        Metric  *m)
{
  m->want_from = from;
  m->want_to = to;

  if (from >= m->loaded_from && to - from <= CACHED_SPAN_MS)
    return;

  g_clear_handle_id (&m->range_source, g_source_remove);
  m->range_source = g_timeout_add (RANGE_DEBOUNCE, range_timeout_cb, m);
}

static void
metric_set_range (Metric *m,
                  gint64  span)
{
  gint64 now = g_get_real_time () / 1000;

  if (m->chart == NULL)
    return;

  fl_chart_set_range (m->chart, now - span, now);
  fl_chart_set_follow (m->chart, TRUE);
}

/* ---- metrics ----------------------------------------------------------------- */

static Metric *
ensure_metric (FlDevicePage *self,
               const char   *name)
{
  Metric *m = g_hash_table_lookup (self->metrics, name);
  g_autofree char *label = NULL;
  const char *unit;

  if (m != NULL)
    return m;

  label = metric_label (name);
  unit = fl_device_page_metric_unit (name);

  m = g_new0 (Metric, 1);
  m->self = self;
  m->name = g_strdup (name);
  m->pending = g_array_new (FALSE, FALSE, sizeof (FlPoint));
  m->loaded_from = G_MAXINT64;
  g_hash_table_insert (self->metrics, m->name, m);
  g_ptr_array_add (self->order, m);

  m->row = ADW_ACTION_ROW (adw_action_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (m->row), label);
  m->value_label = GTK_LABEL (gtk_label_new (C_("unknown value", "—")));
  gtk_label_set_selectable (m->value_label, TRUE);
  gtk_widget_add_css_class (GTK_WIDGET (m->value_label), "numeric");
  adw_action_row_add_suffix (m->row, GTK_WIDGET (m->value_label));
  adw_preferences_group_add (self->live_group, GTK_WIDGET (m->row));
  gtk_widget_set_visible (GTK_WIDGET (self->no_values_row), FALSE);

  if (!is_coordinate (name))
    {
      GtkWidget *heading;
      g_autofree char *heading_text = unit ? g_strdup_printf ("%s (%s)", label, unit) : g_strdup (label);
      /* Translators: the accessible name of a chart, "Temperature chart" */
      g_autofree char *chart_name = g_strdup_printf (_("%s chart"), label);

      m->chart_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
      heading = gtk_label_new (heading_text);
      gtk_label_set_xalign (GTK_LABEL (heading), 0);
      gtk_widget_add_css_class (heading, "heading");
      m->chart = fl_chart_new ();
      gtk_widget_set_size_request (GTK_WIDGET (m->chart), -1, CHART_HEIGHT);
      gtk_widget_set_focusable (GTK_WIDGET (m->chart), TRUE);
      gtk_accessible_update_property (GTK_ACCESSIBLE (m->chart), GTK_ACCESSIBLE_PROPERTY_LABEL, chart_name, -1);
      m->series = fl_chart_add_series (m->chart, label, unit, NULL);
      g_signal_connect (m->chart, "range-changed", G_CALLBACK (chart_range_changed_cb), m);
      gtk_box_append (GTK_BOX (m->chart_box), heading);
      gtk_box_append (GTK_BOX (m->chart_box), GTK_WIDGET (m->chart));
      gtk_box_append (self->charts_box, m->chart_box);
      gtk_widget_set_visible (GTK_WIDGET (self->no_charts_label), FALSE);

      metric_set_range (m, self->range_span);
    }

  metric_load_points (m, g_get_real_time () / 1000 - MAX (CACHED_SPAN_MS, self->range_span));

  return m;
}

static void
remove_metrics (FlDevicePage *self)
{
  for (guint i = 0; i < self->order->len; i++)
    {
      Metric *m = g_ptr_array_index (self->order, i);

      adw_preferences_group_remove (self->live_group, GTK_WIDGET (m->row));
      if (m->chart_box != NULL)
        {
          g_signal_handlers_disconnect_by_data (m->chart, m);
          gtk_box_remove (self->charts_box, m->chart_box);
        }
    }

  g_ptr_array_set_size (self->order, 0);
  g_hash_table_remove_all (self->metrics);
  gtk_widget_set_visible (GTK_WIDGET (self->no_values_row), TRUE);
  gtk_widget_set_visible (GTK_WIDGET (self->no_charts_label), TRUE);
}

static void
metrics_listed_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr (FlDevicePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) metrics = NULL;

  metrics = fl_cache_list_metrics_finish (FL_CACHE (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (metrics == NULL)
    {
      g_warning ("Could not list the cached metrics: %s", error->message);
      return;
    }

  for (guint i = 0; metrics[i] != NULL; i++)
    ensure_metric (self, metrics[i]);
}

static void
add_declared_metrics (FlDevicePage *self)
{
  JsonObject *capabilities = fl_device_get_capabilities (self->device);
  JsonArray *array;

  if (!json_object_has_member (capabilities, "metrics") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (capabilities, "metrics")))
    return;

  array = json_object_get_array_member (capabilities, "metrics");
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);

      if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING &&
          *json_node_get_string (node) != '\0')
        ensure_metric (self, json_node_get_string (node));
    }
}

/* ---- the fleet's updates -------------------------------------------------- */

static void
fleet_events_cb (FlFleet      *fleet,
                 GPtrArray    *events,
                 FlDevicePage *self)
{
  const char *device_id;
  g_autoptr (GHashTable) batches = NULL;  /* Metric -> GArray of FlPoint */

  if (self->device == NULL)
    return;

  device_id = fl_device_get_device_id (self->device);
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);
      gint64 t = fl_event_get_timestamp (event);

      if (strcmp (fl_event_get_source (event), device_id) != 0)
        continue;

      for (guint f = 0; f < fl_event_get_n_fields (event); f++)
        {
          const FlEventField *field = fl_event_get_field (event, f);
          FlPoint point = { t, field->number };
          GArray *points;
          Metric *m;

          if (field->text != NULL || !isfinite (field->number))
            continue;

          m = ensure_metric (self, field->name);
          if (!m->has_value || t >= m->t)
            {
              g_autofree char *text = format_value (field->number, fl_device_page_metric_unit (m->name));

              m->has_value = TRUE;
              m->value = field->number;
              m->t = t;
              gtk_label_set_label (m->value_label, text);
            }

          if (m->chart == NULL)
            continue;
          if (m->loading)
            {
              g_array_append_val (m->pending, point);
              continue;
            }

          if (batches == NULL)
            batches = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) g_array_unref);
          points = g_hash_table_lookup (batches, m);
          if (points == NULL)
            {
              points = g_array_new (FALSE, FALSE, sizeof (FlPoint));
              g_hash_table_insert (batches, m, points);
            }
          g_array_append_val (points, point);
        }
    }

  if (batches != NULL)
    {
      GHashTableIter iter;
      gpointer key, value;

      g_hash_table_iter_init (&iter, batches);
      while (g_hash_table_iter_next (&iter, &key, &value))
        {
          Metric *m = key;
          GArray *points = value;

          fl_chart_append_points (m->chart, m->series, (FlPoint *) (gpointer) points->data, points->len);
        }
    }
}

static void
fleet_devices_changed_cb (FlFleet      *fleet,
                          GHashTable   *changed,
                          FlDevicePage *self)
{
  if (self->device == NULL || !g_hash_table_contains (changed, self->device))
    return;

  update_state (self);
  update_details (self);
}

static void
range_selected_cb (GtkDropDown  *dropdown,
                   GParamSpec   *pspec,
                   FlDevicePage *self)
{
  guint selected = gtk_drop_down_get_selected (dropdown);

  if (selected >= G_N_ELEMENTS (range_spans))
    return;

  self->range_span = range_spans[selected];
  for (guint i = 0; i < self->order->len; i++)
    metric_set_range (g_ptr_array_index (self->order, i), self->range_span);
}

/* ---- public ------------------------------------------------------------------ */

void
fl_device_page_set_device (FlDevicePage *self,
                           FlDevice     *device)
{
  FlCache *cache;

  g_return_if_fail (FL_IS_DEVICE_PAGE (self));
  g_return_if_fail (device == NULL || FL_IS_DEVICE (device));

  if (self->device == device)
    return;

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  remove_metrics (self);
  g_set_object (&self->device, device);

  if (device != NULL)
    {
      self->cancellable = g_cancellable_new ();
      update_state (self);
      update_details (self);
      add_declared_metrics (self);

      cache = self->fleet ? fl_fleet_get_cache (self->fleet) : NULL;
      if (cache != NULL)
        fl_cache_list_metrics_async (cache, fl_device_get_device_id (device), self->cancellable,
                                     metrics_listed_cb, g_object_ref (self));
    }

  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DEVICE]);
}

FlDevice *
fl_device_page_get_device (FlDevicePage *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_PAGE (self), NULL);

  return self->device;
}

FlFleet *
fl_device_page_get_fleet (FlDevicePage *self)
{
  g_return_val_if_fail (FL_IS_DEVICE_PAGE (self), NULL);

  return self->fleet;
}

char *
fl_device_page_dup_live_value (FlDevicePage *self,
                               const char   *metric)
{
  Metric *m;

  g_return_val_if_fail (FL_IS_DEVICE_PAGE (self), NULL);

  m = g_hash_table_lookup (self->metrics, metric);
  if (m == NULL || !m->has_value)
    return NULL;

  return g_strdup (gtk_label_get_label (m->value_label));
}

FlChart *
fl_device_page_get_chart (FlDevicePage *self,
                          const char   *metric)
{
  Metric *m;

  g_return_val_if_fail (FL_IS_DEVICE_PAGE (self), NULL);

  m = g_hash_table_lookup (self->metrics, metric);
  return m != NULL ? m->chart : NULL;
}

GStrv
fl_device_page_dup_metrics (FlDevicePage *self)
{
  GStrvBuilder *builder;
  GStrv result;

  g_return_val_if_fail (FL_IS_DEVICE_PAGE (self), NULL);

  builder = g_strv_builder_new ();
  for (guint i = 0; i < self->order->len; i++)
    {
      Metric *m = g_ptr_array_index (self->order, i);

      if (m->chart != NULL)
        g_strv_builder_add (builder, m->name);
    }
  result = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);

  return result;
}

GtkWidget *
fl_device_page_new (FlFleet *fleet)
{
  g_return_val_if_fail (FL_IS_FLEET (fleet), NULL);

  return g_object_new (FL_TYPE_DEVICE_PAGE, "fleet", fleet, NULL);
}

/* ---- GObject ----------------------------------------------------------------- */

static void
fl_device_page_dispose (GObject *object)
{
  FlDevicePage *self = FL_DEVICE_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  if (self->box != NULL)
    remove_metrics (self);

  gtk_widget_dispose_template (GTK_WIDGET (self), FL_TYPE_DEVICE_PAGE);
  self->box = NULL;

  g_clear_object (&self->device);
  g_clear_object (&self->fleet);

  G_OBJECT_CLASS (fl_device_page_parent_class)->dispose (object);
}

static void
fl_device_page_finalize (GObject *object)
{
  FlDevicePage *self = FL_DEVICE_PAGE (object);

  g_clear_pointer (&self->order, g_ptr_array_unref);
  g_clear_pointer (&self->metrics, g_hash_table_unref);

  G_OBJECT_CLASS (fl_device_page_parent_class)->finalize (object);
}

static void
fl_device_page_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  FlDevicePage *self = FL_DEVICE_PAGE (object);

  switch (prop_id)
    {
    case PROP_FLEET:
      g_value_set_object (value, self->fleet);
      break;
    case PROP_DEVICE:
      g_value_set_object (value, self->device);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_device_page_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  FlDevicePage *self = FL_DEVICE_PAGE (object);

  switch (prop_id)
    {
    case PROP_FLEET:
      self->fleet = g_value_dup_object (value);
      if (self->fleet != NULL)
        {
          g_signal_connect_object (self->fleet, "events", G_CALLBACK (fleet_events_cb), self, 0);
          g_signal_connect_object (self->fleet, "devices-changed", G_CALLBACK (fleet_devices_changed_cb), self, 0);
        }
      break;
    case PROP_DEVICE:
      fl_device_page_set_device (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
fl_device_page_class_init (FlDevicePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = fl_device_page_dispose;
  object_class->finalize = fl_device_page_finalize;
  object_class->get_property = fl_device_page_get_property;
  object_class->set_property = fl_device_page_set_property;

  properties[PROP_FLEET] =
    g_param_spec_object ("fleet", NULL, NULL, FL_TYPE_FLEET,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_DEVICE] =
    g_param_spec_object ("device", NULL, NULL, FL_TYPE_DEVICE,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/fieldline/Fieldline/fl-device-page.ui");
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, box);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, window_title);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, status_icon);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, status_label);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, last_seen_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, battery_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, signal_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, live_group);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, no_values_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, range_dropdown);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, charts_box);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, no_charts_label);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, id_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, model_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, manufacturer_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, firmware_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, type_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, location_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, tags_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, metrics_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, commands_row);
  gtk_widget_class_bind_template_child (widget_class, FlDevicePage, registered_row);
  gtk_widget_class_bind_template_callback (widget_class, range_selected_cb);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_GROUP);
}

static void
fl_device_page_init (FlDevicePage *self)
{
  self->metrics = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) metric_free);
  self->order = g_ptr_array_new ();
  self->range_span = range_spans[0];

  g_type_ensure (FL_TYPE_CHART);
  gtk_widget_init_template (GTK_WIDGET (self));
  fl_a11y_name_inner_buttons (GTK_WIDGET (self->range_dropdown), _("Chart range"));
}
