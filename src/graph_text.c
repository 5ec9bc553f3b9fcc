/* graph_text.c: edge lists (SNAP style) and Matrix Market coordinate files.
 *
 * The file is mapped (mapfile.c: should another process truncate it
 * meanwhile, the load fails with a message instead of dying of SIGBUS)
 * and cut into chunks at line starts; chunks are parsed
 * in parallel into arrays of id pairs, which become the builder's blocks.
 * Without relabel the file is parsed twice (the builder's count, then its
 * scatter), each thread parsing a contiguous range of chunks (a lane), so
 * no more than a chunk's pairs a thread are ever held: see "streaming"
 * below. With relabel every pair is held, since the ids must all be seen
 * before any is numbered.
 * Numbers are parsed by hand (strtoull is several times slower and accepts
 * signs and spaces we must refuse); the common "u v" line is found from
 * masks of 64 bytes' classes and its ids read eight bytes at a time
 * (fast_lines). A chunk stops at its first error and
 * remembers the byte position; the error reported is the first in the
 * file (the lowest chunk that failed), with its line number counted only
 * then, so errors are the same for any thread count. Without relabel, ids
 * are checked against the vertex limit while parsing, so an absurd id is
 * refused before anything is allocated for it.
 */
#include "graph_internal.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_BYTES ((size_t)4 << 20)

typedef struct {
    const char *path;
    ember__mapped map;   /* the file: data, size */
    int mtx;
    int symmetric;       /* mtx: symmetric or skew-symmetric */
    int has_value;       /* mtx: real or integer entries */
    int integer;         /* mtx: integer entries (a value is an integer) */
    uint64_t size_line;  /* mtx: the size line's number */
    int skew;            /* mtx: skew-symmetric */
    int weighted;        /* a weight per edge: the third column or value */
    uint64_t rows, cols, nnz;
    size_t body;         /* offset of the first edge line */
    uint64_t body_line;  /* its line number (1-based) */
    int wide;            /* relabel: u64 ids */
    uint64_t limit;      /* without relabel: ids must be below it */
} source;

typedef struct {
    size_t lo, hi;
    uint32_t *e32;       /* pairs */
    uint64_t *e64;       /* pairs (wide) */
    double *w;           /* weighted: a weight a pair */
    size_t n, cap;       /* pairs */
    uint64_t maxid;
    int any;
    uint64_t entries;    /* lines with an edge */
    uint64_t hash;       /* of the pairs and weights, in order */
    int status;          /* first error, or 0 */
    size_t err_pos;
    char err[192];
} chunk;

/* ---- the file ------------------------------------------------------------ */

/* Drops the parsed pages of [lo, hi) from memory: they are clean file
 * pages, read again from the file if ever touched (an error message's
 * line count), so the text never sits in memory whole next to the edges. */
static void release_pages(const source *s, size_t lo, size_t hi)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = (lo + page - 1) / page * page, b = hi / page * page;
    if (b > a)
        madvise((char *)s->map.data + a, b - a, MADV_DONTNEED);
}

/* ---- tokens ------------------------------------------------------------------ */

static inline int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static inline int is_end(char c)
{
    return is_blank(c) || c == '\n';
}

static const char nul_text[] = "a NUL byte in the line: a binary file, or UTF-16 text?";

static int chunk_fail(chunk *c, int status, const char *at, const char *base,
                      const char *fmt, const char *tok, const char *end)
{
    char t[48];
    size_t len = 0;
    while (tok && tok + len < end && !is_end(tok[len]) && len < sizeof t - 4)
        len++;
    memcpy(t, tok ? tok : "", len);
    t[len] = '\0';
    if (tok && tok + len < end && !is_end(tok[len]))
        strcpy(t + len, "...");
    if (tok && memchr(tok, '\0', len)) /* the quoted token would stop at it */
        snprintf(c->err, sizeof c->err, "%s", nul_text);
    else
        snprintf(c->err, sizeof c->err, fmt, t);
    c->status = status;
    c->err_pos = (size_t)(at - base);
    return status;
}

/* One id: digits only. Negative, signed, fractional or non-numeric tokens
 * and overflow are errors. */
static inline int parse_id(chunk *c, const char **pp, const char *end,
                           const char *base, uint64_t *out)
{
    const char *p = *pp, *tok = p;
    if (*p == '-' && p + 1 < end && (unsigned)(p[1] - '0') < 10)
        return chunk_fail(c, EMBER_EFORMAT, tok, base,
                          "negative vertex id '%s'", tok, end);
    if ((unsigned)(*p - '0') >= 10)
        return chunk_fail(c, EMBER_EFORMAT, tok, base,
                          "non-numeric token '%s' where a vertex id was expected",
                          tok, end);
    uint64_t v = 0;
    /* 19 digits cannot overflow: check only beyond them */
    const char *fast = end - p > 19 ? p + 19 : end;
    while (p < fast && (unsigned)(*p - '0') < 10)
        v = v * 10 + (unsigned)(*p++ - '0');
    while (p < end && (unsigned)(*p - '0') < 10) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return chunk_fail(c, EMBER_ERANGE, tok, base,
                              "vertex id '%s' does not fit in 64 bits", tok, end);
        v = v * 10 + d;
        p++;
    }
    if (p < end && !is_end(*p))
        return chunk_fail(c, EMBER_EFORMAT, tok, base,
                          "non-numeric token '%s' where a vertex id was expected",
                          tok, end);
    *pp = p;
    *out = v;
    return 0;
}

/* 1 when t is an integer as Matrix Market writes one: a sign, digits. */
static int is_integer(const char *t)
{
    t += *t == '-' || *t == '+';
    if (!*t)
        return 0;
    while ((unsigned)(*t - '0') < 10)
        t++;
    return !*t;
}

/* A number token written as at most 15 digits with an optional '.' among
 * them (not last), into *v: the digits as an integer over a power of
 * ten, both exact doubles, so the one division rounds as strtod does
 * (Clinger's fast path). Its length, or 0 for any other token (strtod
 * reads it), or a fraction where integer is set. */
static size_t plain_decimal(const char *p, const char *end, int integer, double *v)
{
    static const double ten[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    uint64_t m = 0;
    int digits = 0, frac = -1; /* frac: digits after the '.', -1 without one */
    const char *q = p;
    for (; q < end && digits <= 15; q++) {
        if ((unsigned)(*q - '0') < 10) {
            m = m * 10 + (unsigned)(*q - '0');
            digits++;
            frac += frac >= 0;
        } else if (*q == '.' && frac < 0 && digits > 0 && !integer) {
            frac = 0;
        } else {
            break;
        }
    }
    if (digits == 0 || digits > 15 || frac == 0 || (q < end && !is_end(*q)))
        return 0;
    *v = frac > 0 ? (double)m / ten[frac] : (double)m;
    return (size_t)(q - p);
}

/* A number token at p (a Matrix Market value or an edge weight) into
 * *out when out is not NULL; an integer one when integer is set. */
static int check_value(chunk *c, const char *p, const char *end,
                       const char *base, double *out, int integer)
{
    double v;
    if (!plain_decimal(p, end, integer, &v)) {
        char t[64];
        size_t len = 0;
        while (p + len < end && !is_end(p[len]) && len < sizeof t - 1) {
            t[len] = p[len];
            len++;
        }
        t[len] = '\0';
        char *stop;
        errno = 0;
        v = strtod(t, &stop);
        if (len == 0 || stop != t + len || (p + len < end && !is_end(p[len])))
            return chunk_fail(c, EMBER_EFORMAT, p, base,
                              out ? "non-numeric weight '%s'"
                                  : "non-numeric matrix value '%s'",
                              p, end);
        if (integer && !is_integer(t))
            return chunk_fail(c, EMBER_EFORMAT, p, base,
                              "matrix value '%s' is not an integer (the header says "
                              "integer)", p, end);
    }
    if (out && !(v > 0 && v <= DBL_MAX))
        return chunk_fail(c, EMBER_EFORMAT, p, base,
                          "bad weight '%s': weights must be positive finite numbers",
                          p, end);
    if (out)
        *out = v;
    return 0;
}

/* The value or weight after the ids, if the line must have one; *pp
 * moves past it. */
static int line_value(chunk *c, const source *s, const char **pp, const char *end,
                      const char *line, double *w)
{
    const char *p = *pp, *base = s->map.data;
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '\n' || *p == '#')
        return chunk_fail(c, EMBER_EFORMAT, line, base,
                          s->mtx ? "entry '%s ...' has no value (the header says real or integer)"
                                 : "edge '%s ...' has no weight (a weighted edge list has 'u v w' lines)",
                          line, end);
    if (check_value(c, p, end, base, s->weighted ? w : NULL, s->mtx && s->integer))
        return c->status;
    while (p < end && !is_end(*p))
        p++;
    *pp = p;
    return 0;
}

/* A Matrix Market entry is its indices and, unless the field is pattern,
 * one value: anything after them is an error (a pattern file with values,
 * a real file with a fourth column), not ignored. */
static int mtx_line_end(chunk *c, const source *s, const char *p, const char *end)
{
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '\n')
        return 0;
    return chunk_fail(c, EMBER_EFORMAT, p, s->map.data,
                      s->has_value ? "extra column '%s' after the entry's value (the "
                                     "header says an entry is 'row column value')"
                                   : "extra column '%s' after the entry's indices (the "
                                     "header says pattern: an entry is 'row column')",
                      p, end);
}

/* Grows the weights with the pairs (weighted sources only). */
static int grow_weights(chunk *c, ember_ctx *ctx, size_t cap, int weighted)
{
    if (!weighted)
        return 0;
    double *w = ember__realloc(ctx, c->w, ember__mul(cap, sizeof *w));
    if (w)
        c->w = w;
    return w == NULL;
}

/* Room for twice the pairs (and weights); 0 or ENOMEM (c->status). */
static int grow_edges(chunk *c, ember_ctx *ctx, int wide, const double *w)
{
    size_t cap = c->cap ? c->cap * 2 : 4096;
    void *p = wide ? ember__realloc(ctx, c->e64, ember__mul(cap, 16))
                   : ember__realloc(ctx, c->e32, ember__mul(cap, 8));
    if (p) {
        if (wide)
            c->e64 = p;
        else
            c->e32 = p;
    }
    if (!p || grow_weights(c, ctx, cap, w != NULL)) {
        c->status = EMBER_ENOMEM;
        snprintf(c->err, sizeof c->err, "out of memory for edges");
        return EMBER_ENOMEM;
    }
    c->cap = cap;
    return 0;
}

static inline int push_edge(chunk *c, ember_ctx *ctx, uint64_t a, uint64_t b, int wide,
                            const double *w)
{
    if (c->n == c->cap && grow_edges(c, ctx, wide, w))
        return EMBER_ENOMEM;
    if (wide) {
        c->e64[2 * c->n] = a;
        c->e64[2 * c->n + 1] = b;
    } else {
        c->e32[2 * c->n] = (uint32_t)a;
        c->e32[2 * c->n + 1] = (uint32_t)b;
    }
    if (w)
        c->w[c->n] = *w;
    c->n++;
    uint64_t x = (a << 32 | b) ^ (a >> 32) * UINT64_C(0x9e3779b97f4a7c15);
    if (w) {
        uint64_t bits;
        memcpy(&bits, w, sizeof bits);
        x ^= bits * UINT64_C(0xc2b2ae3d27d4eb4f);
    }
    c->hash = (c->hash ^ x) * UINT64_C(0xff51afd7ed558ccd) + UINT64_C(0x165667b19e3779f9);
    uint64_t mx = a > b ? a : b;
    if (!c->any || mx > c->maxid)
        c->maxid = mx;
    c->any = 1;
    return 0;
}

/* Checks and converts one edge of a line; 0 or an error. */
static int take_edge(chunk *c, const source *s, ember_ctx *ctx, uint64_t a,
                     uint64_t b, const double *w, const char *line)
{
    const char *base = s->map.data;
    if (s->mtx) {
        if (a == 0 || b == 0)
            return chunk_fail(c, EMBER_EFORMAT, line, base,
                              "index 0 in '%s...': Matrix Market indices start at 1",
                              line, s->map.data + s->map.size);
        if (a > s->rows || b > s->cols) {
            snprintf(c->err, sizeof c->err,
                     "entry (%llu, %llu) is outside the %llu x %llu matrix",
                     (unsigned long long)a, (unsigned long long)b,
                     (unsigned long long)s->rows, (unsigned long long)s->cols);
            c->status = EMBER_EFORMAT;
            c->err_pos = (size_t)(line - base);
            return c->status;
        }
        a--, b--;
    } else if (!s->wide && (a >= s->limit || b >= s->limit)) {
        uint64_t id = a > b ? a : b;
        char need[24] = "18446744073709551616"; /* id + 1 for id = 2^64 - 1 */
        if (id < UINT64_MAX)
            snprintf(need, sizeof need, "%llu", (unsigned long long)id + 1);
        snprintf(c->err, sizeof c->err,
                 "vertex id %llu is too large: it would need %s vertices, more "
                 "than the limit of %llu (2^32 or this machine's memory); use "
                 "--relabel for sparse ids",
                 (unsigned long long)id, need, (unsigned long long)s->limit);
        c->status = EMBER_ERANGE;
        c->err_pos = (size_t)(line - base);
        return c->status;
    }
    c->entries++;
    if (push_edge(c, ctx, a, b, s->wide, w))
        return c->status;
    if (s->mtx && s->symmetric && a != b)
        return push_edge(c, ctx, b, a, s->wide, w) ? c->status : 0;
    return 0;
}

static const char *next_line(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl + 1 : end;
}

/* The first carriage return in the line at p that no newline follows, or
 * NULL. '\r' counts as a blank so that "\r\n" ends need no case of their
 * own, but a file of old Mac line ends ('\r' alone) would then be one long
 * line, its ids run together: such a CR is an error. */
static const char *bare_cr(const char *p, const char *fend)
{
    const char *nl = memchr(p, '\n', (size_t)(fend - p));
    const char *e = nl ? nl : fend;
    const char *r = memchr(p, '\r', (size_t)(e - p));
    return r && (r + 1 < e || !nl) ? r : NULL;
}

static const char bare_cr_text[] =
    "carriage return without a newline: old Mac line endings? convert with "
    "tr '\\r' '\\n'";

/* ---- the fast path: the common line of a plain edge list, "digits blank
 * digits\n", ids of at most 10 digits below the limit, parsed and pushed in
 * one go (fast_lines); any other line is left to the general parser. The
 * pairs and the chunk's hash are the same either way. */

static inline uint64_t load8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* The number of len (1 to 8) digits that open t, eight bytes of the file
 * less '0' each (see swar_number): the bytes after them are shifted out
 * (zeros, as leading zero digits, fill the low bytes), and the digits
 * combined in pairs, fours and eights by three multiplications. */
static inline uint64_t swar_digits(uint64_t t, int len)
{
    t <<= 8 * (8 - len);
    t = t * 10 + (t >> 8);
    return ((t & UINT64_C(0x000000FF000000FF)) * (100 + (UINT64_C(1000000) << 32)) +
            ((t >> 16) & UINT64_C(0x000000FF000000FF)) * (1 + (UINT64_C(10000) << 32))) >> 32;
}

/* The number of 1 to 7 digits that opens the 8 bytes x (in file order,
 * read little-endian) into *v; 0 when x opens with a non-digit or with 8
 * digits. Eight bytes at once: t holds each byte minus '0' (a byte below
 * '0' borrows from the bytes after it only, so the digits before the
 * first non-digit are exact), a byte is a digit when t < 10, and the
 * digits are combined by swar_digits. */
static inline int swar_number(uint64_t x, uint64_t *v)
{
    uint64_t t = x - UINT64_C(0x3030303030303030);
    uint64_t stop = (t | (t + UINT64_C(0x7676767676767676))) & UINT64_C(0x8080808080808080);
    if (!stop)
        return 0;
    int len = __builtin_ctzll(stop) >> 3;
    if (len == 0)
        return 0;
    *v = swar_digits(t, len);
    return len;
}

/* fast_ids' two ids eight bytes at a time, when both are at most 7
 * digits and 16 bytes of the file follow p: 1 with *qq at the newline
 * that must end the line, or 0 with *qq untouched. (It once left *qq
 * after the first blank on a 0, and the digit-by-digit parse that follows
 * a 0 started there: "5  6" became the edge 0 -> 6.) */
static inline int swar_line(const source *s, const char *p, uint64_t *a, uint64_t *b,
                            const char **qq)
{
    const char *fend = s->map.data + s->map.size;
    if (fend - p < 16)
        return 0;
    int la = swar_number(load8(p), a);
    if (!la || (p[la] != ' ' && p[la] != '\t'))
        return 0;
    const char *r = p + la + 1;
    int lb = fend - r >= 8 ? swar_number(load8(r), b) : 0;
    if (!lb)
        return 0;
    *qq = r + lb;
    return 1;
}

/* The two ids that start the line at p (digits, one blank, digits, each
 * of at most 10 digits and below the limit) into *a, *b, with *qq just
 * past the second; 0 when the line does not start so. */
static inline int fast_pair(const source *s, const char *p, const char *end, uint64_t *a,
                            uint64_t *b, const char **qq)
{
    const char *q = p;
    if (!swar_line(s, p, a, b, &q)) {
        q = p; /* digit by digit from the line's start, whatever swar_line read */
        *a = 0, *b = 0;
        while (q < end && q - p < 10 && (unsigned)(*q - '0') < 10)
            *a = *a * 10 + (unsigned)(*q++ - '0');
        if (q == p || q == end || (*q != ' ' && *q != '\t'))
            return 0;
        const char *r = ++q;
        while (q < end && q - r < 10 && (unsigned)(*q - '0') < 10)
            *b = *b * 10 + (unsigned)(*q++ - '0');
        if (q == r)
            return 0;
    }
    *qq = q;
    return q < end && *a < s->limit && *b < s->limit;
}

/* The ids of a fast line at p into *a, *b, with *qq at its newline; 0
 * when the line is not one (the general parser takes it). */
static inline int fast_ids(const source *s, const char *p, const char *end, uint64_t *a,
                           uint64_t *b, const char **qq)
{
    return fast_pair(s, p, end, a, b, qq) && **qq == '\n';
}

/* The number of len (1 to 10) digits at p. */
static inline uint64_t digits_at(const char *p, int len)
{
    const uint64_t zeros = UINT64_C(0x3030303030303030);
    if (len <= 8)
        return swar_digits(load8(p) - zeros, len);
    return swar_digits(load8(p) - zeros, 8) * (len == 9 ? 10 : 100) +
           swar_digits(load8(p + 8) - zeros, len - 8);
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* How far ahead of the parse the file is fetched: the pages of a mapped
 * file lie anywhere in memory, and the hardware prefetcher stops at a
 * page's end, so without it each page's first lines wait for memory
 * (GAPBS's scale-20 .el, both passes, 2 threads: 0.41 s, 0.30 s with it;
 * 256 bytes ahead 0.36 s, 4 KiB 0.29-0.31 s). */
#define PREFETCH_AHEAD 1024

/* The two numbers of la and lb (1 to 8) digits at pa and pb into *a and
 * *b, together: each one's eight bytes shifted as in swar_digits, then
 * the sixteen digits as 16-bit lanes combined in pairs, fours and eights
 * by three multiply-adds (pmaddwd; every partial value fits a signed
 * 16-bit lane before the next). The same numbers as digits_at, without
 * its four scalar multiplications a line: GAPBS's scale-20 .el, one
 * thread, 8.1 -> 6.3 ns a line. */
static inline void digits_pair(const char *pa, int la, const char *pb, int lb,
                               uint64_t *a, uint64_t *b)
{
    const uint64_t zeros = UINT64_C(0x3030303030303030);
    uint64_t ta = (load8(pa) - zeros) << 8 * (8 - la), tb = (load8(pb) - zeros) << 8 * (8 - lb);
    __m128i x = _mm_unpacklo_epi64(_mm_cvtsi64_si128((long long)ta),
                                   _mm_cvtsi64_si128((long long)tb));
    __m128i zero = _mm_setzero_si128();
    /* 16-bit digits in file order: a's in lo, b's in hi */
    __m128i lo = _mm_unpacklo_epi8(x, zero), hi = _mm_unpackhi_epi8(x, zero);
    const __m128i by10 = _mm_set1_epi32(10 | 1 << 16), by100 = _mm_set1_epi32(100 | 1 << 16),
                  by10k = _mm_set1_epi32(10000 | 1 << 16);
    __m128i two = _mm_packs_epi32(_mm_madd_epi16(lo, by10), _mm_madd_epi16(hi, by10));
    __m128i four = _mm_madd_epi16(two, by100);
    __m128i eight = _mm_madd_epi16(_mm_packs_epi32(four, four), by10k);
    *a = (uint32_t)_mm_cvtsi128_si32(eight);
    *b = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(eight, 4));
}

/* Masks of the 64 bytes at p (bit i for byte i): newlines, blanks (space
 * or tab), and the bytes that are none of those and not a digit. */
static inline void classify64(const char *p, uint64_t *nl, uint64_t *sp, uint64_t *other)
{
    const __m128i lf = _mm_set1_epi8('\n'), blank = _mm_set1_epi8(' '),
                  tab = _mm_set1_epi8('\t');
    const __m128i shift = _mm_set1_epi8((char)(0x80 - '0')), ten = _mm_set1_epi8(-128 + 10);
    uint64_t n = 0, s = 0, d = 0;
    for (int k = 0; k < 4; k++) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        /* a digit: b - '0' below 10, as signed bytes offset by -128 */
        __m128i dig = _mm_cmplt_epi8(_mm_add_epi8(b, shift), ten);
        n |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, lf)) << 16 * k;
        __m128i gap = _mm_or_si128(_mm_cmpeq_epi8(b, blank), _mm_cmpeq_epi8(b, tab));
        s |= (uint64_t)(unsigned)_mm_movemask_epi8(gap) << 16 * k;
        d |= (uint64_t)(unsigned)_mm_movemask_epi8(dig) << 16 * k;
    }
    *nl = n;
    *sp = s;
    *other = ~(n | s | d);
}
#endif

/* A run of fast lines being pushed: the chunk's fields in registers. */
typedef struct {
    uint64_t hash, maxid;
    size_t n;
} run;

/* One pair onto the run, as push_edge pushes it (the same hash). */
static inline void run_push(run *r, uint32_t *e32, uint64_t a, uint64_t b)
{
    e32[2 * r->n] = (uint32_t)a;
    e32[2 * r->n + 1] = (uint32_t)b;
    r->n++;
    uint64_t x = (a << 32 | b) ^ (a >> 32) * UINT64_C(0x9e3779b97f4a7c15);
    r->hash = (r->hash ^ x) * UINT64_C(0xff51afd7ed558ccd) + UINT64_C(0x165667b19e3779f9);
    r->maxid = a > r->maxid ? a : r->maxid;
    r->maxid = b > r->maxid ? b : r->maxid;
}

#if defined(__SSE2__)
/* The fast lines that start in the 64 bytes at p, pushed onto r (with
 * room for 16, a line being at least 4 bytes): a fast line is digits, one
 * blank, digits, newline, ids of 1 to 10 digits below limit, the lines
 * fast_ids takes. Each line's bounds come from the masks of the bytes'
 * classes (classify64), not from parsing the line before it, so the lines
 * are parsed independently. Returns the bytes of the lines taken; sets
 * *declined when it stopped at a line that is not one. The ids' eight-byte
 * loads read up to 8 bytes past the window. */
static inline unsigned window_lines(run *r, uint32_t *e32, uint64_t limit, const char *p,
                                    int *declined)
{
    uint64_t nl, sp, other;
    __builtin_prefetch(p + PREFETCH_AHEAD);
    classify64(p, &nl, &sp, &other);
    unsigned at = 0; /* the current line's start */
    for (; nl; nl &= nl - 1) {
        unsigned e = (unsigned)__builtin_ctzll(nl);
        uint64_t in = ((UINT64_C(1) << e) - 1) & (~UINT64_C(0) << at);
        uint64_t gap = sp & in;
        if ((other & in) || !gap || (gap & (gap - 1)))
            break;
        unsigned k = (unsigned)__builtin_ctzll(gap);
        int la = (int)(k - at), lb = (int)(e - k - 1);
        if (la == 0 || lb == 0 || la > 10 || lb > 10)
            break;
        uint64_t a, b;
        if (la <= 8 && lb <= 8)
            digits_pair(p + at, la, p + k + 1, lb, &a, &b);
        else
            a = digits_at(p + at, la), b = digits_at(p + k + 1, lb);
        if (a >= limit || b >= limit)
            break;
        run_push(r, e32, a, b);
        at = e + 1;
    }
    *declined = nl != 0;
    return at;
}
#endif

/* A run of fast lines from p, pushed as push_edge would push them (the
 * same pairs, hash and largest id); returns where the run stopped (a line
 * for the general parser), or NULL when the push failed (c->status).
 * Where 72 bytes of the chunk remain, a window of 64 at a time
 * (window_lines: 10 % faster than finding each line's end by parsing it,
 * before the prefetch); in the last bytes, and on builds without SSE2, a
 * line at a time, eight bytes at a time (fast_ids). Both take the same
 * lines, so a line a window declines goes on to the general parser, and
 * the next one back to the windows. */
static const char *fast_lines(chunk *c, const source *s, ember_ctx *ctx, const char *p,
                              const char *end)
{
    const size_t n0 = c->n; /* c->n moves with each growth */
    run r = {c->hash, c->any ? c->maxid : 0, c->n};
    uint64_t a, b;
    const char *q;
#if defined(__SSE2__)
    while (end - p >= 64 + 8) {
        if (c->cap - r.n < 16) {
            c->n = r.n;
            if (grow_edges(c, ctx, 0, NULL))
                return NULL;
        }
        int declined;
        unsigned at = window_lines(&r, c->e32, s->limit, p, &declined);
        p += at;
        if (declined || !at) /* a line for the general parser, or one over 64 bytes */
            break;
    }
#endif
    while (p < end && fast_ids(s, p, end, &a, &b, &q)) {
        if (r.n == c->cap) {
            c->n = r.n;
            if (grow_edges(c, ctx, 0, NULL))
                return NULL;
        }
        run_push(&r, c->e32, a, b);
        p = q + 1;
    }
    if (r.n != n0) {
        c->any = 1;
        c->maxid = r.maxid;
    }
    c->entries += r.n - n0;
    c->n = r.n;
    c->hash = r.hash;
    return p;
}

/* The common line of a weighted edge list, "digits blank digits blank
 * weight\n" (the weight a plain decimal: plain_decimal, above zero), from
 * p on, pushed as the general parser pushes it (take_edge: the same pairs,
 * weights and hash); returns where the lines stopped (a line for the
 * general parser), or NULL when a push failed (c->status). */
static const char *fast_weighted_lines(chunk *c, const source *s, ember_ctx *ctx,
                                       const char *p, const char *end)
{
    uint64_t a, b;
    const char *q;
    double w;
    while (p < end && fast_pair(s, p, end, &a, &b, &q) && (*q == ' ' || *q == '\t')) {
        size_t len = plain_decimal(q + 1, end, 0, &w);
        const char *nl = q + 1 + len;
        if (!len || nl == end || *nl != '\n' || !(w > 0))
            break;
        c->entries++;
        if (push_edge(c, ctx, a, b, 0, &w))
            return NULL;
        p = nl + 1;
    }
    return p;
}

static void parse_chunk(chunk *c, const source *s, ember_ctx *ctx)
{
    const char *base = s->map.data, *p = base + c->lo, *end = base + c->hi;
    const int plain = !s->mtx && !s->weighted && !s->wide;
    const int weighted = !s->mtx && s->weighted && !s->wide;
    while (p < end) {
        if (plain && !(p = fast_lines(c, s, ctx, p, end)))
            return;
        if (weighted && !(p = fast_weighted_lines(c, s, ctx, p, end)))
            return;
        if (p == end)
            break;
        /* fast lines hold no NUL or '\r': only the general parser's need a
         * look. A line with a bare CR, or a comment, is searched for a NUL
         * (elsewhere a NUL breaks a token, which says so: chunk_fail), and
         * the NUL is named first, so that a binary file (an HDF5 file read
         * with --format el) gets the same error whatever its bytes: its
         * first line may hold both, in either order. */
        const char *start = p, *cr = bare_cr(p, base + s->map.size);
        while (p < end && is_blank(*p))
            p++;
        int comment = p < end && (*p == '#' || *p == '%');
        const char *nul = NULL;
        if (cr || comment)
            nul = memchr(start, '\0', (size_t)(next_line(start, base + s->map.size) - start));
        if (nul || cr) {
            snprintf(c->err, sizeof c->err, "%s", nul ? nul_text : bare_cr_text);
            c->status = EMBER_EFORMAT;
            c->err_pos = (size_t)((nul ? nul : cr) - base);
            return;
        }
        if (p == end)
            break;
        if (*p == '\n') {
            p++;
            continue;
        }
        if (comment) {
            p = next_line(p, end);
            continue;
        }
        const char *line = p;
        uint64_t a = 0, b = 0;
        if (parse_id(c, &p, end, base, &a))
            return;
        while (p < end && is_blank(*p))
            p++;
        if (p == end || *p == '\n' || *p == '#') {
            chunk_fail(c, EMBER_EFORMAT, line, base,
                       "line has one id ('%s'); an edge needs two", line, end);
            return;
        }
        if (parse_id(c, &p, end, base, &b))
            return;
        double w = 0;
        if (((s->mtx && s->has_value) || s->weighted) &&
            line_value(c, s, &p, end, line, &w))
            return;
        if (s->mtx && mtx_line_end(c, s, p, end))
            return;
        if (take_edge(c, s, ctx, a, b, s->weighted ? &w : NULL, line))
            return;
        /* most lines end right after the last number: no search; the
         * columns ignored are still searched for a NUL */
        if (p < end && *p == '\n') {
            p++;
            continue;
        }
        const char *eol = next_line(p, end);
        if ((nul = memchr(p, '\0', (size_t)(eol - p)))) {
            snprintf(c->err, sizeof c->err, "%s", nul_text);
            c->status = EMBER_EFORMAT;
            c->err_pos = (size_t)(nul - base);
            return;
        }
        p = eol;
    }
}

/* ---- Matrix Market header -------------------------------------------------------- */

static int mtx_fail(const source *s, uint64_t line, const char *what, char *msg)
{
    return ember__err(msg, EMBER_EFORMAT, "%s:%llu: malformed Matrix Market header: %s",
                      s->path, (unsigned long long)line, what);
}

/* Copies the line at *pos into buf (cut), moves *pos past it. */
static void take_line(const source *s, size_t *pos, char *buf, size_t size)
{
    const char *p = s->map.data + *pos, *end = s->map.data + s->map.size;
    const char *nl = next_line(p, end);
    size_t len = (size_t)(nl - p);
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    *pos = (size_t)(nl - s->map.data);
}

static int mtx_banner(source *s, const char *line, char *msg)
{
    char tag[32] = "", obj[32] = "", fmt[32] = "", field[32] = "", sym[32] = "";
    int k = sscanf(line, "%31s %31s %31s %31s %31s", tag, obj, fmt, field, sym);
    if (k < 1 || strcasecmp(tag, "%%MatrixMarket") != 0)
        return mtx_fail(s, 1, "the first line must start with %%MatrixMarket", msg);
    if (k < 5)
        return mtx_fail(s, 1, "expected '%%MatrixMarket matrix coordinate <field> <symmetry>'", msg);
    if (strcasecmp(obj, "matrix") != 0)
        return mtx_fail(s, 1, "the object must be 'matrix'", msg);
    if (strcasecmp(fmt, "coordinate") != 0)
        return mtx_fail(s, 1, "only 'coordinate' (sparse) files are graphs, not 'array'", msg);
    if (strcasecmp(field, "pattern") == 0)
        s->has_value = 0;
    else if (strcasecmp(field, "real") == 0 || strcasecmp(field, "integer") == 0 ||
             strcasecmp(field, "double") == 0)
        s->has_value = 1, s->integer = strcasecmp(field, "integer") == 0;
    else
        return mtx_fail(s, 1, "the field must be pattern, real or integer", msg);
    if (strcasecmp(sym, "general") == 0)
        s->symmetric = 0;
    else if (strcasecmp(sym, "symmetric") == 0 || strcasecmp(sym, "skew-symmetric") == 0)
        s->symmetric = 1, s->skew = strcasecmp(sym, "skew-symmetric") == 0;
    else
        return mtx_fail(s, 1, "the symmetry must be general, symmetric or skew-symmetric", msg);
    if (s->weighted && !s->has_value)
        return ember__err(msg, EMBER_EFORMAT, "%s:1: a pattern matrix has no values to "
                          "use as edge weights", s->path);
    if (s->weighted && s->skew)
        return ember__err(msg, EMBER_EFORMAT, "%s:1: a skew-symmetric matrix mirrors "
                          "each weight negated; weights must be positive", s->path);
    return EMBER_OK;
}

static int mtx_size_line(source *s, const char *line, uint64_t no, char *msg)
{
    unsigned long long r, c, z;
    char extra[8];
    for (const char *q = line; *q; q++)
        if (*q == '-')
            return mtx_fail(s, no, "negative size in the size line", msg);
    if (sscanf(line, "%llu %llu %llu %7s", &r, &c, &z, extra) != 3)
        return mtx_fail(s, no, "the size line must be 'rows columns entries'", msg);
    s->rows = r, s->cols = c, s->nnz = z;
    s->size_line = no;
    uint64_t n = r > c ? r : c;
    char where[4096 + 24];
    snprintf(where, sizeof where, "%s:%llu", s->path, (unsigned long long)no);
    if (n > s->limit)
        return ember__graph_too_big(msg, where, n, s->limit);
    return EMBER_OK;
}

/* The header's lines are read whole, as C strings, so a bare CR and a NUL
 * (which would end the string early, and what follows go unread) are
 * looked for here. */
static int mtx_line(const source *s, size_t *pos, uint64_t no, char *line,
                    size_t size, char *msg)
{
    const char *p = s->map.data + *pos, *end = s->map.data + s->map.size;
    if (bare_cr(p, end))
        return ember__err(msg, EMBER_EFORMAT, "%s:%llu: %s", s->path,
                          (unsigned long long)no, bare_cr_text);
    if (memchr(p, '\0', (size_t)(next_line(p, end) - p)))
        return ember__err(msg, EMBER_EFORMAT, "%s:%llu: %s", s->path,
                          (unsigned long long)no, nul_text);
    take_line(s, pos, line, size);
    return EMBER_OK;
}

static int mtx_header(source *s, char *msg)
{
    char line[512];
    size_t pos = s->body; /* past a BOM */
    uint64_t no = 1;
    int rc = mtx_line(s, &pos, no, line, sizeof line, msg);
    if (!rc)
        rc = mtx_banner(s, line, msg);
    while (!rc && pos < s->map.size) {
        if ((rc = mtx_line(s, &pos, no + 1, line, sizeof line, msg)))
            break;
        no++;
        const char *q = line;
        while (is_blank(*q))
            q++;
        if (*q == '%' || *q == '\0')
            continue;
        rc = mtx_size_line(s, q, no, msg);
        s->body = pos;
        s->body_line = no + 1;
        return rc;
    }
    return rc ? rc : mtx_fail(s, no, "no size line", msg);
}

/* ---- chunks ---------------------------------------------------------------------- */

/* The first line start at or after at (> the body's start): the byte after
 * the first newline at or past at - 1. Read, not found through the mapping:
 * touching a page of a large folio (2 MiB, from the page cache of a recent
 * kernel) maps the whole folio, about 2 MiB at each cut, 200 MiB of a
 * 436 MB file resident before the parse begins. A file cut short meanwhile
 * ends the search at its size (the parse then finds it shorter). */
static size_t line_start(const source *s, size_t at)
{
    char buf[4096];
    for (size_t pos = at - 1; pos < s->map.size;) {
        size_t want = s->map.size - pos < sizeof buf ? s->map.size - pos : sizeof buf;
        long long got = ember__pread_full(s->map.fd, buf, want, pos);
        const char *nl = got > 0 ? memchr(buf, '\n', (size_t)got) : NULL;
        if (nl)
            return pos + (size_t)(nl - buf) + 1;
        if (got <= 0)
            break;
        pos += (size_t)got;
    }
    return s->map.size;
}

static uint64_t line_of(const source *s, size_t pos)
{
    uint64_t line = s->body_line;
    const char *p = s->map.data + s->body, *end = s->map.data + pos;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
        line++;
        p++;
    }
    return line;
}

/* Cuts the body into chunks at line starts. */
static int cut_chunks(source *s, ember_ctx *ctx, chunk **out, size_t *nout,
                      char *msg)
{
    size_t body = s->map.size - s->body;
    size_t nc = body / CHUNK_BYTES + 1;
    size_t want = (size_t)ctx->threads * 4;
    if (nc < want)
        nc = body / want >= 65536 ? want : nc;
    chunk *c = ember__calloc(ctx, nc, sizeof *c);
    if (!c)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    /* each cut found once, and never before the one before it: the chunks
     * tile the body whatever the reads found. A cut at or before the last
     * one (a line longer than a chunk) is that one, which is a line start:
     * a long line is read once, not once a cut. */
    size_t at = s->body;
    for (size_t i = 0; i < nc; i++) {
        size_t cut = s->body + (size_t)(((unsigned __int128)body * (i + 1)) / nc);
        size_t hi = i + 1 == nc ? s->map.size : cut <= at ? at : line_start(s, cut);
        c[i].lo = at;
        c[i].hi = at = hi > at ? hi : at;
    }
    *out = c;
    *nout = nc;
    return EMBER_OK;
}

/* The first error of chunks [lo, hi), in file order, into msg. */
static int first_error(const source *s, const chunk *c, size_t lo, size_t hi,
                       char *msg)
{
    for (size_t i = lo; i < hi; i++)
        if (c[i].status)
            return c[i].status == EMBER_ENOMEM
                       ? ember__err(msg, EMBER_ENOMEM, "%s: %s", s->path, c[i].err)
                       : ember__err(msg, c[i].status, "%s:%llu: %s", s->path,
                                    (unsigned long long)line_of(s, c[i].err_pos),
                                    c[i].err);
    return EMBER_OK;
}

/* Parses every chunk, holding all pairs (relabel needs every id first). */
static int parse_all(source *s, ember_ctx *ctx, chunk **out, size_t *nout,
                     char *msg)
{
    int rc = cut_chunks(s, ctx, out, nout, msg);
    if (rc)
        return rc;
    chunk *c = *out;
    size_t nc = *nout;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->threads)
    for (size_t i = 0; i < nc; i++) {
        parse_chunk(&c[i], s, ctx);
        release_pages(s, c[i].lo, c[i].hi);
    }
    return first_error(s, c, 0, nc, msg);
}

static void free_chunks(ember_ctx *ctx, chunk *c, size_t nc)
{
    for (size_t i = 0; c && i < nc; i++) {
        ember__free(ctx, c[i].e32);
        ember__free(ctx, c[i].e64);
        ember__free(ctx, c[i].w);
    }
    ember__free(ctx, c);
}

/* ---- relabel ------------------------------------------------------------------------- */

/* LSD radix sort of u64 keys, 16 bits a pass, skipping passes whose digit
 * is the same everywhere. */
static int radix_sort(ember_ctx *ctx, uint64_t *a, size_t n)
{
    uint64_t *tmp = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *tmp));
    size_t *count = ember__malloc(ctx, 65536 * sizeof *count);
    if (!tmp || !count) {
        ember__free(ctx, tmp);
        ember__free(ctx, count);
        return EMBER_ENOMEM;
    }
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++)
            count[(a[i] >> shift) & 0xffff]++;
        if (n && count[(a[0] >> shift) & 0xffff] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t k = count[d];
            count[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++)
            tmp[count[(a[i] >> shift) & 0xffff]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
    ember__free(ctx, tmp);
    ember__free(ctx, count);
    return EMBER_OK;
}

static uint32_t find_id(const uint64_t *ids, uint64_t n, uint64_t id)
{
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

/* Every id in the chunks, sorted and unique, becomes g->ids; the chunks'
 * wide pairs become u32 labels. */
static int relabel(ember_graph *g, chunk *c, size_t nc, const char *path,
                   const ember_graph_opts *opts, char *msg)
{
    ember_ctx *ctx = g->ctx;
    size_t total = 0;
    for (size_t i = 0; i < nc; i++)
        total += 2 * c[i].n;
    uint64_t *all = ember__malloc(ctx, ember__mul(total ? total : 1, sizeof *all));
    if (!all)
        return ember__err(msg, EMBER_ENOMEM, "out of memory relabelling");
    for (size_t i = 0, at = 0; i < nc; i++) {
        if (!c[i].n)
            continue; /* a chunk of comments only has no array at all */
        ember__copy(all + at, c[i].e64, 2 * c[i].n * sizeof *all);
        at += 2 * c[i].n;
    }
    if (radix_sort(ctx, all, total)) {
        ember__free(ctx, all);
        return ember__err(msg, EMBER_ENOMEM, "out of memory relabelling");
    }
    size_t n = 0;
    for (size_t i = 0; i < total; i++)
        if (n == 0 || all[i] != all[n - 1])
            all[n++] = all[i];
    uint64_t limit = ember__graph_max_vertices(opts);
    if (n > limit) {
        ember__free(ctx, all);
        return ember__err(msg, EMBER_ERANGE, "%s: %zu distinct vertex ids, more than "
                          "the limit of %llu", path, n, (unsigned long long)limit);
    }
    g->ids = ember__realloc(ctx, all, (n ? n : 1) * sizeof *all);
    if (!g->ids)
        g->ids = all;
    g->n = n;
    for (size_t i = 0; i < nc; i++) {
        uint32_t *e = ember__malloc(ctx, ember__mul(c[i].n ? 2 * c[i].n : 1, 4));
        if (!e)
            return ember__err(msg, EMBER_ENOMEM, "out of memory relabelling");
        #pragma omp parallel for schedule(static) num_threads(ctx->threads)
        for (size_t k = 0; k < 2 * c[i].n; k++)
            e[k] = find_id(g->ids, n, c[i].e64[k]);
        ember__free(ctx, c[i].e64);
        c[i].e64 = NULL;
        c[i].e32 = e;
    }
    return EMBER_OK;
}

/* ---- loading ------------------------------------------------------------------------- */

typedef struct {
    chunk *c;
} blocks;

/* ---- streaming: the file parsed twice, a chunk at a time --------------------------------
 *
 * Without relabel the builder reads the text itself, twice: pass 1 parses
 * each chunk into a reused buffer and counts its rows, pass 2 parses it
 * again and scatters it. With up to EMBER__LANES threads the builder asks
 * for chunks by lane (stream_fill: a thread parses, then counts or
 * scatters, its own contiguous range of chunks, one buffer a lane); with
 * more, a group of chunks at a time (stream_block: parsed in parallel,
 * one buffer a slot, then counted or scattered by row owners). No edge
 * pairs are held beyond a chunk a lane (or a group), so the peak is the
 * CSR and its vertex arrays. Pass 1 keeps each chunk's pair count and a
 * hash of its pairs; pass 2 refuses a chunk that parses to anything else
 * (the file changed). */

typedef struct {
    source *s;
    ember_ctx *ctx;
    ember_graph *g;
    chunk *c;            /* what pass 1 found in each chunk */
    size_t nc, group;
    chunk *slot;         /* group buffers: e32, w, cap */
    int pass;
    uint64_t seen;       /* pass 1: max id + 1 so far */
    double parse_seconds;
    double lane_seconds[EMBER__LANES]; /* lanes: parsing, each lane's own */
} stream;

/* Parses chunk i into the buffers of slot sl; pass 1 keeps what it found,
 * pass 2 checks it found the same. */
static void parse_into(stream *st, size_t i, chunk *sl, int pass)
{
    chunk t = {.lo = st->c[i].lo, .hi = st->c[i].hi, .e32 = sl->e32, .w = sl->w,
               .cap = sl->cap};
    parse_chunk(&t, st->s, st->ctx);
    release_pages(st->s, t.lo, t.hi);
    sl->e32 = t.e32, sl->w = t.w, sl->cap = t.cap, sl->n = t.n;
    chunk *c = &st->c[i];
    if (pass == 1) {
        t.e32 = NULL, t.w = NULL, t.cap = 0;
        *c = t;
    } else if (t.status == EMBER_ENOMEM) {
        c->status = t.status;
        memcpy(c->err, t.err, sizeof c->err);
    } else if (t.status || t.n != c->n || t.hash != c->hash) {
        c->status = EMBER_ECORRUPT;
        c->err_pos = t.lo;
        snprintf(c->err, sizeof c->err, "the file changed while it was read "
                 "(this part parses differently the second time)");
    }
}

static void parse_slot(stream *st, size_t i)
{
    parse_into(st, i, &st->slot[i % st->group], st->pass);
}

/* The builder's lanes (see ember__esource): chunk i into lane's slot, on
 * the calling thread. */
static int stream_fill(void *state, size_t i, int lane, int pass, ember__eblock *b)
{
    stream *st = state;
    double t0 = ember__graph_now();
    chunk *sl = &st->slot[lane];
    parse_into(st, i, sl, pass);
    st->lane_seconds[lane] += ember__graph_now() - t0;
    *b = (ember__eblock){sl->e32, sl->e32 ? sl->e32 + 1 : NULL, sl->n, 2, sl->w};
    return st->c[i].status;
}

static int stream_done(void *state, int pass, char *msg)
{
    stream *st = state;
    (void)pass;
    return first_error(st->s, st->c, 0, st->nc, msg);
}

static int stream_group(stream *st, size_t first, char *msg)
{
    double t0 = ember__graph_now();
    size_t last = first + st->group < st->nc ? first + st->group : st->nc;
    if (first == 0)
        st->pass++;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(st->ctx->threads)
    for (size_t i = first; i < last; i++)
        parse_slot(st, i);
    for (size_t i = first; st->pass == 1 && i < last; i++)
        if (st->c[i].any && st->c[i].maxid + 1 > st->seen)
            st->seen = st->c[i].maxid + 1;
    st->parse_seconds += ember__graph_now() - t0;
    return first_error(st->s, st->c, first, last, msg);
}

static int stream_block(void *state, size_t i, ember__eblock *b, char *msg)
{
    stream *st = state;
    int rc = i % st->group == 0 ? stream_group(st, i, msg) : EMBER_OK;
    const chunk *sl = &st->slot[i % st->group];
    *b = (ember__eblock){sl->e32, sl->e32 ? sl->e32 + 1 : NULL, sl->n, 2, sl->w};
    return rc;
}

static uint64_t stream_vertices(void *state)
{
    return ((stream *)state)->seen;
}

static int vertex_count(ember_graph *g, const source *s, const chunk *c,
                        size_t nc, char *msg);

static int stream_counted(void *state, ember_graph *g, char *msg)
{
    stream *st = state;
    int rc = vertex_count(g, st->s, st->c, st->nc, msg);
    if (!rc && g->n == 0)
        rc = ember__err(msg, EMBER_EEMPTY, "%s: no edges (only comments or blank lines)",
                        st->s->path);
    return rc;
}

/* Loads s (mapped, its header read) without holding its edges. */
static int load_streamed(ember_graph *g, source *s, const ember_graph_opts *opts,
                         char *msg)
{
    ember_ctx *ctx = g->ctx;
    stream st = {.s = s, .ctx = ctx, .g = g};
    int rc = cut_chunks(s, ctx, &st.c, &st.nc, msg);
    st.group = (size_t)ctx->threads * 2; /* >= the lanes, one slot a lane */
    if (!rc && !(st.slot = ember__calloc(ctx, st.group, sizeof *st.slot)))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (!rc) {
        g->n = s->mtx ? (s->rows > s->cols ? s->rows : s->cols) : 0;
        /* a line holds at least "0 0\n"; a symmetric entry is two edges */
        ember__esource src = {stream_block, &st, st.nc, st.group, stream_vertices,
                              stream_counted, stream_fill, stream_done,
                              (s->map.size - s->body) / 4 * 2 + 2};
        rc = ember__graph_build_from(g, &src, opts, msg);
    }
    for (int j = 0; j < EMBER__LANES; j++) /* lanes: the slowest lane's */
        if (st.lane_seconds[j] > st.parse_seconds)
            st.parse_seconds = st.lane_seconds[j];
    g->read_seconds = st.parse_seconds;
    g->build_seconds -= st.parse_seconds;
    free_chunks(ctx, st.slot, st.slot ? st.group : 0);
    free_chunks(ctx, st.c, st.nc);
    return rc;
}

static int chunk_block(void *state, size_t i, ember__eblock *b, char *msg)
{
    (void)msg;
    const chunk *c = ((blocks *)state)->c + i;
    *b = (ember__eblock){c->e32, c->e32 ? c->e32 + 1 : NULL, c->n, 2, c->w};
    return EMBER_OK;
}

static const char *skip_blanks(const char *p, const char *e)
{
    while (p < e && is_blank(*p))
        p++;
    return p;
}

/* A whole number at *p (digits; UINT64_MAX from 2^60 on, a count no
 * machine holds), then blanks: 1 and *p moved past them, or 0. */
static int header_number(const char **p, const char *e, uint64_t *n)
{
    const char *d = *p;
    for (*n = 0; d < e && *d >= '0' && *d <= '9'; d++)
        *n = *n < (UINT64_C(1) << 60) ? *n * 10 + (uint64_t)(*d - '0') : UINT64_MAX;
    if (d == *p)
        return 0;
    *p = skip_blanks(d, e);
    return 1;
}

/* word at *p, then blanks: 1 and *p moved past them, or 0. */
static int header_word(const char **p, const char *e, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(e - *p) < n || memcmp(*p, word, n) != 0)
        return 0;
    *p = skip_blanks(*p + n, e);
    return 1;
}

/* The vertex count of the comment line at p, when the comment is one:
 * "# N vertices" (ember-gen's "# N vertices, M edges") or "# Nodes: N"
 * (SNAP's "# Nodes: N Edges: M"); 0 for any other, such as "# 3 hubs of a
 * 1000 vertices crawl". */
static uint64_t stated_vertices(const char *p, const char *e)
{
    uint64_t n = 0;
    p = skip_blanks(p + 1, e);
    int snap = header_word(&p, e, "Nodes:");
    if (!header_number(&p, e, &n) || (!snap && !header_word(&p, e, "vertices")))
        return 0;
    return p == e || *p == '\n' || *p == ',' || (snap && header_word(&p, e, "Edges:")) ? n : 0;
}

/* The vertex count stated in the lines that open an edge list, up to its
 * first edge (at most 64 lines; blank lines and comments of either kind),
 * into *n with the number of its line in *line; 0 when none. Two lines that
 * state different counts are an error. */
static int header_vertices(const source *s, uint64_t *n, uint64_t *line, char *msg)
{
    const char *p = s->map.data + s->body, *end = s->map.data + s->map.size;
    *n = 0;
    for (uint64_t no = s->body_line; p < end && no < s->body_line + 64; no++) {
        const char *e = next_line(p, end), *q = skip_blanks(p, e);
        if (q < e && *q != '\n' && *q != '#' && *q != '%')
            break; /* the first edge */
        uint64_t k = q < e && *q == '#' ? stated_vertices(q, e) : 0;
        if (k && *n && k != *n)
            return ember__err(msg, EMBER_EFORMAT, "%s:%llu: the header states %llu "
                              "vertices, but line %llu states %llu: remove the "
                              "wrong one", s->path,
                              (unsigned long long)no, (unsigned long long)k,
                              (unsigned long long)*line, (unsigned long long)*n);
        if (k && !*n) {
            *n = k;
            *line = no;
        }
        p = e;
    }
    return EMBER_OK;
}

/* The vertex count: max id + 1, or more when the header says so (the
 * trailing vertices have no edges), or the Matrix Market size. */
static int vertex_count(ember_graph *g, const source *s, const chunk *c,
                        size_t nc, char *msg)
{
    uint64_t n = 0;
    if (s->mtx) {
        n = s->rows > s->cols ? s->rows : s->cols;
        uint64_t entries = 0;
        for (size_t i = 0; i < nc; i++)
            entries += c[i].entries;
        if (entries != s->nnz)
            return ember__err(msg, EMBER_EFORMAT,
                              "%s:%llu: the size line promises %llu entries, the file "
                              "has %llu", s->path, (unsigned long long)s->size_line,
                              (unsigned long long)s->nnz,
                              (unsigned long long)entries);
        if (n > s->limit)
            return ember__graph_too_big(msg, s->path, n, s->limit);
    } else {
        for (size_t i = 0; i < nc; i++)
            if (c[i].any && c[i].maxid + 1 > n)
                n = c[i].maxid + 1;
        uint64_t line = 0, stated = 0;
        int rc = header_vertices(s, &stated, &line, msg);
        if (rc)
            return rc;
        if (n && stated > n) {
            if (stated > s->limit) /* no id that large is in the file */
                return ember__err(msg, EMBER_ERANGE, "%s:%llu: the header states "
                                  "%s%llu vertices, more than the limit of %llu "
                                  "vertices (2^32 or this machine's memory)",
                                  s->path, (unsigned long long)line,
                                  stated == UINT64_MAX ? "over " : "",
                                  (unsigned long long)(stated == UINT64_MAX
                                                           ? UINT64_C(1) << 60 : stated),
                                  (unsigned long long)s->limit);
            n = stated;
        }
    }
    g->n = n;
    return EMBER_OK;
}

/* Relabel: every pair held, its ids sorted into g->ids, then built. */
static int load_relabelled(ember_graph *g, source *s, const ember_graph_opts *opts,
                           char *msg)
{
    ember_ctx *ctx = g->ctx;
    chunk *c = NULL;
    size_t nc = 0;
    double t0 = ember__graph_now();
    int rc = parse_all(s, ctx, &c, &nc, msg);
    if (!rc)
        rc = relabel(g, c, nc, s->path, opts, msg);
    g->read_seconds = ember__graph_now() - t0;
    if (!rc && g->n == 0)
        rc = ember__err(msg, EMBER_EEMPTY, "%s: no edges (only comments or blank lines)",
                        s->path);
    if (!rc) {
        blocks b = {c};
        rc = ember__graph_build(g, chunk_block, &b, nc, 1, opts, msg);
    }
    free_chunks(ctx, c, nc);
    return rc;
}

/* What the file's first bytes say: a UTF-8 byte order mark (skipped, as
 * editors on Windows write it), or a file that is not an edge list at
 * all, which the parser would misread: gzip, or a Matrix Market file
 * (its '%' lines are comments to an edge list, its size line an edge). */
static int first_bytes(source *s, char *msg)
{
    const unsigned char *d = (const unsigned char *)s->map.data;
    if (s->map.size >= 2 && d[0] == 0x1f && d[1] == 0x8b)
        return ember__err(msg, EMBER_EFORMAT, "%s: gzip-compressed; decompress "
                          "it first", s->path);
    if (s->map.size >= 3 && memcmp(d, "\xEF\xBB\xBF", 3) == 0)
        s->body = 3;
    if (!s->mtx && s->map.size - s->body >= 14 &&
        strncasecmp(s->map.data + s->body, "%%MatrixMarket", 14) == 0)
        return ember__err(msg, EMBER_EFORMAT, "%s: a Matrix Market file "
                          "(%%%%MatrixMarket banner): name it .mtx or pass "
                          "--format mtx", s->path);
    return EMBER_OK;
}

int ember__graph_load_text(ember_graph *g, const char *path, int mtx,
                           const ember_graph_opts *opts, char *msg)
{
    source s = {.path = path, .mtx = mtx, .body_line = 1, .weighted = opts->weighted};
    s.wide = opts->relabel && !mtx; /* Matrix Market indices are dense */
    s.limit = ember__graph_max_vertices(opts);
    double t0 = ember__graph_now();
    int rc = ember__map_file(&s.map, path, msg);
    if (!rc)
        rc = first_bytes(&s, msg);
    if (!rc && mtx)
        rc = mtx_header(&s, msg);
    g->input_bytes = s.map.size;
    double header = ember__graph_now() - t0;
    if (!rc)
        rc = s.wide ? load_relabelled(g, &s, opts, msg) : load_streamed(g, &s, opts, msg);
    /* a (skew-)symmetric matrix's entries were each stored both ways, so
     * its graph is undirected, and ember-convert's directed says so */
    if (!rc && mtx && s.symmetric)
        g->directed = 0;
    g->read_seconds += header;
    /* what the parse made of the zeros past the new end is beside the point */
    if (ember__map_shrank(&s.map))
        rc = ember__graph_shrank(msg, path);
    ember__unmap_file(&s.map);
    return rc;
}
