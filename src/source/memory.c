/*
 * memory.c - a source that is another buffer of this process: the fastest
 * possible source, so a benchmark over it measures the fault path alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/source.h>
#include "core/error.h"

struct memory_source {
	struct lm_source base;
	const uint8_t *buf;
};

static int memory_read(struct lm_source *s, uint64_t off, void *dst,
		       size_t len)
{
	struct memory_source *m = (struct memory_source *)s;

	if (off > s->size || len > s->size - off)
		return -ERANGE;
	memcpy(dst, m->buf + off, len);
	return 0;
}

static void memory_destroy(struct lm_source *s)
{
	free(s);
}

static const struct lm_source_ops memory_ops = {
	.read = memory_read,
	.destroy = memory_destroy,
};

int lm_source_memory_create(const void *buf, uint64_t size,
			    struct lm_source **out)
{
	struct memory_source *m;

	if (!buf)
		return lm_error(-EINVAL, "memory source: NULL buffer");
	m = calloc(1, sizeof(*m));
	if (!m)
		return lm_error(-ENOMEM, "memory source: out of memory");
	m->base.ops = &memory_ops;
	m->base.size = size;
	m->buf = buf;
	snprintf(m->base.desc, sizeof(m->base.desc), "memory %p", buf);
	*out = &m->base;
	return 0;
}
