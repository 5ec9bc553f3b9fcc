/* ember.h: the public API of ember, Spark's resilient-dataset model for one
 * shared-memory machine, with an OpenMP executor and HDF5 checkpoints.
 *
 * Conventions (read once, they hold everywhere):
 * - Every fallible call returns an int status: 0 is EMBER_OK, negative is an
 *   error, positive is information (EMBER_NOTCACHED, ...). ember_strerror()
 *   names any status.
 * - Calls that take `char *msg` fill it (when not NULL) with at most
 *   EMBER_MSG_SIZE bytes saying what went wrong and where: the file, the line
 *   of input, the dataset; one line (a control byte in a name shows as ?).
 *   On success msg is left as "".
 * - Handles are opaque, created by one call and freed by its pair. Free calls
 *   take the handle's address, set it to NULL and accept NULL.
 * - Options are structs passed by pointer where zero / NULL means default;
 *   a NULL options pointer means all defaults.
 * - Parameter order: outputs, inputs, options, msg.
 *
 * Threading contract:
 * - A context and everything made from it is used from one caller thread at
 *   a time. Two contexts in one process are independent.
 * - Actions run user functions on an OpenMP team, one task per partition, so
 *   user functions run concurrently with each other and must be reentrant.
 *   They may read their `arg` and broadcast data; they must not call any
 *   ember_* function except ember_emit(), ember_emitter_partition() and
 *   ember_bcast_data(), and must not call HDF5 (the library's HDF5 layer is
 *   serialised and is called only from the caller's thread or under its lock).
 *   An action or ember_broadcast called there runs nothing and returns
 *   EMBER_ESTATE, and a function that then fails makes its action return
 *   EMBER_ESTATE, the message saying so.
 * - A user function reports failure by returning non-zero: the action stops
 *   and returns EMBER_EUSER, its message naming the function's role, the
 *   dataset and the value ("foreach function of #4 (range) returned -2 in
 *   partition 3", as "map function of #11 (map) returned 7 ...").
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_VERSION_MAJOR 0
#define EMBER_VERSION_MINOR 2
#define EMBER_VERSION_PATCH 0
#define EMBER_VERSION_STRING "0.2.0"

/* Size of the message buffers that calls fill. */
#define EMBER_MSG_SIZE 512

/* ------------------------------------------------------------------------
 * Status codes
 * ------------------------------------------------------------------------ */

#define EMBER_STATUS_MAP(X)                                                    \
    X(OK, 0, "success")                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(EIO, -3, "input/output error")                                           \
    X(EFORMAT, -4, "malformed input")                                          \
    X(ETYPE, -5, "record type mismatch")                                       \
    X(ELENGTH, -6, "length or partitioning mismatch")                          \
    X(ENOTFOUND, -7, "not found")                                              \
    X(ERANGE, -8, "value out of range or buffer too small")                    \
    X(EBUDGET, -9, "memory budget too small")                                  \
    X(ECORRUPT, -10, "data failed verification")                               \
    X(EBUSY, -11, "held by another process")                                   \
    X(EMISMATCH, -12, "fingerprint mismatch")                                  \
    X(ESTATE, -13, "operation not valid in this state")                        \
    X(EUSER, -14, "user function reported an error")                           \
    X(EHDF5, -15, "HDF5 library error")                                        \
    X(EEMPTY, -16, "dataset is empty")                                         \
    X(NOTCACHED, 1, "not cached")                                              \
    X(NOTCONVERGED, 2, "not converged")                                        \
    X(INTERRUPTED, 3, "interrupted: checkpointed and resumable")              \
    X(DONE, 4, "finished")

typedef enum {
#define EMBER_STATUS_ENUM_(name, value, text) EMBER_##name = value,
    EMBER_STATUS_MAP(EMBER_STATUS_ENUM_)
#undef EMBER_STATUS_ENUM_
} ember_status;

/* Static string naming a status; "unknown status" for others. */
const char *ember_strerror(int status);

/* The exit status for a program that ends with status, as ember's programs
 * exit: 0 for EMBER_OK (and the other non-negative statuses but one), 75
 * (EMBER_EXIT_RESUMABLE, ember/loop.h) for EMBER_INTERRUPTED, 2 for bad
 * input or arguments (EFORMAT, ENOTFOUND, EEMPTY, ERANGE, EINVAL, ETYPE,
 * ELENGTH, EMISMATCH, ECORRUPT), 1 for any other failure. */
int ember_exit_status(int status);

/* ------------------------------------------------------------------------
 * Record types
 *
 * Records are fixed-size. A type is a scalar, a key/value pair, or a struct
 * of named fields whose fields may be arrays (a 16 x f64 point). Layout is
 * C's natural alignment, so a record is exactly the C struct one would
 * write, and each type maps to a native HDF5 type (scalar or compound).
 * Keyed operations use field 0 as the key; it must be a scalar field
 * (count 1).
 * ------------------------------------------------------------------------ */

typedef enum {
    EMBER_I32 = 1,
    EMBER_I64 = 2,
    EMBER_U64 = 3,
    EMBER_F32 = 4,
    EMBER_F64 = 5
} ember_scalar;

#define EMBER_MAX_FIELDS 32
#define EMBER_NAME_SIZE 32

typedef struct {
    char name[EMBER_NAME_SIZE];
    ember_scalar kind;
    uint32_t count;  /* array length; 0 is taken as 1 */
    uint32_t offset; /* byte offset, filled in by the type constructors */
} ember_field;

typedef enum {
    EMBER_TYPE_SCALAR = 1, /* one field named "value" */
    EMBER_TYPE_PAIR = 2,   /* fields "key" and "value" */
    EMBER_TYPE_STRUCT = 3
} ember_type_class;

typedef struct {
    ember_type_class cls;
    uint32_t nfields;
    uint32_t size;  /* record size in bytes, padded to align */
    uint32_t align;
    ember_field field[EMBER_MAX_FIELDS];
} ember_type;

size_t ember_scalar_size(ember_scalar s);
const char *ember_scalar_name(ember_scalar s); /* "i32", "f64", ... */
ember_type ember_type_scalar(ember_scalar s);
ember_type ember_type_pair(ember_scalar key, ember_scalar value);
/* Builds a struct type from n fields (names and kinds and counts; offsets are
 * computed). Fails on duplicate or empty names, bad kinds, n == 0 or
 * n > EMBER_MAX_FIELDS. */
int ember_type_struct(ember_type *out, const ember_field *fields, size_t n,
                      char *msg);
/* 1 when a and b have the same fields, kinds, counts and layout. */
int ember_type_equal(const ember_type *a, const ember_type *b);
/* Writes e.g. "{key: i64, value: f64}" into buf (always terminated). */
void ember_type_describe(const ember_type *t, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * Context
 * ------------------------------------------------------------------------ */

typedef struct ember_ctx ember_ctx;

/* A replaceable allocator. All of the library's own allocations go through
 * it, from any thread: it must be thread-safe. */
typedef struct {
    void *(*malloc_fn)(size_t size, void *ud);
    void *(*realloc_fn)(void *ptr, size_t size, void *ud);
    void (*free_fn)(void *ptr, void *ud);
    void *ud;
} ember_allocator;

typedef struct {
    int threads;                 /* 0: OMP_NUM_THREADS, else all cores */
    size_t memory_budget;        /* bytes for persisted blocks; 0: 1/4 of RAM */
    const char *scratch_dir;     /* spill files; NULL: $TMPDIR, else /tmp */
    const char *checkpoint_dir;  /* NULL: checkpoints need a directory later;
                                    made (mkdir -p) at the first write */
    size_t block_bytes;          /* pipeline block size; 0: 32 KiB */
    const ember_allocator *allocator; /* NULL: the C library's */
} ember_ctx_opts;

int ember_ctx_create(ember_ctx **out, const ember_ctx_opts *opts, char *msg);
/* Frees the context and every dataset, broadcast and cached block still
 * made from it. Accepts NULL. Handles still held are freed with it: do not
 * pass them to ember_ds_free or ember_bcast_free afterwards (free them
 * first, or not at all). A loop made with it that is still alive keeps
 * it until ember_loop_destroy, which then frees it (the handle is NULL
 * at once either way). Streams made with it use its allocator: destroy
 * them first. */
void ember_ctx_destroy(ember_ctx **ctx);
int ember_ctx_threads(const ember_ctx *ctx);
/* Changes the team size for later actions (results do not change). */
int ember_ctx_set_threads(ember_ctx *ctx, int threads);
const char *ember_ctx_checkpoint_dir(const ember_ctx *ctx);
int ember_ctx_set_checkpoint_dir(ember_ctx *ctx, const char *dir, char *msg);
/* Changes the pipeline block size for later actions, as block_bytes in
 * ember_ctx_opts (0: 32 KiB; at least 64, at most the memory budget). A
 * function that works on many records at a time (an aggregate's seq over
 * wide records) may want larger blocks. */
int ember_ctx_set_block_bytes(ember_ctx *ctx, size_t bytes, char *msg);

typedef struct {
    size_t memory_used;          /* bytes held by in-memory blocks */
    size_t memory_budget;
    size_t blocks_in_memory;
    size_t blocks_on_disk;
    uint64_t evictions;          /* blocks dropped or spilled for room */
    uint64_t spills;             /* blocks written to the scratch dir */
    uint64_t disk_reads;         /* blocks read back from the scratch dir */
    uint64_t recomputes;         /* persisted partitions computed again */
    uint64_t cache_hits;
    /* What the context holds right now, by ember's own accounting (not
     * the process's RSS, so the figures are deterministic): */
    size_t broadcast_bytes;      /* collected copies held by live broadcasts;
                                    charged against memory_budget together
                                    with memory_used (a view of an array
                                    source holds nothing of its own) */
    size_t disk_used;            /* bytes of blocks in spill files */
    size_t dataset_bytes;        /* records owned by live datasets: copied
                                    arrays, files read, partitions captured
                                    for a pending checkpoint */
    size_t live_datasets;        /* lineage nodes alive: handles, their
                                    ancestors, the array sources of
                                    broadcast views */
    size_t live_broadcasts;
    size_t live_bytes;           /* memory_used + broadcast_bytes +
                                    dataset_bytes */
} ember_stats;

void ember_ctx_stats(const ember_ctx *ctx, ember_stats *out);

/* Memory returned to the caller by ember (collect_alloc, lineage strings)
 * is freed with this. Accepts NULL. */
void ember_free(ember_ctx *ctx, void *ptr);

/* ------------------------------------------------------------------------
 * Datasets and sources
 *
 * A dataset is an immutable, partitioned collection of records. Handles are
 * reference counted internally: a dataset stays alive while a dataset made
 * from it exists, so the caller may free a parent right after deriving from
 * it. Partition counts come from the data (or the caller), never from the
 * thread count. `partitions` 0 means: derived from the data size, so
 * that the bits never depend on the team: one partition per 8 MiB begun,
 * and at least one per 64 KiB begun up to 16 (so data from 1 MiB to 128
 * MiB is 16 partitions, 16 tasks). A partition is one task: ask for a
 * count (a few per core of the largest machine the job will run on) where
 * a small dataset carries heavy work on more than 16 cores. At most 2^25
 * partitions (EMBER_EINVAL beyond): each costs bookkeeping in every action.
 * ------------------------------------------------------------------------ */

typedef struct ember_ds ember_ds;

void ember_ds_free(ember_ds **ds);
const ember_type *ember_ds_type(const ember_ds *ds);
size_t ember_ds_partitions(const ember_ds *ds);
ember_ctx *ember_ds_ctx(const ember_ds *ds);
uint64_t ember_ds_id(const ember_ds *ds);
/* A name for lineage strings and checkpoint files (copied, <= 63 bytes). */
int ember_ds_set_name(ember_ds *ds, const char *name);
const char *ember_ds_name(const ember_ds *ds);

/* int64 records start, start+step, ... below end (above it when step < 0). */
int ember_range(ember_ds **out, ember_ctx *ctx, int64_t start, int64_t end,
                int64_t step, size_t partitions, char *msg);

typedef enum {
    EMBER_COPY = 0,  /* the records are copied; the caller keeps its array */
    EMBER_BORROW = 1 /* the caller keeps the array alive and unchanged
                        until the dataset and all made from it are freed */
} ember_ownership;

/* n records of type at records. An n whose byte size could not be an
 * array (more than PTRDIFF_MAX bytes) is EMBER_ERANGE. */
int ember_from_array(ember_ds **out, ember_ctx *ctx, const ember_type *type,
                     const void *records, size_t n, size_t partitions,
                     ember_ownership own, char *msg);

/* The size and XXH3-64 hash of every byte of a file, read once: what the
 * programs record as an input's content fingerprint. A file ember wrote
 * with a whole-file checksum (docs/checkpoint-format.md) is verified in
 * the same pass; one that verifies, was last changed at least 2 s
 * before, and on which the pass held a read lease throughout (so nobody
 * had it open for writing or mapped writable: a file of this user on a
 * local file system, see ember_graph_load_in_place), is remembered by this
 * process, and a later load of it that finds it unchanged (same device,
 * inode, size, mtime, ctime and header hash) does not read it again to
 * verify it. A file that fails to verify
 * is no error here (its load reports it). EMBER_ENOTFOUND, EMBER_EIO
 * (msg names the file), EMBER_ENOMEM. */
int ember_file_hash(const char *path, uint64_t *bytes, uint64_t *xxh3, char *msg);
/* The same with threads threads sharing the reads (0 or negative: as a
 * context's default, OMP_NUM_THREADS, else all cores; ember_file_hash
 * uses that; at most 10 are used). The values do not depend on threads.
 * Both open an OpenMP parallel region of their own when more than one
 * thread is used; called inside a parallel region they run on a team of
 * one unless nested parallelism is on. Thread-safe. */
int ember_file_hash_threads(const char *path, int threads, uint64_t *bytes,
                            uint64_t *xxh3, char *msg);

/* A read lease on a file, from before its fingerprint (ember_file_hash) to
 * the end of its load, so that the bytes loaded are the bytes hashed: the
 * kernel grants it only while nobody has the file open for writing (a
 * writable shared mapping counts: its stores into pages already dirty
 * change the file without moving a time stamp), and holds off whoever
 * then opens the file for writing or truncates it (for up to
 * /proc/sys/fs/lease-break-time seconds, at least 3) until the lease ends.
 * Taken where ember trusts a lease (see ember_graph_load_in_place in
 * ember/graph.h: the user's own file on a local file system); elsewhere,
 * or for anything but a regular file, nothing is held and
 * the call succeeds. EMBER_EBUSY (msg names path) when the file is open
 * for writing: which bytes a run would read cannot be known. */
typedef struct {
    int64_t state[12]; /* ember's; all zero: none held */
} ember_file_lease;
int ember_file_lease_begin(ember_file_lease *lease, const char *path, char *msg);
/* Ends it (a writer held off goes on; nothing is left to free, and a
 * process that exits first lets go all the same): EMBER_OK when no writer
 * can have changed the file meanwhile (the lease whole, or broken and the
 * file's size, mtime and ctime as when it was taken, within the break
 * time); EMBER_ECORRUPT, msg naming name, when one may have. A lease not
 * held (or NULL): EMBER_OK. */
int ember_file_lease_end(ember_file_lease *lease, const char *name, char *msg);

/* An HDF5 dataset named "file.h5:/path/in/file" (the path defaults to the
 * only dataset at the root). Native integer and float types and compounds
 * of them map to ember types. */
int ember_read_h5(ember_ds **out, ember_ctx *ctx, const char *spec,
                  size_t partitions, char *msg);

typedef struct {
    char delimiter;    /* 0: auto (comma if the first data line has one,
                          else whitespace); ',' ';' '\t' or ' ' */
    int header;        /* 0: auto (a header when no field of the first
                          line is a number, quotes ignored; a first line
                          of numbers and text is EMBER_EFORMAT), 1: yes,
                          -1: no */
    size_t partitions; /* 0: from the file size */
} ember_text_opts;

/* Numbers: every line holds the same number of numeric columns, parsed as
 * f64. One column gives a scalar f64 type; more give a struct of f64 fields
 * named by the header (or c0, c1, ...), laid out as double[d]. Blank lines
 * and lines starting with '#' are skipped. A regular file is mapped, not
 * copied into memory; one written while it is read is EMBER_EIO. */
int ember_read_csv(ember_ds **out, ember_ctx *ctx, const char *path,
                   const ember_text_opts *opts, char *msg);

/* Lines: records {u64 offset, u64 length} into the file's text, which stays
 * in memory while the dataset lives; ember_lines_text() gives its start. A
 * user function receives that pointer through its arg. The length excludes
 * the line end ("\n" or "\r\n"). */
int ember_read_lines(ember_ds **out, ember_ctx *ctx, const char *path,
                     const ember_text_opts *opts, char *msg);
const char *ember_lines_text(const ember_ds *lines, size_t *size);

typedef struct {
    uint64_t offset;
    uint64_t length;
} ember_line;

/* ------------------------------------------------------------------------
 * User functions: called once per block of records, never per record.
 * ------------------------------------------------------------------------ */

/* out has room for n records of the output type. */
typedef int (*ember_map_fn)(const void *in, void *out, size_t n, void *arg);
/* Sets keep[i] to non-zero for each record to keep. */
typedef int (*ember_filter_fn)(const void *in, unsigned char *keep, size_t n,
                               void *arg);

typedef struct ember_emitter ember_emitter;
/* flat_map and map_partitions: emit any number of output records. */
typedef int (*ember_emit_fn)(const void *in, size_t n, ember_emitter *out,
                             void *arg);
/* Appends n records. EMBER_ENOMEM, or EMBER_EINVAL for NULL records with
 * n > 0; either fails the task with that status (the action returns it,
 * naming the function), whatever the function then returns. */
int ember_emit(ember_emitter *em, const void *records, size_t n);
size_t ember_emitter_partition(const ember_emitter *em);

/* Folds n records at in into the one record at acc. Used by reduce,
 * reduce_by_key (records of one key, key included) and aggregate. Must be
 * associative for results to be meaningful; ember always folds in a fixed
 * order, so results are deterministic regardless. The fold is record by
 * record: reduce_by_key may hand one key's records over in several calls,
 * each a run of them in order, so fn(acc, in, n) must give what n calls
 * of one record each give (as a loop over in does). */
typedef int (*ember_combine_fn)(void *acc, const void *in, size_t n,
                                void *arg);

/* ------------------------------------------------------------------------
 * Transformations (lazy). Each creates a new dataset handle that the caller
 * frees; the inputs are not consumed.
 *
 * Closures and lifetimes. A transformation that takes a user `arg` also
 * takes `arg_size`. arg_size > 0: the arg_size bytes at arg are copied when
 * the transformation is created, into memory the dataset owns (aligned for
 * any type, freed with it); every call of fn, the first computation and
 * every recompute (after an eviction, for a checkpoint, on a lineage
 * replay), gets a pointer to that copy, so the caller may change or free
 * its struct at once. All tasks share the one copy: treat it as read-only
 * (write results through pointers it holds). Pointers inside the copy are
 * copied as pointers: what they point to must outlive the dataset, except
 * broadcasts, which the dataset keeps alive itself: a word of the copy
 * (at a pointer-aligned offset) equal to a live ember_bcast handle, or to
 * an address inside its records, counts as ember_ds_uses(). arg_size 0:
 * arg is borrowed, passed as is; the caller keeps it alive and unchanged
 * while any dataset that may recompute from this one exists, and declares
 * the broadcasts it reads with ember_ds_uses(). Actions run their function
 * during the call and take no arg_size.
 * ------------------------------------------------------------------------ */

/* out_type NULL: same type as the input. */
int ember_map(ember_ds **out, ember_ds *in, const ember_type *out_type,
              ember_map_fn fn, void *arg, size_t arg_size, char *msg);
int ember_filter(ember_ds **out, ember_ds *in, ember_filter_fn fn, void *arg,
                 size_t arg_size, char *msg);
int ember_flat_map(ember_ds **out, ember_ds *in, const ember_type *out_type,
                   ember_emit_fn fn, void *arg, size_t arg_size, char *msg);
/* fn sees each whole partition once (n may be 0). */
int ember_map_partitions(ember_ds **out, ember_ds *in,
                         const ember_type *out_type, ember_emit_fn fn,
                         void *arg, size_t arg_size, char *msg);
/* Pairs records of a and b by position. Both need the same partition count
 * and, checked when it runs, the same record count in each partition.
 * The record is a's fields then b's; two scalars give a pair. Names that
 * clash get a "_2" suffix. */
int ember_zip(ember_ds **out, ember_ds *a, ember_ds *b, char *msg);
/* a's partitions then b's; the types must be equal. */
int ember_union(ember_ds **out, ember_ds *a, ember_ds *b, char *msg);
/* Keeps each record with probability fraction, decided by a counter-based
 * generator keyed by (seed, partition, index): deterministic. */
int ember_sample(ember_ds **out, ember_ds *in, double fraction, uint64_t seed,
                 char *msg);

/* Wide transformations end a stage. `partitions` 0 keeps the input's count.
 * Keys are compared by value (integers) or numerically (floats, with -0.0
 * equal to 0.0 and NaN the largest: last ascending, first descending).
 * Memory: a shuffle holds its input partitions (both sides of a join) and
 * their bucketed copy while it runs, outside the memory budget, which
 * covers persisted blocks; its outputs go to the block store like any
 * persisted block. So a shuffle's input must fit in memory, and its
 * bookkeeping grows as input x output partitions: 8 bytes a pair, and a
 * shuffle whose pairs take more than the memory budget is refused
 * (EMBER_EBUDGET) before any work. */

/* Combines records of equal key with fn, as Spark's map-side combine
 * does: first within each input partition, record by record in input
 * order; then those partials, in input-partition order. So with a
 * non-associative fn (a float sum) the result is that grouping, not one
 * left-to-right fold of all the records, and it is the same for any thread
 * count. fn NULL sums every non-key field (arg and arg_size are then
 * ignored). Output partitions are sorted by key. */
int ember_reduce_by_key(ember_ds **out, ember_ds *in, ember_combine_fn fn,
                        void *arg, size_t arg_size, size_t partitions,
                        char *msg);
/* Records with equal keys end up adjacent in one partition, sorted by key,
 * values in input order: a group is a run of equal keys. Use
 * ember_next_group() in map_partitions or foreach to walk the groups. */
int ember_group_by_key(ember_ds **out, ember_ds *in, size_t partitions,
                       char *msg);
/* From *pos, finds the run of records with equal key; returns its length
 * (0 at the end) and moves *pos past it. */
size_t ember_next_group(const ember_type *type, const void *records, size_t n,
                        size_t *pos);
/* Inner join on field 0: the record is the key, a's other fields, then b's
 * other fields (clashing names get "_2"). Each output partition is sorted by
 * key; for equal keys, a's records in input order, each with b's in order. */
int ember_join(ember_ds **out, ember_ds *a, ember_ds *b, size_t partitions,
               char *msg);

typedef enum { EMBER_HASH = 0, EMBER_RANGE = 1 } ember_partitioner;
/* HASH keeps input order within each output partition; RANGE gives
 * partitions of ascending key ranges (bounds from a deterministic sample)
 * without sorting within them. */
int ember_partition_by(ember_ds **out, ember_ds *in, ember_partitioner how,
                       size_t partitions, char *msg);
/* Whole-record distinct (byte equality); output sorted within partitions. */
int ember_distinct(ember_ds **out, ember_ds *in, size_t partitions,
                   char *msg);
/* Global sort on field 0: partition i holds keys <= partition i+1's, each
 * sorted, stable (equal keys keep input order). */
int ember_sort_by_key(ember_ds **out, ember_ds *in, int descending,
                      size_t partitions, char *msg);
/* Same records, evenly spread over `partitions` in order. */
int ember_repartition(ember_ds **out, ember_ds *in, size_t partitions,
                      char *msg);

/* Broadcast: a materialized, read-only whole-array view shared by every
 * task. Made from an array source it is that array (no copy; it keeps the
 * source alive); otherwise the dataset is computed once into one array
 * (and the broadcast does not hold the dataset), whose bytes count against the
 * context's memory budget (cached blocks are evicted to make room; a
 * broadcast larger than the budget is still made, and counted) and in
 * ember_stats.broadcast_bytes until its records are freed. A broadcast is
 * reference counted: the caller's handle is one reference, each dataset
 * that uses it holds another, and its records live until the last one
 * goes. */
typedef struct ember_bcast ember_bcast;
int ember_broadcast(ember_bcast **out, ember_ds *ds, char *msg);
const void *ember_bcast_data(const ember_bcast *bc, size_t *n);
const ember_type *ember_bcast_type(const ember_bcast *bc);
/* Drops the caller's reference only; datasets that use bc keep it. */
void ember_bcast_free(ember_bcast **bc);
/* Records that ds's functions read bc: shown in lineage, and bc stays alive
 * as long as ds does, or until ds is checkpointed: a checkpoint cuts ds's
 * lineage, its broadcasts included. A transformation whose copied arg names
 * bc (see "Closures and lifetimes") does this by itself; call it for a
 * borrowed arg. Saying it twice is one use. */
int ember_ds_uses(ember_ds *ds, ember_bcast *bc);

/* ------------------------------------------------------------------------
 * Actions: plan stages and run them on the OpenMP team.
 * ------------------------------------------------------------------------ */

int ember_count(ember_ds *ds, uint64_t *out, char *msg);
/* Folds every record into out (one record): partition results are combined
 * in partition order. EMBER_EEMPTY on an empty dataset. */
int ember_reduce(ember_ds *ds, ember_combine_fn fn, void *arg, void *out,
                 char *msg);
/* Element-wise sum of every numeric field into one record (integers wrap,
 * floats add in record order within a partition, then partition order). */
int ember_sum(ember_ds *ds, void *out, char *msg);
/* Into a caller buffer of `capacity` records; EMBER_ERANGE (with *n set to
 * the count needed) if it does not fit. */
int ember_collect(ember_ds *ds, void *buf, size_t capacity, size_t *n,
                  char *msg);
/* Into a new buffer the caller frees with ember_free(). */
int ember_collect_alloc(ember_ds *ds, void **out, size_t *n, char *msg);
/* The first n records in partition order; *got may be less. */
int ember_take(ember_ds *ds, size_t n, void *buf, size_t *got, char *msg);
typedef int (*ember_foreach_fn)(const void *in, size_t n, size_t partition,
                                void *arg);
int ember_foreach(ember_ds *ds, ember_foreach_fn fn, void *arg, char *msg);
/* acc_size bytes of accumulator start as a copy of zero in each partition;
 * seq folds record blocks into it; comb folds another partition's
 * accumulator (n == 1) into the running one, in partition order, starting
 * from zero. */
int ember_aggregate(ember_ds *ds, const void *zero, size_t acc_size,
                    ember_combine_fn seq, ember_combine_fn comb, void *arg,
                    void *out, char *msg);
/* ember_aggregate with one accumulator a team thread (under MPI, then one
 * a rank) instead of one a partition: for a large accumulator over many
 * partitions. Which thread folds which block is not fixed, so seq and comb
 * must give the same result in any grouping and order (integer sums,
 * counts, minima, bitwise or); floating-point sums would differ from run
 * to run. comb folds the threads' accumulators, then the ranks', in order,
 * starting from zero. */
int ember_aggregate_unordered(ember_ds *ds, const void *zero, size_t acc_size,
                              ember_combine_fn seq, ember_combine_fn comb,
                              void *arg, void *out, char *msg);

typedef struct {
    int deflate;   /* 0: none; 1..9: deflate level, with shuffle */
    int overwrite; /* replace an existing dataset at the path (only a
                      dataset: never a group or another object) */
} ember_save_opts;

/* Writes records to "file.h5:/path" (created if missing) as a native or
 * compound HDF5 dataset, with a "partition_offsets" attribute (u64,
 * partitions + 1 entries). "file.h5" alone writes /<the dataset's name>
 * (its operation's, as in its lineage: /range, /map), or /data.
 * Whole or not at all (docs/formats.md): the records go to a temporary
 * link (".ember-unfinished.NAME", marked) moved to the path on success;
 * on any failure (EMBER_EUSER from a user function included) it is
 * deleted, a dataset that was at the path stays, and a file created for
 * the save is removed. The file is changed in a copy renamed over it once
 * complete (a new file: created under another name and renamed), so a
 * kill leaves it as it was; saves into one file wait for each other.
 * ember_h5_scratch (ember/graph.h) exempts a file the caller builds and
 * publishes itself.
 * EMBER_EINVAL, with nothing written, for an existing dataset without
 * overwrite, for a group or other object at the path (with or without
 * overwrite), a path through a dataset, the root "/", a path with an
 * empty name ("/a//b", "/a/") and a spec ending in ':' ("f.h5:"). */
int ember_save_h5(ember_ds *ds, const char *spec, const ember_save_opts *opts,
                  char *msg);

/* ------------------------------------------------------------------------
 * Persistence
 *
 * Levels follow Spark. Blocks (one per partition) count against the
 * context's memory budget and are evicted least recently used first (never
 * to make room for another block of the same dataset, as in Spark): an
 * evicted MEMORY_ONLY block is recomputed from lineage when next needed; a
 * *_AND_DISK block spills to the scratch directory and is read back,
 * checked against a hash taken when it was written. A spill file that is
 * gone, short or changed (a tmp cleaner, a bad disk) is a lost block, as
 * in Spark: it is dropped and its partition computed again from lineage,
 * with the same result. Where there is no lineage (a local checkpoint's
 * blocks are the only copy) the action fails with EMBER_ECORRUPT naming
 * the file; a shuffle's lost outputs are made again by running it again:
 * in the same action when they are missing or short, at the next action
 * when the loss is found by a read (the action that finds it fails with
 * EMBER_ECORRUPT; a chain of k shuffles whose outputs were all damaged
 * can take k such actions).
 * The _SER levels keep blocks byte-shuffled and zstd-compressed: less
 * memory, more CPU to read. OFF_HEAP and the replicated "_2" levels have no
 * meaning on one machine (there is no JVM heap and no second node) and do
 * not exist here.
 * ------------------------------------------------------------------------ */

typedef enum {
    EMBER_NONE = 0,
    EMBER_MEMORY_ONLY = 1,
    EMBER_MEMORY_AND_DISK = 2,
    EMBER_DISK_ONLY = 3,
    EMBER_MEMORY_ONLY_SER = 4,
    EMBER_MEMORY_AND_DISK_SER = 5
} ember_level;

const char *ember_level_name(ember_level level);
/* Marks ds; partitions are stored as the next action computes them. A
 * source that costs nothing to read again (ember_range, ember_from_array)
 * is marked but never stored: ember_cached_partitions stays 0. Changing
 * the level of a persisted dataset is EMBER_ESTATE (unpersist first), as
 * in Spark. */
int ember_persist(ember_ds *ds, ember_level level, char *msg);
int ember_cache(ember_ds *ds, char *msg); /* MEMORY_ONLY */
/* Drops the mark and frees memory and spill files. For a local checkpoint
 * those blocks are the only copy: while a dataset made from it lives, which
 * may recompute its partitions from them, they stay (spilled as memory
 * requires) until the dataset itself goes, with its last handle and the
 * last dataset made from it; else they are freed at once, and
 * an action that needs the dataset afterwards fails with EMBER_ESTATE (as
 * in Spark). A loop's cuts are local checkpoints (ember/loop.h). */
int ember_unpersist(ember_ds *ds);
ember_level ember_ds_level(const ember_ds *ds);
/* How many partitions are stored now (memory or disk). */
size_t ember_cached_partitions(const ember_ds *ds);

/* ------------------------------------------------------------------------
 * Lineage
 *
 * What a lineage holds, and when it lets go. A dataset keeps alive its
 * parents and everything they were made from (nodes, cached blocks, spill
 * files, shuffle outputs), and the broadcasts it uses (ember_ds_uses). A
 * broadcast holds its collected copy, not the dataset it was computed
 * from (a view holds its array source): so a state that reaches the next
 * iteration only through a broadcast (y = map(idx, broadcast(x))) keeps
 * no older state alive once its handles are freed. A checkpoint that commits (file or
 * local, lazy or eager, or a loop's checkpoint of a bound dataset) cuts
 * that: the dataset drops its parents and broadcasts, and whatever only the
 * cut part held is freed at once, except what a live handle still holds.
 *
 * The guarantee: a loop that builds its state from the previous
 * iteration's state (x = f(x, broadcast(x)), the old handles freed) and
 * checkpoints every k iterations holds at most the state of the iterations
 * since the last checkpoint: O(k), never O(iterations). ember_ctx_stats
 * shows it in ember's own accounting (live_bytes, live_datasets), and
 * ember_lineage_depth stays at most k times the datasets an iteration
 * adds to the chain (k for x = map(x)). An ember_loop also cuts a bound
 * dataset's lineage itself (a local checkpoint), checkpoint directory or
 * not: after every iteration when the iteration made it from the state it
 * was handed and it is stored whole (x = cache(f(x)): the loop then holds
 * the state, the one being made and their broadcasts, and the cut computes
 * nothing), and every 32 iterations whenever it is deeper than 32 (an
 * uncached chain, which runs fused until then: at most 64 iterations of
 * it). So an action's planning, which walks the lineage, does not grow
 * with the run. A state made so without ember_cache (x = f(x)) in an
 * iteration that ran an action is persisted by the loop (MEMORY_ONLY; a
 * persist of the caller's replaces it): the next action stores it on its
 * way and the loop cuts it, so an action computes two iterations' f, not
 * up to 64. Iterations that run no action keep nothing.
 * ------------------------------------------------------------------------ */

/* Like Spark's toDebugString: one line per dataset, indented where a stage
 * ends, with partitions, storage level, cached partitions ("kept by the
 * loop" when an ember_loop persisted it) and checkpoint state. *out is
 * freed with ember_free(). */
int ember_lineage_string(const ember_ds *ds, char **out);
/* Steps from ds back to its furthest source or checkpoint (a source is 0). */
size_t ember_lineage_depth(const ember_ds *ds);
/* Graphviz DOT of the DAG. *out is freed with ember_free(). */
int ember_lineage_dot(const ember_ds *ds, char **out);

#ifdef __cplusplus
}
#endif

#include "ember/loop.h"
#include "ember/stream.h"
#include "ember/inspect.h"

#endif /* EMBER_H */
