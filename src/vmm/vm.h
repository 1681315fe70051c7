/*
 * vm.h - the VMM: a VM with one lazily filled RAM memslot, its vCPUs, and
 * one run of a guest workload on them. The objects live one per file,
 * kvmtool-style, each with its header:
 *   vm.[ch]          /dev/kvm, the VM, memslots, reserved area, CPUID,
 *                    the hooks features register
 *   ram.[ch]         guest RAM: a plain mapping (limit), a lazymem region,
 *                    or memory handed to an fc-handler
 *   pattern.[ch]     the page source whose content the guests verify
 *   pagetable.[ch]   the x86-64 page tables the VMM builds for the guest
 *   vcpu.[ch]        vCPU set-up, threads and the run loop (the one KVM_RUN)
 *   fault_exit.[ch]  the exits that mean "a guest RAM page is missing"
 *   x86_insn.[ch]    which memory a faulting instruction touches
 *   run.[ch]         one run: load the image, start, watch, collect, pause
 *   dump.c           the one place an unexpected exit ends up (vcpu.h)
 *   guest_image.[ch] the embedded guest workloads (guest/, guest_abi.h)
 *   dirty_log.[ch]   KVM's dirty log: a service to the features
 *   vcpu_state.[ch]  vCPU state capture, apply, blobs: a service too
 * The features built on the VMM (src/vmsnap, src/migrate) use these
 * headers and register hooks; the VMM calls none of them. The core
 * (src/core) knows nothing of KVM; the VMM calls into it through the
 * public headers only.
 */
#ifndef LAZYMEM_VMM_VM_H
#define LAZYMEM_VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "compat/linux_compat.h"
#include "vmm/guest_abi.h"
#include "vmm/ram.h"
#include "vmm/run.h"
#include "vmm/vcpu.h"

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
	 * state captured (vcpu_state.h), so the VM can be saved (src/vmsnap),
	 * and call the save_point hooks. */
	bool save_point;
	/* The reserved area will be filled from a snapshot: do not build
	 * descriptor and page tables into it. */
	bool restoring;
	/* Test aid: the source fails reads of the page at this RAM offset. */
	bool fail_page;
	uint64_t fail_off;
	/* A page store the region's pages may be evicted into (reclaim,
	 * src/reclaim; lazymem/reclaim.h), borrowed, NULL for none; and the
	 * region's write-protect tracking (async: the reclaim policy's write
	 * recency). With a store the exit delivery uses the copy install on
	 * memfd too (eviction needs it); handler and exit deliveries only. */
	struct lm_page_store *store;
	enum lm_wp_mode write_protect;
	/* Huge pages once the region's 2 MiB ranges are full (lazymem/
	 * region.h, docs/thp.md): a guest with 2 MiB page tables then gets
	 * 2 MiB mappings from KVM too. A lazily filled RAM only. */
	enum lm_thp thp;
};

/*
 * How a feature above the VMM (snapshots, migration; later live
 * snapshots, reclaim, asynchronous faults) takes part in a run without the
 * VMM knowing of it: it registers hooks, and the vCPU loop calls every
 * registered one, in order, on the vCPU's own thread. Every member may be
 * NULL.
 */
struct lm_vm_hooks {
	/* At the guest's save point (LM_CALL_SAVE) when cfg.save_point, with
	 * the vCPU's state captured in v->saved. Returns 0 (the vCPU stops
	 * there, as without hooks) or -errno (it fails). */
	int (*save_point)(struct lm_vcpu *v, void *arg);
	/* An exit the VMM cannot attribute (an exit reason it does not
	 * handle, MMIO outside RAM, an internal error that is not a fetch):
	 * 0 handled (re-enter), 1 this vCPU is done, -ENOENT not this
	 * feature's (the next hook is asked, then the VMM dumps the vCPU and
	 * fails it), other -errno fails the vCPU. */
	int (*exit)(struct lm_vcpu *v, void *arg);
	/* lm_vm_pause stopped this vCPU, its state captured in v->saved. */
	void (*paused)(struct lm_vcpu *v, void *arg);
	/* lm_vm_resume is about to start this vCPU again. */
	void (*resumed)(struct lm_vcpu *v, void *arg);
	void *arg;
};

#define LM_VM_MAX_HOOKS 4

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
	/* What the features above have registered (lm_vm_hooks_add). */
	struct lm_vm_hooks hooks[LM_VM_MAX_HOOKS];
	unsigned nr_hooks;
};


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

/* Register hooks (copied) before a run: 0, or -ENOSPC past
 * LM_VM_MAX_HOOKS. */
int lm_vm_hooks_add(struct lm_vm *vm, const struct lm_vm_hooks *h);
/* The vCPU loop's side: every registered hook of one kind, in order. */
int vm__hooks_save_point(struct lm_vcpu *v);
int vm__hooks_exit(struct lm_vcpu *v);
void vm__hooks_paused(struct lm_vcpu *v);
void vm__hooks_resumed(struct lm_vcpu *v);

#endif
