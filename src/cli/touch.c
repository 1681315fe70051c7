/*
 * touch.c - stand-in guests: threads that read one byte of every page of
 * their slice of a region, in a scattered order (a prime stride), the way
 * a guest's first touches spread over its memory. Used by `page-fetch` and
 * `bench postcopy`, where no VM is involved.
 */
#include <pthread.h>

#include "cli/cli.h"

static void *touch_main(void *arg)
{
	struct cli_toucher *t = arg;
	uint64_t step = 7919 % t->n ? 7919 : 7927;

	for (uint64_t k = 0; k < t->n; k++)
		(void)*(volatile uint8_t *)(t->base +
					    (t->first + (k * step) % t->n) *
						    t->page_size);
	return NULL;
}

void cli_touch_start(struct cli_toucher *t, unsigned nthreads, uint8_t *base,
		     uint64_t size, uint64_t page_size)
{
	uint64_t np = size / page_size;

	for (unsigned i = 0; i < nthreads; i++) {
		t[i] = (struct cli_toucher){
			.base = base, .page_size = page_size,
			.first = np * i / nthreads,
			.n = np * (i + 1) / nthreads - np * i / nthreads,
		};
		if (t[i].n)
			pthread_create(&t[i].thread, NULL, touch_main, &t[i]);
	}
}

void cli_touch_join(struct cli_toucher *t, unsigned nthreads)
{
	for (unsigned i = 0; i < nthreads; i++)
		if (t[i].n)
			pthread_join(t[i].thread, NULL);
}
