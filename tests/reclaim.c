/*
 * reclaim.c - eviction of present pages into a page store and their return
 * on the next touch (lazymem/reclaim.h, src/reclaim/pstore.h): content
 * comes back exact from the memory, the file and the tiered store (LZ4 and
 * zstd), on anon (UFFDIO_MOVE)
 * and memfd (write-protect, copy, punch) backings; writers racing the
 * evictor on the same pages lose no word (SIGBUS and handler deliveries);
 * a store that refuses leaves the page resident and counts it; zero and
 * equal pages cost no data; the tiered store keeps compressible pages in
 * memory and spills the rest (and what its memory limit refuses) to the
 * file; zstd's decompression contexts survive more takers than contexts;
 * a copy-before-write snapshot and eviction refuse each other by name;
 * bad configurations are refused.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "lm_test.h"
#include "reclaim/pstore.h"
#include "reclaim/reclaimer.h"
#include "util/clock.h"

#define PAGES 1024
#define PS 4096ull
#define SIZE (PAGES * PS)
#define SALT 0x5eed

enum store_kind { STORE_MEMORY, STORE_FILE };

struct fixture {
	uint8_t *image;
	struct lm_source *src;
	struct lm_page_store *store;
	struct lm_region *r;
	char path[64];
};

static struct lm_page_store *make_store(struct fixture *f, enum store_kind k,
					uint64_t max_bytes)
{
	struct lm_page_store *s;

	if (k == STORE_MEMORY) {
		LM_OK(lm_pstore_memory_create(SIZE, PS, max_bytes, &s));
	} else {
		snprintf(f->path, sizeof(f->path), "/tmp/lm-reclaim-%d",
			 (int)getpid());
		LM_OK(lm_pstore_file_create(f->path, SIZE, PS, &s));
	}
	return s;
}

/* The region over f->image with f->store; false (test skipped) when the
 * kernel lacks what the backing's eviction needs. */
static bool region_over(struct fixture *f, enum lm_backing b,
			enum lm_delivery d, enum lm_wp_mode wp)
{
	int err;

	LM_OK(lm_source_memory_create(f->image, SIZE, &f->src));
	struct lm_region_config rc = {
		.name = "reclaim", .size = SIZE, .backing = b,
		.install = LM_INSTALL_COPY, .delivery = d,
		.handler_threads = 2, .source = f->src, .store = f->store,
		.write_protect = wp,
	};
	err = lm_region_create(&rc, &f->r);
	if (err == -EOPNOTSUPP || err == -EINVAL) {
		print_message("SKIP: %s eviction: %s\n", lm_backing_name(b),
			      lm_last_error());
		return false;
	}
	LM_OK(err);
	return true;
}

/* A region over a patterned image. */
static bool setup(struct fixture *f, enum lm_backing b, enum lm_delivery d,
		  enum store_kind k, uint64_t max_bytes, enum lm_wp_mode wp)
{
	memset(f, 0, sizeof(*f));
	f->image = malloc(SIZE);
	t_fill(f->image, SIZE, SALT);
	f->store = make_store(f, k, max_bytes);
	return region_over(f, b, d, wp);
}

static void teardown(struct fixture *f)
{
	lm_region_destroy(f->r);
	lm_page_store_destroy(f->store);
	lm_source_destroy(f->src);
	free(f->image);
	if (f->path[0])
		unlink(f->path);
}

/* Evict every page in runs of 64; how many were evicted. */
static unsigned evict_all(struct lm_region *r)
{
	unsigned n = 0;

	for (uint64_t off = 0; off < SIZE; off += 64 * PS) {
		struct lm_evict_result res;

		LM_OK(lm_region_evict(r, off, 64, &res));
		n += res.nr_evicted;
	}
	return n;
}

static void touch_all(const uint8_t *p)
{
	volatile uint64_t sum = 0;

	for (uint64_t off = 0; off < SIZE; off += PS)
		sum += p[off];
	(void)sum;
}

static void roundtrip(enum lm_backing b, enum lm_delivery d,
		      enum store_kind k)
{
	struct fixture f;
	struct lm_stats st;
	uint64_t *w;

	if (!setup(&f, b, d, k, 0, LM_WP_NONE))
		skip();
	w = lm_region_addr(f.r);
	touch_all(lm_region_addr(f.r));
	LM_ASSERT(evict_all(f.r) == PAGES, "every present page evicted");
	LM_ASSERT(lm_region_pages_present(f.r) == 0, "none resident");
	/* Back on touch, exactly the source's content. */
	LM_ASSERT(t_check(w, SIZE, SALT) == -1, "content after refault");
	/* Written, evicted, refaulted: the write is what comes back. */
	for (uint64_t i = 0; i < SIZE / 8; i += 512)
		w[i] = ~t_pattern(i, SALT);
	LM_ASSERT(evict_all(f.r) == PAGES, "second eviction");
	for (uint64_t i = 0; i < SIZE / 8; i++)
		LM_ASSERT(w[i] == (i % 512 ? t_pattern(i, SALT)
					   : ~t_pattern(i, SALT)),
			  "word %llu after the second refault",
			  (unsigned long long)i);
	/* A handler thread counts a refault after it woke the faulting
	 * thread: give the last one a moment. */
	for (int i = 0; i < 1000; i++) {
		lm_region_stats(f.r, &st);
		if (st.pages_refaulted == 2 * PAGES)
			break;
		usleep(1000);
	}
	LM_ASSERT(st.pages_evicted == 2 * PAGES, "evicted %llu",
		  (unsigned long long)st.pages_evicted);
	LM_ASSERT(st.pages_refaulted == 2 * PAGES, "refaulted %llu",
		  (unsigned long long)st.pages_refaulted);
	LM_ASSERT(st.refault_p50_ns > 0, "refault times recorded");
	teardown(&f);
}

static void anon_memory_self(void **s) { (void)s; roundtrip(LM_BACKING_ANON, LM_DELIVERY_SELF, STORE_MEMORY); }
static void anon_file_self(void **s) { (void)s; roundtrip(LM_BACKING_ANON, LM_DELIVERY_SELF, STORE_FILE); }
static void memfd_memory_self(void **s) { (void)s; roundtrip(LM_BACKING_MEMFD, LM_DELIVERY_SELF, STORE_MEMORY); }
static void memfd_file_self(void **s) { (void)s; roundtrip(LM_BACKING_MEMFD, LM_DELIVERY_SELF, STORE_FILE); }
static void anon_memory_handler(void **s) { (void)s; roundtrip(LM_BACKING_ANON, LM_DELIVERY_HANDLER, STORE_MEMORY); }
static void memfd_memory_handler(void **s) { (void)s; roundtrip(LM_BACKING_MEMFD, LM_DELIVERY_HANDLER, STORE_MEMORY); }

/*
 * The race: WRITERS threads write words of the same pages the evictor takes
 * out. Writer t owns the words whose index is t modulo WRITERS and keeps
 * what it last wrote to each; at the end every word of the region must be
 * its owner's last value (or the source's, if never written).
 */
#define WRITERS 3
#define ROUNDS 400000

struct race {
	uint64_t *w;
	uint64_t *shadow;	/* the owner's last value per word, 0: none */
	_Atomic unsigned done;	/* writers finished */
	_Atomic bool go;	/* the evictor has begun */
};

struct writer {
	struct race *rc;
	unsigned t;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	struct race *rc = wr->rc;
	uint64_t x = 0x12345 + wr->t;

	while (!atomic_load(&rc->go))
		sched_yield();
	for (uint64_t n = 1; n <= ROUNDS; n++) {
		uint64_t page, word;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* A hot quarter of the region, so evictions and writes meet. */
		page = (x >> 8) % (PAGES / 4);
		word = page * (PS / 8) + ((x >> 32) % (PS / 8 / WRITERS)) *
			WRITERS + wr->t;
		rc->w[word] = n << 8 | wr->t;
		rc->shadow[word] = n << 8 | wr->t;
	}
	atomic_fetch_add(&rc->done, 1);
	return NULL;
}

static void race(enum lm_backing b, enum lm_delivery d)
{
	struct fixture f;
	struct race rc = { 0 };
	struct writer wr[WRITERS];
	pthread_t th[WRITERS];
	struct lm_stats st;
	uint64_t evicted = 0, x = 99;

	if (!setup(&f, b, d, STORE_MEMORY, 0, LM_WP_NONE))
		skip();
	rc.w = lm_region_addr(f.r);
	rc.shadow = calloc(SIZE / 8, sizeof(uint64_t));
	touch_all(lm_region_addr(f.r));
	for (unsigned t = 0; t < WRITERS; t++) {
		wr[t] = (struct writer){ &rc, t };
		LM_ASSERT(pthread_create(&th[t], NULL, writer_main, &wr[t]) ==
			  0, "writer");
	}
	/* Evict runs of the hot quarter while they write; the joins below
	 * are the writers' end. */
	while (atomic_load(&rc.done) < WRITERS) {
		struct lm_evict_result res;
		unsigned n = 1 + (unsigned)(x % 64);

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t first = (x >> 8) % (PAGES / 4 - n);

		LM_OK(lm_region_evict(f.r, first * PS, n, &res));
		evicted += res.nr_evicted;
		atomic_store(&rc.go, true);
	}
	for (unsigned t = 0; t < WRITERS; t++)
		pthread_join(th[t], NULL);
	for (uint64_t i = 0; i < SIZE / 8; i++) {
		uint64_t want = rc.shadow[i] ? rc.shadow[i]
					     : t_pattern(i, SALT);

		LM_ASSERT(rc.w[i] == want, "word %llu (page %llu): %#llx, "
			  "its writer last wrote %#llx",
			  (unsigned long long)i, (unsigned long long)(i / 512),
			  (unsigned long long)rc.w[i],
			  (unsigned long long)want);
	}
	for (int i = 0; i < 1000; i++) {
		lm_region_stats(f.r, &st);
		if (st.pages_refaulted == st.pages_evicted)
			break;
		usleep(1000);
	}
	print_message("%s/%s: %llu evicted, %llu refaulted, refault p50 "
		      "%llu ns\n", lm_backing_name(b), lm_delivery_name(d),
		      (unsigned long long)evicted,
		      (unsigned long long)st.pages_refaulted,
		      (unsigned long long)st.refault_p50_ns);
	LM_ASSERT(evicted > 0 && st.pages_refaulted > 0,
		  "the race happened: %llu evicted, %llu refaulted",
		  (unsigned long long)evicted,
		  (unsigned long long)st.pages_refaulted);
	free(rc.shadow);
	teardown(&f);
}

static void race_anon_sigbus(void **s) { (void)s; race(LM_BACKING_ANON, LM_DELIVERY_SELF); }
static void race_memfd_sigbus(void **s) { (void)s; race(LM_BACKING_MEMFD, LM_DELIVERY_SELF); }
static void race_anon_handler(void **s) { (void)s; race(LM_BACKING_ANON, LM_DELIVERY_HANDLER); }
static void race_memfd_handler(void **s) { (void)s; race(LM_BACKING_MEMFD, LM_DELIVERY_HANDLER); }

/* A store that refuses: the page stays, its content right, counted. */
static void refused(enum lm_backing b, enum store_kind k)
{
	struct fixture f;
	struct lm_stats st;
	struct lm_pstore_usage u;
	struct rlimit old, lim = { .rlim_cur = 64 * PS, .rlim_max = 0 };
	unsigned n;

	if (!setup(&f, b, LM_DELIVERY_SELF, k, 64 * PS, LM_WP_NONE))
		skip();
	touch_all(lm_region_addr(f.r));
	if (k == STORE_FILE) {
		/* The file may grow 64 pages: the rest is refused (EFBIG,
		 * SIGXFSZ ignored), as on a full disk. */
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &old);
		lim.rlim_max = old.rlim_max;
		LM_ASSERT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "RLIMIT_FSIZE");
	}
	n = evict_all(f.r);
	if (k == STORE_FILE)
		setrlimit(RLIMIT_FSIZE, &old);
	LM_ASSERT(n > 0 && n < PAGES, "some evicted, some refused: %u", n);
	lm_region_stats(f.r, &st);
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(st.evict_refused == PAGES - n, "refused %llu of %u",
		  (unsigned long long)st.evict_refused, PAGES - n);
	LM_ASSERT(u.put_failed == PAGES - n, "store counted %llu",
		  (unsigned long long)u.put_failed);
	LM_ASSERT(lm_region_pages_present(f.r) == PAGES - n, "resident");
	LM_ASSERT(t_check(lm_region_addr(f.r), SIZE, SALT) == -1,
		  "every page right, evicted or not");
	teardown(&f);
}

static void refused_memory_anon(void **s) { (void)s; refused(LM_BACKING_ANON, STORE_MEMORY); }
static void refused_file_anon(void **s) { (void)s; refused(LM_BACKING_ANON, STORE_FILE); }
static void refused_file_memfd(void **s) { (void)s; refused(LM_BACKING_MEMFD, STORE_FILE); }

/* Zero pages as a flag, equal pages once, the rest compressed. */
static void accounting(void **state)
{
	struct fixture f;
	struct lm_pstore_usage u;
	uint8_t *p;

	(void)state;
	if (!setup(&f, LM_BACKING_ANON, LM_DELIVERY_SELF, STORE_MEMORY, 0,
		   LM_WP_NONE))
		skip();
	p = lm_region_addr(f.r);
	touch_all(p);
	/* pages 0-99 zero, 100-199 all equal, the rest patterned */
	memset(p, 0, 100 * PS);
	for (unsigned i = 100; i < 200; i++)
		memset(p + i * PS, 0xab, PS);
	LM_ASSERT(evict_all(f.r) == PAGES, "evicted");
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(u.pages == PAGES, "held %llu", (unsigned long long)u.pages);
	LM_ASSERT(u.zero_pages == 100, "zero %llu",
		  (unsigned long long)u.zero_pages);
	LM_ASSERT(u.shared_pages == 99, "shared %llu",
		  (unsigned long long)u.shared_pages);
	LM_ASSERT(u.data_bytes <= (PAGES - 199) * PS, "data %llu",
		  (unsigned long long)u.data_bytes);
	for (unsigned i = 0; i < 200; i++)
		LM_ASSERT(p[i * PS + 17] == (i < 100 ? 0 : 0xab), "page %u", i);
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(u.pages == PAGES - 200 && u.shared_pages == 0 &&
		  u.zero_pages == 0, "taken back: %llu held",
		  (unsigned long long)u.pages);
	teardown(&f);
}

/* A copy-before-write snapshot and eviction exclude each other; a page
 * evicted before the instant is saved with its content. */
static uint8_t snap_slots[SIZE];

static void *snap_get(void *arg, uint64_t off)
{
	(void)arg;
	return snap_slots + off;
}

static void snap_put(void *arg, uint64_t off, void *slot)
{
	(void)arg, (void)off, (void)slot;
}

static void with_snapshot(void **state)
{
	struct fixture f;
	struct lm_evict_result res;
	struct lm_wp_consumer c = { .slot_get = snap_get,
				    .slot_put = snap_put };
	uint8_t *buf = malloc(64 * PS);
	uint64_t saved;

	(void)state;
	if (!setup(&f, LM_BACKING_MEMFD, LM_DELIVERY_SELF, STORE_MEMORY, 0,
		   LM_WP_SYNC))
		skip();
	touch_all(lm_region_addr(f.r));
	LM_OK(lm_region_evict(f.r, 0, 64, &res));
	LM_ASSERT(res.nr_evicted == 64, "evicted before the snapshot");
	LM_OK(lm_wp_protect(f.r, &c));
	LM_ASSERT(lm_region_evict(f.r, 64 * PS, 64, &res) == -EBUSY,
		  "eviction while the snapshot runs");
	LM_ASSERT(strstr(lm_last_error(), "live snapshot"), "%s",
		  lm_last_error());
	/* The evicted run is saved with its content: fetched back. */
	LM_OK(lm_wp_save_run(f.r, 0, 64, buf, &saved));
	LM_ASSERT(saved == ~0ull, "saved %#llx", (unsigned long long)saved);
	LM_ASSERT(t_check(buf, 64 * PS, SALT) == -1, "saved content");
	LM_OK(lm_wp_release(f.r));
	LM_OK(lm_region_evict(f.r, 64 * PS, 64, &res));
	LM_ASSERT(res.nr_evicted == 64, "evicted after the snapshot");
	LM_ASSERT(t_check(lm_region_addr(f.r), SIZE, SALT) == -1, "content");
	free(buf);
	teardown(&f);
}

/* Pages installed as the kernel's zero page (UFFDIO_ZEROPAGE, a read of a
 * zero source) move and come back as zeroes, held as flags. */
static void zero_pages(void **state)
{
	struct lm_source *src;
	struct lm_page_store *s;
	struct lm_region *r;
	struct lm_pstore_usage u;
	const uint8_t *p;

	(void)state;
	LM_OK(lm_source_zero_create(SIZE, &src));
	LM_OK(lm_pstore_memory_create(SIZE, PS, 0, &s));
	for (int b = 0; b < 2; b++) {
		struct lm_region_config rc = {
			.name = "zero", .size = SIZE,
			.backing = b ? LM_BACKING_MEMFD : LM_BACKING_ANON,
			.install = LM_INSTALL_COPY,
			.delivery = LM_DELIVERY_SELF, .source = src, .store = s,
		};
		int err = lm_region_create(&rc, &r);

		if (err == -EOPNOTSUPP) {
			print_message("SKIP: %s\n", lm_last_error());
			continue;
		}
		LM_OK(err);
		p = lm_region_addr(r);
		touch_all(p);
		LM_ASSERT(evict_all(r) == PAGES, "%s: zero pages evicted",
			  lm_backing_name(rc.backing));
		lm_pstore_usage(s, &u);
		LM_ASSERT(u.zero_pages == PAGES && u.data_bytes == 0,
			  "held as flags: %llu", (unsigned long long)u.zero_pages);
		for (uint64_t i = 0; i < SIZE; i += 512)
			LM_ASSERT(p[i] == 0, "byte %llu", (unsigned long long)i);
		lm_region_destroy(r);
	}
	lm_page_store_destroy(s);
	lm_source_destroy(src);
}

/* The policy's sampled write tracking: a range collects its own pages. */
static void collect_range(void **state)
{
	struct fixture f;
	uint64_t bits[PAGES / 64] = { 0 }, n;
	uint8_t *p;

	(void)state;
	if (!setup(&f, LM_BACKING_ANON, LM_DELIVERY_SELF, STORE_MEMORY, 0,
		   LM_WP_ASYNC))
		skip();
	p = lm_region_addr(f.r);
	touch_all(p);
	LM_OK(lm_wp_protect(f.r, NULL));
	p[3 * PS] = 1;
	p[700 * PS] = 1;
	LM_OK(lm_wp_collect_range(f.r, 0, 512 * PS, bits, &n));
	LM_ASSERT(n == 1 && bits[0] == 1ull << 3, "first half: %llu",
		  (unsigned long long)n);
	LM_OK(lm_wp_collect_range(f.r, 512 * PS, 512 * PS, bits, &n));
	LM_ASSERT(n == 1 && bits[700 / 64] == 1ull << (700 % 64),
		  "second half: %llu", (unsigned long long)n);
	LM_ASSERT(lm_wp_collect_range(f.r, 1, PS, bits, &n) == -EINVAL,
		  "unaligned");
	LM_ASSERT(lm_wp_collect_range(f.r, 0, SIZE + PS, bits, &n) == -EINVAL,
		  "past the end");
	LM_OK(lm_wp_release(f.r));
	teardown(&f);
}

/* The policy on a running region: it takes cold pages out up to its
 * target, the hot ones a writer keeps rewriting stay, nothing is lost. */
struct hot {
	uint64_t *w;
	_Atomic bool stop;
};

static void *hot_writer(void *arg)
{
	struct hot *h = arg;

	for (uint64_t n = 1; !atomic_load(&h->stop); n++)
		for (uint64_t p = 0; p < PAGES / 8; p++)
			h->w[p * (PS / 8)] = n;
	return NULL;
}

/* A region of backing b under a reclaimer configured by c, every page
 * touched (skipped where the kernel lacks what the region needs). */
static void policy_region(enum lm_backing b, const struct lm_reclaim_config *c,
			  struct fixture *f, struct lm_reclaimer **rc)
{
	int err;

	memset(f, 0, sizeof(*f));
	f->image = malloc(SIZE);
	t_fill(f->image, SIZE, SALT);
	LM_OK(lm_source_memory_create(f->image, SIZE, &f->src));
	f->store = make_store(f, STORE_MEMORY, 0);
	LM_OK(lm_reclaimer_create(f->store, SIZE, PS, c, rc));
	struct lm_region_config cfg = {
		.name = "policy", .size = SIZE, .backing = b,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_SELF,
		.source = f->src, .store = lm_reclaimer_store(*rc),
		.write_protect = b == LM_BACKING_ANON ? LM_WP_ASYNC
						      : LM_WP_NONE,
	};
	err = lm_region_create(&cfg, &f->r);
	if (err == -EOPNOTSUPP) {
		lm_reclaimer_destroy(*rc);
		LM_SKIP("%s", lm_last_error());
	}
	LM_OK(err);
	touch_all(lm_region_addr(f->r));
}

/* The hot eighth holds the writer's last counter in its first words, the
 * rest of the region the source's words. */
static void check_hot_and_cold(const struct hot *h)
{
	for (uint64_t i = 0; i < SIZE / 8; i++)
		if (i % (PS / 8) || i / (PS / 8) >= PAGES / 8)
			LM_ASSERT(h->w[i] == t_pattern(i, SALT), "word %llu",
				  (unsigned long long)i);
}

static void policy(enum lm_backing b)
{
	struct fixture f;
	struct lm_reclaimer *rc;
	struct lm_reclaimer_stats st;
	struct lm_reclaim_config c = { .target_bytes = SIZE / 2,
				       .period_ms = 20 };
	struct hot h = { 0 };
	pthread_t th;

	policy_region(b, &c, &f, &rc);
	h.w = lm_region_addr(f.r);
	LM_ASSERT(pthread_create(&th, NULL, hot_writer, &h) == 0, "writer");
	LM_OK(lm_reclaimer_start(rc, f.r));
	/* 50 rounds: a pass of write tracking is 10. */
	usleep(1000 * 1000);
	lm_reclaimer_stop(rc);
	atomic_store(&h.stop, true);
	pthread_join(th, NULL);
	lm_reclaimer_stats(rc, &st);
	print_message("%s: %llu rounds, %llu evicted, %llu out, %llu written, "
		      "threshold %u\n", lm_backing_name(b),
		      (unsigned long long)st.rounds,
		      (unsigned long long)st.evicted,
		      (unsigned long long)st.out_pages,
		      (unsigned long long)st.written, st.threshold);
	LM_ASSERT(st.out_pages >= PAGES / 4 && st.out_pages <= PAGES / 2,
		  "out %llu, target %u", (unsigned long long)st.out_pages,
		  PAGES / 2);
	check_hot_and_cold(&h);
	lm_region_destroy(f.r);
	f.r = NULL;
	lm_reclaimer_destroy(rc);
	teardown(&f);
}

static void policy_anon(void **s) { (void)s; policy(LM_BACKING_ANON); }
static void policy_memfd(void **s) { (void)s; policy(LM_BACKING_MEMFD); }

/*
 * Write tracking backs off on groups that stay hot (reclaimer.c): with a
 * writer rewriting the hot eighth (two groups of 64 pages) and nothing to
 * evict, sampling a hot group at most every 4th pass must see at most
 * half the writes that sampling every pass sees, each of them a
 * write-protect fault of the writer's.
 */
static uint64_t writes_seen(unsigned max_every)
{
	struct fixture f;
	struct lm_reclaimer *rc;
	struct lm_reclaimer_stats st;
	struct lm_reclaim_config c = { .period_ms = 20,
				       .max_sample_every = max_every };
	struct hot h = { 0 };
	pthread_t th;

	policy_region(LM_BACKING_ANON, &c, &f, &rc);
	h.w = lm_region_addr(f.r);
	LM_ASSERT(pthread_create(&th, NULL, hot_writer, &h) == 0, "writer");
	LM_OK(lm_reclaimer_start(rc, f.r));
	usleep(1600 * 1000);		/* 8 passes of 10 rounds */
	lm_reclaimer_stop(rc);
	atomic_store(&h.stop, true);
	pthread_join(th, NULL);
	lm_reclaimer_stats(rc, &st);
	print_message("sampling at most every %u passes: %llu writes seen in "
		      "%llu rounds\n", max_every,
		      (unsigned long long)st.written,
		      (unsigned long long)st.rounds);
	check_hot_and_cold(&h);
	lm_region_destroy(f.r);
	f.r = NULL;
	lm_reclaimer_destroy(rc);
	teardown(&f);
	return st.written;
}

static void sampling_backoff(void **state)
{
	uint64_t every = writes_seen(1), backoff = writes_seen(4);

	(void)state;
	LM_ASSERT(every >= 4 * PAGES / 8, "every pass: %llu writes seen, "
		  "expected the hot eighth in most passes",
		  (unsigned long long)every);
	LM_ASSERT(backoff * 2 <= every, "backoff: %llu writes seen against "
		  "%llu sampling every pass", (unsigned long long)backoff,
		  (unsigned long long)every);
	struct lm_reclaim_config bad = { .max_sample_every = 65 };
	struct lm_reclaimer *rc;
	struct lm_page_store *s;

	LM_OK(lm_pstore_memory_create(SIZE, PS, 0, &s));
	LM_ASSERT(lm_reclaimer_create(s, SIZE, PS, &bad, &rc) == -EINVAL,
		  "sampling every 65 passes accepted");
	lm_page_store_destroy(s);
}

/*
 * A hot set is never evicted while it is written (no refault), and once
 * its writer stops, the backoff delays its eviction by at most its
 * interval: with every page wanted out, the whole region is out within a
 * few passes.
 */
static void hot_goes_cold(void **state)
{
	struct fixture f;
	struct lm_reclaimer *rc;
	struct lm_reclaimer_stats st;
	struct lm_reclaim_config c = { .target_bytes = SIZE, .period_ms = 20,
				       .max_sample_every = 4 };
	struct hot h = { 0 };
	pthread_t th;
	uint64_t t0;

	(void)state;
	policy_region(LM_BACKING_ANON, &c, &f, &rc);
	h.w = lm_region_addr(f.r);
	LM_ASSERT(pthread_create(&th, NULL, hot_writer, &h) == 0, "writer");
	LM_OK(lm_reclaimer_start(rc, f.r));
	usleep(1000 * 1000);
	atomic_store(&h.stop, true);
	pthread_join(th, NULL);
	lm_reclaimer_stats(rc, &st);
	LM_ASSERT(st.refaulted == 0 && st.out_pages <= PAGES - PAGES / 8,
		  "while hot: %llu refaults, %llu pages out",
		  (unsigned long long)st.refaulted,
		  (unsigned long long)st.out_pages);
	t0 = lm_now_ns();
	while (st.out_pages < PAGES && lm_now_ns() - t0 < 10000000000ull) {
		usleep(20 * 1000);
		lm_reclaimer_stats(rc, &st);
	}
	print_message("hot eighth out %.2f s after its writer stopped\n",
		      (double)(lm_now_ns() - t0) / 1e9);
	LM_ASSERT(st.out_pages == PAGES, "%llu of %d pages out 10 s after "
		  "the writer stopped", (unsigned long long)st.out_pages,
		  PAGES);
	lm_reclaimer_stop(rc);
	check_hot_and_cold(&h);
	lm_region_destroy(f.r);
	f.r = NULL;
	lm_reclaimer_destroy(rc);
	teardown(&f);
}

static void parse_target(void **state)
{
	uint64_t b;

	(void)state;
	LM_OK(lm_reclaim_parse_target("--t", "40%", 1000, &b));
	LM_ASSERT(b == 400, "40%%: %llu", (unsigned long long)b);
	LM_OK(lm_reclaim_parse_target("--t", "256M", 1ull << 30, &b));
	LM_ASSERT(b == 256ull << 20, "256M");
	LM_ASSERT(lm_reclaim_parse_target("--t", "101%", 1000, &b) == -EINVAL &&
		  strstr(util_last_error(), "'101%': over 100%"), "%s",
		  util_last_error());
	LM_ASSERT(lm_reclaim_parse_target("--t", "-1", 1000, &b) == -EINVAL &&
		  strstr(util_last_error(), "negative"), "%s",
		  util_last_error());
	LM_ASSERT(lm_reclaim_parse_target("--t", "2G", 1ull << 30, &b) ==
		  -EINVAL, "over the memory");
	LM_ASSERT(lm_reclaim_parse_target("--t", "x", 1000, &b) == -EINVAL,
		  "not a number");
}

static void bad_config(void **state)
{
	struct fixture f;
	struct lm_evict_result res;
	struct lm_region *r;

	(void)state;
	memset(&f, 0, sizeof(f));
	LM_OK(lm_source_zero_create(SIZE, &f.src));
	f.store = make_store(&f, STORE_MEMORY, 0);
	struct lm_region_config rc = {
		.name = "bad", .size = SIZE, .backing = LM_BACKING_MEMFD,
		.install = LM_INSTALL_COPY, .delivery = LM_DELIVERY_SELF,
		.source = f.src, .store = f.store,
		.write_protect = LM_WP_ASYNC,
	};
	LM_ASSERT(lm_region_create(&rc, &r) == -EINVAL, "memfd + async wp");
	LM_ASSERT(strstr(lm_last_error(), "async"), "%s", lm_last_error());
	rc.write_protect = LM_WP_NONE;
	rc.background = true;
	LM_ASSERT(lm_region_create(&rc, &r) == -EINVAL, "background fill");
	rc.background = false;
	rc.store = NULL;
	LM_OK(lm_region_create(&rc, &r));
	LM_ASSERT(lm_region_evict(r, 0, 1, &res) == -EINVAL, "no store");
	LM_ASSERT(strstr(lm_last_error(), "no page store"), "%s",
		  lm_last_error());
	lm_region_destroy(r);
	rc.store = f.store;
	LM_OK(lm_region_create(&rc, &r));
	LM_ASSERT(lm_region_evict(r, 0, 65, &res) == -EINVAL, "65 pages");
	LM_ASSERT(lm_region_evict(r, 1, 1, &res) == -EINVAL, "unaligned");
	LM_ASSERT(lm_region_evict(r, SIZE - PS, 2, &res) == -EINVAL, "end");
	/* Nothing present yet: every page skipped, none lost. */
	LM_OK(lm_region_evict(r, 0, 64, &res));
	LM_ASSERT(res.nr_skipped == 64 && res.nr_evicted == 0, "skipped");
	lm_region_destroy(r);
	lm_page_store_destroy(f.store);
	lm_source_destroy(f.src);
}

/*
 * The tiered store: a memory store over a file store. The image's even
 * pages are about 3x compressible (each word four times), its odd pages
 * incompressible, like the guest data.
 */
static uint64_t mixed_word(uint64_t i)
{
	return t_pattern((i / (PS / 8)) & 1 ? i : i & ~3ull, SALT);
}

static void check_mixed(const uint64_t *w, const char *what)
{
	for (uint64_t i = 0; i < SIZE / 8; i++)
		LM_ASSERT(w[i] == mixed_word(i), "%s: word %llu (page %llu): "
			  "%#llx, expected %#llx", what, (unsigned long long)i,
			  (unsigned long long)(i / (PS / 8)),
			  (unsigned long long)w[i],
			  (unsigned long long)mixed_word(i));
}

static bool setup_tiered(struct fixture *f, enum lm_backing b,
			 const struct lm_pstore_memory_config *c)
{
	uint64_t *w = malloc(SIZE);

	memset(f, 0, sizeof(*f));
	f->image = (uint8_t *)w;
	for (uint64_t i = 0; i < SIZE / 8; i++)
		w[i] = mixed_word(i);
	snprintf(f->path, sizeof(f->path), "/tmp/lm-tiered-%d", (int)getpid());
	LM_OK(lm_pstore_tiered_create(f->path, SIZE, PS, c, &f->store));
	return region_over(f, b, LM_DELIVERY_SELF, LM_WP_NONE);
}

/* Every page out and back through SIGBUS: the incompressible half in the
 * file, the compressible half in memory, counted; every word exact. */
static void tiered_roundtrip(enum lm_backing b, enum lm_pstore_codec codec)
{
	struct lm_pstore_memory_config c = { .codec = codec };
	struct fixture f;
	struct lm_pstore_usage u;
	struct lm_stats st;

	if (!setup_tiered(&f, b, &c))
		skip();
	touch_all(lm_region_addr(f.r));
	LM_ASSERT(evict_all(f.r) == PAGES, "every page evicted");
	LM_ASSERT(lm_region_pages_present(f.r) == 0, "none resident");
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(u.pages == PAGES && u.put_failed == 0, "held %llu, "
		  "refused %llu", (unsigned long long)u.pages,
		  (unsigned long long)u.put_failed);
	LM_ASSERT(u.spilled_pages == PAGES / 2, "spilled %llu, expected the "
		  "%u incompressible", (unsigned long long)u.spilled_pages,
		  PAGES / 2);
	LM_ASSERT(u.disk_bytes >= PAGES / 2 * PS, "on disk %llu",
		  (unsigned long long)u.disk_bytes);
	LM_ASSERT(u.data_bytes > 0 && u.data_bytes <= PAGES / 2 * PS / 2,
		  "in memory %llu for %u pages of about 3x",
		  (unsigned long long)u.data_bytes, PAGES / 2);
	print_message("%s %s: %llu data bytes in memory, %llu on disk\n",
		      lm_backing_name(b), lm_pstore_codec_name(codec),
		      (unsigned long long)u.data_bytes,
		      (unsigned long long)u.disk_bytes);
	check_mixed(lm_region_addr(f.r), "after the refaults");
	lm_region_stats(f.r, &st);
	LM_ASSERT(st.pages_refaulted == PAGES, "refaulted %llu",
		  (unsigned long long)st.pages_refaulted);
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(u.pages == 0 && u.spilled_pages == 0 && u.data_bytes == 0,
		  "taken back: %llu held, %llu spilled",
		  (unsigned long long)u.pages,
		  (unsigned long long)u.spilled_pages);
	LM_ASSERT(u.disk_bytes == 0, "file blocks punched: %llu",
		  (unsigned long long)u.disk_bytes);
	teardown(&f);
}

static void tiered_anon_lz4(void **s) { (void)s; tiered_roundtrip(LM_BACKING_ANON, LM_PSTORE_LZ4); }
static void tiered_memfd_lz4(void **s) { (void)s; tiered_roundtrip(LM_BACKING_MEMFD, LM_PSTORE_LZ4); }
static void tiered_anon_zstd(void **s) { (void)s; tiered_roundtrip(LM_BACKING_ANON, LM_PSTORE_ZSTD); }
static void tiered_memfd_zstd(void **s) { (void)s; tiered_roundtrip(LM_BACKING_MEMFD, LM_PSTORE_ZSTD); }

/* The memory tier's byte limit sizes it: what does not fit spills to the
 * file instead of being refused. */
static void tiered_limit_spills(void **state)
{
	struct lm_pstore_memory_config c = { .max_bytes = 64 * PS };
	struct fixture f;
	struct lm_pstore_usage u;
	struct lm_stats st;

	(void)state;
	if (!setup_tiered(&f, LM_BACKING_ANON, &c))
		skip();
	touch_all(lm_region_addr(f.r));
	LM_ASSERT(evict_all(f.r) == PAGES, "every page evicted, none refused");
	lm_pstore_usage(f.store, &u);
	lm_region_stats(f.r, &st);
	LM_ASSERT(u.put_failed == 0 && st.evict_refused == 0, "refused %llu",
		  (unsigned long long)u.put_failed);
	LM_ASSERT(u.data_bytes <= c.max_bytes, "memory tier %llu over its "
		  "limit", (unsigned long long)u.data_bytes);
	/* the incompressible half, and the compressible pages past the
	 * limit: at about 3x, 64 pages of bytes hold under 200 of them */
	LM_ASSERT(u.spilled_pages > PAGES / 2 + 300 && u.spilled_pages < PAGES,
		  "spilled %llu", (unsigned long long)u.spilled_pages);
	check_mixed(lm_region_addr(f.r), "after the refaults");
	teardown(&f);
}

/* The lower tier refuses (RLIMIT_FSIZE: the file may hold 64 pages): the
 * put fails, the page stays resident with its content, counted. */
static void tiered_lower_fails(enum lm_backing b)
{
	struct lm_pstore_memory_config c = { 0 };
	struct rlimit old, lim = { .rlim_cur = 64 * PS };
	struct fixture f;
	struct lm_pstore_usage u;
	struct lm_stats st;
	unsigned n;

	if (!setup_tiered(&f, b, &c))
		skip();
	touch_all(lm_region_addr(f.r));
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim.rlim_max = old.rlim_max;
	LM_ASSERT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "RLIMIT_FSIZE");
	n = evict_all(f.r);
	setrlimit(RLIMIT_FSIZE, &old);
	/* every compressible page, and the 32 odd ones below the limit */
	LM_ASSERT(n == PAGES / 2 + 32, "evicted %u", n);
	lm_region_stats(f.r, &st);
	lm_pstore_usage(f.store, &u);
	LM_ASSERT(st.evict_refused == PAGES - n && u.put_failed == PAGES - n,
		  "refused: region %llu, store %llu, expected %u",
		  (unsigned long long)st.evict_refused,
		  (unsigned long long)u.put_failed, PAGES - n);
	LM_ASSERT(u.spilled_pages == 32, "spilled %llu",
		  (unsigned long long)u.spilled_pages);
	LM_ASSERT(lm_region_pages_present(f.r) == PAGES - n, "resident");
	check_mixed(lm_region_addr(f.r), "evicted or not");
	teardown(&f);
}

static void tiered_lower_fails_anon(void **s) { (void)s; tiered_lower_fails(LM_BACKING_ANON); }
static void tiered_lower_fails_memfd(void **s) { (void)s; tiered_lower_fails(LM_BACKING_MEMFD); }

/*
 * zstd's decompression contexts under contention: more taking threads
 * than contexts (one), so takers find none free and yield. Pages of
 * 64 KiB, so a take holds the context long enough (tens of us) for the
 * others to meet it even when the two CPUs are shared with other work.
 * Each round the main thread puts every page and the takers take their
 * share and check it; rounds go on until a taker has waited (10 s at
 * most: a run without one fails).
 */
#define TAKERS 6
#define TPS (64 * 1024ull)
#define TPAGES 64

struct takers {
	struct lm_page_store *s;
	pthread_barrier_t start, done;
	_Atomic bool stop;
	_Atomic uint64_t bad, taken;
};

struct taker {
	struct takers *t;
	unsigned id;
};

static void *taker_main(void *arg)
{
	struct taker *tk = arg;
	struct takers *t = tk->t;
	uint64_t *page = malloc(TPS);

	for (;;) {
		pthread_barrier_wait(&t->start);
		if (atomic_load(&t->stop))
			break;
		for (uint64_t p = tk->id; p < TPAGES; p += TAKERS) {
			uint64_t bad = t->s->ops->take(t->s, p * TPS, page) != 0;

			for (uint64_t k = 0; k < TPS / 8; k++)
				bad |= page[k] != mixed_word(p * (TPS / 8) + k);
			atomic_fetch_add(bad ? &t->bad : &t->taken, 1);
		}
		pthread_barrier_wait(&t->done);
	}
	free(page);
	return NULL;
}

static void zstd_takers(void **state)
{
	struct lm_pstore_memory_config c = { .codec = LM_PSTORE_ZSTD,
					     .zstd_contexts = 1 };
	struct takers t = { 0 };
	struct taker tk[TAKERS];
	pthread_t th[TAKERS];
	struct lm_pstore_usage u = { 0 };
	uint64_t *img = malloc(TPAGES * TPS), t0 = lm_now_ns();
	int rounds = 0;

	(void)state;
	for (uint64_t i = 0; i < TPAGES * TPS / 8; i++)
		img[i] = mixed_word(i);
	LM_OK(lm_pstore_memory_create_with(TPAGES * TPS, TPS, &c, &t.s));
	pthread_barrier_init(&t.start, NULL, TAKERS + 1);
	pthread_barrier_init(&t.done, NULL, TAKERS + 1);
	for (unsigned i = 0; i < TAKERS; i++) {
		tk[i] = (struct taker){ &t, i };
		LM_ASSERT(pthread_create(&th[i], NULL, taker_main, &tk[i]) == 0,
			  "taker");
	}
	while (rounds < 3 || (!u.take_yields &&
			      lm_now_ns() - t0 < 10000000000ull)) {
		for (uint64_t p = 0; p < TPAGES; p++)
			LM_OK(t.s->ops->put(t.s, p * TPS, img + p * (TPS / 8)));
		pthread_barrier_wait(&t.start);
		pthread_barrier_wait(&t.done);
		lm_pstore_usage(t.s, &u);
		rounds++;
	}
	atomic_store(&t.stop, true);
	pthread_barrier_wait(&t.start);
	for (unsigned i = 0; i < TAKERS; i++)
		pthread_join(th[i], NULL);
	print_message("%d takers, 1 context, %d rounds: %llu takes waited\n",
		      TAKERS, rounds, (unsigned long long)u.take_yields);
	LM_ASSERT(atomic_load(&t.bad) == 0, "%llu pages came back wrong",
		  (unsigned long long)atomic_load(&t.bad));
	LM_ASSERT(atomic_load(&t.taken) == (uint64_t)rounds * TPAGES,
		  "taken %llu", (unsigned long long)atomic_load(&t.taken));
	LM_ASSERT(u.pages == 0, "all taken: %llu held",
		  (unsigned long long)u.pages);
	LM_ASSERT(u.take_yields > 0, "no taker ever waited for a context");
	pthread_barrier_destroy(&t.start);
	pthread_barrier_destroy(&t.done);
	lm_page_store_destroy(t.s);
	free(img);
}

/* Bad codec options refused by name; a spill store given to a create
 * that fails is destroyed with it (ASan sees a leak otherwise). */
static void codec_config(void **state)
{
	struct lm_pstore_memory_config c = { .codec = LM_PSTORE_ZSTD,
					     .level = 99 };
	struct lm_page_store *s;
	enum lm_pstore_codec codec;
	char path[64];
	int level;

	(void)state;
	LM_ASSERT(lm_pstore_memory_create_with(SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "zstd level 99"), "%s",
		  util_last_error());
	c = (struct lm_pstore_memory_config){ .level = 3 };
	LM_ASSERT(lm_pstore_memory_create_with(SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "lz4 takes no level"), "%s",
		  util_last_error());
	c = (struct lm_pstore_memory_config){ .codec = 7 };
	LM_ASSERT(lm_pstore_memory_create_with(SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "codec 7"), "%s",
		  util_last_error());
	c = (struct lm_pstore_memory_config){ .spill_over_pct = 50 };
	LM_ASSERT(lm_pstore_memory_create_with(SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "spill_over_pct 50"), "%s",
		  util_last_error());
	snprintf(path, sizeof(path), "/tmp/lm-codec-%d", (int)getpid());
	c = (struct lm_pstore_memory_config){ .spill_over_pct = 101 };
	LM_OK(lm_pstore_file_create(path, SIZE, PS, &c.spill));
	LM_ASSERT(lm_pstore_memory_create_with(SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "spill_over_pct 101"), "%s",
		  util_last_error());
	c = (struct lm_pstore_memory_config){ .codec = LM_PSTORE_ZSTD,
					      .level = -1 };
	LM_ASSERT(lm_pstore_tiered_create(path, SIZE, PS, &c, &s) == -EINVAL &&
		  strstr(util_last_error(), "zstd level -1"), "%s",
		  util_last_error());
	unlink(path);
	LM_OK(lm_pstore_parse_codec("--c", "zstd:5", &codec, &level));
	LM_ASSERT(codec == LM_PSTORE_ZSTD && level == 5, "zstd:5");
	LM_OK(lm_pstore_parse_codec("--c", "lz4", &codec, &level));
	LM_ASSERT(codec == LM_PSTORE_LZ4 && level == 0, "lz4");
	LM_ASSERT(lm_pstore_parse_codec("--c", "gzip", &codec, &level) ==
		  -EINVAL && strstr(util_last_error(), "--c 'gzip': expected "
				    "lz4, zstd"), "%s", util_last_error());
	LM_ASSERT(lm_pstore_parse_codec("--c", "zstd:0", &codec, &level) ==
		  -EINVAL && strstr(util_last_error(), "level expected 1.."),
		  "%s", util_last_error());
	LM_ASSERT(lm_pstore_parse_codec("--c", "zstd:3x", &codec, &level) ==
		  -EINVAL, "zstd:3x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(anon_memory_self),
		cmocka_unit_test(anon_file_self),
		cmocka_unit_test(memfd_memory_self),
		cmocka_unit_test(memfd_file_self),
		cmocka_unit_test(anon_memory_handler),
		cmocka_unit_test(memfd_memory_handler),
		cmocka_unit_test(race_anon_sigbus),
		cmocka_unit_test(race_memfd_sigbus),
		cmocka_unit_test(race_anon_handler),
		cmocka_unit_test(race_memfd_handler),
		cmocka_unit_test(refused_memory_anon),
		cmocka_unit_test(refused_file_anon),
		cmocka_unit_test(refused_file_memfd),
		cmocka_unit_test(accounting),
		cmocka_unit_test(with_snapshot),
		cmocka_unit_test(zero_pages),
		cmocka_unit_test(collect_range),
		cmocka_unit_test(policy_anon),
		cmocka_unit_test(policy_memfd),
		cmocka_unit_test(sampling_backoff),
		cmocka_unit_test(hot_goes_cold),
		cmocka_unit_test(parse_target),
		cmocka_unit_test(bad_config),
		cmocka_unit_test(tiered_anon_lz4),
		cmocka_unit_test(tiered_memfd_lz4),
		cmocka_unit_test(tiered_anon_zstd),
		cmocka_unit_test(tiered_memfd_zstd),
		cmocka_unit_test(tiered_limit_spills),
		cmocka_unit_test(tiered_lower_fails_anon),
		cmocka_unit_test(tiered_lower_fails_memfd),
		cmocka_unit_test(zstd_takers),
		cmocka_unit_test(codec_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
