/*
 * progress.c - the one-line progress display for long work (save,
 * restore, verify): redrawn in place on a terminal, silent otherwise.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "util/clock.h"

void cli_progress(uint64_t done, uint64_t total, void *arg)
{
	const char *what = arg;
	static uint64_t last_ns;
	uint64_t now = lm_now_ns();

	if (done < total && now - last_ns < 100000000ull)
		return;		/* 10 redraws a second are plenty */
	last_ns = now;
	fprintf(stderr, "\r%s: %llu / %llu MiB (%3.0f%%)%s", what,
		(unsigned long long)(done >> 20),
		(unsigned long long)(total >> 20),
		total ? 100.0 * (double)done / (double)total : 100.0,
		done >= total ? "\n" : "");
	fflush(stderr);
}
