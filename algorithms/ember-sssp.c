/* ember-sssp: single-source shortest paths by Bellman-Ford rounds, Pregel
 * style, written only with ember's dataset API, checkpointed and resumable.
 *
 * The state is a dataset of records {vertex, dist, prev}, prev being dist
 * at the start of the last round: a vertex whose dist < prev improved in
 * the last round and is active, and only active vertices send dist + w
 * along their edges in the next round (Pregel's "only changed vertices
 * send"). The state is bound to the loop as "dist", so its checkpoints cut
 * the lineage that grows by one step every round (and the loop cuts it into
 * the block store every 32 rounds without them). The run stops after the
 * round in which no vertex improved. Four plans compute a round, the
 * first two in Spark terms:
 *
 * pull (default): the state holds every vertex, in vertex order, and
 *     bc     = broadcast(state)
 *     sent   = broadcast(state.map(v: dist if active else +inf))
 *     state' = state.map(v: min(dist, min over in-edges u -> v of
 *                        sent[u] + w))                uses bc and sent
 *   a map that reads the previous state as broadcasts, the shape of
 *   ember-pagerank and ember-cc, costing O(edges) a round (bc for the
 *   check that the state is in vertex order; an edge reads sent's 8 bytes,
 *   not the source's record);
 * shuffle: the state holds the vertices reached so far, and
 *     msgs   = state.filter(active).flatMap(out-edges: {u, dist + w, inf})
 *     state' = state.map(prev = dist).union(msgs)
 *                   .reduceByKey(min dist, min prev)
 *   Pregel's message passing, costing a shuffle of the messages and the
 *   state a round;
 * push (one process): the state's records are an array the state
 *   dataset borrows, and the active vertices a list (the frontier): each
 *   sends along its out-edges by lowering its targets' distances in place
 *   (an atomic minimum), and the targets it lowered are the next
 *   frontier. A round costs its frontier's edges, not the graph's, which
 *   is what a graph of long shortest paths (a road network, a grid) needs:
 *   as many rounds as edges on its longest shortest path;
 * delta (one process): push, a bucket of distances at a time (Meyer and
 *   Sanders' delta-stepping): a round sends from the active vertices whose
 *   distance lies in the earliest bucket [k delta, (k + 1) delta) that has
 *   any, so a vertex seldom sends a distance it will lower again. More
 *   rounds than push, each far cheaper: a weighted 1000 x 1000 grid, 0.08
 *   s of rounds against push's 2.9.
 *
 * In the first two plans no arrays hold state: the graph (a CSR with
 * weights, read-only input) is
 * the functions' argument, as a Spark closure would capture it. It is
 * renumbered by descending degree for cache locality (the state's vertex
 * field is that internal number; outputs are by vertex id). Minimums
 * of doubles do not depend on order and every shuffle has a fixed order, so
 * distances are bit-identical for any thread count and across kills and
 * resumes. --verify runs a serial Dijkstra with a binary heap and compares
 * every distance bit for bit.
 */
#include <ember.h>
#include <ember/graph.h>

#include "cli.h"
#include "graphio.h"

#include <assert.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ------------------------------------------------------------- */

static int64_t source = -1;
static const char *format = "auto";
static int undirected = 0, plan = 0;
static double delta = 0; /* --plan delta's bucket width; 0: from the graph */
static double heaviest;   /* the loaded graph's largest weight (load_graph) */

enum { PLAN_PULL, PLAN_SHUFFLE, PLAN_PUSH, PLAN_DELTA };

static const ember_cli_opt options[] = {
    {"source", EMBER_CLI_I64, &source, 0, 4294967295.0,
     EMBER_CLI_RANGE | EMBER_CLI_REQUIRED | EMBER_CLI_FINGERPRINT, NULL, "V",
     "the source vertex (required)"},
    {"format", EMBER_CLI_STR, &format, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     "el|mtx", "input format (default: from the extension)"},
    {"undirected", EMBER_CLI_FLAG, &undirected, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     NULL, "treat every edge as two (u->v and v->u), same weight"},
    {"plan", EMBER_CLI_CHOICE, &plan, 0, 0, EMBER_CLI_FINGERPRINT,
     "pull|shuffle|push|delta", NULL,
     "a round as broadcast + map (default), as flat_map + reduce_by_key, or as "
     "the frontier's out-edges lowering their targets in place (push: one process; "
     "a round costs its frontier, not the graph, for graphs of long paths); delta: "
     "push taking the frontier a bucket of distances at a time (delta-stepping, "
     "the fastest on one process, for road networks and grids above all)"},
    {"delta", EMBER_CLI_F64, &delta, 0, 1e300,
     EMBER_CLI_OPEN_MIN | EMBER_CLI_FINGERPRINT | EMBER_CLI_FP_NOT_ZERO,
     NULL, "D", "--plan delta's bucket width (default: the largest weight over the "
     "mean out-degree); the distances do not depend on it, the rounds do"},
    {0}};

static int check_args(ember_cli *cli);

static const ember_cli_program program = {
    .name = "ember-sssp",
    .check = check_args,
    .summary = "Single-source shortest paths from --source over a weighted graph\n"
               "(edge list 'u v w' with '#' comments, or Matrix Market with real or\n"
               "integer values; weights positive and finite, the heaviest times n - 1\n"
               "below 1e308 so that no path's length overflows), by Bellman-Ford rounds in\n"
               "which only the vertices whose distance changed send (with --plan delta,\n"
               "those of the earliest bucket of distances: delta-stepping), with\n"
               "checkpoints.\n"
               "Output: HDF5 /distances (float64 by vertex id, inf where unreachable;\n"
               "attributes source, rounds, reached), or vertex,distance lines for .csv\n"
               "(with a header line). It runs until no distance changes.",
    .usage = "--input GRAPH --source V [--output FILE] [options]",
    .examples = "  ember-sssp --input data/karate-weighted.el --undirected --source 0 \\\n"
                "      --verify\n"
                "  ember-sssp --input data/karate-weighted.el --source 0 --output d.h5 \\\n"
                "      --checkpoint-dir ck-sssp\n"
                "  ember-sssp --input data/karate-weighted.el --undirected --source 0 \\\n"
                "      --plan delta --output d.csv\n",
    .extra = options,
    .default_iterations = 100000000,
    .default_tolerance = 0,
    .value_name = "active",
    .value_flags = EMBER_CLI_VALUE_COUNT,
    .omit = EMBER_CLI_NO_TOLERANCE | EMBER_CLI_NO_SEED,
};

/* ---- the state's records and the functions of a round ------------------------ */

typedef struct {
    int64_t vertex; /* the key */
    double dist;
    double prev;
} vrec;

typedef struct {
    const ember_graph *g;
} relax_arg;

typedef struct {
    int64_t source;
} init_arg;

/* A pull round's argument: the graph and the round's broadcasts. The map
 * copies it when it is made, and holds the broadcasts it names. */
typedef struct {
    const ember_graph *g;   /* rows list in-neighbours; outlives the run */
    const ember_bcast *bc;  /* the state at the start of the round */
    const ember_bcast *sent; /* what each vertex sends: its dist if active,
                                else +inf (f64, in vertex order) */
} pull_arg;

static int vrec_type(ember_type *t, char *msg)
{
    ember_field f[3] = {{"vertex", EMBER_I64, 1, 0},
                        {"dist", EMBER_F64, 1, 0},
                        {"prev", EMBER_F64, 1, 0}};
    int rc = ember_type_struct(t, f, 3, msg);
    if (!rc && t->size != sizeof(vrec))
        rc = EMBER_ETYPE;
    return rc;
}

/* range(source, source + 1) -> the source at distance 0, active. */
static int seed_source(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *v = in;
    vrec *r = out;
    for (size_t i = 0; i < n; i++)
        r[i] = (vrec){v[i], 0.0, INFINITY};
    return 0;
}

/* range(0, n) -> every vertex unreached but the source (pull plan). */
static int seed_all(const void *in, void *out, size_t n, void *arg)
{
    const init_arg *a = arg;
    const int64_t *v = in;
    vrec *r = out;
    for (size_t i = 0; i < n; i++)
        r[i] = v[i] == a->source ? (vrec){v[i], 0.0, INFINITY}
                                 : (vrec){v[i], INFINITY, INFINITY};
    return 0;
}

/* state -> what each vertex sends in the next round: its distance when
 * it is active, else +inf, which lowers nothing (pull plan). */
static int sendable(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const vrec *r = in;
    double *o = out;
    for (size_t i = 0; i < n; i++)
        o[i] = r[i].dist < r[i].prev ? r[i].dist : INFINITY;
    return 0;
}

/* A pull round: each vertex takes the shortest of its distance and what
 * its active in-neighbours send. The broadcast is the state in vertex
 * order (checked: a record out of place fails the round); the edges read
 * what the sources send, 8 bytes a vertex instead of its 24-byte record,
 * and the weight only where that could lower the distance (w > 0). */
static int pull(const void *in, void *out, size_t n, void *arg)
{
    const pull_arg *a = arg;
    size_t nb = 0, ns = 0;
    const vrec *B = ember_bcast_data(a->bc, &nb);
    const double *S = ember_bcast_data(a->sent, &ns);
    const uint64_t *off = a->g->offsets;
    const uint32_t *adj = a->g->adj;
    const double *w = a->g->weights;
    const vrec *r = in;
    vrec *o = out;
    if (nb != a->g->n || ns != nb)
        return 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)r[i].vertex;
        if (v >= nb || B[v].vertex != r[i].vertex)
            return 1;
        double d = r[i].dist;
        for (uint64_t e = off[v]; e < off[v + 1]; e++) {
            double su = S[adj[e]];
            if (su < d && su + w[e] < d)
                d = su + w[e];
        }
        o[i] = (vrec){r[i].vertex, d, r[i].dist};
    }
    return 0;
}

static int is_active(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)arg;
    const vrec *r = in;
    for (size_t i = 0; i < n; i++)
        keep[i] = r[i].dist < r[i].prev;
    return 0;
}

#define RELAX_BLOCK 512

static int relax(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const relax_arg *a = arg;
    const uint64_t *off = a->g->offsets;
    const uint32_t *adj = a->g->adj;
    const double *w = a->g->weights;
    const vrec *r = in;
    vrec out[RELAX_BLOCK];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = (uint64_t)r[i].vertex;
        if (v >= a->g->n)
            return 1;
        for (uint64_t e = off[v]; e < off[v + 1]; e++) {
            out[k++] = (vrec){adj[e], r[i].dist + w[e], INFINITY};
            if (k == RELAX_BLOCK) {
                if (ember_emit(em, out, k))
                    return 1;
                k = 0;
            }
        }
    }
    return k && ember_emit(em, out, k) ? 1 : 0;
}

static int settle(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const vrec *r = in;
    vrec *s = out;
    for (size_t i = 0; i < n; i++)
        s[i] = (vrec){r[i].vertex, r[i].dist, r[i].dist};
    return 0;
}

static int keep_min(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    vrec *a = acc;
    const vrec *r = in;
    for (size_t i = 0; i < n; i++) {
        if (r[i].dist < a->dist)
            a->dist = r[i].dist;
        if (r[i].prev < a->prev)
            a->prev = r[i].prev;
    }
    return 0;
}

static int count_active(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    uint64_t *c = acc;
    const vrec *r = in;
    for (size_t i = 0; i < n; i++)
        *c += r[i].dist < r[i].prev;
    return 0;
}

static int add_counts(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    uint64_t *c = acc;
    const uint64_t *x = in;
    for (size_t i = 0; i < n; i++)
        *c += x[i];
    return 0;
}

/* ---- the loop -------------------------------------------------------------------- */

/* delta: a growable list of vertices. */
typedef struct {
    uint32_t *v;
    size_t n, cap;
} vlist;

/* A vertex and a key: Dijkstra's heap (--verify), delta's far buckets. */
typedef struct {
    double d;
    uint32_t v;
} entry;

static void heap_push(entry *h, size_t *n, entry x)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2].d > x.d) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static entry heap_pop(entry *h, size_t *n)
{
    entry top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1].d < h[c].d)
            c++;
        if (h[c].d >= x.d)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
    return top;
}

/* delta: buckets base .. base + WINDOW - 1 as lists, later ones in far. */
#define WINDOW 1024

/* delta: the active vertices by bucket, floor(dist / delta). A vertex is
 * listed in the bucket of its distance whenever it falls, so a list may
 * also hold vertices since lowered into an earlier bucket, or sent from
 * already: they are skipped when the list is drained. */
typedef struct {
    vlist bin[WINDOW];
    entry *far;         /* a min-heap of the later ones, keyed by bucket */
    size_t nfar, farcap;
    uint64_t base, cur; /* cur: the bucket being drained */
} buckets;

typedef struct {
    ember_ctx *ctx;
    const ember_graph *g;
    ember_type type;
    size_t parts;     /* of the state: from the data or --partitions */
    int64_t source;   /* --source as an internal vertex number */
    relax_arg relax;  /* copied by every shuffle round's flat_map */
    init_arg init;
    ember_ds *state;  /* bound to the loop as "dist" */
    /* push: the state's records by vertex, which state borrows; the
     * frontier (the active vertices) and what the round collects */
    vrec *rec;
    uint32_t *front, *next;
    double *took;     /* each frontier vertex's distance as the round began */
    unsigned char *queued;
    size_t nfront;
    double delta;     /* delta: the bucket width */
    ember_loop *loop; /* for the first step: was the resume forced? */
    int first_done;
    buckets *B;       /* delta */
} sssp;

static int count(ember_ds *ds, uint64_t *active, char *msg)
{
    uint64_t zero = 0;
    return ember_aggregate(ds, &zero, sizeof zero, count_active, add_counts, NULL, active,
                           msg);
}

/* A round's functions fail only on a state that does not fit the graph:
 * bad input (exit 2), as a restored checkpoint of another file would be. */
static int mismatch(char *msg, const char *what)
{
    snprintf(msg, EMBER_MSG_SIZE, "%s (a checkpoint of another graph?)", what);
    return EMBER_ELENGTH;
}

/* Makes next the state. */
static void advance(sssp *s, ember_ds *next)
{
    ember_ds_set_name(next, "dist");
    ember_ds_free(&s->state); /* next keeps what it needs of it alive */
    s->state = next;
}

/* A pull round: state -> state', and the number of active vertices. */
static int pull_round(sssp *s, uint64_t *active, char *msg)
{
    ember_ds *next = NULL, *sent = NULL;
    ember_bcast *bc = NULL, *sb = NULL;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    int rc = ember_broadcast(&bc, s->state, msg);
    if (!rc)
        rc = ember_map(&sent, s->state, &f64, sendable, NULL, 0, msg);
    if (!rc)
        rc = ember_broadcast(&sb, sent, msg);
    ember_ds_free(&sent); /* sb is computed: it does not hold sent */
    pull_arg a = {s->g, bc, sb};
    if (!rc) /* the copied arg names bc and sb: next keeps them alive */
        rc = ember_map(&next, s->state, NULL, pull, &a, sizeof a, msg);
    if (!rc)
        rc = ember_cache(next, msg);
    if (!rc && (rc = count(next, active, msg)) == EMBER_EUSER)
        rc = mismatch(msg, "the state is not the graph's vertices in order");
    ember_bcast_free(&bc);
    ember_bcast_free(&sb);
    if (rc) {
        ember_ds_free(&next);
        return rc;
    }
    advance(s, next);
    return EMBER_OK;
}

/* A shuffle round: state -> state', and the number of active vertices. */
static int shuffle_round(sssp *s, uint64_t *active, char *msg)
{
    ember_ds *act = NULL, *sent = NULL, *settled = NULL, *all = NULL, *next = NULL;
    int rc = ember_filter(&act, s->state, is_active, NULL, 0, msg);
    if (!rc)
        rc = ember_flat_map(&sent, act, &s->type, relax, &s->relax, sizeof s->relax, msg);
    if (!rc)
        rc = ember_map(&settled, s->state, NULL, settle, NULL, 0, msg);
    if (!rc)
        rc = ember_union(&all, settled, sent, msg);
    if (!rc)
        rc = ember_reduce_by_key(&next, all, keep_min, NULL, 0, s->parts, msg);
    /* next is a shuffle's output: kept in the block store, no cache needed */
    if (!rc && (rc = count(next, active, msg)) == EMBER_EUSER)
        rc = mismatch(msg, "the state holds a vertex outside the graph");
    ember_ds_free(&act);
    ember_ds_free(&sent);
    ember_ds_free(&settled);
    ember_ds_free(&all);
    if (rc) {
        ember_ds_free(&next);
        return rc;
    }
    advance(s, next);
    return EMBER_OK;
}

/* A double's bits, read and written as an int64 (may alias it). */
typedef int64_t __attribute__((may_alias)) bits64;

/* *x = min(*x, c) for non-negative doubles (+inf included), atomically:
 * their bits order as int64s do. 1 when it lowered *x. */
static int lower(double *x, double c)
{
    bits64 *p = (bits64 *)(void *)x;
    int64_t want, cur;
    memcpy(&want, &c, sizeof want);
    cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (want < cur)
        if (__atomic_compare_exchange_n(p, &cur, want, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return 1;
    return 0;
}

static int active_at(const sssp *s, uint32_t v)
{
    return s->rec[v].dist < s->rec[v].prev;
}

/* The bucket of a distance: floor(d / delta), the last ones as one. */
static uint64_t bucket_of(const sssp *s, double d)
{
    double b = d / s->delta;
    return b < 0x1p62 ? (uint64_t)b : UINT64_C(1) << 62;
}

/* p (n items of `size` bytes, room for *cap) with room for one more:
 * p itself, or p moved, or NULL (out of memory; p is kept). */
static void *room_for_one(void *p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return p;
    size_t c = *cap ? 2 * *cap : 64;
    void *q = realloc(p, c * size);
    if (q)
        *cap = c;
    return q;
}

static int vlist_push(vlist *l, uint32_t v)
{
    uint32_t *p = room_for_one(l->v, l->n, &l->cap, sizeof *p);
    if (!p)
        return -1;
    l->v = p;
    l->v[l->n++] = v;
    return 0;
}

/* Lists vertex v in the bucket of its distance (never before cur). */
static int file_vertex(sssp *s, uint32_t v)
{
    buckets *B = s->B;
    uint64_t b = bucket_of(s, s->rec[v].dist);
    if (b - B->base < WINDOW)
        return vlist_push(&B->bin[b - B->base], v);
    entry *far = room_for_one(B->far, B->nfar, &B->farcap, sizeof *far);
    if (!far)
        return -1;
    B->far = far;
    heap_push(B->far, &B->nfar, (entry){(double)b, v}); /* exact: below 2^53 or 2^62 */
    return 0;
}

static int out_of_memory(char *msg)
{
    snprintf(msg, EMBER_MSG_SIZE, "out of memory for the buckets of --plan delta");
    return EMBER_ENOMEM;
}

/* Whether a listing of v in bucket b is its current one (an active
 * vertex is listed in its distance's bucket; earlier listings are stale). */
static int listed_at(const sssp *s, uint32_t v, uint64_t b)
{
    return active_at(s, v) && bucket_of(s, s->rec[v].dist) == b;
}

/* The window drained: it moves to the earliest bucket of the far ones
 * that is current, and takes every far one inside it. 0 when none is. */
static int next_window(sssp *s, int *moved)
{
    buckets *B = s->B;
    *moved = 0;
    while (B->nfar && !*moved) {
        entry x = heap_pop(B->far, &B->nfar);
        if (!listed_at(s, x.v, (uint64_t)x.d))
            continue;
        B->base = B->cur = (uint64_t)x.d;
        *moved = 1;
        if (vlist_push(&B->bin[0], x.v))
            return -1;
    }
    while (*moved && B->nfar && B->far[0].d < (double)(B->base + WINDOW)) {
        entry x = heap_pop(B->far, &B->nfar);
        if (listed_at(s, x.v, (uint64_t)x.d) &&
            vlist_push(&B->bin[(uint64_t)x.d - B->base], x.v))
            return -1;
    }
    return 0;
}

/* The next frontier into front: the active vertices of the earliest
 * bucket that has any, each once (none: the run is over). Every active
 * vertex is listed in its bucket, and a round lowers vertices only into
 * the bucket it drains or later ones, so the frontier is a function of
 * the records alone: after a restore (refile) it is the same. */
static int next_frontier(sssp *s, char *msg)
{
    buckets *B = s->B;
    s->nfront = 0;
    for (;;) {
        while (B->cur - B->base < WINDOW && B->bin[B->cur - B->base].n == 0)
            B->cur++;
        if (B->cur - B->base == WINDOW) {
            int moved;
            if (next_window(s, &moved))
                return out_of_memory(msg);
            if (!moved)
                return EMBER_OK;
        }
        vlist *l = &B->bin[B->cur - B->base];
        size_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
            uint32_t v = l->v[i];
            if (listed_at(s, v, B->cur) && !s->queued[v]) {
                s->queued[v] = 1;
                s->front[k++] = v;
            }
        }
        for (size_t i = 0; i < k; i++)
            s->queued[s->front[i]] = 0;
        l->n = 0;
        s->nfront = k;
        if (k)
            return EMBER_OK;
    }
}

/* After a restore: the front's vertices (the active ones) filed afresh,
 * the window at the earliest bucket among them, and the next frontier. */
static int refile(sssp *s, char *msg)
{
    buckets *B = s->B;
    uint64_t lo = UINT64_MAX;
    for (size_t i = 0; i < s->nfront; i++) {
        uint64_t b = bucket_of(s, s->rec[s->front[i]].dist);
        lo = b < lo ? b : lo;
    }
    for (int b = 0; b < WINDOW; b++)
        B->bin[b].n = 0;
    B->nfar = 0;
    B->base = B->cur = lo == UINT64_MAX ? 0 : lo;
    for (size_t i = 0; i < s->nfront; i++)
        if (file_vertex(s, s->front[i]))
            return out_of_memory(msg);
    return next_frontier(s, msg);
}

/* push: after a restore the state is the checkpoint's dataset; its records
 * are copied into rec (checked: vertex v at position v, distances not
 * NaN and not negative), the frontier rebuilt from them, and the state
 * borrows rec again. */
static int push_adopt(sssp *s, char *msg)
{
    uint64_t n = s->g->n;
    size_t got = 0;
    const vrec *have = ember_array_data(s->state, &got);
    if (have == s->rec)
        return EMBER_OK;
    vrec *r = NULL; /* the restored records, collected if not an array */
    int rc = have ? EMBER_OK : ember_collect_alloc(s->state, (void **)&r, &got, msg);
    if (rc)
        return rc;
    if (r)
        have = r;
    if (got != n)
        rc = mismatch(msg, "the state is not the graph's vertices");
    for (size_t i = 0; !rc && i < got; i++)
        if (have[i].vertex != (int64_t)i || !(have[i].dist >= 0) || !(have[i].prev >= 0))
            rc = mismatch(msg, "the state is not the graph's vertices in order");
    if (!rc) {
        memcpy(s->rec, have, n * sizeof *have);
        s->nfront = 0;
        for (uint64_t v = 0; v < n; v++)
            if (s->rec[v].dist < s->rec[v].prev)
                s->front[s->nfront++] = (uint32_t)v;
        if (s->B)
            rc = refile(s, msg);
    }
    ember_free(s->ctx, r);
    ember_ds *ds = NULL;
    if (!rc)
        rc = ember_from_array(&ds, s->ctx, &s->type, s->rec, n, s->parts, EMBER_BORROW,
                              msg);
    if (!rc) {
        ember_ds_set_name(ds, "dist");
        ember_ds_free(&s->state);
        s->state = ds;
    }
    return rc;
}

/* A push round: every frontier vertex u (push: the vertices whose
 * distance fell last round, dist < prev; delta: those of them in the
 * earliest bucket) takes prev = dist, then sends dist(u) + w along its
 * out-edges, each target taking the least that reaches it (an atomic
 * minimum: the same for any order); the targets it lowered get prev =
 * +inf, and form push's next frontier, or are filed in their buckets.
 * The records are those of a pull round but for prev, which here only
 * tells active (below dist) from not. Any order of sending reaches the
 * same least distances, so delta's distances are pull's. */
static int push_round(sssp *s, uint64_t *active, char *msg)
{
    int rc = push_adopt(s, msg);
    if (rc)
        return rc;
    const uint64_t *off = s->g->offsets;
    const uint32_t *adj = s->g->adj;
    const double *w = s->g->weights;
    vrec *R = s->rec;
    int64_t nf = (int64_t)s->nfront;
    size_t nn = 0;
    /* a small frontier on the calling thread: a team's barriers would cost
     * more than its edges (a grid's rounds, thousands of them) */
    int T = nf >= 1024 ? ember_ctx_threads(s->ctx) : 1;
#pragma omp parallel num_threads(T)
    {
#pragma omp for schedule(static)
        for (int64_t i = 0; i < nf; i++) {
            uint32_t u = s->front[i];
            s->took[i] = R[u].dist;
            R[u].prev = R[u].dist;
        }
#pragma omp for schedule(dynamic, 64)
        for (int64_t i = 0; i < nf; i++) {
            uint32_t u = s->front[i];
            for (uint64_t e = off[u]; e < off[u + 1]; e++)
                if (lower(&R[adj[e]].dist, s->took[i] + w[e]) &&
                    !__atomic_exchange_n(&s->queued[adj[e]], 1, __ATOMIC_RELAXED))
                    s->next[__atomic_fetch_add(&nn, 1, __ATOMIC_RELAXED)] = adj[e];
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < (int64_t)__atomic_load_n(&nn, __ATOMIC_RELAXED); i++) {
            R[s->next[i]].prev = INFINITY;
            s->queued[s->next[i]] = 0;
        }
    }
    if (s->B) {
        for (size_t i = 0; i < nn; i++)
            if (file_vertex(s, s->next[i]))
                return out_of_memory(msg);
        rc = next_frontier(s, msg);
    } else {
        uint32_t *t = s->front;
        s->front = s->next;
        s->next = t;
        s->nfront = nn;
    }
    *active = s->nfront;
    return rc;
}

/* A state resumed by force must be distances from this --source: another
 * source's (the source not at 0) could only fall from there, and gave
 * wrong distances with exit 0. */
static int check_forced_source(sssp *s, char *msg)
{
    vrec *r = NULL;
    size_t n = 0;
    int rc = ember_collect_alloc(s->state, (void **)&r, &n, msg);
    for (size_t i = 0; !rc && i < n; i++)
        if (r[i].vertex == s->source && r[i].dist != 0) {
            snprintf(msg, EMBER_MSG_SIZE, "resumed %s: the checkpoint's distances "
                     "are not from --source %" PRId64 " (its distance there is %g): "
                     "distances from another source cannot be continued; start over "
                     "with --resume never",
                     ember_cli_forced_how(ember_loop_forced(s->loop, NULL, 0)), source,
                     r[i].dist);
            rc = EMBER_EMISMATCH;
        }
    ember_free(s->ctx, r);
    return rc;
}

static int step(uint64_t iteration, double *value, void *arg, char *msg)
{
    (void)iteration;
    sssp *s = arg;
    uint64_t active = 0;
    if (!s->first_done) {
        s->first_done = 1;
        int rc = ember_loop_forced(s->loop, NULL, 0) ? check_forced_source(s, msg) : 0;
        if (rc)
            return rc;
    }
    int rc = plan == PLAN_PULL      ? pull_round(s, &active, msg)
             : plan == PLAN_SHUFFLE ? shuffle_round(s, &active, msg)
                                    : push_round(s, &active, msg);
    if (rc)
        return rc;
    *value = (double)active;
    return active == 0 ? EMBER_DONE : EMBER_OK;
}

/* Shuffle partitions from the graph's size, never from the thread count. */
static size_t default_parts(const ember_graph *g)
{
    uint64_t p = (g->n + g->m / 8) / 32768;
    return p < 1 ? 1 : p > 64 ? 64 : (size_t)p;
}

/* The internal number of a vertex id (the degree order undone). */
static int64_t internal_vertex(const ember_graph *g, uint64_t label)
{
    for (uint64_t v = 0; g->perm && v < g->n; v++)
        if (g->perm[v] == label)
            return (int64_t)v;
    return (int64_t)label;
}

static void free_state(sssp *s)
{
    ember_ds_free(&s->state);
    free(s->rec);
    free(s->front);
    free(s->next);
    free(s->took);
    free(s->queued);
    for (int b = 0; s->B && b < WINDOW; b++)
        free(s->B->bin[b].v);
    if (s->B)
        free(s->B->far);
    free(s->B);
}

static double max_weight(const ember_graph *g)
{
    double most = 0;
    const double *w = g->weights;
    #pragma omp parallel for schedule(static) reduction(max : most) num_threads(ember_ctx_threads(g->ctx))
    for (uint64_t e = 0; e < g->m; e++)
        most = w[e] > most ? w[e] : most;
    return most;
}

/* The largest weight over the mean out-degree: Meyer and Sanders' width
 * for weights spread evenly up to the largest (a bucket's vertices then
 * reach about one vertex of their own bucket each). */
static double auto_delta(const ember_graph *g)
{
    return g->m ? heaviest * (double)g->n / (double)g->m : 1;
}

/* push, delta: the records by vertex (the source at 0, active), its
 * frontier, and the state borrowing the records. */
static int init_push(sssp *s, char *msg)
{
    uint64_t n = s->g->n, k = n ? n : 1;
    s->rec = malloc(k * sizeof *s->rec);
    s->front = malloc(k * sizeof *s->front);
    s->next = malloc(k * sizeof *s->next);
    s->took = malloc(k * sizeof *s->took);
    s->queued = calloc(k, 1);
    if (plan == PLAN_DELTA) {
        s->delta = delta > 0 ? delta : auto_delta(s->g);
        s->B = calloc(1, sizeof *s->B);
    }
    if (!s->rec || !s->front || !s->next || !s->took || !s->queued ||
        (plan == PLAN_DELTA && !s->B)) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " vertices", n);
        return EMBER_ENOMEM;
    }
    for (uint64_t v = 0; v < n; v++)
        s->rec[v] = (vrec){(int64_t)v, INFINITY, INFINITY};
    s->rec[s->source].dist = 0;
    s->front[0] = (uint32_t)s->source;
    s->nfront = 1;
    return ember_from_array(&s->state, s->ctx, &s->type, s->rec, n, s->parts, EMBER_BORROW,
                            msg);
}

/* A round's shuffle (the state and the messages, 2P partitions, into P)
 * keeps 8 bytes a pair of input and output partitions, which the library
 * refuses past the memory budget after the first round's work
 * (EMBER_EBUDGET, exit 1). Only --partitions makes P that large, so it is
 * refused first, as the bad argument it is (exit 2). */
static double shuffle_bytes(double parts)
{
    return 16 * parts * (parts + 1);
}

static int shuffle_fits(ember_ctx *ctx, size_t parts, char *msg)
{
    ember_stats st;
    ember_ctx_stats(ctx, &st);
    double budget = (double)st.memory_budget;
    if (shuffle_bytes((double)parts) <= budget)
        return EMBER_OK;
    /* the root of 16 p (p + 1) = budget, then its floor made exact */
    size_t most = (size_t)((sqrt(1 + budget / 4) - 1) / 2);
    while (shuffle_bytes((double)most + 1) <= budget)
        most++;
    while (most > 0 && shuffle_bytes((double)most) > budget)
        most--;
    /* in MB, with the decimals that tell the two apart */
    double need = shuffle_bytes((double)parts) / 1e6, have = budget / 1e6;
    int dec = 0;
    while (dec < 6 && round(need * pow(10, dec)) <= round(have * pow(10, dec)))
        dec++;
    snprintf(msg, EMBER_MSG_SIZE,
             "--partitions %zu: the shuffle plan keeps 16 bytes a pair of partitions a "
             "round (%.*f MB), more than the memory budget (%.*f MB); give at most %zu, "
             "or another --plan",
             parts, dec, need, dec, have, most);
    return EMBER_EINVAL;
}

static int init_state(sssp *s, ember_ctx *ctx, const ember_graph *g,
                      const ember_cli *cli, char *msg)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->g = g;
    s->source = internal_vertex(g, (uint64_t)source);
    s->relax.g = g;
    s->init.source = s->source;
    s->parts = cli->partitions ? cli->partitions : default_parts(g);
    ember_ds *ids = NULL;
    int rc = plan == PLAN_SHUFFLE ? shuffle_fits(ctx, s->parts, msg) : EMBER_OK;
    if (!rc)
        rc = vrec_type(&s->type, msg);
    if (!rc && (plan == PLAN_PUSH || plan == PLAN_DELTA))
        rc = init_push(s, msg);
    else if (!rc && plan == PLAN_PULL)
        rc = ember_range(&ids, ctx, 0, (int64_t)g->n, 1, s->parts, msg);
    else if (!rc)
        rc = ember_range(&ids, ctx, s->source, s->source + 1, 1, 1, msg);
    if (!rc && plan == PLAN_PULL)
        rc = ember_map(&s->state, ids, &s->type, seed_all, &s->init, sizeof s->init, msg);
    else if (!rc && plan == PLAN_SHUFFLE)
        rc = ember_map(&s->state, ids, &s->type, seed_source, NULL, 0, msg);
    ember_ds_free(&ids);
    if (!rc)
        ember_ds_set_name(s->state, "dist");
    return rc;
}

/* ---- output and verification --------------------------------------------------- */

/* The state's distances by vertex id into *out, inf where unreached. */
static int distances(double **out, uint64_t *reached, const sssp *s, char *msg)
{
    vrec *r = NULL;
    size_t n = 0;
    double *d = malloc((s->g->n ? s->g->n : 1) * sizeof *d);
    int rc = d ? ember_collect_alloc(s->state, (void **)&r, &n, msg) : EMBER_ENOMEM;
    /* every plan's state but shuffle's holds every vertex (a finished run's
     * state of another graph, under --force-resume, would not) */
    if (!rc && plan != PLAN_SHUFFLE && n != s->g->n)
        rc = mismatch(msg, "the state is not the graph's vertices");
    for (uint64_t v = 0; !rc && v < s->g->n; v++)
        d[v] = INFINITY;
    for (size_t i = 0; !rc && i < n; i++) {
        if (r[i].vertex < 0 || (uint64_t)r[i].vertex >= s->g->n) {
            snprintf(msg, EMBER_MSG_SIZE, "the state holds vertex %" PRId64
                     " of a graph of %" PRIu64, r[i].vertex, s->g->n);
            rc = EMBER_ELENGTH;
        } else
            d[ember_graph_label(s->g, (uint64_t)r[i].vertex)] = r[i].dist;
    }
    uint64_t k = 0; /* the pull plan's state holds unreached vertices too */
    for (uint64_t v = 0; !rc && v < s->g->n; v++)
        k += d[v] < INFINITY;
    ember_free(s->ctx, r);
    if (rc == EMBER_ENOMEM && !d)
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " distances", s->g->n);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    *reached = k;
    return EMBER_OK;
}

static int write_output(const ember_cli *cli, const ember_graph *g, const double *d,
                        uint64_t reached, char *msg)
{
    ember_h5_attr at[] = {
        {"source", EMBER_I64, 0, source, NULL},
        {"rounds", EMBER_I64, 0, (int64_t)cli->iterations_done, NULL},
        {"reached", EMBER_I64, 0, (int64_t)reached, NULL},
    };
    return ember_cli_write_vertex_values(cli, g, "distance", "distances", EMBER_F64,
                                         d, at, 3, msg);
}

/* Independent check: Dijkstra with a binary heap (lazy deletion; at most
 * one entry an edge plus the source), then every distance compared bit for
 * bit with ember's, d, by vertex id: how many differ into *wrong, how many
 * Dijkstra reached into *reached. -1 when out of memory. g holds
 * out-edges. */
static int check_dijkstra(const ember_graph *g, const double *d, uint64_t *wrong,
                          uint64_t *reached)
{
    assert(!(g->by_destination && g->directed));
    const int64_t src = internal_vertex(g, (uint64_t)source);
    uint64_t n = g->n;
    double *ref = malloc((n ? n : 1) * sizeof *ref);
    entry *h = malloc((g->m + 1) * sizeof *h);
    if (!ref || !h) {
        free(ref);
        free(h);
        return -1;
    }
    for (uint64_t v = 0; v < n; v++)
        ref[v] = INFINITY;
    size_t hn = 0;
    ref[src] = 0;
    heap_push(h, &hn, (entry){0, (uint32_t)src});
    while (hn) {
        entry x = heap_pop(h, &hn);
        if (x.d > ref[x.v])
            continue;
        for (uint64_t e = g->offsets[x.v]; e < g->offsets[x.v + 1]; e++) {
            double nd = x.d + g->weights[e];
            if (nd < ref[g->adj[e]]) {
                ref[g->adj[e]] = nd;
                heap_push(h, &hn, (entry){nd, g->adj[e]});
            }
        }
    }
    *wrong = *reached = 0;
    for (uint64_t v = 0; v < n; v++) {
        *reached += ref[v] < INFINITY;
        *wrong += memcmp(&ref[v], &d[ember_graph_label(g, v)], sizeof *d) != 0;
    }
    free(ref);
    free(h);
    return 0;
}

/* --verify: check_dijkstra, said on stdout. */
static int verify(const ember_graph *g, const double *d)
{
    uint64_t wrong, reached;
    if (check_dijkstra(g, d, &wrong, &reached)) {
        printf("Verification: FAIL (out of memory)\n");
        return 1;
    }
    printf("Verification: %s (Dijkstra: %" PRIu64 " of %" PRIu64 " vertices reached; %"
           PRIu64 " distances differ)\n", wrong ? "FAIL" : "PASS", reached, g->n, wrong);
    return wrong ? 1 : 0;
}

/* ---- main ----------------------------------------------------------------------------- */

/* Rows by destination for the pull plan (in-edges), by source for the
 * shuffle plan and the checker; undirected rows are both. */
static int load_graph(ember_graph **g, ember_ctx *ctx, const ember_cli *cli,
                      int by_destination, char *msg)
{
    int f = ember_graph_format_parse(format); /* resolved in main */
    ember_graph_opts go = {.format = (ember_graph_format)f,
                           .undirected = undirected, .weighted = 1,
                           .by_destination = by_destination && !undirected,
                           .degree_order = 1};
    int rc = ember_graph_load(g, ctx, ember_cli_input_load(cli, "input", cli->input), &go,
                              msg);
    /* A shortest path has at most n - 1 edges, so below max weight x
     * (n - 1) no distance can overflow to +inf, which would read as "not
     * reached"; past it (weights near 1e308 / n) the graph is refused. */
    double most = heaviest = rc ? 0 : max_weight(*g);
    if (!rc && !(most * (double)((*g)->n - 1) < DBL_MAX / 2)) {
        snprintf(msg, EMBER_MSG_SIZE, "%s: a weight of %g on %" PRIu64 " vertices: a "
                 "path's length could overflow double precision; scale the weights",
                 cli->input, most, (*g)->n);
        rc = EMBER_ERANGE;
    }
    if (!rc && (uint64_t)source >= (*g)->n) {
        snprintf(msg, EMBER_MSG_SIZE, "--source %" PRId64 ": %s has %" PRIu64
                 " vertices (0..%" PRIu64 ")", source, cli->input, (*g)->n, (*g)->n - 1);
        rc = EMBER_ERANGE;
    }
    return rc;
}

/* Distances continued by force from a run on another graph (or from a
 * checkpoint that carries such a run) are right only if no path of that
 * graph is shorter than this one's: distances only fall, so an edge removed
 * (or made heavier) since leaves some too small. A converged run that
 * carries a forced resume is therefore checked against Dijkstra before its
 * result goes out (on rank 0, which loads the out-edges for it when the
 * rows are in-edges; g is kept for the output). */
static int check_forced(const ember_cli *cli, int forced, ember_ctx *ctx,
                        const ember_graph *g, ember_graph **out_edges, const double *d,
                        char *msg)
{
    int rc = EMBER_OK;
    if (g->by_destination && g->directed &&
        (rc = load_graph(out_edges, ctx, cli, 0, msg)))
        return rc;
    uint64_t wrong, reached;
    if (check_dijkstra(*out_edges ? *out_edges : g, d, &wrong, &reached)) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory checking the distances of a forced "
                 "resume");
        return EMBER_ENOMEM;
    }
    if (!wrong)
        return EMBER_OK;
    snprintf(msg, EMBER_MSG_SIZE, "the distances resumed %s are not this graph's "
             "(%" PRIu64 " of %" PRIu64 " differ from Dijkstra's): they continued a run on "
             "another graph; start over with --resume never (or another --checkpoint-dir)",
             ember_cli_forced_how(forced), wrong, g->n);
    return EMBER_EMISMATCH;
}

/* What the options must say, checked in ember_cli_parse. */
static int check_args(ember_cli *cli)
{
    int rc = ember_cli_graph_args(cli, &format, 1);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if ((plan == PLAN_PUSH || plan == PLAN_DELTA) && cli->ranks > 1)
        return ember_cli_usage_error(cli, "--plan %s runs on one process (its frontier "
                                     "lowers any vertex's distance in place); under "
                                     "mpirun use pull or shuffle",
                                     plan == PLAN_PUSH ? "push" : "delta");
    if (delta > 0 && plan != PLAN_DELTA)
        return ember_cli_usage_error(cli, "--delta is the bucket width of --plan delta; "
                                     "add --plan delta, or leave --delta out");
    return EMBER_CLI_RUN;
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
    ember_graph *g = NULL, *out_edges = NULL;
    ember_loop *loop = NULL;
    uint64_t *vertex_ids = NULL;
    double *d = NULL;
    uint64_t reached = 0;
    sssp s;
    memset(&s, 0, sizeof s);
    int exit_extra = 0;
    double t0 = ember_cli_now();
    rc = ember_cli_ctx(&ctx, &cli, msg);
    if (!rc)
        rc = load_graph(&g, ctx, &cli, plan == PLAN_PULL, msg);
    cli.load_seconds = ember_cli_now() - t0;
    if (!rc)
        rc = init_state(&s, ctx, g, &cli, msg);
    if (!rc)
        rc = ember_cli_loop(&loop, ctx, &cli, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "dist", &s.state);
    if (!rc) /* a checkpoint's values are in the internal order: their ids */
        rc = ember_cli_note_vertex_ids(&cli, loop, g, &vertex_ids);
    s.loop = loop;
    if (!rc)
        rc = ember_cli_iterate(&cli, loop, step, &s, msg);
    /* a forced resume at its --iterations runs no step, which checks */
    if (!rc && !s.first_done && ember_loop_forced(loop, NULL, 0))
        rc = check_forced_source(&s, msg);
    if (!rc)
        rc = distances(&d, &reached, &s, msg);
    /* a file of ember 0.1.0, which may have been forced (3), is checked
     * where the graph in memory has its out-edges: not at the cost of
     * loading it again */
    int forced = ember_loop_forced(loop, NULL, 0);
    if (!rc && cli.converged && cli.rank == 0 && forced &&
        (forced != 3 || !(g->by_destination && g->directed)))
        rc = check_forced(&cli, forced, ctx, g, &out_edges, d, msg);
    if (!rc && cli.output && cli.rank == 0) /* every rank holds d; rank 0 writes */
        rc = write_output(&cli, g, d, reached, msg);
    if (!rc) /* the result on stdout, the run's timings on stderr */
        printf("ember-sssp: %" PRIu64 " vertices, %" PRIu64 " %s; %" PRIu64
               " reached from %" PRId64 " in %" PRIu64 " rounds%s\n", g->n, g->m,
               g->directed ? "edges" : "directed edges (each input edge both ways)", reached,
               source, cli.iterations_done,
               cli.converged ? "" : " (NOT converged: --iterations ran out)");
    fflush(stdout); /* the result before the diagnostics, in a 2>&1 log */
    rc = ember_cli_iterate_end(&cli, loop, rc, msg); /* the final checkpoint */
    if (!rc && !cli.quiet)
        fprintf(stderr, "ember-sssp: load %.3f s, compute %.3f s, checkpoints %.3f s "
                "(files written in %.3f s)\n", cli.load_seconds, cli.compute_seconds,
                cli.checkpoint_seconds_lost, cli.checkpoint_write_seconds);
    if (cli.rank != 0)
        cli.verify = 0; /* rank 0 checks */
    if (!rc && cli.verify && g->by_destination && g->directed && !out_edges) {
        ember_graph_free(&g); /* the checker walks out-edges */
        rc = load_graph(&out_edges, ctx, &cli, 0, msg);
    }
    if (!rc && cli.verify && (exit_extra = verify(out_edges ? out_edges : g, d)))
        ember_cli_settle(exit_extra);
    rc = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    free(d);
    ember_loop_destroy(&loop);
    free(vertex_ids);
    free_state(&s);
    ember_graph_free(&g);
    ember_graph_free(&out_edges);
    ember_ctx_destroy(&ctx);
    return rc ? rc : exit_extra;
}
