/*
 * run.c - one run of a guest workload: load the image into the reserved
 * area, fill each vCPU's mailbox with its slice of RAM, start the vCPU
 * threads, watch for progress, and collect timing, exit counters and the
 * verify result (the guest's own, plus a sample the VMM reads itself).
 *
 * The watchdog is what makes "never a hang" true: if no vCPU makes progress
 * for timeout_ms, every vCPU is kicked out of KVM_RUN with a signal and
 * the run fails with -ETIMEDOUT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/error.h"
#include "vmm/guest_image.h"
#include "vmm/vm.h"

#define KICK_SIGNAL SIGUSR1

static void kick__handler(int sig)
{
	(void)sig;	/* only interrupts KVM_RUN */
}

static void kick__install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick__handler;	/* no SA_RESTART: KVM_RUN -> EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
}

static void run__fill_mailbox(struct lm_vm *vm, struct lm_vcpu *v,
			      const struct lm_vm_workload *wl)
{
	struct lm_mailbox *mb = v->mb;
	uint64_t slice = vm->ram.size / vm->cfg.nr_vcpus;

	memset(mb, 0, 4096);
	mb->workload = wl->kind;
	mb->vcpu = v->id;
	mb->nr_vcpus = vm->cfg.nr_vcpus;
	mb->ram_base = LM_GPA_RAM;
	mb->ram_size = vm->ram.size;
	mb->slice_off = slice * v->id;
	mb->slice_size = slice;
	mb->stride = vm->ram.page_size;
	/* limit RAM starts zero-filled (generation 0), except for the
	 * workloads that write their own content first (restore, migrate:
	 * a migration of mostly zero pages would prove little) */
	mb->gen = vm->cfg.delivery == LM_VM_LIMIT && wl->kind != LM_WL_RESTORE &&
		  wl->kind != LM_WL_MIGRATE ? 0 : vm->cfg.gen;
	mb->write = wl->write;
	mb->iterations = wl->iterations;
	mb->seed = wl->seed % (slice / vm->ram.page_size);
	mb->stos_len = wl->stos_len & ~7ULL;
	mb->shared = LM_GPA_SHARED;
	mb->ws_pages = wl->ws_pages;
}

/* Sum of everything that moves while a guest makes progress: exits the
 * vCPU threads handled, and the guests' own counters (guest memory). */
static uint64_t run__progress(struct lm_vm *vm)
{
	uint64_t p = 0;

	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		struct lm_vcpu *v = &vm->vcpus[i];
		const volatile struct lm_mailbox *mb = v->mb;

		p += mb->progress + mb->checked +
		     atomic_load_explicit(&v->heartbeat, memory_order_relaxed);
	}
	return p;
}

/* Interrupt every vCPU thread's KVM_RUN (owner thread only). A thread
 * that has exited but is not joined yet may still be signalled.
 * immediate_exit is not touched here: the vCPU thread owns it. */
static void run__kick(struct lm_vm *vm)
{
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		if (vm->vcpus[i].started)
			pthread_kill(vm->vcpus[i].thread, KICK_SIGNAL);
}

/* The watchdog's wake-up: every 200 ms, or earlier for a stop time. */
static void run__sleep(struct lm_vm *vm, uint64_t wake_ns)
{
	uint64_t now = lm_now_ns(), d = 200 * 1000000ULL;
	struct timespec ts;

	if (wake_ns > now && wake_ns - now < d)
		d = wake_ns - now;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(d / 1000000000ULL);
	ts.tv_nsec += (long)(d % 1000000000ULL);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
}

static void run__stop_guests(struct lm_vm *vm)
{
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		vm->vcpus[i].mb->stop = 1;
}

static int run__watch(struct lm_vm *vm, unsigned timeout_ms,
		      unsigned stop_after_ms)
{
	uint64_t last = run__progress(vm), last_ns = lm_now_ns();
	uint64_t stop_ns = stop_after_ms ?
			   last_ns + stop_after_ms * 1000000ULL : 0;
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	while (atomic_load(&vm->running) > 0) {
		uint64_t p;

		/*
		 * Pausing: a signal only interrupts KVM_RUN if the vCPU is
		 * inside it, and one that lands just before the thread
		 * enters is lost; so kick every 100 us until each vCPU has
		 * seen the flag. Downtime runs meanwhile: never wait blind.
		 */
		if (atomic_load(&vm->pause)) {
			run__kick(vm);
			run__sleep(vm, lm_now_ns() + 100 * 1000);
			continue;
		}
		run__sleep(vm, stop_ns);
		if (stop_ns && lm_now_ns() >= stop_ns) {
			run__stop_guests(vm);
			stop_ns = 0;
		}
		p = run__progress(vm);
		if (p != last) {
			last = p;
			last_ns = lm_now_ns();
		} else if (timeout_ms &&
			   lm_now_ns() - last_ns > timeout_ms * 1000000ULL) {
			rc = util_error(-ETIMEDOUT,
					 "no progress for %u ms: %u vCPUs still running",
					 timeout_ms, atomic_load(&vm->running));
			break;
		}
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/* Stop every vCPU that is still in the guest. */
static void run__kick_all(struct lm_vm *vm)
{
	atomic_store(&vm->abort, true);
	for (int tries = 0; tries < 50 && atomic_load(&vm->running); tries++) {
		run__kick(vm);
		struct timespec d = { 0, 100 * 1000000L };
		nanosleep(&d, NULL);
	}
	if (atomic_load(&vm->running)) {
		/* A vCPU that ignores signals is stuck in the kernel: the
		 * process cannot free its VM. Fail loudly, never hang. */
		fprintf(stderr, "lazymem: %u vCPUs stuck in KVM_RUN after the watchdog fired; aborting\n",
			atomic_load(&vm->running));
		abort();
	}
}

/*
 * Called from another thread: the watchdog (the thread that owns and
 * joins the vCPU threads) does the kicking, see run__watch. Waits for the
 * vCPUs to stop.
 */
int lm_vm_pause(struct lm_vm *vm, unsigned timeout_ms)
{
	uint64_t t_end = lm_now_ns() + timeout_ms * 1000000ULL;
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause, true);
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->running) > 0 && !rc) {
		struct timespec ts;

		if (lm_now_ns() > t_end) {
			rc = util_error(-ETIMEDOUT, "pause: %u vCPUs still running after %u ms",
					 atomic_load(&vm->running), timeout_ms);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/*
 * The VMM's own accesses: the last word of sampled pages, read through the
 * VMM's view of RAM (the blocking MINOR mapping in hybrid mode; the
 * registered mapping otherwise, resolved by handler threads or the SIGBUS
 * path). The last word is one no workload writes, except stos.
 */
void lm_vm_host_check(struct lm_vm *vm, struct lm_vm_result *res)
{
	uint64_t psz = vm->ram.page_size, pages = vm->ram.size / psz;
	uint64_t step = pages > 1024 ? pages / 1024 : 1;
	uint64_t slice = vm->ram.size / vm->cfg.nr_vcpus;
	/* the generation the guest checks against (mailbox 0's) */
	uint64_t gen = vm->vcpus[0].mb->gen;

	for (uint64_t i = 0; i < pages; i += step) {
		uint64_t off = i * psz + psz - 8;
		const volatile uint64_t *w =
			(const volatile uint64_t *)(void *)((uint8_t *)vm->ram.vmm_view + off);

		if (vm->wl.kind == LM_WL_STOS &&
		    off % slice < (vm->wl.stos_len & ~7ULL))
			continue;
		res->host_checked++;
		if (*w != lm_pattern(off, gen))
			res->host_mismatches++;
	}
}

static void run__collect(struct lm_vm *vm, struct lm_vm_result *res,
			 uint64_t t0)
{
	uint64_t first = UINT64_MAX, last = 0, done = 0;

	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		struct lm_vcpu *v = &vm->vcpus[i];
		struct lm_mailbox *mb = v->mb;
		bool counter = vm->wl.kind == LM_WL_COUNTER && i == 0;
		uint64_t *dst = (uint64_t *)&res->exits;
		const uint64_t *src = (const uint64_t *)&v->exits;

		for (size_t k = 0; k < sizeof(res->exits) / 8; k++)
			dst[k] += src[k];
		if (counter) {
			res->counter = mb->counter;
			res->counter_seconds =
				(double)(v->t_mark_ns - v->t_start_ns) / 1e9;
		} else if (v->t_start_ns && v->t_mark_ns) {
			if (v->t_start_ns < first)
				first = v->t_start_ns;
			if (v->t_mark_ns > last)
				last = v->t_mark_ns;
		}
		if (v->t_done_ns > done)
			done = v->t_done_ns;
		res->pages += mb->touched;
		res->words_checked += mb->checked;
		if (mb->mismatches && !res->mismatches) {
			res->first_bad_gpa = mb->fail_addr;
			res->first_expected = mb->fail_expected;
			res->first_got = mb->fail_got;
		}
		res->mismatches += mb->mismatches;
	}
	res->seconds = last > first ? (double)(last - first) / 1e9 : 0;
	if (atomic_load(&vm->cpu_t1) > atomic_load(&vm->cpu_t0))
		res->cpu_seconds = (double)(atomic_load(&vm->cpu_t1) -
					    atomic_load(&vm->cpu_t0)) / 1e9;
	res->total_seconds = done > t0 ? (double)(done - t0) / 1e9 : 0;
	if (vm->ram.region) {
		lm_region_stats(vm->ram.region, &res->stats);
		res->have_stats = true;
	}
}

static int run__go(struct lm_vm *vm, struct lm_vm_result *res);

int lm_vm_run(struct lm_vm *vm, const struct lm_vm_workload *wl,
	      struct lm_vm_result *res)
{
	const struct lm_guest_image *img = lm_guest_image_find(lm_workload_name(wl->kind));
	unsigned n = vm->cfg.nr_vcpus;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!img)
		return util_error(-ENOENT, "no guest image for workload %d",
				   wl->kind);
	if (img->size > LM_CODE_MAX)
		return util_error(-E2BIG, "guest image %s is %zu bytes, the code area %llu",
				   img->name, img->size,
				   (unsigned long long)LM_CODE_MAX);
	if (wl->kind == LM_WL_COUNTER && n < 2)
		return util_error(-EINVAL, "workload counter needs at least 2 vCPUs (vCPU 0 counts while the others touch)");
	vm->wl = *wl;
	memset(vm->reserved + LM_GPA_CODE, 0, LM_CODE_MAX);
	memcpy(vm->reserved + LM_GPA_CODE, img->data, img->size);
	memset(vm->reserved + LM_GPA_SHARED, 0, 4096);
	for (unsigned i = 0; i < n; i++) {
		run__fill_mailbox(vm, &vm->vcpus[i], wl);
		rc = vcpu__reset(&vm->vcpus[i]);
		if (rc)
			return rc;
	}
	rc = run__go(vm, res);
	if (rc)
		return rc;
	lm_vm_host_check(vm, res);
	if (vm->ram.region) {
		lm_region_stats(vm->ram.region, &res->stats);
		res->have_stats = true;
	}
	res->verified = res->words_checked > 0 && res->mismatches == 0 &&
			res->host_mismatches == 0;
	return 0;
}

int lm_vm_resume(struct lm_vm *vm, const struct lm_vm_workload *wl,
		 struct lm_vm_result *res)
{
	memset(res, 0, sizeof(*res));
	vm->wl = *wl;
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		vcpu__clear(&vm->vcpus[i]);
		vm__hooks_resumed(&vm->vcpus[i]);
	}
	return run__go(vm, res);
}

/* Start the vCPU threads, watch them, join them, collect. */
static int run__go(struct lm_vm *vm, struct lm_vm_result *res)
{
	const struct lm_vm_workload *wl = &vm->wl;
	unsigned n = vm->cfg.nr_vcpus;
	uint64_t t0;
	int rc = 0;

	kick__install();
	atomic_store(&vm->running, n);
	atomic_store(&vm->marked, 0);
	atomic_store(&vm->abort, false);
	atomic_store(&vm->pause, false);
	atomic_store(&vm->cpu_t0, 0);
	atomic_store(&vm->cpu_t1, 0);

	t0 = lm_now_ns();
	for (unsigned i = 0; i < n; i++) {
		struct lm_vcpu *v = &vm->vcpus[i];
		int err = pthread_create(&v->thread, NULL, vcpu__thread, v);

		if (err) {
			rc = util_error(-err, "vcpu %u: pthread_create: %s", i,
					 strerror(err));
			atomic_fetch_sub(&vm->running, n - i);
			break;
		}
		v->started = true;
	}
	if (!rc)
		rc = run__watch(vm, wl->timeout_ms, wl->stop_after_ms);
	if (rc)
		run__kick_all(vm);
	for (unsigned i = 0; i < n; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
		vm->vcpus[i].started = false;
	}

	for (unsigned i = 0; i < n && !rc; i++) {
		struct lm_vcpu *v = &vm->vcpus[i];

		if (v->err)
			rc = util_error(v->err, "vcpu %u: %s", i, v->msg);
		else if (!v->done)
			rc = util_error(-EIO, "vcpu %u stopped without reporting done", i);
	}
	/* With background fill the run ends when every page is in, so the
	 * statistics account for each page exactly once. */
	if (!rc && vm->cfg.background && vm->ram.region) {
		rc = lm_region_wait_complete(vm->ram.region,
					     wl->timeout_ms ? (int)wl->timeout_ms : -1);
		uint64_t off = 0;

		if (rc && rc != -ETIMEDOUT && lm_region_error(vm->ram.region, &off))
			rc = util_error(rc, "background fill: guest RAM page at offset 0x%llx (gpa 0x%llx) failed: %s",
					 (unsigned long long)off,
					 (unsigned long long)(LM_GPA_RAM + off),
					 rc == -EBADMSG ? "its content fails the integrity check"
							: strerror(-rc));
		else if (rc)
			rc = util_error(rc, "background fill did not complete: %s",
					 strerror(-rc));
	}
	run__collect(vm, res, t0);
	return rc;
}
