/*
 * vcpu.c - a vCPU: creation, the 64-bit register state it starts in, its
 * thread, and the exit loop.
 *
 * The exit loop is one switch over exit reasons, and the only place
 * KVM_RUN is issued (vcpu__enter). Three exits mean "a page of guest RAM
 * is missing" and go to fault_exit.c, which returns to the loop: when KVM
 * must run the vCPU again to finish an emulated access, or emulate one
 * instruction at CPL 0, that is a step of the loop (v->step, v->emulating)
 * and the next exit goes back to fault_exit.c. Port I/O is the guest
 * calling the VMM; the save point and lm_vm_pause capture the vCPU's state
 * in the loop's capture step and call the features' hooks (vm.h). An exit
 * nobody can attribute goes to the features' exit hooks, then ends in
 * vcpu__unexpected(), which dumps the registers and fails the run.
 * Nothing loops or waits forever.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/fault_exit.h"

int vcpu__fail(struct lm_vcpu *v, int err, const char *fmt, ...)
{
	va_list ap;

	if (v->err)
		return v->err;
	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
	v->err = err < 0 ? err : -EIO;
	return v->err;
}

/* CPUID as KVM supports it, with this vCPU's APIC ID filled in. */
static int vcpu__set_cpuid(struct lm_vcpu *v)
{
	const struct kvm_cpuid2 *src = v->vm->cpuid;
	size_t sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	int rc = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, src, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffffu) | (v->id << 24);
		else if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		rc = util_error(-errno, "vcpu %u: KVM_SET_CPUID2: %s", v->id,
				 strerror(errno));
	free(c);
	return rc;
}

int vcpu__create(struct lm_vm *vm, struct lm_vcpu *v, unsigned id)
{
	void *run;

	v->vm = vm;
	v->id = id;
	v->cpu = vm->cfg.pin_vcpus ? vm->cpus[id % vm->nr_cpus] : -1;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return util_error(-errno, "vcpu %u: KVM_CREATE_VCPU: %s", id,
				   strerror(errno));
	run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return util_error(-errno, "vcpu %u: mmap kvm_run: %s", id,
				   strerror(errno));
	v->run = run;
	/* Have KVM store the registers into kvm_run on every exit: the
	 * -EFAULT path needs them, and a KVM_GET_REGS costs a full
	 * vcpu_load/put on this nested host (MSR reads that trap). */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) &
	    KVM_SYNC_X86_REGS) {
		v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
		v->sync_regs = true;
	}
	v->mb = (struct lm_mailbox *)(void *)(vm->reserved + LM_GPA_MAILBOX +
				      (uint64_t)id * 4096);
	return vcpu__set_cpuid(v);
}

void vcpu__destroy(struct lm_vcpu *v)
{
	vcpu_state__free(&v->saved);
	if (v->run)
		munmap(v->run, (size_t)v->vm->run_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

/* Switch the vCPU between CPL 3 (native here) and CPL 0 (emulated). */
int vcpu__set_cpl(struct lm_vcpu *v, unsigned cpl)
{
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return vcpu__fail(v, -errno, "KVM_GET_SREGS: %s", strerror(errno));
	s.cs.dpl = s.ss.dpl = s.ds.dpl = s.es.dpl = s.fs.dpl = s.gs.dpl =
		(uint8_t)cpl;
	s.cs.selector = (uint16_t)((s.cs.selector & ~3) | cpl);
	s.ss.selector = (uint16_t)((s.ss.selector & ~3) | cpl);
	s.ds.selector = s.es.selector = s.fs.selector = s.gs.selector =
		s.ss.selector;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return vcpu__fail(v, -errno, "KVM_SET_SREGS: %s", strerror(errno));
	return 0;
}

static void seg64(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code,
		  unsigned cpl)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
	s->dpl = (uint8_t)cpl;
}

/*
 * Long mode, paging on, at the image's entry with RDI = mailbox, at CPL 3
 * (or CPL 0 with guest_cpl 0, to reproduce an emulated guest).
 * Why user mode: on this backend (kvm-pvm) guest code at CPL 0 outside
 * PVM's guest-kernel address range is emulated instruction by instruction.
 * Measured with a 10M-iteration register add loop: 26 s at CPL 0, 3 ms at
 * CPL 3. Port I/O at CPL 3 is allowed by the TSS I/O bitmap (vm.c); IOPL
 * in RFLAGS is not honoured here.
 */
void vcpu__clear(struct lm_vcpu *v)
{
	v->t_start_ns = v->t_mark_ns = v->t_done_ns = v->t_enter_ns = 0;
	v->done = false;
	v->at_save = false;
	v->err = 0;
	v->msg[0] = '\0';
	v->last_fetch_rip = 0;
	v->last_fault_page = UINT64_MAX;
	v->fetch_repeats = 0;
	memset(&v->exits, 0, sizeof(v->exits));
	v->step = LM_VCPU_RUN;
	v->capture_tries = 0;
	v->capture_pause = false;
	v->held.active = false;
	v->emulating = false;
	atomic_store(&v->heartbeat, 0);
}

int vcpu__reset(struct lm_vcpu *v)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return util_error(-errno, "vcpu %u: KVM_GET_SREGS: %s", v->id,
				   strerror(errno));
	seg64(&sregs.cs, (uint16_t)(0x08 | LM_VCPU_CPL(v->vm)), 0xb, true,
	      LM_VCPU_CPL(v->vm));
	seg64(&sregs.ds, (uint16_t)(0x10 | LM_VCPU_CPL(v->vm)), 0x3, false,
	      LM_VCPU_CPL(v->vm));
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = LM_GPA_TSS;
	sregs.tr.limit = 0x68 + LM_PORT_CALL / 8 + 2;
	sregs.tr.selector = 0x18;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.gdt.base = LM_GPA_GDT;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.cr3 = LM_GPA_PGTABLE;
	sregs.cr4 = 0x20 | 0x200 | 0x400;	/* PAE, OSFXSR, OSXMMEXCPT */
	sregs.cr0 = 0x80050033;			/* PG, AM, WP, NE, ET, MP, PE */
	sregs.efer = 0x500;			/* LMA, LME */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_SREGS: %s", v->id,
				   strerror(errno));

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = LM_GPA_CODE;
	regs.rsp = LM_GPA_STACKS + (v->id + 1) * LM_STACK_SIZE - 8;
	regs.rdi = LM_GPA_MAILBOX + (uint64_t)v->id * 4096;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return util_error(-errno, "vcpu %u: KVM_SET_REGS: %s", v->id,
				   strerror(errno));
	vcpu__clear(v);
	return 0;
}

/*
 * Capture this vCPU's state between two exits: KVM finishes the last
 * exit's instruction only on the next KVM_RUN, so the loop first re-enters
 * with immediate_exit (the capture step) and captures when that returns
 * -EINTR. pause: lm_vm_pause asked, not the guest's save point.
 */
static void vcpu__begin_capture(struct lm_vcpu *v, bool pause)
{
	v->step = LM_VCPU_CAPTURE;
	v->capture_tries = 0;
	v->capture_pause = pause;
}

/* The exit of an immediate_exit run in the capture step. KVM answers it
 * with -EINTR once nothing is pending; anything else is run again, up to
 * 8 times. The vCPU stops here: 1, or -errno. */
static int vcpu__capture_step(struct lm_vcpu *v, int err)
{
	int rc;

	if (err != EINTR) {
		if (++v->capture_tries < 8)
			return 0;
		v->step = LM_VCPU_RUN;
		return vcpu__fail(v, -EIO, "save point: KVM_RUN with immediate_exit did not return EINTR");
	}
	v->step = LM_VCPU_RUN;
	rc = vcpu_state__capture(v);
	if (rc)
		return rc;
	v->t_done_ns = lm_now_ns();
	v->done = true;
	if (v->capture_pause) {
		vm__hooks_paused(v);
		return 1;
	}
	rc = vm__hooks_save_point(v);
	return rc ? rc : 1;
}

/* The guest calling the VMM: 1 when the vCPU is done, 0 to go on. */
static int vcpu__guest_call(struct lm_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct lm_vm *vm = v->vm;
	struct lm_mailbox *mb = v->mb;
	uint32_t nr;

	if (run->io.port != LM_PORT_CALL || run->io.direction != KVM_EXIT_IO_OUT ||
	    run->io.size != 4 || run->io.count != 1)
		return vcpu__unexpected(v, "port I/O the guest ABI does not define");
	memcpy(&nr, (uint8_t *)run + run->io.data_offset, 4);
	v->exits.io++;
	switch (nr) {
	case LM_CALL_START: {
		uint_fast64_t zero = 0;

		v->t_start_ns = lm_now_ns();
		atomic_compare_exchange_strong(&vm->cpu_t0, &zero,
					       lm_process_cpu_ns());
		return 0;
	}
	case LM_CALL_MARK: {
		unsigned n = atomic_fetch_add(&vm->marked, 1) + 1;

		v->t_mark_ns = lm_now_ns();
		uint_fast64_t cpu = lm_process_cpu_ns(),
			      old = atomic_load(&vm->cpu_t1);
		while (old < cpu &&
		       !atomic_compare_exchange_weak(&vm->cpu_t1, &old, cpu))
			;
		/* A CPL-0 guest is emulated here: only its measured part
		 * runs so; verification runs natively. */
		if (vm->cfg.guest_cpl0) {
			int rc = vcpu__set_cpl(v, 3);

			if (rc)
				return rc;
		}
		/* counter: vCPU 0 counts until every other vCPU is done. */
		if (vm->wl.kind == LM_WL_COUNTER && v->id != 0 &&
		    n == vm->cfg.nr_vcpus - 1)
			vm->vcpus[0].mb->stop = 1;
		return 0;
	}
	case LM_CALL_PING:
		return 0;
	case LM_CALL_SAVE:
		/* The save point: a no-op unless this run saves. The state is
		 * captured once KVM has finished this OUT (the loop's capture
		 * step), then the save_point hooks run and the vCPU stops. */
		if (!vm->cfg.save_point)
			return 0;
		vcpu__begin_capture(v, false);
		return 0;
	case LM_CALL_DONE:
		v->t_done_ns = lm_now_ns();
		v->done = true;
		return 1;
	case LM_CALL_FAIL:
		return vcpu__fail(v, -EIO,
				  "guest failed (code %llu) at 0x%llx: expected 0x%llx, got 0x%llx",
				  (unsigned long long)mb->fail_code,
				  (unsigned long long)mb->fail_addr,
				  (unsigned long long)mb->fail_expected,
				  (unsigned long long)mb->fail_got);
	}
	return vcpu__unexpected(v, "unknown guest call number");
}

/* An exit the VMM cannot attribute: the features' exit hooks first, then
 * the one place that dumps the vCPU and fails it. */
static int vcpu__unattributed(struct lm_vcpu *v, const char *why)
{
	int rc = vm__hooks_exit(v);

	if (rc != -ENOENT)
		return rc;
	return vcpu__unexpected(v, why);
}

/* One exit: 0 to re-enter, 1 when the guest is done, -errno to stop. */
int vcpu__exit(struct lm_vcpu *v, int err)
{
	struct kvm_run *run = v->run;

	/* An exit that ends a step of the loop goes back to that step's
	 * owner, not through the switch. */
	if (v->step == LM_VCPU_COMPLETE)
		return fault_exit__complete(v, err);
	if (v->step == LM_VCPU_CAPTURE)
		return vcpu__capture_step(v, err);
	if (v->emulating)
		return fault_exit__emulated(v, err);
	if (err) {
		if (err == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT)
			return fault_exit__memory_fault(v);
		if (err == EFAULT)
			return fault_exit__efault(v);
		if (err == EINTR || err == EAGAIN) {
			v->exits.spurious++;
			return 0;
		}
		char why[96];

		snprintf(why, sizeof(why), "KVM_RUN failed: %s", strerror(err));
		vcpu__unexpected(v, why);
		return v->err = -err;
	}

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return vcpu__guest_call(v);
	case KVM_EXIT_MMIO:
		if (lm_vm_gpa_in_ram(v->vm, run->mmio.phys_addr))
			return fault_exit__mmio(v);
		return vcpu__unattributed(v, "MMIO outside guest RAM (this VM has no devices)");
	case KVM_EXIT_INTERNAL_ERROR:
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
			return fault_exit__fetch(v);
		return vcpu__unattributed(v, "internal error");
	case KVM_EXIT_MEMORY_FAULT:
		return fault_exit__memory_fault(v);
	case KVM_EXIT_SHUTDOWN:
		return vcpu__unexpected(v, "shutdown (a guest exception: there is no IDT)");
	case KVM_EXIT_HLT:
		return vcpu__unexpected(v, "guest halted before reporting done");
	case KVM_EXIT_FAIL_ENTRY:
		return vcpu__unexpected(v, "entry failed");
	default:
		return vcpu__unattributed(v, "exit reason the VMM does not handle");
	}
}

static __thread struct lm_vcpu *this_vcpu;

/*
 * Runs in the core's SIGBUS handler. A page that failed (a corrupt
 * snapshot page, say, failed by the background fill before this vCPU got
 * to it) is poisoned; KVM answers a guest access to it with SIGBUS on the
 * vCPU thread, delivered as KVM_RUN returns to user space, so jumping back
 * to the exit loop leaves nothing half done. Any other thread: return, and
 * the core aborts with the page's offset.
 */
void vcpu__ram_failed(struct lm_region *r, uint64_t off, int err, void *arg)
{
	struct lm_vcpu *v = this_vcpu;

	uint64_t first_off;
	int first = lm_region_error(r, &first_off);

	(void)arg;
	if (!v)
		return;
	if (first && first_off == off)
		err = first;	/* why it failed, not just that it did */
	vcpu__fail(v, err, "guest RAM page at offset 0x%llx (gpa 0x%llx) failed: %s",
		   (unsigned long long)off,
		   (unsigned long long)(LM_GPA_RAM + off),
		   err == -EBADMSG ? "its content fails the integrity check"
				   : strerror(-err));
	siglongjmp(v->fail_jmp, 1);
}

/*
 * The one KVM_RUN of the VMM, called only by the loop below. Every step
 * but running the guest re-enters with immediate_exit: KVM completes what
 * the last exit left pending (an emulated access, an OUT) and returns
 * -EINTR without running another guest instruction. Returns the errno of
 * KVM_RUN, or 0 for an exit.
 */
static int vcpu__enter(struct lm_vcpu *v)
{
	int rc;

	v->run->immediate_exit = v->step != LM_VCPU_RUN;
	rc = ioctl(v->fd, KVM_RUN, 0);
	v->run->immediate_exit = 0;
	return rc < 0 ? errno : 0;
}

void *vcpu__thread(void *arg)
{
	struct lm_vcpu *v = arg;
	struct lm_vm *vm = v->vm;

	if (v->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(v->cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	this_vcpu = v;
	if (sigsetjmp(v->fail_jmp, 1))
		goto out;	/* vcpu__ram_failed: v->err says which page */
	for (;;) {
		int rc, err;

		/* Between steps only: a step in progress (an emulated access
		 * holding a page, an instruction at CPL 0, a capture) is
		 * finished first, so nothing is left claimed or half done. */
		if (v->step == LM_VCPU_RUN && !v->emulating) {
			if (atomic_load(&vm->abort)) {
				vcpu__fail(v, -ETIMEDOUT, "stopped by the watchdog");
				break;
			}
			/* lm_vm_pause: stop here, between two exits, with the
			 * state captured for a migration. */
			if (atomic_load(&vm->pause))
				vcpu__begin_capture(v, true);
		}
		if (!v->t_enter_ns)
			v->t_enter_ns = lm_now_ns();
		err = vcpu__enter(v);
		rc = vcpu__exit(v, err);
		atomic_fetch_add_explicit(&v->heartbeat, 1, memory_order_relaxed);
		if (rc)
			break;
	}
out:
	this_vcpu = NULL;
	pthread_mutex_lock(&vm->lock);
	atomic_fetch_sub(&vm->running, 1);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}
