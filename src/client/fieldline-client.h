/* fieldline-client.h: the umbrella header of libfieldline-client.  Users
 * include only this. */
#pragma once

#include "fl-client.h"
#include "fl-cognito-client.h"
#include "fl-device-channel.h"
#include "fl-event-stream.h"
