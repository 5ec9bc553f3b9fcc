/* ckpt_cpu: the CPU one background checkpoint costs in steady state, the
 * shape of issue 11's PageRank checkpoint: N f64 values (default 2^20,
 * 8.4 MB) bound as a dataset of PARTS partitions (default 565, as
 * ember-pagerank draws them at scale 20) and a noted array of N int32
 * vertex ids (4.2 MB), a checkpoint after every iteration, in the default
 * (background) mode. Each checkpoint is started by ember_loop_next; the
 * main thread then sleeps until the writer has surely ended, so the
 * process CPU time across the pair (CLOCK_PROCESS_CPUTIME_ID) is the
 * snapshot's plus the writer's. The first K + 1 = 3 files of a run are
 * new files and the first checkpoint faults its buffers in: the figure is
 * the median over checkpoints 5 to COUNT (default 25).
 * Prints: median_ms min_ms max_ms (CPU per checkpoint), then every value;
 * then "caller" and the median wall time of the ember_loop_next that
 * starts a checkpoint (what the iterations wait for: the snapshot).
 * Run it with OMP_WAIT_POLICY=passive: the snapshot's copy runs on the
 * team, and a team spinning through the sleep would count as CPU.
 * Usage: ckpt_cpu DIR [COUNT [N [PARTS]]]
 * Build (from the repository, after make build): gcc -O2 -fopenmp
 *   -Iinclude bench/ckpt_cpu.c -Lbuild/lib -lember -Wl,-rpath,$PWD/build/lib
 *   -o /tmp/ckpt_cpu */
#include <ember.h>
#include <ember/graph.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ckpt_cpu DIR [COUNT [N [PARTS]]]\n");
        return 2;
    }
    int count = argc > 2 ? atoi(argv[2]) : 25;
    size_t n = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : (size_t)1 << 20;
    size_t parts = argc > 4 ? (size_t)strtoull(argv[4], NULL, 10) : 565;
    if (count < 6 || !n || !parts || parts > n)
        return 2;
    double *x = malloc(n * sizeof *x);
    int32_t *ids = malloc(n * sizeof *ids);
    uint64_t *off = malloc((parts + 1) * sizeof *off);
    double *cost = malloc((size_t)count * sizeof *cost);
    double *wait = malloc((size_t)count * sizeof *wait);
    if (!x || !ids || !off || !cost || !wait)
        return 1;
    for (size_t i = 0; i < n; i++) {
        x[i] = 1.0 / (double)(i + 1);
        ids[i] = (int32_t)(n - 1 - i);
    }
    for (size_t p = 0; p <= parts; p++)
        off[p] = (uint64_t)(n * p / parts);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *ds = NULL;
    ember_type f64 = ember_type_scalar(EMBER_F64);
    ember_loop_opts o = {.dir = argv[1], .program = "ckpt_cpu", .keep = 2, .every = 1,
                         .quiet = 1, .resume = EMBER_RESUME_NEVER};
    uint64_t it = 0;
    int rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_from_array_parts(&ds, ctx, &f64, x, n, off, parts, EMBER_BORROW, msg);
    if (!rc)
        rc = ember_loop_create(&loop, ctx, &o, msg);
    if (!rc)
        rc = ember_loop_bind_ds(loop, "ranks", &ds);
    if (!rc)
        rc = ember_loop_note_array(loop, "vertex_ids", EMBER_I32, ids, n);
    if (!rc)
        rc = ember_loop_next(loop, &it, msg);
    for (int k = 0; !rc && k < count; k++) {
        for (size_t i = k % 97; i < n; i += 97) /* the state moves on */
            x[i] += 1e-9;
        double c0 = clock_now(CLOCK_PROCESS_CPUTIME_ID);
        double w0 = clock_now(CLOCK_MONOTONIC);
        rc = ember_loop_next(loop, &it, msg); /* snapshot, writer started */
        wait[k] = (clock_now(CLOCK_MONOTONIC) - w0) * 1e3;
        struct timespec ts = {0, 150 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the writer ends meanwhile */
        cost[k] = (clock_now(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3;
    }
    if (!rc)
        rc = ember_loop_finish(loop, msg);
    ember_loop_destroy(&loop);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    if (rc) {
        fprintf(stderr, "ckpt_cpu: %s (%s)\n", msg, ember_strerror(rc));
        return 1;
    }
    int m = count - 4;
    double *s = malloc((size_t)m * sizeof *s);
    if (!s)
        return 1;
    memcpy(s, cost + 4, (size_t)m * sizeof *s);
    qsort(s, (size_t)m, sizeof *s, cmp);
    printf("%.3f %.3f %.3f |", s[m / 2], s[0], s[m - 1]);
    for (int k = 0; k < count; k++)
        printf(" %.2f", cost[k]);
    memcpy(s, wait + 4, (size_t)m * sizeof *s);
    qsort(s, (size_t)m, sizeof *s, cmp);
    printf("\ncaller %.3f\n", s[m / 2]);
    free(s);
    free(wait);
    free(cost);
    free(off);
    free(ids);
    free(x);
    return 0;
}
