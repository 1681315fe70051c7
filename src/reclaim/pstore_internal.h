/*
 * reclaim/pstore_internal.h - what every store of this folder shares: the
 * public vtable first, then how to report its usage.
 */
#ifndef LAZYMEM_RECLAIM_PSTORE_INTERNAL_H
#define LAZYMEM_RECLAIM_PSTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "reclaim/pstore.h"

struct pstore_base {
	struct lm_page_store pub;	/* first: the vtable's pointer */
	void (*usage)(struct pstore_base *b, struct lm_pstore_usage *u);
};

/* True if the page_size bytes at p are all zero. */
bool pstore_page_is_zero(const void *p, uint64_t page_size);

#endif
