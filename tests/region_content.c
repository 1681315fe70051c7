/*
 * region_content.c - every page ends up with exactly its source's content,
 * for each backing, install mode, delivery and source kind, with several
 * threads faulting the region at once.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "lm_test.h"

#define THREADS 4

struct combo {
	enum lm_backing backing;
	enum lm_install install;
	enum lm_delivery delivery;
	bool file;		/* file source with holes, else memory */
	unsigned around;	/* fault-around pages */
};

struct toucher {
	const volatile uint8_t *base;
	uint64_t size, page_size;
	unsigned seed;
	uint64_t sum;
};

/* Every thread reads every page, each in its own order, so that pages are
 * contended and each one is resolved by whichever thread gets there first. */
static void *touch_all(void *arg)
{
	struct toucher *t = arg;
	uint64_t n = t->size / t->page_size, stride = 2 * t->seed + 1;

	while (n % stride == 0)
		stride += 2;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = (i * stride + t->seed) % n;

		t->sum += t->base[p * t->page_size + (i % 512) * 8];
	}
	return NULL;
}

static char *make_file(const uint8_t *expect, uint64_t size, uint64_t ps)
{
	static char path[] = "/tmp/lazymem-test-XXXXXX";
	char *p = strdup(path);
	int fd = mkstemp(p);

	LM_ASSERT(fd >= 0, "mkstemp");
	LM_ASSERT(ftruncate(fd, (off_t)size) == 0, "ftruncate");
	/* Every 8th page stays a hole: the source must report it as zero. */
	for (uint64_t off = 0; off < size; off += ps)
		if ((off / ps) % 8 != 3)
			LM_ASSERT(pwrite(fd, expect + off, ps, (off_t)off) ==
				  (ssize_t)ps, "pwrite");
	close(fd);
	return p;
}

static void run_combo(const struct combo *c)
{
	uint64_t ps = lm_backing_page_size(c->backing);
	uint64_t size = c->backing == LM_BACKING_HUGETLB ? 16ull << 20
							 : 8ull << 20;
	uint8_t *expect = malloc(size);
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;
	pthread_t tid[THREADS];
	struct toucher t[THREADS];
	char *path = NULL;
	long huge_prev = -1;

	if (c->backing == LM_BACKING_HUGETLB) {
		huge_prev = t_hugepages_reserve((long)(size / ps) + 2);
		if (huge_prev < 0) {
			free(expect);
			LM_SKIP("cannot reserve 2 MiB hugetlb pages (need root "
				"and free memory)");
		}
	}
	t_fill(expect, size, 7);
	if (c->file) {
		for (uint64_t off = 0; off < size; off += ps)
			if ((off / ps) % 8 == 3)
				memset(expect + off, 0, ps);
		path = make_file(expect, size, ps);
		LM_OK(lm_source_file_open(path, &src));
	} else {
		LM_OK(lm_source_memory_create(expect, size, &src));
	}
	struct lm_region_config rc = {
		.name = "content", .size = size, .backing = c->backing,
		.install = c->install, .delivery = c->delivery,
		.handler_threads = 2, .source = src,
		.fault_around = c->around,
	};
	LM_OK(lm_region_create(&rc, &r));

	for (unsigned i = 0; i < THREADS; i++) {
		t[i] = (struct toucher){ .base = lm_region_addr(r), .size = size,
					 .page_size = ps, .seed = i };
		pthread_create(&tid[i], NULL, touch_all, &t[i]);
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);

	/* A handler wakes the toucher before it updates its own counters:
	 * every page is touched, so completion is the quiescent point. */
	LM_OK(lm_region_wait_complete(r, 10000));
	const uint8_t *got = lm_region_addr(r);
	for (uint64_t off = 0; off < size; off += ps)
		LM_ASSERT(!memcmp(got + off, expect + off, ps),
			  "page at offset 0x%llx differs from its source",
			  (unsigned long long)off);
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_demand + st.pages_around == size / ps,
		  "pages_demand %llu + around %llu of %llu",
		  (unsigned long long)st.pages_demand,
		  (unsigned long long)st.pages_around,
		  (unsigned long long)(size / ps));
	if (c->around <= 1)
		LM_ASSERT(st.pages_around == 0, "no fault-around");
	LM_ASSERT(st.bytes_read <= size, "bytes_read %llu > size",
		  (unsigned long long)st.bytes_read);
	if (c->file && c->around <= 1)	/* around: only all-hole runs */
		LM_ASSERT(st.pages_zero == (size / ps + 4) / 8,
			  "holes installed as zero pages: %llu",
			  (unsigned long long)st.pages_zero);
	LM_ASSERT(lm_region_error(r, NULL) == 0, "no page error expected");

	lm_region_destroy(r);
	lm_source_destroy(src);
	if (path) {
		unlink(path);
		free(path);
	}
	free(expect);
	t_hugepages_restore(huge_prev);
}

static void test_combo(void **state)
{
	LM_REQUIRE_UFFD();
	run_combo(*state);
}

#define C(b, i, d, f)                                                        \
	{ LM_BACKING_##b, LM_INSTALL_##i, LM_DELIVERY_##d, f, 0 }
#define CA(b, i, d, f, a)                                                    \
	{ LM_BACKING_##b, LM_INSTALL_##i, LM_DELIVERY_##d, f, a }
static struct combo combos[] = {
	C(ANON, COPY, HANDLER, false),     C(ANON, COPY, SELF, false),
	C(ANON, COPY, HANDLER, true),      C(ANON, COPY, SELF, true),
	C(MEMFD, COPY, HANDLER, false),    C(MEMFD, COPY, SELF, true),
	C(MEMFD, CONTINUE, HANDLER, true), C(MEMFD, CONTINUE, SELF, false),
	C(MEMFD, CONTINUE, SELF, true),
	C(HUGETLB, COPY, HANDLER, false),  C(HUGETLB, COPY, SELF, true),
	C(HUGETLB, CONTINUE, HANDLER, true),
	C(HUGETLB, CONTINUE, SELF, false),
	CA(ANON, COPY, SELF, true, 16),    CA(ANON, COPY, HANDLER, false, 8),
	CA(MEMFD, CONTINUE, SELF, true, 16),
	CA(MEMFD, CONTINUE, HANDLER, false, 5),
	CA(HUGETLB, COPY, SELF, true, 2),
};

int main(void)
{
	struct CMUnitTest tests[sizeof(combos) / sizeof(combos[0])];

	for (size_t i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
		static char names[32][64];
		struct combo *c = &combos[i];

		snprintf(names[i], sizeof(names[i]), "%s/%s/%s/%s/around%u",
			 lm_backing_name(c->backing),
			 lm_install_name(c->install),
			 lm_delivery_name(c->delivery),
			 c->file ? "file" : "memory", c->around);
		tests[i] = (struct CMUnitTest){
			.name = names[i], .test_func = test_combo,
			.initial_state = c,
		};
	}
	return cmocka_run_group_tests_name("region_content", tests, NULL, NULL);
}
