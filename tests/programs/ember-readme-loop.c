/* The README's resumable loop: run it, kill it, run it again. */
#include <ember.h>

typedef struct { int64_t mul, add, mod; } affine;

static int step(const void *in, void *out, size_t n, void *arg)
{
    const affine *a = arg; /* the map's own copy, made when it was created */
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] * a->mul + a->add) % a->mod;
    return 0;
}

int main(int argc, char **argv)
{
    affine lcg = {48271, 11, 2147483647}; /* the map copies it */
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *x = NULL;
    uint64_t it = 0, n = 200;
    ember_loop_opts lo = {.dir = argc > 1 ? argv[1] : "ckpt", .program = "lcg",
                          .every = 10, .iterations = n}; /* a checkpoint every 10 */
    int64_t sum = 0;
    int rc = ember_loop_catch_early(msg); /* a signal from now on: exit 75 */
    if (!rc)
        rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_range(&x, ctx, 0, 100000, 1, 0, msg);
    if (!rc)
        rc = ember_loop_create(&loop, ctx, &lo, msg);
    if (!rc) /* bound state is checkpointed, and restored when rerun */
        rc = ember_loop_bind_ds(loop, "x", &x);
    if (!rc)
        rc = ember_loop_bind_i64(loop, "sum", &sum);
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < n;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *next = NULL; /* x -> next: the lineage grows every iteration */
        rc = ember_map(&next, x, NULL, step, &lcg, sizeof lcg, msg);
        if (!rc)
            rc = ember_cache(next, msg);
        if (!rc)
            rc = ember_sum(next, &sum, msg);
        ember_ds_free(&x); /* next keeps what it needs alive */
        x = next;
        if (rc || it + 1 == n) {
            rc = rc ? rc : ember_loop_finish(loop, msg); /* the last checkpoint */
            break;
        }
    }
    if (rc == EMBER_OK)
        printf("sum %lld after %llu iterations\n", (long long)sum, (unsigned long long)n);
    else /* EMBER_INTERRUPTED: a signal came, a checkpoint was written */
        fprintf(stderr, "%s: %s\n", ember_strerror(rc), msg);
    ember_loop_destroy(&loop);
    ember_ctx_destroy(&ctx);
    return ember_exit_status(rc); /* 75: resumable; 2: bad input; 1: failed */
}
