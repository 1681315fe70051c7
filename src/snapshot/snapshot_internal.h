/*
 * snapshot_internal.h - what the snapshot files share: file names and the
 * pages.xxh layout.
 */
#ifndef LAZYMEM_SNAPSHOT_INTERNAL_H
#define LAZYMEM_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <lazymem/snapshot.h>

#define LM_SNAP_META_FILE "meta.json"
#define LM_SNAP_MEM_FILE "memory.img"
#define LM_SNAP_HASH_FILE "pages.xxh"

/* pages.xxh: this header, then one little-endian XXH3-64 per page. */
struct lm_snap_hash_header {
	char magic[8];		/* "LMPGXXH3" */
	uint32_t version;	/* 1 */
	uint32_t reserved;
	uint64_t page_size;
	uint64_t nr_pages;
};
#define LM_SNAP_HASH_MAGIC "LMPGXXH3"
#define LM_SNAP_HASH_DATA sizeof(struct lm_snap_hash_header)	/* offset */

/* meta.json text of m (malloc'd), or NULL. */
char *lm__snap_meta_format(const struct lm_snap_meta *m);
/* All of count bytes at off of fd, or -EIO (short: the file shrank, or
 * failed). No message: safe in the SIGBUS handler, where source.c reads
 * page hashes. */
int lm__snap_pread_full(int fd, void *dst, size_t count, uint64_t off);
/* Open pages.xxh of DIR after checking its header and size against m:
 * the hash of page i is the 8 bytes at LM_SNAP_HASH_DATA + 8 i. */
int lm__snap_hashes_open(const char *dir, const struct lm_snap_meta *m,
			 int *fd);
/* Load and check pages.xxh of DIR against m: a malloc'd array; with
 * hashes NULL, only check its header and size. */
int lm__snap_hashes_load(const char *dir, const struct lm_snap_meta *m,
			 uint64_t **hashes);
/* "DIR/NAME" into buf; -ENAMETOOLONG if it does not fit. */
int lm__snap_path(char *buf, size_t len, const char *dir, const char *name);

/* meta.c: every vCPU blob has its hash and matches it (-EBADMSG). */
int lm__snap_blobs_check(const char *dir, const struct lm_snap_meta *m);
/* save.c: pwrite all of buf at off; -errno with a message naming path and
 * offset. */
int lm__snap_write_full(int fd, const void *buf, uint64_t len, uint64_t off,
			const char *path);
bool lm__snap_page_is_zero(const uint8_t *p, uint64_t len);
/* save.c: pages.xxh from hashes, then meta.json through a rename. */
int lm__snap_finish(const char *dir, struct lm_snap_meta *m,
		    const uint64_t *hashes);

#endif
