/* fl-test-util.h: an in-process relay on 127.0.0.1 and main-loop waits,
 * shared by the client and simulator tests. */
#pragma once

#include <gio/gio.h>

#include "fl-relay.h"

G_BEGIN_DECLS

#define TEST_ADMIN        "admin"
#define TEST_VIEWER       "viewer"
#define TEST_PASSWORD     "Sim-Passw0rd!"

typedef struct {
  char    *data_dir;
  FlRelay *relay;
  char    *url;
  guint    port;
} TestRelay;

/* A relay on a fresh data dir, port 0, with an admin and a viewer. */
TestRelay *test_relay_new      (void);
/* Shuts the relay down and waits until it is done. */
void       test_relay_stop     (TestRelay *relay);
/* Starts a new relay on the same data dir and port. */
void       test_relay_start    (TestRelay *relay);
/* Stops the relay and removes its data dir. */
void       test_relay_free     (TestRelay *relay);

/* Iterates the main context until *result is set by test_result_cb. */
void       test_result_cb      (GObject      *object,
                                GAsyncResult *result,
                                gpointer      user_data);
GAsyncResult *test_wait_result (GAsyncResult **result);

/* Iterates the main context until condition (data) holds; fails the test
 * after timeout_ms. */
void       test_wait_until     (gboolean    (*condition) (gpointer data),
                                gpointer      data,
                                guint         timeout_ms,
                                const char   *what);
/* Iterates the main context for ms milliseconds. */
void       test_run_for        (guint         ms);

/* Removes a directory tree. */
void       test_rm_rf          (const char   *path);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestRelay, test_relay_free)

G_END_DECLS
