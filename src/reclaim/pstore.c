/*
 * pstore.c - what the stores share: the usage call, the zero test, the
 * tiered store's assembly and the codec option's parsing (the command's
 * vm run and the benchmark take the same values).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reclaim/pstore_codec.h"
#include "reclaim/pstore_internal.h"
#include "util/error.h"

void lm_pstore_usage(struct lm_page_store *s, struct lm_pstore_usage *u)
{
	struct pstore_base *b = (struct pstore_base *)s;

	memset(u, 0, sizeof(*u));
	b->usage(b, u);
}

bool pstore_page_is_zero(const void *p, uint64_t page_size)
{
	const uint64_t *w = p;
	uint64_t acc = 0;

	/* No early exit: a cold page is rarely zero in part, and a branch
	 * per word costs more than the words left over. */
	for (uint64_t i = 0; i < page_size / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		       w[i + 5] | w[i + 6] | w[i + 7];
	return acc == 0;
}

int lm_pstore_tiered_create(const char *path, uint64_t region_size,
			    uint64_t page_size,
			    const struct lm_pstore_memory_config *c,
			    struct lm_page_store **out)
{
	struct lm_pstore_memory_config tc = *c;
	int err;

	if (c->spill)
		return util_error(-EINVAL, "tiered page store %s: a spill "
				  "store was given; the file is the spill",
				  path);
	err = lm_pstore_file_create(path, region_size, page_size, &tc.spill);
	if (err)
		return err;
	/* From here the memory store owns the file store, even if it
	 * fails. */
	return lm_pstore_memory_create_with(region_size, page_size, &tc, out);
}

const char *lm_pstore_codec_name(enum lm_pstore_codec codec)
{
	return codec == LM_PSTORE_ZSTD ? "zstd" : "lz4";
}

int lm_pstore_parse_codec(const char *what, const char *arg,
			  enum lm_pstore_codec *codec, int *level)
{
	int max = pstore_codec_zstd_max_level();
	char *end;
	long l;

	*level = 0;
	if (!strcmp(arg, "lz4") || !strcmp(arg, "zstd")) {
		*codec = arg[0] == 'z' ? LM_PSTORE_ZSTD : LM_PSTORE_LZ4;
		return 0;
	}
	if (strncmp(arg, "zstd:", 5))
		return util_error(-EINVAL, "%s '%s': expected lz4, zstd or "
				  "zstd:LEVEL", what, arg);
	l = strtol(arg + 5, &end, 10);
	if (end == arg + 5 || *end || l < 1 || l > max)
		return util_error(-EINVAL, "%s '%s': zstd level expected "
				  "1..%d", what, arg, max);
	*codec = LM_PSTORE_ZSTD;
	*level = (int)l;
	return 0;
}
