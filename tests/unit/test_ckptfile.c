/* test_ckptfile.c: checkpoint files (src/ckptfile.c), the ember__ckw_* writer
 * and the ember__ckr_* reader.
 *
 * Round trips cover every record shape (each scalar kind, pairs, a struct
 * with a 16 x f64 array field, a struct of mixed kinds with padding) over
 * several partition layouts, empty partitions included, and compare data,
 * type and partition offsets byte for byte. Records are filled with random
 * bits plus signed zeros, NaN payloads and subnormals, so any conversion on
 * the way shows. Damage is made by hand: a known byte pattern is written,
 * found in the file, and flipped; files are cut short; root attributes are
 * rewritten with the raw HDF5 API (under ember's HDF5 lock, which also keeps
 * HDF5's error printing quiet). The big-file case goes through h5io.c's
 * parallel chunk reader at 1, 2 and 4 threads.
 *
 * Cases use file names of their own in the working directory and remove
 * them when they pass.
 */
#include "internal.h"
#include "testutil.h"

#include <hdf5.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- files --------------------------------------------------------------- */

/* ---- records ------------------------------------------------------------- */

/* Values no conversion may touch: signed zeros, NaN payloads (quiet and
 * signalling), infinities, subnormals. */
static const uint64_t f64_special[] = {
    0x8000000000000000ULL, 0x7ff8000000dead01ULL, 0x7ff0000000000001ULL,
    0xfff0000000000000ULL, 0x0000000000000001ULL, 0x000fffffffffffffULL};
static const uint32_t f32_special[] = {0x80000000u, 0x7fc0beefu, 0x7f800001u,
                                       0xff800000u, 0x00000001u, 0x007fffffu};

static void fill_value(unsigned char *p, ember_scalar kind, uint64_t *seed,
                       size_t i)
{
    uint64_t r = tu_rand(seed);
    if (i % 5 == 0 && kind == EMBER_F64)
        r = f64_special[(i / 5) % 6];
    if (i % 5 == 0 && kind == EMBER_F32)
        r = f32_special[(i / 5) % 6];
    memcpy(p, &r, ember_scalar_size(kind));
}

/* n records of t, random bits in every field, zeros in the padding. */
static unsigned char *make_records(const ember_type *t, size_t n, uint64_t seed)
{
    unsigned char *d = calloc(n ? n : 1, t->size);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        for (uint32_t f = 0; f < t->nfields; f++) {
            const ember_field *fl = &t->field[f];
            size_t es = ember_scalar_size(fl->kind);
            for (uint32_t e = 0; e < fl->count; e++)
                fill_value(d + i * t->size + fl->offset + e * es, fl->kind,
                           &seed, i);
        }
    return d;
}

static ember_type make_struct(const ember_field *f, size_t n)
{
    ember_type t;
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, n, msg), msg);
    return t;
}

static ember_type point16_type(void)
{
    ember_field f[2] = {{.name = "id", .kind = EMBER_I64, .count = 1},
                        {.name = "x", .kind = EMBER_F64, .count = 16}};
    return make_struct(f, 2);
}

/* 4 bytes of padding after a (i32 before f64) and after d (f32 before
 * i64); arrays of i32 and f32 at the end. */
static ember_type mixed_type(void)
{
    ember_field f[7] = {{.name = "a", .kind = EMBER_I32, .count = 1},
                        {.name = "b", .kind = EMBER_F64, .count = 1},
                        {.name = "c", .kind = EMBER_U64, .count = 1},
                        {.name = "d", .kind = EMBER_F32, .count = 1},
                        {.name = "e", .kind = EMBER_I64, .count = 1},
                        {.name = "f", .kind = EMBER_I32, .count = 3},
                        {.name = "g", .kind = EMBER_F32, .count = 3}};
    ember_type t = make_struct(f, 7);
    assert_true(t.field[1].offset == 8); /* padding after a really is there */
    return t;
}

/* ---- layouts ------------------------------------------------------------- */

typedef struct {
    size_t nparts;
    size_t count[8];
} layout;

static const layout layouts[] = {
    {4, {250, 250, 250, 250}},
    {6, {0, 300, 0, 0, 700, 0}}, /* empty first, middle and last */
    {3, {0, 0, 0}},              /* nothing at all */
    {1, {1}},
    {2, {4097, 3}},
};
#define NLAYOUTS (sizeof layouts / sizeof layouts[0])

static size_t layout_total(const layout *l)
{
    size_t n = 0;
    for (size_t p = 0; p < l->nparts; p++)
        n += l->count[p];
    return n;
}

static ember__buf *layout_parts(const layout *l, const ember_type *t,
                                unsigned char *recs)
{
    ember__buf *parts = calloc(l->nparts, sizeof *parts);
    assert_non_null(parts);
    for (size_t p = 0, at = 0; p < l->nparts; at += l->count[p], p++) {
        parts[p].data = recs + at * t->size;
        parts[p].n = parts[p].cap = l->count[p];
        parts[p].size = t->size;
    }
    return parts;
}

/* The type read back is the type written, field by field. */
static void assert_type_same(const ember_type *got, const ember_type *want)
{
    assert_true(ember_type_equal(got, want));
    assert_int_equal(got->cls, want->cls);
    assert_int_equal(got->nfields, want->nfields);
    assert_int_equal(got->size, want->size);
    assert_int_equal(got->align, want->align);
    for (uint32_t f = 0; f < want->nfields; f++) {
        assert_string_equal(got->field[f].name, want->field[f].name);
        assert_int_equal(got->field[f].kind, want->field[f].kind);
        assert_int_equal(got->field[f].count, want->field[f].count);
        assert_int_equal(got->field[f].offset, want->field[f].offset);
    }
}

/* Reads /datasets/<name> and checks it against what was written. */
static void check_dataset(ember_ctx *ctx, ember__ckr *r, const char *name,
                          const ember_type *t, const unsigned char *recs,
                          const layout *l)
{
    char msg[EMBER_MSG_SIZE];
    ember_type got;
    void *data = NULL;
    size_t n = 99, nparts = 99;
    uint64_t *off = NULL;
    TU_OKM(ember__ckr_dataset(r, name, &got, &data, &n, &off, &nparts, msg), msg);
    assert_type_same(&got, t);
    assert_int_equal(n, layout_total(l));
    if (n && memcmp(data, recs, n * t->size) != 0)
        fail_msg("%s: records differ after the round trip", name);
    assert_int_equal(nparts, l->nparts);
    uint64_t at = 0;
    for (size_t p = 0; p < l->nparts; p++) {
        assert_int_equal(off[p], at);
        unsigned char *buf = malloc(l->count[p] * t->size + 1);
        assert_non_null(buf);
        TU_OKM(ember__ckr_slice(r, name, t, at, l->count[p], buf, msg), msg);
        assert_memory_equal(buf, recs + at * t->size, l->count[p] * t->size);
        free(buf);
        at += l->count[p];
    }
    assert_int_equal(off[l->nparts], at);
    ember__free(ctx, data);
    ember__free(ctx, off);
}

static const ember__ck_meta plain_meta = {.kind = "dataset"};

/* Writes every type in every layout into one file, reads it all back. */
static void roundtrip_types(const ember_type *types, size_t ntypes,
                            const char *file)
{
    char msg[EMBER_MSG_SIZE], name[EMBER_NAME_SIZE];
    ember_ctx *ctx = tu_ctx(2);
    ember__ckw *w = NULL;
    unsigned char *recs[16][NLAYOUTS];
    assert_true(ntypes <= 16);
    TU_OKM(ember__ckw_begin(ctx, &w, ".", file, &plain_meta, msg), msg);
    for (size_t i = 0; i < ntypes; i++)
        for (size_t j = 0; j < NLAYOUTS; j++) {
            recs[i][j] = make_records(&types[i], layout_total(&layouts[j]),
                                      1000 * i + j);
            ember__buf *parts = layout_parts(&layouts[j], &types[i], recs[i][j]);
            snprintf(name, sizeof name, "t%zu_l%zu", i, j);
            TU_OKM(ember__ckw_parts(w, name, &types[i], parts, layouts[j].nparts,
                                    msg), msg);
            free(parts);
        }
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    assert_null(w);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, file, msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    char *names = NULL;
    size_t nnames = 0;
    TU_OKM(ember__ckr_list(r, "/datasets", &names, &nnames, msg), msg);
    assert_int_equal(nnames, ntypes * NLAYOUTS);
    ember__free(ctx, names);
    for (size_t i = 0; i < ntypes; i++)
        for (size_t j = 0; j < NLAYOUTS; j++) {
            snprintf(name, sizeof name, "t%zu_l%zu", i, j);
            check_dataset(ctx, r, name, &types[i], recs[i][j], &layouts[j]);
            free(recs[i][j]);
        }
    ember__ckr_close(&r);
    assert_null(r);
    ember_ctx_destroy(&ctx);
    unlink(file);
}

/* ---- round trips --------------------------------------------------------- */

static void test_ckptfile_roundtrip_scalars(void **state)
{
    (void)state;
    ember_type t[5];
    for (int k = EMBER_I32; k <= EMBER_F64; k++)
        t[k - 1] = ember_type_scalar((ember_scalar)k);
    roundtrip_types(t, 5, "scalars.h5");
}

static void test_ckptfile_roundtrip_pairs(void **state)
{
    (void)state;
    ember_type t[4] = {ember_type_pair(EMBER_I64, EMBER_F64),
                       ember_type_pair(EMBER_I32, EMBER_F32),
                       ember_type_pair(EMBER_U64, EMBER_I32), /* tail padding */
                       ember_type_pair(EMBER_F32, EMBER_F64)}; /* inner padding */
    roundtrip_types(t, 4, "pairs.h5");
}

static void test_ckptfile_roundtrip_structs(void **state)
{
    (void)state;
    ember_field x16 = {.name = "x", .kind = EMBER_F64, .count = 16};
    ember_type t[3] = {point16_type(), make_struct(&x16, 1), mixed_type()};
    assert_int_equal(t[0].size, 8 + 16 * 8);
    roundtrip_types(t, 3, "structs.h5");
}

typedef struct {
    int64_t key;
    double value;
} kv;

static int negate_value(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const kv *a = in;
    kv *b = out;
    for (size_t i = 0; i < n; i++) {
        b[i].key = a[i].key;
        b[i].value = -a[i].value;
    }
    return 0;
}

/* ember__ckw_ds (save.c) computes a dataset into a checkpoint file: here 10
 * records in 16 partitions, so most are empty. */
static void test_ckptfile_dataset_computed(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(4);
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    kv in[10], want[10];
    for (int i = 0; i < 10; i++) {
        in[i] = (kv){i * 7 - 20, i * 0.25 - 1.0};
        want[i] = (kv){in[i].key, -in[i].value};
    }
    ember_ds *src = NULL, *neg = NULL;
    TU_OKM(ember_from_array(&src, ctx, &t, in, 10, 16, EMBER_COPY, msg), msg);
    TU_OKM(ember_map(&neg, src, NULL, negate_value, NULL, 0, msg), msg);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "computed.h5", &plain_meta, msg), msg);
    TU_OKM(ember__ckw_ds(w, "neg", neg, msg), msg);
    TU_OKM(ember__ckw_ds(w, "src", src, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "computed.h5", msg), msg);
    ember_type got;
    void *data = NULL;
    size_t n = 0, nparts = 0;
    uint64_t *off = NULL;
    TU_OKM(ember__ckr_dataset(r, "neg", &got, &data, &n, &off, &nparts, msg), msg);
    assert_type_same(&got, &t);
    assert_int_equal(n, 10);
    assert_memory_equal(data, want, sizeof want);
    assert_int_equal(nparts, 16);
    for (size_t p = 0, at = 0; p < 16; p++) {
        assert_int_equal(off[p], at);
        at += tu_part_len(10, 16, p);
    }
    assert_int_equal(off[16], 10);
    ember__free(ctx, data);
    ember__free(ctx, off);
    TU_OKM(ember__ckr_dataset(r, "src", &got, &data, &n, NULL, NULL, msg), msg);
    assert_memory_equal(data, in, sizeof in);
    ember__free(ctx, data);
    ember__ckr_close(&r);
    ember_ds_free(&neg);
    ember_ds_free(&src);
    ember_ctx_destroy(&ctx);
    unlink("computed.h5");
}

/* ---- scalars and blobs --------------------------------------------------- */

static void test_ckptfile_scalars_and_arrays(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], name[EMBER_NAME_SIZE];
    ember_ctx *ctx = tu_ctx(2);
    unsigned char one[5][8], arr[5][37 * 8];
    uint64_t seed = 42;
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "sc.h5", &plain_meta, msg), msg);
    for (int k = EMBER_I32; k <= EMBER_F64; k++) {
        size_t es = ember_scalar_size((ember_scalar)k);
        fill_value(one[k - 1], (ember_scalar)k, &seed, 5); /* a special value */
        for (size_t i = 0; i < 37; i++)
            fill_value(arr[k - 1] + i * es, (ember_scalar)k, &seed, i);
        snprintf(name, sizeof name, "%s_one", ember_scalar_name((ember_scalar)k));
        TU_OKM(ember__ckw_scalars(w, name, (ember_scalar)k, one[k - 1], 1, msg), msg);
        snprintf(name, sizeof name, "%s_arr", ember_scalar_name((ember_scalar)k));
        TU_OKM(ember__ckw_scalars(w, name, (ember_scalar)k, arr[k - 1], 37, msg), msg);
    }
    /* names that cannot be entries */
    int64_t v = 1;
    assert_int_equal(ember__ckw_scalars(w, "", EMBER_I64, &v, 1, msg), EMBER_EINVAL);
    assert_int_equal(ember__ckw_scalars(w, "a/b", EMBER_I64, &v, 1, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "a/b");
    assert_int_equal(ember__ckw_scalars(w, "a_name_of_exactly_thirty_two_chr",
                                        EMBER_I64, &v, 1, msg),
                     EMBER_EINVAL);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "sc.h5", msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    char *names = NULL;
    size_t n = 0;
    TU_OKM(ember__ckr_list(r, "/scalars", &names, &n, msg), msg);
    assert_int_equal(n, 10);
    assert_string_equal(names, "f32_arr"); /* listed by name */
    ember__free(ctx, names);
    for (int k = EMBER_I32; k <= EMBER_F64; k++) {
        unsigned char got[37 * 8];
        size_t es = ember_scalar_size((ember_scalar)k);
        const char *kn = ember_scalar_name((ember_scalar)k);
        snprintf(name, sizeof name, "%s_one", kn);
        memset(got, 0xab, sizeof got);
        TU_OKM(ember__ckr_scalars(r, name, (ember_scalar)k, got, 1, msg), msg);
        assert_memory_equal(got, one[k - 1], es);
        snprintf(name, sizeof name, "%s_arr", kn);
        TU_OKM(ember__ckr_scalars(r, name, (ember_scalar)k, got, 37, msg), msg);
        assert_memory_equal(got, arr[k - 1], 37 * es);
        /* the stored count and kind must match */
        assert_int_equal(ember__ckr_scalars(r, name, (ember_scalar)k, got, 36, msg),
                         EMBER_ETYPE);
        TU_MSG_HAS(msg, name);
        ember_scalar other = k == EMBER_F64 ? EMBER_I64 : (ember_scalar)(k + 1);
        assert_int_equal(ember__ckr_scalars(r, name, other, got, 37, msg),
                         EMBER_ETYPE);
    }
    double d;
    assert_int_equal(ember__ckr_scalars(r, "absent", EMBER_F64, &d, 1, msg),
                     EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "absent");
    ember__ckr_close(&r);
    ember_ctx_destroy(&ctx);
    unlink("sc.h5");
}

/* The checkpoint at path verifies and holds exactly want[0..n) as "x". */
static void assert_reads_back(ember_ctx *ctx, const char *path, const double *want,
                              size_t n)
{
    char msg[EMBER_MSG_SIZE];
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, path, msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    double *got = malloc(n * sizeof *got);
    assert_non_null(got);
    TU_OKM(ember__ckr_scalars(r, "x", EMBER_F64, got, n, msg), msg);
    assert_memory_equal(got, want, n * sizeof *got);
    free(got);
    ember__ckr_close(&r);
}

/* A file built in memory leaves its image for the next one; reserving room
 * for a bigger next file grows it at once (the image is not grown 64 KiB at
 * a time while HDF5 writes), and the bigger file still reads back. */
static void test_ckptfile_image_reserve_grows(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(2);
    ember__ckimg img;
    memset(&img, 0, sizeof img);
    static double big[1 << 18];
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        big[i] = (double)i * 0.5;
    assert_int_equal(ember__ckimg_reserve(ctx, &img, (size_t)1 << 16), EMBER_OK);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin_image(ctx, &w, ".", "im.h5", &plain_meta, &img, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "x", EMBER_F64, big, 16, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    assert_true(img.len > 0);
    size_t want = sizeof big + ((size_t)2 << 20);
    assert_int_equal(ember__ckimg_reserve(ctx, &img, want), EMBER_OK);
    assert_true(img.cap >= want);
    TU_OKM(ember__ckw_begin_image(ctx, &w, ".", "im.h5", &plain_meta, &img, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "x", EMBER_F64, big, sizeof big / sizeof big[0], msg),
           msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    assert_reads_back(ctx, "im.h5", big, sizeof big / sizeof big[0]);
    ember__ckimg_free(ctx, &img);
    ember_ctx_destroy(&ctx);
    unlink("im.h5");
}

/* Where O_DIRECT is refused (some file systems do, at open or at the
 * write; the image's refuse_direct makes the open fail with EINVAL as they
 * do), a file built in memory is written buffered. A spare longer than the
 * new file is written over (the commit must cut it to the image's length):
 * the committed file is the sealed image byte for byte, verifies, and
 * reads back. */
static void test_ckptfile_image_buffered_fallback(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    const char *dir = "fbdir", *path = "fbdir/fb.h5", *spare = "fbdir/" EMBER__CK_SPARE;
    assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
    int fd = open(spare, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static unsigned char junk[1 << 21];
    memset(junk, 0xa5, sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    ember_ctx *ctx = tu_ctx(2);
    ember__ckimg img;
    memset(&img, 0, sizeof img);
    img.refuse_direct = 1;
    static double x[100000];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (double)i / 3.0;
    ember__ckw *w = NULL;
    uint64_t bytes = 0;
    TU_OKM(ember__ckw_begin_image(ctx, &w, dir, "fb.h5", &plain_meta, &img, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "x", EMBER_F64, x, sizeof x / sizeof x[0], msg), msg);
    TU_OKM(ember__ckw_commit(&w, &bytes, NULL, msg), msg);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, img.len);
    assert_int_equal(bytes, img.len);
    assert_true(img.len < sizeof junk);
    assert_int_equal(stat(spare, &st), -1); /* the spare became the file */
    unsigned char *file = malloc(img.len);
    assert_non_null(file);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, file, img.len), (ssize_t)img.len);
    close(fd);
    assert_memory_equal(file, img.buf, img.len);
    free(file);
    assert_reads_back(ctx, path, x, sizeof x / sizeof x[0]);
    ember__ckimg_free(ctx, &img);
    ember_ctx_destroy(&ctx);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

/* The spare (a retired checkpoint a commit writes over) is written over
 * only when nothing outside the run reaches it: a symbolic link by its
 * name, a hard link (cp -al) or a reader's open descriptor keep the bytes
 * they had, and the commit writes a new file. A plain spare is still
 * written over where leases work (they say nothing else has it open). */
static void test_ckptfile_spare_not_written_through(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    const char *dir = "spdir", *path = "spdir/sp.h5", *spare = "spdir/" EMBER__CK_SPARE;
    const char *outside = "spoutside.bin";
    static const char mine[] = "bytes that are not ember's to overwrite";
    assert_true(mkdir(dir, 0755) == 0 || errno == EEXIST);
    ember_ctx *ctx = tu_ctx(2);
    ember__ckimg img;
    memset(&img, 0, sizeof img);
    static double x[200000];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = (double)i / 7.0;
    for (int how = 0; how < 4; how++) { /* symlink, hard link, open, plain */
        unlink(path);
        unlink(spare);
        tu_spit(outside, mine, sizeof mine);
        int held = -1;
        if (how == 0)
            assert_int_equal(symlink("../spoutside.bin", spare), 0);
        else if (how == 1)
            assert_int_equal(link(outside, spare), 0);
        else {
            assert_int_equal(rename(outside, spare), 0);
            if (how == 2)
                assert_true((held = open(spare, O_RDONLY)) >= 0);
        }
        struct stat before, after;
        assert_int_equal(stat(spare, &before), 0);
        ember__ckw *w = NULL;
        TU_OKM(ember__ckw_begin_image(ctx, &w, dir, "sp.h5", &plain_meta, &img, msg), msg);
        TU_OKM(ember__ckw_scalars(w, "x", EMBER_F64, x, sizeof x / sizeof x[0], msg), msg);
        TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
        assert_int_equal(lstat(path, &after), 0);
        assert_true(S_ISREG(after.st_mode));
        assert_reads_back(ctx, path, x, sizeof x / sizeof x[0]);
        if (how == 3) {
            if (tu_leases_work(dir))
                assert_true(after.st_ino == before.st_ino);
            continue;
        }
        assert_true(after.st_ino != before.st_ino);
        size_t n = 0;
        unsigned char *b = NULL;
        if (held >= 0) { /* what the reader has open is what it had */
            b = malloc(sizeof mine);
            assert_non_null(b);
            n = (size_t)pread(held, b, sizeof mine, 0);
            close(held);
        } else {
            b = tu_slurp(outside, &n);
            unlink(outside);
        }
        assert_int_equal(n, sizeof mine);
        assert_memory_equal(b, mine, sizeof mine);
        free(b);
    }
    ember__ckimg_free(ctx, &img);
    ember_ctx_destroy(&ctx);
    unlink(path);
    unlink(spare);
    assert_int_equal(rmdir(dir), 0);
}

/* Reads a whole file into memory (*n bytes). */
static unsigned char *slurp(const char *path, size_t *n)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    assert_non_null(b);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, b, (size_t)st.st_size), (ssize_t)st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return b;
}

/* Where each chunk of dataset path of file lies, and its stored size. */
static size_t chunk_places(const char *file, const char *path, haddr_t *addr,
                           hsize_t *size, size_t max)
{
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t n = 0;
    assert_true(f >= 0 && d >= 0 && sp >= 0);
    assert_true(H5Dget_num_chunks(d, sp, &n) >= 0);
    assert_true(n <= max);
    for (hsize_t i = 0; i < n; i++) {
        hsize_t off = 0;
        unsigned mask = 0;
        assert_true(H5Dget_chunk_info(d, sp, i, &off, &mask, &addr[i], &size[i]) >= 0);
    }
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    ember__h5_unlock();
    return (size_t)n;
}

/* How many chunks of dataset path the image of file (just committed)
 * holds as the file does: 0 for a chunk that went to the file from where
 * it lay (its span), never copied into the image. */
static size_t image_holds(const ember__ckimg *img, const char *file, const char *path)
{
    haddr_t addr[8];
    hsize_t size[8];
    size_t n = chunk_places(file, path, addr, size, 8), len, held = 0;
    unsigned char *b = slurp(file, &len);
    for (size_t c = 0; c < n; c++)
        held += memcmp(img->buf + 512 + addr[c], b + 512 + addr[c], size[c]) == 0;
    free(b);
    return held;
}

/* ember's image driver (HDF5 1.10) makes the file the core driver makes:
 * the same length, every chunk at the same place with the same stored
 * bytes (its checksum included), the other bytes the same but for the
 * time stamps; the chunks of kept memory were taken by reference, not
 * copied, until the seal, and were written to the file from where they
 * lie (their spans). So it does when that write is refused (a device of
 * 4 KiB sectors: the spans are copied into the image then), and when the
 * chunks' memory is not aligned for O_DIRECT (copied at the seal). Every
 * file verifies and reads back. */
static void test_ckptfile_image_driver_same_file(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(2);
    size_t n = 300001, nn = 100000;
    uint64_t off[4] = {0, 1000, 262144, n};
    ember__chunks ds = {0}, note = {0};
    TU_OK(ember__chunks_layout(ctx, &ds, sizeof(double), n));
    TU_OK(ember__chunks_layout(ctx, &note, sizeof(int32_t), nn));
    double *x = malloc(n * sizeof *x);
    int32_t *ids = malloc(nn * sizeof *ids);
    assert_non_null(x);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++)
        x[i] = (double)i / 7.0;
    for (size_t i = 0; i < nn; i++)
        ids[i] = (int32_t)(nn - i);
    for (size_t i = 0; i * ds.chunk < n; i++)
        ember__chunks_fill(&ds, i, x + i * ds.chunk);
    for (size_t i = 0; i * note.chunk < nn; i++)
        ember__chunks_fill(&note, i, ids + i * note.chunk);
    ember_type f64 = ember_type_scalar(EMBER_F64), i32 = ember_type_scalar(EMBER_I32);
    enum { CORE, SPANS, REFUSED, UNALIGNED, FILES };
    const char *files[FILES] = {"drv-core.h5", "drv-image.h5", "drv-refused.h5",
                                "drv-unaligned.h5"};
    unsigned char *aligned = ds.slots;
    for (int k = 0; k < FILES; k++) {
        ember__ckimg img;
        memset(&img, 0, sizeof img);
        img.core = k == CORE;
        img.refuse_spans = k == REFUSED;
        /* the slots moved by 64 bytes (the last slot's padding, 508
         * bytes at this chunk size, takes the shift) */
        ds.slots = k == UNALIGNED ? aligned + 64 : aligned;
        for (size_t i = 0; k == UNALIGNED && i * ds.chunk < n; i++)
            ember__chunks_fill(&ds, i, x + i * ds.chunk);
        /* an image that held another file: no stale byte may show */
        TU_OK(ember__ckimg_reserve(ctx, &img, (size_t)16 << 20));
        memset(img.buf, 0xa5, img.cap);
        ember__ckw *w = NULL;
        TU_OKM(ember__ckw_begin_image(ctx, &w, ".", files[k], &plain_meta, &img, msg), msg);
        ember__ckw_keep(w, ds.mem.data, ds.mem.cap);
        ember__ckw_keep(w, note.mem.data, note.mem.cap);
        TU_OKM(ember__ckw_chunks(w, "x", &f64, &ds, off, 3, msg), msg);
        TU_OKM(ember__ckw_chunks(w, "ids", &i32, &note, NULL, 0, msg), msg);
        TU_OKM(ember__ckw_scalars(w, "s", EMBER_F64, x, 10, msg), msg);
        TU_OKM(ember__ckw_blob(w, "b", ids, 300, msg), msg);
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 /* ember's driver is built */
        assert_int_equal(img.refs.n, k == CORE ? 0 : 3 + 1); /* whole chunks only */
#endif
        TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
        /* the chunks copied into the image: all of them with the core
         * driver or after a refusal (the test's, or a device's of 4 KiB
         * sectors), else those not aligned (x's, shifted) */
        int all = k == CORE || k == REFUSED || img.no_spans;
        assert_int_equal(image_holds(&img, files[k], "/datasets/x"),
                         all || k == UNALIGNED ? 3 : 0);
        assert_int_equal(image_holds(&img, files[k], "/scalars/ids"), all ? 1 : 0);
#endif
        ember__ckimg_free(ctx, &img);
        ember__ckr *r = NULL;
        TU_OKM(ember__ckr_open(ctx, &r, files[k], msg), msg);
        TU_OKM(ember__ckr_verify(r, msg), msg);
        ember_type t;
        void *data = NULL;
        size_t got = 0, nparts = 0;
        uint64_t *offs = NULL;
        TU_OKM(ember__ckr_dataset(r, "x", &t, &data, &got, &offs, &nparts, msg), msg);
        assert_int_equal(got, n);
        assert_int_equal(nparts, 3);
        assert_memory_equal(offs, off, sizeof off);
        assert_memory_equal(data, x, n * sizeof *x);
        ember__free(ctx, data);
        ember__free(ctx, offs);
        int32_t *back = malloc(nn * sizeof *back);
        assert_non_null(back);
        TU_OKM(ember__ckr_scalars(r, "ids", EMBER_I32, back, nn, msg), msg);
        assert_memory_equal(back, ids, nn * sizeof *ids);
        free(back);
        ember__ckr_close(&r);
    }
    for (int k = SPANS; k < FILES; k++) {
        size_t na, nb;
        unsigned char *a = slurp(files[CORE], &na), *b = slurp(files[k], &nb);
        assert_int_equal(na, nb);
        haddr_t pa[8], pb[8];
        hsize_t sa[8], sb[8];
        const char *paths[2] = {"/datasets/x", "/scalars/ids"};
        for (int p = 0; p < 2; p++) {
            size_t ca = chunk_places(files[CORE], paths[p], pa, sa, 8);
            assert_int_equal(chunk_places(files[k], paths[p], pb, sb, 8), ca);
            assert_int_equal(ca, p == 0 ? 3 : 1);
            for (size_t c = 0; c < ca; c++) {
                assert_int_equal(pa[c], pb[c]);
                assert_int_equal(sa[c], sb[c]);
                assert_int_equal((512 + pa[c]) % 512, 0); /* for O_DIRECT */
                assert_memory_equal(a + 512 + pa[c], b + 512 + pb[c], sa[c]);
                memset(a + 512 + pa[c], 0, sa[c]); /* compared */
                memset(b + 512 + pb[c], 0, sb[c]);
            }
        }
        size_t differ = 0;
        for (size_t i = 512; i < na; i++) /* after the checksum header */
            differ += a[i] != b[i];
        assert_true(differ < 128); /* object time stamps, their checksums, `created` */
        free(a);
        free(b);
    }
    free(x);
    free(ids);
    ember__buf_free(ctx, &ds.mem);
    ember__buf_free(ctx, &note.mem);
    ember_ctx_destroy(&ctx);
    for (int k = 0; k < FILES; k++)
        unlink(files[k]);
}

#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
/* What the driver tests below share: 2 MiB of random bytes in memory the
 * writer keeps (aligned for O_DIRECT), 1 MiB of other bytes and a 1 MiB
 * buffer, and a writer of `file` on a 4 MiB image (filled with 0xa5),
 * whose HDF5 file id is found among the open files, the HDF5 lock held. */
typedef struct {
    ember_ctx *ctx;
    unsigned char *kept, *other, *back;
    ember__ckimg img;
    ember__ckw *w;
    hid_t fid;
} drv_fixture;

#define DRV_MIB ((size_t)1 << 20)

static void drv_begin(drv_fixture *f, const char *file, uint64_t seed)
{
    char msg[EMBER_MSG_SIZE];
    memset(f, 0, sizeof *f);
    f->ctx = tu_ctx(1);
    f->kept = aligned_alloc(512, 2 * DRV_MIB);
    f->other = malloc(DRV_MIB);
    f->back = malloc(DRV_MIB);
    assert_non_null(f->kept);
    assert_non_null(f->other);
    assert_non_null(f->back);
    for (size_t i = 0; i < 2 * DRV_MIB; i++)
        f->kept[i] = (unsigned char)tu_rand(&seed);
    for (size_t i = 0; i < DRV_MIB; i++)
        f->other[i] = (unsigned char)(i * 31 + 5);
    TU_OK(ember__ckimg_reserve(f->ctx, &f->img, (size_t)4 << 20));
    memset(f->img.buf, 0xa5, f->img.cap);
    TU_OKM(ember__ckw_begin_image(f->ctx, &f->w, ".", file, &plain_meta, &f->img, msg),
           msg);
    ember__ckw_keep(f->w, f->kept, 2 * DRV_MIB);
    ember__h5_lock();
    f->fid = -1;
    assert_int_equal(H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_FILE, 1, &f->fid), 1);
}

/* Releases the lock and commits the file. */
static void drv_commit(drv_fixture *f)
{
    char msg[EMBER_MSG_SIZE];
    ember__h5_unlock();
    TU_OKM(ember__ckw_commit(&f->w, NULL, NULL, msg), msg);
}

/* Frees the image, saves the kept MiB at `save` in back and clears the
 * kept bytes (the file must not depend on them now); the file verifies. */
static void drv_verify(drv_fixture *f, const char *file, size_t save)
{
    char msg[EMBER_MSG_SIZE];
    ember__ckimg_free(f->ctx, &f->img);
    memcpy(f->back, f->kept + save, DRV_MIB);
    memset(f->kept, 0, 2 * DRV_MIB);
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(f->ctx, &r, file, msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    ember__ckr_close(&r);
}

/* Reads dataset `name` of `file` whole into out. */
static void drv_read(const char *file, const char *name, void *out)
{
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dread(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    ember__h5_unlock();
}

static void drv_end(drv_fixture *f, const char *file)
{
    free(f->kept);
    free(f->other);
    free(f->back);
    ember_ctx_destroy(&f->ctx);
    unlink(file);
}
#endif

/* The image driver's rarer paths, made by HDF5 calls on the file being
 * written: a chunk read back while it is only a reference (served from
 * it), and a chunk written again from memory that is not kept, over its
 * reference (the reference copied in first, then overwritten). The file
 * then holds the new chunk and the other, which still went from where it
 * lies (its span), and it verifies. */
static void test_ckptfile_image_driver_rewrite(void **state)
{
    (void)state;
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
    const char *file = "drv-rewrite.h5";
    const size_t mib = DRV_MIB;
    drv_fixture f;
    drv_begin(&f, file, 7);
    hsize_t dims = 2 * mib, chunk = mib, at0 = 0, at1 = mib;
    hid_t sp = H5Screate_simple(1, &dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &chunk) >= 0);
    hid_t d = H5Dcreate2(f.fid, "raw", H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0, &at0, mib, f.kept) >= 0);
    assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0, &at1, mib, f.kept + mib) >= 0);
    assert_int_equal(f.img.refs.n, 2);
    uint32_t filters = 1;
    assert_true(H5Dread_chunk(d, H5P_DEFAULT, &at0, &filters, f.back) >= 0);
    assert_memory_equal(f.back, f.kept, mib);
    assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0, &at0, mib, f.other) >= 0);
    assert_int_equal(f.img.refs.n, 1); /* chunk 0's reference settled */
    assert_true(H5Dread_chunk(d, H5P_DEFAULT, &at0, &filters, f.back) >= 0);
    assert_memory_equal(f.back, f.other, mib);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    drv_commit(&f);
    /* chunk 0 in the image; chunk 1 went from kept (but for a device that
     * refused it) */
    assert_int_equal(image_holds(&f.img, file, "/raw"), f.img.no_spans ? 2 : 1);
    drv_verify(&f, file, mib);
    unsigned char *all = malloc(2 * mib);
    assert_non_null(all);
    drv_read(file, "raw", all);
    assert_memory_equal(all, f.other, mib);
    assert_memory_equal(all + mib, f.back, mib);
    free(all);
    drv_end(&f, file);
#endif
}

/* The image driver's shrink: a dataset at the end of the file deleted and
 * the file flushed, HDF5 gives the space back and truncates the file below
 * a chunk taken by reference; the reference is copied in and dropped, and
 * a later dataset written over that space holds its own bytes. The
 * committed file verifies and reads back. */
static void test_ckptfile_image_driver_shrink(void **state)
{
    (void)state;
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
    const char *file = "drv-shrink.h5";
    const size_t mib = DRV_MIB;
    drv_fixture f;
    drv_begin(&f, file, 11);
    hsize_t dims = mib, at0 = 0;
    hid_t sp = H5Screate_simple(1, &dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, 1, &dims) >= 0);
    const char *names[2] = {"a", "b"};
    for (size_t k = 0; k < 2; k++) {
        hid_t d = H5Dcreate2(f.fid, names[k], H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, dcpl,
                             H5P_DEFAULT);
        assert_true(d >= 0);
        assert_true(H5Dwrite_chunk(d, H5P_DEFAULT, 0, &at0, mib, f.kept + k * mib) >= 0);
        H5Dclose(d);
    }
    assert_int_equal(f.img.refs.n, 2);
    size_t len = f.img.len;
    assert_true(H5Ldelete(f.fid, "b", H5P_DEFAULT) >= 0);
    assert_true(H5Fflush(f.fid, H5F_SCOPE_GLOBAL) >= 0);
    assert_true(f.img.len < len);      /* truncated below "b"'s chunk */
    assert_int_equal(f.img.refs.n, 1); /* whose reference was settled */
    hid_t d = H5Dcreate2(f.fid, "c", H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, f.other) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    drv_commit(&f);
    drv_verify(&f, file, 0);
    unsigned char *got = malloc(mib);
    assert_non_null(got);
    ember__h5_lock();
    hid_t h = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    assert_int_equal(H5Lexists(h, "b", H5P_DEFAULT), 0);
    H5Fclose(h);
    ember__h5_unlock();
    drv_read(file, "a", got);
    assert_memory_equal(got, f.back, mib);
    drv_read(file, "c", got);
    assert_memory_equal(got, f.other, mib);
    free(got);
    drv_end(&f, file);
#endif
}

static void test_ckptfile_blobs(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], name[EMBER_NAME_SIZE];
    static const size_t sizes[] = {0, 1, 3, 65536, 200003};
    unsigned char *blob[5];
    ember_ctx *ctx = tu_ctx(2);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "blobs.h5", &plain_meta, msg), msg);
    for (size_t i = 0; i < 5; i++) {
        blob[i] = malloc(sizes[i] + 1);
        assert_non_null(blob[i]);
        uint64_t seed = i;
        for (size_t b = 0; b < sizes[i]; b++)
            blob[i][b] = (unsigned char)tu_rand(&seed);
        snprintf(name, sizeof name, "b%zu", i);
        TU_OKM(ember__ckw_blob(w, name, blob[i], sizes[i], msg), msg);
    }
    assert_int_equal(ember__ckw_blob(w, "x/y", blob[1], 1, msg), EMBER_EINVAL);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "blobs.h5", msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    char *names = NULL;
    size_t n = 0;
    TU_OKM(ember__ckr_list(r, "/blobs", &names, &n, msg), msg);
    assert_int_equal(n, 5);
    ember__free(ctx, names);
    for (size_t i = 0; i < 5; i++) {
        unsigned char *got = malloc(sizes[i] + 1);
        assert_non_null(got);
        memset(got, 0x5a, sizes[i] + 1);
        snprintf(name, sizeof name, "b%zu", i);
        TU_OKM(ember__ckr_blob(r, name, got, sizes[i], msg), msg);
        assert_memory_equal(got, blob[i], sizes[i]);
        assert_int_equal(got[sizes[i]], 0x5a); /* nothing written past it */
        assert_int_equal(ember__ckr_blob(r, name, got, sizes[i] + 1, msg),
                         EMBER_ETYPE);
        TU_MSG_HAS(msg, name);
        free(got);
        free(blob[i]);
    }
    unsigned char b;
    assert_int_equal(ember__ckr_blob(r, "nope", &b, 1, msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "nope");
    ember__ckr_close(&r);
    ember_ctx_destroy(&ctx);
    unlink("blobs.h5");
}

/* ---- root attributes ----------------------------------------------------- */

static void test_ckptfile_root_attributes(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(3);
    ember__ck_meta m = {.kind = "loop",
                        .program = "ember-pagerank",
                        .parameters = "alpha=0.85\ntol=1e-9\n",
                        .signature = "ranks: f64\nstep: i64\n",
                        .lineage = "map #3\n  range #1\n",
                        .iteration = 0xfedcba9876543210ULL,
                        .fingerprint = 0x0123456789abcdefULL};
    time_t before = time(NULL);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "attrs.h5", &m, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    time_t after = time(NULL);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "attrs.h5", msg), msg);
    const ember__ck_info *i = ember__ckr_info(r);
    assert_int_equal(i->format_version, EMBER_CHECKPOINT_FORMAT);
    assert_string_equal(i->kind, "loop");
    assert_string_equal(i->ember_version, EMBER_VERSION_STRING);
    assert_string_equal(i->program, m.program);
    assert_string_equal(i->parameters, m.parameters);
    assert_string_equal(i->signature, m.signature);
    assert_string_equal(i->lineage, m.lineage);
    assert_true(i->iteration == m.iteration);
    assert_true(i->fingerprint == m.fingerprint);
    assert_int_equal(i->threads, 3);
    /* created: UTC, ISO 8601, between the two clock readings */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char z = 0, extra = 0;
    assert_int_equal(sscanf(i->created, "%4d-%2d-%2dT%2d:%2d:%2d%c%c", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                            &tm.tm_sec, &z, &extra),
                     7);
    assert_int_equal(z, 'Z');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t created = timegm(&tm);
    assert_true(created >= before && created <= after);
    TU_OKM(ember__ckr_verify(r, msg), msg); /* an empty checkpoint verifies */
    ember__ckr_close(&r);

    /* NULL strings are stored as "", a NULL kind as "dataset" */
    ember__ck_meta empty = {0};
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "attrs.h5", &empty, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    TU_OKM(ember__ckr_open(ctx, &r, "attrs.h5", msg), msg);
    i = ember__ckr_info(r);
    assert_string_equal(i->kind, "dataset");
    assert_string_equal(i->program, "");
    assert_string_equal(i->parameters, "");
    assert_string_equal(i->signature, "");
    assert_string_equal(i->lineage, "");
    assert_true(i->iteration == 0 && i->fingerprint == 0);
    ember__ckr_close(&r);
    ember_ctx_destroy(&ctx);
    unlink("attrs.h5");
}

/* ---- the atomic commit --------------------------------------------------- */

static void write_iteration(ember_ctx *ctx, const char *dir, const char *name,
                            uint64_t iteration)
{
    char msg[EMBER_MSG_SIZE];
    ember__ck_meta m = {.kind = "loop", .iteration = iteration};
    ember__ckw *w = NULL;
    int64_t v = (int64_t)iteration;
    TU_OKM(ember__ckw_begin(ctx, &w, dir, name, &m, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "it", EMBER_I64, &v, 1, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
}

static uint64_t read_iteration(ember_ctx *ctx, const char *path)
{
    char msg[EMBER_MSG_SIZE];
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, path, msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    uint64_t it = ember__ckr_info(r)->iteration;
    int64_t v = -1;
    TU_OKM(ember__ckr_scalars(r, "it", EMBER_I64, &v, 1, msg), msg);
    assert_int_equal(v, (int64_t)it);
    ember__ckr_close(&r);
    return it;
}

static void test_ckptfile_commit_is_atomic(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], path[1024];
    ember_ctx *ctx = tu_ctx(2);
    tu_rm_rf("atomic");
    assert_int_equal(mkdir("atomic", 0755), 0);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, "atomic", "c.h5", &plain_meta, msg), msg);
    assert_true(tu_exists("atomic/c.h5.tmp"));
    assert_false(tu_exists("atomic/c.h5"));
    int64_t vals[3] = {1, 2, 3};
    TU_OKM(ember__ckw_scalars(w, "v", EMBER_I64, vals, 3, msg), msg);
    assert_true(tu_exists("atomic/c.h5.tmp"));
    assert_false(tu_exists("atomic/c.h5"));
    uint64_t bytes = 0;
    memset(path, 'x', sizeof path);
    TU_OKM(ember__ckw_commit(&w, &bytes, path, msg), msg);
    assert_null(w);
    assert_string_equal(msg, "");
    assert_false(tu_exists("atomic/c.h5.tmp"));
    assert_true(tu_exists("atomic/c.h5"));
    assert_string_equal(path, "atomic/c.h5");
    assert_int_equal(bytes, tu_file_size("atomic/c.h5"));

    /* a commit over an existing file replaces it */
    write_iteration(ctx, "atomic", "c.h5", 7);
    assert_int_equal(read_iteration(ctx, "atomic/c.h5"), 7);
    assert_false(tu_exists("atomic/c.h5.tmp"));

    /* a stale .tmp (a crash) is replaced by the next writer */
    tu_spit("atomic/c.h5.tmp", "garbage", 7);
    write_iteration(ctx, "atomic", "c.h5", 8);
    assert_int_equal(read_iteration(ctx, "atomic/c.h5"), 8);
    assert_false(tu_exists("atomic/c.h5.tmp"));
    tu_rm_rf("atomic");
    ember_ctx_destroy(&ctx);
}

/* Another checkpoint renamed over the name after the first one's checksum
 * was verified and before libhdf5 opens the name: the open fails, naming
 * the file, rather than read a file nobody verified (here a sound one of
 * another iteration; it could as well be a damaged one). Through the
 * opening hook, for a full verification, for a header compared with
 * another rank's (ember__ckr_open_known), for a whole-dataset read and for
 * a writer adding a dataset. Without the hook's rename the same opens
 * succeed; so they do with a byte-identical copy renamed in (the same
 * header and size), which is the same file for every purpose. */
static const char *swap_from;
static void swap_in(const char *file)
{
    ember__h5_opening_hook = NULL; /* once */
    assert_int_equal(rename(swap_from, file), 0);
}

static void test_ckptfile_replaced_while_opening(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(1);
    tu_rm_rf("swap");
    assert_int_equal(mkdir("swap", 0755), 0);
    for (int known = 0; known < 2; known++) {
        write_iteration(ctx, "swap", "c.h5", 3);
        write_iteration(ctx, "swap", "other.h5", 4);
        unsigned char head[EMBER__FSUM_BLOCK];
        uint64_t size = 0;
        TU_OKM(ember__ck_head("swap/c.h5", head, &size, msg), msg);
        ember__ckr *r = NULL;
        swap_from = "swap/other.h5";
        ember__h5_opening_hook = swap_in;
        int rc = known ? ember__ckr_open_known(ctx, &r, "swap/c.h5", head, size, msg)
                       : ember__ckr_open(ctx, &r, "swap/c.h5", msg);
        ember__h5_opening_hook = NULL;
        assert_int_equal(rc, EMBER_ECORRUPT);
        assert_null(r);
        assert_non_null(strstr(msg, "swap/c.h5"));
        assert_non_null(strstr(msg, "replaced while being opened"));
        assert_false(tu_exists("swap/other.h5")); /* the rename did happen */
        /* the name now holds the other file, which opens as itself */
        assert_int_equal(read_iteration(ctx, "swap/c.h5"), 4);
    }
    /* The same for a whole-dataset read and for a writer adding a dataset
     * (which would seal the file it had not verified). */
    for (int writer = 0; writer < 2; writer++) {
        write_iteration(ctx, "swap", "other.h5", 5 + (uint64_t)writer);
        swap_from = "swap/other.h5";
        ember__h5_opening_hook = swap_in;
        int rc;
        if (writer) {
            ember_type t = ember_type_scalar(EMBER_I64);
            ember__h5w_opts o = {.fid = -1};
            ember__h5w *w = NULL;
            rc = ember__h5w_open(ctx, &w, "swap/c.h5", "/extra", &t, &o, msg);
            assert_null(w);
        } else {
            ember_type t;
            void *data = NULL;
            size_t n = 0;
            rc = ember__h5_read_all(ctx, "swap/c.h5", "/scalars/it", &t, &data, &n, msg);
            assert_null(data);
        }
        ember__h5_opening_hook = NULL;
        assert_int_equal(rc, EMBER_ECORRUPT);
        assert_non_null(strstr(msg, "replaced while being opened"));
        assert_non_null(strstr(msg, "swap/c.h5"));
        /* the reader's name now holds the other file; a writer works on
         * its own copy of the file (h5edit.c), which the swap hit, and the
         * file keeps what it held (the reader's round's swap) */
        assert_int_equal(read_iteration(ctx, "swap/c.h5"), 5);
        assert_false(tu_exists("swap/other.h5"));
    }
    /* a byte-identical copy renamed in opens (a copy: two writes of the
     * same state differ in their creation time) */
    assert_int_equal(system("cp swap/c.h5 swap/other.h5"), 0);
    ember__h5_opening_hook = swap_in;
    assert_int_equal(read_iteration(ctx, "swap/c.h5"), 5);
    assert_null(ember__h5_opening_hook);
    assert_false(tu_exists("swap/other.h5"));
    tu_rm_rf("swap");
    ember_ctx_destroy(&ctx);
}

static void test_ckptfile_abort_keeps_existing(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(2);
    unlink("keep.h5.tmp");
    write_iteration(ctx, ".", "keep.h5", 5);
    size_t size0, size1;
    unsigned char *before = tu_slurp("keep.h5", &size0);

    ember__ck_meta m = {.kind = "loop", .iteration = 6};
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "keep.h5", &m, msg), msg);
    int64_t v = 6;
    TU_OKM(ember__ckw_scalars(w, "it", EMBER_I64, &v, 1, msg), msg);
    TU_OKM(ember__ckw_blob(w, "rng", "0123456789", 10, msg), msg);
    assert_true(tu_exists("keep.h5.tmp"));
    ember__ckw_abort(&w);
    assert_null(w);
    assert_false(tu_exists("keep.h5.tmp"));
    unsigned char *after = tu_slurp("keep.h5", &size1);
    assert_int_equal(size0, size1);
    assert_memory_equal(before, after, size0);
    assert_int_equal(read_iteration(ctx, "keep.h5"), 5);
    free(before);
    free(after);
    ember__ckw_abort(&w);  /* *w NULL */
    ember__ckw_abort(NULL);
    ember_ctx_destroy(&ctx);
    unlink("keep.h5");
}

/* No such directory: the .tmp cannot be made, and the message names it. A
 * directory that vanishes (is renamed) while the file is written fails the
 * commit itself, naming the file; *w is freed either way. */
static void test_ckptfile_commit_missing_dir(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter c;
    tu_counter_reset(&c, 0);
    ember_allocator a = tu_allocator(&c);
    ember_ctx_opts o = {.threads = 2, .allocator = &a};
    ember_ctx *ctx = tu_ctx_opts(&o);
    ember__ckw *w = (ember__ckw *)&c; /* overwritten with NULL */
    assert_int_equal(ember__ckw_begin(ctx, &w, "no/such/dir", "x.h5", &plain_meta, msg),
                     EMBER_EIO);
    assert_null(w);
    TU_MSG_HAS(msg, "no/such/dir/x.h5");
    assert_false(tu_exists("no"));

    tu_rm_rf("going");
    tu_rm_rf("gone");
    assert_int_equal(mkdir("going", 0755), 0);
    TU_OKM(ember__ckw_begin(ctx, &w, "going", "x.h5", &plain_meta, msg), msg);
    double d = 1.5;
    TU_OKM(ember__ckw_scalars(w, "d", EMBER_F64, &d, 1, msg), msg);
    assert_int_equal(rename("going", "gone"), 0);
    assert_int_equal(ember__ckw_commit(&w, NULL, NULL, msg), EMBER_EIO);
    assert_null(w);
    TU_MSG_HAS(msg, "going/x.h5");
    assert_false(tu_exists("gone/x.h5"));
    tu_rm_rf("gone"); /* the .tmp moved along with its directory */
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
}

/* ---- detection ----------------------------------------------------------- */

#define PAT_N 2000

/* A file with a dataset, a scalar array and a blob, each a pattern that
 * occurs once in the file. */
static void write_patterns(ember_ctx *ctx, const char *file, uint64_t *recs,
                           int64_t *arr, unsigned char *blob)
{
    char msg[EMBER_MSG_SIZE];
    for (uint64_t i = 0; i < PAT_N; i++)
        recs[i] = 0xc0ffee0000000000ULL | (i * 0x10001ULL);
    for (int64_t i = 0; i < 64; i++)
        arr[i] = (int64_t)(0x5ca1a70000000000ULL | (uint64_t)(i * 0x1003));
    for (int i = 0; i < 4096; i++)
        blob[i] = (unsigned char)(i * 7 + i / 256);
    memcpy(blob + 1000, "BLOBMARKER", 10);
    ember_type t = ember_type_scalar(EMBER_U64);
    layout l = {3, {700, 0, PAT_N - 700}};
    ember__buf *parts = layout_parts(&l, &t, (unsigned char *)recs);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", file, &plain_meta, msg), msg);
    TU_OKM(ember__ckw_parts(w, "recs", &t, parts, 3, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "arr", EMBER_I64, arr, 64, msg), msg);
    TU_OKM(ember__ckw_blob(w, "blob", blob, 4096, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    free(parts);
}

/* HDF5 ids of any file still open: none after any call, good or bad. */
static long open_ids(void)
{
    ember__h5_lock();
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    ember__h5_unlock();
    return (long)n;
}

/* Damages one byte: the whole-file checksum refuses the file before HDF5
 * opens it. Then seals it again, as a crafted file with a valid checksum
 * would be, so that the checks behind the checksum (Fletcher32, the
 * layout) are what the caller tests next. */
static void damage_then_reseal(ember_ctx *ctx, const char *file, size_t off,
                               unsigned char mask)
{
    char msg[EMBER_MSG_SIZE];
    tu_flip(file, off, mask);
    ember__ckr *r = NULL;
    assert_int_equal(ember__ckr_open(ctx, &r, file, msg), EMBER_ECORRUPT);
    assert_null(r);
    TU_MSG_HAS(msg, file);
    TU_MSG_HAS(msg, "content checksum mismatch");
    assert_int_equal(open_ids(), 0);
    TU_OKM(ember__fsum_seal(file, msg), msg);
}

static void test_ckptfile_corrupt_dataset_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    static uint64_t recs[PAT_N];
    int64_t arr[64], arr2[64];
    unsigned char blob[4096], blob2[4096];
    ember_ctx *ctx = tu_ctx(2);
    write_patterns(ctx, "bad.h5", recs, arr, blob);
    damage_then_reseal(ctx, "bad.h5", tu_find_once("bad.h5", &recs[1234], 8) + 3,
                       0x10);

    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "bad.h5", msg), msg); /* metadata is fine */
    assert_int_equal(ember__ckr_verify(r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bad.h5");
    TU_MSG_HAS(msg, "recs");
    ember_type t;
    void *data = (void *)1;
    size_t n = 0, np = 0;
    uint64_t *off = (uint64_t *)1;
    assert_int_equal(ember__ckr_dataset(r, "recs", &t, &data, &n, &off, &np, msg),
                     EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bad.h5");
    assert_null(data);
    uint64_t part[PAT_N];
    ember_type u64 = ember_type_scalar(EMBER_U64);
    assert_int_equal(ember__ckr_slice(r, "recs", &u64, 700, PAT_N - 700, part, msg),
                     EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bad.h5");
    /* the other entries still read */
    TU_OKM(ember__ckr_scalars(r, "arr", EMBER_I64, arr2, 64, msg), msg);
    assert_memory_equal(arr, arr2, sizeof arr);
    TU_OKM(ember__ckr_blob(r, "blob", blob2, 4096, msg), msg);
    assert_memory_equal(blob, blob2, sizeof blob);
    ember__ckr_close(&r);
    assert_int_equal(open_ids(), 0); /* every failed read closed its ids */
    ember_ctx_destroy(&ctx);
    unlink("bad.h5");
}

static void test_ckptfile_corrupt_scalars_and_blob_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    static uint64_t recs[PAT_N];
    int64_t arr[64], arr2[64];
    unsigned char blob[4096], blob2[4096];
    ember_ctx *ctx = tu_ctx(2);
    ember__ckr *r = NULL;

    write_patterns(ctx, "bads.h5", recs, arr, blob);
    damage_then_reseal(ctx, "bads.h5", tu_find_once("bads.h5", &arr[40], 8), 0x01);
    TU_OKM(ember__ckr_open(ctx, &r, "bads.h5", msg), msg);
    assert_int_equal(ember__ckr_verify(r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bads.h5");
    TU_MSG_HAS(msg, "/scalars/arr");
    assert_int_equal(ember__ckr_scalars(r, "arr", EMBER_I64, arr2, 64, msg),
                     EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bads.h5");
    ember__ckr_close(&r);

    write_patterns(ctx, "badb.h5", recs, arr, blob);
    damage_then_reseal(ctx, "badb.h5",
                       tu_find_once("badb.h5", "BLOBMARKER", 10) + 4, 0x80);
    TU_OKM(ember__ckr_open(ctx, &r, "badb.h5", msg), msg);
    assert_int_equal(ember__ckr_verify(r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "/blobs/blob");
    assert_int_equal(ember__ckr_blob(r, "blob", blob2, 4096, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "badb.h5");
    ember__ckr_close(&r);
    assert_int_equal(open_ids(), 0);
    ember_ctx_destroy(&ctx);
    unlink("bads.h5");
    unlink("badb.h5");
}

/* A checkpoint cut short (a crash, a full disk) never opens as good. */
static void test_ckptfile_truncated_detected(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    static uint64_t recs[PAT_N];
    int64_t arr[64];
    unsigned char blob[4096];
    ember_ctx *ctx = tu_ctx(2);
    write_patterns(ctx, "full.h5", recs, arr, blob);
    size_t size;
    unsigned char *whole = tu_slurp("full.h5", &size);
    size_t data_at = tu_find_once("full.h5", &recs[PAT_N / 2], 8);
    size_t cuts[] = {0, 1, 8, 100, 512, 2048, size / 3, data_at, size / 2,
                     size - 4096, size - 16, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_true(cuts[i] < size);
        tu_spit("cut.h5", whole, cuts[i]);
        ember__ckr *r = NULL;
        int rc = ember__ckr_open(ctx, &r, "cut.h5", msg);
        if (rc == EMBER_OK) {
            rc = ember__ckr_verify(r, msg);
            ember__ckr_close(&r);
        }
        if (rc != EMBER_ECORRUPT)
            fail_msg("cut at %zu of %zu: status %d (%s)", cuts[i], size, rc, msg);
        TU_MSG_HAS(msg, "cut.h5");
        assert_null(r);
    }
    /* the uncut copy is fine, so the cuts are what failed */
    tu_spit("cut.h5", whole, size);
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "cut.h5", msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    ember__ckr_close(&r);
    free(whole);
    ember_ctx_destroy(&ctx);
    unlink("cut.h5");
    unlink("full.h5");
}

/* An HDF5 file made with the raw API: one dataset, no ember attributes;
 * sealed with ember's checksum header when sealed is set. */
static void write_foreign(const char *file, int sealed)
{
    char msg[EMBER_MSG_SIZE];
    ember__h5_lock();
    hid_t fcpl = sealed ? (hid_t)ember__h5_fcpl() : H5P_DEFAULT;
    hid_t f = H5Fcreate(file, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (sealed)
        H5Pclose(fcpl);
    hsize_t dims = 4;
    hid_t s = H5Screate_simple(1, &dims, NULL);
    hid_t d = H5Dcreate2(f, "values", H5T_NATIVE_DOUBLE, s, H5P_DEFAULT,
                         H5P_DEFAULT, H5P_DEFAULT);
    double v[4] = {1, 2, 3, 4};
    herr_t wr = H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(f);
    ember__h5_unlock();
    assert_true(f >= 0 && d >= 0 && wr >= 0);
    if (sealed)
        TU_OKM(ember__fsum_seal(file, msg), msg);
}

/* Runs fn on the root group of file, opened read-write, then seals the
 * file again (as a tool that knows the format would), so the checks
 * behind the whole-file checksum are what a test exercises. */
static void edit_root(const char *file, void (*fn)(hid_t root, const void *arg),
                      const void *arg)
{
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f >= 0) {
        fn(f, arg);
        H5Fclose(f);
    }
    ember__h5_unlock();
    assert_true(f >= 0);
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember__fsum_seal(file, msg), msg);
}

static void set_version(hid_t root, const void *arg)
{
    hid_t a = H5Aopen(root, "format_version", H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, H5T_NATIVE_INT64, arg) : -1;
    if (a >= 0)
        H5Aclose(a);
    assert_true(rc >= 0);
}

static void delete_attr(hid_t root, const void *arg)
{
    assert_true(H5Adelete(root, arg) >= 0);
}

static void set_magic(hid_t root, const void *arg)
{
    assert_true(H5Adelete(root, "format") >= 0);
    hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen(arg) + 1);
    hid_t a = H5Acreate2(root, "format", t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Awrite(a, t, arg);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    assert_true(rc >= 0);
}

static void open_fails(ember_ctx *ctx, const char *file, int status,
                       const char *part)
{
    char msg[EMBER_MSG_SIZE];
    ember__ckr *r = (ember__ckr *)ctx;
    int rc = ember__ckr_open(ctx, &r, file, msg);
    if (rc != status)
        fail_msg("%s: status %d (%s), expected %d", file, rc, msg, status);
    assert_null(r);
    assert_int_equal(open_ids(), 0);
    TU_MSG_HAS(msg, file);
    TU_MSG_HAS(msg, part);
}

static void test_ckptfile_not_a_checkpoint(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    /* no checksum header: never given to HDF5 */
    write_foreign("foreign.h5", 0);
    open_fails(ctx, "foreign.h5", EMBER_ECORRUPT, "cannot be verified");
    write_foreign("foreign.h5", 1);
    open_fails(ctx, "foreign.h5", EMBER_ECORRUPT, "not an ember checkpoint");
    tu_spit("text.h5", "time,value\n1,2\n", 15);
    open_fails(ctx, "text.h5", EMBER_ECORRUPT, "text.h5");

    write_iteration(ctx, ".", "magic.h5", 1);
    edit_root("magic.h5", set_magic, "ember-checkpoinx");
    open_fails(ctx, "magic.h5", EMBER_ECORRUPT, "not an ember checkpoint");

    write_iteration(ctx, ".", "noversion.h5", 1);
    edit_root("noversion.h5", delete_attr, "format_version");
    open_fails(ctx, "noversion.h5", EMBER_ECORRUPT, "format_version");

    write_iteration(ctx, ".", "noiter.h5", 1);
    edit_root("noiter.h5", delete_attr, "iteration");
    open_fails(ctx, "noiter.h5", EMBER_ECORRUPT, "attributes");
    ember_ctx_destroy(&ctx);
    unlink("foreign.h5");
    unlink("text.h5");
    unlink("magic.h5");
    unlink("noversion.h5");
    unlink("noiter.h5");
}

static void test_ckptfile_newer_format_refused(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    write_iteration(ctx, ".", "future.h5", 3);
    int64_t v = EMBER_CHECKPOINT_FORMAT + 1;
    edit_root("future.h5", set_version, &v);
    char want[64];
    snprintf(want, sizeof want, "format %lld", (long long)v);
    open_fails(ctx, "future.h5", EMBER_EFORMAT, want);
    snprintf(want, sizeof want, "up to %d", EMBER_CHECKPOINT_FORMAT);
    open_fails(ctx, "future.h5", EMBER_EFORMAT, want);
    v = 0;
    edit_root("future.h5", set_version, &v);
    open_fails(ctx, "future.h5", EMBER_EFORMAT, "format 0");
    /* the edit itself did no harm: the right version opens */
    v = EMBER_CHECKPOINT_FORMAT;
    edit_root("future.h5", set_version, &v);
    assert_int_equal(read_iteration(ctx, "future.h5"), 3);
    ember_ctx_destroy(&ctx);
    unlink("future.h5");
}

static void test_ckptfile_missing_file(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    unlink("absent.h5");
    open_fails(ctx, "absent.h5", EMBER_ENOTFOUND, "absent.h5");
    open_fails(ctx, "nodir/absent.h5", EMBER_ENOTFOUND, "nodir/absent.h5");
    ember_ctx_destroy(&ctx);
}

/* ---- allocation failures ------------------------------------------------- */

/* Writes and reads back a checkpoint of every entry kind; returns the first
 * failure's status with everything released. */
static int oom_roundtrip(tu_counter *c, char *msg)
{
    ember_allocator a = tu_allocator(c);
    ember_ctx_opts o = {.threads = 1, .allocator = &a};
    ember_ctx *ctx = NULL;
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (rc)
        return rc;
    ember_type t = ember_type_pair(EMBER_I64, EMBER_F64);
    kv recs[40];
    for (int i = 0; i < 40; i++)
        recs[i] = (kv){i - 3, i * 1.5};
    layout l = {3, {15, 0, 25}};
    ember__buf *parts = layout_parts(&l, &t, (unsigned char *)recs);
    double sc[3] = {1.25, -2.5, 3.75}, sc2[3];
    char blob2[8];
    ember__ck_meta m = {.kind = "loop", .program = "p", .iteration = 4};
    ember__ckw *w = NULL;
    ember__ckr *r = NULL;
    unlink("oom.h5");
    unlink("oom.h5.tmp");
    rc = ember__ckw_begin(ctx, &w, ".", "oom.h5", &m, msg);
    if (!rc)
        rc = ember__ckw_parts(w, "kv", &t, parts, 3, msg);
    if (!rc)
        rc = ember__ckw_scalars(w, "sc", EMBER_F64, sc, 3, msg);
    if (!rc)
        rc = ember__ckw_blob(w, "rng", "abcdefgh", 8, msg);
    if (!rc)
        rc = ember__ckw_commit(&w, NULL, NULL, msg);
    ember__ckw_abort(&w);
    assert_false(tu_exists("oom.h5.tmp"));
    if (!rc)
        rc = ember__ckr_open(ctx, &r, "oom.h5", msg);
    if (!rc)
        rc = ember__ckr_verify(r, msg);
    char *names = NULL;
    size_t n = 0, np = 0;
    if (!rc)
        rc = ember__ckr_list(r, "/datasets", &names, &n, msg);
    if (!rc)
        assert_int_equal(n, 1);
    ember_ctx *rctx = ctx;
    ember__free(rctx, names);
    ember_type got;
    void *data = NULL;
    uint64_t *off = NULL;
    if (!rc)
        rc = ember__ckr_dataset(r, "kv", &got, &data, &n, &off, &np, msg);
    if (!rc) {
        assert_int_equal(n, 40);
        assert_memory_equal(data, recs, sizeof recs);
        assert_int_equal(np, 3);
        assert_int_equal(off[1], 15);
        assert_int_equal(off[2], 15);
    }
    ember__free(ctx, data);
    ember__free(ctx, off);
    if (!rc)
        rc = ember__ckr_scalars(r, "sc", EMBER_F64, sc2, 3, msg);
    if (!rc)
        assert_memory_equal(sc, sc2, sizeof sc);
    if (!rc)
        rc = ember__ckr_blob(r, "rng", blob2, 8, msg);
    if (!rc)
        assert_memory_equal(blob2, "abcdefgh", 8);
    ember__ckr_close(&r);
    free(parts);
    ember_ctx_destroy(&ctx);
    return rc;
}

static void test_ckptfile_alloc_failures(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    tu_counter c;
    long failed = 0;
    for (long nth = 1;; nth++) {
        assert_true(nth < 5000);
        tu_counter_reset(&c, nth);
        msg[0] = '\0';
        int rc = oom_roundtrip(&c, msg);
        if (atomic_load(&c.live) != 0 || atomic_load(&c.live_bytes) != 0)
            fail_msg("allocation %ld failed: %ld blocks (%lld bytes) leaked",
                     nth, atomic_load(&c.live), atomic_load(&c.live_bytes));
        if (atomic_load(&c.injected) == 0) {
            TU_OKM(rc, msg);
            break;
        }
        if (rc == EMBER_OK)
            continue; /* the failure was absorbed, and the data still match */
        failed++;
        if (rc != EMBER_ENOMEM)
            fail_msg("allocation %ld failed: status %d (%s), expected ENOMEM: %s",
                     nth, rc, ember_strerror(rc), msg);
        assert_true(msg[0] != '\0');
    }
    print_message("%ld allocations failed in turn, each cleanly\n", failed);
    assert_true(failed > 5);
    unlink("oom.h5");
}

/* ---- the parallel chunk reader ------------------------------------------- */

#define BIG_CHUNK ((size_t)(1u << 20) / 8) /* records a chunk, as h5io picks */
#define BIG_N (6 * BIG_CHUNK + 12345)      /* 7 chunks, the last partial */

static uint64_t big_value(size_t i)
{
    return 0xb16da7a000000000ULL ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL >> 8);
}

/* The dataset is chunked as ember writes it (Fletcher32 only), in more than
 * four chunks: the layout read_parallel takes. */
static void check_big_layout(const char *file, size_t *chunk)
{
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, "/datasets/big", H5P_DEFAULT) : -1;
    hid_t p = d >= 0 ? H5Dget_create_plist(d) : -1;
    hsize_t dim = 0;
    int ok = p >= 0 && H5Pget_chunk(p, 1, &dim) == 1 && H5Pget_nfilters(p) == 1 &&
             H5Pget_filter2(p, 0, NULL, NULL, NULL, 0, NULL, NULL) ==
                 H5Z_FILTER_FLETCHER32;
    if (p >= 0)
        H5Pclose(p);
    if (d >= 0)
        H5Dclose(d);
    if (f >= 0)
        H5Fclose(f);
    ember__h5_unlock();
    assert_true(ok);
    *chunk = (size_t)dim;
}

static void test_ckptfile_parallel_read(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    uint64_t *recs = malloc(BIG_N * sizeof *recs);
    assert_non_null(recs);
    for (size_t i = 0; i < BIG_N; i++)
        recs[i] = big_value(i);
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = ember_type_scalar(EMBER_U64);
    layout l = {3, {BIG_N / 3, 0, BIG_N - BIG_N / 3}};
    ember__buf *parts = layout_parts(&l, &t, (unsigned char *)recs);
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", "big.h5", &plain_meta, msg), msg);
    TU_OKM(ember__ckw_parts(w, "big", &t, parts, 3, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
    free(parts);
    size_t chunk = 0;
    check_big_layout("big.h5", &chunk);
    assert_true(chunk > 0 && (BIG_N + chunk - 1) / chunk > 4);

    static const int threads[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        TU_OK(ember_ctx_set_threads(ctx, threads[k]));
        ember__ckr *r = NULL;
        TU_OKM(ember__ckr_open(ctx, &r, "big.h5", msg), msg);
        check_dataset(ctx, r, "big", &t, (unsigned char *)recs, &l);
        ember__ckr_close(&r);
    }

    /* one byte in the third chunk */
    size_t victim = 2 * chunk + chunk / 2 + 17;
    damage_then_reseal(ctx, "big.h5",
                       tu_find_once("big.h5", &recs[victim], 8) + 5, 0x04);
    for (int k = 0; k < 3; k++) {
        TU_OK(ember_ctx_set_threads(ctx, threads[k]));
        ember__ckr *r = NULL;
        TU_OKM(ember__ckr_open(ctx, &r, "big.h5", msg), msg);
        ember_type got;
        void *data = (void *)1;
        size_t n = 0, np = 0;
        uint64_t *off = NULL;
        assert_int_equal(ember__ckr_dataset(r, "big", &got, &data, &n, &off, &np, msg),
                         EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "big.h5");
        TU_MSG_HAS(msg, "Fletcher32");
        assert_null(data);
        assert_null(off);
        assert_int_equal(ember__ckr_verify(r, msg), EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "big.h5");
        ember__ckr_close(&r);
    }
    /* the chunks around it are intact */
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "big.h5", msg), msg);
    uint64_t *buf = malloc(chunk * 8);
    assert_non_null(buf);
    TU_OKM(ember__ckr_slice(r, "big", &t, chunk, chunk, buf, msg), msg);
    assert_memory_equal(buf, recs + chunk, chunk * 8);
    TU_OKM(ember__ckr_slice(r, "big", &t, 3 * chunk, chunk, buf, msg), msg);
    assert_memory_equal(buf, recs + 3 * chunk, chunk * 8);
    assert_int_equal(ember__ckr_slice(r, "big", &t, 2 * chunk, 10, buf, msg),
                     EMBER_ECORRUPT);
    ember__ckr_close(&r);
    assert_int_equal(open_ids(), 0);
    free(buf);
    free(recs);
    ember_ctx_destroy(&ctx);
    unlink("big.h5");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ckptfile_roundtrip_scalars),
        cmocka_unit_test(test_ckptfile_roundtrip_pairs),
        cmocka_unit_test(test_ckptfile_roundtrip_structs),
        cmocka_unit_test(test_ckptfile_dataset_computed),
        cmocka_unit_test(test_ckptfile_scalars_and_arrays),
        cmocka_unit_test(test_ckptfile_blobs),
        cmocka_unit_test(test_ckptfile_image_reserve_grows),
        cmocka_unit_test(test_ckptfile_image_buffered_fallback),
        cmocka_unit_test(test_ckptfile_spare_not_written_through),
        cmocka_unit_test(test_ckptfile_image_driver_same_file),
        cmocka_unit_test(test_ckptfile_image_driver_rewrite),
        cmocka_unit_test(test_ckptfile_image_driver_shrink),
        cmocka_unit_test(test_ckptfile_root_attributes),
        cmocka_unit_test(test_ckptfile_commit_is_atomic),
        cmocka_unit_test(test_ckptfile_abort_keeps_existing),
        cmocka_unit_test(test_ckptfile_replaced_while_opening),
        cmocka_unit_test(test_ckptfile_commit_missing_dir),
        cmocka_unit_test(test_ckptfile_corrupt_dataset_detected),
        cmocka_unit_test(test_ckptfile_corrupt_scalars_and_blob_detected),
        cmocka_unit_test(test_ckptfile_truncated_detected),
        cmocka_unit_test(test_ckptfile_not_a_checkpoint),
        cmocka_unit_test(test_ckptfile_newer_format_refused),
        cmocka_unit_test(test_ckptfile_missing_file),
        cmocka_unit_test(test_ckptfile_alloc_failures),
        cmocka_unit_test(test_ckptfile_parallel_read),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
