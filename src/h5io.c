/* h5io.c: ember's one door to HDF5: the process-wide HDF5 lock, "file:/path"
 * specs, the mapping between ember record types and HDF5 types, whole-dataset
 * reads (behind ember_read_h5, save.c) and the streaming writer behind
 * ember_save_h5 (save.c) and checkpoint files (ckptfile.c, which passes
 * its own open file and writes several datasets into it).
 *
 * The file layer (docs/design.md): records, types and offsets, never a
 * dataset. It calls nothing of the engine but the allocator.
 *
 * Invariants: every HDF5 call happens between ember__h5_lock() and
 * ember__h5_unlock(); every hid_t a function opens it closes on every path;
 * every buffer comes from the context's allocator. Records on disk have
 * exactly their in-memory layout: a scalar type is a plain native dataset, a
 * pair or struct a compound of native members (array fields as HDF5 arrays)
 * at the C offsets, so h5py sees a structured array and reading back needs
 * no conversion. Reading a foreign file maps its type onto the nearest ember
 * type (read_kind; a 2-D n x d array of numbers becomes n records of one
 * array field "x") and lets HDF5 convert.
 *
 * A file that carries ember's whole-file checksum header (filesum.c) is
 * checked against it before HDF5 opens it, for reading or for adding a
 * dataset, and the writer seals it again after adding; files without the
 * header are used as they are. ember__h5_fcpl gives the user block that
 * checkpoint and graph files are created with.
 */
#include "internal.h"

#include <hdf5.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define H5IO_PATH_MAX 1024          /* bytes of a dataset path, NUL included */
#define H5IO_CHUNK_BYTES (1u << 20) /* target bytes per chunk */
#define H5IO_MAX_COUNT 65536        /* longest array field (type.c agrees) */
#define H5IO_TMP_PREFIX ".ember-unfinished." /* ember__h5_tmp_path */

/* ---- the lock ------------------------------------------------------------ */

/* The one piece of process-wide state in ember, and justified: serial HDF5
 * keeps global state and is not thread-safe, so two contexts in two threads
 * must still take turns. The mutex is recursive so ckptfile.c can hold it
 * across its own HDF5 calls and still call the writer below. While it is
 * held (outermost level), HDF5's automatic error printing is off, so
 * failures reach the caller as ember messages rather than stderr noise; the
 * program's own setting, as it was when the lock was taken, is restored on
 * the way out (so a program changes it outside the lock). */
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t h5_mutex;
static int h5_depth;          /* nesting of the recursive lock */
static int h5_saved_ok;       /* the program's handler was read */
static H5E_auto2_t h5_saved_fn;
static void *h5_saved_data;

static void h5_init(void)
{
    /* HDF5 1.10's exit handler crashes when an H5Fclose failed earlier (a
     * full disk during a checkpoint): HDFFV-11052, fixed in 1.14.1. ember
     * closes every id it opens, so the handler has nothing to do for us. */
    H5dont_atexit();
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&h5_mutex, &attr);
    pthread_mutexattr_destroy(&attr);
}

void ember__h5_lock(void)
{
    pthread_once(&h5_once, h5_init);
    pthread_mutex_lock(&h5_mutex);
    if (h5_depth++ == 0) {
        h5_saved_ok =
            H5Eget_auto2(H5E_DEFAULT, &h5_saved_fn, &h5_saved_data) >= 0;
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    }
}

void ember__h5_unlock(void)
{
    if (--h5_depth == 0 && h5_saved_ok)
        H5Eset_auto2(H5E_DEFAULT, h5_saved_fn, h5_saved_data);
    pthread_mutex_unlock(&h5_mutex);
}

/* ---- HDF5 error messages ------------------------------------------------- */

typedef struct {
    char inner[160]; /* where the error was detected: the cause */
    char outer[160]; /* the API function's summary */
    int err;         /* an errno HDF5 recorded ("errno = 28"), or 0 */
} why_buf;

/* HDF5's descriptions may hold raw newlines (its file-driver errors do),
 * and a message is one line. */
static void flatten(char *buf)
{
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

static void one_line(char *buf, size_t size, const char *text)
{
    snprintf(buf, size, "%s", text);
    flatten(buf);
}

static herr_t why_collect(unsigned n, const H5E_error2_t *e, void *data)
{
    why_buf *w = data;
    const char *text = e->desc && e->desc[0] ? e->desc : e->func_name;
    const char *en = e->desc ? strstr(e->desc, "errno = ") : NULL;
    if (en && !w->err)
        w->err = atoi(en + 8);
    char *slot = n == 0 ? w->inner : w->outer;
    if (en) {
        /* the driver's long "time = ..., filename = ..., errno = 28, ..."
         * is replaced by strerror below: keep the words before it */
        const char *colon = strchr(e->desc, ':');
        snprintf(slot, sizeof w->inner, "%.*s",
                 (int)(colon ? colon - e->desc : 0), e->desc);
        flatten(slot);
        return 0;
    }
    one_line(slot, sizeof w->inner, text);
    return 0;
}

/* "summary: cause" from HDF5's error stack: the API function alone says
 * only "unable to read", the innermost entry alone can be cryptic. An
 * errno HDF5 recorded comes first, as strerror: "No space left on device"
 * is the cause a user needs. Always one line. */
static const char *h5_why(char *buf, size_t size)
{
    why_buf w = {"", "", 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, why_collect, &w);
    const char *sys = w.err > 0 ? strerror(w.err) : NULL;
    if (sys && w.outer[0] && w.inner[0])
        snprintf(buf, size, "%s; HDF5: %s: %s", sys, w.outer, w.inner);
    else if (sys && (w.outer[0] || w.inner[0]))
        snprintf(buf, size, "%s; HDF5: %s", sys, w.outer[0] ? w.outer : w.inner);
    else if (sys)
        snprintf(buf, size, "%s", sys);
    else if (!w.inner[0])
        snprintf(buf, size, "HDF5: no detail");
    else if (!w.outer[0])
        snprintf(buf, size, "HDF5: %s", w.inner);
    else
        snprintf(buf, size, "HDF5: %s: %s", w.outer, w.inner);
    return buf;
}

/* Fills msg with "where: what (cause)" and returns status. Call it
 * before closing anything: every HDF5 call clears the error stack. */
static int h5_fail(char *msg, int status, const char *where, const char *what)
{
    char why[400];
    return ember__err(msg, status, "%s: %s (%s)", where, what,
                      h5_why(why, sizeof why));
}

int ember__h5_fail(char *msg, int status, const char *where, const char *what)
{
    return h5_fail(msg, status, where, what);
}

/* ---- specs ----------------------------------------------------------------- */

/* The last ':' followed by '/': file names may hold colons, paths start
 * with '/'. */
static const char *spec_colon(const char *spec)
{
    const char *hit = NULL;
    for (const char *c = strchr(spec, ':'); c; c = strchr(c + 1, ':'))
        if (c[1] == '/')
            hit = c;
    return hit;
}

int ember__h5_split_spec(const char *spec, char *file, size_t file_size,
                         char *path, size_t path_size, char *msg)
{
    ember__msg_clear(msg);
    if (!spec || !file || !path || !file_size || !path_size)
        return ember__err(msg, EMBER_EINVAL, "h5 spec: NULL argument");
    const char *colon = spec_colon(spec);
    size_t flen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *p = colon ? colon + 1 : "";
    if (flen == 0)
        return ember__err(msg, EMBER_EINVAL,
                          "'%s': no file name (expected file.h5:/path)", spec);
    /* "f.h5:" is a dataset path left out, not a file named "f.h5:" */
    if (!colon && spec[flen - 1] == ':')
        return ember__err(msg, EMBER_EINVAL,
                          "'%s': empty dataset path after ':' (expected "
                          "%.*s:/path, or the file name alone)",
                          spec, (int)(flen - 1), spec);
    if (flen >= file_size)
        return ember__err(msg, EMBER_EINVAL,
                          "'%s': file name longer than %zu bytes", spec,
                          file_size - 1);
    if (strlen(p) >= path_size)
        return ember__err(msg, EMBER_EINVAL,
                          "'%s': dataset path longer than %zu bytes", spec,
                          path_size - 1);
    memcpy(file, spec, flen);
    file[flen] = '\0';
    memcpy(path, p, strlen(p) + 1);
    return EMBER_OK;
}

/* ---- ember type -> HDF5 type ------------------------------------------- */

static hid_t native_of(ember_scalar k)
{
    switch (k) {
    case EMBER_I32: return H5T_NATIVE_INT32;
    case EMBER_I64: return H5T_NATIVE_INT64;
    case EMBER_U64: return H5T_NATIVE_UINT64;
    case EMBER_F32: return H5T_NATIVE_FLOAT;
    case EMBER_F64: return H5T_NATIVE_DOUBLE;
    }
    return H5I_INVALID_HID;
}

/* A copy the caller closes: the scalar, or a 1-D array of it. */
static hid_t field_to_h5(const ember_field *f)
{
    hid_t base = native_of(f->kind);
    if (base < 0)
        return H5I_INVALID_HID;
    if (f->count <= 1)
        return H5Tcopy(base);
    hsize_t dim = f->count;
    return H5Tarray_create2(base, 1, &dim);
}

/* The memory type of t's records, also used as the file type. A scalar
 * type stays a plain number so h5py reads a plain array. */
static hid_t type_to_h5(const ember_type *t)
{
    if (t->cls == EMBER_TYPE_SCALAR)
        return field_to_h5(&t->field[0]);
    hid_t c = H5Tcreate(H5T_COMPOUND, t->size);
    for (uint32_t i = 0; c >= 0 && i < t->nfields; i++) {
        const ember_field *f = &t->field[i];
        hid_t ft = field_to_h5(f);
        herr_t rc = ft < 0 ? -1 : H5Tinsert(c, f->name, f->offset, ft);
        if (ft >= 0)
            H5Tclose(ft);
        if (rc < 0) {
            H5Tclose(c);
            c = H5I_INVALID_HID;
        }
    }
    return c;
}

/* ---- HDF5 type -> ember type ------------------------------------------- */

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_TIME: return "time";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* The ember scalar that holds every value of an HDF5 number exactly (or, for
 * floats wider than double, as nearly as a double can): signed up to 32 bits
 * -> i32, signed 64 -> i64, unsigned 8/16 -> i32, unsigned 32 -> i64,
 * unsigned 64 -> u64; float up to 32 bits -> f32, wider -> f64. Returns 0
 * for anything else. */
static int read_kind(hid_t t, ember_scalar *kind)
{
    size_t size = H5Tget_size(t);
    H5T_class_t c = H5Tget_class(t);
    if (c == H5T_FLOAT && size > 0) {
        *kind = size <= 4 ? EMBER_F32 : EMBER_F64;
        return 1;
    }
    if (c != H5T_INTEGER || size == 0 || size > 8)
        return 0;
    if (H5Tget_sign(t) == H5T_SGN_NONE)
        *kind = size <= 2 ? EMBER_I32 : size <= 4 ? EMBER_I64 : EMBER_U64;
    else
        *kind = size <= 4 ? EMBER_I32 : EMBER_I64;
    return 1;
}

/* A compound member: a number, or a 1-D array of numbers. */
static int read_field(hid_t t, ember_field *f)
{
    f->count = 1;
    if (H5Tget_class(t) != H5T_ARRAY)
        return read_kind(t, &f->kind);
    hsize_t dim = 0;
    if (H5Tget_array_ndims(t) != 1 || H5Tget_array_dims2(t, &dim) < 0 ||
        dim == 0 || dim > H5IO_MAX_COUNT)
        return 0;
    hid_t base = H5Tget_super(t);
    int ok = base >= 0 && read_kind(base, &f->kind);
    if (base >= 0)
        H5Tclose(base);
    f->count = (uint32_t)dim;
    return ok;
}

/* Member i of compound t into f; an ETYPE message when it has no ember
 * equivalent. */
static int read_member(hid_t t, unsigned i, ember_field *f, const char *where,
                       char *msg)
{
    char *name = H5Tget_member_name(t, i);
    hid_t mt = H5Tget_member_type(t, i);
    int rc = EMBER_OK;
    if (!name || mt < 0)
        rc = h5_fail(msg, EMBER_EHDF5, where, "cannot inspect the compound");
    else if (strlen(name) >= EMBER_NAME_SIZE)
        rc = ember__err(msg, EMBER_ETYPE,
                        "%s: member name '%s' is longer than %d bytes", where,
                        name, EMBER_NAME_SIZE - 1);
    else if (!read_field(mt, f))
        rc = ember__err(msg, EMBER_ETYPE,
                        "%s: member '%s' is HDF5 class %s; only numbers and "
                        "1-D arrays of numbers are supported",
                        where, name, class_name(H5Tget_class(mt)));
    else
        snprintf(f->name, sizeof f->name, "%s", name);
    if (mt >= 0)
        H5Tclose(mt);
    H5free_memory(name);
    return rc;
}

/* A compound becomes a struct, or a pair when its members are exactly the
 * scalars "key" and "value". */
static int read_compound(hid_t t, ember_type *out, const char *where,
                         char *msg)
{
    int n = H5Tget_nmembers(t);
    if (n < 1 || n > EMBER_MAX_FIELDS)
        return ember__err(msg, EMBER_ETYPE,
                          "%s: compound of %d members (1 to %d supported)",
                          where, n, EMBER_MAX_FIELDS);
    ember_field f[EMBER_MAX_FIELDS];
    memset(f, 0, sizeof f);
    for (int i = 0; i < n; i++) {
        int rc = read_member(t, (unsigned)i, &f[i], where, msg);
        if (rc)
            return rc;
    }
    char why[EMBER_MSG_SIZE];
    if (ember_type_struct(out, f, (size_t)n, why) != EMBER_OK)
        return ember__err(msg, EMBER_ETYPE, "%s: %s", where, why);
    if (n == 2 && !strcmp(f[0].name, "key") && !strcmp(f[1].name, "value") &&
        f[0].count == 1 && f[1].count == 1)
        out->cls = EMBER_TYPE_PAIR;
    return EMBER_OK;
}

/* How to read one dataset: its ember type, record count and memory type. */
typedef struct {
    ember_type type;
    size_t n;
    hid_t mem; /* closed by the caller */
} read_plan;

/* A 2-D n x d array of numbers: n records of one array field "x" of d
 * numbers, laid out as kind[d], read straight as n*d numbers. */
static int plan_matrix(read_plan *p, hid_t ftype, const hsize_t dims[2],
                       const char *where, char *msg)
{
    ember_field x = {.name = "x", .count = (uint32_t)dims[1]};
    if (!read_kind(ftype, &x.kind))
        return ember__err(msg, EMBER_ETYPE,
                          "%s: 2-D dataset of HDF5 class %s; only numbers are "
                          "supported",
                          where, class_name(H5Tget_class(ftype)));
    if (dims[1] == 0 || dims[1] > H5IO_MAX_COUNT)
        return ember__err(msg, EMBER_ETYPE,
                          "%s: rows of %llu numbers (1 to %d supported)", where,
                          (unsigned long long)dims[1], H5IO_MAX_COUNT);
    char why[EMBER_MSG_SIZE];
    if (ember_type_struct(&p->type, &x, 1, why) != EMBER_OK)
        return ember__err(msg, EMBER_ETYPE, "%s: %s", where, why);
    p->n = (size_t)dims[0];
    p->mem = H5Tcopy(native_of(x.kind));
    return p->mem < 0 ? h5_fail(msg, EMBER_EHDF5, where, "type copy failed")
                      : EMBER_OK;
}

/* A 0-D or 1-D dataset of numbers or compounds. */
static int plan_vector(read_plan *p, hid_t ftype, hssize_t npoints,
                       const char *where, char *msg)
{
    H5T_class_t c = H5Tget_class(ftype);
    ember_scalar kind;
    if (c == H5T_COMPOUND) {
        int rc = read_compound(ftype, &p->type, where, msg);
        if (rc)
            return rc;
    } else if (read_kind(ftype, &kind)) {
        p->type = ember_type_scalar(kind);
    } else {
        return ember__err(msg, EMBER_ETYPE,
                          "%s: HDF5 class %s is not supported (numbers and "
                          "compounds of numbers are)",
                          where, class_name(c));
    }
    p->n = (size_t)npoints;
    p->mem = type_to_h5(&p->type);
    return p->mem < 0 ? h5_fail(msg, EMBER_EHDF5, where, "type build failed")
                      : EMBER_OK;
}

static int plan_read(hid_t dset, read_plan *p, const char *where, char *msg)
{
    hid_t space = H5Dget_space(dset), ftype = H5Dget_type(dset);
    hsize_t dims[2] = {0, 0};
    int rank = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hssize_t npoints = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    int rc;
    if (ftype < 0 || rank < 0 || npoints < 0)
        rc = h5_fail(msg, EMBER_ECORRUPT, where, "cannot read the header");
    else if (rank > 2)
        rc = ember__err(msg, EMBER_ETYPE,
                        "%s: %d-dimensional dataset (1 or 2 supported)", where,
                        rank);
    else if (rank == 2 && H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        rc = h5_fail(msg, EMBER_ECORRUPT, where, "cannot read the shape");
    else if (rank == 2)
        rc = plan_matrix(p, ftype, dims, where, msg);
    else
        rc = plan_vector(p, ftype, npoints, where, msg);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* ---- files and paths --------------------------------------------------- */

static htri_t is_hdf5(const char *file, hid_t fapl)
{
#if H5_VERSION_GE(1, 12, 0)
    return H5Fis_accessible(file, fapl);
#else
    (void)fapl;
    return H5Fis_hdf5(file);
#endif
}

/* EMBER_OK when file exists and is HDF5, else an error naming it. */
static int probe_file(const char *file, hid_t fapl, char *msg)
{
    struct stat st;
    if (stat(file, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? ember__err(msg, EMBER_ENOTFOUND, "%s: no such file", file)
                   : ember__err(msg, EMBER_EIO, "%s: %s", file,
                                strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ember__err(msg, EMBER_EFORMAT, "%s: not a regular file", file);
    htri_t yes = is_hdf5(file, fapl);
    if (yes < 0)
        return h5_fail(msg, EMBER_EIO, file, "cannot read");
    if (yes == 0)
        return ember__err(msg, EMBER_EFORMAT, "%s: not an HDF5 file", file);
    return EMBER_OK;
}

/* 1 when every link along path exists, 0 or negative when one does not.
 * H5Lexists fails instead of answering 0 when a group on the way is
 * missing, so the path is checked one prefix at a time. */
static htri_t path_exists(hid_t loc, const char *path)
{
    char buf[H5IO_PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    htri_t ok = 1;
    for (size_t i = 1; ok > 0 && i <= len; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        ok = H5Lexists(loc, buf, H5P_DEFAULT);
        buf[i] = c;
    }
    return ok;
}

int ember__h5_check_path(const char *where, const char *path, char *msg)
{
    if (path[0] != '/')
        return ember__err(msg, EMBER_EINVAL,
                          "%s: a dataset path starts with '/'", where);
    if (!path[1])
        return ember__err(msg, EMBER_EINVAL, "%s: the root group is not a "
                          "dataset; name one (file.h5:/name)", where);
    if (strstr(path, "//") || path[strlen(path) - 1] == '/')
        return ember__err(msg, EMBER_EINVAL,
                          "%s: an empty name in the dataset path", where);
    /* a dataset under such a name would be taken for a killed write's
     * leftover: refused by readers, deleted by the next save beside it */
    for (const char *c = path; c; c = strchr(c + 1, '/'))
        if (strncmp(c + 1, H5IO_TMP_PREFIX, strlen(H5IO_TMP_PREFIX)) == 0)
            return ember__err(msg, EMBER_EINVAL,
                              "%s: names starting with '%s' are reserved for "
                              "ember's unfinished writes; choose another",
                              where, H5IO_TMP_PREFIX);
    return EMBER_OK;
}

/* 1 when a and b are one object of one file, 0 when not, -1 when HDF5
 * cannot say. */
static int same_object(hid_t a, hid_t b)
{
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t x, y;
    int cmp = 1;
    if (H5Oget_info3(a, &x, H5O_INFO_BASIC) < 0 ||
        H5Oget_info3(b, &y, H5O_INFO_BASIC) < 0 ||
        H5Otoken_cmp(a, &x.token, &y.token, &cmp) < 0)
        return -1;
    return x.fileno == y.fileno && cmp == 0;
#else
    H5O_info_t x, y;
    if (H5Oget_info2(a, &x, H5O_INFO_BASIC) < 0 ||
        H5Oget_info2(b, &y, H5O_INFO_BASIC) < 0)
        return -1;
    return x.fileno == y.fileno && x.addr == y.addr;
#endif
}

/* The file number HDF5 gives the file holding obj, or 0 when it cannot
 * say. */
static unsigned long fileno_of(hid_t obj)
{
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t x;
    return H5Oget_info3(obj, &x, H5O_INFO_BASIC) < 0 ? 0 : x.fileno;
#else
    H5O_info_t x;
    return H5Oget_info2(obj, &x, H5O_INFO_BASIC) < 0 ? 0 : x.fileno;
#endif
}

/* The data of an input must lie in the file that was checked and
 * fingerprinted: an external link, external raw storage or a virtual
 * dataset reads other files, which nobody hashed (a run could resume with
 * their content changed, and exit 0). */
typedef struct {
    unsigned char key[16];     /* the object's address (1.10) or token */
} obj_key;

typedef struct {
    unsigned long home;        /* the input's file number */
    int hops;                  /* soft links to groups followed */
    int depth;                 /* groups entered */
    size_t links;              /* links seen so far */
    obj_key *seen;             /* groups entered, each once */
    size_t nseen, capseen;
    const char *base;          /* the path of the group being walked */
    const char *where;
    char *msg;
    int rc;
} inside_walk;

/* How far a walk goes. Each group is entered once, however many links
 * lead to it (a cycle of hard links is valid HDF5), and a walk stops past
 * INSIDE_MAX_LINKS links or INSIDE_MAX_DEPTH groups deep: a damaged
 * file's links may lead back into their own groups whatever its
 * reference counts say. H5Lvisit, which walked them before, trusts those
 * counts: on a fuzzed 10 KB file it built ever longer paths for 180 s. */
#define INSIDE_MAX_LINKS 10000
#define INSIDE_MAX_DEPTH 64

static int key_of(hid_t obj, obj_key *k)
{
    memset(k, 0, sizeof *k);
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t x;
    if (H5Oget_info3(obj, &x, H5O_INFO_BASIC) < 0)
        return -1;
    memcpy(k->key, &x.token, sizeof x.token < sizeof k->key ? sizeof x.token : sizeof k->key);
#else
    H5O_info_t x;
    if (H5Oget_info2(obj, &x, H5O_INFO_BASIC) < 0)
        return -1;
    memcpy(k->key, &x.addr, sizeof x.addr);
#endif
    return 0;
}

static int cannot_walk(inside_walk *w, const char *path)
{
    w->rc = ember__err(w->msg, EMBER_EHDF5, "%s: cannot walk the links under %s",
                       w->where, path);
    return -1;
}

/* 1 when the group was entered before (else it is noted), -1 on error. */
static int seen_before(inside_walk *w, hid_t group)
{
    obj_key k;
    if (key_of(group, &k) < 0)
        return -1;
    for (size_t i = 0; i < w->nseen; i++)
        if (memcmp(w->seen[i].key, k.key, sizeof k.key) == 0)
            return 1;
    if (w->nseen == w->capseen) {
        size_t cap = w->capseen ? 2 * w->capseen : 16;
        obj_key *m = realloc(w->seen, cap * sizeof *m);
        if (!m)
            return -1;
        w->seen = m;
        w->capseen = cap;
    }
    w->seen[w->nseen++] = k;
    return 0;
}

static int refuse_outside(inside_walk *w, const char *name, const char *why)
{
    w->rc = ember__err(w->msg, EMBER_EFORMAT, "%s: %s is %s, which ember neither "
                       "verifies nor fingerprints; copy the data into the file "
                       "(h5repack, or h5copy --expand-ext-links)", w->where, name, why);
    return -1;
}

static int outside(inside_walk *w, hid_t obj, const char *name)
{
    if (fileno_of(obj) != w->home)
        return refuse_outside(w, name, "reached through an external link: its data "
                              "lies in another file");
    if (H5Iget_type(obj) != H5I_DATASET)
        return 0;
    hid_t dcpl = H5Dget_create_plist(obj);
    const char *why = dcpl < 0 ? "a dataset whose storage cannot be read"
                      : H5Pget_external_count(dcpl) > 0
                          ? "a dataset whose data lies in external files"
                      : H5Pget_layout(dcpl) == H5D_VIRTUAL
                          ? "a virtual dataset: its data lies in other datasets"
                          : NULL;
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return why ? refuse_outside(w, name, why) : 0;
}

/* Every link under a group, one group at a time (H5Literate): a group is
 * entered through a hard link, and through a soft one a few deep (a
 * reader's paths are short). An external or user-defined link is refused
 * as it is, without opening what it leads to. */
static herr_t inside_link(hid_t group, const char *name, const H5L_info_t *info, void *arg)
{
    inside_walk *w = arg;
    char full[H5IO_PATH_MAX];
    if (++w->links > INSIDE_MAX_LINKS || w->depth >= INSIDE_MAX_DEPTH ||
        snprintf(full, sizeof full, "%s/%s", w->base, name) >= (int)sizeof full) {
        w->rc = ember__err(w->msg, EMBER_EFORMAT, "%s: more than %d links, or more "
                           "than %d groups deep, under %s (or a path past %d bytes; "
                           "links that lead back into their own group, in a damaged "
                           "file?)", w->where, INSIDE_MAX_LINKS, INSIDE_MAX_DEPTH,
                           w->base, H5IO_PATH_MAX - 1);
        return -1;
    }
    if (info->type != H5L_TYPE_HARD && info->type != H5L_TYPE_SOFT)
        return refuse_outside(w, full, "an external link: its data lies in another file");
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) /* a dangling soft link reads nothing */
        return 0;
    int r = outside(w, obj, full), soft = info->type == H5L_TYPE_SOFT;
    int enter = !r && H5Iget_type(obj) == H5I_GROUP && (!soft || w->hops < 4);
    int again = enter ? seen_before(w, obj) : 0;
    if (again < 0)
        r = cannot_walk(w, full);
    if (enter && !again) {
        const char *base = w->base;
        w->hops += soft;
        w->depth++;
        w->base = full;
        r = H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, NULL, inside_link, w) < 0 ? -1 : 0;
        w->base = base;
        w->depth--;
        w->hops -= soft;
    }
    H5Oclose(obj);
    return r;
}

int ember__h5_data_inside(int64_t fid, const char *path, const char *where, char *msg)
{
    hid_t root = H5Oopen((hid_t)fid, "/", H5P_DEFAULT);
    hid_t obj = H5Oopen((hid_t)fid, path, H5P_DEFAULT);
    inside_walk w = {.home = root >= 0 ? fileno_of(root) : 0, .base = path,
                     .where = where, .msg = msg, .rc = EMBER_OK};
    if (root >= 0 && obj >= 0 && !outside(&w, obj, path) && H5Iget_type(obj) == H5I_GROUP) {
        if (seen_before(&w, obj) < 0)
            cannot_walk(&w, path);
        else
            H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, NULL, inside_link, &w);
    }
    free(w.seen);
    if (obj >= 0)
        H5Oclose(obj);
    if (root >= 0)
        H5Oclose(root);
    return w.rc;
}

/* 1 when some prefix of path (the path itself included) that exists is
 * the object csr, by any name: "/csr/x", "/./csr/x", a link to the group.
 * Stops at the first prefix that does not open as a group. */
static int path_through(hid_t loc, const char *path, hid_t csr)
{
    char buf[H5IO_PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    int hit = 0, more = 1;
    for (size_t i = 1; !hit && more && i <= len; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        hid_t obj = H5Oopen(loc, buf, H5P_DEFAULT); /* fails if missing */
        buf[i] = c;
        more = obj >= 0 && H5Iget_type(obj) == H5I_GROUP;
        hit = obj >= 0 ? same_object(obj, csr) : 0;
        if (obj >= 0)
            H5Oclose(obj);
    }
    return hit;
}

int ember__h5_graph_guard(int64_t loc, const char *path, const char *where,
                          char *msg)
{
    hid_t csr = H5Lexists((hid_t)loc, "/csr", H5P_DEFAULT) > 0
                    ? H5Oopen((hid_t)loc, "/csr", H5P_DEFAULT) : H5I_INVALID_HID;
    /* ember_graph_save_h5 names the format on the group and stores the
     * pull layout in it; a CSR made otherwise (h5py, or written array by
     * array) has no stored layout to disagree with, and is read checked */
    int graph = csr >= 0 && H5Iget_type(csr) == H5I_GROUP &&
                (H5Aexists(csr, "format") > 0 || H5Lexists(csr, "pull", H5P_DEFAULT) > 0);
    int hit = graph ? path_through((hid_t)loc, path[0] ? path : "/", csr) : 0;
    if (csr >= 0)
        H5Oclose(csr);
    if (hit)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: inside /csr, an ember graph, which ember "
                          "writes whole (ember-convert, ember_graph_save_h5), "
                          "never in part", where);
    return hit < 0 ? ember__err(msg, EMBER_EHDF5, "%s: cannot tell whether the "
                                "path is inside /csr", where)
                   : EMBER_OK;
}

/* What is at path: EMBER_OK with *kind H5I_BADID when nothing is (or a
 * link to nothing that opens, *there 1), else the object's kind; a parent
 * that is not a group is EMBER_EINVAL naming `where`. */
static int kind_at(hid_t loc, const char *path, int *there, H5I_type_t *kind,
                   const char *where, char *msg)
{
    *kind = H5I_BADID;
    htri_t exists = path_exists(loc, path);
    *there = exists > 0;
    if (exists < 0)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: a parent on the path is not a group", where);
    hid_t obj = exists > 0 ? H5Oopen(loc, path, H5P_DEFAULT) : H5I_INVALID_HID;
    if (obj >= 0) {
        *kind = H5Iget_type(obj);
        H5Oclose(obj);
    }
    return EMBER_OK;
}

int ember__h5_slot(int64_t loc, const char *path, int overwrite, int *replace,
                   const char *where, char *msg)
{
    *replace = 0;
    int there;
    H5I_type_t kind;
    int rc = kind_at((hid_t)loc, path, &there, &kind, where, msg);
    if (rc || !there)
        return rc;
    /* Deleting the link of a group would take everything under it: only
     * a dataset is ever replaced. */
    if (kind != H5I_DATASET)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: %s, not a dataset; only a dataset is replaced",
                          where,
                          kind == H5I_GROUP ? "is a group"
                          : kind == H5I_DATATYPE ? "is a named datatype"
                          : kind == H5I_BADID ? "is a link to nothing that opens"
                                              : "is an object");
    if (!overwrite)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: already exists (set overwrite to replace it)",
                          where);
    *replace = 1;
    return EMBER_OK;
}

/* ---- datasets that appear whole or not at all ---------------------------- */

/* A dataset is written under a temporary link in its own group, marked
 * unfinished, and moved to its name only when complete (ember__h5_commit).
 * A save that fails deletes it; one that is killed leaves it, marked: a
 * reader refuses a marked dataset by any name, a root scan skips it, and
 * the next save to the same path deletes it first. */

int ember__h5_tmp_path(const char *path, char *tmp, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    return snprintf(tmp, size, "%.*s%s%s", (int)dir, path, H5IO_TMP_PREFIX,
                    path + dir) < (int)size ? 0 : -1;
}

/* 1 when obj carries the unfinished mark (or cannot be asked). */
static int is_unfinished(hid_t obj)
{
    return H5Aexists(obj, EMBER__H5_MARK) != 0;
}

int ember__h5_tmp_clear(int64_t loc, const char *tmp, const char *where,
                        char *msg)
{
    int there;
    H5I_type_t kind;
    int rc = kind_at((hid_t)loc, tmp, &there, &kind, where, msg);
    if (rc || !there)
        return rc;
    /* a killed write's leftover: a dataset, which no reader takes for data */
    if (kind != H5I_DATASET)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: %s is in the way (names starting with '%s' "
                          "are ember's unfinished writes, and it is not one)",
                          where, tmp, H5IO_TMP_PREFIX);
    if (H5Ldelete((hid_t)loc, tmp, H5P_DEFAULT) < 0)
        return h5_fail(msg, EMBER_EHDF5, where,
                       "cannot delete an unfinished write's leftover");
    return EMBER_OK;
}

int ember__h5_mark(int64_t dset)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? H5I_INVALID_HID
                     : H5Acreate2((hid_t)dset, EMBER__H5_MARK, H5T_STD_U8LE, sp,
                                  H5P_DEFAULT, H5P_DEFAULT);
    unsigned char one = 1;
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_UCHAR, &one) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return ok ? 0 : -1;
}

int ember__h5_commit(int64_t loc, int64_t dset, const char *tmp,
                     const char *path, int replace, const char *where,
                     char *msg)
{
    /* The mark goes last: killed between these steps, the file holds the
     * new dataset marked (refused by readers), never an unmarked part. The
     * dataset replaced is moved aside first, not deleted, so that a move
     * that fails puts it back: an error never leaves neither. */
    char aside[H5IO_PATH_MAX + sizeof H5IO_TMP_PREFIX + 8];
    if (snprintf(aside, sizeof aside, "%s.old", tmp) >= (int)sizeof aside)
        return ember__err(msg, EMBER_EINVAL, "%s: path too long", where);
    if (replace && H5Lmove((hid_t)loc, path, (hid_t)loc, aside, H5P_DEFAULT,
                           H5P_DEFAULT) < 0)
        return h5_fail(msg, EMBER_EIO, where,
                       "cannot move the dataset it replaces aside");
    if (H5Lmove((hid_t)loc, tmp, (hid_t)loc, path, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        if (replace)
            H5Lmove((hid_t)loc, aside, (hid_t)loc, path, H5P_DEFAULT, H5P_DEFAULT);
        return h5_fail(msg, EMBER_EIO, where,
                       "cannot move the written dataset into place");
    }
    if (H5Adelete((hid_t)dset, EMBER__H5_MARK) < 0)
        return h5_fail(msg, EMBER_EIO, where, "cannot mark the dataset done");
    if (replace && H5Ldelete((hid_t)loc, aside, H5P_DEFAULT) < 0)
        return h5_fail(msg, EMBER_EIO, where,
                       "written, but cannot delete the dataset it replaced");
    return EMBER_OK;
}

/* Opens the dataset at path; ENOTFOUND when there is none. */
static int open_named(hid_t fid, const char *path, hid_t *dset,
                      const char *where, char *msg)
{
    if (strlen(path) >= H5IO_PATH_MAX)
        return ember__err(msg, EMBER_EINVAL, "%s: path longer than %d bytes",
                          where, H5IO_PATH_MAX - 1);
    if (path_exists(fid, path) <= 0)
        return ember__err(msg, EMBER_ENOTFOUND, "%s: no such dataset", where);
    hid_t obj = H5Oopen(fid, path, H5P_DEFAULT);
    if (obj < 0)
        return h5_fail(msg, EMBER_ENOTFOUND, where, "cannot open");
    H5I_type_t kind = H5Iget_type(obj);
    if (kind != H5I_DATASET) {
        H5Oclose(obj);
        return ember__err(msg, EMBER_ENOTFOUND, "%s: %s, not a dataset",
                          where, kind == H5I_GROUP ? "a group" : "an object");
    }
    if (is_unfinished(obj)) {
        H5Oclose(obj);
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s: an unfinished write (the save that made it "
                          "failed or was killed): not data", where);
    }
    int rc = ember__h5_data_inside(fid, path, where, msg);
    if (rc) {
        H5Oclose(obj);
        return rc;
    }
    *dset = obj;
    return EMBER_OK;
}

/* What the root holds, for a spec without a path. */
typedef struct {
    hid_t first;                     /* the first dataset found, open */
    char first_name[H5IO_PATH_MAX];
    int count;                       /* datasets found */
    char names[256];                 /* "a, b, c" for the message */
} root_scan;

/* Looks at link i of the root: counts a dataset, keeps the first open. */
static void scan_link(hid_t fid, hsize_t i, root_scan *s)
{
    hid_t obj = H5Oopen_by_idx(fid, "/", H5_INDEX_NAME, H5_ITER_INC, i,
                               H5P_DEFAULT);
    if (obj < 0)
        return; /* a dangling link is no dataset */
    char name[H5IO_PATH_MAX] = "";
    H5Lget_name_by_idx(fid, "/", H5_INDEX_NAME, H5_ITER_INC, i, name,
                       sizeof name, H5P_DEFAULT);
    if (H5Iget_type(obj) != H5I_DATASET || is_unfinished(obj) ||
        !strncmp(name, H5IO_TMP_PREFIX, strlen(H5IO_TMP_PREFIX))) {
        H5Oclose(obj);
        return; /* unfinished writes are no data */
    }
    size_t used = strlen(s->names);
    snprintf(s->names + used, sizeof s->names - used, "%s%s",
             used ? ", " : "", name);
    if (s->count++ == 0) {
        s->first = obj;
        memcpy(s->first_name, name, sizeof name);
    } else {
        H5Oclose(obj);
    }
}

/* Opens the one dataset at the root (path ""), naming it in where. */
static int open_only(hid_t fid, const char *file, hid_t *dset, char *where,
                     size_t where_size, char *msg)
{
    H5G_info_t info;
    if (H5Gget_info(fid, &info) < 0)
        return h5_fail(msg, EMBER_ECORRUPT, file, "cannot list the root group");
    root_scan s = {.first = H5I_INVALID_HID};
    for (hsize_t i = 0; i < info.nlinks; i++)
        scan_link(fid, i, &s);
    if (s.count == 1) {
        /* where names the dataset in messages: cut long names to fit */
        snprintf(where, where_size, "%.380s:/%.120s", file, s.first_name);
        int rc = ember__h5_data_inside(fid, s.first_name, where, msg);
        if (rc)
            H5Oclose(s.first);
        else
            *dset = s.first;
        return rc;
    }
    if (s.first >= 0)
        H5Oclose(s.first);
    if (s.count == 0)
        return ember__err(msg, EMBER_ENOTFOUND,
                          "%s: no dataset at the root; name one as %s:/path",
                          file, file);
    return ember__err(msg, EMBER_EINVAL,
                      "%s: %d datasets at the root (%s); name one as %s:/path",
                      file, s.count, s.names, file);
}

/* ---- reading ----------------------------------------------------------- */

/* A file that carries ember's checksum header is checked against it before
 * libhdf5 parses it (EMBER_ECORRUPT when it fails: damaged metadata can
 * crash libhdf5 or make it read fill values). A file without the header
 * (made by h5py, say) is read as it is. *sealed says which, *id which
 * file was verified. */
static int check_sum(const char *file, int *sealed, ember__file_id *id, char *msg)
{
    int rc = ember__fsum_check_id(file, id, msg);
    ember__fsum_edit_hint(rc, msg);
    *sealed = rc == EMBER_OK;
    if (rc == EMBER__FSUM_NONE || rc == EMBER_EINVAL) {
        ember__msg_clear(msg);
        return EMBER_OK; /* probe_file names what else is wrong */
    }
    return rc == EMBER_ENOTFOUND ? EMBER_OK : rc;
}

void (*ember__h5_opening_hook)(const char *file);

/* The message of a sealed file that HDF5 opened is not the one verified. */
int ember__h5_replaced(const char *file, char *msg)
{
    return ember__err(msg, EMBER_ECORRUPT, "%s: replaced while being opened (the file "
                      "HDF5 opened is not the one whose checksum was verified)", file);
}

int ember__h5_unopened(const char *file, unsigned mode, int verified, char *msg)
{
    if (mode != H5F_ACC_RDONLY)
        return h5_fail(msg, EMBER_EIO, file, "cannot open for writing");
    if (verified) /* whole: the cause is elsewhere (a newer format, locking) */
        return h5_fail(msg, EMBER_EHDF5, file,
                       "HDF5 does not open it, though its checksum shows it whole");
    return h5_fail(msg, EMBER_ECORRUPT, file,
                   "HDF5 signature found but the file does not open");
}

static int open_read(const char *file, hid_t *fid, char *msg)
{
    int sealed = 0;
    ember__file_id id;
    int rc = check_sum(file, &sealed, &id, msg);
    if (rc)
        return rc;
    hid_t fapl = (hid_t)ember__h5_fapl();
    if (fapl < 0)
        return h5_fail(msg, EMBER_EHDF5, file, "cannot make file properties");
    rc = probe_file(file, fapl, msg);
    if (rc == EMBER_OK) {
        int replaced;
        *fid = ember__h5_open_checked(file, H5F_ACC_RDONLY, fapl, sealed ? &id : NULL,
                                      &replaced);
        if (*fid < 0)
            rc = replaced ? ember__h5_replaced(file, msg)
                          : ember__h5_unopened(file, H5F_ACC_RDONLY, sealed, msg);
    }
    H5Pclose(fapl);
    return rc;
}

/* ---- parallel reads of what ember writes --------------------------------- */

/* HDF5's Fletcher32 (H5_checksum_fletcher32): big-endian 16-bit words w,
 * sum1 += w then sum2 += sum1 for each, both sums folded every 360 words
 * (x -> (x & 0xffff) + (x >> 16)) and twice at the end, an odd last byte
 * as the high half of a word. In closed form: with S1 the sum of the
 * words and S2 the sum of sum1 after each word (sum of (n - i) w_i over
 * n words), each half of the result is F(S) = 0 if S = 0, else
 * ((S - 1) mod 65535) + 1. Why: a fold keeps x mod 65535 (65536 = 1 mod
 * 65535) and keeps x >= 1 once it is; sum2 never passes 2^32 before a
 * fold (at most 131070 + 360 * 65896 + 65535 * 360 * 361 / 2 =
 * 4,282,317,930, sum1 being at most 65896 after a fold); and the two last
 * folds leave a value of at most 131070 in [1, 65535] (or 0). So the
 * words can be summed in any grouping, modulo 65535: the state between
 * steps (ember__f32) is F of the sums so far, 0 exactly while every word
 * was 0, and a step of t words adds S = sum of w_i to S1 and
 * t * S1 + t * S - I to S2, where I = sum of i * w_i (i from 0).
 *
 * S and I are summed 16 words (32 bytes) at a time in eight 32-bit
 * lanes, lane m holding words 2m and 2m + 1 of each group: per group k,
 * B += A then A += the group's words, so that after K groups A_j is the
 * sum of word j over the groups and B_j the sum of (K - 1 - k) times it.
 * Then I = 16 * sum_j ((K - 1) A_j - B_j) + sum_j j A_j, with no multiply
 * in the loop. Up to 360 groups a step (11520 bytes: a lane's B stays
 * below 360 * 359 / 2 * 65535 < 2^32), so the reduction of the lanes is
 * paid once a step, where HDF5's 360-word blocks paid it every 720 bytes.
 * A group is one AVX2 register: as two (64-byte groups), GCC's AVX2 and
 * SSE2 copies moved the sums through the stack a group, 2.9 GB/s from
 * cache where this runs at the memory's speed.
 * On the way each vector may be stored elsewhere (ember__fletcher32_copy:
 * the bytes read from memory once). target_clones builds AVX-512 and AVX2
 * copies too; integer sums round nothing, so every copy gives the same
 * bits (tests/unit/test_h5io.c holds them to the word-by-word loop). */
typedef uint32_t f32_vec __attribute__((vector_size(32)));

#define F32_MOD 65535u

/* F (above) of a sum known modulo 65535 (r) and whether it is 0. */
static uint32_t f32_form(uint64_t r, int zero)
{
    return zero ? 0 : r ? (uint32_t)r : F32_MOD;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static const unsigned char *fl_words(ember__f32 *s, const unsigned char *d,
                                     size_t words, unsigned char *to)
{
    uint64_t s1 = s->sum1 % F32_MOD, s2 = s->sum2 % F32_MOD;
    int zero = s->sum1 == 0;
    const f32_vec lo16 = (f32_vec){0} + 0xffff, bytes = (f32_vec){0} + 0x00ff00ff;
    while (words) {
        uint64_t t = words > 16 * 360 ? 16 * 360 : words;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t groups = t / 16;
#else
        uint64_t groups = 0; /* the lanes' byte swap assumes little-endian */
#endif
        f32_vec ae = {0}, ao = {0}, be = {0}, bo = {0};
        for (uint64_t k = 0; k < groups; k++) {
            f32_vec x;
            memcpy(&x, d + 32 * k, sizeof x);
            if (to) /* copied on the way: read from memory once */
                memcpy(to + 32 * k, &x, sizeof x);
            /* each 16-bit half byte-swapped: the big-endian words */
            x = ((x & bytes) << 8) | ((x >> 8) & bytes);
            be += ae;
            bo += ao;
            ae += x & lo16;
            ao += x >> 16;
        }
        uint64_t sw = 0, iw = 0, sb = 0;
        for (uint64_t m = 0; m < 8; m++) {
            sw += (uint64_t)ae[m] + ao[m];
            sb += (uint64_t)be[m] + bo[m];
            iw += 2 * m * ae[m] + (2 * m + 1) * ao[m];
        }
        if (groups)
            iw += 16 * ((groups - 1) * sw - sb);
        for (uint64_t i = 16 * groups; i < t; i++) {
            uint64_t w = (uint64_t)d[2 * i] << 8 | d[2 * i + 1];
            sw += w;
            iw += i * w;
        }
        if (to) {
            memcpy(to + 32 * groups, d + 32 * groups, 2 * (t - 16 * groups));
            to += 2 * t;
        }
        /* t * sw - iw = sum of (t - i) w_i >= 0, below 2^43 */
        s2 = (s2 + t * s1 + (t * sw - iw)) % F32_MOD;
        s1 = (s1 + sw) % F32_MOD;
        zero &= sw == 0;
        d += 2 * t;
        words -= t;
    }
    s->sum1 = f32_form(s1, zero);
    s->sum2 = f32_form(s2, zero);
    return d;
}

void ember__fletcher32_blocks(ember__f32 *s, const void *data, size_t len)
{
    fl_words(s, data, len / 2, NULL);
}

void ember__fletcher32_copy(ember__f32 *s, void *to, const void *data, size_t len)
{
    fl_words(s, data, len / 2, to);
}

uint32_t ember__fletcher32_end(ember__f32 *s, const void *data, size_t len)
{
    const unsigned char *d = fl_words(s, data, len / 2, NULL);
    if (len % 2) { /* the last byte: a word of its own, the high half */
        uint64_t w = (uint64_t)d[0] << 8;
        uint64_t s1 = (s->sum1 % F32_MOD + w) % F32_MOD;
        int zero = s->sum1 == 0 && w == 0;
        s->sum2 = f32_form((s->sum2 % F32_MOD + s1) % F32_MOD, zero);
        s->sum1 = f32_form(s1, zero);
    }
    return s->sum2 << 16 | s->sum1;
}

uint32_t ember__fletcher32(const void *data, size_t len)
{
    ember__f32 s = {0, 0};
    return ember__fletcher32_end(&s, data, len);
}

/* A chunked read plan: chunk records, and raw bytes (data + checksum). */
typedef struct {
    hsize_t chunk;   /* records a chunk */
    size_t bytes;    /* data bytes of a full chunk */
    size_t nchunks;
} chunk_plan;

/* 1 when dset is as ember writes it: 1-D, chunked, Fletcher32 the only
 * filter, stored exactly as its records sit in memory. Its chunks can then
 * be read raw and checked by the team instead of by HDF5 on one thread. */
static int raw_readable(hid_t dset, const read_plan *p, chunk_plan *c)
{
    hid_t dcpl = H5Dget_create_plist(dset), ftype = H5Dget_type(dset);
    unsigned flags = 0, cd[4];
    size_t ncd = 4;
    int ok = dcpl >= 0 && ftype >= 0 && p->n > 0 &&
             H5Pget_layout(dcpl) == H5D_CHUNKED &&
             H5Pget_chunk(dcpl, 1, &c->chunk) == 1 && c->chunk > 0 &&
             H5Pget_nfilters(dcpl) == 1 &&
             H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) ==
                 H5Z_FILTER_FLETCHER32 &&
             H5Tequal(ftype, p->mem) > 0;
    if (ftype >= 0)
        H5Tclose(ftype);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (ok) {
        c->bytes = (size_t)c->chunk * p->type.size;
        c->nchunks = (size_t)((p->n + c->chunk - 1) / c->chunk);
    }
    return ok;
}

/* Reads raw chunks [first, first + k) into slots (on this thread, which
 * holds the HDF5 lock). 0, or 1 when a chunk is not as expected. */
static int read_raw(hid_t dset, const chunk_plan *c, size_t first, size_t k,
                    unsigned char *slots)
{
    for (size_t i = 0; i < k; i++) {
        hsize_t off = (hsize_t)(first + i) * c->chunk, size = 0;
        uint32_t mask = 0;
        if (H5Dget_chunk_storage_size(dset, &off, &size) < 0 ||
            size != c->bytes + 4 ||
            H5Dread_chunk(dset, H5P_DEFAULT, &off, &mask,
                          slots + i * (c->bytes + 4)) < 0 ||
            mask != 0)
            return 1;
    }
    return 0;
}

/* Checks chunk `index` in its slot and copies its records into place. */
static int check_chunk(const chunk_plan *c, const read_plan *p,
                       const unsigned char *raw, size_t index,
                       unsigned char *dst)
{
    const unsigned char *s = raw + c->bytes;
    uint32_t stored = (uint32_t)s[0] | (uint32_t)s[1] << 8 |
                      (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
    if (ember__fletcher32(raw, c->bytes) != stored)
        return 1;
    size_t first = index * (size_t)c->chunk;
    size_t k = p->n - first < c->chunk ? p->n - first : (size_t)c->chunk;
    ember__copy(dst + first * p->type.size, raw, k * p->type.size);
    return 0;
}

/* The team checks and copies a batch of chunks in slots. */
static void check_batch(const chunk_plan *c, const read_plan *p,
                        const unsigned char *slots, size_t first, size_t k,
                        unsigned char *dst, int *bad)
{
    for (size_t i = 0; i < k; i++) {
#pragma omp task firstprivate(i)
        if (check_chunk(c, p, slots + i * (c->bytes + 4), first + i, dst)) {
#pragma omp atomic write
            *bad = 1;
        }
    }
}

/* Reads batch b+1 while the team checks batch b: two sets of slots. The
 * HDF5 calls all stay on this (the lock-holding) thread. */
static int read_parallel(ember_ctx *ctx, hid_t dset, const read_plan *p,
                         const chunk_plan *c, unsigned char *dst)
{
    size_t batch = (size_t)ctx->threads * 2, slot = c->bytes + 4;
    unsigned char *slots = ember__malloc(ctx, ember__mul(2 * batch, slot));
    if (!slots)
        return EMBER_ENOMEM;
    int bad = 0, io = 0;
#pragma omp parallel num_threads(ctx->threads)
#pragma omp single
    {
        size_t k0 = c->nchunks < batch ? c->nchunks : batch;
        io = read_raw(dset, c, 0, k0, slots);
        for (size_t b = 0, first = 0; !io && first < c->nchunks; b ^= 1) {
            size_t k = c->nchunks - first < batch ? c->nchunks - first : batch;
            unsigned char *mine = slots + b * batch * slot;
            check_batch(c, p, mine, first, k, dst, &bad);
            size_t next = first + k;
            size_t kn = c->nchunks - next < batch ? c->nchunks - next : batch;
            if (kn)
                io = read_raw(dset, c, next, kn, slots + (b ^ 1) * batch * slot);
#pragma omp taskwait
            first = next;
        }
    }
    ember__free(ctx, slots);
    return io ? EMBER_NOTCACHED : bad ? EMBER_ECORRUPT : EMBER_OK;
}

/* Datasets of at least this many bytes stored contiguous are read by the
 * team with preads (read_contiguous). */
#define CONTIG_PARALLEL ((uint64_t)4 << 20)
#define CONTIG_PIECE ((uint64_t)8 << 20)

/* Where in its file a dataset's records lie, when they lie there as they
 * are in memory: contiguous, unfiltered, not external, the memory type's
 * bytes (HDF5 would convert nothing) and all of them allocated; else
 * HADDR_UNDEF. The offset counts from the start of the file, user block
 * included (H5Dget_offset). */
static haddr_t contiguous_at(hid_t dset, const read_plan *p)
{
    hid_t dcpl = H5Dget_create_plist(dset), ftype = H5Dget_type(dset);
    haddr_t at = HADDR_UNDEF;
    if (dcpl >= 0 && ftype >= 0 && H5Pget_layout(dcpl) == H5D_CONTIGUOUS &&
        H5Pget_nfilters(dcpl) == 0 && H5Pget_external_count(dcpl) == 0 &&
        H5Tequal(ftype, p->mem) > 0 &&
        H5Dget_storage_size(dset) == (hsize_t)p->n * p->type.size)
        at = H5Dget_offset(dset);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return at;
}

/* The descriptor through which HDF5 reads the file of obj (the sec2
 * driver's), or -1 for another driver: reads on it see the file HDF5
 * opened, whatever its name refers to by now. */
int ember__h5_sec2_fd(int64_t obj, int read_only)
{
    hid_t fid = H5Iget_file_id((hid_t)obj), fapl = fid >= 0 ? H5Fget_access_plist(fid) : -1;
    void *handle = NULL;
    unsigned intent = 0;
    int fd = fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 &&
                     (!read_only || (H5Fget_intent(fid, &intent) >= 0 &&
                                     intent == H5F_ACC_RDONLY)) &&
                     H5Fget_vfd_handle(fid, fapl, &handle) >= 0 && handle
                 ? *(int *)handle
                 : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fid >= 0)
        H5Fclose(fid);
    return fd;
}

/* Whether the file HDF5 has open as fid reads, through HDF5's own
 * descriptor, the size and header of id; 1 when the driver does not tell,
 * 0 when it cannot be read. */
static int is_file(hid_t fid, const ember__file_id *id)
{
    int fd = ember__h5_sec2_fd(fid, 0);
    if (fd < 0)
        return 1;
    struct stat st;
    unsigned char head[EMBER__FSUM_BLOCK];
    return fstat(fd, &st) == 0 && (uint64_t)st.st_size == id->size &&
           ember__pread_full(fd, head, sizeof head, 0) == (long long)sizeof head &&
           memcmp(head, id->head, sizeof head) == 0;
}

int64_t ember__h5_open_checked(const char *file, unsigned mode, int64_t fapl,
                               const ember__file_id *id, int *replaced)
{
    *replaced = 0;
    if (ember__h5_opening_hook)
        ember__h5_opening_hook(file);
    hid_t fid = H5Fopen(file, mode, (hid_t)fapl);
    if (fid >= 0 && id && !is_file(fid, id)) {
        H5Fclose(fid);
        fid = H5I_INVALID_HID;
        *replaced = 1;
    }
    return fid;
}

/* Reads bytes [at, at + bytes) of fd into dst, pieces of CONTIG_PIECE
 * spread over the team: the page faults of a fresh buffer and the copies
 * out of the page cache on every thread, where HDF5 makes one read on one.
 * 0, or -1 when the file is short or a read fails. */
static int read_contiguous(ember_ctx *ctx, int fd, uint64_t at, unsigned char *dst,
                           uint64_t bytes)
{
    long long pieces = (long long)((bytes + CONTIG_PIECE - 1) / CONTIG_PIECE);
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx->threads) reduction(|:bad)
    for (long long i = 0; i < pieces; i++) {
        uint64_t lo = (uint64_t)i * CONTIG_PIECE;
        size_t n = (size_t)(bytes - lo < CONTIG_PIECE ? bytes - lo : CONTIG_PIECE);
        bad |= ember__pread_full(fd, dst + lo, n, at + lo) != (long long)n;
    }
    return bad ? -1 : 0;
}

unsigned long ember__h5_contiguous_reads;

/* The records of an open dataset, into a new ctx allocation. */
static int read_records(ember_ctx *ctx, hid_t dset, const read_plan *p,
                        const char *where, void **data, char *msg)
{
    uint64_t bytes = (uint64_t)ember__mul(p->n, p->type.size);
    void *buf = ember__malloc(ctx, (size_t)bytes);
    if (!buf)
        return ember__err(msg, EMBER_ENOMEM, "%s: no memory for %zu records",
                          where, p->n);
    chunk_plan c;
    haddr_t at = bytes >= CONTIG_PARALLEL ? contiguous_at(dset, p) : HADDR_UNDEF;
    int fd = at != HADDR_UNDEF ? ember__h5_sec2_fd(dset, 1) : -1;
    int fast = fd >= 0 ? (read_contiguous(ctx, fd, at, buf, bytes) ? EMBER_NOTCACHED : EMBER_OK)
               : raw_readable(dset, p, &c) ? read_parallel(ctx, dset, p, &c, buf)
                                           : EMBER_NOTCACHED;
    if (fd >= 0 && fast == EMBER_OK) /* under the HDF5 lock */
        ember__h5_contiguous_reads++;
    if (fast == EMBER_ECORRUPT || fast == EMBER_ENOMEM) {
        ember__free(ctx, buf);
        return ember__err(msg, fast, "%s: %s", where,
                          fast == EMBER_ENOMEM ? "no memory for reading"
                          : "data error detected by Fletcher32 checksum");
    }
    /* Not a layout read here, or not as expected: HDF5 reads it. */
    if (fast != EMBER_OK && p->n &&
        H5Dread(dset, p->mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        int rc = h5_fail(msg, EMBER_ECORRUPT, where, "read failed");
        ember__free(ctx, buf);
        return rc;
    }
    *data = buf;
    return EMBER_OK;
}

/* Reads the dataset at path (the only one at the root when "") of an open
 * file. */
static int read_open(ember_ctx *ctx, hid_t fid, const char *file,
                     const char *path, ember_type *type, void **data,
                     size_t *n, char *msg)
{
    hid_t dset = H5I_INVALID_HID;
    read_plan p = {.mem = H5I_INVALID_HID};
    char where[EMBER_MSG_SIZE];
    snprintf(where, sizeof where, "%s:%s", file, path);
    int rc = path[0] ? open_named(fid, path, &dset, where, msg)
                     : open_only(fid, file, &dset, where, sizeof where, msg);
    if (rc == EMBER_OK)
        rc = plan_read(dset, &p, where, msg);
    if (rc == EMBER_OK)
        rc = read_records(ctx, dset, &p, where, data, msg);
    if (rc == EMBER_OK) {
        *type = p.type;
        *n = p.n;
    }
    if (p.mem >= 0)
        H5Tclose(p.mem);
    if (dset >= 0)
        H5Oclose(dset);
    return rc;
}

static int read_locked(ember_ctx *ctx, const char *file, const char *path,
                       ember_type *type, void **data, size_t *n, char *msg)
{
    hid_t fid = H5I_INVALID_HID;
    int rc = open_read(file, &fid, msg);
    if (rc == EMBER_OK)
        rc = read_open(ctx, fid, file, path, type, data, n, msg);
    if (fid >= 0)
        H5Fclose(fid);
    return rc;
}

int ember__h5_read_all(ember_ctx *ctx, const char *file, const char *path,
                       ember_type *type, void **data, size_t *n, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || !file || !path || !type || !data || !n)
        return ember__err(msg, EMBER_EINVAL, "h5 read: NULL argument");
    *data = NULL;
    *n = 0;
    ember__h5_lock();
    int rc = read_locked(ctx, file, path, type, data, n, msg);
    ember__h5_unlock();
    return rc;
}

int ember__h5_read_fid(ember_ctx *ctx, int64_t fid, const char *file,
                       const char *path, ember_type *type, void **data,
                       size_t *n, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || fid < 0 || !file || !path || !type || !data || !n)
        return ember__err(msg, EMBER_EINVAL, "h5 read: bad argument");
    *data = NULL;
    *n = 0;
    ember__h5_lock();
    int rc = read_open(ctx, (hid_t)fid, file, path, type, data, n, msg);
    ember__h5_unlock();
    return rc;
}

/* The type and record count of the dataset at path of an open file,
 * nothing read (a reader of ranges reads its own with a hyperslab). */
int ember__h5_type_fid(int64_t fid, const char *file, const char *path,
                       ember_type *type, size_t *n, char *msg)
{
    ember__msg_clear(msg);
    if (fid < 0 || !file || !path || !path[0] || !type || !n)
        return ember__err(msg, EMBER_EINVAL, "h5 type: bad argument");
    hid_t dset = H5I_INVALID_HID;
    read_plan p = {.mem = H5I_INVALID_HID};
    char where[EMBER_MSG_SIZE];
    snprintf(where, sizeof where, "%s:%s", file, path);
    ember__h5_lock();
    int rc = open_named((hid_t)fid, path, &dset, where, msg);
    if (rc == EMBER_OK)
        rc = plan_read(dset, &p, where, msg);
    if (rc == EMBER_OK) {
        *type = p.type;
        *n = p.n;
    }
    if (p.mem >= 0)
        H5Tclose(p.mem);
    if (dset >= 0)
        H5Oclose(dset);
    ember__h5_unlock();
    return rc;
}

/* ---- the streaming writer ---------------------------------------------- */

struct ember__h5w {
    ember_ctx *ctx;
    hid_t fid;
    int own_fid;      /* opened here, so closed here */
    hid_t dset;
    hid_t mem;        /* memory (and file) type of the records */
    uint64_t n;       /* records written (those in buf included) */
    int direct;       /* Fletcher32 only: whole chunks, checksummed here */
    size_t chunk;     /* records a chunk */
    size_t recsize;
    unsigned char *buf; /* direct: the chunk being filled, + 4 bytes */
    ember__buf *scratch; /* the caller's room for buf, or NULL */
    size_t fill;      /* direct: records in buf */
    int reseal;       /* the file carried a checksum header: renew it */
    int atomic;       /* written at tmp, moved to path when complete */
    int replace;      /* atomic: a dataset at path to delete then */
    int created;      /* the file was created here */
    ember__h5_edit edit; /* a file opened by name: the change's copy */
    char path[H5IO_PATH_MAX];
    char tmp[H5IO_PATH_MAX];
    char where[EMBER_MSG_SIZE];
};

static int check_writer(const char *file, const char *path,
                        const ember_type *type, const ember__h5w_opts *o,
                        char *msg)
{
    if (!path[0])
        return ember__err(msg, EMBER_EINVAL,
                          "%s: no dataset path (write %s:/name)", file, file);
    if (strlen(path) >= H5IO_PATH_MAX)
        return ember__err(msg, EMBER_EINVAL, "%s:%s: path longer than %d bytes",
                          file, path, H5IO_PATH_MAX - 1);
    if (o->deflate < 0 || o->deflate > 9)
        return ember__err(msg, EMBER_EINVAL,
                          "%s:%s: deflate level %d (0 to 9 allowed)", file,
                          path, o->deflate);
    if (!ember__type_ok(type))
        return ember__err(msg, EMBER_EINVAL, "%s:%s: malformed record type",
                          file, path);
    return EMBER_OK;
}

/* Opens the edit's file read-write: its copy of an existing file, or a
 * new one. */
static int open_write(ember__h5w *w, char *msg)
{
    const char *file = w->edit.work;
    ember__file_id id;
    int rc = w->edit.existing ? check_sum(file, &w->reseal, &id, msg) : EMBER_OK;
    if (rc)
        return rc;
    hid_t fapl = (hid_t)ember__h5_fapl();
    if (fapl < 0)
        return h5_fail(msg, EMBER_EHDF5, file, "cannot make file properties");
    if (!w->edit.existing) {
        /* with the user block for the checksum, as every file ember makes */
        hid_t fcpl = (hid_t)ember__h5_fcpl();
        w->fid = fcpl >= 0 ? H5Fcreate(file, H5F_ACC_TRUNC, fcpl, fapl) : -1;
        if (fcpl >= 0)
            H5Pclose(fcpl);
        rc = w->fid < 0 ? h5_fail(msg, EMBER_EIO, file, "cannot create")
                        : EMBER_OK;
        w->created = w->reseal = w->fid >= 0;
    } else if ((rc = probe_file(file, fapl, msg)) == EMBER_OK) {
        int replaced; /* then closed with nothing written: never sealed */
        w->fid = ember__h5_open_checked(file, H5F_ACC_RDWR, fapl,
                                        w->reseal ? &id : NULL, &replaced);
        if (w->fid < 0)
            rc = replaced ? ember__h5_replaced(file, msg)
                          : ember__h5_unopened(file, H5F_ACC_RDWR, 0, msg);
    }
    w->own_fid = w->fid >= 0;
    H5Pclose(fapl);
    return rc;
}

/* Makes room at path: deletes the dataset there when overwriting (never a
 * group or another object: ember__h5_slot refuses those). An atomic writer
 * keeps it until its own is complete, and clears its temporary link of a
 * killed write's leftover. */
static int clear_path(ember__h5w *w, const char *path, int overwrite,
                      char *msg)
{
    int replace = 0;
    int rc = ember__h5_slot(w->fid, path, overwrite, &replace, w->where, msg);
    if (rc == EMBER_OK && w->atomic) {
        w->replace = replace;
        if (ember__h5_tmp_path(path, w->tmp, sizeof w->tmp) ||
            (size_t)snprintf(w->path, sizeof w->path, "%s", path) >=
                sizeof w->path)
            return ember__err(msg, EMBER_EINVAL,
                              "%s: path too long for its temporary name",
                              w->where);
        return ember__h5_tmp_clear(w->fid, w->tmp, w->where, msg);
    }
    if (rc == EMBER_OK && replace && H5Ldelete(w->fid, path, H5P_DEFAULT) < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where,
                     "cannot delete the existing dataset");
    return rc;
}

/* About 1 MiB of records a chunk: big enough for deflate and for few chunk
 * index entries, small enough for HDF5's default 1 MiB chunk cache. */
static hsize_t chunk_records(size_t recsize, uint64_t expected)
{
    size_t c = H5IO_CHUNK_BYTES / recsize;
    if (expected && expected < c)
        c = (size_t)expected;
    return c ? c : 1;
}

/* Filters run in the order added: shuffle and deflate, then the checksum
 * over the bytes as stored, so a read checks them before inflating. */
static hid_t make_dcpl(size_t recsize, const ember__h5w_opts *o)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk = chunk_records(recsize, o->expected);
    int bad = dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
              H5Pset_obj_track_times(dcpl, 0) < 0;
    if (!bad && o->deflate)
        bad = H5Pset_shuffle(dcpl) < 0 ||
              H5Pset_deflate(dcpl, (unsigned)o->deflate) < 0;
    if (!bad && o->fletcher32)
        bad = H5Pset_fletcher32(dcpl) < 0;
    if (bad && dcpl >= 0) {
        H5Pclose(dcpl);
        dcpl = H5I_INVALID_HID;
    }
    return dcpl;
}

/* An empty 1-D dataset with no size limit, groups on the way created. */
static int create_dataset(ember__h5w *w, const char *path,
                          const ember_type *t, const ember__h5w_opts *o,
                          char *msg)
{
    hsize_t zero = 0, unlimited = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(1, &zero, &unlimited);
    hid_t dcpl = make_dcpl(t->size, o);
    int rc = EMBER_OK;
    w->mem = type_to_h5(t);
    if (w->mem < 0 || space < 0 || dcpl < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where, "cannot set up the dataset");
    w->chunk = (size_t)chunk_records(t->size, o->expected);
    w->recsize = t->size;
    w->direct = o->fletcher32 && !o->deflate;
    /* the groups on the way, unstamped (HDF5's intermediate-group
     * creation would stamp them with the time) */
    if (rc == EMBER_OK && ember__h5_parents(w->fid, path) < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where, "cannot create its groups");
    if (rc == EMBER_OK) {
        w->dset = H5Dcreate2(w->fid, path, w->mem, space, H5P_DEFAULT, dcpl,
                             H5P_DEFAULT);
        if (w->dset < 0)
            rc = h5_fail(msg, EMBER_EHDF5, w->where, "cannot create");
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

/* The caller's open file (or group), which it keeps and closes. HDF5 never
 * hands out id 0, so open_locked takes fid > 0 as given: a zeroed options
 * struct then means "open the file" as -1 does. */
static int use_fid(ember__h5w *w, long long fid, char *msg)
{
    H5I_type_t kind = H5Iget_type((hid_t)fid);
    if (kind != H5I_FILE && kind != H5I_GROUP)
        return ember__err(msg, EMBER_EINVAL,
                          "%s: fid %lld is not an open HDF5 file or group",
                          w->where, fid);
    w->fid = (hid_t)fid;
    w->own_fid = 0;
    return EMBER_OK;
}

static int open_locked(ember__h5w *w, const char *path,
                       const ember_type *t, const ember__h5w_opts *o,
                       char *msg)
{
    int rc = ember__h5_check_path(w->where, path, msg);
    if (rc == EMBER_OK)
        rc = o->fid > 0 ? use_fid(w, o->fid, msg) : open_write(w, msg);
    /* A caller's own file (a checkpoint's NAME.tmp) is made whole by its
     * rename; in a file opened here, the dataset is (ember__h5_commit). */
    w->atomic = o->fid <= 0;
    if (rc == EMBER_OK && w->atomic)
        rc = ember__h5_graph_guard(w->fid, path, w->where, msg);
    if (rc == EMBER_OK)
        rc = clear_path(w, path, o->overwrite, msg);
    if (rc == EMBER_OK)
        rc = create_dataset(w, w->atomic ? w->tmp : path, t, o, msg);
    if (rc == EMBER_OK && w->atomic && ember__h5_mark(w->dset) < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where, "cannot mark it unfinished");
    return rc;
}

/* Closes what w holds (the file only when w opened it); EMBER_EIO when
 * HDF5 reports a failure, which for the dataset and file means data that
 * was cached did not reach the disk. Call under the lock. */
static int close_ids(ember__h5w *w, char *msg)
{
    int rc = EMBER_OK;
    /* an atomic write not committed (failed, or discarded): its temporary
     * link goes, and a file made for it too */
    int drop = w->atomic;
    if (drop && w->dset >= 0 && H5Ldelete(w->fid, w->tmp, H5P_DEFAULT) < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where,
                     "cannot delete the unfinished dataset");
    if (w->mem >= 0 && H5Tclose(w->mem) < 0)
        rc = h5_fail(msg, EMBER_EHDF5, w->where, "closing the type failed");
    if (w->dset >= 0 && H5Dclose(w->dset) < 0 && rc == EMBER_OK)
        rc = h5_fail(msg, EMBER_EIO, w->where, "closing the dataset failed");
    if (w->own_fid && H5Fclose(w->fid) < 0 && rc == EMBER_OK)
        rc = h5_fail(msg, EMBER_EIO, w->where, "closing the file failed");
    if (drop && w->created) {
        remove(w->edit.work); /* nothing else was ever in it */
        w->reseal = 0;
    }
    /* A file that was sealed stays sealed, even after a failed write; a
     * copy that failed is deleted unsealed (ember__h5_edit_end). */
    if (w->own_fid && w->reseal &&
        ((!drop && rc == EMBER_OK) || ember__h5_edit_in_place(&w->edit))) {
        int rs = ember__fsum_seal(w->edit.work, rc == EMBER_OK ? msg : NULL);
        rc = rc == EMBER_OK ? rs : rc;
    }
    w->reseal = 0;
    w->mem = w->dset = w->fid = H5I_INVALID_HID;
    w->own_fid = w->atomic = w->created = 0;
    return rc;
}

int ember__h5w_open(ember_ctx *ctx, ember__h5w **w, const char *file,
                    const char *path, const ember_type *type,
                    const ember__h5w_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!w)
        return ember__err(msg, EMBER_EINVAL, "h5 writer: NULL argument");
    *w = NULL;
    if (!ctx || !file || !path || !type)
        return ember__err(msg, EMBER_EINVAL, "h5 writer: NULL argument");
    ember__h5w_opts o = opts ? *opts : (ember__h5w_opts){.fid = -1};
    int rc = check_writer(file, path, type, &o, msg);
    if (rc)
        return rc;
    ember__h5w *x = ember__calloc(ctx, 1, sizeof *x);
    if (!x)
        return ember__err(msg, EMBER_ENOMEM, "%s:%s: no memory for a writer",
                          file, path);
    x->ctx = ctx;
    x->scratch = o.scratch;
    x->fid = x->dset = x->mem = H5I_INVALID_HID;
    snprintf(x->where, sizeof x->where, "%s:%s", file, path);
    if (o.fid <= 0)
        rc = ember__h5_edit_begin(&x->edit, file, 0, msg);
    if (!rc) {
        ember__h5_lock();
        rc = open_locked(x, path, type, &o, msg);
        if (rc)
            close_ids(x, NULL);
        ember__h5_unlock();
    }
    if (rc) {
        ember__h5_edit_end(&x->edit, rc, msg);
        ember__free(ctx, x);
    } else {
        *w = x;
    }
    return rc;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes slot (a whole chunk, then its checksum) as the chunk of records
 * [off, w->n), the dataset grown to w->n first. */
static int put_chunk(ember__h5w *w, const unsigned char *slot, hsize_t off)
{
    hsize_t size = w->n;
    if (H5Dset_extent(w->dset, &size) < 0 ||
        H5Dwrite_chunk(w->dset, H5P_DEFAULT, 0, &off, w->chunk * w->recsize + 4,
                       slot) < 0)
        return EMBER_EIO;
    return EMBER_OK;
}

/* Direct writing: records gather in a chunk buffer; a full chunk (the
 * last one padded with zeros, as HDF5 pads it) gets the Fletcher32 that
 * HDF5's filter would append, little-endian after the data, and goes to
 * the file with H5Dwrite_chunk. The file is the same as through the filter
 * pipeline, without its per-write chunk read-modify-write and its copies:
 * h5py, h5dump and read_parallel check the chunks as before. */
static int flush_chunk(ember__h5w *w)
{
    size_t bytes = w->chunk * w->recsize;
    memset(w->buf + w->fill * w->recsize, 0, bytes - w->fill * w->recsize);
    put_le32(w->buf + bytes, ember__fletcher32(w->buf, bytes));
    if (put_chunk(w, w->buf, w->n - w->fill))
        return EMBER_EIO;
    w->fill = 0;
    return EMBER_OK;
}

static int append_direct(ember__h5w *w, const unsigned char *recs, size_t n)
{
    size_t need = w->chunk * w->recsize + 4;
    if (!w->buf && w->scratch) {
        if (ember__buf_reserve(w->ctx, w->scratch, need))
            return EMBER_ENOMEM;
        w->buf = w->scratch->data;
    } else if (!w->buf) {
        w->buf = ember__malloc(w->ctx, need);
        if (!w->buf)
            return EMBER_ENOMEM;
    }
    while (n) {
        size_t k = w->chunk - w->fill < n ? w->chunk - w->fill : n;
        ember__copy(w->buf + w->fill * w->recsize, recs, k * w->recsize);
        w->fill += k;
        w->n += k;
        recs += k * w->recsize;
        n -= k;
        if (w->fill == w->chunk && flush_chunk(w))
            return EMBER_EIO;
    }
    return EMBER_OK;
}

static int append_locked(ember__h5w *w, const void *recs, size_t n,
                         char *msg)
{
    if (w->direct) {
        int rc = append_direct(w, recs, n);
        return rc == EMBER_ENOMEM
                   ? ember__err(msg, rc, "%s: no memory for a chunk", w->where)
               : rc ? h5_fail(msg, rc, w->where, "writing records failed")
                    : EMBER_OK;
    }
    hsize_t start = w->n, count = n, size = w->n + n;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    int rc = EMBER_EIO;
    if (H5Dset_extent(w->dset, &size) < 0)
        goto cleanup;
    fspace = H5Dget_space(w->dset);
    mspace = H5Screate_simple(1, &count, NULL);
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count,
                            NULL) < 0 ||
        H5Dwrite(w->dset, w->mem, mspace, fspace, H5P_DEFAULT, recs) < 0)
        goto cleanup;
    w->n += n;
    rc = EMBER_OK;
cleanup:
    if (rc)
        h5_fail(msg, rc, w->where, "writing records failed");
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc;
}

int ember__h5w_append(ember__h5w *w, const void *recs, size_t n, char *msg)
{
    ember__msg_clear(msg);
    if (!w || (!recs && n))
        return ember__err(msg, EMBER_EINVAL, "h5 writer: NULL argument");
    if (n == 0)
        return EMBER_OK;
    ember__h5_lock();
    int rc = append_locked(w, recs, n, msg);
    ember__h5_unlock();
    return rc;
}

/* ---- records laid out as chunks ---------------------------------------- */

size_t ember__h5_chunk_records(size_t recsize, uint64_t expected)
{
    return (size_t)chunk_records(recsize, expected);
}

int ember__chunks_layout(ember_ctx *ctx, ember__chunks *c, size_t recsize,
                         size_t n)
{
    const size_t align = EMBER__DIO_MIN;
    size_t chunk = ember__h5_chunk_records(recsize, n);
    size_t stride = (chunk * recsize + 4 + align - 1) / align * align;
    size_t slots = (n + chunk - 1) / chunk;
    if (slots > (SIZE_MAX - align) / stride)
        return EMBER_ENOMEM;
    if (c->mem.cap < slots * stride + align) { /* exactly, nothing kept */
        ember__free(ctx, c->mem.data);
        c->mem.data = ember__malloc(ctx, slots * stride + align);
        c->mem.cap = c->mem.data ? slots * stride + align : 0;
        if (!c->mem.data)
            return EMBER_ENOMEM;
        ember__hint_huge(c->mem.data, c->mem.cap);
    }
    c->slots = ember__align(c->mem.data, align);
    c->mem.size = 1;
    c->n = n;
    c->chunk = chunk;
    c->recsize = recsize;
    c->stride = stride;
    return EMBER_OK;
}

void ember__chunks_fill(ember__chunks *c, size_t i, const void *recs)
{
    /* the records copied and summed in one pass, then the padding */
    const unsigned char *src = recs;
    unsigned char *slot = c->slots + i * c->stride;
    size_t bytes = c->chunk * c->recsize, lo = i * c->chunk;
    size_t have = (c->n - lo < c->chunk ? c->n - lo : c->chunk) * c->recsize;
    size_t whole = have / 2 * 2;
    ember__f32 s = {0, 0};
    ember__fletcher32_copy(&s, slot, src, whole);
    memcpy(slot + whole, src + whole, have - whole);
    memset(slot + have, 0, bytes - have);
    put_le32(slot + bytes, ember__fletcher32_end(&s, slot + whole, bytes - whole));
}

int ember__h5w_put_chunks(ember__h5w *w, const ember__chunks *c, char *msg)
{
    ember__msg_clear(msg);
    if (!w || !c || !w->direct || w->n || w->fill || c->chunk != w->chunk ||
        c->recsize != w->recsize)
        return ember__err(msg, EMBER_EINVAL, "%s: chunks of another layout",
                          w ? w->where : "h5 writer");
    int rc = EMBER_OK;
    for (size_t lo = 0; !rc && lo < c->n; lo += c->chunk) {
        /* the lock a chunk at a time: other threads' HDF5 calls go on */
        ember__h5_lock();
        w->n = lo + c->chunk < c->n ? lo + c->chunk : c->n;
        if (put_chunk(w, c->slots + lo / c->chunk * c->stride, lo))
            rc = h5_fail(msg, EMBER_EIO, w->where, "writing records failed");
        ember__h5_unlock();
    }
    return rc;
}

/* Offsets must start at 0, never fall, and end at the records written. */
static int check_offsets(const ember__h5w *w, const uint64_t *off,
                         size_t nparts, char *msg)
{
    for (size_t p = 0; p < nparts; p++)
        if (off[p] > off[p + 1])
            return ember__err(msg, EMBER_ELENGTH,
                              "%s: partition_offsets fall at partition %zu",
                              w->where, p);
    if (off[0] != 0 || off[nparts] != w->n)
        return ember__err(msg, EMBER_ELENGTH,
                          "%s: partition_offsets span %llu..%llu but %llu "
                          "records were written",
                          w->where, (unsigned long long)off[0],
                          (unsigned long long)off[nparts],
                          (unsigned long long)w->n);
    return EMBER_OK;
}

static int write_offsets(ember__h5w *w, const uint64_t *off, size_t nparts,
                         char *msg)
{
    int rc = check_offsets(w, off, nparts, msg);
    if (rc)
        return rc;
    hsize_t len = (hsize_t)nparts + 1;
    hid_t space = H5Screate_simple(1, &len, NULL);
    hid_t attr = space < 0 ? H5I_INVALID_HID
                           : H5Acreate2(w->dset, "partition_offsets",
                                        H5T_STD_U64LE, space, H5P_DEFAULT,
                                        H5P_DEFAULT);
    /* Past about 8,000 partitions the attribute outgrows 64 KiB, which a
     * file in the pre-1.8 format cannot hold: ember__h5_fapl avoids that format,
     * a caller passing its own fid must too. */
    if (attr < 0 || H5Awrite(attr, H5T_NATIVE_UINT64, off) < 0)
        rc = h5_fail(msg, EMBER_EIO, w->where,
                     "writing partition_offsets failed");
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    return rc;
}

int ember__h5w_close(ember__h5w **w, const uint64_t *offsets, size_t nparts,
                     char *msg)
{
    ember__msg_clear(msg);
    if (!w || !*w)
        return EMBER_OK;
    ember__h5w *x = *w;
    *w = NULL;
    ember__h5_lock();
    int rc = x->fill && flush_chunk(x)
                 ? h5_fail(msg, EMBER_EIO, x->where, "writing records failed")
                 : EMBER_OK;
    if (!rc && offsets)
        rc = write_offsets(x, offsets, nparts, msg);
    if (!rc && x->atomic) {
        rc = ember__h5_commit(x->fid, x->dset, x->tmp, x->path, x->replace,
                              x->where, msg);
        x->atomic = rc != EMBER_OK; /* moved: nothing to drop */
    }
    int rc2 = close_ids(x, rc ? NULL : msg);
    ember__h5_unlock();
    rc = ember__h5_edit_end(&x->edit, rc ? rc : rc2, msg);
    if (!x->scratch)
        ember__free(x->ctx, x->buf);
    ember__free(x->ctx, x);
    return rc;
}

int ember__h5w_discard(ember__h5w **w)
{
    if (!w || !*w)
        return EMBER_OK;
    ember__h5w *x = *w;
    *w = NULL;
    ember__h5_lock();
    int rc = close_ids(x, NULL);
    ember__h5_unlock();
    ember__h5_edit_end(&x->edit, EMBER_EIO, NULL); /* never published */
    if (!x->scratch)
        ember__free(x->ctx, x->buf);
    ember__free(x->ctx, x);
    return rc;
}

/* ---- ids for other modules (checkpoint files) ---------------------------- */
/* The dataset creation properties of the streaming writer (chunk of about
 * 1 MiB of records, shuffle + deflate, Fletcher32), for writers that lay
 * out the same datasets another way (the collective checkpoint writer,
 * ckptpar.c). */
int64_t ember__h5_dcpl(size_t recsize, uint64_t expected, int deflate,
                       int fletcher32)
{
    ember__h5w_opts o = {.deflate = deflate, .fletcher32 = fletcher32,
                         .expected = expected};
    return (int64_t)make_dcpl(recsize, &o);
}


int64_t ember__h5_mem_type(const ember_type *t)
{
    return (int64_t)type_to_h5(t);
}

int64_t ember__h5_native(ember_scalar kind)
{
    /* under the lock: H5T_NATIVE_* call H5open(), an API call (on first
     * use it initializes the library) that the MPI build's HDF5, which is
     * not thread-safe, must not make beside a background writer */
    ember__h5_lock();
    int64_t t = (int64_t)native_of(kind);
    ember__h5_unlock();
    return t;
}

int64_t ember__h5_fcpl(void)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 && (H5Pset_userblock(fcpl, EMBER__FSUM_BLOCK) < 0 ||
                      H5Pset_obj_track_times(fcpl, 0) < 0)) {
        H5Pclose(fcpl);
        fcpl = H5I_INVALID_HID;
    }
    return (int64_t)fcpl;
}

int ember__h5_parents(int64_t fid, const char *path)
{
    char prefix[H5IO_PATH_MAX];
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    int ok = gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0 &&
             strlen(path) < sizeof prefix;
    for (const char *slash = path; ok && (slash = strchr(slash + 1, '/'));) {
        snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - path), path);
        htri_t there = H5Lexists((hid_t)fid, prefix, H5P_DEFAULT);
        ok = there > 0 || (there == 0 && H5Gclose(H5Gcreate2((hid_t)fid, prefix,
                                                              H5P_DEFAULT, gcpl,
                                                              H5P_DEFAULT)) >= 0);
    }
    if (gcpl >= 0)
        H5Pclose(gcpl);
    return ok ? 0 : -1;
}

void ember__h5_thread_done(void)
{
    /* The thread-safe HDF5 keeps an error stack per thread, and its
     * entries outlive a thread that ends with errors on it. */
    ember__h5_lock();
    H5Eclear2(H5E_DEFAULT);
    ember__h5_unlock();
}
