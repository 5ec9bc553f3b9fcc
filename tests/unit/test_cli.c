/* test_cli.c: unit tests of the programs' common command line
 * (algorithms/common/cli.c and cli_loop.c, compiled in here: the helper
 * library is not part of libember): strict numbers, ranges, choices,
 * required and positional arguments, the parameters fingerprint, exit
 * codes, and ember_cli_iterate with its metrics lines, a checkpointed
 * resume and a step that fails.
 */
#include "../../algorithms/common/cli.c"
#include "../../algorithms/common/cli_loop.c"
#include "../../algorithms/common/graphio.c"
#include "../../algorithms/common/outputs.c"

#include "internal.h" /* ember__h5_attrs_fail */
#include "testutil.h"

static double damping;
static uint64_t top;
static int flag, choice, later;
static const char *name;

static const ember_cli_opt extra[] = {
    {"damping", EMBER_CLI_F64, &damping, 0, 1,
     EMBER_CLI_RANGE | EMBER_CLI_OPEN_MAX | EMBER_CLI_FINGERPRINT, NULL, "D", "d"},
    {"top", EMBER_CLI_U64, &top, 0, 100, EMBER_CLI_RANGE, NULL, "K", "k"},
    {"flag", EMBER_CLI_FLAG, &flag, 0, 0, EMBER_CLI_FINGERPRINT, NULL, NULL, "f"},
    {"mode", EMBER_CLI_CHOICE, &choice, 0, 0, EMBER_CLI_FINGERPRINT, "fast|slow", NULL, "m"},
    {"name", EMBER_CLI_STR, &name, 0, 0, 0, NULL, "S", "s"},
    {"later", EMBER_CLI_CHOICE, &later, 0, 0, EMBER_CLI_FINGERPRINT | EMBER_CLI_FP_NOT_ZERO,
     "old|new", NULL, "an option added later"},
    {0}};

static const ember_cli_program prog = {
    .name = "ember-test",
    .summary = "a test",
    .examples = "  ember-test --damping 0.5\n",
    .extra = extra,
    .default_iterations = 10,
    .default_tolerance = 1e-6,
    .value_name = "residual",
    .fingerprint = EMBER_CLI_FP_SEED,
    .max_positional = 1,
};

/* Parses a command line given as one string of space-separated words. */
static int parse(ember_cli *cli, const char *line)
{
    static char buf[2048];
    static char *argv[64];
    damping = 0.85, top = 0, flag = 0, choice = 0, later = 0, name = NULL;
    snprintf(buf, sizeof buf, "ember-test %s", line);
    int argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    return ember_cli_parse(cli, &prog, argc, argv);
}

static void test_cli_defaults_and_values(void **state)
{
    (void)state;
    ember_cli cli;
    assert_int_equal(parse(&cli, ""), EMBER_CLI_RUN);
    assert_int_equal(cli.iterations, 10);
    assert_true(cli.tolerance == 1e-6);
    assert_int_equal(cli.seed, 42);
    assert_int_equal(cli.resume, EMBER_RESUME_AUTO);
    assert_true(damping == 0.85);
    assert_int_equal(parse(&cli, "--input g.el --output r.h5 --iterations 0 --tolerance 0 "
                                 "--threads 3 --partitions 7 --checkpoint-dir ck "
                                 "--checkpoint-every 5 --checkpoint-seconds 2.5 --keep 4 "
                                 "--resume never --seed 9 --metrics m.jsonl --quiet --verify "
                                 "--damping 0.5 --top 100 --flag --mode slow --name x extra"),
                     EMBER_CLI_RUN);
    assert_string_equal(cli.input, "g.el");
    assert_string_equal(cli.output, "r.h5");
    assert_int_equal(cli.iterations, 0);
    assert_true(cli.tolerance == 0);
    assert_int_equal(cli.threads, 3);
    assert_int_equal(cli.partitions, 7);
    assert_string_equal(cli.checkpoint_dir, "ck");
    assert_int_equal(cli.checkpoint_every, 5);
    assert_true(cli.checkpoint_seconds == 2.5);
    assert_int_equal(cli.keep, 4);
    assert_int_equal(cli.resume, EMBER_RESUME_NEVER);
    assert_int_equal(cli.seed, 9);
    assert_true(cli.seed_set && cli.iterations_set && cli.tolerance_set);
    assert_string_equal(cli.metrics, "m.jsonl");
    assert_true(cli.quiet && cli.verify);
    assert_true(damping == 0.5);
    assert_int_equal(top, 100);
    assert_int_equal(flag, 1);
    assert_int_equal(choice, 1);
    assert_string_equal(name, "x");
    assert_int_equal(cli.nargs, 1);
    assert_string_equal(cli.args[0], "extra");
}

static void test_cli_rejects_bad_values(void **state)
{
    (void)state;
    ember_cli cli;
    static const char *bad[] = {
        "--iterations -1", "--iterations 1e3", "--iterations 12x", "--iterations ''",
        "--iterations 99999999999999999999", "--tolerance nan", "--tolerance inf",
        "--tolerance -1", "--tolerance 0.1.2", "--threads 0", "--threads 5000",
        "--damping 1", "--damping 1.5", "--damping -0.01", "--top 101", "--top +5",
        "--mode medium", "--resume maybe", "--bogus", "--input", "one two",
        "--checkpoint-every 3", "--keep 2", "--resume require", "--partitions 0",
        "--checkpoint-dir d --resume never --force-resume",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(&cli, bad[i]);
        if (rc != EMBER_EXIT_USAGE)
            fail_msg("'%s' gave %d, not 2", bad[i], rc);
    }
    assert_int_equal(parse(&cli, "--damping 0.999"), EMBER_CLI_RUN);
    assert_int_equal(parse(&cli, "--damping 0"), EMBER_CLI_RUN);
    assert_int_equal(parse(&cli, "--help"), EMBER_EXIT_OK);
    assert_int_equal(parse(&cli, "--version"), EMBER_EXIT_OK);
}

static void test_cli_parameters_fingerprint(void **state)
{
    (void)state;
    ember_cli cli;
    char a[1024], b[1024];
    assert_int_equal(parse(&cli, "--input g.el --damping 0.85 --mode slow --top 5 --seed 3"),
                     EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, a, sizeof a), EMBER_OK);
    assert_non_null(strstr(a, "input=g.el\n"));
    assert_non_null(strstr(a, "damping=0.85\n"));
    assert_non_null(strstr(a, "mode=slow\n"));
    assert_non_null(strstr(a, "flag=0\n"));
    assert_non_null(strstr(a, "seed=3\n"));
    assert_non_null(strstr(a, "partitions=0\n"));
    assert_null(strstr(a, "top="));        /* not marked: does not change results */
    assert_null(strstr(a, "iterations=")); /* a resume may run longer */
    /* the same command gives the same text; another damping does not */
    assert_int_equal(parse(&cli, "--top 9 --input g.el --mode slow --seed 3"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    assert_string_equal(a, b);
    assert_int_equal(parse(&cli, "--input g.el --mode slow --seed 3 --damping 0.5"),
                     EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(ember_cli_parameters(&cli, b, 8), EMBER_ERANGE);
    /* an option added later: its default (zero) is not in the text, so the
     * checkpoints made before it came still resume; another value is */
    assert_null(strstr(a, "later="));
    assert_int_equal(parse(&cli, "--input g.el --damping 0.85 --mode slow --top 5 --seed 3 "
                                 "--later new"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    assert_non_null(strstr(b, "later=new\n"));
    assert_int_equal(parse(&cli, "--input g.el --damping 0.85 --mode slow --top 5 --seed 3 "
                                 "--later old"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    assert_string_equal(a, b);
}

static void test_cli_exit_codes(void **state)
{
    (void)state;
    ember_cli cli;
    assert_int_equal(parse(&cli, ""), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_exit(&cli, EMBER_OK, ""), 0);
    assert_int_equal(ember_cli_exit(&cli, EMBER_INTERRUPTED, ""), 75);
    assert_int_equal(ember_cli_exit(&cli, EMBER_EFORMAT, "f:3: bad"), 2);
    assert_int_equal(ember_cli_exit(&cli, EMBER_ENOTFOUND, "f: no such file"), 2);
    assert_int_equal(ember_cli_exit(&cli, EMBER_EMISMATCH, "differs"), 2);
    assert_int_equal(ember_cli_exit(&cli, EMBER_EIO, "disk"), 1);
    assert_int_equal(ember_cli_exit(&cli, EMBER_ENOMEM, NULL), 1);
    assert_true(ember_cli_has_suffix("a.CSV", ".csv"));
    assert_false(ember_cli_has_suffix("csv", ".csv"));
}

/* --deadline takes SLURM's --time formats (a bare number is minutes) and
 * numbers with a unit; anything else is refused. */
static void test_cli_deadline_formats(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double secs;
    } good[] = {
        {"5", 300},          {"90:30", 5430},       {"1:02:03", 3723},
        {"2-0", 172800},     {"1-02", 93600},        {"1-02:03", 93780},
        {"1-02:03:04", 93784}, {"90s", 90},          {"30m", 1800},
        {"2h", 7200},        {"1.5h", 5400},         {"1d", 86400},
        {"00:00:01", 1},     {"0:1", 1},             {"1:59:59", 7199},
        {"0-23:59:59", 86399},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double v = -1;
        if (ember_cli_parse_duration(good[i].text, &v) != 0 || v != good[i].secs)
            fail_msg("'%s' gave %g, wanted %g", good[i].text, v, good[i].secs);
    }
    static const char *bad[] = {"", "0", "0s", "-5", "5x", "1:2:3:4", "1-2:3:4:5",
                                "1-", "-1", "1:", ":1", "s", "1e3", "nan",
                                "inf", "1.5", "2-1.5", "1 h", "90S",
                                /* strtod's hex, read as 16 s and 16 min */
                                "0x10s", "0x10m", "0x1p4s", "0X10h", ".s",
                                /* a field past its range: a typo */
                                "25:99", "1:60:00", "1:00:60", "1-24", "1-02:60"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = -1;
        if (ember_cli_parse_duration(bad[i], &v) == 0)
            fail_msg("'%s' was accepted as %g s", bad[i], v);
    }
    ember_cli cli;
    assert_int_equal(parse(&cli, "--checkpoint-dir ck --deadline 1-00:00:10"), EMBER_CLI_RUN);
    assert_true(cli.deadline_seconds == 86410);
    assert_true(cli.start_wall > 1e9); /* counted from here, the start */
    assert_int_equal(parse(&cli, "--checkpoint-dir ck --deadline 10"), EMBER_CLI_RUN);
    assert_true(cli.deadline_seconds == 600);
    assert_int_equal(parse(&cli, "--checkpoint-dir ck --deadline 1:2:3:4"), EMBER_EXIT_USAGE);
}

/* A flag that takes no value, given one (--quiet=1), is named as such
 * rather than as an unknown option; numbers are decimal. */
static void test_cli_flag_given_value(void **state)
{
    (void)state;
    static const struct option t[] = {{"quiet", no_argument, 0, 300},
                                      {"quick", required_argument, 0, 301},
                                      {"verbose", no_argument, 0, 302},
                                      {0, 0, 0, 0}};
    assert_string_equal(ember_cli_flag_given_value(t, "--quiet=1", 300), "quiet");
    assert_string_equal(ember_cli_flag_given_value(t, "--quiet=", 0), "quiet");
    assert_string_equal(ember_cli_flag_given_value(t, "--verb=x", 302), "verbose");
    assert_null(ember_cli_flag_given_value(t, "--verb=x", 0)); /* not known as it */
    assert_null(ember_cli_flag_given_value(t, "--quick=1", 301));
    assert_null(ember_cli_flag_given_value(t, "--nope=1", 0));
    assert_null(ember_cli_flag_given_value(t, "--quiet", 300));
    assert_null(ember_cli_flag_given_value(t, "-q=1", 0));
    ember_cli cli;
    assert_int_equal(parse(&cli, "--flag=1"), EMBER_EXIT_USAGE);
    static const char *dec[] = {"1", "1.5", ".5", "5.", "1e3", "1E-3", "0012"};
    for (size_t i = 0; i < sizeof dec / sizeof *dec; i++)
        if (!ember_cli_decimal(dec[i], dec[i] + strlen(dec[i])))
            fail_msg("'%s' is decimal", dec[i]);
    static const char *nondec[] = {"", ".", "0x10", "inf", "nan", " 5", "+5", "1e",
                                   "1e+", "1.2.3", "1,5", "0x1p4"};
    for (size_t i = 0; i < sizeof nondec / sizeof *nondec; i++)
        if (ember_cli_decimal(nondec[i], nondec[i] + strlen(nondec[i])))
            fail_msg("'%s' is not decimal", nondec[i]);
}

/* Usage errors that used to be accepted or named the wrong argument. */
static void test_cli_usage_errors(void **state)
{
    (void)state;
    ember_cli cli;
    char a0[] = "ember-test", a1[] = "--checkpoint-dir", a2[] = "", a3[] = "-xyz",
         a4[] = "o.h5";
    char *argv1[] = {a0, a1, a2, NULL};
    assert_int_equal(ember_cli_parse(&cli, &prog, 3, argv1), EMBER_EXIT_USAGE);
    char *argv2[] = {a0, a3, a4, NULL};
    assert_int_equal(ember_cli_parse(&cli, &prog, 3, argv2), EMBER_EXIT_USAGE);
}

/* --checkpoint-sync asks for the streamed write (the default is the
 * library's, in the background on one process); with --checkpoint-async,
 * or without a directory, it is a usage error. */
static void test_cli_checkpoint_mode_flags(void **state)
{
    (void)state;
    ember_cli cli;
    assert_int_equal(parse(&cli, "--checkpoint-dir d --quiet"), EMBER_CLI_RUN);
    assert_int_equal(cli.checkpoint_sync + cli.checkpoint_async, 0);
    assert_int_equal(parse(&cli, "--checkpoint-dir d --checkpoint-sync --quiet"),
                     EMBER_CLI_RUN);
    assert_int_equal(cli.checkpoint_sync, 1);
    assert_int_equal(parse(&cli, "--checkpoint-dir d --checkpoint-sync --checkpoint-async"),
                     EMBER_EXIT_USAGE);
    assert_int_equal(parse(&cli, "--checkpoint-sync"), EMBER_EXIT_USAGE);
}

static void put_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* An input is in the parameters by size and content hash; its path is an
 * info line: a moved copy gives the same compared lines, other content
 * does not. */
static void test_cli_input_fingerprint(void **state)
{
    (void)state;
    ember_cli cli;
    char a[2048], b[2048];
    assert_int_equal(system("rm -rf fp && mkdir -p fp/moved"), 0);
    put_text("fp/g.el", "0 1\n1 2\n");
    put_text("fp/moved/g.el", "0 1\n1 2\n");
    assert_int_equal(parse(&cli, "--input fp/g.el --damping 0.5"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(cli.inputs[0].bytes, 8);
    assert_int_equal(ember_cli_parameters(&cli, a, sizeof a), EMBER_OK);
    assert_non_null(strstr(a, "input.bytes=8\n"));
    assert_non_null(strstr(a, "input.xxh3="));
    assert_non_null(strstr(a, "info.input.path=/"));
    assert_non_null(strstr(a, "/fp/g.el\n"));
    assert_null(strstr(a, "\ninput=")); /* the path is no longer compared */
    /* a dataset name's newline is escaped, not a line of its own (an
     * "info." line, which the loop does not compare, made two datasets
     * one fingerprint) */
    char d[2048];
    assert_int_equal(parse(&cli, "--input fp/g.el:/p\ninfo.x= --damping 0.5"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, d, sizeof d), EMBER_OK);
    assert_non_null(strstr(d, "\ninput.dataset=/p\\ninfo.x=\n"));
    assert_null(strstr(d, "\ninfo.x="));
    /* a dataset name too long to keep whole is refused, not cut (a cut
     * name could be another dataset's) */
    char longarg[1200];
    int at = snprintf(longarg, sizeof longarg, "--input fp/g.el:/");
    memset(longarg + at, 'a', 1100);
    longarg[at + 1100] = '\0';
    assert_int_equal(parse(&cli, longarg), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_EXIT_USAGE);
    assert_int_equal(parse(&cli, "--input fp/moved/g.el --damping 0.5"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    /* equal but for the info line */
    *strstr(a, "info.input.path=") = '\0';
    *strstr(b, "info.input.path=") = '\0';
    assert_string_equal(a, b);
    put_text("fp/moved/g.el", "0 1\n1 3\n"); /* same size, other content */
    assert_int_equal(parse(&cli, "--input fp/moved/g.el --damping 0.5"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, b, sizeof b), EMBER_OK);
    *strstr(b, "info.input.path=") = '\0';
    assert_string_not_equal(a, b);
    /* an option registered as an input ("name" here) is fingerprinted by
     * content too, when it is a fingerprint option; "name" is not, so
     * only the file's check applies */
    assert_int_equal(parse(&cli, "--input fp/g.el --name fp/moved/g.el"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_add_input(&cli, "name", name), 0);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(cli.ninputs, 2);
    assert_string_equal(cli.inputs[0].role, "input");
    assert_true(cli.inputs[1].hashed);
}

/* An input replaced or written after its fingerprint was taken (while the
 * program loads it, say) is refused before the first iteration: what was
 * loaded may not be what the fingerprint describes. Unchanged, and read
 * only, it passes. */
static void test_cli_input_changed(void **state)
{
    (void)state;
    ember_cli cli;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(system("rm -rf ic && mkdir -p ic"), 0);
    put_text("ic/g.el", "0 1\n1 2\n");
    put_text("ic/h.el", "0 1\n1 3\n");
    for (int how = 0; how < 3; how++) {
        put_text("ic/g.el", "0 1\n1 2\n");
        assert_int_equal(parse(&cli, "--input ic/g.el"), EMBER_CLI_RUN);
        assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
        FILE *f = fopen("ic/g.el", "r"); /* a reader changes nothing */
        assert_non_null(f);
        fclose(f);
        assert_int_equal(ember_cli_inputs_unchanged(&cli, msg), EMBER_OK);
        if (how == 0) { /* another file renamed over the name */
            assert_int_equal(system("cp ic/h.el ic/h2.el && mv ic/h2.el ic/g.el"), 0);
        } else if (how == 1) { /* written in place, same size */
            struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL); /* a coarse clock still moves */
            put_text("ic/g.el", "0 1\n1 3\n");
        } else { /* removed */
            assert_int_equal(unlink("ic/g.el"), 0);
        }
        assert_int_equal(ember_cli_inputs_unchanged(&cli, msg), EMBER_EMISMATCH);
        assert_non_null(strstr(msg, "--input ic/g.el"));
        assert_non_null(strstr(msg, "replaced or written"));
    }
    assert_int_equal(system("rm -rf ic"), 0);
}

/* Bad paths fail before any work, with exit 2, and leave nothing behind. */
static void test_cli_prepare_bad_paths(void **state)
{
    (void)state;
    ember_cli cli;
    assert_int_equal(system("rm -rf pp && mkdir -p pp/dir && touch pp/file"), 0);
    put_text("pp/g.el", "0 1\n");
    static const char *bad[] = {
        "--input pp/none.el",
        "--input pp/dir",
        "--input pp/g.el --output pp/dir",
        "--input pp/g.el --output pp/no/such/r.h5",
        "--input pp/g.el --output pp/no/such/r.h5:/ranks",
        "--input pp/g.el --metrics pp/no/such/m.jsonl",
        "--input pp/g.el --metrics pp/dir",
        "--input pp/g.el --checkpoint-dir pp/file/ck",
        "--input pp/g.el --name pp/none.csv",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(&cli, bad[i]), EMBER_CLI_RUN);
        if (strstr(bad[i], "--name"))
            assert_int_equal(ember_cli_add_input(&cli, "name", name), 0);
        int rc = ember_cli_prepare(&cli);
        if (rc != EMBER_EXIT_USAGE)
            fail_msg("'%s' gave %d, not 2", bad[i], rc);
    }
    assert_int_equal(parse(&cli, "--input pp/g.el --output pp/r.h5 --metrics pp/m.jsonl "
                                 "--checkpoint-dir pp/ck/sub"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    struct stat st;
    assert_int_equal(stat("pp/ck/sub", &st), 0); /* created */
    assert_true(S_ISDIR(st.st_mode));
    assert_int_not_equal(stat("pp/r.h5.tmp", &st), 0); /* probed and removed */
    assert_int_not_equal(stat("pp/m.jsonl.tmp", &st), 0);
    assert_int_not_equal(stat("pp/r.h5", &st), 0);
    /* an HDF5 output spec: an algorithm program refuses it before any
     * work (it writes whole files); for the tools that take one (ember-gen
     * blobs), the file part is what must be creatable */
    assert_int_equal(parse(&cli, "--input pp/g.el --output pp/o.h5:/ranks"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_EXIT_USAGE);
    assert_int_equal(ember_cli_check_output(&cli, "output", "pp/o.h5:/ranks"), 0);
    assert_int_not_equal(stat("pp/o.h5.tmp", &st), 0);
    assert_int_equal(ember_cli_check_output(&cli, "output", "pp/no/o.h5:/ranks"),
                     EMBER_EXIT_USAGE);
    /* an HDF5 spec: the file is hashed, the dataset is a parameter */
    char p[2048];
    assert_int_equal(system("cp pp/g.el pp/pts.h5"), 0);
    assert_int_equal(parse(&cli, "--input pp/pts.h5:/points"), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_prepare(&cli), EMBER_CLI_RUN);
    assert_int_equal(ember_cli_parameters(&cli, p, sizeof p), EMBER_OK);
    assert_non_null(strstr(p, "input.dataset=/points\n"));
    assert_non_null(strstr(p, "input.bytes=4\n"));
}

/* A step that halves its value and converges below 0.01, or fails at
 * iteration fail_at. */
typedef struct {
    double x;
    int64_t fail_at;
    int calls;
} toy;

static int toy_step(uint64_t it, double *value, void *arg, char *msg)
{
    toy *t = arg;
    t->calls++;
    if ((int64_t)it == t->fail_at) {
        snprintf(msg, EMBER_MSG_SIZE, "step %llu failed", (unsigned long long)it);
        return EMBER_EIO;
    }
    t->x /= 2;
    *value = t->x;
    return t->x < 0.01 ? EMBER_DONE : EMBER_OK;
}

static int run_toy(const char *line, toy *t, ember_cli *cli, char *msg)
{
    ember_ctx *ctx = tu_ctx(1);
    ember_loop *loop = NULL;
    int rc = parse(cli, line);
    assert_int_equal(rc, EMBER_CLI_RUN);
    rc = ember_cli_loop(&loop, ctx, cli, msg);
    if (!rc)
        rc = ember_loop_bind_f64(loop, "x", &t->x);
    if (!rc)
        rc = ember_cli_iterate(cli, loop, toy_step, t, msg);
    /* a program writes its outputs here, beside the final checkpoint */
    rc = ember_cli_iterate_end(cli, loop, rc, msg);
    assert_null(cli->final_wait);
    ember_loop_destroy(&loop);
    ember_ctx_destroy(&ctx);
    return rc;
}

static int count_lines(const char *path, const char *part)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, part) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void test_cli_iterate_metrics_and_resume(void **state)
{
    (void)state;
    ember_cli cli;
    char msg[EMBER_MSG_SIZE];
    toy t = {1.0, -1, 0};
    /* the case's directory outlives a run: start clean */
    assert_int_equal(system("rm -rf ck m.jsonl"), 0);
    /* stops at --iterations 3, checkpointing every 2 and at the end */
    TU_OKM(run_toy("--iterations 3 --checkpoint-dir ck --checkpoint-every 2 --metrics m.jsonl "
                   "--quiet", &t, &cli, msg), msg);
    assert_int_equal(t.calls, 3);
    assert_int_equal(cli.iterations_done, 3);
    assert_false(cli.converged);
    assert_true(cli.value == 0.125);
    assert_int_equal(count_lines("m.jsonl", "\"iteration\": "), 3);
    assert_int_equal(count_lines("m.jsonl", "\"checkpoint\": true"), 2); /* at 2 and 3 */
    assert_int_equal(count_lines("m.jsonl", "\"residual\": 0.125"), 2); /* line 3, done */
    assert_int_equal(count_lines("m.jsonl", "\"event\": \"done\", \"iterations\": 3"), 1);
    /* resumed with more iterations: restores x and continues to convergence */
    t = (toy){123.0, -1, 0};
    TU_OKM(run_toy("--iterations 100 --checkpoint-dir ck --checkpoint-every 2 "
                   "--metrics m.jsonl --quiet", &t, &cli, msg), msg);
    assert_int_equal(t.calls, 4); /* 0.0625 0.03125 0.015625 0.0078125 */
    assert_true(cli.converged);
    assert_int_equal(cli.iterations_done, 7);
    assert_int_equal(count_lines("m.jsonl", "\"iteration\": "), 7); /* appended */
    assert_int_equal(count_lines("m.jsonl", "{\"event\": \"resumed\", \"from_iteration\": 3}"), 1);
    assert_int_equal(count_lines("m.jsonl", "\"converged\": true"), 1);
    /* a converged run restarted runs no step */
    t = (toy){123.0, -1, 0};
    TU_OKM(run_toy("--iterations 100 --checkpoint-dir ck --quiet", &t, &cli, msg), msg);
    assert_int_equal(t.calls, 0);
    assert_true(cli.converged);
    assert_int_equal(cli.iterations_done, 7);
}

/* -o FILE is --output FILE. */
static void test_cli_short_output(void **state)
{
    (void)state;
    ember_cli cli;
    assert_int_equal(parse(&cli, "-o r.csv --quiet"), EMBER_CLI_RUN);
    assert_non_null(cli.output);
    assert_string_equal(cli.output, "r.csv");
    assert_int_equal(parse(&cli, "-o"), EMBER_EXIT_USAGE);
}

/* --stop-at N stops after iteration N as a signal would: a checkpoint of
 * N, EMBER_INTERRUPTED; the same flags again resume and finish, and the
 * history array records every iteration with its flags. */
static void test_cli_stop_at(void **state)
{
    (void)state;
    ember_cli cli;
    char msg[EMBER_MSG_SIZE];
    toy t = {1.0, -1, 0};
    assert_int_equal(system("rm -rf ck"), 0);
    const char *line = "--iterations 5 --tolerance 0 --checkpoint-dir ck "
                       "--checkpoint-every 100 --stop-at 2 --quiet";
    assert_int_equal(run_toy(line, &t, &cli, msg), EMBER_INTERRUPTED);
    assert_int_equal(t.calls, 2);
    assert_int_equal(cli.iterations_done, 2);
    assert_int_equal(system("test -f ck/ckpt-000000000002.h5"), 0);
    t = (toy){123.0, -1, 0};
    TU_OKM(run_toy(line, &t, &cli, msg), msg);
    assert_int_equal(t.calls, 3); /* 3, 4, 5 */
    assert_true(t.x == 0.03125);
    assert_int_equal(cli.iterations_done, 5);
    const double *h = cli.history;
    assert_true(h[0] == 5 && h[1] == 1);
    for (int k = 0; k < 5; k++) {
        const double *r = h + 2 + 4 * k;
        assert_true(r[0] == k + 1);
        assert_true(r[1] == 1.0 / (double)(2 << k)); /* 0.5, 0.25, ... */
        /* 2: the stop's checkpoint (marked on restore); 3: the first after
         * the resume; 5: the final checkpoint (marked once written) */
        assert_true(r[3] == (k == 1 || k == 4 ? EMBER_CLI_HIST_CHECKPOINT
                             : k == 2 ? EMBER_CLI_HIST_RESUMED : 0));
    }
    /* without a checkpoint directory there is nothing to stop into */
    assert_int_equal(parse(&cli, "--stop-at 2"), EMBER_EXIT_USAGE);
}

static void test_cli_iterate_step_error(void **state)
{
    (void)state;
    ember_cli cli;
    char msg[EMBER_MSG_SIZE];
    toy t = {1.0, 2, 0};
    assert_int_equal(system("rm -f e.jsonl"), 0);
    int rc = run_toy("--metrics e.jsonl --quiet", &t, &cli, msg);
    assert_int_equal(rc, EMBER_EIO);
    TU_MSG_HAS(msg, "step 2 failed");
    assert_int_equal(count_lines("e.jsonl", "\"event\": \"error\""), 1);
    /* no directory: iterations run, nothing is written */
    t = (toy){1.0, -1, 0};
    TU_OKM(run_toy("--iterations 2 --quiet", &t, &cli, msg), msg);
    assert_int_equal(t.calls, 2);
    /* a metrics file that cannot be created */
    t = (toy){1.0, -1, 0};
    rc = run_toy("--metrics no/such/dir/m.jsonl --quiet", &t, &cli, msg);
    assert_int_equal(rc, EMBER_EIO);
    TU_MSG_HAS(msg, "--metrics no/such/dir/m.jsonl");
}

/* A program accepts only the common flags it uses: one it leaves out is
 * refused (exit 2) like an unknown one; -h is --help. */
static void test_cli_omitted_flags_refused(void **state)
{
    (void)state;
    static const ember_cli_program tool = {
        .name = "ember-tool",
        .omit = EMBER_CLI_NO_LOOP | EMBER_CLI_NO_SEED | EMBER_CLI_NO_PARTITIONS,
    };
    static const ember_cli_program fixpoint = {
        .name = "ember-fix",
        .omit = EMBER_CLI_NO_TOLERANCE | EMBER_CLI_NO_ITERATIONS,
        .default_iterations = 5,
    };
    ember_cli cli;
    char a0[] = "ember-tool", seed[] = "--seed", three[] = "3", parts[] = "--partitions=4",
         threads[] = "--threads", two[] = "2", tol[] = "--tolerance", it[] = "--iterations",
         h[] = "-h", ck[] = "--checkpoint-dir", dir[] = "d";
    char *v1[] = {a0, seed, three, NULL};
    assert_int_equal(ember_cli_parse(&cli, &tool, 3, v1), EMBER_EXIT_USAGE);
    char *v2[] = {a0, parts, NULL};
    assert_int_equal(ember_cli_parse(&cli, &tool, 2, v2), EMBER_EXIT_USAGE);
    char *v3[] = {a0, threads, two, NULL};
    assert_int_equal(ember_cli_parse(&cli, &tool, 3, v3), EMBER_CLI_RUN);
    assert_int_equal(cli.threads, 2);
    char *v4[] = {a0, ck, dir, NULL}; /* the loop's flags are left out too */
    assert_int_equal(ember_cli_parse(&cli, &tool, 3, v4), EMBER_EXIT_USAGE);
    char *v5[] = {a0, tol, three, NULL};
    assert_int_equal(ember_cli_parse(&cli, &fixpoint, 3, v5), EMBER_EXIT_USAGE);
    char *v6[] = {a0, it, three, NULL};
    assert_int_equal(ember_cli_parse(&cli, &fixpoint, 3, v6), EMBER_EXIT_USAGE);
    char *v7[] = {a0, seed, three, NULL}; /* kept where not left out */
    assert_int_equal(ember_cli_parse(&cli, &fixpoint, 3, v7), EMBER_CLI_RUN);
    assert_int_equal(cli.seed, 3);
    assert_int_equal(cli.iterations, 5);
    fflush(stdout);
    char *v8[] = {a0, h, NULL};
    assert_int_equal(ember_cli_parse(&cli, &tool, 2, v8), EMBER_EXIT_OK);
}

/* The progress line keeps the most useful fields in a narrow terminal:
 * the program's name goes first, then the checkpoint, the rate, the ETA;
 * iteration and value always stay, and nothing exceeds the width. */
static void test_cli_progress_fits_width(void **state)
{
    (void)state;
    char f[F_COUNT][96], line[640];
    snprintf(f[F_NAME], 96, "ember-pagerank:");
    snprintf(f[F_ITER], 96, "iteration 41/100");
    snprintf(f[F_VALUE], 96, "residual 1.234e-05");
    snprintf(f[F_ETA], 96, "ETA 2m05s");
    snprintf(f[F_RATE], 96, "1234.5 it/s");
    snprintf(f[F_CKPT], 96, "checkpoint at 40 (12.5 MiB)");
    const char *all = "iteration 41/100  residual 1.234e-05  ETA 2m05s  1234.5 it/s  "
                      "checkpoint at 40 (12.5 MiB)";
    char want[200];
    snprintf(want, sizeof want, "ember-pagerank: %s", all);
    progress_text(line, sizeof line, f, 200);
    assert_string_equal(line, want);
    progress_text(line, sizeof line, f, (int)strlen(want));
    assert_string_equal(line, want);
    progress_text(line, sizeof line, f, (int)strlen(want) - 1); /* the name goes */
    assert_string_equal(line, all);
    progress_text(line, sizeof line, f, (int)strlen(all) - 1); /* the checkpoint */
    assert_string_equal(line, "iteration 41/100  residual 1.234e-05  ETA 2m05s  "
                              "1234.5 it/s");
    progress_text(line, sizeof line, f, 59); /* the rate */
    assert_string_equal(line, "iteration 41/100  residual 1.234e-05  ETA 2m05s");
    progress_text(line, sizeof line, f, 46); /* the ETA */
    assert_string_equal(line, "iteration 41/100  residual 1.234e-05");
    for (int w = 1; w <= 100; w++) {
        progress_text(line, sizeof line, f, w);
        assert_true((int)strlen(line) <= w);
    }
    f[F_ETA][0] = '\0'; /* an empty field leaves no gap */
    progress_text(line, sizeof line, f, 60);
    assert_string_equal(line, "iteration 41/100  residual 1.234e-05  1234.5 it/s");
}

/* The ETA: from the cap when the run does every iteration, from the
 * residual's geometric trend toward --tolerance, and none for a run that
 * stops at a fixpoint (ember-cc's 17121 s for a 4 s run). */
static void test_cli_eta_only_where_it_means_something(void **state)
{
    (void)state;
    ember_cli_program p = {.name = "ember-eta", .value_flags = EMBER_CLI_VALUE_ETA};
    ember_cli cli;
    memset(&cli, 0, sizeof cli);
    cli.prog = &p;
    cli.iterations = 100;
    report r;
    memset(&r, 0, sizeof r);
    r.cli = &cli;
    cli.tolerance = 0; /* runs all 100 */
    remember_value(&r, 1, 0.5);
    assert_true(iterations_left(&r, 1, 0.5) == 99);
    cli.tolerance = 1e-6; /* residual 1e-1, 1e-2: a tenth an iteration */
    memset(&r, 0, sizeof r);
    r.cli = &cli;
    remember_value(&r, 1, 1e-1);
    assert_true(iterations_left(&r, 1, 1e-1) < 0); /* one value: no trend */
    remember_value(&r, 2, 1e-2);
    assert_true(iterations_left(&r, 2, 1e-2) == 4);
    cli.iterations = 3; /* the cap comes first */
    assert_true(iterations_left(&r, 2, 1e-2) == 1);
    cli.iterations = 100;
    cli.tolerance = 1e-30;
    for (uint64_t i = 3; i <= 20; i++) /* the window slides: still 10x */
        remember_value(&r, i, pow(10.0, -(double)i));
    assert_true(iterations_left(&r, 20, 1e-20) == 10);
    remember_value(&r, 21, 1.0); /* rising: nothing to say */
    assert_true(iterations_left(&r, 21, 1.0) < 0);
    p.value_flags = EMBER_CLI_VALUE_COUNT; /* a fixpoint run */
    cli.tolerance = 0;
    assert_true(iterations_left(&r, 21, 25) < 0);
    char f[F_COUNT][96];
    r.first_it = 0;
    r.t_start = ember_cli_now() - 1;
    progress_fields(&r, 21, 25, ember_cli_now(), f);
    assert_string_equal(f[F_VALUE], "value 25"); /* a count, not 2.500e+01 */
    assert_string_equal(f[F_ETA], "");
    assert_string_equal(f[F_ITER], "iteration 21");
}

/* A refusal to resume names --force-resume, once, and not the library's
 * option name. */
static void test_cli_mismatch_names_flag(void **state)
{
    (void)state;
    ember_cli cli;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(parse(&cli, "--damping 0.5"), EMBER_CLI_RUN);
    snprintf(msg, sizeof msg, "checkpoint ck/ckpt-000000000010.h5 is from another run: "
             "parameters differ: damping=0.85 (checkpoint) vs damping=0.5 (now); "
             "force_resume would resume anyway");
    explain_mismatch(&cli, msg);
    assert_null(strstr(msg, "force_resume"));
    const char *at = strstr(msg, "--force-resume");
    assert_non_null(at);
    assert_null(strstr(at + 1, "--force-resume"));
    TU_MSG_HAS(msg, "damping=0.5 (now); --force-resume resumes anyway");
    /* a state that differs cannot be forced: no flag named */
    snprintf(msg, sizeof msg, "checkpoint x is from another run: state differs");
    explain_mismatch(&cli, msg);
    assert_null(strstr(msg, "force"));
}

/* The vertex CSV's values are written as printf's %.17g, PRIu64 and
 * PRId64 would write them, whole doubles without printf: the same bytes
 * for the edges of each fast path. */
static void test_cli_csv_values_as_printf(void **state)
{
    (void)state;
    double d[] = {0.0, -0.0, 1.0, -1.0, 2.5, 12.0, 1e15, 0x1p53 - 1, 0x1p53, -0x1p53 + 1,
                  -0x1p53, 1e300, 1e-300, 5e-324, INFINITY, -INFINITY, NAN, 123456789.0,
                  0.1, 3.0000000000000004, 9007199254740991.0, -9007199254740991.0};
    char got[64], want[64];
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        size_t n = put_value(got, EMBER_F64, d, i);
        got[n] = '\0';
        snprintf(want, sizeof want, "%.17g", d[i]);
        assert_string_equal(got, want);
    }
    uint64_t u[] = {0, 9, 10, 99, 1000000, UINT64_MAX};
    for (size_t i = 0; i < sizeof u / sizeof *u; i++) {
        size_t n = put_value(got, EMBER_U64, u, i);
        got[n] = '\0';
        snprintf(want, sizeof want, "%" PRIu64, u[i]);
        assert_string_equal(got, want);
    }
    int64_t k[] = {0, -1, 7, -1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        size_t n = put_value(got, EMBER_I64, k, i);
        got[n] = '\0';
        snprintf(want, sizeof want, "%" PRId64, k[i]);
        assert_string_equal(got, want);
    }
}

/* A temporary's name can be worked out by another user (its pid is in
 * it), who may put a symbolic link there: the output is never written
 * through it, as text (ember_cli_create) or HDF5 (a scratch file of the
 * library), and the file it points to stays as it was. A new HDF5 scratch
 * file whose first write fails is not left behind. */
static void test_cli_tmp_not_through_links(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], tmp[4096], back[64] = "";
    FILE *v = fopen("victim.txt", "w");
    assert_non_null(v);
    fputs("precious\n", v);
    fclose(v);
    assert_int_equal(ember_cli_tmp_name("out.csv", tmp, sizeof tmp), 0);
    assert_int_equal(symlink("victim.txt", tmp), 0);
    errno = 0;
    assert_null(ember_cli_create(tmp));
    assert_int_equal(errno, EEXIST);
    unlink(tmp);
    assert_int_equal(ember_cli_publish(1, tmp, "out.csv", msg), 1);

    assert_int_equal(ember_cli_tmp_name("out.h5", tmp, sizeof tmp), 0);
    assert_int_equal(symlink("victim.txt", tmp), 0);
    char spec[4200];
    snprintf(spec, sizeof spec, "%s:/x", tmp);
    double x[2] = {1, 2};
    uint64_t n = 2;
    assert_int_equal(ember_h5_write_array(spec, EMBER_F64, x, 1, &n, NULL, 0, 1, msg),
                     EMBER_EINVAL);
    assert_non_null(strstr(msg, "a symbolic link where this process's own file was to be"));
    unlink(tmp);
    v = fopen("victim.txt", "r");
    assert_non_null(v);
    assert_non_null(fgets(back, sizeof back, v));
    fclose(v);
    assert_string_equal(back, "precious\n");

    /* a regular file at the next name, left by a killed process whose pid
     * this one got again: removed, so the exclusive create succeeds (it
     * failed with "File exists" after all the work) */
    char again[4096], next[4096];
    assert_int_equal(ember_cli_tmp_name("out2.csv", again, sizeof again), 0);
    size_t len = strlen(again);
    unsigned cnt = (unsigned)strtoul(again + len - 8, NULL, 16); /* "xxxx.tmp" */
    snprintf(next, sizeof next, "%.*s%04x.tmp", (int)(len - 8), again, (cnt + 1) & 0xffffu);
    FILE *stale = fopen(next, "w");
    assert_non_null(stale);
    fclose(stale);
    assert_int_equal(ember_cli_tmp_name("out2.csv", again, sizeof again), 0);
    assert_string_equal(again, next);
    FILE *f2 = ember_cli_create(again);
    assert_non_null(f2);
    fclose(f2);
    assert_int_equal(ember_cli_publish(1, again, "out2.csv", msg), 1);

    /* no file there: made, and gone again when the write fails */
    ember_h5_attr one[] = {{"k", EMBER_I64, 0, 1, NULL}};
    ember__h5_attrs_fail = 1;
    assert_int_equal(ember_h5_write_array(spec, EMBER_F64, x, 1, &n, one, 1, 1, msg),
                     EMBER_EIO);
    ember__h5_attrs_fail = 0;
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(ember_h5_write_array(spec, EMBER_F64, x, 1, &n, NULL, 0, 1, msg),
                     EMBER_OK);
    assert_int_equal(ember_cli_publish(0, tmp, "out.h5", msg), EMBER_OK);
    assert_int_equal(access("out.h5", F_OK), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_defaults_and_values),
        cmocka_unit_test(test_cli_rejects_bad_values),
        cmocka_unit_test(test_cli_parameters_fingerprint),
        cmocka_unit_test(test_cli_exit_codes),
        cmocka_unit_test(test_cli_deadline_formats),
        cmocka_unit_test(test_cli_usage_errors),
        cmocka_unit_test(test_cli_checkpoint_mode_flags),
        cmocka_unit_test(test_cli_input_fingerprint),
        cmocka_unit_test(test_cli_input_changed),
        cmocka_unit_test(test_cli_prepare_bad_paths),
        cmocka_unit_test(test_cli_iterate_metrics_and_resume),
        cmocka_unit_test(test_cli_stop_at),
        cmocka_unit_test(test_cli_short_output),
        cmocka_unit_test(test_cli_iterate_step_error),
        cmocka_unit_test(test_cli_omitted_flags_refused),
        cmocka_unit_test(test_cli_progress_fits_width),
        cmocka_unit_test(test_cli_eta_only_where_it_means_something),
        cmocka_unit_test(test_cli_mismatch_names_flag),
        cmocka_unit_test(test_cli_flag_given_value),
        cmocka_unit_test(test_cli_csv_values_as_printf),
        cmocka_unit_test(test_cli_tmp_not_through_links),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
