/* ember/mpi.h: running one ember job on several MPI ranks. Include after
 * ember.h.
 *
 * ember is built in two flavours (README.md, docs/design.md):
 *   - serial (the default): no MPI anywhere; a context is rank 0 of 1.
 *   - MPI (cmake -DEMBER_MPI=ON, build-mpi/): built against MPI and the
 *     parallel HDF5. Consumers see EMBER_MPI defined (the CMake target and
 *     ember.pc carry -DEMBER_MPI=1), and ember_ctx_set_comm below exists.
 * Both flavours have ember_ctx_rank and ember_ctx_ranks, so a program can
 * print "on rank 0 only" without an #ifdef.
 *
 * With a communicator, every rank runs the same program on the same
 * datasets; ranks own partitions (rank r of R owns the contiguous block
 * [P*r/R, P*(r+1)/R) of a dataset's P partitions), narrow work runs on the
 * owner, shuffles exchange buckets, and actions combine per-partition
 * results in partition order on every rank: results are bit-identical to a
 * serial run, for any number of ranks and threads. The partition count of a
 * dataset never depends on the number of ranks or threads.
 *
 * Rules for the program:
 *   - It calls MPI_Init_thread (MPI_THREAD_FUNNELED or higher) before
 *     ember_ctx_set_comm and MPI_Finalize after ember_ctx_destroy. The
 *     library never initialises or finalises MPI.
 *   - Every rank makes the same ember calls in the same order (they are
 *     collective): creating datasets, actions, checkpoints.
 *   - ember calls MPI only from the caller's thread, outside OpenMP
 *     regions; user functions must not call MPI.
 *   - ember_foreach runs its function on the rank that owns each partition
 *     only (its side effects stay on that rank). Every other action returns
 *     the same result on every rank.
 *   - An error in one rank's partitions is returned on every rank, with the
 *     message of the lowest failing partition, as a serial run reports it.
 *   - Each rank has its own block store and memory budget: ember_ctx_stats
 *     and ember_cached_partitions describe this rank's.
 *   - A zip whose two inputs are distributed differently (one through a
 *     union of shuffled data, the other not) is refused with EMBER_ESTATE.
 */
#ifndef EMBER_MPI_H
#define EMBER_MPI_H

#include "ember.h"

#ifdef EMBER_MPI
#include <mpi.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* This context's rank (0 without a communicator) and number of ranks (1). */
int ember_ctx_rank(const ember_ctx *ctx);
int ember_ctx_ranks(const ember_ctx *ctx);

/* All-gathers for a program's own arrays laid out by partition, for what
 * tasks wrote as side effects (ember_foreach, per-partition slots): on
 * entry the owner of each partition has filled its piece, on return every
 * rank holds every piece, in place. Collective; with one rank nothing
 * moves and they return EMBER_OK.
 *   ember_allgather_ranges: data holds offsets[nparts] elements of
 *     elem_size bytes, partition p's being [offsets[p], offsets[p+1])
 *     (ember_array_parts gives a dataset's offsets). EMBER_ERANGE when the
 *     array has 2^31 - 1 elements or more (MPI's int counts).
 *   ember_allgather_items: data holds nparts items of item_size bytes, one
 *     a partition. */
int ember_allgather_ranges(ember_ctx *ctx, void *data, size_t elem_size,
                           const uint64_t *offsets, size_t nparts, char *msg);
int ember_allgather_items(ember_ctx *ctx, void *data, size_t item_size,
                          size_t nparts, char *msg);
/* Element-wise minimum of n int64 across the ranks, in place, on every
 * rank: for tasks that lowered entries other ranks own (integers, so the
 * result does not depend on the order). EMBER_ERANGE from 2^31 elements
 * (MPI's int counts). Collective; with one rank it returns EMBER_OK. */
int ember_allreduce_min_i64(ember_ctx *ctx, int64_t *data, size_t n, char *msg);

/* An array that every rank holds whole, for ember_allgather_ranges to
 * fill: *out gets bytes of uninitialised memory; EMBER_ENOMEM (with msg)
 * on every rank alike when any rank has none. Collective, as is ember_replicated_free, which frees it (or
 * ember_ctx_destroy does). Serially, or with ranks on several nodes, or
 * with EMBER_MPI_SHARED=0 in any rank's environment, it is this rank's own
 * memory. With every rank on one node (MPI build) it is one MPI-3
 * shared-memory window mapped by all of them: one copy a node instead of
 * one a rank, and ember_allgather_ranges on it moves no bytes (it is a
 * barrier: each rank wrote its own ranges in place, and then sees all).
 * The caller's rule in that case: a rank writes only its own ranges, and
 * between the last read of an array's contents and the next write into it
 * every rank passes a collective that all ranks contribute to (any ember
 * action, ember_loop_next, an all-gather), so no rank overwrites what
 * another still reads. */
int ember_replicated_alloc(void **out, ember_ctx *ctx, size_t bytes, char *msg);
void ember_replicated_free(ember_ctx *ctx, void *p);

#ifdef EMBER_MPI
/* Gives ctx a duplicate of comm (MPI_Comm_dup: collective over comm; it is
 * freed by ember_ctx_destroy, which must then run before MPI_Finalize).
 * Call it right after ember_ctx_create, before any dataset is made:
 * EMBER_ESTATE if the context already has datasets or broadcasts, or if MPI
 * is not initialised with MPI_THREAD_FUNNELED or higher. A communicator of
 * one rank behaves exactly as no communicator. */
int ember_ctx_set_comm(ember_ctx *ctx, MPI_Comm comm, char *msg);
#endif

#ifdef __cplusplus
}
#endif

#endif /* EMBER_MPI_H */
