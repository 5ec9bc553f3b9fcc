/* fuzz_graph_text.c: edge lists and Matrix Market files through the public
 * graph API (src/graph_text.c, then the CSR builder in graph.c).
 *
 * Input: one byte of options, then the file.
 *   0x01 undirected    0x02 by_destination    0x04 relabel
 *   0x08 degree_order  0x10 Matrix Market (else an edge list)
 *   0x20 max_vertices 1000 (else FUZZ_MAX_VERTICES, fuzz.h)
 *   0x40 also write the graph as HDF5 and load it back
 *   0x80 weighted (a third column, or the Matrix Market values)
 * A graph that loads must be a valid CSR (graph.h's invariants): the
 * harness checks every one, that a weighted graph's weights are positive
 * and finite, and that the HDF5 copy holds the same rows.
 */
#include "fuzz.h"

#include <ember/graph.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* graph.h's promises about a loaded graph. */
static void check_csr(const ember_graph *g, const ember_graph_opts *o)
{
    if (g->n > ((uint64_t)1 << 32))
        fuzz_fail("invalid graph", "more than 2^32 vertices");
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
    if ((g->by_destination != 0) != (o->by_destination != 0))
        fuzz_fail("invalid graph", "by_destination not honoured");
    if (o->undirected && g->directed)
        fuzz_fail("invalid graph", "undirected graph marked directed");
    if (g->by_destination) {
        if (!g->out_degree)
            fuzz_fail("invalid graph", "by_destination without out_degree");
        uint64_t sum = 0;
        for (uint64_t v = 0; v < g->n; v++)
            sum += g->out_degree[v];
        if (sum != g->m)
            fuzz_fail("invalid graph", "out-degrees do not sum to m");
    }
    if (o->degree_order) {
        if (!g->perm)
            fuzz_fail("invalid graph", "degree_order without perm");
        unsigned char *seen = calloc(g->n ? g->n : 1, 1);
        for (uint64_t v = 0; v < g->n; v++) {
            if (g->perm[v] >= g->n || seen[g->perm[v]])
                fuzz_fail("invalid graph", "perm is not a permutation");
            seen[g->perm[v]] = 1;
        }
        free(seen);
    }
    /* relabel is for edge lists (docs/formats.md): Matrix Market indices
     * are dense already and keep no ids */
    if (o->relabel && o->format != EMBER_GRAPH_MTX) {
        if (!g->ids)
            fuzz_fail("invalid graph", "relabel without ids");
        for (uint64_t v = 1; v < g->n; v++)
            if (g->ids[v] <= g->ids[v - 1])
                fuzz_fail("invalid graph", "ids not strictly ascending");
    }
    if (o->max_vertices && g->n > o->max_vertices)
        fuzz_fail("invalid graph", "more vertices than max_vertices");
    if (o->weighted && !g->weights)
        fuzz_fail("invalid graph", "weighted without weights");
    for (uint64_t k = 0; o->weighted && k < g->m; k++)
        if (!(g->weights[k] > 0 && g->weights[k] <= 1.7976931348623157e308))
            fuzz_fail("invalid graph", "a weight not positive and finite");
}

/* The HDF5 copy of a graph loaded without renumbering has its rows. */
static void check_roundtrip(ember_ctx *ctx, const ember_graph *g)
{
    char msg[EMBER_MSG_SIZE];
    char h5[8192];
    snprintf(h5, sizeof h5, "%s", fuzz_path("copy.h5"));
    int rc = ember_graph_save_h5(g, h5, msg);
    fuzz_check_msg(rc, msg, "ember_graph_save_h5");
    if (rc)
        return; /* e.g. out of memory under the cap */
    ember_graph_opts o;
    memset(&o, 0, sizeof o);
    o.format = EMBER_GRAPH_H5;
    ember_graph *back = NULL;
    rc = ember_graph_load(&back, ctx, h5, &o, msg);
    fuzz_check_msg(rc, msg, "ember_graph_load (HDF5 copy)");
    if (rc == EMBER_ENOMEM)
        return;
    if (rc)
        fuzz_fail("invalid graph", "its HDF5 copy does not load");
    if (back->n != g->n || back->m != g->m ||
        memcmp(back->offsets, g->offsets, (g->n + 1) * sizeof *g->offsets) ||
        (g->m && memcmp(back->adj, g->adj, g->m * sizeof *g->adj)) ||
        (!g->ids) != (!back->ids) ||
        (g->ids && g->n && memcmp(back->ids, g->ids, g->n * sizeof *g->ids)))
        fuzz_fail("invalid graph", "its HDF5 copy differs");
    ember_graph_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    ember_graph_opts o;
    memset(&o, 0, sizeof o);
    o.undirected = (flags & 0x01) != 0;
    o.by_destination = (flags & 0x02) != 0;
    o.relabel = (flags & 0x04) != 0;
    o.degree_order = (flags & 0x08) != 0;
    o.format = flags & 0x10 ? EMBER_GRAPH_MTX : EMBER_GRAPH_EDGELIST;
    o.max_vertices = flags & 0x20 ? 1000 : FUZZ_MAX_VERTICES;
    o.weighted = (flags & 0x80) != 0;
    const char *path = fuzz_write(flags & 0x10 ? "g.mtx" : "g.el", data + 1, size - 1);
    char file[8192];
    snprintf(file, sizeof file, "%s", path);

    ember_ctx *ctx = fuzz_ctx();
    char msg[EMBER_MSG_SIZE];
    ember_graph *g = NULL;
    int rc = ember_graph_load(&g, ctx, file, &o, msg);
    fuzz_check_msg(rc, msg, "ember_graph_load");
    if (rc == EMBER_OK) {
        if (!g)
            fuzz_fail("invalid graph", "EMBER_OK without a graph");
        check_csr(g, &o);
        if ((flags & 0x40) && !o.by_destination && !o.degree_order && !o.weighted)
            check_roundtrip(ctx, g);
    } else if (g) {
        fuzz_fail("invalid graph", "an error left a graph behind");
    }
    ember_graph_free(&g);
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
