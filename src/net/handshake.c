/*
 * handshake.c - the destination's accept thread, which runs every
 * handshake (first contact and resume); dest.c sets the destination up.
 *
 * A session starts when the source's control connection says HELLO with a
 * layout equal to ours; we answer WELCOME with how many urgent connections
 * we want (one per demand slot) and, on a resume, HAVE bitmaps of every
 * page we already hold, so the source pushes only the rest. Once every
 * urgent connection has said HELLO too, the link goes up. A connection
 * whose HELLO is wrong in any way gets an ERROR naming the field and is
 * closed; the accept thread carries on, so a hostile peer cannot take the
 * destination down.
 *
 * With credentials, each accepted connection is authenticated (TLS,
 * conn.c) on its handshake thread before we read a byte of the protocol:
 * an unauthenticated peer gets no frame read, no allocation sized by
 * anything it says, and one line in the log naming it and why.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/futex.h"
#include "net/dest_internal.h"
#include "net/why.h"

#define MAX_HANDSHAKES 128	/* connections saying HELLO at once */

/* Count and log a refusal; the connection is closed already. */
static int refused(struct lm_net_dest *d, const char *peer, const char *why)
{
	char msg[2 * WHY_LEN + 128];

	atomic_fetch_add(&d->st.refused, 1);
	snprintf(msg, sizeof(msg), "refused %s: %s", peer, why);
	lm__dest_set_error(d, msg);
	fprintf(stderr, "lazymem: %s\n", msg);
	return 0;
}

static int refuse(struct lm_net_dest *d, struct lm_net_conn *c,
		  const char *peer, const char *why)
{
	refused(d, peer, why);	/* logged before the peer sees the close */
	lm_net_send_error(c, EPROTO, why);
	lm_net_conn_close(c);
	return 0;
}

/* Resume: tell the source every page we hold (pushed, fetched, or valid
 * in the pre-copy store), in frames of at most LM_NET_MAX_BITMAP_BITS. */
static int send_have(struct lm_net_dest *d, struct lm_net_conn *c,
		     uint64_t *count)
{
	uint64_t n = d->layout.nr_pages, words = (n + 63) / 64;
	uint64_t *bm = calloc(words, 8);
	uint8_t *buf = malloc(LM_NET_HDR_SIZE + LM_NET_BITMAP_FIXED +
			      LM_NET_MAX_BITMAP_BITS / 8);
	int err = 0;

	*count = 0;
	if (!bm || !buf) {
		free(bm);
		free(buf);
		return -ENOMEM;
	}
	for (uint64_t w = 0; w < words; w++) {
		bm[w] = atomic_load(&d->have[w]) |
			atomic_load(&d->valid[w]);
		*count += (uint64_t)__builtin_popcountll(bm[w]);
	}
	for (uint64_t first = 0; first < n && !err;
	     first += LM_NET_MAX_BITMAP_BITS) {
		uint64_t nb = LM_MIN(n - first, LM_NET_MAX_BITMAP_BITS);
		size_t len = lm_net_enc_bitmap(buf, LM_NET_HAVE, first, nb, bm);

		err = lm_net_send_all(c, buf, len,
				      lm_net_deadline_ms(HELLO_TIMEOUT_MS));
	}
	free(bm);
	free(buf);
	return err;
}

void lm__dest_pending_drop(struct dest_pending *p)
{
	lm_net_conn_close(p->ctl);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++) {
		lm_net_conn_close(p->urgent[i]);
		p->urgent[i] = NULL;
	}
	p->ctl = NULL;
	p->joined = 0;
}

/* Every connection of the new session is in: swap them in, link up. */
static void go_up(struct lm_net_dest *d, struct dest_pending *p)
{
	for (unsigned i = 0; i < d->nr_urgent; i++) {
		struct dest_slot *s = &d->slot[i];
		struct lm_net_conn *old;
		int zero = 0;

		/* A faulting thread using the old descriptor fails fast
		 * (it was shut down) and lets go of the slot. */
		while (!atomic_compare_exchange_strong(&s->busy, &zero, 1)) {
			zero = 0;
			usleep(100);
		}
		old = atomic_exchange(&s->conn, p->urgent[i]);
		lm_net_conn_retire(old, &d->retired);
		p->urgent[i] = NULL;
		atomic_store(&s->busy, 0);
	}
	/* The old control descriptor is the receiver's to close: it may be
	 * installing a page that a held faulting thread is fetching, and must
	 * not be waited for here (that thread waits for us). */
	atomic_store(&d->ctl, p->ctl);
	p->ctl = NULL;
	p->joined = 0;
	atomic_fetch_add(&d->st.sessions, 1);
	atomic_fetch_add(&d->link, 1);		/* even -> odd: up */
	lm_futex_wake_all(&d->link);
	/* A DONE sent into a connection the break had already cut is
	 * lost, and the source would serve on forever: say it again. */
	if (atomic_load(&d->finished))
		lm_net_dest_finish(d);
}

static int session_hello(struct lm_net_dest *d, struct lm_net_conn *c,
			 const char *peer, const struct lm_net_hello *hi);

/* One connection's handshake, on its own thread: a peer that says nothing
 * (or says it slowly) delays nobody else. The session state is touched
 * under hs_lock only. */
static int handshake(struct lm_net_dest *d, int fd)
{
	uint8_t buf[LM_NET_HDR_SIZE + 32 + 8 * LM_NET_MAX_REGIONS];
	char why[WHY_LEN], peer[96];
	struct lm_net_conn *c;
	struct lm_net_msg m;
	int err;

	lm_net_peer_name(fd, peer, sizeof(peer));
	/* Who it is first (TLS); the fd is closed on failure. */
	err = lm_net_conn_accept(d->tls, fd, HELLO_TIMEOUT_MS, &c, why,
				 sizeof(why));
	if (err)
		return refused(d, peer, why);
	err = lm_net_recv_frame(c, buf, sizeof(buf), NULL, &m,
				lm_net_deadline_ms(HELLO_TIMEOUT_MS), why,
				sizeof(why));
	if (err == -ETIMEDOUT)
		snprintf(why, sizeof(why), "no HELLO within %d ms",
			 HELLO_TIMEOUT_MS);
	else if (err == -ECONNRESET)
		snprintf(why, sizeof(why), "closed before its HELLO");
	else if (err == -EPROTO && !d->tls && buf[0] == 0x16)
		snprintf(why, sizeof(why), "spoke TLS to a plain listener: "
			 "give both sides the same TLS options");
	else if (err && err != -EPROTO)
		snprintf(why, sizeof(why), "reading HELLO: %s",
			 strerror(-err));
	if (err)
		return refuse(d, c, peer, why);
	if (m.h.type != LM_NET_HELLO)
		return refuse(d, c, peer, m.h.type == LM_NET_ERROR
						   ? m.u.error.text
						   : "expected HELLO first");
	pthread_mutex_lock(&d->hs_lock);
	err = session_hello(d, c, peer, &m.u.hello);
	pthread_mutex_unlock(&d->hs_lock);
	return err;
}

static int session_hello(struct lm_net_dest *d, struct lm_net_conn *c,
			 const char *peer, const struct lm_net_hello *hi)
{
	uint8_t buf[LM_NET_HDR_SIZE + 16];
	struct dest_pending *p = d->pend;
	char why[WHY_LEN];
	int err;

	if (lm_net_layout_match(&d->layout, &hi->layout, why, sizeof(why)))
		return refuse(d, c, peer, why);
	if (d->have_session && hi->session != d->session) {
		snprintf(why, sizeof(why), "session %016llx is not the one in "
			 "progress (%016llx): a different source cannot "
			 "resume it", (unsigned long long)hi->session,
			 (unsigned long long)d->session);
		return refuse(d, c, peer, why);
	}
	if (hi->role == LM_NET_ROLE_URGENT) {
		if (!p->ctl || hi->session != d->session ||
		    hi->slot >= d->nr_urgent) {
			snprintf(why, sizeof(why), "urgent connection for slot "
				 "%u without a control connection, or beyond "
				 "the %u slots offered", hi->slot,
				 d->nr_urgent);
			return refuse(d, c, peer, why);
		}
		if (p->urgent[hi->slot])
			lm_net_conn_close(p->urgent[hi->slot]);
		else
			p->joined++;
		p->urgent[hi->slot] = c;
		if (p->joined == d->nr_urgent)
			go_up(d, p);
		return 0;
	}
	/* A control connection: a new session, or the source resuming. */
	bool resumed = d->have_session;
	uint64_t have = 0;
	size_t n;

	if (atomic_load(&d->link) & 1)		/* it saw the break first */
		lm__dest_link_down(d, atomic_load(&d->link),
				   "source reconnected");
	lm__dest_pending_drop(p);
	d->have_session = true;
	d->session = hi->session;
	if (resumed)
		for (uint64_t w = 0; w < (d->layout.nr_pages + 63) / 64; w++)
			have += (uint64_t)__builtin_popcountll(
				atomic_load(&d->have[w]) |
				atomic_load(&d->valid[w]));
	n = lm_net_enc_welcome(buf, d->nr_urgent, resumed, have);
	err = lm_net_send_all(c, buf, n, lm_net_deadline_ms(HELLO_TIMEOUT_MS));
	if (!err && resumed)
		err = send_have(d, c, &have);
	if (err) {
		lm_net_conn_close(c);
		snprintf(why, sizeof(why), "handshake with %s: %s", peer,
			 strerror(-err));
		lm__dest_set_error(d, why);
		return 0;
	}
	p->ctl = c;
	return 0;
}

struct hs_arg {
	struct lm_net_dest *d;
	int fd;
};

static void *hs_main(void *arg)
{
	struct hs_arg *a = arg;

	handshake(a->d, a->fd);
	atomic_fetch_sub(&a->d->hs_active, 1);
	free(a);
	return NULL;
}

void *lm__dest_accept_main(void *arg)
{
	struct lm_net_dest *d = arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!atomic_load(&d->stop)) {
		struct pollfd pf[2] = {
			{ .fd = d->lfd, .events = POLLIN },
			{ .fd = d->evfd, .events = POLLIN },
		};
		int fd;

		if (poll(pf, 2, -1) < 0 || pf[1].revents)
			continue;
		fd = lm_net_accept(d->lfd);
		if (fd < 0)
			continue;
		if (atomic_load(&d->hs_active) >= MAX_HANDSHAKES) {
			char peer[96];

			lm_net_peer_name(fd, peer, sizeof(peer));
			close(fd);
			refused(d, peer, "too many handshakes in progress");
			continue;
		}
		struct hs_arg *a = malloc(sizeof(*a));

		atomic_fetch_add(&d->hs_active, 1);
		if (a) {
			a->d = d;
			a->fd = fd;
		}
		if (!a || pthread_create(&(pthread_t){ 0 }, &attr, hs_main, a)) {
			free(a);
			handshake(d, fd);
			atomic_fetch_sub(&d->hs_active, 1);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* A thread that installs pushed pages: its run buffer. False: no memory. */
