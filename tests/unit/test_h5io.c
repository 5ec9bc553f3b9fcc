/* test_h5io.c: the HDF5 layer: specs, type mapping both ways, the streaming
 * writer and its options, whole-dataset reads of files ember did not write
 * (fixtures made here with the raw HDF5 API, so no Python is needed), and
 * every error path a user can reach: missing file or path, foreign types,
 * not HDF5, checksum failure, existing path, failing allocator.
 *
 * Each case works on its own file h5io_<case>.h5 in the working directory
 * and removes it at the end.
 */
#include "internal.h"

#include <hdf5.h>
#include <ember/graph.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- helpers ------------------------------------------------------------ */

static ember_ctx *new_ctx(void)
{
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, NULL, msg), EMBER_OK);
    return ctx;
}

static const ember__h5w_opts plain = {.fid = -1};

/* Writes n records in two appends, so the dataset is extended twice. */
static void write_recs(ember_ctx *ctx, const char *file, const char *path,
                       const ember_type *t, const void *recs, size_t n,
                       const ember__h5w_opts *o, const uint64_t *offsets,
                       size_t nparts)
{
    char msg[EMBER_MSG_SIZE];
    ember__h5w *w = NULL;
    assert_int_equal(ember__h5w_open(ctx, &w, file, path, t, o, msg),
                     EMBER_OK);
    assert_non_null(w);
    size_t half = n / 2;
    assert_int_equal(ember__h5w_append(w, recs, half, msg), EMBER_OK);
    assert_int_equal(ember__h5w_append(w, (const char *)recs + half * t->size,
                                       n - half, msg),
                     EMBER_OK);
    assert_int_equal(ember__h5w_close(&w, offsets, nparts, msg), EMBER_OK);
    assert_null(w);
    assert_string_equal(msg, "");
}

/* Reads a whole dataset, which must succeed. */
static void *read_recs(ember_ctx *ctx, const char *file, const char *path,
                       ember_type *t, size_t *n)
{
    char msg[EMBER_MSG_SIZE];
    void *data = NULL;
    int rc = ember__h5_read_all(ctx, file, path, t, &data, n, msg);
    if (rc)
        fail_msg("read %s:%s: %s", file, path, msg);
    assert_string_equal(msg, "");
    return data;
}

/* Reads a dataset that must fail with status; returns the message. */
static void read_fails(const char *file, const char *path, int status,
                       char *msg)
{
    ember_ctx *ctx = new_ctx();
    ember_type t;
    void *data = (void *)1;
    size_t n = 7;
    assert_int_equal(ember__h5_read_all(ctx, file, path, &t, &data, &n, msg),
                     status);
    assert_null(data);
    assert_int_equal(n, 0);
    assert_true(msg[0] != '\0');
    ember_ctx_destroy(&ctx);
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' does not contain '%s'", text, part);
}

static void writer_fails(ember_ctx *ctx, const char *file, const char *path,
                         const ember_type *t, const ember__h5w_opts *o,
                         int status, const char *part)
{
    char msg[EMBER_MSG_SIZE];
    ember__h5w *w = NULL;
    assert_int_equal(ember__h5w_open(ctx, &w, file, path, t, o, msg), status);
    assert_null(w);
    assert_contains(msg, part);
}

/* A dataset made with the raw API, in a new or existing file. */
static void fixture(const char *file, const char *name, hid_t ftype, int rank,
                    const hsize_t *dims, hid_t mtype, const void *data)
{
    FILE *probe = fopen(file, "rb");
    hid_t fid = probe ? H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT)
                      : H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (probe)
        fclose(probe);
    assert_true(fid >= 0);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(fid, name, ftype, space, lcpl, H5P_DEFAULT,
                         H5P_DEFAULT);
    assert_true(d >= 0);
    if (data)
        assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >=
                    0);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
    H5Fclose(fid);
}

static hid_t open_dset(const char *file, const char *path, hid_t *fid)
{
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(*fid >= 0);
    hid_t d = H5Dopen2(*fid, path, H5P_DEFAULT);
    assert_true(d >= 0);
    return d;
}

static H5T_class_t file_class(const char *file, const char *path)
{
    hid_t fid, d = open_dset(file, path, &fid), t = H5Dget_type(d);
    H5T_class_t c = H5Tget_class(t);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(fid);
    return c;
}

/* ---- specs ----------------------------------------------------------------- */

static void split_ok(const char *spec, const char *file, const char *path)
{
    char f[64], p[64], msg[EMBER_MSG_SIZE];
    assert_int_equal(ember__h5_split_spec(spec, f, sizeof f, p, sizeof p, msg),
                     EMBER_OK);
    assert_string_equal(f, file);
    assert_string_equal(p, path);
    assert_string_equal(msg, "");
}

static void test_h5io_split_spec_plain(void **state)
{
    (void)state;
    split_ok("data.h5:/a/b", "data.h5", "/a/b");
    split_ok("dir/data.h5:/x", "dir/data.h5", "/x");
    split_ok("data.h5:/", "data.h5", "/");
}

static void test_h5io_split_spec_no_path(void **state)
{
    (void)state;
    split_ok("data.h5", "data.h5", "");
    split_ok("/abs/dir/data.h5", "/abs/dir/data.h5", "");
}

static void test_h5io_split_spec_colons_in_file_name(void **state)
{
    (void)state;
    split_ok("run:3.h5:/x", "run:3.h5", "/x");
    split_ok("a:/b:/c", "a:/b", "/c");
    split_ok("c:d.h5", "c:d.h5", "");
    split_ok("t12:30:00.h5", "t12:30:00.h5", "");
}

static void test_h5io_split_spec_errors(void **state)
{
    (void)state;
    char f[8], p[8], msg[EMBER_MSG_SIZE];
    assert_int_equal(ember__h5_split_spec(":/x", f, sizeof f, p, sizeof p, msg),
                     EMBER_EINVAL);
    assert_contains(msg, "no file name");
    assert_int_equal(ember__h5_split_spec("", f, sizeof f, p, sizeof p, msg),
                     EMBER_EINVAL);
    assert_int_equal(ember__h5_split_spec("longname.h5:/x", f, sizeof f, p,
                                          sizeof p, msg),
                     EMBER_EINVAL);
    assert_contains(msg, "file name longer than 7");
    assert_int_equal(ember__h5_split_spec("a.h5:/long/path", f, sizeof f, p,
                                          sizeof p, msg),
                     EMBER_EINVAL);
    assert_contains(msg, "path longer than 7");
    assert_int_equal(ember__h5_split_spec(NULL, f, sizeof f, p, sizeof p, msg),
                     EMBER_EINVAL);
}

/* ---- round trips ------------------------------------------------------------ */

static void roundtrip_scalar(ember_ctx *ctx, ember_scalar k, const char *path)
{
    const char *file = "h5io_roundtrip_scalars.h5";
    enum { N = 1001 };
    unsigned char recs[N * 8];
    ember_type t = ember_type_scalar(k), got;
    for (size_t i = 0; i < N * t.size; i++)
        recs[i] = (unsigned char)(i * 7 + k);
    write_recs(ctx, file, path, &t, recs, N, &plain, NULL, 0);
    size_t n;
    void *data = read_recs(ctx, file, path, &got, &n);
    assert_int_equal(n, N);
    assert_int_equal(got.cls, EMBER_TYPE_SCALAR);
    assert_true(ember_type_equal(&got, &t));
    assert_memory_equal(data, recs, N * t.size);
    ember__free(ctx, data);
    H5T_class_t c = file_class(file, path);
    assert_int_equal(c, k == EMBER_F32 || k == EMBER_F64 ? H5T_FLOAT
                                                           : H5T_INTEGER);
}

static void test_h5io_roundtrip_scalars(void **state)
{
    (void)state;
    ember_ctx *ctx = new_ctx();
    remove("h5io_roundtrip_scalars.h5");
    roundtrip_scalar(ctx, EMBER_I32, "/i32");
    roundtrip_scalar(ctx, EMBER_I64, "/i64");
    roundtrip_scalar(ctx, EMBER_U64, "/u64");
    roundtrip_scalar(ctx, EMBER_F32, "/f32");
    roundtrip_scalar(ctx, EMBER_F64, "/f64");
    remove("h5io_roundtrip_scalars.h5");
    ember_ctx_destroy(&ctx);
}

typedef struct {
    int32_t key;
    double value;
} pair_i32_f64;

static void test_h5io_roundtrip_pair(void **state)
{
    (void)state;
    const char *file = "h5io_roundtrip_pair.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_pair(EMBER_I32, EMBER_F64), got;
    assert_int_equal(t.size, sizeof(pair_i32_f64));
    pair_i32_f64 recs[300];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < 300; i++)
        recs[i] = (pair_i32_f64){-i, i * 0.5};
    write_recs(ctx, file, "/pairs", &t, recs, 300, &plain, NULL, 0);
    size_t n;
    pair_i32_f64 *data = read_recs(ctx, file, "/pairs", &got, &n);
    assert_int_equal(n, 300);
    assert_int_equal(got.cls, EMBER_TYPE_PAIR);
    assert_true(ember_type_equal(&got, &t));
    for (int i = 0; i < 300; i++) {
        assert_int_equal(data[i].key, -i);
        assert_true(data[i].value == i * 0.5);
    }
    assert_int_equal(file_class(file, "/pairs"), H5T_COMPOUND);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

typedef struct {
    int64_t id;
    double x[16];
    float w;
} point;

static ember_type point_type(void)
{
    ember_field f[3] = {{.name = "id", .kind = EMBER_I64},
                        {.name = "x", .kind = EMBER_F64, .count = 16},
                        {.name = "w", .kind = EMBER_F32}};
    ember_type t;
    assert_int_equal(ember_type_struct(&t, f, 3, NULL), EMBER_OK);
    assert_int_equal(t.size, sizeof(point));
    assert_int_equal(t.field[1].offset, offsetof(point, x));
    assert_int_equal(t.field[2].offset, offsetof(point, w));
    return t;
}

static point *make_points(size_t n)
{
    point *p = calloc(n, sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i].id = (int64_t)i * 3 - 50;
        for (int j = 0; j < 16; j++)
            p[i].x[j] = (double)i + j / 16.0;
        p[i].w = (float)i / 4.0f;
    }
    return p;
}

static void assert_points(const point *a, const point *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].id, b[i].id);
        assert_memory_equal(a[i].x, b[i].x, sizeof a[i].x);
        assert_true(a[i].w == b[i].w);
    }
}

/* Filters as HDF5 reports them on the dataset. */
static void assert_filters(const char *file, const char *path, int deflate,
                           int fletcher32)
{
    hid_t fid, d = open_dset(file, path, &fid), dcpl = H5Dget_create_plist(d);
    int n = H5Pget_nfilters(dcpl), has_deflate = 0, has_shuffle = 0,
        has_f32 = 0;
    for (int i = 0; i < n; i++) {
        unsigned flags;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, NULL, NULL,
                                         0, NULL, NULL);
        has_deflate |= id == H5Z_FILTER_DEFLATE;
        has_shuffle |= id == H5Z_FILTER_SHUFFLE;
        has_f32 |= id == H5Z_FILTER_FLETCHER32;
    }
    assert_int_equal(has_deflate, deflate > 0);
    assert_int_equal(has_shuffle, deflate > 0);
    assert_int_equal(has_f32, fletcher32 > 0);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(fid);
}

static void test_h5io_roundtrip_struct_array(void **state)
{
    (void)state;
    const char *file = "h5io_roundtrip_struct_array.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = point_type(), got;
    point *p = make_points(5000);
    write_recs(ctx, file, "/points", &t, p, 5000, &plain, NULL, 0);
    size_t n;
    point *data = read_recs(ctx, file, "/points", &got, &n);
    assert_int_equal(n, 5000);
    assert_int_equal(got.cls, EMBER_TYPE_STRUCT);
    assert_true(ember_type_equal(&got, &t));
    assert_points(data, p, n);
    ember__free(ctx, data);
    free(p);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_roundtrip_filters(void **state)
{
    (void)state;
    const char *file = "h5io_roundtrip_filters.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = point_type(), got;
    point *p = make_points(20000); /* several chunks */
    const char *paths[4] = {"/none", "/deflate", "/fletcher32", "/both"};
    for (int i = 0; i < 4; i++) {
        ember__h5w_opts o = {.deflate = i & 1 ? 6 : 0,
                             .fletcher32 = (i >> 1) & 1, .fid = -1};
        write_recs(ctx, file, paths[i], &t, p, 20000, &o, NULL, 0);
        assert_filters(file, paths[i], o.deflate, o.fletcher32);
        size_t n;
        point *data = read_recs(ctx, file, paths[i], &got, &n);
        assert_int_equal(n, 20000);
        assert_true(ember_type_equal(&got, &t));
        assert_points(data, p, n);
        ember__free(ctx, data);
    }
    free(p);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void read_offsets(const char *file, const char *path, uint64_t *off,
                         size_t n)
{
    hid_t fid, d = open_dset(file, path, &fid);
    hid_t a = H5Aopen(d, "partition_offsets", H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t space = H5Aget_space(a), type = H5Aget_type(a);
    assert_int_equal(H5Sget_simple_extent_npoints(space), (hssize_t)n);
    assert_int_equal(H5Tget_class(type), H5T_INTEGER);
    assert_int_equal(H5Tget_sign(type), H5T_SGN_NONE);
    assert_int_equal(H5Tget_size(type), 8);
    assert_true(H5Aread(a, H5T_NATIVE_UINT64, off) >= 0);
    H5Tclose(type);
    H5Sclose(space);
    H5Aclose(a);
    H5Dclose(d);
    H5Fclose(fid);
}

static void test_h5io_partition_offsets(void **state)
{
    (void)state;
    const char *file = "h5io_partition_offsets.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I64);
    int64_t recs[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const uint64_t off[4] = {0, 3, 3, 10};
    write_recs(ctx, file, "/d", &t, recs, 10, &plain, off, 3);
    uint64_t got[4];
    read_offsets(file, "/d", got, 4);
    assert_memory_equal(got, off, sizeof off);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_partition_offsets_mismatch(void **state)
{
    (void)state;
    const char *file = "h5io_partition_offsets_mismatch.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I64);
    int64_t recs[10] = {0};
    const uint64_t short_off[3] = {0, 3, 9}, falling[3] = {0, 6, 4};
    char msg[EMBER_MSG_SIZE];
    for (int i = 0; i < 2; i++) {
        ember__h5w *w = NULL;
        assert_int_equal(ember__h5w_open(ctx, &w, file, i ? "/b" : "/a", &t,
                                         NULL, msg),
                         EMBER_OK);
        assert_int_equal(ember__h5w_append(w, recs, 10, msg), EMBER_OK);
        assert_int_equal(ember__h5w_close(&w, i ? falling : short_off, 2, msg),
                         EMBER_ELENGTH);
        assert_null(w);
        assert_contains(msg, "partition_offsets");
    }
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* 20,000 partitions make a 160 KB attribute, past the 64 KiB an old-format
 * object header holds. */
static void test_h5io_many_partitions(void **state)
{
    (void)state;
    const char *file = "h5io_many_partitions.h5";
    remove(file);
    enum { P = 20000 };
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_U64);
    uint64_t *recs = calloc(P, sizeof *recs), *off = calloc(P + 1, 8),
             *got = calloc(P + 1, 8);
    assert_true(recs && off && got);
    for (size_t i = 0; i <= P; i++)
        off[i] = i;
    write_recs(ctx, file, "/d", &t, recs, P, &plain, off, P);
    read_offsets(file, "/d", got, P + 1);
    assert_memory_equal(got, off, (P + 1) * 8);
    free(recs);
    free(off);
    free(got);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_nested_path(void **state)
{
    (void)state;
    const char *file = "h5io_nested_path.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_F64), got;
    double recs[5] = {1, 2, 3, 4, 5};
    write_recs(ctx, file, "/run/iter_0004/ranks", &t, recs, 5, &plain, NULL, 0);
    write_recs(ctx, file, "/run/iter_0004/other", &t, recs, 5, &plain, NULL, 0);
    size_t n;
    double *data = read_recs(ctx, file, "/run/iter_0004/ranks", &got, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(data, recs, sizeof recs);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_chunked_unlimited(void **state)
{
    (void)state;
    const char *file = "h5io_chunked_unlimited.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type small = ember_type_pair(EMBER_I64, EMBER_F64), big;
    ember_field f[3] = {{.name = "x", .kind = EMBER_F64, .count = 65536},
                        {.name = "y", .kind = EMBER_F64, .count = 65536},
                        {.name = "z", .kind = EMBER_F64, .count = 65536}};
    assert_int_equal(ember_type_struct(&big, f, 3, NULL), EMBER_OK);
    char msg[EMBER_MSG_SIZE];
    const char *paths[2] = {"/small", "/big"};
    const ember_type *types[2] = {&small, &big};
    const hsize_t want[2] = {65536, 1}; /* 1 MiB of 16-byte records; one
                                          1.5 MiB record */
    for (int i = 0; i < 2; i++) {
        ember__h5w *w = NULL;
        assert_int_equal(ember__h5w_open(ctx, &w, file, paths[i], types[i],
                                         NULL, msg),
                         EMBER_OK);
        assert_int_equal(ember__h5w_close(&w, NULL, 0, msg), EMBER_OK);
        hid_t fid, d = open_dset(file, paths[i], &fid);
        hid_t dcpl = H5Dget_create_plist(d), space = H5Dget_space(d);
        hsize_t chunk = 0, dim = 1, max = 0;
        assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
        assert_int_equal(H5Pget_chunk(dcpl, 1, &chunk), 1);
        assert_int_equal(chunk, want[i]);
        H5Sget_simple_extent_dims(space, &dim, &max);
        assert_int_equal(dim, 0);
        assert_true(max == H5S_UNLIMITED);
        H5Sclose(space);
        H5Pclose(dcpl);
        H5Dclose(d);
        H5Fclose(fid);
    }
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_empty_dataset(void **state)
{
    (void)state;
    const char *file = "h5io_empty_dataset.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = point_type(), got;
    const uint64_t off[3] = {0, 0, 0};
    write_recs(ctx, file, "/empty", &t, NULL, 0, &plain, off, 2);
    size_t n = 9;
    void *data = read_recs(ctx, file, "/empty", &got, &n);
    assert_int_equal(n, 0);
    assert_non_null(data);
    assert_true(ember_type_equal(&got, &t));
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* ---- reading files ember did not write ------------------------------------- */

static void test_h5io_read_matrix(void **state)
{
    (void)state;
    const char *file = "h5io_read_matrix.h5";
    remove(file);
    double m[7][3];
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 3; j++)
            m[i][j] = i * 10 + j;
    hsize_t dims[2] = {7, 3};
    fixture(file, "/points", H5T_IEEE_F64BE, 2, dims, H5T_NATIVE_DOUBLE, m);
    ember_ctx *ctx = new_ctx();
    ember_type t;
    size_t n;
    double *data = read_recs(ctx, file, "/points", &t, &n);
    assert_int_equal(n, 7);
    assert_int_equal(t.cls, EMBER_TYPE_STRUCT);
    assert_int_equal(t.nfields, 1);
    assert_string_equal(t.field[0].name, "x");
    assert_int_equal(t.field[0].kind, EMBER_F64);
    assert_int_equal(t.field[0].count, 3);
    assert_int_equal(t.size, 24);
    assert_memory_equal(data, m, sizeof m);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* Datasets of 4 MiB or more stored contiguous are read with preads at the
 * offset HDF5 gives, on the team: the values are HDF5's, after a user block
 * too (the offset counts it), for a matrix, and for a big-endian dataset
 * (HDF5 converts it: no raw read); a file open for writing in the process
 * is read by HDF5 (it may hold data not yet written). */
static void test_h5io_read_contiguous_large(void **state)
{
    (void)state;
    const char *file = "h5io_read_contiguous_large.h5";
    const size_t n = 600000; /* 4.8 MB of doubles */
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (double)i * 0.5 - 1e5 + (double)(i % 7) / 3;
    static const hsize_t ubs[2] = {0, 1024};
    for (int u = 0; u < 2; u++) {
        remove(file);
        hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
        assert_true(H5Pset_userblock(fcpl, ubs[u]) >= 0);
        hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
        assert_true(fid >= 0);
        H5Pclose(fcpl);
        H5Fclose(fid);
        hsize_t one = n, two[2] = {n / 3, 3};
        fixture(file, "/x", H5T_IEEE_F64LE, 1, &one, H5T_NATIVE_DOUBLE, v);
        fixture(file, "/m", H5T_IEEE_F64LE, 2, two, H5T_NATIVE_DOUBLE, v);
        fixture(file, "/be", H5T_IEEE_F64BE, 1, &one, H5T_NATIVE_DOUBLE, v);
        ember_ctx *ctx = new_ctx();
        static const char *paths[3] = {"/x", "/m", "/be"};
        for (int k = 0; k < 3; k++) {
            ember_type t;
            size_t got = 0;
            unsigned long preads = ember__h5_contiguous_reads;
            double *data = read_recs(ctx, file, paths[k], &t, &got);
            assert_int_equal(got, k == 1 ? n / 3 : n);
            assert_memory_equal(data, v, n * sizeof *v);
            /* by preads, but for the big-endian one */
            assert_int_equal(ember__h5_contiguous_reads - preads, k == 2 ? 0 : 1);
            ember__free(ctx, data);
        }
        /* a file this process has open for writing is read through HDF5 */
        hid_t fapl = (hid_t)ember__h5_fapl(); /* the same file locking */
        hid_t rw = H5Fopen(file, H5F_ACC_RDWR, fapl);
        H5Pclose(fapl);
        assert_true(rw >= 0);
        unsigned long preads = ember__h5_contiguous_reads;
        ember_type t;
        size_t got = 0;
        double *data = read_recs(ctx, file, "/x", &t, &got);
        assert_memory_equal(data, v, n * sizeof *v);
        assert_int_equal(ember__h5_contiguous_reads, preads);
        ember__free(ctx, data);
        H5Fclose(rw);
        ember_ctx_destroy(&ctx);
    }
    free(v);
    remove(file);
}

static void test_h5io_read_integer_widths(void **state)
{
    (void)state;
    const char *file = "h5io_read_integer_widths.h5";
    remove(file);
    hsize_t dims[1] = {4};
    int16_t i16[4] = {-32768, -1, 0, 32767};
    uint8_t u8[4] = {0, 1, 200, 255};
    uint32_t u32[4] = {0, 1, 3000000000u, 4294967295u};
    uint64_t u64[4] = {0, 1, 1ull << 63, UINT64_MAX};
    fixture(file, "/i16", H5T_STD_I16BE, 1, dims, H5T_NATIVE_INT16, i16);
    fixture(file, "/u8", H5T_STD_U8LE, 1, dims, H5T_NATIVE_UINT8, u8);
    fixture(file, "/u32", H5T_STD_U32LE, 1, dims, H5T_NATIVE_UINT32, u32);
    fixture(file, "/u64", H5T_STD_U64BE, 1, dims, H5T_NATIVE_UINT64, u64);
    ember_ctx *ctx = new_ctx();
    ember_type t;
    size_t n;
    int32_t *a = read_recs(ctx, file, "/i16", &t, &n);
    assert_int_equal(t.field[0].kind, EMBER_I32);
    assert_int_equal(t.cls, EMBER_TYPE_SCALAR);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], i16[i]);
    ember__free(ctx, a);
    a = read_recs(ctx, file, "/u8", &t, &n);
    assert_int_equal(t.field[0].kind, EMBER_I32);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a[i], u8[i]);
    ember__free(ctx, a);
    int64_t *b = read_recs(ctx, file, "/u32", &t, &n);
    assert_int_equal(t.field[0].kind, EMBER_I64);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b[i], u32[i]);
    ember__free(ctx, b);
    uint64_t *c = read_recs(ctx, file, "/u64", &t, &n);
    assert_int_equal(t.field[0].kind, EMBER_U64);
    assert_memory_equal(c, u64, sizeof u64);
    ember__free(ctx, c);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* A packed compound with narrow members, as numpy writes them. */
static void test_h5io_read_foreign_compound(void **state)
{
    (void)state;
    const char *file = "h5io_read_foreign_compound.h5";
    remove(file);
    unsigned char raw[3][2 + 4 + 24];
    hsize_t three = 3;
    hid_t arr = H5Tarray_create2(H5T_IEEE_F64LE, 1, &three);
    hid_t ct = H5Tcreate(H5T_COMPOUND, sizeof raw[0]);
    H5Tinsert(ct, "label", 0, H5T_STD_I16LE);
    H5Tinsert(ct, "mass", 2, H5T_IEEE_F32LE);
    H5Tinsert(ct, "pos", 6, arr);
    for (int i = 0; i < 3; i++) {
        int16_t l = (int16_t)(-i);
        float m = 1.5f * i;
        double p[3] = {i, i + 0.25, i + 0.5};
        memcpy(raw[i], &l, 2);
        memcpy(raw[i] + 2, &m, 4);
        memcpy(raw[i] + 6, p, 24);
    }
    fixture(file, "/bodies", ct, 1, &three, ct, raw);
    hid_t kv = H5Tcreate(H5T_COMPOUND, 12);
    H5Tinsert(kv, "key", 0, H5T_STD_I32LE);
    H5Tinsert(kv, "value", 4, H5T_IEEE_F64LE);
    unsigned char kvraw[12] = {0};
    hsize_t one = 1;
    fixture(file, "/kv", kv, 1, &one, kv, kvraw);
    H5Tclose(kv);
    H5Tclose(ct);
    H5Tclose(arr);

    ember_ctx *ctx = new_ctx();
    ember_type t;
    size_t n;
    unsigned char *data = read_recs(ctx, file, "/bodies", &t, &n);
    char desc[128];
    ember_type_describe(&t, desc, sizeof desc);
    assert_string_equal(desc, "{label: i32, mass: f32, pos: f64[3]}");
    assert_int_equal(t.cls, EMBER_TYPE_STRUCT);
    for (size_t i = 0; i < n; i++) {
        int32_t l;
        float m;
        double p[3];
        memcpy(&l, data + i * t.size + t.field[0].offset, 4);
        memcpy(&m, data + i * t.size + t.field[1].offset, 4);
        memcpy(p, data + i * t.size + t.field[2].offset, 24);
        assert_int_equal(l, -(int)i);
        assert_true(m == 1.5f * i);
        assert_true(p[2] == i + 0.5);
    }
    ember__free(ctx, data);
    data = read_recs(ctx, file, "/kv", &t, &n);
    assert_int_equal(t.cls, EMBER_TYPE_PAIR);
    ember_type pair = ember_type_pair(EMBER_I32, EMBER_F64);
    assert_true(ember_type_equal(&t, &pair));
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_read_string_is_etype(void **state)
{
    (void)state;
    const char *file = "h5io_read_string_is_etype.h5";
    remove(file);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 8);
    char words[2][8] = {"alpha", "beta"};
    hsize_t two = 2;
    fixture(file, "/names", st, 1, &two, st, words);
    H5Tclose(st);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/names", EMBER_ETYPE, msg);
    assert_contains(msg, file);
    assert_contains(msg, "/names");
    assert_contains(msg, "string");
    remove(file);
}

static void test_h5io_read_unsupported_shapes(void **state)
{
    (void)state;
    const char *file = "h5io_read_unsupported_shapes.h5";
    remove(file);
    hsize_t d3[3] = {2, 2, 2};
    fixture(file, "/cube", H5T_NATIVE_DOUBLE, 3, d3, H5T_NATIVE_DOUBLE, NULL);
    hsize_t one = 1;
    hid_t en = H5Tenum_create(H5T_NATIVE_INT);
    int v = 0;
    H5Tenum_insert(en, "red", &v);
    fixture(file, "/colour", en, 1, &one, en, &v);
    H5Tclose(en);
    hid_t ct = H5Tcreate(H5T_COMPOUND, 16);
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, 8);
    H5Tinsert(ct, "id", 0, H5T_STD_I64LE);
    H5Tinsert(ct, "tag", 8, vs);
    fixture(file, "/tagged", ct, 1, &one, ct, NULL);
    H5Tclose(vs);
    H5Tclose(ct);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/cube", EMBER_ETYPE, msg);
    assert_contains(msg, "3-dimensional");
    read_fails(file, "/colour", EMBER_ETYPE, msg);
    assert_contains(msg, "enum");
    read_fails(file, "/tagged", EMBER_ETYPE, msg);
    assert_contains(msg, "member 'tag'");
    assert_contains(msg, "string");
    remove(file);
}

static void test_h5io_read_only_root_dataset(void **state)
{
    (void)state;
    const char *file = "h5io_read_only_root_dataset.h5";
    remove(file);
    int32_t v[3] = {4, 5, 6};
    hsize_t three = 3;
    fixture(file, "/values", H5T_STD_I32LE, 1, &three, H5T_NATIVE_INT32, v);
    fixture(file, "/sub/ignored", H5T_STD_I32LE, 1, &three, H5T_NATIVE_INT32,
            v);
    ember_ctx *ctx = new_ctx();
    ember_type t;
    size_t n;
    int32_t *data = read_recs(ctx, file, "", &t, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(data, v, sizeof v);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* Data outside the file that was checked and fingerprinted is refused
 * (EMBER_EFORMAT naming the object): an external link to a dataset, or to
 * a group holding it, also behind a soft link; external raw storage; a
 * virtual dataset; the one dataset at the root behind an external link.
 * A resumed run otherwise read other files' changed content, exit 0. */
static void test_h5io_read_data_elsewhere(void **state)
{
    (void)state;
    const char *other = "h5io_elsewhere_other.h5", *file = "h5io_elsewhere.h5";
    int32_t v[3] = {4, 5, 6};
    hsize_t three = 3;
    remove(other);
    fixture(other, "/g/values", H5T_STD_I32LE, 1, &three, H5T_NATIVE_INT32, v);
    FILE *raw = fopen("h5io_elsewhere.bin", "wb");
    assert_non_null(raw);
    assert_int_equal(fwrite(v, sizeof v, 1, raw), 1);
    fclose(raw);
    remove(file);
    fixture(file, "/inside", H5T_NATIVE_INT32, 1, &three, H5T_NATIVE_INT32, v);
    ember__h5_lock();
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(fid >= 0);
    assert_true(H5Lcreate_external(other, "/g/values", fid, "ext", H5P_DEFAULT,
                                   H5P_DEFAULT) >= 0);
    assert_true(H5Lcreate_external(other, "/g", fid, "extg", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    assert_true(H5Lcreate_soft("/extg/values", fid, "soft", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(1, &three, NULL);
    assert_true(H5Pset_external(dcpl, "h5io_elsewhere.bin", 0, sizeof v) >= 0);
    hid_t d = H5Dcreate2(fid, "rawfile", H5T_NATIVE_INT32, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_virtual(dcpl, sp, other, "/g/values", sp) >= 0);
    d = H5Dcreate2(fid, "virtual", H5T_NATIVE_INT32, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(fid);
    ember__h5_unlock();
    ember_ctx *ctx = new_ctx();
    ember_type t;
    size_t n;
    int32_t *data = read_recs(ctx, file, "/inside", &t, &n); /* its own data: read */
    assert_true(n == 3 && data[2] == 6);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    const char *paths[] = {"/ext", "/extg/values", "/soft", "/rawfile", "/virtual"};
    const char *why[] = {"external link", "external link", "external link",
                         "external files", "virtual dataset"};
    for (int i = 0; i < 5; i++) {
        char msg[EMBER_MSG_SIZE];
        read_fails(file, paths[i], EMBER_EFORMAT, msg);
        assert_contains(msg, why[i]);
        assert_contains(msg, "neither verifies nor fingerprints");
    }
    /* the root's one dataset, reached through an external link */
    remove(file);
    ember__h5_lock();
    fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Lcreate_external(other, "/g/values", fid, "only", H5P_DEFAULT,
                                   H5P_DEFAULT) >= 0);
    H5Fclose(fid);
    ember__h5_unlock();
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "", EMBER_EFORMAT, msg);
    assert_contains(msg, "external link");
    remove(file);
    remove(other);
    remove("h5io_elsewhere.bin");
}

static void test_h5io_read_root_ambiguous(void **state)
{
    (void)state;
    const char *file = "h5io_read_root_ambiguous.h5";
    remove(file);
    hsize_t one = 1;
    fixture(file, "/alpha", H5T_STD_I32LE, 1, &one, H5T_NATIVE_INT32, NULL);
    fixture(file, "/beta", H5T_STD_I32LE, 1, &one, H5T_NATIVE_INT32, NULL);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "", EMBER_EINVAL, msg);
    assert_contains(msg, "2 datasets");
    assert_contains(msg, "alpha, beta");
    remove(file);
}

static void test_h5io_read_root_empty(void **state)
{
    (void)state;
    const char *file = "h5io_read_root_empty.h5";
    remove(file);
    hsize_t one = 1;
    fixture(file, "/group/only", H5T_STD_I32LE, 1, &one, H5T_NATIVE_INT32,
            NULL);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "", EMBER_ENOTFOUND, msg);
    assert_contains(msg, "no dataset at the root");
    remove(file);
}

/* ---- errors ----------------------------------------------------------------- */

static void test_h5io_missing_file(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    remove("h5io_no_such_file.h5");
    read_fails("h5io_no_such_file.h5", "/x", EMBER_ENOTFOUND, msg);
    assert_string_equal(msg, "h5io_no_such_file.h5: no such file");
    read_fails("h5io_no_such_dir/f.h5", "", EMBER_ENOTFOUND, msg);
    assert_contains(msg, "h5io_no_such_dir/f.h5");
}

static void test_h5io_missing_path(void **state)
{
    (void)state;
    const char *file = "h5io_missing_path.h5";
    remove(file);
    hsize_t one = 1;
    fixture(file, "/g/d", H5T_STD_I32LE, 1, &one, H5T_NATIVE_INT32, NULL);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/g/nothing", EMBER_ENOTFOUND, msg);
    assert_contains(msg, file);
    assert_contains(msg, "/g/nothing");
    read_fails(file, "/no/such/group/d", EMBER_ENOTFOUND, msg);
    assert_contains(msg, "/no/such/group/d");
    read_fails(file, "/g/d/below", EMBER_ENOTFOUND, msg);
    read_fails(file, "/g", EMBER_ENOTFOUND, msg);
    assert_contains(msg, "h5io_missing_path.h5:/g: a group, not a dataset");
    remove(file);
}

static void test_h5io_not_hdf5(void **state)
{
    (void)state;
    const char *file = "h5io_not_hdf5.h5";
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("x,y\n1,2\n3,4\n", f);
    fclose(f);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/x", EMBER_EFORMAT, msg);
    assert_contains(msg, file);
    assert_contains(msg, "not an HDF5 file");
    remove(file);
}

/* Flips bytes in the middle of the stored chunk; Fletcher32 must see it. */
static void corrupt_chunk(const char *file, const char *path)
{
    hid_t fid, d = open_dset(file, path, &fid), space = H5Dget_space(d);
    haddr_t addr = 0;
    hsize_t size = 0, offset[1];
    unsigned mask;
    assert_true(H5Dget_chunk_info(d, space, 0, offset, &mask, &addr, &size) >=
                0);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(fid);
    assert_true(size > 64);
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    unsigned char b[8];
    assert_int_equal(fseek(f, (long)(addr + size / 2), SEEK_SET), 0);
    assert_int_equal(fread(b, 1, 8, f), 8);
    for (int i = 0; i < 8; i++)
        b[i] ^= 0x5a;
    assert_int_equal(fseek(f, (long)(addr + size / 2), SEEK_SET), 0);
    assert_int_equal(fwrite(b, 1, 8, f), 8);
    fclose(f);
}

static void test_h5io_corrupt_checksum(void **state)
{
    (void)state;
    const char *file = "h5io_corrupt_checksum.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_F64);
    double recs[4096];
    for (int i = 0; i < 4096; i++)
        recs[i] = i;
    ember__h5w_opts o = {.fletcher32 = 1, .fid = -1};
    write_recs(ctx, file, "/x", &t, recs, 4096, &o, NULL, 0);
    ember_ctx_destroy(&ctx);
    corrupt_chunk(file, "/x");
    char msg[EMBER_MSG_SIZE];
    /* the file's own checksum (a new file from the writer is sealed) */
    read_fails(file, "/x", EMBER_ECORRUPT, msg);
    assert_contains(msg, "h5io_corrupt_checksum.h5: content checksum mismatch");
    /* without its header (as a file made elsewhere), the chunk's */
    unsigned char zeros[512] = {0};
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
    fclose(f);
    read_fails(file, "/x", EMBER_ECORRUPT, msg);
    assert_contains(msg, "h5io_corrupt_checksum.h5:/x");
    assert_contains(msg, "Fletcher32");
    remove(file);
}

/* HDF5's Fletcher32 word by word, as its filter computes it. */
static uint32_t fletcher32_wordwise(const unsigned char *d, size_t len)
{
    uint32_t sum1 = 0, sum2 = 0;
    size_t words = len / 2;
    while (words) {
        size_t t = words > 360 ? 360 : words;
        words -= t;
        do {
            sum1 += (uint32_t)d[0] << 8 | d[1];
            sum2 += sum1;
            d += 2;
        } while (--t);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (len % 2) {
        sum1 += (uint32_t)d[0] << 8;
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return sum2 << 16 | sum1;
}

/* The block-sum Fletcher32 gives the filter's bits: random bytes of every
 * length around the 360-word blocks, in steps, copying on the way, and
 * all-0xff bytes (the largest sums). */
static void test_h5io_fletcher32_matches_wordwise(void **state)
{
    (void)state;
    size_t size = 200003;
    unsigned char *b = malloc(size);
    assert_non_null(b);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (unsigned char)x;
    }
    for (size_t len = 0; len < 2200; len++)
        assert_int_equal(ember__fletcher32(b, len), fletcher32_wordwise(b, len));
    for (size_t at = 1; at < 40; at++) /* any alignment */
        for (size_t len = 700; len < 1500; len += 13)
            assert_int_equal(ember__fletcher32(b + at, len),
                             fletcher32_wordwise(b + at, len));
    assert_int_equal(ember__fletcher32(b, size), fletcher32_wordwise(b, size));
    /* in steps (any even length), then the rest */
    size_t steps[] = {720, 1440, 65520, 7200, 2, 722, 23040, 23042};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++)
        for (size_t len = steps[k]; len < size; len = len * 3 + 7) {
            ember__f32 st = {0, 0};
            size_t at = 0;
            for (; len - at > steps[k]; at += steps[k])
                ember__fletcher32_blocks(&st, b + at, steps[k]);
            assert_int_equal(ember__fletcher32_end(&st, b + at, len - at),
                             fletcher32_wordwise(b, len));
        }
    /* copying on the way: the same sums, the bytes copied */
    unsigned char *to = malloc(size);
    assert_non_null(to);
    size_t whole[] = {0, 720, 65520, size / 720 * 720};
    for (size_t k = 0; k < sizeof whole / sizeof *whole; k++) {
        ember__f32 st = {0, 0};
        memset(to, 0x5a, size);
        ember__fletcher32_copy(&st, to, b + 1, whole[k]); /* unaligned too */
        assert_memory_equal(to, b + 1, whole[k]);
        assert_int_equal(to[whole[k]], 0x5a); /* no further */
        assert_int_equal(ember__fletcher32_end(&st, b + 1 + whole[k], size - 1 - whole[k]),
                         fletcher32_wordwise(b + 1, size - 1));
    }
    free(to);
    memset(b, 0xff, size);
    for (size_t len = size - 3; len <= size; len++)
        assert_int_equal(ember__fletcher32(b, len), fletcher32_wordwise(b, len));
    /* zeros (the sums 0, not 65535), then sums that are multiples of
     * 65535 (65535, not 0) */
    memset(b, 0, size);
    size_t lens[] = {0, 1, 2, 3, 719, 720, 721, 23040, 23041, 46082, size};
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            b[1000] = b[1001] = 0xff; /* one word 0xffff */
        if (pass == 2)
            b[size - 1] = 0x01; /* and an odd last byte */
        for (size_t k = 0; k < sizeof lens / sizeof *lens; k++)
            assert_int_equal(ember__fletcher32(b, lens[k]), fletcher32_wordwise(b, lens[k]));
    }
    free(b);
}

/* Fletcher32 without deflate writes whole chunks directly: libhdf5's own
 * read (which runs the filter and checks every chunk) returns the records
 * of uneven appends over several chunks and a padded last one. */
static void test_h5io_direct_chunks_hdf5_reads(void **state)
{
    (void)state;
    const char *file = "h5io_direct_chunks.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_F64);
    size_t n = 300001, cuts[] = {0, 1, 70000, 131072, 131073, 262144, 299999, n};
    double *recs = malloc(n * sizeof *recs), *back = malloc(n * sizeof *back);
    assert_non_null(recs);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        recs[i] = (double)i * 0.5 - 7.25;
    char msg[EMBER_MSG_SIZE];
    ember__h5w *w = NULL;
    ember__h5w_opts o = {.fletcher32 = 1, .fid = -1};
    assert_int_equal(ember__h5w_open(ctx, &w, file, "/x", &t, &o, msg), EMBER_OK);
    for (size_t c = 0; c + 1 < sizeof cuts / sizeof *cuts; c++)
        assert_int_equal(ember__h5w_append(w, recs + cuts[c], cuts[c + 1] - cuts[c], msg),
                         EMBER_OK);
    assert_int_equal(ember__h5w_close(&w, NULL, 0, msg), EMBER_OK);
    ember_ctx_destroy(&ctx);
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, "/x", H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    herr_t rd = d >= 0 ? H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) : -1;
    hsize_t off = 262144, stored = 0;
    herr_t st = d >= 0 ? H5Dget_chunk_storage_size(d, &off, &stored) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (f >= 0)
        H5Fclose(f);
    ember__h5_unlock();
    assert_int_equal(npts, (hssize_t)n);
    assert_true(rd >= 0);
    assert_memory_equal(back, recs, n * sizeof *recs);
    assert_true(st >= 0);
    assert_int_equal(stored, 131072 * 8 + 4); /* a full, padded chunk + checksum */
    free(recs);
    free(back);
    remove(file);
}

/* Records laid out as chunks (a checkpoint's snapshot) make the same
 * dataset as appending them: every chunk's stored bytes, its Fletcher32
 * included, are equal (also when the layout's memory held other bytes
 * before); libhdf5's own read (which checks the sums) returns the
 * records. A writer of another chunk size is refused. */
static void test_h5io_chunks_same_as_append(void **state)
{
    (void)state;
    const char *file = "h5io_chunks.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32);
    size_t n = 600001, cuts[] = {0, 3, 262143, 262144, 262145, 524290, n};
    int32_t *recs = malloc(n * sizeof *recs), *back = malloc(n * sizeof *back);
    assert_non_null(recs);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        recs[i] = (int32_t)(i * 2654435761u);
    char msg[EMBER_MSG_SIZE];
    ember__h5w *w = NULL;
    ember__h5w_opts o = {.fletcher32 = 1, .fid = -1, .expected = n};
    assert_int_equal(ember__h5w_open(ctx, &w, file, "/append", &t, &o, msg), EMBER_OK);
    assert_int_equal(ember__h5w_append(w, recs, n, msg), EMBER_OK);
    assert_int_equal(ember__h5w_close(&w, NULL, 0, msg), EMBER_OK);
    ember__chunks c = {0};
    const char *names[2] = {"/filled", "/again"};
    for (int way = 0; way < 2; way++) {
        assert_int_equal(ember__chunks_layout(ctx, &c, t.size, n), EMBER_OK);
        assert_int_equal(c.chunk, 262144);
        memset(c.mem.data, 0xa5, c.mem.cap); /* stale bytes of a last use */
        for (size_t i = 0; i * c.chunk < n; i++)
            ember__chunks_fill(&c, i, recs + i * c.chunk);
        assert_int_equal(ember__h5w_open(ctx, &w, file, names[way], &t, &o, msg),
                         EMBER_OK);
        assert_int_equal(ember__h5w_put_chunks(w, &c, msg), EMBER_OK);
        assert_int_equal(ember__h5w_close(&w, NULL, 0, msg), EMBER_OK);
    }
    ember__h5w_opts other = {.fletcher32 = 1, .fid = -1, .expected = 1000};
    assert_int_equal(ember__h5w_open(ctx, &w, file, "/other", &t, &other, msg), EMBER_OK);
    assert_int_equal(ember__h5w_put_chunks(w, &c, msg), EMBER_EINVAL);
    assert_int_equal(ember__h5w_close(&w, NULL, 0, NULL), EMBER_OK);
    ember__buf_free(ctx, &c.mem);
    ember_ctx_destroy(&ctx);

    static unsigned char want[262144 * 4 + 4], got[262144 * 4 + 4];
    ember__h5_lock();
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d[3] = {H5Dopen2(f, "/append", H5P_DEFAULT), H5Dopen2(f, "/filled", H5P_DEFAULT),
                  H5Dopen2(f, "/again", H5P_DEFAULT)};
    for (int p = 0; p < 3; p++) {
        assert_true(d[p] >= 0);
        memset(back, 0, n * sizeof *back);
        assert_true(H5Dread(d[p], H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, back) >= 0);
        assert_memory_equal(back, recs, n * sizeof *recs);
    }
    for (hsize_t at = 0; at < n; at += 262144)
        for (int p = 0; p < 3; p++) {
            uint32_t mask = 1;
            hsize_t size = 0;
            assert_true(H5Dget_chunk_storage_size(d[p], &at, &size) >= 0);
            assert_int_equal(size, sizeof got);
            assert_true(H5Dread_chunk(d[p], H5P_DEFAULT, &at, &mask, p ? got : want) >= 0);
            assert_int_equal(mask, 0);
            if (p)
                assert_memory_equal(got, want, sizeof got);
        }
    assert_int_equal(want[sizeof want - 5], 0); /* the last chunk's padding */
    for (int p = 0; p < 3; p++)
        H5Dclose(d[p]);
    (void)cuts;
    H5Fclose(f);
    ember__h5_unlock();
    free(recs);
    free(back);
    remove(file);
}

/* A filled chunk is its records, then zeros to the chunk's end, then the
 * Fletcher32 of the whole chunk: for odd record sizes, and for chunks of
 * exactly whole steps of the fill (65520 bytes) and one byte more. */
static void test_h5io_chunks_fill_sums(void **state)
{
    (void)state;
    ember_ctx *ctx = new_ctx();
    size_t sizes[] = {1, 3, 8}, counts[] = {1, 719, 65520, 131040, 131041, 400003};
    size_t most = 400003 * 8;
    unsigned char *src = malloc(most);
    assert_non_null(src);
    for (size_t i = 0; i < most; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 9));
    ember__chunks c = {0};
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof counts / sizeof *counts; b++) {
            size_t r = sizes[a], n = counts[b];
            assert_int_equal(ember__chunks_layout(ctx, &c, r, n), EMBER_OK);
            assert_int_equal(c.chunk, ember__h5_chunk_records(r, n));
            memset(c.mem.data, 0xa5, c.mem.cap);
            for (size_t i = 0; i * c.chunk < n; i++)
                ember__chunks_fill(&c, i, src + i * c.chunk * r);
            size_t bytes = c.chunk * r;
            for (size_t i = 0; i * c.chunk < n; i++) {
                const unsigned char *slot = c.slots + i * c.stride;
                size_t have = (n - i * c.chunk < c.chunk ? n - i * c.chunk : c.chunk) * r;
                assert_memory_equal(slot, src + i * bytes, have);
                for (size_t k = have; k < bytes; k++)
                    assert_int_equal(slot[k], 0);
                uint32_t sum = ember__fletcher32(slot, bytes), got = 0;
                for (int k = 0; k < 4; k++)
                    got |= (uint32_t)slot[bytes + (size_t)k] << (8 * k);
                assert_int_equal(got, sum);
            }
        }
    ember__buf_free(ctx, &c.mem);
    free(src);
    ember_ctx_destroy(&ctx);
}

/* An HDF5 file cut short, as a crash mid-copy leaves it. */
static void write_truncated(const char *file)
{
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I64);
    int64_t recs[1000] = {0};
    write_recs(ctx, file, "/d", &t, recs, 1000, &plain, NULL, 0);
    ember_ctx_destroy(&ctx);
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(file, size / 2), 0);
}

static void test_h5io_truncated_file(void **state)
{
    (void)state;
    const char *file = "h5io_truncated_file.h5";
    write_truncated(file);
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/d", EMBER_ECORRUPT, msg);
    assert_contains(msg, file);
    assert_contains(msg, "truncated");
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I64);
    writer_fails(ctx, file, "/e", &t, NULL, EMBER_ECORRUPT, "truncated");
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* A write that runs out of room fails with one line naming the file, the
 * step and strerror; it used to carry HDF5's error stack with a raw
 * newline, cut before the cause. A full disk needs a small file system
 * (tests/integration/test_diskfull_message.sh mounts one); here a file-size
 * limit makes the writes fail the same way, with EFBIG. */
static void test_h5io_disk_full_message(void **state)
{
    (void)state;
    const char *file = "h5io_disk_full.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_F64);
    size_t n = 1 << 16;
    double *recs = calloc(n, sizeof *recs);
    assert_non_null(recs);
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char msg[EMBER_MSG_SIZE] = "";
    ember__h5w *w = NULL;
    int rc = ember__h5w_open(ctx, &w, file, "/d", &t, &plain, msg);
    for (int i = 0; !rc && i < 4; i++)
        rc = ember__h5w_append(w, recs, n, msg);
    if (!rc)
        rc = ember__h5w_close(&w, NULL, 0, msg);
    else
        ember__h5w_close(&w, NULL, 0, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_not_equal(rc, EMBER_OK);
    assert_contains(msg, file);
    assert_contains(msg, strerror(EFBIG));
    assert_null(strchr(msg, '\n'));
    assert_null(strchr(msg, '\r'));
    free(recs);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_exists_without_overwrite(void **state)
{
    (void)state;
    const char *file = "h5io_exists_without_overwrite.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32);
    int32_t recs[3] = {1, 2, 3};
    write_recs(ctx, file, "/a/d", &t, recs, 3, &plain, NULL, 0);
    char msg[EMBER_MSG_SIZE];
    ember__h5w *w = (ember__h5w *)&msg;
    assert_int_equal(ember__h5w_open(ctx, &w, file, "/a/d", &t, NULL, msg),
                     EMBER_EINVAL);
    assert_null(w);
    assert_contains(msg, "h5io_exists_without_overwrite.h5:/a/d");
    assert_contains(msg, "already exists");
    /* The group is there too. */
    assert_int_equal(ember__h5w_open(ctx, &w, file, "/a", &t, NULL, msg),
                     EMBER_EINVAL);
    ember_type got;
    size_t n;
    int32_t *data = read_recs(ctx, file, "/a/d", &got, &n);
    assert_int_equal(n, 3);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_overwrite_replaces(void **state)
{
    (void)state;
    const char *file = "h5io_overwrite_replaces.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t32 = ember_type_scalar(EMBER_I32), tp = point_type(), got;
    int32_t recs[3] = {1, 2, 3};
    write_recs(ctx, file, "/d", &t32, recs, 3, &plain, NULL, 0);
    point *p = make_points(10);
    ember__h5w_opts o = {.overwrite = 1, .deflate = 1, .fid = -1};
    write_recs(ctx, file, "/d", &tp, p, 10, &o, NULL, 0);
    size_t n;
    point *data = read_recs(ctx, file, "/d", &got, &n);
    assert_int_equal(n, 10);
    assert_true(ember_type_equal(&got, &tp));
    assert_points(data, p, n);
    ember__free(ctx, data);
    free(p);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* overwrite replaces a dataset, never a group: deleting the link of /g
 * would take /g/keep and /g/h/keep2 with it. */
static void test_h5io_overwrite_refuses_group(void **state)
{
    (void)state;
    const char *file = "h5io_overwrite_refuses_group.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32), got;
    int32_t recs[3] = {1, 2, 3};
    write_recs(ctx, file, "/g/keep", &t, recs, 3, &plain, NULL, 0);
    write_recs(ctx, file, "/g/h/keep2", &t, recs, 3, &plain, NULL, 0);
    ember__h5w_opts o = {.overwrite = 1, .fid = -1};
    writer_fails(ctx, file, "/g", &t, &o, EMBER_EINVAL,
                 "h5io_overwrite_refuses_group.h5:/g: is a group, not a dataset");
    writer_fails(ctx, file, "/g/h", &t, NULL, EMBER_EINVAL, "is a group");
    writer_fails(ctx, file, "/g/keep/x", &t, &o, EMBER_EINVAL,
                 "a parent on the path is not a group");
    writer_fails(ctx, file, "/", &t, &o, EMBER_EINVAL,
                 "the root group is not a dataset");
    writer_fails(ctx, file, "/g/", &t, &o, EMBER_EINVAL, "an empty name");
    writer_fails(ctx, file, "/g//keep", &t, &o, EMBER_EINVAL, "an empty name");
    size_t n;
    int32_t *data = read_recs(ctx, file, "/g/keep", &got, &n);
    assert_int_equal(n, 3);
    ember__free(ctx, data);
    data = read_recs(ctx, file, "/g/h/keep2", &got, &n);
    assert_int_equal(n, 3);
    ember__free(ctx, data);
    /* the public call refuses it too, and a spec ending in ':' is a path
     * left out, not a file named "....h5:" */
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_range(&ds, ctx, 0, 10, 1, 2, msg), EMBER_OK);
    ember_save_opts so = {.overwrite = 1};
    assert_int_equal(ember_save_h5(ds, "h5io_overwrite_refuses_group.h5:/g",
                                   &so, msg), EMBER_EINVAL);
    assert_contains(msg, "is a group");
    remove("h5io_overwrite_refuses_group.h5:");
    assert_int_equal(ember_save_h5(ds, "h5io_overwrite_refuses_group.h5:",
                                   &so, msg), EMBER_EINVAL);
    assert_contains(msg, "empty dataset path");
    assert_int_equal(access("h5io_overwrite_refuses_group.h5:", F_OK), -1);
    data = read_recs(ctx, file, "/g/h/keep2", &got, &n);
    assert_int_equal(n, 3);
    ember__free(ctx, data);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* A map that fails in partition 7 of range(0, 1000) over 10 partitions. */
static int fail_from_700(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    for (size_t i = 0; i < n; i++)
        if (a[i] >= 700)
            return 5;
    memcpy(out, in, n * sizeof *a);
    return 0;
}

static uint64_t count_of(ember_ctx *ctx, const char *spec)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    uint64_t n = 0;
    assert_int_equal(ember_read_h5(&ds, ctx, spec, 0, msg), EMBER_OK);
    assert_int_equal(ember_count(ds, &n, msg), EMBER_OK);
    ember_ds_free(&ds);
    return n;
}

/* 1 when the file has a link at path. */
static int has_link(const char *file, const char *path)
{
    ember__h5_lock();
    hid_t fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    int yes = fid >= 0 && H5Lexists(fid, path, H5P_DEFAULT) > 0;
    if (fid >= 0)
        H5Fclose(fid);
    ember__h5_unlock();
    return yes;
}

/* A failed save leaves no partial dataset that reads back as complete:
 * with overwrite the previous one stays; without, nothing is left and a
 * retry works; a file the save created is removed. */
static void test_h5io_save_failure_atomic(void **state)
{
    (void)state;
    const char *file = "h5io_save_failure_atomic.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *good = NULL, *bad = NULL, *small = NULL;
    ember_type t = ember_type_scalar(EMBER_I64);
    assert_int_equal(ember_range(&good, ctx, 0, 1000, 1, 10, msg), EMBER_OK);
    assert_int_equal(ember_range(&small, ctx, 0, 30, 1, 3, msg), EMBER_OK);
    assert_int_equal(ember_map(&bad, good, &t, fail_from_700, NULL, 0, msg),
                     EMBER_OK);
    /* a first save that fails creates nothing, the file included */
    assert_int_equal(ember_save_h5(bad, "h5io_save_failure_atomic.h5:/results",
                                   NULL, msg), EMBER_EUSER);
    assert_contains(msg, "partition 7");
    assert_int_equal(access(file, F_OK), -1);
    assert_int_equal(ember_save_h5(small, "h5io_save_failure_atomic.h5:/results",
                                   NULL, msg), EMBER_OK);
    ember_save_opts over = {.overwrite = 1};
    assert_int_equal(ember_save_h5(bad, "h5io_save_failure_atomic.h5:/results",
                                   &over, msg), EMBER_EUSER);
    assert_int_equal(count_of(ctx, "h5io_save_failure_atomic.h5:/results"), 30);
    assert_false(has_link(file, "/.ember-unfinished.results"));
    /* without overwrite into a file that is there: nothing at the path,
     * and the retry is not refused as "already exists" */
    assert_int_equal(ember_save_h5(bad, "h5io_save_failure_atomic.h5:/g/fresh",
                                   NULL, msg), EMBER_EUSER);
    assert_false(has_link(file, "/g/fresh"));
    assert_false(has_link(file, "/g/.ember-unfinished.fresh"));
    assert_int_equal(ember_save_h5(good, "h5io_save_failure_atomic.h5:/g/fresh",
                                   NULL, msg), EMBER_OK);
    assert_int_equal(count_of(ctx, "h5io_save_failure_atomic.h5:/g/fresh"), 1000);
    /* with overwrite, success replaces it, offsets and all */
    assert_int_equal(ember_save_h5(good, "h5io_save_failure_atomic.h5:/results",
                                   &over, msg), EMBER_OK);
    assert_int_equal(count_of(ctx, "h5io_save_failure_atomic.h5:/results"), 1000);
    ember_ds *back = NULL;
    assert_int_equal(ember_read_h5(&back, ctx,
                                   "h5io_save_failure_atomic.h5:/results", 0, msg),
                     EMBER_OK);
    ember_ds_free(&back);
    assert_false(has_link(file, "/.ember-unfinished.results"));
    ember_ds_free(&bad);
    ember_ds_free(&good);
    ember_ds_free(&small);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* What a save killed in the middle leaves: its dataset under the temporary
 * link, marked unfinished. No reader takes it for data, by its name or at
 * the root, and the next save to the path clears it. */
static void test_h5io_unfinished_leftover(void **state)
{
    (void)state;
    const char *file = "h5io_unfinished_leftover.h5";
    remove(file);
    int64_t v[3] = {1, 2, 3};
    hsize_t three = 3;
    fixture(file, "/.ember-unfinished.x", H5T_STD_I64LE, 1, &three,
            H5T_NATIVE_INT64, v);
    fixture(file, "/y", H5T_STD_I64LE, 1, &three, H5T_NATIVE_INT64, v);
    ember__h5_lock();
    hid_t fid = H5Fopen(file, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(fid, "/.ember-unfinished.x", H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(d, "ember_unfinished", H5T_STD_U8LE, sp, H5P_DEFAULT,
                         H5P_DEFAULT);
    unsigned char one = 1;
    assert_true(a >= 0 && H5Awrite(a, H5T_NATIVE_UCHAR, &one) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(fid);
    ember__h5_unlock();
    ember_ctx *ctx = new_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    assert_int_equal(ember_read_h5(&ds, ctx,
                                   "h5io_unfinished_leftover.h5:/.ember-unfinished.x",
                                   0, msg), EMBER_ECORRUPT);
    assert_contains(msg, "an unfinished write");
    assert_null(ds);
    /* the root holds one dataset, /y */
    assert_int_equal(ember_read_h5(&ds, ctx, file, 0, msg), EMBER_OK);
    ember_ds_free(&ds);
    assert_int_equal(ember_range(&ds, ctx, 0, 5, 1, 1, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(ds, "h5io_unfinished_leftover.h5:/x", NULL, msg),
                     EMBER_OK);
    assert_int_equal(count_of(ctx, "h5io_unfinished_leftover.h5:/x"), 5);
    assert_false(has_link(file, "/.ember-unfinished.x"));
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* ---- changes of a whole file (h5edit.c) ----------------------------------- */

static ember_ctx *one_thread_ctx(void)
{
    ember_ctx *ctx = NULL;
    ember_ctx_opts o = {.threads = 1};
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, &o, msg), EMBER_OK);
    return ctx;
}

/* The whole file, into a malloc'd buffer (*n bytes). */
static unsigned char *slurp(const char *file, size_t *n)
{
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void assert_same_bytes(const char *file, const unsigned char *was, size_t n)
{
    size_t m;
    unsigned char *now = slurp(file, &m);
    assert_int_equal(m, n);
    assert_memory_equal(now, was, n);
    free(now);
}

/* Entries of the working directory whose names start with prefix. */
static int entries_with(const char *prefix)
{
    DIR *d = opendir(".");
    assert_non_null(d);
    int k = 0;
    for (struct dirent *de; (de = readdir(d));)
        k += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return k;
}

/* A sealed file made by ember (new files from ember_h5_write_array are),
 * holding /a = 0..n-1. */
static void sealed_file(const char *file, uint64_t n)
{
    int64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (uint64_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    char spec[256], msg[EMBER_MSG_SIZE];
    snprintf(spec, sizeof spec, "%s:/a", file);
    assert_int_equal(ember_h5_write_array(spec, EMBER_I64, v, 1, &n, NULL, 0, 1, msg),
                     EMBER_OK);
    free(v);
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
}

static int kill_at_5(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    if (n && a[0] / (1 << 17) == 5)
        raise(SIGKILL);
    memcpy(out, in, n * sizeof *a);
    return 0;
}

static int fail_at_part2(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    if (n && a[0] / (1 << 17) == 2)
        return 5;
    memcpy(out, in, n * sizeof *a);
    return 0;
}

/* A save into an existing file, failed or killed halfway (before: the
 * file failed its checksum, every dataset in it refused), leaves the file
 * byte for byte as it was; what a kill leaves beside it goes with the next
 * change. */
static void test_h5io_save_killed_keeps_file(void **state)
{
    (void)state;
    const char *file = "h5io_save_killed.h5";
    remove(file);
    sealed_file(file, 1000);
    size_t n;
    unsigned char *was = slurp(file, &n);
    ember_ctx *ctx = one_thread_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *bad = NULL;
    ember_type t = ember_type_scalar(EMBER_I64);
    /* 8 partitions of 2^17 records, a 1 MiB chunk each */
    assert_int_equal(ember_range(&r, ctx, 0, 8 << 17, 1, 8, msg), EMBER_OK);
    assert_int_equal(ember_map(&bad, r, &t, fail_from_700, NULL, 0, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(bad, "h5io_save_killed.h5:/b", NULL, msg), EMBER_EUSER);
    assert_same_bytes(file, was, n);
    assert_int_equal(entries_with("h5io_save_killed.h5.ember-edit-"), 0);
    ember_ds_free(&bad);
    assert_int_equal(ember_map(&bad, r, &t, kill_at_5, NULL, 0, msg), EMBER_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(ember_save_h5(bad, "h5io_save_killed.h5:/b", NULL, msg) == EMBER_OK ? 0 : 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* killed with partitions 0-4 written into its copy */
    assert_same_bytes(file, was, n);
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
    assert_int_equal(count_of(ctx, "h5io_save_killed.h5:/a"), 1000);
    assert_int_equal(entries_with("h5io_save_killed.h5.ember-edit-"), 1);
    assert_int_equal(ember_save_h5(r, "h5io_save_killed.h5:/b", NULL, msg), EMBER_OK);
    assert_int_equal(entries_with("h5io_save_killed.h5.ember-edit-"), 0);
    assert_int_equal(count_of(ctx, "h5io_save_killed.h5:/a"), 1000);
    assert_int_equal(count_of(ctx, "h5io_save_killed.h5:/b"), 8 << 17);
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
    free(was);
    ember_ds_free(&bad);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* The changed file keeps its mode; a symbolic link to it stays a link to
 * the changed file. A damaged file is refused naming the file, not the
 * copy, and left as it was. */
static void test_h5io_edit_mode_link_message(void **state)
{
    (void)state;
    const char *file = "h5io_edit_target.h5", *link_name = "h5io_edit_link.h5";
    remove(file);
    remove(link_name);
    sealed_file(file, 10);
    assert_int_equal(chmod(file, 0640), 0);
    assert_int_equal(symlink(file, link_name), 0);
    ember_ctx *ctx = one_thread_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    assert_int_equal(ember_range(&r, ctx, 0, 5, 1, 1, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(r, "h5io_edit_link.h5:/b", NULL, msg), EMBER_OK);
    struct stat st;
    assert_int_equal(lstat(link_name, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(count_of(ctx, "h5io_edit_target.h5:/b"), 5);
    assert_int_equal(count_of(ctx, "h5io_edit_target.h5:/a"), 10);
    /* one byte of the body flipped */
    size_t n;
    unsigned char *b = slurp(file, &n);
    b[n - 100] ^= 0x40;
    FILE *f = fopen(file, "wb");
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    ember_h5_attr at = {.name = "x", .kind = EMBER_I64, .i = 1};
    assert_int_equal(ember_h5_write_attrs(file, &at, 1, msg), EMBER_ECORRUPT);
    assert_contains(msg, "h5io_edit_target.h5: content checksum mismatch");
    assert_null(strstr(msg, "ember-edit"));
    assert_int_equal(ember_save_h5(r, "h5io_edit_link.h5:/c", NULL, msg), EMBER_ECORRUPT);
    assert_contains(msg, "h5io_edit_target.h5");
    assert_null(strstr(msg, "ember-edit"));
    assert_same_bytes(file, b, n);
    assert_int_equal(entries_with("h5io_edit_target.h5.ember-edit-"), 0);
    /* a file not there has no attributes to set */
    assert_int_equal(ember_h5_write_attrs("h5io_edit_none.h5", &at, 1, msg),
                     EMBER_ENOTFOUND);
    assert_string_equal(msg, "h5io_edit_none.h5: no such file");
    assert_int_equal(entries_with("h5io_edit_none.h5"), 0);
    free(b);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    remove(link_name);
    remove(file);
}

/* Two processes adding datasets to one file at once: each change waits
 * for the other, and none is lost. */
static void test_h5io_concurrent_edits(void **state)
{
    (void)state;
    const char *file = "h5io_concurrent_edits.h5";
    remove(file);
    sealed_file(file, 10);
    fflush(NULL);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            /* one thread: libgomp's pool does not survive a fork */
            ember_ctx *ctx = NULL;
            ember_ctx_opts o = {.threads = 1};
            char msg[EMBER_MSG_SIZE], spec[128];
            ember_ds *r = NULL;
            int bad = ember_ctx_create(&ctx, &o, msg) ||
                      ember_range(&r, ctx, 0, 200000, 1, 4, msg);
            for (int i = 0; !bad && i < 8; i++) {
                snprintf(spec, sizeof spec, "%s:/p%d_%d", file, k, i);
                bad = ember_save_h5(r, spec, NULL, msg);
            }
            if (bad)
                fprintf(stderr, "child %d: %s\n", k, msg);
            _exit(bad ? 1 : 0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ember_ctx *ctx = one_thread_ctx();
    char spec[128], msg[EMBER_MSG_SIZE];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 8; i++) {
            snprintf(spec, sizeof spec, "%s:/p%d_%d", file, k, i);
            assert_int_equal(count_of(ctx, spec), 200000);
        }
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
    assert_int_equal(entries_with("h5io_concurrent_edits.h5.ember-edit-"), 0);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* Says it is computing (MARKER.ready: the save that runs it has begun its
 * change of the file), then waits for MARKER. */
static int wait_for_marker(const void *in, void *out, size_t n, void *arg)
{
    char ready[256];
    snprintf(ready, sizeof ready, "%s.ready", (const char *)arg);
    FILE *f = fopen(ready, "w");
    if (f)
        fclose(f);
    for (int i = 0; i < 3000 && access((const char *)arg, F_OK) != 0; i++)
        usleep(10000);
    memcpy(out, in, n * sizeof(int64_t));
    return 0;
}

/* Two processes creating one new file: the one that finishes second finds
 * the file there and fails, instead of renaming over the first's. The
 * child begins first (a new file then) and waits; the parent creates the
 * file once the child is computing (before, it could create the file
 * before the child began, and the child then rightly added to it). */
static void test_h5io_new_file_race(void **state)
{
    (void)state;
    const char *file = "h5io_new_race.h5", *marker = "h5io_new_race.marker";
    const char *ready = "h5io_new_race.marker.ready";
    remove(file);
    remove(marker);
    remove(ready);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ember_ctx *ctx = NULL;
        ember_ctx_opts o = {.threads = 1};
        char msg[EMBER_MSG_SIZE];
        ember_ds *r = NULL, *slow = NULL;
        ember_type t = ember_type_scalar(EMBER_I64);
        int rc = ember_ctx_create(&ctx, &o, msg) ||
                 ember_range(&r, ctx, 0, 7, 1, 1, msg) ||
                 ember_map(&slow, r, &t, wait_for_marker, (void *)marker, 0, msg);
        if (!rc)
            rc = ember_save_h5(slow, "h5io_new_race.h5:/late", NULL, msg);
        /* 3: refused as it should be */
        _exit(rc == EMBER_EIO && strstr(msg, "created by another process") ? 3 : 1);
    }
    for (int i = 0; i < 3000 && access(ready, F_OK) != 0; i++)
        usleep(10000);
    assert_int_equal(access(ready, F_OK), 0);
    ember_ctx *ctx = one_thread_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    assert_int_equal(ember_range(&r, ctx, 0, 5, 1, 1, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(r, "h5io_new_race.h5:/first", NULL, msg), EMBER_OK);
    FILE *m = fopen(marker, "w");
    assert_non_null(m);
    fclose(m);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    assert_int_equal(count_of(ctx, "h5io_new_race.h5:/first"), 5);
    assert_false(has_link(file, "/late"));
    assert_int_equal(entries_with("h5io_new_race.h5.ember-edit-"), 0);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    remove(marker);
    remove(ready);
    remove(file);
}

/* A scratch file is changed in place (the same inode); others through a
 * copy (a new one). */
static void test_h5io_scratch_in_place(void **state)
{
    (void)state;
    const char *file = "h5io_scratch.h5";
    remove(file);
    sealed_file(file, 10);
    ember_ctx *ctx = one_thread_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    struct stat a, b;
    assert_int_equal(ember_range(&r, ctx, 0, 5, 1, 1, msg), EMBER_OK);
    assert_int_equal(stat(file, &a), 0);
    assert_int_equal(ember_save_h5(r, "h5io_scratch.h5:/b", NULL, msg), EMBER_OK);
    assert_int_equal(stat(file, &b), 0);
    assert_true(a.st_ino != b.st_ino);
    assert_int_equal(ember_h5_scratch(file, 1), EMBER_OK);
    assert_int_equal(ember_h5_scratch(file, 1), EMBER_OK); /* once is enough */
    assert_int_equal(ember_save_h5(r, "h5io_scratch.h5:/c", NULL, msg), EMBER_OK);
    assert_int_equal(stat(file, &a), 0);
    assert_true(a.st_ino == b.st_ino);
    /* a failed save (two 1 MiB chunks written first) changed it in place
     * too, and sealed it again */
    ember_ds *bad = NULL;
    ember_type t = ember_type_scalar(EMBER_I64);
    assert_int_equal(ember_range(&bad, ctx, 0, 3 << 17, 1, 3, msg), EMBER_OK);
    ember_ds *failing = NULL;
    assert_int_equal(ember_map(&failing, bad, &t, fail_at_part2, NULL, 0, msg), EMBER_OK);
    assert_int_equal(ember_save_h5(failing, "h5io_scratch.h5:/x", NULL, msg), EMBER_EUSER);
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
    ember_ds_free(&failing);
    ember_ds_free(&bad);
    assert_int_equal(ember_h5_scratch(file, 0), EMBER_OK);
    assert_int_equal(ember_save_h5(r, "h5io_scratch.h5:/d", NULL, msg), EMBER_OK);
    assert_int_equal(stat(file, &b), 0);
    assert_true(a.st_ino != b.st_ino);
    for (const char *p = "bcd"; *p; p++) {
        char spec[64];
        snprintf(spec, sizeof spec, "%s:/%c", file, *p);
        assert_int_equal(count_of(ctx, spec), 5);
    }
    assert_int_equal(ember__fsum_check(file, msg), EMBER_OK);
    assert_int_equal(ember_h5_scratch("", 1), EMBER_EINVAL);
    assert_int_equal(ember_h5_scratch(NULL, 0), EMBER_EINVAL);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* ckptfile.c's use: several datasets into one file it keeps open. */
static void test_h5io_writer_caller_fid(void **state)
{
    (void)state;
    const char *file = "h5io_writer_caller_fid.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I64), got;
    int64_t recs[4] = {10, 20, 30, 40};
    const uint64_t off[3] = {0, 2, 4};
    ember__h5_lock();
    hid_t fid = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ember__h5_unlock();
    assert_true(fid >= 0);
    ember__h5w_opts o = {.fletcher32 = 1, .fid = fid};
    write_recs(ctx, "ckpt", "/datasets/a", &t, recs, 4, &o, off, 2);
    write_recs(ctx, "ckpt", "/datasets/b", &t, recs, 4, &o, NULL, 0);
    ember__h5_lock();
    assert_true(H5Iis_valid(fid) > 0);
    assert_true(H5Fclose(fid) >= 0);
    ember__h5_unlock();
    size_t n;
    int64_t *data = read_recs(ctx, file, "/datasets/b", &got, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(data, recs, sizeof recs);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_writer_bad_args(void **state)
{
    (void)state;
    const char *file = "h5io_writer_bad_args.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32), bad = t;
    bad.field[0].kind = (ember_scalar)42;
    ember__h5w_opts deflate12 = {.deflate = 12, .fid = -1};
    ember__h5w_opts bogus_fid = {.fid = 12345};
    writer_fails(ctx, file, "", &t, NULL, EMBER_EINVAL, "no dataset path");
    writer_fails(ctx, file, "/d", &t, &deflate12, EMBER_EINVAL, "deflate");
    writer_fails(ctx, file, "/d", &bad, NULL, EMBER_EINVAL, "record type");
    writer_fails(ctx, file, "/d", &t, &bogus_fid, EMBER_EINVAL, "fid");
    writer_fails(ctx, "h5io_no_such_dir/f.h5", "/d", &t, NULL, EMBER_EIO,
                 "h5io_no_such_dir/f.h5");
    /* Under a dataset there is no room for another. */
    int32_t one = 1;
    write_recs(ctx, file, "/d", &t, &one, 1, &plain, NULL, 0);
    writer_fails(ctx, file, "/d/e", &t, NULL, EMBER_EINVAL,
                 "h5io_writer_bad_args.h5:/d/e: a parent on the path is not "
                 "a group");
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember__h5w_append(NULL, &one, 1, msg), EMBER_EINVAL);
    ember__h5w *w = NULL;
    assert_int_equal(ember__h5w_close(&w, NULL, 0, msg), EMBER_OK);
    assert_int_equal(ember__h5w_close(NULL, NULL, 0, msg), EMBER_OK);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_writer_not_hdf5(void **state)
{
    (void)state;
    const char *file = "h5io_writer_not_hdf5.h5";
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not hdf5\n", f);
    fclose(f);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32);
    writer_fails(ctx, file, "/d", &t, NULL, EMBER_EFORMAT, "not an HDF5 file");
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* ---- the public reader -------------------------------------------------------- */

static void test_h5io_read_h5_public(void **state)
{
    (void)state;
    const char *file = "h5io:read_h5_public.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = point_type();
    point *p = make_points(100);
    write_recs(ctx, file, "/data/points", &t, p, 100, &plain, NULL, 0);
    free(p);
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    assert_int_equal(ember_read_h5(&ds, ctx, "h5io:read_h5_public.h5:/data/"
                                             "points",
                                   4, msg),
                     EMBER_OK);
    assert_non_null(ds);
    assert_true(ember_type_equal(ember_ds_type(ds), &t));
    assert_int_equal(ember_ds_partitions(ds), 4);
    assert_string_equal(ember_ds_name(ds), "/data/points");
    ember_ds_free(&ds);
    /* No path: the one dataset at the root, named after the file. */
    const char *root = "h5io_read_h5_public_root.h5";
    remove(root);
    double v[2] = {1, 2};
    hsize_t two = 2;
    fixture(root, "/only", H5T_IEEE_F64LE, 1, &two, H5T_NATIVE_DOUBLE, v);
    assert_int_equal(ember_read_h5(&ds, ctx, root, 0, msg), EMBER_OK);
    assert_int_equal(ember_ds_type(ds)->field[0].kind, EMBER_F64);
    assert_string_equal(ember_ds_name(ds), root);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    remove(file);
    remove(root);
}

static void test_h5io_read_h5_errors(void **state)
{
    (void)state;
    ember_ctx *ctx = new_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = (ember_ds *)&msg;
    assert_int_equal(ember_read_h5(&ds, ctx, ":/x", 0, msg), EMBER_EINVAL);
    assert_null(ds);
    assert_int_equal(ember_read_h5(&ds, ctx, "h5io_nothing_here.h5:/x", 0,
                                   msg),
                     EMBER_ENOTFOUND);
    assert_string_equal(msg, "h5io_nothing_here.h5: no such file");
    assert_int_equal(ember_read_h5(&ds, NULL, "f.h5", 0, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_h5(NULL, ctx, "f.h5", 0, NULL), EMBER_EINVAL);
    ember_ctx_destroy(&ctx);
}

/* ---- the lock ----------------------------------------------------------------- */

static int printed;

static herr_t count_prints(hid_t stack, void *data)
{
    (void)stack;
    (void)data;
    printed++;
    return 0;
}

/* HDF5 errors inside ember do not print, and the program's own handler is
 * back afterwards. */
static void test_h5io_quiet_errors(void **state)
{
    (void)state;
    const char *file = "h5io_quiet_errors.h5";
    remove(file);
    write_truncated(file);
    H5E_auto2_t old_fn = NULL, fn = NULL;
    void *old_data = NULL, *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, count_prints, NULL);
    printed = 0;
    char msg[EMBER_MSG_SIZE];
    read_fails(file, "/d", EMBER_ECORRUPT, msg);
    assert_int_equal(printed, 0);
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    assert_true(fn == count_prints);
    remove(file);
}

/* ckptfile.c holds the lock around its own calls and calls in here. */
static void test_h5io_lock_is_recursive(void **state)
{
    (void)state;
    const char *file = "h5io_lock_is_recursive.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = ember_type_scalar(EMBER_I32), got;
    int32_t recs[2] = {7, 8};
    ember__h5_lock();
    ember__h5_lock();
    write_recs(ctx, file, "/d", &t, recs, 2, &plain, NULL, 0);
    size_t n;
    int32_t *data = read_recs(ctx, file, "/d", &got, &n);
    ember__h5_unlock();
    ember__h5_unlock();
    assert_int_equal(n, 2);
    assert_memory_equal(data, recs, sizeof recs);
    ember__free(ctx, data);
    ember_ctx_destroy(&ctx);
    remove(file);
}

static void test_h5io_concurrent_readers(void **state)
{
    (void)state;
    const char *file = "h5io_concurrent_readers.h5";
    remove(file);
    ember_ctx *ctx = new_ctx();
    ember_type t = point_type();
    point *p = make_points(3000);
    ember__h5w_opts o = {.deflate = 3, .fletcher32 = 1, .fid = -1};
    write_recs(ctx, file, "/p", &t, p, 3000, &o, NULL, 0);
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad)
    for (int i = 0; i < 16; i++) {
        ember_type got;
        void *data = NULL;
        size_t n = 0;
        char msg[EMBER_MSG_SIZE];
        int rc = ember__h5_read_all(ctx, file, "/p", &got, &data, &n, msg);
        bad += rc != EMBER_OK || n != 3000 ||
               memcmp(((point *)data)[2999].x, p[2999].x, sizeof p->x) != 0;
        ember__free(ctx, data);
    }
    assert_int_equal(bad, 0);
    free(p);
    ember_ctx_destroy(&ctx);
    remove(file);
}

/* ---- allocation failures ------------------------------------------------------- */

typedef struct {
    long calls;
    long fail_at; /* 0: never */
    long live;
} counting;

static void *cnt_malloc(size_t size, void *ud)
{
    counting *c = ud;
    if (c->fail_at && ++c->calls == c->fail_at)
        return NULL;
    c->live++;
    return malloc(size);
}

static void *cnt_realloc(void *ptr, size_t size, void *ud)
{
    counting *c = ud;
    if (c->fail_at && ++c->calls == c->fail_at)
        return NULL;
    if (!ptr)
        c->live++;
    return realloc(ptr, size);
}

static void cnt_free(void *ptr, void *ud)
{
    counting *c = ud;
    if (ptr)
        c->live--;
    free(ptr);
}

/* Fails the 1st, 2nd, ... allocation until the read and the write succeed:
 * each failure is a clean ENOMEM and leaks nothing. */
static void test_h5io_allocation_failures(void **state)
{
    (void)state;
    const char *file = "h5io_allocation_failures.h5";
    remove(file);
    counting cnt = {0, 0, 0};
    ember_allocator a = {cnt_malloc, cnt_realloc, cnt_free, &cnt};
    ember_ctx_opts opts = {.allocator = &a};
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, &opts, msg), EMBER_OK);
    ember_type t = ember_type_scalar(EMBER_I64), got;
    int64_t recs[3] = {1, 2, 3};
    long base = cnt.live;
    int rc = EMBER_ENOMEM;
    for (long k = 1; rc == EMBER_ENOMEM; k++) {
        cnt.calls = 0;
        cnt.fail_at = k;
        ember__h5w *w = NULL;
        rc = ember__h5w_open(ctx, &w, file, "/d", &t, NULL, msg);
        if (rc == EMBER_OK)
            rc = ember__h5w_append(w, recs, 3, msg);
        int rc2 = ember__h5w_close(&w, NULL, 0, msg);
        if (rc == EMBER_OK)
            rc = rc2;
        assert_true(rc == EMBER_OK || rc == EMBER_ENOMEM);
        assert_int_equal(cnt.live, base);
    }
    rc = EMBER_ENOMEM;
    for (long k = 1; rc == EMBER_ENOMEM; k++) {
        cnt.calls = 0;
        cnt.fail_at = k;
        void *data = NULL;
        size_t n;
        rc = ember__h5_read_all(ctx, file, "/d", &got, &data, &n, msg);
        assert_true(rc == EMBER_OK || rc == EMBER_ENOMEM);
        if (rc == EMBER_ENOMEM)
            assert_contains(msg, "no memory");
        ember__free(ctx, data);
        assert_int_equal(cnt.live, base);
    }
    cnt.fail_at = 0;
    ember_ctx_destroy(&ctx);
    remove(file);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h5io_split_spec_plain),
        cmocka_unit_test(test_h5io_split_spec_no_path),
        cmocka_unit_test(test_h5io_split_spec_colons_in_file_name),
        cmocka_unit_test(test_h5io_split_spec_errors),
        cmocka_unit_test(test_h5io_roundtrip_scalars),
        cmocka_unit_test(test_h5io_roundtrip_pair),
        cmocka_unit_test(test_h5io_roundtrip_struct_array),
        cmocka_unit_test(test_h5io_roundtrip_filters),
        cmocka_unit_test(test_h5io_partition_offsets),
        cmocka_unit_test(test_h5io_partition_offsets_mismatch),
        cmocka_unit_test(test_h5io_many_partitions),
        cmocka_unit_test(test_h5io_nested_path),
        cmocka_unit_test(test_h5io_chunked_unlimited),
        cmocka_unit_test(test_h5io_empty_dataset),
        cmocka_unit_test(test_h5io_read_matrix),
        cmocka_unit_test(test_h5io_read_contiguous_large),
        cmocka_unit_test(test_h5io_read_integer_widths),
        cmocka_unit_test(test_h5io_read_foreign_compound),
        cmocka_unit_test(test_h5io_read_string_is_etype),
        cmocka_unit_test(test_h5io_read_unsupported_shapes),
        cmocka_unit_test(test_h5io_read_only_root_dataset),
        cmocka_unit_test(test_h5io_read_data_elsewhere),
        cmocka_unit_test(test_h5io_read_root_ambiguous),
        cmocka_unit_test(test_h5io_read_root_empty),
        cmocka_unit_test(test_h5io_missing_file),
        cmocka_unit_test(test_h5io_missing_path),
        cmocka_unit_test(test_h5io_not_hdf5),
        cmocka_unit_test(test_h5io_corrupt_checksum),
        cmocka_unit_test(test_h5io_truncated_file),
        cmocka_unit_test(test_h5io_disk_full_message),
        cmocka_unit_test(test_h5io_exists_without_overwrite),
        cmocka_unit_test(test_h5io_overwrite_replaces),
        cmocka_unit_test(test_h5io_overwrite_refuses_group),
        cmocka_unit_test(test_h5io_save_failure_atomic),
        cmocka_unit_test(test_h5io_unfinished_leftover),
        cmocka_unit_test(test_h5io_save_killed_keeps_file),
        cmocka_unit_test(test_h5io_edit_mode_link_message),
        cmocka_unit_test(test_h5io_concurrent_edits),
        cmocka_unit_test(test_h5io_new_file_race),
        cmocka_unit_test(test_h5io_scratch_in_place),
        cmocka_unit_test(test_h5io_writer_caller_fid),
        cmocka_unit_test(test_h5io_writer_bad_args),
        cmocka_unit_test(test_h5io_writer_not_hdf5),
        cmocka_unit_test(test_h5io_read_h5_public),
        cmocka_unit_test(test_h5io_read_h5_errors),
        cmocka_unit_test(test_h5io_quiet_errors),
        cmocka_unit_test(test_h5io_lock_is_recursive),
        cmocka_unit_test(test_h5io_concurrent_readers),
        cmocka_unit_test(test_h5io_allocation_failures),
        cmocka_unit_test(test_h5io_fletcher32_matches_wordwise),
        cmocka_unit_test(test_h5io_direct_chunks_hdf5_reads),
        cmocka_unit_test(test_h5io_chunks_same_as_append),
        cmocka_unit_test(test_h5io_chunks_fill_sums),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
