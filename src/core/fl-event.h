/* fl-event.h: one event, as devices send it and the relay stores it.
 *
 * An FlEvent is immutable once normalised, except for the two fields the
 * store assigns (seq and receivedAt), and is shared by reference between
 * threads.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define FL_TYPE_EVENT (fl_event_get_type ())

typedef struct _FlEvent FlEvent;

GType        fl_event_get_type        (void) G_GNUC_CONST;

FlEvent     *fl_event_new             (const char *id,
                                       gint64      timestamp,
                                       const char *source,
                                       const char *event_type,
                                       JsonObject *data,
                                       JsonObject *metadata);
FlEvent     *fl_event_ref             (FlEvent    *self);
void         fl_event_unref           (FlEvent    *self);

const char  *fl_event_get_id          (const FlEvent *self);
gint64       fl_event_get_timestamp   (const FlEvent *self);
const char  *fl_event_get_source      (const FlEvent *self);
const char  *fl_event_get_event_type  (const FlEvent *self);
/* Parsed on first use (thread-safe); treat them as read-only. */
JsonObject  *fl_event_get_data        (const FlEvent *self);
JsonObject  *fl_event_get_metadata    (const FlEvent *self);
gint64       fl_event_get_seq         (const FlEvent *self);
gint64       fl_event_get_received_at (const FlEvent *self);

/* Set by the store when it accepts the event; seq 0 means "not stored". */
void         fl_event_set_seq         (FlEvent    *self,
                                       gint64      seq);
void         fl_event_set_received_at (FlEvent    *self,
                                       gint64      received_at);

/* The normalised JSON text of the event, including seq and receivedAt
 * when set.  Built on first use and cached; call it again after changing
 * seq or receivedAt only through the setters (they drop the cache). */
const char  *fl_event_get_json        (FlEvent    *self);
gsize        fl_event_get_json_length (FlEvent    *self);
JsonNode    *fl_event_to_json_node    (const FlEvent *self);

/* The data object's JSON text (compact), and the metadata object's (NULL
 * when the event has none).  Cheap: events keep their text, and parse it
 * into JsonObjects only when fl_event_get_data() is first called. */
const char  *fl_event_get_data_json     (const FlEvent *self,
                                         gsize         *length);
const char  *fl_event_get_metadata_json (const FlEvent *self);

/* The scalar members at the top level of data: every number is a metric
 * that can be charted and used in alert rules, and strings carry the
 * well-known text fields (firmware, model, ...). */
typedef struct {
  const char *name;
  const char *text;    /* a string member, or NULL for a number */
  double      number;  /* a number member */
} FlEventField;

guint               fl_event_get_n_fields (const FlEvent *self);
const FlEventField *fl_event_get_field    (const FlEvent *self,
                                           guint          index);

/* A numeric member of data, for charts and alert rules. */
gboolean     fl_event_get_metric      (const FlEvent *self,
                                       const char    *name,
                                       double        *value);
/* A string member of data, or NULL. */
const char  *fl_event_get_text        (const FlEvent *self,
                                       const char    *name);

/* Builds an event from parts already validated (the codec's fast path):
 * data_json and metadata_json must be compact JSON objects; fields the
 * scalar members of data.  Everything is copied. */
FlEvent     *_fl_event_new_from_parts (const char         *id,
                                       gint64              timestamp,
                                       const char         *source,
                                       const char         *event_type,
                                       const char         *data_json,
                                       gsize               data_len,
                                       const char         *metadata_json,
                                       gsize               metadata_len,
                                       const FlEventField *fields,
                                       guint               n_fields);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlEvent, fl_event_unref)

G_END_DECLS
