/*
 * kvm_x86_insn.c - the decoder that finds a faulting instruction's memory
 * operands (src/vmm/x86_insn.c): explicit ModRM/SIB/RIP-relative operands,
 * implicit ones (string and stack ops), no access for lea and register
 * forms, and a refusal for what it does not decode. No KVM needed.
 */
#include "lm_test.h"
#include "vmm/x86_insn.h"

static struct kvm_regs regs(void)
{
	struct kvm_regs r = {
		.rax = 0x100000000, .rbx = 0x100001000, .rcx = 0x10,
		.rsi = 0x100002000, .rdi = 0x100003000, .rsp = 0x203ff8,
		.r8 = 0x100004000, .rip = 0x100100,
	};
	return r;
}

static int decode(struct x86_access *a, const uint8_t *b, size_t n)
{
	uint8_t buf[15] = { 0 };
	struct kvm_regs r = regs();

	memcpy(buf, b, n);
	return x86_insn_accesses(buf, sizeof(buf), &r, a);
}

#define DECODE(acc, ...)                                                     \
	decode(acc, (const uint8_t[]){ __VA_ARGS__ },                        \
	       sizeof((const uint8_t[]){ __VA_ARGS__ }))

static void expect_one(int n, const struct x86_access *a, uint64_t addr)
{
	LM_ASSERT(n == 1, "one access, got %d", n);
	LM_ASSERT(a->addr[0] == addr, "address 0x%llx, want 0x%llx",
		  (unsigned long long)a->addr[0], (unsigned long long)addr);
}

static void test_modrm(void **s)
{
	struct x86_access a;

	(void)s;
	/* mov %rax,(%rbx) */
	expect_one(DECODE(&a, 0x48, 0x89, 0x03), &a, 0x100001000);
	/* lock incq (%rax) */
	expect_one(DECODE(&a, 0xf0, 0x48, 0xff, 0x00), &a, 0x100000000);
	/* mov 0x8(%rsp),%rax */
	expect_one(DECODE(&a, 0x48, 0x8b, 0x44, 0x24, 0x08), &a, 0x203ff8 + 8);
	/* mov 0x1000(,%rcx,4),%eax */
	expect_one(DECODE(&a, 0x8b, 0x04, 0x8d, 0x00, 0x10, 0x00, 0x00), &a,
		   0x10 * 4 + 0x1000);
	/* mov %eax,-0x8(%r8) */
	expect_one(DECODE(&a, 0x41, 0x89, 0x40, 0xf8), &a, 0x100004000 - 8);
	/* mov (%rbx,%rcx,8),%rdx with a disp32 of 0x100 */
	expect_one(DECODE(&a, 0x48, 0x8b, 0x94, 0xcb, 0x00, 0x01, 0x00, 0x00),
		   &a, 0x100001000 + 0x10 * 8 + 0x100);
}

static void test_rip_relative(void **s)
{
	struct x86_access a;

	(void)s;
	/* mov 0x10(%rip),%rax: 7 bytes */
	expect_one(DECODE(&a, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0), &a,
		   0x100100 + 7 + 0x10);
	/* movl $1,0x10(%rip): 10 bytes, the immediate counts */
	expect_one(DECODE(&a, 0xc7, 0x05, 0x10, 0, 0, 0, 1, 0, 0, 0), &a,
		   0x100100 + 10 + 0x10);
	/* cmpb $5,-0x20(%rip): 7 bytes */
	expect_one(DECODE(&a, 0x80, 0x3d, 0xe0, 0xff, 0xff, 0xff, 0x05), &a,
		   0x100100 + 7 - 0x20);
}

static void test_implicit(void **s)
{
	struct x86_access a;
	int n;

	(void)s;
	/* rep stosb */
	expect_one(DECODE(&a, 0xf3, 0xaa), &a, 0x100003000);
	/* movsb: both */
	n = DECODE(&a, 0xa4);
	LM_ASSERT(n == 2 && a.addr[0] == 0x100002000 && a.addr[1] == 0x100003000,
		  "movs reads rsi, writes rdi (n %d)", n);
	/* push %rbx, ret */
	expect_one(DECODE(&a, 0x53), &a, 0x203ff8 - 8);
	expect_one(DECODE(&a, 0xc3), &a, 0x203ff8);
	/* call *%rax pushes */
	expect_one(DECODE(&a, 0xff, 0xd0), &a, 0x203ff8 - 8);
	/* call *0x10(%rip): the pointer and the push */
	n = DECODE(&a, 0xff, 0x15, 0x10, 0, 0, 0);
	LM_ASSERT(n == 2 && a.addr[0] == 0x100100 + 6 + 0x10 &&
		  a.addr[1] == 0x203ff8 - 8, "call via memory (n %d)", n);
}

static void test_no_access(void **s)
{
	struct x86_access a;

	(void)s;
	LM_ASSERT(DECODE(&a, 0x48, 0x8d, 0x04, 0x18) == 0, "lea touches nothing");
	LM_ASSERT(DECODE(&a, 0x48, 0x89, 0xd8) == 0, "mov %%rbx,%%rax");
	LM_ASSERT(DECODE(&a, 0x0f, 0xaf, 0xc1) == 0, "imul %%ecx,%%eax");
}

static void test_refused(void **s)
{
	struct x86_access a;

	(void)s;
	/* mov %fs:0,%rax: segment bases are not decoded */
	LM_ASSERT(DECODE(&a, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0) == -1,
		  "fs override refused");
	/* a three-byte map (pshufb) */
	LM_ASSERT(DECODE(&a, 0x66, 0x0f, 0x38, 0x00, 0x03) == -1,
		  "0f 38 refused");
	/* vmovdqu (%rax),%ymm0: VEX */
	LM_ASSERT(DECODE(&a, 0xc5, 0xfe, 0x6f, 0x00) == -1, "VEX refused");
	/* only prefixes */
	LM_ASSERT(DECODE(&a, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
			 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66) == -1,
		  "prefix soup refused");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modrm),
		cmocka_unit_test(test_rip_relative),
		cmocka_unit_test(test_implicit),
		cmocka_unit_test(test_no_access),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
