/*
 * install_run.c - lm_region_install_run: pages the caller holds go in a
 * run at a time, every backing and install mode; pages already present,
 * failed, or raced by faulting threads are never installed twice.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lm_test.h"

#define SRC_SALT 1	/* what the region's source holds */
#define RUN_SALT 2	/* what the caller installs */
#define MAX_PAGES 2048

static uint8_t *addr(struct lm_region *r)
{
	return lm_region_addr(r);
}

/* A source that counts the reads of each page: a page read from it was
 * not installed by lm_region_install_run. */
struct counting_source {
	struct lm_source base;
	uint64_t page_size;
	uint64_t salt;
	_Atomic uint32_t reads[MAX_PAGES];
};

static int counting_read(struct lm_source *s, uint64_t off, void *dst,
			 size_t len)
{
	struct counting_source *c = (struct counting_source *)s;

	for (uint64_t o = off; o < off + len; o += c->page_size)
		atomic_fetch_add(&c->reads[o / c->page_size], 1);
	for (uint64_t w = 0; w < len / 8; w++)
		((uint64_t *)dst)[w] = t_pattern(off / 8 + w, c->salt);
	return 0;
}

static const struct lm_source_ops counting_ops = { .read = counting_read };

static struct counting_source *source(uint64_t size, uint64_t ps,
				      uint64_t salt)
{
	struct counting_source *c = calloc(1, sizeof(*c));

	c->base.ops = &counting_ops;
	c->base.size = size;
	c->page_size = ps;
	c->salt = salt;
	return c;
}

static struct lm_region *region(struct counting_source *c, uint64_t size,
				enum lm_backing b, enum lm_install i,
				enum lm_delivery d)
{
	struct lm_region *r;
	struct lm_region_config rc = {
		.name = "run", .size = size, .backing = b, .install = i,
		.delivery = d, .handler_threads = 2, .source = &c->base,
	};

	LM_OK(lm_region_create(&rc, &r));
	return r;
}

/* Install the whole region in runs of 64 (or fewer) from img. */
static void install_all(struct lm_region *r, const uint8_t *img,
			uint64_t size, uint64_t ps)
{
	for (uint64_t off = 0; off < size; off += LM_INSTALL_RUN_MAX * ps) {
		uint64_t left = (size - off) / ps;
		unsigned n = left < LM_INSTALL_RUN_MAX ? (unsigned)left
						       : LM_INSTALL_RUN_MAX;
		struct lm_install_run run = { 0 };

		LM_OK(lm_region_install_run(r, off, n, img + off,
					    LM_ORIGIN_BACKGROUND, &run));
		LM_ASSERT(run.nr_installed == n && run.failed == 0,
			  "run at %#llx: %u of %u installed",
			  (unsigned long long)off, run.nr_installed, n);
	}
}

/* Every page present with the runs' content, none read from the source. */
static void check_installed(struct lm_region *r, struct counting_source *c,
			    uint64_t size, uint64_t ps)
{
	LM_ASSERT(lm_region_pages_present(r) == size / ps, "all present");
	LM_ASSERT(t_check(lm_region_addr(r), size, RUN_SALT) == -1,
		  "content differs at %lld",
		  (long long)t_check(lm_region_addr(r), size, RUN_SALT));
	for (uint64_t p = 0; p < size / ps; p++)
		LM_ASSERT(atomic_load(&c->reads[p]) == 0, "page %llu read",
			  (unsigned long long)p);
}

/* A fresh region filled by runs reads as the runs' content, with no page
 * read from the source, all counted as background pages. */
static void run_content(enum lm_backing b, enum lm_install ins,
			uint64_t size)
{
	uint64_t ps = lm_backing_page_size(b);
	struct counting_source *c = source(size, ps, SRC_SALT);
	struct lm_region *r = region(c, size, b, ins, LM_DELIVERY_HANDLER);
	uint8_t *img = malloc(size);
	struct lm_stats st;

	t_fill(img, size, RUN_SALT);
	install_all(r, img, size, ps);
	check_installed(r, c, size, ps);
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_background == size / ps,
		  "pages_background %llu", (unsigned long long)st.pages_background);
	lm_region_destroy(r);
	free(img);
	free(c);
}

static void test_anon_copy(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_content(LM_BACKING_ANON, LM_INSTALL_COPY, 1ull << 20);
}

static void test_memfd_continue(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_content(LM_BACKING_MEMFD, LM_INSTALL_CONTINUE, 1ull << 20);
}

/* Content already in the page cache (written through the alias, as a
 * migration's pre-copy store is): installing from the alias itself maps
 * it, never copies or clears it. */
static void test_in_place(void **s)
{
	const uint64_t size = 1ull << 20, ps = 4096;
	struct counting_source *c = source(size, ps, SRC_SALT);
	struct lm_region *r;

	(void)s;
	LM_REQUIRE_UFFD();
	r = region(c, size, LM_BACKING_MEMFD, LM_INSTALL_CONTINUE,
		   LM_DELIVERY_HANDLER);
	t_fill(lm_region_alias(r), size, RUN_SALT);
	install_all(r, lm_region_alias(r), size, ps);
	check_installed(r, c, size, ps);
	lm_region_destroy(r);
	free(c);
}

static void test_memfd_copy(void **s)
{
	(void)s;
	LM_REQUIRE_UFFD();
	run_content(LM_BACKING_MEMFD, LM_INSTALL_COPY, 1ull << 20);
}

/* 2 MiB pages, both installs, and a zero run (hugetlbfs has no zero
 * page: installed from a zeroed one). */
static void test_hugetlb(void **s)
{
	const uint64_t size = 8ull << 20, ps = 2ull << 20;
	long prev;

	(void)s;
	LM_REQUIRE_UFFD();
	prev = t_hugepages_reserve(2 * (long)(size / ps) + 2);
	if (prev < 0)
		LM_SKIP("cannot reserve 2 MiB hugetlb pages (need root and "
			"free memory)");
	run_content(LM_BACKING_HUGETLB, LM_INSTALL_COPY, size);
	run_content(LM_BACKING_HUGETLB, LM_INSTALL_CONTINUE, size);

	struct counting_source *c = source(size, ps, SRC_SALT);
	struct lm_region *r = region(c, size, LM_BACKING_HUGETLB,
				     LM_INSTALL_COPY, LM_DELIVERY_HANDLER);
	struct lm_install_run run = { 0 };
	static const uint8_t zero[4096];

	LM_OK(lm_region_install_run(r, ps, 2, NULL, LM_ORIGIN_BACKGROUND,
				    &run));
	LM_ASSERT(run.installed == 3, "installed mask %#llx",
		  (unsigned long long)run.installed);
	for (uint64_t o = ps; o < 3 * ps; o += sizeof(zero))
		LM_ASSERT(!memcmp(addr(r) + o, zero, sizeof(zero)),
			  "zero run at %#llx", (unsigned long long)o);
	lm_region_destroy(r);
	free(c);
	t_hugepages_restore(prev);
}

/* Zero runs (buf NULL) read as zeroes and count as zero pages. */
static void test_zero_run(void **s)
{
	const uint64_t size = 1ull << 20;
	struct counting_source *c = source(size, 4096, SRC_SALT);
	struct lm_region *r;
	struct lm_install_run run = { 0 };
	struct lm_stats st;
	static const uint8_t zero[16 * 4096];

	(void)s;
	LM_REQUIRE_UFFD();
	r = region(c, size, LM_BACKING_ANON, LM_INSTALL_COPY,
		   LM_DELIVERY_HANDLER);
	LM_OK(lm_region_install_run(r, 32 * 4096, 16, NULL,
				    LM_ORIGIN_BACKGROUND, &run));
	LM_ASSERT(run.nr_installed == 16, "%u installed", run.nr_installed);
	LM_ASSERT(!memcmp(addr(r) + 32 * 4096, zero, sizeof(zero)),
		  "zero run content");
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_zero == 16, "pages_zero %llu",
		  (unsigned long long)st.pages_zero);
	lm_region_destroy(r);
	free(c);
}

/* Pages already present keep their content and are left out of the
 * installed mask; a second call over the same range installs nothing. */
static void test_skips_present(void **s)
{
	const uint64_t size = 1ull << 20;
	struct counting_source *c = source(size, 4096, SRC_SALT);
	struct lm_region *r;
	struct lm_install_run run = { 0 };
	uint8_t *img = malloc(size);
	const uint64_t touched = 1ull << 3 | 1ull << 4 | 1ull << 10;
	struct lm_stats st;

	(void)s;
	LM_REQUIRE_UFFD();
	r = region(c, size, LM_BACKING_ANON, LM_INSTALL_COPY,
		   LM_DELIVERY_HANDLER);
	t_fill(img, size, RUN_SALT);
	for (unsigned p = 0; p < 16; p++)
		if (touched >> p & 1)
			(void)((volatile uint8_t *)lm_region_addr(r))[p * 4096];
	/* A handler thread counts its page after waking the toucher: wait
	 * for the three counts, or the sum below races with the last one. */
	for (int i = 0; i < 1000; i++) {
		lm_region_stats(r, &st);
		if (st.pages_demand >= 3)
			break;
		usleep(1000);
	}
	LM_OK(lm_region_install_run(r, 0, 16, img, LM_ORIGIN_VCPU, &run));
	LM_ASSERT(run.installed == (0xffffull & ~touched),
		  "installed mask %#llx", (unsigned long long)run.installed);
	LM_ASSERT(run.nr_installed == 13, "%u installed", run.nr_installed);
	for (unsigned p = 0; p < 16; p++) {
		const uint64_t *w = (const uint64_t *)(const void *)
				    (addr(r) + p * 4096);
		uint64_t salt = touched >> p & 1 ? SRC_SALT : RUN_SALT;

		LM_ASSERT(w[7] == t_pattern(p * 512 + 7, salt),
			  "page %u has the wrong content", p);
	}
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_demand == 3 + 13, "pages_demand %llu (origin "
		  "VCPU counts as demand)", (unsigned long long)st.pages_demand);
	memset(&run, 0, sizeof(run));
	LM_OK(lm_region_install_run(r, 0, 16, img, LM_ORIGIN_BACKGROUND,
				    &run));
	LM_ASSERT(run.installed == 0, "installed twice: %#llx",
		  (unsigned long long)run.installed);
	lm_region_destroy(r);
	free(img);
	free(c);
}

/* A page that failed earlier stays failed: reported, not installed. */
static void test_failed_page(void **s)
{
	const uint64_t size = 1ull << 20, bad = 5 * 4096;
	struct lm_source *inner, *src;
	struct lm_region *r;
	struct lm_install_run run = { 0 };
	uint8_t *img = calloc(1, 8 * 4096);

	(void)s;
	LM_REQUIRE_UFFD();
	LM_OK(lm_source_zero_create(size, &inner));
	LM_OK(lm_source_failing_create(inner, bad, -EIO, &src));
	struct lm_region_config rc = {
		.name = "run", .size = size, .backing = LM_BACKING_ANON,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_HANDLER,
		.source = src,
	};
	LM_OK(lm_region_create(&rc, &r));
	LM_ASSERT(lm_region_fault(r, bad, LM_ORIGIN_VCPU) == -EIO, "fails");
	LM_ASSERT(lm_region_install_run(r, 0, 8, img, LM_ORIGIN_BACKGROUND,
					&run) == -EIO, "run over a failed page");
	LM_ASSERT(strstr(lm_last_error(), "failed earlier"), "message: %s",
		  lm_last_error());
	LM_ASSERT(run.failed == 1ull << 5 && run.installed == 0xdf,
		  "failed %#llx installed %#llx",
		  (unsigned long long)run.failed,
		  (unsigned long long)run.installed);
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_source_destroy(inner);
	free(img);
}

#define RACE_PAGES 2048
#define RACE_THREADS 4

struct toucher {
	volatile const uint8_t *base;
	unsigned seed;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;

	/* Each thread walks all pages from its own start: faults land on
	 * pages the runs claim, and the runs on pages being faulted. */
	for (unsigned k = 0; k < RACE_PAGES; k++) {
		unsigned p = (k + t->seed * (RACE_PAGES / RACE_THREADS)) %
			     RACE_PAGES;

		(void)t->base[(uint64_t)p * 4096 + t->seed * 8];
	}
	return NULL;
}

/* Runs racing SIGBUS-mode faulting threads over the same pages: every
 * page installed exactly once, by a run or by a fault, never both. */
static void test_race_sigbus(void **s)
{
	const uint64_t size = RACE_PAGES * 4096ull;
	/* Source and runs agree on the content: whoever installs a page,
	 * it must read the same. */
	struct counting_source *c = source(size, 4096, RUN_SALT);
	uint8_t *img = malloc(size);
	uint8_t *by_run = calloc(RACE_PAGES, 1);
	struct toucher t[RACE_THREADS];
	pthread_t tid[RACE_THREADS];
	struct lm_region *r;
	struct lm_stats st;

	(void)s;
	LM_REQUIRE_UFFD();
	t_fill(img, size, RUN_SALT);
	r = region(c, size, LM_BACKING_ANON, LM_INSTALL_COPY,
		   LM_DELIVERY_SELF);
	for (unsigned i = 0; i < RACE_THREADS; i++) {
		t[i] = (struct toucher){ lm_region_addr(r), i };
		pthread_create(&tid[i], NULL, touch, &t[i]);
	}
	for (uint64_t p = 0; p < RACE_PAGES; p += LM_INSTALL_RUN_MAX) {
		struct lm_install_run run = { 0 };

		LM_OK(lm_region_install_run(r, p * 4096, LM_INSTALL_RUN_MAX,
					    img + p * 4096,
					    LM_ORIGIN_BACKGROUND, &run));
		for (unsigned j = 0; j < LM_INSTALL_RUN_MAX; j++)
			by_run[p + j] = run.installed >> j & 1;
	}
	for (unsigned i = 0; i < RACE_THREADS; i++)
		pthread_join(tid[i], NULL);
	LM_OK(lm_region_wait_complete(r, 10000));
	for (unsigned p = 0; p < RACE_PAGES; p++)
		LM_ASSERT(by_run[p] + atomic_load(&c->reads[p]) == 1,
			  "page %u: run %u, source reads %u", p, by_run[p],
			  atomic_load(&c->reads[p]));
	LM_ASSERT(t_check(lm_region_addr(r), size, RUN_SALT) == -1,
		  "content");
	lm_region_stats(r, &st);
	/* How the race went, for whoever reads the log. */
	print_message("runs installed %llu pages, faults %llu\n",
		      (unsigned long long)st.pages_background,
		      (unsigned long long)(st.pages_demand + st.pages_around));
	LM_ASSERT(st.pages_demand + st.pages_around + st.pages_background ==
			  RACE_PAGES,
		  "demand %llu + around %llu + background %llu",
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_around,
		  (unsigned long long)st.pages_background);
	lm_region_destroy(r);
	free(by_run);
	free(img);
	free(c);
}

static void expect_refused(struct lm_region *r, uint64_t off, unsigned n,
			   unsigned origin, struct lm_install_run *run,
			   int err, const char *words)
{
	static uint8_t buf[65 * 4096];

	LM_ASSERT(lm_region_install_run(r, off, n, buf,
					(enum lm_fault_origin)origin,
					run) == err,
		  "%u pages at %#llx refused with %d", n,
		  (unsigned long long)off, err);
	LM_ASSERT(strstr(lm_last_error(), words), "'%s' in: %s", words,
		  lm_last_error());
}

static void test_bad_args(void **s)
{
	const uint64_t size = 1ull << 20;
	struct counting_source *c = source(size, 4096, SRC_SALT);
	struct lm_install_run run = { 0 };
	struct lm_region *r;

	(void)s;
	LM_REQUIRE_UFFD();
	r = region(c, size, LM_BACKING_ANON, LM_INSTALL_COPY,
		   LM_DELIVERY_HANDLER);
	expect_refused(r, 100, 1, LM_ORIGIN_BACKGROUND, &run, -EINVAL,
		       "not aligned");
	expect_refused(r, 0, 0, LM_ORIGIN_BACKGROUND, &run, -EINVAL,
		       "1 to 64");
	expect_refused(r, 0, 65, LM_ORIGIN_BACKGROUND, &run, -EINVAL,
		       "1 to 64");
	expect_refused(r, size - 4096, 2, LM_ORIGIN_BACKGROUND, &run, -EFAULT,
		       "past the region's end");
	expect_refused(r, size, 1, LM_ORIGIN_BACKGROUND, &run, -EFAULT,
		       "past the region's end");
	expect_refused(r, 0, 1, LM_ORIGIN_COUNT, &run, -EINVAL, "origin");
	expect_refused(r, 0, 1, LM_ORIGIN_BACKGROUND, NULL, -EINVAL,
		       "no struct lm_install_run");
	LM_ASSERT(lm_region_pages_present(r) == 0, "nothing installed");
	lm_region_destroy(r);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anon_copy),
		cmocka_unit_test(test_memfd_continue),
		cmocka_unit_test(test_in_place),
		cmocka_unit_test(test_memfd_copy),
		cmocka_unit_test(test_hugetlb),
		cmocka_unit_test(test_zero_run),
		cmocka_unit_test(test_skips_present),
		cmocka_unit_test(test_failed_page),
		cmocka_unit_test(test_race_sigbus),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests_name("install_run", tests, NULL, NULL);
}
