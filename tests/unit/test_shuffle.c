/* test_shuffle.c: the wide transformations: reduce_by_key (a user combine
 * and fn NULL = sum), group_by_key, join, partition_by (hash and range),
 * distinct, sort_by_key (ascending, descending, stable) and repartition.
 *
 * Each is checked against a naive serial reference on random keyed inputs
 * with duplicates, for input partition counts 1, 4 and 9, output counts 0
 * (keep), 1, 5 and more than records, and empty inputs; f64 results are
 * bit-identical at 1, 2 and 4 threads. Also: a finished shuffle is not run
 * again, float keys (-0.0 equal to 0.0, NaN last), and the errors (key
 * kinds, array keys, failing combine functions naming the partition).
 */
#include "internal.h"
#include "testutil.h"

#include <float.h>
#include <math.h>

#define N_IN 20000

static const int thread_counts[] = {1, 2, 4};

typedef struct {
    int64_t key;
    int64_t idx;
} kvi;

typedef struct {
    int64_t key;
    double v;
} kvd;

/* n records with keys in [-K/2, K/2) and idx = input position. */
static kvi *rand_kvi(size_t n, int64_t K, uint64_t seed)
{
    kvi *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].key = (int64_t)(tu_rand(&seed) % (uint64_t)K) - K / 2;
        v[i].idx = (int64_t)i;
    }
    return v;
}

static kvd *rand_kvd(size_t n, int64_t K, uint64_t seed)
{
    kvd *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i].key = (int64_t)(tu_rand(&seed) % (uint64_t)K) - K / 2;
        v[i].v = (tu_rand01(&seed) - 0.3) * pow(10.0, (double)(tu_rand(&seed) % 9));
    }
    return v;
}

static ember_ds *array_of(ember_ctx *ctx, const ember_type *t, const void *v,
                          size_t n, size_t P)
{
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_from_array(&ds, ctx, t, v, n, P, EMBER_COPY, msg), msg);
    return ds;
}

static const size_t in_parts[] = {1, 4, 9};
static size_t out_parts(size_t n, size_t *Q)
{
    Q[0] = 0; /* keep the input's count */
    Q[1] = 1;
    Q[2] = 5;
    Q[3] = n + 3;
    return 4;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* ---- reduce_by_key ---------------------------------------------------------- */

/* The reference of reduce_by_key: in each input partition, each key's
 * records folded in order; then each key's partition results folded in
 * partition order (the documented order: partition by partition, record by
 * record). Keys sorted. `fold(acc, in)` is one step. */
typedef void (*fold_step)(void *acc, const void *in);

static size_t reduce_ref(const void *v, size_t n, size_t size, size_t P,
                         fold_step fold, unsigned char *out)
{
    /* keys are i64 at offset 0: collect distinct keys sorted */
    const unsigned char *d = v;
    size_t m = 0;
    for (size_t p = 0, off = 0; p < P; p++) {
        size_t len = tu_part_len(n, P, p);
        unsigned char *part = malloc(len * size + 1);
        size_t pm = 0;
        for (size_t i = off; i < off + len; i++) {
            int64_t k;
            memcpy(&k, d + i * size, 8);
            size_t j = 0;
            for (; j < pm; j++) {
                int64_t pk;
                memcpy(&pk, part + j * size, 8);
                if (pk == k)
                    break;
            }
            if (j == pm)
                memcpy(part + (pm++) * size, d + i * size, size);
            else
                fold(part + j * size, d + i * size);
        }
        for (size_t j = 0; j < pm; j++) {
            int64_t k;
            memcpy(&k, part + j * size, 8);
            size_t g = 0;
            for (; g < m; g++) {
                int64_t gk;
                memcpy(&gk, out + g * size, 8);
                if (gk == k)
                    break;
            }
            if (g == m)
                memcpy(out + (m++) * size, part + j * size, size);
            else
                fold(out + g * size, part + j * size);
        }
        free(part);
        off += len;
    }
    return m;
}

typedef struct {
    int64_t key;
    double sum;
    int64_t cnt;
    double max;
} agg;

static void agg_fold(void *acc, const void *in)
{
    agg *a = acc;
    const agg *b = in;
    a->sum += b->sum;
    a->cnt += b->cnt;
    a->max = b->max > a->max ? b->max : a->max;
}

static int agg_combine(void *acc, const void *in, size_t n, void *arg)
{
    atomic_long *calls = arg;
    if (calls)
        atomic_fetch_add(calls, 1);
    for (size_t i = 0; i < n; i++)
        agg_fold(acc, (const agg *)in + i);
    return 0;
}

static void kvd_fold(void *acc, const void *in)
{
    ((kvd *)acc)->v += ((const kvd *)in)->v;
}

static ember_type agg_type(void)
{
    ember_field f[] = {{"key", EMBER_I64, 1, 0}, {"sum", EMBER_F64, 1, 0},
                       {"cnt", EMBER_I64, 1, 0}, {"max", EMBER_F64, 1, 0}};
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 4, msg), msg);
    return t;
}

/* Sorts reduce output by key (it is sorted within partitions only). */
static int by_key(const void *a, const void *b)
{
    int64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    return cmp_i64(x, y);
}

/* Checks the output partitions: keys strictly ascending in each, each key
 * in one partition; then compares the whole, sorted by key, to ref. */
static void check_reduced(ember_ds *out, const unsigned char *ref, size_t m,
                          size_t size)
{
    tu_parts pt;
    tu_parts_read(&pt, out);
    size_t total = 0;
    for (size_t p = 0; p < pt.nparts; p++) {
        for (size_t i = 1; i < pt.n[p]; i++)
            assert_true(by_key(pt.data[p] + (i - 1) * size, pt.data[p] + i * size) < 0);
        total += pt.n[p];
    }
    assert_int_equal(total, m);
    unsigned char *all = malloc(total * size + 1);
    for (size_t p = 0, off = 0; p < pt.nparts; p++) {
        if (pt.n[p])
            memcpy(all + off * size, pt.data[p], pt.n[p] * size);
        off += pt.n[p];
    }
    qsort(all, total, size, by_key); /* keys are unique: order is total */
    if (m)
        assert_memory_equal(all, ref, m * size);
    free(all);
    tu_parts_free(&pt);
}

static void test_shuffle_reduce_by_key_user_combine(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvd *src = rand_kvd(n, 600, 1);
    agg *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (agg){src[i].key, src[i].v, 1, src[i].v};
    ember_type t = agg_type();
    agg *ref = malloc(n * sizeof *ref);
    unsigned char *first_bytes = NULL;
    size_t first_n = 0;
    for (size_t pi = 0; pi < 3; pi++) {
        size_t P = in_parts[pi];
        size_t m = reduce_ref(v, n, sizeof *v, P, agg_fold, (unsigned char *)ref);
        qsort(ref, m, sizeof *ref, by_key);
        size_t Qs[4], nQ = out_parts(n, Qs);
        for (size_t qi = 0; qi < nQ; qi++)
            for (size_t k = 0; k < 3; k++) {
                ember_ctx *ctx = tu_ctx(thread_counts[k]);
                char msg[EMBER_MSG_SIZE] = "junk";
                ember_ds *a = array_of(ctx, &t, v, n, P), *r = NULL;
                TU_OKM(ember_reduce_by_key(&r, a, agg_combine, NULL, 0, Qs[qi], msg),
                       msg);
                assert_string_equal(msg, "");
                assert_int_equal(ember_ds_partitions(r), Qs[qi] ? Qs[qi] : P);
                assert_true(ember_type_equal(ember_ds_type(r), &t));
                check_reduced(r, (unsigned char *)ref, m, sizeof *ref);
                /* Bit-identical output, partition layout included, at any
                 * team size. */
                size_t got;
                unsigned char *bytes = tu_collect(r, &got);
                if (k == 0) {
                    free(first_bytes);
                    first_bytes = bytes;
                    first_n = got;
                } else {
                    assert_int_equal(got, first_n);
                    assert_memory_equal(bytes, first_bytes, got * sizeof(agg));
                    free(bytes);
                }
                ember_ds_free(&r);
                ember_ds_free(&a);
                ember_ctx_destroy(&ctx);
            }
    }
    free(first_bytes);
    free(ref);
    free(v);
    free(src);
}

static void test_shuffle_reduce_by_key_sum_default(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvd *v = rand_kvd(n, 1000, 2);
    kvd *ref = malloc(n * sizeof *ref);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    for (size_t pi = 0; pi < 3; pi++) {
        size_t P = in_parts[pi];
        size_t m = reduce_ref(v, n, sizeof *v, P, kvd_fold, (unsigned char *)ref);
        qsort(ref, m, sizeof *ref, by_key);
        size_t Qs[4], nQ = out_parts(n, Qs);
        for (size_t qi = 0; qi < nQ; qi++) {
            ember_ctx *ctx = tu_ctx(4);
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, n, P), *r = NULL;
            TU_OKM(ember_reduce_by_key(&r, a, NULL, NULL, 0, Qs[qi], msg), msg);
            check_reduced(r, (unsigned char *)ref, m, sizeof *ref);
            ember_ds_free(&r);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
    }
    /* Every non-key field of a struct is summed; integers wrap. */
    typedef struct {
        int32_t key;
        int32_t c;
        uint64_t u;
        float f[2];
    } rec;
    ember_field f[] = {{"key", EMBER_I32, 1, 0}, {"c", EMBER_I32, 1, 0},
                       {"u", EMBER_U64, 1, 0}, {"f", EMBER_F32, 2, 0}};
    ember_type rt;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&rt, f, 4, msg), msg);
    assert_int_equal(rt.size, sizeof(rec));
    rec rs[6] = {{2, INT32_MAX, UINT64_MAX, {1, 2}}, {-1, 5, 1, {1, 1}},
                 {2, 1, 2, {0.5f, 0.25f}}, {-1, -5, 3, {2, 2}},
                 {7, 1, 1, {1, 1}}, {2, 1, 0, {0, 0}}};
    ember_ctx *ctx = tu_ctx(2);
    ember_ds *a = array_of(ctx, &rt, rs, 6, 2), *r = NULL;
    TU_OKM(ember_reduce_by_key(&r, a, NULL, NULL, 0, 1, msg), msg);
    size_t got;
    rec *o = tu_collect(r, &got);
    assert_int_equal(got, 3);
    assert_int_equal(o[0].key, -1);
    assert_int_equal(o[0].c, 0);
    assert_int_equal(o[0].u, 4);
    assert_true(o[0].f[0] == 3.0f && o[0].f[1] == 3.0f);
    assert_int_equal(o[1].key, 2);
    assert_int_equal(o[1].c, INT32_MIN + 1); /* wrapped */
    assert_int_equal(o[1].u, 1);             /* wrapped */
    assert_true(o[1].f[0] == 1.5f && o[1].f[1] == 2.25f);
    assert_int_equal(o[2].key, 7);
    free(o);
    ember_ds_free(&r);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    free(ref);
    free(v);
}

/* The default sum as each input partition streams in: a table of its keys
 * while they are few, given up when they are many from the start or when
 * a partition holds more than the table takes (32,768 keys). The sums
 * must be the documented chains either way: each partition's records of a
 * key in order, then the partitions in order (mixed magnitudes, so any
 * other grouping shows in the bits), for every element of the f64 value
 * fields, and u64 sums that wrap (i32 and f32 fields:
 * test_shuffle_reduce_by_key_sum_default). */
typedef struct {
    int64_t key;
    double v[3];
    uint64_t c; /* large: its sums wrap */
} sumrec;

typedef struct {
    sumrec r;
    size_t pos; /* the order its sum takes it in */
} placed;

static int by_key_then_pos(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    int k = cmp_i64(x->r.key, y->r.key);
    return k ? k : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Folds the records of each key of r[0..n) in the order of their pos into
 * out (pos: the first's); returns the keys. */
static size_t fold_in_order(placed *r, size_t n, placed *out)
{
    qsort(r, n, sizeof *r, by_key_then_pos);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && out[m - 1].r.key == r[i].r.key) {
            for (int j = 0; j < 3; j++)
                out[m - 1].r.v[j] += r[i].r.v[j];
            out[m - 1].r.c += r[i].r.c;
        } else {
            out[m++] = r[i];
        }
    }
    return m;
}

/* The default sum written as a combine function: one record at a time. */
static int sum_sumrecs(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    sumrec *a = acc;
    const sumrec *r = in;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++)
            a->v[j] += r[i].v[j];
        a->c += r[i].c;
    }
    return 0;
}

static void test_shuffle_reduce_sums_streamed(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    ember_field f[] = {{"key", EMBER_I64, 1, 0}, {"v", EMBER_F64, 3, 0},
                       {"c", EMBER_U64, 1, 0}};
    ember_type t;
    TU_OKM(ember_type_struct(&t, f, 3, msg), msg);
    assert_int_equal(t.size, sizeof(sumrec));
    const size_t n = 150000, P = 2;
    sumrec *v = malloc(n * sizeof *v), *ref = malloc(n * sizeof *ref);
    placed *in = malloc(n * sizeof *in), *partial = malloc(n * sizeof *partial);
    placed *all = malloc(n * sizeof *all);
    assert_true(v && ref && in && partial && all);
    /* 7 keys; 60,000 from the start; 20 keys for 5,000 records, then
     * 40,000 more; 7 keys for 1,000 records, then a new key in every
     * other record, so that the table fills (32,768 keys) within a block
     * of records whose keys repeat */
    for (int shape = 0; shape < 4; shape++) {
        uint64_t seed = 40 + (uint64_t)shape;
        for (size_t i = 0; i < n; i++) {
            size_t at = i % (n / P);
            uint64_t r = tu_rand(&seed);
            int64_t k = shape == 0 ? (int64_t)(r % 7)
                      : shape == 1 ? (int64_t)(r % 60000)
                      : shape == 3 ? (at % 2 || at < 1000 ? (int64_t)(r % 7) : (int64_t)at + 7)
                      : at < 5000  ? (int64_t)(r % 20)
                                   : (int64_t)(r % 40000) + 20;
            v[i].key = k - 3;
            for (int j = 0; j < 3; j++)
                v[i].v[j] = (tu_rand01(&seed) - 0.4) *
                            pow(10.0, (double)(tu_rand(&seed) % 12));
            v[i].c = tu_rand(&seed) | (uint64_t)1 << 63;
        }
        /* the reference: each partition's records folded in order, then
         * each key's partials in partition order */
        size_t m = 0;
        for (size_t p = 0, off = 0; p < P; p++) {
            size_t len = tu_part_len(n, P, p);
            for (size_t i = 0; i < len; i++)
                in[i] = (placed){v[off + i], i};
            size_t pm = fold_in_order(in, len, partial);
            for (size_t i = 0; i < pm; i++)
                all[m++] = (placed){partial[i].r, p};
            off += len;
        }
        m = fold_in_order(all, m, partial);
        for (size_t i = 0; i < m; i++)
            ref[i] = partial[i].r;
        ember_ctx *ctx = tu_ctx(2);
        ember_ds *a = array_of(ctx, &t, v, n, P), *r = NULL;
        /* the default sum, and a combine function that folds the same way */
        for (int user = 0; user < 2; user++) {
            TU_OKM(ember_reduce_by_key(&r, a, user ? sum_sumrecs : NULL, NULL, 0, 3, msg),
                   msg);
            check_reduced(r, (unsigned char *)ref, m, sizeof *ref);
            ember_ds_free(&r);
        }
        ember_ds_free(&a);
        ember_ctx_destroy(&ctx);
    }
    free(v);
    free(ref);
    free(in);
    free(partial);
    free(all);
}

/* Records of 808 bytes are added 81 at a time instead of 256: each key's
 * sum still its records' chain in input order, then in partition order. */
static void test_shuffle_reduce_sums_wide_records(void **unused)
{
    (void)unused;
    typedef struct {
        int64_t key;
        double v[100];
    } wrec;
    char msg[EMBER_MSG_SIZE];
    ember_field f[] = {{"key", EMBER_I64, 1, 0}, {"v", EMBER_F64, 100, 0}};
    ember_type t;
    TU_OKM(ember_type_struct(&t, f, 2, msg), msg);
    assert_int_equal(t.size, sizeof(wrec));
    const size_t n = 3000, P = 3, K = 5;
    wrec *v = malloc(n * sizeof *v), ref[5] = {{0}}, part[5];
    assert_non_null(v);
    uint64_t seed = 17;
    for (size_t i = 0; i < n; i++) {
        v[i].key = (int64_t)(tu_rand(&seed) % K);
        for (int j = 0; j < 100; j++)
            v[i].v[j] = (tu_rand01(&seed) - 0.4) * pow(10.0, (double)(tu_rand(&seed) % 12));
    }
    int seen[5] = {0};
    for (size_t p = 0, off = 0; p < P; off += tu_part_len(n, P, p++)) {
        int in_part[5] = {0};
        for (size_t i = off; i < off + tu_part_len(n, P, p); i++) {
            wrec *s = &part[v[i].key];
            if (!in_part[v[i].key]++)
                *s = v[i];
            else
                for (int j = 0; j < 100; j++)
                    s->v[j] += v[i].v[j];
        }
        for (size_t k = 0; k < K; k++) {
            if (!in_part[k])
                continue;
            if (!seen[k]++)
                ref[k] = part[k];
            else
                for (int j = 0; j < 100; j++)
                    ref[k].v[j] += part[k].v[j];
        }
    }
    ember_ctx *ctx = tu_ctx(2);
    ember_ds *a = array_of(ctx, &t, v, n, P), *r = NULL;
    TU_OKM(ember_reduce_by_key(&r, a, NULL, NULL, 0, 2, msg), msg);
    check_reduced(r, (unsigned char *)ref, K, sizeof *ref);
    ember_ds_free(&r);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    free(v);
}

/* Float keys: -0.0 and 0.0 are one key, NaNs are one key sorted last. */
static void test_shuffle_reduce_by_key_float_keys(void **state)
{
    (void)state;
    typedef struct {
        double key;
        int64_t n;
    } fk;
    double nan2;
    uint64_t bits;
    double nan1 = NAN;
    memcpy(&bits, &nan1, 8);
    bits |= 1;
    memcpy(&nan2, &bits, 8);
    fk v[] = {{0.0, 1}, {1.5, 10}, {-0.0, 100}, {NAN, 1000}, {-INFINITY, 5},
              {nan2, 2000}, {1.5, 20}, {0.0, 300}, {-2.0, 7}};
    size_t n = sizeof v / sizeof v[0];
    ember_type t = ember_type_pair(EMBER_F64, EMBER_I64);
    for (size_t P = 1; P <= 4; P += 3) {
        ember_ctx *ctx = tu_ctx(2);
        char msg[EMBER_MSG_SIZE];
        ember_ds *a = array_of(ctx, &t, v, n, P), *r = NULL;
        TU_OKM(ember_reduce_by_key(&r, a, NULL, NULL, 0, 1, msg), msg);
        size_t got;
        fk *o = tu_collect(r, &got);
        assert_int_equal(got, 5);
        assert_true(o[0].key == -INFINITY && o[0].n == 5);
        assert_true(o[1].key == -2.0 && o[1].n == 7);
        assert_true(o[2].key == 0.0 && o[2].n == 401);
        assert_true(o[3].key == 1.5 && o[3].n == 30);
        assert_true(isnan(o[4].key) && o[4].n == 3000);
        free(o);
        ember_ds_free(&r);
        ember_ds_free(&a);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- group_by_key ------------------------------------------------------------------ */

typedef struct {
    atomic_long groups;
    atomic_long bad;
} group_check;

/* Walks the groups of a partition with ember_next_group: each group one
 * key, keys ascending, idx ascending within a group. Emits {key, size}. */
static int walk_groups(const void *in, size_t n, ember_emitter *em, void *arg)
{
    group_check *g = arg;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    const kvi *r = in;
    size_t pos = 0, len;
    int64_t prev_key = INT64_MIN;
    int first = 1;
    while ((len = ember_next_group(&t, in, n, &pos))) {
        const kvi *grp = r + pos - len;
        if (!first && grp[0].key <= prev_key)
            atomic_fetch_add(&g->bad, 1);
        for (size_t i = 1; i < len; i++)
            if (grp[i].key != grp[0].key || grp[i].idx <= grp[i - 1].idx)
                atomic_fetch_add(&g->bad, 1);
        prev_key = grp[0].key;
        first = 0;
        atomic_fetch_add(&g->groups, 1);
        kvi out = {grp[0].key, (int64_t)len};
        if (ember_emit(em, &out, 1))
            return 1;
    }
    return pos == n ? 0 : 2;
}

static void test_shuffle_group_by_key(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvi *v = rand_kvi(n, 700, 3);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    /* Reference group sizes per key. */
    long counts[700] = {0};
    long distinct = 0;
    for (size_t i = 0; i < n; i++)
        distinct += counts[v[i].key + 350]++ == 0;
    for (size_t pi = 0; pi < 3; pi++) {
        size_t Qs[4], nQ = out_parts(n, Qs);
        for (size_t qi = 0; qi < nQ; qi++) {
            ember_ctx *ctx = tu_ctx(thread_counts[qi % 3]);
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, n, in_parts[pi]), *g = NULL,
                     *w = NULL;
            TU_OKM(ember_group_by_key(&g, a, Qs[qi], msg), msg);
            assert_int_equal(ember_ds_partitions(g), Qs[qi] ? Qs[qi] : in_parts[pi]);
            group_check gc = {0, 0};
            TU_OKM(ember_map_partitions(&w, g, NULL, walk_groups, &gc, 0 /* borrowed: it checks into gc */, msg), msg);
            size_t got;
            kvi *sizes = tu_collect(w, &got);
            assert_int_equal(atomic_load(&gc.bad), 0);
            /* One group per key over all partitions: groups are never
             * split. */
            assert_int_equal(got, (size_t)distinct);
            assert_int_equal(atomic_load(&gc.groups), distinct);
            for (size_t i = 0; i < got; i++)
                assert_int_equal(sizes[i].idx, counts[sizes[i].key + 350]);
            free(sizes);
            /* The records themselves: the same multiset. */
            uint64_t c;
            TU_OKM(ember_count(g, &c, msg), msg);
            assert_int_equal(c, n);
            kvi s;
            TU_OKM(ember_sum(g, &s, msg), msg);
            assert_int_equal(s.idx, (int64_t)(n * (n - 1) / 2));
            ember_ds_free(&w);
            ember_ds_free(&g);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
    }
    free(v);
}

static void test_shuffle_next_group_edges(void **state)
{
    (void)state;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    kvi r[5] = {{1, 0}, {1, 1}, {2, 2}, {3, 3}, {3, 4}};
    size_t pos = 0;
    assert_int_equal(ember_next_group(&t, r, 5, &pos), 2);
    assert_int_equal(pos, 2);
    assert_int_equal(ember_next_group(&t, r, 5, &pos), 1);
    assert_int_equal(ember_next_group(&t, r, 5, &pos), 2);
    assert_int_equal(pos, 5);
    assert_int_equal(ember_next_group(&t, r, 5, &pos), 0);
    pos = 9;
    assert_int_equal(ember_next_group(&t, r, 5, &pos), 0);
    pos = 0;
    assert_int_equal(ember_next_group(&t, r, 0, &pos), 0);
    assert_int_equal(ember_next_group(NULL, r, 5, &pos), 0);
    assert_int_equal(ember_next_group(&t, r, 5, NULL), 0);
}

/* ---- join ------------------------------------------------------------------------ */

typedef struct {
    int64_t key;
    int64_t ia;
    int64_t ib;
} joined;

/* A join's record: a's record, then b's value fields at the joined
 * type's offsets, padding zero. b's fields here have gaps and arrays, so
 * the moves of b's fields (worked out once, neighbours merged) are not one
 * block; each output record is checked byte for byte against one built
 * field by field. */
static void test_shuffle_join_mixed_value_fields(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_field fa[] = {{"key", EMBER_I64, 1, 0}, {"w", EMBER_F32, 1, 0}};
    ember_field fb[] = {{"key", EMBER_I64, 1, 0}, {"x", EMBER_I32, 1, 0},
                        {"y", EMBER_F64, 2, 0}, {"z", EMBER_F32, 3, 0},
                        {"u", EMBER_I32, 1, 0}};
    ember_type ta, tb;
    TU_OKM(ember_type_struct(&ta, fa, 2, msg), msg);
    TU_OKM(ember_type_struct(&tb, fb, 5, msg), msg);
    enum { NA = 500, NB = 40 };
    unsigned char *a = calloc(NA, ta.size), *b = calloc(NB, tb.size);
    assert_true(a && b);
    for (int64_t i = 0; i < NA; i++) {
        int64_t k = (i * 7) % 50;
        float w = (float)i / 3;
        memcpy(a + i * ta.size, &k, 8);
        memcpy(a + i * ta.size + ta.field[1].offset, &w, 4);
    }
    for (int64_t i = 0; i < NB; i++) { /* keys 0..39, unique */
        unsigned char *r = b + i * tb.size;
        int32_t x = (int32_t)(1000 + i);
        double y[2] = {i + 0.5, -i - 0.25};
        float z[3] = {(float)i, (float)i + 1, (float)i + 2};
        int32_t u = (int32_t)(60000 + i);
        memcpy(r, &i, 8);
        memcpy(r + tb.field[1].offset, &x, 4);
        memcpy(r + tb.field[2].offset, y, 16);
        memcpy(r + tb.field[3].offset, z, 12);
        memcpy(r + tb.field[4].offset, &u, 4);
    }
    ember_ctx *ctx = tu_ctx(2);
    ember_ds *da = array_of(ctx, &ta, a, NA, 4), *db = array_of(ctx, &tb, b, NB, 3), *j = NULL;
    TU_OKM(ember_join(&j, da, db, 2, msg), msg);
    const ember_type *tj = ember_ds_type(j);
    assert_int_equal(tj->nfields, 6);
    size_t n = 0;
    unsigned char *got = tu_collect(j, &n);
    size_t want = 0;
    for (size_t i = 0; i < NA; i++)
        want += (i * 7) % 50 < NB;
    assert_int_equal(n, want);
    unsigned char *ref = malloc(tj->size);
    assert_non_null(ref);
    for (size_t r = 0; r < n; r++) {
        const unsigned char *g = got + r * tj->size;
        int64_t k;
        float w;
        memcpy(&k, g, 8);
        memcpy(&w, g + tj->field[1].offset, 4);
        assert_true(k >= 0 && k < NB);
        memset(ref, 0, tj->size);
        memcpy(ref, &k, 8);
        memcpy(ref + tj->field[1].offset, &w, 4);
        for (uint32_t f = 1; f < tb.nfields; f++)
            memcpy(ref + tj->field[1 + f].offset, b + k * tb.size + tb.field[f].offset,
                   ember_scalar_size(tb.field[f].kind) * tb.field[f].count);
        assert_memory_equal(g, ref, tj->size);
    }
    free(ref);
    free(got);
    free(a);
    free(b);
    ember_ds_free(&j);
    ember_ds_free(&da);
    ember_ds_free(&db);
    ember_ctx_destroy(&ctx);
}

static void test_shuffle_join_cross_product(void **state)
{
    (void)state;
    size_t na = 3000, nb = 2000;
    kvi *a = rand_kvi(na, 300, 4), *b = rand_kvi(nb, 300, 5);
    for (size_t i = 0; i < nb; i++)
        b[i].key += 100; /* keys overlap in part only */
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    size_t nref = 0;
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            nref += a[i].key == b[j].key;
    size_t Pa[] = {1, 4, 9}, Pb[] = {3, 1, 9};
    for (size_t pi = 0; pi < 3; pi++) {
        size_t Qs[4], nQ = out_parts(na, Qs);
        for (size_t qi = 0; qi < nQ; qi++) {
            ember_ctx *ctx = tu_ctx(thread_counts[(pi + qi) % 3]);
            char msg[EMBER_MSG_SIZE];
            ember_ds *da = array_of(ctx, &t, a, na, Pa[pi]);
            ember_ds *db = array_of(ctx, &t, b, nb, Pb[pi]), *j = NULL;
            TU_OKM(ember_join(&j, da, db, Qs[qi], msg), msg);
            const ember_type *jt = ember_ds_type(j);
            assert_int_equal(jt->nfields, 3);
            assert_string_equal(jt->field[0].name, "key");
            assert_string_equal(jt->field[1].name, "value");
            assert_string_equal(jt->field[2].name, "value_2");
            assert_int_equal(jt->size, sizeof(joined));
            assert_int_equal(ember_ds_partitions(j), Qs[qi] ? Qs[qi] : Pa[pi]);
            tu_parts pt;
            tu_parts_read(&pt, j);
            size_t total = 0;
            for (size_t p = 0; p < pt.nparts; p++) {
                const joined *r = (const joined *)pt.data[p];
                size_t i = 0;
                while (i < pt.n[p]) {
                    /* A run of one key: the cross product, a's records in
                     * input order, each with b's in input order. */
                    int64_t k = r[i].key;
                    if (i)
                        assert_true(r[i - 1].key < k);
                    for (size_t x = 0; x < na; x++) {
                        if (a[x].key != k)
                            continue;
                        for (size_t y = 0; y < nb; y++) {
                            if (b[y].key != k)
                                continue;
                            assert_true(i < pt.n[p]);
                            assert_int_equal(r[i].key, k);
                            assert_int_equal(r[i].ia, a[x].idx);
                            assert_int_equal(r[i].ib, b[y].idx);
                            i++;
                        }
                    }
                }
                total += pt.n[p];
            }
            assert_int_equal(total, nref);
            tu_parts_free(&pt);
            ember_ds_free(&j);
            ember_ds_free(&da);
            ember_ds_free(&db);
            ember_ctx_destroy(&ctx);
        }
    }
    free(a);
    free(b);
}

static void test_shuffle_join_empty_and_disjoint(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    kvi a[3] = {{1, 0}, {2, 1}, {3, 2}}, b[2] = {{4, 0}, {5, 1}};
    ember_ds *da = array_of(ctx, &t, a, 3, 2), *db = array_of(ctx, &t, b, 2, 2);
    ember_ds *de = array_of(ctx, &t, NULL, 0, 3), *j1 = NULL, *j2 = NULL,
             *j3 = NULL;
    TU_OKM(ember_join(&j1, da, db, 0, msg), msg);
    TU_OKM(ember_join(&j2, da, de, 4, msg), msg);
    TU_OKM(ember_join(&j3, de, da, 1, msg), msg);
    uint64_t n = 9;
    TU_OKM(ember_count(j1, &n, msg), msg);
    assert_int_equal(n, 0);
    TU_OKM(ember_count(j2, &n, msg), msg);
    assert_int_equal(n, 0);
    TU_OKM(ember_count(j3, &n, msg), msg);
    assert_int_equal(n, 0);
    ember_ds_free(&j1);
    ember_ds_free(&j2);
    ember_ds_free(&j3);
    ember_ds_free(&da);
    ember_ds_free(&db);
    ember_ds_free(&de);
    ember_ctx_destroy(&ctx);
}

static void test_shuffle_join_rejects_other_key_kinds(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_type t1 = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_type t2 = ember_type_pair(EMBER_I32, EMBER_F64);
    ember_type t3 = ember_type_pair(EMBER_F64, EMBER_F64);
    ember_ds *a = array_of(ctx, &t1, NULL, 0, 1), *b = array_of(ctx, &t2, NULL, 0, 1);
    ember_ds *c = array_of(ctx, &t3, NULL, 0, 1), *j = NULL;
    assert_int_equal(ember_join(&j, a, b, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "i64");
    TU_MSG_HAS(msg, "i32");
    assert_int_equal(ember_join(&j, c, a, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "f64");
    assert_null(j);
    ember_field f[] = {{"k", EMBER_I64, 2, 0}, {"v", EMBER_F64, 1, 0}};
    ember_type arr;
    TU_OKM(ember_type_struct(&arr, f, 2, msg), msg);
    ember_ds *d = array_of(ctx, &arr, NULL, 0, 1);
    assert_int_equal(ember_join(&j, a, d, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "'k'");
    assert_int_equal(ember_join(&j, d, a, 0, msg), EMBER_ETYPE);
    assert_int_equal(ember_join(&j, a, NULL, 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_join(&j, NULL, a, 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_join(NULL, a, a, 0, msg), EMBER_EINVAL);
    ember_ctx *other = tu_ctx(1);
    ember_ds *e = array_of(other, &t1, NULL, 0, 1);
    assert_int_equal(ember_join(&j, a, e, 0, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "context");
    assert_null(j);
    ember_ds_free(&e);
    ember_ctx_destroy(&other);
    ember_ds_free(&a);
    ember_ds_free(&b);
    ember_ds_free(&c);
    ember_ds_free(&d);
    ember_ctx_destroy(&ctx);
}

/* A shuffle whose bucket offsets (input x output partitions) exceed the
 * memory budget is refused with a message, not run into the kernel's OOM
 * killer (ember-sssp's shuffle plan at --partitions 65536: 34 GB). */
static void test_shuffle_refuses_offsets_past_budget(void **state)
{
    (void)state;
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.memory_budget = 1 << 20;
    ember_ctx *ctx = tu_ctx_opts(&o);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    int64_t v[8] = {1, 1, 2, 2, 3, 3, 4, 4};
    ember_ds *a = array_of(ctx, &t, v, 4, 1024), *p = NULL;
    TU_OKM(ember_partition_by(&p, a, EMBER_HASH, 1024, msg), msg); /* lazy */
    uint64_t n = 0;
    assert_int_equal(ember_count(p, &n, msg), EMBER_EBUDGET);
    TU_MSG_HAS(msg, "a shuffle of 1024 into 1024 partitions keeps 8 MB of bucket offsets");
    ember_ds_free(&p);
    TU_OKM(ember_partition_by(&p, a, EMBER_HASH, 64, msg), msg); /* 0.5 MB: runs */
    TU_OKM(ember_count(p, &n, msg), msg);
    assert_int_equal(n, 4);
    ember_ds_free(&p);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

/* ---- partition_by -------------------------------------------------------------------- */

/* Output partitions hold the input's records (idx is a permutation), in
 * input order within each partition. Returns per-partition min/max keys
 * through lo/hi, and which partition each key went to through where. */
static void check_moved(tu_parts *pt, size_t n, int hash, int64_t K)
{
    unsigned char *seen = calloc(n, 1);
    long *where = malloc((size_t)K * sizeof *where);
    for (int64_t k = 0; k < K; k++)
        where[k] = -1;
    int64_t prev_hi = INT64_MIN;
    for (size_t p = 0; p < pt->nparts; p++) {
        const kvi *r = (const kvi *)pt->data[p];
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        for (size_t i = 0; i < pt->n[p]; i++) {
            assert_true(r[i].idx >= 0 && (size_t)r[i].idx < n);
            assert_int_equal(seen[r[i].idx], 0);
            seen[r[i].idx] = 1;
            if (i)
                assert_true(r[i - 1].idx < r[i].idx); /* input order */
            size_t slot = (size_t)(r[i].key + K / 2);
            if (where[slot] < 0)
                where[slot] = (long)p;
            assert_int_equal(where[slot], (long)p); /* a key in one place */
            lo = r[i].key < lo ? r[i].key : lo;
            hi = r[i].key > hi ? r[i].key : hi;
        }
        if (!hash && pt->n[p]) {
            assert_true(prev_hi <= lo); /* ascending key ranges */
            prev_hi = hi;
        }
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    free(where);
    free(seen);
}

static void test_shuffle_partition_by(void **state)
{
    (void)state;
    size_t n = N_IN;
    int64_t K = 5000;
    kvi *v = rand_kvi(n, K, 6);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    for (int hash = 0; hash < 2; hash++)
        for (size_t pi = 0; pi < 3; pi++) {
            size_t Qs[4], nQ = out_parts(n, Qs);
            for (size_t qi = 0; qi < nQ; qi++) {
                ember_ctx *ctx = tu_ctx(thread_counts[qi % 3]);
                char msg[EMBER_MSG_SIZE];
                ember_ds *a = array_of(ctx, &t, v, n, in_parts[pi]), *p = NULL;
                TU_OKM(ember_partition_by(&p, a, hash ? EMBER_HASH : EMBER_RANGE,
                                          Qs[qi], msg), msg);
                size_t Q = Qs[qi] ? Qs[qi] : in_parts[pi];
                assert_int_equal(ember_ds_partitions(p), Q);
                tu_parts pt;
                tu_parts_read(&pt, p);
                check_moved(&pt, n, hash, K);
                /* Range partitions are reasonably balanced. */
                if (!hash && Q == 5)
                    for (size_t q = 0; q < Q; q++)
                        assert_true(pt.n[q] > n / Q / 2 && pt.n[q] < 2 * n / Q);
                tu_parts_free(&pt);
                ember_ds_free(&p);
                ember_ds_free(&a);
                ember_ctx_destroy(&ctx);
            }
        }
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *a = array_of(ctx, &t, v, 10, 2), *p = NULL;
    assert_int_equal(ember_partition_by(&p, a, (ember_partitioner)7, 2, msg),
                     EMBER_EINVAL);
    TU_MSG_HAS(msg, "partitioner");
    assert_int_equal(ember_partition_by(&p, NULL, EMBER_HASH, 2, msg),
                     EMBER_EINVAL);
    /* a count mistyped by a few digits: refused, not accepted for the first
     * action to run the machine out of memory (10^9: 24 GB) */
    assert_int_equal(ember_partition_by(&p, a, EMBER_HASH, 1000000000, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "1000000000 partitions is more than the 33554432 allowed");
    assert_null(p);
    TU_OKM(ember_partition_by(&p, a, EMBER_HASH, (size_t)1 << 24, msg), msg);
    ember_ds *u = NULL; /* a union of two at --partitions' bound */
    TU_OKM(ember_union(&u, p, p, msg), msg);
    assert_int_equal(ember_ds_partitions(u), (size_t)1 << 25);
    ember_ds_free(&u);
    ember_ds_free(&p);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    free(v);
}

/* ---- distinct ---------------------------------------------------------------------------- */

static int rec_cmp_num(const void *a, const void *b)
{
    const kvi *x = a, *y = b;
    int c = cmp_i64(x->key, y->key);
    return c ? c : cmp_i64(x->idx, y->idx);
}

static void test_shuffle_distinct(void **state)
{
    (void)state;
    size_t n = N_IN;
    uint64_t seed = 7;
    kvi *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) { /* ~40 x 50 distinct whole records */
        v[i].key = (int64_t)(tu_rand(&seed) % 40) - 20;
        v[i].idx = (int64_t)(tu_rand(&seed) % 50) * 1000 - 20000;
    }
    kvi *ref = malloc(n * sizeof *ref);
    memcpy(ref, v, n * sizeof *v);
    qsort(ref, n, sizeof *ref, rec_cmp_num);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!m || rec_cmp_num(&ref[m - 1], &ref[i]) != 0)
            ref[m++] = ref[i];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    for (size_t pi = 0; pi < 3; pi++) {
        size_t Qs[4], nQ = out_parts(n, Qs);
        for (size_t qi = 0; qi < nQ; qi++) {
            ember_ctx *ctx = tu_ctx(thread_counts[pi]);
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, n, in_parts[pi]), *d = NULL;
            TU_OKM(ember_distinct(&d, a, Qs[qi], msg), msg);
            tu_parts pt;
            tu_parts_read(&pt, d);
            size_t total = 0;
            kvi *all = malloc(n * sizeof *all);
            for (size_t p = 0; p < pt.nparts; p++) {
                const kvi *r = (const kvi *)pt.data[p];
                for (size_t i = 0; i < pt.n[p]; i++) {
                    /* sorted within the partition, by the fields' values */
                    if (i)
                        assert_true(rec_cmp_num(&r[i - 1], &r[i]) < 0);
                    all[total++] = r[i];
                }
            }
            assert_int_equal(total, m);
            qsort(all, total, sizeof *all, rec_cmp_num);
            assert_memory_equal(all, ref, m * sizeof *ref);
            free(all);
            tu_parts_free(&pt);
            ember_ds_free(&d);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
    }
    free(ref);
    free(v);
}

/* Distinct is byte equality: -0.0 and 0.0 are two records. */
static void test_shuffle_distinct_is_byte_equality(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_scalar(EMBER_F64);
    double v[] = {0.0, -0.0, 1.0, 0.0, -0.0, 1.0, 2.5, -3.0};
    ember_ds *a = array_of(ctx, &t, v, 8, 3), *d = NULL;
    TU_OKM(ember_distinct(&d, a, 1, msg), msg);
    size_t got;
    double *o = tu_collect(d, &got);
    assert_int_equal(got, 5);
    /* Sorted by value; the two zeros are adjacent. */
    assert_true(o[0] == -3.0);
    assert_true(o[1] == 0.0 && o[2] == 0.0 && signbit(o[1]) != signbit(o[2]));
    assert_true(o[3] == 1.0);
    assert_true(o[4] == 2.5);
    free(o);
    ember_ds_free(&d);
    ember_ds_free(&a);
    assert_int_equal(ember_distinct(&d, NULL, 1, msg), EMBER_EINVAL);
    assert_int_equal(ember_distinct(NULL, a, 1, msg), EMBER_EINVAL);
    ember_ctx_destroy(&ctx);
}

/* o[0..n) in key order (descending with desc), equal keys in input order
 * (idx ascending). */
static void assert_sorted_stable(const kvi *o, size_t n, int desc)
{
    for (size_t i = 1; i < n; i++) {
        int c = cmp_i64(o[i - 1].key, o[i].key);
        assert_true(desc ? c >= 0 : c <= 0);
        if (c == 0)
            assert_true(o[i - 1].idx < o[i].idx);
    }
}

/* ---- sort_by_key --------------------------------------------------------------------------- */

static void test_shuffle_sort_by_key_stable(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvi *v = rand_kvi(n, 800, 8);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    for (int desc = 0; desc < 2; desc++)
        for (size_t pi = 0; pi < 3; pi++) {
            size_t Qs[4], nQ = out_parts(n, Qs);
            for (size_t qi = 0; qi < nQ; qi++) {
                ember_ctx *ctx = tu_ctx(thread_counts[(qi + desc) % 3]);
                char msg[EMBER_MSG_SIZE];
                ember_ds *a = array_of(ctx, &t, v, n, in_parts[pi]), *s = NULL;
                TU_OKM(ember_sort_by_key(&s, a, desc, Qs[qi], msg), msg);
                assert_int_equal(ember_ds_partitions(s),
                                 Qs[qi] ? Qs[qi] : in_parts[pi]);
                size_t got;
                kvi *o = tu_collect(s, &got);
                assert_int_equal(got, n);
                assert_sorted_stable(o, n, desc);
                int64_t s1 = 0;
                for (size_t i = 0; i < n; i++)
                    s1 += o[i].idx;
                assert_int_equal(s1, (int64_t)(n * (n - 1) / 2));
                free(o);
                ember_ds_free(&s);
                ember_ds_free(&a);
                ember_ctx_destroy(&ctx);
            }
        }
    free(v);
}

static void test_shuffle_sort_by_key_float_keys(void **state)
{
    (void)state;
    typedef struct {
        double key;
        int64_t idx;
    } fk;
    size_t n = 5000;
    fk *v = malloc(n * sizeof *v);
    uint64_t seed = 9;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = tu_rand(&seed) % 10;
        v[i].key = r == 0 ? NAN : r == 1 ? -0.0 : r == 2 ? 0.0 : r == 3 ? INFINITY
                 : (tu_rand01(&seed) - 0.5) * 100;
        v[i].idx = (int64_t)i;
    }
    ember_type t = ember_type_pair(EMBER_F64, EMBER_I64);
    for (int desc = 0; desc < 2; desc++) {
        ember_ctx *ctx = tu_ctx(4);
        char msg[EMBER_MSG_SIZE];
        ember_ds *a = array_of(ctx, &t, v, n, 6), *s = NULL;
        TU_OKM(ember_sort_by_key(&s, a, desc, 4, msg), msg);
        size_t got;
        fk *o = tu_collect(s, &got);
        assert_int_equal(got, n);
        for (size_t i = 1; i < n; i++) {
            int c = ember__key_cmp(&t, &o[i - 1], &o[i]);
            assert_true(desc ? c >= 0 : c <= 0);
            if (c == 0)
                assert_true(o[i - 1].idx < o[i].idx);
        }
        /* NaN sorts after everything: last ascending, first descending. */
        assert_true(isnan(o[desc ? 0 : n - 1].key));
        free(o);
        ember_ds_free(&s);
        ember_ds_free(&a);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

/* ---- repartition --------------------------------------------------------------------------- */

static int keep_key_even(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const kvi *r = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = (r[i].key & 1) == 0;
    return 0;
}

static void test_shuffle_repartition(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvi *v = rand_kvi(n, 100, 10);
    size_t m = 0;
    kvi *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++)
        if ((v[i].key & 1) == 0)
            ref[m++] = v[i];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    size_t Qs[] = {1, 3, 16, m + 7};
    for (size_t pi = 0; pi < 3; pi++)
        for (size_t qi = 0; qi < 4; qi++) {
            ember_ctx *ctx = tu_ctx(thread_counts[qi % 3]);
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, n, in_parts[pi]), *f = NULL,
                     *r = NULL;
            TU_OKM(ember_filter(&f, a, keep_key_even, NULL, 0, msg), msg);
            TU_OKM(ember_repartition(&r, f, Qs[qi], msg), msg);
            assert_int_equal(ember_ds_partitions(r), Qs[qi]);
            tu_parts pt;
            tu_parts_read(&pt, r);
            for (size_t q = 0, off = 0; q < Qs[qi]; q++) {
                assert_int_equal(pt.n[q], tu_part_len(m, Qs[qi], q));
                if (pt.n[q])
                    assert_memory_equal(pt.data[q], ref + off, pt.n[q] * sizeof *ref);
                off += pt.n[q];
            }
            tu_parts_free(&pt);
            ember_ds_free(&r);
            ember_ds_free(&f);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *a = array_of(ctx, &t, v, 10, 2), *r = NULL;
    assert_int_equal(ember_repartition(&r, a, 0, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "0 partitions");
    assert_int_equal(ember_repartition(&r, NULL, 2, msg), EMBER_EINVAL);
    assert_null(r);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    free(ref);
    free(v);
}

/* ---- empty inputs, reruns, errors ------------------------------------------------------------ */

static void test_shuffle_empty_inputs(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ds *e = array_of(ctx, &t, NULL, 0, 3);
    ember_ds *out[8] = {NULL};
    TU_OKM(ember_reduce_by_key(&out[0], e, NULL, NULL, 0, 2, msg), msg);
    TU_OKM(ember_group_by_key(&out[1], e, 0, msg), msg);
    TU_OKM(ember_join(&out[2], e, e, 5, msg), msg);
    TU_OKM(ember_partition_by(&out[3], e, EMBER_HASH, 4, msg), msg);
    TU_OKM(ember_partition_by(&out[4], e, EMBER_RANGE, 4, msg), msg);
    TU_OKM(ember_distinct(&out[5], e, 0, msg), msg);
    TU_OKM(ember_sort_by_key(&out[6], e, 1, 3, msg), msg);
    TU_OKM(ember_repartition(&out[7], e, 6, msg), msg);
    for (int i = 0; i < 8; i++) {
        uint64_t n = 99;
        TU_OKM(ember_count(out[i], &n, msg), msg);
        assert_int_equal(n, 0);
        ember_ds_free(&out[i]);
    }
    ember_ds_free(&e);
    ember_ctx_destroy(&ctx);
}

static int counted_identity(const void *in, void *out, size_t n, void *arg)
{
    atomic_long *calls = arg;
    atomic_fetch_add(calls, 1);
    memcpy(out, in, n * sizeof(kvd));
    return 0;
}

/* A shuffle runs once: later actions on it, or on what is made from it,
 * read its stored outputs. */
static void test_shuffle_runs_once(void **state)
{
    (void)state;
    size_t n = N_IN;
    kvd *v = rand_kvd(n, 100, 11);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    atomic_long calls = 0, combines = 0;
    ember_ds *a = array_of(ctx, &t, v, n, 4), *m = NULL, *r = NULL, *s = NULL;
    TU_OKM(ember_map(&m, a, NULL, counted_identity, &calls, 0 /* borrowed: counts */, msg), msg);
    TU_OKM(ember_reduce_by_key(&r, m, NULL, NULL, 0, 3, msg), msg);
    uint64_t c1, c2;
    TU_OKM(ember_count(r, &c1, msg), msg);
    long after = atomic_load(&calls);
    assert_true(after > 0);
    TU_OKM(ember_count(r, &c2, msg), msg);
    assert_int_equal(c1, c2);
    assert_int_equal(c1, 100);
    TU_OKM(ember_sort_by_key(&s, r, 1, 2, msg), msg); /* a second stage */
    kvd top;
    size_t got;
    TU_OKM(ember_take(s, 1, &top, &got, msg), msg);
    assert_int_equal(got, 1);
    assert_int_equal(top.key, 49);
    assert_int_equal(atomic_load(&calls), after);
    (void)combines;
    ember_ds_free(&s);
    ember_ds_free(&r);
    ember_ds_free(&m);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
    free(v);
}

typedef struct {
    int64_t bad_key;
    int ret;
} fail_arg;

static int combine_fails(void *acc, const void *in, size_t n, void *arg)
{
    const fail_arg *f = arg;
    kvd *a = acc;
    const kvd *b = in;
    if (a->key == f->bad_key)
        return f->ret;
    for (size_t i = 0; i < n; i++)
        a->v += b[i].v;
    return 0;
}

/* A failing combine function: EUSER, with a message naming the function
 * and the partition, for the map-side fold (within an input partition) and
 * the reduce-side fold (partition results of one key). */
static void test_shuffle_combine_error_names_partition(void **state)
{
    (void)state;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    /* Key 5 repeats inside input partition 2 only: the map side fails
     * there. Key 9 appears once in each of partitions 1 and 3: only the
     * reduce side combines it. */
    kvd v[40];
    for (int i = 0; i < 40; i++)
        v[i] = (kvd){100 + i, 1.0};
    v[20].key = v[21].key = 5;
    v[12].key = v[33].key = 9;
    int rets[] = {1, -1};
    for (int k = 0; k < 3; k++)
        for (int r = 0; r < 2; r++) {
            ember_ctx *ctx = tu_ctx(thread_counts[k]);
            char msg[EMBER_MSG_SIZE] = "";
            ember_ds *a = array_of(ctx, &t, v, 40, 4), *red = NULL;
            fail_arg fa = {5, rets[r]};
            TU_OKM(ember_reduce_by_key(&red, a, combine_fails, &fa, sizeof fa, 3, msg), msg);
            uint64_t n;
            assert_int_equal(ember_count(red, &n, msg), EMBER_EUSER);
            char want[96];
            snprintf(want, sizeof want, "#%llu: combine function returned %d in input partition 2",
                     (unsigned long long)ember_ds_id(red), rets[r]);
            TU_MSG_HAS(msg, want);
            ember_ds_free(&red);
            fa.bad_key = 9;
            TU_OKM(ember_reduce_by_key(&red, a, combine_fails, &fa, sizeof fa, 3, msg), msg);
            assert_int_equal(ember_count(red, &n, msg), EMBER_EUSER);
            TU_MSG_HAS(msg, "combine");
            TU_MSG_HAS(msg, "partition");
            /* Past the table (a new key in every record): the sorted fold
             * fails, with the same message. */
            ember_ds_free(&red);
            kvd *w = malloc(3000 * sizeof *w);
            for (int i = 0; i < 3000; i++)
                w[i] = (kvd){100 + i, 1.0};
            w[2500].key = w[2600].key = 5;
            ember_ds *b = array_of(ctx, &t, w, 3000, 1);
            fa.bad_key = 5;
            TU_OKM(ember_reduce_by_key(&red, b, combine_fails, &fa, sizeof fa, 3, msg), msg);
            assert_int_equal(ember_count(red, &n, msg), EMBER_EUSER);
            snprintf(want, sizeof want, "#%llu: combine function returned %d in input partition 0",
                     (unsigned long long)ember_ds_id(red), rets[r]);
            TU_MSG_HAS(msg, want);
            ember_ds_free(&b);
            free(w);
            /* Not sticky: a working function on the same input runs. */
            ember_ds_free(&red);
            fa.bad_key = -1;
            TU_OKM(ember_reduce_by_key(&red, a, combine_fails, &fa, sizeof fa, 3, msg), msg);
            TU_OKM(ember_count(red, &n, msg), msg);
            assert_int_equal(n, 38);
            ember_ds_free(&red);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
}

/* reduce_by_key copies its arg: set to fail after the dataset is made, the
 * arg does not reach the combine function; borrowed (arg_size 0), it does. */
static void test_shuffle_reduce_by_key_arg_copied(void **state)
{
    (void)state;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    kvd v[40];
    for (int i = 0; i < 40; i++)
        v[i] = (kvd){i % 7, 1.0};
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *a = array_of(ctx, &t, v, 40, 4), *copied = NULL, *borrowed = NULL;
    fail_arg fa = {-1, 1};
    TU_OKM(ember_reduce_by_key(&copied, a, combine_fails, &fa, sizeof fa, 3, msg),
           msg);
    TU_OKM(ember_reduce_by_key(&borrowed, a, combine_fails, &fa, 0, 3, msg), msg);
    fa.bad_key = 3;
    kvd got[7];
    size_t n = 0;
    TU_OKM(ember_collect(copied, got, 7, &n, msg), msg);
    assert_int_equal(n, 7);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += got[i].v;
    assert_true(total == 40.0);
    uint64_t c;
    assert_int_equal(ember_count(borrowed, &c, msg), EMBER_EUSER);
    ember_ds_free(&borrowed);
    ember_ds_free(&copied);
    ember_ds_free(&a);
    ember_ctx_destroy(&ctx);
}

static void test_shuffle_rejects_bad_keys(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE] = "";
    ember_type sc = ember_type_scalar(EMBER_I64);
    ember_ds *s = array_of(ctx, &sc, NULL, 0, 1), *o = NULL;
    /* A scalar has no value field to sum. */
    assert_int_equal(ember_reduce_by_key(&o, s, NULL, NULL, 0, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "reduce_by_key");
    ember_field f[] = {{"k", EMBER_F64, 3, 0}, {"v", EMBER_F64, 1, 0}};
    ember_type arr;
    TU_OKM(ember_type_struct(&arr, f, 2, msg), msg);
    ember_ds *a = array_of(ctx, &arr, NULL, 0, 1);
    assert_int_equal(ember_reduce_by_key(&o, a, NULL, NULL, 0, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "'k'");
    assert_int_equal(ember_group_by_key(&o, a, 0, msg), EMBER_ETYPE);
    assert_int_equal(ember_sort_by_key(&o, a, 0, 0, msg), EMBER_ETYPE);
    assert_int_equal(ember_partition_by(&o, a, EMBER_RANGE, 0, msg), EMBER_ETYPE);
    TU_OKM(ember_distinct(&o, a, 0, msg), msg); /* whole records: fine */
    ember_ds_free(&o);
    assert_int_equal(ember_reduce_by_key(&o, NULL, NULL, NULL, 0, 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_reduce_by_key(NULL, s, NULL, NULL, 0, 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_group_by_key(&o, NULL, 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_sort_by_key(&o, NULL, 0, 0, msg), EMBER_EINVAL);
    assert_null(o);
    ember_ds_free(&a);
    ember_ds_free(&s);
    ember_ctx_destroy(&ctx);
}

/* The documented key order: -0.0 equal to 0.0, NaN the largest. */
static int ref_key_cmp(ember_scalar kind, const void *a, const void *b)
{
    double x, y;
    switch (kind) {
    case EMBER_I32: {
        int32_t p, q;
        memcpy(&p, a, 4);
        memcpy(&q, b, 4);
        return (p > q) - (p < q);
    }
    case EMBER_I64: {
        int64_t p, q;
        memcpy(&p, a, 8);
        memcpy(&q, b, 8);
        return (p > q) - (p < q);
    }
    case EMBER_U64: {
        uint64_t p, q;
        memcpy(&p, a, 8);
        memcpy(&q, b, 8);
        return (p > q) - (p < q);
    }
    case EMBER_F32: {
        float p, q;
        memcpy(&p, a, 4);
        memcpy(&q, b, 4);
        x = p;
        y = q;
        break;
    }
    default:
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
    }
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* Sorts by key (the radix sort of key images) give the records of a
 * stable sort by the documented order, byte for byte: every key kind,
 * both directions, keys with many repeats, the extremes of each kind and,
 * for floats, -0.0 and 0.0, infinities, NaNs of other payloads and
 * subnormals; and group_by_key keeps input order within a key. */
/* Asserts that a and b have the same partitions, byte for byte. */
static void assert_same_parts(ember_ds *a, ember_ds *b)
{
    tu_parts x, y;
    tu_parts_read(&x, a);
    tu_parts_read(&y, b);
    assert_int_equal(x.nparts, y.nparts);
    for (size_t p = 0; p < x.nparts; p++) {
        assert_int_equal(x.n[p], y.n[p]);
        if (x.n[p])
            assert_memory_equal(x.data[p], y.data[p], x.n[p] * x.size);
    }
    tu_parts_free(&x);
    tu_parts_free(&y);
}

/* Inputs already partitioned as the shuffle partitions (Spark's PageRank:
 * a cached join joined each iteration with a reduce_by_key output) are
 * passed through: no bucketing copy, the bucket taken over, no sort when
 * sorted. The bytes are those of the same shuffle over the same records
 * laid out otherwise, and the cached inputs are left as they were. So is
 * an input partition whose records all go to one other partition. */
static void test_shuffle_partitioned_inputs_pass_through(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    const size_t na = 3000, nb = 2000, Q = 5;
    kvi *a = rand_kvi(na, 300, 11), *b = rand_kvi(nb, 400, 12);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ctx *ctx = tu_ctx(2);
    ember_ds *da = array_of(ctx, &t, a, na, 4), *db = array_of(ctx, &t, b, nb, 3);
    ember_ds *ga = NULL, *ha = NULL, *rb = NULL;
    TU_OKM(ember_group_by_key(&ga, da, Q, msg), msg);      /* sorted */
    TU_OKM(ember_partition_by(&ha, da, EMBER_HASH, Q, msg), msg); /* not */
    TU_OKM(ember_reduce_by_key(&rb, db, NULL, NULL, 0, Q, msg), msg);
    TU_OKM(ember_cache(ga, msg), msg);
    TU_OKM(ember_cache(rb, msg), msg);
    size_t nga, nrb;
    kvi *ga_before = tu_collect(ga, &nga), *rb_before = tu_collect(rb, &nrb);
    /* the same records as arrays of 7 partitions: every bucket mixed */
    ember_ds *xa = array_of(ctx, &t, ga_before, nga, 7);
    ember_ds *xb = array_of(ctx, &t, rb_before, nrb, 7);
    ember_ds *j1 = NULL, *j2 = NULL, *jref = NULL, *r1 = NULL, *rref = NULL;
    TU_OKM(ember_join(&j1, ga, rb, 0, msg), msg);
    TU_OKM(ember_join(&j2, ha, rb, 0, msg), msg);
    TU_OKM(ember_join(&jref, xa, xb, Q, msg), msg);
    assert_same_parts(j1, jref);
    assert_same_parts(j2, jref);
    TU_OKM(ember_reduce_by_key(&r1, ga, NULL, NULL, 0, 0, msg), msg);
    TU_OKM(ember_reduce_by_key(&rref, xa, NULL, NULL, 0, Q, msg), msg);
    assert_same_parts(r1, rref); /* integer sums: any grouping */
    size_t n2;
    kvi *after = tu_collect(ga, &n2);
    assert_int_equal(n2, nga);
    assert_memory_equal(after, ga_before, nga * sizeof *after);
    free(after);
    after = tu_collect(rb, &n2);
    assert_int_equal(n2, nrb);
    assert_memory_equal(after, rb_before, nrb * sizeof *after);
    free(after);

    /* Partition p of 3 holds keys that all go to partition (p + 2) % Q,
     * 40 of them repeated out of order; against the same records in one
     * partition. */
    kvi *c = malloc(na * sizeof *c);
    assert_non_null(c);
    for (size_t p = 0, off = 0; p < 3; p++) {
        int64_t keys[40], k = -500;
        for (size_t m = 0; m < 40; k++) {
            kvi r = {k, 0};
            if (ember__key_hash(&t, &r) % Q == (p + 2) % Q)
                keys[m++] = k;
        }
        size_t len = tu_part_len(na, 3, p);
        for (size_t i = off; i < off + len; i++)
            c[i] = (kvi){keys[(i * 17) % 40], (int64_t)i};
        off += len;
    }
    ember_ds *dc = array_of(ctx, &t, c, na, 3), *dc1 = array_of(ctx, &t, c, na, 1);
    ember_ds *g3 = NULL, *g1 = NULL;
    TU_OKM(ember_group_by_key(&g3, dc, Q, msg), msg);
    TU_OKM(ember_group_by_key(&g1, dc1, Q, msg), msg);
    assert_same_parts(g3, g1);
    ember_ds *all[] = {da, db, ga, ha, rb, xa, xb, j1,
                       j2, jref, r1, rref, dc, dc1, g3, g1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
    free(ga_before);
    free(rb_before);
    free(a);
    free(b);
    free(c);
}

/* A sort checks for records already in order in pieces of 256 keys: an
 * inversion on a piece's edge is found, in either direction and for
 * whole-record order (distinct). */
static void test_shuffle_sorted_check_edges(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    const size_t n = 600, at[] = {0, 253, 254, 255, 256, 511, 512, 597};
    ember_type t = ember_type_pair(EMBER_I64, EMBER_I64);
    kvi *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t w = 0; w <= sizeof at / sizeof at[0]; w++)
        for (int desc = 0; desc < 2; desc++) {
            for (size_t i = 0; i < n; i++) /* pairs of equal keys, in order */
                v[i].key = desc ? (int64_t)(n - i) / 2 : (int64_t)i / 2;
            if (w < sizeof at / sizeof at[0]) { /* one swap across a pair */
                size_t i = at[w] | 1;
                kvi x = v[i];
                v[i] = v[i + 1];
                v[i + 1] = x;
            }
            for (size_t i = 0; i < n; i++) /* input positions after the swap */
                v[i].idx = (int64_t)i;
            ember_ctx *ctx = tu_ctx(1);
            ember_ds *d = array_of(ctx, &t, v, n, 1), *s = NULL, *u = NULL;
            TU_OKM(ember_sort_by_key(&s, d, desc, 1, msg), msg);
            size_t m;
            kvi *got = tu_collect(s, &m);
            assert_int_equal(m, n);
            assert_sorted_stable(got, n, desc);
            free(got);
            if (!desc) {
                TU_OKM(ember_distinct(&u, d, 1, msg), msg);
                got = tu_collect(u, &m);
                assert_int_equal(m, n);
                for (size_t i = 1; i < n; i++)
                    assert_true(got[i - 1].key < got[i].key ||
                                (got[i - 1].key == got[i].key &&
                                 got[i - 1].idx < got[i].idx));
                free(got);
            }
            ember_ds_free(&u);
            ember_ds_free(&s);
            ember_ds_free(&d);
            ember_ctx_destroy(&ctx);
        }
    free(v);
}

static void test_shuffle_radix_order(void **unused)
{
    (void)unused;
    char msg[EMBER_MSG_SIZE];
    const ember_scalar kinds[] = {EMBER_I32, EMBER_I64, EMBER_U64, EMBER_F32, EMBER_F64};
    const size_t n = 3000;
    uint64_t r = 7;
    const size_t nk = sizeof kinds / sizeof kinds[0];
    /* then narrow keys (small and not negative: their images differ in
     * their low bits only, and the sort carries indexes in the keys) */
    for (size_t kk = 0; kk < 2 * nk; kk++) {
        size_t k = kk % nk;
        int narrow = kk >= nk;
        ember_type t = ember_type_pair(kinds[k], EMBER_U64);
        size_t size = t.size;
        unsigned char *v = calloc(n, size), *ref = malloc(n * size);
        assert_true(v && ref);
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t z = r >> 33;
            unsigned char *rec = v + i * size;
            int pick = narrow ? 16 : (int)(z % 16);
            int64_t small = (int64_t)(z >> 8) % 41 - (narrow ? 0 : 20); /* repeats */
            switch (kinds[k]) {
            case EMBER_I32: {
                int32_t x = pick == 0 ? INT32_MIN : pick == 1 ? INT32_MAX : (int32_t)small;
                memcpy(rec, &x, 4);
                break;
            }
            case EMBER_I64: {
                int64_t x = pick == 0 ? INT64_MIN : pick == 1 ? INT64_MAX
                          : pick == 2 ? (int64_t)1 << 40 : small;
                memcpy(rec, &x, 8);
                break;
            }
            case EMBER_U64: {
                uint64_t x = pick == 0 ? UINT64_MAX : pick == 1 ? (uint64_t)1 << 63
                           : (uint64_t)(small + 20);
                memcpy(rec, &x, 8);
                break;
            }
            default: {
                uint64_t nan2 = 0x7ff8000000000123ULL, nneg = 0xfff8000000000000ULL;
                double x = (double)small / 4, d;
                switch (pick) {
                case 0: x = -0.0; break;
                case 1: x = 0.0; break;
                case 2: x = INFINITY; break;
                case 3: x = -INFINITY; break;
                case 4: memcpy(&x, &nan2, 8); break;
                case 5: memcpy(&x, &nneg, 8); break;
                case 6: x = 4.9e-324; break;
                case 7: x = -DBL_MAX; break;
                }
                if (kinds[k] == EMBER_F32) {
                    float f = (float)x;
                    memcpy(rec, &f, 4);
                } else {
                    d = x;
                    memcpy(rec, &d, 8);
                }
            }
            }
            uint64_t seq = i;
            memcpy(rec + t.field[1].offset, &seq, 8);
        }
        for (int desc = 0; desc < 2; desc++) {
            /* the reference: a stable insertion of each record after the
             * last one that does not come after it */
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                size_t at = m;
                while (at > 0) {
                    int c = ref_key_cmp(kinds[k], ref + (at - 1) * size, v + i * size);
                    if ((desc ? -c : c) <= 0)
                        break;
                    at--;
                }
                memmove(ref + (at + 1) * size, ref + at * size, (m - at) * size);
                memcpy(ref + at * size, v + i * size, size);
                m++;
            }
            ember_ctx *ctx = tu_ctx(2);
            ember_ds *a = array_of(ctx, &t, v, n, 4), *srt = NULL, *g = NULL;
            TU_OKM(ember_sort_by_key(&srt, a, desc, 1, msg), msg);
            size_t got_n = 0;
            unsigned char *got = tu_collect(srt, &got_n);
            assert_int_equal(got_n, n);
            for (size_t i = 0; i < n; i++) /* ks bytes of key, then the seq */
                assert_memory_equal(got + i * size + t.field[1].offset,
                                    ref + i * size + t.field[1].offset, 8);
            free(got);
            if (!desc) { /* one group per key, ascending, input order within */
                TU_OKM(ember_group_by_key(&g, a, 1, msg), msg);
                got = tu_collect(g, &got_n);
                assert_int_equal(got_n, n);
                assert_memory_equal(got, ref, n * size);
                free(got);
            }
            ember_ds_free(&g);
            ember_ds_free(&srt);
            ember_ds_free(&a);
            ember_ctx_destroy(&ctx);
        }
        free(v);
        free(ref);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shuffle_radix_order),
        cmocka_unit_test(test_shuffle_partitioned_inputs_pass_through),
        cmocka_unit_test(test_shuffle_sorted_check_edges),
        cmocka_unit_test(test_shuffle_reduce_by_key_user_combine),
        cmocka_unit_test(test_shuffle_reduce_by_key_sum_default),
        cmocka_unit_test(test_shuffle_reduce_sums_streamed),
        cmocka_unit_test(test_shuffle_reduce_sums_wide_records),
        cmocka_unit_test(test_shuffle_reduce_by_key_float_keys),
        cmocka_unit_test(test_shuffle_group_by_key),
        cmocka_unit_test(test_shuffle_next_group_edges),
        cmocka_unit_test(test_shuffle_join_cross_product),
        cmocka_unit_test(test_shuffle_join_mixed_value_fields),
        cmocka_unit_test(test_shuffle_join_empty_and_disjoint),
        cmocka_unit_test(test_shuffle_join_rejects_other_key_kinds),
        cmocka_unit_test(test_shuffle_partition_by),
        cmocka_unit_test(test_shuffle_refuses_offsets_past_budget),
        cmocka_unit_test(test_shuffle_distinct),
        cmocka_unit_test(test_shuffle_distinct_is_byte_equality),
        cmocka_unit_test(test_shuffle_sort_by_key_stable),
        cmocka_unit_test(test_shuffle_sort_by_key_float_keys),
        cmocka_unit_test(test_shuffle_repartition),
        cmocka_unit_test(test_shuffle_empty_inputs),
        cmocka_unit_test(test_shuffle_runs_once),
        cmocka_unit_test(test_shuffle_combine_error_names_partition),
        cmocka_unit_test(test_shuffle_reduce_by_key_arg_copied),
        cmocka_unit_test(test_shuffle_rejects_bad_keys),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
