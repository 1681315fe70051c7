/*
 * send.c - the source of a live migration: run the VM, copy its
 * memory while it runs (pre-copy rounds, KVM's dirty log saying what to
 * send again), pause it, hand over the vCPUs and what is still dirty,
 * then serve the destination's demand faults and push the rest until it
 * says DONE. The VM never runs here again after the pause.
 *
 * What the pause sends, per mode (the downtime):
 *   precopy   every page dirtied since its last send, both regions;
 *   hybrid    the reserved area's dirty pages only; RAM's go to the
 *             destination as a DIRTY bitmap and are fetched on demand;
 *   postcopy  the reserved area's dirty pages only: that area alone was
 *             pre-copied (one round, RAM not even logged), RAM all goes
 *             after the switch-over.
 * The reserved area must be complete before any vCPU runs there: it holds
 * the code, stacks and page tables, which are not lazily served. Copying
 * all of it during the pause cost 30 ms for a 1 GiB guest (8 MiB, most
 * of it page tables and the destination's first touch of fresh memory).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lazymem/snapshot.h>

#include "util/bits.h"
#include "util/clock.h"
#include "util/error.h"
#include "migrate/migrate.h"

_Static_assert(VCPU_STATE_MAX <= LM_NET_MAX_BLOB,
	       "a packed vCPU state must fit one VCPU message");

static const char *const mode_names[LM_MIGRATE_MODE_COUNT] = {
	[LM_MIGRATE_PRECOPY] = "precopy",
	[LM_MIGRATE_POSTCOPY] = "postcopy",
	[LM_MIGRATE_HYBRID] = "hybrid",
};

const char *lm_migrate_mode_name(enum lm_migrate_mode m)
{
	return m < LM_MIGRATE_MODE_COUNT ? mode_names[m] : "?";
}

int lm_migrate_mode_parse(const char *s, enum lm_migrate_mode *out)
{
	for (int m = 0; m < LM_MIGRATE_MODE_COUNT; m++) {
		if (!strcmp(s, mode_names[m])) {
			*out = (enum lm_migrate_mode)m;
			return 0;
		}
	}
	return -EINVAL;
}

int lm_vm_migrate_layout(uint64_t mem_size, uint64_t guest_page_size,
			 struct lm_net_layout *l)
{
	uint64_t sizes[2] = { lm_vm_reserved_size(mem_size, guest_page_size),
			      mem_size };
	char why[256];
	int rc = lm_net_layout_init(l, 4096, sizes, 2, why, sizeof(why));

	return rc ? util_error(rc, "migration layout: %s", why) : 0;
}

/* Everything the source holds; released in one place. */
struct send {
	const struct lm_migrate_send_opts *o;
	struct lm_migrate_send_result *res;
	struct lm_vm *vm;
	struct lm_net_layout layout;
	struct lm_net_server *srv;
	uint64_t words;			/* bitmap words over the layout */
	uint64_t *pending;		/* dirty, cleared in KVM, not sent */
	uint64_t *scratch;
	/* the VM's run, on its own thread */
	pthread_t runner;
	bool runner_started;
	struct lm_vm_workload wl;
	struct lm_vm_result run_res;
	int run_rc;
	char run_msg[512];		/* its error (another thread's) */
	atomic_bool run_over;
	/* the progress line */
	pthread_t ticker;
	bool ticker_started;
	atomic_bool ticker_stop;
	pthread_mutex_t label_lock;
	char label[64];
	uint64_t label_base, label_total;
	/* the post-copy cut (test aid) */
	pthread_t cutter;
	bool cutter_started;
	atomic_bool serving_over;
};

static void *send__runner(void *arg)
{
	struct send *x = arg;

	x->run_rc = lm_vm_run(x->vm, &x->wl, &x->run_res);
	if (x->run_rc)
		snprintf(x->run_msg, sizeof(x->run_msg), "%s", util_last_error());
	atomic_store(&x->run_over, true);
	return NULL;
}

/*
 * The progress line: a round is one long call, so a ticker thread reports
 * the pages sent so far (the transport counts them per frame) every
 * 100 ms, under the label of the round under way.
 */
static void *send__ticker(void *arg)
{
	struct send *x = arg;

	while (!atomic_load(&x->ticker_stop)) {
		struct lm_net_server_stats st;
		struct timespec d = { 0, 100 * 1000000L };

		lm_net_server_stats(x->srv, &st);
		pthread_mutex_lock(&x->label_lock);
		x->o->progress(x->label, st.precopy_pages - x->label_base,
			       x->label_total, x->o->progress_arg);
		pthread_mutex_unlock(&x->label_lock);
		nanosleep(&d, NULL);
	}
	return NULL;
}

/* What is going on now: total pages, counted from here. */
static void send__progress(struct send *x, const char *what, uint64_t total)
{
	struct lm_net_server_stats st;

	if (!x->o->progress)
		return;
	lm_net_server_stats(x->srv, &st);
	pthread_mutex_lock(&x->label_lock);
	snprintf(x->label, sizeof(x->label), "%s", what);
	x->label_base = st.precopy_pages;
	x->label_total = total;
	pthread_mutex_unlock(&x->label_lock);
	if (!x->ticker_started &&
	    pthread_create(&x->ticker, NULL, send__ticker, x) == 0)
		x->ticker_started = true;
}

static void send__ticker_stop(struct send *x)
{
	if (!x->ticker_started)
		return;
	atomic_store(&x->ticker_stop, true);
	pthread_join(x->ticker, NULL);
	x->ticker_started = false;
}

static void sleep_ms(unsigned ms)
{
	struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&d, NULL);
}

/* Pre-copy only makes sense once the guest is past its fill. */
static int send__wait_dirtying(struct send *x)
{
	uint64_t t_end = lm_now_ns() + (uint64_t)(x->o->timeout_ms ? x->o->timeout_ms : 60000) * 1000000ULL;

	for (;;) {
		unsigned n = 0;

		/* The mailboxes are only ours to read once the run has set
		 * them up and counted its vCPUs in (this load orders it). */
		bool counted = atomic_load(&x->vm->running) == x->vm->cfg.nr_vcpus;

		for (unsigned i = 0; i < x->vm->cfg.nr_vcpus && counted; i++)
			n += x->vm->vcpus[i].mb->phase == LM_PHASE_DIRTYING;
		if (n == x->vm->cfg.nr_vcpus)
			return 0;
		if (atomic_load(&x->run_over))
			return util_error(x->run_rc ? x->run_rc : -EIO,
					   "the VM stopped before migrating: %s",
					   x->run_rc ? x->run_msg : "its guest finished");
		if (lm_now_ns() > t_end)
			return util_error(-ETIMEDOUT, "the guest did not reach its dirtying loop (%u of %u vCPUs)",
					   n, x->vm->cfg.nr_vcpus);
		sleep_ms(1);
	}
}

/* Post-copy: only the reserved area goes ahead (RAM is not logged), so
 * that the pause only has to send what was written there since. */
static int send__precopy_reserved(struct send *x)
{
	uint64_t r0_words = x->vm->reserved_size / 4096 / 64;
	int rc = lm_vm_dirty_log_start(x->vm, false);

	if (rc)
		return rc;
	memset(x->scratch, 0, x->words * 8);
	memset(x->scratch, 0xff, r0_words * 8);
	send__progress(x, "pre-copy of the reserved area", r0_words * 64);
	rc = lm_net_server_precopy(x->srv, x->scratch);
	if (rc)
		return util_error(rc, "pre-copy of the reserved area: %s",
				   util_last_error());
	return 0;
}

/*
 * Rounds until the dirty set stops shrinking by a tenth, gets small
 * (a 1 MiB of pages), or the round limit. What the last fetch found
 * stays pending: it was re-armed in KVM, so it must be sent by the
 * pause or named as dirty.
 */
static int send__precopy(struct send *x)
{
	const struct lm_migrate_send_opts *o = x->o;
	unsigned max = o->max_rounds ? o->max_rounds : 8;
	uint64_t prev = UINT64_MAX, count;
	int rc;

	if (o->mode == LM_MIGRATE_POSTCOPY)
		return send__precopy_reserved(x);
	rc = lm_vm_dirty_log_start(x->vm, true);
	if (rc)
		return rc;
	send__progress(x, "pre-copy round 1", x->layout.nr_pages);
	rc = lm_net_server_precopy(x->srv, NULL);
	if (rc)
		return util_error(rc, "pre-copy round 1: %s", util_last_error());
	x->res->round_pages[0] = x->layout.nr_pages;
	x->res->rounds = 1;
	for (;;) {
		rc = lm_vm_dirty_log_fetch(x->vm, x->pending, &count);
		if (rc)
			return rc;
		if (x->res->rounds >= max || count <= 256 ||
		    count * 10 > prev * 9)
			return 0;
		char what[32];

		snprintf(what, sizeof(what), "pre-copy round %u", x->res->rounds + 1);
		send__progress(x, what, count);
		rc = lm_net_server_precopy(x->srv, x->pending);
		if (rc)
			return util_error(rc, "pre-copy round %u: %s",
					   x->res->rounds + 1, util_last_error());
		if (x->res->rounds < 16)
			x->res->round_pages[x->res->rounds] = count;
		x->res->rounds++;
		prev = count;
		memset(x->pending, 0, x->words * 8);
	}
}

static void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

/* What the pause sends (scratch) and leaves dirty (pending), per mode. */
static int send__final_sets(struct send *x)
{
	struct lm_vm *vm = x->vm;
	uint64_t r0_pages = vm->reserved_size / 4096, r0_words = r0_pages / 64;
	int rc;

	memset(x->scratch, 0, x->words * 8);
	/* pages written since the last fetch, on top of the pending ones
	 * (post-copy: of the reserved area; RAM was not logged) */
	rc = lm_vm_dirty_log_fetch(vm, x->scratch, NULL);
	if (rc)
		return rc;
	for (uint64_t w = 0; w < x->words; w++)
		x->pending[w] |= x->scratch[w];
	/* The VMM writes mailboxes and the shared page itself, which KVM's
	 * log does not see: always send them. */
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		bit_set(x->pending, LM_GPA_MAILBOX / 4096 + i);
	bit_set(x->pending, LM_GPA_SHARED / 4096);
	memcpy(x->scratch, x->pending, x->words * 8);
	if (x->o->mode != LM_MIGRATE_HYBRID) {
		memset(x->pending, 0, x->words * 8);
	} else {	/* the reserved area now, RAM later */
		memset(x->scratch + r0_words, 0, (x->words - r0_words) * 8);
		memset(x->pending, 0, r0_words * 8);
	}
	return 0;
}

/* The vCPUs' state, packed, and handed to the transport. */
static int send__switchover(struct send *x)
{
	unsigned n = x->vm->cfg.nr_vcpus;
	uint8_t *blobs[LM_MAX_VCPUS] = { 0 };
	uint32_t lens[LM_MAX_VCPUS];
	int rc = 0;

	for (unsigned i = 0; i < n && !rc; i++) {
		struct lm_snap_vcpu sv;

		rc = vcpu_state__to_snap(&x->vm->vcpus[i].saved, i, &sv);
		if (!rc)
			rc = vcpu_state__pack(&sv, &blobs[i], &lens[i]);
		vcpu_state__snap_free(&sv);
	}
	if (!rc) {
		rc = lm_net_server_switchover(x->srv, x->o->mode == LM_MIGRATE_HYBRID ?
					      x->pending : NULL, n,
					      (const void *const *)blobs, lens);
		if (rc)
			rc = util_error(rc, "switch-over: %s", util_last_error());
	}
	for (unsigned i = 0; i < n; i++)
		free(blobs[i]);
	return rc;
}

static void *send__cutter(void *arg)
{
	struct send *x = arg;
	uint64_t t_end = lm_now_ns() + x->o->cut_after_ms * 1000000ULL;

	while (lm_now_ns() < t_end && !atomic_load(&x->serving_over))
		sleep_ms(1);
	if (!atomic_load(&x->serving_over))
		lm_net_server_cut(x->srv);
	return NULL;
}

/* Pause, send what the pause must, switch over. The downtime. */
static int send__pause_and_switch(struct send *x)
{
	struct lm_migrate_send_result *res = x->res;
	unsigned timeout = x->o->timeout_ms ? x->o->timeout_ms : 10000;
	uint64_t count;
	int rc;

	res->t_pause_ns = lm_now_ns();
	rc = lm_vm_pause(x->vm, timeout);
	if (rc)
		return rc;
	pthread_join(x->runner, NULL);
	x->runner_started = false;
	if (x->run_rc)
		return util_error(x->run_rc, "the VM failed before the pause: %s",
				   x->run_msg);
	for (unsigned i = 0; i < x->vm->cfg.nr_vcpus; i++)
		if (!x->vm->vcpus[i].at_save)
			return util_error(-EIO, "vcpu %u finished before it could be paused", i);
	res->t_paused_ns = lm_now_ns();
	res->passes = x->vm->vcpus[0].mb->iterations;
	rc = send__final_sets(x);
	if (rc)
		return rc;
	count = lm_bitmap_weight(x->scratch, x->words);
	rc = lm_net_server_precopy(x->srv, x->scratch);
	if (rc)
		return util_error(rc, "sending the last dirty pages while paused: %s",
				   util_last_error());
	res->pages_final = count;
	res->pages_left = lm_bitmap_weight(x->pending, x->words);
	rc = send__switchover(x);
	res->t_switchover_ns = lm_now_ns();
	return rc;
}

static int send__serve(struct send *x)
{
	int rc;

	if (x->o->cut_after_ms) {
		rc = pthread_create(&x->cutter, NULL, send__cutter, x);
		if (rc)
			return util_error(-rc, "cut thread: %s", strerror(rc));
		x->cutter_started = true;
	}
	/* the line ends here: post-copy is the destination's to show */
	send__ticker_stop(x);
	if (x->o->progress)
		x->o->progress("post-copy", 0, 0, x->o->progress_arg);
	rc = lm_net_server_serve(x->srv);
	atomic_store(&x->serving_over, true);
	x->res->t_done_ns = lm_now_ns();
	if (rc)
		return util_error(rc, "post-copy: %s", util_last_error());
	return 0;
}

static void send__release(struct send *x)
{
	if (x->runner_started) {
		/* an error before the pause: stop the guest, it runs on */
		atomic_store(&x->vm->abort, true);
		lm_vm_pause(x->vm, 5000);
		pthread_join(x->runner, NULL);
	}
	if (x->cutter_started) {
		atomic_store(&x->serving_over, true);
		pthread_join(x->cutter, NULL);
	}
	send__ticker_stop(x);
	pthread_mutex_destroy(&x->label_lock);
	if (x->srv) {
		lm_net_server_stats(x->srv, &x->res->net);
		lm_net_server_destroy(x->srv);
	}
	lm_vm_destroy(x->vm);
	free(x->pending);
	free(x->scratch);
}

static int send__start(struct send *x, const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl)
{
	const struct lm_migrate_send_opts *o = x->o;
	struct lm_net_server_config sc = { 0 };
	int rc;

	if (cfg->delivery != LM_VM_LIMIT || cfg->fc_socket)
		return util_error(-EINVAL, "migrate: the source VM's memory must be plain (delivery limit), not %s",
				   lm_vm_delivery_name(cfg->delivery));
	if (cfg->backing == LM_BACKING_HUGETLB)
		return util_error(-EINVAL, "migrate: hugetlb-backed guests are not migrated (KVM logs dirty memory in 4 KiB pages)");
	if (wl->kind != LM_WL_MIGRATE)
		return util_error(-EINVAL, "migrate: workload %s: only 'migrate' dirties memory until it is stopped",
				   lm_workload_name(wl->kind));
	rc = lm_vm_migrate_layout(cfg->mem_size, cfg->guest_page_size, &x->layout);
	if (rc)
		return rc;
	rc = lm_vm_create(cfg, &x->vm);
	if (rc)
		return rc;
	x->words = (x->layout.nr_pages + 63) / 64;
	x->pending = calloc(x->words, 8);
	x->scratch = calloc(x->words, 8);
	if (!x->pending || !x->scratch)
		return util_error(-ENOMEM, "migrate: out of memory");
	sc.mem = x->vm->image;
	sc.layout = &x->layout;
	sc.to = o->to;
	sc.push = true;
	sc.compress = o->compress;
	sc.resume = o->resume;
	sc.resume_timeout_ms = o->resume_timeout_ms;
	sc.io_timeout_ms = (int)o->timeout_ms;
	sc.tls = o->tls;
	sc.insecure = o->insecure;
	rc = lm_net_server_create(&sc, &x->srv);
	if (!rc)
		rc = lm_net_server_connect(x->srv);
	if (rc)
		return util_error(rc, "migrate to %s: %s", o->to, util_last_error());
	x->wl = *wl;
	x->wl.stop_after_ms = 0;	/* the pause stops it, nothing else */
	rc = pthread_create(&x->runner, NULL, send__runner, x);
	if (rc)
		return util_error(-rc, "VM thread: %s", strerror(rc));
	x->runner_started = true;
	x->res->t_start_ns = lm_now_ns();
	return 0;
}

int lm_vm_migrate_send(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_migrate_send_opts *o,
		       struct lm_migrate_send_result *res)
{
	struct send x = { .o = o, .res = res };
	int rc;

	memset(res, 0, sizeof(*res));
	pthread_mutex_init(&x.label_lock, NULL);
	rc = send__start(&x, cfg, wl);
	if (!rc)
		rc = send__wait_dirtying(&x);
	if (!rc && o->warmup_ms)
		sleep_ms(o->warmup_ms);
	if (!rc)
		rc = send__precopy(&x);
	if (!rc)
		rc = send__pause_and_switch(&x);
	if (!rc)
		rc = send__serve(&x);
	send__release(&x);
	return rc;
}
