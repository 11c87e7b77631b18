/* fl-sim-model.h: what one simulated device is and measures.  Internal
 * to fieldline-sim.
 *
 * A device's identity (model, manufacturer, firmware, site, room, home
 * position, climate) follows from its id, so a restarted simulator
 * describes the same device the same way.  Readings evolve with time:
 * temperature with a daily cycle plus slow drift and noise, humidity
 * against it, a battery that drains and recharges, an RSSI random walk
 * and a position that drifts around home.
 */
#pragma once

#include "fieldline-core.h"

G_BEGIN_DECLS

typedef struct _FlSimModel FlSimModel;

FlSimModel  *fl_sim_model_new                 (const char *device_id);
void         fl_sim_model_free                (FlSimModel *model);

const char  *fl_sim_model_get_device_id       (FlSimModel *model);

/* The POST /devices body for this device. */
JsonObject  *fl_sim_model_build_registration  (FlSimModel *model);

/* The device's next event at now_ms: a status event after (re)boot, a
 * location every minute or so, otherwise telemetry. */
FlEvent     *fl_sim_model_next_event          (FlSimModel *model,
                                               gint64      now_ms,
                                               GRand      *rand);
FlEvent     *fl_sim_model_heartbeat           (FlSimModel *model,
                                               gint64      now_ms);
/* Last time (ms) the device sent anything; 0 before its first event. */
gint64       fl_sim_model_get_last_event_time (FlSimModel *model);
gint64       fl_sim_model_get_last_heartbeat  (FlSimModel *model);
/* The next event is a status event telling why the device is back. */
void         fl_sim_model_reboot              (FlSimModel *model,
                                               const char *reason);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FlSimModel, fl_sim_model_free)

G_END_DECLS
