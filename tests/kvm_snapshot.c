/*
 * kvm_snapshot.c - save a VM at its save point and restore it: lazily
 * (each delivery), eagerly, with working-set record then prefetch; and
 * every kind of bad snapshot refused with a message naming what is wrong.
 * The guest (guest/restore.c) checks every word of the pages it touches
 * after resuming; the VMM samples pages on its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "kvm_test.h"

#define MEM (16ULL << 20)

/* Save a 2-vCPU VM with a working set of ws_pages per vCPU (0: all). */
static void t_save(const char *dir, unsigned vcpus, uint64_t ws_pages)
{
	struct lm_vm_config c = t_vm_config(LM_VM_LIMIT, vcpus, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_RESTORE);
	struct lm_vm_result res;
	struct lm_vm *vm;

	c.backing = LM_BACKING_MEMFD;
	c.save_point = true;
	wl.ws_pages = ws_pages;
	KVM_OK(lm_vm_create(&c, &vm));
	KVM_OK(lm_vm_run(vm, &wl, &res));
	KVM_OK(lm_vm_save(vm, dir, NULL, NULL));
	lm_vm_destroy(vm);
}

static char *t_dir(void)
{
	char *d = strdup("/var/tmp/lazymem-kvm-snapshot.XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void t_rmdir(char *d)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", d);
	assert_int_equal(system(cmd), 0);
	free(d);
}

static void t_restore_ok(const struct lm_restore_opts *o,
			 struct lm_restore_result *r)
{
	KVM_OK(lm_vm_restore(o, r));
	if (!r->run.verified)
		fail_msg("restore of %s not verified: %llu words checked, %llu mismatches (first at gpa 0x%llx), %llu VMM samples wrong",
			 o->dir, (unsigned long long)r->run.words_checked,
			 (unsigned long long)r->run.mismatches,
			 (unsigned long long)r->run.first_bad_gpa,
			 (unsigned long long)r->run.host_mismatches);
}

/* A restore that must fail with a message containing want. */
static void t_restore_fails(const struct lm_restore_opts *o, const char *want)
{
	struct lm_restore_result r;
	int rc = lm_vm_restore(o, &r);

	if (rc == 0)
		fail_msg("restore of %s succeeded; expected a failure naming '%s'",
			 o->dir, want);
	if (!strstr(util_last_error(), want))
		fail_msg("restore of %s failed with '%s'; expected it to name '%s'",
			 o->dir, util_last_error(), want);
}

static void test_lazy_every_delivery(void **state)
{
	static const enum lm_vm_delivery ds[] = {
		LM_VM_EXIT, LM_VM_HYBRID, LM_VM_HANDLER, LM_VM_MINOR,
	};
	char *dir;

	(void)state;
	LM_REQUIRE_KVM();
	dir = t_dir();
	t_save(dir, 2, 0);
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
		struct lm_restore_opts o = {
			.dir = dir, .mode = LM_RESTORE_LAZY, .delivery = ds[i],
			.background = i == 0, .timeout_ms = 30000,
		};
		struct lm_restore_result r;

		t_restore_ok(&o, &r);
		/* every word of RAM, checked by the guest after resuming */
		assert_int_equal(r.run.words_checked, MEM / 8);
		/* with background fill the fill may win every page */
		if (!o.background)
			assert_true(r.pages_faulted > 0);
		else
			assert_int_equal(r.pages_faulted +
					 r.run.stats.pages_background,
					 MEM / 4096);
		assert_true(r.first_instruction_ms > 0);
	}
	t_rmdir(dir);
}

static void test_eager(void **state)
{
	struct lm_restore_result r;
	char *dir;

	(void)state;
	LM_REQUIRE_KVM();
	dir = t_dir();
	t_save(dir, 2, 0);
	struct lm_restore_opts o = {
		.dir = dir, .mode = LM_RESTORE_EAGER, .timeout_ms = 30000,
	};
	t_restore_ok(&o, &r);
	assert_int_equal(r.run.words_checked, MEM / 8);
	assert_int_equal(r.pages_faulted, 0);
	t_rmdir(dir);
}

static void test_record_then_prefetch(void **state)
{
	struct lm_restore_result rec, pf;
	char *dir, ws[300];

	(void)state;
	LM_REQUIRE_KVM();
	dir = t_dir();
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	t_save(dir, 1, 1024);
	struct lm_restore_opts o = {
		.dir = dir, .mode = LM_RESTORE_LAZY, .delivery = LM_VM_EXIT,
		.record_ws = ws, .timeout_ms = 30000,
	};
	t_restore_ok(&o, &rec);
	assert_int_equal(rec.ws_recorded, 1024);
	assert_int_equal(rec.pages_faulted, 1024);
	o.record_ws = NULL;
	o.prefetch = ws;
	t_restore_ok(&o, &pf);
	assert_int_equal(pf.ws_loaded, 1024);
	assert_true(pf.pages_prefetched > 0);
	if (pf.pages_faulted >= rec.pages_faulted)
		fail_msg("prefetch run faulted %llu pages on demand, the recording run %llu",
			 (unsigned long long)pf.pages_faulted,
			 (unsigned long long)rec.pages_faulted);
	/* a corrupt working-set image is never installed: its pages come
	 * from the snapshot instead, checked, and the guest sees no damage */
	char img[340];
	snprintf(img, sizeof(img), "%s.img/memory.img", ws);
	FILE *fi = fopen(img, "r+b");
	assert_non_null(fi);
	assert_int_equal(fseek(fi, 4096 * 3 + 8, SEEK_SET), 0);
	fputc(0x5a, fi);
	fclose(fi);
	t_restore_ok(&o, &pf);
	assert_int_equal(pf.run.mismatches, 0);
	/* a working-set file that does not fit is refused up front */
	FILE *f = fopen(ws, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 16, SEEK_SET), 0);
	fputc(0x20, f);		/* page size 4096 -> 0x2000... */
	fclose(f);
	t_restore_fails(&o, "page size");
	t_rmdir(dir);
}

/* Edit meta.json: replace the first occurrence of from with to. */
static void t_edit_meta(const char *dir, const char *from, const char *to)
{
	char path[300], *buf, *p;
	FILE *f;
	long len;

	snprintf(path, sizeof(path), "%s/meta.json", dir);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	p = strstr(buf, from);
	if (!p)
		fail_msg("meta.json of %s has no '%s'", dir, from);
	f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(buf, 1, (size_t)(p - buf), f);
	fputs(to, f);
	fputs(p + strlen(from), f);
	fclose(f);
	free(buf);
}

static void test_bad_snapshots(void **state)
{
	char *dir, path[300], sz[64];
	struct lm_restore_opts o = {
		.mode = LM_RESTORE_LAZY, .delivery = LM_VM_EXIT,
		.timeout_ms = 30000,
	};
	struct stat st;

	(void)state;
	LM_REQUIRE_KVM();
	dir = t_dir();
	o.dir = dir;
	t_save(dir, 2, 0);

	/* wrong version */
	t_edit_meta(dir, "\"version\":1", "\"version\":99");
	t_restore_fails(&o, "version");
	t_edit_meta(dir, "\"version\":99", "\"version\":1");

	/* mismatched vCPU count and memory size */
	t_edit_meta(dir, "\"vcpus\":2", "\"vcpus\":3");
	t_restore_fails(&o, "vCPU count");
	t_edit_meta(dir, "\"vcpus\":3", "\"vcpus\":2");
	snprintf(sz, sizeof(sz), "\"mem\":%llu", MEM);
	t_edit_meta(dir, sz, "\"mem\":8388608");
	t_restore_fails(&o, "memory size");
	t_edit_meta(dir, "\"mem\":8388608", sz);

	/* missing blob */
	t_edit_meta(dir, "\"fpu\"", "\"fpx\"");
	t_restore_fails(&o, "state 'fpu' is missing");
	t_edit_meta(dir, "\"fpx\"", "\"fpu\"");

	/* it is whole again */
	struct lm_restore_result r;
	o.timeout_ms = 30000;
	t_restore_ok(&o, &r);

	/* truncated memory.img */
	snprintf(path, sizeof(path), "%s/memory.img", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 4096), 0);
	t_restore_fails(&o, "memory.img");
	assert_int_equal(truncate(path, st.st_size), 0);
	t_rmdir(dir);
}

/* A corrupt RAM page fails the run naming the page, lazily and eagerly;
 * it never reaches the guest. */
static void test_corrupt_page(void **state)
{
	char *dir, path[300];
	struct lm_restore_opts o = {
		.mode = LM_RESTORE_LAZY, .delivery = LM_VM_EXIT,
		.timeout_ms = 30000,
	};
	uint64_t reserved;
	FILE *f;

	(void)state;
	LM_REQUIRE_KVM();
	dir = t_dir();
	o.dir = dir;
	t_save(dir, 1, 0);
	/* RAM starts after the reserved area in memory.img (region 1) */
	struct lm_snap_meta m;
	assert_int_equal(lm_snap_open(dir, &m), 0);
	reserved = m.regions[1].offset;
	lm_snap_meta_free(&m);
	snprintf(path, sizeof(path), "%s/memory.img", dir);
	f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, (long)(reserved + 0x5000 + 100), SEEK_SET), 0);
	fputc(0xee, f);
	fclose(f);
	t_restore_fails(&o, "gpa 0x100005000");
	o.background = true;
	t_restore_fails(&o, "0x5000");
	o.mode = LM_RESTORE_EAGER;
	t_restore_fails(&o, "gpa 0x100005000");
	t_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_every_delivery),
		cmocka_unit_test(test_eager),
		cmocka_unit_test(test_record_then_prefetch),
		cmocka_unit_test(test_bad_snapshots),
		cmocka_unit_test(test_corrupt_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
