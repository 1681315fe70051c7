/*
 * dirty.c - repeated dirtying, as a guest does during pre-copy: every pass
 * writes the first word of every page of the slice with the next
 * generation. Verify then expects the last pass's generation there.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	uint64_t end = mb->slice_off + mb->slice_size;
	uint64_t passes = mb->iterations ? mb->iterations : 1;
	struct expect e = { .first_gen = mb->gen + passes };

	lm_call(LM_CALL_START);
	for (uint64_t it = 1; it <= passes; it++) {
		for (uint64_t off = mb->slice_off; off < end; off += mb->stride) {
			*ram_word(mb, off) = lm_pattern(off, mb->gen + it);
			mb->progress++;
		}
	}
	mb->touched = passes * (mb->slice_size / mb->stride);
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
