/* jacobi: the Jacobi-style loop of issue 8 three ways (bench/jacobi.sh).
 *
 *   jacobi GRAPH ITERATIONS idiom|arrays|plain [CHECKPOINT_DIR]
 *
 * Each iteration is one Jacobi sweep of (L + I) x = 1 over the graph taken
 * as undirected (L its Laplacian): x'[v] = (1 + sum of x[u] over the
 * neighbours u) / (degree(v) + 1), from x = 0, and the sum of x' (what a
 * residual check would read). The three ways:
 *   idiom   the Spark idiom, as a new user writes it: x is a dataset of
 *           {vertex, x}; each iteration bc = broadcast(x); nx = map(x,
 *           sweep reading bc); ember_ds_uses(nx, bc); cache(nx); sum(nx);
 *           x = nx; x bound to an ember_loop that checkpoints every 10;
 *   arrays  the bundled programs' hand-managed arrays: x lives in two
 *           caller buffers of doubles, a dataset borrows the current one
 *           (a broadcast of it is a view), a foreach writes the sweep into
 *           the other with per-partition sums; the same loop and
 *           checkpoints;
 *   plain   two arrays and an OpenMP loop, no ember, no checkpoints.
 * The graph is loaded with libember outside the timed part. It prints the
 * loop's seconds (checkpoints included), the final sum (%.17g) and the
 * most bytes ember's block store held after any iteration (ember_ctx_stats:
 * broadcasts are not counted there yet).
 */
#include <ember.h>
#include <ember/graph.h>

#include <inttypes.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t vertex;
    double x;
} vx;

static size_t peak_store; /* the most block-store bytes seen after an iteration */

static void note_store(ember_ctx *ctx)
{
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    if (st.memory_used > peak_store)
        peak_store = st.memory_used;
}

/* ---- idiom ------------------------------------------------------------------ */

typedef struct {
    const ember_graph *g;
    const ember_bcast *bc;
} sweep_arg;

static int start(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *v = in;
    vx *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = (vx){v[i], 0.0};
    return 0;
}

static int sweep(const void *in, void *out, size_t n, void *arg)
{
    const sweep_arg *a = arg;
    const vx *X = ember_bcast_data(a->bc, NULL);
    const uint64_t *off = a->g->offsets;
    const uint32_t *adj = a->g->adj;
    const vx *r = in;
    vx *o = out;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)r[i].vertex;
        double s = 1.0;
        for (uint64_t e = off[v]; e < off[v + 1]; e++)
            s += X[adj[e]].x;
        o[i] = (vx){r[i].vertex, s / (double)(off[v + 1] - off[v] + 1)};
    }
    return 0;
}

static int idiom(ember_ctx *ctx, const ember_graph *g, uint64_t iters, ember_loop *loop,
                 double *sum, char *msg)
{
    ember_field f[2] = {{"vertex", EMBER_I64, 1, 0}, {"x", EMBER_F64, 1, 0}};
    ember_type t;
    ember_ds *ids = NULL, *x = NULL;
    int rc = ember_type_struct(&t, f, 2, msg);
    if (!rc)
        rc = ember_range(&ids, ctx, 0, (int64_t)g->n, 1, 0, msg);
    if (!rc)
        rc = ember_map(&x, ids, &t, start, NULL, 0, msg);
    ember_ds_free(&ids);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "x", &x);
    uint64_t it = 0;
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < iters;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_bcast *bc = NULL;
        ember_ds *nx = NULL;
        vx total;
        rc = ember_broadcast(&bc, x, msg);
        sweep_arg a = {g, bc}; /* copied by the map, which then holds bc */
        if (!rc)
            rc = ember_map(&nx, x, NULL, sweep, &a, sizeof a, msg);
        ember_bcast_free(&bc);
        if (!rc)
            rc = ember_cache(nx, msg);
        if (!rc)
            rc = ember_sum(nx, &total, msg);
        ember_ds_free(&x);
        x = nx;
        if (rc)
            break;
        *sum = total.x;
        note_store(ctx);
        if (it + 1 == iters) {
            rc = ember_loop_finish(loop, msg);
            break;
        }
    }
    ember_loop_destroy(&loop); /* before x: the loop reads the bound handle */
    ember_ds_free(&x);
    return rc;
}

/* ---- arrays -------------------------------------------------------------------- */

typedef struct {
    const ember_graph *g;
    const double *cur;
    double *dst;
    const uint64_t *off;  /* partition starts */
    uint64_t *cursor;     /* per partition */
    double *part_sum;     /* per partition */
} arrays_state;

static int sweep_store(const void *in, size_t n, size_t part, void *arg)
{
    arrays_state *s = arg;
    const double *x = in;
    (void)x;
    const uint64_t *off = s->g->offsets;
    const uint32_t *adj = s->g->adj;
    uint64_t lo = s->off[part] + s->cursor[part];
    double ps = s->part_sum[part];
    for (size_t i = 0; i < n; i++) {
        uint64_t v = lo + i;
        double t = 1.0;
        for (uint64_t e = off[v]; e < off[v + 1]; e++)
            t += s->cur[adj[e]];
        t /= (double)(off[v + 1] - off[v] + 1);
        s->dst[v] = t;
        ps += t;
    }
    s->part_sum[part] = ps;
    s->cursor[part] += n;
    return 0;
}

static int arrays(ember_ctx *ctx, const ember_graph *g, uint64_t iters, ember_loop *loop,
                  double *sum, char *msg)
{
    ember_type t = ember_type_scalar(EMBER_F64);
    double *buf[2] = {calloc(g->n, sizeof(double)), calloc(g->n, sizeof(double))};
    ember_ds *x = NULL;
    uint64_t *off = NULL;
    size_t parts = 0;
    arrays_state s = {.g = g};
    int rc = buf[0] && buf[1] ? EMBER_OK : EMBER_ENOMEM;
    if (!rc)
        rc = ember_graph_partition(&off, &parts, g, 0, msg);
    if (!rc)
        rc = ember_from_array_parts(&x, ctx, &t, buf[0], g->n, off, parts, EMBER_BORROW, msg);
    s.off = off;
    s.cursor = calloc(parts ? parts : 1, sizeof *s.cursor);
    s.part_sum = calloc(parts ? parts : 1, sizeof *s.part_sum);
    if (!rc && (!s.cursor || !s.part_sum))
        rc = EMBER_ENOMEM;
    if (!rc)
        rc = ember_loop_bind_ds(loop, "x", &x);
    uint64_t it = 0;
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < iters;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *nx = NULL;
        s.cur = ember_array_data(x, NULL);
        s.dst = s.cur == buf[0] ? buf[1] : buf[0];
        memset(s.cursor, 0, parts * sizeof *s.cursor);
        memset(s.part_sum, 0, parts * sizeof *s.part_sum);
        rc = ember_foreach(x, sweep_store, &s, msg);
        if (!rc)
            rc = ember_from_array_parts(&nx, ctx, &t, s.dst, g->n, off, parts, EMBER_BORROW,
                                        msg);
        if (rc)
            break;
        ember_ds_free(&x);
        x = nx;
        double total = 0;
        for (size_t p = 0; p < parts; p++)
            total += s.part_sum[p];
        *sum = total;
        note_store(ctx);
        if (it + 1 == iters) {
            rc = ember_loop_finish(loop, msg);
            break;
        }
    }
    ember_loop_destroy(&loop);
    ember_ds_free(&x);
    ember_free(ctx, off);
    free(s.cursor);
    free(s.part_sum);
    free(buf[0]);
    free(buf[1]);
    return rc;
}

/* ---- plain --------------------------------------------------------------------------- */

static double plain(const ember_graph *g, uint64_t iters)
{
    const int64_t n = (int64_t)g->n;
    double *x = calloc(g->n, sizeof *x), *nx = calloc(g->n, sizeof *nx), sum = 0;
    for (uint64_t it = 0; it < iters; it++) {
        sum = 0;
        #pragma omp parallel for schedule(dynamic, 256) reduction(+:sum)
        for (int64_t v = 0; v < n; v++) {
            double t = 1.0;
            for (uint64_t e = g->offsets[v]; e < g->offsets[v + 1]; e++)
                t += x[g->adj[e]];
            nx[v] = t / (double)(g->offsets[v + 1] - g->offsets[v] + 1);
            sum += nx[v];
        }
        double *tmp = x;
        x = nx;
        nx = tmp;
    }
    free(x);
    free(nx);
    return sum;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: jacobi GRAPH ITERATIONS idiom|arrays|plain [CHECKPOINT_DIR]\n");
        return 2;
    }
    uint64_t iters = strtoull(argv[2], NULL, 10);
    const char *mode = argv[3], *dir = argc > 4 ? argv[4] : NULL;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    ember_loop *loop = NULL;
    ember_graph_opts go = {.undirected = 1};
    int rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_graph_load(&g, ctx, argv[1], &go, msg);
    char params[64];
    snprintf(params, sizeof params, "mode=%s\n", mode);
    ember_loop_opts lo = {.dir = dir, .program = "jacobi", .parameters = params,
                          .every = 10, .resume = EMBER_RESUME_NEVER, .quiet = 1};
    if (!rc && strcmp(mode, "plain") != 0)
        rc = ember_loop_create(&loop, ctx, &lo, msg);
    double sum = 0, t0 = omp_get_wtime();
    if (!rc && strcmp(mode, "idiom") == 0)
        rc = idiom(ctx, g, iters, loop, &sum, msg);
    else if (!rc && strcmp(mode, "arrays") == 0)
        rc = arrays(ctx, g, iters, loop, &sum, msg);
    else if (!rc)
        sum = plain(g, iters);
    double secs = omp_get_wtime() - t0;
    if (rc)
        fprintf(stderr, "jacobi %s: %s: %s\n", mode, ember_strerror(rc), msg);
    else
        printf("seconds %.6f\nsum %.17g\npeak_store_bytes %zu\nvertices %" PRIu64
               "\nedges %" PRIu64 "\n", secs, sum, peak_store, g->n, g->m);
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    return rc ? 1 : 0;
}
