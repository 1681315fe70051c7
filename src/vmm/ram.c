/*
 * ram.c - guest RAM, memslot 1: how it is mapped and filled per delivery.
 *
 *   limit    plain memory (anonymous, memfd or hugetlb memfd), no
 *            userfaultfd: the kernel fills it, the upper bound on speed;
 *   handler  a region with blocking MISSING faults, handler threads and
 *            UFFDIO_COPY (any backing);
 *   minor    a memfd region with blocking MINOR faults: the handler writes
 *            the page through the alias and maps it with UFFDIO_CONTINUE;
 *   exit     a region in SIGBUS mode: a vCPU's fault comes back to its own
 *            thread as an exit (fault_exit.c); COPY on anonymous memory,
 *            CONTINUE on shared memory;
 *   hybrid   exit for the vCPUs, plus a second mapping registered for
 *            blocking MINOR faults that the VMM itself reads through.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/error.h"
#include "vmm/vm.h"
#include "vmm/pattern.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif

/* A clear error before mmap or a first fault would fail obscurely. */
static int ram__check_hugepages(uint64_t size)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
			"r");
	unsigned long long free_pages = 0;
	int n;

	if (!f)
		return util_error(-ENOENT, "hugetlb backing: 2 MiB huge pages not available");
	n = fscanf(f, "%llu", &free_pages);
	fclose(f);
	if (n != 1 || free_pages < size / (2u << 20))
		return util_error(-ENOMEM,
				   "hugetlb backing: %llu free 2 MiB pages, %llu needed (raise /proc/sys/vm/nr_hugepages)",
				   free_pages,
				   (unsigned long long)(size / (2u << 20)));
	return 0;
}

static int ram__create_plain(struct lm_vm_ram *ram, enum lm_backing b)
{
	int fixed = ram->at ? MAP_FIXED : 0;
	void *p;

	if (b == LM_BACKING_ANON) {
		p = mmap(ram->at, ram->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed,
			 -1, 0);
	} else {
		unsigned flags = MFD_CLOEXEC;

		if (b == LM_BACKING_HUGETLB)
			flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		ram->memfd = memfd_create("lazymem-guest-ram", flags);
		if (ram->memfd < 0)
			return util_error(-errno, "memfd_create for guest RAM: %s",
					   strerror(errno));
		if (ftruncate(ram->memfd, (off_t)ram->size) < 0)
			return util_error(-errno, "guest RAM memfd of %llu bytes: %s",
					   (unsigned long long)ram->size,
					   strerror(errno));
		p = mmap(ram->at, ram->size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | fixed, ram->memfd, 0);
	}
	if (p == MAP_FAILED)
		return util_error(-errno, "guest RAM mapping of %llu bytes: %s",
				   (unsigned long long)ram->size, strerror(errno));
	ram->host = ram->vmm_view = p;
	return 0;
}

/* Firecracker's way: map, register MISSING with EVENT_REMOVE, send the
 * region list and the userfaultfd to the handler; it does the rest. */
static int ram__create_fc(struct lm_vm *vm)
{
	struct lm_vm_ram *ram = &vm->ram;
	int err;

	ram->fc.sock = ram->fc.uffd = -1;
	err = fc_guest_start(&ram->fc, vm->cfg.fc_socket, ram->size,
			     ram->page_size, 1);
	if (err)
		return util_error(err, "handing guest RAM (%llu MiB, %llu-byte "
				   "pages) to the page-fault handler at %s: %s",
				   (unsigned long long)(ram->size >> 20),
				   (unsigned long long)ram->page_size,
				   vm->cfg.fc_socket, strerror(-err));
	ram->host = ram->vmm_view = ram->fc.mem;
	return 0;
}

int ram__create(struct lm_vm *vm)
{
	const struct lm_vm_config *cfg = &vm->cfg;
	struct lm_vm_ram *ram = &vm->ram;
	struct lm_region_config rc = { 0 };
	int err;

	ram->delivery = cfg->delivery;
	ram->size = cfg->mem_size;
	ram->page_size = lm_backing_page_size(cfg->backing);
	if (cfg->backing == LM_BACKING_HUGETLB) {
		err = ram__check_hugepages(ram->size);
		if (err)
			return err;
	}
	if (cfg->fc_socket) {
		if (cfg->delivery != LM_VM_HANDLER)
			return util_error(-EINVAL, "a handler socket (%s) "
					   "needs delivery handler, not %s",
					   cfg->fc_socket,
					   lm_vm_delivery_name(cfg->delivery));
		return ram__create_fc(vm);
	}
	if (cfg->delivery == LM_VM_LIMIT)
		return ram__create_plain(ram, cfg->backing);

	if (!cfg->ram_source) {
		err = pattern_source__create(ram->size, cfg->gen,
					     ram->page_size, cfg->code_source,
					     &ram->source);
		if (err)
			return util_error(err, "pattern source: %s",
					   strerror(-err));
	}

	rc.name = "guest-ram";
	rc.size = ram->size;
	rc.backing = cfg->backing;
	rc.source = cfg->ram_source ? cfg->ram_source : ram->source;
	if (cfg->fail_page) {
		err = lm_source_failing_create(rc.source, cfg->fail_off, -EIO,
					       &ram->failing);
		if (err)
			return util_error(err, "failing source: %s",
					   lm_last_error());
		rc.source = ram->failing;
	}
	rc.handler_threads = vm->nr_handlers;
	rc.on_fail = vcpu__ram_failed;
	rc.fault_around = cfg->fault_around;
	rc.background = cfg->background;
	if (cfg->placement != LM_PLACE_ANY)
		rc.handler_cpus = vm->handler_cpus;
	switch (cfg->delivery) {
	case LM_VM_HANDLER:
		rc.install = LM_INSTALL_COPY;
		rc.delivery = LM_DELIVERY_HANDLER;
		break;
	case LM_VM_MINOR:
		rc.install = LM_INSTALL_CONTINUE;
		rc.delivery = LM_DELIVERY_HANDLER;
		break;
	case LM_VM_EXIT:
		rc.install = cfg->backing == LM_BACKING_ANON ?
			     LM_INSTALL_COPY : LM_INSTALL_CONTINUE;
		rc.delivery = LM_DELIVERY_SELF;
		break;
	case LM_VM_HYBRID:
		rc.install = LM_INSTALL_CONTINUE;
		rc.delivery = LM_DELIVERY_SELF;
		rc.vmm_view = true;
		break;
	default:
		return util_error(-EINVAL, "delivery %d unknown", cfg->delivery);
	}
	rc.store = cfg->store;
	rc.write_protect = cfg->write_protect;
	rc.thp = cfg->thp;
	if (cfg->store && cfg->delivery == LM_VM_EXIT)
		rc.install = LM_INSTALL_COPY;
	err = lm_region_create(&rc, &ram->region);
	if (err) {
		ram->region = NULL;
		return util_error(err, "guest RAM region (%s, %s): %s",
				   lm_vm_delivery_name(cfg->delivery),
				   lm_backing_name(cfg->backing),
				   *lm_last_error() ? lm_last_error()
						    : strerror(-err));
	}
	ram->host = lm_region_addr(ram->region);
	ram->vmm_view = cfg->delivery == LM_VM_HYBRID ?
			lm_region_vmm_addr(ram->region) : ram->host;
	return 0;
}

void ram__destroy(struct lm_vm_ram *ram)
{
	if (ram->fc.mem) {
		/* Socket first: the handler learns the VM is gone before
		 * the memory it serves disappears. */
		fc_guest_stop(&ram->fc);
	} else if (ram->region) {
		lm_region_destroy(ram->region);
		ram->region = NULL;
	} else if (ram->host) {
		munmap(ram->host, ram->size);
	}
	ram->host = ram->vmm_view = NULL;
	if (ram->failing) {
		lm_source_destroy(ram->failing);
		ram->failing = NULL;
	}
	if (ram->source) {
		lm_source_destroy(ram->source);
		ram->source = NULL;
	}
	if (ram->memfd >= 0) {
		close(ram->memfd);
		ram->memfd = -1;
	}
}
