#include "config.h"

#include "fl-store.h"
