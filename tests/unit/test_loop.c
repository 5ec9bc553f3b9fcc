/* test_loop.c: unit tests of the resumable loop (src/loop.c).
 *
 * A restart is simulated by two loops in sequence on one directory, each
 * with its own context and freshly built state, as two processes would
 * have. Every case works in a directory it empties first (the working
 * directory of a case outlives the run), and ends by destroying the
 * context with a counting allocator and checking nothing is leaked.
 *
 * Two things cannot be tested as the root user the tests run as by
 * chmod: a read-only directory (root writes anyway). So "not writable" is
 * a directory root cannot create files in either, /proc, and a path under
 * a regular file ("file/sub") for "cannot create". The lock's pid is
 * checked against a forked child, since the point of the message is
 * naming another process.
 */
#include "internal.h"
#include <ember/graph.h>
#include <ember/inspect.h>
#include "testutil.h"

#include <hdf5.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CKDIR "ck"

/* ---- helpers ---------------------------------------------------------------- */

/* CKDIR holds files only: one level is enough. */
static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(d)) != NULL) {
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                remove(p);
        }
        closedir(d);
    }
    remove(path);
}

static void fresh_dir(void)
{
    rm_rf(CKDIR);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *ckpt_name(char *buf, uint64_t it)
{
    snprintf(buf, 256, CKDIR "/ckpt-%012llu.h5", (unsigned long long)it);
    return buf;
}

static int count_ckpts(void)
{
    int n = 0;
    char p[256];
    for (uint64_t it = 0; it < 64; it++)
        n += exists(ckpt_name(p, it));
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static tu_counter counter;

/* Allocations above this many bytes fail (0: none do). */
static size_t big_fails;

static void *cap_malloc(size_t size, void *ud)
{
    return big_fails && size > big_fails ? NULL : tu_malloc(size, ud);
}

static void *cap_realloc(void *ptr, size_t size, void *ud)
{
    return big_fails && size > big_fails ? NULL : tu_realloc(ptr, size, ud);
}

/* A context on the counting allocator, with this memory budget (0: the
 * default). */
static ember_ctx *new_ctx_budget(size_t budget)
{
    tu_counter_reset(&counter, 0);
    ember_allocator a = {cap_malloc, cap_realloc, tu_free, &counter};
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.allocator = &a;
    o.memory_budget = budget;
    return tu_ctx_opts(&o);
}

static ember_ctx *new_ctx(void)
{
    return new_ctx_budget(0);
}

static void free_ctx(ember_ctx **ctx)
{
    ember_ctx_destroy(ctx);
    assert_int_equal(atomic_load(&counter.live), 0);
}

/* ---- the state every case binds ------------------------------------------------ */

typedef struct {
    ember_ctx *ctx;
    ember_loop *loop;
    ember_ds *ds;    /* i64, 7 partitions of unequal sizes */
    ember_ds *pairs; /* {key: i64, value: f64} */
    int64_t i;
    double f;
    int32_t arr[5];
    unsigned char blob[16];
} state;

static int keep_some(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    for (size_t k = 0; k < n; k++)
        keep[k] = x[k] < 300 || x[k] % 3 != 0;
    return 0;
}

static int add_one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] + 1;
    return 0;
}

static void state_init_budget(state *s, size_t budget)
{
    char msg[EMBER_MSG_SIZE];
    memset(s, 0, sizeof *s);
    s->ctx = new_ctx_budget(budget);
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, s->ctx, 0, 1000, 1, 7, msg), msg);
    TU_OKM(ember_filter(&s->ds, r, keep_some, NULL, 0, msg), msg);
    ember_ds_free(&r);
    struct {
        int64_t k;
        double v;
    } recs[10];
    for (int k = 0; k < 10; k++) {
        recs[k].k = k;
        recs[k].v = k * 0.25;
    }
    ember_type pt = ember_type_pair(EMBER_I64, EMBER_F64);
    TU_OKM(ember_from_array(&s->pairs, s->ctx, &pt, recs, 10, 3, EMBER_COPY,
                            msg), msg);
}

static void state_init(state *s)
{
    state_init_budget(s, 0);
}

/* Creates the loop with o (dir defaults to CKDIR) and binds everything. */
/* Binds every item of s to its loop. */
static void bind_state(state *s)
{
    assert_int_equal(ember_loop_bind_ds(s->loop, "ds", &s->ds), EMBER_OK);
    assert_int_equal(ember_loop_bind_ds(s->loop, "pairs", &s->pairs), EMBER_OK);
    assert_int_equal(ember_loop_bind_i64(s->loop, "i", &s->i), EMBER_OK);
    assert_int_equal(ember_loop_bind_f64(s->loop, "f", &s->f), EMBER_OK);
    assert_int_equal(ember_loop_bind_array(s->loop, "arr", EMBER_I32, s->arr, 5),
                     EMBER_OK);
    assert_int_equal(ember_loop_bind_blob(s->loop, "blob", s->blob,
                                          sizeof s->blob), EMBER_OK);
}

static int state_loop(state *s, ember_loop_opts *o, char *msg)
{
    ember_loop_opts none;
    memset(&none, 0, sizeof none);
    if (!o)
        o = &none;
    if (!o->dir)
        o->dir = CKDIR;
    o->quiet = 1;
    int rc = ember_loop_create(&s->loop, s->ctx, o, msg);
    if (!rc)
        bind_state(s);
    return rc;
}

/* One iteration's work: every bound item changes. */
static void state_step(state *s, uint64_t it)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *y = NULL;
    TU_OKM(ember_map(&y, s->ds, NULL, add_one, NULL, 0, msg), msg);
    ember_ds_free(&s->ds);
    s->ds = y;
    s->i += 7;
    s->f += 0.5;
    for (int k = 0; k < 5; k++)
        s->arr[k] += k + 1;
    s->blob[it % 16] ^= (unsigned char)(it + 1);
}

static void state_free(state *s)
{
    ember_loop_destroy(&s->loop);
    ember_ds_free(&s->ds);
    ember_ds_free(&s->pairs);
    free_ctx(&s->ctx);
}

/* Runs iterations until `done` are counted, checkpointing by o. */
static void run_to(ember_loop_opts *o, uint64_t done)
{
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    while (it < done) {
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    }
    state_free(&s);
}

static void run_every1(uint64_t done, int keep)
{
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.keep = keep;
    run_to(&o, done);
}

/* resume_said: a loop that prints its progress (not quiet) asks for
 * `iterations` and restores from CKDIR; rc is what its first next gave. */
typedef struct {
    uint64_t iterations;
    int rc;
} resume_said_arg;

static void resume_said(void *arg)
{
    resume_said_arg *a = arg;
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_loop_opts o = {.dir = CKDIR, .every = 1, .iterations = a->iterations};
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg); /* not quiet */
    bind_state(&s);
    uint64_t it;
    a->rc = ember_loop_next(s.loop, &it, msg);
    state_free(&s);
}

/* Restores from CKDIR and returns the iteration it resumed at. */
static uint64_t resume_at(ember_loop_opts *o, char *msg, int expect_rc)
{
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, o, msg), msg);
    uint64_t it = UINT64_MAX;
    int rc = ember_loop_next(s.loop, &it, msg);
    assert_int_equal(rc, expect_rc);
    state_free(&s);
    return it;
}


/* ---- the Spark idiom: state built from the previous iteration's --------------- */

/* Each iteration: bc = broadcast(x); nx = map(x, step) reading bc;
 * ember_ds_uses(nx, bc); free bc; persist(nx); sum(nx); x = nx, bound to a
 * loop that checkpoints every 10. What ember holds must stay flat after
 * the first checkpoint (its own accounting, deterministic), the lineage
 * depth bounded, and a checkpoint must never compute a record again. */

typedef struct {
    int64_t key;
    double value;
} jrec;

typedef struct {
    const ember_bcast *bc;
} jarg;

static atomic_long jacobi_records;

/* y[k] = (x[k-1] + x[k+1]) / 4 + 1 around a ring, x read from the
 * broadcast. */
static double jacobi_value(const jrec *b, size_t m, size_t k)
{
    return 0.25 * (b[(k + 1) % m].value + b[(k + m - 1) % m].value) + 1.0;
}

static int jacobi_step(const void *in, void *out, size_t n, void *arg)
{
    const jarg *a = arg;
    size_t m = 0;
    const jrec *b = ember_bcast_data(a->bc, &m);
    const jrec *x = in;
    jrec *y = out;
    for (size_t i = 0; i < n; i++) {
        y[i].key = x[i].key;
        y[i].value = jacobi_value(b, m, (size_t)x[i].key);
    }
    atomic_fetch_add(&jacobi_records, (long)n);
    return 0;
}

enum { J_N = 512, J_ITERS = 1000, J_EVERY = 10 };

typedef struct {
    size_t live_bytes[J_ITERS];
    size_t live_datasets[J_ITERS];
    size_t depth[J_ITERS];
} jtrace;

static size_t max_over(const size_t *v, size_t lo, size_t hi)
{
    size_t m = 0;
    for (size_t i = lo; i < hi; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* Runs the idiom at `level` and leaves the trace in *t; checks the result
 * against plain C and that every record was computed exactly once. With
 * checkpoints every J_EVERY iterations, or none (the loop then cuts deep
 * lineages itself). from_index: each state is mapped from a fixed index
 * dataset and reads the last state only through its broadcast
 * (y = map(idx, broadcast(x))), not mapped from it. */
static void jacobi_run(ember_level level, int checkpoints, int from_index, jtrace *t)
{
    char msg[EMBER_MSG_SIZE];
    fresh_dir();
    ember_ctx *ctx = new_ctx();
    /* One thread: 3,000 small actions, each a parallel region, would spend
     * the test's time in barriers on a loaded machine; the accounting
     * does not depend on the team. */
    TU_OK(ember_ctx_set_threads(ctx, 1));
    jrec *ref = malloc(J_N * sizeof *ref), *tmp = malloc(J_N * sizeof *tmp);
    jarg *args = calloc(J_ITERS, sizeof *args);
    assert_true(ref && tmp && args);
    for (size_t k = 0; k < J_N; k++)
        ref[k] = (jrec){(int64_t)k, (double)(k % 7)};
    ember_type pt = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_ds *x = NULL, *idx = NULL;
    TU_OKM(ember_from_array(&x, ctx, &pt, ref, J_N, 4, EMBER_COPY, msg), msg);
    if (from_index)
        TU_OKM(ember_from_array(&idx, ctx, &pt, ref, J_N, 4, EMBER_COPY, msg), msg);
    ember_loop *loop = NULL;
    ember_loop_opts o = {.dir = checkpoints ? CKDIR : NULL,
                         .every = checkpoints ? J_EVERY : 0, .quiet = 1,
                         .no_signals = 1, .resume = EMBER_RESUME_NEVER};
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_ds(loop, "x", &x));
    atomic_store(&jacobi_records, 0);
    uint64_t it = 0;
    int rc;
    for (rc = ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < J_ITERS;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_bcast *bc = NULL;
        ember_ds *nx = NULL;
        jrec sum;
        TU_OKM(ember_broadcast(&bc, x, msg), msg);
        args[it].bc = bc;
        TU_OKM(ember_map(&nx, from_index ? idx : x, NULL, jacobi_step, &args[it],
                         sizeof args[it], msg), msg);
        TU_OK(ember_ds_uses(nx, bc));
        ember_bcast_free(&bc);
        TU_OKM(ember_persist(nx, level, msg), msg);
        TU_OKM(ember_sum(nx, &sum, msg), msg);
        ember_ds_free(&x);
        x = nx;
        ember_stats st;
        ember_ctx_stats(ctx, &st);
        t->live_bytes[it] = st.live_bytes;
        t->live_datasets[it] = st.live_datasets;
        t->depth[it] = ember_lineage_depth(x);
        if (it + 1 == J_ITERS) {
            rc = ember_loop_finish(loop, msg);
            break;
        }
    }
    TU_OKM(rc, msg);
    assert_int_equal(it + 1, J_ITERS);
    for (int i = 0; i < J_ITERS; i++) {
        for (size_t k = 0; k < J_N; k++)
            tmp[k] = (jrec){(int64_t)k, jacobi_value(ref, J_N, k)};
        memcpy(ref, tmp, J_N * sizeof *ref);
    }
    size_t n = 0;
    jrec *got = tu_collect(x, &n);
    assert_int_equal(n, J_N);
    assert_memory_equal(got, ref, J_N * sizeof *ref);
    free(got);
    /* one computation of every record, checkpoints included */
    assert_int_equal(atomic_load(&jacobi_records), (long)J_N * J_ITERS);
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.recomputes, 0);
    ember_loop_stats ls;
    ember_loop_get_stats(loop, &ls);
    assert_true(ls.checkpoints >= (checkpoints ? J_ITERS / J_EVERY : 0));
    ember_loop_destroy(&loop);
    ember_ds_free(&x);
    ember_ds_free(&idx);
    free(ref);
    free(tmp);
    free(args);
    free_ctx(&ctx);
}

static void test_loop_idiom_memory_flat(void **unused)
{
    (void)unused;
    jtrace *t = calloc(1, sizeof *t);
    assert_non_null(t);
    jacobi_run(EMBER_MEMORY_ONLY, 1, 0, t);
    /* after the first checkpoint a cycle of 10 iterations repeats: its
     * peak is the peak of the whole run */
    size_t first = max_over(t->live_bytes, J_EVERY, 2 * J_EVERY);
    size_t rest = max_over(t->live_bytes, 2 * J_EVERY, J_ITERS);
    if (rest != first)
        fail_msg("live bytes: peak %zu over iterations 10..20, %zu over "
                 "20..1000", first, rest);
    /* x: the checkpoint's blocks + 10 cached states + 10 broadcasts */
    assert_true(first <= (2 * J_EVERY + 1) * J_N * sizeof(jrec));
    assert_int_equal(max_over(t->live_datasets, 2 * J_EVERY, J_ITERS),
                     max_over(t->live_datasets, J_EVERY, 2 * J_EVERY));
    assert_true(max_over(t->live_datasets, 0, J_ITERS) <= 2 * J_EVERY + 2);
    assert_true(max_over(t->depth, 0, J_ITERS) <= J_EVERY);
    free(t);
}

/* Serialized blocks: sizes follow the data, so the bytes are bounded
 * rather than equal; the datasets and depth are exact. */
static void test_loop_idiom_ser_no_recompute(void **unused)
{
    (void)unused;
    jtrace *t = calloc(1, sizeof *t);
    assert_non_null(t);
    jacobi_run(EMBER_MEMORY_ONLY_SER, 1, 0, t);
    size_t first = max_over(t->live_bytes, J_EVERY, 2 * J_EVERY);
    size_t rest = max_over(t->live_bytes, 2 * J_EVERY, J_ITERS);
    if (rest > first + first / 2)
        fail_msg("live bytes: peak %zu over iterations 10..20, %zu over "
                 "20..1000", first, rest);
    assert_int_equal(max_over(t->live_datasets, 2 * J_EVERY, J_ITERS),
                     max_over(t->live_datasets, J_EVERY, 2 * J_EVERY));
    assert_true(max_over(t->depth, 0, J_ITERS) <= J_EVERY);
    free(t);
}

/* Without a checkpoint directory the loop truncates the bound dataset's
 * lineage itself: a state made from the last one and cached is cut after
 * every iteration (a local checkpoint of its blocks), so the run holds the
 * state, the next one and the broadcast, and nothing is computed twice.
 * Before the loop cut lineages, 1,000 iterations held 1,000 states and
 * every action walked all of them; cut every 32 iterations, up to 64.
 * The same for a state that reaches the next one only through a broadcast
 * (y = map(idx, broadcast(x))): the broadcast holds a copy of x's records,
 * not x, so the states the user freed go (idx stays: one dataset more).
 * They stayed alive through their broadcasts' sources, with no lineage
 * edge for the loop to cut: 970 MB after 3,000 iterations of a 160 KB
 * state, and a budget did not bound it. */
static void test_loop_idiom_bounded_without_checkpoints(void **unused)
{
    (void)unused;
    jtrace *t = calloc(1, sizeof *t);
    assert_non_null(t);
    for (int from_index = 0; from_index < 2; from_index++) {
        jacobi_run(EMBER_MEMORY_ONLY, 0, from_index, t);
        assert_true(max_over(t->depth, 0, J_ITERS) <= 1);
        assert_true(max_over(t->live_datasets, 1, J_ITERS) <= 2 + (size_t)from_index);
        /* the state, the next one, the broadcast's copy (or idx) */
        assert_true(max_over(t->live_bytes, 1, J_ITERS) <= 3 * J_N * sizeof(jrec));
    }
    free(t);
}

/* The Spark idiom with the old state unpersisted (cache the new one, run
 * an action, unpersist the old), under a budget that the state does not
 * fit: the loop's cuts (local checkpoints, every 32 iterations here) must
 * not leave a state whose evicted partitions cannot be recomputed. The
 * user's unpersist of a cut state freed its blocks, and iteration 33
 * failed with EMBER_ESTATE ("lost partition ... was it unpersisted?"). */
static void test_loop_idiom_unpersists_old_under_budget(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    enum { N = 20000, ITERS = 70 };
    ember_ctx *ctx = new_ctx_budget(64 * 1024); /* the state: 160 KB */
    ember_ds *r = NULL, *x = NULL;
    TU_OKM(ember_range(&r, ctx, 0, N, 1, 8, msg), msg);
    TU_OKM(ember_map(&x, r, NULL, add_one, NULL, 0, msg), msg);
    ember_ds_free(&r);
    TU_OKM(ember_cache(x, msg), msg);
    ember_loop *loop = NULL;
    ember_loop_opts o = {.quiet = 1, .no_signals = 1};
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_ds(loop, "x", &x));
    uint64_t it = 0;
    int rc;
    for (rc = ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < ITERS;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *nx = NULL;
        int64_t sum = 0;
        TU_OKM(ember_map(&nx, x, NULL, add_one, NULL, 0, msg), msg);
        TU_OKM(ember_cache(nx, msg), msg);
        rc = ember_sum(nx, &sum, msg);
        if (rc)
            fail_msg("iteration %llu: %s", (unsigned long long)it, msg);
        assert_int_equal(sum, (int64_t)N * (N - 1) / 2 + (int64_t)N * (int64_t)(it + 2));
        TU_OK(ember_unpersist(x));
        ember_ds_free(&x);
        x = nx;
    }
    TU_OKM(rc, msg);
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_true(st.evictions > 0);
    size_t n = 0;
    int64_t *got = tu_collect(x, &n);
    assert_int_equal(n, N);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(got[k], (int64_t)k + ITERS + 1);
    free(got);
    ember_loop_destroy(&loop);
    ember_ds_free(&x);
    free_ctx(&ctx);
}

/* Which bound states the loop cuts after an iteration: one made from the
 * state it handed out and stored whole, at once; not one made afresh from
 * other data (it holds no chain), an uncached one (a chain nobody computes
 * runs fused; it is cut only deeper than 32) or one left as it was. */
static void test_loop_cuts_states_made_from_the_last(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = new_ctx();
    ember_ds *src = NULL, *x = NULL;
    TU_OKM(ember_range(&src, ctx, 0, 1000, 1, 4, msg), msg);
    TU_OKM(ember_map(&x, src, NULL, add_one, NULL, 0, msg), msg);
    ember_loop_opts o = {.quiet = 1, .no_signals = 1};
    ember_loop *loop = NULL;
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_ds(loop, "x", &x));
    uint64_t it, n;
    TU_OKM(ember_loop_next(loop, &it, msg), msg);
    /* each step: what the iteration makes x from, cached or not, and the
     * depth x has after the next ember_loop_next */
    const struct { int from_x, cache; size_t depth; } step[] = {
        {1, 1, 0}, /* cache(map(x)): cut */
        {0, 1, 1}, /* cache(map(src)): made afresh, kept */
        {1, 0, 2}, /* map(x), not stored: kept (persisted by the loop) */
        {1, 1, 0}, /* cache(map(x)) again: cut */
        {-1, 0, 0}, /* x unchanged */
    };
    for (size_t s = 0; s < sizeof step / sizeof step[0]; s++) {
        if (step[s].from_x >= 0) {
            ember_ds *nx = NULL;
            TU_OKM(ember_map(&nx, step[s].from_x ? x : src, NULL, add_one, NULL, 0, msg), msg);
            if (step[s].cache)
                TU_OKM(ember_cache(nx, msg), msg);
            TU_OKM(ember_count(nx, &n, msg), msg);
            ember_ds_free(&x);
            x = nx;
        }
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
        assert_int_equal(ember_lineage_depth(x), step[s].depth);
    }
    int64_t sum = 0;
    TU_OKM(ember_sum(x, &sum, msg), msg);
    assert_int_equal(sum, 1000 * 999 / 2 + 3 * 1000); /* src + 3 maps */
    ember_loop_destroy(&loop);
    ember_ds_free(&x);
    ember_ds_free(&src);
    free_ctx(&ctx);
}

static atomic_llong mapped; /* records through add_one_counted */

static int add_one_counted(const void *in, void *out, size_t n, void *arg)
{
    atomic_fetch_add(&mapped, (long long)n);
    return add_one(in, out, n, arg);
}

/* A state made from the last without ember_cache (x = map(x)): in a loop
 * whose iterations run an action, the loop persists each state and cuts it
 * once computed, so each action maps a record at most twice (up to 64
 * times before); in one whose iterations run none (ember-maps), nothing is
 * kept and each map runs once, fused, at the 32-iteration cuts and the
 * last action. The caller may persist a kept state at another level. */
/* A loop without checkpoints over *x = range(0, n) in 4 partitions. */
static ember_loop *loop_over_range(ember_ctx *ctx, ember_ds **x, int64_t n)
{
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_range(x, ctx, 0, n, 1, 4, msg), msg);
    ember_loop_opts o = {.quiet = 1, .no_signals = 1};
    ember_loop *loop = NULL;
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_ds(loop, "x", x));
    return loop;
}

/* ember_loop_next, then whether the loop is below n iterations. */
static int next_below(ember_loop *loop, uint64_t *it, uint64_t n)
{
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_loop_next(loop, it, msg), msg);
    return *it < n;
}

static void test_loop_keeps_uncached_states_actions_compute(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    const int64_t N = 1000, iters = 200;
    for (int act = 1; act >= 0; act--) {
        ember_ctx *ctx = new_ctx();
        ember_ds *x = NULL;
        ember_loop *loop = loop_over_range(ctx, &x, N);
        atomic_store(&mapped, 0);
        uint64_t it;
        int64_t sum = 0;
        while (next_below(loop, &it, (uint64_t)iters)) {
            if (act) /* x kept, made from the last one, cut */
                assert_true(ember_lineage_depth(x) <= 1);
            assert_int_equal(x->loop_kept, act && it >= 1);
            ember_ds *nx = NULL;
            TU_OKM(ember_map(&nx, x, NULL, add_one_counted, NULL, 0, msg), msg);
            if (act)
                TU_OKM(ember_sum(nx, &sum, msg), msg);
            ember_ds_free(&x);
            x = nx;
        }
        TU_OKM(ember_sum(x, &sum, msg), msg);
        assert_int_equal(sum, N * (N - 1) / 2 + iters * N);
        if (act) /* the first action one map, the second two, then 2 each */
            assert_true(atomic_load(&mapped) <= (2 * iters + 1) * N);
        else
            assert_int_equal(atomic_load(&mapped), iters * N);
        ember_ds_free(&x);
        ember_loop_destroy(&loop);
        free_ctx(&ctx);
    }
    /* under a budget that holds half a state, a kept state is not stored
     * whole: it is dropped (the chain is cut every 32 as before), and the
     * sums are right */
    {
        const int64_t NB = 40000; /* a budget of at least one block */
        ember_ctx *ctx = new_ctx_budget((size_t)NB * sizeof(int64_t) / 2);
        ember_ds *x = NULL;
        ember_loop *loop = loop_over_range(ctx, &x, NB);
        uint64_t it;
        int64_t sum = 0;
        while (next_below(loop, &it, (uint64_t)iters)) {
            /* the last state: kept, not whole, dropped (but after a cut
             * of the chain, at 32 and 64, and the iteration after) */
            if (it >= 2 && it % 32 > 1) {
                assert_true(x->loop_kept);
                assert_int_equal(x->parent[0]->level, EMBER_NONE);
                assert_int_equal(ember_cached_partitions(x->parent[0]), 0);
            }
            ember_ds *nx = NULL;
            TU_OKM(ember_map(&nx, x, NULL, add_one, NULL, 0, msg), msg);
            TU_OKM(ember_sum(nx, &sum, msg), msg);
            assert_int_equal(sum, NB * (NB - 1) / 2 + ((int64_t)it + 1) * NB);
            ember_ds_free(&x);
            x = nx;
        }
        ember_ds_free(&x);
        ember_loop_destroy(&loop);
        free_ctx(&ctx);
    }
    /* the caller's persist of a kept state, at another level */
    ember_ctx *ctx = new_ctx();
    ember_ds *x = NULL;
    ember_loop *loop = loop_over_range(ctx, &x, N);
    uint64_t it;
    int64_t sum = 0;
    TU_OKM(ember_loop_next(loop, &it, msg), msg);
    for (int i = 0; i < 2; i++) {
        ember_ds *nx = NULL;
        TU_OKM(ember_map(&nx, x, NULL, add_one, NULL, 0, msg), msg);
        TU_OKM(ember_sum(nx, &sum, msg), msg);
        ember_ds_free(&x);
        x = nx;
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
    }
    assert_true(x->loop_kept);
    char *text = NULL;
    TU_OK(ember_lineage_string(x, &text));
    TU_MSG_HAS(text, "[MEMORY_ONLY, 0/4 cached, kept by the loop]");
    ember_free(ctx, text);
    TU_OKM(ember_persist(x, EMBER_MEMORY_AND_DISK, msg), msg);
    assert_false(x->loop_kept);
    TU_OK(ember_lineage_string(x, &text));
    TU_MSG_HAS(text, "[MEMORY_AND_DISK, 0/4 cached]");
    ember_free(ctx, text);
    TU_OKM(ember_sum(x, &sum, msg), msg);
    assert_int_equal(sum, N * (N - 1) / 2 + 2 * N);
    assert_int_equal(ember_cached_partitions(x), 4);
    ember_ds_free(&x);
    ember_loop_destroy(&loop);
    free_ctx(&ctx);
}

/* ---- cases -------------------------------------------------------------------- */

/* A bound array source (a rank vector, say) is written to the checkpoint
 * straight from its array, not through the executor: the file must still
 * hold its records and its own uneven partition offsets (empty partitions
 * too), and a restore must give back the same partitions and records. */
static void test_loop_array_source_partitions_kept(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    double x[10];
    for (int i = 0; i < 10; i++)
        x[i] = 0.1 * i - 0.35;
    const uint64_t off[5] = {0, 1, 1, 7, 10};
    const size_t want_n[4] = {1, 0, 6, 3};
    ember_type f64 = ember_type_scalar(EMBER_F64);
    for (int own = 0; own < 2; own++) {
        fresh_dir();
        ember_ctx *ctx = new_ctx();
        ember_ds *ds = NULL;
        TU_OKM(ember_from_array_parts(&ds, ctx, &f64, x, 10, off, 4,
                                      own ? EMBER_COPY : EMBER_BORROW, msg), msg);
        ember_loop_opts o;
        memset(&o, 0, sizeof o);
        o.dir = CKDIR;
        o.quiet = 1;
        ember_loop *loop = NULL;
        TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
        assert_int_equal(ember_loop_bind_ds(loop, "v", &ds), EMBER_OK);
        uint64_t it;
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
        TU_OKM(ember_loop_checkpoint(loop, msg), msg);
        ember_loop_destroy(&loop);
        ember_ds_free(&ds);

        char path[256];
        hid_t f = H5Fopen(ckpt_name(path, 1), H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(f >= 0);
        hid_t d = H5Dopen2(f, "/datasets/v", H5P_DEFAULT);
        assert_true(d >= 0);
        double got[10];
        assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                            got) >= 0);
        assert_memory_equal(got, x, sizeof x);
        hid_t a = H5Aopen(d, "partition_offsets", H5P_DEFAULT);
        assert_true(a >= 0);
        uint64_t goff[5];
        assert_true(H5Aread(a, H5T_NATIVE_UINT64, goff) >= 0);
        assert_memory_equal(goff, off, sizeof off);
        H5Aclose(a);
        H5Dclose(d);
        H5Fclose(f);

        /* a placeholder of the same type, one partition: the restore
         * replaces it */
        const double zero[10] = {0};
        TU_OKM(ember_from_array(&ds, ctx, &f64, zero, 10, 1, EMBER_COPY, msg), msg);
        o.resume = EMBER_RESUME_REQUIRE;
        TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
        assert_int_equal(ember_loop_bind_ds(loop, "v", &ds), EMBER_OK);
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
        assert_int_equal(it, 1);
        tu_parts p;
        tu_parts_read(&p, ds);
        assert_int_equal(p.nparts, 4);
        size_t at = 0;
        for (size_t q = 0; q < 4; q++) {
            assert_int_equal(p.n[q], want_n[q]);
            if (p.n[q])
                assert_memory_equal(p.data[q], x + at, p.n[q] * sizeof(double));
            at += p.n[q];
        }
        tu_parts_free(&p);
        ember_loop_destroy(&loop);
        ember_ds_free(&ds);
        free_ctx(&ctx);
    }
    rm_rf(CKDIR);
}

/* The context destroyed before its loop (the order ember.h asks for,
 * easily reversed): the context's handle is cleared at once, but the
 * context lives on until the loop's destroy, which frees it; before, the
 * loop's destroy read freed memory (valgrind, ASan). With a background
 * checkpoint in flight, so the writer also finds its context alive. */
static void test_loop_outlives_ctx_destroy(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    state a;
    state_init(&a);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.async = 1;
    o.every = 2;
    TU_OKM(state_loop(&a, &o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(a.loop, &it, msg), msg);
    while (it < 4) {
        state_step(&a, it);
        TU_OKM(ember_loop_next(a.loop, &it, msg), msg);
    }
    ember_ctx_destroy(&a.ctx); /* the datasets go with it */
    assert_null(a.ctx);
    assert_true(atomic_load(&counter.live) > 0); /* kept for the loop */
    ember_loop_destroy(&a.loop);
    assert_int_equal(atomic_load(&counter.live), 0);
    assert_true(exists(CKDIR "/ckpt-000000000004.h5"));
    /* a context with no loop is freed at once, as ever */
    ember_ctx *c = new_ctx();
    ember_ctx_destroy(&c);
    assert_null(c);
    assert_int_equal(atomic_load(&counter.live), 0);
}

static void test_loop_roundtrip(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    state a;
    state_init(&a);
    TU_OKM(state_loop(&a, NULL, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(a.loop, &it, msg), msg);
    assert_int_equal(it, 0);
    for (int k = 0; k < 3; k++) {
        state_step(&a, it);
        TU_OKM(ember_loop_next(a.loop, &it, msg), msg);
    }
    assert_int_equal(it, 3);
    TU_OKM(ember_loop_checkpoint(a.loop, msg), msg);
    ember_loop_stats st;
    ember_loop_get_stats(a.loop, &st);
    assert_int_equal(st.checkpoints, 1);
    assert_true(st.last_bytes > 0);
    assert_string_equal(st.last_path, CKDIR "/ckpt-000000000003.h5");
    assert_true(exists(CKDIR "/ember.lock"));
    tu_parts want;
    tu_parts_read(&want, a.ds);
    size_t npairs;
    void *pairs_want = tu_collect(a.pairs, &npairs);
    state b;
    memcpy(&b, &a, sizeof b); /* the scalars, for comparison */
    state_free(&a);

    state r;
    state_init(&r);
    TU_OKM(state_loop(&r, NULL, msg), msg);
    ember_ds *before = r.ds;
    TU_OKM(ember_loop_next(r.loop, &it, msg), msg);
    assert_int_equal(it, 3);
    assert_ptr_not_equal(r.ds, before); /* the handle was replaced */
    ember_loop_get_stats(r.loop, &st);
    assert_int_equal(st.restored, 1);
    assert_int_equal(st.restored_from, 3);
    assert_int_equal(r.i, b.i);
    assert_memory_equal(&r.f, &b.f, sizeof r.f);
    assert_memory_equal(r.arr, b.arr, sizeof r.arr);
    assert_memory_equal(r.blob, b.blob, sizeof r.blob);
    /* Same partitions, same records in each: bit-identical resumes. */
    tu_parts got;
    tu_parts_read(&got, r.ds);
    assert_int_equal(got.nparts, want.nparts);
    for (size_t p = 0; p < want.nparts; p++) {
        assert_int_equal(got.n[p], want.n[p]);
        assert_memory_equal(got.data[p], want.data[p], want.n[p] * want.size);
    }
    assert_true(want.n[0] != want.n[6]); /* the partitions were unequal */
    assert_int_equal(ember_lineage_depth(r.ds), 0);
    size_t n2;
    void *pairs_got = tu_collect(r.pairs, &n2);
    assert_int_equal(n2, npairs);
    assert_memory_equal(pairs_got, pairs_want, npairs * 16);
    ember_type pt = ember_type_pair(EMBER_I64, EMBER_F64);
    assert_true(ember_type_equal(ember_ds_type(r.pairs), &pt));
    free(pairs_got);
    free(pairs_want);
    tu_parts_free(&got);
    tu_parts_free(&want);
    state_free(&r);
}

/* Flips a byte inside the first chunk of /datasets/ds: only Fletcher32 can
 * tell. */
static void flip_chunk_byte(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/datasets/ds", H5P_DEFAULT);
    assert_true(d >= 0);
    hsize_t off[1] = {0};
    unsigned mask;
    haddr_t addr;
    hsize_t size;
    assert_true(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    off_t at = (off_t)(addr + size / 2);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x10;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void test_loop_corrupt_fallback(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(3, 3);
    char p[256], msg[EMBER_MSG_SIZE];
    flip_chunk_byte(ckpt_name(p, 3));
    uint64_t it = resume_at(NULL, msg, EMBER_OK);
    assert_int_equal(it, 2);
    TU_MSG_HAS(msg, "ember: skipping checkpoint " CKDIR "/ckpt-000000000003.h5");
}

static void test_loop_truncated_fallback(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(3, 3);
    char p[256], msg[EMBER_MSG_SIZE];
    struct stat st;
    assert_int_equal(stat(ckpt_name(p, 3), &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    assert_int_equal(truncate(ckpt_name(p, 2), 100), 0); /* and the one before */
    uint64_t it = resume_at(NULL, msg, EMBER_OK);
    assert_int_equal(it, 1);
    TU_MSG_HAS(msg, "skipping checkpoint " CKDIR "/ckpt-000000000003.h5");
    TU_MSG_HAS(msg, "skipping checkpoint " CKDIR "/ckpt-000000000002.h5");
}

/* Adds a dangling link /blobs/extra to a checkpoint, then seals it again:
 * a file whose checksum holds but which fails what ember-inspect checks
 * (every item in the groups opens and reads). */
static void add_dangling_blob(const char *path)
{
    char msg[EMBER_MSG_SIZE];
    ember__h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    herr_t rc = f >= 0 ? H5Lcreate_soft("/nowhere", f, "/blobs/extra",
                                         H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (f >= 0)
        H5Fclose(f);
    ember__h5_unlock();
    assert_true(rc >= 0);
    TU_OKM(ember__fsum_seal(path, msg), msg);
}

/* A resume runs the same verification as ember-inspect: an item nothing
 * binds still has to verify, and a file without the checksum header (as
 * ember 0.1.0 wrote) is skipped unread. */
static void test_loop_same_verification_as_inspect(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(3, 3);
    char p[256], msg[EMBER_MSG_SIZE];
    add_dangling_blob(ckpt_name(p, 3));
    ember_ctx *ctx = new_ctx();
    ember_checkpoint_info *info = NULL;
    assert_int_equal(ember_checkpoint_inspect(&info, ctx, p, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "/blobs/extra");
    ember_checkpoint_info_free(ctx, &info);
    free_ctx(&ctx);
    /* zero the header block of the one before */
    int fd = open(ckpt_name(p, 2), O_RDWR);
    assert_true(fd >= 0);
    static const unsigned char zero[EMBER__FSUM_BLOCK];
    assert_int_equal(pwrite(fd, zero, sizeof zero, 0), (ssize_t)sizeof zero);
    close(fd);
    uint64_t it = resume_at(NULL, msg, EMBER_OK);
    assert_int_equal(it, 1);
    TU_MSG_HAS(msg, "skipping checkpoint " CKDIR "/ckpt-000000000003.h5: ");
    TU_MSG_HAS(msg, "/blobs/extra");
    TU_MSG_HAS(msg, "skipping checkpoint " CKDIR "/ckpt-000000000002.h5: ");
    TU_MSG_HAS(msg, "cannot be verified");
}

/* Makes a checkpoint look like ember 0.1.0's: an HDF5 file from its
 * first byte, with no checksum header (the block zeros but the
 * signature; only the first 8 bytes: a damaged header). */
static void as_headerless(const char *path, int whole)
{
    unsigned char block[EMBER__FSUM_BLOCK] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    size_t n = whole ? sizeof block : 8;
    assert_int_equal(pwrite(fd, block, n, 0), (ssize_t)n);
    close(fd);
}

/* Another build's checkpoints (no checksum header, as early ember 0.1.0
 * builds wrote)
 * are that build's run: with nothing else usable, RESUME_AUTO refuses to
 * start afresh over them (it did, and deleted them at its first commit,
 * so a user who upgraded in mid-run lost the run); beside a usable file
 * retention keeps them; RESUME_NEVER owns the directory and deletes them. */
static void test_loop_keeps_other_builds_files(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(3, 2); /* leaves 2 and 3 */
    char p[256], q[256], msg[EMBER_MSG_SIZE];
    as_headerless(ckpt_name(p, 2), 1);
    as_headerless(ckpt_name(p, 3), 1);
    resume_at(NULL, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, CKDIR "/ckpt-000000000003.h5: a checkpoint with no ember checksum "
                    "header, as the first builds of ember 0.1.0 (until 2026-12-02) wrote "
                    "them");
    assert_int_equal(count_ckpts(), 2);
    /* only its first bytes gone: a damaged header, skipped (a fresh start) */
    fresh_dir();
    run_every1(3, 2);
    as_headerless(ckpt_name(p, 2), 0);
    as_headerless(ckpt_name(p, 3), 0);
    assert_int_equal(resume_at(NULL, msg, EMBER_OK), 0);
    /* a usable file beside one (at 9, past this run's): resumed, and the
     * other build's kept */
    fresh_dir();
    run_every1(3, 2);
    assert_int_equal(rename(ckpt_name(p, 3), ckpt_name(q, 9)), 0);
    as_headerless(q, 1);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.keep = 1;
    o.quiet = 1;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 2);
    run_to(&o, 6);
    assert_true(exists(q) && exists(ckpt_name(p, 6)));
    assert_int_equal(count_ckpts(), 2);
    o.resume = EMBER_RESUME_NEVER;
    run_to(&o, 1);
    assert_false(exists(q));
    assert_int_equal(count_ckpts(), 1);
}

static void test_loop_mismatch_refused(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.program = "pagerank";
    o.parameters = "damping=0.85\ntol=1e-9\n";
    run_to(&o, 2);
    char msg[EMBER_MSG_SIZE];
    memset(&o, 0, sizeof o);
    o.program = "pagerank";
    o.parameters = "damping=0.9\ntol=1e-9\nmax=5\n";
    resume_at(&o, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "ckpt-000000000002.h5");
    TU_MSG_HAS(msg, "damping=0.85 (checkpoint) vs damping=0.9 (now)");
    TU_MSG_HAS(msg, "absent (checkpoint) vs max=5 (now)");
    assert_null(strstr(msg, "tol="));
    o.program = "kmeans";
    o.parameters = "damping=0.85\ntol=1e-9\n";
    resume_at(&o, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "program differs: pagerank (checkpoint) vs kmeans (now)");
    /* The same lines but for the last line end: refused (the fingerprint
     * hashes the text), and the message says why no line is named. */
    o.program = "pagerank";
    o.parameters = "damping=0.85\ntol=1e-9";
    resume_at(&o, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "fingerprint differs");
    TU_MSG_HAS(msg, "differ in no line compared");
    /* The files are left alone. */
    assert_int_equal(count_ckpts(), 2);
}

/* The same state bound in another order is the same run: restored by
 * name, every value in its place (a newcomer's reorder was refused with
 * only "fingerprint differs" to go on). */
static void test_loop_bind_order_resumes(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.parameters = "damping=0.85\n";
    run_to(&o, 3);
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    o.resume = EMBER_RESUME_REQUIRE;
    o.dir = CKDIR;
    o.quiet = 1;
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_blob(s.loop, "blob", s.blob, sizeof s.blob), EMBER_OK);
    assert_int_equal(ember_loop_bind_array(s.loop, "arr", EMBER_I32, s.arr, 5), EMBER_OK);
    assert_int_equal(ember_loop_bind_f64(s.loop, "f", &s.f), EMBER_OK);
    assert_int_equal(ember_loop_bind_i64(s.loop, "i", &s.i), EMBER_OK);
    assert_int_equal(ember_loop_bind_ds(s.loop, "pairs", &s.pairs), EMBER_OK);
    assert_int_equal(ember_loop_bind_ds(s.loop, "ds", &s.ds), EMBER_OK);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 3);
    assert_int_equal(s.i, 21);
    assert_true(s.f == 1.5);
    assert_int_equal(s.arr[4], 15);
    int64_t first = 0;
    size_t got = 0;
    TU_OKM(ember_take(s.ds, 1, &first, &got, msg), msg);
    assert_int_equal(got, 1);
    assert_int_equal(first, 3);
    state_free(&s);
    /* another set of names is still refused */
    state_init(&s);
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_f64(s.loop, "f", &s.f), EMBER_OK);
    assert_int_equal(ember_loop_bind_i64(s.loop, "j", &s.i), EMBER_OK);
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_EMISMATCH);
    state_free(&s);
}

/* A loop that calls finish after `it < n` ended it (the last
 * ember_loop_next handed out n, which never runs) has done n iterations:
 * the final checkpoint says n, and a longer run resumed from it matches a
 * straight one. It said n + 1 with the state after n, exit 0 for the
 * longer run, one iteration short. */
static void test_loop_finish_after_loop(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    int64_t straight = 0;
    for (int pass = 0; pass < 3; pass++) {
        uint64_t n = pass == 1 ? 4 : 7;
        if (pass == 0)
            rm_rf(CKDIR);
        ember_loop_opts o;
        memset(&o, 0, sizeof o);
        o.iterations = n;
        state s;
        state_init(&s);
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        int rc;
        for (rc = ember_loop_next(s.loop, &it, msg); rc == EMBER_OK && it < n;
             rc = ember_loop_next(s.loop, &it, msg))
            state_step(&s, it);
        TU_OKM(rc, msg);
        TU_OKM(ember_loop_finish(s.loop, msg), msg);
        ember_loop_stats st;
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.last_iteration, n);
        if (pass == 0) { /* a straight run of 7, then start over */
            straight = s.i;
            state_free(&s);
            rm_rf(CKDIR);
            continue;
        }
        if (pass == 2)
            assert_int_equal(s.i, straight);
        state_free(&s);
    }
    assert_int_equal(straight, 49);
}

/* ember_loop_checkpoint after the step would pair the iterations done with
 * the state one step on: refused when a bound dataset shows it. */
static void test_loop_checkpoint_after_step_refused(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_step(&s, it);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    TU_OKM(ember_loop_checkpoint(s.loop, msg), msg); /* before the step: fine */
    state_step(&s, it);
    assert_int_equal(ember_loop_checkpoint(s.loop, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "\"ds\" changed since ember_loop_next handed out iteration 1");
    TU_MSG_HAS(msg, "before the iteration's step");
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    TU_OKM(ember_loop_checkpoint(s.loop, msg), msg);
    ember_loop_stats st;
    ember_loop_get_stats(s.loop, &st);
    assert_int_equal(st.last_iteration, 2);
    state_free(&s);
}

/* A checkpoint renamed to a later iteration is skipped, not taken for a
 * newer one than it is. */
static void test_loop_renamed_skipped(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(3, 0); /* ckpt 2 and 3 kept */
    char a[256], b[256], msg[EMBER_MSG_SIZE];
    assert_int_equal(rename(ckpt_name(a, 2), ckpt_name(b, 9)), 0);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 3);
    TU_MSG_HAS(msg, "its name says iteration 9, it holds iteration 2");
}

/* A loop with a different state: one more scalar than was written. */
static void test_loop_force_resume(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.parameters = "damping=0.85\n";
    run_to(&o, 2);
    char msg[EMBER_MSG_SIZE];
    memset(&o, 0, sizeof o);
    o.parameters = "damping=0.9\n";
    o.force_resume = 1;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 2);
    TU_MSG_HAS(msg, "damping=0.85 (checkpoint) vs damping=0.9 (now)");
    TU_MSG_HAS(msg, "the resume is forced");

    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, &o, msg), msg);
    int64_t extra = 0;
    assert_int_equal(ember_loop_bind_i64(s.loop, "extra", &extra), EMBER_OK);
    uint64_t it;
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "state differs: absent (checkpoint) vs extra: i64 (now)");
    /* Asked again, the same answer (and nothing leaks: see state_free). */
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "state differs");
    state_free(&s);
}

static void test_loop_retention(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(6, 3);
    char p[256];
    assert_int_equal(count_ckpts(), 3);
    for (uint64_t it = 4; it <= 6; it++)
        assert_true(exists(ckpt_name(p, it)));
    /* Default keep is 2. */
    fresh_dir();
    run_every1(5, 0);
    assert_int_equal(count_ckpts(), 2);
    assert_true(exists(ckpt_name(p, 5)) && exists(ckpt_name(p, 4)));
}

/* A checkpoint that cannot be read (here a name that loops, ELOOP; a
 * permission, an I/O error or a stale network handle alike) stops the
 * run, naming it: skipped like a damaged one, the run started again from
 * an older one and retired it, and the files before it, as stale once it
 * committed (fsys campaign: good checkpoints deleted after a chmod). */
static void test_loop_unreadable_ckpt_stops(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(6, 3);
    char msg[EMBER_MSG_SIZE], p6[256], keep[272], p[256];
    ckpt_name(p6, 6);
    snprintf(keep, sizeof keep, "%s.keep", p6);
    assert_int_equal(rename(p6, keep), 0);
    assert_int_equal(symlink(strrchr(p6, '/') + 1, p6), 0); /* itself */
    ember_loop_opts o = {.every = 1, .keep = 3};
    resume_at(&o, msg, EMBER_EIO);
    TU_MSG_HAS(msg, "cannot read checkpoint " CKDIR "/ckpt-000000000006.h5: ");
    TU_MSG_HAS(msg, "this run stops rather than start again without it");
    assert_true(exists(ckpt_name(p, 5)) && exists(ckpt_name(p, 4)));
    assert_int_equal(unlink(p6), 0);
    assert_int_equal(rename(keep, p6), 0);
    if (geteuid() != 0) { /* root reads any file */
        assert_int_equal(chmod(p6, 0), 0);
        resume_at(&o, msg, EMBER_EIO);
        TU_MSG_HAS(msg, "Permission denied");
        assert_int_equal(chmod(p6, 0644), 0);
    }
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 6);
    assert_true(exists(p6) && exists(ckpt_name(p, 5)) && exists(ckpt_name(p, 4)));
}

/* A resume refused because the checkpoint is past the iterations the run
 * asks for leaves the caller's bound state as it was, and says no restore
 * (review 4: the state was the longer run's by the time of the refusal, so
 * a caller starting again on the same variables went on with it). */
static void test_loop_refused_resume_leaves_state(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(6, 3);
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_ds *ds0 = s.ds;
    ember_loop_opts o = {.every = 1, .iterations = 5};
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it = UINT64_MAX;
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_EMISMATCH);
    assert_non_null(strstr(msg, "is at iteration 6, past the 5 iterations"));
    assert_true(s.ds == ds0); /* the same handle, not the restored one */
    assert_int_equal(s.i, 0);
    assert_true(s.f == 0.0);
    for (int k = 0; k < 5; k++)
        assert_int_equal(s.arr[k], 0);
    for (int k = 0; k < 16; k++)
        assert_int_equal(s.blob[k], 0);
    int64_t sum = 0;
    TU_OKM(ember_sum(s.ds, &sum, msg), msg);
    int64_t want = 0; /* state_init's: keep_some of 0..999 */
    for (int64_t x = 0; x < 1000; x++)
        want += (x < 300 || x % 3 != 0) ? x : 0;
    assert_int_equal(sum, want);
    ember_loop_stats ls;
    ember_loop_get_stats(s.loop, &ls);
    assert_int_equal(ls.restored, 0);
    state_free(&s);
}

/* A run killed after its last commit and before retention leaves a file
 * too many; its rerun resumes at the end and writes nothing new, and still
 * keeps only `keep` (CI's test_loop_kill caught 3 kept of 2), once it goes
 * on past the restore, or at once when the restore is at its last
 * iteration (ember-loopdemo and the README's loop call no finish then:
 * test_loop_kill caught it again on 2026-12-06). A run that stops right
 * after the restore (its caller refuses it: a checkpoint past its
 * --iterations) deletes nothing, whatever its keep: it used to delete the
 * files over its own keep. */
static void test_loop_retention_on_resume(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(6, 3);
    assert_int_equal(count_ckpts(), 3);
    char msg[EMBER_MSG_SIZE], p[256];
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.keep = 2;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 6);
    assert_int_equal(count_ckpts(), 3);
    /* the run asks for fewer iterations than the checkpoint holds: the
     * loop refuses it (ember_loop_opts.iterations), deleting nothing */
    o.iterations = 5;
    resume_at(&o, msg, EMBER_EMISMATCH);
    assert_non_null(strstr(msg, "is at iteration 6, past the 5 iterations"));
    assert_int_equal(count_ckpts(), 3);
    /* a refused resume is not first said to be one (it was) */
    resume_said_arg said = {5, 0};
    char *err = tu_stderr_of(resume_said, &said);
    assert_int_equal(said.rc, EMBER_EMISMATCH);
    assert_null(strstr(err, "resumed from"));
    free(err);
    said.iterations = 7;
    err = tu_stderr_of(resume_said, &said);
    assert_int_equal(said.rc, EMBER_OK);
    assert_non_null(strstr(err, "ember: resumed from " CKDIR "/ckpt-000000000006.h5 (6 "
                                "iterations done)"));
    free(err);
    o.iterations = 7; /* not at its end: waits for a next or finish */
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 6);
    assert_int_equal(count_ckpts(), 3);
    o.iterations = 6; /* at its end: retires the file too many */
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 6);
    assert_int_equal(count_ckpts(), 2);
    assert_false(exists(ckpt_name(p, 4)));
    fresh_dir();
    run_every1(6, 3);
    o.iterations = 0;
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it = 0;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 6);
    TU_OKM(ember_loop_finish(s.loop, msg), msg);
    state_free(&s);
    assert_int_equal(count_ckpts(), 2); /* finish wrote 7 */
    assert_true(exists(ckpt_name(p, 7)) && exists(ckpt_name(p, 6)));
    /* the same after an iteration (a next past the restore) */
    fresh_dir();
    run_every1(6, 3);
    o.keep = 1;
    state_init(&s);
    TU_OKM(state_loop(&s, &o, msg), msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(count_ckpts(), 3);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_free(&s);
    assert_true(count_ckpts() <= 2); /* 4 and 5 retired; 7 may be written */
    assert_false(exists(ckpt_name(p, 5)));
    /* A newer file that fails verification is stale: nothing is retired
     * until this run commits one of its own. */
    fresh_dir();
    run_every1(6, 3);
    FILE *f = fopen(ckpt_name(p, 7), "w");
    assert_non_null(f);
    fputs("not a checkpoint", f);
    fclose(f);
    o.quiet = 1;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 6);
    assert_int_equal(count_ckpts(), 4);
}

/* RESUME_NEVER starts fresh and leaves older files alone until its own
 * first checkpoint commits; then the run owns the directory and every file
 * of an earlier run goes, however few files this run has written (a later
 * RESUME_AUTO must not find the old run's). */
static void test_loop_never_retires_old(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(6, 3); /* leaves 4, 5 and 6 */
    char msg[EMBER_MSG_SIZE], p[256];
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.resume = EMBER_RESUME_NEVER;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 0);
    assert_int_equal(count_ckpts(), 3); /* nothing committed: all kept */
    o.every = 1;
    o.keep = 3;
    run_to(&o, 1);
    assert_true(exists(ckpt_name(p, 1)));
    assert_int_equal(count_ckpts(), 1); /* 4, 5 and 6 retired */
    run_to(&o, 2);
    assert_true(exists(ckpt_name(p, 1)) && exists(ckpt_name(p, 2)));
    assert_int_equal(count_ckpts(), 2);
    /* RESUME_AUTO now resumes this run's newest */
    memset(&o, 0, sizeof o);
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 2);
}

/* "info." parameter lines are recorded, not compared: an input's path
 * may change (a moved copy), its content lines may not. */
static void test_loop_info_parameters(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.parameters = "input.xxh3=00aa\ninfo.input.path=/a/g.el\n";
    run_to(&o, 2);
    char msg[EMBER_MSG_SIZE];
    memset(&o, 0, sizeof o);
    o.parameters = "input.xxh3=00aa\ninfo.input.path=/scratch/g.el\n";
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 2);
    o.parameters = "input.xxh3=00aa\n"; /* no info line at all: the same */
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 2);
    o.parameters = "input.xxh3=00bb\ninfo.input.path=/a/g.el\n";
    resume_at(&o, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "input.xxh3=00aa (checkpoint) vs input.xxh3=00bb (now)");
    assert_null(strstr(msg, "info."));
}

/* Resumes from CKDIR (force_resume as o says), runs on to iteration to,
 * and returns what ember_loop_forced said, its note in note. */
static int forced_at(ember_loop_opts *o, char *note, size_t size, uint64_t to)
{
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    int forced = ember_loop_forced(s.loop, note, size);
    while (it < to) { /* on, so later files are this run's */
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    }
    state_free(&s);
    return forced;
}

/* A fresh run of "forced-test" with these parameters, to iteration 2, a
 * checkpoint every iteration; o is set for the resumes that follow. */
static void forced_test_run(ember_loop_opts *o, const char *parameters)
{
    fresh_dir();
    memset(o, 0, sizeof *o);
    o->every = 1;
    o->quiet = 1;
    o->program = "forced-test";
    o->parameters = parameters;
    run_to(o, 2);
}

/* A resume by force is said by ember_loop_forced, and recorded in the
 * files that follow it ("info.forced=", out of the fingerprint): a later
 * resume without force carries it on, and says so; a run that never was
 * forced says nothing. (A forced run's files later resumed as "the same
 * run" named only the new parameters.) */
static void test_loop_forced_is_recorded(void **unused)
{
    (void)unused;
    ember_loop_opts o;
    forced_test_run(&o, "tolerance=0.001\n");
    char note[EMBER_MSG_SIZE];
    assert_int_equal(forced_at(&o, note, sizeof note, 4), 0); /* the same run */
    assert_string_equal(note, "");
    o.parameters = "tolerance=1e-09\n";
    o.force_resume = 1;
    assert_int_equal(forced_at(&o, note, sizeof note, 6), 1);
    TU_MSG_HAS(note, "at iteration 4 of a run of forced-test: parameters differ");
    TU_MSG_HAS(note, "tolerance=0.001 (checkpoint) vs tolerance=1e-09 (now)");
    o.force_resume = 0; /* its files are this run's now, and say how */
    char again[EMBER_MSG_SIZE];
    assert_int_equal(forced_at(&o, again, sizeof again, 8), 2);
    assert_string_equal(again, note);
    assert_int_equal(forced_at(&o, again, sizeof again, 10), 2);
    assert_string_equal(again, note);
}

/* A file of ember 0.1.0 (no records_forced attribute; its builds before
 * 2026-12-06 20:11 did not record a resume by force) may carry on a
 * forced run: the resume says so (3, "unknown: ..."), records it, and a
 * resume of the files that follow says it again. (Such a file of a forced
 * run resumed as a clean one: ember-cc wrote another graph's components,
 * exit 0.) */
static void test_loop_forced_unknown_in_older_files(void **unused)
{
    (void)unused;
    ember_loop_opts o;
    forced_test_run(&o, NULL);
    char path[256], msg[EMBER_MSG_SIZE], note[EMBER_MSG_SIZE];
    ember__h5_lock();
    hid_t f = H5Fopen(ckpt_name(path, 2), H5F_ACC_RDWR, H5P_DEFAULT);
    herr_t rc = f >= 0 ? H5Adelete(f, "records_forced") : -1;
    if (f >= 0)
        H5Fclose(f);
    ember__h5_unlock();
    assert_true(rc >= 0);
    TU_OKM(ember__fsum_seal(path, msg), msg);
    assert_int_equal(forced_at(&o, note, sizeof note, 4), 3);
    TU_MSG_HAS(note, "unknown: " CKDIR "/ckpt-000000000002.h5, at iteration 2, was "
                     "written by ember " EMBER_VERSION_STRING ", which does not record "
                     "whether its run was resumed by force");
    char again[EMBER_MSG_SIZE];
    assert_int_equal(forced_at(&o, again, sizeof again, 6), 3);
    assert_string_equal(again, note);
    /* this build's files of a clean run say nothing */
    forced_test_run(&o, NULL);
    assert_int_equal(forced_at(&o, note, sizeof note, 4), 0);
}

/* The lock file removed under a running loop (a cleanup): the next
 * checkpoint locks a new one; and once another loop has locked a new one,
 * this loop stops at its next checkpoint (EMBER_EBUSY) rather than write
 * beside it. (A second run worked in the directory at once.) */
static void test_loop_lock_file_removed(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_step(&s, it);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(unlink(CKDIR "/ember.lock"), 0);
    state_step(&s, it);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg); /* checkpoints: locks again */
    TU_MSG_HAS(msg, "ember.lock was removed or replaced while this run held the "
                    "directory; locked again");
    assert_true(exists(CKDIR "/ember.lock"));
    ember_loop *other = NULL;
    ember_loop_opts oo = {.dir = CKDIR, .quiet = 1};
    assert_int_equal(ember_loop_create(&other, s.ctx, &oo, msg), EMBER_EBUSY);
    /* removed again, and taken by another loop meanwhile */
    assert_int_equal(unlink(CKDIR "/ember.lock"), 0);
    TU_OKM(ember_loop_create(&other, s.ctx, &oo, msg), msg);
    state_step(&s, it);
    int rc = ember_loop_next(s.loop, &it, msg);
    if (rc != EMBER_EBUSY)
        fail_msg("ember_loop_next returned %d, not EMBER_EBUSY: %s", rc, msg);
    TU_MSG_HAS(msg, "ember.lock was removed or replaced while this process held it, "
                    "and it cannot be locked again");
    TU_MSG_HAS(msg, "is in use by process");
    ember_loop_destroy(&other);
    state_free(&s);
}

/* The lock lost while a checkpoint is written in the background: the run
 * that takes the directory sweeps the write's temporary as a stray, and
 * the write fails ("rename failed: No such file or directory"). The run
 * reports the lost lock, the cause, not the write's failure (it did the
 * second whenever the write had ended before the next step: a flaky
 * test_loop_lock_file_removed). The state is 32 MB, so that the write is
 * seen in flight (its temporary exists); when it commits before the
 * sweep anyway, the next iteration tries again. */
static void test_loop_lock_lost_during_write(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], tmp[264], path[256];
    ember_ctx *ctx = new_ctx();
    size_t n = (size_t)4 << 20;
    double *x = calloc(n, sizeof *x);
    assert_non_null(x);
    ember_loop *L = NULL;
    ember_loop_opts o = {.dir = CKDIR, .quiet = 1, .every = 1};
    TU_OKM(ember_loop_create(&L, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_array(L, "x", EMBER_F64, x, n));
    ember_loop_opts oo = {.dir = CKDIR, .quiet = 1};
    int rc = EMBER_OK, tries = 0;
    for (; tries < 8; tries++) {
        uint64_t it;
        TU_OKM(ember_loop_next(L, &it, msg), msg);
        x[it % n] += 1;
        if (it < 2) /* the first background write is waited for (its cost) */
            continue;
        /* the write of `it` iterations starts at the next step */
        TU_OKM(ember_loop_next(L, &it, msg), msg);
        snprintf(tmp, sizeof tmp, "%s.tmp", ckpt_name(path, it));
        for (int k = 0; k < 20000 && !exists(tmp) && !exists(path); k++)
            usleep(500);
        if (!exists(tmp))
            continue; /* committed already */
        assert_int_equal(unlink(CKDIR "/ember.lock"), 0);
        ember_loop *other = NULL;
        TU_OKM(ember_loop_create(&other, ctx, &oo, msg), msg);
        rc = ember_loop_wait(L, msg);
        ember_loop_destroy(&other);
        if (rc != EMBER_OK)
            break;
        assert_true(exists(path)); /* committed before the sweep: again */
    }
    assert_true(tries < 8);
    if (rc != EMBER_EBUSY)
        fail_msg("ember_loop_wait returned %d, not EMBER_EBUSY: %s", rc, msg);
    TU_MSG_HAS(msg, "ember.lock was removed or replaced while this process held it, "
                    "and it cannot be locked again");
    ember_loop_destroy(&L);
    free(x);
    free_ctx(&ctx);
}

/* A run whose directory another run took meanwhile retires none of that
 * run's checkpoints: a background write that committed after the other run
 * took over was reaped, and its retention run there, before the lost lock
 * was noticed (A's keep of 1 left B, which keeps 5, with its newest file
 * only). */
static void test_loop_lost_lock_retires_nothing(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], path[256];
    ember_ctx *ctx = new_ctx();
    double x[64] = {0}, y[64] = {0};
    ember_loop *A = NULL, *B = NULL;
    ember_loop_opts oa = {.dir = CKDIR, .quiet = 1, .every = 1, .keep = 1};
    ember_loop_opts ob = {.dir = CKDIR, .quiet = 1, .every = 1, .keep = 5};
    TU_OKM(ember_loop_create(&A, ctx, &oa, msg), msg);
    TU_OK(ember_loop_bind_array(A, "x", EMBER_F64, x, 64));
    uint64_t it = 0;
    while (it < 3) {
        TU_OKM(ember_loop_next(A, &it, msg), msg);
        x[it % 64] += 1;
    }
    /* the write of `it` iterations starts at the next step; once it has
     * committed (A has not reaped it), B takes the directory */
    TU_OKM(ember_loop_next(A, &it, msg), msg);
    ckpt_name(path, it);
    for (int k = 0; k < 20000 && !exists(path); k++)
        usleep(500);
    assert_true(exists(path));
    usleep(20000); /* past the commit's last steps */
    assert_int_equal(unlink(CKDIR "/ember.lock"), 0);
    TU_OKM(ember_loop_create(&B, ctx, &ob, msg), msg);
    TU_OK(ember_loop_bind_array(B, "x", EMBER_F64, y, 64));
    uint64_t bt = 0;
    for (int k = 0; k < 4; k++)
        TU_OKM(ember_loop_next(B, &bt, msg), msg);
    TU_OKM(ember_loop_wait(B, msg), msg);
    int before = count_ckpts();
    assert_true(before >= 3);
    int rc = ember_loop_next(A, &it, msg);
    if (rc != EMBER_EBUSY)
        fail_msg("A's next returned %d, not EMBER_EBUSY: %s", rc, msg);
    assert_int_equal(count_ckpts(), before);
    ember_loop_destroy(&A);
    ember_loop_destroy(&B);
    free_ctx(&ctx);
}

/* Many differing parameters: the list is cut after a whole item, and the
 * message still ends with what may be done about it. */
static void test_loop_mismatch_long_list(void **unused)
{
    (void)unused;
    fresh_dir();
    char a[1200], b[1200];
    size_t na = 0, nb = 0;
    for (int k = 0; k < 40; k++) {
        na += (size_t)snprintf(a + na, sizeof a - na, "parameter_%02d=1\n", k);
        nb += (size_t)snprintf(b + nb, sizeof b - nb, "parameter_%02d=2\n", k);
    }
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.parameters = a;
    run_to(&o, 2);
    char msg[EMBER_MSG_SIZE];
    memset(&o, 0, sizeof o);
    o.parameters = b;
    resume_at(&o, msg, EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "parameters differ: parameter_00=1 (checkpoint) vs parameter_00=2 (now)");
    TU_MSG_HAS(msg, "(now), and more; force_resume would resume anyway");
    assert_true(strlen(msg) < EMBER_MSG_SIZE - 1);
    assert_null(strstr(msg, "parameter_39"));
}

static void test_loop_tmp_swept(void **unused)
{
    (void)unused;
    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    /* The third: Open MPI's lock test beside a checkpoint being written,
     * left by a killed job. */
    const char *stray[] = {CKDIR "/ckpt-000000000005.h5.tmp", CKDIR "/ckpt-spare.tmp",
                           CKDIR "/ckpt-000000000178.h5.tmp.locktest.0",
                           CKDIR "/ds-0123456789abcdef-4-map.h5.tmp",
                           CKDIR "/ember-shared.tmp",
                           CKDIR "/x.tmp"}; /* another program's: kept */
    for (int k = 0; k < 6; k++) {
        FILE *f = fopen(stray[k], "w");
        assert_non_null(f);
        fputs("half a file", f);
        fclose(f);
    }
    FILE *f = fopen(CKDIR "/notes.txt", "w");
    assert_non_null(f);
    fclose(f);
    /* A dataset checkpoint being written by another process, which takes
     * no loop lock (review 4: the sweep removed it and the writer failed):
     * held by its writer, it stays. */
    const char *live = CKDIR "/ds-fedcba9876543210-1-range.h5.tmp";
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int fd = ember__tmp_hold(live);
        char c = fd >= 0 ? 'y' : 'n';
        if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
            _exit(2);
        _exit(fd >= 0 ? 0 : 1);
    }
    char c = 0;
    assert_int_equal(read(up[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_loop_opts o = {.dir = CKDIR, .quiet = 1};
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    assert_false(exists(stray[0]));
    assert_false(exists(stray[1]));
    assert_false(exists(stray[2]));
    assert_false(exists(stray[3]));
    assert_false(exists(stray[4]));
    assert_true(exists(stray[5]));
    assert_true(exists(CKDIR "/notes.txt"));
    assert_true(exists(live));
    ember_loop_destroy(&loop);
    /* its writer killed: the next loop removes it */
    assert_int_equal(write(down[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int k = 0; k < 4; k++)
        close(k < 2 ? up[k] : down[k - 2]);
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    assert_false(exists(live));
    ember_loop_destroy(&loop);
    free_ctx(&ctx);
}

static void test_loop_require_none(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], p[256];
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.resume = EMBER_RESUME_REQUIRE;
    state s; /* no directory: refused at create, and none is made */
    state_init(&s);
    assert_int_equal(state_loop(&s, &o, msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "no usable checkpoint in " CKDIR " (resume required; the directory "
                    "does not exist)");
    assert_false(exists(CKDIR));
    state_free(&s);
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    resume_at(&o, msg, EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "no usable checkpoint in " CKDIR);
    TU_MSG_HAS(msg, "0 files rejected");
    run_every1(1, 2);
    assert_int_equal(truncate(ckpt_name(p, 1), 10), 0);
    resume_at(&o, msg, EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "1 file rejected, each with its reason above");
    /* said once, as it happened, not again in the error */
    assert_null(strstr(msg, "skipping checkpoint"));
    /* AUTO starts fresh instead, with the warning. */
    o.resume = EMBER_RESUME_AUTO;
    assert_int_equal(resume_at(&o, msg, EMBER_OK), 0);
    TU_MSG_HAS(msg, "skipping checkpoint " CKDIR "/ckpt-000000000001.h5");
}

static void test_loop_dir_is_file(void **unused)
{
    (void)unused;
    fresh_dir();
    FILE *f = fopen(CKDIR, "w");
    assert_non_null(f);
    fclose(f);
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_loop_opts o = {.dir = CKDIR, .quiet = 1};
    assert_true(ember_loop_create(&loop, ctx, &o, msg) < 0);
    assert_null(loop);
    TU_MSG_HAS(msg, "checkpoint dir " CKDIR " is not a directory");
    o.dir = CKDIR "/sub"; /* mkdir under a file: ENOTDIR, root or not */
    assert_true(ember_loop_create(&loop, ctx, &o, msg) < 0);
    TU_MSG_HAS(msg, CKDIR "/sub");
    TU_MSG_HAS(msg, strerror(ENOTDIR));
    free_ctx(&ctx);
    remove(CKDIR);
}

/* A checkpoint directory whose parents are missing is made with them, as
 * the context's is (it used to be made one level only); one under a file
 * names both. */
static void test_loop_dir_parents_made(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_loop_opts o = {.dir = CKDIR "/a/b", .quiet = 1};
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    assert_true(exists(CKDIR "/a/b/ember.lock"));
    ember_loop_destroy(&loop);
    rm_rf(CKDIR "/a/b");
    rm_rf(CKDIR "/a");
    FILE *f = fopen(CKDIR "/f", "w");
    assert_non_null(f);
    fclose(f);
    o.dir = CKDIR "/f/x/y";
    assert_true(ember_loop_create(&loop, ctx, &o, msg) < 0);
    assert_null(loop);
    TU_MSG_HAS(msg, "checkpoint dir " CKDIR "/f/x/y: ");
    TU_MSG_HAS(msg, strerror(ENOTDIR));
    TU_MSG_HAS(msg, "(at " CKDIR "/f)");
    free_ctx(&ctx);
    fresh_dir();
}

/* /proc is a directory in which nobody, root included, creates files. */
static void test_loop_dir_unwritable(void **unused)
{
    (void)unused;
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_loop_opts o = {.dir = "/proc", .quiet = 1};
    assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_EIO);
    assert_null(loop);
    TU_MSG_HAS(msg, "checkpoint dir /proc is not writable");
    TU_MSG_HAS(msg, "/proc/ember.lock");
    free_ctx(&ctx);
}

/* A child holds the directory: the parent is refused with the child's pid;
 * once the child is killed (no clean-up at all), the lock is free. */
static void test_loop_busy(void **unused)
{
    (void)unused;
    fresh_dir();
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No OpenMP team in the child: only the lock is taken. */
        ember_ctx *ctx = NULL;
        ember_loop *loop = NULL;
        ember_ctx_opts co = {.threads = 1};
        ember_loop_opts o = {.dir = CKDIR, .quiet = 1, .no_signals = 1};
        char c = ember_ctx_create(&ctx, &co, NULL) == 0 &&
                         ember_loop_create(&loop, ctx, &o, NULL) == 0
                     ? 'y'
                     : 'n';
        if (write(up[1], &c, 1) != 1)
            _exit(3);
        if (read(down[0], &c, 1) < 0)
            _exit(4);
        _exit(0); /* never reached in the test: the parent kills it */
    }
    char c = 0;
    assert_int_equal(read(up[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    /* The holder's spare (a retired checkpoint kept for its next write):
     * a refused run must leave it alone. */
    FILE *sp = fopen(CKDIR "/" EMBER__CK_SPARE, "w");
    assert_non_null(sp);
    fclose(sp);
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    char msg[EMBER_MSG_SIZE], want[128];
    ember_loop_opts o = {.dir = CKDIR, .quiet = 1};
    assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_EBUSY);
    snprintf(want, sizeof want, "checkpoint dir " CKDIR " is in use by process %ld",
             (long)pid);
    TU_MSG_HAS(msg, want);
    assert_true(exists(CKDIR "/" EMBER__CK_SPARE));
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    /* The lock file now names us. */
    FILE *f = fopen(CKDIR "/ember.lock", "r");
    assert_non_null(f);
    long holder = 0;
    assert_int_equal(fscanf(f, "%ld", &holder), 1);
    fclose(f);
    assert_int_equal(holder, (long)getpid());
#ifdef F_OFD_SETLK
    /* Open-file-description locks: a second loop of this process is
     * refused too. */
    ember_loop *second = NULL;
    sp = fopen(CKDIR "/" EMBER__CK_SPARE, "w"); /* ours now */
    assert_non_null(sp);
    fclose(sp);
    assert_int_equal(ember_loop_create(&second, ctx, &o, msg), EMBER_EBUSY);
    snprintf(want, sizeof want, "in use by process %ld, this one's pid: another loop "
             "or stream of this process", (long)getpid());
    TU_MSG_HAS(msg, want);
    assert_true(exists(CKDIR "/" EMBER__CK_SPARE));
#endif
    ember_loop_destroy(&loop);
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    ember_loop_destroy(&loop);
    close(up[0]), close(up[1]), close(down[0]), close(down[1]);
    free_ctx(&ctx);
}

/* Runs `iters` iterations of a loop made with o, sleeping ms in each, and
 * returns which ones ended with a checkpoint (bit k: after iteration k+1
 * was counted). */
static uint64_t checkpointed_at(ember_loop_opts *o, int iters, long ms,
                                void (*each)(state *, uint64_t))
{
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, o, msg), msg);
    uint64_t it, bits = 0;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    for (int k = 0; k < iters; k++) {
        (each ? each : state_step)(&s, it);
        if (ms)
            sleep_ms(ms);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        ember_loop_stats st;
        ember_loop_get_stats(s.loop, &st);
        if (st.last_was_checkpoint)
            bits |= 1ULL << k;
    }
    state_free(&s);
    return bits;
}

static void test_loop_every(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o = {.every = 3};
    /* Iterations 3, 6, 9 done: bits 2, 5, 8. */
    assert_int_equal(checkpointed_at(&o, 10, 0, NULL), 0x124);
    char p[256];
    assert_true(exists(ckpt_name(p, 9)) && exists(ckpt_name(p, 6)));
}

static void test_loop_seconds(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o = {.seconds = 0.45};
    /* 300 ms a step: 300 < 450, 600 >= 450, then 300, 600 again. */
    uint64_t bits = checkpointed_at(&o, 4, 300, NULL);
    assert_int_equal(bits, 0xA);
}

static void test_loop_depth(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o = {.max_depth = 3};
    /* The filter makes ds depth 1; each step adds a map: depth 2, 3 (cut
     * to 0 by the checkpoint), 1, 2, 3 (cut) ... */
    uint64_t bits = checkpointed_at(&o, 7, 0, NULL);
    assert_int_equal(bits, 0x12);
}

/* The Spark idiom: each state cached and computed. The loop cuts such a
 * state after every iteration, so its own depth stays 1; max_depth counts
 * what the cuts took off, and checkpoints every 4 iterations (it never
 * did, and a kill lost the whole run). */
static void cached_step(state *s, uint64_t it)
{
    char msg[EMBER_MSG_SIZE];
    int64_t sum = 0;
    state_step(s, it);
    TU_OKM(ember_cache(s->ds, msg), msg);
    TU_OKM(ember_sum(s->ds, &sum, msg), msg);
}

static void test_loop_depth_cached(void **unused)
{
    (void)unused;
    fresh_dir();
    ember_loop_opts o = {.max_depth = 4};
    /* the filter and 3 maps, then 4 maps after each checkpoint */
    assert_int_equal(checkpointed_at(&o, 12, 0, cached_step), 0x444);
}

static void test_loop_young(void **unused)
{
    (void)unused;
    fresh_dir();
    /* The first iteration measures C. With an MTBF of a year the interval
     * sqrt(2 C MTBF) is far beyond the test; with 1 ns it is ~0. */
    ember_loop_opts o = {.mtbf = 3.15e7};
    assert_int_equal(checkpointed_at(&o, 5, 0, NULL), 0x1);
    fresh_dir();
    ember_loop_opts fast = {.mtbf = 1e-9};
    assert_int_equal(checkpointed_at(&fast, 5, 2, NULL), 0x1F);
}

static int caught_before;
static void before_handler(int sig)
{
    (void)sig;
    caught_before++;
}

/* before_handler on sig (the program's own action before a loop), its
 * count at 0. */
static void handle_before(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = before_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, NULL), 0);
    caught_before = 0;
}

static void test_loop_signal(void **unused)
{
    (void)unused;
    fresh_dir();
    struct sigaction now;
    handle_before(SIGUSR1);
    char msg[EMBER_MSG_SIZE], p[256];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_step(&s, it);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(ember_loop_signalled(s.loop), 0);
    state_step(&s, it);
    raise(SIGUSR1);
    assert_int_equal(caught_before, 0); /* the loop's handler ran */
    assert_int_equal(ember_loop_signalled(s.loop), 1);
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_INTERRUPTED);
    assert_true(exists(ckpt_name(p, 2)));
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_ESTATE);
    state_free(&s);
    assert_int_equal(sigaction(SIGUSR1, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, before_handler);
    raise(SIGUSR1);
    assert_int_equal(caught_before, 1);
    /* The resumed run starts at 2. */
    memset(msg, 0, sizeof msg);
    assert_int_equal(resume_at(NULL, msg, EMBER_OK), 2);
    signal(SIGUSR1, SIG_DFL);
}

/* ember_loop_catch_early: a signal before the loop exists is held, and
 * the loop stops at its first chance as for a signal that came after the
 * first ember_loop_next (after that iteration, checkpointed); the loop's
 * end puts back the action from before the early catch. */
static void test_loop_catch_early(void **unused)
{
    (void)unused;
    fresh_dir();
    struct sigaction now;
    handle_before(SIGUSR1);
    char msg[EMBER_MSG_SIZE], p[256];
    TU_OKM(ember_loop_catch_early(msg), msg);
    raise(SIGUSR1); /* while the program would still be loading */
    assert_int_equal(caught_before, 0);
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(ember_loop_signalled(s.loop), 1);
    state_step(&s, it);
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_INTERRUPTED);
    assert_true(exists(ckpt_name(p, 1)));
    state_free(&s);
    assert_int_equal(sigaction(SIGUSR1, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, before_handler);
    /* a loop made later catches afresh: nothing is held */
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_free(&s);
    signal(SIGUSR1, SIG_DFL);
    fresh_dir();
}

static void test_loop_no_signals(void **unused)
{
    (void)unused;
    fresh_dir();
    handle_before(SIGTERM);
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_loop_opts o = {.no_signals = 1};
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    raise(SIGTERM);
    assert_int_equal(caught_before, 1);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(ember_loop_signalled(s.loop), 0);
    state_free(&s);
    signal(SIGTERM, SIG_DFL);
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The decision is checked against times measured from outside the loop
 * (iteration lengths, checkpoint costs), not against fixed numbers: a
 * checkpoint's cost is mostly fsync, which on a loaded machine jitters
 * from milliseconds to half a second. */
static void test_loop_deadline(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    double start = wall(), deadline = start + 1.0;
    state s;
    state_init(&s);
    ember_loop_opts o = {.deadline = deadline};
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it;
    int rc = ember_loop_next(s.loop, &it, msg), steps = 0;
    double ret = wall(), call = ret, it_max = 0;
    /* What the loop knew at the last check that went on: when that check
     * began, the last 4 steps' longest (the loop plans with the max of the
     * last 4, src/loop.c ITER_TIMES) and the last checkpoint's cost. */
    double recent[4] = {0}, prev_call = ret, prev_win = 0, prev_cost = 0;
    ember_loop_stats st;
    while (rc == EMBER_OK && steps < 100) {
        state_step(&s, it);
        sleep_ms(100);
        call = wall();
        recent[steps % 4] = call - ret;
        steps++;
        it_max = call - ret > it_max ? call - ret : it_max;
        rc = ember_loop_next(s.loop, &it, msg);
        ret = wall();
        ember_loop_get_stats(s.loop, &st);
        if (rc == EMBER_OK) {
            prev_call = call;
            prev_win = 0;
            for (int i = 0; i < 4; i++)
                prev_win = recent[i] > prev_win ? recent[i] : prev_win;
            prev_cost = st.last_seconds;
        }
    }
    assert_int_equal(rc, EMBER_INTERRUPTED);
    assert_int_equal(st.last_was_checkpoint, 1);
    char p[256];
    assert_true(exists(ckpt_name(p, (uint64_t)steps)));
    /* The first step's checkpoint measures the cost. */
    assert_true(exists(ckpt_name(p, 1)));
    /* It stopped at a check that began before the deadline, unless the
     * step before that check took longer than the loop could plan for: a
     * check that went on at prev_call did so because a step as long as the
     * longest of the last 4 and 1.5 checkpoints still fitted; a machine
     * that stalls the process for longer than that margin (a loaded one
     * does) delays the next check past the deadline whatever the loop
     * decided. A loop that went on without room for that is still caught:
     * the next check then comes after the deadline without any such overrun. */
    if (!(call < deadline) && !(call - prev_call > prev_win + 1.5 * prev_cost))
        fail_msg("the last check began %.3f s after the deadline; the check before "
                 "it went on %.3f s before the deadline with steps of up to %.3f s "
                 "and a checkpoint cost of %.3f s, and the step took %.3f s",
                 call - deadline, deadline - prev_call, prev_win, prev_cost,
                 call - prev_call);
    /* ... and only when one more step and a checkpoint would not fit. The
     * loop plans with each checkpoint's start-to-commit time, a background
     * one's known only once it has committed (at some later call; a slow
     * fsync under load makes it long), and with a step's time until then:
     * all the checkpoints' time together bounds what it planned with. */
    double cost = st.checkpoint_seconds > it_max ? st.checkpoint_seconds : it_max;
    if (ret + it_max + 1.5 * cost + 0.05 < deadline)
        fail_msg("stopped %.3f s before the deadline; steps take up to %.3f s "
                 "and checkpoints %.3f s in all", deadline - ret, it_max,
                 st.checkpoint_seconds);
    state_free(&s);
}

/* The checkpoint directory damaged under a running loop, between two
 * checkpoints (damage, after the checkpoint of 2 committed): the lock
 * check before the next one notices, and its failure says want of that
 * checkpoint, never that it is intact. */
static void dir_damaged(void (*damage)(void), const char *want)
{
    for (int async = 0; async < 2; async++) {
        fresh_dir();
        char msg[EMBER_MSG_SIZE], p[256];
        state s;
        state_init(&s);
        ember_loop_opts o;
        memset(&o, 0, sizeof o);
        o.every = 2;
        o.async = async;
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        int rc = ember_loop_next(s.loop, &it, msg);
        for (int k = 0; rc == EMBER_OK && k < 2; k++) {
            state_step(&s, it);
            rc = ember_loop_next(s.loop, &it, msg);
        }
        TU_OKM(rc, msg);
        TU_OKM(ember_loop_wait(s.loop, msg), msg); /* the checkpoint of 2, committed */
        assert_true(exists(ckpt_name(p, 2)));
        damage();
        for (int k = 0; rc == EMBER_OK && k < 2; k++) {
            state_step(&s, it);
            rc = ember_loop_next(s.loop, &it, msg);
        }
        assert_true(rc < 0);
        TU_MSG_HAS(msg, want);
        assert_null(strstr(msg, "intact"));
        state_free(&s);
        rm_rf(CKDIR);
    }
}

static void remove_dir(void)
{
    rm_rf(CKDIR);
    assert_false(exists(CKDIR));
}

/* Removed whole: the last checkpoint is gone too, as a failed write says
 * (test_loop_baddir 2c meets either, as the timing falls). */
static void test_loop_dir_removed(void **unused)
{
    (void)unused;
    dir_damaged(remove_dir, "the checkpoint of iteration 2 is gone too");
}

static void replace_lock(void)
{
    assert_int_equal(unlink(CKDIR "/ember.lock"), 0);
    assert_int_equal(mkdir(CKDIR "/ember.lock", 0755), 0);
}

/* The lock replaced by something that cannot be locked (a directory of
 * that name), the last checkpoint still there: whatever replaced the lock
 * may remove it next (`rm -rf` removes one file at a time), so it may be
 * gone too. */
static void test_loop_lock_replaced(void **unused)
{
    (void)unused;
    dir_damaged(replace_lock, "the checkpoint of iteration 2 may be gone too");
}

/* Refused bindings, for tu_stderr_of: before the loop starts (names) and
 * after (bind_late). */
static void bind_refusals(void *loop)
{
    double d = 0;
    ember_ds *none = NULL;
    assert_int_equal(ember_loop_bind_f64(loop, "v", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(loop, "a/b", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_ds(loop, "n", &none), EMBER_EINVAL);
}

static void bind_late(void *loop)
{
    double d = 0;
    assert_int_equal(ember_loop_bind_f64(loop, "late", &d), EMBER_ESTATE);
}

static void test_loop_bind_errors(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_loop_opts o = {.dir = CKDIR, .quiet = 1};
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg);
    int64_t v = 0;
    double d = 0;
    char big[40], *err;
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ember_loop_bind_i64(s.loop, "v", &v), EMBER_OK);
    assert_int_equal(ember_loop_bind_f64(s.loop, "v", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_ds(s.loop, "v", &s.ds), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, "", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, NULL, &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, "a/b", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, ".", &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, big, &d), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, "d", NULL), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_array(s.loop, "a", EMBER_F64, &d, 0),
                     EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_array(s.loop, "a", EMBER_F64, &d, SIZE_MAX / 4),
                     EMBER_EINVAL); /* its bytes would overflow */
    assert_int_equal(ember_loop_bind_array(s.loop, "a", (ember_scalar)99, &d, 1),
                     EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_blob(s.loop, "b", &d, 0), EMBER_EINVAL);
    ember_ds *none = NULL;
    assert_int_equal(ember_loop_bind_ds(s.loop, "n", &none), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_f64(s.loop, "ok.name-2_x", &d), EMBER_OK);
    /* the bind calls take no msg: each refusal says why on stderr */
    err = tu_stderr_of(bind_refusals, s.loop);
    assert_string_equal(err, "ember: cannot bind 'v': the name is bound already\n"
                             "ember: cannot bind 'a/b': a name holds letters, digits, '_', "
                             "'-' and '.' only\n"
                             "ember: cannot bind 'n': no dataset (NULL)\n");
    free(err);
    assert_int_equal(ember_loop_checkpoint(s.loop, msg), EMBER_ESTATE);
    assert_int_equal(ember_loop_finish(s.loop, msg), EMBER_ESTATE);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(ember_loop_bind_f64(s.loop, "late", &d), EMBER_ESTATE);
    err = tu_stderr_of(bind_late, s.loop);
    assert_string_equal(err, "ember: cannot bind 'late': the loop has started: bind "
                             "before the first ember_loop_next\n");
    free(err);
    state_free(&s);
    /* Bad options. */
    ember_ctx *ctx = new_ctx();
    ember_loop *loop = NULL;
    ember_loop_opts bad = {.dir = CKDIR, .keep = -1};
    assert_int_equal(ember_loop_create(&loop, ctx, &bad, msg), EMBER_EINVAL);
    ember_loop_opts bad2 = {.dir = CKDIR, .deflate = 10};
    assert_int_equal(ember_loop_create(&loop, ctx, &bad2, msg), EMBER_EINVAL);
    assert_int_equal(ember_loop_create(NULL, ctx, NULL, msg), EMBER_EINVAL);
    /* parameters are name=value lines (empty ones aside) */
    ember_loop_opts params = {.dir = CKDIR, .parameters = "a=1\n\nN 100\n"};
    assert_int_equal(ember_loop_create(&loop, ctx, &params, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "parameters line 3 ('N 100') is not name=value");
    params.parameters = "a=1\n=2";
    assert_int_equal(ember_loop_create(&loop, ctx, &params, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "line 2 ('=2')");
    params.parameters = "a=1\n\nb=x=y";
    TU_OKM(ember_loop_create(&loop, ctx, &params, msg), msg);
    ember_loop_destroy(&loop);
    /* a resume required from a directory that does not exist: refused,
     * and the directory is not made */
    ember_loop_opts req = {.dir = CKDIR "/none/deeper", .resume = EMBER_RESUME_REQUIRE};
    assert_int_equal(ember_loop_create(&loop, ctx, &req, msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "the directory does not exist");
    assert_false(exists(CKDIR "/none"));
    assert_null(loop);
    free_ctx(&ctx);
}

/* A bound dataset replaced by one of another type cannot be written. */
static int to_f64(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    double *y = out;
    for (size_t k = 0; k < n; k++)
        y[k] = (double)x[k];
    return 0;
}

static void test_loop_type_changed(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_loop_opts o = {.every = 1};
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    ember_type ft = ember_type_scalar(EMBER_F64);
    ember_ds *y = NULL;
    TU_OKM(ember_map(&y, s.ds, &ft, to_f64, NULL, 0, msg), msg);
    ember_ds_free(&s.ds);
    s.ds = y;
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "bound dataset ds changed type from i64 to f64");
    assert_int_equal(count_ckpts(), 0);
    state_free(&s);
}

static void test_loop_finish(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], p[256];
    state s;
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    for (;;) {
        state_step(&s, it);
        if (it + 1 == 4)
            break;
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    }
    TU_OKM(ember_loop_finish(s.loop, msg), msg);
    assert_true(exists(ckpt_name(p, 4)));
    assert_int_equal(count_ckpts(), 1);
    assert_int_equal(ember_loop_next(s.loop, &it, msg), EMBER_ESTATE);
    int64_t i = s.i;
    state_free(&s);
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 4);
    assert_int_equal(s.i, i);
    state_free(&s);
}

/* Policy checkpoints go to the background by default: the one an
 * iteration starts is counted only once committed, which the next call
 * that waits does. .sync writes it before ember_loop_next returns; both
 * at once are refused. */
static void test_loop_default_is_async(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE], p[256];
    for (int sync = 0; sync < 2; sync++) {
        fresh_dir();
        state s;
        state_init(&s);
        ember_loop_opts o = {.every = 1, .sync = sync};
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        ember_loop_stats st;
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.last_was_checkpoint, 1);
        assert_int_equal(st.checkpoints, (uint64_t)sync);
        assert_int_equal(st.last_iteration, (uint64_t)sync); /* committed */
        assert_int_equal(exists(ckpt_name(p, 1)), sync);
        state_step(&s, it);
        TU_OKM(ember_loop_finish(s.loop, msg), msg); /* waits for it */
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.checkpoints, 2);
        assert_int_equal(st.last_iteration, 2);
        assert_true(exists(ckpt_name(p, 1)) && exists(ckpt_name(p, 2)));
        state_free(&s);
    }
    state s;
    state_init(&s);
    ember_loop_opts both = {.dir = CKDIR, .async = 1, .sync = 1};
    assert_int_equal(ember_loop_create(&s.loop, s.ctx, &both, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "async and sync");
    state_free(&s);
}

/* caller_seconds is what checkpoints cost the calling thread. A
 * background checkpoint is not counted as written until it commits, but
 * its snapshot was taken on the caller's thread: right after the call
 * that started it, caller_seconds is above 0 and checkpoint_seconds is 0.
 * A synchronous write is timed inside the call that makes it, so there
 * caller_seconds is at least checkpoint_seconds. Either way it is at most
 * the time the test spent inside the loop's calls. */
static double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_loop_caller_seconds(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    for (int sync = 0; sync < 2; sync++) {
        fresh_dir();
        state s;
        state_init(&s);
        ember_loop_opts o = {.every = 1, .sync = sync};
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        double inside = 0, t0 = tu_now();
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        inside += tu_now() - t0;
        state_step(&s, it);
        t0 = tu_now();
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        inside += tu_now() - t0;
        ember_loop_stats st;
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.last_was_checkpoint, 1);
        assert_true(st.caller_seconds > 0);
        if (!sync)
            assert_true(st.checkpoint_seconds == 0); /* not committed yet */
        state_step(&s, it);
        t0 = tu_now();
        TU_OKM(ember_loop_finish(s.loop, msg), msg);
        inside += tu_now() - t0;
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.checkpoints, 2);
        assert_true(st.checkpoint_seconds > 0);
        assert_true(st.caller_seconds <= inside);
        /* finish writes its checkpoint before it returns, inside its call */
        assert_true(st.caller_seconds >= st.last_seconds);
        if (sync)
            assert_true(st.caller_seconds >= st.checkpoint_seconds);
        state_free(&s);
    }
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

/* The state's bytes as collected, to compare runs bit for bit. */
typedef struct {
    int64_t i;
    double f;
    int32_t arr[5];
    unsigned char blob[16];
    int64_t *ds;
    size_t n;
} state_bits;

static void state_bits_take(const state *s, state_bits *b)
{
    b->i = s->i;
    b->f = s->f;
    memcpy(b->arr, s->arr, sizeof b->arr);
    memcpy(b->blob, s->blob, sizeof b->blob);
    b->ds = tu_collect(s->ds, &b->n);
}

static void state_bits_same(const state_bits *a, const state_bits *b)
{
    assert_int_equal(a->i, b->i);
    assert_memory_equal(&a->f, &b->f, sizeof a->f);
    assert_memory_equal(a->arr, b->arr, sizeof a->arr);
    assert_memory_equal(a->blob, b->blob, sizeof a->blob);
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->ds, b->ds, a->n * sizeof *a->ds);
}

/* In the background mode a checkpoint whose snapshot and file image do not
 * fit the context's memory budget, or cannot be allocated (allocations
 * above 1 MiB fail: the image's room), is streamed to the file at once
 * instead (the synchronous mode's write: counted before ember_loop_next
 * returns), and the run goes on; a resume restores the
 * state bit for bit. Before, the loop failed with EMBER_ENOMEM. */
static void test_loop_async_streams_without_room(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE], p[256];
    for (int how = 0; how < 2; how++) {
        fresh_dir();
        state s;
        state_init_budget(&s, how == 0 ? (size_t)1 << 20 : 0);
        big_fails = how == 1 ? (size_t)1 << 20 : 0;
        ember_loop_opts o = {.every = 1, .keep = 2};
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        while (it < 4) {
            state_step(&s, it);
            TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
            ember_loop_stats st;
            ember_loop_get_stats(s.loop, &st);
            assert_int_equal(st.last_was_checkpoint, 1);
            assert_int_equal(st.checkpoints, it); /* written already */
            assert_true(exists(ckpt_name(p, it)));
        }
        state_step(&s, it);
        TU_OKM(ember_loop_finish(s.loop, msg), msg);
        assert_true(exists(ckpt_name(p, 5)));
        state_bits want, got;
        state_bits_take(&s, &want);
        state_free(&s);
        big_fails = 0;
        state_init(&s);
        TU_OKM(state_loop(&s, NULL, msg), msg);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        assert_int_equal(it, 5);
        state_bits_take(&s, &got);
        state_bits_same(&want, &got);
        free(want.ds);
        free(got.ds);
        state_free(&s);
    }
}

/* In the background mode a retired checkpoint becomes the spare that a
 * later one is written into (its pages reused): with keep 2, checkpoint 1
 * is retired when 3 commits and checkpoint 4 is written into it. The
 * files still restore to the same state, and no spare outlives the loop. */
static void test_loop_async_spare_reused(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], p[256], spare[256];
    snprintf(spare, sizeof spare, CKDIR "/" EMBER__CK_SPARE);
    state s;
    state_init(&s);
    ember_loop_opts o = {.every = 1};
    TU_OKM(state_loop(&s, &o, msg), msg);
    uint64_t it;
    ino_t first = 0;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    while (it < 5) {
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        if (it == 2) /* checkpoint 1 committed: the next start waited */
            first = inode_of(ckpt_name(p, 1));
    }
    /* checkpoint 4 committed when 5 started; 1 was retired before 4 began
     * (and written over where a lease proves nothing else has it open) */
    assert_false(exists(ckpt_name(p, 1)));
    if (tu_leases_work(CKDIR))
        assert_true(inode_of(ckpt_name(p, 4)) == first);
    int64_t i = s.i;
    state_free(&s);
    assert_false(exists(spare));
    assert_int_equal(count_ckpts(), 2);
    assert_int_equal(resume_at(NULL, msg, EMBER_OK), 5);
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 5);
    assert_int_equal(s.i, i);
    state_free(&s);
}

/* Files outside the directory that links by its names reach are never
 * written: checkpoint names that are a symbolic link and a hard link to
 * files elsewhere (an archive; a fork made with cp -al) are retired by
 * deleting the name, not by writing the next checkpoint into them; a lock
 * file that is a link is refused, naming it, before anything is written. */
static void test_loop_links_not_written_through(void **unused)
{
    (void)unused;
    static const char mine[] = "not ember's to overwrite";
    const char *a = "ln-outside-a", *b = "ln-outside-b";
    char msg[EMBER_MSG_SIZE], p[256];
    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    tu_spit(a, mine, sizeof mine);
    tu_spit(b, mine, sizeof mine);
    assert_int_equal(symlink("../ln-outside-a", ckpt_name(p, 1)), 0);
    assert_int_equal(link(b, ckpt_name(p, 2)), 0);
    run_every1(6, 0);
    assert_int_equal(count_ckpts(), 2); /* the links were retired */
    for (int k = 0; k < 2; k++) {
        size_t n;
        unsigned char *d = tu_slurp(k ? b : a, &n);
        assert_int_equal(n, sizeof mine);
        assert_memory_equal(d, mine, sizeof mine);
        free(d);
    }
    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    for (int k = 0; k < 2; k++) {
        unlink(CKDIR "/ember.lock");
        assert_int_equal(k ? link(b, CKDIR "/ember.lock")
                           : symlink("../ln-outside-a", CKDIR "/ember.lock"), 0);
        state s;
        state_init(&s);
        assert_int_equal(state_loop(&s, NULL, msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, k ? "ck/ember.lock is a file with other names (hard links)"
                          : "ck/ember.lock is a symbolic link");
        state_free(&s);
        size_t n;
        unsigned char *d = tu_slurp(k ? b : a, &n);
        assert_int_equal(n, sizeof mine);
        assert_memory_equal(d, mine, sizeof mine);
        free(d);
    }
    unlink(a);
    unlink(b);
    fresh_dir();
}

/* A directory by a checkpoint's name (or its spare file's) would fail the
 * commit that renames over it, after that checkpoint's iterations, on
 * every rerun: the loop refuses it when it is created, naming it. */
static void test_loop_dir_checked_at_start(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE], p[256];
    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    assert_int_equal(mkdir(ckpt_name(p, 400), 0755), 0);
    state s;
    state_init(&s);
    assert_int_equal(state_loop(&s, NULL, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "ck/ckpt-000000000400.h5 is a directory where the loop would "
                    "write a checkpoint; remove it");
    state_free(&s);
    assert_int_equal(rmdir(p), 0);
    /* the same for the spare file's name (ckpt-spare.tmp, which the start's
     * sweep cannot remove and the first checkpoint failed on, exit 1) */
    snprintf(p, sizeof p, "%s/ckpt-spare.tmp", CKDIR);
    assert_int_equal(mkdir(p, 0755), 0);
    state_init(&s);
    assert_int_equal(state_loop(&s, NULL, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "ck/ckpt-spare.tmp is a directory where the loop would write");
    state_free(&s);
    assert_int_equal(rmdir(p), 0);
    state_init(&s);
    TU_OKM(state_loop(&s, NULL, msg), msg);
    state_free(&s);
    fresh_dir();
}

/* A background write that fails is reported by the next call that waits
 * for it, naming the file; the checkpoint before it stays and restores. A
 * directory in the way of NAME.tmp makes the write fail. Finish
 * waits for a write in flight and reports its failure too. */
static void test_loop_async_failure_reported(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], p[256];
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    state s;
    state_init(&s);
    ember_loop_opts o = {.every = 1};
    TU_OKM(state_loop(&s, &o, msg), msg);
    /* made after the start, which refuses it: a write that fails mid-run */
    assert_int_equal(mkdir(CKDIR "/ckpt-000000000002.h5.tmp", 0755), 0);
    uint64_t it;
    int rc = ember_loop_next(s.loop, &it, msg);
    while (rc == EMBER_OK && it < 3) {
        state_step(&s, it);
        rc = ember_loop_next(s.loop, &it, msg);
    }
    assert_true(rc < 0);
    assert_int_equal(it, 2); /* the call after iteration 3 reported it */
    TU_MSG_HAS(msg, "ckpt-000000000002.h5");
    assert_true(exists(ckpt_name(p, 1)));
    assert_false(exists(ckpt_name(p, 2)));
    state_free(&s);
    assert_int_equal(rmdir(CKDIR "/ckpt-000000000002.h5.tmp"), 0);
    assert_int_equal(resume_at(NULL, msg, EMBER_OK), 1);

    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    state_init(&s);
    TU_OKM(state_loop(&s, &o, msg), msg);
    /* made after the start, which refuses it: a write that fails mid-run */
    assert_int_equal(mkdir(CKDIR "/ckpt-000000000002.h5.tmp", 0755), 0);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    for (int k = 0; k < 2; k++) { /* starts 1, then 2 in the background */
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    }
    state_step(&s, it);
    rc = ember_loop_finish(s.loop, msg); /* waits for 2 before writing 3 */
    assert_true(rc < 0);
    TU_MSG_HAS(msg, "ckpt-000000000002.h5");
    assert_false(exists(ckpt_name(p, 3)));
    assert_true(exists(ckpt_name(p, 1)));
    state_free(&s);
}

/* Background checkpoints of a large array dataset and a large noted array
 * (their chunks go into the file by reference, written from their slots):
 * each file holds its own iteration's values, though the array changes in
 * place as soon as the next iteration starts, and the noted array's. */
static void test_loop_background_large_arrays(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE], p[256];
    fresh_dir();
    ember_ctx *ctx = tu_ctx(2);
    size_t n = 300001, nn = 200003;
    double *x = malloc(n * sizeof *x);
    int32_t *ids = malloc(nn * sizeof *ids);
    assert_non_null(x);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++)
        x[i] = (double)i;
    for (size_t i = 0; i < nn; i++)
        ids[i] = (int32_t)(nn - i);
    ember_type f64 = ember_type_scalar(EMBER_F64);
    ember_ds *ds = NULL;
    TU_OKM(ember_from_array(&ds, ctx, &f64, x, n, 7, EMBER_BORROW, msg), msg);
    ember_loop_opts o = {.dir = CKDIR, .every = 1, .keep = 5, .quiet = 1};
    ember_loop *loop = NULL;
    TU_OKM(ember_loop_create(&loop, ctx, &o, msg), msg);
    TU_OK(ember_loop_bind_ds(loop, "x", &ds));
    TU_OK(ember_loop_note_array(loop, "ids", EMBER_I32, ids, nn));
    uint64_t it;
    for (int k = 0; k < 3; k++) {
        TU_OKM(ember_loop_next(loop, &it, msg), msg);
        for (size_t i = 0; i < n; i++) /* the iteration, in place */
            x[i] += 1;
    }
    TU_OKM(ember_loop_finish(loop, msg), msg);
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    assert_int_equal(st.checkpoints, 3);
    ember_loop_destroy(&loop);
    for (int c = 1; c <= 3; c++) {
        ember__ckr *r = NULL;
        TU_OKM(ember__ckr_open(ctx, &r, ckpt_name(p, (uint64_t)c), msg), msg);
        TU_OKM(ember__ckr_verify(r, msg), msg);
        ember_type t;
        void *data = NULL;
        size_t got = 0, nparts = 0;
        uint64_t *offs = NULL;
        TU_OKM(ember__ckr_dataset(r, "x", &t, &data, &got, &offs, &nparts, msg), msg);
        assert_int_equal(got, n);
        assert_int_equal(nparts, 7);
        const double *v = data;
        for (size_t i = 0; i < n; i++)
            if (v[i] != (double)i + c)
                fail_msg("checkpoint %d: x[%zu] = %g, not %g", c, i, v[i], (double)i + c);
        ember__free(ctx, data);
        ember__free(ctx, offs);
        int32_t *back = malloc(nn * sizeof *back);
        assert_non_null(back);
        TU_OKM(ember__ckr_scalars(r, "ids", EMBER_I32, back, nn, msg), msg);
        assert_memory_equal(back, ids, nn * sizeof *ids);
        free(back);
        ember__ckr_close(&r);
    }
    ember_ds_free(&ds);
    free(x);
    free(ids);
    ember_ctx_destroy(&ctx);
}

/* ember_loop_finish_start: in the background mode the final checkpoint is
 * in flight when it returns (counted, and retention run, only by
 * ember_loop_wait), and a failure of it is what the wait returns; with
 * .sync it is ember_loop_finish. */
static void test_loop_finish_start_wait(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE], p[256], lineage[2][2][16384];
    for (int sync = 0; sync < 2; sync++) {
        fresh_dir();
        state s;
        state_init(&s);
        ember_loop_opts o = {.every = 1, .keep = 2, .sync = sync};
        TU_OKM(state_loop(&s, &o, msg), msg);
        uint64_t it;
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        state_step(&s, it);
        TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
        state_step(&s, it);
        TU_OKM(ember_loop_finish_start(s.loop, msg), msg);
        ember_loop_stats st;
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.last_was_checkpoint, !sync);
        assert_int_equal(st.last_iteration, sync ? 2 : 1);
        assert_true(exists(ckpt_name(p, 1)));
        assert_int_equal(ember_loop_finish(s.loop, msg), EMBER_ESTATE);
        TU_OKM(ember_loop_wait(s.loop, msg), msg);
        ember_loop_get_stats(s.loop, &st);
        assert_int_equal(st.checkpoints, 2);
        assert_int_equal(st.last_iteration, 2);
        assert_true(exists(ckpt_name(p, 2)));
        TU_OKM(ember_loop_wait(s.loop, msg), msg); /* nothing in flight */
        /* The lineage each file records is the same whichever way it was
         * written: taken before the checkpoint's own computation cuts it
         * (the map chain of "ds" shows). */
        for (int c = 0; c < 2; c++) {
            ember_checkpoint_info *info = NULL;
            TU_OKM(ember_checkpoint_inspect(&info, s.ctx, ckpt_name(p, c + 1), msg),
                   msg);
            snprintf(lineage[sync][c], sizeof lineage[sync][c], "%s", info->lineage);
            ember_checkpoint_info_free(s.ctx, &info);
        }
        assert_non_null(strstr(lineage[sync][0], "map #4\n |  filter #2\n"));
        state_free(&s);
        assert_int_equal(resume_at(NULL, msg, EMBER_OK), 2);
    }
    assert_string_equal(lineage[0][0], lineage[1][0]);
    assert_string_equal(lineage[0][1], lineage[1][1]);
    /* A final write that fails: the wait says so, naming the file. */
    fresh_dir();
    assert_int_equal(mkdir(CKDIR, 0755), 0);
    state s;
    state_init(&s);
    ember_loop_opts o = {.every = 1};
    TU_OKM(state_loop(&s, &o, msg), msg);
    /* made after the start, which refuses it: a write that fails mid-run */
    assert_int_equal(mkdir(CKDIR "/ckpt-000000000002.h5.tmp", 0755), 0);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_step(&s, it);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_step(&s, it);
    TU_OKM(ember_loop_finish_start(s.loop, msg), msg);
    assert_true(ember_loop_wait(s.loop, msg) < 0);
    TU_MSG_HAS(msg, "ckpt-000000000002.h5");
    assert_false(exists(ckpt_name(p, 2)));
    state_free(&s);
    assert_int_equal(ember_loop_wait(NULL, msg), EMBER_EINVAL);
}

/* No directory anywhere: no lock, no files, no checkpoint possible. */
static void test_loop_no_dir(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    state s;
    state_init(&s);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.every = 1;
    o.quiet = 1;
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_i64(s.loop, "i", &s.i), EMBER_OK);
    uint64_t it;
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 0);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 1);
    ember_loop_stats st;
    ember_loop_get_stats(s.loop, &st);
    assert_int_equal(st.checkpoints, 0);
    assert_int_equal(ember_loop_checkpoint(s.loop, msg), EMBER_ESTATE);
    TU_OKM(ember_loop_finish(s.loop, msg), msg);
    state_free(&s);
    /* The context's directory is used when the options name none. */
    fresh_dir();
    state_init(&s);
    TU_OKM(ember_ctx_set_checkpoint_dir(s.ctx, CKDIR, msg), msg);
    TU_OKM(ember_loop_create(&s.loop, s.ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_i64(s.loop, "i", &s.i), EMBER_OK);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    state_free(&s);
    assert_true(exists(CKDIR "/ckpt-000000000001.h5"));
}

/* Fails the Nth allocation for N = 1, 2, ... through create, bind, a
 * checkpoint and a restore: a clean error every time, never a leak. */
static void test_loop_oom(void **unused)
{
    (void)unused;
    fresh_dir();
    run_every1(1, 2);
    int clean_runs = 0;
    for (long n = 1; n < 5000 && clean_runs == 0; n++) {
        char msg[EMBER_MSG_SIZE];
        state s;
        state_init(&s);
        atomic_store(&counter.calls, 0);
        atomic_store(&counter.fail_at, n);
        ember_loop_opts o = {.dir = CKDIR, .every = 1, .quiet = 1};
        int rc = ember_loop_create(&s.loop, s.ctx, &o, msg);
        if (!rc)
            rc = ember_loop_bind_ds(s.loop, "ds", &s.ds);
        if (!rc)
            rc = ember_loop_bind_ds(s.loop, "pairs", &s.pairs);
        if (!rc)
            rc = ember_loop_bind_i64(s.loop, "i", &s.i);
        if (!rc)
            rc = ember_loop_bind_f64(s.loop, "f", &s.f);
        if (!rc)
            rc = ember_loop_bind_array(s.loop, "arr", EMBER_I32, s.arr, 5);
        if (!rc)
            rc = ember_loop_bind_blob(s.loop, "blob", s.blob, sizeof s.blob);
        uint64_t it = 0;
        if (!rc)
            rc = ember_loop_next(s.loop, &it, msg);
        if (!rc) {
            ember_ds *y = NULL;
            rc = ember_map(&y, s.ds, NULL, add_one, NULL, 0, msg);
            if (!rc) {
                ember_ds_free(&s.ds);
                s.ds = y;
                rc = ember_loop_next(s.loop, &it, msg);
            }
        }
        int injected = atomic_load(&counter.injected) > 0;
        atomic_store(&counter.fail_at, 0);
        if (!injected) {
            assert_int_equal(rc, EMBER_OK);
            clean_runs++;
        } else if (rc == EMBER_OK) {
            /* A failure the restore treated as a bad file is fine, as
             * long as it said so. */
        } else {
            assert_true(rc < 0);
        }
        state_free(&s); /* checks that nothing leaked */
    }
    assert_int_equal(clean_runs, 1);
}

/* ---- format 2 items: matrices, notes, renamed state, format 1 files ---- */

typedef struct {
    ember_ctx *ctx;
    ember_loop *loop;
    double val;
    double m[6];
    uint64_t ids[3];
} f2state;

static void f2_open(f2state *s, uint64_t id0, char *msg)
{
    memset(s, 0, sizeof *s);
    s->ctx = new_ctx();
    for (int k = 0; k < 3; k++)
        s->ids[k] = id0 + (uint64_t)k;
    ember_loop_opts o = {.dir = CKDIR, .program = "t", .parameters = "p=1\n",
                         .quiet = 1};
    TU_OKM(ember_loop_create(&s->loop, s->ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_f64(s->loop, "residual", &s->val), EMBER_OK);
    assert_int_equal(ember_loop_format1_name(s->loop, "residual", "cli_value"),
                     EMBER_OK);
    assert_int_equal(ember_loop_format1_name(s->loop, "nope", "x"), EMBER_ENOTFOUND);
    assert_int_equal(ember_loop_format1_name(s->loop, "residual", ""), EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_matrix(s->loop, "m", EMBER_F64, s->m, 0, 3),
                     EMBER_EINVAL);
    assert_int_equal(ember_loop_bind_matrix(s->loop, "m", EMBER_F64, s->m, 2, 3),
                     EMBER_OK);
    assert_int_equal(ember_loop_note_array(s->loop, "m", EMBER_U64, s->ids, 3),
                     EMBER_EINVAL);
    assert_int_equal(ember_loop_note_array(s->loop, "ids", EMBER_U64, s->ids, 3),
                     EMBER_OK);
}

static void f2_close(f2state *s)
{
    ember_loop_destroy(&s->loop);
    free_ctx(&s->ctx);
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void put_fixed_str(hid_t f, const char *name, const char *v)
{
    if (H5Aexists(f, name) > 0)
        H5Adelete(f, name);
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen(v) + 1);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0 && H5Awrite(a, t, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

/* Rewrites a format 2 file as format 1 wrote that state: fixed-length
 * strings, cli_value, the matrix flat, no notes, format 1's signature and
 * fingerprint; then seals it again. */
static void make_format1(const char *path)
{
    const char *sig = "cli_value: f64\nm: f64[6]\n";
    uint64_t h = fnv(0xcbf29ce484222325ULL, "t", 2);
    h = fnv(h, "p=1\n", 4);
    h = fnv(h, "", 1);
    h = fnv(h, sig, strlen(sig) + 1);
    int64_t one = 1;
    double m[6];
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/scalars/m", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    H5Dclose(d);
    H5Ldelete(f, "/scalars/m", H5P_DEFAULT);
    hsize_t six = 6;
    hid_t sp = H5Screate_simple(1, &six, NULL);
    d = H5Dcreate2(f, "/scalars/m", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT,
                   H5P_DEFAULT);
    assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    assert_true(H5Lmove(f, "/scalars/residual", f, "/scalars/cli_value", H5P_DEFAULT,
                        H5P_DEFAULT) >= 0);
    H5Ldelete(f, "/scalars/ids", H5P_DEFAULT);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &one);
    H5Aclose(a);
    a = H5Aopen(f, "fingerprint", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT64, &h);
    H5Aclose(a);
    put_fixed_str(f, "state_signature", sig);
    put_fixed_str(f, "program", "t");
    H5Fclose(f);
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember__fsum_seal(path, msg), msg);
}

static void test_loop_format2_items(void **unused)
{
    (void)unused;
    fresh_dir();
    char msg[EMBER_MSG_SIZE], p[256];
    f2state s;
    uint64_t it;
    f2_open(&s, 7, msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    s.val = 1.5;
    for (int k = 0; k < 6; k++)
        s.m[k] = k + 0.5;
    TU_OKM(ember_loop_finish(s.loop, msg), msg);
    f2_close(&s);

    /* What a reader sees: a 2 x 3 matrix, the notes, UTF-8 strings. */
    hid_t f = H5Fopen(ckpt_name(p, 1), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/scalars/m", H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 2);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    assert_true(dims[0] == 2 && dims[1] == 3);
    H5Sclose(sp);
    H5Dclose(d);
    uint64_t ids[3] = {0};
    d = H5Dopen2(f, "/scalars/ids", H5P_DEFAULT);
    assert_true(H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0);
    assert_true(ids[0] == 7 && ids[2] == 9);
    H5Dclose(d);
    hid_t a = H5Aopen(f, "state_signature", H5P_DEFAULT), t = H5Aget_type(a);
    assert_true(H5Tis_variable_str(t) > 0);
    assert_int_equal(H5Tget_cset(t), H5T_CSET_UTF8);
    char *sig = NULL;
    assert_true(H5Aread(a, t, &sig) >= 0);
    assert_string_equal(sig, "residual: f64\nm: f64[2x3]\n"); /* no note */
    H5free_memory(sig);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);

    /* A restore with other notes: notes are neither checked nor read. */
    f2_open(&s, 100, msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 1);
    assert_true(s.val == 1.5 && s.m[5] == 5.5 && s.ids[0] == 100);
    f2_close(&s);

    /* The same state as format 1 wrote it resumes too. */
    make_format1(ckpt_name(p, 1));
    f2_open(&s, 7, msg);
    TU_OKM(ember_loop_next(s.loop, &it, msg), msg);
    assert_int_equal(it, 1);
    assert_true(s.val == 1.5 && s.m[0] == 0.5 && s.m[5] == 5.5);
    f2_close(&s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_roundtrip),
        cmocka_unit_test(test_loop_outlives_ctx_destroy),
        cmocka_unit_test(test_loop_bind_order_resumes),
        cmocka_unit_test(test_loop_finish_after_loop),
        cmocka_unit_test(test_loop_checkpoint_after_step_refused),
        cmocka_unit_test(test_loop_renamed_skipped),
        cmocka_unit_test(test_loop_array_source_partitions_kept),
        cmocka_unit_test(test_loop_corrupt_fallback),
        cmocka_unit_test(test_loop_truncated_fallback),
        cmocka_unit_test(test_loop_same_verification_as_inspect),
        cmocka_unit_test(test_loop_mismatch_refused),
        cmocka_unit_test(test_loop_force_resume),
        cmocka_unit_test(test_loop_retention),
        cmocka_unit_test(test_loop_retention_on_resume),
        cmocka_unit_test(test_loop_refused_resume_leaves_state),
        cmocka_unit_test(test_loop_unreadable_ckpt_stops),
        cmocka_unit_test(test_loop_never_retires_old),
        cmocka_unit_test(test_loop_info_parameters),
        cmocka_unit_test(test_loop_mismatch_long_list),
        cmocka_unit_test(test_loop_forced_is_recorded),
        cmocka_unit_test(test_loop_forced_unknown_in_older_files),
        cmocka_unit_test(test_loop_keeps_other_builds_files),
        cmocka_unit_test(test_loop_lock_file_removed),
        cmocka_unit_test(test_loop_lock_lost_during_write),
        cmocka_unit_test(test_loop_lost_lock_retires_nothing),
        cmocka_unit_test(test_loop_tmp_swept),
        cmocka_unit_test(test_loop_require_none),
        cmocka_unit_test(test_loop_dir_is_file),
        cmocka_unit_test(test_loop_dir_parents_made),
        cmocka_unit_test(test_loop_dir_unwritable),
        cmocka_unit_test(test_loop_busy),
        cmocka_unit_test(test_loop_dir_removed),
        cmocka_unit_test(test_loop_lock_replaced),
        cmocka_unit_test(test_loop_every),
        cmocka_unit_test(test_loop_seconds),
        cmocka_unit_test(test_loop_depth),
        cmocka_unit_test(test_loop_depth_cached),
        cmocka_unit_test(test_loop_young),
        cmocka_unit_test(test_loop_default_is_async),
        cmocka_unit_test(test_loop_async_spare_reused),
        cmocka_unit_test(test_loop_links_not_written_through),
        cmocka_unit_test(test_loop_dir_checked_at_start),
        cmocka_unit_test(test_loop_caller_seconds),
        cmocka_unit_test(test_loop_async_failure_reported),
        cmocka_unit_test(test_loop_finish_start_wait),
        cmocka_unit_test(test_loop_background_large_arrays),
        cmocka_unit_test(test_loop_async_streams_without_room),
        cmocka_unit_test(test_loop_signal),
        cmocka_unit_test(test_loop_catch_early),
        cmocka_unit_test(test_loop_no_signals),
        cmocka_unit_test(test_loop_deadline),
        cmocka_unit_test(test_loop_bind_errors),
        cmocka_unit_test(test_loop_type_changed),
        cmocka_unit_test(test_loop_finish),
        cmocka_unit_test(test_loop_no_dir),
        cmocka_unit_test(test_loop_oom),
        cmocka_unit_test(test_loop_idiom_memory_flat),
        cmocka_unit_test(test_loop_idiom_ser_no_recompute),
        cmocka_unit_test(test_loop_idiom_bounded_without_checkpoints),
        cmocka_unit_test(test_loop_idiom_unpersists_old_under_budget),
        cmocka_unit_test(test_loop_cuts_states_made_from_the_last),
        cmocka_unit_test(test_loop_keeps_uncached_states_actions_compute),
        cmocka_unit_test(test_loop_format2_items),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
