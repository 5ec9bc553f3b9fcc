/* pagerank_baseline: the plain pull-based OpenMP CSR PageRank that
 * ember-pagerank is measured against (bench/pagerank.sh).
 *
 *   pagerank_baseline GRAPH ITERATIONS [plain|contrib] [undirected]
 *
 * The graph is loaded with libember (CSR of in-edges, file order, no
 * renumbering), outside the timed part. The timed part is ITERATIONS
 * iterations of the same definition as ember-pagerank (damping 0.85,
 * dangling rank spread uniformly, float64 ranks):
 *   plain:   r'[v] = base + d * sum r[u] / outdeg[u]  (a division and an
 *            out-degree read per edge: the textbook loop)
 *   contrib: the same with r[u] / outdeg[u] precomputed once per vertex
 *            (GAPBS pr_spmv's loop, with float64)
 * Both use schedule(dynamic, 64) over vertices. It prints the kernel time
 * and the rank sum, and with a third file argument writes the ranks.
 */
#include <ember.h>
#include <ember/graph.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pagerank_baseline GRAPH ITERATIONS [plain|contrib] [undirected]\n");
        return 2;
    }
    int iters = atoi(argv[2]);
    int contrib_mode = argc > 3 && strcmp(argv[3], "contrib") == 0;
    int undirected = argc > 4 && strcmp(argv[4], "undirected") == 0;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    ember_graph_opts o = {.by_destination = 1, .undirected = undirected};
    if (ember_ctx_create(&ctx, NULL, msg) || ember_graph_load(&g, ctx, argv[1], &o, msg)) {
        fprintf(stderr, "pagerank_baseline: %s\n", msg);
        return 1;
    }
    const int64_t n = (int64_t)g->n;
    const uint64_t *off = g->offsets;
    const uint32_t *adj = g->adj, *deg = g->out_degree;
    const double d = 0.85;
    double *r = malloc(n * sizeof *r), *nr = malloc(n * sizeof *nr);
    double *c = contrib_mode ? malloc(n * sizeof *c) : NULL;
    for (int64_t v = 0; v < n; v++)
        r[v] = 1.0 / (double)n;
    double t0 = omp_get_wtime(), res = 0;
    for (int it = 0; it < iters; it++) {
        double dang = 0;
        #pragma omp parallel for reduction(+:dang)
        for (int64_t v = 0; v < n; v++) {
            if (deg[v] == 0)
                dang += r[v];
            else if (c)
                c[v] = r[v] / deg[v];
        }
        const double base = (1.0 - d) / (double)n + d * dang / (double)n;
        res = 0;
        if (c) {
            #pragma omp parallel for schedule(dynamic, 64) reduction(+:res)
            for (int64_t v = 0; v < n; v++) {
                double s = 0;
                for (uint64_t e = off[v]; e < off[v + 1]; e++)
                    s += c[adj[e]];
                nr[v] = base + d * s;
                res += fabs(nr[v] - r[v]);
            }
        } else {
            #pragma omp parallel for schedule(dynamic, 64) reduction(+:res)
            for (int64_t v = 0; v < n; v++) {
                double s = 0;
                for (uint64_t e = off[v]; e < off[v + 1]; e++) {
                    uint32_t u = adj[e];
                    s += r[u] / deg[u];
                }
                nr[v] = base + d * s;
                res += fabs(nr[v] - r[v]);
            }
        }
        double *t = r;
        r = nr;
        nr = t;
    }
    double secs = omp_get_wtime() - t0, sum = 0;
    for (int64_t v = 0; v < n; v++)
        sum += r[v];
    printf("kernel_seconds %.6f\nresidual %.6g\nsum %.15f\nthreads %d\n", secs, res, sum,
           omp_get_max_threads());
    free(r);
    free(nr);
    free(c);
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    return 0;
}
