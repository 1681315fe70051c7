/*
 * counter.c - how much work a vCPU gets done while others fault: vCPU 0
 * counts in a tight loop until the VMM sets stop (when every other vCPU has
 * finished touching); the others run the sequential touch and verify.
 */
#include "guest.h"

int workload_main(struct lm_mailbox *mb)
{
	if (mb->vcpu == 0) {
		uint64_t n = 0;

		lm_call(LM_CALL_START);
		while (!mb->stop)
			n++;
		mb->counter = n;
		lm_call(LM_CALL_MARK);
		return 0;
	}

	struct expect e = { .first_gen = mb->write ? mb->gen + 1 : 0 };

	lm_call(LM_CALL_START);
	touch_slice(mb);
	lm_call(LM_CALL_MARK);
	verify_range(mb, mb->slice_off, mb->slice_size, &e);
	return 0;
}
