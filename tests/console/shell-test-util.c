/* shell-test-util.c: what the application shell's tests share. */
#define G_LOG_DOMAIN "test-shell"

#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "fl-user-pool-private.h"
#include "shell-test-util.h"

gboolean
st_deadline_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

void
st_remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char      *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            st_remove_tree (child);
          else
            g_unlink (child);
        }
    }
  g_rmdir (path);
}

char *
st_isolate_dirs (void)
{
  g_autoptr (GError) error = NULL;
  char              *dir = g_dir_make_tmp ("fieldline-shell-home-XXXXXX", &error);
  const struct {
    const char *variable;
    const char *name;
  } dirs[] = {
    { "HOME", "home" },
    { "XDG_CONFIG_HOME", "config" },
    { "XDG_DATA_HOME", "data" },
    { "XDG_CACHE_HOME", "cache" },
    { "XDG_STATE_HOME", "state" },
  };

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *path = g_build_filename (dir, dirs[i].name, NULL);

      g_assert_cmpint (g_mkdir_with_parents (path, 0700), ==, 0);
      g_setenv (dirs[i].variable, path, TRUE);
    }

  return dir;
}

gboolean
st_tree_contains (const char *path,
                  const char *needle)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char      *name;

  if (dir == NULL)
    return FALSE;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        continue;
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        {
          if (st_tree_contains (child, needle))
            return TRUE;
        }
      else
        {
          g_autofree char *contents = NULL;
          gsize            length = 0;

          if (g_file_get_contents (child, &contents, &length, NULL)
              && memmem (contents, length, needle, strlen (needle)) != NULL)
            {
              g_test_message ("%s contains the secret", child);
              return TRUE;
            }
        }
    }

  return FALSE;
}

/* A self-signed certificate for 127.0.0.1, made with openssl. */
static void
make_certificate (StRelay *relay)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *err_text = NULL;
  int                wait_status = 0;
  const char        *argv[] = {
    "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
    "-keyout", NULL, "-out", NULL, "-days", "2",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    NULL
  };

  relay->cert_file = g_build_filename (relay->dir, "cert.pem", NULL);
  relay->key_file = g_build_filename (relay->dir, "key.pem", NULL);
  argv[7] = relay->key_file;
  argv[9] = relay->cert_file;

  /* test set-up, before anything runs: a blocking spawn is fine */
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err_text, &wait_status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (wait_status, &error))
    g_error ("openssl failed: %s\n%s", error->message, err_text);
}

StRelay *
st_relay_new (gboolean tls)
{
  g_autoptr (GError) error = NULL;
  StRelay           *relay = g_new0 (StRelay, 1);
  FlRelayOptions     options = { 0 };
  FlUserPool        *pool;

  relay->dir = g_dir_make_tmp ("fieldline-shell-relay-XXXXXX", &error);
  g_assert_no_error (error);
  relay->seen_mail = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (tls)
    make_certificate (relay);

  options.data_dir = relay->dir;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = relay->cert_file;
  options.tls_key_file = relay->key_file;

  relay->relay = fl_relay_new (&options, &error);
  g_assert_no_error (error);
  relay->url = g_strdup (fl_relay_get_url (relay->relay));

  pool = fl_relay_get_user_pool (relay->relay);
  _fl_user_pool_set_argon2_params (pool, 1, 64, 1);
  fl_user_pool_add_user (pool, "ada", "ada@example.org", ST_PASSWORD, FL_ROLE_OPERATOR, &error);
  g_assert_no_error (error);

  return relay;
}

static void
shutdown_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  gboolean          *done = user_data;
  g_autoptr (GError) error = NULL;

  fl_relay_shutdown_finish (FL_RELAY (source), result, &error);
  g_assert_no_error (error);
  *done = TRUE;
}

void
st_relay_free (StRelay *relay)
{
  gboolean done = FALSE;

  if (relay == NULL)
    return;

  fl_relay_shutdown_async (relay->relay, NULL, shutdown_cb, &done);
  ST_WAIT_UNTIL (done);
  g_clear_object (&relay->relay);

  st_remove_tree (relay->dir);
  g_free (relay->dir);
  g_free (relay->url);
  g_free (relay->cert_file);
  g_free (relay->key_file);
  g_hash_table_unref (relay->seen_mail);
  g_free (relay);
}

static GPtrArray *
new_mail (StRelay *relay)
{
  GPtrArray       *texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *outbox = g_build_filename (relay->dir, "outbox", NULL);
  g_autoptr (GDir) dir = g_dir_open (outbox, 0, NULL);
  const char      *name;

  if (dir == NULL)
    return texts;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      char            *text = NULL;

      if (!g_str_has_suffix (name, ".eml") || g_hash_table_contains (relay->seen_mail, name))
        continue;
      path = g_build_filename (outbox, name, NULL);
      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      g_ptr_array_add (texts, text);
      g_hash_table_add (relay->seen_mail, g_strdup (name));
    }

  return texts;
}

static gboolean
st_tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
poll_mail (StRelay    *relay,
           GPtrArray **mail)
{
  g_clear_pointer (mail, g_ptr_array_unref);
  *mail = new_mail (relay);
  return (*mail)->len > 0;
}

char *
st_relay_take_code (StRelay    *relay,
                    const char *email,
                    const char *phrase)
{
  g_autoptr (GPtrArray)  mail = NULL;
  g_autofree char       *to = g_strdup_printf ("\r\nTo: %s\r\n", email);
  g_autofree char       *pattern = g_strdup_printf ("%s ([0-9]{6})\r\n", phrase);
  g_autoptr (GRegex)     regex = g_regex_new (pattern, 0, 0, NULL);
  g_autoptr (GMatchInfo) match = NULL;
  const char            *text;

  /* the mailer writes from its own thread: poll */
  {
    guint    tick = g_timeout_add (20, st_tick_cb, NULL);
    gboolean got = FALSE;

    /* the condition is checked once more after the loop: keep the result */
    ST_WAIT_UNTIL (got || (got = poll_mail (relay, &mail)));
    g_source_remove (tick);
  }

  g_assert_cmpuint (mail->len, ==, 1);
  text = g_ptr_array_index (mail, 0);
  if (strstr (text, to) == NULL)
    g_error ("The message is not to %s:\n%s", email, text);
  if (!g_regex_match (regex, text, 0, &match))
    g_error ("No “%s NNNNNN” in the message:\n%s", phrase, text);

  return g_match_info_fetch (match, 1);
}

char *
st_closed_port_url (void)
{
  g_autoptr (GError)          error = NULL;
  g_autoptr (GSocket)         socket = NULL;
  g_autoptr (GInetAddress)    loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress)  address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress)  bound = NULL;
  guint16                     port;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);

  return g_strdup_printf ("http://127.0.0.1:%u", port);
}
