/*
 * net_decode.c - fuzz target for the migration wire decoder: any bytes
 * must give either a frame whose every field lies inside the negotiated
 * layout, or a refusal with a message; never a crash or a read or write
 * out of range. The input is a stream of frames, as a peer would send
 * them: each header is checked, then its payload decoded against a fixed
 * layout (two regions, 4 KiB pages), and every page of a page frame is
 * expanded into one page-sized buffer (LZ4 included).
 *
 * Built with libFuzzer by scripts/fuzz.sh (clang); fuzz/replay.c runs the
 * same entry point over fuzz/corpus/net_decode/ in every ordinary build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[2] = { 1u << 20, 64u << 10 };
	struct lm_net_layout l;
	char why[256];

	if (lm_net_layout_init(&l, 4096, sizes, 2, why, sizeof(why)))
		abort();
	while (size >= LM_NET_HDR_SIZE) {
		struct lm_net_hdr h;
		struct lm_net_msg m;

		why[0] = '\0';
		if (lm_net_check_header(data, &h, why, sizeof(why))) {
			if (!why[0])
				abort();	/* a refusal says why */
			return 0;
		}
		data += LM_NET_HDR_SIZE;
		size -= LM_NET_HDR_SIZE;
		if (h.length > size)
			return 0;		/* truncated: would wait */
		/* Copy the payload so reads past it are caught by ASan. */
		uint8_t *p = malloc(h.length ? h.length : 1);

		if (!p)
			return 0;
		memcpy(p, data, h.length);
		why[0] = '\0';
		if (lm_net_decode(&l, &h, p, &m, why, sizeof(why))) {
			if (!why[0])
				abort();
		} else {
			check_frame(&l, &m);
		}
		free(p);
		data += h.length;
		size -= h.length;
	}
	return 0;
}
