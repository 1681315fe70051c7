/*
 * stos.c - a string instruction over missing pages, for correctness only:
 * "rep stosb" fills the first stos_len bytes of the slice. On this
 * shadow-paging backend rep string instructions cost about 0.5 us per byte
 * even on present memory, so this is never a benchmark.
 */
#include "guest.h"

#define STOS_BYTE 0xa5

int workload_main(struct lm_mailbox *mb)
{
	uint64_t len = mb->stos_len < mb->slice_size ? mb->stos_len
						      : mb->slice_size;
	void *dst = (void *)(uintptr_t)(mb->ram_base + mb->slice_off);
	struct expect e = { .stos_len = len, .stos_byte = STOS_BYTE };

	lm_call(LM_CALL_START);
	__asm__ volatile("rep stosb"
			 : "+D"(dst), "+c"(len)
			 : "a"(STOS_BYTE)
			 : "memory");
	mb->touched = (e.stos_len + mb->stride - 1) / mb->stride;
	mb->progress = mb->touched;
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
