/* test_comm.c: the communication layer (comm.h) in one process: the block
 * map (contiguous, covering, balanced, empty blocks when ranks outnumber
 * partitions, owner agreeing with the ranges), the serial communicator of
 * a new context (rank 0 of 1, every call a no-op that leaves data as it
 * is, a status passed through), the executor's owner map, and the HDF5
 * property lists. Several ranks are tested under mpirun in
 * tests/mpi/test_mpi_engine.c.
 */
#include "internal.h"
#include "testutil.h"
#include "ember/mpi.h"

#include <hdf5.h>

static void test_comm_block_map_covers(void **state)
{
    (void)state;
    static const size_t parts[] = {0, 1, 2, 3, 7, 64, 1000, 65536};
    static const int ranks[] = {1, 2, 3, 4, 5, 16, 100};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (size_t j = 0; j < sizeof ranks / sizeof ranks[0]; j++) {
            size_t P = parts[i], next = 0;
            int R = ranks[j];
            for (int r = 0; r < R; r++) {
                size_t lo, hi;
                ember__comm_owned_of(P, R, r, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, in rank order */
                assert_true(hi >= lo);
                /* balanced: P/R or P/R + 1 each */
                assert_true(hi - lo == P / (size_t)R ||
                            hi - lo == P / (size_t)R + 1);
                next = hi;
            }
            assert_int_equal(next, P);
        }
}

static void test_comm_owner_matches_ranges(void **state)
{
    (void)state;
    ember_ctx *ctx = NULL;
    TU_OK(ember_ctx_create(&ctx, NULL, NULL));
    /* The owner formula against the ranges, for a pretend communicator. */
    for (int R = 1; R <= 9; R++) {
        ctx->comm.size = R;
        for (size_t P = 1; P <= 40; P++)
            for (int r = 0; r < R; r++) {
                size_t lo, hi;
                ember__comm_owned_of(P, R, r, &lo, &hi);
                for (size_t p = lo; p < hi; p++)
                    assert_int_equal(ember__comm_owner(ctx, P, p), r);
            }
    }
    /* Three ranks, two partitions: rank 0 holds nothing. */
    size_t lo, hi;
    ember__comm_owned_of(2, 3, 0, &lo, &hi);
    assert_int_equal(hi - lo, 0);
    ctx->comm.size = 1;
    ember_ctx_destroy(&ctx);
}

static void test_comm_serial_context(void **state)
{
    (void)state;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    TU_OK(ember_ctx_create(&ctx, NULL, msg));
    assert_int_equal(ember_ctx_rank(ctx), 0);
    assert_int_equal(ember_ctx_ranks(ctx), 1);
    assert_int_equal(ember__comm_rank(ctx), 0);
    assert_int_equal(ember__comm_size(ctx), 1);
    assert_int_equal(ember_ctx_rank(NULL), 0);
    assert_int_equal(ember_ctx_ranks(NULL), 1);
    size_t lo, hi;
    ember__comm_owned(ctx, 13, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 13);
    assert_true(ember__comm_owns(ctx, 13, 12));
    assert_false(ember__comm_owns(ctx, 13, 13));

    /* Every call is trivial and leaves the data alone. */
    int64_t flags[3] = {1, 0, 5};
    TU_OK(ember__comm_agree(ctx, flags, 3, EMBER__AGREE_MAX, msg));
    assert_int_equal(flags[0], 1);
    assert_int_equal(flags[1], 0);
    assert_int_equal(flags[2], 5);
    uint64_t slots[4] = {9, 8, 7, 6};
    TU_OK(ember__comm_allgather_fixed(ctx, slots, 4, sizeof *slots, msg));
    TU_OK(ember__comm_bcast(ctx, slots, sizeof slots, msg));
    assert_int_equal(slots[0], 9);
    assert_int_equal(slots[3], 6);
    ember__buf parts[2] = {{NULL, 0, 0, 8}, {NULL, 0, 0, 8}};
    TU_OK(ember__buf_append(ctx, &parts[1], slots, 2));
    TU_OK(ember__comm_allgather_parts(ctx, parts, 2, 8, msg));
    size_t *start[2] = {NULL, NULL};
    TU_OK(ember__comm_exchange(ctx, parts, start, 2, 3, 8, msg));
    assert_int_equal(parts[0].n, 0);
    assert_int_equal(parts[1].n, 2);
    assert_memory_equal(parts[1].data, slots, 16);
    assert_null(start[0]);
    ember__buf_free(ctx, &parts[1]);

    /* A status passes through, message and all. */
    snprintf(msg, sizeof msg, "partition 4 failed");
    assert_int_equal(ember__comm_agree_status(ctx, EMBER_EUSER, 4, msg),
                     EMBER_EUSER);
    assert_string_equal(msg, "partition 4 failed");
    assert_int_equal(ember__comm_agree_status(ctx, EMBER_OK, 0, msg), EMBER_OK);
    ember_ctx_destroy(&ctx);
}

static void test_comm_owners_serial_and_union(void **state)
{
    (void)state;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    TU_OK(ember_ctx_create(&ctx, NULL, msg));
    ember_ds *a = NULL, *b = NULL, *u = NULL;
    TU_OKM(ember_range(&a, ctx, 0, 100, 1, 3, msg), msg);
    TU_OKM(ember_range(&b, ctx, 0, 100, 1, 2, msg), msg);
    TU_OKM(ember_union(&u, a, b, msg), msg);
    int *own = (int *)1;
    TU_OK(ember__owners(u, &own, msg));
    assert_null(own); /* serial: no map, every partition is this rank's */

    /* With a pretend communicator of two ranks, the union keeps its
     * parents' blocks: a's 3 partitions as {0, 1, 1}, b's 2 as {0, 1}. */
    ctx->comm.size = 2;
    TU_OK(ember__owners(u, &own, msg));
    assert_non_null(own);
    static const int want[] = {0, 1, 1, 0, 1};
    for (size_t p = 0; p < 5; p++)
        assert_int_equal(own[p], want[p]);
    ember__free(ctx, own);
    ctx->comm.size = 1;
    ember_ds_free(&u);
    ember_ds_free(&a);
    ember_ds_free(&b);
    ember_ctx_destroy(&ctx);
}

static void test_comm_h5_property_lists(void **state)
{
    (void)state;
    ember_ctx *ctx = NULL;
    TU_OK(ember_ctx_create(&ctx, NULL, NULL));
    ember__h5_lock();
    hid_t fapl = (hid_t)ember__comm_h5_fapl(ctx);
    hid_t dxpl = (hid_t)ember__comm_h5_dxpl(ctx);
    assert_true(fapl >= 0);
    assert_true(dxpl >= 0);
    assert_true(H5Pget_driver(fapl) == H5FD_SEC2); /* serial: no MPI-IO */
    H5F_libver_t lo, hi;
    assert_true(H5Pget_libver_bounds(fapl, &lo, &hi) >= 0);
    assert_int_equal(lo, H5F_LIBVER_V18);
    H5Pclose(fapl);
    H5Pclose(dxpl);
    ember__h5_unlock();
    ember_ctx_destroy(&ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comm_block_map_covers),
        cmocka_unit_test(test_comm_owner_matches_ranges),
        cmocka_unit_test(test_comm_serial_context),
        cmocka_unit_test(test_comm_owners_serial_and_union),
        cmocka_unit_test(test_comm_h5_property_lists),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
