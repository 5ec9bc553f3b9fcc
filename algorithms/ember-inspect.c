/* ember-inspect: says what checkpoint files hold and whether they verify,
 * and what any other file given to it is.
 *
 * For each argument, a checkpoint file, or a directory whose ckpt-*.h5,
 * ds-*.h5 and stream state snapshots (N.h5) are taken in name order (so
 * loop checkpoints come oldest first; a stream's checkpoint location
 * stands for its state directory), it prints the iteration, creation
 * time, size, program and parameters, fingerprint, every stored item
 * (name, type, records, partitions) and whether its checksums verify, and
 * the lineage recorded. A file that is no checkpoint is named for what it
 * is: an ember graph or program output (whose checksum verifies: its
 * provenance is shown), an HDF5 file without ember's checksum header, a
 * text file. A damaged file is never called "not a checkpoint": only a
 * file whose whole-file checksum verifies is opened to see what it holds.
 *
 * --json prints JSON Lines instead: one object per file, one line each (a
 * stream scripts read line by line, or `jq -s` makes an array); the keys
 * are documented in docs/formats.md ("ember-inspect --json").
 *
 * Exit status: 0 every file verifies (a checkpoint, or an ember graph or
 * output file whose checksum verifies); 1 some file does not, or cannot
 * be verified (no ember checksum header: a text file, another program's
 * HDF5); 2 bad usage, a missing path, or a directory with no checkpoint
 * files.
 *
 * --plot SRC --output FILE.svg draws a run's convergence with gnuplot
 * instead (plot.h): SRC is a --metrics file or a checkpoint directory (or
 * file) whose history array records the run. 0 drawn; 2 bad source or
 * gnuplot missing (the message says apt-get install gnuplot-nox); 1
 * gnuplot failed.
 */
#include <ember.h>

#include "cli.h"
#include "plot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

static int opt_json = 0;
static const char *opt_plot = NULL;

static const ember_cli_opt inspect_options[] = {
    {"json", EMBER_CLI_FLAG, &opt_json, 0, 0, 0, NULL, NULL,
     "JSON Lines: one object per file"},
    {"plot", EMBER_CLI_STR, &opt_plot, 0, 0, 0, NULL, "METRICS|DIR",
     "draw the convergence (value per iteration, log scale; seconds per "
     "iteration; checkpoints and resumes) of a --metrics file or of a "
     "checkpoint directory's recorded history as the SVG --output FILE "
     "(needs gnuplot: apt-get install gnuplot-nox)"},
    {0}};

static const ember_cli_program inspect_program = {
    .name = "ember-inspect",
    .summary =
        "Describes ember checkpoint files: for a DIR, every ckpt-*.h5, ds-*.h5 and\n"
        "stream state snapshot (N.h5) in it (name order; a stream's checkpoint\n"
        "location: its state/); for a FILE, that file. Checksums are verified.\n"
        "Any other file is named for what it is (an ember graph or output, a\n"
        "text file, another program's HDF5).",
    .usage = "[--json] DIR|FILE ... | --plot METRICS|DIR --output FILE.svg",
    .examples = "  ember-pagerank --input data/karate.el --checkpoint-dir ck \\\n"
                "      --checkpoint-every 10 --metrics m.jsonl\n"
                "  ember-inspect ck/\n"
                "  ember-inspect --json \"$(ls ck/ckpt-*.h5 | tail -n 1)\"\n"
                "  ember-inspect --plot m.jsonl --output conv.svg\n"
                "  ember-inspect --plot ck/ --output conv.svg\n",
    .extra = inspect_options,
    /* --output: --plot's */
    .omit = EMBER_CLI_NO_LOOP | EMBER_CLI_NO_INPUT | EMBER_CLI_NO_SEED |
            EMBER_CLI_NO_PARTITIONS | EMBER_CLI_NO_THREADS | EMBER_CLI_NO_QUIET,
    .max_positional = 4096,
    .exit_status =
        "exit status: 0 every file verifies (a checkpoint, or an ember graph or\n"
        "output whose checksum verifies); 1 some file fails verification or cannot\n"
        "be verified (a text file, an HDF5 file without ember's checksum header);\n"
        "2 bad usage, a missing path, or a directory with no checkpoint files.\n"
        "--plot: 0 drawn; 2 bad source or gnuplot missing; 1 gnuplot failed.\n",
};

/* ---- JSON ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (0: invalid). */
static size_t utf8_len(const unsigned char *s)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
                             : (s[0] >> 3) == 30 ? 4 : 0;
    if (n == 2 && s[0] < 0xc2)
        return 0; /* overlong */
    for (size_t i = 1; i < n; i++)
        if ((s[i] >> 6) != 2)
            return 0;
    return n;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p++);
        } else if (*p == '\n') {
            fputs("\\n", f), p++;
        } else if (*p == '\t') {
            fputs("\\t", f), p++;
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p++);
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
    fputc('"', f);
}

/* "name=value" lines as an object of strings (a line without '=' gets
 * an empty value). */
static void json_params(FILE *f, const char *text)
{
    char key[512], val[8192];
    int first = 1;
    fputc('{', f);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t kl = eq ? (size_t)(eq - p) : len;
        snprintf(key, sizeof key, "%.*s", (int)kl, p);
        snprintf(val, sizeof val, "%.*s", eq ? (int)(len - kl - 1) : 0, eq ? eq + 1 : "");
        if (len) {
            fputs(first ? "" : ", ", f);
            json_str(f, key);
            fputs(": ", f);
            json_str(f, val);
            first = 0;
        }
        p += len + (e ? 1 : 0);
    }
    fputc('}', f);
}

static void json_item(FILE *f, const ember_checkpoint_item *it)
{
    fputs("{\"group\": ", f);
    json_str(f, it->group);
    fputs(", \"name\": ", f);
    json_str(f, it->name);
    fputs(", \"type\": ", f);
    json_str(f, it->type);
    fprintf(f, ", \"records\": %" PRIu64 ", \"partitions\": %" PRIu64 ", \"value\": ",
            it->records, it->partitions);
    json_str(f, it->value);
    fprintf(f, ", \"verified\": %s}", it->verified ? "true" : "false");
}

/* What a file is, beside the library's verdict on it as a checkpoint. */
typedef struct {
    const char *file;       /* "checkpoint", "ember", "damaged", "hdf5",
                               "text" or "other" (docs/formats.md) */
    char description[2048]; /* "an ember-pagerank output (/ranks)", ... */
    int ok;                 /* verified: counts for exit status 0 */
} what_t;

static void print_json(FILE *f, const ember_checkpoint_info *o, const what_t *w)
{
    fputs("{\"path\": ", f);
    json_str(f, o->path);
    fprintf(f, ", \"readable\": %s, \"verified\": %s, \"error\": ",
            o->readable ? "true" : "false", o->verified ? "true" : "false");
    json_str(f, o->error);
    fputs(", \"file\": ", f);
    json_str(f, w->file);
    fputs(", \"description\": ", f);
    json_str(f, w->description);
    fprintf(f, ", \"format_version\": %" PRId64 ", \"kind\": ", o->format_version);
    json_str(f, o->kind);
    fputs(", \"program\": ", f);
    json_str(f, o->program);
    fputs(", \"ember_version\": ", f);
    json_str(f, o->ember_version);
    fputs(", \"created\": ", f);
    json_str(f, o->created);
    fprintf(f, ", \"iteration\": %" PRIu64 ", \"fingerprint\": \"%016" PRIx64 "\""
               ", \"bytes\": %" PRIu64 ", \"threads\": %" PRId64 ", \"records_forced\": %s"
               ", \"parameters\": ",
            o->iteration, o->fingerprint, o->bytes, o->threads,
            o->records_forced ? "true" : "false");
    json_params(f, o->parameters);
    fputs(", \"signature\": ", f);
    json_str(f, o->signature);
    fputs(", \"lineage\": ", f);
    json_str(f, o->lineage);
    fputs(", \"items\": [", f);
    for (size_t i = 0; i < o->nitems; i++) {
        fputs(i ? ", " : "", f);
        json_item(f, &o->items[i]);
    }
    fputs("]}\n", f);
}

/* ---- text --------------------------------------------------------------------- */

static void human_size(char *buf, size_t size, uint64_t b)
{
    if (b >= (UINT64_C(1) << 30))
        snprintf(buf, size, "%.1f GiB", (double)b / (double)(UINT64_C(1) << 30));
    else if (b >= (UINT64_C(1) << 20))
        snprintf(buf, size, "%.1f MiB", (double)b / (double)(UINT64_C(1) << 20));
    else
        snprintf(buf, size, "%.1f KiB", (double)b / 1024.0);
}

/* Each line of text, indented. */
static void print_block(FILE *f, const char *title, const char *text)
{
    if (!text[0])
        return;
    fprintf(f, "  %s:\n", title);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        int len = e ? (int)(e - p) : (int)strlen(p);
        if (len)
            fprintf(f, "    %.*s\n", len, p);
        p += len + (e ? 1 : 0);
    }
}

static void print_items(FILE *f, const ember_checkpoint_info *o)
{
    if (!o->nitems)
        return;
    fprintf(f, "  contents:\n");
    for (size_t i = 0; i < o->nitems; i++) {
        const ember_checkpoint_item *it = &o->items[i];
        char where[64], count[64];
        snprintf(where, sizeof where, "%s/%s", it->group, it->name);
        if (it->partitions)
            snprintf(count, sizeof count, "%" PRIu64 " records, %" PRIu64 " partitions",
                     it->records, it->partitions);
        else
            snprintf(count, sizeof count, "%" PRIu64 " %s%s", it->records,
                     strcmp(it->group, "blobs") ? "value" : "byte",
                     it->records == 1 ? "" : "s");
        fprintf(f, "    %-28s %-20s %-30s %s%s%s\n", where, it->type, count,
                it->verified ? "ok" : "FAILED", it->value[0] ? "  = " : "", it->value);
    }
}

/* ---- what a file is ------------------------------------------------------- */

/* A string attribute of obj ("" when absent or not one string). */
static void attr_str(hid_t obj, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    if (H5Aexists(obj, name) <= 0)
        return;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    hid_t m = t >= 0 ? H5Tcopy(t) : -1;
    if (m >= 0 && H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            if (H5Aread(a, m, &v) >= 0 && v)
                snprintf(buf, size, "%s", v);
            if (v)
                H5free_memory(v);
        } else {
            size_t n = H5Tget_size(t);
            char *v = calloc(1, n + 1);
            if (v && H5Aread(a, m, v) >= 0)
                snprintf(buf, size, "%s", v);
            free(v);
        }
    }
    if (m >= 0)
        H5Tclose(m);
    if (sp >= 0)
        H5Sclose(sp);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
}

/* The objects below the root that carry their own provenance (a dataset
 * ember-gen added to a file that was there), listed into a text. */
typedef struct {
    char list[512];    /* "/a/b (ember-gen), ..." */
    int count;
    hid_t first;       /* the first such object, open (-1: none) */
    char datasets[512]; /* every dataset: "/a/b, /a/c" */
    int ndatasets;
    size_t links;      /* links seen so far */
    int stopped;       /* the walk stopped at OWNED_MAX_LINKS or _DEPTH */
} owned_t;

/* How far the walk of a sealed file goes. The checksum proves the bytes
 * are those sealed, not that ember wrote them: a file whose links lead
 * back into their own groups (a damaged reference count) verifies all
 * the same, and H5Lvisit, which trusts the counts, then builds ever
 * longer paths without end (ember-inspect ran for over 5 minutes on
 * tests/fuzz/corpus/inspect/crash_sealed_link_loop). The readers bound
 * their own walk alike (src/h5io.c, INSIDE_MAX_LINKS). */
#define OWNED_MAX_LINKS 10000
#define OWNED_MAX_DEPTH 64

static void add_name(char *list, size_t size, int count, const char *name)
{
    size_t len = strlen(list);
    if (count < 6)
        snprintf(list + len, size - len, "%s/%s", count ? ", " : "", name);
    else if (count == 6)
        snprintf(list + len, size - len, ", ...");
}

static herr_t find_owned(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    owned_t *w = arg;
    size_t depth = 0;
    for (const char *c = name; *c; c++)
        depth += *c == '/';
    if (++w->links > OWNED_MAX_LINKS || depth >= OWNED_MAX_DEPTH) {
        w->stopped = 1;
        return 1; /* stops H5Lvisit, as a success */
    }
    const char *base = strrchr(name, '/');
    if (info->type != H5L_TYPE_HARD || (base ? base[1] : name[0]) == '.')
        return 0; /* a soft link, or a hidden (unfinished) object */
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    char prog[256];
    if (obj < 0)
        return 0;
    if (H5Iget_type(obj) == H5I_DATASET)
        add_name(w->datasets, sizeof w->datasets, w->ndatasets++, name);
    attr_str(obj, "program", prog, sizeof prog);
    if (prog[0]) {
        char item[600];
        snprintf(item, sizeof item, "%s (%s)", name, prog);
        add_name(w->list, sizeof w->list, w->count++, item);
    }
    if (prog[0] && w->first < 0)
        w->first = obj;
    else
        H5Oclose(obj);
    return 0;
}

/* o's provenance fields from obj's attributes (docs/formats.md). */
static void read_provenance(ember_checkpoint_info *o, hid_t obj)
{
    attr_str(obj, "program", o->program, sizeof o->program);
    attr_str(obj, "ember_version", o->ember_version, sizeof o->ember_version);
    attr_str(obj, "created", o->created, sizeof o->created);
    attr_str(obj, "parameters", o->parameters, sizeof o->parameters);
}

/* An ember file whose whole-file checksum verified and that is no
 * checkpoint (o->sealed: the library checked the checksum): what it holds,
 * and its provenance in o. 0, or -1 when HDF5 cannot open it now. */
static int ember_file_here(ember_checkpoint_info *o, what_t *w)
{
    static const struct {
        const char *link, *what;
    } kinds[] = {
        {"csr", "an ember graph (HDF5 CSR, from ember-convert or ember-gen)"},
        {"ranks", "an ember-pagerank output (/ranks)"},
        {"centroids", "an ember-kmeans output (/centroids, /labels)"},
        {"distances", "an ember-sssp output (/distances)"},
        {"labels", "an ember-cc output (/labels)"},
        {"points", "an ember-gen blobs output (/points)"},
    };
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(o->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        H5Eset_auto2(H5E_DEFAULT, fn, data);
        return -1;
    }
    owned_t own = {"", 0, -1, "", 0, 0, 0};
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, find_owned, &own);
    read_provenance(o, f);
    if (!o->program[0] && own.first >= 0)
        read_provenance(o, own.first);
    const char *base = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !base; i++)
        if (H5Lexists(f, kinds[i].link, H5P_DEFAULT) > 0)
            base = kinds[i].what;
    char root_prog[256];
    attr_str(f, "program", root_prog, sizeof root_prog);
    char from[800];
    if (root_prog[0] && base == kinds[0].what)
        snprintf(from, sizeof from, "an ember graph (HDF5 CSR, from %s)", root_prog);
    else if (base)
        snprintf(from, sizeof from, "%s", base);
    else
        snprintf(from, sizeof from, "%s%s%s (%s)", root_prog[0] ? "an " : "",
                 root_prog[0] ? root_prog : "an HDF5 file ember wrote",
                 root_prog[0] ? " output" : "",
                 own.ndatasets ? own.datasets : "no datasets");
    snprintf(w->description, sizeof w->description, "%s%s%s%s", from,
             own.count ? "; with its own provenance: " : "", own.list,
             own.stopped ? "; its links were listed only up to " /* a bound, not a hang */
                           "10000 links or 64 groups deep (links that lead back "
                           "into their own groups?)" : "");
    if (own.first >= 0)
        H5Oclose(own.first);
    H5Fclose(f);
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    w->file = "ember";
    w->ok = 1;
    o->readable = o->verified = 1;
    o->error[0] = '\0';
    return 0;
}

/* How long the child of ember_file may take (the fuzz harness makes it
 * short). */
#ifndef INSPECT_HDF5_SECONDS
#define INSPECT_HDF5_SECONDS 60
#endif

/* What the child of ember_file found, in memory it shares: its copy of
 * o, in which ember_file_here sets only fields of plain values (the
 * provenance, readable, verified, error), so its pointers are still o's. */
typedef struct {
    int rc;
    what_t w;
    ember_checkpoint_info o;
} found_t;

/* ember_file_here in a child process. The checksum proves the bytes are
 * those sealed, not that ember wrote them, and libhdf5 trusts a file's
 * structure: in a file sealed after it was damaged (or made to pass),
 * reading a string attribute through a broken global heap loops for good
 * or copies overlapping memory inside libhdf5 1.10 (H5HG_read; found by
 * fuzz_inspect). The child's crash or silence is then this file's
 * verdict, not the end of ember-inspect. */
static int ember_file(ember_checkpoint_info *o, what_t *w)
{
    found_t *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (f == MAP_FAILED)
        return ember_file_here(o, w);
    fflush(stdout);
    fflush(stderr);
    /* SIGCHLD ignored (as some job runners leave it, across exec) would
     * make the kernel reap the child, and waitpid never see it */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, was;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &was);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        /* gone with its parent, killed or not, and never longer than the
         * parent waits: a loop inside libhdf5 must not outlive the run */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        alarm(INSPECT_HDF5_SECONDS + 5); /* after the parent's time is up */
        f->o = *o;
        f->rc = ember_file_here(&f->o, &f->w);
        _exit(0);
    }
    int st = 0, done = pid < 0;
    double until = ember_cli_now() + INSPECT_HDF5_SECONDS; /* by the clock, not ticks */
    while (!done && ember_cli_now() < until) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        done = r == pid || (r < 0 && errno != EINTR);
        if (r < 0 && errno != EINTR)
            st = 1 << 8; /* no status to be had: an exit of 1 */
        if (!done)
            nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    sigaction(SIGCHLD, &was, NULL);
    int rc = 0;
    if (pid < 0) {
        rc = ember_file_here(o, w);
    } else if (done && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        rc = f->rc;
        *w = f->w;
        *o = f->o;
    } else {
        memset(w, 0, sizeof *w);
        w->file = "damaged";
        if (done)
            snprintf(w->description, sizeof w->description, "its checksum verifies, but "
                     "libhdf5 failed reading its structure (%s %d): it was changed "
                     "before it was sealed, or sealed by another program",
                     WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st)
                                                                        : WEXITSTATUS(st));
        else
            snprintf(w->description, sizeof w->description, "its checksum verifies, but "
                     "libhdf5 did not finish reading its structure in %d s: it was "
                     "changed before it was sealed, or sealed by another program",
                     INSPECT_HDF5_SECONDS);
        /* the verdict is what the report's error says, not the earlier
         * "not an ember checkpoint" */
        snprintf(o->error, sizeof o->error, "%.200s: %.300s", o->path, w->description);
    }
    munmap(f, sizeof *f);
    return rc;
}

/* Text: valid UTF-8 with no control characters but white space. A last
 * sequence cut by the end of what was read counts. */
static int is_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] == 0 || p[i] == 0x7f || (p[i] < 0x20 && !strchr("\t\n\v\f\r", p[i])))
            return 0;
        size_t len = utf8_len(p + i);
        if (len == 0)
            return n - i < 4 && p[i] >= 0xc2; /* cut, or not UTF-8 */
        i += len;
    }
    return 1;
}

/* What the first bytes of a file that did not verify say it is. */
static void by_first_bytes(ember_checkpoint_info *o, what_t *w)
{
    static const unsigned char hdf5[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[4097] = {0};
    size_t n = 0;
    FILE *f = fopen(o->path, "rb");
    if (f) {
        n = fread(head, 1, sizeof head - 1, f);
        fclose(f);
    }
    if ((n >= 8 && !memcmp(head, "EMBERSUM", 8)) ||
        (n >= 520 && !memcmp(head + 512, hdf5, 8))) {
        w->file = "damaged";
        snprintf(w->description, sizeof w->description,
                 "an ember file (its checksum header, or the HDF5 file after it) "
                 "that fails verification");
    } else if (n >= 8 && !memcmp(head, hdf5, 8)) {
        w->file = "hdf5";
        snprintf(w->description, sizeof w->description,
                 "an HDF5 file without ember's checksum header (written by an early "
                 "ember 0.1.0 build or another program)");
    } else if (n == 0) {
        w->file = "other";
        snprintf(w->description, sizeof w->description,
                 "an empty file (truncated, or never written)");
    } else if (is_text(head, n)) {
        w->file = "text";
        snprintf(w->description, sizeof w->description, "a text file, not HDF5");
        snprintf(o->error, sizeof o->error, "%.400s: a text file, not an HDF5 file: "
                 "no ember checksum header, cannot be verified", o->path);
    } else {
        w->file = "other";
        snprintf(w->description, sizeof w->description,
                 "no ember file: not HDF5, or its first bytes are damaged");
    }
}

/* The length of FILE when path is FILE.ember-edit-PID-N, the copy a change
 * of FILE works on (docs/formats.md), else 0. */
static size_t edit_copy_of(const char *path)
{
    const char *tag = strstr(path, ".ember-edit-"), *p;
    if (!tag || tag == path || tag[-1] == '/')
        return 0;
    p = tag + strlen(".ember-edit-");
    size_t pid = strspn(p, "0123456789");
    if (!pid || p[pid] != '-' || !p[pid + 1] ||
        strspn(p + pid + 1, "0123456789") != strlen(p + pid + 1))
        return 0;
    return (size_t)(tag - path);
}

/* Fills w for o, as ember_checkpoint_inspect returned rc; may complete o
 * (an ember file that is no checkpoint: its provenance, verified). */
static void what_it_is(ember_checkpoint_info *o, int rc, what_t *w)
{
    memset(w, 0, sizeof *w);
    w->file = "checkpoint";
    w->ok = o->verified;
    if (o->readable) {
        snprintf(w->description, sizeof w->description, "an ember checkpoint (%s)",
                 o->kind);
        return;
    }
    if (o->sealed && rc != EMBER_EFORMAT && ember_file(o, w) == 0)
        return;
    if (rc == EMBER_EFORMAT) {
        w->file = "ember";
        snprintf(w->description, sizeof w->description,
                 "an ember file of a format this version does not read");
        return;
    }
    by_first_bytes(o, w);
    size_t len = edit_copy_of(o->path);
    if (len && !strcmp(w->file, "damaged"))
        snprintf(w->description, sizeof w->description,
                 "the copy a killed change of %.*s left beside it (that file is "
                 "whole; its next change deletes this copy, or delete it)",
                 (int)len, o->path);
}

static void print_text(FILE *f, const ember_checkpoint_info *o, const what_t *w)
{
    char size[32];
    human_size(size, sizeof size, o->bytes);
    if (!strcmp(w->file, "ember") && w->ok) {
        fprintf(f, "%s: verified: not a checkpoint: %s\n  size:        %s (%" PRIu64
                   " bytes)\n", o->path, w->description, size, o->bytes);
        if (o->program[0])
            fprintf(f, "  written by:  %s (ember %s)\n  created:     %s\n", o->program,
                    o->ember_version[0] ? o->ember_version : "?", o->created);
        print_block(f, "parameters", o->parameters);
        return;
    }
    if (!strcmp(w->file, "text")) {
        fprintf(f, "%s: not an HDF5 file: a text file (it cannot be verified)\n"
                   "  size:        %s (%" PRIu64 " bytes)\n", o->path, size, o->bytes);
        return;
    }
    fprintf(f, "%s: %s\n", o->path, o->verified ? "verified" : "FAILS VERIFICATION");
    if (!o->verified)
        fprintf(f, "  error:       %s\n", o->error);
    if (!o->verified && edit_copy_of(o->path))
        fprintf(f, "  note:        %s\n", w->description);
    fprintf(f, "  size:        %s (%" PRIu64 " bytes)\n", size, o->bytes);
    if (!o->readable)
        return;
    fprintf(f, "  kind:        %s, written by %s (ember %s, format %" PRId64 ")\n",
            o->kind, o->program[0] ? o->program : "(no program)", o->ember_version,
            o->format_version);
    fprintf(f, "  iteration:   %" PRIu64 "\n  created:     %s\n", o->iteration, o->created);
    fprintf(f, "  fingerprint: %016" PRIx64 "\n  threads:     %" PRId64 "\n",
            o->fingerprint, o->threads);
    if (!o->records_forced && !strcmp(o->kind, "loop"))
        fprintf(f, "  forced:      unknown: ember %s does not record whether this run was "
                   "resumed by force; a resume says so and marks its result\n",
                o->ember_version);
    print_block(f, "parameters", o->parameters);
    print_block(f, "state", o->signature);
    print_items(f, o);
    print_block(f, "lineage", o->lineage);
}

/* ---- files ----------------------------------------------------------------------- */

/* 0 verified (a checkpoint, or an ember file that is none), 1 not, 2
 * could not be opened at all. */
static int inspect_file(ember_ctx *ctx, const char *path)
{
    char msg[EMBER_MSG_SIZE];
    ember_checkpoint_info *o = NULL;
    int rc = ember_checkpoint_inspect(&o, ctx, path, msg);
    if (!o) {
        fprintf(stderr, "ember-inspect: %s\n", msg);
        return rc == EMBER_ENOTFOUND || rc == EMBER_EINVAL ? 2 : 1;
    }
    what_t w;
    what_it_is(o, rc, &w);
    if (opt_json)
        print_json(stdout, o, &w);
    else
        print_text(stdout, o, &w);
    ember_checkpoint_info_free(ctx, &o);
    return w.ok ? 0 : 1;
}

static int worse(int a, int b)
{
    return a == 2 || b == 2 ? 2 : a > b ? a : b;
}

/* 1 when dir is a stream's checkpoint location (its metadata file, and
 * its state snapshots in state/), with state set to that directory. */
static int stream_location(const char *dir, char *state, size_t size)
{
    char meta[4096];
    struct stat st;
    snprintf(meta, sizeof meta, "%s/metadata", dir);
    if (snprintf(state, size, "%s/state", dir) >= (int)size)
        return 0;
    return stat(meta, &st) == 0 && S_ISREG(st.st_mode) && stat(state, &st) == 0 &&
           S_ISDIR(st.st_mode);
}

static int inspect_path(ember_ctx *ctx, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "ember-inspect: %s: %s\n", path, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode))
        return inspect_file(ctx, path);
    char **names = NULL;
    size_t n = 0;
    if (ember_list_checkpoint_files(path, 0, 0, &names, &n) != 0) {
        fprintf(stderr, "ember-inspect: %s: %s\n", path, strerror(errno));
        return 2;
    }
    char state[4096];
    if (!n && stream_location(path, state, sizeof state)) {
        free(names);
        return inspect_path(ctx, state);
    }
    int status = n ? 0 : 2;
    if (!n)
        fprintf(stderr, "ember-inspect: %s: no checkpoint files (ckpt-*.h5, ds-*.h5, or "
                        "a stream's state snapshots N.h5)\n", path);
    for (size_t i = 0; i < n; i++) {
        if (!opt_json && i)
            fputc('\n', stdout);
        status = worse(status, inspect_file(ctx, names[i]));
        free(names[i]);
    }
    free(names);
    return status;
}

/* --plot SRC --output FILE.svg */
static int plot_main(ember_cli *cli)
{
    if (!opt_plot)
        return ember_cli_usage_error(cli, "--output is the picture of --plot (see --help)");
    if (!cli->output)
        return ember_cli_usage_error(cli, "--plot %s: give the picture's file as "
                                     "--output FILE.svg", opt_plot);
    if (!ember_cli_has_suffix(cli->output, ".svg"))
        return ember_cli_usage_error(cli, "--output %s: --plot draws SVG; name the "
                                     "file .svg", cli->output);
    if (cli->nargs > 0 || opt_json)
        return ember_cli_usage_error(cli, "--plot takes no checkpoint arguments and "
                                     "no --json");
    /* gnuplot is looked for once the source has been read: a source that
     * cannot be drawn is the error to report, installed or not */
    int rc = ember_cli_check_output(cli, "output", cli->output);
    if (rc)
        return rc;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    if ((rc = ember_cli_ctx(&ctx, cli, msg)))
        return ember_cli_exit(cli, rc, msg);
    rc = ember_plot_convergence(ctx, cli->prog->name, opt_plot, cli->output);
    ember_ctx_destroy(&ctx);
    return rc;
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &inspect_program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if (opt_plot || cli.output)
        return plot_main(&cli);
    if (cli.nargs < 1)
        return ember_cli_usage_error(&cli, "give a checkpoint directory or file (see --help)");
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    if ((rc = ember_cli_ctx(&ctx, &cli, msg)))
        return ember_cli_exit(&cli, rc, msg);
    int status = 0;
    for (int i = 0; i < cli.nargs; i++) {
        if (!opt_json && i)
            fputc('\n', stdout);
        status = worse(status, inspect_path(ctx, cli.args[i]));
    }
    ember_ctx_destroy(&ctx);
    return ember_cli_stdout_status(&cli, status); /* stdout is the result */
}
