/*
 * hybrid_view.c - the hybrid mode: threads fault the main view through
 * SIGBUS, while the VMM view serves every other accessor on the blocking
 * path, including the kernel itself reading user memory in a system call
 * (which cannot take SIGBUS). Both see the same pages.
 */
#include <pthread.h>

#include "lm_test.h"

#define SIZE (8ull << 20)

static void *read_main(void *arg)
{
	struct lm_region *r = arg;
	const uint8_t *p = lm_region_addr(r);

	for (uint64_t off = 0; off < SIZE; off += 4096)
		LM_ASSERT(((const uint64_t *)(const void *)(p + off))[1] ==
			  t_pattern(off / 8 + 1, 5), "main view at 0x%llx",
			  (unsigned long long)off);
	return NULL;
}

static void test_hybrid(void **s)
{
	uint8_t *img = malloc(SIZE), *buf = malloc(SIZE);
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;
	pthread_t tid;
	int pfd[2];

	(void)s;
	LM_REQUIRE_UFFD();
	t_fill(img, SIZE, 5);
	LM_OK(lm_source_memory_create(img, SIZE, &src));
	struct lm_region_config c = {
		.name = "hybrid", .size = SIZE, .backing = LM_BACKING_MEMFD,
		.install = LM_INSTALL_CONTINUE, .delivery = LM_DELIVERY_SELF,
		.vmm_view = true, .handler_threads = 1, .source = src,
	};
	LM_OK(lm_region_create(&c, &r));
	LM_ASSERT(lm_region_vmm_addr(r) != NULL, "VMM view mapped");

	pthread_create(&tid, NULL, read_main, r);
	/* The kernel copies from the VMM view: its faults block and the
	 * handler thread resolves them. */
	LM_ASSERT(pipe(pfd) == 0, "pipe");
	for (uint64_t off = SIZE / 2; off < SIZE; off += 4096) {
		LM_ASSERT(write(pfd[1], (uint8_t *)lm_region_vmm_addr(r) + off,
				4096) == 4096, "write from VMM view at 0x%llx",
			  (unsigned long long)off);
		LM_ASSERT(read(pfd[0], buf + off, 4096) == 4096, "read back");
	}
	pthread_join(tid, NULL);
	LM_ASSERT(!memcmp(buf + SIZE / 2, img + SIZE / 2, SIZE / 2),
		  "what the kernel read through the VMM view");
	LM_ASSERT(!memcmp(lm_region_vmm_addr(r), img, SIZE), "VMM view");
	LM_ASSERT(!memcmp(lm_region_addr(r), img, SIZE), "main view");
	LM_OK(lm_region_wait_complete(r, 5000));
	lm_region_stats(r, &st);
	LM_ASSERT(st.pages_demand == SIZE / 4096, "each page fetched once: %llu",
		  (unsigned long long)st.pages_demand);
	LM_ASSERT(st.faults[LM_ORIGIN_SIGBUS] > 0 &&
		  st.faults[LM_ORIGIN_HANDLER] > 0, "both paths used");
	close(pfd[0]);
	close(pfd[1]);
	lm_region_destroy(r);
	lm_source_destroy(src);
	free(img);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hybrid),
	};

	return cmocka_run_group_tests_name("hybrid_view", tests, NULL, NULL);
}
