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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <lazymem/lazymem.h>

#include "compat/linux_compat.h"
#include "fc/client.h"
#include "kvm/guest_abi.h"

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
	 * and announced exactly as Firecracker does (src/fc/client.c), and
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
	bool done;
	int err;			/* first error, -errno */
	char msg[256];			/* and what it was */
	/* loop guard: the same fault (RIP, and for a decoded -EFAULT the first
	 * linear page it touches) twice with nothing installed */
	uint64_t last_fetch_rip;
	uint64_t last_fault_page;
	unsigned fetch_repeats;
	struct lm_vm_exits exits;
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
};

struct lm_vm {
	struct lm_vm_config cfg;
	int kvm_fd;
	int vm_fd;
	int run_size;
	struct kvm_cpuid2 *cpuid;
	uint8_t *reserved;		/* host view of memslot 0 */
	uint64_t reserved_size;
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
	/* process CPU time (ns) at the first START and the last MARK */
	atomic_uint_fast64_t cpu_t0, cpu_t1;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lm_vm_workload wl;
};

/* vm.c */
int lm_vm_create(const struct lm_vm_config *cfg, struct lm_vm **out);
void lm_vm_destroy(struct lm_vm *vm);
/* The last error of this thread in the VMM (like lm_last_error). */
const char *lm_vm_last_error(void);
int lm_vm_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline bool lm_vm_gpa_in_ram(const struct lm_vm *vm, uint64_t gpa)
{
	return gpa >= LM_GPA_RAM && gpa - LM_GPA_RAM < vm->ram.size;
}
const char *lm_vm_delivery_name(enum lm_vm_delivery d);
int lm_vm_delivery_parse(const char *s, enum lm_vm_delivery *out);
const char *lm_vm_placement_name(enum lm_vm_placement p);
const char *lm_workload_name(enum lm_workload w);
int lm_workload_parse(const char *s, enum lm_workload *out);
uint64_t lm_now_ns(void);
uint64_t lm_process_cpu_ns(void);

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
int vcpu__set_cpl(struct lm_vcpu *v, unsigned cpl);
#define LM_VCPU_CPL(vm) ((vm)->cfg.guest_cpl0 ? 0u : 3u)
/* One exit of KVM_RUN (err: its errno or 0): 0 re-enter, 1 done, -errno. */
int vcpu__exit(struct lm_vcpu *v, int err);
void *vcpu__thread(void *arg);
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

#endif
