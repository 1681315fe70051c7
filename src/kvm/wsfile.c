/*
 * wsfile.c - the working-set file: memory-file (memory.img) offsets of the
 * pages a restore touched, first touch first. Written by --record-ws, read
 * by --prefetch.
 *
 * The on-disk layout is the one the Firecracker handler (src/fc) uses, so
 * a file recorded by either can drive the other. Little-endian:
 *   0  "LMWS"   4  u32 version (1)   8  u32 header bytes (32)
 *  12  u32 0   16  u64 page size    24  u64 count
 *  32  count x u64 page-aligned offsets
 * Loading checks every field and every offset against the memory file, so
 * a stale or foreign file is refused before the VM runs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm/kvm.h"
#include "kvm/wsfile.h"

#define WS_HDR 32u

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int lm_ws_write(const char *path, const struct lm_ws *ws)
{
	size_t len = WS_HDR + ws->n * 8;
	uint8_t *buf = calloc(1, len);
	char tmp[4096];
	int fd, rc = 0;
	size_t done = 0;

	if (!buf)
		return lm_vm_error(-ENOMEM, "working-set file %s: out of memory", path);
	memcpy(buf, "LMWS", 4);
	put32(buf + 4, 1);
	put32(buf + 8, WS_HDR);
	put64(buf + 16, ws->page_size);
	put64(buf + 24, ws->n);
	for (size_t i = 0; i < ws->n; i++)
		put64(buf + WS_HDR + i * 8, ws->off[i]);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = lm_vm_error(-errno, "working-set file %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = lm_vm_error(n < 0 ? -errno : -EIO, "working-set file %s: write: %s",
					 tmp, n < 0 ? strerror(errno) : "no progress");
			break;
		}
		done += (size_t)n;
	}
	if (close(fd) < 0 && !rc)
		rc = lm_vm_error(-errno, "working-set file %s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) < 0)
		rc = lm_vm_error(-errno, "working-set file %s: rename: %s", path,
				 strerror(errno));
	if (rc)
		unlink(tmp);
out:
	free(buf);
	return rc;
}

int lm_ws_load(const char *path, uint64_t page_size, uint64_t file_size,
	       struct lm_ws *ws)
{
	uint8_t *buf = NULL;
	struct stat st;
	uint64_t count;
	size_t got = 0;
	int fd, rc = 0;

	memset(ws, 0, sizeof(*ws));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lm_vm_error(-errno, "working-set file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_size < WS_HDR ||
	    st.st_size > (off_t)(WS_HDR + (file_size / 4096 + 1) * 8)) {
		rc = lm_vm_error(-EINVAL, "working-set file %s: %lld bytes, not a working set of this snapshot",
				 path, (long long)st.st_size);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		rc = lm_vm_error(-ENOMEM, "working-set file %s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = lm_vm_error(-EIO, "working-set file %s: short read", path);
			goto out;
		}
		got += (size_t)n;
	}
	count = get64(buf + 24);
	if (memcmp(buf, "LMWS", 4)) {
		rc = lm_vm_error(-EINVAL, "working-set file %s: bad magic (expected LMWS)", path);
	} else if (get32(buf + 4) != 1) {
		rc = lm_vm_error(-EPROTO, "working-set file %s: version %u, expected 1",
				 path, get32(buf + 4));
	} else if (get32(buf + 8) != WS_HDR) {
		rc = lm_vm_error(-EINVAL, "working-set file %s: header of %u bytes, expected %u",
				 path, get32(buf + 8), WS_HDR);
	} else if (get64(buf + 16) != page_size) {
		rc = lm_vm_error(-EINVAL, "working-set file %s: page size %llu, the snapshot's is %llu",
				 path, (unsigned long long)get64(buf + 16),
				 (unsigned long long)page_size);
	} else if (count != ((uint64_t)st.st_size - WS_HDR) / 8 ||
		   ((uint64_t)st.st_size - WS_HDR) % 8) {
		rc = lm_vm_error(-EINVAL, "working-set file %s: says %llu pages, holds %llu bytes of offsets",
				 path, (unsigned long long)count,
				 (unsigned long long)((uint64_t)st.st_size - WS_HDR));
	}
	if (rc)
		goto out;
	ws->off = malloc((count ? count : 1) * 8);
	if (!ws->off) {
		rc = lm_vm_error(-ENOMEM, "working-set file %s: out of memory", path);
		goto out;
	}
	for (uint64_t i = 0; i < count; i++) {
		uint64_t o = get64(buf + WS_HDR + i * 8);

		if (o % page_size || o >= file_size) {
			rc = lm_vm_error(-EINVAL, "working-set file %s: entry %llu, offset 0x%llx, is not a page of the %llu-byte memory file",
					 path, (unsigned long long)i,
					 (unsigned long long)o,
					 (unsigned long long)file_size);
			lm_ws_free(ws);
			goto out;
		}
		ws->off[i] = o;
	}
	ws->n = count;
	ws->page_size = page_size;
out:
	free(buf);
	close(fd);
	return rc;
}

void lm_ws_free(struct lm_ws *ws)
{
	free(ws->off);
	ws->off = NULL;
	ws->n = 0;
}
