/* ember/graph.h: graphs for ember's graph programs (PageRank, connected
 * components): fast parallel loading of edge lists, Matrix Market files and
 * ember's HDF5 CSR, the CSR itself, and vertex-range partitioned datasets.
 * Include after ember.h.
 *
 * A graph is a CSR (compressed sparse rows) of u32 vertex numbers: row v is
 * adj[offsets[v] .. offsets[v + 1]), sorted ascending, without duplicates
 * (duplicate edges count once; a self-loop is an ordinary edge), with an
 * optional weight per edge. Rows list
 * out-neighbours, or in-neighbours with by_destination (the layout of
 * pull-based algorithms, which then also get each vertex's out-degree).
 *
 * Vertex ids in files are dense non-negative integers and the graph has
 * max id + 1 vertices, unless relabel maps arbitrary ids (any u64) to
 * 0..n-1 in ascending id order and keeps the mapping. An id that would
 * need more vertices than 2^32, or vertex arrays larger than the machine's
 * memory, is an error that says so, never an attempt.
 *
 * Three numberings meet here, kept apart on purpose:
 *   - id: what the file says (any u64 with relabel);
 *   - label: the dense number users see in outputs (= id without relabel;
 *     ids[label] = id with relabel);
 *   - vertex: the internal number used in the CSR; = label, unless the
 *     graph was renumbered by degree for speed (perm[vertex] = label).
 *
 * The HDF5 CSR format (docs/formats.md): group /csr with datasets
 * offsets (u64, n + 1) and targets (u32; any integer type is read),
 * attributes n (u64), m (u64), directed (i32), format ("ember-csr"),
 * version (i32, 1); optional /csr/ids (u64, n): the original ids;
 * optional /csr/pull (written by ember_graph_save_h5): the graph with
 * by_destination and degree_order, read as it is (no rebuild) by a load
 * with those options from a sealed file, bit-identical to a rebuild.
 *
 * Threading: loading and building run on the context's OpenMP team and
 * must be called from the context's caller thread; the graph is read-only
 * afterwards and may be read from any task.
 */
#ifndef EMBER_GRAPH_H
#define EMBER_GRAPH_H

#include <ember.h>

#include <assert.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EMBER_GRAPH_AUTO = 0,     /* from the extension: .mtx, .h5/.hdf5, else
                                 an edge list */
    EMBER_GRAPH_EDGELIST = 1, /* SNAP: '#' (or '%') comments, two ids per
                                 line separated by spaces or tabs, then the
                                 weight with `weighted`; further columns
                                 are ignored */
    EMBER_GRAPH_MTX = 2,      /* Matrix Market coordinate: pattern, real or
                                 integer; general, symmetric or
                                 skew-symmetric; 1-based; entry (i, j) is the
                                 edge i-1 -> j-1; values are the weights
                                 with `weighted`, else ignored */
    EMBER_GRAPH_H5 = 3        /* ember's HDF5 CSR */
} ember_graph_format;

typedef struct {
    ember_graph_format format;
    int undirected;       /* store every edge in both directions */
    int relabel;          /* arbitrary ids -> dense labels (ascending id);
                             edge lists only (EMBER_EINVAL otherwise) */
    int by_destination;   /* rows list in-neighbours; out_degree is filled */
    int degree_order;     /* renumber vertices by descending out-degree
                             (ties: ascending label), for cache locality;
                             perm is filled */
    uint64_t max_vertices;/* 0: 2^32, lowered to what memory allows */
    int weighted;         /* read a weight for every edge (the third column
                             of an edge list, the value of a real or
                             integer Matrix Market entry) into weights:
                             each must be a positive finite number, else
                             EMBER_EFORMAT naming file:line. Of duplicate
                             edges the lightest is kept. Text inputs only
                             (ember's HDF5 CSR holds no weights) */
    int owned_rows;       /* on a context of more than one MPI rank, when
                             the stored pull layout is read (an ember HDF5
                             file sealed by ember_graph_save_h5, loaded
                             with by_destination and degree_order, or
                             undirected with degree_order from a file
                             stored both ways): every rank reads the O(n) arrays
                             whole but only the sources of the rows of the
                             partitions it owns (the block map of
                             ember/mpi.h over ember_graph_partition's
                             partitions with `partitions`); see row_lo.
                             Other files and layouts by_destination (or
                             undirected: rows the same both ways) are
                             built whole, then trimmed to the same rows.
                             On one rank, or directed by source, ignored:
                             the whole graph. On several ranks
                             the load is then collective (every rank
                             calls it with the same arguments and gets
                             the same status). */
    size_t partitions;    /* with owned_rows: the partition count the
                             program will pass to ember_graph_partition
                             (0: its default) */
} ember_graph_opts;

typedef struct {
    ember_ctx *ctx;       /* allocations come from its allocator */
    uint64_t n;           /* vertices */
    uint64_t m;           /* stored edges (both directions counted when
                             undirected) */
    int directed;         /* 0 when every edge is stored both ways:
                             built with undirected, a (skew-)symmetric
                             Matrix Market file, or an HDF5 CSR whose
                             directed = 0 its edges bear out */
    int by_destination;
    uint64_t *offsets;    /* n + 1 */
    uint32_t *adj;        /* m */
    uint32_t *out_degree; /* by_destination: n; else NULL (use offsets) */
    uint32_t *perm;       /* degree_order: label of each vertex; else NULL */
    uint64_t *ids;        /* relabel: original id of each label; else NULL */
    uint64_t input_bytes; /* size of the file read */
    double read_seconds;  /* reading or parsing the file */
    double build_seconds; /* building the CSR (a stored pull layout: only
                             checking it) */
    double *weights;      /* weighted: m weights, weights[e] of the edge
                             adj[e] stands for (row v: v -> adj[e], or
                             adj[e] -> v by_destination); else NULL */
    /* The rows whose edges adj (and weights) hold: [row_lo, row_hi), edge
     * e of them at adj[e - edge_lo] (edge_lo = offsets[row_lo]). A whole
     * graph has 0, n, 0 (every loader, unless opts.owned_rows took
     * effect: then this rank's rows only, while n, m, offsets,
     * out_degree, perm and ids stay whole). ember_graph_row reads a row
     * either way and asserts that it is held. */
    uint64_t row_lo, row_hi, edge_lo;
} ember_graph;

/* EMBER_GRAPH_AUTO's rule: the format from a file name (.mtx; .h5 or
 * .hdf5), or else from the file's content: HDF5 when it holds HDF5's
 * signature (at byte 0, 512, 1024, ...), an edge list otherwise (a file
 * that does not exist too). */
ember_graph_format ember_graph_format_of(const char *path);
/* "auto", "el", "mtx", "h5" -> format; -1 if none. */
int ember_graph_format_parse(const char *name);

/* Loads a graph file. Errors say what and where: EMBER_ENOTFOUND (missing
 * file), EMBER_EEMPTY (no edges and no vertices), EMBER_EFORMAT (file:line:
 * a non-numeric token, a line with one id, a negative id, a bad Matrix
 * Market header or entry), EMBER_ERANGE (an id too large to allocate),
 * EMBER_ECORRUPT (the file failed verification, or changed or shrank while
 * it was read). A text file is read through a mapping, guarded by a SIGBUS
 * handler that ember installs (process-wide, once, and again if another
 * replaced it; a SIGBUS that is not a read of a guarded mapping goes to
 * the handler that was there before): a file truncated during the load
 * fails it instead of killing the process.
 * *out is freed with ember_graph_free. */
int ember_graph_load(ember_graph **out, ember_ctx *ctx, const char *path,
                     const ember_graph_opts *opts, char *msg);

/* ember_graph_load, but when the stored pull layout is read whole on one
 * process (see owned_rows), its sources (adj) are mapped from the file
 * instead of read: no copy, and the pages are the page cache's. Only under
 * a read lease (fcntl F_SETLEASE), which the kernel grants while nobody
 * has the file open for writing and which holds off whoever then opens it
 * for writing or truncates it; and only for a sealed file this process
 * verified and that has not changed since (a file at least 2 s old when
 * its fingerprint was taken, ember_file_hash, which held a lease on it
 * throughout). Else, or on a file system where a lease does not hold off
 * every writer (any but ext2/3/4, XFS, Btrfs and F2FS: on FUSE, NFS, tmpfs,
 * SMB or a cluster file system a write made elsewhere breaks no lease),
 * adj is read as ember_graph_load reads it. The caller
 * must call ember_graph_hold between its passes over the edges: it copies
 * them out and lets a waiting writer go. */
int ember_graph_load_in_place(ember_graph **out, ember_ctx *ctx, const char *path,
                              const ember_graph_opts *opts, char *msg);

/* Builds a graph from m edges src[i] -> dst[i] over n vertices (dense
 * labels below n). The arrays are only read. opts->relabel, format and
 * weighted are ignored (the graph has no weights). */
int ember_graph_from_edges(ember_graph **out, ember_ctx *ctx, uint64_t n,
                           const uint32_t *src, const uint32_t *dst,
                           size_t m, const ember_graph_opts *opts, char *msg);

/* Writes a graph (rows by source, any numbering undone: rows are labels)
 * as ember's HDF5 CSR to path, replacing the file, with the pull layout
 * (/csr/pull, built here: the graph by destination in degree order) next
 * to it. Weights are not saved. A graph that holds only some rows is
 * refused (EMBER_EINVAL). */
int ember_graph_save_h5(const ember_graph *g, const char *path, char *msg);

/* For a graph loaded with ember_graph_load_in_place, between passes over
 * its edges (an iteration, say), and before its results are kept: EMBER_OK while
 * its edges are still the bytes verified. When another process has opened
 * the file for writing or asked to truncate it (held off meanwhile), the
 * edges are copied into the graph's own memory (g->adj changes) and the
 * writer let go; it waits for at most a pass. A pass (or a stop of this
 * process) longer than /proc/sys/fs/lease-break-time lets the writer go on
 * its own, and so does a break during which the file's size or times
 * moved: then EMBER_ECORRUPT, the edges may have changed, and adj is
 * NULL. EMBER_ENOMEM when the copy finds no memory. Any other graph made
 * by this header's functions: EMBER_OK, nothing done. */
int ember_graph_hold(ember_graph *g, char *msg);

/* Frees a graph made by this header's functions (the loaders, the builders:
 * a graph carries state beyond the struct, so neither this nor
 * ember_graph_hold takes an ember_graph filled in by the caller). */
void ember_graph_free(ember_graph **g);

/* Bytes of offsets, adj and weights: the CSR's memory (of the rows held). */
uint64_t ember_graph_csr_bytes(const ember_graph *g);

/* 1 when g holds every row (row_lo 0, row_hi n). */
static inline int ember_graph_whole(const ember_graph *g)
{
    return g->row_lo == 0 && g->row_hi == g->n;
}

/* Row v's entries (*len of them), which g must hold (asserted). */
static inline const uint32_t *ember_graph_row(const ember_graph *g, uint64_t v,
                                              uint64_t *len)
{
    assert(v >= g->row_lo && v < g->row_hi);
    *len = g->offsets[v + 1] - g->offsets[v];
    return g->adj + (g->offsets[v] - g->edge_lo);
}

/* Edges whose sources g holds: m for a whole graph. */
static inline uint64_t ember_graph_held_edges(const ember_graph *g)
{
    return g->offsets ? g->offsets[g->row_hi] - g->edge_lo : 0;
}

/* Checks that g holds the rows of the partitions this rank owns (the
 * block map of ember/mpi.h over parts partitions with these parts + 1
 * offsets): EMBER_ESTATE naming both ranges if not. Collective on several
 * ranks (every rank returns the same status); trivial on a whole graph. */
int ember_graph_check_owned(const ember_graph *g, const uint64_t *offsets,
                            size_t parts, char *msg);

/* Label of a vertex (perm undone). */
static inline uint64_t ember_graph_label(const ember_graph *g, uint64_t v)
{
    return g->perm ? g->perm[v] : v;
}

/* Partition boundaries over the vertices, contiguous ranges with about the
 * same weight each (a vertex weighs as much as 16 edges, about its cost in
 * PageRank, so that MPI ranks' blocks of partitions cost the same):
 * parts + 1 offsets into *offsets (a ctx allocation freed with
 * ember_free). want 0: from the graph's size (4 n + m over 64 Ki, at most
 * 4096, never from the thread count). */
int ember_graph_partition(uint64_t **offsets, size_t *parts,
                          const ember_graph *g, size_t want, char *msg);

/* A dataset over an array of n records with the given partition boundaries
 * (parts + 1 offsets from 0 to n, non-decreasing; copied). own as in
 * ember_from_array. Broadcasting it is a view of the array. */
int ember_from_array_parts(ember_ds **out, ember_ctx *ctx,
                           const ember_type *type, const void *records,
                           size_t n, const uint64_t *offsets, size_t parts,
                           ember_ownership own, char *msg);

/* The partition boundaries of an array source (a dataset from
 * ember_from_array*, ember_read_h5 or a restored checkpoint): parts + 1
 * offsets into *offsets (a ctx allocation freed with ember_free).
 * EMBER_EINVAL for other datasets. */
int ember_array_parts(uint64_t **offsets, size_t *parts, const ember_ds *ds,
                      char *msg);
/* The records of an array source, or NULL for other datasets. */
const void *ember_array_data(const ember_ds *ds, size_t *n);

/* ---- HDF5 arrays with attributes (outputs of the programs) --------------- */

typedef struct {
    const char *name;   /* 1 to 4096 bytes, not "ember_unfinished" (the mark
                           of an unfinished write): else EMBER_EINVAL, before
                           anything is written; given twice, the last wins */
    ember_scalar kind;  /* EMBER_I64, EMBER_U64 or EMBER_F64 */
    double f;           /* the value, for F64 */
    int64_t i;          /* ... for I64 and U64 */
    const char *str;    /* non-NULL: a string attribute (kind ignored),
                           written as variable-length UTF-8 */
} ember_h5_attr;

/* Writes an array of dims[0] x dims[1] (rank 1 or 2) numbers of one kind to
 * "file.h5:/path" (intermediate groups created; an existing dataset at the
 * path replaced; the file created unless it exists and truncate is 0), with
 * scalar attributes on it. A group (or any object but a dataset) at the
 * path is never replaced: EMBER_EINVAL, as for the root "/", a path with
 * an empty name or one through a dataset. Like ember_save_h5, it changes
 * a file whole or not at all (docs/formats.md): in a copy renamed over
 * it, or, a file that is not there or is truncated, in a new file renamed
 * to its name. The copy is read back before it is renamed: a damaged
 * file that takes the write and then does not show it, as written, is
 * EMBER_EFORMAT and stays as it was. */
int ember_h5_write_array(const char *spec, ember_scalar kind, const void *data,
                         int rank, const uint64_t *dims,
                         const ember_h5_attr *attrs, size_t nattrs,
                         int truncate, char *msg);

/* Sets attributes on an object of an existing HDF5 file: spec "file.h5"
 * (the root group) or "file.h5:/path" (a group or dataset). An attribute
 * of the same name is replaced. A file that carried ember's checksum
 * header is sealed again. Whole or not at all, as ember_h5_write_array. */
int ember_h5_write_attrs(const char *spec, const ember_h5_attr *attrs,
                         size_t nattrs, char *msg);

/* Declares file a scratch file of this process (on 1), or no longer (on
 * 0). ember's HDF5 writers change any other file through a copy renamed
 * over it, so that a kill leaves the file as it was or as changed; they
 * change a scratch file in place, without the copy, its lock and its
 * fsync. For a file the caller builds under a name of its own and renames
 * into place itself (as the programs do with their outputs): a kill while
 * it is written leaves it damaged. The name is matched as the writers are
 * given it. EMBER_OK, EMBER_EINVAL (an empty name) or EMBER_ENOMEM. */
int ember_h5_scratch(const char *file, int on);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_GRAPH_H */
