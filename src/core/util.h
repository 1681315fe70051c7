/*
 * util.h - small internal helpers shared by the core: the clock, futexes,
 * setting the per-thread error message.
 */
#ifndef LAZYMEM_CORE_UTIL_H
#define LAZYMEM_CORE_UTIL_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in ns; clock_gettime is async-signal-safe (vDSO). */
static inline uint64_t lm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

/* Record a set-up error for lm_last_error() and return err (-errno). */
int lm_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define LM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LM_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
