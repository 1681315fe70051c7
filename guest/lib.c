/*
 * lib.c - the guest runtime: entry point, barriers and the verify pass.
 *
 * The VMM starts each vCPU at _start with RDI = its mailbox and RSP at the
 * top of its own stack (minus 8, as after a call). _start runs the
 * workload and reports DONE; the VMM never re-enters a vCPU after DONE.
 */
#include "guest.h"

/* The compiler may emit calls to these even when freestanding. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;

	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

void _start(struct lm_mailbox *mb);

__attribute__((section(".text.entry"), noreturn, used))
void _start(struct lm_mailbox *mb)
{
	if (workload_main(mb) < 0)
		lm_call(LM_CALL_FAIL);
	lm_call(LM_CALL_DONE);
	for (;;)	/* never re-entered after DONE; hlt would #GP at CPL 3 */
		__asm__ volatile("pause");
}

void barrier_wait(struct lm_mailbox *mb, uint64_t phase)
{
	struct lm_shared *sh = (struct lm_shared *)(uintptr_t)mb->shared;

	__atomic_fetch_add(&sh->barrier, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&sh->barrier, __ATOMIC_ACQUIRE) <
	       phase * mb->nr_vcpus)
		__asm__ volatile("pause");
}

static uint64_t expected_word(const struct lm_mailbox *mb, uint64_t off,
			      uint64_t page_off, const struct expect *e)
{
	uint64_t w = (off - page_off) / 8;
	uint64_t v = lm_pattern(off, mb->gen);

	if (e->stos_len && off >= mb->slice_off &&
	    off < mb->slice_off + e->stos_len)
		return 0x0101010101010101ULL * e->stos_byte;
	if (w == 0 && e->first_gen)
		v = lm_pattern(off, e->first_gen);
	if (e->lockinc_add && w == lm_lockinc_word(page_off / mb->stride))
		v += e->lockinc_add;
	return v;
}

void verify_range(struct lm_mailbox *mb, uint64_t off, uint64_t size,
		  const struct expect *e)
{
	uint64_t end = off + size;

	for (uint64_t page = off; page < end; page += mb->stride) {
		uint64_t w0 = e->code ? LM_FETCH_CODE_BYTES : 0;

		for (uint64_t o = page + w0; o < page + mb->stride; o += 8) {
			uint64_t want = expected_word(mb, o, page, e);
			uint64_t got = *ram_word(mb, o);

			if (got != want) {
				if (!mb->mismatches) {
					mb->fail_addr = mb->ram_base + o;
					mb->fail_expected = want;
					mb->fail_got = got;
				}
				mb->mismatches++;
			}
		}
		mb->checked += (mb->stride - w0) / 8;
	}
}

void touch_slice(struct lm_mailbox *mb)
{
	uint64_t end = mb->slice_off + mb->slice_size;
	uint64_t sum = 0;

	for (uint64_t off = mb->slice_off; off < end; off += mb->stride) {
		if (mb->write)
			*ram_word(mb, off) = lm_pattern(off, mb->gen + 1);
		else
			sum += *ram_word(mb, off);
		mb->progress++;
	}
	mb->touched += mb->slice_size / mb->stride;
	mb->sum = sum;
}
