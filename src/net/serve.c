/*
 * serve.c - the page server's post-copy (lm_net_server_serve): one thread
 * per urgent connection answering DEMAND_REQs, and a push thread streaming
 * every page the destination does not have yet, yielding while any demand
 * request is answered (server.c's top comment says why). A break ends
 * both; with resume on, the server dials again and goes on from the
 * destination's HAVE bitmap.
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

static void *urgent_main(void *arg)
{
	struct urgent *u = arg;
	struct lm_net_server *s = u->s;
	struct lm_net_conn *conn = atomic_load(&s->uc[u->i]);
	char why[WHY_LEN];

	while (!atomic_load(&s->broken)) {
		struct lm_net_msg m;
		size_t len;
		int err = lm_net_recv_frame(conn, u->rx, LM_NET_HDR_SIZE + 64,
					    &s->layout, &m, UINT64_MAX, why,
					    sizeof(why));

		if (!err && m.h.type != LM_NET_DEMAND_REQ) {
			snprintf(why, sizeof(why), "unexpected %s on urgent "
				 "connection %u", lm_net_type_name(m.h.type),
				 u->i);
			err = -EPROTO;
		}
		if (err) {
			if (err == -EPROTO)
				lm_net_send_error(conn, EPROTO, why);
			if (!atomic_load(&s->broken))
				server__set_why(s, "urgent connection %u: %s", u->i,
					err == -EPROTO ? why
					: err == -ECONNRESET
						? "closed by the destination"
						: strerror(-err));
			break;
		}
		atomic_fetch_add(&s->demand_active, 1);
		len = lm_net_enc_pages(u->tx, LM_NET_DEMAND_REPLY, m.h.seq,
				       &s->layout, s->mem, m.u.req.off,
				       m.u.req.len / (uint32_t)s->layout.page_size,
				       s->compress ? &u->hint : NULL);
		err = server__send_frame(s, conn, u->tx, len);
		atomic_fetch_sub(&s->demand_active, 1);
		if (err) {
			server__set_why(s, "urgent connection %u: %s", u->i,
				strerror(-err));
			break;
		}
		server__count_encodings(s, u->tx);
		for (uint64_t p = m.u.req.off / s->layout.page_size;
		     p < (m.u.req.off + m.u.req.len) / s->layout.page_size; p++)
			server__bit_set(s->sent, p);
		atomic_fetch_add(&s->st.demand_requests, 1);
		atomic_fetch_add(&s->st.demand_pages,
				 m.u.req.len / s->layout.page_size);
	}
	server__broke(s);
	return NULL;
}

static void *push_main(void *arg)
{
	struct lm_net_server *s = arg;
	uint64_t np = s->layout.nr_pages, pushed = 0, t0 = lm_now_ns();
	uint64_t per = LM_MAX(1, BATCH_BYTES / s->layout.page_size);
	struct lm_net_conn *conn = atomic_load(&s->ctl);
	uint8_t done[LM_NET_HDR_SIZE + 16];
	int err = 0;

	/* Below the urgent threads: demand first on our CPUs too. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), PUSH_NICE);
	for (uint64_t p = 0; p < np && !err && !atomic_load(&s->broken);) {
		uint64_t n = 0;

		/* Demand first: stay off the CPU and the wire meanwhile. */
		while (atomic_load(&s->demand_active) > 0 &&
		       !atomic_load(&s->broken))
			sched_yield();
		while (p < np && server__bit(s->sent, p))
			p++;
		while (p + n < np && n < per && !server__bit(s->sent, p + n)) {
			server__bit_set(s->sent, p + n);
			n++;
		}
		if (!n)
			break;
		err = server__send_run(s, conn, LM_NET_PUSH, p, n,
			       s->compress ? &s->hint : NULL);
		pushed += n;
		p += n;
	}
	if (!err && !atomic_load(&s->broken))
		err = server__send_frame(s, conn, done, lm_net_enc_done(
			done, LM_NET_PHASE_PUSH, pushed));
	atomic_fetch_add(&s->st.push_pages, pushed);
	atomic_fetch_add(&s->st.push_ns, lm_now_ns() - t0);
	if (err) {
		if (!atomic_load(&s->broken))
			server__set_why(s, "push to %s: %s", s->to.text,
				strerror(-err));
		server__broke(s);
	}
	return NULL;
}

/* Run post-copy on the current connections until DONE or a break. */
static int serve_once(struct lm_net_server *s)
{
	unsigned started = 0;
	bool pushing = false;
	char why[WHY_LEN];
	struct lm_net_conn *conn = atomic_load(&s->ctl);
	int rc = -EPIPE;

	for (unsigned i = 0; i < s->nr_urgent; i++) {
		struct urgent *u = &s->u[i];

		u->s = s;
		u->i = i;
		if (!u->rx)
			u->rx = malloc(LM_NET_HDR_SIZE + 64);
		if (!u->tx) {
			u->tx = mmap(NULL, BUF_BYTES, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (u->tx == MAP_FAILED)
				u->tx = NULL;
		}
		if (!u->rx || !u->tx ||
		    pthread_create(&u->thread, NULL, urgent_main, u)) {
			server__set_why(s, "page server: cannot start urgent thread");
			server__broke(s);
			break;
		}
		started++;
	}
	if (s->push && !atomic_load(&s->broken))
		pushing = !pthread_create(&s->push_thread, NULL, push_main, s);
	while (!atomic_load(&s->broken)) {
		struct lm_net_msg m;
		int err;

		if (lm_net_conn_wait_in(conn, 100) <= 0)
			continue;
		err = lm_net_recv_frame(conn, s->rx, LM_NET_HDR_SIZE + 512,
					&s->layout, &m,
					lm_net_deadline_ms(s->io_timeout_ms),
					why, sizeof(why));
		if (!err && m.h.type == LM_NET_DONE) {
			rc = 0;
			break;
		}
		if (!err && m.h.type == LM_NET_ERROR)
			server__peer_error(s, m.u.error.text);
		else if (!err)
			server__set_why(s, "unexpected %s from the destination",
				lm_net_type_name(m.h.type));
		else
			server__set_why(s, "control connection: %s",
				err == -EPROTO ? why
				: err == -ECONNRESET ? "closed by the "
						       "destination"
						     : strerror(-err));
		/* Not over TLS while the push thread may be sending: a
		 * session has one sender at a time. */
		if (err == -EPROTO && (!pushing || !lm_net_conn_is_tls(conn)))
			lm_net_send_error(conn, EPROTO, why);
		break;
	}
	server__broke(s);
	for (unsigned i = 0; i < started; i++)
		pthread_join(s->u[i].thread, NULL);
	if (pushing)
		pthread_join(s->push_thread, NULL);
	if (rc && server__done_pending(s, conn))
		rc = 0;
	server__close_all(s);
	s->connected = false;
	return rc;
}

int lm_net_server_serve(struct lm_net_server *s)
{
	uint8_t buf[LM_NET_HDR_SIZE + 8];
	int err;

	if (!s->connected)
		return util_error(-ENOTCONN, "page server: not connected");
	if (!s->switched) {
		err = server__send_frame(s, atomic_load(&s->ctl), buf,
				 lm_net_enc_switchover(buf, 0));
		if (err)
			return util_error(err, "switch-over to %s: %s",
					s->to.text, strerror(-err));
		s->switched = true;
	}
	for (;;) {
		uint64_t deadline;

		if (serve_once(s) == 0)
			return 0;
		if (!s->resume)
			return util_error(-EPIPE, "post-copy to %s broke: %s",
					s->to.text, s->why);
		deadline = lm_net_deadline_ms(s->resume_timeout_ms);
		do {
			usleep(100000);
			pthread_mutex_lock(&s->why_lock);
			s->why[0] = '\0';
			pthread_mutex_unlock(&s->why_lock);
			err = server__handshake(s, true);
			if (err)
				server__close_all(s);
		} while (err && err != -ESTALE && err != -ECONNREFUSED &&
			 lm_now_ns() < deadline);
		if (err)
			return err;
		atomic_fetch_add(&s->st.resumes, 1);
	}
}

void lm_net_server_cut(struct lm_net_server *s)
{
	server__shut_all(s);
}

void lm_net_server_set_tls(struct lm_net_server *s, struct lm_net_tls *t)
{
	atomic_store(&s->tls, t);
}
