/* fl-device-channel.h: one device's WebSocket to the relay (GET /device,
 * HTTP Basic on the upgrade).  Open one with
 * fl_client_open_device_channel_async().
 *
 * The device sends batches of events and gets one ack per batch, in the
 * order it sent them; the relay pushes commands.  A channel is used once:
 * after "closed" it stays closed, and the device opens a new one.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "fl-client.h"

G_BEGIN_DECLS

#define FL_TYPE_DEVICE_CHANNEL (fl_device_channel_get_type ())
G_DECLARE_FINAL_TYPE (FlDeviceChannel, fl_device_channel, FL, DEVICE_CHANNEL, GObject)

#define FL_DEVICE_CHANNEL_DEFAULT_KEEPALIVE_SEC 20

const char     *fl_device_channel_get_device_id   (FlDeviceChannel *self);
gboolean        fl_device_channel_is_open         (FlDeviceChannel *self);
/* Batches sent and not acknowledged yet. */
guint           fl_device_channel_get_n_pending   (FlDeviceChannel *self);
/* Why the channel closed (FL_CLIENT_ERROR_NETWORK for a lost connection
 * or a peer that stopped answering pings), or NULL after a clean close. */
const GError   *fl_device_channel_get_error       (FlDeviceChannel *self);

/* Pings every interval seconds (0 turns it off) and closes the channel
 * when nothing, not even a pong, arrives for three intervals. */
void            fl_device_channel_set_keepalive   (FlDeviceChannel *self,
                                                   guint            interval);

/* Sends events (FlEvents of this device) as one batch.  Completes when
 * the relay acknowledges the batch, or with FL_CLIENT_ERROR_NETWORK when
 * the channel closes first; the events may or may not have been stored
 * then, so resend them with the same ids. */
void            fl_device_channel_send_events_async  (FlDeviceChannel     *self,
                                                      GPtrArray           *events,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
FlIngestResult *fl_device_channel_send_events_finish (FlDeviceChannel  *self,
                                                      GAsyncResult     *result,
                                                      GError          **error);

/* Sends any other message (e.g. a command result); fire and forget. */
void            fl_device_channel_send_message    (FlDeviceChannel *self,
                                                   JsonObject      *message);

/* Starts a clean close; "closed" follows. */
void            fl_device_channel_close           (FlDeviceChannel *self);

G_END_DECLS
