/*
 * local.c - the throwaway nginx WebDAV store of local.h: a configuration
 * written into a new directory, nginx run in the foreground as our child
 * (so it dies with us and its pid is ours to stop), a free loopback port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/local.h"
#include "util/fs.h"

const char *store_local_nginx(void)
{
	static const char *const paths[] = { "/usr/sbin/nginx", "/sbin/nginx" };

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* A loopback port nobody listens on now (bound, read back, released). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Keep-alive for as many requests as a benchmark makes on one connection,
 * and chunk-sized bodies; every temp path inside our directory, so nginx
 * touches nothing of the system's. */
static int write_conf(const struct store_local *s, const char *path)
{
	FILE *f = fopen(path, "w");
	const char *d = s->dir;

	if (!f)
		return -errno;
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
		d, d, d, d, d, d, d, d, s->port, d);
	return fclose(f) ? -errno : 0;
}

static int make_dirs(struct store_local *s, char *why, size_t why_len)
{
	char path[sizeof(s->dir) + 8];

	snprintf(s->dir, sizeof(s->dir), "/tmp/lazymem-nginx.XXXXXX");
	if (!mkdtemp(s->dir)) {
		snprintf(why, why_len, "mkdtemp %s: %s", s->dir,
			 strerror(errno));
		s->dir[0] = 0;
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/data", s->dir);
	if (mkdir(path, 0755))
		goto fail;
	snprintf(path, sizeof(path), "%s/tmp", s->dir);
	if (mkdir(path, 0755))
		goto fail;
	return 0;
fail:
	snprintf(why, why_len, "mkdir %s: %s", path, strerror(errno));
	return -errno;
}

/* Wait up to 5 s for the child to listen; -EIO if it exits first. */
static int wait_listening(struct store_local *s, char *why, size_t why_len)
{
	for (int i = 0; i < 500; i++) {
		int st;

		if (port_open(s->port))
			return 0;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			s->pid = 0;
			snprintf(why, why_len, "nginx exited at start (see "
				 "%s/error.log)", s->dir);
			return -EIO;
		}
		usleep(10000);
	}
	snprintf(why, why_len, "nginx did not listen on 127.0.0.1:%d within "
		 "5 s (see %s/error.log)", s->port, s->dir);
	return -EIO;
}

int store_local_start(struct store_local *s, char *why, size_t why_len)
{
	const char *bin = store_local_nginx();
	char conf[sizeof(s->dir) + 16];
	int err;

	memset(s, 0, sizeof(*s));
	if (!bin) {
		snprintf(why, why_len, "nginx is not installed (Debian's "
			 "nginx-core: scripts/deps.sh test)");
		return -ENOENT;
	}
	if (geteuid() != 0) {
		snprintf(why, why_len, "a local nginx store runs as root "
			 "(its configuration says 'user root'); give --url of "
			 "a store instead");
		return -EPERM;
	}
	if ((err = make_dirs(s, why, why_len)))
		goto fail;
	if ((s->port = free_port()) < 0) {
		err = -EADDRNOTAVAIL;
		snprintf(why, why_len, "no free loopback port");
		goto fail;
	}
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", s->dir);
	if ((err = write_conf(s, conf))) {
		snprintf(why, why_len, "%s: %s", conf, strerror(-err));
		goto fail;
	}
	s->pid = fork();
	if (s->pid < 0) {
		err = -errno;
		s->pid = 0;
		snprintf(why, why_len, "fork: %s", strerror(errno));
		goto fail;
	}
	if (s->pid == 0) {
		sigset_t none;

		/* a caller that blocks SIGTERM to wait for it must not pass
		 * that on: store_local_stop stops nginx with SIGTERM */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(bin, "nginx", "-p", s->dir, "-c", conf, (char *)NULL);
		_exit(127);
	}
	if ((err = wait_listening(s, why, why_len)))
		goto fail;
	return 0;
fail:
	store_local_stop(s, err == -EIO);	/* keep error.log to read */
	return err;
}

void store_local_stop(struct store_local *s, bool keep)
{
	int err;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->dir[0] && !keep && (err = util_remove_tree(s->dir)))
		fprintf(stderr, "lazymem: could not remove %s: %s\n", s->dir,
			strerror(-err));
}
