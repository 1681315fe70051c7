/*
 * save.c - writing a snapshot: memory.img (sparse: zero pages stay holes),
 * pages.xxh, then meta.json through a rename so that it only ever exists
 * for a complete snapshot.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/error.h"
#include "snapshot/snapshot_internal.h"

#define RUN_BYTES (1u << 20)

bool lm__snap_page_is_zero(const uint8_t *p, uint64_t len)
{
	static const uint8_t zero[16];

	return !memcmp(p, zero, 16) && !memcmp(p, p + 16, len - 16);
}

int lm__snap_write_full(int fd, const void *buf, uint64_t len, uint64_t off,
			const char *path)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lm_error(n < 0 ? -errno : -EIO, "%s: write at "
					"offset %llu: %s", path,
					(unsigned long long)off,
					n < 0 ? strerror(errno) : "no progress");
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* memory.img: non-zero pages written in runs of up to RUN_BYTES. */
static int save_memory(const char *path, struct lm_snap_meta *m,
		       const uint8_t *mem, uint64_t *hashes,
		       lm_snap_progress_fn progress, void *arg)
{
	uint64_t ps = m->page_size, nr = m->mem_size / ps, run = 0, run_len = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = 0;

	if (fd < 0)
		return lm_error(-errno, "%s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)m->mem_size) < 0) {
		err = lm_error(-errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	m->nonzero_pages = 0;
	for (uint64_t i = 0; i <= nr && !err; i++) {
		bool data = i < nr && !lm__snap_page_is_zero(mem + i * ps, ps);

		if (i < nr)
			hashes[i] = XXH3_64bits(mem + i * ps, ps);
		if (data && run_len == 0)
			run = i * ps;
		if (data)
			run_len += ps, m->nonzero_pages++;
		if (run_len && (!data || run_len >= RUN_BYTES)) {
			err = lm__snap_write_full(fd, mem + run, run_len, run, path);
			run_len = 0;
		}
		if (progress && (i % 4096 == 0 || i == nr))
			progress(i * ps, m->mem_size, arg);
	}
	if (!err && fdatasync(fd) < 0)
		err = lm_error(-errno, "%s: fdatasync: %s", path, strerror(errno));
out:
	close(fd);
	return err;
}

static int save_file(const char *path, const void *a, size_t alen,
		     const void *b, size_t blen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err;

	if (fd < 0)
		return lm_error(-errno, "%s: %s", path, strerror(errno));
	err = lm__snap_write_full(fd, a, alen, 0, path);
	if (!err && blen)
		err = lm__snap_write_full(fd, b, blen, alen, path);
	if (!err && fdatasync(fd) < 0)
		err = lm_error(-errno, "%s: fdatasync: %s", path,
			       strerror(errno));
	close(fd);
	return err;
}

/* pages.xxh from hashes, then meta.json through a rename: the last step of
 * every save (stop-and-copy here, live in live.c). */
int lm__snap_finish(const char *dir, struct lm_snap_meta *m,
		    const uint64_t *hashes)
{
	char path[4096], tmp[4096];
	struct lm_snap_hash_header h = { .version = 1 };
	uint64_t nr = m->mem_size / m->page_size;
	char *text;
	int err;

	memcpy(h.magic, LM_SNAP_HASH_MAGIC, 8);
	h.page_size = m->page_size;
	h.nr_pages = nr;
	err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_HASH_FILE);
	if (!err)
		err = save_file(path, &h, sizeof(h), hashes, nr * 8);
	if (err)
		return err;
	m->version = LM_SNAP_VERSION;
	if (!m->created)
		m->created = (uint64_t)time(NULL);
	text = lm__snap_meta_format(m);
	if (!text)
		return lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	err = lm__snap_path(tmp, sizeof(tmp), dir, LM_SNAP_META_FILE ".tmp");
	if (!err)
		err = save_file(tmp, text, strlen(text), NULL, 0);
	free(text);
	if (!err && (err = lm__snap_path(path, sizeof(path), dir,
					 LM_SNAP_META_FILE)) == 0 &&
	    rename(tmp, path) < 0)
		err = lm_error(-errno, "%s: %s", path, strerror(errno));
	return err;
}

int lm_snap_save(const char *dir, struct lm_snap_meta *m, const void *mem,
		 lm_snap_progress_fn progress, void *arg)
{
	char path[4096];
	uint64_t nr, *hashes;
	int err;

	if (!m->page_size || !m->mem_size || m->mem_size % m->page_size ||
	    !m->nr_vcpus || !m->nr_regions)
		return lm_error(-EINVAL, "snapshot %s: incomplete description "
				"(page size, memory size, regions, vCPUs)", dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return lm_error(-errno, "snapshot %s: %s", dir, strerror(errno));
	/* An old meta.json must not outlive the files it described. */
	if ((err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_META_FILE)))
		return err;
	if (unlink(path) < 0 && errno != ENOENT)
		return lm_error(-errno, "%s: %s", path, strerror(errno));

	nr = m->mem_size / m->page_size;
	hashes = malloc(nr * sizeof(*hashes));
	if (!hashes)
		return lm_error(-ENOMEM, "snapshot %s: out of memory", dir);
	err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_MEM_FILE);
	if (!err)
		err = save_memory(path, m, mem, hashes, progress, arg);
	if (!err)
		err = lm__snap_finish(dir, m, hashes);
	free(hashes);
	return err;
}
