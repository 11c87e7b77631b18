/* fl-test-util.c: an in-process relay and main-loop waits for tests. */
#define G_LOG_DOMAIN "fl-test-util"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "fl-test-util.h"
#include "fl-user-pool.h"

void
test_result_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (*out);
  *out = g_object_ref (result);
}

GAsyncResult *
test_wait_result (GAsyncResult **result)
{
  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);

  return *result;
}

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
wake_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

void
test_wait_until (gboolean (*condition) (gpointer data),
                 gpointer    data,
                 guint       timeout_ms,
                 const char *what)
{
  gboolean timed_out = FALSE;
  guint    timeout_id = g_timeout_add (timeout_ms, set_flag_cb, &timed_out);
  guint    wake_id = g_timeout_add (20, wake_cb, NULL);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);

  g_source_remove (wake_id);
  if (!timed_out)
    g_source_remove (timeout_id);
  else if (!condition (data))
    g_error ("Timed out after %u ms waiting for %s", timeout_ms, what);
}

void
test_run_for (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, set_flag_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

void
test_rm_rf (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char      *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            test_rm_rf (child);
          else
            g_unlink (child);
        }
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static FlRelay *
try_start (TestRelay *relay,
           GError   **error)
{
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", relay->port);
  FlRelayOptions   options = { 0 };

  options.data_dir = relay->data_dir;
  options.listen = listen;

  return fl_relay_new (&options, error);
}

void
test_relay_start (TestRelay *relay)
{
  g_autoptr (GError) error = NULL;
  gint64             deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  const char        *colon;

  g_assert_null (relay->relay);

  /* the old listener's port may take a moment to be free again */
  while ((relay->relay = try_start (relay, &error)) == NULL && relay->port != 0 && g_get_monotonic_time () < deadline)
    {
      g_test_message ("Port %u not free yet: %s", relay->port, error->message);
      g_clear_error (&error);
      test_run_for (100);
    }
  g_assert_no_error (error);
  g_assert_nonnull (relay->relay);

  g_free (relay->url);
  relay->url = g_strdup (fl_relay_get_url (relay->relay));
  colon = strrchr (relay->url, ':');
  g_assert_nonnull (colon);
  if (relay->port == 0)
    relay->port = (guint) g_ascii_strtoull (colon + 1, NULL, 10);
  g_assert_cmpuint (relay->port, >, 0);
}

/* A request that reaches the relay while it shuts down is answered 503,
 * which the relay logs as a warning: expected while a client is busy, so
 * while stopping it is a test message, not a failure. */
static gboolean
is_shutdown_warning (const char    *log_domain,
                     GLogLevelFlags log_level,
                     const char    *message)
{
  return g_strcmp0 (log_domain, "fl-http") == 0 && (log_level & G_LOG_LEVEL_WARNING) != 0 && strstr (message, "shutting down") != NULL;
}

static void
shutdown_log_handler (const char    *log_domain,
                      GLogLevelFlags log_level,
                      const char    *message,
                      gpointer       user_data)
{
  if (is_shutdown_warning (log_domain, log_level, message))
    g_test_message ("While stopping: %s", message);
  else
    g_log_default_handler (log_domain, log_level, message, user_data);
}

static gboolean
shutdown_fatal_handler (const char    *log_domain,
                        GLogLevelFlags log_level,
                        const char    *message,
                        gpointer       user_data)
{
  return !is_shutdown_warning (log_domain, log_level, message);
}

void
test_relay_stop (TestRelay *relay)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError)       error = NULL;
  guint                    handler;

  if (relay->relay == NULL)
    return;

  handler = g_log_set_handler ("fl-http", G_LOG_LEVEL_WARNING | G_LOG_FLAG_FATAL,
                               shutdown_log_handler, NULL);
  g_test_log_set_fatal_handler (shutdown_fatal_handler, NULL);

  fl_relay_shutdown_async (relay->relay, NULL, test_result_cb, &result);
  g_assert_true (fl_relay_shutdown_finish (relay->relay, test_wait_result (&result), &error));
  g_assert_no_error (error);
  g_clear_object (&relay->relay);

  g_test_log_set_fatal_handler (NULL, NULL);
  g_log_remove_handler ("fl-http", handler);
}

TestRelay *
test_relay_new (void)
{
  g_autoptr (GError) error = NULL;
  TestRelay         *relay = g_new0 (TestRelay, 1);
  FlUserPool        *pool;

  relay->data_dir = g_dir_make_tmp ("fieldline-client-test-XXXXXX", &error);
  g_assert_no_error (error);

  test_relay_start (relay);

  pool = fl_relay_get_user_pool (relay->relay);
  fl_user_pool_add_user (pool, TEST_ADMIN, "admin@example.com", TEST_PASSWORD, FL_ROLE_ADMIN, &error);
  g_assert_no_error (error);
  fl_user_pool_add_user (pool, TEST_VIEWER, "viewer@example.com", TEST_PASSWORD, FL_ROLE_VIEWER, &error);
  g_assert_no_error (error);

  return relay;
}

void
test_relay_free (TestRelay *relay)
{
  if (relay == NULL)
    return;

  test_relay_stop (relay);
  if (relay->data_dir != NULL)
    test_rm_rf (relay->data_dir);
  g_free (relay->data_dir);
  g_free (relay->url);
  g_free (relay);
}
