/*
 * region.c - setting a region up and tearing it down.
 *
 * The fault path lives in fault.c and has no set-up code in it; this file
 * has everything else a region needs once: checking the configuration,
 * mapping the memory (and its alias), registering each view with its own
 * userfaultfd, and starting the threads that serve it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/region_internal.h"
#include "core/uffd.h"

#define HUGE_2M (2ull << 20)

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif

uint64_t lm_backing_page_size(enum lm_backing b)
{
	return b == LM_BACKING_HUGETLB ? HUGE_2M
				       : (uint64_t)sysconf(_SC_PAGESIZE);
}

const char *lm_backing_name(enum lm_backing b)
{
	static const char *const n[] = { "anon", "memfd", "hugetlb" };

	return (unsigned)b < 3 ? n[b] : "?";
}

const char *lm_install_name(enum lm_install m)
{
	return m == LM_INSTALL_COPY ? "copy" : "continue";
}

const char *lm_delivery_name(enum lm_delivery d)
{
	return d == LM_DELIVERY_HANDLER ? "handler" : "self";
}

static int check_config(const struct lm_region_config *c, const char *name)
{
	uint64_t ps = lm_backing_page_size(c->backing);

	if ((unsigned)c->backing > LM_BACKING_HUGETLB ||
	    (unsigned)c->install > LM_INSTALL_CONTINUE ||
	    (unsigned)c->delivery > LM_DELIVERY_SELF)
		return lm_error(-EINVAL, "region '%s': unknown backing, "
				"install or delivery value", name);
	if (c->page_size && c->page_size != ps)
		return lm_error(-EINVAL, "region '%s': page size %llu does not "
				"match the %s backing's page size %llu", name,
				(unsigned long long)c->page_size,
				lm_backing_name(c->backing),
				(unsigned long long)ps);
	if (c->size == 0 || c->size % ps)
		return lm_error(-EINVAL, "region '%s': size %llu is not a "
				"positive multiple of the %s page size %llu",
				name, (unsigned long long)c->size,
				lm_backing_name(c->backing),
				(unsigned long long)ps);
	if (!c->source)
		return lm_error(-EINVAL, "region '%s': no source", name);
	if (c->source->size < c->size)
		return lm_error(-EINVAL, "region '%s': source '%s' holds %llu "
				"bytes but the region needs %llu", name,
				c->source->desc,
				(unsigned long long)c->source->size,
				(unsigned long long)c->size);
	if (c->install == LM_INSTALL_CONTINUE &&
	    c->backing == LM_BACKING_ANON)
		return lm_error(-EINVAL, "region '%s': the continue install "
				"needs shared memory (memfd or hugetlb "
				"backing), not anon", name);
	if (c->vmm_view && (c->install != LM_INSTALL_CONTINUE ||
			    c->delivery != LM_DELIVERY_SELF))
		return lm_error(-EINVAL, "region '%s': a VMM view (hybrid) "
				"needs the continue install and self "
				"delivery", name);
	if (c->fault_around > 64 || (uint64_t)c->fault_around * ps > (4u << 20))
		return lm_error(-EINVAL, "region '%s': fault-around of %u "
				"pages of %llu bytes; at most 64 pages and "
				"4 MiB", name, c->fault_around,
				(unsigned long long)ps);
	if ((unsigned)c->write_protect > LM_WP_ASYNC)
		return lm_error(-EINVAL, "region '%s': unknown write_protect "
				"value", name);
	/* hugetlb is tracked per 2 MiB page: the page-state map already
	 * has one word per huge page, and uffd-wp protects whole ones. */
	if (c->write_protect != LM_WP_NONE &&
	    (c->install != LM_INSTALL_COPY || c->vmm_view || c->background))
		return lm_error(-EINVAL, "region '%s': write-protect tracking "
				"needs the copy install, no VMM view and no "
				"background fill", name);
	if (c->store &&
	    (c->install != LM_INSTALL_COPY || c->vmm_view || c->background ||
	     c->backing == LM_BACKING_HUGETLB))
		return lm_error(-EINVAL, "region '%s': a page store (reclaim) "
				"needs the copy install, no VMM view, no "
				"background fill and an anon or memfd "
				"backing", name);
	if (c->store && c->backing == LM_BACKING_MEMFD &&
	    c->write_protect == LM_WP_ASYNC)
		return lm_error(-EINVAL, "region '%s': a page store on memfd "
				"backing evicts under write-protection, which "
				"async write-protect would let writes through; "
				"use write_protect none or sync", name);
	if ((unsigned)c->thp > LM_THP_AUTO)
		return lm_error(-EINVAL, "region '%s': unknown thp value", name);
	if (c->thp != LM_THP_OFF && c->backing == LM_BACKING_HUGETLB)
		return lm_error(-EINVAL, "region '%s': thp collapse is for anon "
				"or memfd backing; hugetlb pages are huge "
				"already", name);
	if (c->thp != LM_THP_OFF && c->backing == LM_BACKING_MEMFD &&
	    (c->write_protect != LM_WP_NONE || c->store))
		return lm_error(-EINVAL, "region '%s': thp on memfd backing "
				"cannot be combined with write_protect or a "
				"page store: the kernel splits or zeroes a huge "
				"shmem page under them behind the page-state "
				"map; use anon backing", name);
	if (c->handler_threads > LM_MAX_HANDLERS)
		return lm_error(-EINVAL, "region '%s': %u handler threads, "
				"at most %d", name, c->handler_threads,
				LM_MAX_HANDLERS);
	return 0;
}

/* Must the mapping be 2 MiB aligned? A huge page (hugetlb, or thp
 * after the collapse) maps a 2 MiB-aligned range only. */
static bool needs_align(const struct lm_region *r)
{
	return r->thp.mode != LM_THP_OFF || r->backing == LM_BACKING_HUGETLB;
}

/*
 * Where to map r->size bytes 2 MiB aligned (needs_align): reserve 2 MiB
 * more, keep the aligned part, give the rest back. Other regions map
 * where the kernel likes (hint NULL) with no reservation first: one
 * mmap() instead of two on the way to a restore's first touch.
 */
static void *reserve(struct lm_region *r)
{
	uint64_t extra = HUGE_2M;
	uint8_t *p = mmap(NULL, r->size + extra, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + extra - 1) & ~(uintptr_t)(HUGE_2M - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + r->size < p + r->size + extra)
		munmap(a + r->size, (size_t)(p + r->size + extra - (a + r->size)));
	return a;
}

/* Huge pages after the fill, or 4 KiB pages for good (collapse.c). */
static void advise_huge(struct lm_region *r, void *p)
{
	madvise(p, r->size, r->thp.mode != LM_THP_OFF ? MADV_HUGEPAGE
						      : MADV_NOHUGEPAGE);
}

/* mmap at a reserved 2 MiB-aligned range (MAP_FIXED over it), or
 * anywhere when the region needs no alignment. */
static void *map_at(struct lm_region *r, int prot, int flags, int fd)
{
	void *at = needs_align(r) ? reserve(r) : NULL;
	void *p;

	if (needs_align(r) && !at)
		return MAP_FAILED;
	p = mmap(at, r->size, prot, flags | (at ? MAP_FIXED : 0), fd, 0);
	if (p == MAP_FAILED && at) {
		int err = errno;

		munmap(at, r->size);
		errno = err;
	}
	return p;
}

static void *map_shared(struct lm_region *r)
{
	void *p = map_at(r, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd);

	if (p == MAP_FAILED)
		return NULL;
	if (r->backing == LM_BACKING_MEMFD && r->thp.mode != LM_THP_OFF)
		advise_huge(r, p);
	return p;
}

static int map_anon(struct lm_region *r)
{
	void *p = map_at(r, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);

	if (p == MAP_FAILED) {
		int err = -errno;

		return lm_error(err, "region '%s': cannot map %llu bytes: %s",
				r->name, (unsigned long long)r->size,
				strerror(-err));
	}
	/* Faults are per 4 KiB page either way (userfaultfd takes them
	 * first); without thp, MADV_NOHUGEPAGE keeps khugepaged from
	 * collapsing behind the page-state map's back too. */
	advise_huge(r, p);
	r->view[0].addr = p;
	r->nr_views = 1;
	return 0;
}

/* Zeroes to UFFDIO_COPY from (region_internal.h says who needs them). */
static int map_zero(struct lm_region *r, const struct lm_region_config *c)
{
	if (c->write_protect == LM_WP_NONE && c->thp == LM_THP_OFF)
		return 0;
	/* never written: reads give the shared zero page, so 256 KiB (or
	 * one huge page) of zeroes cost no memory */
	r->zero_size = LM_MAX(64 * 4096ull, r->page_size);
	r->zero = mmap(NULL, r->zero_size, PROT_READ,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->zero == MAP_FAILED) {
		r->zero = NULL;
		return lm_error(-errno, "region '%s': zero buffer: %s",
				r->name, strerror(errno));
	}
	return 0;
}

static int map_memory(struct lm_region *r, bool vmm_view)
{
	if (r->backing == LM_BACKING_ANON)
		return map_anon(r);

	unsigned flags = MFD_CLOEXEC;

	if (r->backing == LM_BACKING_HUGETLB)
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
	r->memfd = memfd_create(r->name, flags);
	if (r->memfd < 0)
		return lm_error(-errno, "region '%s': memfd_create: %s",
				r->name, strerror(errno));
	if (ftruncate(r->memfd, (off_t)r->size) < 0)
		return lm_error(-errno, "region '%s': cannot size memfd to "
				"%llu bytes: %s", r->name,
				(unsigned long long)r->size, strerror(errno));
	r->view[0].addr = map_shared(r);
	r->alias = map_shared(r);
	r->nr_views = 1;
	if (vmm_view) {
		r->view[1].addr = map_shared(r);
		r->nr_views = 2;
	}
	if (!r->view[0].addr || !r->alias || (vmm_view && !r->view[1].addr)) {
		int err = -errno;

		if (r->backing == LM_BACKING_HUGETLB)
			return lm_error(err, "region '%s': cannot map %llu "
					"MiB of 2 MiB hugetlb pages (%s); "
					"reserve them in "
					"/proc/sys/vm/nr_hugepages", r->name,
					(unsigned long long)(r->size >> 20),
					strerror(-err));
		return lm_error(err, "region '%s': mmap of memfd: %s",
				r->name, strerror(-err));
	}
	return 0;
}

static uint64_t features_for(const struct lm_region *r, bool sigbus)
{
	uint64_t f = UFFD_FEATURE_POISON;
	bool minor = r->install == LM_INSTALL_CONTINUE;

	if (r->backing == LM_BACKING_MEMFD)
		f |= UFFD_FEATURE_MISSING_SHMEM |
		     (minor ? UFFD_FEATURE_MINOR_SHMEM : 0);
	if (r->backing == LM_BACKING_HUGETLB)
		f |= UFFD_FEATURE_MISSING_HUGETLBFS |
		     (minor ? UFFD_FEATURE_MINOR_HUGETLBFS : 0);
	return f | (sigbus ? UFFD_FEATURE_SIGBUS : 0) | lm__wp_features(r) |
	       lm__reclaim_features(r);
}

/* The userfaultfd refused features: name the ones this kernel lacks. */
static int features_missing(struct lm_region *r, uint64_t want, int err)
{
	static const struct { uint64_t bit; const char *name; } names[] = {
		{ UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP" },
		{ UFFD_FEATURE_WP_UNPOPULATED, "WP_UNPOPULATED" },
		{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "WP_HUGETLBFS_SHMEM" },
		{ UFFD_FEATURE_WP_ASYNC, "WP_ASYNC" },
		{ UFFD_FEATURE_POISON, "POISON" },
		{ UFFD_FEATURE_SIGBUS, "SIGBUS" },
		{ UFFD_FEATURE_MINOR_SHMEM, "MINOR_SHMEM" },
		{ UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM" },
		{ UFFD_FEATURE_MOVE, "MOVE" },
	};
	uint64_t have = 0;
	char list[256] = "";

	if (err != -EOPNOTSUPP || lm_uffd_probe_features(&have))
		return lm_error(err, "region '%s': userfaultfd with features "
				"0x%llx: %s", r->name, (unsigned long long)want,
				strerror(-err));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((want & names[i].bit) && !(have & names[i].bit))
			snprintf(list + strlen(list), sizeof(list) - strlen(list),
				 " %s", names[i].name);
	return lm_error(err, "region '%s': this kernel's userfaultfd lacks%s",
			r->name, list[0] ? list : " a feature asked for");
}

/*
 * Both modes are registered for the continue install: MINOR catches pages
 * already in the page cache but not mapped in this view, MISSING catches
 * pages not in the page cache at all, which shmem would otherwise fill with
 * zeroes silently. Either is resolved by writing the alias and CONTINUE.
 */
static int register_view(struct lm_region *r, unsigned i, bool sigbus)
{
	struct lm_view *v = &r->view[i];
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING;
	int err;

	if (r->install == LM_INSTALL_CONTINUE)
		mode |= UFFDIO_REGISTER_MODE_MINOR;
	mode |= lm__wp_register_mode(r) | lm__reclaim_register_mode(r);
	v->sigbus = sigbus;
	err = lm_uffd_open(features_for(r, sigbus), &v->uffd);
	if (err)
		return features_missing(r, features_for(r, sigbus), err);
	err = lm_uffd_register(v->uffd, v->addr, r->size, mode);
	if (err)
		return lm_error(err, "region '%s': UFFDIO_REGISTER of %s "
				"view (%s): %s", r->name, i ? "VMM" : "main",
				lm_backing_name(r->backing), strerror(-err));
	return 0;
}

static int start_threads(struct lm_region *r, const struct lm_region_config *c)
{
	unsigned nh = c->handler_threads ? c->handler_threads : 1;
	int err = 0;

	if (c->delivery == LM_DELIVERY_HANDLER)
		err = lm__handlers_start(r, 0, nh, c->handler_cpus);
	else
		err = lm__sigbus_register(r);
	if (!err && c->vmm_view)
		err = lm__handlers_start(r, 1, nh, NULL);
	r->bg.configured = c->background;
	if (!err && c->background && !c->background_deferred)
		err = lm__background_start(r);
	if (!err)
		err = lm__thp_start(r);
	return err;
}

int lm_region_create(const struct lm_region_config *c, struct lm_region **out)
{
	const char *name = c->name ? c->name : "region";
	struct lm_region *r;
	int err = check_config(c, name);

	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return lm_error(-ENOMEM, "region '%s': out of memory", name);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->size = c->size;
	r->page_size = lm_backing_page_size(c->backing);
	r->page_shift = (unsigned)__builtin_ctzll(r->page_size);
	r->nr_pages = r->size >> r->page_shift;
	r->fault_around = c->fault_around > 1 ? c->fault_around : 1;
	r->backing = c->backing;
	r->install = c->install;
	r->delivery = c->delivery;
	r->src = c->source;
	r->on_fail = c->on_fail;
	r->on_fail_arg = c->on_fail_arg;
	r->memfd = -1;
	r->sigbus_slot = -1;
	r->handlers.stop_fd = -1;
	r->wp.pagemap_fd = -1;
	for (unsigned i = 0; i < LM_MAX_VIEWS; i++)
		r->view[i].uffd = -1;
	lm_staging_init(&r->staging, r->page_size * r->fault_around);

	err = lm__stats_init(r);
	if (err) {
		lm_error(err, "region '%s': statistics shards: %s", name,
			 strerror(-err));
		goto fail;
	}
	err = lm_pagemap_init(&r->map, r->nr_pages);
	if (err) {
		lm_error(err, "region '%s': page-state map for %llu pages: %s",
			 name, (unsigned long long)r->nr_pages, strerror(-err));
		goto fail;
	}
	err = lm__wp_init(r, c->write_protect);
	r->reclaim.store = c->store;
	if (!err)
		err = lm__thp_init(r, c->thp);
	if (!err)
		err = map_zero(r, c);
	if (!err)
		err = map_memory(r, c->vmm_view);
	if (!err)
		err = register_view(r, 0, c->delivery == LM_DELIVERY_SELF);
	if (!err)
		err = lm__reclaim_init(r, c->store);
	if (!err && c->vmm_view)
		err = register_view(r, 1, false);
	if (!err)
		err = start_threads(r, c);
	if (err)
		goto fail;
	*out = r;
	return 0;
fail:
	lm_region_destroy(r);
	return err;
}

/*
 * A region over memory another process mapped and registered: nothing is
 * mapped or registered here. The userfaultfd stays the caller's (a foreign
 * space shares one among its ranges) and faults reach the region through
 * lm__fault, called by whoever reads that userfaultfd.
 */
int lm__region_adopt(const char *name, int uffd, uint64_t addr,
		     uint64_t size, uint64_t page_size, struct lm_source *src,
		     struct lm_region **out)
{
	struct lm_region *r;
	int err;

	if (page_size != 4096 && page_size != HUGE_2M)
		return lm_error(-EINVAL, "region '%s': page size %llu; "
				"expected 4096 or 2097152", name,
				(unsigned long long)page_size);
	if (!size || size % page_size || addr % page_size)
		return lm_error(-EINVAL, "region '%s': address 0x%llx and size "
				"%llu must be positive multiples of the page "
				"size %llu", name, (unsigned long long)addr,
				(unsigned long long)size,
				(unsigned long long)page_size);
	if (!src || src->size < size)
		return lm_error(-EINVAL, "region '%s': source '%s' holds %llu "
				"bytes but the region needs %llu", name,
				src ? src->desc : "(none)",
				(unsigned long long)(src ? src->size : 0),
				(unsigned long long)size);
	r = calloc(1, sizeof(*r));
	if (!r)
		return lm_error(-ENOMEM, "region '%s': out of memory", name);
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->foreign = true;
	r->size = size;
	r->page_size = page_size;
	r->page_shift = (unsigned)__builtin_ctzll(page_size);
	r->nr_pages = size >> r->page_shift;
	/* A sequential stream (a guest reading its memory in order) grows
	 * to 16 pages per fault, up to 64 KiB; random access gets one page
	 * (fault.c, around_window: the space's handler thread keeps the
	 * window, as a self-resolving thread does). */
	r->fault_around = page_size == 4096 ? 16 : 1;
	/* Only the zero-page choice depends on it: hugetlbfs has no
	 * UFFDIO_ZEROPAGE. The other process's memory is anonymous or
	 * shared; a MISSING registration serves both with UFFDIO_COPY. */
	r->backing = page_size == HUGE_2M ? LM_BACKING_HUGETLB
					  : LM_BACKING_ANON;
	r->install = LM_INSTALL_COPY;
	r->delivery = LM_DELIVERY_HANDLER;
	r->src = src;
	r->memfd = -1;
	r->sigbus_slot = -1;
	r->handlers.stop_fd = -1;
	r->wp.pagemap_fd = -1;
	r->view[0].addr = (uint8_t *)(uintptr_t)addr;
	r->view[0].uffd = uffd;
	r->view[1].uffd = -1;
	r->nr_views = 1;
	lm_staging_init(&r->staging, page_size * r->fault_around);
	err = lm__stats_init(r);
	if (!err)
		err = lm_pagemap_init(&r->map, r->nr_pages);
	if (err) {
		lm_error(err, "region '%s': page-state map for %llu pages: %s",
			 name, (unsigned long long)r->nr_pages, strerror(-err));
		lm__stats_fini(r);
		lm_staging_fini(&r->staging);
		free(r);
		return err;
	}
	*out = r;
	return 0;
}

void lm_region_destroy(struct lm_region *r)
{
	if (!r)
		return;
	lm__thp_fini(r);
	lm__background_stop(r);
	lm__handlers_stop(r);
	lm__sigbus_unregister(r);
	lm__wp_fini(r);
	lm__reclaim_fini(r);
	if (r->foreign) {
		/* The memory and the userfaultfd are not ours to release. */
		r->view[0].addr = NULL;
		r->view[0].uffd = -1;
	}
	for (unsigned i = 0; i < LM_MAX_VIEWS; i++) {
		if (r->view[i].uffd >= 0)
			close(r->view[i].uffd);
		if (r->view[i].addr)
			munmap(r->view[i].addr, r->size);
	}
	if (r->alias)
		munmap(r->alias, r->size);
	if (r->zero)
		munmap(r->zero, r->zero_size);
	if (r->memfd >= 0)
		close(r->memfd);
	lm_pagemap_fini(&r->map);
	lm__stats_fini(r);
	lm_staging_fini(&r->staging);
	free(r);
}

void *lm_region_addr(const struct lm_region *r) { return r->view[0].addr; }
void *lm_region_vmm_addr(const struct lm_region *r)
{
	return r->nr_views > 1 ? r->view[1].addr : NULL;
}
void *lm_region_alias(const struct lm_region *r) { return r->alias; }
int lm_region_memfd(const struct lm_region *r) { return r->memfd; }
uint64_t lm_region_size(const struct lm_region *r) { return r->size; }
uint64_t lm_region_page_size(const struct lm_region *r) { return r->page_size; }
const char *lm_region_name(const struct lm_region *r) { return r->name; }

uint64_t lm_region_pages_present(const struct lm_region *r)
{
	struct lm_stats s;

	lm_region_stats(r, &s);
	/* A refault is installed (and counted) again: less the evictions. */
	return s.pages_demand + s.pages_around + s.pages_background -
	       s.pages_evicted;
}

int lm_region_wait_complete(struct lm_region *r, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
			    : lm_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (!atomic_load(&r->complete)) {
		uint64_t now = lm_now_ns();
		struct timespec ts;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (deadline != UINT64_MAX) {
			ts.tv_sec = (time_t)((deadline - now) / 1000000000ull);
			ts.tv_nsec = (long)((deadline - now) % 1000000000ull);
		}
		lm_futex_wait(&r->complete, 0,
			      deadline == UINT64_MAX ? NULL : &ts);
	}
	return atomic_load(&r->first_err);
}

int lm_region_error(const struct lm_region *r, uint64_t *off)
{
	int err = atomic_load(&r->first_err);

	if (err && off)
		*off = atomic_load(&r->first_err_off);
	return err;
}
