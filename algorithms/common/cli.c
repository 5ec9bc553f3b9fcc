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

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Common flags: index into this table is the getopt value minus 256. */
enum {
    C_INPUT, C_OUTPUT, C_ITERATIONS, C_TOLERANCE, C_THREADS, C_PARTITIONS,
    C_CKDIR, C_CKEVERY, C_CKSECONDS, C_CKASYNC, C_KEEP, C_RESUME, C_FORCE,
    C_DEADLINE,
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
    [C_OUTPUT] = {"output", 1, EMBER_CLI_NO_OUTPUT, "FILE", "output file"},
    [C_ITERATIONS] = {"iterations", 1, EMBER_CLI_NO_LOOP, "N",
                      "at most N iterations"},
    [C_TOLERANCE] = {"tolerance", 1, EMBER_CLI_NO_LOOP, "T",
                     "stop when the change is below T (0: run all iterations)"},
    [C_THREADS] = {"threads", 1, 0, "N",
                   "OpenMP threads (default OMP_NUM_THREADS or all cores)"},
    [C_PARTITIONS] = {"partitions", 1, 0, "P",
                      "partitions (default: from the data size)"},
    [C_CKDIR] = {"checkpoint-dir", 1, EMBER_CLI_NO_LOOP, "DIR",
                 "write checkpoints to DIR (created if missing)"},
    [C_CKEVERY] = {"checkpoint-every", 1, EMBER_CLI_NO_LOOP, "N",
                   "checkpoint every N iterations"},
    [C_CKSECONDS] = {"checkpoint-seconds", 1, EMBER_CLI_NO_LOOP, "S",
                     "checkpoint every S seconds (default 60 with a DIR)"},
    [C_CKASYNC] = {"checkpoint-async", 0, EMBER_CLI_NO_LOOP, NULL,
                   "write policy checkpoints in the background while the next "
                   "iterations run"},
    [C_KEEP] = {"keep", 1, EMBER_CLI_NO_LOOP, "K",
                "keep the last K checkpoints (default 2)"},
    [C_RESUME] = {"resume", 1, EMBER_CLI_NO_LOOP, "auto|never|require",
                  "resume from the newest good checkpoint (default auto)"},
    [C_FORCE] = {"force-resume", 0, EMBER_CLI_NO_LOOP, NULL,
                 "resume although the program or parameters differ (the state's "
                 "types must match)"},
    [C_DEADLINE] = {"deadline", 1, EMBER_CLI_NO_LOOP, "[[H:]M:]S",
                    "wall-clock limit from now: checkpoint and exit 75 when too "
                    "little time is left for another iteration"},
    [C_SEED] = {"seed", 1, 0, "S", "random seed (default 42)"},
    [C_METRICS] = {"metrics", 1, EMBER_CLI_NO_LOOP, "FILE",
                   "write JSON lines per iteration to FILE"},
    [C_QUIET] = {"quiet", 0, 0, NULL, "no progress on stderr"},
    [C_VERIFY] = {"verify", 0, EMBER_CLI_NO_LOOP, NULL,
                  "check the result with a simple serial checker"},
    [C_HELP] = {"help", 0, 0, NULL, "this help"},
    [C_VERSION] = {"version", 0, 0, NULL, "print the version"},
};

#define EXTRA_BASE 512
#define MAX_EXTRA 64

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

int ember_cli_usage_error(const ember_cli *cli, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cli && cli->prog ? cli->prog->name : "ember");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EMBER_EXIT_USAGE;
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
                       unsigned flags)
{
    snprintf(buf, size, "%c%.17g, %.17g%c",
             (flags & EMBER_CLI_OPEN_MIN) ? '(' : '[', min, max,
             (flags & EMBER_CLI_OPEN_MAX) ? ')' : ']');
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
    if (bad)
        return ember_cli_usage_error(cli, "--%s: '%s' is not %s", flag,
                                     s ? s : "", what);
    if (!in_range(v, min, max, flags)) {
        range_text(range, sizeof range, min, max, flags);
        return ember_cli_usage_error(cli, "--%s: %s is out of range: it must be in %s",
                                     flag, s, range);
    }
    return 0;
}

/* A duration as S, M:S or H:M:S (SLURM's --time style), in seconds. */
static int parse_duration(ember_cli *cli, const char *flag, const char *s,
                          double *out)
{
    double parts[3] = {0, 0, 0};
    int n = 0;
    const char *p = s;
    while (n < 3) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !(v >= 0) || v > 1e9)
            break;
        parts[n++] = v;
        if (*end == '\0') {
            double secs = 0;
            for (int i = 0; i < n; i++)
                secs = secs * 60 + parts[i];
            if (secs <= 0)
                break;
            *out = secs;
            return 0;
        }
        if (*end != ':')
            break;
        p = end + 1;
    }
    return ember_cli_usage_error(cli, "--%s: '%s' is not a duration "
                                 "(seconds, M:S or H:M:S, above 0)", flag, s);
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

static void help_line(FILE *f, const char *name, const char *metavar,
                      const char *help)
{
    char left[64];
    if (metavar)
        snprintf(left, sizeof left, "--%s %s", name, metavar);
    else
        snprintf(left, sizeof left, "--%s", name);
    if (strlen(left) > 24)
        fprintf(f, "  %s\n  %-24s  %s\n", left, "", help ? help : "");
    else
        fprintf(f, "  %-24s  %s\n", left, help ? help : "");
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
        char help[160];
        if (i == C_ITERATIONS)
            snprintf(help, sizeof help, "at most N iterations (default %" PRIu64 ")",
                     prog->default_iterations);
        else if (i == C_TOLERANCE)
            snprintf(help, sizeof help,
                     "stop when the change is below T (default %g; 0: run all iterations)",
                     prog->default_tolerance);
        else
            snprintf(help, sizeof help, "%s", common[i].help);
        help_line(f, common[i].name, common[i].has_arg ? common[i].metavar : NULL,
                  help);
    }
    if (prog->examples)
        fprintf(f, "\nexamples:\n%s", prog->examples);
    fprintf(f, "\nexit status: 0 done, 2 bad usage or input, %d checkpointed and "
               "resumable (run the same command again), 1 other errors\n",
            EMBER_EXIT_RESUMABLE);
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
    case C_CKDIR: cli->checkpoint_dir = arg; return 0;
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
    case C_DEADLINE:
        return parse_duration(cli, flag, arg, &cli->deadline_seconds);
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

int ember_cli_parse(ember_cli *cli, const ember_cli_program *prog, int argc,
                    char **argv)
{
    struct option table[C_COUNT + MAX_EXTRA + 1];
    unsigned char seen[MAX_EXTRA] = {0};
    defaults(cli, prog);
    if (build_table(prog, table) < 0)
        return ember_cli_usage_error(cli, "too many options (internal)");
    optind = 1;
    opterr = 0;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, ":", table, NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            rc = ember_cli_usage_error(cli, c == ':' ? "%s needs a value (see --help)"
                                                     : "unknown option '%s' (see --help)",
                                       bad);
        } else if (c == 256 + C_HELP) {
            ember_cli_usage(prog, stdout);
            return EMBER_EXIT_OK;
        } else if (c == 256 + C_VERSION) {
            printf("%s (ember) %s\n", prog->name, EMBER_VERSION_STRING);
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
    cli->args = argv + optind;
    cli->nargs = argc - optind;
    if (cli->nargs > prog->max_positional)
        return ember_cli_usage_error(cli, "unexpected argument '%s' (see --help)",
                                     argv[optind + prog->max_positional]);
    if (!cli->checkpoint_dir && (cli->checkpoint_every || cli->checkpoint_seconds > 0 ||
                                 cli->keep || cli->resume == EMBER_RESUME_REQUIRE ||
                                 cli->checkpoint_async || cli->force_resume ||
                                 cli->deadline_seconds > 0))
        return ember_cli_usage_error(cli, "--checkpoint-every, --checkpoint-seconds, "
                                     "--checkpoint-async, --keep, --resume require, "
                                     "--force-resume and --deadline need "
                                     "--checkpoint-dir DIR");
    return check_required(cli, seen) ? EMBER_EXIT_USAGE : EMBER_CLI_RUN;
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

static void add_extra_value(sbuf *b, const ember_cli_opt *o)
{
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
        sb_add(b, "%s=%s\n", o->name, s ? s : "");
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

int ember_cli_parameters(const ember_cli *cli, char *buf, size_t size)
{
    sbuf b = {buf, size, 0, 0};
    if (!size)
        return EMBER_ERANGE;
    buf[0] = '\0';
    char real[PATH_MAX];
    const char *in = cli->input;
    if (in && realpath(in, real))
        in = real;
    if (!(cli->prog->omit & EMBER_CLI_NO_INPUT))
        sb_add(&b, "input=%s\n", in ? in : "");
    sb_add(&b, "partitions=%zu\n", cli->partitions);
    for (const ember_cli_opt *o = cli->prog->extra; o && o->name; o++)
        if (o->flags & EMBER_CLI_FINGERPRINT)
            add_extra_value(&b, o);
    if (cli->prog->fingerprint & EMBER_CLI_FP_SEED)
        sb_add(&b, "seed=%" PRIu64 "\n", cli->seed);
    if (cli->prog->fingerprint & EMBER_CLI_FP_TOLERANCE) {
        char num[32];
        shortest(num, sizeof num, cli->tolerance);
        sb_add(&b, "tolerance=%s\n", num);
    }
    return b.overflow ? EMBER_ERANGE : EMBER_OK;
}

int ember_cli_ctx(ember_ctx **out, const ember_cli *cli, char *msg)
{
    ember_ctx_opts o = {.threads = cli->threads};
    return ember_ctx_create(out, &o, msg);
}

/* ---- exit ------------------------------------------------------------------ */

static int is_input_error(int status)
{
    switch (status) {
    case EMBER_EFORMAT: case EMBER_ENOTFOUND: case EMBER_EEMPTY:
    case EMBER_ERANGE: case EMBER_EINVAL: case EMBER_ETYPE:
    case EMBER_ELENGTH: case EMBER_EMISMATCH:
        return 1;
    }
    return 0;
}

int ember_cli_exit(const ember_cli *cli, int status, const char *msg)
{
    const char *name = cli && cli->prog ? cli->prog->name : "ember";
    if (status == EMBER_OK)
        return EMBER_EXIT_OK;
    if (status == EMBER_INTERRUPTED) {
        fprintf(stderr, "%s: interrupted after iteration %" PRIu64
                        "; checkpoint written in %s: run the same command again to resume\n",
                name, cli ? cli->iterations_done : 0,
                cli && cli->checkpoint_dir ? cli->checkpoint_dir : "(no directory)");
        return EMBER_EXIT_RESUMABLE;
    }
    fprintf(stderr, "%s: %s\n", name, msg && msg[0] ? msg : ember_strerror(status));
    return is_input_error(status) ? EMBER_EXIT_USAGE : EMBER_EXIT_FAILURE;
}
