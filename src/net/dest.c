/*
 * dest.c - the destination: listening, set-up, the calls its user makes,
 * and teardown; the accept thread and every handshake (first contact and
 * resume) are handshake.c's.
 *
 * A session starts when the source's control connection says HELLO with a
 * layout equal to ours; we answer WELCOME with how many urgent connections
 * we want (one per demand slot) and, on a resume, HAVE bitmaps of every
 * page we already hold, so the source pushes only the rest. Once every
 * urgent connection has said HELLO too, the link goes up. A connection
 * whose HELLO is wrong in any way gets an ERROR naming the field and is
 * closed; the accept thread carries on, so a hostile peer cannot take the
 * destination down.
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
#include "util/futex.h"
#include "util/error.h"
#include "net/dest_internal.h"
#include "net/why.h"


void lm__dest_req_percentiles(struct lm_net_dest *d, uint64_t *p50,
			      uint64_t *p99);

void lm__dest_set_error(struct lm_net_dest *d, const char *msg)
{
	pthread_mutex_lock(&d->err_lock);
	snprintf(d->last_error, sizeof(d->last_error), "%s", msg);
	pthread_mutex_unlock(&d->err_lock);
}


/*
 * May run in a signal handler: atomics, shutdown and futex only. The
 * reason stays in the caller's slot (or rx_why); lm_net_dest_last_error
 * collects it.
 */
void lm__dest_link_down(struct lm_net_dest *d, uint32_t v, const char *why)
{
	(void)why;
	if (!(v & 1) || !atomic_compare_exchange_strong(&d->link, &v, v + 1))
		return;		/* already down, or someone else said so */
	atomic_store(&d->down_since_ns, lm_now_ns());
	if (!atomic_load(&d->finished))	/* after DONE, a close is normal */
		atomic_fetch_add(&d->st.link_downs, 1);
	lm_net_conn_shutdown(atomic_load(&d->ctl), SHUT_RDWR);
	for (unsigned i = 0; i < d->nr_urgent; i++)
		lm_net_conn_shutdown(atomic_load(&d->slot[i].conn), SHUT_RDWR);
	lm_futex_wake_all(&d->link);
	lm_futex_wake_all(&d->switched);
}

int lm__dest_wait_link(struct lm_net_dest *d, uint64_t deadline, uint32_t *v)
{
	for (;;) {
		uint64_t now = lm_now_ns(), left;
		struct timespec ts;

		*v = atomic_load(&d->link);
		if (*v & 1)
			return 0;
		if (atomic_load(&d->failed) || atomic_load(&d->stop))
			return -EIO;
		if (now >= deadline)
			return -ETIMEDOUT;
		left = LM_MIN(deadline - now, 100000000ull);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		lm_futex_wait(&d->link, *v, &ts);
	}
}

static bool rx_ctx_init(struct lm_net_dest *d, struct rx_ctx *c)
{
	c->d = d;
	c->run_pages = lm__rx_run_pages(d->layout.page_size);
	c->run = malloc((size_t)c->run_pages * d->layout.page_size);
	return c->run != NULL;
}

int lm_net_dest_create(const struct lm_net_dest_config *c,
		       struct lm_net_dest **out)
{
	struct lm_net_dest *d = calloc(1, sizeof(*d));
	uint64_t words;
	int err;

	if (!d)
		return util_error(-ENOMEM, "net dest: out of memory");
	d->layout = *c->layout;
	d->nr_urgent = c->nr_urgent ? c->nr_urgent : 1;
	d->hold = c->hold;
	d->hold_timeout_ms = c->hold_timeout_ms;
	d->req_timeout_ms = c->req_timeout_ms > 0 ? c->req_timeout_ms : 5000;
	d->lfd = d->evfd = -1;
	d->tls = c->tls;
	pthread_mutex_init(&d->send_lock, NULL);
	pthread_mutex_init(&d->err_lock, NULL);
	pthread_mutex_init(&d->hs_lock, NULL);
	d->pend = calloc(1, sizeof(*d->pend));
	if (!d->pend) {
		free(d);
		return util_error(-ENOMEM, "net dest: out of memory");
	}
	for (unsigned i = 0; i < d->layout.nr_regions; i++) {
		struct dest_region *dr = &d->reg[i];

		dr->src.ops = &lm__dest_source_ops;
		dr->src.size = d->layout.region_size[i];
		dr->d = d;
		dr->idx = i;
		dr->base = i ? d->reg[i - 1].base + d->reg[i - 1].size : 0;
		dr->size = d->layout.region_size[i];
	}
	d->reg[0].store = c->precopy_store;
	if (d->nr_urgent > LM_NET_MAX_URGENT) {
		err = util_error(-EINVAL, "net dest: %u urgent slots, at most %d",
			       d->nr_urgent, LM_NET_MAX_URGENT);
		goto fail;
	}
	words = (d->layout.nr_pages + 63) / 64;
	d->have = calloc(words, 8);
	d->valid = calloc(words, 8);
	d->rx_buf = mmap(NULL, LM_NET_BUF, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d->nr_inst = c->installers ? LM_MIN(c->installers, 16u) : 1;
	d->rx_ctx = calloc(1, sizeof(*d->rx_ctx));
	d->inst = calloc(d->nr_inst, sizeof(*d->inst));
	if (d->rx_ctx)
		rx_ctx_init(d, d->rx_ctx);
	for (unsigned i = 0; d->inst && i + 1 < d->nr_inst; i++) {
		d->inst[i].d = d;
		if (!rx_ctx_init(d, &d->inst[i].ctx))
			d->rx_buf = MAP_FAILED;
	}
	if (!d->have || !d->valid || !d->rx_ctx || !d->rx_ctx->run ||
	    !d->inst || d->rx_buf == MAP_FAILED) {
		d->rx_buf = NULL;
		err = util_error(-ENOMEM, "net dest: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < d->nr_urgent; i++) {
		void *b = mmap(NULL, LM_NET_BUF, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (b == MAP_FAILED) {
			err = util_error(-ENOMEM, "net dest: slot buffers");
			goto fail;
		}
		d->slot[i].buf = b;
	}
	err = lm_net_addr_parse(c->listen, &d->addr);
	if (!err && !c->tls && !c->insecure && !lm_net_addr_loopback(&d->addr))
		err = util_error(-EPERM, "refusing to listen with plain TCP on "
				 "%s (not loopback): give --tls-cert/--tls-key/"
				 "--tls-ca or --psk-file, or --insecure",
				 d->addr.text);
	if (!err)
		err = lm_net_listen(&d->addr, &d->lfd);
	if (err)
		goto fail;
	lm_net_addr_name(&d->addr);
	for (unsigned i = 0; i < d->layout.nr_regions; i++)
		snprintf(d->reg[i].src.desc, sizeof(d->reg[i].src.desc),
			 "net dest %.64s region %u", d->addr.text, i);
	d->evfd = eventfd(0, EFD_CLOEXEC);
	if (d->evfd < 0) {
		err = util_error(-errno, "net dest: eventfd: %s", strerror(errno));
		goto fail;
	}
	err = pthread_create(&d->accept_thread, NULL, lm__dest_accept_main, d);
	if (err) {
		err = util_error(-err, "net dest: accept thread: %s",
			       strerror(err));
		goto fail;
	}
	d->accept_running = true;
	*out = d;
	return 0;
fail:
	lm_net_dest_destroy(d);
	return err;
}

struct lm_source *lm_net_dest_source(struct lm_net_dest *d)
{
	return &d->reg[0].src;
}

struct lm_source *lm_net_dest_region_source(struct lm_net_dest *d,
					    unsigned i)
{
	return i < d->layout.nr_regions ? &d->reg[i].src : NULL;
}

bool lm_net_dest_region_complete(struct lm_net_dest *d, unsigned i)
{
	uint64_t ps = d->layout.page_size;

	if (i >= d->layout.nr_regions)
		return false;
	for (uint64_t p = d->reg[i].base / ps;
	     p < (d->reg[i].base + d->reg[i].size) / ps; p++)
		if (!lm__bit(d->valid, p) && !lm__bit(d->have, p))
			return false;
	return true;
}

const char *lm_net_dest_address(const struct lm_net_dest *d)
{
	return d->addr.text;
}

int lm_net_dest_set_region_store(struct lm_net_dest *d, unsigned i,
				 uint8_t *store)
{
	if (d->rx_running)
		return util_error(-EBUSY, "net dest: stores are set before the "
				"receiver starts");
	if (i >= d->layout.nr_regions)
		return util_error(-EINVAL, "net dest: region %u of %u", i,
				d->layout.nr_regions);
	d->reg[i].store = store;
	return 0;
}

int lm_net_dest_set_store(struct lm_net_dest *d, uint8_t *store)
{
	return lm_net_dest_set_region_store(d, 0, store);
}

int lm_net_dest_attach_region(struct lm_net_dest *d, unsigned i,
			      struct lm_region *r)
{
	if (d->rx_running)
		return util_error(-EBUSY, "net dest: regions are attached before "
				"the receiver starts");
	if (i >= d->layout.nr_regions)
		return util_error(-EINVAL, "net dest: region %u of %u", i,
				d->layout.nr_regions);
	if (lm_region_size(r) != d->reg[i].size ||
	    lm_region_page_size(r) != d->layout.page_size)
		return util_error(-EINVAL, "net dest: region '%s' (%llu bytes "
				"of %llu-byte pages) does not match layout "
				"region %u (%llu bytes of %llu)",
				lm_region_name(r),
				(unsigned long long)lm_region_size(r),
				(unsigned long long)lm_region_page_size(r), i,
				(unsigned long long)d->reg[i].size,
				(unsigned long long)d->layout.page_size);
	d->reg[i].r = r;
	return 0;
}

int lm_net_dest_start(struct lm_net_dest *d)
{
	int err;

	if (d->rx_running)
		return 0;
	for (; d->inst_running + 1 < d->nr_inst; d->inst_running++) {
		struct installer *in = &d->inst[d->inst_running];

		err = pthread_create(&in->thread, NULL,
				     lm__dest_installer_main, in);
		if (err)
			return util_error(-err, "net dest: installer thread: %s",
					strerror(err));
	}
	err = pthread_create(&d->rx_thread, NULL, lm__dest_rx_main, d);
	if (err)
		return util_error(-err, "net dest: receiver thread: %s",
				strerror(err));
	d->rx_running = true;
	return 0;
}

int lm_net_dest_attach(struct lm_net_dest *d, struct lm_region *r)
{
	int err = lm_net_dest_attach_region(d, 0, r);

	return err ? err : lm_net_dest_start(d);
}

int lm_net_dest_wait_up(struct lm_net_dest *d, int timeout_ms)
{
	uint32_t v;

	return lm__dest_wait_link(d, lm_net_deadline_ms(timeout_ms), &v);
}

int lm_net_dest_wait_switchover(struct lm_net_dest *d, int timeout_ms)
{
	uint64_t deadline = lm_net_deadline_ms(timeout_ms);

	while (!atomic_load(&d->switched)) {
		struct timespec ts = { .tv_nsec = 50000000 };

		if (atomic_load(&d->failed))
			return -EPIPE;
		if (lm_now_ns() >= deadline)
			return -ETIMEDOUT;
		lm_futex_wait(&d->switched, 0, &ts);
	}
	return 0;
}

const uint8_t *lm_net_dest_vcpu(struct lm_net_dest *d, unsigned id,
				uint32_t *len)
{
	if (id >= 4096 || !atomic_load(&d->switched) || !d->vcpu[id])
		return NULL;
	*len = d->vcpu_len[id];
	return d->vcpu[id];
}

int lm_net_dest_finish(struct lm_net_dest *d)
{
	uint8_t buf[LM_NET_HDR_SIZE];
	struct lm_net_conn *c;
	int err;

	if (!(atomic_load(&d->link) & 1))
		return -ENOTCONN;
	atomic_store(&d->finished, true);
	pthread_mutex_lock(&d->send_lock);
	c = atomic_load(&d->ctl);
	err = !c ? -ENOTCONN : lm_net_send_all(c, buf, lm_net_enc_simple(buf, LM_NET_DONE),
			      lm_net_deadline_ms(d->req_timeout_ms));
	pthread_mutex_unlock(&d->send_lock);
	return err;
}

void lm_net_dest_abort(struct lm_net_dest *d, int err, const char *why)
{
	struct lm_net_conn *c;

	if (!(atomic_load(&d->link) & 1))
		return;
	pthread_mutex_lock(&d->send_lock);
	c = atomic_load(&d->ctl);
	if (c)
		lm_net_send_error(c, err < 0 ? -err : err, why);
	pthread_mutex_unlock(&d->send_lock);
}

void lm_net_dest_stats(struct lm_net_dest *d, struct lm_net_dest_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->demand_requests = atomic_load(&d->st.demand_requests);
	s->demand_pages = atomic_load(&d->st.demand_pages);
	s->push_pages = atomic_load(&d->st.push_pages);
	s->push_skipped = atomic_load(&d->st.push_skipped);
	s->push_failed = atomic_load(&d->st.push_failed);
	s->precopy_pages = atomic_load(&d->st.precopy_pages);
	s->precopy_hits = atomic_load(&d->st.precopy_hits);
	s->dirty_pages = atomic_load(&d->st.dirty_pages);
	s->bytes_in = atomic_load(&d->st.bytes_in);
	s->sessions = atomic_load(&d->st.sessions);
	s->refused = atomic_load(&d->st.refused);
	s->link_downs = atomic_load(&d->st.link_downs);
	s->req_max_ns = atomic_load(&d->st.req_max_ns);
	lm__dest_req_percentiles(d, &s->req_p50_ns, &s->req_p99_ns);
	s->nr_slots = d->nr_urgent;
	for (unsigned i = 0; i < d->nr_urgent; i++)
		s->slot_blocked_ns[i] = atomic_load(&d->slot[i].blocked_ns);
	s->push_done = atomic_load(&d->push_done);
	s->switched_over = atomic_load(&d->switched);
}

/* A copy per calling thread: handshake threads may be writing the
 * original (a refusal) while the caller reads. */
const char *lm_net_dest_last_error(struct lm_net_dest *d)
{
	static __thread char copy[WHY_LEN];

	pthread_mutex_lock(&d->err_lock);
	memcpy(copy, d->last_error, sizeof(copy));
	pthread_mutex_unlock(&d->err_lock);
	return copy;
}

void lm_net_dest_stop(struct lm_net_dest *d)
{
	if (!d || atomic_exchange(&d->stopped, true))
		return;
	atomic_store(&d->stop, true);
	if (d->evfd >= 0 && eventfd_write(d->evfd, 1) < 0)
		perror("eventfd_write");
	lm__dest_link_down(d, atomic_load(&d->link), "shutting down");
	if (d->accept_running)
		pthread_join(d->accept_thread, NULL);
	/* Handshake threads end within their HELLO and send deadlines. */
	while (atomic_load(&d->hs_active))
		usleep(1000);
	lm__dest_pending_drop(d->pend);
	free(d->pend);
	/* The receiver first: it may be waiting for installers to finish
	 * a frame's shares; they stop once it is gone. */
	if (d->rx_running)
		pthread_join(d->rx_thread, NULL);
	for (unsigned i = 0; i < d->inst_running; i++)
		pthread_join(d->inst[i].thread, NULL);
}

void lm_net_dest_destroy(struct lm_net_dest *d)
{
	if (!d)
		return;
	lm_net_dest_stop(d);
	for (unsigned i = 0; i < LM_NET_MAX_URGENT; i++) {
		lm_net_conn_close(atomic_load(&d->slot[i].conn));
		if (d->slot[i].buf)
			munmap(d->slot[i].buf, LM_NET_BUF);
	}
	if (d->rx_conn != atomic_load(&d->ctl))
		lm_net_conn_close(d->rx_conn);
	lm_net_conn_close(atomic_load(&d->ctl));
	lm_net_conn_free_retired(&d->retired);
	if (d->rx_ctx)
		free(d->rx_ctx->run);
	free(d->rx_ctx);
	for (unsigned i = 0; d->inst && i + 1 < d->nr_inst; i++)
		free(d->inst[i].ctx.run);
	free(d->inst);
	if (d->lfd >= 0)
		close(d->lfd);
	if (d->evfd >= 0)
		close(d->evfd);
	if (d->rx_buf)
		munmap(d->rx_buf, LM_NET_BUF);
	for (unsigned i = 0; i < 4096; i++)
		free(d->vcpu[i]);
	free(d->have);
	free(d->valid);
	pthread_mutex_destroy(&d->send_lock);
	pthread_mutex_destroy(&d->err_lock);
	pthread_mutex_destroy(&d->hs_lock);
	free(d);
}
