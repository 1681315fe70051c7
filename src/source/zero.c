/*
 * zero.c - a source whose every page is zero: a fresh VM's memory, and the
 * baseline that measures the fault path with no I/O at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/source.h>
#include "core/error.h"

static int zero_read(struct lm_source *s, uint64_t off, void *dst, size_t len)
{
	if (off > s->size || len > s->size - off)
		return -ERANGE;
	memset(dst, 0, len);
	return 0;
}

static int zero_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	(void)s; (void)off; (void)len;
	return 1;
}

static void zero_destroy(struct lm_source *s)
{
	free(s);
}

static const struct lm_source_ops zero_ops = {
	.read = zero_read,
	.is_zero = zero_is_zero,
	.destroy = zero_destroy,
};

int lm_source_zero_create(uint64_t size, struct lm_source **out)
{
	struct lm_source *s = calloc(1, sizeof(*s));

	if (!s)
		return lm_error(-ENOMEM, "zero source: out of memory");
	s->ops = &zero_ops;
	s->size = size;
	snprintf(s->desc, sizeof(s->desc), "zero");
	*out = s;
	return 0;
}
