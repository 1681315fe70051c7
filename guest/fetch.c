/*
 * fetch.c - instruction fetch from missing pages: every page of the slice
 * begins with "mov rax, imm64; ret" where imm64 is the page's pattern word
 * (the VMM's code source puts it there). Calling it makes the first access
 * to the page an instruction fetch, which this backend reports as an
 * emulation failure the VMM must resolve by translating RIP.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	uint64_t end = mb->slice_off + mb->slice_size;
	struct expect e = { .code = 1 };

	lm_call(LM_CALL_START);
	for (uint64_t off = mb->slice_off; off < end; off += mb->stride) {
		uint64_t (*fn)(void) =
			(uint64_t (*)(void))(uintptr_t)(mb->ram_base + off);
		uint64_t got = fn();

		if (got != lm_pattern(off, mb->gen)) {
			mb->fail_code = LM_FAIL_FETCH;
			mb->fail_addr = mb->ram_base + off;
			mb->fail_expected = lm_pattern(off, mb->gen);
			mb->fail_got = got;
			return -1;
		}
		mb->progress++;
	}
	mb->touched = mb->slice_size / mb->stride;
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
