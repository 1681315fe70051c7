/*
 * lazymem/error.h - the message behind a negative errno.
 *
 * Library calls return 0 or -errno. Set-up calls that fail also leave a
 * one-line message naming the object and what was expected; it is kept per
 * thread (like dlerror) so it survives until the caller prints it.
 */
#ifndef LAZYMEM_ERROR_H
#define LAZYMEM_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* The last set-up error message of this thread, or "" if none. */
const char *lm_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
