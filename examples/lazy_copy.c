/*
 * lazy_copy.c - the smallest useful lazymem program: a 64 MiB buffer that
 * appears to be a copy of an image file the moment it is created, and is
 * filled page by page as it is read, each fault resolved by the reading
 * thread itself (SIGBUS mode). Build: cc lazy_copy.c $(pkg-config --cflags
 * --libs lazymem); run: ./lazy_copy IMAGE.
 */
#include <stdio.h>

#include <lazymem/lazymem.h>

int main(int argc, char **argv)
{
	struct lm_source *src;
	struct lm_region *r;
	struct lm_stats st;
	uint64_t sum = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s IMAGE\n", argv[0]);
		return 2;
	}
	if (lm_source_file_open(argv[1], &src)) {
		fprintf(stderr, "%s\n", lm_last_error());
		return 1;
	}
	struct lm_region_config cfg = {
		.name = "copy",
		.size = src->size & ~4095ull,
		.backing = LM_BACKING_ANON,
		.install = LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF,
		.source = src,
	};
	if (lm_region_create(&cfg, &r)) {
		fprintf(stderr, "%s\n", lm_last_error());
		return 1;
	}
	/* Touch every 16th page: only those are read from the file. */
	const uint8_t *p = lm_region_addr(r);
	for (uint64_t off = 0; off < cfg.size; off += 16 * 4096)
		sum += p[off];
	lm_region_stats(r, &st);
	printf("checksum %llu; %llu of %llu pages fetched, p50 %.1f us\n",
	       (unsigned long long)sum, (unsigned long long)st.pages_demand,
	       (unsigned long long)(cfg.size / 4096), st.lat_p50_ns / 1e3);
	lm_region_destroy(r);
	lm_source_destroy(src);
	return 0;
}
