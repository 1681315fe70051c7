/*
 * pagemap.c - unit test of the page-state map: one claim wins per page
 * among racing threads, and waiters wake on publish.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lm_test.h"
#include "core/pagemap.h"

#define PAGES 100000
#define THREADS 4

static struct lm_pagemap map;
static _Atomic uint32_t wins[PAGES];

static void *claimer(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < PAGES; i++) {
		if (lm_pagemap_claim(&map, i)) {
			atomic_fetch_add(&wins[i], 1);
			lm_pagemap_publish(&map, i, LM_PS_PRESENT);
		} else {
			LM_ASSERT(lm_pagemap_wait(&map, i) == LM_PS_PRESENT,
				  "page %llu", (unsigned long long)i);
		}
	}
	return NULL;
}

static void test_one_winner(void **s)
{
	pthread_t t[THREADS];

	(void)s;
	LM_OK(lm_pagemap_init(&map, PAGES));
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, claimer, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (uint64_t i = 0; i < PAGES; i++)
		LM_ASSERT(atomic_load(&wins[i]) == 1, "page %llu won %u times",
			  (unsigned long long)i, atomic_load(&wins[i]));
	lm_pagemap_fini(&map);
}

static void test_states(void **s)
{
	(void)s;
	LM_OK(lm_pagemap_init(&map, 4));
	LM_ASSERT(lm_pagemap_state(&map, 0) == LM_PS_MISSING, "starts missing");
	LM_ASSERT(lm_pagemap_claim(&map, 0), "claim");
	LM_ASSERT(!lm_pagemap_claim(&map, 0), "second claim loses");
	LM_ASSERT(lm_pagemap_state(&map, 0) == LM_PS_FETCHING, "fetching");
	lm_pagemap_publish(&map, 0, LM_PS_FAILED);
	LM_ASSERT(lm_pagemap_wait(&map, 0) == LM_PS_FAILED, "failed");
	LM_ASSERT(!lm_pagemap_claim(&map, 0), "a failed page is not retried");
	lm_pagemap_fini(&map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_one_winner),
	};

	return cmocka_run_group_tests_name("pagemap", tests, NULL, NULL);
}
