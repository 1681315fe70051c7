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
/* Read DIR/meta.json and check memory.img and pages.xxh against it. */
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
 */
int lm_snap_source_open(const char *dir, const struct lm_snap_meta *m,
			struct lm_source **out);

#ifdef __cplusplus
}
#endif
#endif
