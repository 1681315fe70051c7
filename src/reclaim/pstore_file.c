/*
 * pstore_file.c - the file page store: page off at file offset off.
 *
 * A sparse file the size of the region needs no index: the page's offset
 * is its place. One state byte per page says whether it is held, and as
 * what (a zero page is a flag and takes no block). take() runs on the
 * fault path (pread and fallocate are plain system calls, safe in a
 * signal handler) and punches the page's blocks out, so the file's disk
 * use is what it holds. A put whose write fails (a full disk: ENOSPC; a
 * file size limit: EFBIG, with SIGXFSZ ignored by the caller) refuses the
 * page, which the core leaves resident.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reclaim/pstore_internal.h"
#include "util/error.h"

enum { HELD_NONE, HELD_ZERO, HELD_FILE };

struct file_store {
	struct pstore_base base;
	int fd;
	uint64_t page_size, nr_pages;
	_Atomic uint8_t *held;		/* HELD_* per page */
	_Atomic uint64_t pages, zero_pages, put_failed;
};

#define RLX memory_order_relaxed

static struct file_store *of(struct lm_page_store *s)
{
	return (struct file_store *)s;
}

static void give_back(struct file_store *f, uint64_t off)
{
	/* Best effort: a block left allocated costs disk, not content. */
	(void)fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)off, (off_t)f->page_size);
}

static int write_page(struct file_store *f, uint64_t off, const uint8_t *p)
{
	for (uint64_t at = 0; at < f->page_size;) {
		ssize_t n = pwrite(f->fd, p + at, f->page_size - at,
				   (off_t)(off + at));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENOSPC;
		at += (uint64_t)n;
	}
	return 0;
}

static int file_put(struct lm_page_store *s, uint64_t off, const void *page)
{
	struct file_store *f = of(s);
	uint64_t i = off / f->page_size;
	uint8_t h = HELD_ZERO;

	if (i >= f->nr_pages)
		return -EINVAL;
	if (!pstore_page_is_zero(page, f->page_size)) {
		int err = write_page(f, off, page);

		if (err) {
			give_back(f, off);
			atomic_fetch_add_explicit(&f->put_failed, 1, RLX);
			return err;
		}
		h = HELD_FILE;
	}
	if (atomic_exchange_explicit(&f->held[i], h, memory_order_acq_rel) ==
	    HELD_NONE)
		atomic_fetch_add_explicit(&f->pages, 1, RLX);
	if (h == HELD_ZERO)
		atomic_fetch_add_explicit(&f->zero_pages, 1, RLX);
	return 0;
}

static int read_page(struct file_store *f, uint64_t off, uint8_t *dst)
{
	for (uint64_t at = 0; at < f->page_size;) {
		ssize_t n = pread(f->fd, dst + at, f->page_size - at,
				  (off_t)(off + at));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		at += (uint64_t)n;
	}
	return 0;
}

static int file_take(struct lm_page_store *s, uint64_t off, void *dst)
{
	struct file_store *f = of(s);
	uint64_t i = off / f->page_size;
	uint8_t h;
	int err = 0;

	if (i >= f->nr_pages)
		return -EINVAL;
	h = atomic_exchange_explicit(&f->held[i], HELD_NONE,
				     memory_order_acq_rel);
	if (h == HELD_NONE)
		return -ENOENT;
	atomic_fetch_sub_explicit(&f->pages, 1, RLX);
	if (h == HELD_ZERO) {
		atomic_fetch_sub_explicit(&f->zero_pages, 1, RLX);
		memset(dst, 0, f->page_size);
		return 0;
	}
	err = read_page(f, off, dst);
	give_back(f, off);
	return err;
}

static void file_usage(struct pstore_base *b, struct lm_pstore_usage *u)
{
	struct file_store *f = (struct file_store *)b;
	struct stat st;

	u->pages = atomic_load(&f->pages);
	u->zero_pages = atomic_load(&f->zero_pages);
	u->data_bytes = (u->pages - u->zero_pages) * f->page_size;
	u->mem_bytes = f->nr_pages;	/* the state bytes */
	if (fstat(f->fd, &st) == 0)
		u->disk_bytes = (uint64_t)st.st_blocks * 512;
	u->put_failed = atomic_load(&f->put_failed);
}

static void file_destroy(struct lm_page_store *s)
{
	struct file_store *f = of(s);

	if (f->held)
		munmap((void *)f->held, f->nr_pages);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

static const struct lm_page_store_ops file_ops = {
	.put = file_put,
	.take = file_take,
	.destroy = file_destroy,
};

int lm_pstore_file_create(const char *path, uint64_t region_size,
			  uint64_t page_size, struct lm_page_store **out)
{
	struct file_store *f;
	void *held;

	if (!page_size || region_size % page_size)
		return util_error(-EINVAL, "file page store %s: region size "
				  "%llu is not a multiple of the page size "
				  "%llu", path, (unsigned long long)region_size,
				  (unsigned long long)page_size);
	f = calloc(1, sizeof(*f));
	if (!f)
		return util_error(-ENOMEM, "file page store %s: out of memory",
				  path);
	f->base.pub.ops = &file_ops;
	f->base.usage = file_usage;
	snprintf(f->base.pub.desc, sizeof(f->base.pub.desc), "file %s", path);
	f->page_size = page_size;
	f->nr_pages = region_size / page_size;
	f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		int err = -errno;

		file_destroy(&f->base.pub);
		return util_error(err, "file page store %s: %s", path,
				  strerror(-err));
	}
	held = mmap(NULL, f->nr_pages, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (held == MAP_FAILED) {
		int err = -errno;

		file_destroy(&f->base.pub);
		return util_error(err, "file page store %s: state map of "
				  "%llu pages: %s", path,
				  (unsigned long long)f->nr_pages,
				  strerror(-err));
	}
	f->held = held;
	*out = &f->base.pub;
	return 0;
}
