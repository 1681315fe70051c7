/*
 * bench_util.c - helpers shared by the benchmarks (see bench.h).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "bench.h"

void bench_fill_pattern(void *buf, uint64_t size, uint64_t page_size)
{
	uint64_t *w = buf, per = page_size / 8;

	for (uint64_t p = 0; p < size / page_size; p++)
		for (uint64_t k = 0; k < per; k++)
			w[p * per + k] = bench_pattern(p, k);
}

uint64_t bench_verify_touched(const void *buf, uint64_t size,
			      uint64_t page_size, bool zero_rest)
{
	const uint64_t *w = buf;
	uint64_t per = page_size / 8, bad = 0;

	for (uint64_t p = 0; p < size / page_size; p++) {
		const uint64_t *pg = w + p * per;
		bool ok = pg[0] == p + 1;

		for (uint64_t k = 1; ok && k < per; k++)
			ok = pg[k] == (zero_rest ? 0 : bench_pattern(p, k));
		bad += !ok;
	}
	return bad;
}

int bench_pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
