/* fuzz_cli.c: the programs' command-line values (algorithms/common/cli.c,
 * cli_loop.c) and the "file.h5:/dataset" split the HDF5 readers use
 * (ember__h5_split_spec, src/h5io.c).
 *
 * Input: one byte of options, then the text.
 *   bits 0-1  what reads it:
 *             0  ember_cli_parse_duration (--deadline: SLURM's MM, MM:SS,
 *                HH:MM:SS, D-HH[:MM[:SS]], or 90s, 30m, 2h, 1.5d) and
 *                ember_cli_decimal (the strict decimal check before strtod)
 *             1  an output or input spec: ember_cli_output_file and
 *                ember__h5_split_spec, which must cut it at the same ":/"
 *             2, 3  a whole command line: the text split at NUL bytes into
 *                arguments (at most 32) for ember_cli_parse, with the
 *                common loop flags and one option of each kind
 * The text ends at the input's end (a NUL is added), or for 0 and 1 at its
 * first NUL, as an argument would. A spec holding a newline once gave a
 * message of two lines (the fuzz run of 2026-12-07); messages are one
 * line now, which fuzz_check_msg holds them to.
 *
 * What must hold: a duration read is finite, above 0 and no more than the
 * forms allow (10^9 days and a day); a number with the unit "s" is what
 * strtod reads; a text ember_cli_decimal passes is read whole by strtod.
 * Both spec splitters agree on the file whenever the HDF5 one accepts the
 * spec. A command line gives EMBER_CLI_RUN, 0 (--help, --version) or 2,
 * and a run's values are within the ranges the flags document (--threads
 * 1..4096, --partitions up to 2^24, --keep up to 10^6, iterations and
 * --stop-at up to 2^62, --tolerance 0..1e300, --deadline above 0, ...),
 * with the checkpoint flags only beside --checkpoint-dir.
 */
#include "fuzz.h"

#include "cli.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- durations ------------------------------------------------------------- */

static void duration(const char *s)
{
    double secs = -7;
    int rc = ember_cli_parse_duration(s, &secs);
    if (rc != 0 && rc != -1)
        fuzz_fail("parse_duration returned neither 0 nor -1", s);
    if (rc == 0) {
        /* the unit form: at most 1e9 days; SLURM's: 999999999-23:59:59 */
        if (!isfinite(secs) || !(secs > 0) || secs > 1e9 * 86400 + 86400)
            fuzz_fail("a duration read out of its range", s);
        size_t n = strlen(s);
        if (n >= 2 && s[n - 1] == 's' && strtod(s, NULL) != secs)
            fuzz_fail("a duration in seconds that is not its number", s);
        /* whole seconds print back as a number with a unit that reads the same */
        if (secs == floor(secs) && secs < 1e9) {
            char again[64];
            double back = -1;
            snprintf(again, sizeof again, "%.0fs", secs);
            if (ember_cli_parse_duration(again, &back) != 0 || back != secs)
                fuzz_fail("a duration that does not read back", s);
        }
    } else if (secs != -7) {
        fuzz_fail("a refused duration wrote its result", s);
    }
    size_t n = strlen(s);
    if (ember_cli_decimal(s, s + n)) {
        char *end;
        strtod(s, &end);
        if (end != s + n)
            fuzz_fail("a decimal that strtod does not read whole", s);
    }
}

/* ---- specs ------------------------------------------------------------------ */

static void spec(const char *s)
{
    char file[4096], dataset[1024], out_file[4096], msg[EMBER_MSG_SIZE];
    int rc = ember__h5_split_spec(s, file, sizeof file, dataset, sizeof dataset, msg);
    fuzz_check_msg(rc, msg, "ember__h5_split_spec");
    const char *cut = ember_cli_output_file(s, out_file, sizeof out_file);
    if (cut && (cut < s || cut >= s + strlen(s) || strncmp(cut, ":/", 2) != 0))
        fuzz_fail("ember_cli_output_file cut the spec outside a \":/\"", s);
    if (rc != EMBER_OK)
        return;
    if (!file[0])
        fuzz_fail("a spec split into an empty file name", s);
    if (dataset[0] && dataset[0] != '/')
        fuzz_fail("a dataset path that does not start at the root", s);
    if (strlen(s) < sizeof out_file && strcmp(file, out_file) != 0)
        fuzz_fail("the output spec and the HDF5 readers name different files", s);
}

/* ---- a whole command line -------------------------------------------------- */

static uint64_t opt_count;
static int64_t opt_offset;
static double opt_rate;
static int opt_mode;
static const char *opt_name;
static int opt_flag;

static const ember_cli_opt extra[] = {
    {"count", EMBER_CLI_U64, &opt_count, 1, 1000, EMBER_CLI_RANGE, NULL, "N", "count"},
    {"offset", EMBER_CLI_I64, &opt_offset, -5, 5, EMBER_CLI_OPEN_MIN, NULL, "K", "offset"},
    {"rate", EMBER_CLI_F64, &opt_rate, 0, 1, EMBER_CLI_OPEN_MAX | EMBER_CLI_FINGERPRINT,
     NULL, "R", "rate"},
    {"mode", EMBER_CLI_CHOICE, &opt_mode, 0, 0, 0, "fast|exact|auto", NULL, "mode"},
    {"name", EMBER_CLI_STR, &opt_name, 0, 0, 0, NULL, "S", "name"},
    {"flag", EMBER_CLI_FLAG, &opt_flag, 0, 0, 0, NULL, NULL, "flag"},
    {0}};

static const ember_cli_program prog = {
    .name = "ember-fuzz",
    .summary = "the fuzz harness's program",
    .extra = extra,
    .default_iterations = 100,
    .default_tolerance = 1e-6,
    .value_name = "residual",
    .max_positional = 1,
};

static void command_line(char *text, size_t len, const char *shown)
{
    char *argv[34];
    int argc = 0;
    argv[argc++] = "ember-fuzz";
    for (size_t i = 0; i <= len && argc < 33;) {
        argv[argc++] = text + i;
        i += strlen(text + i) + 1;
    }
    argv[argc] = NULL;
    opt_count = 7;
    opt_offset = 0;
    opt_rate = 0.5;
    opt_mode = 0;
    opt_name = NULL;
    opt_flag = 0;
    ember_cli cli;
    int rc = ember_cli_parse(&cli, &prog, argc, argv);
    if (rc != EMBER_CLI_RUN && rc != EMBER_EXIT_OK && rc != EMBER_EXIT_USAGE)
        fuzz_fail("ember_cli_parse returned an unknown status", shown);
    if (rc != EMBER_CLI_RUN)
        return;
    if (cli.iterations > (UINT64_C(1) << 62) || cli.stop_at > (UINT64_C(1) << 62))
        fuzz_fail("--iterations or --stop-at beyond 2^62", shown);
    if (!isfinite(cli.tolerance) || cli.tolerance < 0 || cli.tolerance > 1e300)
        fuzz_fail("--tolerance out of [0, 1e300]", shown);
    if (cli.threads < 0 || cli.threads > 4096)
        fuzz_fail("--threads out of 1..4096", shown);
    if (cli.partitions > ((size_t)1 << 24))
        fuzz_fail("--partitions beyond 2^24", shown);
    if (cli.keep < 0 || cli.keep > 1000000)
        fuzz_fail("--keep out of 1..10^6", shown);
    if (!(cli.checkpoint_seconds >= 0 && cli.checkpoint_seconds <= 1e9))
        fuzz_fail("--checkpoint-seconds out of [0, 1e9]", shown);
    if (!(cli.deadline_seconds >= 0) || !isfinite(cli.deadline_seconds))
        fuzz_fail("--deadline negative or not finite", shown);
    if (cli.nargs < 0 || cli.nargs > prog.max_positional)
        fuzz_fail("more positional arguments than the program takes", shown);
    if (cli.checkpoint_dir ? !cli.checkpoint_dir[0]
                           : (cli.checkpoint_every || cli.checkpoint_seconds > 0 ||
                              cli.keep || cli.deadline_seconds > 0 || cli.stop_at ||
                              cli.force_resume || cli.checkpoint_async ||
                              cli.checkpoint_sync))
        fuzz_fail("checkpoint flags without a checkpoint directory", shown);
    if (opt_count < 1 || opt_count > 1000)
        fuzz_fail("--count out of [1, 1000]", shown);
    if (opt_offset <= -5 || opt_offset > 5)
        fuzz_fail("--offset out of (-5, 5]", shown);
    if (!(opt_rate >= 0 && opt_rate < 1))
        fuzz_fail("--rate out of [0, 1)", shown);
    if (opt_mode < 0 || opt_mode > 2)
        fuzz_fail("--mode out of its choices", shown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    int mode = data[0] & 3;
    size_t len = size - 1;
    char *text = malloc(len + 1);
    if (!text)
        abort();
    memcpy(text, data + 1, len);
    text[len] = '\0';
    if (mode == 0)
        duration(text);
    else if (mode == 1)
        spec(text);
    else
        command_line(text, len, text);
    free(text);
    return 0;
}
