/*
 * report.c - per-VM statistics, printed when a VM disconnects and for
 * every VM on SIGUSR1: faults, pages installed on demand and by prefetch,
 * fault latency p50 / p99 / max; one JSON object per line with --json.
 */
#include <json-c/json.h>
#include <stdio.h>

#include "util/clock.h"
#include "fc/fc.h"

void fc_report(const struct fc_vm *vm, const char *event)
{
	struct lm_stats st;
	uint64_t msgs, events, prefetch, ff = atomic_load(&vm->t_first_fault_ns);
	uint64_t wsd = atomic_load(&vm->ws_done_ns);
	double up = (double)(lm_now_ns() - vm->t_connect_ns) / 1e9;

	if (!vm->f)
		return;
	lm_foreign_stats(vm->f, &st);
	msgs = lm_foreign_fault_msgs(vm->f);
	events = lm_foreign_events(vm->f);
	prefetch = st.pages_background + st.pages_around;
	if (vm->srv->o.json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "event", json_object_new_string(event));
		json_object_object_add(o, "vm", json_object_new_int((int)vm->id));
		json_object_object_add(o, "pid", json_object_new_int(vm->pid));
		json_object_object_add(o, "seconds", json_object_new_double(up));
		json_object_object_add(o, "faults",
			json_object_new_int64((int64_t)msgs));
		json_object_object_add(o, "pages_demand",
			json_object_new_int64((int64_t)st.pages_demand));
		json_object_object_add(o, "pages_prefetch",
			json_object_new_int64((int64_t)prefetch));
		json_object_object_add(o, "pages_zero",
			json_object_new_int64((int64_t)st.pages_zero));
		json_object_object_add(o, "pages_removed",
			json_object_new_int64((int64_t)st.pages_removed));
		json_object_object_add(o, "pages_failed",
			json_object_new_int64((int64_t)st.pages_failed));
		json_object_object_add(o, "faults_retried",
			json_object_new_int64((int64_t)st.faults_retried));
		json_object_object_add(o, "events",
			json_object_new_int64((int64_t)events));
		json_object_object_add(o, "bytes_read",
			json_object_new_int64((int64_t)st.bytes_read));
		json_object_object_add(o, "fault_p50_us",
			json_object_new_double((double)st.lat_p50_ns / 1e3));
		json_object_object_add(o, "fault_p99_us",
			json_object_new_double((double)st.lat_p99_ns / 1e3));
		json_object_object_add(o, "fault_max_us",
			json_object_new_double((double)st.lat_max_ns / 1e3));
		json_object_object_add(o, "first_fault_after_s", ff
			? json_object_new_double((double)(ff - vm->t_connect_ns) / 1e9)
			: NULL);
		json_object_object_add(o, "ws_pages",
			json_object_new_int64((int64_t)atomic_load(&vm->ws_pages)));
		json_object_object_add(o, "ws_seconds", wsd && ff
			? json_object_new_double((double)(wsd - ff) / 1e9)
			: NULL);
		printf("%s\n", json_object_to_json_string_ext(o,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("vm %u (pid %d) %s after %.2f s: %llu faults, pages "
		       "%llu demand / %llu prefetch / %llu zero / %llu removed "
		       "/ %llu failed, %llu retried, %llu events, fault latency "
		       "p50 %.1f us p99 %.1f us max %.1f us", vm->id,
		       (int)vm->pid, event, up, (unsigned long long)msgs,
		       (unsigned long long)st.pages_demand,
		       (unsigned long long)prefetch,
		       (unsigned long long)st.pages_zero,
		       (unsigned long long)st.pages_removed,
		       (unsigned long long)st.pages_failed,
		       (unsigned long long)st.faults_retried,
		       (unsigned long long)events, st.lat_p50_ns / 1e3,
		       st.lat_p99_ns / 1e3, st.lat_max_ns / 1e3);
		if (wsd && ff)
			printf(", working set %llu pages in %.3f s from the "
			       "first fault",
			       (unsigned long long)atomic_load(&vm->ws_pages),
			       (double)(wsd - ff) / 1e9);
		printf("\n");
	}
	fflush(stdout);
}
