/* ember-convert: an edge list or a Matrix Market file to ember's HDF5 CSR.
 *
 *   ember-convert IN OUT.h5 [--format el|mtx|h5] [--undirected] [--relabel]
 *
 * The CSR keeps rows by source, sorted and without duplicates; with
 * --relabel the original ids go to /csr/ids. It reports the read
 * throughput, since it is mostly a reader.
 */
#include <ember.h>
#include <ember/graph.h>

#include "cli.h"
#include "outputs.h"

#include <inttypes.h>
#include <string.h>

static const char *format = "auto";
static int undirected = 0, relabel = 0;

static const ember_cli_opt options[] = {
    {"format", EMBER_CLI_STR, &format, 0, 0, 0, NULL, "el|mtx|h5",
     "input format (default: from the extension)"},
    {"undirected", EMBER_CLI_FLAG, &undirected, 0, 0, 0, NULL, NULL,
     "store every edge in both directions"},
    {"relabel", EMBER_CLI_FLAG, &relabel, 0, 0, 0, NULL, NULL,
     "map arbitrary ids to 0..n-1 (ascending); keep them in /csr/ids"},
    {0}};

static const ember_cli_program program = {
    .name = "ember-convert",
    .summary = "Converts an edge list (.el, .txt: '#' comments, two ids a line) or a\n"
               "Matrix Market coordinate file (.mtx) to ember's HDF5 CSR (docs/formats.md).",
    .usage = "IN OUT.h5 [options]",
    .examples = "  ember-convert data/karate.el karate.h5\n"
                "  ember-convert --undirected data/karate.el karate-both.h5\n"
                "  ember-convert --relabel data/dangling.el dense.h5\n",
    .extra = options,
    .omit = EMBER_CLI_NO_LOOP | EMBER_CLI_NO_SEED | EMBER_CLI_NO_PARTITIONS,
    .max_positional = 2,
};

int main(int argc, char **argv)
{
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &program, argc, argv);
    if (rc != EMBER_CLI_RUN)
        return rc;
    /* IN and OUT as arguments, or as --input and --output, or mixed: the
     * arguments fill what the options leave, in order */
    if (cli.nargs + (cli.input != NULL) + (cli.output != NULL) > 2)
        return ember_cli_usage_error(&cli, "IN or OUT.h5 given twice: as an argument and "
                                     "as --input or --output (see --help)");
    int next = 0;
    const char *in = cli.input ? cli.input : next < cli.nargs ? cli.args[next++] : NULL;
    const char *out = cli.output ? cli.output : next < cli.nargs ? cli.args[next++] : NULL;
    if (!in || !out)
        return ember_cli_usage_error(&cli, "give IN and OUT.h5 (see --help)");
    int f = ember_graph_format_parse(format);
    if (f < 0)
        return ember_cli_usage_error(&cli, "--format: '%s' is not one of el, mtx, h5",
                                     format);
    if (ember_cli_has_suffix(out, ".csv") || ember_cli_has_suffix(out, ".txt") ||
        ember_cli_has_suffix(out, ".el") || ember_cli_has_suffix(out, ".mtx"))
        return ember_cli_usage_error(&cli, "%s: ember-convert writes ember's HDF5 CSR, "
                                     "not text; name the output .h5", out);
    cli.input = in; /* the positional IN: hashed for the provenance (as
                       every program's input), and the output check */
    cli.output = out;
    char tmp[4096];
    if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
        return rc; /* before the load, not after */
    if (ember_cli_tmp_name(out, tmp, sizeof tmp))
        return ember_cli_usage_error(&cli, "--output %s: name too long", out);
    char msg[EMBER_MSG_SIZE] = "";
    ember_ctx *ctx = NULL;
    ember_graph *g = NULL;
    if (f == EMBER_GRAPH_AUTO) /* by the name given: the load reads a descriptor */
        f = ember_graph_format_of(in);
    ember_graph_opts go = {.format = (ember_graph_format)f, .undirected = undirected,
                           .relabel = relabel};
    rc = ember_cli_ctx(&ctx, &cli, msg);
    if (!rc)
        rc = ember_graph_load(&g, ctx, ember_cli_input_load(&cli, "input", in), &go, msg);
    if (!rc) /* it read the file fingerprinted for the provenance */
        rc = ember_cli_inputs_unchanged(&cli, msg);
    if (!rc && !cli.quiet) /* the run's timings: stderr */
        fprintf(stderr, "ember-convert: %s: read %.1f MB in %.3f s (%.0f MB/s), CSR built "
                        "in %.3f s\n",
                in, (double)g->input_bytes / 1e6, g->read_seconds,
                (double)g->input_bytes / 1e6 / (g->read_seconds > 0 ? g->read_seconds : 1e-9),
                g->build_seconds);
    if (!rc)
        rc = ember_graph_save_h5(g, tmp, msg);
    static const char *const format_names[] = {"auto", "el", "mtx", "h5"};
    ember_graph_format read = (ember_graph_format)f;
    ember_h5_attr at[] = {{"input_format", 0, 0, 0, format_names[read]},
                          {"undirected", EMBER_I64, 0, undirected, NULL},
                          {"relabel", EMBER_I64, 0, relabel, NULL}};
    if (!rc)
        rc = ember_cli_write_provenance(&cli, tmp, NULL, at, 3, msg);
    rc = ember_cli_publish(rc, tmp, out, msg);
    if (!rc) /* what was written: a result, on stdout */
        printf("ember-convert: %s: %" PRIu64 " vertices, %" PRIu64 " edges\n", out, g->n,
               g->m);
    ember_graph_free(&g);
    rc = ember_cli_exit(&cli, rc, msg); /* settled: the teardown changes nothing */
    ember_ctx_destroy(&ctx);
    return rc;
}
