/*
 * source.c - the snapshot page source: memory.img read through the file
 * source, every page checked against pages.xxh before it is handed on.
 *
 * A page that fails its check is -EBADMSG, which the region turns into a
 * failed (poisoned) page: corrupt memory never reaches the guest. A hole is
 * reported as a zero page only if its recorded hash is the zero page's,
 * so a page punched out of memory.img is caught too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/snapshot_internal.h"

struct snap_source {
	struct lm_source base;
	struct lm_source *file;
	uint64_t *hashes;
	uint64_t page_size, zero_hash;
};

static int snap_read(struct lm_source *s, uint64_t off, void *dst, size_t len)
{
	struct snap_source *ss = (struct snap_source *)s;
	int err;

	if (off % ss->page_size || len % ss->page_size)
		return -EINVAL;	/* a page can only be checked whole */
	err = lm_source_read(ss->file, off, dst, len);
	if (err)
		return err;
	for (size_t p = 0; p < len; p += ss->page_size)
		if (XXH3_64bits((uint8_t *)dst + p, ss->page_size) !=
		    ss->hashes[(off + p) / ss->page_size])
			return -EBADMSG;
	return 0;
}

static int snap_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct snap_source *ss = (struct snap_source *)s;

	if (off % ss->page_size || len % ss->page_size ||
	    ss->file->ops->is_zero(ss->file, off, len) != 1)
		return 0;
	for (size_t p = 0; p < len; p += ss->page_size)
		if (ss->hashes[(off + p) / ss->page_size] != ss->zero_hash)
			return 0;	/* must be read, and so checked */
	return 1;
}

static void snap_destroy(struct lm_source *s)
{
	struct snap_source *ss = (struct snap_source *)s;

	lm_source_destroy(ss->file);
	free(ss->hashes);
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
	uint8_t *zero;
	int err;

	if (!ss)
		return lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_MEM_FILE);
	if (!err)
		err = lm_source_file_open(path, &ss->file);
	if (!err)
		err = lm__snap_hashes_load(dir, m, &ss->hashes);
	zero = err ? NULL : calloc(1, m->page_size);
	if (!err && !zero)
		err = lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	if (err) {
		lm_source_destroy(ss->file);
		free(ss->hashes);
		free(ss);
		return err;
	}
	ss->zero_hash = XXH3_64bits(zero, m->page_size);
	free(zero);
	ss->page_size = m->page_size;
	ss->base.ops = &snap_ops;
	ss->base.size = m->mem_size;
	snprintf(ss->base.desc, sizeof(ss->base.desc), "snapshot %.80s", dir);
	*out = &ss->base;
	return 0;
}
