/* spark_lr: Spark's logistic regression example, by gradient descent
 * (bench/spark_lr.sh), two ways:
 *
 *   spark_lr POINTS.csv ITERATIONS idiom|plain [CHECKPOINT_DIR]
 *
 * The CSV's rows are D + 1 = 11 numbers: the point x (the first 10) and
 * a last column whose sign is the label y (+1 or -1). From w = 0, each
 * iteration computes the gradient of the logistic loss
 *   g = sum over the points of (1 / (1 + exp(-y w.x)) - 1) y x
 * and steps w -= g / n.
 *   idiom  as a newcomer writes it from the README and Spark's example:
 *          the points read with ember_read_csv and cached; each iteration
 *          maps every point to its term of g (w copied into the map by
 *          value) and sums them with ember_sum; w bound to an ember_loop
 *          (a checkpoint every 100 iterations with CHECKPOINT_DIR);
 *   plain  the same points in one array (read by ember_read_csv and
 *          collected, outside the timed loop), each iteration an OpenMP
 *          loop with a partial sum a thread, added in thread order.
 * Prints w (%a) and, on stderr, the seconds of the load and of the loop.
 * The two ways need not agree to the bit (their sums are grouped
 * differently). */
#include <ember.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D 10
typedef struct { double x[D], label; } point;
typedef struct { double w[D]; } weights;

/* point p's term of the gradient at w, into g */
static void term(const weights *w, const point *p, double *g)
{
    double dot = 0, y = p->label >= 0 ? 1 : -1;
    for (int j = 0; j < D; j++)
        dot += w->w[j] * p->x[j];
    double s = (1 / (1 + exp(-y * dot)) - 1) * y;
    for (int j = 0; j < D; j++)
        g[j] = s * p->x[j];
}

static int gradient(const void *in, void *out, size_t n, void *arg)
{
    const point *p = in;
    double *g = out;
    for (size_t i = 0; i < n; i++)
        term(arg, &p[i], g + i * D);
    return 0;
}

static int idiom(ember_ctx *ctx, ember_ds *pts, uint64_t n, const char *dir,
                 weights *w, char *msg)
{
    ember_loop *loop = NULL;
    ember_loop_opts lo = {.dir = dir, .program = "spark_lr", .every = 100,
                          .iterations = n};
    ember_field gf = {"g", EMBER_F64, D, 0};
    ember_type gt;
    uint64_t count = 0, it = 0;
    int rc = ember_cache(pts, msg);
    if (!rc)
        rc = ember_count(pts, &count, msg);
    if (!rc)
        rc = ember_type_struct(&gt, &gf, 1, msg);
    if (!rc)
        rc = ember_loop_create(&loop, ctx, &lo, msg);
    if (!rc)
        rc = ember_loop_bind_array(loop, "w", EMBER_F64, w->w, D);
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < n;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *g = NULL;
        double sum[D];
        rc = ember_map(&g, pts, &gt, gradient, w, sizeof *w, msg);
        if (!rc)
            rc = ember_sum(g, sum, msg);
        ember_ds_free(&g);
        for (int j = 0; !rc && j < D; j++)
            w->w[j] -= sum[j] / (double)count;
        if (rc || it + 1 == n) {
            rc = rc ? rc : ember_loop_finish(loop, msg);
            break;
        }
    }
    ember_loop_destroy(&loop);
    return rc;
}

static int plain(ember_ds *pts, uint64_t n, weights *w, char *msg)
{
    point *p = NULL;
    size_t m = 0;
    int rc = ember_collect_alloc(pts, (void **)&p, &m, msg);
    int T = omp_get_max_threads();
    double *part = calloc((size_t)T * D, sizeof *part);
    if (!rc && !part)
        rc = EMBER_ENOMEM, snprintf(msg, EMBER_MSG_SIZE, "out of memory");
    for (uint64_t it = 0; !rc && it < n; it++) {
#pragma omp parallel
        {
            double s[D] = {0}, g[D];
#pragma omp for schedule(static)
            for (size_t i = 0; i < m; i++) {
                term(w, &p[i], g);
                for (int j = 0; j < D; j++)
                    s[j] += g[j];
            }
            memcpy(part + (size_t)omp_get_thread_num() * D, s, sizeof s);
        }
        for (int j = 0; j < D; j++) {
            double sum = 0;
            for (int t = 0; t < T; t++)
                sum += part[(size_t)t * D + j];
            w->w[j] -= sum / (double)m;
        }
    }
    free(part);
    ember_free(ember_ds_ctx(pts), p);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "idiom") && strcmp(argv[3], "plain"))) {
        fprintf(stderr, "usage: spark_lr POINTS.csv ITERATIONS idiom|plain [CHECKPOINT_DIR]\n");
        return 2;
    }
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_ds *pts = NULL;
    weights w = {{0}};
    uint64_t n = strtoull(argv[2], NULL, 10);
    int rc = ember_loop_catch_early(msg);
    double t0 = omp_get_wtime(), t1 = t0;
    if (!rc)
        rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_read_csv(&pts, ctx, argv[1], NULL, msg);
    if (!rc && ember_ds_type(pts)->size != sizeof(point))
        rc = EMBER_EFORMAT, snprintf(msg, EMBER_MSG_SIZE, "%s: not %d columns", argv[1], D + 1);
    if (!rc) {
        t1 = omp_get_wtime();
        rc = strcmp(argv[3], "idiom") == 0
                 ? idiom(ctx, pts, n, argc > 4 ? argv[4] : NULL, &w, msg)
                 : plain(pts, n, &w, msg);
    }
    if (rc == EMBER_OK) {
        fprintf(stderr, "load %.3f s loop %.3f s\n", t1 - t0, omp_get_wtime() - t1);
        printf("w");
        for (int j = 0; j < D; j++)
            printf(" %a", w.w[j]);
        printf("\n");
    } else {
        fprintf(stderr, "spark_lr %s: %s: %s\n", argv[3], ember_strerror(rc), msg);
    }
    ember_ds_free(&pts);
    ember_ctx_destroy(&ctx);
    return ember_exit_status(rc);
}
