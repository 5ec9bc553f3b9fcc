/* comm.h: the private communication layer between the ranks of one job.
 *
 * A context always has a communicator: by default the serial one (rank 0
 * of 1), where every call below is trivial and makes no MPI call, so the
 * serial build and an MPI build that was never given a communicator run
 * today's code paths unchanged. In the MPI build (EMBER_MPI),
 * ember_ctx_set_comm (include/ember/mpi.h) gives the context a duplicate of
 * the program's communicator; the calls below are then collective: every
 * rank of the communicator makes the same calls in the same order.
 *
 * Determinism: partitions, never ranks, are the unit of work and of
 * combination. Rank r owns a contiguous block of partitions (the block
 * map), so what it holds of a dataset laid out by partition is one
 * hyperslab. Gathers place data by partition and exchanges by source
 * partition, never by arrival order. Floating-point values are never
 * reduced by MPI: integer flags are (OR, MAX, MIN). So results are
 * bit-identical for any rank count.
 *
 * Threads: MPI is initialised by the program with MPI_THREAD_FUNNELED at
 * least; the library never calls MPI_Init. None of these calls may be made
 * inside an OpenMP parallel region.
 *
 * Counts: MPI 3.1 counts are int. Exchanges count records (a contiguous
 * datatype of the record size), so one rank may receive up to INT_MAX
 * records per call; more is refused with EMBER_ERANGE and a message, on
 * every rank alike.
 *
 * Floor 0 of the engine (docs/design.md): it calls allocation and errors
 * (util.c) and MPI / HDF5 directly, nothing else of ember.
 */
#ifndef EMBER_COMM_H
#define EMBER_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct ember_ctx ember_ctx;

/* What a context knows of its communicator. */
typedef struct {
    int rank;      /* 0 .. size - 1 */
    int size;      /* 1: serial, every call trivial */
    void *mpi;     /* MPI build with a communicator: an MPI_Comm * (a dup,
                      freed with the context); NULL otherwise */
    void *shared;  /* MPI: the live shared-memory windows of
                      ember_replicated_alloc (a list), NULL otherwise */
} ember__comm;

/* The serial communicator (rank 0 of 1). */
void ember__comm_init(ember__comm *c);
/* Frees ctx's duplicated communicator, if any, and makes it serial again
 * (MPI_Comm_free; skipped once MPI is finalized). */
void ember__comm_free(ember_ctx *ctx);

int ember__comm_rank(const ember_ctx *ctx);
int ember__comm_size(const ember_ctx *ctx);

/* ---- the block map ------------------------------------------------------ */

/* Rank r of R owns partitions [nparts*r/R, nparts*(r+1)/R): contiguous,
 * sizes differing by at most one, empty for some ranks when R > nparts. */
void ember__comm_owned_of(size_t nparts, int size, int rank, size_t *lo,
                          size_t *hi);
/* This context's own range. */
void ember__comm_owned(const ember_ctx *ctx, size_t nparts, size_t *lo,
                       size_t *hi);
/* The rank that owns partition part. */
int ember__comm_owner(const ember_ctx *ctx, size_t nparts, size_t part);
/* 1 when this rank owns part. */
int ember__comm_owns(const ember_ctx *ctx, size_t nparts, size_t part);

/* ---- agreement ------------------------------------------------------------ */

typedef enum { EMBER__AGREE_OR, EMBER__AGREE_MAX, EMBER__AGREE_MIN } ember__agree_op;

/* Combines n int64 flags element-wise across ranks, in place (OR, MAX,
 * MIN). EMBER_OK or EMBER_EIO (MPI failed; msg says so). */
int ember__comm_agree(ember_ctx *ctx, int64_t *flags, size_t n,
                      ember__agree_op op, char *msg);

/* Agreement on the outcome of a step that every rank ran on its own
 * partitions: rc is this rank's status, failed_at the partition (or any
 * ordering index) its failure is attached to (ignored when rc is 0). Every
 * rank returns the status of the lowest failed index, lowest rank first,
 * with its message in msg, so the error is the one a serial run reports.
 * Serial: returns rc. */
int ember__comm_agree_status(ember_ctx *ctx, int rc, uint64_t failed_at,
                             char *msg);

/* ---- moving data ------------------------------------------------------------ */

/* Broadcast of bytes from rank 0 to every rank. */
int ember__comm_bcast(ember_ctx *ctx, void *data, size_t bytes, char *msg);

/* All-gather of fixed-size per-partition results: data holds nparts items
 * of item bytes; on entry this rank's owned items are filled, on return
 * every item is, each from its owner. */
int ember__comm_allgather_fixed(ember_ctx *ctx, void *data, size_t nparts,
                                size_t item, char *msg);

/* All-gather of variable-size per-partition record arrays in partition
 * order: parts[0 .. nparts) are ember__buf (internal.h) of recsize records; on entry the
 * owned ones are filled (others are replaced); on return every rank holds
 * every partition's records. */
int ember__comm_allgather_parts(ember_ctx *ctx, void *parts, size_t nparts,
                                size_t recsize, char *msg);

/* All-gather of ranges of one array laid out by partition (when data lies
 * in one of ctx's shared-memory windows, ember_replicated_alloc in
 * include/ember/mpi.h, every rank already sees every range and this is a
 * barrier with the memory synchronisation the window needs): data holds
 * offsets[nparts] elements of elem bytes, partition p being elements
 * [offsets[p], offsets[p+1]); on entry this rank's owned ranges are filled,
 * on return every range is, each from its owner (in place, no copy of the
 * array). EMBER_ERANGE when the array has INT_MAX elements or more (MPI
 * 3.1's int displacements). Added by the mpi-dist branch. */
int ember__comm_allgather_ranges(ember_ctx *ctx, void *data, size_t elem,
                                 const uint64_t *offsets, size_t nparts,
                                 char *msg);

/* The shuffle exchange. P input partitions are bucketed into Q output
 * partitions: for each owned input partition p, in[p] (an ember__buf of
 * recsize records) holds its records ordered by bucket and start[p] (Q + 1
 * entries, ctx allocations) the bucket bounds. Output partition q belongs
 * to its owner under the block map of Q. On return, for every input
 * partition p (all P): in[p] holds exactly the buckets q this rank owns, in
 * q order, and start[p] their bounds (buckets this rank does not own are
 * empty). Bucket q of input p is placed by p, never by arrival order, so
 * gathering bucket q from inputs 0, 1, 2, ... reads what a serial run
 * reads. Serial: nothing to do. */
int ember__comm_exchange(ember_ctx *ctx, void *in, size_t **start, size_t P,
                         size_t Q, size_t recsize, char *msg);

/* ---- with an owner map ------------------------------------------------------ */

/* The same three, for partitions not laid out by the block map: owner[p]
 * is the rank that holds partition p (the executor derives it through
 * unions, whose partitions stay where their parents' are). owner NULL is
 * the block map. What a rank holds need not be contiguous; data is still
 * placed by partition, never by arrival. */
int ember__comm_allgather_fixed_map(ember_ctx *ctx, void *data, size_t nparts,
                                    size_t item, const int *owner, char *msg);
int ember__comm_allgather_parts_map(ember_ctx *ctx, void *parts, size_t nparts,
                                    size_t recsize, const int *owner,
                                    char *msg);
/* in_owner[p]: the rank holding input partition p (NULL: block map of P).
 * Output partitions are always laid out by the block map of Q. */
int ember__comm_exchange_map(ember_ctx *ctx, void *in, size_t **start,
                             size_t P, size_t Q, size_t recsize,
                             const int *in_owner, char *msg);

/* ---- HDF5 ---------------------------------------------------------------------- */

/* A file-access property list for a file all ranks open together: with a
 * communicator, the MPI-IO driver on it; serially, H5P_FILE_ACCESS
 * defaults. Either way with file locking off and the 1.8 format or later.
 * The caller closes it; negative on failure. Call under ember__h5_lock. */
int64_t ember__comm_h5_fapl(ember_ctx *ctx);
/* A transfer property list: collective MPI-IO with a communicator (needed
 * for filtered datasets, and a rank with nothing to write still writes an
 * empty selection), H5P_DATASET_XFER defaults serially. The caller closes
 * it. */
int64_t ember__comm_h5_dxpl(ember_ctx *ctx);

#endif /* EMBER_COMM_H */
