/* lineage.c: lineage as text (like Spark's toDebugString), its depth, and
 * a Graphviz DOT export. Floor 2 of the engine (docs/design.md), with
 * ds.c: it reads nodes and the block store's counts, and runs nothing.
 *
 * All three walk the DAG with an explicit stack and a visited bitmap (ids
 * are dense per context), so a lineage of 100,000 steps needs no deep C
 * stack, and a dataset reached twice (zip(a, a)) is printed once.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    ember_ctx *ctx;
    char *s;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0,
                          fmt, ap);
        va_end(ap);
        if (w < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)w < t->cap) {
            t->len += (size_t)w;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 1024;
        while (cap < t->len + (size_t)w + 1)
            cap *= 2;
        char *s = ember__realloc(t->ctx, t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

static int finish(text *t, char **out)
{
    if (t->failed) {
        ember__free(t->ctx, t->s);
        return EMBER_ENOMEM;
    }
    if (!t->s)
        put(t, "%s", "");
    *out = t->s;
    return t->failed ? EMBER_ENOMEM : EMBER_OK;
}

const char *ember__op_name(const ember_ds *ds)
{
    switch (ds->op) {
    case EMBER__RANGE: return "range";
    case EMBER__ARRAY: return "array";
    case EMBER__MAP: return "map";
    case EMBER__FILTER: return "filter";
    case EMBER__FLAT_MAP: return "flat_map";
    case EMBER__MAP_PARTITIONS: return "map_partitions";
    case EMBER__ZIP: return "zip";
    case EMBER__UNION: return "union";
    case EMBER__SAMPLE: return "sample";
    case EMBER__SHUFFLE: return "shuffle";
    case EMBER__CHECKPOINT: return "checkpoint";
    }
    return "?";
}

static int is_wide(const ember_ds *ds)
{
    return ds->op == EMBER__SHUFFLE;
}

static void describe(text *t, const ember_ds *ds)
{
    put(t, "%s #%llu", ds->name[0] ? ds->name : ember__op_name(ds),
        (unsigned long long)ds->id);
    if (ds->name[0] && strcmp(ds->name, ember__op_name(ds)) != 0 &&
        ds->op != EMBER__SHUFFLE)
        put(t, " (%s)", ember__op_name(ds));
    if (ds->level != EMBER_NONE)
        put(t, " [%s, %zu/%zu cached%s]", ember_level_name(ds->level),
            ember__store_count(ds->ctx, ds->id), ds->nparts,
            ds->loop_kept ? ", kept by the loop" : "");
    if (ds->ckpt_state == 2)
        put(t, " [checkpoint: %s]", ds->ckpt_path ? ds->ckpt_path : "local");
    else if (ds->ckpt_state == 1)
        put(t, " [checkpoint pending]");
    for (size_t i = 0; i < ds->nuses; i++)
        put(t, " [uses broadcast of #%llu]", (unsigned long long)ds->uses[i]->source_id);
}

typedef struct {
    const ember_ds *ds;
    int indent;
    int stage_start;
} frame;

typedef struct {
    ember_ctx *ctx;
    frame *f;
    size_t n, cap;
    ember__idset seen;
} walk;

static void walk_init(walk *w, const ember_ds *ds)
{
    memset(w, 0, sizeof *w);
    w->ctx = ds->ctx;
}

static int walk_push(walk *w, const ember_ds *ds, int indent, int stage)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        frame *f = ember__realloc(w->ctx, w->f, cap * sizeof *f);
        if (!f)
            return EMBER_ENOMEM;
        w->f = f;
        w->cap = cap;
    }
    w->f[w->n++] = (frame){ds, indent, stage};
    return EMBER_OK;
}

/* Marks ds seen: 1 if it already was, 0 if not, EMBER_ENOMEM. */
static int walk_seen(walk *w, const ember_ds *ds)
{
    int added = ember__idset_add(w->ctx, &w->seen, ds->id);
    return added < 0 ? added : !added;
}

static void walk_free(walk *w)
{
    ember__free(w->ctx, w->f);
    ember__idset_free(w->ctx, &w->seen);
}

static int parents_of(const ember_ds *ds)
{
    return ds->op == EMBER__CHECKPOINT ? 0 : (ds->parent[1] ? 2 : ds->parent[0] ? 1 : 0);
}

int ember_lineage_string(const ember_ds *ds, char **out)
{
    if (!ds || !out)
        return EMBER_EINVAL;
    text t = {ds->ctx, NULL, 0, 0, 0};
    walk w;
    walk_init(&w, ds);
    int rc = walk_push(&w, ds, 0, 1);
    while (!rc && w.n) {
        frame f = w.f[--w.n];
        for (int i = 0; i < f.indent; i++)
            put(&t, "    ");
        if (f.stage_start)
            put(&t, "%s(%zu) ", f.indent ? "+-" : "", f.ds->nparts);
        else
            put(&t, " |  ");
        describe(&t, f.ds);
        int seen = walk_seen(&w, f.ds);
        if (seen < 0) {
            rc = seen;
            break;
        }
        if (seen) {
            put(&t, " (shown above)\n");
            continue;
        }
        put(&t, "\n");
        /* Push the second parent first so the first prints first. */
        for (int i = parents_of(f.ds) - 1; !rc && i >= 0; i--) {
            int wide = is_wide(f.ds);
            rc = walk_push(&w, f.ds->parent[i], f.indent + wide, wide);
        }
    }
    walk_free(&w);
    if (rc) {
        ember__free(ds->ctx, t.s);
        return rc;
    }
    return finish(&t, out);
}

/* The position of id among a[0..n), ascending ids: it is there. */
static size_t index_of(ember_ds *const *a, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid]->id <= id)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

size_t ember_lineage_depth(const ember_ds *ds)
{
    if (!ds)
        return 0;
    /* Longest path to a root: ancestors come oldest first, a topological
     * order and ascending ids, so one pass settles every depth, a parent's
     * found by its id (not in an array of every id ever given). */
    ember_ctx *ctx = ds->ctx;
    ember_ds **a = NULL;
    size_t n = 0, best = 0, *depth = NULL;
    if (ember__ancestors((ember_ds *)ds, NULL, &a, &n) == EMBER_OK &&
        (depth = ember__calloc(ctx, n, sizeof *depth))) {
        for (size_t i = 0; i < n; i++)
            for (int p = 0; p < parents_of(a[i]); p++) {
                size_t j = index_of(a, i, a[i]->parent[p]->id);
                if (depth[j] + 1 > depth[i])
                    depth[i] = depth[j] + 1;
            }
        best = depth[n - 1]; /* ds: the newest */
    }
    ember__free(ctx, a);
    ember__free(ctx, depth);
    return best;
}

/* Appends s with DOT's string escapes: names are the caller's and may hold
 * quotes or backslashes, which would end or bend the label. */
static void put_escaped(text *t, const char *s)
{
    while (*s) {
        size_t run = strcspn(s, "\"\\");
        if (run)
            put(t, "%.*s", (int)run, s);
        if (s[run])
            put(t, "\\%c", s[run++]);
        s += run;
    }
}

int ember_lineage_dot(const ember_ds *ds, char **out)
{
    if (!ds || !out)
        return EMBER_EINVAL;
    text t = {ds->ctx, NULL, 0, 0, 0};
    text label = {ds->ctx, NULL, 0, 0, 0}; /* one node's, reused */
    put(&t, "digraph lineage {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n");
    walk w;
    walk_init(&w, ds);
    int rc = walk_push(&w, ds, 0, 0);
    while (!rc && w.n) {
        const ember_ds *d = w.f[--w.n].ds;
        int seen = walk_seen(&w, d);
        if (seen) {
            rc = seen < 0 ? seen : rc;
            continue;
        }
        put(&t, "  n%llu [label=\"", (unsigned long long)d->id);
        label.len = 0;
        describe(&label, d);
        if (label.failed)
            t.failed = 1;
        else
            put_escaped(&t, label.s);
        put(&t, "\\n%zu partitions\"%s];\n", d->nparts,
            d->level != EMBER_NONE ? ", style=filled, fillcolor=lightblue" : "");
        for (int i = 0; !rc && i < parents_of(d); i++) {
            put(&t, "  n%llu -> n%llu%s;\n", (unsigned long long)d->parent[i]->id,
                (unsigned long long)d->id, is_wide(d) ? " [style=bold, label=\"shuffle\"]" : "");
            rc = walk_push(&w, d->parent[i], 0, 0);
        }
        /* A view's array is drawn too (every edge's tail is a declared
         * node); a copy is a node of its own, its source not held. */
        for (size_t i = 0; !rc && i < d->nuses; i++) {
            const ember_bcast *bc = d->uses[i];
            if (bc->ds) {
                put(&t, "  n%llu -> n%llu [style=dashed, label=\"broadcast\"];\n",
                    (unsigned long long)bc->ds->id, (unsigned long long)d->id);
                rc = walk_push(&w, bc->ds, 0, 0);
            } else {
                put(&t, "  b%llu [label=\"broadcast copy of #%llu\\n%zu records\", "
                        "shape=note];\n  b%llu -> n%llu [style=dashed, label=\"broadcast\"];\n",
                    (unsigned long long)bc->source_id, (unsigned long long)bc->source_id,
                    bc->n, (unsigned long long)bc->source_id, (unsigned long long)d->id);
            }
        }
    }
    put(&t, "}\n");
    walk_free(&w);
    ember__free(ds->ctx, label.s);
    if (rc) {
        ember__free(ds->ctx, t.s);
        return rc;
    }
    return finish(&t, out);
}
