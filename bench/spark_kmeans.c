/* spark_kmeans: k-means as a newcomer writes it on ember in Spark's style
 * (bench/spark_kmeans.sh), a shuffle every iteration:
 *
 *   spark_kmeans POINTS.csv K ITERATIONS
 *
 *   points = the CSV's rows (D = 4 columns, a header line or none), cached;
 *   centroids = the first K points;
 *   each iteration: the centroids broadcast; each point mapped to
 *                   (closest centroid, the point, 1); reduce_by_key sums
 *                   them; collected, the sums over the counts are the new
 *                   centroids, bound to an ember_loop as a K x D matrix.
 * Prints the first centroid. */
#include <ember.h>
#include <ember/loop.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D 4
#define KMAX 64

typedef struct { double x[D]; } point;
typedef struct { int64_t k; double s[D]; double n; } partial;
typedef struct { ember_bcast *centroids; int64_t k; } assign_arg;

static int assign(const void *in, void *out, size_t n, void *arg)
{
    const assign_arg *a = arg;
    const double *c = ember_bcast_data(a->centroids, NULL);
    const point *p = in;
    partial *o = out;
    for (size_t i = 0; i < n; i++) {
        int64_t best = 0;
        double bd = DBL_MAX;
        for (int64_t k = 0; k < a->k; k++) {
            double d = 0;
            for (int j = 0; j < D; j++) {
                double t = p[i].x[j] - c[k * D + j];
                d += t * t;
            }
            if (d < bd) {
                bd = d;
                best = k;
            }
        }
        o[i].k = best;
        memcpy(o[i].s, p[i].x, sizeof o[i].s);
        o[i].n = 1;
    }
    return 0;
}

#define TRY(call) do { if (!rc) rc = (call); } while (0)

int main(int argc, char **argv)
{
    if (argc < 4 || atoi(argv[2]) < 1 || atoi(argv[2]) > KMAX) {
        fprintf(stderr, "usage: spark_kmeans POINTS.csv K(1..%d) ITERATIONS\n", KMAX);
        return 2;
    }
    int64_t K = atoi(argv[2]);
    uint64_t iters = strtoull(argv[3], NULL, 10), it = 0;
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_loop *loop = NULL;
    ember_ds *points = NULL;
    double cent[KMAX * D];
    point first[KMAX];
    size_t got = 0;
    ember_field pf[] = {{"k", EMBER_I64, 1, 0}, {"s", EMBER_F64, D, 0},
                        {"n", EMBER_F64, 1, 0}};
    ember_type pt, ct = ember_type_scalar(EMBER_F64);
    ember_loop_opts lo = {.program = "spark_kmeans", .iterations = iters};
    int rc = ember_loop_catch_early(msg);
    TRY(ember_ctx_create(&ctx, NULL, msg));
    TRY(ember_read_csv(&points, ctx, argv[1], NULL, msg));
    if (!rc && ember_ds_type(points)->size != sizeof(point))
        rc = EMBER_EFORMAT, snprintf(msg, sizeof msg, "%s: want %d columns", argv[1], D);
    TRY(ember_cache(points, msg));
    TRY(ember_take(points, (size_t)K, first, &got, msg));
    for (size_t k = 0; !rc && k < got; k++)
        memcpy(cent + k * D, first[k].x, sizeof first[k].x);
    TRY(ember_type_struct(&pt, pf, 3, msg));
    TRY(ember_loop_create(&loop, ctx, &lo, msg));
    TRY(ember_loop_bind_matrix(loop, "centroids", EMBER_F64, cent, (size_t)K, D));
    for (rc = rc ? rc : ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < iters;
         rc = ember_loop_next(loop, &it, msg)) {
        ember_ds *c = NULL, *a = NULL, *s = NULL;
        assign_arg arg = {NULL, K};
        partial *sum = NULL;
        size_t ns = 0;
        rc = ember_from_array(&c, ctx, &ct, cent, (size_t)K * D, 1, EMBER_COPY, msg);
        TRY(ember_broadcast(&arg.centroids, c, msg));
        TRY(ember_map(&a, points, &pt, assign, &arg, sizeof arg, msg));
        TRY(ember_reduce_by_key(&s, a, NULL, NULL, 0, 0, msg));
        TRY(ember_collect_alloc(s, (void **)&sum, &ns, msg));
        for (size_t i = 0; !rc && i < ns; i++)
            for (int j = 0; j < D; j++)
                cent[sum[i].k * D + j] = sum[i].s[j] / sum[i].n;
        ember_free(ctx, sum);
        ember_ds_free(&s);
        ember_ds_free(&a);
        ember_bcast_free(&arg.centroids);
        ember_ds_free(&c);
        if (rc || it + 1 == iters) {
            rc = rc ? rc : ember_loop_finish(loop, msg);
            break;
        }
    }
    if (!rc)
        printf("centroid 0: %.17g %.17g %.17g %.17g after %llu iterations\n", cent[0],
               cent[1], cent[2], cent[3], (unsigned long long)iters);
    else
        fprintf(stderr, "%s: %s\n", ember_strerror(rc), msg);
    ember_loop_destroy(&loop);
    ember_ds_free(&points);
    ember_ctx_destroy(&ctx);
    return ember_exit_status(rc);
}
