/*
 * kvm_fc.c - lazymem fc-handler end to end against real KVM guests: our
 * VMM hands its guest RAM's userfaultfd to the daemon exactly as
 * Firecracker does (src/fcproto/client.c), the guest touches and checks every
 * word of its memory, which the daemon serves from one memory file. With
 * 4 KiB and 2 MiB pages, several VMs one after another on one daemon and
 * one memory file, and a hostile client in between that must not disturb
 * the next VM.
 */
#include "kvm_test.h"
#include "fc_test.h"

#define GEN 5
#define MEM (32ull << 20)

/* The memory file: guest RAM as the pattern source of generation GEN
 * would fill it, which is what the guest's verify expects. */
static void make_mem_file(struct t_daemon *d, uint64_t size)
{
	struct lm_source *src;
	uint8_t *buf = malloc(1 << 20);
	int fd;

	t_make_mem(d, 4096);	/* names and directory; content replaced */
	LM_ASSERT(pattern_source__create(size, GEN, 4096, false, &src) == 0,
		  "pattern source");
	fd = open(d->mem, O_WRONLY | O_TRUNC);
	LM_ASSERT(fd >= 0, "open %s", d->mem);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		LM_OK(lm_source_read(src, off, buf, 1 << 20));
		LM_ASSERT(pwrite(fd, buf, 1 << 20, (off_t)off) == 1 << 20,
			  "pwrite");
	}
	close(fd);
	d->mem_size = size;
	lm_source_destroy(src);
	free(buf);
}

static void run_guest(struct t_daemon *d, enum lm_backing b,
		      enum lm_workload w, unsigned vcpus)
{
	struct lm_vm_config cfg = t_vm_config(LM_VM_HANDLER, vcpus, MEM);
	struct lm_vm_workload wl = t_workload(w);
	struct lm_vm_result res;

	cfg.backing = b;
	cfg.gen = GEN;
	cfg.fc_socket = d->sock;
	t_vm_run(&cfg, &wl, &res);
	LM_ASSERT(res.verified && res.words_checked > 0, "guest verified");
}

static void test_fc_4k(void **s)
{
	struct t_daemon d = { 0 };

	(void)s;
	LM_REQUIRE_KVM();
	make_mem_file(&d, MEM);
	t_daemon_start(&d, NULL);
	run_guest(&d, LM_BACKING_ANON, LM_WL_TOUCH, 2);
	run_guest(&d, LM_BACKING_ANON, LM_WL_RANDOM, 2);
	run_guest(&d, LM_BACKING_ANON, LM_WL_LOCKINC, 2);
	/* The daemon reported each VM's statistics on its disconnect. */
	LM_ASSERT(t_wait_for(d.out, "faults", 5000), "per-VM report");
	t_cleanup(&d);
}

static void test_fc_prefetch_all(void **s)
{
	static const char *const extra[] = { "--prefetch", "all", NULL };
	struct t_daemon d = { 0 };

	(void)s;
	LM_REQUIRE_KVM();
	make_mem_file(&d, MEM);
	t_daemon_start(&d, extra);
	run_guest(&d, LM_BACKING_ANON, LM_WL_VERIFY, 2);
	t_cleanup(&d);
}

static void test_fc_2m(void **s)
{
	struct t_daemon d = { 0 };
	long prev;

	(void)s;
	LM_REQUIRE_KVM();
	prev = t_hugepages_reserve((long)(MEM >> 21) + 2);
	if (prev < 0)
		LM_SKIP("cannot reserve 2 MiB hugetlb pages");
	make_mem_file(&d, MEM);
	t_daemon_start(&d, NULL);
	run_guest(&d, LM_BACKING_HUGETLB, LM_WL_TOUCH, 2);
	t_cleanup(&d);
	t_hugepages_restore(prev);
}

struct concurrent {
	struct t_daemon *d;
	enum lm_workload w;
};

static void *concurrent_guest(void *arg)
{
	struct concurrent *c = arg;

	run_guest(c->d, LM_BACKING_ANON, c->w, 2);
	return NULL;
}

/* Three VMs at once, restored from one memory file by one daemon. */
static void test_fc_concurrent(void **s)
{
	struct t_daemon d = { 0 };
	struct concurrent c[3] = {
		{ &d, LM_WL_TOUCH }, { &d, LM_WL_RANDOM }, { &d, LM_WL_VERIFY },
	};
	pthread_t t[3];

	(void)s;
	LM_REQUIRE_KVM();
	make_mem_file(&d, MEM);
	t_daemon_start(&d, NULL);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, concurrent_guest, &c[i]);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	LM_ASSERT(t_wait_for(d.out, "vm 3", 5000), "three VMs served");
	t_cleanup(&d);
}

/*
 * Balloon in the middle of a VM's life: the guest fills and checks its
 * memory, the VMM gives 4 MiB of it back (MADV_DONTNEED, as a balloon
 * device does), and from then on that range is served as zero pages, not
 * file contents, while the rest keeps the guest's data. The guests here
 * cannot take part in a balloon protocol, so the range is checked through
 * the VMM's own view of guest RAM, whose faults the daemon serves.
 */
static void test_fc_balloon(void **s)
{
	struct lm_vm_config cfg = t_vm_config(LM_VM_HANDLER, 2, MEM);
	struct lm_vm_workload wl = t_workload(LM_WL_VERIFY);
	struct lm_vm_result res;
	struct t_daemon d = { 0 };
	struct lm_vm *vm;
	const uint64_t off = 8ull << 20, len = 4ull << 20;

	(void)s;
	LM_REQUIRE_KVM();
	make_mem_file(&d, MEM);
	t_daemon_start(&d, NULL);
	cfg.gen = GEN;
	cfg.fc_socket = d.sock;
	KVM_OK(lm_vm_create(&cfg, &vm));
	KVM_OK(lm_vm_run(vm, &wl, &res));
	LM_ASSERT(res.verified, "guest verified before the balloon");
	LM_OK(fc_guest_balloon(&vm->ram.fc, off, len));
	const volatile uint64_t *w = (const volatile uint64_t *)vm->ram.host;
	for (uint64_t o = 0; o < MEM; o += 4096) {
		uint64_t want = o >= off && o < off + len ? 0
							  : lm_pattern(o + 8, GEN);
		LM_ASSERT(w[o / 8 + 1] == want, "word at 0x%llx: 0x%llx, want "
			  "0x%llx", (unsigned long long)(o + 8),
			  (unsigned long long)w[o / 8 + 1],
			  (unsigned long long)want);
	}
	lm_vm_destroy(vm);
	LM_ASSERT(t_wait_for(d.out, "1024 removed", 5000),
		  "the daemon counted the removed pages");
	t_cleanup(&d);
}

/* A client that sends garbage is refused; the next VM is served. */
static void test_fc_hostile_then_guest(void **s)
{
	static const char bad[] = "[{\"base_host_virt_addr\": \"nope\"}]";
	struct t_daemon d = { 0 };
	int sock = -1;

	(void)s;
	LM_REQUIRE_KVM();
	make_mem_file(&d, MEM);
	t_daemon_start(&d, NULL);
	LM_ASSERT(fc_client_send(d.sock, bad, sizeof(bad) - 1, NULL, 0,
				 &sock) == 0, "send garbage");
	LM_ASSERT(t_wait_for(d.err, "refused", 5000), "garbage refused");
	close(sock);
	run_guest(&d, LM_BACKING_ANON, LM_WL_TOUCH, 1);
	t_cleanup(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fc_4k),
		cmocka_unit_test(test_fc_prefetch_all),
		cmocka_unit_test(test_fc_2m),
		cmocka_unit_test(test_fc_hostile_then_guest),
		cmocka_unit_test(test_fc_concurrent),
		cmocka_unit_test(test_fc_balloon),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s LAZYMEM\n", argv[0]);
		return 2;
	}
	t_lazymem = argv[1];
	return cmocka_run_group_tests_name("kvm_fc", tests, NULL, NULL);
}
