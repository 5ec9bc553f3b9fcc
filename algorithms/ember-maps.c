/* ember-maps: the long-lineage job. range(N) as int64, M maps of x + 1
 * through a user function, then sum and count.
 *
 * It is the seeds' repeated-maps example and a stress test of lineage:
 * planning and running never recurse per map, so 100,000 maps run.
 */
#include <ember.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + 1;
    return 0;
}

typedef struct {
    int64_t sum;
    uint64_t count;
} totals;

/* Sum and count in one pass: one action instead of two. */
static int add_block(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    totals *t = acc;
    const int64_t *x = in;
    uint64_t s = (uint64_t)t->sum; /* int64 sums wrap, as numpy's do */
    for (size_t i = 0; i < n; i++)
        s += (uint64_t)x[i];
    t->sum = (int64_t)s;
    t->count += n;
    return 0;
}

static int add_totals(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    (void)n;
    totals *t = acc;
    const totals *o = in;
    t->sum = (int64_t)((uint64_t)t->sum + (uint64_t)o->sum);
    t->count += o->count;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ember-maps [options]\n"
            "\n"
            "range(N) as int64, M maps of x+1, then sum and count.\n"
            "\n"
            "  --n N            records (default 100000000)\n"
            "  --maps M         maps of x+1 (default 10)\n"
            "  --threads T      OpenMP threads (default OMP_NUM_THREADS or all cores)\n"
            "  --partitions P   partitions (default: from the data size)\n"
            "  --lineage        print the final dataset's lineage before the result\n"
            "  --quiet          print only the result\n"
            "  --help, --version\n"
            "\n"
            "examples:\n"
            "  ember-maps --n 100000000 --maps 10\n"
            "  ember-maps --n 1000 --maps 100000 --lineage | tail -3\n");
}

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || *s == '-' || !*s)
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "ember-maps: %s: '%s' is not a whole number from 0 to %" PRIu64 "\n",
            flag, s ? s : "", max);
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t n = 100000000, maps = 10, threads = 0, parts = 0;
    int lineage = 0, quiet = 0;
    static const struct option opts[] = {
        {"n", required_argument, 0, 'n'},       {"maps", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'}, {"partitions", required_argument, 0, 'p'},
        {"lineage", no_argument, 0, 'l'},       {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    int c, rc = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1 && !rc) {
        switch (c) {
        case 'n': rc = parse_u64("--n", optarg, INT64_MAX, &n); break;
        case 'm': rc = parse_u64("--maps", optarg, 100000000, &maps); break;
        case 't': rc = parse_u64("--threads", optarg, 4096, &threads); break;
        case 'p': rc = parse_u64("--partitions", optarg, 1 << 20, &parts); break;
        case 'l': lineage = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ember-maps %s\n", EMBER_VERSION_STRING); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (rc)
        return rc;
    if (optind < argc) {
        fprintf(stderr, "ember-maps: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    (void)quiet;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    ember_ds *ds = NULL;
    ember_ctx_opts co = {.threads = (int)threads};
    rc = ember_ctx_create(&ctx, &co, msg);
    if (!rc)
        rc = ember_range(&ds, ctx, 0, (int64_t)n, 1, (size_t)parts, msg);
    for (uint64_t i = 0; !rc && i < maps; i++) {
        ember_ds *next = NULL;
        rc = ember_map(&next, ds, NULL, add_one, NULL, msg);
        ember_ds_free(&ds);
        ds = next;
    }
    char *text = NULL;
    if (!rc && lineage && !(rc = ember_lineage_string(ds, &text)))
        fputs(text, stdout);
    ember_free(ctx, text);
    totals zero = {0, 0}, t = {0, 0};
    if (!rc)
        rc = ember_aggregate(ds, &zero, sizeof zero, add_block, add_totals, NULL,
                             &t, msg);
    if (!rc)
        printf("sum: %" PRId64 "\ncount: %" PRIu64 "\n", t.sum, t.count);
    else
        fprintf(stderr, "ember-maps: %s (%s)\n", msg, ember_strerror(rc));
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    return rc ? 1 : 0;
}
