/* fl-sim.h: the device simulator's engine, separate from its command
 * line so tests can run it in-process.
 *
 * It signs in as an operator, registers its devices (keeping their
 * secrets in a state file so a restarted simulator reuses them), then
 * streams telemetry from every device at a total rate over the device
 * WebSocket or HTTP.  Unacknowledged events are kept per device and
 * resent with the same ids after a failure; connections come back with
 * capped exponential backoff and jitter.
 */
#pragma once

#include <gio/gio.h>

#include "fieldline-core.h"

G_BEGIN_DECLS

#define FL_SIM_ERROR (fl_sim_error_quark ())

typedef enum {
  FL_SIM_ERROR_INVALID_OPTION,
  FL_SIM_ERROR_STATE_FILE,   /* the state file cannot be read or written */
  FL_SIM_ERROR_FAILED,
} FlSimError;

GQuark fl_sim_error_quark (void);

typedef enum {
  FL_SIM_TRANSPORT_WEBSOCKET,
  FL_SIM_TRANSPORT_HTTP,
} FlSimTransport;

/* Zero means the default for every number. */
typedef struct {
  const char     *url;
  const char     *username;
  const char     *password;
  guint           n_devices;
  double          rate;               /* events per second, all devices */
  FlSimTransport  transport;
  const char     *prefix;             /* NULL: "sim"; ids are PREFIX-0001 ... */
  const char     *state_file;         /* NULL: $XDG_STATE_HOME/fieldline-sim/<userPoolId>.json */
  double          flaky_fraction;     /* 0..1 of the devices */
  guint           http_connections;   /* keep-alive pool; 4 */
  guint           max_queue;          /* unacknowledged events per device; 10000 */
  guint           max_batch;          /* events per batch; 100 */
  guint           backoff_initial_ms; /* 250 */
  guint           backoff_max_ms;     /* 30000 */
  guint           flush_timeout_ms;   /* how long a stop waits for acks; 15000 */
  guint           heartbeat_sec;      /* 30 */
  guint           keepalive_sec;      /* device channel pings; 20 */
  guint           backfill_sec;       /* history sent before streaming; 0: none */
} FlSimOptions;

typedef struct {
  guint   n_devices;
  guint   connected;    /* devices with an open channel, or (HTTP) not backing off */
  guint   queued;       /* events waiting or in flight */
  guint64 generated;
  guint64 sent;         /* resends included */
  guint64 resent;
  guint64 acked;        /* accepted + duplicates + rejected */
  guint64 accepted;
  guint64 duplicates;
  guint64 rejected;
  guint64 dropped;      /* lost to a full queue */
  guint64 failures;     /* failed connects and sends */
  guint64 reconnects;
} FlSimStats;

#define FL_TYPE_SIM (fl_sim_get_type ())
G_DECLARE_FINAL_TYPE (FlSim, fl_sim, FL, SIM, GObject)

/* Checks and copies options; NULL with an error for bad ones. */
FlSim       *fl_sim_new            (const FlSimOptions  *options,
                                    GError             **error);

/* Signs in, registers devices and streams until fl_sim_stop() (then
 * flushes and closes, and completes with TRUE) or cancellable (closes
 * without flushing, completes with G_IO_ERROR_CANCELLED).  Completes
 * early with an error when it cannot start. */
void         fl_sim_run_async      (FlSim               *self,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data);
gboolean     fl_sim_run_finish     (FlSim         *self,
                                    GAsyncResult  *result,
                                    GError       **error);

/* Stops generating, waits (up to flush-timeout) until everything queued
 * is acknowledged, closes the connections; then the run completes. */
void         fl_sim_stop           (FlSim *self);

void         fl_sim_get_stats      (FlSim      *self,
                                    FlSimStats *stats);
gboolean     fl_sim_is_streaming   (FlSim *self);
/* Valid once the run has started streaming. */
const char  *fl_sim_get_state_file (FlSim *self);
/* The simulated devices' ids, in order. */
GStrv        fl_sim_dup_device_ids (FlSim *self);

G_END_DECLS
