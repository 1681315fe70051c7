/*
 * migrate.c - the live-migration workload. Fill: write every word of the
 * slice with the pattern of generation gen. Then dirty the first ws_pages
 * pages of the slice (the hot set; 0: all of it) pass after pass, word 0
 * of each page with generation gen + pass, until the VMM sets stop. The VM
 * is paused anywhere in that loop and moved to another host, where it
 * carries on from the very instruction it stopped at; the VMM there sets
 * stop after a while. Finally every word of the slice is checked, so
 * each page must hold exactly what this loop last wrote to it: a page
 * missing a late write (a dirty page not re-sent) or carrying a stale one
 * shows as a mismatch.
 *
 * Where the loop stopped decides what word 0 of hot page i must hold:
 * pass if i < pos (written in the current pass), else pass - 1 (pass 0
 * is the fill itself).
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	uint64_t n = mb->slice_size / mb->stride;
	uint64_t hot = mb->ws_pages && mb->ws_pages < n ? mb->ws_pages : n;
	uint64_t pass = 0, pos = 0, end = mb->slice_off + mb->slice_size;
	struct expect e = { 0 };

	mb->phase = LM_PHASE_FILL;
	for (uint64_t off = mb->slice_off; off < end; off += 8)
		*ram_word(mb, off) = lm_pattern(off, mb->gen);
	mb->phase = LM_PHASE_DIRTYING;
	lm_call(LM_CALL_START);
	while (!mb->stop) {
		mb->iterations = ++pass;	/* out: passes so far */
		for (pos = 0; pos < hot && !mb->stop; pos++) {
			uint64_t off = mb->slice_off + pos * mb->stride;

			*ram_word(mb, off) = lm_pattern(off, mb->gen + pass);
			mb->progress++;
		}
	}
	mb->phase = LM_PHASE_CHECKING;
	mb->touched = n;
	lm_call(LM_CALL_MARK);

	e.first_gen = mb->gen + pass;
	verify_range(mb, mb->slice_off, pos * mb->stride, &e);
	e.first_gen = mb->gen + (pass ? pass - 1 : 0);
	verify_range(mb, mb->slice_off + pos * mb->stride,
		     (hot - pos) * mb->stride, &e);
	e.first_gen = 0;
	verify_range(mb, mb->slice_off + hot * mb->stride,
		     (n - hot) * mb->stride, &e);
	return 0;
}
