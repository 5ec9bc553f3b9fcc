/* test_type.c: record types: scalar sizes and names, layouts that match the
 * C structs one would write, struct validation (every rejection has a
 * message), equality, descriptions, and the key order and hash that the
 * shuffles rely on (-0.0 equal to 0.0, NaN last, hash agreeing with
 * equality), plus the concatenated types of zip and join.
 */
#include "internal.h"
#include "testutil.h"

#include <math.h>
#include <signal.h>
#include <unistd.h>

static ember_field fld(const char *name, ember_scalar kind, uint32_t count)
{
    ember_field f;
    memset(&f, 0, sizeof f);
    snprintf(f.name, sizeof f.name, "%s", name);
    f.kind = kind;
    f.count = count;
    return f;
}

static void test_type_scalar_sizes_and_names(void **state)
{
    (void)state;
    assert_int_equal(ember_scalar_size(EMBER_I32), 4);
    assert_int_equal(ember_scalar_size(EMBER_I64), 8);
    assert_int_equal(ember_scalar_size(EMBER_U64), 8);
    assert_int_equal(ember_scalar_size(EMBER_F32), 4);
    assert_int_equal(ember_scalar_size(EMBER_F64), 8);
    assert_int_equal(ember_scalar_size((ember_scalar)0), 0);
    assert_int_equal(ember_scalar_size((ember_scalar)99), 0);
    assert_string_equal(ember_scalar_name(EMBER_I32), "i32");
    assert_string_equal(ember_scalar_name(EMBER_I64), "i64");
    assert_string_equal(ember_scalar_name(EMBER_U64), "u64");
    assert_string_equal(ember_scalar_name(EMBER_F32), "f32");
    assert_string_equal(ember_scalar_name(EMBER_F64), "f64");
    assert_string_equal(ember_scalar_name((ember_scalar)42), "?");
}

static void test_type_scalar_and_pair_layout(void **state)
{
    (void)state;
    ember_type t = ember_type_scalar(EMBER_F32);
    assert_int_equal(t.cls, EMBER_TYPE_SCALAR);
    assert_int_equal(t.nfields, 1);
    assert_int_equal(t.size, 4);
    assert_string_equal(t.field[0].name, "value");

    struct kv1 { int32_t k; double v; };
    t = ember_type_pair(EMBER_I32, EMBER_F64);
    assert_int_equal(t.cls, EMBER_TYPE_PAIR);
    assert_string_equal(t.field[0].name, "key");
    assert_string_equal(t.field[1].name, "value");
    assert_int_equal(t.size, sizeof(struct kv1));
    assert_int_equal(t.field[1].offset, offsetof(struct kv1, v));
    assert_int_equal(t.align, 8);

    struct kv2 { int64_t k; float v; };
    t = ember_type_pair(EMBER_I64, EMBER_F32);
    assert_int_equal(t.size, sizeof(struct kv2));
    assert_int_equal(t.field[1].offset, offsetof(struct kv2, v));

    /* A bad kind gives a type of size 0, which every constructor refuses. */
    t = ember_type_scalar((ember_scalar)17);
    assert_int_equal(t.size, 0);
    t = ember_type_pair(EMBER_I64, (ember_scalar)17);
    assert_int_equal(t.size, 0);
}

static void test_type_struct_layout_matches_c(void **state)
{
    (void)state;
    struct rec {
        int32_t id;
        double x[3];
        float w;
        uint64_t tag;
        int32_t small[5];
    };
    ember_field f[] = {fld("id", EMBER_I32, 1), fld("x", EMBER_F64, 3),
                       fld("w", EMBER_F32, 0), fld("tag", EMBER_U64, 1),
                       fld("small", EMBER_I32, 5)};
    ember_type t;
    char msg[EMBER_MSG_SIZE] = "junk";
    TU_OKM(ember_type_struct(&t, f, 5, msg), msg);
    assert_string_equal(msg, "");
    assert_int_equal(t.cls, EMBER_TYPE_STRUCT);
    assert_int_equal(t.nfields, 5);
    assert_int_equal(t.size, sizeof(struct rec));
    assert_int_equal(t.align, 8);
    assert_int_equal(t.field[0].offset, offsetof(struct rec, id));
    assert_int_equal(t.field[1].offset, offsetof(struct rec, x));
    assert_int_equal(t.field[2].offset, offsetof(struct rec, w));
    assert_int_equal(t.field[2].count, 1); /* 0 is taken as 1 */
    assert_int_equal(t.field[3].offset, offsetof(struct rec, tag));
    assert_int_equal(t.field[4].offset, offsetof(struct rec, small));

    /* All 4-byte fields: aligned to 4, no padding to 8. */
    struct r4 { int32_t a; float b; int32_t c; };
    ember_field g[] = {fld("a", EMBER_I32, 1), fld("b", EMBER_F32, 1),
                       fld("c", EMBER_I32, 1)};
    TU_OKM(ember_type_struct(&t, g, 3, msg), msg);
    assert_int_equal(t.size, sizeof(struct r4));
    assert_int_equal(t.align, 4);

    /* EMBER_MAX_FIELDS fields is allowed. */
    ember_field many[EMBER_MAX_FIELDS];
    for (int i = 0; i < EMBER_MAX_FIELDS; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        many[i] = fld(name, EMBER_F64, 1);
    }
    TU_OKM(ember_type_struct(&t, many, EMBER_MAX_FIELDS, msg), msg);
    assert_int_equal(t.size, 8 * EMBER_MAX_FIELDS);
}

/* Each bad struct is EINVAL with a message naming the problem. */
static void expect_bad_struct(const ember_field *f, size_t n, const char *part)
{
    ember_type t;
    memset(&t, 0x5a, sizeof t);
    ember_type before = t;
    char msg[EMBER_MSG_SIZE] = "";
    assert_int_equal(ember_type_struct(&t, f, n, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, part);
    assert_memory_equal(&t, &before, sizeof t); /* out untouched */
    /* A NULL msg is allowed. */
    assert_int_equal(ember_type_struct(&t, f, n, NULL), EMBER_EINVAL);
}

static void test_type_struct_rejects_bad_fields(void **state)
{
    (void)state;
    ember_field dup[] = {fld("a", EMBER_I64, 1), fld("b", EMBER_F64, 1),
                         fld("a", EMBER_F64, 1)};
    expect_bad_struct(dup, 3, "duplicate field name 'a'");

    ember_field empty[] = {fld("a", EMBER_I64, 1), fld("", EMBER_F64, 1)};
    expect_bad_struct(empty, 2, "name");

    ember_field unterminated[1];
    memset(unterminated, 'x', sizeof unterminated[0].name);
    unterminated[0].kind = EMBER_I64;
    unterminated[0].count = 1;
    expect_bad_struct(unterminated, 1, "longer than");

    ember_field kind[] = {fld("a", EMBER_I64, 1), fld("b", (ember_scalar)9, 1)};
    expect_bad_struct(kind, 2, "unknown kind");

    ember_field big[] = {fld("a", EMBER_F64, 65537)};
    expect_bad_struct(big, 1, "too long");

    ember_field one[] = {fld("a", EMBER_F64, 1)};
    expect_bad_struct(one, 0, "fields");
    ember_field many[EMBER_MAX_FIELDS + 1];
    for (int i = 0; i <= EMBER_MAX_FIELDS; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        many[i] = fld(name, EMBER_F64, 1);
    }
    expect_bad_struct(many, EMBER_MAX_FIELDS + 1, "fields");

    char msg[EMBER_MSG_SIZE];
    ember_type t;
    assert_int_equal(ember_type_struct(NULL, one, 1, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
    assert_int_equal(ember_type_struct(&t, NULL, 1, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "NULL");
}

static void test_type_equal(void **state)
{
    (void)state;
    ember_type a = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_type b = ember_type_pair(EMBER_I64, EMBER_F64);
    assert_true(ember_type_equal(&a, &b));
    b = ember_type_pair(EMBER_I64, EMBER_I64);
    assert_false(ember_type_equal(&a, &b));
    b = ember_type_pair(EMBER_U64, EMBER_F64);
    assert_false(ember_type_equal(&a, &b));

    ember_type s1, s2;
    char msg[EMBER_MSG_SIZE];
    ember_field f1[] = {fld("key", EMBER_I64, 1), fld("value", EMBER_F64, 1)};
    TU_OKM(ember_type_struct(&s1, f1, 2, msg), msg);
    assert_true(ember_type_equal(&a, &s1)); /* same fields and layout */
    ember_field f2[] = {fld("key", EMBER_I64, 1), fld("val", EMBER_F64, 1)};
    TU_OKM(ember_type_struct(&s2, f2, 2, msg), msg);
    assert_false(ember_type_equal(&s1, &s2)); /* a name differs */
    ember_field f3[] = {fld("key", EMBER_I64, 1), fld("value", EMBER_F64, 2)};
    TU_OKM(ember_type_struct(&s2, f3, 2, msg), msg);
    assert_false(ember_type_equal(&s1, &s2)); /* a count differs */
    ember_type sc = ember_type_scalar(EMBER_I64);
    assert_false(ember_type_equal(&a, &sc));
}

static void test_type_describe(void **state)
{
    (void)state;
    char buf[256];
    ember_type t = ember_type_scalar(EMBER_F64);
    ember_type_describe(&t, buf, sizeof buf);
    assert_string_equal(buf, "f64");
    t = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_type_describe(&t, buf, sizeof buf);
    assert_string_equal(buf, "{key: i64, value: f64}");
    ember_field f[] = {fld("id", EMBER_I32, 1), fld("p", EMBER_F64, 16)};
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 2, msg), msg);
    ember_type_describe(&t, buf, sizeof buf);
    assert_string_equal(buf, "{id: i32, p: f64[16]}");

    /* Small buffers are always terminated, never overrun. */
    for (size_t size = 1; size < 24; size++) {
        char small[32];
        memset(small, '#', sizeof small);
        ember_type_describe(&t, small, size);
        assert_true(strlen(small) < size);
        assert_int_equal(small[size], '#');
        assert_memory_equal(small, "{id: i32, p: f64[16]}", strlen(small));
    }
    buf[0] = 'z';
    ember_type_describe(&t, buf, 0); /* size 0: nothing written */
    assert_int_equal(buf[0], 'z');
}

static void test_type_key_compare_integers(void **state)
{
    (void)state;
    ember_type t = ember_type_pair(EMBER_I32, EMBER_I32);
    int32_t a[2] = {-5, 0}, b[2] = {3, 0}, c[2] = {-5, 99};
    assert_true(ember__key_cmp(&t, a, b) < 0);
    assert_true(ember__key_cmp(&t, b, a) > 0);
    assert_int_equal(ember__key_cmp(&t, a, c), 0); /* only the key counts */
    assert_int_equal(ember__key_hash(&t, a), ember__key_hash(&t, c));

    ember_type u = ember_type_scalar(EMBER_U64);
    uint64_t x = UINT64_MAX, y = 1;
    assert_true(ember__key_cmp(&u, &x, &y) > 0); /* unsigned, not signed */

    ember_type s = ember_type_scalar(EMBER_I64);
    int64_t p = INT64_MIN, q = INT64_MAX;
    assert_true(ember__key_cmp(&s, &p, &q) < 0);
    assert_true(ember__key_cmp(&s, &q, &p) > 0);
    assert_int_equal(ember__key_cmp(&s, &p, &p), 0);
}

static void test_type_key_compare_floats(void **state)
{
    (void)state;
    ember_type t = ember_type_scalar(EMBER_F64);
    double pz = 0.0, nz = -0.0, one = 1.0, minf = -INFINITY, pinf = INFINITY;
    double nan1 = NAN, nan2 = -NAN;
    uint64_t bits;
    memcpy(&bits, &nan1, 8);
    bits ^= 1; /* another payload */
    double nan3;
    memcpy(&nan3, &bits, 8);
    assert_true(isnan(nan3));

    assert_int_equal(ember__key_cmp(&t, &pz, &nz), 0);
    assert_int_equal(ember__key_hash(&t, &pz), ember__key_hash(&t, &nz));
    assert_true(ember__key_cmp(&t, &minf, &nz) < 0);
    assert_true(ember__key_cmp(&t, &one, &pinf) < 0);
    /* NaN after everything, +inf included; NaNs equal each other. */
    assert_true(ember__key_cmp(&t, &pinf, &nan1) < 0);
    assert_true(ember__key_cmp(&t, &nan1, &pinf) > 0);
    assert_int_equal(ember__key_cmp(&t, &nan1, &nan2), 0);
    assert_int_equal(ember__key_cmp(&t, &nan1, &nan3), 0);
    assert_int_equal(ember__key_hash(&t, &nan1), ember__key_hash(&t, &nan2));
    assert_int_equal(ember__key_hash(&t, &nan1), ember__key_hash(&t, &nan3));
    assert_true(ember__key_hash(&t, &one) != ember__key_hash(&t, &pz));

    ember_type f = ember_type_pair(EMBER_F32, EMBER_I32);
    struct { float k; int32_t v; } a = {-0.0f, 1}, b = {0.0f, 2}, c = {NAN, 3},
                                    d = {1e30f, 4};
    assert_int_equal(ember__key_cmp(&f, &a, &b), 0);
    assert_int_equal(ember__key_hash(&f, &a), ember__key_hash(&f, &b));
    assert_true(ember__key_cmp(&f, &d, &c) < 0);
    assert_true(ember__key_cmp(&f, &b, &d) < 0);
}

static void test_type_key_array_rejected(void **state)
{
    (void)state;
    ember_field f[] = {fld("k", EMBER_I64, 2), fld("v", EMBER_F64, 1)};
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 2, msg), msg);
    assert_int_equal(ember__type_check_key(&t, "op", msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "'k'");
    ember_type ok = ember_type_pair(EMBER_I64, EMBER_F64);
    assert_int_equal(ember__type_check_key(&ok, "op", msg), EMBER_OK);
}

static void test_type_concat_names(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_type out;
    /* Two scalars make a pair. */
    ember_type a = ember_type_scalar(EMBER_I64), b = ember_type_scalar(EMBER_F32);
    TU_OKM(ember__type_concat(&out, &a, &b, 0, msg), msg);
    assert_int_equal(out.cls, EMBER_TYPE_PAIR);
    ember_type pair = ember_type_pair(EMBER_I64, EMBER_F32);
    assert_true(ember_type_equal(&out, &pair));

    /* Clashing names get "_2"; a name that clashes again is renamed again. */
    ember_field fa[] = {fld("v", EMBER_I64, 1), fld("v_2", EMBER_F64, 1)};
    ember_field fb[] = {fld("v", EMBER_I32, 1), fld("w", EMBER_F64, 4)};
    ember_type ta, tb;
    TU_OKM(ember_type_struct(&ta, fa, 2, msg), msg);
    TU_OKM(ember_type_struct(&tb, fb, 2, msg), msg);
    TU_OKM(ember__type_concat(&out, &ta, &tb, 0, msg), msg);
    assert_int_equal(out.nfields, 4);
    assert_string_equal(out.field[0].name, "v");
    assert_string_equal(out.field[1].name, "v_2");
    assert_string_not_equal(out.field[2].name, "v");
    assert_string_not_equal(out.field[2].name, "v_2");
    assert_string_equal(out.field[3].name, "w");
    assert_int_equal(out.field[3].count, 4);

    /* Join drops b's key. */
    TU_OKM(ember__type_concat(&out, &ta, &tb, 1, msg), msg);
    assert_int_equal(out.nfields, 3);
    assert_string_equal(out.field[2].name, "w");

    /* Too many fields. */
    ember_field many[20];
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        many[i] = fld(name, EMBER_F64, 1);
    }
    TU_OKM(ember_type_struct(&ta, many, 20, msg), msg);
    assert_int_equal(ember__type_concat(&out, &ta, &ta, 0, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "fields");
}

static void test_type_null_arguments(void **state)
{
    (void)state;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    assert_false(ember_type_equal(NULL, &t));
    assert_false(ember_type_equal(&t, NULL));
    assert_false(ember_type_equal(NULL, NULL));
    char buf[16];
    memset(buf, 'x', sizeof buf);
    ember_type_describe(NULL, buf, sizeof buf);
    assert_true(memchr(buf, '\0', sizeof buf) != NULL); /* terminated */
    ember_type_describe(&t, NULL, 10);                  /* nothing to do */
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "type_concat did not finish: endless renaming\n";
    if (write(2, m, sizeof m - 1) < 0)
        _exit(3);
    _exit(2);
}

/* Renaming must terminate and give unique names even when the "_2" name
 * is cut short to fit EMBER_NAME_SIZE and lands on an existing name. */
static void test_type_concat_long_names_terminate(void **state)
{
    (void)state;
    char x[EMBER_NAME_SIZE];  /* 31 characters */
    memset(x, 'x', sizeof x - 1);
    x[sizeof x - 1] = '\0';
    char x2[EMBER_NAME_SIZE]; /* what "_2" makes of it: 28 x's then _2 */
    snprintf(x2, sizeof x2, "%.28s_2", x);
    ember_field fa[] = {fld(x, EMBER_I64, 1), fld(x2, EMBER_I64, 1)};
    ember_field fb[] = {fld(x, EMBER_F64, 1), fld(x2, EMBER_F64, 1)};
    ember_type ta, tb, out;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&ta, fa, 2, msg), msg);
    TU_OKM(ember_type_struct(&tb, fb, 2, msg), msg);
    signal(SIGALRM, on_alarm);
    alarm(10);
    int rc = ember__type_concat(&out, &ta, &tb, 0, msg);
    alarm(0);
    TU_OKM(rc, msg);
    assert_int_equal(out.nfields, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_true(out.field[i].name[0] != '\0');
        for (uint32_t j = 0; j < i; j++)
            assert_string_not_equal(out.field[i].name, out.field[j].name);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_scalar_sizes_and_names),
        cmocka_unit_test(test_type_scalar_and_pair_layout),
        cmocka_unit_test(test_type_struct_layout_matches_c),
        cmocka_unit_test(test_type_struct_rejects_bad_fields),
        cmocka_unit_test(test_type_equal),
        cmocka_unit_test(test_type_describe),
        cmocka_unit_test(test_type_key_compare_integers),
        cmocka_unit_test(test_type_key_compare_floats),
        cmocka_unit_test(test_type_key_array_rejected),
        cmocka_unit_test(test_type_null_arguments),
        cmocka_unit_test(test_type_concat_names),
        cmocka_unit_test(test_type_concat_long_names_terminate),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
