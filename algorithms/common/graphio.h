/* graphio.h: what the graph programs (ember-pagerank, -cc, -sssp) share
 * besides the command line: a per-vertex dataset over a caller array, and
 * writing one value per vertex as CSV or HDF5.
 */
#ifndef EMBER_GRAPHIO_H
#define EMBER_GRAPHIO_H

#include <ember.h>
#include <ember/graph.h>

#include "cli.h"

/* A dataset of g->n values of kind over values (borrowed: the caller keeps
 * it alive and may rewrite it between actions), partitioned in vertex
 * ranges of about equal work (edges and vertices, ember_graph_partition), named name. */
int ember_cli_vertex_dataset(ember_ds **out, ember_ctx *ctx, const ember_graph *g,
                             size_t partitions, ember_scalar kind, void *values,
                             const char *name, char *msg);

/* --format's value resolved for input: "auto" becomes the name of the
 * format the input's name picks (el, mtx or h5), so that the run's
 * parameters record how the input is read (a checkpoint of g.el resumed on
 * a copy of the same bytes named g.mtx would otherwise pass as the same
 * run). Returns the format, or -1 for an unknown name (*format unchanged). */
int ember_cli_graph_format(const char **format, const char *input);

/* The graph programs' checks of --input and --format (in their
 * ember_cli_program.check): --input given, --format one of el, mtx, h5
 * (weighted: not h5, which holds no weights), and "auto" resolved as
 * ember_cli_graph_format does. EMBER_CLI_RUN, or ember_cli_usage_error's
 * status. */
int ember_cli_graph_args(ember_cli *cli, const char **format, int weighted);

/* The partitions of a program's per-vertex dataset values (after a start
 * or a restore): *off (parts + 1 entries, freed with ember_free on ctx)
 * and *parts. A dataset of another length than g->n vertices is
 * EMBER_ELENGTH naming what it holds; a restored partitioning other than
 * the loaded one, where this rank holds only its rows (a graph loaded with
 * owned_rows on several MPI ranks), is EMBER_EMISMATCH naming
 * --partitions. Collective. */
int ember_cli_vertex_parts(uint64_t **off, size_t *parts, ember_ctx *ctx,
                           const ember_graph *g, ember_ds *values, const char *what,
                           char *msg);

/* Writes values (g->n of kind, indexed by label: the degree order undone)
 * to cli->output: for .csv/.txt, a "vertex,<column>" header and one line a
 * vertex with its original id (floats as %.17g); otherwise HDF5
 * <out>:/<dataset> with attrs, plus /ids (the original ids) when the graph
 * was relabelled, and the provenance attributes on the root
 * (ember_cli_write_provenance, attrs as its extra). */
int ember_cli_write_vertex_values(const ember_cli *cli, const ember_graph *g,
                                  const char *column, const char *dataset,
                                  ember_scalar kind, const void *values,
                                  const ember_h5_attr *attrs, size_t nattrs,
                                  char *msg);

/* Notes on loop (ember_loop_note_array) the vertex id of each internal
 * vertex number of g, as "vertex_ids" (g->n of i32 when every id fits,
 * else u64): a checkpoint's values,
 * stored in the internal (degree) order, then map to vertex ids without
 * ember. *ids is malloc'd for it; free it after ember_loop_destroy.
 * Without --checkpoint-dir there is no checkpoint to note them in: *ids
 * is NULL and nothing is noted. */
int ember_cli_note_vertex_ids(const ember_cli *cli, ember_loop *loop,
                              const ember_graph *g, uint64_t **ids);

#endif /* EMBER_GRAPHIO_H */
