/*
 * x86_insn.h - the memory operands of one x86-64 instruction (x86_insn.c).
 */
#ifndef LAZYMEM_VMM_X86_INSN_H
#define LAZYMEM_VMM_X86_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#define X86_MAX_ACCESSES 3

struct x86_access {
	unsigned n;
	uint64_t addr[X86_MAX_ACCESSES];	/* guest-linear */
	unsigned size[X86_MAX_ACCESSES];	/* bytes, an upper bound */
	unsigned len;				/* instruction length, if known */
};

/*
 * Decode the instruction in b[0..avail) with registers r. Returns how many
 * memory accesses it makes (filled in out), or -1 if it cannot tell.
 */
int x86_insn_accesses(const uint8_t *b, size_t avail,
		      const struct kvm_regs *r, struct x86_access *out);

#endif
