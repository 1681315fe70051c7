/*
 * lazymem/stats.h - what a region's fault path did.
 *
 * Every branch of the fault path has a counter here, so a benchmark or a
 * surprised operator can see which way the faults went. Counters are read
 * without stopping the region; a snapshot is consistent per counter only.
 */
#ifndef LAZYMEM_STATS_H
#define LAZYMEM_STATS_H

#include <stdint.h>
#include <lazymem/fault.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Log-linear latency buckets: 4 per power of two of nanoseconds. */
#define LM_LAT_BUCKETS 256

struct lm_stats {
	uint64_t faults[LM_ORIGIN_COUNT];	/* fault events by origin */
	uint64_t faults_waited;		/* page was being fetched: waited */
	uint64_t faults_present;	/* page already present: remapped */
	uint64_t pages_demand;		/* installed by a demand fault */
	uint64_t pages_background;	/* installed by background fill */
	uint64_t pages_around;		/* installed by fault-around */
	uint64_t pages_zero;		/* of those, installed as zero pages */
	uint64_t pages_failed;		/* poisoned after a source error */
	uint64_t bytes_read;		/* bytes read from the source */
	uint64_t lat_count;		/* demand faults timed */
	uint64_t lat_p50_ns, lat_p99_ns, lat_max_ns;
	uint64_t lat_hist[LM_LAT_BUCKETS];
	/* Adopted (foreign) regions: installs refused with EAGAIN while the
	 * other process changed its memory map, retried after its events
	 * were read; pages its owner removed (balloon, munmap). */
	uint64_t faults_retried;
	uint64_t pages_removed;
	/* Write-protect faults of live snapshots (lazymem/wp.h): taken;
	 * pages copied before their write; protection only lifted (the
	 * page was saved already); waited for another thread's copy. */
	uint64_t wp_faults, wp_copied, wp_lifted, wp_waited;
	/* Reclaim (lazymem/reclaim.h): pages evicted into the store, pages
	 * the store refused (left resident), pages faulted back from it,
	 * and the refault time on the faulting thread, from the signal (or
	 * message, or vCPU exit) to the install. */
	uint64_t pages_evicted, evict_refused, pages_refaulted;
	uint64_t refault_p50_ns, refault_p99_ns;
	uint64_t refault_hist[LM_LAT_BUCKETS];
	/* Huge pages after the fill (lm_region_collapse, docs/thp.md):
	 * 2 MiB ranges collapsed and the time spent collapsing them;
	 * collapses the kernel refused, by reason: a page not mapped
	 * (EBUSY: evicted or dropped meanwhile), transient (EAGAIN), no
	 * huge page free (ENOMEM), anything else (EINVAL: write-protected
	 * pages, THP disabled for the mapping); passes skipped because a
	 * live snapshot or an eviction was running. */
	uint64_t thp_collapsed, thp_collapse_ns;
	uint64_t thp_failed_busy, thp_failed_again, thp_failed_nomem;
	uint64_t thp_failed_other, thp_skipped;
};

void lm_region_stats(const struct lm_region *r, struct lm_stats *out);

/* Add the counters and histogram of `from` to `into` (maximum of the
 * maxima) and recompute into's percentiles: one figure for several
 * regions, such as the ranges of one foreign space. */
void lm_stats_merge(struct lm_stats *into, const struct lm_stats *from);

/* Representative value (ns) of histogram bucket i. */
uint64_t lm_lat_bucket_ns(unsigned i);
/* The bucket a latency of ns falls in (< LM_LAT_BUCKETS): for callers
 * keeping a histogram of their own in the same scale. */
unsigned lm_lat_bucket(uint64_t ns);

const char *lm_origin_name(enum lm_fault_origin o);

#ifdef __cplusplus
}
#endif
#endif
