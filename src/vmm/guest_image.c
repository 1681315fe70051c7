/*
 * guest_image.c - finding an embedded guest workload image by name.
 */
#include <string.h>

#include "vmm/guest_image.h"

const struct lm_guest_image *lm_guest_image_find(const char *name)
{
	for (const struct lm_guest_image *g = lm_guest_images; g->name; g++)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}
