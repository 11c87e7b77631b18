/* fl-mailer.h: the relay's mailer, for confirmation and password-reset
 * codes.
 *
 * Without an SMTP server, each message is written whole to
 * <outbox-dir>/<timestamp>-<random>.eml (mode 0600, the directory 0700),
 * one RFC 5322 message per file, for an operator or a test to pick up.
 * With one, libcurl delivers the same message:
 *
 *   smtp://[user@]host[:port]           STARTTLS when the server offers it
 *                                       (port 25)
 *   smtp+starttls://[user@]host[:port]  STARTTLS required (port 587)
 *   smtps://[user@]host[:port]          TLS from the start (port 465)
 *
 * A path of one segment names the client in EHLO (smtp://host/relay.example).
 * The password comes from $FIELDLINE_SMTP_PASSWORD, read once by
 * fl_mailer_new (), never from the URL.  With a user name, STARTTLS is
 * required unless the server is on a loopback address.
 *
 * Sending runs on a worker thread.  Errors are G_IO_ERROR: a recipient or
 * subject that could smuggle in a header is G_IO_ERROR_INVALID_ARGUMENT.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define FL_TYPE_MAILER (fl_mailer_get_type ())
G_DECLARE_FINAL_TYPE (FlMailer, fl_mailer, FL, MAILER, GObject)

/* smtp_url NULL: the outbox, outbox_dir, which is created here; with an
 * smtp_url, outbox_dir is ignored (may be NULL).  from: "Name <address>"
 * or "address"; NULL for "Fieldline <no-reply@localhost>".  Synchronous:
 * call at start-up. */
FlMailer   *fl_mailer_new            (const char          *outbox_dir,
                                      const char          *smtp_url,
                                      const char          *from,
                                      GError             **error);
/* NULL when messages go through SMTP */
const char *fl_mailer_get_outbox_dir (FlMailer            *self);

/* to: one address (local@domain, no display name).  subject and
 * text_body: UTF-8; the body's line ends may be LF or CRLF. */
void        fl_mailer_send_async     (FlMailer            *self,
                                      const char          *to,
                                      const char          *subject,
                                      const char          *text_body,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data);
gboolean    fl_mailer_send_finish    (FlMailer            *self,
                                      GAsyncResult        *result,
                                      GError             **error);

G_END_DECLS
