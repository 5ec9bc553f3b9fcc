/* ember-gen: synthetic inputs for ember's programs.
 *
 *   ember-gen kron --scale S --edge-factor E --seed X --output FILE(.el|.h5)
 *   ember-gen blobs --n N --d D --k K --seed X --output FILE(.csv|.h5:/path)
 *
 * Every random number is a pure function of (seed, record index, draw), a
 * counter-based generator, so the output is the same for any thread count
 * and any block size. kron follows Graph500: R-MAT with A = 0.57,
 * B = C = 0.19, 2^S vertices, E * 2^S edges (self-loops and duplicates
 * included, as generated), vertex numbers scrambled by a seeded bijection
 * so that degree does not follow the id. With --weighted every edge line
 * gets a third column, an integer weight uniform in 1..255 drawn from
 * (seed, edge index), for ember-sssp. blobs follows scikit-learn's
 * make_blobs: k centres uniform in [-10, 10]^d, point i in cluster i mod k,
 * unit Gaussian noise.
 */
#include <ember.h>
#include <ember/graph.h>

#include "cli.h"
#include "outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* 0: not given (edge_factor's default, 16, is set by kron: main refuses
 * each generator's options given to the other) */
static uint64_t scale = 0, edge_factor = 0, npoints = 0, dims = 0, nclusters = 0;
static int weighted = 0;

static const ember_cli_opt options[] = {
    {"scale", EMBER_CLI_U64, &scale, 1, 32, EMBER_CLI_RANGE, NULL, "S",
     "kron: 2^S vertices (1..32)"},
    {"edge-factor", EMBER_CLI_U64, &edge_factor, 1, 1 << 20, EMBER_CLI_RANGE, NULL, "E",
     "kron: E * 2^S edges (default 16)"},
    {"weighted", EMBER_CLI_FLAG, &weighted, 0, 0, 0, NULL, NULL,
     "kron, .el only: a third column, integer weights 1..255 from --seed"},
    {"n", EMBER_CLI_U64, &npoints, 1, 1e12, EMBER_CLI_RANGE, NULL, "N", "blobs: points"},
    {"d", EMBER_CLI_U64, &dims, 1, 65536, EMBER_CLI_RANGE, NULL, "D", "blobs: dimensions"},
    {"k", EMBER_CLI_U64, &nclusters, 1, 1e9, EMBER_CLI_RANGE, NULL, "K", "blobs: clusters"},
    {0}};

static const ember_cli_program program = {
    .name = "ember-gen",
    .summary = "Generates a Kronecker (Graph500 R-MAT) graph or Gaussian blobs;\n"
               "the same output for any thread count.",
    .usage = "kron|blobs [options]",
    .examples = "  ember-gen kron --scale 16 --edge-factor 16 --seed 1 --output kron16.el\n"
                "  ember-gen kron --scale 16 --output kron16.h5\n"
                "  ember-gen kron --scale 12 --weighted --seed 1 --output w12.el\n"
                "  ember-gen blobs --n 100000 --d 16 --k 16 --seed 1 --output pts.h5:/points\n"
                "  ember-gen blobs --n 150 --d 4 --k 3 --output pts.csv\n",
    .extra = options,
    .omit = EMBER_CLI_NO_LOOP | EMBER_CLI_NO_INPUT | EMBER_CLI_NO_PARTITIONS,
    .max_positional = 1,
};

/* ---- counter-based random numbers ----------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t draw(uint64_t key, uint64_t j)
{
    return mix64(key + j * 0xd1b54a32d192ed03ULL);
}

/* ---- kron ------------------------------------------------------------------ */

typedef struct {
    unsigned bits;
    uint64_t mask;
    uint64_t mul[4], add[4];
} scrambler;

static scrambler make_scrambler(uint64_t seed, unsigned bits)
{
    scrambler s = {bits, bits >= 64 ? ~0ULL : (1ULL << bits) - 1, {0}, {0}};
    for (int r = 0; r < 4; r++) {
        s.mul[r] = (mix64(seed * 4 + (uint64_t)r + 0x51) | 1) & s.mask;
        s.add[r] = mix64(seed * 4 + (uint64_t)r + 0xa3) & s.mask;
        if (!s.mul[r])
            s.mul[r] = 1;
    }
    return s;
}

/* A bijection of [0, 2^bits): odd multiplications, xor-shifts and
 * additions modulo 2^bits are each invertible. */
static inline uint64_t scramble(const scrambler *s, uint64_t x)
{
    unsigned sh = s->bits / 2 + 1;
    for (int r = 0; r < 4; r++) {
        x = (x * s->mul[r]) & s->mask;
        x ^= x >> sh;
        x = (x + s->add[r]) & s->mask;
    }
    return x;
}

static inline void kron_edge(uint64_t seed, const scrambler *sc, unsigned S,
                             uint64_t e, uint32_t *src, uint32_t *dst)
{
    const double A = 0.57, AB = 0.76, ABC = 0.95;
    uint64_t key = mix64(seed ^ mix64(e)), u = 0, v = 0;
    for (unsigned l = 0; l < S; l += 2) {
        uint64_t r = draw(key, l / 2);
        for (unsigned h = 0; h < 2 && l + h < S; h++) {
            double p = (double)((h ? r : r >> 32) & 0xffffffffULL) * 0x1p-32;
            unsigned bu = p >= AB, bv = (p >= A && p < AB) || p >= ABC;
            u = (u << 1) | bu;
            v = (v << 1) | bv;
        }
    }
    *src = (uint32_t)scramble(sc, u);
    *dst = (uint32_t)scramble(sc, v);
}

static char *put_u32(char *p, uint32_t x)
{
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Weight of edge e with --weighted: 1..255, a pure function of (seed, e). */
static inline uint32_t kron_weight(uint64_t seed, uint64_t e)
{
    return 1 + (uint32_t)(draw(mix64(seed ^ 0x5bd1e9955bd1e995ULL), e) % 255);
}

/* The file the generators write: --output, or its .tmp (main). */
static const char *out_path;

#define LINES_PER_BLOCK ((uint64_t)1 << 18)
#define LINE_BYTES 32 /* "u v w\n": at most 10 + 1 + 10 + 1 + 3 + 1 */

/* Edge list text, blocks formatted in parallel and written in order. */
static int kron_text(const ember_cli *cli, uint64_t m, int threads, char *msg)
{
    FILE *f = ember_cli_create(out_path);
    if (!f) {
        snprintf(msg, EMBER_MSG_SIZE, "%s: %s", out_path, strerror(errno));
        return EMBER_EIO;
    }
    scrambler sc = make_scrambler(cli->seed, (unsigned)scale);
    uint64_t nblocks = (m + LINES_PER_BLOCK - 1) / LINES_PER_BLOCK;
    int round = threads * 2, rc = EMBER_OK;
    char **buf = calloc((size_t)round, sizeof *buf);
    size_t *len = calloc((size_t)round, sizeof *len);
    for (int i = 0; buf && len && i < round; i++)
        if (!(buf[i] = malloc(LINES_PER_BLOCK * LINE_BYTES)))
            rc = EMBER_ENOMEM;
    if (!buf || !len)
        rc = EMBER_ENOMEM;
    fprintf(f, "# ember-gen kron --scale %" PRIu64 " --edge-factor %" PRIu64
               " --seed %" PRIu64 "%s\n# %" PRIu64 " vertices, %" PRIu64 " edges%s\n",
            scale, edge_factor, cli->seed, weighted ? " --weighted" : "",
            UINT64_C(1) << scale, m, weighted ? " (u v weight)" : "");
    for (uint64_t b0 = 0; !rc && b0 < nblocks; b0 += (uint64_t)round) {
        int nb = (int)(nblocks - b0 < (uint64_t)round ? nblocks - b0 : (uint64_t)round);
        #pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int i = 0; i < nb; i++) {
            uint64_t lo = (b0 + (uint64_t)i) * LINES_PER_BLOCK;
            uint64_t hi = lo + LINES_PER_BLOCK < m ? lo + LINES_PER_BLOCK : m;
            char *p = buf[i];
            for (uint64_t e = lo; e < hi; e++) {
                uint32_t s, d;
                kron_edge(cli->seed, &sc, (unsigned)scale, e, &s, &d);
                p = put_u32(p, s);
                *p++ = ' ';
                p = put_u32(p, d);
                if (weighted) {
                    *p++ = ' ';
                    p = put_u32(p, kron_weight(cli->seed, e));
                }
                *p++ = '\n';
            }
            len[i] = (size_t)(p - buf[i]);
        }
        for (int i = 0; i < nb && !rc; i++)
            if (fwrite(buf[i], 1, len[i], f) != len[i])
                rc = EMBER_EIO;
    }
    if (fclose(f) != 0 && !rc)
        rc = EMBER_EIO;
    if (rc)
        snprintf(msg, EMBER_MSG_SIZE, "%s: %s", out_path,
                 rc == EMBER_ENOMEM ? "out of memory" : strerror(errno));
    for (int i = 0; buf && i < round; i++)
        free(buf[i]);
    free(buf);
    free(len);
    return rc;
}

/* ember's HDF5 CSR: rows sorted, duplicates dropped. */
static uint64_t h5_edges = UINT64_MAX; /* the distinct edges it holds */
static int kron_h5(const ember_cli *cli, ember_ctx *ctx, uint64_t m, char *msg)
{
    uint32_t *src = malloc(m * sizeof *src), *dst = malloc(m * sizeof *dst);
    ember_graph *g = NULL;
    int rc = EMBER_OK;
    if (!src || !dst) {
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " edges", m);
        rc = EMBER_ENOMEM;
    }
    scrambler sc = make_scrambler(cli->seed, (unsigned)scale);
    if (!rc) {
        #pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(ctx))
        for (uint64_t e = 0; e < m; e++)
            kron_edge(cli->seed, &sc, (unsigned)scale, e, &src[e], &dst[e]);
        rc = ember_graph_from_edges(&g, ctx, UINT64_C(1) << scale, src, dst, m,
                                    NULL, msg);
    }
    free(src);
    free(dst);
    if (!rc)
        rc = ember_graph_save_h5(g, out_path, msg);
    ember_h5_attr at[] = {{"generator", 0, 0, 0, "kron"},
                          {"scale", EMBER_U64, 0, (int64_t)scale, NULL},
                          {"edge_factor", EMBER_U64, 0, (int64_t)edge_factor, NULL},
                          {"seed", EMBER_U64, 0, (int64_t)cli->seed, NULL}};
    if (!rc)
        rc = ember_cli_write_provenance(cli, out_path, NULL, at, 4, msg);
    if (!rc) /* for main's summary */
        h5_edges = g->m;
    ember_graph_free(&g);
    return rc;
}

/* Refuses, before any work, a graph that cannot fit: disk bytes in the
 * output's directory, memory bytes in the machine's memory. */
static int room_for(const ember_cli *cli, double disk, double memory)
{
    char file[4096], dir[4096];
    ember_cli_output_file(cli->output, file, sizeof file);
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir] = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs fs;
    double free_bytes = statvfs(dir, &fs) == 0 ? (double)fs.f_bavail * (double)fs.f_frsize : -1;
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (free_bytes >= 0 && disk > free_bytes)
        return ember_cli_usage_error(cli, "--output %s: the graph takes about %.3g GB, "
                                     "and %s has %.3g GB free", cli->output, disk / 1e9,
                                     dir, free_bytes / 1e9);
    if (ram > 0 && memory > ram)
        return ember_cli_usage_error(cli, "--output %s: building the graph takes about "
                                     "%.3g GB of memory, and this machine has %.3g GB",
                                     cli->output, memory / 1e9, ram / 1e9);
    return 0;
}

static int kron(const ember_cli *cli, ember_ctx *ctx, char *msg)
{
    if (!scale)
        return ember_cli_usage_error(cli, "kron needs --scale S");
    if (!edge_factor)
        edge_factor = 16;
    uint64_t m = edge_factor << scale;
    if (edge_factor > (UINT64_C(1) << 40) >> scale)
        return ember_cli_usage_error(cli, "kron: --edge-factor %" PRIu64
                                     " << %" PRIu64 " edges is too many",
                                     edge_factor, scale);
    int h5 = ember_cli_has_suffix(cli->output, ".h5") || ember_cli_has_suffix(cli->output, ".hdf5");
    /* what it will take, at least: an edge list's lines (two ids of about
     * scale * log10(2) + 1 digits), or the CSR's targets and in-edges and
     * the edge pairs held while building it */
    double digits = (double)scale * 0.30103 + 1;
    double disk = h5 ? 8.0 * (double)m : (double)m * (2 * digits + 2 + (weighted ? 4 : 0));
    int rc = room_for(cli, disk, h5 ? 16.0 * (double)m : 0);
    if (rc)
        return rc;
    if (ember_cli_has_suffix(cli->output, ".csv"))
        return ember_cli_usage_error(cli, "--output %s: kron writes an edge list (.el: "
                                     "'u v' lines) or ember's HDF5 CSR (.h5), not CSV",
                                     cli->output);
    if (h5 && weighted)
        return ember_cli_usage_error(cli, "kron --weighted writes an edge list (.el): "
                                     "ember's HDF5 CSR holds no weights");
    rc = h5
                 ? kron_h5(cli, ctx, m, msg)
                 : kron_text(cli, m, ember_ctx_threads(ctx), msg);
    return ember_cli_exit(cli, rc, msg);
}

/* ---- blobs --------------------------------------------------------------------- */

static double uniform(uint64_t key, uint64_t j)
{
    return (double)(draw(key, j) >> 11) * 0x1p-53;
}

/* A unit normal by Box-Muller from two uniforms of (key, j). */
static double normal(uint64_t key, uint64_t j)
{
    double u1 = uniform(key, 2 * j), u2 = uniform(key, 2 * j + 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

static int blobs_write_csv(const double *x, char *msg)
{
    FILE *f = ember_cli_create(out_path);
    if (!f) {
        snprintf(msg, EMBER_MSG_SIZE, "%s: %s", out_path, strerror(errno));
        return EMBER_EIO;
    }
    for (uint64_t j = 0; j < dims; j++)
        fprintf(f, "%sx%" PRIu64, j ? "," : "", j);
    fputc('\n', f);
    for (uint64_t i = 0; i < npoints; i++)
        for (uint64_t j = 0; j < dims; j++)
            fprintf(f, "%.17g%c", x[i * dims + j], j + 1 < dims ? ',' : '\n');
    int e = ember_cli_fclose(f);
    if (e) {
        snprintf(msg, EMBER_MSG_SIZE, "%s: write failed: %s", out_path, strerror(e));
        return EMBER_EIO;
    }
    return EMBER_OK;
}

static int blobs(const ember_cli *cli, ember_ctx *ctx, char *msg)
{
    if (!npoints || !dims || !nclusters)
        return ember_cli_usage_error(cli, "blobs needs --n, --d and --k");
    if (npoints > (UINT64_C(1) << 40) / dims)
        return ember_cli_usage_error(cli, "blobs: --n x --d is too large");
    if (nclusters > npoints)
        return ember_cli_usage_error(cli, "blobs: --k %" PRIu64 " clusters need at "
                                     "least as many points (--n %" PRIu64 ")",
                                     nclusters, npoints);
    double *x = malloc(npoints * dims * sizeof *x);
    double *c = malloc(nclusters * dims * sizeof *c);
    if (!x || !c) {
        free(x);
        free(c);
        snprintf(msg, EMBER_MSG_SIZE, "out of memory for %" PRIu64 " x %" PRIu64
                 " points", npoints, dims);
        return ember_cli_exit(cli, EMBER_ENOMEM, msg);
    }
    uint64_t ckey = mix64(cli->seed ^ 0xc3a5c85c97cb3127ULL);
    for (uint64_t k = 0; k < nclusters; k++)
        for (uint64_t j = 0; j < dims; j++)
            c[k * dims + j] = -10.0 + 20.0 * uniform(mix64(ckey + k), j);
    #pragma omp parallel for schedule(static) num_threads(ember_ctx_threads(ctx))
    for (uint64_t i = 0; i < npoints; i++) {
        uint64_t key = mix64(cli->seed ^ mix64(i + 0x100000000ULL));
        for (uint64_t j = 0; j < dims; j++)
            x[i * dims + j] = c[(i % nclusters) * dims + j] + normal(key, j);
    }
    int rc;
    if (strstr(cli->output, ".h5:") || strstr(cli->output, ".hdf5:") ||
        ember_cli_has_suffix(cli->output, ".h5")) {
        char spec[4200];
        snprintf(spec, sizeof spec, "%s%s", out_path,
                 strchr(out_path, ':') ? "" : ":/points");
        char file[4200];
        snprintf(file, sizeof file, "%.*s", (int)strcspn(spec, ":"), spec);
        int existed = access(file, F_OK) == 0;
        uint64_t d2[2] = {npoints, dims};
        ember_h5_attr at[] = {{"k", EMBER_U64, 0, (int64_t)nclusters, NULL},
                              {"seed", EMBER_U64, 0, (int64_t)cli->seed, NULL}};
        ember_h5_attr root[] = {{"generator", 0, 0, 0, "blobs"},
                                {"n", EMBER_U64, 0, (int64_t)npoints, NULL},
                                {"d", EMBER_U64, 0, (int64_t)dims, NULL},
                                {"k", EMBER_U64, 0, (int64_t)nclusters, NULL},
                                {"seed", EMBER_U64, 0, (int64_t)cli->seed, NULL}};
        if (existed) {
            /* added to a file that was already there (which holds other
             * things): the provenance on the dataset, written with it in
             * one change of the file */
            static ember_cli_provenance p; /* 13 KB, off the stack */
            rc = ember_cli_provenance_attrs(cli, NULL, root, 5, &p, spec, msg);
            if (!rc)
                rc = ember_h5_write_array(spec, EMBER_F64, x, 2, d2, p.a, p.n, 0, msg);
        } else {
            /* a new file (the temporary): the provenance on its root */
            rc = ember_h5_write_array(spec, EMBER_F64, x, 2, d2, at, 2, 0, msg);
            if (!rc)
                rc = ember_cli_write_provenance(cli, file, NULL, root, 5, msg);
        }
    } else {
        rc = blobs_write_csv(x, msg);
    }
    free(x);
    free(c);
    return ember_cli_exit(cli, rc, msg);
}

/* The dataset path of a blobs HDF5 output, checked before any work (the
 * library refuses the same, but only once the points are made, and naming
 * the temporary file): "f.h5:" lost its path, "f.h5:/" names the root
 * group, "f.h5:/a/" or "f.h5:/a//b" an empty name. 0, or an exit status. */
static int check_blobs_path(const ember_cli *cli, const char *spec)
{
    char file[4096];
    const char *cut = ember_cli_output_file(spec, file, sizeof file);
    const char *path = cut ? cut + 1 : NULL;
    if (!cut && file[0] && file[strlen(file) - 1] == ':')
        return ember_cli_usage_error(cli, "--output %s: empty dataset path after ':' "
                                     "(write FILE.h5:/name, or FILE.h5 for /points)",
                                     spec);
    if (path && !ember_cli_has_suffix(file, ".h5") && !ember_cli_has_suffix(file, ".hdf5"))
        return ember_cli_usage_error(cli, "--output %s: a dataset path needs an HDF5 file "
                                     "named .h5 or .hdf5 (%s is not)", spec, file);
    if (path && (!path[1] || strstr(path, "//") || path[strlen(path) - 1] == '/'))
        return ember_cli_usage_error(cli, "--output %s: '%s' names no dataset "
                                     "(write FILE.h5:/name)", spec, path);
    return 0;
}

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    if (cli.nargs != 1 || (strcmp(cli.args[0], "kron") && strcmp(cli.args[0], "blobs")))
        return ember_cli_usage_error(&cli, "say what to generate: kron or blobs (see --help)");
    if (!cli.output)
        return ember_cli_usage_error(&cli, "--output FILE is required");
    int is_kron = strcmp(cli.args[0], "kron") == 0;
    if (is_kron && (npoints || dims || nclusters))
        return ember_cli_usage_error(&cli, "--n, --d and --k are blobs' options; kron "
                                     "takes --scale, --edge-factor and --weighted");
    if (!is_kron && (scale || edge_factor || weighted))
        return ember_cli_usage_error(&cli, "--scale, --edge-factor and --weighted are "
                                     "kron's options; blobs takes --n, --d and --k");
    if (ember_cli_check_output(&cli, "output", cli.output) ||
        (strcmp(cli.args[0], "blobs") == 0 && check_blobs_path(&cli, cli.output)))
        return EMBER_EXIT_USAGE; /* before generating, not after */
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    rc = ember_cli_ctx(&ctx, &cli, msg);
    if (rc)
        return ember_cli_exit(&cli, rc, msg);
    /* Written as FILE.tmp and renamed at the end, so a kill never leaves
     * half a file under the name; points added as a dataset to an HDF5
     * file that is already there change it through the library, which
     * makes each change whole (a copy renamed over the file). */
    const char *final = cli.output;
    char file[4096], tmp[4096], target[8192];
    const char *cut = ember_cli_output_file(final, file, sizeof file);
    out_path = final;
    int in_place = strcmp(cli.args[0], "blobs") == 0 && cut && access(file, F_OK) == 0;
    if (!in_place) {
        if (ember_cli_tmp_name(file, tmp, sizeof tmp))
            return ember_cli_usage_error(&cli, "--output %s: name too long", final);
        snprintf(target, sizeof target, "%s%s", tmp, cut ? cut : "");
        out_path = target;
    }
    double t0 = ember_cli_now();
    rc = strcmp(cli.args[0], "kron") == 0 ? kron(&cli, ctx, msg) : blobs(&cli, ctx, msg);
    /* rc is an exit status here: a failed rename is reported as any error */
    if (!in_place && ember_cli_publish(rc, tmp, file, msg) != rc)
        rc = ember_cli_exit(&cli, EMBER_EIO, msg);
    if (rc == 0 && h5_edges != UINT64_MAX) /* what was written: stdout */
        printf("ember-gen: %s: %" PRIu64 " vertices, %" PRIu64 " distinct edges (of %"
               PRIu64 " generated)\n", cli.output, UINT64_C(1) << scale, h5_edges,
               edge_factor << scale);
    else if (rc == 0 && strcmp(cli.args[0], "kron") == 0)
        printf("ember-gen: %s: %" PRIu64 " vertices, %" PRIu64 " edges (duplicates and "
               "self-loops included)%s\n", cli.output, UINT64_C(1) << scale,
               edge_factor << scale, weighted ? ", weights 1..255" : "");
    else if (rc == 0)
        printf("ember-gen: %s: %" PRIu64 " points in %" PRIu64 " dimensions, %" PRIu64
               " clusters\n", cli.output, npoints, dims, nclusters);
    rc = ember_cli_stdout_status(&cli, rc); /* before the diagnostics, in a 2>&1 log */
    if (rc == 0 && !cli.quiet) /* the run's time: stderr */
        fprintf(stderr, "ember-gen: %s written in %.3f s\n", cli.output,
                ember_cli_now() - t0);
    ember_ctx_destroy(&ctx);
    return rc;
}
