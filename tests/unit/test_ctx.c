/* test_ctx.c: contexts: defaults and options, every rejected option with
 * its message, thread and checkpoint-dir settings, statistics, destroy
 * freeing whatever callers leaked, two contexts not seeing each other,
 * allocation failures while creating one, and ember_strerror() of every
 * status in the X-macro list.
 */
#include "internal.h"
#include "testutil.h"

#include <limits.h>

static void test_ctx_create_defaults(void **state)
{
    (void)state;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE] = "junk";
    TU_OKM(ember_ctx_create(&ctx, NULL, msg), msg);
    assert_non_null(ctx);
    assert_string_equal(msg, "");
    assert_int_equal(ember_ctx_threads(ctx), omp_get_max_threads());
    assert_null(ember_ctx_checkpoint_dir(ctx));
    ember_stats s;
    memset(&s, 0xff, sizeof s);
    ember_ctx_stats(ctx, &s);
    assert_true(s.memory_budget > 0);
    assert_int_equal(s.memory_used, 0);
    assert_int_equal(s.blocks_in_memory, 0);
    assert_int_equal(s.blocks_on_disk, 0);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.spills, 0);
    assert_int_equal(s.disk_reads, 0);
    assert_int_equal(s.recomputes, 0);
    assert_int_equal(s.cache_hits, 0);
    ember_ctx_destroy(&ctx);
    assert_null(ctx);

    /* Zeroed options are the defaults too; a NULL msg is allowed. */
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.memory_budget = 1 << 20;
    o.threads = 3;
    TU_OK(ember_ctx_create(&ctx, &o, NULL));
    assert_int_equal(ember_ctx_threads(ctx), 3);
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.memory_budget, 1 << 20);
    ember_ctx_destroy(&ctx);
}

/* Creating with opts must fail with status and a message holding part, and
 * leave nothing allocated. */
static void expect_create_fails(ember_ctx_opts *o, int status, const char *part)
{
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator a = tu_allocator(&c);
    if (!o->allocator)
        o->allocator = &a;
    ember_ctx *ctx = (ember_ctx *)&c; /* must be overwritten with NULL */
    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(ember_ctx_create(&ctx, o, msg), status);
    assert_null(ctx);
    TU_MSG_HAS(msg, part);
    assert_int_equal(atomic_load(&c.live), 0);
    if (o->allocator == &a)
        o->allocator = NULL;
}

static void test_ctx_create_rejects_bad_options(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = -2;
    expect_create_fails(&o, EMBER_EINVAL, "threads");

    memset(&o, 0, sizeof o);
    o.block_bytes = 63;
    expect_create_fails(&o, EMBER_EINVAL, "block_bytes");

    memset(&o, 0, sizeof o);
    o.checkpoint_dir = "";
    expect_create_fails(&o, EMBER_EINVAL, "checkpoint");

    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator bad = {tu_malloc, NULL, tu_free, &c};
    memset(&o, 0, sizeof o);
    o.allocator = &bad;
    expect_create_fails(&o, EMBER_EINVAL, "allocator");
    assert_int_equal(atomic_load(&c.calls), 0);

    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(ember_ctx_create(NULL, NULL, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
}

static void test_ctx_budget_smaller_than_block(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.memory_budget = 1000; /* the default block is 32 KiB */
    expect_create_fails(&o, EMBER_EBUDGET, "1000");

    memset(&o, 0, sizeof o);
    o.memory_budget = 4095;
    o.block_bytes = 4096;
    expect_create_fails(&o, EMBER_EBUDGET, "4096");

    /* Exactly one block is enough. */
    o.memory_budget = 4096;
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember_ctx_destroy(&ctx);
}

static int max_block(const void *in, size_t n, size_t partition, void *arg)
{
    (void)in;
    (void)partition;
    size_t *m = arg;
    if (n > *m)
        *m = n;
    return 0;
}

/* The largest block a foreach over 100,000 u64 sees. */
static size_t largest_block(ember_ctx *ctx)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 1, msg), msg);
    size_t m = 0;
    TU_OKM(ember_foreach(r, max_block, &m, msg), msg);
    ember_ds_free(&r);
    return m;
}

static void test_ctx_set_block_bytes(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.memory_budget = 1 << 20;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(largest_block(ctx), 32 * 1024 / 8);
    TU_OKM(ember_ctx_set_block_bytes(ctx, 1024, msg), msg);
    assert_int_equal(largest_block(ctx), 1024 / 8);
    assert_int_equal(ember_ctx_set_block_bytes(ctx, 63, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "block_bytes 63");
    assert_int_equal(ember_ctx_set_block_bytes(ctx, (1 << 20) + 1, msg), EMBER_EBUDGET);
    TU_MSG_HAS(msg, "smaller than one block");
    assert_int_equal(largest_block(ctx), 1024 / 8); /* refused: unchanged */
    TU_OKM(ember_ctx_set_block_bytes(ctx, 0, msg), msg);
    assert_int_equal(largest_block(ctx), 32 * 1024 / 8);
    assert_int_equal(ember_ctx_set_block_bytes(NULL, 4096, msg), EMBER_EINVAL);
    ember_ctx_destroy(&ctx);
}

static void test_ctx_destroy_accepts_null(void **state)
{
    (void)state;
    ember_ctx_destroy(NULL);
    ember_ctx *ctx = NULL;
    ember_ctx_destroy(&ctx);
    assert_null(ctx);
    ember_free(NULL, NULL);
    ctx = tu_ctx(1);
    ember_free(ctx, NULL);
    ember_ctx_destroy(&ctx);
    ember_ctx_destroy(&ctx); /* twice: the first set it to NULL */
}

static void test_ctx_threads(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    assert_int_equal(ember_ctx_threads(ctx), 2);
    assert_int_equal(ember_ctx_set_threads(ctx, 5), EMBER_OK);
    assert_int_equal(ember_ctx_threads(ctx), 5);
    assert_int_equal(ember_ctx_set_threads(ctx, 0), EMBER_OK);
    assert_int_equal(ember_ctx_threads(ctx), omp_get_max_threads());
    assert_int_equal(ember_ctx_set_threads(ctx, -1), EMBER_EINVAL);
    assert_int_equal(ember_ctx_threads(ctx), omp_get_max_threads());
    assert_int_equal(ember_ctx_set_threads(NULL, 2), EMBER_EINVAL);
    assert_int_equal(ember_ctx_threads(NULL), 0);
    ember_ctx_destroy(&ctx);
}

static void test_ctx_checkpoint_dir(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    char dir[] = "ckpts-a";
    o.checkpoint_dir = dir;
    ember_ctx *ctx = tu_ctx_opts(&o);
    dir[0] = 'X'; /* the context keeps its own copy */
    assert_string_equal(ember_ctx_checkpoint_dir(ctx), "ckpts-a");
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_ctx_set_checkpoint_dir(ctx, "other/dir", msg), msg);
    assert_string_equal(ember_ctx_checkpoint_dir(ctx), "other/dir");
    assert_int_equal(ember_ctx_set_checkpoint_dir(ctx, "", msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "checkpoint dir");
    assert_int_equal(ember_ctx_set_checkpoint_dir(ctx, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_ctx_set_checkpoint_dir(NULL, "d", msg), EMBER_EINVAL);
    assert_int_equal(ember_ctx_set_checkpoint_dir(ctx, NULL, NULL), EMBER_EINVAL);
    assert_string_equal(ember_ctx_checkpoint_dir(ctx), "other/dir");
    assert_null(ember_ctx_checkpoint_dir(NULL));
    ember_ctx_destroy(&ctx);
}

static void test_ctx_stats_accept_null(void **state)
{
    (void)state;
    ember_stats s;
    memset(&s, 0x33, sizeof s);
    ember_stats before = s;
    ember_ctx_stats(NULL, &s);
    assert_memory_equal(&s, &before, sizeof s);
    ember_ctx *ctx = tu_ctx(1);
    ember_ctx_stats(ctx, NULL);
    ember_ctx_destroy(&ctx);
}

static int add_one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] + 1;
    return 0;
}

static int to_pair(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    struct { int64_t k; double v; } *b = out;
    for (size_t i = 0; i < n; i++) {
        b[i].k = a[i] % 17;
        b[i].v = (double)a[i];
    }
    return 0;
}

/* Destroy frees datasets, broadcasts, cached blocks, shuffle outputs and
 * that callers never freed. */
static void test_ctx_destroy_frees_leaked_handles(void **state)
{
    (void)state;
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator a = tu_allocator(&c);
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &a;
    o.threads = 2;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *p = NULL, *g = NULL, *arr = NULL;
    ember_bcast *b1 = NULL, *b2 = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 8, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(m, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(n, 10000);
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_F64);
    TU_OKM(ember_map(&p, m, &kv, to_pair, NULL, 0, msg), msg);
    TU_OKM(ember_reduce_by_key(&g, p, NULL, NULL, 0, 3, msg), msg);
    TU_OKM(ember_count(g, &n, msg), msg);
    assert_int_equal(n, 17);
    int64_t vals[5] = {1, 2, 3, 4, 5};
    TU_OKM(ember_from_array(&arr, ctx, ember_ds_type(r), vals, 5, 2, EMBER_COPY,
                            msg), msg);
    TU_OKM(ember_broadcast(&b1, arr, msg), msg);
    TU_OKM(ember_broadcast(&b2, m, msg), msg);
    TU_OK(ember_ds_uses(p, b1));
    char *lin = NULL;
    TU_OK(ember_lineage_string(g, &lin));
    ember_free(ctx, lin); /* caller memory: not the context's to free */
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    assert_true(s.memory_used > 0);
    assert_true(atomic_load(&c.live) > 0);
    /* Free some handles, leak the rest. */
    ember_ds_free(&r);
    ember_bcast_free(&b1);
    ember_ctx_destroy(&ctx);
    assert_null(ctx);
    assert_int_equal(atomic_load(&c.live), 0);
    assert_int_equal(atomic_load(&c.live_bytes), 0);
}

static void test_ctx_two_contexts_independent(void **state)
{
    (void)state;
    ember_ctx *a = tu_ctx(2), *b = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *ra = NULL, *ma = NULL, *rb = NULL, *mb = NULL;
    TU_OKM(ember_range(&ra, a, 0, 50000, 1, 4, msg), msg);
    TU_OKM(ember_map(&ma, ra, NULL, add_one, NULL, 0, msg), msg);
    TU_OKM(ember_range(&rb, b, 0, 50000, 1, 4, msg), msg);
    TU_OKM(ember_map(&mb, rb, NULL, add_one, NULL, 0, msg), msg);
    assert_int_equal(ember_ds_id(ra), ember_ds_id(rb)); /* ids per context */
    TU_OKM(ember_cache(ma, msg), msg);
    uint64_t n;
    TU_OKM(ember_count(ma, &n, msg), msg);
    TU_OKM(ember_count(ma, &n, msg), msg);
    ember_stats sa, sb;
    ember_ctx_stats(a, &sa);
    ember_ctx_stats(b, &sb);
    assert_true(sa.memory_used > 0);
    assert_true(sa.cache_hits > 0);
    assert_int_equal(sb.memory_used, 0);
    assert_int_equal(sb.cache_hits, 0);

    /* Mixing contexts is refused. */
    ember_ds *z = NULL;
    assert_int_equal(ember_zip(&z, ma, mb, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "context");
    assert_int_equal(ember_union(&z, ma, mb, msg), EMBER_EINVAL);
    assert_null(z);

    /* Destroying a leaves b's datasets working. */
    ember_ctx_destroy(&a);
    int64_t sum = 0;
    TU_OKM(ember_sum(mb, &sum, msg), msg);
    assert_int_equal(sum, (int64_t)50000 * 50001 / 2);
    ember_ds_free(&mb);
    ember_ds_free(&rb);
    ember_ctx_destroy(&b);
}

static void test_ctx_create_allocation_failures(void **state)
{
    (void)state;
    tu_counter c;
    ember_allocator a = tu_allocator(&c);
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &a;
    o.checkpoint_dir = "ckpt";
    o.scratch_dir = "scratch";
    int ok = 0;
    for (long fail = 1; fail < 100 && !ok; fail++) {
        tu_counter_reset(&c, fail);
        ember_ctx *ctx = NULL;
        char msg[EMBER_MSG_SIZE] = "";
        int rc = ember_ctx_create(&ctx, &o, msg);
        if (rc == EMBER_OK) {
            assert_int_equal(atomic_load(&c.injected), 0);
            ok = 1;
            ember_ctx_destroy(&ctx);
        } else {
            assert_int_equal(rc, EMBER_ENOMEM);
            assert_null(ctx);
            assert_true(msg[0] != '\0');
        }
        assert_int_equal(atomic_load(&c.live), 0);
    }
    assert_true(ok);
}

#define STATUS_ROW(name, value, text) {EMBER_##name, value, text, #name},

static void test_ctx_strerror_every_status(void **state)
{
    (void)state;
    static const struct {
        int status, value;
        const char *text, *name;
    } rows[] = {EMBER_STATUS_MAP(STATUS_ROW)};
    size_t n = sizeof rows / sizeof rows[0];
    assert_true(n >= 21);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].status, rows[i].value);
        const char *s = ember_strerror(rows[i].status);
        assert_non_null(s);
        assert_string_equal(s, rows[i].text);
        assert_string_not_equal(s, "unknown status");
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(rows[i].value, rows[j].value);
        /* Errors are negative, information positive. */
        if (rows[i].name[0] == 'E')
            assert_true(rows[i].value < 0);
    }
    assert_string_equal(ember_strerror(EMBER_OK), "success");
    assert_string_equal(ember_strerror(EMBER_ENOMEM), "out of memory");
    assert_string_equal(ember_strerror(-17), "unknown status");
    assert_string_equal(ember_strerror(5), "unknown status");
    assert_string_equal(ember_strerror(INT_MIN), "unknown status");
    /* exit statuses: every error is 1 or 2, information 0, a signal's 75 */
    for (size_t i = 0; i < n; i++) {
        int x = ember_exit_status(rows[i].status), in = 0;
        static const int input[] = {EMBER_EFORMAT, EMBER_ENOTFOUND, EMBER_EEMPTY,
                                    EMBER_ERANGE, EMBER_EINVAL, EMBER_ETYPE,
                                    EMBER_ELENGTH, EMBER_EMISMATCH, EMBER_ECORRUPT};
        for (size_t k = 0; k < sizeof input / sizeof input[0]; k++)
            in |= input[k] == rows[i].status;
        assert_int_equal(x, rows[i].status == EMBER_INTERRUPTED ? EMBER_EXIT_RESUMABLE
                            : in                               ? 2
                            : rows[i].value < 0                ? 1 : 0);
    }
    assert_int_equal(ember_exit_status(EMBER_ENOMEM), 1);
    assert_int_equal(ember_exit_status(EMBER_EINVAL), 2);
    assert_int_equal(ember_exit_status(EMBER_OK), 0);
    assert_string_equal(ember_strerror(INT_MAX), "unknown status");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_create_defaults),
        cmocka_unit_test(test_ctx_create_rejects_bad_options),
        cmocka_unit_test(test_ctx_budget_smaller_than_block),
        cmocka_unit_test(test_ctx_set_block_bytes),
        cmocka_unit_test(test_ctx_destroy_accepts_null),
        cmocka_unit_test(test_ctx_threads),
        cmocka_unit_test(test_ctx_checkpoint_dir),
        cmocka_unit_test(test_ctx_stats_accept_null),
        cmocka_unit_test(test_ctx_destroy_frees_leaked_handles),
        cmocka_unit_test(test_ctx_two_contexts_independent),
        cmocka_unit_test(test_ctx_create_allocation_failures),
        cmocka_unit_test(test_ctx_strerror_every_status),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
