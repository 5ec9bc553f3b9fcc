/* test_exec.c: the executor, through the public API: pipelining (a chain
 * of maps reads its input once, in blocks, and materializes nothing in
 * between), bit-identical results at 1, 2 and 4 threads and for any block
 * size, a lineage of 100,000 maps (runs, frees, lineage strings), the
 * storage levels (eviction and recompute, spill and reload, DISK_ONLY, the
 * _SER levels' results and footprint, unpersist), the lowest failing
 * partition's error, and allocation failures injected into a whole
 * scenario (context, range, map, cache, collect, reduce_by_key) for
 * N = 1, 2, ... with no leak on any path.
 */
#include "internal.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const int thread_counts[] = {1, 2, 4};

static int add_one(const void *in, void *out, size_t n, void *arg)
{
    atomic_long *calls = arg;
    if (calls)
        atomic_fetch_add(calls, (long)n);
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] + 1;
    return 0;
}

/* x -> x * x mod 1000003, counting records seen. */
static int square_mod(const void *in, void *out, size_t n, void *arg)
{
    atomic_long *seen = arg;
    if (seen)
        atomic_fetch_add(seen, (long)n);
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (a[i] * a[i]) % 1000003;
    return 0;
}

static int64_t square_mod_sum(int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (i * i) % 1000003;
    return s;
}

/* ---- pipelining -------------------------------------------------------------- */

/* Ten maps read their input once and write their output once, block by
 * block: each map sees every record exactly once, and the peak of memory
 * stays far below one materialized copy. */
static void test_exec_pipeline_reads_input_once(void **state)
{
    (void)state;
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator al = tu_allocator(&c);
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &al;
    o.threads = 2;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    int64_t n = 1000000;
    ember_ds *r = NULL, *cur = NULL;
    TU_OKM(ember_range(&r, ctx, 0, n, 1, 4, msg), msg);
    cur = r;
    atomic_long seen[10];
    for (int i = 0; i < 10; i++) {
        atomic_init(&seen[i], 0);
        ember_ds *next = NULL;
        TU_OKM(ember_map(&next, cur, NULL, add_one, &seen[i], 0 /* borrowed: counts */, msg), msg);
        ember_ds_free(&cur);
        cur = next;
    }
    atomic_store(&c.peak_bytes, atomic_load(&c.live_bytes));
    long long base = atomic_load(&c.live_bytes);
    int64_t sum = 0;
    TU_OKM(ember_sum(cur, &sum, msg), msg);
    assert_int_equal(sum, n * (n - 1) / 2 + 10 * n);
    for (int i = 0; i < 10; i++)
        assert_int_equal(atomic_load(&seen[i]), n);
    /* 8 MB of records went through; a materialized step would need 2 MB
     * per partition. */
    long long peak = atomic_load(&c.peak_bytes) - base;
    if (peak > 512 * 1024)
        fail_msg("peak memory %lld bytes: something was materialized", peak);
    ember_ds_free(&cur);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
}

static int keep_few(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] % 5000 == 0;
    return 0;
}

/* Fails on an empty block: user functions get blocks of records. */
static int map_nonempty(const void *in, void *out, size_t n, void *arg)
{
    atomic_long *calls = arg;
    atomic_fetch_add(calls, 1);
    if (n == 0)
        return 1;
    memcpy(out, in, n * 8);
    return 0;
}

static int filter_nonempty(const void *in, unsigned char *keep, size_t n,
                           void *arg)
{
    (void)in;
    (void)arg;
    if (n == 0)
        return 1;
    memset(keep, 1, n);
    return 0;
}

static int flat_nonempty(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    return n == 0 ? 1 : ember_emit(em, in, n);
}

/* A filter that empties blocks does not hand empty blocks downstream. */
static void test_exec_no_empty_blocks_after_filter(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.block_bytes = 1024; /* 128 records: most blocks lose every record */
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *f = NULL, *m = NULL, *g = NULL, *fm = NULL;
    atomic_long calls = 0;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 4, msg), msg);
    TU_OKM(ember_filter(&f, r, keep_few, NULL, 0, msg), msg);
    TU_OKM(ember_map(&m, f, NULL, map_nonempty, &calls, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_filter(&g, m, filter_nonempty, NULL, 0, msg), msg);
    TU_OKM(ember_flat_map(&fm, g, NULL, flat_nonempty, NULL, 0, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(fm, &sum, msg), msg);
    assert_int_equal(sum, 5000 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 +
                                  11 + 12 + 13 + 14 + 15 + 16 + 17 + 18 + 19));
    assert_int_equal(atomic_load(&calls), 20); /* one block per record kept */
    ember_ds *all[] = {r, f, m, g, fm};
    for (int i = 0; i < 5; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
}

/* ---- determinism ---------------------------------------------------------------- */

typedef struct {
    int64_t key;
    double v;
} kvd;

static int to_kvd(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    kvd *b = out;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = ember__hash64((uint64_t)a[i]);
        b[i].key = (int64_t)(h % 997);
        b[i].v = ((double)(h >> 11) * 0x1.0p-53 - 0.5) * pow(10.0, (double)(h % 13));
    }
    return 0;
}

static int keep_some(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const kvd *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i].key % 7 != 3;
    return 0;
}

static int split_some(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    const kvd *a = in;
    for (size_t i = 0; i < n; i++) {
        int copies = (int)(a[i].key % 3);
        for (int c = 0; c < copies; c++) {
            kvd r = {a[i].key, a[i].v / (c + 1)};
            if (ember_emit(em, &r, 1))
                return 1;
        }
    }
    return 0;
}

static int running_sum(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    const kvd *a = in;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i].v;
        kvd r = {a[i].key, s};
        if (ember_emit(em, &r, 1))
            return 1;
    }
    return 0;
}

typedef struct {
    unsigned char *bytes[6];
    size_t n[6];
    double sum;
} outputs;

/* A pipeline with every narrow step and three shuffles; all its results
 * as bytes. */
static void run_pipeline(ember_ctx *ctx, outputs *out)
{
    char msg[EMBER_MSG_SIZE];
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_ds *r = NULL, *m = NULL, *f = NULL, *s = NULL, *fm = NULL, *u = NULL,
             *mp = NULL, *red = NULL, *srt = NULL, *j = NULL, *z = NULL, *g = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 300000, 1, 23, msg), msg);
    TU_OKM(ember_map(&m, r, &kv, to_kvd, NULL, 0, msg), msg);
    TU_OKM(ember_filter(&f, m, keep_some, NULL, 0, msg), msg);
    TU_OKM(ember_sample(&s, f, 0.6, 42, msg), msg);
    TU_OKM(ember_flat_map(&fm, s, NULL, split_some, NULL, 0, msg), msg);
    TU_OKM(ember_union(&u, fm, s, msg), msg);
    TU_OKM(ember_map_partitions(&mp, u, NULL, running_sum, NULL, 0, msg), msg);
    TU_OKM(ember_zip(&z, u, mp, msg), msg);
    TU_OKM(ember_reduce_by_key(&red, u, NULL, NULL, 0, 11, msg), msg);
    TU_OKM(ember_sort_by_key(&srt, red, 1, 5, msg), msg);
    TU_OKM(ember_group_by_key(&g, s, 7, msg), msg);
    TU_OKM(ember_join(&j, red, srt, 3, msg), msg);
    ember_ds *results[6] = {mp, z, red, srt, g, j};
    for (int i = 0; i < 6; i++)
        out->bytes[i] = tu_collect(results[i], &out->n[i]);
    kvd total;
    TU_OKM(ember_sum(u, &total, msg), msg);
    out->sum = total.v;
    ember_ds *all[] = {r, m, f, s, fm, u, mp, red, srt, j, z, g};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ember_ds_free(&all[i]);
}

static void outputs_equal(const outputs *a, const outputs *b)
{
    for (int i = 0; i < 6; i++) {
        assert_int_equal(a->n[i], b->n[i]);
        assert_true(a->n[i] > 0);
        size_t size = i == 1 ? 32 : i == 5 ? 24 : 16;
        assert_memory_equal(a->bytes[i], b->bytes[i], a->n[i] * size);
    }
    assert_memory_equal(&a->sum, &b->sum, sizeof a->sum);
}

static void outputs_free(outputs *o)
{
    for (int i = 0; i < 6; i++)
        free(o->bytes[i]);
}

static void test_exec_results_same_at_1_2_4_threads(void **state)
{
    (void)state;
    outputs ref, got;
    ember_ctx *shared = tu_ctx(1);
    run_pipeline(shared, &ref);
    for (size_t k = 1; k < 3; k++) {
        TU_OK(ember_ctx_set_threads(shared, thread_counts[k]));
        run_pipeline(shared, &got);
        outputs_equal(&ref, &got);
        outputs_free(&got);
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        run_pipeline(ctx, &got);
        outputs_equal(&ref, &got);
        outputs_free(&got);
        ember_ctx_destroy(&ctx);
    }
    ember_ctx_destroy(&shared);
    outputs_free(&ref);
}

/* Block size is an executor detail: results do not depend on it. */
static void test_exec_results_same_for_any_block_size(void **state)
{
    (void)state;
    outputs ref, got;
    ember_ctx *ctx = tu_ctx(2);
    run_pipeline(ctx, &ref);
    ember_ctx_destroy(&ctx);
    size_t sizes[] = {64, 1000, 1 << 20};
    for (int i = 0; i < 3; i++) {
        ember_ctx_opts o;
        memset(&o, 0, sizeof o);
        o.threads = 2;
        o.block_bytes = sizes[i];
        ctx = tu_ctx_opts(&o);
        run_pipeline(ctx, &got);
        outputs_equal(&ref, &got);
        outputs_free(&got);
        ember_ctx_destroy(&ctx);
    }
    outputs_free(&ref);
}

/* ---- long lineage ------------------------------------------------------------------ */

/* Occurrences of sub in s. (Not strstr in a loop: sanitizers check the
 * whole haystack on every call, which is quadratic on 100,000 lines.) */
static size_t count_substr(const char *s, const char *sub)
{
    size_t n = 0, len = strlen(sub);
    for (; *s; s++)
        n += *s == sub[0] && strncmp(s, sub, len) == 0;
    return n;
}

static ember_ds *long_chain(ember_ctx *ctx, size_t maps, atomic_long *calls)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *cur = NULL;
    TU_OKM(ember_range(&cur, ctx, 0, 1000, 1, 4, msg), msg);
    for (size_t i = 0; i < maps; i++) {
        ember_ds *next = NULL;
        TU_OKM(ember_map(&next, cur, NULL, add_one, calls, 0 /* borrowed: counts */, msg), msg);
        ember_ds_free(&cur); /* the chain is held by its last node */
        cur = next;
    }
    return cur;
}

static void test_exec_long_lineage_100k_maps(void **state)
{
    (void)state;
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator al = tu_allocator(&c);
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &al;
    o.threads = 2;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    size_t maps = 100000;
    atomic_long calls = 0;
    ember_ds *last = long_chain(ctx, maps, &calls);
    assert_int_equal(ember_lineage_depth(last), maps);
    uint64_t n = 0;
    TU_OKM(ember_count(last, &n, msg), msg);
    assert_int_equal(n, 1000);
    int64_t sum = 0;
    TU_OKM(ember_sum(last, &sum, msg), msg);
    assert_int_equal(sum, 999 * 1000 / 2 + (int64_t)maps * 1000);
    assert_int_equal(atomic_load(&calls), (long)(2 * maps * 1000));

    char *lin = NULL;
    TU_OK(ember_lineage_string(last, &lin));
    assert_int_equal(count_substr(lin, "\n"), maps + 1);
    assert_int_equal(count_substr(lin, "map #"), maps);
    TU_MSG_HAS(lin, "range #1");
    ember_free(ctx, lin);
    char *dot = NULL;
    TU_OK(ember_lineage_dot(last, &dot));
    assert_memory_equal(dot, "digraph", 7);
    assert_int_equal(count_substr(dot, "->"), maps);
    assert_int_equal(count_substr(dot, "[label="), maps + 1);
    ember_free(ctx, dot);

    /* Freeing the last handle frees the whole chain, without recursion. */
    ember_ds_free(&last);
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    long live_after_free = atomic_load(&c.live);
    /* A second chain left for ctx_destroy. */
    last = long_chain(ctx, maps, NULL);
    assert_true(atomic_load(&c.live) > live_after_free + (long)maps);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
}

/* ---- storage levels ------------------------------------------------------------------ */

/* Removes what is under path (left by an earlier run that failed). */
static void empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
            empty_dir(sub);
            rmdir(sub);
        } else {
            unlink(sub);
        }
    }
    closedir(d);
}

/* An empty, writable directory at path. */
static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0)
        assert_true(access(path, W_OK) == 0);
    empty_dir(path);
}

/* Files left anywhere under path. */
/* Spilled blocks under path (its spill dirs' lock files are not blocks). */
static size_t files_under(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += files_under(sub);
        else
            n += strcmp(e->d_name, "lock") != 0;
    }
    closedir(d);
    return n;
}

static ember_ctx *budget_ctx(size_t budget, int threads, const char *scratch)
{
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.memory_budget = budget;
    o.threads = threads;
    o.scratch_dir = scratch;
    return tu_ctx_opts(&o);
}

/* MEMORY_ONLY larger than the budget: blocks are dropped and recomputed,
 * results stay right. */
static void test_exec_evicted_memory_only_recomputes(void **state)
{
    (void)state;
    int64_t n = 1000000;
    int64_t ref = square_mod_sum(n);
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = budget_ctx(1 << 20, thread_counts[k], NULL);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL;
        atomic_long seen = 0;
        TU_OKM(ember_range(&r, ctx, 0, n, 1, 16, msg), msg); /* 500 KB each */
        TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0 /* borrowed: counts */, msg), msg);
        TU_OKM(ember_cache(m, msg), msg);
        for (int round = 0; round < 3; round++) {
            int64_t sum = 0;
            TU_OKM(ember_sum(m, &sum, msg), msg);
            assert_int_equal(sum, ref);
            uint64_t cnt = 0;
            TU_OKM(ember_count(m, &cnt, msg), msg);
            assert_int_equal(cnt, (uint64_t)n);
        }
        ember_stats s;
        ember_ctx_stats(ctx, &s);
        assert_true(s.memory_used <= s.memory_budget);
        assert_true(s.evictions > 0 || s.recomputes > 0);
        assert_true(s.recomputes > 0);
        assert_true(atomic_load(&seen) > n); /* some partitions ran again */
        assert_true(ember_cached_partitions(m) <= 2);
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* MEMORY_AND_DISK larger than the budget spills; later actions read the
 * spilled blocks back instead of computing them again. */
static void test_exec_memory_and_disk_spills_and_reloads(void **state)
{
    (void)state;
    make_dir("scratch");
    int64_t n = 1000000;
    int64_t ref = square_mod_sum(n);
    ember_level levels[] = {EMBER_MEMORY_AND_DISK, EMBER_MEMORY_AND_DISK_SER};
    for (int l = 0; l < 2; l++)
        for (size_t k = 0; k < 3; k += 2) {
            ember_ctx *ctx = budget_ctx(1 << 20, thread_counts[k], "scratch");
            char msg[EMBER_MSG_SIZE];
            ember_ds *r = NULL, *m = NULL;
            atomic_long seen = 0;
            TU_OKM(ember_range(&r, ctx, 0, n, 1, 16, msg), msg);
            TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0 /* borrowed: counts */, msg), msg);
            TU_OKM(ember_persist(m, levels[l], msg), msg);
            int64_t sum = 0;
            TU_OKM(ember_sum(m, &sum, msg), msg);
            assert_int_equal(sum, ref);
            assert_int_equal(atomic_load(&seen), n);
            assert_int_equal(ember_cached_partitions(m), 16);
            ember_stats s;
            ember_ctx_stats(ctx, &s);
            if (levels[l] == EMBER_MEMORY_AND_DISK) {
                assert_true(s.spills > 0);
                assert_true(s.blocks_on_disk > 0);
            }
            assert_true(s.memory_used <= s.memory_budget);
            for (int round = 0; round < 2; round++) {
                TU_OKM(ember_sum(m, &sum, msg), msg);
                assert_int_equal(sum, ref);
            }
            assert_int_equal(atomic_load(&seen), n); /* never again */
            ember_ctx_stats(ctx, &s);
            if (levels[l] == EMBER_MEMORY_AND_DISK)
                assert_true(s.disk_reads > 0);
            assert_int_equal(s.recomputes, 0);
            assert_true(s.cache_hits >= 32);
            TU_OK(ember_unpersist(m));
            ember_ctx_stats(ctx, &s);
            assert_int_equal(s.memory_used, 0);
            assert_int_equal(s.blocks_in_memory, 0);
            assert_int_equal(s.blocks_on_disk, 0);
            assert_int_equal(ember_cached_partitions(m), 0);
            assert_int_equal(files_under("scratch"), 0);
            ember_ds_free(&m);
            ember_ds_free(&r);
            ember_ctx_destroy(&ctx);
        }
}

static void test_exec_disk_only(void **state)
{
    (void)state;
    make_dir("scratch");
    int64_t n = 200000;
    int64_t ref = square_mod_sum(n);
    ember_ctx *ctx = budget_ctx(0, 2, "scratch");
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    atomic_long seen = 0;
    TU_OKM(ember_range(&r, ctx, 0, n, 1, 5, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_persist(m, EMBER_DISK_ONLY, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_int_equal(sum, ref);
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.blocks_on_disk, 5);
    assert_int_equal(s.blocks_in_memory, 0);
    assert_int_equal(s.memory_used, 0);
    assert_true(files_under("scratch") >= 5);
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_int_equal(sum, ref);
    assert_int_equal(atomic_load(&seen), n);
    ember_ctx_stats(ctx, &s);
    assert_true(s.disk_reads >= 5);
    assert_true(s.cache_hits >= 5);
    ember_ds_free(&m); /* freeing drops the files too */
    assert_int_equal(files_under("scratch"), 0);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* How a test damages a spill file, as a tmp cleaner, a full disk or a bad
 * sector would. */
enum { LOSE_REMOVE, LOSE_TRUNCATE, LOSE_FLIP };

/* Damages every spilled block under path; returns how many. */
static size_t damage_spills(const char *path, int how)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, "lock"))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        assert_int_equal(stat(sub, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            n += damage_spills(sub, how);
            continue;
        }
        if (how == LOSE_REMOVE)
            assert_int_equal(unlink(sub), 0);
        else if (how == LOSE_TRUNCATE)
            assert_int_equal(truncate(sub, st.st_size / 2), 0);
        else
            tu_flip(sub, (size_t)st.st_size / 2, 0x10);
        n++;
    }
    closedir(d);
    return n;
}

/* A persisted dataset's spill files removed, truncated or with a byte
 * flipped between two actions: the lost blocks are dropped and their
 * partitions computed again from lineage (as an evicted MEMORY_ONLY
 * block is), and the result is the first action's. A removed file used to
 * fail every later action with EIO, a flipped byte in a raw block gave a
 * wrong sum with status 0. */
static void test_exec_lost_spill_files_recomputed(void **state)
{
    (void)state;
    int64_t n = 1000000;
    int64_t ref = square_mod_sum(n);
    ember_level levels[] = {EMBER_MEMORY_AND_DISK, EMBER_MEMORY_AND_DISK_SER,
                            EMBER_DISK_ONLY};
    for (int l = 0; l < 3; l++)
        for (int how = LOSE_REMOVE; how <= LOSE_FLIP; how++) {
            make_dir("scratch");
            ember_ctx *ctx = budget_ctx(64 * 1024, 2, "scratch");
            char msg[EMBER_MSG_SIZE];
            ember_ds *r = NULL, *m = NULL;
            atomic_long seen = 0;
            TU_OKM(ember_range(&r, ctx, 0, n, 1, 16, msg), msg);
            TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0, msg), msg);
            TU_OKM(ember_persist(m, levels[l], msg), msg);
            int64_t sum = 0;
            TU_OKM(ember_sum(m, &sum, msg), msg);
            assert_int_equal(sum, ref);
            ember_stats s;
            ember_ctx_stats(ctx, &s);
            size_t on_disk = s.blocks_on_disk;
            assert_true(on_disk >= 8);
            assert_int_equal(damage_spills("scratch", how), on_disk);

            sum = 0;
            int rc = ember_sum(m, &sum, msg);
            if (rc || sum != ref)
                fail_msg("%s, damage %d: %s, sum %lld (%s), expected %lld",
                         ember_level_name(levels[l]), how, ember_strerror(rc),
                         (long long)sum, msg, (long long)ref);
            assert_int_equal(atomic_load(&seen), n + (int64_t)on_disk * (n / 16));
            ember_ctx_stats(ctx, &s);
            assert_int_equal(s.recomputes, on_disk);
            /* stored anew: the next action reads them, computes nothing */
            assert_int_equal(ember_cached_partitions(m), 16);
            TU_OKM(ember_sum(m, &sum, msg), msg);
            assert_int_equal(sum, ref);
            assert_int_equal(atomic_load(&seen), n + (int64_t)on_disk * (n / 16));
            ember_ds_free(&m);
            ember_ds_free(&r);
            ember_ctx_destroy(&ctx);
            assert_int_equal(files_under("scratch"), 0);
        }
}

/* A local checkpoint's blocks are the only copy: a damaged spill file
 * fails every action with EMBER_ECORRUPT naming it, never a result. */
static void test_exec_lost_spill_of_local_checkpoint(void **state)
{
    (void)state;
    make_dir("scratch");
    ember_ctx *ctx = budget_ctx(0, 2, "scratch");
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    atomic_long seen = 0;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0, msg), msg);
    ember_ds_free(&r);
    TU_OKM(ember_persist(m, EMBER_DISK_ONLY, msg), msg);
    TU_OKM(ember_local_checkpoint(m, msg), msg);
    assert_int_equal(damage_spills("scratch", LOSE_FLIP), 4);
    for (int round = 0; round < 2; round++) {
        int64_t sum = 0;
        assert_int_equal(ember_sum(m, &sum, msg), EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "scratch/ember-");
        TU_MSG_HAS(msg, ".blk");
        TU_MSG_HAS(msg, "checksum");
    }
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
    assert_int_equal(files_under("scratch"), 0);
}

/* A dataset checkpointed to a file and persisted: its spilled blocks
 * damaged, it is read again from the file, the same records (the block
 * used to be taken for the only copy, and every action failed). */
static void test_exec_lost_spill_of_file_checkpoint(void **state)
{
    (void)state;
    make_dir("scratch");
    ember_ctx *ctx = budget_ctx(0, 2, "scratch");
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_ctx_set_checkpoint_dir(ctx, "ck-file", msg), msg);
    ember_ds *r = NULL, *m = NULL;
    atomic_long seen = 0;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0, msg), msg);
    ember_ds_free(&r);
    TU_OKM(ember_persist(m, EMBER_DISK_ONLY, msg), msg);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    int64_t first = 0, again = 0;
    TU_OKM(ember_sum(m, &first, msg), msg);
    assert_int_equal(damage_spills("scratch", LOSE_FLIP), 4);
    TU_OKM(ember_sum(m, &again, msg), msg);
    assert_int_equal(again, first);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

/* A shuffle's spilled outputs removed: the next action runs the shuffle
 * again (its inputs' lineage is intact), with the same records. */
static void test_exec_lost_shuffle_outputs_rerun(void **state)
{
    (void)state;
    make_dir("scratch");
    ember_ctx *ctx = budget_ctx(64 * 1024, 2, "scratch");
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *p = NULL;
    atomic_long seen = 0;
    TU_OKM(ember_range(&r, ctx, 0, 200000, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0, msg), msg);
    TU_OKM(ember_repartition(&p, m, 6, msg), msg);
    size_t n0 = 0, n1 = 0;
    int64_t *first = NULL, *again = NULL;
    TU_OKM(ember_collect_alloc(p, (void **)&first, &n0, msg), msg);
    assert_true(damage_spills("scratch", LOSE_REMOVE) > 0);
    TU_OKM(ember_collect_alloc(p, (void **)&again, &n1, msg), msg);
    assert_int_equal(n0, n1);
    assert_memory_equal(first, again, n0 * sizeof *first);
    assert_int_equal(atomic_load(&seen), 2 * 200000);
    ember_free(ctx, first);
    ember_free(ctx, again);
    ember_ds_free(&p);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    assert_int_equal(files_under("scratch"), 0);
}

static int prefix(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i];
        if (ember_emit(em, &s, 1))
            return 1;
    }
    return 0;
}

static int keep_odd(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] & 1;
    return 0;
}

/* A cached map of a source takes exactly the room of its records, made
 * once: its blocks were grown block by block (reallocated, and copied,
 * about once over, and up to twice the room). Read back, they are the
 * records. */
static void test_exec_cached_map_blocks_exact(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter cnt;
    tu_counter_reset(&cnt, 0);
    ember_allocator al = tu_allocator(&cnt);
    ember_ctx_opts o = {.threads = 2, .allocator = &al, .block_bytes = 4096};
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember_ds *r = NULL, *m = NULL, *m2 = NULL;
    const size_t N = 100000; /* 3 partitions of 33,334 or 33,333 records */
    TU_OKM(ember_range(&r, ctx, 0, (int64_t)N, 1, 3, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_map(&m2, m, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(m2, msg), msg);
    uint64_t n = 0;
    long long before = atomic_load(&cnt.live_bytes);
    TU_OKM(ember_count(m2, &n, msg), msg);
    long long held = atomic_load(&cnt.live_bytes) - before;
    assert_int_equal(n, N);
    assert_true(held >= (long long)(N * 8));
    assert_true(held < (long long)(N * 8) + 16384);
    size_t got_n = 0;
    int64_t *got = NULL;
    TU_OKM(ember_collect_alloc(m2, (void **)&got, &got_n, msg), msg);
    assert_int_equal(got_n, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(got[i], (int64_t)i + 2);
    ember_free(ctx, got);
    ember_ds_free(&m2);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* The blocks of a dataset that is let go are kept for the next capture
 * of the same size (a loop caching a new dataset every iteration got fresh
 * pages each time), inside the budget's free part: never a reason to evict
 * a block, and all given back with the context. */
static void test_exec_freed_blocks_reused(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter cnt;
    tu_counter_reset(&cnt, 0);
    ember_allocator al = tu_allocator(&cnt);
    ember_ctx_opts o = {.threads = 2, .allocator = &al, .memory_budget = 2 << 20};
    ember_ctx *ctx = tu_ctx_opts(&o);
    const size_t N = 200000; /* 4 blocks of 400,000 bytes: 1.6 MB */
    ember_ds *r = NULL, *a = NULL, *b = NULL, *c = NULL;
    TU_OKM(ember_range(&r, ctx, 0, (int64_t)N, 1, 4, msg), msg);
    TU_OKM(ember_map(&a, r, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(a, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(a, &n, msg), msg);
    long long with_a = atomic_load(&cnt.live_bytes);
    ember_ds_free(&a); /* its blocks become spares: still held */
    assert_true(atomic_load(&cnt.live_bytes) > with_a - 200000);

    TU_OKM(ember_map(&b, r, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(b, msg), msg);
    long long before = atomic_load(&cnt.live_bytes);
    TU_OKM(ember_count(b, &n, msg), msg);
    assert_true(atomic_load(&cnt.live_bytes) - before < 200000); /* reused */
    assert_int_equal(ember_cached_partitions(b), 4);
    size_t got_n = 0;
    int64_t *got = NULL;
    TU_OKM(ember_collect_alloc(b, (void **)&got, &got_n, msg), msg);
    assert_int_equal(got_n, N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(got[i], (int64_t)i + 1);
    ember_free(ctx, got);
    ember_ds_free(&b);

    /* blocks of another size: the spares make way, nothing is evicted */
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    uint64_t evictions = st.evictions;
    ember_ds *r5 = NULL;
    TU_OKM(ember_range(&r5, ctx, 0, (int64_t)N, 1, 5, msg), msg);
    TU_OKM(ember_map(&c, r5, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(c, msg), msg);
    TU_OKM(ember_count(c, &n, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(ember_cached_partitions(c), 5);
    assert_int_equal(st.evictions, evictions);
    assert_true(atomic_load(&cnt.live_bytes) < (long long)(2 << 20) + 200000);
    ember_ds_free(&c);
    ember_ds_free(&r5);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&cnt.live), 0);
    assert_int_equal(atomic_load(&cnt.live_bytes), 0);
}

/* Every level gives the results of no persistence at all, computing and
 * reading back, with room and without. */
static void test_exec_every_level_same_results(void **state)
{
    (void)state;
    make_dir("scratch");
    ember_level levels[] = {EMBER_NONE, EMBER_MEMORY_ONLY, EMBER_MEMORY_AND_DISK,
                            EMBER_DISK_ONLY, EMBER_MEMORY_ONLY_SER,
                            EMBER_MEMORY_AND_DISK_SER};
    size_t budgets[] = {0, 256 * 1024};
    int64_t *ref = NULL;
    size_t nref = 0;
    for (int b = 0; b < 2; b++)
        for (int l = 0; l < 6; l++) {
            ember_ctx *ctx = budget_ctx(budgets[b], 2, "scratch");
            char msg[EMBER_MSG_SIZE];
            ember_ds *r = NULL, *m = NULL, *mp = NULL, *f = NULL;
            TU_OKM(ember_range(&r, ctx, 0, 300000, 1, 9, msg), msg);
            TU_OKM(ember_map(&m, r, NULL, square_mod, NULL, 0, msg), msg);
            TU_OKM(ember_map_partitions(&mp, m, NULL, prefix, NULL, 0, msg), msg);
            TU_OKM(ember_persist(mp, levels[l], msg), msg);
            /* a persisted map writes its blocks into the capture itself */
            TU_OKM(ember_persist(m, levels[l], msg), msg);
            TU_OKM(ember_filter(&f, mp, keep_odd, NULL, 0, msg), msg);
            for (int round = 0; round < 2; round++) {
                size_t n;
                int64_t *got = tu_collect(f, &n);
                if (!ref) {
                    ref = got;
                    nref = n;
                    continue;
                }
                assert_int_equal(n, nref);
                assert_memory_equal(got, ref, n * 8);
                free(got);
            }
            ember_ds_free(&f);
            ember_ds_free(&mp);
            ember_ds_free(&m);
            ember_ds_free(&r);
            ember_ctx_destroy(&ctx);
        }
    free(ref);
}

/* A compressible 10^6 x i64 dataset at MEMORY_ONLY_SER holds less than half
 * of its 8 MB. */
/* Spares never pile up: blocks of sizes nobody asks for again (each
 * iteration's cached dataset a little larger, freed once the next one is
 * stored) are kept only up to the resident blocks or the blocks freed
 * with them, oldest dropped first. Before, they stayed while the budget
 * had room: here 40 generations, all of them. */
static void test_exec_spares_bounded(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter cnt;
    tu_counter_reset(&cnt, 0);
    ember_allocator al = tu_allocator(&cnt);
    ember_ctx_opts o = {.threads = 2, .allocator = &al, .memory_budget = 256 << 20};
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember_ds *old = NULL;
    uint64_t n = 0;
    long long peak = 0;
    for (int i = 0; i < 40; i++) {
        size_t N = 100000 + 1000 * (size_t)i; /* 4 blocks of about 200 KB */
        ember_ds *r = NULL, *x = NULL;
        TU_OKM(ember_range(&r, ctx, 0, (int64_t)N, 1, 4, msg), msg);
        TU_OKM(ember_map(&x, r, NULL, add_one, NULL, 0, msg), msg);
        TU_OKM(ember_cache(x, msg), msg);
        TU_OKM(ember_count(x, &n, msg), msg);
        ember_ds_free(&r);
        ember_ds_free(&old);
        old = x;
        long long live = atomic_load(&cnt.live_bytes);
        peak = live > peak ? live : peak;
    }
    /* the dataset held, the one freed as spares and what the context
     * holds besides: well under 40 generations of 0.9 MB */
    assert_true(peak < (long long)(4 << 20));
    ember_ds_free(&old);
    ember_ctx_destroy(&ctx);
}

static int key_mod(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *o = out;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = x[i] % 100000;
        o[2 * i + 1] = 1;
    }
    return 0;
}

static int every_third(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = x[i] % 3 == 0;
    return 0;
}

/* A stored block holds its records' bytes, no more: a cached filter's
 * blocks grow by doubling, and a reduce's are folded in place. Each of 4 input
 * partitions holds every key once (nothing to combine map-side), so each
 * output partition gathers 4 records a key and folds them into one: its
 * block used to keep the gathered allocation, 6.4 MB in all behind 1.6 MB
 * of records, unseen by the budget. */
static void test_exec_stored_blocks_fit(void **state)
{
    (void)state;
    for (int reduce = 0; reduce < 2; reduce++) {
        char msg[EMBER_MSG_SIZE];
        tu_counter cnt;
        tu_counter_reset(&cnt, 0);
        ember_allocator al = tu_allocator(&cnt);
        ember_ctx_opts o = {.threads = 2, .allocator = &al};
        ember_ctx *ctx = tu_ctx_opts(&o);
        ember_type pt = ember_type_pair(EMBER_I64, EMBER_I64);
        ember_ds *r = NULL, *p = NULL, *s = NULL;
        uint64_t n = 0;
        if (reduce) {
            TU_OKM(ember_range(&r, ctx, 0, 400000, 1, 4, msg), msg);
            TU_OKM(ember_map(&p, r, &pt, key_mod, NULL, 0, msg), msg);
            TU_OKM(ember_reduce_by_key(&s, p, NULL, NULL, 0, 2, msg), msg);
        } else { /* 2^17 + 1 records kept a partition, grown to room for 2^18 */
            TU_OKM(ember_range(&r, ctx, 0, 4 * 3 * 131073, 1, 4, msg), msg);
            TU_OKM(ember_filter(&s, r, every_third, NULL, 0, msg), msg);
            TU_OKM(ember_cache(s, msg), msg);
        }
        TU_OKM(ember_count(s, &n, msg), msg);
        assert_int_equal(n, reduce ? 100000 : 4 * 131073);
        ember_stats st;
        ember_ctx_stats(ctx, &st);
        assert_int_equal(st.memory_used, n * (reduce ? 16 : 8));
        assert_true(atomic_load(&cnt.live_bytes) < (long long)st.memory_used + (1 << 20));
        ember_ds_free(&s);
        ember_ds_free(&p);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

static void test_exec_ser_level_compresses(void **state)
{
    (void)state;
    int64_t n = 1000000;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *raw = NULL;
    atomic_long seen = 0;
    TU_OKM(ember_range(&r, ctx, 0, n, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, add_one, &seen, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_persist(m, EMBER_MEMORY_ONLY_SER, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(m, &sum, msg), msg);
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.blocks_in_memory, 4);
    if (s.memory_used >= (size_t)n * 8 / 2)
        fail_msg("MEMORY_ONLY_SER holds %zu bytes of %lld", s.memory_used,
                 (long long)n * 8);
    assert_true(s.memory_used > 0);
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_int_equal(sum, n * (n + 1) / 2);
    assert_int_equal(atomic_load(&seen), n);
    /* The same records raw take all of their bytes. */
    TU_OKM(ember_map(&raw, r, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(raw, msg), msg);
    TU_OKM(ember_sum(raw, &sum, msg), msg);
    ember_stats s2;
    ember_ctx_stats(ctx, &s2);
    assert_true(s2.memory_used - s.memory_used >= (size_t)n * 8);
    ember_ds_free(&raw);
    ember_ds_free(&m);
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.memory_used, 0);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* A cached dataset read twice in one action (union(a, a), zip(a, a)). */
static void test_exec_cached_dataset_used_twice(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL, *u = NULL, *z = NULL;
        atomic_long seen = 0;
        TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 6, msg), msg);
        TU_OKM(ember_map(&m, r, NULL, square_mod, &seen, 0 /* borrowed: counts */, msg), msg);
        TU_OKM(ember_cache(m, msg), msg);
        TU_OKM(ember_union(&u, m, m, msg), msg);
        TU_OKM(ember_zip(&z, m, m, msg), msg);
        int64_t su = 0, sz[2] = {0, 0}, ref = square_mod_sum(100000);
        TU_OKM(ember_sum(u, &su, msg), msg);
        assert_int_equal(su, 2 * ref);
        TU_OKM(ember_sum(z, sz, msg), msg);
        assert_int_equal(sz[0], ref);
        assert_int_equal(sz[1], ref);
        long after = atomic_load(&seen);
        TU_OKM(ember_sum(z, sz, msg), msg);
        TU_OKM(ember_sum(u, &su, msg), msg);
        assert_int_equal(atomic_load(&seen), after);
        assert_int_equal(ember_cached_partitions(m), 6);
        ember_ds_free(&z);
        ember_ds_free(&u);
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- errors ------------------------------------------------------------------------------ */

static int fail_3_and_7(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    size_t p = ember_emitter_partition(em);
    if (p == 3 || p == 7)
        return (int)p;
    return ember_emit(em, in, n);
}

/* When several partitions fail, the lowest one's error is reported, at
 * every team size, every time. */
static void test_exec_lowest_failing_partition_reported(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL;
        TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 10, msg), msg);
        TU_OKM(ember_map_partitions(&m, r, NULL, fail_3_and_7, NULL, 0, msg), msg);
        for (int rep = 0; rep < 5; rep++) {
            uint64_t n;
            assert_int_equal(ember_count(m, &n, msg), EMBER_EUSER);
            TU_MSG_HAS(msg, "partition 3");
            TU_MSG_HAS(msg, "returned 3");
        }
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- allocation failures ------------------------------------------------------------------- */

static int to_pair(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t (*b)[2] = out;
    for (size_t i = 0; i < n; i++) {
        b[i][0] = a[i] % 13;
        b[i][1] = a[i];
    }
    return 0;
}

/* The whole scenario; returns the first failing status (0 when all ran)
 * and checks results whenever it succeeds. */
static int scenario(const ember_allocator *al, int threads)
{
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = al;
    o.threads = threads;
    ember_ctx *ctx = NULL;
    ember_ds *r = NULL, *m = NULL, *p = NULL, *red = NULL;
    void *all = NULL;
    char msg[EMBER_MSG_SIZE] = "";
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (!rc)
        rc = ember_range(&r, ctx, 0, 20000, 1, 4, msg);
    if (!rc)
        rc = ember_map(&m, r, NULL, square_mod, NULL, 0, msg);
    if (!rc)
        rc = ember_cache(m, msg);
    size_t n = 0;
    if (!rc)
        rc = ember_collect_alloc(m, &all, &n, msg);
    if (!rc) {
        assert_int_equal(n, 20000);
        const int64_t *v = all;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(v[i], ((int64_t)i * (int64_t)i) % 1000003);
    }
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    if (!rc)
        rc = ember_map(&p, m, &kv, to_pair, NULL, 0, msg);
    if (!rc)
        rc = ember_reduce_by_key(&red, p, NULL, NULL, 0, 3, msg);
    int64_t out[13][2];
    size_t got = 0;
    if (!rc)
        rc = ember_collect(red, out, 13, &got, msg);
    if (!rc) {
        assert_int_equal(got, 13);
        int64_t total = 0;
        for (size_t i = 0; i < got; i++)
            total += out[i][1];
        assert_int_equal(total, square_mod_sum(20000));
    }
    if (rc) {
        assert_true(rc < 0);
        assert_true(msg[0] != '\0'); /* every failure says what */
    }
    if (ctx)
        ember_free(ctx, all);
    ember_ds_free(&red);
    ember_ds_free(&p);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    return rc;
}

static void run_alloc_failures(int threads)
{
    tu_counter c;
    ember_allocator al = tu_allocator(&c);
    long failed = 0, absorbed = 0, fail = 1;
    for (;; fail++) {
        assert_true(fail < 100000);
        tu_counter_reset(&c, fail);
        int rc = scenario(&al, threads);
        if (atomic_load(&c.live) != 0)
            fail_msg("failing allocation %ld (threads %d, status %d): %ld "
                     "blocks leaked", fail, threads, rc, atomic_load(&c.live));
        if (atomic_load(&c.injected) == 0) {
            assert_int_equal(rc, EMBER_OK); /* no failure: it all ran */
            break;
        }
        if (rc == EMBER_OK)
            absorbed++; /* e.g. a cache block not stored: computed again */
        else
            failed++;
    }
    assert_true(failed > 10);
    print_message("threads %d: %ld allocations; %ld failures reported, %ld "
                  "absorbed\n", threads, fail - 1, failed, absorbed);
}

static int to_pair_id(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t (*b)[2] = out;
    for (size_t i = 0; i < n; i++) {
        b[i][0] = a[i];
        b[i][1] = a[i] * 7;
    }
    return 0;
}

static int fan2(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    const int64_t (*a)[2] = in;
    for (size_t i = 0; i < n; i++)
        for (int64_t c = 0; c < a[i][1] % 3; c++)
            if (ember_emit(em, a[i], 1))
                return 1;
    return 0;
}

static int keep_even_value(const void *in, unsigned char *keep, size_t n,
                           void *arg)
{
    (void)arg;
    const int64_t (*a)[2] = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = (a[i][1] & 1) == 0;
    return 0;
}

static int count_seq(void *acc, const void *in, size_t n, void *arg)
{
    (void)in;
    (void)arg;
    *(int64_t *)acc += (int64_t)n;
    return 0;
}

static int count_comb(void *acc, const void *in, size_t n, void *arg)
{
    (void)n;
    (void)arg;
    *(int64_t *)acc += *(const int64_t *)in;
    return 0;
}

/* Every other kind of step, with blocks compressed and spilled: each
 * action's status, 0 when all ran; results are checked when they do. */
static int wide_scenario(const ember_allocator *al, const char *scratch)
{
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = al;
    o.threads = 1; /* 2 threads: test_exec_allocation_failures_two_threads */
    o.memory_budget = 16384;
    o.block_bytes = 512;
    o.scratch_dir = scratch;
    ember_ctx *ctx = NULL;
    enum { NDS = 14 };
    ember_ds *d[NDS] = {NULL};
    ember_bcast *bc = NULL;
    char msg[EMBER_MSG_SIZE] = "";
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (!rc)
        rc = ember_range(&d[0], ctx, 0, 600, 1, 5, msg);
    if (!rc)
        rc = ember_map(&d[1], d[0], &kv, to_pair_id, NULL, 0, msg);
    if (!rc)
        rc = ember_persist(d[1], EMBER_MEMORY_AND_DISK_SER, msg);
    if (!rc)
        rc = ember_flat_map(&d[2], d[1], NULL, fan2, NULL, 0, msg);
    if (!rc)
        rc = ember_filter(&d[3], d[1], keep_even_value, NULL, 0, msg);
    if (!rc)
        rc = ember_zip(&d[4], d[1], d[1], msg);
    if (!rc)
        rc = ember_union(&d[5], d[2], d[3], msg);
    if (!rc)
        rc = ember_sample(&d[6], d[5], 0.5, 3, msg);
    if (!rc)
        rc = ember_sort_by_key(&d[7], d[6], 1, 4, msg);
    if (!rc)
        rc = ember_group_by_key(&d[8], d[3], 3, msg);
    if (!rc)
        rc = ember_join(&d[9], d[8], d[1], 2, msg);
    if (!rc)
        rc = ember_distinct(&d[10], d[5], 3, msg);
    if (!rc)
        rc = ember_persist(d[10], EMBER_MEMORY_ONLY_SER, msg);
    if (!rc)
        rc = ember_repartition(&d[11], d[10], 7, msg);
    if (!rc)
        rc = ember_partition_by(&d[12], d[3], EMBER_RANGE, 4, msg);
    if (!rc)
        rc = ember_broadcast(&bc, d[7], msg);
    uint64_t n = 0;
    if (!rc)
        rc = ember_count(d[9], &n, msg);
    if (!rc)
        assert_int_equal(n, 300); /* even keys: one match each */
    if (!rc)
        rc = ember_count(d[11], &n, msg);
    uint64_t distinct = n;
    if (!rc)
        rc = ember_count(d[10], &n, msg); /* again, from its blocks */
    if (!rc)
        assert_int_equal(n, distinct);
    int64_t pairs = 0, zero = 0;
    if (!rc)
        rc = ember_aggregate(d[4], &zero, sizeof zero, count_seq, count_comb,
                             NULL, &pairs, msg);
    if (!rc)
        assert_int_equal(pairs, 600);
    int64_t top[4][2];
    size_t got = 0;
    if (!rc)
        rc = ember_take(d[12], 4, top, &got, msg);
    if (!rc)
        assert_int_equal(got, 4);
    char *lin = NULL;
    if (!rc)
        rc = ember_lineage_string(d[9], &lin);
    if (!rc)
        ember_free(ctx, lin);
    if (!rc) {
        ember_stats st;
        ember_ctx_stats(ctx, &st);
        assert_true(st.spills > 0); /* the spill paths ran too */
    }
    if (rc) {
        assert_true(rc < 0);
        assert_true(msg[0] != '\0' || rc == EMBER_ENOMEM);
    }
    ember_bcast_free(&bc);
    for (int i = NDS - 1; i >= 0; i--)
        ember_ds_free(&d[i]);
    ember_ctx_destroy(&ctx);
    return rc;
}

/* Allocation failure N = 1, 2, ... through every kind of step, the store
 * compressing and spilling: a clean status and no leak on every path, and
 * the spill directory left empty. */
static void test_exec_allocation_failures_every_step(void **state)
{
    (void)state;
    make_dir("scratch");
    tu_counter c;
    ember_allocator al = tu_allocator(&c);
    long failed = 0, absorbed = 0, fail = 1;
    for (;; fail++) {
        assert_true(fail < 100000);
        tu_counter_reset(&c, fail);
        int rc = wide_scenario(&al, "scratch");
        if (atomic_load(&c.live) != 0)
            fail_msg("failing allocation %ld (status %d): %ld blocks leaked",
                     fail, rc, atomic_load(&c.live));
        if (files_under("scratch") != 0)
            fail_msg("failing allocation %ld (status %d): spill files left",
                     fail, rc);
        if (atomic_load(&c.injected) == 0) {
            assert_int_equal(rc, EMBER_OK);
            break;
        }
        if (rc == EMBER_OK)
            absorbed++;
        else
            failed++;
    }
    print_message("%ld allocations; %ld failures reported, %ld absorbed\n",
                  fail - 1, failed, absorbed);
}

static void test_exec_allocation_failures_single_thread(void **state)
{
    (void)state;
    run_alloc_failures(1);
}

static void test_exec_allocation_failures_two_threads(void **state)
{
    (void)state;
    run_alloc_failures(2);
}

/* A failed ember_emit fails the task even when the function goes on and
 * returns 0 (a map_partitions that ignored it used to lose its records
 * silently), and the message says what failed. */
static int emit_null(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)in;
    (void)arg;
    (void)ember_emit(em, NULL, n ? 3 : 0); /* ignored, as a careless user would */
    return 0;
}

static void test_exec_failed_emit_fails_the_task(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *f = NULL;
    ember_type t = ember_type_scalar(EMBER_I64);
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 4, msg), msg);
    TU_OKM(ember_map_partitions(&m, r, &t, emit_null, NULL, 0, msg), msg);
    uint64_t n = 0;
    assert_int_equal(ember_count(m, &n, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "ember_emit failed: NULL records");
    TU_OKM(ember_flat_map(&f, r, &t, emit_null, NULL, 0, msg), msg);
    assert_int_equal(ember_count(f, &n, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "flat_map function");
    ember_ds_free(&f);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_pipeline_reads_input_once),
        cmocka_unit_test(test_exec_failed_emit_fails_the_task),
        cmocka_unit_test(test_exec_no_empty_blocks_after_filter),
        cmocka_unit_test(test_exec_results_same_at_1_2_4_threads),
        cmocka_unit_test(test_exec_results_same_for_any_block_size),
        cmocka_unit_test(test_exec_long_lineage_100k_maps),
        cmocka_unit_test(test_exec_evicted_memory_only_recomputes),
        cmocka_unit_test(test_exec_memory_and_disk_spills_and_reloads),
        cmocka_unit_test(test_exec_disk_only),
        cmocka_unit_test(test_exec_lost_spill_files_recomputed),
        cmocka_unit_test(test_exec_lost_spill_of_local_checkpoint),
        cmocka_unit_test(test_exec_lost_spill_of_file_checkpoint),
        cmocka_unit_test(test_exec_lost_shuffle_outputs_rerun),
        cmocka_unit_test(test_exec_every_level_same_results),
        cmocka_unit_test(test_exec_cached_map_blocks_exact),
        cmocka_unit_test(test_exec_freed_blocks_reused),
        cmocka_unit_test(test_exec_spares_bounded),
        cmocka_unit_test(test_exec_stored_blocks_fit),
        cmocka_unit_test(test_exec_ser_level_compresses),
        cmocka_unit_test(test_exec_cached_dataset_used_twice),
        cmocka_unit_test(test_exec_lowest_failing_partition_reported),
        cmocka_unit_test(test_exec_allocation_failures_single_thread),
        cmocka_unit_test(test_exec_allocation_failures_two_threads),
        cmocka_unit_test(test_exec_allocation_failures_every_step),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
