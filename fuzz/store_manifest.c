/*
 * store_manifest.c - fuzz target for the chunked snapshot's manifest
 * parser (src/store/manifest.c), which reads what a store sends: any
 * bytes give either a manifest whose every invariant holds or an error
 * with a message, never a crash, a leak or a value out of range.
 *
 * Built with libFuzzer by scripts/fuzz.sh (clang); fuzz/replay.c runs the
 * same entry point over fuzz/corpus/store_manifest/ in every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/manifest.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_manifest m;

	if (store_manifest_parse((const char *)data, size, &m) != 0) {
		if (!util_last_error()[0])
			abort();	/* an error must say what it is */
		return 0;
	}
	/* Accepted: what the source and pull rely on. */
	if (!m.chunk_size || m.chunk_size % m.page_size ||
	    m.mem_size != m.meta.mem_size || !m.nr_chunks ||
	    (m.nr_chunks - 1) * m.chunk_size >= m.mem_size ||
	    m.nr_chunks * m.chunk_size < m.mem_size || !m.meta_json)
		abort();
	for (uint64_t i = 0; i < m.nr_chunks; i++) {
		const struct store_chunk *k = &m.chunks[i];
		uint64_t len = store_chunk_len(&m, i);

		if (!k->zero && (!k->stored_len || k->stored_len > len ||
				 (k->comp == STORE_COMP_RAW &&
				  k->stored_len != len)))
			abort();
	}
	store_manifest_free(&m);
	return 0;
}
