/*
 * futex.h - wait on and wake a 32-bit word, without a lock: the page-state
 * map waits on its own words with these, and so may anything above it.
 */
#ifndef LAZYMEM_UTIL_FUTEX_H
#define LAZYMEM_UTIL_FUTEX_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleep while *w == val. Spurious returns are fine: callers loop. */
static inline void lm_futex_wait(_Atomic uint32_t *w, uint32_t val,
				 const struct timespec *timeout)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, timeout,
		NULL, 0);
}

static inline void lm_futex_wake_all(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		NULL, 0);
}

#endif
