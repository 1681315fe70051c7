/*
 * recv.c - the destination of a live migration: listen, build the
 * VM the source describes (same layout, or the handshake is refused),
 * take pre-copy pages straight into guest RAM's page cache, and at the
 * switch-over restore the vCPUs and run them at once. From then on a
 * vCPU that touches a page that is not here resolves the fault on its own
 * thread: the exit comes back to it, it asks the source over its own
 * urgent connection and installs the page (delivery exit; hybrid adds
 * the VMM's blocking view). Pages received in pre-copy and not dirtied
 * since need no transfer, only UFFDIO_CONTINUE. The rest is pushed.
 *
 * Guest RAM: a memfd region in SIGBUS mode over the transport's page
 * source for layout region 1, whose pre-copy store is the region's alias
 * (the page cache). The reserved area (region 0): the VM's own memslot 0,
 * an eager store, complete before any vCPU runs.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lazymem/snapshot.h>

#include "util/clock.h"
#include "util/error.h"
#include "migrate/migrate.h"

/* A helper thread of the destination, and what it ended with. */
struct recv_task {
	pthread_t thread;
	bool running;
	atomic_bool stop;	/* watcher: the guest is done, time out;
				 * settler: stop now */
	int rc;
	char msg[512];
};

struct recv {
	const struct lm_migrate_recv_opts *o;
	struct lm_migrate_recv_result *res;
	struct lm_net_layout layout;
	struct lm_net_dest *dest;
	struct lm_vm *vm;
	/* From the switch-over on: the completion watcher, and the settler
	 * that maps pre-copied pages ahead of the guest. */
	struct recv_task watcher, settler;
	atomic_bool abandon;		/* the run failed: stop now */
};

static int recv__timeout(const struct recv *x)
{
	return x->o->timeout_ms ? (int)x->o->timeout_ms : -1;
}

static int recv__listen(struct recv *x)
{
	const struct lm_migrate_recv_opts *o = x->o;
	struct lm_net_dest_config dc = { 0 };
	int rc;

	rc = lm_vm_migrate_layout(o->mem_size, o->guest_page_size, &x->layout);
	if (rc)
		return rc;
	dc.listen = o->listen;
	dc.layout = &x->layout;
	/* one urgent connection per vCPU, plus one for the VMM's own reads
	 * (its check of guest RAM faults like a vCPU) */
	dc.nr_urgent = o->nr_vcpus + 1;
	dc.hold = o->hold;
	dc.hold_timeout_ms = o->hold_timeout_ms;
	dc.req_timeout_ms = o->req_timeout_ms;
	dc.tls = o->tls;
	dc.insecure = o->insecure;
	rc = lm_net_dest_create(&dc, &x->dest);
	if (rc)
		return util_error(rc, "listening on %s: %s", o->listen,
				   util_last_error());
	return 0;
}

static int recv__create_vm(struct recv *x)
{
	const struct lm_migrate_recv_opts *o = x->o;
	struct lm_vm_config cfg = { 0 };
	int rc;

	cfg.mem_size = o->mem_size;
	cfg.nr_vcpus = o->nr_vcpus;
	cfg.guest_page_size = o->guest_page_size;
	cfg.backing = LM_BACKING_MEMFD;
	cfg.delivery = o->delivery == LM_VM_HYBRID ? LM_VM_HYBRID : LM_VM_EXIT;
	cfg.thp = o->thp;
	cfg.ram_source = lm_net_dest_region_source(x->dest, 1);
	cfg.restoring = true;	/* the reserved area comes from the source */
	rc = lm_vm_create(&cfg, &x->vm);
	if (rc)
		return rc;
	if (x->vm->reserved_size != x->layout.region_size[0])
		return util_error(-EINVAL, "reserved area: %llu bytes, the layout says %llu",
				   (unsigned long long)x->vm->reserved_size,
				   (unsigned long long)x->layout.region_size[0]);
	rc = lm_net_dest_set_region_store(x->dest, 0, x->vm->reserved);
	if (!rc)
		rc = lm_net_dest_set_region_store(x->dest, 1,
						  lm_region_alias(x->vm->ram.region));
	if (!rc)
		rc = lm_net_dest_attach_region(x->dest, 1, x->vm->ram.region);
	if (!rc)
		rc = lm_net_dest_start(x->dest);
	if (rc)
		return util_error(rc, "migration destination: %s", util_last_error());
	return 0;
}

/* Report pre-copy progress while waiting for the switch-over. */
static int recv__wait_switchover(struct recv *x)
{
	int left = recv__timeout(x), rc;

	for (;;) {
		struct lm_net_dest_stats st;
		int step = left < 0 || left > 200 ? 200 : left;

		rc = lm_net_dest_wait_switchover(x->dest, step);
		if (rc != -ETIMEDOUT)
			break;
		if (x->o->cancel && atomic_load(x->o->cancel))
			return util_error(-ECANCELED, "the source gave up before the switch-over");
		if (left >= 0 && (left -= step) <= 0)
			break;
		lm_net_dest_stats(x->dest, &st);
		if (st.sessions && !x->res->t_up_ns)
			x->res->t_up_ns = lm_now_ns();
		if (x->o->progress)
			x->o->progress("pre-copy", st.precopy_pages,
				       x->layout.nr_pages, x->o->progress_arg);
	}
	if (rc == -ETIMEDOUT)
		return util_error(rc, "no switch-over from the source within %u ms",
				   x->o->timeout_ms);
	if (rc)
		return util_error(rc, "the source went away before the switch-over: %s",
				   lm_net_dest_last_error(x->dest));
	return 0;
}

/* The mailboxes arrived in the reserved area: are they this VM's? */
static int recv__check_mailboxes(struct recv *x)
{
	uint64_t slice = x->o->mem_size / x->o->nr_vcpus;

	for (unsigned i = 0; i < x->o->nr_vcpus; i++) {
		const struct lm_mailbox *mb = x->vm->vcpus[i].mb;

		if (mb->workload != LM_WL_MIGRATE || mb->vcpu != i ||
		    mb->nr_vcpus != x->o->nr_vcpus || mb->slice_off != slice * i ||
		    mb->slice_size != slice || mb->ram_size != x->o->mem_size ||
		    mb->phase != LM_PHASE_DIRTYING)
			return util_error(-EINVAL, "vcpu %u's mailbox as received (workload %llu, phase %llu, vcpu %llu of %llu, slice 0x%llx+0x%llx) is not that of a migrating %u-vCPU, %llu-byte VM",
					   i, (unsigned long long)mb->workload,
					   (unsigned long long)mb->phase,
					   (unsigned long long)mb->vcpu,
					   (unsigned long long)mb->nr_vcpus,
					   (unsigned long long)mb->slice_off,
					   (unsigned long long)mb->slice_size,
					   x->o->nr_vcpus,
					   (unsigned long long)x->o->mem_size);
	}
	return 0;
}

static int recv__restore_vcpus(struct recv *x)
{
	for (unsigned i = 0; i < x->o->nr_vcpus; i++) {
		struct lm_snap_vcpu sv;
		uint32_t len = 0;
		const uint8_t *blob = lm_net_dest_vcpu(x->dest, i, &len);
		char why[256];
		int rc;

		if (!blob)
			return util_error(-EPROTO, "the source sent no state for vcpu %u", i);
		rc = vcpu_state__unpack(blob, len, i, &sv, why, sizeof(why));
		if (rc)
			return util_error(rc, "the source's %s", why);
		rc = vcpu_state__apply(&x->vm->vcpus[i], &sv);
		vcpu_state__snap_free(&sv);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Poll done(x) every 1 ms: true once it holds; false when the run was
 * abandoned, or when the guest is done and the timeout has passed since
 * (the watcher's error then says what did not happen, and the transport's
 * last word on why).
 */
static bool recv__poll(struct recv *x, bool (*done)(struct recv *), int err,
		       const char *what)
{
	int left = recv__timeout(x);

	while (!done(x)) {
		struct timespec d = { 0, 1000000L };

		if (atomic_load(&x->abandon))
			return false;
		if (atomic_load(&x->watcher.stop) && left >= 0 && (left -= 1) <= 0) {
			x->watcher.rc = err;
			snprintf(x->watcher.msg, sizeof(x->watcher.msg),
				 "%s: %s", what, lm_net_dest_last_error(x->dest));
			return false;
		}
		nanosleep(&d, NULL);
	}
	return true;
}

static bool recv__all_here(struct recv *x)
{
	return lm_net_dest_region_complete(x->dest, 1);
}

/* The link may be down just now (a cut the source is resuming from): the
 * DONE waits for it, as long as the guest may run. */
static bool recv__told_done(struct recv *x)
{
	return lm_net_dest_finish(x->dest) == 0;
}

/*
 * Every page here (received, or valid in the page cache): DONE, so the
 * source may go, as soon as it is true, while the guest runs on. Polled:
 * the transport has no completion event, and 1 ms is noise against a
 * post-copy of seconds.
 */
static void *recv__watch(void *arg)
{
	struct recv *x = arg;
	char what[96];

	snprintf(what, sizeof(what),
		 "guest RAM still incomplete %u ms after the guest finished",
		 x->o->timeout_ms);
	if (!recv__poll(x, recv__all_here, -ETIMEDOUT, what))
		return NULL;
	x->res->t_complete_ns = lm_now_ns();
	recv__poll(x, recv__told_done, -EPIPE, "telling the source it may go");
	return NULL;
}

static int recv__task_start(struct recv *x, struct recv_task *t,
			    void *(*fn)(void *), const char *what)
{
	int rc = pthread_create(&t->thread, NULL, fn, x);

	if (rc)
		return util_error(-rc, "%s thread: %s", what, strerror(rc));
	t->running = true;
	return 0;
}

/* Tell it to stop (as its stop flag means) and wait for it. */
static void recv__task_stop(struct recv_task *t)
{
	if (!t->running)
		return;
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	t->running = false;
}

/* The same, passing on its error. */
static int recv__task_join(struct recv_task *t)
{
	recv__task_stop(t);
	return t->rc ? util_error(t->rc, "%s", t->msg) : 0;
}

/*
 * Pages received in pre-copy and still valid are in the page cache but not
 * mapped: left alone, the guest's first touch of each would cost a vCPU
 * exit and a UFFDIO_CONTINUE (6-7 s of a 1 GiB hybrid run, all of RAM).
 * This thread maps them in runs of 64 with one CONTINUE each, at idle
 * priority, so that it only uses CPU nobody else wants.
 */
static void *recv__settle(void *arg)
{
	struct recv *x = arg;
	struct sched_param sp = { .sched_priority = 0 };

	sched_setscheduler(0, SCHED_IDLE, &sp);
	x->settler.rc = lm_net_dest_install_stored(x->dest, 1, &x->settler.stop,
						   &x->res->pages_settled);
	if (x->settler.rc)
		snprintf(x->settler.msg, sizeof(x->settler.msg), "%s",
			 util_last_error());
	return NULL;
}

static int recv__run(struct recv *x)
{
	struct lm_migrate_recv_result *res = x->res;
	struct lm_vm_workload wl = { 0 };
	uint64_t first = UINT64_MAX;
	int rc;

	if (!lm_net_dest_region_complete(x->dest, 0))
		return util_error(-EPROTO, "switch-over with the reserved area incomplete: the source did not send all of it");
	rc = recv__check_mailboxes(x);
	if (!rc)
		rc = recv__restore_vcpus(x);
	if (rc)
		return rc;
	if (x->o->progress)
		x->o->progress("switch-over", x->o->nr_vcpus, 0,
			       x->o->progress_arg);
	wl.kind = LM_WL_MIGRATE;
	wl.timeout_ms = x->o->timeout_ms;
	wl.stop_after_ms = x->o->run_ms ? x->o->run_ms : 1;
	rc = recv__task_start(x, &x->watcher, recv__watch, "completion");
	if (!rc)
		rc = recv__task_start(x, &x->settler, recv__settle, "settle");
	if (rc)
		return rc;
	rc = lm_vm_resume(x->vm, &wl, &res->run);
	for (unsigned i = 0; i < x->o->nr_vcpus; i++) {
		uint64_t t = x->vm->vcpus[i].t_enter_ns;

		if (t && t < first)
			first = t;
	}
	res->t_resume_ns = first == UINT64_MAX ? 0 : first;
	/* The source's copy is the only one left of what is missing here:
	 * a vCPU that could not get a page means the VM is lost. */
	if (rc && lm_net_dest_last_error(x->dest)[0])
		return util_error(rc, "the migration cannot complete: %s (transport: %s)",
				   util_last_error(),
				   lm_net_dest_last_error(x->dest));
	if (rc)
		return util_error(rc, "the migration cannot complete: %s",
				   util_last_error());
	res->passes = x->vm->vcpus[0].mb->iterations;
	rc = recv__task_join(&x->watcher);
	if (!rc)
		rc = recv__task_join(&x->settler);
	if (rc)
		return rc;
	lm_vm_host_check(x->vm, &res->run);
	lm_region_stats(x->vm->ram.region, &res->run.stats);
	res->run.have_stats = true;
	res->run.verified = res->run.words_checked > 0 &&
			    res->run.mismatches == 0 &&
			    res->run.host_mismatches == 0;
	return 0;
}

int lm_vm_migrate_recv(const struct lm_migrate_recv_opts *o,
		       struct lm_migrate_recv_result *res)
{
	struct recv x = { .o = o, .res = res };
	int rc;

	memset(res, 0, sizeof(*res));
	if (o->delivery != LM_VM_EXIT && o->delivery != LM_VM_HYBRID)
		return util_error(-EINVAL, "migrate recv: delivery %s: vCPU faults are resolved on the vCPU (exit or hybrid)",
				   lm_vm_delivery_name(o->delivery));
	rc = recv__listen(&x);
	if (!rc)
		rc = recv__create_vm(&x);
	if (!rc && o->listening)
		o->listening(lm_net_dest_address(x.dest), o->listening_arg);
	if (!rc)
		rc = recv__wait_switchover(&x);
	if (!rc) {
		res->t_switchover_ns = lm_now_ns();
		if (!res->t_up_ns)
			res->t_up_ns = res->t_switchover_ns;
		rc = recv__run(&x);
	}
	if (rc && x.dest)
		lm_net_dest_abort(x.dest, rc, util_last_error());
	/* after a failed run: nothing will complete (its error stands) */
	atomic_store(&x.abandon, true);
	recv__task_stop(&x.watcher);
	recv__task_stop(&x.settler);
	/* The transport first: its receiver may still be returning from
	 * the install that completed the region (and counting it). */
	if (x.dest) {
		lm_net_dest_stop(x.dest);
		lm_net_dest_stats(x.dest, &res->net);
	}
	lm_net_dest_destroy(x.dest);
	lm_vm_destroy(x.vm);
	return rc;
}
