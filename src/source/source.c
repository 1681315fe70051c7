/*
 * source.c - what every source shares: destruction and bounds.
 */
#include <stddef.h>

#include <lazymem/source.h>

void lm_source_destroy(struct lm_source *src)
{
	if (src && src->ops->destroy)
		src->ops->destroy(src);
}
