/*
 * vm_opts.c - parsing the option values of the VM commands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/vm_opts.h"

int vm_opt_uint(const char *s, unsigned long min, unsigned long max,
		unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int vm_opt_backing(const char *s, enum lm_backing *out)
{
	static const enum lm_backing all[] = {
		LM_BACKING_ANON, LM_BACKING_MEMFD, LM_BACKING_HUGETLB,
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, lm_backing_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

int vm_opt_guest_pages(const char *s, uint64_t *out)
{
	uint64_t v;

	if (cli_parse_size(s, &v) || (v != 4096 && v != (2u << 20)))
		return -EINVAL;
	*out = v;
	return 0;
}

int vm_opt_placement(const char *s, enum lm_vm_placement *out)
{
	if (!strcmp(s, "any"))
		*out = LM_PLACE_ANY;
	else if (!strcmp(s, "same-cpu"))
		*out = LM_PLACE_SAME_CPU;
	else if (!strcmp(s, "other-cpu"))
		*out = LM_PLACE_OTHER_CPU;
	else
		return -EINVAL;
	return 0;
}

int vm_opt_percent(const char *s, double *fraction)
{
	char *end;
	double pct = strtod(s, &end);

	if (end == s || strcmp(end, "%") || !(pct > 0) || pct > 100)
		return -EINVAL;
	*fraction = pct / 100.0;
	return 0;
}

int vm_opt_ws(const char *s, uint64_t mem, uint64_t page_size,
	      unsigned vcpus, uint64_t *pages_per_vcpu)
{
	size_t len = strlen(s);
	uint64_t bytes;
	double f;

	if (len > 1 && s[len - 1] == '%') {
		if (vm_opt_percent(s, &f))
			return -EINVAL;
		bytes = (uint64_t)((double)mem * f);
	} else if (cli_parse_size(s, &bytes) || !bytes) {
		return -EINVAL;
	}
	*pages_per_vcpu = bytes / page_size / vcpus;
	if (!*pages_per_vcpu)
		*pages_per_vcpu = 1;
	return 0;
}
