/* fieldline-core.h: the umbrella header of libfieldline-core.  Users
 * include only this. */
#pragma once

#include "fl-decimate.h"
#include "fl-device.h"
#include "fl-event.h"
#include "fl-event-codec.h"
#include "fl-jwt.h"
#include "fl-store.h"
