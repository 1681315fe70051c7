/*
 * migrate.h - live migration of a running test VM between two lazymem
 * processes: pre-copy rounds driven by KVM's dirty log while the guest
 * runs, a short pause to hand over vCPU state and the last dirty pages,
 * then post-copy on the destination, whose vCPUs fetch missing pages on
 * their own threads (src/net is the transport; docs/migration.md).
 *
 *   source        lm_vm_migrate_send: runs the VM, migrates it, serves it
 *   destination   lm_vm_migrate_recv: listens, receives, resumes, verifies
 */
#ifndef LAZYMEM_MIGRATE_H
#define LAZYMEM_MIGRATE_H

#include <stdatomic.h>

#include "vmm/dirty_log.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm.h"
#include "net/net.h"

enum lm_migrate_mode {
	LM_MIGRATE_PRECOPY,	/* rounds, then the rest while paused */
	LM_MIGRATE_POSTCOPY,	/* switch over at once, all RAM on demand */
	LM_MIGRATE_HYBRID,	/* rounds, then what is still dirty on demand */
	LM_MIGRATE_MODE_COUNT
};

const char *lm_migrate_mode_name(enum lm_migrate_mode m);
int lm_migrate_mode_parse(const char *s, enum lm_migrate_mode *out);

/* Called now and then on the calling thread: what is going on, and how far. */
typedef void (*lm_migrate_progress_fn)(const char *what, uint64_t done,
				       uint64_t total, void *arg);

struct lm_migrate_send_opts {
	const char *to;			/* the destination, "host:port" */
	enum lm_migrate_mode mode;
	unsigned max_rounds;		/* pre-copy rounds in all (0: 8) */
	unsigned warmup_ms;		/* guest dirties this long first */
	bool compress;			/* LZ4 where it pays */
	/* After a break in post-copy, dial again and resume, for up to
	 * resume_timeout_ms (-1: forever). */
	bool resume;
	int resume_timeout_ms;
	unsigned timeout_ms;		/* watchdog, pause, handshake waits */
	/* Test aid: cut every connection once, this long into post-copy. */
	unsigned cut_after_ms;
	/* TLS credentials (net/tls.h), borrowed; NULL: plain TCP, loopback
	 * only unless insecure. */
	struct lm_net_tls *tls;
	bool insecure;
	lm_migrate_progress_fn progress;
	void *progress_arg;
};

struct lm_migrate_send_result {
	unsigned rounds;		/* pre-copy rounds before the pause */
	uint64_t round_pages[16];	/* pages sent per round (first 16) */
	uint64_t pages_final;		/* sent while paused */
	uint64_t pages_left;		/* dirty RAM left to post-copy */
	uint64_t passes;		/* guest's dirtying passes (vCPU 0) */
	uint64_t t_start_ns;		/* connected, guest started */
	uint64_t t_pause_ns;		/* pause asked */
	uint64_t t_paused_ns;		/* every vCPU stopped */
	uint64_t t_switchover_ns;	/* SWITCHOVER sent */
	uint64_t t_done_ns;		/* the destination said DONE */
	struct lm_net_server_stats net;
};

/* Create a VM from cfg (delivery limit: its memory is all there), run the
 * migrate workload on it (wl.ws_pages is its hot set per vCPU), migrate it
 * to o->to and serve it until the destination has every page. */
int lm_vm_migrate_send(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_migrate_send_opts *o,
		       struct lm_migrate_send_result *res);

struct lm_migrate_recv_opts {
	const char *listen;		/* "host:port"; port 0 picks one */
	/* The VM as the source runs it: the layout must match exactly. */
	uint64_t mem_size;
	unsigned nr_vcpus;
	uint64_t guest_page_size;
	enum lm_vm_delivery delivery;	/* exit (default) or hybrid */
	/* RAM's 2 MiB ranges become huge pages as they fill (memfd: shmem
	 * collapses even with shmem_enabled=never; docs/thp.md). */
	enum lm_thp thp;
	/* While the source is away, hold the vCPUs that need a missing page
	 * for up to hold_timeout_ms (-1: forever) instead of failing them. */
	bool hold;
	int hold_timeout_ms;
	int req_timeout_ms;		/* one demand request (0: 5000) */
	unsigned run_ms;		/* guest runs this long, then checks */
	unsigned timeout_ms;		/* waits and the watchdog (0: none) */
	struct lm_net_tls *tls;		/* as lm_migrate_send_opts' */
	bool insecure;
	/* Called once, listening, with the address (port filled in). */
	void (*listening)(const char *addr, void *arg);
	void *listening_arg;
	lm_migrate_progress_fn progress;
	void *progress_arg;
	/* Set from another thread: stop waiting for a source (-ECANCELED). */
	const atomic_bool *cancel;
};

struct lm_migrate_recv_result {
	struct lm_vm_result run;	/* the guest's own check, exits, ... */
	uint64_t t_up_ns;		/* the source connected */
	uint64_t t_switchover_ns;	/* SWITCHOVER received */
	uint64_t t_resume_ns;		/* first vCPU entered the guest */
	uint64_t t_complete_ns;		/* every page is here */
	uint64_t passes;		/* guest's dirtying passes (vCPU 0) */
	uint64_t pages_settled;		/* pre-copied pages mapped ahead of
					 * the guest (no exit for it) */
	struct lm_net_dest_stats net;
};

int lm_vm_migrate_recv(const struct lm_migrate_recv_opts *o,
		       struct lm_migrate_recv_result *res);

/*
 * Both ends in this process on loopback (pair.c): the destination
 * on a thread (ro's VM shape is taken from cfg; listen defaults to
 * 127.0.0.1:0), behind a proxy adding rtt_ns when nonzero. 0, or the
 * first failure with both ends' messages in util_last_error().
 */
struct lm_migrate_pair_result {
	struct lm_migrate_send_result send;
	struct lm_migrate_recv_result recv;
	int send_rc, recv_rc;
	char send_err[512], recv_err[512];
	uint64_t downtime_ns;		/* pause asked -> first vCPU back in */
	uint64_t total_ns;		/* source connected -> every page here */
};

int lm_vm_migrate_pair(const struct lm_vm_config *cfg,
		       const struct lm_vm_workload *wl,
		       const struct lm_migrate_send_opts *so,
		       const struct lm_migrate_recv_opts *ro, uint64_t rtt_ns,
		       struct lm_migrate_pair_result *res);

/* Both sides' layout: the reserved area, then RAM, 4 KiB pages. */
int lm_vm_migrate_layout(uint64_t mem_size, uint64_t guest_page_size,
			 struct lm_net_layout *l);

#endif
