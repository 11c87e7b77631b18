#include "config.h"

#include "fl-event-codec.h"
