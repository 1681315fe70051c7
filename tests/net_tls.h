/*
 * net_tls.h - the network tests' TLS credentials: made at test time by
 * tests/tls_mkcerts.sh (certtool, psktool) in a temporary directory, and
 * loaded into the credentials objects each side uses.
 */
#ifndef LAZYMEM_TEST_NET_TLS_H
#define LAZYMEM_TEST_NET_TLS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "lm_test.h"
#include "net/tls.h"

struct t_tls_dir {
	char dir[64];
	char reason[160];	/* why TLS cases skip, "" if they run */
};

/* Make the credentials; false (reason set) when the tools are missing. */
static inline bool t_tls_make(struct t_tls_dir *t)
{
	char cmd[256];
	FILE *p;
	int st;

	snprintf(t->dir, sizeof(t->dir), "/tmp/lazymem-tls-XXXXXX");
	t->reason[0] = '\0';
	if (!mkdtemp(t->dir)) {
		snprintf(t->reason, sizeof(t->reason), "mkdtemp failed");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", TLS_MKCERTS, t->dir);
	p = popen(cmd, "r");
	if (!p || !fgets(t->reason, sizeof(t->reason), p))
		t->reason[0] = '\0';
	st = p ? pclose(p) : -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		t->reason[0] = '\0';
		return true;
	}
	if (!t->reason[0])
		snprintf(t->reason, sizeof(t->reason), "%s failed",
			 TLS_MKCERTS);
	t->reason[strcspn(t->reason, "\n")] = '\0';
	return false;
}

static inline void t_tls_clean(struct t_tls_dir *t)
{
	char cmd[128];

	if (t->dir[0] && !strncmp(t->dir, "/tmp/lazymem-tls-", 17)) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
		if (system(cmd))
			print_message("could not remove %s\n", t->dir);
	}
}

/* X.509 credentials: cert NAME.pem/NAME.key, trusting CA.pem. */
static inline struct lm_net_tls *t_tls_x509(const struct t_tls_dir *t,
					    const char *name, const char *ca,
					    const char *peer_name)
{
	char cert[128], key[128], cap[128];
	struct lm_net_tls_opts o = { .cert = cert, .key = key, .ca = cap,
				     .peer_name = peer_name };
	struct lm_net_tls *tls;

	snprintf(cert, sizeof(cert), "%s/%s.pem", t->dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", t->dir, name);
	snprintf(cap, sizeof(cap), "%s/%s.pem", t->dir, ca);
	LM_OK(lm_net_tls_create(&o, &tls));
	return tls;
}

static inline struct lm_net_tls *t_tls_psk(const struct t_tls_dir *t,
					   const char *file)
{
	char path[128];
	struct lm_net_tls_opts o = { .psk_file = path };
	struct lm_net_tls *tls;

	snprintf(path, sizeof(path), "%s/%s", t->dir, file);
	LM_OK(lm_net_tls_create(&o, &tls));
	return tls;
}

#endif
