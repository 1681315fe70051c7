/*
 * verify.c - checking every page of a snapshot against its hash, reading
 * memory.img sequentially in large chunks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "util/bits.h"
#include "snapshot/snapshot_internal.h"

#define CHUNK (4u << 20)

int lm_snap_verify(const char *dir, const struct lm_snap_meta *m,
		   uint64_t *bad_pages, uint64_t *first_bad,
		   lm_snap_progress_fn progress, void *arg)
{
	char path[4096];
	uint64_t *hashes, ps = m->page_size;
	uint8_t *buf;
	int fd, err = lm__snap_hashes_load(dir, m, &hashes);

	*bad_pages = 0;
	*first_bad = 0;
	if (err)
		return err;
	if ((err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_MEM_FILE)) ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		free(hashes);
		return err ? err : lm_error(-errno, "%s: %s", path,
					    strerror(errno));
	}
	buf = malloc(LM_MAX(CHUNK, ps));
	for (uint64_t off = 0; buf && off < m->mem_size && !err;) {
		uint64_t want = LM_MIN((uint64_t)LM_MAX(CHUNK, ps),
				       m->mem_size - off);
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n != (ssize_t)want) {
			err = lm_error(-EIO, "%s: read at %llu failed", path,
				       (unsigned long long)off);
			break;
		}
		for (uint64_t p = 0; p < want; p += ps) {
			if (XXH3_64bits(buf + p, ps) == hashes[(off + p) / ps])
				continue;
			if (!*bad_pages)
				*first_bad = off + p;
			(*bad_pages)++;
		}
		off += want;
		if (progress)
			progress(off, m->mem_size, arg);
	}
	if (!buf)
		err = lm_error(-ENOMEM, "%s: out of memory", path);
	free(buf);
	free(hashes);
	close(fd);
	if (!err && *bad_pages)
		err = lm_error(-EBADMSG, "%s: %llu pages do not match their "
			       "hash, the first at offset 0x%llx", path,
			       (unsigned long long)*bad_pages,
			       (unsigned long long)*first_bad);
	return err;
}
