/* test-cli.c: fieldline-relay's command-line contract, on the built
 * binary: --help, --version, users add, the three start-up lines, and a
 * clean exit 0 on SIGTERM and SIGINT. */
#include "config.h"

#include <signal.h>
#include <string.h>

#include <gio/gio.h>

static const char *relay_path;

static char *
run (const char  *stdin_text,
     int         *status,
     const char  *first,
     ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  va_list args;

  g_ptr_array_add (argv, (gpointer) relay_path);
  va_start (args, first);
  for (const char *a = first; a != NULL; a = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  proc = g_subprocess_newv ((const char * const *) argv->pdata,
                            G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                            G_SUBPROCESS_FLAGS_STDERR_MERGE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (proc, stdin_text, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  *status = g_subprocess_get_exit_status (proc);

  return g_steal_pointer (&out);
}

static void
test_version_and_help (void)
{
  int status;
  g_autofree char *version = run (NULL, &status, "--version", NULL);
  g_autofree char *help = NULL;
  g_autofree char *bad = NULL;

  g_assert_cmpint (status, ==, 0);
  g_assert_true (g_str_has_prefix (version, "fieldline-relay " PACKAGE_VERSION));

  help = run (NULL, &status, "--help", NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (help, "--listen"));
  g_assert_nonnull (strstr (help, "--data-dir"));
  g_assert_nonnull (strstr (help, "--tls-cert"));
  g_assert_nonnull (strstr (help, "users add"));

  bad = run (NULL, &status, "--no-such-option", NULL);
  g_assert_cmpint (status, ==, 2);
  g_free (bad);
  bad = run (NULL, &status, "frobnicate", NULL);
  g_assert_cmpint (status, ==, 2);
}

static void
test_users_add (void)
{
  g_autofree char *dir = g_dir_make_tmp ("fieldline-cli-XXXXXX", NULL);
  int status;
  g_autofree char *ok = run ("Good-pass-1!\n", &status, "--data-dir", dir, "users", "add", "alice",
                             "--email", "alice@example.com", "--group", "operator", NULL);
  g_autofree char *again = NULL;
  g_autofree char *weak = NULL;
  g_autofree char *group = NULL;

  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (ok, "alice"));

  again = run ("Good-pass-1!\n", &status, "--data-dir", dir, "users", "add", "alice",
               "--email", "alice@example.com", NULL);
  g_assert_cmpint (status, ==, 1);

  weak = run ("short\n", &status, "--data-dir", dir, "users", "add", "bob", "--email", "bob@example.com", NULL);
  g_assert_cmpint (status, ==, 1);

  group = run ("Good-pass-1!\n", &status, "--data-dir", dir, "users", "add", "carol", "--group", "root", NULL);
  g_assert_cmpint (status, ==, 2);
}

typedef struct
{
  GMainLoop  *loop;
  GString    *out;
  gboolean    exited;
} Serve;

static void
wait_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Serve *serve = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  serve->exited = TRUE;
  g_main_loop_quit (serve->loop);
}

static void
serve_and_signal (int signum)
{
  g_autofree char *dir = g_dir_make_tmp ("fieldline-cli-XXXXXX", NULL);
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GDataInputStream) lines = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *line1 = NULL, *line2 = NULL, *line3 = NULL;
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Serve serve = { loop, NULL, FALSE };
  g_autoptr (GRegex) url = g_regex_new ("^listening on http://127\\.0\\.0\\.1:[0-9]+$", 0, 0, NULL);
  g_autoptr (GRegex) pool = g_regex_new ("^user pool: [\\w-]+_[0-9a-zA-Z]+$", 0, 0, NULL);

  proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                           relay_path, "--listen", "127.0.0.1:0", "--data-dir", dir, NULL);
  g_assert_no_error (error);

  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  line1 = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  line2 = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  line3 = g_data_input_stream_read_line (lines, NULL, NULL, &error);
  g_assert_no_error (error);

  g_assert_true (g_regex_match (url, line1, 0, NULL));
  g_assert_true (g_regex_match (pool, line2, 0, NULL));
  g_assert_true (g_str_has_prefix (line3, "app client: "));
  g_assert_cmpuint (strlen (line3), >, strlen ("app client: "));

  g_subprocess_send_signal (proc, signum);
  g_subprocess_wait_async (proc, NULL, wait_cb, &serve);
  g_main_loop_run (loop);

  g_assert_true (serve.exited);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
}

static void
test_serve_sigterm (void)
{
  serve_and_signal (SIGTERM);
}

static void
test_serve_sigint (void)
{
  serve_and_signal (SIGINT);
}

static void
test_bad_listen (void)
{
  g_autofree char *dir = g_dir_make_tmp ("fieldline-cli-XXXXXX", NULL);
  int status;
  g_autofree char *out = run (NULL, &status, "--listen", "nowhere", "--data-dir", dir, NULL);

  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (out, "HOST:PORT"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  relay_path = g_getenv ("FIELDLINE_RELAY");
  if (relay_path == NULL)
    relay_path = g_build_filename (g_getenv ("G_TEST_BUILDDIR") ? g_getenv ("G_TEST_BUILDDIR") : "tests",
                                   "..", "src", "relay", "fieldline-relay", NULL);

  g_test_add_func ("/fieldline/relay/cli/version-help", test_version_and_help);
  g_test_add_func ("/fieldline/relay/cli/users-add", test_users_add);
  g_test_add_func ("/fieldline/relay/cli/serve-sigterm", test_serve_sigterm);
  g_test_add_func ("/fieldline/relay/cli/serve-sigint", test_serve_sigint);
  g_test_add_func ("/fieldline/relay/cli/bad-listen", test_bad_listen);

  return g_test_run ();
}
