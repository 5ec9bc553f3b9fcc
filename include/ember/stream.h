/* ember/stream.h: micro-batch streaming over files arriving in a directory
 * (Spark's Structured Streaming, for one machine). Included by ember.h; not
 * meant to be included alone.
 *
 * A stream (a "query") watches a source directory. Each micro-batch takes
 * the new files, in name order, and hands their lines to the caller's batch
 * function as an ember dataset; the function transforms it with the usual
 * operations. An aggregating query then reduces the result by key and
 * merges it into keyed state that lives across batches; a stateless query
 * passes its rows on as they are. The rows the output mode selects go to a
 * sink: the console, or a directory that gets one file per batch.
 *
 * Everything the query needs to restart lives in its checkpoint location
 * (layout: docs/streaming.md): the query's metadata, an offsets log entry
 * per batch written before the batch runs, a commits log entry written after
 * the sink has the batch's output, and checksummed HDF5 snapshots of the
 * state. A restart re-runs a batch that has an offsets entry and no commit
 * with exactly the files it had, and the directory sink replaces a batch's
 * file when it is written again: each file counts exactly once in the
 * output, across any number of kills.
 *
 * Files. A file counts as arrived once it is in the source directory under
 * its final name: producers write elsewhere (or under a name starting with
 * '.' or ending in ".tmp", both ignored) and rename(2) it in. A file must
 * not change afterwards. New files are taken in name order (byte order):
 * a file is new when its name sorts after every name already taken, so
 * producers give arriving files names that sort after the earlier ones (a
 * timestamp or a sequence number). A file that appears later with a lower
 * name is not taken; it is counted in the stats and named in a warning.
 * A file renamed in while the source is being listed is taken by that
 * listing or the next one, never passed over.
 *
 * Threading: a stream and its context are used from one thread at a time.
 * The batch function, row function and progress callback run on that
 * thread and may call ember_* functions (not ember_stream_* on the same
 * stream). The merge function also runs in the batch's reduction on the
 * context's OpenMP team, so it must be reentrant. The row function runs on
 * the caller's thread while the state snapshot may be written beside it
 * (library code only). ember_stream_stop() may be called from any thread
 * or a signal handler.
 */
#ifndef EMBER_STREAM_H
#define EMBER_STREAM_H

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the checkpoint location layout this library writes (2: the
 * offsets log records each file's modification time, the commits log its
 * content hash; format 1 locations are read and continued). */
#define EMBER_STREAM_FORMAT 2

/* The range of the processing-time trigger's interval and of the default
 * trigger's poll, in seconds: shorter than 1 ms is a busy loop, longer than
 * 365 days is a unit mistake (the trigger would never fire). */
#define EMBER_STREAM_MIN_INTERVAL 0.001
#define EMBER_STREAM_MAX_INTERVAL (365.0 * 86400.0)

typedef struct ember_stream ember_stream;

/* Which rows go to the sink after each batch. The rules, checked when the
 * stream is created (EMBER_EINVAL, saying why), are Spark's:
 * - APPEND: the batch's new rows only. Refused for an aggregating query
 *   (there are no watermarks here, so no aggregate row is ever final).
 * - UPDATE: the state rows this batch changed (a stateless query: the
 *   batch's rows, as APPEND).
 * - COMPLETE: the whole state every batch. Aggregating queries only. */
typedef enum {
    EMBER_OUTPUT_DEFAULT = 0, /* APPEND if stateless, UPDATE if aggregating */
    EMBER_OUTPUT_APPEND = 1,
    EMBER_OUTPUT_UPDATE = 2,
    EMBER_OUTPUT_COMPLETE = 3
} ember_output_mode;

/* When batches run. */
typedef enum {
    /* The next batch starts as soon as the previous one ends; with no new
     * file the stream waits `poll` seconds and looks again. */
    EMBER_TRIGGER_DEFAULT = 0,
    /* One batch per `interval` seconds, started at fixed times (start,
     * start + interval, ...); an interval with no new file runs nothing,
     * and a batch that overruns its interval is followed at once. */
    EMBER_TRIGGER_PROCESSING_TIME = 1,
    /* One batch of everything available (after re-running a batch left
     * uncommitted by a crash), then ember_stream_run returns. */
    EMBER_TRIGGER_ONCE = 2,
    /* Everything available when the run starts, in as many batches as
     * max_files needs, then ember_stream_run returns. */
    EMBER_TRIGGER_AVAILABLE_NOW = 3
} ember_trigger;

/* What the batch function's rows are keyed by. */
typedef enum {
    /* Stateless: no state, no key; rows go to the sink as they are. */
    EMBER_KEY_NONE = 0,
    /* Aggregating on field 0, a scalar number. */
    EMBER_KEY_NUMBER = 1,
    /* Aggregating on a byte string (a word, a URL). Records are fixed-size,
     * so the bytes stay in the batch's text and the record points at them:
     * fields 0, 1 and 2 are u64 scalars: a key, which must be a function of
     * the bytes alone (ember_stream_hash() is one), then the bytes' offset
     * into the batch text (ember_lines_text() of the batch's lines) and
     * their length. The key decides only where records meet: strings that
     * collide on it are told apart by their bytes, never merged, so any key
     * function of the bytes gives exact results (a poor one is just
     * slower). A string met under two keys fails its batch with
     * EMBER_EINVAL, naming it, as it would be counted twice. The state
     * keeps each distinct string once, in a dictionary that is snapshotted
     * with it; in state records fields 1 and 2 point into that dictionary
     * (ember_stream_text()). */
    EMBER_KEY_TEXT = 2
} ember_stream_key;

/* What the batch function is told about its batch. */
typedef struct {
    uint64_t batch;               /* batch id: 0, 1, 2, ... */
    size_t nfiles;
    const char *const *files;     /* names in the source directory, in
                                     name order */
    const uint64_t *file_offsets; /* nfiles + 1 entries: where each file's
                                     text starts in the batch text */
    const char *text;             /* the batch text: every file, in order,
                                     each ending with a '\n' (one is added
                                     where a file lacks it) */
    size_t text_size;
    int replay;                   /* 1: recomputed only to rebuild state
                                     after a bad snapshot; nothing is
                                     written to the sink */
} ember_stream_batch;

/* Makes one batch's result. `lines` holds {offset, length} records
 * (ember_line) of every line of the batch text; ember_lines_text(lines) is
 * batch->text. *out must be a new dataset of opts->record_type, made from
 * lines or otherwise; the stream frees it. For an aggregating query the
 * rows need not be unique per key: the stream reduces them by key. Called
 * on the caller's thread. Returns EMBER_OK, or an error with msg filled. */
typedef int (*ember_stream_batch_fn)(ember_ds **out, ember_ds *lines,
                                     const ember_stream_batch *batch,
                                     void *arg, char *msg);

/* Writes one output row to f, with its line end. text and text_len are the
 * key string of an EMBER_KEY_TEXT row (NULL and 0 otherwise). Returns 0,
 * or non-zero to fail the batch (it is re-run on the next start). */
typedef int (*ember_stream_row_fn)(FILE *f, const void *record,
                                   const char *text, size_t text_len,
                                   void *arg);

/* What happened in one batch, for progress reports. */
typedef struct {
    uint64_t batch;
    size_t files;
    uint64_t bytes;        /* the files' sizes (the line end the batch
                              text adds to a file without one is not
                              counted) */
    uint64_t lines;        /* input rows */
    uint64_t rows_out;     /* rows written to the sink */
    uint64_t state_rows;   /* rows in the state after the batch */
    double seconds;        /* from planning to commit; trigger waits are
                              not counted */
    double at;             /* when the batch started, in seconds since
                              ember_stream_create */
    int recovered;         /* 1: the batch was planned by an earlier run
                              and re-run after a restart */
    /* Where the seconds went (they add up to about `seconds`): */
    double plan_seconds;    /* listing the source, the offsets entry */
    double read_seconds;    /* reading the files, indexing their lines */
    double compute_seconds; /* the batch function, the reduction, the
                               merge into the state */
    double output_seconds;  /* the sink's file and the state snapshot,
                               written side by side */
    double commit_seconds;  /* the commit entry, retention */
} ember_stream_progress;

typedef void (*ember_stream_progress_fn)(const ember_stream_progress *p,
                                         void *arg);

typedef struct {
    /* ---- the query (recorded in the location's metadata; a restart that
     * differs in any of these is refused) ---- */
    const char *source_dir;          /* required */
    const char *checkpoint_location; /* required; created if missing; not
                                        the source directory itself (a
                                        subdirectory of it is fine) */
    const char *query;               /* "name=value" lines naming what the
                                        batch function computes (program,
                                        parameters); NULL: none */
    ember_stream_batch_fn batch_fn;  /* required */
    void *batch_arg;
    ember_stream_key key;
    const ember_type *record_type;   /* required: the batch function's
                                        output type (the state's type too) */
    /* Folds records of one key into acc, as for reduce_by_key: in the
     * batch's reduction (on the team: reentrant) and when a batch's row
     * meets the state's. It must
     * change value fields only (for EMBER_KEY_TEXT, fields 3 on). NULL: sum
     * every value field. */
    ember_combine_fn merge;
    void *merge_arg;
    ember_output_mode output_mode;
    const char *sink_dir;            /* one file per batch here (created if
                                        missing); NULL: the console. It
                                        must differ from the source
                                        directory and the checkpoint
                                        location, and belongs to one query
                                        (docs/streaming.md, "Sinks") */

    /* ---- how it runs (free to change between runs) ---- */
    FILE *console;                   /* the console sink; NULL: stdout */
    ember_stream_row_fn row_fn;      /* NULL: CSV (docs/streaming.md) */
    void *row_arg;
    const char *header;              /* written, with a line end, before
                                        each batch's rows ("word,count");
                                        NULL: none. Not copied: it must
                                        outlive the stream */
    ember_trigger trigger;
    double interval;                 /* PROCESSING_TIME: seconds, in
                                        [EMBER_STREAM_MIN_INTERVAL,
                                        EMBER_STREAM_MAX_INTERVAL] */
    double poll;                     /* DEFAULT: seconds between looks for
                                        new files, in the same range;
                                        0: 0.1 */
    size_t max_files;                /* files per batch; 0: no limit (ONCE
                                        takes every file, as Spark's) */
    int retain;                      /* batches of logs and state kept;
                                        0: 10 (at least 2) */
    int snapshot_every;              /* state snapshot every N batches (a
                                        restart replays the batches since
                                        the last one); 0: 1 */
    size_t partitions;               /* of each batch's lines; 0: one per 2
                                        MiB of text */
    uint64_t max_batches;            /* ember_stream_run returns EMBER_OK
                                        after this many batches; 0: none */
    ember_stream_progress_fn progress; /* called after each batch */
    void *progress_arg;
    int no_signals;                  /* do not catch SIGTERM, SIGINT and
                                        SIGUSR1 */
    int quiet;                       /* kept for compatibility: warnings
                                        (a late file, a snapshot fallback)
                                        always reach stderr, and are
                                        counted in the stats; the caller
                                        prints progress */
} ember_stream_opts;

typedef struct {
    uint64_t batches;        /* batches run by this stream, re-runs too */
    uint64_t next_batch;     /* id of the next batch to plan */
    uint64_t last_committed; /* valid when have_committed */
    int have_committed;
    uint64_t restored_from;  /* snapshot version restored (restored: 1) */
    int restored;
    uint64_t replayed;       /* batches recomputed to rebuild the state */
    uint64_t recovered;      /* uncommitted batches re-run after a start */
    uint64_t snapshot_fallbacks; /* snapshots skipped as damaged */
    uint64_t late_files;     /* files seen too late to be taken */
    uint64_t collisions;     /* EMBER_KEY_TEXT: distinct strings whose key
                                was already taken by another string */
    uint64_t files;          /* files taken by this stream */
    uint64_t rows_out;
    uint64_t state_rows;
    double batch_seconds;    /* total, trigger waits excluded */
    char query_id[40];       /* the location's query id (hex) */
} ember_stream_stats;

/* Starts a query: checks the options and the output mode rules, creates
 * the checkpoint location (and the sink directory) if missing, locks it
 * (EMBER_EBUSY naming the holder while another process or stream has it),
 * writes its metadata or, when it exists, compares it with this query
 * (EMBER_EMISMATCH, listing each difference), restores the state from the
 * newest snapshot that verifies (a damaged one is skipped with a warning,
 * and the batches after the one used are recomputed from the offsets log;
 * EMBER_ECORRUPT when that is impossible), and installs the signal
 * handlers. A batch left uncommitted is re-run by the next step or run.
 * The options' strings are copied; ctx must outlive the stream. */
int ember_stream_create(ember_stream **out, ember_ctx *ctx,
                        const ember_stream_opts *opts, char *msg);

/* Restores the signal handlers and releases the location. Accepts NULL. */
void ember_stream_destroy(ember_stream **s);

/* Runs batches as the trigger says until:
 *   EMBER_OK           ONCE or AVAILABLE_NOW finished, or max_batches ran;
 *   EMBER_INTERRUPTED  SIGTERM, SIGINT or SIGUSR1 (or ember_stream_stop()) arrived:
 *                      the batch under way was finished and committed;
 *                      exit with EMBER_EXIT_RESUMABLE;
 *   < 0                an error, msg says what and where. The batch that
 *                      failed is re-run with the same files on restart.
 * A second such signal ends the process at once (safe: a batch is
 * only committed by its commit entry). */
int ember_stream_run(ember_stream *s, char *msg);

/* Runs at most one batch now, without waiting: the uncommitted batch if
 * there is one, else up to max_files new files. *ran (may be NULL) says
 * whether a batch ran. Returns EMBER_OK or an error. */
int ember_stream_step(ember_stream *s, int *ran, char *msg);

/* Asks a running ember_stream_run to stop after the batch under way, as a
 * signal does. Async-signal-safe; callable from any thread. The request
 * stays: a later ember_stream_run of this stream returns
 * EMBER_INTERRUPTED at once (create the stream again to go on). */
void ember_stream_stop(ember_stream *s);

/* A copy of the current state (aggregating queries): records of
 * opts->record_type sorted by key. *out is the caller's to free. */
int ember_stream_state(ember_stream *s, ember_ds **out, char *msg);

/* The string of an EMBER_KEY_TEXT state record (from ember_stream_state):
 * a pointer into the stream's dictionary, valid until the next batch, or
 * NULL when the record does not point into it. */
const char *ember_stream_text(const ember_stream *s, const void *record,
                              size_t *len);

void ember_stream_get_stats(const ember_stream *s, ember_stream_stats *out);

/* The key ember uses for byte strings: 64 bits, the same on every
 * platform and in every version of format EMBER_STREAM_FORMAT. Pure and
 * thread-safe. */
uint64_t ember_stream_hash(const void *bytes, size_t len);

/* RFC 4180 quoting, as the default CSV rows use it: writes the bytes to f,
 * inside double quotes with each '"' doubled when they contain ',', '"',
 * '\r' or '\n', else as they are. Returns 0 or EOF. */
int ember_stream_csv_field(FILE *f, const char *bytes, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_STREAM_H */
