/*
 * wsfile.h - the working-set file format: which pages of a memory file a
 * VM touched, in first-touch order. Written and read both by the daemon
 * (src/fc: --record-ws, --prefetch FILE) and by the VMM's snapshot
 * restore (src/vmsnap: --record-ws, --prefetch), so it lives below both.
 */
#ifndef LAZYMEM_FCPROTO_WSFILE_H
#define LAZYMEM_FCPROTO_WSFILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A working set: memory-file offsets of pages in first-touch order.
 * On disk (little-endian): "LMWS" u32 version=1 u32 header_bytes=32
 * u64 page_size u64 count, then count u64 offsets.
 */
struct fc_ws {
	uint64_t page_size;
	uint64_t *off;
	size_t n;
};

int fc_ws_load(const char *path, uint64_t file_size, struct fc_ws *ws,
	       char *why, size_t why_len);
int fc_ws_write(const char *path, const struct fc_ws *ws, char *why,
		size_t why_len);
void fc_ws_free(struct fc_ws *ws);

#endif
