/*
 * staging.c - the staging slot pool (see staging.h).
 */
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>

#include "core/staging.h"

void lm_staging_init(struct lm_staging *s, size_t size)
{
	for (int i = 0; i < LM_STAGING_SLOTS; i++)
		atomic_init(&s->buf[i], NULL);
	atomic_init(&s->busy, 0);
	s->size = size;
}

void lm_staging_fini(struct lm_staging *s)
{
	for (int i = 0; i < LM_STAGING_SLOTS; i++) {
		void *b = atomic_load(&s->buf[i]);

		if (b)
			munmap(b, s->size);
		atomic_store(&s->buf[i], NULL);
	}
}

int lm_staging_get(struct lm_staging *s, void **buf)
{
	int slot;

	for (;;) {
		uint64_t busy = atomic_load_explicit(&s->busy,
						     memory_order_relaxed);

		if (busy == UINT64_MAX) {
			/* 64 faults in flight at once: rare, and each
			 * finishes in microseconds. */
			sched_yield();
			continue;
		}
		slot = __builtin_ctzll(~busy);
		if (atomic_compare_exchange_weak_explicit(
			    &s->busy, &busy, busy | (1ull << slot),
			    memory_order_acquire, memory_order_relaxed))
			break;
	}

	void *b = atomic_load_explicit(&s->buf[slot], memory_order_acquire);

	if (!b) {
		/* Only the slot's holder gets here, so no race on buf[slot].
		 * mmap is a plain system call, safe in a signal handler. */
		b = mmap(NULL, s->size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (b == MAP_FAILED) {
			lm_staging_put(s, slot);
			return -ENOMEM;
		}
		atomic_store_explicit(&s->buf[slot], b, memory_order_release);
	}
	*buf = b;
	return slot;
}

void lm_staging_put(struct lm_staging *s, int slot)
{
	atomic_fetch_and_explicit(&s->busy, ~(1ull << slot),
				  memory_order_release);
}
