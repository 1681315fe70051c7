/*
 * kvm_migrate.c - live migration of a running VM between two VMMs (here in
 * one process, on loopback): pre-copy only, post-copy only and hybrid; a
 * connection cut in post-copy and resumed; a destination whose layout
 * differs refused by name; and a peer's malformed vCPU state refused. The
 * guest (guest/migrate.c) keeps dirtying a hot set while it is moved and
 * then checks every word of its memory on the destination.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lazymem/snapshot.h>

#include "util/error.h"
#include "kvm_test.h"
#include "migrate/migrate.h"

#define MEM (32ULL << 20)
#define VCPUS 2

/* Migrate a 2-vCPU VM dirtying 256 pages per vCPU, on loopback. */
static void t_migrate(enum lm_migrate_mode mode, unsigned cut_after_ms,
		      struct lm_migrate_pair_result *p)
{
	struct lm_vm_config c = t_vm_config(LM_VM_LIMIT, VCPUS, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_MIGRATE);
	struct lm_migrate_send_opts so = {
		.mode = mode, .warmup_ms = 20, .compress = true,
		.resume = cut_after_ms > 0, .resume_timeout_ms = 20000,
		.timeout_ms = 30000, .cut_after_ms = cut_after_ms,
	};
	struct lm_migrate_recv_opts ro = {
		.delivery = LM_VM_EXIT, .hold = cut_after_ms > 0,
		.hold_timeout_ms = 20000, .run_ms = 50, .timeout_ms = 30000,
	};
	const struct lm_vm_result *r = &p->recv.run;

	wl.ws_pages = 256;	/* the hot set, per vCPU */
	KVM_OK(lm_vm_migrate_pair(&c, &wl, &so, &ro, 0, p));
	t_check_verified(lm_migrate_mode_name(mode), r);
	/* every word of RAM, by the guest */
	assert_int_equal(r->words_checked, MEM / 8);
	/* the guest kept dirtying on both sides */
	assert_true(p->send.passes >= 1);
	assert_true(p->recv.passes >= p->send.passes);
	assert_true(p->downtime_ns > 0);
}

static void test_hybrid(void **state)
{
	struct lm_migrate_pair_result p;

	(void)state;
	LM_REQUIRE_KVM();
	/*
	 * What is still dirty at the pause depends on how much CPU the
	 * guest got since the last round (2 CPUs, shared with both ends):
	 * try again until some of the hot set is left for post-copy.
	 */
	for (int i = 0; i < 4; i++) {
		t_migrate(LM_MIGRATE_HYBRID, 0, &p);
		print_message("hybrid: %u rounds (%llu, %llu, ...), %llu pages while paused, %llu left dirty, guest passes %llu then %llu\n",
			      p.send.rounds,
			      (unsigned long long)p.send.round_pages[0],
			      (unsigned long long)p.send.round_pages[1],
			      (unsigned long long)p.send.pages_final,
			      (unsigned long long)p.send.pages_left,
			      (unsigned long long)p.send.passes,
			      (unsigned long long)p.recv.passes);
		if (p.send.pages_left)
			break;
	}
	assert_true(p.send.rounds >= 1);
	assert_true(p.send.pages_left > 0);
	/* the dirty ones came again, by demand or push... */
	assert_true(p.recv.net.demand_pages + p.recv.net.push_pages >=
		    p.send.pages_left);
	assert_true(p.recv.net.dirty_pages >= p.send.pages_left);
	/* ... and the rest was in the page cache already */
	assert_true(p.recv.net.precopy_hits + p.recv.pages_settled > 0);
}

static void test_precopy(void **state)
{
	struct lm_migrate_pair_result p;

	(void)state;
	LM_REQUIRE_KVM();
	t_migrate(LM_MIGRATE_PRECOPY, 0, &p);
	assert_int_equal(p.send.pages_left, 0);
	/* nothing over the network after the switch-over */
	assert_int_equal(p.recv.net.demand_pages, 0);
	assert_int_equal(p.recv.net.push_pages, 0);
	/* every page from the page cache: mapped ahead, or on a fault */
	assert_true(p.recv.net.precopy_hits + p.recv.pages_settled >= MEM / 4096);
}

static void test_postcopy(void **state)
{
	struct lm_migrate_pair_result p;
	const struct lm_net_dest_stats *n = &p.recv.net;

	(void)state;
	LM_REQUIRE_KVM();
	t_migrate(LM_MIGRATE_POSTCOPY, 0, &p);
	assert_int_equal(p.send.rounds, 0);
	/* only the reserved area went before the switch-over: all of it
	 * while running, then what was written since, while paused */
	assert_int_equal(p.send.net.precopy_pages,
			 lm_vm_reserved_size(MEM, 4096) / 4096 +
			 p.send.pages_final);
	assert_true(p.send.pages_final >= VCPUS);	/* their mailboxes */
	if (n->demand_pages + n->push_pages != MEM / 4096)
		fail_msg("demand %llu + push %llu pages (skipped %llu, store hits %llu): expected %llu in all",
			 (unsigned long long)n->demand_pages,
			 (unsigned long long)n->push_pages,
			 (unsigned long long)n->push_skipped,
			 (unsigned long long)n->precopy_hits,
			 (unsigned long long)(MEM / 4096));
	assert_true(n->demand_pages > 0);
}

static void test_cut_and_resume(void **state)
{
	struct lm_migrate_pair_result p;

	(void)state;
	LM_REQUIRE_KVM();
	t_migrate(LM_MIGRATE_POSTCOPY, 5, &p);
	assert_true(p.recv.net.link_downs >= 1);
	assert_true(p.recv.net.sessions >= 2);
	assert_true(p.send.net.resumes >= 1);
	assert_int_equal(p.recv.net.demand_pages + p.recv.net.push_pages,
			 MEM / 4096);
}

/* A destination set up for another memory size refuses the source. */
static void test_layout_mismatch(void **state)
{
	struct lm_vm_config c = t_vm_config(LM_VM_LIMIT, VCPUS, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_MIGRATE);
	struct lm_migrate_send_opts so = { .mode = LM_MIGRATE_HYBRID,
					   .timeout_ms = 5000 };
	struct lm_migrate_recv_opts ro = { .mem_size = 2 * MEM,
					   .delivery = LM_VM_EXIT,
					   .timeout_ms = 30000 };
	struct lm_migrate_pair_result p;

	(void)state;
	LM_REQUIRE_KVM();
	assert_int_not_equal(lm_vm_migrate_pair(&c, &wl, &so, &ro, 0, &p), 0);
	if (!strstr(p.send_err, "region 1"))
		fail_msg("refused with '%s'; expected it to name region 1's size",
			 p.send_err);
	/* and the destination stopped waiting once the source gave up */
	assert_int_equal(p.recv_rc, -ECANCELED);
}

struct t_recv {
	struct lm_migrate_recv_opts o;
	struct lm_migrate_recv_result res;
	int rc;
	char err[512];
	char addr[128];
	atomic_bool listening;
};

static void t_recv_listening(const char *addr, void *arg)
{
	struct t_recv *t = arg;

	snprintf(t->addr, sizeof(t->addr), "%s", addr);
	atomic_store(&t->listening, true);
}

static void *t_recv_main(void *arg)
{
	struct t_recv *t = arg;

	t->rc = lm_vm_migrate_recv(&t->o, &t->res);
	snprintf(t->err, sizeof(t->err), "%s", util_last_error());
	atomic_store(&t->listening, true);
	return NULL;
}

/*
 * A peer that speaks the protocol but is no migrating VM: its memory is
 * all zeroes, its vCPU states are junk. The destination must refuse it
 * at the switch-over, naming what is wrong, and run nothing.
 */
static void test_hostile_source(void **state)
{
	struct t_recv t = { .o = { .listen = "127.0.0.1:0", .mem_size = MEM,
				   .nr_vcpus = VCPUS, .guest_page_size = 4096,
				   .delivery = LM_VM_EXIT, .timeout_ms = 10000 } };
	struct lm_net_server_config sc = { .compress = true,
					   .io_timeout_ms = 3000 };
	static const uint8_t junk[64] = { 3, 'x', 'y', 'z', 200, 0, 0, 0 };
	const void *blobs[VCPUS] = { junk, junk };
	const uint32_t lens[VCPUS] = { sizeof(junk), sizeof(junk) };
	struct lm_net_layout l;
	struct lm_net_server *s;
	uint8_t *zero;
	pthread_t th;

	(void)state;
	LM_REQUIRE_KVM();
	t.o.listening = t_recv_listening;
	t.o.listening_arg = &t;
	KVM_OK(lm_vm_migrate_layout(MEM, 4096, &l));
	zero = calloc(1, l.size);
	assert_non_null(zero);
	assert_int_equal(pthread_create(&th, NULL, t_recv_main, &t), 0);
	while (!atomic_load(&t.listening))
		usleep(1000);
	sc.mem = zero;
	sc.layout = &l;
	sc.to = t.addr;
	assert_int_equal(lm_net_server_create(&sc, &s), 0);
	assert_int_equal(lm_net_server_connect(s), 0);
	assert_int_equal(lm_net_server_precopy(s, NULL), 0);
	assert_int_equal(lm_net_server_switchover(s, NULL, VCPUS, blobs, lens), 0);
	lm_net_server_serve(s);	/* ends when the destination closes */
	pthread_join(th, NULL);
	lm_net_server_destroy(s);
	free(zero);
	assert_int_equal(t.rc, -EINVAL);
	if (!strstr(t.err, "is not that of a migrating 2-vCPU"))
		fail_msg("hostile source refused with '%s'", t.err);
	assert_int_equal(t.res.run.words_checked, 0);
}

/* vCPU state from a peer: every malformation refused by name. */
static void test_vcpu_state_refused(void **state)
{
	struct lm_vcpu_state st = { 0 };
	struct lm_snap_vcpu sv, out;
	uint8_t *buf, *bad;
	uint32_t len;
	char why[256];
	static const struct {
		const char *what;
		long at;	/* byte to change; -1: cut the buffer */
		uint8_t val;
		uint32_t cut;
		const char *want;
	} cases[] = {
		{ "truncated", -1, 0, 7, "truncated" },
		{ "empty", -1, 0, 0, "'regs' is missing" },
		{ "bad name", 1, '!', 0, "state name" },
		{ "zero-length name", 0, 0, 0, "malformed" },
		{ "huge length", 8, 0xff, 0, "claims" },
	};

	(void)state;
	st.msrs_len = sizeof(struct kvm_msrs);
	st.msrs = calloc(1, st.msrs_len);
	st.cpuid_len = sizeof(struct kvm_cpuid2);
	st.cpuid = calloc(1, st.cpuid_len);
	KVM_OK(vcpu_state__to_snap(&st, 0, &sv));
	KVM_OK(vcpu_state__pack(&sv, &buf, &len));
	assert_int_equal(vcpu_state__unpack(buf, len, 0, &out, why, sizeof(why)), 0);
	assert_int_equal(out.nr_blobs, sv.nr_blobs);
	vcpu_state__snap_free(&out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t n = cases[i].at < 0 ? cases[i].cut : len;

		bad = malloc(len);
		memcpy(bad, buf, len);
		if (cases[i].at >= 0)
			bad[cases[i].at] = cases[i].val;
		if (vcpu_state__unpack(bad, n, 0, &out, why, sizeof(why)) == 0)
			fail_msg("%s: accepted", cases[i].what);
		if (!strstr(why, cases[i].want))
			fail_msg("%s: refused with '%s', expected '%s'",
				 cases[i].what, why, cases[i].want);
		free(bad);
	}
	/* a blob of the wrong size: regs cut short */
	{
		struct lm_snap_vcpu s2 = { .id = 0 };
		uint8_t *b2;
		uint32_t l2;

		lm_snap_vcpu_add_blob(&s2, "regs", &st.regs, 8);
		KVM_OK(vcpu_state__pack(&s2, &b2, &l2));
		assert_int_not_equal(vcpu_state__unpack(b2, l2, 0, &out, why, sizeof(why)), 0);
		if (!strstr(why, "'regs' has the wrong size"))
			fail_msg("short regs refused with '%s'", why);
		free(b2);
		vcpu_state__snap_free(&s2);
	}
	free(buf);
	vcpu_state__snap_free(&sv);
	free(st.msrs);
	free(st.cpuid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcpu_state_refused),
		cmocka_unit_test(test_hybrid),
		cmocka_unit_test(test_precopy),
		cmocka_unit_test(test_postcopy),
		cmocka_unit_test(test_cut_and_resume),
		cmocka_unit_test(test_layout_mismatch),
		cmocka_unit_test(test_hostile_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
