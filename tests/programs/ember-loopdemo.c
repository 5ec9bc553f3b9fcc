/* ember-loopdemo: a deterministic iterative job for the loop's tests.
 *
 * State: x, a dataset of N f64 in P partitions; acc, an f64 that
 * accumulates the sum of x every iteration; steps, an i64 count; history,
 * the last 8 sums (an f64[8] array); and an RNG state (a blob) that draws
 * each iteration's shift. Iteration i maps x through a chaotic function
 * (a damped logistic map plus the shift), so one skipped, repeated or
 * reordered operation anywhere changes every later bit.
 *
 * The last line printed is "result steps=S acc=A hash=H", H a hash of
 * every bit of the state: the kill tests compare it with an uninterrupted
 * run. Only the public API is used.
 *
 * Exit: 0 done, 75 interrupted (checkpointed, resumable), 2 bad usage,
 * 1 any other error.
 */
#include <ember.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRAM "ember-loopdemo"
#define HIST 8

/* Each iteration's map keeps a copy of its own step (arg_size): the map
 * runs lazily, perhaps long after the loop moved on, and a recompute must
 * see the step it was made with. */
typedef struct {
    double damping;
    double shift;
} step_arg;

typedef struct {
    uint64_t state;
    uint64_t draws;
} rng_state;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unit(uint64_t v)
{
    return (double)(v >> 11) * 0x1.0p-53;
}

static int step_fn(const void *in, void *out, size_t n, void *arg)
{
    const step_arg *a = arg;
    const double *x = in;
    double *y = out;
    for (size_t i = 0; i < n; i++) {
        double f = x[i] + a->shift;
        f -= (double)(int64_t)f; /* frac: x and shift are >= 0 */
        y[i] = a->damping * (3.9 * x[i] * (1.0 - x[i])) + (1.0 - a->damping) * f;
    }
    return 0;
}

typedef struct {
    uint64_t iterations, n, partitions, seed, every, keep, max_depth, sleep_ms;
    uint64_t threads;
    double damping, seconds, mtbf, deadline;
    char damping_text[32];
    const char *dir, *program;
    ember_resume resume;
    int deflate, quiet, force, sync;
} config;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROGRAM " [options]\n"
            "\n"
            "A deterministic iterative job with resumable checkpoints.\n"
            "\n"
            "  --iterations N        iterations (default 400)\n"
            "  --n N                 records of the state (default 200000)\n"
            "  --partitions P        partitions (default 16)\n"
            "  --seed S              initial state and RNG seed (default 1)\n"
            "  --damping D           in [0, 1] (default 0.85)\n"
            "  --threads T           OpenMP threads (results do not depend on it)\n"
            "  --checkpoint-dir D    checkpoint directory (default: none)\n"
            "  --checkpoint-every K  checkpoint every K iterations (default 0: off)\n"
            "  --checkpoint-seconds T  ... every T seconds\n"
            "  --max-depth D         ... when the lineage reaches D (default 32)\n"
            "  --mtbf S              ... Young's interval for this MTBF\n"
            "  --keep K              checkpoints kept (default 2)\n"
            "  --resume auto|never|require  (default auto)\n"
            "  --force-resume        resume although parameters differ\n"
            "  --deadline T          stop (resumable) before epoch time T\n"
            "  --deflate L           compress checkpoints (0..9)\n"
            "  --checkpoint-sync     write checkpoints on the loop's thread (default:\n"
            "                        in the background)\n"
            "  --sleep-ms MS         sleep per iteration (for kill tests)\n"
            "  --program NAME        program name recorded (default " PROGRAM ")\n"
            "  --quiet               no warnings from the loop\n"
            "  --help\n"
            "\n"
            "Exit status: 0 done, 75 interrupted and resumable, 2 usage, 1 error.\n");
}

static int parse_u64(const char *flag, const char *s, uint64_t max,
                     uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || errno || *end || v > max) {
        fprintf(stderr, PROGRAM ": %s: '%s' is not a whole number from 0 to %" PRIu64 "\n",
                flag, s ? s : "", max);
        return 2;
    }
    *out = v;
    return 0;
}

static int parse_f64(const char *flag, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : 0;
    if (!s || !*s || errno || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, PROGRAM ": %s: '%s' is not a number from %g to %g\n",
                flag, s ? s : "", lo, hi);
        return 2;
    }
    *out = v;
    return 0;
}

static int parse_resume(const char *s, ember_resume *out)
{
    if (strcmp(s, "auto") == 0)
        *out = EMBER_RESUME_AUTO;
    else if (strcmp(s, "never") == 0)
        *out = EMBER_RESUME_NEVER;
    else if (strcmp(s, "require") == 0)
        *out = EMBER_RESUME_REQUIRE;
    else {
        fprintf(stderr, PROGRAM ": --resume: '%s' is not auto, never or require\n", s);
        return 2;
    }
    return 0;
}

/* Shortest text that reads back as the same double: the parameters
 * recorded in a checkpoint should look like what the user typed. */
static void shortest(double v, char *buf, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int parse_args(int argc, char **argv, config *c)
{
    static const struct option opts[] = {
        {"iterations", required_argument, 0, 'i'},
        {"n", required_argument, 0, 'n'},
        {"partitions", required_argument, 0, 'p'},
        {"seed", required_argument, 0, 's'},
        {"damping", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 't'},
        {"checkpoint-dir", required_argument, 0, 'D'},
        {"checkpoint-every", required_argument, 0, 'e'},
        {"checkpoint-seconds", required_argument, 0, 'S'},
        {"max-depth", required_argument, 0, 'm'},
        {"mtbf", required_argument, 0, 'M'},
        {"keep", required_argument, 0, 'k'},
        {"resume", required_argument, 0, 'r'},
        {"force-resume", no_argument, 0, 'f'},
        {"deadline", required_argument, 0, 'L'},
        {"deflate", required_argument, 0, 'z'},
        {"checkpoint-sync", no_argument, 0, 'Y'},
        {"sleep-ms", required_argument, 0, 'w'},
        {"program", required_argument, 0, 'P'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    uint64_t v;
    int ch, rc = 0;
    while (!rc && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'i': rc = parse_u64("--iterations", optarg, 100000000, &c->iterations); break;
        case 'n': rc = parse_u64("--n", optarg, 100000000, &c->n); break;
        case 'p': rc = parse_u64("--partitions", optarg, 65536, &c->partitions); break;
        case 's': rc = parse_u64("--seed", optarg, UINT64_MAX, &c->seed); break;
        case 'd': rc = parse_f64("--damping", optarg, 0, 1, &c->damping); break;
        case 't': rc = parse_u64("--threads", optarg, 4096, &c->threads); break;
        case 'D': c->dir = optarg; break;
        case 'e': rc = parse_u64("--checkpoint-every", optarg, UINT64_MAX, &c->every); break;
        case 'S': rc = parse_f64("--checkpoint-seconds", optarg, 0, 1e9, &c->seconds); break;
        case 'm': rc = parse_u64("--max-depth", optarg, 1000000, &c->max_depth); break;
        case 'M': rc = parse_f64("--mtbf", optarg, 0, 1e12, &c->mtbf); break;
        case 'k': rc = parse_u64("--keep", optarg, 1000000, &c->keep); break;
        case 'r': rc = parse_resume(optarg, &c->resume); break;
        case 'f': c->force = 1; break;
        case 'L': rc = parse_f64("--deadline", optarg, 0, 1e12, &c->deadline); break;
        case 'z': rc = parse_u64("--deflate", optarg, 9, &v); c->deflate = (int)v; break;
        case 'Y': c->sync = 1; break;
        case 'w': rc = parse_u64("--sleep-ms", optarg, 600000, &c->sleep_ms); break;
        case 'P': c->program = optarg; break;
        case 'q': c->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (!rc && optind < argc) {
        fprintf(stderr, PROGRAM ": unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    if (!rc && (c->n == 0 || c->partitions == 0)) {
        fprintf(stderr, PROGRAM ": --n and --partitions must be at least 1\n");
        rc = 2;
    }
    shortest(c->damping, c->damping_text, sizeof c->damping_text);
    return rc;
}

/* ---- the job --------------------------------------------------------------- */

typedef struct {
    ember_ctx *ctx;
    ember_loop *loop;
    ember_ds *x;
    double acc;
    int64_t steps;
    double history[HIST];
    rng_state rng;
} job;

static int initial_state(job *j, const config *c, char *msg)
{
    double *v = malloc(c->n * sizeof *v);
    if (!v)
        return snprintf(msg, EMBER_MSG_SIZE, "out of memory"), EMBER_ENOMEM;
    uint64_t s = c->seed;
    for (uint64_t i = 0; i < c->n; i++)
        v[i] = unit(splitmix(&s));
    ember_type t = ember_type_scalar(EMBER_F64);
    int rc = ember_from_array(&j->x, j->ctx, &t, v, c->n, c->partitions,
                              EMBER_COPY, msg);
    free(v);
    if (!rc)
        ember_ds_set_name(j->x, "x");
    j->rng.state = c->seed ^ 0x5eedULL;
    return rc;
}

static int make_loop(job *j, const config *c, char *msg)
{
    char params[512];
    snprintf(params, sizeof params,
             "n=%" PRIu64 "\npartitions=%" PRIu64 "\nseed=%" PRIu64
             "\ndamping=%s\n",
             c->n, c->partitions, c->seed, c->damping_text);
    ember_loop_opts o;
    memset(&o, 0, sizeof o);
    o.dir = c->dir;
    o.program = c->program;
    o.parameters = params;
    o.every = c->every;
    o.seconds = c->seconds;
    o.max_depth = c->max_depth;
    o.mtbf = c->mtbf;
    o.keep = (int)c->keep;
    o.resume = c->resume;
    o.force_resume = c->force;
    o.deadline = c->deadline;
    o.deflate = c->deflate;
    o.sync = c->sync;
    o.quiet = c->quiet;
    /* said, so that a run resumed at its last iteration (a kill came
     * between the final checkpoint's commit and its retention) retires the
     * file too many: test_loop_kill found 3 files kept of 2 */
    o.iterations = c->iterations;
    int rc = ember_loop_create(&j->loop, j->ctx, &o, msg);
    if (!rc)
        rc = ember_loop_bind_ds(j->loop, "x", &j->x);
    if (!rc)
        rc = ember_loop_bind_f64(j->loop, "acc", &j->acc);
    if (!rc)
        rc = ember_loop_bind_i64(j->loop, "steps", &j->steps);
    if (!rc)
        rc = ember_loop_bind_array(j->loop, "history", EMBER_F64, j->history, HIST);
    if (!rc)
        rc = ember_loop_bind_blob(j->loop, "rng", &j->rng, sizeof j->rng);
    if (rc && !msg[0])
        snprintf(msg, EMBER_MSG_SIZE, "binding the state: %s", ember_strerror(rc));
    return rc;
}

static int iterate(job *j, const config *c, uint64_t it, char *msg)
{
    step_arg a = {c->damping, unit(splitmix(&j->rng.state)) * 0.01};
    j->rng.draws++;
    ember_ds *y = NULL;
    double s = 0;
    /* Copied: the map keeps this iteration's arg for every recompute. */
    int rc = ember_map(&y, j->x, NULL, step_fn, &a, sizeof a, msg);
    if (!rc)
        rc = ember_persist(y, EMBER_MEMORY_AND_DISK, msg);
    if (!rc)
        rc = ember_sum(y, &s, msg);
    if (rc) {
        ember_ds_free(&y);
        return rc;
    }
    ember_ds_free(&j->x);
    j->x = y;
    j->acc += s * 1e-3;
    j->history[it % HIST] = s;
    j->steps++;
    /* Without a checkpoint directory nothing cuts the lineage. */
    if (!c->dir && it % 32 == 31)
        rc = ember_local_checkpoint(j->x, msg);
    if (!rc && c->sleep_ms) {
        struct timespec ts = {(time_t)(c->sleep_ms / 1000),
                              (long)(c->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a signal may cut it short: fine */
    }
    return rc;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int print_result(job *j, char *msg)
{
    void *data = NULL;
    size_t n = 0;
    int rc = ember_collect_alloc(j->x, &data, &n, msg);
    if (rc)
        return rc;
    uint64_t h = fnv(0xcbf29ce484222325ULL, data, n * sizeof(double));
    h = fnv(h, &j->acc, sizeof j->acc);
    h = fnv(h, &j->steps, sizeof j->steps);
    h = fnv(h, j->history, sizeof j->history);
    h = fnv(h, &j->rng, sizeof j->rng);
    ember_free(j->ctx, data);
    printf("result steps=%" PRId64 " acc=%a hash=%016" PRIx64 "\n", j->steps,
           j->acc, h);
    return EMBER_OK;
}

static int run(job *j, const config *c, char *msg)
{
    uint64_t it = 0;
    int rc = ember_loop_next(j->loop, &it, msg);
    if (rc == EMBER_OK && msg[0] && !c->quiet)
        msg[0] = '\0'; /* warnings were printed by the loop */
    while (rc == EMBER_OK && it < c->iterations) {
        rc = iterate(j, c, it, msg);
        if (rc)
            break;
        if (it + 1 == c->iterations) {
            rc = ember_loop_finish(j->loop, msg);
            break;
        }
        rc = ember_loop_next(j->loop, &it, msg);
    }
    return rc;
}

int main(int argc, char **argv)
{
    config c;
    memset(&c, 0, sizeof c);
    c.iterations = 400;
    c.n = 200000;
    c.partitions = 16;
    c.seed = 1;
    c.damping = 0.85;
    c.max_depth = 32;
    c.program = PROGRAM;
    int rc = parse_args(argc, argv, &c);
    if (rc)
        return rc;
    char msg[EMBER_MSG_SIZE] = "";
    job j;
    memset(&j, 0, sizeof j);
    ember_ctx_opts co;
    memset(&co, 0, sizeof co);
    co.threads = (int)c.threads;
    rc = ember_ctx_create(&j.ctx, &co, msg);
    if (!rc)
        rc = initial_state(&j, &c, msg);
    if (!rc)
        rc = make_loop(&j, &c, msg);
    if (!rc)
        rc = run(&j, &c, msg);
    if (rc == EMBER_OK)
        rc = print_result(&j, msg);
    ember_loop_stats st;
    ember_loop_get_stats(j.loop, &st);
    if (j.loop && !c.quiet)
        fprintf(stderr, PROGRAM ": checkpoints=%" PRIu64 " restored=%d from=%" PRIu64
                " seconds=%.3f\n", st.checkpoints, st.restored, st.restored_from,
                st.checkpoint_seconds);
    int status = 0;
    if (rc == EMBER_INTERRUPTED) {
        fprintf(stderr, PROGRAM ": interrupted after %" PRId64
                " steps; checkpointed, resumable\n", j.steps);
        status = EMBER_EXIT_RESUMABLE;
    } else if (rc) {
        fprintf(stderr, PROGRAM ": %s (%s)\n", msg[0] ? msg : "error",
                ember_strerror(rc));
        status = 1;
    }
    ember_loop_destroy(&j.loop);
    ember_ds_free(&j.x);
    ember_ctx_destroy(&j.ctx);
    return status;
}
