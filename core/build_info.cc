#include "core/build_info.h"
