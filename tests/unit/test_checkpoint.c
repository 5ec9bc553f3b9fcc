/* test_checkpoint.c: dataset checkpoints through the public API
 * (src/checkpoint.c): ember_checkpoint, ember_checkpoint_eager,
 * ember_local_checkpoint, ember_is_checkpointed, ember_checkpoint_path and
 * ember_read_checkpoint.
 *
 * The map functions count their calls and records with atomics (they run on
 * the team), so "computed once" is checked, not assumed: a lazy checkpoint
 * costs exactly what the same action costs without one, and nothing after
 * it calls the function again. Results are compared with references
 * computed here in plain C. Damaged files are made by flipping a byte of a
 * known pattern found in the file.
 *
 * Every case works in CKDIR (emptied first) under its own working
 * directory.
 */
#include "internal.h"
#include "testutil.h"

#include <hdf5.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKDIR "ck"

/* ---- files --------------------------------------------------------------- */

static void fresh_dir(const char *dir)
{
    tu_rm_rf(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

/* Files in dir whose names end with suffix. */
static size_t count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, ls = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        n += l >= ls && strcmp(de->d_name + l - ls, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* Damages the only occurrence of needle in the file. */
static void corrupt_at(const char *path, const void *needle, size_t len)
{
    tu_flip(path, tu_find_once(path, needle, len) + len / 2, 0x08);
}

/* ---- user functions ------------------------------------------------------ */

typedef struct {
    atomic_long calls;
    atomic_long records;
} counter;

static void counter_init(counter *c)
{
    atomic_store(&c->calls, 0);
    atomic_store(&c->records, 0);
}

static int64_t square_plus(int64_t x)
{
    return (int64_t)((uint64_t)x * (uint64_t)x + 7u);
}

static int square_fn(const void *in, void *out, size_t n, void *arg)
{
    counter *c = arg;
    atomic_fetch_add(&c->calls, 1);
    atomic_fetch_add(&c->records, (long)n);
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = square_plus(a[i]);
    return 0;
}

static int inc_fn(const void *in, void *out, size_t n, void *arg)
{
    counter *c = arg;
    if (c) {
        atomic_fetch_add(&c->calls, 1);
        atomic_fetch_add(&c->records, (long)n);
    }
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] + 1;
    return 0;
}

typedef struct {
    int64_t key;
    double value;
} kv;

static int to_pair(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    kv *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (kv){a[i], sqrt((double)a[i]) * 0.5 - 3.0};
    return 0;
}

/* Keeps [0, 150) and [600, ...): partitions 1 and 2 of 0..999 in 5 end up
 * empty, the others uneven. */
static int gappy(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] < 150 || a[i] >= 600;
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static ember_ctx *ckpt_ctx(int threads)
{
    fresh_dir(CKDIR);
    ember_ctx_opts o = {.threads = threads, .checkpoint_dir = CKDIR};
    return tu_ctx_opts(&o);
}

/* Two threads, a budget, and spills into a fresh "scratch". */
static ember_ctx *budget_ctx(size_t budget)
{
    fresh_dir("scratch");
    ember_ctx_opts o = {.threads = 2, .scratch_dir = "scratch", .memory_budget = budget};
    return tu_ctx_opts(&o);
}

static ember_ds *squares(ember_ctx *ctx, size_t n, size_t parts, counter *c)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, (int64_t)n, 1, parts, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, square_fn, c, 0 /* borrowed: counts into c */, msg), msg);
    ember_ds_free(&r); /* m keeps it alive */
    return m;
}

/* Collects an i64 dataset and compares it with f(0..n-1). */
static void expect_i64(ember_ds *ds, size_t n, int64_t (*f)(int64_t))
{
    size_t got = 0;
    int64_t *d = tu_collect(ds, &got);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++)
        if (d[i] != f((int64_t)i))
            fail_msg("record %zu: %lld, expected %lld", i, (long long)d[i],
                     (long long)f((int64_t)i));
    free(d);
}

static int64_t square_plus_1(int64_t x)
{
    return square_plus(x) + 1;
}

static int64_t square_plus_2(int64_t x)
{
    return square_plus(x) + 2;
}

static char *lineage(const ember_ds *ds)
{
    char *s = NULL;
    TU_OK(ember_lineage_string(ds, &s));
    assert_non_null(s);
    char *copy = strdup(s);
    ember_free(ember_ds_ctx(ds), s);
    return copy;
}

/* CKDIR/ds-<token>-<id>-<name>.h5: the name a checkpoint of ds gets, the
 * context's token checked to be 16 hex digits first. */
static void ckpt_name(char *want, size_t size, const ember_ds *ds,
                      const char *name)
{
    const char *tok = ember_ds_ctx(ds)->ckpt_token;
    assert_int_equal(strlen(tok), 16);
    assert_int_equal(strspn(tok, "0123456789abcdef"), 16);
    snprintf(want, size, CKDIR "/ds-%s-%llu-%s.h5", tok,
             (unsigned long long)ember_ds_id(ds), name);
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n + (s[-1] != '\n');
}

#define N_SQ 100000
#define P_SQ 8

/* ---- lazy checkpoints ---------------------------------------------------- */

static void test_checkpoint_lazy_written_once(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], want[256];
    ember_ctx *ctx = ckpt_ctx(4);

    /* the cost of one action without a checkpoint */
    counter c0, c1;
    counter_init(&c0);
    counter_init(&c1);
    ember_ds *plain = squares(ctx, N_SQ, P_SQ, &c0);
    expect_i64(plain, N_SQ, square_plus);
    long calls0 = atomic_load(&c0.calls);
    assert_int_equal(atomic_load(&c0.records), N_SQ);
    assert_true(calls0 >= P_SQ);

    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c1);
    TU_OK(ember_ds_set_name(m, "squares"));
    TU_OKM(ember_checkpoint(m, msg), msg);
    assert_string_equal(msg, "");
    assert_false(ember_is_checkpointed(m));
    assert_null(ember_checkpoint_path(m));
    char *s = lineage(m);
    TU_MSG_HAS(s, "[checkpoint pending]");
    free(s);
    assert_int_equal(ember_lineage_depth(m), 1);
    assert_int_equal(count_files(CKDIR), 0); /* lazy: nothing yet */
    assert_int_equal(atomic_load(&c1.calls), 0);

    expect_i64(m, N_SQ, square_plus); /* the action that writes it */
    assert_int_equal(atomic_load(&c1.calls), calls0);
    assert_int_equal(atomic_load(&c1.records), N_SQ);
    assert_true(ember_is_checkpointed(m));
    const char *path = ember_checkpoint_path(m);
    assert_non_null(path);
    ckpt_name(want, sizeof want, m, "squares");
    assert_string_equal(path, want);
    assert_true(tu_exists(path));
    assert_int_equal(count_files(CKDIR), 1);
    assert_int_equal(count_suffix(CKDIR, ".tmp"), 0);

    /* the file is now the root of the lineage */
    s = lineage(m);
    snprintf(want, sizeof want, "[checkpoint: %s]", path);
    TU_MSG_HAS(s, want);
    assert_null(strstr(s, "range"));
    assert_int_equal(lines(s), 1);
    free(s);
    assert_int_equal(ember_lineage_depth(m), 0);

    ember_ds *child = NULL;
    TU_OKM(ember_map(&child, m, NULL, inc_fn, NULL, 0, msg), msg);
    s = lineage(child);
    assert_int_equal(lines(s), 2);
    char *second = strchr(s, '\n') + 1;
    TU_MSG_HAS(second, want);
    free(s);
    assert_int_equal(ember_lineage_depth(child), 1);

    /* later actions read the file: the map function is not called */
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(n, N_SQ);
    expect_i64(child, N_SQ, square_plus_1);
    expect_i64(m, N_SQ, square_plus);
    int64_t sum = 0, want_sum = 0;
    for (int64_t i = 0; i < N_SQ; i++)
        want_sum = (int64_t)((uint64_t)want_sum + (uint64_t)square_plus(i));
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_true(sum == want_sum);
    assert_int_equal(atomic_load(&c1.calls), calls0);
    assert_int_equal(atomic_load(&c1.records), N_SQ);

    /* marking again is a no-op */
    TU_OKM(ember_checkpoint(m, msg), msg);
    assert_string_equal(ember_checkpoint_path(m), path);
    assert_int_equal(count_files(CKDIR), 1);

    ember_ds_free(&child);
    ember_ds_free(&m);
    ember_ds_free(&plain);
    assert_null(m);
    ember_ctx_destroy(&ctx);
}

/* A persisted dataset whose partitions are all stored is written from the
 * store: the checkpoint costs no computation. */
static void test_checkpoint_from_cache(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(4);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c);
    TU_OKM(ember_cache(m, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(n, N_SQ);
    assert_int_equal(ember_cached_partitions(m), P_SQ);
    long calls = atomic_load(&c.calls);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    assert_int_equal(count_files(CKDIR), 0);

    TU_OKM(ember_checkpoint(m, msg), msg);
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(atomic_load(&c.calls), calls);
    assert_true(ember_is_checkpointed(m));
    assert_non_null(ember_checkpoint_path(m));
    assert_true(tu_exists(ember_checkpoint_path(m)));
    assert_int_equal(count_files(CKDIR), 1);
    expect_i64(m, N_SQ, square_plus);

    /* without the cache the records come from the file */
    TU_OK(ember_unpersist(m));
    assert_int_equal(ember_cached_partitions(m), 0);
    expect_i64(m, N_SQ, square_plus);
    assert_int_equal(atomic_load(&c.calls), calls);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

/* A marked dataset is written only once every partition has been
 * computed: take() runs a few partitions, count() the rest. */
static void test_checkpoint_waits_for_all_partitions(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, 16000, 16, &c);
    TU_OKM(ember_checkpoint(m, msg), msg);
    int64_t first[3];
    size_t got = 0;
    TU_OKM(ember_take(m, 3, first, &got, msg), msg);
    assert_int_equal(got, 3);
    assert_true(first[2] == square_plus(2));
    assert_true(atomic_load(&c.records) < 16000);
    assert_false(ember_is_checkpointed(m));
    assert_int_equal(count_files(CKDIR), 0);
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(count_files(CKDIR), 1);
    long calls = atomic_load(&c.calls);
    expect_i64(m, 16000, square_plus);
    assert_int_equal(atomic_load(&c.calls), calls);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

/* ---- eager checkpoints --------------------------------------------------- */

/* A context's first dataset checkpoint in its directory removes the
 * ds-*.tmp that killed writers left there, and only those: a live
 * writer's (another context's or process's, held by ember__tmp_hold)
 * stays. */
static void test_checkpoint_sweeps_dead_writers_tmp(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    const char *dead = CKDIR "/ds-1111111111111111-3-x.h5.tmp";
    const char *live = CKDIR "/ds-2222222222222222-1-y.h5.tmp";
    FILE *f = fopen(dead, "w");
    assert_non_null(f);
    fputs("half a file", f);
    fclose(f);
    int hold = ember__tmp_hold(live);
    assert_true(hold >= 0);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, 1000, 4, &c);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    assert_false(tu_exists(dead));
    assert_true(tu_exists(live));
    assert_int_equal(count_suffix(CKDIR, ".tmp"), 1);
    close(hold);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

static void test_checkpoint_eager(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(4);
    counter c0, c;
    counter_init(&c0);
    counter_init(&c);
    ember_ds *plain = squares(ctx, N_SQ, P_SQ, &c0);
    uint64_t n = 0;
    TU_OKM(ember_count(plain, &n, msg), msg);

    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(atomic_load(&c.calls), atomic_load(&c0.calls));
    assert_int_equal(atomic_load(&c.records), N_SQ);
    assert_non_null(ember_checkpoint_path(m));
    assert_true(tu_exists(ember_checkpoint_path(m)));
    assert_int_equal(ember_lineage_depth(m), 0);
    expect_i64(m, N_SQ, square_plus);
    /* again: nothing to do */
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    assert_int_equal(count_files(CKDIR), 1);
    ember_ds_free(&m);
    ember_ds_free(&plain);
    ember_ctx_destroy(&ctx);
}

static int64_t times3(int64_t i)
{
    return i * 3 - 1;
}

/* Sources have no lineage to cut, but they are written all the same, and
 * the file holds the records and partitions of the source. */
static void test_checkpoint_eager_sources(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], want[256];
    ember_ctx *ctx = ckpt_ctx(3);
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, -1, 3 * 5000 - 1, 3, 7, msg), msg);
    TU_OKM(ember_checkpoint_eager(r, msg), msg);
    assert_true(ember_is_checkpointed(r));
    ckpt_name(want, sizeof want, r, ember_ds_name(r)); /* sources are named for what they are */
    assert_string_equal(ember_ds_name(r), "range");
    assert_string_equal(ember_checkpoint_path(r), want);
    assert_true(tu_exists(want));
    assert_int_equal(ember_lineage_depth(r), 0);
    expect_i64(r, 5000, times3);

    ember_ds *back = NULL;
    TU_OKM(ember_read_checkpoint(&back, ctx, want, NULL, msg), msg);
    assert_int_equal(ember_ds_partitions(back), 7);
    expect_i64(back, 5000, times3);
    tu_parts p;
    tu_parts_read(&p, back);
    for (size_t q = 0; q < 7; q++)
        assert_int_equal(p.n[q], tu_part_len(5000, 7, q));
    tu_parts_free(&p);
    ember_ds_free(&back);

    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    kv recs[1000];
    for (int i = 0; i < 1000; i++)
        recs[i] = (kv){1000 - i, i / 7.0};
    ember_ds *a = NULL;
    TU_OKM(ember_from_array(&a, ctx, &t, recs, 1000, 5, EMBER_COPY, msg), msg);
    TU_OK(ember_ds_set_name(a, "pts"));
    TU_OKM(ember_checkpoint_eager(a, msg), msg);
    ckpt_name(want, sizeof want, a, "pts");
    assert_string_equal(ember_checkpoint_path(a), want);
    TU_OKM(ember_read_checkpoint(&back, ctx, want, NULL, msg), msg);
    assert_true(ember_type_equal(ember_ds_type(back), &t));
    size_t n = 0;
    kv *got = tu_collect(back, &n);
    assert_int_equal(n, 1000);
    assert_memory_equal(got, recs, sizeof recs);
    free(got);
    got = tu_collect(a, &n);
    assert_memory_equal(got, recs, sizeof recs);
    free(got);
    assert_int_equal(count_files(CKDIR), 2);
    ember_ds_free(&back);
    ember_ds_free(&a);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- local checkpoints --------------------------------------------------- */

/* A shuffle's output persisted MEMORY_ONLY_SER keeps its partitions raw
 * under the dataset; a local checkpoint used to refuse to move them
 * ("cannot move MEMORY_ONLY_SER blocks"), so a loop bound to such a
 * dataset could never checkpoint. Each block now takes the spilling level
 * of its own form, and reads back the same records. */
static void test_checkpoint_local_ser_shuffle(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    for (int small = 0; small < 2; small++) {
        ember_ctx *ctx = budget_ctx(small ? 64 * 1024 : 0);
        ember_ds *a = NULL, *b = NULL;
        int64_t before = 0, after = 0;
        uint64_t n = 0;
        TU_OKM(ember_range(&a, ctx, 0, 100000, 1, 4, msg), msg);
        TU_OKM(ember_repartition(&b, a, 8, msg), msg);
        TU_OKM(ember_persist(b, EMBER_MEMORY_ONLY_SER, msg), msg);
        TU_OKM(ember_sum(b, &before, msg), msg);
        TU_OKM(ember_local_checkpoint(b, msg), msg);
        assert_true(ember_is_checkpointed(b));
        assert_int_equal(ember_ds_level(b), EMBER_MEMORY_AND_DISK_SER);
        TU_OKM(ember_sum(b, &after, msg), msg);
        TU_OKM(ember_count(b, &n, msg), msg);
        assert_int_equal(after, before);
        assert_int_equal(before, (int64_t)99999 * 100000 / 2);
        assert_int_equal(n, 100000);
        ember_ds_free(&b);
        ember_ds_free(&a);
        ember_ctx_destroy(&ctx);
    }
}

/* A file asked for after a local checkpoint cannot be made (the lineage
 * is gone): EMBER_ESTATE saying so, where an OK used to leave no file. A
 * local checkpoint of a dataset marked for a file writes the file (it
 * used to cut the lineage first and drop the file). */
static void test_checkpoint_file_and_local_mixed(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    fresh_dir(CKDIR);
    ember_ctx_opts o = {.threads = 2, .checkpoint_dir = CKDIR};
    ember_ctx *ctx = tu_ctx_opts(&o);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c);
    TU_OKM(ember_local_checkpoint(m, msg), msg);
    assert_int_equal(ember_checkpoint_eager(m, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "checkpointed locally");
    assert_int_equal(ember_checkpoint(m, msg), EMBER_ESTATE);
    assert_null(ember_checkpoint_path(m));
    ember_ds_free(&m);

    ember_ds *f = squares(ctx, N_SQ, P_SQ, &c);
    TU_OKM(ember_checkpoint(f, msg), msg);
    TU_OKM(ember_local_checkpoint(f, msg), msg);
    assert_true(ember_is_checkpointed(f));
    const char *path = ember_checkpoint_path(f);
    assert_non_null(path);
    assert_int_equal(access(path, F_OK), 0);
    TU_OKM(ember_checkpoint_eager(f, msg), msg); /* written: nothing to do */
    ember_ds_free(&f);
    ember_ctx_destroy(&ctx);
}

static void test_checkpoint_local(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    fresh_dir(CKDIR);
    fresh_dir("scratch");
    ember_ctx_opts o = {.threads = 4, .checkpoint_dir = CKDIR,
                        .scratch_dir = "scratch", .memory_budget = 64 * 1024};
    ember_ctx *ctx = tu_ctx_opts(&o);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c); /* 800 KB, budget 64 KiB */
    TU_OKM(ember_local_checkpoint(m, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_null(ember_checkpoint_path(m));
    assert_int_equal(ember_ds_level(m), EMBER_MEMORY_AND_DISK);
    assert_int_equal(ember_cached_partitions(m), P_SQ);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    long calls = atomic_load(&c.calls);
    char *s = lineage(m);
    TU_MSG_HAS(s, "[checkpoint: local]");
    assert_int_equal(lines(s), 1);
    free(s);
    assert_int_equal(ember_lineage_depth(m), 0);
    assert_int_equal(count_files(CKDIR), 0); /* no file */
    assert_int_equal(count_suffix(".", ".h5"), 0);
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_true(st.spills > 0);
    assert_true(st.blocks_on_disk > 0);
    assert_true(st.memory_used <= 64 * 1024);

    /* the blocks are read back, never recomputed */
    expect_i64(m, N_SQ, square_plus);
    ember_ds *child = NULL;
    TU_OKM(ember_map(&child, m, NULL, inc_fn, NULL, 0, msg), msg);
    expect_i64(child, N_SQ, square_plus_1);
    expect_i64(m, N_SQ, square_plus);
    assert_int_equal(atomic_load(&c.calls), calls);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    ember_ctx_stats(ctx, &st);
    assert_true(st.disk_reads > 0);
    assert_int_equal(st.recomputes, 0);
    assert_int_equal(count_files(CKDIR), 0);

    /* local checkpoints need no directory: a context without one */
    ember_ctx *bare = tu_ctx(2);
    counter c2;
    counter_init(&c2);
    ember_ds *m2 = squares(bare, 1000, 3, &c2);
    TU_OKM(ember_local_checkpoint(m2, msg), msg);
    assert_true(ember_is_checkpointed(m2));
    expect_i64(m2, 1000, square_plus);
    assert_int_equal(atomic_load(&c2.records), 1000);
    ember_ds_free(&m2);
    ember_ctx_destroy(&bare);

    ember_ds_free(&child);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}


/* ---- no recompute, and truncation releases memory ------------------------ */

/* A checkpoint of a dataset whose blocks are cached at MEMORY_ONLY or
 * MEMORY_ONLY_SER writes from the cache: the map has seen every record
 * exactly once, and the stats show no recompute. Local checkpoints move
 * the blocks to the matching _AND_DISK level as they are. */
static void no_recompute_case(ember_level level, int local)
{
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(4);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c);
    TU_OKM(ember_persist(m, level, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_int_equal(ember_cached_partitions(m), P_SQ);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    if (local)
        TU_OKM(ember_local_checkpoint(m, msg), msg);
    else
        TU_OKM(ember_checkpoint_eager(m, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(atomic_load(&c.records), N_SQ); /* one computation */
    if (local) {
        assert_null(ember_checkpoint_path(m));
        assert_int_equal(ember_ds_level(m), level == EMBER_MEMORY_ONLY
                                                ? EMBER_MEMORY_AND_DISK
                                                : EMBER_MEMORY_AND_DISK_SER);
        assert_int_equal(ember_cached_partitions(m), P_SQ);
    } else {
        assert_int_equal(count_files(CKDIR), 1);
        assert_int_equal(ember_ds_level(m), level);
    }
    expect_i64(m, N_SQ, square_plus);
    assert_int_equal(atomic_load(&c.records), N_SQ);
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.recomputes, 0);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

static void test_checkpoint_local_keeps_cache(void **state)
{
    (void)state;
    no_recompute_case(EMBER_MEMORY_ONLY, 1);
    no_recompute_case(EMBER_MEMORY_ONLY_SER, 1);
}

static void test_checkpoint_file_writes_from_cache(void **state)
{
    (void)state;
    no_recompute_case(EMBER_MEMORY_ONLY, 0);
    no_recompute_case(EMBER_MEMORY_ONLY_SER, 0);
}

/* A local checkpoint of a MEMORY_ONLY dataset whose blocks did not all get
 * room computes only the missing partitions (and counts them). */
static void test_checkpoint_local_computes_only_missing(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = budget_ctx(300 * 1024);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c); /* 8 x 100 KB */
    TU_OKM(ember_cache(m, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    size_t kept = ember_cached_partitions(m);
    assert_true(kept > 0 && kept < P_SQ);
    TU_OKM(ember_local_checkpoint(m, msg), msg);
    assert_int_equal(ember_cached_partitions(m), P_SQ);
    /* the cached partitions were not computed again */
    size_t missing = P_SQ - kept;
    assert_int_equal(atomic_load(&c.records), N_SQ + missing * (N_SQ / P_SQ));
    expect_i64(m, N_SQ, square_plus);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

typedef struct {
    const ember_bcast *bc;
} add_bc_arg;

/* out = in + the broadcast's first record */
static int add_bc(const void *in, void *out, size_t n, void *arg)
{
    const add_bc_arg *a = arg;
    const int64_t *b = ember_bcast_data(a->bc, NULL);
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + b[0];
    return 0;
}

static ember_stats stats_of(ember_ctx *ctx)
{
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    return st;
}

/* A checkpoint cuts what its dataset read: parents, broadcasts and what
 * only they held (the broadcast's copy, its source, cached blocks), for
 * local and file checkpoints. The lineage no longer shows the broadcast. */
static void cut_case(int local)
{
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    enum { N = 20000 };
    counter c;
    counter_init(&c);
    ember_ds *x = squares(ctx, N, 4, &c), *nx = NULL;
    TU_OKM(ember_cache(x, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, x, msg), msg); /* computes and caches x */
    add_bc_arg arg = {bc};
    TU_OKM(ember_map(&nx, x, NULL, add_bc, &arg, sizeof arg, msg), msg);
    TU_OK(ember_ds_uses(nx, bc));
    ember_bcast_free(&bc);
    ember_ds_free(&x);
    TU_OKM(ember_cache(nx, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(nx, &sum, msg), msg);
    ember_stats st = stats_of(ctx);
    assert_int_equal(st.live_broadcasts, 1);
    assert_int_equal(st.broadcast_bytes, N * 8);
    assert_int_equal(st.live_datasets, 3); /* range, x, nx */
    assert_int_equal(st.memory_used, 2 * N * 8); /* x and nx cached */
    assert_int_equal(st.live_bytes, st.memory_used + st.broadcast_bytes);
    char *s = lineage(nx);
    TU_MSG_HAS(s, "[uses broadcast of #");
    free(s);

    if (local)
        TU_OKM(ember_local_checkpoint(nx, msg), msg);
    else
        TU_OKM(ember_checkpoint_eager(nx, msg), msg);
    st = stats_of(ctx);
    assert_int_equal(st.live_broadcasts, 0);
    assert_int_equal(st.broadcast_bytes, 0);
    assert_int_equal(st.live_datasets, 1);
    assert_int_equal(st.memory_used, N * 8); /* nx's blocks only */
    assert_int_equal(st.live_bytes, N * 8);
    assert_int_equal(st.recomputes, 0);
    s = lineage(nx);
    if (strstr(s, "broadcast"))
        fail_msg("lineage after a checkpoint still shows a broadcast:\n%s", s);
    assert_int_equal(lines(s), 1);
    free(s);
    assert_int_equal(atomic_load(&c.records), N);
    ember_ds_free(&nx);
    st = stats_of(ctx);
    assert_int_equal(st.live_datasets, 0);
    assert_int_equal(st.live_bytes, 0);
    ember_ctx_destroy(&ctx);
}

static void test_checkpoint_cut_frees_broadcasts(void **state)
{
    (void)state;
    cut_case(1);
    cut_case(0);
}

/* What a live handle holds survives the cut: a broadcast handle the caller
 * kept, and the dataset it was made from. */
static void test_checkpoint_cut_keeps_live_handles(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    enum { N = 5000 };
    counter c;
    counter_init(&c);
    ember_ds *x = squares(ctx, N, 2, &c), *nx = NULL;
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, x, msg), msg);
    add_bc_arg arg = {bc};
    TU_OKM(ember_map(&nx, x, NULL, add_bc, &arg, sizeof arg, msg), msg);
    TU_OK(ember_ds_uses(nx, bc));
    TU_OKM(ember_local_checkpoint(nx, msg), msg);
    ember_stats st = stats_of(ctx);
    assert_int_equal(st.live_broadcasts, 1);
    assert_int_equal(st.broadcast_bytes, N * 8);
    assert_int_equal(st.live_datasets, 3);
    size_t n = 0;
    const int64_t *d = ember_bcast_data(bc, &n);
    assert_int_equal(n, N);
    assert_int_equal(d[N - 1], square_plus(N - 1));
    expect_i64(x, N, square_plus);
    ember_bcast_free(&bc);
    st = stats_of(ctx);
    assert_int_equal(st.live_broadcasts, 0);
    assert_int_equal(st.broadcast_bytes, 0);
    ember_ds_free(&x);
    st = stats_of(ctx);
    assert_int_equal(st.live_datasets, 1);
    ember_ds_free(&nx);
    ember_ctx_destroy(&ctx);
}

/* A file checkpoint of a shuffle frees its outputs: the file serves. */
static int mod_key(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    kv *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (kv){a[i] % 100, 1.0};
    return 0;
}

static void test_checkpoint_cut_frees_shuffle_outputs(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    ember_ds *r = NULL, *p = NULL, *red = NULL;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 4, msg), msg);
    TU_OKM(ember_map(&p, r, &t, mod_key, NULL, 0, msg), msg);
    TU_OKM(ember_reduce_by_key(&red, p, NULL, NULL, 0, 3, msg), msg);
    ember_ds_free(&r);
    ember_ds_free(&p);
    uint64_t n = 0;
    TU_OKM(ember_count(red, &n, msg), msg);
    assert_int_equal(n, 100);
    ember_stats st = stats_of(ctx);
    assert_true(st.blocks_in_memory + st.blocks_on_disk >= 3);
    assert_int_equal(st.live_datasets, 3);
    TU_OKM(ember_checkpoint_eager(red, msg), msg);
    st = stats_of(ctx);
    assert_int_equal(st.blocks_in_memory + st.blocks_on_disk, 0);
    assert_int_equal(st.memory_used, 0);
    assert_int_equal(st.live_datasets, 1);
    size_t got = 0;
    kv *d = tu_collect(red, &got);
    assert_int_equal(got, 100);
    for (size_t i = 0; i < got; i++)
        assert_true(d[i].value == 100.0);
    free(d);
    ember_ds_free(&red);
    ember_ctx_destroy(&ctx);
}

/* ember_unpersist of a local checkpoint frees its blocks (memory and
 * spill files); reading it afterwards fails and says why. */
static void test_checkpoint_unpersist_local_frees(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = budget_ctx(300 * 1024);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, N_SQ, P_SQ, &c); /* 800 KB: some spill */
    TU_OKM(ember_local_checkpoint(m, msg), msg);
    ember_stats st = stats_of(ctx);
    assert_true(st.memory_used > 0);
    assert_true(st.disk_used > 0);
    assert_int_equal(st.blocks_in_memory + st.blocks_on_disk, P_SQ);
    TU_OK(ember_unpersist(m));
    assert_int_equal(ember_cached_partitions(m), 0);
    st = stats_of(ctx);
    assert_int_equal(st.memory_used, 0);
    assert_int_equal(st.disk_used, 0);
    assert_int_equal(st.blocks_in_memory + st.blocks_on_disk, 0);
    uint64_t n = 0;
    assert_int_equal(ember_count(m, &n, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "unpersisted");
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

/* The Spark idiom over a local checkpoint (an ember_loop's cut): the new
 * state made from it is cached, computed, and the old one unpersisted and
 * freed. Under a budget too small for the new state its evicted
 * partitions are recomputed from the old one's blocks, which stay while
 * the new state needs them (they were freed: EMBER_ESTATE) and go with it. */
static void test_checkpoint_unpersist_local_kept_for_children(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = budget_ctx(300 * 1024);
    counter c;
    counter_init(&c);
    ember_ds *x = squares(ctx, N_SQ, P_SQ, &c), *nx = NULL; /* 800 KB */
    TU_OKM(ember_local_checkpoint(x, msg), msg);
    TU_OKM(ember_map(&nx, x, NULL, inc_fn, NULL, 0, msg), msg);
    TU_OKM(ember_cache(nx, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(nx, &n, msg), msg);
    TU_OK(ember_unpersist(x));
    ember_ds_free(&x);
    assert_true(ember_cached_partitions(nx) < P_SQ); /* some were evicted */
    expect_i64(nx, N_SQ, square_plus_1);
    assert_int_equal(atomic_load(&c.records), N_SQ); /* x never recomputed */
    ember_ds_free(&nx);
    ember_stats st = stats_of(ctx);
    assert_int_equal(st.memory_used, 0);
    assert_int_equal(st.disk_used, 0);
    ember_ctx_destroy(&ctx);
}

/* ---- reading checkpoints back -------------------------------------------- */

static void test_checkpoint_read_new_context(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], path[1024];
    ember_ctx *ctx = ckpt_ctx(3);
    ember_ds *r = NULL, *f = NULL, *m = NULL;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 5, msg), msg);
    TU_OKM(ember_filter(&f, r, gappy, NULL, 0, msg), msg);
    TU_OKM(ember_map(&m, f, &t, to_pair, NULL, 0, msg), msg);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    snprintf(path, sizeof path, "%s", ember_checkpoint_path(m));
    tu_parts before;
    tu_parts_read(&before, m);
    static const size_t want_n[5] = {150, 0, 0, 200, 200};
    for (size_t q = 0; q < 5; q++)
        assert_int_equal(before.n[q], want_n[q]);
    ember_ctx_destroy(&ctx); /* frees m, f, r */

    ember_ctx *ctx2 = tu_ctx(2); /* no checkpoint directory needed to read */
    ember_ds *back = NULL;
    TU_OKM(ember_read_checkpoint(&back, ctx2, path, NULL, msg), msg);
    assert_string_equal(msg, "");
    assert_true(ember_type_equal(ember_ds_type(back), &t));
    assert_int_equal(ember_ds_partitions(back), 5);
    assert_true(ember_is_checkpointed(back));
    assert_string_equal(ember_checkpoint_path(back), path);
    assert_int_equal(ember_lineage_depth(back), 0);
    tu_parts after;
    tu_parts_read(&after, back);
    for (size_t q = 0; q < 5; q++) {
        assert_int_equal(after.n[q], before.n[q]);
        if (after.n[q])
            assert_memory_equal(after.data[q], before.data[q], after.n[q] * sizeof(kv));
    }
    tu_parts_free(&after);
    ember_ds_free(&back);

    /* by its name, "data" */
    TU_OKM(ember_read_checkpoint(&back, ctx2, path, "data", msg), msg);
    tu_parts_read(&after, back);
    for (size_t q = 0; q < 5; q++)
        assert_int_equal(after.n[q], before.n[q]);
    tu_parts_free(&after);
    ember_ds_free(&back);
    back = (ember_ds *)ctx2;
    assert_int_equal(ember_read_checkpoint(&back, ctx2, path, "nope", msg),
                     EMBER_ENOTFOUND);
    assert_null(back);
    TU_MSG_HAS(msg, "nope");
    assert_int_equal(ember_read_checkpoint(NULL, ctx2, path, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_checkpoint(&back, ctx2, NULL, NULL, msg), EMBER_EINVAL);
    tu_parts_free(&before);
    ember_ctx_destroy(&ctx2);
}

/* name NULL needs exactly one dataset in the file. */
static void test_checkpoint_read_picks_only_dataset(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(2);
    int64_t a[3] = {1, 2, 3}, b[2] = {9, 8};
    ember_type t = ember_type_scalar(EMBER_I64);
    ember__buf pa = {(unsigned char *)a, 3, 3, 8}, pb = {(unsigned char *)b, 2, 2, 8};
    ember__ck_meta meta = {.kind = "dataset"};
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, CKDIR, "two.h5", &meta, msg), msg);
    TU_OKM(ember__ckw_parts(w, "a", &t, &pa, 1, msg), msg);
    TU_OKM(ember__ckw_parts(w, "b", &t, &pb, 1, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    ember_ds *ds = NULL;
    assert_int_equal(ember_read_checkpoint(&ds, ctx, CKDIR "/two.h5", NULL, msg),
                     EMBER_EINVAL);
    assert_null(ds);
    TU_MSG_HAS(msg, "2 datasets");
    TU_OKM(ember_read_checkpoint(&ds, ctx, CKDIR "/two.h5", "b", msg), msg);
    size_t n = 0;
    int64_t *got = tu_collect(ds, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(got, b, sizeof b);
    free(got);
    ember_ds_free(&ds);

    TU_OKM(ember__ckw_begin(ctx, &w, CKDIR, "none.h5", &meta, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    assert_int_equal(ember_read_checkpoint(&ds, ctx, CKDIR "/none.h5", NULL, msg),
                     EMBER_EINVAL);
    TU_MSG_HAS(msg, "0 datasets");
    assert_null(ds);
    ember_ctx_destroy(&ctx);
}

static uint64_t pattern(size_t i)
{
    return 0xd00dfeed00000000ULL | (uint64_t)(i * 0x10003u);
}

static int pattern_fn(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    uint64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern((size_t)a[i]);
    return 0;
}

static void test_checkpoint_read_corrupt(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], path[1024];
    ember_ctx *ctx = ckpt_ctx(2);
    ember_ds *r = NULL, *m = NULL, *back = NULL;
    ember_type u64 = ember_type_scalar(EMBER_U64);
    TU_OKM(ember_range(&r, ctx, 0, 3000, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, &u64, pattern_fn, NULL, 0, msg), msg);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    snprintf(path, sizeof path, "%s", ember_checkpoint_path(m));
    size_t size;
    unsigned char *good = tu_slurp(path, &size);

    uint64_t victim = pattern(2500);
    corrupt_at(path, &victim, 8);
    back = (ember_ds *)ctx;
    assert_int_equal(ember_read_checkpoint(&back, ctx, path, NULL, msg),
                     EMBER_ECORRUPT);
    assert_null(back);
    TU_MSG_HAS(msg, path);
    /* the dataset whose lineage is that file fails too, it does not read
     * damaged records */
    uint64_t n = 0;
    assert_int_equal(ember_count(m, &n, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, path);

    tu_spit(path, good, size / 2);
    assert_int_equal(ember_read_checkpoint(&back, ctx, path, NULL, msg),
                     EMBER_ECORRUPT);
    TU_MSG_HAS(msg, path);
    assert_null(back);

    /* the intact file reads, so the damage is what failed */
    tu_spit(path, good, size);
    TU_OKM(ember_read_checkpoint(&back, ctx, path, NULL, msg), msg);
    TU_OKM(ember_count(back, &n, msg), msg);
    assert_int_equal(n, 3000);
    ember_ds_free(&back);
    TU_OKM(ember_count(m, &n, msg), msg);
    free(good);

    assert_int_equal(ember_read_checkpoint(&back, ctx, CKDIR "/absent.h5", NULL, msg),
                     EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "absent.h5");
    assert_null(back);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- errors and chains --------------------------------------------------- */

static void test_checkpoint_needs_dir(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    fresh_dir(CKDIR);
    ember_ctx *ctx = tu_ctx(2);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, 1000, 4, &c);
    assert_int_equal(ember_checkpoint(m, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "checkpoint dir");
    assert_int_equal(ember_checkpoint_eager(m, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "checkpoint dir");
    assert_false(ember_is_checkpointed(m));
    assert_null(ember_checkpoint_path(m));
    char *s = lineage(m);
    assert_null(strstr(s, "checkpoint"));
    free(s);
    assert_int_equal(ember_checkpoint(NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_local_checkpoint(NULL, msg), EMBER_EINVAL);
    assert_false(ember_is_checkpointed(NULL));
    assert_null(ember_checkpoint_path(NULL));
    expect_i64(m, 1000, square_plus); /* unharmed */
    assert_int_equal(atomic_load(&c.records), 1000);

    /* with a directory it works */
    TU_OKM(ember_ctx_set_checkpoint_dir(ctx, CKDIR, msg), msg);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(count_files(CKDIR), 1);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

/* A directory that is not there is made, with its parents (mode 0777
 * less the umask). One that
 * cannot be made (a file where a parent should be): the action that would
 * write fails with EIO naming it, and the dataset stays usable. */
static void test_checkpoint_dir_missing(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_rm_rf("nodir");
    ember_ctx_opts o = {.threads = 2, .checkpoint_dir = "nodir/a/b"};
    ember_ctx *ctx = tu_ctx_opts(&o);
    counter c;
    counter_init(&c);
    ember_ds *m = squares(ctx, 1000, 4, &c);
    TU_OKM(ember_checkpoint(m, msg), msg);
    assert_false(tu_exists("nodir")); /* lazy: made by the write */
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(count_files("nodir/a/b"), 1);
    mode_t um = umask(0);
    umask(um);
    struct stat st;
    assert_int_equal(stat("nodir/a", &st), 0);
    assert_int_equal(st.st_mode & 0777, 0777 & ~um);
    expect_i64(m, 1000, square_plus);
    ember_ds_free(&m);

    tu_spit("nodir/file", "x", 1);
    TU_OKM(ember_ctx_set_checkpoint_dir(ctx, "nodir/file/sub", msg), msg);
    m = squares(ctx, 1000, 4, &c);
    TU_OKM(ember_checkpoint(m, msg), msg);
    assert_int_equal(ember_count(m, &n, msg), EMBER_EIO);
    TU_MSG_HAS(msg, "nodir/file");
    TU_MSG_HAS(msg, strerror(ENOTDIR));
    assert_false(ember_is_checkpointed(m));
    assert_int_equal(unlink("nodir/file"), 0);
    TU_OKM(ember_count(m, &n, msg), msg); /* captured: written now */
    assert_true(ember_is_checkpointed(m));
    assert_int_equal(count_files("nodir/file/sub"), 1);
    expect_i64(m, 1000, square_plus);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
    tu_rm_rf("nodir");
}

/* Two contexts on one directory, with the same ids and names (#2 "map"):
 * each reads its own file. They used to share ds-2-map.h5, and the second
 * checkpoint made the first context's sum the second one's. */
static int times_fn(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] * 1000;
    return 0;
}

/* 0..999 plus 1 (sum 500500), or times 1000 (499500000), named "map". */
static ember_ds *named_map(ember_ctx *ctx, int64_t factor)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, factor == 1 ? inc_fn : times_fn, NULL, 0, msg),
           msg);
    ember_ds_free(&r);
    TU_OK(ember_ds_set_name(m, "map"));
    return m;
}

static void test_checkpoint_two_contexts_one_dir(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *a = ckpt_ctx(2);
    ember_ctx_opts o = {.threads = 2, .checkpoint_dir = CKDIR};
    ember_ctx *b = tu_ctx_opts(&o);
    assert_string_not_equal(a->ckpt_token, b->ckpt_token);
    ember_ds *ma = named_map(a, 1), *mb = named_map(b, 1000);
    assert_int_equal(ember_ds_id(ma), ember_ds_id(mb));
    int64_t sum = 0;
    TU_OKM(ember_checkpoint_eager(ma, msg), msg);
    TU_OKM(ember_sum(ma, &sum, msg), msg);
    assert_int_equal(sum, 500500);
    TU_OKM(ember_checkpoint_eager(mb, msg), msg);
    TU_OKM(ember_sum(ma, &sum, msg), msg);
    assert_int_equal(sum, 500500);
    TU_OKM(ember_sum(mb, &sum, msg), msg);
    assert_int_equal(sum, 499500000);
    assert_string_not_equal(ember_checkpoint_path(ma), ember_checkpoint_path(mb));
    assert_int_equal(count_files(CKDIR), 2);
    ember_ds_free(&ma);
    ember_ds_free(&mb);
    ember_ctx_destroy(&b);
    ember_ctx_destroy(&a);
}

/* Another checkpoint file renamed over this context's (another process's
 * with a clashing name, or an older copy): it verifies by its own
 * checksum, but it is not the file written, so reading it is
 * EMBER_ECORRUPT naming it, never its records. */
static void test_checkpoint_file_replaced(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], mine[1024];
    ember_ctx *a = ckpt_ctx(2);
    ember_ds *ma = named_map(a, 1), *other = named_map(a, 1000);
    TU_OKM(ember_checkpoint_eager(ma, msg), msg);
    TU_OKM(ember_checkpoint_eager(other, msg), msg);
    snprintf(mine, sizeof mine, "%s", ember_checkpoint_path(ma));
    size_t size = 0;
    unsigned char *good = tu_slurp(mine, &size);
    assert_int_equal(rename(ember_checkpoint_path(other), mine), 0);
    int64_t sum = 0;
    assert_int_equal(ember_sum(ma, &sum, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, mine);
    TU_MSG_HAS(msg, "not the checkpoint written");
    /* the file written, put back under its name, reads again */
    tu_spit(mine, good, size);
    free(good);
    TU_OKM(ember_sum(ma, &sum, msg), msg);
    assert_int_equal(sum, 500500);
    ember_ds_free(&ma);
    ember_ds_free(&other);
    ember_ctx_destroy(&a);
}

/* An action over a dataset checkpoint hashes its file once, not once a
 * partition (which read a file of P partitions P times over), and every
 * action hashes it again: a byte changed in place between two actions,
 * header and size kept, is EMBER_ECORRUPT naming the file. */
static void test_checkpoint_file_hashed_once_an_action(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], path[1024];
    ember_ctx *ctx = ckpt_ctx(2);
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 16, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, inc_fn, NULL, 0, msg), msg);
    ember_ds_free(&r);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    snprintf(path, sizeof path, "%s", ember_checkpoint_path(m));
    int64_t sum = 0;
    for (int k = 1; k <= 2; k++) {
        unsigned long before = ember__fsum_checks_hashed();
        TU_OKM(ember_sum(m, &sum, msg), msg);
        assert_int_equal(sum, 5000050000LL);
        assert_int_equal(ember__fsum_checks_hashed() - before, 1);
    }
    size_t size = 0;
    unsigned char *bytes = tu_slurp(path, &size);
    bytes[size - 1] ^= 0x40;
    tu_spit(path, bytes, size);
    free(bytes);
    assert_int_equal(ember_sum(m, &sum, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, path);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
}

static void test_checkpoint_chain_two_marked(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = ckpt_ctx(4);
    counter ca, cb;
    counter_init(&ca);
    counter_init(&cb);
    ember_ds *a = squares(ctx, N_SQ, P_SQ, &ca), *b = NULL, *c = NULL;
    TU_OKM(ember_map(&b, a, NULL, inc_fn, &cb, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_map(&c, b, NULL, inc_fn, NULL, 0, msg), msg);
    TU_OK(ember_ds_set_name(a, "first"));
    TU_OK(ember_ds_set_name(b, "second"));
    TU_OKM(ember_checkpoint(b, msg), msg);
    TU_OKM(ember_checkpoint(a, msg), msg);
    assert_int_equal(ember_lineage_depth(c), 3);

    expect_i64(c, N_SQ, square_plus_2);
    assert_int_equal(atomic_load(&ca.records), N_SQ);
    assert_int_equal(atomic_load(&cb.records), N_SQ);
    assert_true(ember_is_checkpointed(a));
    assert_true(ember_is_checkpointed(b));
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s", ember_checkpoint_path(a));
    snprintf(pb, sizeof pb, "%s", ember_checkpoint_path(b));
    assert_true(tu_exists(pa) && tu_exists(pb));
    assert_string_not_equal(pa, pb);
    assert_int_equal(count_files(CKDIR), 2);

    /* c's lineage stops at b's file */
    char *s = lineage(c);
    TU_MSG_HAS(s, pb);
    assert_null(strstr(s, pa));
    assert_null(strstr(s, "range"));
    assert_int_equal(lines(s), 2);
    free(s);
    assert_int_equal(ember_lineage_depth(c), 1);
    assert_int_equal(ember_lineage_depth(b), 0);
    assert_int_equal(ember_lineage_depth(a), 0);

    /* the file of a is a good checkpoint of a */
    ember_ds *back = NULL;
    TU_OKM(ember_read_checkpoint(&back, ctx, pa, NULL, msg), msg);
    expect_i64(back, N_SQ, square_plus);
    ember_ds_free(&back);

    long calls_a = atomic_load(&ca.calls), calls_b = atomic_load(&cb.calls);
    ember_ds_free(&a);
    ember_ds_free(&b);
    expect_i64(c, N_SQ, square_plus_2);
    assert_int_equal(atomic_load(&ca.calls), calls_a);
    assert_int_equal(atomic_load(&cb.calls), calls_b);
    ember_ds_free(&c);
    ember_ctx_destroy(&ctx);
}

/* ---- memory -------------------------------------------------------------- */

/* Cutting the lineage lets go of what came before: a big source whose
 * handle the caller freed is freed when its child is checkpointed. */
static void test_checkpoint_releases_lineage(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    fresh_dir(CKDIR);
    tu_counter tc;
    tu_counter_reset(&tc, 0);
    ember_allocator al = tu_allocator(&tc);
    ember_ctx_opts o = {.threads = 2, .checkpoint_dir = CKDIR, .allocator = &al};
    ember_ctx *ctx = tu_ctx_opts(&o);
    enum { N = 200000 }; /* 1.6 MB of records */
    int64_t *recs = malloc(N * sizeof *recs);
    assert_non_null(recs);
    for (int64_t i = 0; i < N; i++)
        recs[i] = i;
    ember_type t = ember_type_scalar(EMBER_I64);
    ember_ds *src = NULL, *m = NULL;
    TU_OKM(ember_from_array(&src, ctx, &t, recs, N, 4, EMBER_COPY, msg), msg);
    free(recs);
    TU_OKM(ember_map(&m, src, NULL, inc_fn, NULL, 0, msg), msg);
    ember_ds_free(&src); /* m keeps it alive */
    long long held = atomic_load(&tc.live_bytes);
    assert_true(held >= N * 8);
    TU_OKM(ember_checkpoint_eager(m, msg), msg);
    long long after = atomic_load(&tc.live_bytes);
    if (after > held - N * 8)
        fail_msg("%lld bytes held before the checkpoint, %lld after: the source "
                 "was not released", held, after);
    ember_ds_free(&m);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&tc.live), 0);
}

/* Every kind of checkpoint, then every handle freed: the datasets give
 * back their memory, and the context the rest. */
static void test_checkpoint_no_leak(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    fresh_dir(CKDIR);
    tu_counter tc;
    tu_counter_reset(&tc, 0);
    ember_allocator al = tu_allocator(&tc);
    ember_ctx_opts o = {.threads = 3, .checkpoint_dir = CKDIR, .allocator = &al,
                        .scratch_dir = "."};
    ember_ctx *ctx = tu_ctx_opts(&o);
    long base = atomic_load(&tc.live);
    counter c;
    counter_init(&c);
    ember_ds *lazy = squares(ctx, 20000, 5, &c), *eager = squares(ctx, 20000, 5, &c);
    ember_ds *local = squares(ctx, 20000, 5, &c), *child = NULL, *back = NULL;
    TU_OKM(ember_map(&child, lazy, NULL, inc_fn, NULL, 0, msg), msg);
    TU_OKM(ember_checkpoint(lazy, msg), msg);
    expect_i64(child, 20000, square_plus_1);
    TU_OKM(ember_checkpoint_eager(eager, msg), msg);
    TU_OKM(ember_local_checkpoint(local, msg), msg);
    TU_OKM(ember_read_checkpoint(&back, ctx, ember_checkpoint_path(eager), NULL,
                                 msg), msg);
    expect_i64(back, 20000, square_plus);
    assert_true(atomic_load(&tc.live) > base);
    ember_ds_free(&child);
    ember_ds_free(&lazy);
    ember_ds_free(&eager);
    ember_ds_free(&local);
    ember_ds_free(&back);
    assert_int_equal(atomic_load(&tc.live), base);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&tc.live), 0);
    assert_int_equal(atomic_load(&tc.live_bytes), 0);

    /* a marked dataset freed before it was written drops its captures */
    ctx = tu_ctx_opts(&o);
    base = atomic_load(&tc.live);
    ember_ds *m = squares(ctx, 20000, 16, &c); /* more than take's window */
    TU_OKM(ember_checkpoint(m, msg), msg);
    int64_t one[2];
    size_t got;
    TU_OKM(ember_take(m, 1, one, &got, msg), msg); /* captures some */
    assert_false(ember_is_checkpointed(m));
    ember_ds_free(&m);
    assert_int_equal(atomic_load(&tc.live), base);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&tc.live), 0);
}

/* A lazy checkpoint, its action and a read back, failing the Nth
 * allocation for every N: each failure is ENOMEM and leaks nothing. */
static int oom_flow(tu_counter *tc, char *msg)
{
    ember_allocator al = tu_allocator(tc);
    ember_ctx_opts o = {.threads = 1, .checkpoint_dir = CKDIR, .allocator = &al};
    ember_ctx *ctx = NULL;
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (rc)
        return rc;
    ember_ds *r = NULL, *m = NULL, *back = NULL;
    int64_t sum = 0;
    rc = ember_range(&r, ctx, 0, 3000, 1, 3, msg);
    if (!rc)
        rc = ember_map(&m, r, NULL, inc_fn, NULL, 0, msg);
    if (!rc)
        rc = ember_checkpoint(m, msg);
    if (!rc)
        rc = ember_sum(m, &sum, msg);
    if (!rc && !ember_is_checkpointed(m))
        rc = EMBER_ESTATE;
    if (!rc)
        rc = ember_read_checkpoint(&back, ctx, ember_checkpoint_path(m), NULL, msg);
    if (!rc)
        rc = ember_sum(back, &sum, msg);
    if (!rc)
        assert_true(sum == 3000 * 2999 / 2 + 3000);
    ember_ds_free(&back);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    return rc;
}

static void test_checkpoint_alloc_failures(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter tc;
    long failed = 0;
    for (long nth = 1;; nth++) {
        assert_true(nth < 5000);
        fresh_dir(CKDIR);
        tu_counter_reset(&tc, nth);
        msg[0] = '\0';
        int rc = oom_flow(&tc, msg);
        if (atomic_load(&tc.live) != 0)
            fail_msg("allocation %ld failed: %ld blocks leaked", nth,
                     atomic_load(&tc.live));
        assert_int_equal(count_suffix(CKDIR, ".tmp"), 0);
        if (atomic_load(&tc.injected) == 0) {
            TU_OKM(rc, msg);
            break;
        }
        if (rc == EMBER_OK)
            continue;
        failed++;
        if (rc != EMBER_ENOMEM)
            fail_msg("allocation %ld failed: status %d (%s), expected ENOMEM: %s",
                     nth, rc, ember_strerror(rc), msg);
    }
    print_message("%ld allocations failed in turn, each cleanly\n", failed);
    assert_true(failed > 5);
}

/* The issue's case: x := x + d for d = 1..6 on 4 zeros, the arg struct
 * updated in place each iteration, a checkpoint every 3. A checkpoint of
 * an uncached dataset computes its lineage since the last one; had the maps
 * kept the arg by pointer, each would see the last d (3, then 6): 108.
 * Copied at creation: 4 * 21 = 84. Local, eager and lazy file checkpoints
 * alike. */
typedef struct {
    double d;
} step_d;

static int add_step(const void *in, void *out, size_t n, void *arg)
{
    const step_d *a = arg;
    const double *x = in;
    double *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + a->d;
    return 0;
}

static void test_checkpoint_arg_copied_through_checkpoint(void **state)
{
    (void)state;
    for (int mode = 0; mode < 3; mode++) {
        ember_ctx *ctx = ckpt_ctx(2);
        char msg[EMBER_MSG_SIZE];
        ember_type f64 = ember_type_scalar(EMBER_F64);
        double zeros[4] = {0, 0, 0, 0};
        ember_ds *x = NULL;
        TU_OKM(ember_from_array(&x, ctx, &f64, zeros, 4, 2, EMBER_COPY, msg), msg);
        step_d arg = {0};
        for (int it = 1; it <= 6; it++) {
            arg.d = it;
            ember_ds *nx = NULL;
            TU_OKM(ember_map(&nx, x, NULL, add_step, &arg, sizeof arg, msg), msg);
            ember_ds_free(&x);
            x = nx;
            if (it % 3 != 0)
                continue;
            if (mode == 0) {
                TU_OKM(ember_local_checkpoint(x, msg), msg);
            } else if (mode == 1) {
                TU_OKM(ember_checkpoint_eager(x, msg), msg);
            } else { /* marked, written by the next action */
                TU_OKM(ember_checkpoint(x, msg), msg);
                uint64_t n;
                TU_OKM(ember_count(x, &n, msg), msg);
            }
            assert_true(ember_is_checkpointed(x));
        }
        arg.d = 1000; /* after the last map: changes nothing either */
        double s = 0;
        TU_OKM(ember_sum(x, &s, msg), msg);
        if (s != 84.0)
            fail_msg("checkpoint mode %d: sum %g, expected 84", mode, s);
        ember_ds_free(&x);
        ember_ctx_destroy(&ctx);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_lazy_written_once),
        cmocka_unit_test(test_checkpoint_from_cache),
        cmocka_unit_test(test_checkpoint_waits_for_all_partitions),
        cmocka_unit_test(test_checkpoint_eager),
        cmocka_unit_test(test_checkpoint_sweeps_dead_writers_tmp),
        cmocka_unit_test(test_checkpoint_eager_sources),
        cmocka_unit_test(test_checkpoint_local),
        cmocka_unit_test(test_checkpoint_file_and_local_mixed),
        cmocka_unit_test(test_checkpoint_local_ser_shuffle),
        cmocka_unit_test(test_checkpoint_local_keeps_cache),
        cmocka_unit_test(test_checkpoint_file_writes_from_cache),
        cmocka_unit_test(test_checkpoint_local_computes_only_missing),
        cmocka_unit_test(test_checkpoint_cut_frees_broadcasts),
        cmocka_unit_test(test_checkpoint_cut_keeps_live_handles),
        cmocka_unit_test(test_checkpoint_cut_frees_shuffle_outputs),
        cmocka_unit_test(test_checkpoint_unpersist_local_frees),
        cmocka_unit_test(test_checkpoint_unpersist_local_kept_for_children),
        cmocka_unit_test(test_checkpoint_read_new_context),
        cmocka_unit_test(test_checkpoint_read_picks_only_dataset),
        cmocka_unit_test(test_checkpoint_read_corrupt),
        cmocka_unit_test(test_checkpoint_needs_dir),
        cmocka_unit_test(test_checkpoint_dir_missing),
        cmocka_unit_test(test_checkpoint_two_contexts_one_dir),
        cmocka_unit_test(test_checkpoint_file_replaced),
        cmocka_unit_test(test_checkpoint_file_hashed_once_an_action),
        cmocka_unit_test(test_checkpoint_chain_two_marked),
        cmocka_unit_test(test_checkpoint_releases_lineage),
        cmocka_unit_test(test_checkpoint_no_leak),
        cmocka_unit_test(test_checkpoint_alloc_failures),
        cmocka_unit_test(test_checkpoint_arg_copied_through_checkpoint),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
