/*
 * clock.h - the one monotonic clock of the tree (lm_now_ns) and the
 * process and thread CPU clocks, for every layer from the core up.
 *
 * Header-only and async-signal-safe (clock_gettime goes through the vDSO),
 * because the core's fault path reads it inside the SIGBUS handler.
 */
#ifndef LAZYMEM_UTIL_CLOCK_H
#define LAZYMEM_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns. */
static inline uint64_t lm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread) in ns: immune to other
 * load on a shared machine, unlike wall time. */
static inline uint64_t lm_process_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the calling thread in ns: what a benchmark's worker spent
 * on the CPU, not the time it waited for one on a loaded machine. */
static inline uint64_t lm_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
