/*
 * proto.h - the migration wire protocol: frames, message types, and the
 * decoder that checks every field against the negotiated memory layout.
 *
 * Every message is one frame: a 16-byte header, then `length` bytes of
 * payload. All integers are little-endian.
 *
 *   u32 magic    "LMNP" (0x504e4d4c)
 *   u8  version  LM_NET_VERSION; a peer speaking another one is refused
 *   u8  type     enum lm_net_type
 *   u16 flags    per type (HELLO: LM_NET_HELLO_*)
 *   u32 length   payload bytes, at most the type's own limit
 *   u32 seq      request number (DEMAND_REQ / DEMAND_REPLY), else 0
 *
 * Offsets on the wire are byte offsets into the memory image: the guest's
 * regions laid end to end in the order the HELLO lists them (the layout of
 * a snapshot's memory.img). A received frame is first checked by
 * lm_net_check_header() (before its payload is read, so an absurd length
 * never allocates or reads anything), then by lm_net_decode() with the
 * layout both sides agreed on. Nothing in this file allocates, so the
 * demand path may decode inside a SIGBUS handler.
 */
#ifndef LAZYMEM_NET_PROTO_H
#define LAZYMEM_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LM_NET_MAGIC 0x504e4d4cu	/* "LMNP" little-endian */
/* 2: the destination echoes a pre-copy round's LIST_DONE once the round
 * is in its store (version 1 had no echo). */
#define LM_NET_VERSION 2
#define LM_NET_HDR_SIZE 16

#define LM_NET_MAX_REGIONS 64
#define LM_NET_MAX_URGENT 64
/* A run of pages in one frame: at most 4 MiB and 1024 pages (a demand
 * fault with fault-around asks for at most 64 pages or 4 MiB). */
#define LM_NET_MAX_RUN_BYTES (4u << 20)
#define LM_NET_MAX_RUN_PAGES 1024u
/* Per page of a PAGES payload: u8 encoding, 3 pad, u32 stored length. */
#define LM_NET_PAGE_REC 8u
#define LM_NET_PAGES_FIXED 16u	/* u64 offset, u32 npages, u32 pad */
#define LM_NET_MAX_PAYLOAD \
	(LM_NET_PAGES_FIXED + LM_NET_MAX_RUN_PAGES * LM_NET_PAGE_REC + \
	 LM_NET_MAX_RUN_BYTES)
#define LM_NET_MAX_BLOB 65536u	/* one vCPU's state */
#define LM_NET_MAX_MSG 256u	/* ERROR text */
#define LM_NET_BITMAP_FIXED 16u	/* u64 first page, u64 bits */
/* A bitmap frame covers at most this many pages (2^22: 16 GiB of 4 KiB
 * pages, 512 KiB of bitmap); larger layouts send several frames. */
#define LM_NET_MAX_BITMAP_BITS (1u << 22)

enum lm_net_type {
	LM_NET_HELLO = 1,	/* source -> destination, first on a connection */
	LM_NET_WELCOME,		/* destination's answer to a control HELLO */
	LM_NET_DEMAND_REQ,	/* destination -> source: pages, now */
	LM_NET_DEMAND_REPLY,	/* source -> destination: the pages asked for */
	LM_NET_PUSH,		/* source -> destination: background pages */
	LM_NET_PRECOPY,		/* source -> destination: pre-copy pages */
	LM_NET_LIST_DONE,	/* source: a pre-copy round or the push ended */
	LM_NET_DIRTY,		/* source: pages dirtied since they were sent */
	LM_NET_HAVE,		/* destination, on resume: pages it already has */
	LM_NET_VCPU,		/* source: one vCPU's state blob */
	LM_NET_SWITCHOVER,	/* source: paused; destination may run */
	LM_NET_DONE,		/* destination: every page present, goodbye */
	LM_NET_ERROR,		/* either: what was wrong, then close */
	LM_NET_TYPE_MAX
};

/* HELLO flags. */
#define LM_NET_HELLO_RESUME 1u	/* resume session `session` after a break */
#define LM_NET_HELLO_FLAGS 1u

/* HELLO role: what this connection is for. */
enum lm_net_role {
	LM_NET_ROLE_CONTROL = 0,	/* handshake, push, pre-copy, control */
	LM_NET_ROLE_URGENT = 1,		/* one demand slot */
};

/* LIST_DONE phase. */
enum lm_net_phase {
	LM_NET_PHASE_PRECOPY = 0,	/* a pre-copy round ended */
	LM_NET_PHASE_PUSH = 1,		/* every page not yet had was pushed */
};

/* Page encodings in a PAGES payload. */
enum lm_net_enc {
	LM_NET_ENC_RAW = 0,	/* page_size bytes */
	LM_NET_ENC_ZERO = 1,	/* no bytes: the page is zero */
	LM_NET_ENC_LZ4 = 2,	/* an LZ4 block that expands to page_size */
};

/* What both sides agreed on: checked against every offset and count. */
struct lm_net_layout {
	uint64_t page_size;		/* 4 KiB or 2 MiB */
	uint64_t size;			/* bytes: sum of the region sizes */
	uint64_t nr_pages;
	unsigned nr_regions;
	uint64_t region_size[LM_NET_MAX_REGIONS];
};

struct lm_net_hdr {
	uint32_t magic;
	uint8_t version, type;
	uint16_t flags;
	uint32_t length;
	uint32_t seq;
};

struct lm_net_hello {
	uint64_t session;		/* chosen by the source, kept on resume */
	uint32_t role;			/* enum lm_net_role */
	uint32_t slot;			/* URGENT: which demand slot */
	struct lm_net_layout layout;
};

/* A decoded message. Pointers point into the payload buffer. */
struct lm_net_msg {
	struct lm_net_hdr h;
	union {
		struct lm_net_hello hello;
		struct {
			uint32_t nr_urgent;	/* urgent connections wanted */
			uint32_t resumed;	/* 1: HAVE frames follow */
			uint64_t have_pages;	/* pages the destination has */
		} welcome;
		struct {
			uint64_t off;
			uint32_t len;
		} req;
		struct {			/* DEMAND_REPLY, PUSH, PRECOPY */
			uint64_t off;
			uint32_t npages;
			const uint8_t *recs;	/* npages records */
			const uint8_t *data;	/* stored pages, in order */
			size_t data_len;
		} pages;
		struct {
			uint32_t phase;
			uint64_t pages;		/* pages sent in that phase */
		} done;
		struct {			/* DIRTY, HAVE */
			uint64_t first;
			uint64_t nbits;
			const uint8_t *bits;
		} bitmap;
		struct {
			uint32_t id;
			uint32_t len;
			const uint8_t *data;
		} vcpu;
		struct {
			uint32_t nr_vcpus;
		} switchover;
		struct {
			int32_t code;		/* positive errno */
			char text[LM_NET_MAX_MSG + 1];
		} error;
	} u;
};

const char *lm_net_type_name(unsigned type);

/* Layout from region sizes and a page size; -EINVAL with why filled. */
int lm_net_layout_init(struct lm_net_layout *l, uint64_t page_size,
		       const uint64_t *sizes, unsigned nr, char *why,
		       size_t why_len);
/* 0 if equal; else -EPROTO with why saying which field differs. */
int lm_net_layout_match(const struct lm_net_layout *mine,
			const struct lm_net_layout *theirs, char *why,
			size_t why_len);

/* Header: encode into 16 bytes / check 16 received bytes. */
void lm_net_hdr_encode(uint8_t *b, unsigned type, uint16_t flags,
		       uint32_t length, uint32_t seq);
int lm_net_check_header(const uint8_t *b, struct lm_net_hdr *h, char *why,
			size_t why_len);

/*
 * Decode a payload of the header's type. layout may be NULL only for
 * HELLO, ERROR and WELCOME (nothing negotiated yet). 0, or -EPROTO with
 * why naming the field and what was expected.
 */
int lm_net_decode(const struct lm_net_layout *layout,
		  const struct lm_net_hdr *h, const uint8_t *payload,
		  struct lm_net_msg *m, char *why, size_t why_len);

/*
 * Expand page i of a decoded PAGES message into dst (page_size bytes).
 * *cursor walks data across calls; start it at 0 for page 0. 0, or
 * -EPROTO (an LZ4 block that does not expand to exactly one page).
 */
int lm_net_page_expand(const struct lm_net_layout *l,
		       const struct lm_net_msg *m, unsigned i, size_t *cursor,
		       void *dst, char *why, size_t why_len);

/* Encoders: each writes a whole frame (header + payload) into buf and
 * returns its length. buf must hold the frame (see the size macros). */
size_t lm_net_enc_hello(uint8_t *buf, uint16_t flags,
			const struct lm_net_hello *hi);
size_t lm_net_enc_welcome(uint8_t *buf, uint32_t nr_urgent, bool resumed,
			  uint64_t have_pages);
size_t lm_net_enc_req(uint8_t *buf, uint32_t seq, uint64_t off,
		      uint32_t len);
size_t lm_net_enc_done(uint8_t *buf, uint32_t phase, uint64_t pages);
size_t lm_net_enc_bitmap(uint8_t *buf, unsigned type, uint64_t first,
			 uint64_t nbits, const uint64_t *bitmap);
size_t lm_net_enc_vcpu(uint8_t *buf, uint32_t id, const void *data,
		       uint32_t len);
size_t lm_net_enc_switchover(uint8_t *buf, uint32_t nr_vcpus);
size_t lm_net_enc_simple(uint8_t *buf, unsigned type);
size_t lm_net_enc_error(uint8_t *buf, int code, const char *text);

/*
 * Pages [off, off + npages * page_size) of mem, as one PAGES frame of the
 * given type: zero pages as a flag, LZ4 where it saves at least an eighth,
 * raw otherwise. buf holds LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD bytes.
 * hint makes LZ4 adaptive: when fewer than a quarter of a window of
 * attempts paid, the next pages go raw without trying, so incompressible
 * memory is not compressed in vain (NULL: never compress).
 */
struct lm_net_lz4_hint {
	unsigned tries, wins;	/* in the current window of attempts */
	unsigned skip;		/* pages left to send raw without trying */
};
size_t lm_net_enc_pages(uint8_t *buf, unsigned type, uint32_t seq,
			const struct lm_net_layout *l, const uint8_t *mem,
			uint64_t off, uint32_t npages,
			struct lm_net_lz4_hint *hint);

/* Little-endian helpers. */
static inline void lm_put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void lm_put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline void lm_put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t lm_get16(const uint8_t *b)
{
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t lm_get32(const uint8_t *b)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static inline uint64_t lm_get64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

#endif
