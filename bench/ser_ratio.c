/* ser_ratio: bytes a compressible 10^8 x i64 dataset (range, then x*3)
 * holds in memory at MEMORY_ONLY_SER, against its raw size. */
#include <ember.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static int times3(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *x = in;
    int64_t *y = out;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * 3;
    return 0;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? strtoll(argv[1], NULL, 10) : 100000000;
    char msg[EMBER_MSG_SIZE];
    ember_ctx *ctx = NULL;
    ember_ds *r = NULL, *m = NULL;
    ember_stats st;
    uint64_t c = 0, c2 = 0;
    int rc = ember_ctx_create(&ctx, NULL, msg);
    if (!rc)
        rc = ember_range(&r, ctx, 0, n, 1, 0, msg);
    if (!rc)
        rc = ember_map(&m, r, NULL, times3, NULL, 0, msg);
    if (!rc)
        rc = ember_persist(m, EMBER_MEMORY_ONLY_SER, msg);
    if (!rc)
        rc = ember_count(m, &c, msg);
    if (!rc)
        rc = ember_count(m, &c2, msg); /* served from the compressed blocks */
    if (rc) {
        fprintf(stderr, "ser_ratio: %s\n", msg);
        return 1;
    }
    ember_ctx_stats(ctx, &st);
    double raw = (double)n * 8;
    printf("records %" PRIu64 " raw_bytes %.0f ser_bytes %zu ratio %.4f "
           "cached_partitions %zu/%zu cache_hits %" PRIu64 "\n",
           c2, raw, st.memory_used, st.memory_used / raw,
           ember_cached_partitions(m), ember_ds_partitions(m), st.cache_hits);
    ember_ctx_destroy(&ctx);
    return 0;
}
