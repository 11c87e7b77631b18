/* bench-registry.c: the relay's device listing with a search (GET
 * /devices?q=), which runs on the relay's main loop.
 *
 * 100,000 devices named as the simulator names them (ASCII), 1 in 100
 * with a name that is not ASCII (the registry keeps their search keys as
 * they come); then, for each query, the median and worst of 21 listings
 * of one page (limit 100):
 *   - an ASCII query matching no device (the whole registry is scanned);
 *   - an ASCII query matching a few devices (also a whole scan);
 *   - a query that is not ASCII, matching none, and matching 1 in 100.
 *
 *   bench-registry [--devices N]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <glib/gstdio.h>

#include "fl-registry.h"

static int n_devices = 100000;

static GOptionEntry entries[] = {
  { "devices", 0, 0, G_OPTION_ARG_INT, &n_devices, "Devices to register", "N" },
  { NULL },
};

static int
cmp_double (const void *a,
            const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static void
measure (FlRegistry *registry,
         const char *label,
         const char *q)
{
  FlDeviceFilter filter = { .q = q, .any_status = TRUE, .limit = 100 };
  double         ms[21];
  guint          found = 0;

  for (guint i = 0; i < G_N_ELEMENTS (ms); i++)
    {
      gint64                t0 = g_get_monotonic_time ();
      g_autofree char      *cursor = NULL;
      g_autoptr (GPtrArray) page = fl_registry_list (registry, &filter, &cursor);

      ms[i] = (g_get_monotonic_time () - t0) / 1000.0;
      found = page->len;
    }
  qsort (ms, G_N_ELEMENTS (ms), sizeof ms[0], cmp_double);
  printf ("  %-46s median %6.2f ms  max %6.2f ms  (%u on the page)\n",
          label, ms[G_N_ELEMENTS (ms) / 2], ms[G_N_ELEMENTS (ms) - 1], found);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = g_option_context_new (NULL);
  g_autoptr (GError)         error = NULL;
  g_autofree char           *dir = NULL;
  g_autofree char           *path = NULL;
  g_autoptr (FlStore)        store = NULL;
  g_autoptr (FlRegistry)     registry = NULL;
  static const char *const   sites[] = { "berlin", "lyon", "munich", "rotterdam", "hamburg" };
  gint64                     t0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }

  dir = g_dir_make_tmp ("bench-registry-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "events.db", NULL);
  store = fl_store_open (path, &error);
  g_assert_no_error (error);
  registry = fl_registry_new (store, &error);
  g_assert_no_error (error);

  t0 = g_get_monotonic_time ();
  for (int i = 0; i < n_devices; i++)
    {
      g_autofree char     *id = g_strdup_printf ("sim-%06d", i);
      g_autofree char     *name = NULL;
      g_autofree char     *secret = NULL;
      g_autoptr (FlDevice) device = fl_device_new (id);
      g_autoptr (JsonObject) body = json_object_new ();

      if (i % 100 == 0)
        name = g_strdup_printf ("Kühlraum %d (%s)", i % 9, sites[i % G_N_ELEMENTS (sites)]);
      else
        name = g_strdup_printf ("AirSense Mini greenhouse-%d (%s)", i % 9, sites[i % G_N_ELEMENTS (sites)]);
      json_object_set_string_member (body, "name", name);
      g_assert_true (fl_device_update_from_json (device, body, TRUE, &error));
      g_assert_true (fl_registry_register (registry, device, &secret, &error));
    }
  printf ("registry search (GET /devices?q=), %d devices registered in %.1f s\n",
          n_devices, (g_get_monotonic_time () - t0) / 1e6);

  measure (registry, "ASCII, no match (whole scan)", "zzz");
  measure (registry, "ASCII, a few matches (whole scan)", "sim-0999");
  measure (registry, "not ASCII, no match (whole scan)", "kühlzz");
  measure (registry, "not ASCII, matches 1 in 100", "kühl");

  fl_store_close (store);
  g_clear_object (&registry);
  g_clear_object (&store);
  {
    g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
    const char *name;

    while (d != NULL && (name = g_dir_read_name (d)) != NULL)
      {
        g_autofree char *file = g_build_filename (dir, name, NULL);

        g_unlink (file);
      }
    g_rmdir (dir);
  }

  return 0;
}
