/* text.c: text sources: whole files, numeric CSV, and lines.
 *
 * ember__read_file loads a file into one ctx allocation, NUL-terminated.
 * ember_read_csv maps a regular file instead (mapfile.c; its pages let go
 * as each chunk is parsed, and a file written meanwhile refused), and
 * ember_read_lines, whose text lives as long as its dataset, reads it.
 * Both cut the text into chunks
 * that start and end at line boundaries, and make two parallel passes over
 * the chunks: the first counts each chunk's lines (and, for CSV, data rows);
 * a prefix sum turns the counts into each chunk's first line number and
 * first output record; the second pass fills each chunk's slice of one
 * output array. Chunks only decide which thread reads a line, never what the
 * line gives, and when several chunks fail the error with the smallest line
 * number is reported, so records and messages are the same for every thread
 * and partition count.
 *
 * Numbers are parsed by hand in a strict decimal syntax ([+-]digits[.digits]
 * [e[+-]digits]; no hex, no thousands separators, no locale) with correctly
 * rounded results: exact fast paths handle up to 19 significant digits, and
 * the rare rest goes to strtod under a C locale set for the calling thread
 * only. NaN and infinity are recognised but rejected (EMBER_EFORMAT), as are
 * values too large for a double: the algorithms downstream need finite data.
 *
 * Called from the caller's thread (the public calls; ember__read_file also
 * from other modules). The passes run on an OpenMP team of ctx->threads and
 * allocate nothing; all memory goes through the ctx allocator.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- loading files ------------------------------------------------------ */

/* read(2) moves at most about 2 GiB per call; asking for less keeps every
 * request valid on every system. */
#define READ_STEP ((size_t)1 << 30)
/* First buffer for files whose size fstat does not tell (pipes, /proc). */
#define STREAM_START ((size_t)1 << 16)

static int io_error(const char *path, const char *what, int err, char *msg)
{
    char text[128];
    if (strerror_r(err, text, sizeof text) != 0)
        snprintf(text, sizeof text, "error %d", err);
    return ember__err(msg, EMBER_EIO, "%s: %s: %s", path, what, text);
}

static int open_error(const char *path, int err, char *msg)
{
    if (err == ENOENT || err == ENOTDIR) {
        char text[128];
        if (strerror_r(err, text, sizeof text) != 0)
            snprintf(text, sizeof text, "No such file or directory");
        return ember__err(msg, EMBER_ENOTFOUND, "%s: %s", path, text);
    }
    return io_error(path, "open", err, msg);
}

static int too_big(const char *path, uintmax_t bytes, char *msg)
{
    return ember__err(msg, EMBER_ENOMEM,
                      "%s: %ju bytes do not fit in memory", path, bytes);
}

/* Reads until cap bytes are in or the file ends, retrying short reads and
 * EINTR. Returns 0 or an errno value; *got says how much arrived. */
static int read_fully(int fd, char *buf, size_t cap, size_t *got)
{
    size_t n = 0;
    while (n < cap) {
        size_t want = cap - n < READ_STEP ? cap - n : READ_STEP;
        ssize_t r = read(fd, buf + n, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *got = n;
            return errno;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

/* A regular file: one allocation of the size fstat gave. The text is that
 * snapshot: bytes appended later are not read; a file that shrank gives
 * what is left. */
static int read_sized(ember_ctx *ctx, int fd, const char *path, off_t len,
                      char **data, size_t *size, char *msg)
{
    if ((uintmax_t)len >= SIZE_MAX)
        return too_big(path, (uintmax_t)len, msg);
    char *buf = ember__malloc(ctx, (size_t)len + 1);
    if (!buf)
        return too_big(path, (uintmax_t)len, msg);
    size_t got;
    int err = read_fully(fd, buf, (size_t)len, &got);
    if (err) {
        ember__free(ctx, buf);
        return io_error(path, "read", err, msg);
    }
    buf[got] = '\0';
    *data = buf;
    *size = got;
    return EMBER_OK;
}

/* Anything fstat gives no size for: grow the buffer until end of file. */
static int read_stream(ember_ctx *ctx, int fd, const char *path, char **data,
                       size_t *size, char *msg)
{
    size_t cap = STREAM_START, n = 0;
    char *buf = ember__malloc(ctx, cap);
    for (;;) {
        if (!buf)
            return too_big(path, (uintmax_t)cap, msg);
        size_t got;
        int err = read_fully(fd, buf + n, cap - 1 - n, &got);
        n += got;
        if (err) {
            ember__free(ctx, buf);
            return io_error(path, "read", err, msg);
        }
        if (n < cap - 1)
            break;
        char *bigger = cap > SIZE_MAX / 2 ? NULL
                                          : ember__realloc(ctx, buf, cap * 2);
        if (!bigger)
            ember__free(ctx, buf);
        buf = bigger;
        cap *= 2;
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return EMBER_OK;
}

int ember__read_file(ember_ctx *ctx, const char *path, char **data,
                     size_t *size, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || !path || !data || !size)
        return ember__err(msg, EMBER_EINVAL, "ember__read_file: NULL argument");
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_error(path, errno, msg);
    struct stat st;
    int rc;
    if (fstat(fd, &st) != 0)
        rc = io_error(path, "stat", errno, msg);
    else if (S_ISDIR(st.st_mode))
        rc = ember__err(msg, EMBER_EINVAL, "%s: is a directory", path);
    else if (S_ISREG(st.st_mode) && st.st_size > 0)
        rc = read_sized(ctx, fd, path, st.st_size, data, size, msg);
    else
        rc = read_stream(ctx, fd, path, data, size, msg);
    close(fd);
    return rc;
}

/* ---- chunks of whole lines ---------------------------------------------- */

/* Partitions come from the data or the caller; the chunk count may also
 * follow the thread count (chunks never change results), but stays bounded
 * so an absurd partition count cannot make the chunk table huge. */
#define CHUNKS_PER_THREAD 4
#define CHUNK_MIN_BYTES ((size_t)1 << 16)
#define CHUNKS_MAX ((size_t)1 << 16)

typedef enum {
    FAIL_NONE = 0,
    FAIL_COLUMNS,
    FAIL_EMPTY,
    FAIL_NOT_NUMBER,
    FAIL_NOT_FINITE,
    FAIL_RANGE,
    FAIL_BARE_CR,
    FAIL_NUL,
    FAIL_CHANGED /* other rows than counted: the file changed meanwhile */
} fail_kind;

/* The first thing wrong in a chunk, kept as data and worded later so the
 * parallel pass writes no strings. */
typedef struct {
    fail_kind kind;
    size_t line;
    size_t column;        /* 1-based: the empty column, or columns found */
    const char *tok;      /* the offending field, for the message */
    size_t len;
} csv_fail;

typedef struct {
    const char *lo, *hi;  /* whole lines: lo starts one, hi ends one */
    size_t lines;         /* lines in the chunk */
    size_t rows;          /* records it yields */
    size_t line0;         /* 1-based number of its first line */
    size_t row0;          /* index of its first record in the output */
    csv_fail fail;
} chunk;

typedef void (*chunk_fn)(void *arg, chunk *c, size_t index);

static int team_size(const ember_ctx *ctx)
{
    return ctx->threads > 0 ? ctx->threads : 1;
}

static size_t chunk_count(const ember_ctx *ctx, size_t parts, size_t bytes)
{
    size_t by_threads = CHUNKS_PER_THREAD * (size_t)team_size(ctx);
    size_t by_size = bytes / CHUNK_MIN_BYTES + 1;
    size_t n = by_threads < by_size ? by_threads : by_size;
    if (parts > n)
        n = parts;
    return n < CHUNKS_MAX ? n : CHUNKS_MAX;
}

static const char *line_end(const char *p, const char *hi)
{
    const char *nl = memchr(p, '\n', (size_t)(hi - p));
    return nl ? nl : hi;
}

static const char *next_line(const char *end_of_line, const char *hi)
{
    return end_of_line < hi ? end_of_line + 1 : hi;
}

/* Cuts [lo, hi) into n chunks of about equal bytes, each cut moved forward
 * to the next line start. A cut inside a long line moves to its end, so
 * chunks may be empty; a cut already passed by the previous one stays
 * there, so a single huge line is scanned once, not n times. */
static void split_chunks(chunk *c, size_t n, const char *lo, const char *hi)
{
    size_t len = (size_t)(hi - lo);
    const char *cut = lo;
    for (size_t i = 0; i < n; i++) {
        const char *want = lo + ember__part_lo(len, n, i + 1);
        c[i].lo = cut;
        if (want > cut)
            cut = next_line(line_end(want - 1, hi), hi);
        c[i].hi = cut;
    }
}

/* Numbers chunks from their counts; returns the total of records. */
static size_t number_chunks(chunk *c, size_t n, size_t first_line)
{
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].line0 = first_line;
        c[i].row0 = rows;
        first_line += c[i].lines;
        rows += c[i].rows;
    }
    return rows;
}

/* Dynamic scheduling: chunks of equal bytes can cost very different
 * amounts (a huge line, comments, numbers that need the slow path). */
static void for_chunks(ember_ctx *ctx, chunk *c, size_t n, chunk_fn fn,
                       void *arg)
{
#pragma omp parallel for schedule(dynamic) num_threads(team_size(ctx))
    for (size_t i = 0; i < n; i++)
        fn(arg, &c[i], i);
}

/* A chunk table for [lo, hi), counted by count_fn; *rows gets the total. */
static int make_chunks(ember_ctx *ctx, chunk **out, size_t *n, size_t parts,
                       const char *lo, const char *hi, size_t first_line,
                       chunk_fn count_fn, void *arg, size_t *rows)
{
    *n = chunk_count(ctx, parts, (size_t)(hi - lo));
    *out = ember__calloc(ctx, *n, sizeof **out);
    if (!*out)
        return EMBER_ENOMEM;
    split_chunks(*out, *n, lo, hi);
    for_chunks(ctx, *out, *n, count_fn, arg);
    *rows = number_chunks(*out, *n, first_line);
    return EMBER_OK;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

static size_t partitions_for(const ember_ctx *ctx, const ember_text_opts *o,
                             size_t bytes)
{
    return o->partitions ? o->partitions
                         : ember__default_partitions(ctx, bytes);
}

/* ---- numbers ------------------------------------------------------------ */

typedef enum { NUM_OK, NUM_NONE, NUM_NOT_FINITE, NUM_RANGE } num_status;

/* The value is m * 10^e10 unless more than 19 significant digits were seen
 * (19 always fit in a uint64). */
typedef struct {
    uint64_t m;
    int64_t e10;
    int nd;          /* significant digits in m */
    bool neg;
    bool truncated;
} decimal;

/* 10^0 .. 10^22 are exact doubles. */
static const double p10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static bool is_digit(char c)
{
    return (unsigned)(c - '0') < 10;
}

/* The value of 8 ASCII digits at p, or -1 when any is not a digit:
 * checked and converted in a 64-bit word (the first digit in its low
 * byte), pairs, then fours, then the eight. */
static int64_t eight_digits(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    if ((x & 0xF0F0F0F0F0F0F0F0u) != 0x3030303030303030u ||
        ((x + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) != 0x3030303030303030u)
        return -1;
    x -= 0x3030303030303030u;
    x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFu;
    x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFu;
    return (int64_t)((x * 10000 + (x >> 32)) & 0xFFFFFFFFu);
}

static const char *scan_digits(const char *p, const char *e, decimal *d,
                               int frac)
{
    bool eights = true; /* after the first significant digit, 8 at a time
                           while they come */
    for (;;) {
        int64_t v;
        for (; eights && d->nd && d->nd <= 11 && e - p >= 8; p += 8) {
            if ((v = eight_digits(p)) < 0) {
                eights = false;
                break;
            }
            d->m = d->m * 100000000 + (uint64_t)v;
            d->nd += 8;
            d->e10 -= 8 * frac;
        }
        if (!(p < e && is_digit(*p)))
            return p;
        unsigned c = (unsigned)(*p - '0');
        if (d->nd == 0 && c == 0) {
            d->e10 -= frac; /* a leading zero only moves the point */
        } else if (d->nd < 19) {
            d->m = d->m * 10 + c;
            d->nd++;
            d->e10 -= frac;
        } else {
            d->truncated = true;
        }
        p++;
    }
}

/* p is at 'e' or 'E'. Without digits after it the number ends before it. */
static const char *scan_exponent(const char *p, const char *e, decimal *d)
{
    const char *q = p + 1;
    bool neg = false;
    if (q < e && (*q == '+' || *q == '-'))
        neg = *q++ == '-';
    if (q == e || !is_digit(*q))
        return p;
    int64_t x = 0;
    for (; q < e && is_digit(*q); q++)
        if (x < 100000) /* far past any double; keeps x from overflowing */
            x = x * 10 + (*q - '0');
    d->e10 += neg ? -x : x;
    return q;
}

/* Returns the end of the decimal number at p, or p when there is none. */
static const char *scan_decimal(const char *p, const char *e, decimal *d)
{
    const char *start = p;
    memset(d, 0, sizeof *d);
    if (p < e && (*p == '+' || *p == '-'))
        d->neg = *p++ == '-';
    const char *digits = p;
    p = scan_digits(p, e, d, 0);
    size_t seen = (size_t)(p - digits);
    if (p < e && *p == '.') {
        const char *frac = ++p;
        p = scan_digits(p, e, d, 1);
        seen += (size_t)(p - frac);
    }
    if (seen == 0)
        return start;
    if (p < e && (*p == 'e' || *p == 'E'))
        p = scan_exponent(p, e, d);
    return p;
}

/* Case-insensitive ASCII prefix match (strncasecmp follows the locale). */
static bool has_word(const char *p, const char *e, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(e - p) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != w[i])
            return false;
    return true;
}

/* nan, inf and infinity, signed or not, in any case: recognised so that
 * the message says what is wrong with them. */
static num_status scan_special(const char **pp, const char *e)
{
    static const char *const words[] = {"infinity", "inf", "nan"};
    const char *p = *pp;
    if (p < e && (*p == '+' || *p == '-'))
        p++;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (has_word(p, e, words[i])) {
            *pp = p + strlen(words[i]);
            return NUM_NOT_FINITE;
        }
    return NUM_NONE;
}

/* Clinger's fast path: m and 10^|e10| are exact doubles, so one multiply
 * or divide rounds once, correctly. Needs double arithmetic done in double
 * (not x87 extended, which would round twice). */
static bool clinger(uint64_t m, int64_t e10, double *x)
{
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    if (m > ((uint64_t)1 << 53) || e10 < -22 || e10 > 22)
        return false;
    *x = e10 < 0 ? (double)m / p10_exact[-e10] : (double)m * p10_exact[e10];
    return true;
#else
    (void)m, (void)e10, (void)x;
    return false;
#endif
}

#if LDBL_MANT_DIG == 64 && (defined(__x86_64__) || defined(__i386__))
/* Correctly rounded (by the compiler) x87 powers of ten; up to 10^27 they
 * are exact. */
static const long double p10_ext[] = {
    1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L,
    1e8L, 1e9L, 1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L,
    1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L,
    1e24L, 1e25L, 1e26L, 1e27L, 1e28L, 1e29L, 1e30L, 1e31L,
    1e32L, 1e33L, 1e34L, 1e35L, 1e36L, 1e37L, 1e38L, 1e39L,
    1e40L, 1e41L, 1e42L, 1e43L, 1e44L, 1e45L, 1e46L, 1e47L,
    1e48L, 1e49L, 1e50L, 1e51L, 1e52L, 1e53L, 1e54L, 1e55L,
    1e56L, 1e57L, 1e58L, 1e59L, 1e60L, 1e61L, 1e62L, 1e63L,
    1e64L, 1e65L, 1e66L, 1e67L, 1e68L, 1e69L, 1e70L, 1e71L,
    1e72L, 1e73L, 1e74L, 1e75L, 1e76L, 1e77L, 1e78L, 1e79L,
    1e80L, 1e81L, 1e82L, 1e83L, 1e84L, 1e85L, 1e86L, 1e87L,
    1e88L, 1e89L, 1e90L, 1e91L, 1e92L, 1e93L, 1e94L, 1e95L,
    1e96L, 1e97L, 1e98L, 1e99L, 1e100L, 1e101L, 1e102L, 1e103L,
    1e104L, 1e105L, 1e106L, 1e107L, 1e108L, 1e109L, 1e110L, 1e111L,
    1e112L, 1e113L, 1e114L, 1e115L, 1e116L, 1e117L, 1e118L, 1e119L,
    1e120L, 1e121L, 1e122L, 1e123L, 1e124L, 1e125L, 1e126L, 1e127L,
    1e128L, 1e129L, 1e130L, 1e131L, 1e132L, 1e133L, 1e134L, 1e135L,
    1e136L, 1e137L, 1e138L, 1e139L, 1e140L, 1e141L, 1e142L, 1e143L,
    1e144L, 1e145L, 1e146L, 1e147L, 1e148L, 1e149L, 1e150L, 1e151L,
    1e152L, 1e153L, 1e154L, 1e155L, 1e156L, 1e157L, 1e158L, 1e159L,
    1e160L, 1e161L, 1e162L, 1e163L, 1e164L, 1e165L, 1e166L, 1e167L,
    1e168L, 1e169L, 1e170L, 1e171L, 1e172L, 1e173L, 1e174L, 1e175L,
    1e176L, 1e177L, 1e178L, 1e179L, 1e180L, 1e181L, 1e182L, 1e183L,
    1e184L, 1e185L, 1e186L, 1e187L, 1e188L, 1e189L, 1e190L, 1e191L,
    1e192L, 1e193L, 1e194L, 1e195L, 1e196L, 1e197L, 1e198L, 1e199L,
    1e200L, 1e201L, 1e202L, 1e203L, 1e204L, 1e205L, 1e206L, 1e207L,
    1e208L, 1e209L, 1e210L, 1e211L, 1e212L, 1e213L, 1e214L, 1e215L,
    1e216L, 1e217L, 1e218L, 1e219L, 1e220L, 1e221L, 1e222L, 1e223L,
    1e224L, 1e225L, 1e226L, 1e227L, 1e228L, 1e229L, 1e230L, 1e231L,
    1e232L, 1e233L, 1e234L, 1e235L, 1e236L, 1e237L, 1e238L, 1e239L,
    1e240L, 1e241L, 1e242L, 1e243L, 1e244L, 1e245L, 1e246L, 1e247L,
    1e248L, 1e249L, 1e250L, 1e251L, 1e252L, 1e253L, 1e254L, 1e255L,
    1e256L, 1e257L, 1e258L, 1e259L, 1e260L, 1e261L, 1e262L, 1e263L,
    1e264L, 1e265L, 1e266L, 1e267L, 1e268L, 1e269L, 1e270L, 1e271L,
    1e272L, 1e273L, 1e274L, 1e275L, 1e276L, 1e277L, 1e278L, 1e279L,
    1e280L, 1e281L, 1e282L, 1e283L, 1e284L, 1e285L, 1e286L, 1e287L,
    1e288L, 1e289L, 1e290L, 1e291L, 1e292L, 1e293L, 1e294L, 1e295L,
    1e296L, 1e297L, 1e298L, 1e299L, 1e300L, 1e301L, 1e302L, 1e303L,
    1e304L, 1e305L, 1e306L, 1e307L, 1e308L,
};

/* The x87 format keeps 11 more significant bits than a double. m (exact)
 * times or over 10^|e10| (rounded at most once) rounds once more, so r is
 * within 2 units of its last bit of the true value. Rounding r to double is
 * then correct unless r's 11 extra bits lie within 2 units of exactly half
 * (0x400): only then can the true value sit on the other side of the
 * midpoint between two doubles. Those cases (about 1 in 300) and results
 * outside the normal double range go to the slow path. */
static bool extended(uint64_t m, int64_t e10, double *x)
{
    if (e10 < -308 || e10 > 308)
        return false;
    long double r = e10 < 0 ? (long double)m / p10_ext[-e10]
                            : (long double)m * p10_ext[e10];
    if (!(r >= DBL_MIN && r <= DBL_MAX))
        return false;
    uint64_t bits; /* the format's low 8 bytes are its 64-bit significand */
    memcpy(&bits, &r, sizeof bits);
    unsigned extra = (unsigned)(bits & 0x7ff);
    if (extra >= 0x400 - 3 && extra <= 0x400 + 3)
        return false;
    *x = (double)r;
    return true;
}
#else
static bool extended(uint64_t m, int64_t e10, double *x)
{
    (void)m, (void)e10, (void)x;
    return false;
}
#endif

static bool fast_value(const decimal *d, double *v)
{
    double x = 0.0;
    if (d->truncated)
        return false;
    if (d->m != 0 && !clinger(d->m, d->e10, &x) && !extended(d->m, d->e10, &x))
        return false;
    *v = d->neg ? -x : x;
    return true;
}

/* strtod rounds correctly at any length but reads the decimal point from
 * the locale, so the C locale is set for this thread for the call: ember
 * never touches the process's locale. The text was already checked, so
 * strtod stops where the scan did. Underflow to zero or a subnormal is
 * accepted; overflow is not. */
static num_status slow_value(const char *s, const char *end, locale_t c_loc,
                             double *v)
{
    locale_t old = uselocale(c_loc);
    char *stop;
    errno = 0;
    double x = strtod(s, &stop);
    int err = errno;
    uselocale(old);
    if (stop != end)
        return NUM_NONE;
    if (err == ERANGE && isinf(x))
        return NUM_RANGE;
    *v = x;
    return NUM_OK;
}

/* Parses the number at *pp (not past e) into *v and moves *pp past it;
 * *pp stays put when no number starts there (NUM_NONE). */
static num_status parse_number(const char **pp, const char *e, locale_t c_loc,
                               double *v)
{
    decimal d;
    const char *s = *pp, *p = scan_decimal(s, e, &d);
    if (p == s)
        return scan_special(pp, e);
    *pp = p;
    if (fast_value(&d, v))
        return NUM_OK;
    return slow_value(s, p, c_loc, v);
}

/* ---- fields and lines --------------------------------------------------- */

/* '\r' counts as a blank so "\r\n" line ends need no special case; a tab is
 * a blank unless it is the delimiter. delim ' ' means runs of blanks. */
static bool is_blank(char c, char delim)
{
    return c == ' ' || c == '\r' || (c == '\t' && delim != '\t');
}

static const char *skip_blanks(const char *p, const char *e, char delim)
{
    while (p < e && is_blank(*p, delim))
        p++;
    return p;
}

/* Whether the line [lo, e) holds a carriage return that no newline
 * follows (e is its '\n', or hi when it has none). '\r' is a blank so that
 * "\r\n" ends need no case of their own, but a file of old Mac line ends
 * ('\r' alone) would then be one long line of run-together rows. */
static bool bare_cr(const char *lo, const char *e, const char *hi)
{
    const char *r = memchr(lo, '\r', (size_t)(e - lo));
    return r && (r + 1 < e || e == hi);
}

/* What the line [lo, e) holds that no text line does, found before its
 * fields are read: a NUL byte (FAIL_NUL), named before a bare carriage
 * return (FAIL_BARE_CR) because a binary file's line may hold both, in
 * either order, and the error must not depend on which. Only a line with
 * a CR, or one the reader skips (a comment), is searched for a NUL: in a
 * data line a NUL breaks a field, which says so (nul_field). */
static fail_kind odd_line(const char *lo, const char *e, const char *hi, bool skipped)
{
    bool cr = bare_cr(lo, e, hi);
    if ((cr || skipped) && memchr(lo, '\0', (size_t)(e - lo)))
        return FAIL_NUL;
    return cr ? FAIL_BARE_CR : FAIL_NONE;
}

#define BARE_CR_TEXT                                                           \
    "carriage return without a newline: old Mac line endings? convert with " \
    "tr '\\r' '\\n'"

static bool skipped_line(const char *p, const char *e)
{
    p = skip_blanks(p, e, ' ');
    return p == e || *p == '#';
}

/* Walks the fields of one line: between delimiters (blanks trimmed) or,
 * for delim ' ', runs of non-blanks. Not used on the hot path. */
typedef struct {
    const char *p, *e;
    char delim;
    bool done;
} field_iter;

static bool field_next(field_iter *it, const char **tok, size_t *len)
{
    const char *start = skip_blanks(it->p, it->e, it->delim), *end;
    if (it->delim == ' ') {
        if (start == it->e)
            return false;
        for (end = start; end < it->e && !is_blank(*end, ' '); end++)
            ;
        it->p = end;
    } else {
        if (it->done)
            return false;
        const char *d = memchr(start, it->delim, (size_t)(it->e - start));
        end = d ? d : it->e;
        it->done = d == NULL;
        it->p = d ? d + 1 : it->e;
        while (end > start && is_blank(end[-1], it->delim))
            end--;
    }
    *tok = start;
    *len = (size_t)(end - start);
    return true;
}

static size_t count_fields(const char *p, const char *e, char delim)
{
    field_iter it = {p, e, delim, false};
    const char *tok;
    size_t len, n = 0;
    while (field_next(&it, &tok, &len))
        n++;
    return n;
}

/* The field at p, blanks trimmed, for a message. */
static void bad_field(csv_fail *f, const char *p, const char *e, char delim)
{
    field_iter it = {p, e, delim, false};
    if (!field_next(&it, &f->tok, &f->len)) {
        f->tok = p;
        f->len = 0;
    }
}

static bool is_number(const char *tok, size_t len, locale_t c_loc)
{
    const char *p = tok;
    double v;
    num_status st = parse_number(&p, tok + len, c_loc, &v);
    return st != NUM_NONE && p == tok + len;
}

/* ---- CSV: layout -------------------------------------------------------- */

typedef struct {
    const char *lo, *e;  /* the line's text, without its end */
    size_t number;       /* 1-based */
} text_line;

/* What the serial look at the file's start decides. */
typedef struct {
    char delim;          /* ',' ';' '\t', or ' ' for runs of blanks */
    size_t cols;
    bool has_header;
    text_line header;
    const char *data;    /* where data lines start */
    size_t data_line;    /* the number of that line */
} csv_plan;

/* Moves *pp past the next line that is neither blank nor a comment and
 * returns it in *out: 1, or 0 at the end of the text, or -FAIL_NUL or
 * -FAIL_BARE_CR with *number at a line that holds one (odd_line). */
static int next_content(const char **pp, const char *hi, size_t *number,
                        text_line *out)
{
    while (*pp < hi) {
        const char *lo = *pp, *e = line_end(lo, hi);
        bool skipped = skipped_line(lo, e);
        fail_kind odd = odd_line(lo, e, hi, skipped);
        if (odd != FAIL_NONE)
            return -(int)odd;
        *pp = next_line(e, hi);
        if (!skipped) {
            *out = (text_line){lo, e, *number};
            (*number)++;
            return 1;
        }
        (*number)++;
    }
    return 0;
}

/* Automatic header: the first content line is one when none of its
 * fields is a number (surrounding quotes ignored), data when all are; a
 * line of both is an error, since either reading drops or mangles
 * something ("1,2x" is a data row with a typo, not names). "nan" and
 * "inf" count as numbers here, so a first data row holding them is
 * reported as non-finite, not taken for a header. Returns 1 (header), 0
 * (data) or -1 with *bad at a field that is not a number. */
static int looks_like_header(const text_line *l, char delim, locale_t c_loc,
                             csv_fail *bad)
{
    if (!delim)
        delim = memchr(l->lo, ',', (size_t)(l->e - l->lo)) ? ',' : ' ';
    field_iter it = {l->lo, l->e, delim, false};
    const char *tok;
    size_t len, numbers = 0, words = 0;
    while (field_next(&it, &tok, &len)) {
        const char *t = tok;
        size_t n = len;
        if (n >= 2 && t[0] == '"' && t[n - 1] == '"')
            t++, n -= 2;
        if (!n)
            continue;
        if (is_number(t, n, c_loc)) {
            numbers++;
        } else if (!words++) {
            bad->tok = tok;
            bad->len = len;
        }
    }
    if (numbers && words)
        return -1;
    return words > 0;
}

/* A NUL byte in a field: the quoted field would stop at it, and the real
 * problem is the file. */
static bool nul_field(const char *tok, size_t len)
{
    return memchr(tok, '\0', len) != NULL;
}

static int nul_error(const char *path, size_t line, char *msg)
{
    return ember__err(msg, EMBER_EFORMAT, "%s:%zu: a NUL byte in the line: a "
                      "binary file, or UTF-16 text?", path, line);
}

static int mixed_header(const char *path, const text_line *l,
                        const csv_fail *bad, char *msg)
{
    if (nul_field(bad->tok, bad->len))
        return nul_error(path, l->number, msg);
    int w = bad->len > 40 ? 40 : (int)bad->len;
    return ember__err(msg, EMBER_EFORMAT,
                      "%s:%zu: '%.*s%s' is not a number, but other fields of "
                      "this first line are: a header has no numeric names, a "
                      "data row only numbers",
                      path, l->number, w, bad->tok, bad->len > 40 ? "..." : "");
}

static int no_rows(const char *path, char *msg)
{
    return ember__err(msg, EMBER_EFORMAT, "%s: no data rows", path);
}

static int bare_cr_error(const char *path, size_t line, char *msg)
{
    return ember__err(msg, EMBER_EFORMAT, "%s:%zu: " BARE_CR_TEXT, path, line);
}

/* next_content's 0 (no rows) or failure (odd_line's kind, negated). */
static int plan_stop(int got, const char *path, size_t line, char *msg)
{
    if (got == 0)
        return no_rows(path, msg);
    return got == -(int)FAIL_NUL ? nul_error(path, line, msg) : bare_cr_error(path, line, msg);
}

static const char *skip_bom(const char *text, size_t size)
{
    return size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? text + 3 : text;
}

static int header_check(const csv_plan *pl, const char *path, char *msg)
{
    size_t names = count_fields(pl->header.lo, pl->header.e, pl->delim);
    if (names == pl->cols)
        return EMBER_OK;
    return ember__err(msg, EMBER_EFORMAT,
                      "%s:%zu: header has %zu names but the data has %zu "
                      "columns", path, pl->header.number, names, pl->cols);
}

/* With the delimiter guessed from the first data line, a header split
 * otherwise ("x,y" over "1 2") would be counted, and named, wrongly. */
static int header_delimiter(const csv_plan *pl, const text_line *data,
                            const char *path, char *msg)
{
    const text_line *h = &pl->header;
    char own = memchr(h->lo, ',', (size_t)(h->e - h->lo)) ? ',' : ' ';
    if (own == pl->delim)
        return header_check(pl, path, msg);
    return ember__err(msg, EMBER_EFORMAT,
                      "%s:%zu: the header is separated by %s but the data "
                      "(line %zu) by %s: use one delimiter",
                      path, h->number, own == ',' ? "commas" : "blanks",
                      data->number, pl->delim == ',' ? "commas" : "blanks");
}

static int csv_plan_make(csv_plan *pl, const char *path, const char *text,
                         size_t size, const ember_text_opts *o,
                         locale_t c_loc, char *msg)
{
    const char *p = skip_bom(text, size), *hi = text + size;
    size_t number = 1;
    text_line first, data;
    memset(pl, 0, sizeof *pl);
    int got = next_content(&p, hi, &number, &first);
    if (got <= 0)
        return plan_stop(got, path, number, msg);
    csv_fail bad = {0};
    int header = o->header == 0
                     ? looks_like_header(&first, o->delimiter, c_loc, &bad)
                     : o->header > 0;
    if (header < 0)
        return mixed_header(path, &first, &bad, msg);
    pl->has_header = header;
    pl->data = pl->has_header ? p : first.lo;
    pl->data_line = pl->has_header ? first.number + 1 : first.number;
    data = first;
    got = pl->has_header ? next_content(&p, hi, &number, &data) : 1;
    if (got <= 0)
        return plan_stop(got, path, number, msg);
    pl->delim = o->delimiter;
    if (!pl->delim)
        pl->delim =
            memchr(data.lo, ',', (size_t)(data.e - data.lo)) ? ',' : ' ';
    pl->cols = count_fields(data.lo, data.e, pl->delim);
    pl->header = first;
    if (pl->has_header && !o->delimiter)
        return header_delimiter(pl, &data, path, msg);
    return pl->has_header ? header_check(pl, path, msg) : EMBER_OK;
}

/* ---- CSV: record type --------------------------------------------------- */

static bool name_taken(const ember_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return true;
    return false;
}

/* Field i's name: the header's text without surrounding quotes, cut to fit
 * at a UTF-8 character boundary; empty or repeated names become c<i> (or
 * c<i>_2, ... should the header already use c<i>). */
static void name_field(ember_field *f, size_t i, const char *tok, size_t len)
{
    char *name = f[i].name;
    if (len >= 2 && tok[0] == '"' && tok[len - 1] == '"') {
        tok++;
        len -= 2;
    }
    if (len > EMBER_NAME_SIZE - 1) {
        len = EMBER_NAME_SIZE - 1;
        while (len && ((unsigned char)tok[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(name, tok, len);
    name[len] = '\0';
    for (int k = 1; !name[0] || name_taken(f, i, name); k++)
        if (k == 1)
            snprintf(name, EMBER_NAME_SIZE, "c%zu", i);
        else
            snprintf(name, EMBER_NAME_SIZE, "c%zu_%d", i, k);
}

static void name_fields(ember_field *f, const csv_plan *pl)
{
    field_iter it = {pl->header.lo, pl->header.e, pl->delim, false};
    for (size_t i = 0; i < pl->cols; i++) {
        const char *tok = "";
        size_t len = 0;
        if (pl->has_header)
            field_next(&it, &tok, &len);
        f[i].kind = EMBER_F64;
        f[i].count = 1;
        name_field(f, i, tok, len);
    }
}

/* One column: a scalar f64. Up to EMBER_MAX_FIELDS: a struct of f64 fields.
 * More: a struct with one array field "x" of cols doubles (header names are
 * then dropped). Each way the record is laid out as double[cols]. */
static int csv_type(ember_type *t, const csv_plan *pl, const char *path,
                    char *msg)
{
    ember_field f[EMBER_MAX_FIELDS];
    size_t n = 1;
    if (pl->cols == 1) {
        *t = ember_type_scalar(EMBER_F64);
        return EMBER_OK;
    }
    memset(f, 0, sizeof f);
    if (pl->cols > EMBER_MAX_FIELDS) {
        snprintf(f[0].name, EMBER_NAME_SIZE, "x");
        f[0].kind = EMBER_F64;
        f[0].count = pl->cols > UINT32_MAX ? UINT32_MAX : (uint32_t)pl->cols;
    } else {
        name_fields(f, pl);
        n = pl->cols;
    }
    if (ember_type_struct(t, f, n, NULL) != EMBER_OK)
        return ember__err(msg, EMBER_EFORMAT,
                          "%s: %zu columns do not fit in one record type",
                          path, pl->cols);
    return EMBER_OK;
}

/* ---- CSV: the parallel passes ------------------------------------------- */

typedef struct {
    const char *path;
    char delim;
    size_t cols;
    double *out;
    locale_t c_loc;
    size_t first_bad;   /* lowest failed chunk; SIZE_MAX while none */
    const ember__mapped *map; /* the file, when mapped */
} csv_job;

/* Lets go of the whole pages of a parsed chunk of a mapped file: clean
 * file pages, read again if touched (for an error message), so the text
 * never sits in memory whole beside the records. */
static void release_chunk(const ember__mapped *map, const chunk *c)
{
    if (!map)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = ((size_t)(c->lo - map->data) + page - 1) / page * page;
    size_t b = (size_t)(c->hi - map->data) / page * page;
    if (b > a)
        madvise((char *)map->data + a, b - a, MADV_DONTNEED);
}

static void count_rows(void *arg, chunk *c, size_t index)
{
    size_t lines = 0, rows = 0;
    (void)index;
    for (const char *p = c->lo; p < c->hi; lines++) {
        const char *e = line_end(p, c->hi);
        rows += !skipped_line(p, e);
        p = next_line(e, c->hi);
    }
    c->lines = lines;
    c->rows = rows;
    release_chunk(arg, c);
}

static fail_kind fail_at(csv_fail *f, fail_kind kind, size_t column)
{
    f->kind = kind;
    f->column = column;
    return kind;
}

/* Field k + 1 at t did not parse (its number, if any, ends at p). */
static fail_kind field_failed(const csv_job *job, csv_fail *f, const char *t,
                              const char *p, const char *e, size_t k,
                              num_status st)
{
    bad_field(f, t, e, job->delim);
    if (p == t && (t == e || *t == job->delim))
        return fail_at(f, FAIL_EMPTY, k + 1);
    if (st == NUM_NOT_FINITE)
        return fail_at(f, FAIL_NOT_FINITE, k + 1);
    if (st == NUM_RANGE)
        return fail_at(f, FAIL_RANGE, k + 1);
    return fail_at(f, FAIL_NOT_NUMBER, k + 1);
}

/* Parses the line [line, e) into row[0 .. cols). After each number comes
 * a blank or the line end; with a delimiter character, blanks then the
 * delimiter or the line end. */
static fail_kind parse_row(const csv_job *job, const char *line, const char *e,
                           double *row, csv_fail *f)
{
    const char *p = line;
    char delim = job->delim;
    size_t k = 0;
    for (;;) {
        p = skip_blanks(p, e, delim);
        if (p == e && delim == ' ')
            break;
        if (k == job->cols)
            return fail_at(f, FAIL_COLUMNS, count_fields(line, e, delim));
        const char *t = p;
        num_status st = parse_number(&p, e, job->c_loc, &row[k]);
        const char *q = delim == ' ' ? p : skip_blanks(p, e, delim);
        bool ends = q == e || (delim == ' ' ? is_blank(*q, ' ') : *q == delim);
        if (st != NUM_OK || !ends)
            return field_failed(job, f, t, p, e, k, ends ? st : NUM_NONE);
        k++;
        if (q == e)
            break;
        p = delim == ' ' ? q : q + 1;
    }
    return k == job->cols ? FAIL_NONE : fail_at(f, FAIL_COLUMNS, k);
}

/* The critical section makes the compare-and-lower one step; the atomic
 * write pairs with the atomic read in parse_chunk. */
static void note_failure(csv_job *job, size_t index)
{
#pragma omp critical(ember_text_first_bad)
    if (index < job->first_bad) {
#pragma omp atomic write
        job->first_bad = index;
    }
}

/* Chunks after one that failed are skipped: their errors would have larger
 * line numbers. Those before it still run, so the smallest line wins. */
static void parse_chunk(void *arg, chunk *c, size_t index)
{
    csv_job *job = arg;
    size_t first_bad;
#pragma omp atomic read
    first_bad = job->first_bad;
    if (index > first_bad)
        return;
    double *row = job->out + c->row0 * job->cols;
    size_t number = c->line0, rows = 0;
    for (const char *p = c->lo; p < c->hi; number++) {
        const char *e = line_end(p, c->hi);
        bool skipped = skipped_line(p, e);
        fail_kind odd = odd_line(p, e, c->hi, skipped); /* c->hi ends a line, or the text */
        if (odd != FAIL_NONE) {
            c->fail.kind = odd;
            c->fail.line = number;
            note_failure(job, index);
            return;
        }
        if (!skipped) {
            if (rows++ == c->rows) { /* past its slice of the records */
                c->fail.kind = FAIL_CHANGED;
                note_failure(job, index);
                return;
            }
            if (parse_row(job, p, e, row, &c->fail) != FAIL_NONE) {
                c->fail.line = number;
                note_failure(job, index);
                return;
            }
            row += job->cols;
        }
        p = next_line(e, c->hi);
    }
    if (rows != c->rows) {
        c->fail.kind = FAIL_CHANGED;
        note_failure(job, index);
    }
    release_chunk(job->map, c);
}

/* Quotes at most this much of a bad field in a message. */
#define QUOTE_MAX 40

static int fail_message(const csv_fail *f, const csv_job *job, char *msg)
{
    int w = f->len > QUOTE_MAX ? QUOTE_MAX : (int)f->len;
    const char *more = f->len > QUOTE_MAX ? "..." : "";
    switch (f->kind) {
    case FAIL_COLUMNS:
        return ember__err(msg, EMBER_EFORMAT,
                          "%s:%zu: expected %zu column%s, found %zu",
                          job->path, f->line, job->cols,
                          job->cols == 1 ? "" : "s", f->column);
    case FAIL_EMPTY:
        return ember__err(msg, EMBER_EFORMAT, "%s:%zu: column %zu is empty",
                          job->path, f->line, f->column);
    case FAIL_NOT_FINITE:
        return ember__err(msg, EMBER_EFORMAT,
                          "%s:%zu: '%.*s%s' is not finite (NaN and infinity "
                          "are not accepted)",
                          job->path, f->line, w, f->tok, more);
    case FAIL_RANGE:
        return ember__err(msg, EMBER_EFORMAT,
                          "%s:%zu: '%.*s%s' is too large for a double",
                          job->path, f->line, w, f->tok, more);
    case FAIL_BARE_CR:
        return bare_cr_error(job->path, f->line, msg);
    case FAIL_NUL:
        return nul_error(job->path, f->line, msg);
    case FAIL_CHANGED:
        return ember__err(msg, EMBER_EIO, "%s: changed while it was read", job->path);
    case FAIL_NOT_NUMBER:
    case FAIL_NONE:
        break;
    }
    if (nul_field(f->tok, f->len))
        return nul_error(job->path, f->line, msg);
    /* "1;2": another delimiter, the first line then taken for a header */
    char other = memchr(f->tok, ';', f->len) ? ';' : memchr(f->tok, '|', f->len) ? '|' : 0;
    if (other && job->delim != other)
        return ember__err(msg, EMBER_EFORMAT, "%s:%zu: '%.*s%s' is not a number: fields "
                          "are read as separated by %s, and this file seems to use '%c' "
                          "(ember_text_opts.delimiter takes it)", job->path, f->line, w,
                          f->tok, more,
                          job->delim == ',' ? "commas" : job->delim == ';' ? "semicolons"
                          : job->delim == '\t' ? "tabs" : "blanks", other);
    return ember__err(msg, EMBER_EFORMAT, "%s:%zu: '%.*s%s' is not a number",
                      job->path, f->line, w, f->tok, more);
}

/* The first failing chunk in order holds the smallest failing line. */
static int csv_report(const chunk *c, size_t n, const csv_job *job, char *msg)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].fail.kind != FAIL_NONE)
            return fail_message(&c[i].fail, job, msg);
    return EMBER_OK;
}

/* ---- CSV: the call ------------------------------------------------------ */

/* Everything ember_read_csv holds, freed in one place. */
typedef struct {
    char *text;
    size_t size;
    ember__mapped map;  /* text, when it is a mapped file */
    chunk *chunks;
    size_t nchunks;
    double *records;
    size_t rows;
    locale_t c_loc;
} csv_state;

static void csv_state_free(ember_ctx *ctx, csv_state *s)
{
    ember__free(ctx, s->records);
    ember__free(ctx, s->chunks);
    if (s->map.data)
        ember__unmap_file(&s->map);
    else
        ember__free(ctx, s->text);
    if (s->c_loc != (locale_t)0)
        freelocale(s->c_loc);
}

/* A regular file is mapped, not copied into memory (reading 213 MB into
 * fresh pages took 0.2 s of a 0.66 s load here, mapping it 0.02 s), and
 * its pages are let go as the chunks are counted and parsed; anything
 * else (a pipe, an empty file) is read whole, with read's messages. */
static int csv_text(ember_ctx *ctx, csv_state *s, const char *path, char *msg)
{
    if (ember__map_file(&s->map, path, NULL) == EMBER_OK) {
        s->text = (char *)s->map.data;
        s->size = s->map.size;
        return EMBER_OK;
    }
    return ember__read_file(ctx, path, &s->text, &s->size, msg);
}

static int csv_parse(ember_ctx *ctx, csv_state *s, const csv_plan *pl,
                     size_t parts, const char *path, char *msg)
{
    const ember__mapped *map = s->map.data ? &s->map : NULL;
    int rc = make_chunks(ctx, &s->chunks, &s->nchunks, parts, pl->data,
                         s->text + s->size, pl->data_line, count_rows,
                         (void *)map, &s->rows);
    if (rc)
        return ember__err(msg, rc, "%s: out of memory", path);
    if (s->rows == 0)
        return no_rows(path, msg);
    s->records = ember__malloc(ctx, ember__mul(ember__mul(s->rows, pl->cols),
                                               sizeof(double)));
    if (!s->records)
        return ember__err(msg, EMBER_ENOMEM,
                          "%s: %zu rows of %zu columns do not fit in memory",
                          path, s->rows, pl->cols);
    csv_job job = {path, pl->delim, pl->cols, s->records, s->c_loc, SIZE_MAX, map};
    for_chunks(ctx, s->chunks, s->nchunks, parse_chunk, &job);
    rc = csv_report(s->chunks, s->nchunks, &job, msg);
    if (map && ember__map_changed(map)) /* whatever the parse made of it */
        rc = ember__err(msg, EMBER_EIO, "%s: changed while it was read", path);
    return rc;
}

static bool valid_delimiter(char d)
{
    return d == 0 || d == ',' || d == ';' || d == '\t' || d == ' ';
}

int ember_read_csv(ember_ds **out, ember_ctx *ctx, const char *path,
                   const ember_text_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !path)
        return ember__err(msg, EMBER_EINVAL, "ember_read_csv: NULL argument");
    *out = NULL;
    ember_text_opts o = opts ? *opts : (ember_text_opts){0};
    if (!valid_delimiter(o.delimiter))
        return ember__err(msg, EMBER_EINVAL,
                          "ember_read_csv: delimiter must be ',', ';', '\\t', "
                          "' ' or 0 (automatic)");
    csv_state s = {0};
    csv_plan pl;
    ember_type type;
    s.map = (ember__mapped){.slot = -1, .fd = -1};
    s.c_loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    int rc = s.c_loc == (locale_t)0
                 ? ember__err(msg, EMBER_ENOMEM, "%s: no C locale", path)
                 : csv_text(ctx, &s, path, msg);
    if (!rc && s.size >= 2 && (unsigned char)s.text[0] == 0x1f &&
        (unsigned char)s.text[1] == 0x8b)
        rc = ember__err(msg, EMBER_EFORMAT,
                        "%s: gzip-compressed; decompress it first", path);
    if (!rc)
        rc = csv_plan_make(&pl, path, s.text, s.size, &o, s.c_loc, msg);
    if (!rc)
        rc = csv_type(&type, &pl, path, msg);
    size_t parts = rc ? 0 : partitions_for(ctx, &o, s.size);
    if (!rc)
        rc = csv_parse(ctx, &s, &pl, parts, path, msg);
    if (!rc) {
        rc = ember__array_source(out, ctx, &type, s.records, s.rows, parts,
                                 NULL, 0, base_name(path), msg);
        s.records = NULL; /* the dataset's now, or already freed */
    }
    csv_state_free(ctx, &s);
    return rc;
}

/* ---- lines -------------------------------------------------------------- */

typedef struct {
    const char *text, *end;
    ember_line *out;
} lines_job;

static void count_lines(void *arg, chunk *c, size_t index)
{
    (void)arg, (void)index;
    size_t n = 0;
    for (const char *p = c->lo; p < c->hi; p++) /* a loop that vectorises */
        n += *p == '\n';
    if (c->hi > c->lo && c->hi[-1] != '\n')
        n++; /* the text's last line, without an end */
    c->lines = c->rows = n;
}

static void fill_lines(void *arg, chunk *c, size_t index)
{
    const lines_job *job = arg;
    ember_line *l = job->out + c->row0;
    (void)index;
    for (const char *p = c->lo; p < c->hi; l++) {
        const char *e = line_end(p, c->hi);
        size_t len = (size_t)(e - p);
        if (e < job->end && len && e[-1] == '\r')
            len--; /* "\r\n"; a lone '\r' at the very end stays */
        l->offset = (uint64_t)(p - job->text);
        l->length = len;
        p = next_line(e, c->hi);
    }
}

int ember__lines_type(ember_type *t)
{
    ember_field f[2];
    memset(f, 0, sizeof f);
    snprintf(f[0].name, EMBER_NAME_SIZE, "offset");
    snprintf(f[1].name, EMBER_NAME_SIZE, "length");
    f[0].kind = f[1].kind = EMBER_U64;
    f[0].count = f[1].count = 1;
    return ember_type_struct(t, f, 2, NULL);
}

/* Lines and their records, the text staying with the caller (*text). */
static int lines_index(ember_ctx *ctx, const char *text, size_t size,
                       size_t parts, ember_line **recs, size_t *n)
{
    chunk *c = NULL;
    size_t nchunks;
    int rc = make_chunks(ctx, &c, &nchunks, parts, text, text + size, 1,
                         count_lines, NULL, n);
    if (!rc)
        *recs = ember__malloc(ctx, ember__mul(*n, sizeof **recs));
    if (!rc && !*recs)
        rc = EMBER_ENOMEM;
    if (!rc) {
        lines_job job = {text, text + size, *recs};
        for_chunks(ctx, c, nchunks, fill_lines, &job);
    }
    ember__free(ctx, c);
    return rc;
}

/* Only opts->partitions applies: lines are raw text, so the delimiter and
 * header options mean nothing here. The text goes to the dataset as its
 * `keep` buffer; ember_lines_text (ds.c) hands it out. */
int ember_read_lines(ember_ds **out, ember_ctx *ctx, const char *path,
                     const ember_text_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !path)
        return ember__err(msg, EMBER_EINVAL, "ember_read_lines: NULL argument");
    *out = NULL;
    ember_text_opts o = opts ? *opts : (ember_text_opts){0};
    char *text = NULL;
    size_t size = 0, n = 0;
    ember_line *recs = NULL;
    ember_type type;
    int rc = ember__read_file(ctx, path, &text, &size, msg);
    if (rc)
        return rc;
    size_t parts = partitions_for(ctx, &o, size);
    rc = ember__lines_type(&type);
    if (!rc)
        rc = lines_index(ctx, text, size, parts, &recs, &n);
    if (rc) {
        ember__free(ctx, text);
        return ember__err(msg, rc, "%s: out of memory", path);
    }
    return ember__array_source(out, ctx, &type, recs, n, parts, text, size,
                               base_name(path), msg);
}
