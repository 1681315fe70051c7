/*
 * lm_test.h - what every lazymem test shares: cmocka, loud assertions that
 * print errno and the library's message, skips with a one-line reason, and
 * the page pattern the tests verify against.
 */
#ifndef LAZYMEM_TEST_H
#define LAZYMEM_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <lazymem/lazymem.h>
#include "util/error.h"

/* Fail the test with the expression, errno, and a formatted reason. */
#define LM_ASSERT(cond, fmt, ...)                                            \
	do {                                                                 \
		if (!(cond))                                                 \
			fail_msg("%s:%d: %s: " fmt " (errno %d: %s; lazymem: " \
				 "%s%s%s)", __FILE__, __LINE__, #cond,       \
				 ##__VA_ARGS__, errno, strerror(errno),      \
				 lm_last_error(), *util_last_error() ?       \
				 "; above it: " : "", util_last_error());    \
	} while (0)

/* A library call that must return 0. */
#define LM_OK(call)                                                          \
	do {                                                                 \
		int rc_ = (call);                                            \
		if (rc_ != 0)                                                \
			fail_msg("%s:%d: %s = %d (%s); lazymem: %s%s%s",     \
				 __FILE__, __LINE__, #call, rc_,             \
				 strerror(-rc_), lm_last_error(),            \
				 *util_last_error() ? "; above it: " : "",   \
				 util_last_error());                         \
	} while (0)

/* Skip the current test, saying why on one line. */
#define LM_SKIP(fmt, ...)                                                    \
	do {                                                                 \
		print_message("SKIP: " fmt "\n", ##__VA_ARGS__);             \
		skip();                                                      \
	} while (0)

static inline uint64_t t_pattern(uint64_t off_words, uint64_t salt)
{
	uint64_t x = off_words * 0x9e3779b97f4a7c15ull + salt;

	x ^= x >> 29;
	return x * 0xbf58476d1ce4e5b9ull;
}

static inline void t_fill(void *buf, uint64_t size, uint64_t salt)
{
	uint64_t *w = buf;

	for (uint64_t i = 0; i < size / 8; i++)
		w[i] = t_pattern(i, salt);
}

/* First mismatching byte offset, or -1 when buf matches the pattern. */
static inline int64_t t_check(const void *buf, uint64_t size, uint64_t salt)
{
	const uint64_t *w = buf;

	for (uint64_t i = 0; i < size / 8; i++)
		if (w[i] != t_pattern(i, salt))
			return (int64_t)(i * 8);
	return -1;
}

/*
 * Make sure `pages` 2 MiB hugetlb pages are free, raising nr_hugepages if
 * we may. Returns the previous nr_hugepages (to restore) or -1 to skip.
 */
static inline long t_hugepages_reserve(long pages)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	long cur = -1, want;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &cur) != 1) {
		fclose(f);
		return -1;
	}
	want = cur + pages;
	rewind(f);
	if (fprintf(f, "%ld\n", want) < 0 || fflush(f) != 0) {
		fclose(f);
		return -1;
	}
	fclose(f);
	f = fopen("/proc/sys/vm/nr_hugepages", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &want) != 1 || want < cur + pages) {
		fclose(f);
		f = fopen("/proc/sys/vm/nr_hugepages", "w");
		if (f) {
			fprintf(f, "%ld\n", cur);
			fclose(f);
		}
		return -1;
	}
	fclose(f);
	return cur;
}

static inline void t_hugepages_restore(long prev)
{
	FILE *f;

	if (prev < 0)
		return;
	f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (f) {
		fprintf(f, "%ld\n", prev);
		fclose(f);
	}
}

/* Skip when userfaultfd is not usable here (container, old kernel). */
static inline int t_uffd_usable(char *why, size_t len)
{
	struct lm_source *s;
	struct lm_region *r;
	struct lm_region_config c = { .name = "probe", .size = 4096 };
	int err = lm_source_zero_create(4096, &s);

	if (err)
		return 0;
	c.source = s;
	err = lm_region_create(&c, &r);
	if (err) {
		snprintf(why, len, "userfaultfd unusable here: %s",
			 lm_last_error());
		lm_source_destroy(s);
		return 0;
	}
	lm_region_destroy(r);
	lm_source_destroy(s);
	return 1;
}

#define LM_REQUIRE_UFFD()                                                    \
	do {                                                                 \
		char why_[256];                                              \
		if (!t_uffd_usable(why_, sizeof(why_)))                      \
			LM_SKIP("%s", why_);                                 \
	} while (0)

#endif
