/* test_store.c: unit tests of the block store (src/store.c) and of the
 * byte-shuffle + zstd codec it uses.
 *
 * Every case runs on a context with a counting allocator and its own scratch
 * directory, and ends by destroying the context and checking that every
 * allocation was freed and that no spill directory is left behind.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- a counting allocator that can fail its Nth call ---------------------- */

typedef struct {
    atomic_long live;  /* allocations minus frees */
    atomic_long calls; /* malloc and realloc calls since armed */
    long fail_at;      /* 0: never fail */
    atomic_int failed; /* the fail_at-th call happened */
} counter;

static void *count_malloc(size_t size, void *ud)
{
    counter *c = ud;
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (c->fail_at && n == c->fail_at) {
        atomic_store(&c->failed, 1);
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&c->live, 1);
    return p;
}

static void *count_realloc(void *ptr, size_t size, void *ud)
{
    if (!ptr)
        return count_malloc(size, ud);
    counter *c = ud;
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (c->fail_at && n == c->fail_at) {
        atomic_store(&c->failed, 1);
        return NULL;
    }
    return realloc(ptr, size);
}

static void count_free(void *ptr, void *ud)
{
    counter *c = ud;
    if (ptr)
        atomic_fetch_sub(&c->live, 1);
    free(ptr);
}

static void counter_arm(counter *c, long fail_at)
{
    atomic_store(&c->calls, 0);
    atomic_store(&c->failed, 0);
    c->fail_at = fail_at;
}

/* ---- fixture ---------------------------------------------------------------- */

typedef struct {
    counter cnt;
    ember_allocator alloc;
    ember_ctx *ctx;
    char scratch[256];
    char msg[EMBER_MSG_SIZE];
} fixture;

static void open_ctx(fixture *f, size_t budget, const char *scratch_dir)
{
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 4;
    o.memory_budget = budget;
    o.block_bytes = 64;
    o.scratch_dir = scratch_dir;
    o.allocator = &f->alloc;
    int rc = ember_ctx_create(&f->ctx, &o, f->msg);
    if (rc)
        fail_msg("ember_ctx_create: %s (%s)", ember_strerror(rc), f->msg);
}

static void open_fixture(fixture *f, size_t budget)
{
    memset(f, 0, sizeof *f);
    f->alloc = (ember_allocator){count_malloc, count_realloc, count_free,
                                 &f->cnt};
    const char *tmp = getenv("TMPDIR");
    snprintf(f->scratch, sizeof f->scratch, "%s/ember-test-store-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->scratch));
    open_ctx(f, budget, f->scratch);
}

/* Entries of dir other than . and .. (-1 when it cannot be opened). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

/* The store's spill dir (scratch/ember-XXXXXX) into buf; 0 if there is none. */
static int spill_dir(const fixture *f, char *buf, size_t size)
{
    DIR *d = opendir(f->scratch);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "ember-", 6) == 0) {
            snprintf(buf, size, "%s/%s", f->scratch, de->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* The block files (*.blk) in dir; the last one's path into buf if given. */
static int count_blocks(const char *dir, char *buf, size_t size)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".blk") == 0) {
            n++;
            if (buf)
                snprintf(buf, size, "%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    return n;
}

static int spill_files(const fixture *f)
{
    char dir[512];
    return spill_dir(f, dir, sizeof dir) ? count_blocks(dir, NULL, 0) : 0;
}

/* The path of the only spill file into buf. */
static void only_spill_file(const fixture *f, char *buf, size_t size)
{
    char dir[512];
    assert_true(spill_dir(f, dir, sizeof dir));
    assert_int_equal(count_blocks(dir, buf, size), 1);
}

/* Destroys the context and checks that it left nothing behind. */
static void close_fixture(fixture *f)
{
    ember_ctx_destroy(&f->ctx);
    assert_null(f->ctx);
    assert_int_equal(atomic_load(&f->cnt.live), 0);
    assert_int_equal(count_entries(f->scratch), 0);
    rmdir(f->scratch);
}

static ember_stats stats(const fixture *f)
{
    ember_stats st;
    ember_ctx_stats(f->ctx, &st);
    return st;
}

/* ---- test data ------------------------------------------------------------ */

enum { NOISE = 0, RANGE = 1 };

/* NOISE: bytes zstd cannot shrink. RANGE: int64 counting up from seed * 1e6,
 * which shuffles into long runs. Both are a function of the seed only. */
static void fill(void *buf, size_t bytes, uint64_t seed, int kind)
{
    unsigned char *p = buf;
    uint64_t x = ember__hash64(seed + 1);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        int64_t v = (int64_t)(seed * 1000000 + i / 8);
        if (kind == NOISE)
            v = (int64_t)(x = ember__hash64(x));
        memcpy(p + i, &v, 8);
    }
    for (size_t i = bytes / 8 * 8; i < bytes; i++)
        p[i] = (unsigned char)(i * 7 + seed);
}

static void *make_block(ember_ctx *ctx, size_t bytes, uint64_t seed, int kind)
{
    void *p = ember__malloc(ctx, bytes);
    if (p)
        fill(p, bytes, seed, kind);
    return p;
}

static int same(const void *data, size_t bytes, uint64_t seed, int kind)
{
    unsigned char *want = malloc(bytes ? bytes : 1);
    fill(want, bytes, seed, kind);
    int ok = bytes == 0 || memcmp(want, data, bytes) == 0;
    free(want);
    return ok;
}

/* Stores nrec records of 8 bytes made from seed. */
static int put(fixture *f, uint64_t ds, size_t part, size_t nrec,
               uint64_t seed, int kind, ember_level level)
{
    void *data = make_block(f->ctx, nrec * 8, seed, kind);
    assert_non_null(data);
    return ember__store_put(f->ctx, ds, part, data, nrec, 8, level, f->msg);
}

static void expect_block(fixture *f, uint64_t ds, size_t part, size_t nrec,
                         uint64_t seed, int kind)
{
    ember__view v;
    int rc = ember__store_get(f->ctx, ds, part, &v, f->msg);
    if (rc)
        fail_msg("get #%llu/%zu: %s (%s)", (unsigned long long)ds, part,
                 ember_strerror(rc), f->msg);
    assert_int_equal(v.n, nrec);
    assert_true(same(v.data, nrec * 8, seed, kind));
    ember__store_release(f->ctx, &v);
    assert_null(v.data);
}

static void expect_absent(fixture *f, uint64_t ds, size_t part)
{
    ember__view v;
    assert_int_equal(ember__store_get(f->ctx, ds, part, &v, f->msg),
                     EMBER_NOTCACHED);
    assert_null(v.data);
    assert_int_equal(ember__store_has(f->ctx, ds, part), 0);
}

static size_t packed_size(fixture *f, size_t nrec, uint64_t seed, int kind)
{
    void *raw = malloc(nrec * 8), *packed = NULL;
    size_t bytes = 0;
    fill(raw, nrec * 8, seed, kind);
    assert_int_equal(ember__compress(f->ctx, raw, nrec * 8, 8, &packed, &bytes),
                     EMBER_OK);
    ember__free(f->ctx, packed);
    free(raw);
    return bytes;
}

static const ember_level all_levels[] = {
    EMBER_MEMORY_ONLY, EMBER_MEMORY_AND_DISK, EMBER_DISK_ONLY,
    EMBER_MEMORY_ONLY_SER, EMBER_MEMORY_AND_DISK_SER};
#define NLEVELS (sizeof all_levels / sizeof all_levels[0])

/* ---- round trips ------------------------------------------------------------ */

static void test_store_roundtrip_every_level(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16 << 20);
    for (size_t l = 0; l < NLEVELS; l++) {
        for (size_t p = 0; p < 3; p++) {
            int kind = p == 1 ? RANGE : NOISE;
            assert_int_equal(put(&f, l + 1, p, 1000, 10 * l + p, kind,
                                 all_levels[l]), EMBER_OK);
        }
        assert_int_equal(ember__store_count(f.ctx, l + 1), 3);
    }
    for (size_t l = 0; l < NLEVELS; l++)
        for (size_t p = 0; p < 3; p++) {
            assert_true(ember__store_has(f.ctx, l + 1, p));
            expect_block(&f, l + 1, p, 1000, 10 * l + p, p == 1 ? RANGE : NOISE);
        }
    ember_stats st = stats(&f);
    assert_int_equal(st.cache_hits, 15);
    assert_int_equal(st.blocks_in_memory, 12);
    assert_int_equal(st.blocks_on_disk, 3);
    assert_int_equal(st.disk_reads, 3);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.memory_budget, 16 << 20);
    close_fixture(&f);
}

static void test_store_empty_blocks(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    for (size_t l = 0; l < NLEVELS; l++) {
        void *data = ember__malloc(f.ctx, 0);
        assert_int_equal(ember__store_put(f.ctx, 1, l, data, 0, 8,
                                          all_levels[l], f.msg), EMBER_OK);
        ember__view v;
        assert_int_equal(ember__store_get(f.ctx, 1, l, &v, f.msg), EMBER_OK);
        assert_int_equal(v.n, 0);
        ember__store_release(f.ctx, &v);
    }
    assert_int_equal(ember__store_count(f.ctx, 1), NLEVELS);
    close_fixture(&f);
}

static void test_store_raw_get_is_zero_copy(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    void *data = make_block(f.ctx, 8000, 1, NOISE);
    assert_int_equal(ember__store_put(f.ctx, 1, 0, data, 1000, 8,
                                      EMBER_MEMORY_ONLY, f.msg), EMBER_OK);
    ember__view v;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_OK);
    assert_ptr_equal(v.data, data);
    ember__store_release(f.ctx, &v);
    close_fixture(&f);
}

static void test_store_get_missing(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    expect_absent(&f, 7, 0);
    assert_int_equal(put(&f, 7, 2, 10, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 7, 0);
    expect_absent(&f, 7, 1000000);
    expect_absent(&f, 8, 2);
    assert_int_equal(ember__store_count(f.ctx, 8), 0);
    ember__view v;
    memset(&v, 0, sizeof v);
    ember__store_release(f.ctx, &v); /* a view from a failed get is inert */
    assert_int_equal(stats(&f).cache_hits, 0);
    close_fixture(&f);
}

static void test_store_put_bad_arguments(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    void *data = make_block(f.ctx, 80, 1, NOISE);
    assert_int_equal(ember__store_put(f.ctx, 1, 0, data, 10, 8, EMBER_NONE,
                                      f.msg), EMBER_EINVAL);
    assert_true(strlen(f.msg) > 0);
    data = make_block(f.ctx, 80, 1, NOISE);
    assert_int_equal(ember__store_put(f.ctx, 1, 0, data, 10, 8,
                                      (ember_level)99, f.msg), EMBER_EINVAL);
    data = make_block(f.ctx, 80, 1, NOISE);
    assert_int_equal(ember__store_put(f.ctx, 1, 0, data, SIZE_MAX / 4, 8,
                                      EMBER_MEMORY_ONLY, f.msg), EMBER_EINVAL);
    expect_absent(&f, 1, 0);
    close_fixture(&f); /* the data of refused puts was freed */
}

/* ---- eviction ---------------------------------------------------------------- */

/* A put never evicts blocks of its own dataset (see
 * test_store_never_evicts_own_dataset), so the LRU cases below put each
 * block under a dataset id of its own. */

static void test_store_lru_drops_memory_only(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 24000); /* three blocks of 8000 bytes */
    for (size_t p = 0; p < 3; p++)
        assert_int_equal(put(&f, 1 + p, 0, 1000, p, NOISE, EMBER_MEMORY_ONLY),
                         EMBER_OK);
    expect_block(&f, 1, 0, 1000, 0, NOISE); /* LRU order now #2, #3, #1 */
    assert_int_equal(put(&f, 4, 0, 1000, 3, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 2, 0);
    assert_int_equal(put(&f, 5, 0, 1000, 4, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 3, 0);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    expect_block(&f, 4, 0, 1000, 3, NOISE);
    expect_block(&f, 5, 0, 1000, 4, NOISE);
    ember_stats st = stats(&f);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.spills, 0);
    assert_int_equal(st.blocks_in_memory, 3);
    assert_int_equal(st.memory_used, 24000);
    for (uint64_t ds = 1; ds <= 5; ds++)
        assert_int_equal(ember__store_count(f.ctx, ds),
                         ds == 2 || ds == 3 ? 0 : 1);
    close_fixture(&f);
}

static void test_store_lru_spills_and_reads_back(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000); /* two blocks of 8000 bytes */
    for (size_t p = 0; p < 3; p++)
        assert_int_equal(put(&f, 1 + p, 0, 1000, p, NOISE,
                             EMBER_MEMORY_AND_DISK), EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.spills, 1);
    assert_int_equal(st.blocks_in_memory, 2);
    assert_int_equal(st.blocks_on_disk, 1);
    assert_int_equal(st.memory_used, 16000);
    assert_int_equal(spill_files(&f), 1);
    for (uint64_t ds = 1; ds <= 3; ds++)
        assert_int_equal(ember__store_count(f.ctx, ds), 1);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    st = stats(&f);
    assert_int_equal(st.disk_reads, 2);
    assert_int_equal(st.cache_hits, 2);
    expect_block(&f, 2, 0, 1000, 1, NOISE);
    expect_block(&f, 3, 0, 1000, 2, NOISE);
    assert_int_equal(stats(&f).disk_reads, 2);
    close_fixture(&f);
}

/* Like Spark, a put never evicts blocks of its own dataset: a MEMORY_ONLY
 * dataset bigger than the budget keeps its first partitions instead of
 * thrashing, while a block of another dataset still evicts the least
 * recently used block. */
static void test_store_never_evicts_own_dataset(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000); /* two blocks of 8000 bytes */
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 1, 1, 1000, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 1, 2, 1000, 2, NOISE, EMBER_MEMORY_ONLY),
                     EMBER_NOTCACHED);
    expect_absent(&f, 1, 2);
    /* A MEMORY_AND_DISK block of the same dataset goes to disk itself. */
    assert_int_equal(put(&f, 1, 3, 1000, 3, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.spills, 1);
    assert_int_equal(st.blocks_in_memory, 2);
    assert_int_equal(st.blocks_on_disk, 1);
    assert_int_equal(st.memory_used, 16000);
    assert_int_equal(ember__store_count(f.ctx, 1), 3);
    expect_block(&f, 1, 1, 1000, 1, NOISE);
    expect_block(&f, 1, 0, 1000, 0, NOISE); /* LRU order now 1/1, 1/0 */
    /* A block of another dataset evicts the least recently used block. */
    assert_int_equal(put(&f, 2, 0, 1000, 4, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 1, 1);
    assert_true(ember__store_has(f.ctx, 1, 0));
    assert_int_equal(stats(&f).evictions, 1);
    /* When the other datasets' blocks are not enough, none are evicted. */
    assert_int_equal(put(&f, 1, 4, 2000, 5, NOISE, EMBER_MEMORY_ONLY),
                     EMBER_NOTCACHED);
    expect_absent(&f, 1, 4);
    assert_int_equal(stats(&f).evictions, 1);
    expect_block(&f, 2, 0, 1000, 4, NOISE);
    expect_block(&f, 1, 0, 1000, 0, NOISE); /* LRU order now 2/0, 1/0 */
    /* 2/0 is least recently used, yet a block of dataset 2 evicts 1/0. */
    assert_int_equal(put(&f, 2, 1, 1000, 6, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 1, 0);
    expect_block(&f, 2, 0, 1000, 4, NOISE);
    expect_block(&f, 2, 1, 1000, 6, NOISE);
    expect_block(&f, 1, 3, 1000, 3, NOISE); /* on disk all along */
    st = stats(&f);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.spills, 1);
    assert_int_equal(st.blocks_in_memory, 2);
    assert_int_equal(st.memory_used, 16000);
    assert_int_equal(ember__store_count(f.ctx, 1), 1);
    assert_int_equal(ember__store_count(f.ctx, 2), 2);
    close_fixture(&f);
}

/* _SER blocks count their compressed size and spill compressed. */
static void test_store_ser_levels_count_compressed_bytes(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    size_t c = packed_size(&f, 100000, 5, RANGE);
    assert_true(c < 100000 * 8 / 2);
    assert_int_equal(put(&f, 1, 0, 100000, 5, RANGE, EMBER_MEMORY_ONLY_SER),
                     EMBER_OK);
    assert_int_equal(stats(&f).memory_used, c);
    expect_block(&f, 1, 0, 100000, 5, RANGE);
    close_fixture(&f);

    /* Noise does not shrink: room for two blocks, not three. #1..#3 are
     * MEMORY_AND_DISK_SER, #4..#6 MEMORY_ONLY_SER, one block each. */
    open_fixture(&f, 17000);
    size_t sizes[3];
    for (size_t p = 0; p < 3; p++) {
        sizes[p] = packed_size(&f, 1000, p, NOISE);
        assert_int_equal(put(&f, 1 + p, 0, 1000, p, NOISE,
                             EMBER_MEMORY_AND_DISK_SER), EMBER_OK);
    }
    assert_int_equal(stats(&f).spills, 1); /* #3 evicted #1 */
    /* Each of these evicts: #2 and #3 spill, then #4 is dropped. */
    for (size_t p = 0; p < 3; p++)
        assert_int_equal(put(&f, 4 + p, 0, 1000, p, NOISE,
                             EMBER_MEMORY_ONLY_SER), EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.blocks_in_memory, 2);
    assert_int_equal(st.memory_used, sizes[1] + sizes[2]);
    assert_int_equal(st.evictions, 4);
    assert_int_equal(st.spills, 3);
    assert_int_equal(st.blocks_on_disk, 3);
    assert_int_equal(spill_files(&f), 3);
    for (size_t p = 0; p < 3; p++)
        expect_block(&f, 1 + p, 0, 1000, p, NOISE);
    assert_int_equal(stats(&f).disk_reads, 3);
    expect_absent(&f, 4, 0);
    expect_block(&f, 5, 0, 1000, 1, NOISE);
    expect_block(&f, 6, 0, 1000, 2, NOISE);
    close_fixture(&f);
}

static void test_store_block_larger_than_budget(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 2, 0, 3000, 1, NOISE, EMBER_MEMORY_ONLY),
                     EMBER_NOTCACHED);
    assert_int_equal(put(&f, 2, 1, 3000, 1, NOISE, EMBER_MEMORY_ONLY_SER),
                     EMBER_NOTCACHED);
    assert_int_equal(ember__store_count(f.ctx, 2), 0);
    /* Nothing was evicted for a block that could never fit. */
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    assert_int_equal(stats(&f).evictions, 0);
    /* A MEMORY_AND_DISK block that cannot fit goes straight to disk. */
    assert_int_equal(put(&f, 3, 0, 3000, 2, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.blocks_on_disk, 1);
    assert_int_equal(st.blocks_in_memory, 1);
    assert_int_equal(st.evictions, 0);
    expect_block(&f, 3, 0, 3000, 2, NOISE);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    close_fixture(&f);
}

static void test_store_pinned_blocks_survive_eviction(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000); /* two blocks; one block per dataset #1..#6 */
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    ember__view pinned;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &pinned, f.msg), EMBER_OK);
    assert_int_equal(put(&f, 2, 0, 1000, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_block(&f, 2, 0, 1000, 1, NOISE); /* LRU order: #1 (pinned), #2 */
    /* #1 is least recently used but pinned: #2 goes instead. */
    assert_int_equal(put(&f, 3, 0, 1000, 2, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 2, 0);
    assert_true(ember__store_has(f.ctx, 1, 0));
    assert_int_equal(put(&f, 4, 0, 1000, 3, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 3, 0);
    /* With #1 pinned, a two-block block cannot fit: refused, #4 kept. */
    assert_int_equal(put(&f, 5, 0, 2000, 4, NOISE, EMBER_MEMORY_ONLY),
                     EMBER_NOTCACHED);
    assert_int_equal(ember__store_count(f.ctx, 5), 0);
    assert_true(ember__store_has(f.ctx, 4, 0));
    assert_true(same(pinned.data, 8000, 0, NOISE));
    ember__store_release(f.ctx, &pinned);
    /* Unpinned, #1 is the least recently used and goes first. */
    assert_int_equal(put(&f, 6, 0, 1000, 5, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_absent(&f, 1, 0);
    expect_block(&f, 4, 0, 1000, 3, NOISE);
    expect_block(&f, 6, 0, 1000, 5, NOISE);
    close_fixture(&f);
}

/* A view of a block that spills keeps pointing at valid memory. */
static void test_store_pinned_block_spilled_while_viewed(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 8000);
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    ember__view v;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_OK);
    /* 1/0 is pinned, so 2/0 cannot get room and goes to disk itself. */
    assert_int_equal(put(&f, 2, 0, 1000, 1, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    assert_int_equal(stats(&f).blocks_on_disk, 1);
    ember__store_release(f.ctx, &v);
    /* Unpinned, 1/0 is evicted (another dataset's block) and spills. */
    assert_int_equal(put(&f, 2, 1, 1000, 2, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.blocks_on_disk, 2);
    assert_int_equal(st.blocks_in_memory, 1);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    expect_block(&f, 2, 0, 1000, 1, NOISE);
    expect_block(&f, 2, 1, 1000, 2, NOISE);
    assert_int_equal(stats(&f).disk_reads, 2);
    close_fixture(&f);
}

/* ---- replace, drop ------------------------------------------------------------ */

static void test_store_replace_existing_key(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    assert_int_equal(put(&f, 1, 0, 1000, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 1, 0, 500, 2, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    expect_block(&f, 1, 0, 500, 2, NOISE);
    assert_int_equal(ember__store_count(f.ctx, 1), 1);
    assert_int_equal(stats(&f).memory_used, 4000);
    assert_int_equal(put(&f, 1, 0, 1000, 3, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    ember_stats st = stats(&f);
    assert_int_equal(st.memory_used, 0);
    assert_int_equal(st.blocks_in_memory, 0);
    assert_int_equal(st.blocks_on_disk, 1);
    expect_block(&f, 1, 0, 1000, 3, NOISE);
    assert_int_equal(put(&f, 1, 0, 1000, 4, RANGE, EMBER_MEMORY_ONLY_SER),
                     EMBER_OK);
    assert_int_equal(spill_files(&f), 0); /* the replaced file is gone */
    assert_int_equal(stats(&f).blocks_on_disk, 0);
    expect_block(&f, 1, 0, 1000, 4, RANGE);
    assert_int_equal(ember__store_count(f.ctx, 1), 1);
    close_fixture(&f);
}

/* Replacing or dropping a block some view still reads is safe: the view
 * keeps the old bytes until it is released. */
static void test_store_replace_and_drop_pinned(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    assert_int_equal(put(&f, 1, 0, 1000, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    ember__view old;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &old, f.msg), EMBER_OK);
    assert_int_equal(put(&f, 1, 0, 1000, 2, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    ember__view cur;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &cur, f.msg), EMBER_OK);
    ember__store_drop(f.ctx, 1);
    assert_int_equal(ember__store_count(f.ctx, 1), 0);
    expect_absent(&f, 1, 0);
    ember_stats st = stats(&f);
    assert_int_equal(st.memory_used, 0);
    assert_int_equal(st.blocks_in_memory, 0);
    assert_true(same(old.data, 8000, 1, NOISE));
    assert_true(same(cur.data, 8000, 2, NOISE));
    ember__store_release(f.ctx, &old);
    ember__store_release(f.ctx, &cur);
    close_fixture(&f);
}

static void test_store_drop_removes_spill_files(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    for (size_t p = 0; p < 5; p++) {
        assert_int_equal(put(&f, 1, p, 1000, p, NOISE, EMBER_DISK_ONLY),
                         EMBER_OK);
        assert_int_equal(put(&f, 2, p, 1000, p, NOISE, EMBER_MEMORY_AND_DISK),
                         EMBER_OK);
        assert_int_equal(put(&f, 3, p, 1000, p, RANGE,
                             EMBER_MEMORY_AND_DISK_SER), EMBER_OK);
    }
    ember_stats st = stats(&f);
    assert_true(st.blocks_on_disk >= 8);
    assert_int_equal(spill_files(&f), (int)st.blocks_on_disk);
    ember__store_drop(f.ctx, 1);
    assert_int_equal(spill_files(&f), (int)stats(&f).blocks_on_disk);
    ember__store_drop(f.ctx, 2);
    ember__store_drop(f.ctx, 3);
    st = stats(&f);
    assert_int_equal(spill_files(&f), 0);
    assert_int_equal(st.blocks_on_disk, 0);
    assert_int_equal(st.blocks_in_memory, 0);
    assert_int_equal(st.memory_used, 0);
    for (uint64_t ds = 1; ds <= 3; ds++)
        assert_int_equal(ember__store_count(f.ctx, ds), 0);
    ember__store_drop(f.ctx, 2); /* dropping twice is harmless */
    char dir[512];
    assert_true(spill_dir(&f, dir, sizeof dir));
    close_fixture(&f); /* checks the spill dir itself is gone */
}

/* A spill dir holds its maker's lock; the first spill of a later store
 * removes the dirs whose maker is gone (killed: nothing cleaned up) and
 * keeps the others: a live store's, this process's, one with no lock file
 * (an older ember's, or one being made). */
static void make_dir_with(const char *base, const char *name, long pid, char *path,
                          size_t size)
{
    snprintf(path, size, "%s/%s", base, name);
    assert_int_equal(mkdir(path, 0700), 0);
    char file[600];
    snprintf(file, sizeof file, "%s/0000000000000001.blk", path);
    FILE *b = fopen(file, "w");
    assert_non_null(b);
    fputs("block", b);
    fclose(b);
    if (pid < 0)
        return;
    snprintf(file, sizeof file, "%s/lock", path);
    FILE *l = fopen(file, "w");
    assert_non_null(l);
    fprintf(l, "%ld\n", pid);
    fclose(l);
}

static void test_store_sweeps_dead_spill_dirs(void **state)
{
    (void)state;
    fixture live, f;
    open_fixture(&live, 16000);
    for (size_t p = 0; p < 4; p++) /* a live store with a spill dir */
        assert_int_equal(put(&live, 1, p, 1000, p, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    char live_dir[512];
    assert_true(spill_dir(&live, live_dir, sizeof live_dir));
    /* a pid that was a process and is no more: a child reaped at once */
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0)
        _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char gone[600], mine[600], nolock[600], other[600];
    make_dir_with(live.scratch, "ember-dead01", (long)dead, gone, sizeof gone);
    make_dir_with(live.scratch, "ember-mine01", (long)getpid(), mine, sizeof mine);
    make_dir_with(live.scratch, "ember-nolock", -1, nolock, sizeof nolock);
    make_dir_with(live.scratch, "other-dead01", (long)dead, other, sizeof other);

    /* a second store on the same scratch dir: its first spill sweeps */
    memset(&f, 0, sizeof f);
    f.alloc = (ember_allocator){count_malloc, count_realloc, count_free, &f.cnt};
    snprintf(f.scratch, sizeof f.scratch, "%s", live.scratch);
    open_ctx(&f, 16000, f.scratch);
    struct stat st;
    assert_int_equal(stat(gone, &st), 0); /* nothing spilled yet */
    for (size_t p = 0; p < 4; p++)
        assert_int_equal(put(&f, 1, p, 1000, p, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    assert_true(stat(gone, &st) != 0 && errno == ENOENT);
    assert_int_equal(stat(mine, &st), 0);
    assert_int_equal(stat(nolock, &st), 0);
    assert_int_equal(stat(other, &st), 0); /* not an ember- spill dir */
    assert_int_equal(count_blocks(live_dir, NULL, 0), 4); /* held: kept */
    for (size_t p = 0; p < 4; p++) {
        expect_block(&live, 1, p, 1000, p, NOISE);
        expect_block(&f, 1, p, 1000, p, NOISE);
    }
    ember_ctx_destroy(&f.ctx);
    assert_int_equal(atomic_load(&f.cnt.live), 0);
    const char *made[] = {mine, nolock, other};
    for (int i = 0; i < 3; i++) {
        char blk[700];
        snprintf(blk, sizeof blk, "%s/0000000000000001.blk", made[i]);
        unlink(blk);
        snprintf(blk, sizeof blk, "%s/lock", made[i]);
        unlink(blk);
        assert_int_equal(rmdir(made[i]), 0);
    }
    close_fixture(&live);
}

/* ---- disk errors ---------------------------------------------------------------- */

static void test_store_spill_dir_unwritable(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    ember_ctx_destroy(&f.ctx);
    /* A regular file where the scratch dir should be: fails even for root. */
    char notdir[300];
    snprintf(notdir, sizeof notdir, "%s/plain-file", f.scratch);
    int fd = open(notdir, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    open_ctx(&f, 16000, notdir);
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY), EMBER_EIO);
    assert_non_null(strstr(f.msg, notdir));
    assert_non_null(strstr(f.msg, strerror(ENOTDIR)));
    expect_absent(&f, 1, 0);
    /* A spill for room fails the same way: the victim is lost, the new
     * block is stored. */
    assert_int_equal(put(&f, 2, 0, 1000, 0, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    assert_int_equal(put(&f, 3, 0, 1000, 1, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    f.msg[0] = '\0';
    assert_int_equal(put(&f, 4, 0, 1000, 2, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_EIO);
    assert_non_null(strstr(f.msg, notdir));
    expect_absent(&f, 2, 0);
    expect_block(&f, 3, 0, 1000, 1, NOISE);
    expect_block(&f, 4, 0, 1000, 2, NOISE);
    ember_stats st = stats(&f);
    assert_int_equal(st.spills, 0);
    assert_int_equal(st.blocks_on_disk, 0);
    assert_int_equal(st.blocks_in_memory, 2);
    ember_ctx_destroy(&f.ctx);
    unlink(notdir);

    /* A directory without write permission (root ignores modes). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(f.scratch, 0500), 0);
        open_ctx(&f, 16000, f.scratch);
        assert_int_equal(put(&f, 1, 0, 10, 0, NOISE, EMBER_DISK_ONLY),
                         EMBER_EIO);
        assert_non_null(strstr(f.msg, strerror(EACCES)));
        ember_ctx_destroy(&f.ctx);
        assert_int_equal(chmod(f.scratch, 0700), 0);
    }
    open_ctx(&f, 16000, f.scratch);
    close_fixture(&f);
}

/* The spill dir vanishes under the store: writes and reads name the file. */
static void test_store_spill_file_errors_name_the_file(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    char dir[512], file[1024];
    only_spill_file(&f, file, sizeof file);
    assert_true(spill_dir(&f, dir, sizeof dir));
    char lock[600];
    snprintf(lock, sizeof lock, "%s/lock", dir);
    assert_int_equal(unlink(file), 0);
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(put(&f, 1, 1, 1000, 1, NOISE, EMBER_DISK_ONLY), EMBER_EIO);
    assert_non_null(strstr(f.msg, dir));
    assert_non_null(strstr(f.msg, ".blk"));
    assert_non_null(strstr(f.msg, strerror(ENOENT)));
    expect_absent(&f, 1, 1);
    ember__view v;
    /* a spill file that is gone is a lost block, as a damaged one is */
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_ECORRUPT);
    assert_non_null(strstr(f.msg, strerror(ENOENT)));
    assert_non_null(strstr(f.msg, file));
    assert_null(v.data);
    assert_int_equal(mkdir(dir, 0700), 0); /* so destroy has a dir to remove */
    close_fixture(&f);
}

/* A file size limit makes write(2) stop part way (a short write), then fail
 * with EFBIG: the store reports the file and removes the partial one. */
static void test_store_spill_write_error(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY);
    int rc_spill = put(&f, 2, 0, 3000, 0, NOISE, EMBER_MEMORY_AND_DISK);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, EMBER_EIO);
    assert_int_equal(rc_spill, EMBER_EIO);
    assert_non_null(strstr(f.msg, ".blk"));
    assert_non_null(strstr(f.msg, strerror(EFBIG)));
    assert_int_equal(spill_files(&f), 0);
    expect_absent(&f, 1, 0);
    expect_absent(&f, 2, 0);
    assert_int_equal(stats(&f).blocks_on_disk, 0);
    /* The store still works once the disk does. */
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    expect_block(&f, 1, 0, 1000, 0, NOISE);
    close_fixture(&f);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static void test_store_corrupt_spill_file(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    char file[1024];
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    only_spill_file(&f, file, sizeof file);
    assert_int_equal(truncate(file, 4000), 0);
    ember__view v;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_ECORRUPT);
    assert_non_null(strstr(f.msg, file));
    assert_int_equal(truncate(file, 9000), 0);
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_ECORRUPT);
    assert_non_null(strstr(f.msg, file));
    ember__store_drop(f.ctx, 1);

    /* A compressed block of the right size whose bytes are garbage: #3's
     * block takes the whole budget and spills #2's. */
    assert_int_equal(put(&f, 2, 0, 1000, 0, RANGE, EMBER_MEMORY_AND_DISK_SER),
                     EMBER_OK);
    assert_int_equal(put(&f, 3, 0, 2000, 1, NOISE, EMBER_MEMORY_AND_DISK),
                     EMBER_OK);
    only_spill_file(&f, file, sizeof file);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    unsigned char *junk = calloc(1, (size_t)st.st_size);
    write_bytes(file, junk, (size_t)st.st_size);
    free(junk);
    assert_int_equal(ember__store_get(f.ctx, 2, 0, &v, f.msg), EMBER_ECORRUPT);
    assert_non_null(strstr(f.msg, "checksum")); /* caught before zstd sees it */
    assert_non_null(strstr(f.msg, file));
    assert_int_equal(truncate(file, st.st_size - 1), 0);
    assert_int_equal(ember__store_get(f.ctx, 2, 0, &v, f.msg), EMBER_ECORRUPT);
    assert_non_null(strstr(f.msg, file));
    assert_int_equal(stats(&f).disk_reads, 0);
    close_fixture(&f);
}

/* A spilled block keeps the hash of what was written: one flipped byte in
 * a raw block (which nothing else would notice) is EMBER_ECORRUPT naming
 * the file, and the block stays until the caller drops it. */
static void test_store_spill_checksum(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    char file[1024];
    assert_int_equal(put(&f, 1, 0, 1000, 0, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    only_spill_file(&f, file, sizeof file);
    int fd = open(file, O_RDWR);
    unsigned char b = 0;
    assert_int_equal(pread(fd, &b, 1, 4000), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, 4000), 1);
    close(fd);
    ember__view v;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ember__store_get(f.ctx, 1, 0, &v, f.msg), EMBER_ECORRUPT);
        assert_non_null(strstr(f.msg, file));
        assert_non_null(strstr(f.msg, "checksum"));
        assert_null(v.data);
    }
    assert_int_equal(ember__store_has(f.ctx, 1, 0), 1);
    ember__store_drop_part(f.ctx, 1, 0);
    expect_absent(&f, 1, 0);
    assert_int_equal(spill_files(&f), 0);
    assert_int_equal(stats(&f).blocks_on_disk, 0);
    assert_int_equal(stats(&f).disk_used, 0);
    assert_int_equal(access(file, F_OK), -1); /* gone with its block */
    close_fixture(&f);
}

/* ember__store_drop_missing drops the blocks whose spill files are gone or
 * of the wrong size, and keeps the rest. */
static void test_store_drop_missing(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16000);
    char dir[512], file[3][1024];
    for (size_t p = 0; p < 3; p++)
        assert_int_equal(put(&f, 2, p, 1000, p, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 3, 0, 100, 9, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_true(spill_dir(&f, dir, sizeof dir));
    for (size_t p = 0; p < 3; p++)
        snprintf(file[p], sizeof file[p], "%s/%016llx.blk", dir,
                 (unsigned long long)p + 1);
    assert_int_equal(unlink(file[0]), 0);
    assert_int_equal(truncate(file[1], 10), 0);
    ember__store_drop_missing(f.ctx, 2);
    ember__store_drop_missing(f.ctx, 3); /* in memory: nothing to check */
    assert_int_equal(ember__store_count(f.ctx, 2), 1);
    expect_absent(&f, 2, 0);
    expect_absent(&f, 2, 1);
    expect_block(&f, 2, 2, 1000, 2, NOISE);
    expect_block(&f, 3, 0, 100, 9, NOISE);
    assert_int_equal(spill_files(&f), 1);
    assert_int_equal(stats(&f).blocks_on_disk, 1);
    close_fixture(&f);
}

/* ---- codec ------------------------------------------------------------------ */

static void roundtrip(fixture *f, size_t nbytes, size_t stride)
{
    unsigned char *src = malloc(nbytes + 1), *back = malloc(nbytes + 1);
    fill(src, nbytes, nbytes + stride, (nbytes / 3) % 2 ? RANGE : NOISE);
    void *packed = NULL;
    size_t pbytes = 0;
    assert_int_equal(ember__compress(f->ctx, src, nbytes, stride, &packed,
                                     &pbytes), EMBER_OK);
    assert_int_equal(ember__decompress(f->ctx, packed, pbytes, stride, back,
                                       nbytes), EMBER_OK);
    assert_memory_equal(src, back, nbytes);
    /* The wrong size or a damaged frame is caught, not returned. */
    assert_int_equal(ember__decompress(f->ctx, packed, pbytes, stride, back,
                                       nbytes + 1), EMBER_ECORRUPT);
    if (pbytes > 4)
        assert_int_equal(ember__decompress(f->ctx, packed, pbytes - 4, stride,
                                           back, nbytes), EMBER_ECORRUPT);
    ember__free(f->ctx, packed);
    free(src);
    free(back);
}

static void test_store_compress_roundtrip(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    static const size_t strides[] = {0, 1, 2, 3, 4, 7, 8, 13, 16, 24};
    for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++) {
        size_t k = strides[s] ? strides[s] : 1;
        size_t sizes[] = {0, 1, k - 1, k, 5 * k + 3, 4096 * k,
                          4096 * k + k / 2 + 1, 100003};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            roundtrip(&f, sizes[i], strides[s]);
    }
    close_fixture(&f);
}

static void test_store_compress_range_ratio(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    size_t n = 1000000, raw = n * sizeof(int64_t);
    int64_t *v = malloc(raw);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    void *packed = NULL;
    size_t pbytes = 0;
    assert_int_equal(ember__compress(f.ctx, v, raw, 8, &packed, &pbytes),
                     EMBER_OK);
    print_message("range of 1e6 int64: %zu -> %zu bytes\n", raw, pbytes);
    assert_true(pbytes < raw / 2);
    int64_t *back = malloc(raw);
    assert_int_equal(ember__decompress(f.ctx, packed, pbytes, 8, back, raw),
                     EMBER_OK);
    assert_memory_equal(v, back, raw);
    ember__free(f.ctx, packed);
    free(v);
    free(back);
    close_fixture(&f);
}

/* ---- scale and concurrency ------------------------------------------------------- */

static void test_store_many_blocks(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 64 << 20);
    const size_t nparts = 20000;
    for (uint64_t ds = 1; ds <= 3; ds++)
        for (size_t p = 0; p < nparts; p++)
            assert_int_equal(put(&f, ds, p, 2, ds * nparts + p, RANGE,
                                 EMBER_MEMORY_ONLY), EMBER_OK);
    for (uint64_t ds = 1; ds <= 3; ds++) {
        assert_int_equal(ember__store_count(f.ctx, ds), nparts);
        for (size_t p = 0; p < nparts; p++)
            expect_block(&f, ds, p, 2, ds * nparts + p, RANGE);
    }
    ember__store_drop(f.ctx, 2);
    ember_stats st = stats(&f);
    assert_int_equal(st.blocks_in_memory, 2 * nparts);
    assert_int_equal(st.memory_used, 2 * nparts * 16);
    close_fixture(&f);
}

/* Enough datasets to grow the table, dropped in an order that walks the
 * hash chains. */
static void test_store_many_datasets(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 16 << 20);
    const uint64_t nds = 2000;
    for (uint64_t ds = 0; ds < nds; ds++)
        assert_int_equal(put(&f, ds * 7919, ds % 3, 4, ds, RANGE,
                             EMBER_MEMORY_ONLY), EMBER_OK);
    for (uint64_t ds = 0; ds < nds; ds++) {
        assert_int_equal(ember__store_count(f.ctx, ds * 7919), 1);
        expect_block(&f, ds * 7919, ds % 3, 4, ds, RANGE);
    }
    for (uint64_t ds = 0; ds < nds; ds += 2)
        ember__store_drop(f.ctx, ds * 7919);
    for (uint64_t ds = 0; ds < nds; ds++)
        assert_int_equal(ember__store_has(f.ctx, ds * 7919, ds % 3), ds % 2);
    assert_int_equal(stats(&f).blocks_in_memory, nds / 2);
    close_fixture(&f);
}

/* Views not released before the context goes are a caller bug, but their
 * blocks are still freed, and so is anything stray in the spill dir. */
static void test_store_destroy_frees_outstanding_views(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 1 << 20);
    assert_int_equal(put(&f, 1, 0, 100, 0, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 1, 1, 100, 1, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    assert_int_equal(put(&f, 2, 0, 100, 2, NOISE, EMBER_DISK_ONLY), EMBER_OK);
    ember__view a, b;
    assert_int_equal(ember__store_get(f.ctx, 1, 0, &a, f.msg), EMBER_OK);
    assert_int_equal(ember__store_get(f.ctx, 1, 1, &b, f.msg), EMBER_OK);
    assert_int_equal(put(&f, 1, 1, 100, 3, NOISE, EMBER_MEMORY_ONLY), EMBER_OK);
    char dir[512], stray[600];
    assert_true(spill_dir(&f, dir, sizeof dir));
    snprintf(stray, sizeof stray, "%s/stray", dir);
    write_bytes(stray, "x", 1);
    close_fixture(&f);
}

/* Puts and gets from a team of threads, with a budget small enough to evict
 * and spill all the time. A block's bytes depend only on its key, so any
 * successful get can be checked whatever raced with it. */
static void test_store_concurrent_puts_and_gets(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f, 40 * 4000);
    static const ember_level lv[] = {EMBER_MEMORY_ONLY, EMBER_MEMORY_AND_DISK,
                                     EMBER_MEMORY_AND_DISK_SER,
                                     EMBER_MEMORY_ONLY_SER, EMBER_DISK_ONLY};
    atomic_int bad = 0, hits = 0;
    ember_ctx *ctx = f.ctx;
#pragma omp parallel for num_threads(4) schedule(dynamic, 16)
    for (int i = 0; i < 20000; i++) {
        uint64_t ds = 1 + (uint64_t)(i % 5);
        size_t part = (size_t)((i * 7919) % 64), nrec = 500;
        uint64_t seed = ds * 1000 + part;
        int kind = part % 2 ? RANGE : NOISE;
        char msg[EMBER_MSG_SIZE];
        if (i % 3 == 0) {
            void *data = make_block(ctx, nrec * 8, seed, kind);
            int rc = ember__store_put(ctx, ds, part, data, nrec, 8, lv[ds - 1],
                                      msg);
            if (rc != EMBER_OK && rc != EMBER_NOTCACHED)
                atomic_fetch_add(&bad, 1);
        } else if (i % 97 == 0) {
            ember__store_drop(ctx, ds);
        } else {
            ember__view v;
            int rc = ember__store_get(ctx, ds, part, &v, msg);
            if (rc == EMBER_OK) {
                atomic_fetch_add(&hits, 1);
                if (v.n != nrec || !same(v.data, nrec * 8, seed, kind))
                    atomic_fetch_add(&bad, 1);
                ember__store_release(ctx, &v);
            } else if (rc != EMBER_NOTCACHED) {
                atomic_fetch_add(&bad, 1);
            }
        }
    }
    assert_int_equal(atomic_load(&bad), 0);
    ember_stats st = stats(&f);
    assert_int_equal(st.cache_hits, (uint64_t)atomic_load(&hits));
    assert_true(st.memory_used <= 40 * 4000);
    assert_true(st.evictions > 0);
    assert_true(st.spills > 0);
    size_t total = 0;
    for (uint64_t ds = 1; ds <= 5; ds++)
        total += ember__store_count(f.ctx, ds);
    assert_int_equal(total, st.blocks_in_memory + st.blocks_on_disk);
    assert_int_equal(spill_files(&f), (int)st.blocks_on_disk);
    close_fixture(&f);
}

/* ---- failure injection -------------------------------------------------------- */

/* Every store call once, with the allocator failing one call somewhere:
 * each call must succeed, report EMBER_ENOMEM (or, for a put, NOTCACHED),
 * and leave the store usable. */
static void store_workout(ember_ctx *ctx)
{
    char msg[EMBER_MSG_SIZE];
    const size_t nrec = 1000;
    for (size_t i = 0; i < 10; i++) {
        int kind = i % 2 ? RANGE : NOISE;
        void *data = make_block(ctx, nrec * 8, i, kind);
        if (!data)
            continue; /* the test's own allocation took the failure */
        int rc = ember__store_put(ctx, 1 + i % 2, i, data, nrec, 8,
                                  all_levels[i % NLEVELS], msg);
        assert_true(rc == EMBER_OK || rc == EMBER_NOTCACHED ||
                    rc == EMBER_ENOMEM);
        if (rc == EMBER_ENOMEM)
            assert_true(strlen(msg) > 0);
    }
    for (size_t i = 0; i < 10; i++) {
        ember__view v;
        int rc = ember__store_get(ctx, 1 + i % 2, i, &v, msg);
        assert_true(rc == EMBER_OK || rc == EMBER_NOTCACHED ||
                    rc == EMBER_ENOMEM);
        if (rc == EMBER_OK)
            assert_true(same(v.data, nrec * 8, i, i % 2 ? RANGE : NOISE));
        ember__store_release(ctx, &v);
    }
    ember__store_drop(ctx, 1);
    assert_int_equal(ember__store_count(ctx, 1), 0);
}

static void test_store_allocation_failures(void **state)
{
    (void)state;
    fixture f;
    int completed = 0;
    for (long n = 1; !completed; n++) {
        open_fixture(&f, 20000);
        /* The context made its store already; make it again under failure. */
        ember__store_destroy(f.ctx);
        counter_arm(&f.cnt, n);
        int rc = ember__store_create(f.ctx, f.msg);
        if (rc == EMBER_OK) {
            store_workout(f.ctx);
        } else {
            assert_int_equal(rc, EMBER_ENOMEM);
            assert_null(f.ctx->store);
        }
        completed = !atomic_load(&f.cnt.failed);
        counter_arm(&f.cnt, 0);
        close_fixture(&f); /* no leak, no spill dir left */
        assert_true(n < 10000);
        if (completed)
            print_message("failed each of %ld allocations in turn\n", n - 1);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_roundtrip_every_level),
        cmocka_unit_test(test_store_empty_blocks),
        cmocka_unit_test(test_store_raw_get_is_zero_copy),
        cmocka_unit_test(test_store_get_missing),
        cmocka_unit_test(test_store_put_bad_arguments),
        cmocka_unit_test(test_store_lru_drops_memory_only),
        cmocka_unit_test(test_store_lru_spills_and_reads_back),
        cmocka_unit_test(test_store_never_evicts_own_dataset),
        cmocka_unit_test(test_store_ser_levels_count_compressed_bytes),
        cmocka_unit_test(test_store_block_larger_than_budget),
        cmocka_unit_test(test_store_pinned_blocks_survive_eviction),
        cmocka_unit_test(test_store_pinned_block_spilled_while_viewed),
        cmocka_unit_test(test_store_replace_existing_key),
        cmocka_unit_test(test_store_replace_and_drop_pinned),
        cmocka_unit_test(test_store_drop_removes_spill_files),
        cmocka_unit_test(test_store_sweeps_dead_spill_dirs),
        cmocka_unit_test(test_store_spill_dir_unwritable),
        cmocka_unit_test(test_store_spill_file_errors_name_the_file),
        cmocka_unit_test(test_store_spill_write_error),
        cmocka_unit_test(test_store_corrupt_spill_file),
        cmocka_unit_test(test_store_spill_checksum),
        cmocka_unit_test(test_store_drop_missing),
        cmocka_unit_test(test_store_compress_roundtrip),
        cmocka_unit_test(test_store_compress_range_ratio),
        cmocka_unit_test(test_store_many_blocks),
        cmocka_unit_test(test_store_many_datasets),
        cmocka_unit_test(test_store_destroy_frees_outstanding_views),
        cmocka_unit_test(test_store_concurrent_puts_and_gets),
        cmocka_unit_test(test_store_allocation_failures),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
