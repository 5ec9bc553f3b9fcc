/* plot.h: pictures through real renderers, run as optional tools.
 *
 * Convergence plots go through gnuplot (Debian: gnuplot-nox) and lineage
 * pictures through Graphviz's dot (Debian: graphviz). Neither is needed to
 * build or to run ember: a program asked for a picture looks the tool up in
 * PATH, and when it is missing says which package to install and returns
 * exit status 2, before any work is done.
 *
 * The tools are run with fork/exec, never through a shell: the script or
 * DOT text goes to the tool's stdin, the picture comes back on its stdout
 * into NAME.tmp, renamed to NAME once the tool succeeded and wrote an SVG.
 * No path is ever put into a command line or a gnuplot script, so no file
 * name can inject anything.
 *
 * Functions return an exit status (0, 1, 2) after printing any problem on
 * stderr as "<prog>: ...". Not thread-safe (main thread only).
 */
#ifndef EMBER_PLOT_H
#define EMBER_PLOT_H

#include "cli.h"

/* 0 when `tool` ("gnuplot", "dot") is an executable in PATH; otherwise
 * a usage error (ember_cli_usage_error: "<prog>: --<flag> needs <tool>:
 * apt-get install <package>", once under mpirun when called from the
 * program's check) and 2. Call before the work, so a missing tool costs
 * nothing. */
int ember_plot_need(const ember_cli *cli, const char *flag, const char *tool,
                    const char *package);

/* Draws the convergence of a run as an SVG at out (".svg"), from src: a
 * --metrics JSON-lines file, a checkpoint directory (its newest loop
 * checkpoint that verifies, whose "history" array records the run), or one
 * loop checkpoint file. Top panel: the residual, inertia or other value per
 * iteration, on a log scale when all values are positive; points where a
 * checkpoint was written; dashed vertical lines where the run was resumed.
 * Bottom panel: compute seconds per iteration. 2 for a missing or bad
 * source (naming the file and line), 1 when gnuplot fails. */
int ember_plot_convergence(ember_ctx *ctx, const char *prog, const char *src,
                           const char *out);

/* The checkpoint files of dir, as "dir/name": ckpt-*.h5, and unless
 * loop_only ds-*.h5 and a stream's state snapshots (N.h5, in the state
 * directory of its checkpoint location); sorted by name (so by iteration;
 * snapshots by version), newest first when asked. *n may be 0. -1 with errno set when dir cannot be read or memory
 * runs out (then nothing is returned). Free each name and the array. */
int ember_list_checkpoint_files(const char *dir, int loop_only, int newest_first,
                                char ***out, size_t *n);

/* Renders DOT text (ember_lineage_dot) as an SVG at out with dot -Tsvg. */
int ember_plot_dot(const char *prog, const char *dot, const char *out);

#endif /* EMBER_PLOT_H */
