/* graph.c: the CSR builder and the graph API (ember/graph.h).
 *
 * The builder turns blocks of edges into a CSR in two passes: count the
 * row lengths, then scatter each edge to the next slot of its row, each
 * thread owning a range of rows (no atomics). Every row is then sorted and
 * duplicates removed: the result depends only on the set of edges, never
 * on the thread count or the block order.
 * Renumbering by degree happens between the passes, so it costs no second
 * copy of the edges. A source whose blocks any thread can fill (a text
 * file) is built in lanes instead: each thread counts, then scatters, the
 * blocks it parsed itself into its own stretch of every row (see "lanes").
 * Readers live in graph_text.c and graph_h5.c; this file also makes
 * vertex-range partitioned datasets over vertex arrays.
 */
#include "graph_internal.h"

#include <omp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double ember__graph_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- limits ----------------------------------------------------------------- */

#define BYTES_PER_VERTEX 48 /* offsets, 3 vectors of f64, degrees, perm */

uint64_t ember__graph_max_vertices(const ember_graph_opts *opts)
{
    uint64_t limit = UINT64_C(1) << 32;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0) {
        uint64_t mem = (uint64_t)pages * (uint64_t)psize;
        if (mem / BYTES_PER_VERTEX < limit)
            limit = mem / BYTES_PER_VERTEX;
    }
    if (opts && opts->max_vertices && opts->max_vertices < limit)
        limit = opts->max_vertices;
    return limit;
}

int ember__graph_shrank(char *msg, const char *file)
{
    return ember__err(msg, EMBER_ECORRUPT, "%s: the file shrank while it was read "
                      "(written by another process?); run again once it stays put",
                      file);
}

int ember__graph_too_big(char *msg, const char *where, uint64_t n, uint64_t limit)
{
    double need = (double)n * BYTES_PER_VERTEX / (1u << 30);
    return ember__err(msg, EMBER_ERANGE,
                      "%s: %llu vertices (about %.1f GiB of vertex arrays) are more "
                      "than the limit of %llu vertices (2^32 or this machine's memory)",
                      where, (unsigned long long)n, need, (unsigned long long)limit);
}

/* ---- formats ---------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* 1 when the regular file at path holds HDF5's signature where HDF5
 * looks for it: at byte 0, 512, 1024, 2048, ... (ember's files: 512, past
 * the checksum header's user block). No edge list holds it: it has a
 * byte above 127 and a \r that no \n follows. */
static int looks_like_hdf5(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) /* a FIFO: not opened */
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int yes = 0;
    for (off_t at = 0; fd >= 0 && !yes && at + 8 <= st.st_size; at = at ? at * 2 : 512) {
        unsigned char b[8];
        yes = pread(fd, b, 8, at) == 8 && memcmp(b, ember__hdf5_sig, 8) == 0;
    }
    if (fd >= 0)
        close(fd);
    return yes;
}

ember_graph_format ember_graph_format_of(const char *path)
{
    if (!path)
        return EMBER_GRAPH_EDGELIST;
    if (ends_with(path, ".mtx"))
        return EMBER_GRAPH_MTX;
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5"))
        return EMBER_GRAPH_H5;
    /* `ember-convert in.el g` writes HDF5: read as an edge list, it was
     * "g:1: a NUL byte" */
    return looks_like_hdf5(path) ? EMBER_GRAPH_H5 : EMBER_GRAPH_EDGELIST;
}

int ember_graph_format_parse(const char *name)
{
    static const struct {
        const char *name;
        ember_graph_format f;
    } names[] = {{"auto", EMBER_GRAPH_AUTO}, {"el", EMBER_GRAPH_EDGELIST},
                 {"edgelist", EMBER_GRAPH_EDGELIST}, {"txt", EMBER_GRAPH_EDGELIST},
                 {"mtx", EMBER_GRAPH_MTX}, {"h5", EMBER_GRAPH_H5},
                 {"hdf5", EMBER_GRAPH_H5}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0)
            return (int)names[i].f;
    return -1;
}

/* ---- the builder ------------------------------------------------------------- */

#define MAX_OWNERS 16 /* threads that build a CSR (see count_block) */

typedef struct {
    ember_graph *g;
    const ember_graph_opts *o;
    const ember__esource *src;
    uint64_t cap;    /* vertices cnt and outc have room for */
    uint64_t *cnt;   /* n + 1: row lengths at [v + 1], then row cursors */
    uint32_t *outc;  /* out-degrees (by_destination) */
    uint32_t *inv;   /* degree_order: vertex of each label */
    uint64_t own[MAX_OWNERS + 1]; /* pass 2: the rows of each owner */
    uint64_t end[MAX_OWNERS];     /* pass 2: where each owner's rows end */
} build;

/* Both passes split the work by ownership rather than atomics: each
 * thread owns a range of rows, reads the whole block and handles only the
 * edges of its rows. Reading a block T times is cheap next to T-way
 * contended atomic increments on random rows, up to a modest T (beyond
 * MAX_OWNERS threads the extra threads sit out the build). A row is then
 * written by one thread in block order, so even the unsorted rows are the
 * same for any thread count. */
static int owner_count(const build *b)
{
    int t = b->g->ctx->threads;
    return t < 1 ? 1 : t > MAX_OWNERS ? MAX_OWNERS : t;
}

/* Pass 1 over blocks: row lengths and out-degrees, in labels; owner k of
 * T counts rows (and out-degrees) [n k / T, n (k + 1) / T). */
static int count_blocks(build *b, const ember__eblock *blocks, size_t nb)
{
    const uint64_t n = b->g->n;
    const int bydst = b->o->by_destination, undir = b->o->undirected, T = owner_count(b);
    int bad = 0;
    #pragma omp parallel num_threads(T) reduction(|:bad)
    for (int k = omp_get_thread_num(); k < T; k += omp_get_num_threads()) {
        const uint64_t lo = n * (uint64_t)k / (uint64_t)T;
        const uint64_t span = n * (uint64_t)(k + 1) / (uint64_t)T - lo;
        for (size_t j = 0; j < nb; j++) {
            const ember__eblock *e = &blocks[j];
            for (size_t i = 0; i < e->n; i++) {
                uint32_t s = e->src[i * e->stride], d = e->dst[i * e->stride];
                if (s >= n || d >= n) {
                    bad = 1;
                    continue;
                }
                uint32_t key = bydst ? d : s, other = bydst ? s : d;
                if (key - lo < span)
                    b->cnt[key + 1]++;
                if (undir && other - lo < span)
                    b->cnt[other + 1]++;
                if (b->outc && s - lo < span)
                    b->outc[s]++;
            }
        }
    }
    return bad;
}

/* Owner ranges for pass 2, balanced by edges: cnt holds row starts. */
static void split_rows(build *b)
{
    const int T = owner_count(b);
    const uint64_t n = b->g->n, m = b->g->m;
    b->own[0] = 0;
    for (int k = 1; k < T; k++) {
        uint64_t target = (uint64_t)(((unsigned __int128)m * (uint64_t)k) / (uint64_t)T);
        uint64_t lo = b->own[k - 1], hi = n;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (b->cnt[mid] < target)
                lo = mid + 1;
            else
                hi = mid;
        }
        b->own[k] = lo;
    }
    b->own[T] = n;
    for (int k = 0; k < T; k++)
        b->end[k] = b->own[k + 1] < n ? b->cnt[b->own[k + 1]] : m;
}

/* Pass 2 over blocks: each edge to the next slot of its row (in vertices:
 * renumbered when degree-ordered). */
static int scatter_blocks(build *b, const ember__eblock *blocks, size_t nb)
{
    const int bydst = b->o->by_destination, undir = b->o->undirected, T = owner_count(b);
    const uint32_t *inv = b->inv;
    const uint64_t n = b->g->n;
    uint32_t *adj = b->g->adj;
    double *wt = b->g->weights;
    uint64_t *cur = b->cnt;
    int bad = 0;
    #pragma omp parallel num_threads(T) reduction(|:bad)
    for (int k = omp_get_thread_num(); k < T; k += omp_get_num_threads()) {
        /* end: a block that differs from what pass 1 counted (a file
         * changed between the passes) cannot write past this owner's rows */
        const uint64_t lo = b->own[k], span = b->own[k + 1] - lo, end = b->end[k];
        for (size_t j = 0; j < nb; j++) {
            const ember__eblock *e = &blocks[j];
            for (size_t i = 0; i < e->n; i++) {
                uint32_t s = e->src[i * e->stride], d = e->dst[i * e->stride];
                if (s >= n || d >= n) {
                    bad = 1;
                    continue;
                }
                if (inv) {
                    s = inv[s];
                    d = inv[d];
                }
                uint32_t key = bydst ? d : s, other = bydst ? s : d;
                if (key - lo < span) {
                    if (cur[key] >= end) {
                        bad = 1;
                        continue;
                    }
                    if (wt)
                        wt[cur[key]] = e->w[i];
                    adj[cur[key]++] = other;
                }
                if (undir && other - lo < span) {
                    if (cur[other] >= end) {
                        bad = 1;
                        continue;
                    }
                    if (wt)
                        wt[cur[other]] = e->w[i];
                    adj[cur[other]++] = key;
                }
            }
        }
    }
    return bad;
}

/* Room for n vertices in the pass-1 counts (a source that learns its
 * vertex count while it is read); the new rows and degrees are 0. */
static int grow_counts(build *b, uint64_t n)
{
    ember_ctx *ctx = b->g->ctx;
    if (n > b->cap) {
        uint64_t cap = b->cap + b->cap / 2 > n ? b->cap + b->cap / 2 : n;
        uint64_t *c = ember__realloc(ctx, b->cnt, ember__mul(cap + 1, sizeof *c));
        if (!c)
            return EMBER_ENOMEM;
        b->cnt = c;
        memset(c + b->cap + 1, 0, (cap - b->cap) * sizeof *c);
        if (b->outc) {
            uint32_t *o = ember__realloc(ctx, b->outc, ember__mul(cap, sizeof *o));
            if (!o)
                return EMBER_ENOMEM;
            b->outc = o;
            memset(o + b->cap, 0, (cap - b->cap) * sizeof *o);
        }
        b->cap = cap;
    }
    if (n > b->g->n)
        b->g->n = n;
    return EMBER_OK;
}

/* One pass, a group of blocks at a time: the blocks of a group are all
 * fetched first and handled in one parallel region, with no barrier
 * between blocks (resident sources are one group). */
static int run_pass(build *b, int pass, char *msg)
{
    const ember__esource *src = b->src;
    ember_ctx *ctx = b->g->ctx;
    size_t per = src->group ? src->group : 1;
    ember__eblock *e = ember__calloc(ctx, per, sizeof *e);
    if (!e)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = EMBER_OK;
    for (size_t i = 0; !rc && i < src->nblocks; i += per) {
        size_t nb = per < src->nblocks - i ? per : src->nblocks - i;
        for (size_t j = 0; !rc && j < nb; j++)
            rc = src->get(src->state, i + j, &e[j], msg);
        if (!rc && pass == 1 && src->vertices &&
            grow_counts(b, src->vertices(src->state)))
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory for the vertex counts");
        if (!rc && pass == 1 && count_blocks(b, e, nb))
            rc = ember__err(msg, EMBER_ERANGE,
                            "edge endpoint out of range: the graph has %llu vertices",
                            (unsigned long long)b->g->n);
        if (!rc && pass == 2 && scatter_blocks(b, e, nb))
            rc = ember__err(msg, EMBER_ECORRUPT,
                            "the edges differ from those counted a pass earlier "
                            "(did the input change while it was read?)");
    }
    ember__free(ctx, e);
    return rc;
}

/* ---- lanes: a source whose blocks any thread fills (text) ----------------------
 *
 * The blocks are cut into L contiguous lanes, one thread a lane, in both
 * passes. Pass 1 counts each block on the thread that parsed it, into the
 * lane's own row lengths; pass 2 gives each lane its own stretch of every
 * row (after the stretches of the lanes before it) and scatters each block
 * there, again on the thread that parsed it. So no thread waits for
 * another between blocks and no edge is read twice; the order inside a
 * row depends on nothing but the lane count, and the rows are sorted
 * afterwards anyway, so the graph is the same for any thread count. */

typedef struct {
    uint32_t *cnt;   /* pass 1: row lengths by label (room for cap) */
    uint32_t *outc;  /* pass 1: out-degrees by label (directed by destination) */
    uint64_t cap;
    uint32_t *cur;   /* pass 2: the lane's next slot of each row, by label */
    int bad;         /* pass 2: an id or a slot out of range */
    int oom;
} lane;

static int lane_count_of(const build *b)
{
    int t = b->g->ctx->threads;
    return t < 1 ? 1 : t;
}

/* Whether the build takes lanes: a source with fill, few enough threads,
 * and lane counts and cursors that cannot overflow u32. */
static int use_lanes(const build *b)
{
    const ember__esource *src = b->src;
    return src->fill && src->done && lane_count_of(b) <= EMBER__LANES &&
           src->max_pairs < (UINT64_C(1) << 31);
}

/* Edges a batch of lane_count and lane_scatter. */
#define SCATTER_BATCH 64

static int lane_grow(lane *l, ember_ctx *ctx, uint64_t id, int outc)
{
    uint64_t cap = l->cap + l->cap / 2 > id + 1 ? l->cap + l->cap / 2 : id + 1;
    uint32_t *c = ember__realloc(ctx, l->cnt, ember__mul(cap, sizeof *c));
    if (!c)
        return EMBER_ENOMEM;
    l->cnt = c;
    memset(c + l->cap, 0, (cap - l->cap) * sizeof *c);
    if (outc) {
        uint32_t *o = ember__realloc(ctx, l->outc, ember__mul(cap, sizeof *o));
        if (!o)
            return EMBER_ENOMEM;
        l->outc = o;
        memset(o + l->cap, 0, (cap - l->cap) * sizeof *o);
    }
    l->cap = cap;
    return EMBER_OK;
}

/* One block into the lane's counts, a batch at a time as lane_scatter
 * goes (the counters' lines fetched ahead). */
static int lane_count(build *b, lane *l, const ember__eblock *e)
{
    const int bydst = b->o->by_destination, undir = b->o->undirected;
    const int outc = b->o->by_destination && !b->o->undirected;
    for (size_t i0 = 0; i0 < e->n; i0 += SCATTER_BATCH) {
        size_t end = e->n - i0 < SCATTER_BATCH ? i0 + (e->n - i0) : i0 + SCATTER_BATCH;
        uint32_t top = 0;
        for (size_t i = i0; i < end; i++) {
            uint32_t s = e->src[i * e->stride], d = e->dst[i * e->stride];
            top = s > top ? s : top;
            top = d > top ? d : top;
            if ((bydst ? d : s) < l->cap) /* none before the first growth */
                __builtin_prefetch(&l->cnt[bydst ? d : s], 1);
        }
        if (top >= l->cap && lane_grow(l, b->g->ctx, top, outc))
            return EMBER_ENOMEM;
        for (size_t i = i0; i < end; i++) {
            uint32_t s = e->src[i * e->stride], d = e->dst[i * e->stride];
            l->cnt[bydst ? d : s]++;
            if (undir)
                l->cnt[bydst ? s : d]++;
            if (outc)
                l->outc[s]++;
        }
    }
    return EMBER_OK;
}

static void lane_bounds(const build *b, int L, int j, size_t *lo, size_t *hi)
{
    size_t nb = b->src->nblocks;
    *lo = nb * (size_t)j / (size_t)L;
    *hi = nb * (size_t)(j + 1) / (size_t)L;
}

static void lane_scatter(build *b, lane *l, const ember__eblock *e);

/* Pass 1 (lane_count) or 2 (lane_scatter) over the lanes: lane j takes
 * its blocks in order, on its own thread, until one fails it. */
static int lanes_pass(build *b, lane *ln, int L, int pass, char *msg)
{
    const ember__esource *src = b->src;
    #pragma omp parallel for schedule(static, 1) num_threads(L)
    for (int j = 0; j < L; j++) {
        size_t lo, hi;
        lane_bounds(b, L, j, &lo, &hi);
        for (size_t i = lo; i < hi && !ln[j].oom && !ln[j].bad; i++) {
            ember__eblock e;
            if (src->fill(src->state, i, j, pass, &e))
                break;
            if (pass == 1)
                ln[j].oom = lane_count(b, &ln[j], &e) != EMBER_OK;
            else
                lane_scatter(b, &ln[j], &e);
        }
    }
    return src->done(src->state, pass, msg);
}

/* Pass 1 over lanes; then the lanes' counts summed into b->cnt and
 * b->outc (by label), once the source has settled g->n. */
static int lanes_count(build *b, lane *ln, int L, char *msg)
{
    int rc = lanes_pass(b, ln, L, 1, msg);
    for (int j = 0; !rc && j < L; j++)
        if (ln[j].oom)
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory for the vertex counts");
    return rc;
}

/* The lanes' counts (labels below each lane's cap) into b->cnt, b->outc. */
static void lanes_sum(build *b, const lane *ln, int L)
{
    const uint64_t n = b->g->n;
    #pragma omp parallel for schedule(static) num_threads(L)
    for (uint64_t v = 0; v < n; v++) {
        uint64_t c = 0, o = 0;
        for (int j = 0; j < L; j++) {
            if (v >= ln[j].cap)
                continue;
            c += ln[j].cnt[v];
            if (ln[j].outc)
                o += ln[j].outc[v];
        }
        b->cnt[v + 1] = c;
        if (b->outc)
            b->outc[v] = (uint32_t)o;
    }
}

/* Each lane's cursors, by label: row v's start plus what the lanes before
 * it hold of the row. b->cnt holds row starts by vertex; lane counts are
 * by label. (By label, the scatter finds a row's cursor without looking
 * its vertex up in inv: one random read an edge fewer.) */
static int lanes_cursors(build *b, lane *ln, int L)
{
    ember_ctx *ctx = b->g->ctx;
    const uint64_t n = b->g->n;
    for (int j = 0; j < L; j++)
        if (!(ln[j].cur = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *ln[j].cur))))
            return EMBER_ENOMEM;
    const uint32_t *inv = b->inv;
    #pragma omp parallel for schedule(static) num_threads(L)
    for (uint64_t l = 0; l < n; l++) {
        uint64_t v = inv ? inv[l] : l, at = b->cnt[v];
        for (int j = 0; j < L; j++) {
            ln[j].cur[l] = (uint32_t)at;
            at += l < ln[j].cap ? ln[j].cnt[l] : 0;
        }
    }
    return EMBER_OK;
}

/* One block to the lane's stretches of its rows (each row's cursor found
 * by label, its slots and values in vertices), a batch of edges at a time
 * in three steps: their rows (and the cursors' lines fetched ahead), their
 * slots (the edge array's lines fetched ahead), then the writes. The
 * misses of a batch overlap instead of each write waiting for its own. */
static void lane_scatter(build *b, lane *l, const ember__eblock *e)
{
    const int bydst = b->o->by_destination, undir = b->o->undirected;
    const uint32_t *inv = b->inv;
    const uint64_t n = b->g->n, m = b->g->m;
    uint32_t *adj = b->g->adj;
    double *wt = b->g->weights;
    uint32_t *cur = l->cur;
    uint32_t row[2 * SCATTER_BATCH], val[2 * SCATTER_BATCH];
    uint64_t at[2 * SCATTER_BATCH];
    size_t edge[2 * SCATTER_BATCH];
    for (size_t i0 = 0; i0 < e->n; i0 += SCATTER_BATCH) {
        size_t end = e->n - i0 < SCATTER_BATCH ? e->n - i0 : SCATTER_BATCH, k = 0;
        for (size_t i = i0; i < i0 + end; i++) {
            uint32_t s = e->src[i * e->stride], d = e->dst[i * e->stride];
            if (s >= n || d >= n) {
                l->bad = 1;
                return;
            }
            /* rows by label (the cursors'), values by vertex */
            uint32_t r = bydst ? d : s, v = bydst ? s : d;
            row[k] = r, val[k] = inv ? inv[v] : v, edge[k] = i;
            __builtin_prefetch(&cur[r], 1);
            k++;
            if (undir) {
                row[k] = v, val[k] = inv ? inv[r] : r, edge[k] = i;
                __builtin_prefetch(&cur[v], 1);
                k++;
            }
        }
        for (size_t j = 0; j < k; j++) {
            at[j] = cur[row[j]]++;
            if (at[j] >= m) {
                l->bad = 1;
                return;
            }
            __builtin_prefetch(&adj[at[j]], 1);
        }
        for (size_t j = 0; j < k; j++) {
            adj[at[j]] = val[j];
            if (wt)
                wt[at[j]] = e->w[edge[j]];
        }
    }
}

/* Whether every lane filled exactly its stretch of every row: each ends
 * where the next one starts, the last where the row ends. A block that
 * changed between the passes (and slipped past the source's check) is
 * caught here: a lane that wrote elsewhere cannot end exactly there. */
static int lanes_exact(const build *b, const lane *ln, int L)
{
    const uint64_t n = b->g->n;
    const uint32_t *inv = b->inv;
    int bad = 0;
    #pragma omp parallel for schedule(static) num_threads(L) reduction(|:bad)
    for (uint64_t l = 0; l < n; l++) {
        uint64_t v = inv ? inv[l] : l, at = b->cnt[v];
        for (int j = 0; j < L; j++) {
            at += l < ln[j].cap ? ln[j].cnt[l] : 0;
            bad |= ln[j].cur[l] != at;
        }
    }
    return bad;
}

static int lanes_scatter(build *b, lane *ln, int L, char *msg)
{
    int rc = lanes_pass(b, ln, L, 2, msg), bad = 0;
    for (int j = 0; j < L; j++)
        bad |= ln[j].bad;
    if (!rc && (bad || lanes_exact(b, ln, L)))
        rc = ember__err(msg, EMBER_ECORRUPT, "the edges differ from those counted a pass "
                        "earlier (did the input change while it was read?)");
    return rc;
}

static void lanes_free(ember_ctx *ctx, lane *ln, int L)
{
    for (int j = 0; ln && j < L; j++) {
        ember__free(ctx, ln[j].cnt);
        ember__free(ctx, ln[j].outc);
        ember__free(ctx, ln[j].cur);
    }
}

/* Vertices by descending degree, ties by ascending label: a stable counting
 * sort, O(n + max degree). Fills g->perm and b->inv. */
static int degree_order(build *b, const uint32_t *deg, const uint64_t *rowdeg)
{
    ember_ctx *ctx = b->g->ctx;
    const uint64_t n = b->g->n;
    uint64_t maxd = 0;
    for (uint64_t v = 0; v < n; v++) {
        uint64_t d = deg ? deg[v] : rowdeg[v + 1];
        if (d > maxd)
            maxd = d;
    }
    uint64_t *start = ember__calloc(ctx, maxd + 2, sizeof *start);
    b->g->perm = ember__malloc(ctx, ember__mul(n, sizeof *b->g->perm));
    b->inv = ember__malloc(ctx, ember__mul(n, sizeof *b->inv));
    if (!start || !b->g->perm || !b->inv) {
        ember__free(ctx, start);
        return EMBER_ENOMEM;
    }
    for (uint64_t v = 0; v < n; v++) /* bucket maxd - d: descending */
        start[maxd - (deg ? deg[v] : rowdeg[v + 1]) + 1]++;
    for (uint64_t k = 0; k <= maxd; k++)
        start[k + 1] += start[k];
    for (uint64_t v = 0; v < n; v++) {
        uint64_t pos = start[maxd - (deg ? deg[v] : rowdeg[v + 1])]++;
        b->g->perm[pos] = (uint32_t)v;
        b->inv[v] = (uint32_t)pos;
    }
    ember__free(ctx, start);
    return EMBER_OK;
}

/* Row lengths and out-degrees from labels to vertices. */
static int permute_counts(build *b)
{
    ember_ctx *ctx = b->g->ctx;
    const uint64_t n = b->g->n;
    uint64_t *c = ember__calloc(ctx, n + 1, sizeof *c);
    if (!c)
        return EMBER_ENOMEM;
    for (uint64_t l = 0; l < n; l++)
        c[b->inv[l] + 1] = b->cnt[l + 1];
    ember__free(ctx, b->cnt);
    b->cnt = c;
    if (b->outc) {
        uint32_t *o = ember__malloc(ctx, ember__mul(n, sizeof *o));
        if (!o)
            return EMBER_ENOMEM;
        for (uint64_t l = 0; l < n; l++)
            o[b->inv[l]] = b->outc[l];
        ember__free(ctx, b->outc);
        b->outc = o;
    }
    return EMBER_OK;
}

/* LSD radix sort of a row longer than insertion sort likes, with its
 * weights w (NULL when unweighted) moving with their targets; tmp and wtmp
 * have room for len entries; entries have `bits` bits. The digit is about
 * log2(len) bits wide (at most 11): a pass costs its buckets plus twice
 * the row, so a row of a hundred entries takes three passes of 7 bits
 * rather than two of 11 whose 2048 buckets outweigh it. */
static void radix_row(uint32_t *r, double *w, uint32_t *tmp, double *wtmp,
                      uint64_t len, int bits)
{
    uint32_t count[2048];
    int width = 4;
    while (width < 11 && (UINT64_C(1) << (width + 1)) <= len)
        width++;
    int passes = (bits + width - 1) / width;
    width = (bits + passes - 1) / passes;
    const uint32_t buckets = UINT32_C(1) << width, mask = buckets - 1;
    uint32_t *from = r, *to = tmp;
    double *wfrom = w, *wto = wtmp;
    for (int shift = 0; shift < bits; shift += width) {
        memset(count, 0, buckets * sizeof *count);
        for (uint64_t i = 0; i < len; i++)
            count[(from[i] >> shift) & mask]++;
        uint32_t sum = 0;
        for (uint32_t d = 0; d < buckets; d++) {
            uint32_t k = count[d];
            count[d] = sum;
            sum += k;
        }
        for (uint64_t i = 0; i < len; i++) {
            uint32_t at = count[(from[i] >> shift) & mask]++;
            to[at] = from[i];
            if (w)
                wto[at] = wfrom[i];
        }
        uint32_t *t = from;
        from = to;
        to = t;
        double *wt = wfrom;
        wfrom = wto;
        wto = wt;
    }
    if (from != r)
        ember__copy(r, from, len * sizeof *r);
    if (w && wfrom != w)
        ember__copy(w, wfrom, len * sizeof *w);
}

/* Insertion sort of a short row, with its weights w (or NULL). */
static void insertion_row(uint32_t *r, double *w, uint64_t len)
{
    for (uint64_t i = 1; i < len; i++) {
        uint32_t x = r[i];
        double y = w ? w[i] : 0;
        uint64_t j = i;
        for (; j > 0 && r[j - 1] > x; j--) {
            r[j] = r[j - 1];
            if (w)
                w[j] = w[j - 1];
        }
        r[j] = x;
        if (w)
            w[j] = y;
    }
}

static int row_sorted(const uint32_t *r, uint64_t len)
{
    for (uint64_t i = 1; i < len; i++)
        if (r[i - 1] > r[i])
            return 0;
    return 1;
}

/* Sorts row r (with its weights w, or NULL) with tmp room for len entries
 * and, weighted, 8-aligned weights after them (NULL when the row is
 * short). */
static void sort_row(uint32_t *r, double *w, uint64_t l, uint32_t *tmp, int bits)
{
    if (row_sorted(r, l))
        return; /* common: rows from a sorted CSR arrive in order */
    if (l > 64 && tmp)
        radix_row(r, w, tmp, w ? (double *)(tmp + l + (l & 1)) : NULL, l, bits);
    else
        insertion_row(r, w, l);
}

/* Sorts every row and drops duplicates (of weighted duplicates the
 * lightest stays, whatever their order); returns 1 when any were dropped,
 * -1 when out of memory. len gets each row's new length. */
static int sort_rows(ember_graph *g, uint32_t *len)
{
    int dups = 0, oom = 0;
    uint64_t longest = 0;
    int bits = 1;
    while (bits < 32 && (UINT64_C(1) << bits) < g->n)
        bits++;
    for (uint64_t v = 0; v < g->n; v++)
        if (g->offsets[v + 1] - g->offsets[v] > longest)
            longest = g->offsets[v + 1] - g->offsets[v];
    #pragma omp parallel num_threads(g->ctx->threads) reduction(|:dups, oom)
    {
        /* room for the targets and, weighted, 8-aligned weights after them */
        size_t room = g->weights ? (longest + 1) * 4 + longest * 8 : longest * 4;
        uint32_t *tmp = longest > 64 ? ember__malloc(g->ctx, room) : NULL;
        oom = longest > 64 && !tmp;
        #pragma omp for schedule(dynamic, 1024)
        for (uint64_t v = 0; v < g->n; v++) {
            uint32_t *r = g->adj + g->offsets[v];
            double *w = g->weights ? g->weights + g->offsets[v] : NULL;
            uint64_t l = g->offsets[v + 1] - g->offsets[v], k = 0;
            sort_row(r, w, l, tmp, bits);
            for (uint64_t i = 0; i < l; i++) {
                if (k > 0 && r[i] == r[k - 1]) {
                    if (w && w[i] < w[k - 1])
                        w[k - 1] = w[i];
                    continue;
                }
                if (w)
                    w[k] = w[i];
                r[k++] = r[i];
            }
            len[v] = (uint32_t)k;
            dups |= k != l;
        }
        ember__free(g->ctx, tmp);
    }
    return oom ? -1 : dups;
}

/* Moves rows left over the removed duplicates (rows only move down, so a
 * serial pass in order is safe). */
static void compact_rows(ember_graph *g, const uint32_t *len)
{
    uint64_t at = 0;
    for (uint64_t v = 0; v < g->n; v++) {
        uint64_t from = g->offsets[v];
        if (at != from)
            memmove(g->adj + at, g->adj + from, len[v] * sizeof *g->adj);
        if (at != from && g->weights)
            memmove(g->weights + at, g->weights + from, len[v] * sizeof *g->weights);
        g->offsets[v] = at;
        at += len[v];
    }
    g->offsets[g->n] = at;
    g->m = at;
}

/* An array read once, in any order, whose pages are handed back to the
 * system as soon as every byte of them has been read: a copy of it in
 * another order then holds little more than one array at a time. Only
 * whole pages inside the array are tracked; giving one back is
 * madvise(MADV_DONTNEED), a hint whose failure costs nothing but memory
 * (the array is freed, unread, right after). */
typedef struct {
    char *base;        /* the array */
    uintptr_t first;   /* the first whole page, as an address */
    size_t pages, page;
    uint32_t *left;    /* bytes of each tracked page not yet read */
} drain;

static int drain_init(drain *d, ember_ctx *ctx, void *base, size_t bytes, size_t used)
{
    d->page = (size_t)sysconf(_SC_PAGESIZE);
    d->base = base;
    d->first = ((uintptr_t)base + d->page - 1) / d->page * d->page;
    uintptr_t end = ((uintptr_t)base + bytes) / d->page * d->page;
    d->pages = end > d->first ? (size_t)(end - d->first) / d->page : 0;
    d->left = ember__malloc(ctx, ember__mul(d->pages ? d->pages : 1, sizeof *d->left));
    if (!d->left)
        return EMBER_ENOMEM;
    uintptr_t live = (uintptr_t)base + used; /* bytes past it are never read */
    for (size_t k = 0; k < d->pages; k++) {
        uintptr_t a = d->first + k * d->page, z = a + d->page;
        d->left[k] = (uint32_t)(live <= a ? 0 : live >= z ? d->page : live - a);
    }
    for (size_t k = 0; k < d->pages; k++)
        if (!d->left[k])
            (void)madvise((void *)(d->first + k * d->page), d->page, MADV_DONTNEED);
    return EMBER_OK;
}

/* Bytes [lo, hi) of the array have been read (each byte once, any thread). */
static void drain_read(drain *d, size_t lo, size_t hi)
{
    uintptr_t a = (uintptr_t)d->base + lo, z = (uintptr_t)d->base + hi;
    if (a < d->first)
        a = d->first;
    while (a < z && (a - d->first) / d->page < d->pages) {
        size_t k = (a - d->first) / d->page;
        uintptr_t pz = d->first + (k + 1) * d->page, b = z < pz ? z : pz;
        uint32_t was = __atomic_fetch_sub(&d->left[k], (uint32_t)(b - a), __ATOMIC_RELAXED);
        if (was == b - a)
            (void)madvise((void *)(d->first + k * d->page), d->page, MADV_DONTNEED);
        a = b;
    }
}

/* The rows in the new order: new vertex p takes old vertex from[p]'s row,
 * its entries through to[] (old vertex -> new). */
static void gather_rows(ember_graph *g, const uint32_t *from, const uint32_t *to,
                        const uint64_t *off, uint32_t *adj, double *w,
                        drain *da, drain *dw)
{
    #pragma omp parallel for schedule(dynamic, 1024) num_threads(g->ctx->threads)
    for (uint64_t p = 0; p < g->n; p++) {
        uint64_t q = from[p], lo = g->offsets[q], hi = g->offsets[q + 1], at = off[p];
        for (uint64_t e = lo; e < hi; e++, at++) {
            adj[at] = to[g->adj[e]];
            if (w)
                w[at] = g->weights[e];
        }
        drain_read(da, lo * sizeof *adj, hi * sizeof *adj);
        if (w)
            drain_read(dw, lo * sizeof *w, hi * sizeof *w);
    }
}

/* The degree order was taken from row lengths that still counted duplicate
 * edges. Takes it again from the deduplicated degrees and renumbers the
 * graph to it, so that a graph read with duplicates (a text edge list) gets
 * exactly the vertex numbering, rows and so results of the same graph read
 * without them (ember's HDF5 CSR). Runs only when duplicates were dropped;
 * the rows are copied in the new order while the old ones' pages are given
 * back as they are read (see drain), so the peak stays near one CSR. m_raw
 * is the room adj (and weights) were allocated with. */
static int reorder_deduplicated(build *b, int own_outc, uint64_t m_raw)
{
    ember_graph *g = b->g;
    ember_ctx *ctx = g->ctx;
    const uint64_t n = g->n;
    uint32_t *old = g->perm; /* vertex -> label */
    uint64_t *rd = ember__calloc(ctx, n + 1, sizeof *rd);
    uint32_t *od = own_outc ? ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *od)) : NULL;
    uint64_t *off = ember__calloc(ctx, n + 1, sizeof *off);
    uint32_t *to = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *to));
    uint32_t *from = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *from));
    uint32_t *adj = NULL;
    double *w = NULL;
    drain da = {0}, dw = {0};
    int rc = EMBER_ENOMEM;
    if (!rd || (own_outc && !od) || !off || !to || !from)
        goto cleanup;
    for (uint64_t v = 0; v < n; v++) {
        rd[old[v] + 1] = g->offsets[v + 1] - g->offsets[v];
        if (od)
            od[old[v]] = g->out_degree[v];
    }
    ember__free(ctx, b->inv);
    b->inv = NULL;
    g->perm = NULL;
    if ((rc = degree_order(b, od, rd))) { /* b->inv: label -> new vertex */
        ember__free(ctx, g->perm);
        g->perm = old;
        goto cleanup;
    }
    ember__free(ctx, rd);
    rd = NULL;
    rc = EMBER_ENOMEM;
    int same = 1;
    for (uint64_t v = 0; v < n; v++) {
        to[v] = b->inv[old[v]];
        from[to[v]] = (uint32_t)v;
        same &= to[v] == v;
    }
    if (same) { /* the order held: nothing moves */
        rc = EMBER_OK;
        goto cleanup;
    }
    for (uint64_t v = 0; v < n; v++)
        off[to[v] + 1] = g->offsets[v + 1] - g->offsets[v];
    for (uint64_t v = 0; v < n; v++)
        off[v + 1] += off[v];
    adj = ember__malloc(ctx, ember__mul(g->m ? g->m : 1, sizeof *adj));
    w = g->weights ? ember__malloc(ctx, ember__mul(g->m ? g->m : 1, sizeof *w)) : NULL;
    if (!adj || (g->weights && !w) ||
        drain_init(&da, ctx, g->adj, (m_raw ? m_raw : 1) * sizeof *adj, g->m * sizeof *adj) ||
        (w && drain_init(&dw, ctx, g->weights, (m_raw ? m_raw : 1) * sizeof *w,
                         g->m * sizeof *w)))
        goto cleanup;
    gather_rows(g, from, to, off, adj, w, &da, &dw);
    for (uint64_t v = 0; od && v < n; v++) /* od: by label, now by vertex */
        g->out_degree[b->inv[v]] = od[v];
    ember__free(ctx, g->offsets);
    ember__free(ctx, g->adj);
    ember__free(ctx, g->weights);
    g->offsets = off;
    g->adj = adj;
    g->weights = w;
    off = NULL;
    adj = NULL;
    w = NULL;
    /* rows hold new numbers now: sort them again (no duplicates are left) */
    rc = sort_rows(g, b->inv) < 0 ? EMBER_ENOMEM : EMBER_OK;
cleanup:
    if (old != g->perm)
        ember__free(ctx, old);
    ember__free(ctx, rd);
    ember__free(ctx, od);
    ember__free(ctx, off);
    ember__free(ctx, to);
    ember__free(ctx, from);
    ember__free(ctx, adj);
    ember__free(ctx, w);
    ember__free(ctx, da.left);
    ember__free(ctx, dw.left);
    return rc;
}

static void recount_out_degree(ember_graph *g)
{
    memset(g->out_degree, 0, g->n * sizeof *g->out_degree);
    #pragma omp parallel for schedule(static) num_threads(g->ctx->threads)
    for (uint64_t e = 0; e < g->m; e++) {
        #pragma omp atomic
        g->out_degree[g->adj[e]]++;
    }
}

/* Out-degrees of an undirected graph: its row lengths. */
static int row_degrees(ember_graph *g)
{
    g->out_degree = ember__malloc(g->ctx, ember__mul(g->n ? g->n : 1, sizeof *g->out_degree));
    if (!g->out_degree)
        return EMBER_ENOMEM;
    for (uint64_t v = 0; v < g->n; v++)
        g->out_degree[v] = (uint32_t)(g->offsets[v + 1] - g->offsets[v]);
    return EMBER_OK;
}

/* cnt[v + 1] holds row lengths: makes it row starts, allocates adj. */
static int prepare_rows(build *b)
{
    ember_graph *g = b->g;
    for (uint64_t v = 0; v < g->n; v++)
        b->cnt[v + 1] += b->cnt[v];
    g->m = b->cnt[g->n];
    if (g->m > UINT64_C(1) << 40)
        return EMBER_ERANGE;
    g->adj = ember__malloc(g->ctx, ember__mul(g->m ? g->m : 1, sizeof *g->adj));
    if (b->o->weighted)
        g->weights = ember__malloc(g->ctx, ember__mul(g->m ? g->m : 1, sizeof *g->weights));
    return g->adj && (g->weights || !b->o->weighted) ? EMBER_OK : EMBER_ENOMEM;
}

int ember__graph_build(ember_graph *g, ember__eblock_fn get, void *state,
                       size_t nblocks, int resident, const ember_graph_opts *opts,
                       char *msg)
{
    ember__esource src = {.get = get, .state = state, .nblocks = nblocks,
                          .group = resident ? nblocks : 1};
    return ember__graph_build_from(g, &src, opts, msg);
}

int ember__graph_build_from(ember_graph *g, const ember__esource *src,
                            const ember_graph_opts *opts, char *msg)
{
    ember_ctx *ctx = g->ctx;
    uint64_t n = g->n;
    build b = {.g = g, .o = opts, .src = src, .cap = n};
    double t0 = ember__graph_now();
    int rc = EMBER_OK;
    g->directed = !opts->undirected;
    g->by_destination = opts->by_destination;
    /* Out-degrees need their own count only for directed graphs by
     * destination: undirected rows are the out-edges too. */
    int own_outc = opts->by_destination && !opts->undirected;
    b.cnt = ember__calloc(ctx, n + 1, sizeof *b.cnt);
    if (own_outc)
        b.outc = ember__calloc(ctx, n ? n : 1, sizeof *b.outc);
    lane ln[EMBER__LANES];
    memset(ln, 0, sizeof ln);
    const int L = use_lanes(&b) ? lane_count_of(&b) : 0;
    if (!b.cnt || (own_outc && !b.outc))
        goto oom;
    if ((rc = L ? lanes_count(&b, ln, L, msg) : run_pass(&b, 1, msg)))
        goto cleanup;
    if (src->counted && (rc = src->counted(src->state, g, msg)))
        goto cleanup;
    if (grow_counts(&b, g->n))
        goto oom;
    n = g->n;
    if (L)
        lanes_sum(&b, ln, L);
    for (int j = 0; j < L; j++) { /* the lanes' out-degrees are summed */
        ember__free(ctx, ln[j].outc);
        ln[j].outc = NULL;
    }
    if (opts->degree_order) {
        if ((rc = degree_order(&b, b.outc, b.cnt)) || (rc = permute_counts(&b)))
            goto oom;
    }
    if ((rc = prepare_rows(&b)))
        goto oom;
    if (L) { /* cnt holds the offsets already: the lanes have cursors */
        if (lanes_cursors(&b, ln, L))
            goto oom;
        if ((rc = lanes_scatter(&b, ln, L, msg)))
            goto cleanup;
        lanes_free(ctx, ln, L);
        memset(ln, 0, sizeof ln);
    } else {
        /* cnt[v] is row v's start, used as its cursor: after the scatter
         * it is row v's end, one shift away from the offsets. */
        split_rows(&b);
        if ((rc = run_pass(&b, 2, msg)))
            goto cleanup;
        memmove(b.cnt + 1, b.cnt, n * sizeof *b.cnt);
        b.cnt[0] = 0;
    }
    g->offsets = b.cnt;
    b.cnt = NULL;
    g->out_degree = b.outc;
    b.outc = NULL;
    /* inv is free now: its room holds the deduplicated row lengths. */
    if (!b.inv && !(b.inv = ember__malloc(ctx, ember__mul(n ? n : 1, sizeof *b.inv))))
        goto oom;
    int dups = sort_rows(g, b.inv);
    if (dups < 0)
        goto oom;
    if (dups) {
        uint64_t m_raw = g->m;
        compact_rows(g, b.inv);
        if (g->out_degree)
            recount_out_degree(g);
        if (opts->degree_order && (rc = reorder_deduplicated(&b, own_outc, m_raw)))
            goto oom;
    }
    if (opts->by_destination && opts->undirected && (rc = row_degrees(g)))
        goto oom;
    g->row_lo = 0; /* a build holds every row */
    g->row_hi = g->n;
    g->edge_lo = 0;
    g->build_seconds = ember__graph_now() - t0;
    goto cleanup;
oom:
    if (rc == EMBER_ERANGE)
        rc = ember__err(msg, rc, "too many edges (more than 2^40)");
    else
        rc = ember__err(msg, EMBER_ENOMEM,
                        "out of memory building a graph of %llu vertices",
                        (unsigned long long)n);
cleanup:
    lanes_free(ctx, ln, EMBER__LANES);
    ember__free(ctx, b.cnt);
    ember__free(ctx, b.outc);
    ember__free(ctx, b.inv);
    return rc;
}

/* ---- the API ------------------------------------------------------------------ */

int ember__graph_new(ember_graph **out, ember_ctx *ctx, char *msg)
{
    ember__graph_box *b = ember__calloc(ctx, 1, sizeof *b);
    if (!b)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    b->src = (ember__leased){.fd = -1, .slot = -1};
    b->g.ctx = ctx;
    *out = &b->g;
    return EMBER_OK;
}

/* The sources copied out of their file into the graph's own memory, on
 * the context's threads, while the lease still keeps them those mapped;
 * then the lease let go. EMBER_OK, EMBER_ENOMEM, or EMBER_ECORRUPT when
 * the lease's time ran out before the copy was done. */
static int copy_out(ember_graph *g, ember__graph_box *b)
{
    size_t bytes = (size_t)ember_graph_held_edges(g) * sizeof *g->adj;
    const size_t piece = (size_t)8 << 20;
    uint32_t *copy = ember__malloc(g->ctx, bytes ? bytes : 1);
    if (!copy)
        return EMBER_ENOMEM;
    const char *from = b->src.data;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(g->ctx->threads)
    for (size_t at = 0; at < bytes; at += piece)
        ember__copy((char *)copy + at, from + at, bytes - at < piece ? bytes - at : piece);
    double left = 0;
    if (ember__lease_poll(&b->src, &left) == EMBER__LEASE_LOST) {
        ember__free(g->ctx, copy);
        return EMBER_ECORRUPT;
    }
    ember__lease_unmap(&b->src);
    g->adj = copy;
    return EMBER_OK;
}

int ember_graph_hold(ember_graph *g, char *msg)
{
    ember__msg_clear(msg);
    ember__graph_box *b = g ? ember__graph_box_of(g) : NULL;
    if (!b || !b->src.base)
        return EMBER_OK;
    double left = 0;
    int state = ember__lease_poll(&b->src, &left);
    if (state == EMBER__LEASE_HELD)
        return EMBER_OK;
    int rc = state == EMBER__LEASE_BREAKING ? copy_out(g, b) : EMBER_ECORRUPT;
    if (rc == EMBER_OK)
        return EMBER_OK;
    /* let the writer go; nothing reads the mapping again */
    ember__lease_unmap(&b->src);
    g->adj = NULL;
    if (rc == EMBER_ENOMEM)
        return ember__err(msg, rc, "%s: out of memory to copy the graph's edges out "
                          "of the file, which another process opened for writing",
                          b->file);
    return ember__err(msg, rc, "%s: opened for writing or truncated while the graph "
                      "was read from it in place, and not held off until its edges "
                      "were copied (a pass over them, or a stop, longer than the lease "
                      "break time): they may have changed; run again once the file "
                      "stays put", b->file);
}

void ember_graph_free(ember_graph **g)
{
    if (!g || !*g)
        return;
    ember_ctx *ctx = (*g)->ctx;
    ember__graph_box *b = ember__graph_box_of(*g);
    ember__free(ctx, (*g)->offsets);
    if (b->src.base)
        ember__lease_unmap(&b->src);
    else
        ember__free(ctx, (*g)->adj);
    ember__free(ctx, (*g)->out_degree);
    ember__free(ctx, (*g)->perm);
    ember__free(ctx, (*g)->ids);
    ember__free(ctx, (*g)->weights);
    ember__free(ctx, *g);
    *g = NULL;
}

uint64_t ember_graph_csr_bytes(const ember_graph *g)
{
    if (!g)
        return 0;
    uint64_t held = ember_graph_held_edges(g);
    return (g->n + 1) * sizeof *g->offsets + held * sizeof *g->adj +
           (g->weights ? held * sizeof *g->weights : 0);
}

int ember_graph_check_owned(const ember_graph *g, const uint64_t *offsets,
                            size_t parts, char *msg)
{
    ember__msg_clear(msg);
    if (!g || !offsets || !parts)
        return ember__err(msg, EMBER_EINVAL, "ember_graph_check_owned: NULL argument");
    if (offsets[parts] != g->n)
        return ember__err(msg, EMBER_EINVAL, "ember_graph_check_owned: the partitions "
                          "cover %llu vertices, the graph has %llu",
                          (unsigned long long)offsets[parts], (unsigned long long)g->n);
    size_t plo = 0, phi = 0;
    ember__comm_owned(g->ctx, parts, &plo, &phi);
    uint64_t lo = offsets[plo], hi = offsets[phi];
    int rc = EMBER_OK;
    if (lo < hi && (lo < g->row_lo || hi > g->row_hi))
        rc = ember__err(msg, EMBER_ESTATE, "rank %d holds rows [%llu, %llu) of the graph, "
                        "its partitions [%zu, %zu) need rows [%llu, %llu)",
                        ember__comm_rank(g->ctx), (unsigned long long)g->row_lo,
                        (unsigned long long)g->row_hi, plo, phi, (unsigned long long)lo,
                        (unsigned long long)hi);
    return ember__comm_agree_status(g->ctx, rc, (uint64_t)ember__comm_rank(g->ctx), msg);
}

/* opts->owned_rows on several ranks, after a load that built the whole
 * graph (text, or an HDF5 file without the stored pull layout): keeps the
 * rows of this rank's block of ember_graph_partition's partitions, as the
 * stored layout's ranged read does, and gives back the rest. The load's
 * peak still held every row; the run holds its own. */
static int keep_owned_rows(ember_graph *g, const ember_graph_opts *opts, char *msg)
{
    uint64_t *poff = NULL;
    size_t parts = 0, plo = 0, phi = 0;
    int rc = ember_graph_partition(&poff, &parts, g, opts->partitions, msg);
    if (rc)
        return rc;
    ember__comm_owned(g->ctx, parts, &plo, &phi);
    uint64_t lo = poff[plo], hi = poff[phi];
    ember__free(g->ctx, poff);
    uint64_t elo = g->offsets[lo], held = g->offsets[hi] - elo;
    memmove(g->adj, g->adj + elo, held * sizeof *g->adj);
    uint32_t *adj = ember__realloc(g->ctx, g->adj, (held ? held : 1) * sizeof *adj);
    if (adj)
        g->adj = adj; /* else the old block, larger, stays */
    if (g->weights) {
        memmove(g->weights, g->weights + elo, held * sizeof *g->weights);
        double *w = ember__realloc(g->ctx, g->weights,
                                   (held ? held : 1) * sizeof *w);
        if (w)
            g->weights = w;
    }
    g->row_lo = lo;
    g->row_hi = hi;
    g->edge_lo = elo;
    return EMBER_OK;
}

/* ember_graph_load, and ember_graph_load_in_place with in_place. */
static int load(ember_graph **out, ember_ctx *ctx, const char *path,
                const ember_graph_opts *opts, int in_place, char *msg)
{
    ember_graph_opts defaults = {0};
    ember__msg_clear(msg);
    if (!out || !ctx || !path)
        return ember__err(msg, EMBER_EINVAL, "ember_graph_load: NULL argument");
    *out = NULL;
    if (!opts)
        opts = &defaults;
    ember_graph *g = NULL;
    int rc = ember__graph_new(&g, ctx, msg);
    if (rc)
        return rc;
    ember__graph_box_of(g)->in_place = in_place;
    ember_graph_format f = opts->format ? opts->format : ember_graph_format_of(path);
    /* relabel reads ids from text: taken silently elsewhere, it was
     * recorded as done (ember-convert's relabel=1) and did nothing */
    if (opts->relabel && (f == EMBER_GRAPH_MTX || f == EMBER_GRAPH_H5))
        rc = ember__err(msg, EMBER_EINVAL, "%s: relabel applies to edge lists only: %s",
                        path, f == EMBER_GRAPH_MTX
                                  ? "Matrix Market indices are dense already (1..n)"
                                  : "a graph file keeps the labels it was converted "
                                    "with (/csr/ids when it was relabelled)");
    else if (opts->weighted && f == EMBER_GRAPH_H5)
        rc = ember__err(msg, EMBER_EFORMAT, "%s: ember's HDF5 CSR holds no edge weights; "
                        "give a weighted edge list or Matrix Market file", path);
    else if (f == EMBER_GRAPH_H5)
        rc = ember__graph_load_h5(g, path, opts, msg);
    else if (f == EMBER_GRAPH_MTX || f == EMBER_GRAPH_EDGELIST)
        rc = ember__graph_load_text(g, path, f == EMBER_GRAPH_MTX, opts, msg);
    else
        rc = ember__err(msg, EMBER_EINVAL, "%s: unknown graph format %d", path, (int)f);
    /* rows by destination, or an undirected graph's (the same both ways) */
    if (!rc && opts->owned_rows && ember__comm_size(ctx) > 1 && ember_graph_whole(g) &&
        (g->by_destination || !g->directed))
        rc = keep_owned_rows(g, opts, msg);
    /* Ranks that read their own rows may fail apart (a bad value in one
     * slice): every rank returns the lowest failing rank's status. */
    if (opts->owned_rows && ember__comm_size(ctx) > 1)
        rc = ember__comm_agree_status(ctx, rc, (uint64_t)ember__comm_rank(ctx), msg);
    if (rc)
        ember_graph_free(&g);
    *out = g;
    return rc;
}

int ember_graph_load(ember_graph **out, ember_ctx *ctx, const char *path,
                     const ember_graph_opts *opts, char *msg)
{
    return load(out, ctx, path, opts, 0, msg);
}

int ember_graph_load_in_place(ember_graph **out, ember_ctx *ctx, const char *path,
                              const ember_graph_opts *opts, char *msg)
{
    return load(out, ctx, path, opts, 1, msg);
}

typedef struct {
    const uint32_t *src, *dst;
    size_t m;
} array_edges;

#define EDGES_PER_BLOCK ((size_t)1 << 24)

static int array_block(void *state, size_t i, ember__eblock *b, char *msg)
{
    (void)msg;
    const array_edges *a = state;
    size_t lo = i * EDGES_PER_BLOCK;
    size_t hi = lo + EDGES_PER_BLOCK < a->m ? lo + EDGES_PER_BLOCK : a->m;
    *b = (ember__eblock){a->src + lo, a->dst + lo, hi - lo, 1, NULL};
    return EMBER_OK;
}

int ember_graph_from_edges(ember_graph **out, ember_ctx *ctx, uint64_t n,
                           const uint32_t *src, const uint32_t *dst, size_t m,
                           const ember_graph_opts *opts, char *msg)
{
    ember_graph_opts o = opts ? *opts : (ember_graph_opts){0};
    o.weighted = 0; /* the arrays carry no weights */
    ember__msg_clear(msg);
    if (!out || !ctx || ((!src || !dst) && m))
        return ember__err(msg, EMBER_EINVAL, "ember_graph_from_edges: NULL argument");
    *out = NULL;
    if (n > ember__graph_max_vertices(&o))
        return ember__graph_too_big(msg, "from_edges", n, ember__graph_max_vertices(&o));
    ember_graph *g = NULL;
    int rc = ember__graph_new(&g, ctx, msg);
    if (rc)
        return rc;
    g->n = n;
    array_edges a = {src, dst, m};
    rc = ember__graph_build(g, array_block, &a,
                            (m + EDGES_PER_BLOCK - 1) / EDGES_PER_BLOCK, 1, &o, msg);
    if (rc)
        ember_graph_free(&g);
    *out = g;
    return rc;
}

/* ---- partitions and vertex datasets ----------------------------------------------- */

#define EDGES_PER_PART ((uint64_t)1 << 16)
#define MAX_AUTO_PARTS 4096
/* A vertex weighs as much as this many edges when boundaries are placed:
 * its own work (reading its row bounds and old value, writing its new
 * value, and the executor copying its record through a map_partitions and
 * a foreach, twice an iteration) costs about 16 edge gathers in PageRank
 * (measured at Kronecker scale 20, docs/mpi.md). With 4 the vertex-heavy
 * tail of a degree-ordered graph held twice the work of the edge-heavy
 * head: no matter to a thread team that takes partitions dynamically, but
 * 2.3x between two MPI ranks, which own contiguous blocks of partitions.
 * The weight also caps the vertices of a partition, hence the task
 * buffers of the long tails of edge-less vertices. */
#define VERTEX_WEIGHT 16
/* The automatic partition count keeps its older weight of 4, so default
 * partition counts do not change. */
#define COUNT_VERTEX_WEIGHT 4

int ember_graph_partition(uint64_t **offsets, size_t *parts,
                          const ember_graph *g, size_t want, char *msg)
{
    ember__msg_clear(msg);
    if (!offsets || !parts || !g)
        return ember__err(msg, EMBER_EINVAL, "ember_graph_partition: NULL argument");
    uint64_t total = VERTEX_WEIGHT * g->n + g->m;
    size_t P = want;
    if (!P) {
        uint64_t p = (COUNT_VERTEX_WEIGHT * g->n + g->m) / EDGES_PER_PART;
        P = p < 1 ? 1 : p > MAX_AUTO_PARTS ? MAX_AUTO_PARTS : (size_t)p;
    }
    if (g->n && P > g->n)
        P = (size_t)g->n;
    if (P == 0)
        P = 1;
    uint64_t *off = ember__malloc(g->ctx, ember__mul(P + 1, sizeof *off));
    if (!off)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    /* Boundary p: the first vertex v whose weight before it reaches
     * p * total / P. */
    off[0] = 0;
    for (size_t p = 1; p < P; p++) {
        uint64_t target = (uint64_t)(((unsigned __int128)total * p) / P);
        uint64_t lo = off[p - 1], hi = g->n;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (VERTEX_WEIGHT * mid + g->offsets[mid] < target)
                lo = mid + 1;
            else
                hi = mid;
        }
        off[p] = lo;
    }
    off[P] = g->n;
    *offsets = off;
    *parts = P;
    return EMBER_OK;
}

int ember_from_array_parts(ember_ds **out, ember_ctx *ctx,
                           const ember_type *type, const void *records,
                           size_t n, const uint64_t *offsets, size_t parts,
                           ember_ownership own, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !type || (!records && n) || !offsets || !parts)
        return ember__err(msg, EMBER_EINVAL, "ember_from_array_parts: NULL argument");
    if (own != EMBER_COPY && own != EMBER_BORROW)
        return ember__err(msg, EMBER_EINVAL, "ember_from_array_parts: ownership %d is "
                          "neither EMBER_COPY nor EMBER_BORROW", (int)own);
    uint64_t *off = ember__malloc(ctx, ember__mul(parts + 1, sizeof *off));
    void *copy = NULL;
    if (off && own == EMBER_COPY && n) {
        copy = ember__malloc(ctx, ember__mul(n, type->size));
        if (copy)
            memcpy(copy, records, n * type->size);
    }
    if (!off || (own == EMBER_COPY && n && !copy)) {
        ember__free(ctx, off);
        return ember__err(msg, EMBER_ENOMEM, "out of memory for %zu records", n);
    }
    memcpy(off, offsets, (parts + 1) * sizeof *off);
    int rc = ember__array_source_offsets(out, ctx, type, copy, n, off, parts,
                                         "array", msg);
    if (!rc && own == EMBER_BORROW)
        (*out)->u.array.data = records;
    return rc;
}

int ember_array_parts(uint64_t **offsets, size_t *parts, const ember_ds *ds,
                      char *msg)
{
    ember__msg_clear(msg);
    if (!offsets || !parts || !ds)
        return ember__err(msg, EMBER_EINVAL, "ember_array_parts: NULL argument");
    if (ds->op != EMBER__ARRAY)
        return ember__err(msg, EMBER_EINVAL, "#%llu (%s) is not an array source",
                          (unsigned long long)ds->id, ds->name);
    uint64_t *off = ember__malloc(ds->ctx, ember__mul(ds->nparts + 1, sizeof *off));
    if (!off)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    off[0] = 0;
    for (size_t p = 0; p < ds->nparts; p++) {
        size_t lo, hi;
        ember__array_bounds(ds, p, &lo, &hi);
        off[p + 1] = hi;
    }
    *offsets = off;
    *parts = ds->nparts;
    return EMBER_OK;
}

const void *ember_array_data(const ember_ds *ds, size_t *n)
{
    if (!ds || ds->op != EMBER__ARRAY)
        return NULL;
    if (n)
        *n = ds->u.array.n;
    return ds->u.array.data;
}

/* ---- the pull layout of a CSR (what ember_graph_save_h5 stores) -------------- */

#define EDGES_PER_CSR_BLOCK ((size_t)1 << 22)

typedef struct {
    const ember_graph *g;
    uint32_t *src; /* one block's sources */
} csr_edges;

/* Block i: edges [i * EDGES_PER_CSR_BLOCK, ...) of the CSR, rows as sources. */
static int csr_block(void *state, size_t i, ember__eblock *b, char *msg)
{
    (void)msg;
    csr_edges *c = state;
    const ember_graph *g = c->g;
    uint64_t lo = (uint64_t)i * EDGES_PER_CSR_BLOCK;
    size_t n = (size_t)(g->m - lo < EDGES_PER_CSR_BLOCK ? g->m - lo : EDGES_PER_CSR_BLOCK);
    uint64_t a = 0, z = g->n; /* the row holding edge lo */
    while (a < z) {
        uint64_t mid = a + (z - a) / 2;
        if (g->offsets[mid + 1] <= lo)
            a = mid + 1;
        else
            z = mid;
    }
    for (size_t k = 0, r = (size_t)a; k < n; k++) {
        while (g->offsets[r + 1] <= lo + k)
            r++;
        c->src[k] = (uint32_t)r;
    }
    *b = (ember__eblock){c->src, g->adj + lo, n, 1, NULL};
    return EMBER_OK;
}

int ember__graph_pull_of(ember_graph **out, const ember_graph *g, char *msg)
{
    ember_ctx *ctx = g->ctx;
    ember_graph_opts o = EMBER__PULL_OPTS;
    ember_graph *p = NULL;
    *out = NULL;
    int rc = ember__graph_new(&p, ctx, msg);
    if (rc)
        return rc;
    p->n = g->n;
    csr_edges c = {g, ember__malloc(ctx, EDGES_PER_CSR_BLOCK * sizeof(uint32_t))};
    if (!c.src)
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    else
        rc = ember__graph_build(p, csr_block, &c,
                                (size_t)((g->m + EDGES_PER_CSR_BLOCK - 1) / EDGES_PER_CSR_BLOCK),
                                0, &o, msg);
    ember__free(ctx, c.src);
    if (rc)
        ember_graph_free(&p);
    *out = p;
    return rc;
}
