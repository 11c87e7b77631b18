/* fl-http.c: the relay's HTTP plumbing. */
#define G_LOG_DOMAIN "fl-http"

#include "config.h"

#include <errno.h>
#include <string.h>

#include "fieldline-core.h"
#include "fl-http.h"
#include "fl-user-pool.h"

G_DEFINE_QUARK (fl-api-error-quark, fl_api_error)

static const struct {
  guint       status;
  const char *code;
} api_errors[] = {
  [FL_API_ERROR_BAD_REQUEST] = { 400, "bad_request" },
  [FL_API_ERROR_INVALID_PARAMETER] = { 400, "invalid_parameter" },
  [FL_API_ERROR_INVALID_CURSOR] = { 400, "invalid_cursor" },
  [FL_API_ERROR_UNAUTHORIZED] = { 401, "unauthorized" },
  [FL_API_ERROR_FORBIDDEN] = { 403, "forbidden" },
  [FL_API_ERROR_NOT_FOUND] = { 404, "not_found" },
  [FL_API_ERROR_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed" },
  [FL_API_ERROR_CONFLICT] = { 409, "conflict" },
  [FL_API_ERROR_LENGTH_REQUIRED] = { 411, "length_required" },
  [FL_API_ERROR_TOO_LARGE] = { 413, "too_large" },
  [FL_API_ERROR_UNSUPPORTED_MEDIA] = { 415, "unsupported_media_type" },
  [FL_API_ERROR_UNPROCESSABLE] = { 422, "unprocessable" },
  [FL_API_ERROR_TOO_MANY_REQUESTS] = { 429, "too_many_requests" },
  [FL_API_ERROR_UNAVAILABLE] = { 503, "unavailable" },
  [FL_API_ERROR_INTERNAL] = { 500, "internal" },
};

guint
fl_api_error_status (const GError *error,
                     const char  **code)
{
  const char *unused;

  if (code == NULL)
    code = &unused;

  if (error->domain == FL_API_ERROR && (guint) error->code < G_N_ELEMENTS (api_errors))
    {
      *code = api_errors[error->code].code;
      return api_errors[error->code].status;
    }

  if (error->domain == FL_CODEC_ERROR)
    {
      *code = fl_codec_error_code (error);
      switch ((FlCodecError) error->code)
        {
        case FL_CODEC_ERROR_TOO_LARGE:
          return 413;
        case FL_CODEC_ERROR_FORBIDDEN:
          return 403;
        case FL_CODEC_ERROR_MALFORMED:
        case FL_CODEC_ERROR_MISSING_FIELD:
        case FL_CODEC_ERROR_INVALID_FIELD:
        default:
          return 400;
        }
    }

  if (error->domain == FL_AUTH_ERROR)
    {
      switch ((FlAuthError) error->code)
        {
        case FL_AUTH_ERROR_NOT_AUTHORIZED:
          *code = "not_authorized";
          return 401;
        case FL_AUTH_ERROR_USER_NOT_FOUND:
          *code = "user_not_found";
          return 404;
        case FL_AUTH_ERROR_USER_EXISTS:
          *code = "user_exists";
          return 409;
        case FL_AUTH_ERROR_INVALID_PASSWORD:
          *code = "invalid_password";
          return 400;
        case FL_AUTH_ERROR_INVALID_PARAMETER:
          *code = "invalid_parameter";
          return 400;
        case FL_AUTH_ERROR_TOO_MANY_REQUESTS:
          *code = "too_many_requests";
          return 429;
        case FL_AUTH_ERROR_FORBIDDEN:
          *code = "forbidden";
          return 403;
        case FL_AUTH_ERROR_USER_NOT_CONFIRMED:
          *code = "user_not_confirmed";
          return 403;
        case FL_AUTH_ERROR_CODE_MISMATCH:
          *code = "code_mismatch";
          return 400;
        case FL_AUTH_ERROR_EXPIRED_CODE:
          *code = "expired_code";
          return 400;
        case FL_AUTH_ERROR_LIMIT_EXCEEDED:
          *code = "limit_exceeded";
          return 429;
        case FL_AUTH_ERROR_RESOURCE_NOT_FOUND:
          *code = "not_found";
          return 404;
        case FL_AUTH_ERROR_PASSWORD_RESET_REQUIRED:
          *code = "password_reset_required";
          return 403;
        case FL_AUTH_ERROR_UNSUPPORTED_TOKEN_TYPE:
          *code = "invalid_parameter";
          return 400;
        case FL_AUTH_ERROR_INTERNAL:
        default:
          *code = "internal";
          return 500;
        }
    }

  if (error->domain == FL_STORE_ERROR)
    {
      switch ((FlStoreError) error->code)
        {
        case FL_STORE_ERROR_NOT_FOUND:
          *code = "not_found";
          return 404;
        case FL_STORE_ERROR_BAD_CURSOR:
          *code = "invalid_cursor";
          return 400;
        case FL_STORE_ERROR_CLOSED:
          *code = "unavailable";
          return 503;
        case FL_STORE_ERROR_FAILED:
        case FL_STORE_ERROR_SCHEMA:
        default:
          *code = "internal";
          return 500;
        }
    }

  if (error->domain == FL_JWT_ERROR)
    {
      *code = "unauthorized";
      return 401;
    }

  *code = "internal";
  return 500;
}

void
fl_api_error_append_object (const GError *error,
                            GString      *out)
{
  const char *code;

  fl_api_error_status (error, &code);
  g_string_append (out, "{\"code\":");
  fl_json_append_string (out, code);
  g_string_append (out, ",\"message\":");
  fl_json_append_string (out, error->message);
  g_string_append_c (out, '}');
}

void
fl_api_error_append_json (const GError *error,
                          GString      *out)
{
  g_string_append (out, "{\"error\":");
  fl_api_error_append_object (error, out);
  g_string_append_c (out, '}');
}

void
fl_http_reply_error (SoupServerMessage *msg,
                     const GError      *error)
{
  GString *json = g_string_new (NULL);
  guint status = fl_api_error_status (error, NULL);

  /* faults are worth a warning; "unavailable" while stopping is not */
  if (status >= 500 && status != 503)
    g_warning ("%s %s: %s", soup_server_message_get_method (msg),
               g_uri_get_path (soup_server_message_get_uri (msg)), error->message);

  /* a caller may have set its own challenge (Basic, for devices) */
  if (status == 401 && !soup_message_headers_get_one (soup_server_message_get_response_headers (msg), "WWW-Authenticate"))
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                  "WWW-Authenticate", "Bearer");

  fl_api_error_append_json (error, json);
  fl_http_reply_json (msg, status, json);
}

void
fl_http_reply_text (SoupServerMessage *msg,
                    guint              status,
                    const char        *content_type,
                    GString           *text)
{
  gsize len = text->len;

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, content_type, SOUP_MEMORY_TAKE,
                                    g_string_free (text, FALSE), len);
}

/* Takes json. */
void
fl_http_reply_json (SoupServerMessage *msg,
                    guint              status,
                    GString           *json)
{
  fl_http_reply_text (msg, status, "application/json", json);
}

char *
fl_http_dup_bearer_token (SoupServerMessage *msg,
                          GHashTable        *query,
                          gboolean           allow_query)
{
  const char *header;

  header = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Authorization");
  if (header != NULL)
    {
      while (*header == ' ')
        header++;
      if (g_ascii_strncasecmp (header, "Bearer ", 7) != 0)
        return NULL;
      header += 7;
      while (*header == ' ')
        header++;
      return *header ? g_strstrip (g_strdup (header)) : NULL;
    }

  if (allow_query && query != NULL)
    {
      const char *token = g_hash_table_lookup (query, "token");

      if (token != NULL && *token != '\0')
        return g_strdup (token);
    }

  return NULL;
}

gboolean
fl_http_get_basic_auth (SoupServerMessage *msg,
                        char             **user,
                        char             **secret)
{
  const char *header;
  g_autofree guchar *decoded = NULL;
  gsize len = 0;
  char *colon;

  header = soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Authorization");
  if (header == NULL)
    return FALSE;
  while (*header == ' ')
    header++;
  if (g_ascii_strncasecmp (header, "Basic ", 6) != 0)
    return FALSE;
  header += 6;
  if (strlen (header) > 1024)
    return FALSE;

  decoded = g_base64_decode (header, &len);
  if (decoded == NULL || len == 0 || memchr (decoded, '\0', len) != NULL)
    return FALSE;

  decoded = g_realloc (decoded, len + 1);
  decoded[len] = '\0';
  colon = strchr ((char *) decoded, ':');
  if (colon == NULL)
    return FALSE;

  *colon = '\0';
  *user = g_strdup ((char *) decoded);
  *secret = g_strdup (colon + 1);

  return TRUE;
}

gboolean
fl_http_query_int64 (GHashTable  *query,
                     const char  *name,
                     gint64       default_value,
                     gint64       min,
                     gint64       max,
                     gint64      *value,
                     GError     **error)
{
  const char *text = query ? g_hash_table_lookup (query, name) : NULL;
  gint64 parsed;

  if (text == NULL || *text == '\0')
    {
      *value = default_value;
      return TRUE;
    }

  if (!g_ascii_string_to_signed (text, 10, min, max, &parsed, NULL))
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                   "Parameter “%s” must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                   name, min, max);
      return FALSE;
    }

  *value = parsed;
  return TRUE;
}

gboolean
fl_http_query_time (GHashTable  *query,
                    const char  *name,
                    gint64       default_value,
                    gint64      *value,
                    GError     **error)
{
  const char *text = query ? g_hash_table_lookup (query, name) : NULL;
  g_autoptr (GDateTime) dt = NULL;

  if (text == NULL || *text == '\0')
    {
      *value = default_value;
      return TRUE;
    }

  if (g_ascii_string_to_signed (text, 10, 0, G_GINT64_CONSTANT (253402300799999), value, NULL))
    return TRUE;

  dt = g_date_time_new_from_iso8601 (text, NULL);
  if (dt == NULL)
    {
      g_set_error (error, FL_API_ERROR, FL_API_ERROR_INVALID_PARAMETER,
                   "Parameter “%s” must be milliseconds since the Unix epoch or an ISO 8601 time with a zone",
                   name);
      return FALSE;
    }

  *value = g_date_time_to_unix (dt) * 1000 + g_date_time_get_microsecond (dt) / 1000;
  return TRUE;
}

gint64
fl_now_ms (void)
{
  return g_get_real_time () / 1000;
}
