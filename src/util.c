/* util.c: allocation through the context's allocator, error messages,
 * statistics and growable record buffers.
 *
 * Everything the library allocates goes through ember__malloc and friends so
 * a test can swap in an allocator that fails the Nth call. Sizes are checked
 * for overflow before they reach the allocator.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const struct {
    int status;
    const char *text;
} status_text[] = {
#define EMBER_STATUS_TEXT_(name, value, text) {value, text},
    EMBER_STATUS_MAP(EMBER_STATUS_TEXT_)
#undef EMBER_STATUS_TEXT_
};

const char *ember_strerror(int status)
{
    for (size_t i = 0; i < sizeof status_text / sizeof status_text[0]; i++)
        if (status_text[i].status == status)
            return status_text[i].text;
    return "unknown status";
}

int ember_exit_status(int status)
{
    switch (status) {
    case EMBER_INTERRUPTED:
        return EMBER_EXIT_RESUMABLE;
    case EMBER_EFORMAT: case EMBER_ENOTFOUND: case EMBER_EEMPTY:
    case EMBER_ERANGE: case EMBER_EINVAL: case EMBER_ETYPE:
    case EMBER_ELENGTH: case EMBER_EMISMATCH:
    case EMBER_ECORRUPT: /* a damaged input file (a checkpoint is skipped) */
        return 2;
    }
    return status < 0;
}

size_t ember__mul(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return SIZE_MAX;
    return n * size;
}

void *ember__malloc(ember_ctx *ctx, size_t size)
{
    if (size == SIZE_MAX)
        return NULL;
    return ctx->alloc.malloc_fn(size ? size : 1, ctx->alloc.ud);
}

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* The copies of AMD's Zen 3 (rep movsb: glibc's memcpy from 2 KiB, and
 * the kernel's copy out of the page cache) run 5-30x slower when the
 * destination is 1 to 63 bytes past the source modulo 4 KiB (measured: 2.8
 * against 65-90 GB/s in cache; a pread of a page-cached file 100 against
 * 20 ms for 276 MB). 16 bytes past a page is where glibc puts a large
 * malloc, so with a page-aligned source it is the common case. Pieces of
 * COPY_PIECE bytes, which glibc copies with vector moves, are fast. */
void *ember__copy_pieces(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t at = 0; at < n; at += COPY_PIECE)
        memcpy(d + at, s + at, n - at < COPY_PIECE ? n - at : COPY_PIECE);
    return dst;
}

/* pread, but a read that the kernel would copy slowly goes through a
 * bounce buffer (on the stack) at the file offset's place modulo 4 KiB,
 * then ember__copy: 13 against 28 ms for 64 MiB, 8.5 when aligned. */
#define BOUNCE (64u << 10)
static ssize_t pread_fast(int fd, void *buf, size_t n, uint64_t at)
{
    if (n <= COPY_PIECE || !ember__copy_slow((uintptr_t)buf, (uintptr_t)at))
        return pread(fd, buf, n, (off_t)at);
    unsigned char room[BOUNCE + 4096];
    unsigned char *b = room + (((uintptr_t)at - (uintptr_t)room) & 4095);
    ssize_t k = pread(fd, b, n < BOUNCE ? n : BOUNCE, (off_t)at);
    if (k > 0)
        ember__copy(buf, b, (size_t)k);
    return k;
}

long long ember__pread_full(int fd, void *buf, size_t n, uint64_t at)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread_fast(fd, (char *)buf + got, n - got, at + got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (long long)got;
}

void ember__hint_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)1 << 21;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

void *ember__calloc(ember_ctx *ctx, size_t n, size_t size)
{
    size_t bytes = ember__mul(n, size);
    void *p = ember__malloc(ctx, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *ember__realloc(ember_ctx *ctx, void *ptr, size_t size)
{
    if (size == SIZE_MAX)
        return NULL;
    return ctx->alloc.realloc_fn(ptr, size ? size : 1, ctx->alloc.ud);
}

void ember__free(ember_ctx *ctx, void *ptr)
{
    if (ptr)
        ctx->alloc.free_fn(ptr, ctx->alloc.ud);
}

void ember_free(ember_ctx *ctx, void *ptr)
{
    if (ctx)
        ember__free(ctx, ptr);
}

char *ember__strdup(ember_ctx *ctx, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = ember__malloc(ctx, len);
    if (d)
        memcpy(d, s, len);
    return d;
}

void ember__one_line(char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            *s = '?';
}

int ember__err(char *msg, int status, const char *fmt, ...)
{
    if (msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, EMBER_MSG_SIZE, fmt, ap);
        va_end(ap);
        ember__one_line(msg);
    }
    return status;
}

void ember__stat_add(ember_ctx *ctx, uint64_t *field, uint64_t v)
{
    omp_set_lock(&ctx->stats_lock);
    *field += v;
    omp_unset_lock(&ctx->stats_lock);
}

void ember__stat_gauge(ember_ctx *ctx, size_t *field, int sign, size_t v)
{
    omp_set_lock(&ctx->stats_lock);
    if (sign > 0)
        *field += v;
    else
        *field -= v < *field ? v : *field;
    omp_unset_lock(&ctx->stats_lock);
}

int ember__buf_reserve(ember_ctx *ctx, ember__buf *b, size_t nrec)
{
    if (nrec <= b->cap)
        return EMBER_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < nrec)
        cap = cap > SIZE_MAX / 2 ? nrec : cap * 2;
    void *p = ember__realloc(ctx, b->data, ember__mul(cap, b->size));
    if (!p)
        return EMBER_ENOMEM;
    b->data = p;
    b->cap = cap;
    return EMBER_OK;
}

void ember__buf_fit(ember_ctx *ctx, ember__buf *b)
{
    if (b->n >= b->cap)
        return;
    void *p = ember__realloc(ctx, b->data, ember__mul(b->n, b->size));
    if (p) {
        b->data = p;
        b->cap = b->n;
    }
}

int ember__buf_append(ember_ctx *ctx, ember__buf *b, const void *recs,
                      size_t n)
{
    if (n == 0)
        return EMBER_OK;
    if (b->n + n < b->n)
        return EMBER_ENOMEM;
    int rc = ember__buf_reserve(ctx, b, b->n + n);
    if (rc)
        return rc;
    memcpy(b->data + b->n * b->size, recs, n * b->size);
    b->n += n;
    return EMBER_OK;
}

void ember__buf_free(ember_ctx *ctx, ember__buf *b)
{
    ember__free(ctx, b->data);
    b->data = NULL;
    b->n = b->cap = 0;
}

static _Thread_local int in_task, misused;

int ember__parallel_misused(void)
{
    int m = misused;
    misused = 0;
    return m;
}

int ember__not_in_task(const char *what, char *msg)
{
    if (!in_task)
        return EMBER_OK;
    misused = 1;
    return ember__err(msg, EMBER_ESTATE, "ember %s was called inside a user function, "
                      "where ember.h allows only ember_emit and the functions it "
                      "names: compute the value before, and pass it in the arg or "
                      "a broadcast", what);
}

int ember__parallel(ember_ctx *ctx, size_t lo, size_t hi, ember__task_fn fn,
                    void *state, size_t *failed_at, char *msg)
{
    int rc = ember__not_in_task("action", msg);
    if (rc) {
        if (failed_at)
            *failed_at = lo;
        return rc;
    }
    long long L = (long long)lo, H = (long long)hi, failed = H;
    int first = EMBER_OK;
    /* No more threads than tasks: an idle, spinning thread only slows a
     * one-partition job down. */
    int team = hi - lo < (size_t)ctx->threads ? (int)(hi - lo) : ctx->threads;
#pragma omp atomic
    ctx->passes++;
#pragma omp parallel for schedule(dynamic, 1) num_threads(team > 0 ? team : 1)
    for (long long i = L; i < H; i++) {
        long long f;
#pragma omp atomic read
        f = failed;
        if (i > f)
            continue; /* a lower task failed: its error is the answer */
        char local[EMBER_MSG_SIZE] = "";
        in_task = 1;
        misused = 0;
        int r = fn(state, (size_t)i, local);
        in_task = 0;
        if (r) {
#pragma omp critical(ember_parallel_error)
            if (i < failed) {
                failed = i;
                first = r;
                if (msg)
                    memcpy(msg, local, EMBER_MSG_SIZE);
            }
        }
    }
    if (failed_at)
        *failed_at = (size_t)failed;
    return first;
}

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

/* One level: an existing directory is fine, whatever mkdir says of it
 * (EACCES or EROFS on some file systems); an existing other file is
 * ENOTDIR (mkdir says EEXIST, which would read as success). */
static int mkdir_one(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return 0;
    int err = errno;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return 0;
        if (err == EEXIST)
            err = ENOTDIR;
    }
    errno = err;
    return -1;
}

int ember__open_new(const char *path, int flags)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    return open(path, flags | O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
}

int ember__denied(int e)
{
    return e == EACCES || e == EPERM || e == EROFS;
}

int ember__mkdir_p(const char *dir, char *part)
{
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) {
        errno = n ? ENAMETOOLONG : ENOENT;
        if (part)
            snprintf(part, PATH_MAX, "%.*s", PATH_MAX - 1, dir);
        return -1;
    }
    memcpy(p, dir, n + 1);
    /* Parents first, each component once: a racing maker of the same
     * directories (another context, another rank) only makes mkdir say
     * EEXIST. */
    for (char *c = p + 1; ; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char was = *c;
        *c = '\0';
        int bad = c[-1] != '/' && mkdir_one(p) != 0, err = errno;
        if (bad && part)
            snprintf(part, PATH_MAX, "%s", p);
        errno = err;
        *c = was;
        if (bad)
            return -1;
        if (!was)
            return 0;
    }
}

void ember__parent_dir(const char *path, char *buf, size_t size)
{
    snprintf(buf, size, "%s", path);
    char *slash = strrchr(buf, '/');
    while (slash && slash > buf && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(buf, '/');
    }
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == buf)
        buf[1] = '\0';
    else
        *slash = '\0';
}

int ember__fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    /* Some file systems cannot fsync a directory; the rename is still
     * ordered after the file's own fsync. */
    if (rc && (errno == EINVAL || errno == EROFS))
        rc = 0;
    close(fd);
    return rc;
}
