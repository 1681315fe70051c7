/*
 * ws.c - a restored VM's working set: RAM's source (the snapshot at RAM's
 * offset, noting each page the first time the region asks for it), the
 * prefetcher that installs a recorded working set ahead of the vCPUs, and
 * the recording written at the end (the offsets and their image).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>
#include <lazymem/snapshot.h>

#include "util/clock.h"
#include "util/error.h"
#include "vmsnap/vmsnap_internal.h"

static void ram_source_note(struct ram_source *rs, uint64_t off, size_t len)
{
	if (!rs->rec)
		return;
	for (uint64_t p = 0; p < len; p += rs->page_size) {
		uint64_t i = atomic_fetch_add(&rs->rec_n, 1);

		if (i < rs->rec_cap)
			rs->rec[i] = rs->base_off + off + p;
	}
}

static int ram_source_read(struct lm_source *s, uint64_t off, void *dst,
			   size_t len)
{
	struct ram_source *rs = (struct ram_source *)s;
	int err;

	if (len == rs->page_size && atomic_load(&rs->staged_off) == off) {
		memcpy(dst, atomic_load(&rs->staged_data), len);
		ram_source_note(rs, off, len);
		return 0;
	}
	err = lm_source_read(rs->inner, rs->base_off + off, dst, len);
	if (!err)
		ram_source_note(rs, off, len);
	return err;
}

static int ram_source_is_zero(struct lm_source *s, uint64_t off, size_t len)
{
	struct ram_source *rs = (struct ram_source *)s;
	int z = rs->inner->ops->is_zero ?
		rs->inner->ops->is_zero(rs->inner, rs->base_off + off, len) : 0;

	if (z == 1)
		ram_source_note(rs, off, len);
	return z;
}

static void ram_source_destroy(struct lm_source *s)
{
	struct ram_source *rs = (struct ram_source *)s;

	free(rs->rec);
	free(rs);
}

const struct lm_source_ops ram_source_ops = {
	.read = ram_source_read,
	.is_zero = ram_source_is_zero,
	.destroy = ram_source_destroy,
};

/*
 * The prefetcher: installs the working set's pages in first-touch order,
 * ahead of the vCPUs. It claims one page at a time (begin, read, commit),
 * so a vCPU never waits on it for a page it does not need right now; a
 * page a vCPU got to first is simply skipped. The reads behind it are
 * started early with readahead hints a window ahead, so a cold page cache
 * is read with many requests in flight instead of one at a time.
 */
#define PF_WINDOW 1024

/* Install one working-set page; data: its checked content, or NULL to
 * have it read from the snapshot like any fault. */
static void prefetch__page(struct restore *r, uint64_t fo, const uint8_t *data)
{
	struct lm_region *region = r->vm->ram.region;
	uint64_t base = r->rram->offset;
	struct lm_fault f;

	if (fo < base || fo - base >= r->rram->size)
		return;		/* the reserved area: already in */
	if (data) {
		atomic_store(&r->ram->staged_data, data);
		atomic_store(&r->ram->staged_off, fo - base);
	}
	if (lm_fault_begin(region, fo - base, LM_ORIGIN_BACKGROUND, &f) == 1 &&
	    lm_fault_commit(region, &f) == 0)
		atomic_fetch_add(&r->pf_pages, 1);
	/* A failed page is failed in the region: a vCPU that needs it fails
	 * visibly with its address. Nothing more to do here. */
	if (data)
		atomic_store(&r->ram->staged_off, UINT64_MAX);
}

/*
 * With a working-set image (FILE.img, written by --record-ws): the pages'
 * content in first-touch order, read in large sequential chunks, each page
 * checked against the image's hashes, which were taken from pages checked
 * against the snapshot's. A chunk that fails its check is fetched page by
 * page from the snapshot instead.
 */
#define PF_CHUNK_PAGES 512

static void *ws__prefetch_image(void *arg)
{
	struct restore *r = arg;
	uint64_t ps = r->m.page_size;
	uint8_t *buf = malloc(PF_CHUNK_PAGES * ps);

	r->pf_t0 = lm_now_ns();
	/* The first reads are short, so the first pages are in before the
	 * vCPUs reach them; then 16, 64, 256, 512 pages per read. */
	size_t want = 16, k;

	for (size_t i = 0; i < r->ws.n && !atomic_load(&r->pf_stop); i += k) {
		k = r->ws.n - i < want ? r->ws.n - i : want;
		want = want * 4 < PF_CHUNK_PAGES ? want * 4 : PF_CHUNK_PAGES;
		bool ok = buf && lm_source_read(r->ws_img, i * ps, buf, k * ps) == 0;

		for (size_t j = 0; j < k && !atomic_load(&r->pf_stop); j++)
			prefetch__page(r, r->ws.off[i + j], ok ? buf + j * ps : NULL);
	}
	free(buf);
	r->pf_t1 = lm_now_ns();
	return NULL;
}

static void *ws__prefetch(void *arg)
{
	struct restore *r = arg;
	uint64_t ps = r->m.page_size;
	size_t hinted = 0;

	r->pf_t0 = lm_now_ns();
	for (size_t i = 0; i < r->ws.n && !atomic_load(&r->pf_stop); i++) {
		if (r->pf_fd >= 0) {
			for (; hinted < r->ws.n && hinted < i + PF_WINDOW; hinted++)
				posix_fadvise(r->pf_fd, (off_t)r->ws.off[hinted],
					      (off_t)ps, POSIX_FADV_WILLNEED);
		}
		prefetch__page(r, r->ws.off[i], NULL);
	}
	r->pf_t1 = lm_now_ns();
	return NULL;
}

int ws__start_prefetch(struct restore *r)
{
	char path[4096];
	int err;

	char why[512];

	err = fc_ws_load(r->o->prefetch, r->m.mem_size, &r->ws, why, sizeof(why));
	if (err)
		return util_error(err, "%s", why);
	if (r->ws.page_size != r->m.page_size)
		return util_error(-EINVAL, "working-set file %s: page size %llu, the snapshot's is %llu",
				   r->o->prefetch, (unsigned long long)r->ws.page_size,
				   (unsigned long long)r->m.page_size);
	/* The image is optional: without it (or if it does not match) the
	 * pages are read from memory.img, with readahead hints. */
	snprintf(path, sizeof(path), "%s.img", r->o->prefetch);
	if (r->ws.n && access(path, F_OK) == 0) {
		if (lm_snap_open(path, &r->ws_meta) == 0) {
			if (r->ws_meta.mem_size == r->ws.n * r->m.page_size &&
			    r->ws_meta.page_size == r->m.page_size)
				lm_snap_source_open(path, &r->ws_meta, &r->ws_img);
			lm_snap_meta_free(&r->ws_meta);
		}
	}
	snprintf(path, sizeof(path), "%s/memory.img", r->o->dir);
	r->pf_fd = open(path, O_RDONLY | O_CLOEXEC);
	err = pthread_create(&r->pf_thread, NULL, r->ws_img ?
			     ws__prefetch_image : ws__prefetch, r);
	if (err)
		return util_error(-err, "prefetch thread: %s", strerror(err));
	r->pf_running = true;
	return 0;
}

void ws__stop_prefetch(struct restore *r)
{
	if (r->pf_running) {
		atomic_store(&r->pf_stop, true);
		pthread_join(r->pf_thread, NULL);
		r->pf_running = false;
	}
}

/*
 * FILE: the offsets (src/fcproto/wsfile.c). FILE.img: the working-set image, the same
 * pages' content in the same order, as a one-region snapshot of its own
 * (so it is hashed and checked like one), read in one sequential pass by
 * --prefetch. Its pages are read back through the checking source.
 */
int ws__record(struct restore *r, uint64_t n)
{
	struct fc_ws ws = {
		.page_size = r->m.page_size,
		.off = r->ram->rec,
		.n = n < r->ram->rec_cap ? n : r->ram->rec_cap,
	};
	uint64_t ps = r->m.page_size, len = ws.n * ps;
	struct lm_snap_vcpu none = { 0 };
	struct lm_snap_meta im = {
		.version = LM_SNAP_VERSION, .page_size = ps, .mem_size = len,
		.nr_regions = 1, .nr_vcpus = 1, .vcpus = &none,
		.workload = (char *)"{\"kind\":\"working-set image\"}",
	};
	char path[4200], why[512];
	uint8_t *buf;
	int rc = fc_ws_write(r->o->record_ws, &ws, why, sizeof(why));

	if (rc)
		return util_error(rc, "%s", why);
	if (!ws.n)
		return 0;
	im.regions[0] = (struct lm_snap_region){ 0, len, 0 };
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED)
		return util_error(-errno, "working-set image: %s", strerror(errno));
	for (size_t i = 0; i < ws.n && !rc; i++) {
		rc = lm_source_read(r->snap, ws.off[i], buf + i * ps, ps);
		if (rc)
			rc = util_error(rc, "working-set image: memory.img page at offset 0x%llx: %s",
					 (unsigned long long)ws.off[i], strerror(-rc));
	}
	snprintf(path, sizeof(path), "%s.img", r->o->record_ws);
	if (!rc) {
		rc = lm_snap_save(path, &im, buf, NULL, NULL);
		if (rc)
			rc = util_error(rc, "working-set image %s: %s", path,
					 lm_last_error());
	}
	munmap(buf, len);
	return rc;
}
