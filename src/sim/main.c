/* main.c: fieldline-sim's command line around FlSim. */
#define G_LOG_DOMAIN "fl-sim"

#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <glib-unix.h>
#include <glib/gi18n.h>

#include "fl-sim.h"

typedef struct
{
  GMainLoop    *loop;
  FlSim        *sim;
  GCancellable *cancellable;
  GError       *error;
  guint         signals_seen;
  gint64        started;
  gint64        last_stats_time;
  guint64       last_acked;
  guint         duration_id;
} App;

static void
print_stats (App *app)
{
  FlSimStats stats;
  gint64     now = g_get_monotonic_time ();
  double     interval = (now - app->last_stats_time) / (double) G_USEC_PER_SEC;
  double     rate = 0;

  fl_sim_get_stats (app->sim, &stats);
  if (interval > 0)
    rate = (stats.acked - app->last_acked) / interval;

  g_print ("[%7.1fs] sent %" G_GUINT64_FORMAT " acked %" G_GUINT64_FORMAT " (%.1f/s)"
           " connected %u/%u queued %u duplicates %" G_GUINT64_FORMAT
           " resent %" G_GUINT64_FORMAT " rejected %" G_GUINT64_FORMAT
           " dropped %" G_GUINT64_FORMAT " failures %" G_GUINT64_FORMAT "\n",
           (now - app->started) / (double) G_USEC_PER_SEC,
           stats.sent, stats.acked, rate, stats.connected, stats.n_devices, stats.queued,
           stats.duplicates, stats.resent, stats.rejected, stats.dropped, stats.failures);

  app->last_stats_time = now;
  app->last_acked = stats.acked;
}

static gboolean
stats_cb (gpointer user_data)
{
  print_stats (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
duration_cb (gpointer user_data)
{
  App *app = user_data;

  app->duration_id = 0;
  g_print ("Duration reached; flushing and stopping\n");
  fl_sim_stop (app->sim);

  return G_SOURCE_REMOVE;
}

static gboolean
signal_cb (gpointer user_data)
{
  App *app = user_data;

  if (app->signals_seen++ == 0)
    {
      g_print ("Flushing and stopping (again to stop at once)\n");
      fl_sim_stop (app->sim);
    }
  else
    g_cancellable_cancel (app->cancellable);

  return G_SOURCE_CONTINUE;
}

static void
ready_cb (FlSim *sim,
          App   *app)
{
  g_print ("Streaming; device secrets in %s\n", fl_sim_get_state_file (sim));
}

static void
run_cb (GObject      *object,
        GAsyncResult *result,
        gpointer      user_data)
{
  App *app = user_data;

  fl_sim_run_finish (FL_SIM (object), result, &app->error);
  g_main_loop_quit (app->loop);
}

/* Each WebSocket is a file descriptor: allow as many as we may. */
static void
raise_fd_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &limit) != 0)
        g_debug ("Cannot raise the file descriptor limit");
    }
}

int
main (int    argc,
      char **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError)         error = NULL;
  g_autoptr (FlSim)          sim = NULL;
  g_autoptr (GMainLoop)      loop = NULL;
  g_autoptr (GCancellable)   cancellable = NULL;
  g_autofree char           *url = NULL;
  g_autofree char           *transport = NULL;
  g_autofree char           *user = NULL;
  g_autofree char           *password = NULL;
  g_autofree char           *prefix = NULL;
  g_autofree char           *state_file = NULL;
  gboolean                   version = FALSE;
  int                        devices = 10;
  double                     rate = 10;
  double                     duration = 0;
  double                     flaky_fraction = 0;
  int                        http_connections = 4;
  int                        stats_interval = 5;
  int                        backfill = 0;
  FlSimOptions               options = { 0 };
  App                        app = { 0 };
  guint                      stats_id;
  guint                      sigint_id;
  guint                      sigterm_id;
  const GOptionEntry         entries[] = {
            { "connect", 'c', 0, G_OPTION_ARG_STRING, &url, N_ ("The relay or API to connect to"), "URL" },
            { "devices", 'n', 0, G_OPTION_ARG_INT, &devices, N_ ("How many devices to simulate (10)"), "N" },
            { "rate", 'r', 0, G_OPTION_ARG_DOUBLE, &rate, N_ ("Events per second from all devices together (10)"), "EVENTS_PER_SECOND" },
            { "transport", 't', 0, G_OPTION_ARG_STRING, &transport, N_ ("ws (a device WebSocket each) or http (batches over a small connection pool)"), "ws|http" },
            { "user", 'u', 0, G_OPTION_ARG_STRING, &user, N_ ("Operator or admin user (or FIELDLINE_USER)"), "U" },
            { "password", 'p', 0, G_OPTION_ARG_STRING, &password, N_ ("Password (or FIELDLINE_PASSWORD)"), "P" },
            { "prefix", 0, 0, G_OPTION_ARG_STRING, &prefix, N_ ("Device ids are PREFIX-0001 … (sim)"), "PREFIX" },
            { "state", 's', 0, G_OPTION_ARG_FILENAME, &state_file, N_ ("Where device secrets are kept ($XDG_STATE_HOME/fieldline-sim/<userPoolId>.json)"), "FILE" },
            { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &duration, N_ ("Stop after this many seconds (run until interrupted)"), "SEC" },
            { "flaky-fraction", 'f', 0, G_OPTION_ARG_DOUBLE, &flaky_fraction, N_ ("Part of the devices that drop off now and then (0)"), "F" },
            { "http-connections", 0, 0, G_OPTION_ARG_INT, &http_connections, N_ ("Keep-alive HTTP connections (4)"), "N" },
            { "backfill", 'b', 0, G_OPTION_ARG_INT, &backfill, N_ ("First send this many seconds of history from every device (0)"), "SEC" },
            { "stats-interval", 0, 0, G_OPTION_ARG_INT, &stats_interval, N_ ("Seconds between lines of statistics (5; 0 for none)"), "SEC" },
            { "version", 0, 0, G_OPTION_ARG_NONE, &version, N_ ("Show the version"), NULL },
            { NULL }
  };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _ ("Simulates Fieldline devices that stream telemetry to a relay."));
  g_option_context_set_description (context,
                                    _ ("Example:\n  FIELDLINE_USER=admin FIELDLINE_PASSWORD=… fieldline-sim "
                                       "--connect http://127.0.0.1:8080 --devices 100 --rate 1000\n"));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("fieldline-sim: %s\n", error->message);
      return EXIT_FAILURE;
    }

  if (version)
    {
      g_print ("fieldline-sim %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }

  if (url == NULL)
    {
      g_printerr ("fieldline-sim: --connect URL is needed (see --help)\n");
      return EXIT_FAILURE;
    }
  if (devices < 1 || http_connections < 1)
    {
      g_printerr ("fieldline-sim: --devices and --http-connections must be at least 1\n");
      return EXIT_FAILURE;
    }
  if (stats_interval < 0 || duration < 0 || backfill < 0)
    {
      g_printerr ("fieldline-sim: --stats-interval, --duration and --backfill cannot be negative\n");
      return EXIT_FAILURE;
    }

  options.url = url;
  options.username = user != NULL ? user : g_getenv ("FIELDLINE_USER");
  options.password = password != NULL ? password : g_getenv ("FIELDLINE_PASSWORD");
  options.n_devices = (guint) devices;
  options.rate = rate;
  options.prefix = prefix;
  options.state_file = state_file;
  options.flaky_fraction = flaky_fraction;
  options.http_connections = (guint) http_connections;
  options.backfill_sec = (guint) backfill;

  if (transport == NULL || g_str_equal (transport, "ws") || g_str_equal (transport, "websocket"))
    options.transport = FL_SIM_TRANSPORT_WEBSOCKET;
  else if (g_str_equal (transport, "http"))
    options.transport = FL_SIM_TRANSPORT_HTTP;
  else
    {
      g_printerr ("fieldline-sim: --transport must be ws or http, not “%s”\n", transport);
      return EXIT_FAILURE;
    }

  sim = fl_sim_new (&options, &error);
  if (sim == NULL)
    {
      g_printerr ("fieldline-sim: %s\n", error->message);
      return EXIT_FAILURE;
    }

  raise_fd_limit ();

  loop = g_main_loop_new (NULL, FALSE);
  cancellable = g_cancellable_new ();
  app.loop = loop;
  app.sim = sim;
  app.cancellable = cancellable;
  app.started = app.last_stats_time = g_get_monotonic_time ();

  sigint_id = g_unix_signal_add (SIGINT, signal_cb, &app);
  sigterm_id = g_unix_signal_add (SIGTERM, signal_cb, &app);
  g_signal_connect (sim, "ready", G_CALLBACK (ready_cb), &app);

  g_print ("fieldline-sim %s: %u devices, %.1f events/s over %s to %s\n", PACKAGE_VERSION,
           options.n_devices, options.rate,
           options.transport == FL_SIM_TRANSPORT_HTTP ? "HTTP" : "WebSocket", url);

  fl_sim_run_async (sim, cancellable, run_cb, &app);

  stats_id = stats_interval > 0 ? g_timeout_add_seconds ((guint) stats_interval, stats_cb, &app) : 0;
  if (duration > 0)
    app.duration_id = g_timeout_add ((guint) MIN (duration * 1000.0, (double) G_MAXUINT), duration_cb, &app);

  g_main_loop_run (loop);

  g_clear_handle_id (&stats_id, g_source_remove);
  g_clear_handle_id (&app.duration_id, g_source_remove);
  g_clear_handle_id (&sigint_id, g_source_remove);
  g_clear_handle_id (&sigterm_id, g_source_remove);

  print_stats (&app);

  if (app.error != NULL && !g_error_matches (app.error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_printerr ("fieldline-sim: %s\n", app.error->message);
      g_clear_error (&app.error);
      return EXIT_FAILURE;
    }

  g_clear_error (&app.error);
  return EXIT_SUCCESS;
}
