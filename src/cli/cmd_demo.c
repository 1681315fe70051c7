/*
 * cmd_demo.c - `lazymem demo`: the main job in one command, no arguments.
 *
 * 1. A test VM runs its workload's fill phase (the guest writes every word
 *    of its RAM) and stops at the workload's save point; the whole VM is
 *    saved: RAM and the reserved area (code, page tables, stacks,
 *    mailboxes) as a sparse raw image with one hash per page, and each
 *    vCPU's registers, special registers, FPU, MSRs and CPUID.
 * 2. A new VM is restored from it lazily: its vCPUs resume right after the
 *    save point before any RAM is read; each page the guest touches is
 *    read from the snapshot, checked against its hash and installed by the
 *    vCPU that faulted on it. The guest checks every word of its working
 *    set (10% of RAM, scattered). The pages it touched are recorded.
 * 3. Restored again with that working set prefetched ahead of the vCPUs:
 *    far fewer faults on the vCPUs, the guest checks again.
 * 4. One bit of a RAM page in the snapshot is flipped and the restore
 *    repeated: the corrupt page must be refused, naming it, never handed
 *    to the guest.
 *
 * Where /dev/kvm cannot be opened (or with --no-kvm), the same four steps
 * run on plain threads instead of vCPUs: cmd_demo_threads.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lazymem/lazymem.h>
#include "util/clock.h"
#include "util/error.h"
#include "util/fs.h"
#include "cli/cli.h"
#include "vmm/vm.h"
#include "vmsnap/vmsnap.h"

#define GEN 7

struct demo {
	uint64_t mem;
	unsigned vcpus;
	char dir[256];
	char ws[300];
	bool keep;
	uint64_t ram_offset;	/* of RAM in memory.img */
};

static int step_boot_and_save(struct demo *d)
{
	struct lm_vm_config cfg = {
		.mem_size = d->mem, .nr_vcpus = d->vcpus,
		.backing = LM_BACKING_MEMFD, .delivery = LM_VM_LIMIT,
		.guest_page_size = 4096, .gen = GEN, .save_point = true,
	};
	struct lm_vm_workload wl = {
		.kind = LM_WL_RESTORE, .timeout_ms = 60000, .seed = 1,
	};
	struct lm_vm_result res;
	struct lm_snap_meta m;
	struct lm_vm *vm;
	uint64_t t0;
	int err;

	wl.ws_pages = d->mem / 4096 / d->vcpus / 10;
	printf("1. boot a test VM (%u vCPUs, %llu MiB); the guest fills its "
	       "RAM and stops at its save point; save the whole VM\n",
	       d->vcpus, (unsigned long long)(d->mem >> 20));
	err = lm_vm_create(&cfg, &vm);
	if (err)
		return cli_fail("demo: %s", util_last_error());
	t0 = lm_now_ns();
	err = lm_vm_run(vm, &wl, &res);
	if (err) {
		lm_vm_destroy(vm);
		return cli_fail("demo: first VM failed: %s", util_last_error());
	}
	printf("  filled in %.3f s; every vCPU at the save point\n",
	       (double)(lm_now_ns() - t0) / 1e9);
	t0 = lm_now_ns();
	err = lm_vm_save(vm, d->dir, cli_progress_enabled() ? cli_progress : NULL,
			 (void *)"save");
	lm_vm_destroy(vm);
	if (err)
		return cli_fail("demo: %s", util_last_error());
	if (lm_snap_open(d->dir, &m))
		return cli_fail("demo: %s", lm_last_error());
	d->ram_offset = m.regions[1].offset;
	printf("  saved to %s in %.3f s: %llu MiB (RAM + %llu MiB reserved "
	       "area), %llu pages stored, each with an XXH3 hash; per vCPU: "
	       "regs, sregs, fpu, msrs, cpuid\n", d->dir,
	       (double)(lm_now_ns() - t0) / 1e9,
	       (unsigned long long)(m.mem_size >> 20),
	       (unsigned long long)(m.regions[0].size >> 20),
	       (unsigned long long)m.nonzero_pages);
	lm_snap_meta_free(&m);
	return 0;
}

static void print_restore(const struct lm_restore_result *r)
{
	printf("  first guest instruction %.2f ms after the restore call; "
	       "done at %.3f s; %llu pages faulted in by the vCPUs, %llu "
	       "prefetched; %llu words checked by the guest: %s\n",
	       r->first_instruction_ms, r->seconds,
	       (unsigned long long)r->pages_faulted,
	       (unsigned long long)r->pages_prefetched,
	       (unsigned long long)r->run.words_checked,
	       r->run.verified ? "all correct" : "MISMATCH");
}

/* Restore from the snapshot. expect_fail: a corrupt page must stop it. */
static int step_restore(const struct demo *d, bool record, bool prefetch,
			bool expect_fail)
{
	struct lm_restore_opts o = {
		.dir = d->dir, .mode = LM_RESTORE_LAZY,
		.delivery = LM_VM_EXIT, .timeout_ms = 60000,
		.record_ws = record ? d->ws : NULL,
		.prefetch = prefetch ? d->ws : NULL,
		/* the corrupt run: the background fill reaches every page */
		.background = expect_fail,
	};
	struct lm_restore_result res;
	int err = lm_vm_restore(&o, &res);

	if (expect_fail) {
		if (!err)
			return cli_fail("demo: a corrupt page reached the "
					"guest unnoticed");
		printf("  refused, as it must be: %s\n", util_last_error());
		return 0;
	}
	if (err || !res.run.verified)
		return cli_fail("demo: restored VM failed: %s",
				err ? util_last_error() : "guest mismatch");
	print_restore(&res);
	if (record)
		printf("  recorded its working set: %llu pages, first touch "
		       "first, to %s\n", (unsigned long long)res.ws_recorded,
		       d->ws);
	return 0;
}

int cli_demo_flip_bit(const char *dir, uint64_t off)
{
	char path[512];
	uint8_t b;
	int fd;

	snprintf(path, sizeof(path), "%s/memory.img", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1) {
		if (fd >= 0)
			close(fd);
		return cli_fail("demo: %s: %s", path, strerror(errno));
	}
	b ^= 0x10;
	if (pwrite(fd, &b, 1, (off_t)off) != 1) {
		close(fd);
		return cli_fail("demo: %s: %s", path, strerror(errno));
	}
	close(fd);
	return 0;
}

static int demo_vm(struct demo *d)
{
	int err = step_boot_and_save(d);

	if (!err) {
		printf("2. restore a new VM from the snapshot, lazily; it resumes "
		       "after the save point and checks its working set\n");
		err = step_restore(d, true, false, false);
	}
	if (!err) {
		printf("3. restore again, with the recorded working set "
		       "prefetched\n");
		err = step_restore(d, false, true, false);
	}
	if (!err) {
		printf("4. flip one bit of RAM page 1000 in the snapshot and "
		       "restore again\n");
		err = cli_demo_flip_bit(d->dir, d->ram_offset + 1000 * 4096 + 123);
		if (!err)
			err = step_restore(d, false, false, true);
		/* Flip it back: a kept snapshot must be a good one. */
		if (!err)
			err = cli_demo_flip_bit(d->dir,
						d->ram_offset + 1000 * 4096 + 123);
	}
	return err;
}

static void usage(FILE *f)
{
	fputs("usage: lazymem demo [--mem SIZE] [--vcpus N] [--dir DIR] "
	      "[--keep] [--no-kvm]\n\n"
	      "Save a test VM at its save point, restore it lazily (recording\n"
	      "its working set), restore it again with that working set\n"
	      "prefetched, the guest checking what it touches each time; then\n"
	      "show that a corrupt page is refused. Defaults: 256M, 2 vCPUs, a\n"
	      "temporary directory removed afterwards (--keep keeps it).\n\n"
	      "Where /dev/kvm cannot be opened, the same four steps run on\n"
	      "plain threads instead of vCPUs: memory filled with the guests'\n"
	      "pattern and saved as a snapshot, restored lazily with each fault\n"
	      "resolved by the thread that took it (SIGBUS), then with the\n"
	      "working set prefetched, then with a corrupt page that must be\n"
	      "refused; --vcpus is then the number of threads.\n\n"
	      "  --no-kvm     run the plain-thread demo even where /dev/kvm\n"
	      "               works (for tests)\n", f);
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "dir", required_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "no-kvm", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct demo d = { .mem = 256ull << 20, .vcpus = 2 };
	char why[64];
	bool no_kvm = false;
	int o, err, fd = -1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (cli_parse_size(optarg, &d.mem) || d.mem < (4u << 20) ||
			    d.mem % (2u << 20))
				return cli_usage_error("--mem '%s': expected a "
					"multiple of 2M, at least 4M", optarg);
			break;
		case 'v':
			d.vcpus = (unsigned)atoi(optarg);
			if (d.vcpus < 1 || d.vcpus > LM_MAX_VCPUS)
				return cli_usage_error("--vcpus '%s': expected "
					"1..%d", optarg, LM_MAX_VCPUS);
			break;
		case 'd':
			snprintf(d.dir, sizeof(d.dir), "%s", optarg);
			break;
		case 'k':
			d.keep = true;
			break;
		case 'n':
			no_kvm = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_usage_error("demo: bad option (see --help)");
		}
	}
	if (no_kvm)
		snprintf(why, sizeof(why), "--no-kvm");
	else if ((fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		snprintf(why, sizeof(why), "%s", strerror(errno));
	else
		close(fd);
	if (fd < 0)
		printf("no /dev/kvm here (%s): running the same job on plain "
		       "threads instead of vCPUs\n", why);
	if (!d.dir[0]) {
		snprintf(d.dir, sizeof(d.dir), "/tmp/lazymem-demo-XXXXXX");
		if (!mkdtemp(d.dir))
			return cli_fail("demo: mkdtemp: %s", strerror(errno));
	}
	snprintf(d.ws, sizeof(d.ws), "%s/ws.lmws", d.dir);
	err = fd < 0 ? cli_demo_threads(d.dir, d.mem, d.vcpus) : demo_vm(&d);
	if (!d.keep) {
		if (util_remove_tree(d.dir))
			fprintf(stderr, "lazymem: demo: could not remove %s\n",
				d.dir);
	}
	if (!err)
		printf("demo passed\n");
	return err;
}
