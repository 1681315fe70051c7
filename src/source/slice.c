/*
 * slice.c - a window of another source: byte N of the slice is byte
 * off + N of the inner source. A foreign space gives each of its ranges a
 * slice of the one memory file, so many ranges (and many VMs) read the
 * same file through the same descriptor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <lazymem/source.h>
#include "core/error.h"

struct slice_source {
	struct lm_source base;
	struct lm_source *inner;
	uint64_t off;
};

static int slice_read(struct lm_source *s, uint64_t off, void *dst,
		      size_t len)
{
	struct slice_source *sl = (struct slice_source *)s;

	if (off > s->size || len > s->size - off)
		return -ERANGE;
	return lm_source_read(sl->inner, sl->off + off, dst, len);
}

static int slice_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct slice_source *sl = (struct slice_source *)s;

	if (!sl->inner->ops->is_zero)
		return 0;
	return sl->inner->ops->is_zero(sl->inner, sl->off + off, len);
}

static void slice_destroy(struct lm_source *s)
{
	free(s);
}

static const struct lm_source_ops slice_ops = {
	.read = slice_read,
	.is_zero = slice_is_zero,
	.destroy = slice_destroy,
};

int lm_source_slice_create(struct lm_source *inner, uint64_t off,
			   uint64_t size, struct lm_source **out)
{
	struct slice_source *sl;

	if (!inner)
		return lm_error(-EINVAL, "slice source: no inner source");
	if (off > inner->size || size > inner->size - off)
		return lm_error(-EINVAL, "slice source: [%llu, +%llu) is "
				"outside '%s' (%llu bytes)",
				(unsigned long long)off,
				(unsigned long long)size, inner->desc,
				(unsigned long long)inner->size);
	sl = calloc(1, sizeof(*sl));
	if (!sl)
		return lm_error(-ENOMEM, "slice source: out of memory");
	sl->base.ops = &slice_ops;
	sl->base.size = size;
	sl->inner = inner;
	sl->off = off;
	snprintf(sl->base.desc, sizeof(sl->base.desc), "%.70s@%llu",
		 inner->desc, (unsigned long long)off);
	*out = &sl->base;
	return 0;
}
