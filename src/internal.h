/* internal.h: what the library's modules share and users never see.
 *
 * Names here carry the reserved prefix ember__. The context owns everything:
 * datasets (a registry so ctx_destroy frees what callers leaked), the block
 * store, the allocator, the statistics. Nothing is process-wide except the
 * HDF5 lock (HDF5 itself is process-wide) and mapfile.c's SIGBUS guard (a
 * signal has no context).
 */
#ifndef EMBER_INTERNAL_H
#define EMBER_INTERNAL_H

#include "ember.h"
#include "comm.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <omp.h>

/* ---- context ----------------------------------------------------------- */

typedef struct ember__store ember__store;

struct ember_ctx {
    ember_allocator alloc;
    int threads;
    size_t budget;
    size_t block_bytes;
    char *scratch_dir;     /* where the per-context spill dir is made */
    char *checkpoint_dir;
    int ckpt_dir_swept;    /* its stray ds-*.tmp swept (checkpoint.c) */
    /* 16 hex digits of random bits in the names of this context's dataset
     * checkpoints: ids restart at 1 in every context, and two contexts (in
     * one process, or processes on hosts sharing the directory) must not
     * write or read each other's files. Under MPI rank 0's is used. */
    char ckpt_token[17];
    uint64_t next_id;
    ember_ds *all;         /* registry of live datasets (doubly linked) */
    ember_bcast *bcasts;   /* registry of live broadcasts */
    ember__store *store;
    size_t ckpt_marked;    /* datasets marked and not yet written */
    /* The executor's one door up to checkpoints: checkpoint.c installs it
     * when it marks a dataset, and ember__run_parts calls it after an
     * action while datasets are marked. */
    int (*ckpt_commit)(ember_ds *ds, char *msg);
    omp_lock_t stats_lock; /* guards stats from tasks */
    ember_stats stats;
    ember__comm comm;      /* the ranks of the job (comm.h); serial: 0 of 1 */
    /* Parallel passes begun (ember__parallel): a dataset checkpoint's file
     * is hashed whole once a pass, not once a partition (exec.c). */
    uint64_t passes;
    /* Loops made with the context and not yet destroyed, and whether
     * ember_ctx_destroy was called meanwhile: the last loop's destroy then
     * frees the context (ember__ctx_release). */
    int loops, dying;
};

/* A loop of ctx is destroyed: frees a context whose destroy waited for it. */
void ember__ctx_release(ember_ctx *ctx);

/* Allocation through the context's allocator (thread-safe). */
void *ember__malloc(ember_ctx *ctx, size_t size);
/* The first address from p on that is a multiple of a. */
static inline unsigned char *ember__align(unsigned char *p, size_t a)
{
    return p + (a - (uintptr_t)p % a) % a;
}
/* Asks for huge pages on the whole 2 MiB pages of [p, p + n) (a hint). */
void ember__hint_huge(void *p, size_t n);
/* Whether a copy from src to dst of more than COPY_PIECE bytes is slow:
 * dst 1-63 bytes past src modulo 4 KiB (Zen 3's rep movsb, util.c). */
#define COPY_PIECE 2048
static inline int ember__copy_slow(uintptr_t dst, uintptr_t src)
{
    uintptr_t d = (dst - src) & 4095;
    return d != 0 && d < 64;
}
void *ember__copy_pieces(void *dst, const void *src, size_t n);
/* memcpy, but in pieces of COPY_PIECE bytes where one call would be slow;
 * inline, so that a per-record copy pays one test. */
static inline void *ember__copy(void *dst, const void *src, size_t n)
{
    if (n <= COPY_PIECE || !ember__copy_slow((uintptr_t)dst, (uintptr_t)src))
        return memcpy(dst, src, n);
    return ember__copy_pieces(dst, src, n);
}
/* pread until n bytes, end of file or an error (EINTR retried): the bytes
 * read, or -1. Reads that would copy slowly (see ember__copy) go through
 * a bounce buffer. */
long long ember__pread_full(int fd, void *buf, size_t n, uint64_t at);
void *ember__calloc(ember_ctx *ctx, size_t n, size_t size);
void *ember__realloc(ember_ctx *ctx, void *ptr, size_t size);
void ember__free(ember_ctx *ctx, void *ptr);
char *ember__strdup(ember_ctx *ctx, const char *s);
/* mkdir -p: dir and its missing parents, mode 0777 less the umask (as
 * mkdir(1) makes them). 0, or -1 with errno set; part (may be NULL, at
 * least PATH_MAX bytes) gets the directory that failed. */
int ember__mkdir_p(const char *dir, char *part);
/* Opens path as a new file, for writing (flags adds to O_WRONLY): what had
 * the name before (a leftover, a symbolic link, one name of a file with
 * others) is unlinked first, never written through. A descriptor, or -1
 * with errno set. */
int ember__open_new(const char *path, int flags);
/* Whether errno e says the caller may not write there (EACCES, EPERM,
 * EROFS): a directory it named, not a failing disk. */
int ember__denied(int e);
/* The directory that holds path ("." for a bare name, "/" for "/x"); a
 * trailing '/' does not count. */
void ember__parent_dir(const char *path, char *buf, size_t size);
/* fsync of a directory (after a rename in it): 0, or -1 with errno set; a
 * file system that cannot sync directories counts as done. */
int ember__fsync_dir(const char *path);
/* n * size, or SIZE_MAX when it overflows (malloc then fails cleanly). */
size_t ember__mul(size_t n, size_t size);

/* Shows each control byte of s but a tab (a newline in a file's name,
 * say) as '?': a message is one line. */
void ember__one_line(char *s);
/* Fills msg (if not NULL) printf-style, one line, and returns status. */
int ember__err(char *msg, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void ember__msg_clear(char *msg)
{
    if (msg)
        msg[0] = '\0';
}
void ember__stat_add(ember_ctx *ctx, uint64_t *field, uint64_t v);
/* Adds (sign > 0) or subtracts v from a size_t gauge of ctx->stats. */
void ember__stat_gauge(ember_ctx *ctx, size_t *field, int sign, size_t v);

/* Runs fn(state, i, msg) for i in [lo, hi) on the team (at most one thread
 * per task, dynamic scheduling). Tasks above a failed one are skipped, and
 * the failure of the lowest i is returned with its message (and index in
 * *failed_at, may be NULL): errors are as deterministic as results. */
typedef int (*ember__task_fn)(void *state, size_t i, char *msg);
/* Called from inside one of its own tasks (an action or broadcast in a
 * user function, which ember.h forbids: it ran nested, and raced with a
 * pending checkpoint's files), it runs nothing and returns EMBER_ESTATE;
 * ember__parallel_misused then tells the task's thread, once. */
int ember__parallel(ember_ctx *ctx, size_t lo, size_t hi, ember__task_fn fn,
                    void *state, size_t *failed_at, char *msg);
int ember__parallel_misused(void);
/* EMBER_OK outside ember__parallel's tasks; inside one, the refusal above,
 * naming what: the public actions and ember_broadcast ask first, before
 * any work or collective (a broadcast of an array, or a collect of cached
 * blocks, never reaches ember__parallel). */
int ember__not_in_task(const char *what, char *msg);

/* A growable array of records. */
typedef struct {
    unsigned char *data;
    size_t n;     /* records held */
    size_t cap;   /* records of room */
    size_t size;  /* bytes per record */
} ember__buf;

int ember__buf_reserve(ember_ctx *ctx, ember__buf *b, size_t nrec);
int ember__buf_append(ember_ctx *ctx, ember__buf *b, const void *recs,
                      size_t n);
void ember__buf_free(ember_ctx *ctx, ember__buf *b);
/* Gives back the room past b's records (when the C library can), so a
 * block stored from it holds the bytes the store counts. */
void ember__buf_fit(ember_ctx *ctx, ember__buf *b);

/* A set of dataset ids, for the walks of a lineage: its room grows with
 * the datasets walked, not with every id the context ever gave (a bitmap
 * of those was allocated and zeroed on every walk, so a loop slowed down
 * with its iterations: 100k a second at first, 2.7k after 3 million). */
typedef struct {
    uint64_t *slot; /* 0: free (ids start at 1) */
    size_t cap;     /* a power of two, or 0 */
    size_t n;
} ember__idset;

/* Adds id: 1 if it was new, 0 if it was there, EMBER_ENOMEM. */
int ember__idset_add(ember_ctx *ctx, ember__idset *s, uint64_t id);
void ember__idset_free(ember_ctx *ctx, ember__idset *s);

/* ---- types (type.c) ----------------------------------------------------- */

/* Compares key field 0 of two records: <0, 0, >0. Floats: -0.0 == 0.0,
 * NaN last. */
int ember__key_cmp(const ember_type *t, const void *a, const void *b);
/* An image of key field 0 that orders as ember__key_cmp does: unsigned
 * comparison of the images gives its result (-0.0 and 0.0, and every NaN,
 * have one image each). */
uint64_t ember__key_order(const ember_type *t, const void *rec);
/* A 64-bit hash of key field 0, consistent with ember__key_cmp equality. */
uint64_t ember__key_hash(const ember_type *t, const void *rec);
/* ember__key_order and ember__key_hash of n records into out, with the
 * key's kind looked at once: a shuffle's loops over its records. */
void ember__key_orders(const ember_type *t, const void *recs, size_t n,
                       uint64_t *out);
void ember__key_hashes(const ember_type *t, const void *recs, size_t n,
                       uint64_t *out);
static inline uint64_t ember__hash64(uint64_t x)
{
    /* splitmix64's finaliser: a bijection with good avalanche. Inline: a
     * hash table of keys calls it for every record. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}
/* Record type of zip/join outputs: a's fields then b's (skip_b_key drops
 * b's field 0). */
int ember__type_concat(ember_type *out, const ember_type *a,
                       const ember_type *b, int skip_b_key, char *msg);
/* Fails unless field 0 is a scalar usable as a key. */
/* 1 when t is a type the constructors could have made: a known class,
 * 1..EMBER_MAX_FIELDS fields of known kinds, each inside the record, named
 * with a terminated string. Every dataset's type is checked so (a type
 * edited by hand would make the kernels read past records). */
int ember__type_ok(const ember_type *t);
int ember__type_check_key(const ember_type *t, const char *op, char *msg);
/* Element-wise sum of n records into acc, fields from first_field on:
 * each element a chain in record order. */
void ember__sum_records(const ember_type *t, const void *recs, size_t n,
                        void *acc, uint32_t first_field);
/* The same in two steps, the plan made once for many calls. */
typedef struct {
    uint32_t off, count;
    ember_scalar kind;
} ember__sum_run;
typedef struct {
    uint32_t n;
    size_t size;
    ember__sum_run run[EMBER_MAX_FIELDS];
} ember__sum_runs;
void ember__sum_plan(const ember_type *t, uint32_t first_field,
                     ember__sum_runs *plan);
void ember__sum_planned(const ember__sum_runs *plan, const void *recs,
                        size_t n, void *acc);

/* ---- datasets (ds.c) ------------------------------------------------------ */

typedef enum {
    EMBER__RANGE,
    EMBER__ARRAY,
    EMBER__MAP,
    EMBER__FILTER,
    EMBER__FLAT_MAP,
    EMBER__MAP_PARTITIONS,
    EMBER__ZIP,
    EMBER__UNION,
    EMBER__SAMPLE,
    EMBER__SHUFFLE,
    EMBER__CHECKPOINT /* lineage replaced by stored partitions */
} ember__op;

typedef enum {
    EMBER__SH_REDUCE,
    EMBER__SH_GROUP,
    EMBER__SH_JOIN,
    EMBER__SH_HASH,
    EMBER__SH_RANGE,
    EMBER__SH_DISTINCT,
    EMBER__SH_SORT,
    EMBER__SH_REPARTITION
} ember__shuffle_kind;

struct ember_ds {
    ember_ctx *ctx;
    uint64_t id;
    ember__op op;
    char name[64];
    ember_type type;
    size_t nparts;
    int refs;              /* the caller's handle + children + broadcasts */
    int user_handle;       /* 1 while the caller still holds its handle */
    ember_ds *parent[2];
    ember_bcast **uses;    /* broadcasts read by this dataset's functions */
    size_t nuses;
    ember_ds *prev, *next; /* ctx registry */
    size_t held_bytes;     /* records the node owns (stats.dataset_bytes) */

    union {
        struct {
            int64_t start, step;
            uint64_t n;
        } range;
        struct {
            const unsigned char *data;
            size_t n;
            void *owned;   /* freed with the dataset (records or NULL) */
            void *keep;    /* an extra buffer freed with it (text) */
            size_t keep_size;
            uint64_t *offsets; /* nparts + 1 partition starts, or NULL for
                                  an even split; owned */
        } array;
        struct {
            void *fn;      /* ember_map_fn / filter_fn / emit_fn */
            void *arg;     /* the node's copy, or the caller's (borrowed) */
        } f;
        struct {
            double fraction;
            uint64_t seed;
        } sample;
        struct {
            ember__shuffle_kind kind;
            ember_combine_fn fn;
            void *arg;     /* as u.f.arg */
            int descending;
            int done;      /* outputs are in the block store */
        } shuffle;
    } u;

    ember_level level;     /* persistence asked for */
    int loop_kept;         /* persisted by a loop, not the caller (loop.c,
                              cut_lineages): the caller's persist replaces it */
    unsigned char *stored_once; /* per partition: was it ever computed and
                                   offered to the store? (recomputes) */
    /* checkpoint state (checkpoint.c fills these in) */
    int ckpt_state;        /* 0 none, 1 marked, 2 written */
    int ckpt_eager;
    char *ckpt_path;
    uint64_t *ckpt_offsets; /* partition offsets of the written file */
    int *cut_owner;         /* MPI, a local checkpoint of a union: the rank
                               that holds each partition (where the union
                               placed it), kept when the lineage is cut */
    unsigned char *ckpt_head; /* its checksum header (EMBER__FSUM_BLOCK
                                 bytes) as written: every read proves the
                                 file is still that one */
    uint64_t ckpt_size;     /* and its size */
    uint64_t ckpt_verified; /* the ctx->passes that last hashed the file */
    ember__buf *ckpt_parts; /* marked: partitions captured by actions */
    unsigned char *ckpt_have;
    size_t ckpt_bytes;     /* bytes captured (stats.dataset_bytes) */
};

/* Partition p of n records split in P: [n*p/P, n*(p+1)/P). */
static inline size_t ember__part_lo(size_t n, size_t P, size_t p)
{
    return (size_t)(((unsigned __int128)n * p) / P);
}
size_t ember__default_partitions(const ember_ctx *ctx, size_t nbytes);

/* Creates a node with one reference held by the caller. Takes a reference
 * on each non-NULL parent. */
int ember__ds_new(ember_ds **out, ember_ctx *ctx, ember__op op,
                  const ember_type *type, size_t nparts, ember_ds *p0,
                  ember_ds *p1, char *msg);
/* The same for a node whose user function takes an arg (one parent, p0).
 * arg_size > 0: arg_size bytes at arg are copied into the node's own
 * allocation (aligned for any type, freed with the node), the node uses
 * every live broadcast a pointer-aligned word of the copy names (its handle
 * or an address in its records), and *arg_out is the copy. arg_size 0:
 * *arg_out is arg itself, borrowed. */
int ember__ds_new_fn(ember_ds **out, ember_ctx *ctx, ember__op op,
                     const ember_type *type, size_t nparts, ember_ds *p0,
                     void *arg, size_t arg_size, void **arg_out, char *msg);
/* An array-backed source that takes ownership of `records` (allocated with
 * the ctx allocator) and of `keep` (NULL allowed): both are freed with the
 * dataset, or at once on failure. */
int ember__array_source(ember_ds **out, ember_ctx *ctx, const ember_type *t,
                        void *records, size_t n, size_t partitions, void *keep,
                        size_t keep_size, const char *name, char *msg);
/* 1 when offsets[0..nparts] start at 0, never decrease and end at n. */
int ember__offsets_cover(const uint64_t *offsets, size_t nparts, size_t n);
/* The same with given partition boundaries (offsets: nparts + 1 entries,
 * from 0 to n, non-decreasing; taken over like records). A restored
 * checkpoint keeps the partitioning it was written with, so results after a
 * resume are bit-identical. */
int ember__array_source_offsets(ember_ds **out, ember_ctx *ctx,
                                const ember_type *t, void *records, size_t n,
                                uint64_t *offsets, size_t nparts,
                                const char *name, char *msg);
/* Bounds of partition p of an array source. */
void ember__array_bounds(const ember_ds *ds, size_t p, size_t *lo, size_t *hi);
void ember__ds_unref(ember_ds *ds);
/* ctx_destroy: frees every dataset and broadcast without following
 * references (everything goes). */
void ember__destroy_all(ember_ctx *ctx);
/* Cuts ds off its lineage: drops its references to its parents and to the
 * broadcasts it uses. Whatever only ds kept alive is freed now (nodes,
 * their stored blocks and shuffle outputs, broadcast copies); what a live
 * handle or another dataset holds stays. */
void ember__ds_cut(ember_ds *ds);
/* Frees a marked dataset's captured partitions (checkpoint state 1). */
void ember__ds_drop_captured(ember_ds *ds);
/* Drops one reference to a broadcast (its dataset's, or the caller's). */
void ember__bcast_unref(ember_bcast *bc);
/* 1 when partitions of ds are produced without running its parents: a
 * source, a written checkpoint, or a shuffle whose outputs are stored. */
int ember__is_root(const ember_ds *ds);
/* ds and every dataset it descends from, oldest first (ids grow from
 * parents to children, so that is a topological order), walking no further
 * up than a node for which stop (may be NULL) is true: it is listed, its
 * parents are not. A loop, not recursion. *out is a ctx allocation. */
int ember__ancestors(ember_ds *ds, int (*stop)(const ember_ds *),
                     ember_ds ***out, size_t *n);

struct ember_bcast {
    ember_ctx *ctx;
    ember_ds *ds;          /* a view's array source (a reference); NULL for
                              a copy, which needs nothing of its source, so
                              a state carried through broadcasts
                              (x = map(y, broadcast(x))) keeps no older one */
    uint64_t source_id;    /* the dataset it was made from, for lineage */
    ember_type type;
    const void *data;
    size_t n;
    void *owned;           /* the collected array, or NULL for a view */
    size_t charged;        /* bytes counted against the memory budget */
    int refs;              /* the caller's handle + datasets that use it */
    int user_handle;
    ember_bcast *prev, *next;
};
const char *ember__op_name(const ember_ds *ds);

/* ---- executor (exec.c) ---------------------------------------------------- */

/* Runs ds partition by partition on the team. For each partition, sink is
 * called (on the task's thread) with successive blocks of its records, then
 * once with n == 0 and last == 1.
 * Under MPI (comm.h) it is collective: every rank runs the unfinished
 * shuffles of ds's lineage together, then only the partitions it owns
 * (ember__owners), and the ranks agree on the outcome: every rank returns
 * the status and message of the lowest failed partition. The sink sees
 * owned partitions only; the caller gathers what it needs. */
typedef int (*ember__sink_fn)(void *state, size_t part, const void *recs,
                              size_t n, int last);
/* For a sink that fails with a message of its own: returns what the sink
 * returns, and the run fails with status and the message. */
#define EMBER__SINK_SAID (-1000)
int ember__sink_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ember__run(ember_ds *ds, ember__sink_fn sink, void *state, char *msg);
/* The same for an action whose sink returns its user function's status
 * (what: "foreach", "reduce", ...): any non-zero return is EMBER_EUSER,
 * msg naming the action, the dataset and the value, as a map's failure. */
int ember__run_user(ember_ds *ds, const char *what, ember__sink_fn sink,
                    void *state, char *msg);
/* The same for partitions [lo, hi) only. */
int ember__run_parts(ember_ds *ds, size_t lo, size_t hi, ember__sink_fn sink,
                     void *state, char *msg);
/* Computes every partition of ds into one buffer per partition (parts[p],
 * allocated with the ctx allocator, n records each). Under MPI every rank
 * ends up with every partition (an all-gather in partition order). */
int ember__materialize(ember_ds *ds, ember__buf **parts, char *msg);
/* The same into parts (ds->nparts buffers, zeroed or kept from an earlier
 * call: their room is reused, so a repeated snapshot touches no fresh
 * memory). One process only. The caller frees with ember__parts_free. */
int ember__materialize_into(ember_ds *ds, ember__buf *parts, char *msg);
/* Whether ds is an array source whose records can be copied straight from
 * its array (one process, not being checkpointed). */
int ember__copyable_array(const ember_ds *ds);
/* Such a dataset's records into c (laid out for them and filled) and its
 * partition offsets into off (nparts + 1), copied on the team: a
 * checkpoint's snapshot that the writer puts in the file as it lies. */
typedef struct ember__chunks ember__chunks;
int ember__materialize_chunks(ember_ds *ds, ember__chunks *c, uint64_t *off,
                              char *msg);
/* The same without the gather: under MPI only the partitions this rank
 * owns are filled, the others are empty. Serially the same as above. */
int ember__materialize_owned(ember_ds *ds, ember__buf **parts, char *msg);
/* EMBER_ENOMEM for an allocation sized by ds's partitions, saying so. */
int ember__parts_nomem(const ember_ds *ds, char *msg);
/* Which rank holds each partition of ds: *owner NULL serially, else a ctx
 * allocation of ds->nparts ranks. The block map of the node ds's
 * partitioning comes from (narrow steps keep their parent's partitions),
 * except through a union, whose partitions stay where its parents' are:
 * nothing a rank computes needs a shuffle output another rank holds. */
int ember__owners(ember_ds *ds, int **owner, char *msg);
/* ember__parallel over the i of [lo, hi) this rank holds: owner[i] is
 * its rank (NULL: the block map of hi partitions, with lo == 0). Serially
 * plain ember__parallel. Under MPI collective: every rank returns the
 * status and message of the lowest failed i, and *failed_at (may be NULL)
 * is that i on every rank. */
int ember__parallel_owned(ember_ctx *ctx, size_t lo, size_t hi,
                          const int *owner, ember__task_fn fn, void *state,
                          size_t *failed_at, char *msg);
void ember__parts_free(ember_ctx *ctx, ember__buf *parts, size_t nparts);

/* ---- actions (actions.c) ------------------------------------------------ */

/* Computes ds window by window and hands each partition's records to fn
 * in partition order, on the caller's thread (so fn may do I/O, HDF5
 * included). offsets[0..nparts] get the partition starts. Memory stays
 * O(window), not O(dataset). */
typedef int (*ember__part_fn)(void *state, size_t part, const void *recs,
                              size_t n, char *msg);
int ember__run_ordered(ember_ds *ds, ember__part_fn fn, void *state,
                       uint64_t *offsets, char *msg);
/* File creation properties with the EMBER__FSUM_BLOCK user block, for
 * files that are sealed (ember__fsum_seal) after closing; -1 on failure. */
int64_t ember__h5_fcpl(void);
/* Creates the groups above path in fid that are missing, without object
 * time stamps (as ember__h5_fcpl's root and ember's datasets): the same
 * data then gives the same bytes. 0, or -1 (HDF5's error stack says). */
int ember__h5_parents(int64_t fid, const char *path);
/* The descriptor HDF5 reads the file of object obj through (the sec2
 * driver's), or -1 for another driver. With read_only, -1 also when the
 * file is open for writing in this process (HDF5 may hold raw data not
 * yet written: a read must go through HDF5). */
int ember__h5_sec2_fd(int64_t obj, int read_only);
/* EMBER_EFORMAT naming where when the object at path of fid (a dataset,
 * or a group and everything under it) has data outside fid: reached
 * through an external link, in external raw storage, or virtual; an
 * object that does not open is left to its reader. Under the HDF5 lock. */
int ember__h5_data_inside(int64_t fid, const char *path, const char *where, char *msg);
/* Tests: how many whole-dataset reads went by preads (contiguous data). */
extern unsigned long ember__h5_contiguous_reads;
/* Reads a whole dataset of an already open (and verified) file. */
int ember__h5_read_fid(ember_ctx *ctx, int64_t fid, const char *file,
                       const char *path, ember_type *type, void **data,
                       size_t *n, char *msg);

/* ---- shuffles (shuffle.c) ------------------------------------------------- */

/* Computes a shuffle node's output partitions into the block store (level
 * MEMORY_AND_DISK, so they spill rather than vanish) and sets done. */
int ember__shuffle_run(ember_ds *ds, char *msg);

/* ---- block store (store.c) ------------------------------------------------ */

/* Blocks are keyed by (dataset id, partition). All calls are thread-safe.
 * The store counts its bytes against ctx->budget and evicts unpinned blocks
 * in LRU order when a put needs room: MEMORY_ONLY and MEMORY_ONLY_SER
 * blocks are dropped (the caller recomputes them), *_AND_DISK blocks are
 * written to the spill dir. Like Spark, a put never evicts blocks of its own
 * dataset: a block that would need that is refused or goes to disk instead.
 * DISK_ONLY blocks go straight to disk. The _SER levels byte-shuffle the
 * records (stride = record size) then zstd-compress them, in memory and on
 * disk. */
int ember__store_create(ember_ctx *ctx, char *msg);
void ember__store_destroy(ember_ctx *ctx);
/* Takes ownership of data (nrec * recsize bytes, ctx allocator) whatever
 * happens. Returns EMBER_OK when stored, EMBER_NOTCACHED when a
 * memory-only block could not get room (it is dropped), an error when a
 * disk write failed. Replaces an existing block of the same key. */
int ember__store_put(ember_ctx *ctx, uint64_t ds_id, size_t part, void *data,
                     size_t nrec, size_t recsize, ember_level level,
                     char *msg);
typedef struct {
    const void *data;
    size_t n;
    void *owned_;  /* internal: a decompressed or read-back copy */
    void *entry_;  /* internal: pinned entry */
} ember__view;
/* EMBER_OK with a view (pinned until released; raw memory blocks are not
 * copied), EMBER_NOTCACHED when absent. A block read back from its spill
 * file is checked against the XXH3-64 taken when it was written: a file
 * gone, of the wrong size or failing the hash is EMBER_ECORRUPT (a read
 * error EMBER_EIO), msg naming the file, and the damaged bytes are never
 * returned. The block stays: the caller decides whether it is lost
 * (ember__store_drop_part, then recompute it) or was the only copy. */
int ember__store_get(ember_ctx *ctx, uint64_t ds_id, size_t part,
                     ember__view *v, char *msg);
/* Frees one block (the lost one of a failed get), in memory and on disk. */
void ember__store_drop_part(ember_ctx *ctx, uint64_t ds_id, size_t part);
/* Drops the dataset's spilled blocks whose files are gone or of the wrong
 * size (a stat each, no read), so that a count of its blocks tells what is
 * really there (a shuffle's outputs are then made again). */
void ember__store_drop_missing(ember_ctx *ctx, uint64_t ds_id);
void ember__store_release(ember_ctx *ctx, ember__view *v);
/* A freed block's memory of exactly `bytes`, kept for reuse (its contents
 * are garbage), or NULL: allocate. */
void *ember__store_take_room(ember_ctx *ctx, size_t bytes);
int ember__store_has(ember_ctx *ctx, uint64_t ds_id, size_t part);
size_t ember__store_count(ember_ctx *ctx, uint64_t ds_id);
/* 1 if every partition of ds this rank holds is stored (persisted and
 * computed), 0 if not, or an error (checkpoint.c). */
int ember__stored_whole(ember_ds *ds, char *msg);
/* Records in the stored blocks of the dataset, in memory or on disk. */
size_t ember__store_records(ember_ctx *ctx, uint64_t ds_id);
/* Bytes of the budget neither resident blocks nor charges hold. */
size_t ember__store_room(ember_ctx *ctx);
/* Frees every block of the dataset, in memory and on disk. */
void ember__store_drop(ember_ctx *ctx, uint64_t ds_id);
/* Moves every stored block of the dataset to `level` without touching its
 * bytes: MEMORY_ONLY -> MEMORY_AND_DISK, MEMORY_ONLY_SER ->
 * MEMORY_AND_DISK_SER; a block held in the other form (raw or serialized:
 * a shuffle's output kept raw under a _SER dataset) takes level's twin of
 * its form, and only DISK_ONLY for serialized bytes is EINVAL. A local
 * checkpoint keeps what is cached this way instead of computing it
 * again. */
int ember__store_relevel(ember_ctx *ctx, uint64_t ds_id, ember_level level);
/* Charges bytes held outside the store (broadcasts) against the budget,
 * evicting blocks least recently used first to make room. The bytes are
 * charged even when eviction cannot make room: they exist. Release gives
 * them back. Both publish stats.broadcast_bytes. */
int ember__store_charge(ember_ctx *ctx, size_t bytes, char *msg);
void ember__store_release_charge(ember_ctx *ctx, size_t bytes);

/* Byte-shuffle + zstd, used by the store. *dst is a ctx allocation. */
int ember__compress(ember_ctx *ctx, const void *src, size_t nbytes,
                    size_t stride, void **dst, size_t *dst_bytes);
int ember__decompress(ember_ctx *ctx, const void *src, size_t src_bytes,
                      size_t stride, void *dst, size_t nbytes);

/* ---- a mapped input file (mapfile.c) ------------------------------------ */

/* A read-only mapping of a whole file, with data[size] a readable 0.
 * Should the file shrink while it is mapped, reads past its new end give
 * zeros instead of SIGBUS, and ember__map_shrank says so (a process-wide
 * SIGBUS handler, mapfile.c). */
typedef struct {
    const char *data;
    size_t size;
    int slot; /* its guard, or -1 (unguarded) */
    int fd;   /* the file, kept open to see its size */
    int64_t mtime_ns, ctime_ns; /* when mapped */
} ember__mapped;
/* Errors name path: EMBER_ENOTFOUND, EMBER_EFORMAT (not a regular file),
 * EMBER_EEMPTY, EMBER_EIO. */
int ember__map_file(ember__mapped *m, const char *path, char *msg);
/* The same for the file open as fd, which the mapping then owns (closed
 * by ember__unmap_file, or here on an error); path names it in errors. */
int ember__map_fd(ember__mapped *m, int fd, const char *path, char *msg);
/* 1 once a read of the mapping found the file shorter than mapped, or
 * the file is shorter now. */
int ember__map_shrank(const ember__mapped *m);
/* 1 when the file shrank, or was written or changed since it was mapped
 * (its size, modification or change time differ). */
int ember__map_changed(const ember__mapped *m);
void ember__unmap_file(ember__mapped *m);

/* Bytes [at, at + len) of the file open as fd, mapped read-only under a
 * read lease on a description of its own (mapfile.c says what a lease
 * keeps): 1, or 0 when no lease was granted (the caller reads the bytes
 * instead). Check, once it is held, that the file is still the one the
 * bytes were verified as: a change before the lease is not held off. */
typedef struct {
    const void *data; /* the range's first byte */
    void *base;       /* the mapping: whole pages */
    size_t span;
    int fd;           /* the description that holds the lease */
    int slot;         /* its SIGBUS guard, or -1 */
    double held_at;   /* CLOCK_BOOTTIME seconds of the last poll that saw it whole */
    double break_s;   /* the lease break time, less a second */
    int64_t stamp[3]; /* the file's size, mtime and ctime (ns) once leased */
} ember__leased;
int ember__lease_map(ember__leased *l, int fd, uint64_t at, size_t len);
/* Between passes over the bytes: EMBER__LEASE_HELD, the bytes are those
 * mapped; EMBER__LEASE_BREAKING, someone waits to write or truncate the
 * file, and the bytes stay those mapped for *left more seconds, in which
 * the caller copies what it needs, polls again to see that they stayed,
 * and calls ember__lease_unmap; EMBER__LEASE_LOST, they may have changed
 * (the break time ran out since the last poll that saw the lease whole,
 * the file shrank, or, the lease broken, its size or times moved since
 * the map). */
enum { EMBER__LEASE_HELD, EMBER__LEASE_BREAKING, EMBER__LEASE_LOST };
int ember__lease_poll(ember__leased *l, double *left);
/* Unmaps and lets go of the lease (a waiting writer goes on). */
void ember__lease_unmap(ember__leased *l);
/* A read lease on the description fd (opened read-only) when its file
 * system is one where a lease holds off every writer, without a signal
 * to follow a break: 1 when held, -1 when the file is open for writing
 * (EAGAIN), 0 otherwise. ember__lease_whole: 1 while no break has begun.
 * Closing fd lets go. */
int ember__lease_take(int fd);
int ember__lease_whole(int fd);

/* ---- whole-file checksum (filesum.c) ------------------------------------- */

/* Every HDF5 file ember writes starts with a user block of this many bytes
 * (ember__h5_fcpl), which holds the checksum header once it is sealed. */
#define EMBER__FSUM_BLOCK 512
/* Returned (positive) by ember__fsum_check for a file without the header. */
#define EMBER__FSUM_NONE 1
/* Writes the header into the user block of a closed HDF5 file: its length
 * and XXH3 hashes of everything after the block and of the header. The
 * caller fsyncs afterwards. EMBER_EINVAL when the file has no user block,
 * EMBER_EIO on a read or write error. */
int ember__fsum_seal(const char *path, char *msg);
/* The same header, written into the first EMBER__FSUM_BLOCK bytes of a
 * whole file held in memory (length bytes), hashed where it lies: the
 * bytes later written are exactly those sealed. piece, if not NULL, gives
 * the file's bytes in order instead: called with lo (the bytes before it
 * hashed) and *n (at most the bytes left), it returns where the next *n
 * bytes of the file are, after lowering *n (to at least 1) if fewer lie
 * there; the image, or memory the file's writer takes them from. The
 * first 2 EMBER__FSUM_BLOCK bytes must come as one piece in the image.
 * EMBER_EINVAL when the image has no user block. */
int ember__fsum_seal_image(unsigned char *image, size_t length,
                           const unsigned char *(*piece)(void *arg, size_t lo,
                                                         size_t *n),
                           void *arg, char *msg);
/* What O_DIRECT asks of a write on most devices (the logical block): its
 * file offset, length and memory address multiples of this. */
#define EMBER__DIO_MIN ((size_t)512)
/* Checks a file against its header, reading it once, before libhdf5 ever
 * sees it. EMBER_OK: it verifies. EMBER__FSUM_NONE: it has no header (a
 * file of ember 0.1.0 or of another program, or its first bytes are
 * damaged): the caller decides whether that is acceptable. EMBER_ECORRUPT
 * (damaged header, wrong length, content hash mismatch), EMBER_EFORMAT (a
 * newer header version), EMBER_ENOTFOUND, EMBER_EIO, EMBER_EINVAL (not a
 * regular file) otherwise. msg says which, naming the file. */
int ember__fsum_check(const char *path, char *msg);
/* A sealed file's identity: its size and checksum header. The header holds
 * the hash of all the rest, so a file with both the same is the verified
 * one or a copy of it (or damaged since, as any file can be once it has
 * been verified). Unlike a device and inode, it survives an overlayfs
 * copy-up when the file is opened for writing. */
typedef struct {
    uint64_t size;
    unsigned char head[EMBER__FSUM_BLOCK];
} ember__file_id;
/* ember__fsum_check, and the identity of the file it verified (when it
 * returns EMBER_OK; id may be NULL). */
int ember__fsum_check_id(const char *path, ember__file_id *id, char *msg);
/* 1 when the file open as fd is sealed and was verified by this process,
 * unchanged since (its stamp as remembered: see the top of filesum.c); reads
 * its first block only. */
int ember__fsum_vouched(int fd);
/* 1 when the file at path is an HDF5 file with no checksum header at all
 * (a checkpoint of ember 0.1.0, or another program's file), as
 * ember__fsum_check tells it from a damaged header; reads the first block
 * only. */
int ember__fsum_unsealed_hdf5(const char *path);
/* After a failed check of an input (not a checkpoint, which is never read
 * unsealed): how a file edited on purpose is read, added to msg. */
void ember__fsum_edit_hint(int rc, char *msg);
/* H5Fopen (under the HDF5 lock) of a file whose checksum was checked, id
 * the identity of the file checked (NULL: a file without the header,
 * opened as it is). When HDF5 opened another file (one renamed over the
 * name since), it is closed again: -1, *replaced set. HDF5's driver must
 * be sec2 to tell; under another (MPI-IO) the file is trusted. */
int64_t ember__h5_open_checked(const char *file, unsigned mode, int64_t fapl,
                               const ember__file_id *id, int *replaced);
/* Fills msg for a file ember__h5_open_checked found replaced:
 * EMBER_ECORRUPT. */
int ember__h5_replaced(const char *file, char *msg);
/* Fills msg for a file with HDF5's signature that H5Fopen refused, with
 * HDF5's reason (call it before any other HDF5 call): for reading,
 * EMBER_ECORRUPT (a truncated or damaged file without ember's checksum),
 * or EMBER_EHDF5 when its checksum verified it whole; for writing,
 * EMBER_EIO. */
int ember__h5_unopened(const char *file, unsigned mode, int verified, char *msg);
/* Fills msg with "where: what (cause)", the cause from HDF5's error stack
 * (strerror first when HDF5 recorded an errno: "No space left on device"),
 * and returns status. Call it before any other HDF5 call. */
int ember__h5_fail(char *msg, int status, const char *where, const char *what);
/* Tests: called with the file's name by ember__h5_open_checked just
 * before H5Fopen (NULL: nothing). */
extern void (*ember__h5_opening_hook)(const char *file);
/* Tests only: when set, ember_h5_write_array's and ember_h5_write_attrs'
 * attributes fail to be written (a failure once the data is written). */
extern int ember__h5_attrs_fail;
/* HDF5's 8-byte file signature (at byte 0, 512, 1024, ... of a file). */
extern const unsigned char ember__hdf5_sig[8];
/* Tests: how many checks ember__fsum_check skipped because
 * ember_file_hash had verified the unchanged file; forgetting those files
 * and setting how long before the hash a file must have last changed to
 * be remembered (2e9 ns by default). */
unsigned long ember__fsum_memo_hits(void);
void ember__fsum_memo_clear(long long age_ns);
/* Tests: how many whole files ember__fsum_check has hashed to verify. */
unsigned long ember__fsum_checks_hashed(void);
/* Tests: called on the hashing thread after each piece (1 MiB) that a
 * pass over a mapped file fed to a hash (filesum.c, hash_mapped). */
extern void (*ember__fsum_piece_hook)(uint64_t piece);

/* ---- HDF5 layer (h5io.c) --------------------------------------------------- */

/* The serial HDF5 library is not thread-safe and is process-wide: every
 * HDF5 call in ember happens under this one lock. */
void ember__h5_lock(void);
void ember__h5_unlock(void);
/* "file.h5:/a/b" -> file and path ("" when absent). */
int ember__h5_split_spec(const char *spec, char *file, size_t file_size,
                         char *path, size_t path_size, char *msg);
/* EMBER_OK when path can name a new dataset: it starts with '/', is not
 * the root "/", has no empty name ("//", a trailing '/') and no name
 * starting with ".ember-unfinished." (ember's unfinished writes); else
 * EMBER_EINVAL with a message that starts with where. */
int ember__h5_check_path(const char *where, const char *path, char *msg);
/* EMBER_EINVAL, naming where, when path (a dataset to write, or an object
 * whose attributes are to be written; "" is the root) is /csr or lies
 * under it, by any name, in an ember graph file (its /csr group carries
 * the format attribute or the pull layout: docs/formats.md), which
 * ember_graph_save_h5 writes whole: the pull layout stored beside the CSR,
 * which a sealed file's loader takes as it is, must stay the CSR's. Under
 * the HDF5 lock. */
int ember__h5_graph_guard(int64_t loc, const char *path, const char *where,
                          char *msg);
/* Whether a dataset may be created at path in loc (an open file or group):
 * EMBER_OK with *replace = 0 when nothing is there, *replace = 1 when a
 * dataset is there and overwrite is set (the caller deletes it);
 * EMBER_EINVAL, naming where, for a dataset without overwrite, for any
 * other object (a group is never replaced: its link's deletion would take
 * all it holds) and for a path through a non-group. Under the HDF5 lock. */
int ember__h5_slot(int64_t loc, const char *path, int overwrite, int *replace,
                   const char *where, char *msg);
/* Datasets that appear whole or not at all: a writer creates its dataset
 * at the temporary link ember__h5_tmp_path gives (".ember-unfinished.NAME"
 * in the same group; 0, or -1 when it does not fit in size), after
 * ember__h5_tmp_clear deleted a killed write's leftover there (a dataset;
 * anything else there is EMBER_EINVAL), marks it with ember__h5_mark (0 or
 * -1) and, once it is complete, ember__h5_commit deletes the dataset it
 * replaces (replace, from ember__h5_slot), moves it to path and removes
 * the mark. Readers refuse a marked dataset (EMBER_ECORRUPT) and a root
 * scan skips it. Under the HDF5 lock. */
int ember__h5_tmp_path(const char *path, char *tmp, size_t size);
int ember__h5_tmp_clear(int64_t loc, const char *tmp, const char *where,
                        char *msg);
int ember__h5_mark(int64_t dset);
/* The attribute that marks a dataset unfinished (ember__h5_mark): no
 * caller's attribute may take its name. */
#define EMBER__H5_MARK "ember_unfinished"
/* The longest attribute name ember_h5_write_array and ember_h5_write_attrs
 * take (libhdf5 fails on names of about 64 KiB, and leaks doing so). */
#define EMBER__H5_ATTR_NAME_MAX 4096
int ember__h5_commit(int64_t loc, int64_t dset, const char *tmp,
                     const char *path, int replace, const char *where,
                     char *msg);
/* A change of an existing or new HDF5 file by name, whole or not at all
 * (h5edit.c): ember__h5_edit_begin names in e->work the file to open in
 * its place, a copy of file when e->existing (open it read-write), a new
 * empty one otherwise (fresh, or no file: create it with H5F_ACC_TRUNC);
 * a scratch file (ember_h5_scratch) is its own work, never reached
 * through a symbolic link, and made (O_EXCL) when it is not there, to be
 * deleted again if the change fails. ember__h5_edit_end,
 * once HDF5 closed work (and it was sealed), puts it at file when rc is
 * EMBER_OK, else deletes it; either way it returns the status, msg naming
 * file where it named work. Neither under the HDF5 lock: begin may wait
 * for another change of the file. */
typedef struct {
    char file[PATH_MAX];     /* the file changed (a symbolic link followed) */
    char work[PATH_MAX + 48];
    int existing;            /* work holds file's bytes */
    int lock;                /* file, opened and locked; -1 */
    int unlocked;            /* ... but its file system has no locks */
    int made;                /* a scratch file this change created */
    struct stat st;          /* file's, when locked */
} ember__h5_edit;
int ember__h5_edit_begin(ember__h5_edit *e, const char *file, int fresh,
                         char *msg);
int ember__h5_edit_end(ember__h5_edit *e, int rc, char *msg);
/* Whether e changes its file in place (a scratch file): a failed change
 * must then still leave the file sealed, where a copy is only deleted. */
int ember__h5_edit_in_place(const ember__h5_edit *e);
/* Reads a whole dataset; *data is a ctx allocation of *n records. */
int ember__h5_read_all(ember_ctx *ctx, const char *file, const char *path,
                       ember_type *type, void **data, size_t *n, char *msg);
/* HDF5's Fletcher32 checksum of len bytes (the same bits as its filter). */
uint32_t ember__fletcher32(const void *data, size_t len);
/* The same in steps: _blocks for any even len, any number of times, then
 * _end for the rest, starting from {0, 0}. _copy is _blocks that also
 * copies the bytes to `to` (not overlapping data), reading them once. */
typedef struct {
    uint32_t sum1, sum2;
} ember__f32;
void ember__fletcher32_blocks(ember__f32 *s, const void *data, size_t len);
void ember__fletcher32_copy(ember__f32 *s, void *to, const void *data, size_t len);
uint32_t ember__fletcher32_end(ember__f32 *s, const void *data, size_t len);
typedef struct ember__h5w ember__h5w;
/* A chunked, extendible dataset at path in file (created if missing,
 * intermediate groups too). Opens the file read-write (creating it), as
 * an edit (ember__h5_edit_begin: a copy renamed over the file when the
 * writer closes), unless fid >= 0 is given (an open file id the caller
 * keeps). fletcher32 adds
 * checksums; deflate 1..9 adds shuffle + deflate. In a file it opens, the
 * writer is atomic (ember__h5_commit): the records go to a temporary link,
 * moved to path (replacing the dataset there, with overwrite) by a
 * successful ember__h5w_close; ember__h5w_discard, or a failed close,
 * deletes it (and the file, when the writer created it), leaving what was
 * at path. With the caller's fid the dataset is written at path directly
 * (a checkpoint's NAME.tmp is made whole by its rename). */
typedef struct {
    int deflate;
    int fletcher32;
    int overwrite;
    long long fid; /* an open hid_t, or -1 */
    uint64_t expected; /* records expected, 0 if unknown: a small dataset
                          gets a small chunk, not 1 MiB on disk */
    ember__buf *scratch; /* NULL, or the caller's buffer (bytes: size 1)
                            for the chunk being filled, grown here and
                            kept by the caller: a writer run again and
                            again faults in no fresh pages for it */
} ember__h5w_opts;
int ember__h5w_open(ember_ctx *ctx, ember__h5w **w, const char *file,
                    const char *path, const ember_type *type,
                    const ember__h5w_opts *opts, char *msg);
int ember__h5w_append(ember__h5w *w, const void *recs, size_t n, char *msg);
/* Records laid out as the writer's chunks, so that it writes each chunk
 * from where it lies, with no copy: chunk i (records [i * chunk, ...)) at
 * slots + i * stride, zeros after the last record to the chunk's end,
 * then the chunk's Fletcher32 (4 bytes, little-endian, as HDF5's filter
 * appends it). */
struct ember__chunks {
    ember__buf mem;  /* the allocation (bytes: size 1), kept from one use to
                        the next */
    unsigned char *slots; /* in it, aligned to EMBER__DIO_MIN: the slots */
    size_t n;        /* records */
    size_t chunk;    /* records a chunk: ember__h5_chunk_records(recsize, n) */
    size_t recsize;
    size_t stride;   /* bytes from a chunk to the next (a multiple of
                        EMBER__DIO_MIN, so that a file can take a chunk
                        where it lies, with O_DIRECT) */
};
/* The records a chunk of the streaming writer holds, for expected records. */
size_t ember__h5_chunk_records(size_t recsize, uint64_t expected);
/* Lays c out for n records (its room grown, never shrunk; the records
 * are then filled, every chunk). */
int ember__chunks_layout(ember_ctx *ctx, ember__chunks *c, size_t recsize,
                         size_t n);
/* Fills chunk i, in one pass: its records from recs (records
 * [i * chunk, ...) of the whole), zeros to its end, its checksum. Chunks
 * are independent (a snapshot on the team fills a chunk a thread). */
void ember__chunks_fill(ember__chunks *c, size_t i, const void *recs);
/* Writes all of c's records, filled (a writer opened with fletcher32 and
 * no deflate, expected = c->n, nothing appended). */
int ember__h5w_put_chunks(ember__h5w *w, const ember__chunks *c, char *msg);
/* Writes the partition_offsets attribute (nparts + 1 u64) and closes. Also
 * cleans up on error paths: always frees *w. */
int ember__h5w_close(ember__h5w **w, const uint64_t *offsets, size_t nparts,
                     char *msg);
/* Closes a writer whose records are not all there (the caller failed):
 * an atomic writer's dataset is deleted, another's left as it is (no
 * partition_offsets). Always frees *w. */
int ember__h5w_discard(ember__h5w **w);

/* ---- checkpoint files (ckptfile.c) ------------------------------------------ */

/* One checkpoint = one HDF5 file (layout: docs/checkpoint-format.md):
 * root attributes, /datasets/<name> (records, with partition_offsets,
 * ember_type and lineage attributes), /scalars/<name> (1-D numeric arrays,
 * scalars are length 1), /blobs/<name> (u8). Everything chunked with
 * Fletcher32. A writer builds NAME.tmp and commits it atomically; HDF5 file
 * locking is off. All HDF5 calls happen under ember__h5_lock. */
typedef struct {
    const char *kind;        /* "loop" or "dataset" */
    const char *program;
    const char *parameters;
    const char *signature;   /* "name: type" lines of the state bound */
    const char *lineage;     /* free text, may be NULL */
    uint64_t iteration;
    uint64_t fingerprint;
    int deflate;             /* 0, or 1..9 */
} ember__ck_meta;

/* What a reader finds in a file's root attributes (fixed buffers; longer
 * values are cut). */
typedef struct {
    int64_t format_version;
    char kind[16];
    char ember_version[32];
    char program[256];
    char parameters[8192];
    char signature[8192];
    char created[64];
    char lineage[16384];
    uint64_t iteration;
    uint64_t fingerprint;
    int64_t threads;
    int records_forced;   /* the root attribute records_forced is 1: the
                             writer records a resume by force (absent in
                             files of ember 0.1.0) */
} ember__ck_info;

/* The root attributes that differ between writers: the team size and the
 * time. Under MPI they are rank 0's, broadcast (ckptpar.c). */
typedef struct {
    int64_t threads;
    double unix_time;
    char created[64];   /* ISO 8601 UTC */
} ember__ck_stamp;
/* This process's stamp, now. */
void ember__ck_stamp_now(ember_ctx *ctx, ember__ck_stamp *s);
/* Writes the root attributes and creates the three groups in an open file
 * (every rank of a collective write calls it with the same values).
 * 0, or -1 when HDF5 failed. Call under ember__h5_lock. */
int ember__ck_write_root(int64_t fid, const ember__ck_meta *m,
                         const ember__ck_stamp *s);

typedef struct ember__ckw ember__ckw;
/* Starts <dir>/<name>.tmp (dir must exist). */
int ember__ckw_begin(ember_ctx *ctx, ember__ckw **w, const char *dir,
                     const char *name, const ember__ck_meta *meta, char *msg);
/* A checkpoint file built in memory: the buffer is the caller's, kept from
 * one file to the next (its pages are reused), freed by ember__ckimg_free.
 * One writer uses it at a time. */
typedef struct {
    unsigned char *raw; /* the allocation */
    unsigned char *buf; /* the image in it, aligned for O_DIRECT */
    size_t cap;  /* bytes of room at buf */
    size_t len;  /* the file's length */
    ember__buf chunk; /* the chunk buffer of its datasets' writers */
    ember__buf kept;  /* memory the file's writer keeps unchanged until
                         the commit (ember__ckw_keep): {pointer, bytes} */
    ember__buf refs;  /* raw data written from kept memory, not copied yet:
                         {file offset, bytes, source} */
    int no_spans;      /* an O_DIRECT write of spans was refused (a device
                          of 4 KiB sectors): references are copied into the
                          image from then on */
    int refuse_direct; /* tests: O_DIRECT refused, as some file systems
                          do (the buffered fallback is taken) */
    int refuse_spans;  /* tests: an O_DIRECT write of spans fails, as on a
                          device of 4 KiB sectors */
    int core;          /* tests: HDF5's core driver, as where ember's own
                          driver is not built (HDF5 other than 1.10) */
} ember__ckimg;
void ember__ckimg_free(ember_ctx *ctx, ember__ckimg *img);
/* Room for a file of about `bytes` from the start: a file that grows its
 * image step by step would move it, and touch fresh pages each time,
 * several times over. Untouched until written. Call between files (the
 * bytes of the last one are not kept when the room grows). */
int ember__ckimg_reserve(ember_ctx *ctx, ember__ckimg *img, size_t bytes);
/* As ember__ckw_begin, but the file is built in img and only the commit
 * writes it (sealed in memory, then written into <dir>/EMBER__CK_SPARE
 * renamed to <name>.tmp when that exists, else a new <name>.tmp; then
 * fsync, rename, directory fsync as always). */
int ember__ckw_begin_image(ember_ctx *ctx, ember__ckw **w, const char *dir,
                           const char *name, const ember__ck_meta *meta,
                           ember__ckimg *img, char *msg);
/* Says that [data, data + bytes) stays unchanged until w commits or
 * aborts: its large raw writes from there are taken by reference, hashed
 * and written to the file from where they lie, or copied into the image
 * at the seal (no-op for a streamed file; without memory to note it, they
 * are copied as any other). */
void ember__ckw_keep(ember__ckw *w, const void *data, size_t bytes);
/* A retired checkpoint kept (renamed) for the next write into a file built
 * in memory to overwrite: "*.tmp", so a loop's start sweeps it like any
 * unfinished write. */
#define EMBER__CK_SPARE "ckpt-spare.tmp"
/* Its path in dir; -1 when too long. */
int ember__ck_spare(const char *dir, char *path, size_t size);
/* Opens /datasets/<name> for records of type t (expected: a count hint,
 * 0 if unknown). The caller appends partitions in order with
 * ember__h5w_append and closes with ember__h5w_close(offsets). */
int ember__ckw_records(ember__ckw *w, const char *name, const ember_type *t,
                       uint64_t expected, ember__h5w **hw, char *msg);
/* Writes already materialized partitions as /datasets/<name>. */
int ember__ckw_parts(ember__ckw *w, const char *name, const ember_type *t,
                     const ember__buf *parts, size_t nparts, char *msg);
/* Records laid out as chunks (ember__materialize_chunks): as
 * /datasets/<name> with its partition offsets off (nparts + 1), or with
 * off NULL as /scalars/<name> (t a scalar). The same file as appending
 * them. */
int ember__ckw_chunks(ember__ckw *w, const char *name, const ember_type *t,
                      const ember__chunks *c, const uint64_t *off, size_t nparts,
                      char *msg);
/* /scalars/<name>: n numbers of one kind (n >= 1). */
int ember__ckw_scalars(ember__ckw *w, const char *name, ember_scalar kind,
                       const void *data, size_t n, char *msg);
/* /scalars/<name> as a rows x cols 2-D dataset (k x d centroids). */
int ember__ckw_matrix(ember__ckw *w, const char *name, ember_scalar kind,
                      const void *data, size_t rows, size_t cols, char *msg);
/* /blobs/<name>: opaque bytes. */
int ember__ckw_blob(ember__ckw *w, const char *name, const void *data,
                    size_t size, char *msg);
/* Closes, fsyncs, renames NAME.tmp to NAME, fsyncs the directory. On any
 * failure the .tmp is removed and nothing else changes. Frees *w. *bytes
 * (may be NULL) gets the file size; *path_out (may be NULL, >= 1024 bytes)
 * the final path. */
int ember__ckw_commit(ember__ckw **w, uint64_t *bytes, char *path_out,
                      char *msg);
/* Abandons a write: removes the .tmp. Accepts NULL. */
void ember__ckw_abort(ember__ckw **w);
/* Reopens <dir>/<name>.tmp, written and closed by all ranks together
 * (ckptpar.c), for rank 0 to add items and commit it as above. */
int ember__ckw_reopen(ember_ctx *ctx, ember__ckw **w, const char *dir,
                      const char *name, int deflate, char *msg);

/* ---- collective checkpoint files (ckptpar.c) -------------------------------- */

/* Under MPI: rank 0 writes a probe file with a random token into dir and
 * every rank must read that token back, or all fail with EMBER_EINVAL (the
 * directory is not shared by the ranks). Trivial on one rank. */
int ember__ckp_check_shared(ember_ctx *ctx, const char *dir, char *msg);
/* The same file, written by every rank of ctx's communicator together with
 * parallel HDF5 (docs/mpi.md, "Checkpoints on many ranks"). Every call is
 * collective and returns the same status and message on every rank.
 * Begin checks first that every rank sees the NAME.tmp rank 0 created (a
 * directory the ranks do not share is EMBER_EINVAL naming it); the root
 * attributes, meta and stamp, are rank 0's. */
typedef struct ember__ckp ember__ckp;
int ember__ckp_begin(ember_ctx *ctx, ember__ckp **w, const char *dir,
                     const char *name, const ember__ck_meta *meta, char *msg);
/* /datasets/<name>: parts[p] holds partition p's records on the rank that
 * owns it (owner[p], or the block map when owner is NULL), nothing
 * elsewhere. Each rank writes its own records as a hyperslab of the one
 * dataset; only the per-partition counts move between ranks. offsets
 * (may be NULL; nparts + 1 entries) gets the partition offsets written. */
int ember__ckp_parts(ember__ckp *w, const char *name, const ember_type *t,
                     const ember__buf *parts, size_t nparts, const int *owner,
                     uint64_t *offsets, char *msg);
/* Replicated items (every rank holds the same values): recorded, and
 * rank 0's written at the commit by the serial writer (ember__ckw_scalars,
 * _matrix and _blob), after the collective close. data is the caller's
 * and must stay valid until the commit. */
int ember__ckp_scalars(ember__ckp *w, const char *name, ember_scalar kind,
                       const void *data, size_t n, char *msg);
int ember__ckp_matrix(ember__ckp *w, const char *name, ember_scalar kind,
                      const void *data, size_t rows, size_t cols, char *msg);
int ember__ckp_blob(ember__ckp *w, const char *name, const void *data,
                    size_t size, char *msg);
/* Closes the file on every rank; rank 0 reopens it alone, adds the
 * replicated items, seals, fsyncs and renames it and fsyncs the
 * directory; the outcome, size and path are broadcast. Frees *w; on
 * failure the .tmp is removed. */
int ember__ckp_commit(ember__ckp **w, uint64_t *bytes, char *path_out,
                      char *msg);
/* Abandons the write on every rank (collective): closes, removes the .tmp. */
void ember__ckp_abort(ember__ckp **w);

typedef struct ember__ckr ember__ckr;
/* Opens a checkpoint for reading and reads its root attributes. The file's
 * whole-file checksum (filesum.c) is checked first, before libhdf5 parses
 * it: a file without the header, or failing it, is EMBER_ECORRUPT (msg
 * names the file and what failed) and is never opened by HDF5. A file that
 * is not HDF5, truncated, or lacks the attributes is EMBER_ECORRUPT; a
 * newer format_version is EMBER_EFORMAT. */
int ember__ckr_open(ember_ctx *ctx, ember__ckr **r, const char *path,
                    char *msg);
const ember__ck_info *ember__ckr_info(const ember__ckr *r);
/* The one verification of an open checkpoint, used by resume (loop.c),
 * ember_checkpoint_inspect and dataset checkpoints: the three groups list,
 * every item in them is a dataset that reads in full (Fletcher32 checked),
 * and every /datasets item's partition_offsets start at 0, never decrease
 * and end at its length. With the
 * checksum and root attributes ember__ckr_open checked, that is everything
 * docs/checkpoint-format.md lists under "Verification". */
int ember__ckr_verify(ember__ckr *r, char *msg);
/* The same verification, except that the data of the items for which
 * read_by_caller(group, name, arg) returns 1 ("datasets", "scalars" or
 * "blobs") is not read here: the caller reads those in full next (a resume
 * loads every bound item), so nothing is read twice. Everything else about
 * them is checked as above. */
int ember__ckr_verify_reading(ember__ckr *r,
                              int (*read_by_caller)(const char *group,
                                                    const char *name, void *arg),
                              void *arg, char *msg);
/* Names in "/datasets", "/scalars" or "/blobs", as one ctx-allocated
 * array of EMBER_NAME_SIZE-byte strings. */
int ember__ckr_list(ember__ckr *r, const char *group, char **names,
                    size_t *n, char *msg);
/* A dataset with its type and partition offsets (ctx allocations). */
int ember__ckr_dataset(ember__ckr *r, const char *name, ember_type *type,
                       void **data, size_t *n, uint64_t **offsets,
                       size_t *nparts, char *msg);
/* A dataset's type, record count and partition offsets (a ctx
 * allocation), no record read: a reader of its own ranges reads them next
 * with ember__ckr_slice. */
int ember__ckr_dataset_shape(ember__ckr *r, const char *name, ember_type *type,
                             size_t *n, uint64_t **offsets, size_t *nparts,
                             char *msg);
/* The first EMBER__FSUM_BLOCK bytes of a file (its checksum header) and
 * its size. */
int ember__ck_head(const char *path, unsigned char *head, uint64_t *size,
                   char *msg);
/* Opens a checkpoint as ember__ckr_open does, except that instead of
 * hashing the whole file it requires the checksum header and size to be
 * head and size: those of the file another rank verified in full. A file
 * that differs (a directory the ranks do not share) is EMBER_EMISMATCH. */
int ember__ckr_open_known(ember_ctx *ctx, ember__ckr **r, const char *path,
                          const unsigned char *head, uint64_t size, char *msg);
/* Opens a checkpoint as ember__ckr_open does (the whole file hashed), and
 * requires its checksum header and size to be head and size: those of the
 * file the caller wrote (head NULL: any file that verifies, as
 * ember__ckr_open). Another file under the name (another context's
 * or process's, or a copy of an older one) is EMBER_ECORRUPT naming it,
 * never read. */
int ember__ckr_open_as(ember_ctx *ctx, ember__ckr **r, const char *path,
                       const unsigned char *head, uint64_t size, char *msg);
/* Reads records [lo, lo + n) of a dataset into buf (type's size each). */
int ember__ckr_slice(ember__ckr *r, const char *name, const ember_type *type,
                     uint64_t lo, size_t n, void *buf, char *msg);
/* The whole dataset at path ("/scalars/x", say), as ember__h5_read_all. */
int ember__ckr_item(ember__ckr *r, const char *path, ember_type *type,
                    void **data, size_t *n, char *msg);
/* /scalars/<name> into n numbers of kind (the stored count must be n; a
 * rows x cols matrix counts rows * cols). */
int ember__ckr_scalars(ember__ckr *r, const char *name, ember_scalar kind,
                       void *data, size_t n, char *msg);
/* /blobs/<name> into size bytes (the stored size must be size). */
int ember__ckr_blob(ember__ckr *r, const char *name, void *data, size_t size,
                    char *msg);
void ember__ckr_close(ember__ckr **r);

/* ---- dataset checkpoints (checkpoint.c) ---------------------------------------- */

/* The executor feeds a marked dataset's partitions into ds->ckpt_parts
 * (a capture) and reads a written one's through the file layer (a root);
 * after the action it calls ctx->ckpt_commit, which writes and truncates.
 * Nothing in the executor calls this module. */

/* ---- saving datasets to HDF5 (save.c) ------------------------------------ */

/* Computes ds (window by window, in partition order) into an open writer,
 * filling offsets[0..nparts]. */
int ember__save_to(ember_ds *ds, ember__h5w *hw, uint64_t *offsets,
                   char *msg);
/* Writes ds as /datasets/<name> of a checkpoint file being written. */
int ember__ckw_ds(ember__ckw *w, const char *name, ember_ds *ds, char *msg);

/* HDF5 ids for other modules (hid_t is int64_t): the native memory type of
 * an ember type, and a file-access property list with HDF5's file locking
 * off. The caller closes them (H5Tclose, H5Pclose); call under the lock.
 * Negative on failure. */
/* The type and record count of a dataset of an open file, nothing read. */
int ember__h5_type_fid(int64_t fid, const char *file, const char *path,
                       ember_type *type, size_t *n, char *msg);
/* The streaming writer's dataset creation properties (chunking, filters)
 * for recsize-byte records; the caller closes it; negative on failure. */
int64_t ember__h5_dcpl(size_t recsize, uint64_t expected, int deflate,
                       int fletcher32);
int64_t ember__h5_mem_type(const ember_type *t);
/* The file-access list of any file ember opens (in comm.c, floor 0). */
int64_t ember__h5_fapl(void);
/* HDF5's predefined native type of a scalar kind (not to be closed). */
int64_t ember__h5_native(ember_scalar kind);
/* A thread other than the caller's that used HDF5 calls this before it
 * ends (the checkpoint writer of an asynchronous loop). */
void ember__h5_thread_done(void);

/* ---- termination signals (signals.c) ---------------------------------------- */

#define EMBER__MAX_SIGNALS 3
typedef struct {
    int on;
    int sig[EMBER__MAX_SIGNALS];
    int have_old[EMBER__MAX_SIGNALS];
    struct sigaction old[EMBER__MAX_SIGNALS];
} ember__signals;

/* Catches sigs (n <= EMBER__MAX_SIGNALS) until restored; signals ignored
 * now stay ignored. Clears the caught flag, unless ember_loop_catch_early
 * is catching: then s takes that over (the same three signals), with a
 * signal it held and the actions from before it. */
int ember__signals_catch(ember__signals *s, const int *sigs, int n, char *msg);
void ember__signals_restore(ember__signals *s);
/* 1 when one of the signals arrived since they were caught. */
int ember__signals_caught(const ember__signals *s);

/* ---- directory locks (dirlock.c) ------------------------------------------ */

/* Gives this process dir (a lock on dir/name, holding our pid): EMBER_EBUSY
 * naming the holder's pid when another live process has it, EMBER_EIO when
 * dir is not writable. what names dir in messages ("checkpoint dir").
 * Closing *fd releases the lock. */
int ember__dir_lock(const char *dir, const char *name, const char *what,
                    int *fd, char *msg);
/* Is the lock held on *fd still on the file dir/name? A lock file removed
 * (a cleanup that empties DIR) or replaced let another process lock a new one and
 * work in the directory beside this one. Removed or replaced by a free
 * one: that one is locked and taken (*fd replaced, *remade 1). Locked by
 * another process: EMBER_EBUSY, naming it. */
int ember__dir_lock_check(const char *dir, const char *name, const char *what,
                          int *fd, int *remade, char *msg);
/* The lock file at path, locked, when its holder is gone (the lock is
 * free and the pid written in it is no live process's, nor ours): its
 * descriptor, which the caller closes; -1 otherwise (held, alive, no pid
 * written yet, or no such file; always without open-file-description
 * locks, where looking could free this process's own). */
int ember__lock_orphan(const char *path);
/* Removes the "*.tmp" files a crashed write left in dir (and Open MPI's
 * "*.tmp.locktest.N" beside them), those whose names start with prefix
 * (NULL: any). Call it only holding dir's lock: no live
 * writer can own them then. A file that cannot be removed is named in msg
 * and EMBER_EIO returned; the others are removed all the same. */
int ember__dir_sweep(const char *dir, const char *prefix, char *msg);
/* The same for temporaries that writers without dir's lock make (dataset
 * checkpoints, the ranks' probe): only those no live writer holds
 * (ember__tmp_hold) are removed; none without open-file-description locks. */
int ember__dir_sweep_unheld(const char *dir, const char *prefix, char *msg);
/* Creates (or truncates) the temporary at path and holds it for its
 * writer, who closes the descriptor once the file is renamed or removed:
 * an open-file-description lock that ember__dir_sweep_unheld respects and
 * that vanishes with the writer. -1 with errno when it cannot be created;
 * where such locks are missing the descriptor holds nothing. */
int ember__tmp_hold(const char *path);

/* ---- text sources (text.c) --------------------------------------------------- */

/* Loads a whole file into a ctx allocation (NUL-terminated). */
int ember__read_file(ember_ctx *ctx, const char *path, char **data,
                     size_t *size, char *msg);
/* The record type of text lines: {u64 offset, u64 length} (ember_line). */
int ember__lines_type(ember_type *t);

#endif /* EMBER_INTERNAL_H */
