/*
 * pattern.c - the page source behind every guest the VMM runs: each word
 * holds lm_pattern(offset, generation) (guest_abi.h), which the guest can
 * recompute to verify any page without a copy of the image. With code set,
 * each page instead begins with "mov rax, imm64; ret", imm64 being the
 * page's pattern word, for the instruction-fetch workload.
 *
 * read() is called on the fault path, possibly in a signal handler: it only
 * computes and stores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vm.h"
#include "vmm/pattern.h"

struct pattern_source {
	struct lm_source src;		/* first: the core sees only this */
	uint64_t gen;
	uint64_t stride;
	bool code;
};

static int pattern__read(struct lm_source *s, uint64_t off, void *dst,
			 size_t len)
{
	struct pattern_source *p = (struct pattern_source *)s;
	uint8_t *d = dst;

	if (off % 8 || len % 8)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = lm_pattern(off + i, p->gen);

		memcpy(d + i, &v, 8);
	}
	if (p->code) {
		/* Every page start inside [off, off + len). */
		uint64_t first = (off + p->stride - 1) / p->stride * p->stride;

		for (uint64_t pg = first; pg < off + len; pg += p->stride) {
			uint8_t *c = d + (pg - off);
			uint64_t v = lm_pattern(pg, p->gen);

			if (pg + LM_FETCH_CODE_BYTES > off + len)
				return -EINVAL;
			memset(c, 0x90, LM_FETCH_CODE_BYTES);	/* nop */
			c[0] = 0x48;				/* rex.w */
			c[1] = 0xb8;				/* mov rax, imm64 */
			memcpy(c + 2, &v, 8);
			c[10] = 0xc3;				/* ret */
		}
	}
	return 0;
}

static int pattern__is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct pattern_source *p = (struct pattern_source *)s;

	(void)off;
	(void)len;
	return p->gen == 0 && !p->code;
}

static void pattern__destroy(struct lm_source *s)
{
	free(s);
}

static const struct lm_source_ops pattern_ops = {
	.read = pattern__read,
	.is_zero = pattern__is_zero,
	.destroy = pattern__destroy,
};

int pattern_source__create(uint64_t size, uint64_t gen, uint64_t stride,
			   bool code, struct lm_source **out)
{
	struct pattern_source *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->src.ops = &pattern_ops;
	p->src.size = size;
	snprintf(p->src.desc, sizeof(p->src.desc), "pattern gen %llu%s",
		 (unsigned long long)gen, code ? " with fetch code" : "");
	p->gen = gen;
	p->stride = stride;
	p->code = code;
	*out = &p->src;
	return 0;
}
