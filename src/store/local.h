/*
 * local.h - a throwaway object store on this host: nginx with its WebDAV
 * module (PUT, GET, HEAD), its own configuration, logs and data in a new
 * directory, listening on a free loopback port.
 *
 * Why here: `lazymem bench fleet` needs a store to run with no arguments,
 * and the store tests need the same one; both start it through this, so
 * the configuration the figures were measured with is the one tested.
 * nginx comes from Debian's nginx-core (scripts/deps.sh test).
 */
#ifndef LAZYMEM_STORE_LOCAL_H
#define LAZYMEM_STORE_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct store_local {
	char dir[256];		/* nginx.conf, logs; data/ is the store's root */
	char url[128];		/* http://127.0.0.1:PORT (no bucket) */
	int port;
	pid_t pid;
};

/* The nginx binary, or NULL when it is not installed. */
const char *store_local_nginx(void);
/*
 * Start it and wait until it listens. 0, or -ENOENT (nginx not
 * installed), -EPERM (not root: Debian's nginx wants its own user
 * otherwise), -EIO (it exited or did not listen; its error.log named);
 * why says which.
 */
int store_local_start(struct store_local *s, char *why, size_t why_len);
/* Stop it and remove its directory unless keep. */
void store_local_stop(struct store_local *s, bool keep);

#endif
