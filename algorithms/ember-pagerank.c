/* ember-pagerank: PageRank with checkpointed, resumable iterations.
 *
 * Definition (networkx and igraph's): ranks start at 1/n; each iteration
 *   r'[v] = (1 - d) / n + d * (sum over in-edges u->v of r[u] / outdeg(u)
 *                              + D / n),   D = the rank on vertices with
 *                                          no out-edges (spread uniformly)
 * and it stops when the L1 change is below --tolerance or after
 * --iterations; --tolerance 0 runs exactly --iterations.
 *
 * How it maps onto ember: the graph is cached once as a CSR of in-edges
 * (pull-based: each vertex sums what it reads, no atomics), renumbered by
 * descending out-degree so the most-read contributions share cache lines.
 * The ranks are an ember dataset of f64, partitioned by vertex ranges of
 * about equal work (a vertex weighs 16 edges), and bound to the loop, so a kill loses at most
 * the iterations since the last checkpoint. An iteration is one
 * map_partitions over the ranks (`pull`): each task pulls its range's new
 * ranks from the broadcast contribution vector r[u] / outdeg(u), writes
 * them straight into the next rank vector, and writes their contributions
 * into a second contribution vector, which the next iteration reads (the
 * two swap). Only when the contributions of the current ranks are not
 * known (the first iteration, after a restore) does a `prepare` pass
 * write them first; it computes the same quotients, so a resumed run has
 * the same bits as one never stopped. Each task reports its dangling rank
 * and L1 change through per-partition slots (Spark's accumulators), and
 * the slots are summed in partition order. Memory is the CSR,
 * out-degrees, and four vectors: two of ranks, two of contributions.
 * Every sum has a fixed order, so results are bit-identical for any
 * thread count and across kills and resumes.
 *
 * On several MPI ranks (docs/mpi.md) each rank runs the tasks of the
 * partitions it owns; after each pass the owners' pieces are all-gathered
 * (ember_allgather_ranges, ember_allgather_items): the contribution
 * vector and the dangling slots after `prepare` or `pull`, the L1 slots
 * after `pull`, the ranks once at the end. Sums still run over all slots in
 * partition order on every rank, so every rank count gives the same bits.
 * From an ember HDF5 file with the stored pull layout each rank reads
 * only the in-edges of the rows it owns (ember_graph_opts.owned_rows;
 * not with --verify, whose serial check reads every row).
 * The contribution vectors are replicated arrays (ember_replicated_alloc):
 * with every rank on one node each is one shared-memory window, each rank
 * writes its own ranges and its all-gather is a barrier; the all-gathers
 * after a `pull` are what keep a rank's next `pull` from overwriting
 * contributions another rank still reads (a pull writes the vector the
 * previous pull read). EMBER_PHASES=1
 * prints each rank's time per phase of an iteration.
 */
#include <ember.h>
#include <ember/graph.h>
#include <ember/mpi.h>

#include "cli.h"
#include "graphio.h"

#include <inttypes.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ---- options ------------------------------------------------------------- */

static double damping = 0.85;
static const char *format = "auto";
static int undirected = 0, relabel = 0, order = 0;
static uint64_t top = 0;

static const ember_cli_opt options[] = {
    {"damping", EMBER_CLI_F64, &damping, 0, 1,
     EMBER_CLI_RANGE | EMBER_CLI_OPEN_MAX | EMBER_CLI_FINGERPRINT, NULL, "D",
     "damping factor in [0, 1) (default 0.85)"},
    {"format", EMBER_CLI_STR, &format, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     "el|mtx|h5", "input format (default: from the extension)"},
    {"undirected", EMBER_CLI_FLAG, &undirected, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     NULL, "treat every edge as two (u->v and v->u)"},
    {"relabel", EMBER_CLI_FLAG, &relabel, 0, 0, EMBER_CLI_FINGERPRINT, NULL, NULL,
     "map arbitrary ids to 0..n-1; outputs carry the original ids"},
    {"order", EMBER_CLI_CHOICE, &order, 0, 0, EMBER_CLI_FINGERPRINT,
     "degree|none", NULL, "internal vertex order (default degree: faster)"},
    {"top", EMBER_CLI_U64, &top, 0, 0, 0, NULL, "K",
     "print the K highest-ranked vertices on stdout"},
    {0}};

static int check_args(ember_cli *cli);

static const ember_cli_program program = {
    .name = "ember-pagerank",
    .check = check_args,
    .summary = "PageRank of a graph (edge list, Matrix Market or ember HDF5 CSR), with\n"
               "checkpoints: killed, it resumes from the last one with the same result.\n"
               "Output: HDF5 /ranks (float64, by vertex id; attributes iterations,\n"
               "residual, damping), or vertex,rank lines for .csv/.txt (with a header\n"
               "line). Without --output it prints the summary (and --top) only.",
    .usage = "--input GRAPH [--output FILE] [options]",
    .examples =
        "  ember-pagerank --input data/karate.el --undirected --top 10\n"
        "  ember-pagerank --input data/karate.el --output ranks.h5 \\\n"
        "      --checkpoint-dir ck-pr --checkpoint-every 10\n"
        "  ember-pagerank --input data/dangling.el --output ranks.csv \\\n"
        "      --tolerance 0 --iterations 20 --verify\n"
        "  ember-gen kron --scale 16 --output k16.h5 && \\\n"
        "      ember-pagerank --input k16.h5 --metrics m.jsonl\n",
    .extra = options,
    .default_iterations = 100,
    .default_tolerance = 1e-6,
    .value_name = "residual",
    .value_flags = EMBER_CLI_VALUE_ETA,
    .omit = EMBER_CLI_NO_SEED,
    .arithmetic = "rows in 8 lanes", /* row_sum; before: 4 chains */
};

/* ---- the iteration ---------------------------------------------------------- */

typedef double (*row_sum_fn)(const double *c, const uint32_t *a, const uint32_t *e,
                             const uint32_t *end);

typedef struct {
    ember_graph *g;            /* in-edges, degree-ordered */
    ember_ctx *ctx;
    double d;
    double tolerance;
    ember_ds *ranks;           /* bound to the loop */
    double *buf[2];            /* rank vectors the ranks dataset borrows */
    double *contrib[2];        /* r[u] / outdeg(u): [cur] of the current
                                  ranks, the other of the next ones */
    int cur;
    const double *known;       /* the rank vector contrib[cur] was made
                                  from (NULL: none; a restore sets ranks
                                  that are neither buffer) */
    int adopted;               /* off and parts describe the ranks */
    double base;               /* (1 - d) / n + d * D / n this iteration */
    uint64_t *off;             /* the ranks' partition offsets */
    size_t parts;
    double *res_part, *dang_part; /* accumulators, one slot a partition */
    double *dst;               /* pull: where the new ranks go */
    row_sum_fn row_sum;        /* this CPU's, same bits on any */
} pr;

/* The sum of a row, in a fixed order that depends only on the row, so the
 * same on every thread and every build: edge i of each whole block of 8
 * into lane i % 8, the tail into lane 0, then the lanes pairwise,
 * ((0+1)+(2+3))+((4+5)+(6+7)). The gathers are random reads, so the
 * contributions 64 edges ahead are prefetched (end: the end of the whole
 * edge array, which must not be read past). row_sum_avx512 and
 * row_sum_avx2 are the same sums with vector gathers: the same bits (a
 * gather does not round, the lanes add as the scalar lanes do), about 11 %
 * less compute on an AVX-512 Xeon (docs/design.md, "PageRank sums each row
 * in 8 lanes"). */
static double lanes_total(const double t[8])
{
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

static double row_sum_generic(const double *c, const uint32_t *a, const uint32_t *e,
                              const uint32_t *end)
{
    double t[8] = {0};
    for (; a + 8 <= e; a += 8) {
        if (end - a > 64)
            __builtin_prefetch(&c[a[64]]);
        for (int i = 0; i < 8; i++)
            t[i] += c[a[i]];
    }
    for (; a < e; a++)
        t[0] += c[*a];
    return lanes_total(t);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PR_X86 1
__attribute__((target("avx512f"))) static double
row_sum_avx512(const double *c, const uint32_t *a, const uint32_t *e, const uint32_t *end)
{
    __m512d s = _mm512_setzero_pd();
    for (; a + 8 <= e; a += 8) {
        if (end - a > 64)
            __builtin_prefetch(&c[a[64]]);
        __m256i ix = _mm256_loadu_si256((const __m256i *)(const void *)a);
        s = _mm512_add_pd(s, _mm512_i32gather_pd(ix, c, 8));
    }
    double t[8];
    _mm512_storeu_pd(t, s);
    for (; a < e; a++)
        t[0] += c[*a];
    return lanes_total(t);
}

/* The same with AVX2's gathers: lanes 0-3 in lo, 4-7 in hi. */
__attribute__((target("avx2"))) static double
row_sum_avx2(const double *c, const uint32_t *a, const uint32_t *e, const uint32_t *end)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (; a + 8 <= e; a += 8) {
        if (end - a > 64)
            __builtin_prefetch(&c[a[64]]);
        lo = _mm256_add_pd(lo, _mm256_i32gather_pd(c, _mm_loadu_si128((const __m128i *)(const void *)a), 8));
        hi = _mm256_add_pd(hi, _mm256_i32gather_pd(c, _mm_loadu_si128((const __m128i *)(const void *)(a + 4)), 8));
    }
    double t[8];
    _mm256_storeu_pd(t, lo);
    _mm256_storeu_pd(t + 4, hi);
    for (; a < e; a++)
        t[0] += c[*a];
    return lanes_total(t);
}
#endif

#ifdef PR_X86
/* Whether the vector gathers are fast here: Intel's CPUs but those whose
 * gathers Linux slows down against Downfall (the GDS microcode
 * mitigation, Skylake to Tiger Lake); not AMD's (Zen 4/5), where they were
 * 1.1-1.3x slower than the scalar loop (docs/design.md). */
static int gathers_fast(void)
{
    if (!__builtin_cpu_is("intel"))
        return 0;
    char line[64] = "";
    FILE *f = fopen("/sys/devices/system/cpu/vulnerabilities/gather_data_sampling", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    return strncmp(line, "Mitigation", 10) != 0;
}
#endif

/* The fastest row sum for n vertices on this CPU; all give the same bits.
 * The gathers take signed 32-bit indices, so only below 2^31 vertices.
 * EMBER_PAGERANK_ISA (avx512, avx2, generic) forces one, for tests; one
 * this CPU (or build) lacks, or another name, is said on stderr and the
 * generic one runs. */
static row_sum_fn pick_row_sum(uint64_t n)
{
    const char *force = getenv("EMBER_PAGERANK_ISA");
    int any = !force || !*force;
    if (!any && strcmp(force, "generic") != 0 && strcmp(force, "avx512") != 0 &&
        strcmp(force, "avx2") != 0) {
        fprintf(stderr, "ember-pagerank: EMBER_PAGERANK_ISA=%s is not avx512, avx2 "
                "or generic; the generic row sum runs\n", force);
        return row_sum_generic;
    }
#ifdef PR_X86
    __builtin_cpu_init();
    if (n > ((uint64_t)1 << 31) || (any && !gathers_fast()))
        return row_sum_generic;
    if ((any || !strcmp(force, "avx512")) && __builtin_cpu_supports("avx512f"))
        return row_sum_avx512;
    if ((any || !strcmp(force, "avx2")) && __builtin_cpu_supports("avx2"))
        return row_sum_avx2;
#else
    (void)n;
#endif
    if (!any && strcmp(force, "generic") != 0)
        fprintf(stderr, "ember-pagerank: EMBER_PAGERANK_ISA=%s: not on this CPU "
                "(or above 2^31 vertices); the generic row sum runs\n", force);
    return row_sum_generic;
}

/* pull's loop over rows [lo, lo + n), with the row sum f: inlined into
 * pull twice, so that the generic sum (the one used off Intel's CPUs) is
 * called directly, not through a pointer, and into pull_rows_avx512, which
 * inlines the AVX-512 one. Returns the L1 change and adds the dangling
 * rank to *dang. */
__attribute__((always_inline)) static inline double
pull_rows(const pr *s, row_sum_fn f, const double *old, uint64_t lo, size_t n,
          double *dang)
{
    const double *c = s->contrib[s->cur];
    double *next = s->contrib[!s->cur], *out = s->dst + lo, res = 0;
    /* Locals: for all the compiler knows, out and next alias s and *dang,
     * so it would load s's fields every row and add each dangling rank
     * through memory, waiting on the last one's store (AVX-512's clone,
     * which gets dang as a pointer). The same adds, in the same order. */
    const double base = s->base, d = s->d;
    double dangling = *dang;
    const uint32_t *deg = s->g->out_degree;
    const uint64_t *off = s->g->offsets;
    /* This rank's rows only (ember_graph_check_owned): edge e at
     * adj[e - edge_lo]. */
    const uint32_t *adj = s->g->adj, *end = adj + ember_graph_held_edges(s->g);
    const uint64_t elo = s->g->edge_lo;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = lo + i;
        const uint32_t *a = adj + (off[v] - elo), *e = adj + (off[v + 1] - elo);
        double sum = 0;
        if (e - a < 8) /* f sums a row this short in its lane 0 alone, from +0,
                          the other lanes adding +0 (a sum from +0 is never -0,
                          so that changes no bit): the same bits, no call */
            for (; a < e; a++)
                sum += c[*a];
        else
            sum = f(c, a, e, end);
        double r = base + d * sum;
        out[i] = r;
        res += fabs(r - old[i]);
        /* as in prepare, so the bits do not depend on which wrote them */
        if (deg[v])
            next[v] = r / deg[v];
        else {
            next[v] = 0;
            dangling += r;
        }
    }
    *dang = dangling;
    return res;
}

#ifdef PR_X86
/* pull_rows with the AVX-512 row sum inlined (no call a row). */
__attribute__((target("avx512f"))) static double
pull_rows_avx512(const pr *s, const double *old, uint64_t lo, size_t n, double *dang)
{
    return pull_rows(s, row_sum_avx512, old, lo, n, dang);
}
#endif

/* map_partitions: the new ranks of one vertex range, pulled from the
 * contributions and written into s->dst (this range only: no other task
 * writes there), with their contributions into the other contribution
 * vector; its L1 change and dangling rank go to the partition's slots.
 * Emits nothing: writing in place saves the executor two copies. */
static int pull(const void *in, size_t n, ember_emitter *em, void *arg)
{
    pr *s = arg;
    size_t p = ember_emitter_partition(em);
    uint64_t lo = s->off[p];
    assert(n == 0 || (lo >= s->g->row_lo && lo + n <= s->g->row_hi));
    double dang = 0;
#ifdef PR_X86
    if (s->row_sum == row_sum_avx512)
        s->res_part[p] = pull_rows_avx512(s, in, lo, n, &dang);
    else
#endif
    s->res_part[p] = s->row_sum == row_sum_generic
                         ? pull_rows(s, row_sum_generic, in, lo, n, &dang)
                         : pull_rows(s, s->row_sum, in, lo, n, &dang);
    s->dang_part[p] = dang;
    return 0;
}

/* map_partitions: the contributions of the current ranks into
 * contrib[cur], and the partition's dangling rank, when no pull made them
 * (the first iteration, after a restore). Emits nothing. */
static int prepare(const void *in, size_t n, ember_emitter *em, void *arg)
{
    pr *s = arg;
    const double *r = in;
    double *c = s->contrib[s->cur], dang = 0;
    const uint32_t *deg = s->g->out_degree;
    size_t p = ember_emitter_partition(em);
    uint64_t lo = s->off[p];
    for (size_t i = 0; i < n; i++) {
        uint64_t v = lo + i;
        if (deg[v])
            c[v] = r[i] / deg[v];
        else {
            c[v] = 0;
            dang += r[i];
        }
    }
    s->dang_part[p] = dang;
    return 0;
}

static double sum_parts(const double *x, size_t parts)
{
    double t = 0;
    for (size_t p = 0; p < parts; p++)
        t += x[p];
    return t;
}

/* foreach: a pass that emits nothing (all of them) runs as a foreach of this,
 * not as a count: a count adds an agreement and an all-gather of
 * per-partition counts under MPI, two more waits an iteration. */
static int discard(const void *in, size_t n, size_t part, void *arg)
{
    (void)in, (void)n, (void)part, (void)arg;
    return 0;
}

/* Runs fn over the ranks as a map_partitions, with contrib[cur] as its
 * broadcast. */
static int run_pass(pr *s, ember_emit_fn fn, char *msg)
{
    ember_type f64 = ember_type_scalar(EMBER_F64);
    ember_ds *cds = NULL, *next = NULL;
    ember_bcast *bc = NULL;
    int rc = ember_from_array(&cds, s->ctx, &f64, s->contrib[s->cur], s->g->n, 1,
                              EMBER_BORROW, msg);
    if (!rc)
        rc = ember_broadcast(&bc, cds, msg);
    if (!rc)
        /* A copy of the state as it is for this pass; results go through
         * the pointers it holds. (It also names bc's records, so the use
         * below is implied; it is said for the reader.) */
        rc = ember_map_partitions(&next, s->ranks, &f64, fn, s, sizeof *s, msg);
    if (!rc)
        rc = ember_ds_uses(next, bc);
    if (!rc)
        rc = ember_foreach(next, discard, NULL, msg);
    ember_ds_free(&next);
    ember_bcast_free(&bc);
    ember_ds_free(&cds);
    return rc;
}

/* The ranks' partitioning, after a start or a restore. */
static int adopt_ranks(pr *s, char *msg)
{
    size_t parts = 0;
    uint64_t *off = NULL;
    /* The loader read this rank's rows of the partitions it made; a
     * partitioning that needs others must stop here, not read past them. */
    int rc = ember_cli_vertex_parts(&off, &parts, s->ctx, s->g, s->ranks, "ranks", msg);
    if (rc)
        return rc;
    if (parts != s->parts) {
        free(s->res_part);
        free(s->dang_part);
        s->res_part = calloc(parts, sizeof *s->res_part);
        s->dang_part = calloc(parts, sizeof *s->dang_part);
        if (!s->res_part || !s->dang_part) {
            ember_free(s->ctx, off);
            return EMBER_ENOMEM;
        }
    }
    ember_free(s->ctx, s->off);
    s->off = off;
    s->parts = parts;
    return EMBER_OK;
}

/* ---- phase times (EMBER_PHASES) --------------------------------------------- */

/* Where an iteration's time goes on this rank (bench/mpi.sh, docs/mpi.md):
 * wall seconds of each phase of step(), summed over the iterations, and
 * the seconds the tasks of each pass ran (summed over this rank's
 * threads); the rest of a pass is the executor's copying and, under MPI,
 * waiting for the other ranks. On when EMBER_PHASES is set; each rank
 * prints one line to stderr at the end. */
enum { PH_PREPARE, PH_GATHER_C, PH_GATHER_D, PH_PULL, PH_GATHER_R, PH_REBUILD,
       PH_LOOP, PH_N };
static struct {
    int on, pass;
    uint64_t steps;
    double t[PH_N], task[2], mark;
    ember_emit_fn fn;
} phases;

static void phase_mark(int i)
{
    if (!phases.on)
        return;
    double t = ember_cli_now();
    if (phases.mark > 0)
        phases.t[i] += t - phases.mark;
    phases.mark = t;
}

static int timed_task(const void *in, size_t n, ember_emitter *em, void *arg)
{
    double t = ember_cli_now();
    int rc = phases.fn(in, n, em, arg);
    t = ember_cli_now() - t;
    #pragma omp atomic
    phases.task[phases.pass] += t;
    return rc;
}

/* run_pass, its tasks timed when phases are on (which: 0 prepare, 1 pull). */
static int pass(pr *s, ember_emit_fn fn, int which, char *msg)
{
    if (!phases.on)
        return run_pass(s, fn, msg);
    phases.fn = fn;
    phases.pass = which;
    return run_pass(s, timed_task, msg);
}

static void phases_print(int rank)
{
    if (!phases.on || !phases.steps)
        return;
    double k = 1e3 / (double)phases.steps;
    fprintf(stderr,
            "ember-pagerank: rank %d, ms per iteration (%" PRIu64 "): prepare (first "
            "only) %.2f "
            "(tasks %.2f), gather contributions %.2f, gather dangling %.2f, pull %.2f "
            "(tasks %.2f), gather L1 %.2f, rebuild %.2f, loop %.2f\n",
            rank, phases.steps, phases.t[PH_PREPARE] * k, phases.task[0] * k,
            phases.t[PH_GATHER_C] * k, phases.t[PH_GATHER_D] * k, phases.t[PH_PULL] * k,
            phases.task[1] * k, phases.t[PH_GATHER_R] * k, phases.t[PH_REBUILD] * k,
            phases.t[PH_LOOP] * k);
}

/* Every rank's ranges of contrib[cur] and its dangling slots to every
 * rank (each a barrier in a shared window). */
static int share_contributions(pr *s, char *msg)
{
    int rc = ember_allgather_ranges(s->ctx, s->contrib[s->cur], sizeof(double), s->off,
                                    s->parts, msg);
    phase_mark(PH_GATHER_C);
    if (!rc)
        rc = ember_allgather_items(s->ctx, s->dang_part, sizeof(double), s->parts, msg);
    phase_mark(PH_GATHER_D);
    return rc;
}

static int step(uint64_t iteration, double *value, void *arg, char *msg)
{
    (void)iteration;
    pr *s = arg;
    const double n = (double)s->g->n;
    int rc = EMBER_OK;
    phase_mark(PH_LOOP);
    phases.steps++;
    if (!s->adopted) {
        if ((rc = adopt_ranks(s, msg)))
            return rc;
        s->adopted = 1;
    }
    const double *r = ember_array_data(s->ranks, NULL);
    if (!s->known || r != s->known) {
        if ((rc = pass(s, prepare, 0, msg)))
            return rc;
        phase_mark(PH_PREPARE);
        if ((rc = share_contributions(s, msg)))
            return rc;
    }
    s->base = (1.0 - s->d) / n + s->d * sum_parts(s->dang_part, s->parts) / n;
    /* Write into whichever buffer the current ranks do not use. */
    double *dst = r == s->buf[0] ? s->buf[1] : s->buf[0];
    s->dst = dst;
    s->known = NULL; /* until the pull is through */
    if ((rc = pass(s, pull, 1, msg)))
        return rc;
    /* the edges the pull read are still those verified (a graph read in
     * place); a writer waiting for the file gets it now */
    if ((rc = ember_graph_hold(s->g, msg)))
        return rc;
    phase_mark(PH_PULL);
    s->cur = !s->cur;
    if ((rc = share_contributions(s, msg)))
        return rc;
    if ((rc = ember_allgather_items(s->ctx, s->res_part, sizeof(double), s->parts,
                                    msg)))
        return rc;
    phase_mark(PH_GATHER_R);
    ember_ds *next = NULL;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    rc = ember_from_array_parts(&next, s->ctx, &f64, dst, s->g->n, s->off, s->parts,
                                EMBER_BORROW, msg);
    if (rc)
        return rc;
    ember_ds_set_name(next, "ranks");
    ember_ds_free(&s->ranks);
    s->ranks = next;
    s->known = dst;
    phase_mark(PH_REBUILD);
    *value = sum_parts(s->res_part, s->parts);
    return s->tolerance > 0 && *value < s->tolerance ? EMBER_DONE : EMBER_OK;
}

/* ---- setup ----------------------------------------------------------------------- */

static int load_graph(ember_graph **g, ember_ctx *ctx, const ember_cli *cli,
                      char *msg)
{
    int f = ember_graph_format_parse(format); /* resolved in main */
    /* On several ranks each reads only the rows it owns (a file with the
     * stored pull layout), except for --verify: its serial check reads
     * every row on rank 0. */
    ember_graph_opts o = {.format = (ember_graph_format)f, .undirected = undirected,
                          .relabel = relabel, .by_destination = 1,
                          .degree_order = order == 0, .owned_rows = !cli->verify,
                          .partitions = cli->partitions};
    /* in place (step holds it after each pull), but for --verify, which
     * reads the edges after the output */
    const char *in = ember_cli_input_load(cli, "input", cli->input);
    return cli->verify ? ember_graph_load(g, ctx, in, &o, msg)
                       : ember_graph_load_in_place(g, ctx, in, &o, msg);
}

static int init_state(pr *s, ember_ctx *ctx, ember_graph *g,
                      const ember_cli *cli, char *msg)
{
    memset(s, 0, sizeof *s);
    s->g = g;
    s->ctx = ctx;
    s->d = damping;
    s->tolerance = cli->tolerance;
    s->row_sum = pick_row_sum(g->n);
    s->buf[0] = malloc(g->n * sizeof(double));
    s->buf[1] = malloc(g->n * sizeof(double));
    /* One copy a node under MPI (a shared-memory window): the all-gather
     * of the contributions is then a barrier (docs/mpi.md). */
    for (int i = 0; i < 2; i++) {
        void *c = NULL;
        int rc = ember_replicated_alloc(&c, ctx, g->n * sizeof(double), msg);
        if (rc)
            return rc;
        s->contrib[i] = c;
    }
    if (!s->buf[0] || !s->buf[1]) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " ranks", g->n);
        return EMBER_ENOMEM;
    }
    for (uint64_t v = 0; v < g->n; v++)
        s->buf[0][v] = 1.0 / (double)g->n;
    return ember_cli_vertex_dataset(&s->ranks, ctx, g, cli->partitions, EMBER_F64,
                                    s->buf[0], "ranks", msg);
}

static void free_state(pr *s)
{
    ember_ds_free(&s->ranks);
    free(s->buf[0]);
    free(s->buf[1]);
    ember_replicated_free(s->ctx, s->contrib[0]);
    ember_replicated_free(s->ctx, s->contrib[1]);
    free(s->res_part);
    free(s->dang_part);
    ember_free(s->ctx, s->off);
}

/* ---- output ---------------------------------------------------------------------- */

/* Each rank's ranges of the final ranks to every rank (a restored run that
 * ran no iteration adopts the restored partitioning first). */
static int gather_ranks(pr *s, char *msg)
{
    int rc = s->adopted ? EMBER_OK : adopt_ranks(s, msg);
    double *r = (double *)ember_array_data(s->ranks, NULL);
    if (!rc && !r) {
        snprintf(msg, EMBER_MSG_SIZE, "the ranks are not an array");
        rc = EMBER_ESTATE;
    }
    s->adopted = !rc;
    return rc ? rc : ember_allgather_ranges(s->ctx, r, sizeof(double), s->off,
                                            s->parts, msg);
}

/* The final ranks by label (the degree order undone), in the rank buffer
 * the ranks do not use: the iterations have touched its pages, where a
 * fresh 8 MB array costs 4-8 ms of page faults at scale 20. Owned by s. */
static double *ranks_by_label(pr *s, char *msg)
{
    const ember_graph *g = s->g;
    const double *r = ember_array_data(s->ranks, NULL);
    if (!r) {
        snprintf(msg, EMBER_MSG_SIZE, "the ranks are not an array");
        return NULL;
    }
    /* The contributions are not needed any more (every rank is here: the
     * free is collective). The buffer is this rank's own memory: a shared
     * window would have every rank write it at once. */
    ember_replicated_free(s->ctx, s->contrib[0]);
    ember_replicated_free(s->ctx, s->contrib[1]);
    s->contrib[0] = s->contrib[1] = NULL;
    double *out = r == s->buf[0] ? s->buf[1] : s->buf[0];
    /* a permutation: each label written once, from any thread */
    #pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(s->ctx))
    for (uint64_t v = 0; v < g->n; v++)
        out[ember_graph_label(g, v)] = r[v];
    return out;
}

static uint64_t vertex_id(const ember_graph *g, uint64_t label)
{
    return g->ids ? g->ids[label] : label;
}

static int write_output(const ember_cli *cli, const ember_graph *g, const double *r,
                        char *msg)
{
    ember_h5_attr at[] = {
        {"iterations", EMBER_I64, 0, (int64_t)cli->iterations_done, NULL},
        {"residual", EMBER_F64, cli->value, 0, NULL},
        {"damping", EMBER_F64, damping, 0, NULL},
        {"converged", EMBER_I64, 0, cli->converged, NULL},
    };
    return ember_cli_write_vertex_values(cli, g, "rank", "ranks", EMBER_F64, r,
                                         at, 4, msg);
}

typedef struct {
    double r;
    uint64_t label;
} scored;

static int better(const scored *a, const scored *b)
{
    return a->r > b->r || (a->r == b->r && a->label < b->label);
}

static void print_top(const ember_graph *g, const double *r, uint64_t k)
{
    if (k > g->n)
        k = g->n;
    scored *best = malloc((k ? k : 1) * sizeof *best);
    uint64_t have = 0;
    if (!best)
        return;
    for (uint64_t l = 0; l < g->n; l++) {
        scored x = {r[l], l};
        if (have == k && !better(&x, &best[k - 1]))
            continue;
        uint64_t i = have < k ? have++ : k - 1;
        for (; i > 0 && better(&x, &best[i - 1]); i--)
            best[i] = best[i - 1];
        best[i] = x;
    }
    int w = 12; /* wider for ids of more digits (--relabel keeps any u64) */
    for (uint64_t i = 0; i < have; i++) {
        char id[24];
        int len = snprintf(id, sizeof id, "%" PRIu64, vertex_id(g, best[i].label));
        w = len > w ? len : w;
    }
    printf("%-6s %-*s %s\n", "rank", w, "vertex", "pagerank");
    for (uint64_t i = 0; i < have; i++)
        printf("%-6" PRIu64 " %-*" PRIu64 " %.10f\n", i + 1, w, vertex_id(g, best[i].label),
               best[i].r);
    free(best);
}

/* ---- verification ------------------------------------------------------------------ */

/* An independent serial check: degrees counted afresh, one plain
 * iteration with a division per edge, then the L1 change and the sum. */
static int verify(const ember_graph *g, const double *r, const ember_cli *cli)
{
    uint64_t n = g->n;
    if (!ember_graph_whole(g)) { /* load_graph reads every row for it */
        printf("Verification: FAIL (this rank holds only rows [%" PRIu64 ", %" PRIu64 "))\n",
               g->row_lo, g->row_hi);
        return 1;
    }
    double *outdeg = calloc(n, sizeof *outdeg), *next = calloc(n, sizeof *next);
    if (!outdeg || !next) {
        free(outdeg);
        free(next);
        printf("Verification: FAIL (out of memory)\n");
        return 1;
    }
    for (uint64_t e = 0; e < g->m; e++)
        outdeg[g->adj[e]] += 1;
    double dangling = 0, sum = 0, change = 0;
    for (uint64_t v = 0; v < n; v++) {
        if (outdeg[v] == 0)
            dangling += r[v];
        sum += r[v];
    }
    for (uint64_t v = 0; v < n; v++) {
        double in = 0;
        for (uint64_t e = g->offsets[v]; e < g->offsets[v + 1]; e++)
            in += r[g->adj[e]] / outdeg[g->adj[e]];
        next[v] = (1 - damping) / (double)n + damping * (in + dangling / (double)n);
        change += fabs(next[v] - r[v]);
    }
    /* With --tolerance 0 the run stops on the iteration count; the next
     * change can then be at most the last one (PageRank contracts by d). */
    double bound = (cli->tolerance > 0 ? cli->tolerance : cli->value) + 1e-12;
    int ok = change <= bound && fabs(sum - 1.0) <= 1e-9;
    printf("Verification: %s (one more iteration changes the ranks by %.3g, "
           "bound %.3g; the ranks sum to 1 %+.3g)\n",
           ok ? "PASS" : "FAIL", change, bound, sum - 1.0);
    free(outdeg);
    free(next);
    return ok ? 0 : 1;
}

/* ---- main ----------------------------------------------------------------------------- */

/* The result on stdout; the run's timings and memory on stderr. The
 * memory is put against CSR + 3 rank vectors (issue 11's yardstick; the
 * run holds four vectors: two of ranks, two of contributions) only when
 * those are large enough (>= 64 MiB) to dominate it: on a small graph the ratio measures
 * the process's fixed cost, not the algorithm. */
static void summary(const ember_cli *cli, const ember_graph *g)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double csr = (double)ember_graph_csr_bytes(g), vec = 3.0 * 8.0 * (double)g->n;
    double mb = (double)g->input_bytes / 1e6, peak = (double)ru.ru_maxrss * 1024.0;
    char ratio[64] = "";
    if (csr + vec >= 64.0 * 1024 * 1024)
        snprintf(ratio, sizeof ratio, " = %.2f x (CSR + 3 rank vectors)", peak / (csr + vec));
    printf("ember-pagerank: %" PRIu64 " vertices, %" PRIu64 " %s; %" PRIu64
           " iterations, residual %.3g%s\n",
           g->n, g->m, g->directed ? "edges" : "directed edges (each input edge both ways)",
           cli->iterations_done, cli->value,
           cli->converged            ? " (converged)"
           : cli->tolerance > 0 ? " (NOT converged: --iterations ran out)"
                                : "");
    fflush(stdout); /* the result before the diagnostics, in a 2>&1 log */
    /* On several ranks, every rank unless --quiet: the rows whose
     * in-edges it holds (all of them unless it read only its own,
     * docs/mpi.md) and its peak memory. */
    if (!cli->quiet_asked && ember_ctx_ranks(g->ctx) > 1)
        fprintf(stderr, "ember-pagerank: rank %d of %d holds rows [%" PRIu64 ", %" PRIu64
                "): %" PRIu64 " of %" PRIu64 " edges, peak memory %.1f MiB\n",
                ember_ctx_rank(g->ctx), ember_ctx_ranks(g->ctx), g->row_lo, g->row_hi,
                ember_graph_held_edges(g), g->m, peak / 1048576.0);
    if (cli->quiet)
        return;
    fprintf(stderr,
            "ember-pagerank: load %.3f s (%.1f MB read in %.3f s, built in %.3f s), compute %.3f s, "
            "checkpoints %.3f s (files written in %.3f s); peak memory %.1f MiB%s\n",
            cli->load_seconds, mb, g->read_seconds, g->build_seconds,
            cli->compute_seconds, cli->checkpoint_seconds_lost,
            cli->checkpoint_write_seconds, peak / 1048576.0, ratio);
}

/* What the options must say, checked in ember_cli_parse. */
static int check_args(ember_cli *cli)
{
    return ember_cli_graph_args(cli, &format, 0);
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
        return rc;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    ember_loop *loop = NULL;
    uint64_t *vertex_ids = NULL;
    double *final = NULL; /* s's */
    pr s;
    memset(&s, 0, sizeof s);
    int exit_extra = 0;
    double t0 = ember_cli_now();
    rc = ember_cli_ctx(&ctx, &cli, msg);
    if (!rc)
        rc = load_graph(&g, ctx, &cli, msg);
    cli.load_seconds = ember_cli_now() - t0;
    if (!rc)
        rc = init_state(&s, ctx, g, &cli, msg);
    if (!rc)
        rc = ember_cli_loop(&loop, ctx, &cli, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "ranks", &s.ranks);
    if (!rc) /* a checkpoint's values are in the internal order: their ids */
        rc = ember_cli_note_vertex_ids(&cli, loop, g, &vertex_ids);
    phases.on = getenv("EMBER_PHASES") != NULL;
    if (!rc)
        rc = ember_cli_iterate(&cli, loop, step, &s, msg);
    phases_print(cli.rank);
    if (!rc)
        rc = gather_ranks(&s, msg);
    if (!rc && !(final = ranks_by_label(&s, msg)))
        rc = EMBER_ESTATE;
    /* Every rank holds the same ranks now; rank 0 writes and prints. */
    int root = cli.rank == 0;
    if (!rc && cli.output && root)
        rc = write_output(&cli, g, final, msg);
    if (!rc && top && root)
        print_top(g, final, top);
    rc = ember_cli_iterate_end(&cli, loop, rc, msg); /* the final checkpoint */
    if (!rc)
        summary(&cli, g);
    if (!rc && cli.verify && root && (exit_extra = verify(g, ember_array_data(s.ranks, NULL),
                                                          &cli)))
        ember_cli_settle(exit_extra);
    rc = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    ember_loop_destroy(&loop);
    free(vertex_ids);
    free_state(&s);
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    return rc ? rc : exit_extra;
}
