/* stream_log.c: the small files of a stream's checkpoint location.
 *
 * metadata, offsets/<batch> and commits/<batch> are short text files (the
 * format is in docs/streaming.md): a header line naming the kind and the
 * format version, "name value" lines, and a last line "checksum <hex>"
 * holding the 64-bit FNV-1a of every byte before it. A file that fails its
 * checksum or does not parse is EMBER_ECORRUPT, naming the file; one that a
 * newer ember wrote is EMBER_EFORMAT. File names and description lines are
 * stored %XX-escaped so that any byte survives.
 *
 * Every file is written atomically (ember__afile): a dot-named .tmp in the
 * same directory, flushed, fsync'd, renamed into place, then the directory
 * fsync'd. A reader sees the old file or the new one, never half of one.
 *
 * Called from stream.c on the caller's thread (and from the unit tests).
 */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE; the build's POSIX level is unchanged */
#include "stream_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- strings ---------------------------------------------------------------- */

/* Makes room for `more` bytes and the NUL; -1 when it cannot. A string
 * with no context is a fixed buffer: it never grows. */
static int sb_room(ember__sb *b, size_t more)
{
    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    if (!b->ctx) {
        b->oom = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *s = ember__realloc(b->ctx, b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

/* A fixed buffer that is full keeps what fits. */
static void sb_cut(ember__sb *b, const char *bytes, size_t n)
{
    if (b->ctx || b->len + 1 >= b->cap)
        return;
    size_t fit = b->cap - b->len - 1 < n ? b->cap - b->len - 1 : n;
    memcpy(b->s + b->len, bytes, fit);
    b->len += fit;
    b->s[b->len] = '\0';
}

void ember__sb_add(ember__sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom)
        return;
    if (sb_room(b, (size_t)n)) {
        if (!b->ctx && b->len + 1 < b->cap) {
            va_start(ap, fmt);
            vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
            va_end(ap);
            b->len = b->cap - 1;
        }
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ember__sb_bytes(ember__sb *b, const char *bytes, size_t n)
{
    if (b->oom)
        return;
    if (sb_room(b, n)) {
        sb_cut(b, bytes, n);
        return;
    }
    if (n)
        memcpy(b->s + b->len, bytes, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ember__sb_escaped(ember__sb *b, const char *bytes, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c <= 0x20 || c == 0x7f || c == '%') {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            ember__sb_bytes(b, e, 3);
        } else {
            ember__sb_bytes(b, (const char *)&c, 1);
        }
    }
}

void ember__sb_free(ember__sb *b)
{
    ember__free(b->ctx, b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

int ember__sl_unescape(char *s, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] != '%') {
            s[o++] = s[i];
            continue;
        }
        int hi = s[i + 1] ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 && s[i + 2] ? hexval(s[i + 2]) : -1;
        if (lo < 0)
            return -1;
        s[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    s[o] = '\0';
    if (len)
        *len = o;
    return 0;
}

uint64_t ember__sl_fnv(const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- atomic files ------------------------------------------------------------- */

/* Starts dir/name, written as dir/tmp until its commit. */
static int af_open_as(ember__afile *a, const char *dir, const char *name,
                      const char *tmp, char *msg)
{
    a->f = NULL;
    a->tmp[0] = '\0';
    if ((size_t)snprintf(a->dir, sizeof a->dir, "%s", dir) >= sizeof a->dir ||
        (size_t)snprintf(a->path, sizeof a->path, "%s/%s", dir, name) >= sizeof a->path ||
        (size_t)snprintf(a->tmp, sizeof a->tmp, "%s/%s", dir, tmp) >= sizeof a->tmp) {
        a->tmp[0] = '\0';
        return ember__err(msg, EMBER_EINVAL, "path too long: %s/%s", dir, name);
    }
    int fd = ember__open_new(a->tmp, 0);
    if (fd < 0) {
        int e = errno;
        a->tmp[0] = '\0';
        return ember__err(msg, EMBER_EIO, "cannot create %s/%s: %s%s", dir, tmp,
                          strerror(e), e == ENOENT ? " (was the directory removed while "
                          "the stream ran? a restart makes it again and says what is "
                          "missing)" : "");
    }
    a->f = fdopen(fd, "w");
    if (!a->f) {
        close(fd);
        ember__af_abort(a);
        return ember__err(msg, EMBER_ENOMEM, "out of memory opening %s", a->path);
    }
    setvbuf(a->f, NULL, _IOFBF, (size_t)1 << 17); /* fewer write(2)s for big files */
    return EMBER_OK;
}

int ember__af_open(ember__afile *a, const char *dir, const char *name,
                   char *msg)
{
    char tmp[NAME_MAX + 8];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name); /* a longer name fails in af_open_as */
    return af_open_as(a, dir, name, tmp, msg);
}

/* Flushes, fsyncs and closes the temporary: the step that failed (its
 * errno in *e), or NULL. */
static const char *af_finish(ember__afile *a, int *e)
{
    const char *step = NULL;
    errno = 0;
    if (fflush(a->f) != 0 || ferror(a->f))
        step = "write";
    else if (fsync(fileno(a->f)) != 0)
        step = "fsync";
    *e = step ? errno : 0;
    if (fclose(a->f) != 0 && !step) {
        *e = errno;
        step = "close";
    }
    a->f = NULL;
    return step;
}

int ember__af_commit(ember__afile *a, char *msg)
{
    int e = 0;
    const char *step = af_finish(a, &e);
    if (!step && rename(a->tmp, a->path) != 0) {
        e = errno;
        step = "rename";
    }
    if (!step && ember__fsync_dir(a->dir) != 0) {
        e = errno;
        step = "fsync directory of";
    }
    if (step) {
        unlink(a->tmp);
        a->tmp[0] = '\0';
        return ember__err(msg, EMBER_EIO, "%s: %s failed: %s", a->path, step,
                          strerror(e ? e : EIO));
    }
    a->tmp[0] = '\0';
    return EMBER_OK;
}

void ember__af_abort(ember__afile *a)
{
    if (a->f)
        fclose(a->f);
    a->f = NULL;
    if (a->tmp[0])
        unlink(a->tmp);
    a->tmp[0] = '\0';
}

static void *commit_thread(void *arg)
{
    ember__afile_async *j = arg;
    j->rc = ember__af_commit(&j->a, j->msg);
    return NULL;
}

int ember__af_commit_start(ember__afile_async *j, char *msg)
{
    j->running = 0;
    j->rc = EMBER_OK;
    j->msg[0] = '\0';
    if (fflush(j->a.f) != 0 || ferror(j->a.f)) { /* write errors show now */
        int e = errno;
        ember__af_abort(&j->a);
        return ember__err(msg, EMBER_EIO, "%s: write failed: %s", j->a.path,
                          strerror(e ? e : EIO));
    }
    if (pthread_create(&j->th, NULL, commit_thread, j) == 0) {
        j->running = 1;
        return EMBER_OK;
    }
    return ember__af_commit(&j->a, msg); /* no thread: wait here */
}

int ember__af_commit_wait(ember__afile_async *j, char *msg)
{
    if (!j->running)
        return EMBER_OK;
    pthread_join(j->th, NULL);
    j->running = 0;
    if (j->rc)
        ember__err(msg, j->rc, "%s", j->msg);
    return j->rc;
}

/* Writes data into a started atomic file; aborts it on failure. */
static int write_all(ember__afile *a, const char *data, size_t len, char *msg)
{
    errno = 0; /* a short write need not set it */
    if (len && fwrite(data, 1, len, a->f) != len) {
        int e = errno;
        ember__af_abort(a);
        return ember__err(msg, EMBER_EIO, "%s: write failed: %s", a->path,
                          strerror(e ? e : EIO));
    }
    return EMBER_OK;
}

int ember__sl_write_atomic(const char *dir, const char *name,
                           const char *data, size_t len, char *msg)
{
    ember__afile a;
    int rc = ember__af_open(&a, dir, name, msg);
    if (!rc)
        rc = write_all(&a, data, len, msg);
    return rc ? rc : ember__af_commit(&a, msg);
}

int ember__sl_mkdir(const char *path, char *msg)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return EMBER_OK;
        return ember__err(msg, EMBER_EINVAL, "%s is not a directory", path);
    }
    /* a path through a file, or one the caller may not write: its
     * argument (exit 2), not the disk */
    if (errno != ENOENT)
        return ember__err(msg, errno == ENOTDIR || ember__denied(errno) ? EMBER_EINVAL
                                                                       : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND
                               : errno == ENOTDIR || ember__denied(errno) ? EMBER_EINVAL
                                                                          : EMBER_EIO,
                          "cannot create directory %s: %s", path, strerror(errno));
    char parent[PATH_MAX];
    ember__parent_dir(path, parent, sizeof parent);
    ember__fsync_dir(parent);
    return EMBER_OK;
}

/* ---- listings -------------------------------------------------------------------- */

/* "123" + suffix -> 123. Decimal without leading zeros, fits in 63 bits. */
static int parse_id(const char *name, const char *suffix, uint64_t *id)
{
    size_t len = strlen(name), sl = strlen(suffix), digits = len - sl;
    if (len <= sl || strcmp(name + digits, suffix) != 0 || digits > 18 ||
        (name[0] == '0' && digits > 1))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *id = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int ember__sl_list(ember_ctx *ctx, const char *dir, const char *suffix,
                   uint64_t **ids, size_t *n, char *msg)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? EMBER_OK
                               : ember__err(msg, EMBER_EIO, "cannot list %s: %s",
                                            dir, strerror(errno));
    size_t cap = 0;
    int rc = EMBER_OK;
    struct dirent *de;
    errno = 0;
    while (!rc && (de = readdir(d)) != NULL) {
        uint64_t id;
        if (parse_id(de->d_name, suffix, &id))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = ember__realloc(ctx, *ids, cap * sizeof *p);
            if (!p) {
                rc = ember__err(msg, EMBER_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *ids = p;
        }
        (*ids)[(*n)++] = id;
    }
    closedir(d);
    if (rc) {
        ember__free(ctx, *ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*ids, *n, sizeof **ids, cmp_u64);
    return EMBER_OK;
}

/* ---- parsing the log files ----------------------------------------------------------- */

/* A loaded log file split into lines (in place), checksum checked. */
typedef struct {
    char *data;
    char **line;
    size_t nlines, next;
    long version;   /* the header's format version */
    char path[PATH_MAX];
} lfile;

static void lfile_free(ember_ctx *ctx, lfile *f)
{
    ember__free(ctx, f->data);
    ember__free(ctx, f->line);
    f->data = NULL;
    f->line = NULL;
}

static int corrupt(const lfile *f, const char *what, char *msg)
{
    return ember__err(msg, EMBER_ECORRUPT, "%s: %s", f->path, what);
}

static int split_lines(ember_ctx *ctx, lfile *f, size_t size, char *msg)
{
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        n += f->data[i] == '\n';
    f->line = ember__calloc(ctx, n + 1, sizeof *f->line);
    if (!f->line)
        return ember__err(msg, EMBER_ENOMEM, "out of memory reading %s", f->path);
    char *p = f->data, *end = f->data + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return corrupt(f, "truncated (no line end)", msg);
        *nl = '\0';
        if (memchr(p, '\0', (size_t)(nl - p)))
            return corrupt(f, "holds a NUL byte", msg);
        f->line[f->nlines++] = p;
        p = nl + 1;
    }
    return EMBER_OK;
}

/* Reads loc/<rel>, checks the checksum and the header "<kind> <version>". */
static int lfile_load(ember_ctx *ctx, lfile *f, const char *loc,
                      const char *rel, const char *kind, char *msg)
{
    memset(f, 0, sizeof *f);
    if ((size_t)snprintf(f->path, sizeof f->path, "%s/%s", loc, rel) >= sizeof f->path)
        return ember__err(msg, EMBER_EINVAL, "path too long: %s/%s", loc, rel);
    size_t size = 0;
    int rc = ember__read_file(ctx, f->path, &f->data, &size, msg);
    if (rc)
        return rc;
    /* The checksum line is the last one; it covers everything before it. */
    size_t cut = size;
    if (cut && f->data[cut - 1] == '\n')
        cut--;
    while (cut && f->data[cut - 1] != '\n')
        cut--;
    char want[40];
    uint64_t sum = ember__sl_fnv(f->data, cut);
    snprintf(want, sizeof want, "checksum %016" PRIx64 "\n", sum);
    if (size - cut != strlen(want) || memcmp(f->data + cut, want, size - cut) != 0)
        return corrupt(f, "fails its checksum (damaged or truncated)", msg);
    if ((rc = split_lines(ctx, f, cut, msg)))
        return rc;
    char hk[64];
    long version = 0;
    int used = 0;
    if (f->nlines == 0 || sscanf(f->line[0], "%63s %ld%n", hk, &version, &used) != 2 ||
        f->line[0][used] != '\0' || strcmp(hk, kind) != 0)
        return corrupt(f, "is not a stream log file of the expected kind", msg);
    if (version < 1 || version > EMBER_STREAM_FORMAT)
        return ember__err(msg, EMBER_EFORMAT,
                          "%s: format %ld; this ember reads up to %d", f->path,
                          version, EMBER_STREAM_FORMAT);
    f->version = version;
    f->next = 1;
    return EMBER_OK;
}

/* The next line as "<name> <rest>": the rest, or NULL when the name
 * differs or the lines ran out. */
static char *field(lfile *f, const char *name)
{
    if (f->next >= f->nlines)
        return NULL;
    char *l = f->line[f->next];
    size_t n = strlen(name);
    if (strncmp(l, name, n) != 0 || l[n] != ' ')
        return NULL;
    f->next++;
    return l + n + 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

static int parse_hex64(const char *s, uint64_t *v)
{
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
        return -1;
    *v = strtoull(s, NULL, 16);
    return 0;
}

static int parse_id_field(const char *s, char *id)
{
    if (!s || strlen(s) != EMBER__SQ_ID_SIZE - 1 ||
        strspn(s, "0123456789abcdef") != EMBER__SQ_ID_SIZE - 1)
        return -1;
    memcpy(id, s, EMBER__SQ_ID_SIZE);
    return 0;
}

static void add_created(ember__sb *b)
{
    char when[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ember__sb_add(b, "created %s\n", when);
}

/* Appends the checksum line and writes loc/<sub>/<name> atomically; with
 * job, the commit (fsync, rename, fsync of the directory) is started on a
 * helper thread and ember__af_commit_wait finishes it. */
static int write_checksummed(ember__sb *b, const char *loc, const char *sub,
                             const char *name, ember__afile_async *job, char *msg)
{
    if (!b->oom)
        ember__sb_add(b, "checksum %016" PRIx64 "\n", ember__sl_fnv(b->s, b->len));
    if (b->oom)
        return ember__err(msg, EMBER_ENOMEM, "out of memory writing %s/%s", loc, name);
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s%s%s", loc, sub[0] ? "/" : "", sub) >= sizeof dir)
        return ember__err(msg, EMBER_EINVAL, "path too long: %s/%s", loc, sub);
    if (!job)
        return ember__sl_write_atomic(dir, name, b->s, b->len, msg);
    job->running = 0;
    int rc = ember__af_open(&job->a, dir, name, msg);
    if (!rc)
        rc = write_all(&job->a, b->s, b->len, msg);
    return rc ? rc : ember__af_commit_start(job, msg);
}

/* ---- offsets ----------------------------------------------------------------------------- */

void ember__sfiles_free(ember_ctx *ctx, ember__sfile *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        ember__free(ctx, f[i].name);
    ember__free(ctx, f);
}

void ember__sl_offsets_free(ember_ctx *ctx, ember__soffsets *o)
{
    ember__sfiles_free(ctx, o->files, o->nfiles);
    o->files = NULL;
    o->nfiles = 0;
}

int ember__sl_offsets_write(ember_ctx *ctx, const char *loc,
                            const ember__soffsets *o, ember__afile_async *job,
                            char *msg)
{
    ember__sb b = {.ctx = ctx};
    ember__sb_add(&b, "ember-stream-offsets %d\nbatch %" PRIu64 "\nquery %s\nfiles %zu\n",
                  EMBER_STREAM_FORMAT, o->batch, o->query_id, o->nfiles);
    for (size_t i = 0; i < o->nfiles; i++) {
        const ember__sfile *f = &o->files[i];
        ember__sb_add(&b, "file %" PRIu64 " ", f->size);
        if (f->has_mtime)
            ember__sb_add(&b, "%" PRId64 " ", f->mtime_ns);
        else
            ember__sb_add(&b, "- ");
        ember__sb_escaped(&b, o->files[i].name, strlen(o->files[i].name));
        ember__sb_bytes(&b, "\n", 1);
    }
    add_created(&b);
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64, o->batch);
    int rc = write_checksummed(&b, loc, "offsets", name, job, msg);
    ember__sb_free(&b);
    return rc;
}

/* "-123", "45": a signed decimal. */
static int parse_i64(const char *s, int64_t *v)
{
    if (!s || !(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

/* Format 2 puts the modification time ("-": unknown) between the size and
 * the name; format 1 has none. */
static int parse_mtime(char **s, long version, ember__sfile *f)
{
    if (version < 2)
        return 0;
    char *sp = strchr(*s, ' ');
    if (!sp)
        return -1;
    *sp = '\0';
    int bad = strcmp(*s, "-") != 0 &&
              (parse_i64(*s, &f->mtime_ns) || f->mtime_ns < EMBER__TS_NS_MIN ||
               f->mtime_ns > EMBER__TS_NS_MAX);
    f->has_mtime = !bad && strcmp(*s, "-") != 0;
    *s = sp + 1;
    return bad ? -1 : 0;
}

static int parse_file_line(ember_ctx *ctx, char *s, long version, ember__sfile *f)
{
    char *sp = s ? strchr(s, ' ') : NULL;
    if (!sp)
        return -1;
    *sp = '\0';
    char *name = sp + 1;
    size_t len;
    if (parse_u64(s, &f->size) || parse_mtime(&name, version, f) || !name[0] ||
        ember__sl_unescape(name, &len) || len != strlen(name) || memchr(name, '/', len) ||
        len > NAME_MAX)
        return -1; /* a NUL, a '/' or a longer name cannot be a file here */
    f->name = ember__strdup(ctx, name);
    return f->name ? 0 : -2;
}

/* The entry's "batch" line: the batch its file name says. An entry
 * copied over another (cp offsets/5 offsets/6) is named as such. */
static int check_batch(lfile *f, const char *kind, uint64_t want, uint64_t *got,
                       char *msg)
{
    if (parse_u64(field(f, "batch"), got))
        return corrupt(f, "bad batch line", msg);
    if (*got != want)
        return ember__err(msg, EMBER_ECORRUPT, "%s: holds batch %" PRIu64 ", not %" PRIu64
                          " (another batch's %s entry copied or renamed over it)",
                          f->path, *got, want, kind);
    return EMBER_OK;
}

int ember__sl_offsets_read(ember_ctx *ctx, const char *loc, uint64_t batch,
                           ember__soffsets *o, char *msg)
{
    memset(o, 0, sizeof *o);
    char rel[48];
    snprintf(rel, sizeof rel, "offsets/%" PRIu64, batch);
    lfile f;
    int rc = lfile_load(ctx, &f, loc, rel, "ember-stream-offsets", msg);
    uint64_t nf = 0;
    if (!rc)
        rc = check_batch(&f, "offsets", batch, &o->batch, msg);
    if (!rc && (parse_id_field(field(&f, "query"), o->query_id) ||
                parse_u64(field(&f, "files"), &nf) || nf == 0 ||
                nf > f.nlines))
        rc = corrupt(&f, "bad header lines", msg);
    if (!rc && !(o->files = ember__calloc(ctx, (size_t)nf, sizeof *o->files)))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory reading %s", f.path);
    for (size_t i = 0; !rc && i < nf; i++) {
        int r = parse_file_line(ctx, field(&f, "file"), f.version, &o->files[i]);
        o->nfiles += r == 0;
        if (r == -2)
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory reading %s", f.path);
        else if (r)
            rc = corrupt(&f, "bad file line", msg);
        else if (i && strcmp(o->files[i - 1].name, o->files[i].name) >= 0)
            rc = corrupt(&f, "files out of name order", msg);
    }
    if (!rc && !field(&f, "created"))
        rc = corrupt(&f, "no created line", msg);
    lfile_free(ctx, &f);
    if (rc)
        ember__sl_offsets_free(ctx, o);
    return rc;
}

/* ---- commits ---------------------------------------------------------------------------- */

int ember__sl_commit_write(ember_ctx *ctx, const char *loc,
                           const ember__scommit *c, char *msg)
{
    if (c->files && !c->hashes) /* the reader refuses such an entry */
        return ember__err(msg, EMBER_EINVAL, "commits/%" PRIu64 ": %" PRIu64 " files and "
                          "no hashes", c->batch, c->files);
    ember__sb b = {.ctx = ctx};
    ember__sb_add(&b, "ember-stream-commit %d\nbatch %" PRIu64 "\nquery %s\n",
                  EMBER_STREAM_FORMAT, c->batch, c->query_id);
    if (c->has_state)
        ember__sb_add(&b, "state %" PRIu64 "\n", c->state_version);
    else
        ember__sb_add(&b, "state none\n");
    ember__sb_add(&b, "files %" PRIu64 "\nrows %" PRIu64 "\n", c->files, c->rows);
    for (uint64_t i = 0; i < c->files; i++)
        ember__sb_add(&b, "hash %016" PRIx64 "\n", c->hashes[i]);
    add_created(&b);
    char name[32];
    snprintf(name, sizeof name, "%" PRIu64, c->batch);
    int rc = write_checksummed(&b, loc, "commits", name, NULL, msg);
    ember__sb_free(&b);
    return rc;
}

/* Format 2: a "hash <hex>" line per file of the batch (the writer always
 * writes them: a batch without them would replay on trust). Format 1 has
 * none: the hashes stay NULL. */
static int read_hashes(ember_ctx *ctx, lfile *f, ember__scommit *c, char *msg)
{
    size_t n = 0;
    while (f->next + n < f->nlines && !strncmp(f->line[f->next + n], "hash ", 5))
        n++;
    if (f->version < 2 || (n == 0 && c->files == 0))
        return EMBER_OK; /* a hash line in format 1 fails the created line */
    if (n == 0)
        return corrupt(f, "no hash lines (format 2 has one per file)", msg);
    if (n != c->files)
        return corrupt(f, "hash lines do not match its files line", msg);
    if (!(c->hashes = ember__calloc(ctx, n, sizeof *c->hashes)))
        return ember__err(msg, EMBER_ENOMEM, "out of memory reading %s", f->path);
    for (size_t i = 0; i < n; i++)
        if (parse_hex64(field(f, "hash"), &c->hashes[i]))
            return corrupt(f, "bad hash line", msg);
    return EMBER_OK;
}

int ember__sl_commit_read(ember_ctx *ctx, const char *loc, uint64_t batch,
                          ember__scommit *c, char *msg)
{
    memset(c, 0, sizeof *c);
    char rel[48];
    snprintf(rel, sizeof rel, "commits/%" PRIu64, batch);
    lfile f;
    int rc = lfile_load(ctx, &f, loc, rel, "ember-stream-commit", msg);
    if (!rc)
        rc = check_batch(&f, "commit", batch, &c->batch, msg);
    if (!rc) {
        const char *state = NULL;
        int bad = parse_id_field(field(&f, "query"), c->query_id) ||
                  !(state = field(&f, "state"));
        if (!bad && strcmp(state, "none") != 0) {
            bad = parse_u64(state, &c->state_version) || c->state_version > batch;
            c->has_state = !bad;
        }
        bad = bad || parse_u64(field(&f, "files"), &c->files) ||
              parse_u64(field(&f, "rows"), &c->rows);
        if (bad)
            rc = corrupt(&f, "bad lines", msg);
    }
    if (!rc)
        rc = read_hashes(ctx, &f, c, msg);
    if (!rc && !field(&f, "created"))
        rc = corrupt(&f, "no created line", msg);
    lfile_free(ctx, &f);
    if (rc)
        ember__sl_commit_free(ctx, c);
    return rc;
}

void ember__sl_commit_free(ember_ctx *ctx, ember__scommit *c)
{
    ember__free(ctx, c->hashes);
    c->hashes = NULL;
}

/* ---- metadata ---------------------------------------------------------------------------- */

void ember__sl_meta_free(ember_ctx *ctx, ember__smeta *m)
{
    ember__free(ctx, m->description);
    m->description = NULL;
}

int ember__sl_meta_write(ember_ctx *ctx, const char *loc,
                         const ember__smeta *m, char *msg)
{
    ember__sb b = {.ctx = ctx};
    ember__sb_add(&b, "ember-stream-metadata %d\nid %s\nfingerprint %016" PRIx64 "\n",
                  EMBER_STREAM_FORMAT, m->query_id, m->fingerprint);
    for (const char *p = m->description; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        ember__sb_add(&b, "query ");
        ember__sb_escaped(&b, p, len);
        ember__sb_bytes(&b, "\n", 1);
        p += len + (nl != NULL);
    }
    add_created(&b);
    int rc = write_checksummed(&b, loc, "", "metadata", NULL, msg);
    ember__sb_free(&b);
    return rc;
}

int ember__sl_meta_read(ember_ctx *ctx, const char *loc, ember__smeta *m,
                        char *msg)
{
    memset(m, 0, sizeof *m);
    lfile f;
    int rc = lfile_load(ctx, &f, loc, "metadata", "ember-stream-metadata", msg);
    if (!rc && (parse_id_field(field(&f, "id"), m->query_id) ||
                parse_hex64(field(&f, "fingerprint"), &m->fingerprint)))
        rc = corrupt(&f, "bad id or fingerprint line", msg);
    ember__sb d = {.ctx = ctx};
    ember__sb_bytes(&d, "", 0);
    char *q;
    while (!rc && (q = field(&f, "query")) != NULL) {
        size_t len = 0;
        /* A failed unescape leaves len unset: stop before copying. */
        if (ember__sl_unescape(q, &len) || memchr(q, '\n', len) || len != strlen(q)) {
            rc = corrupt(&f, "bad query line", msg);
            break;
        }
        ember__sb_bytes(&d, q, len);
        ember__sb_bytes(&d, "\n", 1);
    }
    if (!rc && !field(&f, "created"))
        rc = corrupt(&f, "no created line", msg);
    if (!rc && d.oom)
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory reading %s", f.path);
    if (!rc && ember__sl_fnv(d.s, d.len) != m->fingerprint)
        rc = corrupt(&f, "fingerprint does not match its query lines", msg);
    lfile_free(ctx, &f);
    if (rc) {
        ember__sb_free(&d);
        return rc;
    }
    m->description = d.s;
    return EMBER_OK;
}

/* ---- the sink's owner ----------------------------------------------------------- */

/* No hard links here (link(2) says so with these): the no-replace commit
 * falls back to a rename. */
static int no_links(int e)
{
    return e == EPERM || e == EOPNOTSUPP || e == ENOSYS;
}

/* Renames tmp to path unless path exists: 0, or -1 with errno (EEXIST when
 * it does). Without renameat2's RENAME_NOREPLACE (an old kernel, some file
 * systems), a check then a rename: the race between two claims stays open
 * only there. */
static int rename_noreplace(const char *tmp, const char *path)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return -1;
#endif
    struct stat st;
    if (lstat(path, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, path);
}

/* Makes tmp appear as path unless path exists: 1 made, 0 there already,
 * -1 failed (*step the call, *e its errno). link(2) makes the whole file
 * appear or fails with EEXIST; a file system without hard links gets a
 * no-replace rename. */
static int link_new(const char *tmp, const char *path, const char **step, int *e)
{
    if (link(tmp, path) == 0)
        return 1;
    if (errno == EEXIST)
        return 0;
    if (!no_links(errno)) {
        *e = errno;
        *step = "link";
        return -1;
    }
    if (rename_noreplace(tmp, path) == 0)
        return 1;
    if (errno == EEXIST)
        return 0;
    *e = errno;
    *step = "rename";
    return -1;
}

/* ember__af_commit that never replaces a file at a->path: *created 0 when
 * one is there (left as it was). */
static int af_commit_new(ember__afile *a, int *created, char *msg)
{
    int e = 0;
    const char *step = af_finish(a, &e);
    int made = step ? -1 : link_new(a->tmp, a->path, &step, &e);
    unlink(a->tmp); /* gone already after a rename */
    a->tmp[0] = '\0';
    if (made > 0 && ember__fsync_dir(a->dir) != 0) {
        e = errno;
        step = "fsync directory of";
    }
    *created = made > 0;
    if (step)
        return ember__err(msg, EMBER_EIO, "%s: %s failed: %s", a->path, step,
                          strerror(e ? e : EIO));
    return EMBER_OK;
}

/* The query's own temporary, so two queries claiming at once do not write
 * into one file. */
static void owner_tmp(const char *query_id, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s.tmp", EMBER__SINK_OWNER, query_id);
}

int ember__sl_owner_write(ember_ctx *ctx, const char *sink, const ember__sowner *w,
                          int *created, char *msg)
{
    *created = 0;
    ember__sb b = {.ctx = ctx};
    ember__sb_add(&b, "ember-stream-sink %d\nquery %s\nlocation ", EMBER_STREAM_FORMAT,
                  w->query_id);
    ember__sb_escaped(&b, w->location, strlen(w->location));
    ember__sb_bytes(&b, "\n", 1);
    add_created(&b);
    if (!b.oom)
        ember__sb_add(&b, "checksum %016" PRIx64 "\n", ember__sl_fnv(b.s, b.len));
    char tmp[NAME_MAX + 1];
    owner_tmp(w->query_id, tmp, sizeof tmp);
    ember__afile a;
    int rc = b.oom ? ember__err(msg, EMBER_ENOMEM, "out of memory writing %s/%s", sink,
                                EMBER__SINK_OWNER)
                   : af_open_as(&a, sink, EMBER__SINK_OWNER, tmp, msg);
    if (!rc)
        rc = write_all(&a, b.s, b.len, msg);
    if (!rc)
        rc = af_commit_new(&a, created, msg);
    ember__sb_free(&b);
    return rc;
}

void ember__sl_owner_clean(const char *sink, const char *query_id)
{
    char tmp[NAME_MAX + 1], path[PATH_MAX];
    owner_tmp(query_id, tmp, sizeof tmp);
    if ((size_t)snprintf(path, sizeof path, "%s/%s", sink, tmp) < sizeof path)
        unlink(path);
}

int ember__sl_owner_read(ember_ctx *ctx, const char *sink, ember__sowner *w, char *msg)
{
    memset(w, 0, sizeof *w);
    lfile f;
    int rc = lfile_load(ctx, &f, sink, EMBER__SINK_OWNER, "ember-stream-sink", msg);
    char *where = NULL;
    size_t len = 0;
    if (!rc && (parse_id_field(field(&f, "query"), w->query_id) ||
                !(where = field(&f, "location")) || ember__sl_unescape(where, &len) ||
                len != strlen(where) || len >= sizeof w->location || !field(&f, "created")))
        rc = corrupt(&f, "bad lines", msg);
    if (!rc)
        memcpy(w->location, where, len + 1);
    lfile_free(ctx, &f);
    return rc;
}

/* The value of "name=" in lines, as (pointer, length); NULL if absent. */
static const char *lookup(const char *lines, const char *name, size_t nlen,
                          size_t *vlen)
{
    for (const char *p = lines; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        if (kl == nlen && memcmp(p, name, nlen) == 0) {
            *vlen = eq ? len - kl - 1 : 0;
            return eq ? eq + 1 : p + len;
        }
        p += len + (nl != NULL);
    }
    return NULL;
}

/* Adds "name: X there, Y here" for each name of a whose value in b
 * differs or is missing. */
static void diff_side(ember__sb *out, const char *a, const char *b, int a_is_there)
{
    for (const char *p = a; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len, al = eq ? len - kl - 1 : 0, bl = 0;
        const char *av = eq ? eq + 1 : p + len;
        const char *bv = lookup(b, p, kl, &bl);
        int differs = !bv || al != bl || memcmp(av, bv, al) != 0;
        /* Names in both files are reported once, from the stored side. */
        if (differs && (a_is_there || !bv)) {
            const char *there = a_is_there ? av : bv, *here = a_is_there ? bv : av;
            size_t tl = a_is_there ? al : bl, hl = a_is_there ? bl : al;
            ember__sb_add(out, "%s%.*s: ", out->len ? "; " : "", (int)kl, p);
            if (there)
                ember__sb_add(out, "'%.*s' there", (int)tl, there);
            else
                ember__sb_add(out, "absent there");
            if (here)
                ember__sb_add(out, ", '%.*s' here", (int)hl, here);
            else
                ember__sb_add(out, ", absent here");
        }
        p += len + (nl != NULL);
    }
}

int ember__sl_meta_compare(const char *loc, const char *there,
                           const char *here, char *msg)
{
    if (strcmp(there, here) == 0)
        return EMBER_OK;
    char buf[EMBER_MSG_SIZE];
    ember__sb out = {.ctx = NULL};
    /* A stack buffer: the message is cut to EMBER_MSG_SIZE anyway. */
    out.s = buf;
    out.cap = sizeof buf;
    buf[0] = '\0';
    diff_side(&out, there, here, 1);
    diff_side(&out, here, there, 0);
    if (!out.len && !out.oom)
        snprintf(buf, sizeof buf, "the query lines are in another order");
    return ember__err(msg, EMBER_EMISMATCH,
                      "checkpoint location %s belongs to another query (%s); use "
                      "a new location for a changed query",
                      loc, buf);
}
