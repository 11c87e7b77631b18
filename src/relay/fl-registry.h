/* fl-registry.h: every device the relay knows, in memory, persisted
 * through the store.  Lives on the main loop: lookups and listings are
 * memory-speed, and a device's state (status, lastSeen, battery, ...)
 * follows what it sends. */
#pragma once

#include "fieldline-core.h"

G_BEGIN_DECLS

#define FL_TYPE_REGISTRY (fl_registry_get_type ())
G_DECLARE_FINAL_TYPE (FlRegistry, fl_registry, FL, REGISTRY, GObject)

typedef struct {
  const char     *tag;    /* NULL: any */
  const char     *q;      /* case-insensitive substring of id or name */
  FlDeviceStatus  status;
  gboolean        any_status;
  const char     *after;  /* cursor: the last deviceId of the previous page */
  guint           limit;
} FlDeviceFilter;

FlRegistry *fl_registry_new            (FlStore  *store,
                                        GError  **error);

FlDevice   *fl_registry_lookup         (FlRegistry *self,
                                        const char *device_id);
guint       fl_registry_get_n_devices  (FlRegistry *self);
guint       fl_registry_get_n_online   (FlRegistry *self);

/* Registers device (validated by the caller); issues its secret, which
 * is returned once and only stored hashed. */
gboolean    fl_registry_register       (FlRegistry *self,
                                        FlDevice   *device,
                                        char      **secret,
                                        GError    **error);
char       *fl_registry_rotate_secret  (FlRegistry *self,
                                        FlDevice   *device);
/* Records a change made by an operator and persists it. */
void        fl_registry_touch          (FlRegistry *self,
                                        FlDevice   *device);

/* The device the credentials belong to; NOT_AUTHORIZED for unknown ids
 * and wrong secrets alike, FORBIDDEN for a decommissioned device. */
FlDevice   *fl_registry_authenticate   (FlRegistry *self,
                                        const char *device_id,
                                        const char *secret,
                                        GError    **error);

/* A stored event from device arrived at received_at: the device is
 * online and its well-known fields follow the data.  Returns TRUE when
 * its status changed (so operators should hear of it). */
gboolean    fl_registry_note_event     (FlRegistry *self,
                                        FlDevice   *device,
                                        FlEvent    *event);
/* A device connected or proved alive without an event. */
gboolean    fl_registry_note_alive     (FlRegistry *self,
                                        FlDevice   *device,
                                        gint64      now);

/* Devices whose heartbeat timeout passed go offline; returns them. */
GPtrArray  *fl_registry_expire         (FlRegistry *self,
                                        gint64      now);
/* Writes changed devices to the store (batched: at most once a second
 * per device is plenty for lastSeen and battery). */
void        fl_registry_flush          (FlRegistry *self);

/* A page of devices in deviceId order; *next_cursor is set when more
 * may follow. */
GPtrArray  *fl_registry_list           (FlRegistry           *self,
                                        const FlDeviceFilter *filter,
                                        char                **next_cursor);

G_END_DECLS
