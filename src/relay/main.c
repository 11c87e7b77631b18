/* main.c: fieldline-relay's command line. */
#define G_LOG_DOMAIN "fieldline-relay"

#include "config.h"

#include <errno.h>
#include <glib-unix.h>
#include <locale.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "fl-relay.h"
#include "fl-user-pool.h"

static char *opt_listen;
static char *opt_data_dir;
static char *opt_tls_cert;
static char *opt_tls_key;
static char *opt_email;
static char *opt_group;
static gint64 opt_max_body;
static gint64 opt_max_event;
static gboolean opt_version;
static gboolean opt_temporary;
static gboolean opt_auto_confirm;
static gboolean opt_with_secret;
static char *opt_flows;
static char *opt_public_url;
static char *opt_smtp_url;
static char *opt_smtp_from;
static char *opt_password_policy;
static char *opt_cognito_issuer;
static char *opt_cognito_client_id;
static char *opt_cognito_jwks;
static int opt_token_lifetime;
static int opt_refresh_lifetime;

static const GOptionEntry entries[] = {
  { "listen", 'l', 0, G_OPTION_ARG_STRING, &opt_listen, "Address to serve on (default 127.0.0.1:8080; port 0 picks a free one)", "HOST:PORT" },
  { "data-dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_data_dir, "Where the store, users and keys live (default $XDG_DATA_HOME/fieldline-relay)", "DIR" },
  { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_cert, "Serve HTTPS and WSS with this PEM certificate", "FILE" },
  { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &opt_tls_key, "The PEM private key of --tls-cert", "FILE" },
  { "max-body-size", 0, 0, G_OPTION_ARG_INT64, &opt_max_body, "Largest request body in bytes (default 1 MiB)", "BYTES" },
  { "max-event-size", 0, 0, G_OPTION_ARG_INT64, &opt_max_event, "Largest event in bytes (default 64 KiB)", "BYTES" },
  { "email", 0, 0, G_OPTION_ARG_STRING, &opt_email, "users add: the user's email address", "EMAIL" },
  { "group", 0, 0, G_OPTION_ARG_STRING, &opt_group, "users add, users set-group: admin, operator or viewer (default viewer)", "GROUP" },
  { "temporary", 0, 0, G_OPTION_ARG_NONE, &opt_temporary, "users add: the password is temporary; a new one is chosen at the first sign-in", NULL },
  { "with-secret", 0, 0, G_OPTION_ARG_NONE, &opt_with_secret, "clients add: the app client gets a secret", NULL },
  { "flows", 0, 0, G_OPTION_ARG_STRING, &opt_flows, "clients add: allowed flows, comma-separated (default USER_SRP_AUTH,USER_PASSWORD_AUTH,REFRESH_TOKEN_AUTH)", "FLOWS" },
  { "auto-confirm", 0, 0, G_OPTION_ARG_NONE, &opt_auto_confirm, "Confirm sign-ups without a code (labs)", NULL },
  { "public-url", 0, 0, G_OPTION_ARG_STRING, &opt_public_url, "The URL clients reach the relay at, for the token issuer (default: the listening URL)", "URL" },
  { "smtp-url", 0, 0, G_OPTION_ARG_STRING, &opt_smtp_url, "Send codes by SMTP: smtp://[user@]host[:port], smtp+starttls://…, smtps://… (password in $FIELDLINE_SMTP_PASSWORD); default: .eml files in DATA_DIR/outbox", "URL" },
  { "smtp-from", 0, 0, G_OPTION_ARG_STRING, &opt_smtp_from, "The From of code messages", "ADDRESS" },
  { "token-lifetime", 0, 0, G_OPTION_ARG_INT, &opt_token_lifetime, "ID and access token lifetime in seconds (default 3600)", "SECONDS" },
  { "refresh-token-lifetime", 0, 0, G_OPTION_ARG_INT, &opt_refresh_lifetime, "Refresh token lifetime in seconds (default 2592000, 30 days)", "SECONDS" },
  { "password-policy", 0, 0, G_OPTION_ARG_STRING, &opt_password_policy, "e.g. min=8,upper,lower,digit,symbol (the default)", "POLICY" },
  { "cognito-issuer", 0, 0, G_OPTION_ARG_STRING, &opt_cognito_issuer, "Also accept tokens of this Cognito pool: https://cognito-idp.REGION.amazonaws.com/POOL_ID", "URL" },
  { "cognito-client-id", 0, 0, G_OPTION_ARG_STRING, &opt_cognito_client_id, "The app client id of --cognito-issuer", "ID" },
  { "cognito-jwks", 0, 0, G_OPTION_ARG_STRING, &opt_cognito_jwks, "The JWKS of --cognito-issuer: a file or URL", "FILE|URL" },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, "Print the version and exit", NULL },
  { NULL }
};

static const char description[] =
  "Commands:\n"
  "  (none)                 Serve the Fieldline API until SIGINT or SIGTERM\n"
  "  users add NAME         Add an operator; the password is read from stdin\n"
  "  users list             List the users, their status and group\n"
  "  users set-group NAME   Make --group the user's group\n"
  "  users disable NAME     Refuse the user's sign-ins and tokens\n"
  "  users enable NAME      Undo users disable\n"
  "  clients add NAME       Add an app client (--with-secret, --flows)\n"
  "  clients list           List the app clients\n"
  "  keys rotate            New signing keys at the next start; the old ones\n"
  "                         stay published until their tokens expire\n"
  "\n"
  "On start the relay prints “listening on URL”, “user pool: ID” and\n"
  "“app client: ID”, one per line.\n";

static char *
read_password (GError **error)
{
  char buf[1024];
  gsize len;

  if (fgets (buf, sizeof buf, stdin) == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "Give the password on standard input");
      return NULL;
    }

  len = strlen (buf);
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    buf[--len] = '\0';

  return g_strdup (buf);
}

static int
users_add (const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (FlUserPool) pool = NULL;
  g_autofree char *password = NULL;
  FlRole role = FL_ROLE_VIEWER;

  if (opt_group != NULL && !fl_role_from_string (opt_group, &role))
    {
      g_printerr ("fieldline-relay: --group must be admin, operator or viewer\n");
      return 2;
    }

  if (g_mkdir_with_parents (opt_data_dir, 0700) != 0)
    {
      g_printerr ("fieldline-relay: cannot create %s: %s\n", opt_data_dir, g_strerror (errno));
      return 1;
    }

  password = read_password (&error);
  if (password == NULL ||
      (pool = fl_user_pool_open (opt_data_dir, &error)) == NULL ||
      !fl_user_pool_create_user (pool, name, opt_email, password, opt_temporary, role, &error))
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      return 1;
    }

  g_print ("added user %s (%s)\n", name, fl_role_to_string (role));
  return 0;
}

static FlUserPool *
open_pool (void)
{
  g_autoptr (GError) error = NULL;
  FlUserPool        *pool;

  if (g_mkdir_with_parents (opt_data_dir, 0700) != 0)
    {
      g_printerr ("fieldline-relay: cannot create %s: %s\n", opt_data_dir, g_strerror (errno));
      return NULL;
    }
  pool = fl_user_pool_open (opt_data_dir, &error);
  if (pool == NULL)
    g_printerr ("fieldline-relay: %s\n", error->message);
  return pool;
}

static void
print_json (JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char          *text = NULL;

  json_generator_set_pretty (generator, TRUE);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

/* users list | set-group NAME | disable NAME | enable NAME */
static int
users_command (const char *command,
               const char *name)
{
  g_autoptr (FlUserPool) pool = open_pool ();
  g_autoptr (GError)     error = NULL;
  gboolean               ok;

  if (pool == NULL)
    return 1;
  if (g_str_equal (command, "list"))
    {
      g_autoptr (JsonNode) users = fl_user_pool_list_users (pool, &error);

      if (users != NULL)
        print_json (users);
      ok = users != NULL;
    }
  else if (g_str_equal (command, "set-group"))
    {
      FlRole role;

      if (opt_group == NULL || !fl_role_from_string (opt_group, &role))
        {
          g_printerr ("fieldline-relay: --group must be admin, operator or viewer\n");
          return 2;
        }
      ok = fl_user_pool_set_user_role (pool, name, role, &error);
    }
  else
    ok = fl_user_pool_set_user_enabled (pool, name, g_str_equal (command, "enable"), &error);

  if (!ok)
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      return 1;
    }
  return 0;
}

static int
clients_command (const char *command,
                 const char *name)
{
  g_autoptr (FlUserPool) pool = open_pool ();
  g_autoptr (GError)     error = NULL;
  g_autofree char       *client_id = NULL;
  g_autofree char       *secret = NULL;
  FlAuthFlows            flows = 0;

  if (pool == NULL)
    return 1;
  if (g_str_equal (command, "list"))
    {
      g_autoptr (JsonNode) clients = fl_user_pool_list_clients (pool);

      print_json (clients);
      return 0;
    }
  if (opt_flows == NULL)
    flows = FL_AUTH_FLOWS_ALL;
  else
    {
      g_auto (GStrv) names = g_strsplit (opt_flows, ",", -1);

      for (guint i = 0; names[i] != NULL; i++)
        {
          const char *flow = g_strstrip (names[i]);

          if (g_str_equal (flow, "USER_SRP_AUTH"))
            flows |= FL_AUTH_FLOW_USER_SRP;
          else if (g_str_equal (flow, "USER_PASSWORD_AUTH"))
            flows |= FL_AUTH_FLOW_USER_PASSWORD;
          else if (g_str_equal (flow, "REFRESH_TOKEN_AUTH"))
            flows |= FL_AUTH_FLOW_REFRESH_TOKEN;
          else
            {
              g_printerr ("fieldline-relay: unknown flow “%s” (USER_SRP_AUTH, USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH)\n", flow);
              return 2;
            }
        }
    }
  if (!fl_user_pool_add_client (pool, name, opt_with_secret, flows, &client_id, &secret, &error))
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      return 1;
    }
  g_print ("app client: %s\n", client_id);
  if (secret != NULL)
    g_print ("client secret: %s\n", secret);
  return 0;
}

static int
keys_rotate (void)
{
  g_autoptr (FlUserPool) pool = open_pool ();
  g_autoptr (GError)     error = NULL;

  if (pool == NULL)
    return 1;
  if (!fl_user_pool_rotate_keys (pool, &error))
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      return 1;
    }
  g_print ("new signing keys made; a relay uses them from its next start\n");
  return 0;
}

typedef struct
{
  GMainLoop *loop;
  FlRelay   *relay;
  int        status;
} Run;

static void
shutdown_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Run *run = user_data;
  g_autoptr (GError) error = NULL;

  if (!fl_relay_shutdown_finish (FL_RELAY (source), result, &error))
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      run->status = 1;
    }
  g_main_loop_quit (run->loop);
}

static gboolean
signal_cb (gpointer user_data)
{
  Run *run = user_data;

  g_message ("Shutting down: draining requests in flight");
  fl_relay_shutdown_async (run->relay, NULL, shutdown_cb, run);

  return G_SOURCE_CONTINUE;
}

/* Every device connection is a socket: take what the system allows. */
static void
raise_fd_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
}

static int
serve (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr (FlRelay) relay = NULL;
  FlRelayOptions options = {
    .data_dir = opt_data_dir,
    .listen = opt_listen ? opt_listen : "127.0.0.1:8080",
    .tls_cert_file = opt_tls_cert,
    .tls_key_file = opt_tls_key,
    .max_body_size = opt_max_body > 0 ? opt_max_body : 0,
    .max_event_size = opt_max_event > 0 ? opt_max_event : 0,
    .public_url = opt_public_url,
    .auto_confirm = opt_auto_confirm,
    .smtp_url = opt_smtp_url,
    .smtp_from = opt_smtp_from,
    .token_lifetime = opt_token_lifetime > 0 ? (guint) opt_token_lifetime : 0,
    .refresh_lifetime = opt_refresh_lifetime > 0 ? (guint) opt_refresh_lifetime : 0,
    .password_policy = opt_password_policy,
    .cognito_issuer = opt_cognito_issuer,
    .cognito_client_id = opt_cognito_client_id,
    .cognito_jwks = opt_cognito_jwks,
  };
  Run run = { loop, NULL, 0 };
  guint sigint, sigterm;

  raise_fd_limit ();
  signal (SIGPIPE, SIG_IGN);

  /* Each password check borrows 19 MiB (argon2id).  glibc would raise its
   * mmap threshold after the first one and keep the memory in the heap
   * for good; a fixed threshold hands it back when the check is done. */
  mallopt (M_MMAP_THRESHOLD, 256 * 1024);
  /* A handful of threads (writer, readers, checkpointer, hashing) share
   * two arenas: one arena per thread leaves freed memory stranded in
   * each, and fl-loadgen measured 6-9 MB less RSS with 10,000 devices. */
  mallopt (M_ARENA_MAX, 2);

  relay = fl_relay_new (&options, &error);
  if (relay == NULL)
    {
      g_printerr ("fieldline-relay: %s\n", error->message);
      return 1;
    }
  run.relay = relay;

  /* Handlers first: whoever reads the lines below may signal at once. */
  sigint = g_unix_signal_add (SIGINT, signal_cb, &run);
  sigterm = g_unix_signal_add (SIGTERM, signal_cb, &run);

  g_print ("listening on %s\n", fl_relay_get_url (relay));
  g_print ("user pool: %s\n", fl_relay_get_pool_id (relay));
  g_print ("app client: %s\n", fl_relay_get_client_id (relay));
  fflush (stdout);

  g_main_loop_run (loop);

  g_source_remove (sigint);
  g_source_remove (sigterm);

  return run.status;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  setlocale (LC_ALL, "");

  context = g_option_context_new ("[users|clients|keys COMMAND]");
  g_option_context_set_summary (context, "The Fieldline relay: device ingest, store, live stream and sign-in for a lab.");
  g_option_context_set_description (context, description);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("fieldline-relay: %s\nTry --help.\n", error->message);
      return 2;
    }

  if (opt_version)
    {
      g_print ("fieldline-relay %s\n", PACKAGE_VERSION);
      return 0;
    }

  if (opt_data_dir == NULL)
    opt_data_dir = g_build_filename (g_get_user_data_dir (), "fieldline-relay", NULL);

  if (argc >= 2 && g_str_equal (argv[1], "users"))
    {
      if (argc == 4 && g_str_equal (argv[2], "add"))
        status = users_add (argv[3]);
      else if (argc == 3 && g_str_equal (argv[2], "list"))
        status = users_command ("list", NULL);
      else if (argc == 4 && (g_str_equal (argv[2], "set-group") || g_str_equal (argv[2], "disable") ||
                             g_str_equal (argv[2], "enable")))
        status = users_command (argv[2], argv[3]);
      else
        {
          g_printerr ("fieldline-relay: usage: fieldline-relay [--data-dir DIR] users add NAME --email EMAIL --group admin|operator|viewer [--temporary]\n"
                      "       users list | users set-group NAME --group GROUP | users disable NAME | users enable NAME\n");
          status = 2;
        }
    }
  else if (argc >= 2 && g_str_equal (argv[1], "clients"))
    {
      if (argc == 4 && g_str_equal (argv[2], "add"))
        status = clients_command ("add", argv[3]);
      else if (argc == 3 && g_str_equal (argv[2], "list"))
        status = clients_command ("list", NULL);
      else
        {
          g_printerr ("fieldline-relay: usage: fieldline-relay [--data-dir DIR] clients add NAME [--with-secret] [--flows LIST] | clients list\n");
          status = 2;
        }
    }
  else if (argc == 3 && g_str_equal (argv[1], "keys") && g_str_equal (argv[2], "rotate"))
    status = keys_rotate ();
  else if (argc > 1)
    {
      g_printerr ("fieldline-relay: unknown command “%s”. Try --help.\n", argv[1]);
      status = 2;
    }
  else
    status = serve ();

  g_clear_pointer (&opt_listen, g_free);
  g_clear_pointer (&opt_data_dir, g_free);
  g_clear_pointer (&opt_tls_cert, g_free);
  g_clear_pointer (&opt_tls_key, g_free);
  g_clear_pointer (&opt_email, g_free);
  g_clear_pointer (&opt_group, g_free);
  g_clear_pointer (&opt_flows, g_free);
  g_clear_pointer (&opt_public_url, g_free);
  g_clear_pointer (&opt_smtp_url, g_free);
  g_clear_pointer (&opt_smtp_from, g_free);
  g_clear_pointer (&opt_password_policy, g_free);
  g_clear_pointer (&opt_cognito_issuer, g_free);
  g_clear_pointer (&opt_cognito_client_id, g_free);
  g_clear_pointer (&opt_cognito_jwks, g_free);

  return status;
}
