/*
 * cmd_demo.c - `lazymem demo`: the main job in one command, no arguments.
 *
 * 1. A test VM runs with its RAM filled lazily from an image; its guest
 *    reads and checks every word. Its memory is then saved to a snapshot
 *    (sparse raw image + one hash per page + metadata).
 * 2. A second VM is restored from that snapshot lazily: it starts at once,
 *    each page it touches is read from the snapshot, checked against its
 *    hash and installed by the vCPU that faulted on it; the guest checks
 *    every word again.
 * 3. One byte of the snapshot is flipped and the restore repeated: the
 *    corrupt page must be refused, naming it, never handed to the guest.
 *
 * What is restored is guest memory: the vCPUs of the second VM start the
 * workload afresh rather than resume mid-instruction (resuming saved vCPU
 * state is the snapshot/restore work still open).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lazymem/lazymem.h>
#include "cli/cli.h"
#include "kvm/kvm.h"

#define GEN 7

struct demo {
	uint64_t mem;
	unsigned vcpus;
	char dir[256];
	bool keep;
};

static int run_vm(const struct demo *d, struct lm_source *src,
		  struct lm_vm_result *res, struct lm_vm **keep_vm)
{
	struct lm_vm_config cfg = {
		.mem_size = d->mem, .nr_vcpus = d->vcpus,
		.backing = LM_BACKING_ANON, .delivery = LM_VM_EXIT,
		.guest_page_size = 4096, .gen = GEN, .ram_source = src,
	};
	struct lm_vm_workload wl = {
		.kind = LM_WL_VERIFY, .iterations = 1, .timeout_ms = 60000,
		.seed = 1,
	};
	struct lm_vm *vm;
	int err = lm_vm_create(&cfg, &vm);

	if (err)
		return err;
	err = lm_vm_run(vm, &wl, res);
	if (!err && keep_vm)
		*keep_vm = vm;
	else
		lm_vm_destroy(vm);
	return err;
}

static void print_run(const char *what, const struct lm_vm_result *r)
{
	printf("  %s: %.3f s, %llu pages faulted in by the vCPUs themselves "
	       "(p50 %.1f us, p99 %.1f us), %llu words checked by the guest, "
	       "%s\n", what, r->total_seconds,
	       (unsigned long long)(r->stats.pages_demand +
				    r->stats.pages_around),
	       r->stats.lat_p50_ns / 1e3, r->stats.lat_p99_ns / 1e3,
	       (unsigned long long)r->words_checked,
	       r->verified ? "all correct" : "MISMATCH");
}

static int step_boot_and_save(const struct demo *d)
{
	struct lm_vm_result res;
	struct lm_vm *vm = NULL;
	struct lm_snap_vcpu *vcpus = calloc(d->vcpus, sizeof(*vcpus));
	struct lm_snap_meta m = {
		.page_size = 4096, .mem_size = d->mem, .nr_regions = 1,
		.regions = { { LM_GPA_RAM, d->mem, 0 } },
		.nr_vcpus = d->vcpus, .vcpus = vcpus,
		.workload = (char *)"{\"workload\":\"verify\",\"gen\":7,"
			    "\"restore\":\"memory only\"}",
	};
	uint64_t t0;
	int err;

	printf("1. boot a test VM (%u vCPUs, %llu MiB) whose RAM fills "
	       "lazily from its image; the guest checks every word\n",
	       d->vcpus, (unsigned long long)(d->mem >> 20));
	if (!vcpus)
		return cli_fail("demo: out of memory");
	for (unsigned i = 0; i < d->vcpus; i++)
		vcpus[i].id = i;
	err = run_vm(d, NULL, &res, &vm);
	if (err || !res.verified) {
		free(vcpus);
		return cli_fail("demo: first VM failed: %s", lm_vm_last_error());
	}
	print_run("ran", &res);
	t0 = lm_now_ns();
	err = lm_snap_save(d->dir, &m, vm->ram.vmm_view,
			   cli_progress_enabled() ? cli_progress : NULL,
			   (void *)"save");
	lm_vm_destroy(vm);
	free(vcpus);
	if (err)
		return cli_fail("demo: %s", lm_last_error());
	printf("  saved its memory to %s in %.3f s: %llu of %llu pages "
	       "stored, each with an XXH3 hash\n", d->dir,
	       (double)(lm_now_ns() - t0) / 1e9,
	       (unsigned long long)m.nonzero_pages,
	       (unsigned long long)(d->mem / 4096));
	return 0;
}

/* Restore from the snapshot. expect_fail: a corrupt page must stop it. */
static int step_restore(const struct demo *d, bool expect_fail)
{
	struct lm_snap_meta m;
	struct lm_source *src;
	struct lm_vm_result res;
	int err;

	if (lm_snap_open(d->dir, &m))
		return cli_fail("demo: %s", lm_last_error());
	if (lm_snap_source_open(d->dir, &m, &src)) {
		lm_snap_meta_free(&m);
		return cli_fail("demo: %s", lm_last_error());
	}
	err = run_vm(d, src, &res, NULL);
	lm_source_destroy(src);
	lm_snap_meta_free(&m);
	if (expect_fail) {
		if (!err)
			return cli_fail("demo: a corrupt page reached the "
					"guest unnoticed");
		printf("  refused, as it must be: %s\n", lm_vm_last_error());
		return 0;
	}
	if (err || !res.verified)
		return cli_fail("demo: restored VM failed: %s",
				lm_vm_last_error());
	print_run("restored and ran", &res);
	printf("  the guest's first instruction ran before any of its "
	       "memory was read; %llu MiB were read from the snapshot, "
	       "each page checked\n",
	       (unsigned long long)(res.stats.bytes_read >> 20));
	return 0;
}

static int flip_byte(const struct demo *d, uint64_t off)
{
	char path[512];
	uint8_t b;
	int fd;

	snprintf(path, sizeof(path), "%s/memory.img", d->dir);
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

static void usage(FILE *f)
{
	fputs("usage: lazymem demo [--mem SIZE] [--vcpus N] [--dir DIR] "
	      "[--keep]\n\n"
	      "Save a test VM's memory to a snapshot, restore it lazily into a\n"
	      "new VM whose guest checks every word, then show that a corrupt\n"
	      "page is refused. Needs /dev/kvm. Defaults: 256M, 2 vCPUs, a\n"
	      "temporary directory removed afterwards (--keep keeps it).\n", f);
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },
		{ "vcpus", required_argument, NULL, 'v' },
		{ "dir", required_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct demo d = { .mem = 256ull << 20, .vcpus = 2 };
	char cmd[600];
	int o, err;

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
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_usage_error("demo: bad option (see --help)");
		}
	}
	if (access("/dev/kvm", R_OK | W_OK))
		return cli_fail("demo: /dev/kvm is not usable here (%s); the "
				"demo boots real guests", strerror(errno));
	if (!d.dir[0]) {
		snprintf(d.dir, sizeof(d.dir), "/tmp/lazymem-demo-XXXXXX");
		if (!mkdtemp(d.dir))
			return cli_fail("demo: mkdtemp: %s", strerror(errno));
	}
	err = step_boot_and_save(&d);
	if (!err) {
		printf("2. restore a new VM from the snapshot, lazily\n");
		err = step_restore(&d, false);
	}
	if (!err) {
		printf("3. flip one bit of page 1000 in the snapshot and "
		       "restore again\n");
		err = flip_byte(&d, 1000 * 4096 + 123);
		if (!err)
			err = step_restore(&d, true);
		/* Flip it back: a kept snapshot must be a good one. */
		if (!err)
			err = flip_byte(&d, 1000 * 4096 + 123);
	}
	if (!d.keep) {
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", d.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "lazymem: demo: could not remove %s\n",
				d.dir);
	}
	if (!err)
		printf("demo passed\n");
	return err;
}
