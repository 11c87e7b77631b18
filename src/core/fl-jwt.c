#include "config.h"

#include "fl-jwt.h"
