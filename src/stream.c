/* stream.c: a streaming query: micro-batches over files arriving in a
 * directory, with exactly-once output across crashes.
 *
 * A batch goes through these steps, in this order (docs/streaming.md):
 *   1. plan: the new files (names after the last one taken, in name
 *      order, at most max_files, from a listing that holds every file up
 *      to the largest name an earlier pass saw, so that no file a readdir
 *      pass missed is passed over), and write offsets/<batch> listing them
 *      with their sizes and modification times; from here on the batch is
 *      fixed (a file read with another size or time is an error);
 *   2. read the files into one text, make its lines dataset, call the
 *      query's batch function; for an aggregating query reduce the result
 *      by key (hash partitioning, then a sort-and-fold per partition) and
 *      merge it into the state (the old state is kept until the commit);
 *   3. write the rows the output mode selects to the sink (atomically per
 *      batch: idempotent);
 *   4. snapshot the state to state/<batch>.h5 (every snapshot_every
 *      batches that change it);
 *   5. write commits/<batch>, with the XXH3-64 of each file's bytes as
 *      step 2 read them (a replay must read the same); then retention
 *      deletes what is too old.
 * I/O is overlapped where order allows: the offsets entry's fsyncs run on
 * a helper thread during step 2 and are waited for before step 3; steps 3
 * and 4 run side by side.
 * A crash anywhere before 5 leaves offsets/<batch> without a commit: the
 * next start re-runs the batch with exactly those files, from the state
 * after the previous batch, and rewrites the same sink file. A crash after
 * 5 needs nothing.
 *
 * Recovery (ember_stream_create): the last commit C says which batches
 * are done. The state is read from the newest snapshot at or before C that
 * verifies; damaged ones are skipped with a warning; the batches after the
 * snapshot used are recomputed from their offsets entries without output
 * ("replay"), then the state of C is snapshotted again. The one offsets
 * entry after C, if any, is the pending batch. The first listing after a
 * start compares the files the retained offsets entries list with the
 * sizes and times recorded there (a warning for each one changed).
 *
 * Invariants: offsets entries exist for a contiguous range of batches
 * ending at C or C + 1 (with no commit: offsets/0 at most); every retained
 * snapshot has the offsets entries of all the batches after it; a batch's
 * sink file and snapshot are written after its offsets entry and before
 * its commit, so no snapshot or sink file is newer than the newest offsets
 * entry (recover refuses a location where one is: lost logs, or a location
 * older than its sink); the location is held by one stream (an fcntl lock on
 * <location>/lock, an open-file-description lock where the system has
 * them, so two streams in one process exclude each other too).
 *
 * Nothing is process-wide except the flag the signal handler sets. Called
 * from the caller's thread only (the helpers above are internal).
 */
#include "stream_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#define DEFAULT_RETAIN 10
#define DEFAULT_POLL 0.1
/* A batch with less text than this runs on one thread: starting a team
 * costs more than it saves, and on a busy machine a team whose second
 * thread is not scheduled makes every parallel region wait for it. The
 * results do not change (they never depend on the team size). */
#define SMALL_BATCH_BYTES ((uint64_t)1 << 19)
#define WAIT_SLICE 0.05 /* longest sleep between looks at the stop flags */

static const int stream_signals[3] = {SIGTERM, SIGINT, SIGUSR1};


/* A batch to run: its id and files. */
typedef struct {
    uint64_t batch;
    ember__sfile *files;
    size_t nfiles;
    int recovered;
} plan;

struct ember_stream {
    ember_ctx *ctx;
    ember_stream_opts o;       /* strings point to the copies below */
    char *source, *loc, *sink_dir, *query;
    char *description;         /* the canonical query lines */
    uint64_t fingerprint;
    char query_id[EMBER__SQ_ID_SIZE];
    char offsets_dir[PATH_MAX], commits_dir[PATH_MAX], state_dir[PATH_MAX];
    int aggregating;
    int lock_fd;
    int sink_lock_fd;        /* the sink directory's lock (-1: none) */
    ember__signals sig;
    atomic_int stop;           /* ember_stream_stop: any thread, handlers */
    double t0;

    ember__sstate st;
    int have_snapshot;         /* state_version names a snapshot */
    uint64_t state_version;
    uint64_t since_snapshot;   /* batches committed since it */

    int have_committed;
    uint64_t last_committed;
    int have_pending;
    plan pending;
    uint64_t next_batch;
    char hwm[NAME_MAX + 1];    /* the last file name taken, "": none */
    char seen[NAME_MAX + 1];   /* the largest file name a listing saw (the
                                  next listing's cut), "": none yet */

    ember__sfile *prev;        /* the previous listing (late files) */
    size_t nprev;
    int have_prev;
    int restart_check;         /* the first listing after a restart is
                                   still to be checked against the
                                   retained offsets entries */
    ember__sfile *watch;       /* the last batch's newest files, looked at
                                   at each listing: one written in place
                                   since is reported while it happens */
    size_t nwatch;
    uint64_t watch_batch;
    struct timespec planned_at; /* restart: when the last batch of the
                                   previous run was planned (the mtime of
                                   its offsets entry); 0: unknown */
    ember__src_hook list_hook; /* tests: see ember__stream_list_hook */
    ember__sfile *avail;       /* AVAILABLE_NOW: the files at start */
    size_t navail, avail_pos;

    ember__sink sink;
    ember__afile_async offsets_job; /* the last offsets entry's commit */
    ember_stream_stats stats;
};

/* ---- small helpers ------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void warn(const ember_stream *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Warnings always reach stderr: a late file or a fallback must be seen
 * even by a quiet run (quiet is for progress, which the caller prints). */
static void warn(const ember_stream *s, const char *fmt, ...)
{
    (void)s;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember stream: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int stopping(ember_stream *s)
{
    return atomic_load(&s->stop) || ember__signals_caught(&s->sig);
}

static const char *mode_name(ember_output_mode m)
{
    return m == EMBER_OUTPUT_APPEND   ? "append"
           : m == EMBER_OUTPUT_UPDATE ? "update"
                                      : "complete";
}

static const char *key_name(ember_stream_key k)
{
    return k == EMBER_KEY_NONE ? "none" : k == EMBER_KEY_NUMBER ? "number" : "text";
}

static int join_path(char *buf, const char *a, const char *b, char *msg)
{
    if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", a, b) >= PATH_MAX)
        return ember__err(msg, EMBER_EINVAL, "path too long: %s/%s", a, b);
    return EMBER_OK;
}

static void plan_free(ember_ctx *ctx, plan *p)
{
    ember__sfiles_free(ctx, p->files, p->nfiles);
    p->files = NULL;
    p->nfiles = 0;
}

/* ---- options and mode rules --------------------------------------------------- */

static int check_required(const ember_stream_opts *o, char *msg)
{
    if (!o->source_dir || !o->source_dir[0])
        return ember__err(msg, EMBER_EINVAL, "stream: no source directory");
    if (!o->checkpoint_location || !o->checkpoint_location[0])
        return ember__err(msg, EMBER_EINVAL, "stream: no checkpoint location");
    if (o->sink_dir && !o->sink_dir[0]) /* mkdir("") would blame a nameless path */
        return ember__err(msg, EMBER_EINVAL, "stream: the sink directory is an empty "
                          "path (NULL selects the console sink)");
    if (!o->batch_fn)
        return ember__err(msg, EMBER_EINVAL, "stream: no batch function");
    if (!o->record_type)
        return ember__err(msg, EMBER_EINVAL, "stream: no record type");
    return EMBER_OK;
}

/* A shorter wait is a busy loop; a longer one a unit mistake that never
 * fires. NaN fails both comparisons. */
static int in_interval_range(double seconds)
{
    return seconds >= EMBER_STREAM_MIN_INTERVAL && seconds <= EMBER_STREAM_MAX_INTERVAL;
}

static int check_ranges(const ember_stream_opts *o, char *msg)
{
    if ((unsigned)o->trigger > EMBER_TRIGGER_AVAILABLE_NOW)
        return ember__err(msg, EMBER_EINVAL, "stream: unknown trigger %d", (int)o->trigger);
    if ((unsigned)o->output_mode > EMBER_OUTPUT_COMPLETE)
        return ember__err(msg, EMBER_EINVAL, "stream: unknown output mode %d",
                          (int)o->output_mode);
    if ((unsigned)o->key > EMBER_KEY_TEXT)
        return ember__err(msg, EMBER_EINVAL, "stream: unknown key kind %d", (int)o->key);
    if (o->trigger == EMBER_TRIGGER_PROCESSING_TIME && !in_interval_range(o->interval))
        return ember__err(msg, EMBER_EINVAL, "stream: the processing-time trigger's "
                          "interval must be from %g to %g seconds (1 ms to 365 days); "
                          "got %g", EMBER_STREAM_MIN_INTERVAL, EMBER_STREAM_MAX_INTERVAL,
                          o->interval);
    if (o->poll != 0 && !in_interval_range(o->poll))
        return ember__err(msg, EMBER_EINVAL, "stream: poll must be 0 (the default) or "
                          "from %g to %g seconds (1 ms to 365 days); got %g",
                          EMBER_STREAM_MIN_INTERVAL, EMBER_STREAM_MAX_INTERVAL, o->poll);
    if (o->retain < 0 || o->snapshot_every < 0)
        return ember__err(msg, EMBER_EINVAL, "stream: retain and snapshot_every "
                          "must be >= 0");
    return EMBER_OK;
}

/* Spark's rules, without watermarks. */
static int check_mode(ember_output_mode *mode, int aggregating, char *msg)
{
    if (*mode == EMBER_OUTPUT_DEFAULT)
        *mode = aggregating ? EMBER_OUTPUT_UPDATE : EMBER_OUTPUT_APPEND;
    if (*mode == EMBER_OUTPUT_APPEND && aggregating)
        return ember__err(msg, EMBER_EINVAL,
                          "output mode append is not supported for a query with an "
                          "aggregation (keyed state): an aggregate row can change in "
                          "any later batch, so no row is ever final to append; use "
                          "update (changed rows) or complete (the whole table)");
    if (*mode == EMBER_OUTPUT_COMPLETE && !aggregating)
        return ember__err(msg, EMBER_EINVAL,
                          "output mode complete needs an aggregation (keyed state): a "
                          "query without one has no result table to repeat; use "
                          "append or update");
    return EMBER_OK;
}

/* ---- the query description ------------------------------------------------------ */

static char *real_dir(const char *path, char *msg, int *rc)
{
    char *r = realpath(path, NULL);
    if (!r)
        *rc = ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                         "%s: %s", path, strerror(errno));
    return r;
}

/* Canonical "name=value" lines: what makes two runs the same query. */
static int describe(ember_stream *s, char *msg)
{
    int rc = EMBER_OK;
    char *src = real_dir(s->source, msg, &rc);
    char *sink = s->sink_dir && !rc ? real_dir(s->sink_dir, msg, &rc) : NULL;
    char type[1024];
    ember_type_describe(s->o.record_type, type, sizeof type);
    ember__sb b = {.ctx = s->ctx};
    if (!rc) {
        ember__sb_add(&b, "source=%s\nsink=%s%s\noutput_mode=%s\nkey=%s\n"
                          "record_type=%s\nmerge=%s\n",
                      src, sink ? "dir:" : "console", sink ? sink : "",
                      mode_name(s->o.output_mode), key_name(s->o.key), type,
                      s->o.merge ? "custom" : "sum");
        for (const char *p = s->query; p && *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len) {
                ember__sb_bytes(&b, p, len);
                ember__sb_bytes(&b, "\n", 1);
            }
            p += len + (nl != NULL);
        }
        if (b.oom)
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    free(src);
    free(sink);
    if (rc) {
        ember__sb_free(&b);
        return rc;
    }
    s->description = b.s;
    s->fingerprint = ember__sl_fnv(b.s, b.len);
    return EMBER_OK;
}

/* 128 random bits as hex: a query id. */
static void new_query_id(char *id)
{
    unsigned char r[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, r, sizeof r) : -1;
    if (fd >= 0)
        close(fd);
    if (got != (ssize_t)sizeof r) { /* no urandom: time and pid, mixed */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = ember__hash64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
        uint64_t b = ember__hash64(a ^ (uint64_t)ts.tv_sec);
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", r[i]);
}

/* ---- the location: lock, layout, metadata ------------------------------------------ */

static int lock_location(ember_stream *s, char *msg)
{
    return ember__dir_lock(s->loc, "lock", "checkpoint location", &s->lock_fd,
                           msg);
}

/* ember__sl_mkdir, its message naming what the directory is for. */
static int make_dir_as(const char *what, const char *path, char *msg)
{
    char why[EMBER_MSG_SIZE] = "";
    int rc = ember__sl_mkdir(path, why);
    return rc ? ember__err(msg, rc, "%s: %s", what, why) : EMBER_OK;
}

static int layout_paths(ember_stream *s, char *msg)
{
    int rc = join_path(s->offsets_dir, s->loc, "offsets", msg);
    if (!rc && !(rc = join_path(s->commits_dir, s->loc, "commits", msg)))
        rc = join_path(s->state_dir, s->loc, "state", msg);
    return rc;
}

static int make_layout(ember_stream *s, char *msg)
{
    int rc = make_dir_as("checkpoint location", s->loc, msg);
    if (!rc)
        rc = lock_location(s, msg);
    if (!rc && !(rc = ember__sl_mkdir(s->offsets_dir, msg)) &&
        !(rc = ember__sl_mkdir(s->commits_dir, msg)))
        rc = ember__sl_mkdir(s->state_dir, msg);
    if (rc)
        return rc;
    /* Under the lock no writer is alive: a .tmp is a crashed write's. The
     * location's own temporaries are dot-named; its subdirectories are
     * ember's alone. */
    ember__dir_sweep(s->loc, ".", NULL);
    ember__dir_sweep(s->offsets_dir, NULL, NULL);
    ember__dir_sweep(s->commits_dir, NULL, NULL);
    ember__dir_sweep(s->state_dir, NULL, NULL);
    return EMBER_OK;
}

static int fresh_location(ember_stream *s, char *msg)
{
    uint64_t *ids = NULL;
    size_t n = 0, m = 0;
    int rc = ember__sl_list(s->ctx, s->offsets_dir, "", &ids, &n, msg);
    ember__free(s->ctx, ids);
    if (!rc)
        rc = ember__sl_list(s->ctx, s->commits_dir, "", &ids, &m, msg);
    ember__free(s->ctx, ids);
    if (!rc && (n || m))
        rc = ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s has offsets or "
                        "commits but no metadata file: it was damaged; restore "
                        "%s/metadata or use a new location", s->loc, s->loc);
    return rc;
}

/* ---- the sink's owner ------------------------------------------------------------- */

/* 1 when dir holds a batch file of some query: a name as ember__sink_name
 * makes them, batch-NNNNNNNNNNNN.csv. */
static int sink_has_batches(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        found = len == 22 && !strncmp(de->d_name, "batch-", 6) &&
                strspn(de->d_name + 6, "0123456789") == 12 &&
                !strcmp(de->d_name + 18, ".csv");
    }
    closedir(d);
    return found;
}

/* A sink without an owner file: this query may take it when it has run
 * batches before (into this sink: the metadata fixes the sink), because an
 * ember from before owner files wrote them; or when the sink holds no
 * batch files. A new query finding batch files would replace another
 * query's batch-000000000000.csv and the ones after: refused. */
static int may_claim(ember_stream *s, char *msg)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = ember__sl_list(s->ctx, s->offsets_dir, "", &ids, &n, msg);
    ember__free(s->ctx, ids);
    if (rc || n || !sink_has_batches(s->sink_dir))
        return rc;
    return ember__err(msg, EMBER_EMISMATCH, "sink directory %s holds batch files that no "
                      "%s/%s names (an older ember's, of another query), and this query "
                      "(checkpoint location %s) is new: its batch files would replace "
                      "them; use an empty or new sink directory", s->sink_dir,
                      s->sink_dir, EMBER__SINK_OWNER, s->loc);
}

static int sink_taken(const ember_stream *s, const ember__sowner *w, char *msg)
{
    return ember__err(msg, EMBER_EMISMATCH, "sink directory %s belongs to another query "
                      "(%s, checkpoint location %s; this one is %s, location %s): both "
                      "would write its batch files; use another sink directory (or, if "
                      "that query is gone for good, remove %s/%s and its batch files)",
                      s->sink_dir, w->query_id, w->location,
                      s->query_id[0] ? s->query_id : "new", s->loc, s->sink_dir,
                      EMBER__SINK_OWNER);
}

/* The sink's owner file, or rc naming what to do when it is damaged. */
static int read_owner(ember_stream *s, ember__sowner *w, char *msg)
{
    int rc = ember__sl_owner_read(s->ctx, s->sink_dir, w, msg);
    if (rc != EMBER_ECORRUPT)
        return rc;
    char inner[EMBER_MSG_SIZE];
    snprintf(inner, sizeof inner, "%s", msg ? msg : "");
    return ember__err(msg, rc, "%s; if this sink is the one checkpoint location %s has "
                      "been writing, remove %s/%s and the next start writes it again",
                      inner, s->loc, s->sink_dir, EMBER__SINK_OWNER);
}

/* Before a new query makes its location, and again before it writes its
 * metadata: a sink that another query owns, or that holds batch files, is
 * refused now, so that the refused start leaves no location behind (a
 * later start with another sink would find one recording this sink).
 * claim_sink decides for good. */
static int check_sink_for_new(ember_stream *s, char *msg)
{
    if (!s->sink_dir)
        return EMBER_OK;
    ember__sowner w;
    int rc = read_owner(s, &w, msg);
    if (rc == EMBER_OK)
        return sink_taken(s, &w, msg);
    return rc == EMBER_ENOTFOUND ? may_claim(s, msg) : rc;
}

/* A directory sink belongs to one query: two would replace each other's
 * batch-N.csv files. The first start of a query writes its id into the
 * sink's owner file (before any batch file, durably); a start of another
 * query is refused. The location's lock keeps two runs of one query
 * apart, so only queries that differ race here, and link(2) settles it. */
static int claim_sink(ember_stream *s, char *msg)
{
    if (!s->sink_dir)
        return EMBER_OK;
    ember__sowner w;
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = read_owner(s, &w, msg);
        if (rc == EMBER_OK && !strcmp(w.query_id, s->query_id)) {
            /* a kill between the link and the unlink leaves it */
            ember__sl_owner_clean(s->sink_dir, s->query_id);
            return EMBER_OK;
        }
        if (rc == EMBER_OK)
            return sink_taken(s, &w, msg);
        if (rc != EMBER_ENOTFOUND || (rc = may_claim(s, msg)))
            return rc;
        ember__sowner mine;
        memcpy(mine.query_id, s->query_id, sizeof mine.query_id);
        char *real = real_dir(s->loc, msg, &rc);
        if (rc)
            return rc;
        snprintf(mine.location, sizeof mine.location, "%s", real);
        free(real);
        int created = 0;
        if ((rc = ember__sl_owner_write(s->ctx, s->sink_dir, &mine, &created, msg)) ||
            created)
            return rc;
        /* another query claimed it meanwhile: read whose it is */
    }
    return ember__err(msg, EMBER_EIO, "sink directory %s: its owner file %s appears and "
                      "vanishes; is another program removing it?", s->sink_dir,
                      EMBER__SINK_OWNER);
}

static int check_metadata(ember_stream *s, char *msg)
{
    ember__smeta m;
    int rc = ember__sl_meta_read(s->ctx, s->loc, &m, msg);
    if (rc == EMBER_ENOTFOUND) {
        if ((rc = fresh_location(s, msg)) || (rc = check_sink_for_new(s, msg)))
            return rc;
        new_query_id(s->query_id);
        ember__smeta mine = {.fingerprint = s->fingerprint, .description = s->description};
        memcpy(mine.query_id, s->query_id, sizeof mine.query_id);
        return ember__sl_meta_write(s->ctx, s->loc, &mine, msg);
    }
    if (rc)
        return rc;
    rc = ember__sl_meta_compare(s->loc, m.description, s->description, msg);
    memcpy(s->query_id, m.query_id, sizeof s->query_id);
    ember__sl_meta_free(s->ctx, &m);
    return rc;
}

/* ---- signals ----------------------------------------------------------------------- */

static int install_signals(ember_stream *s, char *msg)
{
    return ember__signals_catch(&s->sig, stream_signals, 3, msg);
}

/* ---- running one batch --------------------------------------------------------------- */

/* What a batch produced, between computing and committing. */
typedef struct {
    char *text;           /* kept alive by lines */
    size_t text_size;
    uint64_t *file_offsets;
    uint64_t *hashes;     /* XXH3-64 of each file, for the commit entry */
    ember_ds *lines, *out, *reduced;
    size_t *changed;      /* aggregating: state positions to output */
    size_t nchanged;
    void *rows;           /* stateless: the batch's rows */
    size_t nrows;
    ember__ss_undo undo;
    uint64_t lines_n;
    double t_read, t_compute; /* seconds */
} batch_run;

static void run_free(ember_stream *s, batch_run *r)
{
    ember_ds_free(&r->reduced);
    ember_ds_free(&r->out);
    ember_ds_free(&r->lines);
    ember__free(s->ctx, r->file_offsets);
    ember__free(s->ctx, r->hashes);
    ember__free(s->ctx, r->changed);
    ember_free(s->ctx, r->rows);
    r->file_offsets = NULL;
    r->hashes = NULL;
    r->changed = NULL;
    r->rows = NULL;
}

/* A replayed batch must read the bytes it read when it committed: its
 * commit entry's hashes (want; NULL for a format 1 entry, which has none)
 * against what was read now. */
static int check_hashes(const ember_stream *s, const plan *p, const batch_run *r,
                        const uint64_t *want, char *msg)
{
    for (size_t i = 0; want && i < p->nfiles; i++)
        if (r->hashes[i] != want[i])
            return ember__err(msg, EMBER_EFORMAT, "source file %s/%s changed after batch %"
                              PRIu64 " read it: its XXH3-64 was %016" PRIx64 " then and is "
                              "%016" PRIx64 " now, at the same size (files must not change "
                              "once in the source directory); restore it, or use a new "
                              "checkpoint location", s->source, p->files[i].name, p->batch,
                              want[i], r->hashes[i]);
    return EMBER_OK;
}

static int load_batch(ember_stream *s, const plan *p, batch_run *r, const uint64_t *want,
                      char *msg)
{
    r->file_offsets = ember__calloc(s->ctx, p->nfiles + 1, sizeof *r->file_offsets);
    r->hashes = ember__calloc(s->ctx, p->nfiles + 1, sizeof *r->hashes);
    if (!r->file_offsets || !r->hashes)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = ember__src_read(s->ctx, s->source, p->files, p->nfiles, &r->text,
                             &r->text_size, r->file_offsets, r->hashes, msg);
    if (!rc && (rc = check_hashes(s, p, r, want, msg)) != EMBER_OK) {
        ember__free(s->ctx, r->text); /* ember__src_lines did not take it */
        r->text = NULL;
    }
    if (rc)
        return rc;
    char name[48];
    snprintf(name, sizeof name, "batch-%" PRIu64, p->batch);
    rc = ember__src_lines(&r->lines, s->ctx, r->text, r->text_size, s->o.partitions,
                          name, msg);
    if (!rc)
        r->lines_n = r->lines->u.array.n;
    return rc;
}

static int call_batch_fn(ember_stream *s, const plan *p, batch_run *r, int replay,
                         char *msg)
{
    const char **names = ember__calloc(s->ctx, p->nfiles + 1, sizeof *names);
    if (!names)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->nfiles; i++)
        names[i] = p->files[i].name;
    ember_stream_batch info = {p->batch, p->nfiles, names, r->file_offsets, r->text,
                               r->text_size, replay};
    char local[EMBER_MSG_SIZE] = "";
    int rc = s->o.batch_fn(&r->out, r->lines, &info, s->o.batch_arg, local);
    ember__free(s->ctx, names);
    if (rc)
        return ember__err(msg, rc < 0 ? rc : EMBER_EUSER, "batch %" PRIu64 ": %s",
                          p->batch, local[0] ? local : ember_strerror(rc));
    if (!r->out)
        return ember__err(msg, EMBER_EINVAL, "batch %" PRIu64 ": the batch function "
                          "returned no dataset", p->batch);
    if (!ember_type_equal(ember_ds_type(r->out), s->o.record_type)) {
        char got[512], want[512];
        ember_type_describe(ember_ds_type(r->out), got, sizeof got);
        ember_type_describe(s->o.record_type, want, sizeof want);
        return ember__err(msg, EMBER_ETYPE, "batch %" PRIu64 ": the batch function "
                          "made %s records; the query declares %s", p->batch, got, want);
    }
    return EMBER_OK;
}

/* Merges key-sorted runs (the reduction's partitions) into one sorted
 * buffer. Keys are unique across runs (each key has one partition). */
static int merge_runs(ember_stream *s, ember__buf *parts, size_t nparts,
                      ember__buf *out, char *msg)
{
    const ember_type *t = &s->st.type;
    size_t size = t->size, total = 0;
    for (size_t p = 0; p < nparts; p++)
        total += parts[p].n;
    ember__buf a = {NULL, 0, 0, size}, b = {NULL, 0, 0, size};
    size_t *bound = ember__malloc(s->ctx, (nparts + 1) * sizeof *bound);
    int rc = bound && !ember__buf_reserve(s->ctx, &a, total) &&
                     !ember__buf_reserve(s->ctx, &b, total) ? 0 : -1;
    size_t nb = 0;
    for (size_t p = 0; !rc && p < nparts; p++) {
        if (!parts[p].n)
            continue;
        bound[nb++] = a.n;
        memcpy(a.data + a.n * size, parts[p].data, parts[p].n * size);
        a.n += parts[p].n;
    }
    if (!rc)
        bound[nb] = a.n;
    while (!rc && nb > 1) { /* pairwise passes: O(total log runs) */
        size_t k = 0;
        b.n = 0;
        for (size_t r = 0; r < nb; r += 2) {
            size_t lo = bound[r], mid = bound[r + 1], hi = r + 2 <= nb ? bound[r + 2] : mid;
            size_t i = lo, j = mid;
            bound[k++] = b.n;
            while (i < mid || j < hi) {
                const unsigned char *x = a.data + i * size, *y = a.data + j * size;
                int takey = i >= mid || (j < hi && ember__key_cmp(t, y, x) < 0);
                memcpy(b.data + b.n++ * size, takey ? y : x, size);
                takey ? j++ : i++;
            }
        }
        bound[k] = b.n;
        nb = k;
        ember__buf tmp = a;
        a = b;
        b = tmp;
    }
    ember__free(s->ctx, bound);
    ember__buf_free(s->ctx, &b);
    if (rc) {
        ember__buf_free(s->ctx, &a);
        return ember__err(msg, EMBER_ENOMEM, "out of memory merging %zu batch rows", total);
    }
    *out = a;
    return EMBER_OK;
}

static int aggregate(ember_stream *s, const plan *p, batch_run *r, char *msg)
{
    ember__ss_reduce R = {s->ctx, &s->st.type, s->o.key, s->o.merge, s->o.merge_arg,
                          r->text, r->text_size, {NULL, 0, 0, s->st.type.size}, 0, 0};
    ember__buf *parts = NULL, sorted = {NULL, 0, 0, s->st.type.size};
    size_t nparts = 0;
    uint64_t coll = 0;
    ember_ds *parted = NULL;
    int rc = ember_partition_by(&parted, r->out, EMBER_HASH, 0, msg);
    if (!rc)
        /* Borrowed: the fold writes its spills and flags into R, and
         * r->reduced is materialized below and never computed again. */
        rc = ember_map_partitions(&r->reduced, parted, &s->st.type,
                                  ember__ss_fold_partition, &R, 0, msg);
    ember_ds_free(&parted);
    if (!rc) {
        nparts = r->reduced->nparts;
        rc = ember__materialize(r->reduced, &parts, msg);
    }
    if (rc == EMBER_EUSER && R.bad_ref)
        rc = ember__err(msg, EMBER_EINVAL, "batch %" PRIu64 ": a record's text "
                        "reference is outside the batch text", p->batch);
    else if (rc == EMBER_EUSER && R.failed)
        rc = ember__err(msg, EMBER_ENOMEM, "batch %" PRIu64 ": out of memory setting "
                        "aside colliding strings", p->batch);
    if (!rc)
        rc = merge_runs(s, parts, nparts, &sorted, msg);
    if (parts)
        ember__parts_free(s->ctx, parts, nparts);
    if (!rc)
        rc = ember__ss_merge(&s->st, &sorted, &R.spills, r->text, r->text_size,
                             &r->changed, &r->nchanged, &coll, &r->undo, msg);
    ember__buf_free(s->ctx, &sorted);
    ember__buf_free(s->ctx, &R.spills);
    s->stats.collisions += rc ? 0 : coll;
    return rc;
}

/* The batch's rows: reduced and merged into the state (aggregating), or
 * collected for the sink (stateless). */
static int compute_rows(ember_stream *s, const plan *p, batch_run *r, int replay,
                        char *msg)
{
    if (s->aggregating)
        return aggregate(s, p, r, msg);
    if (replay)
        return EMBER_OK;
    return ember_collect_alloc(r->out, &r->rows, &r->nrows, msg);
}

/* Reads, computes and (aggregating) merges one batch. want: the hashes
 * a replayed batch's files must have (NULL: none known). */
static int compute(ember_stream *s, const plan *p, batch_run *r, int replay,
                   const uint64_t *want, char *msg)
{
    double t0 = now_s();
    int rc = load_batch(s, p, r, want, msg);
    double t1 = now_s();
    r->t_read = t1 - t0;
    if (!rc)
        rc = call_batch_fn(s, p, r, replay, msg);
    rc = rc ? rc : compute_rows(s, p, r, replay, msg);
    r->t_compute = now_s() - t1;
    return rc;
}


/* The key string of a state record. */
static const char *state_text(const ember_stream *s, const unsigned char *rec, size_t *len)
{
    *len = 0;
    if (s->o.key != EMBER_KEY_TEXT)
        return NULL;
    return ember_stream_text(s, rec, len);
}

static int write_rows(ember_stream *s, const batch_run *r, char *msg)
{
    const ember__buf *st = &s->st.rec;
    int rc = EMBER_OK;
    size_t len;
    if (!s->aggregating) {
        size_t size = s->o.record_type->size;
        for (size_t i = 0; !rc && i < r->nrows; i++)
            rc = ember__sink_row(&s->sink, (unsigned char *)r->rows + i * size, r->text,
                                 r->text_size, msg);
    } else if (s->o.output_mode == EMBER_OUTPUT_UPDATE) {
        for (size_t i = 0; !rc && i < r->nchanged; i++) {
            const unsigned char *rec = st->data + r->changed[i] * st->size;
            const char *t = state_text(s, rec, &len);
            rc = ember__sink_row(&s->sink, rec, t, len, msg);
        }
    } else {
        if (s->o.key == EMBER_KEY_TEXT && (rc = ember__ss_order(&s->st, msg)))
            return rc;
        for (size_t i = 0; !rc && i < st->n; i++) {
            size_t at = s->o.key == EMBER_KEY_TEXT ? s->st.order[i] : i;
            const unsigned char *rec = st->data + at * st->size;
            const char *t = state_text(s, rec, &len);
            rc = ember__sink_row(&s->sink, rec, t, len, msg);
        }
    }
    return rc;
}

static int output(ember_stream *s, const plan *p, const batch_run *r, char *msg)
{
    if (s->aggregating && s->o.output_mode == EMBER_OUTPUT_COMPLETE &&
        r->nchanged == 0) {
        int rc = ember__sink_repeat(&s->sink, p->batch, msg);
        if (rc != EMBER_NOTCACHED) {
            s->sink.rows = s->st.rec.n;
            return rc;
        }
    }
    s->sink.rerun = p->recovered;
    int rc = ember__sink_begin(&s->sink, p->batch, mode_name(s->o.output_mode), msg);
    if (!rc)
        rc = write_rows(s, r, msg);
    if (!rc)
        return ember__sink_commit(&s->sink, msg);
    ember__sink_abort(&s->sink);
    return rc;
}

/* ---- retention ----------------------------------------------------------------------- */

static void remove_id(const char *dir, uint64_t id, const char *suffix)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%" PRIu64 "%s", dir, id, suffix) < sizeof path)
        unlink(path);
}

/* The batches retention keeps: `retain`, its default, at least 2. */
static uint64_t retained(const ember_stream *s)
{
    uint64_t R = (uint64_t)(s->o.retain ? s->o.retain : DEFAULT_RETAIN);
    return R < 2 ? 2 : R;
}

/* After commit C: keeps the snapshots of the last `retain` batches (and at
 * least two when there are two), and the logs every kept snapshot needs
 * to be replayed forward. */
static void retention(ember_stream *s, uint64_t C)
{
    uint64_t R = retained(s);
    if (C < R)
        return;
    uint64_t cut = C - R, floor = cut + 1; /* batches <= cut may go */
    uint64_t *v = NULL;
    size_t n = 0;
    if (ember__sl_list(s->ctx, s->state_dir, ".h5", &v, &n, NULL) == EMBER_OK && n) {
        size_t keep_from = n;
        while (keep_from > 0 && v[keep_from - 1] > cut)
            keep_from--;
        size_t newer = n - keep_from, need = newer >= 2 ? 0 : 2 - newer;
        keep_from = keep_from > need ? keep_from - need : 0;
        for (size_t i = 0; i < keep_from; i++)
            if (v[i] <= C)
                remove_id(s->state_dir, v[i], ".h5");
        if (keep_from < n && v[keep_from] + 1 < floor)
            floor = v[keep_from] + 1;
    }
    ember__free(s->ctx, v);
    const char *dirs[2] = {s->offsets_dir, s->commits_dir};
    for (int d = 0; d < 2; d++) {
        if (ember__sl_list(s->ctx, dirs[d], "", &v, &n, NULL) == EMBER_OK)
            for (size_t i = 0; i < n && v[i] < floor; i++)
                remove_id(dirs[d], v[i], "");
        ember__free(s->ctx, v);
        v = NULL;
    }
}

/* ---- commit -------------------------------------------------------------------------- */

static int commit(ember_stream *s, const plan *p, const batch_run *r, char *msg)
{
    ember__scommit c = {.batch = p->batch,
                        .has_state = s->aggregating && s->have_snapshot,
                        .state_version = s->state_version,
                        .rows = s->sink.rows,
                        .files = p->nfiles,
                        .hashes = r->hashes};
    memcpy(c.query_id, s->query_id, sizeof c.query_id);
    return ember__sl_commit_write(s->ctx, s->loc, &c, msg);
}

/* Steps 3 and 4: the sink file and the state snapshot are independent,
 * and each ends in fsyncs, so with two threads they are written side by
 * side. The sink (and the query's row function) stays on the caller's
 * thread; the snapshot's HDF5 calls are serialised by the HDF5 lock
 * anyway. */
static int output_and_snapshot(ember_stream *s, const plan *p, const batch_run *r,
                               int snap, char *msg)
{
    int orc = EMBER_OK, src = EMBER_OK;
    char smsg[EMBER_MSG_SIZE] = "";
    int team = snap && s->ctx->threads > 1 ? 2 : 1;
#pragma omp parallel num_threads(team)
    {
        if (omp_get_thread_num() == 0) {
            orc = output(s, p, r, msg);
            if (team == 1 && snap && !orc)
                src = ember__ss_save(&s->st, s->state_dir, p->batch, s->description,
                                     s->fingerprint, s->query_id, smsg);
        } else {
            src = ember__ss_save(&s->st, s->state_dir, p->batch, s->description,
                                 s->fingerprint, s->query_id, smsg);
        }
    }
    if (!orc && src)
        ember__err(msg, src, "%s", smsg);
    return orc ? orc : src;
}

/* Seconds of a batch's phases, for the progress report. */
typedef struct {
    double started, planned, read, computed, output, done;
} phases;

static void note_batch(ember_stream *s, const plan *p, uint64_t bytes, uint64_t lines,
                       const phases *ph)
{
    double secs = ph->done - ph->started;
    s->stats.batches++;
    s->stats.files += p->nfiles;
    s->stats.rows_out += s->sink.rows;
    s->stats.state_rows = s->st.rec.n;
    s->stats.batch_seconds += secs;
    s->stats.recovered += p->recovered;
    if (!s->o.progress)
        return;
    ember_stream_progress pr = {p->batch, p->nfiles, bytes, lines, s->sink.rows,
                                s->st.rec.n, secs, ph->started - s->t0, p->recovered,
                                ph->planned - ph->started, ph->read,
                                ph->computed - ph->planned - ph->read,
                                ph->output - ph->computed, ph->done - ph->output};
    s->o.progress(&pr, s->o.progress_arg);
}

static uint64_t plan_bytes(const plan *p)
{
    uint64_t n = 0;
    for (size_t i = 0; i < p->nfiles; i++)
        n += p->files[i].size;
    return n;
}

/* Steps 2 to 5 of a planned batch. The offsets entry is written; its
 * commit may still be on its way (s->offsets_job) and is waited for
 * before anything of the batch becomes visible. */
static int run_batch_on(ember_stream *s, const plan *p, phases *ph, char *msg)
{
    batch_run r;
    memset(&r, 0, sizeof r);
    ph->planned = now_s();
    int rc = compute(s, p, &r, 0, NULL, msg);
    char wmsg[EMBER_MSG_SIZE] = "";
    int wrc = ember__af_commit_wait(&s->offsets_job, wmsg);
    if (!rc && wrc)
        rc = ember__err(msg, wrc, "%s", wmsg);
    uint64_t every = (uint64_t)(s->o.snapshot_every ? s->o.snapshot_every : 1);
    int changed = s->aggregating && (r.nchanged || !s->have_snapshot);
    int snap = changed && s->since_snapshot + 1 >= every;
    /* A state that batches leave unchanged is snapshotted again once its
     * snapshot is as old as retention and the policy allow: else retention
     * keeps every log since it (replaying from it needs them), the location
     * grows with each batch, and a start replays them all, from files the
     * user may since have removed. */
    uint64_t R = retained(s);
    if (!snap && s->aggregating && s->have_snapshot &&
        p->batch - s->state_version >= (R > every ? R : every))
        snap = 1;
    ph->read = r.t_read;
    ph->computed = now_s();
    if (!rc)
        rc = output_and_snapshot(s, p, &r, snap, msg);
    ph->output = now_s();
    int snap_before = s->have_snapshot;
    uint64_t version_before = s->state_version, since_before = s->since_snapshot;
    if (!rc && snap) {
        s->have_snapshot = 1;
        s->state_version = p->batch;
        s->since_snapshot = 0;
    } else if (!rc && changed) {
        s->since_snapshot++;
    }
    if (!rc)
        rc = commit(s, p, &r, msg);
    if (rc) {
        ember__ss_rollback(&s->st, &r.undo);
        s->have_snapshot = snap_before;
        s->state_version = version_before;
        s->since_snapshot = since_before;
        run_free(s, &r);
        return rc;
    }
    ember__ss_forget(&s->st, &r.undo);
    s->have_committed = 1;
    s->last_committed = p->batch;
    s->next_batch = p->batch + 1;
    /* the files' bytes: the text adds a line end to a file without one */
    uint64_t bytes = plan_bytes(p), lines = r.lines_n;
    run_free(s, &r);
    retention(s, p->batch);
    ph->done = now_s();
    note_batch(s, p, bytes, lines, ph);
    return EMBER_OK;
}

static int run_batch(ember_stream *s, const plan *p, double started, char *msg)
{
    int team = ember_ctx_threads(s->ctx);
    if (team > 1 && plan_bytes(p) < SMALL_BATCH_BYTES)
        ember_ctx_set_threads(s->ctx, 1);
    phases ph = {.started = started};
    int rc = run_batch_on(s, p, &ph, msg);
    ember_ctx_set_threads(s->ctx, team);
    return rc;
}

/* ---- planning ------------------------------------------------------------------------ */

static int ts_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* The files of the retained offsets entries, sorted by name: what a
 * restart's check compares the listing with. Read once per restart. */
typedef struct {
    ember__sfile f; /* name moved out of its offsets entry */
    uint64_t batch;
} taken_file;

typedef struct {
    taken_file *v; /* ctx allocation */
    size_t n, cap;
} taken_set;

static int cmp_taken(const void *a, const void *b)
{
    return strcmp(((const taken_file *)a)->f.name, ((const taken_file *)b)->f.name);
}

static void taken_free(ember_ctx *ctx, taken_set *t)
{
    for (size_t i = 0; i < t->n; i++)
        ember__free(ctx, t->v[i].f.name);
    ember__free(ctx, t->v);
    memset(t, 0, sizeof *t);
}

/* Moves the names of o into t; -1 when out of memory. */
static int taken_add(ember_ctx *ctx, taken_set *t, ember__soffsets *o)
{
    if (o->nfiles > t->cap - t->n) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap - t->n < o->nfiles)
            cap *= 2;
        taken_file *v = ember__realloc(ctx, t->v, ember__mul(cap, sizeof *v));
        if (!v)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    for (size_t k = 0; k < o->nfiles; k++) {
        t->v[t->n++] = (taken_file){o->files[k], o->batch};
        o->files[k].name = NULL;
    }
    return 0;
}

/* Best effort: an entry that cannot be read lists nothing (its files are
 * then reported as late, as before retention could tell). */
static void taken_load(ember_stream *s, taken_set *t)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    if (ember__sl_list(s->ctx, s->offsets_dir, "", &ids, &n, NULL))
        return;
    for (size_t i = 0; i < n; i++) {
        ember__soffsets o;
        if (ember__sl_offsets_read(s->ctx, s->loc, ids[i], &o, NULL))
            continue;
        int oom = taken_add(s->ctx, t, &o);
        ember__sl_offsets_free(s->ctx, &o);
        if (oom)
            break;
    }
    ember__free(s->ctx, ids);
    if (t->n)
        qsort(t->v, t->n, sizeof *t->v, cmp_taken);
}

/* 1 when a file's stat shows a change since its batch took it, against
 * what the offsets entry recorded: another size or modification time. A
 * change of the inode alone (chmod, chown, a hard link: the ctime only)
 * is not one: the bytes are the same. Format 1 entries have no time: a
 * file modified after the last planning is the best sign there. */
static int taken_changed(const ember_stream *s, const taken_file *t, const struct stat *st)
{
    int64_t now_ns;
    if ((uint64_t)st->st_size != t->f.size)
        return 1;
    if (t->f.has_mtime)
        return ember__ts_ns(&st->st_mtim, &now_ns) || now_ns != t->f.mtime_ns;
    if (ember__ts_ns(&st->st_mtim, &now_ns) != 0)
        return 0; /* no time then or now (past 2262): the size alone tells */
    return s->planned_at.tv_sec && ts_after(&st->st_mtim, &s->planned_at);
}

/* "<s>.<ns> s" (floor division), or "?" when unknown. */
static void ns_text(char *buf, size_t size, int known, int64_t ns)
{
    int64_t sec = ns / 1000000000 - (ns % 1000000000 < 0);
    if (known)
        snprintf(buf, size, "%" PRId64 ".%09" PRId64 " s", sec, ns - sec * 1000000000);
    else
        snprintf(buf, size, "?");
}

/* A file a batch took that was written in place since: its new bytes
 * are never read. */
static void note_changed_after_taken(ember_stream *s, const taken_file *t,
                                     const struct stat *st)
{
    if (!taken_changed(s, t, st))
        return;
    char then[40], now[40];
    int64_t now_ns = 0;
    int known = ember__ts_ns(&st->st_mtim, &now_ns) == 0;
    ns_text(then, sizeof then, t->f.has_mtime, t->f.mtime_ns);
    ns_text(now, sizeof now, known, now_ns);
    warn(s, "source file %s/%s was modified after batch %" PRIu64 " took it: it had %"
            PRIu64 " bytes modified at %s then, %lld bytes modified at %s now; its new "
            "bytes, if any, are never read (files must not change once in the source "
            "directory)", s->source, t->f.name, t->batch, t->f.size, then,
         (long long)st->st_size, now);
}

/* The first listing after a restart has no previous listing to compare
 * with. A file at or before the mark that a retained offsets entry lists
 * is compared with what the entry recorded (size, modification time),
 * whenever it changed. One that no entry lists and whose inode changed
 * (created, written or renamed in) after the previous run planned its
 * last batch arrived while the stream was stopped. The listing and the
 * entries' files are both in name order: one walk, one stat a file. */
static void note_late_since_restart(ember_stream *s, const ember__sfile *f, size_t n)
{
    s->restart_check = 0;
    int dfd = open(s->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    taken_set taken = {0};
    taken_load(s, &taken);
    size_t j = 0, inode_only = 0;
    const char *first = NULL;
    for (size_t i = 0; i < n && strcmp(f[i].name, s->hwm) <= 0; i++) {
        struct stat st;
        if (fstatat(dfd, f[i].name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;
        while (j < taken.n && strcmp(taken.v[j].f.name, f[i].name) < 0)
            j++;
        if (j < taken.n && strcmp(taken.v[j].f.name, f[i].name) == 0) {
            note_changed_after_taken(s, &taken.v[j], &st);
            continue;
        }
        if (!s->planned_at.tv_sec || (!ts_after(&st.st_ctim, &s->planned_at) &&
                                      !ts_after(&st.st_mtim, &s->planned_at)))
            continue;
        s->stats.late_files++;
        if (!ts_after(&st.st_mtim, &s->planned_at)) {
            /* written before: moved in since, or only its mode, owner or
             * links changed (chmod -R, a restore with cp -a): said once */
            if (!inode_only++)
                first = f[i].name;
            continue;
        }
        warn(s, "late file %s/%s is not taken: it appeared after the previous run "
                "planned its last batch (or it is an older file modified since), and "
                "its name sorts at or before %s, the last file taken (files must "
                "arrive in name order; to have it counted, rename it to a name that "
                "sorts after %s)", s->source, f[i].name, s->hwm, s->hwm);
    }
    if (inode_only)
        warn(s, "%zu file%s of %s at or before %s, the last file taken (%s%s), written "
                "before the previous run planned its last batch, had %s inode changed "
                "since: moved in (then not taken: files must arrive in name order), or "
                "a mode, owner or link change (chmod, chown, cp -a), which loses "
                "nothing if an earlier batch counted %s", inode_only,
             inode_only == 1 ? "" : "s", s->source, s->hwm, first,
             inode_only == 1 ? "" : " the first", inode_only == 1 ? "its" : "their",
             inode_only == 1 ? "it" : "them");
    taken_free(s->ctx, &taken);
    close(dfd);
}

/* The newest WATCHED files of a batch that ran: moved out of its plan. */
#define WATCHED 64

static void watch_files(ember_stream *s, plan *p)
{
    ember__sfiles_free(s->ctx, s->watch, s->nwatch);
    size_t k = p->nfiles < WATCHED ? p->nfiles : WATCHED;
    s->nwatch = 0;
    s->watch = ember__malloc(s->ctx, ember__mul(k, sizeof *s->watch));
    if (!s->watch)
        return; /* a warning fewer */
    for (size_t i = p->nfiles - k; i < p->nfiles; i++) {
        s->watch[s->nwatch++] = p->files[i];
        p->files[i].name = NULL;
    }
    s->watch_batch = p->batch;
}

/* A file the last batch took that changed since is reported once, while
 * the stream runs (a producer writing in place under the final name: the
 * batch read what was there; the rest is never read). A restart compares
 * every retained entry's files (note_late_since_restart). */
static void note_watched(ember_stream *s)
{
    int dfd = s->nwatch ? open(s->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    for (size_t i = 0; dfd >= 0 && i < s->nwatch; i++) {
        struct stat st;
        taken_file t = {s->watch[i], s->watch_batch};
        if (!s->watch[i].name || fstatat(dfd, s->watch[i].name, &st, 0) != 0 ||
            !taken_changed(s, &t, &st))
            continue;
        note_changed_after_taken(s, &t, &st);
        ember__free(s->ctx, s->watch[i].name); /* once */
        s->watch[i].name = NULL;
    }
    if (dfd >= 0)
        close(dfd);
}

/* Warns about files that appeared since the last listing with names that
 * sort at or before the last one taken: they will never be taken. */
static void note_late(ember_stream *s, const ember__sfile *f, size_t n)
{
    if (s->restart_check)
        note_late_since_restart(s, f, n);
    if (!s->hwm[0] || !s->have_prev)
        return;
    size_t j = 0;
    for (size_t i = 0; i < n && strcmp(f[i].name, s->hwm) <= 0; i++) {
        while (j < s->nprev && strcmp(s->prev[j].name, f[i].name) < 0)
            j++;
        if (j < s->nprev && strcmp(s->prev[j].name, f[i].name) == 0)
            continue;
        s->stats.late_files++;
        warn(s, "late file %s/%s is not taken: its name sorts at or before %s, the "
                "last file taken (files must arrive in name order; to have it "
                "counted, rename it to a name that sorts after %s)",
             s->source, f[i].name, s->hwm, s->hwm);
    }
}

/* The index of the first name after hwm. */
static size_t first_new(const ember_stream *s, const ember__sfile *f, size_t n)
{
    size_t lo = 0, hi = n;
    while (s->hwm[0] && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(f[mid].name, s->hwm) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Copies files [from, from + k) of f into a new plan. */
static int take(ember_stream *s, const ember__sfile *f, size_t from, size_t k, plan *p,
                char *msg)
{
    p->files = ember__calloc(s->ctx, k, sizeof *p->files);
    int rc = p->files ? EMBER_OK : EMBER_ENOMEM;
    for (size_t i = 0; !rc && i < k; i++) {
        p->files[i] = f[from + i];
        p->files[i].name = ember__strdup(s->ctx, f[from + i].name);
        rc = p->files[i].name ? EMBER_OK : EMBER_ENOMEM;
        p->nfiles = i + 1;
    }
    if (rc) {
        plan_free(s->ctx, p);
        return ember__err(msg, rc, "out of memory");
    }
    return EMBER_OK;
}

static size_t batch_limit(const ember_stream *s, int all)
{
    return all || !s->o.max_files ? SIZE_MAX : s->o.max_files;
}

/* Lists the source and takes the next files (AVAILABLE_NOW: from the
 * listing made at the start of the run). p->nfiles 0: nothing new. */
static int plan_next(ember_stream *s, int all, plan *p, char *msg)
{
    memset(p, 0, sizeof *p);
    p->batch = s->next_batch;
    if (s->avail) {
        size_t k = s->navail - s->avail_pos, lim = batch_limit(s, all);
        k = k < lim ? k : lim;
        int rc = k ? take(s, s->avail, s->avail_pos, k, p, msg) : EMBER_OK;
        s->avail_pos += rc ? 0 : k;
        return rc;
    }
    ember__sfile *f = NULL;
    size_t n = 0;
    int rc = ember__src_list(s->ctx, s->source, s->hwm[0] ? s->hwm : NULL,
                             &s->list_hook, s->seen, &f, &n, msg);
    if (rc)
        return rc;
    note_late(s, f, n);
    note_watched(s);
    size_t from = first_new(s, f, n), k = n - from, lim = batch_limit(s, all);
    k = k < lim ? k : lim;
    if (k)
        rc = take(s, f, from, k, p, msg);
    ember__sfiles_free(s->ctx, s->prev, s->nprev);
    s->prev = f;
    s->nprev = n;
    s->have_prev = 1;
    return rc;
}

/* Cannot fail: once a batch is planned the mark must move. Names are at
 * most NAME_MAX bytes (readdir's, and the offsets log refuses longer). */
static void set_hwm(ember_stream *s, const plan *p)
{
    snprintf(s->hwm, sizeof s->hwm, "%s", p->files[p->nfiles - 1].name);
}

/* The offsets entry of a new batch. Its durable commit runs while the
 * batch computes (nothing of the batch is visible before run_batch waits
 * for it), which hides two fsyncs a batch. */
static int write_offsets(ember_stream *s, const plan *p, char *msg)
{
    ember__soffsets o = {.batch = p->batch, .files = p->files, .nfiles = p->nfiles};
    memcpy(o.query_id, s->query_id, sizeof o.query_id);
    int rc = ember__af_commit_wait(&s->offsets_job, msg); /* one at a time */
    /* A small batch has nothing to overlap with: a helper thread would only
     * add a wait for the scheduler. */
    int overlap = plan_bytes(p) >= SMALL_BATCH_BYTES && ember_ctx_threads(s->ctx) > 1;
    return rc ? rc : ember__sl_offsets_write(s->ctx, s->loc, &o,
                                             overlap ? &s->offsets_job : NULL, msg);
}

/* One batch: the pending one, else a new one (all: no file limit). */
static int step(ember_stream *s, int all, int *ran, char *msg)
{
    *ran = 0;
    double started = now_s();
    plan p;
    int rc;
    if (s->have_pending) {
        rc = run_batch(s, &s->pending, started, msg);
        if (rc)
            return rc;
        watch_files(s, &s->pending);
        plan_free(s->ctx, &s->pending);
        s->have_pending = 0;
        *ran = 1;
        return EMBER_OK;
    }
    if ((rc = plan_next(s, all, &p, msg)) || !p.nfiles)
        return rc;
    if ((rc = write_offsets(s, &p, msg))) {
        plan_free(s->ctx, &p);
        return rc;
    }
    set_hwm(s, &p);
    rc = run_batch(s, &p, started, msg);
    if (rc) { /* the batch is planned: a later step or start re-runs it */
        s->pending = p;
        s->have_pending = 1;
        return rc;
    }
    watch_files(s, &p);
    plan_free(s->ctx, &p);
    *ran = 1;
    return EMBER_OK;
}

/* ---- recovery ------------------------------------------------------------------------ */

static int read_plan(ember_stream *s, uint64_t batch, plan *p, char *msg)
{
    ember__soffsets o;
    int rc = ember__sl_offsets_read(s->ctx, s->loc, batch, &o, msg);
    if (rc == EMBER_ENOTFOUND)
        return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: offsets/%" PRIu64
                          " is missing", s->loc, batch);
    if (!rc && strcmp(o.query_id, s->query_id) != 0) {
        ember__sl_offsets_free(s->ctx, &o);
        return ember__err(msg, EMBER_EMISMATCH, "%s/offsets/%" PRIu64 " belongs to "
                          "query %s, not %s", s->loc, batch, o.query_id, s->query_id);
    }
    if (rc)
        return rc;
    *p = (plan){batch, o.files, o.nfiles, 0};
    return EMBER_OK;
}

/* The hashes a committed batch's files had, from its commit entry (none
 * in a format 1 entry: those batches are replayed on trust, as before
 * hashes were recorded, with the size check only). With hashes, the
 * content decides: a file only touched (a new time, the same bytes) is
 * fine, so the planning time is not compared. */
static int replay_hashes(ember_stream *s, plan *p, ember__scommit *c, char *msg)
{
    int rc = ember__sl_commit_read(s->ctx, s->loc, p->batch, c, msg);
    if (rc == EMBER_ENOTFOUND)
        return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: commits/%" PRIu64
                          " is missing", s->loc, p->batch);
    if (!rc && c->hashes && c->files != p->nfiles)
        rc = ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: commits/%" PRIu64
                        " lists %" PRIu64 " files, offsets/%" PRIu64 " %zu", s->loc,
                        p->batch, c->files, p->batch, p->nfiles);
    for (size_t i = 0; !rc && c->hashes && i < p->nfiles; i++)
        p->files[i].has_mtime = 0;
    return rc;
}

/* Recomputes committed batches (from, to] into the state, without output. */
static int replay(ember_stream *s, uint64_t from, uint64_t to, int from_empty, char *msg)
{
    for (uint64_t b = from_empty ? 0 : from + 1; b <= to; b++) {
        plan p;
        batch_run r;
        ember__scommit c;
        memset(&r, 0, sizeof r);
        memset(&c, 0, sizeof c);
        int rc = read_plan(s, b, &p, msg);
        if (!rc)
            rc = replay_hashes(s, &p, &c, msg);
        if (!rc)
            rc = compute(s, &p, &r, 1, c.hashes, msg);
        ember__sl_commit_free(s->ctx, &c);
        ember__ss_forget(&s->st, &r.undo);
        run_free(s, &r);
        plan_free(s->ctx, &p);
        if (rc) {
            char inner[EMBER_MSG_SIZE];
            snprintf(inner, sizeof inner, "%s", msg ? msg : "");
            return ember__err(msg, rc, "cannot rebuild the state by re-running batch %"
                              PRIu64 ": %s", b, inner);
        }
        s->stats.replayed++;
    }
    return EMBER_OK;
}

/* Loads the newest snapshot at or before C that verifies. *found 0: none
 * did (the message lists why). */
static int load_snapshot(ember_stream *s, uint64_t C, int *found, uint64_t *version,
                         char *msg)
{
    uint64_t *v = NULL;
    size_t n = 0;
    *found = 0;
    int rc = ember__sl_list(s->ctx, s->state_dir, ".h5", &v, &n, msg);
    for (size_t i = n; !rc && i-- > 0 && !*found;) {
        if (v[i] > C)
            continue; /* written by a batch that never committed */
        char path[PATH_MAX + 32], why[EMBER_MSG_SIZE] = "";
        snprintf(path, sizeof path, "%s/%" PRIu64 ".h5", s->state_dir, v[i]);
        int r = ember__ss_load(&s->st, path, s->fingerprint, s->query_id, v[i], why);
        if (r == EMBER_ENOMEM) {
            rc = ember__err(msg, r, "%s", why);
        } else if (r == EMBER_OK) {
            *found = 1;
            *version = v[i];
        } else {
            s->stats.snapshot_fallbacks++;
            warn(s, "state snapshot %s cannot be used (%s); falling back to an older "
                    "one and re-running the batches after it", path, why);
            ember__err(msg, r, "%s", why);
        }
    }
    ember__free(s->ctx, v);
    return rc;
}

/* C: the last commit, whose entry names the snapshot it left (named:
 * its version, or NULL for none). */
static int restore_state(ember_stream *s, uint64_t C, const uint64_t *named,
                         uint64_t oldest_offsets, char *msg)
{
    int found = 0;
    uint64_t v = 0;
    char why[EMBER_MSG_SIZE] = "", path[PATH_MAX + 32];
    struct stat st;
    if (named && (size_t)snprintf(path, sizeof path, "%s/%" PRIu64 ".h5", s->state_dir,
                                  *named) < sizeof path &&
        stat(path, &st) != 0 && errno == ENOENT) {
        s->stats.snapshot_fallbacks++;
        warn(s, "state snapshot %s, which commits/%" PRIu64 " names, is missing; "
                "falling back to an older one and re-running the batches after it",
             path, C);
    }
    int rc = load_snapshot(s, C, &found, &v, why);
    if (rc)
        return ember__err(msg, rc, "%s", why);
    if (!found && oldest_offsets > 0)
        return ember__err(msg, EMBER_ECORRUPT,
                          "checkpoint location %s: no state snapshot at or before batch %"
                          PRIu64 " can be read%s%s, and the logs needed to rebuild the state "
                          "from the start are gone (the oldest offsets entry is batch %"
                          PRIu64 "); the state is lost: use a new location",
                          s->loc, C, why[0] ? ": last error: " : "", why, oldest_offsets);
    if (found) {
        s->stats.restored = 1;
        s->stats.restored_from = v;
        s->have_snapshot = 1;
        s->state_version = v;
    }
    if (found && v == C)
        return EMBER_OK;
    if ((rc = replay(s, v, C, !found, msg)))
        return rc;
    /* So that the next start need not replay. */
    int rc2 = ember__ss_save(&s->st, s->state_dir, C, s->description, s->fingerprint,
                             s->query_id, msg);
    if (!rc2) {
        s->have_snapshot = 1;
        s->state_version = C;
    }
    return rc2;
}

/* The offsets entries (ids of, ascending) must run without a gap up to
 * the last commit C or C + 1; otherwise names the first entry missing. */
static int check_log_ranges(const ember_stream *s, const uint64_t *of, size_t no,
                            int have_commit, uint64_t C, char *msg)
{
    const char *fix = "the location was damaged: restore the file or use a new location";
    for (size_t i = 1; i < no; i++)
        if (of[i] != of[i - 1] + 1)
            return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: offsets/%"
                              PRIu64 " is missing (offsets/%" PRIu64 " and offsets/%"
                              PRIu64 " are there); %s", s->loc, of[i - 1] + 1, of[i - 1],
                              of[i], fix);
    uint64_t O = of[no - 1];
    if (have_commit && O < C)
        return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: offsets/%" PRIu64
                          " is missing (commits/%" PRIu64 " is there, the newest offsets "
                          "entry is offsets/%" PRIu64 "); %s", s->loc, O + 1, C, O, fix);
    /* The one entry without a commit: C + 1, or with no commit at all the
     * first batch's, offsets/0 (retention deletes nothing before a commit,
     * so a lone offsets/7 means commits were lost: running it from an
     * empty state would write wrong rows). */
    uint64_t want = have_commit ? C + 1 : 0;
    if (O > want && have_commit)
        return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: commits/%" PRIu64
                          " is missing (offsets/%" PRIu64 " is there, the newest commit "
                          "is commits/%" PRIu64 "); %s", s->loc, want, O, C, fix);
    if (O > want)
        return ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: commits/0 is "
                          "missing (offsets/%" PRIu64 " is there, and no commit: without "
                          "one, the only offsets entry can be offsets/0, a first batch "
                          "planned and not committed); %s", s->loc, O, fix);
    return EMBER_OK;
}

/* A sink file name as ember__sink_name makes it: 1 and its batch. */
static int sink_batch_id(const char *name, uint64_t *id)
{
    size_t len = strlen(name), digits = len > 10 ? len - 10 : 0;
    if (digits < 12 || digits > 20 || strncmp(name, "batch-", 6) != 0 ||
        strcmp(name + len - 4, ".csv") != 0 || strspn(name + 6, "0123456789") != digits)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(name + 6, NULL, 10);
    *id = v;
    return errno == 0;
}

/* The newest batch file in the sink: 1 and its id, 0 when none. */
static int sink_newest(const char *dir, uint64_t *newest)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    uint64_t id;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (sink_batch_id(de->d_name, &id) && (!found || id > *newest)) {
            *newest = id;
            found = 1;
        }
    closedir(d);
    return found;
}

/* What the logs say has run, for the messages below. */
static void logs_summary(char *buf, size_t size, int have_offsets, uint64_t O,
                         int have_commit, uint64_t C)
{
    if (!have_offsets)
        snprintf(buf, size, "it has planned no batch");
    else if (!have_commit)
        snprintf(buf, size, "it has committed no batch; batch 0 is planned");
    else if (O == C)
        snprintf(buf, size, "its last commit is batch %" PRIu64 " and no batch after "
                 "it is planned", C);
    else
        snprintf(buf, size, "its last commit is batch %" PRIu64 "; batch %" PRIu64
                 " is planned, not committed", C, O);
}

/* Nothing of a batch after the newest offsets entry O can exist: a batch
 * writes its offsets entry before its snapshot and its sink file (and
 * retention keeps the newest entry). A snapshot after O means lost logs;
 * a sink file after O (a kill between a batch's sink file and its commit
 * leaves batch O's, which is allowed) means a location older than its
 * sink, restored from a copy say: going on would rewrite some batch files
 * and leave the newer ones, stale, as the newest output. */
static int check_nothing_newer(ember_stream *s, int have_offsets, uint64_t O,
                               int have_commit, uint64_t C, char *msg)
{
    char ran[160];
    logs_summary(ran, sizeof ran, have_offsets, O, have_commit, C);
    uint64_t *v = NULL, newest = 0;
    size_t n = 0;
    int rc = s->aggregating ? ember__sl_list(s->ctx, s->state_dir, ".h5", &v, &n, msg)
                            : EMBER_OK;
    if (!rc && n && (!have_offsets || v[n - 1] > O))
        rc = ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s: state/%" PRIu64
                        ".h5 is there, but %s: the logs of the batches up to it are "
                        "missing; the location was damaged: restore the files or use a "
                        "new location", s->loc, v[n - 1], ran);
    ember__free(s->ctx, v);
    if (rc || !s->sink_dir || !sink_newest(s->sink_dir, &newest) ||
        (have_offsets && newest <= O))
        return rc;
    char name[48], keep[64] = "";
    ember__sink_name(newest, name, sizeof name);
    if (have_offsets)
        snprintf(keep, sizeof keep, " numbered above %" PRIu64, O);
    return ember__err(msg, EMBER_EMISMATCH, "sink directory %s holds %s, a batch that "
                      "checkpoint location %s has no record of (%s): the location is "
                      "older than the sink (restored from an older copy?) or lost its "
                      "logs, and going on would leave stale batch files as the newest "
                      "output; restore the location that wrote them, or move the sink's "
                      "batch files%s out of it (the stream then writes those batches "
                      "again), or use a new sink directory and location", s->sink_dir,
                      name, s->loc, ran, keep);
}

/* The mirror of check_nothing_newer's sink test: a committed batch
 * (those retained: ids) whose file the sink lacks was removed, or the sink
 * restored from an older copy. Nothing writes a committed batch again, so
 * its rows (an append or update batch's) are missing from the output for
 * good: said, not refused (the rest of the output is right). */
static void check_sink_has(ember_stream *s, const uint64_t *ids, size_t n)
{
    char name[48], path[PATH_MAX];
    struct stat st;
    for (size_t i = 0; s->sink_dir && i < n; i++) {
        ember__sink_name(ids[i], name, sizeof name);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", s->sink_dir, name) < sizeof path &&
            stat(path, &st) != 0 && errno == ENOENT)
            warn(s, "sink directory %s lacks %s, the output of committed batch %" PRIu64
                    " (removed, or the sink restored from an older copy?): its rows are "
                    "not in the sink, and no batch writes them again", s->sink_dir,
                 name, ids[i]);
    }
}

/* The retained log entries a restart does not read (all but the newest
 * offsets and commits entries) are read once here, so damage in them is
 * said now, not when a fallback to an older state snapshot needs them and
 * fails. A warning, not a refusal: this restart's result does not depend
 * on them. */
static void check_retained(ember_stream *s, const uint64_t *co, size_t nc,
                           const uint64_t *of, size_t no)
{
    char m[EMBER_MSG_SIZE];
    size_t bad = 0;
    for (size_t i = 0; i + 1 < no; i++) {
        ember__soffsets o;
        int rc = ember__sl_offsets_read(s->ctx, s->loc, of[i], &o, m);
        ember__sl_offsets_free(s->ctx, &o);
        if (rc && rc != EMBER_ENOMEM && ++bad)
            warn(s, "%s", m);
    }
    for (size_t i = 0; i + 1 < nc; i++) {
        ember__scommit c;
        int rc = ember__sl_commit_read(s->ctx, s->loc, co[i], &c, m);
        ember__sl_commit_free(s->ctx, &c);
        if (rc && rc != EMBER_ENOMEM && ++bad)
            warn(s, "%s", m);
    }
    const char *it = bad == 1 ? "it" : "them";
    if (bad)
        warn(s, "%zu retained log %s in %s damaged (above): this restart does not "
                "read %s, but one that falls back to an older state snapshot re-runs "
                "batches from them and would stop; restore %s from a copy, or let "
                "retention delete %s", bad, bad == 1 ? "entry is" : "entries are",
             s->loc, it, it, it);
}

/* Reads the logs: the last commit, the pending batch, the high-water
 * mark; restores the state. */
static int recover(ember_stream *s, char *msg)
{
    uint64_t *co = NULL, *of = NULL;
    size_t nc = 0, no = 0;
    int rc = ember__sl_list(s->ctx, s->commits_dir, "", &co, &nc, msg);
    if (!rc)
        rc = ember__sl_list(s->ctx, s->offsets_dir, "", &of, &no, msg);
    uint64_t C = nc ? co[nc - 1] : 0, O = no ? of[no - 1] : 0, first = no ? of[0] : 0;
    if (!rc && no)
        rc = check_log_ranges(s, of, no, nc > 0, C, msg);
    if (!rc && (no || !nc))
        rc = check_nothing_newer(s, no > 0, O, nc > 0, C, msg);
    if (!rc) {
        check_sink_has(s, co, nc);
        check_retained(s, co, nc, of, no);
    }
    ember__free(s->ctx, co);
    ember__free(s->ctx, of);
    if (rc || !no) {
        if (!rc && nc)
            rc = ember__err(msg, EMBER_ECORRUPT, "checkpoint location %s has commits "
                            "but no offsets entries: it was damaged; restore %s/offsets "
                            "or use a new location", s->loc, s->loc);
        return rc;
    }
    ember__scommit c = {0};
    if (nc) {
        if ((rc = ember__sl_commit_read(s->ctx, s->loc, C, &c, msg)) == EMBER_ECORRUPT) {
            char why[EMBER_MSG_SIZE];
            snprintf(why, sizeof why, "%s", msg);
            return ember__err(msg, rc, "%s; it is the newest commit: delete it and "
                              "the next start runs batch %" PRIu64 " again, as after "
                              "a kill before its commit", why, C);
        }
        if (rc)
            return rc;
        ember__sl_commit_free(s->ctx, &c); /* its hashes matter to a replay only */
        if (strcmp(c.query_id, s->query_id) != 0)
            return ember__err(msg, EMBER_EMISMATCH, "%s/commits/%" PRIu64 " belongs to "
                              "query %s, not %s", s->loc, C, c.query_id, s->query_id);
        s->have_committed = 1;
        s->last_committed = C;
    }
    plan last;
    if ((rc = read_plan(s, O, &last, msg)))
        return rc;
    set_hwm(s, &last);
    s->restart_check = 1;
    char entry[PATH_MAX + 32];
    struct stat est;
    snprintf(entry, sizeof entry, "%s/%" PRIu64, s->offsets_dir, O);
    if (stat(entry, &est) == 0)
        s->planned_at = est.st_mtim;
    if (s->aggregating && nc)
        rc = restore_state(s, C, c.has_state ? &c.state_version : NULL, first, msg);
    if (rc || (nc && O == C)) {
        plan_free(s->ctx, &last);
        s->next_batch = O + 1;
        return rc;
    }
    last.recovered = 1;
    s->pending = last;
    s->have_pending = 1;
    s->next_batch = O;
    return EMBER_OK;
}

/* ---- create / destroy ---------------------------------------------------------------- */

static int copy_strings(ember_stream *s, const ember_stream_opts *o, char *msg)
{
    s->source = ember__strdup(s->ctx, o->source_dir);
    s->loc = ember__strdup(s->ctx, o->checkpoint_location);
    s->query = ember__strdup(s->ctx, o->query ? o->query : "");
    s->sink_dir = o->sink_dir ? ember__strdup(s->ctx, o->sink_dir) : NULL;
    if (!s->source || !s->loc || !s->query || (o->sink_dir && !s->sink_dir))
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    s->o.source_dir = s->source;
    s->o.checkpoint_location = s->loc;
    s->o.query = s->query;
    s->o.sink_dir = s->sink_dir;
    s->o.record_type = &s->st.type;
    return EMBER_OK;
}

static int check_source(const char *dir, char *msg)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "source directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ember__err(msg, EMBER_EINVAL, "source %s is not a directory", dir);
    return EMBER_OK;
}

/* Where a directory is, or will be once ember__sl_mkdir makes it: its
 * device and inode when it exists, else the real path of its parent joined
 * with its last name (the path as given when the parent is missing too:
 * then it cannot be made, and the make fails with its own message). */
typedef struct {
    int exists;
    dev_t dev;
    ino_t ino;
    char path[PATH_MAX + NAME_MAX + 2];
} dir_id;

static void dir_identify(const char *path, dir_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->exists = 1;
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        return;
    }
    char parent[PATH_MAX];
    ember__parent_dir(path, parent, sizeof parent);
    size_t end = strlen(path), at;
    while (end > 1 && path[end - 1] == '/') /* "out/" names out */
        end--;
    for (at = end; at && path[at - 1] != '/'; at--)
        ;
    int len = (int)(end - at);
    int dots = (len == 1 || len == 2) && strspn(path + at, ".") >= (size_t)len;
    char *real = dots ? NULL : realpath(parent, NULL);
    if (!real || (size_t)snprintf(id->path, sizeof id->path, "%s/%.*s",
                                  strcmp(real, "/") ? real : "", len, path + at) >=
                     sizeof id->path)
        snprintf(id->path, sizeof id->path, "%s", path);
    free(real);
}

static int same_dir(const dir_id *a, const dir_id *b)
{
    if (a->exists != b->exists)
        return 0;
    return a->exists ? a->dev == b->dev && a->ino == b->ino : !strcmp(a->path, b->path);
}

/* The real path path has, or would have once made: its nearest existing
 * parent's real path and the names below it. 0, or -1. */
static int would_be(const char *path, char *out, size_t size)
{
    char at[PATH_MAX], up[PATH_MAX];
    struct stat st;
    snprintf(at, sizeof at, "%s", path);
    while (stat(at, &st) != 0) {
        ember__parent_dir(at, up, sizeof up);
        if (!strcmp(up, at))
            return -1;
        memcpy(at, up, sizeof at);
    }
    char *real = realpath(at, NULL);
    if (!real)
        return -1;
    /* then the names below it, those past at ("." stands for none), less
     * empty and "." ones */
    int n = snprintf(out, size, "%s", strcmp(real, "/") ? real : "");
    free(real);
    for (const char *c = !strcmp(at, ".") ? path : path + strlen(at);
         n >= 0 && (size_t)n < size && *c;) {
        size_t len = strcspn(c, "/");
        if (len && !(len == 1 && c[0] == '.'))
            n += snprintf(out + n, size - (size_t)n, "/%.*s", (int)len, c);
        c += len + (c[len] == '/');
    }
    if (n == 0)
        n = snprintf(out, size, "/");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Whether the directory `dir` lies inside the directory `outer`, by the
 * real paths they have or would have once made. */
static int dir_inside(const char *dir, const char *outer)
{
    char d[PATH_MAX], o[PATH_MAX];
    if (would_be(dir, d, sizeof d) || would_be(outer, o, sizeof o))
        return 0;
    size_t n = strlen(o);
    return strncmp(d, o, n) == 0 && d[n] == '/';
}

/* The source, the checkpoint location and the sink must be three
 * directories, and neither the source nor the sink inside the location: a
 * location in the source feeds the stream its own lock and logs as words
 * (so does a source in the location), a sink in it every earlier batch's
 * output, and a sink in the location mixes output with bookkeeping (in
 * its state/, batch files beside the snapshots). Compared by device and
 * inode, so another spelling (a symlink, "in/.", a relative path) is the
 * same directory. A subdirectory of the source is fine: the source skips
 * directories. */
static int check_distinct(const ember_stream *s, char *msg)
{
    dir_id src, loc, sink;
    dir_identify(s->source, &src);
    dir_identify(s->loc, &loc);
    if (same_dir(&loc, &src))
        return ember__err(msg, EMBER_EINVAL, "stream: the checkpoint location %s is the "
                          "source directory %s: the stream would read its own lock and "
                          "logs as input files; use a checkpoint location outside the "
                          "source directory (a subdirectory of it is fine)", s->loc,
                          s->source);
    /* nor inside it: --source ck/offsets would count the stream's own log */
    if (dir_inside(s->source, s->loc))
        return ember__err(msg, EMBER_EINVAL, "stream: the source directory %s is inside "
                          "the checkpoint location %s: the stream would read its own "
                          "logs as input files; use a source outside it", s->source,
                          s->loc);
    if (!s->sink_dir)
        return EMBER_OK;
    dir_identify(s->sink_dir, &sink);
    if (same_dir(&sink, &src))
        return ember__err(msg, EMBER_EINVAL, "stream: the sink directory %s is the source "
                          "directory %s: every batch would read the output files of the "
                          "batches before it as input; use another sink directory",
                          s->sink_dir, s->source);
    if (same_dir(&sink, &loc) || dir_inside(s->sink_dir, s->loc))
        return ember__err(msg, EMBER_EINVAL, "stream: the sink directory %s is %s "
                          "checkpoint location %s: output and bookkeeping must not share "
                          "a directory; use another sink directory", s->sink_dir,
                          same_dir(&sink, &loc) ? "the" : "inside the", s->loc);
    return EMBER_OK;
}

static int setup(ember_stream *s, const ember_stream_opts *opts, char *msg)
{
    int rc = check_required(opts, msg);
    if (!rc)
        rc = check_ranges(opts, msg);
    if (rc)
        return rc;
    s->o = *opts;
    s->aggregating = opts->key != EMBER_KEY_NONE;
    if ((rc = check_mode(&s->o.output_mode, s->aggregating, msg)))
        return rc;
    if (s->aggregating)
        rc = ember__ss_init(&s->st, s->ctx, opts->record_type, opts->key, opts->merge,
                            opts->merge_arg, msg);
    else if (!(rc = ember__ss_check_type(opts->record_type, EMBER_KEY_NONE, msg)))
        s->st.type = *opts->record_type; /* the type only: no state */
    if (!rc)
        rc = copy_strings(s, opts, msg);
    if (!rc)
        rc = check_source(s->source, msg);
    if (!rc)
        rc = check_distinct(s, msg);
    struct stat sst;
    int made_sink = 0; /* removed again if the start is refused */
    if (!rc && s->sink_dir) {
        made_sink = stat(s->sink_dir, &sst) != 0;
        rc = make_dir_as("sink directory", s->sink_dir, msg);
        made_sink &= !rc;
    }
    if (!rc)
        rc = describe(s, msg);
    if (!rc)
        rc = layout_paths(s, msg);
    /* A new query's sink is checked before its location is made too, so
     * that a refused start leaves no empty location behind (check_metadata
     * checks again under the location's lock). */
    char meta[PATH_MAX];
    if (!rc && !(rc = join_path(meta, s->loc, "metadata", msg)) && s->sink_dir &&
        access(meta, F_OK) != 0 && errno == ENOENT)
        rc = check_sink_for_new(s, msg);
    if (!rc)
        rc = make_layout(s, msg);
    if (!rc)
        rc = check_metadata(s, msg);
    if (!rc)
        rc = claim_sink(s, msg);
    /* One stream writes a sink at a time: a copy of this location (a
     * backup run as a second stream) would write the same batch files from
     * another plan of batches. */
    if (!rc && s->sink_dir)
        rc = ember__dir_lock(s->sink_dir, EMBER__SINK_OWNER ".lock", "sink directory",
                             &s->sink_lock_fd, msg);
    /* Only once the sink is this query's and this stream's: a .tmp there is
     * then a crashed write of this query's, not another's write under way. */
    if (!rc && s->sink_dir)
        ember__dir_sweep(s->sink_dir, ".batch-", NULL);
    if (!rc)
        rc = recover(s, msg);
    if (!rc && !opts->no_signals)
        rc = install_signals(s, msg);
    if (rc && made_sink) /* rmdir: not once it holds the owner's file */
        (void)rmdir(s->sink_dir);
    return rc;
}

int ember_stream_create(ember_stream **out, ember_ctx *ctx,
                        const ember_stream_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !opts)
        return ember__err(msg, EMBER_EINVAL, "ember_stream_create: NULL argument");
    *out = NULL;
    ember_stream *s = ember__calloc(ctx, 1, sizeof *s);
    if (!s)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    s->ctx = ctx;
    s->lock_fd = s->sink_lock_fd = -1;
    s->t0 = now_s();
    int rc = setup(s, opts, msg);
    if (rc) {
        ember_stream_destroy(&s);
        return rc;
    }
    s->sink = (ember__sink){.ctx = ctx, .dir = s->sink_dir,
                            .console = opts->console ? opts->console : stdout,
                            .row_fn = opts->row_fn, .row_arg = opts->row_arg,
                            .header = opts->header,
                            .type = &s->st.type, .key = opts->key};
    memcpy(s->stats.query_id, s->query_id, sizeof s->query_id);
    *out = s;
    ember__msg_clear(msg); /* a first start's owner lookup left "No such file" */
    return EMBER_OK;
}

void ember_stream_destroy(ember_stream **ps)
{
    if (!ps || !*ps)
        return;
    ember_stream *s = *ps;
    ember_ctx *ctx = s->ctx;
    ember__af_commit_wait(&s->offsets_job, NULL);
    ember__signals_restore(&s->sig);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    if (s->sink_lock_fd >= 0)
        close(s->sink_lock_fd);
    if (s->aggregating)
        ember__ss_free(&s->st);
    plan_free(ctx, &s->pending);
    ember__sfiles_free(ctx, s->prev, s->nprev);
    ember__sfiles_free(ctx, s->watch, s->nwatch);
    ember__sfiles_free(ctx, s->avail, s->navail);
    ember__free(ctx, s->description);
    ember__free(ctx, s->source);
    ember__free(ctx, s->loc);
    ember__free(ctx, s->sink_dir);
    ember__free(ctx, s->query);
    ember__free(ctx, s);
    *ps = NULL;
}

/* ---- running ------------------------------------------------------------------------- */

int ember_stream_step(ember_stream *s, int *ran, char *msg)
{
    ember__msg_clear(msg);
    int dummy;
    if (!s)
        return ember__err(msg, EMBER_EINVAL, "ember_stream_step: NULL stream");
    return step(s, 0, ran ? ran : &dummy, msg);
}

/* Sleeps until `until` (monotonic seconds) or a stop. */
static void wait_until(ember_stream *s, double until)
{
    for (double t = now_s(); t < until && !stopping(s); t = now_s()) {
        double d = until - t < WAIT_SLICE ? until - t : WAIT_SLICE;
        struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
}

/* AVAILABLE_NOW: the files present now, after the last one taken. */
static int snapshot_available(ember_stream *s, char *msg)
{
    ember__sfile *f = NULL;
    size_t n = 0;
    int rc = ember__src_list(s->ctx, s->source, s->hwm[0] ? s->hwm : NULL,
                             &s->list_hook, s->seen, &f, &n, msg);
    if (rc)
        return rc;
    note_late(s, f, n); /* after a restart: files that came meanwhile */
    size_t from = first_new(s, f, n);
    s->avail = ember__calloc(s->ctx, n - from + 1, sizeof *s->avail);
    if (!s->avail) {
        ember__sfiles_free(s->ctx, f, n);
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    for (size_t i = from; i < n; i++) {
        s->avail[i - from] = f[i];
        f[i].name = NULL;
    }
    s->navail = n - from;
    s->avail_pos = 0;
    ember__sfiles_free(s->ctx, f, n);
    return EMBER_OK;
}

static void drop_available(ember_stream *s)
{
    ember__sfiles_free(s->ctx, s->avail, s->navail);
    s->avail = NULL;
    s->navail = s->avail_pos = 0;
}

/* ONCE and AVAILABLE_NOW. */
static int run_finite(ember_stream *s, char *msg)
{
    int ran = 0, rc = EMBER_OK, once = s->o.trigger == EMBER_TRIGGER_ONCE;
    uint64_t done = 0;
    if (s->have_pending) {
        if ((rc = step(s, 0, &ran, msg)))
            return rc;
        done += ran;
    }
    if (!once && (rc = snapshot_available(s, msg)))
        return rc;
    int more = 1; /* ONCE: its batch is still to run; AVAILABLE_NOW: files may remain */
    while (more && !stopping(s) && !(s->o.max_batches && done >= s->o.max_batches)) {
        if ((rc = step(s, once, &ran, msg)))
            break;
        done += ran;
        more = once ? 0 : ran;
    }
    int left = once ? more : s->avail_pos < s->navail;
    drop_available(s);
    if (rc)
        return rc;
    return stopping(s) && left ? EMBER_INTERRUPTED : EMBER_OK;
}

/* DEFAULT and PROCESSING_TIME. */
static int run_forever(ember_stream *s, char *msg)
{
    uint64_t done = 0;
    double tick = now_s(), interval = s->o.interval;
    double poll = s->o.poll > 0 ? s->o.poll : DEFAULT_POLL;
    int pt = s->o.trigger == EMBER_TRIGGER_PROCESSING_TIME;
    for (;;) {
        if (stopping(s))
            return EMBER_INTERRUPTED;
        if (s->o.max_batches && done >= s->o.max_batches)
            return EMBER_OK;
        if (pt) {
            wait_until(s, tick);
            if (stopping(s))
                return EMBER_INTERRUPTED;
        }
        double started = now_s();
        int ran = 0, rc = step(s, 0, &ran, msg);
        if (rc)
            return rc;
        done += ran;
        if (pt) /* the first grid point after this batch's start */
            tick = s->t0 + (floor((started - s->t0) / interval) + 1) * interval;
        else if (!ran)
            wait_until(s, now_s() + poll);
    }
}

int ember_stream_run(ember_stream *s, char *msg)
{
    ember__msg_clear(msg);
    if (!s)
        return ember__err(msg, EMBER_EINVAL, "ember_stream_run: NULL stream");
    int rc = s->o.trigger == EMBER_TRIGGER_ONCE || s->o.trigger == EMBER_TRIGGER_AVAILABLE_NOW
                 ? run_finite(s, msg)
                 : run_forever(s, msg);
    if (rc == EMBER_INTERRUPTED && msg) { /* for the caller to print */
        char done[64] = "before any batch committed";
        if (s->have_committed)
            snprintf(done, sizeof done, "with batch %" PRIu64 " committed",
                     s->last_committed);
        snprintf(msg, EMBER_MSG_SIZE, "stopped (a signal, or ember_stream_stop) %s in %s; "
                 "run again to go on", done, s->loc);
    }
    return rc;
}

void ember_stream_stop(ember_stream *s)
{
    if (s)
        atomic_store(&s->stop, 1); /* lock-free: async-signal-safe */
}

/* ---- inspecting -------------------------------------------------------------------- */

int ember_stream_state(ember_stream *s, ember_ds **out, char *msg)
{
    ember__msg_clear(msg);
    if (!s || !out)
        return ember__err(msg, EMBER_EINVAL, "ember_stream_state: NULL argument");
    *out = NULL;
    if (!s->aggregating)
        return ember__err(msg, EMBER_ESTATE, "stream: a stateless query has no state");
    return ember_from_array(out, s->ctx, &s->st.type, s->st.rec.data, s->st.rec.n, 0,
                            EMBER_COPY, msg);
}

const char *ember_stream_text(const ember_stream *s, const void *record, size_t *len)
{
    if (len)
        *len = 0;
    if (!s || !record || s->o.key != EMBER_KEY_TEXT)
        return NULL;
    const unsigned char *r = record;
    uint64_t o, l;
    memcpy(&o, r + s->st.type.field[1].offset, sizeof o);
    memcpy(&l, r + s->st.type.field[2].offset, sizeof l);
    if (o > s->st.text.n || l > s->st.text.n - o)
        return NULL;
    if (len)
        *len = (size_t)l;
    return (const char *)s->st.text.data + o;
}

void ember_stream_get_stats(const ember_stream *s, ember_stream_stats *out)
{
    if (!s || !out)
        return;
    *out = s->stats;
    out->next_batch = s->next_batch;
    out->have_committed = s->have_committed;
    out->last_committed = s->last_committed;
    out->state_rows = s->st.rec.n;
}

void ember__stream_list_hook(ember_stream *s, const ember__src_hook *hook)
{
    if (s)
        s->list_hook = hook ? *hook : (ember__src_hook){0};
}
