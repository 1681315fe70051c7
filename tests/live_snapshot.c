/*
 * live_snapshot.c - lm_snap_live_save on plain threads: writers rewrite
 * every page in a scattered order with generation numbers during the whole
 * snapshot, and the snapshot must hold exactly each page's generation at
 * the instant (recorded while the writers are paused for it), checked by
 * `snapshot verify`'s call and by reading it back through a lazy restore.
 * Both modes (cow with a small buffer, so the throttle works; iterate),
 * both deliveries; a full disk (a small tmpfs) fails cleanly; a second
 * snapshot while one runs is refused by name. The same writers on a
 * hugetlb region (8 pages of 2 MiB, written 4 KiB at a time): each huge
 * page copied at most once, a buffer of two huge pages, one smaller than
 * a huge page refused by name.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_test.h"

#define PAGES 4096u
#define PS 4096ull
#define WRITERS 2u
#define HEAD 8u		/* pages saved ahead of the region (a VM's reserved area) */
#define HPS (2ull << 20)	/* a hugetlb page */
#define HUGE_PAGES (PAGES * PS / HPS)

struct world {
	uint8_t *base;
	_Atomic uint32_t gen[PAGES];	/* published after the page write */
	uint32_t at_instant[PAGES];
	_Atomic bool pause_req, stop;
	_Atomic unsigned parked;
	_Atomic uint64_t writes;
	/* the head: writer 0 rewrites it too */
	uint64_t head[HEAD * PS / 8];
	_Atomic uint32_t head_gen[HEAD];
	uint32_t head_at[HEAD];
	pthread_t tid[WRITERS];
	unsigned ids[WRITERS];
	/* resume() tries a second snapshot of the same region once */
	struct lm_region *r;
	const char *second_dir;
	int second_err;
	char second_msg[512];
};

static struct world W;

/* A path or command of the test's, formatted (one at a time). */
static char t_buf[4200];
#define t_fmt(...) (snprintf(t_buf, sizeof(t_buf), __VA_ARGS__), t_buf)

static void write_page(unsigned p, uint32_t gen)
{
	volatile uint64_t *w = (volatile uint64_t *)(void *)(W.base + p * PS);

	for (unsigned i = 0; i < PS / 8; i++)
		w[i] = (uint64_t)p << 32 | gen;
	atomic_store(&W.gen[p], gen);
}

/* Writer w owns the pages p % WRITERS == w and visits them in a
 * scattered order (a stride coprime with their count). */
static void *writer(void *arg)
{
	unsigned w = *(unsigned *)arg, n = PAGES / WRITERS, k = 0;

	while (!atomic_load(&W.stop)) {
		unsigned p;

		if (atomic_load(&W.pause_req)) {
			atomic_fetch_add(&W.parked, 1);
			while (atomic_load(&W.pause_req))
				usleep(100);
			atomic_fetch_sub(&W.parked, 1);
		}
		p = (k * 769u) % n * WRITERS + w;
		k++;
		write_page(p, atomic_load(&W.gen[p]) + 1);
		if (w == 0) {
			unsigned h = k % HEAD;
			uint32_t g = atomic_load(&W.head_gen[h]) + 1;

			for (unsigned i = 0; i < PS / 8; i++)
				((volatile uint64_t *)W.head)[h * PS / 8 + i] =
					(uint64_t)(h + 1000) << 32 | g;
			atomic_store(&W.head_gen[h], g);
		}
		atomic_fetch_add(&W.writes, 1);
	}
	return NULL;
}

static int pause_writers(void *arg)
{
	uint64_t writes = atomic_load(&W.writes);

	(void)arg;
	/* Let the writers change pages between the snapshot's last look
	 * and the instant, so an instant taken late is caught. */
	while (atomic_load(&W.writes) < writes + 64)
		usleep(100);
	atomic_store(&W.pause_req, true);
	while (atomic_load(&W.parked) < WRITERS)
		usleep(50);
	for (unsigned p = 0; p < PAGES; p++)
		W.at_instant[p] = atomic_load(&W.gen[p]);
	for (unsigned h = 0; h < HEAD; h++)
		W.head_at[h] = atomic_load(&W.head_gen[h]);
	return 0;
}

static int no_pause(void *arg) { (void)arg; return 0; }
static void no_resume(void *arg) { (void)arg; }

static void resume_writers(void *arg)
{
	(void)arg;
	if (W.second_dir) {
		struct lm_snap_meta m2 = { .page_size = PS,
					   .mem_size = PAGES * PS,
					   .nr_regions = 1, .nr_vcpus = 1 };
		struct lm_snap_vcpu v = { 0 };
		struct lm_live_config c2 = { .mode = LM_LIVE_COW,
					     .pause = no_pause,
					     .resume = no_resume };

		m2.regions[0].size = PAGES * PS;
		m2.vcpus = &v;
		W.second_err = lm_snap_live_save(W.second_dir, &m2, W.r, &c2,
						 NULL);
		snprintf(W.second_msg, sizeof(W.second_msg), "%s",
			 lm_last_error());
		W.second_dir = NULL;
	}
	atomic_store(&W.pause_req, false);
}

static struct lm_region *start_on(enum lm_delivery d, enum lm_wp_mode wp,
				  enum lm_backing b, struct lm_source **src)
{
	struct lm_region *r;

	memset(&W, 0, sizeof(W));
	LM_OK(lm_source_zero_create(PAGES * PS, src));
	struct lm_region_config rc = {
		.name = "live", .size = PAGES * PS,
		.backing = b, .install = LM_INSTALL_COPY,
		.delivery = d, .handler_threads = 1, .source = *src,
		.write_protect = wp,
	};
	LM_OK(lm_region_create(&rc, &r));
	W.base = lm_region_addr(r);
	W.r = r;
	for (unsigned p = 0; p < PAGES; p++)
		write_page(p, 1);
	for (unsigned i = 0; i < WRITERS; i++) {
		W.ids[i] = i;
		pthread_create(&W.tid[i], NULL, writer, &W.ids[i]);
	}
	return r;
}

static struct lm_region *start(enum lm_delivery d, enum lm_wp_mode wp,
			       struct lm_source **src)
{
	return start_on(d, wp, LM_BACKING_ANON, src);
}

static void stop(struct lm_region *r, struct lm_source *src)
{
	atomic_store(&W.stop, true);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(W.tid[i], NULL);
	lm_region_destroy(r);
	lm_source_destroy(src);
}

static void meta_init(struct lm_snap_meta *m, struct lm_snap_vcpu *v)
{
	memset(m, 0, sizeof(*m));
	memset(v, 0, sizeof(*v));
	m->page_size = PS;
	m->mem_size = PAGES * PS;
	m->nr_regions = 1;
	m->regions[0].size = PAGES * PS;
	m->nr_vcpus = 1;
	m->vcpus = v;
}

/* The snapshot verifies, and a lazy restore reads the instant back. */
static void check_snapshot_at(const char *dir, unsigned hp)
{
	struct lm_snap_meta m;
	struct lm_source *src;
	struct lm_region *r;
	uint64_t bad = 0, first = 0;
	const uint64_t *mem;

	LM_OK(lm_snap_open(dir, &m));
	LM_OK(lm_snap_verify(dir, &m, &bad, &first, NULL, NULL));
	LM_ASSERT(bad == 0, "%llu bad pages", (unsigned long long)bad);
	LM_OK(lm_snap_source_open(dir, &m, &src));
	/* A snapshot of a hugetlb region is checked per 2 MiB page: it is
	 * restored onto hugetlb. */
	struct lm_region_config rc = {
		.name = "restore", .size = (PAGES + hp) * PS,
		.backing = m.page_size == HPS ? LM_BACKING_HUGETLB
					      : LM_BACKING_ANON,
		.install = LM_INSTALL_COPY,
		.delivery = LM_DELIVERY_SELF, .source = src,
	};
	LM_OK(lm_region_create(&rc, &r));
	mem = lm_region_addr(r);
	for (unsigned h = 0; h < hp; h++)
		for (unsigned i = 0; i < PS / 8; i++)
			LM_ASSERT(mem[h * PS / 8 + i] ==
				  ((uint64_t)(h + 1000) << 32 | W.head_at[h]),
				  "head page %u: gen %u, at the instant %u", h,
				  (unsigned)mem[h * PS / 8 + i], W.head_at[h]);
	mem += hp * PS / 8;
	for (unsigned p = 0; p < PAGES; p++) {
		uint64_t want = (uint64_t)p << 32 | W.at_instant[p];

		for (unsigned i = 0; i < PS / 8; i++)
			LM_ASSERT(mem[p * PS / 8 + i] == want,
				  "page %u word %u: gen %u, at the instant %u",
				  p, i, (unsigned)mem[p * PS / 8 + i],
				  W.at_instant[p]);
	}
	lm_region_destroy(r);
	lm_source_destroy(src);
	lm_snap_meta_free(&m);
}

static void check_snapshot(const char *dir) { check_snapshot_at(dir, 0); }

static void live_head(enum lm_delivery d, enum lm_live_mode mode,
		      unsigned hp)
{
	char dir[] = "/tmp/lm_live_XXXXXX";
	struct lm_source *src;
	struct lm_region *r = start(d, mode == LM_LIVE_COW ? LM_WP_SYNC
							   : LM_WP_ASYNC, &src);
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_report rep;
	struct lm_live_config c = {
		.mode = mode, .max_buffer = 16 * PS,
		.pause = pause_writers, .resume = resume_writers,
		.head = W.head, .head_size = hp * PS,
	};
	uint64_t writes;

	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	meta_init(&m, &v);
	m.mem_size += hp * PS;
	m.regions[0].size += hp * PS;
	while (atomic_load(&W.writes) < PAGES)
		usleep(100);
	writes = atomic_load(&W.writes);
	LM_OK(lm_snap_live_save(dir, &m, r, &c, &rep));
	LM_ASSERT(atomic_load(&W.writes) > writes + 100,
		  "writers ran during the snapshot");
	LM_ASSERT(rep.pause_ns > 0 && rep.written_pages >= PAGES + hp,
		  "report: pause %llu ns, %llu pages written",
		  (unsigned long long)rep.pause_ns,
		  (unsigned long long)rep.written_pages);
	if (mode == LM_LIVE_COW) {
		LM_ASSERT(rep.copied_before_write > 0, "no copy before write");
		LM_ASSERT(rep.buffer_peak <= 16 * PS && rep.buffer_peak > 0,
			  "buffer peak %llu",
			  (unsigned long long)rep.buffer_peak);
	}
	LM_ASSERT(!lm_wp_busy(r), "protection released");
	stop(r, src);
	check_snapshot_at(dir, hp);
	LM_ASSERT(system(t_fmt("rm -rf %s", dir)) == 0, "rm");
}

static void live(enum lm_delivery d, enum lm_live_mode mode)
{
	live_head(d, mode, 0);
}

static void test_cow_self(void **s) { (void)s; LM_REQUIRE_UFFD(); live(LM_DELIVERY_SELF, LM_LIVE_COW); }
static void test_cow_handler(void **s) { (void)s; LM_REQUIRE_UFFD(); live(LM_DELIVERY_HANDLER, LM_LIVE_COW); }
static void test_iterate_self(void **s) { (void)s; LM_REQUIRE_UFFD(); live(LM_DELIVERY_SELF, LM_LIVE_ITERATE); }
/* A head (a VM's reserved area) saved inside the pause, ahead of RAM. */
static void test_cow_head(void **s) { (void)s; LM_REQUIRE_UFFD(); live_head(LM_DELIVERY_SELF, LM_LIVE_COW, HEAD); }
static void test_iterate_head(void **s) { (void)s; LM_REQUIRE_UFFD(); live_head(LM_DELIVERY_SELF, LM_LIVE_ITERATE, HEAD); }
static void test_iterate_handler(void **s) { (void)s; LM_REQUIRE_UFFD(); live(LM_DELIVERY_HANDLER, LM_LIVE_ITERATE); }

/* A disk too small: the error names memory.img and an offset, nothing is
 * left protected, the writers run on, and there is no meta.json. */
static void full_disk(enum lm_live_mode mode)
{
	char dir[] = "/tmp/lm_live_full_XXXXXX";
	struct lm_source *src;
	struct lm_region *r;
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_config c = {
		.mode = mode, .max_buffer = 16 * PS,
		.pause = pause_writers, .resume = resume_writers,
	};
	struct lm_stats st;
	struct stat sb;
	uint64_t writes, faults;
	int err;

	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	if (getuid() != 0 ||
	    mount("lm_live_full", dir, "tmpfs", 0, "size=1m") < 0) {
		rmdir(dir);
		LM_SKIP("cannot mount a 1 MiB tmpfs at %s (needs root)", dir);
	}
	r = start(LM_DELIVERY_SELF, mode == LM_LIVE_COW ? LM_WP_SYNC
							: LM_WP_ASYNC, &src);
	meta_init(&m, &v);
	err = lm_snap_live_save(dir, &m, r, &c, NULL);
	LM_ASSERT(err == -ENOSPC, "full disk: %d, want -ENOSPC (%s)", err,
		  lm_last_error());
	LM_ASSERT(strstr(lm_last_error(), "memory.img") &&
		  strstr(lm_last_error(), "offset"),
		  "message names the file and offset: %s", lm_last_error());
	LM_ASSERT(stat(t_fmt("%s/meta.json", dir), &sb) < 0 &&
		  stat(t_fmt("%s/memory.img", dir), &sb) < 0,
		  "no meta.json, no memory.img left");
	LM_ASSERT(!lm_wp_busy(r), "protection released");
	/* The writers run on and fault no more: every page is writable. A
	 * fault a writer took before the protection was lifted may still be
	 * counted as it finishes: let both laps of writes pass first. */
	writes = atomic_load(&W.writes);
	while (atomic_load(&W.writes) < writes + 2 * PAGES)
		usleep(1000);
	lm_region_stats(r, &st);
	faults = st.wp_faults;
	writes = atomic_load(&W.writes);
	while (atomic_load(&W.writes) < writes + 2 * PAGES)
		usleep(1000);
	lm_region_stats(r, &st);
	LM_ASSERT(st.wp_faults == faults, "%llu write-protect faults after "
		  "the failure", (unsigned long long)(st.wp_faults - faults));
	stop(r, src);
	umount(dir);
	rmdir(dir);
}

static void test_full_cow(void **s) { (void)s; LM_REQUIRE_UFFD(); full_disk(LM_LIVE_COW); }
static void test_full_iterate(void **s) { (void)s; LM_REQUIRE_UFFD(); full_disk(LM_LIVE_ITERATE); }

static void test_second_refused(void **s)
{
	char dir[] = "/tmp/lm_live_XXXXXX", dir2[] = "/tmp/lm_live2_XXXXXX";
	struct lm_source *src;
	struct lm_region *r;
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_config c = {
		.mode = LM_LIVE_COW, .pause = pause_writers,
		.resume = resume_writers,
	};
	struct stat sb;

	(void)s;
	LM_REQUIRE_UFFD();
	LM_ASSERT(mkdtemp(dir) && mkdtemp(dir2), "mkdtemp");
	r = start(LM_DELIVERY_SELF, LM_WP_SYNC, &src);
	W.second_dir = dir2;
	meta_init(&m, &v);
	LM_OK(lm_snap_live_save(dir, &m, r, &c, NULL));
	LM_ASSERT(W.second_err == -EBUSY, "second snapshot: %d",
		  W.second_err);
	LM_ASSERT(strstr(W.second_msg, "'live'") &&
		  strstr(W.second_msg, "already"),
		  "refusal names the region: %s", W.second_msg);
	LM_ASSERT(stat(t_fmt("%s/memory.img", dir2), &sb) < 0,
		  "the refused snapshot wrote nothing");
	stop(r, src);
	check_snapshot(dir);
	LM_ASSERT(system(t_fmt("rm -rf %s %s", dir, dir2)) == 0, "rm");
}

/* cow on a region tracking writes asynchronously: refused, saying so. */
static void test_wrong_mode(void **s)
{
	char dir[] = "/tmp/lm_live_XXXXXX";
	struct lm_source *src;
	struct lm_region *r;
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_config c = {
		.mode = LM_LIVE_COW, .pause = pause_writers,
		.resume = resume_writers,
	};
	struct stat sb;
	int err;

	(void)s;
	LM_REQUIRE_UFFD();
	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	r = start(LM_DELIVERY_SELF, LM_WP_ASYNC, &src);
	meta_init(&m, &v);
	err = lm_snap_live_save(dir, &m, r, &c, NULL);
	LM_ASSERT(err == -EINVAL && strstr(lm_last_error(), "write_protect sync, not async"),
		  "cow on an async region: %d (%s)", err, lm_last_error());
	LM_ASSERT(stat(t_fmt("%s/meta.json", dir), &sb) < 0 &&
		  stat(t_fmt("%s/memory.img", dir), &sb) < 0, "nothing left");
	LM_ASSERT(!lm_wp_busy(r), "nothing protected");
	stop(r, src);
	rmdir(dir);
}

/*
 * hugetlb (the region, then its restore: 2 x HUGE_PAGES). The state is
 * main's reservation: the previous nr_hugepages, or
 * -1 when none could be made (skip).
 */
#define REQUIRE_HUGE(s)                                                      \
	do {                                                                 \
		LM_REQUIRE_UFFD();                                           \
		if (*(long *)*(s) < 0)                                       \
			LM_SKIP("cannot reserve %llu hugetlb pages of 2 MiB " \
				"(/proc/sys/vm/nr_hugepages, needs root)",   \
				2 * HUGE_PAGES + 2);                         \
	} while (0)

/* The writers rewrite 4 KiB pages inside 2 MiB ones: a first write
 * copies the whole huge page, at most once per page. */
static void live_huge(void **s, enum lm_delivery d, enum lm_live_mode mode)
{
	char dir[] = "/tmp/lm_live_huge_XXXXXX";
	struct lm_source *src;
	struct lm_region *r;
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_report rep;
	struct lm_live_config c = {
		.mode = mode, .max_buffer = 2 * HPS,
		.pause = pause_writers, .resume = resume_writers,
	};
	struct lm_stats st;
	uint64_t writes;

	REQUIRE_HUGE(s);
	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	r = start_on(d, mode == LM_LIVE_COW ? LM_WP_SYNC : LM_WP_ASYNC,
		     LM_BACKING_HUGETLB, &src);
	LM_ASSERT(lm_region_page_size(r) == HPS, "hugetlb page size %llu",
		  (unsigned long long)lm_region_page_size(r));
	meta_init(&m, &v);
	m.page_size = HPS;
	while (atomic_load(&W.writes) < PAGES)
		usleep(100);
	writes = atomic_load(&W.writes);
	LM_OK(lm_snap_live_save(dir, &m, r, &c, &rep));
	LM_ASSERT(atomic_load(&W.writes) > writes + 100,
		  "writers ran during the snapshot");
	LM_ASSERT(rep.written_pages >= HUGE_PAGES, "%llu pages written",
		  (unsigned long long)rep.written_pages);
	lm_region_stats(r, &st);
	if (mode == LM_LIVE_COW) {
		LM_ASSERT(rep.copied_before_write > 0 &&
			  rep.copied_before_write <= HUGE_PAGES &&
			  st.wp_copied == rep.copied_before_write,
			  "%llu huge pages copied before a write (region: "
			  "%llu), of %llu: each at most once",
			  (unsigned long long)rep.copied_before_write,
			  (unsigned long long)st.wp_copied,
			  (unsigned long long)HUGE_PAGES);
		LM_ASSERT(rep.buffer_peak > 0 && rep.buffer_peak <= 2 * HPS,
			  "buffer peak %llu, bound two huge pages",
			  (unsigned long long)rep.buffer_peak);
		/* Copied by a write or by the writer, never both, never
		 * twice: exactly one store per huge page. */
		LM_ASSERT(rep.written_pages == HUGE_PAGES,
			  "%llu huge pages stored, want %llu",
			  (unsigned long long)rep.written_pages,
			  (unsigned long long)HUGE_PAGES);
	}
	LM_ASSERT(!lm_wp_busy(r), "protection released");
	stop(r, src);
	check_snapshot(dir);
	LM_ASSERT(system(t_fmt("rm -rf %s", dir)) == 0, "rm");
}

static void test_huge_cow_self(void **s) { live_huge(s, LM_DELIVERY_SELF, LM_LIVE_COW); }
static void test_huge_cow_handler(void **s) { live_huge(s, LM_DELIVERY_HANDLER, LM_LIVE_COW); }
static void test_huge_iterate_self(void **s) { live_huge(s, LM_DELIVERY_SELF, LM_LIVE_ITERATE); }
static void test_huge_iterate_handler(void **s) { live_huge(s, LM_DELIVERY_HANDLER, LM_LIVE_ITERATE); }

/* A cow buffer smaller than one huge page could hold no copy: refused,
 * naming the region and the page size, before anything in the directory
 * is touched (an older snapshot's meta.json stays). */
static void test_huge_buffer_refused(void **s)
{
	char dir[] = "/tmp/lm_live_huge_XXXXXX";
	struct lm_source *src;
	struct lm_region *r;
	struct lm_snap_meta m;
	struct lm_snap_vcpu v;
	struct lm_live_config c = {
		.mode = LM_LIVE_COW, .max_buffer = HPS - PS,
		.pause = pause_writers, .resume = resume_writers,
	};
	struct stat sb;
	int err;

	REQUIRE_HUGE(s);
	LM_ASSERT(mkdtemp(dir), "mkdtemp");
	LM_ASSERT(system(t_fmt("echo old > %s/meta.json", dir)) == 0, "echo");
	r = start_on(LM_DELIVERY_SELF, LM_WP_SYNC, LM_BACKING_HUGETLB, &src);
	meta_init(&m, &v);
	m.page_size = HPS;
	err = lm_snap_live_save(dir, &m, r, &c, NULL);
	LM_ASSERT(err == -EINVAL && strstr(lm_last_error(), "'live'") &&
		  strstr(lm_last_error(), "smaller than one page") &&
		  strstr(lm_last_error(), "2097152"),
		  "buffer below one huge page: %d (%s)", err, lm_last_error());
	LM_ASSERT(stat(t_fmt("%s/meta.json", dir), &sb) == 0 &&
		  stat(t_fmt("%s/memory.img", dir), &sb) < 0,
		  "the old meta.json kept, no memory.img");
	LM_ASSERT(!lm_wp_busy(r), "nothing protected");
	stop(r, src);
	LM_ASSERT(system(t_fmt("rm -rf %s", dir)) == 0, "rm");
}

int main(void)
{
	/* One reservation for the hugetlb cases (a region of HUGE_PAGES and
	 * its restore, and two spare), given back at the end. */
	long prev = t_hugepages_reserve(2 * (long)HUGE_PAGES + 2);
	int rc;
	const struct CMUnitTest huge[] = {
		cmocka_unit_test_prestate(test_huge_cow_self, &prev),
		cmocka_unit_test_prestate(test_huge_cow_handler, &prev),
		cmocka_unit_test_prestate(test_huge_iterate_self, &prev),
		cmocka_unit_test_prestate(test_huge_iterate_handler, &prev),
		cmocka_unit_test_prestate(test_huge_buffer_refused, &prev),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cow_self),
		cmocka_unit_test(test_cow_handler),
		cmocka_unit_test(test_iterate_self),
		cmocka_unit_test(test_iterate_handler),
		cmocka_unit_test(test_cow_head),
		cmocka_unit_test(test_iterate_head),
		cmocka_unit_test(test_full_cow),
		cmocka_unit_test(test_full_iterate),
		cmocka_unit_test(test_second_refused),
		cmocka_unit_test(test_wrong_mode),
	};

	rc = cmocka_run_group_tests_name("live_snapshot", tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("live_snapshot_hugetlb", huge, NULL,
					  NULL);
	t_hugepages_restore(prev);
	return rc;
}
