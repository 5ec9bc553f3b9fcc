/* graph_internal.h: what graph.c, graph_text.c and graph_h5.c share.
 *
 * Loading is two steps. A reader (text or HDF5) hands the builder blocks of
 * edges (label pairs, u32); the builder makes the CSR in two passes over
 * the blocks (count, then scatter), so a reader that streams from a file
 * can hand out each block twice without holding all edges at once (the
 * text reader parses its file twice, each thread its own range of chunks).
 */
#ifndef EMBER_GRAPH_INTERNAL_H
#define EMBER_GRAPH_INTERNAL_H

#include "internal.h"
#include "ember/graph.h"

/* A block of edges: src[i * stride] -> dst[i * stride], i < n, of weight
 * w[i] when the graph is weighted (w is NULL otherwise). */
typedef struct {
    const uint32_t *src;
    const uint32_t *dst;
    size_t n;
    size_t stride;
    const double *w;
} ember__eblock;

/* Fills block i (of the nblocks the builder was told). Called on the
 * caller's thread, so it may call HDF5; a block stays valid until the next
 * call. */
typedef int (*ember__eblock_fn)(void *state, size_t i, ember__eblock *b,
                                char *msg);

/* Builds g's CSR (offsets, adj, out_degree, perm) from the blocks over
 * g->n vertices, as opts says. g->ctx and g->n are set by the caller.
 * resident: every block stays valid after later calls (in memory), so a
 * pass fetches them all and runs as one parallel region. */
int ember__graph_build(ember_graph *g, ember__eblock_fn get, void *state,
                       size_t nblocks, int resident,
                       const ember_graph_opts *opts, char *msg);

/* A source of blocks for the builder, which reads it twice (count, then
 * scatter). Blocks are fetched `group` at a time, in order; a group's
 * blocks stay valid until the next group's first block is fetched (a
 * resident source is one group of nblocks).
 * vertices (optional): called after each group of the first pass, returns
 * the vertex count seen so far; the builder's g->n grows to it, so a
 * source may start with g->n = 0 and learn it while it is read (text).
 * counted (optional): called once the first pass is over; may raise g->n
 * (vertices without edges) or refuse the input (an error in msg). */
typedef struct {
    ember__eblock_fn get;
    void *state;
    size_t nblocks;
    size_t group;
    uint64_t (*vertices)(void *state);
    int (*counted)(void *state, ember_graph *g, char *msg);
    /* Optional, for a source whose blocks any thread can fill (a text
     * file's chunks): the builder then splits the blocks into at most
     * EMBER__LANES contiguous lanes, one thread a lane, and counts (pass
     * 1) or scatters (pass 2) each block on the thread that filled it,
     * with no group barriers; get and vertices are not called.
     * fill: block i into the buffer of lane `lane` (valid until that
     * lane's next fill); nonzero stops the lane (the source keeps why).
     * It must verify in pass 2 that a block is the one of pass 1.
     * done: after each pass, the first error of any block, in block order.
     * max_pairs: a bound on the edges of all the blocks (the lanes' u32
     * counts and cursors need twice it below 2^32; the builder takes the
     * group path otherwise). */
    int (*fill)(void *state, size_t i, int lane, int pass, ember__eblock *b);
    int (*done)(void *state, int pass, char *msg);
    uint64_t max_pairs;
} ember__esource;

/* Lanes of a build from a source with fill: each holds a count, then a
 * cursor, per vertex, so their number is bounded (memory); with more
 * threads than this the builder takes the group path. */
#define EMBER__LANES 4

int ember__graph_build_from(ember_graph *g, const ember__esource *src,
                            const ember_graph_opts *opts, char *msg);

/* Largest vertex count allowed: opts' limit, 2^32, and what the machine's
 * memory allows (about 48 bytes of vertex arrays per vertex). */
uint64_t ember__graph_max_vertices(const ember_graph_opts *opts);
/* Fills msg for a stated vertex count n (a size line, an offsets array)
 * beyond the limit: EMBER_ERANGE. */
int ember__graph_too_big(char *msg, const char *where, uint64_t n, uint64_t limit);

/* Fills msg for an input file found shorter than it was (EMBER_ECORRUPT). */
int ember__graph_shrank(char *msg, const char *file);

/* Text readers (graph_text.c): edge lists and Matrix Market. */
int ember__graph_load_text(ember_graph *g, const char *path, int mtx,
                           const ember_graph_opts *opts, char *msg);
/* HDF5 CSR (graph_h5.c). */
int ember__graph_load_h5(ember_graph *g, const char *path,
                         const ember_graph_opts *opts, char *msg);

double ember__graph_now(void);

/* What a graph holds besides its public fields (every ember_graph is the
 * first member of one): whether its load may read in place
 * (ember_graph_load_in_place), the sources so read, and the file they are
 * in, for ember_graph_hold's messages. */
typedef struct {
    ember_graph g;
    int in_place;
    ember__leased src;        /* base NULL: adj is the graph's own memory */
    char file[4096];
} ember__graph_box;

static inline ember__graph_box *ember__graph_box_of(ember_graph *g)
{
    return (ember__graph_box *)(void *)g;
}

/* A new empty graph on ctx (in its box); freed with ember_graph_free. */
int ember__graph_new(ember_graph **out, ember_ctx *ctx, char *msg);

/* The layout ember_graph_save_h5 stores next to the CSR, ready to use:
 * rows of in-neighbours, vertices by descending out-degree (what
 * ember-pagerank asks for). A load with these options (and no relabel
 * beyond what the file holds) reads it instead of building it. */
#define EMBER__PULL_OPTS                                                      \
    ((ember_graph_opts){.by_destination = 1, .degree_order = 1})
/* Builds that layout from a graph by source in label order (g is only
 * read; *out is freed with ember_graph_free). */
int ember__graph_pull_of(ember_graph **out, const ember_graph *g, char *msg);

#endif /* EMBER_GRAPH_INTERNAL_H */
