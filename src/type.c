/* type.c: record types, their layout, and key comparison and hashing.
 *
 * A type's layout is C's natural alignment: each field at the next multiple
 * of its scalar size, the record padded to its largest alignment. So a type
 * built from {i64 key; f64 value} is byte-for-byte the C struct. Keys are
 * field 0; comparison treats -0.0 as 0.0 and puts NaN last so sorting and
 * grouping are total orders, and hashing agrees with that equality.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t ember_scalar_size(ember_scalar s)
{
    switch (s) {
    case EMBER_I32:
    case EMBER_F32:
        return 4;
    case EMBER_I64:
    case EMBER_U64:
    case EMBER_F64:
        return 8;
    }
    return 0;
}

const char *ember_scalar_name(ember_scalar s)
{
    switch (s) {
    case EMBER_I32: return "i32";
    case EMBER_I64: return "i64";
    case EMBER_U64: return "u64";
    case EMBER_F32: return "f32";
    case EMBER_F64: return "f64";
    }
    return "?";
}

/* Lays out fields[0..n) in place; returns 0 or a message-filled error. */
static int layout(ember_type *t, char *msg)
{
    uint32_t off = 0, align = 1;
    for (uint32_t i = 0; i < t->nfields; i++) {
        ember_field *f = &t->field[i];
        size_t sz = ember_scalar_size(f->kind);
        if (!sz)
            return ember__err(msg, EMBER_EINVAL, "field %u ('%s'): unknown kind %d",
                              i, f->name, (int)f->kind);
        if (f->count == 0)
            f->count = 1;
        if (f->count > 65536)
            return ember__err(msg, EMBER_EINVAL,
                              "field '%s': array of %u is too long (max 65536)",
                              f->name, f->count);
        if (!f->name[0] || memchr(f->name, '\0', EMBER_NAME_SIZE) == NULL)
            return ember__err(msg, EMBER_EINVAL,
                              "field %u: name empty or longer than %d bytes",
                              i, EMBER_NAME_SIZE - 1);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(t->field[j].name, f->name) == 0)
                return ember__err(msg, EMBER_EINVAL, "duplicate field name '%s'",
                                  f->name);
        off = (uint32_t)((off + sz - 1) / sz * sz);
        f->offset = off;
        off += (uint32_t)(sz * f->count);
        if (sz > align)
            align = (uint32_t)sz;
    }
    t->align = align;
    t->size = (off + align - 1) / align * align;
    return EMBER_OK;
}

static void set_field(ember_field *f, const char *name, ember_scalar kind)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->kind = kind;
    f->count = 1;
}

ember_type ember_type_scalar(ember_scalar s)
{
    ember_type t;
    memset(&t, 0, sizeof t);
    t.cls = EMBER_TYPE_SCALAR;
    t.nfields = 1;
    set_field(&t.field[0], "value", s);
    if (layout(&t, NULL) != EMBER_OK)
        t.size = 0;
    return t;
}

ember_type ember_type_pair(ember_scalar key, ember_scalar value)
{
    ember_type t;
    memset(&t, 0, sizeof t);
    t.cls = EMBER_TYPE_PAIR;
    t.nfields = 2;
    set_field(&t.field[0], "key", key);
    set_field(&t.field[1], "value", value);
    if (layout(&t, NULL) != EMBER_OK)
        t.size = 0;
    return t;
}

int ember_type_struct(ember_type *out, const ember_field *fields, size_t n,
                      char *msg)
{
    ember__msg_clear(msg);
    if (!out || (!fields && n))
        return ember__err(msg, EMBER_EINVAL, "ember_type_struct: NULL argument");
    if (n == 0 || n > EMBER_MAX_FIELDS)
        return ember__err(msg, EMBER_EINVAL,
                          "ember_type_struct: %zu fields (1 to %d allowed)", n,
                          EMBER_MAX_FIELDS);
    ember_type t;
    memset(&t, 0, sizeof t);
    t.cls = EMBER_TYPE_STRUCT;
    t.nfields = (uint32_t)n;
    memcpy(t.field, fields, n * sizeof *fields);
    int rc = layout(&t, msg);
    if (rc)
        return rc;
    *out = t;
    return EMBER_OK;
}

int ember_type_equal(const ember_type *a, const ember_type *b)
{
    if (!a || !b || a->nfields != b->nfields || a->size != b->size)
        return 0;
    for (uint32_t i = 0; i < a->nfields; i++) {
        const ember_field *x = &a->field[i], *y = &b->field[i];
        if (x->kind != y->kind || x->count != y->count ||
            x->offset != y->offset || strcmp(x->name, y->name) != 0)
            return 0;
    }
    return 1;
}

void ember_type_describe(const ember_type *t, char *buf, size_t size)
{
    if (!buf || !size)
        return;
    buf[0] = '\0';
    if (!t)
        return;
    if (t->cls == EMBER_TYPE_SCALAR) {
        snprintf(buf, size, "%s", ember_scalar_name(t->field[0].kind));
        return;
    }
    size_t used = 0;
    for (uint32_t i = 0; i < t->nfields && used < size; i++) {
        const ember_field *f = &t->field[i];
        int w = f->count > 1
                    ? snprintf(buf + used, size - used, "%s%s: %s[%u]",
                               i ? ", " : "{", f->name,
                               ember_scalar_name(f->kind), f->count)
                    : snprintf(buf + used, size - used, "%s%s: %s",
                               i ? ", " : "{", f->name,
                               ember_scalar_name(f->kind));
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < size)
        snprintf(buf + used, size - used, "}");
}

int ember__type_ok(const ember_type *t)
{
    if (t->cls < EMBER_TYPE_SCALAR || t->cls > EMBER_TYPE_STRUCT ||
        t->nfields < 1 || t->nfields > EMBER_MAX_FIELDS || t->size == 0)
        return 0;
    for (uint32_t i = 0; i < t->nfields; i++) {
        const ember_field *f = &t->field[i];
        size_t sz = ember_scalar_size(f->kind);
        uint64_t end = f->offset + (uint64_t)sz * (f->count ? f->count : 1);
        if (!sz || end > t->size || !memchr(f->name, '\0', EMBER_NAME_SIZE))
            return 0;
    }
    return 1;
}

int ember__type_check_key(const ember_type *t, const char *op, char *msg)
{
    if (t->field[0].count != 1)
        return ember__err(msg, EMBER_ETYPE,
                          "%s: key field '%s' is an array; keys must be scalars",
                          op, t->field[0].name);
    return EMBER_OK;
}

static double key_f64(const ember_type *t, const void *rec)
{
    const unsigned char *p = (const unsigned char *)rec + t->field[0].offset;
    if (t->field[0].kind == EMBER_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
}

int ember__key_cmp(const ember_type *t, const void *a, const void *b)
{
    const unsigned char *pa = (const unsigned char *)a + t->field[0].offset;
    const unsigned char *pb = (const unsigned char *)b + t->field[0].offset;
    switch (t->field[0].kind) {
    case EMBER_I32: {
        int32_t x, y;
        memcpy(&x, pa, 4);
        memcpy(&y, pb, 4);
        return (x > y) - (x < y);
    }
    case EMBER_I64: {
        int64_t x, y;
        memcpy(&x, pa, 8);
        memcpy(&y, pb, 8);
        return (x > y) - (x < y);
    }
    case EMBER_U64: {
        uint64_t x, y;
        memcpy(&x, pa, 8);
        memcpy(&y, pb, 8);
        return (x > y) - (x < y);
    }
    case EMBER_F32:
    case EMBER_F64: {
        double x = key_f64(t, a), y = key_f64(t, b);
        int nx = isnan(x), ny = isnan(y);
        if (nx || ny)
            return nx - ny;
        return (x > y) - (x < y);
    }
    }
    return 0;
}

uint64_t ember__key_order(const ember_type *t, const void *rec)
{
    const unsigned char *p = (const unsigned char *)rec + t->field[0].offset;
    const uint64_t top = (uint64_t)1 << 63;
    switch (t->field[0].kind) {
    case EMBER_I32: {
        int32_t x;
        memcpy(&x, p, 4);
        return (uint64_t)(int64_t)x ^ top;
    }
    case EMBER_I64: {
        int64_t x;
        memcpy(&x, p, 8);
        return (uint64_t)x ^ top;
    }
    case EMBER_U64: {
        uint64_t x;
        memcpy(&x, p, 8);
        return x;
    }
    case EMBER_F32:
    case EMBER_F64: {
        double x = key_f64(t, rec);
        if (isnan(x))
            return UINT64_MAX; /* above +inf's image: NaN is the largest */
        x = x == 0 ? 0.0 : x;  /* -0.0 as 0.0 */
        uint64_t b;
        memcpy(&b, &x, 8);
        return b & top ? ~b : b | top; /* negatives reversed, below positives */
    }
    }
    return 0;
}

void ember__key_orders(const ember_type *t, const void *recs, size_t n,
                       uint64_t *out)
{
    if (n == 0) /* recs may be NULL */
        return;
    const unsigned char *p = (const unsigned char *)recs + t->field[0].offset;
    const uint64_t top = (uint64_t)1 << 63;
    switch (t->field[0].kind) {
    case EMBER_I64:
    case EMBER_U64: {
        const uint64_t flip = t->field[0].kind == EMBER_I64 ? top : 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t x;
            memcpy(&x, p + i * t->size, 8);
            out[i] = x ^ flip;
        }
        return;
    }
    default:
        for (size_t i = 0; i < n; i++)
            out[i] = ember__key_order(t, (const unsigned char *)recs + i * t->size);
    }
}

uint64_t ember__key_hash(const ember_type *t, const void *rec)
{
    const unsigned char *p = (const unsigned char *)rec + t->field[0].offset;
    uint64_t bits = 0;
    switch (t->field[0].kind) {
    case EMBER_I32: {
        int32_t x;
        memcpy(&x, p, 4);
        bits = (uint64_t)(int64_t)x;
        break;
    }
    case EMBER_I64:
    case EMBER_U64:
        memcpy(&bits, p, 8);
        break;
    case EMBER_F32:
    case EMBER_F64: {
        double d = key_f64(t, rec);
        if (d == 0.0)
            d = 0.0; /* -0.0 hashes as 0.0 */
        if (isnan(d))
            d = NAN;
        memcpy(&bits, &d, 8);
        break;
    }
    }
    return ember__hash64(bits);
}

void ember__key_hashes(const ember_type *t, const void *recs, size_t n,
                       uint64_t *out)
{
    if (n == 0) /* recs may be NULL */
        return;
    const unsigned char *p = (const unsigned char *)recs + t->field[0].offset;
    if (t->field[0].kind == EMBER_I64 || t->field[0].kind == EMBER_U64) {
        for (size_t i = 0; i < n; i++) {
            uint64_t x;
            memcpy(&x, p + i * t->size, 8);
            out[i] = ember__hash64(x);
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = ember__key_hash(t, (const unsigned char *)recs + i * t->size);
}

static int name_taken(const char *name, const ember_field *f, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (strcmp(f[j].name, name) == 0)
            return 1;
    return 0;
}

/* Renames g until no field of f[0..n) has its name: "name_2", "name_3", ...
 * The name is cut short to fit; candidates differ in suffix or length, so
 * at most n + 1 are tried. (Appending "_2" to the new name again loops
 * forever once the cut lands on an existing name.) */
static void unique_name(ember_field *g, const ember_field *f, size_t n)
{
    char base[EMBER_NAME_SIZE];
    memcpy(base, g->name, sizeof base);
    for (unsigned k = 2; name_taken(g->name, f, n); k++) {
        char suffix[16];
        int w = snprintf(suffix, sizeof suffix, "_%u", k);
        snprintf(g->name, EMBER_NAME_SIZE, "%.*s%s", EMBER_NAME_SIZE - 1 - w,
                 base, suffix);
    }
}

int ember__type_concat(ember_type *out, const ember_type *a,
                       const ember_type *b, int skip_b_key, char *msg)
{
    ember_field f[EMBER_MAX_FIELDS];
    size_t n = 0;
    uint32_t start = skip_b_key ? 1 : 0;
    if (a->nfields + b->nfields - start > EMBER_MAX_FIELDS)
        return ember__err(msg, EMBER_ETYPE, "combined record has more than %d fields",
                          EMBER_MAX_FIELDS);
    for (uint32_t i = 0; i < a->nfields; i++)
        f[n++] = a->field[i];
    for (uint32_t i = start; i < b->nfields; i++) {
        ember_field g = b->field[i];
        unique_name(&g, f, n);
        f[n++] = g;
    }
    int rc = ember_type_struct(out, f, n, msg);
    if (rc)
        return rc;
    if (a->cls == EMBER_TYPE_SCALAR && b->cls == EMBER_TYPE_SCALAR && !skip_b_key) {
        snprintf(out->field[0].name, EMBER_NAME_SIZE, "key");
        snprintf(out->field[1].name, EMBER_NAME_SIZE, "value");
        out->cls = EMBER_TYPE_PAIR;
    }
    return EMBER_OK;
}

/* ---- sums of records (sum, reduce_by_key's default, streams) ---------- */

/* The elements from field first_field on, as runs of one kind at
 * consecutive offsets (a double[16] field, or the f64 fields of a CSV's
 * records, are one run each). */
void ember__sum_plan(const ember_type *t, uint32_t first_field,
                     ember__sum_runs *plan)
{
    plan->n = 0;
    plan->size = t->size;
    for (uint32_t f = first_field; f < t->nfields; f++) {
        const ember_field *fl = &t->field[f];
        ember__sum_run *last = plan->n ? &plan->run[plan->n - 1] : NULL;
        if (last && last->kind == fl->kind &&
            last->off + last->count * ember_scalar_size(fl->kind) == fl->offset)
            last->count += fl->count;
        else
            plan->run[plan->n++] = (ember__sum_run){fl->offset, fl->count, fl->kind};
    }
}

/* Each element's sum is one chain in record order (integers modulo
 * 2^bits, which is the same in any order). The records are walked once
 * for each group of 8, 4, 2 or 1 elements of a run, the group's chains
 * held in a local array the compiler keeps in registers: independent
 * chains overlap, where one chain an element over all the records waited
 * on each add (Spark's logistic regression on ember, 10 x f64 a record:
 * ember_sum took 27 % of the run). One element in packed records is a
 * plain loop, which the compiler vectorizes for integers. */
#define SUM_KIND(NAME, T, U)                                                   \
    static inline __attribute__((always_inline)) void NAME##_lanes(           \
        const unsigned char *p, size_t size, size_t n, unsigned char *a,       \
        uint32_t lanes)                                                        \
    {                                                                          \
        U s[8];                                                                \
        for (uint32_t j = 0; j < lanes; j++) {                                 \
            T v;                                                               \
            memcpy(&v, a + j * sizeof v, sizeof v);                            \
            s[j] = (U)v;                                                       \
        }                                                                      \
        for (size_t i = 0; i < n; i++)                                         \
            for (uint32_t j = 0; j < lanes; j++) {                             \
                T v;                                                           \
                memcpy(&v, p + i * size + j * sizeof v, sizeof v);             \
                s[j] += (U)v;                                                  \
            }                                                                  \
        for (uint32_t j = 0; j < lanes; j++) {                                 \
            T v = (T)s[j];                                                     \
            memcpy(a + j * sizeof v, &v, sizeof v);                            \
        }                                                                      \
    }                                                                          \
    static void NAME(const unsigned char *p, size_t size, size_t n,           \
                     unsigned char *a, uint32_t count)                         \
    {                                                                          \
        if (n == 1) { /* a fold's run of two, a table's add: no lanes */       \
            for (uint32_t e = 0; e < count; e++) {                             \
                T x, y;                                                        \
                memcpy(&x, a + e * sizeof x, sizeof x);                        \
                memcpy(&y, p + e * sizeof y, sizeof y);                        \
                x = (T)((U)x + (U)y);                                          \
                memcpy(a + e * sizeof x, &x, sizeof x);                        \
            }                                                                  \
            return;                                                            \
        }                                                                      \
        for (uint32_t e = 0, left; (left = count - e) > 0;) {                  \
            const unsigned char *q = p + e * sizeof(T);                        \
            unsigned char *b = a + e * sizeof(T);                              \
            if (left >= 8)                                                     \
                NAME##_lanes(q, size, n, b, 8), e += 8;                        \
            else if (left >= 4)                                                \
                NAME##_lanes(q, size, n, b, 4), e += 4;                        \
            else if (left >= 2)                                                \
                NAME##_lanes(q, size, n, b, 2), e += 2;                        \
            else if (size == sizeof(T)) /* a constant stride */                \
                NAME##_lanes(q, sizeof(T), n, b, 1), e++;                      \
            else                                                               \
                NAME##_lanes(q, size, n, b, 1), e++;                           \
        }                                                                      \
    }
SUM_KIND(sum_i32, int32_t, uint32_t)
SUM_KIND(sum_i64, int64_t, uint64_t)
SUM_KIND(sum_u64, uint64_t, uint64_t)
SUM_KIND(sum_f32, float, float)
SUM_KIND(sum_f64, double, double)
#undef SUM_KIND

void ember__sum_planned(const ember__sum_runs *plan, const void *recs,
                        size_t n, void *acc)
{
    const unsigned char *in = recs;
    unsigned char *out = acc;
    size_t size = plan->size;
    for (const ember__sum_run *r = plan->run; r < plan->run + plan->n; r++)
        switch (r->kind) { /* calls the compiler may inline */
        case EMBER_I32: sum_i32(in + r->off, size, n, out + r->off, r->count); break;
        case EMBER_I64: sum_i64(in + r->off, size, n, out + r->off, r->count); break;
        case EMBER_U64: sum_u64(in + r->off, size, n, out + r->off, r->count); break;
        case EMBER_F32: sum_f32(in + r->off, size, n, out + r->off, r->count); break;
        case EMBER_F64: sum_f64(in + r->off, size, n, out + r->off, r->count); break;
        }
}

void ember__sum_records(const ember_type *t, const void *recs, size_t n,
                        void *acc, uint32_t first_field)
{
    ember__sum_runs plan;
    ember__sum_plan(t, first_field, &plan);
    ember__sum_planned(&plan, recs, n, acc);
}
