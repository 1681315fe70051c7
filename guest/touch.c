/*
 * touch.c - sequential touch: one access (read or write) per page of this
 * vCPU's own slice, then a verify pass over the slice. The measured part is
 * between START and MARK; the verify pass is not timed.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	struct expect e = { .first_gen = mb->write ? mb->gen + 1 : 0 };

	lm_call(LM_CALL_START);
	touch_slice(mb);
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
