#include "config.h"

#include "fl-event.h"
