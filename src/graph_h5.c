/* graph_h5.c: ember's HDF5 CSR format, and numeric arrays with attributes.
 *
 * Format (docs/formats.md): group /csr with offsets (u64, n + 1), targets
 * (u32; any integer type is read), attributes n, m (u64), directed (i32),
 * format ("ember-csr"), version (i32); optional ids (u64, n) holding the
 * original id of each vertex of a relabelled graph.
 *
 * Saving also stores the pull layout (/csr/pull: in-edges, out-degrees
 * and the degree order, what ember-pagerank asks for). Loading that layout
 * from a sealed file reads its four arrays straight into the graph with
 * parallel preads at the byte offsets HDF5 reports (contiguous, unfiltered,
 * little-endian; else H5Dread) and checks them: no rebuild. Otherwise
 * reading streams the targets in blocks of EDGES_PER_READ, twice (the
 * builder counts, then scatters), so memory stays at the new CSR plus one
 * block: the offsets are read whole. Every HDF5 call is made under
 * ember__h5_lock and on the caller's thread; hid_t's are closed on every
 * path.
 *
 * Files written here get a 512-byte user block and are sealed with a
 * whole-file checksum once closed (filesum.c). A file that carries that
 * header is verified before libhdf5 opens it, for reading or for adding a
 * dataset (and is sealed again after); one without it (made by h5py, or
 * by ember 0.1.0) is read as it is.
 */
#include "graph_internal.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EDGES_PER_READ ((size_t)1 << 20)

static int h5err(char *msg, int status, const char *file, const char *what)
{
    return ember__err(msg, status, "%s: %s", file, what);
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0)
        fn(*id);
    *id = H5I_INVALID_HID;
}

/* Opens an existing HDF5 file (ENOTFOUND / EFORMAT for what it is not),
 * after checking its whole-file checksum when it has one (*sealed, which
 * may be NULL, says whether it had). */
static int open_file(const char *file, unsigned mode, hid_t *fid, int *sealed,
                     char *msg)
{
    if (sealed)
        *sealed = 0;
    struct stat st;
    if (stat(file, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? ember__err(msg, EMBER_ENOTFOUND, "%s: no such file", file)
                   : ember__err(msg, EMBER_EIO, "%s: %s", file, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return h5err(msg, EMBER_EFORMAT, file, "not a regular file");
    if (st.st_size == 0)
        return h5err(msg, EMBER_EEMPTY, file, "empty file");
    ember__file_id id;
    int sum = ember__fsum_check_id(file, &id, msg);
    if (sum != EMBER_OK && sum != EMBER__FSUM_NONE) {
        ember__fsum_edit_hint(sum, msg);
        return sum; /* never hand a damaged file to libhdf5 */
    }
    ember__msg_clear(msg);
    if (sealed)
        *sealed = sum == EMBER_OK;
    hid_t fapl = (hid_t)ember__h5_fapl();
    if (fapl < 0)
        return h5err(msg, EMBER_EHDF5, file, "cannot make file properties");
#if H5_VERSION_GE(1, 12, 0)
    htri_t yes = H5Fis_accessible(file, fapl);
#else
    htri_t yes = H5Fis_hdf5(file);
#endif
    int rc = EMBER_OK, replaced = 0;
    if (yes <= 0)
        rc = h5err(msg, EMBER_EFORMAT, file, "not an HDF5 file");
    else if ((*fid = (hid_t)ember__h5_open_checked(file, mode, fapl,
                                                   sum == EMBER_OK ? &id : NULL,
                                                   &replaced)) < 0)
        rc = replaced ? ember__h5_replaced(file, msg)
                      : ember__h5_unopened(file, mode, sum == EMBER_OK, msg);
    H5Pclose(fapl);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct {
    ember_graph *g;
    const char *file;
    hid_t targets;       /* the dataset */
    int wide;            /* read as i64 / u64 and check */
    int is_signed;
    uint64_t *off;       /* the file's offsets, n + 1 */
    uint64_t *tmp;       /* wide reads */
    uint32_t *src, *dst; /* one block */
} h5_source;

static int read_slice(h5_source *s, uint64_t lo, size_t n, char *msg)
{
    hsize_t start = lo, count = n;
    hid_t fs = H5Dget_space(s->targets), ms = H5Screate_simple(1, &count, NULL);
    int rc = EMBER_OK;
    if (fs < 0 || ms < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0)
        rc = h5err(msg, EMBER_EHDF5, s->file, "cannot select /csr/targets");
    else if (!s->wide && H5Dread(s->targets, H5T_NATIVE_UINT32, ms, fs,
                                 H5P_DEFAULT, s->dst) < 0)
        rc = h5err(msg, EMBER_ECORRUPT, s->file, "cannot read /csr/targets");
    else if (s->wide && H5Dread(s->targets, s->is_signed ? H5T_NATIVE_INT64
                                                         : H5T_NATIVE_UINT64,
                                ms, fs, H5P_DEFAULT, s->tmp) < 0)
        rc = h5err(msg, EMBER_ECORRUPT, s->file, "cannot read /csr/targets");
    close_id(&fs, H5Sclose);
    close_id(&ms, H5Sclose);
    /* (the builder checks endpoints too, but cannot say where they came
     * from) */
    for (size_t i = 0; !rc && !s->wide && i < n; i++)
        if (s->dst[i] >= s->g->n)
            return ember__err(msg, EMBER_EFORMAT,
                              "%s: /csr/targets[%llu] = %lu is not a vertex (n = %llu)",
                              s->file, (unsigned long long)(lo + i),
                              (unsigned long)s->dst[i], (unsigned long long)s->g->n);
    for (size_t i = 0; !rc && s->wide && i < n; i++) {
        if ((s->is_signed && (int64_t)s->tmp[i] < 0) || s->tmp[i] >= s->g->n)
            return ember__err(msg, EMBER_EFORMAT,
                              "%s: /csr/targets[%llu] = %lld is not a vertex (n = %llu)",
                              s->file, (unsigned long long)(lo + i),
                              (long long)s->tmp[i], (unsigned long long)s->g->n);
        s->dst[i] = (uint32_t)s->tmp[i];
    }
    return rc;
}

/* Block i: targets [i * EDGES_PER_READ, ...), with their rows as sources. */
static int h5_block(void *state, size_t i, ember__eblock *b, char *msg)
{
    h5_source *s = state;
    uint64_t m = s->off[s->g->n], lo = (uint64_t)i * EDGES_PER_READ;
    size_t n = (size_t)(m - lo < EDGES_PER_READ ? m - lo : EDGES_PER_READ);
    ember__h5_lock();
    int rc = read_slice(s, lo, n, msg);
    ember__h5_unlock();
    if (rc)
        return rc;
    /* The row holding edge lo: the last r with off[r] <= lo. */
    uint64_t a = 0, z = s->g->n;
    while (a < z) {
        uint64_t mid = a + (z - a) / 2;
        if (s->off[mid + 1] <= lo)
            a = mid + 1;
        else
            z = mid;
    }
    for (size_t k = 0, r = (size_t)a; k < n; k++) {
        while (s->off[r + 1] <= lo + k)
            r++;
        s->src[k] = (uint32_t)r;
    }
    *b = (ember__eblock){s->src, s->dst, n, 1, NULL};
    return EMBER_OK;
}

static int read_u64_attr(hid_t loc, const char *name, uint64_t *v)
{
    if (H5Aexists(loc, name) <= 0)
        return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, v) >= 0;
    close_id(&a, H5Aclose);
    return ok ? 1 : -1;
}

/* Length of a 1-D dataset, or -1. */
static int64_t length_of(hid_t d)
{
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int rank = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    close_id(&sp, H5Sclose);
    return rank == 1 ? (int64_t)dims[0] : -1;
}

/* Reads a 1-D dataset of n non-negative integers (any integer type) into
 * dst as u64. HDF5 would convert anything: -1 to 0, 1.5 to 1, which is
 * another graph, so a float or a negative value is refused, naming the
 * dataset (and the index). */
static int read_u64_array(hid_t d, const char *file, const char *name, uint64_t *dst,
                          uint64_t n, char *msg)
{
    hid_t t = H5Dget_type(d);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int is_signed = c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
    close_id(&t, H5Tclose);
    if (c != H5T_INTEGER)
        return ember__err(msg, EMBER_EFORMAT, "%s: %s must hold integers", file, name);
    if (n && H5Dread(d, is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64, H5S_ALL,
                     H5S_ALL, H5P_DEFAULT, dst) < 0)
        return ember__err(msg, EMBER_ECORRUPT, "%s: cannot read %s", file, name);
    for (uint64_t i = 0; is_signed && i < n; i++)
        if ((int64_t)dst[i] < 0)
            return ember__err(msg, EMBER_EFORMAT, "%s: %s[%llu] = %lld is negative",
                              file, name, (unsigned long long)i, (long long)dst[i]);
    return EMBER_OK;
}

/* Opens /csr, reads the offsets (checked) and the ids, opens targets.
 * More vertices than opts allow (max_vertices, memory) is EMBER_ERANGE. */
static int open_csr(h5_source *s, hid_t fid, const ember_graph_opts *opts,
                    char *msg)
{
    ember_ctx *ctx = s->g->ctx;
    const char *f = s->file;
    if (H5Lexists(fid, "csr", H5P_DEFAULT) <= 0 ||
        H5Lexists(fid, "/csr/offsets", H5P_DEFAULT) <= 0 ||
        H5Lexists(fid, "/csr/targets", H5P_DEFAULT) <= 0)
        return h5err(msg, EMBER_EFORMAT, f,
                     "not an ember CSR file (needs /csr/offsets and /csr/targets)");
    hid_t od = H5Dopen2(fid, "/csr/offsets", H5P_DEFAULT);
    s->targets = H5Dopen2(fid, "/csr/targets", H5P_DEFAULT);
    int64_t no = od >= 0 ? length_of(od) : -1;
    int64_t nt = s->targets >= 0 ? length_of(s->targets) : -1;
    int rc = EMBER_OK;
    if (no < 1 || nt < 0)
        rc = h5err(msg, EMBER_EFORMAT, f, "/csr/offsets and /csr/targets must be 1-D, "
                   "offsets at least 1 long");
    uint64_t n = no > 0 ? (uint64_t)no - 1 : 0;
    if (!rc && n > ember__graph_max_vertices(opts))
        rc = ember__graph_too_big(msg, f, n, ember__graph_max_vertices(opts));
    if (!rc && !(s->off = ember__malloc(ctx, ember__mul(n + 1, 8))))
        rc = ember__err(msg, EMBER_ENOMEM, "%s: out of memory for offsets", f);
    if (!rc)
        rc = read_u64_array(od, f, "/csr/offsets", s->off, n + 1, msg);
    close_id(&od, H5Dclose);
    for (uint64_t v = 0; !rc && v < n; v++)
        if (s->off[v] > s->off[v + 1])
            rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/offsets decrease at %llu", f,
                            (unsigned long long)v);
    if (!rc && (s->off[0] != 0 || s->off[n] != (uint64_t)nt))
        rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/offsets must run from 0 to the "
                        "length of /csr/targets (%lld)", f, (long long)nt);
    s->g->n = n;
    return rc;
}

static int read_ids(h5_source *s, hid_t fid, char *msg)
{
    if (H5Lexists(fid, "/csr/ids", H5P_DEFAULT) <= 0)
        return EMBER_OK;
    ember_graph *g = s->g;
    hid_t d = H5Dopen2(fid, "/csr/ids", H5P_DEFAULT);
    int rc = EMBER_OK;
    if (d < 0 || length_of(d) != (int64_t)g->n)
        rc = h5err(msg, EMBER_EFORMAT, s->file, "/csr/ids must hold n ids");
    else if (!(g->ids = ember__malloc(g->ctx, ember__mul(g->n ? g->n : 1, 8))))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    else
        rc = read_u64_array(d, s->file, "/csr/ids", g->ids, g->n, msg);
    close_id(&d, H5Dclose);
    /* Labels number the ids in ascending order (graph.h): a repeated id
     * would give two vertices one name in every output. */
    for (uint64_t v = 1; !rc && v < g->n; v++)
        if (g->ids[v] <= g->ids[v - 1])
            rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/ids must be strictly "
                            "ascending (id %llu at %llu follows %llu)", s->file,
                            (unsigned long long)g->ids[v], (unsigned long long)v,
                            (unsigned long long)g->ids[v - 1]);
    return rc;
}

/* Narrow unsigned targets are read straight into u32; others are checked. */
static int target_kind(h5_source *s, char *msg)
{
    hid_t t = H5Dget_type(s->targets);
    int rc = EMBER_OK;
    if (t < 0 || H5Tget_class(t) != H5T_INTEGER)
        rc = h5err(msg, EMBER_EFORMAT, s->file, "/csr/targets must hold integers");
    else {
        s->is_signed = H5Tget_sign(t) == H5T_SGN_2;
        s->wide = s->is_signed || H5Tget_size(t) > 4;
    }
    close_id(&t, H5Tclose);
    ember_ctx *ctx = s->g->ctx;
    if (!rc) {
        s->src = ember__malloc(ctx, EDGES_PER_READ * sizeof *s->src);
        s->dst = ember__malloc(ctx, EDGES_PER_READ * sizeof *s->dst);
        if (s->wide)
            s->tmp = ember__malloc(ctx, EDGES_PER_READ * sizeof *s->tmp);
        if (!s->src || !s->dst || (s->wide && !s->tmp))
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    return rc;
}

/* ---- reading the stored pull layout (no rebuild) ------------------------------ */

#define PULL_PARTS 4
#define READ_PIECE ((uint64_t)8 << 20)

/* One array of the pull layout: where it goes and where it is in the file. */
typedef struct {
    const char *path;
    hid_t ftype;      /* the exact file type expected */
    hid_t mtype;
    uint64_t len;     /* elements expected */
    size_t size;      /* bytes per element */
    void *dst;
    haddr_t at;       /* byte offset in the file, or HADDR_UNDEF */
    uint64_t first;   /* the elements read: [first, first + count) of */
    uint64_t count;   /* the len (a rank's rows: a slice), into dst */
} pull_array;

/* Reads elements [first, first + count) of a 1-D dataset into dst. */
static int read_range(hid_t d, const pull_array *a)
{
    hsize_t start = a->first, count = a->count;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &count, NULL);
    int ok = fs >= 0 && ms >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0 &&
             H5Dread(d, a->mtype, ms, fs, H5P_DEFAULT, a->dst) >= 0;
    close_id(&fs, H5Sclose);
    close_id(&ms, H5Sclose);
    return ok ? 0 : -1;
}

/* Opens each array, checks its type and length, and notes where its bytes
 * lie when they lie contiguous, unfiltered and in the host's byte order;
 * the others are read here through HDF5 (their elements [first, first +
 * count) only). Under the HDF5 lock. */
static int locate_pull(hid_t fid, const char *file, pull_array *a, char *msg)
{
    int rc = EMBER_OK;
    for (int i = 0; !rc && i < PULL_PARTS; i++) {
        hid_t d = H5Dopen2(fid, a[i].path, H5P_DEFAULT), t = -1;
        if (d < 0 || (t = H5Dget_type(d)) < 0 || H5Tequal(t, a[i].ftype) <= 0 ||
            length_of(d) != (int64_t)a[i].len)
            rc = ember__err(msg, EMBER_EFORMAT, "%s: %s must hold %llu values of its type",
                            file, a[i].path, (unsigned long long)a[i].len);
        a[i].at = HADDR_UNDEF;
        if (!rc && a[i].count) {
            hid_t dcpl = H5Dget_create_plist(d);
            int plain = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
                        H5Pget_nfilters(dcpl) == 0 && H5Tequal(a[i].ftype, a[i].mtype) > 0;
            close_id(&dcpl, H5Pclose);
            if (plain)
                a[i].at = H5Dget_offset(d);
            if (a[i].at == HADDR_UNDEF && read_range(d, &a[i]) < 0)
                rc = h5err(msg, EMBER_ECORRUPT, file, "cannot read the pull layout");
        }
        close_id(&t, H5Tclose);
        close_id(&d, H5Dclose);
    }
    return rc;
}

/* Reads the located arrays with pread straight into place, pieces of
 * READ_PIECE bytes spread over the context's threads; the sources (array
 * 1) are checked against n while the piece is in cache (*bad_src). No
 * transparent huge pages are asked for (docs/design.md, "No transparent
 * huge pages for loaded graphs"): on a fresh VM their first touch cost 3x
 * that of 4 KiB pages. */
static int pread_pull(int64_t fid, const char *file, pull_array *a, int threads,
                      uint64_t nv, int *bad_src, char *msg)
{
    /* HDF5's own descriptor where it has one: the file its metadata came
     * from, whatever the name refers to by now */
    ember__h5_lock();
    int hfd = ember__h5_sec2_fd(fid, 1);
    ember__h5_unlock();
    int fd = hfd >= 0 ? hfd : open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ember__err(msg, EMBER_EIO, "%s: %s", file, strerror(errno));
    uint64_t first[PULL_PARTS + 1] = {0};
    for (int i = 0; i < PULL_PARTS; i++) {
        uint64_t bytes = a[i].at == HADDR_UNDEF ? 0 : a[i].count * a[i].size;
        first[i + 1] = first[i] + (bytes + READ_PIECE - 1) / READ_PIECE;
    }
    int err = 0, shrank = 0, range = 0; /* err: a failed read's errno */
    #pragma omp parallel for schedule(dynamic, 1) num_threads(threads) \
        reduction(|:shrank, range) reduction(max:err)
    for (uint64_t p = 0; p < first[PULL_PARTS]; p++) {
        int i = 0;
        while (p >= first[i + 1])
            i++;
        uint64_t bytes = a[i].count * a[i].size, lo = (p - first[i]) * READ_PIECE;
        uint64_t n = bytes - lo < READ_PIECE ? bytes - lo : READ_PIECE;
        uint64_t skip = a[i].first * a[i].size; /* a slice's start */
        char *to = (char *)a[i].dst + lo;
        const uint32_t *piece = (const uint32_t *)(void *)to;
        uint64_t count = n / a[i].size;
        long long got = ember__pread_full(fd, to, n, a[i].at + skip + lo);
        if (got < 0)
            err = errno > err ? errno : err;
        else if (got != (long long)n)
            shrank = 1; /* the file was checked whole before the load */
        else if (i == 1)
            for (uint64_t k = 0; k < count; k++)
                range |= piece[k] >= nv;
    }
    if (hfd < 0)
        close(fd);
    *bad_src = range;
    if (err)
        return ember__err(msg, EMBER_EIO, "%s: cannot read the pull layout: %s", file,
                          strerror(err));
    return shrank ? ember__graph_shrank(msg, file) : EMBER_OK;
}

/* ember_graph_load_in_place (ember/graph.h): the sources (src, located,
 * all m of them) mapped from the file under a read lease instead of read,
 * when the kernel grants one and the file, once it is held, is still the
 * sealed file this process verified. Then g->adj is the mapping and src is not
 * read (check_pull checks its values). Else nothing changes. */
static void map_sources(ember_graph *g, hid_t fid, const char *file, pull_array *src)
{
    if (src->at == HADDR_UNDEF || src->at % sizeof *g->adj || !src->count)
        return;
    ember__h5_lock();
    int hfd = ember__h5_sec2_fd(fid, 1);
    ember__h5_unlock();
    ember__graph_box *b = ember__graph_box_of(g);
    if (hfd < 0 || !ember__lease_map(&b->src, hfd, src->at, src->count * src->size))
        return;
    if (!ember__fsum_vouched(b->src.fd)) { /* changed before the lease held it */
        ember__lease_unmap(&b->src);
        return;
    }
    snprintf(b->file, sizeof b->file, "%s", file);
    ember__free(g->ctx, g->adj);
    g->adj = (uint32_t *)(uintptr_t)b->src.data; /* PROT_READ: a write faults */
    src->count = 0;
}

/* The checks that make the arrays a graph: offsets from 0 to m, never
 * decreasing; the sources held below n (unless pread_pull checked them);
 * out-degrees summing to m; perm a permutation. (The file is sealed, so
 * they guard against a writer's bug, not damage.) */
static int check_pull(ember_graph *g, const char *file, int sources, char *msg)
{
    const uint64_t n = g->n, m = g->m;
    const uint64_t held = sources ? g->offsets[g->row_hi] - g->edge_lo : 0;
    const uint64_t *off = g->offsets;
    const uint32_t *src = g->adj, *deg = g->out_degree, *perm = g->perm;
    int threads = g->ctx->threads;
    int bad_off = off[0] != 0 || off[n] != m, bad_src = 0;
    uint64_t sum = 0;
    #pragma omp parallel num_threads(threads)
    {
        #pragma omp for schedule(static) reduction(|:bad_off) reduction(+:sum) nowait
        for (uint64_t v = 0; v < n; v++) {
            bad_off |= off[v] > off[v + 1];
            sum += deg[v];
        }
        #pragma omp for schedule(static) reduction(|:bad_src)
        for (uint64_t e = 0; e < held; e++)
            bad_src |= src[e] >= n;
    }
    if (bad_off || bad_src || sum != m)
        return ember__err(msg, EMBER_EFORMAT, "%s: /csr/pull is inconsistent (%s)", file,
                          bad_off ? "offsets" : bad_src ? "a source is not a vertex"
                                                        : "out-degrees do not sum to m");
    unsigned char *seen = ember__calloc(g->ctx, n ? n : 1, 1);
    if (!seen)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = EMBER_OK;
    for (uint64_t v = 0; v < n && !rc; v++) {
        if (perm[v] >= n || seen[perm[v]])
            rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/pull/perm is not a permutation",
                            file);
        else
            seen[perm[v]] = 1;
    }
    ember__free(g->ctx, seen);
    return rc;
}

/* 1 when d is a 1-D dataset of len integers. */
static int integers(hid_t d, uint64_t len)
{
    hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    int ok = t >= 0 && H5Tget_class(t) == H5T_INTEGER && length_of(d) == (int64_t)len;
    close_id(&t, H5Tclose);
    return ok;
}

/* Elements first and last of the integer dataset d as u64 (0 for a
 * negative value), or -1. */
static int ends_of(hid_t d, uint64_t last, uint64_t out[2])
{
    hsize_t at[2] = {0, last};
    int64_t v[2] = {-1, -1};
    hsize_t two = 2;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &two, NULL);
    int ok = fs >= 0 && ms >= 0 &&
             H5Sselect_elements(fs, H5S_SELECT_SET, 2, at) >= 0 &&
             H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, v) >= 0;
    close_id(&fs, H5Sclose);
    close_id(&ms, H5Sclose);
    out[0] = v[0] < 0 ? 0 : (uint64_t)v[0];
    out[1] = v[1] < 0 ? 0 : (uint64_t)v[1];
    return ok ? 0 : -1;
}

/* The stored pull layout against the CSR beside it, as far as that costs
 * no more than the metadata and two offsets: /csr/offsets n + 1 integers
 * from 0 to m, /csr/targets m integers, /csr's m attribute m. A sealed
 * file was written whole by ember_graph_save_h5, and ember's writers
 * refuse to write into /csr (ember__h5_graph_guard); this catches files
 * whose /csr an older ember let a write replace (ember-gen blobs -o
 * g.h5:/csr/targets). Comparing the edges, or even the out-degrees with
 * the offsets' rows (10-15% of a load), is not paid. Under the HDF5
 * lock. */
#define CHANGED ": the graph was changed after it was saved (convert it again from " \
                "its source)"

static int match_csr(const ember_graph *g, hid_t fid, const char *path, char *msg)
{
    hid_t t = H5Dopen2(fid, "/csr/targets", H5P_DEFAULT);
    hid_t od = H5Dopen2(fid, "/csr/offsets", H5P_DEFAULT);
    hid_t grp = H5Gopen2(fid, "/csr", H5P_DEFAULT);
    uint64_t m = g->m, ends[2] = {0, 0};
    int rc = EMBER_OK;
    if (!integers(t, g->m))
        rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/targets must be %llu integers, as "
                        "/csr/pull says" CHANGED, path, (unsigned long long)g->m);
    else if (!integers(od, g->n + 1) || ends_of(od, g->n, ends) < 0 || ends[0] != 0 ||
             ends[1] != g->m)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/offsets must be %llu integers from "
                        "0 to %llu, as /csr/pull says" CHANGED, path,
                        (unsigned long long)g->n + 1, (unsigned long long)g->m);
    else if (grp < 0 || read_u64_attr(grp, "m", &m) < 0 || m != g->m)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: the m attribute of /csr is not "
                        "/csr/pull's (%llu)" CHANGED, path, (unsigned long long)g->m);
    close_id(&t, H5Dclose);
    close_id(&od, H5Dclose);
    close_id(&grp, H5Gclose);
    return rc;
}

/* A rank's own rows of the stored pull layout (opts->owned_rows on
 * several ranks), once its O(n) arrays are in g: the offsets are checked
 * (the slice is computed from them), the partitions are those
 * ember_graph_partition makes with opts->partitions at any rank count,
 * and the sources of the rows of this rank's block of them are read into
 * a new adj (a[1] is that slice; pread_pull checks it against n, or
 * check_pull does). Called without the HDF5 lock, returns without it. */
static int read_owned_rows(ember_graph *g, hid_t fid, const char *path, pull_array *a,
                           const ember_graph_opts *opts, int *bad_src, char *msg)
{
    ember_ctx *ctx = g->ctx;
    uint64_t *poff = NULL;
    size_t parts = 0, plo = 0, phi = 0;
    int rc = check_pull(g, path, 0, msg); /* offsets, degrees, perm */
    if (!rc)
        rc = ember_graph_partition(&poff, &parts, g, opts->partitions, msg);
    if (rc)
        return rc;
    ember__comm_owned(ctx, parts, &plo, &phi);
    g->row_lo = poff[plo];
    g->row_hi = poff[phi];
    g->edge_lo = g->offsets[g->row_lo];
    ember__free(ctx, poff);
    uint64_t held = g->offsets[g->row_hi] - g->edge_lo;
    if (!(g->adj = ember__malloc(ctx, ember__mul(held ? held : 1, 4))))
        return ember__err(msg, EMBER_ENOMEM, "%s: out of memory for %llu edges", path,
                          (unsigned long long)held);
    for (int i = 0; i < PULL_PARTS; i++)
        a[i].count = 0; /* read already */
    a[1].first = g->edge_lo;
    a[1].count = held;
    a[1].dst = g->adj;
    ember__h5_lock();
    rc = locate_pull(fid, path, a, msg);
    ember__h5_unlock();
    if (!rc)
        rc = pread_pull(fid, path, a, ctx->threads, g->n, bad_src, msg);
    return rc;
}

/* 1 when the file's /csr says every edge is stored both ways. */
static int stored_undirected(hid_t fid)
{
    uint64_t directed = 1;
    hid_t grp = H5Gopen2(fid, "/csr", H5P_DEFAULT);
    int got = grp >= 0 ? read_u64_attr(grp, "directed", &directed) : 0;
    close_id(&grp, H5Gclose);
    return got == 1 && directed == 0;
}

/* The stored pull layout, when the file has one and it is what opts ask
 * for: *used says whether it was read (else the caller builds as before).
 * It is also the undirected layout by degree order of a graph stored both
 * ways (/csr@directed = 0, which a sealed file with this layout holds as
 * its writer found it): a row's in-neighbours are then its neighbours, in
 * the order a build gives them. With opts->owned_rows on several ranks,
 * only this rank's rows of it (read_owned_rows). */
static int load_pull(ember_graph *g, hid_t fid, const char *path,
                     const ember_graph_opts *opts, int *used, char *msg)
{
    ember_ctx *ctx = g->ctx;
    ember_graph_opts want = EMBER__PULL_OPTS;
    *used = 0;
    int undirected = opts->undirected;
    if ((!undirected && opts->by_destination != want.by_destination) ||
        !opts->degree_order || opts->weighted ||
        H5Lexists(fid, "/csr/pull", H5P_DEFAULT) <= 0 ||
        (undirected && !stored_undirected(fid)))
        return EMBER_OK;
    hid_t od = H5Dopen2(fid, "/csr/offsets", H5P_DEFAULT);
    hid_t grp = H5Gopen2(fid, "/csr/pull", H5P_DEFAULT);
    int64_t no = od >= 0 ? length_of(od) : -1;
    uint64_t m = 0, version = 0;
    int rc = EMBER_OK;
    if (no < 1 || grp < 0 || read_u64_attr(grp, "m", &m) != 1 ||
        read_u64_attr(grp, "version", &version) != 1)
        rc = h5err(msg, EMBER_EFORMAT, path, "/csr/pull needs attributes m and version "
                   "and /csr/offsets");
    else if (version != 1)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/pull version %llu is unknown",
                        path, (unsigned long long)version);
    close_id(&od, H5Dclose);
    close_id(&grp, H5Gclose);
    uint64_t n = no > 0 ? (uint64_t)no - 1 : 0;
    if (!rc && n > ember__graph_max_vertices(opts))
        rc = ember__graph_too_big(msg, path, n, ember__graph_max_vertices(opts));
    if (rc || n == 0)
        return rc;
    g->n = n;
    g->m = m;
    g->row_hi = n; /* every row, unless this rank reads its own only */
    int rows = opts->owned_rows && ember__comm_size(ctx) > 1;
    g->offsets = ember__malloc(ctx, ember__mul(n + 1, 8));
    g->adj = rows ? NULL : ember__malloc(ctx, ember__mul(m ? m : 1, 4));
    g->out_degree = ember__malloc(ctx, ember__mul(n, 4));
    g->perm = ember__malloc(ctx, ember__mul(n, 4));
    if (!g->offsets || (!rows && !g->adj) || !g->out_degree || !g->perm)
        return ember__err(msg, EMBER_ENOMEM, "%s: out of memory for a graph of %llu "
                          "vertices and %llu edges", path, (unsigned long long)n,
                          (unsigned long long)m);
    pull_array a[PULL_PARTS] = {
        {"/csr/pull/offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, n + 1, 8, g->offsets, 0,
         0, n + 1},
        {"/csr/pull/sources", H5T_STD_U32LE, H5T_NATIVE_UINT32, m, 4, g->adj, 0, 0,
         rows ? 0 : m},
        {"/csr/pull/out_degree", H5T_STD_U32LE, H5T_NATIVE_UINT32, n, 4, g->out_degree, 0,
         0, n},
        {"/csr/pull/perm", H5T_STD_U32LE, H5T_NATIVE_UINT32, n, 4, g->perm, 0, 0, n}};
    rc = locate_pull(fid, path, a, msg);
    ember__h5_unlock(); /* the reads need no HDF5 */
    if (!rc && !rows && ember__graph_box_of(g)->in_place && ember__comm_size(ctx) == 1)
        map_sources(g, fid, path, &a[1]);
    int bad_src = 0;
    if (!rc)
        rc = pread_pull(fid, path, a, ctx->threads, n, &bad_src, msg);
    if (!rc && rows)
        rc = read_owned_rows(g, fid, path, a, opts, &bad_src, msg);
    if (!rc && bad_src)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: /csr/pull/sources holds a value that "
                        "is not a vertex", path);
    double t1 = ember__graph_now();
    if (!rc)
        rc = check_pull(g, path, a[1].at == HADDR_UNDEF || !a[1].count, msg);
    g->build_seconds = ember__graph_now() - t1;
    ember__h5_lock();
    if (!rc)
        rc = match_csr(g, fid, path, msg);
    g->by_destination = undirected ? opts->by_destination : 1;
    g->directed = !undirected;
    if (undirected && !opts->by_destination) { /* as a build: rows are the out-edges */
        ember__free(ctx, g->out_degree);
        g->out_degree = NULL;
    }
    *used = rc == EMBER_OK;
    return rc;
}

/* 1 when every edge (v, u) of the whole graph g has its reverse (u, v)
 * (rows ascending: a binary search a edge, on the team). */
static int is_symmetric(const ember_graph *g)
{
    const uint64_t *off = g->offsets;
    const uint32_t *adj = g->adj;
    int bad = 0;
    #pragma omp parallel for schedule(dynamic, 4096) num_threads(g->ctx->threads) reduction(|:bad)
    for (uint64_t v = 0; v < g->n; v++) {
        for (uint64_t e = off[v]; e < off[v + 1] && !bad; e++) {
            uint32_t u = adj[e];
            uint64_t a = off[u], z = off[u + 1];
            while (a < z) {
                uint64_t mid = a + (z - a) / 2;
                if (adj[mid] < v)
                    a = mid + 1;
                else
                    z = mid;
            }
            bad |= a == off[u + 1] || adj[a] != v;
        }
    }
    return !bad;
}

int ember__graph_load_h5(ember_graph *g, const char *path,
                         const ember_graph_opts *opts, char *msg)
{
    ember_ctx *ctx = g->ctx;
    h5_source s = {.g = g, .file = path, .targets = H5I_INVALID_HID};
    hid_t fid = H5I_INVALID_HID;
    uint64_t directed = 1;
    struct stat st;
    int sealed = 0, used = 0;
    double t0 = ember__graph_now();
    ember__h5_lock();
    int rc = open_file(path, H5F_ACC_RDONLY, &fid, &sealed, msg);
    if (!rc && H5Lexists(fid, "csr", H5P_DEFAULT) > 0) /* all it reads */
        rc = ember__h5_data_inside(fid, "/csr", path, msg);
    /* ember_graph_save_h5 wrote it: sealed, with the stored pull layout */
    int ours = !rc && sealed && H5Lexists(fid, "/csr/pull", H5P_DEFAULT) > 0;
    if (!rc && sealed)
        rc = load_pull(g, fid, path, opts, &used, msg);
    if (!rc && !used)
        rc = open_csr(&s, fid, opts, msg);
    if (!rc)
        rc = read_ids(&s, fid, msg);
    if (!rc && !used)
        rc = target_kind(&s, msg);
    if (!rc) {
        hid_t grp = H5Gopen2(fid, "csr", H5P_DEFAULT);
        if (grp >= 0 && read_u64_attr(grp, "directed", &directed) < 0)
            rc = h5err(msg, EMBER_EFORMAT, path, "bad 'directed' attribute");
        close_id(&grp, H5Gclose);
    }
    ember__h5_unlock();
    if (!rc && stat(path, &st) == 0)
        g->input_bytes = (uint64_t)st.st_size;
    g->read_seconds = ember__graph_now() - t0 - g->build_seconds;
    if (!rc && g->n == 0)
        rc = ember__err(msg, EMBER_EEMPTY, "%s: the graph has no vertices", path);
    /* A file's directed = 0 ("every edge stored both ways") is believed as
     * written in a sealed file with a stored pull layout (used or not):
     * only ember_graph_save_h5 writes one, with the directed its loader
     * found. In any other file (h5py can write anything there) it is
     * believed only when the edges agree: a program would otherwise print
     * "(each input edge both ways)" for a directed graph, and an MPI run
     * with owned rows would take rows by source for rows by destination.
     * That check, a binary search an edge (4.4 s for GAPBS's scale-20
     * graph on 2 threads), is not paid on every load of ember's files. */
    if (!rc && used && !directed)
        g->directed = 0;
    if (!rc && !used) {
        uint64_t m = s.off[g->n];
        size_t nb = (size_t)((m + EDGES_PER_READ - 1) / EDGES_PER_READ);
        rc = ember__graph_build(g, h5_block, &s, nb, 0, opts, msg);
        if (!rc && !opts->undirected && !directed && (ours || is_symmetric(g)))
            g->directed = 0;
    }
    ember__h5_lock();
    close_id(&s.targets, H5Dclose);
    close_id(&fid, H5Fclose);
    ember__h5_unlock();
    ember__free(ctx, s.off);
    ember__free(ctx, s.tmp);
    ember__free(ctx, s.src);
    ember__free(ctx, s.dst);
    return rc;
}

/* ---- writing ------------------------------------------------------------------ */

static hid_t native(ember_scalar k)
{
    return (hid_t)ember__h5_native(k);
}

static int put_attr(hid_t loc, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
    close_id(&a, H5Aclose);
    close_id(&sp, H5Sclose);
    return ok ? 0 : -1;
}

/* Variable-length UTF-8: h5py reads it as str, not bytes. */
static int put_string_attr(hid_t loc, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    int ok = t >= 0 && H5Tset_size(t, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(t, H5T_CSET_UTF8) >= 0 &&
             put_attr(loc, name, t, &value) == 0;
    close_id(&t, H5Tclose);
    return ok ? 0 : -1;
}

/* A new dataset at path (nothing may be there: the caller made room),
 * written whole; with out, also marked unfinished before a byte is
 * written (ember__h5_mark: the caller commits it). */
static int put_data(hid_t fid, const char *path, hid_t ftype, hid_t mtype,
                    const void *data, int rank, const hsize_t *dims, hid_t *out)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = -1, d = -1;
    /* no object time stamps, the groups on the way included: the same
     * data gives the same bytes */
    int ok = dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 &&
             ember__h5_parents(fid, path) == 0;
    if (ok)
        ok = (sp = H5Screate_simple(rank, dims, NULL)) >= 0 &&
             (d = H5Dcreate2(fid, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) >= 0;
    if (ok && out) {
        *out = d; /* the caller deletes it on failure */
        ok = ember__h5_mark(d) == 0;
    }
    hsize_t total = 1;
    for (int i = 0; i < rank; i++)
        total *= dims[i];
    if (ok && total)
        ok = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    close_id(&sp, H5Sclose);
    close_id(&dcpl, H5Pclose);
    if (!out)
        close_id(&d, H5Dclose);
    return ok ? 0 : -1;
}

/* Opens the edit's copy of an existing HDF5 file for writing, or creates
 * (truncates) its new file, with the user block for the checksum. *seal:
 * the file is to be sealed after closing (new, or it carried a valid
 * header). */
static int create_file(const ember__h5_edit *e, hid_t *fid, int *seal, char *msg)
{
    if (e->existing && e->st.st_size > 0)
        return open_file(e->work, H5F_ACC_RDWR, fid, seal, msg);
    *seal = 1;
    hid_t fapl = (hid_t)ember__h5_fapl(), fcpl = (hid_t)ember__h5_fcpl();
    *fid = fapl >= 0 && fcpl >= 0 ? H5Fcreate(e->work, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    return *fid < 0 ? ember__err(msg, EMBER_EIO, "%s: cannot create (%s)", e->file,
                                 errno ? strerror(errno) : "HDF5 error")
                    : EMBER_OK;
}

static int write_csr(const ember_graph *g, hid_t fid, const char *path, char *msg)
{
    hsize_t no = g->n + 1, nt = g->m, nn = g->n;
    hid_t grp = -1;
    errno = 0;
    int32_t directed = g->directed, version = 1;
    int ok = put_data(fid, "/csr/offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                      g->offsets, 1, &no, NULL) == 0 &&
             put_data(fid, "/csr/targets", H5T_STD_U32LE, H5T_NATIVE_UINT32,
                      g->adj, 1, &nt, NULL) == 0 &&
             (!g->ids || put_data(fid, "/csr/ids", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                                  g->ids, 1, &nn, NULL) == 0) &&
             (grp = H5Gopen2(fid, "/csr", H5P_DEFAULT)) >= 0 &&
             put_attr(grp, "n", H5T_NATIVE_UINT64, &g->n) == 0 &&
             put_attr(grp, "m", H5T_NATIVE_UINT64, &g->m) == 0 &&
             put_attr(grp, "directed", H5T_NATIVE_INT32, &directed) == 0 &&
             put_attr(grp, "version", H5T_NATIVE_INT32, &version) == 0 &&
             put_string_attr(grp, "format", "ember-csr") == 0;
    int e = errno; /* HDF5's own stack is gone with the datasets it closed */
    close_id(&grp, H5Gclose);
    return ok ? EMBER_OK
              : ember__err(msg, EMBER_EIO, "%s: cannot write the CSR (%s)", path,
                           e ? strerror(e) : "an HDF5 error");
}

/* The pull layout (graph_internal.h) as /csr/pull, ready to load. */
static int write_pull(const ember_graph *p, hid_t fid, const char *path, char *msg)
{
    hsize_t no = p->n + 1, nt = p->m, nn = p->n;
    hid_t grp = -1;
    uint64_t version = 1;
    int ok = put_data(fid, "/csr/pull/offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                      p->offsets, 1, &no, NULL) == 0 &&
             put_data(fid, "/csr/pull/sources", H5T_STD_U32LE, H5T_NATIVE_UINT32,
                      p->adj, 1, &nt, NULL) == 0 &&
             put_data(fid, "/csr/pull/out_degree", H5T_STD_U32LE, H5T_NATIVE_UINT32,
                      p->out_degree, 1, &nn, NULL) == 0 &&
             put_data(fid, "/csr/pull/perm", H5T_STD_U32LE, H5T_NATIVE_UINT32,
                      p->perm, 1, &nn, NULL) == 0 &&
             (grp = H5Gopen2(fid, "/csr/pull", H5P_DEFAULT)) >= 0 &&
             put_attr(grp, "m", H5T_NATIVE_UINT64, &p->m) == 0 &&
             put_attr(grp, "version", H5T_NATIVE_UINT64, &version) == 0 &&
             put_string_attr(grp, "layout", "in-edges, vertices by descending "
                             "out-degree (ties: ascending label)") == 0;
    close_id(&grp, H5Gclose);
    return ok ? EMBER_OK : h5err(msg, EMBER_EIO, path, "cannot write /csr/pull");
}

int ember_graph_save_h5(const ember_graph *g, const char *path, char *msg)
{
    ember__msg_clear(msg);
    if (!g || !path)
        return ember__err(msg, EMBER_EINVAL, "ember_graph_save_h5: NULL argument");
    if (g->by_destination || g->perm || !ember_graph_whole(g))
        return ember__err(msg, EMBER_EINVAL, "%s: only whole graphs by source in label "
                          "order are saved", path);
    hid_t fid = H5I_INVALID_HID;
    int seal = 0;
    ember_graph *pull = NULL;
    ember__h5_edit e = {.lock = -1};
    int rc = g->n ? ember__graph_pull_of(&pull, g, msg) : EMBER_OK;
    if (!rc)
        rc = ember__h5_edit_begin(&e, path, 1, msg);
    ember__h5_lock();
    if (!rc)
        rc = create_file(&e, &fid, &seal, msg);
    if (!rc)
        rc = write_csr(g, fid, path, msg);
    if (!rc && pull)
        rc = write_pull(pull, fid, path, msg);
    if (fid >= 0 && H5Fclose(fid) < 0 && !rc)
        rc = ember__h5_fail(msg, EMBER_EIO, path, "cannot close");
    ember__h5_unlock();
    ember_graph_free(&pull);
    if (!rc && seal)
        rc = ember__fsum_seal(e.work, msg);
    return ember__h5_edit_end(&e, rc, msg);
}

int ember__h5_attrs_fail;

/* The attributes, named as attrs_named checked. */
static int put_attrs(hid_t obj, const ember_h5_attr *attrs, size_t nattrs,
                     const char *spec, char *msg)
{
    if (ember__h5_attrs_fail)
        return h5err(msg, EMBER_EIO, spec, "cannot write an attribute (a test's failure)");
    for (size_t i = 0; i < nattrs; i++) {
        const ember_h5_attr *a = &attrs[i];
        const void *v = a->kind == EMBER_F64 ? (const void *)&a->f : (const void *)&a->i;
        hid_t t = a->kind == EMBER_F64 ? H5T_NATIVE_DOUBLE
                  : a->kind == EMBER_U64 ? H5T_NATIVE_UINT64
                                         : H5T_NATIVE_INT64;
        if (a->str ? put_string_attr(obj, a->name, a->str) : put_attr(obj, a->name, t, v))
            return h5err(msg, EMBER_EIO, spec, "cannot write an attribute");
    }
    return EMBER_OK;
}

/* EMBER_EINVAL unless every attribute has a name of at most
 * EMBER__H5_ATTR_NAME_MAX bytes, and none ember's mark
 * (which a finished write deletes, and which makes readers skip a
 * dataset). Checked before anything is written. */
static int attrs_named(const ember_h5_attr *attrs, size_t nattrs, const char *spec,
                       char *msg)
{
    for (size_t i = 0; i < nattrs; i++) {
        if (!attrs[i].name || !attrs[i].name[0])
            return ember__err(msg, EMBER_EINVAL, "%s: an attribute without a name", spec);
        if (strlen(attrs[i].name) > EMBER__H5_ATTR_NAME_MAX)
            return ember__err(msg, EMBER_EINVAL, "%s: an attribute name of %zu bytes "
                              "(at most %d)", spec, strlen(attrs[i].name),
                              EMBER__H5_ATTR_NAME_MAX);
        if (strcmp(attrs[i].name, EMBER__H5_MARK) == 0)
            return ember__err(msg, EMBER_EINVAL, "%s: the attribute name '%s' is "
                              "ember's own (it marks an unfinished write)", spec,
                              EMBER__H5_MARK);
    }
    return EMBER_OK;
}

/* What an edit wrote, to read back: the object at path and its attributes,
 * with, for an array (dims not NULL), its shape and every byte. */
typedef struct {
    const char *path;
    const ember_h5_attr *attrs;
    size_t nattrs;
    hid_t mtype;
    const void *data;
    int rank;
    const hsize_t *dims;
} written;

/* Whether the array of w, open as d, holds w's bytes (1), does not (0), or
 * cannot be read for want of memory (-1): read in blocks of at most 4 MiB
 * (whole rows, or parts of one wide row), so that the check never needs a
 * second copy of the data. */
static int same_data(hid_t d, const written *w)
{
    hsize_t got[2] = {0, 0};
    hid_t fs = H5Dget_space(d);
    int ok = fs >= 0 && H5Sget_simple_extent_ndims(fs) == w->rank &&
             H5Sget_simple_extent_dims(fs, got, NULL) == w->rank &&
             got[0] == w->dims[0] && (w->rank == 1 || got[1] == w->dims[1]);
    size_t rec = H5Tget_size(w->mtype);
    hsize_t rows = w->dims[0], cols = w->rank == 2 ? w->dims[1] : 1;
    hsize_t per = rec && rec < ((size_t)1 << 22) ? ((size_t)1 << 22) / rec : 1;
    hsize_t nc = cols < per ? cols : per, nr = nc ? per / nc : 0;
    unsigned char *buf = ok && rows && nc ? malloc(nr * nc * rec) : NULL;
    if (ok && rows && nc && !buf)
        ok = -1;
    for (hsize_t r = 0; ok > 0 && nc && r < rows; r += nr) {
        for (hsize_t c = 0; ok > 0 && c < cols; c += nc) {
            hsize_t n[2] = {rows - r < nr ? rows - r : nr, cols - c < nc ? cols - c : nc};
            hsize_t start[2] = {r, c};
            hid_t ms = H5Screate_simple(w->rank, n, NULL);
            ok = ms >= 0 &&
                 H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, n, NULL) >= 0 &&
                 H5Dread(d, w->mtype, ms, fs, H5P_DEFAULT, buf) >= 0;
            const unsigned char *at = (const unsigned char *)w->data + (r * cols + c) * rec;
            if (ok && n[1] == cols) /* whole rows: one run of bytes */
                ok = memcmp(buf, at, n[0] * cols * rec) == 0;
            for (hsize_t i = 0; ok && n[1] < cols && i < n[0]; i++)
                ok = memcmp(buf + i * n[1] * rec, at + i * cols * rec, n[1] * rec) == 0;
            close_id(&ms, H5Sclose);
        }
    }
    free(buf);
    close_id(&fs, H5Sclose);
    return ok;
}

/* Whether the closed copy shows what w says was written. A damaged file
 * that libhdf5 opens may take a write and then not show it (a link added
 * to a broken group): that change must fail, not be published as done.
 * Strings are only found, not read: a damaged file's global heap is not
 * walked again. 1, 0, or -1 as same_data. Under the HDF5 lock. */
static int reads_back(const char *file, const written *w)
{
    hid_t fapl = (hid_t)ember__h5_fapl();
    hid_t fid = fapl >= 0 ? H5Fopen(file, H5F_ACC_RDONLY, fapl) : -1;
    hid_t obj = fid >= 0 ? H5Oopen(fid, w->path[0] ? w->path : "/", H5P_DEFAULT) : -1;
    int ok = obj >= 0;
    for (size_t i = 0; ok && i < w->nattrs; i++) {
        const ember_h5_attr *a = &w->attrs[i];
        int later = 0; /* the same name again: the last one is written */
        for (size_t j = i + 1; j < w->nattrs && !later; j++)
            later = strcmp(a->name, w->attrs[j].name) == 0;
        if (later)
            continue;
        hid_t at = H5Aopen(obj, a->name, H5P_DEFAULT);
        hid_t t = at >= 0 ? H5Aget_type(at) : -1;
        union { double f; int64_t i; } v;
        ok = t >= 0 && (a->str ? H5Tget_class(t) == H5T_STRING
                        : a->kind == EMBER_F64
                            ? H5Aread(at, H5T_NATIVE_DOUBLE, &v.f) >= 0 &&
                                  memcmp(&v.f, &a->f, sizeof v.f) == 0
                            : H5Aread(at, a->kind == EMBER_U64 ? H5T_NATIVE_UINT64
                                                                : H5T_NATIVE_INT64,
                                      &v.i) >= 0 && v.i == a->i);
        close_id(&t, H5Tclose);
        close_id(&at, H5Aclose);
    }
    if (ok && w->dims)
        ok = same_data(obj, w);
    close_id(&obj, H5Oclose);
    close_id(&fid, H5Fclose);
    close_id(&fapl, H5Pclose);
    return ok;
}

/* Closes fid, if open, reads back what was written (w) and releases the
 * HDF5 lock taken before it was opened; then seals a sealed file again,
 * even when adding to a scratch file (changed in place) failed, so that
 * it stays verifiable, and ends the edit (the copy renamed over the file
 * when rc is still 0). rc: the status so far; returns the first failure. */
static int close_and_seal(ember__h5_edit *e, hid_t fid, const written *w, int seal,
                          int rc, const char *spec, char *msg)
{
    int opened = fid >= 0;
    if (fid >= 0 && H5Fclose(fid) < 0 && !rc)
        rc = ember__h5_fail(msg, EMBER_EIO, e->file, "cannot close");
    int shown = rc ? 1 : reads_back(e->work, w);
    if (shown < 0)
        rc = ember__err(msg, EMBER_ENOMEM, "%s: out of memory reading it back", spec);
    else if (!shown)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: written, but it does not read back "
                        "as written: the file is damaged%s", spec,
                        ember__h5_edit_in_place(e) ? "" : "; nothing changed");
    ember__h5_unlock();
    if (opened && seal && (!rc || ember__h5_edit_in_place(e))) {
        int rs = ember__fsum_seal(e->work, rc ? NULL : msg);
        rc = rc ? rc : rs;
    }
    return ember__h5_edit_end(e, rc, msg);
}

int ember_h5_write_attrs(const char *spec, const ember_h5_attr *attrs,
                         size_t nattrs, char *msg)
{
    char file[4096], path[1024];
    ember__msg_clear(msg);
    if (!spec || (nattrs && !attrs))
        return ember__err(msg, EMBER_EINVAL, "ember_h5_write_attrs: bad argument");
    int rc = ember__h5_split_spec(spec, file, sizeof file, path, sizeof path, msg);
    if (rc || (rc = attrs_named(attrs, nattrs, spec, msg)))
        return rc;
    hid_t fid = H5I_INVALID_HID, obj = H5I_INVALID_HID;
    int seal = 0;
    ember__h5_edit e;
    if ((rc = ember__h5_edit_begin(&e, file, 0, msg)))
        return rc;
    ember__h5_lock();
    rc = e.existing ? open_file(e.work, H5F_ACC_RDWR, &fid, &seal, msg)
                    : ember__err(msg, EMBER_ENOTFOUND, "%s: no such file", file);
    if (!rc && (obj = H5Oopen(fid, path[0] ? path : "/", H5P_DEFAULT)) < 0)
        rc = h5err(msg, EMBER_ENOTFOUND, spec, "no such object");
    if (!rc) /* a graph's n, m, directed are its loader's to trust */
        rc = ember__h5_graph_guard(fid, path, spec, msg);
    if (!rc)
        rc = put_attrs(obj, attrs, nattrs, spec, msg);
    close_id(&obj, H5Oclose);
    written w = {.path = path, .attrs = attrs, .nattrs = nattrs};
    return close_and_seal(&e, fid, &w, seal, rc, spec, msg);
}

int ember_h5_write_array(const char *spec, ember_scalar kind, const void *data,
                         int rank, const uint64_t *dims,
                         const ember_h5_attr *attrs, size_t nattrs,
                         int truncate, char *msg)
{
    char file[4096], path[1024];
    ember__msg_clear(msg);
    if (!spec || (rank != 1 && rank != 2) || !dims || native(kind) < 0)
        return ember__err(msg, EMBER_EINVAL, "ember_h5_write_array: bad argument");
    int rc = ember__h5_split_spec(spec, file, sizeof file, path, sizeof path, msg);
    if (rc)
        return rc;
    if (!path[0])
        return ember__err(msg, EMBER_EINVAL, "%s: name a dataset as file.h5:/path", spec);
    if ((rc = ember__h5_check_path(spec, path, msg)) ||
        (rc = attrs_named(attrs, nattrs, spec, msg)))
        return rc;
    hsize_t d[2] = {dims[0], rank == 2 ? dims[1] : 1};
    hid_t fid = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    int seal = 0, replace = 0;
    char tmp[1024 + 32];
    if (ember__h5_tmp_path(path, tmp, sizeof tmp))
        return ember__err(msg, EMBER_EINVAL, "%s: path too long", spec);
    ember__h5_edit e;
    if ((rc = ember__h5_edit_begin(&e, file, truncate, msg)))
        return rc;
    ember__h5_lock();
    rc = create_file(&e, &fid, &seal, msg);
    if (!rc)
        rc = ember__h5_graph_guard(fid, path, spec, msg);
    /* an existing dataset is replaced, once the new one is whole (a failed
     * write leaves it); a group or anything else is not */
    if (!rc)
        rc = ember__h5_slot(fid, path, 1, &replace, spec, msg);
    if (!rc)
        rc = ember__h5_tmp_clear(fid, tmp, spec, msg);
    errno = 0; /* what the write's failure recorded, if anything (ENOSPC) */
    if (!rc && put_data(fid, tmp, native(kind), native(kind), data, rank, d, &ds))
        rc = ember__err(msg, EMBER_EIO, "%s: cannot write the dataset%s%s", spec,
                        errno ? ": " : "", errno ? strerror(errno) : "");
    if (!rc)
        rc = put_attrs(ds, attrs, nattrs, spec, msg);
    if (!rc)
        rc = ember__h5_commit(fid, ds, tmp, path, replace, spec, msg);
    else if (ds >= 0)
        H5Ldelete(fid, tmp, H5P_DEFAULT);
    close_id(&ds, H5Dclose);
    written w = {path, attrs, nattrs, native(kind), data, rank, d};
    return close_and_seal(&e, fid, &w, seal, rc, spec, msg);
}
