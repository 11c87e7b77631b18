/* fl-sim.c: the device simulator's engine.
 *
 * One 50 ms tick drives everything: it spends the rate budget on events
 * round-robin across the devices that are not silent, adds heartbeats,
 * runs the flaky devices' episodes and hands each device's queue to its
 * transport.  A device has at most one batch in flight; the batch stays
 * at the head of its queue until the relay answers, so a failure only
 * means sending the same events (same ids) again.
 */
#define G_LOG_DOMAIN "fl-sim"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "fieldline-client.h"
#include "fl-sim-model.h"
#include "fl-sim.h"

#define TICK_MS 50
#define PROVISION_CONCURRENCY 8
#define MAX_REJECTION_WARNINGS 10
#define STATE_VERSION 1

G_DEFINE_QUARK (fl - sim - error - quark, fl_sim_error)

typedef enum
{
  MODE_NORMAL,
  MODE_DROPPED, /* connection dropped; still measuring and queueing */
  MODE_SILENT,  /* off the air: nothing measured, nothing sent */
} DeviceMode;

typedef struct
{
  FlSim      *sim; /* not a reference: the sim owns us */
  FlSimModel *model;
  char       *secret;

  GQueue queue;     /* FlEvents, oldest first */
  guint  in_flight; /* events at the head sent and unanswered */
  guint  sent_once; /* events at the head sent at least once */
  guint  max_batch;
  guint  send_generation;

  FlDeviceChannel *channel;
  gboolean         connecting;
  gboolean         ever_connected;
  gboolean         needs_provision;
  gboolean         provisioning;
  gboolean         waiting;  /* HTTP: in the ready queue */
  guint            attempts; /* failures in a row, for the backoff */
  guint            retry_id;

  gboolean   flaky;
  DeviceMode mode;
  gint64     mode_until;   /* monotonic µs */
  gint64     next_episode; /* monotonic µs */
} SimDevice;

typedef enum
{
  STATE_IDLE,
  STATE_STARTING,
  STATE_STREAMING,
  STATE_FLUSHING,
  STATE_CLOSING,
  STATE_DONE,
} SimState;

struct _FlSim
{
  GObject parent_instance;

  /* options */
  char          *url;
  char          *username;
  char          *password;
  char          *prefix;
  char          *state_file;
  guint          n_devices;
  double         rate;
  FlSimTransport transport;
  double         flaky_fraction;
  guint          http_connections;
  guint          max_queue;
  guint          max_batch;
  guint          backoff_initial_ms;
  guint          backoff_max_ms;
  guint          flush_timeout_ms;
  guint          heartbeat_sec;
  guint          keepalive_sec;
  guint          backfill_sec;

  FlClient  *client;
  GRand     *rand;
  GPtrArray *devices; /* SimDevice */
  SimState   state;

  GTask        *run_task;
  GCancellable *cancellable;     /* ours: cancelled when closing */
  GCancellable *run_cancellable; /* the caller's */
  gulong        run_cancelled_id;
  guint         cancel_idle_id;
  gboolean      cancelled;
  GError       *error;

  /* every async call in flight but device channel sends, which the
   * channels answer when they close */
  guint outstanding;
  guint open_channels;

  JsonObject *state_doc;
  gboolean    saving;
  gboolean    save_again;

  guint provision_next;

  guint  tick_id;
  gint64 last_tick;
  double budget;
  guint  round_robin;
  gint64 flush_deadline;

  GQueue ready; /* HTTP: SimDevices with a batch to send */
  guint  http_active;

  guint      rejection_warnings;
  FlSimStats stats;
};

G_DEFINE_FINAL_TYPE (FlSim, fl_sim, G_TYPE_OBJECT)

enum
{
  READY,
  EVENT_GENERATED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void kick (SimDevice *device);
static void begin_close (FlSim   *self,
                         gboolean cancelled);
static void check_done (FlSim *self);
static void provision_device (SimDevice *device);
static void save_state (FlSim *self);

/* ---- JSON of the state file ------------------------------------------- */

static JsonObject *
json_get_object (JsonObject *object,
                 const char *member)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, member) : NULL;

  return node != NULL && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

static const char *
json_get_string (JsonObject *object,
                 const char *member)
{
  JsonNode *node = object != NULL ? json_object_get_member (object, member) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/* ---- devices ----------------------------------------------------------- */

static const char *
device_id (SimDevice *device)
{
  return fl_sim_model_get_device_id (device->model);
}

static SimDevice *
sim_device_new (FlSim      *sim,
                const char *id)
{
  SimDevice *device = g_new0 (SimDevice, 1);

  device->sim = sim;
  device->model = fl_sim_model_new (id);
  device->max_batch = sim->max_batch;
  g_queue_init (&device->queue);

  return device;
}

static void
sim_device_free (SimDevice *device)
{
  g_clear_handle_id (&device->retry_id, g_source_remove);
  if (device->channel != NULL)
    {
      g_signal_handlers_disconnect_by_data (device->channel, device);
      fl_device_channel_close (device->channel);
      g_clear_object (&device->channel);
    }
  g_queue_clear_full (&device->queue, (GDestroyNotify) fl_event_unref);
  g_clear_pointer (&device->model, fl_sim_model_free);
  g_clear_pointer (&device->secret, g_free);
  g_free (device);
}

static gboolean
device_is_connected (SimDevice *device)
{
  if (device->sim->transport == FL_SIM_TRANSPORT_WEBSOCKET)
    return device->channel != NULL && fl_device_channel_is_open (device->channel);

  return device->mode == MODE_NORMAL && device->retry_id == 0 && !device->needs_provision && device->secret != NULL;
}

static void
enqueue (SimDevice *device,
         FlEvent   *event)
{
  FlSim *self = device->sim;

  self->stats.generated++;
  if (g_signal_has_handler_pending (self, signals[EVENT_GENERATED], 0, FALSE))
    g_signal_emit (self, signals[EVENT_GENERATED], 0, event);

  /* A full queue loses its oldest event that is not in flight */
  if (device->queue.length >= self->max_queue && device->in_flight < device->queue.length)
    {
      FlEvent *oldest = g_queue_pop_nth (&device->queue, device->in_flight);

      if (device->in_flight < device->sent_once)
        device->sent_once--;
      fl_event_unref (oldest);
      self->stats.dropped++;
    }

  g_queue_push_tail (&device->queue, event);
}

/* ---- backoff ----------------------------------------------------------- */

static gboolean
retry_cb (gpointer user_data)
{
  SimDevice *device = user_data;

  device->retry_id = 0;
  kick (device);

  return G_SOURCE_REMOVE;
}

static void
schedule_retry (SimDevice *device,
                guint      at_least_ms)
{
  FlSim  *self = device->sim;
  guint64 delay;

  if (device->retry_id != 0 || self->state >= STATE_CLOSING)
    return;

  /* exponential, capped, with jitter: between half and all of it */
  delay = (guint64) self->backoff_initial_ms << MIN (device->attempts, 20u);
  delay = MIN (delay, (guint64) self->backoff_max_ms);
  delay = delay / 2 + (guint64) g_rand_double_range (self->rand, 0, delay / 2.0 + 1);
  delay = MAX (delay, (guint64) at_least_ms);
  device->attempts++;

  g_debug ("%s: retrying in %" G_GUINT64_FORMAT " ms", device_id (device), delay);
  device->retry_id = g_timeout_add ((guint) delay, retry_cb, device);
}

/* ---- acknowledgements -------------------------------------------------- */

static void
check_flushed (FlSim *self)
{
  if (self->state != STATE_FLUSHING)
    return;

  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      if (device->queue.length > 0 || device->in_flight > 0)
        return;
    }

  g_debug ("Everything acknowledged");
  begin_close (self, FALSE);
}

static void
complete_batch (SimDevice      *device,
                guint           count,
                FlIngestResult *result)
{
  FlSim *self = device->sim;

  count = MIN (count, device->queue.length);
  for (guint i = 0; i < count; i++)
    fl_event_unref (g_queue_pop_head (&device->queue));
  device->sent_once -= MIN (device->sent_once, count);

  self->stats.acked += count;
  self->stats.accepted += result->accepted;
  self->stats.duplicates += result->duplicates;
  self->stats.rejected += result->rejected->len;

  if (result->accepted + result->duplicates + result->rejected->len != count)
    g_debug ("%s: %u events answered as %u accepted, %u duplicates, %u rejected",
             device_id (device), count, result->accepted, result->duplicates,
             result->rejected->len);

  for (guint i = 0; i < result->rejected->len; i++)
    {
      FlIngestRejection *rejection = &g_array_index (result->rejected, FlIngestRejection, i);

      if (self->rejection_warnings++ < MAX_REJECTION_WARNINGS)
        g_warning ("The relay rejected event %u of %s: %s%s%s", rejection->index,
                   device_id (device), rejection->message,
                   rejection->code != NULL ? " — " : "",
                   rejection->code != NULL ? rejection->code : "");
    }
}

/* One async call for a device; holds the sim alive (and so the device) */
typedef struct
{
  SimDevice *device;
  guint      generation;
  guint      count;
} DeviceOp;

static GPtrArray *
take_batch (SimDevice *device)
{
  FlSim     *self = device->sim;
  guint      count = MIN (device->queue.length, device->max_batch);
  GPtrArray *events = g_ptr_array_new_full (count, (GDestroyNotify) fl_event_unref);
  GList     *link = device->queue.head;

  for (guint i = 0; i < count; i++, link = link->next)
    g_ptr_array_add (events, fl_event_ref (link->data));

  self->stats.sent += count;
  self->stats.resent += MIN (count, device->sent_once);
  device->sent_once = MAX (device->sent_once, count);
  device->in_flight = count;

  return events;
}

static DeviceOp *
device_op_new (SimDevice *device)
{
  DeviceOp *op = g_new0 (DeviceOp, 1);

  op->device = device;
  g_object_ref (device->sim);

  return op;
}

/* a batch of count events, the device's newest send */
static DeviceOp *
send_op_new (SimDevice *device,
             guint      count)
{
  DeviceOp *op = device_op_new (device);

  op->generation = ++device->send_generation;
  op->count = count;

  return op;
}

static void
device_op_free (DeviceOp *op)
{
  g_object_unref (op->device->sim);
  g_free (op);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DeviceOp, device_op_free)

/* ---- WebSocket transport ----------------------------------------------- */

static void
channel_closed_cb (FlDeviceChannel *channel,
                   SimDevice       *device)
{
  FlSim        *self = device->sim;
  const GError *error = fl_device_channel_get_error (channel);

  g_debug ("%s: channel closed%s%s", device_id (device),
           error != NULL ? ": " : "", error != NULL ? error->message : "");

  g_signal_handlers_disconnect_by_data (channel, device);
  if (device->channel == channel)
    g_clear_object (&device->channel);
  self->open_channels--;

  /* whatever was in flight is resent on the next channel */
  device->in_flight = 0;
  device->send_generation++;

  if (self->state >= STATE_CLOSING)
    {
      check_done (self);
      return;
    }

  /* a credential problem shows on the next connect, as a 401 */
  if (error != NULL)
    self->stats.failures++;

  if (device->mode == MODE_NORMAL)
    schedule_retry (device, 0);
}

static void
connect_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (DeviceOp) op = user_data;
  SimDevice           *device = op->device;
  FlSim               *self = device->sim;
  g_autoptr (GError)   error = NULL;
  FlDeviceChannel     *channel;

  channel = fl_client_open_device_channel_finish (FL_CLIENT (object), result, &error);
  device->connecting = FALSE;
  self->outstanding--;

  if (channel == NULL)
    {
      if (self->state < STATE_CLOSING)
        {
          g_debug ("%s: cannot connect: %s", device_id (device), error->message);
          self->stats.failures++;
          if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED))
            device->needs_provision = TRUE;
          schedule_retry (device, fl_client_error_get_retry_after (error) * 1000);
        }
      check_done (self);
      return;
    }

  device->channel = channel;
  self->open_channels++;
  g_signal_connect (channel, "closed", G_CALLBACK (channel_closed_cb), device);

  if (self->state >= STATE_CLOSING || device->mode != MODE_NORMAL)
    {
      fl_device_channel_close (channel);
      return;
    }

  g_debug ("%s: connected", device_id (device));
  if (device->ever_connected)
    self->stats.reconnects++;
  device->ever_connected = TRUE;
  device->attempts = 0;
  fl_device_channel_set_keepalive (channel, self->keepalive_sec);

  kick (device);
}

/* The relay refused a batch as a whole: sending it again would be
 * refused again, so its events leave the queue. */
static void
drop_refused_batch (SimDevice    *device,
                    guint         count,
                    const GError *error)
{
  FlSim *self = device->sim;

  g_warning ("The relay refused a batch of %u events from %s: %s",
             count, device_id (device), error->message);
  for (guint i = 0; i < count && device->queue.length > 0; i++)
    fl_event_unref (g_queue_pop_head (&device->queue));
  device->sent_once -= MIN (device->sent_once, count);
  self->stats.rejected += count;
}

static void
ws_send_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (DeviceOp)       op = user_data;
  SimDevice                 *device = op->device;
  FlSim                     *self = device->sim;
  g_autoptr (FlIngestResult) ack = NULL;
  g_autoptr (GError)         error = NULL;

  ack = fl_device_channel_send_events_finish (FL_DEVICE_CHANNEL (object), result, &error);

  /* answered after its channel closed: the events are queued again */
  if (op->generation != device->send_generation)
    return;

  device->in_flight = 0;

  if (ack == NULL)
    {
      if (self->state >= STATE_CLOSING || g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_NETWORK))
        return; /* "closed" handles it */

      /* the relay refused the batch as a whole: sending it again would
       * be refused again */
      drop_refused_batch (device, op->count, error);
    }
  else
    complete_batch (device, op->count, ack);

  kick (device);
  check_flushed (self);
}

static void
ws_kick (SimDevice *device)
{
  FlSim                *self = device->sim;
  g_autoptr (GPtrArray) events = NULL;

  if (device->channel == NULL)
    {
      if (device->connecting || device->mode != MODE_NORMAL)
        return;

      device->connecting = TRUE;
      self->outstanding++;
      fl_client_open_device_channel_async (self->client, device_id (device), device->secret,
                                           self->cancellable, connect_cb,
                                           device_op_new (device));
      return;
    }

  if (device->in_flight > 0 || device->queue.length == 0 || !fl_device_channel_is_open (device->channel))
    return;

  events = take_batch (device);
  fl_device_channel_send_events_async (device->channel, events, NULL, ws_send_cb,
                                       send_op_new (device, events->len));
}

/* ---- HTTP transport ---------------------------------------------------- */

static void http_pump (FlSim *self);

static void
http_send_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr (DeviceOp)       op = user_data;
  SimDevice                 *device = op->device;
  FlSim                     *self = device->sim;
  g_autoptr (FlIngestResult) ack = NULL;
  g_autoptr (GError)         error = NULL;

  ack = fl_client_ingest_finish (FL_CLIENT (object), result, &error);
  self->outstanding--;
  self->http_active--;

  if (op->generation == device->send_generation)
    device->in_flight = 0;

  if (self->state >= STATE_CLOSING)
    {
      check_done (self);
      return;
    }

  if (ack != NULL)
    {
      complete_batch (device, op->count, ack);
      device->attempts = 0;
    }
  else if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_UNAUTHORIZED))
    {
      self->stats.failures++;
      device->needs_provision = TRUE;
    }
  else if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_TOO_LARGE) && device->max_batch > 1)
    {
      self->stats.failures++;
      device->max_batch = MAX (device->max_batch / 2, 1u);
      g_debug ("%s: batches of %u events now", device_id (device), device->max_batch);
    }
  else if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_BAD_REQUEST) || g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_INVALID) || g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_FORBIDDEN) || g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_TOO_LARGE))
    {
      self->stats.failures++;
      drop_refused_batch (device, op->count, error);
    }
  else
    {
      g_debug ("%s: %s", device_id (device), error->message);
      self->stats.failures++;
      schedule_retry (device, fl_client_error_get_retry_after (error) * 1000);
    }

  kick (device);
  http_pump (self);
  check_flushed (self);
}

static void
http_pump (FlSim *self)
{
  SimDevice *device;

  while (self->http_active < self->http_connections && (device = g_queue_pop_head (&self->ready)) != NULL)
    {
      g_autoptr (GPtrArray) events = NULL;

      device->waiting = FALSE;
      if (device->in_flight > 0 || device->queue.length == 0 || device->retry_id != 0 || device->needs_provision || device->mode != MODE_NORMAL)
        continue;

      events = take_batch (device);
      self->http_active++;
      self->outstanding++;
      fl_client_ingest_async (self->client, device_id (device), device->secret, events,
                              self->cancellable, http_send_cb,
                              send_op_new (device, events->len));
    }
}

static void
http_kick (SimDevice *device)
{
  if (device->waiting || device->in_flight > 0 || device->queue.length == 0 || device->mode != MODE_NORMAL)
    return;

  device->waiting = TRUE;
  g_queue_push_tail (&device->sim->ready, device);
}

/* Moves a device on: provisioning, connecting or sending as needed. */
static void
kick (SimDevice *device)
{
  FlSim *self = device->sim;

  if (self->state != STATE_STREAMING && self->state != STATE_FLUSHING)
    return;
  if (device->retry_id != 0 || device->mode == MODE_SILENT)
    return;

  if (device->needs_provision)
    {
      if (!device->provisioning)
        provision_device (device);
      return;
    }

  if (self->transport == FL_SIM_TRANSPORT_WEBSOCKET)
    ws_kick (device);
  else
    http_kick (device);
}

/* ---- flaky devices ----------------------------------------------------- */

static gint64
random_us (FlSim *self,
           double min_sec,
           double max_sec)
{
  return (gint64) (g_rand_double_range (self->rand, min_sec, max_sec) * G_USEC_PER_SEC);
}

static void
run_episodes (FlSim *self,
              gint64 now)
{
  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      if (!device->flaky)
        continue;

      if (device->mode == MODE_NORMAL && now >= device->next_episode)
        {
          gboolean silent = g_rand_boolean (self->rand);

          /* a drop is short; a silence outlasts the heartbeat timeout,
           * so the relay sees the device go offline */
          device->mode = silent ? MODE_SILENT : MODE_DROPPED;
          device->mode_until = now + (silent ? random_us (self, 75, 150) : random_us (self, 5, 30));
          g_debug ("%s: %s for %" G_GINT64_FORMAT " s", device_id (device),
                   silent ? "silent" : "dropping its connection",
                   (device->mode_until - now) / G_USEC_PER_SEC);
          if (device->channel != NULL)
            fl_device_channel_close (device->channel);
        }
      else if (device->mode != MODE_NORMAL && now >= device->mode_until)
        {
          if (device->mode == MODE_SILENT)
            {
              fl_sim_model_reboot (device->model, "watchdog_reset");
              enqueue (device, fl_sim_model_next_event (device->model,
                                                        g_get_real_time () / 1000,
                                                        self->rand));
            }
          g_debug ("%s: back", device_id (device));
          device->mode = MODE_NORMAL;
          device->next_episode = now + random_us (self, 60, 180);
          kick (device);
        }
    }
}

/* ---- the tick ---------------------------------------------------------- */

static void
generate (FlSim *self,
          gint64 now_ms,
          double dt)
{
  gint64 heartbeat_ms = (gint64) self->heartbeat_sec * 1000;
  guint  n;

  self->budget = MIN (self->budget + self->rate * dt, MAX (self->rate, 1.0));
  n = (guint) self->budget;
  self->budget -= n;

  for (guint k = 0; k < n; k++)
    {
      SimDevice *device = NULL;
      /* spread timestamps over the tick */
      gint64 ts = now_ms - (gint64) ((n - 1 - k) * dt * 1000.0 / n);

      for (guint tries = 0; tries < self->devices->len && device == NULL; tries++)
        {
          SimDevice *candidate = g_ptr_array_index (self->devices,
                                                    self->round_robin++ % self->devices->len);

          if (candidate->mode != MODE_SILENT)
            device = candidate;
        }
      if (device == NULL)
        break;

      if (ts - fl_sim_model_get_last_heartbeat (device->model) >= heartbeat_ms)
        enqueue (device, fl_sim_model_heartbeat (device->model, ts));
      else
        enqueue (device, fl_sim_model_next_event (device->model, ts, self->rand));
    }

  /* a device the rate leaves quiet still beats */
  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      if (device->mode != MODE_SILENT && now_ms - fl_sim_model_get_last_heartbeat (device->model) >= heartbeat_ms)
        enqueue (device, fl_sim_model_heartbeat (device->model, now_ms));
    }
}

static gboolean
tick_cb (gpointer user_data)
{
  FlSim *self = user_data;
  gint64 now = g_get_monotonic_time ();
  double dt = (now - self->last_tick) / (double) G_USEC_PER_SEC;

  self->last_tick = now;

  if (self->state == STATE_STREAMING)
    {
      run_episodes (self, now);
      generate (self, g_get_real_time () / 1000, dt);
    }

  for (guint i = 0; i < self->devices->len; i++)
    kick (g_ptr_array_index (self->devices, i));
  if (self->transport == FL_SIM_TRANSPORT_HTTP)
    http_pump (self);

  if (self->state == STATE_FLUSHING)
    {
      check_flushed (self);
      if (self->state == STATE_FLUSHING && now >= self->flush_deadline)
        {
          FlSimStats stats;

          fl_sim_get_stats (self, &stats);
          g_message ("Stopping with %u events not acknowledged", stats.queued);
          begin_close (self, FALSE);
        }
    }

  return G_SOURCE_CONTINUE;
}

/* History first: each device's last backfill_sec seconds at its share of
 * the rate (at most half its queue, spread wider when the rate asks for
 * more), so that a new lab has charts and events to show at once.  The
 * first event of each is its power-on status. */
static void
backfill (FlSim *self,
          gint64 now_ms)
{
  gint64 span_ms = (gint64) self->backfill_sec * 1000;
  double per_device = MAX (self->rate, 1.0) / self->devices->len;
  guint  n = (guint) MIN (self->backfill_sec * per_device, self->max_queue / 2.0);
  gint64 step_ms;

  if (n == 0)
    return;
  step_ms = MAX (span_ms / n, 1);

  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);
      /* devices do not all speak on the same millisecond */
      gint64     offset = g_rand_int_range (self->rand, 0, (gint32) MIN (step_ms, G_MAXINT32));

      for (guint k = 0; k < n; k++)
        enqueue (device, fl_sim_model_next_event (device->model, now_ms - span_ms + (gint64) k * step_ms + offset,
                                                  self->rand));
    }
  g_debug ("Backfilling %u s: %u events from each device", self->backfill_sec, n);
}

static void
start_streaming (FlSim *self)
{
  gint64             now = g_get_monotonic_time ();
  gint64             now_ms = g_get_real_time () / 1000;
  g_autoptr (GArray) order = g_array_sized_new (FALSE, FALSE, sizeof (guint), self->devices->len);
  guint              n_flaky = (guint) round (self->flaky_fraction * self->devices->len);

  self->state = STATE_STREAMING;
  self->last_tick = now;

  /* which devices are flaky: a random choice of exactly n_flaky */
  for (guint i = 0; i < self->devices->len; i++)
    g_array_append_val (order, i);
  for (guint i = 0; i < n_flaky; i++)
    {
      guint      j = g_rand_int_range (self->rand, (gint32) i, (gint32) order->len);
      guint      tmp = g_array_index (order, guint, i);
      SimDevice *device;

      g_array_index (order, guint, i) = g_array_index (order, guint, j);
      g_array_index (order, guint, j) = tmp;

      device = g_ptr_array_index (self->devices, g_array_index (order, guint, i));
      device->flaky = TRUE;
      device->next_episode = now + random_us (self, 10, 90);
    }

  /* everything powers on: each device says what it is (after its
   * history, if asked for) */
  if (self->backfill_sec > 0)
    backfill (self, now_ms - 1000);
  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      enqueue (device, fl_sim_model_next_event (device->model, now_ms, self->rand));
      kick (device);
    }
  if (self->transport == FL_SIM_TRANSPORT_HTTP)
    http_pump (self);

  self->tick_id = g_timeout_add (TICK_MS, tick_cb, self);

  g_debug ("Streaming from %u devices (%u flaky) at %.1f events/s over %s",
           self->devices->len, n_flaky, self->rate,
           self->transport == FL_SIM_TRANSPORT_HTTP ? "HTTP" : "WebSocket");
  g_signal_emit (self, signals[READY], 0);
}

/* ---- state file -------------------------------------------------------- */

static void
load_state_thread (GTask        *task,
                   gpointer      source_object,
                   gpointer      task_data,
                   GCancellable *cancellable)
{
  const char        *path = task_data;
  g_autoptr (GError) error = NULL;
  g_autofree char   *contents = NULL;
  gsize              length;

  if (!g_file_get_contents (path, &contents, &length, &error))
    {
      if (g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_task_return_pointer (task, NULL, NULL);
      else
        g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_task_return_pointer (task, g_bytes_new_take (g_steal_pointer (&contents), length),
                         (GDestroyNotify) g_bytes_unref);
}

static void
save_state_thread (GTask        *task,
                   gpointer      source_object,
                   gpointer      task_data,
                   GCancellable *cancellable)
{
  GBytes            *bytes = task_data;
  FlSim             *self = source_object;
  g_autofree char   *dir = g_path_get_dirname (self->state_file);
  g_autoptr (GError) error = NULL;
  gsize              length;
  const char        *data = g_bytes_get_data (bytes, &length);

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, FL_SIM_ERROR, FL_SIM_ERROR_STATE_FILE,
                               "Cannot create %s: %s", dir, g_strerror (saved_errno));
      return;
    }

  if (!g_file_set_contents_full (self->state_file, data, (gssize) length,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    {
      g_task_return_new_error (task, FL_SIM_ERROR, FL_SIM_ERROR_STATE_FILE,
                               "Cannot save the device secrets: %s", error->message);
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
save_state_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  FlSim             *self = FL_SIM (object);
  g_autoptr (GError) error = NULL;

  self->saving = FALSE;
  self->outstanding--;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    g_warning ("%s", error->message);
  else
    g_debug ("Saved %s", self->state_file);

  if (self->save_again)
    {
      self->save_again = FALSE;
      save_state (self);
    }

  check_done (self);
}

static void
save_state (FlSim *self)
{
  g_autoptr (GTask)    task = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject          *devices;
  char                *text;
  gsize                length;

  if (self->saving)
    {
      self->save_again = TRUE;
      return;
    }

  if (self->state_doc == NULL)
    self->state_doc = json_object_new ();

  json_object_set_int_member (self->state_doc, "version", STATE_VERSION);
  json_object_set_string_member (self->state_doc, "url", self->url);

  devices = json_get_object (self->state_doc, "devices");
  if (devices == NULL)
    {
      devices = json_object_new ();
      json_object_set_object_member (self->state_doc, "devices", devices);
    }

  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice  *device = g_ptr_array_index (self->devices, i);
      JsonObject *entry;

      if (device->secret == NULL)
        continue;

      entry = json_object_new ();
      json_object_set_string_member (entry, "deviceSecret", device->secret);
      json_object_set_object_member (devices, device_id (device), entry);
    }

  node = json_node_new (JSON_NODE_OBJECT);
  json_node_set_object (node, self->state_doc);
  text = fl_json_to_string (node, &length);

  self->saving = TRUE;
  self->outstanding++;

  task = g_task_new (self, NULL, save_state_cb, NULL);
  g_task_set_source_tag (task, save_state);
  g_task_set_task_data (task, g_bytes_new_take (text, length), (GDestroyNotify) g_bytes_unref);
  g_task_run_in_thread (task, save_state_thread);
}

/* ---- provisioning ------------------------------------------------------ */

static void provision_pump (FlSim *self);

static void
fail_start (FlSim  *self,
            GError *error)
{
  if (self->error == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    self->error = error;
  else
    g_error_free (error);

  begin_close (self, FALSE);
  /* when already closing, this was the last call it waited for */
  check_done (self);
}

static void
provision_done (SimDevice *device,
                char      *secret,
                GError    *error)
{
  g_autoptr (GError) owned_error = error;
  g_autofree char   *owned_secret = secret;
  FlSim             *self = device->sim;

  device->provisioning = FALSE;
  self->outstanding--;

  if (owned_secret != NULL)
    {
      g_free (device->secret);
      device->secret = g_steal_pointer (&owned_secret);
      device->needs_provision = FALSE;
    }

  if (self->state == STATE_STARTING)
    {
      if (owned_error != NULL)
        {
          g_prefix_error (&owned_error, "Cannot register %s: ", device_id (device));
          fail_start (self, g_steal_pointer (&owned_error));
        }
      else
        provision_pump (self);
      return;
    }

  if (self->state >= STATE_CLOSING)
    {
      check_done (self);
      return;
    }

  if (owned_error != NULL)
    {
      g_debug ("Cannot register %s again: %s", device_id (device), owned_error->message);
      self->stats.failures++;
      schedule_retry (device, 0);
      return;
    }

  g_debug ("%s: registered again", device_id (device));
  save_state (self);
  kick (device);
}

static void
rotate_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (DeviceOp) op = user_data;
  SimDevice           *device = op->device;
  GError              *error = NULL;
  char                *secret;

  secret = fl_client_rotate_device_secret_finish (FL_CLIENT (object), result, &error);
  provision_done (device, secret, error);
}

static void
register_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr (DeviceOp) op = user_data;
  SimDevice           *device = op->device;
  FlSim               *self = device->sim;
  g_autoptr (FlDevice) registered = NULL;
  GError              *error = NULL;
  char                *secret = NULL;

  registered = fl_client_register_device_finish (FL_CLIENT (object), result, &secret, &error);

  /* it exists, but we lost its secret: get a new one */
  if (g_error_matches (error, FL_CLIENT_ERROR, FL_CLIENT_ERROR_CONFLICT))
    {
      g_debug ("%s exists; asking for a new secret", device_id (device));
      g_clear_error (&error);
      fl_client_rotate_device_secret_async (self->client, device_id (device), self->cancellable,
                                            rotate_cb, device_op_new (device));
      return;
    }

  provision_done (device, secret, error);
}

static void
provision_device (SimDevice *device)
{
  FlSim                 *self = device->sim;
  g_autoptr (JsonObject) registration = fl_sim_model_build_registration (device->model);

  device->provisioning = TRUE;
  self->outstanding++;
  fl_client_register_device_async (self->client, registration, self->cancellable,
                                   register_cb, device_op_new (device));
}

static guint
count_provisioning (FlSim *self)
{
  guint n = 0;

  for (guint i = 0; i < self->devices->len; i++)
    n += ((SimDevice *) g_ptr_array_index (self->devices, i))->provisioning;

  return n;
}

static void
provision_pump (FlSim *self)
{
  guint    active = count_provisioning (self);
  gboolean registered_any = FALSE;

  while (active < PROVISION_CONCURRENCY && self->provision_next < self->devices->len)
    {
      SimDevice *device = g_ptr_array_index (self->devices, self->provision_next++);

      if (device->secret != NULL)
        continue;

      provision_device (device);
      active++;
    }

  if (active > 0)
    return;

  for (guint i = 0; i < self->devices->len; i++)
    registered_any |= ((SimDevice *) g_ptr_array_index (self->devices, i))->secret != NULL;

  if (registered_any)
    save_state (self);
  start_streaming (self);
}

static void
load_state_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  FlSim             *self = FL_SIM (object);
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject        *devices;

  self->outstanding--;
  bytes = g_task_propagate_pointer (G_TASK (result), &error);

  if (self->state != STATE_STARTING)
    {
      check_done (self);
      return;
    }

  if (error != NULL)
    {
      fail_start (self, g_error_new (FL_SIM_ERROR, FL_SIM_ERROR_STATE_FILE,
                                     "Cannot read %s: %s", self->state_file, error->message));
      return;
    }

  if (bytes != NULL)
    {
      g_autoptr (JsonParser) parser = json_parser_new_immutable ();
      gsize                  length;
      const char            *data = g_bytes_get_data (bytes, &length);
      JsonNode              *root;

      if (!json_parser_load_from_data (parser, data, (gssize) length, &error) || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
        {
          fail_start (self, g_error_new (FL_SIM_ERROR, FL_SIM_ERROR_STATE_FILE,
                                         "%s is not a simulator state file%s%s; move it away to start afresh",
                                         self->state_file,
                                         error != NULL ? ": " : "",
                                         error != NULL ? error->message : ""));
          return;
        }

      self->state_doc = json_object_ref (json_node_get_object (root));
    }

  devices = json_get_object (self->state_doc, "devices");
  for (guint i = 0; devices != NULL && i < self->devices->len; i++)
    {
      SimDevice  *device = g_ptr_array_index (self->devices, i);
      const char *secret = json_get_string (json_get_object (devices, device_id (device)),
                                            "deviceSecret");

      if (secret != NULL && *secret != '\0')
        device->secret = g_strdup (secret);
    }

  provision_pump (self);
}

static void
login_cb (GObject      *object,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr (FlSim) self = user_data;
  g_autoptr (GTask) task = NULL;
  GError           *error = NULL;

  self->outstanding--;

  if (!fl_client_login_finish (FL_CLIENT (object), result, &error))
    {
      g_prefix_error (&error, "Cannot sign in as %s: ", self->username);
      fail_start (self, error);
      return;
    }

  if (self->state != STATE_STARTING)
    {
      check_done (self);
      return;
    }

  self->outstanding++;
  task = g_task_new (self, NULL, load_state_cb, NULL);
  g_task_set_source_tag (task, login_cb);
  g_task_set_task_data (task, g_strdup (self->state_file), g_free);
  g_task_run_in_thread (task, load_state_thread);
}

static void
config_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr (FlSim)          self = user_data;
  g_autoptr (FlClientConfig) config = NULL;
  GError                    *error = NULL;

  self->outstanding--;

  config = fl_client_get_config_finish (FL_CLIENT (object), result, &error);
  if (config == NULL)
    {
      g_prefix_error (&error, "Cannot reach %s: ", self->url);
      fail_start (self, error);
      return;
    }

  if (self->state != STATE_STARTING)
    {
      check_done (self);
      return;
    }

  if (self->state_file == NULL)
    {
      g_autofree char *pool = g_strdup (config->user_pool_id != NULL ? config->user_pool_id : "default");
      g_autofree char *name = NULL;

      g_strcanon (pool, G_CSET_A_2_Z G_CSET_a_2_z G_CSET_DIGITS "-_.", '_');
      name = g_strconcat (pool, ".json", NULL);
      self->state_file = g_build_filename (g_get_user_state_dir (), "fieldline-sim", name, NULL);
    }
  g_debug ("State file %s", self->state_file);

  self->outstanding++;
  fl_client_login_async (self->client, self->username, self->password, self->cancellable,
                         login_cb, g_object_ref (self));
}

/* ---- closing ----------------------------------------------------------- */

static void
check_done (FlSim *self)
{
  g_autoptr (GTask) task = NULL;

  if (self->state != STATE_CLOSING || self->outstanding > 0 || self->open_channels > 0)
    return;

  self->state = STATE_DONE;
  g_debug ("Stopped");

  if (self->run_cancellable != NULL && self->run_cancelled_id != 0)
    g_cancellable_disconnect (self->run_cancellable, self->run_cancelled_id);
  self->run_cancelled_id = 0;
  g_clear_handle_id (&self->cancel_idle_id, g_source_remove);

  task = g_steal_pointer (&self->run_task);
  if (task == NULL)
    return;

  if (self->error != NULL)
    g_task_return_error (task, g_error_copy (self->error));
  else if (self->cancelled)
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED, "Cancelled");
  else
    g_task_return_boolean (task, TRUE);
}

static void
begin_close (FlSim   *self,
             gboolean cancelled)
{
  if (self->state >= STATE_CLOSING)
    return;

  self->cancelled |= cancelled;
  self->state = STATE_CLOSING;
  g_clear_handle_id (&self->tick_id, g_source_remove);

  /* stop connects, requests and registrations; device channels close
   * with a close frame */
  g_cancellable_cancel (self->cancellable);

  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      g_clear_handle_id (&device->retry_id, g_source_remove);
      device->waiting = FALSE;
      if (device->channel != NULL)
        fl_device_channel_close (device->channel);
    }
  g_queue_clear (&self->ready);

  check_done (self);
}

static gboolean
run_cancelled_idle_cb (gpointer user_data)
{
  FlSim *self = user_data;

  self->cancel_idle_id = 0;
  begin_close (self, TRUE);

  return G_SOURCE_REMOVE;
}

static void
run_cancelled_cb (GCancellable *cancellable,
                  FlSim        *self)
{
  /* may run inside g_cancellable_connect(): act from the main loop */
  if (self->cancel_idle_id == 0)
    self->cancel_idle_id = g_idle_add (run_cancelled_idle_cb, self);
}

/* ---- the object -------------------------------------------------------- */

static void
fl_sim_dispose (GObject *object)
{
  FlSim *self = FL_SIM (object);

  g_clear_handle_id (&self->tick_id, g_source_remove);
  g_clear_handle_id (&self->cancel_idle_id, g_source_remove);
  if (self->run_cancellable != NULL && self->run_cancelled_id != 0)
    g_cancellable_disconnect (self->run_cancellable, self->run_cancelled_id);
  self->run_cancelled_id = 0;
  g_clear_object (&self->run_cancellable);

  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);

  g_queue_clear (&self->ready);
  if (self->devices != NULL)
    g_ptr_array_set_size (self->devices, 0);

  g_clear_object (&self->client);

  G_OBJECT_CLASS (fl_sim_parent_class)->dispose (object);
}

static void
fl_sim_finalize (GObject *object)
{
  FlSim *self = FL_SIM (object);

  g_clear_pointer (&self->url, g_free);
  g_clear_pointer (&self->username, g_free);
  if (self->password != NULL)
    memset (self->password, 0, strlen (self->password));
  g_clear_pointer (&self->password, g_free);
  g_clear_pointer (&self->prefix, g_free);
  g_clear_pointer (&self->state_file, g_free);
  g_clear_pointer (&self->devices, g_ptr_array_unref);
  g_clear_pointer (&self->rand, g_rand_free);
  g_clear_pointer (&self->state_doc, json_object_unref);
  g_clear_object (&self->cancellable);
  g_clear_error (&self->error);

  G_OBJECT_CLASS (fl_sim_parent_class)->finalize (object);
}

static void
fl_sim_class_init (FlSimClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = fl_sim_dispose;
  object_class->finalize = fl_sim_finalize;

  /**
   * FlSim::ready:
   *
   * The devices are registered and streaming has begun.
   */
  signals[READY] = g_signal_new ("ready", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                 0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * FlSim::event-generated:
   * @event: the new event
   *
   * A device made an event, before it is queued.
   */
  signals[EVENT_GENERATED] = g_signal_new ("event-generated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                           0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                                           FL_TYPE_EVENT | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
fl_sim_init (FlSim *self)
{
  self->rand = g_rand_new ();
  self->cancellable = g_cancellable_new ();
  self->devices = g_ptr_array_new_with_free_func ((GDestroyNotify) sim_device_free);
  g_queue_init (&self->ready);
}

#define DEFAULT(value, fallback) ((value) != 0 ? (value) : (fallback))

/**
 * fl_sim_new:
 * @options: what to simulate
 * @error: a #GError
 *
 * Returns: (transfer full): a new simulator, or %NULL for bad options
 */
FlSim *
fl_sim_new (const FlSimOptions *options,
            GError            **error)
{
  g_autoptr (FlSim) self = NULL;
  g_autoptr (GUri)  uri = NULL;
  const char       *prefix;

  g_return_val_if_fail (options != NULL, NULL);

  uri = options->url != NULL ? g_uri_parse (options->url, G_URI_FLAGS_NONE, NULL) : NULL;
  if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 && g_strcmp0 (g_uri_get_scheme (uri), "https") != 0) || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                   "“%s” is not an http:// or https:// URL",
                   options->url != NULL ? options->url : "");
      return NULL;
    }
  if (options->username == NULL || *options->username == '\0' || options->password == NULL || *options->password == '\0')
    {
      g_set_error_literal (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                           "A user name and a password are needed to register devices");
      return NULL;
    }
  if (options->n_devices < 1 || options->n_devices > 100000)
    {
      g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                   "The number of devices must be 1 to 100000, not %u", options->n_devices);
      return NULL;
    }
  if (!(options->rate >= 0 && options->rate <= 1e6))
    {
      g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                   "The rate must be 0 to 1000000 events per second, not %g", options->rate);
      return NULL;
    }
  if (options->backfill_sec > 7 * 24 * 3600)
    {
      g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                   "The backfill must be at most a week (604800 s), not %u s", options->backfill_sec);
      return NULL;
    }
  if (!(options->flaky_fraction >= 0 && options->flaky_fraction <= 1))
    {
      g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                   "The flaky fraction must be 0 to 1, not %g", options->flaky_fraction);
      return NULL;
    }

  prefix = options->prefix != NULL ? options->prefix : "sim";
  {
    g_autofree char *probe = g_strdup_printf ("%s-%05u", prefix, options->n_devices);

    if (*prefix == '\0' || !fl_device_id_is_valid (probe))
      {
        g_set_error (error, FL_SIM_ERROR, FL_SIM_ERROR_INVALID_OPTION,
                     "“%s” cannot start a device id", prefix);
        return NULL;
      }
  }

  self = g_object_new (FL_TYPE_SIM, NULL);
  self->url = g_strdup (options->url);
  self->username = g_strdup (options->username);
  self->password = g_strdup (options->password);
  self->prefix = g_strdup (prefix);
  self->state_file = g_strdup (options->state_file);
  self->n_devices = options->n_devices;
  self->rate = options->rate;
  self->transport = options->transport;
  self->flaky_fraction = options->flaky_fraction;
  self->http_connections = DEFAULT (options->http_connections, 4);
  self->max_queue = DEFAULT (options->max_queue, 10000);
  self->max_batch = DEFAULT (options->max_batch, 100);
  self->backoff_initial_ms = DEFAULT (options->backoff_initial_ms, 250);
  self->backoff_max_ms = MAX (DEFAULT (options->backoff_max_ms, 30000), self->backoff_initial_ms);
  self->flush_timeout_ms = DEFAULT (options->flush_timeout_ms, 15000);
  self->heartbeat_sec = DEFAULT (options->heartbeat_sec, 30);
  self->keepalive_sec = DEFAULT (options->keepalive_sec, FL_DEVICE_CHANNEL_DEFAULT_KEEPALIVE_SEC);
  self->backfill_sec = options->backfill_sec;

  for (guint i = 0; i < self->n_devices; i++)
    {
      g_autofree char *id = g_strdup_printf (self->n_devices < 10000 ? "%s-%04u" : "%s-%05u",
                                             self->prefix, i + 1);

      g_ptr_array_add (self->devices, sim_device_new (self, id));
    }

  return g_steal_pointer (&self);
}

void
fl_sim_run_async (FlSim              *self,
                  GCancellable       *cancellable,
                  GAsyncReadyCallback callback,
                  gpointer            user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (FL_IS_SIM (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, fl_sim_run_async);
  /* the run reports cancellation itself, once everything is closed */
  g_task_set_check_cancellable (task, FALSE);

  if (self->state != STATE_IDLE)
    {
      g_task_return_new_error (task, FL_SIM_ERROR, FL_SIM_ERROR_FAILED,
                               "The simulator has run already");
      return;
    }

  self->run_task = g_steal_pointer (&task);
  self->state = STATE_STARTING;

  self->client = g_object_new (FL_TYPE_CLIENT,
                               "base-url", self->url,
                               "max-connections", self->http_connections,
                               NULL);

  if (cancellable != NULL)
    {
      self->run_cancellable = g_object_ref (cancellable);
      self->run_cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (run_cancelled_cb),
                                                      self, NULL);
    }

  self->outstanding++;
  fl_client_get_config_async (self->client, self->cancellable, config_cb, g_object_ref (self));
}

gboolean
fl_sim_run_finish (FlSim        *self,
                   GAsyncResult *result,
                   GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == fl_sim_run_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
fl_sim_stop (FlSim *self)
{
  g_return_if_fail (FL_IS_SIM (self));

  switch (self->state)
    {
    case STATE_IDLE:
    case STATE_STARTING:
      begin_close (self, FALSE);
      break;

    case STATE_STREAMING:
      self->state = STATE_FLUSHING;
      self->flush_deadline = g_get_monotonic_time () + (gint64) self->flush_timeout_ms * G_TIME_SPAN_MILLISECOND;
      /* flaky devices come back to deliver what they hold */
      for (guint i = 0; i < self->devices->len; i++)
        {
          SimDevice *device = g_ptr_array_index (self->devices, i);

          device->mode = MODE_NORMAL;
          device->flaky = FALSE;
          kick (device);
        }
      check_flushed (self);
      break;

    case STATE_FLUSHING:
    case STATE_CLOSING:
    case STATE_DONE:
    default:
      break;
    }
}

void
fl_sim_get_stats (FlSim      *self,
                  FlSimStats *stats)
{
  g_return_if_fail (FL_IS_SIM (self));
  g_return_if_fail (stats != NULL);

  *stats = self->stats;
  stats->n_devices = self->devices->len;
  stats->connected = 0;
  stats->queued = 0;

  for (guint i = 0; i < self->devices->len; i++)
    {
      SimDevice *device = g_ptr_array_index (self->devices, i);

      stats->queued += device->queue.length;
      if (self->state == STATE_STREAMING || self->state == STATE_FLUSHING)
        stats->connected += device_is_connected (device);
    }
}

gboolean
fl_sim_is_streaming (FlSim *self)
{
  g_return_val_if_fail (FL_IS_SIM (self), FALSE);

  return self->state == STATE_STREAMING;
}

const char *
fl_sim_get_state_file (FlSim *self)
{
  g_return_val_if_fail (FL_IS_SIM (self), NULL);

  return self->state_file;
}

/**
 * fl_sim_dup_device_ids:
 *
 * Returns: (transfer full): the device ids
 */
GStrv
fl_sim_dup_device_ids (FlSim *self)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();

  g_return_val_if_fail (FL_IS_SIM (self), NULL);

  for (guint i = 0; i < self->devices->len; i++)
    g_strv_builder_add (builder, device_id (g_ptr_array_index (self->devices, i)));

  return g_strv_builder_end (builder);
}
