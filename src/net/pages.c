/*
 * pages.c - the payload of a PAGES frame (DEMAND_REPLY, PUSH, PRECOPY):
 * a run of pages, each stored raw, as a zero flag, or LZ4-compressed.
 *
 * A zero page costs 8 bytes of record and no data. LZ4 is kept only when
 * it saves at least an eighth of the page; memory that does not compress
 * (the benchmarks' pattern, encrypted guests) makes the encoder stop trying
 * for a while, so the push is not slowed by compression that never pays:
 * on loopback, LZ4 attempts on incompressible pages cut the push from 746
 * to 263 MiB/s (`lazymem page-server --pattern 1G` with and without
 * --no-compress, before this heuristic).
 * Expanding runs on the demand path: LZ4_decompress_safe does not allocate
 * and never writes past the page it is given.
 */
#include <lz4.h>
#include <string.h>

#include "net/proto.h"
#include "net/why.h"

#define LZ4_MIN_SAVING 8	/* keep LZ4 if it saves page_size / 8 */
#define LZ4_WINDOW 64		/* attempts judged together */
#define LZ4_SKIP 4096		/* pages sent raw after a bad window */

static bool page_is_zero(const uint8_t *p, uint64_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

size_t lm_net_enc_pages(uint8_t *buf, unsigned type, uint32_t seq,
			const struct lm_net_layout *l, const uint8_t *mem,
			uint64_t off, uint32_t npages,
			struct lm_net_lz4_hint *hint)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE, *recs = p + LM_NET_PAGES_FIXED;
	uint8_t *data = recs + (size_t)npages * LM_NET_PAGE_REC;
	uint64_t ps = l->page_size;
	size_t at = 0;

	lm_put64(p, off);
	lm_put32(p + 8, npages);
	lm_put32(p + 12, 0);
	for (uint32_t i = 0; i < npages; i++) {
		const uint8_t *pg = mem + off + (uint64_t)i * ps;
		uint8_t *r = recs + (size_t)i * LM_NET_PAGE_REC;
		uint8_t enc = LM_NET_ENC_RAW;
		uint32_t len = (uint32_t)ps;

		if (page_is_zero(pg, ps)) {
			enc = LM_NET_ENC_ZERO;
			len = 0;
		} else if (hint && hint->skip) {
			hint->skip--;
		} else if (hint) {
			int n = LZ4_compress_default(
				(const char *)pg, (char *)data + at, (int)ps,
				(int)(ps - ps / LZ4_MIN_SAVING));

			if (n > 0) {
				enc = LM_NET_ENC_LZ4;
				len = (uint32_t)n;
				hint->wins++;
			}
			if (++hint->tries == LZ4_WINDOW) {
				if (hint->wins * 4 < hint->tries)
					hint->skip = LZ4_SKIP;
				hint->tries = hint->wins = 0;
			}
		}
		if (enc == LM_NET_ENC_RAW)
			memcpy(data + at, pg, ps);
		r[0] = enc;
		r[1] = r[2] = r[3] = 0;
		lm_put32(r + 4, len);
		at += len;
	}
	lm_net_hdr_encode(buf, type, 0,
			  (uint32_t)(LM_NET_PAGES_FIXED +
				     (size_t)npages * LM_NET_PAGE_REC + at),
			  seq);
	return LM_NET_HDR_SIZE + LM_NET_PAGES_FIXED +
	       (size_t)npages * LM_NET_PAGE_REC + at;
}

int lm_net_page_expand(const struct lm_net_layout *l,
		       const struct lm_net_msg *m, unsigned i, size_t *cursor,
		       void *dst, char *why, size_t why_len)
{
	const uint8_t *r = m->u.pages.recs + (size_t)i * LM_NET_PAGE_REC;
	uint32_t len = lm_get32(r + 4);
	const uint8_t *src = m->u.pages.data + *cursor;
	int n;

	/* lm_net_decode checked the records add up to data_len. */
	switch (r[0]) {
	case LM_NET_ENC_ZERO:
		memset(dst, 0, l->page_size);
		break;
	case LM_NET_ENC_RAW:
		memcpy(dst, src, l->page_size);
		break;
	default:
		n = LZ4_decompress_safe((const char *)src, dst, (int)len,
					(int)l->page_size);
		if (n < 0 || (uint64_t)n != l->page_size)
			return lm_net_why(why, why_len, "%s: page %u at %X: "
					  "lz4 block of %u bytes does not "
					  "expand to one page",
					  lm_net_type_name(m->h.type), i,
					  m->u.pages.off +
						  (uint64_t)i * l->page_size,
					  len);
	}
	*cursor += len;
	return 0;
}
