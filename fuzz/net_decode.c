/*
 * net_decode.c - fuzz target for the migration wire decoder: any bytes
 * must give either a frame whose every field lies inside the negotiated
 * layout, or a refusal with a message; never a crash or a read or write
 * out of range. The input is a stream of frames, as a peer would send
 * them: each header is checked, then its payload decoded against a fixed
 * layout (two regions, 4 KiB pages), and every page of a page frame is
 * expanded into one page-sized buffer (LZ4 included).
 *
 * Built with libFuzzer by scripts/fuzz.sh (clang); fuzz/replay.c runs the
 * same entry point over fuzz/corpus/net_decode/ in every ordinary build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto.h"
#include "net_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[2] = { 1u << 20, 64u << 10 };
	struct lm_net_layout l;
	char why[256];

	if (lm_net_layout_init(&l, 4096, sizes, 2, why, sizeof(why)))
		abort();
	while (size >= LM_NET_HDR_SIZE) {
		struct lm_net_hdr h;
		struct lm_net_msg m;

		why[0] = '\0';
		if (lm_net_check_header(data, &h, why, sizeof(why))) {
			if (!why[0])
				abort();	/* a refusal says why */
			return 0;
		}
		data += LM_NET_HDR_SIZE;
		size -= LM_NET_HDR_SIZE;
		if (h.length > size)
			return 0;		/* truncated: would wait */
		/* Copy the payload so reads past it are caught by ASan. */
		uint8_t *p = malloc(h.length ? h.length : 1);

		if (!p)
			return 0;
		memcpy(p, data, h.length);
		why[0] = '\0';
		if (lm_net_decode(&l, &h, p, &m, why, sizeof(why))) {
			if (!why[0])
				abort();
		} else {
			check_frame(&l, &m);
		}
		free(p);
		data += h.length;
		size -= h.length;
	}
	return 0;
}
