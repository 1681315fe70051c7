/*
 * thp_collapse.c - huge pages after the fill (lm_region_collapse,
 * LM_THP_AUTO; src/core/collapse.c, docs/thp.md): a 2 MiB range whose
 * every page is present becomes a transparent huge page, a partly present
 * one does not, the content survives, the statistics count it; the
 * collapser waits for the background fill to end; zero pages
 * do not keep a range from collapsing; a live snapshot keeps the collapse
 * off; an eviction from a huge range works (the kernel splits it) and the
 * range collapses again once full; memfd (shmem) collapses too.
 *
 * Huge pages are seen where the kernel reports them: AnonHugePages (anon)
 * or ShmemPmdMapped (memfd) of the region's mapping in /proc/self/smaps.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lm_test.h"
#include "util/clock.h"
#include "reclaim/pstore.h"

#define PS 4096ull
#define M2 (2ull << 20)
#define SIZE (4 * M2)		/* four 2 MiB ranges */
#define SALT 0x7e1d
#define HOLE_A 3ull		/* zero pages (holes in the image file) */
#define HOLE_B 700ull

struct fixture {
	uint8_t *image;		/* the expected content */
	char path[64];
	struct lm_source *src;
	struct lm_page_store *store;
	struct lm_region *r;
};

/* THP usable for MADV_COLLAPSE? Empty when yes, else why not. */
static void thp_unavailable(char *why, size_t len)
{
	char line[256] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	why[0] = 0;
	if (!f) {
		snprintf(why, len, "no transparent huge pages in this kernel");
		return;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	if (strstr(line, "[never]"))
		snprintf(why, len, "transparent huge pages are disabled "
			 "(enabled=never)");
}

#define REQUIRE_THP()                                                        \
	do {                                                                 \
		char thp_why_[128];                                          \
		LM_REQUIRE_UFFD();                                           \
		thp_unavailable(thp_why_, sizeof(thp_why_));                 \
		if (thp_why_[0])                                             \
			LM_SKIP("%s", thp_why_);                             \
	} while (0)

/* kB of `key` in the smaps entry of the mapping holding addr, or -1. */
static long smaps_kb(const void *addr, const char *key)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char c;

		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && !strncmp(line, key, strlen(key)))
			sscanf(line + strlen(key), " %ld", &kb);
	}
	fclose(f);
	return kb;
}

static long huge_kb(struct fixture *f)
{
	return smaps_kb(lm_region_addr(f->r),
			lm_region_memfd(f->r) < 0 ? "AnonHugePages:"
						  : "ShmemPmdMapped:");
}

/*
 * Is addr mapped to the kernel's shared zero page (KPF_ZERO_PAGE, bit 24
 * of /proc/kpageflags)? 1 yes, 0 no, -1 cannot tell (needs root).
 */
static int on_zero_page(const void *addr)
{
	uint64_t e = 0, flags = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	int kfd = open("/proc/kpageflags", O_RDONLY);
	int ret = -1;

	if (fd >= 0 && kfd >= 0 &&
	    pread(fd, &e, 8, (off_t)((uintptr_t)addr / PS * 8)) == 8 &&
	    (e >> 63) && (e & ((1ull << 55) - 1)) &&
	    pread(kfd, &flags, 8, (off_t)((e & ((1ull << 55) - 1)) * 8)) == 8)
		ret = (int)((flags >> 24) & 1);
	if (fd >= 0)
		close(fd);
	if (kfd >= 0)
		close(kfd);
	return ret;
}

/* The image as a sparse file (two pages are holes: the file source
 * reports them zero) and a file source over it. */
static void make_source(struct fixture *f)
{
	int fd;

	f->image = malloc(SIZE);
	assert_non_null(f->image);
	t_fill(f->image, SIZE, SALT);
	memset(f->image + HOLE_A * PS, 0, PS);
	memset(f->image + HOLE_B * PS, 0, PS);
	snprintf(f->path, sizeof(f->path), "/tmp/lm-thp-%d", (int)getpid());
	fd = open(f->path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	LM_ASSERT(fd >= 0, "creating %s", f->path);
	LM_ASSERT(ftruncate(fd, SIZE) == 0, "sizing %s", f->path);
	for (uint64_t p = 0; p < SIZE / PS; p++)
		if (p != HOLE_A && p != HOLE_B)
			LM_ASSERT(pwrite(fd, f->image + p * PS, PS,
					 (off_t)(p * PS)) == (ssize_t)PS,
				  "writing %s", f->path);
	close(fd);
	LM_OK(lm_source_file_open(f->path, &f->src));
}

/* A region over the image with config rc (name, size, source, delivery
 * filled in here); with_store: a memory page store for evictions. */
static void setup(struct fixture *f, struct lm_region_config rc,
		  bool with_store)
{
	memset(f, 0, sizeof(*f));
	make_source(f);
	if (with_store)
		LM_OK(lm_pstore_memory_create(SIZE, PS, 0, &f->store));
	rc.name = "thp";
	rc.size = SIZE;
	rc.source = f->src;
	rc.store = f->store;
	rc.delivery = LM_DELIVERY_SELF;
	LM_OK(lm_region_create(&rc, &f->r));
}

static void teardown(struct fixture *f)
{
	lm_region_destroy(f->r);
	lm_page_store_destroy(f->store);
	lm_source_destroy(f->src);
	free(f->image);
	unlink(f->path);
}

/* Read one byte of every page in [first, first+n): each missing one is a
 * fault resolved on this thread. */
static void touch(struct fixture *f, uint64_t first, uint64_t n)
{
	const volatile uint8_t *p = lm_region_addr(f->r);

	for (uint64_t i = first; i < first + n; i++)
		(void)p[i * PS];
}

static void check_content(struct fixture *f, uint64_t first, uint64_t n)
{
	const uint8_t *p = lm_region_addr(f->r);

	for (uint64_t i = first; i < first + n; i++)
		LM_ASSERT(!memcmp(p + i * PS, f->image + i * PS, PS),
			  "page %llu differs from the image",
			  (unsigned long long)i);
}

static struct lm_stats stats(struct fixture *f)
{
	struct lm_stats s;

	lm_region_stats(f->r, &s);
	return s;
}

/* Range 0 full (with a zero page), range 1 full but one page (and a zero
 * page), ranges 2 and 3 untouched: one collapse, range 1 after its last
 * page arrives. */
static void collapse_full_not_partial(enum lm_backing b, enum lm_install in)
{
	struct fixture f;
	uint64_t n = 99;

	setup(&f, (struct lm_region_config){ .backing = b, .install = in,
					     .thp = LM_THP_COLLAPSE }, false);
	assert_int_equal((uintptr_t)lm_region_addr(f.r) % M2, 0);
	touch(&f, 0, 1023);		/* all of range 0, range 1 less one */
	/* A zero page is installed as copied zeroes, not the zero page,
	 * which would keep its range from collapsing. */
	if (on_zero_page((uint8_t *)lm_region_addr(f.r) + HOLE_A * PS) < 0)
		print_message("(cannot read /proc/kpageflags: zero-page "
			      "install not checked)\n");
	else
		assert_int_equal(on_zero_page((uint8_t *)lm_region_addr(f.r) +
					      HOLE_A * PS), 0);
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 1);
	assert_int_equal(huge_kb(&f), 2048);
	assert_int_equal(stats(&f).thp_collapsed, 1);
	check_content(&f, 0, 1023);
	/* A second pass finds nothing new. */
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 0);
	/* Range 1's last page: it was not filled by the collapse. */
	assert_int_equal(lm_region_pages_present(f.r), 1023);
	touch(&f, 1023, 1);
	check_content(&f, 1023, 1);
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 1);
	assert_int_equal(huge_kb(&f), 4096);
	check_content(&f, 0, 1024);
	struct lm_stats s = stats(&f);
	assert_int_equal(s.thp_collapsed, 2);
	assert_int_equal(s.thp_failed_busy + s.thp_failed_again +
			 s.thp_failed_nomem + s.thp_failed_other, 0);
	assert_true(s.thp_collapse_ns > 0);
	assert_int_equal(s.pages_zero, 2);	/* the holes */
	teardown(&f);
}

static void anon_collapse(void **state)
{
	(void)state;
	REQUIRE_THP();
	collapse_full_not_partial(LM_BACKING_ANON, LM_INSTALL_COPY);
}

/* shmem collapses even with shmem_enabled=never (docs/thp.md). */
static void memfd_collapse(void **state)
{
	(void)state;
	REQUIRE_THP();
	collapse_full_not_partial(LM_BACKING_MEMFD, LM_INSTALL_CONTINUE);
}

/* LM_THP_AUTO with the background fill: every range collapses without
 * anyone asking, and the content is the image's. */
static void auto_collapse(void **state)
{
	struct fixture f;
	uint64_t deadline = lm_now_ns() + 20000000000ull;

	(void)state;
	REQUIRE_THP();
	setup(&f, (struct lm_region_config){ .backing = LM_BACKING_ANON,
					     .background = true,
					     .thp = LM_THP_AUTO }, false);
	LM_OK(lm_region_wait_complete(f.r, 20000));
	while (stats(&f).thp_collapsed < SIZE / M2 && lm_now_ns() < deadline)
		usleep(10000);
	assert_int_equal(stats(&f).thp_collapsed, SIZE / M2);
	assert_int_equal(huge_kb(&f), SIZE >> 10);
	check_content(&f, 0, SIZE / PS);
	teardown(&f);
}

/* A source that takes 10 ms per read of the file source under it, so a
 * background fill of SIZE (32 reads of 256 KiB) lasts about 0.3 s. */
struct slow_source {
	struct lm_source base;
	struct lm_source *inner;
};

static int slow_read(struct lm_source *s, uint64_t off, void *dst, size_t len)
{
	struct slow_source *w = (struct slow_source *)s;

	usleep(10000);
	return lm_source_read(w->inner, off, dst, len);
}

static int slow_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct slow_source *w = (struct slow_source *)s;

	return w->inner->ops->is_zero(w->inner, off, len);
}

static void slow_destroy(struct lm_source *s) { (void)s; }

static const struct lm_source_ops slow_ops = {
	.read = slow_read, .is_zero = slow_is_zero, .destroy = slow_destroy,
};

/* LM_THP_AUTO starts no collapse while the background fill runs (each
 * collapse would hold the mapping's lock the fill's installs need), and
 * collapses every range once the fill has ended. */
static void auto_waits_for_fill(void **state)
{
	struct fixture f;
	struct slow_source slow = { .base = { .ops = &slow_ops } };
	uint64_t deadline = lm_now_ns() + 20000000000ull;
	struct lm_stats s;

	(void)state;
	REQUIRE_THP();
	memset(&f, 0, sizeof(f));
	make_source(&f);
	slow.inner = f.src;
	slow.base.size = f.src->size;
	snprintf(slow.base.desc, sizeof(slow.base.desc), "slow");
	LM_OK(lm_region_create(&(struct lm_region_config){
		.name = "thp-slow", .size = SIZE, .source = &slow.base,
		.backing = LM_BACKING_ANON, .delivery = LM_DELIVERY_SELF,
		.background = true, .thp = LM_THP_AUTO }, &f.r));
	/* The first 4 MiB chunk (ranges 0 and 1) complete, which wakes the
	 * collapser, and 40 ms more for it to act while the fill goes on. */
	do {
		usleep(1000);
		s = stats(&f);
	} while (s.pages_background < 1024 && lm_now_ns() < deadline);
	usleep(40000);
	s = stats(&f);
	LM_ASSERT(s.pages_background < SIZE / PS,
		  "the fill ended too soon to tell (%llu pages)",
		  (unsigned long long)s.pages_background);
	LM_ASSERT(s.thp_collapsed == 0 && huge_kb(&f) == 0,
		  "%llu ranges collapsed while the fill ran (%llu of %llu "
		  "pages filled)", (unsigned long long)s.thp_collapsed,
		  (unsigned long long)s.pages_background,
		  (unsigned long long)(SIZE / PS));
	LM_OK(lm_region_wait_complete(f.r, 20000));
	while (stats(&f).thp_collapsed < SIZE / M2 && lm_now_ns() < deadline)
		usleep(10000);
	assert_int_equal(stats(&f).thp_collapsed, SIZE / M2);
	assert_int_equal(huge_kb(&f), SIZE >> 10);
	check_content(&f, 0, SIZE / PS);
	teardown(&f);
}

/* While a live snapshot protects the region nothing is collapsed (the
 * pass is skipped and counted); after its release the range collapses. */
static void snapshot_blocks_collapse(void **state)
{
	struct fixture f;
	uint64_t n = 99;

	(void)state;
	REQUIRE_THP();
	setup(&f, (struct lm_region_config){ .backing = LM_BACKING_ANON,
					     .write_protect = LM_WP_ASYNC,
					     .thp = LM_THP_COLLAPSE }, false);
	touch(&f, 0, 512);
	LM_OK(lm_wp_protect(f.r, NULL));
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 0);
	assert_int_equal(stats(&f).thp_skipped, 1);
	assert_int_equal(huge_kb(&f), 0);
	LM_OK(lm_wp_release(f.r));
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 1);
	assert_int_equal(huge_kb(&f), 2048);
	check_content(&f, 0, 512);
	teardown(&f);
}

/* Evicting one page of a huge range: the kernel splits the huge page
 * (UFFDIO_MOVE), the page comes back right on its next touch, and the
 * range is collapsed again once it is full. */
static void evict_from_huge(void **state)
{
	struct fixture f;
	struct lm_evict_result res;
	uint64_t n = 99;

	(void)state;
	REQUIRE_THP();
	setup(&f, (struct lm_region_config){ .backing = LM_BACKING_ANON,
					     .thp = LM_THP_COLLAPSE }, true);
	touch(&f, 0, 512);
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 1);
	assert_int_equal(huge_kb(&f), 2048);
	LM_OK(lm_region_evict(f.r, 10 * PS, 1, &res));
	assert_int_equal(res.nr_evicted, 1);
	assert_int_equal(huge_kb(&f), 0);
	check_content(&f, 0, 512);	/* page 10 refaults from the store */
	assert_int_equal(stats(&f).pages_refaulted, 1);
	LM_OK(lm_region_collapse(f.r, &n));
	assert_int_equal(n, 1);
	assert_int_equal(huge_kb(&f), 2048);
	check_content(&f, 0, 512);
	teardown(&f);
}

/* Configurations that cannot work are refused, naming why. */
static void bad_config(void **state)
{
	struct lm_source *s;
	struct lm_region *r = NULL;
	uint64_t n;

	(void)state;
	LM_REQUIRE_UFFD();
	LM_OK(lm_source_zero_create(SIZE, &s));
	struct lm_region_config c = { .name = "thp-bad", .size = SIZE,
				      .source = s, .thp = LM_THP_COLLAPSE,
				      .backing = LM_BACKING_HUGETLB };
	assert_int_equal(lm_region_create(&c, &r), -EINVAL);
	assert_non_null(strstr(lm_last_error(), "hugetlb"));
	c.backing = LM_BACKING_MEMFD;
	c.write_protect = LM_WP_SYNC;
	assert_int_equal(lm_region_create(&c, &r), -EINVAL);
	assert_non_null(strstr(lm_last_error(), "write_protect"));
	c = (struct lm_region_config){ .name = "thp-off", .size = SIZE,
				       .source = s };
	LM_OK(lm_region_create(&c, &r));
	assert_int_equal(lm_region_collapse(r, &n), -EINVAL);
	assert_non_null(strstr(lm_last_error(), "thp off"));
	lm_region_destroy(r);
	lm_source_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(anon_collapse),
		cmocka_unit_test(memfd_collapse),
		cmocka_unit_test(auto_collapse),
		cmocka_unit_test(auto_waits_for_fill),
		cmocka_unit_test(snapshot_blocks_collapse),
		cmocka_unit_test(evict_from_huge),
		cmocka_unit_test(bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
