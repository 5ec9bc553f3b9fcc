/* ember-inspect: says what checkpoint files hold and whether they verify.
 *
 * For each argument, a checkpoint file, or a directory whose ckpt-*.h5 and
 * ds-*.h5 files are taken in name order (so loop checkpoints come oldest
 * first), it prints the iteration, creation time, size, program and
 * parameters, fingerprint, every stored item (name, type, records,
 * partitions) and whether its checksums verify, and the lineage recorded.
 *
 * --json prints JSON Lines instead: one object per file, one line each (a
 * stream scripts read line by line, or `jq -s` makes an array). Keys:
 * path, readable, verified, error, format_version, kind, program,
 * ember_version, created, iteration, fingerprint (hex string: 64 bits do
 * not fit a JSON number), bytes, threads, parameters (object of strings),
 * signature, lineage, items (array of {group, name, type, records,
 * partitions, value, verified}).
 *
 * Exit status: 0 every file verifies; 1 some file does not (or cannot be
 * read as a checkpoint); 2 bad usage, a missing path, or a directory with
 * no checkpoint files.
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
#include <sys/stat.h>

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
        "Describes ember checkpoint files: for a DIR, every ckpt-*.h5 and ds-*.h5\n"
        "in it (name order); for a FILE, that file. Checksums are verified.\n"
        "Exit status 0: all verify; 1: some do not; 2: bad usage or missing path.",
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

static void print_json(FILE *f, const ember_checkpoint_info *o)
{
    fputs("{\"path\": ", f);
    json_str(f, o->path);
    fprintf(f, ", \"readable\": %s, \"verified\": %s, \"error\": ",
            o->readable ? "true" : "false", o->verified ? "true" : "false");
    json_str(f, o->error);
    fprintf(f, ", \"format_version\": %" PRId64 ", \"kind\": ", o->format_version);
    json_str(f, o->kind);
    fputs(", \"program\": ", f);
    json_str(f, o->program);
    fputs(", \"ember_version\": ", f);
    json_str(f, o->ember_version);
    fputs(", \"created\": ", f);
    json_str(f, o->created);
    fprintf(f, ", \"iteration\": %" PRIu64 ", \"fingerprint\": \"%016" PRIx64 "\""
               ", \"bytes\": %" PRIu64 ", \"threads\": %" PRId64 ", \"parameters\": ",
            o->iteration, o->fingerprint, o->bytes, o->threads);
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

/* What an intact HDF5 file that is no checkpoint is (an ember graph, a
 * program's output), in `what`; "" when it is not such a file: a file
 * that is damaged or not HDF5 keeps the library's words, since a damaged
 * checkpoint must never be called "not a checkpoint". */
static void what_it_is(const ember_checkpoint_info *o, char *what, size_t size)
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
    what[0] = '\0';
    if (o->readable || !strstr(o->error, "not an ember checkpoint"))
        return;
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(o->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        snprintf(what, size, "an HDF5 file written by something else");
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (H5Lexists(f, kinds[i].link, H5P_DEFAULT) > 0) {
                snprintf(what, size, "%s", kinds[i].what);
                break;
            }
        H5Fclose(f);
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
}

static void print_text(FILE *f, const ember_checkpoint_info *o)
{
    char size[32], what[128];
    human_size(size, sizeof size, o->bytes);
    what_it_is(o, what, sizeof what);
    if (what[0]) {
        fprintf(f, "%s: not a checkpoint: %s\n  size:        %s (%" PRIu64 " bytes)\n",
                o->path, what, size, o->bytes);
        return;
    }
    fprintf(f, "%s: %s\n", o->path, o->verified ? "verified" : "FAILS VERIFICATION");
    if (!o->verified)
        fprintf(f, "  error:       %s\n", o->error);
    fprintf(f, "  size:        %s (%" PRIu64 " bytes)\n", size, o->bytes);
    if (!o->readable)
        return;
    fprintf(f, "  kind:        %s, written by %s (ember %s, format %" PRId64 ")\n",
            o->kind, o->program[0] ? o->program : "(no program)", o->ember_version,
            o->format_version);
    fprintf(f, "  iteration:   %" PRIu64 "\n  created:     %s\n", o->iteration, o->created);
    fprintf(f, "  fingerprint: %016" PRIx64 "\n  threads:     %" PRId64 "\n",
            o->fingerprint, o->threads);
    print_block(f, "parameters", o->parameters);
    print_block(f, "state", o->signature);
    print_items(f, o);
    print_block(f, "lineage", o->lineage);
}

/* ---- files ----------------------------------------------------------------------- */

/* 0 verified, 1 not, 2 could not be opened at all. */
static int inspect_file(ember_ctx *ctx, const char *path)
{
    char msg[EMBER_MSG_SIZE];
    ember_checkpoint_info *o = NULL;
    int rc = ember_checkpoint_inspect(&o, ctx, path, msg);
    if (!o) {
        fprintf(stderr, "ember-inspect: %s\n", msg);
        return rc == EMBER_ENOTFOUND || rc == EMBER_EINVAL ? 2 : 1;
    }
    if (opt_json)
        print_json(stdout, o);
    else
        print_text(stdout, o);
    int verified = o->verified;
    ember_checkpoint_info_free(ctx, &o);
    return verified ? 0 : 1;
}

static int worse(int a, int b)
{
    return a == 2 || b == 2 ? 2 : a > b ? a : b;
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
    int status = n ? 0 : 2;
    if (!n)
        fprintf(stderr, "ember-inspect: %s: no checkpoint files (ckpt-*.h5, ds-*.h5)\n",
                path);
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
    int rc = ember_plot_need(cli->prog->name, "plot", "gnuplot", "gnuplot-nox");
    if (!rc)
        rc = ember_cli_check_output(cli, "output", cli->output);
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
    return status;
}
