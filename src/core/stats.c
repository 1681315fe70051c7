/*
 * stats.c - the fault-latency histogram and the statistics snapshot.
 *
 * Buckets are log-linear: four per power of two of nanoseconds, so any
 * latency from 1 ns to centuries lands in 256 counters with at most 25%
 * error, and recording one is a count-leading-zeros and an atomic add.
 */
#include <string.h>

#include "core/region_internal.h"

unsigned lm_lat_bucket(uint64_t ns)
{
	unsigned e;

	if (ns < 4)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns);	/* e >= 2 */
	return 4 * (e - 1) + (unsigned)((ns >> (e - 2)) & 3);
}

uint64_t lm_lat_bucket_ns(unsigned i)
{
	unsigned e, sub;
	uint64_t lo, width;

	if (i < 4)
		return i;
	e = i / 4 + 1;
	sub = i % 4;
	lo = (uint64_t)(4 + sub) << (e - 2);
	width = 1ull << (e - 2);
	return lo + width / 2;
}

void lm__stats_latency(struct lm_region *r, uint64_t ns)
{
	uint64_t max = atomic_load_explicit(&r->stats.lat_max_ns,
					    memory_order_relaxed);

	atomic_fetch_add_explicit(&r->stats.lat_hist[lm_lat_bucket(ns)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&r->stats.lat_count, 1,
				  memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(
				   &r->stats.lat_max_ns, &max, ns,
				   memory_order_relaxed, memory_order_relaxed))
		;
}

static uint64_t percentile(const struct lm_stats *s, uint64_t total,
			   unsigned pct)
{
	uint64_t want = (total * pct + 99) / 100, seen = 0;

	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++) {
		seen += s->lat_hist[i];
		if (seen >= want && seen)
			return LM_MIN(lm_lat_bucket_ns(i), s->lat_max_ns);
	}
	return 0;
}

void lm_region_stats(const struct lm_region *r, struct lm_stats *out)
{
	const struct lm_stats_live *l = &r->stats;
	uint64_t total = 0;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < LM_ORIGIN_COUNT; i++)
		out->faults[i] = atomic_load(&l->faults[i]);
	out->faults_waited = atomic_load(&l->faults_waited);
	out->faults_present = atomic_load(&l->faults_present);
	out->pages_demand = atomic_load(&l->pages_demand);
	out->pages_background = atomic_load(&l->pages_background);
	out->pages_around = atomic_load(&l->pages_around);
	out->pages_zero = atomic_load(&l->pages_zero);
	out->pages_failed = atomic_load(&l->pages_failed);
	out->bytes_read = atomic_load(&l->bytes_read);
	out->faults_retried = atomic_load(&l->faults_retried);
	out->pages_removed = atomic_load(&l->pages_removed);
	out->lat_max_ns = atomic_load(&l->lat_max_ns);
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++) {
		out->lat_hist[i] = atomic_load(&l->lat_hist[i]);
		total += out->lat_hist[i];
	}
	out->lat_count = total;
	out->lat_p50_ns = percentile(out, total, 50);
	out->lat_p99_ns = percentile(out, total, 99);
}

void lm_stats_merge(struct lm_stats *into, const struct lm_stats *from)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < LM_ORIGIN_COUNT; i++)
		into->faults[i] += from->faults[i];
	into->faults_waited += from->faults_waited;
	into->faults_present += from->faults_present;
	into->pages_demand += from->pages_demand;
	into->pages_background += from->pages_background;
	into->pages_around += from->pages_around;
	into->pages_zero += from->pages_zero;
	into->pages_failed += from->pages_failed;
	into->bytes_read += from->bytes_read;
	into->faults_retried += from->faults_retried;
	into->pages_removed += from->pages_removed;
	into->lat_max_ns = LM_MAX(into->lat_max_ns, from->lat_max_ns);
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++) {
		into->lat_hist[i] += from->lat_hist[i];
		total += into->lat_hist[i];
	}
	into->lat_count = total;
	into->lat_p50_ns = percentile(into, total, 50);
	into->lat_p99_ns = percentile(into, total, 99);
}

const char *lm_origin_name(enum lm_fault_origin o)
{
	static const char *const n[] = { "handler", "sigbus", "vcpu",
					 "background" };

	return (unsigned)o < LM_ORIGIN_COUNT ? n[o] : "?";
}
