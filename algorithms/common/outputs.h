/* outputs.h: what every program's output file carries (issue 10), so that
 * a reader without ember can tell what made it: provenance attributes on
 * the root of an HDF5 output, and the one rule for choosing CSV or HDF5 by
 * the output's name.
 */
#ifndef EMBER_OUTPUTS_H
#define EMBER_OUTPUTS_H

#include "cli.h"

#include <ember/graph.h>

#include <limits.h>

/* 1 when an output named path is CSV text (.csv or .txt, any case), 0 for
 * anything else (HDF5). A "file.h5:/dataset" spec is judged by its file. */
int ember_cli_output_is_csv(const char *path);

/* Writes the provenance attributes on the root group of the HDF5 file
 * `file` (existing; a checksum header is renewed), or, for a
 * "file.h5:/dataset" spec, on that dataset (so that a file gathering the
 * outputs of several programs keeps each one's provenance with its own
 * data instead of one root mixing them):
 *   program, ember_version, created (UTC, ISO 8601; SOURCE_DATE_EPOCH,
 *   when set, is used instead of the clock, so that a rerun gives the same
 *   bytes), parameters (ember_cli_parameters: what changes results; for
 *   a program without a loop, without partitions= when it has no
 *   --partitions, and with each of extra as a name=value line);
 *   for each input: <role> (its absolute path) and, when hashed by
 *   ember_cli_prepare, <role>_bytes and <role>_xxh3 (16 hex digits, as in
 *   the checkpoint's parameters); `input` names an input that is not
 *   hashed (its path alone is recorded), NULL for none;
 *   for a program with a loop: iterations, converged and the value under
 *   its value_name (residual, inertia) unless extra has that name;
 *   then extra (program-specific: damping, k, components).
 * Strings are variable-length UTF-8. 0 or an ember status, msg filled. */
int ember_cli_write_provenance(const ember_cli *cli, const char *file,
                               const char *input, const ember_h5_attr *extra,
                               size_t nextra, char *msg);

/* The same attributes, into p (a.n of them in a, the strings they point
 * to kept in p), for a write that puts them on a dataset together with
 * its data: one change of a file rather than two (a kill between two left
 * the data without them). file names the output in a message. */
#define EMBER_CLI_MAX_ATTRS 64
typedef struct {
    ember_h5_attr a[EMBER_CLI_MAX_ATTRS];
    size_t n;
    char names[8][64]; /* <role>_bytes, <role>_xxh3 */
    char hex[4][24];
    size_t nnames, nhex;
    char parameters[8192], real[1][PATH_MAX], created[32];
} ember_cli_provenance;
int ember_cli_provenance_attrs(const ember_cli *cli, const char *input,
                               const ember_h5_attr *extra, size_t nextra,
                               ember_cli_provenance *p, const char *file, char *msg);

#endif /* EMBER_OUTPUTS_H */
