/*
 * kvm_test.h - what the KVM tests share: skip without /dev/kvm, and run a
 * guest workload on a fresh VM failing loudly with the VMM's message (or
 * the guest's first mismatch) when anything is off.
 */
#ifndef LAZYMEM_KVM_TEST_H
#define LAZYMEM_KVM_TEST_H

#include <fcntl.h>

#include "lm_test.h"
#include "vmm/vm.h"
#include "vmm/fault_exit.h"
#include "vmm/pattern.h"
#include "vmsnap/vmsnap.h"

#define LM_REQUIRE_KVM()                                                     \
	do {                                                                 \
		int fd_ = open("/dev/kvm", O_RDWR | O_CLOEXEC);              \
		if (fd_ < 0)                                                 \
			LM_SKIP("/dev/kvm unusable here: %s", strerror(errno)); \
		close(fd_);                                                  \
	} while (0)

/* A VMM call that must return 0. */
#define KVM_OK(call)                                                         \
	do {                                                                 \
		int rc_ = (call);                                            \
		if (rc_ != 0)                                                \
			fail_msg("%s:%d: %s = %d (%s); vmm: %s", __FILE__,   \
				 __LINE__, #call, rc_, strerror(-rc_),       \
				 util_last_error());                        \
	} while (0)

static inline struct lm_vm_config t_vm_config(enum lm_vm_delivery d,
					       unsigned vcpus, uint64_t mem)
{
	struct lm_vm_config c = {
		.mem_size = mem, .nr_vcpus = vcpus, .delivery = d,
		.backing = d == LM_VM_MINOR || d == LM_VM_HYBRID ?
			   LM_BACKING_MEMFD : LM_BACKING_ANON,
		.guest_page_size = 4096, .gen = 3,
	};
	return c;
}

static inline struct lm_vm_workload t_workload(enum lm_workload w)
{
	struct lm_vm_workload wl = {
		.kind = w, .write = true, .iterations = 2, .seed = 7,
		.stos_len = 8192 + 24, .timeout_ms = 30000,
		/* migrate dirties until stopped */
		.stop_after_ms = w == LM_WL_MIGRATE ? 50 : 0,
	};
	return wl;
}

/* The guest's own check and the VMM's samples passed, or fail saying
 * where the first wrong word was. */
static inline void t_check_verified(const char *what,
				    const struct lm_vm_result *res)
{
	if (!res->verified)
		fail_msg("%s: not verified: %llu words checked, %llu mismatches (first at gpa 0x%llx: expected 0x%llx, got 0x%llx), %llu/%llu VMM samples wrong",
			 what, (unsigned long long)res->words_checked,
			 (unsigned long long)res->mismatches,
			 (unsigned long long)res->first_bad_gpa,
			 (unsigned long long)res->first_expected,
			 (unsigned long long)res->first_got,
			 (unsigned long long)res->host_mismatches,
			 (unsigned long long)res->host_checked);
}

/* Boot, run, check the guest's verification and the VMM's samples. */
static inline void t_vm_run(const struct lm_vm_config *cfg,
			    const struct lm_vm_workload *wl,
			    struct lm_vm_result *res)
{
	struct lm_vm *vm;
	char what[128];
	int rc;

	KVM_OK(lm_vm_create(cfg, &vm));
	rc = lm_vm_run(vm, wl, res);
	lm_vm_destroy(vm);
	if (rc)
		fail_msg("%s on %s (%s, %u vCPUs): %d (%s); vmm: %s",
			 lm_workload_name(wl->kind),
			 lm_vm_delivery_name(cfg->delivery),
			 lm_backing_name(cfg->backing), cfg->nr_vcpus, rc,
			 strerror(-rc), util_last_error());
	snprintf(what, sizeof(what), "%s on %s (%s)", lm_workload_name(wl->kind),
		 lm_vm_delivery_name(cfg->delivery), lm_backing_name(cfg->backing));
	t_check_verified(what, res);
}

#endif
