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
#include "core/error.h"
#include "core/util.h"

static __thread char last_error[512];

/* Formatted aside first: a message may wrap the previous one
 * (lm_error(err, "...: %s", lm_last_error())). */
int lm_error(int err, const char *fmt, ...)
{
	char msg[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(last_error, msg, sizeof(msg));
	return err;
}

const char *lm_last_error(void)
{
	return last_error;
}
