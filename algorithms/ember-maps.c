/* ember-maps: the long-lineage job. range(N) as int64, M maps of x + 1
 * through a user function, then sum and count.
 *
 * It is the seeds' repeated-maps example and a stress test of lineage:
 * planning and running never recurse per map, so 100,000 maps run. Each
 * map is one iteration of the resumable loop, so --checkpoint-dir with
 * --checkpoint-every K writes the dataset after every K maps and cuts its
 * lineage there (--lineage shows the cut), and a killed run resumes.
 * --lineage-svg FILE draws the final lineage with Graphviz (plot.h).
 * Nothing is computed until a checkpoint or the final sum: the maps in
 * between run fused, block by block.
 */
#include "cli.h"
#include "plot.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

static uint64_t n_records = 100000000;
static uint64_t n_maps = 10;
static int show_lineage;
static const char *lineage_svg;

static const ember_cli_opt extra[] = {
    {"n", EMBER_CLI_U64, &n_records, 0, (double)INT64_MAX,
     EMBER_CLI_RANGE | EMBER_CLI_FINGERPRINT, NULL, "N",
     "records: range(N) as int64 (default 100000000)"},
    {"maps", EMBER_CLI_U64, &n_maps, 0, 1e9, EMBER_CLI_RANGE, NULL, "M",
     "maps of x+1 (default 10); each is one iteration of the loop"},
    {"lineage", EMBER_CLI_FLAG, &show_lineage, 0, 0, 0, NULL, NULL,
     "print the final dataset's lineage on stdout before the result"},
    {"lineage-svg", EMBER_CLI_STR, &lineage_svg, 0, 0, 0, NULL, "FILE",
     "draw the final dataset's lineage (its DOT) as an SVG with Graphviz "
     "(apt-get install graphviz); FILE must end in .svg"},
    {0}};

static int check_args(ember_cli *cli);

static const ember_cli_program prog = {
    .name = "ember-maps",
    .check = check_args,
    .summary = "range(N) as int64, M maps of x+1 through a user function, then\n"
               "sum and count (printed as 'sum: S' and 'count: C'). With\n"
               "--checkpoint-dir and --checkpoint-every K, the dataset is\n"
               "checkpointed after every K maps and its lineage cut there.",
    .extra = extra,
    /* --maps is the iteration count; nothing converges, nothing is random */
    .omit = EMBER_CLI_NO_INPUT | EMBER_CLI_NO_OUTPUT | EMBER_CLI_NO_ITERATIONS |
            EMBER_CLI_NO_TOLERANCE | EMBER_CLI_NO_SEED,
    .default_iterations = 10,
    .count_flag = "--maps",
    .value_name = "maps",
    .value_flags = EMBER_CLI_VALUE_COUNT | EMBER_CLI_VALUE_ETA,
    .examples = "  ember-maps --n 10000000 --maps 10\n"
                "  ember-maps --n 1000 --maps 10000 --lineage | tail -3\n"
                "  ember-maps --n 1000000 --maps 50 --checkpoint-dir ck-maps \\\n"
                "      --checkpoint-every 20 --lineage --verify\n"
                "  ember-maps --n 1000 --maps 12 --checkpoint-dir ck-svg "
                "--checkpoint-every 5 --lineage-svg lineage.svg\n"};

static int add_one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + 1;
    return 0;
}

/* One iteration: one more (lazy) map on the bound dataset. */
static int step(uint64_t iteration, double *value, void *arg, char *msg)
{
    ember_ds **ds = arg, *next = NULL;
    int rc = ember_map(&next, *ds, NULL, add_one, NULL, 0, msg);
    if (rc)
        return rc;
    ember_ds_free(ds);
    *ds = next;
    *value = (double)(iteration + 1);
    return EMBER_OK;
}

/* The sum exactly, in 128 bits (lo, and hi with the sign), and the count:
 * range(N) after M maps sums to about N^2 / 2, past int64 from N = 2^32. */
typedef struct {
    uint64_t lo;
    int64_t hi;
    uint64_t count;
} totals;

static void add128(totals *t, uint64_t lo, int64_t hi)
{
    uint64_t was = t->lo;
    t->lo += lo;
    t->hi = (int64_t)((uint64_t)t->hi + (uint64_t)hi + (t->lo < was));
}

/* Sum and count in one pass: one action instead of two. */
static int add_block(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    totals *t = acc;
    const int64_t *x = in;
    __int128 s = 0; /* a block's sum: below 2^63 * 2^64 */
    for (size_t i = 0; i < n; i++)
        s += x[i];
    add128(t, (uint64_t)s, (int64_t)(s >> 64));
    t->count += n;
    return 0;
}

static int add_totals(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    (void)n;
    totals *t = acc;
    const totals *o = in;
    add128(t, o->lo, o->hi);
    t->count += o->count;
    return 0;
}

/* The total in decimal (buf holds at least 48 bytes). */
static const char *total_text(const totals *t, char *buf)
{
    __int128 v = (__int128)(((unsigned __int128)(uint64_t)t->hi << 64) | t->lo);
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    char *p = buf + 47;
    *p = '\0';
    do
        *--p = (char)('0' + (int)(u % 10));
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    return p;
}

/* The independent check: the sum of i + M for i < N, in 128 bits, and the
 * count N; 1 when t holds them. What they should be goes to *want. */
static int totals_right(const totals *t, uint64_t maps, totals *want)
{
    unsigned __int128 n = n_records, w = n * (n - (n > 0)) / 2 + n * maps;
    *want = (totals){(uint64_t)w, (int64_t)(uint64_t)(w >> 64), n_records};
    return t->lo == want->lo && t->hi == want->hi && t->count == n_records;
}

/* --verify: totals_right, said on stdout (what was expected on stderr). */
static int verify(const totals *t, uint64_t maps)
{
    totals w;
    int ok = totals_right(t, maps, &w);
    printf("Verification: %s\n", ok ? "PASS" : "FAIL");
    char buf[48];
    if (!ok)
        fprintf(stderr, "ember-maps: expected sum %s and count %" PRIu64 "\n",
                total_text(&w, buf), n_records);
    return ok;
}

/* Data continued by force from a run with another --n (or from a
 * checkpoint that carries such a run) is that run's: refused before the
 * result is printed, on every rank alike. */
static int check_forced(int forced, const totals *t, uint64_t maps, char *msg)
{
    totals w;
    if (totals_right(t, maps, &w))
        return EMBER_OK;
    char got[48], want[48];
    snprintf(msg, EMBER_MSG_SIZE, "the data resumed %s is not range(%" PRIu64 ") after "
             "%" PRIu64 " maps (sum %s and count %" PRIu64 ", not %s and %" PRIu64 "): it "
             "continued a run with other parameters; start over with --resume never (or "
             "another --checkpoint-dir)", ember_cli_forced_how(forced), n_records, maps,
             total_text(t, got), t->count,
             total_text(&w, want), n_records);
    return EMBER_EMISMATCH;
}

static int print_lineage(ember_ds *ds)
{
    char *text = NULL;
    int rc = ember_lineage_string(ds, &text);
    if (!rc)
        fputs(text, stdout);
    ember_free(ember_ds_ctx(ds), text);
    return rc;
}

/* --lineage-svg: the lineage's DOT through Graphviz. */
static int draw_lineage(ember_ds *ds, const char *path)
{
    char *dot = NULL;
    int rc = ember_lineage_dot(ds, &dot);
    if (rc) {
        fprintf(stderr, "ember-maps: --lineage-svg: %s\n", ember_strerror(rc));
        return EMBER_EXIT_FAILURE;
    }
    rc = ember_plot_dot("ember-maps", dot, path);
    ember_free(ember_ds_ctx(ds), dot);
    return rc;
}

/* What the options must say, checked in ember_cli_parse. */
static int check_args(ember_cli *cli)
{
    if (n_records > (uint64_t)INT64_MAX) /* the bound, a double, is 2^63 */
        return ember_cli_usage_error(cli, "--n %" PRIu64 ": out of range: it must be at "
                                     "most %" PRId64 " (range(N) counts in int64)",
                                     n_records, INT64_MAX);
    if (n_records && n_records - 1 > (uint64_t)INT64_MAX - n_maps)
        return ember_cli_usage_error(cli, "--n %" PRIu64 " with --maps %" PRIu64 ": the "
                                     "records would reach %" PRIu64 " + %" PRIu64 ", past "
                                     "int64's largest value", n_records, n_maps,
                                     n_records - 1, n_maps);
    /* Graphviz writes SVG whatever the name says (as ember-inspect --plot) */
    if (lineage_svg && !ember_cli_has_suffix(lineage_svg, ".svg"))
        return ember_cli_usage_error(cli, "--lineage-svg %s: draws SVG; name the file "
                                     ".svg", lineage_svg);
    if (lineage_svg && (ember_plot_need(cli, "lineage-svg", "dot", "graphviz") ||
                        ember_cli_add_output(cli, "lineage-svg", lineage_svg)))
        return EMBER_EXIT_USAGE;
    return EMBER_CLI_RUN;
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &prog, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    cli.iterations = n_maps;
    if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
        return rc;
    int drawn = 0;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *ds = NULL;
    totals zero = {0, 0, 0}, t = {0, 0, 0};
    char sumtext[48];
    rc = ember_cli_ctx(&ctx, &cli, msg);
    if (!rc)
        rc = ember_range(&ds, ctx, 0, (int64_t)n_records, 1, cli.partitions, msg);
    if (!rc)
        rc = ember_cli_loop(&loop, ctx, &cli, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "data", &ds);
    if (!rc)
        rc = ember_cli_iterate(&cli, loop, step, &ds, msg);
    if (!rc && show_lineage && cli.rank == 0) /* rank 0 prints */
        rc = print_lineage(ds);
    if (!rc && lineage_svg)
        drawn = draw_lineage(ds, lineage_svg);
    if (!rc)
        rc = ember_aggregate(ds, &zero, sizeof zero, add_block, add_totals, NULL,
                             &t, msg);
    int forced = ember_loop_forced(loop, NULL, 0);
    if (!rc && forced)
        rc = check_forced(forced, &t, cli.iterations_done, msg);
    if (!rc && cli.rank == 0)
        printf("sum: %s\ncount: %" PRIu64 "\n", total_text(&t, sumtext), t.count);
    if (!rc && cli.verify && cli.rank == 0 && !verify(&t, cli.iterations_done))
        rc = EMBER_ECORRUPT;
    rc = ember_cli_iterate_end(&cli, loop, rc, msg); /* the final checkpoint */
    if (!rc && drawn)
        ember_cli_settle(drawn);
    rc = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    return rc ? rc : drawn;
}
