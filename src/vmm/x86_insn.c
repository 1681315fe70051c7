/*
 * x86_insn.c - which memory an x86-64 instruction is about to touch.
 *
 * Why this exists: guest code runs natively at CPL 3 on this backend (see
 * vcpu.c), and there a fault on a missing SIGBUS-mode page makes KVM_RUN
 * return a bare -EFAULT: no KVM_EXIT_MEMORY_FAULT, no address, and the
 * instruction has not executed. To resolve the fault on the vCPU's own
 * thread the VMM must find the page itself: it decodes the instruction at
 * RIP far enough to compute its memory operands. Only the operand
 * addresses matter, not the operation, so this is a length-and-ModRM
 * decoder plus the instructions with implicit memory operands (string
 * ops, stack ops, moffs). Anything it does not know it refuses (-1), and
 * the caller falls back to letting KVM emulate the instruction.
 */
#include <string.h>

#include "vmm/x86_insn.h"

/* One-byte opcodes that have a ModRM byte (64-bit mode). */
static bool op1_has_modrm(uint8_t op)
{
	if (op < 0x40)
		return (op & 7) < 4;
	switch (op) {
	case 0x63: case 0x69: case 0x6b:
	case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0x86:
	case 0x87: case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c:
	case 0x8d: case 0x8e: case 0x8f:
	case 0xc0: case 0xc1: case 0xc6: case 0xc7:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
	case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd:
	case 0xde: case 0xdf:
	case 0xf6: case 0xf7: case 0xfe: case 0xff:
		return true;
	}
	return false;
}

/* Immediate bytes after ModRM/SIB/displacement, one-byte map. */
static int op1_imm(uint8_t op, uint8_t reg, bool osz16)
{
	unsigned z = osz16 ? 2 : 4;

	if (op < 0x40)
		return 0;
	switch (op) {
	case 0x69: case 0x81: case 0xc7:
		return (int)z;
	case 0x6b: case 0x80: case 0x83: case 0xc0: case 0xc1: case 0xc6:
		return 1;
	case 0xf6:
		return reg < 2 ? 1 : 0;
	case 0xf7:
		return reg < 2 ? (int)z : 0;
	}
	return 0;
}

/* Two-byte map (0F xx): ModRM present unless listed. */
static bool op2_has_modrm(uint8_t op)
{
	if (op >= 0x80 && op <= 0x8f)		/* jcc rel32 */
		return false;
	if (op >= 0xc8 && op <= 0xcf)		/* bswap */
		return false;
	switch (op) {
	case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0b:
	case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35:
	case 0x37: case 0x77: case 0xa0: case 0xa1: case 0xa2: case 0xa8:
	case 0xa9: case 0xaa:
		return false;
	}
	return true;
}

static int op2_imm(uint8_t op)
{
	switch (op) {
	case 0x70: case 0x71: case 0x72: case 0x73: case 0xa4: case 0xac:
	case 0xba: case 0xc2: case 0xc4: case 0xc5: case 0xc6:
		return 1;
	}
	return 0;
}

static uint64_t reg_val(const struct kvm_regs *r, unsigned n)
{
	const uint64_t v[16] = {
		r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
		r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
	};

	return v[n & 15];
}

static int64_t sext(const uint8_t *p, unsigned n)
{
	int8_t b;
	int32_t d;

	if (n == 1) {
		memcpy(&b, p, 1);
		return b;
	}
	memcpy(&d, p, 4);
	return d;
}

static void add_access(struct x86_access *a, uint64_t la, unsigned size)
{
	if (a->n < X86_MAX_ACCESSES) {
		a->addr[a->n] = la;
		a->size[a->n] = size;
		a->n++;
	}
}

int x86_insn_accesses(const uint8_t *b, size_t avail,
		      const struct kvm_regs *r, struct x86_access *out)
{
	bool osz16 = false, asz32 = false, two = false;
	unsigned rex = 0, i = 0, size, imm, mod, reg, rm;
	uint64_t ea = 0;
	uint8_t op;

	memset(out, 0, sizeof(*out));
	for (;; i++) {
		if (i >= avail || i >= 14)
			return -1;
		switch (b[i]) {
		case 0x66: osz16 = true; continue;
		case 0x67: asz32 = true; continue;
		case 0xf0: case 0xf2: case 0xf3:
		case 0x2e: case 0x36: case 0x3e: case 0x26:
			continue;
		case 0x64: case 0x65:
			return -1;	/* fs/gs base: not decoded here */
		}
		break;
	}
	if ((b[i] & 0xf0) == 0x40) {
		rex = b[i++];
	}
	if (i >= avail)
		return -1;
	op = b[i++];
	if (op == 0xc4 || op == 0xc5 || op == 0x62)
		return -1;	/* VEX / EVEX: not decoded here */
	/* An upper bound is enough: it only decides whether the access
	 * may spill into the next page. */
	size = 8;

	if (op == 0x0f) {
		if (i >= avail)
			return -1;
		op = b[i++];
		two = true;
		if (op == 0x38 || op == 0x3a)
			return -1;	/* three-byte maps: not needed here */
		if (!op2_has_modrm(op)) {
			out->len = i + (op >= 0x80 && op <= 0x8f ? 4 : 0);
			return 0;
		}
		size = 16;		/* SSE and cmpxchg16b at most */
	} else if (!op1_has_modrm(op)) {
		switch (op) {
		case 0xa4: case 0xa5: case 0xa6: case 0xa7:	/* movs, cmps */
			add_access(out, r->rsi, size);
			add_access(out, r->rdi, size);
			break;
		case 0xaa: case 0xab: case 0xae: case 0xaf:	/* stos, scas */
			add_access(out, r->rdi, size);
			break;
		case 0xac: case 0xad:				/* lods */
			add_access(out, r->rsi, size);
			break;
		case 0x50: case 0x51: case 0x52: case 0x53:	/* push */
		case 0x54: case 0x55: case 0x56: case 0x57:
		case 0x9c: case 0xe8:				/* pushf, call */
			add_access(out, r->rsp - 8, 8);
			break;
		case 0x58: case 0x59: case 0x5a: case 0x5b:	/* pop */
		case 0x5c: case 0x5d: case 0x5e: case 0x5f:
		case 0x9d: case 0xc3: case 0xc2:		/* popf, ret */
			add_access(out, r->rsp, 8);
			break;
		case 0xa0: case 0xa1: case 0xa2: case 0xa3: {	/* moffs */
			uint64_t moffs = 0;

			if (i + (asz32 ? 4 : 8) > avail)
				return -1;
			memcpy(&moffs, b + i, asz32 ? 4 : 8);
			add_access(out, moffs, size);
			break;
		}
		default:
			/* Register-only or control flow; if it faulted,
			 * the fetch did (the caller checks RIP). Length is
			 * not needed. */
			if (op == 0xd7 || (op >= 0x6c && op <= 0x6f))
				return -1;	/* xlat, ins/outs */
			break;
		}
		return (int)out->n;
	}

	if (i >= avail)
		return -1;
	mod = b[i] >> 6;
	reg = (b[i] >> 3) & 7;
	rm = b[i] & 7;
	i++;
	if (mod == 3) {			/* register operand */
		out->len = i + (two ? (unsigned)op2_imm(op)
				    : (unsigned)op1_imm(op, reg, osz16));
		if (!two && op == 0xff && (reg == 2 || reg == 6))
			add_access(out, r->rsp - 8, 8);	/* call, push */
		return (int)out->n;
	}
	if (rm == 4) {			/* SIB */
		unsigned scale, idx, base;

		if (i >= avail)
			return -1;
		scale = b[i] >> 6;
		idx = ((b[i] >> 3) & 7) | (rex & 2 ? 8 : 0);
		base = (b[i] & 7) | (rex & 1 ? 8 : 0);
		i++;
		if (idx != 4)
			ea += reg_val(r, idx) << scale;
		if ((base & 7) == 5 && mod == 0) {
			if (i + 4 > avail)
				return -1;
			ea += (uint64_t)sext(b + i, 4);
			i += 4;
		} else {
			ea += reg_val(r, base);
		}
	} else if (rm == 5 && mod == 0) {	/* RIP-relative */
		int64_t disp;

		if (i + 4 > avail)
			return -1;
		disp = sext(b + i, 4);
		i += 4;
		imm = two ? (unsigned)op2_imm(op) : (unsigned)op1_imm(op, reg, osz16);
		ea = r->rip + i + imm + (uint64_t)disp;
		goto done;
	} else {
		ea += reg_val(r, rm | (rex & 1 ? 8 : 0));
	}
	if (mod == 1) {
		if (i + 1 > avail)
			return -1;
		ea += (uint64_t)sext(b + i, 1);
		i += 1;
	} else if (mod == 2) {
		if (i + 4 > avail)
			return -1;
		ea += (uint64_t)sext(b + i, 4);
		i += 4;
	}
	imm = two ? (unsigned)op2_imm(op) : (unsigned)op1_imm(op, reg, osz16);
done:
	if (asz32)
		ea &= 0xffffffffULL;
	out->len = i + imm;
	if (!two && op == 0x8d)
		return 0;			/* lea: no access */
	add_access(out, ea, size);
	if (!two && op == 0xff && (reg == 2 || reg == 6))	/* call, push */
		add_access(out, r->rsp - 8, 8);
	return (int)out->n;
}
