/*
 * bench.h - what the benchmarks share: thread pinning, a start barrier,
 * timing, the deterministic page pattern they verify against, and the
 * medians that make noisy shared machines usable.
 */
#ifndef LAZYMEM_BENCH_H
#define LAZYMEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/clock.h"

/* Word k of page p of a benchmark image: cheap, and distinct per page and
 * word, so a page installed at the wrong offset cannot pass. */
static inline uint64_t bench_pattern(uint64_t page, uint64_t word)
{
	return (page << 24) ^ (word * 0x9e3779b97f4a7c15ull) ^ 0x5a5a;
}

void bench_fill_pattern(void *buf, uint64_t size, uint64_t page_size);
/* Each page's first word is `tag(page) = page + 1`, every other word is
 * the pattern (zero_rest: zero instead). Returns mismatching pages. */
uint64_t bench_verify_touched(const void *buf, uint64_t size,
			      uint64_t page_size, bool zero_rest);

int bench_pin_self(int cpu);
int bench_ncpus(void);
double bench_median(double *v, int n);

#define BENCH_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
