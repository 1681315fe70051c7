/*
 * restore.c - the snapshot workload. Fill: write every word of the slice
 * with the pattern of generation gen. Save point: LM_CALL_SAVE (with
 * "vm run --save" the VM is saved here and this vCPU stops; a restored VM
 * resumes right after the call). Then touch the working set: ws_pages
 * pages of the slice in a scattered order (index i -> (i * P + seed) mod n,
 * P a prime larger than any slice, so no page twice), checking every word
 * of each, so the first touch of a page is a read that must find exactly
 * what was saved.
 */
#include "guest.h"

#define PRIME 2654435761ULL

int workload_main(struct lm_mailbox *mb)
{
	uint64_t n = mb->slice_size / mb->stride, k;
	struct expect e = { 0 };

	mb->phase = LM_PHASE_FILL;
	for (uint64_t off = mb->slice_off; off < mb->slice_off + mb->slice_size;
	     off += 8)
		*ram_word(mb, off) = lm_pattern(off, mb->gen);
	mb->phase = LM_PHASE_SAVED;
	lm_call(LM_CALL_SAVE);

	/* Resumed (or never stopped). ws_pages may have been rewritten. */
	mb->phase = LM_PHASE_RESUMED;
	mb->touched = mb->checked = mb->mismatches = mb->progress = 0;
	k = mb->ws_pages && mb->ws_pages < n ? mb->ws_pages : n; /* 0: all */
	lm_call(LM_CALL_START);
	for (uint64_t i = 0; i < k; i++) {
		uint64_t idx = (i * PRIME + mb->seed) % n;

		verify_range(mb, mb->slice_off + idx * mb->stride, mb->stride,
			     &e);
		mb->progress++;
	}
	mb->touched = k;
	lm_call(LM_CALL_MARK);
	return 0;
}
