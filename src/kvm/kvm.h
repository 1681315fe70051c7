/*
 * kvm.h - the VMM's internal interface: a VM with one lazily filled RAM
 * memslot, its vCPUs, and one run of a guest workload on them.
 *
 * The objects live one per file, kvmtool-style:
 *   vm.c          /dev/kvm, the VM, memslots, reserved area, CPUID
 *   ram.c         guest RAM: a plain mapping (limit) or a lazymem region
 *   pattern.c     the page source whose content the guests verify
 *   pagetable.c   the x86-64 page tables the VMM builds for the guest
 *   vcpu.c        vCPU set-up, threads and the exit loop
 *   fault_exit.c  the exits that mean "a guest RAM page is missing"
 *   x86_insn.c    which memory a faulting instruction touches
 *   run.c         one run: load the image, start, watch, collect
 *   dump.c        the one place an unexpected exit ends up
 *   guest_image.c the embedded guest workloads (guest/, guest_abi.h)
 * The core (src/core) knows nothing of KVM; everything here calls into it
 * through the public headers only.
 */
#ifndef LAZYMEM_KVM_H
#define LAZYMEM_KVM_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "compat/linux_compat.h"
#include "fcproto/client.h"
#include "kvm/guest_abi.h"
#include "util/bits.h"
#include "util/clock.h"
#include "util/error.h"

/* How guest RAM is filled. */
enum lm_vm_delivery {
	LM_VM_LIMIT,	/* no userfaultfd: the kernel zero-fills */
	LM_VM_HANDLER,	/* blocking MISSING, handler threads, UFFDIO_COPY */
	LM_VM_MINOR,	/* memfd, blocking MINOR, write + UFFDIO_CONTINUE */
	LM_VM_EXIT,	/* SIGBUS mode: the vCPU resolves its own exit */
	LM_VM_HYBRID,	/* EXIT for vCPUs + blocking MINOR VMM view */
	LM_VM_DELIVERY_COUNT
};

/* Where the handler threads run relative to the vCPUs. */
enum lm_vm_placement {
	LM_PLACE_ANY,		/* nothing pinned */
	LM_PLACE_SAME_CPU,	/* handler j on vCPU j's CPU */
	LM_PLACE_OTHER_CPU,	/* handlers on CPUs with no vCPU */
};

struct lm_vm_config {
	uint64_t mem_size;		/* guest RAM bytes */
	unsigned nr_vcpus;
	enum lm_backing backing;
	enum lm_vm_delivery delivery;
	enum lm_vm_placement placement;
	bool pin_vcpus;			/* vCPU i on allowed CPU i % n */
	uint64_t guest_page_size;	/* 4 KiB or 2 MiB guest page tables */
	uint64_t gen;			/* source generation; 0 = zero source */
	/* Borrowed: where guest RAM comes from instead of the pattern of
	 * generation gen (a snapshot, a migration peer). gen still tells the
	 * guest which content to expect. */
	struct lm_source *ram_source;
	/* Hand guest RAM to a Firecracker-style page-fault handler listening
	 * here instead of serving it ourselves: RAM is mapped, registered
	 * and announced exactly as Firecracker does (src/fcproto/client.c), and
	 * vCPU faults sleep in the kernel until the handler resolves them.
	 * delivery must be handler (what the vCPUs see is the same). */
	const char *fc_socket;
	bool code_source;		/* pages begin with fetch code */
	/* false (default): guest code runs at CPL 3, natively. true: at
	 * CPL 0, as the kernel's own KVM demand-paging test runs it, which
	 * this backend emulates; faults then arrive as MMIO-in-RAM exits.
	 * Verification after MARK always runs at CPL 3. */
	bool guest_cpl0;
	/* Experiment: after serving an MMIO-in-RAM access from staging,
	 * install the page at once and let the next normal KVM_RUN complete
	 * the access, instead of completing it first with immediate_exit
	 * (fault_exit.c says why that is still safe). Saves one KVM_RUN. */
	bool eager_commit;
	/* Resolve every bare -EFAULT by having KVM emulate the instruction
	 * (MMIO-in-RAM exits, completed with immediate_exit) instead of
	 * decoding it: slower, but it exercises that protocol. */
	bool emulate_faults;
	/* The region's fault-around (lazymem/region.h): every demand fault
	 * also installs up to this many pages in all. 0 or 1: off. */
	unsigned fault_around;
	/* The region's background fill streams every missing page in while
	 * the guest runs (lazy restore, post-copy push). */
	bool background;
	/* Stop each vCPU at the workload's save point (LM_CALL_SAVE) with its
	 * state captured, so the VM can be saved (snapvm.c). */
	bool save_point;
	/* The reserved area will be filled from a snapshot: do not build
	 * descriptor and page tables into it. */
	bool restoring;
	/* Test aid: the source fails reads of the page at this RAM offset. */
	bool fail_page;
	uint64_t fail_off;
};

struct lm_vm_workload {
	enum lm_workload kind;
	bool write;
	uint64_t iterations;
	uint64_t seed;
	uint64_t stos_len;
	unsigned timeout_ms;		/* no progress for this long: fail */
	uint64_t ws_pages;		/* restore: pages per vCPU after the save
					 * point; migrate: its hot set */
	/* Set every vCPU's mailbox stop flag this long after the run
	 * starts (0: never): how long a workload that loops until stopped
	 * (counter, migrate) runs. */
	unsigned stop_after_ms;
};

/* A vCPU's state as captured at the save point (snapvm.c). */
struct lm_vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	/* saved only where KVM supports them (have_*): XSAVE area, XCRs,
	 * pending events (exception, interrupt shadow, NMI) */
	struct kvm_xsave *xsave;	/* allocated: the struct ends in a
					 * flexible array in newer headers */
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	bool have_xsave, have_xcrs, have_events;
	struct kvm_msrs *msrs;		/* with its entries */
	size_t msrs_len;
	struct kvm_cpuid2 *cpuid;	/* with its entries */
	size_t cpuid_len;
};

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

struct lm_vm_result {
	double seconds;		/* measured part: first START to last MARK */
	double cpu_seconds;	/* CPU time of the whole process (vCPUs and
				 * handler threads) in that window: immune to
				 * other load on a shared machine */
	double total_seconds;	/* vCPU threads start to last DONE */
	uint64_t pages;		/* pages touched in the measured part */
	uint64_t words_checked;
	uint64_t mismatches;
	uint64_t first_bad_gpa, first_expected, first_got;
	uint64_t counter;	/* counter workload: vCPU 0's iterations */
	double counter_seconds;
	uint64_t host_checked;	/* pages the VMM sampled itself */
	uint64_t host_mismatches;
	bool verified;		/* guest and host checks ran and passed */
	struct lm_vm_exits exits;
	bool have_stats;
	struct lm_stats stats;	/* the region's own counters */
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
	/* Where a SIGBUS for a failed page (vcpu__ram_failed) ends up. */
	sigjmp_buf fail_jmp;
	/* Exits handled so far, for the watchdog (another thread). */
	atomic_uint_fast64_t heartbeat;
};

struct lm_vm_ram {
	enum lm_vm_delivery delivery;
	uint64_t size;
	uint64_t page_size;		/* region / backing page size */
	void *host;			/* what KVM maps: the registered mapping */
	void *vmm_view;			/* where the VMM itself reads */
	int memfd;			/* limit with memfd/hugetlb backing */
	struct lm_region *region;	/* NULL for limit */
	struct lm_source *source;
	struct lm_source *failing;	/* wraps source when fail_page */
	struct fc_guest fc;		/* fc_socket: the hand-off, or mem NULL */
	uint8_t *at;			/* plain RAM goes here (vm__map_image) */
};

struct lm_vm {
	struct lm_vm_config cfg;
	int kvm_fd;
	int vm_fd;
	int run_size;
	struct kvm_cpuid2 *cpuid;
	uint8_t *reserved;		/* host view of memslot 0 */
	uint64_t reserved_size;
	/* Plain RAM only: the reserved area and RAM as one range (RAM at
	 * image + reserved_size), what a migration sends; else NULL. */
	uint8_t *image;
	bool dirty_log_ram;		/* dirty_log.c: RAM's slot logged too */
	struct lm_vm_ram ram;
	struct lm_vcpu *vcpus;
	unsigned nr_cpus;		/* CPUs this process may run on */
	int cpus[256];
	int handler_cpus[256];
	unsigned nr_handlers;		/* handler threads (not limit) */
	/* run state */
	atomic_uint running;		/* vCPUs not yet DONE or failed */
	atomic_uint marked;		/* vCPUs past MARK */
	atomic_bool abort;
	atomic_bool pause;		/* lm_vm_pause: capture and stop */
	/* process CPU time (ns) at the first START and the last MARK */
	atomic_uint_fast64_t cpu_t0, cpu_t1;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lm_vm_workload wl;
};

/* vm.c */
int lm_vm_create(const struct lm_vm_config *cfg, struct lm_vm **out);
/* The reserved area's size for this much RAM (memslot 0, a snapshot's
 * region 0, a migration layout's first region). */
uint64_t lm_vm_reserved_size(uint64_t mem_size, uint64_t guest_page_size);
void lm_vm_destroy(struct lm_vm *vm);
static inline bool lm_vm_gpa_in_ram(const struct lm_vm *vm, uint64_t gpa)
{
	return gpa >= LM_GPA_RAM && gpa - LM_GPA_RAM < vm->ram.size;
}
const char *lm_vm_delivery_name(enum lm_vm_delivery d);
int lm_vm_delivery_parse(const char *s, enum lm_vm_delivery *out);
const char *lm_vm_placement_name(enum lm_vm_placement p);
const char *lm_workload_name(enum lm_workload w);
int lm_workload_parse(const char *s, enum lm_workload *out);

/* ram.c */
int ram__create(struct lm_vm *vm);
void ram__destroy(struct lm_vm_ram *ram);

/* pattern.c */
int pattern_source__create(uint64_t size, uint64_t gen, uint64_t stride,
			   bool code, struct lm_source **out);

/* pagetable.c */
uint64_t pagetable__size(uint64_t ram_size, uint64_t guest_page_size);
void pagetable__build(uint8_t *reserved, uint64_t ram_size,
		      uint64_t guest_page_size, uint64_t reserved_size);
/* Guest-linear to guest-physical through the tables built above (the
 * guest never changes CR3), without an ioctl. 0 or -EFAULT. */
int pagetable__walk(const uint8_t *reserved, uint64_t reserved_size,
		    uint64_t la, uint64_t *gpa);

/* vcpu.c */
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

/* fault_exit.c */
int fault_exit__mmio(struct lm_vcpu *v);
int fault_exit__memory_fault(struct lm_vcpu *v);
int fault_exit__fetch(struct lm_vcpu *v);
int fault_exit__efault(struct lm_vcpu *v);

/* dump.c: print the vCPU's exit and registers; vcpu__unexpected also
 * fails the vCPU with why (-EIO unless an error is already recorded). */
void vcpu__dump(struct lm_vcpu *v, const char *why);
int vcpu__unexpected(struct lm_vcpu *v, const char *why);

/* run.c */
int lm_vm_run(struct lm_vm *vm, const struct lm_vm_workload *wl,
	      struct lm_vm_result *res);
/* Run vCPUs whose state and memory were restored (no image load, no
 * reset, mailboxes as they are); the VMM's own sample check is left to
 * the caller (lm_vm_host_check) so that it can read statistics first. */
int lm_vm_resume(struct lm_vm *vm, const struct lm_vm_workload *wl,
		 struct lm_vm_result *res);
void lm_vm_host_check(struct lm_vm *vm, struct lm_vm_result *res);
/* From another thread while lm_vm_run or lm_vm_resume runs: stop every
 * vCPU between two exits with its state captured (v->saved, at_save),
 * as at a save point; that run then returns 0. 0 once all have stopped,
 * or -ETIMEDOUT. */
int lm_vm_pause(struct lm_vm *vm, unsigned timeout_ms);

/* snapvm.c: save at the save point, restore lazily or eagerly. */
int vcpu__capture(struct lm_vcpu *v);
void vcpu__state_free(struct lm_vcpu_state *st);
int lm_vm_save(struct lm_vm *vm, const char *dir,
	       void (*progress)(uint64_t done, uint64_t total, void *arg),
	       void *arg);

enum lm_restore_mode {
	LM_RESTORE_LAZY,	/* resume at once, RAM on demand */
	LM_RESTORE_EAGER,	/* read all RAM, then resume (the baseline) */
	LM_RESTORE_LIMIT,	/* as eager, but the clock starts once RAM is in */
};

struct lm_restore_opts {
	const char *dir;
	enum lm_restore_mode mode;
	enum lm_vm_delivery delivery;	/* lazy: exit, hybrid, handler, minor */
	bool background;		/* lazy: background fill */
	double ws_fraction;		/* > 0: working set, a fraction of RAM,
					 * instead of the saved one */
	const char *record_ws;		/* write the pages touched here */
	const char *prefetch;		/* install these pages ahead */
	unsigned timeout_ms;
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
};

struct lm_restore_result {
	struct lm_vm_result run;
	unsigned nr_vcpus;
	uint64_t mem_size, ws_pages;
	double first_instruction_ms;	/* restore call -> first KVM_RUN */
	double seconds;			/* restore call -> last vCPU done */
	uint64_t pages_faulted;		/* installed on a vCPU's demand */
	uint64_t pages_prefetched;
	double prefetch_seconds;	/* the prefetch thread's whole pass */
	bool prefetch_image;		/* it read the working-set image */
	uint64_t ws_recorded;
	uint64_t ws_loaded;
};

int lm_vm_restore(const struct lm_restore_opts *o,
		  struct lm_restore_result *res);

/* dirty_log.c: pages written since the last fetch, over the layout
 * (reserved area, then RAM; 4 KiB pages). fetch re-arms what it read.
 * Logging stays on for the VM's life: a migrated VM never runs again. */
/* ram false: the reserved area only (a post-copy migration pre-copies
 * only that); RAM's bits then read as clean. */
int lm_vm_dirty_log_start(struct lm_vm *vm, bool ram);
int lm_vm_dirty_log_fetch(struct lm_vm *vm, uint64_t *bitmap,
			  uint64_t *count);

/* vcpu_state.c: a vCPU's state as the snapshot format's named blobs. */
struct lm_snap_vcpu;
#define VCPU_STATE_MAX 65536	/* packed, at most: one VCPU message */
int vcpu_state__to_snap(const struct lm_vcpu_state *st, unsigned id,
			struct lm_snap_vcpu *sv);
void vcpu_state__snap_free(struct lm_snap_vcpu *sv);
/* Every blob a resume needs, each of its size: 0, or -EINVAL and why. */
int vcpu_state__check(const struct lm_snap_vcpu *sv, char *why, size_t n);
int vcpu_state__apply(struct lm_vcpu *v, const struct lm_snap_vcpu *sv);
int vcpu_state__pack(const struct lm_snap_vcpu *sv, uint8_t **buf,
		     uint32_t *len);
/* From a peer: 0 with sv filled and checked, or -EINVAL and why. */
int vcpu_state__unpack(const uint8_t *buf, uint32_t len, unsigned id,
		       struct lm_snap_vcpu *sv, char *why, size_t n);

#endif
