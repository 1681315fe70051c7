/*
 * kvm_boot.c - boot a guest for every delivery and every workload, on
 * every backing, with 4 KiB and 2 MiB guest page tables; the guest
 * verifies every word it can see against the source pattern and the VMM
 * samples pages through its own view.
 */
#include "util/error.h"
#include "kvm_test.h"

#define MEM (8ULL << 20)

static const enum lm_workload workloads[] = {
	LM_WL_TOUCH, LM_WL_RANDOM, LM_WL_COUNTER, LM_WL_DIRTY, LM_WL_VERIFY,
	LM_WL_LOCKINC, LM_WL_STOS, LM_WL_FETCH, LM_WL_MIGRATE,
};
#define NWL (sizeof(workloads) / sizeof(workloads[0]))

static void boot_all_workloads(enum lm_vm_delivery d)
{
	LM_REQUIRE_KVM();
	for (size_t i = 0; i < NWL; i++) {
		struct lm_vm_config c = t_vm_config(d, 2, MEM);
		struct lm_vm_workload wl = t_workload(workloads[i]);
		struct lm_vm_result r;

		if (d == LM_VM_LIMIT && workloads[i] == LM_WL_FETCH)
			continue;	/* zero-filled RAM holds no code */
		c.code_source = workloads[i] == LM_WL_FETCH;
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.pages > 0, "%s: no pages touched",
			  lm_workload_name(workloads[i]));
		if (d != LM_VM_LIMIT)
			LM_ASSERT(r.stats.pages_demand > 0,
				  "%s: nothing came from the source",
				  lm_workload_name(workloads[i]));
	}
}

static void test_limit(void **s) { (void)s; boot_all_workloads(LM_VM_LIMIT); }
static void test_handler(void **s) { (void)s; boot_all_workloads(LM_VM_HANDLER); }
static void test_minor(void **s) { (void)s; boot_all_workloads(LM_VM_MINOR); }
static void test_exit(void **s) { (void)s; boot_all_workloads(LM_VM_EXIT); }
static void test_hybrid(void **s) { (void)s; boot_all_workloads(LM_VM_HYBRID); }

/* Read access too: the first touch of a page is then a load. */
static void test_read_touch(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	for (int d = LM_VM_LIMIT; d < LM_VM_DELIVERY_COUNT; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2, MEM);
		struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
		struct lm_vm_result r;

		wl.write = false;
		t_vm_run(&c, &wl, &r);
	}
}

/* 2 MiB guest pages and the memfd backing for every delivery. */
static void test_guest_2m_memfd(void **s)
{
	(void)s;
	LM_REQUIRE_KVM();
	for (int d = LM_VM_LIMIT; d < LM_VM_DELIVERY_COUNT; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2, MEM);
		struct lm_vm_workload wl = t_workload(LM_WL_RANDOM);
		struct lm_vm_result r;

		c.backing = LM_BACKING_MEMFD;
		c.guest_page_size = 2u << 20;
		t_vm_run(&c, &wl, &r);
	}
}

/* hugetlbfs backing: 2 MiB host pages, a fault fills 2 MiB at once. */
static void test_hugetlb(void **s)
{
	long prev;

	(void)s;
	LM_REQUIRE_KVM();
	prev = t_hugepages_reserve((long)(MEM >> 21) + 2);
	if (prev < 0)
		LM_SKIP("cannot reserve 2 MiB huge pages here");
	for (int d = LM_VM_LIMIT; d < LM_VM_DELIVERY_COUNT; d++) {
		struct lm_vm_config c = t_vm_config((enum lm_vm_delivery)d, 2, MEM);
		struct lm_vm_workload wl = t_workload(LM_WL_TOUCH);
		struct lm_vm_result r;

		c.backing = LM_BACKING_HUGETLB;
		t_vm_run(&c, &wl, &r);
		LM_ASSERT(r.pages == MEM >> 21, "%s: one touch per 2 MiB page, got %llu",
			  lm_vm_delivery_name(c.delivery),
			  (unsigned long long)r.pages);
	}
	t_hugepages_restore(prev);
}

/* Bad configurations are refused with a message, before any guest runs. */
static void test_bad_config(void **s)
{
	struct lm_vm_config c = t_vm_config(LM_VM_MINOR, 2, MEM);
	struct lm_vm *vm;

	(void)s;
	LM_REQUIRE_KVM();
	c.backing = LM_BACKING_ANON;
	LM_ASSERT(lm_vm_create(&c, &vm) == -EINVAL, "minor on anon refused");
	LM_ASSERT(strstr(util_last_error(), "shared memory"), "says why: %s",
		  util_last_error());
	c = t_vm_config(LM_VM_EXIT, 2, MEM);
	c.guest_page_size = 1u << 30;
	LM_ASSERT(lm_vm_create(&c, &vm) == -EINVAL, "1 GiB guest pages refused");
	c = t_vm_config(LM_VM_EXIT, 3, MEM);
	LM_ASSERT(lm_vm_create(&c, &vm) == -EINVAL, "uneven slices refused");
	c = t_vm_config(LM_VM_EXIT, LM_MAX_VCPUS + 1, MEM);
	LM_ASSERT(lm_vm_create(&c, &vm) == -EINVAL, "too many vCPUs refused");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_handler),
		cmocka_unit_test(test_minor),
		cmocka_unit_test(test_exit),
		cmocka_unit_test(test_hybrid),
		cmocka_unit_test(test_read_touch),
		cmocka_unit_test(test_guest_2m_memfd),
		cmocka_unit_test(test_hugetlb),
		cmocka_unit_test(test_bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
