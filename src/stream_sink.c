/* stream_sink.c: where a stream's output rows go.
 *
 * The directory sink writes one file per batch, "batch-<id>.csv" with the
 * id zero-padded to 12 digits (so name order is batch order), through an
 * atomic file: a reader sees a batch's whole output or none of it, and
 * writing a batch again (a re-run after a crash) finds the file there
 * with identical content and keeps it (kept_identical). That makes the
 * sink idempotent, which together with the offsets log gives exactly-once
 * output.
 *
 * The console sink prints a Spark-style banner per batch, then the rows.
 * With a header (ember_stream_opts.header), each batch's rows follow it,
 * in a file and on the console alike.
 *
 * Rows are CSV unless the query gives its own row function: numbers in C
 * notation (integers in full, floats with enough digits to round-trip:
 * %.9g and %.17g), array fields as one column per element, and for string
 * keys the string first, quoted as RFC 4180 says (ember_stream_csv_field).
 * Called on the caller's thread only.
 */
#include "stream_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What says a file is the one committed: device, inode, size, mtime and
 * ctime (ns), of path or (path NULL) of fd. 0, or -1. */
static int file_id(const char *path, int fd, uint64_t id[5])
{
    struct stat st;
    if (path ? stat(path, &st) != 0 : fstat(fd, &st) != 0)
        return -1;
    id[0] = (uint64_t)st.st_dev;
    id[1] = (uint64_t)st.st_ino;
    id[2] = (uint64_t)st.st_size;
    id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    id[4] = (uint64_t)st.st_ctim.tv_sec * 1000000000u + (uint64_t)st.st_ctim.tv_nsec;
    return 0;
}

void ember__sink_name(uint64_t batch, char *buf, size_t size)
{
    snprintf(buf, size, "batch-%012" PRIu64 ".csv", batch);
}

int ember_stream_csv_field(FILE *f, const char *bytes, size_t len)
{
    static const unsigned char special[256] = {[','] = 1, ['"'] = 1, ['\r'] = 1,
                                               ['\n'] = 1};
    int quote = 0;
    for (size_t i = 0; i < len; i++)
        quote |= special[(unsigned char)bytes[i]];
    if (!quote)
        return len && fwrite(bytes, 1, len, f) != len ? EOF : 0;
    if (putc('"', f) == EOF)
        return EOF;
    const char *p = bytes, *end = bytes + len;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        size_t n = q ? (size_t)(q - p) + 1 : (size_t)(end - p);
        if (fwrite(p, 1, n, f) != n || (q && putc('"', f) == EOF))
            return EOF;
        p += n;
    }
    return putc('"', f) == EOF ? EOF : 0;
}

/* Integers by hand: fprintf costs more than the rest of a row. */
static int put_u64(FILE *f, uint64_t v, int neg)
{
    char buf[24];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        *--p = '-';
    size_t n = (size_t)(buf + sizeof buf - p);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int put_i64(FILE *f, int64_t v)
{
    return v < 0 ? put_u64(f, 0 - (uint64_t)v, 1) : put_u64(f, (uint64_t)v, 0);
}

static int put_number(FILE *f, ember_scalar kind, const unsigned char *p)
{
    switch (kind) {
    case EMBER_I32: {
        int32_t v;
        memcpy(&v, p, sizeof v);
        return put_i64(f, v);
    }
    case EMBER_I64: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return put_i64(f, v);
    }
    case EMBER_U64: {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        return put_u64(f, v, 0);
    }
    case EMBER_F32: {
        float v;
        memcpy(&v, p, sizeof v);
        return fprintf(f, "%.9g", (double)v) < 0 ? -1 : 0;
    }
    case EMBER_F64: {
        double v;
        memcpy(&v, p, sizeof v);
        return fprintf(f, "%.17g", v) < 0 ? -1 : 0;
    }
    }
    return -1;
}

int ember__sink_csv_row(FILE *f, const ember_type *t, ember_stream_key key,
                        const void *rec, const char *text, size_t text_len)
{
    const unsigned char *r = rec;
    uint32_t first = 0;
    int sep = 0;
    if (key == EMBER_KEY_TEXT) {
        if (ember_stream_csv_field(f, text, text_len))
            return -1;
        first = EMBER__SS_TEXT_FIRST_VALUE;
        sep = 1;
    }
    for (uint32_t i = first; i < t->nfields; i++) {
        const ember_field *fl = &t->field[i];
        uint32_t count = fl->count ? fl->count : 1;
        for (uint32_t e = 0; e < count; e++) {
            if (sep && putc(',', f) == EOF)
                return -1;
            sep = 1;
            if (put_number(f, fl->kind, r + fl->offset + e * ember_scalar_size(fl->kind)))
                return -1;
        }
    }
    return putc('\n', f) == EOF ? -1 : 0;
}

int ember__sink_begin(ember__sink *k, uint64_t batch, const char *mode,
                      char *msg)
{
    k->rows = 0;
    k->f = NULL;
    k->batch = batch;
    if (!k->dir) {
        k->f = k->console;
        fprintf(k->f, "-------------------------------------------\n"
                      "Batch: %" PRIu64 " (%s)\n"
                      "-------------------------------------------\n",
                batch, mode);
    } else {
        char name[48];
        ember__sink_name(batch, name, sizeof name);
        int rc = ember__af_open(&k->file, k->dir, name, msg);
        if (rc)
            return rc;
        k->f = k->file.f;
    }
    if (k->header && fprintf(k->f, "%s\n", k->header) < 0)
        return ember__err(msg, EMBER_EIO, "sink %s: cannot write the header: %s",
                          k->dir ? k->file.path : "console", strerror(errno ? errno : EIO));
    return EMBER_OK;
}

int ember__sink_row(ember__sink *k, const void *rec, const char *text,
                    size_t text_len, char *msg)
{
    int bad = k->row_fn ? k->row_fn(k->f, rec, text, text_len, k->row_arg)
                        : ember__sink_csv_row(k->f, k->type, k->key, rec, text, text_len);
    if (bad) {
        int e = errno;
        if (k->row_fn)
            return ember__err(msg, EMBER_EUSER, "sink: the row function failed on "
                              "row %" PRIu64, k->rows);
        return ember__err(msg, EMBER_EIO, "sink %s: cannot write row %" PRIu64 ": %s",
                          k->dir ? k->file.path : "console", k->rows,
                          strerror(e ? e : EIO));
    }
    k->rows++;
    return EMBER_OK;
}

/* Whether the batch's file is already in place with the bytes just
 * written to a's temporary (a batch run again after a crash between its
 * sink file and its commit): 1 when so, and then that file is kept, its
 * time stamps unchanged, made durable, and the temporary removed. A
 * stream reading this sink as its source, make or rsync then see nothing
 * change; a new file with a new mtime made a downstream stream that had
 * planned it refuse to start. 0: none is there; -1: another file is. */
static int kept_identical(ember__afile *a)
{
    struct stat tmp_st, st;
    if (fflush(a->f) != 0 || ferror(a->f) || fstat(fileno(a->f), &tmp_st) != 0 ||
        stat(a->path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (st.st_size != tmp_st.st_size)
        return -1;
    int old = open(a->path, O_RDONLY | O_CLOEXEC), now = open(a->tmp, O_RDONLY | O_CLOEXEC);
    int read_ok = old >= 0 && now >= 0, differs = 0;
    char x[1 << 15], y[1 << 15];
    ssize_t nx = 1, ny;
    while (read_ok && !differs && nx > 0) {
        nx = read(old, x, sizeof x);
        ny = read(now, y, sizeof y);
        read_ok = nx >= 0 && ny >= 0;
        differs = read_ok && (nx != ny || memcmp(x, y, (size_t)nx) != 0);
    }
    /* not compared (a read failed) or not made durable: written as usual */
    int same = read_ok && !differs && fsync(old) == 0 && ember__fsync_dir(a->dir) == 0;
    if (old >= 0)
        close(old);
    if (now >= 0)
        close(now);
    if (same)
        ember__af_abort(a);
    return same ? 1 : differs ? -1 : 0;
}

int ember__sink_commit(ember__sink *k, char *msg)
{
    if (k->dir) {
        k->f = NULL;
        int kept = kept_identical(&k->file);
        /* A batch a crash left uncommitted, run again on the files its plan
         * names (same sizes and times), gives the bytes of its first run:
         * other rows mean other bytes in a file (rewritten at the same size
         * and time), which would silently replace a result already out. */
        if (kept < 0 && k->rerun) {
            ember__af_abort(&k->file);
            return ember__err(msg, EMBER_EMISMATCH, "sink file %s, written before a "
                              "crash by the first run of batch %" PRIu64 ", differs from "
                              "what its re-run computes: a source file of the batch was "
                              "changed (at the same size and time), or the sink file was "
                              "edited. Restore the source files, or remove %s to accept "
                              "the re-run's rows", k->file.path, k->batch, k->file.path);
        }
        int rc = kept > 0 ? EMBER_OK : ember__af_commit(&k->file, msg);
        k->written = rc || file_id(k->file.path, -1, k->written_id) ? 0 : k->batch + 1;
        return rc;
    }
    int bad = fflush(k->f) != 0 || ferror(k->f);
    k->f = NULL;
    return bad ? ember__err(msg, EMBER_EIO, "console sink: write failed: %s",
                            strerror(errno ? errno : EIO))
               : EMBER_OK;
}

void ember__sink_abort(ember__sink *k)
{
    if (k->dir)
        ember__af_abort(&k->file);
    else if (k->f)
        fflush(k->f);
    k->f = NULL;
}

int ember__sink_repeat(ember__sink *k, uint64_t batch, char *msg)
{
    /* The previous file must be this run's: a header or row function
     * changed since an earlier run would not be applied to a copy. */
    if (!k->dir || batch == 0 || k->written != batch)
        return EMBER_NOTCACHED;
    char prev[48], name[48], from[PATH_MAX];
    ember__sink_name(batch - 1, prev, sizeof prev);
    ember__sink_name(batch, name, sizeof name);
    if ((size_t)snprintf(from, sizeof from, "%s/%s", k->dir, prev) >= sizeof from)
        return EMBER_NOTCACHED;
    /* A copy (not a link: a reader's tools refuse or change linked files)
     * of the previous file, only while it is still the one this run
     * committed, before and after the copy: a consumer may have emptied,
     * edited or replaced it. Otherwise the rows are written again. */
    uint64_t id[5];
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || file_id(NULL, fd, id) || memcmp(id, k->written_id, sizeof id)) {
        if (fd >= 0)
            close(fd);
        return EMBER_NOTCACHED;
    }
    int rc = ember__af_open(&k->file, k->dir, name, msg);
    char buf[1 << 16];
    ssize_t got = 0;
    while (!rc && (got = read(fd, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)got, k->file.f) != (size_t)got)
            rc = ember__err(msg, EMBER_EIO, "sink %s: write failed: %s", k->file.path,
                            strerror(errno ? errno : EIO));
    int same = !rc && got == 0 && !file_id(NULL, fd, id) &&
               !memcmp(id, k->written_id, sizeof id);
    close(fd);
    if (rc || !same) {
        ember__af_abort(&k->file);
        return rc ? rc : EMBER_NOTCACHED;
    }
    k->batch = batch;
    return ember__sink_commit(k, msg);
}
