/* ds.c: dataset nodes, sources, and the narrow transformations' nodes.
 *
 * A dataset is a node in the lineage DAG: an operation and up to two
 * parents. Nodes are reference counted (the caller's handle, children,
 * broadcasts), so a caller may free a parent right after deriving from it.
 * Freeing walks a worklist, never recursion, so a chain of 100,000 maps
 * frees in constant stack. A transformation's copied user arg (its
 * closure) lives in the node's own allocation, right after the node, so it
 * is freed with it and no free path needs to know about it. Every node is
 * also in its context's registry; newest first, so ids grow from parents
 * to children.
 *
 * Floor 2 of the engine (docs/design.md): this file calls only the floors
 * below it, the block store and the allocator. It never runs a dataset:
 * making a broadcast is an action (actions.c), and a checkpoint's fields
 * are plain buffers freed here with the node.
 * Wide transformations live in shuffle.c, execution in exec.c.
 */
#include "internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void registry_add(ember_ctx *ctx, ember_ds *ds)
{
    ds->next = ctx->all;
    if (ctx->all)
        ctx->all->prev = ds;
    ctx->all = ds;
}

static void registry_remove(ember_ctx *ctx, ember_ds *ds)
{
    if (ds->prev)
        ds->prev->next = ds->next;
    else
        ctx->all = ds->next;
    if (ds->next)
        ds->next->prev = ds->prev;
    ds->prev = ds->next = NULL;
}

size_t ember__default_partitions(const ember_ctx *ctx, size_t nbytes)
{
    (void)ctx; /* a function of the data only, never of the team */
    const size_t target = (size_t)8 << 20, piece = (size_t)64 << 10;
    size_t p = nbytes / target + (nbytes % target != 0);
    /* Data under 128 MiB is still spread over up to 16 partitions of at
     * least 64 KiB, so a small dataset that carries heavy work (a
     * per-vertex state whose map reads the whole graph) runs on 16 cores,
     * not one; a tiny one stays in a few. */
    size_t least = nbytes / piece + (nbytes % piece != 0);
    if (least > 16)
        least = 16;
    if (p < least)
        p = least;
    if (p < 1)
        p = 1;
    return p > 65536 ? 65536 : p;
}

/* More partitions than any machine runs: twice the programs' --partitions
 * bound, so that a union of two such datasets (ember-sssp's shuffle plan
 * makes one a round) is allowed. Each costs bookkeeping in every action
 * (about 200 bytes stored, and a shuffle's input x output), so a count
 * mistyped by a few digits was accepted and the first action ran the
 * machine out of memory (10^9: 24 GB, then the kernel's OOM killer); it
 * is refused here instead. The bound also keeps a union's sum of two
 * counts and the executor's loop index far from wrapping. */
#define MAX_PARTITIONS ((size_t)1 << 25)

/* A node's own allocation: the node, then (for a closure) the copy of its
 * user arg, at an offset aligned for any type. One allocation, so the copy
 * goes wherever the node goes and is freed with it. */
#define NODE_ALIGN _Alignof(max_align_t)
#define NODE_BYTES ((sizeof(ember_ds) + NODE_ALIGN - 1) / NODE_ALIGN * NODE_ALIGN)

static int ds_make(ember_ds **out, ember_ctx *ctx, ember__op op,
                   const ember_type *type, size_t nparts, ember_ds *p0,
                   ember_ds *p1, size_t extra, char *msg)
{
    if (type->size == 0)
        return ember__err(msg, EMBER_ETYPE, "record type has size 0");
    if (!ember__type_ok(type))
        return ember__err(msg, EMBER_ETYPE, "malformed record type (a field past "
                          "the record's size, an unknown kind or class, or 0 or more "
                          "than %d fields): make types with ember_type_scalar, "
                          "ember_type_pair or ember_type_struct", EMBER_MAX_FIELDS);
    if (nparts > MAX_PARTITIONS)
        return ember__err(msg, EMBER_EINVAL,
                          "%zu partitions is more than the %zu allowed", nparts,
                          MAX_PARTITIONS);
    if (extra > SIZE_MAX - NODE_BYTES)
        return ember__err(msg, EMBER_ERANGE, "arg_size %zu is too large", extra);
    ember_ds *ds = ember__calloc(ctx, 1, NODE_BYTES + extra);
    if (!ds)
        return ember__err(msg, EMBER_ENOMEM, "out of memory creating a dataset");
    ds->ctx = ctx;
    ds->id = ++ctx->next_id;
    ds->op = op;
    ds->type = *type;
    ds->nparts = nparts;
    ds->refs = 1;
    ds->user_handle = 1;
    ds->parent[0] = p0;
    ds->parent[1] = p1;
    for (int i = 0; i < 2; i++)
        if (ds->parent[i])
            ds->parent[i]->refs++;
    registry_add(ctx, ds);
    ember__stat_gauge(ctx, &ctx->stats.live_datasets, 1, 1);
    *out = ds;
    return EMBER_OK;
}

void ember__ds_drop_captured(ember_ds *ds)
{
    ember_ctx *ctx = ds->ctx;
    for (size_t p = 0; ds->ckpt_parts && p < ds->nparts; p++)
        ember__buf_free(ctx, &ds->ckpt_parts[p]);
    ember__free(ctx, ds->ckpt_parts);
    ember__free(ctx, ds->ckpt_have);
    ds->ckpt_parts = NULL;
    ds->ckpt_have = NULL;
    ember__stat_gauge(ctx, &ctx->stats.dataset_bytes, -1, ds->ckpt_bytes);
    ds->ckpt_bytes = 0;
}

int ember__ds_new(ember_ds **out, ember_ctx *ctx, ember__op op,
                  const ember_type *type, size_t nparts, ember_ds *p0,
                  ember_ds *p1, char *msg)
{
    return ds_make(out, ctx, op, type, nparts, p0, p1, 0, msg);
}

static int uses_has(const ember_ds *ds, const ember_bcast *bc)
{
    for (size_t i = 0; i < ds->nuses; i++)
        if (ds->uses[i] == bc)
            return 1;
    return 0;
}

/* The live broadcast of ctx that word w names, as its handle or as a
 * pointer into its records; NULL when none does. */
static ember_bcast *bcast_named(const ember_ctx *ctx, uintptr_t w)
{
    for (ember_bcast *b = ctx->bcasts; b; b = b->next) {
        uintptr_t lo = (uintptr_t)b->data;
        size_t bytes = b->n * b->type.size;
        if (w == (uintptr_t)b || (b->data && w >= lo && w - lo < bytes))
            return b;
    }
    return NULL;
}

/* Every pointer-aligned word of the copied arg that names a live broadcast
 * makes ds use it, as ember_ds_uses would: a closure keeps alive what it
 * reads even when the caller forgot to say so. A number that happens to
 * equal such an address only keeps a broadcast a little longer. */
static int take_named_bcasts(ember_ds *ds, const unsigned char *copy,
                             size_t size)
{
    if (!ds->ctx->bcasts)
        return EMBER_OK;
    for (size_t off = 0; off + sizeof(uintptr_t) <= size;
         off += sizeof(uintptr_t)) {
        uintptr_t w;
        memcpy(&w, copy + off, sizeof w);
        ember_bcast *bc = bcast_named(ds->ctx, w);
        int rc = bc ? ember_ds_uses(ds, bc) : EMBER_OK;
        if (rc)
            return rc;
    }
    return EMBER_OK;
}

int ember__ds_new_fn(ember_ds **out, ember_ctx *ctx, ember__op op,
                     const ember_type *type, size_t nparts, ember_ds *p0,
                     void *arg, size_t arg_size, void **arg_out, char *msg)
{
    if (arg_size && !arg)
        return ember__err(msg, EMBER_EINVAL,
                          "arg is NULL but arg_size is %zu", arg_size);
    int rc = ds_make(out, ctx, op, type, nparts, p0, NULL, arg_size, msg);
    if (rc || !arg_size) {
        if (!rc)
            *arg_out = arg;
        return rc;
    }
    unsigned char *copy = (unsigned char *)*out + NODE_BYTES;
    memcpy(copy, arg, arg_size);
    *arg_out = copy;
    rc = take_named_bcasts(*out, copy, arg_size);
    if (rc) {
        ember__ds_unref(*out);
        *out = NULL;
        return ember__err(msg, rc, "out of memory noting the broadcasts an "
                          "arg names");
    }
    return EMBER_OK;
}

/* Frees what the node itself owns; parents and broadcasts are the
 * caller's business. */
static void destroy_node(ember_ds *ds)
{
    ember_ctx *ctx = ds->ctx;
    ember__store_drop(ctx, ds->id);
    if (ds->op == EMBER__ARRAY) {
        ember__free(ctx, ds->u.array.owned);
        ember__free(ctx, ds->u.array.keep);
        ember__free(ctx, ds->u.array.offsets);
    }
    ember__stat_gauge(ctx, &ctx->stats.dataset_bytes, -1, ds->held_bytes);
    ember__stat_gauge(ctx, &ctx->stats.live_datasets, -1, 1);
    ember__free(ctx, ds->uses);
    ember__free(ctx, ds->stored_once);
    if (ds->ckpt_state == 1)
        ctx->ckpt_marked--;
    ember__ds_drop_captured(ds);
    ember__free(ctx, ds->ckpt_path);
    ember__free(ctx, ds->ckpt_offsets);
    ember__free(ctx, ds->cut_owner);
    ember__free(ctx, ds->ckpt_head);
    ember__free(ctx, ds);
}

void ember__ds_unref(ember_ds *ds)
{
    /* The worklist threads through the registry's next pointer: a node
     * leaves the registry when its count reaches zero. */
    ember_ds *work = NULL;
    if (ds && --ds->refs == 0) {
        registry_remove(ds->ctx, ds);
        work = ds;
    }
    while (work) {
        ember_ds *n = work;
        work = n->next;
        for (int i = 0; i < 2; i++) {
            ember_ds *p = n->parent[i];
            if (p && --p->refs == 0) {
                registry_remove(p->ctx, p);
                p->next = work;
                work = p;
            }
        }
        for (size_t i = 0; i < n->nuses; i++)
            ember__bcast_unref(n->uses[i]);
        destroy_node(n);
    }
}

void ember__ds_cut(ember_ds *ds)
{
    /* Unlinked first, so the node is consistent whatever the unrefs free. */
    ember_ds *p[2] = {ds->parent[0], ds->parent[1]};
    ember_bcast **uses = ds->uses;
    size_t nuses = ds->nuses;
    ds->parent[0] = ds->parent[1] = NULL;
    ds->uses = NULL;
    ds->nuses = 0;
    for (size_t i = 0; i < nuses; i++)
        ember__bcast_unref(uses[i]);
    ember__free(ds->ctx, uses);
    ember__ds_unref(p[0]);
    ember__ds_unref(p[1]);
}

void ember_ds_free(ember_ds **pds)
{
    if (!pds || !*pds)
        return;
    ember_ds *ds = *pds;
    *pds = NULL;
    if (!ds->user_handle)
        return;
    ds->user_handle = 0;
    ember__ds_unref(ds);
}

void ember__destroy_all(ember_ctx *ctx)
{
    while (ctx->bcasts) {
        ember_bcast *b = ctx->bcasts;
        ctx->bcasts = b->next;
        ember__store_release_charge(ctx, b->charged);
        ember__stat_gauge(ctx, &ctx->stats.live_broadcasts, -1, 1);
        ember__free(ctx, b->owned);
        ember__free(ctx, b);
    }
    while (ctx->all) {
        ember_ds *ds = ctx->all;
        ctx->all = ds->next;
        destroy_node(ds);
    }
}

int ember__is_root(const ember_ds *ds)
{
    return ds->op == EMBER__RANGE || ds->op == EMBER__ARRAY ||
           ds->op == EMBER__CHECKPOINT ||
           (ds->op == EMBER__SHUFFLE && ds->u.shuffle.done);
}

static int older_first(const void *a, const void *b)
{
    uint64_t x = (*(ember_ds *const *)a)->id, y = (*(ember_ds *const *)b)->id;
    return (x > y) - (x < y);
}

/* Open addressing, linear probing, at most half full. */
static size_t idset_slot(const ember__idset *s, uint64_t id)
{
    size_t i = (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (s->cap - 1);
    while (s->slot[i] && s->slot[i] != id)
        i = (i + 1) & (s->cap - 1);
    return i;
}

int ember__idset_add(ember_ctx *ctx, ember__idset *s, uint64_t id)
{
    if (2 * (s->n + 1) > s->cap) {
        ember__idset g = {ember__calloc(ctx, s->cap ? 2 * s->cap : 64, sizeof *g.slot),
                          s->cap ? 2 * s->cap : 64, s->n};
        if (!g.slot)
            return EMBER_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i])
                g.slot[idset_slot(&g, s->slot[i])] = s->slot[i];
        ember__free(ctx, s->slot);
        *s = g;
    }
    size_t i = idset_slot(s, id);
    if (s->slot[i])
        return 0;
    s->slot[i] = id;
    s->n++;
    return 1;
}

void ember__idset_free(ember_ctx *ctx, ember__idset *s)
{
    ember__free(ctx, s->slot);
    memset(s, 0, sizeof *s);
}

int ember__ancestors(ember_ds *ds, int (*stop)(const ember_ds *),
                     ember_ds ***out, size_t *n)
{
    ember_ctx *ctx = ds->ctx;
    ember__idset seen = {NULL, 0, 0};
    ember__buf stack = {NULL, 0, 0, sizeof(ember_ds *)};
    ember__buf found = {NULL, 0, 0, sizeof(ember_ds *)};
    int rc = ember__buf_append(ctx, &stack, &ds, 1);
    while (!rc && stack.n) {
        ember_ds *d = ((ember_ds **)stack.data)[--stack.n];
        int added = ember__idset_add(ctx, &seen, d->id);
        if (added <= 0) {
            rc = added;
            continue;
        }
        rc = ember__buf_append(ctx, &found, &d, 1);
        for (int i = 0; !rc && i < 2 && !(stop && stop(d)); i++)
            if (d->parent[i])
                rc = ember__buf_append(ctx, &stack, &d->parent[i], 1);
    }
    ember__idset_free(ctx, &seen);
    ember__buf_free(ctx, &stack);
    if (rc) {
        ember__buf_free(ctx, &found);
        return rc;
    }
    qsort(found.data, found.n, sizeof(ember_ds *), older_first);
    *out = (ember_ds **)found.data;
    *n = found.n;
    return EMBER_OK;
}

/* ---- accessors ---------------------------------------------------------- */

const ember_type *ember_ds_type(const ember_ds *ds)
{
    return ds ? &ds->type : NULL;
}

size_t ember_ds_partitions(const ember_ds *ds)
{
    return ds ? ds->nparts : 0;
}

ember_ctx *ember_ds_ctx(const ember_ds *ds)
{
    return ds ? ds->ctx : NULL;
}

uint64_t ember_ds_id(const ember_ds *ds)
{
    return ds ? ds->id : 0;
}

int ember_ds_set_name(ember_ds *ds, const char *name)
{
    if (!ds || !name || strlen(name) >= sizeof ds->name)
        return EMBER_EINVAL;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    return EMBER_OK;
}

const char *ember_ds_name(const ember_ds *ds)
{
    return ds ? ds->name : NULL;
}

ember_level ember_ds_level(const ember_ds *ds)
{
    return ds ? ds->level : EMBER_NONE;
}

/* ---- sources ------------------------------------------------------------- */

/* Number of values of start, start+step, ... short of end. */
static uint64_t range_count(int64_t start, int64_t end, int64_t step)
{
    if (step > 0 && end > start)
        return ((uint64_t)end - (uint64_t)start - 1) / (uint64_t)step + 1;
    if (step < 0 && end < start)
        return ((uint64_t)start - (uint64_t)end - 1) / (0 - (uint64_t)step) + 1;
    return 0;
}

int ember_range(ember_ds **out, ember_ctx *ctx, int64_t start, int64_t end,
                int64_t step, size_t partitions, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx)
        return ember__err(msg, EMBER_EINVAL, "ember_range: NULL argument");
    if (step == 0)
        return ember__err(msg, EMBER_EINVAL, "ember_range: step is 0");
    uint64_t n = range_count(start, end, step);
    ember_type t = ember_type_scalar(EMBER_I64);
    size_t P = partitions ? partitions
                          : ember__default_partitions(ctx, ember__mul(n, 8));
    int rc = ember__ds_new(out, ctx, EMBER__RANGE, &t, P, NULL, NULL, msg);
    if (rc)
        return rc;
    (*out)->u.range.start = start;
    (*out)->u.range.step = step;
    (*out)->u.range.n = n;
    snprintf((*out)->name, sizeof (*out)->name, "range");
    return EMBER_OK;
}

int ember__array_source(ember_ds **out, ember_ctx *ctx, const ember_type *t,
                        void *records, size_t n, size_t partitions, void *keep,
                        size_t keep_size, const char *name, char *msg)
{
    size_t P = partitions ? partitions
                          : ember__default_partitions(ctx, ember__mul(n, t->size));
    int rc = ember__ds_new(out, ctx, EMBER__ARRAY, t, P, NULL, NULL, msg);
    if (rc) {
        ember__free(ctx, records);
        ember__free(ctx, keep);
        return rc;
    }
    ember_ds *ds = *out;
    ds->u.array.data = records;
    ds->u.array.n = n;
    ds->u.array.owned = records;
    ds->held_bytes = (records ? n * t->size : 0) + (keep ? keep_size : 0);
    ember__stat_gauge(ctx, &ctx->stats.dataset_bytes, 1, ds->held_bytes);
    ds->u.array.keep = keep;
    ds->u.array.keep_size = keep_size;
    snprintf(ds->name, sizeof ds->name, "%s", name ? name : "array");
    return EMBER_OK;
}

int ember__offsets_cover(const uint64_t *offsets, size_t nparts, size_t n)
{
    int ok = nparts > 0 && offsets[0] == 0 && offsets[nparts] == n;
    for (size_t p = 0; ok && p < nparts; p++)
        ok = offsets[p] <= offsets[p + 1];
    return ok;
}

int ember__array_source_offsets(ember_ds **out, ember_ctx *ctx,
                                const ember_type *t, void *records, size_t n,
                                uint64_t *offsets, size_t nparts,
                                const char *name, char *msg)
{
    if (!ember__offsets_cover(offsets, nparts, n)) {
        ember__free(ctx, records);
        ember__free(ctx, offsets);
        return ember__err(msg, EMBER_ECORRUPT,
                          "%s: partition offsets do not cover %zu records",
                          name ? name : "array", n);
    }
    int rc = ember__array_source(out, ctx, t, records, n, nparts, NULL, 0, name,
                                 msg);
    if (rc)
        ember__free(ctx, offsets);
    else
        (*out)->u.array.offsets = offsets;
    return rc;
}

void ember__array_bounds(const ember_ds *ds, size_t p, size_t *lo, size_t *hi)
{
    if (ds->u.array.offsets) {
        *lo = (size_t)ds->u.array.offsets[p];
        *hi = (size_t)ds->u.array.offsets[p + 1];
    } else {
        *lo = ember__part_lo(ds->u.array.n, ds->nparts, p);
        *hi = ember__part_lo(ds->u.array.n, ds->nparts, p + 1);
    }
}

int ember_from_array(ember_ds **out, ember_ctx *ctx, const ember_type *type,
                     const void *records, size_t n, size_t partitions,
                     ember_ownership own, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !type || (!records && n))
        return ember__err(msg, EMBER_EINVAL, "ember_from_array: NULL argument");
    if (own != EMBER_COPY && own != EMBER_BORROW)
        return ember__err(msg, EMBER_EINVAL, "ember_from_array: ownership %d is neither "
                          "EMBER_COPY nor EMBER_BORROW", (int)own);
    /* No array holds more than PTRDIFF_MAX bytes; a larger n is a wrong
     * count, and counting it would overflow every offset computed from it. */
    if (type->size && n > (size_t)PTRDIFF_MAX / type->size)
        return ember__err(msg, EMBER_ERANGE,
                          "ember_from_array: %zu records of %u bytes do not "
                          "fit in memory (n too large)", n, (unsigned)type->size);
    if (own == EMBER_BORROW) {
        int rc = ember__array_source(out, ctx, type, NULL, 0, partitions
                                     ? partitions
                                     : ember__default_partitions(
                                           ctx, ember__mul(n, type->size)),
                                     NULL, 0, "array", msg);
        if (rc)
            return rc;
        (*out)->u.array.data = records;
        (*out)->u.array.n = n;
        return EMBER_OK;
    }
    size_t bytes = ember__mul(n, type->size);
    void *copy = ember__malloc(ctx, bytes);
    if (!copy)
        return ember__err(msg, EMBER_ENOMEM, "out of memory copying %zu records", n);
    if (n)
        ember__copy(copy, records, bytes);
    return ember__array_source(out, ctx, type, copy, n, partitions, NULL, 0,
                               "array", msg);
}

const char *ember_lines_text(const ember_ds *lines, size_t *size)
{
    if (!lines || lines->op != EMBER__ARRAY || !lines->u.array.keep)
        return NULL;
    if (size)
        *size = lines->u.array.keep_size;
    return lines->u.array.keep;
}

/* ---- narrow transformations ------------------------------------------------- */

static int narrow(ember_ds **out, ember_ds *in, ember__op op,
                  const ember_type *out_type, void *fn, void *arg,
                  size_t arg_size, const char *what, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !in || !fn)
        return ember__err(msg, EMBER_EINVAL, "%s: NULL argument", what);
    const ember_type *t = out_type ? out_type : &in->type;
    void *a = NULL;
    int rc = ember__ds_new_fn(out, in->ctx, op, t, in->nparts, in, arg,
                              arg_size, &a, msg);
    if (rc)
        return rc;
    (*out)->u.f.fn = fn;
    (*out)->u.f.arg = a;
    snprintf((*out)->name, sizeof (*out)->name, "%s", what);
    return EMBER_OK;
}

int ember_map(ember_ds **out, ember_ds *in, const ember_type *out_type,
              ember_map_fn fn, void *arg, size_t arg_size, char *msg)
{
    return narrow(out, in, EMBER__MAP, out_type, (void *)fn, arg, arg_size,
                  "map", msg);
}

int ember_filter(ember_ds **out, ember_ds *in, ember_filter_fn fn, void *arg,
                 size_t arg_size, char *msg)
{
    return narrow(out, in, EMBER__FILTER, NULL, (void *)fn, arg, arg_size,
                  "filter", msg);
}

int ember_flat_map(ember_ds **out, ember_ds *in, const ember_type *out_type,
                   ember_emit_fn fn, void *arg, size_t arg_size, char *msg)
{
    return narrow(out, in, EMBER__FLAT_MAP, out_type, (void *)fn, arg, arg_size,
                  "flat_map", msg);
}

int ember_map_partitions(ember_ds **out, ember_ds *in,
                         const ember_type *out_type, ember_emit_fn fn,
                         void *arg, size_t arg_size, char *msg)
{
    return narrow(out, in, EMBER__MAP_PARTITIONS, out_type, (void *)fn, arg,
                  arg_size, "map_partitions", msg);
}

static int check_pair(ember_ds *a, ember_ds *b, const char *what, char *msg)
{
    if (!a || !b)
        return ember__err(msg, EMBER_EINVAL, "%s: NULL dataset", what);
    if (a->ctx != b->ctx)
        return ember__err(msg, EMBER_EINVAL, "%s: datasets of different contexts",
                          what);
    return EMBER_OK;
}

int ember_zip(ember_ds **out, ember_ds *a, ember_ds *b, char *msg)
{
    ember__msg_clear(msg);
    int rc = out ? check_pair(a, b, "zip", msg)
                 : ember__err(msg, EMBER_EINVAL, "zip: out is NULL");
    if (rc)
        return rc;
    if (a->nparts != b->nparts)
        return ember__err(msg, EMBER_ELENGTH,
                          "zip: #%llu has %zu partitions but #%llu has %zu",
                          (unsigned long long)a->id, a->nparts,
                          (unsigned long long)b->id, b->nparts);
    ember_type t;
    rc = ember__type_concat(&t, &a->type, &b->type, 0, msg);
    if (rc)
        return rc;
    rc = ember__ds_new(out, a->ctx, EMBER__ZIP, &t, a->nparts, a, b, msg);
    if (!rc)
        snprintf((*out)->name, sizeof (*out)->name, "zip");
    return rc;
}

int ember_union(ember_ds **out, ember_ds *a, ember_ds *b, char *msg)
{
    ember__msg_clear(msg);
    int rc = out ? check_pair(a, b, "union", msg)
                 : ember__err(msg, EMBER_EINVAL, "union: out is NULL");
    if (rc)
        return rc;
    if (!ember_type_equal(&a->type, &b->type)) {
        char ta[256], tb[256];
        ember_type_describe(&a->type, ta, sizeof ta);
        ember_type_describe(&b->type, tb, sizeof tb);
        return ember__err(msg, EMBER_ETYPE, "union: types differ: %s and %s", ta,
                          tb);
    }
    rc = ember__ds_new(out, a->ctx, EMBER__UNION, &a->type,
                       a->nparts + b->nparts, a, b, msg);
    if (!rc)
        snprintf((*out)->name, sizeof (*out)->name, "union");
    return rc;
}

int ember_sample(ember_ds **out, ember_ds *in, double fraction, uint64_t seed,
                 char *msg)
{
    ember__msg_clear(msg);
    if (!out || !in)
        return ember__err(msg, EMBER_EINVAL, "sample: NULL argument");
    if (!(fraction >= 0.0 && fraction <= 1.0))
        return ember__err(msg, EMBER_EINVAL,
                          "sample: fraction %g is outside [0, 1]", fraction);
    int rc = ember__ds_new(out, in->ctx, EMBER__SAMPLE, &in->type, in->nparts,
                           in, NULL, msg);
    if (rc)
        return rc;
    (*out)->u.sample.fraction = fraction;
    (*out)->u.sample.seed = seed;
    snprintf((*out)->name, sizeof (*out)->name, "sample");
    return EMBER_OK;
}

/* ---- persistence ---------------------------------------------------------------- */

const char *ember_level_name(ember_level level)
{
    switch (level) {
    case EMBER_NONE: return "NONE";
    case EMBER_MEMORY_ONLY: return "MEMORY_ONLY";
    case EMBER_MEMORY_AND_DISK: return "MEMORY_AND_DISK";
    case EMBER_DISK_ONLY: return "DISK_ONLY";
    case EMBER_MEMORY_ONLY_SER: return "MEMORY_ONLY_SER";
    case EMBER_MEMORY_AND_DISK_SER: return "MEMORY_AND_DISK_SER";
    }
    return "?";
}

int ember_persist(ember_ds *ds, ember_level level, char *msg)
{
    ember__msg_clear(msg);
    if (!ds)
        return ember__err(msg, EMBER_EINVAL, "persist: NULL dataset");
    if (level < EMBER_NONE || level > EMBER_MEMORY_AND_DISK_SER)
        return ember__err(msg, EMBER_EINVAL, "persist: unknown level %d",
                          (int)level);
    if (ds->loop_kept && ds->level != level)
        ember_unpersist(ds);
    ds->loop_kept = 0;
    if (ds->level != EMBER_NONE && ds->level != level)
        return ember__err(msg, EMBER_ESTATE,
                          "persist: #%llu is already %s; unpersist it first",
                          (unsigned long long)ds->id, ember_level_name(ds->level));
    if (!ds->stored_once) {
        ds->stored_once = ember__calloc(ds->ctx, ds->nparts + 1, 1);
        if (!ds->stored_once)
            return ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    ds->level = level;
    return EMBER_OK;
}

int ember_cache(ember_ds *ds, char *msg)
{
    return ember_persist(ds, EMBER_MEMORY_ONLY, msg);
}

int ember_unpersist(ember_ds *ds)
{
    if (!ds)
        return EMBER_EINVAL;
    ds->loop_kept = 0;
    /* A local checkpoint's blocks are the only copy of its partitions, and
     * a dataset made from it (a child holds a reference) recomputes its own
     * from them: they stay, spilled as memory requires, until the node
     * itself is freed. The Spark idiom in an ember_loop, whose cuts
     * are local checkpoints, unpersists the old state (x = f(x), cached;
     * the old x unpersisted), and a new partition evicted later could not
     * be recomputed: EMBER_ESTATE. (Spark loses them and fails so.) */
    if (ds->ckpt_state == 2 && !ds->ckpt_path && ds->refs > 1 && ds->level != EMBER_NONE)
        return EMBER_OK;
    ds->level = EMBER_NONE;
    if (ds->stored_once) /* a later persist starts afresh: no recomputes */
        memset(ds->stored_once, 0, ds->nparts + 1);
    /* A shuffle's own outputs share the key; they are not a cache. A local
     * checkpoint's blocks are freed: its partitions are lost, and reading
     * it again is an error that says so (Spark does the same). */
    if (ds->op != EMBER__SHUFFLE)
        ember__store_drop(ds->ctx, ds->id);
    return EMBER_OK;
}

size_t ember_cached_partitions(const ember_ds *ds)
{
    if (!ds || ds->level == EMBER_NONE)
        return 0;
    return ember__store_count(ds->ctx, ds->id);
}

/* ---- broadcasts ------------------------------------------------------------------- */

void ember__bcast_unref(ember_bcast *bc)
{
    if (!bc || --bc->refs > 0)
        return;
    ember_ctx *ctx = bc->ctx;
    if (bc->prev)
        bc->prev->next = bc->next;
    else
        ctx->bcasts = bc->next;
    if (bc->next)
        bc->next->prev = bc->prev;
    ember_ds *ds = bc->ds;
    ember__store_release_charge(ctx, bc->charged);
    ember__stat_gauge(ctx, &ctx->stats.live_broadcasts, -1, 1);
    ember__free(ctx, bc->owned);
    ember__free(ctx, bc);
    ember__ds_unref(ds);
}

const void *ember_bcast_data(const ember_bcast *bc, size_t *n)
{
    if (!bc)
        return NULL;
    if (n)
        *n = bc->n;
    return bc->data;
}

const ember_type *ember_bcast_type(const ember_bcast *bc)
{
    return bc ? &bc->type : NULL;
}

void ember_bcast_free(ember_bcast **pbc)
{
    if (!pbc || !*pbc)
        return;
    ember_bcast *bc = *pbc;
    *pbc = NULL;
    if (!bc->user_handle)
        return;
    bc->user_handle = 0;
    ember__bcast_unref(bc);
}

int ember_ds_uses(ember_ds *ds, ember_bcast *bc)
{
    if (!ds || !bc || ds->ctx != bc->ctx)
        return EMBER_EINVAL;
    if (uses_has(ds, bc)) /* one use per pair, however often it is said */
        return EMBER_OK;
    ember_bcast **u = ember__realloc(ds->ctx, ds->uses,
                                     (ds->nuses + 1) * sizeof *u);
    if (!u)
        return EMBER_ENOMEM;
    ds->uses = u;
    u[ds->nuses++] = bc;
    bc->refs++;
    return EMBER_OK;
}
