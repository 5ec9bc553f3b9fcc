/* ckpt_io: the time ember's loop takes to write and to restore a
 * checkpoint of one f64 dataset of BYTES bytes (default 1 GiB), through the
 * public API: ember_loop_checkpoint (HDF5 file, Fletcher32, tmp + fsync +
 * rename + directory fsync) and the restore of a new loop's first next().
 * Prints: write_seconds restore_seconds file_bytes. */
#include <ember.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fill(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    double *y = out;
    for (size_t i = 0; i < n; i++) /* not compressible, not constant */
        y[i] = (double)(x[i] * 2654435761u % 1000003) / 7.0;
    return 0;
}

static int run(const char *dir, int64_t n, int restore, double *secs,
               char *msg)
{
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *r = NULL, *ds = NULL;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    /* .sync: the streamed write, compared with dd (the default, in the
     * background, would build the whole 1 GiB file in memory first) */
    ember_loop_opts o = {.dir = dir, .program = "ckpt_io", .keep = 1, .quiet = 1,
                         .sync = 1,
                         .resume = restore ? EMBER_RESUME_REQUIRE
                                           : EMBER_RESUME_NEVER};
    uint64_t it = 0;
    int rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_range(&r, ctx, 0, n, 1, 0, msg);
    if (!rc)
        rc = ember_map(&ds, r, &f64, fill, NULL, 0, msg);
    if (!rc && !restore) /* computed before the clock starts */
        rc = ember_local_checkpoint(ds, msg);
    if (!rc)
        rc = ember_loop_create(&loop, ctx, &o, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "data", &ds);
    if (restore && getenv("CKPT_IO_COLD"))
        rc = system(getenv("CKPT_IO_COLD")) == 0 ? rc : rc; /* best effort */
    double t0 = now();
    if (!rc)
        rc = ember_loop_next(loop, &it, msg);
    if (!rc && !restore)
        rc = ember_loop_checkpoint(loop, msg);
    *secs = now() - t0;
    ember_loop_destroy(&loop);
    ember_ds_free(&r);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ckpt_io DIR [BYTES]\n");
        return 2;
    }
    int64_t bytes = argc > 2 ? strtoll(argv[2], NULL, 10) : (int64_t)1 << 30;
    char msg[EMBER_MSG_SIZE];
    double w = 0, r = 0;
    int rc = run(argv[1], bytes / 8, 0, &w, msg);
    if (!rc)
        rc = run(argv[1], bytes / 8, 1, &r, msg);
    if (rc) {
        fprintf(stderr, "ckpt_io: %s (%s)\n", msg, ember_strerror(rc));
        return 1;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/ckpt-%012d.h5", argv[1], 0);
    printf("%.4f %.4f %lld\n", w, r, stat(path, &st) ? -1LL : (long long)st.st_size);
    return 0;
}
