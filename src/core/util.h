/*
 * util.h - private to src/core: what every core file needs at hand, the
 * shared utility layer (clock, futexes, min/max) and the library's error
 * channel (core/error.h). Nothing outside src/core includes this: the
 * layers above include src/util/ directly and write util_error.
 */
#ifndef LAZYMEM_CORE_UTIL_H
#define LAZYMEM_CORE_UTIL_H

#include "util/bits.h"
#include "util/clock.h"
#include "util/futex.h"
#include "core/error.h"

#endif
