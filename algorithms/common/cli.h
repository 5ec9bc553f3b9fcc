/* cli.h: the command line every ember algorithm program shares (issue 4).
 *
 * One parser (getopt_long) for the common flags plus a table of the
 * program's own options, strict numbers with range checks, and the pieces
 * around an iterative run: the context and loop made from the flags, the
 * metrics JSON-lines file, the progress line on stderr, and exit codes.
 *
 * A program's main reads like this:
 *
 *     static double damping = 0.85;
 *     static const ember_cli_opt extra[] = {
 *         {"damping", EMBER_CLI_F64, &damping, 0, 1, EMBER_CLI_OPEN_MAX |
 *          EMBER_CLI_FINGERPRINT, NULL, "D", "damping factor (default 0.85)"},
 *         {0}};
 *     static const ember_cli_program prog = {
 *         .name = "ember-pagerank", .summary = "PageRank ...",
 *         .extra = extra, .default_iterations = 100,
 *         .default_tolerance = 1e-6, .value_name = "residual",
 *         .examples = "  ember-pagerank --input g.el --output r.h5\n"};
 *     ember_cli cli;
 *     int rc = ember_cli_parse(&cli, &prog, argc, argv);
 *     if (rc != EMBER_CLI_RUN)
 *         return rc;                       (--help, --version, bad usage)
 *     if ((rc = ember_cli_prepare(&cli)) != EMBER_CLI_RUN)
 *         return rc;                       (bad paths: exit 2, no work done)
 *     ... ember_cli_ctx(), load input, ember_cli_loop(), bind state ...
 *     rc = ember_cli_iterate(&cli, loop, step, &state, msg);
 *     ... write output ...
 *     return ember_cli_exit(&cli, rc, msg);
 *
 * Exit codes (stable, scripts depend on them): 0 done; 2 bad usage or bad
 * input (the message names the file, the line and the problem); 75
 * (EMBER_EXIT_RESUMABLE) stopped by a signal or the deadline (checkpointed
 * when the loop was running), run again to resume; 1 anything else.
 *
 * Not thread-safe; everything here runs on the program's main thread. The
 * parser keeps pointers into argv (argv outlives the run).
 */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include <ember.h>

#include <stdint.h>
#include <stdio.h>

#define EMBER_EXIT_OK 0
#define EMBER_EXIT_FAILURE 1
#define EMBER_EXIT_USAGE 2
/* EMBER_EXIT_RESUMABLE (75) comes from ember/loop.h. */

/* ember_cli_parse's "go on" result: any other value is an exit status. */
#define EMBER_CLI_RUN (-1)

/* What --version calls this build. */
#ifdef EMBER_MPI
#define EMBER_CLI_BUILD "MPI build"
#else
#define EMBER_CLI_BUILD "serial build"
#endif

/* ---- the program's own options ------------------------------------------ */

typedef enum {
    EMBER_CLI_FLAG = 1,   /* no argument; dest is int*, set to 1 */
    EMBER_CLI_I64 = 2,    /* dest is int64_t* */
    EMBER_CLI_U64 = 3,    /* dest is uint64_t* (a leading '-' is refused) */
    EMBER_CLI_F64 = 4,    /* dest is double* (finite only: no nan, inf) */
    EMBER_CLI_STR = 5,    /* dest is const char** (points into argv) */
    EMBER_CLI_CHOICE = 6  /* dest is int*: index into choices "a|b|c" */
} ember_cli_kind;

/* Option flags. */
#define EMBER_CLI_RANGE 1u       /* check min <= v <= max */
#define EMBER_CLI_OPEN_MAX 2u    /* ... and v < max instead (implies RANGE) */
#define EMBER_CLI_OPEN_MIN 4u    /* ... and v > min instead (implies RANGE) */
#define EMBER_CLI_FINGERPRINT 8u /* the value changes results: it goes in
                                    the loop's parameters, so a resume with
                                    another value is refused */
#define EMBER_CLI_REQUIRED 16u   /* must be given */
#define EMBER_CLI_FP_NOT_ZERO 32u /* with FINGERPRINT: a value of zero (the
                                    first choice; the default, which does
                                    what the program did before the option
                                    came) is left out of the parameters, so
                                    older checkpoints still resume */

typedef struct {
    const char *name;     /* long name without "--"; NULL ends the table */
    ember_cli_kind kind;
    void *dest;           /* holds the default on entry; see the kinds */
    double min, max;      /* numeric range, with EMBER_CLI_RANGE etc. */
    unsigned flags;
    const char *choices;  /* EMBER_CLI_CHOICE: "random|kmeans++" */
    const char *metavar;  /* "D" in "--damping D"; NULL: "VALUE" */
    const char *help;     /* one line for --help */
} ember_cli_opt;

/* Groups of common flags a program can leave out (tools have no loop). */
#define EMBER_CLI_NO_LOOP 1u   /* --iterations --tolerance --checkpoint-*
                                  --keep --resume --metrics --verify */
#define EMBER_CLI_NO_INPUT 2u  /* --input */
#define EMBER_CLI_NO_OUTPUT 4u /* --output */
/* Common flags a program leaves out because they mean nothing to it: a
 * program accepts only the flags it uses (an unknown one exits 2). */
#define EMBER_CLI_NO_SEED 8u         /* --seed: nothing random */
#define EMBER_CLI_NO_PARTITIONS 16u  /* --partitions: no partitioned data */
#define EMBER_CLI_NO_THREADS 32u     /* --threads: nothing parallel */
#define EMBER_CLI_NO_ITERATIONS 64u  /* --iterations: the count is its own
                                        option (ember-maps --maps) */
#define EMBER_CLI_NO_TOLERANCE 128u  /* --tolerance: runs to a fixpoint */
#define EMBER_CLI_NO_QUIET 256u      /* --quiet: nothing on stderr to silence */

/* What a step's value is, for the progress line (ember_cli_program.
 * value_flags). */
#define EMBER_CLI_VALUE_COUNT 1u /* a whole count (changed labels): printed
                                    as one, never as 2.500e+01 */
#define EMBER_CLI_VALUE_ETA 2u   /* the run does every --iterations unless
                                    the value falls to --tolerance: the line
                                    shows an ETA from the iterations left
                                    and, with --tolerance > 0, from the
                                    value's geometric trend toward it
                                    (without the flag, no ETA: a run that
                                    stops at a fixpoint cannot tell) */

/* Common values that go in the loop's parameters besides the program's
 * EMBER_CLI_FINGERPRINT options. The inputs (by content, see
 * ember_cli_prepare) and --partitions always do (the partitioning decides
 * the order of floating-point reductions), and so does --tolerance where
 * the program has it: a run resumed under another stopping rule may have
 * gone past the iteration where that rule stops. (--iterations does not:
 * a run may be resumed to go on further, and ember_cli_iterate refuses a
 * checkpoint already past it.) */
#define EMBER_CLI_FP_SEED 1u

typedef struct ember_cli ember_cli;

typedef struct {
    const char *name;        /* "ember-pagerank": messages, --version, the
                                checkpoint's program attribute */
    const char *summary;     /* one paragraph for --help */
    const char *usage;       /* after the name: "--input FILE [options]";
                                NULL: "[options]" */
    const char *examples;    /* lines for --help, each "  ember-... \n" */
    const ember_cli_opt *extra; /* the program's options, or NULL */
    unsigned omit;           /* EMBER_CLI_NO_* */
    unsigned fingerprint;    /* EMBER_CLI_FP_* */
    uint64_t default_iterations;
    const char *count_flag;  /* with EMBER_CLI_NO_ITERATIONS: the program's
                                option that sets cli->iterations ("--maps"),
                                for messages */
    double default_tolerance;
    const char *value_name;  /* what a step reports: "residual", "inertia" */
    unsigned value_flags;    /* EMBER_CLI_VALUE_* */
    int max_positional;      /* arguments after the options (0: none) */
    const char *arithmetic;  /* names the step's definition when it is not
                                the first one (NULL): the order of its
                                floating-point sums, or its rule (ember-cc's
                                jump); recorded in the parameters, so a
                                checkpoint made another way is refused, not
                                resumed into a result no run gives */
    const char *tolerance_zero; /* what --tolerance 0 does, for --help (NULL:
                                   "run all iterations") */
    const char *exit_status; /* --help's closing "exit status: ..." text,
                                for a program whose statuses are not the
                                loop programs' (NULL: theirs) */
    int (*check)(ember_cli *cli); /* the program's own checks of what was
                                parsed, by ember_cli_parse once the
                                options are read: EMBER_CLI_RUN or an exit
                                status (ember_cli_usage_error's); under
                                mpirun a usage error there is printed once,
                                by rank 0, as the parse's own (NULL: none) */
} ember_cli_program;

/* ---- the parsed command line ------------------------------------------- */

/* The history array (see ember_cli.history). */
#define EMBER_CLI_HISTORY_ROWS 1024
#define EMBER_CLI_HISTORY_COLS 4
#define EMBER_CLI_HIST_CHECKPOINT 1.0 /* a checkpoint was written after it */
#define EMBER_CLI_HIST_RESUMED 2.0    /* first iteration after a resume */

struct ember_cli {
    const ember_cli_program *prog;
    const char *input;       /* NULL when not given */
    const char *output;
    uint64_t iterations;
    double tolerance;
    int threads;             /* 0: OMP_NUM_THREADS or all cores */
    size_t partitions;       /* 0: from the data */
    const char *checkpoint_dir; /* NULL: no checkpoints */
    const char *arithmetic_more; /* set by a program before its loop, when the
                                    input takes its arithmetic past the
                                    usual one: a parameter line
                                    "arithmetic.more=" (NULL: none) */
    uint64_t checkpoint_every;  /* 0: off */
    double checkpoint_seconds;  /* 0: off */
    int keep;                /* checkpoints kept (0: the loop's default, 2) */
    ember_resume resume;
    int force_resume;        /* --force-resume */
    int checkpoint_async;    /* --checkpoint-async */
    int checkpoint_sync;     /* --checkpoint-sync; neither: asynchronous on
                                one process, synchronous under MPI */
    double deadline_seconds; /* --deadline, from the start (0: none) */
    uint64_t stop_at;        /* --stop-at N: after iteration N, stop as a
                                signal would (checkpoint, 75); 0: none */
    uint64_t seed;           /* default 42 */
    const char *metrics;     /* NULL: no metrics file */
    int quiet;
    int quiet_asked;         /* --quiet as given (quiet is forced on MPI
                                ranks other than 0) */
    int verify;
    char forced[EMBER_MSG_SIZE]; /* the resume by force this result carries
                                (ember_loop_forced's note), or "": the
                                outputs' forced_resume attribute */
    int seed_set;            /* 1 when the flag was given */
    int iterations_set;
    int tolerance_set;
    char **args;             /* positional arguments (into argv) */
    int nargs;
    double start_wall;       /* wall-clock seconds when ember_cli_parse ran:
                                --deadline counts from here */
    int rank;                /* MPI build under mpirun/srun: this process's
                                rank in MPI_COMM_WORLD; else 0 */
    int ranks;               /* ... and the number of ranks; else 1. Only
                                rank 0 writes --metrics, progress, outputs
                                (docs/mpi.md) */

    /* Inputs identified by content (ember_cli_add_input, ember_cli_prepare):
     * what goes in the run's fingerprint is the size and the XXH3-64 of
     * the file's bytes; the path is recorded as information only. */
    struct {
        const char *role;    /* "input", or the option's name ("init") */
        const char *arg;     /* as given (into argv) */
        char path[4096];     /* the file, absolute (PATH_MAX) */
        char dataset[1024];  /* "file.h5:/points": "/points" ("" if none) */
        uint64_t bytes;
        uint64_t xxh3;
        uint64_t stamp[5];   /* device, inode, size, mtime and ctime (ns)
                                of the file hashed */
        int hashed;          /* filled by ember_cli_prepare */
        int fd;              /* the file hashed, open (-1: none) */
        ember_file_lease lease; /* held from before the hash to the end of
                                   the load, where one is granted */
        char load[1100];     /* what the loader opens: the file hashed, by
                                its descriptor (/proc/self/fd/N), then
                                ":" and the dataset when there is one */
    } inputs[4];
    int ninputs;
    struct {                 /* outputs besides --output and --metrics */
        const char *role, *path;
    } more_outputs[2];
    int nmore_outputs;

    /* The outputs ember_cli_check_output has passed, so that two flags
     * cannot name one file. */
    struct {
        const char *flag;
        char path[4096];     /* absolute, its directory resolved */
    } outputs[4];
    int noutputs;

    /* Filled by ember_cli_iterate, read by the program afterwards. */
    uint64_t iterations_done; /* the loop's count, restored ones included */
    double value;             /* the last step's residual / inertia */
    int64_t converged;        /* 1 when a step returned EMBER_DONE */
    double load_seconds;      /* set by the program (ember_cli_now()) */
    double compute_seconds;   /* iterations only, checkpoint writes excluded */
    double checkpoint_seconds_lost; /* what checkpoints cost the
                                 iterations: the loop's calls on this
                                 thread (ember_loop_stats.caller_seconds) */
    double checkpoint_write_seconds; /* this process's checkpoint writes,
                                 start to commit (in the background mode
                                 mostly beside the iterations) */

    char parameters[8192];    /* private: ember_cli_loop's copy */
    ember_ctx *ctx;           /* private: ember_cli_loop's, for the ranks */
    struct final_wait *final_wait; /* private: ember_cli_iterate's last
                                 iteration, for ember_cli_iterate_end */

    /* The run's history, bound to the loop as the f64 array "history", so
     * every checkpoint records the convergence so far (ember-inspect --plot
     * DIR draws it): history[0] rows used, history[1] stride, then rows of
     * EMBER_CLI_HISTORY_COLS: iteration (1-based count), value (residual or
     * inertia), seconds (compute), flags (EMBER_CLI_HIST_*). One row per
     * iteration up to EMBER_CLI_HISTORY_ROWS; past that every second row is
     * dropped and the stride doubles (a row when count % stride == 0, and
     * the first row after a resume). docs/checkpoint-format.md. */
    double history[2 + EMBER_CLI_HISTORY_COLS * EMBER_CLI_HISTORY_ROWS];
};

/* Parses argv. In the MPI build, when a launcher started more than one
 * rank (ember_cli_launched_ranks), it first initialises MPI
 * (MPI_THREAD_FUNNELED; finalised at exit) and fills rank and ranks;
 * ember_cli_ctx then gives the context MPI_COMM_WORLD, and ranks other
 * than 0 print neither results nor progress. Started alone, a program
 * makes no MPI call. Returns EMBER_CLI_RUN to go on, or the status main
 * should return: 0 after --help (or -h) or --version (printed on stdout),
 * 2 after a usage error (printed on stderr, naming the flag and the value;
 * a common flag the program leaves out is named as meaning nothing to it;
 * also
 * --checkpoint-every, --checkpoint-seconds, --keep or --resume require
 * without --checkpoint-dir, and an empty --checkpoint-dir). Defaults come
 * from the program and, for extra options, from *dest on entry.
 *
 * For a program with a loop (no EMBER_CLI_NO_LOOP), it first installs
 * handlers for SIGTERM, SIGINT and SIGUSR1 (one ignored at start stays
 * ignored): until a loop with a checkpoint directory takes them over
 * (ember_cli_loop), and again after it is destroyed, such a signal prints
 * one line and exits 75 at once: there is nothing to save while loading,
 * and the last checkpoint, if any, is intact. */
int ember_cli_parse(ember_cli *cli, const ember_cli_program *prog, int argc,
                    char **argv);

/* Registers one more input file, fingerprinted by content like --input
 * (kmeans --init FILE.csv). role is the option's name: when the option is
 * EMBER_CLI_FINGERPRINT, its parameter line becomes the file's size and
 * hash instead of its path. Call before ember_cli_prepare. Returns 0, or
 * EMBER_EXIT_USAGE after a message (too many inputs). */
int ember_cli_add_input(ember_cli *cli, const char *role, const char *path);
/* Registers one more output file of the program's (kmeans' centroids
 * file, ember-maps --lineage-svg), which ember_cli_prepare checks as it
 * checks --output (role names it in messages: "--ROLE PATH: ..."). Call
 * before ember_cli_prepare, from the program's check. Returns 0, or
 * EMBER_EXIT_USAGE after a message. */
int ember_cli_add_output(ember_cli *cli, const char *role, const char *path);

/* Everything that can be checked before the work, so that a bad path fails
 * at once with exit 2 instead of after hours (call right after parsing,
 * before loading):
 *   - --input and the added inputs exist, are regular files, can be read;
 *     each is read once, in full, for its size and XXH3-64 content hash
 *     (a "file.h5:/dataset" spec hashes the file; the dataset name is a
 *     parameter of its own);
 *   - --output and --metrics can be created: a temporary file beside
 *     each is created and removed; a directory, or a missing parent
 *     directory, is refused;
 *   - --checkpoint-dir is not empty and exists or can be created;
 *   - with --deadline, a timer for what is left of it: reached while
 *     loading, the program exits 75 at once.
 * Returns EMBER_CLI_RUN to go on, or EMBER_EXIT_USAGE after printing the
 * problem on stderr; on several ranks, on every rank when any stops (one
 * rank alone can see an input change while it hashes). Test hooks, for
 * tests only: EMBER_TEST_LOAD_DELAY=S makes it sleep S seconds at its end,
 * standing in for a slow load (signals and the deadline timer work as
 * during a real one), and with EMBER_TEST_LOAD_READY=P it first creates
 * the empty file P.<pid> (the inputs are hashed) and ends the sleep early
 * once a file P.go exists. */
int ember_cli_prepare(ember_cli *cli);

/* The output check of ember_cli_prepare alone, for tools whose output is
 * not --output: 0, or EMBER_EXIT_USAGE after a message naming `flag` (the
 * option's name, or "output"). Also refused: an output that is one of the
 * inputs (--input, the added ones, or cli->input when set), and an
 * output another flag already names (the same file
 * through any path: the directory is resolved, an existing file compared
 * by device and inode). */
int ember_cli_check_output(ember_cli *cli, const char *flag, const char *path);

/* Outputs appear whole or not at all: a program writes a temporary file
 * NAME.<20 hex digits>.tmp, a name of that write's own (the host's tag, the
 * pid and a count: ember_cli_tmp_name, 0, or -1 when the name is too long;
 * it removes the temporaries beside NAME of this host's dead processes,
 * which a SIGKILL left), then hands
 * the write's status to ember_cli_publish: 0 syncs the temporary to the
 * device, renames it to NAME and syncs the directory (a kill or a crash of
 * the machine leaves the previous file or the new one, never half of one,
 * nor an empty one after exit 0; two runs writing one output leave a whole
 * file of one of them), any other status removes the temporary and is
 * returned as it is. A failed sync or rename removes it too and says so in
 * msg, naming `path`. The name can be worked out by others (the sweep
 * needs the pid in it), so the temporary is always made exclusively and
 * never through a symbolic link: ember_cli_create for a text file (NULL
 * and errno when it cannot be made), the library's writers (a scratch
 * file) for HDF5. */
int ember_cli_tmp_name(const char *path, char *tmp, size_t size);
FILE *ember_cli_create(const char *tmp);
int ember_cli_publish(int status, const char *tmp, const char *path, char *msg);
/* fsync of path (a file, or with dir a directory): 0, or -1 and errno. A
 * directory whose file system cannot sync one (EINVAL) counts as synced. */
int ember_cli_sync(const char *path, int dir);
/* Closes a stream an output was written through: 0, or why it failed, an
 * errno (a write the stream had failed, or the close's own flush: a full
 * disk is ENOSPC, not "write failed"); EIO when none was recorded. */
int ember_cli_fclose(FILE *f);
/* The file of an output spec: "file.h5:/dataset" (HDF5 outputs) splits at
 * its last ":/", as the HDF5 layer splits it. Copies the file part into
 * file and returns the ":/..." rest, or NULL when there is none. */
const char *ember_cli_output_file(const char *spec, char *file, size_t size);

/* Parses a duration as SLURM's --time does: MM, MM:SS, HH:MM:SS, D-HH,
 * D-HH:MM, D-HH:MM:SS (whole numbers; a bare number is minutes), or a
 * decimal number with a unit: 90s, 30m, 2h, 1.5d (not 0x10s, which strtod
 * reads as 16 s). 0 and *out in seconds (> 0), or
 * -1 when s is none of those. */
int ember_cli_parse_duration(const char *s, double *out);

/* 1 when [s, end) is a plain decimal number: digits with at most one '.',
 * then perhaps an exponent (e, a sign, digits). strtod also reads hex
 * (0x10), inf and nan, and skips leading blanks: a value check after it
 * refuses those. */
int ember_cli_decimal(const char *s, const char *end);

struct option;
/* getopt_long returned '?' for arg: when arg gives a value to a long flag
 * of table that takes none (--quiet=1, or an abbreviation of it), that
 * flag's name, else NULL. opt is getopt_long's optopt (the flag's val
 * then). For programs with their own getopt_long loop, as ember_cli_parse
 * uses it. */
const char *ember_cli_flag_given_value(const struct option *table, const char *arg,
                                       int opt);

/* For a program that does not use ember_cli_parse (the stream): from now
 * until the library takes the signals over, SIGTERM, SIGINT and SIGUSR1
 * print `line` and exit 75 at once. */
void ember_cli_catch_early(const char *line);

/* Prints --help for prog on f. */
void ember_cli_usage(const ember_cli_program *prog, FILE *f);

/* Records a failing exit status the program has settled on and returns
 * it: a signal after that (before the loop takes the signals, or after it
 * is gone) exits with it, silently, instead of 75 with an interruption
 * line. Flushes stdout and stderr. ember_cli_usage_error and
 * ember_cli_exit call it; ember_cli_exit settles a success too, so a
 * program calls it once its outcome is complete, before tearing down (a
 * verification's failure settled first stands). Tests only:
 * EMBER_TEST_SETTLE_DELAY=S makes it sleep S seconds first. */
int ember_cli_settle(int status);
/* Prints "<name>: <fmt ...>" on stderr (one write; "<name> (rank R)" on
 * ranks other than 0) and returns EMBER_EXIT_USAGE, settled. */
int ember_cli_usage_error(const ember_cli *cli, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Under mpirun, the usage errors of the steps every rank takes alike
 * (parsing, ember_cli_prepare's checks): from ember_cli_hold_errors on,
 * ranks past 0 hold their line back, and ember_cli_release_errors, a
 * collective call, prints the held lines only when the ranks stopped on
 * different things (one rank alone, or other messages): the same line
 * from every rank is rank 0's alone. It returns failed (this rank's
 * status), or EMBER_EXIT_USAGE when another rank failed, rank 0 then
 * saying "another rank stopped on its <where>". On one process it only
 * returns failed. */
void ember_cli_hold_errors(const ember_cli *cli);
int ember_cli_release_errors(const ember_cli *cli, int failed, const char *where);

/* The canonical "name=value\n" lines of every value that changes results:
 * the inputs, partitions (unless the program takes no --partitions), the
 * EMBER_CLI_FINGERPRINT options, and the EMBER_CLI_FP_* ones. Paths are
 * written with \n, \r and \\ escaped. An input hashed by ember_cli_prepare is the lines
 * "<role>.bytes=N", "<role>.xxh3=<16 hex>" (and "<role>.dataset=/d" for an
 * HDF5 spec) plus "info.<role>.path=<absolute path>", which the loop
 * records but does not compare (ember_loop_opts.parameters): a moved copy
 * resumes, changed content is refused. An input not hashed (prepare not
 * called) is "input=<absolute path>". Written into buf (always
 * terminated); EMBER_ERANGE when it does not fit. */
int ember_cli_parameters(const ember_cli *cli, char *buf, size_t size);
/* A hash of what every rank of a job must have alike: the parameters
 * (inputs by content, not path) and the options that steer the run, but
 * not the paths of what rank 0 alone writes, the thread count or --quiet.
 * ember_cli_prepare compares it across ranks. */
uint64_t ember_cli_command_hash(const ember_cli *cli);

/* A context with --threads (and nothing else set: defaults). */
int ember_cli_ctx(ember_ctx **out, const ember_cli *cli, char *msg);

/* The number of ranks a launcher started this process among, from its
 * environment (Open MPI's OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE,
 * SLURM's SLURM_STEP_NUM_TASKS under srun), without MPI: 1 when none says
 * more; *var (var may be NULL) then names the variable that said it.
 * Streaming refuses to run under more than one; the serial build's loop
 * programs warn that each process runs a whole job of its own. */
int ember_cli_launched_ranks(const char **var);

/* A loop from the flags: --checkpoint-dir (created if missing; without it
 * the loop never checkpoints), --checkpoint-every, --checkpoint-seconds,
 * --keep, --resume, program name and ember_cli_parameters(). With a
 * directory but neither policy flag, it checkpoints every 60 seconds.
 * It also binds the scalars that ember_cli_iterate keeps, so a resumed run
 * knows it had converged: the last value under the program's value_name
 * ("residual", "inertia") and "converged" (format 1 checkpoints called
 * them cli_value and cli_converged; those still resume). The program binds
 * its own state after this call. */
int ember_cli_loop(ember_loop **out, ember_ctx *ctx, ember_cli *cli,
                   char *msg);

/* One iteration: computes iteration `iteration` (0-based) and reports its
 * residual or inertia in *value. Returns EMBER_OK to go on, EMBER_DONE when
 * this iteration converged (the loop stops after it), negative on error
 * (message in msg). */
typedef int (*ember_cli_step_fn)(uint64_t iteration, double *value, void *arg,
                                 char *msg);

/* EMBER_OK when every input ember_cli_prepare hashed is still the file it
 * hashed (device, inode, size and time stamps, and no writer let in while
 * its lease was held: the leases end here); else EMBER_EMISMATCH, msg
 * naming the input that was replaced or written since: what was
 * loaded may then not be what the fingerprint describes. ember_cli_iterate
 * checks it before the first iteration, after the program's load. On
 * several ranks it is collective: each checks its own view and all agree
 * on the first input any of them saw change. */
int ember_cli_inputs_unchanged(ember_cli *cli, char *msg);
/* The first input hashed that this process sees replaced or written since
 * (not collective), or -1. */
int ember_cli_input_changed(const ember_cli *cli);
/* What says a file is still the one hashed: device, inode, size, mtime
 * and ctime (ns); and whether input i still has the stamp taken at its
 * hash (its descriptor's file, else its path's). */
struct stat;
void ember_cli_stamp_of(const struct stat *st, uint64_t s[5]);
int ember_cli_input_same(const ember_cli *cli, int i);

/* What a program loads for input `role` ("input", "init"): the file
 * ember_cli_prepare hashed, through the descriptor it keeps, so that a
 * name re-pointed since (a symlink, a rename) cannot bring other bytes
 * than those fingerprinted; `arg` when that input was not hashed or the
 * descriptor's name (/proc) is not there. ember_cli_exit names the
 * user's file in a message, not the descriptor. A format told by the
 * file's name must be settled from arg (ember_cli_graph_format) before:
 * the descriptor's name has no extension. */
const char *ember_cli_input_load(const ember_cli *cli, const char *role, const char *arg);

/* Runs the loop: restores, then calls step until --iterations are done or
 * a step returns EMBER_DONE, checkpointing as the loop's policy says, and
 * starts the final checkpoint (ember_loop_finish_start). Meanwhile it writes the
 * --metrics lines and the progress on stderr (unless --quiet): after a
 * restore one line "<name>: resumed from FILE at iteration N" (the loop
 * itself prints none), then on a terminal one live line fitted to its
 * width (TIOCGWINSZ, else $COLUMNS, else 80; fields dropped in the order
 * name, checkpoint, rate, ETA), elsewhere a full line every 2 s; the ETA
 * only as EMBER_CLI_VALUE_ETA allows. At the end the metrics "done" line.
 * A refusal to resume (EMBER_EMISMATCH) names --force-resume where it
 * would help, never the loop option's name. Returns 0 when finished (also when a
 * restored run had already finished: no step runs), EMBER_INTERRUPTED after
 * a signal (checkpoint written), or a negative error. Fills
 * cli->iterations_done, value, converged, compute_seconds,
 * checkpoint_seconds_lost and checkpoint_write_seconds (again in
 * ember_cli_iterate_end, which the program must call). */
int ember_cli_iterate(ember_cli *cli, ember_loop *loop, ember_cli_step_fn step,
                      void *arg, char *msg);
/* The final checkpoint is written in the background where the loop can
 * (ember_loop_finish_start), while the program writes its outputs: call
 * this after them and before printing the run's timings, whatever rc
 * they left (a program that never called ember_cli_iterate, or whose
 * iterate failed, may call it too). It waits for the final checkpoint,
 * writes the last progress and metrics lines, and fills
 * checkpoint_seconds_lost and checkpoint_write_seconds. Returns rc when it
 * is an error (the checkpoint's own failure is then printed), else the
 * checkpoint's outcome (EMBER_OK once it has committed). */
int ember_cli_iterate_end(ember_cli *cli, ember_loop *loop, int rc, char *msg);

/* The exit status for an ember status, after printing msg (or the status
 * name) on stderr as "<name>: ...": 0 for EMBER_OK, 75 for
 * EMBER_INTERRUPTED (with a line saying how to resume, true to the flags:
 * after --resume never the same command would start over), 2 for bad input
 * (ember_exit_status says which statuses), 1 otherwise. */
int ember_cli_exit(const ember_cli *cli, int status, const char *msg);

/* How the state the run carries on was resumed, for a refusal of it, by
 * what ember_loop_forced said: "by force", or for 3, from an ember 0.1.0
 * checkpoint whose run may have been. */
const char *ember_cli_forced_how(int forced);
/* For a program that returns its own exit status from main: status, or 1
 * (said on stderr) when what it printed on stdout could not be written. */
int ember_cli_stdout_status(const ember_cli *cli, int status);

/* Monotonic seconds. */
double ember_cli_now(void);
/* One line on stderr, printf-style, a newline added: a control byte but a
 * tab in what it says (a path holding a newline) shows as '?'. */
void ember_cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 when name ends with suffix, ignoring case (".h5", ".csv"). */
int ember_cli_has_suffix(const char *name, const char *suffix);

#endif /* EMBER_CLI_H */
