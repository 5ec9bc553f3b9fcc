/* graphio.c: per-vertex datasets and outputs of the graph programs. */
#include "graphio.h"
#include "cli.h"
#include "outputs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ember_cli_vertex_dataset(ember_ds **out, ember_ctx *ctx, const ember_graph *g,
                             size_t partitions, ember_scalar kind, void *values,
                             const char *name, char *msg)
{
    uint64_t *off = NULL;
    size_t parts = 0;
    int rc = ember_graph_partition(&off, &parts, g, partitions, msg);
    if (rc)
        return rc;
    ember_type t = ember_type_scalar(kind);
    rc = ember_from_array_parts(out, ctx, &t, values, g->n, off, parts,
                                EMBER_BORROW, msg);
    ember_free(ctx, off);
    if (!rc)
        ember_ds_set_name(*out, name);
    return rc;
}

int ember_cli_graph_format(const char **format, const char *input)
{
    static const char *const names[] = {[EMBER_GRAPH_EDGELIST] = "el",
                                        [EMBER_GRAPH_MTX] = "mtx", [EMBER_GRAPH_H5] = "h5"};
    int f = ember_graph_format_parse(*format);
    if (f == EMBER_GRAPH_AUTO)
        f = ember_graph_format_of(input);
    if (f > 0)
        *format = names[f];
    return f;
}

int ember_cli_graph_args(ember_cli *cli, const char **format, int weighted)
{
    if (!cli->input)
        return ember_cli_usage_error(cli, "--input GRAPH is required (see --help)");
    int f = ember_graph_format_parse(*format);
    if (f < 0 || (weighted && f == EMBER_GRAPH_H5))
        return ember_cli_usage_error(cli, "--format: '%s' is not one of el, mtx%s", *format,
                                     weighted ? " (ember's HDF5 CSR holds no weights)"
                                              : ", h5");
    ember_cli_graph_format(format, cli->input); /* auto: named in the parameters */
    return EMBER_CLI_RUN;
}

int ember_cli_vertex_parts(uint64_t **off, size_t *parts, ember_ctx *ctx,
                           const ember_graph *g, ember_ds *values, const char *what,
                           char *msg)
{
    int rc = ember_array_parts(off, parts, values, msg);
    if (rc)
        return rc;
    uint64_t n = (*off)[*parts];
    if (n != g->n) {
        snprintf(msg, EMBER_MSG_SIZE, "the checkpoint holds %" PRIu64 " %s, the graph has %" PRIu64
                 " vertices", n, what, g->n);
        rc = EMBER_ELENGTH;
    } else if ((rc = ember_graph_check_owned(g, *off, *parts, msg)) == EMBER_ESTATE) {
        /* only a restored partitioning can differ from the loaded one
         * (--force-resume with another --partitions or another graph, or a
         * checkpoint of an ember that drew partition boundaries
         * differently) */
        snprintf(msg, EMBER_MSG_SIZE, "the checkpoint's values (%zu partitions) are "
                 "partitioned otherwise than this run's graph rows, and on "
                 "several MPI ranks each rank loads only its partitions' rows: "
                 "resume on one rank, which loads them all (the boundaries "
                 "differ for another --partitions, where --partitions %zu "
                 "would do, for another graph under --force-resume, or for "
                 "another ember version)", *parts, *parts);
        rc = EMBER_EMISMATCH;
    }
    if (rc) {
        ember_free(ctx, *off);
        *off = NULL;
    }
    return rc;
}

/* x in decimal at p; its length. */
static size_t put_u64(char *p, uint64_t x)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    for (size_t i = 0; i < n; i++)
        p[i] = t[n - 1 - i];
    return n;
}

/* Value i as printf's %.17g (f64), PRIu64 or PRId64 writes it, at p (room
 * for 32 bytes); its length. A double that is a whole number below 2^53
 * (an ember-sssp distance over integer weights) is written as the integer
 * it is, which is what %.17g writes for it, without printf. */
static size_t put_value(char *p, ember_scalar kind, const void *values, uint64_t i)
{
    if (kind == EMBER_U64)
        return put_u64(p, ((const uint64_t *)values)[i]);
    if (kind == EMBER_F64) {
        double x = ((const double *)values)[i];
        if (!(x > -0x1p53 && x < 0x1p53 && x == (double)(int64_t)x && (x != 0 || !signbit(x))))
            return (size_t)snprintf(p, 32, "%.17g", x);
        int64_t k = (int64_t)x;
        if (k >= 0)
            return put_u64(p, (uint64_t)k);
        p[0] = '-';
        return 1 + put_u64(p + 1, (uint64_t)-k);
    }
    int64_t k = ((const int64_t *)values)[i];
    if (k >= 0)
        return put_u64(p, (uint64_t)k);
    p[0] = '-';
    return 1 + put_u64(p + 1, k == INT64_MIN ? UINT64_C(1) << 63 : (uint64_t)-k);
}

static int write_csv(const char *path, const char *tmp, const ember_graph *g,
                     const char *column, ember_scalar kind, const void *values, char *msg)
{
    FILE *f = ember_cli_create(tmp);
    if (!f) {
        snprintf(msg, EMBER_MSG_SIZE, "--output %s: cannot create its .tmp: %s", path,
                 strerror(errno));
        return EMBER_EIO;
    }
    fprintf(f, "vertex,%s\n", column);
    char buf[1 << 16];
    size_t at = 0;
    int bad = 0;
    for (uint64_t l = 0; l < g->n && !bad; l++) {
        at += put_u64(buf + at, g->ids ? g->ids[l] : l);
        buf[at++] = ',';
        at += put_value(buf + at, kind, values, l);
        buf[at++] = '\n';
        if (at > sizeof buf - 64) { /* room for a line: 20 + 1 + 32 + 1 */
            bad = fwrite(buf, 1, at, f) != at;
            at = 0;
        }
    }
    if (!bad)
        fwrite(buf, 1, at, f);
    int e = ember_cli_fclose(f);
    if (e) {
        snprintf(msg, EMBER_MSG_SIZE, "--output %s: write failed: %s", path, strerror(e));
        return EMBER_EIO;
    }
    return EMBER_OK;
}

int ember_cli_write_vertex_values(const ember_cli *cli, const ember_graph *g,
                                  const char *column, const char *dataset,
                                  ember_scalar kind, const void *values,
                                  const ember_h5_attr *attrs, size_t nattrs,
                                  char *msg)
{
    const char *out = cli->output;
    char tmp[4096], spec[4200];
    if (ember_cli_tmp_name(out, tmp, sizeof tmp)) {
        snprintf(msg, EMBER_MSG_SIZE, "--output %s: name too long", out);
        return EMBER_EINVAL;
    }
    int rc;
    if (ember_cli_output_is_csv(out)) {
        rc = write_csv(out, tmp, g, column, kind, values, msg);
    } else {
        uint64_t n = g->n;
        snprintf(spec, sizeof spec, "%s:/%s", tmp, dataset);
        rc = ember_h5_write_array(spec, kind, values, 1, &n, attrs, nattrs, 1, msg);
        if (!rc && g->ids) {
            snprintf(spec, sizeof spec, "%s:/ids", tmp);
            rc = ember_h5_write_array(spec, EMBER_U64, g->ids, 1, &n, NULL, 0, 0, msg);
        }
        if (!rc)
            rc = ember_cli_write_provenance(cli, tmp, NULL, attrs, nattrs, msg);
    }
    return ember_cli_publish(rc, tmp, out, msg);
}

int ember_cli_note_vertex_ids(const ember_cli *cli, ember_loop *loop,
                              const ember_graph *g, uint64_t **ids)
{
    *ids = NULL;
    if (!cli->checkpoint_dir)
        return EMBER_OK;
    *ids = malloc((g->n ? g->n : 1) * sizeof **ids);
    if (!*ids)
        return EMBER_ENOMEM;
    uint64_t top = 0;
    for (uint64_t v = 0; v < g->n; v++) {
        uint64_t l = ember_graph_label(g, v);
        (*ids)[v] = g->ids ? g->ids[l] : l;
        top = (*ids)[v] > top ? (*ids)[v] : top;
    }
    if (!g->n)
        return EMBER_OK;
    if (top > INT32_MAX)
        return ember_loop_note_array(loop, "vertex_ids", EMBER_U64, *ids, g->n);
    /* Every id fits in 32 bits (always, without --relabel): half the bytes
     * in every checkpoint. Packed in place, front to back. */
    unsigned char *small = (unsigned char *)*ids;
    for (uint64_t v = 0; v < g->n; v++) {
        int32_t x = (int32_t)(*ids)[v];
        memcpy(small + v * sizeof x, &x, sizeof x); /* no aliasing of *ids */
    }
    return ember_loop_note_array(loop, "vertex_ids", EMBER_I32, small, g->n);
}
