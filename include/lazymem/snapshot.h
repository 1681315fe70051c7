/*
 * lazymem/snapshot.h - a saved VM's memory and state on disk, and the page
 * source that restores it lazily with every page checked.
 *
 * A snapshot is a directory:
 *
 *   meta.json    format name and version, page size, memory layout,
 *                per-vCPU state as named binary blobs (opaque here: the VMM
 *                fills and checks them), the workload's own state (any
 *                JSON object), and the names of the two files below;
 *   memory.img   raw guest memory, byte N of memory at offset N (the layout
 *                of Firecracker's memory file), zero pages left as holes;
 *   pages.xxh    a small header and one XXH3-64 hash per page.
 *
 * meta.json is written last, through a rename, so a save that died half
 * way leaves no meta.json and is refused as "not a snapshot" rather than
 * restored wrong. Everything read is validated and every refusal names the
 * file, the field and what was expected.
 */
#ifndef LAZYMEM_SNAPSHOT_H
#define LAZYMEM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include <lazymem/source.h>
#include <lazymem/region.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_SNAP_VERSION 1
#define LM_SNAP_MAX_VCPUS 256
#define LM_SNAP_MAX_REGIONS 64
#define LM_SNAP_MAX_BLOBS 16
#define LM_SNAP_MAX_BLOB 65536

/* A range of guest-physical memory and where it lives in memory.img. */
struct lm_snap_region {
	uint64_t gpa, size, offset;
};

struct lm_snap_blob {
	char name[32];
	uint8_t *data;
	size_t len;
	/* Its integrity hash (XXH3-64) as meta.json records it, read by
	 * lm_snap_meta_parse; lm_snap_open refuses a blob without one or
	 * whose data does not match it. Written by every save. */
	uint64_t xxh3;
	int has_xxh3;
};

struct lm_snap_vcpu {
	unsigned id;
	unsigned nr_blobs;
	struct lm_snap_blob blobs[LM_SNAP_MAX_BLOBS];
};

struct lm_snap_meta {
	uint32_t version;
	uint64_t created;		/* seconds since the epoch */
	uint64_t page_size;		/* 4 KiB or 2 MiB */
	uint64_t mem_size;		/* bytes of memory.img */
	uint64_t nonzero_pages;		/* pages stored (not holes) */
	unsigned nr_regions;
	struct lm_snap_region regions[LM_SNAP_MAX_REGIONS];
	unsigned nr_vcpus;
	struct lm_snap_vcpu *vcpus;	/* nr_vcpus of them */
	char *workload;			/* a JSON object as text, or NULL */
};

/*
 * Parse and validate meta.json text. 0, or -EINVAL / -EPROTO (wrong format
 * or version) / -ENOMEM with a message in lm_last_error().
 */
int lm_snap_meta_parse(const char *text, size_t len, struct lm_snap_meta *m);
/* Read DIR/meta.json and check memory.img and pages.xxh against it, and
 * each vCPU state blob against its hash (-EBADMSG naming vCPU and blob). */
int lm_snap_open(const char *dir, struct lm_snap_meta *m);
void lm_snap_meta_free(struct lm_snap_meta *m);

/* Add a state blob to a vCPU (copied). -EINVAL on a bad name or size. */
int lm_snap_vcpu_add_blob(struct lm_snap_vcpu *v, const char *name,
			  const void *data, size_t len);
/* The blob of that name, or NULL. */
const struct lm_snap_blob *lm_snap_vcpu_blob(const struct lm_snap_vcpu *v,
					     const char *name);

/* Progress: called now and then with bytes done of total. */
typedef void (*lm_snap_progress_fn)(uint64_t done, uint64_t total, void *arg);

/*
 * Save: memory.img and pages.xxh from mem (m->mem_size bytes, which the
 * caller must be able to read: a paused VM's memory), then meta.json.
 * DIR is created if missing. Fills m->nonzero_pages.
 */
int lm_snap_save(const char *dir, struct lm_snap_meta *m, const void *mem,
		 lm_snap_progress_fn progress, void *arg);

/* Check every page of DIR against its hash. bad_pages counts mismatches,
 * first_bad is the first one's offset. 0 when all match. */
int lm_snap_verify(const char *dir, const struct lm_snap_meta *m,
		   uint64_t *bad_pages, uint64_t *first_bad,
		   lm_snap_progress_fn progress, void *arg);

/*
 * A page source over DIR/memory.img that checks each page against its hash
 * as it is read; a page that fails its check is -EBADMSG (and so is failed
 * visibly by the region, never handed to the guest). Holes read as zero.
 * Only whole snapshot pages can be checked: restore onto a region of the
 * snapshot's page size (a hugetlb region's snapshot onto hugetlb); a read
 * of part of a page is -EINVAL. pages.xxh is read a block at a time as
 * pages are first checked; a pages.xxh that shrinks after open fails its
 * pages with -EIO.
 */
int lm_snap_source_open(const char *dir, const struct lm_snap_meta *m,
			struct lm_source **out);

/*
 * Live snapshot of a region while its writers keep running (lazymem/wp.h
 * does the tracking). The result is an ordinary snapshot directory.
 *
 *   LM_LIVE_COW      the instant is at the start: pause the writers, write-
 *                    protect every page (one sweep), resume. A page is
 *                    copied before its first write into a buffer of at most
 *                    max_buffer bytes, which the background writer drains
 *                    while it streams the other pages to memory.img; when
 *                    the buffer is full, the faulting thread waits for the
 *                    writer (the throttle).
 *   LM_LIVE_ITERATE  async write-protect rounds, like pre-copy to a file:
 *                    write every page, then the pages written meanwhile,
 *                    until a round finds few; the instant is a final short
 *                    pause in which the last written pages are saved.
 *
 * The region must have been created with write_protect LM_WP_SYNC (cow) or
 * LM_WP_ASYNC (iterate); any backing. On hugetlb the unit is the 2 MiB
 * page: a first write copies 2 MiB, a written page is saved whole. m
 * describes the snapshot as for lm_snap_save (mem_size must be the
 * region's size); pause() may fill m's vCPU blobs, since it is the
 * instant's only caller-side moment.
 *
 * An error (disk full, an I/O error) fails the snapshot with a message
 * naming the file and offset, lifts every protection (the writers run on)
 * and leaves no meta.json, so nothing takes the directory for a snapshot.
 * A second live snapshot of a region while one runs is refused (-EBUSY).
 */
enum lm_live_mode {
	LM_LIVE_COW,
	LM_LIVE_ITERATE,
};

struct lm_live_config {
	enum lm_live_mode mode;
	/* cow: bytes (0: 64 MiB). Slots are whole pages of the region, so
	 * on hugetlb it counts in 2 MiB pages; less than one page is
	 * refused (-EINVAL). */
	uint64_t max_buffer;
	unsigned max_rounds;	/* iterate: rounds before the pause (0: 8) */
	/* iterate: pause once a round finds at most this many written
	 * pages (0: 1/64 of the region, at least 1 MiB of pages). */
	uint64_t final_pages;
	/* Stop every writer of the region (return when none writes) and
	 * let them go again. 0 or -errno from pause. */
	int (*pause)(void *arg);
	void (*resume)(void *arg);
	void *arg;
	/*
	 * Optional memory saved at the instant ahead of the region: head_size
	 * bytes (a multiple of the page size) copied inside the pause and
	 * stored at the start of memory.img, the region after it (a VM's
	 * reserved area: page tables, stacks, mailboxes). m->mem_size is
	 * then head_size plus the region's size.
	 */
	const void *head;
	uint64_t head_size;
};

struct lm_live_report {
	uint64_t pause_ns;		/* the longest pause */
	/* of it, the library's part: the write-protect sweep (cow), the
	 * last round (iterate); the rest is the caller's pause / resume */
	uint64_t pause_work_ns;
	uint64_t total_ns;
	uint64_t copied_before_write;	/* cow: pages through the buffer */
	uint64_t written_pages;		/* pages written to memory.img */
	uint64_t throttled_ns;		/* cow: faulting threads' wait */
	uint64_t buffer_peak;		/* cow: bytes of the buffer in use */
	unsigned rounds;		/* iterate: rounds before the pause */
};

int lm_snap_live_save(const char *dir, struct lm_snap_meta *m,
		      struct lm_region *r, const struct lm_live_config *c,
		      struct lm_live_report *rep);
const char *lm_live_mode_name(enum lm_live_mode mode);

#ifdef __cplusplus
}
#endif
#endif
