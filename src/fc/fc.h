/*
 * fc.h - the Firecracker-compatible page-fault handler daemon
 * (`lazymem fc-handler`): what its files share.
 *
 *   protocol.c  the one message a VMM sends: parse and validate
 *   vm.c        one connection = one VM: handshake, serving, teardown
 *   prefetch.c  the per-VM working-set prefetch thread
 *   report.c    per-VM statistics, as text or JSON
 *   server.c    the event loop: listening socket, VMs, signals
 *
 * The fault path itself is the core's foreign space (lazymem/foreign.h);
 * the working-set file format is src/fcproto/wsfile.h, shared with the VMM.
 */
#ifndef LAZYMEM_FC_H
#define LAZYMEM_FC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lazymem/lazymem.h>
#include "fcproto/wsfile.h"
#include "util/clock.h"

#define FC_MAX_REGIONS 64
#define FC_MSG_MAX (64u << 10)	/* bytes of JSON a VMM may send */
#define FC_MAX_FDS 8		/* fds accepted per message, to name extras */
#define FC_HANDSHAKE_MS 10000	/* a connection must send its message by */

/* ---- protocol.c ---- */

struct fc_region {
	uint64_t base;		/* base_host_virt_addr, in the VMM */
	uint64_t size;
	uint64_t offset;	/* in the memory file */
	uint64_t page_size;	/* 4096 or 2 MiB */
};

struct fc_layout {
	struct fc_region r[FC_MAX_REGIONS];
	unsigned n;
};

enum fc_parse {
	FC_PARSE_OK,
	FC_PARSE_MORE,		/* incomplete JSON: wait for more bytes */
	FC_PARSE_BAD,		/* refused; why says what is wrong */
};

/* Parse buf[0..len) as the VMM's message and check it against a memory
 * file of file_size bytes. */
enum fc_parse fc_protocol_parse(const char *buf, size_t len,
				uint64_t file_size, struct fc_layout *out,
				char *why, size_t why_len);

/* ---- server.c / vm.c ---- */

enum fc_prefetch { FC_PREFETCH_NONE, FC_PREFETCH_ALL, FC_PREFETCH_WS };

struct fc_options {
	const char *socket_path;	/* NULL: the socket comes from systemd */
	/* Use the listening socket systemd passed (LISTEN_FDS / LISTEN_PID,
	 * fd 3) and refuse to start without it; set for --socket-activated
	 * or when no --socket is given. Without it an inherited socket meant
	 * for this process is still used (then it must be at socket_path). */
	bool socket_activated;
	const char *mem_path;
	enum fc_prefetch prefetch;
	const char *ws_path;		/* FC_PREFETCH_WS */
	const char *record_path;	/* --record-ws */
	bool kill_peer;
	bool json;
	bool quiet;			/* no per-connection log lines */
	int ready_fd;			/* >= 0: write one byte when listening */
};

struct fc_server;

struct fc_vm {
	struct fc_vm *next;
	struct fc_server *srv;
	unsigned id;
	unsigned parent_id;		/* a forked child's VM: its parent's */
	int sock;			/* -1 for a forked child */
	pid_t pid;
	bool serving;
	uint64_t t_connect_ns;
	/* handshake */
	char *buf;
	size_t len;
	int fds[FC_MAX_FDS];
	unsigned nfds;
	bool fds_truncated;
	/* serving */
	struct fc_layout layout;
	struct lm_foreign *f;
	_Atomic bool first_fault;
	_Atomic uint64_t t_first_fault_ns;
	_Atomic bool failed;
	/* working-set prefetch */
	pthread_t ws_thread;
	bool ws_running;
	_Atomic uint32_t ws_go;		/* futex: 1 = first fault seen */
	_Atomic bool ws_stop;
	_Atomic uint64_t ws_pages, ws_done_ns;
	/* working-set recording (only this VM's handler thread writes) */
	bool recording;
	uint64_t *rec;
	size_t rec_n, rec_cap;
	uint8_t *rec_seen;		/* a bit per 4 KiB of the memory file */
};

struct fc_server {
	struct fc_options o;
	struct lm_source *mem;
	uint64_t mem_size;
	void *image;		/* mem mapped read-only and shared, or NULL */
	struct fc_ws ws;
	bool record_taken;
	int listen_fd, epoll_fd, sig_fd;
	bool inherited;		/* listen_fd came from systemd: not ours to unlink */
	char sock_name[128];	/* for messages: the path listened on */
	int fork_pipe[2];	/* handler threads hand forked children over */
	struct fc_vm *vms;
	_Atomic unsigned next_id;
};

/* Run the daemon until SIGINT/SIGTERM. Returns the exit code. */
int fc_server_run(const struct fc_options *o);

/* vm.c */
struct fc_vm *fc_vm_new(struct fc_server *s, int sock);
/* Read what the VMM sent. 0: keep the connection; -1: close it (refused,
 * or the peer went away). */
int fc_vm_on_readable(struct fc_vm *vm);
bool fc_vm_handshake_expired(const struct fc_vm *vm, uint64_t now_ns);
void fc_vm_refuse(struct fc_vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Stop serving, report, write its working set if recording, free. */
void fc_vm_close(struct fc_vm *vm, const char *why);

/* prefetch.c */
int fc_prefetch_start(struct fc_vm *vm);
void fc_prefetch_kick(struct fc_vm *vm);
void fc_prefetch_stop(struct fc_vm *vm);

/* report.c */
void fc_report(const struct fc_vm *vm, const char *event);

void fc_log(const struct fc_server *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
