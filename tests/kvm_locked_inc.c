/*
 * kvm_locked_inc.c - no increment lost or doubled: several vCPUs do
 * "lock incq" on one word of every page of never-touched guest RAM, all
 * in the same order so they race for the same missing pages, and each
 * then checks its slice: every word must have grown by exactly
 * vcpus * rounds. Run for every delivery, and for exit and hybrid also
 * through KVM's emulator, where the fault arrives as an MMIO read whose
 * completion KVM gives up on (the locked read-modify-write case of the
 * immediate_exit protocol) and the instruction reruns natively.
 */
#include "kvm_test.h"

#define MEM (16ULL << 20)
#define VCPUS 4
#define ROUNDS 3

static struct lm_vm_result lockinc_cpl(enum lm_vm_delivery d, bool emulate,
				       uint64_t guest_page, bool cpl0)
{
	struct lm_vm_config c = t_vm_config(d, VCPUS, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_LOCKINC);
	struct lm_vm_result r;

	c.emulate_faults = emulate;
	c.guest_page_size = guest_page;
	c.guest_cpl0 = cpl0;
	c.pin_vcpus = true;
	wl.iterations = ROUNDS;
	t_vm_run(&c, &wl, &r);
	LM_ASSERT(r.pages == VCPUS * ROUNDS * (MEM / 4096),
		  "%s: every vCPU incremented every page %d times (%llu)",
		  lm_vm_delivery_name(d), ROUNDS, (unsigned long long)r.pages);
	LM_ASSERT(r.words_checked >= MEM / 8 - VCPUS, "whole RAM verified");
	if (d != LM_VM_LIMIT)
		LM_ASSERT(r.stats.pages_demand == MEM / 4096,
			  "%s: each page installed once, %llu",
			  lm_vm_delivery_name(d),
			  (unsigned long long)r.stats.pages_demand);
	return r;
}

static struct lm_vm_result lockinc(enum lm_vm_delivery d, bool emulate,
				   uint64_t guest_page)
{
	return lockinc_cpl(d, emulate, guest_page, false);
}

static void test_limit(void **s) { (void)s; LM_REQUIRE_KVM(); lockinc(LM_VM_LIMIT, false, 4096); }
static void test_handler(void **s) { (void)s; LM_REQUIRE_KVM(); lockinc(LM_VM_HANDLER, false, 4096); }
static void test_minor(void **s) { (void)s; LM_REQUIRE_KVM(); lockinc(LM_VM_MINOR, false, 4096); }

static void test_exit(void **s)
{
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	r = lockinc(LM_VM_EXIT, false, 4096);
	LM_ASSERT(r.exits.efault >= MEM / 4096, "every page came by an exit");
	LM_ASSERT(r.exits.efault_emulated == 0,
		  "losing a race for a page is a retry, not a fallback: %llu emulated",
		  (unsigned long long)r.exits.efault_emulated);
	r = lockinc(LM_VM_EXIT, false, 2u << 20);
}

static void test_hybrid(void **s) { (void)s; LM_REQUIRE_KVM(); lockinc(LM_VM_HYBRID, false, 4096); }

static void test_exit_emulated(void **s)
{
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	r = lockinc(LM_VM_EXIT, true, 4096);
	LM_ASSERT(r.exits.mmio_fault >= MEM / 4096,
		  "faults arrived as MMIO exits: %llu",
		  (unsigned long long)r.exits.mmio_fault);
	LM_ASSERT(r.exits.locked_rmw > 0,
		  "the locked case ended in an emulation failure: %llu",
		  (unsigned long long)r.exits.locked_rmw);
}

static void test_hybrid_emulated(void **s)
{
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	r = lockinc(LM_VM_HYBRID, true, 4096);
	LM_ASSERT(r.exits.locked_rmw > 0, "locked completions: %llu",
		  (unsigned long long)r.exits.locked_rmw);
}

/* A CPL-0 guest, emulated on this backend: every first touch is an MMIO
 * exit, the protocol's main path rather than a fallback. */
static void test_exit_cpl0(void **s)
{
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	r = lockinc_cpl(LM_VM_EXIT, false, 4096, true);
	LM_ASSERT(r.exits.mmio_fault >= MEM / 4096 && r.exits.efault == 0,
		  "MMIO exits only: %llu (efault %llu)",
		  (unsigned long long)r.exits.mmio_fault,
		  (unsigned long long)r.exits.efault);
	LM_ASSERT(r.exits.locked_rmw > 0, "locked completions: %llu",
		  (unsigned long long)r.exits.locked_rmw);
}

/* The eager-commit experiment must keep every increment too: the locked
 * instruction then finishes as a cmpxchg on the installed page. */
static void test_eager_commit(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_LOCKINC);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	for (int cpl0 = 0; cpl0 < 2; cpl0++) {
		c = t_vm_config(LM_VM_EXIT, VCPUS, MEM);
		c.eager_commit = true;
		c.emulate_faults = !cpl0;
		c.guest_cpl0 = cpl0;
		c.pin_vcpus = true;
		wl.iterations = ROUNDS;
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.exits.mmio_fault >= MEM / 4096, "emulated: %llu",
			  (unsigned long long)r.exits.mmio_fault);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_handler),
		cmocka_unit_test(test_minor),
		cmocka_unit_test(test_exit),
		cmocka_unit_test(test_hybrid),
		cmocka_unit_test(test_exit_emulated),
		cmocka_unit_test(test_hybrid_emulated),
		cmocka_unit_test(test_exit_cpl0),
		cmocka_unit_test(test_eager_commit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
