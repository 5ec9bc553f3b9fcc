/* test_mpi_ckpt.c: checkpoints on several MPI ranks (ctest label mpi).
 *
 * CMake runs every case under mpirun with 1, 2 and 3 ranks
 * (mpi.mpi_ckpt.<case>.n<ranks>), in a working directory all ranks share.
 * A dataset checkpoint and a loop checkpoint written by all ranks hold the
 * records a serial run computes, in partition order, with the same
 * partition offsets; every rank cuts its lineage to the same file; a loop
 * restarted on the ranks resumes from it, and a serial context (rank 0
 * alone, no communicator) restores the same file to the same records:
 * the rank count that wrote a checkpoint does not matter to its reader.
 *
 * A loop checkpoint on several ranks is written collectively (ckptpar.c):
 * the data-moving MPI calls are counted here through MPI's profiling
 * interface (this file defines MPI_Allgatherv and the others, which count
 * the bytes a rank receives from the others and call PMPI_*), and a rank
 * writing a checkpoint of 16 MB receives far less than the others' share
 * of it: it would receive all of it if the records were gathered to be
 * written by rank 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ember.h"
#include "ember/graph.h"
#include "ember/mpi.h"

#define N 1000
#define PARTS 7

/* ---- bytes received, counted through the MPI profiling interface --------- */

static uint64_t received; /* bytes this rank received from the others */

static uint64_t bytes_of(MPI_Datatype t, uint64_t count)
{
    int size = 0;
    PMPI_Type_size(t, &size);
    return (uint64_t)size * count;
}

static int me_in(MPI_Comm comm)
{
    int r = 0;
    PMPI_Comm_rank(comm, &r);
    return r;
}

static uint64_t others_sum(const int *counts, MPI_Comm comm)
{
    int n = 1, me = me_in(comm);
    uint64_t t = 0;
    PMPI_Comm_size(comm, &n);
    for (int i = 0; i < n; i++)
        t += i == me ? 0 : (uint64_t)counts[i];
    return t;
}

int MPI_Allgatherv(const void *sb, int sc, MPI_Datatype st, void *rb,
                   const int rc[], const int displs[], MPI_Datatype rt,
                   MPI_Comm comm)
{
    received += bytes_of(rt, others_sum(rc, comm));
    return PMPI_Allgatherv(sb, sc, st, rb, rc, displs, rt, comm);
}

int MPI_Allgather(const void *sb, int sc, MPI_Datatype st, void *rb, int rc,
                  MPI_Datatype rt, MPI_Comm comm)
{
    int n = 1;
    PMPI_Comm_size(comm, &n);
    received += bytes_of(rt, (uint64_t)rc * (uint64_t)(n - 1));
    return PMPI_Allgather(sb, sc, st, rb, rc, rt, comm);
}

int MPI_Alltoallv(const void *sb, const int sc[], const int sd[], MPI_Datatype st,
                  void *rb, const int rc[], const int rd[], MPI_Datatype rt,
                  MPI_Comm comm)
{
    received += bytes_of(rt, others_sum(rc, comm));
    return PMPI_Alltoallv(sb, sc, sd, st, rb, rc, rd, rt, comm);
}

int MPI_Bcast(void *buf, int count, MPI_Datatype t, int root, MPI_Comm comm)
{
    if (me_in(comm) != root)
        received += bytes_of(t, (uint64_t)count);
    return PMPI_Bcast(buf, count, t, root, comm);
}

int MPI_Allreduce(const void *sb, void *rb, int count, MPI_Datatype t, MPI_Op op,
                  MPI_Comm comm)
{
    received += bytes_of(t, (uint64_t)count);
    return PMPI_Allreduce(sb, rb, count, t, op, comm);
}

static int rank_of_world(void)
{
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

static ember_ctx *make_ctx(int with_comm, const char *dir)
{
    ember_ctx_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.threads = 2;
    opts.checkpoint_dir = dir;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, &opts, msg), EMBER_OK);
    if (with_comm)
        assert_int_equal(ember_ctx_set_comm(ctx, MPI_COMM_WORLD, msg), EMBER_OK);
    return ctx;
}

/* Asserts a call succeeded, printing its message when it did not. */
#define OK(call, msg)                                                          \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_)                                                               \
            print_message("%s: %d %s\n", #call, rc_, msg);                     \
        assert_int_equal(rc_, EMBER_OK);                                       \
    } while (0)

/* x -> 3x + k, k the arg. */
static int affine(const void *in, void *out, size_t n, void *arg)
{
    const int64_t *a = in;
    int64_t *b = out, k = *(const int64_t *)arg;
    for (size_t i = 0; i < n; i++)
        b[i] = 3 * a[i] + k;
    return 0;
}

static void expect_affine(ember_ds *ds, int64_t mul, int64_t add)
{
    char msg[EMBER_MSG_SIZE];
    void *data = NULL;
    size_t n = 0;
    assert_int_equal(ember_collect_alloc(ds, &data, &n, msg), EMBER_OK);
    assert_int_equal(n, N);
    const int64_t *x = data;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(x[i], mul * (int64_t)i + add);
    ember_free(ember_ds_ctx(ds), data);
}

/* Checks that ds (read from a checkpoint) has the partition offsets a
 * serial run's checkpoint of a map over range(N) in PARTS partitions has:
 * one written here by a serial context, in a directory of this rank's. */
static void expect_serial_offsets(ember_ds *ds)
{
    char msg[EMBER_MSG_SIZE] = "", dir[64];
    snprintf(dir, sizeof dir, "ckref%d", rank_of_world());
    mkdir(dir, 0755);
    ember_ctx *ser = make_ctx(0, dir);
    ember_ds *r = NULL, *m = NULL, *ref = NULL;
    int64_t k = 0;
    uint64_t *want = NULL, *got = NULL;
    size_t pw = 0, pg = 0;
    OK(ember_range(&r, ser, 0, N, 1, PARTS, msg), msg);
    OK(ember_map(&m, r, NULL, affine, &k, sizeof k, msg), msg);
    OK(ember_checkpoint_eager(m, msg), msg);
    OK(ember_read_checkpoint(&ref, ser, ember_checkpoint_path(m), NULL, msg), msg);
    OK(ember_array_parts(&want, &pw, ref, msg), msg);
    OK(ember_array_parts(&got, &pg, ds, msg), msg);
    assert_int_equal(pw, PARTS);
    assert_int_equal(pw, pg);
    assert_memory_equal(want, got, (pw + 1) * sizeof *want);
    ember_free(ser, want);
    ember_free(ember_ds_ctx(ds), got);
    ember_ds_free(&ref);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ser);
}

static void test_mpi_ckpt_dataset_eager(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE] = "";
    if (rank_of_world() == 0)
        mkdir("ckd", 0755); /* a context's directory is not created for it */
    MPI_Barrier(MPI_COMM_WORLD);
    ember_ctx *ctx = make_ctx(1, "ckd");
    ember_ds *r = NULL, *m = NULL;
    int64_t k = 5;
    OK(ember_range(&r, ctx, 0, N, 1, PARTS, msg), msg);
    OK(ember_map(&m, r, NULL, affine, &k, sizeof k, msg), msg);
    OK(ember_checkpoint_eager(m, msg), msg);
    assert_true(ember_is_checkpointed(m));
    const char *path = ember_checkpoint_path(m);
    assert_non_null(path);
    /* Every rank names the same file, and it is there. */
    char mine[1024], root[1024];
    snprintf(mine, sizeof mine, "%s", path);
    memcpy(root, mine, sizeof root);
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    assert_string_equal(mine, root);
    assert_int_equal(access(path, R_OK), 0);
    /* Read back through the cut lineage, on every rank. */
    expect_affine(m, 3, 5);
    uint64_t n = 0;
    assert_int_equal(ember_count(m, &n, msg), EMBER_OK);
    assert_int_equal(n, N);
    MPI_Barrier(MPI_COMM_WORLD);
    /* The file holds a serial run's records and partitions. */
    ember_ctx *ser = make_ctx(0, NULL);
    ember_ds *back = NULL;
    assert_int_equal(ember_read_checkpoint(&back, ser, root, NULL, msg), EMBER_OK);
    expect_affine(back, 3, 5);
    expect_serial_offsets(back);
    ember_ds_free(&back);
    ember_ctx_destroy(&ser);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* One loop: the bound ds goes x -> 3x + 1 each iteration; runs until
 * `until` iterations are done and finishes. Returns what it restored. */
static uint64_t run_loop(ember_ctx *ctx, const char *dir, uint64_t until,
                         ember_resume resume, int64_t *counter)
{
    char msg[EMBER_MSG_SIZE] = "";
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.every = 2;
    o.keep = 10;
    o.resume = resume;
    o.no_signals = 1;
    o.quiet = 1;
    o.program = "test_mpi_ckpt";
    ember_loop *loop = NULL;
    ember_ds *ds = NULL;
    assert_int_equal(ember_range(&ds, ctx, 0, N, 1, PARTS, msg), EMBER_OK);
    assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_OK);
    assert_int_equal(ember_loop_bind_ds(loop, "v", &ds), EMBER_OK);
    assert_int_equal(ember_loop_bind_i64(loop, "counter", counter), EMBER_OK);
    uint64_t it = 0;
    int rc;
    for (rc = ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < until;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *next = NULL;
        int64_t k = 1;
        assert_int_equal(ember_map(&next, ds, NULL, affine, &k, sizeof k, msg),
                         EMBER_OK);
        ember_ds_free(&ds);
        ds = next;
        (*counter)++;
        if (it + 1 == until) {
            rc = ember_loop_finish(loop, msg);
            break;
        }
    }
    if (rc)
        print_message("loop: %d %s\n", rc, msg);
    assert_int_equal(rc, EMBER_OK);
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    /* After `until` maps of x -> 3x + 1 starting from x: 3^u x + (3^u-1)/2. */
    int64_t p = 1;
    for (uint64_t i = 0; i < until; i++)
        p *= 3;
    expect_affine(ds, p, (p - 1) / 2);
    assert_int_equal(*counter, (int64_t)until);
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    return st.restored ? st.restored_from : 0;
}

static void test_mpi_ckpt_loop_restart(void **state)
{
    (void)state;
    ember_ctx *ctx = make_ctx(1, NULL);
    int64_t counter = 0;
    assert_int_equal(run_loop(ctx, "ckl", 5, EMBER_RESUME_NEVER, &counter), 0);
    /* Written by the ranks: checkpoints at 2, 4 and the finish at 5. */
    if (rank_of_world() == 0) {
        assert_int_equal(access("ckl/ckpt-000000000004.h5", R_OK), 0);
        assert_int_equal(access("ckl/ckpt-000000000005.h5", R_OK), 0);
    }
    /* The file holds a serial run's records and partition offsets. */
    if (rank_of_world() == 0) {
        char msg[EMBER_MSG_SIZE] = "";
        ember_ctx *ser = make_ctx(0, NULL);
        ember_ds *back = NULL;
        OK(ember_read_checkpoint(&back, ser, "ckl/ckpt-000000000005.h5", "v", msg), msg);
        expect_affine(back, 243, 121);
        expect_serial_offsets(back);
        ember_ds_free(&back);
        ember_ctx_destroy(&ser);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    /* Restarted on the ranks: resumes at 5 and goes on to 8. */
    counter = -100; /* the restore must overwrite it */
    assert_int_equal(run_loop(ctx, "ckl", 8, EMBER_RESUME_REQUIRE, &counter), 5);
    ember_ctx_destroy(&ctx);
    MPI_Barrier(MPI_COMM_WORLD);
    /* Rank 0 alone, serially, restores what the ranks wrote and goes on. */
    if (rank_of_world() == 0) {
        ember_ctx *ser = make_ctx(0, NULL);
        counter = -100;
        assert_int_equal(run_loop(ser, "ckl", 9, EMBER_RESUME_REQUIRE, &counter), 8);
        ember_ctx_destroy(&ser);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* A second loop on a directory a live loop holds is refused on every rank
 * with the same status and message. */
static void test_mpi_ckpt_lock_agreed(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = make_ctx(1, NULL);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = "ckk";
    o.no_signals = 1;
    ember_loop *a = NULL, *b = NULL;
    assert_int_equal(ember_loop_create(&a, ctx, &o, msg), EMBER_OK);
    assert_int_equal(ember_loop_create(&b, ctx, &o, msg), EMBER_EBUSY);
    assert_null(b);
    assert_non_null(strstr(msg, "in use"));
    char root[EMBER_MSG_SIZE];
    memcpy(root, msg, sizeof root);
    MPI_Bcast(root, sizeof root, MPI_CHAR, 0, MPI_COMM_WORLD);
    assert_string_equal(msg, root);
    ember_loop_destroy(&a);
    ember_ctx_destroy(&ctx);
}

/* The options of the loops below, on dir, with no signals and no
 * messages; every = 0: a checkpoint only where the test writes one. */
static ember_loop_opts quiet_opts(const char *dir, uint64_t every)
{
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.no_signals = 1;
    o.quiet = 1;
    o.every = every;
    o.program = "test_mpi_ckpt";
    return o;
}

/* Rank 0 empties dir (a file an earlier run left would pass for this
 * one's), then all ranks go on. */
static void empty_dir(const char *dir)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (rank_of_world() == 0)
        assert_int_equal(system(cmd), 0);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Ranks whose parameters differ (one hashed a stale copy of an input)
 * are refused at a fresh start, on every rank with rank 1's message: the
 * state would have been saved under rank 0's fingerprint, and a resume
 * with the right input taken it as rank 0's run. With the same
 * parameters the loop runs. */
static void test_mpi_loop_ranks_disagree(void **state)
{
    (void)state;
    ember_ctx *ctx = make_ctx(1, NULL);
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    empty_dir("ckd");
    for (int same = size == 1; same < 2; same++) { /* one rank: nothing differs */
        char msg[EMBER_MSG_SIZE] = "";
        ember_loop_opts o = quiet_opts("ckd", 0);
        o.parameters = same || rank_of_world() == 0 ? "input=aa11\n" : "input=bb22\n";
        int64_t counter = 0;
        ember_loop *loop = NULL;
        uint64_t it = 0;
        assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_OK);
        assert_int_equal(ember_loop_bind_i64(loop, "counter", &counter), EMBER_OK);
        int rc = ember_loop_next(loop, &it, msg);
        if (same) {
            assert_int_equal(rc, EMBER_OK);
        } else {
            assert_int_equal(rc, EMBER_EMISMATCH);
            assert_non_null(strstr(msg, "rank 1 runs another program, other parameters"));
            assert_int_equal(access("ckd/ckpt-000000000000.h5", F_OK), -1);
        }
        ember_loop_destroy(&loop);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    ember_ctx_destroy(&ctx);
}

/* A checkpoint takes bound scalars and arrays from rank 0, and a resume
 * gives them to every rank: a rank holding another value (a per-rank
 * counter bound by mistake, an array never all-gathered) is refused at
 * the checkpoint, on every rank, naming the item. */
static void test_mpi_loop_ranks_hold_other_values(void **state)
{
    (void)state;
    ember_ctx *ctx = make_ctx(1, NULL);
    int size = 1, me = rank_of_world();
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    empty_dir("ckv");
    for (int same = size == 1; same < 2; same++) {
        char msg[EMBER_MSG_SIZE] = "";
        ember_loop_opts o = quiet_opts("ckv", 1);
        o.resume = EMBER_RESUME_NEVER;
        int64_t counter = 0;
        double xs[4] = {1, 2, 3, 4};
        ember_loop *loop = NULL;
        uint64_t it = 0;
        assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_OK);
        assert_int_equal(ember_loop_bind_i64(loop, "counter", &counter), EMBER_OK);
        assert_int_equal(ember_loop_bind_array(loop, "xs", EMBER_F64, xs, 4), EMBER_OK);
        int rc = ember_loop_next(loop, &it, msg);
        assert_int_equal(rc, EMBER_OK);
        counter++;
        if (!same && me == 1)
            xs[2] = -3; /* rank 1's array only */
        rc = ember_loop_next(loop, &it, msg); /* writes the checkpoint of 1 */
        if (same) {
            assert_int_equal(rc, EMBER_OK);
        } else {
            assert_int_equal(rc, EMBER_EMISMATCH);
            assert_non_null(strstr(msg, "rank 1 holds another \"xs\" than rank 0 at iteration 1"));
            assert_int_equal(access("ckv/ckpt-000000000001.h5", F_OK), -1);
        }
        ember_loop_destroy(&loop);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    ember_ctx_destroy(&ctx);
}

/* A replicated array bound to a loop, resumed: each rank writes its own
 * range right after ember_loop_next, as include/ember/mpi.h allows. The
 * restore copies the checkpoint's array in on every rank; a rank that
 * returned first and wrote had its range overwritten by a slower rank's
 * copy until ember_loop_next waited for all of them (6 resumes in 7 on 3
 * ranks lost a range). 4 MB, so that a copy takes a while. */
static void test_mpi_loop_restore_replicated(void **state)
{
    (void)state;
    enum { NX = 1 << 19 };
    ember_ctx *ctx = make_ctx(1, NULL);
    int size = 1, me = rank_of_world();
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int run = 0; run < 2; run++) {
        char msg[EMBER_MSG_SIZE] = "";
        double *x = NULL;
        assert_int_equal(ember_replicated_alloc((void **)&x, ctx, NX * sizeof *x, msg),
                         EMBER_OK);
        if (me == 0)
            for (size_t i = 0; i < NX; i++)
                x[i] = -1.0;
        MPI_Barrier(MPI_COMM_WORLD);
        ember_loop_opts o = quiet_opts("ckr", 1);
        o.resume = run ? EMBER_RESUME_REQUIRE : EMBER_RESUME_NEVER;
        ember_loop *loop = NULL;
        uint64_t it = 0, until = run ? 6 : 3;
        assert_int_equal(ember_loop_create(&loop, ctx, &o, msg), EMBER_OK);
        assert_int_equal(ember_loop_bind_array(loop, "x", EMBER_F64, x, NX), EMBER_OK);
        int rc;
        for (rc = ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < until;
             rc = ember_loop_next(loop, &it, msg)) {
            size_t lo = NX / (size_t)size * (size_t)me;
            size_t hi = me == size - 1 ? NX : lo + NX / (size_t)size;
            for (size_t i = lo; i < hi; i++) /* this rank's range, at once */
                x[i] = (double)(it + 1);
            MPI_Barrier(MPI_COMM_WORLD); /* as ember_allgather_ranges would */
            for (size_t i = 0; i < NX; i++)
                if (x[i] != (double)(it + 1))
                    fail_msg("rank %d, iteration %llu: x[%zu] = %g", me,
                             (unsigned long long)it, i, x[i]);
            MPI_Barrier(MPI_COMM_WORLD);
        }
        if (rc == EMBER_OK)
            rc = ember_loop_finish(loop, msg);
        if (rc)
            print_message("loop: %d %s\n", rc, msg);
        assert_int_equal(rc, EMBER_OK);
        ember_loop_destroy(&loop);
        ember_replicated_free(ctx, x);
    }
    ember_ctx_destroy(&ctx);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Asynchronous checkpoints are refused on more than one rank. */
static void test_mpi_ckpt_async_refused(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = make_ctx(1, NULL);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = "cka";
    o.no_signals = 1;
    o.async = 1;
    ember_loop *a = NULL;
    int rc = ember_loop_create(&a, ctx, &o, msg);
    if (ember_ctx_ranks(ctx) > 1) {
        assert_int_equal(rc, EMBER_EINVAL);
        assert_non_null(strstr(msg, "MPI ranks"));
    } else {
        assert_int_equal(rc, EMBER_OK);
    }
    ember_loop_destroy(&a);
    ember_ctx_destroy(&ctx);
}

/* A loop checkpoint of BIG i64 records (16 MB) in BIG_PARTS partitions,
 * plus a matrix and a blob, deflated: each rank computes and writes its own
 * partitions, and receives from the others only counts, flags and rank 0's
 * attributes, far less than a quarter of the records (gathering them for
 * rank 0 would bring each rank at least half of them). The file holds the
 * records a serial run writes, and the ranks restore it. */
#define BIG ((size_t)1 << 21)
#define BIG_PARTS 8

static ember_loop *big_loop(ember_ctx *ctx, ember_ds **ds, double *mat,
                            unsigned char *blob, ember_resume resume)
{
    char msg[EMBER_MSG_SIZE] = "";
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = "ckb";
    o.resume = resume;
    o.deflate = 3; /* shuffle + deflate + Fletcher32, written collectively */
    o.no_signals = 1;
    o.quiet = 1;
    o.program = "test_mpi_ckpt_big";
    ember_loop *loop = NULL;
    OK(ember_range(ds, ctx, 0, (int64_t)BIG, 1, BIG_PARTS, msg), msg);
    OK(ember_loop_create(&loop, ctx, &o, msg), msg);
    assert_int_equal(ember_loop_bind_ds(loop, "big", ds), EMBER_OK);
    assert_int_equal(ember_loop_bind_matrix(loop, "m", EMBER_F64, mat, 3, 4), EMBER_OK);
    assert_int_equal(ember_loop_bind_blob(loop, "b", blob, 100), EMBER_OK);
    return loop;
}

static void test_mpi_ckpt_write_moves_no_records(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = make_ctx(1, NULL);
    double mat[12];
    unsigned char blob[100];
    for (int i = 0; i < 12; i++)
        mat[i] = i + 0.5;
    for (int i = 0; i < 100; i++)
        blob[i] = (unsigned char)(7 * i);
    ember_ds *ds = NULL;
    ember_loop *loop = big_loop(ctx, &ds, mat, blob, EMBER_RESUME_NEVER);
    uint64_t it = 0;
    OK(ember_loop_next(loop, &it, msg), msg);
    /* The range is computed before counting: only the write is counted. */
    uint64_t n = 0;
    OK(ember_count(ds, &n, msg), msg);
    assert_int_equal(n, BIG);
    received = 0;
    OK(ember_loop_finish(loop, msg), msg);
    uint64_t got = received;
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    assert_int_equal(st.checkpoints, 1);
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    int ranks = ember_ctx_ranks(ctx);
    print_message("rank %d of %d received %llu bytes writing %zu bytes of records\n",
                  rank_of_world(), ranks, (unsigned long long)got, BIG * 8);
    if (ranks > 1) {
        assert_true(got > 0); /* the counting works: counts and flags moved */
        assert_true(got < BIG * 8 / 4);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    /* The serial reader finds a serial run's records and partitions. */
    if (rank_of_world() == 0) {
        ember_ctx *ser = make_ctx(0, NULL);
        ember_ds *back = NULL;
        void *data = NULL;
        uint64_t *off = NULL;
        size_t parts = 0;
        OK(ember_read_checkpoint(&back, ser, st.last_path, "big", msg), msg);
        OK(ember_collect_alloc(back, &data, &n, msg), msg);
        assert_int_equal(n, BIG);
        for (size_t i = 0; i < BIG; i++)
            if (((int64_t *)data)[i] != (int64_t)i)
                fail_msg("record %zu is %lld", i, (long long)((int64_t *)data)[i]);
        OK(ember_array_parts(&off, &parts, back, msg), msg);
        assert_int_equal(parts, BIG_PARTS);
        for (size_t p = 0; p <= parts; p++)
            assert_int_equal(off[p], p * (BIG / BIG_PARTS));
        ember_free(ser, off);
        ember_free(ser, data);
        ember_ds_free(&back);
        ember_ctx_destroy(&ser);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    /* The ranks restore it: the records, the matrix and the blob. */
    double mat2[12] = {0};
    unsigned char blob2[100] = {0};
    loop = big_loop(ctx, &ds, mat2, blob2, EMBER_RESUME_REQUIRE);
    OK(ember_loop_next(loop, &it, msg), msg);
    assert_int_equal(it, 1);
    assert_memory_equal(mat, mat2, sizeof mat);
    assert_memory_equal(blob, blob2, sizeof blob);
    void *data = NULL;
    OK(ember_collect_alloc(ds, &data, &n, msg), msg);
    assert_int_equal(n, BIG);
    for (size_t i = 0; i < BIG; i++)
        if (((int64_t *)data)[i] != (int64_t)i)
            fail_msg("restored record %zu is %lld", i, (long long)((int64_t *)data)[i]);
    ember_free(ctx, data);
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* A dataset checkpoint of 16 MB on the ranks: computed, written and cut
 * with no records moving between ranks; the file holds them all. */
static void test_mpi_ckpt_dataset_moves_no_records(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE] = "";
    if (rank_of_world() == 0)
        mkdir("ckdb", 0755);
    MPI_Barrier(MPI_COMM_WORLD);
    ember_ctx *ctx = make_ctx(1, "ckdb");
    ember_ds *r = NULL, *m = NULL;
    int64_t k = 2;
    OK(ember_range(&r, ctx, 0, (int64_t)BIG, 1, BIG_PARTS, msg), msg);
    OK(ember_map(&m, r, NULL, affine, &k, sizeof k, msg), msg);
    received = 0;
    OK(ember_checkpoint_eager(m, msg), msg);
    uint64_t got = received;
    int ranks = ember_ctx_ranks(ctx);
    print_message("rank %d of %d received %llu bytes checkpointing %zu bytes\n",
                  rank_of_world(), ranks, (unsigned long long)got, BIG * 8);
    if (ranks > 1) {
        assert_true(got > 0);
        assert_true(got < BIG * 8 / 4);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s", ember_checkpoint_path(m));
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of_world() == 0) {
        ember_ctx *ser = make_ctx(0, NULL);
        ember_ds *back = NULL;
        void *data = NULL;
        size_t n = 0;
        OK(ember_read_checkpoint(&back, ser, path, NULL, msg), msg);
        OK(ember_collect_alloc(back, &data, &n, msg), msg);
        assert_int_equal(n, BIG);
        for (size_t i = 0; i < BIG; i++)
            if (((int64_t *)data)[i] != 3 * (int64_t)i + 2)
                fail_msg("record %zu is %lld", i, (long long)((int64_t *)data)[i]);
        ember_free(ser, data);
        ember_ds_free(&back);
        ember_ctx_destroy(&ser);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

/* The loop cuts a cached state made from the last one after every
 * iteration on ranks too: each rank's partitions are stored, the ranks
 * agree, and the collective local checkpoint computes nothing. The depth
 * after each ember_loop_next is 0, and the records are the maps'. An
 * uncached state the loop keeps itself and cuts an iteration later: depth
 * at most 1. */
static void loop_cuts(int cached)
{
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = make_ctx(1, NULL);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.no_signals = 1;
    o.quiet = 1;
    ember_loop *loop = NULL;
    ember_ds *ds = NULL;
    OK(ember_range(&ds, ctx, 0, N, 1, PARTS, msg), msg);
    OK(ember_loop_create(&loop, ctx, &o, msg), msg);
    OK(ember_loop_bind_ds(loop, "v", &ds), msg);
    uint64_t it = 0, n = 0;
    int64_t k = 1;
    OK(ember_loop_next(loop, &it, msg), msg);
    for (int i = 0; i < 6; i++) {
        ember_ds *next = NULL;
        OK(ember_map(&next, ds, NULL, affine, &k, sizeof k, msg), msg);
        if (cached)
            OK(ember_cache(next, msg), msg);
        OK(ember_count(next, &n, msg), msg);
        ember_ds_free(&ds);
        ds = next;
        OK(ember_loop_next(loop, &it, msg), msg);
        assert_int_equal(ember_lineage_depth(ds), cached ? 0 : 1);
    }
    expect_affine(ds, 729, 364); /* six maps of x -> 3x + 1 */
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    assert_int_equal(st.recomputes, 0);
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
}

static void test_mpi_loop_cuts_cached_state(void **state)
{
    (void)state;
    loop_cuts(1);
    loop_cuts(0);
}

int main(int argc, char **argv)
{
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpi_ckpt_dataset_eager),
        cmocka_unit_test(test_mpi_ckpt_loop_restart),
        cmocka_unit_test(test_mpi_ckpt_lock_agreed),
        cmocka_unit_test(test_mpi_loop_ranks_disagree),
        cmocka_unit_test(test_mpi_loop_ranks_hold_other_values),
        cmocka_unit_test(test_mpi_loop_restore_replicated),
        cmocka_unit_test(test_mpi_ckpt_async_refused),
        cmocka_unit_test(test_mpi_ckpt_write_moves_no_records),
        cmocka_unit_test(test_mpi_ckpt_dataset_moves_no_records),
        cmocka_unit_test(test_mpi_loop_cuts_cached_state),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
