/* shuffle.c: wide transformations, which end a stage.
 *
 * Every wide operation runs the same deterministic shuffle:
 *   1. the parent's partitions are materialized (join: both parents);
 *   2. reduce_by_key combines within each input partition first;
 *   3. each input partition is bucketed by target partition with a stable
 *      counting sort (hash of the key, a range bound, or the global index);
 *   4. output partition q gathers its bucket from input 0, 1, 2, ... in
 *      order, then sorts stably / folds / merges as the operation needs;
 *   5. outputs go to the block store at MEMORY_AND_DISK (they spill rather
 *      than vanish) and the node is marked done.
 * No step looks at the team size, so output is bit-identical for any
 * thread count. Sorting by key is a stable radix sort on indices (whole
 * records: a merge sort), skipped for records already in order. An input
 * partitioned as the shuffle partitions (a reduce_by_key output joined)
 * passes through: a partition whose records all go to one bucket is not
 * copied into buckets, and a bucket that is all of its input partition is
 * taken over rather than gathered.
 * Under MPI (comm.h) steps 1-3 run on the input partitions a rank holds,
 * the sizes and the range sample are gathered in partition order, the
 * buckets are exchanged (each rank receives, of every input partition,
 * the buckets of the output partitions it owns, placed by input
 * partition), and steps 4-5 run on owned outputs: the same bits.
 * Floor 3 of the engine (docs/design.md), with exec.c, which runs a shuffle
 * before the stage that reads it and through which it materializes its
 * inputs.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ---- constructors ------------------------------------------------------ */

static int wide_fn(ember_ds **out, ember_ds *in, ember_ds *b,
                   ember__shuffle_kind kind, const ember_type *t,
                   size_t partitions, const char *name, void *arg,
                   size_t arg_size, char *msg)
{
    size_t P = partitions ? partitions : in->nparts;
    void *a = NULL;
    int rc = b ? ember__ds_new(out, in->ctx, EMBER__SHUFFLE, t, P, in, b, msg)
               : ember__ds_new_fn(out, in->ctx, EMBER__SHUFFLE, t, P, in, arg,
                                  arg_size, &a, msg);
    if (rc)
        return rc;
    (*out)->u.shuffle.kind = kind;
    (*out)->u.shuffle.arg = a;
    snprintf((*out)->name, sizeof (*out)->name, "%s", name);
    return EMBER_OK;
}

static int wide(ember_ds **out, ember_ds *in, ember_ds *b,
                ember__shuffle_kind kind, const ember_type *t,
                size_t partitions, const char *name, char *msg)
{
    return wide_fn(out, in, b, kind, t, partitions, name, NULL, 0, msg);
}

static int keyed(ember_ds **out, ember_ds *in, const char *what, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !in)
        return ember__err(msg, EMBER_EINVAL, "%s: NULL argument", what);
    return ember__type_check_key(&in->type, what, msg);
}

int ember_reduce_by_key(ember_ds **out, ember_ds *in, ember_combine_fn fn,
                        void *arg, size_t arg_size, size_t partitions,
                        char *msg)
{
    int rc = keyed(out, in, "reduce_by_key", msg);
    if (!rc && !fn && in->type.nfields < 2)
        rc = ember__err(msg, EMBER_ETYPE,
                        "reduce_by_key: no function and no value fields to sum");
    if (!rc)
        rc = wide_fn(out, in, NULL, EMBER__SH_REDUCE, &in->type, partitions,
                     "reduce_by_key", fn ? arg : NULL, fn ? arg_size : 0, msg);
    if (!rc)
        (*out)->u.shuffle.fn = fn;
    return rc;
}

int ember_group_by_key(ember_ds **out, ember_ds *in, size_t partitions,
                       char *msg)
{
    int rc = keyed(out, in, "group_by_key", msg);
    return rc ? rc : wide(out, in, NULL, EMBER__SH_GROUP, &in->type, partitions,
                          "group_by_key", msg);
}

int ember_join(ember_ds **out, ember_ds *a, ember_ds *b, size_t partitions,
               char *msg)
{
    int rc = keyed(out, a, "join", msg);
    if (!rc)
        rc = b ? ember__type_check_key(&b->type, "join", msg)
               : ember__err(msg, EMBER_EINVAL, "join: NULL argument");
    if (!rc && a->ctx != b->ctx)
        rc = ember__err(msg, EMBER_EINVAL, "join: datasets of different contexts");
    if (!rc && a->type.field[0].kind != b->type.field[0].kind)
        rc = ember__err(msg, EMBER_ETYPE, "join: key types differ: %s and %s",
                        ember_scalar_name(a->type.field[0].kind),
                        ember_scalar_name(b->type.field[0].kind));
    ember_type t;
    if (!rc)
        rc = ember__type_concat(&t, &a->type, &b->type, 1, msg);
    return rc ? rc : wide(out, a, b, EMBER__SH_JOIN, &t, partitions, "join", msg);
}

int ember_partition_by(ember_ds **out, ember_ds *in, ember_partitioner how,
                       size_t partitions, char *msg)
{
    int rc = keyed(out, in, "partition_by", msg);
    if (!rc && how != EMBER_HASH && how != EMBER_RANGE)
        rc = ember__err(msg, EMBER_EINVAL, "partition_by: unknown partitioner %d",
                        (int)how);
    return rc ? rc : wide(out, in, NULL,
                          how == EMBER_HASH ? EMBER__SH_HASH : EMBER__SH_RANGE,
                          &in->type, partitions,
                          how == EMBER_HASH ? "partition_by(hash)"
                                            : "partition_by(range)", msg);
}

int ember_distinct(ember_ds **out, ember_ds *in, size_t partitions, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !in)
        return ember__err(msg, EMBER_EINVAL, "distinct: NULL argument");
    return wide(out, in, NULL, EMBER__SH_DISTINCT, &in->type, partitions,
                "distinct", msg);
}

int ember_sort_by_key(ember_ds **out, ember_ds *in, int descending,
                      size_t partitions, char *msg)
{
    int rc = keyed(out, in, "sort_by_key", msg);
    if (!rc)
        rc = wide(out, in, NULL, EMBER__SH_SORT, &in->type, partitions,
                  "sort_by_key", msg);
    if (!rc)
        (*out)->u.shuffle.descending = descending != 0;
    return rc;
}

int ember_repartition(ember_ds **out, ember_ds *in, size_t partitions,
                      char *msg)
{
    ember__msg_clear(msg);
    if (!out || !in || !partitions)
        return ember__err(msg, EMBER_EINVAL,
                          "repartition: NULL argument or 0 partitions");
    return wide(out, in, NULL, EMBER__SH_REPARTITION, &in->type, partitions,
                "repartition", msg);
}

size_t ember_next_group(const ember_type *type, const void *records, size_t n,
                        size_t *pos)
{
    if (!type || !pos || *pos >= n)
        return 0;
    const unsigned char *r = records;
    size_t i = *pos, j = i + 1;
    while (j < n && ember__key_cmp(type, r + i * type->size, r + j * type->size) == 0)
        j++;
    *pos = j;
    return j - i;
}

/* ---- sorting ------------------------------------------------------------- */

typedef enum { CMP_KEY, CMP_KEY_DESC, CMP_FIELDS } cmp_mode;

/* Floats as keys compare: -0.0 equal to 0.0, NaN last. */
static int dbl_cmp(double x, double y)
{
    int nx = isnan(x), ny = isnan(y);
    return nx || ny ? nx - ny : (x > y) - (x < y);
}

/* One scalar of kind k at a and b, by value, then by bytes, so that 0
 * still means byte equality. */
static int scalar_cmp(ember_scalar k, const unsigned char *a,
                      const unsigned char *b)
{
    int c = 0;
    switch (k) {
#define CMP_AS(K, T, CMP)                                                      \
    case K: {                                                                  \
        T x, y;                                                                \
        memcpy(&x, a, sizeof x);                                               \
        memcpy(&y, b, sizeof y);                                               \
        c = CMP;                                                               \
        break;                                                                 \
    }
        CMP_AS(EMBER_I32, int32_t, (x > y) - (x < y))
        CMP_AS(EMBER_I64, int64_t, (x > y) - (x < y))
        CMP_AS(EMBER_U64, uint64_t, (x > y) - (x < y))
        CMP_AS(EMBER_F32, float, dbl_cmp(x, y))
        CMP_AS(EMBER_F64, double, dbl_cmp(x, y))
#undef CMP_AS
    }
    return c ? c : memcmp(a, b, ember_scalar_size(k));
}

/* Whole records, field by field and element by element, by value: the
 * order distinct sorts its output in. 0 exactly when the bytes of every
 * field are equal (padding aside). */
static int fields_cmp(const ember_type *t, const unsigned char *a,
                      const unsigned char *b)
{
    for (uint32_t f = 0; f < t->nfields; f++) {
        const ember_field *x = &t->field[f];
        size_t es = ember_scalar_size(x->kind);
        for (uint32_t e = 0; e < x->count; e++) {
            size_t off = x->offset + e * es;
            int c = scalar_cmp(x->kind, a + off, b + off);
            if (c)
                return c;
        }
    }
    return 0;
}

/* The order of a sort by key: a stable LSD radix sort of the keys'
 * images (ember__key_order; complemented, descending), eight bits a pass,
 * passes whose digit is the same for every key skipped (a key range of
 * 2^16 takes two). *idx holds 0 .. n - 1 and ends holding the order; *tmp
 * is room for n more (the two may be swapped). The merge sort it replaced
 * compared records through ember__key_cmp, n log n calls: 36 % of the CPU
 * of Spark's PageRank written on ember. Equal keys keep input order, so
 * the output is the merge sort's, byte for byte (test_shuffle_radix_order). */
static int key_order(ember_ctx *ctx, const ember__buf *buf, const ember_type *t,
                     int descending, size_t **idx, size_t **tmp)
{
    size_t n = buf->n;
    uint64_t *key = ember__malloc(ctx, ember__mul(n, sizeof *key));
    uint64_t *key2 = ember__malloc(ctx, ember__mul(n, sizeof *key2));
    size_t(*count)[256] = ember__calloc(ctx, 8, sizeof *count);
    int rc = key && key2 && count ? EMBER_OK : EMBER_ENOMEM;
    const uint64_t flip = descending ? UINT64_MAX : 0;
    uint64_t vary = 0; /* the bits in which some key differs from the first */
    if (!rc)
        ember__key_orders(t, buf->data, n, key);
    for (size_t i = 0; !rc && i < n; i++) {
        key[i] ^= flip;
        vary |= key[i] ^ key[0];
    }
    /* Only the digits below the highest varying bit can differ. When those
     * bits and a record's index fit in 64, each key carries its index in
     * its low bits and the passes move one array, not two (a reduce's
     * partition of 8,192 records with keys under 2^14: 27 bits). */
    int kbits = vary ? 64 - __builtin_clzll(vary) : 0;
    int ibits = n > 1 ? 64 - __builtin_clzll((unsigned long long)(n - 1)) : 0;
    int packed = kbits && kbits + ibits <= 64, shift = packed ? ibits : 0;
    int digits = (kbits + 7) / 8;
    for (size_t i = 0; !rc && packed && i < n; i++)
        key[i] = (key[i] & (((uint64_t)1 << kbits) - 1)) << ibits | i;
    for (size_t i = 0; !rc && i < n; i++)
        for (int d = 0; d < digits; d++)
            count[d][key[i] >> (shift + 8 * d) & 0xff]++;
    for (int d = 0; !rc && d < digits; d++) {
        size_t *c = count[d], at = 0, *from = *idx, *to = *tmp;
        int sh = shift + 8 * d;
        if (c[key[0] >> sh & 0xff] == n)
            continue; /* one digit for all */
        for (int v = 0; v < 256; v++) {
            size_t k = c[v];
            c[v] = at;
            at += k;
        }
        if (packed) {
            for (size_t i = 0; i < n; i++)
                key2[c[key[i] >> sh & 0xff]++] = key[i];
        } else {
            for (size_t i = 0; i < n; i++) {
                size_t j = c[key[i] >> sh & 0xff]++;
                key2[j] = key[i];
                to[j] = from[i];
            }
            *idx = to;
            *tmp = from;
        }
        uint64_t *kt = key;
        key = key2;
        key2 = kt;
    }
    for (size_t i = 0; !rc && packed && i < n; i++)
        (*idx)[i] = (size_t)(key[i] & (((uint64_t)1 << ibits) - 1));
    ember__free(ctx, key);
    ember__free(ctx, key2);
    ember__free(ctx, count);
    return rc;
}

/* Whether buf is in m's order already (then a stable sort keeps it as
 * it is): a shuffle's side partitioned and sorted as it sorts, such as a
 * reduce_by_key output joined, is gathered sorted. */
static int sorted(const ember__buf *buf, const ember_type *t, cmp_mode m)
{
    const unsigned char *d = buf->data;
    if (m == CMP_FIELDS) {
        for (size_t i = 1; i < buf->n; i++)
            if (fields_cmp(t, d + (i - 1) * t->size, d + i * t->size) > 0)
                return 0;
        return 1;
    }
    const uint64_t flip = m == CMP_KEY_DESC ? UINT64_MAX : 0;
    uint64_t key[257]; /* key[0]: the last of the previous piece */
    for (size_t lo = 0; lo < buf->n; lo += 256) {
        size_t k = buf->n - lo < 256 ? buf->n - lo : 256;
        ember__key_orders(t, d + lo * t->size, k, key + 1);
        if (lo == 0)
            key[0] = key[1] ^ flip;
        for (size_t i = 1; i <= k; i++)
            if (key[i - 1] > (key[i] ^= flip))
                return 0;
        key[0] = key[k];
    }
    return 1;
}

/* out[i] = record idx[i] of d, the common record sizes as fixed copies. */
static void copy_by_index(unsigned char *out, const unsigned char *d,
                          const size_t *idx, size_t n, size_t size)
{
#define COPY_FIXED(bytes)                                                     \
    for (size_t i = 0; i < n; i++)                                            \
        memcpy(out + i * (bytes), d + idx[i] * (bytes), (bytes));             \
    return
    switch (size) {
    case 8: COPY_FIXED(8);
    case 16: COPY_FIXED(16);
    case 24: COPY_FIXED(24);
    case 32: COPY_FIXED(32);
    default: COPY_FIXED(size);
    }
#undef COPY_FIXED
}

/* Stable sort of buf's records, by key (key_order) or whole records (a
 * bottom-up merge sort); replaces buf->data. */
static int sort_buf(ember_ctx *ctx, ember__buf *buf, const ember_type *t,
                    cmp_mode m)
{
    size_t n = buf->n, size = t->size;
    if (sorted(buf, t, m))
        return EMBER_OK;
    size_t *idx = ember__malloc(ctx, ember__mul(n, sizeof *idx));
    size_t *tmp = ember__malloc(ctx, ember__mul(n, sizeof *tmp));
    unsigned char *out = ember__malloc(ctx, ember__mul(n, size));
    int rc = idx && tmp && out ? EMBER_OK : EMBER_ENOMEM;
    const unsigned char *d = buf->data;
    for (size_t i = 0; !rc && i < n; i++)
        idx[i] = i;
    if (!rc && m != CMP_FIELDS)
        rc = key_order(ctx, buf, t, m == CMP_KEY_DESC, &idx, &tmp);
    for (size_t w = 1; !rc && m == CMP_FIELDS && w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = fields_cmp(t, d + idx[j] * size, d + idx[i] * size) < 0
                               ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        size_t *s = idx;
        idx = tmp;
        tmp = s;
    }
    if (!rc)
        copy_by_index(out, d, idx, n, size);
    ember__free(ctx, idx);
    ember__free(ctx, tmp);
    if (rc) {
        ember__free(ctx, out);
        return rc;
    }
    ember__free(ctx, buf->data);
    buf->data = out;
    buf->cap = n;
    return EMBER_OK;
}

/* ---- per-partition operations ---------------------------------------------- */

#define COMBINE_FAILED "reduce_by_key #%llu: combine function returned %d in %s partition %zu"

/* Sorted records: folds each run of equal keys into its first record.
 * `where` and `part` name the partition for a failing combine function. */
static int fold_runs(ember_ds *ds, ember__buf *b, const char *where,
                     size_t part, char *msg)
{
    const ember_type *t = &ds->type;
    size_t size = t->size, out = 0, n = b->n;
    /* runs found by key image, not a key comparison per record */
    uint64_t *key = ember__malloc(ds->ctx, ember__mul(n + 1, sizeof *key));
    if (!key)
        return EMBER_ENOMEM;
    ember__key_orders(t, b->data, n, key);
    ember__sum_runs sum; /* the default's plan, made once for every run */
    if (!ds->u.shuffle.fn)
        ember__sum_plan(t, 1, &sum);
    for (size_t i = 0, len; i < n; i += len) {
        for (len = 1; i + len < n && key[i + len] == key[i]; len++)
            ;
        unsigned char *first = b->data + i * size;
        unsigned char *acc = b->data + out * size;
        if (acc != first)
            memmove(acc, first, size);
        int r = 0;
        if (len > 1 && !ds->u.shuffle.fn)
            ember__sum_planned(&sum, first + size, len - 1, acc);
        else if (len > 1)
            r = ds->u.shuffle.fn(acc, first + size, len - 1, ds->u.shuffle.arg);
        if (r) {
            ember__free(ds->ctx, key);
            return ember__err(msg, EMBER_EUSER, COMBINE_FAILED,
                              (unsigned long long)ds->id, r, where, part);
        }
        out++;
    }
    ember__free(ds->ctx, key);
    b->n = out;
    return EMBER_OK;
}

/* reduce_by_key's combine within an input partition, as the executor
 * hands its records over (combine_sink): each record folded into the
 * first of its key, in input order, found through a hash table of key
 * images (ember__key_order: equal exactly when the keys compare equal);
 * the partials come out in the order their keys first appear. Each is the
 * fold of its records in input order, as sorting and folding the runs
 * gives (a combine function folds records one by one: ember.h), and the
 * output side sorts by key, gathering the input partitions in order: the
 * same bytes, without holding or sorting the partition's records
 * (Spark-style k-means on ember: 10^6 records of 8 keys a pass). */
typedef struct {
    struct key_slot {
        uint64_t key;
        size_t at;                /* its sum in the output; SIZE_MAX empty */
        uint32_t block, group;    /* its group in the block being added */
    } *slot;
    size_t cap, used;
    size_t seen;           /* records offered */
    int raw;               /* the table given up: records appended */
    uint32_t block;        /* blocks of 256 records added so far */
    unsigned char *sorted; /* a block's records, grouped by key */
} key_table;

/* The table is given up, the rest of the partition appended as it comes
 * and the whole sorted and folded at its end, once it holds KEYS_HASHED
 * keys (1 MiB of table), or more than one key in KEYS_FEW of the first
 * KEYS_TRIAL records. With many keys a table as large as the partition
 * misses the caches at every record (10^7 records of 5 x 10^6 keys: 1.3
 * s, 0.6 s sorted), and with a key in two records or so a table saves
 * nothing and costs its growth (Spark's PageRank on ember, 200
 * iterations: 1.04 s sorted, 1.58 s with tables of up to 4,096 records'
 * keys). The sums are the same chains in input order either way: a key's
 * sum so far comes before its later records, and sorting is stable. */
#define KEYS_HASHED 32768
#define KEYS_TRIAL 512
#define KEYS_FEW 2

static struct key_slot *key_find(key_table *kt, uint64_t key)
{
    size_t h = ember__hash64(key) & (kt->cap - 1);
    while (kt->slot[h].at != SIZE_MAX && kt->slot[h].key != key)
        h = (h + 1) & (kt->cap - 1);
    return &kt->slot[h];
}

/* Room for one more key, the table at most half full. */
static int key_room(ember_ctx *ctx, key_table *kt)
{
    if (2 * (kt->used + 1) <= kt->cap)
        return EMBER_OK;
    key_table g = *kt;
    g.cap = kt->cap ? 2 * kt->cap : 1024;
    if (!(g.slot = ember__malloc(ctx, ember__mul(g.cap, sizeof *g.slot))))
        return EMBER_ENOMEM;
    for (size_t j = 0; j < g.cap; j++)
        g.slot[j].at = SIZE_MAX;
    for (size_t j = 0; j < kt->cap; j++)
        if (kt->slot[j].at != SIZE_MAX)
            *key_find(&g, kt->slot[j].key) = kt->slot[j];
    ember__free(ctx, kt->slot);
    *kt = g;
    return EMBER_OK;
}

typedef struct {
    ember_ds *ds;          /* the reduce_by_key */
    ember__buf *parts;
    key_table *tab;        /* each partition's, while its records come */
    ember__sum_runs plan;  /* the value fields, for the default sum */
} combine_run;

/* Folds n records into acc: the reduce_by_key's function, or the sum of
 * the value fields. The function's status. */
static int combine(const combine_run *r, unsigned char *acc,
                   const unsigned char *recs, size_t n)
{
    if (r->ds->u.shuffle.fn)
        return r->ds->u.shuffle.fn(acc, recs, n, r->ds->u.shuffle.arg);
    ember__sum_planned(&r->plan, recs, n, acc);
    return 0;
}

/* One record: 8 bytes at a time when it is made of them (a call of the
 * C library's memcpy for each of a block's records was a tenth of
 * Spark-style k-means' profile). */
static inline void copy_record(unsigned char *dst, const unsigned char *src,
                               size_t size)
{
    if (size % 8)
        memcpy(dst, src, size);
    else
        for (size_t b = 0; b < size; b += 8)
            memcpy(dst + b, src + b, 8);
}

/* Folds a block's records (at most 256) into their partials: each new
 * key's first record starts its partial; the others are grouped by key,
 * in order, and each group folded with one call (Spark-style k-means, 8
 * keys: a call a record was half its reduce). Stops early once the table
 * is given up; returns the records taken. */
static size_t combine_block(const combine_run *r, size_t part,
                            const unsigned char *recs, size_t k, int *rc)
{
    ember_ctx *ctx = r->ds->ctx;
    key_table *kt = &r->tab[part];
    ember__buf *out = &r->parts[part];
    const ember_type *t = &r->ds->type;
    uint64_t key[256];
    size_t at[256];                 /* each group's partial */
    uint32_t group[256], count[257] = {0}, groups = 0;
    size_t size = t->size, i;
    ember__key_orders(t, recs, k, key);
    if (++kt->block == 0) { /* 2^32 blocks: no slot may seem to be in this one */
        for (size_t j = 0; j < kt->cap; j++)
            kt->slot[j].block = 0;
        kt->block = 1;
    }
    /* past the trial, with room for k more keys: no checks a record */
    int sure = kt->seen > KEYS_TRIAL && kt->used + k < KEYS_HASHED &&
               2 * (kt->used + k) <= kt->cap;
    kt->seen += sure ? k : 0;
    for (i = 0; i < k; i++) {
        if (!sure && (kt->used == KEYS_HASHED ||
                      (kt->seen++ == KEYS_TRIAL && kt->used > KEYS_TRIAL / KEYS_FEW))) {
            kt->raw = 1;
            break;
        }
        if (!sure && (*rc = key_room(ctx, kt)))
            return 0;
        struct key_slot *sl = key_find(kt, key[i]);
        if (sl->at == SIZE_MAX) { /* room reserved */
            memcpy(out->data + out->n * size, recs + i * size, size);
            *sl = (struct key_slot){key[i], out->n++, 0, 0};
            kt->used++;
            group[i] = UINT32_MAX;
            continue;
        }
        if (sl->block != kt->block) {
            sl->block = kt->block;
            sl->group = groups;
            at[groups++] = sl->at;
        }
        count[(group[i] = sl->group) + 1]++;
    }
    for (uint32_t g = 0; g < groups; g++)
        count[g + 1] += count[g];
    for (size_t j = 0; j < i; j++)
        if (group[j] != UINT32_MAX)
            copy_record(kt->sorted + count[group[j]]++ * size, recs + j * size, size);
    for (uint32_t g = 0, from = 0; g < groups; from = count[g++]) {
        int f = combine(r, out->data + at[g] * size, kt->sorted + from * size,
                        count[g] - from);
        if (f) {
            *rc = ember__sink_fail(EMBER_EUSER, COMBINE_FAILED,
                                   (unsigned long long)r->ds->id, f, "input", part);
            return 0;
        }
    }
    return i;
}

static int combine_into(const combine_run *r, size_t part,
                        const unsigned char *recs, size_t n)
{
    ember_ctx *ctx = r->ds->ctx;
    key_table *kt = &r->tab[part];
    ember__buf *out = &r->parts[part];
    const ember_type *t = &r->ds->type;
    /* blocks of 256 records, or of 64 KiB when records are larger */
    size_t block = t->size <= 256 ? 256 : t->size < 65536 ? 65536 / t->size : 1;
    int rc = EMBER_OK;
    if (!kt->sorted && !(kt->sorted = ember__malloc(ctx, block * t->size)))
        return EMBER_ENOMEM;
    for (size_t lo = 0; lo < n && !rc;) {
        if (kt->raw)
            return ember__buf_append(ctx, out, recs + lo * t->size, n - lo);
        size_t k = n - lo < block ? n - lo : block;
        if (!(rc = ember__buf_reserve(ctx, out, out->n + k)))
            lo += combine_block(r, part, recs + lo * t->size, k, &rc);
    }
    return rc;
}

static int combine_sink(void *state, size_t part, const void *recs, size_t n,
                        int last)
{
    combine_run *r = state;
    ember_ctx *ctx = r->ds->ctx;
    key_table *kt = &r->tab[part];
    char said[EMBER_MSG_SIZE];
    int rc = n ? combine_into(r, part, recs, n) : EMBER_OK;
    if (!rc && last && kt->raw &&
        !(rc = sort_buf(ctx, &r->parts[part], &r->ds->type, CMP_KEY)) &&
        (rc = fold_runs(r->ds, &r->parts[part], "input", part, said)) == EMBER_EUSER)
        rc = ember__sink_fail(rc, "%s", said);
    if (last) {
        ember__free(ctx, kt->slot);
        ember__free(ctx, kt->sorted);
        *kt = (key_table){0};
    }
    return rc;
}

/* ember__materialize_owned of ds's parent, each partition combined by
 * key as it comes. */
static int materialize_combined(ember_ds *ds, ember__buf **out, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    ember_ds *src = ds->parent[0];
    size_t P = src->nparts ? src->nparts : 1;
    combine_run r = {.ds = ds, .parts = ember__calloc(ctx, P, sizeof *r.parts),
                     .tab = ember__calloc(ctx, P, sizeof *r.tab)};
    int rc = r.parts && r.tab ? EMBER_OK : EMBER_ENOMEM;
    ember__sum_plan(&ds->type, 1, &r.plan);
    for (size_t p = 0; !rc && p < src->nparts; p++)
        r.parts[p].size = src->type.size;
    if (!rc)
        rc = ember__run(src, combine_sink, &r, msg);
    for (size_t p = 0; r.tab && p < src->nparts; p++) /* after a failure */
        ember__free(ctx, r.tab[p].slot), ember__free(ctx, r.tab[p].sorted);
    ember__free(ctx, r.tab);
    if (rc && r.parts)
        ember__parts_free(ctx, r.parts, src->nparts);
    *out = rc ? NULL : r.parts;
    return rc == EMBER_ENOMEM && msg && !msg[0]
               ? ember__err(msg, rc, "out of memory materializing #%llu",
                            (unsigned long long)src->id)
               : rc;
}

static int dedupe(ember_ds *ds, ember__buf *b)
{
    size_t size = ds->type.size, out = 0;
    for (size_t i = 0; i < b->n; i++) {
        unsigned char *r = b->data + i * size;
        if (out && fields_cmp(&ds->type, b->data + (out - 1) * size, r) == 0)
            continue;
        if (out != i)
            memcpy(b->data + out * size, r, size);
        out++;
    }
    b->n = out;
    return EMBER_OK;
}

/* Merge join of two key-sorted buffers into out. Each record is written
 * in place: a's record, zeros to the end, then b's value fields, so the
 * padding's bytes are zeros as in every record ember makes. */
static int merge_join(ember_ctx *ctx, const ember_type *to, const ember_type *ta,
                      const ember__buf *a, const ember_type *tb,
                      const ember__buf *b, ember__buf *out)
{
    size_t i = 0, j = 0, head = ta->size < to->size ? ta->size : to->size;
    /* the keys compared by their images, as the sorts order them */
    uint64_t *ka = ember__malloc(ctx, ember__mul(a->n + 1, sizeof *ka));
    uint64_t *kb = ember__malloc(ctx, ember__mul(b->n + 1, sizeof *kb));
    int rc = ka && kb ? EMBER_OK : EMBER_ENOMEM;
    if (!rc && a->n) { /* b's keys unique: room for exactly that */
        out->data = ember__malloc(ctx, ember__mul(a->n, to->size));
        out->cap = out->data ? a->n : 0;
        rc = out->data ? EMBER_OK : EMBER_ENOMEM;
    }
    if (!rc) {
        ember__key_orders(ta, a->data, a->n, ka);
        ember__key_orders(tb, b->data, b->n, kb);
    }
    /* b's value fields' moves, neighbours merged, worked out once (a call
     * of ember_scalar_size a field a record was a tenth of the join) */
    struct field_move {
        size_t from, to, len;
    } mv[EMBER_MAX_FIELDS];
    int nmv = 0;
    for (uint32_t f = 1; f < tb->nfields; f++) {
        size_t from = tb->field[f].offset, at = to->field[ta->nfields + f - 1].offset;
        size_t len = ember_scalar_size(tb->field[f].kind) * tb->field[f].count;
        if (nmv && mv[nmv - 1].from + mv[nmv - 1].len == from &&
            mv[nmv - 1].to + mv[nmv - 1].len == at)
            mv[nmv - 1].len += len;
        else
            mv[nmv++] = (struct field_move){from, at, len};
    }
    while (!rc && i < a->n && j < b->n) {
        if (ka[i] != kb[j]) {
            ka[i] < kb[j] ? i++ : j++;
            continue;
        }
        uint64_t k = ka[i];
        size_t ja = j, jb = j;
        while (jb < b->n && kb[jb] == k)
            jb++;
        for (; !rc && i < a->n && ka[i] == k; i++)
            for (size_t m = ja; !rc && m < jb; m++) {
                if (out->n == out->cap &&
                    (rc = ember__buf_reserve(ctx, out, out->n + 1)))
                    break;
                unsigned char *rec = out->data + out->n++ * to->size;
                copy_record(rec, a->data + i * ta->size, head);
                memset(rec + head, 0, to->size - head);
                for (int v = 0; v < nmv; v++)
                    copy_record(rec + mv[v].to, b->data + m * tb->size + mv[v].from,
                                mv[v].len);
            }
        j = jb;
    }
    ember__free(ctx, ka);
    ember__free(ctx, kb);
    return rc;
}

/* ---- the shuffle ------------------------------------------------------------------- */

typedef struct {
    ember_ds *ds;
    ember_ds *src;          /* the parent being bucketed */
    ember__buf *in;         /* its materialized partitions */
    size_t P, Q;
    size_t **start;         /* start[p][q]: first record of bucket q in in[p] */
    ember__buf bounds;      /* range bounds: Q - 1 records */
    size_t total;           /* repartition: records in all */
    size_t *base;           /* repartition: global index of in[p]'s first */
    int *own;               /* MPI: rank holding each input partition */
} shuffle_side;

static size_t range_target(const shuffle_side *s, const unsigned char *r)
{
    const ember_type *t = &s->src->type;
    int desc = s->ds->u.shuffle.descending;
    size_t lo = 0, hi = s->bounds.n;
    while (lo < hi) { /* first bound the record sorts before */
        size_t mid = (lo + hi) / 2;
        int c = ember__key_cmp(t, s->bounds.data + mid * t->size, r);
        if (desc ? c < 0 : c > 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint64_t fields_hash(const ember_type *t, const unsigned char *r)
{
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (uint32_t f = 0; f < t->nfields; f++) {
        size_t bytes = ember_scalar_size(t->field[f].kind) * t->field[f].count;
        for (size_t o = 0; o < bytes; o += 4) {
            uint32_t w = 0;
            memcpy(&w, r + t->field[f].offset + o, bytes - o < 4 ? bytes - o : 4);
            h = ember__hash64(h ^ w);
        }
    }
    return h;
}

/* The target partition of every record of in[p], into tq. */
static void targets(const shuffle_side *s, size_t p, uint64_t *tq)
{
    const ember_type *t = &s->src->type;
    const unsigned char *d = s->in[p].data;
    size_t n = s->in[p].n;
    switch (s->ds->u.shuffle.kind) {
    case EMBER__SH_RANGE:
    case EMBER__SH_SORT:
        for (size_t i = 0; i < n; i++)
            tq[i] = range_target(s, d + i * t->size);
        return;
    case EMBER__SH_DISTINCT:
        for (size_t i = 0; i < n; i++)
            tq[i] = fields_hash(t, d + i * t->size) % s->Q;
        return;
    case EMBER__SH_REPARTITION: /* the q with part_lo(q) <= g < part_lo(q+1) */
        for (size_t i = 0; i < n; i++)
            tq[i] = (uint64_t)(((unsigned __int128)(s->base[p] + i + 1) * s->Q - 1) /
                               s->total);
        return;
    default:
        ember__key_hashes(t, d, n, tq);
        for (size_t i = 0; i < n; i++)
            tq[i] %= s->Q;
    }
}

/* Stable counting sort of in[p] by target partition. */
static int bucket(ember_ctx *ctx, shuffle_side *s, size_t p)
{
    size_t n = s->in[p].n, size = s->src->type.size, Q = s->Q;
    uint64_t *tq = ember__malloc(ctx, ember__mul(n, sizeof *tq));
    size_t *st = ember__calloc(ctx, Q + 1, sizeof *st);
    unsigned char *out = NULL;
    int rc = tq && st ? EMBER_OK : EMBER_ENOMEM;
    uint64_t mixed = 0;
    if (!rc)
        targets(s, p, tq);
    for (size_t i = 0; !rc && i < n; i++) {
        st[tq[i] + 1]++;
        mixed |= tq[i] ^ tq[0];
    }
    for (size_t q = 0; !rc && q < Q; q++)
        st[q + 1] += st[q];
    /* With one target for every record (an input partitioned as this
     * shuffle partitions, such as a reduce_by_key output joined), the
     * records are in bucket order already. */
    if (!rc && mixed) {
        out = ember__malloc(ctx, ember__mul(n, size));
        rc = out ? EMBER_OK : EMBER_ENOMEM;
    }
    if (!rc && mixed) {
        /* next[q]: bucket q's next place, records taken in order */
        size_t *next = ember__malloc(ctx, ember__mul(Q, sizeof *next));
        rc = next ? EMBER_OK : EMBER_ENOMEM;
        if (!rc) {
            memcpy(next, st, Q * sizeof *next);
            for (size_t i = 0; i < n; i++)
                memcpy(out + (next[tq[i]]++) * size, s->in[p].data + i * size,
                       size);
            ember__free(ctx, s->in[p].data);
            s->in[p].data = out;
            s->in[p].cap = n;
            out = NULL;
        }
        ember__free(ctx, next);
    }
    ember__free(ctx, tq);
    ember__free(ctx, out);
    if (rc)
        ember__free(ctx, st);
    else
        s->start[p] = st;
    return rc;
}

/* Range bounds from a deterministic sample: every k-th record of each
 * input partition, k from the total. Under MPI each rank samples the
 * partitions it holds and the samples are gathered in partition order, so
 * every rank sorts the sample a serial run sorts. */
static int range_bounds(ember_ctx *ctx, shuffle_side *s, char *msg)
{
    const ember_type *t = &s->src->type;
    ember__buf sample = {NULL, 0, 0, t->size};
    size_t want = 64 * s->Q, step = s->total / want ? s->total / want : 1;
    ember__buf *ps = ember__calloc(ctx, s->P + 1, sizeof *ps);
    if (!ps)
        return ember__err(msg, EMBER_ENOMEM, "out of memory sampling range bounds");
    int rc = EMBER_OK, me = ember__comm_rank(ctx);
    for (size_t p = 0; p < s->P; p++)
        ps[p].size = t->size;
    for (size_t p = 0; !rc && p < s->P; p++)
        for (size_t i = 0; !rc && (!s->own || s->own[p] == me) && i < s->in[p].n;
             i += step)
            rc = ember__buf_append(ctx, &ps[p], s->in[p].data + i * t->size, 1);
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (!rc)
        rc = ember__comm_allgather_parts_map(ctx, ps, s->P, t->size, s->own, msg);
    for (size_t p = 0; !rc && p < s->P; p++)
        rc = ember__buf_append(ctx, &sample, ps[p].data, ps[p].n);
    ember__parts_free(ctx, ps, s->P);
    if (!rc)
        rc = sort_buf(ctx, &sample, t,
                      s->ds->u.shuffle.descending ? CMP_KEY_DESC : CMP_KEY);
    s->bounds.size = t->size;
    for (size_t q = 1; !rc && q < s->Q && sample.n; q++)
        rc = ember__buf_append(ctx, &s->bounds,
                               sample.data + (sample.n * q / s->Q) * t->size, 1);
    ember__buf_free(ctx, &sample);
    return rc == EMBER_ENOMEM && msg && !msg[0]
               ? ember__err(msg, rc, "out of memory sampling range bounds")
               : rc;
}

/* Every input partition's size, on every rank (gathered under MPI), so
 * the total and repartition's global indices are a serial run's. */
static int side_sizes(ember_ctx *ctx, shuffle_side *s, char *msg)
{
    uint64_t *n = ember__calloc(ctx, s->P + 1, sizeof *n);
    if (!n)
        return ember__err(msg, EMBER_ENOMEM, "out of memory in shuffle");
    for (size_t p = 0; p < s->P; p++)
        n[p] = s->in[p].n;
    int rc = ember__comm_allgather_fixed_map(ctx, n, s->P, sizeof *n, s->own,
                                             msg);
    for (size_t p = 0; !rc && p < s->P; p++) {
        s->base[p] = s->total;
        s->total += (size_t)n[p];
    }
    ember__free(ctx, n);
    return rc;
}

/* Map side of one input partition (reduce_by_key combined it as it came). */
static int bucket_task(void *state, size_t p, char *msg)
{
    shuffle_side *s = state;
    (void)msg;
    return bucket(s->ds->ctx, s, p);
}

/* The map side: the input partitions this rank holds are computed,
 * combined and bucketed; under MPI the buckets are then exchanged, so this
 * rank holds, of every input partition, the buckets of its output
 * partitions (comm.h, ember__comm_exchange_map). */
static int side_prepare(shuffle_side *s, ember_ds *ds, ember_ds *src,
                        char *msg)
{
    ember_ctx *ctx = ds->ctx;
    memset(s, 0, sizeof *s);
    s->ds = ds;
    s->src = src;
    s->P = src->nparts;
    s->Q = ds->nparts;
    /* Every input partition keeps Q + 1 bucket offsets while the outputs
     * are read: P x Q grows fast (ember-sssp's shuffle plan at --partitions
     * 65536 needed 34 GB and ran into the kernel's OOM killer). Past the
     * memory budget, refused, alike on every rank. */
    double keep = (double)s->P * (double)(s->Q + 1) * (double)sizeof(size_t);
    int rc = keep > (double)ctx->budget
                 ? ember__err(msg, EMBER_EBUDGET, "a shuffle of %zu into %zu partitions "
                              "keeps %.0f MB of bucket offsets, more than the memory "
                              "budget (%.0f MB): use fewer partitions", s->P, s->Q,
                              keep / 1e6, (double)ctx->budget / 1e6)
                 : EMBER_OK;
    if ((rc = ember__comm_agree_status(ctx, rc, 0, msg)))
        return rc;
    rc = ds->u.shuffle.kind == EMBER__SH_REDUCE
             ? materialize_combined(ds, &s->in, msg)
             : ember__materialize_owned(src, &s->in, msg);
    if (rc)
        return rc;
    rc = ember__owners(src, &s->own, msg);
    s->start = ember__calloc(ctx, s->P + 1, sizeof *s->start);
    s->base = ember__calloc(ctx, s->P + 1, sizeof *s->base);
    if (!rc && (!s->start || !s->base))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory in shuffle");
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (!rc)
        rc = side_sizes(ctx, s, msg);
    ember__shuffle_kind k = ds->u.shuffle.kind;
    if (!rc && (k == EMBER__SH_RANGE || k == EMBER__SH_SORT))
        rc = range_bounds(ctx, s, msg);
    if (rc)
        return rc;
    size_t failed = 0;
    rc = ember__parallel_owned(ctx, 0, s->P, s->own, bucket_task, s, &failed,
                               msg);
    if (rc && msg && !msg[0])
        ember__err(msg, rc, "shuffle #%llu failed in input partition %zu: %s",
                   (unsigned long long)ds->id, failed, ember_strerror(rc));
    if (!rc)
        rc = ember__comm_exchange_map(ctx, s->in, s->start, s->P, s->Q,
                                      src->type.size, s->own, msg);
    return rc;
}

static void side_free(ember_ctx *ctx, shuffle_side *s)
{
    ember__parts_free(ctx, s->in, s->P);
    for (size_t p = 0; s->start && p < s->P; p++)
        ember__free(ctx, s->start[p]);
    ember__free(ctx, s->start);
    ember__free(ctx, s->base);
    ember__free(ctx, s->own);
    ember__buf_free(ctx, &s->bounds);
}

/* Bucket q of every input partition, in partition order. A bucket that
 * is all of its input partition, taken first, is taken over instead of
 * copied: no other task reads that partition, since the tasks look only at
 * their buckets' bounds in s->start until a bucket has records. */
static int gather(ember_ctx *ctx, shuffle_side *s, size_t q, ember__buf *out)
{
    size_t size = s->src->type.size, total = 0, first = s->P;
    out->size = size;
    for (size_t p = 0; p < s->P; p++) {
        total += s->start[p][q + 1] - s->start[p][q];
        first = first == s->P && total ? p : first;
    }
    /* exactly its room, unless it takes a partition over */
    if (total && s->start[first][q + 1] - s->start[first][q] < s->in[first].n) {
        if (!(out->data = ember__malloc(ctx, ember__mul(total, size))))
            return EMBER_ENOMEM;
        out->cap = total;
    }
    for (size_t p = 0; p < s->P; p++) {
        const size_t *st = s->start[p];
        size_t n = st[q + 1] - st[q];
        if (n == 0)
            continue;
        if (!out->data && n == s->in[p].n) {
            *out = s->in[p];
            s->in[p] = (ember__buf){NULL, 0, 0, size};
            continue;
        }
        int rc = ember__buf_append(ctx, out, s->in[p].data + st[q] * size, n);
        if (rc)
            return rc;
    }
    return EMBER_OK;
}

static int reduce_side(ember_ds *ds, shuffle_side *sides, size_t q, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    ember__buf a = {0}, b = {0}, j = {NULL, 0, 0, ds->type.size};
    ember__buf *res = &a;
    int rc = gather(ctx, &sides[0], q, &a);
    switch (ds->u.shuffle.kind) {
    case EMBER__SH_REDUCE:
        if (!rc && !(rc = sort_buf(ctx, &a, &ds->type, CMP_KEY)))
            rc = fold_runs(ds, &a, "output", q, msg);
        break;
    case EMBER__SH_GROUP:
    case EMBER__SH_SORT:
        if (!rc)
            rc = sort_buf(ctx, &a, &ds->type,
                          ds->u.shuffle.descending ? CMP_KEY_DESC : CMP_KEY);
        break;
    case EMBER__SH_DISTINCT:
        if (!rc && !(rc = sort_buf(ctx, &a, &ds->type, CMP_FIELDS)))
            rc = dedupe(ds, &a);
        break;
    case EMBER__SH_JOIN:
        if (!rc)
            rc = gather(ctx, &sides[1], q, &b);
        if (!rc && !(rc = sort_buf(ctx, &a, &sides[0].src->type, CMP_KEY)) &&
            !(rc = sort_buf(ctx, &b, &sides[1].src->type, CMP_KEY)))
            rc = merge_join(ctx, &ds->type, &sides[0].src->type, &a,
                            &sides[1].src->type, &b, &j);
        res = &j;
        break;
    default:
        break;
    }
    if (!rc) {
        /* folding, deduplicating and joining leave room behind (a
         * reduce's output kept its gathered input's allocation: 14 times
         * its records in Spark's PageRank written on ember) */
        ember__buf_fit(ctx, res);
        rc = ember__store_put(ctx, ds->id, q, res->data, res->n, ds->type.size,
                              EMBER_MEMORY_AND_DISK, msg);
        res->data = NULL;
    }
    ember__buf_free(ctx, &a);
    ember__buf_free(ctx, &b);
    ember__buf_free(ctx, &j);
    return rc == EMBER_ENOMEM && msg && !msg[0]
               ? ember__err(msg, rc, "out of memory in shuffle #%llu",
                            (unsigned long long)ds->id)
               : rc;
}

typedef struct {
    ember_ds *ds;
    shuffle_side *sides;
} shuffle_job;

static int reduce_task(void *state, size_t q, char *msg)
{
    shuffle_job *j = state;
    return reduce_side(j->ds, j->sides, q, msg);
}

int ember__shuffle_run(ember_ds *ds, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    shuffle_side sides[2];
    memset(sides, 0, sizeof sides);
    int nsides = ds->u.shuffle.kind == EMBER__SH_JOIN ? 2 : 1;
    int rc = EMBER_OK;
    for (int i = 0; !rc && i < nsides; i++)
        rc = side_prepare(&sides[i], ds, ds->parent[i], msg);
    ember__store_drop(ctx, ds->id);
    shuffle_job job = {ds, sides};
    /* Output partitions are laid out by the block map: each rank reduces
     * and stores its own. */
    if (!rc)
        rc = ember__parallel_owned(ctx, 0, ds->nparts, NULL, reduce_task, &job,
                                   NULL, msg);
    for (int i = 0; i < nsides; i++)
        side_free(ctx, &sides[i]);
    if (!rc)
        ds->u.shuffle.done = 1;
    return rc;
}
