/*
 * random.c - random touch: every page of the slice exactly once, in a
 * pseudo-random order (index i goes to (i * P + seed) mod n with P a prime
 * larger than any slice, so the map is a permutation), then verify.
 */
#include "guest.h"

#define PRIME 2654435761ULL

int workload_main(struct lm_mailbox *mb)
{
	uint64_t n = mb->slice_size / mb->stride;
	struct expect e = { .first_gen = mb->write ? mb->gen + 1 : 0 };
	uint64_t sum = 0;

	lm_call(LM_CALL_START);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t idx = (i * PRIME + mb->seed) % n;
		uint64_t off = mb->slice_off + idx * mb->stride;

		if (mb->write)
			*ram_word(mb, off) = lm_pattern(off, mb->gen + 1);
		else
			sum += *ram_word(mb, off);
		mb->progress++;
	}
	mb->touched = n;
	mb->sum = sum;
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
