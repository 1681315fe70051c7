/*
 * files.c - opening a snapshot directory: meta.json, then checking that
 * memory.img and pages.xxh are the files meta.json describes (a truncated
 * or swapped file is refused here, before any guest runs on it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lazymem/error.h>
#include "core/error.h"
#include "snapshot/snapshot_internal.h"

int lm__snap_path(char *buf, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return lm_error(-ENAMETOOLONG, "snapshot %s: path too long",
				dir);
	return 0;
}

static int read_all(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return lm_error(-errno, "%s: %s%s", path, strerror(errno),
				errno == ENOENT ? " (not a snapshot, or its save "
						  "did not finish)" : "");
	if (fstat(fd, &st) < 0 || st.st_size > (1 << 26)) {
		close(fd);
		return lm_error(-EINVAL, "%s: not a readable file of at most "
				"64 MiB", path);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return lm_error(-ENOMEM, "%s: out of memory", path);
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return lm_error(-EIO, "%s: short read", path);
	}
	buf[n] = '\0';
	*text = buf;
	*len = (size_t)n;
	return 0;
}

int lm__snap_pread_full(int fd, void *dst, size_t count, uint64_t off)
{
	for (size_t done = 0; done < count;) {
		ssize_t n = pread(fd, (uint8_t *)dst + done, count - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int lm__snap_hashes_open(const char *dir, const struct lm_snap_meta *m,
			 int *fd_out)
{
	char path[4096];
	struct lm_snap_hash_header h;
	uint64_t nr = m->mem_size / m->page_size;
	int fd, err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_HASH_FILE);
	struct stat st;

	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_error(-errno, "%s: %s", path, strerror(errno));
	if (pread(fd, &h, sizeof(h), 0) != sizeof(h) ||
	    memcmp(h.magic, LM_SNAP_HASH_MAGIC, 8) || h.version != 1) {
		close(fd);
		return lm_error(-EINVAL, "%s: not a lazymem page-hash file "
				"(bad header)", path);
	}
	if (h.page_size != m->page_size || h.nr_pages != nr) {
		close(fd);
		return lm_error(-EINVAL, "%s: hashes for %llu pages of %llu "
				"bytes, meta.json says %llu of %llu", path,
				(unsigned long long)h.nr_pages,
				(unsigned long long)h.page_size,
				(unsigned long long)nr,
				(unsigned long long)m->page_size);
	}
	if (fstat(fd, &st) < 0 ||
	    (uint64_t)st.st_size != sizeof(h) + nr * sizeof(uint64_t)) {
		close(fd);
		return lm_error(-EINVAL, "%s: %lld bytes, expected %llu "
				"(truncated?)", path, (long long)st.st_size,
				(unsigned long long)(sizeof(h) + nr * 8));
	}
	*fd_out = fd;
	return 0;
}

int lm__snap_hashes_load(const char *dir, const struct lm_snap_meta *m,
			 uint64_t **hashes)
{
	uint64_t nr = m->mem_size / m->page_size;
	uint64_t *buf;
	int fd, err = lm__snap_hashes_open(dir, m, &fd);

	if (err)
		return err;
	if (!hashes) {		/* checking only: header and size agree */
		close(fd);
		return 0;
	}
	buf = malloc(nr * sizeof(uint64_t));
	if (!buf) {
		close(fd);
		return lm_error(-ENOMEM, "snapshot %s: out of memory for %llu "
				"page hashes", dir, (unsigned long long)nr);
	}
	if (lm__snap_pread_full(fd, buf, nr * 8, LM_SNAP_HASH_DATA)) {
		free(buf);
		close(fd);
		return lm_error(-EIO, "snapshot %s: reading %s failed", dir,
				LM_SNAP_HASH_FILE);
	}
	close(fd);
	*hashes = buf;
	return 0;
}

int lm_snap_open(const char *dir, struct lm_snap_meta *m)
{
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_META_FILE);

	memset(m, 0, sizeof(*m));
	if (err || (err = read_all(path, &text, &len)))
		return err;
	err = lm_snap_meta_parse(text, len, m);
	free(text);
	if (err) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", lm_last_error());
		return lm_error(err, "snapshot %s: %s", dir, msg);
	}
	/* A corrupt register blob would restore and run until the guest
	 * crashed: refuse it here, naming vCPU and blob. */
	err = lm__snap_blobs_check(dir, m);
	if (!err)
		err = lm__snap_path(path, sizeof(path), dir, LM_SNAP_MEM_FILE);
	if (!err && stat(path, &st) < 0)
		err = lm_error(-errno, "%s: %s", path, strerror(errno));
	if (!err && (uint64_t)st.st_size != m->mem_size)
		err = lm_error(-EINVAL, "%s: %lld bytes, meta.json says %llu "
			       "(%s)", path, (long long)st.st_size,
			       (unsigned long long)m->mem_size,
			       (uint64_t)st.st_size < m->mem_size
				       ? "truncated" : "wrong file");
	/* The hashes themselves are read by whoever checks pages with them
	 * (the source, verify): here header and size must agree. Reading all
	 * of them here too cost a second 2 MiB read per GiB on every open. */
	if (!err)
		err = lm__snap_hashes_load(dir, m, NULL);
	if (err)
		lm_snap_meta_free(m);
	return err;
}
