/* actions.c: the actions, each a sink over ember__run plus a fold of the
 * per-partition results in partition order.
 *
 * Floor 4 of the engine (docs/design.md): actions call the executor, the
 * nodes and the block store below them, never a checkpoint or a file:
 * writing HDF5 is save.c's, one floor up, over ember__run_ordered.
 *
 * Per-partition state is indexed by partition, never by thread, so the
 * combination order, and therefore every floating-point result, is the
 * same for any team size. Under MPI (comm.h) each rank computes the
 * partitions it owns, the per-partition results are all-gathered in
 * partition order (gather_fixed, gather_parts), and every rank folds all
 * of them in the same order: results are bit-identical for any rank count,
 * and MPI never adds a floating-point number.
 */
#include "internal.h"

#include <assert.h>
#include <omp.h>
#include <string.h>

static int check_ds(const ember_ds *ds, const void *out, const char *what,
                    char *msg)
{
    ember__msg_clear(msg);
    if (!ds || !out)
        return ember__err(msg, EMBER_EINVAL, "%s: NULL argument", what);
    return ember__not_in_task(what, msg);
}

/* The sinks of reduce, aggregate and foreach return their user function's
 * status as it is: ember__run_user reports any non-zero one as EMBER_EUSER
 * naming the action, the dataset and the value (a user's -1 must not pass
 * through as EMBER_EINVAL). */

/* Fills every partition's fixed-size result slot from its owner (MPI). */
static int gather_fixed(ember_ds *ds, void *slots, size_t item, char *msg)
{
    if (ember__comm_size(ds->ctx) == 1)
        return EMBER_OK;
    int *own = NULL;
    int rc = ember__owners(ds, &own, msg);
    rc = ember__comm_agree_status(ds->ctx, rc, 0, msg);
    if (!rc)
        rc = ember__comm_allgather_fixed_map(ds->ctx, slots, ds->nparts, item,
                                             own, msg);
    ember__free(ds->ctx, own);
    return rc;
}

/* ---- count ------------------------------------------------------------ */

static int count_sink(void *state, size_t part, const void *recs, size_t n,
                      int last)
{
    (void)recs;
    (void)last;
    ((uint64_t *)state)[part] += n;
    return 0;
}

int ember_count(ember_ds *ds, uint64_t *out, char *msg)
{
    int rc = check_ds(ds, out, "count", msg);
    if (rc)
        return rc;
    uint64_t *c = ember__calloc(ds->ctx, ds->nparts + 1, sizeof *c);
    if (!c)
        return ember__parts_nomem(ds, msg);
    rc = ember__run(ds, count_sink, c, msg);
    if (!rc)
        rc = gather_fixed(ds, c, sizeof *c, msg);
    uint64_t total = 0;
    for (size_t p = 0; p < ds->nparts; p++)
        total += c[p];
    ember__free(ds->ctx, c);
    if (!rc)
        *out = total;
    return rc;
}

/* ---- sum ---------------------------------------------------------------- */

typedef struct {
    const ember_type *type;
    unsigned char *acc; /* one record per partition */
} sum_state;

static int sum_sink(void *state, size_t part, const void *recs, size_t n,
                    int last)
{
    (void)last;
    sum_state *s = state;
    ember__sum_records(s->type, recs, n, s->acc + part * s->type->size, 0);
    return 0;
}

int ember_sum(ember_ds *ds, void *out, char *msg)
{
    int rc = check_ds(ds, out, "sum", msg);
    if (rc)
        return rc;
    size_t size = ds->type.size;
    sum_state s = {&ds->type, ember__calloc(ds->ctx, ds->nparts + 1, size)};
    if (!s.acc)
        return ember__parts_nomem(ds, msg);
    rc = ember__run(ds, sum_sink, &s, msg);
    if (!rc)
        rc = gather_fixed(ds, s.acc, size, msg);
    if (!rc) {
        memset(out, 0, size);
        for (size_t p = 0; p < ds->nparts; p++)
            ember__sum_records(&ds->type, s.acc + p * size, 1, out, 0);
    }
    ember__free(ds->ctx, s.acc);
    return rc;
}

/* ---- reduce and aggregate -------------------------------------------------- */

typedef struct {
    ember_combine_fn fn, comb;
    void *arg;
    size_t acc_size;
    unsigned char *acc;  /* one accumulator per partition (unordered: per
                            team thread) */
    unsigned char *has;  /* reduce: partition saw a record */
    size_t slots;        /* accumulators in acc */
} fold_state;

static int reduce_sink(void *state, size_t part, const void *recs, size_t n,
                       int last)
{
    (void)last;
    fold_state *s = state;
    unsigned char *acc = s->acc + part * s->acc_size;
    const unsigned char *r = recs;
    if (n && !s->has[part]) {
        memcpy(acc, r, s->acc_size);
        s->has[part] = 1;
        r += s->acc_size;
        n--;
    }
    return n ? s->fn(acc, r, n, s->arg) : 0;
}

int ember_reduce(ember_ds *ds, ember_combine_fn fn, void *arg, void *out,
                 char *msg)
{
    int rc = check_ds(ds, out, "reduce", msg);
    if (!rc && !fn)
        rc = ember__err(msg, EMBER_EINVAL, "reduce: NULL function");
    if (rc)
        return rc;
    size_t size = ds->type.size, P = ds->nparts;
    fold_state s = {fn, fn, arg, size, ember__calloc(ds->ctx, P + 1, size),
                    ember__calloc(ds->ctx, P + 1, 1), P};
    rc = (s.acc && s.has) ? ember__run_user(ds, "reduce", reduce_sink, &s, msg)
                          : ember__parts_nomem(ds, msg);
    if (!rc)
        rc = gather_fixed(ds, s.acc, size, msg);
    if (!rc)
        rc = gather_fixed(ds, s.has, 1, msg);
    int any = 0;
    for (size_t p = 0; !rc && p < P; p++) {
        if (!s.has[p])
            continue;
        int r = any ? fn(out, s.acc + p * size, 1, arg)
                    : (memcpy(out, s.acc + p * size, size), 0);
        if (r)
            rc = ember__err(msg, EMBER_EUSER,
                            "reduce function of #%llu (%s) returned %d combining "
                            "partition %zu", (unsigned long long)ds->id, ds->name,
                            r, p);
        any = 1;
    }
    if (!rc && !any)
        rc = ember__err(msg, EMBER_EEMPTY, "reduce: dataset #%llu is empty",
                        (unsigned long long)ds->id);
    ember__free(ds->ctx, s.acc);
    ember__free(ds->ctx, s.has);
    return rc;
}

static int aggregate_sink(void *state, size_t part, const void *recs,
                          size_t n, int last)
{
    (void)last;
    fold_state *s = state;
    return n ? s->fn(s->acc + part * s->acc_size, recs, n, s->arg) : 0;
}

/* The unordered form's sink: the accumulator of the thread running it
 * (ember__parallel's team is at most ctx->threads, numbered from 0). */
static int unordered_sink(void *state, size_t part, const void *recs,
                          size_t n, int last)
{
    (void)part;
    (void)last;
    fold_state *s = state;
    size_t t = (size_t)omp_get_thread_num();
    assert(t < s->slots);
    if (t >= s->slots) /* never: but no write outside the slots */
        return EMBER_ESTATE;
    return n ? s->fn(s->acc + t * s->acc_size, recs, n, s->arg) : 0;
}

static int aggregate_args(ember_ds *ds, const void *zero, size_t acc_size,
                          ember_combine_fn seq, ember_combine_fn comb,
                          const void *out, const char *what, char *msg)
{
    int rc = check_ds(ds, out, what, msg);
    if (!rc && (!zero || !seq || !comb || !acc_size))
        rc = ember__err(msg, EMBER_EINVAL,
                        "%s: zero, seq, comb and acc_size are required", what);
    return rc;
}

/* n accumulators, each a copy of zero (room for n + 1: never a zero-size
 * allocation). */
static unsigned char *zeroed_slots(ember_ctx *ctx, const void *zero, size_t size,
                                   size_t n)
{
    unsigned char *a = ember__malloc(ctx, ember__mul(n + 1, size));
    for (size_t i = 0; a && i < n; i++)
        memcpy(a + i * size, zero, size);
    return a;
}

/* out = zero, then comb of each of the n slots in order; a failure names
 * the slot as `what` i. */
static int fold_slots(const ember_ds *ds, void *out, const void *zero,
                      const unsigned char *slots, size_t n, size_t size,
                      ember_combine_fn comb, void *arg, const char *what,
                      char *msg)
{
    memcpy(out, zero, size);
    for (size_t i = 0; i < n; i++) {
        int r = comb(out, slots + i * size, 1, arg);
        if (r)
            return ember__err(msg, EMBER_EUSER,
                              "aggregate comb function of #%llu (%s) returned %d "
                              "combining %s %zu", (unsigned long long)ds->id,
                              ds->name, r, what, i);
    }
    return EMBER_OK;
}

int ember_aggregate(ember_ds *ds, const void *zero, size_t acc_size,
                    ember_combine_fn seq, ember_combine_fn comb, void *arg,
                    void *out, char *msg)
{
    int rc = aggregate_args(ds, zero, acc_size, seq, comb, out, "aggregate", msg);
    if (rc)
        return rc;
    size_t P = ds->nparts;
    fold_state s = {seq, comb, arg, acc_size, zeroed_slots(ds->ctx, zero, acc_size, P),
                    NULL, P};
    if (!s.acc)
        return ember__parts_nomem(ds, msg);
    rc = ember__run_user(ds, "aggregate seq", aggregate_sink, &s, msg);
    if (!rc)
        rc = gather_fixed(ds, s.acc, acc_size, msg);
    if (!rc)
        rc = fold_slots(ds, out, zero, s.acc, P, acc_size, comb, arg, "partition", msg);
    ember__free(ds->ctx, s.acc);
    return rc;
}

int ember_aggregate_unordered(ember_ds *ds, const void *zero, size_t acc_size,
                              ember_combine_fn seq, ember_combine_fn comb,
                              void *arg, void *out, char *msg)
{
    int rc = aggregate_args(ds, zero, acc_size, seq, comb, out,
                            "aggregate_unordered", msg);
    if (rc)
        return rc;
    ember_ctx *ctx = ds->ctx;
    size_t T = (size_t)ctx->threads, R = (size_t)ember__comm_size(ctx);
    fold_state s = {seq, comb, arg, acc_size, zeroed_slots(ctx, zero, acc_size, T),
                    NULL, T};
    if (!s.acc)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    rc = ember__run_user(ds, "aggregate seq", unordered_sink, &s, msg);
    if (!rc)
        rc = fold_slots(ds, out, zero, s.acc, T, acc_size, comb, arg, "thread", msg);
    if (R > 1) { /* this rank's into its slot, every rank's to all */
        unsigned char *ranks = rc ? NULL : ember__malloc(ctx, ember__mul(R, acc_size));
        if (!rc && !ranks)
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
        rc = ember__comm_agree_status(ctx, rc, 0, msg);
        if (!rc) {
            memcpy(ranks + (size_t)ember__comm_rank(ctx) * acc_size, out, acc_size);
            rc = ember__comm_allgather_fixed(ctx, ranks, R, acc_size, msg);
        }
        if (!rc)
            rc = fold_slots(ds, out, zero, ranks, R, acc_size, comb, arg, "rank", msg);
        ember__free(ctx, ranks);
    }
    ember__free(ctx, s.acc);
    return rc;
}

/* ---- collect and take -------------------------------------------------------- */

/* ds's records partition by partition, to be concatenated into the
 * caller's array. A dataset cached in memory (MEMORY_ONLY) whose every
 * partition is stored is read where its blocks lie (views, pinned until
 * pieces_free); any other is computed into buffers first. The one copy
 * left, into the array, is made by the team (concat): a broadcast of a
 * cached dataset each iteration (the idiom of bench/jacobi.c) copied it
 * twice, the second time on one thread. */
typedef struct {
    ember_ctx *ctx;
    size_t P;
    ember__buf *parts;  /* computed */
    ember__view *views; /* or stored */
    size_t *at;         /* where each piece starts in the array, P + 1 */
} pieces;

static const void *piece(const pieces *pc, size_t p, size_t *n)
{
    *n = pc->views ? pc->views[p].n : pc->parts[p].n;
    return pc->views ? pc->views[p].data : pc->parts[p].data;
}

static void pieces_free(pieces *pc)
{
    if (pc->views)
        for (size_t p = 0; p < pc->P; p++)
            ember__store_release(pc->ctx, &pc->views[p]);
    ember__free(pc->ctx, pc->views);
    ember__parts_free(pc->ctx, pc->parts, pc->P);
    ember__free(pc->ctx, pc->at);
}

/* Views of every stored block of a cached dataset, or 0 (none kept; the
 * blocks are looked for first, so that a miss counts no hits). */
static int stored_views(ember_ds *ds, pieces *pc)
{
    if (ds->level != EMBER_MEMORY_ONLY || !ds->nparts || ember__comm_size(ds->ctx) > 1 ||
        ember__store_count(ds->ctx, ds->id) != ds->nparts)
        return 0;
    ember__view *v = ember__calloc(ds->ctx, ds->nparts, sizeof *v);
    size_t p = 0;
    while (v && p < ds->nparts && ember__store_get(ds->ctx, ds->id, p, &v[p], NULL) == EMBER_OK)
        p++;
    if (v && p == ds->nparts) {
        pc->views = v;
        return 1;
    }
    while (v && p--)
        ember__store_release(ds->ctx, &v[p]);
    ember__free(ds->ctx, v);
    return 0;
}

static int pieces_get(ember_ds *ds, pieces *pc, size_t *total, char *msg)
{
    *pc = (pieces){.ctx = ds->ctx, .P = ds->nparts};
    int rc = stored_views(ds, pc) ? EMBER_OK : ember__materialize(ds, &pc->parts, msg);
    if (!rc && !(pc->at = ember__calloc(ds->ctx, pc->P + 1, sizeof *pc->at)))
        rc = ember__parts_nomem(ds, msg);
    for (size_t p = 0; !rc && p < pc->P; p++) {
        size_t n;
        piece(pc, p, &n);
        pc->at[p + 1] = pc->at[p] + n;
    }
    *total = rc ? 0 : pc->at[pc->P];
    return rc;
}

/* Concatenates the pieces into dst (room for the total is known). */
static void concat(unsigned char *dst, const pieces *pc, size_t size)
{
    long long P = (long long)pc->P;
#pragma omp parallel for schedule(dynamic, 1) num_threads(pc->ctx->threads) if (P > 1)
    for (long long p = 0; p < P; p++) {
        size_t n;
        const void *src = piece(pc, (size_t)p, &n);
        if (n)
            ember__copy(dst + pc->at[p] * size, src, n * size);
    }
}

int ember_collect(ember_ds *ds, void *buf, size_t capacity, size_t *n,
                  char *msg)
{
    int rc = check_ds(ds, n, "collect", msg);
    if (!rc && !buf && capacity)
        rc = ember__err(msg, EMBER_EINVAL, "collect: NULL buffer");
    if (rc)
        return rc;
    pieces pc;
    rc = pieces_get(ds, &pc, n, msg);
    if (!rc && *n > capacity)
        rc = ember__err(msg, EMBER_ERANGE,
                        "collect: #%llu has %zu records; the buffer holds %zu",
                        (unsigned long long)ds->id, *n, capacity);
    else if (!rc)
        concat(buf, &pc, ds->type.size);
    pieces_free(&pc);
    return rc;
}

int ember_collect_alloc(ember_ds *ds, void **out, size_t *n, char *msg)
{
    int rc = check_ds(ds, out, "collect", msg);
    if (!rc && !n)
        rc = ember__err(msg, EMBER_EINVAL, "collect: NULL count");
    if (rc)
        return rc;
    *out = NULL;
    *n = 0;
    pieces pc;
    size_t total = 0;
    rc = pieces_get(ds, &pc, &total, msg);
    void *dst = rc ? NULL : ember__malloc(ds->ctx, ember__mul(total, ds->type.size));
    if (!rc && !dst) {
        rc = ember__err(msg, EMBER_ENOMEM, "collect: out of memory for %zu records",
                        total);
    } else if (!rc) {
        concat(dst, &pc, ds->type.size);
        *out = dst;
        *n = total;
    }
    pieces_free(&pc);
    return rc;
}

typedef struct {
    ember_ctx *ctx;
    ember__buf *parts;
    size_t lo;
} window_state;

static int window_sink(void *state, size_t part, const void *recs, size_t n,
                       int last)
{
    (void)last;
    window_state *w = state;
    return ember__buf_append(w->ctx, &w->parts[part - w->lo], recs, n);
}

/* Computes partitions [lo, hi) into parts[0 .. hi-lo), on every rank
 * (MPI: each computes its own, then they are all-gathered in order). */
static int run_window(ember_ds *ds, size_t lo, size_t hi, ember__buf *parts,
                      char *msg)
{
    for (size_t i = 0; i < hi - lo; i++) {
        ember__buf_free(ds->ctx, &parts[i]);
        parts[i].size = ds->type.size;
    }
    window_state w = {ds->ctx, parts, lo};
    int rc = ember__run_parts(ds, lo, hi, window_sink, &w, msg);
    if (rc || ember__comm_size(ds->ctx) == 1)
        return rc;
    int *own = NULL;
    rc = ember__owners(ds, &own, msg);
    rc = ember__comm_agree_status(ds->ctx, rc, 0, msg);
    if (!rc)
        rc = ember__comm_allgather_parts_map(ds->ctx, parts, hi - lo,
                                             ds->type.size, own + lo, msg);
    ember__free(ds->ctx, own);
    return rc;
}

/* A window as wide as two rounds of the team (of every rank's team):
 * enough to keep them busy. Results never depend on it. */
static size_t window_width(const ember_ds *ds)
{
    size_t w = (size_t)ds->ctx->threads * 2 *
               (size_t)ember__comm_size(ds->ctx);
    return w ? w : 1;
}

/* Computes partitions [lo, hi) and copies records from them into buf until
 * it holds n. */
static int take_window(ember_ds *ds, size_t lo, size_t hi, ember__buf *parts,
                       size_t n, void *buf, size_t *got, char *msg)
{
    int rc = run_window(ds, lo, hi, parts, msg);
    size_t size = ds->type.size;
    for (size_t i = 0; !rc && i < hi - lo && *got < n; i++) {
        size_t m = parts[i].n < n - *got ? parts[i].n : n - *got;
        if (m)
            ember__copy((unsigned char *)buf + *got * size, parts[i].data, m * size);
        *got += m;
    }
    return rc;
}

int ember_take(ember_ds *ds, size_t n, void *buf, size_t *got, char *msg)
{
    int rc = check_ds(ds, got, "take", msg);
    if (!rc && !buf && n)
        rc = ember__err(msg, EMBER_EINVAL, "take: NULL buffer");
    if (rc)
        return rc;
    *got = 0;
    size_t W = window_width(ds);
    ember__buf *parts = ember__calloc(ds->ctx, W, sizeof *parts);
    if (!parts)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t lo = 0; !rc && *got < n && lo < ds->nparts; lo += W) {
        size_t hi = lo + W < ds->nparts ? lo + W : ds->nparts;
        rc = take_window(ds, lo, hi, parts, n, buf, got, msg);
        /* The window's width comes from the team size, so the failed
         * partition may be one past the n-th record that a smaller team
         * would not have run. Again one partition at a time: only a
         * partition that is needed can fail the call. */
        if (rc && hi - lo > 1) {
            rc = EMBER_OK;
            ember__msg_clear(msg);
            for (size_t p = lo; !rc && *got < n && p < hi; p++)
                rc = take_window(ds, p, p + 1, parts, n, buf, got, msg);
        }
    }
    ember__parts_free(ds->ctx, parts, W);
    return rc;
}

/* ---- foreach ------------------------------------------------------------------ */

/* Under MPI fn runs on the rank that owns each partition, and only there
 * (include/ember/mpi.h); errors are agreed like any action's. */

typedef struct {
    ember_foreach_fn fn;
    void *arg;
} foreach_state;

static int foreach_sink(void *state, size_t part, const void *recs, size_t n,
                        int last)
{
    (void)last;
    foreach_state *s = state;
    return n ? s->fn(recs, n, part, s->arg) : 0;
}

int ember_foreach(ember_ds *ds, ember_foreach_fn fn, void *arg, char *msg)
{
    int rc = check_ds(ds, (void *)fn, "foreach", msg);
    if (rc)
        return rc;
    foreach_state s = {fn, arg};
    return ember__run_user(ds, "foreach", foreach_sink, &s, msg);
}

/* ---- partitions in order --------------------------------------------------- */

int ember__run_ordered(ember_ds *ds, ember__part_fn fn, void *state,
                       uint64_t *offsets, char *msg)
{
    size_t W = window_width(ds);
    ember__buf *parts = ember__calloc(ds->ctx, W, sizeof *parts);
    if (!parts)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = EMBER_OK;
    offsets[0] = 0;
    for (size_t lo = 0; !rc && lo < ds->nparts; lo += W) {
        size_t hi = lo + W < ds->nparts ? lo + W : ds->nparts;
        rc = run_window(ds, lo, hi, parts, msg);
        for (size_t i = 0; !rc && i < hi - lo; i++) {
            rc = fn(state, lo + i, parts[i].data, parts[i].n, msg);
            offsets[lo + i + 1] = offsets[lo + i] + parts[i].n;
        }
    }
    ember__parts_free(ds->ctx, parts, W);
    return rc;
}

/* ---- broadcast ------------------------------------------------------------------ */

/* A broadcast is an action: unless ds is an array source (then it is a
 * view of that array), ds is computed once into one array, whose bytes are
 * charged against the memory budget until the last holder lets go. */
int ember_broadcast(ember_bcast **out, ember_ds *ds, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ds)
        return ember__err(msg, EMBER_EINVAL, "broadcast: NULL argument");
    int rc = ember__not_in_task("broadcast", msg);
    if (rc)
        return rc;
    ember_ctx *ctx = ds->ctx;
    ember_bcast *bc = ember__calloc(ctx, 1, sizeof *bc);
    if (!bc)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (ds->op == EMBER__ARRAY) {
        bc->data = ds->u.array.data; /* shared memory: a view */
        bc->n = ds->u.array.n;
    } else {
        void *data = NULL;
        size_t n = 0;
        rc = ember_collect_alloc(ds, &data, &n, msg);
        bc->data = bc->owned = data;
        bc->n = n;
        bc->charged = n * ds->type.size;
    }
    if (!rc)
        rc = ember__store_charge(ctx, bc->charged, msg);
    if (rc) {
        ember__store_release_charge(ctx, bc->charged);
        ember__free(ctx, bc->owned);
        ember__free(ctx, bc);
        return rc;
    }
    bc->ctx = ctx;
    bc->source_id = ds->id;
    if (!bc->owned) {
        bc->ds = ds;
        ds->refs++;
    }
    bc->type = ds->type;
    bc->refs = 1;
    bc->user_handle = 1;
    bc->next = ctx->bcasts;
    if (ctx->bcasts)
        ctx->bcasts->prev = bc;
    ctx->bcasts = bc;
    ember__stat_gauge(ctx, &ctx->stats.live_broadcasts, 1, 1);
    *out = bc;
    return EMBER_OK;
}
