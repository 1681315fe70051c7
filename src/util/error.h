/*
 * error.h - the error channel of the code above the library (the VMM, its
 * features, the transport, the daemon): a per-thread message behind a
 * -errno, like lm_last_error() but not the library's.
 *
 * The library keeps lm_last_error() for its own calls only, so a message
 * there always names a library call; everything above writes here and may
 * wrap a library message (util_error(err, "...: %s", lm_last_error())).
 */
#ifndef LAZYMEM_UTIL_ERROR_H
#define LAZYMEM_UTIL_ERROR_H

/* Record why for util_last_error() and return err (-errno). */
int util_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* This thread's last message ("" if none yet). */
const char *util_last_error(void);

#endif
