/* spark_pagerank: Spark's PageRank example as a newcomer writes it on
 * ember (bench/spark_pagerank.sh), shuffles every iteration:
 *
 *   spark_pagerank EDGES.el ITERATIONS [CHECKPOINT_DIR]
 *
 *   links = edges joined with their sources' out-degrees, cached;
 *   ranks = 1 for every vertex with out-edges;
 *   each iteration: contribs = join(links, ranks) -> (dst, rank / degree),
 *                   ranks = reduce_by_key(contribs) -> 0.15 + 0.85 sum,
 *                   cached, and its sum taken (an action), ranks bound to
 *                   an ember_loop (a checkpoint every 10 with a directory).
 * As in Spark's example, a vertex no edge points to drops out of ranks.
 * Prints the sum of the ranks. */
#include <ember.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct { int64_t src, dst; } edge;
typedef struct { int64_t k; double v; } kv;
typedef struct { int64_t src, dst; double deg; } link;
typedef struct { int64_t src, dst; double deg, r; } lr;

static int to_edge(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const double *c = in;
    edge *e = out;
    for (size_t i = 0; i < n; i++)
        e[i] = (edge){(int64_t)c[2 * i], (int64_t)c[2 * i + 1]};
    return 0;
}
static int one(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const edge *e = in;
    kv *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (kv){e[i].src, 1.0};
    return 0;
}
static int start(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const kv *d = in;
    kv *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (kv){d[i].k, 1.0};
    return 0;
}
static int contrib(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const lr *j = in;
    kv *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (kv){j[i].dst, j[i].r / j[i].deg};
    return 0;
}
static int damp(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const kv *s = in;
    kv *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (kv){s[i].k, 0.15 + 0.85 * s[i].v};
    return 0;
}

#define TRY(call) do { if (!rc) rc = (call); } while (0)

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: spark_pagerank EDGES ITERATIONS [DIR]\n"); return 2; }
    uint64_t iters = strtoull(argv[2], NULL, 10), it = 0;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *raw = NULL, *edges = NULL, *ones = NULL, *deg = NULL, *links = NULL, *ranks = NULL;
    ember_type et = ember_type_pair(EMBER_I64, EMBER_I64), kt = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_text_opts to = {.header = -1};
    double total = 0;
    ember_loop_opts lo = {.dir = argc > 3 ? argv[3] : NULL, .program = "spark_pagerank", .every = 10,
                          .iterations = iters};
    int rc = ember_loop_catch_early(msg);
    TRY(ember_ctx_create(&ctx, NULL, msg));
    TRY(ember_read_csv(&raw, ctx, argv[1], &to, msg));
    TRY(ember_map(&edges, raw, &et, to_edge, NULL, 0, msg));
    TRY(ember_map(&ones, edges, &kt, one, NULL, 0, msg));
    TRY(ember_reduce_by_key(&deg, ones, NULL, NULL, 0, 0, msg));
    TRY(ember_join(&links, edges, deg, 0, msg));
    TRY(ember_cache(links, msg));
    TRY(ember_map(&ranks, deg, &kt, start, NULL, 0, msg));
    TRY(ember_loop_create(&loop, ctx, &lo, msg));
    TRY(ember_loop_bind_ds(loop, "ranks", &ranks));
    TRY(ember_loop_bind_f64(loop, "total", &total));
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < iters;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *j = NULL, *c = NULL, *s = NULL, *nr = NULL;
        kv t;
        rc = ember_join(&j, links, ranks, 0, msg);
        TRY(ember_map(&c, j, &kt, contrib, NULL, 0, msg));
        TRY(ember_reduce_by_key(&s, c, NULL, NULL, 0, 0, msg));
        TRY(ember_map(&nr, s, &kt, damp, NULL, 0, msg));
        TRY(ember_cache(nr, msg));
        TRY(ember_sum(nr, &t, msg));
        ember_ds_free(&j);
        ember_ds_free(&c);
        ember_ds_free(&s);
        ember_ds_free(&ranks);
        ranks = nr;
        total = t.v;
        if (rc || it + 1 == iters) {
            rc = rc ? rc : ember_loop_finish(loop, msg);
            break;
        }
    }
    if (!rc)
        printf("total %.17g after %llu iterations\n", total, (unsigned long long)iters);
    else
        fprintf(stderr, "%s: %s\n", ember_strerror(rc), msg);
    ember_loop_destroy(&loop);
    ember_ds_free(&ranks);
    ember_ds_free(&links);
    ember_ds_free(&deg);
    ember_ds_free(&ones);
    ember_ds_free(&edges);
    ember_ds_free(&raw);
    ember_ctx_destroy(&ctx);
    return ember_exit_status(rc);
}
