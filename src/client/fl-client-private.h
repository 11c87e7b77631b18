/* fl-client-private.h: helpers shared by fl-client.c and
 * fl-device-channel.c. */
#pragma once

#include <libsoup/soup.h>

#include "fl-client.h"
#include "fl-device-channel.h"

G_BEGIN_DECLS

/* A GError for a reply that is not 2xx: status, the API's error body
 * (may be NULL) and Retry-After. */
GError          *_fl_client_error_new_for_status  (guint        status,
                                                   const char  *reason,
                                                   GBytes      *body,
                                                   guint        retry_after);
/* A FL_CLIENT_ERROR_NETWORK error wrapping a transport error; a
 * cancellation is passed on as it is.  Takes ownership of error. */
GError          *_fl_client_error_new_network     (GError      *error);
GError          *_fl_client_error_new             (FlClientError  code,
                                                   const char    *api_code,
                                                   guint          http_status,
                                                   const char    *format,
                                                   ...) G_GNUC_PRINTF (4, 5);

/* {accepted, duplicates, rejected: [{index, error: {code, message} | string}]} */
FlIngestResult  *_fl_ingest_result_new_from_json  (JsonObject  *object,
                                                   GError     **error);

/* The events' JSON texts as one JSON array. */
GBytes          *_fl_events_to_json_array         (GPtrArray   *events);

/* Safe readers of outside JSON: NULL or the default when the member is
 * missing or has another type. */
/* The API's device and event JSON, validated (FL_CLIENT_ERROR_PROTOCOL);
 * shared by the REST client and the live stream. */
FlDevice        *_fl_client_device_from_json      (JsonNode    *node,
                                                   GError     **error);
FlEvent         *_fl_client_event_from_json       (JsonNode    *node,
                                                   GError     **error);
const char      *_fl_json_get_string              (JsonObject  *object,
                                                   const char  *member);
gboolean         _fl_json_get_int                 (JsonObject  *object,
                                                   const char  *member,
                                                   gint64      *value);
JsonObject      *_fl_json_get_object              (JsonObject  *object,
                                                   const char  *member);
JsonArray       *_fl_json_get_array               (JsonObject  *object,
                                                   const char  *member);

FlDeviceChannel *_fl_device_channel_new           (SoupWebsocketConnection *connection,
                                                   const char              *device_id);

G_END_DECLS
