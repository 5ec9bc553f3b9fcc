/* stream_internal.h: what the streaming modules share (stream*.c) and
 * their unit tests reach; users never see it.
 *
 *   stream.c         the query: options, mode rules, lock, recovery, the
 *                    batch sequence, triggers, signals
 *   stream_log.c     the checkpoint location's small files: metadata and
 *                    the offsets and commits logs (checksummed text, each
 *                    written atomically), directory listings, retention
 *   stream_source.c  the file source: which files are new, reading a
 *                    batch's files into one text, its lines dataset
 *   stream_state.c   keyed state: the batch reduction's combine, the merge
 *                    of a batch into the state, the string dictionary,
 *                    HDF5 snapshots
 *   stream_sink.c    sinks and row formatting
 *
 * Everything runs on the caller's thread except ember__ss_fold_partition
 * and ember__ss_reduce_combine (map_partitions tasks on the team), the
 * parallel loops inside stream_source.c, which call no ember function, the
 * snapshot writer that stream.c runs beside the sink, and the helper
 * thread that commits an offsets entry.
 */
#ifndef EMBER_STREAM_INTERNAL_H
#define EMBER_STREAM_INTERNAL_H

#include "internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define EMBER__SQ_ID_SIZE 33 /* 32 hex digits and the NUL */

/* ---- text and files (stream_log.c) ---------------------------------------- */

/* A growable string (ctx allocations). A failed append sets oom and later
 * appends do nothing, so callers check once at the end. */
typedef struct {
    ember_ctx *ctx;
    char *s;
    size_t len, cap;
    int oom;
} ember__sb;

void ember__sb_add(ember__sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ember__sb_bytes(ember__sb *b, const char *bytes, size_t n);
/* Appends bytes with '%', control bytes, space and DEL as %XX, so a file
 * name or a description line is one space-free token. */
void ember__sb_escaped(ember__sb *b, const char *bytes, size_t n);
void ember__sb_free(ember__sb *b);
/* Undoes ember__sb_escaped in place; -1 on a malformed escape. */
int ember__sl_unescape(char *s, size_t *len);

/* 64-bit FNV-1a, the checksum of the log files. */
uint64_t ember__sl_fnv(const void *bytes, size_t n);

/* A file written atomically: <dir>/.<name>.tmp, then flushed, fsync'd,
 * renamed to <dir>/<name>, and the directory fsync'd. */
typedef struct {
    FILE *f;
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    char path[PATH_MAX];
} ember__afile;

int ember__af_open(ember__afile *a, const char *dir, const char *name,
                   char *msg);
int ember__af_commit(ember__afile *a, char *msg);
/* Abandons the write and removes the .tmp. Safe after a failed open or a
 * commit. */
void ember__af_abort(ember__afile *a);
int ember__sl_write_atomic(const char *dir, const char *name,
                           const char *data, size_t len, char *msg);

/* An atomic file whose commit runs on a helper thread: the data is
 * written and flushed by ember__af_commit_start, which then hands the
 * fsync, the rename and the directory fsync to a thread (or does them
 * itself when no thread can be made). ember__af_commit_wait joins it and
 * returns the commit's status. Until then the file may not be visible. */
typedef struct {
    ember__afile a;
    pthread_t th;
    int running;
    int rc;
    char msg[EMBER_MSG_SIZE];
} ember__afile_async;

int ember__af_commit_start(ember__afile_async *j, char *msg);
int ember__af_commit_wait(ember__afile_async *j, char *msg);
/* mkdir -p of one level: the directory exists afterwards (its parent is
 * fsync'd when it was made). */
int ember__sl_mkdir(const char *path, char *msg);

/* The ids of the entries in dir named "<decimal id><suffix>" (suffix ""
 * for the logs, ".h5" for state), ascending; other names are ignored.
 * *ids is a ctx allocation (NULL when *n is 0). A missing dir is empty. */
int ember__sl_list(ember_ctx *ctx, const char *dir, const char *suffix,
                   uint64_t **ids, size_t *n, char *msg);

/* ---- the logs (stream_log.c) --------------------------------------------------- */

typedef struct {
    char *name;       /* ctx allocation */
    uint64_t size;    /* bytes when the batch was planned */
    int64_t mtime_ns; /* its modification time then (has_mtime: 1); offsets
                         entries of format 1 have none */
    int has_mtime;
} ember__sfile;

/* A time stamp in ns since the epoch; -1 when it does not fit in 63 bits
 * (years before 1678 or after 2262). Its results lie in [EMBER__TS_NS_MIN,
 * EMBER__TS_NS_MAX], the range an offsets entry may record. */
#define EMBER__TS_SEC_LIM (INT64_MAX / 1000000000 - 1)
#define EMBER__TS_NS_MIN (-EMBER__TS_SEC_LIM * 1000000000)
#define EMBER__TS_NS_MAX (EMBER__TS_SEC_LIM * 1000000000 + 999999999)
int ember__ts_ns(const struct timespec *t, int64_t *ns);

void ember__sfiles_free(ember_ctx *ctx, ember__sfile *f, size_t n);

/* offsets/<batch>: the files of a batch, written before it runs. */
typedef struct {
    uint64_t batch;
    char query_id[EMBER__SQ_ID_SIZE];
    ember__sfile *files; /* ctx allocation, nfiles >= 1 */
    size_t nfiles;
} ember__soffsets;

/* commits/<batch>: written after the sink committed the batch. */
typedef struct {
    uint64_t batch;
    char query_id[EMBER__SQ_ID_SIZE];
    int has_state;          /* the state/ snapshot that, with the batches
                               after it, gives the state after this batch */
    uint64_t state_version;
    uint64_t rows;          /* rows written to the sink */
    uint64_t files;
    uint64_t *hashes;       /* XXH3-64 of each file's bytes as the batch
                               read them, in offsets order (files
                               entries); NULL: not recorded (format 1).
                               Read: a ctx allocation, see
                               ember__sl_commit_free */
} ember__scommit;

/* metadata: the query's identity. */
typedef struct {
    char query_id[EMBER__SQ_ID_SIZE];
    uint64_t fingerprint;  /* of description */
    char *description;     /* "name=value\n" lines; ctx allocation */
} ember__smeta;

/* job NULL: durable on return; else see ember__afile_async. */
int ember__sl_offsets_write(ember_ctx *ctx, const char *loc,
                            const ember__soffsets *o, ember__afile_async *job,
                            char *msg);
/* EMBER_ENOTFOUND when absent, EMBER_ECORRUPT (naming the file) when it
 * fails its checksum or does not parse, EMBER_EFORMAT when a newer ember
 * wrote it. */
int ember__sl_offsets_read(ember_ctx *ctx, const char *loc, uint64_t batch,
                           ember__soffsets *o, char *msg);
void ember__sl_offsets_free(ember_ctx *ctx, ember__soffsets *o);
int ember__sl_commit_write(ember_ctx *ctx, const char *loc,
                           const ember__scommit *c, char *msg);
int ember__sl_commit_read(ember_ctx *ctx, const char *loc, uint64_t batch,
                          ember__scommit *c, char *msg);
void ember__sl_commit_free(ember_ctx *ctx, ember__scommit *c);
int ember__sl_meta_write(ember_ctx *ctx, const char *loc,
                         const ember__smeta *m, char *msg);
int ember__sl_meta_read(ember_ctx *ctx, const char *loc, ember__smeta *m,
                        char *msg);
void ember__sl_meta_free(ember_ctx *ctx, ember__smeta *m);
/* EMBER_OK when the descriptions are equal, else EMBER_EMISMATCH with a
 * message listing each name whose value differs ("there" is the stored
 * one). */
int ember__sl_meta_compare(const char *loc, const char *there,
                           const char *here, char *msg);

/* <sink>/.ember-sink: which query owns a directory sink (its batch files).
 * A dot name, so that a stream reading the sink as its source skips it. */
#define EMBER__SINK_OWNER ".ember-sink"

typedef struct {
    char query_id[EMBER__SQ_ID_SIZE];
    char location[PATH_MAX]; /* the owner's checkpoint location (real path) */
} ember__sowner;

/* Creates <sink>/.ember-sink unless one is there: *created 1 when this
 * call made it (durable on return), 0 when another was there first (read
 * it; this call left it as it was). Never replaces an existing file, but
 * on a file system with neither hard links nor a no-replace rename two
 * calls at once may both see created 1. */
int ember__sl_owner_write(ember_ctx *ctx, const char *sink, const ember__sowner *w,
                          int *created, char *msg);
/* Removes this query's temporary of ember__sl_owner_write, which a kill
 * can leave behind. */
void ember__sl_owner_clean(const char *sink, const char *query_id);
/* EMBER_ENOTFOUND when absent, EMBER_ECORRUPT when damaged. */
int ember__sl_owner_read(ember_ctx *ctx, const char *sink, ember__sowner *w, char *msg);

/* ---- the file source (stream_source.c) ------------------------------------------ */

/* 1 when a directory entry is never a source file: a name starting with
 * '.', or ending in ".tmp". */
int ember__src_ignored(const char *name);
/* A test hook on the listing's passes over the directory (NULL, or NULL
 * members: none). `opened` is called after each pass opens the directory;
 * an entry for which `hide` returns 1 is dropped from that pass, as a
 * readdir that missed it (a file renamed in while the pass ran) would.
 * Called on the caller's thread. */
typedef struct {
    void (*opened)(void *arg);
    int (*hide)(void *arg, const char *name);
    void *arg;
} ember__src_hook;

/* The regular files of dir that are not ignored, sorted by name (strcmp),
 * with their sizes and modification times, up to a cut: `seen` (NAME_MAX
 * + 1 bytes, "" at first) is the largest file name an earlier pass over
 * dir saw. Under name-order arrival every file named up to it had arrived
 * before this listing opened the directory, so it is listed, whatever
 * readdir misses of entries renamed in during a pass. When the pass sees
 * files past the cut, a second pass is made at once with the largest of
 * them as its cut; files past that wait for the next call. So every file
 * there when the call began is listed. `seen` is updated to the largest
 * file name seen. Names at or before `after`
 * (NULL: none) are listed with size 0 and without a stat. *files is a ctx
 * allocation. */
int ember__src_list(ember_ctx *ctx, const char *dir, const char *after,
                    const ember__src_hook *hook, char *seen, ember__sfile **files,
                    size_t *n, char *msg);
/* Tests: every listing of the stream's source goes through hook (a copy;
 * NULL: none). */
void ember__stream_list_hook(ember_stream *s, const ember__src_hook *hook);
/* Reads the files (exactly the sizes recorded; a file that is gone, has
 * another size, or another modification time where one is recorded, is an
 * error naming it) into one text, each file followed by a '\n' where it
 * lacks one. *text is a ctx allocation of *size + 1 bytes (NUL-terminated);
 * file_offsets gets nfiles + 1 entries; hashes (NULL: not wanted) the
 * XXH3-64 of each file's bytes. Reads run in parallel on the context's
 * team. */
int ember__src_read(ember_ctx *ctx, const char *dir, const ember__sfile *files,
                    size_t nfiles, char **text, size_t *size,
                    uint64_t *file_offsets, uint64_t *hashes, char *msg);
/* The lines dataset of a text (ember_line records, as ember_read_lines
 * gives): takes ownership of text (freed with the dataset, or at once on
 * failure). partitions 0: one per 2 MiB. */
int ember__src_lines(ember_ds **out, ember_ctx *ctx, char *text, size_t size,
                     size_t partitions, const char *name, char *msg);

/* ---- keyed state (stream_state.c) ------------------------------------------------- */

/* Text keys: the fields after the key. */
#define EMBER__SS_TEXT_FIRST_VALUE 3

typedef struct {
    ember_ctx *ctx;
    ember_type type;
    ember_stream_key key;  /* NUMBER or TEXT */
    ember_combine_fn merge;
    void *merge_arg;
    ember__buf rec;        /* records sorted by key, keys unique */
    ember__buf text;       /* TEXT: the dictionary; records point here */
    size_t *order;         /* TEXT: rec positions in byte order of their
                              strings (rec.n entries), or NULL: stale */
} ember__sstate;

int ember__ss_init(ember__sstate *st, ember_ctx *ctx, const ember_type *type,
                   ember_stream_key key, ember_combine_fn merge,
                   void *merge_arg, char *msg);
void ember__ss_free(ember__sstate *st);
/* Checks that a type suits a key kind. */
int ember__ss_check_type(const ember_type *t, ember_stream_key key,
                         char *msg);

/* Folding a batch's records of one key. For TEXT keys a record whose
 * string differs from the accumulator's (a collision on the key) is not
 * folded but set aside in `spills`, to be placed by ember__ss_merge. */
typedef struct {
    ember_ctx *ctx;
    const ember_type *type;
    ember_stream_key key;
    ember_combine_fn merge;
    void *merge_arg;
    const char *text;      /* the batch text */
    size_t text_size;
    ember__buf spills;     /* guarded by a critical section */
    int failed;            /* out of memory, or the user merge failed */
    int bad_ref;           /* a text reference outside the batch text */
} ember__ss_reduce;

int ember__ss_reduce_combine(void *acc, const void *in, size_t n, void *arg);
/* map_partitions function (arg: an ember__ss_reduce) over a hash
 * partitioning of the batch: sorts the partition by key and folds each run
 * with ember__ss_reduce_combine; emits one record per key, in key order. */
int ember__ss_fold_partition(const void *in, size_t n, ember_emitter *em, void *arg);
/* A u64 ordered and equal as ember__key_cmp orders and equates keys. */
uint64_t ember__ss_sort_key(const ember_type *t, const void *rec);
/* Folds records of equal key the way the stream does (user merge or sum),
 * keeping the key and text fields. */
int ember__ss_fold(const ember_type *t, ember_stream_key key,
                   ember_combine_fn merge, void *merge_arg, void *acc,
                   const void *in, size_t n);

/* The state before a merge, kept until the batch commits. */
typedef struct {
    ember__buf rec;
    size_t *order;
    size_t text_n;
    int active;
} ember__ss_undo;

/* Merges a batch into the state. batch: records sorted by key, unique
 * keys (a reduction's output), text references into btext. spills: more
 * records of the batch (any order; TEXT only). Afterwards *changed lists
 * the positions in st->rec of the records this batch created or changed,
 * in output order (by string for TEXT, by key otherwise); a ctx
 * allocation. *collisions counts strings placed away from their key.
 * On failure the state is unchanged. With undo, the old state is kept
 * there until ember__ss_rollback (back to it) or ember__ss_forget. */
int ember__ss_merge(ember__sstate *st, const ember__buf *batch,
                    const ember__buf *spills, const char *btext,
                    size_t btext_size, size_t **changed, size_t *nchanged,
                    uint64_t *collisions, ember__ss_undo *undo, char *msg);
void ember__ss_rollback(ember__sstate *st, ember__ss_undo *u);
void ember__ss_forget(ember__sstate *st, ember__ss_undo *u);
/* TEXT: makes st->order current. */
int ember__ss_order(ember__sstate *st, char *msg);

/* Writes <dir>/<version>.h5 (the state, the dictionary) through the
 * checkpoint file layer, recording the query's description, its
 * fingerprint and the location's query id. */
int ember__ss_save(const ember__sstate *st, const char *dir, uint64_t version,
                   const char *description, uint64_t fingerprint, const char *query_id,
                   char *msg);
/* Reads and verifies the snapshot of batch `version` into st (replacing
 * its contents only on success). EMBER_ECORRUPT for a damaged file or one
 * of another batch, EMBER_EMISMATCH for one of another query or type, or
 * of another location of this query (another query id; snapshots written
 * before query ids were recorded carry none and are not compared). */
int ember__ss_load(ember__sstate *st, const char *path, uint64_t fingerprint,
                   const char *query_id, uint64_t version, char *msg);

/* ---- sinks (stream_sink.c) ---------------------------------------------------------- */

typedef struct {
    ember_ctx *ctx;
    const char *dir;           /* NULL: console */
    FILE *console;
    ember_stream_row_fn row_fn;
    void *row_arg;
    const char *header;      /* a first line per batch, or NULL */
    const ember_type *type;
    ember_stream_key key;
    ember__afile file;         /* the batch file being written */
    FILE *f;                   /* where rows go now */
    uint64_t rows;
    uint64_t batch;            /* the batch being written */
    uint64_t written;          /* 1 + the batch whose file this run wrote
                                  (or copied), so with this header and row
                                  function; 0: none */
    uint64_t written_id[5];    /* that file as committed: device, inode,
                                  size, mtime and ctime (ns) */
    int rerun;                 /* the batch is one a crash left uncommitted:
                                  a file of it in place must be its bytes */
} ember__sink;

/* "batch-<id, 12 digits>.csv" */
void ember__sink_name(uint64_t batch, char *buf, size_t size);
int ember__sink_begin(ember__sink *k, uint64_t batch, const char *mode,
                      char *msg);
/* One row; text is the key string of a TEXT row. */
int ember__sink_row(ember__sink *k, const void *rec, const char *text,
                    size_t text_len, char *msg);
int ember__sink_commit(ember__sink *k, char *msg);
/* Complete mode, a batch that changed no row: its file would equal the
 * previous batch's, so it becomes a hard link to that file (made at the
 * tmp name and renamed into place). Only when this sink (this run) wrote
 * the previous file: an earlier run's may have another header or row
 * function, which may change between runs. EMBER_NOTCACHED when it cannot
 * be done (a console sink, the previous file not this run's, no links on
 * this file system): the caller writes the rows. */
int ember__sink_repeat(ember__sink *k, uint64_t batch, char *msg);
void ember__sink_abort(ember__sink *k);
/* The default row: CSV of the fields (the key string first for TEXT). */
int ember__sink_csv_row(FILE *f, const ember_type *t, ember_stream_key key,
                        const void *rec, const char *text, size_t text_len);

#endif /* EMBER_STREAM_INTERNAL_H */
