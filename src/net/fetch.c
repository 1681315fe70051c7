/*
 * fetch.c - the destination's page source: what a fault's read() does.
 *
 * read() runs on the faulting thread, possibly inside its SIGBUS handler or
 * on a vCPU thread on its way out of KVM_RUN. It is served, in order:
 *
 *   1. from the pre-copy store, when every page asked for arrived in
 *      pre-copy and was not dirtied since: no transfer at all;
 *   2. by demand: the faulting thread takes a free urgent slot (the same
 *      one each time, so with as many slots as vCPUs each vCPU owns a
 *      connection), sends DEMAND_REQ and reads the DEMAND_REPLY itself.
 *      No other thread is woken on our side.
 *
 * Pushed pages never come through here: the receiver installs them from
 * the frame itself (receive.c, lm_region_install_run).
 *
 * Only poll/send/recv/futex/nanosleep and atomics are used: all
 * async-signal-safe; with TLS, GnuTLS's record layer too (conn.c says why
 * it is safe here). A broken link fails the read after req_timeout_ms,
 * unless the destination holds (recovery): then the thread waits for the
 * source to reconnect and asks again on the new connection.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/clock.h"
#include "net/dest_internal.h"
#include "net/why.h"

static __thread int slot_hint __attribute__((tls_model("initial-exec"))) = -1;

static void record_rtt(struct lm_net_dest *d, uint64_t ns)
{
	uint64_t max = atomic_load_explicit(&d->st.req_max_ns,
					    memory_order_relaxed);

	atomic_fetch_add_explicit(&d->st.req_hist[lm_lat_bucket(ns)], 1,
				  memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak(&d->st.req_max_ns,
							 &max, ns))
		;
}

static void mark_have(struct lm_net_dest *d, uint64_t off, size_t len)
{
	for (uint64_t p = off / d->layout.page_size;
	     p < (off + len) / d->layout.page_size; p++)
		lm__bit_set(d->have, p);
}

static struct dest_slot *slot_get(struct lm_net_dest *d)
{
	for (;;) {
		unsigned n = d->nr_urgent;
		unsigned start = slot_hint >= 0 ? (unsigned)slot_hint
			: (unsigned)(syscall(SYS_gettid) % n);

		for (unsigned k = 0; k < n; k++) {
			unsigned i = (start + k) % n;
			int zero = 0;

			if (atomic_compare_exchange_strong(&d->slot[i].busy,
							   &zero, 1)) {
				slot_hint = (int)i;
				return &d->slot[i];
			}
		}
		/* More faulting threads than slots: wait for one. */
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
}

static void slot_put(struct dest_slot *s)
{
	atomic_store(&s->busy, 0);
}

/* One request and its reply on the slot's connection. */
static int ask(struct lm_net_dest *d, struct dest_slot *s, uint64_t off,
	       void *dst, size_t len)
{
	uint8_t req[LM_NET_HDR_SIZE + 16];
	uint64_t deadline = lm_net_deadline_ms(d->req_timeout_ms);
	struct lm_net_conn *c = atomic_load(&s->conn);
	uint32_t seq = ++s->seq;
	struct lm_net_msg m;
	size_t cursor = 0;
	int err;

	err = lm_net_send_all(c, req, lm_net_enc_req(req, seq, off,
						       (uint32_t)len),
			      deadline);
	if (err) {
		lm_net_whyf(s->why, WHY_LEN, "sending DEMAND_REQ for %X: "
			    "errno %u", off, (unsigned)-err);
		return err;
	}
	atomic_fetch_add_explicit(&d->st.demand_requests, 1,
				  memory_order_relaxed);
	err = lm_net_recv_frame(c, s->buf, LM_NET_BUF, &d->layout, &m,
				deadline, s->why, WHY_LEN);
	if (err == -ETIMEDOUT)
		lm_net_whyf(s->why, WHY_LEN, "no reply to DEMAND_REQ for %X "
			    "within %u ms", off, (unsigned)d->req_timeout_ms);
	else if (err == -ECONNRESET)
		lm_net_whyf(s->why, WHY_LEN, "the source closed the urgent "
			    "connection");
	if (err)
		return err;
	if (m.h.type == LM_NET_ERROR) {
		lm_net_whyf(s->why, WHY_LEN, "source refused: %s",
			    m.u.error.text);
		return -ECONNABORTED;
	}
	if (m.h.type != LM_NET_DEMAND_REPLY || m.h.seq != seq ||
	    m.u.pages.off != off ||
	    (uint64_t)m.u.pages.npages * d->layout.page_size != len)
		return lm_net_why(s->why, WHY_LEN, "expected DEMAND_REPLY "
				  "%u for %X + %U, got %s %u for %X",
				  seq, off, (uint64_t)len,
				  lm_net_type_name(m.h.type), m.h.seq,
				  m.u.pages.off);
	for (unsigned i = 0; i < m.u.pages.npages; i++) {
		err = lm_net_page_expand(&d->layout, &m, i, &cursor,
					 (uint8_t *)dst +
						 (size_t)i * d->layout.page_size,
					 s->why, WHY_LEN);
		if (err)
			return err;
	}
	atomic_fetch_add_explicit(&d->st.bytes_in, m.h.length,
				  memory_order_relaxed);
	return 0;
}

/* Per slot, so per vCPU when each owns one: time spent blocked. */
static int blocked(struct lm_net_dest *d, uint64_t t_in, int err)
{
	if (slot_hint >= 0)
		atomic_fetch_add_explicit(&d->slot[slot_hint].blocked_ns,
					  lm_now_ns() - t_in,
					  memory_order_relaxed);
	return err;
}

static int demand(struct lm_net_dest *d, uint64_t off, void *dst, size_t len)
{
	uint64_t t_in = lm_now_ns();
	struct dest_slot *s = slot_get(d);
	uint64_t wait_deadline = 0;

	for (;;) {
		uint32_t v = atomic_load(&d->link);
		uint64_t t0;
		int err;

		if (!(v & 1) || !atomic_load(&s->conn)) {
			slot_put(s);
			if (!wait_deadline)
				wait_deadline =
					d->hold && d->hold_timeout_ms < 0
						? UINT64_MAX
					: d->hold
						? lm_now_ns() +
							  (uint64_t)d->hold_timeout_ms *
								  1000000ull
						: lm_net_deadline_ms(
							  d->req_timeout_ms);
			err = lm__dest_wait_link(d, wait_deadline, &v);
			if (err)
				return blocked(d, t_in, err);
			s = slot_get(d);
			continue;
		}
		t0 = lm_now_ns();
		err = ask(d, s, off, dst, len);
		if (!err) {
			record_rtt(d, lm_now_ns() - t0);
			atomic_fetch_add_explicit(&d->st.demand_pages,
						  len / d->layout.page_size,
						  memory_order_relaxed);
			slot_put(s);
			mark_have(d, off, len);
			return blocked(d, t_in, 0);
		}
		lm__dest_link_down(d, v, s->why);
		if (!d->hold) {
			slot_put(s);
			return blocked(d, t_in, err == -ETIMEDOUT ||
						      err == -EPROTO ? err : -EIO);
		}
		/* Hold: wait for the source to come back, ask again. */
		wait_deadline = 0;
	}
}

/* off and len are relative to the region; the wire speaks image offsets. */
/* Pages valid in the pre-copy store: no transfer, and no copy at all when
 * the store is where the page goes (the region's alias). */
static void store_hit(struct lm_net_dest *d, struct dest_region *dr,
		      uint64_t off, uint8_t *dst, uint64_t len)
{
	if (dst != dr->store + off)
		memcpy(dst, dr->store + off, len);
	atomic_fetch_add_explicit(&d->st.precopy_hits,
				  len / d->layout.page_size,
				  memory_order_relaxed);
	mark_have(d, dr->base + off, len);
}

static int dest_read(struct lm_source *src, uint64_t off, void *dst,
		     size_t len)
{
	struct dest_region *dr = (struct dest_region *)src;
	struct lm_net_dest *d = dr->d;
	uint64_t ps = d->layout.page_size, ioff = dr->base + off;

	if (off % ps || len % ps || off > dr->size || len > dr->size - off ||
	    len == 0)
		return -ERANGE;
	if (!dr->store)
		return demand(d, ioff, dst, len);
	/* A run (fault-around, background fill) may mix pages valid in the
	 * store with dirtied or never-sent ones: serve each stretch from
	 * where it is, so a page already here never crosses the network. */
	for (uint64_t at = 0; at < len;) {
		bool valid = lm__bit(d->valid, (ioff + at) / ps);
		uint64_t n = ps;
		int err = 0;

		while (at + n < len && lm__bit(d->valid, (ioff + at + n) / ps) == valid)
			n += ps;
		if (valid)
			store_hit(d, dr, off + at, (uint8_t *)dst + at, n);
		else
			err = demand(d, ioff + at, (uint8_t *)dst + at, n);
		if (err)
			return err;
		at += n;
	}
	return 0;
}

static void dest_source_destroy(struct lm_source *src)
{
	(void)src;	/* owned by the dest: lm_net_dest_destroy frees it */
}

const struct lm_source_ops lm__dest_source_ops = {
	.read = dest_read,
	.destroy = dest_source_destroy,
};

void lm__dest_req_percentiles(struct lm_net_dest *d, uint64_t *p50,
			      uint64_t *p99);
void lm__dest_req_percentiles(struct lm_net_dest *d, uint64_t *p50,
			      uint64_t *p99)
{
	uint64_t total = 0, acc = 0;

	*p50 = *p99 = 0;
	for (unsigned i = 0; i < REQ_HIST; i++)
		total += atomic_load(&d->st.req_hist[i]);
	/* a bucket's middle, never above the largest seen */
	uint64_t max = atomic_load(&d->st.req_max_ns);

	for (unsigned i = 0; i < REQ_HIST && total; i++) {
		uint64_t c = atomic_load(&d->st.req_hist[i]);
		uint64_t v = LM_MIN(lm_lat_bucket_ns(i), max);

		acc += c;
		if (!*p50 && acc * 2 >= total)
			*p50 = v;
		if (!*p99 && acc * 100 >= total * 99)
			*p99 = v;
	}
}
