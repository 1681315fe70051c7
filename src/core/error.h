/*
 * error.h - the library's own error channel, for the library's folders
 * only (core, source, snapshot): lm_error records the message that
 * lm_last_error() returns to the library's caller. Code above the library
 * writes util_error (src/util/error.h) instead, so that a message in
 * lm_last_error always comes from a library call.
 */
#ifndef LAZYMEM_CORE_ERROR_H
#define LAZYMEM_CORE_ERROR_H

/* Record a set-up error for lm_last_error() and return err (-errno). */
int lm_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
