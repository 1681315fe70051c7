/*
 * cache.c - the host chunk cache (see cache.h for the layout and the
 * promises).
 *
 * Size is kept per process as "bytes at the last scan plus bytes this
 * process added"; other processes' additions are seen at the next scan,
 * which runs whenever that estimate passes the bound or this process has
 * added an eighth of it since the last one. So the directory can pass the
 * bound by at most an eighth per process between scans. Eviction sorts by
 * access time (marked explicitly on every hit with futimens, so relatime
 * or noatime mounts do not matter) and removes down to 90 % of the bound.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/cache.h"
#include "store/chunk.h"
#include "util/error.h"

struct store_cache {
	char dir[3800];
	uint64_t max;
	_Atomic uint64_t bytes, added_since_scan;
	int lock_fd;
};

void store_cache_default_dir(char *buf, size_t len)
{
	const char *x = getenv("XDG_CACHE_HOME");

	if (x && x[0] == '/')
		snprintf(buf, len, "%s/lazymem/chunks", x);
	else
		snprintf(buf, len, "/var/cache/lazymem/chunks");
}

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int store_cache_open(const char *dir, uint64_t max_bytes,
		     struct store_cache **out)
{
	struct store_cache *c = calloc(1, sizeof(*c));
	char path[4000];
	int err;

	if (!c)
		return util_error(-ENOMEM, "cache: out of memory");
	if (strlen(dir) >= sizeof(c->dir) - 80 || dir[0] != '/') {
		free(c);
		return util_error(-EINVAL, "cache directory '%.200s': an "
				  "absolute path expected", dir);
	}
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	c->max = max_bytes ? max_bytes : STORE_CACHE_DEFAULT_SIZE;
	snprintf(path, sizeof(path), "%s", dir);
	if ((err = mkdir_p(path))) {
		free(c);
		return util_error(err, "cache directory %s: %s", dir,
				  strerror(-err));
	}
	snprintf(path, sizeof(path), "%s/.lock", dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (c->lock_fd < 0) {
		err = -errno;
		free(c);
		return util_error(err, "cache directory %s: %s", dir,
				  strerror(-err));
	}
	err = store_cache_evict(c, c->max);
	if (err) {
		store_cache_close(c);
		return err;
	}
	*out = c;
	return 0;
}

void store_cache_close(struct store_cache *c)
{
	if (!c)
		return;
	close(c->lock_fd);
	free(c);
}

uint64_t store_cache_bytes(const struct store_cache *c)
{
	return atomic_load(&c->bytes);
}

/* DIR/HH/HEX + suffix, built by hand: the fault path calls this inside a
 * SIGBUS handler, where snprintf is not on the async-signal-safe list.
 * dir is at most sizeof(c->dir) - 80 bytes (checked at open). */
static void chunk_path(const struct store_cache *c, const char *hex,
		       const char *suffix, char *buf, size_t len)
{
	size_t d = strlen(c->dir), s = strlen(suffix);

	if (d + 4 + STORE_HEX_LEN + s + 1 > len) {
		buf[0] = '\0';
		return;
	}
	memcpy(buf, c->dir, d);
	buf[d] = '/';
	memcpy(buf + d + 1, hex, 2);
	buf[d + 3] = '/';
	memcpy(buf + d + 4, hex, STORE_HEX_LEN);
	memcpy(buf + d + 4 + STORE_HEX_LEN, suffix, s + 1);
}

ssize_t store_cache_read(struct store_cache *c, const char *hex, void *buf,
			 size_t cap)
{
	char path[4000];
	struct stat st;
	ssize_t n;
	int fd;

	chunk_path(c, hex, "", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > cap) {
		close(fd);
		return -EMSGSIZE;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n == st.st_size) {
		/* the access time eviction sorts by; the content is unchanged */
		struct timespec t[2] = { { .tv_nsec = UTIME_NOW },
					 { .tv_nsec = UTIME_OMIT } };

		futimens(fd, t);
	}
	close(fd);
	return n == st.st_size ? n : -EIO;
}

bool store_cache_has(struct store_cache *c, const char *hex)
{
	char path[4000];

	chunk_path(c, hex, "", path, sizeof(path));
	return access(path, F_OK) == 0;
}

int store_cache_claim(struct store_cache *c, const char *hex, int *fd)
{
	char path[4000], dir[4000];

	snprintf(dir, sizeof(dir), "%s/%.2s", c->dir, hex);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	chunk_path(c, hex, ".claim", path, sizeof(path));
	for (int tries = 0; tries < 3; tries++) {
		struct stat a, b;
		int f = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (f >= 0) {
			flock(f, LOCK_EX);
			*fd = f;
			return 1;
		}
		if (errno != EEXIST)
			return -errno;
		f = open(path, O_RDONLY | O_CLOEXEC);
		if (f < 0)
			continue;	/* released meanwhile: try again */
		if (flock(f, LOCK_SH | LOCK_NB) < 0) {
			close(f);
			return 0;	/* a live process is fetching it */
		}
		/* Unlocked: the claimer died, or has only just created it
		 * (the lock follows the create), or just finished. Stale
		 * only if it is still that file and older than a second. */
		if (fstat(f, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_nlink > 0 &&
		    time(NULL) - a.st_mtime > 1) {
			unlink(path);
			close(f);
			continue;
		}
		close(f);
		return 0;
	}
	return 0;
}

void store_cache_release(struct store_cache *c, const char *hex, int fd)
{
	char path[4000];

	chunk_path(c, hex, ".claim", path, sizeof(path));
	unlink(path);	/* before the unlock: a waiter never sees it stale */
	close(fd);
}

static int write_tmp(const char *tmp, const void *data, size_t len)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	const uint8_t *p = data;
	int err = 0;

	if (fd < 0)
		return -errno;
	while (len && !err) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n < 0 ? -errno : -EIO;
		else
			p += n, len -= (size_t)n;
	}
	close(fd);
	if (err)
		unlink(tmp);
	return err;
}

int store_cache_put(struct store_cache *c, const char *hex, const void *data,
		    size_t len)
{
	char path[4000], tmp[4100];
	int err;

	chunk_path(c, hex, "", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/%.2s", c->dir, hex);
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	err = write_tmp(tmp, data, len);
	if (err == -ENOSPC || err == -EDQUOT) {
		/* make room (half the bound), then once more */
		store_cache_evict(c, c->max / 2);
		err = write_tmp(tmp, data, len);
	}
	/* link, not rename: a chunk already there is reported, not replaced
	 * (rename on a file system without hard links) */
	if (!err && link(tmp, path) < 0) {
		if (errno == EEXIST)
			err = 1;
		else if (errno != EPERM && errno != EOPNOTSUPP)
			err = -errno;
		else if (rename(tmp, path) < 0)
			err = -errno;
	}
	unlink(tmp);	/* ENOENT after a rename */
	if (err)
		return err;
	atomic_fetch_add(&c->bytes, len);
	if (atomic_fetch_add(&c->added_since_scan, len) + len > c->max / 8 ||
	    atomic_load(&c->bytes) > c->max)
		store_cache_evict(c, c->max);
	return 0;
}

struct entry {
	struct timespec atime;
	uint64_t size;
	char name[72];		/* HH/<64 hex> */
};

static int cmp_atime(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->atime.tv_sec != y->atime.tv_sec)
		return x->atime.tv_sec < y->atime.tv_sec ? -1 : 1;
	return (x->atime.tv_nsec > y->atime.tv_nsec) -
	       (x->atime.tv_nsec < y->atime.tv_nsec);
}

static bool chunk_name(const char *s)
{
	uint8_t h[STORE_HASH_LEN];

	return strlen(s) == STORE_HEX_LEN && store_unhex(s, h) == 0;
}

/* Every chunk in the cache, and the stale temporary files removed. */
static int scan(struct store_cache *c, struct entry **out, size_t *n,
		uint64_t *total)
{
	struct entry *e = NULL;
	size_t cap = 0;
	DIR *top = opendir(c->dir);
	struct dirent *d;

	*n = 0;
	*total = 0;
	if (!top)
		return util_error(-errno, "cache directory %s: %s", c->dir,
				  strerror(errno));
	while ((d = readdir(top))) {
		char sub[4000];
		struct dirent *f;
		DIR *dd;

		if (strlen(d->d_name) != 2 || !strchr("0123456789abcdef",
						      d->d_name[0]))
			continue;
		snprintf(sub, sizeof(sub), "%s/%.2s", c->dir, d->d_name);
		if (!(dd = opendir(sub)))
			continue;
		while ((f = readdir(dd))) {
			struct stat st;
			size_t l = strlen(f->d_name);

			if (fstatat(dirfd(dd), f->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			if (l > 4 && !strcmp(f->d_name + l - 4, ".tmp") &&
			    time(NULL) - st.st_mtime > 600) {
				unlinkat(dirfd(dd), f->d_name, 0);
				continue;
			}
			if (!chunk_name(f->d_name) || !S_ISREG(st.st_mode))
				continue;
			if (*n == cap) {
				struct entry *g;

				cap = cap ? cap * 2 : 1024;
				g = realloc(e, cap * sizeof(*e));
				if (!g) {
					closedir(dd);
					closedir(top);
					free(e);
					return util_error(-ENOMEM, "cache: out "
							  "of memory");
				}
				e = g;
			}
			e[*n].atime = st.st_atim;
			e[*n].size = (uint64_t)st.st_size;
			snprintf(e[*n].name, sizeof(e[*n].name), "%.2s/%.64s",
				 d->d_name, f->d_name);
			*total += (uint64_t)st.st_size;
			(*n)++;
		}
		closedir(dd);
	}
	closedir(top);
	*out = e;
	return 0;
}

int store_cache_evict(struct store_cache *c, uint64_t target)
{
	struct entry *e = NULL;
	uint64_t total;
	size_t n;
	int err;

	flock(c->lock_fd, LOCK_EX);	/* one scanner on the host at a time */
	err = scan(c, &e, &n, &total);
	if (!err && total > target) {
		uint64_t goal = target - target / 10;

		qsort(e, n, sizeof(*e), cmp_atime);
		for (size_t i = 0; i < n && total > goal; i++) {
			char path[4100];

			snprintf(path, sizeof(path), "%s/%s", c->dir, e[i].name);
			if (unlink(path) == 0)
				total -= e[i].size;
		}
	}
	flock(c->lock_fd, LOCK_UN);
	free(e);
	if (!err) {
		atomic_store(&c->bytes, total);
		atomic_store(&c->added_since_scan, 0);
	}
	return err;
}
