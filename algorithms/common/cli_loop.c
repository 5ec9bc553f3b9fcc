/* cli_loop.c: the run half of the common command line (see cli.h): the
 * loop made from the flags, and ember_cli_iterate, which drives it and
 * writes the --metrics JSON lines and the progress on stderr.
 *
 * Kept apart from cli.c so that tools without a loop (ember-gen,
 * ember-convert) do not link the loop. The metrics line of an iteration is
 * written once the loop call after it returns, because only then is it
 * known whether a checkpoint was written for it.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <xxhash.h>

static int find_input_role(const ember_cli *cli, const char *role)
{
    for (int i = 0; i < cli->ninputs; i++)
        if (strcmp(cli->inputs[i].role, role) == 0)
            return i;
    return -1;
}

/* mkdir -p; 0 or an errno. */
static int make_dirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST)
        return errno;
    struct stat st;
    if (stat(tmp, &st) || !S_ISDIR(st.st_mode))
        return ENOTDIR;
    return 0;
}

/* ---- checks before the work ------------------------------------------------ */

/* Size and XXH3-64 of a whole file, read in 1 MiB blocks; 0 or an errno. */
static int hash_file(const char *path, uint64_t *bytes, uint64_t *hash)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
    if (fd < 0)
        return errno;
    XXH3_state_t *st = XXH3_createState();
    char *buf = malloc((size_t)1 << 20);
    uint64_t n = 0;
    if (!st || !buf || XXH3_64bits_reset(st) != XXH_OK)
        e = ENOMEM;
    while (!e) {
        ssize_t r = read(fd, buf, (size_t)1 << 20);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            e = errno;
        if (r <= 0)
            break;
        XXH3_64bits_update(st, buf, (size_t)r);
        n += (uint64_t)r;
    }
    if (!e) {
        *bytes = n;
        *hash = XXH3_64bits_digest(st);
    }
    free(buf);
    XXH3_freeState(st);
    close(fd);
    return e;
}

/* The file of an input: the argument itself, or for "file.h5:/dataset"
 * (when the whole argument is no file) the part before the colon. */
static int input_file(const char *arg, char *file, size_t size, char *dataset,
                      size_t dsize)
{
    struct stat st;
    dataset[0] = '\0';
    if (snprintf(file, size, "%s", arg) >= (int)size)
        return ENAMETOOLONG;
    if (stat(file, &st) == 0 || errno != ENOENT)
        return 0;
    const char *colon = strstr(arg, ":/");
    if (!colon)
        return 0;
    snprintf(file, size, "%.*s", (int)(colon - arg), arg);
    if (stat(file, &st) != 0) {
        snprintf(file, size, "%s", arg); /* name the whole argument */
        return 0;
    }
    snprintf(dataset, dsize, "%s", colon + 1);
    return 0;
}

static int prepare_input(ember_cli *cli, int i)
{
    char file[PATH_MAX];
    struct stat st;
    const char *flag = cli->inputs[i].role, *arg = cli->inputs[i].arg;
    input_file(arg, file, sizeof file, cli->inputs[i].dataset,
               sizeof cli->inputs[i].dataset);
    if (stat(file, &st) != 0) /* worded as the loaders word it */
        return ember_cli_usage_error(cli, "--%s %s: %s", flag, arg,
                                     errno == ENOENT ? "no such file" : strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ember_cli_usage_error(cli, "--%s %s: is a directory, not a file", flag,
                                     arg);
    int e = hash_file(file, &cli->inputs[i].bytes, &cli->inputs[i].xxh3);
    if (e)
        return ember_cli_usage_error(cli, "--%s %s: cannot read: %s", flag, arg,
                                     strerror(e));
    char real[PATH_MAX];
    snprintf(cli->inputs[i].path, sizeof cli->inputs[i].path, "%s",
             realpath(file, real) ? real : file);
    cli->inputs[i].hashed = 1;
    return 0;
}

/* An output that can be created: NAME.tmp is created and removed. */
int ember_cli_check_output(ember_cli *cli, const char *flag, const char *spec)
{
    struct stat st;
    char tmp[PATH_MAX], path[PATH_MAX];
    if (!spec[0])
        return ember_cli_usage_error(cli, "--%s: empty file name", flag);
    /* "file.h5:/dataset" (HDF5 outputs): the file is the part before the
     * last ':' followed by '/', as the HDF5 layer splits it */
    const char *cut = NULL;
    for (const char *p = strstr(spec, ":/"); p; p = strstr(p + 1, ":/"))
        cut = p;
    snprintf(path, sizeof path, "%.*s", (int)(cut && cut > spec ? cut - spec
                                                                : (ptrdiff_t)strlen(spec)),
             spec);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return ember_cli_usage_error(cli, "--%s %s: is a directory, not a file", flag,
                                     path);
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ember_cli_usage_error(cli, "--%s %s: %s", flag, path,
                                     strerror(ENAMETOOLONG));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return ember_cli_usage_error(cli, "--%s %s: cannot create %s: %s", flag, path,
                                     tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
}

/* The deadline timer: what is left of --deadline, from the start. */
static void arm_deadline(const ember_cli *cli)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    double left = cli->start_wall + cli->deadline_seconds - now;
    if (left < 0.001)
        left = 0.001;
    struct itimerval t = {{0, 0}, {(time_t)left,
                                   (suseconds_t)((left - floor(left)) * 1e6)}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static void disarm_deadline(void)
{
    struct itimerval t = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static void test_load_delay(void)
{
    const char *d = getenv("EMBER_TEST_LOAD_DELAY");
    double secs = d ? strtod(d, NULL) : 0;
    if (!(secs > 0))
        return;
    double until = ember_cli_now() + secs;
    for (double left = secs; left > 0; left = until - ember_cli_now()) {
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int ember_cli_prepare(ember_cli *cli)
{
    int rc = 0;
    if (cli->input && !(cli->prog->omit & EMBER_CLI_NO_INPUT) &&
        find_input_role(cli, "input") < 0) {
        /* --input first, so it is the one messages name first */
        if (cli->ninputs >= (int)(sizeof cli->inputs / sizeof cli->inputs[0]))
            return ember_cli_usage_error(cli, "too many input files (internal)");
        memmove(&cli->inputs[1], &cli->inputs[0], (size_t)cli->ninputs * sizeof cli->inputs[0]);
        cli->ninputs++;
        memset(&cli->inputs[0], 0, sizeof cli->inputs[0]);
        cli->inputs[0].role = "input";
        cli->inputs[0].arg = cli->input;
    }
    for (int i = 0; !rc && i < cli->ninputs; i++)
        rc = prepare_input(cli, i);
    if (!rc && cli->output && !(cli->prog->omit & EMBER_CLI_NO_OUTPUT))
        rc = ember_cli_check_output(cli, "output", cli->output);
    if (!rc && cli->metrics)
        rc = ember_cli_check_output(cli, "metrics", cli->metrics);
    if (!rc && cli->checkpoint_dir) {
        int e = make_dirs(cli->checkpoint_dir);
        if (e)
            rc = ember_cli_usage_error(cli, "--checkpoint-dir %s: %s",
                                       cli->checkpoint_dir, strerror(e));
    }
    if (rc)
        return rc;
    if (cli->deadline_seconds > 0)
        arm_deadline(cli);
    test_load_delay();
    return EMBER_CLI_RUN;
}

/* A refusal because an input's content changed: say which file first. */
static void explain_input_change(const ember_cli *cli, char *msg)
{
    if (!msg)
        return;
    for (int i = 0; i < cli->ninputs; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.xxh3=", cli->inputs[i].role);
        char key2[64];
        snprintf(key2, sizeof key2, "%s.bytes=", cli->inputs[i].role);
        if (!cli->inputs[i].hashed || (!strstr(msg, key) && !strstr(msg, key2)))
            continue;
        char was[EMBER_MSG_SIZE], head[EMBER_MSG_SIZE];
        memcpy(was, msg, EMBER_MSG_SIZE);
        was[EMBER_MSG_SIZE - 1] = '\0';
        int n = snprintf(head, sizeof head, "--%s %s has other content than the "
                         "input of the checkpointed run (now %" PRIu64 " bytes, xxh3 "
                         "%016" PRIx64 "); --force-resume resumes anyway. ",
                         cli->inputs[i].role, cli->inputs[i].arg,
                         cli->inputs[i].bytes, cli->inputs[i].xxh3);
        size_t h = n < 0 ? 0 : (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
        size_t w = strlen(was);
        if (h + w > EMBER_MSG_SIZE - 1)
            w = EMBER_MSG_SIZE - 1 - h;
        memcpy(msg, head, h);
        memcpy(msg + h, was, w);
        msg[h + w] = '\0';
        return;
    }
}

int ember_cli_loop(ember_loop **out, ember_ctx *ctx, ember_cli *cli, char *msg)
{
    *out = NULL;
    if (msg)
        msg[0] = '\0';
    int rc = ember_cli_parameters(cli, cli->parameters, sizeof cli->parameters);
    if (rc) {
        if (msg)
            snprintf(msg, EMBER_MSG_SIZE, "parameters too long for a checkpoint");
        return rc;
    }
    if (cli->checkpoint_dir) {
        int e = make_dirs(cli->checkpoint_dir);
        if (e) {
            if (msg)
                snprintf(msg, EMBER_MSG_SIZE, "--checkpoint-dir %s: %s",
                         cli->checkpoint_dir, strerror(e));
            return EMBER_EIO;
        }
    }
    ember_loop_opts o = {
        .dir = cli->checkpoint_dir,
        .program = cli->prog->name,
        .parameters = cli->parameters,
        .every = cli->checkpoint_every,
        .seconds = cli->checkpoint_seconds,
        .keep = cli->keep,
        .resume = cli->resume,
        .force_resume = cli->force_resume,
        .async = cli->checkpoint_async,
        /* counted from the program's start, not from now */
        .deadline = cli->deadline_seconds > 0
                        ? cli->start_wall + cli->deadline_seconds : 0,
        .quiet = cli->quiet,
    };
    if (cli->checkpoint_dir && !o.every && o.seconds <= 0)
        o.seconds = 60;
    ember_loop *loop = NULL;
    rc = ember_loop_create(&loop, ctx, &o, msg);
    /* The loop now owns the signals and the deadline (it stops at an
     * iteration's end, with a checkpoint). */
    if (!rc && cli->checkpoint_dir)
        disarm_deadline();
    if (!rc)
        rc = ember_loop_bind_f64(loop, "cli_value", &cli->value);
    if (!rc)
        rc = ember_loop_bind_i64(loop, "cli_converged", &cli->converged);
    if (rc) {
        ember_loop_destroy(&loop);
        return rc;
    }
    *out = loop;
    return EMBER_OK;
}

/* ---- metrics and progress -------------------------------------------------- */

typedef struct {
    ember_cli *cli;
    FILE *metrics;
    int tty;
    int live;            /* a live line is on screen, needs a newline */
    double t_start;      /* this process's first iteration */
    double t_print;      /* last progress output */
    uint64_t first_it;   /* iteration count when this process began */
    uint64_t last_ck_it; /* iteration of the last checkpoint (0: none) */
    uint64_t last_ck_bytes;
    uint64_t ckpts;      /* checkpoints written so far */
} report;

static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void metrics_iteration(report *r, uint64_t it, double seconds,
                              double value, int ck, uint64_t ck_bytes)
{
    if (!r->metrics)
        return;
    FILE *f = r->metrics;
    fprintf(f, "{\"iteration\": %" PRIu64 ", \"seconds\": ", it);
    json_number(f, seconds);
    fprintf(f, ", \"%s\": ", r->cli->prog->value_name ? r->cli->prog->value_name
                                                       : "value");
    json_number(f, value);
    fprintf(f, ", \"checkpoint\": %s, \"checkpoint_bytes\": %" PRIu64 "}\n",
            ck ? "true" : "false", ck ? ck_bytes : (uint64_t)0);
    fflush(f);
}

static void metrics_end(report *r, const char *event)
{
    if (!r->metrics)
        return;
    ember_cli *c = r->cli;
    FILE *f = r->metrics;
    fprintf(f, "{\"event\": \"%s\", \"iterations\": %" PRIu64 ", \"compute_seconds\": ",
            event, c->iterations_done);
    json_number(f, c->compute_seconds);
    fputs(", \"load_seconds\": ", f);
    json_number(f, c->load_seconds);
    fputs(", \"checkpoint_seconds\": ", f);
    json_number(f, c->checkpoint_write_seconds);
    fprintf(f, ", \"%s\": ", c->prog->value_name ? c->prog->value_name : "value");
    json_number(f, c->value);
    fprintf(f, ", \"converged\": %s}\n", c->converged ? "true" : "false");
    fflush(f);
}

static void human_bytes(char *buf, size_t size, uint64_t b)
{
    if (b >= (UINT64_C(1) << 30))
        snprintf(buf, size, "%.1f GiB", (double)b / (double)(UINT64_C(1) << 30));
    else if (b >= (UINT64_C(1) << 20))
        snprintf(buf, size, "%.1f MiB", (double)b / (double)(UINT64_C(1) << 20));
    else
        snprintf(buf, size, "%.1f KiB", (double)b / 1024.0);
}

static void progress(report *r, uint64_t it, double value, int last)
{
    ember_cli *c = r->cli;
    if (c->quiet)
        return;
    double now = ember_cli_now();
    int due = r->tty ? now - r->t_print >= 0.1 : now - r->t_print >= 2.0;
    if (!due && !last && it != r->first_it + 1)
        return;
    r->t_print = now;
    double rate = (double)(it - r->first_it) / fmax(now - r->t_start, 1e-9);
    char eta[32] = "-", ck[64] = "none";
    if (rate > 0 && c->iterations >= it)
        snprintf(eta, sizeof eta, "%.1fs", (double)(c->iterations - it) / rate);
    if (r->last_ck_it) {
        char b[32];
        human_bytes(b, sizeof b, r->last_ck_bytes);
        snprintf(ck, sizeof ck, "at %" PRIu64 " (%s)", r->last_ck_it, b);
    }
    fprintf(stderr, "%s%s: iteration %" PRIu64 "/%" PRIu64 "  %s %.3e  %.1f it/s  "
                    "ETA %s  checkpoint %s%s",
            r->tty ? "\r\033[K" : "", c->prog->name, it, c->iterations,
            c->prog->value_name ? c->prog->value_name : "value", value, rate, eta,
            ck, r->tty ? "" : "\n");
    r->live = r->tty;
    if (r->tty && last) {
        fputc('\n', stderr);
        r->live = 0;
    }
    fflush(stderr);
}

/* Records iteration `it` (1-based count of iterations done) once the loop
 * call after it has returned, so its checkpoint is known. */
static void record(report *r, ember_loop *loop, uint64_t it, double seconds,
                   int last)
{
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    /* The count, not last_was_checkpoint: ember_loop_finish's final
     * checkpoint does not set that flag. */
    int ck = st.checkpoints > r->ckpts;
    r->ckpts = st.checkpoints;
    if (ck) {
        r->last_ck_it = it;
        r->last_ck_bytes = st.last_bytes;
    }
    metrics_iteration(r, it, seconds, r->cli->value, ck, st.last_bytes);
    progress(r, it, r->cli->value, last);
}

static int open_report(report *r, ember_cli *cli, ember_loop *loop, char *msg)
{
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    memset(r, 0, sizeof *r);
    r->cli = cli;
    r->ckpts = st.checkpoints;
    r->tty = isatty(STDERR_FILENO);
    r->t_start = r->t_print = ember_cli_now();
    r->t_print -= 1e9; /* the first iteration prints */
    if (cli->metrics && cli->rank == 0) { /* rank 0's file */
        r->metrics = fopen(cli->metrics, st.restored ? "a" : "w");
        if (!r->metrics) {
            if (msg)
                snprintf(msg, EMBER_MSG_SIZE, "--metrics %s: %s", cli->metrics,
                         strerror(errno));
            return EMBER_EIO;
        }
    }
    if (st.restored && !cli->quiet)
        fprintf(stderr, "%s: resumed at iteration %" PRIu64 " from %s\n",
                cli->prog->name, st.restored_from,
                st.last_path[0] ? st.last_path : cli->checkpoint_dir);
    return EMBER_OK;
}

static void close_report(report *r, int rc)
{
    if (r->live) {
        fputc('\n', stderr);
        r->live = 0;
    }
    metrics_end(r, rc == EMBER_OK ? "done"
                   : rc == EMBER_INTERRUPTED ? "interrupted"
                                             : "error");
    if (r->metrics)
        fclose(r->metrics);
    r->metrics = NULL;
}

int ember_cli_iterate(ember_cli *cli, ember_loop *loop, ember_cli_step_fn step,
                      void *arg, char *msg)
{
    report r;
    uint64_t it = 0;
    ember_loop_stats st;
    cli->compute_seconds = 0;
    int rc = ember_loop_next(loop, &it, msg);
    if (rc == EMBER_EMISMATCH)
        explain_input_change(cli, msg);
    cli->iterations_done = it;
    if (rc == EMBER_OK)
        rc = open_report(&r, cli, loop, msg);
    if (rc)
        return rc;
    r.first_it = it;
    while (rc == EMBER_OK && !cli->converged && it < cli->iterations) {
        double t0 = ember_cli_now(), value = NAN;
        int s = step(it, &value, arg, msg);
        double seconds = ember_cli_now() - t0;
        cli->compute_seconds += seconds;
        if (s < 0) {
            rc = s;
            break;
        }
        cli->value = value;
        cli->converged = s == EMBER_DONE;
        uint64_t done = it + 1;
        int last = cli->converged || done >= cli->iterations;
        rc = last ? ember_loop_finish(loop, msg) : ember_loop_next(loop, &it, msg);
        cli->iterations_done = done;
        if (rc == EMBER_OK || rc == EMBER_INTERRUPTED)
            record(&r, loop, done, seconds, last || rc == EMBER_INTERRUPTED);
        if (last)
            break;
    }
    ember_loop_get_stats(loop, &st);
    cli->checkpoint_write_seconds = st.checkpoint_seconds;
    close_report(&r, rc);
    return rc;
}

