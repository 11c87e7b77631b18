/* fl-http.h: the relay's HTTP plumbing: its error domain, the one place a
 * GError becomes a status and {"error": {"code", "message"}}, JSON replies
 * and reading credentials from a request. */
#pragma once

#include <libsoup/soup.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define FL_API_ERROR (fl_api_error_quark ())

typedef enum {
  FL_API_ERROR_BAD_REQUEST,        /* 400 bad_request */
  FL_API_ERROR_INVALID_PARAMETER,  /* 400 invalid_parameter */
  FL_API_ERROR_INVALID_CURSOR,     /* 400 invalid_cursor */
  FL_API_ERROR_UNAUTHORIZED,       /* 401 unauthorized */
  FL_API_ERROR_FORBIDDEN,          /* 403 forbidden */
  FL_API_ERROR_NOT_FOUND,          /* 404 not_found */
  FL_API_ERROR_METHOD_NOT_ALLOWED, /* 405 method_not_allowed */
  FL_API_ERROR_CONFLICT,           /* 409 conflict */
  FL_API_ERROR_LENGTH_REQUIRED,    /* 411 length_required */
  FL_API_ERROR_TOO_LARGE,          /* 413 too_large */
  FL_API_ERROR_UNSUPPORTED_MEDIA,  /* 415 unsupported_media_type */
  FL_API_ERROR_UNPROCESSABLE,      /* 422 unprocessable */
  FL_API_ERROR_TOO_MANY_REQUESTS,  /* 429 too_many_requests */
  FL_API_ERROR_UNAVAILABLE,        /* 503 unavailable */
  FL_API_ERROR_INTERNAL,           /* 500 internal */
} FlApiError;

GQuark      fl_api_error_quark       (void);

/* Maps an error of any domain the relay meets to an HTTP status and the
 * API's lower_snake code. */
guint       fl_api_error_status      (const GError *error,
                                      const char  **code);

/* {"code","message"} for error, the object inside every error reply and
 * message; appends to out. */
void        fl_api_error_append_object (const GError *error,
                                        GString      *out);
/* {"error":{"code","message"}} for error; appends to out. */
void        fl_api_error_append_json (const GError *error,
                                      GString      *out);

void        fl_http_reply_error      (SoupServerMessage *msg,
                                      const GError      *error);
void        fl_http_reply_json       (SoupServerMessage *msg,
                                      guint              status,
                                      GString           *json);
void        fl_http_reply_text       (SoupServerMessage *msg,
                                      guint              status,
                                      const char        *content_type,
                                      GString           *text);

/* The token of an "Authorization: Bearer" header, or of ?token= when
 * allow_query is set; NULL when there is none. */
char       *fl_http_dup_bearer_token (SoupServerMessage *msg,
                                      GHashTable        *query,
                                      gboolean           allow_query);
/* Splits "Authorization: Basic base64(user:secret)". */
gboolean    fl_http_get_basic_auth   (SoupServerMessage *msg,
                                      char             **user,
                                      char             **secret);

/* Query parameters as integers, with a clear error for bad ones. */
gboolean    fl_http_query_int64      (GHashTable  *query,
                                      const char  *name,
                                      gint64       default_value,
                                      gint64       min,
                                      gint64       max,
                                      gint64      *value,
                                      GError     **error);
/* A time: integer milliseconds since the epoch or ISO 8601. */
gboolean    fl_http_query_time       (GHashTable  *query,
                                      const char  *name,
                                      gint64       default_value,
                                      gint64      *value,
                                      GError     **error);

gint64      fl_now_ms                (void);

G_END_DECLS
