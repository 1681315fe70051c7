/*
 * error.c - the per-thread message behind a failed set-up call.
 *
 * Kept per thread so that two threads creating regions at once do not
 * overwrite each other's message; never touched on the fault path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lazymem/error.h>
#include "core/util.h"

static __thread char last_error[512];

int lm_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *lm_last_error(void)
{
	return last_error;
}
