/*
 * prefetch.c - the working-set prefetch thread of one VM.
 *
 * It sleeps until the VM's first fault (the guest is running: from then
 * on every page it will touch soon is worth having), then walks the
 * recorded working set in first-touch order, a batch at a time: the
 * batch's pages are claimed, read with one read per run of adjacent pages
 * and installed with UFFDIO_COPY without waking, then one UFFDIO_WAKE
 * (lm_foreign_prefetch). Pages the guest faulted on meanwhile are already
 * present or being fetched and are skipped; pages the balloon removed are
 * never prefetched.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/bits.h"
#include "util/clock.h"
#include "util/futex.h"
#include "fc/fc.h"

/* 256 pages a batch: 1 MiB of 4 KiB pages, small enough that a demand
 * fault waiting on a page of the batch waits for one short read. */
#define WS_BATCH 256

static void *ws_main(void *arg)
{
	struct fc_vm *vm = arg;
	const struct fc_ws *ws = &vm->srv->ws;
	uint64_t pages = 0;
	size_t i = 0;

	while (!atomic_load(&vm->ws_go))
		lm_futex_wait(&vm->ws_go, 0, NULL);
	while (i < ws->n && !atomic_load(&vm->ws_stop)) {
		size_t n = LM_MIN(WS_BATCH, ws->n - i);
		int rc = lm_foreign_prefetch(vm->f, ws->off + i, n);

		if (rc == -EAGAIN) {
			/* The VMM is changing its memory map; the handler
			 * thread reads the event. Try the batch again. */
			usleep(100);
			continue;
		}
		if (rc < 0) {
			fc_log(vm->srv, "vm %u: working-set prefetch stopped at "
			       "entry %zu: %s", vm->id, i, strerror(-rc));
			break;
		}
		pages += (uint64_t)rc;
		atomic_store(&vm->ws_pages, pages);
		i += n;
	}
	atomic_store(&vm->ws_done_ns, lm_now_ns());
	return NULL;
}

int fc_prefetch_start(struct fc_vm *vm)
{
	if (!vm->srv->ws.n)
		return 0;
	if (pthread_create(&vm->ws_thread, NULL, ws_main, vm))
		return -1;
	vm->ws_running = true;
	return 0;
}

void fc_prefetch_kick(struct fc_vm *vm)
{
	if (!atomic_exchange(&vm->ws_go, 1))
		lm_futex_wake_all(&vm->ws_go);
}

void fc_prefetch_stop(struct fc_vm *vm)
{
	if (!vm->ws_running)
		return;
	atomic_store(&vm->ws_stop, true);
	fc_prefetch_kick(vm);
	pthread_join(vm->ws_thread, NULL);
	vm->ws_running = false;
}
