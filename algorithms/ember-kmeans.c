/* ember-kmeans: Lloyd's k-means on a points dataset, checkpointed and
 * resumable, the same result for any thread count.
 *
 * Definitions (scripts and the verifier depend on them):
 * - A distance is the squared Euclidean distance folded over the
 *   coordinates in order, acc = fma(x_j - c_j, x_j - c_j, acc), so the SIMD
 *   kernels and the serial paths give identical bits. A point belongs to
 *   its nearest centroid, the lowest index on ties.
 * - An iteration assigns every point under the current centroids C, then
 *   moves each centroid to the mean of its points. The mean comes from
 *   exact integer sums (see "exact sums": each coordinate is a pair of
 *   integers after scaling by a power of two of its column, or more
 *   integers when a column's values span more than 2^50, always enough to
 *   hold every bit), rounded once, so no result depends on the order of
 *   the sums: not on the team, the ranks or the partitions.
 * - Empty cluster rule: when clusters are left without points, the i-th
 *   of them in index order moves onto the i-th point farthest from its own
 *   centroid in that assignment (distance descending, lowest point index on
 *   ties); the other centroids are means as usual.
 * - Stopping: the sum over centroids of the squared distance each one moved
 *   (the step's reported value, "shift") is at most T times the mean
 *   per-feature variance of the data (scikit-learn's rule, T =
 *   --tolerance), or exactly 0 (no centroid moved, so no label would
 *   change: the only rule with --tolerance 0), or --iterations are done.
 * - Output: labels and inertia (the sum of distances in point order) are
 *   those of the final centroids.
 *
 * Speed without other bits: a pass reads a point only when Hamerly's
 * bounds (see "bounds") cannot prove that its label stays, and scans every
 * centroid only when they cannot prove it with its own distance; the proofs
 * allow for rounding, so every label is the one a scan of all centroids
 * gives. The sums change by the points whose label changed. The bounds and
 * sums are derived state, rebuilt by a full pass after every start and
 * resume.
 *
 * State bound to the loop: centroids, the centroids before the last update
 * (the verifier checks that update), the last shift and the RNG counter.
 * Killed and resumed, a run finishes with the same bits as one left alone.
 */
#include <ember.h>

#include "cli.h"
#include "outputs.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KM_X86 1
#endif

/* ---- options ------------------------------------------------------------------ */

static uint64_t opt_k = 0;
static const char *opt_init = "kmeans++";

static const ember_cli_opt km_options[] = {
    {"k", EMBER_CLI_U64, &opt_k, 1, 1 << 30, EMBER_CLI_RANGE | EMBER_CLI_FINGERPRINT,
     NULL, "K", "clusters (required unless --init FILE gives them)"},
    {"init", EMBER_CLI_STR, &opt_init, 0, 0, EMBER_CLI_FINGERPRINT, NULL,
     "random|kmeans++|FILE.csv",
     "initial centroids (default kmeans++; FILE.csv holds k rows, or is an "
     "X.centroids.csv this program wrote)"},
    {0}};

static int check_args(ember_cli *cli);

static const ember_cli_program km_program = {
    .name = "ember-kmeans",
    .check = check_args,
    .summary =
        "Lloyd's k-means. Input: CSV (comma or whitespace; a first line with no\n"
        "numeric field is the header, one mixing numbers and text an error) or\n"
        "an HDF5 dataset FILE.h5:/path of n x d numbers. Output (--output): HDF5\n"
        "with /centroids (float64, k x d), /labels (int64, n) and root attributes\n"
        "(inertia, iterations, converged, program, input, parameters ...); or, for\n"
        "X.csv, id,label lines (id: the point's row, from 0) and the centroids in\n"
        "X.centroids.csv (label,x0,x1,... lines). --tolerance T stops when\n"
        "the summed squared centroid movement is at most T times the mean\n"
        "feature variance (as scikit-learn); 0 runs until no centroid moves.\n"
        "An empty cluster moves onto the point farthest from its centroid.\n"
        "Centroid sums are exact (integers), so results are the same bits for\n"
        "any --threads, ranks or --partitions. Points and distances that cannot\n"
        "change a label are skipped (exact bounds): every label is that of a\n"
        "scan of all centroids. The progress value is the shift, the summed\n"
        "squared centroid movement; the inertia is reported at the end.",
    .usage = "--input FILE --k K [options]",
    .examples = "  ember-kmeans --input data/iris.csv --k 3 --verify\n"
                "  ember-gen blobs --n 10000 --d 8 --k 16 --output pts.h5:/points\n"
                "  ember-kmeans --input pts.h5:/points --k 16 --init random --seed 7 \\\n"
                "      --output km.h5 --checkpoint-dir ck-km --checkpoint-every 5\n",
    .extra = km_options,
    .fingerprint = EMBER_CLI_FP_SEED,
    .default_iterations = 300,
    .default_tolerance = 1e-4,
    .tolerance_zero = "run until no centroid moves",
    .value_name = "shift",
    .arithmetic = "exact sums", /* before: sums in point order */
};

/* ---- distances --------------------------------------------------------------------- */

/* Full kernels: the label, the distance and the second smallest distance
 * (to any other centroid; +inf when k = 1) of m row-major points x (m x d)
 * under k centroids. The second one feeds the bounds below only. */
typedef void (*full_fn)(const double *x, const size_t *idx, size_t m, size_t d,
                        const double *c, size_t k, int32_t *lab, double *dist,
                        double *second);

/* Own kernels: each point's distance to its labelled centroid, the same
 * bits as the full kernel's for that centroid. Both kinds take rows
 * 0 .. m - 1 of x, or rows idx[0 .. m - 1] of x when idx is given. */
typedef void (*own_fn)(const double *x, const size_t *idx, size_t m, size_t d,
                       const double *c, const int32_t *lab, double *dist);

/* Move kernels: a block's label changes into the pending sums (see
 * "exact sums"). Bound kernels (see "bounds"): pretest moves the bounds
 * and lists the points they cannot keep unread (fetching their rows of x,
 * m x d, as it lists them: the own kernel reads them next), recheck tests
 * those with their own distance, set_bounds makes bounds from a full scan. */
struct km_bounds;
typedef size_t (*pretest_fn)(const struct km_bounds *b, size_t m, const int32_t *lab,
                             float *lb, float *ub, size_t *idx, const double *x, size_t d);
typedef size_t (*recheck_fn)(const struct km_bounds *b, size_t *idx, size_t nf,
                             const int32_t *lab, const float *lb, float *ub,
                             const double *dist);
typedef void (*bounds_fn)(const struct km_bounds *b, size_t m, const double *dist,
                          const double *sec, float *lb, float *ub);
struct pass_arg;
struct acc_view;
struct km_changes;
typedef void (*move_fn)(const struct pass_arg *a, struct acc_view v, const double *xb,
                        const struct km_changes *ch, const int32_t *lab);

typedef struct {
    full_fn full;
    own_fn own;
    move_fn move;
    pretest_fn pretest;
    recheck_fn recheck;
    bounds_fn bounds;
} km_kernels;

static double dist_serial(const double *x, const double *c, size_t d)
{
    double acc = 0;
    for (size_t j = 0; j < d; j++) {
        double t = x[j] - c[j];
        acc = fma(t, t, acc);
    }
    return acc;
}

/* Built for several ISAs so that fma() is one instruction where the CPU
 * has it (the result is the same everywhere: fma rounds once). */
#if defined(KM_X86) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define KM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef KM_CLONES
#define KM_CLONES
#endif

KM_CLONES static void full_serial(const double *x, const size_t *idx, size_t m, size_t d,
                                  const double *c, size_t k, int32_t *lab, double *dist,
                                  double *second)
{
    for (size_t i = 0; i < m; i++) {
        double best = INFINITY, sec = INFINITY;
        int32_t l = 0;
        const double *p = x + (idx ? idx[i] : i) * d;
        for (size_t q = 0; q < k; q++) {
            double v = dist_serial(p, c + q * d, d);
            if (v < best) {
                sec = best;
                best = v;
                l = (int32_t)q;
            } else if (v < sec) {
                sec = v;
            }
        }
        lab[i] = l;
        dist[i] = best;
        second[i] = sec;
    }
}

KM_CLONES static void own_serial(const double *x, const size_t *idx, size_t m, size_t d,
                                 const double *c, const int32_t *lab, double *dist)
{
    for (size_t i = 0; i < m; i++)
        dist[i] = dist_serial(x + (idx ? idx[i] : i) * d, c + (size_t)lab[i] * d, d);
}

#ifdef KM_X86
/* Tiles of points are transposed (coordinate-major) so one vector holds
 * one coordinate of 8 (or 4) points; four centroids share each load. */
#define TILE_DOUBLES 4096

/* One step of the running minimum and runner-up: v < b takes the lead
 * (the old leader becomes the runner-up), anything else below s becomes
 * the runner-up. A NaN v changes nothing, as in full_serial. */
#define KM_STEP512(v, b, s, l, lq)                                              \
    do {                                                                        \
        __mmask8 m_ = _mm512_cmp_pd_mask(v, b, _CMP_LT_OQ);                     \
        s = _mm512_mask_mov_pd(_mm512_min_pd(v, s), m_, b);                     \
        b = _mm512_mask_mov_pd(b, m_, v);                                       \
        l = _mm512_mask_mov_epi64(l, m_, lq);                                   \
    } while (0)

/* Stores 8 64-bit labels of a vector as int32. */
__attribute__((target("avx512f"))) static void store_labels512(int32_t *lab, __m512i l)
{
    _mm256_storeu_si256((void *)lab, _mm512_cvtepi64_epi32(l));
}

__attribute__((target("avx512f"))) static void
tile512(const double *xt, size_t T, size_t g, size_t d, const double *c,
        size_t k, int32_t *lab, double *dist, double *second)
{
    __m512d b0 = _mm512_set1_pd(INFINITY), b1 = b0, s0 = b0, s1 = b0;
    __m512i l0 = _mm512_setzero_si512(), l1 = l0;
    size_t q = 0;
    for (; q + 4 <= k; q += 4) {
        __m512d a[4][2];
        for (int u = 0; u < 4; u++)
            a[u][0] = a[u][1] = _mm512_setzero_pd();
        for (size_t j = 0; j < d; j++) {
            __m512d x0 = _mm512_loadu_pd(xt + j * T + g);
            __m512d x1 = _mm512_loadu_pd(xt + j * T + g + 8);
            for (int u = 0; u < 4; u++) {
                __m512d cb = _mm512_set1_pd(c[(q + (size_t)u) * d + j]);
                __m512d t0 = _mm512_sub_pd(x0, cb), t1 = _mm512_sub_pd(x1, cb);
                a[u][0] = _mm512_fmadd_pd(t0, t0, a[u][0]);
                a[u][1] = _mm512_fmadd_pd(t1, t1, a[u][1]);
            }
        }
        for (int u = 0; u < 4; u++) {
            __m512i lq = _mm512_set1_epi64((long long)(q + (size_t)u));
            KM_STEP512(a[u][0], b0, s0, l0, lq);
            KM_STEP512(a[u][1], b1, s1, l1, lq);
        }
    }
    for (; q < k; q++) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0;
        for (size_t j = 0; j < d; j++) {
            __m512d cb = _mm512_set1_pd(c[q * d + j]);
            __m512d t0 = _mm512_sub_pd(_mm512_loadu_pd(xt + j * T + g), cb);
            __m512d t1 = _mm512_sub_pd(_mm512_loadu_pd(xt + j * T + g + 8), cb);
            a0 = _mm512_fmadd_pd(t0, t0, a0);
            a1 = _mm512_fmadd_pd(t1, t1, a1);
        }
        __m512i lq = _mm512_set1_epi64((long long)q);
        KM_STEP512(a0, b0, s0, l0, lq);
        KM_STEP512(a1, b1, s1, l1, lq);
    }
    _mm512_storeu_pd(dist, b0);
    _mm512_storeu_pd(dist + 8, b1);
    _mm512_storeu_pd(second, s0);
    _mm512_storeu_pd(second + 8, s1);
    store_labels512(lab, l0);
    store_labels512(lab + 8, l1);
}

/* The AVX2 form of KM_STEP512 (min_pd(v, s) keeps s when v is NaN). */
#define KM_STEP256(v, b, s, l, lq)                                              \
    do {                                                                        \
        __m256d m_ = _mm256_cmp_pd(v, b, _CMP_LT_OQ);                           \
        s = _mm256_blendv_pd(_mm256_min_pd(v, s), b, m_);                       \
        b = _mm256_blendv_pd(b, v, m_);                                         \
        l = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(l),        \
                                                 _mm256_castsi256_pd(lq), m_)); \
    } while (0)

/* Centroids q .. q + w - 1 (w <= 4) against the tile's 8 points at g:
 * their running minimum and runner-up in b, s and l. Inlined with w = 4
 * for whole rounds: eight independent fma chains, enough to cover the
 * fma's latency (two centroids' four were not). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
round256(const double *xt, size_t T, size_t g, size_t d, const double *c, size_t q,
         size_t w, __m256d b[2], __m256d s[2], __m256i l[2])
{
    __m256d a[4][2];
    for (size_t u = 0; u < 4; u++)
        a[u][0] = a[u][1] = _mm256_setzero_pd();
    for (size_t j = 0; j < d; j++) {
        __m256d x0 = _mm256_loadu_pd(xt + j * T + g);
        __m256d x1 = _mm256_loadu_pd(xt + j * T + g + 4);
        for (size_t u = 0; u < w; u++) {
            __m256d cb = _mm256_set1_pd(c[(q + u) * d + j]);
            __m256d t0 = _mm256_sub_pd(x0, cb), t1 = _mm256_sub_pd(x1, cb);
            a[u][0] = _mm256_fmadd_pd(t0, t0, a[u][0]);
            a[u][1] = _mm256_fmadd_pd(t1, t1, a[u][1]);
        }
    }
    for (size_t u = 0; u < w; u++) {
        __m256i lq = _mm256_set1_epi64x((long long)(q + u));
        KM_STEP256(a[u][0], b[0], s[0], l[0], lq);
        KM_STEP256(a[u][1], b[1], s[1], l[1], lq);
    }
}

__attribute__((target("avx2,fma"))) static void
tile256(const double *xt, size_t T, size_t g, size_t d, const double *c,
        size_t k, int32_t *lab, double *dist, double *second)
{
    __m256d b[2], s[2];
    b[0] = b[1] = s[0] = s[1] = _mm256_set1_pd(INFINITY);
    __m256i l[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    size_t q = 0;
    for (; q + 4 <= k; q += 4)
        round256(xt, T, g, d, c, q, 4, b, s, l);
    if (q < k)
        round256(xt, T, g, d, c, q, k - q, b, s, l);
    _mm256_storeu_pd(dist, b[0]);
    _mm256_storeu_pd(dist + 4, b[1]);
    _mm256_storeu_pd(second, s[0]);
    _mm256_storeu_pd(second + 4, s[1]);
    int64_t lv[8];
    _mm256_storeu_si256((void *)lv, l[0]);
    _mm256_storeu_si256((void *)(lv + 4), l[1]);
    for (int i = 0; i < 8; i++)
        lab[i] = (int32_t)lv[i];
}

/* Transposes points [lo, lo + m) into xt (d rows of T), zero-padded. */
static void transpose(const double *x, const size_t *idx, size_t m, size_t d,
                      double *xt, size_t T)
{
    for (size_t j = 0; j < d; j++) {
        double *row = xt + j * T;
        for (size_t i = 0; i < m; i++)
            row[i] = x[(idx ? idx[i] : i) * d + j];
        for (size_t i = m; i < T; i++)
            row[i] = 0;
    }
}

/* An 8 x 8 block in registers: o[j] holds coordinate j of rows r[0..7]
 * (24 shuffles). */
__attribute__((target("avx512f"), always_inline)) static inline void
transpose8x8(const __m512d r[8], __m512d o[8])
{
    __m512d t[8], u[8];
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm512_unpacklo_pd(r[q], r[q + 1]);
        t[q + 1] = _mm512_unpackhi_pd(r[q], r[q + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm512_shuffle_f64x2(t[h], t[h + 2], 0x88);
        u[h + 1] = _mm512_shuffle_f64x2(t[h + 1], t[h + 3], 0x88);
        u[h + 2] = _mm512_shuffle_f64x2(t[h], t[h + 2], 0xdd);
        u[h + 3] = _mm512_shuffle_f64x2(t[h + 1], t[h + 3], 0xdd);
    }
    for (int q = 0; q < 4; q++) {
        o[q] = _mm512_shuffle_f64x2(u[q], u[q + 4], 0x88);
        o[q + 4] = _mm512_shuffle_f64x2(u[q], u[q + 4], 0xdd);
    }
}

/* A 4 x 4 block in registers: o[j] holds element j of rows r[0..3]. */
__attribute__((target("avx2"), always_inline)) static inline void
transpose4x4(const __m256d r[4], __m256d o[4])
{
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    o[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    o[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    o[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    o[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* The same for d a multiple of 8, eight points at a time. */
__attribute__((target("avx512f"))) static void
transpose512(const double *x, const size_t *idx, size_t m, size_t d, double *xt,
             size_t T)
{
    for (size_t i0 = 0; i0 < T; i0 += 8)
        for (size_t jb = 0; jb < d; jb += 8) {
            __m512d r[8], o[8];
            for (size_t q = 0; q < 8; q++) {
                size_t i = i0 + q;
                r[q] = i < m ? _mm512_loadu_pd(x + (idx ? idx[i] : i) * d + jb)
                             : _mm512_setzero_pd();
            }
            transpose8x8(r, o);
            for (size_t j = 0; j < 8; j++)
                _mm512_storeu_pd(xt + (jb + j) * T + i0, o[j]);
        }
}

/* The same for d a multiple of 4, four points at a time (AVX2). */
__attribute__((target("avx2"))) static void
transpose256(const double *x, const size_t *idx, size_t m, size_t d, double *xt,
             size_t T)
{
    for (size_t i0 = 0; i0 < T; i0 += 4)
        for (size_t jb = 0; jb < d; jb += 4) {
            __m256d r[4];
            for (size_t q = 0; q < 4; q++) {
                size_t i = i0 + q;
                r[q] = i < m ? _mm256_loadu_pd(x + (idx ? idx[i] : i) * d + jb)
                             : _mm256_setzero_pd();
            }
            __m256d o[4];
            transpose4x4(r, o);
            for (size_t j = 0; j < 4; j++)
                _mm256_storeu_pd(xt + (jb + j) * T + i0, o[j]);
        }
}

/* Runs a tile kernel over x in tiles of T points (T a multiple of G):
 * rows 0 .. m - 1 of x, or rows idx[0 .. m - 1] (their lines fetched
 * first). A tile is TILE_DOUBLES on the stack, or G points on the heap
 * when d is too large for that (full_serial, the same bits, if the heap
 * has no room). */
static void full_tiled(const double *x, const size_t *idx, size_t m, size_t d,
                       const double *c, size_t k, int32_t *lab, double *dist,
                       double *second, int wide)
{
    for (size_t i = 0; idx && i < m; i++)
        for (size_t o = 0; o < d; o += 8)
            __builtin_prefetch(x + idx[i] * d + o);
    double stack[TILE_DOUBLES], *xt = stack;
    size_t G = wide ? 16 : 8;
    size_t T = (TILE_DOUBLES / d) / G * G;
    if (T == 0) {
        T = G;
        if (!(xt = malloc(G * d * sizeof *xt))) {
            full_serial(x, idx, m, d, c, k, lab, dist, second);
            return;
        }
    }
    int32_t tl[16];
    double td[16], ts[16];
    for (size_t lo = 0; lo < m; lo += T) {
        size_t mt = m - lo < T ? m - lo : T, tp = (mt + G - 1) / G * G;
        const double *xs = idx ? x : x + lo * d;
        const size_t *is = idx ? idx + lo : NULL;
        if (wide && d % 8 == 0)
            transpose512(xs, is, mt, d, xt, tp);
        else if (!wide && d % 4 == 0)
            transpose256(xs, is, mt, d, xt, tp);
        else
            transpose(xs, is, mt, d, xt, tp);
        for (size_t g = 0; g < tp; g += G) {
            if (wide)
                tile512(xt, tp, g, d, c, k, tl, td, ts);
            else
                tile256(xt, tp, g, d, c, k, tl, td, ts);
            size_t cnt = mt - g < G ? mt - g : G;
            memcpy(lab + lo + g, tl, cnt * sizeof *tl);
            memcpy(dist + lo + g, td, cnt * sizeof *td);
            memcpy(second + lo + g, ts, cnt * sizeof *ts);
        }
    }
    if (xt != stack)
        free(xt);
}

static void full_avx512(const double *x, const size_t *idx, size_t m, size_t d,
                        const double *c, size_t k, int32_t *lab, double *dist,
                        double *second)
{
    full_tiled(x, idx, m, d, c, k, lab, dist, second, 1);
}

static void full_avx2(const double *x, const size_t *idx, size_t m, size_t d,
                      const double *c, size_t k, int32_t *lab, double *dist,
                      double *second)
{
    full_tiled(x, idx, m, d, c, k, lab, dist, second, 0);
}

/* The distances of 8 points to their centroids: each difference row by
 * row, 8 coordinates at a time (the last w < 8 with masked loads), then
 * 8 x 8 blocks transposed so that the fma chain over the coordinates runs
 * in order in each lane. */
__attribute__((target("avx512f"), always_inline)) static inline __m512d
own8(const double *x, const size_t *idx, size_t d, const double *c, const int32_t *lab)
{
    __m512d acc = _mm512_setzero_pd();
    for (size_t jb = 0; jb < d; jb += 8) {
        size_t w = d - jb < 8 ? d - jb : 8;
        __mmask8 mk = (__mmask8)((1u << w) - 1);
        __m512d r[8], o[8];
        for (size_t q = 0; q < 8; q++)
            r[q] = _mm512_sub_pd(_mm512_maskz_loadu_pd(mk, x + (idx ? idx[q] : q) * d + jb),
                                 _mm512_maskz_loadu_pd(mk, c + (size_t)lab[q] * d + jb));
        transpose8x8(r, o);
        for (size_t j = 0; j < w; j++)
            acc = _mm512_fmadd_pd(o[j], o[j], acc);
    }
    return acc;
}
#endif

/* Points are assigned in blocks of this many. */
#define KM_BLOCK 256

/* ---- bounds: skipping distances without changing a label ------------------------------ */

/* Hamerly's bounds, kept exact in floating point. For each point the state
 * holds its label a under `at`, the centroids of the last pass, and two
 * bounds on true (real-number) distances: ub above its distance to
 * centroid a, lb below its distance to every other centroid. Before a pass
 * under c, ub grows by the true movement of centroid a since `at`, and lb
 * drops by the largest movement of another centroid (triangle inequality);
 * every other centroid is also at least near[a] - ub away, near[a] being
 * at most the distance from centroid a to its nearest other one. When the
 * largest computed distance that ub allows is below the smallest that
 * those lower bounds allow, the full scan would pick a: the point keeps its
 * label unread. Otherwise its computed distance v to centroid a is
 * computed. If v is below sq_below(lb), or below hsq[a] (the point lies
 * within half the distance from centroid a to its nearest other centroid,
 * less margins), every other centroid's computed distance is larger than
 * v, so the label stays; else the point is scanned with the full kernel,
 * exactly as without bounds, which also gives its new bounds. Labels are
 * therefore those of the plain scan, bit for bit, and so are the distances
 * of the final labelling, which computes v for every point.
 *
 * Rounding: a computed squared distance v of true distance D (d
 * coordinates, one rounding per subtraction and per fma, all terms >= 0)
 * lies within D^2 (1 +- (d + 2) u) +- (d + 2) 2^-1074 (u = 2^-53; the last
 * term covers underflow). The margins below (rho = (8 d + 64) u relative,
 * beta = sqrt(d + 8) 2^-530 and tiny = (d + 8) 2^-1074 absolute) exceed that
 * and the rounding of the few operations on the bounds themselves; values
 * are capped at 2^500 so that squares cannot overflow, and a computed
 * distance of +inf (overflow) means a true distance of at least 2^511.
 *
 * The state is derived from the run, never checkpointed: it starts invalid
 * (start, resume), and a pass with invalid state scans every point and
 * rebuilds it. EMBER_KMEANS_BOUNDS=0 turns the bounds off (every pass
 * scans every point), for tests. */
typedef struct km_bounds {
    int32_t *lab;  /* n: labels under `at` */
    float *lb;     /* n, rounded down (f_down) */
    float *ub;     /* n, rounded up (f_up) */
    double *at;    /* k x d: the centroids of the last pass */
    double *row;   /* k x 4, for a point labelled q, at 4 q + (one load a
                      point in pretest256): */
#define KM_DEC 0   /*   what it subtracts from lb */
#define KM_MV 1    /*   what it adds to ub */
#define KM_NEAR 2  /*   at most the true distance from centroid q to another */
                   /*   (and 0) */
    double *hsq;   /* k: a computed distance below hsq[q] keeps label q */
    size_t k;      /* the centroids */
    double rho_dn, rho_up, beta, tiny, cap;
    int use, valid;
    size_t scanned, read, visited; /* points scanned in full, whose own
                                      distance was computed, assigned */
} km_bounds;

static void bounds_margins(km_bounds *b, size_t d)
{
    double rho = (double)(8 * d + 64) * 0x1p-53;
    b->rho_dn = 1 - rho;
    b->rho_up = 1 + rho;
    b->beta = sqrt((double)d + 8) * 0x1p-530;
    b->tiny = (double)(d + 8) * 0x1p-1074;
    b->cap = 0x1p500;
}

/* A lower bound on the true distance whose computed square is v. */
static double true_below(const km_bounds *b, double v)
{
    if (!(v < INFINITY))
        return v == INFINITY ? b->cap : 0;
    double r = (sqrt(v) - b->beta) * b->rho_dn;
    return r > 0 ? (r < b->cap ? r : b->cap) : 0;
}

/* An upper bound on the true distance whose computed square is v. */
static double true_above(const km_bounds *b, double v)
{
    return (sqrt(v) + b->beta) * b->rho_up;
}

/* A computed distance below this is below that of any centroid at a true
 * distance of at least l. */
static double sq_below(const km_bounds *b, double l)
{
    if (l > b->cap)
        l = b->cap;
    return l * l * b->rho_dn - b->tiny;
}

/* The bounds are stored as floats, half the memory a pass reads and
 * writes, each rounded the way that keeps it a bound: lb down, ub up.
 * (Both take values >= 0, +inf or, ub only, NaN, which fails every test.) */
static inline float f_down(double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u -= (double)f > v; /* then f > 0: the next float down */
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float f_up(double v)
{
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += (double)f < v; /* the next float up (+inf past the largest) */
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A row of d coordinates fetched into the cache. */
static inline void fetch_row(const double *row, size_t d)
{
    for (size_t o = 0; o < d; o += 8)
        __builtin_prefetch(row + o);
}

/* The rows of points j of x (from 0) whose bit is set in need. In steady
 * passes a few points a block fail the pretest, each on a page of its own:
 * fetched as the pretest lists them, their translations and lines are on
 * the way while it goes on, not asked for just before they are read
 * (k-means 1M x 16, k 16, 80 iterations: compute 2-5 % less). Only the
 * first KM_FETCH_MAX of a block: when most points fail, the own kernel
 * reads the block in order, and fetching every row ahead would evict the
 * first ones from L1 before they are read. */
#define KM_FETCH_MAX 32
static inline void fetch_needed(const double *x, size_t d, unsigned need)
{
    for (; need; need &= need - 1)
        fetch_row(x + (size_t)__builtin_ctz(need) * d, d);
}

/* Moves the bounds of m points to the pass's centroids and puts the points
 * they cannot keep unread in idx; returns their count: those for which the
 * largest computed distance to their centroid that ub allows (u^2 up +
 * tiny, as the rounding of a distance is bounded above) is not below the
 * smallest that the other centroids' bounds allow (sq_below). */
KM_CLONES static size_t pretest(const km_bounds *b, size_t m, const int32_t *lab,
                                float *lb, float *ub, size_t *idx, const double *x,
                                size_t d)
{
    unsigned char need[KM_BLOCK];
    size_t fetched = 0;
    const double dn = b->rho_dn, up = b->rho_up, tiny = b->tiny, cap = b->cap;
    for (size_t i = 0; i < m; i++) {
        int32_t q = lab[i];
        const double *r = b->row + 4 * (size_t)q;
        double l = (lb[i] - r[KM_DEC]) * dn;
        l = l > 0 ? l : 0;
        double u = (ub[i] + r[KM_MV]) * up;
        double t = (r[KM_NEAR] - u) * dn; /* other centroids are this far */
        t = t > l ? t : l;
        t = t < cap ? t : cap;
        lb[i] = f_down(l);
        ub[i] = f_up(u);
        need[i] = !(u * u * up + tiny < t * t * dn - tiny);
        if (need[i] && fetched < KM_FETCH_MAX) {
            fetch_row(x + i * d, d);
            fetched++;
        }
    }
    size_t nf = 0;
    for (size_t i = 0; i < m; i++) {
        idx[nf] = i;
        nf += need[i];
    }
    return nf;
}

/* 1 if a point labelled q, at computed distance v and lower bound l, keeps
 * its label. */
static int keeps(const km_bounds *b, int32_t q, double l, double v)
{
    double thr = sq_below(b, l), h = b->hsq[q];
    return v < (h > thr ? h : thr);
}

/* Candidates idx[0..nf) with their distances in dist: each one's ub from
 * its distance, and the ones keeps() does not keep moved to the front of
 * idx; returns their count. */
static size_t recheck(const km_bounds *b, size_t *idx, size_t nf, const int32_t *lab,
                      const float *lb, float *ub, const double *dist)
{
    size_t nr = 0;
    for (size_t t = 0; t < nf; t++) {
        size_t i = idx[t];
        ub[i] = f_up(true_above(b, dist[i]));
        if (!keeps(b, lab[i], lb[i], dist[i]))
            idx[nr++] = i;
    }
    return nr;
}

/* The bounds of m points from a full scan's distances and second
 * distances. */
static void set_bounds(const km_bounds *b, size_t m, const double *dist, const double *sec,
                       float *lb, float *ub)
{
    for (size_t i = 0; i < m; i++) {
        lb[i] = f_down(true_below(b, sec[i]));
        ub[i] = f_up(true_above(b, dist[i]));
    }
}

#ifdef KM_X86
/* Eight doubles to floats rounded down (as f_down) and up (as f_up). */
__attribute__((target("avx512f"), always_inline)) static inline __m256 down8(__m512d v)
{
    return _mm512_cvt_roundpd_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}

__attribute__((target("avx512f"), always_inline)) static inline __m256 up8(__m512d v)
{
    return _mm512_cvt_roundpd_ps(v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
}

/* The vector pretests' last points, i to m, after the nf they listed. */
static size_t pretest_from(const km_bounds *b, size_t i, size_t m, const int32_t *lab,
                           float *lb, float *ub, size_t *idx, size_t nf, const double *x,
                           size_t d)
{
    size_t rest = pretest(b, m - i, lab + i, lb + i, ub + i, idx + nf, x + i * d, d);
    for (size_t t = nf; t < nf + rest; t++)
        idx[t] += i;
    return nf + rest;
}

/* The own kernels' scattered rows (idx, when given), all fetched first. */
static void fetch_rows(const double *x, const size_t *idx, size_t m, size_t d)
{
    for (size_t t = 0; idx && t < m; t++)
        for (size_t o = 0; o < d; o += 8)
            _mm_prefetch((const char *)(x + idx[t] * d + o), _MM_HINT_T0);
}

/* set_bounds, eight points at a time (the same values: sqrt rounds as the
 * scalar one does, and a NaN or +inf takes the scalar branches' values). */
__attribute__((target("avx512f"))) static void
set_bounds512(const km_bounds *b, size_t m, const double *dist, const double *sec,
              float *lb, float *ub)
{
    const __m512d dn = _mm512_set1_pd(b->rho_dn), up = _mm512_set1_pd(b->rho_up);
    const __m512d beta = _mm512_set1_pd(b->beta), cap = _mm512_set1_pd(b->cap);
    const __m512d zero = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m512d l = _mm512_sub_pd(_mm512_sqrt_pd(_mm512_loadu_pd(sec + i)), beta);
        /* a NaN gives 0 and +inf gives cap, as in true_below */
        l = _mm512_min_pd(_mm512_max_pd(_mm512_mul_pd(l, dn), zero), cap);
        __m512d u = _mm512_add_pd(_mm512_sqrt_pd(_mm512_loadu_pd(dist + i)), beta);
        _mm256_storeu_ps(lb + i, down8(l));
        _mm256_storeu_ps(ub + i, up8(_mm512_mul_pd(u, up)));
    }
    set_bounds(b, m - i, dist + i, sec + i, lb + i, ub + i);
}

/* recheck, eight candidates at a time (gathered from the block's arrays;
 * the same values and decisions). */
__attribute__((target("avx512f"))) static size_t
recheck512(const km_bounds *b, size_t *idx, size_t nf, const int32_t *lab, const float *lb,
           float *ub, const double *dist)
{
    const __m512d dn = _mm512_set1_pd(b->rho_dn), up = _mm512_set1_pd(b->rho_up);
    const __m512d beta = _mm512_set1_pd(b->beta), tiny = _mm512_set1_pd(b->tiny);
    const __m512d cap = _mm512_set1_pd(b->cap);
    size_t nr = 0, t = 0;
    for (; t + 8 <= nf; t += 8) {
        __m512i i = _mm512_loadu_si512((const void *)(idx + t));
        __m512d v = _mm512_i64gather_pd(i, dist, 8);
        __m512d l = _mm512_min_pd(_mm512_cvtps_pd(_mm512_i64gather_ps(i, lb, 4)), cap);
        __m512d h = _mm512_i32gather_pd(_mm512_i64gather_epi32(i, lab, 4), b->hsq, 8);
        __m512d u = _mm512_mul_pd(_mm512_add_pd(_mm512_sqrt_pd(v), beta), up);
        _mm512_i64scatter_ps(ub, i, up8(u), 4);
        __m512d thr = _mm512_sub_pd(_mm512_mul_pd(_mm512_mul_pd(l, l), dn), tiny);
        thr = _mm512_max_pd(thr, h);
        __mmask8 fail = _mm512_cmp_pd_mask(v, thr, _CMP_NLT_UQ);
        /* all 8 lanes stored, the listed ones first: idx[nr .. nr + 7] lies
         * within what was read already (nr <= t) */
        _mm512_storeu_si512((void *)(idx + nr), _mm512_maskz_compress_epi64(fail, i));
        nr += (size_t)__builtin_popcount(fail);
    }
    size_t rest = recheck(b, idx + t, nf - t, lab, lb, ub, dist);
    memmove(idx + nr, idx + t, rest * sizeof *idx);
    return nr + rest;
}

/* pretest, eight points at a time (the same decisions and stored bounds:
 * the conversions round down and up as f_down and f_up do). */
__attribute__((target("avx512f"))) static size_t
pretest512(const km_bounds *b, size_t m, const int32_t *lab, float *lb, float *ub,
           size_t *idx, const double *x, size_t d)
{
    const __m512d dn = _mm512_set1_pd(b->rho_dn), up = _mm512_set1_pd(b->rho_up);
    const __m512d tiny = _mm512_set1_pd(b->tiny), cap = _mm512_set1_pd(b->cap);
    const __m512d zero = _mm512_setzero_pd();
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    /* up to 16 centroids: each field's k values in two registers, picked
     * by a permutation instead of a gather (the three gathers cost about
     * a tenth of 100 iterations' compute on Zen 4) */
    __m512d tab[3][2];
    int small = b->k <= 16;
    for (int f = 0; small && f < 3; f++)
        for (int h = 0; h < 2; h++) {
            __m512i at = _mm512_add_epi64(_mm512_slli_epi64(lane, 2),
                                          _mm512_set1_epi64(32 * h + f));
            __mmask8 in = (__mmask8)_mm512_cmp_epi64_mask(
                _mm512_add_epi64(lane, _mm512_set1_epi64(8 * h)),
                _mm512_set1_epi64((long long)b->k), _MM_CMPINT_LT);
            tab[f][h] = _mm512_mask_i64gather_pd(zero, in, at, b->row, 8);
        }
    size_t nf = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
        __m256i lq = _mm256_loadu_si256((const void *)(lab + i));
        __m512d dec, mv, near;
        if (small) {
            __m512i q = _mm512_cvtepi32_epi64(lq);
            dec = _mm512_permutex2var_pd(tab[KM_DEC][0], q, tab[KM_DEC][1]);
            mv = _mm512_permutex2var_pd(tab[KM_MV][0], q, tab[KM_MV][1]);
            near = _mm512_permutex2var_pd(tab[KM_NEAR][0], q, tab[KM_NEAR][1]);
        } else {
            __m256i q = _mm256_slli_epi32(lq, 2);
            dec = _mm512_i32gather_pd(q, b->row + KM_DEC, 8);
            mv = _mm512_i32gather_pd(q, b->row + KM_MV, 8);
            near = _mm512_i32gather_pd(q, b->row + KM_NEAR, 8);
        }
        __m512d l = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(lb + i)), dec);
        l = _mm512_max_pd(_mm512_mul_pd(l, dn), zero);
        __m512d u = _mm512_add_pd(_mm512_cvtps_pd(_mm256_loadu_ps(ub + i)), mv);
        u = _mm512_mul_pd(u, up);
        __m512d t = _mm512_mul_pd(_mm512_sub_pd(near, u), dn);
        t = _mm512_min_pd(_mm512_max_pd(t, l), cap); /* a NaN t gives l */
        _mm256_storeu_ps(lb + i, down8(l));
        _mm256_storeu_ps(ub + i, up8(u));
        __m512d above = _mm512_add_pd(_mm512_mul_pd(_mm512_mul_pd(u, u), up), tiny);
        __m512d below = _mm512_sub_pd(_mm512_mul_pd(_mm512_mul_pd(t, t), dn), tiny);
        __mmask8 need = _mm512_cmp_pd_mask(above, below, _CMP_NLT_UQ);
        /* all 8 lanes stored, the listed ones first (nf + 8 <= i + 8 <= m) */
        _mm512_storeu_si512((void *)(idx + nf),
                            _mm512_maskz_compress_epi64(
                                need, _mm512_add_epi64(lane, _mm512_set1_epi64((long long)i))));
        if (nf < KM_FETCH_MAX)
            fetch_needed(x + i * d, d, need);
        nf += (size_t)__builtin_popcount(need);
    }
    return pretest_from(b, i, m, lab, lb, ub, idx, nf, x, d);
}

/* own_serial, eight points at a time. */
__attribute__((target("avx512f"))) static void
own512(const double *x, const size_t *idx, size_t m, size_t d, const double *c,
       const int32_t *lab, double *dist)
{
    size_t i = 0;
    fetch_rows(x, idx, m, d);
    for (; i + 8 <= m; i += 8) {
        for (size_t o = 0; !idx && o < 8 * d; o += 8) /* the memory 16 KiB ahead */
            _mm_prefetch((const char *)(x + (i + 8) * d + 2048 + o), _MM_HINT_T0);
        _mm512_storeu_pd(dist + i, idx ? own8(x, idx + i, d, c, lab + i)
                                       : own8(x + i * d, NULL, d, c, lab + i));
    }
    if (idx)
        own_serial(x, idx + i, m - i, d, c, lab + i, dist + i);
    else
        own_serial(x + i * d, NULL, m - i, d, c, lab + i, dist + i);
}
#endif

#ifdef KM_X86
/* Four doubles to floats rounded down (as f_down) or up (as f_up): to
 * nearest, then one step where that went the wrong way (AVX2 has no
 * directed conversion). */
__attribute__((target("avx2"), always_inline)) static inline __m128
round4(__m256d v, int up)
{
    __m128 f = _mm256_cvtpd_ps(v);
    __m256d back = _mm256_cvtps_pd(f);
    __m256d wrong = up ? _mm256_cmp_pd(back, v, _CMP_LT_OQ)
                       : _mm256_cmp_pd(back, v, _CMP_GT_OQ);
    /* the four 64-bit masks as four 32-bit ones (-1 or 0) */
    __m128i w = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(
        _mm256_castpd_si256(wrong), _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)));
    __m128i bits = _mm_castps_si128(f);
    return _mm_castsi128_ps(up ? _mm_sub_epi32(bits, w) : _mm_add_epi32(bits, w));
}

/* pretest, four points at a time (the same operations as pretest512). */
__attribute__((target("avx2"))) static size_t
pretest256(const km_bounds *b, size_t m, const int32_t *lab, float *lb, float *ub,
           size_t *idx, const double *x, size_t d)
{
    const __m256d dn = _mm256_set1_pd(b->rho_dn), up = _mm256_set1_pd(b->rho_up);
    const __m256d tiny = _mm256_set1_pd(b->tiny), cap = _mm256_set1_pd(b->cap);
    const __m256d zero = _mm256_setzero_pd();
    size_t nf = 0, i = 0;
    for (; i + 4 <= m; i += 4) {
        /* each point's row of b->row, transposed: loads and shuffles
         * instead of three gathers, which Zen 3 runs slowly */
        __m256d r[4], o[4];
        for (size_t q = 0; q < 4; q++)
            r[q] = _mm256_loadu_pd(b->row + 4 * (size_t)lab[i + q]);
        transpose4x4(r, o);
        __m256d dec = o[KM_DEC], mv = o[KM_MV], near = o[KM_NEAR];
        __m256d l = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(lb + i)), dec);
        l = _mm256_max_pd(_mm256_mul_pd(l, dn), zero);
        __m256d u = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(ub + i)), mv);
        u = _mm256_mul_pd(u, up);
        __m256d t = _mm256_mul_pd(_mm256_sub_pd(near, u), dn);
        t = _mm256_min_pd(_mm256_max_pd(t, l), cap); /* a NaN t gives l */
        _mm_storeu_ps(lb + i, round4(l, 0));
        _mm_storeu_ps(ub + i, round4(u, 1));
        __m256d above = _mm256_add_pd(_mm256_mul_pd(_mm256_mul_pd(u, u), up), tiny);
        __m256d below = _mm256_sub_pd(_mm256_mul_pd(_mm256_mul_pd(t, t), dn), tiny);
        unsigned need = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(above, below, _CMP_NLT_UQ));
        for (unsigned j = 0; j < 4; j++) {
            idx[nf] = i + j;
            nf += need >> j & 1;
        }
        if (nf < KM_FETCH_MAX)
            fetch_needed(x + i * d, d, need);
    }
    return pretest_from(b, i, m, lab, lb, ub, idx, nf, x, d);
}

/* set_bounds, four points at a time (the operations of set_bounds512). */
__attribute__((target("avx2"))) static void
set_bounds256(const km_bounds *b, size_t m, const double *dist, const double *sec,
              float *lb, float *ub)
{
    const __m256d dn = _mm256_set1_pd(b->rho_dn), up = _mm256_set1_pd(b->rho_up);
    const __m256d beta = _mm256_set1_pd(b->beta), cap = _mm256_set1_pd(b->cap);
    const __m256d zero = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        __m256d l = _mm256_sub_pd(_mm256_sqrt_pd(_mm256_loadu_pd(sec + i)), beta);
        /* a NaN gives 0 and +inf gives cap, as in true_below */
        l = _mm256_min_pd(_mm256_max_pd(_mm256_mul_pd(l, dn), zero), cap);
        __m256d u = _mm256_add_pd(_mm256_sqrt_pd(_mm256_loadu_pd(dist + i)), beta);
        _mm_storeu_ps(lb + i, round4(l, 0));
        _mm_storeu_ps(ub + i, round4(_mm256_mul_pd(u, up), 1));
    }
    set_bounds(b, m - i, dist + i, sec + i, lb + i, ub + i);
}

/* recheck, four candidates at a time (the operations of recheck512; the
 * block's arrays read lane by lane, which Zen 3 does faster than its
 * gathers). */
__attribute__((target("avx2"))) static size_t
recheck256(const km_bounds *b, size_t *idx, size_t nf, const int32_t *lab,
           const float *lb, float *ub, const double *dist)
{
    const __m256d dn = _mm256_set1_pd(b->rho_dn), up = _mm256_set1_pd(b->rho_up);
    const __m256d beta = _mm256_set1_pd(b->beta), tiny = _mm256_set1_pd(b->tiny);
    const __m256d cap = _mm256_set1_pd(b->cap);
    size_t nr = 0, t = 0;
    for (; t + 4 <= nf; t += 4) {
        size_t i[4] = {idx[t], idx[t + 1], idx[t + 2], idx[t + 3]};
        __m256d v = _mm256_setr_pd(dist[i[0]], dist[i[1]], dist[i[2]], dist[i[3]]);
        __m256d l = _mm256_min_pd(
            _mm256_cvtps_pd(_mm_setr_ps(lb[i[0]], lb[i[1]], lb[i[2]], lb[i[3]])), cap);
        __m256d h = _mm256_setr_pd(b->hsq[lab[i[0]]], b->hsq[lab[i[1]]],
                                   b->hsq[lab[i[2]]], b->hsq[lab[i[3]]]);
        __m256d u = _mm256_mul_pd(_mm256_add_pd(_mm256_sqrt_pd(v), beta), up);
        float uf[4];
        _mm_storeu_ps(uf, round4(u, 1));
        __m256d thr = _mm256_sub_pd(_mm256_mul_pd(_mm256_mul_pd(l, l), dn), tiny);
        thr = _mm256_max_pd(thr, h);
        unsigned fail = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(v, thr, _CMP_NLT_UQ));
        for (unsigned j = 0; j < 4; j++) { /* nr <= t: these were read already */
            ub[i[j]] = uf[j];
            idx[nr] = i[j];
            nr += fail >> j & 1;
        }
    }
    size_t rest = recheck(b, idx + t, nf - t, lab, lb, ub, dist);
    memmove(idx + nr, idx + t, rest * sizeof *idx);
    return nr + rest;
}

/* own_serial, four points at a time: each difference row by row, four
 * coordinates at a time (the last w < 4 masked), then 4 x 4 blocks
 * transposed so that the fma chain over the coordinates runs in order in
 * each lane, as in dist_serial. */
__attribute__((target("avx2,fma"))) static void
own256(const double *x, const size_t *idx, size_t m, size_t d, const double *c,
       const int32_t *lab, double *dist)
{
    size_t i = 0;
    fetch_rows(x, idx, m, d);
    for (; i + 4 <= m; i += 4) {
        for (size_t o = 0; !idx && o < 4 * d; o += 8) /* the memory 16 KiB ahead */
            _mm_prefetch((const char *)(x + (i + 4) * d + 2048 + o), _MM_HINT_T0);
        __m256d acc = _mm256_setzero_pd();
        for (size_t jb = 0; jb < d; jb += 4) {
            size_t w = d - jb < 4 ? d - jb : 4;
            __m256i mk = _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)w),
                                            _mm256_setr_epi64x(0, 1, 2, 3));
            __m256d r[4];
            for (size_t q = 0; q < 4; q++) {
                const double *p = x + (idx ? idx[i + q] : i + q) * d + jb;
                const double *cq = c + (size_t)lab[i + q] * d + jb;
                r[q] = w == 4 ? _mm256_sub_pd(_mm256_loadu_pd(p), _mm256_loadu_pd(cq))
                              : _mm256_sub_pd(_mm256_maskload_pd(p, mk),
                                              _mm256_maskload_pd(cq, mk));
            }
            __m256d o[4];
            transpose4x4(r, o);
            for (size_t j = 0; j < w; j++)
                acc = _mm256_fmadd_pd(o[j], o[j], acc);
        }
        _mm256_storeu_pd(dist + i, acc);
    }
    own_serial(idx ? x : x + i * d, idx ? idx + i : NULL, m - i, d, c, lab + i, dist + i);
}
#endif

/* Before a pass under centroids c: the movements and thresholds from `at`
 * to c. Non-finite movement invalidates the state (a full pass). */
static void bounds_begin(km_bounds *b, const double *c, size_t k, size_t d, size_t n)
{
    if (!b->valid)
        return;
    double m1 = 0, m2 = 0; /* the two largest movements */
    size_t q1 = 0;
    for (size_t q = 0; q < k && b->valid; q++) {
        double v = true_above(b, dist_serial(b->at + q * d, c + q * d, d));
        b->row[4 * q + KM_MV] = v;
        if (!(v < INFINITY))
            b->valid = 0;
        else if (v > m1) {
            m2 = m1;
            m1 = v;
            q1 = q;
        } else if (v > m2) {
            m2 = v;
        }
    }
    for (size_t q = 0; q < k; q++) {
        b->row[4 * q + KM_DEC] = q == q1 ? m2 : m1;
        b->row[4 * q + KM_NEAR] = b->row[4 * q + 3] = 0;
        b->hsq[q] = -1;
    }
    /* unless the centroid pairs would cost more than they save */
    for (size_t q = 0; q < k && b->valid && !(k > 64 && k * k > n); q++) {
        double near = INFINITY;
        for (size_t r = 0; r < k; r++)
            if (r != q) {
                double v = true_below(b, dist_serial(c + q * d, c + r * d, d));
                near = v < near ? v : near;
            }
        double h = (near - 2 * b->beta) * 0.5 * b->rho_dn;
        b->hsq[q] = h > 0 ? sq_below(b, h) : -1;
        b->row[4 * q + KM_NEAR] = near;
    }
}

/* After a pass under c: the state refers to c, if every point had its
 * state updated. */
static void bounds_end(km_bounds *b, const double *c, size_t k, size_t d, int ok)
{
    b->valid = ok && b->use;
    if (b->valid)
        memcpy(b->at, c, k * d * sizeof *c);
}

/* ---- exact sums ------------------------------------------------------------------- */

/* The centroids' sums are integers, exact, so they are the same whatever
 * order points are added and taken in: a pass adds in only the points
 * whose label changed, and no sum depends on the team, the ranks or the
 * partitions. Column j is scaled by 2^s_j, s_j = 51 - e_j, 2^e_j the least
 * power of two above its largest magnitude. A coordinate x is the pair of
 * integers h = round(x 2^s_j) and l = round((x 2^s_j - h) 2^51) (to
 * nearest, ties to even; |h| <= 2^51, |l| <= 2^50): exact for every x of
 * magnitude 2^(e_j - 50) or more, within 2^(e_j - 103) of the others. A
 * centroid's coordinate is (H + L 2^-51) / count rounded once to a double
 * (exact_mean), times 2^-s_j, where H and L are the sums of h and l with L
 * carried into H so that 0 <= L < 2^51.
 * A column whose smallest nonzero magnitude is below 2^(e_j - 50) (one
 * value far larger than the rest: a fill value, say) gets more integers,
 * X in all for every column: word w of x is round(r_w 2^(s_j + 51 w)), r_0
 * = x and r_(w+1) what word w leaves (exact), enough words that the last
 * leaves nothing, so the sums stay exact; the first two are h and l. */
__extension__ typedef __int128 km_i128;

typedef struct {
    int *s;          /* d: the columns' scales */
    double *f1, *f2; /* d: 2^s_j as two factors, each a normal double */
    km_i128 *h, *l;  /* k x d: the sums of the labels the bounds hold */
    int X;           /* more words a coordinate (0 unless a column is wide) */
    int tiny;        /* a value below 2^-969 (a last bit below 2^-1022) */
    km_i128 *x;      /* X x k x d: their sums, word-major */
    int64_t *cnt;    /* k */
} km_sums;

/* How many changes a centroid's pending sums take before they are added
 * into its totals: |h| <= 2^51, so 2^11 of them stay below 2^63. */
#define KM_PENDING 2048
#define KM_SPLIT 256

/* The pairs of coordinates j0 .. j0 + w - 1 of a point (w <= KM_SPLIT). */
KM_CLONES static void split(const km_sums *z, const double *x, size_t j0, size_t w,
                            int64_t *h, int64_t *l)
{
    const double big = 0x1.8p52; /* v + big rounds v (|v| <= 2^51) to an integer */
    int64_t bb;
    memcpy(&bb, &big, sizeof bb);
    for (size_t j = 0; j < w; j++) {
        double v = x[j] * z->f1[j0 + j] * z->f2[j0 + j];
        double t = v + big;
        double u = (v - (t - big)) * 0x1p51 + big; /* the remainder is exact */
        int64_t tb, ub;
        memcpy(&tb, &t, sizeof tb);
        memcpy(&ub, &u, sizeof ub);
        h[j] = tb - bb;
        l[j] = ub - bb;
    }
}

/* All 2 + z->X words of coordinate j of x (the pair split makes, when
 * X is 0). */
static void split_wide(const km_sums *z, double x, size_t j, int64_t *word)
{
    double r = x;
    for (int w = 0; w < 2 + z->X; w++) {
        double q = nearbyint(ldexp(r, z->s[j] + 51 * w)); /* ties to even */
        word[w] = (int64_t)q;
        r -= ldexp(q, -(z->s[j] + 51 * w)); /* exact: what the word leaves */
    }
}

KM_CLONES static void row_add(int64_t *rh, int64_t *rl, const int64_t *h,
                              const int64_t *l, size_t w, int64_t sign)
{
    for (size_t j = 0; j < w; j++) {
        rh[j] += sign * h[j];
        rl[j] += sign * l[j];
    }
}

/* ---- one Lloyd pass: per-partition changes of the sums ------------------------------- */

typedef struct pass_arg {
    size_t k, d, E;
    const double *c;
    km_kernels kern;
    km_bounds *b;
    const km_sums *z;
    const double *base; /* the points' array (n x d): a block's index */
    size_t n;
    int bounded;        /* b is valid for this pass */
    int dists;          /* every point's distance is wanted */
} pass_arg;

/* The accumulator: flags (KM_F_*, OR-ed across partitions and ranks, so
 * every rank decides alike) and a pad, for each centroid the change of its
 * count and its number of pending changes, the pending sums (int64, k x d
 * twice), then the totals (k x d twice). Its size is a multiple of 16
 * bytes, so every partition's copy is aligned for the totals. */
#define KM_F_BROKEN 1    /* a block was outside the points' array */
#define KM_F_OVERFLOW 2  /* a computed distance was +inf */
#define KM_F_NO_BOUNDS 4 /* EMBER_KMEANS_BOUNDS=0 on some rank */

typedef struct acc_view {
    int64_t *flags, *cnt, *np, *ph, *pl;
    km_i128 *th, *tl;
    km_i128 *tx; /* the more words' totals (X x k x d), then */
    int64_t *px; /* their pending sums */
} acc_view;

static size_t acc_bytes(const pass_arg *a)
{
    size_t kd = a->k * a->d, X = (size_t)a->z->X;
    /* the pending words rounded up to an even count: 16-byte multiples */
    return (2 + 2 * a->k + 2 * kd + (X * kd + 1) / 2 * 2) * sizeof(int64_t) +
           (2 + X) * kd * sizeof(km_i128);
}

static acc_view acc_at(const pass_arg *a, void *acc)
{
    size_t k = a->k, kd = k * a->d, X = (size_t)a->z->X;
    int64_t *p = acc, *c = p + 2;
    km_i128 *t = (km_i128 *)(void *)(c + 2 * k + 2 * kd);
    return (acc_view){p, c, c + k, c + 2 * k, c + 2 * k + kd, t, t + kd, t + 2 * kd,
                      (int64_t *)(void *)(t + (2 + X) * kd)};
}

static void flush_row(const pass_arg *a, acc_view v, size_t q)
{
    size_t kd = a->k * a->d;
    for (size_t j = q * a->d; j < (q + 1) * a->d; j++) {
        v.th[j] += v.ph[j];
        v.tl[j] += v.pl[j];
        v.ph[j] = v.pl[j] = 0;
        for (size_t w = 0; w < (size_t)a->z->X; w++) {
            v.tx[w * kd + j] += v.px[w * kd + j];
            v.px[w * kd + j] = 0;
        }
    }
    v.np[q] = 0;
}

/* The pending sums' bookkeeping of a move: counts, and a row flushed
 * into its totals when its pending terms could next overflow. */
static inline void move_count(const pass_arg *a, acc_view v, int32_t from, int32_t to)
{
    v.cnt[to]++;
    if (++v.np[to] == KM_PENDING)
        flush_row(a, v, (size_t)to);
    if (from >= 0) {
        v.cnt[from]--;
        if (++v.np[from] == KM_PENDING)
            flush_row(a, v, (size_t)from);
    }
}

/* Point x leaves centroid `from` (none when negative) for `to`. */
static void move_point(const pass_arg *a, acc_view v, const double *x, int32_t from,
                       int32_t to)
{
    int64_t h[KM_SPLIT], l[KM_SPLIT];
    size_t d = a->d;
    for (size_t j0 = 0; j0 < d; j0 += KM_SPLIT) {
        size_t w = d - j0 < KM_SPLIT ? d - j0 : KM_SPLIT;
        split(a->z, x + j0, j0, w, h, l);
        row_add(v.ph + (size_t)to * d + j0, v.pl + (size_t)to * d + j0, h, l, w, 1);
        if (from >= 0)
            row_add(v.ph + (size_t)from * d + j0, v.pl + (size_t)from * d + j0, h, l, w, -1);
    }
    move_count(a, v, from, to);
}

/* Where block x of m points starts in the points' array, or -1 if it is
 * not inside it (the pipeline hands out views of the array). */
static ptrdiff_t block_index(const pass_arg *a, const double *x, size_t m)
{
    uintptr_t p = (uintptr_t)x, lo = (uintptr_t)a->base;
    size_t row = a->d * sizeof *x;
    if (p < lo || (p - lo) % row != 0 || (p - lo) / row + m > a->n)
        return -1;
    return (ptrdiff_t)((p - lo) / row);
}

/* The points of a block whose label changed, and their old labels (-1:
 * none, in a pass that rebuilds the sums). */
typedef struct km_changes {
    size_t n;
    uint16_t who[KM_BLOCK];
    int32_t from[KM_BLOCK];
} km_changes;

/* The block's changes into the pending sums: move_point for each. */
static void move_block(const pass_arg *a, acc_view v, const double *xb,
                       const km_changes *ch, const int32_t *lab)
{
    for (size_t t = 0; t < ch->n; t++)
        move_point(a, v, xb + (size_t)ch->who[t] * a->d, ch->from[t], lab[ch->who[t]]);
}

/* move_block for sums of more than two words: each coordinate split one
 * at a time (a wide column is rare, and this is the slow path). */
static void move_block_wide(const pass_arg *a, acc_view v, const double *xb,
                            const km_changes *ch, const int32_t *lab)
{
    size_t d = a->d, kd = a->k * d;
    int64_t word[64];
    for (size_t t = 0; t < ch->n; t++) {
        const double *x = xb + (size_t)ch->who[t] * d;
        int32_t from = ch->from[t], to = lab[ch->who[t]];
        for (size_t j = 0; j < d; j++) {
            split_wide(a->z, x[j], j, word);
            for (int w = 0; w < 2 + a->z->X; w++) {
                int64_t *p = w == 0 ? v.ph : w == 1 ? v.pl : v.px + (size_t)(w - 2) * kd;
                p[(size_t)to * d + j] += word[w];
                if (from >= 0)
                    p[(size_t)from * d + j] -= word[w];
            }
        }
        move_count(a, v, from, to);
    }
}

#ifdef KM_X86
/* move_block for d a multiple of 8: split and row_add in registers, the
 * whole block in one AVX-512 function (no transition a point). */
__attribute__((target("avx512f"))) static void
move_block512(const pass_arg *a, acc_view v, const double *xb, const km_changes *ch,
              const int32_t *lab)
{
    const __m512d big = _mm512_set1_pd(0x1.8p52), s51 = _mm512_set1_pd(0x1p51);
    const __m512i bb = _mm512_castpd_si512(big);
    size_t d = a->d;
    for (size_t t = 0; t < ch->n; t++) {
        const double *x = xb + (size_t)ch->who[t] * d;
        int32_t from = ch->from[t], to = lab[ch->who[t]];
        int64_t *th = v.ph + (size_t)to * d, *tl = v.pl + (size_t)to * d;
        int64_t *fh = v.ph + (size_t)(from >= 0 ? from : to) * d;
        int64_t *fl = v.pl + (size_t)(from >= 0 ? from : to) * d;
        for (size_t j = 0; j < d; j += 8) {
            __m512d xv = _mm512_mul_pd(_mm512_mul_pd(_mm512_loadu_pd(x + j),
                                                     _mm512_loadu_pd(a->z->f1 + j)),
                                       _mm512_loadu_pd(a->z->f2 + j));
            __m512d hi = _mm512_add_pd(xv, big);
            __m512d r = _mm512_sub_pd(xv, _mm512_sub_pd(hi, big));
            __m512d lo = _mm512_add_pd(_mm512_mul_pd(r, s51), big);
            __m512i h = _mm512_sub_epi64(_mm512_castpd_si512(hi), bb);
            __m512i l = _mm512_sub_epi64(_mm512_castpd_si512(lo), bb);
            _mm512_storeu_si512(th + j, _mm512_add_epi64(_mm512_loadu_si512(th + j), h));
            _mm512_storeu_si512(tl + j, _mm512_add_epi64(_mm512_loadu_si512(tl + j), l));
            if (from >= 0) {
                _mm512_storeu_si512(fh + j, _mm512_sub_epi64(_mm512_loadu_si512(fh + j), h));
                _mm512_storeu_si512(fl + j, _mm512_sub_epi64(_mm512_loadu_si512(fl + j), l));
            }
        }
        move_count(a, v, from, to);
    }
}

/* The same for d a multiple of 4 (AVX2): split and row_add in registers,
 * four coordinates a vector. Through split and row_add, each a call (the
 * clones are reached through the PLT) and a point's words through the
 * stack, a move cost about 37 ns; the first passes move every point. */
__attribute__((target("avx2"))) static void
move_block256(const pass_arg *a, acc_view v, const double *xb, const km_changes *ch,
              const int32_t *lab)
{
    const __m256d big = _mm256_set1_pd(0x1.8p52), s51 = _mm256_set1_pd(0x1p51);
    const __m256i bb = _mm256_castpd_si256(big);
    size_t d = a->d;
    for (size_t t = 0; t < ch->n; t++) {
        const double *x = xb + (size_t)ch->who[t] * d;
        int32_t from = ch->from[t], to = lab[ch->who[t]];
        int64_t *th = v.ph + (size_t)to * d, *tl = v.pl + (size_t)to * d;
        int64_t *fh = v.ph + (size_t)(from >= 0 ? from : to) * d;
        int64_t *fl = v.pl + (size_t)(from >= 0 ? from : to) * d;
        for (size_t j = 0; j < d; j += 4) {
            __m256d xv = _mm256_mul_pd(_mm256_mul_pd(_mm256_loadu_pd(x + j),
                                                     _mm256_loadu_pd(a->z->f1 + j)),
                                       _mm256_loadu_pd(a->z->f2 + j));
            __m256d hi = _mm256_add_pd(xv, big);
            __m256d r = _mm256_sub_pd(xv, _mm256_sub_pd(hi, big));
            __m256d lo = _mm256_add_pd(_mm256_mul_pd(r, s51), big);
            __m256i h = _mm256_sub_epi64(_mm256_castpd_si256(hi), bb);
            __m256i l = _mm256_sub_epi64(_mm256_castpd_si256(lo), bb);
            __m256i *ph = (__m256i *)(void *)(th + j), *pl = (__m256i *)(void *)(tl + j);
            _mm256_storeu_si256(ph, _mm256_add_epi64(_mm256_loadu_si256(ph), h));
            _mm256_storeu_si256(pl, _mm256_add_epi64(_mm256_loadu_si256(pl), l));
            if (from >= 0) {
                ph = (__m256i *)(void *)(fh + j);
                pl = (__m256i *)(void *)(fl + j);
                _mm256_storeu_si256(ph, _mm256_sub_epi64(_mm256_loadu_si256(ph), h));
                _mm256_storeu_si256(pl, _mm256_sub_epi64(_mm256_loadu_si256(pl), l));
            }
        }
        move_count(a, v, from, to);
    }
}
#endif

/* The distances of points idx[0..nf) of the block to their centroids,
 * read where they lie. */
static void own_some(const pass_arg *a, const double *x, const size_t *idx, size_t nf,
                     const int32_t *lab, double *dist)
{
    double bd[KM_BLOCK];
    int32_t bl[KM_BLOCK];
    for (size_t t = 0; t < nf; t++)
        bl[t] = lab[idx[t]];
    a->kern.own(x, idx, nf, a->d, a->c, bl, bd);
    for (size_t t = 0; t < nf; t++)
        dist[idx[t]] = bd[t];
}

/* 1 if one of the m distances is +inf (an overflow: finite data can
 * reach it, and every label would then tie). */
static int any_inf(const double *dist, size_t m)
{
    int inf = 0;
    for (size_t i = 0; i < m; i++)
        inf |= dist[i] == INFINITY;
    return inf;
}

/* Scans points idx[0..nf) of the block in full and sets their labels,
 * distances and bounds. Returns 1 if a distance overflowed. */
static int rescan(const pass_arg *a, const double *x, const size_t *idx, size_t nf,
                   int32_t *lab, double *dist, float *lb, float *ub, km_changes *ch)
{
    double bd[KM_BLOCK], bs[KM_BLOCK];
    float bl_lb[KM_BLOCK], bl_ub[KM_BLOCK];
    int32_t bl[KM_BLOCK];
    a->kern.full(x, idx, nf, a->d, a->c, a->k, bl, bd, bs); /* the rows where they lie */
    a->kern.bounds(a->b, nf, bd, bs, bl_lb, bl_ub);
    for (size_t t = 0; t < nf; t++) {
        size_t i = idx[t];
        if (ch && bl[t] != lab[i]) {
            ch->who[ch->n] = (uint16_t)i;
            ch->from[ch->n++] = lab[i];
        }
        lab[i] = bl[t];
        dist[i] = bd[t];
        lb[i] = bl_lb[t];
        ub[i] = bl_ub[t];
    }
    return any_inf(bd, nf);
}


/* Every point of the block changed (from no label). */
static void all_changed(km_changes *ch, size_t m)
{
    for (size_t i = 0; ch && i < m; i++) {
        ch->who[i] = (uint16_t)i;
        ch->from[i] = -1;
    }
    if (ch)
        ch->n = m;
}

/* What a caller's blocks did, added to the bounds' counts once. */
typedef struct {
    size_t visited, read, scanned;
    int broken, overflow; /* a block outside the array; a distance of +inf */
} km_tally;

static void tally_add(km_bounds *b, const km_tally *t)
{
    __atomic_fetch_add(&b->visited, t->visited, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->read, t->read, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->scanned, t->scanned, __ATOMIC_RELAXED);
}

/* Labels of a block of m <= KM_BLOCK points under a->c, the same bits as a
 * full scan of every point (see "bounds"), and their distances when
 * a->dists or the point was read. Returns the labels: the bounds' own
 * array, or tmp. The label changes go to ch, when given. */
static const int32_t *assign_block(const pass_arg *a, const double *x, size_t m,
                                   int32_t *tmp, double *dist, km_changes *ch, km_tally *t)
{
    double sec[KM_BLOCK];
    km_bounds *b = a->b;
    ptrdiff_t i0 = block_index(a, x, m);
    t->visited += m;
    if (ch)
        ch->n = 0;
    if (i0 < 0) {
        t->scanned += m;
        t->read += m;
        a->kern.full(x, NULL, m, a->d, a->c, a->k, tmp, dist, sec);
        t->broken = 1;
        t->overflow |= any_inf(dist, m);
        all_changed(ch, m);
        return tmp;
    }
    int32_t *lab = b->lab + i0;
    float *lb = b->lb + i0, *ub = b->ub + i0;
    if (!a->bounded) {
        t->scanned += m;
        t->read += m;
        a->kern.full(x, NULL, m, a->d, a->c, a->k, lab, dist, sec);
        a->kern.bounds(b, m, dist, sec, lb, ub);
        t->overflow |= any_inf(dist, m);
        all_changed(ch, m);
        return lab;
    }
    size_t idx[KM_BLOCK], nr;
    size_t nf = a->kern.pretest(b, m, lab, lb, ub, idx, x, a->d);
    int all = a->dists || nf > m / 2; /* then every point, without the copies */
    if (all)
        a->kern.own(x, NULL, m, a->d, a->c, lab, dist);
    else
        own_some(a, x, idx, nf, lab, dist);
    nr = a->kern.recheck(b, idx, nf, lab, lb, ub, dist);
    if (nr)
        t->overflow |= rescan(a, x, idx, nr, lab, dist, lb, ub, ch);
    t->read += all ? m : nf;
    t->scanned += nr;
    return lab;
}

/* The fastest kernels this CPU runs; all give the same bits.
 * EMBER_KMEANS_ISA (avx512, avx2, serial; generic is serial too, the name
 * EMBER_PAGERANK_ISA uses) forces one, for tests; one this CPU (or build)
 * lacks, or another name, is said on stderr and the serial kernels run. */
static km_kernels pick_kernels(size_t d)
{
    const char *force = getenv("EMBER_KMEANS_ISA");
    int any = !force || !*force;
    int serial = !any && (!strcmp(force, "serial") || !strcmp(force, "generic"));
    if (!any && !serial && strcmp(force, "avx512") != 0 && strcmp(force, "avx2") != 0) {
        fprintf(stderr, "ember-kmeans: EMBER_KMEANS_ISA=%s is not avx512, avx2 or serial; "
                "the serial kernels run\n", force);
        serial = 1;
    }
#ifdef KM_X86
    __builtin_cpu_init();
    if (!serial && (any || !strcmp(force, "avx512")) && __builtin_cpu_supports("avx512f")) {
        km_kernels k = {full_avx512, own512,     move_block,
                        pretest512,  recheck512, set_bounds512};
        if (d % 8 == 0) /* the move kernel needs whole vectors */
            k.move = move_block512;
        return k;
    }
    if (!serial && (any || !strcmp(force, "avx2")) && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        km_kernels k = {full_avx2, own256, move_block, pretest256, recheck256, set_bounds256};
        if (d % 4 == 0) /* the move kernel needs whole vectors */
            k.move = move_block256;
        return k;
    }
#else
    (void)d;
#endif
    if (!any && !serial)
        fprintf(stderr, "ember-kmeans: EMBER_KMEANS_ISA=%s: not on this CPU (or build); "
                "the serial kernels run\n", force);
    return (km_kernels){full_serial, own_serial, move_block, pretest, recheck, set_bounds};
}

/* The largest k x d whose pending sums pass_seq moves into an aligned
 * copy once a block has many changes (the accumulators are only 16-byte
 * aligned, and a vector that splits a cache line does not forward from its
 * store to the next load); a few changes go straight to the accumulator. */
#define KM_PEND_LOCAL 2048
#define KM_DENSE 32

static int pass_seq(void *accp, const void *in, size_t n, void *argp)
{
    const pass_arg *a = argp;
    const double *x = in;
    acc_view v = acc_at(a, accp), w = v;
    size_t kd = a->k * a->d;
    int64_t loc[2 * KM_PEND_LOCAL] __attribute__((aligned(64)));
    int32_t tmp[KM_BLOCK];
    double dist[KM_BLOCK];
    km_changes ch;
    km_tally t = {0};
    for (size_t lo = 0; lo < n; lo += KM_BLOCK) {
        size_t m = n - lo < KM_BLOCK ? n - lo : KM_BLOCK;
        const double *xb = x + lo * a->d;
        const int32_t *lab = assign_block(a, xb, m, tmp, dist, &ch, &t);
        if (ch.n >= KM_DENSE && w.ph == v.ph && kd <= KM_PEND_LOCAL && !a->z->X) {
            w.ph = loc;
            w.pl = loc + kd;
            memcpy(w.ph, v.ph, kd * sizeof *loc);
            memcpy(w.pl, v.pl, kd * sizeof *loc);
        }
        a->kern.move(a, w, xb, &ch, lab);
    }
    tally_add(a->b, &t);
    if (w.ph != v.ph) {
        memcpy(v.ph, w.ph, kd * sizeof *loc);
        memcpy(v.pl, w.pl, kd * sizeof *loc);
    }
    *v.flags |= (t.broken ? KM_F_BROKEN : 0) | (t.overflow ? KM_F_OVERFLOW : 0) |
                (a->b->use ? 0 : KM_F_NO_BOUNDS);
    return 0;
}

/* Adds another partition's changes in (integers: the order is free). */
static int pass_comb(void *accp, const void *inp, size_t n, void *argp)
{
    (void)n;
    const pass_arg *a = argp;
    acc_view v = acc_at(a, accp), w = acc_at(a, (void *)inp);
    size_t kd = a->k * a->d;
    *v.flags |= *w.flags;
    for (size_t q = 0; q < a->k; q++)
        v.cnt[q] += w.cnt[q];
    for (size_t j = 0; j < kd; j++) {
        v.th[j] += w.th[j] + w.ph[j];
        v.tl[j] += w.tl[j] + w.pl[j];
    }
    for (size_t j = 0; j < (size_t)a->z->X * kd; j++)
        v.tx[j] += w.tx[j] + w.px[j];
    return 0;
}

/* ---- the farthest points, for empty clusters ------------------------------------------- */

/* E slots of (distance, x[d]) sorted by distance descending, earlier
 * points first on ties; an unused slot has distance -1. */
static size_t slot_doubles(const pass_arg *a)
{
    return a->E * (1 + a->d);
}

/* Puts point x at distance v among the slots, if it is far enough. */
static void slot_offer(const pass_arg *a, double *slots, double v,
                       const double *x)
{
    size_t w = 1 + a->d, e = a->E;
    while (e > 0 && slots[(e - 1) * w] < v)
        e--;
    if (e == a->E)
        return;
    memmove(slots + (e + 1) * w, slots + e * w, (a->E - e - 1) * w * sizeof *slots);
    slots[e * w] = v;
    memcpy(slots + e * w + 1, x, a->d * sizeof *x);
}

/* Each point's distance to its centroid under a->c (the labels the bounds
 * hold when a->bounded, else a full scan's), offered to the slots. */
static int far_seq(void *accp, const void *in, size_t n, void *argp)
{
    const pass_arg *a = argp;
    const double *x = in;
    double *slots = accp, dist[KM_BLOCK], sec[KM_BLOCK];
    int32_t tmp[KM_BLOCK];
    size_t d = a->d, last = (a->E - 1) * (1 + d);
    for (size_t lo = 0; lo < n; lo += KM_BLOCK) {
        size_t m = n - lo < KM_BLOCK ? n - lo : KM_BLOCK;
        const double *xb = x + lo * d;
        ptrdiff_t i0 = block_index(a, xb, m);
        if (a->bounded && i0 >= 0)
            a->kern.own(xb, NULL, m, d, a->c, a->b->lab + i0, dist);
        else
            a->kern.full(xb, NULL, m, d, a->c, a->k, tmp, dist, sec);
        for (size_t i = 0; i < m; i++)
            if (dist[i] > slots[last])
                slot_offer(a, slots, dist[i], xb + i * d);
    }
    return 0;
}

/* Folds another partition's slots in (partition order). */
static int far_comb(void *accp, const void *inp, size_t n, void *argp)
{
    (void)n;
    const pass_arg *a = argp;
    double *acc = accp;
    const double *in = inp;
    size_t w = 1 + a->d;
    for (size_t e = 0; e < a->E; e++) {
        const double *s = in + e * w;
        if (s[0] < 0 || s[0] <= acc[(a->E - 1) * w])
            break; /* sorted: no later slot of `in` gets in either */
        slot_offer(a, acc, s[0], s + 1);
    }
    return 0;
}

/* ---- the final labelling ------------------------------------------------------------ */

typedef struct {
    int64_t label;
    double dist;
} labelled;

static int label_map(const void *in, void *out, size_t n, void *argp)
{
    const pass_arg *a = argp;
    const double *x = in;
    labelled *o = out;
    int32_t tmp[KM_BLOCK];
    double dist[KM_BLOCK];
    km_tally t = {0};
    for (size_t lo = 0; lo < n; lo += KM_BLOCK) {
        size_t m = n - lo < KM_BLOCK ? n - lo : KM_BLOCK;
        const int32_t *lab = assign_block(a, x + lo * a->d, m, tmp, dist, NULL, &t);
        for (size_t i = 0; i < m; i++)
            o[lo + i] = (labelled){lab[i], dist[i]};
    }
    tally_add(a->b, &t);
    return 0;
}


/* ---- the run's state ------------------------------------------------------------------ */

typedef struct {
    uint64_t seed;
    uint64_t counter; /* draws taken */
} km_rng;

typedef struct {
    ember_cli *cli;
    ember_ctx *ctx;
    ember_ds *points;
    const double *x;    /* n x d, the points' one array */
    size_t n, d, k;
    double tol;         /* absolute: --tolerance x mean feature variance */
    double *init;       /* k x d from --init FILE, or NULL */
    int init_kind;      /* 0 random, 1 kmeans++, 2 file */
    km_kernels kern;
    double *colmax;     /* d: each column's largest magnitude, until prepare */
    double *colmin;     /* d: ... and smallest nonzero one (+inf: none) */
    km_bounds bnd;      /* derived from the run, not checkpointed */
    km_sums sums;       /* derived too: the sums of bnd.lab */
    /* bound to the loop */
    double *c, *prev;   /* k x d */
    double shift;
    km_rng rng;
    /* scratch */
    void *acc, *zero;
} km;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Counter-based: draw i of a seed is a pure function of (seed, i). */
static uint64_t rng_next(km_rng *r)
{
    return mix64(r->seed ^ mix64(++r->counter + 0x9e3779b97f4a7c15ULL));
}

static double rng_u01(km_rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) without modulo bias. */
static size_t rng_below(km_rng *r, size_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, v;
    do
        v = rng_next(r);
    while (v >= lim);
    return (size_t)(v % n);
}

/* ---- initialisation --------------------------------------------------------------------- */

/* k distinct points (Floyd's sampling), in the order drawn. */
static int init_random(km *s, char *msg)
{
    unsigned char *taken = calloc(s->n / 8 + 1, 1);
    if (!taken)
        return snprintf(msg, EMBER_MSG_SIZE, "out of memory"), EMBER_ENOMEM;
    for (size_t t = s->n - s->k, q = 0; t < s->n; t++, q++) {
        size_t i = rng_below(&s->rng, t + 1);
        if (taken[i / 8] & (1u << (i % 8)))
            i = t;
        taken[i / 8] |= (unsigned char)(1u << (i % 8));
        memcpy(s->c + q * s->d, s->x + i * s->d, s->d * sizeof *s->c);
    }
    free(taken);
    return EMBER_OK;
}

/* D^2 sampling: the index where the running sum of w passes u * total. */
static size_t pick_weighted(const double *w, size_t n, double total, double u)
{
    double target = u * total, run = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] > 0)
            last = i;
        run += w[i];
        if (run > target)
            return i;
    }
    return last;
}

/* near[i] = min(near[i], distance of point i to c), in blocks through the
 * own-distance kernel (every label 0: the same bits as a scan of the one
 * centroid, without the full kernel's transposes to memory); each point's
 * value is independent of the team. */
static void update_nearest(km *s, double *near, const double *c)
{
    long long nb = (long long)((s->n + 255) / 256);
    size_t d = s->d;
    static const int32_t zero[256];
#pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(s->ctx))
    for (long long b = 0; b < nb; b++) {
        size_t lo = (size_t)b * 256, m = s->n - lo < 256 ? s->n - lo : 256;
        double dist[256];
        s->kern.own(s->x + lo * d, NULL, m, d, c, zero, dist);
        for (size_t i = 0; i < m; i++)
            if (dist[i] < near[lo + i])
                near[lo + i] = dist[i];
    }
}

/* k-means++ (Arthur and Vassilvitskii): the first centroid uniform, each
 * next one a point drawn with probability proportional to its squared
 * distance to the nearest centroid so far. */
static int init_kmeanspp(km *s, char *msg)
{
    double *near = malloc(s->n * sizeof *near);
    if (!near)
        return snprintf(msg, EMBER_MSG_SIZE, "out of memory"), EMBER_ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        near[i] = INFINITY;
    size_t i = rng_below(&s->rng, s->n);
    for (size_t q = 0;;) {
        memcpy(s->c + q * s->d, s->x + i * s->d, s->d * sizeof *s->c);
        if (++q == s->k)
            break;
        update_nearest(s, near, s->c + (q - 1) * s->d);
        double total = 0;
        for (size_t p = 0; p < s->n; p++)
            total += near[p];
        double u = rng_u01(&s->rng);
        i = total > 0 ? pick_weighted(near, s->n, total, u) : rng_below(&s->rng, s->n);
    }
    free(near);
    return EMBER_OK;
}

static int init_centroids(km *s, char *msg)
{
    if (s->init_kind == 2) {
        memcpy(s->c, s->init, s->k * s->d * sizeof *s->c);
        return EMBER_OK;
    }
    return s->init_kind == 0 ? init_random(s, msg) : init_kmeanspp(s, msg);
}

/* ---- one iteration ------------------------------------------------------------------ */

/* The whole run's sums after a pass: its changes added in, or, after a
 * pass that scanned every point, its sums. */
static void sums_apply(km *s, const pass_arg *a)
{
    km_sums *z = &s->sums;
    acc_view v = acc_at(a, s->acc);
    size_t kd = s->k * s->d;
    size_t X = (size_t)z->X;
    if (!a->bounded) {
        memset(z->h, 0, kd * sizeof *z->h);
        memset(z->l, 0, kd * sizeof *z->l);
        memset(z->x, 0, X * kd * sizeof *z->x);
        memset(z->cnt, 0, s->k * sizeof *z->cnt);
    }
    for (size_t q = 0; q < s->k; q++)
        z->cnt[q] += v.cnt[q];
    for (size_t j = 0; j < X * kd; j++)
        z->x[j] += v.tx[j];
    for (size_t j = 0; j < kd; j++) {
        z->h[j] += v.th[j];
        z->l[j] += v.tl[j];
        /* each word after the first carried into the one before it, from
         * the last: 0 <= word < 2^51 after (floor) */
        for (size_t w = X; w-- > 0;) {
            km_i128 *up = w ? &z->x[(w - 1) * kd + j] : &z->l[j];
            km_i128 carry = z->x[w * kd + j] >> 51;
            *up += carry;
            z->x[w * kd + j] -= carry * ((km_i128)1 << 51);
        }
        km_i128 carry = z->l[j] >> 51;
        z->h[j] += carry;
        z->l[j] -= carry * ((km_i128)1 << 51);
    }
}

/* The double nearest to (H + L 2^-51) / n (ties to even; 0 <= L < 2^51,
 * n >= 1), times 2^-s: the mean of a cluster's pairs, scaled back. The
 * quotient's bits come from integer division, at least 55 of them, and a
 * last bit set when a remainder is left, so the one conversion to double
 * rounds as the exact quotient would: identical points have themselves as
 * their mean. (|H| / n <= 2^51: a mean is no larger than its points.) */
static double exact_mean(km_i128 H, km_i128 L, const km_i128 *more, int X, size_t stride,
                         int64_t n, int s)
{
    __extension__ typedef unsigned __int128 u128;
    enum { MAXW = 64 };
    u128 lim[MAXW];
    int W = 2 + X, neg = H < 0;
    lim[0] = (u128)(neg ? -H : H);
    lim[1] = (u128)L;
    for (int w = 0; w < X; w++)
        lim[2 + w] = (u128)more[(size_t)w * stride];
    if (neg) { /* |T| = (|H| - 1) + the complement of the rest, plus one last unit */
        int any = 0;
        for (int w = 1; w < W; w++)
            any |= lim[w] != 0;
        if (any) {
            lim[0] -= 1;
            for (int w = 1; w < W; w++)
                lim[w] = ((u128)1 << 51) - 1 - lim[w];
            for (int w = W - 1; w >= 1; w--) { /* + 1 in the last word */
                if (++lim[w] < ((u128)1 << 51))
                    break;
                lim[w] = 0;
                if (w == 1)
                    lim[0] += 1;
            }
        }
    }
    /* long division, a word at a time: |T| / n = (m + r / n) 2^-sh, with
     * the quotient's words gathered into m until it has 55 bits and the
     * ones past them only noted (sticky) */
    u128 c = (u128)n, q = lim[0] / c, r = lim[0] % c, m = q; /* lim[0] < 2^114 */
    int sh = 0, sticky = 0;
    for (int w = 1; w < W; w++) {
        u128 u = (r << 51) | lim[w]; /* r < n < 2^63 */
        q = u / c;
        r = u % c;
        if (m < ((u128)1 << 54)) {
            m = (m << 51) | q;
            sh += 51;
        } else {
            sticky |= q != 0;
        }
    }
    r |= (u128)sticky;
    if (m == 0 && r == 0)
        return 0;
    while (m < ((u128)1 << 54)) { /* one more quotient bit */
        r <<= 1;
        m = (m << 1) | (r >= c);
        r -= r >= c ? c : 0;
        sh++;
    }
    u128 M = (m << 1) | (r != 0); /* |T| / n = M 2^E, to the last bit (sticky) */
    int E = -(sh + 1) - s, nb = 0;
    for (u128 t = M; t; t >>= 1)
        nb++;
    double v;
    if (nb + E - 1 >= -1022) { /* normal: one rounding, to 53 bits */
        v = ldexp((double)M, E);
    } else { /* subnormal: one rounding, at 2^-1074 (ldexp of a rounded M
              * would be a second); k >= 3, so M's last bit is below half */
        int k = -1074 - E;
        u128 q = 0;
        if (k <= nb + 1) {
            u128 rem = M & (((u128)1 << k) - 1), half = (u128)1 << (k - 1);
            q = (M >> k) + (rem > half || (rem == half && ((M >> k) & 1)));
        }
        v = ldexp((double)q, -1074);
    }
    return neg ? -v : v;
}

/* The farthest points of the last assignment (under s->c, the labels the
 * bounds hold), into slots of a->E entries. */
static int farthest(km *s, const pass_arg *a, double **slots, char *msg)
{
    size_t w = 1 + s->d, nd = slot_doubles(a);
    double *zero = malloc(nd * sizeof *zero);
    *slots = malloc(nd * sizeof **slots);
    if (!zero || !*slots) {
        free(zero);
        return snprintf(msg, EMBER_MSG_SIZE, "out of memory"), EMBER_ENOMEM;
    }
    for (size_t e = 0; e < nd; e++)
        zero[e] = e % w ? 0 : -1;
    pass_arg f = *a;
    f.bounded = s->bnd.valid;
    int rc = ember_aggregate(s->points, zero, nd * sizeof *zero, far_seq, far_comb, &f,
                             *slots, msg);
    free(zero);
    return rc;
}

/* New centroids from the sums: means, then the empty cluster rule. Sets
 * the summed squared movement. */
static int update_centroids(km *s, const pass_arg *a, char *msg)
{
    const km_sums *z = &s->sums;
    size_t d = s->d, used = 0;
    double *slots = NULL, shift = 0;
    int rc = EMBER_OK;
    for (size_t q = 0; q < s->k && !slots && !rc; q++)
        if (z->cnt[q] == 0)
            rc = farthest(s, a, &slots, msg);
    if (rc) {
        free(slots);
        return rc;
    }
    memcpy(s->prev, s->c, s->k * d * sizeof *s->c);
    for (size_t q = 0; q < s->k; q++) {
        double *c = s->c + q * d;
        if (z->cnt[q] > 0) {
            for (size_t j = 0; j < d; j++)
                c[j] = exact_mean(z->h[q * d + j], z->l[q * d + j], z->x + q * d + j,
                                  z->X, s->k * d, z->cnt[q], z->s[j]);
        } else if (used < a->E && slots[used * (1 + d)] >= 0) {
            memcpy(c, slots + used * (1 + d) + 1, d * sizeof *c);
            used++;
        }
        for (size_t j = 0; j < d; j++) {
            double t = c[j] - s->prev[q * d + j];
            shift += t * t;
        }
    }
    free(slots);
    s->shift = shift;
    return EMBER_OK;
}

/* Finite data can still overflow: a difference of coordinates near
 * 1e308, or a square of one past 1e154, is +inf. A pass that assigned a
 * point at distance +inf (every centroid ties there), or such a final
 * inertia, means nothing; it is refused (exit 2), not reported as a
 * converged run. */
static int check_inertia(const km *s, double inertia, char *msg)
{
    if (inertia < INFINITY)
        return EMBER_OK;
    snprintf(msg, EMBER_MSG_SIZE, "%s: the squared distances overflow double precision "
             "(inertia %g): coordinates or their differences reach about 1e154 or "
             "more; scale the data", s->cli->input, inertia);
    return EMBER_ERANGE;
}

/* The pass's arguments under the current centroids, the bounds made ready
 * for them. */
static pass_arg pass_begin(km *s, int dists)
{
    bounds_begin(&s->bnd, s->c, s->k, s->d, s->n);
    return (pass_arg){s->k, s->d, s->k - 1, s->c, s->kern, &s->bnd, &s->sums,
                      s->x,  s->n, s->bnd.valid, dists};
}

static int km_step(uint64_t it, double *value, void *arg, char *msg)
{
    km *s = arg;
    int rc = it == 0 ? init_centroids(s, msg) : EMBER_OK;
    if (it == 0)
        s->bnd.valid = 0;
    pass_arg a;
    int64_t flags = 0;
    for (int again = 1; !rc && again;) {
        a = pass_begin(s, 0);
        rc = ember_aggregate_unordered(s->points, s->zero, acc_bytes(&a), pass_seq, pass_comb, &a,
                             s->acc, msg);
        flags = rc ? 0 : *acc_at(&a, s->acc).flags; /* alike on every rank */
        if (flags & KM_F_NO_BOUNDS)
            s->bnd.use = 0;
        /* changes found beside the bounds' array cannot be added to sums
         * that hold it (never expected): the pass is done again in full */
        again = a.bounded && (flags & KM_F_BROKEN);
        bounds_end(&s->bnd, s->c, s->k, s->d, !rc && !(flags & KM_F_BROKEN));
    }
    if (rc)
        return rc;
    if (flags & KM_F_OVERFLOW)
        return check_inertia(s, INFINITY, msg);
    sums_apply(s, &a);
    if ((rc = update_centroids(s, &a, msg)))
        return rc;
    *value = s->shift;
    return s->shift == 0 || s->shift <= s->tol ? EMBER_DONE : EMBER_OK;
}

/* ---- input --------------------------------------------------------------------------- */

static int is_h5_spec(const char *path)
{
    return strstr(path, ".h5:") || strstr(path, ".hdf5:") || strstr(path, ".he5:") ||
           ember_cli_has_suffix(path, ".h5") || ember_cli_has_suffix(path, ".hdf5");
}

/* Coordinates per record, when every field is a number (arrays count). */
static size_t type_width(const ember_type *t)
{
    size_t w = 0;
    for (uint32_t f = 0; f < t->nfields; f++)
        w += t->field[f].count ? t->field[f].count : 1;
    return w;
}

static int all_f64(const ember_type *t)
{
    for (uint32_t f = 0; f < t->nfields; f++)
        if (t->field[f].kind != EMBER_F64)
            return 0;
    return t->size == type_width(t) * sizeof(double);
}

static double read_number(const unsigned char *p, ember_scalar kind)
{
    switch (kind) {
    case EMBER_I32: { int32_t v; memcpy(&v, p, 4); return (double)v; }
    case EMBER_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case EMBER_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case EMBER_F32: { float v; memcpy(&v, p, 4); return (double)v; }
    case EMBER_F64: { double v; memcpy(&v, p, 8); return v; }
    }
    return NAN;
}

/* Any numeric record to d float64 coordinates, fields in order. */
static int to_f64(const void *in, void *out, size_t n, void *arg)
{
    const ember_type *t = arg;
    const unsigned char *r = in;
    double *o = out;
    for (size_t i = 0; i < n; i++, r += t->size)
        for (uint32_t f = 0; f < t->nfields; f++) {
            const ember_field *fd = &t->field[f];
            size_t sz = ember_scalar_size(fd->kind);
            for (uint32_t e = 0; e < (fd->count ? fd->count : 1); e++)
                *o++ = read_number(r + fd->offset + e * sz, fd->kind);
        }
    return 0;
}

typedef struct {
    ember_ds *src, *conv, *points;
    ember_bcast *bc;
    ember_type src_type;
} km_input;

static void input_free(km_input *in)
{
    ember_ds_free(&in->points);
    ember_bcast_free(&in->bc);
    ember_ds_free(&in->conv);
    ember_ds_free(&in->src);
}

static int km_error(char *msg, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int km_error(char *msg, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, EMBER_MSG_SIZE, fmt, ap);
    va_end(ap);
    return status;
}

/* Over n points of x, each column's largest magnitude, smallest nonzero
 * magnitude, smallest and largest value, into the four rows of st (4 x d,
 * which hold those of points before); 1 if a value is not finite. */
KM_CLONES static int col_ranges(const double *restrict x, size_t n, size_t d,
                                double *restrict st)
{
    double *restrict mx = st, *restrict mn = st + d, *restrict lo = st + 2 * d,
                     *restrict hi = st + 3 * d;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double u = x[i * d + j], v = fabs(u);
            bad |= !(v <= DBL_MAX);
            mx[j] = v > mx[j] ? v : mx[j];
            double nz = v > 0 ? v : INFINITY; /* a blend, no branch */
            mn[j] = nz < mn[j] ? nz : mn[j];
            lo[j] = u < lo[j] ? u : lo[j];
            hi[j] = u > hi[j] ? u : hi[j];
        }
    return bad;
}

/* col_ranges' starting rows: nothing seen. */
static void col_ranges_init(double *st, size_t d)
{
    for (size_t j = 0; j < d; j++) {
        st[j] = 0;
        st[d + j] = st[2 * d + j] = INFINITY;
        st[3 * d + j] = -INFINITY;
    }
}

static int check_points(km *s, const char *path, char *msg)
{
    /* a test the compiler vectorizes, on the team, which also finds each
     * column's largest magnitude (the exact sums' scales) and spread (each
     * thread its own rows, on the heap: d may be large); then the first
     * value that failed it, for the message */
    size_t d = s->d, T = (size_t)ember_ctx_threads(s->ctx);
    double *mx = malloc(d * sizeof *mx), *mn = malloc(d * sizeof *mn);
    double *part = malloc(T * 4 * d * sizeof *part), *st = malloc(4 * d * sizeof *st);
    if (!mx || !mn || !part || !st) {
        free(mx);
        free(mn);
        free(part);
        free(st);
        return km_error(msg, EMBER_ENOMEM, "out of memory");
    }
    for (size_t t = 0; t <= T; t++)
        col_ranges_init(t < T ? part + t * 4 * d : st, d);
    int bad = 0;
#pragma omp parallel num_threads((int)T) reduction(|:bad)
    {
        size_t me = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = s->n * me / nt, hi = s->n * (me + 1) / nt;
        bad |= col_ranges(s->x + lo * d, hi - lo, d, part + me * 4 * d);
    }
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < d; j++) {
            const double *p = part + t * 4 * d + j;
            st[j] = p[0] > st[j] ? p[0] : st[j];
            st[d + j] = p[d] < st[d + j] ? p[d] : st[d + j];
            st[2 * d + j] = p[2 * d] < st[2 * d + j] ? p[2 * d] : st[2 * d + j];
            st[3 * d + j] = p[3 * d] > st[3 * d + j] ? p[3 * d] : st[3 * d + j];
        }
    memcpy(mx, st, d * sizeof *mx);
    memcpy(mn, st + d, d * sizeof *mn);
    s->colmax = mx;
    s->colmin = mn;
    /* The largest squared distance two points can have, from the columns'
     * spreads (max - min), and the largest spread. */
    double top = 0, widest = 0;
    for (size_t j = 0; !bad && j < d; j++) {
        double w = st[3 * d + j] - st[2 * d + j];
        top += w * w;
        widest = w > widest ? w : widest;
    }
    free(part);
    free(st);
    for (size_t i = 0; bad && i < s->n * s->d; i++)
        if (!isfinite(s->x[i]))
            return km_error(msg, EMBER_EFORMAT,
                            "%s: point %zu (0-based), coordinate %zu is %s; points "
                            "must be finite",
                            path, i / s->d, i % s->d, isnan(s->x[i]) ? "NaN" : "infinite");
    /* Points that differ (a spread) by so little that every squared
     * distance is 0: every point ties with every centroid, and an inertia
     * of 0 was reported as converged. As with overflow (check_inertia),
     * refused. Squares below 2^-1022 (subnormal) keep fewer bits: said. */
    if (widest > 0 && top == 0)
        return km_error(msg, EMBER_ERANGE,
                        "%s: the squared distances underflow double precision: every "
                        "one is 0 (the widest column spans %.3g); scale the data",
                        path, widest);
    if (widest > 0 && top < DBL_MIN && s->cli->rank == 0)
        fprintf(stderr, "ember-kmeans: warning: %s: the squared distances are subnormal "
                "(at most %.3g; the widest column spans %.3g): they keep fewer than 53 "
                "bits; scale the data for full precision\n", path, top, widest);
    return EMBER_OK;
}

static int flat_type(ember_type *t, size_t d, char *msg)
{
    ember_field f = {.name = "x", .kind = EMBER_F64, .count = (uint32_t)d};
    return ember_type_struct(t, &f, 1, msg);
}

/* Reads the input into one n x d float64 array and makes the points
 * dataset over it, partitioned by --partitions or by its size (so the
 * partitioning, and the bits, depend on the data only). */
static int load_points(km *s, km_input *in, char *msg)
{
    const char *load = ember_cli_input_load(s->cli, "input", s->cli->input);
    int h5 = is_h5_spec(s->cli->input);
    int rc = h5 ? ember_read_h5(&in->src, s->ctx, load, 0, msg)
                : ember_read_csv(&in->src, s->ctx, load, NULL, msg);
    if (rc)
        return rc;
    if (load != s->cli->input && !strstr(load, ":/")) { /* named by the file, not */
        const char *slash = strrchr(s->cli->input, '/'); /* the descriptor */
        ember_ds_set_name(in->src, h5 || !slash || !slash[1] ? s->cli->input : slash + 1);
    }
    in->src_type = *ember_ds_type(in->src);
    s->d = type_width(&in->src_type);
    ember_type ft;
    ember_ds *flat = in->src;
    if ((rc = flat_type(&ft, s->d, msg)))
        return rc;
    if (!all_f64(&in->src_type)) {
        if ((rc = ember_map(&in->conv, in->src, &ft, to_f64, &in->src_type,
                            sizeof in->src_type, msg)))
            return rc;
        flat = in->conv;
    }
    if ((rc = ember_broadcast(&in->bc, flat, msg)))
        return rc;
    s->x = ember_bcast_data(in->bc, &s->n);
    if (s->n == 0)
        return km_error(msg, EMBER_EEMPTY, "%s: no points", s->cli->input);
    if ((rc = check_points(s, s->cli->input, msg)))
        return rc;
    return ember_from_array(&in->points, s->ctx, &ft, s->x, s->n,
                            s->cli->partitions, EMBER_BORROW, msg);
}

/* --init FILE.csv: k rows of d numbers. */
/* 1 when the file's first line starts with the column name "label". */
static int label_first(const char *path)
{
    char head[8] = "";
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(head, 1, 6, f) : 0;
    if (f)
        fclose(f);
    return got == 6 && memcmp(head, "label", 5) == 0 && (head[5] == ',' || head[5] == ' ' ||
                                                         head[5] == '\t');
}

static int load_init_file(km *s, char *msg)
{
    ember_ds *ds = NULL;
    void *rows = NULL;
    size_t r = 0;
    const char *load = ember_cli_input_load(s->cli, "init", opt_init);
    int rc = ember_read_csv(&ds, s->ctx, load, NULL, msg);
    if (!rc && load != opt_init) /* named by the file, not the descriptor */
        ember_ds_set_name(ds, opt_init);
    if (!rc)
        rc = ember_collect_alloc(ds, &rows, &r, msg);
    size_t w = rc ? 0 : type_width(ember_ds_type(ds));
    /* X.centroids.csv as this program writes it: a first column "label"
     * numbering the rows 0, 1, ... in order, then the coordinates (the
     * header read from the file: past EMBER_MAX_FIELDS columns the type
     * keeps no names). Whatever the width: a 2-d centroids file for 3-d
     * points must not start from its labels as coordinates. */
    size_t skip = !rc && w > 1 && label_first(load);
    for (size_t i = 0; skip && !rc && i < r; i++)
        if (((const double *)rows)[i * w] != (double)i)
            rc = km_error(msg, EMBER_EFORMAT, "--init %s: row %zu is labelled %.17g, "
                          "not %zu: a centroids file's labels number its rows in order",
                          opt_init, i + 1, ((const double *)rows)[i * w], i);
    w -= skip;
    if (!rc && w != s->d)
        rc = km_error(msg, EMBER_ELENGTH, "--init %s: rows of %zu %s, but the "
                      "points have %zu coordinates", opt_init, w,
                      skip ? "coordinates after the label" : "numbers", s->d);
    else if (!rc && opt_k && r != opt_k)
        rc = km_error(msg, EMBER_ELENGTH, "--init %s: %zu rows, but --k is %" PRIu64,
                      opt_init, r, opt_k);
    else if (!rc && r == 0)
        rc = km_error(msg, EMBER_EEMPTY, "--init %s: no rows", opt_init);
    if (!rc && !(s->init = malloc(r * s->d * sizeof *s->init)))
        rc = km_error(msg, EMBER_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < r; i++)
        memcpy(s->init + i * s->d, (const double *)rows + i * (s->d + skip) + skip,
               s->d * sizeof *s->init);
    if (!rc)
        s->k = r;
    ember_free(s->ctx, rows);
    ember_ds_free(&ds);
    if (rc && strncmp(msg, "--init", 6) != 0) {
        char why[EMBER_MSG_SIZE];
        snprintf(why, sizeof why, "%s", msg);
        km_error(msg, rc, "--init: %s", why);
    }
    return rc;
}

static int choose_init(km *s, char *msg)
{
    s->init_kind = !strcmp(opt_init, "random") ? 0 : !strcmp(opt_init, "kmeans++") ? 1 : 2;
    s->k = (size_t)opt_k;
    int rc = s->init_kind == 2 ? load_init_file(s, msg) : EMBER_OK;
    if (!rc && s->k > s->n)
        rc = km_error(msg, EMBER_EINVAL, "--k %zu is larger than the number of points "
                      "(%zu) in %s", s->k, s->n, s->cli->input);
    return rc;
}

/* Mean over features of the population variance (as numpy's var), in two
 * row-order passes; -1 when out of memory. */
static double mean_variance(const km *s)
{
    double *mean = calloc(s->d, sizeof *mean), *ss = calloc(s->d, sizeof *ss);
    double total = -1;
    if (mean && ss) {
        for (size_t i = 0; i < s->n; i++)
            for (size_t j = 0; j < s->d; j++)
                mean[j] += s->x[i * s->d + j];
        for (size_t j = 0; j < s->d; j++)
            mean[j] /= (double)s->n;
        for (size_t i = 0; i < s->n; i++)
            for (size_t j = 0; j < s->d; j++) {
                double t = s->x[i * s->d + j] - mean[j];
                ss[j] += t * t;
            }
        total = 0;
        for (size_t j = 0; j < s->d; j++)
            total += ss[j] / (double)s->n;
        total /= (double)s->d;
    }
    free(mean);
    free(ss);
    return total;
}

/* The columns' scales of the exact sums, from their largest magnitudes,
 * and the words a coordinate takes: w words reach down to 2^(e - 51 w),
 * and a value below 2^e_min has no bit below 2^(e_min - 53). */
static void sums_scales(km *s)
{
    s->sums.X = 0;
    s->sums.tiny = 0;
    for (size_t j = 0; j < s->d; j++) {
        int e, e_min;
        frexp(s->colmax[j], &e); /* colmax < 2^e, the least such e (0 for 0) */
        int sc = 51 - e;
        s->sums.s[j] = sc;
        s->sums.f1[j] = ldexp(1, sc / 2);
        s->sums.f2[j] = ldexp(1, sc - sc / 2);
        if (isfinite(s->colmin[j])) {
            s->sums.tiny |= s->colmin[j] < 0x1p-969;
            frexp(s->colmin[j], &e_min);
            int words = (e - e_min + 53 + 50) / 51;
            if (words - 2 > s->sums.X)
                s->sums.X = words - 2;
        }
    }
}

static int prepare(km *s, char *msg)
{
    size_t kd = s->k * s->d;
    pass_arg a = {.k = s->k, .d = s->d, .z = &s->sums};
    km_bounds *b = &s->bnd;
    km_sums *z = &s->sums;
    z->s = malloc(s->d * sizeof *z->s);
    z->f1 = malloc(s->d * sizeof *z->f1);
    z->f2 = malloc(s->d * sizeof *z->f2);
    if (!z->s || !z->f1 || !z->f2)
        return km_error(msg, EMBER_ENOMEM, "out of memory");
    sums_scales(s); /* the accumulator's size depends on z->X */
    free(s->colmax); /* needed for the scales only */
    free(s->colmin);
    s->colmax = s->colmin = NULL;
    s->c = calloc(kd, sizeof *s->c);
    s->prev = calloc(kd, sizeof *s->prev);
    s->acc = malloc(acc_bytes(&a));
    s->zero = calloc(1, acc_bytes(&a));
    b->lab = malloc(s->n * sizeof *b->lab);
    b->lb = malloc(s->n * sizeof *b->lb);
    b->ub = malloc(s->n * sizeof *b->ub);
    b->at = malloc(kd * sizeof *b->at);
    b->k = s->k;
    b->row = malloc(4 * s->k * sizeof *b->row);
    b->hsq = malloc(s->k * sizeof *b->hsq);
    z->h = malloc(kd * sizeof *z->h);
    z->l = malloc(kd * sizeof *z->l);
    z->x = malloc((z->X ? (size_t)z->X * kd : 1) * sizeof *z->x);
    z->cnt = malloc(s->k * sizeof *z->cnt);
    if (!s->c || !s->prev || !s->acc || !s->zero || !b->lab || !b->lb || !b->ub ||
        !b->at || !b->row || !b->hsq || !z->h || !z->l || !z->x || !z->cnt)
        return km_error(msg, EMBER_ENOMEM, "out of memory");
    s->kern = pick_kernels(s->d);
    if (z->X) /* a wide column: the words one at a time */
        s->kern.move = move_block_wide;
    /* The pairs once rounded such columns' sums, and the mean of a column
     * with values whose last bits are subnormal was rounded twice: the
     * checkpoints of then are refused, not continued. */
    if (z->X || z->tiny)
        s->cli->arithmetic_more = "sums to the last bit, means rounded once";
    const char *use = getenv("EMBER_KMEANS_BOUNDS");
    b->use = !(use && !strcmp(use, "0"));
    bounds_margins(b, s->d);
    double var = s->cli->tolerance > 0 ? mean_variance(s) : 0;
    if (var < 0)
        return km_error(msg, EMBER_ENOMEM, "out of memory");
    s->tol = s->cli->tolerance * var;
    s->rng = (km_rng){s->cli->seed, 0};
    return EMBER_OK;
}

static int bind_state(km *s, ember_loop *loop)
{
    /* k x d matrices: a reader sees the centroids as rows */
    int rc = ember_loop_bind_matrix(loop, "centroids", EMBER_F64, s->c, s->k, s->d);
    if (!rc)
        rc = ember_loop_bind_matrix(loop, "previous", EMBER_F64, s->prev, s->k, s->d);
    if (!rc)
        rc = ember_loop_bind_blob(loop, "rng", &s->rng, sizeof s->rng);
    return rc;
}

/* ---- result -------------------------------------------------------------------------- */

typedef struct {
    int64_t *labels;
    double inertia;
    double seconds;
} km_result;

typedef struct {
    pass_arg a;
    int64_t *labels;
    double *dist;
} label_arg;

/* One rank: labels straight into the result, each point's distance into
 * la->dist. */
static int label_each(const void *in, size_t n, size_t part, void *argp)
{
    (void)part;
    const label_arg *la = argp;
    const pass_arg *a = &la->a;
    const double *x = in;
    int32_t tmp[KM_BLOCK];
    double dist[KM_BLOCK];
    km_tally t = {0};
    for (size_t lo = 0; lo < n; lo += KM_BLOCK) {
        size_t m = n - lo < KM_BLOCK ? n - lo : KM_BLOCK;
        ptrdiff_t i0 = block_index(a, x + lo * a->d, m);
        if (i0 < 0)
            return -1; /* not a view of the points' array: never expected */
        const int32_t *lab = assign_block(a, x + lo * a->d, m, tmp, dist, NULL, &t);
        for (size_t i = 0; i < m; i++) {
            la->labels[(size_t)i0 + i] = lab[i];
            la->dist[(size_t)i0 + i] = dist[i];
        }
    }
    tally_add(a->b, &t);
    return 0;
}

/* Several ranks: (label, distance) records collected from every rank. */
static int labels_collected(km *s, pass_arg *a, km_result *res, char *msg)
{
    ember_type pt = ember_type_pair(EMBER_I64, EMBER_F64);
    ember_ds *lds = NULL;
    void *buf = NULL;
    size_t n = 0;
    int rc = ember_map(&lds, s->points, &pt, label_map, a, sizeof *a, msg);
    if (!rc)
        rc = ember_collect_alloc(lds, &buf, &n, msg);
    double sum = 0; /* a local: through res, every add would wait on a store */
    for (size_t i = 0; !rc && i < n; i++) {
        const labelled *l = (const labelled *)buf + i;
        res->labels[i] = l->label;
        sum += l->dist;
    }
    res->inertia = sum;
    ember_free(s->ctx, buf);
    ember_ds_free(&lds);
    return rc;
}

/* Labels and inertia under the final centroids (inertia summed in point
 * order, serially, so it does not depend on the team either). */
static int final_labels(km *s, km_result *res, char *msg)
{
    double t0 = ember_cli_now();
    label_arg la = {pass_begin(s, 1), NULL, NULL};
    int rc = EMBER_OK;
    res->inertia = 0;
    if (!(res->labels = malloc((s->n ? s->n : 1) * sizeof *res->labels)))
        rc = km_error(msg, EMBER_ENOMEM, "out of memory");
    else if (s->cli->ranks > 1 || ember_array_data(s->points, &(size_t){0}) != s->x)
        rc = labels_collected(s, &la.a, res, msg);
    else if (!(la.dist = malloc(s->n * sizeof *la.dist)))
        rc = km_error(msg, EMBER_ENOMEM, "out of memory");
    else {
        la.labels = res->labels;
        rc = ember_foreach(s->points, label_each, &la, msg);
        /* A local, in point order: summed through res (which may alias
         * la.dist), each add waited on the store of the last (4-8 ms for
         * 10^6 points against 1 ms; the same bits). */
        double sum = 0;
        for (size_t i = 0; !rc && i < s->n; i++)
            sum += la.dist[i];
        res->inertia = sum;
    }
    free(la.dist);
    if (!rc)
        rc = check_inertia(s, res->inertia, msg);
    bounds_end(&s->bnd, s->c, s->k, s->d, 0);
    res->seconds = ember_cli_now() - t0;
    return rc;
}

/* ---- output file -------------------------------------------------------------------------- */

/* Writes the HDF5 output to tmp: the datasets, then the provenance
 * attributes on the root, sealed with ember's checksum header like every
 * program's output (ember-inspect verifies it). */
static int write_h5(const km *s, const km_result *res, const char *tmp, char *msg)
{
    char spec[4200];
    uint64_t cdims[2] = {s->k, s->d}, ldims[1] = {s->n};
    snprintf(spec, sizeof spec, "%s:/centroids", tmp);
    int rc = ember_h5_write_array(spec, EMBER_F64, s->c, 2, cdims, NULL, 0, 1, msg);
    snprintf(spec, sizeof spec, "%s:/labels", tmp);
    if (!rc)
        rc = ember_h5_write_array(spec, EMBER_I64, res->labels, 1, ldims, NULL, 0, 0, msg);
    if (rc)
        return rc;
    ember_h5_attr at[] = {
        {"inertia", EMBER_F64, res->inertia, 0, NULL},
        {"k", EMBER_I64, 0, (int64_t)s->k, NULL},
        {"n", EMBER_I64, 0, (int64_t)s->n, NULL},
        {"d", EMBER_I64, 0, (int64_t)s->d, NULL},
    };
    return ember_cli_write_provenance(s->cli, tmp, NULL, at, 4, msg);
}

/* X.csv -> X.centroids.csv (any case of .csv/.txt kept as it was). */
static int centroids_path(const char *out, char *buf, size_t size)
{
    size_t len = strlen(out);
    size_t stem = len >= 4 ? len - 4 : len;
    return snprintf(buf, size, "%.*s.centroids%s", (int)stem, out, out + stem) <
                   (int)size ? 0 : -1;
}

static int write_csv_file(const char *tmp, const km *s, const km_result *res,
                          int centroids)
{
    FILE *f = ember_cli_create(tmp);
    if (!f)
        return errno ? errno : EIO;
    if (centroids) {
        fputs("label", f);
        for (size_t j = 0; j < s->d; j++)
            fprintf(f, ",x%zu", j);
        fputc('\n', f);
        for (size_t q = 0; q < s->k; q++) {
            fprintf(f, "%zu", q);
            for (size_t j = 0; j < s->d; j++)
                fprintf(f, ",%.17g", s->c[q * s->d + j]);
            fputc('\n', f);
        }
    } else {
        fputs("id,label\n", f);
        for (size_t i = 0; i < s->n; i++)
            fprintf(f, "%zu,%" PRId64 "\n", i, res->labels[i]);
    }
    return ember_cli_fclose(f);
}

/* Writes NAME.tmp and renames it, so a reader never sees half a file. For
 * X.csv, also X.centroids.csv: both are written before either is renamed
 * (centroids first: the labels file appearing says both are complete), so
 * a kill or a full disk while they are written leaves the previous pair. */
static int write_output(const km *s, const km_result *res, char *msg)
{
    const char *path = s->cli->output;
    char tmp[4096], cpath[4096], ctmp[4096];
    if (ember_cli_tmp_name(path, tmp, sizeof tmp))
        return km_error(msg, EMBER_EINVAL, "--output %s: name too long", path);
    if (!ember_cli_output_is_csv(path))
        return ember_cli_publish(write_h5(s, res, tmp, msg), tmp, path, msg);
    if (centroids_path(path, cpath, sizeof cpath) ||
        ember_cli_tmp_name(cpath, ctmp, sizeof ctmp))
        return km_error(msg, EMBER_EINVAL, "--output %s: name too long", path);
    int e = write_csv_file(ctmp, s, res, 1), rc = 0;
    if (e)
        rc = km_error(msg, EMBER_EIO, "--output %s: cannot write %s: %s", path, ctmp,
                      strerror(e));
    else if ((e = write_csv_file(tmp, s, res, 0)) || (ember_cli_sync(tmp, 0) && (e = errno)))
        rc = km_error(msg, EMBER_EIO, "--output %s: cannot write %s: %s", path, tmp,
                      strerror(e));
    /* the labels on the device already: the two renames follow each other */
    rc = ember_cli_publish(rc, ctmp, cpath, msg);
    return ember_cli_publish(rc, tmp, path, msg);
}

/* ---- --verify: an independent checker ------------------------------------------------------- */

/* Nearest centroid by the definition (lowest index on ties). The checks
 * below run it for every point on the team (each point alone, by the
 * plain loop, not the kernels) and add up in point order. */
KM_CLONES static size_t nearest(const double *x, const double *c, size_t k, size_t d,
                                double *best)
{
    size_t l = 0;
    *best = INFINITY;
    for (size_t q = 0; q < k; q++) {
        double v = dist_serial(x, c + q * d, d);
        if (v < *best) {
            *best = v;
            l = q;
        }
    }
    return l;
}

/* Every label names the nearest centroid; the inertia is their sum. */
static int verify_labels(const km *s, const km_result *res)
{
    double *v = malloc(s->n * sizeof *v), sum = 0;
    if (!v) {
        printf("Verification: out of memory\n");
        return 0;
    }
    size_t bad = 0;
#pragma omp parallel for schedule(dynamic, 64) num_threads(ember_ctx_threads(s->ctx)) \
    reduction(+ : bad)
    for (size_t i = 0; i < s->n; i++) {
        const double *x = s->x + i * s->d;
        double best;
        nearest(x, s->c, s->k, s->d, &best);
        int64_t l = res->labels[i];
        v[i] = l >= 0 && (size_t)l < s->k ? dist_serial(x, s->c + (size_t)l * s->d, s->d)
                                          : INFINITY;
        bad += !(v[i] <= best);
    }
    for (size_t i = 0; i < s->n; i++)
        sum += v[i];
    free(v);
    double tol = 2.0 * (double)(s->n + 1) * DBL_EPSILON * sum;
    int inertia_ok = fabs(sum - res->inertia) <= tol;
    printf("Verification: %zu of %zu points are at their nearest centroid; inertia "
           "%.17g %s the serial sum %.17g\n",
           s->n - bad, s->n, res->inertia, inertia_ok ? "matches" : "DIFFERS FROM", sum);
    return bad == 0 && inertia_ok;
}

typedef struct {
    long double *sum; /* long double: a sum of doubles near DBL_MAX stays finite */
    double *maxabs, *cnt, *dist;
    size_t *near;     /* each point's nearest previous centroid */
} lloyd_ref;

static void lloyd_ref_free(lloyd_ref *r)
{
    free(r->sum);
    free(r->maxabs);
    free(r->cnt);
    free(r->dist);
    free(r->near);
}

/* The last update redone serially from the previous centroids: sums,
 * counts, and each point's distance to its nearest previous centroid. */
static int lloyd_ref_make(const km *s, lloyd_ref *r)
{
    size_t kd = s->k * s->d;
    r->sum = calloc(kd, sizeof *r->sum);
    r->maxabs = calloc(kd, sizeof *r->maxabs);
    r->cnt = calloc(s->k, sizeof *r->cnt);
    r->dist = malloc(s->n * sizeof *r->dist);
    r->near = malloc(s->n * sizeof *r->near);
    if (!r->sum || !r->maxabs || !r->cnt || !r->dist || !r->near)
        return -1;
#pragma omp parallel for schedule(dynamic, 64) num_threads(ember_ctx_threads(s->ctx))
    for (size_t i = 0; i < s->n; i++)
        r->near[i] = nearest(s->x + i * s->d, s->prev, s->k, s->d, &r->dist[i]);
    for (size_t i = 0; i < s->n; i++) {
        const double *x = s->x + i * s->d;
        size_t q = r->near[i];
        r->cnt[q] += 1;
        for (size_t j = 0; j < s->d; j++) {
            r->sum[q * s->d + j] += x[j];
            r->maxabs[q * s->d + j] = fmax(r->maxabs[q * s->d + j], fabs(x[j]));
        }
    }
    return 0;
}

/* The point farthest from its previous centroid, not yet taken (lowest
 * index on ties). */
static size_t farthest_free(const lloyd_ref *r, size_t n, unsigned char *taken)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++)
        if (!taken[i] && (best == n || r->dist[i] > r->dist[best]))
            best = i;
    if (best < n)
        taken[best] = 1;
    return best;
}

/* Each centroid is the mean of the points nearest to it before the last
 * update (within the rounding of the reference's sum in point order), or,
 * for a cluster left empty, the next farthest point; and
 * the update did not raise the objective. */
static int verify_means(const km *s, const km_result *res)
{
    lloyd_ref r = {0};
    unsigned char *taken = calloc(s->n, 1);
    size_t bad = 0, empty = 0, d = s->d;
    double slack = 0; /* what centroids off their means by tol may add */
    if (!taken || lloyd_ref_make(s, &r)) {
        printf("Verification: out of memory\n");
        free(taken);
        lloyd_ref_free(&r);
        return 0;
    }
    for (size_t q = 0; q < s->k; q++) {
        const double *c = s->c + q * d;
        if (r.cnt[q] == 0) {
            size_t i = farthest_free(&r, s->n, taken);
            empty++;
            bad += i == s->n || memcmp(c, s->x + i * d, d * sizeof *c) != 0;
            continue;
        }
        for (size_t j = 0; j < d; j++) {
            double mean = (double)(r.sum[q * d + j] / r.cnt[q]);
            double tol = 2.0 * (r.cnt[q] + 1) * DBL_EPSILON * r.maxabs[q * d + j];
            /* and a unit of the mean's last place: the reference rounds
             * twice (long double, then double), which a subnormal mean's
             * relative tolerance, 0, would not forgive */
            tol = fmax(tol, nextafter(fabs(mean), INFINITY) - fabs(mean));
            bad += !(fabs(mean - c[j]) <= tol);
            slack += r.cnt[q] * tol * tol;
        }
    }
    printf("Verification: %zu of %zu centroids are the mean of their points%s", s->k - bad,
           s->k, empty ? "" : "\n");
    if (empty)
        printf(" (%zu empty cluster(s) moved to the farthest points)\n", empty);
    double before = 0;
    for (size_t i = 0; i < s->n; i++)
        before += r.dist[i];
    /* a centroid off its cluster's mean by e adds the cluster's size times
     * e^2 to what the mean gives; the sums round too */
    int rose = res->inertia >
               before * (1 + 4.0 * (double)(s->n + s->d + 2) * DBL_EPSILON) + 2 * slack;
    printf("Verification: the last update %s the inertia (%.17g before it)\n",
           rose ? "RAISED" : "did not raise", before);
    free(taken);
    lloyd_ref_free(&r);
    return bad == 0 && !rose;
}

/* No iteration ran: every centroid is the --init file's row, or else a
 * point of the input (random and k-means++ pick points). */
static int verify_initial(const km *s)
{
    size_t d = s->d, bad = 0, row = d * sizeof *s->c;
    for (size_t q = 0; q < s->k; q++) {
        const double *c = s->c + q * d;
        int found = s->init_kind == 2 && memcmp(c, s->init + q * d, row) == 0;
        for (size_t i = 0; s->init_kind != 2 && !found && i < s->n; i++)
            found = memcmp(c, s->x + i * d, row) == 0;
        bad += !found;
    }
    printf("Verification: no iteration ran: %zu of %zu centroids are %s\n", s->k - bad,
           s->k, s->init_kind == 2 ? "the --init file's" : "points of the input");
    return bad == 0;
}

static int verify(const km *s, const km_result *res)
{
    int ok = verify_labels(s, res);
    if (s->cli->iterations_done == 0) {
        ok &= verify_initial(s);
    } else {
        int moved = memcmp(s->c, s->prev, s->k * s->d * sizeof *s->c) != 0;
        if (moved)
            printf("Verification: stopped by %s while centroids still moved: checking "
                   "that each centroid is the mean of the points nearest to it before "
                   "the last update\n",
                   s->cli->converged ? "--tolerance" : "--iterations");
        ok &= verify_means(s, res);
    }
    printf("Verification: %s\n", ok ? "PASS" : "FAIL");
    return ok;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void print_result(const km *s, const km_result *res)
{
    printf("points: %zu x %zu\nk: %zu\niterations: %" PRIu64 "\nconverged: %s\n"
           "inertia: %.17g\n",
           s->n, s->d, s->k, s->cli->iterations_done, s->cli->converged ? "yes" : "no",
           res->inertia);
    fflush(stdout); /* the result before the diagnostics, in a 2>&1 log */
    if (!s->cli->quiet) /* the run's timings are diagnostics: stderr */
        fprintf(stderr, "ember-kmeans: seconds: load %.3f compute %.3f labels %.3f "
                "checkpoint %.3f (files written in %.3f)\n", s->cli->load_seconds,
                s->cli->compute_seconds, res->seconds, s->cli->checkpoint_seconds_lost,
                s->cli->checkpoint_write_seconds);
    if (!s->cli->quiet && s->bnd.visited)
        fprintf(stderr, "ember-kmeans: %.1f%% of the points' assignments scanned every "
                "centroid and %.1f%% read the point; the bounds kept the others' labels\n",
                100.0 * (double)s->bnd.scanned / (double)s->bnd.visited,
                100.0 * (double)s->bnd.read / (double)s->bnd.visited);
}

static void km_free(km *s, km_input *in, km_result *res, ember_loop **loop)
{
    ember_loop_destroy(loop);
    input_free(in);
    free(res->labels);
    free(s->c);
    free(s->prev);
    free(s->acc);
    free(s->zero);
    free(s->init);
    free(s->colmax);
    free(s->colmin);
    free(s->bnd.lab);
    free(s->bnd.lb);
    free(s->bnd.ub);
    free(s->bnd.at);
    free(s->bnd.row);
    free(s->bnd.hsq);
    free(s->sums.s);
    free(s->sums.f1);
    free(s->sums.f2);
    free(s->sums.h);
    free(s->sums.l);
    free(s->sums.x);
    free(s->sums.cnt);
    ember_ctx_destroy(&s->ctx);
}

static int load(km *s, km_input *in, char *msg)
{
    double t0 = ember_cli_now();
    int rc = ember_cli_ctx(&s->ctx, s->cli, msg);
    if (!rc)
        rc = load_points(s, in, msg);
    /* Pipeline blocks of KM_BLOCK points at least: wide points would come
     * a few at a time, each block paying for a whole tile of the full
     * kernel. Speed only, so a memory budget below that keeps the default. */
    size_t block = KM_BLOCK * s->d * sizeof(double);
    if (!rc && block > 32 * 1024)
        (void)ember_ctx_set_block_bytes(s->ctx, block, NULL);
    if (!rc)
        rc = choose_init(s, msg);
    if (!rc)
        rc = prepare(s, msg);
    s->points = in->points;
    s->cli->load_seconds = ember_cli_now() - t0;
    return rc;
}

/* What the options must say, checked in ember_cli_parse. */
static int check_args(ember_cli *cli)
{
    if (!cli->input)
        return ember_cli_usage_error(cli, "--input is required (see --help)");
    int file_init = strcmp(opt_init, "random") && strcmp(opt_init, "kmeans++");
    if (!opt_k && !file_init)
        return ember_cli_usage_error(cli, "--k is required (see --help)");
    /* --init FILE is an input too: fingerprinted by content */
    if (file_init && ember_cli_add_input(cli, "init", opt_init))
        return EMBER_EXIT_USAGE;
    /* the centroids' file too, checked with the output, before the work */
    static char cpath[4096];
    if (!cli->output || !ember_cli_output_is_csv(cli->output))
        return EMBER_CLI_RUN;
    if (centroids_path(cli->output, cpath, sizeof cpath))
        return ember_cli_usage_error(cli, "--output %s: name too long", cli->output);
    return ember_cli_add_output(cli, "output (its centroids file)", cpath) ? EMBER_EXIT_USAGE
                                                                           : EMBER_CLI_RUN;
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &km_program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
        return rc;
    char msg[EMBER_MSG_SIZE] = "";
    km s;
    km_input in;
    km_result res;
    memset(&s, 0, sizeof s);
    memset(&in, 0, sizeof in);
    memset(&res, 0, sizeof res);
    s.cli = &cli;
    ember_loop *loop = NULL;
    rc = load(&s, &in, msg);
    if (!rc)
        rc = ember_cli_loop(&loop, s.ctx, &cli, msg);
    if (!rc)
        rc = bind_state(&s, loop);
    if (!rc)
        rc = ember_cli_iterate(&cli, loop, km_step, &s, msg);
    if (!rc && cli.iterations_done == 0) /* --iterations 0: the initial ones */
        rc = init_centroids(&s, msg);
    if (!rc)
        rc = final_labels(&s, &res, msg);
    /* Every rank holds the same centroids and labels (actions combine in
     * partition order on every rank); rank 0 writes and prints. */
    /* The final checkpoint was written beside final_labels; it commits
     * before the output, whose HDF5 calls (write_h5) are not under
     * ember's lock, which the checkpoint's writer holds. */
    rc = ember_cli_iterate_end(&cli, loop, rc, msg);
    if (!rc && cli.output && cli.rank == 0)
        rc = write_output(&s, &res, msg);
    int verified = 1;
    if (!rc && cli.rank == 0) {
        print_result(&s, &res);
        if (cli.verify)
            verified = verify(&s, &res);
    }
    if (!rc && !verified)
        ember_cli_settle(EMBER_EXIT_FAILURE);
    int code = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    km_free(&s, &in, &res, &loop);
    return code == EMBER_EXIT_OK && !verified ? EMBER_EXIT_FAILURE : code;
}
