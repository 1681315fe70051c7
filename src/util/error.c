/*
 * error.c - the per-thread message behind a -errno above the library.
 *
 * Per thread so that a migration's sender and receiver threads (or two
 * vCPU threads) do not overwrite each other's message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"

static __thread char util_errbuf[512];

/* Formatted aside first: a message may wrap the previous one
 * (util_error(rc, "save: %s", util_last_error())). */
int util_error(int err, const char *fmt, ...)
{
	char msg[sizeof(util_errbuf)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(util_errbuf, msg, sizeof(msg));
	return err;
}

const char *util_last_error(void)
{
	return util_errbuf;
}
