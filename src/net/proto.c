/*
 * proto.c - frame headers, the layout handshake, and the decoder.
 *
 * The decoder is the wall between a peer and our memory: every length,
 * offset and count in a frame is checked here against the type's own
 * limits and the negotiated layout before any other code looks at it, and
 * each refusal says which field was wrong and what was expected. It runs on
 * the demand path too (possibly in a SIGBUS handler), so it neither
 * allocates nor calls stdio. Page payloads are encoded and expanded in
 * pages.c.
 */
#include <errno.h>
#include <string.h>

#include "net/proto.h"
#include "net/why.h"

#define HELLO_FIXED 32u

static const char *const type_names[LM_NET_TYPE_MAX] = {
	[0] = "type 0",
	[LM_NET_HELLO] = "HELLO",
	[LM_NET_WELCOME] = "WELCOME",
	[LM_NET_DEMAND_REQ] = "DEMAND_REQ",
	[LM_NET_DEMAND_REPLY] = "DEMAND_REPLY",
	[LM_NET_PUSH] = "PUSH",
	[LM_NET_PRECOPY] = "PRECOPY",
	[LM_NET_LIST_DONE] = "LIST_DONE",
	[LM_NET_DIRTY] = "DIRTY",
	[LM_NET_HAVE] = "HAVE",
	[LM_NET_VCPU] = "VCPU",
	[LM_NET_SWITCHOVER] = "SWITCHOVER",
	[LM_NET_DONE] = "DONE",
	[LM_NET_ERROR] = "ERROR",
};

const char *lm_net_type_name(unsigned type)
{
	return type > 0 && type < LM_NET_TYPE_MAX ? type_names[type]
						  : "unknown";
}

/* The largest payload each type may carry: checked before reading it. */
static uint32_t max_length(unsigned type)
{
	switch (type) {
	case LM_NET_HELLO:
		return HELLO_FIXED + 8 * LM_NET_MAX_REGIONS;
	case LM_NET_WELCOME:
	case LM_NET_DEMAND_REQ:
	case LM_NET_LIST_DONE:
		return 16;
	case LM_NET_DEMAND_REPLY:
	case LM_NET_PUSH:
	case LM_NET_PRECOPY:
		return LM_NET_MAX_PAYLOAD;
	case LM_NET_DIRTY:
	case LM_NET_HAVE:
		return LM_NET_BITMAP_FIXED + LM_NET_MAX_BITMAP_BITS / 8;
	case LM_NET_VCPU:
		return 8 + LM_NET_MAX_BLOB;
	case LM_NET_SWITCHOVER:
		return 8;
	case LM_NET_DONE:
		return 0;
	case LM_NET_ERROR:
		return 8 + LM_NET_MAX_MSG;
	}
	return 0;
}

int lm_net_layout_init(struct lm_net_layout *l, uint64_t page_size,
		       const uint64_t *sizes, unsigned nr, char *why,
		       size_t why_len)
{
	memset(l, 0, sizeof(*l));
	if (page_size != 4096 && page_size != (2u << 20))
		return lm_net_why(why, why_len, "page size %U: expected 4096 "
				  "or 2097152", page_size), -EINVAL;
	if (nr == 0 || nr > LM_NET_MAX_REGIONS)
		return lm_net_why(why, why_len, "%u regions: expected 1 to %u",
				  nr, LM_NET_MAX_REGIONS), -EINVAL;
	l->page_size = page_size;
	l->nr_regions = nr;
	for (unsigned i = 0; i < nr; i++) {
		if (sizes[i] == 0 || sizes[i] % page_size)
			return lm_net_why(why, why_len, "region %u size %U: "
					  "expected a positive multiple of "
					  "the page size %U", i, sizes[i],
					  page_size), -EINVAL;
		/* Cap the image at 2^48 bytes: no sum can wrap. */
		if (sizes[i] > (1ull << 48) - l->size)
			return lm_net_why(why, why_len, "region %u size %U: "
					  "the layout exceeds 2^48 bytes", i,
					  sizes[i]), -EINVAL;
		l->region_size[i] = sizes[i];
		l->size += sizes[i];
	}
	l->nr_pages = l->size / page_size;
	return 0;
}

int lm_net_layout_match(const struct lm_net_layout *mine,
			const struct lm_net_layout *theirs, char *why,
			size_t why_len)
{
	if (mine->page_size != theirs->page_size)
		return lm_net_why(why, why_len, "peer's page size is %U, ours "
				  "is %U", theirs->page_size, mine->page_size);
	if (mine->nr_regions != theirs->nr_regions)
		return lm_net_why(why, why_len, "peer has %u memory regions, "
				  "we have %u", theirs->nr_regions,
				  mine->nr_regions);
	for (unsigned i = 0; i < mine->nr_regions; i++)
		if (mine->region_size[i] != theirs->region_size[i])
			return lm_net_why(why, why_len, "region %u: peer's "
					  "size is %U bytes, ours is %U", i,
					  theirs->region_size[i],
					  mine->region_size[i]);
	return 0;
}

void lm_net_hdr_encode(uint8_t *b, unsigned type, uint16_t flags,
		       uint32_t length, uint32_t seq)
{
	lm_put32(b, LM_NET_MAGIC);
	b[4] = LM_NET_VERSION;
	b[5] = (uint8_t)type;
	lm_put16(b + 6, flags);
	lm_put32(b + 8, length);
	lm_put32(b + 12, seq);
}

int lm_net_check_header(const uint8_t *b, struct lm_net_hdr *h, char *why,
			size_t why_len)
{
	h->magic = lm_get32(b);
	h->version = b[4];
	h->type = b[5];
	h->flags = lm_get16(b + 6);
	h->length = lm_get32(b + 8);
	h->seq = lm_get32(b + 12);
	if (h->magic != LM_NET_MAGIC)
		return lm_net_why(why, why_len, "bad magic %X: expected %X "
				  "(\"LMNP\"); not a lazymem peer",
				  (uint64_t)h->magic, (uint64_t)LM_NET_MAGIC);
	if (h->version != LM_NET_VERSION)
		return lm_net_why(why, why_len, "protocol version %u: this "
				  "side speaks version %u", h->version,
				  LM_NET_VERSION);
	if (h->type == 0 || h->type >= LM_NET_TYPE_MAX)
		return lm_net_why(why, why_len, "unknown message type %u",
				  h->type);
	if (h->type == LM_NET_HELLO ? (h->flags & ~LM_NET_HELLO_FLAGS)
				    : h->flags)
		return lm_net_why(why, why_len, "%s: unknown flags %X",
				  lm_net_type_name(h->type),
				  (uint64_t)h->flags);
	if (h->length > max_length(h->type))
		return lm_net_why(why, why_len, "%s: length %U exceeds the "
				  "limit %U for this type",
				  lm_net_type_name(h->type),
				  (uint64_t)h->length,
				  (uint64_t)max_length(h->type));
	return 0;
}

static int want_len(const struct lm_net_hdr *h, uint32_t len, char *why,
		    size_t why_len)
{
	if (h->length != len)
		return lm_net_why(why, why_len, "%s: length %U, expected %U",
				  lm_net_type_name(h->type),
				  (uint64_t)h->length, (uint64_t)len);
	return 0;
}

static int decode_hello(const struct lm_net_hdr *h, const uint8_t *p,
			struct lm_net_msg *m, char *why, size_t why_len)
{
	struct lm_net_hello *hi = &m->u.hello;
	uint64_t sizes[LM_NET_MAX_REGIONS];
	char sub[160];
	unsigned nr;

	if (h->length < HELLO_FIXED)
		return lm_net_why(why, why_len, "HELLO: length %U, expected "
				  "at least %u", (uint64_t)h->length,
				  HELLO_FIXED);
	hi->session = lm_get64(p);
	hi->role = lm_get32(p + 8);
	hi->slot = lm_get32(p + 12);
	nr = lm_get32(p + 24);
	if (hi->role > LM_NET_ROLE_URGENT)
		return lm_net_why(why, why_len, "HELLO: role %u: expected 0 "
				  "(control) or 1 (urgent)", hi->role);
	if (hi->role == LM_NET_ROLE_URGENT && hi->slot >= LM_NET_MAX_URGENT)
		return lm_net_why(why, why_len, "HELLO: urgent slot %u: "
				  "expected below %u", hi->slot,
				  LM_NET_MAX_URGENT);
	if (nr == 0 || nr > LM_NET_MAX_REGIONS)
		return lm_net_why(why, why_len, "HELLO: %u regions: expected "
				  "1 to %u", nr, LM_NET_MAX_REGIONS);
	if (h->length != HELLO_FIXED + 8 * nr)
		return lm_net_why(why, why_len, "HELLO: length %U does not "
				  "match %u regions (expected %U)",
				  (uint64_t)h->length, nr,
				  (uint64_t)(HELLO_FIXED + 8 * nr));
	for (unsigned i = 0; i < nr; i++)
		sizes[i] = lm_get64(p + HELLO_FIXED + 8 * i);
	if (lm_net_layout_init(&hi->layout, lm_get64(p + 16), sizes, nr, sub,
			       sizeof(sub)))
		return lm_net_why(why, why_len, "HELLO: layout: %s", sub);
	return 0;
}

/* [off, off + len) must be page-aligned and inside the layout. */
static int check_range(const struct lm_net_layout *l, const char *what,
		       uint64_t off, uint64_t len, char *why, size_t why_len)
{
	if (off % l->page_size)
		return lm_net_why(why, why_len, "%s: offset %X is not aligned "
				  "to the page size %U", what, off,
				  l->page_size);
	if (off >= l->size || len > l->size - off)
		return lm_net_why(why, why_len, "%s: range %X + %U lies "
				  "outside the %U-byte memory layout", what,
				  off, len, l->size);
	return 0;
}

static int decode_pages(const struct lm_net_layout *l,
			const struct lm_net_hdr *h, const uint8_t *p,
			struct lm_net_msg *m, char *why, size_t why_len)
{
	const char *what = lm_net_type_name(h->type);
	uint64_t stored = 0, npages;
	int err;

	if (h->length < LM_NET_PAGES_FIXED)
		return lm_net_why(why, why_len, "%s: length %U, expected at "
				  "least %u", what, (uint64_t)h->length,
				  LM_NET_PAGES_FIXED);
	m->u.pages.off = lm_get64(p);
	npages = lm_get32(p + 8);
	if (npages == 0 || npages > LM_NET_MAX_RUN_PAGES ||
	    npages * l->page_size > LM_NET_MAX_RUN_BYTES)
		return lm_net_why(why, why_len, "%s: %U pages in one frame: "
				  "expected 1 to %u and at most %u bytes",
				  what, npages, LM_NET_MAX_RUN_PAGES,
				  LM_NET_MAX_RUN_BYTES);
	err = check_range(l, what, m->u.pages.off, npages * l->page_size,
			  why, why_len);
	if (err)
		return err;
	if (h->length < LM_NET_PAGES_FIXED + npages * LM_NET_PAGE_REC)
		return lm_net_why(why, why_len, "%s: length %U cannot hold "
				  "%U page records", what,
				  (uint64_t)h->length, npages);
	m->u.pages.npages = (uint32_t)npages;
	m->u.pages.recs = p + LM_NET_PAGES_FIXED;
	m->u.pages.data = m->u.pages.recs + npages * LM_NET_PAGE_REC;
	m->u.pages.data_len =
		h->length - LM_NET_PAGES_FIXED - npages * LM_NET_PAGE_REC;
	for (uint64_t i = 0; i < npages; i++) {
		const uint8_t *r = m->u.pages.recs + i * LM_NET_PAGE_REC;
		uint32_t len = lm_get32(r + 4);

		switch (r[0]) {
		case LM_NET_ENC_RAW:
			if (len != l->page_size)
				return lm_net_why(why, why_len, "%s: page %U "
						  "raw with %u bytes, expected "
						  "%U", what, i, len,
						  l->page_size);
			break;
		case LM_NET_ENC_ZERO:
			if (len != 0)
				return lm_net_why(why, why_len, "%s: page %U "
						  "zero with %u bytes, "
						  "expected 0", what, i, len);
			break;
		case LM_NET_ENC_LZ4:
			if (len == 0 || len >= l->page_size)
				return lm_net_why(why, why_len, "%s: page %U "
						  "lz4 with %u bytes, expected "
						  "1 to %U", what, i, len,
						  l->page_size - 1);
			break;
		default:
			return lm_net_why(why, why_len, "%s: page %U has "
					  "unknown encoding %u", what, i,
					  r[0]);
		}
		stored += len;
	}
	if (stored != m->u.pages.data_len)
		return lm_net_why(why, why_len, "%s: page records add up to "
				  "%U bytes but the frame carries %U", what,
				  stored, (uint64_t)m->u.pages.data_len);
	return 0;
}

static int decode_bitmap(const struct lm_net_layout *l,
			 const struct lm_net_hdr *h, const uint8_t *p,
			 struct lm_net_msg *m, char *why, size_t why_len)
{
	const char *what = lm_net_type_name(h->type);
	uint64_t first, nbits, bytes;

	if (h->length < LM_NET_BITMAP_FIXED)
		return lm_net_why(why, why_len, "%s: length %U, expected at "
				  "least %u", what, (uint64_t)h->length,
				  LM_NET_BITMAP_FIXED);
	first = lm_get64(p);
	nbits = lm_get64(p + 8);
	if (nbits == 0 || nbits > LM_NET_MAX_BITMAP_BITS)
		return lm_net_why(why, why_len, "%s: %U bits: expected 1 to "
				  "%u", what, nbits, LM_NET_MAX_BITMAP_BITS);
	if (first >= l->nr_pages || nbits > l->nr_pages - first)
		return lm_net_why(why, why_len, "%s: pages %U + %U lie "
				  "outside the layout's %U pages", what, first,
				  nbits, l->nr_pages);
	bytes = (nbits + 7) / 8;
	if (h->length != LM_NET_BITMAP_FIXED + bytes)
		return lm_net_why(why, why_len, "%s: length %U, expected %U "
				  "for %U bits", what, (uint64_t)h->length,
				  LM_NET_BITMAP_FIXED + bytes, nbits);
	if (nbits % 8 && (p[LM_NET_BITMAP_FIXED + bytes - 1] >> (nbits % 8)))
		return lm_net_why(why, why_len, "%s: bits set past the %U "
				  "announced", what, nbits);
	m->u.bitmap.first = first;
	m->u.bitmap.nbits = nbits;
	m->u.bitmap.bits = p + LM_NET_BITMAP_FIXED;
	return 0;
}

static int decode_error(const struct lm_net_hdr *h, const uint8_t *p,
			struct lm_net_msg *m, char *why, size_t why_len)
{
	uint32_t n;
	int32_t code;

	if (h->length < 8)
		return lm_net_why(why, why_len, "ERROR: length %U, expected "
				  "at least 8", (uint64_t)h->length);
	code = (int32_t)lm_get32(p);
	n = lm_get32(p + 4);
	if (code <= 0 || code >= 4096)
		return lm_net_why(why, why_len, "ERROR: code %U: expected an "
				  "errno", (uint64_t)(uint32_t)code);
	if (n > LM_NET_MAX_MSG || h->length != 8 + n)
		return lm_net_why(why, why_len, "ERROR: text of %u bytes in a "
				  "frame of %U", n, (uint64_t)h->length);
	m->u.error.code = code;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t c = p[8 + i];

		m->u.error.text[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	m->u.error.text[n] = '\0';
	return 0;
}

int lm_net_decode(const struct lm_net_layout *l, const struct lm_net_hdr *h,
		  const uint8_t *p, struct lm_net_msg *m, char *why,
		  size_t why_len)
{
	int err;

	m->h = *h;
	if (!l && h->type != LM_NET_HELLO && h->type != LM_NET_ERROR)
		return lm_net_why(why, why_len, "%s before the HELLO",
				  lm_net_type_name(h->type));
	switch (h->type) {
	case LM_NET_HELLO:
		return decode_hello(h, p, m, why, why_len);
	case LM_NET_WELCOME:
		if ((err = want_len(h, 16, why, why_len)))
			return err;
		m->u.welcome.nr_urgent = lm_get32(p);
		m->u.welcome.resumed = lm_get32(p + 4);
		m->u.welcome.have_pages = lm_get64(p + 8);
		if (m->u.welcome.nr_urgent == 0 ||
		    m->u.welcome.nr_urgent > LM_NET_MAX_URGENT)
			return lm_net_why(why, why_len, "WELCOME: %u urgent "
					  "connections: expected 1 to %u",
					  m->u.welcome.nr_urgent,
					  LM_NET_MAX_URGENT);
		if (m->u.welcome.resumed > 1 ||
		    m->u.welcome.have_pages > l->nr_pages)
			return lm_net_why(why, why_len, "WELCOME: resumed %u "
					  "with %U pages of %U",
					  m->u.welcome.resumed,
					  m->u.welcome.have_pages,
					  l->nr_pages);
		return 0;
	case LM_NET_DEMAND_REQ:
		if ((err = want_len(h, 16, why, why_len)))
			return err;
		m->u.req.off = lm_get64(p);
		m->u.req.len = lm_get32(p + 8);
		if (m->u.req.len == 0 || m->u.req.len % l->page_size ||
		    m->u.req.len > LM_NET_MAX_RUN_BYTES ||
		    m->u.req.len / l->page_size > LM_NET_MAX_RUN_PAGES)
			return lm_net_why(why, why_len, "DEMAND_REQ: length "
					  "%u: expected 1 to %u whole pages "
					  "of %U bytes", m->u.req.len,
					  LM_NET_MAX_RUN_PAGES, l->page_size);
		return check_range(l, "DEMAND_REQ", m->u.req.off,
				   m->u.req.len, why, why_len);
	case LM_NET_DEMAND_REPLY:
	case LM_NET_PUSH:
	case LM_NET_PRECOPY:
		return decode_pages(l, h, p, m, why, why_len);
	case LM_NET_LIST_DONE:
		if ((err = want_len(h, 16, why, why_len)))
			return err;
		m->u.done.phase = lm_get32(p);
		m->u.done.pages = lm_get64(p + 8);
		if (m->u.done.phase > LM_NET_PHASE_PUSH ||
		    m->u.done.pages > l->nr_pages)
			return lm_net_why(why, why_len, "LIST_DONE: phase %u "
					  "with %U pages of %U",
					  m->u.done.phase, m->u.done.pages,
					  l->nr_pages);
		return 0;
	case LM_NET_DIRTY:
	case LM_NET_HAVE:
		return decode_bitmap(l, h, p, m, why, why_len);
	case LM_NET_VCPU:
		if (h->length < 8)
			return lm_net_why(why, why_len, "VCPU: length %U, "
					  "expected at least 8",
					  (uint64_t)h->length);
		m->u.vcpu.id = lm_get32(p);
		m->u.vcpu.len = lm_get32(p + 4);
		m->u.vcpu.data = p + 8;
		if (m->u.vcpu.id >= 4096 || m->u.vcpu.len > LM_NET_MAX_BLOB ||
		    h->length != 8 + m->u.vcpu.len)
			return lm_net_why(why, why_len, "VCPU: id %u with %u "
					  "bytes in a frame of %U (at most "
					  "4095 and %u)", m->u.vcpu.id,
					  m->u.vcpu.len, (uint64_t)h->length,
					  LM_NET_MAX_BLOB);
		return 0;
	case LM_NET_SWITCHOVER:
		if ((err = want_len(h, 8, why, why_len)))
			return err;
		m->u.switchover.nr_vcpus = lm_get32(p);
		if (m->u.switchover.nr_vcpus > 4096)
			return lm_net_why(why, why_len, "SWITCHOVER: %u vCPUs, "
					  "at most 4096",
					  m->u.switchover.nr_vcpus);
		return 0;
	case LM_NET_DONE:
		return want_len(h, 0, why, why_len);
	case LM_NET_ERROR:
		return decode_error(h, p, m, why, why_len);
	}
	return lm_net_why(why, why_len, "unknown message type %u", h->type);
}

/* Encoders. */

size_t lm_net_enc_hello(uint8_t *buf, uint16_t flags,
			const struct lm_net_hello *hi)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;
	uint32_t len = HELLO_FIXED + 8 * hi->layout.nr_regions;

	lm_net_hdr_encode(buf, LM_NET_HELLO, flags, len, 0);
	memset(p, 0, HELLO_FIXED);
	lm_put64(p, hi->session);
	lm_put32(p + 8, hi->role);
	lm_put32(p + 12, hi->slot);
	lm_put64(p + 16, hi->layout.page_size);
	lm_put32(p + 24, hi->layout.nr_regions);
	for (unsigned i = 0; i < hi->layout.nr_regions; i++)
		lm_put64(p + HELLO_FIXED + 8 * i, hi->layout.region_size[i]);
	return LM_NET_HDR_SIZE + len;
}

size_t lm_net_enc_welcome(uint8_t *buf, uint32_t nr_urgent, bool resumed,
			  uint64_t have_pages)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;

	lm_net_hdr_encode(buf, LM_NET_WELCOME, 0, 16, 0);
	lm_put32(p, nr_urgent);
	lm_put32(p + 4, resumed);
	lm_put64(p + 8, have_pages);
	return LM_NET_HDR_SIZE + 16;
}

size_t lm_net_enc_req(uint8_t *buf, uint32_t seq, uint64_t off,
		      uint32_t len)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;

	lm_net_hdr_encode(buf, LM_NET_DEMAND_REQ, 0, 16, seq);
	lm_put64(p, off);
	lm_put32(p + 8, len);
	lm_put32(p + 12, 0);
	return LM_NET_HDR_SIZE + 16;
}

size_t lm_net_enc_done(uint8_t *buf, uint32_t phase, uint64_t pages)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;

	lm_net_hdr_encode(buf, LM_NET_LIST_DONE, 0, 16, 0);
	lm_put32(p, phase);
	lm_put32(p + 4, 0);
	lm_put64(p + 8, pages);
	return LM_NET_HDR_SIZE + 16;
}

size_t lm_net_enc_bitmap(uint8_t *buf, unsigned type, uint64_t first,
			 uint64_t nbits, const uint64_t *bitmap)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;
	uint64_t bytes = (nbits + 7) / 8;

	lm_net_hdr_encode(buf, type, 0, (uint32_t)(LM_NET_BITMAP_FIXED + bytes),
			  0);
	lm_put64(p, first);
	lm_put64(p + 8, nbits);
	p += LM_NET_BITMAP_FIXED;
	memset(p, 0, bytes);
	for (uint64_t i = 0; i < nbits; i++) {
		uint64_t b = first + i;

		if (bitmap[b / 64] >> (b % 64) & 1)
			p[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	return LM_NET_HDR_SIZE + LM_NET_BITMAP_FIXED + bytes;
}

size_t lm_net_enc_vcpu(uint8_t *buf, uint32_t id, const void *data,
		       uint32_t len)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;

	lm_net_hdr_encode(buf, LM_NET_VCPU, 0, 8 + len, 0);
	lm_put32(p, id);
	lm_put32(p + 4, len);
	memcpy(p + 8, data, len);
	return LM_NET_HDR_SIZE + 8 + len;
}

size_t lm_net_enc_switchover(uint8_t *buf, uint32_t nr_vcpus)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;

	lm_net_hdr_encode(buf, LM_NET_SWITCHOVER, 0, 8, 0);
	lm_put32(p, nr_vcpus);
	lm_put32(p + 4, 0);
	return LM_NET_HDR_SIZE + 8;
}

size_t lm_net_enc_simple(uint8_t *buf, unsigned type)
{
	lm_net_hdr_encode(buf, type, 0, 0, 0);
	return LM_NET_HDR_SIZE;
}

size_t lm_net_enc_error(uint8_t *buf, int code, const char *text)
{
	uint8_t *p = buf + LM_NET_HDR_SIZE;
	size_t n = strnlen(text, LM_NET_MAX_MSG);

	lm_net_hdr_encode(buf, LM_NET_ERROR, 0, (uint32_t)(8 + n), 0);
	lm_put32(p, (uint32_t)code);
	lm_put32(p + 4, (uint32_t)n);
	memcpy(p + 8, text, n);
	return LM_NET_HDR_SIZE + 8 + n;
}
