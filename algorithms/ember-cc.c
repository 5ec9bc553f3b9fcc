/* ember-cc: connected components by min-label propagation with hooking
 * and pointer jumping, checkpointed.
 *
 * The graph is read as undirected (every edge both ways) into a CSR of
 * neighbours, renumbered by descending degree for cache locality (labels
 * are values, so the numbering does not matter to them). Every vertex
 * starts with its own label (its id, dense). A label names a vertex of the
 * same component (its parent), never one with a larger id; gf[v], the
 * label of v's parent, is v's grandparent. Each iteration (FastSV's
 * steps: Zhang, Azad and Hu, 2020) takes m = the least grandparent of v
 * and its neighbours, and lowers both v's next label (shortcutting and
 * aggressive hooking) and its parent's (stochastic hooking) to m. Every
 * task reads the previous labels and lowers with an atomic minimum, so
 * the next state is the least of all candidates, the same for any thread
 * count, until no label changes. Then each vertex holds the smallest
 * vertex id of its component (the only state no iteration changes). Plain
 * min-label propagation moves a label one edge an iteration: a path of n
 * vertices took n iterations, now about log2(n).
 *
 * In ember terms: the labels are an i64 dataset partitioned by vertex
 * ranges, bound to the loop; an iteration is one map_partitions over it
 * whose tasks lower entries of the next label vector in place.
 *
 * On several MPI ranks (docs/mpi.md) each rank computes the partitions it
 * owns, with the whole label vector; the next vectors are combined by an
 * all-reduce (minimum) after each iteration, so every rank holds the same
 * bits as a serial run.
 *
 * --plan afforest (one process; Sutton, Ben-Nun and Barak, 2018) links
 * the ends of edges in a union-find forest over the same label vector, a
 * root hooked under the smaller of two roots with a compare-and-swap:
 * iterations 1 and 2 link each vertex to its first and its second
 * neighbour; iteration 3 finds the largest component and links every
 * edge of the vertices outside it (an edge inside it joins nothing new),
 * then stops. Each iteration ends by pointing every vertex at its root.
 * Whatever order the links come in, a component's root is its smallest
 * vertex id (nothing hooks it under a larger one, and only a smaller one
 * of the same component could hold it), so every iteration's labels, like
 * FastSV's, are the smallest id of each component of the edges linked so
 * far: the same for any team, across kills, and, at the end, the same
 * labels as FastSV's.
 */
#include <ember.h>
#include <ember/graph.h>
#include <ember/mpi.h>

#include "cli.h"
#include "graphio.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *format = "auto";
static int relabel = 0, plan = 0;
static int undirected = 0; /* accepted, changes nothing: see its help */

enum { PLAN_FASTSV, PLAN_AFFOREST };
/* afforest: the neighbours each vertex is linked to before the rest */
#define SAMPLED 2

static const ember_cli_opt options[] = {
    {"format", EMBER_CLI_STR, &format, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     "el|mtx|h5", "input format (default: from the extension)"},
    {"relabel", EMBER_CLI_FLAG, &relabel, 0, 0, EMBER_CLI_FINGERPRINT, NULL, NULL,
     "map arbitrary ids to 0..n-1; outputs carry the original ids"},
    {"undirected", EMBER_CLI_FLAG, &undirected, 0, 0, 0, NULL, NULL,
     "accepted for symmetry with the other programs: the edges are always "
     "taken both ways, so a directed graph's components are its weak "
     "components"},
    {"plan", EMBER_CLI_CHOICE, &plan, 0, 0, EMBER_CLI_FINGERPRINT | EMBER_CLI_FP_NOT_ZERO,
     "fastsv|afforest", NULL,
     "fastsv: hooking and jumping over every edge each iteration (default; any "
     "number of ranks); afforest: union-find links, two sampled neighbours a "
     "vertex, then the edges outside the largest component, 3 iterations (one "
     "process; the same labels, faster)"},
    {0}};

static int check_args(ember_cli *cli);

static const ember_cli_program program = {
    .name = "ember-cc",
    .check = check_args,
    .summary = "Connected components of a graph taken as undirected (edge list, Matrix\n"
               "Market or ember HDF5 CSR), by min-label propagation with hooking and\n"
               "pointer jumping (FastSV's steps), or with --plan afforest by union-find\n"
               "links (Afforest's), with checkpoints.\n"
               "Output: HDF5 /labels (by vertex id: the smallest vertex id of its\n"
               "component; int64, or uint64 original ids with --relabel; attributes\n"
               "iterations, and components once converged), or\n"
               "vertex,label lines\n"
               "for .csv/.txt (with a header line). Components of a directed graph are its\n"
               "weak components. It runs until no label changes (afforest: 3\n"
               "iterations).",
    .usage = "--input GRAPH [--output FILE] [options]",
    .examples = "  ember-cc --input data/karate.el --verify\n"
                "  ember-cc --input data/karate.el --plan afforest --verify\n"
                "  ember-cc --input data/karate.el --output cc.csv --checkpoint-dir ck-cc\n"
                "  ember-gen kron --scale 14 --output k14.h5 && \\\n"
                "      ember-cc --input k14.h5 --output cc.h5\n",
    .extra = options,
    .default_iterations = 100000,
    .default_tolerance = 0,
    .value_name = "changed",
    .value_flags = EMBER_CLI_VALUE_COUNT,
    .omit = EMBER_CLI_NO_TOLERANCE | EMBER_CLI_NO_SEED,
    .arithmetic = "hooking and jumping", /* before: min label alone */
};

typedef struct {
    ember_graph *g;
    ember_ctx *ctx;
    ember_ds *labels;        /* bound to the loop */
    int64_t *buf[2];
    uint32_t *gf;            /* each vertex's grandparent: L[at(L[v])] (a
                                label is a vertex id, below n <= 2^32:
                                4 bytes, half the cache of the labels) */
    uint64_t *off;
    size_t parts;
    int adopted;
    const int64_t *cur;      /* the previous labels L, read by every task */
    uint32_t *pos;           /* the vertex of each label (perm inverted);
                                NULL: the label itself */
    int64_t *dst;            /* the next labels, lowered by the tasks */
} cc;

/* The vertex whose id is label l. */
static inline uint64_t at(const cc *s, int64_t l)
{
    return s->pos ? s->pos[l] : (uint64_t)l;
}

/* *x = min(*x, c), atomically: the result is the least of all candidates
 * whatever order the tasks come in. */
static inline void lower(int64_t *x, int64_t c)
{
    int64_t cur = __atomic_load_n(x, __ATOMIC_RELAXED);
    while (c < cur &&
           !__atomic_compare_exchange_n(x, &cur, c, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* map_partitions, emits nothing: for each vertex v of the range, m = the
 * least grandparent of v and its neighbours; v's next label and its
 * parent's (the vertex its label names) are lowered to m. */
static int hook(const void *in, size_t n, ember_emitter *em, void *arg)
{
    (void)in;
    const cc *s = arg;
    const int64_t *L = s->cur;
    const uint32_t *gf = s->gf;
    const uint64_t *off = s->g->offsets, edge_lo = s->g->edge_lo;
    const uint32_t *adj = s->g->adj; /* the rows this rank holds: edge e at
                                        adj[e - edge_lo] */
    uint64_t lo = s->off[ember_emitter_partition(em)];
    for (uint64_t v = lo; v < lo + n; v++) {
        uint32_t m = gf[v];
        const uint32_t *row = adj + (off[v] - edge_lo);
        for (uint64_t e = 0; e < off[v + 1] - off[v]; e++)
            if (gf[row[e]] < m)
                m = gf[row[e]];
        lower(&s->dst[v], (int64_t)m);
        lower(&s->dst[at(s, L[v])], (int64_t)m);
    }
    return 0;
}

static int discard(const void *in, size_t n, size_t part, void *arg)
{
    (void)in, (void)n, (void)part, (void)arg;
    return 0;
}

/* The labels (a restored checkpoint's too) index the label vector: each
 * must be a vertex id no larger than its own vertex's, which every state
 * of a run is. */
static int check_labels(const cc *s, char *msg)
{
    const int64_t *L = ember_array_data(s->labels, NULL);
    uint64_t bad = UINT64_MAX;
    for (uint64_t v = 0; v < s->g->n && bad == UINT64_MAX; v++)
        if (L[v] < 0 || (uint64_t)L[v] > ember_graph_label(s->g, v))
            bad = v;
    if (bad == UINT64_MAX)
        return EMBER_OK;
    snprintf(msg, EMBER_MSG_SIZE, "the labels hold %" PRId64 " for vertex %" PRIu64
             ", not a vertex id at most its own (a checkpoint of another graph?)",
             L[bad], ember_graph_label(s->g, bad));
    return EMBER_ELENGTH;
}

static int adopt(cc *s, char *msg)
{
    uint64_t *off = NULL;
    size_t parts = 0;
    int rc = ember_cli_vertex_parts(&off, &parts, s->ctx, s->g, s->labels, "labels", msg);
    if (!rc)
        rc = check_labels(s, msg);
    if (rc) {
        ember_free(s->ctx, off);
        return rc;
    }
    ember_free(s->ctx, s->off);
    s->off = off;
    s->parts = parts;
    return EMBER_OK;
}

/* ---- afforest ----------------------------------------------------------------- */

static inline int64_t get(const int64_t *x)
{
    return __atomic_load_n(x, __ATOMIC_RELAXED);
}

/* Joins the trees of vertices u and v in f: the larger of the two roots
 * (labels) is hooked under the smaller, by a compare-and-swap that fails
 * if another link hooked it first, and then it goes again from the new
 * parents. */
static void link(const cc *s, int64_t *f, uint64_t u, uint64_t v)
{
    int64_t a = get(&f[u]), b = get(&f[v]);
    while (a != b) {
        int64_t high = a > b ? a : b, low = a > b ? b : a;
        int64_t *h = &f[at(s, high)], up = get(h);
        if (up == low)
            return;
        if (up == high &&
            __atomic_compare_exchange_n(h, &up, low, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return;
        a = get(&f[at(s, up)]);
        b = get(&f[at(s, low)]);
    }
}

/* Every vertex's label becomes its root's. */
static void compress(const cc *s, int64_t *f)
{
    int64_t n = (int64_t)s->g->n;
#pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(s->ctx))
    for (int64_t v = 0; v < n; v++) {
        int64_t l = get(&f[v]), up;
        while ((up = get(&f[at(s, l)])) != l)
            l = up;
        __atomic_store_n(&f[v], l, __ATOMIC_RELAXED);
    }
}

/* The label most vertices hold (roots, after compress), the smallest of
 * equals. */
static int64_t largest_component(const cc *s, const int64_t *f, char *msg, int *rc)
{
    uint64_t n = s->g->n;
    uint64_t *count = calloc(n ? n : 1, sizeof *count);
    if (!count) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " counts", n);
        *rc = EMBER_ENOMEM;
        return -1;
    }
    for (uint64_t v = 0; v < n; v++)
        count[at(s, f[v])]++;
    int64_t best = -1;
    uint64_t most = 0;
    for (uint64_t v = 0; v < n; v++) {
        int64_t l = (int64_t)ember_graph_label(s->g, v);
        if (count[v] > most || (count[v] == most && count[v] && l < best))
            best = l, most = count[v];
    }
    free(count);
    return best;
}

/* An afforest iteration on f, a copy of the labels (see the top). */
static int afforest(const cc *s, uint64_t iteration, int64_t *f, char *msg)
{
    int64_t n = (int64_t)s->g->n;
    int T = ember_ctx_threads(s->ctx);
    if (iteration < SAMPLED) { /* (iterations count from 0) */
        uint64_t r = iteration;
#pragma omp parallel for schedule(dynamic, 4096) num_threads(T)
        for (int64_t v = 0; v < n; v++) {
            uint64_t len;
            const uint32_t *row = ember_graph_row(s->g, (uint64_t)v, &len);
            if (len > r)
                link(s, f, (uint64_t)v, row[r]);
        }
    } else {
        int rc = EMBER_OK;
        int64_t big = largest_component(s, f, msg, &rc);
        if (rc)
            return rc;
        /* (a vertex hooked into it meanwhile is skipped: its edges join
         * the largest component, and the other ends link the rest) */
#pragma omp parallel for schedule(dynamic, 1024) num_threads(T)
        for (int64_t v = 0; v < n; v++) {
            uint64_t len;
            const uint32_t *row = ember_graph_row(s->g, (uint64_t)v, &len);
            for (uint64_t e = 0; get(&f[v]) != big && e < len; e++)
                link(s, f, (uint64_t)v, row[e]);
        }
    }
    compress(s, f);
    return EMBER_OK;
}

static int step(uint64_t iteration, double *value, void *arg, char *msg)
{
    cc *s = arg;
    int rc = EMBER_OK;
    if (!s->adopted && (rc = adopt(s, msg)))
        return rc;
    s->adopted = 1;
    ember_type i64 = ember_type_scalar(EMBER_I64);
    ember_ds *next = NULL, *done = NULL;
    const int64_t *L = s->cur = ember_array_data(s->labels, NULL);
    int64_t *f = s->dst = s->cur == s->buf[0] ? s->buf[1] : s->buf[0];
    int64_t n = (int64_t)s->g->n;
#pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(s->ctx))
    for (int64_t v = 0; v < n; v++) {
        if (plan == PLAN_FASTSV)
            s->gf[v] = (uint32_t)L[at(s, L[v])]; /* checked: below n */
        f[v] = L[v];
    }
    if (plan == PLAN_AFFOREST) {
        rc = afforest(s, iteration, f, msg);
    } else {
        /* A copy of the state as it is for this pass; results go through
         * the pointers it holds. */
        rc = ember_map_partitions(&next, s->labels, &i64, hook, s, sizeof *s, msg);
        if (!rc)
            rc = ember_foreach(next, discard, NULL, msg);
        if (!rc) /* the ranks lowered any vertex's label: the least of them */
            rc = ember_allreduce_min_i64(s->ctx, f, s->g->n, msg);
    }
    if (!rc) /* the edges read are still those verified (a graph read in
                place); a writer waiting for the file gets it now */
        rc = ember_graph_hold(s->g, msg);
    uint64_t changed = 0;
#pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(s->ctx)) \
    reduction(+ : changed)
    for (int64_t v = 0; v < n; v++)
        changed += f[v] != L[v];
    if (!rc) /* (L may be the restored labels' own array, freed with them) */
        rc = ember_from_array_parts(&done, s->ctx, &i64, f, s->g->n, s->off, s->parts,
                                    EMBER_BORROW, msg);
    ember_ds_free(&next);
    if (rc)
        return rc;
    ember_ds_set_name(done, "labels");
    ember_ds_free(&s->labels);
    s->labels = done;
    *value = (double)changed;
    if (plan == PLAN_AFFOREST) /* its last iteration linked every edge left */
        return iteration >= SAMPLED ? EMBER_DONE : EMBER_OK;
    return changed == 0 ? EMBER_DONE : EMBER_OK;
}

static int init_state(cc *s, ember_ctx *ctx, ember_graph *g,
                      const ember_cli *cli, char *msg)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->ctx = ctx;
    s->buf[0] = malloc(g->n * sizeof(int64_t));
    s->buf[1] = malloc(g->n * sizeof(int64_t));
    s->gf = plan == PLAN_FASTSV ? malloc(g->n * sizeof(uint32_t)) : NULL;
    if (!s->buf[0] || !s->buf[1] || (plan == PLAN_FASTSV && !s->gf)) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " labels", g->n);
        return EMBER_ENOMEM;
    }
    for (uint64_t v = 0; v < g->n; v++)
        s->buf[0][v] = (int64_t)ember_graph_label(g, v);
    if (g->perm) {
        uint32_t *pos = malloc((g->n ? g->n : 1) * sizeof *pos);
        if (!pos) {
            snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " labels", g->n);
            return EMBER_ENOMEM;
        }
        for (uint64_t v = 0; v < g->n; v++)
            pos[g->perm[v]] = (uint32_t)v;
        s->pos = pos;
    }
    return ember_cli_vertex_dataset(&s->labels, ctx, g, cli->partitions, EMBER_I64,
                                    s->buf[0], "labels", msg);
}

static void free_state(cc *s)
{
    ember_ds_free(&s->labels);
    free(s->buf[0]);
    free(s->buf[1]);
    free(s->pos);
    free(s->gf);
    ember_free(s->ctx, s->off);
}

/* ---- output and verification ------------------------------------------------ */

static uint64_t count_components(const ember_graph *g, const int64_t *L)
{
    uint64_t k = 0;
    for (uint64_t v = 0; v < g->n; v++)
        k += L[v] == (int64_t)ember_graph_label(g, v);
    return k;
}

static int write_output(const ember_cli *cli, const ember_graph *g, const int64_t *L,
                        char *msg)
{
    /* by label; with --relabel the original ids, which may pass 2^63 */
    uint64_t *ids = malloc(g->n * sizeof *ids);
    if (!ids) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for the output");
        return EMBER_ENOMEM;
    }
    for (uint64_t v = 0; v < g->n; v++)
        ids[ember_graph_label(g, v)] = g->ids ? g->ids[L[v]] : (uint64_t)L[v];
    /* labels short of the fixpoint are not yet components: no count */
    ember_h5_attr at[] = {
        {"iterations", EMBER_I64, 0, (int64_t)cli->iterations_done, NULL},
        {"components", EMBER_I64, 0,
         cli->converged ? (int64_t)count_components(g, L) : 0, NULL},
    };
    int rc = ember_cli_write_vertex_values(cli, g, "label", "labels",
                                           g->ids ? EMBER_U64 : EMBER_I64, ids, at,
                                           cli->converged ? 2 : 1, msg);
    free(ids);
    return rc;
}

static uint64_t find(uint64_t *parent, uint64_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* Independent check: union-find over the edges gives the components; the
 * smallest label of each must be every member's label, and no edge may
 * join two labels. Counts what fails into bad[0] (edges joining two
 * labels) and bad[1] (labels not their component's smallest vertex), and
 * the components into *components. -1 when out of memory. */
static int check_components(const ember_graph *g, const int64_t *L, uint64_t bad[2],
                            uint64_t *components)
{
    uint64_t n = g->n;
    uint64_t *parent = malloc(n * sizeof *parent), *least = malloc(n * sizeof *least);
    if (!parent || !least) {
        free(parent);
        free(least);
        return -1;
    }
    bad[0] = bad[1] = *components = 0;
    for (uint64_t v = 0; v < n; v++)
        parent[v] = v;
    for (uint64_t v = 0; v < n; v++)
        for (uint64_t e = g->offsets[v]; e < g->offsets[v + 1]; e++) {
            uint64_t a = find(parent, v), b = find(parent, g->adj[e]);
            if (a != b)
                parent[a > b ? a : b] = a < b ? a : b;
            bad[0] += L[v] != L[g->adj[e]];
        }
    for (uint64_t v = 0; v < n; v++)
        least[v] = UINT64_MAX;
    for (uint64_t v = 0; v < n; v++) {
        uint64_t r = find(parent, v), l = ember_graph_label(g, v);
        if (l < least[r])
            least[r] = l;
    }
    for (uint64_t v = 0; v < n; v++) {
        bad[1] += (uint64_t)L[v] != least[find(parent, v)];
        *components += find(parent, v) == v;
    }
    free(parent);
    free(least);
    return 0;
}

/* --verify: check_components, said on stdout. */
static int verify(const ember_graph *g, const int64_t *L)
{
    uint64_t bad[2], components;
    if (check_components(g, L, bad, &components)) {
        printf("Verification: FAIL (out of memory)\n");
        return 1;
    }
    int ok = !bad[0] && !bad[1];
    printf("Verification: %s (%" PRIu64 " components; %" PRIu64 " edges join two labels, %"
           PRIu64 " labels are not their component's smallest vertex)\n",
           ok ? "PASS" : "FAIL", components, bad[0], bad[1]);
    return ok ? 0 : 1;
}

/* Labels continued by force from a run on another graph (or from a
 * checkpoint that carries such a run) are right only if that graph's
 * components were unions of this one's: labels only fall, so a component
 * split since keeps the smaller one's label in both parts. So a converged
 * run that carries a forced resume is checked before its result goes out,
 * on rank 0, which loads every row for it when it holds only its own (go:
 * the options g was loaded with). */
static int check_forced(const ember_cli *cli, int forced, ember_ctx *ctx,
                        const ember_graph *g, ember_graph_opts go, const int64_t *L,
                        char *msg)
{
    ember_graph *whole = NULL;
    if (g->row_lo != 0 || g->row_hi != g->n) {
        go.owned_rows = 0;
        int rc = ember_graph_load(&whole, ctx, ember_cli_input_load(cli, "input", cli->input),
                                  &go, msg);
        if (rc)
            return rc;
    }
    uint64_t bad[2], components;
    int oom = check_components(whole ? whole : g, L, bad, &components);
    ember_graph_free(&whole);
    if (oom) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory checking the labels of a forced resume");
        return EMBER_ENOMEM;
    }
    if (!bad[0] && !bad[1])
        return EMBER_OK;
    snprintf(msg, EMBER_MSG_SIZE, "the labels resumed %s are not this graph's "
             "components (%" PRIu64 " labels are not their component's smallest vertex, %"
             PRIu64 " edges join two labels): they continued a run on another graph; start "
             "over with --resume never (or another --checkpoint-dir)",
             ember_cli_forced_how(forced), bad[1], bad[0]);
    return EMBER_EMISMATCH;
}

/* What the options must say, checked in ember_cli_parse. */
static int check_args(ember_cli *cli)
{
    int rc = ember_cli_graph_args(cli, &format, 0);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if (plan == PLAN_AFFOREST && cli->ranks > 1)
        return ember_cli_usage_error(cli, "--plan afforest runs on one process (a link "
                                     "may hook any vertex's root); under mpirun use "
                                     "fastsv");
    return EMBER_CLI_RUN;
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    int f = ember_cli_graph_format(&format, cli.input); /* checked: named now */
    if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
        return rc;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    ember_loop *loop = NULL;
    uint64_t *vertex_ids = NULL;
    cc s;
    memset(&s, 0, sizeof s);
    int exit_extra = 0;
    /* On several ranks each keeps only its partitions' rows, except for
     * --verify: its serial check reads every row on rank 0. */
    ember_graph_opts go = {.format = (ember_graph_format)f, .undirected = 1,
                           .relabel = relabel, .degree_order = 1,
                           .owned_rows = !cli.verify, .partitions = cli.partitions};
    double t0 = ember_cli_now();
    rc = ember_cli_ctx(&ctx, &cli, msg);
    /* in place (held after each iteration and after check_forced), but
     * for --verify, which reads the edges after the output */
    const char *in = ember_cli_input_load(&cli, "input", cli.input);
    if (!rc)
        rc = cli.verify ? ember_graph_load(&g, ctx, in, &go, msg)
                        : ember_graph_load_in_place(&g, ctx, in, &go, msg);
    cli.load_seconds = ember_cli_now() - t0;
    if (!rc)
        rc = init_state(&s, ctx, g, &cli, msg);
    if (!rc)
        rc = ember_cli_loop(&loop, ctx, &cli, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "labels", &s.labels);
    if (!rc) /* a checkpoint's values are in the internal order: their ids */
        rc = ember_cli_note_vertex_ids(&cli, loop, g, &vertex_ids);
    if (!rc && g->ids) /* the labels are vertex numbers 0..n-1: their ids */
        rc = ember_loop_note_array(loop, "label_ids", EMBER_U64, g->ids, g->n);
    if (!rc)
        rc = ember_cli_iterate(&cli, loop, step, &s, msg);
    /* a restored state no step has read yet (a finished run's, maybe of
     * another graph under --force-resume): checked as a step would */
    if (!rc && !s.adopted && (rc = adopt(&s, msg)) == EMBER_OK)
        s.adopted = 1;
    const int64_t *L = rc ? NULL : ember_array_data(s.labels, NULL);
    /* a file of ember 0.1.0, which may have been forced (3), is checked
     * where the graph in memory is whole: not at the cost of loading it
     * again on rank 0, which a run under mpirun may not have room for */
    int forced = ember_loop_forced(loop, NULL, 0);
    if (!rc && cli.converged && cli.rank == 0 && forced &&
        (forced != 3 || (g->row_lo == 0 && g->row_hi == g->n)))
        rc = check_forced(&cli, forced, ctx, g, go, L, msg);
    if (!rc) /* that check read the edges too */
        rc = ember_graph_hold(g, msg);
    if (!rc && cli.output && cli.rank == 0) /* every rank holds L; rank 0 writes */
        rc = write_output(&cli, g, L, msg);
    if (!rc) { /* the result on stdout, the timings on stderr */
        printf("ember-cc: %" PRIu64 " vertices, %" PRIu64 " directed edges (each input "
               "edge both ways); ", g->n, g->m);
        if (cli.converged)
            printf("%" PRIu64 " components after %" PRIu64 " iterations\n",
                   count_components(g, L), cli.iterations_done);
        else
            printf("NOT converged after %" PRIu64 " iterations (--iterations ran out): "
                   "the labels are not components yet\n", cli.iterations_done);
    }
    fflush(stdout); /* the result before the diagnostics, in a 2>&1 log */
    rc = ember_cli_iterate_end(&cli, loop, rc, msg); /* the final checkpoint */
    if (!rc && !cli.quiet)
        fprintf(stderr, "ember-cc: load %.3f s, compute %.3f s, checkpoints %.3f s "
                "(files written in %.3f s)\n", cli.load_seconds, cli.compute_seconds,
                cli.checkpoint_seconds_lost, cli.checkpoint_write_seconds);
    if (!rc && cli.verify && cli.rank == 0 && (exit_extra = verify(g, L)))
        ember_cli_settle(exit_extra);
    rc = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    ember_loop_destroy(&loop);
    free(vertex_ids);
    free_state(&s);
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    return rc ? rc : exit_extra;
}
