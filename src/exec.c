/* exec.c: the executor. Plans an action's stages and runs them.
 *
 * For each partition of the target, planning walks the lineage back to a
 * root: a source, a checkpoint, a finished shuffle, or a stored block of a
 * persisted dataset. The walk is a loop, never recursion, so a chain of
 * 100,000 maps plans in constant stack. The narrow steps met on the way are
 * laid out in an array and run in order on cache-sized blocks that
 * ping-pong between two task buffers: a chain of maps reads its input once
 * and writes its output once, and nothing in between is materialized
 * unless persisted.
 *
 * Wide dependencies end a stage: before the tasks run, every unfinished
 * shuffle among the ancestors runs, oldest first (ids grow from parents to
 * children), and stores its outputs. Partitions then run on the OpenMP team
 * with dynamic scheduling; results never depend on the team size because
 * each partition's work is fixed and callers combine per-partition results
 * in partition order. When several partitions fail, the error of the lowest
 * partition is reported, so even errors are deterministic.
 *
 * Under MPI (comm.h) a rank runs only the partitions it owns
 * (ember__owners: the block map, carried through narrow steps and
 * unions), shuffles are collective, and every stage ends with the ranks
 * agreeing on its outcome, so all ranks return the same status.
 *
 * Floor 3 of the engine (docs/design.md), with shuffle.c: it calls the
 * nodes, the block store and the file layer below it, never an action or
 * a checkpoint. Checkpoints reach it through one small interface: a root
 * it can read (a written checkpoint's file, by offsets), a capture it can
 * feed (a marked dataset's ckpt_parts), and ctx->ckpt_commit, which
 * checkpoint.c installs and the executor calls after an action.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    ST_MAP,
    ST_FILTER,
    ST_FLAT,
    ST_MAPPART,
    ST_SAMPLE,
    ST_ZIP,
    ST_TEE, /* captures a persisted dataset's partition for the store */
    ST_CKPT /* captures a marked dataset's partition for its checkpoint */
} step_kind;

typedef struct {
    step_kind kind;
    ember_ds *node;
    size_t part;     /* the partition of node this step produces */
    uint64_t index;  /* records seen (sample), or consumed (zip) */
    ember__buf acc;  /* map_partitions input, zip's right side, tee capture */
    int filled;      /* tee, checkpoint capture: the map before it wrote the
                        block into acc already */
} step;

typedef struct task {
    ember_ctx *ctx;
    step *steps;
    size_t nsteps, cap;
    unsigned char *buf[2];
    size_t bufcap[2];       /* bytes */
    unsigned char *keep;
    size_t keepcap;
    ember__view root_view;
    int have_view;
    ember__sink_fn sink;
    void *state;
    size_t part;            /* target partition, passed to the sink */
    ember_ds *ds;           /* the dataset the action runs on */
    const char *what;       /* the action whose user function the sink
                               calls (ember__run_user), or NULL */
    char *msg;
} task;

struct ember_emitter {
    ember_ctx *ctx;
    unsigned char **buf;
    size_t *cap;            /* bytes */
    size_t n;
    size_t size;
    size_t part;
    int failed;             /* the first failed ember_emit's status: the
                               task reports it, whatever the function
                               returned */
};

int ember_emit(ember_emitter *em, const void *records, size_t n)
{
    if (!em)
        return EMBER_EINVAL;
    if (!records && n)
        return em->failed = em->failed ? em->failed : EMBER_EINVAL;
    size_t need = ember__mul(em->n + n, em->size);
    if (need > *em->cap) {
        size_t cap = *em->cap ? *em->cap : 4096;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        unsigned char *p = ember__realloc(em->ctx, *em->buf, cap);
        if (!p)
            return em->failed = em->failed ? em->failed : EMBER_ENOMEM;
        *em->buf = p;
        *em->cap = cap;
    }
    ember__copy(*em->buf + em->n * em->size, records, n * em->size);
    em->n += n;
    return EMBER_OK;
}

size_t ember_emitter_partition(const ember_emitter *em)
{
    return em ? em->part : 0;
}

static int grow(ember_ctx *ctx, unsigned char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return EMBER_OK;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    void *q = ember__realloc(ctx, *p, c);
    if (!q)
        return EMBER_ENOMEM;
    *p = q;
    *cap = c;
    return EMBER_OK;
}

static double sample_u01(uint64_t seed, size_t part, uint64_t index)
{
    /* Counter-based: a pure function of (seed, partition, index). */
    uint64_t k = ember__hash64(seed ^ ember__hash64((uint64_t)part + 0x9e3779b97f4a7c15ULL));
    uint64_t r = ember__hash64(k + index * 0xd1b54a32d192ed03ULL);
    return (double)(r >> 11) * 0x1.0p-53;
}

/* ---- planning ---------------------------------------------------------- */

static int push_step(task *t, step_kind kind, ember_ds *node, size_t part)
{
    if (t->nsteps == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        step *s = ember__realloc(t->ctx, t->steps, ember__mul(cap, sizeof *s));
        if (!s)
            return EMBER_ENOMEM;
        t->steps = s;
        t->cap = cap;
    }
    step *s = &t->steps[t->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->node = node;
    s->part = part;
    s->acc.size = node->type.size;
    return EMBER_OK;
}

static step_kind kind_of(ember__op op)
{
    switch (op) {
    case EMBER__FILTER: return ST_FILTER;
    case EMBER__FLAT_MAP: return ST_FLAT;
    case EMBER__MAP_PARTITIONS: return ST_MAPPART;
    case EMBER__SAMPLE: return ST_SAMPLE;
    case EMBER__ZIP: return ST_ZIP;
    default: return ST_MAP;
    }
}

static int run_partition(ember_ctx *ctx, ember_ds *ds, size_t part,
                         ember__sink_fn sink, void *state, const char *what,
                         char *msg);

static int zip_sink(void *state, size_t part, const void *recs, size_t n,
                    int last)
{
    (void)part;
    (void)last;
    step *s = state;
    return ember__buf_append(s->node->ctx, &s->acc, recs, n);
}

/* The zip's right side of one partition, computed into the step's buffer:
 * co-partitioned inputs may filter differently, so they cannot share
 * blocks. This nests once per zip, not per lineage step. */
static int zip_prepare(task *t, step *s)
{
    s->acc.size = s->node->parent[1]->type.size;
    return run_partition(t->ctx, s->node->parent[1], s->part, zip_sink, s,
                         NULL, t->msg);
}

/* A stored block that cannot be read back (its spill file gone, short or
 * damaged: the store names it in t->msg). As Spark does for a lost block,
 * it is dropped and the partition computed again from lineage: 0, the
 * plan goes on to the node's parents and stores it anew. A checkpoint's
 * is read again from its file. A local checkpoint has no lineage and no
 * file, its blocks are the only copy: rc, every time (the block stays, so
 * each action names the file). A finished shuffle's
 * outputs come from a stage, not a task: rc for this action, and the
 * block is dropped so that the next one runs the shuffle again. */
static int lost_block(task *t, ember_ds *node, size_t part, int rc)
{
    if (node->op == EMBER__CHECKPOINT && !node->ckpt_path)
        return rc;
    ember__store_drop_part(t->ctx, node->id, part);
    if (ember__is_root(node) && node->op != EMBER__CHECKPOINT)
        return rc;
    if (t->msg)
        t->msg[0] = '\0';
    return 0;
}

/* Is partition `part` of a persisted node stored? Holds a view if so. */
static int try_cached(task *t, ember_ds *node, size_t part)
{
    if (node->level == EMBER_NONE && !ember__is_root(node))
        return 0;
    if (node->op == EMBER__RANGE || node->op == EMBER__ARRAY)
        return 0;
    int rc = ember__store_get(t->ctx, node->id, part, &t->root_view, t->msg);
    if (rc == EMBER_OK) {
        t->have_view = 1;
        return 1;
    }
    if (rc == EMBER_ECORRUPT || rc == EMBER_EIO)
        return lost_block(t, node, part, rc);
    return rc < 0 ? rc : 0;
}

/* Walks from (ds, part) to a root; leaves steps in execution order. */
static int plan(task *t, ember_ds *ds, size_t part, ember_ds **root,
                size_t *root_part)
{
    ember_ds *node = ds;
    size_t q = part;
    int rc;
    for (;;) {
        rc = try_cached(t, node, q);
        if (rc < 0)
            return rc;
        if (rc == 1 || node->op == EMBER__CHECKPOINT)
            break;
        if (node->op == EMBER__RANGE || node->op == EMBER__ARRAY) {
            /* A marked source is captured like any dataset. */
            if (node->ckpt_state == 1 && (rc = push_step(t, ST_CKPT, node, q)))
                return rc;
            break;
        }
        if (ember__is_root(node) && node->op == EMBER__SHUFFLE &&
            !ember__comm_owns(t->ctx, node->nparts, q))
            return ember__err(t->msg, EMBER_ESTATE,
                              "partition %zu of #%llu (%s) is held by rank %d, "
                              "not by rank %d: under MPI, the inputs of a zip "
                              "must be distributed alike",
                              q, (unsigned long long)node->id, node->name,
                              ember__comm_owner(t->ctx, node->nparts, q),
                              ember__comm_rank(t->ctx));
        if (ember__is_root(node))
            return ember__err(t->msg, EMBER_ESTATE,
                              "internal: output of #%llu partition %zu missing",
                              (unsigned long long)node->id, q);
        if (node->op == EMBER__SHUFFLE)
            return ember__err(t->msg, EMBER_ESTATE,
                              "internal: shuffle #%llu did not run",
                              (unsigned long long)node->id);
        if (node->level != EMBER_NONE && (rc = push_step(t, ST_TEE, node, q)))
            return rc;
        if (node->ckpt_state == 1 && (rc = push_step(t, ST_CKPT, node, q)))
            return rc;
        if (node->op == EMBER__UNION) {
            size_t n0 = node->parent[0]->nparts;
            node = q < n0 ? node->parent[0] : node->parent[1];
            q = q < n0 ? q : q - n0;
            continue;
        }
        if ((rc = push_step(t, kind_of(node->op), node, q)))
            return rc;
        node = node->parent[0];
    }
    *root = node;
    *root_part = q;
    for (size_t i = 0, j = t->nsteps; i + 1 < j; i++, j--) {
        step tmp = t->steps[i];
        t->steps[i] = t->steps[j - 1];
        t->steps[j - 1] = tmp;
    }
    for (size_t i = 0; i < t->nsteps; i++)
        if (t->steps[i].kind == ST_ZIP && (rc = zip_prepare(t, &t->steps[i])))
            return rc;
    return EMBER_OK;
}

/* ---- running blocks through the steps ----------------------------------- */

/* "map function of #11 (map) returned 7 in partition 0": every user
 * function's failure, a step's or an action's, names the same things. */
static int user_failed_in(char *msg, const char *what, const ember_ds *ds,
                          int r, size_t part)
{
    int misused = ember__parallel_misused();
    return ember__err(msg, misused ? EMBER_ESTATE : EMBER_EUSER,
                      "%s function of #%llu (%s) returned %d in partition %zu%s",
                      what, (unsigned long long)ds->id, ds->name, r, part,
                      misused ? ", after it called an ember action or broadcast, "
                                "which a user function must not (ember.h): compute "
                                "the value before, and pass it in the arg or a "
                                "broadcast"
                              : "");
}

static int user_failed(task *t, const step *s, const char *what, int r)
{
    return user_failed_in(t->msg, what, s->node, r, s->part);
}

/* What a sink said of its failure, for the thread it ran on (a sink runs
 * on its task's thread). */
static _Thread_local struct {
    int status;
    char msg[EMBER_MSG_SIZE];
} sink_said;

int ember__sink_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sink_said.msg, sizeof sink_said.msg, fmt, ap);
    va_end(ap);
    sink_said.status = status;
    return EMBER__SINK_SAID;
}

/* A sink's non-zero return: what it said (ember__sink_fail), the user
 * function's status for an action's sink (any value), else an ember status
 * (an out-of-memory, say). */
static int sink_failed(const task *t, int r, char *msg)
{
    if (r == EMBER__SINK_SAID)
        return ember__err(msg, sink_said.status, "%s", sink_said.msg);
    if (t->what)
        return user_failed_in(msg, t->what, t->ds, r, t->part);
    return ember__err(msg, r < 0 ? r : EMBER_EUSER,
                      "partition %zu of #%llu (%s): %s", t->part,
                      (unsigned long long)t->ds->id, t->ds->name,
                      ember_strerror(r < 0 ? r : EMBER_EUSER));
}

/* A failed ember_emit, which the function may have passed on or not. */
static int emit_failed(task *t, const step *s, const char *what, int status)
{
    return ember__err(t->msg, status, "%s function of #%llu in partition %zu: "
                      "ember_emit failed: %s", what, (unsigned long long)s->node->id,
                      s->part, status == EMBER_ENOMEM
                                   ? "out of memory"
                                   : "NULL records with a count above 0");
}

/* Picks the ping-pong buffer that cur is not in, with room for bytes. */
static int other_buf(task *t, const unsigned char *cur, size_t bytes, int *w)
{
    *w = (cur == t->buf[0]) ? 1 : 0;
    return grow(t->ctx, &t->buf[*w], &t->bufcap[*w], bytes);
}

static int keep_flags(task *t, size_t n)
{
    return grow(t->ctx, &t->keep, &t->keepcap, n);
}

/* Copies the records with keep[i] set to out; returns how many. */
static size_t compact(const unsigned char *in, const unsigned char *keep,
                      size_t n, size_t size, unsigned char *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            memcpy(out + (m++) * size, in + i * size, size);
    return m;
}

static void zip_records(const ember_type *ta, const ember_type *tb,
                        const ember_type *to, const unsigned char *a,
                        const unsigned char *b, size_t n, unsigned char *out)
{
    uint32_t na = ta->nfields;
    for (size_t i = 0; i < n; i++) {
        unsigned char *o = out + i * to->size;
        memcpy(o, a + i * ta->size, ta->size < to->size ? ta->size : to->size);
        for (uint32_t f = 0; f < tb->nfields; f++)
            memcpy(o + to->field[na + f].offset,
                   b + i * tb->size + tb->field[f].offset,
                   ember_scalar_size(tb->field[f].kind) * tb->field[f].count);
    }
}

/* One step on a block: *cur / *n become the step's output. Returns
 * EMBER_NOTCACHED-free statuses; 1 means "the step keeps the data". */
static int apply(task *t, step *s, const unsigned char **cur, size_t *n)
{
    ember_ds *d = s->node;
    size_t in_size = d->parent[0] ? d->parent[0]->type.size : d->type.size;
    int w, r, rc;
    switch (s->kind) {
    case ST_MAP: {
        /* A map whose records the next step keeps (a cached map) writes
         * them there: a copy of every record less. */
        step *keep = s + 1 < t->steps + t->nsteps && s[1].node == d &&
                             (s[1].kind == ST_TEE || s[1].kind == ST_CKPT)
                         ? s + 1
                         : NULL;
        unsigned char *out;
        if (keep) {
            if ((rc = ember__buf_reserve(t->ctx, &keep->acc, keep->acc.n + *n)))
                return ember__err(t->msg, rc, "out of memory caching #%llu",
                                  (unsigned long long)d->id);
            out = keep->acc.data + keep->acc.n * keep->acc.size;
        } else {
            if ((rc = other_buf(t, *cur, ember__mul(*n, d->type.size), &w)))
                return rc;
            out = t->buf[w];
        }
        if ((r = ((ember_map_fn)d->u.f.fn)(*cur, out, *n, d->u.f.arg)))
            return user_failed(t, s, "map", r);
        if (keep)
            keep->filled = 1;
        *cur = out;
        return EMBER_OK;
    }
    case ST_FILTER:
    case ST_SAMPLE:
        if ((rc = keep_flags(t, *n)) ||
            (rc = other_buf(t, *cur, ember__mul(*n, in_size), &w)))
            return rc;
        if (s->kind == ST_FILTER) {
            memset(t->keep, 0, *n);
            r = ((ember_filter_fn)d->u.f.fn)(*cur, t->keep, *n, d->u.f.arg);
            if (r)
                return user_failed(t, s, "filter", r);
        } else {
            for (size_t i = 0; i < *n; i++)
                t->keep[i] = sample_u01(d->u.sample.seed, s->part, s->index + i) <
                             d->u.sample.fraction;
            s->index += *n;
        }
        *n = compact(*cur, t->keep, *n, in_size, t->buf[w]);
        *cur = t->buf[w];
        return EMBER_OK;
    case ST_FLAT: {
        w = (*cur == t->buf[0]) ? 1 : 0;
        ember_emitter em = {t->ctx, &t->buf[w], &t->bufcap[w], 0, d->type.size,
                            s->part, 0};
        r = ((ember_emit_fn)d->u.f.fn)(*cur, *n, &em, d->u.f.arg);
        if (em.failed)
            return emit_failed(t, s, "flat_map", em.failed);
        if (r)
            return user_failed(t, s, "flat_map", r);
        *cur = t->buf[w];
        *n = em.n;
        return EMBER_OK;
    }
    case ST_ZIP: {
        if (s->index + *n > s->acc.n)
            return ember__err(t->msg, EMBER_ELENGTH,
                              "zip #%llu: partition %zu of #%llu has more "
                              "records than that of #%llu (%zu)",
                              (unsigned long long)d->id, s->part,
                              (unsigned long long)d->parent[0]->id,
                              (unsigned long long)d->parent[1]->id, s->acc.n);
        if ((rc = other_buf(t, *cur, ember__mul(*n, d->type.size), &w)))
            return rc;
        zip_records(&d->parent[0]->type, &d->parent[1]->type, &d->type, *cur,
                    s->acc.data + s->index * s->acc.size, *n, t->buf[w]);
        s->index += *n;
        *cur = t->buf[w];
        return EMBER_OK;
    }
    case ST_MAPPART:
        s->acc.size = in_size;
        if ((rc = ember__buf_append(t->ctx, &s->acc, *cur, *n)))
            return ember__err(t->msg, rc, "out of memory in map_partitions");
        return 1;
    case ST_TEE:
    case ST_CKPT:
        if (s->filled) {
            s->filled = 0;
            s->acc.n += *n;
            return EMBER_OK;
        }
        if ((rc = ember__buf_append(t->ctx, &s->acc, *cur, *n)))
            return ember__err(t->msg, rc, "out of memory caching #%llu",
                              (unsigned long long)d->id);
        return EMBER_OK;
    }
    return EMBER_EINVAL;
}

static int push(task *t, size_t from, const unsigned char *cur, size_t n)
{
    for (size_t i = from; i < t->nsteps; i++) {
        int rc = apply(t, &t->steps[i], &cur, &n);
        if (rc == 1)
            return EMBER_OK;
        if (rc)
            return rc;
        if (n == 0)
            return EMBER_OK; /* filtered away: user functions get records */
    }
    if (n == 0)
        return EMBER_OK;
    int r = t->sink(t->state, t->part, cur, n, 0);
    return r ? sink_failed(t, r, t->msg) : EMBER_OK;
}

static size_t block_records(const task *t, size_t size)
{
    size_t b = t->ctx->block_bytes / size;
    return b ? b : 1;
}

/* Feeds data (n records of size) into the steps from `from`, in blocks. */
static int feed(task *t, size_t from, const unsigned char *data, size_t n,
                size_t size)
{
    size_t B = block_records(t, size);
    for (size_t off = 0; off < n; off += B) {
        int rc = push(t, from, data + off * size, n - off < B ? n - off : B);
        if (rc)
            return rc;
    }
    return EMBER_OK;
}

static int emit_range(task *t, ember_ds *r, size_t q)
{
    size_t lo = ember__part_lo(r->u.range.n, r->nparts, q);
    size_t hi = ember__part_lo(r->u.range.n, r->nparts, q + 1);
    size_t B = block_records(t, 8);
    int rc = grow(t->ctx, &t->buf[0], &t->bufcap[0], B * 8);
    for (size_t off = lo; !rc && off < hi; off += B) {
        size_t m = hi - off < B ? hi - off : B;
        int64_t *out = (int64_t *)t->buf[0];
        uint64_t v = (uint64_t)r->u.range.start + (uint64_t)off * (uint64_t)r->u.range.step;
        for (size_t i = 0; i < m; i++, v += (uint64_t)r->u.range.step)
            out[i] = (int64_t)v;
        rc = push(t, 0, t->buf[0], m);
    }
    return rc;
}

/* A dataset checkpoint's file, by name, but only the file this context
 * wrote: another context's under the same name would verify by its own
 * checksum. The first task of a parallel pass to read it hashes it whole;
 * the others, while that pass lasts, check that its checksum header and
 * size are still those (so the same bytes, unless changed in place, which
 * the Fletcher32 of the chunks they read catches). Hashing it for every
 * partition read the file once a partition. */
static int open_checkpoint(ember_ds *ds, ember__ckr **r, char *msg)
{
    uint64_t pass;
#pragma omp atomic read
    pass = ds->ctx->passes;
    int rc = EMBER_OK, hashed = 0;
#pragma omp critical(ember_checkpoint_verify)
    if (ds->ckpt_verified != pass) {
        hashed = 1;
        rc = ember__ckr_open_as(ds->ctx, r, ds->ckpt_path, ds->ckpt_head,
                                ds->ckpt_size, msg);
        if (!rc)
            ds->ckpt_verified = pass;
    }
    if (!hashed)
        rc = ember__ckr_open_known(ds->ctx, r, ds->ckpt_path, ds->ckpt_head,
                                   ds->ckpt_size, msg);
    return rc == EMBER_EMISMATCH ? EMBER_ECORRUPT : rc;
}

/* The root a checkpoint gives the executor: partition part of its file,
 * through the file layer. A local checkpoint's blocks are read from the
 * store by try_cached; reaching here means one is gone. */
static int read_checkpoint_part(ember_ds *ds, size_t part, ember__buf *b,
                                char *msg)
{
    if (!ds->ckpt_path)
        return ember__err(msg, EMBER_ESTATE,
                          "local checkpoint #%llu lost partition %zu (was it "
                          "unpersisted?)", (unsigned long long)ds->id, part);
    uint64_t lo = ds->ckpt_offsets[part], hi = ds->ckpt_offsets[part + 1];
    ember__ckr *r = NULL;
    b->size = ds->type.size;
    int rc = ember__buf_reserve(ds->ctx, b, (size_t)(hi - lo));
    if (!rc)
        rc = open_checkpoint(ds, &r, msg);
    if (!rc)
        rc = ember__ckr_slice(r, "data", &ds->type, lo, (size_t)(hi - lo),
                              b->data, msg);
    if (!rc)
        b->n = (size_t)(hi - lo);
    ember__ckr_close(&r);
    return rc;
}

/* The capture a checkpoint gives the executor: a task that computed
 * partition part of a marked dataset leaves the records (moved out of b)
 * in ds->ckpt_parts, unless another task got there first. */
static void capture(ember_ds *ds, size_t part, ember__buf *b)
{
    size_t bytes = b->n * b->size;
    int took = 0;
#pragma omp critical(ember_checkpoint_capture)
    if (ds->ckpt_state == 1 && !ds->ckpt_have[part]) {
        ds->ckpt_parts[part] = *b;
        ds->ckpt_have[part] = 1;
        ds->ckpt_bytes += bytes;
        b->data = NULL;
        b->n = b->cap = 0;
        took = 1;
    }
    if (took)
        ember__stat_gauge(ds->ctx, &ds->ctx->stats.dataset_bytes, 1, bytes);
}

/* The records of partition q of root when they lie in one piece in
 * memory (a stored block, an array's range; *n of them), else NULL. */
static const unsigned char *root_records(task *t, ember_ds *root, size_t q, size_t *n)
{
    if (t->have_view) {
        *n = t->root_view.n;
        return t->root_view.data;
    }
    if (root->op != EMBER__ARRAY)
        return NULL;
    size_t lo, hi;
    ember__array_bounds(root, q, &lo, &hi);
    *n = hi - lo;
    return root->u.array.data + lo * root->type.size;
}

static int emit_root(task *t, ember_ds *root, size_t q)
{
    if (t->have_view)
        return feed(t, 0, t->root_view.data, t->root_view.n, root->type.size);
    if (root->op == EMBER__RANGE)
        return emit_range(t, root, q);
    if (root->op == EMBER__CHECKPOINT) {
        ember__buf b = {0};
        int rc = read_checkpoint_part(root, q, &b, t->msg);
        if (!rc)
            rc = feed(t, 0, b.data, b.n, root->type.size);
        ember__buf_free(t->ctx, &b);
        return rc;
    }
    size_t lo, hi;
    ember__array_bounds(root, q, &lo, &hi);
    return feed(t, 0, root->u.array.data + lo * root->type.size, hi - lo,
                root->type.size);
}

/* Step i, a map_partitions, on its whole input partition (n records at
 * in); what it emits goes on to the steps after it. */
static int run_mappart(task *t, size_t i, const void *in, size_t n)
{
    step *s = &t->steps[i];
    ember_ds *d = s->node;
    unsigned char *out = NULL;
    size_t cap = 0;
    int rc;
    ember_emitter em = {t->ctx, &out, &cap, 0, d->type.size, s->part, 0};
    int r = ((ember_emit_fn)d->u.f.fn)(in, n, &em, d->u.f.arg);
    if (em.failed)
        rc = emit_failed(t, s, "map_partitions", em.failed);
    else if (r)
        rc = user_failed(t, s, "map_partitions", r);
    else
        rc = feed(t, i + 1, out, em.n, d->type.size);
    ember__free(t->ctx, out);
    return rc;
}

static int finish_step(task *t, size_t i)
{
    step *s = &t->steps[i];
    ember_ds *d = s->node;
    int rc = EMBER_OK;
    if (s->kind == ST_MAPPART) {
        rc = run_mappart(t, i, s->acc.data, s->acc.n);
        ember__buf_free(t->ctx, &s->acc);
    } else if (s->kind == ST_ZIP && s->index != s->acc.n) {
        rc = ember__err(t->msg, EMBER_ELENGTH,
                        "zip #%llu: partition %zu of #%llu has %llu records but "
                        "that of #%llu has %zu",
                        (unsigned long long)d->id, s->part,
                        (unsigned long long)d->parent[0]->id,
                        (unsigned long long)s->index,
                        (unsigned long long)d->parent[1]->id, s->acc.n);
    } else if (s->kind == ST_CKPT) {
        capture(d, s->part, &s->acc);
    } else if (s->kind == ST_TEE) {
        ember__buf_fit(t->ctx, &s->acc); /* grown by doubling: its slack */
        void *data = s->acc.data;
        size_t n = s->acc.n;
        s->acc.data = NULL;
        s->acc.n = s->acc.cap = 0;
        rc = ember__store_put(t->ctx, d->id, s->part, data, n, d->type.size,
                              d->level, t->msg);
        /* Computed once: computing it again is a recompute, whether the
         * block was evicted or never got room. */
        d->stored_once[s->part] = 1;
        if (rc == EMBER_NOTCACHED)
            rc = EMBER_OK; /* no room: it is computed again when needed */
    }
    return rc;
}

static void task_free(task *t)
{
    for (size_t i = 0; i < t->nsteps; i++)
        ember__buf_free(t->ctx, &t->steps[i].acc);
    ember__free(t->ctx, t->steps);
    ember__free(t->ctx, t->buf[0]);
    ember__free(t->ctx, t->buf[1]);
    ember__free(t->ctx, t->keep);
    if (t->have_view)
        ember__store_release(t->ctx, &t->root_view);
}

/* Records in partition q of the root, when known before it is read. */
static int root_count(const task *t, const ember_ds *root, size_t q, size_t *n)
{
    size_t lo, hi;
    if (t->have_view) {
        *n = t->root_view.n;
    } else if (root->op == EMBER__RANGE) {
        *n = ember__part_lo(root->u.range.n, root->nparts, q + 1) -
             ember__part_lo(root->u.range.n, root->nparts, q);
    } else if (root->op == EMBER__ARRAY) {
        ember__array_bounds(root, q, &lo, &hi);
        *n = hi - lo;
    } else {
        return 0;
    }
    return 1;
}

/* Gives each capture (a cached or checkpoint-marked node) that only maps
 * stand between it and the root its room at once, of exactly the records
 * it will hold: grown block by block it was reallocated, and copied,
 * about once over (and held up to twice the room it needed). */
static int size_captures(task *t, const ember_ds *root, size_t q)
{
    size_t n;
    if (!root_count(t, root, q, &n))
        return EMBER_OK;
    for (size_t i = 0; i < t->nsteps; i++) {
        step *s = &t->steps[i];
        if (s->kind != ST_MAP && s->kind != ST_ZIP && s->kind != ST_TEE &&
            s->kind != ST_CKPT)
            break;
        if ((s->kind == ST_TEE || s->kind == ST_CKPT) && n && !s->acc.cap) {
            size_t bytes = ember__mul(n, s->acc.size);
            void *p = ember__store_take_room(t->ctx, bytes);
            if (!p)
                p = ember__malloc(t->ctx, bytes);
            if (!p)
                return ember__err(t->msg, EMBER_ENOMEM, "out of memory caching #%llu",
                                  (unsigned long long)s->node->id);
            s->acc.data = p;
            s->acc.cap = n;
        }
    }
    return EMBER_OK;
}

static int run_partition(ember_ctx *ctx, ember_ds *ds, size_t part,
                         ember__sink_fn sink, void *state, const char *what,
                         char *msg)
{
    task t;
    memset(&t, 0, sizeof t);
    t.ctx = ctx;
    t.ds = ds;
    t.what = what;
    t.sink = sink;
    t.state = state;
    t.part = part;
    t.msg = msg;
    ember_ds *root = NULL;
    size_t rq = 0;
    int rc = plan(&t, ds, part, &root, &rq);
    if (!rc)
        rc = size_captures(&t, root, rq);
    for (size_t i = 0; !rc && i < t.nsteps; i++) {
        step *s = &t.steps[i];
        if (s->kind == ST_TEE && s->node->stored_once[s->part])
            ember__stat_add(ctx, &ctx->stats.recomputes, 1);
    }
    /* A map_partitions right on a root that holds the partition in one
     * piece (an array's range, a stored block) reads it where it is: no
     * copy into the step's buffer (PageRank's passes, say). */
    const unsigned char *whole = NULL;
    size_t whole_n = 0, first = 0;
    if (!rc && t.nsteps && t.steps[0].kind == ST_MAPPART)
        whole = root_records(&t, root, rq, &whole_n);
    if (!rc && whole) {
        rc = run_mappart(&t, 0, whole, whole_n);
        first = 1;
    } else if (!rc) {
        rc = emit_root(&t, root, rq);
    }
    for (size_t i = first; !rc && i < t.nsteps; i++)
        rc = finish_step(&t, i);
    if (!rc) {
        int r = sink(state, part, NULL, 0, 1);
        if (r)
            rc = sink_failed(&t, r, msg);
    }
    task_free(&t);
    return rc;
}

/* ---- stages ------------------------------------------------------------------ */

/* Partitions of d this rank keeps in its block store: its block. */
static size_t owned_count(const ember_ds *d)
{
    size_t lo, hi;
    ember__comm_owned(d->ctx, d->nparts, &lo, &hi);
    return hi - lo;
}

/* A finished shuffle whose outputs lost a spill file (a cleaner of the
 * scratch dir) runs again: its lost blocks are dropped first, by a stat of
 * each spilled one. */
static int shuffle_missing(const ember_ds *d)
{
    if (d->op != EMBER__SHUFFLE)
        return 0;
    if (d->u.shuffle.done)
        ember__store_drop_missing(d->ctx, d->id);
    return !d->u.shuffle.done || ember__store_count(d->ctx, d->id) < owned_count(d);
}

/* A shuffle that has run: the walk for stages stops there. Not "whose
 * outputs are stored": that differs between ranks (one node's scratch
 * cleaned), and the ranks must agree on lists of one length. A finished
 * shuffle that lost outputs is in the list and runs again; if its own
 * inputs lost theirs too, that run fails and the next action reruns both. */
static int shuffle_done(const ember_ds *d)
{
    return d->op == EMBER__SHUFFLE && d->u.shuffle.done;
}

/* Runs every unfinished shuffle among ds's ancestors, oldest first, so a
 * shuffle's inputs are ready before it runs. Under MPI a shuffle is
 * collective: the ranks agree first on which ones are missing anywhere
 * (a rank's store may have lost what another still has), so every rank
 * runs the same shuffles in the same order. */
static int run_shuffles(ember_ds *ds, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    ember_ds **a = NULL;
    int64_t *miss = NULL;
    size_t n = 0;
    int rc = ember__ancestors(ds, shuffle_done, &a, &n);
    if (!rc && !(miss = ember__calloc(ctx, n + 1, sizeof *miss)))
        rc = EMBER_ENOMEM;
    if (rc) {
        ember__free(ctx, a);
        return ember__err(msg, rc, "out of memory planning stages");
    }
    for (size_t i = 0; i < n; i++)
        miss[i] = shuffle_missing(a[i]);
    rc = ember__comm_agree(ctx, miss, n, EMBER__AGREE_OR, msg);
    for (size_t i = 0; !rc && i < n; i++)
        if (miss[i]) {
            a[i]->u.shuffle.done = 0;
            rc = ember__shuffle_run(a[i], msg);
        }
    ember__free(ctx, miss);
    ember__free(ctx, a);
    return rc;
}

/* ---- owners ----------------------------------------------------------------- */

/* The node whose partitioning ds's follows: narrow steps keep their
 * parent's partitions (zip its left parent's), so ownership flows up to a
 * source, a checkpoint, a shuffle or a union. */
static ember_ds *owner_root(ember_ds *d)
{
    for (;;) {
        switch (d->op) {
        case EMBER__MAP:
        case EMBER__FILTER:
        case EMBER__FLAT_MAP:
        case EMBER__MAP_PARTITIONS:
        case EMBER__SAMPLE:
        case EMBER__ZIP:
            if (!d->parent[0])
                return d;
            d = d->parent[0];
            continue;
        default:
            return d;
        }
    }
}

typedef struct {
    ember_ds *ds;
    size_t off;
} owner_item;

/* Fills own[0 .. ds->nparts): a worklist over nested unions, not
 * recursion. */
static int fill_owners(ember_ds *ds, int *own)
{
    ember_ctx *ctx = ds->ctx;
    size_t cap = 16, n = 0;
    owner_item *w = ember__malloc(ctx, cap * sizeof *w);
    if (!w)
        return EMBER_ENOMEM;
    w[n++] = (owner_item){ds, 0};
    while (n) {
        owner_item it = w[--n];
        ember_ds *r = owner_root(it.ds);
        if (r->op == EMBER__CHECKPOINT && !r->ckpt_path && r->cut_owner) {
            /* a union cut by a local checkpoint: its blocks stay where the
             * union's parents placed them */
            memcpy(own + it.off, r->cut_owner, r->nparts * sizeof *own);
            continue;
        }
        if (r->op != EMBER__UNION) {
            for (int k = 0; k < ctx->comm.size; k++) {
                size_t lo, hi;
                ember__comm_owned_of(r->nparts, ctx->comm.size, k, &lo, &hi);
                for (size_t p = lo; p < hi; p++)
                    own[it.off + p] = k;
            }
            continue;
        }
        if (n + 2 > cap) {
            owner_item *g = ember__realloc(ctx, w, cap * 2 * sizeof *w);
            if (!g) {
                ember__free(ctx, w);
                return EMBER_ENOMEM;
            }
            w = g;
            cap *= 2;
        }
        w[n++] = (owner_item){r->parent[1], it.off + r->parent[0]->nparts};
        w[n++] = (owner_item){r->parent[0], it.off};
    }
    ember__free(ctx, w);
    return EMBER_OK;
}

int ember__owners(ember_ds *ds, int **out, char *msg)
{
    *out = NULL;
    if (ember__comm_size(ds->ctx) == 1)
        return EMBER_OK;
    int *own = ember__malloc(ds->ctx, (ds->nparts + 1) * sizeof *own);
    if (!own || fill_owners(ds, own)) {
        ember__free(ds->ctx, own);
        return ember__err(msg, EMBER_ENOMEM, "out of memory mapping partitions");
    }
    *out = own;
    return EMBER_OK;
}

int ember__run(ember_ds *ds, ember__sink_fn sink, void *state, char *msg)
{
    return ember__run_parts(ds, 0, ds->nparts, sink, state, msg);
}

typedef struct {
    ember_ds *ds;
    ember__sink_fn sink;
    void *state;
    const char *what;
} run_state;

static int run_task(void *state, size_t p, char *msg)
{
    run_state *r = state;
    return run_partition(r->ds->ctx, r->ds, p, r->sink, r->state, r->what, msg);
}

typedef struct {
    ember__task_fn fn;
    void *state;
    const size_t *idx;
} owned_job;

static int owned_task(void *state, size_t i, char *msg)
{
    owned_job *j = state;
    return j->fn(j->state, j->idx[i], msg);
}

int ember__parallel_owned(ember_ctx *ctx, size_t lo, size_t hi,
                          const int *owner, ember__task_fn fn, void *state,
                          size_t *failed_at, char *msg)
{
    if (ember__comm_size(ctx) == 1)
        return ember__parallel(ctx, lo, hi, fn, state, failed_at, msg);
    size_t *idx = ember__malloc(ctx, (hi - lo + 1) * sizeof *idx);
    size_t m = 0, failed = hi;
    int rc = idx ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    int me = ember__comm_rank(ctx);
    for (size_t p = lo; !rc && p < hi; p++) {
        size_t blo, bhi;
        if (owner ? owner[p] == me
                  : (ember__comm_owned(ctx, hi, &blo, &bhi), p >= blo && p < bhi))
            idx[m++] = p;
    }
    if (!rc) {
        owned_job j = {fn, state, idx};
        size_t f = 0;
        rc = ember__parallel(ctx, 0, m, owned_task, &j, &f, msg);
        if (rc)
            failed = idx[f];
    }
    ember__free(ctx, idx);
    rc = ember__comm_agree_status(ctx, rc, rc ? failed : 0, msg);
    if (failed_at) {
        /* Every rank learns where: the lowest failed index. */
        int64_t f = rc ? (int64_t)failed : INT64_MAX;
        if (ember__comm_agree(ctx, &f, 1, EMBER__AGREE_MIN, NULL) == EMBER_OK)
            *failed_at = rc ? (size_t)f : hi;
    }
    return rc;
}

/* Under MPI: the partitions of [lo, hi) this rank owns, run on its team;
 * then the ranks agree on the outcome (the lowest failed partition's). */
static int run_owned(ember_ds *ds, size_t lo, size_t hi, run_state *r,
                     char *msg)
{
    int *own = NULL;
    int rc = ember__owners(ds, &own, msg);
    rc = ember__comm_agree_status(ds->ctx, rc, 0, msg);
    if (!rc)
        rc = ember__parallel_owned(ds->ctx, lo, hi, own, run_task, r, NULL, msg);
    ember__free(ds->ctx, own);
    return rc;
}

static int run_parts_as(ember_ds *ds, size_t lo, size_t hi, ember__sink_fn sink,
                        void *state, const char *what, char *msg)
{
    int rc = run_shuffles(ds, msg);
    if (rc)
        return rc;
    run_state r = {ds, sink, state, what};
    if (ember__comm_size(ds->ctx) > 1)
        rc = run_owned(ds, lo, hi, &r, msg);
    else
        rc = ember__parallel(ds->ctx, lo, hi, run_task, &r, NULL, msg);
    ember_ctx *ctx = ds->ctx;
    if (!rc && ctx->ckpt_marked && ctx->ckpt_commit)
        rc = ctx->ckpt_commit(ds, msg);
    return rc;
}

int ember__run_parts(ember_ds *ds, size_t lo, size_t hi, ember__sink_fn sink,
                     void *state, char *msg)
{
    return run_parts_as(ds, lo, hi, sink, state, NULL, msg);
}

int ember__run_user(ember_ds *ds, const char *what, ember__sink_fn sink,
                    void *state, char *msg)
{
    return run_parts_as(ds, 0, ds->nparts, sink, state, what, msg);
}

/* ---- materializing ---------------------------------------------------------- */

typedef struct {
    ember_ctx *ctx;
    ember__buf *parts;
} mat_state;

static int mat_sink(void *state, size_t part, const void *recs, size_t n,
                    int last)
{
    (void)last;
    mat_state *m = state;
    return ember__buf_append(m->ctx, &m->parts[part], recs, n);
}

int ember__parts_nomem(const ember_ds *ds, char *msg)
{
    return ember__err(msg, EMBER_ENOMEM, "out of memory for the state of dataset #%llu's "
                      "%zu partitions (a partition is a task: ask for fewer)",
                      (unsigned long long)ds->id, ds->nparts);
}

int ember__materialize_owned(ember_ds *ds, ember__buf **out, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    *out = NULL;
    ember__buf *parts = ember__calloc(ctx, ds->nparts ? ds->nparts : 1,
                                      sizeof *parts);
    if (!parts)
        return ember__parts_nomem(ds, msg);
    for (size_t p = 0; p < ds->nparts; p++)
        parts[p].size = ds->type.size;
    mat_state m = {ctx, parts};
    int rc = ember__run(ds, mat_sink, &m, msg);
    if (rc) {
        ember__parts_free(ctx, parts, ds->nparts);
        return rc == EMBER_ENOMEM && msg && !msg[0]
                   ? ember__err(msg, rc, "out of memory materializing #%llu",
                                (unsigned long long)ds->id)
                   : rc;
    }
    *out = parts;
    return EMBER_OK;
}

int ember__materialize_into(ember_ds *ds, ember__buf *parts, char *msg)
{
    if (ember__comm_size(ds->ctx) > 1)
        return ember__err(msg, EMBER_EINVAL,
                          "materializing into kept buffers needs one process");
    for (size_t p = 0; p < ds->nparts; p++) {
        parts[p].n = 0; /* the room stays */
        parts[p].size = ds->type.size;
    }
    int rc = EMBER_OK;
    if (ember__copyable_array(ds)) {
        /* An array source is copied straight from its array, as save.c
         * writes one: the executor would synchronise the team once per
         * window of partitions, each wait a time slice on a loaded
         * machine (docs/design.md). */
        const unsigned char *data = ds->u.array.data;
        for (size_t p = 0; !rc && p < ds->nparts; p++) {
            size_t lo, hi;
            ember__array_bounds(ds, p, &lo, &hi);
            rc = ember__buf_reserve(ds->ctx, &parts[p], hi - lo);
        }
        /* The copies on the whole team, one loop with no wait inside: a
         * checkpoint's snapshot is on the iterations' path, the other
         * threads idle meanwhile. */
        long long np = rc ? 0 : (long long)ds->nparts;
#pragma omp parallel for schedule(static) num_threads(ds->ctx->threads)
        for (long long p = 0; p < np; p++) {
            size_t lo, hi;
            ember__array_bounds(ds, (size_t)p, &lo, &hi);
            if (hi > lo)
                ember__copy(parts[p].data, data + lo * ds->type.size,
                       (hi - lo) * ds->type.size);
            parts[p].n = hi - lo;
        }
    } else {
        mat_state m = {ds->ctx, parts};
        rc = ember__run(ds, mat_sink, &m, msg);
    }
    return rc == EMBER_ENOMEM && msg && !msg[0]
               ? ember__err(msg, rc, "out of memory materializing #%llu",
                            (unsigned long long)ds->id)
               : rc;
}

int ember__copyable_array(const ember_ds *ds)
{
    return ds->op == EMBER__ARRAY && ds->ckpt_state != 1 &&
           ember__comm_size(ds->ctx) == 1;
}

int ember__materialize_chunks(ember_ds *ds, ember__chunks *c, uint64_t *off,
                              char *msg)
{
    if (!ember__copyable_array(ds))
        return ember__err(msg, EMBER_EINVAL, "#%llu is not an array on one process",
                          (unsigned long long)ds->id);
    if (ember__chunks_layout(ds->ctx, c, ds->type.size, ds->u.array.n))
        return ember__err(msg, EMBER_ENOMEM, "out of memory materializing #%llu",
                          (unsigned long long)ds->id);
    off[0] = 0;
    for (size_t p = 0; p < ds->nparts; p++) {
        size_t lo, hi;
        ember__array_bounds(ds, p, &lo, &hi);
        if (lo != off[p]) /* an array's partitions tile it in order */
            return ember__err(msg, EMBER_ESTATE, "#%llu: partition %zu starts at %zu, "
                              "not %llu", (unsigned long long)ds->id, p, lo,
                              (unsigned long long)off[p]);
        off[p + 1] = hi;
    }
    /* on the whole team, as materialize_into's copies: a chunk a task,
     * copied and summed in one pass (the writer then reads it once, when
     * it puts it in the file) */
    const unsigned char *data = ds->u.array.data;
    long long chunks = (long long)((c->n + c->chunk - 1) / c->chunk);
#pragma omp parallel for schedule(dynamic, 1) num_threads(ds->ctx->threads)
    for (long long i = 0; i < chunks; i++)
        ember__chunks_fill(c, (size_t)i, data + (size_t)i * c->chunk * ds->type.size);
    return EMBER_OK;
}

int ember__materialize(ember_ds *ds, ember__buf **out, char *msg)
{
    int rc = ember__materialize_owned(ds, out, msg);
    if (rc || ember__comm_size(ds->ctx) == 1)
        return rc;
    int *own = NULL;
    rc = ember__owners(ds, &own, msg);
    if (!rc)
        rc = ember__comm_allgather_parts_map(ds->ctx, *out, ds->nparts,
                                             ds->type.size, own, msg);
    ember__free(ds->ctx, own);
    if (rc) {
        ember__parts_free(ds->ctx, *out, ds->nparts);
        *out = NULL;
    }
    return rc;
}

void ember__parts_free(ember_ctx *ctx, ember__buf *parts, size_t nparts)
{
    if (!parts)
        return;
    for (size_t p = 0; p < nparts; p++)
        ember__buf_free(ctx, &parts[p]);
    ember__free(ctx, parts);
}
