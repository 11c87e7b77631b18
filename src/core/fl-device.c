#include "config.h"

#include "fl-device.h"
