/*
 * wsfile.h - the working-set file (wsfile.c): page offsets in first-touch
 * order, in the same format as the Firecracker handler's (src/fc).
 */
#ifndef LAZYMEM_KVM_WSFILE_H
#define LAZYMEM_KVM_WSFILE_H

#include <stddef.h>
#include <stdint.h>

struct lm_ws {
	uint64_t page_size;
	uint64_t *off;		/* memory-file offsets, first touch first */
	size_t n;
};

/* 0 or -errno with lm_vm_last_error() naming the file and the field. */
int lm_ws_write(const char *path, const struct lm_ws *ws);
int lm_ws_load(const char *path, uint64_t page_size, uint64_t file_size,
	       struct lm_ws *ws);
void lm_ws_free(struct lm_ws *ws);

#endif
