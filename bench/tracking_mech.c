/*
 * tracking_mech.c - the write-tracking mechanisms of `lazymem bench
 * tracking` that use the library, and the ones this machine cannot run:
 *
 *   none         private anonymous memory, nothing armed: the limit;
 *   uffd-wp-async  a region with LM_WP_ASYNC: the kernel lifts the
 *                protection on a page's first write and remembers it;
 *                collect is lm_wp_collect (PAGEMAP_SCAN with
 *                PM_SCAN_WP_MATCHING: the pages written, protected again
 *                in the same walk);
 *   uffd-wp-sync a region with LM_WP_SYNC and the self delivery: a first
 *                write faults into the writing thread's SIGBUS handler,
 *                where the library calls our consumer; it records the page
 *                in the slice's array and declines the copy (slot NULL),
 *                so the library only lifts the protection. Collect reads
 *                the records and re-arms with lm_wp_release + lm_wp_protect
 *                (the library has no "protect these pages again" for sync:
 *                the re-arm is a sweep of the whole region).
 *
 * The mprotect tracker lives in tracking_mprotect.c (it owns a signal
 * handler). KVM's dirty log and dirty ring need a VM, and soft-dirty a
 * kernel built with it: their rows say why they are not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "tracking.h"

static const char *const mech_names[NR_TRK] = {
	"none", "uffd-wp-async", "uffd-wp-sync", "mprotect",
};

const char *trk_name(enum trk_mech m)
{
	return (unsigned)m < NR_TRK ? mech_names[m] : "?";
}

unsigned trk_slice_of(const struct trk *t, uint64_t p)
{
	uint64_t s = p / t->per_slice;

	return s < t->nslices ? (unsigned)s : t->nslices - 1;
}

void trk_slice(const struct trk *t, unsigned s, uint64_t *first, uint64_t *n)
{
	*first = s * t->per_slice;
	*n = s + 1 < t->nslices ? t->per_slice : t->nr_pages - *first;
}

/* Word 0 holds (page, generation); the last word the page's pattern, so a
 * page moved or zeroed behind our back is caught too. */
static void fill(struct trk *t)
{
	for (uint64_t p = 0; p < t->nr_pages; p++) {
		volatile uint64_t *pg = t->mem + p * TRK_WORDS;

		pg[0] = p << 32;
		pg[TRK_WORDS - 1] = bench_pattern(p, TRK_WORDS - 1);
	}
}

static int alloc_records(struct trk *t)
{
	for (unsigned s = 0; s < t->nslices; s++) {
		uint64_t first, n;

		trk_slice(t, s, &first, &n);
		t->rec[s].pages = calloc(n ? n : 1, sizeof(uint64_t));
		if (!t->rec[s].pages)
			return -ENOMEM;
		t->rec[s].cap = n;
	}
	return 0;
}

/* Called in the faulting thread's SIGBUS handler (async-signal-safe): note
 * the page in its slice's record, and decline the copy. */
static void *sync_record(void *arg, uint64_t off)
{
	struct trk *t = arg;
	uint64_t p = off / TRK_PS;
	struct trk_rec *rec = &t->rec[trk_slice_of(t, p)];

	if (rec->n < rec->cap)
		rec->pages[rec->n++] = p;
	else
		atomic_store(&rec->overflow, 1);
	return NULL;
}

/* Never reached while sync_record declines every copy; if the library
 * ever copied anyway, the run fails by name instead of passing. */
static void sync_slot_put(void *arg, uint64_t off, void *slot)
{
	struct trk *t = arg;

	(void)off;
	(void)slot;
	atomic_store(&t->misuse, 1);
}

static int open_plain(struct trk *t, char *why, size_t len)
{
	void *p = mmap(NULL, t->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		int e = errno;

		snprintf(why, len, "mmap of %llu bytes: %s",
			 (unsigned long long)t->size, strerror(e));
		return -e;
	}
	/* 4 KiB pages for every mechanism: the regions are THP-off too. */
	madvise(p, t->size, MADV_NOHUGEPAGE);
	t->mem = p;
	fill(t);
	return 0;
}

static int open_region(struct trk *t, char *why, size_t len)
{
	struct lm_region_config c = {
		.name = trk_name(t->mech), .size = t->size,
		.backing = LM_BACKING_ANON, .install = LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .fault_around = 64,
		.write_protect = t->mech == TRK_ASYNC ? LM_WP_ASYNC
						      : LM_WP_SYNC,
	};
	int err = lm_source_zero_create(t->size, &t->src);

	if (!err) {
		c.source = t->src;
		err = lm_region_create(&c, &t->r);
	}
	if (!err) {
		t->mem = lm_region_addr(t->r);
		/* Filled before the protection: the rounds then take
		 * write-protect faults only, never a missing page. */
		fill(t);
		t->consumer = (struct lm_wp_consumer){
			.slot_get = sync_record, .slot_put = sync_slot_put,
			.arg = t,
		};
		err = lm_wp_protect(t->r, t->mech == TRK_SYNC ? &t->consumer
							    : NULL);
	}
	if (err)
		snprintf(why, len, "%s", lm_last_error());
	return err;
}

int trk_open(struct trk *t, enum trk_mech m, uint64_t size,
	     unsigned nslices, char *why, size_t len)
{
	int err;

	memset(t, 0, sizeof(*t));
	t->mech = m;
	t->size = size;
	t->nr_pages = size / TRK_PS;
	t->nslices = nslices;
	t->per_slice = t->nr_pages / nslices;
	if ((m == TRK_SYNC || m == TRK_MPROTECT) && alloc_records(t)) {
		snprintf(why, len, "out of memory for the records");
		trk_close(t);
		return -ENOMEM;
	}
	if (m == TRK_NONE || m == TRK_MPROTECT)
		err = open_plain(t, why, len);
	else
		err = open_region(t, why, len);
	if (!err && m == TRK_MPROTECT)
		err = trk_mprotect_arm(t, why, len);
	if (err)
		trk_close(t);
	return err;
}

int trk_drain_records(struct trk *t, uint64_t *bitmap, uint64_t *count)
{
	for (unsigned s = 0; s < t->nslices; s++) {
		struct trk_rec *rec = &t->rec[s];

		if (atomic_load(&rec->overflow))
			return -EOVERFLOW;
		for (uint64_t i = 0; i < rec->n; i++)
			bitmap[rec->pages[i] >> 6] |= 1ull << (rec->pages[i] & 63);
		*count += rec->n;
		rec->n = 0;
	}
	return 0;
}

static int collect_sync(struct trk *t, uint64_t *bitmap, uint64_t *count,
			char *why, size_t len)
{
	int err = trk_drain_records(t, bitmap, count);

	if (err) {
		snprintf(why, len, "a slice took more write-protect faults "
			 "than it has pages (a page faulted twice)");
		return err;
	}
	if (atomic_load(&t->misuse)) {
		snprintf(why, len, "the library copied a page the tracker "
			 "declined (slot_put called)");
		return -EPROTO;
	}
	err = lm_wp_release(t->r);
	if (!err)
		err = lm_wp_protect(t->r, &t->consumer);
	if (err)
		snprintf(why, len, "%s", lm_last_error());
	return err;
}

int trk_collect(struct trk *t, uint64_t *bitmap, uint64_t *count,
		char *why, size_t len)
{
	int err = 0;

	*count = 0;
	switch (t->mech) {
	case TRK_NONE:
		break;
	case TRK_ASYNC:
		err = lm_wp_collect(t->r, bitmap, count);
		if (err)
			snprintf(why, len, "%s", lm_last_error());
		break;
	case TRK_SYNC:
		err = collect_sync(t, bitmap, count, why, len);
		break;
	case TRK_MPROTECT:
		err = trk_mprotect_collect(t, bitmap, count, why, len);
		break;
	default:
		err = -EINVAL;
	}
	return err;
}

void trk_close(struct trk *t)
{
	if (t->mech == TRK_MPROTECT && t->mem)
		trk_mprotect_disarm(t);
	if (t->r) {
		lm_wp_release(t->r);
		lm_region_destroy(t->r);
	} else if (t->mem) {
		munmap(t->mem, t->size);
	}
	if (t->src)
		lm_source_destroy(t->src);
	for (unsigned s = 0; s < t->nslices && s < TRK_MAX_THREADS; s++)
		free(t->rec[s].pages);
	memset(t, 0, sizeof(*t));
}

static const char *const skipped_names[NR_TRK_SKIP] = {
	"kvm-dirty-log", "kvm-dirty-ring", "soft-dirty",
};

const char *trk_skipped_name(enum trk_skipped s)
{
	return (unsigned)s < NR_TRK_SKIP ? skipped_names[s] : "?";
}

/*
 * Does this kernel keep soft-dirty bits? A new mapping is soft-dirty as a
 * whole (VM_SOFTDIRTY), so a page just written in one reads bit 55 set in
 * /proc/self/pagemap on a kernel with CONFIG_MEM_SOFT_DIRTY, and clear
 * without it. 1 yes, 0 no, -errno if the probe itself failed.
 */
static int soft_dirty_probe(void)
{
	uint64_t e = 0;
	volatile uint8_t *p = mmap(NULL, TRK_PS, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd, rc;

	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
	} else {
		off_t at = (off_t)((uintptr_t)p / TRK_PS * sizeof(e));

		rc = pread(fd, &e, sizeof(e), at) == sizeof(e)
		     ? (int)((e >> 55) & 1) : -EIO;
		close(fd);
	}
	munmap((void *)p, TRK_PS);
	return rc;
}

static void kvm_reason(const char *what, char *buf, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(buf, len, "%s needs a VM and /dev/kvm cannot be "
			 "opened here (%s): not run, and not built without a "
			 "machine to test it on", what, strerror(errno));
		return;
	}
	close(fd);
	snprintf(buf, len, "%s needs a VM: not built yet (this bench runs "
		 "plain threads; it was written where /dev/kvm was absent)",
		 what);
}

void trk_skipped_reason(enum trk_skipped s, char *buf, size_t len)
{
	int sd;

	switch (s) {
	case TRK_KVM_LOG:
		kvm_reason("KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG (manual "
			   "protect)", buf, len);
		return;
	case TRK_KVM_RING:
		kvm_reason("the KVM dirty ring", buf, len);
		return;
	case TRK_SOFT_DIRTY:
		sd = soft_dirty_probe();
		if (sd == 0)
			snprintf(buf, len, "this kernel keeps no soft-dirty "
				 "bits: a page just written in a new mapping "
				 "reads pagemap bit 55 clear (set with "
				 "CONFIG_MEM_SOFT_DIRTY)");
		else if (sd == 1)
			snprintf(buf, len, "soft-dirty is present (pagemap "
				 "bit 55 set on a new written page) but this "
				 "mechanism is not built");
		else
			snprintf(buf, len, "probing /proc/self/pagemap "
				 "failed: %s", strerror(-sd));
		return;
	default:
		snprintf(buf, len, "?");
	}
}
