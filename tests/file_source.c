/*
 * file_source.c - the raw image file source finds a file's holes at open
 * and reports exactly those blocks as zero: data extents that start and
 * end inside a 64-block word of its map, that fill whole words, and that
 * run to the file's end, each with the bytes of the file.
 */
#include <fcntl.h>

#include "lm_test.h"

#define BS 4096u

/* Data extents, in 4 KiB blocks [first, end); everything else a hole. */
static const uint64_t extents[][2] = {
	{ 3, 70 }, { 128, 256 }, { 300, 301 }, { 383, 385 }, { 640, 1100 },
	{ 1200, 1280 },
};
#define NR_BLOCKS 1280u

static bool block_is_data(uint64_t b)
{
	for (size_t i = 0; i < sizeof(extents) / sizeof(extents[0]); i++)
		if (b >= extents[i][0] && b < extents[i][1])
			return true;
	return false;
}

static void test_holes(void **s)
{
	char path[] = "/var/tmp/lazymem-file-source-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *want = calloc(NR_BLOCKS, BS), got[BS];
	struct lm_source *src;
	off_t hole;

	(void)s;
	LM_ASSERT(fd >= 0 && want, "mkstemp %s: %s", path, strerror(errno));
	LM_ASSERT(ftruncate(fd, (off_t)NR_BLOCKS * BS) == 0, "ftruncate");
	for (uint64_t b = 0; b < NR_BLOCKS; b++) {
		if (!block_is_data(b))
			continue;
		/* never all zero: a data block must read as data */
		t_fill(want + b * BS, BS, (unsigned)b + 1);
		want[b * BS] |= 1;
		LM_ASSERT(pwrite(fd, want + b * BS, BS, (off_t)(b * BS)) == BS,
			  "pwrite block %llu", (unsigned long long)b);
	}
	LM_ASSERT(fsync(fd) == 0, "fsync");
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	LM_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	hole = lseek(fd, 0, SEEK_HOLE);
	close(fd);
	if (hole == (off_t)NR_BLOCKS * BS) {
		unlink(path);
		free(want);
		LM_SKIP("the filesystem of /var/tmp reports no holes "
			"(no SEEK_HOLE)");
	}
	LM_OK(lm_source_file_open(path, &src));
	for (uint64_t b = 0; b < NR_BLOCKS; b++) {
		int z = src->ops->is_zero(src, b * BS, BS);

		LM_ASSERT(z == !block_is_data(b), "block %llu: is_zero %d, "
			  "but it is %s", (unsigned long long)b, z,
			  block_is_data(b) ? "data" : "a hole");
		LM_OK(lm_source_read(src, b * BS, got, BS));
		LM_ASSERT(!memcmp(got, want + b * BS, BS),
			  "block %llu reads wrong", (unsigned long long)b);
	}
	/* a range is zero only if every block of it is */
	LM_ASSERT(src->ops->is_zero(src, 0, 3 * BS) == 1, "blocks 0-2 holes");
	LM_ASSERT(src->ops->is_zero(src, 0, 4 * BS) == 0, "block 3 is data");
	LM_ASSERT(src->ops->is_zero(src, 70 * BS, 58 * BS) == 1,
		  "blocks 70-127 holes");
	lm_source_destroy(src);
	unlink(path);
	free(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holes),
	};

	return cmocka_run_group_tests_name("file_source", tests, NULL, NULL);
}
