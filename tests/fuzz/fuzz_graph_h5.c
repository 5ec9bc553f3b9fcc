/* fuzz_graph_h5.c: the HDF5 graph reader (src/graph_h5.c) and the generic
 * HDF5 dataset reader it shares a file layer with (ember_read_h5, h5io.c).
 *
 * Input: one byte of options, then the HDF5 file.
 *   0x01 undirected  0x02 by_destination  0x04 degree_order
 *   0x08 max_vertices 1000 (else FUZZ_MAX_VERTICES, fuzz.h)
 * A graph that loads must satisfy graph.h's CSR invariants; the harness
 * then reads /csr/offsets and /csr/targets with ember_read_h5. Whatever the
 * outcome, no HDF5 identifier may stay open.
 */
#include "fuzz.h"

#include <ember/graph.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_csr(const ember_graph *g, const ember_graph_opts *o)
{
    if (g->offsets[0] != 0 || g->offsets[g->n] != g->m)
        fuzz_fail("invalid graph", "offsets do not run from 0 to m");
    for (uint64_t v = 0; v < g->n; v++) {
        uint64_t lo = g->offsets[v], hi = g->offsets[v + 1];
        if (hi < lo || hi > g->m)
            fuzz_fail("invalid graph", "offsets not ascending");
        for (uint64_t k = lo; k < hi; k++) {
            if (g->adj[k] >= g->n)
                fuzz_fail("invalid graph", "neighbour out of range");
            if (k > lo && g->adj[k] <= g->adj[k - 1])
                fuzz_fail("invalid graph", "row not sorted or has a duplicate");
        }
    }
    if (o->by_destination && !g->out_degree)
        fuzz_fail("invalid graph", "by_destination without out_degree");
    if (o->degree_order && !g->perm)
        fuzz_fail("invalid graph", "degree_order without perm");
    if (o->max_vertices && g->n > o->max_vertices)
        fuzz_fail("invalid graph", "more vertices than max_vertices");
    for (uint64_t v = 1; g->ids && v < g->n; v++)
        if (g->ids[v] <= g->ids[v - 1])
            fuzz_fail("invalid graph", "ids not strictly ascending");
}

static void read_array(ember_ctx *ctx, const char *file, const char *dset)
{
    char spec[8300], msg[EMBER_MSG_SIZE];
    snprintf(spec, sizeof spec, "%s%s", file, dset);
    ember_ds *ds = NULL;
    int rc = ember_read_h5(&ds, ctx, spec, 0, msg);
    fuzz_check_msg(rc, msg, "ember_read_h5");
    if (rc == EMBER_OK) {
        void *recs = NULL;
        size_t n = 0;
        rc = ember_collect_alloc(ds, &recs, &n, msg);
        fuzz_check_msg(rc, msg, "ember_collect_alloc");
        ember_free(ctx, recs);
    }
    ember_ds_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    ember_graph_opts o;
    memset(&o, 0, sizeof o);
    o.format = EMBER_GRAPH_H5;
    o.undirected = (flags & 0x01) != 0;
    o.by_destination = (flags & 0x02) != 0;
    o.degree_order = (flags & 0x04) != 0;
    o.max_vertices = flags & 0x08 ? 1000 : FUZZ_MAX_VERTICES;
    char file[8192];
    snprintf(file, sizeof file, "%s", fuzz_write("g.h5", data + 1, size - 1));

    ember_ctx *ctx = fuzz_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_graph *g = NULL;
    int rc = ember_graph_load(&g, ctx, file, &o, msg);
    fuzz_check_msg(rc, msg, "ember_graph_load");
    if (rc == EMBER_OK)
        check_csr(g, &o);
    else if (g)
        fuzz_fail("invalid graph", "an error left a graph behind");
    ember_graph_free(&g);
    fuzz_check_h5();
    read_array(ctx, file, ":/csr/offsets");
    read_array(ctx, file, ":/csr/targets");
    read_array(ctx, file, "");
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
