/* test_actions.c: the actions: count, reduce, sum, collect (caller buffer
 * and allocated), take, foreach and aggregate, each against a serial
 * reference on random inputs for several partition counts (1, a few, more
 * partitions than records) and empty datasets; floating-point results
 * bit-identical at 1, 2 and 4 threads; error statuses with messages for
 * NULL arguments, empty reductions, too-small buffers and user functions
 * that fail.
 */
#include "internal.h"
#include "testutil.h"

#include <math.h>

#define N_RAND 20000

static const int thread_counts[] = {1, 2, 4};

static double *rand_f64(size_t n, uint64_t seed)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (tu_rand01(&seed) - 0.5) * pow(10.0, (double)(tu_rand(&seed) % 12));
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

static size_t part_counts(size_t n, size_t *P)
{
    P[0] = 1;
    P[1] = 4;
    P[2] = 13;
    P[3] = n + 3;
    return 4;
}

/* ---- count --------------------------------------------------------------- */

static int keep_positive(const void *in, unsigned char *keep, size_t n,
                         void *arg)
{
    (void)arg;
    const double *a = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = a[i] > 0;
    return 0;
}

static int identity_i64(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    memcpy(out, in, n * sizeof(int64_t));
    return 0;
}

/* A map function that runs an action on the dataset in its arg, which
 * ember.h forbids; it passes the action's status on, or, ignore set,
 * drops it and goes on. what: 0 count, 1 broadcast (of an array: it never
 * reaches the executor), 2 collect (of cached blocks: likewise). */
typedef struct {
    ember_ds *other;
    int ignore, what;
} nested_arg;

static int count_inside(const void *in, void *out, size_t n, void *arg)
{
    const nested_arg *a = arg;
    uint64_t c = 0;
    char msg[EMBER_MSG_SIZE];
    int rc;
    if (a->what == 1) {
        ember_bcast *bc = NULL;
        rc = ember_broadcast(&bc, a->other, msg);
        ember_bcast_free(&bc);
    } else if (a->what == 2) {
        void *all = NULL;
        size_t k = 0;
        rc = ember_collect_alloc(a->other, &all, &k, msg);
        free(all);
    } else {
        rc = ember_count(a->other, &c, msg);
    }
    if (rc != EMBER_OK && rc != EMBER_ESTATE)
        return 99; /* not the refusal */
    memcpy(out, in, n * sizeof(int64_t));
    return a->ignore ? 0 : rc;
}

/* An action inside a user function is refused where it is called, and the
 * action that ran the function says why: it ran nested, and with the
 * inner dataset marked for a checkpoint its tasks raced on the file ("No
 * such file or directory" for the checkpoint's temporary, then "map
 * function returned 7"). */
static void test_actions_inside_user_function_refused(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *other = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 4, msg), msg);
    TU_OKM(ember_range(&other, ctx, 0, 10, 1, 2, msg), msg);
    nested_arg a = {other, 0, 0};
    TU_OKM(ember_map(&m, r, NULL, count_inside, &a, sizeof a, msg), msg);
    uint64_t n = 0;
    assert_int_equal(ember_count(m, &n, msg), EMBER_ESTATE);
    TU_MSG_HAS(msg, "map function of #3");
    TU_MSG_HAS(msg, "after it called an ember action or broadcast, which a user "
                    "function must not");
    ember_ds_free(&m);
    /* A broadcast of an array and a collect of cached blocks, which never
     * reach the executor, are refused at their start (they raced on the
     * context from the team's threads: a double free). */
    int64_t vals[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ember_ds *arr = NULL, *cached = NULL;
    ember_type i64 = ember_type_scalar(EMBER_I64);
    TU_OKM(ember_from_array(&arr, ctx, &i64, vals, 8, 2, EMBER_COPY, msg), msg);
    TU_OKM(ember_map(&cached, other, NULL, identity_i64, NULL, 0, msg), msg);
    TU_OKM(ember_cache(cached, msg), msg);
    TU_OKM(ember_count(cached, &n, msg), msg);
    nested_arg kinds[] = {{arr, 0, 1}, {cached, 0, 2}};
    for (int k = 0; k < 2; k++) {
        TU_OKM(ember_map(&m, r, NULL, count_inside, &kinds[k], sizeof kinds[k], msg), msg);
        assert_int_equal(ember_count(m, &n, msg), EMBER_ESTATE);
        TU_MSG_HAS(msg, "after it called an ember action or broadcast");
        ember_ds_free(&m);
    }
    ember_ds_free(&cached);
    ember_ds_free(&arr);
    /* An inner failure the function drops is not blamed on a later one. */
    a.ignore = 1;
    TU_OKM(ember_map(&m, r, NULL, count_inside, &a, sizeof a, msg), msg);
    TU_OKM(ember_count(m, &n, msg), msg);
    assert_int_equal(n, 100);
    ember_ds_free(&m);
    /* Outside any task, the same action runs. */
    TU_OKM(ember_count(other, &n, msg), msg);
    assert_int_equal(n, 10);
    ember_ds_free(&other);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

static void test_actions_count_matches_reference(void **state)
{
    (void)state;
    double *v = rand_f64(N_RAND, 1);
    size_t pos = 0;
    for (size_t i = 0; i < N_RAND; i++)
        pos += v[i] > 0;
    ember_type t = ember_type_scalar(EMBER_F64);
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(N_RAND, Ps);
        for (size_t j = 0; j < nP; j++) {
            char msg[EMBER_MSG_SIZE] = "junk";
            ember_ds *a = array_of(ctx, &t, v, N_RAND, Ps[j]), *f = NULL;
            TU_OKM(ember_filter(&f, a, keep_positive, NULL, 0, msg), msg);
            uint64_t n = 0;
            TU_OKM(ember_count(a, &n, msg), msg);
            assert_string_equal(msg, "");
            assert_int_equal(n, N_RAND);
            TU_OKM(ember_count(f, &n, msg), msg);
            assert_int_equal(n, pos);
            ember_ds_free(&f);
            ember_ds_free(&a);
        }
        ember_ds *e = array_of(ctx, &t, NULL, 0, 5);
        uint64_t n = 9;
        char msg[EMBER_MSG_SIZE];
        TU_OKM(ember_count(e, &n, msg), msg);
        assert_int_equal(n, 0);
        ember_ds_free(&e);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

/* ---- reduce ----------------------------------------------------------------- */

/* An affine map x -> a x + b (mod M). Composition is associative but not
 * commutative, so only a fold in record order gives the reference. */
#define AFF_M 1000000007ULL
typedef struct {
    uint64_t a, b;
} affine;

static affine compose(affine f, affine g) /* g after f */
{
    affine h = {(g.a * f.a) % AFF_M, (g.a * f.b + g.b) % AFF_M};
    return h;
}

static int compose_fn(void *acc, const void *in, size_t n, void *arg)
{
    atomic_long *calls = arg;
    if (calls)
        atomic_fetch_add(calls, 1);
    affine *f = acc;
    const affine *g = in;
    for (size_t i = 0; i < n; i++)
        *f = compose(*f, g[i]);
    return 0;
}

static void test_actions_reduce_folds_in_order(void **state)
{
    (void)state;
    size_t n = N_RAND;
    affine *v = malloc(n * sizeof *v);
    uint64_t seed = 2;
    for (size_t i = 0; i < n; i++) {
        v[i].a = tu_rand(&seed) % AFF_M;
        v[i].b = tu_rand(&seed) % AFF_M;
    }
    affine ref = v[0];
    for (size_t i = 1; i < n; i++)
        ref = compose(ref, v[i]);
    ember_field f[] = {{"a", EMBER_U64, 1, 0}, {"b", EMBER_U64, 1, 0}};
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 2, msg), msg);
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(n, Ps);
        for (size_t j = 0; j < nP; j++) {
            ember_ds *a = array_of(ctx, &t, v, n, Ps[j]);
            affine got = {0, 0};
            TU_OKM(ember_reduce(a, compose_fn, NULL, &got, msg), msg);
            assert_int_equal(got.a, ref.a);
            assert_int_equal(got.b, ref.b);
            ember_ds_free(&a);
        }
        /* One record: no call of the function at all. */
        ember_ds *one = array_of(ctx, &t, v, 1, 3);
        atomic_long calls = 0;
        affine got;
        TU_OKM(ember_reduce(one, compose_fn, &calls, &got, msg), msg);
        assert_int_equal(calls, 0);
        assert_memory_equal(&got, &v[0], sizeof got);
        ember_ds_free(&one);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

static int add_f64(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    double *s = acc;
    const double *x = in;
    for (size_t i = 0; i < n; i++)
        *s += x[i];
    return 0;
}

static void test_actions_reduce_empty_and_bad_args(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    ember_type t = ember_type_scalar(EMBER_F64);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *e = array_of(ctx, &t, NULL, 0, 4);
    double out = 42.0;
    assert_int_equal(ember_reduce(e, add_f64, NULL, &out, msg), EMBER_EEMPTY);
    TU_MSG_HAS(msg, "empty");
    assert_true(out == 42.0);
    /* Non-empty input filtered to nothing is empty too. */
    double v[3] = {-1, -2, -3};
    ember_ds *a = array_of(ctx, &t, v, 3, 2), *f = NULL;
    TU_OKM(ember_filter(&f, a, keep_positive, NULL, 0, msg), msg);
    assert_int_equal(ember_reduce(f, add_f64, NULL, &out, msg), EMBER_EEMPTY);
    assert_int_equal(ember_reduce(a, NULL, NULL, &out, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "function");
    assert_int_equal(ember_reduce(a, add_f64, NULL, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_reduce(NULL, add_f64, NULL, &out, msg), EMBER_EINVAL);
    TU_OKM(ember_reduce(a, add_f64, NULL, &out, msg), msg);
    assert_true(out == -6.0);
    ember_ds_free(&f);
    ember_ds_free(&a);
    ember_ds_free(&e);
    ember_ctx_destroy(&ctx);
}

/* ---- sum ----------------------------------------------------------------------- */

typedef struct {
    int32_t a;
    int64_t b;
    uint64_t c;
    float d;
    double e[3];
} mixed;

static void sum_ref(const mixed *v, size_t n, size_t P, mixed *out)
{
    memset(out, 0, sizeof *out);
    for (size_t p = 0, off = 0; p < P; p++) {
        size_t len = tu_part_len(n, P, p);
        mixed s;
        memset(&s, 0, sizeof s);
        for (size_t i = off; i < off + len; i++) {
            s.a = (int32_t)((uint32_t)s.a + (uint32_t)v[i].a);
            s.b = (int64_t)((uint64_t)s.b + (uint64_t)v[i].b);
            s.c += v[i].c;
            s.d += v[i].d;
            for (int j = 0; j < 3; j++)
                s.e[j] += v[i].e[j];
        }
        out->a = (int32_t)((uint32_t)out->a + (uint32_t)s.a);
        out->b = (int64_t)((uint64_t)out->b + (uint64_t)s.b);
        out->c += s.c;
        out->d += s.d;
        for (int j = 0; j < 3; j++)
            out->e[j] += s.e[j];
        off += len;
    }
}

static ember_type mixed_type(void)
{
    ember_field f[] = {{"a", EMBER_I32, 1, 0}, {"b", EMBER_I64, 1, 0},
                       {"c", EMBER_U64, 1, 0}, {"d", EMBER_F32, 1, 0},
                       {"e", EMBER_F64, 3, 0}};
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 5, msg), msg);
    assert_int_equal(t.size, sizeof(mixed));
    return t;
}

/* Every numeric field summed: integers wrap, floats add in record order
 * within a partition and then in partition order. */
static void test_actions_sum_struct_fields(void **state)
{
    (void)state;
    size_t n = N_RAND;
    mixed *v = calloc(n, sizeof *v);
    uint64_t seed = 3;
    for (size_t i = 0; i < n; i++) {
        v[i].a = (int32_t)((uint32_t)(tu_rand(&seed) >> 33) * 3u); /* large */
        v[i].b = (int64_t)tu_rand(&seed);             /* wraps int64 */
        v[i].c = tu_rand(&seed);
        v[i].d = (float)(tu_rand01(&seed) * 1e4);
        for (int j = 0; j < 3; j++)
            v[i].e[j] = (tu_rand01(&seed) - 0.5) * pow(10, j * 5);
    }
    ember_type t = mixed_type();
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(n, Ps);
        for (size_t j = 0; j < nP; j++) {
            ember_ds *a = array_of(ctx, &t, v, n, Ps[j]);
            mixed got, ref;
            memset(&got, 0x7f, sizeof got);
            char msg[EMBER_MSG_SIZE];
            TU_OKM(ember_sum(a, &got, msg), msg);
            sum_ref(v, n, Ps[j], &ref);
            assert_int_equal(got.a, ref.a);
            assert_int_equal(got.b, ref.b);
            assert_int_equal(got.c, ref.c);
            assert_memory_equal(&got.d, &ref.d, sizeof got.d);
            assert_memory_equal(got.e, ref.e, sizeof got.e);
            ember_ds_free(&a);
        }
        /* Empty: zero. */
        ember_ds *e = array_of(ctx, &t, NULL, 0, 3);
        mixed got, zero;
        memset(&got, 0x7f, sizeof got);
        memset(&zero, 0, sizeof zero);
        char msg[EMBER_MSG_SIZE];
        TU_OKM(ember_sum(e, &got, msg), msg);
        assert_int_equal(got.a, 0);
        assert_int_equal(got.b, 0);
        assert_true(got.e[2] == 0.0);
        ember_ds_free(&e);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

/* Records of many elements a field, and fields of one kind side by side:
 * each element still one chain in record order (the sum walks 8, 4, 2 or
 * 1 elements at a time). */
typedef struct {
    int64_t k;
    double p, q[12]; /* one run of 13: 8 + 4 + 1 */
    float f[7];      /* 4 + 2 + 1 */
    int32_t i[9];    /* 8 + 1, not packed */
    uint64_t u[2];
} wide;

static void test_actions_sum_wide_records(void **state)
{
    (void)state;
    ember_field f[] = {{"k", EMBER_I64, 1, 0}, {"p", EMBER_F64, 1, 0},
                       {"q", EMBER_F64, 12, 0}, {"f", EMBER_F32, 7, 0},
                       {"i", EMBER_I32, 9, 0}, {"u", EMBER_U64, 2, 0}};
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 6, msg), msg);
    assert_int_equal(t.size, sizeof(wide));
    size_t n = 5000;
    wide *v = calloc(n, sizeof *v);
    uint64_t seed = 11;
    for (size_t r = 0; r < n; r++) {
        v[r].k = (int64_t)tu_rand(&seed);
        v[r].p = (tu_rand01(&seed) - 0.5) * 1e9;
        for (int j = 0; j < 12; j++)
            v[r].q[j] = (tu_rand01(&seed) - 0.5) * pow(10, j % 7 * 3);
        for (int j = 0; j < 7; j++)
            v[r].f[j] = (float)((tu_rand01(&seed) - 0.5) * pow(10, j));
        for (int j = 0; j < 9; j++)
            v[r].i[j] = (int32_t)(uint32_t)tu_rand(&seed);
        v[r].u[0] = tu_rand(&seed);
        v[r].u[1] = tu_rand(&seed);
    }
    ember_ctx *ctx = tu_ctx(2);
    for (size_t P = 1; P <= 13; P += 12) {
        wide ref = {0}, got;
        for (size_t p = 0, off = 0; p < P; off += tu_part_len(n, P, p++)) {
            wide s = {0};
            for (size_t r = off; r < off + tu_part_len(n, P, p); r++) {
                s.k = (int64_t)((uint64_t)s.k + (uint64_t)v[r].k);
                s.p += v[r].p;
                for (int j = 0; j < 12; j++)
                    s.q[j] += v[r].q[j];
                for (int j = 0; j < 7; j++)
                    s.f[j] += v[r].f[j];
                for (int j = 0; j < 9; j++)
                    s.i[j] = (int32_t)((uint32_t)s.i[j] + (uint32_t)v[r].i[j]);
                s.u[0] += v[r].u[0];
                s.u[1] += v[r].u[1];
            }
            ref.k = (int64_t)((uint64_t)ref.k + (uint64_t)s.k);
            ref.p += s.p;
            for (int j = 0; j < 12; j++)
                ref.q[j] += s.q[j];
            for (int j = 0; j < 7; j++)
                ref.f[j] += s.f[j];
            for (int j = 0; j < 9; j++)
                ref.i[j] = (int32_t)((uint32_t)ref.i[j] + (uint32_t)s.i[j]);
            ref.u[0] += s.u[0];
            ref.u[1] += s.u[1];
        }
        ember_ds *a = array_of(ctx, &t, v, n, P);
        memset(&got, 0x7f, sizeof got);
        TU_OKM(ember_sum(a, &got, msg), msg);
        assert_memory_equal(&got, &ref, sizeof got);
        ember_ds_free(&a);
    }
    ember_ctx_destroy(&ctx);
    free(v);
}

/* ---- collect and take ---------------------------------------------------------------- */

static void test_actions_collect_caller_buffer(void **state)
{
    (void)state;
    double *v = rand_f64(N_RAND, 4);
    ember_type t = ember_type_scalar(EMBER_F64);
    ember_ctx *ctx = tu_ctx(4);
    size_t Ps[4], nP = part_counts(N_RAND, Ps);
    double *buf = malloc((N_RAND + 10) * sizeof *buf);
    for (size_t j = 0; j < nP; j++) {
        char msg[EMBER_MSG_SIZE] = "";
        ember_ds *a = array_of(ctx, &t, v, N_RAND, Ps[j]);
        size_t n = 0;
        TU_OKM(ember_collect(a, buf, N_RAND, &n, msg), msg); /* exact fit */
        assert_int_equal(n, N_RAND);
        assert_memory_equal(buf, v, N_RAND * sizeof *v);
        memset(buf, 0, (N_RAND + 10) * sizeof *buf);
        TU_OKM(ember_collect(a, buf, N_RAND + 10, &n, msg), msg);
        assert_int_equal(n, N_RAND);
        assert_memory_equal(buf, v, N_RAND * sizeof *v);
        /* Too small: ERANGE with the count needed, buffer untouched. */
        memset(buf, 0, (N_RAND + 10) * sizeof *buf);
        n = 0;
        assert_int_equal(ember_collect(a, buf, N_RAND - 1, &n, msg), EMBER_ERANGE);
        assert_int_equal(n, N_RAND);
        TU_MSG_HAS(msg, "20000 records");
        assert_true(buf[0] == 0.0);
        n = 0;
        assert_int_equal(ember_collect(a, NULL, 0, &n, msg), EMBER_ERANGE);
        assert_int_equal(n, N_RAND); /* the way to ask for the size */
        ember_ds_free(&a);
    }
    char msg[EMBER_MSG_SIZE] = "";
    ember_ds *e = array_of(ctx, &t, NULL, 0, 2);
    size_t n = 5;
    TU_OKM(ember_collect(e, NULL, 0, &n, msg), msg);
    assert_int_equal(n, 0);
    assert_int_equal(ember_collect(e, NULL, 3, &n, msg), EMBER_EINVAL);
    assert_int_equal(ember_collect(e, buf, 3, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_collect(NULL, buf, 3, &n, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
    ember_ds_free(&e);
    ember_ctx_destroy(&ctx);
    free(buf);
    free(v);
}

static void test_actions_collect_alloc(void **state)
{
    (void)state;
    double *v = rand_f64(N_RAND, 5);
    ember_type t = ember_type_scalar(EMBER_F64);
    ember_ctx *ctx = tu_ctx(2);
    size_t Ps[4], nP = part_counts(N_RAND, Ps);
    char msg[EMBER_MSG_SIZE];
    for (size_t j = 0; j < nP; j++) {
        ember_ds *a = array_of(ctx, &t, v, N_RAND, Ps[j]), *f = NULL;
        TU_OKM(ember_filter(&f, a, keep_positive, NULL, 0, msg), msg);
        void *out = NULL;
        size_t n = 0;
        TU_OKM(ember_collect_alloc(f, &out, &n, msg), msg);
        const double *d = out;
        size_t m = 0;
        for (size_t i = 0; i < N_RAND; i++)
            if (v[i] > 0) {
                assert_true(m < n);
                assert_memory_equal(&d[m], &v[i], sizeof v[i]);
                m++;
            }
        assert_int_equal(m, n);
        ember_free(ctx, out);
        ember_ds_free(&f);
        ember_ds_free(&a);
    }
    ember_ds *e = array_of(ctx, &t, NULL, 0, 7);
    void *out = (void *)1;
    size_t n = 3;
    TU_OKM(ember_collect_alloc(e, &out, &n, msg), msg);
    assert_int_equal(n, 0);
    ember_free(ctx, out);
    assert_int_equal(ember_collect_alloc(e, NULL, &n, msg), EMBER_EINVAL);
    assert_int_equal(ember_collect_alloc(e, &out, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_collect_alloc(NULL, &out, &n, msg), EMBER_EINVAL);
    ember_ds_free(&e);
    ember_ctx_destroy(&ctx);
    free(v);
}

/* Smaller than the others: with more partitions than records, take runs
 * one small window after another. */
#define N_TAKE 1000

static void test_actions_take(void **state)
{
    (void)state;
    double *v = rand_f64(N_TAKE, 6);
    size_t pos = 0;
    double *ref = malloc(N_TAKE * sizeof *ref);
    for (size_t i = 0; i < N_TAKE; i++)
        if (v[i] > 0)
            ref[pos++] = v[i];
    ember_type t = ember_type_scalar(EMBER_F64);
    double *buf = malloc((N_TAKE + 1) * sizeof *buf);
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(N_TAKE, Ps);
        for (size_t j = 0; j < nP; j++) {
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, N_TAKE, Ps[j]), *f = NULL;
            TU_OKM(ember_filter(&f, a, keep_positive, NULL, 0, msg), msg);
            size_t wants[] = {0, 1, 2, 17, 100, pos - 1, pos, pos + 1, N_TAKE};
            for (size_t w = 0; w < sizeof wants / sizeof wants[0]; w++) {
                size_t got = 12345;
                TU_OKM(ember_take(f, wants[w], buf, &got, msg), msg);
                size_t expect = wants[w] < pos ? wants[w] : pos;
                assert_int_equal(got, expect);
                if (got)
                    assert_memory_equal(buf, ref, got * sizeof *buf);
            }
            size_t got = 1;
            TU_OKM(ember_take(a, 0, NULL, &got, msg), msg);
            assert_int_equal(got, 0);
            assert_int_equal(ember_take(a, 3, NULL, &got, msg), EMBER_EINVAL);
            assert_int_equal(ember_take(a, 3, buf, NULL, msg), EMBER_EINVAL);
            assert_int_equal(ember_take(NULL, 3, buf, &got, msg), EMBER_EINVAL);
            ember_ds_free(&f);
            ember_ds_free(&a);
        }
        ember_ctx_destroy(&ctx);
    }
    free(buf);
    free(ref);
    free(v);
}

static int fail_in_partition_5(const void *in, size_t n, ember_emitter *em,
                               void *arg)
{
    atomic_long *runs = arg;
    atomic_fetch_add(runs, 1);
    if (ember_emitter_partition(em) == 5)
        return 4;
    return ember_emit(em, in, n);
}

/* take needs only the first partitions; one failing further on matters only
 * when its records are needed, whatever the team size. */
static void test_actions_take_ignores_failures_past_n(void **state)
{
    (void)state;
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *m = NULL;
        atomic_long runs = 0;
        TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 10, msg), msg);
        TU_OKM(ember_map_partitions(&m, r, NULL, fail_in_partition_5, &runs, 0 /* borrowed: counts */,
                                    msg), msg);
        int64_t buf[1000];
        size_t got = 0;
        TU_OKM(ember_take(m, 450, buf, &got, msg), msg);
        assert_int_equal(got, 450);
        for (int i = 0; i < 450; i++)
            assert_int_equal(buf[i], i);
        TU_OKM(ember_take(m, 500, buf, &got, msg), msg);
        assert_int_equal(got, 500);
        assert_int_equal(ember_take(m, 501, buf, &got, msg), EMBER_EUSER);
        TU_MSG_HAS(msg, "partition 5");
        ember_ds_free(&m);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- foreach ------------------------------------------------------------------------------- */

typedef struct {
    size_t P, n;
    atomic_int *seen;      /* per record */
    atomic_int bad_part;   /* records seen in the wrong partition */
    atomic_long calls;
} fe_state;

static int fe_check(const void *in, size_t n, size_t part, void *arg)
{
    fe_state *s = arg;
    const int64_t *a = in;
    atomic_fetch_add(&s->calls, 1);
    if (n == 0)
        return 1; /* never called with nothing */
    for (size_t i = 0; i < n; i++) {
        size_t idx = (size_t)a[i];
        size_t lo = (size_t)(((unsigned __int128)s->n * part) / s->P);
        size_t hi = (size_t)(((unsigned __int128)s->n * (part + 1)) / s->P);
        if (idx < lo || idx >= hi)
            atomic_fetch_add(&s->bad_part, 1);
        atomic_fetch_add(&s->seen[idx], 1);
    }
    return 0;
}

static int fe_fail(const void *in, size_t n, size_t part, void *arg)
{
    (void)in;
    (void)n;
    const int *ret = arg;
    return part == 3 ? *ret : 0;
}

static void test_actions_foreach(void **state)
{
    (void)state;
    size_t n = 50000;
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[] = {1, 6, 77, n + 2};
        for (size_t j = 0; j < 4; j++) {
            char msg[EMBER_MSG_SIZE];
            ember_ds *r = NULL;
            TU_OKM(ember_range(&r, ctx, 0, (int64_t)n, 1, Ps[j], msg), msg);
            fe_state s = {Ps[j], n, calloc(n, sizeof(atomic_int)), 0, 0};
            TU_OKM(ember_foreach(r, fe_check, &s, msg), msg);
            assert_int_equal(s.bad_part, 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(s.seen[i], 1);
            free(s.seen);
            ember_ds_free(&r);
        }
        /* A failing function: EUSER naming the partition, whatever it
         * returned, positive or negative. */
        char msg[EMBER_MSG_SIZE] = "";
        ember_ds *r = NULL;
        TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 8, msg), msg);
        int rets[] = {1, 77, -1, -2, -14, -100};
        for (size_t i = 0; i < sizeof rets / sizeof rets[0]; i++) {
            msg[0] = '\0';
            assert_int_equal(ember_foreach(r, fe_fail, &rets[i], msg), EMBER_EUSER);
            /* named as a map's failure is: action, dataset, the value */
            char want[128];
            snprintf(want, sizeof want,
                     "foreach function of #%llu (range) returned %d in partition 3",
                     (unsigned long long)ember_ds_id(r), rets[i]);
            TU_MSG_HAS(msg, want);
        }
        assert_int_equal(ember_foreach(r, NULL, NULL, msg), EMBER_EINVAL);
        assert_int_equal(ember_foreach(NULL, fe_check, NULL, msg), EMBER_EINVAL);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

/* ---- aggregate -------------------------------------------------------------------------------- */

typedef struct {
    uint64_t count;
    double sum;
    double min, max;
} stats_acc;

static int stats_seq(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    stats_acc *s = acc;
    const double *x = in;
    for (size_t i = 0; i < n; i++) {
        s->count++;
        s->sum += x[i];
        s->min = x[i] < s->min ? x[i] : s->min;
        s->max = x[i] > s->max ? x[i] : s->max;
    }
    return 0;
}

static int stats_comb(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    stats_acc *s = acc;
    const stats_acc *o = in;
    if (n != 1)
        return 5;
    s->count += o->count;
    s->sum += o->sum;
    s->min = o->min < s->min ? o->min : s->min;
    s->max = o->max > s->max ? o->max : s->max;
    return 0;
}

typedef int (*aggregate_fn)(ember_ds *, const void *, size_t, ember_combine_fn,
                            ember_combine_fn, void *, void *, char *);

/* An aggregate over the empty dataset e gives zero; each missing argument
 * is EMBER_EINVAL, the message naming `what`. */
static void aggregate_args_checked(aggregate_fn agg, const char *what, ember_ds *e,
                                   const void *zero, size_t size, ember_combine_fn seq,
                                   ember_combine_fn comb)
{
    char msg[EMBER_MSG_SIZE] = "";
    unsigned char got[64];
    assert_true(size <= sizeof got);
    TU_OKM(agg(e, zero, size, seq, comb, NULL, got, msg), msg);
    assert_memory_equal(got, zero, size);
    assert_int_equal(agg(e, NULL, size, seq, comb, NULL, got, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, what);
    assert_int_equal(agg(e, zero, 0, seq, comb, NULL, got, msg), EMBER_EINVAL);
    assert_int_equal(agg(e, zero, size, NULL, comb, NULL, got, msg), EMBER_EINVAL);
    assert_int_equal(agg(e, zero, size, seq, NULL, NULL, got, msg), EMBER_EINVAL);
    assert_int_equal(agg(e, zero, size, seq, comb, NULL, NULL, msg), EMBER_EINVAL);
    assert_int_equal(agg(NULL, zero, size, seq, comb, NULL, got, msg), EMBER_EINVAL);
}

static void test_actions_aggregate(void **state)
{
    (void)state;
    double *v = rand_f64(N_RAND, 7);
    ember_type t = ember_type_scalar(EMBER_F64);
    const stats_acc zero = {0, 0.0, INFINITY, -INFINITY};
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(N_RAND, Ps);
        for (size_t j = 0; j < nP; j++) {
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, N_RAND, Ps[j]);
            stats_acc got;
            TU_OKM(ember_aggregate(a, &zero, sizeof zero, stats_seq, stats_comb,
                                   NULL, &got, msg), msg);
            /* Reference: a fold per partition from zero, then the
             * partition results into zero in partition order. */
            stats_acc ref = zero;
            for (size_t p = 0, off = 0; p < Ps[j]; p++) {
                size_t len = tu_part_len(N_RAND, Ps[j], p);
                stats_acc part = zero;
                stats_seq(&part, v + off, len, NULL);
                stats_comb(&ref, &part, 1, NULL);
                off += len;
            }
            assert_int_equal(got.count, N_RAND);
            assert_memory_equal(&got, &ref, sizeof got);
            ember_ds_free(&a);
        }
        ember_ds *e = array_of(ctx, &t, NULL, 0, 3);
        aggregate_args_checked(ember_aggregate, "aggregate", e, &zero, sizeof zero,
                               stats_seq, stats_comb);
        ember_ds_free(&e);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

/* ember_aggregate_unordered: an exact accumulator (count, sum, xor and
 * maximum of 64-bit integers) over every team size and partitioning is
 * the serial fold's. */
typedef struct {
    uint64_t count, sum, x;
    int64_t max;
} int_acc;

static int int_seq(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    int_acc *s = acc;
    const int64_t *v = in;
    for (size_t i = 0; i < n; i++) {
        s->count++;
        s->sum += (uint64_t)v[i];
        s->x ^= (uint64_t)v[i] * 0x9e3779b97f4a7c15u;
        s->max = v[i] > s->max ? v[i] : s->max;
    }
    return 0;
}

static int int_comb(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    int_acc *s = acc;
    const int_acc *o = in;
    if (n != 1)
        return 5;
    s->count += o->count;
    s->sum += o->sum;
    s->x ^= o->x;
    s->max = o->max > s->max ? o->max : s->max;
    return 0;
}

static int int_comb_fails(void *acc, const void *in, size_t n, void *arg)
{
    (void)acc;
    (void)in;
    (void)n;
    (void)arg;
    return -6;
}

static void test_actions_aggregate_unordered(void **state)
{
    (void)state;
    size_t n = N_RAND;
    int64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)(i * 2654435761u % 1000003) - 500000;
    const int_acc zero = {0, 0, 0, INT64_MIN};
    int_acc ref = zero;
    int_seq(&ref, v, n, NULL);
    ember_type t = ember_type_scalar(EMBER_I64);
    for (size_t k = 0; k < 3; k++) {
        ember_ctx *ctx = tu_ctx(thread_counts[k]);
        size_t Ps[4], nP = part_counts(n, Ps);
        for (size_t j = 0; j < nP; j++) {
            char msg[EMBER_MSG_SIZE];
            ember_ds *a = array_of(ctx, &t, v, n, Ps[j]);
            int_acc got;
            TU_OKM(ember_aggregate_unordered(a, &zero, sizeof zero, int_seq, int_comb,
                                             NULL, &got, msg), msg);
            assert_memory_equal(&got, &ref, sizeof got);
            ember_ds_free(&a);
        }
        ember_ds *e = array_of(ctx, &t, NULL, 0, 3);
        aggregate_args_checked(ember_aggregate_unordered, "aggregate_unordered", e, &zero,
                               sizeof zero, int_seq, int_comb);
        char msg[EMBER_MSG_SIZE] = "";
        int_acc got;
        ember_ds *a = array_of(ctx, &t, v, n, 5);
        assert_int_equal(ember_aggregate_unordered(a, &zero, sizeof zero, int_seq,
                                                   int_comb_fails, NULL, &got, msg),
                         EMBER_EUSER);
        TU_MSG_HAS(msg, "returned -6 combining thread 0");
        ember_ds_free(&a);
        ember_ds_free(&e);
        ember_ctx_destroy(&ctx);
    }
    free(v);
}

static int seq_fails(void *acc, const void *in, size_t n, void *arg)
{
    (void)acc;
    const double *x = in;
    const int *ret = arg;
    for (size_t i = 0; i < n; i++)
        if (x[i] == 750.0)
            return *ret;
    return 0;
}

static int comb_fails(void *acc, const void *in, size_t n, void *arg)
{
    (void)acc;
    (void)in;
    (void)n;
    (void)arg;
    return -5;
}

static int reduce_fails(void *acc, const void *in, size_t n, void *arg)
{
    const int *ret = arg;
    const double *x = in;
    for (size_t i = 0; i < n; i++)
        if (x[i] == 750.0)
            return *ret;
    return add_f64(acc, in, n, NULL);
}

static int to_f64(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    double *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = (double)a[i];
    return 0;
}

/* Failing fold functions: EUSER naming the partition (750 is in
 * partition 7 of 10). */
static void test_actions_user_fold_errors(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(4);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *d = NULL;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 10, msg), msg);
    TU_OKM(ember_map(&d, r, &f64, to_f64, NULL, 0, msg), msg);
    TU_OK(ember_ds_set_name(d, "f64s"));
    int rets[] = {3, -1, -9};
    for (int i = 0; i < 3; i++) {
        double out = 0;
        msg[0] = '\0';
        assert_int_equal(ember_reduce(d, reduce_fails, &rets[i], &out, msg),
                         EMBER_EUSER);
        char want[128];
        snprintf(want, sizeof want,
                 "reduce function of #%llu (f64s) returned %d in partition 7",
                 (unsigned long long)ember_ds_id(d), rets[i]);
        TU_MSG_HAS(msg, want);
        double zero = 0;
        msg[0] = '\0';
        assert_int_equal(ember_aggregate(d, &zero, sizeof zero, seq_fails,
                                         add_f64, &rets[i], &out, msg),
                         EMBER_EUSER);
        snprintf(want, sizeof want,
                 "aggregate seq function of #%llu (f64s) returned %d in partition 7",
                 (unsigned long long)ember_ds_id(d), rets[i]);
        TU_MSG_HAS(msg, want);
    }
    double zero = 0, out = 0;
    assert_int_equal(ember_aggregate(d, &zero, sizeof zero, add_f64, comb_fails,
                                     NULL, &out, msg), EMBER_EUSER);
    TU_MSG_HAS(msg, "aggregate comb function of #");
    TU_MSG_HAS(msg, "(f64s) returned -5 combining partition 0");
    ember_ds_free(&d);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- determinism --------------------------------------------------------------------------------- */

/* f64 results that depend on the order of additions: the same bits at 1,
 * 2 and 4 threads, through set_threads on one context and through separate
 * contexts. */
static void test_actions_results_same_at_1_2_4_threads(void **state)
{
    (void)state;
    size_t n = 1000000;
    double *v = rand_f64(n, 8);
    ember_type t = ember_type_scalar(EMBER_F64);
    double sums[2][3], reds[2][3];
    stats_acc aggs[2][3];
    const stats_acc zero = {0, 0.0, INFINITY, -INFINITY};
    ember_ctx *shared = tu_ctx(1);
    ember_ds *sa = array_of(shared, &t, v, n, 37);
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < 3; k++) {
            char msg[EMBER_MSG_SIZE];
            ember_ctx *ctx = shared;
            ember_ds *a = sa;
            if (mode == 0) {
                TU_OK(ember_ctx_set_threads(shared, thread_counts[k]));
            } else {
                ctx = tu_ctx(thread_counts[k]);
                a = array_of(ctx, &t, v, n, 37);
            }
            TU_OKM(ember_sum(a, &sums[mode][k], msg), msg);
            TU_OKM(ember_reduce(a, add_f64, NULL, &reds[mode][k], msg), msg);
            TU_OKM(ember_aggregate(a, &zero, sizeof zero, stats_seq, stats_comb,
                                   NULL, &aggs[mode][k], msg), msg);
            if (mode == 1) {
                ember_ds_free(&a);
                ember_ctx_destroy(&ctx);
            }
        }
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < 3; k++) {
            assert_memory_equal(&sums[mode][k], &sums[0][0], sizeof(double));
            assert_memory_equal(&reds[mode][k], &reds[0][0], sizeof(double));
            assert_memory_equal(&aggs[mode][k], &aggs[0][0], sizeof(stats_acc));
        }
    ember_ds_free(&sa);
    ember_ctx_destroy(&shared);
    free(v);
}

static void test_actions_null_arguments(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    uint64_t n;
    int64_t out;
    msg[0] = '\0';
    assert_int_equal(ember_count(NULL, &n, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "count");
    assert_int_equal(ember_count(r, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_count(r, NULL, NULL), EMBER_EINVAL);
    assert_int_equal(ember_sum(NULL, &out, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "sum");
    assert_int_equal(ember_sum(r, NULL, msg), EMBER_EINVAL);
    ember_save_opts so = {0, 0};
    assert_int_equal(ember_save_h5(NULL, "x.h5:/a", &so, msg), EMBER_EINVAL);
    assert_int_equal(ember_save_h5(r, NULL, &so, msg), EMBER_EINVAL);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* ---- broadcasts and the memory budget ------------------------------------------- */

static int plus_one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t *b = out;
    for (size_t i = 0; i < n; i++)
        b[i] = a[i] + 1;
    return 0;
}

/* A broadcast's copy is charged against the memory budget, beside the
 * cached blocks, and shows in the stats until its last holder lets go. A
 * view of an array source costs nothing. */
static void test_actions_broadcast_charged(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_rm_rf("scratch");
    assert_int_equal(mkdir("scratch", 0755), 0);
    const size_t budget = 64 * 1024;
    ember_ctx_opts o = {.threads = 2, .scratch_dir = "scratch",
                        .memory_budget = budget};
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember_ds *r = NULL, *c = NULL, *small = NULL, *big = NULL, *arr = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 6000, 1, 6, msg), msg); /* 48000 bytes */
    TU_OKM(ember_map(&c, r, NULL, plus_one, NULL, 0, msg), msg);
    TU_OKM(ember_cache(c, msg), msg);
    uint64_t n = 0;
    TU_OKM(ember_count(c, &n, msg), msg);
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.memory_used, 48000);
    assert_int_equal(st.broadcast_bytes, 0);

    /* 32000 bytes: cached blocks make room */
    TU_OKM(ember_range(&small, ctx, 0, 4000, 1, 2, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, small, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.broadcast_bytes, 32000);
    assert_int_equal(st.live_broadcasts, 1);
    assert_true(st.memory_used + st.broadcast_bytes <= budget);
    assert_true(st.memory_used < 48000);
    assert_true(st.evictions > 0);
    assert_int_equal(st.live_bytes, st.memory_used + st.broadcast_bytes);

    /* a view of an array source is not a copy: nothing charged */
    int64_t v[100] = {0};
    ember_type t = ember_type_scalar(EMBER_I64);
    TU_OKM(ember_from_array(&arr, ctx, &t, v, 100, 1, EMBER_BORROW, msg), msg);
    ember_bcast *view = NULL;
    TU_OKM(ember_broadcast(&view, arr, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.broadcast_bytes, 32000);
    assert_int_equal(st.live_broadcasts, 2);
    ember_bcast_free(&view);

    /* new blocks get only what the broadcast leaves */
    TU_OKM(ember_count(c, &n, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_true(st.memory_used + st.broadcast_bytes <= budget);

    /* freed: the budget is whole again */
    ember_bcast_free(&bc);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.broadcast_bytes, 0);
    assert_int_equal(st.live_broadcasts, 0);
    TU_OKM(ember_count(c, &n, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.memory_used, 48000);

    /* larger than the budget: it exists, so it is counted, over budget,
     * and everything evictable made room */
    TU_OKM(ember_range(&big, ctx, 0, 10000, 1, 2, msg), msg); /* 80000 */
    TU_OKM(ember_broadcast(&bc, big, msg), msg);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.broadcast_bytes, 80000);
    assert_int_equal(st.memory_used, 0);
    ember_bcast_free(&bc);

    ember_ds_free(&arr);
    ember_ds_free(&big);
    ember_ds_free(&small);
    ember_ds_free(&c);
    ember_ds_free(&r);
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.broadcast_bytes, 0);
    assert_int_equal(st.live_datasets, 0);
    assert_int_equal(st.memory_used, 0);
    ember_ctx_destroy(&ctx);
}

/* Keeps the values below *arg. */
static int below(const void *in, unsigned char *keep, size_t n, void *arg)
{
    const int64_t *v = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = v[i] < *(const int64_t *)arg;
    return 0;
}

/* An action's per-partition state that cannot be allocated (2^32
 * partitions: 32 GiB of counts) says so and names the partitions, not
 * a bare "out of memory". The allocator fails the action's first call. */
static void test_actions_partitions_out_of_memory(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter cnt;
    tu_counter_reset(&cnt, 0);
    ember_allocator al = tu_allocator(&cnt);
    ember_ctx_opts o = {.threads = 1, .allocator = &al};
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 1000, msg), msg);
    uint64_t n = 0;
    int64_t sum = 0;
    for (int k = 0; k < 2; k++) {
        tu_counter_reset(&cnt, 1);
        int rc = k ? ember_sum(r, &sum, msg) : ember_count(r, &n, msg);
        assert_int_equal(rc, EMBER_ENOMEM);
        TU_MSG_HAS(msg, "out of memory for the state of dataset #");
        TU_MSG_HAS(msg, "'s 1000 partitions (a partition is a task: ask for fewer)");
    }
    tu_counter_reset(&cnt, 0);
    TU_OKM(ember_count(r, &n, msg), msg);
    assert_int_equal(n, 10);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* Collecting a dataset cached in memory reads its stored blocks where they
 * lie (one hit a partition, nothing computed, no copy but the result);
 * with a block missing it is computed as before. Either way the records,
 * the counts and the errors are those of a dataset that is not cached,
 * uneven and empty partitions included. */
static void test_actions_collect_cached_blocks(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    for (size_t ti = 0; ti < sizeof thread_counts / sizeof *thread_counts; ti++) {
        tu_counter cnt;
        tu_counter_reset(&cnt, 0);
        ember_allocator al = tu_allocator(&cnt);
        ember_ctx_opts o = {.threads = thread_counts[ti], .allocator = &al};
        ember_ctx *ctx = tu_ctx_opts(&o);
        int64_t cut = 7000; /* partitions of 1429 or 1428 records: 4 full, 1 partial, 2 empty */
        ember_ds *r = NULL, *f = NULL, *plain = NULL;
        TU_OKM(ember_range(&r, ctx, 0, 10000, 1, 7, msg), msg);
        TU_OKM(ember_filter(&f, r, below, &cut, sizeof cut, msg), msg);
        TU_OKM(ember_filter(&plain, r, below, &cut, sizeof cut, msg), msg);
        TU_OKM(ember_cache(f, msg), msg);
        uint64_t n = 0;
        TU_OKM(ember_count(f, &n, msg), msg); /* computes and stores */
        assert_int_equal(n, 7000);
        int64_t *want = NULL, *got = NULL;
        size_t nw = 0, ng = 0;
        TU_OKM(ember_collect_alloc(plain, (void **)&want, &nw, msg), msg);
        assert_int_equal(nw, 7000);

        ember_stats a, b;
        ember_ctx_stats(ctx, &a);
        long long base = atomic_load(&cnt.live_bytes);
        atomic_store(&cnt.peak_bytes, base);
        TU_OKM(ember_collect_alloc(f, (void **)&got, &ng, msg), msg);
        ember_ctx_stats(ctx, &b);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, nw * sizeof *got);
        assert_int_equal(b.cache_hits - a.cache_hits, 7);
        assert_int_equal(b.recomputes, a.recomputes);
        /* the result and a few bytes a partition; not a second copy */
        assert_true(atomic_load(&cnt.peak_bytes) - base < (long long)(nw * sizeof *got) + 4096);
        ember_free(ctx, got);

        int64_t buf[7000];
        size_t nb = 0;
        TU_OKM(ember_collect(f, buf, 7000, &nb, msg), msg);
        assert_int_equal(nb, 7000);
        assert_memory_equal(buf, want, sizeof buf);
        assert_int_equal(ember_collect(f, buf, 6999, &nb, msg), EMBER_ERANGE);
        assert_int_equal(nb, 7000);
        assert_non_null(strstr(msg, "7000 records"));

        ember_bcast *bc = NULL;
        TU_OKM(ember_broadcast(&bc, f, msg), msg);
        size_t nbc = 0;
        const int64_t *d = ember_bcast_data(bc, &nbc);
        assert_int_equal(nbc, 7000);
        assert_memory_equal(d, want, nw * sizeof *d);
        ember_bcast_free(&bc);

        /* a block gone: that partition is computed again, the others read */
        ember__store_drop_part(ctx, f->id, 2);
        ember_ctx_stats(ctx, &a);
        TU_OKM(ember_collect_alloc(f, (void **)&got, &ng, msg), msg);
        ember_ctx_stats(ctx, &b);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, nw * sizeof *got);
        assert_int_equal(b.cache_hits - a.cache_hits, 6);
        assert_int_equal(ember__store_count(ctx, f->id), 7); /* stored again */
        ember_free(ctx, got);
        ember_free(ctx, want);
        ember_ds_free(&plain);
        ember_ds_free(&f);
        ember_ds_free(&r);
        ember_ctx_destroy(&ctx);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actions_count_matches_reference),
        cmocka_unit_test(test_actions_reduce_folds_in_order),
        cmocka_unit_test(test_actions_reduce_empty_and_bad_args),
        cmocka_unit_test(test_actions_sum_struct_fields),
        cmocka_unit_test(test_actions_sum_wide_records),
        cmocka_unit_test(test_actions_collect_caller_buffer),
        cmocka_unit_test(test_actions_collect_alloc),
        cmocka_unit_test(test_actions_take),
        cmocka_unit_test(test_actions_take_ignores_failures_past_n),
        cmocka_unit_test(test_actions_foreach),
        cmocka_unit_test(test_actions_aggregate),
        cmocka_unit_test(test_actions_aggregate_unordered),
        cmocka_unit_test(test_actions_user_fold_errors),
        cmocka_unit_test(test_actions_results_same_at_1_2_4_threads),
        cmocka_unit_test(test_actions_null_arguments),
        cmocka_unit_test(test_actions_broadcast_charged),
        cmocka_unit_test(test_actions_collect_cached_blocks),
        cmocka_unit_test(test_actions_partitions_out_of_memory),
        cmocka_unit_test(test_actions_inside_user_function_refused),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
