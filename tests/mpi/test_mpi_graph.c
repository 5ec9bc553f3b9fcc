/* test_mpi_graph.c: graph loading on several MPI ranks (ctest label mpi).
 *
 * CMake runs every case under mpirun with 1, 2 and 3 ranks
 * (mpi.mpi_graph.<case>.n<ranks>). Rank 0 writes the input files in the
 * test's work directory; every rank then loads them twice: whole on a
 * serial context of its own (the reference), and with owned_rows on a
 * context given MPI_COMM_WORLD. With the stored pull layout a rank must
 * hold exactly the rows of its block of partitions, the same bytes as the
 * whole graph's rows, and the ranks' edges must add up to m; without it
 * (no /csr/pull, a text file) every rank holds the whole graph. A failed
 * assertion on any rank fails mpirun.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"
#include "ember/graph.h"
#include "ember/mpi.h"
#include "internal.h"

#define OK(call)                                                               \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ != EMBER_OK)                                                   \
            fail_msg("%s: %d (%s)", #call, rc_, msg);                          \
    } while (0)

static int rank_of(void)
{
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

static int ranks(void)
{
    int r = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &r);
    return r;
}

static ember_ctx *make_ctx(int with_comm)
{
    ember_ctx_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.threads = 2;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    OK(ember_ctx_create(&ctx, &opts, msg));
    if (with_comm)
        OK(ember_ctx_set_comm(ctx, MPI_COMM_WORLD, msg));
    return ctx;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

#define NV 3000u
#define NE 40000u

/* Rank 0 writes a skewed random graph with ember_graph_save_h5 (so with
 * the stored pull layout) to path; every rank waits for it. */
static void write_graph(const char *path)
{
    if (rank_of() == 0) {
        char msg[EMBER_MSG_SIZE];
        uint32_t *src = malloc(NE * sizeof *src), *dst = malloc(NE * sizeof *dst);
        assert_non_null(src);
        assert_non_null(dst);
        for (uint32_t i = 0; i < NE; i++) {
            uint64_t x = mix(i), y = mix(i + NE);
            src[i] = (uint32_t)(x % NV);
            /* skewed destinations: low vertices get many in-edges */
            dst[i] = (uint32_t)((y % NV) * (y % NV) / NV);
        }
        ember_ctx *ser = make_ctx(0);
        ember_graph *g = NULL;
        OK(ember_graph_from_edges(&g, ser, NV, src, dst, NE, NULL, msg));
        OK(ember_graph_save_h5(g, path, msg));
        ember_graph_free(&g);
        ember_ctx_destroy(&ser);
        free(src);
        free(dst);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static const ember_graph_opts pull_opts = {.by_destination = 1, .degree_order = 1};

/* Loads path whole on a serial context. */
static ember_graph *load_whole(ember_ctx *ser, const char *path,
                               const ember_graph_opts *o)
{
    char msg[EMBER_MSG_SIZE];
    ember_graph *g = NULL;
    OK(ember_graph_load(&g, ser, path, o, msg));
    assert_true(ember_graph_whole(g));
    return g;
}

/* The O(n) arrays of a (whole) w and a rows-owned r are the same. */
static void assert_same_vertices(const ember_graph *w, const ember_graph *r)
{
    assert_int_equal(w->n, r->n);
    assert_int_equal(w->m, r->m);
    assert_int_equal(w->directed, r->directed);
    assert_int_equal(r->by_destination, w->by_destination);
    assert_memory_equal(w->offsets, r->offsets, (w->n + 1) * sizeof *w->offsets);
    assert_int_equal(!w->out_degree, !r->out_degree);
    if (w->out_degree)
        assert_memory_equal(w->out_degree, r->out_degree, w->n * sizeof *w->out_degree);
    assert_int_equal(!w->perm, !r->perm);
    if (w->perm)
        assert_memory_equal(w->perm, r->perm, w->n * sizeof *w->perm);
}

/* A rank that loads path with opts base and owned_rows holds exactly the
 * rows of its block of partitions, with the whole graph's bytes; the
 * ranks' edges add up to m, and with more than one rank each holds fewer. */
static void check_file_rows(const char *path, ember_graph_opts base,
                            size_t want_parts)
{
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ser = make_ctx(0), *world = make_ctx(1);
    ember_graph *w = load_whole(ser, path, &base), *r = NULL;
    ember_graph_opts o = base;
    o.owned_rows = 1;
    o.partitions = want_parts;
    OK(ember_graph_load(&r, world, path, &o, msg));
    assert_same_vertices(w, r);
    /* the partitions: those of the serial graph, at any rank count */
    uint64_t *pw = NULL, *pr = NULL;
    size_t kw = 0, kr = 0;
    OK(ember_graph_partition(&pw, &kw, w, want_parts, msg));
    OK(ember_graph_partition(&pr, &kr, r, want_parts, msg));
    assert_int_equal(kw, kr);
    assert_memory_equal(pw, pr, (kw + 1) * sizeof *pw);
    int R = ranks(), me = rank_of();
    size_t plo = kw * (size_t)me / (size_t)R, phi = kw * (size_t)(me + 1) / (size_t)R;
    assert_int_equal(r->row_lo, R > 1 ? pw[plo] : 0);
    assert_int_equal(r->row_hi, R > 1 ? pw[phi] : w->n);
    assert_int_equal(r->edge_lo, w->offsets[r->row_lo]);
    uint64_t held = ember_graph_held_edges(r);
    assert_int_equal(held, w->offsets[r->row_hi] - w->offsets[r->row_lo]);
    if (held)
        assert_memory_equal(r->adj, w->adj + r->edge_lo, held * sizeof *r->adj);
    for (uint64_t v = r->row_lo; v < r->row_hi; v++) {
        uint64_t a = 0, b = 0;
        const uint32_t *ra = ember_graph_row(r, v, &a), *wa = ember_graph_row(w, v, &b);
        assert_int_equal(a, b);
        if (a)
            assert_memory_equal(ra, wa, a * sizeof *ra);
    }
    assert_int_equal(ember_graph_csr_bytes(r), (r->n + 1) * 8 + held * 4);
    uint64_t total = 0;
    MPI_Allreduce(&held, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    assert_int_equal(total, w->m);
    if (R > 1 && phi - plo < kw) /* not every partition: not every edge */
        assert_true(held < w->m);
    if (R > 1)
        assert_false(ember_graph_whole(r) && plo == phi);
    /* the loader's partitions are owned here; another count's are not */
    OK(ember_graph_check_owned(r, pw, kw, msg));
    uint64_t *p3 = NULL;
    size_t k3 = 0;
    OK(ember_graph_partition(&p3, &k3, w, 3, msg));
    int rc = ember_graph_check_owned(r, p3, k3, msg);
    assert_int_equal(rc, R > 1 ? EMBER_ESTATE : EMBER_OK);
    if (R > 1)
        assert_non_null(strstr(msg, "need rows"));
    ember_free(ser, p3);
    ember_free(ser, pw);
    ember_free(world, pr);
    ember_graph_free(&r);
    ember_graph_free(&w);
    ember_ctx_destroy(&world);
    ember_ctx_destroy(&ser);
}

static void check_rows(size_t want_parts)
{
    check_file_rows("g.h5", pull_opts, want_parts);
}

static void test_mpi_graph_owned_rows(void **state)
{
    (void)state;
    write_graph("g.h5");
    check_rows(7);
    check_rows(0); /* the default partition count */
}

/* More ranks than partitions: a rank with none holds no edge. */
static void test_mpi_graph_rank_without_rows(void **state)
{
    (void)state;
    write_graph("g.h5");
    check_rows(2);
    check_rows(1);
}

/* Files without the stored layout (an old CSR, an edge list), and options
 * other than the pull layout's: the whole graph is built on every rank,
 * then each keeps its own rows, as from the stored layout. */
static void test_mpi_graph_rows_after_whole_load(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    write_graph("g.h5");
    if (rank_of() == 0) {
        /* the same CSR with no /csr/pull: ember_h5_write_array's file */
        ember_ctx *ser = make_ctx(0);
        ember_graph *g = NULL;
        OK(ember_graph_load(&g, ser, "g.h5", NULL, msg));
        uint64_t *t64 = malloc((g->m + 1) * sizeof *t64);
        assert_non_null(t64);
        for (uint64_t e = 0; e < g->m; e++)
            t64[e] = g->adj[e];
        uint64_t no = g->n + 1, nt = g->m;
        OK(ember_h5_write_array("old.h5:/csr/offsets", EMBER_U64, g->offsets, 1, &no,
                                NULL, 0, 1, msg));
        OK(ember_h5_write_array("old.h5:/csr/targets", EMBER_U64, t64, 1, &nt, NULL, 0,
                                0, msg));
        FILE *f = fopen("g.el", "w");
        assert_non_null(f);
        for (uint64_t v = 0; v < g->n; v++)
            for (uint64_t e = g->offsets[v]; e < g->offsets[v + 1]; e++)
                fprintf(f, "%llu %u\n", (unsigned long long)v, g->adj[e]);
        assert_int_equal(fclose(f), 0);
        free(t64);
        ember_graph_free(&g);
        ember_ctx_destroy(&ser);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    check_file_rows("old.h5", pull_opts, 5);
    check_file_rows("g.el", pull_opts, 5);
    check_file_rows("g.el", pull_opts, 2);
    /* a layout the file does not store (the natural order), and undirected */
    check_file_rows("g.h5", (ember_graph_opts){.by_destination = 1}, 5);
    check_file_rows("g.el", (ember_graph_opts){.by_destination = 1, .undirected = 1,
                                               .degree_order = 1}, 4);
    /* ember-cc's: undirected by source (every row the same both ways) */
    check_file_rows("g.el", (ember_graph_opts){.undirected = 1, .degree_order = 1}, 4);
}

/* A bad source in the last rank's rows only: every rank is refused, with
 * the message of the rank that read it (no rank goes on alone). */
static void test_mpi_graph_bad_slice_agreed(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE];
    write_graph("g.h5");
    if (rank_of() == 0) {
        hid_t fid = H5Fopen("g.h5", H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(fid >= 0);
        hid_t d = H5Dopen2(fid, "/csr/pull/sources", H5P_DEFAULT), fs = H5Dget_space(d);
        hsize_t at = 0, one = 1;
        assert_int_equal(H5Sget_simple_extent_dims(fs, &at, NULL), 1);
        at -= 1; /* the last edge: the last vertex's row, the last rank's */
        hid_t ms = H5Screate_simple(1, &one, NULL);
        uint32_t v = NV; /* not a vertex */
        assert_true(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL) >= 0);
        assert_true(H5Dwrite(d, H5T_NATIVE_UINT32, ms, fs, H5P_DEFAULT, &v) >= 0);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Dclose(d);
        assert_true(H5Fclose(fid) >= 0);
        OK(ember__fsum_seal("g.h5", msg));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ember_ctx *world = make_ctx(1);
    ember_graph_opts o = pull_opts;
    o.owned_rows = 1;
    o.partitions = 6;
    ember_graph *r = (ember_graph *)1;
    int rc = ember_graph_load(&r, world, "g.h5", &o, msg);
    assert_int_equal(rc, EMBER_EFORMAT);
    assert_null(r);
    assert_non_null(strstr(msg, "g.h5"));
    assert_non_null(strstr(msg, "not a vertex"));
    ember_ctx_destroy(&world);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpi_graph_owned_rows),
        cmocka_unit_test(test_mpi_graph_rank_without_rows),
        cmocka_unit_test(test_mpi_graph_rows_after_whole_load),
        cmocka_unit_test(test_mpi_graph_bad_slice_agreed),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
