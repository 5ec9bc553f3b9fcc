/* stream_state.c: the keyed state of an aggregating stream.
 *
 * The state is one array of records sorted by key, keys unique, plus for
 * EMBER_KEY_TEXT a dictionary: an append-only byte arena holding each
 * distinct string once, which state records point into (fields 1 and 2).
 * Each batch's reduction (records sorted by key, unique keys) is merged in
 * by one linear merge-join.
 *
 * String keys. Records are fixed-size, so a batch record carries a 64-bit
 * key computed from its string plus a reference to the string's bytes in
 * the batch text. Two different strings may share a key. Nothing ever
 * merges records on the key alone:
 * - In the batch's reduce_by_key, ember__ss_reduce_combine compares the
 *   bytes and sets aside ("spills") a record whose string differs from the
 *   accumulator's, instead of folding it.
 * - In the merge, a batch record whose key is in the state under another
 *   string is set aside too. The set-aside records are then placed, in a
 *   deterministic order, by probing: the string's key for probe t >= 1 is
 *   a seeded hash of its bytes (seed t), and the first probe whose key is
 *   free or holds the same string wins.
 * Invariant: a string stored under its probe-t key has probes 0..t-1
 * occupied by other strings (state rows are never removed), so a batch
 * string whose primary key is absent from the state is new. That keeps the
 * common path one merge-join, with no hash table.
 *
 * Output order for strings is the byte order of the strings (memcmp, then
 * length): `order` keeps the state's positions in that order and is
 * updated by merging in the (sorted) new strings, so complete-mode output
 * costs O(rows) a batch, not a sort.
 *
 * Snapshots go through the checkpoint file layer (ckptfile.c): one HDF5
 * file per version, /datasets/state (records), /blobs/text (dictionary)
 * and /scalars/text_bytes, all with Fletcher32 checksums, committed
 * atomically.
 */
#include "stream_internal.h"

#include <inttypes.h>
#include <string.h>

/* Probes before giving up on placing a string: each is a fresh 64-bit
 * hash, so needing more than a few means something is badly wrong. */
#define MAX_PROBES 64

/* ---- the string hash ------------------------------------------------------ */

#define S0 0xa0761d6478bd642fULL
#define S1 0xe7037ed1a0b428dbULL
#define S2 0x8ebc6af09c88c6e3ULL
#define S3 0x589965cc75374cc3ULL

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Little-endian loads, so keys are the same on every platform. */
static inline uint64_t le_partial(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
#else
    memcpy(&v, p, n);
#endif
    return v;
}

static inline uint64_t le64(const unsigned char *p)
{
    return le_partial(p, 8);
}

static uint64_t hash_seeded(const void *bytes, size_t len, uint64_t seed)
{
    const unsigned char *p = bytes;
    uint64_t h = seed ^ S0, a, b;
    size_t n = len;
    while (n > 16) {
        h = mum(le64(p) ^ S1, le64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    if (n > 8) {
        a = le64(p);
        b = le_partial(p + 8, n - 8);
    } else {
        a = le_partial(p, n);
        b = 0;
    }
    return mum(S1 ^ (uint64_t)len, mum(a ^ S2, b ^ h ^ S3));
}

uint64_t ember_stream_hash(const void *bytes, size_t len)
{
    return hash_seeded(bytes, len, 0);
}

static uint64_t probe_key(const char *bytes, size_t len, unsigned t)
{
    return hash_seeded(bytes, len, ember__hash64(t));
}

/* ---- records ------------------------------------------------------------------ */

static inline uint64_t rd64(const unsigned char *r, uint32_t off)
{
    uint64_t v;
    memcpy(&v, r + off, sizeof v);
    return v;
}

static inline void wr64(unsigned char *r, uint32_t off, uint64_t v)
{
    memcpy(r + off, &v, sizeof v);
}

typedef struct {
    uint32_t off, len; /* byte offsets of the text fields in a record */
} text_fields;

static text_fields fields_of(const ember_type *t)
{
    return (text_fields){t->field[1].offset, t->field[2].offset};
}

/* The string of a record whose reference is into base[0..size). NULL when
 * the reference is out of range. The empty string is never NULL: a
 * dictionary that holds only it has no bytes (base NULL), and "" met
 * again must be the same string, not a new one. */
static const char *rec_text(const unsigned char *r, text_fields tf,
                            const char *base, size_t size, size_t *len)
{
    uint64_t o = rd64(r, tf.off), l = rd64(r, tf.len);
    *len = 0;
    if (o > size || l > size - o)
        return NULL;
    *len = (size_t)l;
    return base ? base + o : "";
}

static int text_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

int ember__ss_check_type(const ember_type *t, ember_stream_key key, char *msg)
{
    if (key == EMBER_KEY_NONE)
        return EMBER_OK;
    if (key == EMBER_KEY_NUMBER)
        return ember__type_check_key(t, "stream state", msg);
    if (key != EMBER_KEY_TEXT)
        return ember__err(msg, EMBER_EINVAL, "stream: unknown key kind %d", (int)key);
    for (uint32_t f = 0; f < 3; f++)
        if (f >= t->nfields || t->field[f].kind != EMBER_U64 || t->field[f].count > 1) {
            char d[256];
            ember_type_describe(t, d, sizeof d);
            return ember__err(msg, EMBER_ETYPE,
                              "stream: EMBER_KEY_TEXT records start with three u64 "
                              "fields (key, text offset, text length); %s does not",
                              d);
        }
    return EMBER_OK;
}

/* ---- folding ---------------------------------------------------------------------- */

int ember__ss_fold(const ember_type *t, ember_stream_key key,
                   ember_combine_fn merge, void *merge_arg, void *acc,
                   const void *in, size_t n)
{
    uint32_t first = key == EMBER_KEY_TEXT ? EMBER__SS_TEXT_FIRST_VALUE : 1;
    if (!merge) {
        ember__sum_records(t, in, n, acc, first);
        return 0;
    }
    /* The key and text fields are the stream's: put them back whatever
     * the user function did. */
    unsigned char head[64];
    size_t hb = first < t->nfields ? t->field[first].offset : t->size;
    hb = hb < sizeof head ? hb : sizeof head;
    memcpy(head, acc, hb);
    int rc = merge(acc, in, n, merge_arg);
    memcpy(acc, head, hb);
    return rc;
}

/* Sets a record aside for the merge; -1 when out of memory. */
static int spill(ember__ss_reduce *R, const void *rec)
{
    int bad;
#pragma omp critical(ember_stream_spill)
    {
        bad = ember__buf_append(R->ctx, &R->spills, rec, 1);
        if (bad)
            R->failed = 1;
    }
    return bad ? -1 : 0;
}

static int bad_ref(ember__ss_reduce *R)
{
#pragma omp atomic write
    R->bad_ref = 1;
    return 1;
}

int ember__ss_reduce_combine(void *acc, const void *in, size_t n, void *arg)
{
    ember__ss_reduce *R = arg;
    if (R->key != EMBER_KEY_TEXT)
        return ember__ss_fold(R->type, R->key, R->merge, R->merge_arg, acc, in, n);
    text_fields tf = fields_of(R->type);
    size_t la, lb, size = R->type->size;
    const char *a = rec_text(acc, tf, R->text, R->text_size, &la);
    if (!a)
        return bad_ref(R);
    const unsigned char *r = in;
    for (size_t i = 0; i < n; i++, r += size) {
        const char *b = rec_text(r, tf, R->text, R->text_size, &lb);
        if (!b)
            return bad_ref(R);
        if (la == lb && memcmp(a, b, la) == 0) {
            if (ember__ss_fold(R->type, R->key, R->merge, R->merge_arg, acc, r, 1))
                return 1;
        } else if (spill(R, r)) {
            return 1;
        }
    }
    return 0;
}

/* ---- the batch reduction ---------------------------------------------------------
 *
 * reduceByKey as Spark runs it (combineByKey): the batch's rows are hash
 * partitioned by key (ember_partition_by), then each partition is sorted by
 * key and its runs folded (here, in a map_partitions task). The sort works
 * on (64-bit sortable key, position) pairs with inline comparisons: the
 * engine's general reduce_by_key compares records through a function per
 * step, which on word counts cost more than counting the words. */

/* A u64 whose order and equality are ember__key_cmp's: integers with the
 * sign bit flipped; floats by their IEEE bits made monotonic, -0.0 as 0.0,
 * every NaN equal and last. */
uint64_t ember__ss_sort_key(const ember_type *t, const void *rec)
{
    const unsigned char *p = (const unsigned char *)rec + t->field[0].offset;
    switch (t->field[0].kind) {
    case EMBER_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return (uint64_t)(uint32_t)v ^ 0x80000000u;
    }
    case EMBER_I64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v ^ (1ULL << 63);
    }
    case EMBER_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    case EMBER_F32:
    case EMBER_F64: {
        double d;
        if (t->field[0].kind == EMBER_F32) {
            float f;
            memcpy(&f, p, 4);
            d = f;
        } else {
            memcpy(&d, p, 8);
        }
        if (d != d)
            return UINT64_MAX;
        if (d == 0)
            d = 0.0;
        uint64_t b;
        memcpy(&b, &d, 8);
        return b >> 63 ? ~b : b | (1ULL << 63);
    }
    }
    return 0;
}

typedef struct {
    uint64_t k, i;
} kpos;

/* Stable bottom-up merge sort of pairs by k; returns a or tmp, whichever
 * holds the result. */
static kpos *merge_kpos(kpos *a, kpos *tmp, size_t n)
{
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            if (mid == hi || a[mid - 1].k <= a[mid].k) { /* already in order */
                memcpy(tmp + lo, a + lo, (hi - lo) * sizeof *a);
                continue;
            }
            while (i < mid && j < hi)
                tmp[k++] = a[j].k < a[i].k ? a[j++] : a[i++];
            while (i < mid)
                tmp[k++] = a[i++];
            while (j < hi)
                tmp[k++] = a[j++];
        }
        kpos *s = a;
        a = tmp;
        tmp = s;
    }
    return a;
}

static void insertion_kpos(kpos *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        kpos x = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1].k > x.k; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

#define SMALL_BUCKET 48

/* Stable sort of pairs by k, the result in a (tmp: scratch of n). Keys
 * from a hash are uniform, so one counting pass on the top bits of
 * (k - min) leaves buckets of a few pairs, each finished by insertion;
 * a crowded bucket (skewed numeric keys) gets a merge sort. */
static void sort_kpos(ember_ctx *ctx, kpos *a, kpos *tmp, size_t n)
{
    if (n <= SMALL_BUCKET) {
        insertion_kpos(a, n);
        return;
    }
    uint64_t lo = a[0].k, hi = a[0].k;
    for (size_t i = 1; i < n; i++) {
        lo = a[i].k < lo ? a[i].k : lo;
        hi = a[i].k > hi ? a[i].k : hi;
    }
    unsigned bits = 1;
    while (bits < 20 && ((size_t)1 << bits) < n / 4)
        bits++;
    uint64_t span = hi - lo;
    unsigned shift = 0;
    while (shift < 64 && (span >> shift) >= ((uint64_t)1 << bits))
        shift++;
    size_t nb = (size_t)1 << bits;
    size_t *start = ember__calloc(ctx, nb + 1, sizeof *start);
    if (!start) { /* no room for buckets: sort the plain way */
        kpos *r = merge_kpos(a, tmp, n);
        if (r != a)
            memcpy(a, r, n * sizeof *a);
        return;
    }
    for (size_t i = 0; i < n; i++)
        start[((a[i].k - lo) >> shift) + 1]++;
    for (size_t b = 0; b < nb; b++)
        start[b + 1] += start[b];
    for (size_t i = 0; i < n; i++)
        tmp[start[(a[i].k - lo) >> shift]++] = a[i];
    /* start[b] is now the end of bucket b */
    for (size_t b = 0, from = 0; b < nb; from = start[b++]) {
        size_t len = start[b] - from;
        if (len <= SMALL_BUCKET) {
            insertion_kpos(tmp + from, len);
        } else {
            kpos *r = merge_kpos(tmp + from, a + from, len);
            if (r != tmp + from)
                memcpy(tmp + from, r, len * sizeof *a);
        }
    }
    ember__free(ctx, start);
    memcpy(a, tmp, n * sizeof *a);
}

/* Comparing strings is a cache miss per string: fetch a few ahead. */
static inline void prefetch_text(const ember__ss_reduce *R, const unsigned char *rec)
{
    uint64_t o;
    memcpy(&o, rec + R->type->field[1].offset, sizeof o);
    if (o < R->text_size)
        __builtin_prefetch(R->text + o);
}

static void set_failed(ember__ss_reduce *R)
{
#pragma omp atomic write
    R->failed = 1;
}

int ember__ss_fold_partition(const void *in, size_t n, ember_emitter *em, void *arg)
{
    ember__ss_reduce *R = arg;
    if (n == 0)
        return 0;
    const ember_type *t = R->type;
    size_t size = t->size;
    const unsigned char *r = in;
    kpos *a = ember__malloc(R->ctx, ember__mul(n, sizeof *a));
    kpos *tmp = ember__malloc(R->ctx, ember__mul(n, sizeof *tmp));
    unsigned char *out = ember__malloc(R->ctx, ember__mul(n, size));
    int rc = a && tmp && out ? 0 : 1;
    if (rc)
        set_failed(R);
    size_t m = 0;
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            a[i] = (kpos){ember__ss_sort_key(t, r + i * size), i};
        sort_kpos(R->ctx, a, tmp, n);
        kpos *s = a;
        int text = R->key == EMBER_KEY_TEXT;
        for (size_t i = 0; text && i < n && i < 64; i++)
            prefetch_text(R, r + s[i].i * size);
        for (size_t i = 0; !rc && i < n;) {
            unsigned char *acc = out + m++ * size;
            memcpy(acc, r + s[i].i * size, size);
            size_t j = i + 1;
            for (; !rc && j < n && s[j].k == s[i].k; j++) {
                if (text && j + 64 < n) /* strings are far apart: fetch ahead */
                    prefetch_text(R, r + s[j + 64].i * size);
                rc = ember__ss_reduce_combine(acc, r + s[j].i * size, 1, R);
            }
            if (text && i + 64 < n)
                prefetch_text(R, r + s[i + 64].i * size);
            i = j;
        }
    }
    if (!rc && m)
        rc = ember_emit(em, out, m);
    ember__free(R->ctx, a);
    ember__free(R->ctx, tmp);
    ember__free(R->ctx, out);
    return rc;
}

/* ---- a stable merge sort of positions, with a context ------------------------------- */

typedef int (*pos_cmp)(const void *cx, size_t a, size_t b);

static int sort_pos(ember_ctx *ctx, size_t *idx, size_t n, pos_cmp cmp,
                    const void *cx)
{
    if (n < 2)
        return 0;
    size_t *tmp = ember__malloc(ctx, ember__mul(n, sizeof *tmp));
    if (!tmp)
        return -1;
    size_t *src = idx, *dst = tmp;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                dst[k++] = cmp(cx, src[j], src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        size_t *s = src;
        src = dst;
        dst = s;
    }
    if (src != idx)
        memcpy(idx, src, n * sizeof *idx);
    ember__free(ctx, tmp);
    return 0;
}

/* Positions of records in one buffer, compared by their strings. */
typedef struct {
    const unsigned char *rec;
    size_t size;
    text_fields tf;
    const char *base;
    size_t base_size;
} by_text;

static int cmp_by_text(const void *cx, size_t a, size_t b)
{
    const by_text *c = cx;
    size_t la = 0, lb = 0;
    const char *ta = rec_text(c->rec + a * c->size, c->tf, c->base, c->base_size, &la);
    const char *tb = rec_text(c->rec + b * c->size, c->tf, c->base, c->base_size, &lb);
    return text_cmp(ta, la, tb, lb);
}

/* Set-aside records: by key, then string, then position in the batch text
 * (deterministic whatever order the team produced them in). */
static int cmp_by_key_text(const void *cx, size_t a, size_t b)
{
    const by_text *c = cx;
    const unsigned char *ra = c->rec + a * c->size, *rb = c->rec + b * c->size;
    uint64_t ka = rd64(ra, 0), kb = rd64(rb, 0);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    int t = cmp_by_text(cx, a, b);
    if (t)
        return t;
    uint64_t oa = rd64(ra, c->tf.off), ob = rd64(rb, c->tf.off);
    return (oa > ob) - (oa < ob);
}

/* ---- state ------------------------------------------------------------------------------ */

int ember__ss_init(ember__sstate *st, ember_ctx *ctx, const ember_type *type,
                   ember_stream_key key, ember_combine_fn merge,
                   void *merge_arg, char *msg)
{
    memset(st, 0, sizeof *st);
    int rc = ember__ss_check_type(type, key, msg);
    if (rc)
        return rc;
    st->ctx = ctx;
    st->type = *type;
    st->key = key;
    st->merge = merge;
    st->merge_arg = merge_arg;
    st->rec.size = type->size;
    st->text.size = 1;
    return EMBER_OK;
}

void ember__ss_free(ember__sstate *st)
{
    if (!st->ctx)
        return;
    ember__buf_free(st->ctx, &st->rec);
    ember__buf_free(st->ctx, &st->text);
    ember__free(st->ctx, st->order);
    st->order = NULL;
}

/* Two state rows a and b hold the same string: their keys differ, so the
 * key function gave that string two keys (state rows are otherwise unique
 * by string, see the invariant above). Both rows would be output. */
static int two_keys(const by_text *c, size_t a, size_t b, char *msg)
{
    size_t len;
    const char *t = rec_text(c->rec + a * c->size, c->tf, c->base, c->base_size, &len);
    return ember__err(msg, EMBER_EINVAL,
                      "stream: the batch function gave the string '%.*s' two keys "
                      "(%016" PRIx64 " and %016" PRIx64 "); an EMBER_KEY_TEXT row's key "
                      "must be a function of its bytes alone (ember_stream_hash() is "
                      "one), or the string would be counted as two rows",
                      (int)(len < 64 ? len : 64), t, rd64(c->rec + a * c->size, 0),
                      rd64(c->rec + b * c->size, 0));
}

/* Positions 0..n-1 of c's records sorted by string, into *out; a string
 * held twice is refused. */
static int order_of(ember_ctx *ctx, const by_text *c, size_t n, size_t **out, char *msg)
{
    size_t *o = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *o));
    for (size_t i = 0; o && i < n; i++)
        o[i] = i;
    if (!o || sort_pos(ctx, o, n, cmp_by_text, c)) {
        ember__free(ctx, o);
        return ember__err(msg, EMBER_ENOMEM, "out of memory ordering %zu state rows", n);
    }
    for (size_t i = 1; i < n; i++)
        if (cmp_by_text(c, o[i - 1], o[i]) == 0) {
            int rc = two_keys(c, o[i - 1], o[i], msg);
            ember__free(ctx, o);
            return rc;
        }
    *out = o;
    return EMBER_OK;
}

/* Sorts the state's positions by string. EMBER_ENOMEM leaves no order
 * (output is then sorted); a state holding a string twice is refused. */
int ember__ss_order(ember__sstate *st, char *msg)
{
    if (st->key != EMBER_KEY_TEXT || st->order)
        return EMBER_OK;
    by_text c = {st->rec.data, st->type.size, fields_of(&st->type),
                 (const char *)st->text.data, st->text.n};
    return order_of(st->ctx, &c, st->rec.n, &st->order, msg);
}

/* ---- the merge --------------------------------------------------------------------------- */

/* One merge under way: the new state is built in `out`; the old one is
 * untouched until the end. */
typedef struct {
    ember__sstate *st;
    const char *btext;
    size_t bsize;
    text_fields tf;
    size_t size;
    ember__buf out;
    unsigned char *flag;   /* per out record: CHANGED, NEW */
    size_t flag_cap;
    size_t *newpos;        /* old position -> out position */
    size_t *fresh;         /* out positions of new strings, key order */
    size_t nfresh;
    ember__buf aside;      /* records to place by probing */
    size_t old_text;       /* arena length before the merge */
    int inserted;          /* a probe placed a record mid-array */
    uint64_t collisions;
} merge_job;

#define F_CHANGED 1
#define F_NEW 2

static int check_refs(const merge_job *J, const ember__buf *b, const char *what,
                      char *msg)
{
    for (size_t i = 0; b && i < b->n; i++) {
        size_t len;
        if (!rec_text(b->data + i * J->size, J->tf, J->btext, J->bsize, &len))
            return ember__err(msg, EMBER_EINVAL,
                              "stream: %s record %zu points at text [%" PRIu64 ", +%" PRIu64
                              ") outside the batch text (%zu bytes)",
                              what, i, rd64(b->data + i * J->size, J->tf.off),
                              rd64(b->data + i * J->size, J->tf.len), J->bsize);
    }
    return EMBER_OK;
}

/* Appends a record to out with the given flags. */
/* out and flag have room for every record the merge can make (job_init
 * reserved it): no allocation here. */
static int put(merge_job *J, const unsigned char *rec, unsigned char flags)
{
    if (J->out.n >= J->out.cap || J->out.n >= J->flag_cap)
        return -1;
    memcpy(J->out.data + J->out.n * J->size, rec, J->size);
    J->flag[J->out.n++] = flags;
    return 0;
}

/* Copies a batch string into the dictionary and points rec at it. */
static int intern(merge_job *J, unsigned char *rec)
{
    size_t len;
    const char *t = rec_text(rec, J->tf, J->btext, J->bsize, &len);
    uint64_t at = J->st->text.n;
    if (ember__buf_append(J->st->ctx, &J->st->text, t, len))
        return -1;
    wr64(rec, J->tf.off, at);
    return 0;
}

static int same_text(const merge_job *J, const unsigned char *state_rec,
                     const unsigned char *batch_rec)
{
    size_t la, lb;
    const char *a = rec_text(state_rec, J->tf, (const char *)J->st->text.data,
                             J->st->text.n, &la);
    const char *b = rec_text(batch_rec, J->tf, J->btext, J->bsize, &lb);
    return a && b && la == lb && memcmp(a, b, la) == 0;
}

static int key_cmp(const merge_job *J, const void *a, const void *b)
{
    uint64_t x = ember__ss_sort_key(&J->st->type, a), y = ember__ss_sort_key(&J->st->type, b);
    return (x > y) - (x < y);
}

/* A batch record meets state record `old` with an equal key. */
static int meet(merge_job *J, const unsigned char *old, const unsigned char *b,
                size_t i)
{
    ember__sstate *st = J->st;
    if (st->key == EMBER_KEY_TEXT && !same_text(J, old, b))
        return ember__buf_append(st->ctx, &J->aside, b, 1) ? -1 : 1;
    J->newpos[i] = J->out.n;
    if (put(J, old, F_CHANGED))
        return -1;
    unsigned char *acc = J->out.data + (J->out.n - 1) * J->size;
    return ember__ss_fold(&st->type, st->key, st->merge, st->merge_arg, acc, b, 1)
               ? -2 : 0;
}

/* A batch record whose key the state lacks: a new row. */
static int add_new(merge_job *J, const unsigned char *b)
{
    if (put(J, b, F_CHANGED | F_NEW))
        return -1;
    unsigned char *r = J->out.data + (J->out.n - 1) * J->size;
    if (J->st->key != EMBER_KEY_TEXT)
        return 0;
    if (intern(J, r))
        return -1;
    J->fresh[J->nfresh++] = J->out.n - 1;
    return 0;
}

/* Strings are compared where keys meet: fetch them a few rows ahead. */
static inline void prefetch_rows(const merge_job *J, const ember__buf *s, size_t i,
                                 const ember__buf *batch, size_t j)
{
    if (J->st->key != EMBER_KEY_TEXT)
        return;
    if (i < s->n) {
        uint64_t o = rd64(s->data + i * J->size, J->tf.off);
        if (o < J->st->text.n)
            __builtin_prefetch(J->st->text.data + o);
    }
    if (j < batch->n) {
        uint64_t o = rd64(batch->data + j * J->size, J->tf.off);
        if (o < J->bsize)
            __builtin_prefetch(J->btext + o);
    }
}

static int merge_join(merge_job *J, const ember__buf *batch)
{
    const ember__buf *s = &J->st->rec;
    size_t i = 0, j = 0, size = J->size;
    while (i < s->n || j < batch->n) {
        prefetch_rows(J, s, i + 8, batch, j + 8);
        const unsigned char *a = i < s->n ? s->data + i * size : NULL;
        const unsigned char *b = j < batch->n ? batch->data + j * size : NULL;
        int c = !a ? 1 : !b ? -1 : key_cmp(J, a, b);
        int r = 0;
        if (c < 0) {
            J->newpos[i++] = J->out.n;
            r = put(J, a, 0);
        } else if (c > 0) {
            r = add_new(J, b);
            j++;
        } else {
            r = meet(J, a, b, i);
            if (r == 1) /* set aside: the state row stays for the next */
                r = 0;
            else
                i++;
            j++;
        }
        if (r)
            return r;
    }
    return 0;
}

/* Position of key in out, or where it would go (*found 0). */
static size_t find_key(const merge_job *J, uint64_t key, int *found)
{
    size_t lo = 0, hi = J->out.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t k = rd64(J->out.data + mid * J->size, 0);
        if (k == key) {
            *found = 1;
            return mid;
        }
        if (k < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* Inserts rec at position pos of out (rare: a string placed by probing). */
static int insert_at(merge_job *J, size_t pos, const unsigned char *rec)
{
    if (put(J, rec, 0))
        return -1;
    size_t n = J->out.n, size = J->size;
    memmove(J->out.data + (pos + 1) * size, J->out.data + pos * size, (n - 1 - pos) * size);
    memmove(J->flag + pos + 1, J->flag + pos, n - 1 - pos);
    memcpy(J->out.data + pos * size, rec, size);
    J->flag[pos] = F_CHANGED | F_NEW;
    J->inserted = 1;
    return 0;
}

/* Places one set-aside record by probing its string's keys. */
static int place(merge_job *J, unsigned char *rec, char *msg)
{
    ember__sstate *st = J->st;
    size_t len;
    const char *t = rec_text(rec, J->tf, J->btext, J->bsize, &len);
    for (unsigned p = 0; p < MAX_PROBES; p++) {
        uint64_t key = p == 0 ? rd64(rec, 0) : probe_key(t, len, p);
        int found;
        size_t pos = find_key(J, key, &found);
        unsigned char *o = J->out.data + pos * J->size;
        if (found && same_text(J, o, rec)) {
            J->flag[pos] |= F_CHANGED;
            return ember__ss_fold(&st->type, st->key, st->merge, st->merge_arg, o, rec, 1)
                       ? -2 : 0;
        }
        if (found)
            continue;
        wr64(rec, 0, key);
        if (intern(J, rec) || insert_at(J, pos, rec))
            return -1;
        J->collisions += p > 0;
        return 0;
    }
    return ember__err(msg, EMBER_ERANGE,
                      "stream: %u keys in a row are taken by other strings for "
                      "'%.*s'; the key function or the state is broken",
                      MAX_PROBES, (int)(len < 64 ? len : 64), t);
}

static int place_aside(merge_job *J, char *msg)
{
    size_t n = J->aside.n;
    if (!n)
        return 0;
    ember_ctx *ctx = J->st->ctx;
    size_t *idx = ember__malloc(ctx, ember__mul(n, sizeof *idx));
    if (!idx)
        return -1;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    by_text c = {J->aside.data, J->size, J->tf, J->btext, J->bsize};
    int rc = sort_pos(ctx, idx, n, cmp_by_key_text, &c) ? -1 : 0;
    unsigned char *rec = rc ? NULL : ember__malloc(ctx, J->size);
    if (!rc && !rec)
        rc = -1;
    for (size_t i = 0; !rc && i < n; i++) {
        memcpy(rec, J->aside.data + idx[i] * J->size, J->size);
        rc = place(J, rec, msg);
    }
    ember__free(ctx, rec);
    ember__free(ctx, idx);
    return rc;
}

/* The new order: the old one moved to the new positions, merged with the
 * new strings sorted; or all sorted afresh after a probe placed a string
 * mid-array. A new string equal to an old one or to another new one is
 * refused. Out of memory leaves *out NULL, "stale" (rebuilt when needed). */
static int next_order(merge_job *J, size_t **out, char *msg)
{
    ember__sstate *st = J->st;
    ember_ctx *ctx = st->ctx;
    by_text c = {J->out.data, J->size, J->tf, (const char *)st->text.data, st->text.n};
    size_t n = J->out.n, no = st->rec.n, i = 0, j = 0, k = 0;
    *out = NULL;
    if (!st->order || J->inserted) {
        int rc = order_of(ctx, &c, n, out, msg);
        if (rc == EMBER_ENOMEM)
            ember__msg_clear(msg); /* stale: output is sorted instead */
        return rc == EMBER_ENOMEM ? EMBER_OK : rc;
    }
    size_t *order = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *order));
    if (!order || sort_pos(ctx, J->fresh, J->nfresh, cmp_by_text, &c)) {
        ember__free(ctx, order);
        return 0;
    }
    /* Few new strings a batch once a stream has warmed up: each finds its
     * place by binary search, and the old order is copied in between. */
    for (j = 0; j < J->nfresh; j++) {
        size_t lo = i, hi = no, f = J->fresh[j];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cmp_by_text(&c, J->newpos[st->order[mid]], f) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t same = j > 0 && cmp_by_text(&c, J->fresh[j - 1], f) == 0 ? J->fresh[j - 1]
                      : lo < no && cmp_by_text(&c, J->newpos[st->order[lo]], f) == 0
                          ? J->newpos[st->order[lo]]
                          : SIZE_MAX;
        if (same != SIZE_MAX) {
            ember__free(ctx, order);
            return two_keys(&c, same, f, msg);
        }
        for (; i < lo; i++)
            order[k++] = J->newpos[st->order[i]];
        order[k++] = f;
    }
    for (; i < no; i++)
        order[k++] = J->newpos[st->order[i]];
    *out = order;
    return 0;
}

/* Positions of changed rows in output order: picked out of the new order
 * when there is one (no comparisons), else sorted. */
static int changed_rows(merge_job *J, const size_t *order, size_t **changed,
                        size_t *nchanged)
{
    ember_ctx *ctx = J->st->ctx;
    size_t n = 0;
    for (size_t i = 0; i < J->out.n; i++)
        n += (J->flag[i] & F_CHANGED) != 0;
    size_t *c = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *c));
    if (!c)
        return -1;
    n = 0;
    for (size_t i = 0; i < J->out.n; i++) {
        size_t at = order ? order[i] : i;
        if (J->flag[at] & F_CHANGED)
            c[n++] = at;
    }
    by_text bt = {J->out.data, J->size, J->tf, (const char *)J->st->text.data,
                  J->st->text.n};
    if (J->st->key == EMBER_KEY_TEXT && !order && sort_pos(ctx, c, n, cmp_by_text, &bt)) {
        ember__free(ctx, c);
        return -1;
    }
    *changed = c;
    *nchanged = n;
    return 0;
}

static void job_free(merge_job *J)
{
    ember_ctx *ctx = J->st->ctx;
    ember__buf_free(ctx, &J->out);
    ember__buf_free(ctx, &J->aside);
    ember__free(ctx, J->flag);
    ember__free(ctx, J->newpos);
    ember__free(ctx, J->fresh);
}

static int job_init(merge_job *J, ember__sstate *st, const ember__buf *batch,
                    const ember__buf *spills, const char *btext, size_t bsize)
{
    ember_ctx *ctx = st->ctx;
    memset(J, 0, sizeof *J);
    J->st = st;
    J->btext = btext;
    J->bsize = bsize;
    J->size = st->type.size;
    J->tf = st->key == EMBER_KEY_TEXT ? fields_of(&st->type) : (text_fields){0, 0};
    J->out.size = J->aside.size = J->size;
    J->old_text = st->text.n;
    size_t extra = (batch ? batch->n : 0) + (spills ? spills->n : 0);
    if (ember__buf_reserve(ctx, &J->out, st->rec.n + extra + 1))
        return -1;
    J->flag_cap = st->rec.n + extra + 1;
    J->flag = ember__malloc(ctx, J->flag_cap);
    if (!J->flag)
        return -1;
    J->newpos = ember__malloc(ctx, ember__mul(st->rec.n + 1, sizeof *J->newpos));
    J->fresh = ember__malloc(ctx, ember__mul(extra + 1, sizeof *J->fresh));
    if (!J->newpos || !J->fresh)
        return -1;
    if (spills && spills->n && ember__buf_append(ctx, &J->aside, spills->data, spills->n))
        return -1;
    return 0;
}

/* The merge's steps return -1 for out of memory and -2 for a failed merge
 * function, or an EMBER_* status with msg filled: made one status here. */
static int merge_status(const merge_job *J, int r, char *msg)
{
    if (r == -1)
        return ember__err(msg, EMBER_ENOMEM, "out of memory merging a batch "
                          "into %zu state rows", J->st->rec.n);
    if (r == -2)
        return ember__err(msg, EMBER_EUSER, "stream: the merge function failed");
    return r;
}

int ember__ss_merge(ember__sstate *st, const ember__buf *batch,
                    const ember__buf *spills, const char *btext,
                    size_t btext_size, size_t **changed, size_t *nchanged,
                    uint64_t *collisions, ember__ss_undo *undo, char *msg)
{
    if (undo)
        undo->active = 0;
    *changed = NULL;
    *nchanged = 0;
    merge_job J;
    int rc = merge_status(&J, job_init(&J, st, batch, spills, btext, btext_size), msg);
    if (!rc && st->key == EMBER_KEY_TEXT) {
        int bad = check_refs(&J, batch, "batch", msg);
        if (!bad)
            bad = check_refs(&J, spills, "batch", msg);
        if (bad) {
            job_free(&J);
            return bad;
        }
    }
    /* The string order is kept up to date batch by batch; after a restore
     * it is built once here. Without it (out of memory) output is sorted. */
    if (!rc && st->key == EMBER_KEY_TEXT && !st->order &&
        (rc = ember__ss_order(st, msg)) == EMBER_ENOMEM) {
        ember__msg_clear(msg); /* stale: output is sorted instead */
        rc = EMBER_OK;
    }
    if (!rc && batch)
        rc = merge_status(&J, merge_join(&J, batch), msg);
    if (!rc)
        rc = merge_status(&J, place_aside(&J, msg), msg);
    size_t *order = NULL;
    if (!rc && st->key == EMBER_KEY_TEXT)
        rc = next_order(&J, &order, msg);
    if (!rc)
        rc = merge_status(&J, changed_rows(&J, order, changed, nchanged), msg);
    if (rc) {
        ember__free(st->ctx, order);
        st->text.n = J.old_text;
        job_free(&J);
        return rc;
    }
    if (undo) {
        *undo = (ember__ss_undo){st->rec, st->order, J.old_text, 1};
    } else {
        ember__free(st->ctx, st->order);
        ember__buf_free(st->ctx, &st->rec);
    }
    st->order = order;
    st->rec = J.out;
    J.out.data = NULL;
    *collisions = J.collisions;
    job_free(&J);
    return EMBER_OK;
}

void ember__ss_rollback(ember__sstate *st, ember__ss_undo *u)
{
    if (!u->active)
        return;
    ember__buf_free(st->ctx, &st->rec);
    ember__free(st->ctx, st->order);
    st->rec = u->rec;
    st->order = u->order;
    st->text.n = u->text_n;
    u->active = 0;
}

void ember__ss_forget(ember__sstate *st, ember__ss_undo *u)
{
    if (!u->active)
        return;
    ember__buf_free(st->ctx, &u->rec);
    ember__free(st->ctx, u->order);
    u->active = 0;
}

/* ---- snapshots ------------------------------------------------------------------------------ */

/* A snapshot's parameters: the location's query id first (a copy of
 * another location of the same query is refused by it), then the
 * query's description. */
#define SS_QUERY_ID "query_id="

int ember__ss_save(const ember__sstate *st, const char *dir, uint64_t version,
                   const char *description, uint64_t fingerprint, const char *query_id,
                   char *msg)
{
    char sig[1024], name[40];
    ember_type_describe(&st->type, sig, sizeof sig);
    snprintf(name, sizeof name, "%" PRIu64 ".h5", version);
    size_t size = strlen(SS_QUERY_ID) + strlen(query_id) + strlen(description) + 2;
    char *params = ember__malloc(st->ctx, size);
    if (!params)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    snprintf(params, size, SS_QUERY_ID "%s\n%s", query_id, description);
    ember__ck_meta m = {.kind = "stream-state",
                        .program = "ember-stream",
                        .parameters = params,
                        .signature = sig,
                        .iteration = version,
                        .fingerprint = fingerprint};
    ember__ckw *w = NULL;
    int rc = ember__ckw_begin(st->ctx, &w, dir, name, &m, msg);
    ember__free(st->ctx, params);
    if (!rc)
        rc = ember__ckw_parts(w, "state", &st->type, &st->rec, 1, msg);
    /* The dictionary holds each string once, back to back, so its size is
     * the end of the last string: no separate size is stored. HDF5 cannot
     * chunk an empty dataset, so no blob means no text. */
    if (!rc && st->key == EMBER_KEY_TEXT && st->text.n)
        rc = ember__ckw_blob(w, "text", st->text.data, st->text.n, msg);
    if (!rc)
        return ember__ckw_commit(&w, NULL, NULL, msg);
    ember__ckw_abort(&w);
    return rc;
}

/* Keys strictly ascending and, for strings, every reference inside the
 * dictionary. */
static int check_loaded(const ember__sstate *st, const unsigned char *rec,
                        size_t n, const char *text, size_t tsize,
                        const char *path, char *msg)
{
    size_t size = st->type.size, len;
    text_fields tf = fields_of(&st->type);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = rec + i * size;
        if (i && ember__key_cmp(&st->type, r - size, r) >= 0)
            return ember__err(msg, EMBER_ECORRUPT, "%s: state keys out of order at "
                              "row %zu", path, i);
        if (st->key == EMBER_KEY_TEXT && !rec_text(r, tf, text, tsize, &len))
            return ember__err(msg, EMBER_ECORRUPT, "%s: state row %zu points outside "
                              "the dictionary", path, i);
    }
    return EMBER_OK;
}

/* The dictionary's size: the furthest end of a record's string. */
static uint64_t text_end(const ember__sstate *st, const unsigned char *rec, size_t n)
{
    text_fields tf = fields_of(&st->type);
    uint64_t end = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = rec + i * st->type.size;
        uint64_t o = rd64(r, tf.off), l = rd64(r, tf.len);
        if (o > UINT64_MAX - l)
            return UINT64_MAX;
        end = o + l > end ? o + l : end;
    }
    return end;
}

static int load_text(ember__sstate *st, ember__ckr *r, const char *path,
                     const unsigned char *rec, size_t n, char **text, size_t *tsize,
                     char *msg)
{
    *text = NULL;
    *tsize = 0;
    if (st->key != EMBER_KEY_TEXT)
        return EMBER_OK;
    uint64_t bytes = text_end(st, rec, n);
    if (bytes > SIZE_MAX / 2)
        return ember__err(msg, EMBER_ECORRUPT, "%s: a state row points past any "
                          "possible dictionary", path);
    *text = ember__malloc(st->ctx, (size_t)bytes + 1);
    if (!*text)
        return ember__err(msg, EMBER_ENOMEM, "%s: out of memory for the dictionary", path);
    int rc = bytes ? ember__ckr_blob(r, "text", *text, (size_t)bytes, msg) : EMBER_OK;
    if (rc) {
        ember__free(st->ctx, *text);
        *text = NULL;
        return rc == EMBER_ENOMEM ? rc : EMBER_ECORRUPT; /* msg says where */
    }
    *tsize = (size_t)bytes;
    return EMBER_OK;
}

static int check_info(const ember__sstate *st, const ember__ck_info *info,
                      uint64_t fingerprint, const char *query_id, const char *path,
                      char *msg)
{
    char sig[1024];
    ember_type_describe(&st->type, sig, sizeof sig);
    if (strcmp(info->kind, "stream-state") != 0)
        return ember__err(msg, EMBER_ECORRUPT, "%s: not a stream state snapshot "
                          "(kind '%s')", path, info->kind);
    if (info->fingerprint != fingerprint)
        return ember__err(msg, EMBER_EMISMATCH, "%s: written by another query "
                          "(fingerprint %016" PRIx64 ", this query %016" PRIx64 ")",
                          path, info->fingerprint, fingerprint);
    if (strcmp(info->signature, sig) != 0)
        return ember__err(msg, EMBER_EMISMATCH, "%s: state type %s, this query %s",
                          path, info->signature, sig);
    const char *id = info->parameters;
    size_t len = strlen(SS_QUERY_ID);
    if (!strncmp(id, SS_QUERY_ID, len) &&
        (strncmp(id + len, query_id, strlen(query_id)) != 0 ||
         id[len + strlen(query_id)] != '\n'))
        return ember__err(msg, EMBER_EMISMATCH, "%s: written under another checkpoint "
                          "location of this query (query id %.*s, this location's %s)",
                          path, (int)strcspn(id + len, "\n"), id + len, query_id);
    return EMBER_OK;
}

int ember__ss_load(ember__sstate *st, const char *path, uint64_t fingerprint,
                   const char *query_id, uint64_t version, char *msg)
{
    ember__ckr *r = NULL;
    void *data = NULL;
    char *text = NULL;
    size_t n = 0, tsize = 0;
    ember_type t;
    int rc = ember__ckr_open(st->ctx, &r, path, msg);
    if (!rc)
        rc = check_info(st, ember__ckr_info(r), fingerprint, query_id, path, msg);
    if (!rc && ember__ckr_info(r)->iteration != version)
        rc = ember__err(msg, EMBER_ECORRUPT, "%s: holds the state of batch %" PRIu64
                        ", not %" PRIu64, path, ember__ckr_info(r)->iteration, version);
    if (!rc && (rc = ember__ckr_dataset(r, "state", &t, &data, &n, NULL, NULL, msg)))
        rc = rc == EMBER_ENOMEM ? rc : EMBER_ECORRUPT;
    if (!rc && !ember_type_equal(&t, &st->type))
        rc = ember__err(msg, EMBER_EMISMATCH, "%s: the state's record type differs "
                        "from this query's", path);
    if (!rc)
        rc = load_text(st, r, path, data, n, &text, &tsize, msg);
    if (!rc)
        rc = check_loaded(st, data, n, text, tsize, path, msg);
    ember__ckr_close(&r);
    if (rc) {
        ember__free(st->ctx, data);
        ember__free(st->ctx, text);
        return rc;
    }
    ember__ss_free(st);
    st->rec = (ember__buf){data, n, n, st->type.size};
    st->text = (ember__buf){(unsigned char *)text, tsize, tsize, 1};
    return EMBER_OK;
}
