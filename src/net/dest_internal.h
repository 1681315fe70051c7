/*
 * dest_internal.h - the destination's state, shared by its three files:
 *
 *   dest.c     set-up, the accept thread (handshakes, resume), teardown;
 *   fetch.c    the page source: a fault's read() on the faulting thread;
 *   receive.c  the receiver thread: the control connection's frames
 *              (pushed and pre-copy pages, dirty bitmap, vCPU state).
 *
 * The link word says whether the source is connected: it counts
 * transitions, odd while up, even while down. A thread that sees the link
 * break bumps it (once per break, by compare-and-swap) and shuts the
 * sockets down so every other user notices at once; only the accept thread
 * closes and replaces descriptors, and only while the slot is not busy, so
 * no thread ever uses a descriptor number that was reused.
 */
#ifndef LAZYMEM_NET_DEST_INTERNAL_H
#define LAZYMEM_NET_DEST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "util/bits.h"
#include "net/net.h"
#include "net/conn.h"
#include "net/sock.h"

#define LM_NET_BUF (LM_NET_HDR_SIZE + LM_NET_MAX_PAYLOAD)
#define WHY_LEN 256
/* request round trips, in the core's log-linear buckets (4 per octave) */
#define REQ_HIST LM_LAT_BUCKETS

struct dest_slot {
	struct lm_net_conn *_Atomic conn;	/* NULL: none */
	_Atomic int busy;		/* a faulting thread is using it */
	uint32_t seq;
	uint8_t *buf;			/* LM_NET_BUF bytes, mmap'd */
	_Atomic uint64_t blocked_ns;	/* time its threads spent in demand */
	char why[WHY_LEN];		/* last failure, read by the dest */
};

struct dest_stats_live {
	_Atomic uint64_t demand_requests, demand_pages, push_pages;
	_Atomic uint64_t push_skipped, precopy_pages, precopy_hits;
	_Atomic uint64_t dirty_pages, bytes_in, sessions, refused;
	_Atomic uint64_t link_downs, req_max_ns, push_failed;
	_Atomic uint64_t req_hist[REQ_HIST];
};

/*
 * One region of the layout: its own page source (offsets relative to the
 * region) and what its pages go into: a lazymem region filled lazily, a
 * store (pre-copy, or the whole of an eager region such as a VMM's
 * reserved memory), or both (the region's alias as the store).
 */
struct dest_region {
	struct lm_source src;		/* first: the ops cast back */
	struct lm_net_dest *d;
	unsigned idx;
	uint64_t base, size;		/* bytes, in the image */
	struct lm_region *r;		/* set before the receiver starts */
	uint8_t *store;
};

/*
 * A thread installing pushed pages (the receiver, or an installer): its
 * run buffer, where pages of a run that are not raw in the frame are
 * expanded before the run is installed with one call.
 */
struct rx_ctx {
	struct lm_net_dest *d;
	uint8_t *run;			/* run_pages pages */
	unsigned run_pages;
	char why[WHY_LEN];
};

/* Pages in a run buffer: a run of lm_region_install_run, at most a
 * frame's worth (two pages of 2 MiB). */
static inline unsigned lm__rx_run_pages(uint64_t page_size)
{
	return (unsigned)LM_MIN((uint64_t)LM_INSTALL_RUN_MAX,
				LM_NET_MAX_RUN_BYTES / page_size);
}

/* An installer thread and its job: pages [first, end) of msg. */
struct installer {
	struct lm_net_dest *d;
	pthread_t thread;
	struct rx_ctx ctx;
	const struct lm_net_msg *msg;
	unsigned first, end;
	int result;
	_Atomic uint32_t job;		/* futex: 1 posted, 0 done */
};

struct lm_net_dest {
	struct dest_region reg[LM_NET_MAX_REGIONS];
	struct lm_net_layout layout;
	struct lm_net_addr addr;
	unsigned nr_urgent;
	bool hold;
	int hold_timeout_ms, req_timeout_ms;
	atomic_bool stopped;		/* lm_net_dest_stop ran */
	_Atomic uint64_t *valid;	/* store pages valid (not dirtied) */
	_Atomic uint64_t *have;		/* pages read successfully */

	int lfd, evfd;			/* listening socket, stop eventfd */
	pthread_t accept_thread, rx_thread;
	bool accept_running, rx_running;
	_Atomic bool stop;

	/* session: the handshake threads' state, under hs_lock */
	pthread_mutex_t hs_lock;
	_Atomic int hs_active;		/* handshake threads running */
	struct dest_pending *pend;	/* connections of a session joining */
	bool have_session;
	uint64_t session;
	_Atomic uint32_t link;		/* odd: up. futex word */
	_Atomic uint64_t down_since_ns;
	struct lm_net_conn *_Atomic ctl;
	struct lm_net_conn *rx_conn;	/* the control conn the receiver uses */
	struct lm_net_tls *tls;		/* NULL: plain TCP */
	/* Closed connections, freed at destroy: a link_down racing with
	 * their replacement may still shut one down. */
	struct lm_net_conn *_Atomic retired;
	struct dest_slot slot[LM_NET_MAX_URGENT];
	pthread_mutex_t send_lock;	/* ordinary threads writing ctl */

	/* receiver */
	uint8_t *rx_buf;
	char rx_why[WHY_LEN];
	struct rx_ctx *rx_ctx;		/* the receiver's own */
	/* Installers: the pages of a PUSH frame are installed by the
	 * receiver and nr_inst - 1 more threads, each taking a share. */
	unsigned nr_inst;		/* installing threads, receiver included */
	unsigned inst_running;		/* installer threads started */
	struct installer *inst;
	_Atomic uint32_t switched;	/* futex word: SWITCHOVER seen */
	_Atomic bool push_done;
	_Atomic bool failed;		/* session can never complete */
	_Atomic bool finished;		/* DONE sent: the end is normal */
	uint8_t *vcpu[4096];
	uint32_t vcpu_len[4096];

	struct dest_stats_live st;
	pthread_mutex_t err_lock;
	char last_error[WHY_LEN];
};

/* dest.c */
void lm__dest_set_error(struct lm_net_dest *d, const char *msg);
/* The link of generation v broke: bump it once, shut sockets down. */
void lm__dest_link_down(struct lm_net_dest *d, uint32_t v, const char *why);
/* Wait for the link to be up; v: its value then. 0, -ETIMEDOUT, -EIO. */
int lm__dest_wait_link(struct lm_net_dest *d, uint64_t deadline,
		       uint32_t *v);

/* fetch.c */
extern const struct lm_source_ops lm__dest_source_ops;
static inline bool lm__bit(_Atomic uint64_t *bm, uint64_t i)
{
	return atomic_load_explicit(&bm[i / 64], memory_order_acquire) >>
		       (i % 64) & 1;
}
static inline void lm__bit_set(_Atomic uint64_t *bm, uint64_t i)
{
	atomic_fetch_or_explicit(&bm[i / 64], 1ull << (i % 64),
				 memory_order_release);
}
static inline void lm__bit_clear(_Atomic uint64_t *bm, uint64_t i)
{
	atomic_fetch_and_explicit(&bm[i / 64], ~(1ull << (i % 64)),
				  memory_order_release);
}

/* The region holding image offset off (which the decoder checked). */
static inline struct dest_region *lm__dest_region_of(struct lm_net_dest *d,
						     uint64_t off)
{
	unsigned i = 0;

	while (i + 1 < d->layout.nr_regions && off >= d->reg[i + 1].base)
		i++;
	return &d->reg[i];
}

/* receive.c */
#define HELLO_TIMEOUT_MS 2000

/* A session being set up: its connections until every one said HELLO. */
struct dest_pending {
	struct lm_net_conn *ctl;	/* control connection or NULL */
	struct lm_net_conn *urgent[LM_NET_MAX_URGENT];
	unsigned joined;
};

/* handshake.c: the accept thread (arg: the destination), and the drop of
 * a session still being set up. */
void *lm__dest_accept_main(void *arg);
void lm__dest_pending_drop(struct dest_pending *p);
void *lm__dest_rx_main(void *arg);
void *lm__dest_installer_main(void *arg);

#endif
