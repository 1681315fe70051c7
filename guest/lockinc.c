/*
 * lockinc.c - the correctness test for completing emulated accesses: every
 * vCPU does "lock incq" on one word of every page of RAM, all in the same
 * order so that they race for the same never-touched pages. After a
 * barrier each vCPU verifies its slice: the word must have grown by exactly
 * nr_vcpus * rounds, so a lost or doubled increment shows.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	uint64_t rounds = mb->iterations ? mb->iterations : 1;
	uint64_t pages = mb->ram_size / mb->stride;
	struct expect e = { .lockinc_add = mb->nr_vcpus * rounds };

	barrier_wait(mb, 1);
	lm_call(LM_CALL_START);
	for (uint64_t r = 0; r < rounds; r++) {
		for (uint64_t i = 0; i < pages; i++) {
			uint64_t off = i * mb->stride + lm_lockinc_word(i) * 8;

			__asm__ volatile("lock incq %0"
					 : "+m"(*ram_word(mb, off)) : : "memory");
			mb->progress++;
		}
	}
	mb->touched = rounds * pages;
	lm_call(LM_CALL_MARK);
	barrier_wait(mb, 2);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
