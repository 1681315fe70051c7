/*
 * store_test.h - what the store tests share: an nginx with WebDAV on a
 * loopback port in a temporary directory (the object store), its access
 * log counted per method and path, and small snapshots made with
 * lm_snap_save, no VM needed.
 */
#ifndef LAZYMEM_STORE_TEST_H
#define LAZYMEM_STORE_TEST_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "lm_test.h"
#include "store/local.h"

/* The store of the tests is the one `bench fleet` starts: store/local.h. */
#define t_nginx store_local

static inline const char *t_nginx_path(void)
{
	return store_local_nginx();
}

static inline int t_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Start nginx; 0, or -1 with a reason printed (SKIP: when it is absent
 * or we are not root, so the caller skips). */
static inline int t_nginx_start(struct t_nginx *n)
{
	char why[512];
	int err = store_local_start(n, why, sizeof(why));

	if (err)
		print_message("%s%s\n",
			      err == -ENOENT || err == -EPERM ? "SKIP: " : "",
			      why);
	return err ? -1 : 0;
}

static inline void t_nginx_stop(struct t_nginx *n)
{
	store_local_stop(n, getenv("LAZYMEM_KEEP") != NULL);
}

/* Lines of the access log so far that contain both a and b. */
static inline unsigned t_log_count(const struct t_nginx *n, const char *a,
				   const char *b)
{
	char path[400], line[2048];
	unsigned c = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/access.log", n->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		c += strstr(line, a) && strstr(line, b);
	fclose(f);
	return c;
}

/* Memory of a test snapshot: 64 chunks of 256 KiB. Quarter by quarter:
 * incompressible (pattern), zero, compressible (small numbers),
 * incompressible again with another salt. */
#define T_MEM (16ull << 20)
#define T_CHUNK (256u << 10)

static inline uint8_t *t_snap_memory(void)
{
	uint8_t *m = calloc(1, T_MEM);
	uint64_t q = T_MEM / 4;

	if (!m)
		return NULL;
	t_fill(m, q, 1);
	for (uint64_t i = 0; i < q / 8; i++)
		((uint64_t *)(void *)(m + 2 * q))[i] = (i / 512) & 0xff;
	t_fill(m + 3 * q, q, 2);
	return m;
}

/* Save mem as a one-region, one-vCPU snapshot in dir. */
static inline int t_snap_save(const char *dir, const uint8_t *mem)
{
	struct lm_snap_vcpu v = { 0 };
	struct lm_snap_meta m = {
		.page_size = 4096, .mem_size = T_MEM, .nr_regions = 1,
		.nr_vcpus = 1, .vcpus = &v, .created = 1700000000,
		.workload = (char *)"{\"kind\":\"store-test\"}",
	};
	static const uint8_t regs[] = { 1, 2, 3, 4, 5 };
	int err;

	m.regions[0] = (struct lm_snap_region){ 0, T_MEM, 0 };
	err = lm_snap_vcpu_add_blob(&v, "regs", regs, sizeof(regs));
	if (!err)
		err = lm_snap_save(dir, &m, mem, NULL, NULL);
	free(v.blobs[0].data);
	return err;
}

/* 0 when files a and b have the same bytes. */
static inline int t_same_file(const char *a, const char *b)
{
	char cmd[1100];

	snprintf(cmd, sizeof(cmd), "cmp -s '%.500s' '%.500s'", a, b);
	return system(cmd);
}

#endif
