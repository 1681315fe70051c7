/*
 * kvm_exit_delivery.c - the vCPU resolving its own faults: every page
 * arrives by exactly one exit on the vCPU's own thread (no handler
 * thread), through the decoder or through KVM's emulator (MMIO exits, and
 * emulation failures on instruction fetch); the VMM's own accesses take
 * the SIGBUS path (exit) or the blocking VMM view (hybrid); a page the
 * source cannot deliver, and an exit nobody can explain, fail the run
 * with a message instead of hanging it.
 */
#include "util/clock.h"
#include "util/error.h"
#include "kvm_test.h"

#define MEM (8ULL << 20)
#define PAGES (MEM / 4096)

static void test_native_exits(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_EXIT, 1, MEM);
	t_vm_run(&c, &wl, &r);
	LM_ASSERT(r.pages == PAGES, "pages %llu", (unsigned long long)r.pages);
	LM_ASSERT(r.stats.faults[LM_ORIGIN_VCPU] == PAGES,
		  "every fault on the vCPU: %llu",
		  (unsigned long long)r.stats.faults[LM_ORIGIN_VCPU]);
	LM_ASSERT(r.stats.faults[LM_ORIGIN_HANDLER] == 0, "no handler thread");
	LM_ASSERT(r.exits.efault == PAGES && r.exits.efault_emulated == 0,
		  "one decoded -EFAULT per page: %llu (emulated %llu)",
		  (unsigned long long)r.exits.efault,
		  (unsigned long long)r.exits.efault_emulated);
}

static void test_emulated_mmio(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	for (int w = 0; w < 2; w++) {
		c = t_vm_config(LM_VM_EXIT, 1, MEM);
		c.emulate_faults = true;
		wl.write = w;
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.exits.mmio_fault == PAGES && r.exits.mmio_owned == PAGES,
			  "%s: one MMIO-in-RAM exit per page, served from staging: %llu/%llu",
			  w ? "write" : "read",
			  (unsigned long long)r.exits.mmio_fault,
			  (unsigned long long)r.exits.mmio_owned);
	}
}

/* A CPL-0 guest (emulated here, like demand_paging_test's): MMIO exits
 * with no decoder involved, for reads and writes, then native verify. */
static void test_cpl0_guest(void **s)
{
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	for (int d = LM_VM_LIMIT; d < LM_VM_DELIVERY_COUNT; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2, MEM);

		c.guest_cpl0 = true;
		wl.write = d % 2;
		t_vm_run(&c, &wl, &r);
		if (d == LM_VM_EXIT || d == LM_VM_HYBRID)
			LM_ASSERT(r.exits.mmio_fault == PAGES && r.exits.efault == 0,
				  "%s: one MMIO exit per page: %llu (efault %llu)",
				  lm_vm_delivery_name(c.delivery),
				  (unsigned long long)r.exits.mmio_fault,
				  (unsigned long long)r.exits.efault);
	}
}

static void test_emulated_fetch(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_FETCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_EXIT, 2, MEM);
	c.code_source = true;
	c.emulate_faults = true;
	t_vm_run(&c, &wl, &r);
	LM_ASSERT(r.exits.fetch_fault == PAGES,
		  "each code page came by a fetch exit (KVM_TRANSLATE of RIP): %llu",
		  (unsigned long long)r.exits.fetch_fault);
}

/* The VMM reads half of RAM before the guest runs: SIGBUS path for exit,
 * the blocking VMM view (handler threads) for hybrid. */
static void vmm_reads_first(enum lm_vm_delivery d, enum lm_fault_origin want)
{
	struct lm_vm_config c = t_vm_config(d, 2, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;
	struct lm_vm *vm;

	KVM_OK(lm_vm_create(&c, &vm));
	for (uint64_t off = 0; off < MEM / 2; off += 4096) {
		volatile const uint64_t *w = (const uint64_t *)(void *)
			((uint8_t *)vm->ram.vmm_view + off + 8);

		LM_ASSERT(*w == lm_pattern(off + 8, c.gen), "VMM read at 0x%llx",
			  (unsigned long long)off);
	}
	KVM_OK(lm_vm_run(vm, &wl, &r));
	lm_vm_destroy(vm);
	LM_ASSERT(r.verified, "guest verified");
	LM_ASSERT(r.stats.faults[want] >= PAGES / 2,
		  "%s: the VMM's reads went by %s: %llu",
		  lm_vm_delivery_name(d), lm_origin_name(want),
		  (unsigned long long)r.stats.faults[want]);
	LM_ASSERT(r.stats.faults[LM_ORIGIN_VCPU] >= PAGES / 2 - 2,
		  "the other half by the vCPUs: %llu",
		  (unsigned long long)r.stats.faults[LM_ORIGIN_VCPU]);
}

static void test_vmm_sigbus(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	vmm_reads_first(LM_VM_EXIT, LM_ORIGIN_SIGBUS);
}

static void test_vmm_view_hybrid(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	vmm_reads_first(LM_VM_HYBRID, LM_ORIGIN_HANDLER);
}

/* Handler threads on the vCPU's CPU and on another one. */
static void test_handler_placement(void **s)
{
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	for (int p = LM_PLACE_SAME_CPU; p <= LM_PLACE_OTHER_CPU; p++) {
		struct lm_vm_config c = t_vm_config(LM_VM_HANDLER, 1, MEM);

		c.placement = (enum lm_vm_placement)p;
		c.pin_vcpus = true;
		if (p == LM_PLACE_OTHER_CPU && sysconf(_SC_NPROCESSORS_ONLN) < 2)
			LM_SKIP("other-cpu placement needs 2 CPUs");
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.stats.faults[LM_ORIGIN_HANDLER] == PAGES,
			  "%s: handler resolved all", lm_vm_placement_name(c.placement));
	}
}

/* A page the source cannot deliver fails the run, naming the page. */
static void test_source_failure(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	for (int d = LM_VM_EXIT; d <= LM_VM_HYBRID; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2, MEM);
		struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
		struct lm_vm_result r;
		struct lm_vm *vm;
		int rc;

		c.fail_page = true;
		c.fail_off = 77 * 4096;
		KVM_OK(lm_vm_create(&c, &vm));
		rc = lm_vm_run(vm, &wl, &r);
		lm_vm_destroy(vm);
		LM_ASSERT(rc == -EIO, "%s: run fails with -EIO, got %d",
			  lm_vm_delivery_name(c.delivery), rc);
		LM_ASSERT(strstr(util_last_error(), "0x4d000"),
			  "names the page: %s", util_last_error());
	}
}

/* Code that makes no sense (zero-filled RAM called as code) ends in an
 * exit the VMM cannot explain: the run fails, it does not hang. */
static void test_unexpected_exit(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_FETCH);
	struct lm_vm_result r;
	struct lm_vm *vm;
	int rc;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_LIMIT, 1, MEM);
	wl.timeout_ms = 10000;
	KVM_OK(lm_vm_create(&c, &vm));
	rc = lm_vm_run(vm, &wl, &r);
	lm_vm_destroy(vm);
	LM_ASSERT(rc < 0, "the run fails");
	print_message("expected failure: %s\n", util_last_error());
}

/* The floor under every exit: empty calls all come back, in order. */
static void test_ping(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_PING);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_EXIT, 2, MEM);
	wl.iterations = 1000;
	t_vm_run(&c, &wl, &r);
	LM_ASSERT(r.exits.io == 2 * (1000 + 3), "every call exited: %llu",
		  (unsigned long long)r.exits.io);
	LM_ASSERT(r.stats.faults[LM_ORIGIN_VCPU] == 0, "and no vCPU touched RAM");
}

/* The region's fault-around: one exit installs 8 pages. */
static void test_fault_around(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
	struct lm_vm_result r;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_EXIT, 1, MEM);
	c.fault_around = 8;
	t_vm_run(&c, &wl, &r);
	LM_ASSERT(r.exits.efault == PAGES / 8,
		  "one exit per 8 pages: %llu exits, %llu pages ahead",
		  (unsigned long long)r.exits.efault,
		  (unsigned long long)r.stats.pages_around);
}

/*
 * KVM_EXIT_MEMORY_FAULT (TDP hosts; this shadow-paging host never makes
 * one): the exit is crafted in kvm_run as KVM would fill it, and the
 * handler must install exactly the named page, and refuse a gpa outside
 * lazily filled RAM.
 */
static void test_memory_fault_exit(void **s)
{
	struct lm_vm_config c = t_vm_config(LM_VM_EXIT, 1, MEM);
	struct lm_kvm_memory_fault *mf;
	struct lm_vcpu *v;
	struct lm_vm *vm;

	(void)s;
	LM_REQUIRE_KVM();
	KVM_OK(lm_vm_create(&c, &vm));
	v = &vm->vcpus[0];
	mf = (struct lm_kvm_memory_fault *)(void *)&v->run->mmio;
	v->run->exit_reason = KVM_EXIT_MEMORY_FAULT;
	mf->gpa = LM_GPA_RAM + 5 * 4096 + 64;
	mf->size = 8;
	mf->flags = 0;
	LM_ASSERT(fault_exit__memory_fault(v) == 0, "handled: %s", v->msg);
	LM_ASSERT(lm_region_pages_present(vm->ram.region) == 1, "one page in");
	LM_ASSERT(v->exits.memory_fault == 1, "counted");
	/* present now: readable without a fault, with the right content */
	LM_ASSERT(((volatile uint64_t *)vm->ram.host)[5 * 512 + 3] ==
		  lm_pattern(5 * 4096 + 24, c.gen), "content");
	mf->gpa = LM_GPA_MAILBOX;
	LM_ASSERT(fault_exit__memory_fault(v) == -EIO, "outside RAM refused");
	lm_vm_destroy(vm);
}

/* Lazy restore: the guest verifies never-touched RAM while the region's
 * background fill streams pages in; whichever comes first, every word
 * must be right, and both paths must have installed pages. */
static void test_background_fill(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	for (int d = LM_VM_HANDLER; d < LM_VM_DELIVERY_COUNT; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2,
						    64ULL << 20);
		struct lm_vm_workload wl = t_workload(LM_WL_VERIFY);
		struct lm_vm_result r;

		c.background = true;
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.stats.pages_background + r.stats.pages_demand ==
			  (64ULL << 20) / 4096,
			  "%s: every page once: %llu background + %llu demand",
			  lm_vm_delivery_name(c.delivery),
			  (unsigned long long)r.stats.pages_background,
			  (unsigned long long)r.stats.pages_demand);
	}
}

/* A guest that stops making progress is stopped by the watchdog. */
static void test_watchdog(void **s)
{
	struct lm_vm_config c;
	struct lm_vm_workload wl = t_workload(LM_WL_SPIN);
	struct lm_vm_result r;
	struct lm_vm *vm;
	uint64_t t0;
	int rc;

	(void)s;
	LM_REQUIRE_KVM();
	c = t_vm_config(LM_VM_EXIT, 2, MEM);
	wl.timeout_ms = 500;
	KVM_OK(lm_vm_create(&c, &vm));
	t0 = lm_now_ns();
	rc = lm_vm_run(vm, &wl, &r);
	lm_vm_destroy(vm);
	LM_ASSERT(rc == -ETIMEDOUT, "timed out: %d (%s)", rc, util_last_error());
	LM_ASSERT(strstr(util_last_error(), "no progress"), "says so: %s",
		  util_last_error());
	LM_ASSERT(lm_now_ns() - t0 < 10000000000ULL, "within seconds");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_native_exits),
		cmocka_unit_test(test_emulated_mmio),
		cmocka_unit_test(test_cpl0_guest),
		cmocka_unit_test(test_emulated_fetch),
		cmocka_unit_test(test_vmm_sigbus),
		cmocka_unit_test(test_vmm_view_hybrid),
		cmocka_unit_test(test_handler_placement),
		cmocka_unit_test(test_source_failure),
		cmocka_unit_test(test_unexpected_exit),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_fault_around),
		cmocka_unit_test(test_memory_fault_exit),
		cmocka_unit_test(test_watchdog),
		cmocka_unit_test(test_background_fill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
