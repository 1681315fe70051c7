/*
 * snapshot_meta.c - fuzz target for the snapshot metadata parser: any
 * bytes must give either a fully validated description or an error with a
 * message, never a crash, a leak or an out-of-range value.
 *
 * Built with libFuzzer by scripts/fuzz.sh (clang); fuzz/replay.c runs the
 * same entry point over fuzz/corpus/ in every ordinary build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lazymem/error.h>
#include <lazymem/snapshot.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lm_snap_meta m;

	if (lm_snap_meta_parse((const char *)data, size, &m) != 0) {
		if (!lm_last_error()[0])
			abort();	/* an error must say what it is */
		return 0;
	}
	/* Accepted: the invariants the restore path relies on hold. */
	if (m.page_size != 4096 && m.page_size != (2u << 20))
		abort();
	if (!m.mem_size || m.mem_size % m.page_size || !m.nr_vcpus ||
	    !m.nr_regions)
		abort();
	for (unsigned i = 0; i < m.nr_regions; i++)
		if (m.regions[i].offset + m.regions[i].size > m.mem_size)
			abort();
	lm_snap_meta_free(&m);
	return 0;
}
