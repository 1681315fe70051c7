/*
 * net_check.h - what the decoder fuzz targets require of every frame the
 * decoder accepts: each field inside the layout, each page expanding to
 * one page or refused with a reason. Shared by net_decode.c (bytes
 * straight into the decoder) and net_tls_decode.c (the same bytes through
 * a real TLS session pair first).
 */
#ifndef LAZYMEM_FUZZ_NET_CHECK_H
#define LAZYMEM_FUZZ_NET_CHECK_H

#include <stdlib.h>

#include "net/proto.h"

static void check_frame(const struct lm_net_layout *l,
			const struct lm_net_msg *m)
{
	static uint8_t page[4096];
	char why[256];
	size_t cursor = 0;

	switch (m->h.type) {
	case LM_NET_DEMAND_REQ:
		if (m->u.req.off + m->u.req.len > l->size ||
		    m->u.req.off % l->page_size)
			abort();
		break;
	case LM_NET_DEMAND_REPLY:
	case LM_NET_PUSH:
	case LM_NET_PRECOPY:
		if (m->u.pages.off + (uint64_t)m->u.pages.npages *
					     l->page_size > l->size)
			abort();
		for (unsigned i = 0; i < m->u.pages.npages; i++) {
			why[0] = '\0';
			if (lm_net_page_expand(l, m, i, &cursor, page, why,
					       sizeof(why))) {
				if (!why[0])
					abort();
				break;
			}
			if (cursor > m->u.pages.data_len)
				abort();
		}
		break;
	case LM_NET_DIRTY:
	case LM_NET_HAVE:
		if (m->u.bitmap.first + m->u.bitmap.nbits > l->nr_pages)
			abort();
		break;
	case LM_NET_HELLO:
		if (!m->u.hello.layout.size ||
		    m->u.hello.layout.size % m->u.hello.layout.page_size)
			abort();
		break;
	default:
		break;
	}
}

#endif
