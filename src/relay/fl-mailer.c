/* fl-mailer.c: the relay's mailer: one RFC 5322 message per send, written
 * to the outbox or handed to libcurl's SMTP client.
 *
 * Threads: fl_mailer_send_async checks its arguments and composes the
 * message on the caller's thread; the file write or the SMTP session runs
 * on a GTask worker thread.  An FlMailer does not change after
 * fl_mailer_new, so the workers read it without a lock.
 */
#define G_LOG_DOMAIN "fl-mailer"

#include "config.h"

#include <errno.h>
#include <string.h>

#include <curl/curl.h>
#include <glib/gstdio.h>

#include "fl-mailer.h"

#define DEFAULT_FROM "Fieldline <no-reply@localhost>"
#define PASSWORD_ENV "FIELDLINE_SMTP_PASSWORD"

#define CONNECT_TIMEOUT_MS 10000L
#define TIMEOUT_MS 30000L

#define MAX_ADDRESS_LEN 254 /* RFC 5321 4.5.3.1.3, less the brackets */
#define MAX_LOCAL_LEN 64
#define MAX_DOMAIN_LEN 253
#define MAX_LABEL_LEN 63
#define MAX_LINE_LEN 998        /* RFC 5322 2.1.1, without the CRLF */
#define MAX_RAW_SUBJECT_LEN 900 /* longer ones are folded encoded words */
#define QP_LINE_LEN 76          /* RFC 2045 6.7, with the soft break's '=' */
/* 39 bytes are 52 base64 characters, a 64-character encoded word:
 * "Subject: " and one fit in 76 */
#define ENCODED_WORD_BYTES 39

struct _FlMailer
{
  GObject parent_instance;

  char *outbox_dir; /* NULL with SMTP */

  char *from_header;  /* the From: field's value, encoded */
  char *from_address; /* its addr-spec: MAIL FROM, the Message-ID's domain */

  /* SMTP; smtp_url NULL: the outbox */
  char *smtp_url;  /* for curl: smtp[s]://host:port[/ehlo-name], no user */
  char *smtp_host; /* host:port, for messages */
  char *smtp_user;
  char *smtp_password;
  long  use_ssl; /* CURLUSESSL_* */
};

G_DEFINE_FINAL_TYPE (FlMailer, fl_mailer, G_TYPE_OBJECT)

typedef struct
{
  char    *to;
  char    *message_id;
  char    *file_name;
  GString *message;
} SendData;

static void
send_data_free (SendData *data)
{
  g_free (data->to);
  g_free (data->message_id);
  g_free (data->file_name);
  g_string_free (data->message, TRUE);
  g_free (data);
}

static void
fl_mailer_finalize (GObject *object)
{
  FlMailer *self = FL_MAILER (object);

  g_clear_pointer (&self->outbox_dir, g_free);
  g_clear_pointer (&self->from_header, g_free);
  g_clear_pointer (&self->from_address, g_free);
  g_clear_pointer (&self->smtp_url, g_free);
  g_clear_pointer (&self->smtp_host, g_free);
  g_clear_pointer (&self->smtp_user, g_free);
  if (self->smtp_password != NULL)
    explicit_bzero (self->smtp_password, strlen (self->smtp_password));
  g_clear_pointer (&self->smtp_password, g_free);

  G_OBJECT_CLASS (fl_mailer_parent_class)->finalize (object);
}

static void
fl_mailer_class_init (FlMailerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = fl_mailer_finalize;
}

static void
fl_mailer_init (FlMailer *self)
{
}

/* ---- addresses and header fields ---------------------------------------- */

static gboolean
is_atext (char c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A host name: LDH labels separated by dots. */
static gboolean
is_host_name (const char *domain)
{
  gsize label_len = 0;

  if (*domain == '\0' || strlen (domain) > MAX_DOMAIN_LEN)
    return FALSE;

  for (const char *p = domain;; p++)
    {
      if (*p == '.' || *p == '\0')
        {
          if (label_len == 0 || label_len > MAX_LABEL_LEN || p[-1] == '-')
            return FALSE;
          if (*p == '\0')
            return TRUE;
          label_len = 0;
        }
      else if (g_ascii_isalnum (*p) || (*p == '-' && label_len > 0))
        {
          label_len++;
        }
      else
        {
          return FALSE;
        }
    }
}

/* A plausible single addr-spec: a dot-atom local part, '@', a host name.
 * No display name, comments, quoting, spaces or line breaks. */
static gboolean
is_plausible_address (const char *address)
{
  const char *at = strchr (address, '@');
  gboolean    after_dot = TRUE; /* no leading dot */

  if (at == NULL || at == address || strlen (address) > MAX_ADDRESS_LEN)
    return FALSE;
  if ((gsize) (at - address) > MAX_LOCAL_LEN)
    return FALSE;

  for (const char *p = address; p < at; p++)
    {
      if (*p == '.')
        {
          if (after_dot)
            return FALSE;
          after_dot = TRUE;
        }
      else if (is_atext (*p))
        {
          after_dot = FALSE;
        }
      else
        {
          return FALSE;
        }
    }
  if (after_dot)
    return FALSE;

  return is_host_name (at + 1);
}

static gboolean
has_control_chars (const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    {
      if ((guchar) *p < 0x20 || *p == 0x7f)
        return TRUE;
    }

  return FALSE;
}

static gboolean
is_printable_ascii (const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    {
      if ((guchar) *p < 0x20 || (guchar) *p > 0x7e)
        return FALSE;
    }

  return TRUE;
}

/* RFC 2047 B encoded words, each at most ENCODED_WORD_BYTES of whole UTF-8
 * characters, one per (folded) line. */
static void
append_encoded_words (GString    *out,
                      const char *text)
{
  const char *p = text;

  while (*p != '\0')
    {
      const char      *start = p;
      g_autofree char *encoded = NULL;

      while (*p != '\0')
        {
          const char *next = g_utf8_next_char (p);

          if (next - start > ENCODED_WORD_BYTES && p > start)
            break;
          p = next;
        }

      encoded = g_base64_encode ((const guchar *) start, p - start);
      if (start != text)
        g_string_append (out, "\r\n ");
      g_string_append_printf (out, "=?UTF-8?B?%s?=", encoded);
    }
}

/* Unstructured text (a subject): as it is when it is short printable
 * ASCII that no reader could take for an encoded word, else encoded. */
static void
append_unstructured (GString    *out,
                     const char *text)
{
  if (is_printable_ascii (text) && strstr (text, "=?") == NULL && strlen (text) <= MAX_RAW_SUBJECT_LEN)
    g_string_append (out, text);
  else
    append_encoded_words (out, text);
}

/* A display name: atoms as they are, other ASCII quoted, the rest
 * encoded. */
static void
append_phrase (GString    *out,
               const char *phrase)
{
  gboolean atoms = TRUE;

  for (const char *p = phrase; *p != '\0'; p++)
    {
      if (!is_atext (*p) && *p != ' ')
        atoms = FALSE;
    }

  if (atoms)
    {
      g_string_append (out, phrase);
    }
  else if (is_printable_ascii (phrase) && strstr (phrase, "=?") == NULL)
    {
      g_string_append_c (out, '"');
      for (const char *p = phrase; *p != '\0'; p++)
        {
          if (*p == '"' || *p == '\\')
            g_string_append_c (out, '\\');
          g_string_append_c (out, *p);
        }
      g_string_append_c (out, '"');
    }
  else
    {
      append_encoded_words (out, phrase);
    }
}

/* "Name <address>" or "address" into the From: field's value and the
 * addr-spec. */
static gboolean
parse_from (const char *from,
            char      **header,
            char      **address,
            GError    **error)
{
  g_autofree char *phrase = NULL;
  g_autofree char *addr = NULL;
  const char      *lt = strchr (from, '<');
  GString         *out;

  if (!g_utf8_validate (from, -1, NULL) || has_control_chars (from))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The sender is not one line of UTF-8 text");
      return FALSE;
    }

  if (lt != NULL)
    {
      const char *gt = strchr (lt, '>');

      if (gt == NULL || gt[1 + strspn (gt + 1, " ")] != '\0')
        goto bad;
      phrase = g_strstrip (g_strndup (from, lt - from));
      addr = g_strndup (lt + 1, gt - lt - 1);
      if (strchr (phrase, '>') != NULL)
        goto bad;
    }
  else
    {
      addr = g_strstrip (g_strdup (from));
    }

  if (!is_plausible_address (addr))
    goto bad;

  out = g_string_new (NULL);
  if (phrase != NULL && *phrase != '\0')
    {
      append_phrase (out, phrase);
      g_string_append_printf (out, " <%s>", addr);
    }
  else
    {
      g_string_append (out, addr);
    }

  *header = g_string_free (out, FALSE);
  *address = g_steal_pointer (&addr);

  return TRUE;

bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "The sender “%s” is not “Name <address>” or “address”", from);
  return FALSE;
}

/* ---- the message -------------------------------------------------------- */

/* The body with CRLF line ends, ending in one unless empty. */
static GString *
normalize_body (const char *text)
{
  GString *body = g_string_sized_new (strlen (text) + 64);

  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p == '\r')
        {
          g_string_append (body, "\r\n");
          if (p[1] == '\n')
            p++;
        }
      else if (*p == '\n')
        {
          g_string_append (body, "\r\n");
        }
      else
        {
          g_string_append_c (body, *p);
        }
    }

  if (body->len > 0 && !g_str_has_suffix (body->str, "\r\n"))
    g_string_append (body, "\r\n");

  return body;
}

/* 7bit: ASCII, and no line longer than RFC 5322 allows. */
static gboolean
is_7bit (const GString *body)
{
  gsize line_len = 0;

  for (gsize i = 0; i < body->len; i++)
    {
      if ((guchar) body->str[i] >= 0x80)
        return FALSE;
      if (body->str[i] == '\n')
        line_len = 0;
      else if (body->str[i] != '\r' && ++line_len > MAX_LINE_LEN)
        return FALSE;
    }

  return TRUE;
}

/* RFC 2045 6.7 over CRLF lines: line breaks stay hard breaks. */
static void
append_quoted_printable (GString       *out,
                         const GString *body)
{
  const char *line = body->str;
  const char *body_end = body->str + body->len;

  while (line < body_end)
    {
      const char *end = strstr (line, "\r\n"); /* normalize_body ends each line */
      gsize       column = 0;

      for (const char *p = line; p < end; p++)
        {
          guchar c = *p;
          char   token[4];
          gsize  len;

          if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && p + 1 < end))
            {
              token[0] = c;
              token[1] = '\0';
              len = 1;
            }
          else
            {
              g_snprintf (token, sizeof token, "=%02X", c);
              len = 3;
            }

          if (column + len > QP_LINE_LEN - 1)
            {
              g_string_append (out, "=\r\n");
              column = 0;
            }
          g_string_append (out, token);
          column += len;
        }

      g_string_append (out, "\r\n");
      line = end + 2;
    }
}

static void
append_date (GString   *out,
             GDateTime *now)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

  /* Not g_date_time_format: day and month names must not follow the
   * locale. */
  g_string_append_printf (out, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                          days[g_date_time_get_day_of_week (now) - 1],
                          g_date_time_get_day_of_month (now),
                          months[g_date_time_get_month (now) - 1],
                          g_date_time_get_year (now),
                          g_date_time_get_hour (now),
                          g_date_time_get_minute (now),
                          g_date_time_get_second (now));
}

/* Checks the recipient, subject and body, and composes the message. */
static SendData *
compose (FlMailer   *self,
         const char *to,
         const char *subject,
         const char *text_body,
         GError    **error)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char      *timestamp = NULL;
  g_autofree char      *nonce = NULL;
  g_autoptr (GString)   body = NULL;
  GString              *message;
  SendData             *data;

  if (!is_plausible_address (to))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The recipient is not a single email address");
      return NULL;
    }
  if (!g_utf8_validate (subject, -1, NULL) || has_control_chars (subject))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The subject is not one line of UTF-8 text");
      return NULL;
    }
  if (!g_utf8_validate (text_body, -1, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The body is not UTF-8 text");
      return NULL;
    }

  timestamp = g_date_time_format (now, "%Y%m%dT%H%M%S");
  nonce = g_strdup_printf ("%08x%08x", g_random_int (), g_random_int ());

  data = g_new0 (SendData, 1);
  data->to = g_strdup (to);
  data->message_id = g_strdup_printf ("%s.%06d.%s@%s", timestamp,
                                      g_date_time_get_microsecond (now), nonce,
                                      strchr (self->from_address, '@') + 1);
  data->file_name = g_strdup_printf ("%s.%06dZ-%s.eml", timestamp,
                                     g_date_time_get_microsecond (now), nonce);

  message = g_string_new ("Date: ");
  append_date (message, now);
  g_string_append_printf (message, "\r\nFrom: %s\r\nTo: %s\r\nSubject: ",
                          self->from_header, to);
  append_unstructured (message, subject);
  g_string_append_printf (message,
                          "\r\nMessage-ID: <%s>\r\n"
                          "Auto-Submitted: auto-generated\r\n"
                          "MIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n",
                          data->message_id);

  body = normalize_body (text_body);
  if (is_7bit (body))
    {
      g_string_append (message, "Content-Transfer-Encoding: 7bit\r\n\r\n");
      g_string_append_len (message, body->str, body->len);
    }
  else
    {
      g_string_append (message, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
      append_quoted_printable (message, body);
    }
  data->message = message;

  return data;
}

/* ---- the outbox --------------------------------------------------------- */

static gboolean
write_outbox (FlMailer *self,
              SendData *data,
              GError  **error)
{
  g_autofree char   *path = NULL;
  g_autoptr (GError) local_error = NULL;

  if (g_mkdir_with_parents (self->outbox_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not create the outbox %s: %s", self->outbox_dir, g_strerror (saved_errno));
      return FALSE;
    }

  /* a temporary file renamed into place: no reader sees half a message */
  path = g_build_filename (self->outbox_dir, data->file_name, NULL);
  if (!g_file_set_contents_full (path, data->message->str, data->message->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                 0600, &local_error))
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_file_error (local_error->code),
                   "%s", local_error->message);
      return FALSE;
    }

  g_debug ("Wrote message %s to %s", data->message_id, path);

  return TRUE;
}

/* ---- SMTP --------------------------------------------------------------- */

typedef struct
{
  const char *data;
  gsize       len;
  gsize       offset;
} Upload;

static size_t
upload_read_cb (char  *buffer,
                size_t size,
                size_t nitems,
                void  *user_data)
{
  Upload *upload = user_data;
  gsize   n = MIN (size * nitems, upload->len - upload->offset);

  memcpy (buffer, upload->data + upload->offset, n);
  upload->offset += n;

  return n;
}

static int
progress_cb (void      *user_data,
             curl_off_t dltotal,
             curl_off_t dlnow,
             curl_off_t ultotal,
             curl_off_t ulnow)
{
  GCancellable *cancellable = user_data;

  return g_cancellable_is_cancelled (cancellable) ? 1 : 0;
}

static GIOErrorEnum
io_error_from_curl (CURLcode code)
{
  switch (code)
    {
    case CURLE_OPERATION_TIMEDOUT:
      return G_IO_ERROR_TIMED_OUT;
    case CURLE_COULDNT_CONNECT:
      return G_IO_ERROR_CONNECTION_REFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
      return G_IO_ERROR_HOST_NOT_FOUND;
    case CURLE_LOGIN_DENIED:
      return G_IO_ERROR_PERMISSION_DENIED;
    case CURLE_USE_SSL_FAILED:
      return G_IO_ERROR_NOT_SUPPORTED;
    case CURLE_ABORTED_BY_CALLBACK:
      return G_IO_ERROR_CANCELLED;
    default:
      return G_IO_ERROR_FAILED;
    }
}

/* Sets a curl option; returns from the function when that fails. */
#define SET_OPTION(curl, option, value)                          \
  G_STMT_START                                                   \
  {                                                              \
    CURLcode rc_ = curl_easy_setopt ((curl), (option), (value)); \
    if (rc_ != CURLE_OK)                                         \
      return rc_;                                                \
  }                                                              \
  G_STMT_END

static CURLcode
smtp_perform (FlMailer          *self,
              CURL              *curl,
              struct curl_slist *recipients,
              const char        *mail_from,
              Upload            *upload,
              GCancellable      *cancellable,
              char              *error_buffer)
{
  SET_OPTION (curl, CURLOPT_ERRORBUFFER, error_buffer);
  SET_OPTION (curl, CURLOPT_URL, self->smtp_url);
#if CURL_AT_LEAST_VERSION(7, 85, 0)
  SET_OPTION (curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
  SET_OPTION (curl, CURLOPT_PROTOCOLS, (long) (CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
  SET_OPTION (curl, CURLOPT_PROXY, ""); /* not even from the environment */
  SET_OPTION (curl, CURLOPT_NOSIGNAL, 1L);
  SET_OPTION (curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  SET_OPTION (curl, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
  SET_OPTION (curl, CURLOPT_USE_SSL, self->use_ssl);
  SET_OPTION (curl, CURLOPT_MAIL_FROM, mail_from);
  SET_OPTION (curl, CURLOPT_MAIL_RCPT, recipients);
  SET_OPTION (curl, CURLOPT_UPLOAD, 1L);
  SET_OPTION (curl, CURLOPT_READFUNCTION, upload_read_cb);
  SET_OPTION (curl, CURLOPT_READDATA, upload);
  SET_OPTION (curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) upload->len);
  /* the progress callback notices a cancellation, about once a second */
  SET_OPTION (curl, CURLOPT_NOPROGRESS, 0L);
  SET_OPTION (curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
  SET_OPTION (curl, CURLOPT_XFERINFODATA, cancellable);
  if (self->smtp_user != NULL)
    {
      SET_OPTION (curl, CURLOPT_USERNAME, self->smtp_user);
      SET_OPTION (curl, CURLOPT_PASSWORD, self->smtp_password);
    }

  return curl_easy_perform (curl);
}

#undef SET_OPTION

static gboolean
send_smtp (FlMailer     *self,
           SendData     *data,
           GCancellable *cancellable,
           GError      **error)
{
  g_autofree char   *mail_from = g_strdup_printf ("<%s>", self->from_address);
  g_autofree char   *rcpt = g_strdup_printf ("<%s>", data->to);
  char               error_buffer[CURL_ERROR_SIZE] = "";
  Upload             upload = { data->message->str, data->message->len, 0 };
  struct curl_slist *recipients;
  CURL              *curl;
  CURLcode           rc;

  curl = curl_easy_init ();
  if (curl == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Could not start an SMTP session");
      return FALSE;
    }

  recipients = curl_slist_append (NULL, rcpt);
  if (recipients == NULL)
    rc = CURLE_OUT_OF_MEMORY;
  else
    rc = smtp_perform (self, curl, recipients, mail_from, &upload, cancellable, error_buffer);

  curl_easy_cleanup (curl);
  curl_slist_free_all (recipients);

  if (rc == CURLE_ABORTED_BY_CALLBACK && g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (rc != CURLE_OK)
    {
      g_set_error (error, G_IO_ERROR, io_error_from_curl (rc),
                   "Could not send mail through %s: %s", self->smtp_host,
                   error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror (rc));
      return FALSE;
    }

  g_debug ("Sent message %s through %s", data->message_id, self->smtp_host);

  return TRUE;
}

static gpointer
curl_init_once (gpointer user_data)
{
  return GINT_TO_POINTER (curl_global_init (CURL_GLOBAL_DEFAULT));
}

static gboolean
is_loopback_host (const char *host)
{
  g_autoptr (GInetAddress) address = NULL;

  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;

  address = g_inet_address_new_from_string (host);

  return address != NULL && g_inet_address_get_is_loopback (address);
}

static gboolean
parse_smtp_url (FlMailer   *self,
                const char *smtp_url,
                GError    **error)
{
  g_autoptr (GUri)   uri = NULL;
  g_autoptr (GError) local_error = NULL;
  const char        *scheme, *host, *path;
  const char        *curl_scheme = "smtp";
  g_autofree char   *host_port = NULL;
  int                port;

  uri = g_uri_parse (smtp_url, G_URI_FLAGS_HAS_PASSWORD, &local_error);
  if (uri == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL is not valid: %s", local_error->message);
      return FALSE;
    }

  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  path = g_uri_get_path (uri);
  port = g_uri_get_port (uri);

  if (g_ascii_strcasecmp (scheme, "smtp") == 0)
    {
      self->use_ssl = CURLUSESSL_TRY;
      port = port > 0 ? port : 25;
    }
  else if (g_ascii_strcasecmp (scheme, "smtp+starttls") == 0)
    {
      self->use_ssl = CURLUSESSL_ALL;
      port = port > 0 ? port : 587;
    }
  else if (g_ascii_strcasecmp (scheme, "smtps") == 0)
    {
      curl_scheme = "smtps";
      self->use_ssl = CURLUSESSL_ALL;
      port = port > 0 ? port : 465;
    }
  else
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL’s scheme is not smtp, smtp+starttls or smtps");
      return FALSE;
    }

  if (host == NULL || *host == '\0' || has_control_chars (host) || strchr (host, '/') != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL has no server");
      return FALSE;
    }
  if (g_uri_get_password (uri) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL must not hold a password: set " PASSWORD_ENV);
      return FALSE;
    }
  if (g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL must not have a query or a fragment");
      return FALSE;
    }
  /* curl sends the path as EHLO's argument */
  if (*path == '/')
    path++;
  if (*path != '\0' && !is_host_name (path))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "The SMTP URL’s path, the client’s name in EHLO, is not a host name");
      return FALSE;
    }

  if (g_uri_get_user (uri) != NULL && *g_uri_get_user (uri) != '\0')
    {
      const char *password = g_getenv (PASSWORD_ENV);

      if (password == NULL || *password == '\0')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "The SMTP URL names a user but " PASSWORD_ENV " is not set");
          return FALSE;
        }
      self->smtp_user = g_strdup (g_uri_get_user (uri));
      self->smtp_password = g_strdup (password);

      /* no password in the clear to a server that did not offer STARTTLS
       * (or had it stripped on the way) */
      if (!is_loopback_host (host))
        self->use_ssl = CURLUSESSL_ALL;
    }

  host_port = strchr (host, ':') != NULL ? g_strdup_printf ("[%s]:%d", host, port)
                                         : g_strdup_printf ("%s:%d", host, port);
  self->smtp_url = g_strdup_printf ("%s://%s/%s", curl_scheme, host_port, path);
  self->smtp_host = g_steal_pointer (&host_port);

  return TRUE;
}

/* ---- API ---------------------------------------------------------------- */

FlMailer *
fl_mailer_new (const char *outbox_dir,
               const char *smtp_url,
               const char *from,
               GError    **error)
{
  static GOnce         curl_once = G_ONCE_INIT;
  g_autoptr (FlMailer) self = NULL;

  g_return_val_if_fail (outbox_dir != NULL || smtp_url != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (FL_TYPE_MAILER, NULL);

  if (!parse_from (from != NULL ? from : DEFAULT_FROM, &self->from_header, &self->from_address, error))
    return NULL;

  if (smtp_url != NULL)
    {
      CURLcode rc = GPOINTER_TO_INT (g_once (&curl_once, curl_init_once, NULL));

      if (rc != CURLE_OK)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "Could not initialize libcurl: %s", curl_easy_strerror (rc));
          return NULL;
        }
      if (!parse_smtp_url (self, smtp_url, error))
        return NULL;
    }
  else
    {
      if (g_mkdir_with_parents (outbox_dir, 0700) != 0)
        {
          int saved_errno = errno;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "Could not create the outbox %s: %s", outbox_dir, g_strerror (saved_errno));
          return NULL;
        }
      self->outbox_dir = g_strdup (outbox_dir);
    }

  return g_steal_pointer (&self);
}

const char *
fl_mailer_get_outbox_dir (FlMailer *self)
{
  g_return_val_if_fail (FL_IS_MAILER (self), NULL);

  return self->outbox_dir;
}

static void
send_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  FlMailer          *self = source_object;
  SendData          *data = task_data;
  g_autoptr (GError) error = NULL;
  gboolean           ok;

  if (g_task_return_error_if_cancelled (task))
    return;

  if (self->smtp_url != NULL)
    ok = send_smtp (self, data, cancellable, &error);
  else
    ok = write_outbox (self, data, &error);

  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, g_steal_pointer (&error));
}

void
fl_mailer_send_async (FlMailer           *self,
                      const char         *to,
                      const char         *subject,
                      const char         *text_body,
                      GCancellable       *cancellable,
                      GAsyncReadyCallback callback,
                      gpointer            user_data)
{
  g_autoptr (GTask)  task = NULL;
  g_autoptr (GError) error = NULL;
  SendData          *data;

  g_return_if_fail (FL_IS_MAILER (self));
  g_return_if_fail (to != NULL);
  g_return_if_fail (subject != NULL);
  g_return_if_fail (text_body != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_mailer_send_async);
  g_task_set_name (task, "fl_mailer_send_async");

  data = compose (self, to, subject, text_body, &error);
  if (data == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_set_task_data (task, data, (GDestroyNotify) send_data_free);
  g_task_run_in_thread (task, send_thread);
}

gboolean
fl_mailer_send_finish (FlMailer     *self,
                       GAsyncResult *result,
                       GError      **error)
{
  g_return_val_if_fail (FL_IS_MAILER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_mailer_send_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
