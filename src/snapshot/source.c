/*
 * source.c - the snapshot page source: memory.img read through the file
 * source, every page checked against pages.xxh before it is handed on.
 *
 * A page that fails its check is -EBADMSG, which the region turns into a
 * failed (poisoned) page: corrupt memory never reaches the guest. A hole is
 * reported as a zero page only if its recorded hash is the zero page's,
 * so a page punched out of memory.img is caught too.
 *
 * The hashes are read when first needed, a block of 512 (4 KiB of
 * pages.xxh) at a time, not all at open: pages.xxh is 2 MiB per GiB of
 * guest, and reading it whole before the first fault put 1-6 ms per GiB
 * (cold cache) between a restore call and the guest's first instruction,
 * growing with the VM. Open still checks the file's header and size, so a
 * truncated or swapped file is refused before any guest runs.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/snapshot_internal.h"

#define HASH_BLOCK 512u		/* hashes per block: one 4 KiB read */

enum { BLOCK_UNREAD, BLOCK_READING, BLOCK_READ };

struct snap_source {
	struct lm_source base;
	struct lm_source *file;
	int hash_fd;
	uint64_t *hashes;		/* a block's part valid once BLOCK_READ */
	_Atomic uint8_t *block;		/* per block: BLOCK_* */
	uint64_t nr_pages, page_size, zero_hash;
};

/*
 * The recorded hash of page i. The first thread to need a block reads it
 * into the table; a thread that finds it being read reads just its own
 * hash meanwhile rather than wait. Safe in the SIGBUS handler: pread and
 * atomics, no allocation, no lock.
 */
static int hash_of(struct snap_source *ss, uint64_t i, uint64_t *h)
{
	uint64_t b = i / HASH_BLOCK, first = b * HASH_BLOCK;
	uint8_t st = atomic_load_explicit(&ss->block[b], memory_order_acquire);
	size_t n;
	int err;

	if (st == BLOCK_READ) {
		*h = ss->hashes[i];
		return 0;
	}
	if (st == BLOCK_UNREAD &&
	    atomic_compare_exchange_strong(&ss->block[b], &st, BLOCK_READING)) {
		n = (size_t)(ss->nr_pages - first < HASH_BLOCK ?
			     ss->nr_pages - first : HASH_BLOCK) * 8;
		err = lm__snap_pread_full(ss->hash_fd, &ss->hashes[first], n,
				 LM_SNAP_HASH_DATA + first * 8);
		atomic_store_explicit(&ss->block[b],
				      err ? BLOCK_UNREAD : BLOCK_READ,
				      memory_order_release);
		if (!err)
			*h = ss->hashes[i];
		return err;
	}
	return lm__snap_pread_full(ss->hash_fd, h, 8, LM_SNAP_HASH_DATA + i * 8);
}

static int snap_read(struct lm_source *s, uint64_t off, void *dst, size_t len)
{
	struct snap_source *ss = (struct snap_source *)s;
	uint64_t h;
	int err;

	if (off % ss->page_size || len % ss->page_size)
		return -EINVAL;	/* a page can only be checked whole */
	err = lm_source_read(ss->file, off, dst, len);
	if (err)
		return err;
	for (size_t p = 0; p < len; p += ss->page_size) {
		if ((err = hash_of(ss, (off + p) / ss->page_size, &h)))
			return err;
		if (XXH3_64bits((uint8_t *)dst + p, ss->page_size) != h)
			return -EBADMSG;
	}
	return 0;
}

static int snap_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct snap_source *ss = (struct snap_source *)s;
	uint64_t h;

	if (off % ss->page_size || len % ss->page_size ||
	    ss->file->ops->is_zero(ss->file, off, len) != 1)
		return 0;
	for (size_t p = 0; p < len; p += ss->page_size)
		if (hash_of(ss, (off + p) / ss->page_size, &h) ||
		    h != ss->zero_hash)
			return 0;	/* must be read, and so checked */
	return 1;
}

static void snap_destroy(struct lm_source *s)
{
	struct snap_source *ss = (struct snap_source *)s;

	lm_source_destroy(ss->file);
	if (ss->hash_fd >= 0)
		close(ss->hash_fd);
	free(ss->hashes);
	free((void *)ss->block);
	free(ss);
}

static const struct lm_source_ops snap_ops = {
	.read = snap_read,
	.is_zero = snap_is_zero,
	.destroy = snap_destroy,
};

int lm_snap_source_open(const char *dir, const struct lm_snap_meta *m,
			struct lm_source **out)
{
	char path[4096];
	struct snap_source *ss = calloc(1, sizeof(*ss));
	uint64_t nr = m->mem_size / m->page_size;
	uint8_t *zero;
	int err;

	if (!ss)
		return lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	ss->hash_fd = -1;
	err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_MEM_FILE);
	if (!err)
		err = lm_source_file_open(path, &ss->file);
	if (!err)
		err = lm__snap_hashes_open(dir, m, &ss->hash_fd);
	/* calloc: the table's pages cost memory only once a block is read */
	ss->hashes = err ? NULL : calloc(nr, sizeof(uint64_t));
	ss->block = err ? NULL : calloc((nr + HASH_BLOCK - 1) / HASH_BLOCK, 1);
	zero = err ? NULL : calloc(1, m->page_size);
	if (!err && (!ss->hashes || !ss->block || !zero))
		err = lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	if (err) {
		free(zero);
		ss->base.ops = &snap_ops;
		snap_destroy(&ss->base);
		return err;
	}
	ss->zero_hash = XXH3_64bits(zero, m->page_size);
	free(zero);
	ss->nr_pages = nr;
	ss->page_size = m->page_size;
	ss->base.ops = &snap_ops;
	ss->base.size = m->mem_size;
	snprintf(ss->base.desc, sizeof(ss->base.desc), "snapshot %.80s", dir);
	*out = &ss->base;
	return 0;
}
