/*
 * receive.c - the destination's receiver thread: everything the source
 * sends on the control connection.
 *
 * Pushed pages are installed in runs by lm_region_install_run with the
 * background origin, so the page-state map decides, as for the background
 * fill: a page already present or being fetched by a faulting thread is
 * skipped (never waited for, never installed twice), and the missing ones
 * are claimed and installed with one ioctl per contiguous run, about half
 * the cost of one lm_region_fault per page (docs/migration.md, "The push
 * before and after"). Pre-copy pages go to the pre-copy store
 * and are valid until a DIRTY bitmap says otherwise; both are refused
 * after SWITCHOVER, when the destination's copy has become the live one.
 *
 * The accept thread never waits for this thread, so a break is recovered
 * whatever the receiver is doing.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/futex.h"
#include "util/error.h"
#include "net/dest_internal.h"
#include "net/why.h"

static int store_page(struct lm_net_dest *d, const struct lm_net_msg *m,
		      unsigned i, size_t *cursor, char *why);

static void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/*
 * Pushed pages for one lazymem region gathered for one
 * lm_region_install_run: contiguous, at most rx_ctx.run_pages. A run that
 * starts with zero pages stays a zero run (UFFDIO_ZEROPAGE: no memory
 * used) until a data page ends it; a zero page inside a data run joins it
 * as zeroes, so a frame of mixed pages still goes in a few long runs (the
 * bench's image has every eighth page zero: one ioctl per 64 pages, not
 * two per 8). Raw pages are installed straight from the frame while the
 * run is raw only; any other page moves the run into the thread's buffer.
 */
struct push_run {
	struct dest_region *dr;
	uint64_t off;			/* image offset of the first page */
	unsigned n;
	bool zero;
	const uint8_t *direct;		/* the raw pages in the frame, or NULL */
	struct rx_ctx *ctx;		/* ctx->run: the expanded pages */
};

/* The region claimed pushed pages: we hold them from now on, before any
 * faulting thread can see them present (what lm_net_dest_region_complete
 * and a resume's HAVE bitmap rely on). */
static void mark_claimed(void *arg, uint64_t off, unsigned npages)
{
	struct dest_region *dr = arg;
	uint64_t first = (dr->base + off) / dr->d->layout.page_size;

	for (unsigned k = 0; k < npages; k++)
		lm__bit_set(dr->d->have, first + k);
}

/* Install the gathered run with one call; count each page's outcome. A
 * page that failed earlier stays failed: not the link's business. */
static void flush_run(struct lm_net_dest *d, struct push_run *run)
{
	struct dest_region *dr = run->dr;
	struct lm_install_run ir = { .on_claimed = mark_claimed, .arg = dr };
	const void *buf = run->zero ? NULL
			  : run->direct ? run->direct : run->ctx->run;
	unsigned failed;
	int rc;

	if (run->n == 0)
		return;
	rc = lm_region_install_run(dr->r, run->off - dr->base, run->n, buf,
				   LM_ORIGIN_BACKGROUND, &ir);
	/* Only bad arguments leave nothing accounted: all failed. */
	failed = rc < 0 && !(ir.installed | ir.failed)
			 ? run->n
			 : (unsigned)__builtin_popcountll(ir.failed);
	count(&d->st.push_pages, ir.nr_installed);
	count(&d->st.push_failed, failed);
	count(&d->st.push_skipped, run->n - ir.nr_installed - failed);
	run->n = 0;
}

/* Page i of the frame (image offset off, data at cursor at) joins the run,
 * which is flushed first if the page cannot extend it. LZ4 is expanded
 * here, before any page of the run is claimed: a bad block is the peer's
 * fault and must not fail (poison) a page. */
static int add_page(struct lm_net_dest *d, struct push_run *run,
		    const struct lm_net_msg *m, unsigned i, size_t at,
		    struct dest_region *dr, uint64_t off)
{
	uint64_t ps = d->layout.page_size;
	const uint8_t *rec = m->u.pages.recs + (size_t)i * LM_NET_PAGE_REC;
	const uint8_t *data = m->u.pages.data + at;
	bool zero = rec[0] == LM_NET_ENC_ZERO, raw = rec[0] == LM_NET_ENC_RAW;

	if (run->n && (run->dr != dr || off != run->off + run->n * ps ||
		       (run->zero && !zero) || run->n == run->ctx->run_pages))
		flush_run(d, run);
	if (run->n == 0) {
		run->dr = dr;
		run->off = off;
		run->zero = zero;
		run->direct = raw ? data : NULL;
	}
	if (run->zero || (raw && run->direct &&
			  run->direct + run->n * ps == data)) {
		run->n++;
		return 0;
	}
	if (run->direct) {
		memcpy(run->ctx->run, run->direct, run->n * ps);
		run->direct = NULL;
	}
	run->n++;
	return lm_net_page_expand(&d->layout, m, i, &at,
				  run->ctx->run + (run->n - 1) * ps,
				  run->ctx->why, WHY_LEN);
}

/* Pages [first, end) of a PUSH frame, by the calling thread (ctx is its
 * own). The cursor is found by walking the records up to first. */
static int install_pages(struct lm_net_dest *d, struct rx_ctx *ctx,
			 const struct lm_net_msg *m, unsigned first,
			 unsigned end)
{
	uint64_t ps = d->layout.page_size;
	struct push_run run = { .ctx = ctx };
	size_t cursor = 0;

	for (unsigned i = 0; i < first; i++)
		cursor += lm_get32(m->u.pages.recs + (size_t)i * LM_NET_PAGE_REC + 4);
	for (unsigned i = first; i < end; i++) {
		uint64_t off = m->u.pages.off + (uint64_t)i * ps;
		const uint8_t *rec = m->u.pages.recs + (size_t)i * LM_NET_PAGE_REC;
		struct dest_region *dr = lm__dest_region_of(d, off);
		size_t at = cursor;
		int rc;

		if (!dr->r) {
			/* An eager region (no lazymem region): its store,
			 * never over a page already there, which may be live
			 * memory after the switch-over. */
			if (lm__bit(d->valid, off / ps)) {
				cursor += lm_get32(rec + 4);
				count(&d->st.push_skipped, 1);
				continue;
			}
			rc = store_page(d, m, i, &cursor, ctx->why);
			if (rc)
				return rc;
			count(&d->st.push_pages, 1);
			continue;
		}
		cursor += lm_get32(rec + 4);
		if (lm__bit(d->have, off / ps)) {
			count(&d->st.push_skipped, 1);
			continue;
		}
		rc = add_page(d, &run, m, i, at, dr, off);
		if (rc)
			return rc;
	}
	flush_run(d, &run);
	return 0;
}

/*
 * A PUSH frame: its pages are shared out between the receiver and the
 * installers (if configured), each installing its share at once, a run
 * per call. The frame is not reused until every share is done.
 */
static int install_push(struct lm_net_dest *d, const struct lm_net_msg *m)
{
	unsigned n = m->u.pages.npages, k = d->nr_inst;
	unsigned per = (n + k - 1) / k;
	int err;

	for (unsigned j = 1; j < k; j++) {
		struct installer *in = &d->inst[j - 1];

		in->msg = m;
		in->first = LM_MIN(n, j * per);
		in->end = LM_MIN(n, (j + 1) * per);
		in->result = 0;
		atomic_store(&in->job, 1);
		lm_futex_wake_all(&in->job);
	}
	err = install_pages(d, d->rx_ctx, m, 0, LM_MIN(n, per));
	if (err)
		memcpy(d->rx_why, d->rx_ctx->why, WHY_LEN);
	for (unsigned j = 1; j < k; j++) {
		struct installer *in = &d->inst[j - 1];

		while (atomic_load(&in->job))
			lm_futex_wait(&in->job, 1, NULL);
		if (in->result && !err) {
			err = in->result;
			memcpy(d->rx_why, in->ctx.why, WHY_LEN);
		}
	}
	return err;
}

void *lm__dest_installer_main(void *arg)
{
	struct installer *in = arg;
	struct lm_net_dest *d = in->d;

	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	for (;;) {
		while (!atomic_load(&in->job) && !atomic_load(&d->stop)) {
			struct timespec ts = { .tv_nsec = 100000000 };

			lm_futex_wait(&in->job, 0, &ts);
		}
		if (!atomic_load(&in->job))
			return NULL;	/* stopping */
		in->result = install_pages(d, &in->ctx, in->msg, in->first,
					   in->end);
		atomic_store(&in->job, 0);
		lm_futex_wake_all(&in->job);
	}
}

/* Page i of a PAGES frame into its region's store, valid from now on. */
static int store_page(struct lm_net_dest *d, const struct lm_net_msg *m,
		      unsigned i, size_t *cursor, char *why)
{
	uint64_t off = m->u.pages.off + (uint64_t)i * d->layout.page_size;
	struct dest_region *dr = lm__dest_region_of(d, off);
	int err;

	if (!dr->store)
		return lm_net_why(why, WHY_LEN, "%s pages for region %u, "
				  "which has no store on this destination",
				  lm_net_type_name(m->h.type), dr->idx);
	err = lm_net_page_expand(&d->layout, m, i, cursor,
				 dr->store + (off - dr->base), why, WHY_LEN);
	if (err)
		return err;
	lm__bit_set(d->valid, off / d->layout.page_size);
	return 0;
}

static int store_precopy(struct lm_net_dest *d, const struct lm_net_msg *m)
{
	size_t cursor = 0;

	for (unsigned i = 0; i < m->u.pages.npages; i++) {
		int err = store_page(d, m, i, &cursor, d->rx_why);

		if (err)
			return err;
	}
	atomic_fetch_add_explicit(&d->st.precopy_pages, m->u.pages.npages,
				  memory_order_relaxed);
	return 0;
}

static void apply_dirty(struct lm_net_dest *d, const struct lm_net_msg *m)
{
	for (uint64_t i = 0; i < m->u.bitmap.nbits; i++) {
		if (!(m->u.bitmap.bits[i / 8] >> (i % 8) & 1))
			continue;
		lm__bit_clear(d->valid, m->u.bitmap.first + i);
		atomic_fetch_add_explicit(&d->st.dirty_pages, 1,
					  memory_order_relaxed);
	}
}

/* A pre-copy round is in the store (frames are handled in order): tell
 * the source, which waits for this before a next round or the pause. */
static int echo_round(struct lm_net_dest *d, uint64_t pages)
{
	uint8_t buf[LM_NET_HDR_SIZE + 16];
	int err;

	pthread_mutex_lock(&d->send_lock);
	err = lm_net_send_all(atomic_load(&d->ctl), buf,
			      lm_net_enc_done(buf, LM_NET_PHASE_PRECOPY, pages),
			      lm_net_deadline_ms(d->req_timeout_ms));
	pthread_mutex_unlock(&d->send_lock);
	if (err)
		lm_net_whyf(d->rx_why, WHY_LEN, "answering a pre-copy round: %s",
			    strerror(-err));
	return err;
}

static int handle(struct lm_net_dest *d, const struct lm_net_msg *m)
{
	bool after = atomic_load(&d->switched);
	uint8_t *blob;

	atomic_fetch_add_explicit(&d->st.bytes_in, m->h.length,
				  memory_order_relaxed);
	switch (m->h.type) {
	case LM_NET_PUSH:
		return install_push(d, m);
	case LM_NET_PRECOPY:
		if (after)
			break;
		return store_precopy(d, m);
	case LM_NET_DIRTY:
		if (after)
			break;
		apply_dirty(d, m);
		return 0;
	case LM_NET_VCPU:
		if (after)
			break;
		blob = malloc(m->u.vcpu.len ? m->u.vcpu.len : 1);
		if (!blob)
			return lm_net_why(d->rx_why, WHY_LEN, "out of memory "
					  "for vCPU %u state", m->u.vcpu.id),
			       -ENOMEM;
		memcpy(blob, m->u.vcpu.data, m->u.vcpu.len);
		free(d->vcpu[m->u.vcpu.id]);
		d->vcpu[m->u.vcpu.id] = blob;
		d->vcpu_len[m->u.vcpu.id] = m->u.vcpu.len;
		return 0;
	case LM_NET_SWITCHOVER:
		atomic_store(&d->switched, 1);
		lm_futex_wake_all(&d->switched);
		return 0;
	case LM_NET_LIST_DONE:
		if (m->u.done.phase == LM_NET_PHASE_PUSH)
			atomic_store(&d->push_done, true);
		else if (!after)
			return echo_round(d, m->u.done.pages);
		return 0;
	case LM_NET_ERROR:
		lm_net_whyf(d->rx_why, WHY_LEN, "the source reports: %s",
			    m->u.error.text);
		return -ECONNABORTED;
	default:
		return lm_net_why(d->rx_why, WHY_LEN, "unexpected %s on the "
				  "control connection",
				  lm_net_type_name(m->h.type));
	}
	return lm_net_why(d->rx_why, WHY_LEN, "%s after SWITCHOVER: the "
			  "destination's memory is live now",
			  lm_net_type_name(m->h.type));
}

/* Wait up to 100 ms for the control connection to have a frame. */
static int readable(struct lm_net_conn *c)
{
	return lm_net_conn_wait_in(c, 100);
}

void *lm__dest_rx_main(void *arg)
{
	struct lm_net_dest *d = arg;

	/* Below the faulting threads, which may share our CPUs. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	while (!atomic_load(&d->stop)) {
		struct lm_net_msg m;
		char msg[WHY_LEN + 32];
		uint32_t v;
		struct lm_net_conn *c;
		int err;

		if (lm__dest_wait_link(d, lm_net_deadline_ms(200), &v))
			continue;
		c = atomic_load(&d->ctl);
		if (!c)
			continue;
		if (c != d->rx_conn) {
			pthread_mutex_lock(&d->send_lock);
			lm_net_conn_retire(d->rx_conn, &d->retired);
			d->rx_conn = c;
			pthread_mutex_unlock(&d->send_lock);
		}
		err = readable(c);
		if (err == 0 || atomic_load(&d->link) != v)
			continue;
		err = lm_net_recv_frame(c, d->rx_buf, LM_NET_BUF, &d->layout,
					&m, lm_net_deadline_ms(d->req_timeout_ms),
					d->rx_why, WHY_LEN);
		if (err == -ECONNRESET)
			snprintf(d->rx_why, WHY_LEN, "the source closed the "
				 "control connection");
		else if (err == -ETIMEDOUT)
			snprintf(d->rx_why, WHY_LEN, "a frame on the control "
				 "connection stalled for %d ms",
				 d->req_timeout_ms);
		else if (err && err != -EPROTO)
			snprintf(d->rx_why, WHY_LEN, "control connection: %s",
				 strerror(-err));
		if (!err)
			err = handle(d, &m);
		if (!err)
			continue;
		if (err == -EPROTO && atomic_load(&d->link) == v) {
			pthread_mutex_lock(&d->send_lock);
			lm_net_send_error(c, EPROTO, d->rx_why);
			pthread_mutex_unlock(&d->send_lock);
		}
		snprintf(msg, sizeof(msg), "link down: %s", d->rx_why);
		lm__dest_set_error(d, msg);
		lm__dest_link_down(d, v, d->rx_why);
	}
	return NULL;
}

/* Pages [p, p + n) of the layout, all valid in the store: map the ones
 * still missing. Present ones are skipped by the region itself. */
static int install_stored_run(struct lm_net_dest *d, struct dest_region *dr,
			      uint64_t p, unsigned n, uint64_t *installed)
{
	uint64_t off = p * d->layout.page_size - dr->base;
	struct lm_install_run run = { 0 };
	int err = lm_region_install_run(dr->r, off, n, dr->store + off,
					LM_ORIGIN_BACKGROUND, &run);

	*installed += run.nr_installed;
	/* a page failed by its own fault stays failed; that is its
	 * faulter's to report */
	return err == -EIO ? 0 : err;
}

int lm_net_dest_install_stored(struct lm_net_dest *d, unsigned i,
			       const atomic_bool *stop, uint64_t *installed)
{
	struct dest_region *dr;
	uint64_t ps = d->layout.page_size, p, end;
	int err = 0;

	*installed = 0;
	if (i >= d->layout.nr_regions)
		return util_error(-EINVAL, "net dest: region %u of %u", i,
				d->layout.nr_regions);
	dr = &d->reg[i];
	if (!atomic_load(&d->switched) || !dr->r || !dr->store ||
	    dr->store != lm_region_alias(dr->r))
		return util_error(-EINVAL, "net dest: region %u: installing from "
				"the store needs the switch-over and the "
				"region's alias as its store", i);
	p = dr->base / ps;
	end = (dr->base + dr->size) / ps;
	while (p < end && !err && !(stop && atomic_load(stop))) {
		unsigned n = 0;

		if (!lm__bit(d->valid, p)) {
			p++;
			continue;
		}
		while (p + n < end && n < LM_INSTALL_RUN_MAX &&
		       lm__bit(d->valid, p + n))
			n++;
		err = install_stored_run(d, dr, p, n, installed);
		p += n;
	}
	if (err)
		return util_error(err, "net dest: region %u: installing stored "
				"pages: %s", i, lm_last_error());
	return 0;
}
