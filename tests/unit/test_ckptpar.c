/* test_ckptpar.c: the collective checkpoint writer (src/ckptpar.c) on one
 * rank, and the readers it pairs with (ember__ckr_open_known,
 * ember__ckr_dataset_shape, ember__ck_head in src/ckptfile.c).
 *
 * With one rank every collective call is trivial, so these cases check
 * what does not depend on the rank count: the file the collective writer
 * makes holds, item for item, what the serial writer's holds (records,
 * types, partition offsets, scalars, a matrix, a blob; with and without
 * deflate), it passes the whole-file checksum and every verification; a
 * stale NAME.tmp is replaced; an abandoned write leaves no file; a bad
 * name is refused; a missing directory is an error naming the file; and a
 * reader given another file's checksum header refuses it. Several ranks
 * are tested in the MPI build (tests/mpi/test_mpi_ckpt.c,
 * test_mpi_ckpt_collective.sh).
 */
#include "internal.h"
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#define NPARTS 5

static const ember__ck_meta meta = {.kind = "loop", .program = "p",
                                    .parameters = "a=1\n", .iteration = 7,
                                    .fingerprint = 42};

typedef struct {
    double x;
    int32_t k;
} pair;

static ember_type pair_type(void)
{
    ember_type t;
    ember_field f[2] = {{.name = "x", .kind = EMBER_F64},
                        {.name = "k", .kind = EMBER_I32}};
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember_type_struct(&t, f, 2, msg), msg);
    return t;
}

/* Partitions of sizes {0, 3000, 1, 0, 200000} (an empty first and last
 * but one, and more than one chunk) over consecutive records. */
static const size_t sizes[NPARTS] = {0, 3000, 1, 0, 200000};

static ember__buf *make_parts(const ember_type *t, unsigned char **recs)
{
    size_t total = 0;
    for (int p = 0; p < NPARTS; p++)
        total += sizes[p];
    *recs = calloc(total, t->size);
    assert_non_null(*recs);
    uint64_t seed = 11;
    for (size_t i = 0; i < total * t->size; i++)
        (*recs)[i] = (unsigned char)tu_rand(&seed);
    if (t->nfields == 2) /* zero the padding of pair: it is not stored */
        for (size_t i = 0; i < total; i++)
            memset(*recs + i * t->size + 12, 0, t->size - 12);
    ember__buf *parts = calloc(NPARTS, sizeof *parts);
    assert_non_null(parts);
    size_t at = 0;
    for (int p = 0; p < NPARTS; p++) {
        parts[p].data = *recs + at * t->size;
        parts[p].n = sizes[p];
        parts[p].size = t->size;
        at += sizes[p];
    }
    return parts;
}

static const double mat[6] = {1.5, -2, 3e300, 0.0, -0.0, 7};
static const unsigned char blob[5] = {1, 2, 3, 250, 0};
static const int64_t scal[3] = {-1, 0, INT64_MAX};

static void write_serial(ember_ctx *ctx, const char *name, int deflate,
                         const ember_type *t, const ember__buf *parts)
{
    char msg[EMBER_MSG_SIZE];
    ember__ck_meta m = meta;
    m.deflate = deflate;
    ember__ckw *w = NULL;
    TU_OKM(ember__ckw_begin(ctx, &w, ".", name, &m, msg), msg);
    TU_OKM(ember__ckw_parts(w, "d", t, parts, NPARTS, msg), msg);
    TU_OKM(ember__ckw_scalars(w, "s", EMBER_I64, scal, 3, msg), msg);
    TU_OKM(ember__ckw_matrix(w, "m", EMBER_F64, mat, 2, 3, msg), msg);
    TU_OKM(ember__ckw_blob(w, "b", blob, sizeof blob, msg), msg);
    TU_OKM(ember__ckw_commit(&w, NULL, NULL, msg), msg);
}

static void write_coll(ember_ctx *ctx, const char *name, int deflate,
                       const ember_type *t, const ember__buf *parts)
{
    char msg[EMBER_MSG_SIZE], path[1024] = "";
    ember__ck_meta m = meta;
    m.deflate = deflate;
    ember__ckp *w = NULL;
    uint64_t off[NPARTS + 1], bytes = 0;
    TU_OKM(ember__ckp_begin(ctx, &w, ".", name, &m, msg), msg);
    TU_OKM(ember__ckp_parts(w, "d", t, parts, NPARTS, NULL, off, msg), msg);
    TU_OKM(ember__ckp_scalars(w, "s", EMBER_I64, scal, 3, msg), msg);
    TU_OKM(ember__ckp_matrix(w, "m", EMBER_F64, mat, 2, 3, msg), msg);
    TU_OKM(ember__ckp_blob(w, "b", blob, sizeof blob, msg), msg);
    TU_OKM(ember__ckp_commit(&w, &bytes, path, msg), msg);
    assert_null(w);
    char want[1024];
    snprintf(want, sizeof want, "./%s", name);
    assert_string_equal(path, want);
    struct stat st;
    assert_int_equal(stat(name, &st), 0);
    assert_int_equal((uint64_t)st.st_size, bytes);
    uint64_t at = 0;
    for (int p = 0; p < NPARTS; p++) {
        assert_int_equal(off[p], at);
        at += parts[p].n;
    }
    assert_int_equal(off[NPARTS], at);
}

/* Every item of the two files, read back, is the same. */
static void same_items(ember_ctx *ctx, const char *a, const char *b)
{
    char msg[EMBER_MSG_SIZE];
    ember__ckr *ra = NULL, *rb = NULL;
    TU_OKM(ember__ckr_open(ctx, &ra, a, msg), msg);
    TU_OKM(ember__ckr_open(ctx, &rb, b, msg), msg);
    TU_OKM(ember__ckr_verify(rb, msg), msg);
    const ember__ck_info *ia = ember__ckr_info(ra), *ib = ember__ckr_info(rb);
    assert_string_equal(ia->kind, ib->kind);
    assert_string_equal(ia->program, ib->program);
    assert_string_equal(ia->parameters, ib->parameters);
    assert_int_equal(ia->iteration, ib->iteration);
    assert_int_equal(ia->fingerprint, ib->fingerprint);
    assert_int_equal(ia->threads, ib->threads);
    ember_type ta, tb;
    void *da = NULL, *db = NULL;
    size_t na = 0, nb = 0, pa = 0, pb = 0;
    uint64_t *oa = NULL, *ob = NULL;
    TU_OKM(ember__ckr_dataset(ra, "d", &ta, &da, &na, &oa, &pa, msg), msg);
    TU_OKM(ember__ckr_dataset(rb, "d", &tb, &db, &nb, &ob, &pb, msg), msg);
    assert_true(ember_type_equal(&ta, &tb));
    assert_int_equal(na, nb);
    assert_int_equal(pa, pb);
    assert_memory_equal(oa, ob, (pa + 1) * sizeof *oa);
    assert_memory_equal(da, db, na * ta.size);
    for (const char *g = "/scalars/s\0/scalars/m\0/blobs/b\0"; *g; g += strlen(g) + 1) {
        void *xa = NULL, *xb = NULL;
        TU_OKM(ember__ckr_item(ra, g, &ta, &xa, &na, msg), msg);
        TU_OKM(ember__ckr_item(rb, g, &tb, &xb, &nb, msg), msg);
        assert_true(ember_type_equal(&ta, &tb));
        assert_int_equal(na, nb);
        assert_memory_equal(xa, xb, na * ta.size);
        ember__free(ctx, xa);
        ember__free(ctx, xb);
    }
    ember__free(ctx, da);
    ember__free(ctx, db);
    ember__free(ctx, oa);
    ember__free(ctx, ob);
    ember__ckr_close(&ra);
    ember__ckr_close(&rb);
}

static void same_as_serial(int deflate, int paired)
{
    ember_ctx *ctx = tu_ctx(2);
    ember_type t = paired ? pair_type() : ember_type_scalar(EMBER_F64);
    unsigned char *recs = NULL;
    ember__buf *parts = make_parts(&t, &recs);
    write_serial(ctx, "par_s.h5", deflate, &t, parts);
    write_coll(ctx, "par_c.h5", deflate, &t, parts);
    same_items(ctx, "par_s.h5", "par_c.h5");
    /* The records as they went in, through the collective file. */
    char msg[EMBER_MSG_SIZE];
    ember__ckr *r = NULL;
    ember_type got;
    void *d = NULL;
    size_t n = 0, np = 0;
    uint64_t *off = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "par_c.h5", msg), msg);
    TU_OKM(ember__ckr_dataset(r, "d", &got, &d, &n, &off, &np, msg), msg);
    assert_int_equal(n, 203001);
    assert_memory_equal(d, recs, n * t.size);
    ember__free(ctx, d);
    ember__free(ctx, off);
    ember__ckr_close(&r);
    free(parts);
    free(recs);
    unlink("par_s.h5");
    unlink("par_c.h5");
    ember_ctx_destroy(&ctx);
}

static void test_ckptpar_same_as_serial_writer(void **state)
{
    (void)state;
    same_as_serial(0, 0);
    same_as_serial(0, 1);
}

static void test_ckptpar_same_as_serial_writer_deflated(void **state)
{
    (void)state;
    same_as_serial(4, 0);
    same_as_serial(4, 1);
}

static void test_ckptpar_stale_tmp_replaced(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(1);
    FILE *f = fopen("par_t.h5.tmp", "w");
    assert_non_null(f);
    fputs("a stale half-written file", f);
    fclose(f);
    ember__ckp *w = NULL;
    TU_OKM(ember__ckp_begin(ctx, &w, ".", "par_t.h5", &meta, msg), msg);
    TU_OKM(ember__ckp_scalars(w, "s", EMBER_I64, scal, 3, msg), msg);
    TU_OKM(ember__ckp_commit(&w, NULL, NULL, msg), msg);
    assert_int_equal(access("par_t.h5.tmp", F_OK), -1);
    ember__ckr *r = NULL;
    TU_OKM(ember__ckr_open(ctx, &r, "par_t.h5", msg), msg);
    TU_OKM(ember__ckr_verify(r, msg), msg);
    int64_t back[3];
    TU_OKM(ember__ckr_scalars(r, "s", EMBER_I64, back, 3, msg), msg);
    assert_memory_equal(back, scal, sizeof scal);
    ember__ckr_close(&r);
    unlink("par_t.h5");
    ember_ctx_destroy(&ctx);
}

/* An abandoned write (after a refused name) leaves no file, and an older
 * file of that name stays as it was. */
static void test_ckptpar_abort_leaves_nothing(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = ember_type_scalar(EMBER_F64);
    unsigned char *recs = NULL;
    ember__buf *parts = make_parts(&t, &recs);
    write_coll(ctx, "par_a.h5", 0, &t, parts);
    unsigned char head[EMBER__FSUM_BLOCK], head2[EMBER__FSUM_BLOCK];
    uint64_t size = 0, size2 = 0;
    TU_OKM(ember__ck_head("par_a.h5", head, &size, msg), msg);
    ember__ckp *w = NULL;
    TU_OKM(ember__ckp_begin(ctx, &w, ".", "par_a.h5", &meta, msg), msg);
    assert_int_equal(access("par_a.h5.tmp", F_OK), 0);
    assert_int_equal(ember__ckp_parts(w, "a/b", &t, parts, NPARTS, NULL, NULL, msg),
                     EMBER_EINVAL);
    assert_non_null(strstr(msg, "a/b"));
    assert_int_equal(ember__ckp_blob(w, "", blob, 1, msg), EMBER_EINVAL);
    assert_int_equal(ember__ckp_matrix(w, "m", EMBER_F64, mat, 0, 3, msg),
                     EMBER_EINVAL);
    ember__ckp_abort(&w);
    assert_null(w);
    ember__ckp_abort(&w); /* NULL is accepted */
    assert_int_equal(access("par_a.h5.tmp", F_OK), -1);
    TU_OKM(ember__ck_head("par_a.h5", head2, &size2, msg), msg);
    assert_int_equal(size, size2);
    assert_memory_equal(head, head2, sizeof head);
    free(parts);
    free(recs);
    unlink("par_a.h5");
    ember_ctx_destroy(&ctx);
}

static void test_ckptpar_missing_dir(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(1);
    ember__ckp *w = NULL;
    assert_int_equal(ember__ckp_begin(ctx, &w, "no_such_dir_par", "x.h5", &meta, msg),
                     EMBER_EIO);
    assert_null(w);
    assert_non_null(strstr(msg, "no_such_dir_par/x.h5.tmp"));
    ember_ctx_destroy(&ctx);
}

/* The reader of a rank that did not hash the file: the header and size of
 * the file rank 0 verified, or a refusal; and the shape without the data. */
static void test_ckptpar_open_known(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = pair_type();
    unsigned char *recs = NULL;
    ember__buf *parts = make_parts(&t, &recs);
    write_coll(ctx, "par_k1.h5", 0, &t, parts);
    parts[1].n = 2999; /* another file: one record fewer */
    write_coll(ctx, "par_k2.h5", 0, &t, parts);
    unsigned char head[EMBER__FSUM_BLOCK];
    uint64_t size = 0;
    TU_OKM(ember__ck_head("par_k1.h5", head, &size, msg), msg);
    ember__ckr *r = NULL;
    assert_int_equal(ember__ckr_open_known(ctx, &r, "par_k2.h5", head, size, msg),
                     EMBER_EMISMATCH);
    assert_null(r);
    assert_non_null(strstr(msg, "par_k2.h5"));
    assert_non_null(strstr(msg, "another run"));
    assert_int_equal(ember__ckr_open_known(ctx, &r, "par_none.h5", head, size, msg),
                     EMBER_ENOTFOUND);
    TU_OKM(ember__ckr_open_known(ctx, &r, "par_k1.h5", head, size, msg), msg);
    ember_type got;
    size_t n = 0, np = 0;
    uint64_t *off = NULL;
    TU_OKM(ember__ckr_dataset_shape(r, "d", &got, &n, &off, &np, msg), msg);
    assert_true(ember_type_equal(&got, &t));
    assert_int_equal(n, 203001);
    assert_int_equal(np, NPARTS);
    assert_int_equal(off[2], 3000);
    /* A range of records, read alone. */
    pair rec[2];
    memset(rec, 0, sizeof rec); /* the padding: HDF5 writes the fields only */
    TU_OKM(ember__ckr_slice(r, "d", &t, off[2] - 1, 2, rec, msg), msg);
    assert_memory_equal(rec, recs + (off[2] - 1) * t.size, 2 * t.size);
    ember__free(ctx, off);
    assert_int_equal(ember__ckr_dataset_shape(r, "nothing", &got, &n, &off, &np, msg),
                     EMBER_ENOTFOUND);
    ember__ckr_close(&r);
    free(parts);
    free(recs);
    unlink("par_k1.h5");
    unlink("par_k2.h5");
    ember_ctx_destroy(&ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ckptpar_same_as_serial_writer),
        cmocka_unit_test(test_ckptpar_same_as_serial_writer_deflated),
        cmocka_unit_test(test_ckptpar_stale_tmp_replaced),
        cmocka_unit_test(test_ckptpar_abort_leaves_nothing),
        cmocka_unit_test(test_ckptpar_missing_dir),
        cmocka_unit_test(test_ckptpar_open_known),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
