/* ctx.c: the context, which owns everything a program makes with ember.
 *
 * A context fixes the team size, the memory budget of the block store, the
 * scratch and checkpoint directories and the allocator. Destroying it frees
 * every dataset and broadcast still alive, so a caller that stops early
 * leaks nothing.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void *libc_malloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *ud)
{
    (void)ud;
    free(ptr);
}

static size_t default_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return (size_t)1 << 30;
    return (size_t)pages / 4 * (size_t)page;
}

static const char *default_scratch(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* The token in this context's checkpoint names: 64 random bits, so that
 * contexts on any host sharing a directory do not meet (a clash among a
 * million contexts has odds of about 3e-8, and even then the reader's
 * check of the header it wrote refuses the other file). Without a random
 * source the time, the pid and the context's address are mixed in. */
static void make_token(ember_ctx *ctx)
{
    uint64_t r = 0;
    ssize_t got;
    do
        got = getrandom(&r, sizeof r, 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = ember__hash64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
        r = ember__hash64(r ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)ctx);
    }
    snprintf(ctx->ckpt_token, sizeof ctx->ckpt_token, "%016llx",
             (unsigned long long)r);
}

/* Fills ctx's settings from opts; the allocator is already set. */
static int configure(ember_ctx *ctx, const ember_ctx_opts *o, char *msg)
{
    if (o->threads < 0)
        return ember__err(msg, EMBER_EINVAL, "threads must be >= 0, got %d",
                          o->threads);
    ctx->threads = o->threads ? o->threads : omp_get_max_threads();
    ctx->budget = o->memory_budget ? o->memory_budget : default_budget();
    int rc = ember_ctx_set_block_bytes(ctx, o->block_bytes, msg);
    if (rc)
        return rc;
    ctx->stats.memory_budget = ctx->budget;
    make_token(ctx);
    ctx->scratch_dir = ember__strdup(ctx, o->scratch_dir ? o->scratch_dir
                                                         : default_scratch());
    if (!ctx->scratch_dir)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (o->checkpoint_dir)
        return ember_ctx_set_checkpoint_dir(ctx, o->checkpoint_dir, msg);
    return EMBER_OK;
}

int ember_ctx_create(ember_ctx **out, const ember_ctx_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!out)
        return ember__err(msg, EMBER_EINVAL, "ember_ctx_create: out is NULL");
    *out = NULL;
    ember_ctx_opts none;
    memset(&none, 0, sizeof none);
    const ember_ctx_opts *o = opts ? opts : &none;
    ember_allocator a = {libc_malloc, libc_realloc, libc_free, NULL};
    if (o->allocator) {
        a = *o->allocator;
        if (!a.malloc_fn || !a.realloc_fn || !a.free_fn)
            return ember__err(msg, EMBER_EINVAL, "allocator has a NULL function");
    }
    ember_ctx *ctx = a.malloc_fn(sizeof *ctx, a.ud);
    if (!ctx)
        return ember__err(msg, EMBER_ENOMEM, "out of memory creating a context");
    memset(ctx, 0, sizeof *ctx);
    ctx->alloc = a;
    ember__comm_init(&ctx->comm);
    omp_init_lock(&ctx->stats_lock);
    int rc = configure(ctx, o, msg);
    if (!rc)
        rc = ember__store_create(ctx, msg);
    if (rc) {
        ember_ctx_destroy(&ctx);
        return rc;
    }
    *out = ctx;
    return EMBER_OK;
}

static void ctx_free(ember_ctx *ctx)
{
    ember__destroy_all(ctx);
    ember__store_destroy(ctx);
    ember__comm_free(ctx);
    omp_destroy_lock(&ctx->stats_lock);
    ember__free(ctx, ctx->scratch_dir);
    ember__free(ctx, ctx->checkpoint_dir);
    ember_allocator a = ctx->alloc;
    a.free_fn(ctx, a.ud);
}

void ember_ctx_destroy(ember_ctx **pctx)
{
    if (!pctx || !*pctx)
        return;
    ember_ctx *ctx = *pctx;
    *pctx = NULL;
    /* A loop still alive uses the context (its allocator, its bound
     * datasets, a background writer): destroying the context first read
     * freed memory. Its destroy frees the context instead. */
    if (ctx->loops > 0)
        ctx->dying = 1;
    else
        ctx_free(ctx);
}

void ember__ctx_release(ember_ctx *ctx)
{
    if (--ctx->loops == 0 && ctx->dying)
        ctx_free(ctx);
}

int ember_ctx_threads(const ember_ctx *ctx)
{
    return ctx ? ctx->threads : 0;
}

int ember_ctx_set_threads(ember_ctx *ctx, int threads)
{
    if (!ctx || threads < 0)
        return EMBER_EINVAL;
    ctx->threads = threads ? threads : omp_get_max_threads();
    return EMBER_OK;
}

int ember_ctx_set_block_bytes(ember_ctx *ctx, size_t bytes, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx)
        return ember__err(msg, EMBER_EINVAL, "set_block_bytes: no context");
    size_t b = bytes ? bytes : 32 * 1024;
    if (b < 64)
        return ember__err(msg, EMBER_EINVAL, "block_bytes %zu is below 64", b);
    if (ctx->budget < b)
        return ember__err(msg, EMBER_EBUDGET,
                          "memory budget of %zu bytes is smaller than one block "
                          "(%zu bytes)", ctx->budget, b);
    ctx->block_bytes = b;
    return EMBER_OK;
}

const char *ember_ctx_checkpoint_dir(const ember_ctx *ctx)
{
    return ctx ? ctx->checkpoint_dir : NULL;
}

int ember_ctx_set_checkpoint_dir(ember_ctx *ctx, const char *dir, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || !dir || !*dir)
        return ember__err(msg, EMBER_EINVAL, "checkpoint dir: NULL or empty");
    char *copy = ember__strdup(ctx, dir);
    if (!copy)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    ember__free(ctx, ctx->checkpoint_dir);
    ctx->checkpoint_dir = copy;
    ctx->ckpt_dir_swept = 0;
    return EMBER_OK;
}

void ember_ctx_stats(const ember_ctx *ctx, ember_stats *out)
{
    if (!ctx || !out)
        return;
    ember_ctx *c = (ember_ctx *)ctx; /* the lock is not logical state */
    omp_set_lock(&c->stats_lock);
    *out = ctx->stats;
    omp_unset_lock(&c->stats_lock);
    out->live_bytes = out->memory_used + out->broadcast_bytes +
                      out->dataset_bytes;
}
