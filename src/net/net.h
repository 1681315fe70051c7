/*
 * net.h - the migration transport: a page server on the source, a network
 * page source on the destination, and the delaying proxy for benchmarks.
 *
 * Roles follow live migration: the destination listens, the source dials
 * it (and dials again to resume after a break). The source opens one
 * control connection (handshake, pre-copy, background push, switch-over)
 * and as many urgent connections as the destination asks for: one per
 * faulting thread slot, so a faulting thread sends its demand request and
 * reads the reply on a connection nobody else uses, with no hand-off to
 * another thread. See docs/migration.md.
 *
 * This header is internal to the tree (the command, tests, benchmarks and
 * the VMM use it); nothing here is exported from liblazymem.
 */
#ifndef LAZYMEM_NET_NET_H
#define LAZYMEM_NET_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>
#include "net/proto.h"
#include "net/tls.h"

/* ---- destination ---- */

struct lm_net_dest;

struct lm_net_dest_config {
	const char *listen;		/* "host:port"; port 0 picks one */
	const struct lm_net_layout *layout;
	unsigned nr_urgent;		/* demand slots (0: 1); one per vCPU */
	/*
	 * Recovery: while the source is away, faulting threads are held
	 * (not failed) until it reconnects, for up to hold_timeout_ms (-1:
	 * forever). Without hold, a demand read fails with -EIO (peer gone)
	 * or -ETIMEDOUT once it has waited req_timeout_ms.
	 */
	bool hold;
	int hold_timeout_ms;
	int req_timeout_ms;		/* 0: 5000 */
	/* Threads installing pushed pages, the receiver included (0: 1;
	 * at most 16). On 2 CPUs shared with the source, 2 did not beat 1
	 * (850 vs 900 MiB/s, `page-fetch --installers`); with CPUs to
	 * spare, more share the per-page install cost. */
	unsigned installers;
	/* Where PRECOPY pages of region 0 land, e.g. the region's alias;
	 * NULL refuses pre-copy. Pages valid here are served to faults
	 * without any transfer. */
	uint8_t *precopy_store;
	/* Credentials (tls.h), borrowed; NULL: plain TCP, refused on any
	 * address but loopback unless insecure. */
	struct lm_net_tls *tls;
	bool insecure;
};

struct lm_net_dest_stats {
	uint64_t demand_requests;	/* DEMAND_REQ sent */
	uint64_t demand_pages;		/* pages received by demand */
	uint64_t push_pages;		/* pushed pages installed */
	uint64_t push_skipped;		/* pushed pages already present */
	uint64_t push_failed;		/* pushed onto a page failed earlier */
	uint64_t precopy_pages;		/* pre-copy pages stored */
	uint64_t precopy_hits;		/* faults served from the store */
	uint64_t dirty_pages;		/* store pages invalidated */
	uint64_t bytes_in;		/* payload bytes received */
	uint64_t sessions;		/* handshakes completed (1 + resumes) */
	uint64_t refused;		/* connections refused */
	uint64_t link_downs;		/* breaks seen */
	uint64_t req_p50_ns, req_p99_ns, req_max_ns;	/* request round trip */
	/* Time faulting threads spent blocked in demand, per urgent slot:
	 * per vCPU when each vCPU owns a slot. */
	uint64_t slot_blocked_ns[LM_NET_MAX_URGENT];
	unsigned nr_slots;
	bool push_done, switched_over;
};

/* Listen and start accepting. -errno with util_last_error() set. */
int lm_net_dest_create(const struct lm_net_dest_config *c,
		       struct lm_net_dest **out);
/* The page source for (the first region of) the layout; owned by the dest,
 * do not destroy. Offsets are relative to that region. */
struct lm_source *lm_net_dest_source(struct lm_net_dest *d);
/* The same for region i of a layout of several (memslots). */
struct lm_source *lm_net_dest_region_source(struct lm_net_dest *d,
					    unsigned i);
/* The address actually listened on (port filled in). */
const char *lm_net_dest_address(const struct lm_net_dest *d);
/* Set the pre-copy store after create (the region's alias, once the
 * region exists over our source); before attach only. */
int lm_net_dest_set_store(struct lm_net_dest *d, uint8_t *store);
/* Start installing pushed pages into r (created over the source above). */
int lm_net_dest_attach(struct lm_net_dest *d, struct lm_region *r);
/*
 * Several regions: before lm_net_dest_start, give each region of the
 * layout a store (where its pre-copy pages land) and/or a lazymem region
 * (filled lazily). A region with a store and no lazymem region is eager:
 * every page pushed or pre-copied goes to the store (a VMM's reserved
 * memory); lm_net_dest_region_complete says when all of it is there.
 */
int lm_net_dest_set_region_store(struct lm_net_dest *d, unsigned i,
				 uint8_t *store);
int lm_net_dest_attach_region(struct lm_net_dest *d, unsigned i,
			      struct lm_region *r);
int lm_net_dest_start(struct lm_net_dest *d);
bool lm_net_dest_region_complete(struct lm_net_dest *d, unsigned i);
/*
 * After the switch-over: map every page of region i that is valid in its
 * pre-copy store and not present yet, runs at a time, when the store is
 * the region's alias (the page cache): no transfer, no copy, only
 * UFFDIO_CONTINUE, so the guest's first touch of a pre-copied page costs
 * no fault. Returns when done or *stop is set: 0, or -errno (-EINVAL
 * before the switch-over or without such a store). *installed counts.
 */
int lm_net_dest_install_stored(struct lm_net_dest *d, unsigned i,
			       const atomic_bool *stop, uint64_t *installed);
/* Wait for the session to be up (0), or -ETIMEDOUT. */
int lm_net_dest_wait_up(struct lm_net_dest *d, int timeout_ms);
/* Wait for SWITCHOVER (0), -ETIMEDOUT, or -EPIPE if the session failed. */
int lm_net_dest_wait_switchover(struct lm_net_dest *d, int timeout_ms);
/* A vCPU state blob received before switch-over; NULL if none. */
const uint8_t *lm_net_dest_vcpu(struct lm_net_dest *d, unsigned id,
				uint32_t *len);
/* The destination gives up (a VMM that refuses what it received): tell
 * the source why, in an ERROR frame (at most 256 bytes of why), so that
 * it does not only see a closed connection. Best effort. */
void lm_net_dest_abort(struct lm_net_dest *d, int err, const char *why);
/* Tell the source every page is here (DONE): it may exit. */
int lm_net_dest_finish(struct lm_net_dest *d);
void lm_net_dest_stats(struct lm_net_dest *d, struct lm_net_dest_stats *s);
/* The last refusal or break, as one line ("" if none): the calling
 * thread's copy, valid until its next call. */
const char *lm_net_dest_last_error(struct lm_net_dest *d);
/* Stop every thread of the destination (the statistics are final from
 * then on); destroy does it too. */
void lm_net_dest_stop(struct lm_net_dest *d);
void lm_net_dest_destroy(struct lm_net_dest *d);

/* ---- source ---- */

struct lm_net_server;

struct lm_net_server_config {
	const void *mem;		/* the memory image, layout->size bytes */
	const struct lm_net_layout *layout;
	const char *to;			/* the destination's address */
	bool push;			/* stream pages in the background */
	bool compress;			/* LZ4 where it pays */
	bool resume;			/* after a break, dial again and resume */
	int resume_timeout_ms;		/* give up resuming after this (-1) */
	int io_timeout_ms;		/* handshake and send timeout (0: 5000) */
	struct lm_net_tls *tls;		/* as lm_net_dest_config's */
	bool insecure;
};

struct lm_net_server_stats {
	uint64_t demand_requests, demand_pages;
	uint64_t push_pages, precopy_pages;
	uint64_t bytes_out;		/* payload bytes of page frames */
	uint64_t raw_pages, zero_pages, lz4_pages;
	uint64_t resumes;
	uint64_t push_ns;		/* time from first to last push */
};

int lm_net_server_create(const struct lm_net_server_config *c,
			 struct lm_net_server **out);
/* Dial and handshake (control + urgent connections). */
int lm_net_server_connect(struct lm_net_server *s);
/* One pre-copy round: the pages set in bitmap (NULL: all), then
 * LIST_DONE. */
int lm_net_server_precopy(struct lm_net_server *s, const uint64_t *bitmap);
/* Switch-over: the pages dirtied since sent (NULL: none), vCPU blobs,
 * then SWITCHOVER. Those pages and every page never sent will be served
 * by demand and push. */
int lm_net_server_switchover(struct lm_net_server *s, const uint64_t *dirty,
			     unsigned nr_vcpus, const void *const *blobs,
			     const uint32_t *blob_len);
/* Post-copy: serve demand and push until the destination says DONE (0).
 * A break is resumed when configured; else -errno with a message. */
int lm_net_server_serve(struct lm_net_server *s);
/* Test aid: shut every connection down now, as a network cut would. */
void lm_net_server_cut(struct lm_net_server *s);
/* The credentials of the next dial (a resume re-dials with them): to
 * rotate them, or for a test to resume with wrong ones. */
void lm_net_server_set_tls(struct lm_net_server *s, struct lm_net_tls *t);
void lm_net_server_stats(struct lm_net_server *s,
			 struct lm_net_server_stats *st);
void lm_net_server_destroy(struct lm_net_server *s);

/* ---- delaying proxy ---- */

struct lm_net_proxy;

/* Forward every connection to listen to connect, adding rtt_ns to each
 * round trip (on the way back). Threads run until destroyed. */
int lm_net_proxy_create(const char *listen, const char *connect,
			uint64_t rtt_ns, struct lm_net_proxy **out);
const char *lm_net_proxy_address(const struct lm_net_proxy *p);
/* Test aid: cut every connection open now (new ones still work). */
void lm_net_proxy_cut(struct lm_net_proxy *p);
uint64_t lm_net_proxy_bytes(const struct lm_net_proxy *p);
void lm_net_proxy_destroy(struct lm_net_proxy *p);

/* ---- helpers (util.c) ---- */

/* "200us", "1ms", "0.5ms", "2s", "150" (us) -> ns. -EINVAL on junk. */
int lm_net_parse_duration(const char *s, uint64_t *ns);
/* The deterministic image served by `page-server --pattern` and checked by
 * `page-fetch --verify`: per page, distinct, with zero and compressible
 * pages among them. check returns the pages that differ. */
void lm_net_pattern_fill(void *buf, uint64_t size, uint64_t page_size,
			 uint64_t seed);
uint64_t lm_net_pattern_check(const void *buf, uint64_t size,
			      uint64_t page_size, uint64_t seed,
			      uint64_t *first_bad);

#endif
