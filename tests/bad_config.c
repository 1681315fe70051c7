/*
 * bad_config.c - bad arguments are refused with a message that names what
 * was wrong: unaligned sizes, a source shorter than the region, an install
 * mode the backing cannot do, a hybrid view without the self delivery.
 */
#include <fcntl.h>

#include "lm_test.h"

static void expect_refused(struct lm_region_config *c, const char *words)
{
	struct lm_region *r = NULL;
	int err = lm_region_create(c, &r);

	LM_ASSERT(err == -EINVAL, "expected -EINVAL, got %d", err);
	LM_ASSERT(r == NULL, "no region on failure");
	LM_ASSERT(strstr(lm_last_error(), words) != NULL,
		  "message '%s' should mention '%s'", lm_last_error(), words);
}

static void test_unaligned_size(void **s)
{
	struct lm_source *src;
	struct lm_region_config c = { .name = "guest", .size = 4096 + 100 };

	(void)s;
	LM_OK(lm_source_zero_create(1 << 20, &src));
	c.source = src;
	expect_refused(&c, "not a positive multiple of the anon page size");
	c.size = 0;
	expect_refused(&c, "not a positive multiple");
	c.size = 4 << 20;
	c.backing = LM_BACKING_HUGETLB;
	c.size = 3 << 20;
	expect_refused(&c, "hugetlb page size 2097152");
	c.size = 4 << 20;
	c.page_size = 4096;
	expect_refused(&c, "page size 4096 does not match the hugetlb "
		       "backing's page size 2097152");
	lm_source_destroy(src);
}

static void test_source_too_short(void **s)
{
	char path[] = "/tmp/lazymem-short-XXXXXX";
	int fd = mkstemp(path);
	struct lm_source *src;

	(void)s;
	LM_ASSERT(fd >= 0, "mkstemp");
	LM_ASSERT(ftruncate(fd, 64 << 10) == 0, "ftruncate");
	close(fd);
	LM_OK(lm_source_file_open(path, &src));
	struct lm_region_config c = { .name = "guest", .size = 1 << 20,
				      .source = src };
	expect_refused(&c, "holds 65536 bytes but the region needs 1048576");
	LM_ASSERT(strstr(lm_last_error(), path) != NULL, "names the file");
	lm_source_destroy(src);
	unlink(path);
}

static void test_missing_file(void **s)
{
	struct lm_source *src = NULL;
	int err = lm_source_file_open("/nonexistent/lazymem.img", &src);

	(void)s;
	LM_ASSERT(err == -ENOENT, "got %d", err);
	LM_ASSERT(strstr(lm_last_error(), "/nonexistent/lazymem.img") &&
		  strstr(lm_last_error(), "No such file"),
		  "message: %s", lm_last_error());
	err = lm_source_file_open("/tmp", &src);
	LM_ASSERT(err == -EINVAL && strstr(lm_last_error(), "not a regular"),
		  "directory refused: %s", lm_last_error());
}

static void test_bad_combinations(void **s)
{
	struct lm_source *src;
	struct lm_region_config c = { .name = "guest", .size = 1 << 20 };

	(void)s;
	LM_OK(lm_source_zero_create(1 << 20, &src));
	c.source = src;
	c.install = LM_INSTALL_CONTINUE;
	expect_refused(&c, "needs shared memory");
	c.backing = LM_BACKING_MEMFD;
	c.vmm_view = true;
	c.delivery = LM_DELIVERY_HANDLER;
	expect_refused(&c, "VMM view (hybrid) needs");
	c.vmm_view = false;
	c.handler_threads = 1000;
	expect_refused(&c, "1000 handler threads");
	c.handler_threads = 1;
	c.source = NULL;
	expect_refused(&c, "no source");
	lm_source_destroy(src);
}

static void test_out_of_range_fault(void **s)
{
	struct lm_source *src;
	struct lm_region *r;
	struct lm_fault f;

	(void)s;
	LM_REQUIRE_UFFD();
	LM_OK(lm_source_zero_create(1 << 20, &src));
	struct lm_region_config c = { .name = "guest", .size = 1 << 20,
				      .delivery = LM_DELIVERY_SELF,
				      .source = src };
	LM_OK(lm_region_create(&c, &r));
	LM_ASSERT(lm_fault_begin(r, 1 << 20, LM_ORIGIN_VCPU, &f) == -EFAULT,
		  "offset past the end refused");
	lm_region_destroy(r);
	lm_source_destroy(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unaligned_size),
		cmocka_unit_test(test_source_too_short),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_bad_combinations),
		cmocka_unit_test(test_out_of_range_fault),
	};

	return cmocka_run_group_tests_name("bad_config", tests, NULL, NULL);
}
