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

/* The seeded generator the workloads draw their random pages from. */
static inline uint64_t bench_xorshift64(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void bench_fill_pattern(void *buf, uint64_t size, uint64_t page_size);
/* Each page's first word is `tag(page) = page + 1`, every other word is
 * the pattern (zero_rest: zero instead). Returns mismatching pages. */
uint64_t bench_verify_touched(const void *buf, uint64_t size,
			      uint64_t page_size, bool zero_rest);

int bench_pin_self(int cpu);
int bench_ncpus(void);
double bench_median(double *v, int n);

/* The page cache (pagecache.c). Drop the machine's whole cache (root
 * only; why says what failed); push one file's pages out (written back
 * first); read one file in; the fraction of a file resident (mincore). */
int bench_drop_caches(char *why, size_t len);
int bench_file_drop(const char *path);
void bench_file_warm(const char *path);
int bench_file_resident(const char *path, double *frac);

/* bench restore without KVM: plain threads (restore_threads.c). */
struct bench_restore_threads {
	uint64_t mem;
	double ws;		/* fraction of memory touched */
	unsigned threads;
	const char *dir;	/* an existing directory for the snapshot */
	bool json;
	const char *json_out;
	bool want_cold;
	const char *why;	/* why not KVM: "--no-kvm" or the open error */
};
int bench_restore_threads(const struct bench_restore_threads *c);

#define BENCH_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
