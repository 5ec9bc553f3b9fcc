/* ember-stream-wordcount: a streaming word count over files arriving in a
 * directory, the example and test vehicle of ember's streams (issue 5).
 *
 * Words are maximal runs of bytes other than the six C-locale whitespace
 * bytes (space, \t, \n, \v, \f, \r); case-sensitive, any other byte
 * (UTF-8, punctuation, NUL) is part of a word. Each batch's lines go
 * through map_partitions: every partition counts its words in a local hash
 * table (a map-side combine, as Spark's reduceByKey does) and emits one
 * (key, word position, count) record per distinct word, keyed by
 * ember_stream_hash(word). The stream reduces those by key, telling
 * colliding words apart by their bytes, and merges them into the running
 * counts.
 *
 * Output: one CSV file per batch in the sink directory (or the console),
 * lines "word,count" sorted by word in byte order, the word quoted as RFC
 * 4180 says when it holds a ',' or a '"'. In complete mode every file
 * holds the whole table, so the newest file is the full count; in update
 * mode a file holds the words the batch changed, with their new counts.
 *
 * Exit status: 0 done (once / available-now finished), 2 bad usage or
 * input (a refused restart too), 75 interrupted by SIGTERM, SIGINT or
 * SIGUSR1 after committing the batch under way (run the same command
 * again), 1 other.
 */
#include <ember.h>

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "ember-stream-wordcount"

#define EXIT_USAGE 2

/* ---- counting words ---------------------------------------------------- */

/* The record: fields 0-2 are what EMBER_KEY_TEXT asks for. */
typedef struct {
    uint64_t key;    /* ember_stream_hash of the word */
    uint64_t offset; /* of the word's bytes in the batch text */
    uint64_t length;
    int64_t count;
} wc_rec;

static int wc_type(ember_type *t)
{
    ember_field f[4];
    memset(f, 0, sizeof f);
    const char *names[4] = {"key", "offset", "length", "count"};
    for (int i = 0; i < 4; i++) {
        snprintf(f[i].name, EMBER_NAME_SIZE, "%s", names[i]);
        f[i].kind = i < 3 ? EMBER_U64 : EMBER_I64;
        f[i].count = 1;
    }
    return ember_type_struct(t, f, 4, NULL);
}

static const unsigned char is_space[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1};

/* A partition's distinct words: open addressing on the key, words
 * compared by their bytes. */
typedef struct {
    wc_rec *slot;
    size_t mask, used;
} wc_table;

static int table_grow(wc_table *t, const char *text)
{
    (void)text;
    size_t cap = t->slot ? (t->mask + 1) * 2 : 1024;
    wc_rec *s = calloc(cap, sizeof *s);
    if (!s)
        return -1;
    for (size_t i = 0; t->slot && i <= t->mask; i++) {
        if (!t->slot[i].count)
            continue;
        size_t j = t->slot[i].key & (cap - 1);
        while (s[j].count)
            j = (j + 1) & (cap - 1);
        s[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = s;
    t->mask = cap - 1;
    return 0;
}

static int table_add(wc_table *t, const char *text, size_t off, size_t len)
{
    uint64_t h = ember_stream_hash(text + off, len);
    size_t j = h & t->mask;
    for (;; j = (j + 1) & t->mask) {
        wc_rec *r = &t->slot[j];
        if (!r->count)
            break;
        if (r->key == h && r->length == len && memcmp(text + r->offset, text + off, len) == 0) {
            r->count++;
            return 0;
        }
    }
    t->slot[j] = (wc_rec){h, off, len, 1};
    if (++t->used * 2 > t->mask + 1)
        return table_grow(t, text);
    return 0;
}

/* The lines of a partition are consecutive in the text, and a line end is
 * whitespace, so the whole span is scanned at once. */
static int count_words(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const char *text = *(const char *const *)arg;
    const ember_line *l = in;
    if (n == 0)
        return 0;
    size_t p = l[0].offset, end = l[n - 1].offset + l[n - 1].length;
    wc_table t = {NULL, 0, 0};
    if (table_grow(&t, text))
        return 1;
    int rc = 0;
    while (!rc) {
        while (p < end && is_space[(unsigned char)text[p]])
            p++;
        if (p >= end)
            break;
        size_t start = p;
        while (p < end && !is_space[(unsigned char)text[p]])
            p++;
        rc = table_add(&t, text, start, p - start);
    }
    size_t k = 0; /* compact the used slots in place, then emit them */
    for (size_t i = 0; !rc && i <= t.mask; i++)
        if (t.slot[i].count)
            t.slot[k++] = t.slot[i];
    if (!rc && k)
        rc = ember_emit(em, t.slot, k);
    free(t.slot);
    return rc;
}

typedef struct {
    ember_type type;
} wc_query;

static int wordcount_batch(ember_ds **out, ember_ds *lines,
                           const ember_stream_batch *b, void *arg, char *msg)
{
    wc_query *q = arg;
    const char *text = b->text; /* lives with lines, the new dataset's parent */
    return ember_map_partitions(out, lines, &q->type, count_words, &text,
                                sizeof text, msg);
}

/* ---- progress ------------------------------------------------------------- */

typedef struct {
    int quiet;
    int verbose;
    uint64_t last_batch;
    int any;
} progress_state;

static void on_batch(const ember_stream_progress *p, void *arg)
{
    progress_state *ps = arg;
    ps->last_batch = p->batch;
    ps->any = 1;
    if (ps->quiet)
        return;
    fprintf(stderr,
            PROG ": batch %" PRIu64 ": %zu file%s, %" PRIu64 " bytes, %" PRIu64
                 " lines, %" PRIu64 " rows out, %" PRIu64 " words in state, %.4f s "
                 "(at %.3f s)%s\n",
            p->batch, p->files, p->files == 1 ? "" : "s", p->bytes, p->lines, p->rows_out,
            p->state_rows, p->seconds, p->at,
            p->recovered ? " [re-run of a batch left uncommitted]" : "");
    if (ps->verbose)
        fprintf(stderr, PROG ": batch %" PRIu64 " phases: plan %.1f ms, read %.1f ms, "
                         "compute %.1f ms, output %.1f ms, commit %.1f ms\n",
                p->batch, 1e3 * p->plan_seconds, 1e3 * p->read_seconds,
                1e3 * p->compute_seconds, 1e3 * p->output_seconds, 1e3 * p->commit_seconds);
}

static void report_resume(const ember_stream_stats *st)
{
    char from[96] = "", replayed[96] = "";
    if (st->restored)
        snprintf(from, sizeof from, "; counts from the snapshot of batch %" PRIu64,
                 st->restored_from);
    else
        snprintf(from, sizeof from, "; counts rebuilt from the start");
    if (st->replayed)
        snprintf(replayed, sizeof replayed, ", then %" PRIu64 " batch%s re-counted",
                 st->replayed, st->replayed == 1 ? "" : "es");
    fprintf(stderr, PROG ": resuming after batch %" PRIu64 "%s%s\n", st->last_committed,
            from, replayed);
}

/* ---- command line ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: " PROG " --source DIR --checkpoint-location DIR [options]\n"
"\n"
"Counts words in files as they arrive in DIR, in micro-batches, keeping the\n"
"running counts in a checkpoint location so that a killed run restarts\n"
"where it stopped and counts every file exactly once. Files count once\n"
"they are renamed into DIR under their final name (names starting with '.'\n"
"or ending in .tmp are ignored) and are taken in name order: give arriving\n"
"files names that sort after the earlier ones.\n"
"\n"
"Words are maximal runs of bytes other than space, \\t, \\n, \\v, \\f and \\r;\n"
"case-sensitive. Each batch writes the CSV header line 'word,count', then\n"
"lines 'word,count' sorted by word (byte order); a word holding ',' or '\"'\n"
"is written in double quotes with each '\"' doubled (RFC 4180).\n"
"The counts are the result: on stdout with the console sink; progress,\n"
"the resume and the end-of-run lines go to stderr.\n"
"\n"
"options:\n"
"  --source DIR                 directory watched for new files (required)\n"
"  --checkpoint-location DIR    offsets and commits logs, state snapshots\n"
"                               (created if missing; one query per location)\n"
"  --output-mode MODE           complete (default): every batch file holds the\n"
"                               whole table, so the newest file is the full\n"
"                               count; update: the words the batch changed;\n"
"                               append is refused (a count is an aggregation)\n"
"  --sink DIR|console           DIR/batch-<12-digit id>.csv per batch, written\n"
"                               atomically (default: console)\n"
"  --trigger T                  default: next batch at once, poll when idle;\n"
"                               once: one batch of everything, then exit;\n"
"                               available-now: everything there at start, in\n"
"                               batches of --max-files-per-trigger, then exit;\n"
"                               processing-time=2s: one batch per interval\n"
"                               (units ms, s, m, h; s when none; 1ms to 8760h)\n"
"  --max-files-per-trigger N    at most N files per batch (default: no limit;\n"
"                               once takes every file, as Spark's Trigger.Once)\n"
"  --poll SECONDS               default trigger: wait between looks (0.1;\n"
"                               1ms to 8760h)\n"
"  --retain N                   batches of logs and state kept (default 10)\n"
"  --snapshot-every N           snapshot the counts every N batches that\n"
"                               change them (default 1); a restart re-counts\n"
"                               the batches since the last snapshot\n"
"  --threads N                  OpenMP threads (default OMP_NUM_THREADS or all)\n"
"  --quiet                      no progress on stderr (warnings still appear)\n"
"  --verbose                    also where each batch's time went\n"
"  --help                       this help (also -h)\n"
"  --version                    print the version\n"
"\n"
"The query (source, sink, output mode) is recorded in the checkpoint\n"
"location; a restart that changes it is refused. Trigger, file limit,\n"
"threads, retention and snapshots may change between runs. The layout\n"
"of the location is in docs/streaming.md.\n"
"\n"
"Without --trigger (or with processing-time=...) it runs until stopped\n"
"(SIGTERM, SIGINT or SIGUSR1: the batch under way commits, then exit 75,\n"
"resumable); the examples below end by themselves.\n"
"\n"
"A file is taken once it has its final name in the source, and read as it\n"
"is then: write it under a name starting with '.' or ending in .tmp (never\n"
"taken), or elsewhere, and rename it in. Bytes written to it later are\n"
"never read (a restart warns of them).\n"
"\n"
"examples:\n"
"  mkdir -p in && printf 'to be or not to be\\n' > in/.0001.txt && \\\n"
"      mv in/.0001.txt in/0001.txt     # written under a dot name, renamed in\n"
"  " PROG " --source in/ --checkpoint-location ckpt/ --sink out/ \\\n"
"      --trigger once\n"
"  printf 'that is the question\\n' > in/.0002.txt && mv in/.0002.txt in/0002.txt\n"
"  " PROG " --source in/ --checkpoint-location ckpt/ --sink out/ \\\n"
"      --trigger available-now --max-files-per-trigger 100\n"
"  " PROG " --source in/ --checkpoint-location ckpt-u/ \\\n"
"      --output-mode update --trigger available-now\n"
"  cat \"$(ls out/batch-*.csv | tail -n 1)\"     # complete mode: the full count\n"
"\n"
"exit status: 0 done (once, available-now), 2 bad usage or input, a\n"
"damaged checkpoint location (as ember_exit_status gives for a damaged\n"
"file), a changed query or another refused restart (a sink holding\n"
"batches the location has no record of, a directory where the location's\n"
"lock file goes), 75 stopped by SIGTERM, SIGINT or SIGUSR1 after\n"
"committing the batch under way (run the same command again to resume),\n"
"1 other errors (a location in use, I/O errors)\n");
}

typedef struct {
    ember_stream_opts so;
    int threads;
    int quiet;
    int verbose;
} options;

static int bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see --help)\n");
    return EXIT_USAGE;
}

static int parse_count(const char *flag, const char *s, uint64_t min, uint64_t max,
                       uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || errno || *end || v < min || v > max) {
        char range[64];
        snprintf(range, sizeof range, "%" PRIu64 "..%" PRIu64, min, max);
        fprintf(stderr, PROG ": %s: '%s' is not a whole number in %s (see --help)\n",
                flag, s ? s : "", range);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* "2s", "500ms", "1.5", "1m", "1h": seconds > 0, the number decimal
 * (strtod alone would take 0x10 as 16 s, and inf). */
static int parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!ember_cli_decimal(s, end))
        return -1;
    double unit = !strcmp(end, "") || !strcmp(end, "s") ? 1
                  : !strcmp(end, "ms")                  ? 1e-3
                  : !strcmp(end, "m")                   ? 60
                  : !strcmp(end, "h")                   ? 3600
                                                        : -1;
    if (end == s || errno || unit < 0 || !(v > 0) || !isfinite(v * unit))
        return -1;
    *out = v * unit;
    return 0;
}

/* The library's range, checked here too so that the message names the
 * option: 1e-9s would busy-loop, 99999999999999999999h never fire. */
static int check_wait(const char *flag, const char *s, double seconds)
{
    if (seconds >= EMBER_STREAM_MIN_INTERVAL && seconds <= EMBER_STREAM_MAX_INTERVAL)
        return 0;
    fprintf(stderr, PROG ": %s: '%s' is %g seconds; the range is 1ms to 8760h "
                    "(365 days) (see --help)\n", flag, s, seconds);
    return EXIT_USAGE;
}

static int parse_trigger(const char *s, ember_stream_opts *o)
{
    const char *pt = "processing-time=";
    if (!strcmp(s, "default"))
        o->trigger = EMBER_TRIGGER_DEFAULT;
    else if (!strcmp(s, "once"))
        o->trigger = EMBER_TRIGGER_ONCE;
    else if (!strcmp(s, "available-now"))
        o->trigger = EMBER_TRIGGER_AVAILABLE_NOW;
    else if (!strncmp(s, pt, strlen(pt))) {
        if (parse_duration(s + strlen(pt), &o->interval))
            return bad("--trigger: '%s': the interval is not a duration > 0%s", s,
                       " (a decimal number, then ms, s, m, h or nothing for s:"
                       " processing-time=2s)");
        o->trigger = EMBER_TRIGGER_PROCESSING_TIME;
    } else
        return bad("--trigger: '%s' is not default, once, available-now or "
                   "processing-time=<duration>%s", s, "");
    return o->trigger == EMBER_TRIGGER_PROCESSING_TIME ? check_wait("--trigger", s, o->interval)
                                                       : 0;
}

static int parse_mode(const char *s, ember_output_mode *m)
{
    /* append is accepted here so that the library's mode rule explains
     * why it is refused. */
    *m = !strcmp(s, "complete") ? EMBER_OUTPUT_COMPLETE
         : !strcmp(s, "update") ? EMBER_OUTPUT_UPDATE
         : !strcmp(s, "append") ? EMBER_OUTPUT_APPEND
                                : EMBER_OUTPUT_DEFAULT;
    return *m == EMBER_OUTPUT_DEFAULT
               ? bad("--output-mode: '%s' is not complete or update%s", s, "")
               : 0;
}

enum { O_SOURCE = 256, O_CKPT, O_MODE, O_SINK, O_TRIGGER, O_MAXFILES, O_POLL,
       O_RETAIN, O_SNAPSHOT, O_THREADS, O_QUIET, O_VERBOSE, O_HELP, O_VERSION };

/* An empty path would reach the library as a nameless directory. */
static int is_path_option(int c)
{
    return c == O_SOURCE || c == O_CKPT || c == O_SINK;
}

static int parse_one(int c, const char *arg, options *op)
{
    uint64_t v;
    int rc = 0;
    if (is_path_option(c) && !arg[0])
        return bad("%s: the path is empty%s",
                   c == O_SOURCE ? "--source" : c == O_CKPT ? "--checkpoint-location" : "--sink",
                   c == O_SINK ? " (give a directory, or console)" : "");
    switch (c) {
    case O_SOURCE: op->so.source_dir = arg; break;
    case O_CKPT: op->so.checkpoint_location = arg; break;
    case O_MODE: rc = parse_mode(arg, &op->so.output_mode); break;
    case O_SINK: op->so.sink_dir = strcmp(arg, "console") ? arg : NULL; break;
    case O_TRIGGER: rc = parse_trigger(arg, &op->so); break;
    case O_MAXFILES:
        if (!(rc = parse_count("--max-files-per-trigger", arg, 1, SIZE_MAX, &v)))
            op->so.max_files = (size_t)v;
        break;
    case O_POLL:
        if (parse_duration(arg, &op->so.poll))
            rc = bad("--poll: '%s' is not a duration > 0%s", arg,
                     " (a decimal number, then ms, s, m, h or nothing for s)");
        else
            rc = check_wait("--poll", arg, op->so.poll);
        break;
    case O_RETAIN:
        if (!(rc = parse_count("--retain", arg, 2, 1000000, &v)))
            op->so.retain = (int)v;
        break;
    case O_SNAPSHOT:
        if (!(rc = parse_count("--snapshot-every", arg, 1, 1000000, &v)))
            op->so.snapshot_every = (int)v;
        break;
    case O_THREADS:
        if (!(rc = parse_count("--threads", arg, 1, 4096, &v)))
            op->threads = (int)v;
        break;
    case O_QUIET: op->quiet = op->so.quiet = 1; break;
    case O_VERBOSE: op->verbose = 1; break;
    default: usage(stderr); return EXIT_USAGE;
    }
    return rc;
}

/* -1: run; else an exit status. */
static int parse_args(int argc, char **argv, options *op)
{
    static const struct option longs[] = {
        {"source", required_argument, 0, O_SOURCE},
        {"checkpoint-location", required_argument, 0, O_CKPT},
        {"output-mode", required_argument, 0, O_MODE},
        {"sink", required_argument, 0, O_SINK},
        {"trigger", required_argument, 0, O_TRIGGER},
        {"max-files-per-trigger", required_argument, 0, O_MAXFILES},
        {"poll", required_argument, 0, O_POLL},
        {"retain", required_argument, 0, O_RETAIN},
        {"snapshot-every", required_argument, 0, O_SNAPSHOT},
        {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET},
        {"verbose", no_argument, 0, O_VERBOSE},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0}};
    op->so.output_mode = EMBER_OUTPUT_COMPLETE;
    op->so.header = "word,count";
    int c;
    opterr = 0;
    optopt = 0;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (c == O_HELP || c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == O_VERSION) {
            printf(PROG " (ember) %s, " EMBER_CLI_BUILD "\n", EMBER_VERSION_STRING);
            return 0;
        }
        if (c == '?' && optopt > 0 && optopt < 256) {
            /* a short option, maybe in a cluster (-xyz): name the letter */
            char opt[3] = {'-', (char)optopt, '\0'};
            return bad("unknown option '%s'%s", opt,
                       " (the options are long ones, like --source)");
        }
        const char *given = c == '?' ? ember_cli_flag_given_value(longs, argv[optind - 1],
                                                                   optopt)
                                     : NULL;
        if (given)
            return bad("--%s takes no value (got '%s')", given, argv[optind - 1]);
        if (c == '?' || c == ':')
            return bad(c == ':' ? "%s needs a value%s" : "unknown option '%s'%s",
                       argv[optind - 1], "");
        int rc = parse_one(c, optarg, op);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return bad("unexpected argument '%s'%s", argv[optind], "");
    if (!op->so.source_dir)
        return bad("--source DIR is required%s%s", "", "");
    if (!op->so.checkpoint_location)
        return bad("--checkpoint-location DIR is required%s%s", "", "");
    return -1;
}

/* ---- main ---------------------------------------------------------------------------- */

static int exit_code(int rc)
{
    switch (rc) {
    case EMBER_OK: return 0;
    case EMBER_INTERRUPTED: return EMBER_EXIT_RESUMABLE;
    case EMBER_EINVAL:
    case EMBER_EMISMATCH:
    case EMBER_ENOTFOUND:
    case EMBER_EFORMAT:
    case EMBER_ECORRUPT:
    case EMBER_ETYPE: return EXIT_USAGE;
    default: return 1;
    }
}

/* Every batch allocates and frees tens of MB (its text, its lines, the
 * reduction's buffers). glibc would hand big blocks back to the kernel on
 * free and fault them in again next batch, half the page faults of a run;
 * a long-running stream keeps them instead. A program's choice, so it is
 * made here and not in the library. */
static void tune_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
}

int main(int argc, char **argv)
{
    options op;
    memset(&op, 0, sizeof op);
    /* A batch system's signal may come before the stream catches them
     * (it does in ember_stream_create): nothing is planned yet, so stop. */
    ember_cli_catch_early(PROG ": stopped by a signal before the stream started "
                          "(exit 75); run the same command again to resume");
    int rc = parse_args(argc, argv, &op);
    if (rc >= 0)
        return rc;
    /* Streaming is single-process (docs/mpi.md): its offsets and commits
     * logs are one process's exactly-once bookkeeping. */
    const char *var = NULL;
    int nranks = ember_cli_launched_ranks(&var);
    if (nranks > 1) {
        fprintf(stderr, PROG ": streaming is single-process; started as one of %d "
                        "MPI ranks (%s=%d), it refuses to run: start it without "
                        "mpirun/srun (or with -n 1)\n", nranks, var, nranks);
        return EMBER_EXIT_USAGE;
    }
    tune_malloc();
    wc_query q;
    memset(&q, 0, sizeof q);
    progress_state ps = {op.quiet, op.verbose, 0, 0};
    if (wc_type(&q.type))
        return 1;
    op.so.query = "program=" PROG "\n"
                  "words=runs of bytes other than space \\t \\n \\v \\f \\r, case-sensitive\n"
                  "format=1\n";
    op.so.batch_fn = wordcount_batch;
    op.so.batch_arg = &q;
    op.so.key = EMBER_KEY_TEXT;
    op.so.record_type = &q.type;
    op.so.progress = on_batch;
    op.so.progress_arg = &ps;

    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_stream *s = NULL;
    ember_ctx_opts co = {.threads = op.threads};
    rc = ember_ctx_create(&ctx, &co, msg);
    if (!rc)
        rc = ember_stream_create(&s, ctx, &op.so, msg);
    ember_stream_stats st;
    memset(&st, 0, sizeof st);
    ember_stream_get_stats(s, &st);
    if (!rc && !op.quiet && st.have_committed)
        report_resume(&st);
    if (!rc)
        rc = ember_stream_run(s, msg);
    ember_stream_get_stats(s, &st);
    if (rc == EMBER_INTERRUPTED && st.have_committed)
        fprintf(stderr, PROG ": interrupted; batch %" PRIu64 " committed; run the same "
                        "command again to resume\n", st.last_committed);
    else if (rc == EMBER_INTERRUPTED)
        fprintf(stderr, PROG ": interrupted before any batch committed; run the same "
                        "command again to start\n");
    else if (rc)
        fprintf(stderr, PROG ": %s\n", msg[0] ? msg : ember_strerror(rc));
    else if (!op.quiet)
        fprintf(stderr, PROG ": done: %" PRIu64 " batch%s, %" PRIu64 " files, %" PRIu64
                        " words in state\n",
                st.batches, st.batches == 1 ? "" : "es", st.files, st.state_rows);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    return exit_code(rc);
}
