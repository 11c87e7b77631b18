/* test-fleet.c: the console's fleet model and device views under Xvfb.
 *
 * - the devices page's filter over 10,000 synthetic devices: search text,
 *   status, tag and all three, checked against the generator's own
 *   knowledge of each device;
 * - the model's batching: value updates emit no items-changed, a server
 *   page is one items-changed, replays are not applied twice;
 * - the cache first, with no server: devices browsable, offline state
 *   and the last sync shown, cached live values on a device page;
 * - against an in-process relay: sync updates in place, adds and drops
 *   devices; live events update a device, its page and the cache; after
 *   the relay restarts, the stream resumes with "since", and every event
 *   arrives exactly once.
 */
#define G_LOG_DOMAIN "test-fleet"

#include "config.h"

#include <math.h>
#include <string.h>

#include <adwaita.h>
#include <glib/gstdio.h>

#include "fl-cache.h"
#include "fl-chart-private.h"
#include "fl-fleet-filter.h"
#include "fl-device-page.h"
#include "fl-device-row.h"
#include "fl-devices-page.h"
#include "fl-fleet-view.h"
#include "fl-fleet.h"
#include "fl-hub.h"
#include "fl-relay-private.h"
#include "fl-session.h"
#include "fl-test-util.h"

#define N_SYNTHETIC 10000
#define TIMEOUT_MS  20000

/* ---- helpers -------------------------------------------------------------- */

static gboolean
flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

#define WAIT_UNTIL(cond)                                                        \
  G_STMT_START                                                                  \
  {                                                                             \
    gboolean timed_out_ = FALSE;                                                \
    guint    source_ = g_timeout_add (TIMEOUT_MS, flag_cb, &timed_out_);        \
    while (!(cond) && !timed_out_)                                              \
      g_main_context_iteration (NULL, TRUE);                                    \
    if (!timed_out_)                                                            \
      g_source_remove (source_);                                                \
    if (!(cond))                                                                \
      g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,         \
                           "timed out waiting for: " #cond);                    \
  }                                                                             \
  G_STMT_END

static void
run_for (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, flag_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

static GAsyncResult *
wait_result (GAsyncResult **result)
{
  WAIT_UNTIL (*result != NULL);
  return *result;
}

static void
result_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (*out);
  *out = g_object_ref (result);
}

static FlCache *
cache_open (const char *path)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  FlCache *cache;

  fl_cache_open_async (path, NULL, result_cb, &result);
  cache = fl_cache_open_finish (wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (cache);

  return cache;
}

static void
cache_save (FlCache   *cache,
            GPtrArray *devices)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  fl_cache_save_devices_async (cache, devices, NULL, result_cb, &result);
  g_assert_true (fl_cache_save_devices_finish (cache, wait_result (&result), &error));
  g_assert_no_error (error);
}

static void
cache_add_events (FlCache   *cache,
                  GPtrArray *events)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  fl_cache_add_events_async (cache, events, NULL, result_cb, &result);
  g_assert_true (fl_cache_add_events_finish (cache, wait_result (&result), &error));
  g_assert_no_error (error);
}

static GPtrArray *
cache_load_devices (FlCache *cache)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GPtrArray *devices;

  fl_cache_load_devices_async (cache, NULL, result_cb, &result);
  devices = fl_cache_load_devices_finish (cache, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (devices);

  return devices;
}

/* Reloads *devices from the cache; returns how many there are. */
static guint
reload_devices (FlCache    *cache,
                GPtrArray **devices)
{
  if (*devices != NULL)
    g_ptr_array_unref (*devices);
  *devices = cache_load_devices (cache);

  return (*devices)->len;
}

static GPtrArray *
cache_load_events (FlCache    *cache,
                   const char *device_id)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GPtrArray *events;

  fl_cache_load_events_async (cache, device_id, 0, NULL, result_cb, &result);
  events = fl_cache_load_events_finish (cache, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_nonnull (events);

  return events;
}

/* A device as the relay would describe it. */
static FlDevice *
device_new (const char         *id,
            const char         *name,
            const char         *model,
            FlDeviceStatus      status,
            const char * const *tags)
{
  g_autoptr (FlDevice) device = fl_device_new (id);
  g_autoptr (JsonObject) object = json_object_new ();
  g_autoptr (JsonArray) tag_array = json_array_new ();
  g_autoptr (GError) error = NULL;

  json_object_set_string_member (object, "name", name);
  if (model != NULL)
    json_object_set_string_member (object, "model", model);
  for (guint i = 0; tags != NULL && tags[i] != NULL; i++)
    json_array_add_string_element (tag_array, tags[i]);
  json_object_set_array_member (object, "tags", json_array_ref (tag_array));
  g_assert_true (fl_device_update_from_json (device, object, TRUE, &error));
  g_assert_no_error (error);
  fl_device_set_status (device, status);

  return g_steal_pointer (&device);
}

static FlEvent *
event_new (const char *id,
           gint64      seq,
           gint64      ts,
           const char *source,
           const char *data_json)
{
  g_autoptr (JsonNode) data = json_from_string (data_json, NULL);
  FlEvent *event;

  g_assert_nonnull (data);
  event = fl_event_new (id, ts, source, "telemetry", json_node_get_object (data), NULL);
  if (seq > 0)
    fl_event_set_seq (event, seq);
  fl_event_set_received_at (event, ts);

  return event;
}

static char *
closed_port_url (const char *scheme)
{
  g_autoptr (GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  guint port;

  g_assert_nonnull (socket);
  g_assert_true (g_socket_bind (socket, any, TRUE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);

  return g_strdup_printf ("%s://127.0.0.1:%u", scheme, port);
}

static GtkWidget *
window_new (GtkWidget *child,
            int        width)
{
  GtkWidget *window = gtk_window_new ();

  gtk_window_set_default_size (GTK_WINDOW (window), width, 700);
  gtk_window_set_child (GTK_WINDOW (window), child);
  gtk_window_present (GTK_WINDOW (window));

  return window;
}

static void
filter_changed_cb (GtkFilter       *filter,
                   GtkFilterChange  change,
                   guint           *counter)
{
  (*counter)++;
}

/* ---- the synthetic fleet ----------------------------------------------- */

static const char *sites[] = { "berlin", "lisbon", "oslo", "kraków", "zürich" };
static const char *site_names[] = { "Berlin", "Lisbon", "Oslo", "Kraków", "Zürich" };
static const char *models[] = { "TH-1", "PM-2", "GW-3" };
static const char *kinds[] = { "Thermo", "Pump", "Gateway" };
static const FlDeviceStatus statuses[] = {
  FL_DEVICE_STATUS_ONLINE, FL_DEVICE_STATUS_OFFLINE, FL_DEVICE_STATUS_MAINTENANCE, FL_DEVICE_STATUS_DECOMMISSIONED,
};

/* Device i: id dev-%05u, name "<kind> <i> <Site>", model by i % 3, status
 * by i % 4, tags site:<site>, floor:<i % 7> and (every tenth) critical. */
static GPtrArray *
synthetic_fleet (guint n)
{
  GPtrArray *devices = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("dev-%05u", i);
      g_autofree char *name = g_strdup_printf ("%s %u %s", kinds[i % 3], i, site_names[i % 5]);
      g_autofree char *site_tag = g_strdup_printf ("site:%s", sites[i % 5]);
      g_autofree char *floor_tag = g_strdup_printf ("floor:%u", i % 7);
      const char *tags[] = { site_tag, floor_tag, i % 10 == 0 ? "critical" : NULL, NULL };

      g_ptr_array_add (devices, device_new (id, name, models[i % 3], statuses[i % 4], tags));
    }

  /* shuffled: the fleet sorts by id itself */
  for (guint i = n; i > 1; i--)
    {
      guint j = g_random_int_range (0, i);
      gpointer tmp = devices->pdata[i - 1];

      devices->pdata[i - 1] = devices->pdata[j];
      devices->pdata[j] = tmp;
    }

  return devices;
}

typedef gboolean (*Predicate) (guint i);

static void assert_name_order (FlFleet *fleet);

static gboolean
model_has (GListModel *model,
           const char *device_id)
{
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (FlDevice) device = g_list_model_get_item (model, i);

      if (g_str_equal (fl_device_get_device_id (device), device_id))
        return TRUE;
    }

  return FALSE;
}

/* A server record of device (a copy, as the relay would send it). */
static FlDevice *
record_of (FlDevice *device)
{
  g_autofree char *text = fl_device_serialize (device);
  FlDevice *record = fl_device_deserialize (text, NULL);

  g_assert_nonnull (record);
  return record;
}

/* The device list (the dropdowns' popovers have list views too). */
static GtkWidget *
find_list_view (GtkWidget *widget)
{
  if (GTK_IS_POPOVER (widget))
    return NULL;
  if (GTK_IS_LIST_VIEW (widget))
    return widget;

  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_list_view (c);

      if (found != NULL)
        return found;
    }

  return NULL;
}

/* The rows the list view holds show devices the filter lets through,
 * and the first one the first device (rows are reused across filter
 * changes, so a stale row would show here). */
static void
assert_rows (FlDevicesPage *page,
             Predicate      expected,
             const char    *what)
{
  GtkWidget *list_view = find_list_view (GTK_WIDGET (page));
  GListModel *model = fl_devices_page_get_model (page);
  guint n_rows = 0;

  g_assert_nonnull (list_view);
  for (GtkWidget *item = gtk_widget_get_first_child (list_view); item != NULL; item = gtk_widget_get_next_sibling (item))
    {
      GtkWidget *row = gtk_widget_get_first_child (item);
      FlDevice *device;
      guint i;

      if (!FL_IS_DEVICE_ROW (row) || (device = fl_device_row_get_device (FL_DEVICE_ROW (row))) == NULL)
        continue;
      i = (guint) g_ascii_strtoull (fl_device_get_device_id (device) + strlen ("dev-"), NULL, 10);
      if (!expected (i))
        g_error ("%s: a row shows %s, which does not match", what, fl_device_get_device_id (device));
      g_assert_cmpstr (fl_device_row_get_text (FL_DEVICE_ROW (row), FL_DEVICE_ROW_ID), ==,
                       fl_device_get_device_id (device));
      n_rows++;
    }

  g_assert_cmpuint (n_rows, <=, g_list_model_get_n_items (model));
  if (g_list_model_get_n_items (model) > 0)
    g_assert_cmpuint (n_rows, >, 0);
}

/* The page's model holds exactly the devices i with expected (i). */
static void
assert_shows (FlDevicesPage *page,
              Predicate      expected,
              const char    *what)
{
  GListModel *model = fl_devices_page_get_model (page);
  guint n = g_list_model_get_n_items (model);
  g_autofree gboolean *seen = g_new0 (gboolean, N_SYNTHETIC);
  guint n_expected = 0;
  g_autoptr (FlDevice) previous = NULL;

  for (guint i = 0; i < N_SYNTHETIC; i++)
    n_expected += expected (i) ? 1 : 0;

  for (guint k = 0; k < n; k++)
    {
      g_autoptr (FlDevice) device = g_list_model_get_item (model, k);
      guint i = (guint) g_ascii_strtoull (fl_device_get_device_id (device) + strlen ("dev-"), NULL, 10);

      g_assert_cmpuint (i, <, N_SYNTHETIC);
      if (!expected (i))
        g_error ("%s: %s (%s) shown but should not be", what, fl_device_get_device_id (device), fl_device_get_name (device));
      g_assert_false (seen[i]);
      seen[i] = TRUE;

      /* sorted by name, case-insensitively */
      if (previous != NULL)
        g_assert_cmpint (g_ascii_strcasecmp (fl_device_get_name (previous), fl_device_get_name (device)), <=, 0);
      g_set_object (&previous, device);
    }

  if (n != n_expected)
    g_error ("%s: %u devices shown, %u expected", what, n, n_expected);
  g_test_message ("%s: %u devices", what, n);
  g_assert_cmpstr (fl_devices_page_get_state (page), ==, n > 0 ? "list" : "no-match");
  assert_rows (page, expected, what);
}

static gboolean
everything (guint i)
{
  return TRUE;
}

static gboolean
in_berlin (guint i)
{
  return i % 5 == 0;
}

/* "dev-0004" is in dev-00040 ... dev-00049 only */
static gboolean
id_prefix_0004 (guint i)
{
  return i >= 40 && i < 50;
}

static gboolean
model_th1 (guint i)
{
  return i % 3 == 0;
}

static gboolean
contains_42 (guint i)
{
  char id[16], number[16];

  g_snprintf (id, sizeof id, "%05u", i);
  g_snprintf (number, sizeof number, "%u", i);
  return strstr (id, "42") != NULL || strstr (number, "42") != NULL;
}

static gboolean
pump_in_krakow (guint i)
{
  return i % 3 == 1 && i % 5 == 3;
}

static gboolean
in_zurich (guint i)
{
  return i % 5 == 4;
}

static gboolean
online (guint i)
{
  return i % 4 == 0;
}

static gboolean
critical (guint i)
{
  return i % 10 == 0;
}

static gboolean
berlin_offline_floor3 (guint i)
{
  return i % 5 == 0 && i % 4 == 1 && i % 7 == 3;
}

static gboolean
berlin_offline_floor3_th1 (guint i)
{
  return berlin_offline_floor3 (i) && i % 3 == 0;
}

static gboolean
nothing (guint i)
{
  return FALSE;
}

static void
test_filter (void)
{
  g_autoptr (FlFleet) fleet = fl_fleet_new (NULL);
  g_autoptr (GPtrArray) devices = synthetic_fleet (N_SYNTHETIC);
  GtkWidget *window;
  FlDevicesPage *page;
  FlFleetFilter *filter;
  guint filter_changes = 0;

  fl_fleet_set_devices (fleet, devices);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, N_SYNTHETIC);

  page = FL_DEVICES_PAGE (fl_devices_page_new (fleet));
  window = window_new (GTK_WIDGET (page), 1000);
  WAIT_UNTIL (gtk_widget_get_mapped (GTK_WIDGET (page)));
  run_for (100);
  filter = fl_devices_page_get_filter (page);
  g_signal_connect (filter, "changed", G_CALLBACK (filter_changed_cb), &filter_changes);

  assert_shows (page, everything, "no filter");
  g_assert_true (fl_fleet_filter_is_empty (filter));

  /* search text: one field, case-insensitive, any field, several terms */
  fl_devices_page_set_search (page, "berlin");
  assert_shows (page, in_berlin, "search berlin");
  fl_devices_page_set_search (page, "BERLIN");
  assert_shows (page, in_berlin, "search BERLIN");
  fl_devices_page_set_search (page, "dev-0004");
  assert_shows (page, id_prefix_0004, "search dev-0004 (id)");
  fl_devices_page_set_search (page, "th-1");
  assert_shows (page, model_th1, "search th-1 (model)");
  fl_devices_page_set_search (page, "42");
  assert_shows (page, contains_42, "search 42 (id and name)");
  fl_devices_page_set_search (page, "  pump   KRAKÓW ");
  assert_shows (page, pump_in_krakow, "search pump KRAKÓW (two terms, Unicode case)");
  /* decomposed ü (u + combining diaeresis) matches the composed one */
  fl_devices_page_set_search (page, "Zu\xcc\x88rich");
  assert_shows (page, in_zurich, "search Zürich, decomposed");
  fl_devices_page_set_search (page, "site:zürich");
  assert_shows (page, in_zurich, "search site:zürich (tag)");
  fl_devices_page_set_search (page, "no-such-device");
  assert_shows (page, nothing, "search no-such-device");
  g_assert_cmpstr (fl_devices_page_get_state (page), ==, "no-match");
  fl_devices_page_set_search (page, NULL);
  assert_shows (page, everything, "search cleared");
  g_assert_cmpuint (filter_changes, >=, 9);

  /* status */
  fl_devices_page_set_status (page, FL_DEVICE_STATUS_ONLINE);
  g_assert_cmpint (fl_fleet_filter_get_status (filter), ==, FL_DEVICE_STATUS_ONLINE);
  assert_shows (page, online, "status online");

  /* tag (from the dropdown's list of the fleet's tags) */
  fl_devices_page_set_status (page, FL_FLEET_FILTER_ANY_STATUS);
  fl_devices_page_set_tag (page, "critical");
  g_assert_cmpstr (fl_fleet_filter_get_tag (filter), ==, "critical");
  assert_shows (page, critical, "tag critical");

  /* all three */
  fl_devices_page_set_tag (page, "floor:3");
  fl_devices_page_set_status (page, FL_DEVICE_STATUS_OFFLINE);
  fl_devices_page_set_search (page, "Berlin");
  assert_shows (page, berlin_offline_floor3, "search Berlin, status offline, tag floor:3");

  /* narrowing the search (a stricter filter) gives the same as fresh */
  fl_devices_page_set_search (page, "Berl");
  assert_shows (page, berlin_offline_floor3, "search Berl, status offline, tag floor:3");
  fl_devices_page_set_search (page, "Berlin th-1");
  assert_shows (page, berlin_offline_floor3_th1, "search Berlin th-1, status offline, tag floor:3");

  /* While a filter is on, the fleet changes: the list follows (only the
   * changed devices are looked at again). */
  {
    g_autoptr (GPtrArray) records = g_ptr_array_new_with_free_func (g_object_unref);
    FlDevice *record;
    GListModel *model = fl_devices_page_get_model (page);

    fl_devices_page_set_filters (page, NULL, FL_DEVICE_STATUS_ONLINE, NULL);
    g_assert_false (model_has (model, "dev-00001"));
    g_assert_true (model_has (model, "dev-00000"));

    record = record_of (fl_fleet_lookup (fleet, "dev-00001"));
    fl_device_set_status (record, FL_DEVICE_STATUS_ONLINE);
    g_ptr_array_add (records, record);
    record = record_of (fl_fleet_lookup (fleet, "dev-00000"));
    fl_device_set_status (record, FL_DEVICE_STATUS_OFFLINE);
    g_ptr_array_add (records, record);
    g_ptr_array_add (records, device_new ("dev-10001", "Newcomer 1 Oslo", "TH-1", FL_DEVICE_STATUS_ONLINE, NULL));
    g_ptr_array_add (records, device_new ("dev-10002", "Newcomer 2 Oslo", "TH-1", FL_DEVICE_STATUS_OFFLINE, NULL));
    fl_fleet_merge_devices (fleet, records);

    g_assert_true (model_has (model, "dev-00001"));
    g_assert_false (model_has (model, "dev-00000"));
    g_assert_true (model_has (model, "dev-10001"));
    g_assert_false (model_has (model, "dev-10002"));
    g_assert_cmpuint (g_list_model_get_n_items (model), ==, 2500 + 1);

    /* a rename, found under the new name (the key is rebuilt) */
    fl_devices_page_set_filters (page, "zebra", FL_FLEET_FILTER_ANY_STATUS, NULL);
    g_assert_cmpuint (g_list_model_get_n_items (model), ==, 0);
    g_ptr_array_set_size (records, 0);
    record = record_of (fl_fleet_lookup (fleet, "dev-00002"));
    {
      g_autoptr (JsonObject) rename = json_object_new ();

      json_object_set_string_member (rename, "name", "Zebra Crossing");
      g_assert_true (fl_device_update_from_json (record, rename, FALSE, NULL));
      fl_device_set_updated_at (record, fl_device_get_updated_at (record) + 1);
    }
    g_ptr_array_add (records, record);
    fl_fleet_merge_devices (fleet, records);
    g_assert_cmpuint (g_list_model_get_n_items (model), ==, 1);
    g_assert_true (model_has (model, "dev-00002"));
    assert_name_order (fleet);

    /* back as they were, for what follows */
    g_ptr_array_set_size (records, 0);
    record = record_of (fl_fleet_lookup (fleet, "dev-00001"));
    fl_device_set_status (record, FL_DEVICE_STATUS_OFFLINE);
    g_ptr_array_add (records, record);
    record = record_of (fl_fleet_lookup (fleet, "dev-00000"));
    fl_device_set_status (record, FL_DEVICE_STATUS_ONLINE);
    g_ptr_array_add (records, record);
    fl_fleet_merge_devices (fleet, records);
  }

  /* an empty state when nothing matches; clearing brings all back */
  fl_devices_page_set_tag (page, "no-such-tag");
  assert_shows (page, nothing, "tag no-such-tag");
  fl_devices_page_clear_filters (page);
  g_assert_true (fl_fleet_filter_is_empty (filter));
  g_assert_cmpuint (g_list_model_get_n_items (fl_devices_page_get_model (page)), ==, N_SYNTHETIC + 2);

  gtk_window_destroy (GTK_WINDOW (window));
}

/* ---- batching ------------------------------------------------------------ */

typedef struct
{
  guint   items_changed;
  guint   max_removed;
  guint   devices_changed;
  guint   last_changed_size;
  guint   events;
  guint   last_events;
} Counts;

static void
items_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  Counts     *counts)
{
  counts->items_changed++;
  counts->max_removed = MAX (counts->max_removed, removed);
}

static void
devices_changed_cb (FlFleet    *fleet,
                    GHashTable *changed,
                    Counts     *counts)
{
  counts->devices_changed++;
  counts->last_changed_size = g_hash_table_size (changed);
}

static void
events_cb (FlFleet   *fleet,
           GPtrArray *events,
           Counts    *counts)
{
  counts->events++;
  counts->last_events = events->len;
}

static void
assert_id_order (GListModel *model)
{
  g_autoptr (FlDevice) previous = NULL;

  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (FlDevice) device = g_list_model_get_item (model, i);

      if (previous != NULL)
        g_assert_cmpstr (fl_device_get_device_id (previous), <, fl_device_get_device_id (device));
      g_set_object (&previous, device);
    }
}

/* The name order holds the same devices as the id order, sorted by name
 * (case-insensitively), then id. */
static void
assert_name_order (FlFleet *fleet)
{
  GListModel *by_name = fl_fleet_get_by_name (fleet);
  guint n = g_list_model_get_n_items (by_name);
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  g_autoptr (FlDevice) previous = NULL;

  g_assert_cmpuint (n, ==, g_list_model_get_n_items (G_LIST_MODEL (fleet)));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (FlDevice) device = g_list_model_get_item (by_name, i);

      g_assert_true (fl_fleet_lookup (fleet, fl_device_get_device_id (device)) == device);
      g_assert_true (g_hash_table_add (seen, device));
      if (previous != NULL)
        {
          int cmp = g_ascii_strcasecmp (fl_device_get_name (previous), fl_device_get_name (device));

          if (cmp == 0)
            cmp = strcmp (fl_device_get_device_id (previous), fl_device_get_device_id (device));
          g_assert_cmpint (cmp, <, 0);
        }
      g_set_object (&previous, device);
    }
}

static void
test_batching (void)
{
  g_autoptr (FlFleet) fleet = fl_fleet_new (NULL);
  g_autoptr (GPtrArray) devices = synthetic_fleet (1000);
  g_autoptr (GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GPtrArray) server = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (FlFleetFilter) filter = fl_fleet_filter_new ();
  Counts counts = { 0, };
  FlDevice *d7, *d8;
  gint64 now = g_get_real_time () / 1000;

  g_signal_connect (fleet, "items-changed", G_CALLBACK (items_changed_cb), &counts);
  g_signal_connect (fleet, "devices-changed", G_CALLBACK (devices_changed_cb), &counts);
  g_signal_connect (fleet, "events", G_CALLBACK (events_cb), &counts);

  fl_fleet_set_devices (fleet, devices);
  g_assert_cmpuint (counts.items_changed, ==, 1);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 1000);
  assert_id_order (G_LIST_MODEL (fleet));
  assert_name_order (fleet);
  g_assert_cmpuint (fl_fleet_find (fleet, "dev-00007"), ==, 7);
  g_assert_cmpuint (fl_fleet_find (fleet, "dev-99999"), ==, G_MAXUINT);

  /* 600 events over 300 devices: one devices-changed, no items-changed */
  for (guint i = 0; i < 600; i++)
    {
      g_autofree char *id = g_strdup_printf ("e-%u", i);
      g_autofree char *source = g_strdup_printf ("dev-%05u", (i * 7) % 300);
      g_autofree char *data = g_strdup_printf ("{\"battery\": %u, \"rssi\": -%u, \"temperature\": 21.5}",
                                               i % 100, 40 + i % 50);

      g_ptr_array_add (batch, event_new (id, 100 + i, now - 600 + i, source, data));
    }
  counts.items_changed = 0;
  fl_fleet_apply_events (fleet, batch);
  g_assert_cmpuint (counts.items_changed, ==, 0);
  g_assert_cmpuint (counts.devices_changed, ==, 1);
  g_assert_cmpuint (counts.last_changed_size, ==, 300);
  g_assert_cmpuint (counts.events, ==, 1);
  g_assert_cmpuint (counts.last_events, ==, 600);
  g_assert_cmpint (fl_fleet_get_last_seq (fleet), ==, 699);

  /* the last event of dev-00007 (i = 301 + ... ) wins */
  d7 = fl_fleet_lookup (fleet, "dev-00007");
  {
    guint last = 0;

    for (guint i = 0; i < 600; i++)
      if ((i * 7) % 300 == 7)
        last = i;
    g_assert_cmpfloat (fl_device_get_battery (d7), ==, last % 100);
    g_assert_cmpfloat (fl_device_get_rssi (d7), ==, -(double) (40 + last % 50));
    g_assert_cmpint (fl_device_get_last_seen (d7), ==, now - 600 + last);
  }

  /* a replay of seqs already applied changes nothing */
  {
    g_autoptr (GPtrArray) replay = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

    g_ptr_array_add (replay, event_new ("e-replay", 650, now, "dev-00007", "{\"battery\": 3}"));
    fl_fleet_apply_events (fleet, replay);
    g_assert_cmpfloat (fl_device_get_battery (d7), !=, 3);
    g_assert_cmpuint (counts.events, ==, 1);
    g_assert_cmpuint (counts.devices_changed, ==, 1);
  }

  /* an event with a new model: found under it at once */
  {
    g_autoptr (GPtrArray) one = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

    fl_fleet_filter_set_search (filter, "zx-9");
    g_assert_false (fl_fleet_filter_match_device (filter, fl_fleet_lookup (fleet, "dev-00011")));
    g_ptr_array_add (one, event_new ("e-model", 700, now, "dev-00011", "{\"model\": \"ZX-9\"}"));
    fl_fleet_apply_events (fleet, one);
    g_assert_true (fl_fleet_filter_match_device (filter, fl_fleet_lookup (fleet, "dev-00011")));
    fl_fleet_filter_set_search (filter, NULL);
  }

  /* an event of an unknown device adds it, in id order */
  {
    g_autoptr (GPtrArray) one = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

    counts.items_changed = 0;
    g_ptr_array_add (one, event_new ("e-new", 701, now, "dev-00007x", "{\"battery\": 50}"));
    fl_fleet_apply_events (fleet, one);
    g_assert_cmpuint (counts.items_changed, ==, 1);
    g_assert_cmpuint (fl_fleet_find (fleet, "dev-00007x"), ==, 8);
    g_assert_cmpfloat (fl_device_get_battery (fl_fleet_lookup (fleet, "dev-00007x")), ==, 50);
    assert_name_order (fleet);
  }

  /* A server page of 200 devices (ids dev-00100..dev-00299) in which 100
   * changed status, one was renamed and 20 are new: updated in place,
   * and one items-changed for the whole page. */
  d8 = fl_fleet_lookup (fleet, "dev-00108");
  for (guint i = 100; i < 300; i++)
    {
      g_autofree char *id = g_strdup_printf ("dev-%05u", i);
      FlDevice *known = fl_fleet_lookup (fleet, id);
      g_autoptr (JsonNode) node = fl_device_to_json_node (known);
      g_autofree char *text = NULL;
      FlDevice *record;

      text = json_to_string (node, FALSE);
      record = fl_device_deserialize (text, NULL);
      g_assert_nonnull (record);
      if (i % 2 == 0)
        fl_device_set_status (record, fl_device_get_status (known) == FL_DEVICE_STATUS_ONLINE ?
                                      FL_DEVICE_STATUS_OFFLINE : FL_DEVICE_STATUS_ONLINE);
      if (i == 108)
        {
          g_autoptr (JsonObject) rename = json_object_new ();

          json_object_set_string_member (rename, "name", "Renamed Flowmeter");
          g_assert_true (fl_device_update_from_json (record, rename, FALSE, NULL));
          fl_device_set_updated_at (record, now);
        }
      g_ptr_array_add (server, record);

      if (i % 10 == 5)
        {
          g_autofree char *new_id = g_strdup_printf ("dev-%05u-b", i);

          g_ptr_array_add (server, device_new (new_id, "New one", "TH-1", FL_DEVICE_STATUS_ONLINE, NULL));
        }
    }
  counts.items_changed = 0;
  counts.devices_changed = 0;
  {
    Counts name_counts = { 0, };
    gulong handler = g_signal_connect (fl_fleet_get_by_name (fleet), "items-changed",
                                       G_CALLBACK (items_changed_cb), &name_counts);

    fl_fleet_merge_devices (fleet, server);
    /* in the name order the page's devices are scattered: a few ranges
     * (or one), never one per device */
    g_assert_cmpuint (name_counts.items_changed, >=, 1);
    g_assert_cmpuint (name_counts.items_changed, <=, 32 + 1);
    g_test_message ("page merge: %u items-changed in the name order", name_counts.items_changed);
    g_signal_handler_disconnect (fl_fleet_get_by_name (fleet), handler);
  }
  g_assert_cmpuint (counts.items_changed, ==, 1);
  g_assert_cmpuint (counts.devices_changed, ==, 1);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 1001 + 20);
  assert_id_order (G_LIST_MODEL (fleet));
  assert_name_order (fleet);
  /* in place: the same object, renamed, and found by its new name */
  g_assert_true (fl_fleet_lookup (fleet, "dev-00108") == d8);
  g_assert_cmpstr (fl_device_get_name (d8), ==, "Renamed Flowmeter");
  fl_fleet_filter_set_search (filter, "flowmeter");
  g_assert_true (fl_fleet_filter_match_device (filter, d8));
  g_assert_false (fl_fleet_filter_match_device (filter, d7));
  g_assert_nonnull (fl_fleet_lookup (fleet, "dev-00105-b"));

  /* the tags list knows every tag, sorted */
  {
    GListModel *tags = fl_fleet_get_tags (fleet);
    g_autoptr (GtkStringObject) first = g_list_model_get_item (tags, 0);

    g_assert_cmpuint (g_list_model_get_n_items (tags), ==, 5 + 7 + 1);
    g_assert_cmpstr (gtk_string_object_get_string (first), ==, "critical");
  }
}

/* ---- the cache, offline ---------------------------------------------------- */

typedef struct
{
  char    *dir;
  char    *cache_path;
  GtkWidget *window;
} Dirs;

static void
dirs_init (Dirs *dirs)
{
  g_autoptr (GError) error = NULL;

  dirs->dir = g_dir_make_tmp ("fieldline-fleet-XXXXXX", &error);
  g_assert_no_error (error);
  dirs->cache_path = g_build_filename (dirs->dir, "cache.db", NULL);
}

static void
dirs_clear (Dirs *dirs)
{
  if (dirs->window != NULL)
    gtk_window_destroy (GTK_WINDOW (dirs->window));
  test_rm_rf (dirs->dir);
  g_free (dirs->dir);
  g_free (dirs->cache_path);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Dirs, dirs_clear)

static gboolean
live_value_is (FlDevicePage *page,
               const char   *metric,
               const char   *expected)
{
  g_autofree char *value = fl_device_page_dup_live_value (page, metric);

  return g_strcmp0 (value, expected) == 0;
}

static void
test_offline_cache (void)
{
  g_auto (Dirs) dirs = { 0, };
  g_autoptr (FlCache) cache = NULL;
  g_autoptr (FlFleet) fleet = NULL;
  g_autoptr (FlClient) client = NULL;
  g_autoptr (GPtrArray) devices = synthetic_fleet (2000);
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autofree char *url = closed_port_url ("http");
  g_autofree char *ws_url = NULL;
  g_autofree char *when = NULL;
  gint64 now = g_get_real_time () / 1000;
  gint64 last_sync = now - 3 * 3600 * 1000;
  FlFleetView *view;
  FlDevicesPage *page;
  const char *offline;

  dirs_init (&dirs);

  /* an earlier session left devices, events and resume points */
  cache = cache_open (dirs.cache_path);
  cache_save (cache, devices);
  for (guint i = 0; i < 10; i++)
    {
      g_autofree char *id = g_strdup_printf ("cached-%u", i);
      g_autofree char *data = g_strdup_printf ("{\"temperature\": %u.5, \"humidity\": 40}", 20 + i);

      g_ptr_array_add (events, event_new (id, 30 + i, now - 600000 + i * 1000, "dev-00001", data));
    }
  cache_add_events (cache, events);
  fl_cache_set_last_seq (cache, 39);
  fl_cache_set_last_sync (cache, last_sync);
  fl_cache_close (cache);
  g_clear_object (&cache);

  /* a new start, with the server down */
  cache = cache_open (dirs.cache_path);
  fleet = fl_fleet_new (cache);
  client = fl_client_new (url);
  ws_url = g_strconcat ("ws", url + 4, "/events", NULL);
  fl_fleet_set_client (fleet, client, ws_url);
  view = FL_FLEET_VIEW (fl_fleet_view_new_for_fleet (fleet));
  dirs.window = window_new (GTK_WIDGET (view), 1000);
  page = fl_fleet_view_get_devices_page (view);

  fl_fleet_start (fleet);
  WAIT_UNTIL (fl_fleet_get_loaded (fleet));
  /* the cache is shown before the server answers */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 2000);
  g_assert_cmpint (fl_fleet_get_last_sync (fleet), ==, last_sync);
  g_assert_cmpint (fl_fleet_get_last_seq (fleet), ==, 39);

  /* the sync fails, a retry is due, the view says offline since when */
  WAIT_UNTIL (!fl_fleet_get_syncing (fleet) && fl_fleet_get_retry_delay (fleet) > 0);
  g_assert_false (fl_fleet_get_online (fleet));
  g_assert_true (fl_fleet_get_sync_failed (fleet));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 2000);
  offline = fl_fleet_view_get_offline_text (view);
  g_assert_nonnull (offline);
  when = fl_fleet_format_time (last_sync);
  g_assert_nonnull (strstr (offline, "Offline"));
  g_assert_nonnull (strstr (offline, when));
  g_test_message ("offline notice: %s", offline);

  /* browsable: search, and the device page with its cached values */
  fl_devices_page_set_search (page, "dev-0000");
  g_assert_cmpuint (g_list_model_get_n_items (fl_devices_page_get_model (page)), ==, 10);
  fl_fleet_view_show_device (view, fl_fleet_lookup (fleet, "dev-00001"));
  g_assert_cmpstr (fl_fleet_view_get_visible_page (view), ==, "device");
  WAIT_UNTIL (live_value_is (fl_fleet_view_get_device_page (view), "temperature", "29.5 °C"));
  g_assert_nonnull (fl_device_page_get_chart (fl_fleet_view_get_device_page (view), "humidity"));

  /* back */
  gtk_widget_activate_action (GTK_WIDGET (view), "fleet.back", NULL);
  g_assert_cmpstr (fl_fleet_view_get_visible_page (view), ==, "devices");

  /* a retry does not drop anything either */
  gtk_widget_activate_action (GTK_WIDGET (view), "fleet.refresh", NULL);
  WAIT_UNTIL (!fl_fleet_get_syncing (fleet));
  g_assert_false (fl_fleet_get_online (fleet));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 2000);
  g_assert_nonnull (fl_fleet_view_get_offline_text (view));

  fl_fleet_stop (fleet);
}

/* ---- against a relay -------------------------------------------------------- */

#define LIVE_DEVICE "live-01"
#define HISTORY_EVENTS 20

typedef struct
{
  Dirs        dirs;
  TestRelay  *relay;
  FlClient   *admin;
  char       *secret;     /* LIVE_DEVICE's */
  FlCache    *cache;
  FlFleet    *fleet;
  FlFleetView *view;
  GHashTable *received;   /* event id -> count, from the fleet's "events" */
  gint64      max_seq;
  GPtrArray  *ingested;   /* event ids */
  guint       in_flight;
} Live;

static void
live_events_cb (FlFleet   *fleet,
                GPtrArray *events,
                Live      *live)
{
  for (guint i = 0; i < events->len; i++)
    {
      FlEvent *event = g_ptr_array_index (events, i);
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (live->received, fl_event_get_id (event)));

      g_assert_cmpint (fl_event_get_seq (event), >, live->max_seq);
      live->max_seq = fl_event_get_seq (event);
      g_hash_table_insert (live->received, g_strdup (fl_event_get_id (event)), GUINT_TO_POINTER (n + 1));
    }
}

static FlClient *
login (const char *url)
{
  g_autoptr (FlClient) client = fl_client_new (url);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  fl_client_login_async (client, TEST_ADMIN, TEST_PASSWORD, NULL, result_cb, &result);
  g_assert_true (fl_client_login_finish (client, wait_result (&result), &error));
  g_assert_no_error (error);

  return g_steal_pointer (&client);
}

static char *
register_device (FlClient   *client,
                 const char *json)
{
  g_autoptr (JsonNode) registration = json_from_string (json, NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlDevice) device = NULL;
  char *secret = NULL;

  g_assert_nonnull (registration);
  fl_client_register_device_async (client, json_node_get_object (registration), NULL, result_cb, &result);
  device = fl_client_register_device_finish (client, wait_result (&result), &secret, &error);
  g_assert_no_error (error);
  g_assert_nonnull (device);

  return secret;
}

static void
ingest_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Live *live = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (FlIngestResult) reply = fl_client_ingest_finish (FL_CLIENT (object), result, &error);

  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_assert_cmpuint (reply->rejected->len, ==, 0);
  live->in_flight--;
}

/* Posts n events of LIVE_DEVICE; the last has battery last_battery and
 * temperature 20 + n - 1. */
static void
ingest (Live   *live,
        guint   n,
        double  last_battery)
{
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_uuid_string_random ();
      g_autofree char *data = g_strdup_printf ("{\"temperature\": %u.5, \"battery\": %g}",
                                               20 + i, i + 1 == n ? last_battery : 90.0);

      g_ptr_array_add (events, event_new (id, 0, g_get_real_time () / 1000 - (n - i), LIVE_DEVICE, data));
      g_ptr_array_add (live->ingested, g_strdup (id));
    }

  live->in_flight++;
  fl_client_ingest_async (live->admin, LIVE_DEVICE, live->secret, events, NULL, ingest_cb, live);
  WAIT_UNTIL (live->in_flight == 0);
}

static gboolean
received_all (Live *live)
{
  for (guint i = 0; i < live->ingested->len; i++)
    if (!g_hash_table_contains (live->received, g_ptr_array_index (live->ingested, i)))
      return FALSE;

  return TRUE;
}

static void
live_setup (Live *live)
{
  g_autoptr (GPtrArray) stale = g_ptr_array_new_with_free_func (g_object_unref);
  const char *tags[] = { "site:lab", NULL };

  dirs_init (&live->dirs);
  live->relay = test_relay_new ();
  live->admin = login (live->relay->url);
  live->received = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  live->ingested = g_ptr_array_new_with_free_func (g_free);

  /* 40 devices on the server */
  live->secret = register_device (live->admin,
                                  "{\"deviceId\": \"" LIVE_DEVICE "\", \"name\": \"Live One\", \"model\": \"TH-1\","
                                  " \"manufacturer\": \"Acme\", \"tags\": [\"site:lab\"],"
                                  " \"capabilities\": {\"metrics\": [\"temperature\"]}}");
  /* with a history the console never saw: 20 events half an hour ago */
  {
    g_autoptr (GPtrArray) history = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
    gint64                t0 = g_get_real_time () / 1000 - 30 * 60 * 1000;

    for (guint i = 0; i < HISTORY_EVENTS; i++)
      {
        g_autofree char *id = g_uuid_string_random ();

        g_ptr_array_add (history, event_new (id, 0, t0 + i * 1000, LIVE_DEVICE, "{\"temperature\": 18.5}"));
      }
    live->in_flight++;
    fl_client_ingest_async (live->admin, LIVE_DEVICE, live->secret, history, NULL, ingest_cb, live);
    WAIT_UNTIL (live->in_flight == 0);
  }
  for (guint i = 0; i < 39; i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"deviceId\": \"srv-%02u\", \"name\": \"Server %02u\","
                                               " \"model\": \"PM-2\", \"tags\": [\"site:lab\", \"n:%u\"]}",
                                               i, i, i);
      g_autofree char *secret = register_device (live->admin, json);

      g_assert_nonnull (secret);
    }

  /* the cache knows 5 of them under old names, and 3 the server does not */
  live->cache = cache_open (live->dirs.cache_path);
  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *id = g_strdup_printf ("srv-%02u", i);

      g_ptr_array_add (stale, device_new (id, "Old Name", "PM-2", FL_DEVICE_STATUS_MAINTENANCE, tags));
    }
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *id = g_strdup_printf ("ghost-%u", i);

      g_ptr_array_add (stale, device_new (id, "Ghost", NULL, FL_DEVICE_STATUS_OFFLINE, NULL));
    }
  cache_save (live->cache, stale);

  live->fleet = fl_fleet_new (live->cache);
  {
    g_autofree char *ws = g_strconcat ("ws://", live->relay->url + strlen ("http://"), "/events", NULL);

    fl_fleet_set_client (live->fleet, live->admin, ws);
  }
  g_signal_connect (live->fleet, "events", G_CALLBACK (live_events_cb), live);
  live->view = FL_FLEET_VIEW (fl_fleet_view_new_for_fleet (live->fleet));
  live->dirs.window = window_new (GTK_WIDGET (live->view), 1000);
}

static void
live_teardown (Live *live)
{
  FlEventStream *stream;

  fl_fleet_stop (live->fleet);
  stream = fl_fleet_get_stream (live->fleet);
  g_assert_null (stream);

  if (live->dirs.window != NULL)
    gtk_window_destroy (GTK_WINDOW (g_steal_pointer (&live->dirs.window)));
  g_clear_object (&live->fleet);
  fl_cache_close (live->cache);
  g_clear_object (&live->cache);
  g_clear_object (&live->admin);
  g_clear_pointer (&live->relay, test_relay_free);
  g_clear_pointer (&live->secret, g_free);
  g_clear_pointer (&live->received, g_hash_table_unref);
  g_clear_pointer (&live->ingested, g_ptr_array_unref);
  dirs_clear (&live->dirs);
}

static gboolean
stream_connected (FlFleet *fleet)
{
  FlEventStream *stream = fl_fleet_get_stream (fleet);

  return stream != NULL && fl_event_stream_get_state (stream) == FL_EVENT_STREAM_CONNECTED;
}

static void
test_relay (void)
{
  Live live = { { 0, }, };
  FlDevice *stale, *device;
  FlDevicePage *device_page;
  Counts counts = { 0, };
  g_autoptr (GPtrArray) cached = NULL;
  g_autoptr (GPtrArray) cached_events = NULL;
  g_autofree char *value = NULL;
  gint64 seq_before, synced_before;
  guint ghosts = 0;

  live_setup (&live);

  fl_fleet_start (live.fleet);
  WAIT_UNTIL (fl_fleet_get_loaded (live.fleet));
  /* not "offline" while the first sync is under way */
  g_assert_null (fl_fleet_view_get_offline_text (live.view));
  /* the cache first: 8 devices, one of which we follow through the sync */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (live.fleet)), ==, 8);
  stale = fl_fleet_lookup (live.fleet, "srv-03");
  g_assert_nonnull (stale);
  g_assert_cmpstr (fl_device_get_name (stale), ==, "Old Name");
  g_signal_connect (live.fleet, "items-changed", G_CALLBACK (items_changed_cb), &counts);

  /* sync: updated in place, added, the ones the server lacks dropped */
  WAIT_UNTIL (fl_fleet_get_last_sync (live.fleet) > 0 && !fl_fleet_get_syncing (live.fleet));
  g_assert_true (fl_fleet_get_online (live.fleet));
  g_assert_null (fl_fleet_view_get_offline_text (live.view));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (live.fleet)), ==, 40);
  g_assert_true (fl_fleet_lookup (live.fleet, "srv-03") == stale);
  g_assert_cmpstr (fl_device_get_name (stale), ==, "Server 03");
  g_assert_cmpint (fl_device_get_status (stale), ==, FL_DEVICE_STATUS_OFFLINE);
  g_assert_true (fl_device_has_tag (stale, "n:3"));
  g_assert_null (fl_fleet_lookup (live.fleet, "ghost-0"));
  g_assert_nonnull (fl_fleet_lookup (live.fleet, "srv-38"));
  assert_id_order (G_LIST_MODEL (live.fleet));
  assert_name_order (live.fleet);
  /* one page: a handful of items-changed, not one per device */
  g_assert_cmpuint (counts.items_changed, >=, 1);
  g_assert_cmpuint (counts.items_changed, <=, 3);
  g_test_message ("sync: %u items-changed", counts.items_changed);

  /* what the sync learnt is in the cache (saved in chunks from an idle) */
  WAIT_UNTIL (reload_devices (live.cache, &cached) >= 40);
  for (guint i = 0; i < cached->len; i++)
    {
      FlDevice *d = g_ptr_array_index (cached, i);

      if (g_str_equal (fl_device_get_device_id (d), "srv-03"))
        g_assert_cmpstr (fl_device_get_name (d), ==, "Server 03");
      ghosts += g_str_has_prefix (fl_device_get_device_id (d), "ghost-");
    }
  /* … and the devices gone from the server are gone from it */
  g_assert_cmpuint (ghosts, ==, 0);
  g_assert_cmpuint (cached->len, ==, 40);

  /* live: events update the device, its page and the cache */
  WAIT_UNTIL (stream_connected (live.fleet));
  g_assert_true (fl_fleet_get_live (live.fleet));
  device = fl_fleet_lookup (live.fleet, LIVE_DEVICE);
  g_assert_nonnull (device);
  fl_fleet_view_show_device (live.view, device);
  device_page = fl_fleet_view_get_device_page (live.view);
  g_assert_true (fl_device_page_get_device (device_page) == device);
  seq_before = fl_fleet_get_last_seq (live.fleet);

  ingest (&live, 5, 55);
  WAIT_UNTIL (received_all (&live));
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 55);
  value = fl_device_page_dup_live_value (device_page, "temperature");
  g_assert_cmpstr (value, ==, "24.5 °C");
  g_clear_pointer (&value, g_free);
  value = fl_device_page_dup_live_value (device_page, "battery");
  g_assert_cmpstr (value, ==, "55 %");
  g_clear_pointer (&value, g_free);
  g_assert_nonnull (fl_device_page_get_chart (device_page, "temperature"));
  g_assert_cmpint (fl_fleet_get_last_seq (live.fleet), ==, live.max_seq);
  g_assert_cmpint (fl_fleet_get_last_seq (live.fleet), >, seq_before);
  g_assert_cmpint (fl_cache_get_last_seq (live.cache), ==, live.max_seq);
  cached_events = cache_load_events (live.cache, LIVE_DEVICE);
  g_assert_cmpuint (cached_events->len, ==, 5);

  /* The chart has the live points, and the server's buckets for the
   * part of its hour the cache does not reach back to (the history);
   * zoomed out to a week, the cache's points and the server's buckets
   * for the rest of the week. */
  {
    FlChart *chart = fl_device_page_get_chart (device_page, "temperature");
    FlChartSeries *series = g_ptr_array_index (chart->series, 0);
    gint64 now = g_get_real_time () / 1000;
    guint counted = 0;

    WAIT_UNTIL (series->points != NULL && series->points->len >= 5);
    WAIT_UNTIL (series->n_buckets > 0);
    for (guint i = 0; i < series->n_buckets; i++)
      counted += series->buckets[i].n;
    /* (the live points too, when the cache had not stored them yet) */
    g_assert_cmpuint (counted, >=, HISTORY_EVENTS);
    g_assert_cmpuint (counted, <=, HISTORY_EVENTS + 5);
    g_assert_cmpint (series->buckets_from, >=, now - 3600 * 1000 - 60 * 1000);

    fl_chart_set_range (chart, now - 7 * 86400000LL, now);
    WAIT_UNTIL (series->buckets_from <= now - 7 * 86400000LL);
    counted = 0;
    for (guint i = 0; i < series->n_buckets; i++)
      counted += series->buckets[i].n;
    /* the history, up to where the cache's points start */
    g_assert_cmpuint (counted, ==, HISTORY_EVENTS);
  }

  /* The relay goes away: offline, the cache stays; it comes back and
   * the stream reconnects (after its backoff) and resumes from "since".
   * Events posted right after the restart are usually stored before the
   * stream returns (it waits 5 s between tries), so they come as a
   * replay; either way each arrives once. */
  fl_event_stream_set_timing (fl_fleet_get_stream (live.fleet), 16, 0, 0, 5000, 5000);
  synced_before = fl_fleet_get_last_sync (live.fleet);
  g_usleep (2000);
  test_relay_stop (live.relay);
  WAIT_UNTIL (!fl_fleet_get_online (live.fleet));
  g_assert_true (fl_fleet_get_sync_failed (live.fleet));
  g_assert_false (fl_fleet_get_live (live.fleet));
  /* live until the relay went: the data is as of then, not of the sync */
  g_assert_cmpint (fl_fleet_get_last_sync (live.fleet), >, synced_before);
  g_assert_cmpint (fl_cache_get_last_sync (live.cache), ==, fl_fleet_get_last_sync (live.fleet));
  g_assert_nonnull (fl_fleet_view_get_offline_text (live.view));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (live.fleet)), ==, 40);

  test_relay_start (live.relay);
  ingest (&live, 10, 44);
  g_test_message ("events posted while the stream was %s",
                  stream_connected (live.fleet) ? "connected (live)" : "away (replayed on resume)");
  WAIT_UNTIL (received_all (&live));
  WAIT_UNTIL (fl_fleet_get_online (live.fleet));
  WAIT_UNTIL (fl_fleet_view_get_offline_text (live.view) == NULL);
  /* and the sync after the outage clears the failure */
  WAIT_UNTIL (!fl_fleet_get_sync_failed (live.fleet));
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 44);

  /* The console stops (the stream with it) and starts again: what was
   * posted meanwhile comes from "since", deterministically. */
  WAIT_UNTIL (!fl_fleet_get_syncing (live.fleet));
  fl_fleet_stop (live.fleet);
  g_assert_null (fl_fleet_get_stream (live.fleet));
  ingest (&live, 10, 33);
  g_assert_false (received_all (&live));
  fl_fleet_start (live.fleet);
  WAIT_UNTIL (received_all (&live));

  /* no gap, no duplicate: each of the 25 events once, in seq order (the
   * "events" handler checks the order) */
  g_assert_cmpuint (g_hash_table_size (live.received), ==, 25);
  g_assert_cmpuint (live.ingested->len, ==, 25);
  {
    GHashTableIter iter;
    gpointer key, count;

    g_hash_table_iter_init (&iter, live.received);
    while (g_hash_table_iter_next (&iter, &key, &count))
      g_assert_cmpuint (GPOINTER_TO_UINT (count), ==, 1);
  }
  g_assert_cmpfloat (fl_device_get_battery (device), ==, 33);
  value = fl_device_page_dup_live_value (device_page, "temperature");
  g_assert_cmpstr (value, ==, "29.5 °C");
  g_assert_cmpint (fl_fleet_get_last_seq (live.fleet), ==, live.max_seq);
  g_assert_cmpint (fl_cache_get_last_seq (live.cache), ==, live.max_seq);
  g_clear_pointer (&cached_events, g_ptr_array_unref);
  cached_events = cache_load_events (live.cache, LIVE_DEVICE);
  g_assert_cmpuint (cached_events->len, ==, 25);
  {
    g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);

    for (guint i = 0; i < cached_events->len; i++)
      g_assert_true (g_hash_table_add (ids, (gpointer) fl_event_get_id (g_ptr_array_index (cached_events, i))));
    for (guint i = 0; i < live.ingested->len; i++)
      g_assert_true (g_hash_table_contains (ids, g_ptr_array_index (live.ingested, i)));
  }

  /* and the sync after the outage ran */
  WAIT_UNTIL (!fl_fleet_get_syncing (live.fleet));

  live_teardown (&live);
}

/* ---- the production path: a session ---------------------------------------- */

/* fl_fleet_view_new (session), as the window calls it after a sign-in:
 * the profile's cache under XDG_DATA_HOME, the session's client, tokens
 * and websocket URL, "online" from the session. */
static void
test_session (void)
{
  g_autoptr (TestRelay) relay = test_relay_new ();
  g_autoptr (FlClient) admin = login (relay->url);
  g_autoptr (FlProfile) profile = fl_profile_new_lab (relay->url);
  g_autoptr (FlTokenSet) tokens = NULL;
  g_autoptr (FlSession) session = NULL;
  g_autofree char *secret = NULL;
  g_autofree char *cache_path = NULL;
  g_autoptr (GPtrArray) events = g_ptr_array_new_with_free_func ((GDestroyNotify) fl_event_unref);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (FlIngestResult) reply = NULL;
  g_autoptr (GError) error = NULL;
  GtkWidget *window;
  FlFleetView *view;
  FlFleet *fleet;
  FlDevice *device;

  /* what GET /config tells a lab profile */
  g_object_set (profile,
                "user-pool-id", fl_relay_get_pool_id (relay->relay),
                "client-id", fl_relay_get_client_id (relay->relay),
                NULL);
  secret = register_device (admin, "{\"deviceId\": \"sess-1\", \"name\": \"Session One\"}");
  g_free (register_device (admin, "{\"deviceId\": \"sess-2\", \"name\": \"Session Two\"}"));

  tokens = fl_token_set_new (fl_client_get_id_token (admin), fl_client_get_access_token (admin),
                             fl_client_get_refresh_token (admin), fl_client_get_token_expiry (admin), TEST_ADMIN);
  session = fl_session_new (profile, tokens, TRUE);
  view = FL_FLEET_VIEW (fl_fleet_view_new (session));
  fleet = g_object_ref (fl_fleet_view_get_fleet (view));
  window = window_new (GTK_WIDGET (view), 1000);

  g_assert_true (fl_fleet_get_session (fleet) == session);
  WAIT_UNTIL (fl_fleet_get_last_sync (fleet) > 0 && !fl_fleet_get_syncing (fleet));
  g_assert_true (fl_fleet_get_online (fleet));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (fleet)), ==, 2);
  cache_path = fl_cache_default_path (fl_profile_get_id (profile));
  g_assert_true (g_file_test (cache_path, G_FILE_TEST_EXISTS));
  g_assert_true (g_str_has_prefix (cache_path, g_get_user_data_dir ()));

  /* live, with the session's token */
  WAIT_UNTIL (stream_connected (fleet));
  g_ptr_array_add (events, event_new ("sess-e1", 0, g_get_real_time () / 1000, "sess-1", "{\"battery\": 61}"));
  fl_client_ingest_async (admin, "sess-1", secret, events, NULL, result_cb, &result);
  reply = fl_client_ingest_finish (admin, wait_result (&result), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (reply->accepted, ==, 1);
  device = fl_fleet_lookup (fleet, "sess-1");
  WAIT_UNTIL (fl_device_get_battery (device) == 61);

  /* the session goes offline: so does the fleet */
  {
    g_autoptr (GError) down = g_error_new_literal (FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK, "test");

    fl_session_report_network_error (session, down);
    g_assert_false (fl_fleet_get_online (fleet));
    fl_session_report_success (session);
    g_assert_true (fl_fleet_get_online (fleet));
  }

  /* the window goes: the view stops its fleet (and its stream) */
  gtk_window_destroy (GTK_WINDOW (window));
  WAIT_UNTIL (fl_fleet_get_stream (fleet) == NULL);
  g_object_unref (fleet);
  WAIT_UNTIL (fl_hub_get_n_subscribers (relay->relay->hub) == 0);
}

/* ---- a row ------------------------------------------------------------------ */

static void
test_row (void)
{
  const char *tags[] = { "site:lab", NULL };
  g_autoptr (FlDevice) device = device_new ("th-7", "Thermo 7", "TH-1", FL_DEVICE_STATUS_ONLINE, tags);
  g_autoptr (FlEvent) event = NULL;
  FlDeviceRow *row = FL_DEVICE_ROW (g_object_ref_sink (fl_device_row_new ()));
  FlDeviceRow *header = FL_DEVICE_ROW (g_object_ref_sink (fl_device_row_new_header ()));
  gint64 now = g_get_real_time () / 1000;

  fl_device_set_last_seen (device, now - 5 * 60 * 1000);
  fl_device_row_set_device (row, device);
  /* status as text (never color alone), name, id, unknown battery */
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_STATUS), ==, "Online");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_NAME), ==, "Thermo 7");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_ID), ==, "th-7");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_BATTERY), ==, "—");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_LAST_SEEN), ==, "5 minutes ago");

  /* an event: the row updates in place and says it changed */
  event = event_new ("e-1", 1, now, "th-7", "{\"battery\": 87, \"rssi\": -67}");
  fl_device_apply_event (device, event, now);
  g_assert_true (fl_device_row_update (row, now));
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_BATTERY), ==, "87 %");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_SIGNAL), ==, "-67 dBm");
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_LAST_SEEN), ==, "Just now");
  g_assert_false (fl_device_row_update (row, now));

  /* the 30 s refresh moves "last seen" on */
  g_assert_true (fl_device_row_update (row, now + 2 * 3600 * 1000));
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_LAST_SEEN), ==, "2 hours ago");

  fl_device_set_status (device, FL_DEVICE_STATUS_MAINTENANCE);
  g_assert_true (fl_device_row_update (row, now));
  g_assert_cmpstr (fl_device_row_get_text (row, FL_DEVICE_ROW_STATUS), ==, "Maintenance");

  g_assert_cmpstr (fl_device_row_get_text (header, FL_DEVICE_ROW_STATUS), ==, "Status");
  fl_device_row_set_device (row, NULL);
  g_assert_null (fl_device_row_get_device (row));

  g_object_unref (row);
  g_object_unref (header);
}

/* ---- the .ui files ------------------------------------------------------ */

static void
test_views (void)
{
  g_autoptr (FlFleet) fleet = fl_fleet_new (NULL);
  g_autoptr (GPtrArray) devices = synthetic_fleet (50);
  FlFleetView *view;
  GtkWidget *window;
  FlDevicesPage *page;

  fl_fleet_set_devices (fleet, devices);
  fl_fleet_start (fleet);
  view = FL_FLEET_VIEW (fl_fleet_view_new_for_fleet (fleet));
  window = window_new (GTK_WIDGET (view), 360);
  page = fl_fleet_view_get_devices_page (view);

  /* at 360 px: narrow (fewer columns, filters on two lines) */
  WAIT_UNTIL (fl_devices_page_get_narrow (page));
  run_for (100);
  g_assert_cmpint (gtk_widget_get_width (window), <=, 400);

  /* actions */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (view), "fleet.search", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (view), "fleet.refresh", NULL));

  /* activating a row opens the device; back returns */
  fl_fleet_view_show_device (view, fl_fleet_lookup (fleet, "dev-00010"));
  g_assert_cmpstr (fl_fleet_view_get_visible_page (view), ==, "device");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (view), "fleet.back", NULL));
  g_assert_cmpstr (fl_fleet_view_get_visible_page (view), ==, "devices");

  /* an empty fleet shows its own state */
  {
    g_autoptr (FlFleet) empty = fl_fleet_new (NULL);
    FlDevicesPage *empty_page = FL_DEVICES_PAGE (g_object_ref_sink (fl_devices_page_new (empty)));

    g_assert_cmpstr (fl_devices_page_get_state (empty_page), ==, "loading");
    fl_fleet_start (empty);
    g_assert_cmpstr (fl_devices_page_get_state (empty_page), ==, "empty");
    g_object_unref (empty_page);
  }

  /* nothing keeps the views alive once the window goes */
  {
    gpointer weak_view = view, weak_page = page, weak_device_page = fl_fleet_view_get_device_page (view);

    g_object_add_weak_pointer (G_OBJECT (view), &weak_view);
    g_object_add_weak_pointer (G_OBJECT (page), &weak_page);
    g_object_add_weak_pointer (weak_device_page, &weak_device_page);
    gtk_window_destroy (GTK_WINDOW (window));
    WAIT_UNTIL (weak_view == NULL && weak_page == NULL && weak_device_page == NULL);
  }
  fl_fleet_stop (fleet);
  g_assert_finalize_object (g_steal_pointer (&fleet));
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *home = g_dir_make_tmp ("fieldline-fleet-home-XXXXXX", NULL);
  g_autofree char *data = g_build_filename (home, "data", NULL);
  g_autofree char *secrets = g_build_filename (home, "keyring.file", NULL);
  int status;

  /* the profile's cache and the session's tokens stay in here (before
   * GLib reads the user directories) */
  g_assert_nonnull (home);
  g_setenv ("XDG_DATA_HOME", data, TRUE);
  g_setenv ("SECRET_BACKEND", "file", TRUE);
  g_setenv ("SECRET_FILE_TEST_PATH", secrets, TRUE);
  g_setenv ("SECRET_FILE_TEST_PASSWORD", "test-password", TRUE);

  g_test_init (&argc, &argv, NULL);
  gtk_init ();
  adw_init ();

  g_test_add_func ("/fieldline/console/fleet/row", test_row);
  g_test_add_func ("/fieldline/console/fleet/filter", test_filter);
  g_test_add_func ("/fieldline/console/fleet/batching", test_batching);
  g_test_add_func ("/fieldline/console/fleet/views", test_views);
  g_test_add_func ("/fieldline/console/fleet/offline-cache", test_offline_cache);
  g_test_add_func ("/fieldline/console/fleet/relay-sync-live-resume", test_relay);
  g_test_add_func ("/fieldline/console/fleet/session", test_session);

  status = g_test_run ();
  test_rm_rf (home);

  return status;
}
