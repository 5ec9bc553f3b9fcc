/* stream_source.c: the file source of a stream.
 *
 * Listing: the regular files of the source directory, minus names starting
 * with '.' and names ending in ".tmp" (files still being written, by the
 * convention of writing then renaming), sorted by name in byte order.
 * A listing holds every file up to its cut, the largest file name an
 * earlier pass over the directory saw (see ember__src_list: one readdir
 * pass is no snapshot); files past the cut wait for a later pass. Which
 * files are new is decided by stream.c (names after the last one taken).
 *
 * Reading: a batch's files go into one text, in order, each followed by a
 * '\n' where it does not end with one, so no line spans two files. Exactly
 * the size recorded when the batch was planned is read: a file that has
 * since vanished, shrunk, grown or been written in place (another
 * modification time than the one recorded) is an error naming it, because
 * a re-run batch must see exactly the bytes the first run saw. Each file's
 * XXH3-64 is taken as it is read, for the commit entry (a replay compares
 * it). Files are read in
 * parallel on the context's team straight into their slots; error details
 * are kept per file and the first file's error is reported, so messages do
 * not depend on the thread count.
 *
 * Lines: ember_line records {offset, length} over the text, as
 * ember_read_lines makes them ("\r\n" ends count as line ends), held by an
 * array source that owns the text, so ember_lines_text() works on it.
 */
#include "stream_internal.h"

#include <xxhash.h>
#ifdef EMBER_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h> /* the same values, faster (see filesum.c) */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Text per partition of a batch's lines when the caller does not say: big
 * enough that a word count's map-side combine pays (fewer partitions, fewer
 * copies of each distinct word to reduce), small enough for a team. */
#define LINES_PART_BYTES ((size_t)1 << 21)
#define LINES_MAX_PARTS 4096
/* Chunks for indexing lines: enough for the team, each at least this. */
#define LINES_CHUNK_MIN ((size_t)1 << 18)

/* ---- listing ------------------------------------------------------------ */

int ember__src_ignored(const char *name)
{
    size_t len = strlen(name);
    return name[0] == '.' || (len >= 4 && strcmp(name + len - 4, ".tmp") == 0);
}

static int cmp_sfile(const void *a, const void *b)
{
    return strcmp(((const ember__sfile *)a)->name, ((const ember__sfile *)b)->name);
}

int ember__ts_ns(const struct timespec *t, int64_t *ns)
{
    if (t->tv_sec > EMBER__TS_SEC_LIM || t->tv_sec < -EMBER__TS_SEC_LIM)
        return -1;
    *ns = (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
    return 0;
}

static int add_file(ember_ctx *ctx, ember__sfile **files, size_t *n,
                    size_t *cap, const char *name, const struct stat *st)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        ember__sfile *p = ember__realloc(ctx, *files, ember__mul(c, sizeof *p));
        if (!p)
            return -1;
        *files = p;
        *cap = c;
    }
    char *copy = ember__strdup(ctx, name);
    if (!copy)
        return -1;
    ember__sfile *f = &(*files)[*n];
    memset(f, 0, sizeof *f);
    f->name = copy;
    if (st) { /* NULL: listed without a stat, size 0 and no time */
        f->size = (uint64_t)st->st_size;
        f->has_mtime = ember__ts_ns(&st->st_mtim, &f->mtime_ns) == 0;
    }
    (*n)++;
    return 0;
}

/* What d_type says of an entry: 1 a regular file, 0 never a source file
 * (a directory, a device...), -1 only a stat can tell (a symbolic link, or
 * a file system that leaves d_type unknown). */
static int dtype_file(const struct dirent *de)
{
#ifdef DT_UNKNOWN
    if (de->d_type == DT_REG)
        return 1;
    if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
        return 0;
#else
    (void)de;
#endif
    return -1;
}

/* One pass over the directory: opendir, then the test hook hears of it. */
static DIR *pass_open(const char *dir, const ember__src_hook *h)
{
    DIR *d = opendir(dir);
    if (d && h && h->opened)
        h->opened(h->arg);
    return d;
}

/* readdir, minus what the test hook hides and what is never a source file. */
static struct dirent *pass_next(DIR *d, const ember__src_hook *h)
{
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!ember__src_ignored(de->d_name) && !(h && h->hide && h->hide(h->arg, de->d_name)))
            return de;
    return NULL;
}

/* One pass: the files named up to `cut` (names at or before `after`
 * without a stat: only their names matter, for late-file warnings, and a
 * stat is most of a listing's cost); *above gets the largest file name past cut ("": none),
 * by d_type where it says DT_REG. first: a file past the cut means another
 * pass, so from then on this one only looks for the largest name. */
static int list_upto(ember_ctx *ctx, const char *dir, const char *after,
                     const char *cut, int first, const ember__src_hook *h,
                     ember__sfile **files, size_t *n, char *above, char *msg)
{
    *files = NULL;
    *n = 0;
    above[0] = '\0';
    DIR *d = pass_open(dir, h);
    if (!d)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "source directory %s: %s", dir, strerror(errno));
    size_t cap = 0;
    int rc = EMBER_OK;
    struct dirent *de;
    while ((de = pass_next(d, h)) != NULL) {
        struct stat st;
        int old = after && strcmp(de->d_name, after) <= 0, k = dtype_file(de);
        if (k == 0)
            continue;
        if (!old && strcmp(de->d_name, cut) > 0) { /* waits for a later pass */
            if (strcmp(de->d_name, above) > 0 &&
                (k > 0 || (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))))
                memcpy(above, de->d_name, strlen(de->d_name) + 1); /* <= NAME_MAX */
            continue;
        }
        if (first && above[0])
            continue; /* this listing is dropped */
        if (!old && (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)))
            continue; /* renamed away or deleted since readdir: not here */
        if (add_file(ctx, files, n, &cap, de->d_name, old ? NULL : &st)) {
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory listing %s", dir);
            break;
        }
    }
    closedir(d);
    if (rc) {
        ember__sfiles_free(ctx, *files, *n);
        *files = NULL;
        *n = 0;
    }
    return rc;
}

/* readdir is no snapshot: a pass may miss an entry renamed in while it
 * runs (and return one renamed in after a later one). What it promises is
 * every entry that was in the directory when it was opened and stays. So
 * a listing holds the files up to a cut C, the largest file name that an
 * earlier pass saw: every file that sorts before C arrived before C did
 * (files arrive in name order), so before this pass opened the directory,
 * and this pass returns it. Files past C wait for a pass that opens after
 * one that saw them: a second one, made at once, with the largest of them
 * as its cut. So a listing holds every file that was there when it
 * began, at the cost of a second pass when files arrived since the last
 * listing (the first one then only looks for the largest name), and none
 * when nothing did. */
int ember__src_list(ember_ctx *ctx, const char *dir, const char *after,
                    const ember__src_hook *hook, char *seen, ember__sfile **files,
                    size_t *n, char *msg)
{
    char above[NAME_MAX + 1];
    *files = NULL;
    *n = 0;
    int rc = list_upto(ctx, dir, after, seen, 1, hook, files, n, above, msg);
    if (!rc && above[0]) {
        memcpy(seen, above, sizeof above);
        ember__sfiles_free(ctx, *files, *n);
        rc = list_upto(ctx, dir, after, seen, 0, hook, files, n, above, msg);
        if (!rc && above[0])
            memcpy(seen, above, sizeof above);
    }
    if (!rc && *n > 1)
        qsort(*files, *n, sizeof **files, cmp_sfile);
    return rc;
}

/* ---- reading --------------------------------------------------------------- */

typedef enum { RD_OK, RD_OPEN, RD_READ, RD_SHORT, RD_LONG, RD_TOUCHED } rd_status;

typedef struct {
    rd_status status;
    int err;          /* errno */
    uint64_t got;     /* bytes found (RD_SHORT) */
    int newline;      /* 1 when a '\n' must follow the file */
    int64_t mtime_ns; /* found (RD_TOUCHED) */
} rd_result;

/* RD_TOUCHED when the file's modification time is not the one recorded
 * when its batch was planned: written in place since, even at the same
 * size. Checked after the read, so a write during it counts too. */
static void check_mtime(int fd, const ember__sfile *f, rd_result *r)
{
    struct stat st;
    int64_t ns;
    if (r->status != RD_OK || !f->has_mtime || fstat(fd, &st) != 0 ||
        ember__ts_ns(&st.st_mtim, &ns) != 0 || ns == f->mtime_ns)
        return;
    r->status = RD_TOUCHED;
    r->mtime_ns = ns;
}

/* Reads exactly f->size bytes of dir/name into buf, and checks the file
 * ends there and was not written since it was planned. */
static rd_result read_one(int dfd, const ember__sfile *f, char *buf)
{
    rd_result r = {RD_OK, 0, 0, 0, 0};
    uint64_t want = f->size;
    int fd = openat(dfd, f->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return (rd_result){RD_OPEN, errno, 0, 0, 0};
    uint64_t n = 0;
    while (n < want) {
        size_t step = want - n < ((size_t)1 << 30) ? (size_t)(want - n) : (size_t)1 << 30;
        ssize_t got = read(fd, buf + n, step);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r = got < 0 ? (rd_result){RD_READ, errno, n, 0, 0}
                        : (rd_result){RD_SHORT, 0, n, 0, 0};
            break;
        }
        n += (uint64_t)got;
    }
    char extra;
    ssize_t more;
    while (r.status == RD_OK && (more = read(fd, &extra, 1)) < 0 && errno == EINTR)
        ;
    if (r.status == RD_OK && more > 0)
        r.status = RD_LONG;
    check_mtime(fd, f, &r);
    close(fd);
    r.newline = r.status == RD_OK && want > 0 && buf[want - 1] != '\n';
    return r;
}

/* ns since the epoch as seconds and nanoseconds (floor division). */
static int64_t ns_sec(int64_t ns)
{
    return ns / 1000000000 - (ns % 1000000000 < 0);
}

static int64_t ns_frac(int64_t ns)
{
    return ns - ns_sec(ns) * 1000000000;
}

static int read_error(const char *dir, const ember__sfile *f, const rd_result *r,
                      char *msg)
{
    switch (r->status) {
    case RD_OPEN:
        return ember__err(msg, r->err == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "source file %s/%s: cannot open: %s (a batch's files "
                          "must stay until it commits: put it back, or start over with "
                          "a new checkpoint location and an empty sink)", dir, f->name,
                          strerror(r->err));
    case RD_READ:
        return ember__err(msg, EMBER_EIO, "source file %s/%s: read failed: %s",
                          dir, f->name, strerror(r->err));
    case RD_LONG: /* most often written in place (cp, scp, >) as it was planned */
        if (f->has_mtime)
            return ember__err(msg, EMBER_EFORMAT,
                              "source file %s/%s changed after it arrived: it had %llu "
                              "bytes when its batch was planned and now has more (files "
                              "must not change once in the source directory: write them "
                              "elsewhere and rename them in). A re-run batch must read "
                              "the bytes it was planned with: to keep the later ones, "
                              "write them elsewhere (tail -c +%llu '%s/%s' > NEW), cut "
                              "this file back (truncate -s %llu '%s/%s'; touch -d @%"
                              PRId64 ".%09" PRId64 " '%s/%s') and rename NEW in under a "
                              "name that sorts after the newest file; or start over with "
                              "a new checkpoint location and an empty sink",
                              dir, f->name, (unsigned long long)f->size,
                              (unsigned long long)f->size + 1, dir, f->name,
                              (unsigned long long)f->size, dir, f->name,
                              ns_sec(f->mtime_ns), ns_frac(f->mtime_ns), dir, f->name);
        /* fall through - no time recorded (a format 1 entry) */
    case RD_SHORT:
        return ember__err(msg, EMBER_EFORMAT,
                          "source file %s/%s changed after it arrived: it had %llu "
                          "bytes when its batch was planned and now has %s %llu "
                          "(files must not change once in the source directory; a "
                          "re-run batch must read the bytes it was planned with: "
                          "restore them, or start over with a new checkpoint location "
                          "and an empty sink)",
                          dir, f->name, (unsigned long long)f->size,
                          r->status == RD_SHORT ? "only" : "more than",
                          (unsigned long long)(r->status == RD_SHORT ? r->got : f->size));
    case RD_TOUCHED: /* with the way out: it is refused on every restart */
        return ember__err(msg, EMBER_EFORMAT,
                          "source file %s/%s changed after it arrived: it was modified "
                          "at %" PRId64 ".%09" PRId64 " s when its batch was planned, at %"
                          PRId64 ".%09" PRId64 " s now (same size); a re-run batch must "
                          "read the bytes it was planned with. If the bytes are unchanged "
                          "(only touched, or restored without nanoseconds), restore the "
                          "time: touch -d @%" PRId64 ".%09" PRId64 " '%s/%s'; else restore "
                          "the bytes, or use a new checkpoint location", dir, f->name,
                          ns_sec(f->mtime_ns), ns_frac(f->mtime_ns), ns_sec(r->mtime_ns),
                          ns_frac(r->mtime_ns), ns_sec(f->mtime_ns), ns_frac(f->mtime_ns),
                          dir, f->name);
    default:
        return EMBER_OK;
    }
}

/* Removes the spare byte after each file that ends with '\n' (each slot
 * had room for one) and puts a '\n' where one is needed. */
static size_t compact(char *text, const ember__sfile *files, size_t n,
                      const rd_result *res, uint64_t *off)
{
    size_t from = 0, to = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)files[i].size;
        off[i] = to;
        if (to != from && len)
            memmove(text + to, text + from, len);
        to += len;
        if (res[i].newline)
            text[to++] = '\n';
        from += len + 1;
    }
    off[n] = to;
    text[to] = '\0';
    return to;
}

int ember__src_read(ember_ctx *ctx, const char *dir, const ember__sfile *files,
                    size_t nfiles, char **text, size_t *size,
                    uint64_t *file_offsets, uint64_t *hashes, char *msg)
{
    *text = NULL;
    *size = 0;
    uint64_t total = 1;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i].size > SIZE_MAX / 2 - total)
            return ember__err(msg, EMBER_ENOMEM, "batch of %zu files is too big", nfiles);
        total += files[i].size + 1;
    }
    char *buf = ember__malloc(ctx, (size_t)total);
    rd_result *res = ember__calloc(ctx, nfiles + 1, sizeof *res);
    size_t *slot = ember__calloc(ctx, nfiles + 1, sizeof *slot);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = EMBER_OK;
    if (!buf || !res || !slot)
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory for a batch of %llu bytes",
                        (unsigned long long)total);
    else if (dfd < 0)
        rc = ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                        "source directory %s: %s", dir, strerror(errno));
    for (size_t i = 1; !rc && i <= nfiles; i++)
        slot[i] = slot[i - 1] + (size_t)files[i - 1].size + 1;
    long long N = rc ? 0 : (long long)nfiles;
#pragma omp parallel for schedule(dynamic, 4) num_threads(ctx->threads)
    for (long long i = 0; i < N; i++) {
        res[i] = read_one(dfd, &files[i], buf + slot[i]);
        /* Hashed while the bytes are in cache: what a replay compares. */
        if (hashes && res[i].status == RD_OK)
            hashes[i] = XXH3_64bits(buf + slot[i], (size_t)files[i].size);
    }
    for (size_t i = 0; !rc && i < nfiles; i++)
        rc = read_error(dir, &files[i], &res[i], msg);
    if (!rc)
        *size = compact(buf, files, nfiles, res, file_offsets);
    if (dfd >= 0)
        close(dfd);
    ember__free(ctx, res);
    ember__free(ctx, slot);
    if (rc) {
        ember__free(ctx, buf);
        return rc;
    }
    *text = buf;
    return EMBER_OK;
}

/* ---- lines --------------------------------------------------------------------- */

typedef struct {
    size_t lo, hi;   /* bytes [lo, hi): whole lines */
    size_t first;    /* index of its first line */
    size_t lines;
} lchunk;

static size_t count_lines(const char *text, size_t lo, size_t hi)
{
    size_t n = 0;
    for (size_t i = lo; i < hi; i++) /* a loop that vectorises */
        n += text[i] == '\n';
    if (hi > lo && text[hi - 1] != '\n')
        n++;
    return n;
}

static void fill_lines(const char *text, size_t size, const lchunk *c,
                       ember_line *out)
{
    ember_line *l = out + c->first;
    for (size_t p = c->lo; p < c->hi; l++) {
        const char *nl = memchr(text + p, '\n', c->hi - p);
        size_t e = nl ? (size_t)(nl - text) : c->hi, len = e - p;
        if (e < size && len && text[e - 1] == '\r')
            len--;
        l->offset = p;
        l->length = len;
        p = e + 1;
    }
}

/* Chunk boundaries just after a '\n'. */
static size_t make_chunks(const char *text, size_t size, lchunk *c, size_t want)
{
    size_t n = 0, lo = 0;
    for (size_t k = 1; k <= want && lo < size; k++) {
        size_t hi = k == want ? size : size / want * k;
        if (hi < lo)
            hi = lo;
        const char *nl = hi < size ? memchr(text + hi, '\n', size - hi) : NULL;
        hi = hi >= size ? size : nl ? (size_t)(nl - text) + 1 : size;
        if (hi > lo)
            c[n++] = (lchunk){lo, hi, 0, 0};
        lo = hi;
    }
    return n;
}

int ember__src_lines(ember_ds **out, ember_ctx *ctx, char *text, size_t size,
                     size_t partitions, const char *name, char *msg)
{
    *out = NULL;
    size_t want = size / LINES_CHUNK_MIN + 1;
    size_t team = (size_t)(ctx->threads > 0 ? ctx->threads : 1) * 4;
    want = want < team ? want : team;
    lchunk *c = ember__calloc(ctx, want + 1, sizeof *c);
    ember_type type;
    if (!c || ember__lines_type(&type)) {
        ember__free(ctx, c);
        ember__free(ctx, text);
        return ember__err(msg, EMBER_ENOMEM, "out of memory indexing lines");
    }
    long long nc = (long long)make_chunks(text, size, c, want);
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->threads)
    for (long long i = 0; i < nc; i++)
        c[i].lines = count_lines(text, c[i].lo, c[i].hi);
    size_t n = 0;
    for (long long i = 0; i < nc; i++) {
        c[i].first = n;
        n += c[i].lines;
    }
    ember_line *recs = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *recs));
    if (!recs) {
        ember__free(ctx, c);
        ember__free(ctx, text);
        return ember__err(msg, EMBER_ENOMEM, "out of memory indexing %zu lines", n);
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->threads)
    for (long long i = 0; i < nc; i++)
        fill_lines(text, size, &c[i], recs);
    ember__free(ctx, c);
    size_t P = partitions ? partitions : size / LINES_PART_BYTES + 1;
    P = P < LINES_MAX_PARTS ? P : LINES_MAX_PARTS;
    return ember__array_source(out, ctx, &type, recs, n, P, text, size, name, msg);
}
