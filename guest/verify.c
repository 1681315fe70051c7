/*
 * verify.c - read every word of the slice straight from the source and
 * check it: the lazy-restore case, where the first touch of each page is a
 * read of content that must have come from the right place.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	struct expect e = { 0 };

	lm_call(LM_CALL_START);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	mb->touched = mb->slice_size / mb->stride;
	mb->progress = mb->touched;
	lm_call(LM_CALL_MARK);
	return 0;
}
