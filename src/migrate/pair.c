/*
 * pair.c - both ends of a migration in one process, on loopback:
 * the destination on a thread of its own, optionally behind the delaying
 * proxy, and the source on the caller's thread. What `lazymem demo
 * migrate`, `lazymem bench migrate` and the tests run; the two commands
 * `lazymem migrate recv` and `lazymem migrate send` are the same two
 * calls in two processes (or on two hosts).
 *
 * Both ends read CLOCK_MONOTONIC, so the downtime is measured across them:
 * from the source asking its vCPUs to pause to the destination's first
 * vCPU entering the guest.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "migrate/migrate.h"

struct pair {
	struct lm_migrate_recv_opts ro;
	struct lm_migrate_recv_result *rres;
	int rc;
	char err[512];
	char addr[128];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool listening, over;
	atomic_bool cancel;		/* the source failed: stop waiting */
};

static void pair__listening(const char *addr, void *arg)
{
	struct pair *p = arg;

	pthread_mutex_lock(&p->lock);
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->listening = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *pair__dest(void *arg)
{
	struct pair *p = arg;

	p->rc = lm_vm_migrate_recv(&p->ro, p->rres);
	if (p->rc)
		snprintf(p->err, sizeof(p->err), "%s", util_last_error());
	pthread_mutex_lock(&p->lock);
	p->over = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int lm_vm_migrate_pair(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_migrate_send_opts *so,
		       const struct lm_migrate_recv_opts *ro, uint64_t rtt_ns,
		       struct lm_migrate_pair_result *res)
{
	struct lm_migrate_send_opts s = *so;
	struct lm_net_proxy *proxy = NULL;
	struct pair p = { .ro = *ro, .rres = &res->recv };
	pthread_t th;
	int rc;

	memset(res, 0, sizeof(*res));
	p.ro.listen = ro->listen ? ro->listen : "127.0.0.1:0";
	if (!p.ro.mem_size)	/* else a test of a mismatched layout */
		p.ro.mem_size = cfg->mem_size;
	p.ro.nr_vcpus = cfg->nr_vcpus;
	p.ro.guest_page_size = cfg->guest_page_size;
	p.ro.cancel = &p.cancel;
	p.ro.listening = pair__listening;
	p.ro.listening_arg = &p;
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	rc = pthread_create(&th, NULL, pair__dest, &p);
	if (rc) {
		rc = util_error(-rc, "destination thread: %s", strerror(rc));
		goto out;
	}
	pthread_mutex_lock(&p.lock);
	while (!p.listening && !p.over)
		pthread_cond_wait(&p.cond, &p.lock);
	pthread_mutex_unlock(&p.lock);
	if (p.listening && rtt_ns &&
	    lm_net_proxy_create("127.0.0.1:0", p.addr, rtt_ns, &proxy)) {
		/* no source will come: let the destination give up */
		res->send_rc = util_error(-EIO, "proxy: %s", util_last_error());
	} else if (p.listening) {
		s.to = proxy ? lm_net_proxy_address(proxy) : p.addr;
		res->send_rc = lm_vm_migrate_send(cfg, wl, &s, &res->send);
		if (res->send_rc)
			snprintf(res->send_err, sizeof(res->send_err), "%s",
				 util_last_error());
	}
	if (res->send_rc && !res->send.t_switchover_ns)
		atomic_store(&p.cancel, true);
	pthread_join(th, NULL);
	res->recv_rc = p.rc;
	snprintf(res->recv_err, sizeof(res->recv_err), "%s", p.err);
	if (res->send.t_pause_ns && res->recv.t_resume_ns > res->send.t_pause_ns)
		res->downtime_ns = res->recv.t_resume_ns - res->send.t_pause_ns;
	if (res->recv.t_complete_ns > res->send.t_start_ns && res->send.t_start_ns)
		res->total_ns = res->recv.t_complete_ns - res->send.t_start_ns;
	rc = res->send_rc ? res->send_rc : res->recv_rc;
	if (rc)
		util_error(rc, "%s%s%s%s", res->send_rc ? "source: " : "",
			    res->send_rc ? res->send_err : "",
			    res->send_rc && res->recv_rc ? "; " : "",
			    res->recv_rc ? res->recv_err : "");
	lm_net_proxy_destroy(proxy);
out:
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	return rc;
}
