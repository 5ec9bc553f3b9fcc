/* cli.c: the common command line of the algorithm programs (see cli.h).
 *
 * Parsing builds one getopt_long table from the common flags and the
 * program's own, then checks every value strictly: whole numbers have no
 * sign (unless signed), no trailing text and no overflow; floats are finite;
 * ranges are checked; a bad value exits 2 naming the flag and the value.
 * The run helpers (ember_cli_iterate) wrap the checkpointed loop with the
 * metrics file and the progress line, so every program reports the same
 * way (cli_loop.c holds those). Everything runs on the main thread.
 */
#include "cli.h"

#ifdef EMBER_MPI
#include <mpi.h>
#include <ember/mpi.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Common flags: index into this table is the getopt value minus 256. */
enum {
    C_INPUT, C_OUTPUT, C_ITERATIONS, C_TOLERANCE, C_THREADS, C_PARTITIONS,
    C_CKDIR, C_CKEVERY, C_CKSECONDS, C_CKASYNC, C_CKSYNC, C_KEEP, C_RESUME, C_FORCE,
    C_DEADLINE, C_STOPAT,
    C_SEED, C_METRICS,
    C_QUIET, C_VERIFY, C_HELP, C_VERSION, C_COUNT
};

typedef struct {
    const char *name;
    int has_arg;
    unsigned group; /* EMBER_CLI_NO_* that removes it */
    const char *metavar;
    const char *help;
} common_flag;

static const common_flag common[C_COUNT] = {
    [C_INPUT] = {"input", 1, EMBER_CLI_NO_INPUT, "FILE", "input file"},
    [C_OUTPUT] = {"output", 1, EMBER_CLI_NO_OUTPUT, "FILE", "output file (-o FILE for short)"},
    [C_ITERATIONS] = {"iterations", 1, EMBER_CLI_NO_LOOP | EMBER_CLI_NO_ITERATIONS, "N",
                      "at most N iterations"},
    [C_TOLERANCE] = {"tolerance", 1, EMBER_CLI_NO_LOOP | EMBER_CLI_NO_TOLERANCE, "T",
                     "stop when the change is below T (0: run all iterations)"},
    [C_THREADS] = {"threads", 1, EMBER_CLI_NO_THREADS, "N",
                   "OpenMP threads (default OMP_NUM_THREADS or all cores)"},
    [C_PARTITIONS] = {"partitions", 1, EMBER_CLI_NO_PARTITIONS, "P",
                      "partitions (default: from the data size)"},
    [C_CKDIR] = {"checkpoint-dir", 1, EMBER_CLI_NO_LOOP, "DIR",
                 "write checkpoints to DIR (created if missing); the options "
                 "below, to --stop-at, need it"},
    [C_CKEVERY] = {"checkpoint-every", 1, EMBER_CLI_NO_LOOP, "N",
                   "checkpoint every N iterations"},
    [C_CKSECONDS] = {"checkpoint-seconds", 1, EMBER_CLI_NO_LOOP, "S",
                     "checkpoint every S seconds (0 or unset: 60 with a DIR, unless "
                     "--checkpoint-every is given)"},
    [C_CKASYNC] = {"checkpoint-async", 0, EMBER_CLI_NO_LOOP, NULL,
                   "write policy checkpoints in the background while the next "
                   "iterations run (the default on one process)"},
    [C_CKSYNC] = {"checkpoint-sync", 0, EMBER_CLI_NO_LOOP, NULL,
                  "write every checkpoint before the next iteration, streamed "
                  "to the file (no copy of the state in memory; the default "
                  "under MPI)"},
    [C_KEEP] = {"keep", 1, EMBER_CLI_NO_LOOP, "K",
                "keep the last K checkpoints (default 2)"},
    [C_RESUME] = {"resume", 1, EMBER_CLI_NO_LOOP, "auto|never|require",
                  "resume from the newest good checkpoint (default auto)"},
    [C_FORCE] = {"force-resume", 0, EMBER_CLI_NO_LOOP, NULL,
                 "resume although the program, parameters or input differ (the "
                 "state's types must match): a warm start, not a fresh run's "
                 "result; the stop is decided again, and later checkpoints and "
                 "the outputs (attribute forced_resume) record it. Labels (cc) "
                 "and distances (sssp) continued on another graph, and maps' "
                 "data of another --n, are checked before they go out, and "
                 "refused (exit 2) when wrong"},
    [C_DEADLINE] = {"deadline", 1, EMBER_CLI_NO_LOOP, "TIME",
                    "wall-clock limit counted from the program's start, as "
                    "SLURM's --time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                    "D-HH:MM:SS) or 90s, 30m, 2h, 1d: checkpoint and exit 75 when "
                    "too little time is left for another iteration"},
    [C_STOPAT] = {"stop-at", 1, EMBER_CLI_NO_LOOP, "N",
                  "stop after iteration N as a signal would: checkpoint and "
                  "exit 75 (a resume demonstration, independent of speed; a "
                  "run that ends at N anyway exits 0, and one resumed at or "
                  "past N runs on)"},
    [C_SEED] = {"seed", 1, EMBER_CLI_NO_SEED, "S", "random seed (default 42)"},
    [C_METRICS] = {"metrics", 1, EMBER_CLI_NO_LOOP, "FILE",
                   "write JSON lines per iteration to FILE"},
    [C_QUIET] = {"quiet", 0, EMBER_CLI_NO_QUIET, NULL,
                 "no progress on stderr (results on stdout, warnings and "
                 "errors on stderr still appear)"},
    [C_VERIFY] = {"verify", 0, EMBER_CLI_NO_LOOP, NULL,
                  "check the result with a simple serial checker"},
    [C_HELP] = {"help", 0, 0, NULL, "this help (also -h)"},
    [C_VERSION] = {"version", 0, 0, NULL, "print the version"},
};

#define EXTRA_BASE 512
#define MAX_EXTRA 64

int ember_cli_fclose(FILE *f)
{
    int failed = ferror(f), e = errno; /* a failed write leaves its errno */
    errno = 0;
    if (fclose(f) != 0)
        return errno ? errno : EIO;
    return failed ? (e ? e : EIO) : 0;
}

double ember_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ember_cli_has_suffix(const char *name, const char *suffix)
{
    size_t n = name ? strlen(name) : 0, m = strlen(suffix);
    return n >= m && strcasecmp(name + n - m, suffix) == 0;
}

/* The exit status the program has settled on, or -1: what the early
 * signal handler exits with (see "signals before and after the loop"). */
static volatile sig_atomic_t early_settled = -1;

int ember_cli_settle(int status)
{
    /* A failure settles; a success only at ember_cli_exit, which the
     * programs call with their outcome complete (output, final checkpoint,
     * verification) and before tearing down: a signal in the teardown
     * then exits 0, not 75 (a batch script would requeue a finished job).
     * What was printed goes out first: a signal now ends the process
     * without stdio's flush. */
    fflush(stdout);
    fflush(stderr);
    if (status != 0)
        early_settled = status;
    /* tests only: a program that lingers after settling (as a slow rank
     * does in MPI_Finalize), for a signal to find it there */
    const char *d = getenv("EMBER_TEST_SETTLE_DELAY");
    if (d && strtod(d, NULL) > 0)
        nanosleep(&(struct timespec){(time_t)strtod(d, NULL), 0}, NULL);
    return status;
}

/* The name an error line starts with: the program's, and under mpirun,
 * on ranks past 0, which rank says it. */
static void speaker(const ember_cli *cli, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", cli && cli->prog ? cli->prog->name : "ember");
    if (cli && cli->ranks > 1 && cli->rank > 0 && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " (rank %d)", cli->rank);
}

/* Shows each control byte but a tab of s[from, to) as '?': what a user
 * typed (a newline in a file's name) never splits an error in two lines. */
static void one_line(char *s, size_t from, size_t to)
{
    for (size_t i = from; i < to && s[i]; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            s[i] = '?';
}

void ember_cli_say(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    one_line(line, 0, sizeof line);
    fprintf(stderr, "%s\n", line);
}

/* A usage error's line held back by a rank past 0 between
 * ember_cli_hold_errors and ember_cli_release_errors, and the hash of
 * what it says (without the speaker), which every rank keeps. */
static struct {
    int on;
    uint64_t said;
    size_t len;
    char line[2048];
} held;

/* One write a line: under mpirun the ranks' lines would interleave
 * ("ember-x: ember-x: --a ..."). Ranks other than 0 say which they are. */
int ember_cli_usage_error(const ember_cli *cli, const char *fmt, ...)
{
    char line[2048];
    speaker(cli, line, sizeof line - 1);
    int at = (int)strlen(line);
    at += snprintf(line + at, sizeof line - 1 - (size_t)at, ": ");
    int from = at;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line + at, sizeof line - 1 - (size_t)at, fmt, ap);
    va_end(ap);
    at = len < 0 ? at : at + len < (int)sizeof line - 1 ? at + len : (int)sizeof line - 2;
    one_line(line, (size_t)from, (size_t)at);
    line[at] = '\n';
    early_settled = EMBER_EXIT_USAGE; /* before the line: seen, it is settled */
    if (!held.said) { /* the first: what the rank stopped on */
        uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, never 0 below */
        for (int i = from; i < at; i++)
            h = (h ^ (unsigned char)line[i]) * 0x100000001b3u;
        held.said = h | 1;
    }
    if (held.on && !held.len) {
        memcpy(held.line, line, (size_t)at + 1);
        held.len = (size_t)at + 1;
    } else if (!held.on) {
        fwrite(line, 1, (size_t)at + 1, stderr);
    }
    return ember_cli_settle(EMBER_EXIT_USAGE);
}

void ember_cli_hold_errors(const ember_cli *cli)
{
    held.said = 0;
    held.len = 0;
    held.on = cli->ranks > 1 && cli->rank > 0;
}

int ember_cli_release_errors(const ember_cli *cli, int failed, const char *where)
{
    int any = failed != 0, alike = 1;
#ifdef EMBER_MPI
    if (cli->ranks > 1) {
        /* the largest of said, of ~said (the smallest) and of failed */
        uint64_t v[3] = {held.said, ~held.said, any}, all[3];
        MPI_Allreduce(v, all, 3, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
        alike = all[0] == ~all[1];
        any = all[2] != 0;
    }
#endif
    if (held.len && !alike) /* the ranks' lines differ: each says its own */
        fwrite(held.line, 1, held.len, stderr);
    held.on = 0;
    held.len = 0;
    held.said = 0;
    if (!any || failed)
        return failed;
    if (cli->rank == 0) /* every rank stops; rank 0 says why */
        return ember_cli_usage_error(cli, "another rank stopped on its %s (its message "
                                     "says why)", where);
    return ember_cli_settle(EMBER_EXIT_USAGE);
}

/* ---- strict numbers ------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (!s || !*s || *s == ' ')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *s, double *out)
{
    char *end;
    if (!s || !*s || *s == ' ')
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return -1;
    *out = v;
    return 0;
}

static void range_text(char *buf, size_t size, double min, double max,
                       unsigned flags, int whole)
{
    char lo = (flags & EMBER_CLI_OPEN_MIN) ? '(' : '[';
    char hi = (flags & EMBER_CLI_OPEN_MAX) ? ')' : ']';
    if (whole && max >= 0x1p63) /* (double)INT64_MAX rounds up to 2^63 */
        snprintf(buf, size, "%c%.0f, 9223372036854775807%c", lo, min, hi);
    else
        snprintf(buf, size, whole ? "%c%.0f, %.0f%c" : "%c%.15g, %.15g%c", lo, min, max, hi);
}

static int in_range(double v, double min, double max, unsigned flags)
{
    if (!(flags & (EMBER_CLI_RANGE | EMBER_CLI_OPEN_MIN | EMBER_CLI_OPEN_MAX)))
        return 1;
    if ((flags & EMBER_CLI_OPEN_MIN) ? !(v > min) : !(v >= min))
        return 0;
    return (flags & EMBER_CLI_OPEN_MAX) ? v < max : v <= max;
}

/* Parses one numeric value of any kind into dest, with its range. */
static int parse_value(const ember_cli *cli, const char *flag,
                       ember_cli_kind kind, const char *s, void *dest,
                       double min, double max, unsigned flags)
{
    char range[96] = "";
    const char *what = "a number";
    double v = 0;
    int bad = 0;
    if (kind == EMBER_CLI_U64) {
        uint64_t u;
        what = "a whole number >= 0";
        bad = parse_u64(s, &u);
        if (!bad) {
            v = (double)u;
            *(uint64_t *)dest = u;
        }
    } else if (kind == EMBER_CLI_I64) {
        int64_t i;
        what = "a whole number";
        bad = parse_i64(s, &i);
        if (!bad) {
            v = (double)i;
            *(int64_t *)dest = i;
        }
    } else {
        what = "a finite number";
        bad = parse_f64(s, &v);
        if (!bad)
            *(double *)dest = v;
    }
    int ranged = (flags & (EMBER_CLI_RANGE | EMBER_CLI_OPEN_MIN | EMBER_CLI_OPEN_MAX)) != 0;
    int whole = kind != EMBER_CLI_F64;
    if (ranged)
        range_text(range, sizeof range, min, max, flags, whole);
    if (bad && whole && s) { /* an integer that does not fit: say so */
        int minus = s[0] == '-';
        const char *d = s + minus;
        if (d[0] && !d[strspn(d, "0123456789")])
            return ember_cli_usage_error(
                cli, "--%s: %s is %s%s%s", flag, s,
                minus ? (kind == EMBER_CLI_U64 ? "negative" : "too small") : "too large",
                ranged ? ": it must be in " : minus && kind == EMBER_CLI_U64 ? "" : " for 64 bits",
                range);
    }
    if (bad)
        return ember_cli_usage_error(cli, "--%s: '%s' is not %s%s%s", flag, s ? s : "",
                                     ranged && whole ? "a whole number" : what,
                                     ranged ? " in " : "", range);
    if (!in_range(v, min, max, flags)) {
        return ember_cli_usage_error(cli, "--%s: %s is out of range: it must be in %s",
                                     flag, s, range);
    }
    return 0;
}

/* Whole number of at most 9 digits in [s, e): 0 and *v, or -1. */
static int whole(const char *s, const char *e, double *v)
{
    if (e <= s || e - s > 9)
        return -1;
    double x = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        x = x * 10 + (*p - '0');
    }
    *v = x;
    return 0;
}

int ember_cli_decimal(const char *s, const char *end)
{
    const char *p = s;
    size_t digits = 0;
    int dot = 0;
    for (; p < end && ((*p >= '0' && *p <= '9') || (*p == '.' && !dot)); p++) {
        dot |= *p == '.';
        digits += *p != '.';
    }
    if (!digits)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *exp = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == exp)
            return 0;
    }
    return p == end;
}

const char *ember_cli_flag_given_value(const struct option *table, const char *arg,
                                       int opt)
{
    const char *eq = arg ? strchr(arg, '=') : NULL;
    if (!eq || strncmp(arg, "--", 2) != 0)
        return NULL;
    size_t len = (size_t)(eq - arg - 2);
    for (const struct option *o = table; o->name; o++) {
        size_t n = strlen(o->name);
        if (o->has_arg != no_argument || len == 0 || len > n ||
            strncmp(o->name, arg + 2, len) != 0)
            continue;
        if (n == len || (opt && !o->flag && o->val == opt)) /* whole, or the abbreviation */
            return o->name;
    }
    return NULL;
}

/* A number with a unit: 90s, 30m, 2h, 1.5d. */
static int duration_with_unit(const char *s, size_t n, double *out)
{
    static const char units[] = "smhd";
    static const double scale[] = {1, 60, 3600, 86400};
    const char *u = strchr(units, s[n - 1]);
    char *end;
    if (!u || n < 2 || !((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
        return -1;
    if (!ember_cli_decimal(s, s + n - 1)) /* strtod reads 0x10 as 16 */
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s + n - 1 || errno || !isfinite(v) || v > 1e9)
        return -1;
    *out = v * scale[u - units];
    return 0;
}

int ember_cli_parse_duration(const char *s, double *out)
{
    size_t n = s ? strlen(s) : 0;
    double secs = -1, days = 0, f[3];
    if (n == 0)
        return -1;
    if (s[n - 1] < '0' || s[n - 1] > '9') {
        if (duration_with_unit(s, n, &secs))
            return -1;
    } else {
        /* SLURM's --time: [D-]fields, fields split at ':' */
        const char *p = s, *dash = strchr(s, '-'), *end = s + n;
        int have_days = dash != NULL, k = 0;
        if (have_days) {
            if (whole(s, dash, &days))
                return -1;
            p = dash + 1;
        }
        while (k < 3) {
            const char *colon = memchr(p, ':', (size_t)(end - p));
            const char *e = colon ? colon : end;
            if (whole(p, e, &f[k++]))
                return -1;
            if (!colon)
                break;
            p = colon + 1;
            if (k == 3)
                return -1;
        }
        /* minutes and seconds after a colon, hours after a day: a typo
           such as 25:99 is refused rather than read as 26:39 */
        for (int i = 1; i < k; i++)
            if (f[i] >= 60)
                return -1;
        if (have_days && f[0] >= 24)
            return -1;
        if (have_days) /* D-HH, D-HH:MM, D-HH:MM:SS */
            secs = days * 86400 + f[0] * 3600 + (k > 1 ? f[1] * 60 : 0) +
                   (k > 2 ? f[2] : 0);
        else if (k == 1) /* MM */
            secs = f[0] * 60;
        else if (k == 2) /* MM:SS */
            secs = f[0] * 60 + f[1];
        else /* HH:MM:SS */
            secs = f[0] * 3600 + f[1] * 60 + f[2];
    }
    if (!(secs > 0))
        return -1;
    *out = secs;
    return 0;
}

static int parse_duration(ember_cli *cli, const char *flag, const char *s,
                          double *out)
{
    if (ember_cli_parse_duration(s, out) == 0)
        return 0;
    return ember_cli_usage_error(cli, "--%s: '%s' is not a duration above 0: "
                                 "SLURM's MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                                 "D-HH:MM:SS, or a number with a unit (90s, 30m, "
                                 "2h, 1d)", flag, s);
}

static int parse_choice(const ember_cli *cli, const char *flag,
                        const char *choices, const char *s, int *out)
{
    int idx = 0;
    size_t n = strlen(s);
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0) {
            *out = idx;
            return 0;
        }
        p += len + (bar ? 1 : 0);
    }
    return ember_cli_usage_error(cli, "--%s: '%s' is not one of %s", flag, s,
                                 choices);
}

/* ---- help ---------------------------------------------------------------- */

/* Help text wrapped at word boundaries to `width` columns, each line after
 * the first indented by `indent` spaces. */
static void wrap_text(FILE *f, const char *text, int indent, int width)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, word, f);
        col += (int)word;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

/* One option: "  --flag VALUE" padded to 26 columns, then its text wrapped
 * at 79 (a long "--flag VALUE" gets a line of its own). The regular shape
 * lets help2man and the completions read the options. */
static void help_line(FILE *f, const char *name, const char *metavar,
                      const char *help)
{
    char left[64];
    if (metavar)
        snprintf(left, sizeof left, "--%s %s", name, metavar);
    else
        snprintf(left, sizeof left, "--%s", name);
    if (strlen(left) > 24)
        fprintf(f, "  %s\n  %-24s  ", left, "");
    else
        fprintf(f, "  %-24s  ", left);
    wrap_text(f, help ? help : "", 28, 79);
}

void ember_cli_usage(const ember_cli_program *prog, FILE *f)
{
    fprintf(f, "usage: %s %s\n\n", prog->name, prog->usage ? prog->usage : "[options]");
    if (prog->summary)
        fprintf(f, "%s\n\n", prog->summary);
    if (prog->extra && prog->extra[0].name) {
        fprintf(f, "%s options:\n", prog->name);
        for (const ember_cli_opt *o = prog->extra; o->name; o++)
            help_line(f, o->name,
                      o->kind == EMBER_CLI_FLAG ? NULL
                      : o->metavar             ? o->metavar
                      : o->kind == EMBER_CLI_CHOICE ? o->choices
                                                    : "VALUE",
                      o->help);
        fputc('\n', f);
    }
    fprintf(f, "common options:\n");
    for (int i = 0; i < C_COUNT; i++) {
        if (common[i].group & prog->omit)
            continue;
        char help[512];
        if (i == C_ITERATIONS)
            snprintf(help, sizeof help, "at most N iterations (default %" PRIu64 ")",
                     prog->default_iterations);
        else if (i == C_TOLERANCE)
            snprintf(help, sizeof help, "stop when the change is below T (default %g; 0: %s)",
                     prog->default_tolerance,
                     prog->tolerance_zero ? prog->tolerance_zero : "run all iterations");
        else
            snprintf(help, sizeof help, "%s", common[i].help);
        help_line(f, common[i].name, common[i].has_arg ? common[i].metavar : NULL,
                  help);
    }
    if (prog->examples)
        fprintf(f, "\nexamples:\n%s", prog->examples);
    fprintf(f, "\nResults go to stdout; progress, timings and errors to stderr.\n");
    if (prog->exit_status)
        fprintf(f, "\n%s", prog->exit_status);
    else if (prog->omit & EMBER_CLI_NO_LOOP) /* no checkpoint to resume from */
        fprintf(f, "\nexit status: 0 done, 2 bad usage or input, 1 other errors\n");
    else
        fprintf(f, "\nexit status: 0 done, 2 bad usage or input, %d checkpointed and "
                   "resumable\n(run the same command again), 1 other errors\n",
                EMBER_EXIT_RESUMABLE);
}

/* --help on stdout in one write: a reader that stops early (`| grep -q`,
 * `| head`) cannot then break the pipe under a second write (4 KiB of
 * stdio buffer; ember-sssp's help is over 4 KiB), which killed the program
 * with SIGPIPE. */
static void print_help(const ember_cli_program *prog)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) {
        ember_cli_usage(prog, stdout);
        return;
    }
    ember_cli_usage(prog, m);
    if (fclose(m) == 0) {
        fflush(stdout);
        for (size_t at = 0; at < len;) {
            ssize_t w = write(STDOUT_FILENO, text + at, len - at);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            at += (size_t)w;
        }
    } else {
        ember_cli_usage(prog, stdout);
    }
    free(text);
}

/* ---- signals before and after the loop -------------------------------------
 *
 * A batch system's SIGTERM or SIGUSR1 can come at any moment, loading
 * included. Until a loop with a checkpoint directory takes the signals over
 * (and after it is gone), there is nothing to save: the handler writes one
 * prepared line and exits 75 at once (write and _exit are async-signal-
 * safe). The deadline timer (SIGALRM) does the same while loading. The
 * lines are prepared outside the handler, so it formats nothing. */

static char early_line[2][512];
static size_t early_len[2];
static volatile sig_atomic_t early_installed;

static void early_exit(int sig)
{
    /* Past the program's outcome (a usage error, the end of main; under
     * mpirun the slower ranks get SIGTERM when one rank has exited) there
     * is nothing to say: the status stands. */
    if (early_settled >= 0)
        _exit(early_settled);
    int which = sig == SIGALRM;
    ssize_t w = write(STDERR_FILENO, early_line[which], early_len[which]);
    (void)w;
    _exit(EMBER_EXIT_RESUMABLE);
}

/* The tail of an interruption message: what the next run will do. */
/* written: a checkpoint of this run is known to be there. */
static void resume_advice(const ember_cli *cli, int written, char *buf, size_t size)
{
    if (!cli->checkpoint_dir)
        snprintf(buf, size, "nothing is saved without --checkpoint-dir: a new run "
                 "starts over");
    else if (cli->resume == EMBER_RESUME_NEVER)
        snprintf(buf, size, "this run had --resume never, so the same command would "
                 "start over: run it with --resume auto to resume from %s",
                 cli->checkpoint_dir);
    else
        snprintf(buf, size, "run the same command again to resume from the last "
                 "checkpoint in %s%s", cli->checkpoint_dir,
                 written ? "" : " (if there is one)");
}

/* (Re)writes the handler's lines from the flags; called by parse and by
 * ember_cli_prepare, outside any handler. */
static void early_lines(const ember_cli *cli)
{
    char advice[400];
    const char *name = cli->prog ? cli->prog->name : "ember";
    resume_advice(cli, 0, advice, sizeof advice);
    int a = snprintf(early_line[0], sizeof early_line[0],
                     "%s: stopped by a signal outside the checkpointed iterations "
                     "(exit 75); %s\n", name, advice);
    int b = snprintf(early_line[1], sizeof early_line[1],
                     "%s: --deadline reached before the first iteration (exit 75); "
                     "%s\n", name, advice);
    early_len[0] = a > 0 && (size_t)a < sizeof early_line[0] ? (size_t)a
                                                             : strlen(early_line[0]);
    early_len[1] = b > 0 && (size_t)b < sizeof early_line[1] ? (size_t)b
                                                             : strlen(early_line[1]);
}

static void early_install(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGALRM};
    if (early_installed)
        return;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = early_exit;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        /* A signal ignored at start stays ignored (a background job's
         * SIGINT); SIGALRM is ours: the deadline timer. */
        if (sigaction(sigs[i], NULL, &old) == 0 && sigs[i] != SIGALRM &&
            !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
    early_installed = 1;
}

/* Before main: a program that links this library catches the signals from
 * its first instant, not only once main has parsed its flags (under load,
 * or with a sanitizer's start-up, that can be a good fraction of a
 * second). ember_cli_parse rewrites the lines from the flags; a tool
 * without a loop (ember-gen, ember-convert) puts the default actions back. */
__attribute__((constructor)) static void early_at_start(void)
{
    /* Descriptors 0 to 2 stay taken: a file opened while one is closed
     * would get its number, and what the program prints would land in it
     * (the checkpoint directory's lock file). A closed one gets /dev/null
     * opened for reading, so a write to it still fails, as it would have. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (nul >= 0 && nul != fd) {
                dup2(nul, fd); /* dup2 clears O_CLOEXEC on fd */
                close(nul);
            } else if (nul == fd) {
                fcntl(fd, F_SETFD, 0);
            }
        }
    ember_cli_catch_early("ember: stopped by a signal while starting (exit 75); "
                          "run the same command again");
}

static void early_release(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGALRM};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == early_exit)
            sigaction(sigs[i], &sa, NULL);
    early_installed = 0;
}

static void early_catch(const ember_cli *cli)
{
    early_lines(cli);
    early_install();
}

void ember_cli_catch_early(const char *line)
{
    snprintf(early_line[0], sizeof early_line[0], "%s\n", line);
    early_len[0] = strlen(early_line[0]);
    memcpy(early_line[1], early_line[0], sizeof early_line[1]);
    early_len[1] = early_len[0];
    early_install();
}

/* ---- parsing ------------------------------------------------------------- */

static int parse_common(ember_cli *cli, int which, const char *arg)
{
    const char *flag = common[which].name;
    uint64_t u;
    switch (which) {
    case C_INPUT: cli->input = arg; return 0;
    case C_OUTPUT: cli->output = arg; return 0;
    case C_ITERATIONS:
        cli->iterations_set = 1;
        return parse_value(cli, flag, EMBER_CLI_U64, arg, &cli->iterations, 0,
                           (double)(UINT64_C(1) << 62), EMBER_CLI_RANGE);
    case C_TOLERANCE:
        cli->tolerance_set = 1;
        return parse_value(cli, flag, EMBER_CLI_F64, arg, &cli->tolerance, 0,
                           1e300, EMBER_CLI_RANGE);
    case C_THREADS: {
        int rc = parse_value(cli, flag, EMBER_CLI_U64, arg, &u, 1, 4096,
                             EMBER_CLI_RANGE);
        cli->threads = (int)u;
        return rc;
    }
    case C_PARTITIONS: {
        int rc = parse_value(cli, flag, EMBER_CLI_U64, arg, &u, 1, 1 << 24,
                             EMBER_CLI_RANGE);
        cli->partitions = (size_t)u;
        return rc;
    }
    case C_CKDIR:
        cli->checkpoint_dir = arg;
        if (!arg[0])
            return ember_cli_usage_error(cli, "--checkpoint-dir: empty directory name");
        return 0;
    case C_CKEVERY:
        return parse_value(cli, flag, EMBER_CLI_U64, arg, &cli->checkpoint_every,
                           0, (double)(UINT64_C(1) << 62), EMBER_CLI_RANGE);
    case C_CKSECONDS:
        return parse_value(cli, flag, EMBER_CLI_F64, arg, &cli->checkpoint_seconds,
                           0, 1e9, EMBER_CLI_RANGE);
    case C_KEEP: {
        int rc = parse_value(cli, flag, EMBER_CLI_U64, arg, &u, 1, 1000000,
                             EMBER_CLI_RANGE);
        cli->keep = (int)u;
        return rc;
    }
    case C_RESUME: {
        int idx = 0, rc = parse_choice(cli, flag, "auto|never|require", arg, &idx);
        cli->resume = idx == 1 ? EMBER_RESUME_NEVER
                      : idx == 2 ? EMBER_RESUME_REQUIRE
                                 : EMBER_RESUME_AUTO;
        return rc;
    }
    case C_FORCE: cli->force_resume = 1; return 0;
    case C_CKASYNC: cli->checkpoint_async = 1; return 0;
    case C_CKSYNC: cli->checkpoint_sync = 1; return 0;
    case C_DEADLINE:
        return parse_duration(cli, flag, arg, &cli->deadline_seconds);
    case C_STOPAT:
        return parse_value(cli, flag, EMBER_CLI_U64, arg, &cli->stop_at, 1,
                           (double)(UINT64_C(1) << 62), EMBER_CLI_RANGE);
    case C_SEED:
        cli->seed_set = 1;
        return parse_value(cli, flag, EMBER_CLI_U64, arg, &cli->seed, 0, 0, 0);
    case C_METRICS: cli->metrics = arg; return 0;
    case C_QUIET: cli->quiet = 1; return 0;
    case C_VERIFY: cli->verify = 1; return 0;
    }
    return 0;
}

static int parse_extra(ember_cli *cli, const ember_cli_opt *o, const char *arg)
{
    switch (o->kind) {
    case EMBER_CLI_FLAG: *(int *)o->dest = 1; return 0;
    case EMBER_CLI_STR: *(const char **)o->dest = arg; return 0;
    case EMBER_CLI_CHOICE:
        return parse_choice(cli, o->name, o->choices, arg, (int *)o->dest);
    default:
        return parse_value(cli, o->name, o->kind, arg, o->dest, o->min, o->max,
                           o->flags);
    }
}

static void defaults(ember_cli *cli, const ember_cli_program *prog)
{
    memset(cli, 0, sizeof *cli);
    cli->prog = prog;
    cli->iterations = prog->default_iterations;
    cli->tolerance = prog->default_tolerance;
    cli->seed = 42;
    cli->resume = EMBER_RESUME_AUTO;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cli->start_wall = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* getopt_long's table: the common flags this program takes, then extras. */
static int build_table(const ember_cli_program *prog, struct option *t)
{
    int n = 0;
    for (int i = 0; i < C_COUNT; i++)
        if (!(common[i].group & prog->omit))
            t[n++] = (struct option){common[i].name,
                                     common[i].has_arg ? required_argument
                                                       : no_argument,
                                     0, 256 + i};
    int k = 0;
    for (const ember_cli_opt *o = prog->extra; o && o->name; o++, k++) {
        if (k >= MAX_EXTRA)
            return -1;
        t[n++] = (struct option){o->name,
                                 o->kind == EMBER_CLI_FLAG ? no_argument
                                                           : required_argument,
                                 0, EXTRA_BASE + k};
    }
    t[n] = (struct option){0, 0, 0, 0};
    return n;
}

static int check_required(ember_cli *cli, const unsigned char *seen)
{
    int k = 0;
    for (const ember_cli_opt *o = cli->prog->extra; o && o->name; o++, k++)
        if ((o->flags & EMBER_CLI_REQUIRED) && !seen[k])
            return ember_cli_usage_error(cli, "--%s is required (see --help)",
                                         o->name);
    return 0;
}

/* An option this program does not take: a common flag it leaves out is
 * named as one that means nothing to it. */
static int unknown_option(const ember_cli *cli, const char *arg)
{
    size_t len = strcspn(arg + 2, "=");
    for (int i = 0; arg[0] == '-' && arg[1] == '-' && i < C_COUNT; i++)
        if (strlen(common[i].name) == len && strncmp(common[i].name, arg + 2, len) == 0)
            return ember_cli_usage_error(cli, "--%s means nothing to %s: it is not "
                                         "one of its options (see --help)",
                                         common[i].name, cli->prog->name);
    return ember_cli_usage_error(cli, "unknown option '%s' (see --help)", arg);
}

#ifdef EMBER_MPI
/* At exit, after main has destroyed its context (which frees the context's
 * communicator): every path out of a program finalises MPI, so a usage
 * error on every rank ends the job with that status, not an abort. */
static void finalize_mpi(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin)
        MPI_Finalize();
}
#endif

/* MPI_Init_thread (FUNNELED: ember calls MPI from this thread only, never
 * inside OpenMP regions) and the rank; serially rank 0 of 1. Only when a
 * launcher started more than one rank: a program started on its own (or
 * as the one rank of mpirun -n 1) stays MPI-free, as the serial build is,
 * and pays no MPI start-up (a singleton MPI_Init also starts a helper
 * daemon that would see the program's signals). */
static void start_ranks(ember_cli *cli)
{
    cli->rank = 0;
    cli->ranks = 1;
#ifdef EMBER_MPI
    if (ember_cli_launched_ranks(NULL) <= 1)
        return;
    int init = 0, provided = 0;
    MPI_Initialized(&init);
    if (!init && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) ==
                     MPI_SUCCESS)
        atexit(finalize_mpi);
    MPI_Initialized(&init);
    if (init) {
        MPI_Comm_rank(MPI_COMM_WORLD, &cli->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &cli->ranks);
    }
#endif
}

int ember_cli_launched_ranks(const char **var)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                       "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        char *end = NULL;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && end != v && *end == '\0' && n > 1) {
            if (var)
                *var = vars[i];
            return n > INT_MAX ? INT_MAX : (int)n;
        }
    }
    return 1;
}

static int parse_args(ember_cli *cli, const ember_cli_program *prog, int argc,
                      char **argv)
{
    struct option table[C_COUNT + MAX_EXTRA + 1];
    unsigned char seen[MAX_EXTRA] = {0};
    defaults(cli, prog);
    start_ranks(cli);
    ember_cli_hold_errors(cli);
    if (!(prog->omit & EMBER_CLI_NO_LOOP))
        early_catch(cli);
    else
        early_release(); /* a tool: the default actions */
    if (build_table(prog, table) < 0)
        return ember_cli_usage_error(cli, "too many options (internal)");
    optind = 0; /* glibc: a full restart, not one inside a cluster like -xyz */
    opterr = 0;
    optopt = 0;
    int c, rc = 0;
    const char *given;
    /* -o FILE is --output FILE, where the program has --output */
    const char *shorts = prog->omit & EMBER_CLI_NO_OUTPUT ? ":h" : ":ho:";
    while (!rc && (c = getopt_long(argc, argv, shorts, table, NULL)) != -1) {
        if (c == 'h' || c == 256 + C_HELP) {
            if (cli->rank == 0) /* once, under mpirun */
                print_help(prog);
            return EMBER_EXIT_OK;
        } else if (c == 'o') {
            rc = parse_common(cli, C_OUTPUT, optarg);
        } else if (c == '?' && optopt > 0 && optopt < 256) {
            /* A short option, maybe inside a cluster like -xyz: optind
             * does not point at it, so name the letter. */
            rc = ember_cli_usage_error(cli, "unknown option '-%c' (the options are "
                                       "long ones, like --input; see --help)", optopt);
        } else if (c == ':') {
            rc = ember_cli_usage_error(cli, "%s needs a value (see --help)",
                                       argv[optind - 1]);
        } else if (c == '?' && (given = ember_cli_flag_given_value(table, argv[optind - 1],
                                                                    optopt))) {
            rc = ember_cli_usage_error(cli, "--%s takes no value (got '%s'; see --help)",
                                       given, argv[optind - 1]);
        } else if (c == '?') {
            rc = unknown_option(cli, argv[optind - 1]);
        } else if (c == 256 + C_VERSION) {
            if (cli->rank == 0)
                printf("%s (ember) %s, " EMBER_CLI_BUILD "\n", prog->name,
                       EMBER_VERSION_STRING);
            return EMBER_EXIT_OK;
        } else if (c >= EXTRA_BASE) {
            seen[c - EXTRA_BASE] = 1;
            rc = parse_extra(cli, &prog->extra[c - EXTRA_BASE], optarg);
        } else {
            rc = parse_common(cli, c - 256, optarg);
        }
    }
    if (rc)
        return rc;
    if (!(prog->omit & EMBER_CLI_NO_LOOP))
        early_lines(cli); /* the flags are known now */
    cli->args = argv + optind;
    cli->nargs = argc - optind;
    if (cli->nargs > prog->max_positional)
        return ember_cli_usage_error(cli, "unexpected argument '%s' (see --help)",
                                     argv[optind + prog->max_positional]);
    if (!cli->checkpoint_dir && (cli->checkpoint_every || cli->checkpoint_seconds > 0 ||
                                 cli->keep || cli->resume == EMBER_RESUME_REQUIRE ||
                                 cli->checkpoint_async || cli->checkpoint_sync ||
                                 cli->force_resume || cli->deadline_seconds > 0 ||
                                 cli->stop_at))
        return ember_cli_usage_error(cli, "--checkpoint-every, --checkpoint-seconds, "
                                     "--checkpoint-async, --checkpoint-sync, --keep, "
                                     "--resume require, "
                                     "--force-resume, --deadline and --stop-at need "
                                     "--checkpoint-dir DIR");
    if (cli->checkpoint_async && cli->checkpoint_sync)
        return ember_cli_usage_error(cli, "--checkpoint-async and --checkpoint-sync "
                                     "exclude each other");
    if (cli->force_resume && cli->resume == EMBER_RESUME_NEVER)
        return ember_cli_usage_error(cli, "--force-resume and --resume never exclude "
                                     "each other (never resumes nothing to force)");
    if (cli->checkpoint_async && cli->ranks > 1)
        return ember_cli_usage_error(cli, "--checkpoint-async is not supported with "
                                     "%d MPI ranks (the background writer would run "
                                     "collectives off the main thread); drop it",
                                     cli->ranks);
#ifndef EMBER_MPI
    /* Each of the launcher's processes runs a whole job of its own: meant
     * when each has its own arguments (a sweep: srun -n 8 wrapper.sh), a
     * surprise when they are one command (mpirun -n 4 ember-pagerank ...). */
    const char *var = NULL;
    int launched = ember_cli_launched_ranks(&var);
    if (launched > 1 && !(prog->omit & EMBER_CLI_NO_LOOP)) {
        char who[160];
        speaker(cli, who, sizeof who);
        fprintf(stderr, "%s: warning: this is the serial build, started as one of %d "
                "processes by an MPI launcher (%s=%d): each runs a whole job of its "
                "own; for one job on %d ranks, use the MPI build (cmake "
                "-DEMBER_MPI=ON, docs/mpi.md)\n", who, launched, var, launched,
                launched);
    }
#endif
    cli->quiet_asked = cli->quiet;
    if (cli->rank != 0) { /* rank 0 reports the results and progress */
        cli->quiet = 1;
        if (!freopen("/dev/null", "w", stdout))
            return ember_cli_usage_error(cli, "rank %d: cannot silence stdout: %s",
                                         cli->rank, strerror(errno));
    }
    if (check_required(cli, seen))
        return EMBER_EXIT_USAGE;
    return prog->check ? prog->check(cli) : EMBER_CLI_RUN;
}

int ember_cli_parse(ember_cli *cli, const ember_cli_program *prog, int argc,
                    char **argv)
{
    /* Under mpirun the ranks' arguments fail alike: rank 0 says it once. */
    int rc = parse_args(cli, prog, argc, argv);
    int r = ember_cli_release_errors(cli, rc == EMBER_EXIT_USAGE ? rc : 0, "arguments");
    if (r)
        return r;
#ifdef EMBER_MPI
    /* --help or --version on some ranks alone (an MPMD launch, a
     * wrapper): those ranks ended while the others waited for them in the
     * first collective, for good. All stop. */
    if (cli->ranks > 1) {
        int v[2] = {rc == EMBER_EXIT_OK, rc == EMBER_CLI_RUN}, all[2];
        MPI_Allreduce(v, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (all[0] && all[1] && cli->rank == 0 && rc == EMBER_CLI_RUN)
            return ember_cli_usage_error(cli, "another rank was given --help or "
                                         "--version and this one was not: every rank "
                                         "must run the same command");
        if (all[0] && all[1])
            return ember_cli_settle(EMBER_EXIT_USAGE);
    }
#endif
    return rc;
}

/* ---- parameters, context, loop --------------------------------------------- */

typedef struct {
    char *buf;
    size_t size, len;
    int overflow;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->size - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->size - b->len) {
        b->overflow = 1;
        b->buf[b->len] = '\0';
    } else {
        b->len += (size_t)n;
    }
}

/* The shortest %g form that reads back as the same double: 0.85, not
 * 0.84999999999999998. */
static void shortest(char *buf, size_t size, double v)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Whether an option holds zero (FLAG, I64, U64, F64, CHOICE: index 0). */
static int is_zero(const ember_cli_opt *o)
{
    switch (o->kind) {
    case EMBER_CLI_FLAG: case EMBER_CLI_CHOICE: return *(const int *)o->dest == 0;
    case EMBER_CLI_I64: return *(const int64_t *)o->dest == 0;
    case EMBER_CLI_U64: return *(const uint64_t *)o->dest == 0;
    case EMBER_CLI_F64: return *(const double *)o->dest == 0;
    default: return 0;
    }
}

/* "key=value\n" with the value's line ends and backslashes escaped (\n,
 * \r, \\): a file name may hold a newline, which would otherwise start a
 * parameter line of its own (a name "g\ndamping=0.5.el" changed the run's
 * damping as the checkpoint recorded it, and the rerun was refused). */
static void add_escaped(sbuf *b, const char *key, const char *value)
{
    sb_add(b, "%s=", key);
    for (const char *p = value; *p; p++) {
        size_t plain = strcspn(p, "\\\n\r");
        if (plain) {
            sb_add(b, "%.*s", (int)plain, p);
            p += plain;
            if (!*p)
                break;
        }
        sb_add(b, "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : '\\');
    }
    sb_add(b, "\n");
}

static void add_extra_value(sbuf *b, const ember_cli_opt *o)
{
    if ((o->flags & EMBER_CLI_FP_NOT_ZERO) && is_zero(o))
        return;
    switch (o->kind) {
    case EMBER_CLI_FLAG: sb_add(b, "%s=%d\n", o->name, *(const int *)o->dest); break;
    case EMBER_CLI_I64: sb_add(b, "%s=%" PRId64 "\n", o->name, *(const int64_t *)o->dest); break;
    case EMBER_CLI_U64: sb_add(b, "%s=%" PRIu64 "\n", o->name, *(const uint64_t *)o->dest); break;
    case EMBER_CLI_F64: {
        char num[32];
        shortest(num, sizeof num, *(const double *)o->dest);
        sb_add(b, "%s=%s\n", o->name, num);
        break;
    }
    case EMBER_CLI_STR: {
        const char *s = *(const char *const *)o->dest;
        add_escaped(b, o->name, s ? s : "");
        break;
    }
    case EMBER_CLI_CHOICE: {
        int idx = *(const int *)o->dest, i = 0;
        const char *p = o->choices;
        while (i < idx && p && (p = strchr(p, '|')))
            p++, i++;
        size_t len = p ? strcspn(p, "|") : 0;
        sb_add(b, "%s=%.*s\n", o->name, (int)len, p ? p : "");
        break;
    }
    }
}

static int find_input(const ember_cli *cli, const char *role)
{
    for (int i = 0; i < cli->ninputs; i++)
        if (strcmp(cli->inputs[i].role, role) == 0)
            return i;
    return -1;
}

/* An input hashed by ember_cli_prepare: its content, and its path as
 * information only (the loop does not compare "info." lines). */
static void add_input_lines(sbuf *b, const ember_cli *cli, int i)
{
    const char *r = cli->inputs[i].role;
    sb_add(b, "%s.bytes=%" PRIu64 "\n%s.xxh3=%016" PRIx64 "\n", r,
           cli->inputs[i].bytes, r, cli->inputs[i].xxh3);
    char key[64];
    if (cli->inputs[i].dataset[0]) { /* escaped: a newline must not start a line */
        snprintf(key, sizeof key, "%s.dataset", r);
        add_escaped(b, key, cli->inputs[i].dataset);
    }
    snprintf(key, sizeof key, "info.%s.path", r);
    add_escaped(b, key, cli->inputs[i].path);
}

int ember_cli_add_input(ember_cli *cli, const char *role, const char *path)
{
    if (cli->ninputs >= (int)(sizeof cli->inputs / sizeof cli->inputs[0]))
        return ember_cli_usage_error(cli, "too many input files (internal)");
    memset(&cli->inputs[cli->ninputs], 0, sizeof cli->inputs[0]);
    cli->inputs[cli->ninputs].role = role;
    cli->inputs[cli->ninputs].arg = path;
    cli->ninputs++;
    return 0;
}

int ember_cli_add_output(ember_cli *cli, const char *role, const char *path)
{
    int n = cli->nmore_outputs;
    if (n >= (int)(sizeof cli->more_outputs / sizeof cli->more_outputs[0]))
        return ember_cli_usage_error(cli, "too many output files (internal)");
    cli->more_outputs[n].role = role;
    cli->more_outputs[n].path = path;
    cli->nmore_outputs++;
    return 0;
}

int ember_cli_parameters(const ember_cli *cli, char *buf, size_t size)
{
    sbuf b = {buf, size, 0, 0};
    if (!size)
        return EMBER_ERANGE;
    buf[0] = '\0';
    int at = find_input(cli, "input");
    if (at >= 0 && cli->inputs[at].hashed) {
        add_input_lines(&b, cli, at);
    } else if (!(cli->prog->omit & EMBER_CLI_NO_INPUT)) {
        char real[PATH_MAX];
        const char *in = cli->input;
        if (in && realpath(in, real))
            in = real;
        add_escaped(&b, "input", in ? in : "");
    }
    if (!(cli->prog->omit & EMBER_CLI_NO_PARTITIONS))
        sb_add(&b, "partitions=%zu\n", cli->partitions);
    for (const ember_cli_opt *o = cli->prog->extra; o && o->name; o++) {
        if (!(o->flags & EMBER_CLI_FINGERPRINT))
            continue;
        int i = find_input(cli, o->name);
        if (i >= 0 && cli->inputs[i].hashed)
            add_input_lines(&b, cli, i);
        else
            add_extra_value(&b, o);
    }
    if (cli->prog->arithmetic)
        sb_add(&b, "arithmetic=%s\n", cli->prog->arithmetic);
    if (cli->arithmetic_more)
        sb_add(&b, "arithmetic.more=%s\n", cli->arithmetic_more);
    if (cli->prog->fingerprint & EMBER_CLI_FP_SEED)
        sb_add(&b, "seed=%" PRIu64 "\n", cli->seed);
    if (!(cli->prog->omit & (EMBER_CLI_NO_LOOP | EMBER_CLI_NO_TOLERANCE))) {
        char num[32];
        shortest(num, sizeof num, cli->tolerance);
        sb_add(&b, "tolerance=%s\n", num);
    }
    return b.overflow ? EMBER_ERANGE : EMBER_OK;
}

uint64_t ember_cli_command_hash(const ember_cli *cli)
{
    char text[16384], params[8192];
    sbuf b = {text, sizeof text, 0, 0};
    if (ember_cli_parameters(cli, params, sizeof params) != EMBER_OK)
        b.overflow = 1;
    /* not the inputs' paths: each node may read its own copy */
    for (const char *line = params; *line;) {
        size_t len = strcspn(line, "\n");
        if (strncmp(line, "info.", 5) != 0)
            sb_add(&b, "%.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
    for (const ember_cli_opt *o = cli->prog->extra; o && o->name; o++)
        if (!(o->flags & EMBER_CLI_FINGERPRINT) && o->kind != EMBER_CLI_STR)
            add_extra_value(&b, o);
    sb_add(&b, "iterations=%" PRIu64 " stop_at=%" PRIu64 " seed=%" PRIu64
           " checkpoints=%d every=%" PRIu64 " keep=%d resume=%d force=%d"
           " async=%d sync=%d verify=%d\n", cli->iterations, cli->stop_at,
           cli->seed, cli->checkpoint_dir != NULL, cli->checkpoint_every, cli->keep,
           (int)cli->resume, cli->force_resume, cli->checkpoint_async,
           cli->checkpoint_sync, cli->verify);
    /* not --deadline or --checkpoint-seconds: a wrapper may work each
     * rank's out a second apart, and the loop agrees on when to stop */
    sb_add(&b, "overflow=%d\n", b.overflow);
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < b.len && i < sizeof text; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3u;
    return h;
}

int ember_cli_ctx(ember_ctx **out, const ember_cli *cli, char *msg)
{
    ember_ctx_opts o = {.threads = cli->threads};
    int rc = ember_ctx_create(out, &o, msg);
#ifdef EMBER_MPI
    if (!rc && cli->ranks > 1 && (rc = ember_ctx_set_comm(*out, MPI_COMM_WORLD, msg)))
        ember_ctx_destroy(out);
#endif
    return rc;
}

/* ---- exit ------------------------------------------------------------------ */

void ember_cli_stamp_of(const struct stat *st, uint64_t s[5])
{
    s[0] = (uint64_t)st->st_dev;
    s[1] = (uint64_t)st->st_ino;
    s[2] = (uint64_t)st->st_size;
    s[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    s[4] = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
}

int ember_cli_input_same(const ember_cli *cli, int i)
{
    struct stat st;
    uint64_t now[5];
    int fd = cli->inputs[i].fd;
    if (fd >= 0 ? fstat(fd, &st) != 0 : stat(cli->inputs[i].path, &st) != 0)
        return 0;
    ember_cli_stamp_of(&st, now);
    return memcmp(now, cli->inputs[i].stamp, sizeof now) == 0;
}

int ember_cli_input_changed(const ember_cli *cli)
{
    for (int i = 0; i < cli->ninputs; i++)
        if (cli->inputs[i].hashed && !ember_cli_input_same(cli, i))
            return i;
    return -1;
}

/* msg into out with each input's descriptor name (ember_cli_input_load's
 * /proc/self/fd/N) replaced by the file the user named. */
static void name_inputs(const ember_cli *cli, const char *msg, char *out, size_t size)
{
    snprintf(out, size, "%s", msg);
    for (int i = 0; cli && i < cli->ninputs; i++) {
        const char *load = cli->inputs[i].load, *arg = cli->inputs[i].arg;
        if (!cli->inputs[i].hashed || strncmp(load, "/proc/self/fd/", 14) != 0)
            continue;
        char token[64], next[EMBER_MSG_SIZE];
        snprintf(token, sizeof token, "%.*s", (int)strcspn(load, ":"), load);
        size_t tlen = strlen(token), ds = strlen(cli->inputs[i].dataset), alen = strlen(arg);
        /* the file's part of the argument: "f.h5" of "f.h5:/points" */
        int flen = (int)(ds && alen > ds ? alen - ds - 1 : alen);
        for (char *hit = strstr(out, token); hit; hit = strstr(hit, token)) {
            if (isdigit((unsigned char)hit[tlen])) { /* fd 12, not 1 */
                hit += tlen;
                continue;
            }
            size_t pre = (size_t)(hit - out);
            snprintf(next, sizeof next, "%.*s%.*s%s", (int)pre, out, flen, arg, hit + tlen);
            snprintf(out, size, "%s", next);
            if (pre + (size_t)flen >= strlen(out))
                break;
            hit = out + pre + flen;
        }
    }
}

/* 1, said on stderr, when what was printed on stdout is lost (a full
 * disk, a closed stdout). */
static int stdout_lost(const char *name)
{
    errno = 0;
    int unflushed = fflush(stdout) != 0, err = errno;
    if (!unflushed && !ferror(stdout))
        return 0;
    fprintf(stderr, "%s: cannot write the standard output%s%s\n", name,
            unflushed ? ": " : " (a write to it failed)", unflushed ? strerror(err) : "");
    return 1;
}

int ember_cli_stdout_status(const ember_cli *cli, int status)
{
    char name[256];
    speaker(cli, name, sizeof name);
    return stdout_lost(name) && status < EMBER_EXIT_FAILURE ? EMBER_EXIT_FAILURE : status;
}

const char *ember_cli_forced_how(int forced)
{
    return forced == 3 ? "from ember 0.1.0's checkpoint (its run may have been resumed by "
                         "force)"
                       : "by force";
}

int ember_cli_exit(const ember_cli *cli, int status, const char *msg)
{
    char name[256]; /* under mpirun each rank says its own error */
    speaker(cli, name, sizeof name);
    if (status == EMBER_OK) {
        if (stdout_lost(name))
            return ember_cli_settle(EMBER_EXIT_FAILURE);
        if (early_settled < 0) /* not a verification's failure */
            early_settled = EMBER_EXIT_OK;
        return ember_cli_settle(EMBER_EXIT_OK);
    }
    if (status == EMBER_INTERRUPTED) {
        ember_cli_settle(EMBER_EXIT_RESUMABLE);
        if (cli && cli->rank != 0) /* every rank stopped; rank 0 says so */
            return EMBER_EXIT_RESUMABLE;
        char advice[400] = "";
        if (cli)
            resume_advice(cli, 1, advice, sizeof advice);
        /* the loop's message says which stopped it */
        int deadline = msg && strstr(msg, "the deadline is near");
        ember_cli_say("%s: %s after iteration %" PRIu64 "; checkpoint written in %s; %s",
                      name, deadline ? "stopped for --deadline" : "interrupted",
                      cli ? cli->iterations_done : 0,
                      cli && cli->checkpoint_dir ? cli->checkpoint_dir : "(no directory)",
                      advice);
        return EMBER_EXIT_RESUMABLE;
    }
    char named[EMBER_MSG_SIZE];
    name_inputs(cli, msg && msg[0] ? msg : ember_strerror(status), named, sizeof named);
    /* An input replaced or written since its hash is the likelier cause
     * (HDF5 cannot open a removed file by its descriptor's name): bad
     * input, said once. */
    int changed = cli && !strstr(named, "took its fingerprint") ? ember_cli_input_changed(cli)
                                                                : -1;
    if (changed >= 0) {
        ember_cli_say("%s: --%s %s: replaced or written since this run took its "
                      "fingerprint; run again once the file stays put (the error: %s)",
                      name, cli->inputs[changed].role, cli->inputs[changed].arg, named);
        return ember_cli_settle(EMBER_EXIT_USAGE);
    }
    ember_cli_say("%s: %s", name, named);
    return ember_cli_settle(ember_exit_status(status) == 2 ? EMBER_EXIT_USAGE
                                                           : EMBER_EXIT_FAILURE);
}
