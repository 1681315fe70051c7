/*
 * lazymem/source.h - where a region's pages come from.
 *
 * A source is a small vtable: read a run of bytes at an offset of the
 * region's image, and optionally say whether a run is known to be zero (so
 * the region can install a zero page without reading). Sources plug into a
 * region by pointer; the region borrows it, the caller destroys it after the
 * region is gone.
 *
 * Sources are called from the fault path, which may be a SIGBUS handler:
 * read() and is_zero() must be async-signal-safe (no malloc, no locks that
 * a signal could interrupt the holder of). pread(2) and memcpy are.
 */
#ifndef LAZYMEM_SOURCE_H
#define LAZYMEM_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct lm_source;

struct lm_source_ops {
	/* Copy len bytes of the image at off into dst. 0 or -errno. */
	int (*read)(struct lm_source *src, uint64_t off, void *dst, size_t len);
	/* Optional. 1 if [off, off+len) is known to read as zeroes, else 0. */
	int (*is_zero)(struct lm_source *src, uint64_t off, size_t len);
	/* Release the source's own resources and the struct itself. */
	void (*destroy)(struct lm_source *src);
};

struct lm_source {
	const struct lm_source_ops *ops;
	uint64_t size;		/* bytes of image available */
	char desc[96];		/* for messages: "file /path/img", "zero", ... */
};

/* Every page reads as zero; size is how large an image it pretends to be. */
int lm_source_zero_create(uint64_t size, struct lm_source **out);

/*
 * A raw image file: byte off of the region is byte off of the file. Holes
 * (found with SEEK_HOLE at open) read as zero and are reported by is_zero.
 */
int lm_source_file_open(const char *path, struct lm_source **out);

/* Another buffer in this process; borrowed, must outlive the source. */
int lm_source_memory_create(const void *buf, uint64_t size,
			    struct lm_source **out);

/* Test aid: wraps another source and fails reads of one page with err. */
int lm_source_failing_create(struct lm_source *inner, uint64_t fail_off,
			     int err, struct lm_source **out);

/* A window [off, off+size) of inner (borrowed, must outlive the slice). */
int lm_source_slice_create(struct lm_source *inner, uint64_t off,
			   uint64_t size, struct lm_source **out);

void lm_source_destroy(struct lm_source *src);

static inline int lm_source_read(struct lm_source *src, uint64_t off,
				 void *dst, size_t len)
{
	return src->ops->read(src, off, dst, len);
}

#ifdef __cplusplus
}
#endif
#endif
