/*
 * region_internal.h - the region object as the core sees it.
 *
 * A region has up to two registered views (mappings) of its memory:
 * view 0 is the one handed to the user (and to KVM), view 1 is the hybrid
 * mode's mapping for a VMM's own threads. Each view has a userfaultfd of
 * its own because the blocking/SIGBUS choice is per userfaultfd. With the
 * CONTINUE install there is also an unregistered alias where pages are
 * written before they are mapped in place.
 */
#ifndef LAZYMEM_CORE_REGION_INTERNAL_H
#define LAZYMEM_CORE_REGION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <lazymem/lazymem.h>
#include "core/pagemap.h"
#include "core/staging.h"

#define LM_MAX_VIEWS 2
#define LM_MAX_HANDLERS 64

struct lm_view {
	uint8_t *addr;
	int uffd;
	bool sigbus;		/* SIGBUS mode: no sleepers, no wake-ups */
};

struct lm_stats_live {
	_Atomic uint64_t faults[LM_ORIGIN_COUNT];
	_Atomic uint64_t faults_waited, faults_present;
	_Atomic uint64_t pages_demand, pages_background, pages_zero;
	_Atomic uint64_t pages_around;
	_Atomic uint64_t pages_failed, bytes_read;
	_Atomic uint64_t faults_retried, pages_removed;
	_Atomic uint64_t lat_count, lat_max_ns;
	_Atomic uint64_t lat_hist[LM_LAT_BUCKETS];
};

struct lm_handlers {
	pthread_t thread[LM_MAX_HANDLERS];
	unsigned nr;
	int stop_fd;		/* eventfd: readable means exit */
	unsigned view;		/* the blocking view they serve */
};

struct lm_background {
	pthread_t thread;
	bool running;
	_Atomic bool stop;
	void *batch;		/* COPY install: a run of pages is read here */
	size_t batch_size;
};

struct lm_region {
	char name[64];
	uint64_t size, page_size, nr_pages;
	unsigned page_shift;
	unsigned fault_around;		/* pages per demand fault, >= 1 */
	enum lm_backing backing;
	enum lm_install install;
	enum lm_delivery delivery;
	int memfd;
	uint8_t *alias;
	struct lm_view view[LM_MAX_VIEWS];
	unsigned nr_views;
	struct lm_source *src;
	lm_fail_fn on_fail;
	void *on_fail_arg;

	struct lm_pagemap map;
	struct lm_staging staging;
	struct lm_handlers handlers;
	struct lm_background bg;
	struct lm_stats_live stats;

	_Atomic uint64_t nr_done;	/* pages present or failed */
	_Atomic uint32_t complete;	/* futex word: 1 when nr_done == nr */
	_Atomic int first_err;
	_Atomic uint64_t first_err_off;
	/* Demand faults being resolved now; background fill backs off. */
	_Atomic int demand_active;
	int sigbus_slot;		/* index in the SIGBUS registry, or -1 */
	/*
	 * Adopted from another process (foreign.c): view 0's address is in
	 * that process and never dereferenced here, the userfaultfd belongs
	 * to the foreign space, installs return -EAGAIN instead of retrying
	 * (the events that clear it are read by the same thread), and pages
	 * can be removed (LM_PS_REMOVED).
	 */
	bool foreign;
	/* Foreign regions: fault-around only for a sequential stream, i.e.
	 * when a demand fault lands where the previous one's run ended. */
	bool around_adaptive;
	const uint8_t *image;		/* foreign: the source mapped, or NULL */
	/* Foreign: held for reading by batched installs, for writing while
	 * events are read and applied (prefetch.c says why). */
	pthread_rwlock_t *events_lock;
	_Atomic uint64_t next_seq_idx;
};

/* A page its foreign owner gave back (balloon): it reads as zero from now
 * on and is never filled from the source again. Always false for regions
 * lazymem maps itself. */
static inline bool lm__page_removed(const struct lm_region *r, uint64_t idx)
{
	return r->foreign && lm_pagemap_removed(&r->map, idx);
}

/* fault.c: the fault path proper, used by every delivery. */
int lm__fault_begin(struct lm_region *r, unsigned view, uint64_t off,
		    enum lm_fault_origin origin, struct lm_fault *f,
		    bool want_page);
int lm__fault(struct lm_region *r, unsigned view, uint64_t off,
	      enum lm_fault_origin origin);
/* A run of pages installed at once (background fill); see fault.c. */
void lm__pages_done(struct lm_region *r, uint64_t first, uint64_t n,
		    uint32_t state, enum lm_fault_origin origin, bool zero);
void lm__record_error(struct lm_region *r, uint64_t off, int err);
/* Install claimed pages [off, off+len) from buf (NULL: zero pages; CONTINUE:
 * the alias already holds them) in view `view`, or, for CONTINUE, in every
 * view when all_views. EEXIST is success (the page is there: sleepers are
 * woken); foreign regions return -EAGAIN while an event is pending. */
int lm__install_range(struct lm_region *r, unsigned view, bool all_views,
		      uint64_t off, const uint8_t *buf, uint64_t len);
/* Map [off, off+len) of the alias into every view (CONTINUE install). */
int lm__continue_all(struct lm_region *r, uint64_t off, uint64_t len);

/* region.c: a region over memory of another process (foreign.c). */
int lm__region_adopt(const char *name, int uffd, uint64_t addr,
		     uint64_t size, uint64_t page_size, struct lm_source *src,
		     struct lm_region **out);

/* prefetch.c: install pages [first, first+n), all claimed by the caller,
 * reading them into buf (n pages) with one source read and one
 * UFFDIO_COPY without waking; wake: one UFFDIO_WAKE over them at the end.
 * 0, or -EAGAIN (foreign: an event is pending; pages not installed were
 * given back MISSING), or the first page error (those pages failed). */
int lm__install_claimed(struct lm_region *r, uint64_t first, uint64_t n,
			void *buf, bool wake);

/* Each page's outcome in a run of at most 64: bit j is page first + j. */
struct lm__run_outcome {
	uint64_t installed, failed;
};
/* lm__install_claimed with the content given (lm_region_install_run):
 * data holds the n pages, or is NULL for zero pages; page: one page of
 * scratch. Counted under origin; out gets each page's outcome. */
int lm__install_claimed_given(struct lm_region *r, uint64_t first, uint64_t n,
			      const void *data, enum lm_fault_origin origin,
			      void *page, struct lm__run_outcome *out);

/* handler.c */
int lm__handlers_start(struct lm_region *r, unsigned view, unsigned n,
		       const int *cpus);
void lm__handlers_stop(struct lm_region *r);

/* sigbus.c */
int lm__sigbus_register(struct lm_region *r);
void lm__sigbus_unregister(struct lm_region *r);

/* background.c */
int lm__background_start(struct lm_region *r);
void lm__background_stop(struct lm_region *r);

/* stats.c */
void lm__stats_latency(struct lm_region *r, uint64_t ns);

#endif
