/* shell-test-util.h: what the application shell's tests share: waiting on
 * the main context, an in-process relay with users, and its outbox. */
#pragma once

#include <gio/gio.h>

#include "fl-relay.h"

G_BEGIN_DECLS

#define ST_PASSWORD "Sup3r-Secret!"
#define ST_TIMEOUT_MS 20000

gboolean st_deadline_cb (gpointer user_data);

/* Iterates the thread-default main context until cond holds; fails the
 * test after ST_TIMEOUT_MS. */
#define ST_WAIT_UNTIL(cond)                                                                \
  G_STMT_START                                                                             \
  {                                                                                        \
    gboolean st_timed_out_ = FALSE;                                                        \
    guint    st_source_ = g_timeout_add (ST_TIMEOUT_MS, st_deadline_cb, &st_timed_out_);   \
    while (!(cond) && !st_timed_out_)                                                      \
      g_main_context_iteration (NULL, TRUE);                                               \
    if (!st_timed_out_)                                                                    \
      g_source_remove (st_source_);                                                        \
    if (!(cond))                                                                           \
      g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,                    \
                           "timed out waiting for: " #cond);                               \
  }                                                                                        \
  G_STMT_END

typedef struct
{
  char    *dir;        /* the data dir, removed at the end */
  FlRelay *relay;
  char    *url;        /* no trailing slash */
  char    *cert_file;  /* with TLS */
  char    *key_file;
  GHashTable *seen_mail;
} StRelay;

/* A relay on 127.0.0.1 port 0 (with a self-signed certificate when tls)
 * with tiny argon2 costs and the operator "ada" (ST_PASSWORD). */
StRelay *st_relay_new  (gboolean tls);
void     st_relay_free (StRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StRelay, st_relay_free)

/* Waits for the one new message of the outbox to email and returns the
 * six-digit code after phrase in it. */
char    *st_relay_take_code (StRelay    *relay,
                             const char *email,
                             const char *phrase);

/* A URL on 127.0.0.1 where nothing listens (a port bound, then closed). */
char    *st_closed_port_url (void);

/* Points HOME and the XDG user directories at a new temporary
 * directory (returned; remove it at the end).  Call first in main(),
 * instead of G_TEST_OPTION_ISOLATE_DIRS, which also hides the system's
 * XDG_DATA_DIRS (and with them the GSettings schemas GIO's proxy
 * resolver needs). */
char    *st_isolate_dirs (void);

/* Removes a directory tree. */
void     st_remove_tree (const char *path);

/* Whether any file under dir contains needle. */
gboolean st_tree_contains (const char *dir,
                           const char *needle);

G_END_DECLS
