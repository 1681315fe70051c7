/*
 * wsfile.c - the working-set file: which pages of the memory file a VM
 * touched, in first-touch order, as `--record-ws` writes it and
 * `--prefetch FILE` reads it.
 *
 * Binary, little-endian, 32-byte header then the offsets:
 *   0  "LMWS"            magic
 *   4  u32 version       1
 *   8  u32 header bytes  32 (a later version may append fields)
 *  12  u32 reserved      0
 *  16  u64 page size     of the VM that recorded it (4096 or 2 MiB)
 *  24  u64 count
 *  32  count x u64       memory-file offsets, page-aligned, first touch first
 * Loading checks every field and every offset against the memory file, so
 * a stale or foreign file is refused at start, not at the first fault.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fcproto/wsfile.h"

#define WS_MAGIC "LMWS"
#define WS_VERSION 1u
#define WS_HEADER 32u

struct ws_header {
	char magic[4];
	uint32_t version, header_bytes, reserved;
	uint64_t page_size, count;
};

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fc_ws_load(const char *path, uint64_t file_size, struct fc_ws *ws,
	       char *why, size_t wl)
{
	struct ws_header h;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;
	uint64_t count, ps;

	memset(ws, 0, sizeof(*ws));
	if (fd < 0) {
		snprintf(why, wl, "working-set file %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	err = fstat(fd, &st) < 0 ? -errno : 0;
	if (!err && (size_t)st.st_size < WS_HEADER)
		err = -EINVAL;
	if (!err)
		err = read_all(fd, &h, sizeof(h));
	if (err) {
		snprintf(why, wl, "working-set file %s: too short for its "
			 "%u-byte header", path, WS_HEADER);
		goto out;
	}
	count = le64toh(h.count);
	ps = le64toh(h.page_size);
	err = -EINVAL;
	if (memcmp(h.magic, WS_MAGIC, 4)) {
		snprintf(why, wl, "working-set file %s: not a lazymem working "
			 "set (magic is not LMWS)", path);
	} else if (le32toh(h.version) != WS_VERSION ||
		   le32toh(h.header_bytes) != WS_HEADER) {
		snprintf(why, wl, "working-set file %s: version %u with a "
			 "%u-byte header; this lazymem reads version %u", path,
			 le32toh(h.version), le32toh(h.header_bytes),
			 WS_VERSION);
	} else if (ps != 4096 && ps != (2ull << 20)) {
		snprintf(why, wl, "working-set file %s: page size %llu; "
			 "expected 4096 or 2097152", path,
			 (unsigned long long)ps);
	} else if ((uint64_t)st.st_size != WS_HEADER + count * 8 ||
		   count > file_size / 4096) {
		snprintf(why, wl, "working-set file %s: header says %llu "
			 "pages but the file holds %lld bytes", path,
			 (unsigned long long)count, (long long)st.st_size);
	} else {
		err = 0;
	}
	if (err)
		goto out;
	ws->page_size = ps;
	ws->n = (size_t)count;
	ws->off = malloc(ws->n * 8 + 8);
	if (!ws->off) {
		snprintf(why, wl, "working-set file %s: out of memory", path);
		err = -ENOMEM;
		goto out;
	}
	err = read_all(fd, ws->off, ws->n * 8);
	if (err) {
		snprintf(why, wl, "working-set file %s: %s", path,
			 strerror(-err));
		goto out;
	}
	for (size_t i = 0; i < ws->n; i++) {
		uint64_t o = le64toh(ws->off[i]);

		if (o % ps || o >= file_size) {
			snprintf(why, wl, "working-set file %s: entry %zu "
				 "(offset %llu) is not a page of the %llu-byte "
				 "memory file", path, i, (unsigned long long)o,
				 (unsigned long long)file_size);
			err = -EINVAL;
			goto out;
		}
		ws->off[i] = o;
	}
out:
	close(fd);
	if (err)
		fc_ws_free(ws);
	return err;
}

int fc_ws_write(const char *path, const struct fc_ws *ws, char *why,
		size_t wl)
{
	char tmp[4096];
	struct ws_header h = {
		.version = htole32(WS_VERSION),
		.header_bytes = htole32(WS_HEADER),
		.page_size = htole64(ws->page_size),
		.count = htole64(ws->n),
	};
	FILE *f;
	bool ok;

	memcpy(h.magic, WS_MAGIC, 4);
	/* Written aside and renamed: a reader never sees half a file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f) {
		snprintf(why, wl, "working-set file %s: %s", tmp,
			 strerror(errno));
		return -errno;
	}
	ok = fwrite(&h, sizeof(h), 1, f) == 1;
	for (size_t i = 0; ok && i < ws->n; i++) {
		uint64_t o = htole64(ws->off[i]);

		ok = fwrite(&o, 8, 1, f) == 1;
	}
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) < 0) {
		snprintf(why, wl, "working-set file %s: write failed: %s", path,
			 strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

void fc_ws_free(struct fc_ws *ws)
{
	free(ws->off);
	ws->off = NULL;
	ws->n = 0;
}
