/*
 * fc_protocol.c - fuzz target for the fc-handler's message parser (the
 * JSON a VMM sends, src/fc/protocol.c): any bytes must give either a
 * validated region list or a refusal with a reason, never a crash, a leak
 * or a region outside the memory file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fc/fc.h"

#define FILE_SIZE (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fc_layout l;
	char why[512] = "";

	switch (fc_protocol_parse((const char *)data, size, FILE_SIZE, &l, why,
				  sizeof(why))) {
	case FC_PARSE_BAD:
		if (!why[0])
			abort();	/* a refusal must say why */
		return 0;
	case FC_PARSE_MORE:
		return 0;
	case FC_PARSE_OK:
		break;
	}
	if (!l.n || l.n > FC_MAX_REGIONS)
		abort();
	for (unsigned i = 0; i < l.n; i++) {
		const struct fc_region *r = &l.r[i];

		if ((r->page_size != 4096 && r->page_size != (2u << 20)) ||
		    !r->size || r->size % r->page_size ||
		    r->base % r->page_size || r->offset > FILE_SIZE ||
		    r->size > FILE_SIZE - r->offset)
			abort();
		for (unsigned j = 0; j < i; j++)
			if (r->base < l.r[j].base + l.r[j].size &&
			    l.r[j].base < r->base + r->size)
				abort();
	}
	return 0;
}
