/* ckptfile.c: checkpoint files, written atomically and verified on read.
 *
 * A checkpoint is one HDF5 file (docs/checkpoint-format.md): root
 * attributes saying what wrote it and when, /datasets/<name> with the
 * records and their partition offsets, /scalars/<name> and /blobs/<name>.
 * Everything is chunked with Fletcher32, so a flipped bit is caught on read.
 * The file starts with a 512-byte HDF5 user block that holds a whole-file
 * checksum header (filesum.c): a reader checks it before libhdf5 parses
 * anything, because damaged metadata can crash libhdf5 or make it read
 * fill values for a chunk it no longer finds.
 *
 * Commit sequence: write NAME.tmp, flush and close it, seal it (write the
 * checksum header), fsync it, rename it to NAME, fsync the directory. A
 * crash at any point leaves either the old state or the new file, plus
 * perhaps a stray .tmp that the loop sweeps. A file built in memory
 * (ember__ckw_begin_image, below) is sealed first and then written as
 * NAME.tmp; the sequence is otherwise the same.
 * Every HDF5 call runs under ember__h5_lock (recursive), and every id is
 * closed on every path.
 *
 * The file layer (docs/design.md) knows types, records and partition
 * offsets, never a dataset: it calls h5io.c and the allocator only. What
 * computes the records (checkpoint.c, save.c, loop.c) sits above it.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "internal.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CK_MAGIC "ember-checkpoint"

struct ember__ckw {
    ember_ctx *ctx;
    hid_t fid;
    int deflate;
    ember__ckimg *img;   /* built in memory (begin_image), else NULL */
    int hold;            /* ember__tmp_hold's descriptor of tmp, or -1 */
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char tmp[PATH_MAX];
};

struct ember__ckr {
    ember_ctx *ctx;
    hid_t fid;
    char path[PATH_MAX];
    ember__ck_info info;
};

/* ---- attributes ---------------------------------------------------------- */

/* Strings are variable-length UTF-8 (format 2): h5py reads them as str,
 * where format 1's fixed-length ASCII came back as bytes. */
static int attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR), a = -1;
    int ok = t >= 0 && s >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             (a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, t, &value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    return ok ? 0 : -1;
}

static int attr_num(hid_t obj, const char *name, hid_t type, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR), a = -1;
    int ok = s >= 0 &&
             (a = H5Acreate2(obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, type, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (s >= 0)
        H5Sclose(s);
    return ok ? 0 : -1;
}

/* Reads a string attribute into buf (cut to size): variable-length
 * (format 2) or fixed-length (format 1). -1 when absent or not a string,
 * EMBER_ENOMEM when out of memory (not a damaged file). */
static int read_attr_str(ember_ctx *ctx, hid_t obj, const char *name,
                         char *buf, size_t size)
{
    buf[0] = '\0';
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = -1, mt = -1, sp = -1;
    int ok = 0, oom = 0;
    if (a >= 0 && (ft = H5Aget_type(a)) >= 0 && H5Tget_class(ft) == H5T_STRING &&
        (sp = H5Aget_space(a)) >= 0 && H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            ok = (mt = H5Tcopy(ft)) >= 0 && H5Aread(a, mt, &v) >= 0 && v;
            if (ok)
                snprintf(buf, size, "%s", v);
            if (v)
                H5free_memory(v);
        } else {
            size_t len = H5Tget_size(ft);
            char *tmp = ember__calloc(ctx, 1, len + 1);
            oom = !tmp;
            mt = H5Tcopy(ft);
            ok = tmp && mt >= 0 && H5Aread(a, mt, tmp) >= 0;
            if (ok)
                snprintf(buf, size, "%s", tmp);
            ember__free(ctx, tmp);
        }
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : oom ? EMBER_ENOMEM : -1;
}

static int read_attr_num(hid_t obj, const char *name, hid_t type, void *v)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, type, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok ? 0 : -1;
}

static void now_iso(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void ember__ck_stamp_now(ember_ctx *ctx, ember__ck_stamp *s)
{
    memset(s, 0, sizeof *s);
    s->threads = ctx->threads;
    s->unix_time = (double)time(NULL);
    now_iso(s->created, sizeof s->created);
}

int ember__ck_write_root(int64_t fid_, const ember__ck_meta *m,
                         const ember__ck_stamp *st)
{
    hid_t fid = (hid_t)fid_;
    int64_t version = EMBER_CHECKPOINT_FORMAT, threads = st->threads, records_forced = 1;
    double unix_time = st->unix_time;
    const char *created = st->created;
    int rc = attr_str(fid, "format", CK_MAGIC);
    rc |= attr_num(fid, "format_version", H5T_NATIVE_INT64, &version);
    rc |= attr_str(fid, "kind", m->kind ? m->kind : "dataset");
    rc |= attr_str(fid, "ember_version", EMBER_VERSION_STRING);
    rc |= attr_str(fid, "program", m->program ? m->program : "");
    rc |= attr_str(fid, "parameters", m->parameters ? m->parameters : "");
    rc |= attr_str(fid, "state_signature", m->signature ? m->signature : "");
    rc |= attr_str(fid, "lineage", m->lineage ? m->lineage : "");
    rc |= attr_num(fid, "iteration", H5T_NATIVE_UINT64, &m->iteration);
    rc |= attr_num(fid, "fingerprint", H5T_NATIVE_UINT64, &m->fingerprint);
    rc |= attr_str(fid, "created", created);
    rc |= attr_num(fid, "created_unix", H5T_NATIVE_DOUBLE, &unix_time);
    rc |= attr_num(fid, "threads", H5T_NATIVE_INT64, &threads);
    rc |= attr_num(fid, "records_forced", H5T_NATIVE_INT64, &records_forced);
    for (const char *g = "datasets\0scalars\0blobs\0"; *g; g += strlen(g) + 1) {
        hid_t gid = H5Gcreate2(fid, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc |= gid < 0 ? -1 : 0;
        if (gid >= 0)
            H5Gclose(gid);
    }
    return rc;
}

static int write_root(hid_t fid, ember_ctx *ctx, const ember__ck_meta *m)
{
    ember__ck_stamp st;
    ember__ck_stamp_now(ctx, &st);
    return ember__ck_write_root((int64_t)fid, m, &st);
}

/* ---- files built in memory ------------------------------------------------------
 *
 * ember__ckw_begin_image builds the file with ember's image driver (below;
 * HDF5's core driver with other HDF5 versions than 1.10) in the
 * caller's buffer (ember__ckimg), which outlives the file: the next
 * checkpoint reuses its pages instead of faulting in fresh ones. The commit
 * seals the bytes where they lie (no read back of the file), then writes
 * them with O_DIRECT (buffered where refused), the image and the chunks
 * the driver took by reference each from where it lies, into the retired
 * checkpoint the loop left as the spare (ember__ck_spare), renamed to
 * NAME.tmp, when there is one and it may be written over (a regular file
 * with one name, open nowhere else): its blocks are allocated already. A
 * buffered write into a new file costs a fresh page-cache page for every
 * 4 KiB (measured: 3x the CPU of a copy into cached pages, and on a VM
 * that backs memory lazily far more: docs/design.md, "Checkpoints go to
 * the background"). The rest of the commit sequence is unchanged. HDF5
 * calls the callbacks and the driver under its lock, from the thread
 * writing the file. */

/* HDF5's core driver grows its image by this much, and at close leaves its
 * end there, past the end of allocation: the file written is up to this
 * much longer than a streamed one, zeros that HDF5 ignores (the seal
 * covers them). */
#define IMAGE_STEP ((size_t)64 << 10)
/* Alignment of an O_DIRECT write's buffer, offset and length: a page,
 * which covers the logical block size of common devices (512 or 4096). */
#define DIO_ALIGN ((size_t)4096)

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The image lives at an address aligned for O_DIRECT (DIO_ALIGN) in an
 * allocation from the context's allocator, with room to pad it to a
 * multiple of DIO_ALIGN bytes. Growth moves the bytes HDF5 has so far. */
static void *img_realloc(void *ptr, size_t size, H5FD_file_image_op_t op,
                         void *udata)
{
    (void)ptr;
    (void)op;
    ember__ckw *w = udata;
    ember__ckimg *img = w->img;
    if (round_up(size, DIO_ALIGN) > img->cap) {
        size_t cap = round_up(size + size / 2, DIO_ALIGN);
        unsigned char *raw = ember__malloc(w->ctx, cap + DIO_ALIGN);
        if (!raw)
            return NULL;
        unsigned char *b = ember__align(raw, DIO_ALIGN);
        ember__hint_huge(raw, cap + DIO_ALIGN);
        if (img->len)
            memcpy(b, img->buf, img->len < size ? img->len : size);
        ember__free(w->ctx, img->raw);
        img->raw = raw;
        img->buf = b;
        img->cap = cap;
    }
    img->len = size;
    return img->buf;
}

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *udata)
{
    return img_realloc(NULL, size, op, udata);
}

static void *img_memcpy(void *dest, const void *src, size_t size,
                        H5FD_file_image_op_t op, void *udata)
{
    (void)op;
    (void)udata;
    return memmove(dest, src, size);
}

static herr_t img_free(void *ptr, H5FD_file_image_op_t op, void *udata)
{
    (void)ptr; /* kept for the next file */
    (void)op;
    (void)udata;
    return 0;
}

static void *img_udata_copy(void *udata)
{
    return udata;
}

static herr_t img_udata_free(void *udata)
{
    (void)udata;
    return 0;
}

int ember__ckimg_reserve(ember_ctx *ctx, ember__ckimg *img, size_t bytes)
{
    size_t cap = round_up(bytes, DIO_ALIGN);
    if (img->cap >= cap)
        return EMBER_OK;
    unsigned char *raw = ember__malloc(ctx, cap + DIO_ALIGN);
    if (!raw)
        return EMBER_ENOMEM;
    ember__hint_huge(raw, cap + DIO_ALIGN);
    ember__free(ctx, img->raw);
    img->raw = raw;
    img->buf = ember__align(raw, DIO_ALIGN);
    img->cap = cap;
    return EMBER_OK;
}

void ember__ckimg_free(ember_ctx *ctx, ember__ckimg *img)
{
    if (!img)
        return;
    ember__free(ctx, img->raw);
    ember__buf_free(ctx, &img->chunk);
    ember__buf_free(ctx, &img->kept);
    ember__buf_free(ctx, &img->refs);
    int core = img->core;
    memset(img, 0, sizeof *img);
    img->core = core;
}

int ember__ck_spare(const char *dir, char *path, size_t size)
{
    return (size_t)snprintf(path, size, "%s/" EMBER__CK_SPARE, dir) >= size ? -1 : 0;
}

/* ---- ember's image driver ----------------------------------------------
 *
 * With HDF5 1.10 (whose file driver interface this follows) the image is
 * built by a driver of ember's own instead of the core driver. It makes
 * the same file, byte for byte: the same layout (the core driver's
 * features), zeros wherever nothing was written, the length grown in
 * steps of IMAGE_STEP. It differs in how: a raw-data write of at least
 * IMAGE_REF bytes from memory the writer keeps (ember__ckw_keep: a
 * snapshot's chunks) is noted, not copied. The seal hashes it and the
 * commit writes it from where it lies, its whole 512-byte blocks at
 * least (spans_plan); the rest is copied into the image just before it is
 * hashed. The core driver made three passes through memory (clearing,
 * copying, then hashing from memory again): measured in docs/design.md.
 * Nothing else is kept by reference, so a write from any other buffer
 * (HDF5's own) is copied as the core driver copies it. */
#define IMAGE_REF ((size_t)64 << 10)
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
#define IMAGE_DRIVER 1

typedef struct {
    const unsigned char *data;
    size_t bytes;
} kept_range;

typedef struct {
    size_t at, bytes;
    const unsigned char *src;
    size_t span; /* the seal's: bytes from at that go to the file from src
                    (spans_plan); the rest is copied into the image */
} image_ref;

typedef struct {
    H5FD_t pub; /* first: HDF5's part */
    ember__ckw *w;
    haddr_t eoa, eof;
} image_file;

static hid_t image_driver = H5I_INVALID_HID;

static herr_t image_term(void)
{
    image_driver = H5I_INVALID_HID;
    return 0;
}

static H5FD_t *image_open(const char *name, unsigned flags, hid_t fapl,
                          haddr_t maxaddr)
{
    (void)name;
    (void)maxaddr;
    ember__ckw *const *info = H5Pget_driver_info(fapl);
    if (!info || !(flags & H5F_ACC_CREAT))
        return NULL; /* only ever creates */
    image_file *f = ember__calloc((*info)->ctx, 1, sizeof *f);
    if (f)
        f->w = *info;
    return f ? &f->pub : NULL;
}

static herr_t image_close(H5FD_t *file)
{
    image_file *f = (image_file *)file;
    ember__free(f->w->ctx, f);
    return 0;
}

static herr_t image_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    if (flags)
        *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA |
                 H5FD_FEAT_DATA_SIEVE | H5FD_FEAT_AGGREGATE_SMALLDATA |
                 H5FD_FEAT_ALLOW_FILE_IMAGE;
    return 0;
}

static haddr_t image_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const image_file *)file)->eoa;
}

static herr_t image_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((image_file *)file)->eoa = addr;
    return 0;
}

static haddr_t image_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const image_file *)file)->eof;
}

static herr_t image_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = ((image_file *)file)->w->img->buf;
    return 0;
}

/* The first reference that ends after lo. The references never overlap
 * and are kept in order of offset (image_write), so it is found by
 * bisection: the seal's steps take a pass over them all, not one each. */
static size_t refs_find(const ember__ckimg *img, size_t lo)
{
    const image_ref *r = (const image_ref *)img->refs.data;
    size_t a = 0, b = img->refs.n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (r[m].at + r[m].bytes <= lo)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* Copies what the references hold of file bytes [lo, hi) to out, which
 * stands for byte lo (the image itself, out = img->buf + lo, at the seal):
 * all of it when whole is set, else all but their spans. */
static void refs_copy(const ember__ckimg *img, size_t lo, size_t hi,
                      unsigned char *out, int whole)
{
    const image_ref *r = (const image_ref *)img->refs.data;
    for (size_t a = refs_find(img, lo); a < img->refs.n && r[a].at < hi; a++) {
        size_t start = r[a].at + (whole ? 0 : r[a].span);
        size_t from = start > lo ? start : lo;
        size_t to = r[a].at + r[a].bytes < hi ? r[a].at + r[a].bytes : hi;
        if (from < to)
            ember__copy(out + (from - lo), r[a].src + (from - r[a].at), to - from);
    }
}

/* Copies the references that meet [lo, hi) into the image and drops
 * them: a write there (or a truncation) then acts on plain bytes. */
static void refs_settle(ember__ckimg *img, size_t lo, size_t hi)
{
    image_ref *r = (image_ref *)img->refs.data;
    size_t keep = 0;
    for (size_t i = 0; i < img->refs.n; i++)
        if (r[i].at < hi && r[i].at + r[i].bytes > lo)
            ember__copy(img->buf + r[i].at, r[i].src, r[i].bytes);
        else
            r[keep++] = r[i];
    img->refs.n = keep;
}

static herr_t image_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr,
                         size_t size, void *buf)
{
    (void)type;
    (void)dxpl;
    image_file *f = (image_file *)file;
    size_t have = addr >= f->eof ? 0 : f->eof - addr < size ? (size_t)(f->eof - addr) : size;
    if (have) {
        ember__copy(buf, f->w->img->buf + addr, have);
        refs_copy(f->w->img, (size_t)addr, (size_t)addr + have, buf, 1);
    }
    memset((unsigned char *)buf + have, 0, size - have);
    return 0;
}

/* Whether [p, p + n) lies in memory the writer keeps. */
static int is_kept(const ember__ckimg *img, const unsigned char *p, size_t n)
{
    const kept_range *k = (const kept_range *)img->kept.data;
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < img->kept.n; i++) {
        uintptr_t lo = (uintptr_t)k[i].data;
        if (a >= lo && n <= k[i].bytes && a - lo <= k[i].bytes - n)
            return 1;
    }
    return 0;
}

/* The end of the file moved to eof (a multiple of IMAGE_STEP), the bytes
 * between the old end and the new one zeros except [skip_lo, skip_hi),
 * which the caller fills. */
static int image_extend(image_file *f, size_t eof, size_t skip_lo, size_t skip_hi)
{
    ember__ckimg *img = f->w->img;
    size_t old = (size_t)f->eof;
    if (eof <= old) {
        if (eof < old) /* shrunk (as the core driver's truncate may) */
            refs_settle(img, eof, old);
        f->eof = eof;
        img->len = eof;
        return 0;
    }
    if (!img_realloc(NULL, eof, H5FD_FILE_IMAGE_OP_FILE_RESIZE, f->w))
        return -1;
    skip_lo = skip_lo > old ? skip_lo : old;
    skip_hi = skip_hi > skip_lo ? skip_hi : skip_lo;
    memset(img->buf + old, 0, skip_lo - old);
    memset(img->buf + skip_hi, 0, eof - skip_hi);
    f->eof = eof;
    return 0;
}

static herr_t image_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr,
                          size_t size, const void *buf)
{
    (void)dxpl;
    image_file *f = (image_file *)file;
    ember__ckimg *img = f->w->img;
    size_t at = (size_t)addr, end = at + size;
    if (addr == HADDR_UNDEF || end < at || end > f->eoa)
        return -1;
    if (end > f->eof && image_extend(f, round_up(end, IMAGE_STEP), at, end))
        return -1;
    refs_settle(img, at, end); /* a write over a reference (never expected) */
    if (type == H5FD_MEM_DRAW && size >= IMAGE_REF && is_kept(img, buf, size)) {
        image_ref r = {at, size, buf, 0};
        img->refs.size = sizeof r;
        if (ember__buf_append(f->w->ctx, &img->refs, &r, 1) == EMBER_OK) {
            /* in order of offset (HDF5 allocates chunks upwards, so this
             * moves nothing in practice) */
            image_ref *v = (image_ref *)img->refs.data;
            for (size_t i = img->refs.n - 1; i > 0 && v[i - 1].at > v[i].at; i--) {
                image_ref t = v[i];
                v[i] = v[i - 1];
                v[i - 1] = t;
            }
            return 0;
        }
    }
    ember__copy(img->buf + at, buf, size);
    return 0;
}

static herr_t image_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl;
    image_file *f = (image_file *)file;
    if (closing) /* as the core driver without a backing store */
        return 0;
    return image_extend(f, round_up((size_t)f->eoa, IMAGE_STEP), 0, 0) ? -1 : 0;
}

/* No superblock driver information, no flush (the image is the file),
 * no locks (nothing is on disk until the commit). */
static const H5FD_class_t image_class = {
    .name = "ember-image",
    .maxaddr = ((haddr_t)1 << (8 * sizeof(off_t) - 1)) - 1,
    .fc_degree = H5F_CLOSE_WEAK,
    .terminate = image_term,
    .fapl_size = sizeof(ember__ckw *), /* the writer */
    .open = image_open,
    .close = image_close,
    .query = image_query,
    .get_eoa = image_get_eoa,
    .set_eoa = image_set_eoa,
    .get_eof = image_get_eof,
    .get_handle = image_get_handle,
    .read = image_read,
    .write = image_write,
    .truncate = image_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

/* Before the seal: which bytes of each reference go to the file straight
 * from its source, the span. Those of whole blocks of EMBER__DIO_MIN that
 * start at a multiple of it in the file and in memory: an O_DIRECT write
 * takes them where they lie. The rest is copied into the image, as are
 * the references that meet the file's first blocks, which the seal reads
 * from the image. (The chunks of a snapshot are aligned so in both:
 * ember__chunks_layout and H5Pset_alignment in image_fapl.) */
static void spans_plan(ember__ckimg *img)
{
    image_ref *r = (image_ref *)img->refs.data;
    for (size_t i = 0; i < img->refs.n; i++) {
        int aligned = !img->no_spans && r[i].at % EMBER__DIO_MIN == 0 &&
                      (uintptr_t)r[i].src % EMBER__DIO_MIN == 0 &&
                      r[i].at >= 2 * EMBER__FSUM_BLOCK;
        r[i].span = aligned ? r[i].bytes / EMBER__DIO_MIN * EMBER__DIO_MIN : 0;
    }
}

/* The seal's source of the file's bytes from lo (ember__fsum_seal_image):
 * the span that holds lo, or else the image up to the next span, the other
 * referenced bytes there copied in first. */
static const unsigned char *image_piece(void *arg, size_t lo, size_t *n)
{
    ember__ckimg *img = arg;
    const image_ref *r = (const image_ref *)img->refs.data;
    size_t i = refs_find(img, lo), hi = lo + *n;
    if (i < img->refs.n && r[i].at <= lo && lo < r[i].at + r[i].span) {
        size_t left = r[i].at + r[i].span - lo;
        *n = left < *n ? left : *n;
        return r[i].src + (lo - r[i].at);
    }
    for (; i < img->refs.n && r[i].at < hi; i++)
        if (r[i].span && r[i].at > lo) {
            hi = r[i].at;
            break;
        }
    refs_copy(img, lo, hi, img->buf + lo, 0);
    *n = hi - lo;
    return img->buf + lo;
}
#endif

void ember__ckw_keep(ember__ckw *w, const void *data, size_t bytes)
{
#ifdef IMAGE_DRIVER
    if (w->img && !w->img->core) {
        kept_range k = {data, bytes};
        w->img->kept.size = sizeof k;
        (void)ember__buf_append(w->ctx, &w->img->kept, &k, 1); /* or copied */
    }
#endif
    (void)w;
    (void)data;
    (void)bytes;
}

/* The file access properties of a file built in w->img. */
static hid_t image_fapl(ember__ckw *w)
{
    hid_t fapl = (hid_t)ember__h5_fapl();
    if (fapl < 0)
        return fapl;
    /* chunks at multiples of EMBER__DIO_MIN (from the end of the user
     * block, itself a multiple), so that their spans can go to the file
     * from where they lie (spans_plan); with either driver, the same file.
     * Only an optimization: without it, the chunks are copied. */
    (void)H5Pset_alignment(fapl, IMAGE_REF, EMBER__DIO_MIN);
#ifdef IMAGE_DRIVER
    if (!w->img->core) {
        if (image_driver < 0 || H5Iget_type(image_driver) != H5I_VFL)
            image_driver = H5FDregister(&image_class);
        if (image_driver >= 0 && H5Pset_driver(fapl, image_driver, &w) >= 0)
            return fapl;
        w->img->core = 1; /* the core driver then, from now on */
    }
#endif
    H5FD_file_image_callbacks_t cb = {img_malloc,   img_memcpy,     img_realloc,
                                      img_free,     img_udata_copy, img_udata_free,
                                      w};
    if (H5Pset_fapl_core(fapl, IMAGE_STEP, 0) < 0 ||
        H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        H5Pclose(fapl);
        fapl = H5I_INVALID_HID;
    }
    return fapl;
}

/* ---- writing ---------------------------------------------------------------- */

static int begin(ember_ctx *ctx, ember__ckw **out, const char *dir,
                 const char *name, const ember__ck_meta *meta,
                 ember__ckimg *img, char *msg)
{
    *out = NULL;
    ember__ckw *w = ember__calloc(ctx, 1, sizeof *w);
    if (!w)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    w->ctx = ctx;
    w->fid = -1;
    w->hold = -1;
    w->deflate = meta->deflate;
    w->img = img;
    if ((size_t)snprintf(w->dir, sizeof w->dir, "%s", dir) >= sizeof w->dir ||
        (size_t)snprintf(w->path, sizeof w->path, "%s/%s", dir, name) >= sizeof w->path ||
        (size_t)snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path) >= sizeof w->tmp) {
        ember__free(ctx, w);
        return ember__err(msg, EMBER_EINVAL, "checkpoint path too long: %s/%s", dir, name);
    }
    unlink(w->tmp);
    /* A file HDF5 writes is held against the sweeps of writers that share
     * the directory without its lock (a loop's start); one built in memory
     * is the loop's own, under that lock. */
    if (!img)
        w->hold = ember__tmp_hold(w->tmp);
    if (img) {
        img->len = 0;
        img->chunk.size = 1;
        img->kept.n = 0;
        img->refs.n = 0;
    }
    ember__h5_lock();
    hid_t fapl = img ? image_fapl(w) : (hid_t)ember__h5_fapl();
    hid_t fcpl = (hid_t)ember__h5_fcpl();
    w->fid = fapl >= 0 && fcpl >= 0 ? H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    int bad = w->fid < 0 || write_root(w->fid, ctx, meta) != 0;
    ember__h5_unlock();
    if (bad) {
        int err = errno;
        int rc = ember__err(msg, EMBER_EIO, "cannot create checkpoint %s: %s",
                            w->tmp, strerror(err ? err : EIO));
        ember__ckw_abort(&w);
        return rc;
    }
    *out = w;
    return EMBER_OK;
}

int ember__ckw_begin(ember_ctx *ctx, ember__ckw **out, const char *dir,
                     const char *name, const ember__ck_meta *meta, char *msg)
{
    return begin(ctx, out, dir, name, meta, NULL, msg);
}

int ember__ckw_begin_image(ember_ctx *ctx, ember__ckw **out, const char *dir,
                           const char *name, const ember__ck_meta *meta,
                           ember__ckimg *img, char *msg)
{
    return begin(ctx, out, dir, name, meta, img, msg);
}

int ember__ckw_reopen(ember_ctx *ctx, ember__ckw **out, const char *dir,
                      const char *name, int deflate, char *msg)
{
    *out = NULL;
    ember__ckw *w = ember__calloc(ctx, 1, sizeof *w);
    if (!w)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    w->ctx = ctx;
    w->fid = -1;
    w->hold = -1; /* rank 0's ember__ckp holds it */
    w->deflate = deflate;
    if ((size_t)snprintf(w->dir, sizeof w->dir, "%s", dir) >= sizeof w->dir ||
        (size_t)snprintf(w->path, sizeof w->path, "%s/%s", dir, name) >= sizeof w->path ||
        (size_t)snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path) >= sizeof w->tmp) {
        ember__free(ctx, w);
        return ember__err(msg, EMBER_EINVAL, "checkpoint path too long: %s/%s", dir, name);
    }
    ember__h5_lock();
    hid_t fapl = (hid_t)ember__h5_fapl();
    w->fid = fapl >= 0 ? H5Fopen(w->tmp, H5F_ACC_RDWR, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    ember__h5_unlock();
    if (w->fid < 0) {
        int rc = ember__err(msg, EMBER_EIO, "cannot reopen checkpoint %s", w->tmp);
        ember__ckw_abort(&w);
        return rc;
    }
    *out = w;
    return EMBER_OK;
}

static int open_writer(ember__ckw *w, const char *group, const char *name,
                       const ember_type *t, uint64_t expected, ember__h5w **hw,
                       char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    if (!name[0] || strchr(name, '/') || strlen(name) >= EMBER_NAME_SIZE)
        return ember__err(msg, EMBER_EINVAL, "bad checkpoint entry name '%s'", name);
    snprintf(path, sizeof path, "/%s/%s", group, name);
    ember__h5w_opts o = {.deflate = w->deflate, .fletcher32 = 1,
                         .fid = (long long)w->fid, .expected = expected,
                         .scratch = w->img ? &w->img->chunk : NULL};
    return ember__h5w_open(w->ctx, hw, w->tmp, path, t, &o, msg);
}

int ember__ckw_records(ember__ckw *w, const char *name, const ember_type *t,
                       uint64_t expected, ember__h5w **hw, char *msg)
{
    *hw = NULL;
    return open_writer(w, "datasets", name, t, expected, hw, msg);
}

int ember__ckw_parts(ember__ckw *w, const char *name, const ember_type *t,
                     const ember__buf *parts, size_t nparts, char *msg)
{
    ember__h5w *hw = NULL;
    uint64_t *off = ember__calloc(w->ctx, nparts + 1, sizeof *off);
    uint64_t expected = 0;
    for (size_t p = 0; p < nparts; p++)
        expected += parts[p].n;
    int rc = off ? open_writer(w, "datasets", name, t, expected, &hw, msg)
                 : ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t p = 0; !rc && p < nparts; p++) {
        rc = ember__h5w_append(hw, parts[p].data, parts[p].n, msg);
        off[p + 1] = off[p] + parts[p].n;
    }
    if (hw) {
        int rc2 = ember__h5w_close(&hw, rc ? NULL : off, nparts, rc ? NULL : msg);
        rc = rc ? rc : rc2;
    }
    ember__free(w->ctx, off);
    return rc;
}

int ember__ckw_chunks(ember__ckw *w, const char *name, const ember_type *t,
                      const ember__chunks *c, const uint64_t *off, size_t nparts,
                      char *msg)
{
    ember__h5w *hw = NULL;
    int rc = open_writer(w, off ? "datasets" : "scalars", name, t, c->n, &hw, msg);
    if (!rc)
        rc = ember__h5w_put_chunks(hw, c, msg);
    if (hw) {
        int rc2 = ember__h5w_close(&hw, rc ? NULL : off, nparts, rc ? NULL : msg);
        rc = rc ? rc : rc2;
    }
    return rc;
}

int ember__ckw_scalars(ember__ckw *w, const char *name, ember_scalar kind,
                       const void *data, size_t n, char *msg)
{
    ember_type t = ember_type_scalar(kind);
    ember__h5w *hw = NULL;
    int rc = open_writer(w, "scalars", name, &t, n, &hw, msg);
    if (!rc)
        rc = ember__h5w_append(hw, data, n, msg);
    if (hw) {
        int rc2 = ember__h5w_close(&hw, NULL, 0, rc ? NULL : msg);
        rc = rc ? rc : rc2;
    }
    return rc;
}

/* One dataset at path of memory type mt and rank 1 or 2, chunked with
 * HDF5's Fletcher32, written whole from data (nothing to write when
 * dims[0] is 0). Under the HDF5 lock. */
static int write_whole(hid_t fid, const char *path, hid_t mt, int rank,
                       const hsize_t *dims, const hsize_t *chunk, const void *data)
{
    hid_t s = H5Screate_simple(rank, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    int ok = s >= 0 && p >= 0 && H5Pset_chunk(p, rank, chunk) >= 0 &&
             H5Pset_fletcher32(p) >= 0 &&
             (d = H5Dcreate2(fid, path, mt, s, H5P_DEFAULT, p, H5P_DEFAULT)) >= 0 &&
             (dims[0] == 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (d >= 0)
        H5Dclose(d);
    if (p >= 0)
        H5Pclose(p);
    if (s >= 0)
        H5Sclose(s);
    return ok;
}

int ember__ckw_matrix(ember__ckw *w, const char *name, ember_scalar kind,
                      const void *data, size_t rows, size_t cols, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    size_t esize = ember_scalar_size(kind);
    if (!name[0] || strchr(name, '/') || strlen(name) >= EMBER_NAME_SIZE || !rows ||
        !cols || !esize)
        return ember__err(msg, EMBER_EINVAL, "bad checkpoint matrix '%s'", name);
    snprintf(path, sizeof path, "/scalars/%s", name);
    size_t per = (size_t)1 << 20, crows = per / (cols * esize);
    hsize_t dims[2] = {rows, cols};
    hsize_t chunk[2] = {crows < 1 ? 1 : crows > rows ? rows : crows, cols};
    ember_type t = ember_type_scalar(kind);
    ember__h5_lock();
    hid_t mt = (hid_t)ember__h5_mem_type(&t);
    int ok = mt >= 0 && write_whole(w->fid, path, mt, 2, dims, chunk, data);
    if (mt >= 0)
        H5Tclose(mt);
    ember__h5_unlock();
    return ok ? EMBER_OK
              : ember__err(msg, EMBER_EIO, "%s: cannot write %s", w->tmp, path);
}

int ember__ckw_blob(ember__ckw *w, const char *name, const void *data,
                    size_t size, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    if (!name[0] || strchr(name, '/') || strlen(name) >= EMBER_NAME_SIZE)
        return ember__err(msg, EMBER_EINVAL, "bad checkpoint entry name '%s'", name);
    snprintf(path, sizeof path, "/blobs/%s", name);
    hsize_t dims = size, chunk = size ? (size < 65536 ? size : 65536) : 1;
    ember__h5_lock();
    int ok = write_whole(w->fid, path, H5T_NATIVE_UINT8, 1, &dims, &chunk, data);
    ember__h5_unlock();
    return ok ? EMBER_OK
              : ember__err(msg, EMBER_EIO, "%s: cannot write blob %s", w->tmp, name);
}

/* Starts writing the file's dirty pages to the device without waiting, so
 * the disk works while the seal re-reads the file for its checksum; the
 * fsync after the seal still waits for all of it. Best effort: a failure
 * here leaves the work to that fsync. */
static void start_writeback(const char *path)
{
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(fd);
    }
#else
    (void)path;
#endif
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes v[0 .. n) at file offset at, all of it (a short write goes on
 * where it stopped). v is consumed. */
static int pwritev_all(int fd, struct iovec *v, int n, size_t at)
{
    for (; n > 0 && v->iov_len == 0; v++, n--) /* nothing to write there */
        ;
    while (n > 0) {
        ssize_t k = pwritev(fd, v, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return -1;
        }
        at += (size_t)k;
        for (; n > 0 && (size_t)k >= v->iov_len; v++, n--)
            k -= (ssize_t)v->iov_len;
        if (n > 0) {
            v->iov_base = (unsigned char *)v->iov_base + k;
            v->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* Writes the file's bytes [0, end) to fd: the image's, but the spans'
 * (spans_plan) from their sources, in few pwritev calls (one for up to 31
 * spans). refuse: a test's O_DIRECT device that takes no span. */
static int write_pieces(int fd, const ember__ckimg *img, size_t end, int refuse)
{
    struct iovec v[64];
    int n = 0;
    size_t at = 0, from = 0; /* the file offsets of the end and of v[0] */
#ifdef IMAGE_DRIVER
    const image_ref *r = (const image_ref *)img->refs.data;
    for (size_t i = 0; i < img->refs.n; i++)
        if (r[i].span) {
            if (refuse) {
                errno = EINVAL;
                return -1;
            }
            if (n + 3 > 64) {
                if (pwritev_all(fd, v, n, from))
                    return -1;
                n = 0;
                from = at;
            }
            v[n++] = (struct iovec){img->buf + at, r[i].at - at};
            v[n++] = (struct iovec){(void *)r[i].src, r[i].span};
            at = r[i].at + r[i].span;
        }
#else
    (void)refuse;
#endif
    v[n++] = (struct iovec){img->buf + at, end - at};
    return pwritev_all(fd, v, n, from);
}

/* Copies the spans into the image (the whole file is there then); 0 if
 * there were none. */
static int spans_settle(ember__ckimg *img)
{
    int any = 0;
#ifdef IMAGE_DRIVER
    image_ref *r = (image_ref *)img->refs.data;
    for (size_t i = 0; i < img->refs.n; i++)
        if (r[i].span) {
            ember__copy(img->buf + r[i].at, r[i].src, r[i].span);
            r[i].span = 0;
            any = 1;
        }
#endif
    return any;
}

/* Writes the file from offset 0, with O_DIRECT when the file system takes
 * it (the image padded with zeros to DIO_ALIGN; the caller sets the length
 * after): the device reads the image and the spans where they lie, and
 * the kernel neither copies them nor allocates page-cache pages for them,
 * which on a VM that backs fresh pages lazily cost 30-120 ms for 12 MB. A
 * device that wants more alignment than the spans have (4 KiB sectors)
 * gets the whole image, the spans copied in. Where O_DIRECT is refused
 * (tmpfs, some network file systems), a buffered write, which into the
 * spare's cached pages is a plain copy. */
/* Whether the file open as fd may be written over: a regular file with no
 * other name, which no other descriptor has open (a write lease is granted
 * only then; where leases are refused, no). The spare is such a file,
 * unless something outside reached it: a symbolic link or a hard link by a
 * checkpoint's name (an archive, a fork made with cp -al) or a reader
 * partway through a retired checkpoint, which must keep the bytes they
 * had. */
static int overwritable(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
        return 0;
#ifdef F_SETLEASE
    /* Another process opening the file while the lease is held sends its
     * holder a signal: SIGURG, ignored by default, not SIGIO, which would
     * end the process. */
    if (fcntl(fd, F_SETSIG, SIGURG) != 0 || fcntl(fd, F_SETLEASE, F_WRLCK) != 0)
        return 0;
    (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    return 1;
#else
    return 0;
#endif
}

/* A descriptor to write the image at path through: the spare renamed
 * there when it may be written over, else a new file. -1 with errno. */
static int open_image(const char *path, int flags)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | flags);
    if (fd < 0 && errno == EINVAL)
        return -1; /* flags refused (O_DIRECT): the spare stays for the retry */
    if (fd >= 0 && overwritable(fd))
        return fd;
    if (fd >= 0)
        close(fd);
    return ember__open_new(path, flags);
}

static int write_image_fd(const char *path, ember__ckimg *img, int *fd)
{
#ifdef O_DIRECT
    size_t padded = round_up(img->len, DIO_ALIGN);
    memset(img->buf + img->len, 0, padded - img->len);
    int dfd = img->refuse_direct ? (errno = EINVAL, -1)
                                 : open_image(path, O_DIRECT);
    if (dfd >= 0 && write_pieces(dfd, img, padded, img->refuse_spans) == 0) {
        *fd = dfd;
        return 0;
    }
    if (dfd >= 0 && spans_settle(img)) { /* the whole image, from its start */
        img->no_spans |= errno == EINVAL; /* the device wants more alignment */
        if (write_pieces(dfd, img, padded, 0) == 0) {
            *fd = dfd;
            return 0;
        }
    }
    if (dfd >= 0)
        close(dfd);
#endif
    *fd = open_image(path, 0);
    if (*fd < 0)
        return -1;
    return write_pieces(*fd, img, img->len, 0);
}

/* Writes the sealed image as w->tmp, over the spare when there is one (no
 * truncation first: its blocks, and its cached pages for a buffered write,
 * stay; the length is set after), and fsyncs it. The failed step, or
 * NULL. */
static const char *write_image(ember__ckw *w)
{
    char spare[PATH_MAX];
    if (!ember__ck_spare(w->dir, spare, sizeof spare))
        (void)rename(spare, w->tmp); /* ENOENT: no spare, a new file */
    int fd = -1;
    const char *step = write_image_fd(w->tmp, w->img, &fd) ? "write"
                       : ftruncate(fd, (off_t)w->img->len) ? "truncate"
                       : fsync(fd)                         ? "fsync"
                                                           : NULL;
    if (fd < 0)
        return "create";
    int err = errno;
    if (close(fd) != 0 && !step)
        step = "close";
    else
        errno = err;
    return step;
}

/* Seals and writes the file of w: the steps of the commit sequence up to
 * the fsync of the file. The failed step, or NULL; why gets the checksum
 * failure's message. */
static const char *seal_and_sync(ember__ckw *w, struct stat *st, char *why)
{
    if (w->img) {
        const unsigned char *(*piece)(void *, size_t, size_t *) = NULL;
#ifdef IMAGE_DRIVER
        if (w->img->refs.n) {
            spans_plan(w->img);
            piece = image_piece;
        }
#endif
        if (ember__fsum_seal_image(w->img->buf, w->img->len, piece, w->img, why))
            return "checksum";
        const char *step = write_image(w);
        st->st_size = (off_t)w->img->len;
        return step;
    }
    start_writeback(w->tmp);
    return ember__fsum_seal(w->tmp, why) ? "checksum" :
           fsync_path(w->tmp, 0)         ? "fsync" :
           stat(w->tmp, st)              ? "stat" : NULL;
}

int ember__ckw_commit(ember__ckw **pw, uint64_t *bytes, char *path_out,
                      char *msg)
{
    ember__ckw *w = *pw;
    ember__h5_lock();
    errno = 0;
    herr_t fl = H5Fflush(w->fid, H5F_SCOPE_GLOBAL);
    int ferr = fl < 0 ? errno : 0; /* a full disk's ENOSPC, say */
    herr_t cl = H5Fclose(w->fid);
    ferr = ferr ? ferr : cl < 0 ? errno : 0;
    ember__h5_unlock();
    w->fid = -1;
    struct stat st;
    char why[EMBER_MSG_SIZE];
    errno = ferr;
    const char *step = fl < 0 || cl < 0 ? "write" : seal_and_sync(w, &st, why);
    if (!step)
        step = rename(w->tmp, w->path) ? "rename" :
               fsync_path(w->dir, 1)   ? "fsync directory of" : NULL;
    if (step) {
        int err = errno;
        int rc = strcmp(step, "checksum") == 0
                     ? ember__err(msg, EMBER_EIO, "checkpoint %s: %s", w->path, why)
                     : ember__err(msg, EMBER_EIO, "checkpoint %s: %s failed: %s",
                                  w->path, step, strerror(err ? err : EIO));
        ember__ckw_abort(pw);
        return rc;
    }
    if (bytes)
        *bytes = (uint64_t)st.st_size;
    if (path_out)
        snprintf(path_out, 1024, "%.1023s", w->path);
    if (w->hold >= 0)
        close(w->hold);
    ember__free(w->ctx, w);
    *pw = NULL;
    return EMBER_OK;
}

void ember__ckw_abort(ember__ckw **pw)
{
    if (!pw || !*pw)
        return;
    ember__ckw *w = *pw;
    if (w->fid >= 0) {
        ember__h5_lock();
        H5Fclose(w->fid);
        ember__h5_unlock();
    }
    unlink(w->tmp);
    if (w->hold >= 0)
        close(w->hold);
    ember__free(w->ctx, w);
    *pw = NULL;
}

/* ---- reading ------------------------------------------------------------------ */

static int read_info(ember__ckr *r, char *msg)
{
    ember__ck_info *i = &r->info;
    char magic[64];
    int got = read_attr_str(r->ctx, r->fid, "format", magic, sizeof magic);
    if (got == EMBER_ENOMEM)
        return ember__err(msg, EMBER_ENOMEM, "%s: out of memory", r->path);
    if (got || strcmp(magic, CK_MAGIC))
        return ember__err(msg, EMBER_ECORRUPT, "%s: not an ember checkpoint", r->path);
    if (read_attr_num(r->fid, "format_version", H5T_NATIVE_INT64, &i->format_version))
        return ember__err(msg, EMBER_ECORRUPT, "%s: no format_version", r->path);
    if (i->format_version > EMBER_CHECKPOINT_FORMAT || i->format_version < 1)
        return ember__err(msg, EMBER_EFORMAT,
                          "%s: checkpoint format %lld; this ember reads up to %d",
                          r->path, (long long)i->format_version, EMBER_CHECKPOINT_FORMAT);
    int s[7] = {
        read_attr_str(r->ctx, r->fid, "kind", i->kind, sizeof i->kind),
        read_attr_str(r->ctx, r->fid, "ember_version", i->ember_version, sizeof i->ember_version),
        read_attr_str(r->ctx, r->fid, "program", i->program, sizeof i->program),
        read_attr_str(r->ctx, r->fid, "parameters", i->parameters, sizeof i->parameters),
        read_attr_str(r->ctx, r->fid, "state_signature", i->signature, sizeof i->signature),
        read_attr_str(r->ctx, r->fid, "created", i->created, sizeof i->created),
        read_attr_str(r->ctx, r->fid, "lineage", i->lineage, sizeof i->lineage)};
    int bad = read_attr_num(r->fid, "iteration", H5T_NATIVE_UINT64, &i->iteration) |
              read_attr_num(r->fid, "fingerprint", H5T_NATIVE_UINT64, &i->fingerprint) |
              read_attr_num(r->fid, "threads", H5T_NATIVE_INT64, &i->threads);
    int64_t records_forced = 0; /* optional: files of ember 0.1.0 lack it */
    i->records_forced = !read_attr_num(r->fid, "records_forced", H5T_NATIVE_INT64,
                                       &records_forced) && records_forced == 1;
    for (int k = 0; k < 7; k++) {
        if (s[k] == EMBER_ENOMEM) /* a good file, no memory: not ECORRUPT */
            return ember__err(msg, EMBER_ENOMEM, "%s: out of memory", r->path);
        bad |= k < 6 && s[k]; /* lineage is optional */
    }
    return bad ? ember__err(msg, EMBER_ECORRUPT, "%s: root attributes missing", r->path)
               : EMBER_OK;
}

/* The whole-file checksum, before libhdf5 sees a byte. A file without the
 * header is refused too: it cannot be told from one whose header was
 * destroyed, and libhdf5 must not parse what nothing vouches for. */
static int check_sum(const char *path, ember__file_id *id, char *msg)
{
    int rc = ember__fsum_check_id(path, id, msg);
    if (rc == EMBER__FSUM_NONE)
        return EMBER_ECORRUPT; /* msg says "cannot be verified" */
    return rc == EMBER_EINVAL ? EMBER_ECORRUPT : rc;
}

static int open_checked(ember_ctx *ctx, ember__ckr **out, const char *path,
                        const ember__file_id *id, char *msg);

int ember__ckr_open(ember_ctx *ctx, ember__ckr **out, const char *path,
                    char *msg)
{
    return ember__ckr_open_as(ctx, out, path, NULL, 0, msg);
}

int ember__ck_head(const char *path, unsigned char *head, uint64_t *size,
                   char *msg)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    struct stat st;
    ssize_t got = 0;
    int ok = fstat(fd, &st) == 0;
    while (ok && got < EMBER__FSUM_BLOCK) {
        ssize_t k = read(fd, head + got, (size_t)(EMBER__FSUM_BLOCK - got));
        if (k <= 0)
            break;
        got += k;
    }
    int err = errno;
    close(fd);
    if (!ok)
        return ember__err(msg, EMBER_EIO, "%s: %s", path, strerror(err));
    if (got < EMBER__FSUM_BLOCK)
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s: shorter than its checksum header (%lld bytes)",
                          path, (long long)st.st_size);
    *size = (uint64_t)st.st_size;
    return EMBER_OK;
}

int ember__ckr_open_known(ember_ctx *ctx, ember__ckr **out, const char *path,
                          const unsigned char *head, uint64_t size, char *msg)
{
    *out = NULL;
    unsigned char mine[EMBER__FSUM_BLOCK];
    uint64_t my_size = 0;
    int rc = ember__ck_head(path, mine, &my_size, msg);
    if (rc)
        return rc;
    if (my_size != size || memcmp(mine, head, EMBER__FSUM_BLOCK) != 0)
        return ember__err(msg, EMBER_EMISMATCH,
                          "%s is not the file that was verified (its checksum "
                          "header or size differs: another run's file, or "
                          "another copy)", path);
    ember__file_id id = {size, {0}};
    memcpy(id.head, head, sizeof id.head);
    return open_checked(ctx, out, path, &id, msg);
}

int ember__ckr_open_as(ember_ctx *ctx, ember__ckr **out, const char *path,
                       const unsigned char *head, uint64_t size, char *msg)
{
    *out = NULL;
    if (access(path, R_OK) != 0)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    ember__file_id id;
    int sum = check_sum(path, &id, msg);
    if (sum)
        return sum;
    /* A file that verifies by its own checksum may still be another one:
     * the header holds the hash of all the rest, so the same header and
     * size mean the same bytes. */
    if (head && (id.size != size || memcmp(id.head, head, EMBER__FSUM_BLOCK) != 0))
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s is not the checkpoint written there (its checksum "
                          "header or size differs: the file was replaced, by "
                          "another context's or process's, or a copy)", path);
    return open_checked(ctx, out, path, &id, msg);
}

/* Opens a file whose whole-file checksum has been checked: the file of
 * identity id, or an error (another file renamed over the name since). */
static int open_checked(ember_ctx *ctx, ember__ckr **out, const char *path,
                        const ember__file_id *id, char *msg)
{
    ember__ckr *r = ember__calloc(ctx, 1, sizeof *r);
    if (!r)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    r->ctx = ctx;
    snprintf(r->path, sizeof r->path, "%s", path);
    ember__h5_lock();
    hid_t fapl = (hid_t)ember__h5_fapl();
    int replaced = 0;
    r->fid = fapl >= 0 ? (hid_t)ember__h5_open_checked(path, H5F_ACC_RDONLY, fapl, id,
                                                       &replaced)
                       : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    int rc = replaced      ? ember__h5_replaced(path, msg)
             : r->fid < 0 ? ember__err(msg, EMBER_ECORRUPT,
                                       "%s: not a readable HDF5 file (truncated or "
                                       "damaged)", path)
                          : read_info(r, msg);
    ember__h5_unlock();
    if (rc) {
        ember__ckr_close(&r);
        return rc;
    }
    *out = r;
    return EMBER_OK;
}

const ember__ck_info *ember__ckr_info(const ember__ckr *r)
{
    return &r->info;
}

void ember__ckr_close(ember__ckr **pr)
{
    if (!pr || !*pr)
        return;
    ember__ckr *r = *pr;
    if (r->fid >= 0) {
        ember__h5_lock();
        H5Fclose(r->fid);
        ember__h5_unlock();
    }
    ember__free(r->ctx, r);
    *pr = NULL;
}

typedef struct {
    ember_ctx *ctx;
    char *names;
    size_t n, cap;
    int failed;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info,
                           void *data)
{
    (void)g;
    (void)info;
    name_list *l = data;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char *p = ember__realloc(l->ctx, l->names, cap * EMBER_NAME_SIZE);
        if (!p) {
            l->failed = 1;
            return -1;
        }
        l->names = p;
        l->cap = cap;
    }
    snprintf(l->names + l->n++ * EMBER_NAME_SIZE, EMBER_NAME_SIZE, "%s", name);
    return 0;
}

int ember__ckr_list(ember__ckr *r, const char *group, char **names, size_t *n,
                    char *msg)
{
    name_list l = {r->ctx, NULL, 0, 0, 0};
    ember__h5_lock();
    hid_t g = H5Gopen2(r->fid, group, H5P_DEFAULT);
    hsize_t idx = 0;
    herr_t it = g >= 0 ? H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx,
                                     collect_name, &l)
                       : -1;
    if (g >= 0)
        H5Gclose(g);
    ember__h5_unlock();
    if (it < 0) {
        ember__free(r->ctx, l.names);
        return ember__err(msg, l.failed ? EMBER_ENOMEM : EMBER_ECORRUPT,
                          "%s: cannot list %s", r->path, group);
    }
    *names = l.names;
    *n = l.n;
    return EMBER_OK;
}

/* Checks one dataset: it opens, its type and extent read, every element
 * reads (checksums are checked on read) unless read_data is 0, and a
 * /datasets item's partition_offsets are sound. */
static int verify_one(ember__ckr *r, const char *group, const char *name,
                      int read_data, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "%s/%s", group, name);
    hid_t d = H5Dopen2(r->fid, path, H5P_DEFAULT), ft = -1, mt = -1, s = -1;
    void *buf = NULL;
    int oom = 0;
    int ok = d >= 0 && (ft = H5Dget_type(d)) >= 0 &&
             (mt = H5Tget_native_type(ft, H5T_DIR_ASCEND)) >= 0 &&
             (s = H5Dget_space(d)) >= 0;
    if (ok) {
        hssize_t np = H5Sget_simple_extent_npoints(s);
        size_t bytes = (size_t)(np > 0 ? np : 0) * H5Tget_size(mt);
        buf = read_data ? ember__malloc(r->ctx, bytes) : NULL;
        oom = read_data && !buf;
        ok = np >= 0 && H5Tget_size(mt) > 0 &&
             (!read_data || (buf && (np == 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL,
                                                        H5P_DEFAULT, buf) >= 0)));
        if (ok && strcmp(group, "/datasets") == 0) {
            uint64_t last = 0;
            hid_t a = H5Aexists(d, "partition_offsets") > 0
                          ? H5Aopen(d, "partition_offsets", H5P_DEFAULT) : -1;
            hid_t as = a >= 0 ? H5Aget_space(a) : -1;
            hssize_t na = as >= 0 ? H5Sget_simple_extent_npoints(as) : 0;
            uint64_t *off = na > 0 ? ember__malloc(r->ctx, (size_t)na * 8) : NULL;
            oom = na > 0 && !off;
            ok = off && H5Aread(a, H5T_NATIVE_UINT64, off) >= 0 &&
                 off[0] == 0 && (last = off[na - 1]) == (uint64_t)np;
            for (hssize_t k = 1; ok && k < na; k++)
                ok = off[k - 1] <= off[k];
            ember__free(r->ctx, off);
            if (as >= 0)
                H5Sclose(as);
            if (a >= 0)
                H5Aclose(a);
        }
    }
    ember__free(r->ctx, buf);
    if (s >= 0)
        H5Sclose(s);
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    if (d >= 0)
        H5Dclose(d);
    if (oom) /* a good file, no memory: not ECORRUPT */
        return ember__err(msg, EMBER_ENOMEM, "%s: %s: out of memory", r->path, path);
    return ok ? EMBER_OK
              : ember__err(msg, EMBER_ECORRUPT,
                           "%s: %s fails verification (checksum, truncation or "
                           "missing or bad partition offsets)", r->path, path);
}

int ember__ckr_verify_reading(ember__ckr *r,
                              int (*read_by_caller)(const char *group,
                                                    const char *name, void *arg),
                              void *arg, char *msg)
{
    int rc = EMBER_OK;
    for (const char *g = "/datasets\0/scalars\0/blobs\0"; !rc && *g; g += strlen(g) + 1) {
        char *names = NULL;
        size_t n = 0;
        rc = ember__ckr_list(r, g, &names, &n, msg);
        ember__h5_lock();
        for (size_t i = 0; !rc && i < n; i++) {
            const char *name = names + i * EMBER_NAME_SIZE;
            int later = read_by_caller && read_by_caller(g + 1, name, arg);
            rc = verify_one(r, g, name, !later, msg);
        }
        ember__h5_unlock();
        ember__free(r->ctx, names);
    }
    return rc;
}

int ember__ckr_verify(ember__ckr *r, char *msg)
{
    return ember__ckr_verify_reading(r, NULL, NULL, msg);
}

static int read_offsets(ember__ckr *r, const char *path, uint64_t **off,
                        size_t *nparts, size_t n, char *msg)
{
    ember__h5_lock();
    hid_t d = H5Dopen2(r->fid, path, H5P_DEFAULT);
    hid_t a = d >= 0 && H5Aexists(d, "partition_offsets") > 0
                  ? H5Aopen(d, "partition_offsets", H5P_DEFAULT) : -1;
    hid_t s = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t na = s >= 0 ? H5Sget_simple_extent_npoints(s) : 0;
    *off = na >= 2 ? ember__malloc(r->ctx, (size_t)na * sizeof **off) : NULL;
    int ok = *off && H5Aread(a, H5T_NATIVE_UINT64, *off) >= 0;
    if (s >= 0)
        H5Sclose(s);
    if (a >= 0)
        H5Aclose(a);
    if (d >= 0)
        H5Dclose(d);
    ember__h5_unlock();
    if (na >= 2 && !*off) /* a good file, no memory: not ECORRUPT */
        return ember__err(msg, EMBER_ENOMEM, "%s: %s: out of memory", r->path, path);
    if (!ok || (*off)[na - 1] != n) {
        ember__free(r->ctx, *off);
        *off = NULL;
        return ember__err(msg, EMBER_ECORRUPT, "%s: %s has no valid partition_offsets",
                          r->path, path);
    }
    *nparts = (size_t)na - 1;
    return EMBER_OK;
}

int ember__ckr_dataset(ember__ckr *r, const char *name, ember_type *type,
                       void **data, size_t *n, uint64_t **offsets,
                       size_t *nparts, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "/datasets/%s", name);
    int rc = ember__h5_read_fid(r->ctx, (int64_t)r->fid, r->path, path, type,
                                data, n, msg);
    if (!rc && offsets && (rc = read_offsets(r, path, offsets, nparts, *n, msg))) {
        ember__free(r->ctx, *data);
        *data = NULL;
    }
    return rc;
}

int ember__ckr_dataset_shape(ember__ckr *r, const char *name, ember_type *type,
                             size_t *n, uint64_t **offsets, size_t *nparts,
                             char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "/datasets/%s", name);
    *offsets = NULL;
    int rc = ember__h5_type_fid((int64_t)r->fid, r->path, path, type, n, msg);
    return rc ? rc : read_offsets(r, path, offsets, nparts, *n, msg);
}

int ember__ckr_slice(ember__ckr *r, const char *name, const ember_type *type,
                     uint64_t lo, size_t n, void *buf, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "/datasets/%s", name);
    hsize_t start = lo, count = n;
    ember__h5_lock();
    hid_t d = H5Dopen2(r->fid, path, H5P_DEFAULT), fs = -1, ms = -1;
    hid_t mt = (hid_t)ember__h5_mem_type(type);
    int ok = d >= 0 && mt >= 0 && (fs = H5Dget_space(d)) >= 0 &&
             (ms = H5Screate_simple(1, &count, NULL)) >= 0 &&
             (n == 0 || (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL,
                                             &count, NULL) >= 0 &&
                         H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf) >= 0));
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    if (mt >= 0)
        H5Tclose(mt);
    if (d >= 0)
        H5Dclose(d);
    ember__h5_unlock();
    return ok ? EMBER_OK
              : ember__err(msg, EMBER_ECORRUPT, "%s: cannot read records %llu..%llu "
                           "of %s (checksum or truncation)", r->path,
                           (unsigned long long)lo, (unsigned long long)(lo + n), path);
}

int ember__ckr_item(ember__ckr *r, const char *path, ember_type *type,
                    void **data, size_t *n, char *msg)
{
    return ember__h5_read_fid(r->ctx, (int64_t)r->fid, r->path, path, type,
                              data, n, msg);
}

int ember__ckr_scalars(ember__ckr *r, const char *name, ember_scalar kind,
                       void *data, size_t n, char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "/scalars/%s", name);
    ember_type t;
    void *buf = NULL;
    size_t got = 0;
    int rc = ember__h5_read_fid(r->ctx, (int64_t)r->fid, r->path, path, &t,
                                &buf, &got, msg);
    /* A matrix (rows x cols, format 2) reads as rows records of cols. */
    size_t total = !rc && t.nfields == 1
                       ? got * (t.field[0].count ? t.field[0].count : 1) : 0;
    if (!rc && (total != n || t.nfields != 1 || t.field[0].kind != kind))
        rc = ember__err(msg, EMBER_ETYPE, "%s: %s holds %zu %s values; expected %zu %s",
                        r->path, path, total, ember_scalar_name(t.field[0].kind), n,
                        ember_scalar_name(kind));
    if (!rc)
        memcpy(data, buf, n * ember_scalar_size(kind));
    ember__free(r->ctx, buf);
    return rc;
}

int ember__ckr_blob(ember__ckr *r, const char *name, void *data, size_t size,
                    char *msg)
{
    char path[EMBER_NAME_SIZE + 32];
    snprintf(path, sizeof path, "/blobs/%s", name);
    ember__h5_lock();
    hid_t d = H5Lexists(r->fid, path, H5P_DEFAULT) > 0
                  ? H5Dopen2(r->fid, path, H5P_DEFAULT) : -1;
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t np = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    int ok = np == (hssize_t)size &&
             (size == 0 || H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL,
                                   H5P_DEFAULT, data) >= 0);
    if (s >= 0)
        H5Sclose(s);
    if (d >= 0)
        H5Dclose(d);
    ember__h5_unlock();
    if (ok)
        return EMBER_OK;
    return np < 0 ? ember__err(msg, EMBER_ENOTFOUND, "%s: no %s", r->path, path)
           : np != (hssize_t)size
               ? ember__err(msg, EMBER_ETYPE, "%s: %s holds %lld bytes; expected %zu",
                            r->path, path, (long long)np, size)
               : ember__err(msg, EMBER_ECORRUPT, "%s: %s fails its checksum", r->path,
                            path);
}
