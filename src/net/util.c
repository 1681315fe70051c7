/*
 * util.c - small helpers the transport's users share: durations on the
 * command line ("200us", "1ms", "0") and the deterministic image the
 * command, tests and benchmark serve and verify (a page at the wrong
 * offset, or a stale one, cannot pass).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

int lm_net_parse_duration(const char *s, uint64_t *ns)
{
	static const struct { const char *unit; uint64_t mul; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 },
		{ "s", 1000000000 }, { "", 1000 },	/* bare: us */
	};
	char *end;
	double v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	v = strtod(s, &end);
	if (end == s || v < 0 || v > 1e6)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].unit)) {
			*ns = (uint64_t)(v * (double)units[i].mul + 0.5);
			return 0;
		}
	}
	return -EINVAL;
}

static inline uint64_t word(uint64_t page, uint64_t k, uint64_t seed)
{
	uint64_t x = (page << 20 | k) * 0x9e3779b97f4a7c15ull ^ seed;

	return x ^ x >> 31;
}

void lm_net_pattern_fill(void *buf, uint64_t size, uint64_t page_size,
			 uint64_t seed)
{
	uint64_t *w = buf, per = page_size / 8;

	for (uint64_t p = 0; p < size / page_size; p++) {
		/* Every 8th page zero, every 8th + 1 text: the codec's
		 * zero flag and LZ4 both get exercised. */
		uint64_t *pg = w + p * per;

		if (p % 8 == 0)
			memset(pg, 0, page_size);
		else if (p % 8 == 1)
			for (uint64_t k = 0; k < per; k++)
				pg[k] = 0x2020202020202020ull ^ (k % 7) ^ p;
		else
			for (uint64_t k = 0; k < per; k++)
				pg[k] = word(p, k, seed);
	}
}

uint64_t lm_net_pattern_check(const void *buf, uint64_t size,
			      uint64_t page_size, uint64_t seed,
			      uint64_t *first_bad)
{
	const uint64_t *w = buf;
	uint64_t per = page_size / 8, bad = 0;

	for (uint64_t p = 0; p < size / page_size; p++) {
		const uint64_t *pg = w + p * per;
		bool ok = true;

		for (uint64_t k = 0; ok && k < per; k++) {
			uint64_t want = p % 8 == 0 ? 0
				: p % 8 == 1 ? 0x2020202020202020ull ^ (k % 7) ^ p
					     : word(p, k, seed);

			ok = pg[k] == want;
		}
		if (!ok && !bad++ && first_bad)
			*first_bad = p * page_size;
	}
	return bad;
}
