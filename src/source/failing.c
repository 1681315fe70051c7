/*
 * failing.c - a source that fails one page on purpose, wrapping another.
 * Tests and the failure demo use it to prove that a page that cannot be
 * fetched fails the access visibly instead of hanging it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <lazymem/source.h>
#include "core/error.h"

struct failing_source {
	struct lm_source base;
	struct lm_source *inner;
	uint64_t fail_off;
	int err;
};

static int failing_read(struct lm_source *s, uint64_t off, void *dst,
			size_t len)
{
	struct failing_source *f = (struct failing_source *)s;

	if (f->fail_off >= off && f->fail_off - off < len)
		return f->err;
	return lm_source_read(f->inner, off, dst, len);
}

static int failing_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct failing_source *f = (struct failing_source *)s;

	if (f->fail_off >= off && f->fail_off - off < len)
		return 0;	/* must be read, so that the read fails */
	return f->inner->ops->is_zero
		       ? f->inner->ops->is_zero(f->inner, off, len) : 0;
}

static void failing_destroy(struct lm_source *s)
{
	free(s);
}

static const struct lm_source_ops failing_ops = {
	.read = failing_read,
	.is_zero = failing_is_zero,
	.destroy = failing_destroy,
};

int lm_source_failing_create(struct lm_source *inner, uint64_t fail_off,
			     int err, struct lm_source **out)
{
	struct failing_source *f;

	if (!inner || err >= 0)
		return lm_error(-EINVAL, "failing source: needs an inner "
				"source and a negative errno");
	f = calloc(1, sizeof(*f));
	if (!f)
		return lm_error(-ENOMEM, "failing source: out of memory");
	f->base.ops = &failing_ops;
	f->base.size = inner->size;
	f->inner = inner;
	f->fail_off = fail_off;
	f->err = err;
	snprintf(f->base.desc, sizeof(f->base.desc), "failing(%.80s)",
		 inner->desc);
	*out = &f->base;
	return 0;
}
