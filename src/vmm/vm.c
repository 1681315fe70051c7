/*
 * vm.c - the VM object: /dev/kvm, KVM_CREATE_VM, the two memslots and the
 * reserved area, the CPUID table every vCPU gets, and the vCPUs.
 *
 * Memslot 0 is the reserved area at guest-physical 0: plain anonymous
 * memory, never registered with userfaultfd, holding descriptor tables,
 * mailboxes, code, stacks and page tables (guest_abi.h has the layout).
 * Memslot 1 is guest RAM at LM_GPA_RAM, whatever ram.c made of it.
 *
 * The hooks (end of file) are how features above the VMM take part in a
 * run: the vCPU loop calls what they registered, never the features.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/pagetable.h"

static const char *const delivery_names[LM_VM_DELIVERY_COUNT] = {
	[LM_VM_LIMIT] = "limit",
	[LM_VM_HANDLER] = "handler",
	[LM_VM_MINOR] = "minor",
	[LM_VM_EXIT] = "exit",
	[LM_VM_HYBRID] = "hybrid",
};

const char *lm_vm_delivery_name(enum lm_vm_delivery d)
{
	return d < LM_VM_DELIVERY_COUNT ? delivery_names[d] : "?";
}

int lm_vm_delivery_parse(const char *s, enum lm_vm_delivery *out)
{
	for (int d = 0; d < LM_VM_DELIVERY_COUNT; d++) {
		if (!strcmp(s, delivery_names[d])) {
			*out = (enum lm_vm_delivery)d;
			return 0;
		}
	}
	return -EINVAL;
}

const char *lm_vm_placement_name(enum lm_vm_placement p)
{
	switch (p) {
	case LM_PLACE_SAME_CPU: return "same-cpu";
	case LM_PLACE_OTHER_CPU: return "other-cpu";
	case LM_PLACE_ANY: break;
	}
	return "any";
}

static const char *const workload_names[] = {
	[LM_WL_TOUCH] = "touch", [LM_WL_RANDOM] = "random",
	[LM_WL_COUNTER] = "counter", [LM_WL_DIRTY] = "dirty",
	[LM_WL_VERIFY] = "verify", [LM_WL_LOCKINC] = "lockinc",
	[LM_WL_STOS] = "stos", [LM_WL_FETCH] = "fetch", [LM_WL_PING] = "ping",
	[LM_WL_SPIN] = "spin", [LM_WL_RESTORE] = "restore",
	[LM_WL_MIGRATE] = "migrate",
};
#define NR_WORKLOAD_NAMES (sizeof(workload_names) / sizeof(workload_names[0]))

const char *lm_workload_name(enum lm_workload w)
{
	if ((unsigned)w < NR_WORKLOAD_NAMES && workload_names[w])
		return workload_names[w];
	return "?";
}

int lm_workload_parse(const char *s, enum lm_workload *out)
{
	for (unsigned w = 0; w < NR_WORKLOAD_NAMES; w++) {
		if (workload_names[w] && !strcmp(s, workload_names[w])) {
			*out = (enum lm_workload)w;
			return 0;
		}
	}
	return -EINVAL;
}

/* KVM_GET_SUPPORTED_CPUID, growing the table until it fits. */
static int vm__get_cpuid(struct lm_vm *vm)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
					      n * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return util_error(-errno,
					   "KVM_GET_SUPPORTED_CPUID: %s",
					   strerror(errno));
	}
	return util_error(-E2BIG, "KVM_GET_SUPPORTED_CPUID: table too large");
}

static int vm__set_slot(struct lm_vm *vm, unsigned slot, uint64_t gpa,
			uint64_t size, void *host)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
		return util_error(-errno,
				   "KVM_SET_USER_MEMORY_REGION slot %u gpa 0x%llx size %llu: %s",
				   slot, (unsigned long long)gpa,
				   (unsigned long long)size, strerror(errno));
	return 0;
}

/*
 * A flat GDT with the selectors vcpu.c loads: null, code64 and data at
 * DPL 3, and a TSS whose I/O permission bitmap opens LM_PORT_CALL (and
 * only it) to CPL 3, since the guest runs in user mode (see vcpu.c).
 */
static void vm__build_gdt(struct lm_vm *vm)
{
	uint64_t *gdt = (uint64_t *)(void *)(vm->reserved + LM_GPA_GDT);
	uint64_t tss = LM_GPA_TSS, lim = 0x68 + LM_PORT_CALL / 8 + 2;
	uint8_t *t = vm->reserved + LM_GPA_TSS;

	/* The I/O bitmap starts right after the 0x68-byte TSS; an outl
	 * checks the bits of all four ports it covers. */
	t[0x66] = 0x68;
	memset(t + 0x68, 0xff, LM_PORT_CALL / 8 + 3);
	for (unsigned p = LM_PORT_CALL; p < LM_PORT_CALL + 4; p++)
		t[0x68 + p / 8] &= (uint8_t)~(1u << (p % 8));

	gdt[0] = 0;
	gdt[1] = 0x00affb000000ffffULL;		/* 0x08: code, L=1, DPL 3 */
	gdt[2] = 0x00cff3000000ffffULL;		/* 0x10: data, DPL 3 */
	gdt[3] = (lim & 0xffff) | ((tss & 0xffffff) << 16) |
		 (0x8bULL << 40) | (((tss >> 24) & 0xff) << 56);
	gdt[4] = tss >> 32;			/* 0x18: 64-bit busy TSS */
}

static int vm__pick_cpus(struct lm_vm *vm)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return util_error(-errno, "sched_getaffinity: %s",
				   strerror(errno));
	vm->nr_cpus = 0;
	for (int c = 0; c < CPU_SETSIZE && vm->nr_cpus < 256; c++)
		if (CPU_ISSET(c, &set))
			vm->cpus[vm->nr_cpus++] = c;
	return vm->nr_cpus ? 0 : util_error(-EINVAL, "no usable CPU");
}

static int vm__check_config(const struct lm_vm_config *cfg)
{
	uint64_t psz = lm_backing_page_size(cfg->backing);

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > LM_MAX_VCPUS)
		return util_error(-EINVAL, "vcpus: %u is not in 1..%d",
				   cfg->nr_vcpus, LM_MAX_VCPUS);
	if (cfg->guest_page_size != 4096 && cfg->guest_page_size != (2u << 20))
		return util_error(-EINVAL,
				   "guest page size %llu: only 4k and 2m (1 GiB guest pages are refused by this host)",
				   (unsigned long long)cfg->guest_page_size);
	if (!psz)
		return util_error(-EINVAL, "backing %s: page size unknown",
				   lm_backing_name(cfg->backing));
	if (!cfg->mem_size || cfg->mem_size % (2u << 20) ||
	    cfg->mem_size > (64ULL << 30))
		return util_error(-EINVAL,
				   "guest memory %llu bytes: must be a multiple of 2 MiB, at most 64 GiB",
				   (unsigned long long)cfg->mem_size);
	if (cfg->mem_size / psz < cfg->nr_vcpus ||
	    (cfg->mem_size / psz) % cfg->nr_vcpus)
		return util_error(-EINVAL,
				   "guest memory of %llu pages of %llu bytes does not split evenly over %u vCPUs",
				   (unsigned long long)(cfg->mem_size / psz),
				   (unsigned long long)psz, cfg->nr_vcpus);
	if ((cfg->delivery == LM_VM_MINOR || cfg->delivery == LM_VM_HYBRID) &&
	    cfg->backing == LM_BACKING_ANON)
		return util_error(-EINVAL,
				   "delivery %s needs shared memory: use backing memfd or hugetlb",
				   lm_vm_delivery_name(cfg->delivery));
	return 0;
}

/* Handler threads for the placement; see lm_vm_placement. */
static int vm__place_handlers(struct lm_vm *vm, unsigned *nthreads)
{
	unsigned nv = vm->cfg.nr_vcpus, nc = vm->nr_cpus;

	*nthreads = nv < nc ? nv : nc;
	switch (vm->cfg.placement) {
	case LM_PLACE_ANY:
		return 0;
	case LM_PLACE_SAME_CPU:
		for (unsigned j = 0; j < *nthreads; j++)
			vm->handler_cpus[j] = vm->cpus[j % nc];
		return 0;
	case LM_PLACE_OTHER_CPU:
		if (nv >= nc)
			return util_error(-EINVAL,
					   "placement other-cpu: %u vCPUs occupy all %u CPUs, none left for handler threads",
					   nv, nc);
		*nthreads = nc - nv < nv ? nc - nv : nv;
		for (unsigned j = 0; j < *nthreads; j++)
			vm->handler_cpus[j] = vm->cpus[nv + j];
		return 0;
	}
	return -EINVAL;
}

uint64_t lm_vm_reserved_size(uint64_t mem_size, uint64_t guest_page_size)
{
	/* fixed layout up to the page tables, then tables sized for RAM,
	 * rounded to the 2 MiB pages that map it */
	uint64_t pt = pagetable__size(mem_size, guest_page_size);

	return (LM_GPA_PGTABLE + pt + (2u << 20) - 1) &
	       ~((uint64_t)(2u << 20) - 1);
}

/*
 * Plain RAM (limit) goes right after the reserved area in one address
 * range, 2 MiB aligned for hugetlb: the whole guest is then one image,
 * laid out as a snapshot's memory.img and a migration's layout, that the
 * page server reads from directly (a running VM's memory cannot be
 * copied into a second buffer without going stale).
 */
static int vm__map_image(struct lm_vm *vm)
{
	const uint64_t align = 2u << 20;
	uint64_t span = vm->reserved_size + vm->cfg.mem_size;
	uint8_t *p, *base;

	if (vm->cfg.delivery != LM_VM_LIMIT || vm->cfg.fc_socket)
		return 0;
	p = mmap(NULL, span + align, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return util_error(-errno, "guest memory: %llu bytes of address space: %s",
				   (unsigned long long)span, strerror(errno));
	base = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (base > p)
		munmap(p, (size_t)(base - p));
	munmap(base + span, (size_t)(p + span + align - (base + span)));
	vm->image = base;
	vm->ram.at = base + vm->reserved_size;
	return 0;
}

int lm_vm_create(const struct lm_vm_config *cfg, struct lm_vm **out)
{
	struct lm_vm *vm;
	int rc;

	rc = vm__check_config(cfg);
	if (rc)
		return rc;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->ram.memfd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);

	rc = vm__pick_cpus(vm);
	if (rc)
		goto fail;
	if (cfg->delivery != LM_VM_LIMIT) {
		rc = vm__place_handlers(vm, &vm->nr_handlers);
		if (rc)
			goto fail;
	}

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		rc = util_error(-errno, "/dev/kvm: %s", strerror(errno));
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		rc = util_error(-errno, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		rc = util_error(-errno, "KVM_GET_VCPU_MMAP_SIZE: %s",
				 strerror(errno));
		goto fail;
	}
	rc = vm__get_cpuid(vm);
	if (rc)
		goto fail;

	vm->reserved_size = lm_vm_reserved_size(cfg->mem_size,
					        cfg->guest_page_size);
	rc = vm__map_image(vm);
	if (rc)
		goto fail;
	vm->reserved = mmap(vm->image ? vm->image : NULL, vm->reserved_size,
			    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
			    MAP_NORESERVE | (vm->image ? MAP_FIXED : 0), -1, 0);
	if (vm->reserved == MAP_FAILED) {
		vm->reserved = NULL;
		rc = util_error(-errno, "reserved area of %llu bytes: %s",
				 (unsigned long long)vm->reserved_size,
				 strerror(errno));
		goto fail;
	}
	/* A restore brings its own tables (the snapshot's reserved area):
	 * building them here would only fault in pages to be replaced. */
	if (!cfg->restoring) {
		vm__build_gdt(vm);
		pagetable__build(vm->reserved, cfg->mem_size,
				 cfg->guest_page_size, vm->reserved_size);
	}
	rc = vm__set_slot(vm, 0, 0, vm->reserved_size, vm->reserved);
	if (rc)
		goto fail;

	rc = ram__create(vm);
	if (rc)
		goto fail;
	rc = vm__set_slot(vm, 1, LM_GPA_RAM, vm->ram.size, vm->ram.host);
	if (rc)
		goto fail;

	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		rc = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < cfg->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		rc = vcpu__create(vm, &vm->vcpus[i], i);
		if (rc)
			goto fail;
	}
	*out = vm;
	return 0;
fail:
	lm_vm_destroy(vm);
	return rc;
}

void lm_vm_destroy(struct lm_vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus)
		for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
			vcpu__destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	/* The VM goes before its memory: KVM must drop its mappings of RAM
	 * before the region unregisters and unmaps it. */
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	ram__destroy(&vm->ram);
	if (vm->reserved)
		munmap(vm->reserved, vm->reserved_size);
	free(vm->cpuid);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

/* ---- hooks: the features above take part without the VMM calling them ---- */

int lm_vm_hooks_add(struct lm_vm *vm, const struct lm_vm_hooks *h)
{
	if (vm->nr_hooks == LM_VM_MAX_HOOKS)
		return util_error(-ENOSPC, "vm: %d hooks at most",
				  LM_VM_MAX_HOOKS);
	vm->hooks[vm->nr_hooks++] = *h;
	return 0;
}

int vm__hooks_save_point(struct lm_vcpu *v)
{
	struct lm_vm *vm = v->vm;

	for (unsigned i = 0; i < vm->nr_hooks; i++) {
		const struct lm_vm_hooks *h = &vm->hooks[i];
		int rc = h->save_point ? h->save_point(v, h->arg) : 0;

		if (rc)
			return rc;
	}
	return 0;
}

/* -ENOENT: no feature claims the exit. */
int vm__hooks_exit(struct lm_vcpu *v)
{
	struct lm_vm *vm = v->vm;

	for (unsigned i = 0; i < vm->nr_hooks; i++) {
		const struct lm_vm_hooks *h = &vm->hooks[i];
		int rc = h->exit ? h->exit(v, h->arg) : -ENOENT;

		if (rc != -ENOENT)
			return rc;
	}
	return -ENOENT;
}

void vm__hooks_paused(struct lm_vcpu *v)
{
	struct lm_vm *vm = v->vm;

	for (unsigned i = 0; i < vm->nr_hooks; i++)
		if (vm->hooks[i].paused)
			vm->hooks[i].paused(v, vm->hooks[i].arg);
}

void vm__hooks_resumed(struct lm_vcpu *v)
{
	struct lm_vm *vm = v->vm;

	for (unsigned i = 0; i < vm->nr_hooks; i++)
		if (vm->hooks[i].resumed)
			vm->hooks[i].resumed(v, vm->hooks[i].arg);
}
