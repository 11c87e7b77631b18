#include "config.h"

#include "fl-user-pool.h"
