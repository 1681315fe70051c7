/*
 * dump.c - the one place every exit the VMM cannot explain ends up: print
 * the exit and the vCPU's registers, and fail the vCPU. Never a retry loop.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/vm.h"

static void dump__exit(const struct lm_vcpu *v)
{
	const struct kvm_run *run = v->run;

	fprintf(stderr, "lazymem: vcpu %u: exit reason %u", v->id,
		run->exit_reason);
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		fprintf(stderr, " (mmio %s gpa 0x%llx len %u)",
			run->mmio.is_write ? "write" : "read",
			(unsigned long long)run->mmio.phys_addr, run->mmio.len);
		break;
	case KVM_EXIT_IO:
		fprintf(stderr, " (io %s port 0x%x size %u count %u)",
			run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
			run->io.port, run->io.size, run->io.count);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fprintf(stderr, " (internal error, suberror %u, %u data:",
			run->internal.suberror, run->internal.ndata);
		for (unsigned i = 0; i < run->internal.ndata && i < 16; i++)
			fprintf(stderr, " 0x%llx",
				(unsigned long long)run->internal.data[i]);
		fputc(')', stderr);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		fprintf(stderr, " (hardware entry failure reason 0x%llx)",
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_MEMORY_FAULT: {
		const struct lm_kvm_memory_fault *mf =
			(const void *)&run->mmio;

		fprintf(stderr, " (memory fault gpa 0x%llx size %llu flags 0x%llx)",
			(unsigned long long)mf->gpa,
			(unsigned long long)mf->size,
			(unsigned long long)mf->flags);
		break;
	}
	default: {
		const uint64_t *u = (const void *)&run->mmio;

		fprintf(stderr, " (exit data %llx %llx %llx %llx)",
			(unsigned long long)u[0], (unsigned long long)u[1],
			(unsigned long long)u[2], (unsigned long long)u[3]);
		break;
	}
	}
	fputc('\n', stderr);
}

void vcpu__dump(struct lm_vcpu *v, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	fprintf(stderr, "lazymem: vcpu %u: %s\n", v->id, why);
	dump__exit(v);
	if (ioctl(v->fd, KVM_GET_REGS, &r) == 0) {
		fprintf(stderr,
			"  rip %016llx rsp %016llx rflags %08llx\n"
			"  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
			"  rsi %016llx rdi %016llx rbp %016llx\n"
			"  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
			"  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n",
			r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx,
			r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
			r.r13, r.r14, r.r15);
	} else {
		fprintf(stderr, "  KVM_GET_REGS: %s\n", strerror(errno));
	}
	if (ioctl(v->fd, KVM_GET_SREGS, &s) == 0)
		fprintf(stderr,
			"  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\n"
			"  cs %04x (base %llx l %u) ss %04x\n",
			s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector,
			s.cs.base, s.cs.l, s.ss.selector);
}

int vcpu__unexpected(struct lm_vcpu *v, const char *why)
{
	const struct kvm_run *run = v->run;

	vcpu__dump(v, why);
	return vcpu__fail(v, -EIO, "%s (exit reason %u)", why,
			  run->exit_reason);
}
