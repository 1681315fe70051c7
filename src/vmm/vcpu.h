/*
 * vcpu.h - a vCPU: its fd and kvm_run, its thread, and the run loop, the
 * one place KVM_RUN is issued (vcpu.c). The exit handlers (fault_exit.c,
 * dump.c) return to that loop; a step that needs KVM to run the vCPU
 * again in a special way (finish an emulated access, finish the last
 * instruction before a capture) is a state of the loop (v->step).
 */
#ifndef LAZYMEM_VMM_VCPU_H
#define LAZYMEM_VMM_VCPU_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "compat/linux_compat.h"
#include <linux/kvm.h>
#include "vmm/vcpu_state.h"

/* What the exit loop saw: every branch of it has a counter. */
struct lm_vm_exits {
	uint64_t io;			/* guest calls */
	uint64_t mmio_fault;		/* MMIO exit inside RAM */
	uint64_t mmio_owned;		/* ... this vCPU fetched the page */
	uint64_t mmio_present;		/* ... another vCPU had installed it */
	uint64_t mmio_extra;		/* further MMIO during completion */
	uint64_t locked_rmw;		/* completion ended in emulation failure */
	uint64_t memory_fault;		/* KVM_EXIT_MEMORY_FAULT */
	uint64_t fetch_fault;		/* emulation failure on a fetch */
	uint64_t efault;		/* bare -EFAULT (native access) */
	uint64_t efault_emulated;	/* ... undecoded: KVM emulated it */
	uint64_t efault_raced;		/* ... nothing missing any more: retried */
	uint64_t spurious;		/* -EINTR / -EAGAIN with nothing to do */
};

/* What the run loop's next KVM_RUN is for. */
enum lm_vcpu_step {
	LM_VCPU_RUN,		/* run the guest */
	LM_VCPU_COMPLETE,	/* finish an emulated access (immediate_exit;
				 * fault_exit.c holds the page) */
	LM_VCPU_CAPTURE,	/* finish the last exit's instruction
				 * (immediate_exit), then capture the state */
};

/* The page a vCPU serves an emulated access from, across the loop's
 * completion step (fault_exit.c). */
struct lm_vcpu_held {
	struct lm_fault f;
	uint64_t page;		/* region offset */
	bool active;
	bool owned;		/* lm_fault_begin gave us the page: commit it */
};

struct lm_vm;

struct lm_vcpu {
	struct lm_vm *vm;
	unsigned id;
	int fd;
	int cpu;			/* pinned CPU or -1 */
	struct kvm_run *run;
	bool sync_regs;			/* run->s.regs valid after each exit */
	pthread_t thread;
	bool started;
	struct lm_mailbox *mb;		/* host view of its mailbox */
	uint64_t t_start_ns, t_mark_ns, t_done_ns;
	uint64_t t_enter_ns;		/* first KVM_RUN of this run */
	bool at_save;			/* stopped at the save point */
	struct lm_vcpu_state saved;	/* ... and its state then */
	bool done;
	int err;			/* first error, -errno */
	char msg[256];			/* and what it was */
	/* loop guard: the same fault (RIP, and for a decoded -EFAULT the first
	 * linear page it touches) twice with nothing installed */
	uint64_t last_fetch_rip;
	uint64_t last_fault_page;
	unsigned fetch_repeats;
	struct lm_vm_exits exits;
	/* The loop's state between two KVM_RUNs (see enum lm_vcpu_step). */
	enum lm_vcpu_step step;
	unsigned capture_tries;		/* immediate_exit runs so far */
	bool capture_pause;		/* the capture is lm_vm_pause's */
	struct lm_vcpu_held held;	/* LM_VCPU_COMPLETE: the page */
	/* Running one instruction at CPL 0 for KVM to emulate (the -EFAULT
	 * fallback, fault_exit.c): the next exit is that instruction's. */
	bool emulating;
	/* Where a SIGBUS for a failed page (vcpu__ram_failed) ends up. */
	sigjmp_buf fail_jmp;
	/* Exits handled so far, for the watchdog (another thread). */
	atomic_uint_fast64_t heartbeat;
};

int vcpu__create(struct lm_vm *vm, struct lm_vcpu *v, unsigned id);
void vcpu__destroy(struct lm_vcpu *v);
int vcpu__reset(struct lm_vcpu *v);
/* Clear the per-run fields (timestamps, errors, counters), not the CPU. */
void vcpu__clear(struct lm_vcpu *v);
int vcpu__set_cpl(struct lm_vcpu *v, unsigned cpl);
#define LM_VCPU_CPL(vm) ((vm)->cfg.guest_cpl0 ? 0u : 3u)
/* One exit of KVM_RUN (err: its errno or 0): 0 re-enter, 1 done, -errno. */
int vcpu__exit(struct lm_vcpu *v, int err);
void *vcpu__thread(void *arg);
/* The region's on_fail: a vCPU thread touched a page that failed (KVM
 * raises SIGBUS for the poisoned page); fail that vCPU with the page's
 * address instead of aborting the process. */
void vcpu__ram_failed(struct lm_region *r, uint64_t off, int err, void *arg);
int vcpu__fail(struct lm_vcpu *v, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* dump.c: print the vCPU's exit and registers; vcpu__unexpected also
 * fails the vCPU with why (-EIO unless an error is already recorded). */
void vcpu__dump(struct lm_vcpu *v, const char *why);
int vcpu__unexpected(struct lm_vcpu *v, const char *why);

#endif
