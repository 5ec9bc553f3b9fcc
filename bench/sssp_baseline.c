/* sssp_baseline: the hand-written frontier Bellman-Ford that ember-sssp is
 * measured against (bench/sssp.sh).
 *
 *   sssp_baseline GRAPH SOURCE [undirected] [OUT.csv]
 *
 * The weighted graph is loaded with libember (CSR of out-edges with
 * weights, renumbered by descending degree as ember-sssp's is), outside
 * the timed part. The timed part runs the same rounds as
 * ember-sssp: in each, every vertex that improved in the previous round
 * (the frontier, a plain array of ids) pushes dist + w along its out-edges
 * into the next distances with an atomic minimum (a compare-and-swap on
 * the bits: positive doubles order as their bit patterns do), and a
 * vertex whose next distance dropped joins the next frontier once (an
 * atomic flag). Plain arrays, OpenMP, schedule(dynamic, 64) over the
 * frontier. It prints the rounds, the kernel time and the vertices
 * reached; with OUT.csv it writes "vertex,distance" lines as ember-sssp
 * does, for cmp.
 */
#include <ember.h>
#include <ember/graph.h>

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lower(double *slot, double x)
{
    uint64_t *p = (uint64_t *)slot, want, seen = __atomic_load_n(p, __ATOMIC_RELAXED);
    memcpy(&want, &x, sizeof want);
    while (want < seen)
        if (__atomic_compare_exchange_n(p, &seen, want, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sssp_baseline GRAPH SOURCE [undirected] [OUT.csv]\n");
        return 2;
    }
    uint64_t source = strtoull(argv[2], NULL, 10);
    int undirected = argc > 3 && strcmp(argv[3], "undirected") == 0;
    const char *out = argc > 4 ? argv[4] : NULL;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    ember_graph_opts o = {.undirected = undirected, .weighted = 1, .degree_order = 1};
    if (ember_ctx_create(&ctx, NULL, msg) || ember_graph_load(&g, ctx, argv[1], &o, msg)) {
        fprintf(stderr, "sssp_baseline: %s\n", msg);
        return 1;
    }
    const uint64_t n = g->n, *off = g->offsets;
    const uint32_t *adj = g->adj;
    const double *w = g->weights;
    if (source >= n) {
        fprintf(stderr, "sssp_baseline: source %" PRIu64 " >= %" PRIu64 " vertices\n",
                source, n);
        return 2;
    }
    for (uint64_t v = 0; g->perm && v < n; v++)
        if (g->perm[v] == source) {
            source = v;
            break;
        }
    double *d = malloc(n * sizeof *d), *nd = malloc(n * sizeof *nd);
    uint32_t *front = malloc(n * sizeof *front), *next = malloc(n * sizeof *next);
    unsigned char *queued = calloc(n, 1);
    if (!d || !nd || !front || !next || !queued) {
        fprintf(stderr, "sssp_baseline: out of memory\n");
        return 1;
    }
    double t0 = omp_get_wtime();
    #pragma omp parallel for schedule(static)
    for (uint64_t v = 0; v < n; v++)
        d[v] = nd[v] = INFINITY;
    d[source] = nd[source] = 0;
    front[0] = (uint32_t)source;
    uint64_t nf = 1, rounds = 0, nnext = 0, relaxed = 0;
    while (nf) {
        rounds++;
        nnext = 0;
        #pragma omp parallel reduction(+:relaxed)
        {
            uint32_t local[256];
            size_t k = 0;
            #pragma omp for schedule(dynamic, 64)
            for (uint64_t i = 0; i < nf; i++) {
                uint32_t u = front[i];
                double du = d[u];
                for (uint64_t e = off[u]; e < off[u + 1]; e++) {
                    uint32_t v = adj[e];
                    relaxed++;
                    if (lower(&nd[v], du + w[e]) &&
                        !__atomic_exchange_n(&queued[v], 1, __ATOMIC_RELAXED)) {
                        local[k++] = v;
                        if (k == 256) {
                            uint64_t at = __atomic_fetch_add(&nnext, k, __ATOMIC_RELAXED);
                            memcpy(next + at, local, k * sizeof *local);
                            k = 0;
                        }
                    }
                }
            }
            uint64_t at = __atomic_fetch_add(&nnext, k, __ATOMIC_RELAXED);
            memcpy(next + at, local, k * sizeof *local);
        }
        #pragma omp parallel for schedule(static)
        for (uint64_t i = 0; i < nnext; i++) {
            d[next[i]] = nd[next[i]];
            queued[next[i]] = 0;
        }
        uint32_t *t = front;
        front = next;
        next = t;
        nf = nnext;
    }
    double secs = omp_get_wtime() - t0;
    uint64_t reached = 0;
    for (uint64_t v = 0; v < n; v++)
        reached += d[v] < INFINITY;
    printf("rounds %" PRIu64 "\nkernel_seconds %.6f\nreached %" PRIu64 "\nrelaxed %" PRIu64
           "\nedges %" PRIu64 "\n", rounds, secs, reached, relaxed, g->m);
    if (out) {
        FILE *f = fopen(out, "w");
        if (!f) {
            fprintf(stderr, "sssp_baseline: cannot create %s\n", out);
            return 1;
        }
        fprintf(f, "vertex,distance\n");
        for (uint64_t v = 0; v < n; v++) /* by vertex id: nd is free now */
            nd[ember_graph_label(g, v)] = d[v];
        for (uint64_t v = 0; v < n; v++)
            fprintf(f, "%" PRIu64 ",%.17g\n", v, nd[v]);
        fclose(f);
    }
    free(d);
    free(nd);
    free(front);
    free(next);
    free(queued);
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    return 0;
}
