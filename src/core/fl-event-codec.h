/* fl-event-codec.h: events from and to JSON, with validation and
 * normalisation as PLATFORM.md (Event) describes them. */
#pragma once

#include "fl-event.h"

G_BEGIN_DECLS

#define FL_CODEC_ERROR (fl_codec_error_quark ())

typedef enum {
  FL_CODEC_ERROR_MALFORMED,     /* not JSON, or not the JSON shape expected */
  FL_CODEC_ERROR_MISSING_FIELD, /* a required field is absent */
  FL_CODEC_ERROR_INVALID_FIELD, /* a field has the wrong type or value */
  FL_CODEC_ERROR_TOO_LARGE,     /* an event or body over its limit */
  FL_CODEC_ERROR_FORBIDDEN,     /* e.g. a device sending as another device */
} FlCodecError;

GQuark fl_codec_error_quark (void);

/* The lower_snake code the API puts in {"error": {"code"}} for a codec error. */
const char *fl_codec_error_code (const GError *error);

#define FL_EVENT_DEFAULT_MAX_EVENT_SIZE (64 * 1024)
#define FL_EVENT_DEFAULT_MAX_BODY_SIZE  (1024 * 1024)
#define FL_EVENT_MAX_ID_LENGTH          128

typedef struct {
  gsize       max_event_size;  /* bytes of one event's JSON; 0 = default */
  gint64      received_at;     /* ms; a missing timestamp becomes this */
  const char *device_id;       /* the authenticated sender, or NULL */
  gboolean    assign_ids;      /* give events without an id a new one */
} FlEventParseOptions;

/* Validates and normalises one event.  With options->device_id set, a
 * missing source becomes the device id and another source is refused.
 * (Serialises node and parses the text: one validator for both paths.) */
FlEvent    *fl_event_from_json_node (JsonNode                  *node,
                                     const FlEventParseOptions *options,
                                     GError                   **error);

/* One element of a batch: either event or error is set. */
typedef struct {
  guint    index;
  FlEvent *event;
  GError  *error;
} FlEventParseItem;

/* Parses a request body holding one event, a JSON array of events, or
 * NDJSON (one event per line), with a strict JSON scanner made for this
 * path (json-glib builds a tree per event, several times slower).  Returns an array of FlEventParseItem, one
 * per element in order (g_array_unref frees the events and errors
 * too); each element is
 * validated on its own, so good events survive bad neighbours.  Fails as
 * a whole only when the body is not JSON or not one of those shapes. */
GArray     *fl_event_parse_batch    (const char                *body,
                                     gsize                      length,
                                     const FlEventParseOptions *options,
                                     GError                   **error);

/* Parses one event from text (a JSON object). */
FlEvent    *fl_event_parse          (const char                *text,
                                     gsize                      length,
                                     const FlEventParseOptions *options,
                                     GError                   **error);

/* Appends value in decimal to out. */
void        fl_json_append_int      (GString    *out,
                                     gint64      value);

/* Appends str as a JSON string literal (quoted and escaped) to out. */
void        fl_json_append_string   (GString    *out,
                                     const char *str);

/* Serialises a node compactly. */
char       *fl_json_to_string       (JsonNode   *node,
                                     gsize      *length);

G_END_DECLS
