/*
 * stats.c - the fault-latency histogram, the per-thread statistics shards
 * and the statistics snapshot that sums them.
 *
 * Buckets are log-linear: four per power of two of nanoseconds, so any
 * latency from 1 ns to centuries lands in 256 counters with at most 25%
 * error, and recording one is a count-leading-zeros and an atomic add to
 * the recording thread's own shard (region_internal.h says why shards).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/region_internal.h"

__thread struct lm__shard_cache lm__shard_cache[LM_SHARD_CACHE]
	__attribute__((tls_model("initial-exec")));

static _Atomic uint64_t next_region_id = 1;

int lm__stats_init(struct lm_region *r)
{
	/* mmap, not calloc: a shard no thread ever got is never touched,
	 * so 64 shards of 2.2 KiB cost only the pages of those in use. */
	void *p = mmap(NULL, LM_STAT_SHARDS * sizeof(*r->shards),
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	r->shards = p;
	r->id = atomic_fetch_add(&next_region_id, 1);
	/* The completion chunks (region_internal.h), likewise lazily: a
	 * 1 TiB region's 256K chunks are 16 MiB of address space. */
	r->nr_chunks = (r->nr_pages + LM_DONE_CHUNK - 1) >> LM_DONE_CHUNK_SHIFT;
	p = mmap(NULL, r->nr_chunks * sizeof(*r->done), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		lm__stats_fini(r);
		return err;
	}
	r->done = p;
	return 0;
}

void lm__stats_fini(struct lm_region *r)
{
	if (!r->shards)
		return;
	for (unsigned i = 0; i < LM_STAT_SHARDS; i++) {
		void *b = atomic_load(&r->shards[i].stage);

		if (b)
			munmap(b, r->staging.size);
	}
	munmap(r->shards, LM_STAT_SHARDS * sizeof(*r->shards));
	r->shards = NULL;
	if (r->done)
		munmap(r->done, r->nr_chunks * sizeof(*r->done));
	r->done = NULL;
}

static unsigned shards_in_use(const struct lm_region *r);

/* The shard r handed to the thread whose shard cache is at `me`, or 0. */
static unsigned own_shard(const struct lm_region *r, uintptr_t me)
{
	for (unsigned i = 1; i < shards_in_use(r); i++)
		if (atomic_load_explicit(&r->shards[i].owner,
					 memory_order_relaxed) == me)
			return i;
	return 0;
}

/*
 * A miss in this thread's shard cache: its first fault in region r, or
 * its entry was taken by another region with the same id mod 16. The
 * second must not cost a shard: a thread alternating between two such
 * regions once took a new shard at every switch, until every shard was
 * taken and each new thread of the region shared shard 0 (correct, every
 * counter is an atomic add, but shared again). So look for the shard this
 * thread owns first; else hand out the next one, or shard 0 once all are
 * taken. Async-signal-safe: loads, one atomic add, stores to our own TLS.
 * The entry's shard is written before its id, so a nested fault
 * interrupting us in between sees a miss, never a half-written entry.
 */
struct lm_stats_shard *lm__shard_slow(struct lm_region *r)
{
	struct lm__shard_cache *c = &lm__shard_cache[r->id % LM_SHARD_CACHE];
	uintptr_t me = (uintptr_t)lm__shard_cache;
	unsigned i = own_shard(r, me);

	if (!i) {
		i = atomic_fetch_add_explicit(&r->shards_used, 1,
					      memory_order_relaxed) + 1;
		if (i < LM_STAT_SHARDS) {
			atomic_store_explicit(&r->shards[i].owner, me,
					      memory_order_relaxed);
		} else {
			i = 0;
			/* Keep the count bounded: it is read as "shards
			 * in use". */
			atomic_store_explicit(&r->shards_used, LM_STAT_SHARDS,
					      memory_order_relaxed);
		}
	}
	c->id = 0;
	atomic_signal_fence(memory_order_seq_cst);
	c->shard = i;
	atomic_signal_fence(memory_order_seq_cst);
	c->id = r->id;
	return &r->shards[i];
}

/* Shards that may hold counts: 0 and those handed out. */
static unsigned shards_in_use(const struct lm_region *r)
{
	unsigned n = atomic_load_explicit(&r->shards_used,
					  memory_order_relaxed);

	return n + 1 < LM_STAT_SHARDS ? n + 1 : LM_STAT_SHARDS;
}

int64_t lm__demand_active(const struct lm_region *r)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < shards_in_use(r); i++)
		sum += atomic_load_explicit(&r->shards[i].demand_active,
					    memory_order_relaxed);
	return (int64_t)sum;
}

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
	struct lm_stats_shard *s = lm__shard(r);
	uint64_t max = atomic_load_explicit(&s->lat_max_ns,
					    memory_order_relaxed);

	/* No separate count: lm_region_stats sums the buckets. */
	atomic_fetch_add_explicit(&s->lat_hist[lm_lat_bucket(ns)], 1,
				  memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(
				   &s->lat_max_ns, &max, ns,
				   memory_order_relaxed, memory_order_relaxed))
		;
}

void lm__stats_refault(struct lm_region *r, uint64_t ns)
{
	atomic_fetch_add_explicit(&lm__shard(r)->refault_hist[lm_lat_bucket(ns)],
				  1, memory_order_relaxed);
}

/* Percentile pct of a histogram in the lat_hist scale (no max clamp). */
static uint64_t hist_percentile(const uint64_t *h, unsigned pct)
{
	uint64_t total = 0, want, seen = 0;

	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
		total += h[i];
	want = (total * pct + 99) / 100;
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++) {
		seen += h[i];
		if (seen >= want && seen)
			return lm_lat_bucket_ns(i);
	}
	return 0;
}

static void refault_percentiles(struct lm_stats *s)
{
	s->refault_p50_ns = hist_percentile(s->refault_hist, 50);
	s->refault_p99_ns = hist_percentile(s->refault_hist, 99);
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

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Sum of the shards: each counter is exact once the faults that bumped it
 * are over; a snapshot taken meanwhile is consistent per counter only, as
 * before the shards. */
void lm_region_stats(const struct lm_region *r, struct lm_stats *out)
{
	uint64_t total = 0;
	unsigned n = shards_in_use(r);

	memset(out, 0, sizeof(*out));
	for (unsigned k = 0; k < n; k++) {
		const struct lm_stats_shard *l = &r->shards[k];

		for (unsigned i = 0; i < LM_ORIGIN_COUNT; i++)
			out->faults[i] += LOAD(l->faults[i]);
		out->faults_waited += LOAD(l->faults_waited);
		out->faults_present += LOAD(l->faults_present);
		out->pages_demand += LOAD(l->pages_demand);
		out->pages_background += LOAD(l->pages_background);
		out->pages_around += LOAD(l->pages_around);
		out->pages_zero += LOAD(l->pages_zero);
		out->pages_failed += LOAD(l->pages_failed);
		out->bytes_read += LOAD(l->bytes_read);
		out->faults_retried += LOAD(l->faults_retried);
		out->pages_removed += LOAD(l->pages_removed);
		out->wp_faults += LOAD(l->wp_faults);
		out->wp_copied += LOAD(l->wp_copied);
		out->wp_lifted += LOAD(l->wp_lifted);
		out->wp_waited += LOAD(l->wp_waited);
		out->pages_evicted += LOAD(l->pages_evicted);
		out->evict_refused += LOAD(l->evict_refused);
		out->pages_refaulted += LOAD(l->pages_refaulted);
		out->thp_collapsed += LOAD(l->thp_collapsed);
		out->thp_collapse_ns += LOAD(l->thp_collapse_ns);
		out->thp_failed_busy += LOAD(l->thp_failed_busy);
		out->thp_failed_again += LOAD(l->thp_failed_again);
		out->thp_failed_nomem += LOAD(l->thp_failed_nomem);
		out->thp_failed_other += LOAD(l->thp_failed_other);
		out->thp_skipped += LOAD(l->thp_skipped);
		for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
			out->refault_hist[i] += LOAD(l->refault_hist[i]);
		out->lat_max_ns = LM_MAX(out->lat_max_ns, LOAD(l->lat_max_ns));
		for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
			out->lat_hist[i] += LOAD(l->lat_hist[i]);
	}
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
		total += out->lat_hist[i];
	out->lat_count = total;
	out->lat_p50_ns = percentile(out, total, 50);
	out->lat_p99_ns = percentile(out, total, 99);
	refault_percentiles(out);
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
	into->wp_faults += from->wp_faults;
	into->wp_copied += from->wp_copied;
	into->wp_lifted += from->wp_lifted;
	into->wp_waited += from->wp_waited;
	into->pages_evicted += from->pages_evicted;
	into->evict_refused += from->evict_refused;
	into->pages_refaulted += from->pages_refaulted;
	into->thp_collapsed += from->thp_collapsed;
	into->thp_collapse_ns += from->thp_collapse_ns;
	into->thp_failed_busy += from->thp_failed_busy;
	into->thp_failed_again += from->thp_failed_again;
	into->thp_failed_nomem += from->thp_failed_nomem;
	into->thp_failed_other += from->thp_failed_other;
	into->thp_skipped += from->thp_skipped;
	for (unsigned i = 0; i < LM_LAT_BUCKETS; i++)
		into->refault_hist[i] += from->refault_hist[i];
	refault_percentiles(into);
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
