/*
 * pstore.c - what the stores share: the usage call and the zero test.
 */
#include <string.h>

#include "reclaim/pstore_internal.h"

void lm_pstore_usage(struct lm_page_store *s, struct lm_pstore_usage *u)
{
	struct pstore_base *b = (struct pstore_base *)s;

	memset(u, 0, sizeof(*u));
	b->usage(b, u);
}

bool pstore_page_is_zero(const void *p, uint64_t page_size)
{
	const uint64_t *w = p;
	uint64_t acc = 0;

	/* No early exit: a cold page is rarely zero in part, and a branch
	 * per word costs more than the words left over. */
	for (uint64_t i = 0; i < page_size / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		       w[i + 5] | w[i + 6] | w[i + 7];
	return acc == 0;
}
