/*
 * server.c - the source side: the page server that migrates a memory
 * image to a destination. This file sets it up, connects, runs the
 * pre-copy rounds and the switch-over; serve.c is post-copy.
 *
 * It dials the destination: a control connection first (HELLO, WELCOME),
 * then the urgent connections the destination asked for. Pre-copy rounds
 * and the switch-over go over the control connection from the caller's
 * thread. Post-copy (lm_net_server_serve) runs one thread per urgent
 * connection, each answering its DEMAND_REQs, and a push thread streaming
 * every page the destination does not have yet. Demand goes first: the push
 * thread yields while any demand request is being answered, and sends in
 * frames of BATCH_BYTES so a demand reply never queues behind much of it
 * in our own process.
 *
 * The `sent` bitmap holds the pages the destination has or was sent. On a
 * break it may include pages lost in flight, so a resume replaces it with
 * the destination's own HAVE bitmap: nothing is skipped that did not
 * arrive, and nothing that arrived is sent again.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/clock.h"
#include "util/error.h"
#include "net/server_internal.h"

void server__set_why(struct lm_net_server *s, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->why_lock);
	if (!s->why[0]) {
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&s->why_lock);
}

void server__shut_all(struct lm_net_server *s)
{
	lm_net_conn_shutdown(atomic_load(&s->ctl), SHUT_RDWR);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++)
		lm_net_conn_shutdown(atomic_load(&s->uc[i]), SHUT_RDWR);
}

/*
 * Stop this session's threads: the urgent sockets are shut down (their
 * threads sit in recv), the control socket for writing only (the push
 * thread may sit in send), so that a DONE the destination sent just before
 * closing can still be read: otherwise a finished migration would race
 * with the end of its own connections and look like a break.
 */
void server__broke(struct lm_net_server *s)
{
	atomic_store(&s->broken, true);
	lm_net_conn_shutdown(atomic_load(&s->ctl), SHUT_WR);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++)
		lm_net_conn_shutdown(atomic_load(&s->uc[i]), SHUT_RDWR);
}

/* The destination gave up and said why: that is the reason, whichever
 * broken connection another thread noticed first. */
void server__peer_error(struct lm_net_server *s, const char *text)
{
	pthread_mutex_lock(&s->why_lock);
	snprintf(s->why, sizeof(s->why), "the destination reports: %.200s",
		 text);
	pthread_mutex_unlock(&s->why_lock);
}

/*
 * After a break: was a DONE already waiting on the control connection (the
 * destination finished just before closing)? An ERROR there is the
 * destination giving up, and its reason is the real one: it replaces
 * whatever broken connection was noticed first.
 */
bool server__done_pending(struct lm_net_server *s, struct lm_net_conn *c)
{
	char why[WHY_LEN];

	for (;;) {
		struct lm_net_msg m;
		int err = lm_net_recv_frame(c, s->rx, LM_NET_HDR_SIZE + 512,
					    &s->layout, &m,
					    lm_net_deadline_ms(200), why,
					    sizeof(why));

		if (err)
			return false;
		if (m.h.type == LM_NET_DONE)
			return true;
		if (m.h.type == LM_NET_ERROR) {
			server__peer_error(s, m.u.error.text);
			return false;
		}
	}
}

void server__close_all(struct lm_net_server *s)
{
	lm_net_conn_retire(atomic_exchange(&s->ctl, NULL), &s->retired);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++)
		lm_net_conn_retire(atomic_exchange(&s->uc[i], NULL),
				   &s->retired);
}

void server__count_encodings(struct lm_net_server *s, const uint8_t *frame)
{
	const uint8_t *p = frame + LM_NET_HDR_SIZE;
	uint32_t n = lm_get32(p + 8);

	for (uint32_t i = 0; i < n; i++) {
		uint8_t e = p[LM_NET_PAGES_FIXED + i * LM_NET_PAGE_REC];

		atomic_fetch_add_explicit(e == LM_NET_ENC_ZERO ? &s->st.zero
					  : e == LM_NET_ENC_LZ4 ? &s->st.lz4
								: &s->st.raw,
					  1, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&s->st.bytes_out, lm_get32(frame + 8),
				  memory_order_relaxed);
}

int lm_net_server_create(const struct lm_net_server_config *c,
			 struct lm_net_server **out)
{
	struct lm_net_server *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return util_error(-ENOMEM, "page server: out of memory");
	s->layout = *c->layout;
	s->mem = c->mem;
	s->push = c->push;
	s->compress = c->compress;
	s->resume = c->resume;
	s->resume_timeout_ms = c->resume_timeout_ms;
	s->io_timeout_ms = c->io_timeout_ms > 0 ? c->io_timeout_ms : 5000;
	atomic_store(&s->tls, c->tls);
	pthread_mutex_init(&s->why_lock, NULL);
	if (getrandom(&s->session, sizeof(s->session), 0) !=
	    sizeof(s->session))
		s->session = lm_now_ns() ^ ((uint64_t)getpid() << 32);
	s->sent = calloc((s->layout.nr_pages + 63) / 64, 8);
	s->tx = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s->rx = malloc(LM_NET_HDR_SIZE + LM_NET_BITMAP_FIXED +
		       LM_NET_MAX_BITMAP_BITS / 8 + LM_NET_MAX_BLOB);
	if (!s->sent || s->tx == MAP_FAILED || !s->rx) {
		if (s->tx == MAP_FAILED)
			s->tx = NULL;
		lm_net_server_destroy(s);
		return util_error(-ENOMEM, "page server: out of memory");
	}
	err = lm_net_addr_parse(c->to, &s->to);
	if (!err && !c->tls && !c->insecure && !lm_net_addr_loopback(&s->to))
		err = util_error(-EPERM, "refusing plain TCP to %s (not "
				 "loopback): give --tls-cert/--tls-key/"
				 "--tls-ca or --psk-file, or --insecure",
				 s->to.text);
	if (err) {
		lm_net_server_destroy(s);
		return err;
	}
	*out = s;
	return 0;
}

int server__send_frame(struct lm_net_server *s, struct lm_net_conn *c,
		       const uint8_t *buf, size_t len)
{
	return lm_net_send_all(c, buf, len,
			       lm_net_deadline_ms(s->io_timeout_ms));
}

/* Receive the HAVE bitmaps that follow a resumed WELCOME. */
static int recv_have(struct lm_net_server *s, struct lm_net_conn *c)
{
	uint64_t covered = 0, words = (s->layout.nr_pages + 63) / 64;
	size_t cap = LM_NET_HDR_SIZE + LM_NET_BITMAP_FIXED +
		     LM_NET_MAX_BITMAP_BITS / 8;
	char why[WHY_LEN];

	for (uint64_t w = 0; w < words; w++)
		atomic_store(&s->sent[w], 0);
	while (covered < s->layout.nr_pages) {
		struct lm_net_msg m;
		int err = lm_net_recv_frame(c, s->rx, cap, &s->layout, &m,
					    lm_net_deadline_ms(s->io_timeout_ms),
					    why, sizeof(why));

		if (err)
			return util_error(err, "resuming with %s: %s", s->to.text,
					err == -EPROTO ? why : strerror(-err));
		if (m.h.type != LM_NET_HAVE || m.u.bitmap.first != covered)
			return util_error(-EPROTO, "resuming with %s: expected "
					"HAVE from page %llu, got %s",
					s->to.text,
					(unsigned long long)covered,
					lm_net_type_name(m.h.type));
		for (uint64_t i = 0; i < m.u.bitmap.nbits; i++)
			if (m.u.bitmap.bits[i / 8] >> (i % 8) & 1)
				server__bit_set(s->sent, m.u.bitmap.first + i);
		covered += m.u.bitmap.nbits;
	}
	return 0;
}

int server__handshake(struct lm_net_server *s, bool resume)
{
	struct lm_net_hello hi = { .session = s->session,
				   .role = LM_NET_ROLE_CONTROL,
				   .layout = s->layout };
	uint8_t buf[LM_NET_HDR_SIZE + 32 + 8 * LM_NET_MAX_REGIONS];
	struct lm_net_msg m;
	char why[WHY_LEN];
	struct lm_net_conn *c;
	int err;

	/* TLS first: the destination reads our HELLO only once it knows
	 * who we are, on a resume as on the first contact. */
	err = lm_net_conn_dial(atomic_load(&s->tls), &s->to, s->io_timeout_ms, &c);
	if (err)
		return err;
	atomic_store(&s->ctl, c);
	err = server__send_frame(s, c, buf, lm_net_enc_hello(
		buf, resume ? LM_NET_HELLO_RESUME : 0, &hi));
	if (!err)
		err = lm_net_recv_frame(c, s->rx, LM_NET_HDR_SIZE + 512,
					&s->layout, &m,
					lm_net_deadline_ms(s->io_timeout_ms),
					why, sizeof(why));
	if (err)
		return util_error(err, "handshake with %s: %s", s->to.text,
				err == -EPROTO ? why
				: lm_net_conn_why(c, err, why, sizeof(why)));
	if (m.h.type == LM_NET_ERROR)
		return util_error(-ECONNREFUSED, "%s refused us: %s", s->to.text,
				m.u.error.text);
	if (m.h.type != LM_NET_WELCOME)
		return util_error(-EPROTO, "handshake with %s: expected WELCOME, "
				"got %s", s->to.text,
				lm_net_type_name(m.h.type));
	if (resume && !m.u.welcome.resumed)
		return util_error(-ESTALE, "%s no longer knows session %016llx: "
				"it cannot be resumed", s->to.text,
				(unsigned long long)s->session);
	if (m.u.welcome.resumed && (err = recv_have(s, c)))
		return err;
	s->nr_urgent = m.u.welcome.nr_urgent;
	for (unsigned i = 0; i < s->nr_urgent; i++) {
		hi.role = LM_NET_ROLE_URGENT;
		hi.slot = i;
		err = lm_net_conn_dial(atomic_load(&s->tls), &s->to, s->io_timeout_ms, &c);
		if (err)
			return err;
		atomic_store(&s->uc[i], c);
		err = server__send_frame(s, c, buf, lm_net_enc_hello(buf, 0, &hi));
		if (err)
			return util_error(err, "urgent connection %u to %s: %s",
					i, s->to.text, strerror(-err));
	}
	atomic_store(&s->broken, false);
	s->connected = true;
	return 0;
}

int lm_net_server_connect(struct lm_net_server *s)
{
	int err = server__handshake(s, false);

	if (err)
		server__close_all(s);
	return err;
}

/* Pages [first, first + n) as frames of at most BATCH_BYTES. */
int server__send_run(struct lm_net_server *s, struct lm_net_conn *c,
		     unsigned type, uint64_t first, uint64_t n, struct lm_net_lz4_hint *hint)
{
	uint64_t per = LM_MAX(1, BATCH_BYTES / s->layout.page_size);

	while (n) {
		uint32_t k = (uint32_t)LM_MIN(n, per);
		size_t len = lm_net_enc_pages(s->tx, type, 0, &s->layout,
					      s->mem,
					      first * s->layout.page_size, k,
					      hint);
		int err = server__send_frame(s, c, s->tx, len);

		if (err)
			return err;
		server__count_encodings(s, s->tx);
		/* per frame, so a long round shows its progress */
		if (type == LM_NET_PRECOPY)
			atomic_fetch_add(&s->st.precopy_pages, k);
		first += k;
		n -= k;
	}
	return 0;
}

/*
 * Wait until the destination has the round in its store: it echoes the
 * round's LIST_DONE then. Socket buffers hold megabytes, which a busy
 * destination may take a long while to store; without the echo a pause
 * could begin with a round still in flight, and the downtime would
 * include the destination catching up (seen: 250 ms to 5 s on a loaded
 * 2-CPU host). By the time the round's LIST_DONE is sent, TCP flow
 * control has kept the backlog to what the socket buffers hold, so two
 * I/O timeouts are plenty.
 */
static int round_stored(struct lm_net_server *s, struct lm_net_conn *c)
{
	char why[WHY_LEN];
	struct lm_net_msg m;
	int err = lm_net_recv_frame(c, s->rx, LM_NET_HDR_SIZE + 512,
				    &s->layout, &m,
				    lm_net_deadline_ms(2 * s->io_timeout_ms),
				    why, sizeof(why));

	if (err == -EPROTO)
		return util_error(err, "pre-copy to %s: %s", s->to.text, why);
	if (err)
		return util_error(err, "pre-copy to %s: waiting for the round to be stored: %s",
				s->to.text, strerror(-err));
	if (m.h.type == LM_NET_ERROR)
		return util_error(-ECONNABORTED, "pre-copy to %s: the destination reports: %s",
				s->to.text, m.u.error.text);
	if (m.h.type != LM_NET_LIST_DONE || m.u.done.phase != LM_NET_PHASE_PRECOPY)
		return util_error(-EPROTO, "pre-copy to %s: expected the destination's LIST_DONE for the round, got %s",
				s->to.text, lm_net_type_name(m.h.type));
	return 0;
}

int lm_net_server_precopy(struct lm_net_server *s, const uint64_t *bitmap)
{
	struct lm_net_conn *conn = atomic_load(&s->ctl);
	uint64_t np = s->layout.nr_pages, sent = 0;
	uint8_t buf[LM_NET_HDR_SIZE + 16];
	int err = 0;

	if (!s->connected || s->switched)
		return util_error(-EINVAL, "pre-copy to %s: %s", s->to.text,
				s->switched ? "after switch-over"
					    : "not connected");
	for (uint64_t p = 0; p < np && !err;) {
		uint64_t n = 0;

		while (p + n < np && (!bitmap || bitmap[(p + n) / 64] >>
						 ((p + n) % 64) & 1))
			n++;
		if (n) {
			err = server__send_run(s, conn, LM_NET_PRECOPY, p, n,
				       s->compress ? &s->hint : NULL);
			for (uint64_t i = p; i < p + n; i++)
				server__bit_set(s->sent, i);
			sent += n;
		}
		p += n + 1;
	}
	if (!err)
		err = server__send_frame(s, conn, buf, lm_net_enc_done(
			buf, LM_NET_PHASE_PRECOPY, sent));
	if (err)
		return util_error(err, "pre-copy to %s: %s", s->to.text,
				strerror(-err));
	return round_stored(s, conn);
}

int lm_net_server_switchover(struct lm_net_server *s, const uint64_t *dirty,
			     unsigned nr_vcpus, const void *const *blobs,
			     const uint32_t *blob_len)
{
	struct lm_net_conn *conn = atomic_load(&s->ctl);
	uint64_t np = s->layout.nr_pages;
	int err = 0;

	if (!s->connected || s->switched)
		return util_error(-EINVAL, "switch-over to %s: %s", s->to.text,
				s->switched ? "done already" : "not connected");
	if (nr_vcpus > 4096)
		return util_error(-EINVAL, "switch-over: %u vCPUs, at most 4096",
				nr_vcpus);
	for (uint64_t first = 0; dirty && first < np && !err;
	     first += LM_NET_MAX_BITMAP_BITS) {
		uint64_t nb = LM_MIN(np - first, LM_NET_MAX_BITMAP_BITS);

		err = server__send_frame(s, conn, s->tx, lm_net_enc_bitmap(
			s->tx, LM_NET_DIRTY, first, nb, dirty));
		for (uint64_t i = first; i < first + nb; i++)
			if (dirty[i / 64] >> (i % 64) & 1)
				atomic_fetch_and(&s->sent[i / 64],
						 ~(1ull << (i % 64)));
	}
	for (unsigned v = 0; v < nr_vcpus && !err; v++) {
		if (blob_len[v] > LM_NET_MAX_BLOB)
			return util_error(-EINVAL, "switch-over: vCPU %u state "
					"of %u bytes, at most %u", v,
					blob_len[v], LM_NET_MAX_BLOB);
		err = server__send_frame(s, conn, s->tx, lm_net_enc_vcpu(
			s->tx, v, blobs[v], blob_len[v]));
	}
	if (!err)
		err = server__send_frame(s, conn, s->tx,
				 lm_net_enc_switchover(s->tx, nr_vcpus));
	if (err)
		return util_error(err, "switch-over to %s: %s", s->to.text,
				strerror(-err));
	s->switched = true;
	return 0;
}

void lm_net_server_stats(struct lm_net_server *s,
			 struct lm_net_server_stats *st)
{
	st->demand_requests = atomic_load(&s->st.demand_requests);
	st->demand_pages = atomic_load(&s->st.demand_pages);
	st->push_pages = atomic_load(&s->st.push_pages);
	st->precopy_pages = atomic_load(&s->st.precopy_pages);
	st->bytes_out = atomic_load(&s->st.bytes_out);
	st->raw_pages = atomic_load(&s->st.raw);
	st->zero_pages = atomic_load(&s->st.zero);
	st->lz4_pages = atomic_load(&s->st.lz4);
	st->resumes = atomic_load(&s->st.resumes);
	st->push_ns = atomic_load(&s->st.push_ns);
}

void lm_net_server_destroy(struct lm_net_server *s)
{
	if (!s)
		return;
	server__close_all(s);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++) {
		free(s->u[i].rx);
		if (s->u[i].tx)
			munmap(s->u[i].tx, BUF_BYTES);
	}
	if (s->tx)
		munmap(s->tx, BUF_BYTES);
	free(s->rx);
	free((void *)s->sent);
	lm_net_conn_free_retired(&s->retired);
	pthread_mutex_destroy(&s->why_lock);
	free(s);
}
