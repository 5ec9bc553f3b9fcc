/* test_ds.c: dataset nodes: the sources (range, from_array copy and borrow),
 * the narrow transformations (map, filter, flat_map, map_partitions, zip,
 * union, sample), handles and names, the persistence API and broadcasts.
 *
 * Every operation is checked against a naive serial reference on random
 * inputs (fixed seeds), partition by partition, for several partition
 * counts (1, a few, more partitions than records) and for empty inputs,
 * at 1 and 4 threads. Bad input gets an error status and a message.
 */
#include "ember/graph.h"
#include "internal.h"
#include "testutil.h"

#include <math.h>

#define N_RAND 5000

static int64_t *rand_i64(size_t n, uint64_t seed)
{
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)(tu_rand(&seed) % 2000001) - 1000000;
    return v;
}

static ember_ds *array_i64(ember_ctx *ctx, const int64_t *v, size_t n, size_t P)
{
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_scalar(EMBER_I64);
    TU_OKM(ember_from_array(&ds, ctx, &t, v, n, P, EMBER_COPY, msg), msg);
    return ds;
}

/* Partition counts tried for an input of n records. */
static size_t part_counts(size_t n, size_t *P)
{
    P[0] = 1;
    P[1] = 3;
    P[2] = 7;
    P[3] = n + 5; /* more partitions than records */
    return 4;
}

/* Checks each partition of ds against expect[p] / nexp[p] (records of
 * ds's type). */
static void check_parts(ember_ds *ds, unsigned char **expect, const size_t *nexp)
{
    tu_parts got;
    tu_parts_read(&got, ds);
    for (size_t p = 0; p < got.nparts; p++) {
        if (got.n[p] != nexp[p])
            fail_msg("partition %zu: %zu records, expected %zu", p, got.n[p],
                     nexp[p]);
        if (nexp[p])
            assert_memory_equal(got.data[p], expect[p], nexp[p] * got.size);
    }
    tu_parts_free(&got);
}

/* ---- sources ------------------------------------------------------------ */

static void check_range(ember_ctx *ctx, int64_t start, int64_t end,
                        int64_t step, size_t P)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, start, end, step, P, msg), msg);
    assert_string_equal(msg, "");
    ember_type i64 = ember_type_scalar(EMBER_I64);
    assert_true(ember_type_equal(ember_ds_type(r), &i64));
    /* The reference: a plain loop, in 128-bit arithmetic. */
    size_t n = 0;
    __int128 v = start;
    while (step > 0 ? v < end : v > end) {
        n++;
        v += step;
    }
    int64_t *all = malloc((n ? n : 1) * sizeof *all);
    for (size_t i = 0; i < n; i++)
        all[i] = (int64_t)((__int128)start + (__int128)i * step);
    size_t Q = ember_ds_partitions(r);
    if (P)
        assert_int_equal(Q, P);
    unsigned char **exp = calloc(Q, sizeof *exp);
    size_t *nexp = calloc(Q, sizeof *nexp);
    for (size_t p = 0, off = 0; p < Q; p++) {
        nexp[p] = tu_part_len(n, Q, p);
        exp[p] = (unsigned char *)(all + off);
        off += nexp[p];
    }
    check_parts(r, exp, nexp);
    uint64_t c = 99;
    TU_OKM(ember_count(r, &c, msg), msg);
    assert_int_equal(c, n);
    free(exp);
    free(nexp);
    free(all);
    ember_ds_free(&r);
    assert_null(r);
}

static void test_ds_range_matches_reference(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        static const struct {
            int64_t start, end, step;
        } cases[] = {
            {0, 10, 1},
            {0, 1000, 7},
            {5, -7, -3},
            {-1000, 1000, 13},
            {0, 0, 1},   /* empty */
            {10, 0, 1},  /* empty: end below start with step > 0 */
            {0, 10, -1}, /* empty */
            {0, 100, 1000},
            {INT64_MAX - 10, INT64_MAX, 3},
            {INT64_MIN + 100, INT64_MIN, -7},
            {INT64_MIN, INT64_MIN + 50, 9},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t sizes[] = {1, 3, 7, 200, 0};
            for (size_t k = 0; k < 5; k++)
                check_range(ctx, cases[i].start, cases[i].end, cases[i].step,
                            sizes[k]);
        }
        ember_ctx_destroy(&ctx);
    }
}

/* The default partition count depends on the data, never on the team. */
static void test_ds_default_partitions_ignore_threads(void **state)
{
    (void)state;
    size_t counts[2][3];
    for (int k = 0; k < 2; k++) {
        ember_ctx *ctx = tu_ctx(k ? 4 : 1);
        char msg[EMBER_MSG_SIZE];
        int64_t ns[3] = {0, 1000, 3000000};
        for (int i = 0; i < 3; i++) {
            ember_ds *r = NULL;
            TU_OKM(ember_range(&r, ctx, 0, ns[i], 1, 0, msg), msg);
            counts[k][i] = ember_ds_partitions(r);
            assert_true(counts[k][i] >= 1);
            ember_ds_free(&r);
        }
        ember_ctx_destroy(&ctx);
    }
    assert_memory_equal(counts[0], counts[1], sizeof counts[0]);
    assert_int_equal(counts[0][0], 1);
    assert_true(counts[0][2] > 1); /* 24 MB of records is split */
}

static void test_ds_range_rejects_bad_args(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember_ds *r = NULL;
    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(ember_range(&r, ctx, 0, 10, 0, 1, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "step");
    assert_null(r);
    assert_int_equal(ember_range(NULL, ctx, 0, 10, 1, 1, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
    assert_int_equal(ember_range(&r, NULL, 0, 10, 1, 1, msg), EMBER_EINVAL);
    assert_int_equal(ember_range(&r, NULL, 0, 10, 1, 1, NULL), EMBER_EINVAL);
    assert_null(r);
    ember_ctx_destroy(&ctx);
}

/* A partition count no context could run (or whose "+ 1" wraps) is
 * refused at creation, with a message, by every call that takes one. */
static void test_ds_rejects_absurd_partition_counts(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE] = "";
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    int64_t v[4] = {1, 2, 3, 4};
    ember_ds *r = NULL, *a = NULL, *o = NULL;
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2 + 1, (size_t)1 << 40};
    for (int i = 0; i < 3; i++) {
        msg[0] = '\0';
        assert_int_equal(ember_range(&r, ctx, 0, 10, 1, huge[i], msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "partitions");
        assert_null(r);
        assert_int_equal(ember_from_array(&a, ctx, &kv, v, 2, huge[i], EMBER_COPY,
                                          msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "partitions");
        assert_int_equal(ember_from_array(&a, ctx, &kv, v, 2, huge[i],
                                          EMBER_BORROW, msg), EMBER_EINVAL);
        assert_null(a);
    }
    TU_OKM(ember_from_array(&a, ctx, &kv, v, 2, 3, EMBER_COPY, msg), msg);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ember_repartition(&o, a, huge[i], msg), EMBER_EINVAL);
        assert_int_equal(ember_reduce_by_key(&o, a, NULL, NULL, 0, huge[i], msg),
                         EMBER_EINVAL);
        assert_int_equal(ember_sort_by_key(&o, a, 0, huge[i], msg), EMBER_EINVAL);
        assert_int_equal(ember_join(&o, a, a, huge[i], msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "partitions");
        assert_null(o);
    }
    /* Many partitions are fine. */
    TU_OKM(ember_repartition(&o, a, 100000, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(o, &n, msg), msg);
    assert_int_equal(n, 2);
    ember_ds_free(&o);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

static void test_ds_from_array_copy(void **state)
{
    (void)state;
    int64_t *v = rand_i64(N_RAND, 11);
    int64_t *orig = malloc(N_RAND * sizeof *orig);
    memcpy(orig, v, N_RAND * sizeof *v);
    ember_ctx *ctx = tu_ctx(4);
    size_t Ps[4], nP = part_counts(N_RAND, Ps);
    for (size_t k = 0; k < nP; k++) {
        ember_ds *a = array_i64(ctx, v, N_RAND, Ps[k]);
        assert_int_equal(ember_ds_partitions(a), Ps[k]);
        for (size_t i = 0; i < N_RAND; i++)
            v[i] = -v[i]; /* the dataset holds its own copy */
        unsigned char **exp = calloc(Ps[k], sizeof *exp);
        size_t *nexp = calloc(Ps[k], sizeof *nexp);
        for (size_t p = 0, off = 0; p < Ps[k]; p++) {
            nexp[p] = tu_part_len(N_RAND, Ps[k], p);
            exp[p] = (unsigned char *)(orig + off);
            off += nexp[p];
        }
        check_parts(a, exp, nexp);
        free(exp);
        free(nexp);
        for (size_t i = 0; i < N_RAND; i++)
            v[i] = -v[i];
        ember_ds_free(&a);
    }
    ember_ctx_destroy(&ctx);
    free(v);
    free(orig);
}

static void test_ds_from_array_borrow(void **state)
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
    size_t n = 100000;
    int64_t *v = rand_i64(n, 12);
    ember_type t = ember_type_scalar(EMBER_I64);
    ember_ds *a = NULL;
    char msg[EMBER_MSG_SIZE];
    long long before = atomic_load(&c.live_bytes);
    TU_OKM(ember_from_array(&a, ctx, &t, v, n, 6, EMBER_BORROW, msg), msg);
    /* No copy of the 800 KB was made. */
    assert_true(atomic_load(&c.live_bytes) - before < (long long)(n * 8 / 4));
    v[0] = 424242; /* borrowed: the dataset reads the caller's array */
    size_t got = 0;
    int64_t *all = tu_collect(a, &got);
    assert_int_equal(got, n);
    assert_memory_equal(all, v, n * sizeof *v);
    assert_int_equal(all[0], 424242);
    free(all);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
    free(v);
}

static void test_ds_from_array_rejects_bad_args(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = ember_type_scalar(EMBER_I64);
    int64_t v[3] = {1, 2, 3};
    ember_ds *a = NULL;
    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(ember_from_array(&a, NULL, &t, v, 3, 1, EMBER_COPY, msg),
                     EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
    assert_int_equal(ember_from_array(&a, ctx, NULL, v, 3, 1, EMBER_COPY, msg),
                     EMBER_EINVAL);
    assert_int_equal(ember_from_array(&a, ctx, &t, NULL, 3, 1, EMBER_BORROW, msg),
                     EMBER_EINVAL);
    assert_int_equal(ember_from_array(NULL, ctx, &t, v, 3, 1, EMBER_COPY, msg),
                     EMBER_EINVAL);
    ember_type bad = ember_type_scalar((ember_scalar)77);
    assert_int_equal(ember_from_array(&a, ctx, &bad, v, 3, 1, EMBER_COPY, msg),
                     EMBER_ETYPE);
    TU_MSG_HAS(msg, "size 0");
    assert_null(a);
    /* NULL records with n == 0 is an empty dataset. */
    TU_OKM(ember_from_array(&a, ctx, &t, NULL, 0, 0, EMBER_COPY, msg), msg);
    uint64_t n = 7;
    TU_OKM(ember_count(a, &n, msg), msg);
    assert_int_equal(n, 0);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

/* A type edited by hand is refused where a dataset is made, not found out
 * later by a kernel reading past its records (address sanitizer reports
 * before the check). */
static int twice_fn(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        int64_t x;
        memcpy(&x, (const char *)in + i * sizeof x, sizeof x);
        x *= 2;
        memcpy((char *)out + i * sizeof x, &x, sizeof x);
    }
    return 0;
}

static void test_ds_malformed_types_refused(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    int64_t v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ember_ds *a = NULL, *m = NULL;
    char msg[EMBER_MSG_SIZE] = "";
    ember_type bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = ember_type_scalar(EMBER_I64);
    bad[0].size = 4;                        /* a field past the record */
    bad[1].nfields = EMBER_MAX_FIELDS + 8;  /* more fields than there are */
    bad[2].field[0].offset = 16;            /* a field outside the record */
    bad[3].field[0].kind = (ember_scalar)9; /* an unknown kind */
    bad[4].cls = (ember_type_class)0;       /* an unknown class */
    memset(bad[5].field[0].name, 'x', EMBER_NAME_SIZE); /* no terminator */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ember_from_array(&a, ctx, &bad[i], v, 2, 2, EMBER_COPY, msg),
                         EMBER_ETYPE);
        TU_MSG_HAS(msg, "malformed record type");
        assert_null(a);
    }
    ember_type t = ember_type_scalar(EMBER_I64);
    TU_OKM(ember_from_array(&a, ctx, &t, v, 8, 2, EMBER_COPY, msg), msg);
    assert_int_equal(ember_map(&m, a, &bad[0], twice_fn, NULL, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "malformed record type");
    assert_null(m);
    TU_OKM(ember_map(&m, a, &t, twice_fn, NULL, 0, msg), msg);
    int64_t sum = 0;
    TU_OKM(ember_sum(m, &sum, msg), msg);
    assert_int_equal(sum, 72);
    ember_ds_free(&m);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

static void test_ds_empty_sources(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    size_t Ps[] = {0, 1, 9};
    for (size_t k = 0; k < 3; k++) {
        ember_ds *a = NULL;
        TU_OKM(ember_from_array(&a, ctx, &t, NULL, 0, Ps[k], EMBER_COPY, msg),
               msg);
        assert_int_equal(ember_ds_partitions(a), Ps[k] ? Ps[k] : 1);
        uint64_t n = 1;
        TU_OKM(ember_count(a, &n, msg), msg);
        assert_int_equal(n, 0);
        void *out = NULL;
        size_t got = 5;
        TU_OKM(ember_collect_alloc(a, &out, &got, msg), msg);
        assert_int_equal(got, 0);
        ember_free(ctx, out);
        ember_ds_free(&a);
    }
    ember_ctx_destroy(&ctx);
}

/* ---- narrow transformations ------------------------------------------------ */

static int i64_to_f64(const void *in, void *out, size_t n, void *arg)
{
    const double *scale = arg;
    const int64_t *a = in;
    double *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (double)a[i] * *scale + 0.25;
    return 0;
}

static int i64_square_mod(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (a[i] * a[i]) % 1000003 - a[i];
    return 0;
}

static int keep_not_div3(const void *in, unsigned char *keep, size_t n,
                         void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] % 3 != 0;
    return 0;
}

typedef struct {
    int64_t key;
    int64_t value;
} kv64;

/* Emits (x mod 4) records per x: {x, j * 1000 + partition}. */
static int fan_out(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    size_t part = ember_emitter_partition(em);
    for (size_t i = 0; i < n; i++) {
        int64_t m = ((a[i] % 4) + 4) % 4;
        for (int64_t j = 0; j < m; j++) {
            kv64 r = {a[i], j * 1000 + (int64_t)part};
            if (ember_emit(em, &r, 1))
                return 5;
        }
    }
    return 0;
}

/* Reference of each narrow op on one partition's records. */
typedef size_t (*ref_fn)(const int64_t *in, size_t n, size_t part,
                         unsigned char *out);

static size_t ref_map(const int64_t *in, size_t n, size_t part,
                      unsigned char *out)
{
    (void)part;
    double *o = (double *)out;
    for (size_t i = 0; i < n; i++)
        o[i] = (double)in[i] * 1.5 + 0.25;
    return n;
}

static size_t ref_map_same(const int64_t *in, size_t n, size_t part,
                           unsigned char *out)
{
    (void)part;
    int64_t *o = (int64_t *)out;
    for (size_t i = 0; i < n; i++)
        o[i] = (in[i] * in[i]) % 1000003 - in[i];
    return n;
}

static size_t ref_filter(const int64_t *in, size_t n, size_t part,
                         unsigned char *out)
{
    (void)part;
    int64_t *o = (int64_t *)out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] % 3 != 0)
            o[m++] = in[i];
    return m;
}

static size_t ref_fan_out(const int64_t *in, size_t n, size_t part,
                          unsigned char *out)
{
    kv64 *o = (kv64 *)out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = ((in[i] % 4) + 4) % 4;
        for (int64_t j = 0; j < k; j++)
            o[m++] = (kv64){in[i], j * 1000 + (int64_t)part};
    }
    return m;
}

typedef enum { OP_MAP, OP_MAP_SAME, OP_FILTER, OP_FLAT } narrow_op;

/* Builds op over an array of v (P partitions) and checks every partition
 * against ref. */
static void check_narrow(ember_ctx *ctx, const int64_t *v, size_t n, size_t P,
                         narrow_op op)
{
    char msg[EMBER_MSG_SIZE] = "junk";
    ember_ds *src = array_i64(ctx, v, n, P), *out = NULL;
    static double scale = 1.5;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ref_fn ref = NULL;
    size_t out_size = 8, per = 1;
    switch (op) {
    case OP_MAP:
        TU_OKM(ember_map(&out, src, &f64, i64_to_f64, &scale, sizeof scale, msg), msg);
        ref = ref_map;
        break;
    case OP_MAP_SAME:
        TU_OKM(ember_map(&out, src, NULL, i64_square_mod, NULL, 0, msg), msg);
        ref = ref_map_same;
        break;
    case OP_FILTER:
        TU_OKM(ember_filter(&out, src, keep_not_div3, NULL, 0, msg), msg);
        ref = ref_filter;
        break;
    case OP_FLAT:
        TU_OKM(ember_flat_map(&out, src, &kv, fan_out, NULL, 0, msg), msg);
        ref = ref_fan_out;
        out_size = sizeof(kv64);
        per = 3;
        break;
    }
    assert_string_equal(msg, "");
    assert_int_equal(ember_ds_partitions(out), P);
    ember_ds_free(&src); /* the child keeps it alive */
    unsigned char **exp = calloc(P, sizeof *exp);
    size_t *nexp = calloc(P, sizeof *nexp);
    for (size_t p = 0, off = 0; p < P; p++) {
        size_t len = tu_part_len(n, P, p);
        exp[p] = malloc(len * out_size * per + 1);
        nexp[p] = ref(v + off, len, p, exp[p]);
        off += len;
    }
    check_parts(out, exp, nexp);
    for (size_t p = 0; p < P; p++)
        free(exp[p]);
    free(exp);
    free(nexp);
    ember_ds_free(&out);
}

static void run_narrow(narrow_op op)
{
    int64_t *v = rand_i64(N_RAND, 21 + op);
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        size_t Ps[4], nP = part_counts(N_RAND, Ps);
        for (size_t k = 0; k < nP; k++)
            check_narrow(ctx, v, N_RAND, Ps[k], op);
        check_narrow(ctx, v, 0, 3, op); /* empty input */
        check_narrow(ctx, v, 1, 2, op);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

static void test_ds_map_matches_reference(void **state)
{
    (void)state;
    run_narrow(OP_MAP);
    run_narrow(OP_MAP_SAME);
}

static void test_ds_filter_matches_reference(void **state)
{
    (void)state;
    run_narrow(OP_FILTER);
}

static void test_ds_flat_map_matches_reference(void **state)
{
    (void)state;
    run_narrow(OP_FLAT);
}

typedef struct {
    atomic_long calls;
    atomic_long records;
    atomic_long max_n;
} call_count;

static int counted_copy(const void *in, void *out, size_t n, void *arg)
{
    call_count *c = arg;
    atomic_fetch_add(&c->calls, 1);
    atomic_fetch_add(&c->records, (long)n);
    long m = atomic_load(&c->max_n);
    while ((long)n > m && !atomic_compare_exchange_weak(&c->max_n, &m, (long)n))
        ;
    memcpy(out, in, n * 8);
    return 0;
}

/* User functions see blocks of at most block_bytes, never one record at a
 * time and never a whole partition at once. */
static void test_ds_map_called_per_block(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.block_bytes = 1024; /* 128 i64 per block */
    o.threads = 2;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    size_t n = 10000, P = 3;
    TU_OKM(ember_range(&r, ctx, 0, (int64_t)n, 1, P, msg), msg);
    call_count c = {0};
    TU_OKM(ember_map(&m, r, NULL, counted_copy, &c, 0 /* borrowed: it counts calls in c */, msg), msg);
    uint64_t cnt;
    TU_OKM(ember_count(m, &cnt, msg), msg);
    assert_int_equal(cnt, n);
    long blocks = 0;
    for (size_t p = 0; p < P; p++)
        blocks += (long)((tu_part_len(n, P, p) + 127) / 128);
    assert_int_equal(atomic_load(&c.calls), blocks);
    assert_int_equal(atomic_load(&c.records), (long)n);
    assert_int_equal(atomic_load(&c.max_n), 128);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

typedef struct {
    atomic_long calls;
    atomic_long empty_calls;
} mp_count;

/* Emits the partition's prefix sums, then {partition, n}. */
static int prefix_sums(const void *in, size_t n, ember_emitter *em, void *arg)
{
    mp_count *c = arg;
    atomic_fetch_add(&c->calls, 1);
    if (n == 0)
        atomic_fetch_add(&c->empty_calls, 1);
    const int64_t *a = in;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i];
        if (ember_emit(em, &s, 1))
            return 3;
    }
    int64_t tail[2] = {(int64_t)ember_emitter_partition(em), (int64_t)n};
    return ember_emit(em, tail, 2) ? 3 : 0;
}

static void test_ds_map_partitions_sees_whole_partition(void **state)
{
    (void)state;
    int64_t *v = rand_i64(N_RAND, 31);
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx_opts o;
        memset(&o, 0, sizeof o);
        o.threads = threads;
        o.block_bytes = 512; /* partitions span many blocks */
        ember_ctx *ctx = tu_ctx_opts(&o);
        size_t Ps[4], nP = part_counts(N_RAND, Ps);
        for (size_t k = 0; k < nP; k++) {
            size_t P = Ps[k];
            char msg[EMBER_MSG_SIZE];
            ember_ds *src = array_i64(ctx, v, N_RAND, P), *mp = NULL;
            mp_count c = {0};
            TU_OKM(ember_map_partitions(&mp, src, NULL, prefix_sums, &c, 0 /* borrowed: it counts into c */, msg),
                   msg);
            unsigned char **exp = calloc(P, sizeof *exp);
            size_t *nexp = calloc(P, sizeof *nexp);
            size_t empty = 0;
            for (size_t p = 0, off = 0; p < P; p++) {
                size_t len = tu_part_len(N_RAND, P, p);
                int64_t *e = malloc((len + 2) * sizeof *e);
                int64_t s = 0;
                for (size_t i = 0; i < len; i++)
                    e[i] = s += v[off + i];
                e[len] = (int64_t)p;
                e[len + 1] = (int64_t)len;
                exp[p] = (unsigned char *)e;
                nexp[p] = len + 2;
                empty += len == 0;
                off += len;
            }
            check_parts(mp, exp, nexp);
            /* Once per partition, empty ones included. */
            assert_int_equal(atomic_load(&c.calls), (long)P);
            assert_int_equal(atomic_load(&c.empty_calls), (long)empty);
            for (size_t p = 0; p < P; p++)
                free(exp[p]);
            free(exp);
            free(nexp);
            ember_ds_free(&mp);
            ember_ds_free(&src);
        }
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

static int negate_f64(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    double *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = -(double)a[i];
    return 0;
}

static int keep_even(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = (a[i] & 1) == 0;
    return 0;
}

static void test_ds_zip_matches_reference(void **state)
{
    (void)state;
    int64_t *v = rand_i64(N_RAND, 41);
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        size_t Ps[4], nP = part_counts(N_RAND, Ps);
        for (size_t k = 0; k < nP; k++) {
            size_t P = Ps[k];
            char msg[EMBER_MSG_SIZE];
            ember_type f64 = ember_type_scalar(EMBER_F64);
            ember_ds *src = array_i64(ctx, v, N_RAND, P), *ev = NULL,
                     *neg = NULL, *z = NULL;
            /* Both sides filter the same way, so partitions line up. */
            TU_OKM(ember_filter(&ev, src, keep_even, NULL, 0, msg), msg);
            TU_OKM(ember_map(&neg, ev, &f64, negate_f64, NULL, 0, msg), msg);
            TU_OKM(ember_zip(&z, ev, neg, msg), msg);
            ember_type pair = ember_type_pair(EMBER_I64, EMBER_F64);
            assert_true(ember_type_equal(ember_ds_type(z), &pair));
            assert_int_equal(ember_ds_type(z)->cls, EMBER_TYPE_PAIR);
            assert_int_equal(ember_ds_partitions(z), P);
            struct { int64_t k; double v; } *all = NULL;
            size_t got = 0, want = 0;
            all = tu_collect(z, &got);
            for (size_t i = 0; i < N_RAND; i++) {
                if (v[i] & 1)
                    continue;
                assert_true(want < got);
                assert_int_equal(all[want].k, v[i]);
                assert_true(all[want].v == -(double)v[i]);
                want++;
            }
            assert_int_equal(got, want);
            free(all);
            /* zip(a, a): both sides from one node. */
            ember_ds *zz = NULL;
            TU_OKM(ember_zip(&zz, src, src, msg), msg);
            int64_t (*pairs)[2] = tu_collect(zz, &got);
            assert_int_equal(got, N_RAND);
            for (size_t i = 0; i < N_RAND; i++) {
                assert_int_equal(pairs[i][0], v[i]);
                assert_int_equal(pairs[i][1], v[i]);
            }
            free(pairs);
            ember_ds_free(&zz);
            ember_ds_free(&z);
            ember_ds_free(&neg);
            ember_ds_free(&ev);
            ember_ds_free(&src);
        }
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

static void test_ds_zip_struct_names(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    kv64 recs[4] = {{1, 10}, {2, 20}, {3, 30}, {4, 40}};
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ds *a = NULL, *z = NULL;
    TU_OKM(ember_from_array(&a, ctx, &kv, recs, 4, 2, EMBER_BORROW, msg), msg);
    TU_OKM(ember_zip(&z, a, a, msg), msg);
    const ember_type *t = ember_ds_type(z);
    assert_int_equal(t->cls, EMBER_TYPE_STRUCT);
    assert_int_equal(t->nfields, 4);
    assert_string_equal(t->field[0].name, "key");
    assert_string_equal(t->field[1].name, "value");
    assert_string_equal(t->field[2].name, "key_2");
    assert_string_equal(t->field[3].name, "value_2");
    size_t got;
    int64_t (*r)[4] = tu_collect(z, &got);
    assert_int_equal(got, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i][0], i + 1);
        assert_int_equal(r[i][1], 10 * (i + 1));
        assert_int_equal(r[i][2], i + 1);
        assert_int_equal(r[i][3], 10 * (i + 1));
    }
    free(r);
    ember_ds_free(&z);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

static void test_ds_zip_partition_count_mismatch(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *a = NULL, *b = NULL, *z = NULL;
    TU_OKM(ember_range(&a, ctx, 0, 100, 1, 4, msg), msg);
    TU_OKM(ember_range(&b, ctx, 0, 100, 1, 5, msg), msg);
    assert_int_equal(ember_zip(&z, a, b, msg), EMBER_ELENGTH);
    assert_null(z);
    TU_MSG_HAS(msg, "4 partitions");
    TU_MSG_HAS(msg, "5");
    assert_int_equal(ember_zip(&z, a, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_zip(&z, NULL, b, msg), EMBER_EINVAL);
    assert_int_equal(ember_zip(NULL, a, a, msg), EMBER_EINVAL);
    assert_null(z);
    ember_ds_free(&a);
    ember_ds_free(&b);
    ember_ctx_destroy(&ctx);
}

static int keep_below(const void *in, unsigned char *keep, size_t n, void *arg)
{
    const int64_t *lim = arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] < *lim;
    return 0;
}

/* Different record counts in a partition are found when the zip runs, and
 * the message names the partition (the lowest one that differs). */
static void test_ds_zip_length_mismatch_at_action(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        char msg[EMBER_MSG_SIZE] = "";
        ember_ds *a = NULL, *b = NULL, *z1 = NULL, *z2 = NULL;
        /* 8 partitions of 100; b drops records >= 250, so partitions 2..7
         * of b are shorter (2 partly, 3..7 empty). */
        static int64_t lim = 250;
        TU_OKM(ember_range(&a, ctx, 0, 800, 1, 8, msg), msg);
        TU_OKM(ember_filter(&b, a, keep_below, &lim, sizeof lim, msg), msg);
        TU_OKM(ember_zip(&z1, a, b, msg), msg); /* left longer */
        TU_OKM(ember_zip(&z2, b, a, msg), msg); /* right longer */
        uint64_t n = 0;
        assert_int_equal(ember_count(z1, &n, msg), EMBER_ELENGTH);
        TU_MSG_HAS(msg, "partition 2");
        assert_int_equal(ember_count(z2, &n, msg), EMBER_ELENGTH);
        TU_MSG_HAS(msg, "partition 2");
        void *out = (void *)1;
        size_t got = 3;
        assert_int_equal(ember_collect_alloc(z2, &out, &got, msg), EMBER_ELENGTH);
        TU_MSG_HAS(msg, "partition 2");
        assert_null(out);
        /* The first two partitions alone are fine. */
        int64_t buf[2][2];
        TU_OKM(ember_take(z1, 2, buf, &got, msg), msg);
        assert_int_equal(got, 2);
        assert_int_equal(buf[1][0], 1);
        assert_int_equal(buf[1][1], 1);
        ember_ds_free(&z1);
        ember_ds_free(&z2);
        ember_ds_free(&b);
        ember_ds_free(&a);
        ember_ctx_destroy(&ctx);
    }
}

static void test_ds_union_matches_reference(void **state)
{
    (void)state;
    int64_t *v = rand_i64(N_RAND, 51), *w = rand_i64(300, 52);
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    size_t Pa[] = {1, 4, 7}, Pb[] = {2, 1, 400};
    for (int k = 0; k < 3; k++) {
        ember_ds *a = array_i64(ctx, v, N_RAND, Pa[k]);
        ember_ds *b = array_i64(ctx, w, 300, Pb[k]), *u = NULL;
        TU_OKM(ember_union(&u, a, b, msg), msg);
        assert_int_equal(ember_ds_partitions(u), Pa[k] + Pb[k]);
        size_t P = Pa[k] + Pb[k];
        unsigned char **exp = calloc(P, sizeof *exp);
        size_t *nexp = calloc(P, sizeof *nexp);
        for (size_t p = 0, off = 0; p < Pa[k]; p++) {
            nexp[p] = tu_part_len(N_RAND, Pa[k], p);
            exp[p] = (unsigned char *)(v + off);
            off += nexp[p];
        }
        for (size_t p = 0, off = 0; p < Pb[k]; p++) {
            nexp[Pa[k] + p] = tu_part_len(300, Pb[k], p);
            exp[Pa[k] + p] = (unsigned char *)(w + off);
            off += nexp[Pa[k] + p];
        }
        check_parts(u, exp, nexp);
        free(exp);
        free(nexp);
        /* union with itself: every record twice. */
        ember_ds *uu = NULL;
        TU_OKM(ember_union(&uu, u, u, msg), msg);
        int64_t s1 = 0, s2 = 0;
        TU_OKM(ember_sum(u, &s1, msg), msg);
        TU_OKM(ember_sum(uu, &s2, msg), msg);
        assert_int_equal(s2, 2 * s1);
        ember_ds_free(&uu);
        ember_ds_free(&u);
        ember_ds_free(&a);
        ember_ds_free(&b);
    }
    ember_ctx_destroy(&ctx);
    free(v);
    free(w);
}

static void test_ds_union_rejects_other_types(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *a = NULL, *b = NULL, *u = NULL;
    TU_OKM(ember_range(&a, ctx, 0, 10, 1, 2, msg), msg);
    ember_type f64 = ember_type_scalar(EMBER_F64);
    TU_OKM(ember_map(&b, a, &f64, negate_f64, NULL, 0, msg), msg);
    assert_int_equal(ember_union(&u, a, b, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "i64");
    TU_MSG_HAS(msg, "f64");
    assert_null(u);
    assert_int_equal(ember_union(&u, a, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_union(NULL, a, a, msg), EMBER_EINVAL);
    ember_ds_free(&a);
    ember_ds_free(&b);
    ember_ctx_destroy(&ctx);
}

static int64_t *sample_run(int threads, size_t block_bytes, double frac,
                           uint64_t seed, size_t P, size_t *n)
{
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = threads;
    o.block_bytes = block_bytes;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *s = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, P, msg), msg);
    TU_OKM(ember_sample(&s, r, frac, seed, msg), msg);
    int64_t *out = tu_collect(s, n);
    ember_ds_free(&s);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    return out;
}

static void test_ds_sample_deterministic(void **state)
{
    (void)state;
    size_t n1, n2, n3, n4, n5;
    int64_t *a = sample_run(1, 0, 0.25, 7, 9, &n1);
    int64_t *b = sample_run(4, 0, 0.25, 7, 9, &n2);   /* other team */
    int64_t *c = sample_run(2, 256, 0.25, 7, 9, &n3); /* other blocks */
    int64_t *d = sample_run(4, 0, 0.25, 8, 9, &n4);   /* other seed */
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_memory_equal(a, b, n1 * 8);
    assert_memory_equal(a, c, n1 * 8);
    assert_true(n1 > 23000 && n1 < 27000);
    assert_true(n4 > 23000 && n4 < 27000);
    assert_true(n1 != n4 || memcmp(a, d, n1 * 8) != 0);
    for (size_t i = 1; i < n1; i++)
        assert_true(a[i - 1] < a[i]); /* a subsequence, in order */
    free(a);
    free(b);
    free(c);
    free(d);

    a = sample_run(4, 0, 0.0, 7, 9, &n5);
    assert_int_equal(n5, 0);
    free(a);
    a = sample_run(4, 0, 1.0, 7, 9, &n5);
    assert_int_equal(n5, 100000);
    for (size_t i = 0; i < n5; i++)
        assert_int_equal(a[i], (int64_t)i);
    free(a);
}

static void test_ds_sample_rejects_bad_fraction(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *r = NULL, *s = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    double bad[] = {-0.01, 1.0000001, 2.0, -INFINITY, INFINITY, NAN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = '\0';
        assert_int_equal(ember_sample(&s, r, bad[i], 1, msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "fraction");
        assert_null(s);
    }
    assert_int_equal(ember_sample(&s, NULL, 0.5, 1, msg), EMBER_EINVAL);
    assert_int_equal(ember_sample(NULL, r, 0.5, 1, msg), EMBER_EINVAL);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- user function errors ------------------------------------------------------- */

/* Fails with 7 on a block holding the value *arg. */
static int map_fails_at(const void *in, void *out, size_t n, void *arg)
{
    const int64_t *bad = arg, *a = in;
    for (size_t i = 0; i < n; i++)
        if (a[i] == *bad)
            return 7;
    memcpy(out, in, n * 8);
    return 0;
}

static int filter_fails_at(const void *in, unsigned char *keep, size_t n,
                           void *arg)
{
    const int64_t *bad = arg, *a = in;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == *bad)
            return -3;
        keep[i] = 1;
    }
    return 0;
}

static int flat_fails_at(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const int64_t *bad = arg, *a = in;
    for (size_t i = 0; i < n; i++)
        if (a[i] == *bad)
            return 9;
    return ember_emit(em, in, n);
}

static int mp_fails_in(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const size_t *bad = arg;
    if (ember_emitter_partition(em) == *bad)
        return 11;
    return ember_emit(em, in, n);
}

static void test_ds_user_error_names_partition(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL, *f = NULL, *fm = NULL, *mp = NULL;
        /* 10 partitions of 1000: value 2500 is in partition 2. */
        TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 10, msg), msg);
        static int64_t bad = 2500;
        static size_t bad_part = 6;
        TU_OKM(ember_map(&m, r, NULL, map_fails_at, &bad, sizeof bad, msg), msg);
        TU_OKM(ember_filter(&f, r, filter_fails_at, &bad, sizeof bad, msg), msg);
        TU_OKM(ember_flat_map(&fm, r, NULL, flat_fails_at, &bad, sizeof bad, msg), msg);
        TU_OKM(ember_map_partitions(&mp, r, NULL, mp_fails_in, &bad_part, sizeof bad_part, msg),
               msg);
        uint64_t n;
        assert_int_equal(ember_count(m, &n, msg), EMBER_EUSER);
        TU_MSG_HAS(msg, "partition 2");
        TU_MSG_HAS(msg, "map");
        TU_MSG_HAS(msg, "returned 7");
        assert_int_equal(ember_count(f, &n, msg), EMBER_EUSER);
        TU_MSG_HAS(msg, "partition 2");
        TU_MSG_HAS(msg, "filter");
        assert_int_equal(ember_count(fm, &n, msg), EMBER_EUSER);
        TU_MSG_HAS(msg, "partition 2");
        TU_MSG_HAS(msg, "flat_map");
        assert_int_equal(ember_count(mp, &n, msg), EMBER_EUSER);
        TU_MSG_HAS(msg, "partition 6");
        TU_MSG_HAS(msg, "map_partitions");
        /* The error is not sticky: a dataset that does not fail still runs. */
        TU_OKM(ember_count(r, &n, msg), msg);
        assert_int_equal(n, 10000);
        ember_ds_free(&m);
        ember_ds_free(&f);
        ember_ds_free(&fm);
        ember_ds_free(&mp);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- handles, names and NULL arguments ----------------------------------------- */

static void test_ds_names_and_accessors(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, i64_square_mod, NULL, 0, msg), msg);
    assert_string_equal(ember_ds_name(r), "range");
    assert_string_equal(ember_ds_name(m), "map");
    assert_ptr_equal(ember_ds_ctx(m), ctx);
    assert_true(ember_ds_id(m) > ember_ds_id(r)); /* ids grow */
    assert_int_equal(ember_ds_partitions(m), 2);
    char name[64];
    memset(name, 'n', 63);
    name[63] = '\0';
    assert_int_equal(ember_ds_set_name(m, name), EMBER_OK);
    assert_string_equal(ember_ds_name(m), name);
    char longer[65];
    memset(longer, 'l', 64);
    longer[64] = '\0';
    assert_int_equal(ember_ds_set_name(m, longer), EMBER_EINVAL);
    assert_string_equal(ember_ds_name(m), name);
    assert_int_equal(ember_ds_set_name(m, NULL), EMBER_EINVAL);
    assert_int_equal(ember_ds_set_name(NULL, "x"), EMBER_EINVAL);
    TU_OK(ember_ds_set_name(m, "squares"));
    assert_string_equal(ember_ds_name(m), "squares");

    assert_null(ember_ds_type(NULL));
    assert_int_equal(ember_ds_partitions(NULL), 0);
    assert_null(ember_ds_ctx(NULL));
    assert_int_equal(ember_ds_id(NULL), 0);
    assert_null(ember_ds_name(NULL));
    assert_int_equal(ember_ds_level(NULL), EMBER_NONE);
    assert_int_equal(ember_cached_partitions(NULL), 0);
    assert_null(ember_lines_text(NULL, NULL));
    assert_null(ember_lines_text(r, NULL)); /* not a lines dataset */
    /* an ownership that is neither: refused, not taken for a copy */
    int64_t v[3] = {1, 2, 3};
    ember_type i64 = ember_type_scalar(EMBER_I64);
    ember_ds *a = NULL;
    assert_int_equal(ember_from_array(&a, ctx, &i64, v, 3, 1, (ember_ownership)7, msg),
                     EMBER_EINVAL);
    TU_MSG_HAS(msg, "ownership 7");
    assert_null(a);
    uint64_t off[2] = {0, 3};
    assert_int_equal(ember_from_array_parts(&a, ctx, &i64, v, 3, off, 1, (ember_ownership)7,
                                            msg),
                     EMBER_EINVAL);
    TU_MSG_HAS(msg, "ownership 7");
    assert_null(a);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* A parent freed right after deriving stays alive for its children. */
static void test_ds_free_parent_first(void **state)
{
    (void)state;
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator al = tu_allocator(&c);
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &al;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *f = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 3, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, i64_square_mod, NULL, 0, msg), msg);
    ember_ds_free(&r);
    assert_null(r);
    TU_OKM(ember_filter(&f, m, keep_not_div3, NULL, 0, msg), msg);
    ember_ds_free(&m);
    uint64_t n = 0;
    TU_OKM(ember_count(f, &n, msg), msg);
    int64_t *v = malloc(1000 * 8);
    for (int64_t i = 0; i < 1000; i++)
        v[i] = i;
    int64_t *w = malloc(1000 * 8);
    assert_int_equal(n, ref_filter(w, ref_map_same(v, 1000, 0, (void *)w), 0,
                                   (void *)w));
    free(v);
    free(w);
    ember_ds_free(&f);
    /* Everything is gone before the context is. */
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    long live = atomic_load(&c.live);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
    assert_true(live > 0); /* only the context and its store were left */
    ember_ds_free(NULL);
    ember_ds *none = NULL;
    ember_ds_free(&none);
}

static void test_ds_null_arguments(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *o = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    ember_type t = ember_type_scalar(EMBER_I64);

#define EXPECT_EINVAL(call)                                                    \
    do {                                                                       \
        msg[0] = '\0';                                                         \
        assert_int_equal((call), EMBER_EINVAL);                                \
        assert_true(msg[0] != '\0');                                           \
        assert_null(o);                                                        \
    } while (0)
    EXPECT_EINVAL(ember_map(&o, NULL, &t, i64_square_mod, NULL, 0, msg));
    EXPECT_EINVAL(ember_map(&o, r, &t, NULL, NULL, 0, msg));
    EXPECT_EINVAL(ember_map(NULL, r, &t, i64_square_mod, NULL, 0, msg));
    EXPECT_EINVAL(ember_filter(&o, NULL, keep_even, NULL, 0, msg));
    EXPECT_EINVAL(ember_filter(&o, r, NULL, NULL, 0, msg));
    EXPECT_EINVAL(ember_flat_map(&o, NULL, NULL, fan_out, NULL, 0, msg));
    EXPECT_EINVAL(ember_flat_map(&o, r, NULL, NULL, NULL, 0, msg));
    EXPECT_EINVAL(ember_map_partitions(&o, NULL, NULL, prefix_sums, NULL, 0, msg));
    EXPECT_EINVAL(ember_map_partitions(&o, r, NULL, NULL, NULL, 0, msg));
    EXPECT_EINVAL(ember_zip(&o, r, NULL, msg));
    EXPECT_EINVAL(ember_union(&o, NULL, r, msg));
    EXPECT_EINVAL(ember_sample(&o, NULL, 0.5, 1, msg));
    EXPECT_EINVAL(ember_persist(NULL, EMBER_MEMORY_ONLY, msg));
    EXPECT_EINVAL(ember_cache(NULL, msg));
    ember_bcast *bc = NULL;
    EXPECT_EINVAL(ember_broadcast(&bc, NULL, msg));
    EXPECT_EINVAL(ember_broadcast(NULL, r, msg));
    assert_null(bc);
#undef EXPECT_EINVAL
    /* A map to a type of size 0 is refused. */
    ember_type bad = ember_type_scalar((ember_scalar)0);
    assert_int_equal(ember_map(&o, r, &bad, i64_square_mod, NULL, 0, msg),
                     EMBER_ETYPE);
    assert_null(o);
    /* Calls without msg still fail cleanly. */
    assert_int_equal(ember_map(&o, NULL, NULL, i64_square_mod, NULL, 0, NULL),
                     EMBER_EINVAL);
    assert_int_equal(ember_unpersist(NULL), EMBER_EINVAL);
    assert_int_equal(ember_ds_uses(NULL, NULL), EMBER_EINVAL);
    assert_int_equal(ember_ds_uses(r, NULL), EMBER_EINVAL);
    assert_null(ember_bcast_data(NULL, NULL));
    assert_null(ember_bcast_type(NULL));
    ember_bcast_free(NULL);
    ember_bcast_free(&bc);
    assert_int_equal(ember_emit(NULL, &t, 1), EMBER_EINVAL);
    assert_int_equal(ember_emitter_partition(NULL), 0);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- persistence API --------------------------------------------------------------- */

static void test_ds_persist_levels(void **state)
{
    (void)state;
    assert_string_equal(ember_level_name(EMBER_NONE), "NONE");
    assert_string_equal(ember_level_name(EMBER_MEMORY_ONLY), "MEMORY_ONLY");
    assert_string_equal(ember_level_name(EMBER_MEMORY_AND_DISK),
                        "MEMORY_AND_DISK");
    assert_string_equal(ember_level_name(EMBER_DISK_ONLY), "DISK_ONLY");
    assert_string_equal(ember_level_name(EMBER_MEMORY_ONLY_SER),
                        "MEMORY_ONLY_SER");
    assert_string_equal(ember_level_name(EMBER_MEMORY_AND_DISK_SER),
                        "MEMORY_AND_DISK_SER");
    assert_string_equal(ember_level_name((ember_level)42), "?");

    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 4, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, i64_square_mod, NULL, 0, msg), msg);
    assert_int_equal(ember_ds_level(m), EMBER_NONE);
    assert_int_equal(ember_cached_partitions(m), 0);
    TU_OKM(ember_cache(m, msg), msg);
    assert_int_equal(ember_ds_level(m), EMBER_MEMORY_ONLY);
    TU_OKM(ember_persist(m, EMBER_MEMORY_ONLY, msg), msg); /* same: fine */
    assert_int_equal(ember_persist(m, EMBER_DISK_ONLY, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "MEMORY_ONLY");
    TU_MSG_HAS(msg, "unpersist");
    assert_int_equal(ember_ds_level(m), EMBER_MEMORY_ONLY);
    assert_int_equal(ember_persist(m, (ember_level)6, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "level");
    assert_int_equal(ember_persist(m, (ember_level)-1, msg), EMBER_EINVAL);
    uint64_t n;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(ember_cached_partitions(m), 4);
    TU_OK(ember_unpersist(m));
    assert_int_equal(ember_ds_level(m), EMBER_NONE);
    assert_int_equal(ember_cached_partitions(m), 0);
    TU_OKM(ember_persist(m, EMBER_MEMORY_ONLY_SER, msg), msg);
    assert_int_equal(ember_ds_level(m), EMBER_MEMORY_ONLY_SER);
    TU_OK(ember_unpersist(m));
    TU_OK(ember_unpersist(m)); /* twice is fine */
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

static int counted_square(const void *in, void *out, size_t n, void *arg)
{
    atomic_long *calls = arg;
    atomic_fetch_add(calls, 1);
    return i64_square_mod(in, out, n, NULL);
}

/* The second action reads the cache: cache_hits move and the map function
 * is not called again. */
static void test_ds_cache_skips_recompute(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        ember_ctx *ctx = tu_ctx(threads);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL, *f = NULL;
        atomic_long calls = 0;
        TU_OKM(ember_range(&r, ctx, 0, 200000, 1, 6, msg), msg);
        TU_OKM(ember_map(&m, r, NULL, counted_square, &calls, 0 /* borrowed: counts */, msg), msg);
        TU_OKM(ember_cache(m, msg), msg);
        TU_OKM(ember_filter(&f, m, keep_not_div3, NULL, 0, msg), msg);
        int64_t s1 = 0, s2 = 0, s3 = 0;
        TU_OKM(ember_sum(f, &s1, msg), msg);
        long first = atomic_load(&calls);
        assert_true(first > 0);
        assert_int_equal(ember_cached_partitions(m), 6);
        ember_stats st;
        ember_ctx_stats(ctx, &st);
        assert_int_equal(st.cache_hits, 0);
        assert_true(st.memory_used >= 200000 * 8);
        TU_OKM(ember_sum(f, &s2, msg), msg);
        TU_OKM(ember_sum(m, &s3, msg), msg);
        assert_int_equal(atomic_load(&calls), first);
        assert_int_equal(s1, s2);
        ember_ctx_stats(ctx, &st);
        assert_int_equal(st.cache_hits, 12);
        assert_int_equal(st.recomputes, 0);
        /* The same sum without the cache. */
        ember_ds *m2 = NULL, *f2 = NULL;
        TU_OKM(ember_map(&m2, r, NULL, i64_square_mod, NULL, 0, msg), msg);
        TU_OKM(ember_filter(&f2, m2, keep_not_div3, NULL, 0, msg), msg);
        int64_t ref = 0;
        TU_OKM(ember_sum(f2, &ref, msg), msg);
        assert_int_equal(ref, s1);
        ember_ds_free(&f2);
        ember_ds_free(&m2);
        ember_ds_free(&f);
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

static void test_ds_unpersist_frees_memory(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    atomic_long calls = 0;
    TU_OKM(ember_range(&r, ctx, 0, 100000, 1, 5, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, counted_square, &calls, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_persist(m, EMBER_MEMORY_ONLY, msg), msg);
    uint64_t n;
    TU_OKM(ember_count(m, &n, msg), msg);
    ember_stats s;
    ember_ctx_stats(ctx, &s);
    assert_true(s.memory_used >= 100000 * 8);
    assert_int_equal(s.blocks_in_memory, 5);
    TU_OK(ember_unpersist(m));
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.memory_used, 0);
    assert_int_equal(s.blocks_in_memory, 0);
    assert_int_equal(ember_cached_partitions(m), 0);
    long before = atomic_load(&calls);
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_true(atomic_load(&calls) > before); /* computed again */
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.memory_used, 0); /* and not stored */

    /* Freeing a cached dataset frees its blocks too. Persisting again
     * starts afresh: its first computation is not a recompute. */
    TU_OKM(ember_cache(m, msg), msg);
    TU_OKM(ember_count(m, &n, msg), msg);
    ember_ctx_stats(ctx, &s);
    assert_true(s.memory_used > 0);
    assert_int_equal(s.recomputes, 0);
    ember_ds_free(&m);
    ember_ctx_stats(ctx, &s);
    assert_int_equal(s.memory_used, 0);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- broadcasts ------------------------------------------------------------------- */

static void test_ds_broadcast_array_is_view(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    int64_t v[6] = {3, 1, 4, 1, 5, 9};
    ember_type t = ember_type_scalar(EMBER_I64);
    ember_ds *a = NULL, *c = NULL;
    TU_OKM(ember_from_array(&a, ctx, &t, v, 6, 2, EMBER_BORROW, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, a, msg), msg);
    size_t n = 0;
    assert_ptr_equal(ember_bcast_data(bc, &n), v); /* no copy */
    assert_int_equal(n, 6);
    assert_non_null(ember_bcast_data(bc, NULL));
    assert_true(ember_type_equal(ember_bcast_type(bc), &t));
    ember_bcast_free(&bc);
    assert_null(bc);

    TU_OKM(ember_from_array(&c, ctx, &t, v, 6, 3, EMBER_COPY, msg), msg);
    TU_OKM(ember_broadcast(&bc, c, msg), msg);
    const int64_t *d = ember_bcast_data(bc, &n);
    assert_ptr_not_equal(d, v);
    assert_int_equal(n, 6);
    assert_memory_equal(d, v, sizeof v);
    ember_ds_free(&c); /* the broadcast keeps its dataset alive */
    d = ember_bcast_data(bc, &n);
    assert_memory_equal(d, v, sizeof v);
    ember_bcast_free(&bc);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

/* A broadcast of a computed dataset is computed once into one array. */
static void test_ds_broadcast_computed_once(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    atomic_long calls = 0;
    TU_OKM(ember_range(&r, ctx, 0, 50000, 1, 7, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, counted_square, &calls, 0 /* borrowed: counts */, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, m, msg), msg);
    long after = atomic_load(&calls);
    assert_true(after > 0);
    size_t n = 0;
    const int64_t *d = ember_bcast_data(bc, &n);
    assert_int_equal(n, 50000);
    for (size_t i = 0; i < n; i++) {
        int64_t x = (int64_t)i;
        assert_int_equal(d[i], (x * x) % 1000003 - x);
    }
    ember_ds_free(&m);
    ember_ds_free(&r);
    d = ember_bcast_data(bc, &n);
    assert_int_equal(d[49999], (int64_t)49999 * 49999 % 1000003 - 49999);
    assert_int_equal(atomic_load(&calls), after);
    ember_bcast_free(&bc);
    ember_ctx_destroy(&ctx);
}

typedef struct {
    const ember_bcast *bc;
} lookup_arg;

/* out = table[x % table_n], the table read from a broadcast. */
static int lookup(const void *in, void *out, size_t n, void *arg)
{
    const lookup_arg *la = arg;
    size_t tn = 0;
    const int64_t *table = ember_bcast_data(la->bc, &tn);
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = table[(size_t)a[i] % tn];
    return 0;
}

static void test_ds_broadcast_read_by_tasks(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_ds *tab = NULL, *r = NULL, *m = NULL;
    TU_OKM(ember_range(&tab, ctx, 100, 0, -3, 2, msg), msg); /* 34 values */
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, tab, msg), msg);
    ember_ds_free(&tab);
    TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 8, msg), msg);
    static lookup_arg la;
    la.bc = bc;
    TU_OKM(ember_map(&m, r, NULL, lookup, &la, sizeof la, msg), msg);
    TU_OK(ember_ds_uses(m, bc));
    ember_bcast_free(&bc); /* m keeps it alive */
    assert_null(bc);
    char *lin = NULL;
    TU_OK(ember_lineage_string(m, &lin));
    TU_MSG_HAS(lin, "uses broadcast");
    ember_free(ctx, lin);
    size_t n;
    int64_t *got = tu_collect(m, &n);
    assert_int_equal(n, 10000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], 100 - 3 * (int64_t)(i % 34));
    free(got);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}


/* ---- closures by value ------------------------------------------------------- */

typedef struct {
    int64_t d;
    long double pad; /* the copy must be aligned for any type */
} add_arg;

static int arg_misaligned(const void *arg)
{
    return (uintptr_t)arg % _Alignof(max_align_t) != 0;
}

static int add_d(const void *in, void *out, size_t n, void *arg)
{
    const add_arg *a = arg;
    const int64_t *x = in;
    int64_t *y = out;
    if (arg_misaligned(arg))
        return 7;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + a->d;
    return 0;
}

static int keep_multiple_of_d(const void *in, unsigned char *keep, size_t n,
                              void *arg)
{
    const add_arg *a = arg;
    const int64_t *x = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = x[i] % a->d == 0;
    return arg_misaligned(arg) ? 7 : 0;
}

/* flat_map and map_partitions: each record d times. */
static int repeat_d(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const add_arg *a = arg;
    for (size_t i = 0; i < n; i++)
        for (int64_t k = 0; k < a->d; k++)
            if (ember_emit(em, (const int64_t *)in + i, 1))
                return 1;
    return arg_misaligned(arg) ? 7 : 0;
}

/* Sum of ds's i64 records. */
static int64_t sum_i64(ember_ds *ds)
{
    char msg[EMBER_MSG_SIZE];
    int64_t s = 0;
    TU_OKM(ember_sum(ds, &s, msg), msg);
    return s;
}

/* Every lazy transformation: the arg is changed, then freed, after the
 * dataset is made; the result is the one the arg had at creation. */
static void test_ds_arg_copied_at_creation(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *f = NULL, *fm = NULL, *mp = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 4, msg), msg);
    add_arg *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->d = 3;
    TU_OKM(ember_map(&m, r, NULL, add_d, a, sizeof *a, msg), msg);
    TU_OKM(ember_filter(&f, r, keep_multiple_of_d, a, sizeof *a, msg), msg);
    TU_OKM(ember_flat_map(&fm, r, NULL, repeat_d, a, sizeof *a, msg), msg);
    TU_OKM(ember_map_partitions(&mp, r, NULL, repeat_d, a, sizeof *a, msg), msg);
    a->d = 1000;
    free(a); /* the datasets hold copies (ASan: no read of freed memory) */
    assert_int_equal(sum_i64(m), 499500 + 3 * 1000);
    int64_t mult3 = 0; /* 0 + 3 + ... + 999 */
    for (int64_t i = 0; i < 1000; i += 3)
        mult3 += i;
    assert_int_equal(sum_i64(f), mult3);
    assert_int_equal(sum_i64(fm), 3 * 499500);
    assert_int_equal(sum_i64(mp), 3 * 499500);
    ember_ds *all[] = {r, m, f, fm, mp};
    for (int i = 0; i < 5; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
}

/* A borrowed arg (arg_size 0) is the caller's pointer itself. */
static int arg_is(const void *in, void *out, size_t n, void *arg)
{
    memcpy(out, in, n * sizeof(int64_t));
    return *(int64_t **)arg != arg; /* the arg holds its own address */
}

static void test_ds_arg_borrowed_when_size_zero(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL, *c = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 3, msg), msg);
    void *self = &self;
    TU_OKM(ember_map(&m, r, NULL, arg_is, &self, 0, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(n, 100);
    /* The same arg copied is at another address: the check fails. */
    TU_OKM(ember_map(&c, r, NULL, arg_is, &self, sizeof self, msg), msg);
    assert_int_equal(ember_count(c, &n, msg), EMBER_EUSER);
    ember_ds_free(&c);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

static void test_ds_arg_size_needs_arg(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 1, msg), msg);
    assert_int_equal(ember_map(&m, r, NULL, add_d, NULL, 8, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "arg_size");
    assert_null(m);
    assert_int_equal(ember_filter(&m, r, keep_multiple_of_d, NULL, 8, msg),
                     EMBER_EINVAL);
    assert_null(m);
    add_arg a = {1, 0};
    assert_int_equal(ember_map(&m, r, NULL, add_d, &a, SIZE_MAX, msg),
                     EMBER_ERANGE);
    assert_null(m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* MEMORY_ONLY under a budget that holds 2 of 16 partitions: the second
 * action recomputes the evicted ones, after the arg changed. */
static void test_ds_arg_copied_through_eviction(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.memory_budget = 1 << 20;
    o.threads = 2;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    int64_t n = 1000000; /* 16 partitions of 500 KB */
    TU_OKM(ember_range(&r, ctx, 0, n, 1, 16, msg), msg);
    add_arg a = {7, 0};
    TU_OKM(ember_map(&m, r, NULL, add_d, &a, sizeof a, msg), msg);
    TU_OKM(ember_persist(m, EMBER_MEMORY_ONLY, msg), msg);
    int64_t want = n * (n - 1) / 2 + 7 * n;
    assert_int_equal(sum_i64(m), want);
    ember_stats st0, st1;
    ember_ctx_stats(ctx, &st0);
    assert_true(st0.evictions > 0 || ember_cached_partitions(m) < 16);
    a.d = 1000; /* the natural C loop updates its arg in place */
    assert_int_equal(sum_i64(m), want);
    ember_ctx_stats(ctx, &st1);
    assert_true(st1.recomputes > st0.recomputes); /* it did recompute */
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* The arg names a broadcast; the caller frees its handle and never calls
 * ember_ds_uses: the dataset keeps the broadcast alive by itself. */
static void test_ds_bcast_freed_without_uses(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_ds *t0 = NULL, *tab = NULL, *r = NULL, *m = NULL;
    /* A computed table: the broadcast owns its collected array. */
    TU_OKM(ember_range(&t0, ctx, 100, 0, -3, 2, msg), msg); /* 34 values */
    TU_OKM(ember_map(&tab, t0, NULL, add_d, &(add_arg){0, 0}, sizeof(add_arg),
                     msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, tab, msg), msg);
    ember_ds_free(&tab);
    ember_ds_free(&t0);
    TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 8, msg), msg);
    lookup_arg la = {bc};
    TU_OKM(ember_map(&m, r, NULL, lookup, &la, sizeof la, msg), msg);
    assert_int_equal(m->nuses, 1); /* taken from the copy */
    ember_bcast_free(&bc);
    memset(&la, 0, sizeof la);
    char *lin = NULL;
    TU_OK(ember_lineage_string(m, &lin));
    TU_MSG_HAS(lin, "uses broadcast");
    ember_free(ctx, lin);
    size_t n;
    int64_t *got = tu_collect(m, &n);
    assert_int_equal(n, 10000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], 100 - 3 * (int64_t)(i % 34));
    free(got);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* The arg holds the broadcast's records (ember_bcast_data), not its handle:
 * that names it too. Saying ember_ds_uses as well is still one use. */
typedef struct {
    const int64_t *table;
    size_t n;
} table_arg;

static int lookup_table(const void *in, void *out, size_t n, void *arg)
{
    const table_arg *ta = arg;
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = ta->table[(size_t)a[i] % ta->n];
    return 0;
}

static void test_ds_bcast_named_by_its_records(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *t0 = NULL, *tab = NULL, *r = NULL, *m = NULL, *plain = NULL;
    TU_OKM(ember_range(&t0, ctx, 0, 50, 1, 2, msg), msg);
    add_arg a = {1, 0};
    TU_OKM(ember_map(&tab, t0, NULL, add_d, &a, sizeof a, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, tab, msg), msg);
    ember_ds_free(&tab);
    ember_ds_free(&t0);
    TU_OKM(ember_range(&r, ctx, 0, 500, 1, 3, msg), msg);
    table_arg ta = {NULL, 0};
    ta.table = ember_bcast_data(bc, &ta.n);
    ta.table += 10; /* an address inside the records names it too */
    ta.n -= 10;
    TU_OKM(ember_map(&m, r, NULL, lookup_table, &ta, sizeof ta, msg), msg);
    assert_int_equal(m->nuses, 1);
    TU_OK(ember_ds_uses(m, bc));
    assert_int_equal(m->nuses, 1);
    /* Words that name no broadcast take nothing. */
    TU_OKM(ember_map(&plain, r, NULL, add_d, &(add_arg){2, 0},
                     sizeof(add_arg), msg), msg);
    assert_int_equal(plain->nuses, 0);
    ember_bcast_free(&bc);
    size_t n;
    int64_t *got = tu_collect(m, &n);
    assert_int_equal(n, 500);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(got[i], 11 + (int64_t)(i % 40));
    free(got);
    ember_ds_free(&plain);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* Out of memory while taking the broadcasts a copy names: a clean error,
 * nothing made, nothing leaked, for every allocation that can fail. */
static void test_ds_arg_copy_out_of_memory(void **state)
{
    (void)state;
    int succeeded = 0;
    for (long nth = 1; !succeeded && nth < 200; nth++) {
        tu_counter tc;
        tu_counter_reset(&tc, 0);
        ember_allocator al = tu_allocator(&tc);
        ember_ctx_opts o;
        memset(&o, 0, sizeof o);
        o.threads = 1;
        o.allocator = &al;
        ember_ctx *ctx = tu_ctx_opts(&o);
        char msg[EMBER_MSG_SIZE];
        ember_ds *t = NULL, *r = NULL, *m = NULL;
        ember_bcast *bc = NULL;
        TU_OKM(ember_range(&t, ctx, 0, 20, 1, 1, msg), msg);
        TU_OKM(ember_broadcast(&bc, t, msg), msg);
        TU_OKM(ember_range(&r, ctx, 0, 100, 1, 2, msg), msg);
        lookup_arg la = {bc};
        atomic_store(&tc.fail_at, atomic_load(&tc.calls) + nth);
        int rc = ember_map(&m, r, NULL, lookup, &la, sizeof la, msg);
        atomic_store(&tc.fail_at, 0);
        ember_bcast_free(&bc);
        if (rc == EMBER_OK) {
            succeeded = 1;
            assert_int_equal(m->nuses, 1);
            size_t n;
            int64_t *got = tu_collect(m, &n);
            assert_int_equal(n, 100);
            assert_int_equal(got[99], 99 % 20);
            free(got);
        } else {
            assert_int_equal(rc, EMBER_ENOMEM);
            assert_null(m);
            assert_true(msg[0] != '\0');
        }
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ds_free(&t);
        ember_ctx_destroy(&ctx);
        assert_int_equal(atomic_load(&tc.live), 0);
    }
    assert_true(succeeded);
}

/* 2^61 + 1 int64 records are 2^64 + 8 bytes: no such array exists. */
static void test_ds_from_array_rejects_overflowing_n(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_scalar(EMBER_I64);
    int64_t v[4] = {1, 2, 3, 4};
    size_t bad[] = {((size_t)1 << 61) + 1, SIZE_MAX, SIZE_MAX / 8 + 1,
                    (size_t)PTRDIFF_MAX / 8 + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int own = 0; own < 2; own++) {
            ember_ds *ds = NULL;
            int rc = ember_from_array(&ds, ctx, &t, v, bad[i], 0,
                                      own ? EMBER_BORROW : EMBER_COPY, msg);
            assert_int_equal(rc, EMBER_ERANGE);
            assert_null(ds);
            TU_MSG_HAS(msg, "n too large");
        }
    }
    /* The largest n that could be an array is accepted (borrowed, never
     * read here). */
    ember_ds *ok = NULL;
    TU_OKM(ember_from_array(&ok, ctx, &t, v, (size_t)PTRDIFF_MAX / 8, 1,
                            EMBER_BORROW, msg), msg);
    ember_ds_free(&ok);
    ember_ctx_destroy(&ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ds_range_matches_reference),
        cmocka_unit_test(test_ds_default_partitions_ignore_threads),
        cmocka_unit_test(test_ds_range_rejects_bad_args),
        cmocka_unit_test(test_ds_rejects_absurd_partition_counts),
        cmocka_unit_test(test_ds_from_array_copy),
        cmocka_unit_test(test_ds_from_array_borrow),
        cmocka_unit_test(test_ds_from_array_rejects_bad_args),
        cmocka_unit_test(test_ds_malformed_types_refused),
        cmocka_unit_test(test_ds_empty_sources),
        cmocka_unit_test(test_ds_map_matches_reference),
        cmocka_unit_test(test_ds_filter_matches_reference),
        cmocka_unit_test(test_ds_flat_map_matches_reference),
        cmocka_unit_test(test_ds_map_called_per_block),
        cmocka_unit_test(test_ds_map_partitions_sees_whole_partition),
        cmocka_unit_test(test_ds_zip_matches_reference),
        cmocka_unit_test(test_ds_zip_struct_names),
        cmocka_unit_test(test_ds_zip_partition_count_mismatch),
        cmocka_unit_test(test_ds_zip_length_mismatch_at_action),
        cmocka_unit_test(test_ds_union_matches_reference),
        cmocka_unit_test(test_ds_union_rejects_other_types),
        cmocka_unit_test(test_ds_sample_deterministic),
        cmocka_unit_test(test_ds_sample_rejects_bad_fraction),
        cmocka_unit_test(test_ds_user_error_names_partition),
        cmocka_unit_test(test_ds_names_and_accessors),
        cmocka_unit_test(test_ds_free_parent_first),
        cmocka_unit_test(test_ds_null_arguments),
        cmocka_unit_test(test_ds_persist_levels),
        cmocka_unit_test(test_ds_cache_skips_recompute),
        cmocka_unit_test(test_ds_unpersist_frees_memory),
        cmocka_unit_test(test_ds_broadcast_array_is_view),
        cmocka_unit_test(test_ds_broadcast_computed_once),
        cmocka_unit_test(test_ds_broadcast_read_by_tasks),
        cmocka_unit_test(test_ds_arg_copied_at_creation),
        cmocka_unit_test(test_ds_arg_borrowed_when_size_zero),
        cmocka_unit_test(test_ds_arg_size_needs_arg),
        cmocka_unit_test(test_ds_arg_copied_through_eviction),
        cmocka_unit_test(test_ds_bcast_freed_without_uses),
        cmocka_unit_test(test_ds_bcast_named_by_its_records),
        cmocka_unit_test(test_ds_arg_copy_out_of_memory),
        cmocka_unit_test(test_ds_from_array_rejects_overflowing_n),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
