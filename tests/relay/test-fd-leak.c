/* test-fd-leak.c: libsoup 3.2's SoupServer keeps a keep-alive connection
 * open forever once its client closed it while idle; FlConnectionReaper
 * closes them.  Thousands of client-closed connections, plain and TLS,
 * must leave the process's open fds (and heap) where they were, while a
 * paused request whose client half-closed still gets its answer and a
 * WebSocket stays up.
 *
 * The server runs on this thread's main context, which the tests iterate;
 * the clients are plain blocking sockets on a thread of their own.
 *
 * FL_TEST_NO_REAPER=1 runs the SoupServer cases without the reaper, to
 * see them fail. */
#define G_LOG_DOMAIN "test-fd-leak"

#include "config.h"

#include <malloc.h>
#include <string.h>
#include <sys/resource.h>

#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "fl-connection-reaper-private.h"
#include "fl-relay.h"

#define N_CONNECTIONS 3000
#define N_TLS_CONNECTIONS 300
#define BATCH 30 /* client connections open at once */
#define FD_MARGIN 5
#define TIMEOUT_MS 30000
#define REAP_TIMEOUT_MS 15000 /* a reaper needs two or three seconds */
#define SWEEPS_MS 2500        /* two of the reaper's sweeps and more */
#define HEAP_SLACK (64 * 1024)

/* ---- waiting ------------------------------------------------------------ */

static gboolean
deadline_cb (gpointer user_data)
{
  gboolean *passed = user_data;

  *passed = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until cond holds or timeout_ms pass; evaluates
 * to cond. */
#define WAIT_FOR(cond, timeout_ms)                                          \
  ({                                                                        \
    gboolean passed_ = FALSE;                                               \
    guint    source_ = g_timeout_add ((timeout_ms), deadline_cb, &passed_); \
    while (!(cond) && !passed_)                                             \
      g_main_context_iteration (NULL, TRUE);                                \
    if (!passed_)                                                           \
      g_source_remove (source_);                                            \
    (cond);                                                                 \
  })

/* The same, failing the test when the time is up. */
#define WAIT_UNTIL_MS(cond, timeout_ms)                                 \
  G_STMT_START                                                          \
  {                                                                     \
    if (!WAIT_FOR (cond, timeout_ms))                                   \
      g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, \
                           "timed out waiting for: " #cond);            \
  }                                                                     \
  G_STMT_END

#define WAIT_UNTIL(cond) WAIT_UNTIL_MS (cond, TIMEOUT_MS)

/* Runs the main loop for ms (the server keeps serving meanwhile). */
static void
run_for (guint ms)
{
  gboolean never = FALSE;

  WAIT_FOR (never, ms);
}

static guint
count_open_fds (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint            n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;

  return n;
}

static gsize
heap_in_use (void)
{
  return mallinfo2 ().uordblks;
}

static gboolean
without_reaper (void)
{
  return g_strcmp0 (g_getenv ("FL_TEST_NO_REAPER"), "1") == 0;
}

/* ---- files ------------------------------------------------------------- */

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char      *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

/* A self-signed certificate for 127.0.0.1 in dir, made with openssl. */
static GTlsCertificate *
make_certificate (const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autofree char   *cert_file = g_build_filename (dir, "cert.pem", NULL);
  g_autofree char   *key_file = g_build_filename (dir, "key.pem", NULL);
  g_autofree char   *err_text = NULL;
  GTlsCertificate   *certificate;
  int                wait_status = 0;
  const char        *argv[] = {
           "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
           "-keyout", key_file, "-out", cert_file, "-days", "2",
           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
           NULL
  };

  /* Set-up, before the server runs: a blocking spawn is fine. */
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err_text, &wait_status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (wait_status, &error))
    g_error ("openssl failed: %s\n%s", error->message, err_text);

  certificate = g_tls_certificate_new_from_files (cert_file, key_file, &error);
  g_assert_no_error (error);

  return certificate;
}

/* ---- the client thread ------------------------------------------------ */

typedef struct
{
  /* what to do */
  GSocketAddress  *address;
  GTlsCertificate *certificate; /* TLS, accepting only this one */
  const char      *path;
  guint            n_connections;
  guint            batch;
  gboolean         half_close;     /* shutdown(SHUT_WR) after the request */
  gboolean         wait_for_close; /* TLS: close_notify, then wait for the server's */
  GMainContext    *context;        /* woken when done */

  /* what happened */
  guint n_ok; /* 200 with the expected body */
  guint n_closed_by_server;
  guint last_status;
  char *last_body;
  char *error; /* the first failure */
  gint  done;  /* atomic */
} Client;

static void
client_free (Client *client)
{
  g_clear_object (&client->address);
  g_clear_object (&client->certificate);
  g_clear_pointer (&client->last_body, g_free);
  g_clear_pointer (&client->error, g_free);
  g_clear_pointer (&client->context, g_main_context_unref);
  g_free (client);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

static gboolean
client_accept_certificate_cb (GTlsConnection      *conn,
                              GTlsCertificate     *peer,
                              GTlsCertificateFlags errors,
                              gpointer             user_data)
{
  Client *client = user_data;

  return g_tls_certificate_is_same (peer, client->certificate);
}

static GIOStream *
client_connect (Client  *client,
                GError **error)
{
  g_autoptr (GSocketClient)     socket_client = g_socket_client_new ();
  g_autoptr (GSocketConnection) connection = NULL;
  g_autoptr (GIOStream)         tls = NULL;

  g_socket_client_set_timeout (socket_client, 10);
  connection = g_socket_client_connect (socket_client, G_SOCKET_CONNECTABLE (client->address), NULL, error);
  if (connection == NULL)
    return NULL;

  if (client->certificate == NULL)
    return G_IO_STREAM (g_steal_pointer (&connection));

  tls = g_tls_client_connection_new (G_IO_STREAM (connection), NULL, error);
  if (tls == NULL)
    return NULL;
  g_signal_connect (tls, "accept-certificate", G_CALLBACK (client_accept_certificate_cb), client);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), NULL, error))
    return NULL;

  return g_steal_pointer (&tls);
}

static gboolean
client_send_request (Client    *client,
                     GIOStream *stream,
                     GError   **error)
{
  g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", client->path);

  if (!g_output_stream_write_all (g_io_stream_get_output_stream (stream), request, strlen (request),
                                  NULL, NULL, error))
    return FALSE;

  if (client->half_close)
    return g_socket_shutdown (g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream)),
                              FALSE, TRUE, error);

  return TRUE;
}

/* Reads one response with a Content-Length body. */
static gboolean
client_read_response (Client    *client,
                      GIOStream *stream,
                      GError   **error)
{
  GInputStream          *in = g_io_stream_get_input_stream (stream);
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  const char            *headers_end = NULL;
  const char            *length_header;
  gsize                  header_len;
  guint64                length = 0;
  char                   chunk[4096];

  while (headers_end == NULL)
    {
      gssize n = g_input_stream_read (in, chunk, sizeof chunk, NULL, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT, "Connection closed before the response");
          return FALSE;
        }
      g_byte_array_append (buf, (guint8 *) chunk, n);
      g_byte_array_append (buf, (guint8 *) "", 1); /* for strstr; removed below */
      headers_end = strstr ((char *) buf->data, "\r\n\r\n");
      g_byte_array_set_size (buf, buf->len - 1);
    }

  header_len = headers_end + 4 - (char *) buf->data;
  if (sscanf ((char *) buf->data, "HTTP/1.%*c %u", &client->last_status) != 1)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Not an HTTP response");
      return FALSE;
    }
  length_header = g_strstr_len ((char *) buf->data, header_len, "Content-Length: ");
  if (length_header != NULL)
    length = g_ascii_strtoull (length_header + strlen ("Content-Length: "), NULL, 10);

  while (buf->len < header_len + length)
    {
      gssize n = g_input_stream_read (in, chunk, MIN (sizeof chunk, header_len + length - buf->len), NULL, error);

      if (n <= 0)
        {
          if (n == 0)
            g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT, "Connection closed in the body");
          return FALSE;
        }
      g_byte_array_append (buf, (guint8 *) chunk, n);
    }

  g_free (client->last_body);
  client->last_body = g_strndup ((char *) buf->data + header_len, length);

  return TRUE;
}

/* Batches of connections, each sending one request, reading the whole
 * response and closing while idle. */
static gpointer
client_thread (gpointer data)
{
  Client            *client = data;
  g_autoptr (GError) error = NULL;

  for (guint done = 0; done < client->n_connections && error == NULL;)
    {
      g_autoptr (GPtrArray) streams = g_ptr_array_new_with_free_func (g_object_unref);
      guint                 batch = MIN (client->batch, client->n_connections - done);

      for (guint i = 0; i < batch && error == NULL; i++)
        {
          GIOStream *stream = client_connect (client, &error);

          if (stream != NULL)
            {
              g_ptr_array_add (streams, stream);
              client_send_request (client, stream, &error);
            }
        }

      for (guint i = 0; i < streams->len && error == NULL; i++)
        {
          if (client_read_response (client, g_ptr_array_index (streams, i), &error) && client->last_status == SOUP_STATUS_OK && g_str_equal (client->last_body, "hello"))
            client->n_ok++;
        }

      /* As OpenSSL's SSL_shutdown() loop does: only the server's
       * close_notify (or end of file) lets the client go.  The read fails
       * when the socket's timeout passes first. */
      for (guint i = 0; i < streams->len && client->wait_for_close && error == NULL; i++)
        g_output_stream_close (g_io_stream_get_output_stream (g_ptr_array_index (streams, i)), NULL, &error);
      for (guint i = 0; i < streams->len && client->wait_for_close && error == NULL; i++)
        {
          char   byte;
          gssize n = g_input_stream_read (g_io_stream_get_input_stream (g_ptr_array_index (streams, i)),
                                          &byte, 1, NULL, &error);

          if (n == 0 || g_error_matches (error, G_TLS_ERROR, G_TLS_ERROR_EOF))
            {
              client->n_closed_by_server++;
              g_clear_error (&error);
            }
        }

      /* The client goes away while the connections are idle. */
      for (guint i = 0; i < streams->len; i++)
        g_io_stream_close (g_ptr_array_index (streams, i), NULL, NULL);

      done += batch;
    }

  if (error != NULL)
    client->error = g_strdup (error->message);

  g_atomic_int_set (&client->done, TRUE);
  g_main_context_wakeup (client->context);

  return NULL;
}

static gboolean
client_is_done (Client *client)
{
  return g_atomic_int_get (&client->done);
}

static Client *
client_new (GSocketAddress  *address,
            GTlsCertificate *certificate,
            const char      *path,
            guint            n_connections)
{
  Client *client = g_new0 (Client, 1);

  client->address = g_object_ref (address);
  client->certificate = certificate != NULL ? g_object_ref (certificate) : NULL;
  client->path = path;
  client->n_connections = n_connections;
  client->batch = BATCH;
  client->context = g_main_context_ref_thread_default ();

  return client;
}

/* Runs client on its thread, serving meanwhile, until it is done. */
static void
client_run (Client *client)
{
  g_autoptr (GThread) thread = g_thread_new ("client", client_thread, client);

  WAIT_UNTIL (client_is_done (client));
  g_thread_join (g_steal_pointer (&thread));
}

/* n connections that must all get "hello". */
static void
run_clients (GSocketAddress  *address,
             GTlsCertificate *certificate,
             guint            n)
{
  g_autoptr (Client) client = client_new (address, certificate, "/", n);

  client_run (client);
  g_assert_cmpstr (client->error, ==, NULL);
  g_assert_cmpuint (client->n_ok, ==, n);
}

/* ---- the server --------------------------------------------------------- */

/* What a test's server is like (the g_test_add data). */
typedef struct
{
  gboolean tls;
  gboolean public_api_only; /* the reaper as on a libsoup other than 3.2 */
} Setup;

typedef struct
{
  Setup               setup;
  char               *dir;
  GTlsCertificate    *certificate;
  SoupServer         *server;
  FlConnectionReaper *reaper;
  GSocketAddress     *address;

  SoupServerMessage *paused;     /* by /slow */
  GPtrArray         *websockets; /* the server's ends */
  GPtrArray         *upgrades;   /* their SoupServerMessages */
  guint              n_ws_closed;
} Fixture;

static void
server_cb (SoupServer        *server,
           SoupServerMessage *msg,
           const char        *path,
           GHashTable        *query,
           gpointer           user_data)
{
  Fixture *f = user_data;

  if (g_str_equal (path, "/slow"))
    {
      /* answered by the test, later */
      g_assert_null (f->paused);
      f->paused = g_object_ref (msg);
      soup_server_message_pause (msg);
      return;
    }

  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "hello", 5);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
}

static void
server_ws_message_cb (SoupWebsocketConnection *ws,
                      SoupWebsocketDataType    type,
                      GBytes                  *message,
                      gpointer                 user_data)
{
  soup_websocket_connection_send_message (ws, type, message);
}

static void
server_ws_closed_cb (SoupWebsocketConnection *ws,
                     gpointer                 user_data)
{
  Fixture *f = user_data;

  f->n_ws_closed++;
}

static void
server_ws_cb (SoupServer              *server,
              SoupServerMessage       *msg,
              const char              *path,
              SoupWebsocketConnection *ws,
              gpointer                 user_data)
{
  Fixture *f = user_data;

  g_ptr_array_add (f->websockets, g_object_ref (ws));
  /* Kept, as an application may: it holds the stolen connection. */
  g_ptr_array_add (f->upgrades, g_object_ref (msg));
  g_signal_connect (ws, "message", G_CALLBACK (server_ws_message_cb), f);
  g_signal_connect (ws, "closed", G_CALLBACK (server_ws_closed_cb), f);
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  gboolean           tls;
  g_autoptr (GError) error = NULL;
  GSList            *uris;

  f->setup = *(const Setup *) data;
  tls = f->setup.tls;
  f->websockets = g_ptr_array_new_with_free_func (g_object_unref);
  f->upgrades = g_ptr_array_new_with_free_func (g_object_unref);
  f->server = soup_server_new ("server-header", "test-fd-leak ", NULL);
  if (without_reaper ())
    ;
  else if (f->setup.public_api_only)
    f->reaper = _fl_connection_reaper_new_following_requests (f->server);
  else
    f->reaper = fl_connection_reaper_new (f->server);

  soup_server_add_handler (f->server, NULL, server_cb, f, NULL);
  soup_server_add_websocket_handler (f->server, "/ws", NULL, NULL, server_ws_cb, f, NULL);

  if (tls)
    {
      f->dir = g_dir_make_tmp ("fl-fd-leak-XXXXXX", &error);
      g_assert_no_error (error);
      f->certificate = make_certificate (f->dir);
      soup_server_set_tls_certificate (f->server, f->certificate);
    }

  soup_server_listen_local (f->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY | (tls ? SOUP_SERVER_LISTEN_HTTPS : 0), &error);
  g_assert_no_error (error);

  uris = soup_server_get_uris (f->server);
  g_assert_nonnull (uris);
  {
    g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);

    f->address = g_inet_socket_address_new (loopback, g_uri_get_port (uris->data));
  }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_assert_null (f->paused);
  g_clear_pointer (&f->websockets, g_ptr_array_unref);
  g_clear_pointer (&f->upgrades, g_ptr_array_unref);
  g_clear_object (&f->reaper);
  soup_server_disconnect (f->server);
  g_assert_finalize_object (f->server);
  f->server = NULL;
  g_clear_object (&f->address);
  g_clear_object (&f->certificate);
  if (f->dir != NULL)
    remove_tree (f->dir);
  g_clear_pointer (&f->dir, g_free);
}

/* No connection left on the server, as far as the reaper knows. */
static gboolean
reaper_is_empty (Fixture *f)
{
  return f->reaper == NULL || fl_connection_reaper_get_n_connections (f->reaper) == 0;
}

/* Waits until the fds are back to within the margin of baseline (or the
 * time is up), then checks. */
static void
assert_fds_back_to (guint baseline)
{
  WAIT_FOR (count_open_fds () <= baseline + FD_MARGIN, REAP_TIMEOUT_MS);
  g_assert_cmpuint (count_open_fds (), <=, baseline + FD_MARGIN);
}

/* ---- tests ------------------------------------------------------------- */

/* Thousands of keep-alive connections closed by their clients while idle
 * (plain or TLS): the fds come back, the heap stays flat and the server
 * still answers. */
static void
test_closed_while_idle (Fixture      *f,
                        gconstpointer data)
{
  guint n = f->certificate != NULL ? N_TLS_CONNECTIONS : N_CONNECTIONS;
  /* On libsoup 3.2 the connections are freed too (elsewhere only their
   * fds go): without a leak the heap moves by some tens of KB, while the
   * fd alone would leave 1.8 KB (28 KB with TLS) and SoupListener's leaked
   * GSocket 400 bytes a connection behind. */
  gboolean check_heap = f->reaper != NULL && !f->setup.public_api_only && soup_get_minor_version () == 2;
  guint    fds_before, fds_peak, fds_after;
  gsize    heap_before, heap_after;
  gint64   started;
  double   reaped_in;

  /* Warm up (the TLS backend, thread pools, caches, and for the heap
   * hash tables grown to n connections), then measure. */
  run_clients (f->address, f->certificate, check_heap ? n : BATCH);
  if (f->reaper != NULL)
    WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
  if (check_heap || f->reaper == NULL)
    run_for (SWEEPS_MS);
  fds_before = count_open_fds ();
  heap_before = heap_in_use ();

  run_clients (f->address, f->certificate, n);
  fds_peak = count_open_fds ();

  started = g_get_monotonic_time ();
  if (f->reaper != NULL)
    {
      WAIT_FOR (reaper_is_empty (f), REAP_TIMEOUT_MS);
      g_assert_cmpuint (fl_connection_reaper_get_n_connections (f->reaper), ==, 0);
      g_assert_cmpuint (fl_connection_reaper_get_n_reaped (f->reaper), >=, n);
    }
  assert_fds_back_to (fds_before);
  fds_after = count_open_fds ();
  reaped_in = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  if (check_heap)
    run_for (SWEEPS_MS); /* the sockets go a sweep after their fds */
  heap_after = heap_in_use ();

  g_test_message ("%u connections: %u fds before, %u after the clients, %u after %.1f s; "
                  "heap %+.1f bytes a connection",
                  n, fds_before, fds_peak, fds_after,
                  reaped_in,
                  ((double) heap_after - (double) heap_before) / n);

  if (check_heap)
    g_assert_cmpfloat (ABS ((double) heap_after - (double) heap_before), <, HEAP_SLACK + 100.0 * n);

  /* still serving */
  run_clients (f->address, f->certificate, 1);
}

/* A TLS client that sends close_notify and waits for the server's gets
 * it: libsoup gives up on the connection on reading the alert. */
static void
test_tls_close_notify (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (Client) client = client_new (f->address, f->certificate, "/", BATCH);
  guint              fds_before;

  run_clients (f->address, f->certificate, 1);
  WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
  fds_before = count_open_fds ();

  client->wait_for_close = TRUE;
  client_run (client);
  g_assert_cmpstr (client->error, ==, NULL);
  g_assert_cmpuint (client->n_ok, ==, BATCH);
  g_assert_cmpuint (client->n_closed_by_server, ==, BATCH);

  WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
  assert_fds_back_to (fds_before);
}

/* A paused request whose client half-closed after sending it gets its
 * answer, however many sweeps pass meanwhile; then its connection goes. */
static void
test_paused_half_closed (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr (Client)  client = client_new (f->address, NULL, "/slow", 1);
  g_autoptr (GThread) thread = NULL;
  guint               fds_before;

  run_clients (f->address, NULL, 1);
  WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
  fds_before = count_open_fds ();

  client->half_close = TRUE;
  thread = g_thread_new ("client", client_thread, client);
  WAIT_UNTIL (f->paused != NULL);

  run_for (SWEEPS_MS);
  g_assert_false (client_is_done (client));
  if (f->reaper != NULL)
    g_assert_cmpuint (fl_connection_reaper_get_n_connections (f->reaper), ==, 1);

  soup_server_message_set_response (f->paused, "text/plain", SOUP_MEMORY_STATIC, "hello", 5);
  soup_server_message_set_status (f->paused, SOUP_STATUS_OK, NULL);
  soup_server_message_unpause (f->paused);
  g_clear_object (&f->paused);

  WAIT_UNTIL (client_is_done (client));
  g_thread_join (g_steal_pointer (&thread));
  g_assert_cmpstr (client->error, ==, NULL);
  g_assert_cmpuint (client->n_ok, ==, 1);

  WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
  assert_fds_back_to (fds_before);
}

typedef struct
{
  SoupWebsocketConnection *ws;
  GError                  *error;
  GBytes                  *echo;
  gboolean                 done;
  gboolean                 closed;
} ClientWs;

static void
client_ws_message_cb (SoupWebsocketConnection *ws,
                      SoupWebsocketDataType    type,
                      GBytes                  *message,
                      gpointer                 user_data)
{
  ClientWs *cws = user_data;

  g_clear_pointer (&cws->echo, g_bytes_unref);
  cws->echo = g_bytes_ref (message);
}

static void
client_ws_closed_cb (SoupWebsocketConnection *ws,
                     gpointer                 user_data)
{
  ClientWs *cws = user_data;

  cws->closed = TRUE;
}

static void
client_ws_connected_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  ClientWs *cws = user_data;

  cws->ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &cws->error);
  cws->done = TRUE;
}

/* A WebSocket, idle through several sweeps, is left alone, even while its
 * upgrade message is kept. */
static void
test_websocket (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GBytes)      ping = g_bytes_new_static ("ping", 4);
  g_autofree char        *uri = NULL;
  ClientWs                cws = { 0 };

  uri = g_strdup_printf ("ws://127.0.0.1:%u/ws", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (f->address)));
  msg = soup_message_new ("GET", uri);
  soup_session_websocket_connect_async (session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        client_ws_connected_cb, &cws);
  WAIT_UNTIL (cws.done);
  g_assert_no_error (cws.error);
  g_signal_connect (cws.ws, "message", G_CALLBACK (client_ws_message_cb), &cws);
  g_signal_connect (cws.ws, "closed", G_CALLBACK (client_ws_closed_cb), &cws);
  WAIT_UNTIL (f->websockets->len == 1);

  run_for (SWEEPS_MS);
  g_assert_cmpint (soup_websocket_connection_get_state (g_ptr_array_index (f->websockets, 0)), ==,
                   SOUP_WEBSOCKET_STATE_OPEN);
  g_assert_cmpint (soup_websocket_connection_get_state (cws.ws), ==, SOUP_WEBSOCKET_STATE_OPEN);
  if (f->reaper != NULL)
    g_assert_cmpuint (fl_connection_reaper_get_n_reaped (f->reaper), ==, 0);

  soup_websocket_connection_send_message (cws.ws, SOUP_WEBSOCKET_DATA_TEXT, ping);
  WAIT_UNTIL (cws.echo != NULL);
  g_assert_true (g_bytes_equal (cws.echo, ping));

  soup_websocket_connection_close (cws.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  WAIT_UNTIL (cws.closed && f->n_ws_closed == 1);

  g_clear_pointer (&f->websockets, g_ptr_array_unref);
  g_clear_pointer (&f->upgrades, g_ptr_array_unref);
  g_clear_object (&cws.ws);
  g_clear_pointer (&cws.echo, g_bytes_unref);
  /* the upgraded connection's socket goes with the WebSocket */
  WAIT_UNTIL_MS (reaper_is_empty (f), REAP_TIMEOUT_MS);
}

static void
relay_shut_down_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  gboolean          *shut_down = user_data;
  g_autoptr (GError) error = NULL;

  g_assert_true (fl_relay_shutdown_finish (FL_RELAY (source), result, &error));
  g_assert_no_error (error);
  *shut_down = TRUE;
}

/* The whole relay: client-closed connections on GET /health. */
static void
test_relay (void)
{
  g_autoptr (GError)         error = NULL;
  g_autofree char           *dir = g_dir_make_tmp ("fl-fd-leak-XXXXXX", &error);
  g_autoptr (FlRelay)        relay = NULL;
  g_autoptr (GSocketAddress) address = NULL;
  g_autoptr (GUri)           uri = NULL;
  g_autoptr (GInetAddress)   loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (Client)         client = NULL;
  FlRelayOptions             options = { 0 };
  gboolean                   shut_down = FALSE;
  guint                      fds_before;

  g_assert_no_error (error);
  options.data_dir = dir;
  options.listen = "127.0.0.1:0";
  relay = fl_relay_new (&options, &error);
  g_assert_no_error (error);

  uri = g_uri_parse (fl_relay_get_url (relay), G_URI_FLAGS_NONE, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new (loopback, g_uri_get_port (uri));

  client = client_new (address, NULL, "/health", BATCH);
  client_run (client);
  g_assert_cmpstr (client->error, ==, NULL);
  run_for (SWEEPS_MS);
  fds_before = count_open_fds ();

  g_clear_pointer (&client, client_free);
  client = client_new (address, NULL, "/health", N_CONNECTIONS / 3);
  client_run (client);
  g_assert_cmpstr (client->error, ==, NULL);
  g_assert_cmpuint (client->last_status, ==, SOUP_STATUS_OK);

  assert_fds_back_to (fds_before);

  fl_relay_shutdown_async (relay, NULL, relay_shut_down_cb, &shut_down);
  WAIT_UNTIL (shut_down);
  g_assert_finalize_object (g_steal_pointer (&relay));
  remove_tree (dir);
}

int
main (int   argc,
      char *argv[])
{
  static const Setup plain = { .tls = FALSE };
  static const Setup tls = { .tls = TRUE };
  static const Setup public_plain = { .public_api_only = TRUE };
  static const Setup public_tls = { .tls = TRUE, .public_api_only = TRUE };
  static const struct
  {
    const char  *path;
    const Setup *setup;
    void (*test) (Fixture *, gconstpointer);
  } cases[] = {
    { "/fieldline/relay/fd-leak/closed-while-idle", &plain, test_closed_while_idle },
    { "/fieldline/relay/fd-leak/closed-while-idle-tls", &tls, test_closed_while_idle },
    { "/fieldline/relay/fd-leak/tls-close-notify", &tls, test_tls_close_notify },
    { "/fieldline/relay/fd-leak/paused-half-closed", &plain, test_paused_half_closed },
    { "/fieldline/relay/fd-leak/websocket", &plain, test_websocket },
    { "/fieldline/relay/fd-leak/public-api/closed-while-idle", &public_plain, test_closed_while_idle },
    { "/fieldline/relay/fd-leak/public-api/closed-while-idle-tls", &public_tls, test_closed_while_idle },
    { "/fieldline/relay/fd-leak/public-api/paused-half-closed", &public_plain, test_paused_half_closed },
    { "/fieldline/relay/fd-leak/public-api/websocket", &public_plain, test_websocket },
  };
  struct rlimit limit;

  /* The bug's leaked fds must not hit the limit before the check does. */
  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_test_add (cases[i].path, Fixture, cases[i].setup, fixture_set_up, cases[i].test, fixture_tear_down);
  g_test_add_func ("/fieldline/relay/fd-leak/relay", test_relay);

  return g_test_run ();
}
