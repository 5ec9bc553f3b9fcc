/* test_mpi_engine.c: the engine on several MPI ranks (ctest label mpi).
 *
 * CMake runs every case under mpirun with 1, 2 and 3 ranks
 * (mpi.mpi_engine.<case>.n<ranks>). Each case runs a job twice in every
 * rank: on a context given MPI_COMM_WORLD (two threads per rank) and on a
 * serial context of its own (no communicator, one thread), and asserts
 * that status, message and result bytes are identical: a job's answer on
 * R ranks is the bits of a one-process run. Where the answer can be worked
 * out independently (counts, sums and folds in partition order, sortedness)
 * the case checks that too. A failed assertion on any rank fails mpirun.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"
#include "ember/mpi.h"

/* ---- results: bytes a job appends, compared between contexts ------------ */

typedef struct {
    unsigned char *data;
    size_t n, cap;
} out_buf;

static void put(out_buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->data = realloc(o->data, o->cap);
        assert_non_null(o->data);
    }
    if (n)
        memcpy(o->data + o->n, p, n);
    o->n += n;
}

/* Collects ds and appends its count and records. */
static int put_collect(out_buf *o, ember_ds *ds, char *msg)
{
    void *data = NULL;
    size_t n = 0;
    int rc = ember_collect_alloc(ds, &data, &n, msg);
    if (!rc) {
        uint64_t n64 = n;
        put(o, &n64, sizeof n64);
        put(o, data, n * ember_ds_type(ds)->size);
    }
    ember_free(ember_ds_ctx(ds), data);
    return rc;
}

typedef int (*job_fn)(ember_ctx *ctx, out_buf *o, char *msg);

static ember_ctx *make_ctx(int with_comm, int threads)
{
    ember_ctx_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.threads = threads;
    opts.block_bytes = 1024; /* many blocks per partition */
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, &opts, msg), EMBER_OK);
    if (with_comm)
        assert_int_equal(ember_ctx_set_comm(ctx, MPI_COMM_WORLD, msg), EMBER_OK);
    return ctx;
}

/* Runs job on the world and on a serial context; both must agree to the
 * bit. Returns the world's status; *res gets its bytes (caller frees). */
static int both(job_fn job, out_buf *res, char *msg_out)
{
    ember_ctx *par = make_ctx(1, 2), *ser = make_ctx(0, 1);
    out_buf a = {0}, b = {0};
    char ma[EMBER_MSG_SIZE] = "", mb[EMBER_MSG_SIZE] = "";
    int ra = job(par, &a, ma);
    int rb = job(ser, &b, mb);
    assert_int_equal(ra, rb);
    assert_string_equal(ma, mb);
    assert_int_equal(a.n, b.n);
    if (a.n)
        assert_memory_equal(a.data, b.data, a.n);
    ember_ctx_destroy(&par);
    ember_ctx_destroy(&ser);
    free(b.data);
    if (res)
        *res = a;
    else
        free(a.data);
    if (msg_out)
        memcpy(msg_out, ma, EMBER_MSG_SIZE);
    return ra;
}

/* ---- inputs ----------------------------------------------------------------- */

typedef struct {
    int64_t key;
    double value;
} pair;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* Values of mixed magnitude: their sum depends on the order of addition. */
static double value_of(uint64_t i)
{
    double big = (i % 7 == 0) ? 1e16 : 1.0;
    return ((i % 2) ? big : -big) + (double)(mix(i) % 1000) * 1e-3;
}

static int make_pairs(ember_ds **out, ember_ctx *ctx, size_t n, int keys,
                      uint64_t seed, size_t parts, char *msg)
{
    pair *p = malloc((n + 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i].key = (int64_t)(mix(i ^ seed) % (uint64_t)keys);
        p[i].value = value_of(i + seed);
    }
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    int rc = ember_from_array(out, ctx, &t, p, n, parts, EMBER_COPY, msg);
    free(p);
    return rc;
}

static int to_value(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    double *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = value_of((uint64_t)x[i]);
    return 0;
}

static int range_values(ember_ds **out, ember_ctx *ctx, int64_t n,
                        size_t parts, char *msg)
{
    ember_ds *r = NULL;
    ember_type t = ember_type_scalar(EMBER_F64);
    int rc = ember_range(&r, ctx, 0, n, 1, parts, msg);
    if (!rc)
        rc = ember_map(out, r, &t, to_value, NULL, 0, msg);
    ember_ds_free(&r);
    return rc;
}

/* Partition p of n records in P: [n*p/P, n*(p+1)/P) (the engine's split). */
static size_t part_lo(size_t n, size_t P, size_t p)
{
    return (size_t)(((unsigned __int128)n * p) / P);
}

/* ---- count, sum ---------------------------------------------------------------- */

#define NV 100003
#define PV 7

static int job_count_sum(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *v = NULL;
    uint64_t c = 0;
    double s = 0;
    int rc = range_values(&v, ctx, NV, PV, msg);
    if (!rc)
        rc = ember_count(v, &c, msg);
    if (!rc)
        rc = ember_sum(v, &s, msg);
    put(o, &c, sizeof c);
    put(o, &s, sizeof s);
    ember_ds_free(&v);
    return rc;
}

static void test_mpi_engine_count_sum(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_count_sum, &r, NULL), EMBER_OK);
    uint64_t c;
    double s, want = 0;
    memcpy(&c, r.data, 8);
    memcpy(&s, r.data + 8, 8);
    assert_int_equal(c, NV);
    /* Independently: each partition summed in record order, then the
     * partition sums in partition order. */
    for (size_t p = 0; p < PV; p++) {
        double acc = 0;
        for (size_t i = part_lo(NV, PV, p); i < part_lo(NV, PV, p + 1); i++)
            acc += value_of(i);
        want += acc;
    }
    assert_memory_equal(&s, &want, sizeof s);
    free(r.data);
}

/* ---- reduce and aggregate order -------------------------------------------------- */

/* Neither associative nor commutative: the result names the order. */
static double step_fold(double acc, double x)
{
    return acc * 1.0000001 + x;
}

static int fold_fn(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    double a, x;
    memcpy(&a, acc, sizeof a);
    for (size_t i = 0; i < n; i++) {
        memcpy(&x, (const unsigned char *)in + i * sizeof x, sizeof x);
        a = step_fold(a, x);
    }
    memcpy(acc, &a, sizeof a);
    return 0;
}

typedef struct {
    double s;
    uint64_t h;
} agg;

static int agg_seq(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    agg *a = acc;
    const double *x = in;
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &x[i], sizeof b);
        a->s = step_fold(a->s, x[i]);
        a->h = a->h * 31 + b;
    }
    return 0;
}

static int agg_comb(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    agg *a = acc;
    const agg *b = in;
    for (size_t i = 0; i < n; i++) {
        a->s = step_fold(a->s, b[i].s);
        a->h = a->h * 1000003 ^ b[i].h;
    }
    return 0;
}

/* An exact accumulator (count, wrapping sum and xor of the values' bits)
 * for ember_aggregate_unordered: any grouping gives the same. */
static int bits_seq(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    uint64_t *a = acc;
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, (const unsigned char *)in + i * sizeof b, sizeof b);
        a[0]++;
        a[1] += b;
        a[2] ^= b;
    }
    return 0;
}

static int bits_comb(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    uint64_t *a = acc;
    const uint64_t *b = in;
    for (size_t i = 0; i < n; i++, b += 3) {
        a[0] += b[0];
        a[1] += b[1];
        a[2] ^= b[2];
    }
    return 0;
}

static int job_reduce(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *v = NULL;
    double r = 0;
    agg zero = {0, 7}, a = {0, 0};
    uint64_t bz[3] = {0, 0, 0}, bits[3] = {0, 0, 0};
    int rc = range_values(&v, ctx, NV, PV, msg);
    if (!rc)
        rc = ember_reduce(v, fold_fn, NULL, &r, msg);
    if (!rc)
        rc = ember_aggregate(v, &zero, sizeof zero, agg_seq, agg_comb, NULL,
                             &a, msg);
    if (!rc)
        rc = ember_aggregate_unordered(v, bz, sizeof bz, bits_seq, bits_comb, NULL,
                                       bits, msg);
    put(o, &r, sizeof r);
    put(o, &a, sizeof a);
    put(o, bits, sizeof bits);
    ember_ds_free(&v);
    return rc;
}

static void test_mpi_engine_reduce_order(void **state)
{
    (void)state;
    out_buf res = {0};
    assert_int_equal(both(job_reduce, &res, NULL), EMBER_OK);
    double want = 0;
    agg wa = {0, 7};
    for (size_t p = 0; p < PV; p++) {
        size_t lo = part_lo(NV, PV, p), hi = part_lo(NV, PV, p + 1);
        double acc = value_of(lo);
        agg pa = {0, 7};
        for (size_t i = lo + 1; i < hi; i++)
            acc = step_fold(acc, value_of(i));
        for (size_t i = lo; i < hi; i++) {
            double x = value_of(i);
            agg_seq(&pa, &x, 1, NULL);
        }
        want = p ? step_fold(want, acc) : acc;
        agg_comb(&wa, &pa, 1, NULL);
    }
    assert_memory_equal(res.data, &want, sizeof want);
    assert_memory_equal(res.data + sizeof want, &wa, sizeof wa);
    uint64_t wb[3] = {0, 0, 0};
    for (size_t i = 0; i < NV; i++) {
        double x = value_of(i);
        bits_seq(wb, &x, 1, NULL);
    }
    assert_memory_equal(res.data + sizeof want + sizeof wa, wb, sizeof wb);
    free(res.data);
}

/* ---- collect and take --------------------------------------------------------------- */

static int job_collect_take(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *v = NULL;
    int rc = range_values(&v, ctx, NV, PV, msg);
    if (!rc)
        rc = put_collect(o, v, msg);
    static const size_t want[] = {0, 1, 14286, 50000, NV, NV + 5};
    double *buf = malloc((NV + 5) * sizeof *buf);
    assert_non_null(buf);
    for (size_t k = 0; !rc && k < sizeof want / sizeof want[0]; k++) {
        size_t got = 0;
        rc = ember_take(v, want[k], buf, &got, msg);
        uint64_t g = got;
        put(o, &g, sizeof g);
        put(o, buf, got * sizeof *buf);
    }
    free(buf);
    ember_ds_free(&v);
    return rc;
}

static void test_mpi_engine_collect_take(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_collect_take, &r, NULL), EMBER_OK);
    uint64_t n;
    memcpy(&n, r.data, 8);
    assert_int_equal(n, NV);
    for (size_t i = 0; i < NV; i += 997) {
        double x, w = value_of(i);
        memcpy(&x, r.data + 8 + i * 8, 8);
        assert_memory_equal(&x, &w, 8);
    }
    free(r.data);
}

/* ---- shuffles ---------------------------------------------------------------------- */

static int job_shuffles(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *in = NULL, *d[5] = {NULL};
    int rc = make_pairs(&in, ctx, 20011, 97, 1, 6, msg);
    if (!rc)
        rc = ember_reduce_by_key(&d[0], in, NULL, NULL, 0, 5, msg);
    if (!rc)
        rc = ember_group_by_key(&d[1], in, 3, msg);
    if (!rc)
        rc = ember_distinct(&d[2], in, 4, msg);
    if (!rc)
        rc = ember_repartition(&d[3], in, 4, msg);
    if (!rc)
        rc = ember_partition_by(&d[4], in, EMBER_HASH, 6, msg);
    for (int i = 0; !rc && i < 5; i++)
        rc = put_collect(o, d[i], msg);
    for (int i = 0; i < 5; i++)
        ember_ds_free(&d[i]);
    ember_ds_free(&in);
    return rc;
}

static void test_mpi_engine_shuffle(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_shuffles, &r, NULL), EMBER_OK);
    /* reduce_by_key: 97 keys at most, sorted within partitions; the
     * repartition keeps every record. */
    uint64_t n;
    memcpy(&n, r.data, 8);
    assert_true(n > 0 && n <= 97);
    free(r.data);
}

/* Also a join of inputs partitioned as it partitions (a group_by_key and
 * a reduce_by_key output, 4 each): passed through on each rank. */
static int job_join(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *a = NULL, *b = NULL, *j = NULL, *ra = NULL, *gb = NULL, *j2 = NULL;
    int rc = make_pairs(&a, ctx, 3001, 50, 2, 5, msg);
    if (!rc)
        rc = make_pairs(&b, ctx, 701, 70, 3, 3, msg);
    if (!rc)
        rc = ember_join(&j, a, b, 4, msg);
    if (!rc)
        rc = put_collect(o, j, msg);
    if (!rc)
        rc = ember_reduce_by_key(&ra, a, NULL, NULL, 0, 4, msg);
    if (!rc)
        rc = ember_group_by_key(&gb, b, 4, msg);
    if (!rc)
        rc = ember_join(&j2, gb, ra, 0, msg);
    if (!rc)
        rc = put_collect(o, j2, msg);
    ember_ds_free(&j2);
    ember_ds_free(&gb);
    ember_ds_free(&ra);
    ember_ds_free(&j);
    ember_ds_free(&a);
    ember_ds_free(&b);
    return rc;
}

static void test_mpi_engine_join(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_join, &r, NULL), EMBER_OK);
    uint64_t n;
    memcpy(&n, r.data, 8);
    assert_true(n > 3001); /* 50 keys x 3001 x 701 / 70: many matches */
    free(r.data);
}

static int job_sort(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *in = NULL, *d[3] = {NULL};
    int rc = make_pairs(&in, ctx, 30011, 100000, 4, 7, msg);
    if (!rc)
        rc = ember_sort_by_key(&d[0], in, 0, 5, msg);
    if (!rc)
        rc = ember_sort_by_key(&d[1], in, 1, 3, msg);
    if (!rc)
        rc = ember_partition_by(&d[2], in, EMBER_RANGE, 4, msg);
    for (int i = 0; !rc && i < 3; i++)
        rc = put_collect(o, d[i], msg);
    for (int i = 0; i < 3; i++)
        ember_ds_free(&d[i]);
    ember_ds_free(&in);
    return rc;
}

static void test_mpi_engine_sort(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_sort, &r, NULL), EMBER_OK);
    uint64_t n;
    memcpy(&n, r.data, 8);
    assert_int_equal(n, 30011);
    const pair *p = (const pair *)(r.data + 8);
    for (size_t i = 1; i < n; i++)
        assert_true(p[i - 1].key <= p[i].key);
    const unsigned char *second = r.data + 8 + n * sizeof(pair);
    memcpy(&n, second, 8);
    assert_int_equal(n, 30011);
    p = (const pair *)(second + 8);
    for (size_t i = 1; i < n; i++)
        assert_true(p[i - 1].key >= p[i].key);
    free(r.data);
}

/* ---- broadcast ----------------------------------------------------------------------- */

typedef struct {
    ember_bcast *bc;
} bc_arg;

static int add_bcast(const void *in, void *out, size_t n, void *arg)
{
    const bc_arg *a = arg;
    size_t nb = 0;
    const pair *b = ember_bcast_data(a->bc, &nb);
    const pair *x = in;
    pair *y = out;
    for (size_t i = 0; i < n; i++) {
        y[i] = x[i];
        y[i].value += b[(uint64_t)x[i].key % nb].value;
    }
    return 0;
}

static int job_broadcast(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *small = NULL, *red = NULL, *in = NULL, *m = NULL;
    ember_bcast *bc = NULL;
    int rc = make_pairs(&small, ctx, 5003, 41, 5, 4, msg);
    /* Broadcast a shuffle's output, not an array (a view): a gather. */
    if (!rc)
        rc = ember_reduce_by_key(&red, small, NULL, NULL, 0, 3, msg);
    if (!rc)
        rc = ember_broadcast(&bc, red, msg);
    if (!rc) {
        size_t nb = 0;
        const void *d = ember_bcast_data(bc, &nb);
        uint64_t n = nb;
        put(o, &n, sizeof n);
        put(o, d, nb * sizeof(pair));
        rc = make_pairs(&in, ctx, 9001, 1000, 6, 5, msg);
    }
    bc_arg a = {bc};
    if (!rc)
        rc = ember_map(&m, in, NULL, add_bcast, &a, sizeof a, msg);
    ember_bcast_free(&bc);
    if (!rc)
        rc = put_collect(o, m, msg);
    ember_ds_free(&m);
    ember_ds_free(&in);
    ember_ds_free(&red);
    ember_ds_free(&small);
    return rc;
}

static void test_mpi_engine_broadcast(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_broadcast, &r, NULL), EMBER_OK);
    uint64_t n;
    memcpy(&n, r.data, 8);
    assert_true(n > 0 && n <= 41);
    free(r.data);
}

/* ---- unions over shuffles (partitions stay where their parents are) ---------------- */

static int twice(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const pair *x = in;
    pair *y = out;
    for (size_t i = 0; i < n; i++) {
        y[i].key = x[i].key + 1;
        y[i].value = x[i].value * 2;
    }
    return 0;
}

static int job_union(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *in = NULL, *s = NULL, *m = NULL, *u = NULL, *r = NULL, *u2 = NULL;
    int rc = make_pairs(&in, ctx, 8009, 300, 7, 5, msg);
    if (!rc)
        rc = ember_reduce_by_key(&s, in, NULL, NULL, 0, 4, msg);
    if (!rc)
        rc = ember_map(&m, s, NULL, twice, NULL, 0, msg);
    if (!rc)
        rc = ember_union(&u, s, m, msg);
    if (!rc)
        rc = ember_union(&u2, u, in, msg);
    if (!rc)
        rc = ember_reduce_by_key(&r, u2, NULL, NULL, 0, 3, msg);
    uint64_t c = 0;
    if (!rc)
        rc = ember_count(u2, &c, msg);
    put(o, &c, sizeof c);
    if (!rc)
        rc = put_collect(o, u2, msg);
    if (!rc)
        rc = put_collect(o, r, msg);
    ember_ds_free(&r);
    ember_ds_free(&u2);
    ember_ds_free(&u);
    ember_ds_free(&m);
    ember_ds_free(&s);
    ember_ds_free(&in);
    return rc;
}

static void test_mpi_engine_union_of_shuffles(void **state)
{
    (void)state;
    assert_int_equal(both(job_union, NULL, NULL), EMBER_OK);
}

/* A cached union cut by a local checkpoint (what a loop does to a state
 * that is a union): its blocks stay on the ranks its parents placed them
 * on. The cut made it look like a source, owned in blocks of its own
 * partitions, and every action after it failed on 2+ ranks with "local
 * checkpoint lost partition" (mpi2 campaign). Both orders of the parents. */
static int job_union_cut(ember_ctx *ctx, out_buf *o, char *msg)
{
    int rc = EMBER_OK;
    for (int order = 0; order < 2 && !rc; order++) {
        ember_ds *in = NULL, *s = NULL, *base = NULL, *u = NULL, *r = NULL;
        rc = make_pairs(&in, ctx, 3001, 200, 4, 9, msg);
        if (!rc)
            rc = ember_reduce_by_key(&s, in, NULL, NULL, 0, 7, msg);
        if (!rc)
            rc = make_pairs(&base, ctx, 1201, 50, 3, 11, msg);
        if (!rc)
            rc = order ? ember_union(&u, base, s, msg) : ember_union(&u, s, base, msg);
        if (!rc)
            rc = ember_cache(u, msg);
        pair sum;
        if (!rc)
            rc = ember_sum(u, &sum, msg);
        if (!rc)
            rc = ember_local_checkpoint(u, msg);
        uint64_t c = 0;
        if (!rc)
            rc = ember_count(u, &c, msg);
        put(o, &c, sizeof c);
        if (!rc)
            rc = ember_reduce_by_key(&r, u, NULL, NULL, 0, 5, msg);
        if (!rc)
            rc = put_collect(o, r, msg);
        if (!rc)
            rc = put_collect(o, u, msg);
        ember_ds_free(&r);
        ember_ds_free(&u);
        ember_ds_free(&base);
        ember_ds_free(&s);
        ember_ds_free(&in);
    }
    return rc;
}

static void test_mpi_engine_union_cut(void **state)
{
    (void)state;
    assert_int_equal(both(job_union_cut, NULL, NULL), EMBER_OK);
}

/* ---- more ranks than partitions: some ranks own nothing ---------------------------- */

static int job_few(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *in = NULL, *r = NULL, *s = NULL;
    uint64_t c = 0;
    pair sum, take[3];
    size_t got = 0;
    int rc = make_pairs(&in, ctx, 1001, 13, 8, 2, msg);
    if (!rc)
        rc = ember_count(in, &c, msg);
    if (!rc)
        rc = ember_sum(in, &sum, msg);
    if (!rc)
        rc = ember_take(in, 3, take, &got, msg);
    if (!rc)
        rc = ember_reduce_by_key(&r, in, NULL, NULL, 0, 1, msg);
    if (!rc)
        rc = ember_sort_by_key(&s, in, 0, 2, msg);
    put(o, &c, sizeof c);
    put(o, &sum, sizeof sum);
    put(o, take, got * sizeof *take);
    if (!rc)
        rc = put_collect(o, in, msg);
    if (!rc)
        rc = put_collect(o, r, msg);
    if (!rc)
        rc = put_collect(o, s, msg);
    ember_ds_free(&s);
    ember_ds_free(&r);
    ember_ds_free(&in);
    return rc;
}

static void test_mpi_engine_more_ranks_than_partitions(void **state)
{
    (void)state;
    out_buf r = {0};
    assert_int_equal(both(job_few, &r, NULL), EMBER_OK);
    uint64_t c;
    memcpy(&c, r.data, 8);
    assert_int_equal(c, 1001);
    free(r.data);
}

/* ---- errors are agreed: the lowest failing partition's, on every rank -------------- */

static int fail_some(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)arg;
    size_t p = ember_emitter_partition(em);
    if (p == 3 || p == 5)
        return -1;
    return ember_emit(em, in, n);
}

static int job_error(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *in = NULL, *f = NULL, *r = NULL;
    int rc = make_pairs(&in, ctx, 4000, 10, 9, 6, msg);
    if (!rc)
        rc = ember_flat_map(&f, in, NULL, fail_some, NULL, 0, msg);
    uint64_t c = 0;
    int a = rc ? rc : ember_count(f, &c, msg);
    put(o, &a, sizeof a);
    /* The same failure inside a shuffle's map side. */
    if (!rc)
        rc = ember_reduce_by_key(&r, f, NULL, NULL, 0, 2, msg);
    if (!rc)
        rc = ember_count(r, &c, msg);
    ember_ds_free(&r);
    ember_ds_free(&f);
    ember_ds_free(&in);
    return rc;
}

static void test_mpi_engine_error_agreed(void **state)
{
    (void)state;
    out_buf r = {0};
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(both(job_error, &r, msg), EMBER_EUSER);
    int first;
    memcpy(&first, r.data, sizeof first);
    assert_int_equal(first, EMBER_EUSER);
    assert_non_null(strstr(msg, "partition 3"));
    free(r.data);
}

/* ---- saving to HDF5: one rank writes, every rank computes ---------------------------- */

/* A save on R ranks writes the file once, from rank 0, with the records a
 * serial save writes; into a file that is there too (every rank once wrote
 * the file itself, and then, with the file's change lock, the rank holding
 * it waited in a collective for the others, which waited on the lock); a
 * user function's failure and rank 0's own refusal are every rank's. */
static void test_mpi_engine_save(void **state)
{
    (void)state;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *file = "mpi_engine_save.h5";
    if (rank == 0)
        remove(file);
    MPI_Barrier(MPI_COMM_WORLD);
    ember_ctx *ctx = make_ctx(1, 2), *ser = make_ctx(0, 1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *v = NULL, *bad = NULL, *back = NULL, *in = NULL;
    assert_int_equal(range_values(&v, ctx, NV, PV, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(v, "mpi_engine_save.h5:/a", NULL, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(v, "mpi_engine_save.h5:/b", NULL, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(v, "mpi_engine_save.h5:/a", NULL, msg), EMBER_EINVAL);
    assert_non_null(strstr(msg, "already exists"));
    assert_int_equal(make_pairs(&in, ctx, 4000, 10, 9, 6, msg), EMBER_OK);
    assert_int_equal(ember_flat_map(&bad, in, NULL, fail_some, NULL, 0, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(bad, "mpi_engine_save.h5:/c", NULL, msg), EMBER_EUSER);
    assert_non_null(strstr(msg, "partition 3"));
    /* every rank reads what rank 0 wrote, on a serial context of its own */
    out_buf want = {0}, got = {0};
    assert_int_equal(put_collect(&want, v, msg), EMBER_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ember_read_h5(&back, ser, i ? "mpi_engine_save.h5:/b"
                                                     : "mpi_engine_save.h5:/a", 0, msg),
                         EMBER_OK);
        got.n = 0;
        assert_int_equal(put_collect(&got, back, msg), EMBER_OK);
        assert_int_equal(got.n, want.n);
        assert_memory_equal(got.data, want.data, want.n);
        ember_ds_free(&back);
    }
    assert_int_equal(ember_read_h5(&back, ser, "mpi_engine_save.h5:/c", 0, msg),
                     EMBER_ENOTFOUND);
    free(want.data);
    free(got.data);
    ember_ds_free(&bad);
    ember_ds_free(&in);
    ember_ds_free(&v);
    ember_ctx_destroy(&ser);
    ember_ctx_destroy(&ctx);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        remove(file);
}

/* ---- persisted datasets: the block store is per rank -------------------------------- */

static int job_persist(ember_ctx *ctx, out_buf *o, char *msg)
{
    ember_ds *v = NULL;
    uint64_t c = 0;
    double s = 0, r = 0;
    int rc = range_values(&v, ctx, NV, PV, msg);
    if (!rc)
        rc = ember_cache(v, msg);
    if (!rc)
        rc = ember_count(v, &c, msg);
    if (!rc)
        rc = ember_sum(v, &s, msg);
    if (!rc)
        rc = ember_reduce(v, fold_fn, NULL, &r, msg);
    put(o, &c, sizeof c);
    put(o, &s, sizeof s);
    put(o, &r, sizeof r);
    if (!rc)
        rc = put_collect(o, v, msg);
    ember_ds_free(&v);
    return rc;
}

static void test_mpi_engine_persist(void **state)
{
    (void)state;
    assert_int_equal(both(job_persist, NULL, NULL), EMBER_OK);
}

/* ---- a zip of differently distributed inputs is refused, never wrong ---------------- */

static void test_mpi_engine_zip_mismatch_refused(void **state)
{
    (void)state;
    ember_ctx *ctx = make_ctx(1, 1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *in = NULL, *s1 = NULL, *s2 = NULL, *u = NULL, *b = NULL, *z = NULL;
    ember_ds *in2 = NULL;
    assert_int_equal(make_pairs(&in, ctx, 400, 1000000, 10, 4, msg), EMBER_OK);
    /* u's four partitions stay where s1's and s2's two each are; b's four
     * follow the block map of four: on 2 or 3 ranks they differ. */
    assert_int_equal(ember_repartition(&s1, in, 2, msg), EMBER_OK);
    assert_int_equal(ember_repartition(&s2, in, 2, msg), EMBER_OK);
    assert_int_equal(ember_union(&u, s1, s2, msg), EMBER_OK);
    /* 200 records in each of b's partitions too, as zip wants. */
    assert_int_equal(ember_union(&in2, in, in, msg), EMBER_OK);
    assert_int_equal(ember_repartition(&b, in2, 4, msg), EMBER_OK);
    assert_int_equal(ember_zip(&z, u, b, msg), EMBER_OK);
    uint64_t c = 0;
    int rc = ember_count(z, &c, msg);
    if (ember_ctx_ranks(ctx) == 1) {
        assert_int_equal(rc, EMBER_OK);
        assert_int_equal(c, 800);
    } else {
        assert_int_equal(rc, EMBER_ESTATE);
        assert_non_null(strstr(msg, "distributed alike"));
    }
    ember_ds_free(&z);
    ember_ds_free(&b);
    ember_ds_free(&u);
    ember_ds_free(&s2);
    ember_ds_free(&s1);
    ember_ds_free(&in2);
    ember_ds_free(&in);
    ember_ctx_destroy(&ctx);
}

/* ---- replicated arrays: a shared window per node, or private memory -------------------- */

/* Rounds of "each rank writes its own ranges, then all-gathers", as
 * PageRank's contribution vector does, over partitions of uneven sizes
 * (P = 7) and over fewer partitions than ranks (P = 2: a rank may own
 * nothing). Every element must hold its round's value on every rank.
 * Returns 1 when the array was visibly shared: another rank's write was
 * seen after a bare barrier, without the all-gather. */
static int replicated_rounds(ember_ctx *ctx)
{
    enum { N = 1000 };
    char msg[EMBER_MSG_SIZE];
    int R = ember_ctx_ranks(ctx), me = ember_ctx_rank(ctx), seen = 0;
    double *a = NULL;
    assert_int_equal(ember_replicated_alloc((void **)&a, ctx, N * sizeof *a, msg), EMBER_OK);
    assert_non_null(a);
    const uint64_t off7[] = {0, 1, 90, 91, 400, 401, 999, N}, off2[] = {0, 600, N};
    for (int round = 0; round < 6; round++) {
        const uint64_t *off = round % 2 ? off2 : off7;
        size_t P = round % 2 ? 2 : 7;
        size_t lo = P * (size_t)me / (size_t)R, hi = P * (size_t)(me + 1) / (size_t)R;
        for (uint64_t i = off[lo]; i < off[hi]; i++)
            a[i] = round * 1e6 + (double)i;
        /* A write is visible before the all-gather only if the memory is
         * shared: rank 0 looks at the last rank's first element. */
        MPI_Barrier(MPI_COMM_WORLD);
        size_t llo = P * (size_t)(R - 1) / (size_t)R;
        if (me == 0 && R > 1 && llo < P && a[off[llo]] == round * 1e6 + (double)off[llo])
            seen++;
        assert_int_equal(ember_allgather_ranges(ctx, a, sizeof *a, off, P, msg), EMBER_OK);
        for (uint64_t i = 0; i < N; i++)
            assert_true(a[i] == round * 1e6 + (double)i);
        /* The collective between the reads above and the next writes. */
        double slot[7] = {0};
        for (size_t p = lo; p < hi; p++)
            slot[p] = (double)p;
        assert_int_equal(ember_allgather_items(ctx, slot, sizeof *slot, P, msg), EMBER_OK);
        for (size_t p = 0; p < P; p++)
            assert_true(slot[p] == (double)p);
    }
    ember_replicated_free(ctx, a);
    return seen == 6;
}

static void test_mpi_engine_replicated_gather(void **state)
{
    (void)state;
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    ember_ctx *ctx = make_ctx(1, 1);
    /* mpirun runs every rank of the tests on this one machine: shared. */
    int shared = replicated_rounds(ctx);
    int rank = ember_ctx_rank(ctx);
    if (size > 1 && rank == 0)
        assert_true(shared);
    /* EMBER_MPI_SHARED=0: private memory, the bytes really move. */
    setenv("EMBER_MPI_SHARED", "0", 1);
    shared = replicated_rounds(ctx);
    unsetenv("EMBER_MPI_SHARED");
    if (rank == 0)
        assert_false(shared);
    /* Freed by the context if the program does not. */
    char msg[EMBER_MSG_SIZE];
    void *left = NULL;
    assert_int_equal(ember_replicated_alloc(&left, ctx, 64, msg), EMBER_OK);
    assert_non_null(left);
    ember_ctx_destroy(&ctx);
    /* Serial context: plain memory, the gather a no-op. */
    ember_ctx *ser = make_ctx(0, 1);
    double *b = NULL;
    assert_int_equal(ember_replicated_alloc((void **)&b, ser, 8 * sizeof *b, msg), EMBER_OK);
    assert_non_null(b);
    assert_int_equal(ember_replicated_alloc(NULL, ser, 8, msg), EMBER_EINVAL);
    assert_non_null(strstr(msg, "NULL argument"));
    const uint64_t off[] = {0, 8};
    b[3] = 2.5;
    assert_int_equal(ember_allgather_ranges(ser, b, sizeof *b, off, 1, msg), EMBER_OK);
    assert_true(b[3] == 2.5);
    ember_replicated_free(ser, b);
    ember_ctx_destroy(&ser);
}

/* ---- the hook ------------------------------------------------------------------------- */

static void test_mpi_engine_set_comm(void **state)
{
    (void)state;
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    ember_ctx *ctx = make_ctx(0, 1);
    assert_int_equal(ember_ctx_rank(ctx), 0);
    assert_int_equal(ember_ctx_ranks(ctx), 1);
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_set_comm(ctx, MPI_COMM_WORLD, msg), EMBER_OK);
    assert_int_equal(ember_ctx_rank(ctx), rank);
    assert_int_equal(ember_ctx_ranks(ctx), size);
    /* Too late once datasets exist. */
    ember_ds *r = NULL;
    assert_int_equal(ember_range(&r, ctx, 0, 10, 1, 2, msg), EMBER_OK);
    assert_int_equal(ember_ctx_set_comm(ctx, MPI_COMM_WORLD, msg), EMBER_ESTATE);
    assert_non_null(strstr(msg, "already has datasets"));
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpi_engine_count_sum),
        cmocka_unit_test(test_mpi_engine_reduce_order),
        cmocka_unit_test(test_mpi_engine_collect_take),
        cmocka_unit_test(test_mpi_engine_shuffle),
        cmocka_unit_test(test_mpi_engine_join),
        cmocka_unit_test(test_mpi_engine_sort),
        cmocka_unit_test(test_mpi_engine_broadcast),
        cmocka_unit_test(test_mpi_engine_union_of_shuffles),
        cmocka_unit_test(test_mpi_engine_union_cut),
        cmocka_unit_test(test_mpi_engine_more_ranks_than_partitions),
        cmocka_unit_test(test_mpi_engine_error_agreed),
        cmocka_unit_test(test_mpi_engine_save),
        cmocka_unit_test(test_mpi_engine_persist),
        cmocka_unit_test(test_mpi_engine_zip_mismatch_refused),
        cmocka_unit_test(test_mpi_engine_set_comm),
        cmocka_unit_test(test_mpi_engine_replicated_gather),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
