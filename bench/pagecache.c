/*
 * pagecache.c - the page cache as the restore benchmarks need it: a
 * snapshot's files pushed out (cold) or read in (warm), and how much of a
 * file is resident, so that a run is only called cold when it is.
 *
 * Why mincore() and not fincore(1): the same count in-process, without a
 * program to run and parse; fincore(1) (util-linux) answers the same and is
 * how the docs suggest checking by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

int bench_drop_caches(char *why, size_t len)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2) {
		snprintf(why, len, "cannot drop the page cache (/proc/sys/vm/drop_caches: %s; run as root)",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Dirty pages survive POSIX_FADV_DONTNEED, so write them back first. */
int bench_file_drop(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		err = -errno;
	else
		err = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return err;
}

void bench_file_warm(const char *path)
{
	static char buf[1 << 20];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

int bench_file_resident(const char *path, double *frac)
{
	long ps = sysconf(_SC_PAGESIZE);
	unsigned char *vec;
	uint64_t pages, in = 0;
	struct stat st;
	void *map;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*frac = 0;
	if (!st.st_size) {
		close(fd);
		return 0;
	}
	pages = ((uint64_t)st.st_size + (uint64_t)ps - 1) / (uint64_t)ps;
	/* Mapping the file reads none of it: mincore() only looks. */
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	vec = malloc(pages);
	if (!vec)
		err = -ENOMEM;
	else if (mincore(map, (size_t)st.st_size, vec) < 0)
		err = -errno;
	for (uint64_t i = 0; !err && i < pages; i++)
		in += vec[i] & 1;
	free(vec);
	munmap(map, (size_t)st.st_size);
	if (!err)
		*frac = (double)in / (double)pages;
	return err;
}
