/* test-mailer.c: the relay's mailer: messages in the outbox, parsed back
 * (headers, body, encodings, modes), header injection refused, and SMTP
 * delivery through libcurl to a small SMTP server on 127.0.0.1 (a thread
 * of its own, blocking sockets), with its failures: a refused recipient,
 * STARTTLS required but not offered, a closed port, a silent server.
 *
 * The tests wait by iterating the main context, never by sleeping. */
#define G_LOG_DOMAIN "test-mailer"

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "fl-mailer.h"

#define TIMEOUT_MS 60000 /* more than the mailer's own 30 s */
#define PASSWORD_ENV "FIELDLINE_SMTP_PASSWORD"
#define PASSWORD "s3cret pass" /* main () puts it in the environment */

/* ---- waiting ------------------------------------------------------------ */

static gboolean
deadline_cb (gpointer user_data)
{
  gboolean *passed = user_data;

  *passed = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until cond holds; fails the test when
 * TIMEOUT_MS pass first. */
#define WAIT_UNTIL(cond)                                                  \
  G_STMT_START                                                            \
  {                                                                       \
    gboolean passed_ = FALSE;                                             \
    guint    source_ = g_timeout_add (TIMEOUT_MS, deadline_cb, &passed_); \
    while (!(cond) && !passed_)                                           \
      g_main_context_iteration (NULL, TRUE);                              \
    if (passed_)                                                          \
      g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,   \
                           "timed out waiting for: " #cond);              \
    g_source_remove (source_);                                            \
  }                                                                       \
  G_STMT_END

static void
result_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static gboolean
send_and_wait (FlMailer     *mailer,
               const char   *to,
               const char   *subject,
               const char   *body,
               GCancellable *cancellable,
               GError      **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  fl_mailer_send_async (mailer, to, subject, body, cancellable, result_cb, &result);
  WAIT_UNTIL (result != NULL);

  return fl_mailer_send_finish (mailer, result, error);
}

/* ---- files -------------------------------------------------------------- */

static void
rm_rf (const char *path)
{
  GDir       *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          rm_rf (child);
        }
      g_dir_close (dir);
      g_rmdir (path);
    }
  else
    {
      g_unlink (path);
    }
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* The directory's entries, sorted; each must be a finished message. */
static GPtrArray *
list_outbox (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir)   dir = g_dir_open (path, 0, &error);
  GPtrArray         *names = g_ptr_array_new_with_free_func (g_free);
  const char        *name;

  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_assert_true (g_regex_match_simple ("^[0-9]{8}T[0-9]{6}\\.[0-9]{6}Z-[0-9a-f]{16}\\.eml$", name, 0, 0));
      g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_sort (names, compare_strings);

  return names;
}

static char *
read_message_file (const char *dir,
                   const char *name)
{
  g_autofree char   *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  char              *contents = NULL;
  gsize              len;
  struct stat        st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_true (S_ISREG (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (contents), ==, len);

  return contents;
}

typedef struct
{
  char *dir;
  char *outbox; /* dir/spool/outbox: created by the mailer */
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("fl-mailer-XXXXXX", &error);
  g_assert_no_error (error);
  f->outbox = g_build_filename (f->dir, "spool", "outbox", NULL);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  rm_rf (f->dir);
  g_clear_pointer (&f->dir, g_free);
  g_clear_pointer (&f->outbox, g_free);
}

/* ---- parsing a message back --------------------------------------------- */

typedef struct
{
  GHashTable *headers; /* lower-case name → unfolded value */
  char       *body;
  char       *text;
} Message;

static void
message_free (Message *message)
{
  g_hash_table_unref (message->headers);
  g_free (message->body);
  g_free (message->text);
  g_free (message);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Message, message_free)

static Message *
message_parse (const char *text)
{
  Message            *message = g_new0 (Message, 1);
  const char         *end = strstr (text, "\r\n\r\n");
  g_autoptr (GString) head = g_string_new (NULL);
  g_auto (GStrv)      lines = NULL;

  /* CRLF line ends only, and none longer than RFC 5322 allows */
  for (gsize i = 0, column = 0; text[i] != '\0'; i++)
    {
      if (text[i] == '\r')
        g_assert_cmpint (text[i + 1], ==, '\n');
      if (text[i] == '\n')
        {
          g_assert_true (i > 0 && text[i - 1] == '\r');
          column = 0;
        }
      else if (text[i] != '\r')
        {
          g_assert_cmpuint (++column, <=, 998);
        }
    }

  g_assert_nonnull (end);
  message->text = g_strdup (text);
  message->body = g_strdup (end + 4);
  message->headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  /* unfold: a CRLF before white space goes */
  for (const char *p = text; p < end; p++)
    {
      if (p[0] == '\r' && (p[2] == ' ' || p[2] == '\t'))
        p++;
      else
        g_string_append_c (head, *p);
    }

  lines = g_strsplit (head->str, "\r\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *colon = strchr (lines[i], ':');
      char       *name;

      g_assert_nonnull (colon);
      name = g_ascii_strdown (lines[i], colon - lines[i]);
      g_assert_false (g_hash_table_contains (message->headers, name));
      g_hash_table_insert (message->headers, name, g_strstrip (g_strdup (colon + 1)));
    }

  return message;
}

static const char *
header (Message    *message,
        const char *name)
{
  const char *value = g_hash_table_lookup (message->headers, name);

  if (value == NULL)
    g_error ("no %s header in:\n%s", name, message->text);

  return value;
}

/* RFC 2047 B encoded words (UTF-8) among other words */
static char *
decode_words (const char *value)
{
  g_auto (GStrv) words = g_strsplit (value, " ", -1);
  GString       *out = g_string_new (NULL);
  gboolean       after_encoded = FALSE;

  for (guint i = 0; words[i] != NULL; i++)
    {
      const char *word = words[i];
      gsize       len = strlen (word);
      gboolean    encoded = g_str_has_prefix (word, "=?UTF-8?B?") && g_str_has_suffix (word, "?=") && len >= 12;

      if (len == 0)
        continue;
      /* white space between encoded words is not text */
      if (out->len > 0 && !(encoded && after_encoded))
        g_string_append_c (out, ' ');
      if (encoded)
        {
          g_autofree char   *base64 = g_strndup (word + 10, len - 12);
          g_autofree guchar *decoded = NULL;
          gsize              decoded_len;

          g_assert_cmpuint (len, <=, 75);
          decoded = g_base64_decode (base64, &decoded_len);
          g_string_append_len (out, (const char *) decoded, decoded_len);
        }
      else
        {
          g_assert_null (strstr (word, "=?"));
          g_string_append (out, word);
        }
      after_encoded = encoded;
    }

  return g_string_free (out, FALSE);
}

static char *
decode_quoted_printable (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p++)
    {
      if (*p != '=')
        {
          g_string_append_c (out, *p);
        }
      else if (p[1] == '\r' && p[2] == '\n')
        {
          p += 2; /* a soft line break */
        }
      else
        {
          g_assert_true (g_ascii_isxdigit (p[1]) && g_ascii_isxdigit (p[2]));
          g_string_append_c (out, g_ascii_xdigit_value (p[1]) * 16 + g_ascii_xdigit_value (p[2]));
          p += 2;
        }
    }

  return g_string_free (out, FALSE);
}

/* The body as the recipient reads it */
static char *
decoded_body (Message *message)
{
  const char *encoding = header (message, "content-transfer-encoding");

  if (g_ascii_strcasecmp (encoding, "quoted-printable") == 0)
    return decode_quoted_printable (message->body);

  g_assert_true (g_ascii_strcasecmp (encoding, "7bit") == 0 || g_ascii_strcasecmp (encoding, "8bit") == 0);
  return g_strdup (message->body);
}

/* Date: in RFC 5322's format, with the right day of the week, within a
 * few minutes of now. */
static void
assert_date (const char *date)
{
  static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
  static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
  g_autoptr (GRegex)       regex = NULL;
  g_autoptr (GMatchInfo)   match = NULL;
  g_autoptr (GDateTime)    parsed = NULL;
  g_autoptr (GDateTime)    now = g_date_time_new_now_utc ();
  g_autoptr (GTimeZone)    zone = NULL;
  g_autofree char         *day = NULL, *month = NULL, *offset = NULL;
  g_autofree char         *dd = NULL, *yyyy = NULL, *hh = NULL, *mm = NULL, *ss = NULL;
  int                      month_number = 0;

  regex = g_regex_new ("^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-3][0-9]) "
                       "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
                       "([0-2][0-9]):([0-5][0-9]):([0-6][0-9]) ([+-][0-9]{4})$",
                       0, 0, NULL);
  if (!g_regex_match (regex, date, 0, &match))
    g_error ("Date: %s is not in RFC 5322's format", date);

  day = g_match_info_fetch (match, 1);
  dd = g_match_info_fetch (match, 2);
  month = g_match_info_fetch (match, 3);
  yyyy = g_match_info_fetch (match, 4);
  hh = g_match_info_fetch (match, 5);
  mm = g_match_info_fetch (match, 6);
  ss = g_match_info_fetch (match, 7);
  offset = g_match_info_fetch (match, 8);

  for (guint i = 0; i < G_N_ELEMENTS (months); i++)
    {
      if (strcmp (months[i], month) == 0)
        month_number = i + 1;
    }
  zone = g_time_zone_new_identifier (offset);
  g_assert_nonnull (zone);
  parsed = g_date_time_new (zone, atoi (yyyy), month_number, atoi (dd), atoi (hh), atoi (mm), atoi (ss));
  g_assert_nonnull (parsed);
  g_assert_cmpstr (days[g_date_time_get_day_of_week (parsed) - 1], ==, day);
  g_assert_cmpint (ABS (g_date_time_difference (now, parsed)), <, 5 * 60 * G_USEC_PER_SEC);
}

static void
assert_ascii (const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    g_assert_cmpuint ((guchar) *p, <, 0x80);
}

/* ---- outbox ------------------------------------------------------------- */

#define CODE_SUBJECT "Your Fieldline confirmation code"
#define CODE_BODY "Your confirmation code is 493027.\nIt expires in 24 hours.\n"
#define CODE_BODY_CRLF "Your confirmation code is 493027.\r\nIt expires in 24 hours.\r\n"

static void
test_outbox (Fixture      *f,
             gconstpointer data)
{
  g_autoptr (GError)    error = NULL;
  g_autoptr (FlMailer)  mailer = NULL;
  g_autoptr (GPtrArray) names = NULL;
  g_autoptr (Message)   message = NULL;
  g_autofree char      *text = NULL;
  g_autofree char      *body = NULL;
  struct stat           st;

  mailer = fl_mailer_new (f->outbox, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fl_mailer_get_outbox_dir (mailer), ==, f->outbox);
  g_assert_cmpint (g_stat (f->outbox, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);

  g_assert_true (send_and_wait (mailer, "alice@example.com", CODE_SUBJECT, CODE_BODY, NULL, &error));
  g_assert_no_error (error);

  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 1);
  text = read_message_file (f->outbox, g_ptr_array_index (names, 0));
  message = message_parse (text);

  g_assert_cmpstr (header (message, "from"), ==, "Fieldline <no-reply@localhost>");
  g_assert_cmpstr (header (message, "to"), ==, "alice@example.com");
  g_assert_cmpstr (header (message, "subject"), ==, CODE_SUBJECT);
  assert_date (header (message, "date"));
  g_assert_true (g_regex_match_simple ("^<[A-Za-z0-9.]+@localhost>$", header (message, "message-id"), 0, 0));
  g_assert_cmpstr (header (message, "mime-version"), ==, "1.0");
  g_assert_cmpstr (header (message, "content-type"), ==, "text/plain; charset=utf-8");
  g_assert_cmpstr (header (message, "content-transfer-encoding"), ==, "7bit");
  g_assert_cmpstr (message->body, ==, CODE_BODY_CRLF);
  body = decoded_body (message);
  g_assert_cmpstr (body, ==, CODE_BODY_CRLF);
}

static void
test_outbox_two (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr (GError)     error = NULL;
  g_autoptr (FlMailer)   mailer = NULL;
  g_autoptr (GPtrArray)  names = NULL;
  g_autoptr (GHashTable) recipients = g_hash_table_new (g_str_hash, g_str_equal);
  const char            *ids[2] = { NULL, NULL };
  g_autoptr (Message)    first = NULL;
  g_autoptr (Message)    second = NULL;
  g_autofree char       *first_text = NULL;
  g_autofree char       *second_text = NULL;

  mailer = fl_mailer_new (f->outbox, NULL, "Fieldline Ops <ops@fieldline.example.org>", &error);
  g_assert_no_error (error);

  /* both at once: they run on worker threads side by side */
  {
    g_autoptr (GAsyncResult) result1 = NULL;
    g_autoptr (GAsyncResult) result2 = NULL;

    fl_mailer_send_async (mailer, "bob@example.com", "Reset your password", "Code: 111111\r\n", NULL, result_cb, &result1);
    fl_mailer_send_async (mailer, "carol@example.net", "Reset your password", "Code: 222222", NULL, result_cb, &result2);
    WAIT_UNTIL (result1 != NULL && result2 != NULL);
    g_assert_true (fl_mailer_send_finish (mailer, result1, &error));
    g_assert_no_error (error);
    g_assert_true (fl_mailer_send_finish (mailer, result2, &error));
    g_assert_no_error (error);
  }

  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 2);
  first_text = read_message_file (f->outbox, g_ptr_array_index (names, 0));
  second_text = read_message_file (f->outbox, g_ptr_array_index (names, 1));
  first = message_parse (first_text);
  second = message_parse (second_text);

  g_hash_table_add (recipients, (gpointer) header (first, "to"));
  g_hash_table_add (recipients, (gpointer) header (second, "to"));
  g_assert_true (g_hash_table_contains (recipients, "bob@example.com"));
  g_assert_true (g_hash_table_contains (recipients, "carol@example.net"));

  for (guint i = 0; i < 2; i++)
    {
      Message *message = i == 0 ? first : second;
      gboolean bob = strcmp (header (message, "to"), "bob@example.com") == 0;

      g_assert_cmpstr (header (message, "from"), ==, "Fieldline Ops <ops@fieldline.example.org>");
      g_assert_cmpstr (message->body, ==, bob ? "Code: 111111\r\n" : "Code: 222222\r\n");
      g_assert_true (g_regex_match_simple ("^<[A-Za-z0-9.]+@fieldline\\.example\\.org>$",
                                           header (message, "message-id"), 0, 0));
      ids[i] = header (message, "message-id");
    }
  g_assert_cmpstr (ids[0], !=, ids[1]);
}

static void
test_injection (Fixture      *f,
                gconstpointer data)
{
  static const char *const bad_recipients[] = {
    "bob@example.com\r\nBcc: eve@example.net",
    "bob@example.com\nBcc: eve@example.net",
    "bob@example.com\rBcc: eve@example.net",
    "bob@example.com\r\n",
    "bob@example.com, eve@example.net",
    "bob@example.com;eve@example.net",
    "bob@example.com eve@example.net",
    "Bob <bob@example.com>",
    "<bob@example.com>",
    "\"bob\"@example.com",
    "bob",
    "",
    "@example.com",
    "bob@",
    "bob@@example.com",
    "bob@eve@example.com",
    ".bob@example.com",
    "bob.@example.com",
    "bo..b@example.com",
    "bob@-example.com",
    "bob@example-.com",
    "bob@example..com",
    "bob@.example.com",
    "bob@example.com.",
    "bob@exa_mple.com",
    "b\xc3\xb6"
    "b@example.com",
    "bob@example.com\t",
  };
  static const char *const bad_subjects[] = {
    "Your code\r\nBcc: eve@example.net",
    "Your code\nBcc: eve@example.net",
    "Your code\rBcc: eve@example.net",
    "Your code\r\n\r\nA body of my own",
    "Your code\x01",
    "Bad UTF-8 \xc3",
  };
  g_autoptr (GError)    error = NULL;
  g_autoptr (FlMailer)  mailer = NULL;
  g_autoptr (GPtrArray) names = NULL;

  mailer = fl_mailer_new (f->outbox, NULL, NULL, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (bad_recipients); i++)
    {
      g_autofree char *escaped = g_strescape (bad_recipients[i], NULL);

      g_test_message ("to: %s", escaped);
      g_assert_false (send_and_wait (mailer, bad_recipients[i], "Your code", "123456", NULL, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad_subjects); i++)
    {
      g_test_message ("subject %u", i);
      g_assert_false (send_and_wait (mailer, "bob@example.com", bad_subjects[i], "123456", NULL, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  g_assert_false (send_and_wait (mailer, "bob@example.com", "Your code", "Bad UTF-8 \xff", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);

  /* the same mailer still writes a good one, and plausible addresses pass */
  g_assert_true (send_and_wait (mailer, "bob.o'neil+codes@mail-1.example.com", "Your code", "123456", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (send_and_wait (mailer, "root@localhost", "Your code", "123456", NULL, &error));
  g_assert_no_error (error);
  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 2);
}

static void
test_bad_sender (Fixture      *f,
                 gconstpointer data)
{
  static const char *const bad_senders[] = {
    "Fieldline <no-reply@example.com>\r\nBcc: eve@example.net",
    "Fieldline\r\n <no-reply@example.com>",
    "no-reply@example.com\n",
    "Fieldline <no-reply@example.com",
    "Fieldline <no-reply@example.com> x",
    "Fieldline <no-reply@example.com>, <eve@example.net>",
    "Fieldline <>",
    "Fieldline",
    "",
  };
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (bad_senders); i++)
    {
      g_autoptr (FlMailer) mailer = NULL;

      g_autofree char *escaped = g_strescape (bad_senders[i], NULL);

      g_test_message ("from: %s", escaped);
      mailer = fl_mailer_new (f->outbox, NULL, bad_senders[i], &error);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_null (mailer);
      g_clear_error (&error);
    }
}

static void
test_non_ascii (Fixture      *f,
                gconstpointer data)
{
  const char           *subject = "Ihr Bestätigungscode — 493027 ✓";
  const char           *body = "Grüße aus dem Fieldline-Relay.\nIhr Code: 493027 \nGültig für 24 Stunden = 1 Tag.\n";
  const char           *body_crlf = "Grüße aus dem Fieldline-Relay.\r\nIhr Code: 493027 \r\nGültig für 24 Stunden = 1 Tag.\r\n";
  g_autoptr (GError)    error = NULL;
  g_autoptr (FlMailer)  mailer = NULL;
  g_autoptr (GPtrArray) names = NULL;
  g_autoptr (GString)   long_subject = g_string_new (NULL);
  g_autoptr (GString)   long_body = g_string_new (NULL);

  mailer = fl_mailer_new (f->outbox, NULL, "Fieldline Überwachung <no-reply@example.org>", &error);
  g_assert_no_error (error);

  for (guint i = 0; i < 20; i++)
    g_string_append (long_subject, "Überprüfung ✓ ");
  for (guint i = 0; i < 1500; i++)
    g_string_append_c (long_body, "abcdefgh"[i % 8]);
  g_string_append (long_body, "\nend\n");

  g_assert_true (send_and_wait (mailer, "dora@example.com", subject, body, NULL, &error));
  g_assert_no_error (error);
  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 1);

  {
    g_autofree char    *text = read_message_file (f->outbox, g_ptr_array_index (names, 0));
    g_autoptr (Message) message = message_parse (text);
    g_autofree char    *decoded_subject = NULL;
    g_autofree char    *decoded_from = NULL;
    g_autofree char    *decoded = NULL;

    assert_ascii (text);
    g_assert_true (g_str_has_prefix (header (message, "subject"), "=?UTF-8?B?"));
    decoded_subject = decode_words (header (message, "subject"));
    g_assert_cmpstr (decoded_subject, ==, subject);
    decoded_from = decode_words (header (message, "from"));
    g_assert_cmpstr (decoded_from, ==, "Fieldline Überwachung <no-reply@example.org>");
    g_assert_cmpstr (header (message, "content-type"), ==, "text/plain; charset=utf-8");
    g_assert_cmpstr (header (message, "content-transfer-encoding"), ==, "quoted-printable");
    decoded = decoded_body (message);
    g_assert_cmpstr (decoded, ==, body_crlf);
    /* the trailing space survives as =20 */
    g_assert_nonnull (strstr (message->body, "493027=20\r\n"));
  }

  /* a long subject folds into several encoded words; a long line of ASCII
   * is quoted-printable too; a subject that looks encoded is encoded */
  g_clear_pointer (&names, g_ptr_array_unref);
  rm_rf (f->outbox);
  g_assert_true (send_and_wait (mailer, "dora@example.com", long_subject->str, long_body->str, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (send_and_wait (mailer, "dora@example.com", "=?UTF-8?B?SGk=?=", "x", NULL, &error));
  g_assert_no_error (error);
  names = list_outbox (f->outbox);
  g_assert_cmpuint (names->len, ==, 2);

  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char    *text = read_message_file (f->outbox, g_ptr_array_index (names, i));
      g_autoptr (Message) message = message_parse (text);
      g_autofree char    *decoded_subject = decode_words (header (message, "subject"));
      g_auto (GStrv)      lines = g_strsplit (text, "\r\n", -1);

      assert_ascii (text);
      if (strcmp (decoded_subject, "=?UTF-8?B?SGk=?=") == 0)
        continue;

      g_assert_cmpstr (decoded_subject, ==, long_subject->str);
      for (guint j = 0; lines[j] != NULL; j++)
        g_assert_cmpuint (strlen (lines[j]), <=, 76);
      g_assert_cmpstr (header (message, "content-transfer-encoding"), ==, "quoted-printable");

      {
        g_autofree char    *decoded = decoded_body (message);
        g_autoptr (GString) expected_crlf = g_string_new (long_body->str);

        g_string_replace (expected_crlf, "\n", "\r\n", 0);
        g_assert_cmpstr (decoded, ==, expected_crlf->str);
      }
    }
}

/* ---- a small SMTP server ------------------------------------------------ */

typedef struct
{
  GSocketListener *listener;
  guint16          port;
  GCancellable    *cancellable;
  GThread         *thread;

  /* how it behaves */
  gboolean    offer_auth; /* AUTH PLAIN */
  const char *refuse_rcpt;

  /* what the client did; read after smtp_server_stop */
  char      *ehlo;
  char      *mail_from;
  GPtrArray *rcpt_to;
  char      *auth; /* AUTH PLAIN's credentials, the NULs as '|' */
  GString   *data;
  gboolean   got_data;
  gboolean   got_quit;
  char      *error;
} SmtpServer;

static GSocketListener *
listen_loopback (guint16 *port)
{
  g_autoptr (GSocketListener) listener = g_socket_listener_new ();
  g_autoptr (GInetAddress)    loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress)  address = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress)  effective = NULL;
  g_autoptr (GError)          error = NULL;

  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &effective, &error);
  g_assert_no_error (error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  g_assert_cmpuint (*port, >, 0);

  return g_steal_pointer (&listener);
}

static gboolean
reply (GOutputStream *out,
       const char    *line,
       GError       **error)
{
  g_autofree char *crlf = g_strconcat (line, "\r\n", NULL);

  return g_output_stream_write_all (out, crlf, strlen (crlf), NULL, NULL, error);
}

static gboolean
serve_auth_plain (SmtpServer       *server,
                  GDataInputStream *in,
                  GOutputStream    *out,
                  const char       *argument,
                  GError          **error)
{
  g_autofree char   *response = NULL;
  g_autofree guchar *decoded = NULL;
  gsize              len;

  if (argument == NULL || *argument == '\0')
    {
      if (!reply (out, "334 ", error))
        return FALSE;
      response = g_data_input_stream_read_line (in, NULL, NULL, error);
      if (response == NULL)
        return FALSE;
      argument = response;
    }

  decoded = g_base64_decode (argument, &len);
  for (gsize i = 0; i < len; i++)
    {
      if (decoded[i] == '\0')
        decoded[i] = '|';
    }
  server->auth = g_strndup ((const char *) decoded, len);

  return reply (out, "235 2.7.0 Authentication successful", error);
}

static gboolean
serve_data (SmtpServer       *server,
            GDataInputStream *in,
            GOutputStream    *out,
            GError          **error)
{
  if (!reply (out, "354 End data with <CR><LF>.<CR><LF>", error))
    return FALSE;

  for (;;)
    {
      g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, error);

      if (line == NULL)
        return FALSE;
      if (strcmp (line, ".") == 0)
        break;
      /* undo dot-stuffing */
      g_string_append (server->data, line[0] == '.' ? line + 1 : line);
      g_string_append (server->data, "\r\n");
    }
  server->got_data = TRUE;

  return reply (out, "250 2.0.0 Queued", error);
}

static gpointer
smtp_server_thread (gpointer user_data)
{
  SmtpServer                   *server = user_data;
  g_autoptr (GSocketConnection) connection = NULL;
  g_autoptr (GDataInputStream)  in = NULL;
  g_autoptr (GError)            error = NULL;
  GOutputStream                *out;
  guint                         accepted = 0;

  connection = g_socket_listener_accept (server->listener, NULL, server->cancellable, &error);
  if (connection == NULL)
    goto out;

  g_socket_set_timeout (g_socket_connection_get_socket (connection), 20);
  in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_data_input_stream_set_newline_type (in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  if (!reply (out, "220 smtp.test ESMTP ready", &error))
    goto out;

  for (;;)
    {
      g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, &error);
      gboolean         ok;

      if (line == NULL)
        break;

      if (g_ascii_strncasecmp (line, "EHLO ", 5) == 0)
        {
          server->ehlo = g_strdup (line + 5);
          ok = reply (out, "250-smtp.test", &error) && (!server->offer_auth || reply (out, "250-AUTH PLAIN", &error)) && reply (out, "250 8BITMIME", &error);
        }
      else if (g_ascii_strncasecmp (line, "HELO ", 5) == 0)
        {
          server->ehlo = g_strdup (line + 5);
          ok = reply (out, "250 smtp.test", &error);
        }
      else if (server->offer_auth && g_ascii_strncasecmp (line, "AUTH PLAIN", 10) == 0)
        {
          ok = serve_auth_plain (server, in, out, g_strchug (line + 10), &error);
        }
      else if (g_ascii_strncasecmp (line, "MAIL FROM:", 10) == 0)
        {
          server->mail_from = g_strdup (line + 10);
          ok = reply (out, "250 2.1.0 OK", &error);
        }
      else if (g_ascii_strncasecmp (line, "RCPT TO:", 8) == 0)
        {
          g_ptr_array_add (server->rcpt_to, g_strdup (line + 8));
          if (g_strcmp0 (line + 8, server->refuse_rcpt) == 0)
            {
              ok = reply (out, "550 5.1.1 No such user here", &error);
            }
          else
            {
              accepted++;
              ok = reply (out, "250 2.1.5 OK", &error);
            }
        }
      else if (g_ascii_strcasecmp (line, "DATA") == 0)
        {
          ok = accepted > 0 ? serve_data (server, in, out, &error)
                            : reply (out, "554 5.5.1 No valid recipients", &error);
        }
      else if (g_ascii_strcasecmp (line, "QUIT") == 0)
        {
          server->got_quit = TRUE;
          reply (out, "221 2.0.0 Bye", NULL);
          break;
        }
      else if (g_ascii_strcasecmp (line, "RSET") == 0 || g_ascii_strcasecmp (line, "NOOP") == 0)
        {
          ok = reply (out, "250 2.0.0 OK", &error);
        }
      else
        {
          ok = reply (out, "502 5.5.2 Command not recognized", &error);
        }

      if (!ok)
        break;
    }

out:
  if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    server->error = g_strdup (error->message);
  if (connection != NULL)
    g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);

  return NULL;
}

static SmtpServer *
smtp_server_start (gboolean    offer_auth,
                   const char *refuse_rcpt)
{
  SmtpServer *server = g_new0 (SmtpServer, 1);

  server->listener = listen_loopback (&server->port);
  server->cancellable = g_cancellable_new ();
  server->offer_auth = offer_auth;
  server->refuse_rcpt = refuse_rcpt;
  server->rcpt_to = g_ptr_array_new_with_free_func (g_free);
  server->data = g_string_new (NULL);
  server->thread = g_thread_new ("smtp-server", smtp_server_thread, server);

  return server;
}

/* Waits for the session to end (or stops waiting for one). */
static void
smtp_server_stop (SmtpServer *server)
{
  g_cancellable_cancel (server->cancellable);
  g_thread_join (g_steal_pointer (&server->thread));
  g_socket_listener_close (server->listener);
  g_assert_null (server->error);
}

static void
smtp_server_free (SmtpServer *server)
{
  if (server->thread != NULL)
    smtp_server_stop (server);
  g_clear_object (&server->listener);
  g_clear_object (&server->cancellable);
  g_free (server->ehlo);
  g_free (server->mail_from);
  g_ptr_array_unref (server->rcpt_to);
  g_free (server->auth);
  g_string_free (server->data, TRUE);
  g_free (server->error);
  g_free (server);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SmtpServer, smtp_server_free)

static FlMailer *
smtp_mailer (const char *scheme_and_user,
             guint16     port,
             const char *from)
{
  g_autofree char   *url = g_strdup_printf ("%s127.0.0.1:%u", scheme_and_user, port);
  g_autoptr (GError) error = NULL;
  FlMailer          *mailer = fl_mailer_new (NULL, url, from, &error);

  g_assert_no_error (error);
  g_assert_nonnull (mailer);
  g_assert_null (fl_mailer_get_outbox_dir (mailer));

  return mailer;
}

/* ---- SMTP --------------------------------------------------------------- */

static void
test_smtp (Fixture      *f,
           gconstpointer data)
{
  const char            *body = "Your code is 493027.\n.hidden line\n.\n..\nGrüße\n";
  const char            *body_crlf = "Your code is 493027.\r\n.hidden line\r\n.\r\n..\r\nGrüße\r\n";
  g_autoptr (SmtpServer) server = smtp_server_start (FALSE, NULL);
  g_autoptr (FlMailer)   mailer = smtp_mailer ("smtp://", server->port, "Fieldline <no-reply@fieldline.test>");
  g_autoptr (GError)     error = NULL;
  g_autoptr (Message)    message = NULL;
  g_autofree char       *decoded = NULL;

  g_assert_true (send_and_wait (mailer, "carol@example.net", CODE_SUBJECT, body, NULL, &error));
  g_assert_no_error (error);
  smtp_server_stop (server);

  g_assert_nonnull (server->ehlo);
  g_assert_cmpstr (server->mail_from, ==, "<no-reply@fieldline.test>");
  g_assert_cmpuint (server->rcpt_to->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (server->rcpt_to, 0), ==, "<carol@example.net>");
  g_assert_null (server->auth);
  g_assert_true (server->got_data);
  g_assert_true (server->got_quit);

  message = message_parse (server->data->str);
  g_assert_cmpstr (header (message, "from"), ==, "Fieldline <no-reply@fieldline.test>");
  g_assert_cmpstr (header (message, "to"), ==, "carol@example.net");
  g_assert_cmpstr (header (message, "subject"), ==, CODE_SUBJECT);
  assert_date (header (message, "date"));
  g_assert_true (g_regex_match_simple ("^<[A-Za-z0-9.]+@fieldline\\.test>$", header (message, "message-id"), 0, 0));
  g_assert_cmpstr (header (message, "content-type"), ==, "text/plain; charset=utf-8");
  decoded = decoded_body (message);
  g_assert_cmpstr (decoded, ==, body_crlf);

  /* nothing in an outbox: there is none */
  g_assert_false (g_file_test (f->outbox, G_FILE_TEST_EXISTS));
}

static void
test_smtp_auth (Fixture      *f,
                gconstpointer data)
{
  g_autoptr (SmtpServer) server = smtp_server_start (TRUE, NULL);
  g_autoptr (FlMailer)   mailer = smtp_mailer ("smtp://relay%40fieldline.test@", server->port, NULL);
  g_autoptr (GError)     error = NULL;

  g_assert_cmpstr (g_getenv (PASSWORD_ENV), ==, PASSWORD); /* set by main () */

  g_assert_true (send_and_wait (mailer, "erin@example.com", CODE_SUBJECT, CODE_BODY, NULL, &error));
  g_assert_no_error (error);
  smtp_server_stop (server);

  g_assert_cmpstr (server->auth, ==, "|relay@fieldline.test|" PASSWORD);
  g_assert_cmpstr (server->mail_from, ==, "<no-reply@localhost>");
  g_assert_cmpuint (server->rcpt_to->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (server->rcpt_to, 0), ==, "<erin@example.com>");
  g_assert_true (server->got_data);
}

static void
test_smtp_bad_url (Fixture      *f,
                   gconstpointer data)
{
  static const char *const bad_urls[] = {
    "http://127.0.0.1:25",
    "smtp:127.0.0.1",
    "smtp://",
    "smtp://:25",
    "smtp://relay:pw@127.0.0.1:25", /* the password belongs in the environment */
    "smtp://127.0.0.1:25?starttls=1",
    "smtp://127.0.0.1:25#x",
    "smtp://127.0.0.1:25/a/b",
    "smtp://127.0.0.1:25/a%0d%0aRSET",
    "smtp://127.0.0.1:99999",
  };
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (bad_urls); i++)
    {
      g_autoptr (FlMailer) mailer = NULL;

      g_autofree char *escaped = g_strescape (bad_urls[i], NULL);

      g_test_message ("url: %s", escaped);
      mailer = fl_mailer_new (NULL, bad_urls[i], NULL, &error);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_null (mailer);
      g_clear_error (&error);
    }

  /* the good forms */
  {
    static const char *const good_urls[] = {
      "smtp://127.0.0.1",
      "smtp://mail.example.com:2525/relay.example.com",
      "smtp+starttls://relay@mail.example.com",
      "smtps://relay@[::1]:465",
      "SMTP://localhost",
    };

    for (guint i = 0; i < G_N_ELEMENTS (good_urls); i++)
      {
        g_autoptr (FlMailer) mailer = fl_mailer_new (NULL, good_urls[i], NULL, &error);

        g_test_message ("url: %s", good_urls[i]);
        g_assert_no_error (error);
        g_assert_nonnull (mailer);
      }
  }
}

/* A user name without FIELDLINE_SMTP_PASSWORD */
static void
test_smtp_no_password (Fixture      *f,
                       gconstpointer data)
{
  if (g_test_subprocess ())
    {
      g_autoptr (FlMailer) mailer = NULL;
      g_autoptr (GError)   error = NULL;

      g_unsetenv (PASSWORD_ENV); /* no threads yet in this process */
      mailer = fl_mailer_new (NULL, "smtp://relay@127.0.0.1:25", NULL, &error);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, PASSWORD_ENV));
      g_assert_null (mailer);
      return;
    }

  g_test_trap_subprocess (NULL, 0, 0);
  g_test_trap_assert_passed ();
}

static void
test_smtp_starttls_required (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr (SmtpServer) server = smtp_server_start (FALSE, NULL);
  g_autoptr (FlMailer)   mailer = smtp_mailer ("smtp+starttls://", server->port, NULL);
  g_autoptr (GError)     error = NULL;

  g_assert_false (send_and_wait (mailer, "frank@example.com", CODE_SUBJECT, CODE_BODY, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_test_message ("%s", error->message);
  smtp_server_stop (server);

  g_assert_nonnull (server->ehlo);
  g_assert_null (server->mail_from);
  g_assert_false (server->got_data);
}

static void
test_smtp_refused_recipient (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr (SmtpServer) server = smtp_server_start (FALSE, "<nobody@example.com>");
  g_autoptr (FlMailer)   mailer = smtp_mailer ("smtp://", server->port, NULL);
  g_autoptr (GError)     error = NULL;

  g_assert_false (send_and_wait (mailer, "nobody@example.com", CODE_SUBJECT, CODE_BODY, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "550"));
  smtp_server_stop (server);

  g_assert_cmpuint (server->rcpt_to->len, ==, 1);
  g_assert_false (server->got_data);
}

static void
test_smtp_unreachable (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr (FlMailer) mailer = NULL;
  g_autoptr (GError)   error = NULL;
  guint16              port;
  gint64               start;

  /* a port that was just open and is closed now */
  {
    g_autoptr (GSocketListener) listener = listen_loopback (&port);

    g_socket_listener_close (listener);
  }

  mailer = smtp_mailer ("smtp://", port, NULL);
  start = g_get_monotonic_time ();
  g_assert_false (send_and_wait (mailer, "gina@example.com", CODE_SUBJECT, CODE_BODY, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_test_message ("%s", error->message);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_smtp_cancel (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr (GCancellable)    cancellable = g_cancellable_new ();
  g_autoptr (GSocketListener) listener = NULL;
  g_autoptr (FlMailer)        mailer = NULL;
  g_autoptr (GError)          error = NULL;
  guint16                     port;
  gint64                      start;

  /* the kernel completes the handshake; no one ever says 220 */
  listener = listen_loopback (&port);
  mailer = smtp_mailer ("smtp://", port, NULL);

  start = g_get_monotonic_time ();
  g_timeout_add (300, cancel_cb, cancellable);
  g_assert_false (send_and_wait (mailer, "hank@example.com", CODE_SUBJECT, CODE_BODY, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_test_message ("cancelled after %" G_GINT64_FORMAT " ms", (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
}

int
main (int   argc,
      char *argv[])
{
  /* before there are threads; a subprocess may unset it, before it has
   * threads of its own */
  g_setenv (PASSWORD_ENV, PASSWORD, TRUE);
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/fieldline/mailer/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  ADD ("outbox", test_outbox);
  ADD ("outbox-two", test_outbox_two);
  ADD ("injection", test_injection);
  ADD ("bad-sender", test_bad_sender);
  ADD ("non-ascii", test_non_ascii);
  ADD ("smtp", test_smtp);
  ADD ("smtp-auth", test_smtp_auth);
  ADD ("smtp-bad-url", test_smtp_bad_url);
  ADD ("smtp-no-password", test_smtp_no_password);
  ADD ("smtp-starttls-required", test_smtp_starttls_required);
  ADD ("smtp-refused-recipient", test_smtp_refused_recipient);
  ADD ("smtp-unreachable", test_smtp_unreachable);
  ADD ("smtp-cancel", test_smtp_cancel);

#undef ADD

  return g_test_run ();
}
