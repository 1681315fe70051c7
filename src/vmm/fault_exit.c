/*
 * fault_exit.c - the vCPU resolving its own fault: the exits that mean
 * "this page of guest RAM is missing" on a region in SIGBUS mode.
 *
 *   KVM_RUN -EFAULT, no info   native guest code (CPL 3, see vcpu.c) on
 *                              this backend: nothing has executed; find the
 *                              pages by decoding the instruction, install,
 *                              re-enter (fault_exit__efault, at the end).
 *   KVM_EXIT_MMIO inside RAM   this shadow-paging backend emulated the data
 *                              access and could not reach the page. Fetch
 *                              the page into staging, serve the access from
 *                              the staging copy, complete the instruction
 *                              with immediate_exit, then install the page.
 *   KVM_EXIT_MEMORY_FAULT      (-EFAULT; TDP hosts) nothing was started:
 *                              install the page and re-enter.
 *   KVM_EXIT_INTERNAL_ERROR    emulation failure on an instruction fetch
 *                              from a missing page: translate RIP with
 *                              KVM_TRANSLATE, install, re-enter.
 *
 * Why staging first: the access is emulated, so the page must not become
 * visible to other vCPUs while the instruction is half done, or an update
 * could be lost. Re-entering with kvm_run->immediate_exit = 1 completes the
 * pending operation without running another guest instruction; KVM_RUN
 * then returns -EINTR. A locked read-modify-write ends differently: after
 * its read is served, KVM gives up the emulation (KVM_EXIT_INTERNAL_ERROR,
 * emulation failure, RIP unchanged); once the page is installed the
 * instruction runs natively. Either way, only after that is the page
 * installed and the vCPU re-entered normally.
 *
 * None of this issues KVM_RUN: the run loop (vcpu.c) does. A handler that
 * needs KVM to finish the access, or to emulate one instruction at CPL 0,
 * sets the loop's step (v->step = LM_VCPU_COMPLETE, v->emulating) and
 * returns; the loop re-enters and hands the next exit back to
 * fault_exit__complete or fault_exit__emulated. The held page lives in the
 * vCPU (v->held) across those KVM_RUNs.
 *
 * The eager_commit experiment skips the completion step: the page is
 * installed right after the access is served and the next normal KVM_RUN
 * completes it. A load then returns the value the page had when it was
 * served, a store is in the page before anyone can see the page: both are
 * what the CPU could have done. A locked read-modify-write finishes with a
 * real cmpxchg on the now present page, which KVM retries if another vCPU
 * changed the word in between; an unlocked one is no more atomic than on
 * hardware. The lockinc test runs it too.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/vm.h"
#include "vmm/fault_exit.h"
#include "vmm/pagetable.h"
#include "vmm/x86_insn.h"

/* Claim the page holding gpa: ours to fill (owned) or already present. */
static int held__take(struct lm_vcpu *v, struct lm_vcpu_held *h, uint64_t gpa,
		      uint32_t len)
{
	struct lm_vm_ram *ram = &v->vm->ram;
	uint64_t off = gpa - LM_GPA_RAM;
	int rc;

	h->page = off & ~(ram->page_size - 1);
	if (off + len > h->page + ram->page_size)
		return vcpu__unexpected(v, "emulated access crosses a page of guest RAM");
	rc = lm_fault_begin(ram->region, h->page, LM_ORIGIN_VCPU, &h->f);
	if (rc < 0)
		return vcpu__fail(v, rc,
				  "guest RAM page at offset 0x%llx (gpa 0x%llx) cannot be fetched: %s",
				  (unsigned long long)h->page,
				  (unsigned long long)gpa, strerror(-rc));
	h->active = true;
	h->owned = rc == 1;
	if (h->owned)
		v->exits.mmio_owned++;
	else
		v->exits.mmio_present++;
	return 0;
}

/* Install an owned page and wake whoever waits on it. */
static int held__release(struct lm_vcpu *v, struct lm_vcpu_held *h)
{
	struct lm_vm_ram *ram = &v->vm->ram;
	int rc = 0;

	if (h->active && h->owned) {
		rc = lm_fault_commit(ram->region, &h->f);
		if (rc < 0)
			rc = vcpu__fail(v, rc,
					"installing guest RAM page at offset 0x%llx: %s",
					(unsigned long long)h->page,
					strerror(-rc));
	}
	h->active = false;
	return rc;
}

static void held__abandon(struct lm_vcpu *v, struct lm_vcpu_held *h, int err)
{
	if (h->active && h->owned)
		lm_fault_fail(v->vm->ram.region, &h->f, err);
	h->active = false;
}

/*
 * A present page is live: other vCPUs may access it, so the emulated
 * access is applied with one store or load of its own size, as the CPU
 * would have done it.
 */
static void mmio__serve_live(uint8_t *p, uint8_t *data, uint32_t len,
			     bool write)
{
	switch (len) {
#define LIVE(T) do {							\
		T x;							\
		if (write) {						\
			memcpy(&x, data, sizeof(x));			\
			__atomic_store_n((T *)(void *)p, x, __ATOMIC_SEQ_CST); \
		} else {						\
			x = __atomic_load_n((T *)(void *)p, __ATOMIC_SEQ_CST); \
			memcpy(data, &x, sizeof(x));			\
		}							\
	} while (0)
	case 1: LIVE(uint8_t); return;
	case 2: LIVE(uint16_t); return;
	case 4: LIVE(uint32_t); return;
	case 8: LIVE(uint64_t); return;
#undef LIVE
	}
	if (write)
		memcpy(p, data, len);
	else
		memcpy(data, p, len);
}

/* Serve run's pending MMIO access from the held page. */
static void held__serve(struct lm_vcpu *v, struct lm_vcpu_held *h)
{
	struct kvm_run *run = v->run;
	uint64_t off = run->mmio.phys_addr - LM_GPA_RAM;

	if (h->owned) {
		uint8_t *p = (uint8_t *)h->f.page + (off - h->page);

		if (run->mmio.is_write)
			memcpy(p, run->mmio.data, run->mmio.len);
		else
			memcpy(run->mmio.data, p, run->mmio.len);
	} else {
		mmio__serve_live((uint8_t *)v->vm->ram.host + off,
				 run->mmio.data, run->mmio.len,
				 run->mmio.is_write);
	}
}

/* The access is complete: install the held page; if the access was the
 * one instruction KVM emulated at CPL 0, back to the guest's own CPL. */
static int complete__done(struct lm_vcpu *v)
{
	int rc;

	v->step = LM_VCPU_RUN;
	rc = held__release(v, &v->held);
	if (rc || !v->emulating)
		return rc;
	v->emulating = false;
	return vcpu__set_cpl(v, LM_VCPU_CPL(v->vm));
}

/*
 * Finish the instruction whose access was just served, running no further
 * guest instruction: the run loop's completion step (LM_VCPU_COMPLETE)
 * re-enters with immediate_exit and brings each exit back here. An
 * instruction may make further accesses on the way (a read-modify-write,
 * a string op): from the same page they are served from the same copy;
 * from another page, the first page's part is done, so it is installed
 * before the next is claimed (never hold two pages, so two vCPUs can never
 * wait on each other).
 */
int fault_exit__complete(struct lm_vcpu *v, int err)
{
	struct lm_vcpu_held *h = &v->held;
	struct kvm_run *run = v->run;
	int rc = 0;

	if (err == EINTR)
		return complete__done(v);
	if (err) {
		rc = vcpu__fail(v, -err,
				"KVM_RUN completing an emulated access: %s",
				strerror(err));
		goto abandon;
	}
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
	    run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
		v->exits.locked_rmw++;	/* runs natively once installed */
		return complete__done(v);
	}
	if (run->exit_reason == KVM_EXIT_MMIO &&
	    lm_vm_gpa_in_ram(v->vm, run->mmio.phys_addr)) {
		uint64_t off = run->mmio.phys_addr - LM_GPA_RAM;

		v->exits.mmio_extra++;
		if ((off & ~(v->vm->ram.page_size - 1)) != h->page) {
			rc = held__release(v, h);
			if (!rc)
				rc = held__take(v, h, run->mmio.phys_addr,
						run->mmio.len);
			if (rc)
				goto abandon;
		}
		held__serve(v, h);
		return 0;		/* still completing */
	}
	rc = vcpu__unexpected(v, "unexpected exit while completing an emulated access");
abandon:
	v->step = LM_VCPU_RUN;
	held__abandon(v, h, rc);
	return rc;
}

int fault_exit__mmio(struct lm_vcpu *v)
{
	struct kvm_run *run = v->run;
	struct lm_vcpu_held *h = &v->held;
	int rc;

	if (!v->vm->ram.region)
		return vcpu__unexpected(v, "MMIO exit inside guest RAM, but RAM has no userfaultfd (limit)");
	v->exits.mmio_fault++;
	h->active = false;
	rc = held__take(v, h, run->mmio.phys_addr, run->mmio.len);
	if (rc)
		return rc;
	held__serve(v, h);
	if (v->vm->cfg.eager_commit)
		return held__release(v, h);
	/* The loop's next KVM_RUN completes the access (immediate_exit);
	 * its exit comes back to fault_exit__complete. */
	v->step = LM_VCPU_COMPLETE;
	return 0;
}

/* Fetch and install one page; 1 if this vCPU installed it, 0 if present. */
static int fault__install(struct lm_vcpu *v, uint64_t gpa)
{
	struct lm_vm_ram *ram = &v->vm->ram;
	uint64_t page = (gpa - LM_GPA_RAM) & ~(ram->page_size - 1);
	struct lm_fault f;
	/* A write to a page a live snapshot protects comes back as the
	 * same bare -EFAULT as a missing page: the page-state map tells
	 * them apart (0: saved if need be and un-protected, retry; 1: not
	 * a write-protect fault; always 1 without write_protect). */
	int rc = lm_wp_fault(ram->region, page, LM_ORIGIN_VCPU);

	if (rc == 0)
		return 1;
	if (rc == 1)
		rc = lm_fault_begin(ram->region, page, LM_ORIGIN_VCPU, &f);
	if (rc == 1) {
		rc = lm_fault_commit(ram->region, &f);
		if (rc == 0)
			rc = 1;
	}
	if (rc < 0)
		return vcpu__fail(v, rc,
				  "guest RAM page at offset 0x%llx (gpa 0x%llx): %s",
				  (unsigned long long)page,
				  (unsigned long long)gpa, strerror(-rc));
	return rc;
}

int fault_exit__memory_fault(struct lm_vcpu *v)
{
	const struct lm_kvm_memory_fault *mf =
		(const struct lm_kvm_memory_fault *)(const void *)&v->run->mmio;
	uint64_t psz = v->vm->ram.page_size;
	uint64_t end = mf->gpa + (mf->size ? mf->size : 1);

	if (!v->vm->ram.region || !lm_vm_gpa_in_ram(v->vm, mf->gpa) ||
	    !lm_vm_gpa_in_ram(v->vm, end - 1))
		return vcpu__unexpected(v, "memory fault outside lazily filled guest RAM");
	v->exits.memory_fault++;
	for (uint64_t gpa = mf->gpa & ~(psz - 1); gpa < end; gpa += psz) {
		int rc = fault__install(v, gpa);

		if (rc < 0)
			return rc;
	}
	return 0;
}

int fault_exit__fetch(struct lm_vcpu *v)
{
	struct kvm_regs regs;
	bool in_ram = false;
	int installed = 0;

	if (!v->vm->ram.region)
		return vcpu__unexpected(v, "emulation failure");
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return vcpu__fail(v, -errno, "KVM_GET_REGS: %s", strerror(errno));
	/* An instruction is at most 15 bytes: it may straddle two pages. */
	for (uint64_t la = regs.rip; la <= regs.rip + 15; la += 15) {
		struct kvm_translation t = { .linear_address = la };
		int rc;

		if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid ||
		    !lm_vm_gpa_in_ram(v->vm, t.physical_address))
			continue;
		in_ram = true;
		rc = fault__install(v, t.physical_address);
		if (rc < 0)
			return rc;
		installed += rc;
	}
	if (!in_ram)
		return vcpu__unexpected(v, "emulation failure not on an instruction in guest RAM");
	if (installed) {
		v->exits.fetch_fault++;
		v->fetch_repeats = 0;
		return 0;
	}
	/* Another vCPU may have installed the page since the exit: retry
	 * once, then call it what it is. */
	if (regs.rip != v->last_fetch_rip) {
		v->last_fetch_rip = regs.rip;
		v->fetch_repeats = 0;
	}
	if (++v->fetch_repeats >= 2)
		return vcpu__unexpected(v, "emulation failure on a present page of guest RAM");
	return 0;
}

/*
 * Bare -EFAULT: the native path. Guest code runs at CPL 3 (vcpu.c), where
 * this backend reports a missing page as KVM_RUN -EFAULT with no address,
 * before the instruction has done anything. Find the pages it needs (its
 * own bytes, and the operands x86_insn.c decodes), install them, and
 * re-enter: the instruction then runs natively, so there is no access to
 * complete and nothing half done for another vCPU to see.
 *
 * When the decoder cannot tell, or installs nothing twice at the same RIP,
 * KVM is made to emulate that instruction instead (efault__emulate), which
 * turns the fault into the MMIO-in-RAM exit above.
 */
static int efault__install_range(struct lm_vcpu *v, uint64_t la,
				 uint64_t len, int *installed)
{
	struct lm_vm *vm = v->vm;
	uint64_t psz = vm->ram.page_size;
	uint64_t last_page = UINT64_MAX;

	for (uint64_t a = la; a - la < len; a = (a | 4095) + 1) {
		uint64_t gpa;
		int rc;

		if (pagetable__walk(vm->reserved, vm->reserved_size, a, &gpa) ||
		    !lm_vm_gpa_in_ram(vm, gpa))
			continue;
		if (((gpa - LM_GPA_RAM) & ~(psz - 1)) == last_page)
			continue;
		last_page = (gpa - LM_GPA_RAM) & ~(psz - 1);
		rc = fault__install(v, gpa);
		if (rc < 0)
			return rc;
		*installed += rc;
	}
	return 0;
}

/* Copy the instruction bytes at la (its pages are present by now). */
static void efault__read_insn(struct lm_vcpu *v, uint64_t la, uint8_t *buf,
			      size_t len)
{
	struct lm_vm *vm = v->vm;

	for (size_t i = 0; i < len; i++) {
		uint64_t gpa;

		buf[i] = 0;
		if (pagetable__walk(vm->reserved, vm->reserved_size, la + i, &gpa))
			continue;
		if (gpa < vm->reserved_size)
			buf[i] = vm->reserved[gpa];
		else if (lm_vm_gpa_in_ram(vm, gpa))
			buf[i] = ((const uint8_t *)vm->ram.host)[gpa - LM_GPA_RAM];
	}
}

/*
 * The slow, general fallback: run the instruction at CPL 0, where this
 * backend emulates it, so that the missing page comes back as an MMIO exit
 * inside RAM with its address (or an emulation failure on a fetch), served
 * as above; then back to CPL 3. Measured at about 135 us per fault
 * (lazymem vm run --mem 64M --delivery exit with the decoder disabled),
 * against about 10 us with the decoder, hence only a fallback.
 */
static int efault__emulate(struct lm_vcpu *v)
{
	int rc;

	v->exits.efault_emulated++;
	rc = vcpu__set_cpl(v, 0);
	if (rc)
		return rc;
	/* The loop's next KVM_RUN runs the instruction at CPL 0; its exit
	 * comes back to fault_exit__emulated. */
	v->emulating = true;
	return 0;
}

int fault_exit__emulated(struct lm_vcpu *v, int err)
{
	struct kvm_run *run = v->run;
	int rc;

	if (!err && run->exit_reason == KVM_EXIT_MMIO &&
	    lm_vm_gpa_in_ram(v->vm, run->mmio.phys_addr)) {
		rc = fault_exit__mmio(v);
		/* completing: complete__done goes back to native */
		if (rc || v->step == LM_VCPU_COMPLETE)
			return rc;
	} else if (!err && run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
		   run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
		rc = fault_exit__fetch(v);
		if (rc)
			return rc;
	} else if (err == EFAULT && run->exit_reason != KVM_EXIT_MEMORY_FAULT) {
		return vcpu__unexpected(v, "-EFAULT again while KVM emulated the faulting instruction");
	} else {
		/* The page arrived meanwhile and the guest ran on to some
		 * other exit: back to native, then handle that exit. */
		v->emulating = false;
		rc = vcpu__set_cpl(v, LM_VCPU_CPL(v->vm));
		return rc ? rc : vcpu__exit(v, err);
	}
	v->emulating = false;
	return vcpu__set_cpl(v, LM_VCPU_CPL(v->vm));
}

int fault_exit__efault(struct lm_vcpu *v)
{
	struct x86_access acc;
	struct kvm_regs regs;
	uint8_t insn[15];
	uint64_t page;
	int installed = 0, n, rc;

	if (!v->vm->ram.region)
		return vcpu__unexpected(v, "KVM_RUN -EFAULT, but RAM has no userfaultfd (limit)");
	v->exits.efault++;
	if (v->vm->cfg.emulate_faults)
		return efault__emulate(v);
	if (v->sync_regs)
		regs = v->run->s.regs.regs;
	else if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return vcpu__fail(v, -errno, "KVM_GET_REGS: %s", strerror(errno));
	rc = efault__install_range(v, regs.rip, sizeof(insn), &installed);
	if (rc)
		return rc;
	efault__read_insn(v, regs.rip, insn, sizeof(insn));
	n = x86_insn_accesses(insn, sizeof(insn), &regs, &acc);
	if (n < 0)
		return efault__emulate(v);
	for (int i = 0; i < n; i++) {
		rc = efault__install_range(v, acc.addr[i], acc.size[i],
					   &installed);
		if (rc)
			return rc;
	}
	if (installed) {
		v->fetch_repeats = 0;
		return 0;
	}
	/* Nothing was missing: another vCPU may have installed the page
	 * since the exit (common when vCPUs race for the same pages). Retry;
	 * only the same fault twice in a row goes to KVM's emulator. */
	v->exits.efault_raced++;
	page = (n > 0 ? acc.addr[0] : regs.rip) & ~4095ULL;
	if (regs.rip != v->last_fetch_rip || page != v->last_fault_page) {
		v->last_fetch_rip = regs.rip;
		v->last_fault_page = page;
		v->fetch_repeats = 0;
	}
	if (++v->fetch_repeats >= 2)
		return efault__emulate(v);
	return 0;
}
