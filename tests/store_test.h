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

struct t_nginx {
	char dir[256];		/* config, logs; data/ is the store's root */
	char url[128];		/* http://127.0.0.1:PORT */
	int port;
	pid_t pid;
};

static inline const char *t_nginx_path(void)
{
	static const char *paths[] = { "/usr/sbin/nginx", "/sbin/nginx" };

	for (size_t i = 0; i < 2; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
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

static inline bool t_port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Start nginx; 0, or -1 with a reason printed (the caller skips). */
static inline int t_nginx_start(struct t_nginx *n)
{
	const char *bin = t_nginx_path();
	char path[400];
	FILE *f;

	if (!bin) {
		print_message("SKIP: nginx not installed (scripts/deps.sh test)\n");
		return -1;
	}
	if (geteuid() != 0) {
		print_message("SKIP: nginx as a test store runs as root here\n");
		return -1;
	}
	snprintf(n->dir, sizeof(n->dir), "/tmp/lazymem-nginx.XXXXXX");
	if (!mkdtemp(n->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/data", n->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/tmp", n->dir);
	mkdir(path, 0755);
	n->port = t_free_port();
	snprintf(n->url, sizeof(n->url), "http://127.0.0.1:%d", n->port);
	snprintf(path, sizeof(path), "%s/nginx.conf", n->dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"daemon off;\nmaster_process off;\nworker_processes 1;\n"
		"user root;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
		"events { worker_connections 512; }\n"
		"http {\n"
		"  access_log %s/access.log;\n"
		"  client_body_temp_path %s/tmp;\n  proxy_temp_path %s/tmp;\n"
		"  fastcgi_temp_path %s/tmp;\n  uwsgi_temp_path %s/tmp;\n"
		"  scgi_temp_path %s/tmp;\n"
		"  client_max_body_size 64m;\n  keepalive_requests 100000;\n"
		"  server {\n    listen 127.0.0.1:%d;\n    root %s/data;\n"
		"    location / {\n      dav_methods PUT DELETE MKCOL;\n"
		"      create_full_put_path on;\n"
		"      dav_access user:rw group:r all:r;\n    }\n  }\n}\n",
		n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir, n->dir,
		n->port, n->dir);
	fclose(f);
	n->pid = fork();
	if (n->pid == 0) {
		execl(bin, "nginx", "-p", n->dir, "-c", path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int st;

		if (t_port_open(n->port))
			return 0;
		if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
			print_message("nginx exited at start (see %s/error.log)\n",
				      n->dir);
			return -1;
		}
		usleep(10000);
	}
	print_message("nginx did not listen on port %d\n", n->port);
	return -1;
}

static inline void t_nginx_stop(struct t_nginx *n)
{
	char cmd[400];

	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
		n->pid = 0;
	}
	if (n->dir[0] && !getenv("LAZYMEM_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", n->dir);
		if (system(cmd))
			print_message("could not remove %s\n", n->dir);
	}
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
