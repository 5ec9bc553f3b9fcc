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

#include <ember/graph.h>
#include <ember/mpi.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#ifdef EMBER_MPI
#include <mpi.h>
#endif

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

/* The last ":/" of arg, where the HDF5 readers split "file.h5:/dataset"
 * (ember__h5_split_spec), or NULL. */
static const char *spec_colon(const char *arg)
{
    const char *hit = NULL;
    for (const char *c = strstr(arg, ":/"); c; c = strstr(c + 1, ":/"))
        hit = c;
    return hit;
}

/* The file of an input: the argument itself, or for "file.h5:/dataset"
 * (when the whole argument is no file) the part before the last ":/", as
 * the HDF5 readers split it. EEXIST when both are files: the argument
 * names two things. */
static int input_file(const char *arg, char *file, size_t size, char *dataset,
                      size_t dsize)
{
    struct stat st;
    dataset[0] = '\0';
    if (snprintf(file, size, "%s", arg) >= (int)size)
        return ENAMETOOLONG;
    const char *colon = spec_colon(arg);
    int whole = stat(file, &st) == 0 || errno != ENOENT;
    if (!colon)
        return 0;
    snprintf(file, size, "%.*s", (int)(colon - arg), arg);
    if (stat(file, &st) != 0 || S_ISDIR(st.st_mode)) {
        snprintf(file, size, "%s", arg); /* the whole argument, or named whole */
        return 0;
    }
    if (whole)
        return EEXIST;
    if (snprintf(dataset, dsize, "%s", colon + 1) >= (int)dsize) {
        dataset[0] = '\0';
        return ENAMETOOLONG;
    }
    return 0;
}

/* The largest of every rank's v (v alone on one process): collective on
 * several ranks, which every rank reaches with the same arguments (MPI's
 * default error handler aborts the job on a failure). */
static int agree_max(const ember_cli *cli, int v)
{
#ifdef EMBER_MPI
    int all = v;
    if (cli->ranks > 1)
        MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
#else
    (void)cli;
    return v;
#endif
}

/* Every rank must run the same command on the same bytes. Each hashes its
 * own inputs and parses its own arguments, so a node whose copy of the
 * input differs (a stale node-local copy), or an MPMD launch or wrapper
 * that gives ranks other options, computed a mix of two runs and exited 0,
 * or hung where the ranks' loops disagreed. Compared before the load, from
 * what ember_cli_command_hash and the inputs' fingerprints say; every rank
 * sees every rank's, so all stop together with exit 2. */
static int agree_command(ember_cli *cli)
{
#ifdef EMBER_MPI
    enum { W = 1 + (int)(sizeof cli->inputs / sizeof cli->inputs[0]) };
    if (cli->ranks <= 1)
        return 0;
    uint64_t mine[W] = {ember_cli_command_hash(cli)}, *all;
    for (int i = 0; i < cli->ninputs; i++)
        mine[1 + i] = cli->inputs[i].xxh3 ^ (cli->inputs[i].bytes * 0x9e3779b97f4a7c15u);
    all = malloc((size_t)cli->ranks * sizeof mine);
    if (agree_max(cli, all == NULL)) { /* all stop, or none waits in the gather */
        free(all);
        return ember_cli_usage_error(cli, "out of memory comparing the ranks' commands");
    }
    MPI_Allgather(mine, W, MPI_UINT64_T, all, W, MPI_UINT64_T, MPI_COMM_WORLD);
    int rank = 0, what = 0;
    for (int r = 1; r < cli->ranks && !rank; r++)
        for (int j = 1; j <= W && !rank; j++)
            if (all[(size_t)r * W + j % W] != all[j % W])
                rank = r, what = j % W;
    free(all);
    if (!rank || cli->rank != 0) /* every rank sees it: rank 0 says it */
        return rank ? ember_cli_settle(EMBER_EXIT_USAGE) : 0;
    if (what == 0)
        return ember_cli_usage_error(cli, "rank %d was started with other options "
                                     "than rank 0 (an MPMD launch, or a wrapper "
                                     "that changes them?): every rank must run the "
                                     "same command", rank);
    return ember_cli_usage_error(cli, "--%s %s: rank %d reads other bytes than rank 0 "
                                 "(a node's own copy that differs?): every rank must "
                                 "read the same file", cli->inputs[what - 1].role,
                                 cli->inputs[what - 1].arg, rank);
#else
    (void)cli;
    return 0;
#endif
}

int ember_cli_inputs_unchanged(ember_cli *cli, char *msg)
{
    int changed = -1; /* the first this rank sees */
    for (int i = 0; i < cli->ninputs; i++) {
        char why[EMBER_MSG_SIZE];
        if (ember_file_lease_end(&cli->inputs[i].lease, NULL, why) && changed < 0)
            changed = i; /* a writer let in while the lease held it */
    }
    if (changed < 0)
        changed = ember_cli_input_changed(cli);
    /* Each rank loaded through its own view of the files: they agree on
     * the first input any of them saw change, and all stop together. */
    int any = agree_max(cli, changed < 0 ? 0 : cli->ninputs - changed);
    changed = any ? cli->ninputs - any : -1;
    if (changed < 0)
        return EMBER_OK;
    snprintf(msg, EMBER_MSG_SIZE, "--%s %s: replaced or written since this run "
             "took its fingerprint, so what was loaded may not be what the "
             "fingerprint says; run again once the file stays put",
             cli->inputs[changed].role, cli->inputs[changed].arg);
    return EMBER_EMISMATCH;
}

const char *ember_cli_input_load(const ember_cli *cli, const char *role, const char *arg)
{
    for (int i = 0; i < cli->ninputs; i++)
        if (cli->inputs[i].hashed && cli->inputs[i].load[0] &&
            !strcmp(cli->inputs[i].role, role))
            return cli->inputs[i].load;
    return arg;
}

static int in_checkpoint_dir(const ember_cli *cli, const char *path);

static int prepare_input(ember_cli *cli, int i)
{
    char file[PATH_MAX];
    struct stat st;
    const char *flag = cli->inputs[i].role, *arg = cli->inputs[i].arg;
    cli->inputs[i].fd = -1;
    int named = input_file(arg, file, sizeof file, cli->inputs[i].dataset,
                           sizeof cli->inputs[i].dataset);
    if (named == EEXIST)
        return ember_cli_usage_error(cli, "--%s %s: names both a file of that name and "
                                     "dataset %s of %s; rename one", flag, arg,
                                     spec_colon(arg) + 1, file);
    if (named)
        return ember_cli_usage_error(cli, "--%s: name too long (a file up to %zu "
                                     "bytes, a dataset up to %zu)", flag,
                                     sizeof file - 1, sizeof cli->inputs[i].dataset - 1);
    if (stat(file, &st) != 0) { /* worded as the loaders word it */
        int e = errno;
        const char *colon = strrchr(file, ':');
        char head[PATH_MAX];
        snprintf(head, sizeof head, "%.*s", colon ? (int)(colon - file) : 0, file);
        if (e == ENOENT && colon && stat(head, &st) == 0) /* FILE:name, not FILE:/name */
            return ember_cli_usage_error(cli, "--%s %s: no such file; %s is one: a dataset "
                                         "in it is named with a leading slash, %s:/%s",
                                         flag, arg, head, head, colon + 1);
        return ember_cli_usage_error(cli, "--%s %s: %s", flag, arg,
                                     e == ENOENT ? "no such file" : strerror(e));
    }
    if (S_ISDIR(st.st_mode))
        return ember_cli_usage_error(cli, "--%s %s: is a directory, not a file", flag,
                                     arg);
    if (in_checkpoint_dir(cli, file) == 2) /* the loop would delete it */
        return ember_cli_usage_error(cli, "--%s %s: a name of the files the checkpoints "
                                     "replace and delete in --checkpoint-dir %s; move it",
                                     flag, arg, cli->checkpoint_dir);
    if (!S_ISREG(st.st_mode)) /* hashed, then loaded: read twice */
        return ember_cli_usage_error(cli, "--%s %s: not a regular file (a pipe or "
                                     "device is read twice; save it to a file)", flag,
                                     arg);
    /* The file is hashed and loaded through one descriptor's name, so
     * that the bytes loaded are those of the file hashed, whatever its
     * name points at by then (a symlink re-pointed, a rename). */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        return ember_cli_usage_error(cli, "--%s %s: cannot read: %s", flag, arg,
                                     e == EINVAL ? "replaced while being opened" : strerror(e));
    }
    /* Moved up to a number every rank gets alike (the ranks' low numbers
     * differ with what MPI opened), so that a message from any rank names
     * the descriptor ember_cli_exit turns back into the user's file. */
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 900 + 8 * i);
    if (moved >= 0) {
        close(fd);
        fd = moved;
    }
    cli->inputs[i].fd = fd;
    char by_fd[64];
    snprintf(by_fd, sizeof by_fd, "/proc/self/fd/%d", fd);
    const char *read_as = access(by_fd, R_OK) == 0 ? by_fd : file;
    if (read_as == by_fd) {
        char load[sizeof cli->inputs[i].load];
        snprintf(load, sizeof load, "%s%s%s", by_fd, cli->inputs[i].dataset[0] ? ":" : "",
                 cli->inputs[i].dataset);
        memcpy(cli->inputs[i].load, load, sizeof load);
    }
    /* the file opened is the one hashed: its stamp before, and after */
    ember_cli_stamp_of(&st, cli->inputs[i].stamp);
    /* the bytes hashed are the bytes loaded: a read lease from here to the
     * end of the load (ember_cli_inputs_unchanged), where one is granted;
     * a file open for writing cannot be held */
    char why[EMBER_MSG_SIZE];
    if (ember_file_lease_begin(&cli->inputs[i].lease, read_as, why))
        return ember_cli_usage_error(cli, "--%s %s: %s", flag, arg,
                                     strstr(why, ": ") ? strstr(why, ": ") + 2 : why);
    /* one pass: the fingerprint, and the verify of a sealed ember file,
     * which its load then does not repeat; on the threads --threads asks */
    if (ember_file_hash_threads(read_as, cli->threads, &cli->inputs[i].bytes,
                                &cli->inputs[i].xxh3, why)) {
        size_t skip = strlen(read_as);
        const char *reason = strncmp(why, read_as, skip) == 0 && why[skip] == ':'
                                 ? why + skip + 2 : why;
        return ember_cli_usage_error(cli, "--%s %s: cannot read: %s", flag, arg, reason);
    }
    /* the path recorded: the file hashed, by its descriptor where it can */
    char real[PATH_MAX];
    ssize_t len = read_as == by_fd ? readlink(by_fd, real, sizeof real - 1) : -1;
    if (len > 0 && real[0] == '/')
        real[len] = '\0';
    snprintf(cli->inputs[i].path, sizeof cli->inputs[i].path, "%s",
             (len > 0 && real[0] == '/') || realpath(file, real) ? real : file);
    if (!ember_cli_input_same(cli, i))
        return ember_cli_usage_error(cli, "--%s %s: replaced or written while being "
                                     "read; run again once the file stays put", flag, arg);
    cli->inputs[i].hashed = 1;
    return 0;
}

/* The input (its role, and *arg as given) that is the file at path, or
 * NULL: compared by device and inode, so any name of it counts. */
static const char *input_at(const ember_cli *cli, const char *path, const char **arg)
{
    struct stat out, st;
    if (stat(path, &out) != 0)
        return NULL;
    for (int i = -1; i < cli->ninputs; i++) {
        /* -1: cli->input of a tool that never prepared its inputs */
        const char *a = i < 0 ? cli->input : cli->inputs[i].arg;
        char file[PATH_MAX], dataset[1024];
        if (!a || (i < 0 && find_input_role(cli, "input") >= 0))
            continue;
        if (i >= 0 && cli->inputs[i].hashed) { /* the file hashed, whatever its name */
            st.st_dev = (dev_t)cli->inputs[i].stamp[0];
            st.st_ino = (ino_t)cli->inputs[i].stamp[1];
        } else if (input_file(a, file, sizeof file, dataset, sizeof dataset) ||
                   stat(file, &st) != 0) {
            continue;
        }
        if (st.st_dev != out.st_dev || st.st_ino != out.st_ino)
            continue;
        *arg = a;
        return i < 0 ? "input" : cli->inputs[i].role;
    }
    return NULL;
}

/* path's absolute name: the file's own, or (not there yet) its directory's
 * with the last component. 0, or -1 (the directory is not there). */
static int resolved_name(const char *path, char *out, size_t size, int follow)
{
    char dir[PATH_MAX], real[PATH_MAX];
    if (follow && realpath(path, real))
        return snprintf(out, size, "%s", real) < (int)size ? 0 : -1;
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!realpath(dir, real))
        return -1;
    return snprintf(out, size, "%s/%s", strcmp(real, "/") ? real : "",
                    slash ? slash + 1 : path) < (int)size ? 0 : -1;
}

/* 1 when the name path (a final symbolic link not followed: the name
 * itself) is --checkpoint-dir, 2 when it is one of the names the loop
 * replaces and deletes there (checkpoints, its lock, temporaries), else 0. */
static int in_checkpoint_dir(const ember_cli *cli, const char *path)
{
    char ck[PATH_MAX], mine[PATH_MAX];
    if (!cli->checkpoint_dir || resolved_name(path, mine, sizeof mine, 0) ||
        resolved_name(cli->checkpoint_dir, ck, sizeof ck, 1))
        return 0;
    if (strcmp(mine, ck) == 0)
        return 1;
    const char *base = strrchr(mine, '/') + 1;
    size_t dl = (size_t)(base - 1 - mine), bl = strlen(base);
    return dl == strlen(ck) && !strncmp(mine, ck, dl) &&
                   (!strncmp(base, "ckpt-", 5) || !strcmp(base, "ember.lock") ||
                    (bl >= 4 && !strcmp(base + bl - 4, ".tmp")))
               ? 2 : 0;
}

/* The file an output named path is written to: path, or, when path is a
 * symbolic link, the file it leads to (written through, as --metrics and
 * the library's saves are; replacing the link left its target with the
 * previous result). A dangling link leads to where its text says. */
static const char *through_link(const char *path, char *buf, size_t size)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode))
        return path;
    char *real = realpath(path, NULL);
    if (real) {
        int fits = snprintf(buf, size, "%s", real) < (int)size;
        free(real);
        return fits ? buf : path;
    }
    char to[PATH_MAX];
    ssize_t n = readlink(path, to, sizeof to - 1);
    if (n <= 0)
        return path;
    to[n] = '\0';
    const char *slash = strrchr(path, '/');
    int dir = to[0] == '/' || !slash ? 0 : (int)(slash - path) + 1;
    return snprintf(buf, size, "%.*s%s", dir, path, to) < (int)size ? buf : path;
}

/* The directory path's name is in ("." for a bare name). */
static const char *dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    snprintf(buf, size, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
             slash ? path : ".");
    return buf;
}

/* An output that can be created (a temporary beside it is created and
 * removed), that is no input and no other flag's output. */
int ember_cli_check_output(ember_cli *cli, const char *flag, const char *spec)
{
    struct stat st;
    char tmp[PATH_MAX], path[PATH_MAX];
    if (!spec[0])
        return ember_cli_usage_error(cli, "--%s: empty file name", flag);
    ember_cli_output_file(spec, path, sizeof path);
    if (strcmp(path, "-") == 0) /* a file named "-" is not what was meant */
        return ember_cli_usage_error(cli, "--%s -: outputs are files, written whole and "
                                     "renamed into place, never standard output: give a "
                                     "file's name (./- for a file named '-')", flag);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return ember_cli_usage_error(cli, "--%s %s: is a directory, not a file", flag,
                                     path);
    /* An output is written whole, as a new file renamed over the name, which
     * would put a regular file in place of a device (as root, /dev/null) or
     * a pipe; the metrics are appended where they are. */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && strcmp(flag, "metrics") != 0)
        return ember_cli_usage_error(cli, "--%s %s: not a regular file (%s); the output "
                                     "is written as a new file renamed over that name, "
                                     "which would replace it: give a file's name", flag,
                                     path, S_ISFIFO(st.st_mode) ? "a pipe"
                                           : S_ISSOCK(st.st_mode) ? "a socket" : "a device");
    if (ember_cli_tmp_name(path, tmp, sizeof tmp))
        return ember_cli_usage_error(cli, "--%s %s: %s", flag, path,
                                     strerror(ENAMETOOLONG));
    const char *arg, *role = input_at(cli, path, &arg);
    if (role)
        return ember_cli_usage_error(cli, "--%s %s: is the input file (--%s %s); "
                                     "writing it would destroy the input", flag, path,
                                     role, arg);
    /* a probe of its own (O_EXCL), never a file that is there; metrics
     * that are there are appended to where they are (checked below), in a
     * directory that may take no file (--metrics /dev/stderr) */
    int metrics = strcmp(flag, "metrics") == 0, there = metrics && stat(path, &st) == 0;
    int fd = there ? -1 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (!there && fd < 0) { /* the directory, not the probe's name: the same on every rank */
        char dir[PATH_MAX];
        return ember_cli_usage_error(cli, "--%s %s: cannot create a file in %s: %s", flag,
                                     path, dir_of(tmp, dir, sizeof dir), strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
        ember_h5_scratch(tmp, 0); /* a probe's name, never written again */
    }
    /* What would fail only at the end, after all the work: a metrics file
     * that cannot be appended to, and a file that cannot be replaced
     * (another user's, in a sticky directory such as /tmp). */
    char through[PATH_MAX], dir[PATH_MAX];
    const char *file = through_link(path, through, sizeof through);
    dir_of(file, dir, sizeof dir);
    struct stat ds;
    if (metrics && stat(file, &st) == 0 && S_ISFIFO(st.st_mode)) {
        /* opened and closed, a pipe's reader would see its end */
        if (access(file, W_OK) != 0)
            return ember_cli_usage_error(cli, "--%s %s: cannot write to it: %s", flag,
                                         path, strerror(errno));
    } else if (metrics && stat(file, &st) == 0) {
        if ((fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
            return ember_cli_usage_error(cli, "--%s %s: cannot append to it: %s", flag,
                                         path, strerror(errno));
        close(fd);
    }
    if (!metrics && geteuid() != 0 && lstat(file, &st) == 0 &&
        st.st_uid != geteuid() && stat(dir, &ds) == 0 && (ds.st_mode & S_ISVTX) &&
        ds.st_uid != geteuid())
        return ember_cli_usage_error(cli, "--%s %s: another user's file in a sticky "
                                     "directory (%s, as /tmp is): it cannot be replaced; "
                                     "write elsewhere, or have it removed", flag, path, dir);
    int n = cli->noutputs;
    if (n == (int)(sizeof cli->outputs / sizeof cli->outputs[0]) ||
        resolved_name(path, cli->outputs[n].path, sizeof cli->outputs[n].path, 1))
        return ember_cli_usage_error(cli, "--%s %s: cannot resolve its name (internal)",
                                     flag, path);
    int in_ck = in_checkpoint_dir(cli, path);
    if (in_ck)
        return ember_cli_usage_error(cli, "--%s %s: %s --checkpoint-dir %s; write it "
                                     "elsewhere", flag, path, in_ck == 2
                                     ? "a name of the files the checkpoints replace and "
                                       "delete in"
                                     : "is", cli->checkpoint_dir);
    for (int i = 0; i < n; i++)
        if (strcmp(cli->outputs[i].path, cli->outputs[n].path) == 0)
            return ember_cli_usage_error(cli, "--%s %s: the same file as --%s; each "
                                         "output needs a file of its own", flag, path,
                                         cli->outputs[i].flag);
    cli->outputs[n].flag = flag;
    cli->noutputs = n + 1;
    return 0;
}

const char *ember_cli_output_file(const char *spec, char *file, size_t size)
{
    const char *cut = NULL;
    for (const char *p = strstr(spec, ":/"); p; p = strstr(p + 1, ":/"))
        cut = p;
    if (cut == spec) /* ":/x" names a file of that name */
        cut = NULL;
    snprintf(file, size, "%.*s", cut ? (int)(cut - spec) : (int)strlen(spec), spec);
    return cut;
}

/* The temporaries of this process's outputs, removed by a SIGTERM, SIGINT
 * or SIGHUP that would end it (its action the default one), before the
 * signal ends it as it would have: ember-gen killed that way left one each
 * time, of the whole output's size. A name already renamed into place
 * leads nowhere, so none is ever taken back. */
static char pending_tmp[4][PATH_MAX];
static volatile sig_atomic_t pending_whole[4]; /* a slot's name is complete */
static int pending_next;

static void remove_pending(int sig)
{
    for (int i = 0; i < 4; i++)
        if (pending_whole[i])
            unlink(pending_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void remove_on_signal(const char *tmp)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    int i = pending_next++ % 4;
    pending_whole[i] = 0; /* half a name could be another file's */
    if (strlen(tmp) >= PATH_MAX)
        return;
    memcpy(pending_tmp[i], tmp, strlen(tmp) + 1);
    pending_whole[i] = 1;
    for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++) {
        struct sigaction old, sa;
        if (sigaction(sigs[k], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
            (old.sa_flags & SA_SIGINFO))
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_pending;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[k], &sa, NULL);
    }
}

/* What tells this process's temporaries from those of processes elsewhere:
 * a hash of the boot (boot_id), the host's name and the PID namespace, so
 * that a pid in a temporary's name means a process here. *here (when
 * here is not NULL) is 0 when the boot or the namespace cannot be told
 * (not Linux): then no temporary is ever taken for a dead process's. */
static uint32_t host_tag(int *here)
{
    static uint32_t tag;
    static int done, known;
    if (!done) {
        char buf[256];
        uint64_t h = 0xcbf29ce484222325u;
        int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
        if (fd >= 0)
            close(fd);
        struct stat ns;
        known = n > 0 && stat("/proc/self/ns/pid", &ns) == 0;
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 0x100000001b3u;
        if (gethostname(buf, sizeof buf) == 0)
            for (size_t i = 0; i < sizeof buf && buf[i]; i++)
                h = (h ^ (unsigned char)buf[i]) * 0x100000001b3u;
        if (known)
            h = (h ^ (uint64_t)ns.st_ino) * 0x100000001b3u;
        tag = (uint32_t)(h ^ h >> 32);
        done = 1;
    }
    if (here)
        *here = known;
    return tag;
}

/* The temporaries of dead processes beside an output: NAME.<tag><pid><n>.tmp
 * (8, 8 and 4 hex digits) with this host's tag and the pid of no live
 * process, left by a run killed with SIGKILL while it wrote (each the
 * output's size), are removed. A live writer's pid is alive, so its file
 * is never taken; a pid used again by another process keeps the file. */
static void sweep_dead(const char *dir, const char *base, size_t blen)
{
    int here;
    uint32_t tag = host_tag(&here);
    DIR *d = here ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strlen(n) != blen + 25 || memcmp(n, base, blen) != 0 || n[blen] != '.' ||
            strcmp(n + blen + 21, ".tmp") != 0 ||
            strspn(n + blen + 1, "0123456789abcdef") != 20)
            continue;
        char hex[9] = "";
        memcpy(hex, n + blen + 1, 8);
        uint32_t t = (uint32_t)strtoul(hex, NULL, 16);
        memcpy(hex, n + blen + 9, 8);
        long pid = strtol(hex, NULL, 16);
        struct stat st;
        if (t == tag && pid > 0 && pid <= 0x7fffffff && pid != (long)getpid() &&
            kill((pid_t)pid, 0) != 0 && errno == ESRCH &&
            fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

int ember_cli_tmp_name(const char *path, char *tmp, size_t size)
{
    char through[PATH_MAX], dir[PATH_MAX];
    path = through_link(path, through, sizeof through);
    /* A name of this write's own: two runs writing the same output (or a
     * run beside a stale temporary of a killed one) never write into one
     * file, and the last rename gives a whole file of one of them. The
     * host's tag and the pid keep processes apart, here and on other hosts
     * of a shared file system, and say whose it is: a dead process's is
     * removed (sweep_dead). */
    static unsigned count;
    /* a name of up to NAME_MAX bytes leaves room for the 25 of the suffix:
     * a longer one gives its first bytes to the temporary's name */
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    size_t blen = strlen(base), keep = strlen(path);
    if (blen + 25 > NAME_MAX) {
        keep -= blen + 25 - NAME_MAX;
        blen = NAME_MAX - 25;
    }
    if (snprintf(tmp, size, "%.*s.%08" PRIx32 "%08lx%04x.tmp", (int)keep, path, host_tag(NULL),
                 (unsigned long)getpid() & 0xffffffffu, count++ & 0xffffu) >= (int)size)
        return -1;
    sweep_dead(dir_of(path, dir, sizeof dir), base, blen);
    /* A file already at this name is no write of this process's (its
     * count is new): a killed process's whose pid this one got again,
     * which sweep_dead leaves (the pid is alive). A regular file goes; a
     * link stays, for the exclusive create to refuse. */
    struct stat st;
    if (lstat(tmp, &st) == 0 && S_ISREG(st.st_mode))
        unlink(tmp);
    remove_on_signal(tmp);
    /* this run's own until ember_cli_publish renames it: the library's
     * HDF5 writers change it in place, not through a copy of it */
    return ember_h5_scratch(tmp, 1) ? -1 : 0;
}

FILE *ember_cli_create(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

int ember_cli_sync(const char *path, int dir)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int bad = fsync(fd) != 0 && !(dir && errno == EINVAL);
    int e = errno;
    close(fd);
    errno = e;
    return bad ? -1 : 0;
}

int ember_cli_publish(int status, const char *tmp, const char *path, char *msg)
{
    /* The bytes reach the device before the rename, and the rename before
     * exit 0: a crash of the machine soon after a job ended left an
     * output of 0 bytes under its name, and nothing said to rerun it. */
    ember_h5_scratch(tmp, 0);
    char through[PATH_MAX];
    path = through_link(path, through, sizeof through);
    const char *step = status ? NULL : ember_cli_sync(tmp, 0) ? "write" : NULL;
    if (status == 0 && !step && rename(tmp, path) != 0)
        step = "rename";
    int e = errno;
    if (status == 0 && !step) {
        char dir[PATH_MAX];
        if (ember_cli_sync(dir_of(path, dir, sizeof dir), 1) == 0)
            return EMBER_OK;
        snprintf(msg, EMBER_MSG_SIZE, "%.200s: written, but its directory %.200s could "
                 "not be synced: %s", path, dir, strerror(errno));
        return EMBER_EIO;
    }
    remove(tmp);
    if (status)
        return status;
    snprintf(msg, EMBER_MSG_SIZE, "%.200s: cannot %s %.200s%s: %s%s", path, step, tmp,
             strcmp(step, "rename") ? " to the device" : " to it", strerror(e),
             e == ENOSPC || e == EDQUOT ? " (free space, or write it elsewhere)" : "");
    return EMBER_EIO;
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
    /* with EMBER_TEST_LOAD_READY=P: P.<pid> says the inputs are hashed,
     * and P.go, once it exists, ends the delay */
    const char *ready = getenv("EMBER_TEST_LOAD_READY");
    char go[PATH_MAX] = "";
    if (ready && *ready) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s.%ld", ready, (long)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd >= 0)
            close(fd);
        snprintf(go, sizeof go, "%s.go", ready);
    }
    double until = ember_cli_now() + secs;
    for (double left = secs; left > 0 && !(go[0] && access(go, F_OK) == 0);
         left = until - ember_cli_now()) {
        if (go[0] && left > 0.01)
            left = 0.01;
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int ember_cli_prepare(ember_cli *cli)
{
    int rc = 0;
    ember_cli_hold_errors(cli);
    if (cli->input && !(cli->prog->omit & EMBER_CLI_NO_INPUT) &&
        find_input_role(cli, "input") < 0) {
        /* --input first, so it is the one messages name first */
        if (cli->ninputs >= (int)(sizeof cli->inputs / sizeof cli->inputs[0])) {
            rc = ember_cli_usage_error(cli, "too many input files (internal)");
        } else {
            memmove(&cli->inputs[1], &cli->inputs[0],
                    (size_t)cli->ninputs * sizeof cli->inputs[0]);
            cli->ninputs++;
            memset(&cli->inputs[0], 0, sizeof cli->inputs[0]);
            cli->inputs[0].role = "input";
            cli->inputs[0].arg = cli->input;
        }
    }
    for (int i = 0; !rc && i < cli->ninputs; i++)
        rc = prepare_input(cli, i);
    /* The algorithm programs write whole files with their own dataset
     * names (docs/formats.md): "file.h5:/path" would only fail at the end. */
    if (!rc && cli->output && !(cli->prog->omit & EMBER_CLI_NO_OUTPUT) &&
        strstr(cli->output, ":/"))
        rc = ember_cli_usage_error(cli, "--output %s: %s writes a whole file with its "
                                   "own dataset names; give a file name, without :/path",
                                   cli->output, cli->prog->name);
    if (!rc && cli->output && !(cli->prog->omit & EMBER_CLI_NO_OUTPUT))
        rc = ember_cli_check_output(cli, "output", cli->output);
    if (!rc && cli->metrics)
        rc = ember_cli_check_output(cli, "metrics", cli->metrics);
    for (int i = 0; !rc && i < cli->nmore_outputs; i++)
        rc = ember_cli_check_output(cli, cli->more_outputs[i].role,
                                    cli->more_outputs[i].path);
    struct stat st;
    if (!rc && cli->checkpoint_dir && cli->resume == EMBER_RESUME_REQUIRE &&
        stat(cli->checkpoint_dir, &st) != 0 && errno == ENOENT) /* not made to refuse */
        rc = ember_cli_usage_error(cli, "--checkpoint-dir %s: no such directory, and "
                                   "--resume require needs a checkpoint in it",
                                   cli->checkpoint_dir);
    if (!rc && cli->checkpoint_dir && strlen(cli->checkpoint_dir) > EMBER_LOOP_DIR_MAX)
        rc = ember_cli_usage_error(cli, "--checkpoint-dir %.60s...: %zu bytes long, more "
                                   "than the %d a checkpoint directory may have",
                                   cli->checkpoint_dir, strlen(cli->checkpoint_dir),
                                   EMBER_LOOP_DIR_MAX);
    if (!rc && cli->checkpoint_dir) {
        int e = make_dirs(cli->checkpoint_dir);
        if (e && lstat(cli->checkpoint_dir, &st) == 0 && S_ISLNK(st.st_mode))
            rc = ember_cli_usage_error(cli, "--checkpoint-dir %s: a symbolic link that "
                                       "leads to no directory (%s): make its target, or "
                                       "give another directory", cli->checkpoint_dir,
                                       strerror(stat(cli->checkpoint_dir, &st) ? errno : e));
        else if (e)
            rc = ember_cli_usage_error(cli, "--checkpoint-dir %s: %s",
                                       cli->checkpoint_dir, strerror(e));
    }
    /* The same arguments fail alike on every rank (rank 0 alone says so),
     * but an input written while being hashed may fail one rank alone: the
     * others stop too rather than wait for it in the first collective. */
    rc = ember_cli_release_errors(cli, rc, "inputs or outputs");
    if (!rc)
        rc = agree_command(cli);
    if (rc)
        return rc;
    if (cli->deadline_seconds > 0)
        arm_deadline(cli);
    test_load_delay();
    return EMBER_CLI_RUN;
}

/* The library's refusal ends with the loop option's name; a user of the
 * programs knows the flag. Removes that tail and returns 1 when it was
 * there. */
static int drop_option_tail(char *msg)
{
    static const char tail[] = "; force_resume would resume anyway";
    char *at = strstr(msg, tail);
    if (!at)
        return 0;
    memmove(at, at + sizeof tail - 1, strlen(at + sizeof tail - 1) + 1);
    return 1;
}

/* Cuts the list s (items joined by ", " or "; ") to fit room bytes: after
 * its last whole item that fits, with ", and more"; a list whose first
 * item does not fit is cut at a space, with " ...". */
static void cut_list(char *s, size_t room)
{
    static const char more[] = ", and more";
    if (strlen(s) <= room || room < sizeof more)
        return;
    size_t end = room - (sizeof more - 1), at = end;
    while (at > 0 && !((s[at] == ',' || s[at] == ';') && s[at + 1] == ' '))
        at--;
    if (at) {
        memcpy(s + at, more, sizeof more);
        return;
    }
    while (end > 0 && s[end] != ' ')
        end--;
    memcpy(s + end, " ...", 5);
}

/* A refusal to resume, in the programs' words: an input whose content
 * changed is named first; --force-resume is named once, where it helps. */
static void explain_mismatch(const ember_cli *cli, char *msg)
{
    if (!msg)
        return;
    int forcible = drop_option_tail(msg);
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
        /* An ember .h5 made again records its own creation time. */
        char magic[8] = "";
        int fd = open(cli->inputs[i].path, O_RDONLY | O_CLOEXEC);
        int sealed = fd >= 0 && pread(fd, magic, 8, 0) == 8 &&
                     memcmp(magic, "EMBERSUM", 8) == 0;
        if (fd >= 0)
            close(fd);
        int n = snprintf(head, sizeof head, "--%s %s has other content than the "
                         "input of the checkpointed run (now %" PRIu64 " bytes, xxh3 "
                         "%016" PRIx64 ")%s; --force-resume resumes anyway. ",
                         cli->inputs[i].role, cli->inputs[i].arg,
                         cli->inputs[i].bytes, cli->inputs[i].xxh3,
                         sealed ? " (an ember file made again differs in its "
                                  "creation time unless SOURCE_DATE_EPOCH was set "
                                  "for both)"
                                : "");
        size_t h = n < 0 ? 0 : (size_t)n < sizeof head ? (size_t)n : sizeof head - 1;
        size_t w = strlen(was);
        /* short of room, the list first: the head named the input */
        static const char lead[] = " is from another run: ";
        const char *list = strstr(was, lead);
        if (h + w > EMBER_MSG_SIZE - 1 && list) {
            memmove(was, list + sizeof lead - 1, strlen(list + sizeof lead - 1) + 1);
            w = strlen(was);
        }
        cut_list(was, EMBER_MSG_SIZE - 1 - h);
        w = strlen(was);
        if (h + w > EMBER_MSG_SIZE - 1)
            w = EMBER_MSG_SIZE - 1 - h;
        memcpy(msg, head, h);
        memcpy(msg + h, was, w);
        msg[h + w] = '\0';
        return;
    }
    size_t len = strlen(msg);
    if (forcible)
        snprintf(msg + len, EMBER_MSG_SIZE - len, "; --force-resume resumes anyway");
}

int ember_cli_loop(ember_loop **out, ember_ctx *ctx, ember_cli *cli, char *msg)
{
    *out = NULL;
    cli->ctx = ctx;
    if (msg)
        msg[0] = '\0';
    int rc = ember_cli_parameters(cli, cli->parameters, sizeof cli->parameters);
    if (rc) {
        if (msg)
            snprintf(msg, EMBER_MSG_SIZE, "parameters too long for a checkpoint");
        return rc;
    }
    /* what the history's values are, for ember-inspect --plot DIR */
    size_t plen = strlen(cli->parameters);
    if (snprintf(cli->parameters + plen, sizeof cli->parameters - plen,
                 "info.history=%s\n", cli->prog->value_name ? cli->prog->value_name
                                                            : "value") >=
        (int)(sizeof cli->parameters - plen)) {
        if (msg)
            snprintf(msg, EMBER_MSG_SIZE, "parameters too long for a checkpoint");
        return EMBER_ERANGE;
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
        /* neither: the library's default, asynchronous on one process */
        .async = cli->checkpoint_async,
        .sync = cli->checkpoint_sync,
        /* counted from the program's start, not from now */
        .deadline = cli->deadline_seconds > 0
                        ? cli->start_wall + cli->deadline_seconds : 0,
        .quiet = 1, /* the one "resumed from" line is ember_cli_iterate's */
        /* not .iterations: 0 is a count here (--iterations 0), and
         * ember_cli_iterate names the flags */
    };
    if (cli->checkpoint_dir && !o.every && o.seconds <= 0)
        o.seconds = 60;
    ember_loop *loop = NULL;
    rc = ember_loop_create(&loop, ctx, &o, msg);
    /* The loop now owns the signals and the deadline (it stops at an
     * iteration's end, with a checkpoint). */
    if (!rc && cli->checkpoint_dir)
        disarm_deadline();
    /* Named for what they are ("residual", "converged"); format 1
     * checkpoints called them cli_value and cli_converged. */
    const char *value = cli->prog->value_name ? cli->prog->value_name : "value";
    if (!rc)
        rc = ember_loop_bind_f64(loop, value, &cli->value);
    if (!rc)
        rc = ember_loop_format1_name(loop, value, "cli_value");
    if (!rc)
        rc = ember_loop_bind_i64(loop, "converged", &cli->converged);
    if (!rc)
        rc = ember_loop_format1_name(loop, "converged", "cli_converged");
    if (!rc)
        rc = ember_loop_bind_array(loop, "history", EMBER_F64, cli->history,
                                   sizeof cli->history / sizeof cli->history[0]);
    if (!rc)
        rc = ember_loop_format1_name(loop, "history", NULL);
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
    double t_stop;       /* the last iteration's end, once known (else 0) */
    uint64_t first_it;   /* iteration count when this process began */
    uint64_t last_ck_it; /* iteration of the last checkpoint (0: none) */
    uint64_t last_ck_bytes;
    uint64_t ckpts;      /* checkpoints written so far */
    uint64_t ck_bytes;   /* and their bytes (the loop's total_bytes) */
    /* Metrics lines held back from the iteration of a background
     * checkpoint (pend_it) until it commits, so that the line says so
     * with the file's size; in iteration order. */
    uint64_t pend_it;    /* 0: none in flight */
    struct held_line {
        uint64_t it;
        double seconds, value;
    } *held;
    size_t nheld, capheld;
    uint64_t resumed_from; /* restored count, for the metrics' "resumed"
                              line before this process's first iteration
                              (UINT64_MAX: not resumed, or written) */
#define TREND 8              /* values kept for the ETA's trend */
    uint64_t trend_it[TREND];
    double trend_v[TREND];
    uint64_t ntrend;
} report;

static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

/* After each line: a write that failed (a full disk) is said once, and
 * the metrics stop there; the run goes on (its results are elsewhere). */
static void metrics_flush(report *r)
{
    errno = 0;
    if (fflush(r->metrics) == 0 && !ferror(r->metrics))
        return;
    int e = errno;
    fprintf(stderr, "%s: --metrics %s: a write failed (%s): no more lines are written "
            "to it in this run\n", r->cli->prog->name, r->cli->metrics,
            e ? strerror(e) : "an I/O error");
    fclose(r->metrics);
    r->metrics = NULL;
}

static void metrics_iteration(report *r, uint64_t it, double seconds,
                              double value, int ck, uint64_t ck_bytes)
{
    if (!r->metrics)
        return;
    FILE *f = r->metrics;
    if (r->resumed_from != UINT64_MAX)
        fprintf(f, "{\"event\": \"resumed\", \"from_iteration\": %" PRIu64 "}\n",
                r->resumed_from);
    r->resumed_from = UINT64_MAX;
    fprintf(f, "{\"iteration\": %" PRIu64 ", \"seconds\": ", it);
    json_number(f, seconds);
    fprintf(f, ", \"%s\": ", r->cli->prog->value_name ? r->cli->prog->value_name
                                                       : "value");
    json_number(f, value);
    fprintf(f, ", \"checkpoint\": %s, \"checkpoint_bytes\": %" PRIu64 "}\n",
            ck ? "true" : "false", ck ? ck_bytes : (uint64_t)0);
    metrics_flush(r);
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
    json_number(f, c->checkpoint_seconds_lost);
    fputs(", \"checkpoint_write_seconds\": ", f);
    json_number(f, c->checkpoint_write_seconds);
    fprintf(f, ", \"%s\": ", c->prog->value_name ? c->prog->value_name : "value");
    json_number(f, c->value);
    fprintf(f, ", \"converged\": %s}\n", c->converged ? "true" : "false");
    metrics_flush(r);
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

/* The terminal's width: TIOCGWINSZ on stderr, else $COLUMNS, else 80. */
static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    char *end;
    long v = c ? strtol(c, &end, 10) : 0;
    return c && *c && !*end && v > 0 && v < 10000 ? (int)v : 80;
}

static void human_seconds(char *buf, size_t size, double s)
{
    if (s < 60)
        snprintf(buf, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else if (s < 360000)
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else
        snprintf(buf, size, "%.0fh", s / 3600);
}

/* Iterations left, or -1 when nothing can be said: from the cap, and with
 * a tolerance from the value's geometric trend over the last iterations
 * (PageRank's residual falls by about the damping factor each one). */
static double iterations_left(const report *r, uint64_t it, double value)
{
    const ember_cli *c = r->cli;
    if (!(c->prog->value_flags & EMBER_CLI_VALUE_ETA) || it >= c->iterations)
        return -1;
    double cap = (double)(c->iterations - it);
    if (!(c->tolerance > 0))
        return cap;
    int old = r->ntrend <= TREND ? 0 : (int)(r->ntrend % TREND); /* oldest kept */
    if (r->ntrend < 2 || !(value > 0) || !(r->trend_v[old] > 0))
        return -1;
    double steps = (double)(it - r->trend_it[old]);
    double slope = (log(value) - log(r->trend_v[old])) / steps;
    if (!(slope < 0))
        return -1; /* not falling: the cap is no estimate either */
    if (value <= c->tolerance)
        return -1; /* converged: nothing left to estimate */
    return fmin(cap, ceil((log(c->tolerance) - log(value)) / slope - 1e-9));
}

static void remember_value(report *r, uint64_t it, double value)
{
    r->trend_it[r->ntrend % TREND] = it;
    r->trend_v[r->ntrend % TREND] = value;
    r->ntrend++;
}

/* The fields of the progress line, most useful first; a terminal narrower
 * than the whole line loses fields from the end of this list (the
 * program's name, then the checkpoint, the rate, the ETA), so the line never
 * wraps (a wrapped line is not redrawn by "\r": it scrolls). */
enum { F_ITER, F_VALUE, F_ETA, F_RATE, F_CKPT, F_NAME, F_COUNT };

static void progress_fields(report *r, uint64_t it, double value, double now,
                            char f[F_COUNT][96])
{
    ember_cli *c = r->cli;
    const char *vname = c->prog->value_name ? c->prog->value_name : "value";
    double rate = (double)(it - r->first_it) / fmax(now - r->t_start, 1e-9);
    for (int i = 0; i < F_COUNT; i++)
        f[i][0] = '\0';
    snprintf(f[F_NAME], 96, "%s:", c->prog->name);
    if ((c->prog->value_flags & EMBER_CLI_VALUE_ETA) || c->iterations_set)
        snprintf(f[F_ITER], 96, "iteration %" PRIu64 "/%" PRIu64, it, c->iterations);
    else
        snprintf(f[F_ITER], 96, "iteration %" PRIu64, it);
    if (c->prog->value_flags & EMBER_CLI_VALUE_COUNT)
        snprintf(f[F_VALUE], 96, "%s %.0f", vname, value);
    else
        snprintf(f[F_VALUE], 96, "%s %.3e", vname, value);
    if (it > r->first_it)
        snprintf(f[F_RATE], 96, "%.1f it/s", rate);
    double left = iterations_left(r, it, value);
    if (left >= 0 && rate > 0 && it > r->first_it) {
        char t[32];
        human_seconds(t, sizeof t, left / rate);
        snprintf(f[F_ETA], 96, "ETA %s", t);
    }
    if (r->last_ck_it) {
        char b[32];
        human_bytes(b, sizeof b, r->last_ck_bytes);
        if (r->last_ck_bytes) /* 0: the one restored from */
            snprintf(f[F_CKPT], 96, "checkpoint at %" PRIu64 " (%s)", r->last_ck_it, b);
        else
            snprintf(f[F_CKPT], 96, "checkpoint at %" PRIu64, r->last_ck_it);
    } else if (c->checkpoint_dir) {
        snprintf(f[F_CKPT], 96, "no checkpoint yet");
    }
}

/* Joins the fields that fit in `width` columns (name first, then the rest
 * in order), separated by two spaces. */
static void progress_text(char *out, size_t size, char f[F_COUNT][96], int width)
{
    static const int order[F_COUNT] = {F_NAME, F_ITER, F_VALUE, F_ETA, F_RATE, F_CKPT};
    int keep = F_COUNT; /* fields kept: F_ITER .. keep-1 in priority order */
    for (;; keep--) {
        size_t len = 0;
        int prev = -1;
        out[0] = '\0';
        for (int k = 0; k < F_COUNT; k++) {
            int i = order[k];
            if (i >= keep || !f[i][0])
                continue;
            len += (size_t)snprintf(out + len, size - len, "%s%s",
                                    !len ? "" : prev == F_NAME ? " " : "  ", f[i]);
            prev = i;
            if (len >= size)
                len = size - 1;
        }
        if ((int)len <= width || keep <= F_VALUE + 1) {
            if ((int)len > width && width > 0)
                out[width] = '\0'; /* a very narrow terminal */
            return;
        }
    }
}

static void progress(report *r, uint64_t it, double value, int last)
{
    ember_cli *c = r->cli;
    remember_value(r, it, value);
    if (c->quiet)
        return;
    double now = r->t_stop ? r->t_stop : ember_cli_now();
    int due = r->tty ? now - r->t_print >= 0.1 : now - r->t_print >= 2.0;
    if (!due && !last && it != r->first_it + 1)
        return;
    r->t_print = now;
    char f[F_COUNT][96], line[640];
    progress_fields(r, it, value, now, f);
    /* one column spare: a line that fills the last one wraps on some
     * terminals; a log (no terminal) gets every field */
    progress_text(line, sizeof line, f, r->tty ? terminal_width() - 1 : (int)sizeof line);
    fprintf(stderr, "%s%s%s", r->tty ? "\r\033[K" : "", line, r->tty ? "" : "\n");
    r->live = r->tty;
    if (r->tty && last) {
        fputc('\n', stderr);
        r->live = 0;
    }
    fflush(stderr);
}

/* Writes the held metrics lines; the first, the background checkpoint's
 * iteration, marked as checkpointed with `bytes` when `committed`. */
static void flush_held(report *r, int committed, uint64_t bytes)
{
    for (size_t i = 0; i < r->nheld; i++) {
        const struct held_line *h = &r->held[i];
        int ck = committed && h->it == r->pend_it;
        metrics_iteration(r, h->it, h->seconds, h->value, ck, bytes);
    }
    r->nheld = 0;
    r->pend_it = 0;
}

/* Holds a metrics line while a background checkpoint is in flight;
 * writes it (unmarked) when it cannot be held. */
static void hold_line(report *r, uint64_t it, double seconds, double value)
{
    if (!r->metrics)
        return;
    if (r->nheld == r->capheld) {
        size_t cap = r->capheld ? 2 * r->capheld : 16;
        struct held_line *h = realloc(r->held, cap * sizeof *h);
        if (!h) {
            flush_held(r, 0, 0);
            metrics_iteration(r, it, seconds, value, 0, 0);
            return;
        }
        r->held = h;
        r->capheld = cap;
    }
    r->held[r->nheld++] = (struct held_line){it, seconds, value};
}

/* Records iteration `it` (1-based count of iterations done) once the loop
 * call after it has returned; 1 when a checkpoint of it was taken. The
 * metrics mark the iterations whose files committed, with their sizes:
 * written at once (sync mode, finish, a signal), the line says so; started
 * in the background (the default), the lines from its iteration on are
 * held until the loop counts its commit (when it next waits for it, or
 * finds it ended), which may be some iterations later. The progress
 * line's checkpoint is the last committed one. */
static int record(report *r, ember_loop *loop, uint64_t it, double seconds,
                  int last)
{
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    uint64_t commits = st.checkpoints - r->ckpts;
    uint64_t bytes = st.total_bytes - r->ck_bytes;
    r->ckpts = st.checkpoints;
    r->ck_bytes = st.total_bytes;
    if (commits) {
        r->last_ck_it = st.last_iteration;
        r->last_ck_bytes = st.last_bytes;
    }
    if (r->pend_it && commits && st.last_iteration >= r->pend_it) {
        /* at most two commits in one call: the one in flight, then one
         * written at once (a signal, finish) */
        uint64_t b = st.last_iteration == r->pend_it ? st.last_bytes
                     : commits == 2                  ? bytes - st.last_bytes
                                                     : 0;
        flush_held(r, 1, b);
    }
    int written = commits && st.last_iteration == it;
    if (st.last_was_checkpoint && !written && !r->pend_it)
        r->pend_it = it;
    if (r->pend_it)
        hold_line(r, it, seconds, r->cli->value);
    else
        metrics_iteration(r, it, seconds, r->cli->value, written, st.last_bytes);
    progress(r, it, r->cli->value, last);
    return written || st.last_was_checkpoint;
}

/* Truncates the file open on fd after its last newline (a file of lines
 * whose last one was cut short): 0, or -1 when it could not. */
static int drop_cut_line(int fd)
{
    off_t end = lseek(fd, 0, SEEK_END), keep = end;
    char buf[4096];
    while (keep > 0) {
        size_t n = keep < (off_t)sizeof buf ? (size_t)keep : sizeof buf;
        if (pread(fd, buf, n, keep - (off_t)n) != (ssize_t)n)
            return -1;
        size_t i = n;
        while (i > 0 && buf[i - 1] != '\n')
            i--;
        keep -= (off_t)(n - i);
        if (i > 0)
            break;
    }
    return keep < end && ftruncate(fd, keep) != 0 ? -1 : 0;
}

/* The iteration of the last iteration line of the metrics file open on
 * fd (0: none in its last 64 KiB, which hold several hundred lines). */
static uint64_t last_metrics_iteration(int fd)
{
    static const char key[] = "{\"iteration\": ";
    char buf[65536];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t n = end > 0 ? pread(fd, buf, (size_t)(end - from), from) : 0;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    for (char *p = buf + n; p > buf; p--) {
        char *line = p - 1;
        if (*line != '\n' && line != buf)
            continue;
        line += *line == '\n';
        if ((line > buf || from == 0) && !strncmp(line, key, sizeof key - 1) &&
            line[sizeof key - 1] >= '0' && line[sizeof key - 1] <= '9')
            return strtoull(line + sizeof key - 1, NULL, 10);
    }
    return 0;
}

/* A run resumed from a checkpoint at iteration k whose metrics file ends
 * before k (a kill after a background checkpoint committed and before its
 * held lines were written; the kill tests found iteration k's line
 * missing): the lines after the file's last one, up to k, from the
 * checkpoint's history, which holds each iteration's seconds and value
 * as the lines said them (all of them unless the history was thinned). */
static void backfill_metrics(report *r, const ember_loop_stats *st)
{
    const double *h = r->cli->history, *rows = h + 2;
    uint64_t last = last_metrics_iteration(fileno(r->metrics));
    if (last == 0 || last >= st->restored_from)
        return; /* a file with no lines is another run's, or a new one */
    struct stat sb;
    uint64_t bytes = stat(st->last_path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    for (size_t i = 0; i < (size_t)h[0]; i++) {
        const double *row = rows + i * EMBER_CLI_HISTORY_COLS;
        uint64_t it = (uint64_t)row[0];
        if (it <= last || it >= st->restored_from)
            continue;
        int ck = (int)row[3] & (int)EMBER_CLI_HIST_CHECKPOINT;
        metrics_iteration(r, it, row[2], row[1], ck, 0); /* its file's size: unknown */
    }
    /* the checkpoint's own: its value is the restored one; its seconds
     * are gone (null) when a thinned history no longer holds its row */
    size_t used = (size_t)h[0];
    const double *end = used ? rows + (used - 1) * EMBER_CLI_HISTORY_COLS : NULL;
    double seconds = end && end[0] == (double)st->restored_from ? end[2] : NAN;
    metrics_iteration(r, st->restored_from, seconds, r->cli->value, 1, bytes);
}

/* The metrics' stream. This process's stdout or stderr (--metrics
 * /dev/stderr, or the file a log of either goes to) is written through
 * that descriptor: opened again, a fresh run truncated the log, and the
 * two offsets wrote over each other. A named pipe is opened without
 * waiting for a reader (ENXIO without one). *own: a regular file of its
 * own, which a resume repairs and backfills. */
static FILE *open_metrics(const char *path, int restored, int *own)
{
    struct stat ps, fs;
    *own = stat(path, &ps) != 0; /* a new file */
    for (int fd = 1; !*own && fd <= 2; fd++)
        if (fstat(fd, &fs) == 0 && fs.st_dev == ps.st_dev && fs.st_ino == ps.st_ino) {
            int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
            FILE *f = d < 0 ? NULL : fdopen(d, "a");
            if (d >= 0 && !f)
                close(d);
            return f;
        }
    if (!*own && S_ISFIFO(ps.st_mode)) {
        int d = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        FILE *f = d < 0 || fcntl(d, F_SETFL, 0) != 0 ? NULL : fdopen(d, "w");
        if (d >= 0 && !f)
            close(d);
        return f;
    }
    *own = *own || S_ISREG(ps.st_mode);
    return fopen(path, restored ? "a+" : "w");
}

static int open_report(report *r, ember_cli *cli, ember_loop *loop, char *msg)
{
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    memset(r, 0, sizeof *r);
    r->cli = cli;
    r->ckpts = st.checkpoints;
    r->ck_bytes = st.total_bytes;
    r->tty = isatty(STDERR_FILENO);
    r->t_start = r->t_print = ember_cli_now();
    r->t_print -= 1e9; /* the first iteration prints */
    r->resumed_from = UINT64_MAX; /* until the backfill is written */
    if (cli->metrics && cli->rank == 0) { /* rank 0's file */
        int own;
        r->metrics = open_metrics(cli->metrics, st.restored, &own);
        if (!r->metrics) {
            if (msg)
                snprintf(msg, EMBER_MSG_SIZE, "--metrics %s: %s", cli->metrics,
                         errno == ENXIO ? "a named pipe that no process reads (start "
                                          "its reader first)"
                                        : strerror(errno));
            return EMBER_EIO;
        }
        /* a line cut by a kill or a full disk is half a record: dropped,
         * so that the lines appended after it stay readable (the plot
         * refused the whole file for it) */
        int cut = own && st.restored && drop_cut_line(fileno(r->metrics)) != 0;
        if (own)
            fseek(r->metrics, 0, SEEK_END); /* from reading to writing */
        if (cut) /* it stays: at least the next line starts on its own */
            fputc('\n', r->metrics);
        if (own && st.restored && !cut)
            backfill_metrics(r, &st);
    }
    r->resumed_from = st.restored ? st.restored_from : UINT64_MAX;
    if (st.restored) /* the progress line's checkpoint, until a new one */
        r->last_ck_it = st.restored_from;
    if (st.restored && !cli->quiet)
        ember_cli_say("%s: resumed from %s at iteration %" PRIu64, cli->prog->name,
                      st.last_path[0] ? st.last_path : cli->checkpoint_dir, st.restored_from);
    return EMBER_OK;
}

static void close_report(report *r, int rc)
{
    flush_held(r, 0, 0); /* a checkpoint that never committed */
    free(r->held);
    r->held = NULL;
    if (r->live) {
        fputc('\n', stderr);
        r->live = 0;
    }
    metrics_end(r, rc == EMBER_OK ? "done"
                   : rc == EMBER_INTERRUPTED ? "interrupted"
                                             : "error");
    if (r->metrics && fclose(r->metrics) != 0)
        fprintf(stderr, "%s: --metrics %s: %s\n", r->cli->prog->name, r->cli->metrics,
                strerror(errno));
    r->metrics = NULL;
}

/* ---- history (ember_cli.history, bound as "history") ------------------------- */

/* Appends iteration `count` as a row when the stride says so (or flags has
 * EMBER_CLI_HIST_RESUMED); returns the row's index, or -1 when not kept.
 * When the rows are full the stride doubles and only rows whose iteration
 * is a multiple of it stay (until there is room), and the resume marks, up
 * to half the rows, so a plot of a long run still shows where it resumed. */
static long history_add(ember_cli *cli, uint64_t count, double value,
                        double seconds, double flags)
{
    double *h = cli->history, *rows = h + 2;
    const size_t cols = EMBER_CLI_HISTORY_COLS;
    size_t used = (size_t)h[0];
    uint64_t stride = h[1] >= 1 ? (uint64_t)h[1] : 1;
    while (used == EMBER_CLI_HISTORY_ROWS) {
        size_t kept = 0, marks = 0;
        stride *= 2;
        for (size_t i = 0; i < used; i++) {
            int mark = ((int)rows[i * cols + 3] & (int)EMBER_CLI_HIST_RESUMED) &&
                       marks < EMBER_CLI_HISTORY_ROWS / 2;
            marks += (size_t)mark;
            if ((uint64_t)rows[i * cols] % stride == 0 || mark)
                memmove(rows + kept++ * cols, rows + i * cols, cols * sizeof *rows);
        }
        used = kept;
        memset(rows + used * cols, 0, (EMBER_CLI_HISTORY_ROWS - used) * cols * sizeof *rows);
    }
    h[0] = (double)used;
    h[1] = (double)stride;
    if (count % stride != 0 && flags == 0)
        return -1;
    double *r = rows + used * cols;
    r[0] = (double)count;
    r[1] = value;
    r[2] = seconds;
    r[3] = flags;
    h[0] = (double)(used + 1);
    return (long)used;
}

/* Whether a restored history (of a checkpoint at iteration `at`) can be
 * used as history_add and the resume below use it: its row count a whole
 * number up to EMBER_CLI_HISTORY_ROWS, its stride 0 or a whole number from
 * 1 to 2^62, its rows' iterations whole numbers rising from 1 to at most
 * `at`, and their flags whole numbers from 0 to 3. (Rows of iteration 0
 * kept history_add's thinning from ever making room: it doubled the stride
 * until it wrapped to 0 and divided by it.)
 * The array comes back from the checkpoint as it was saved, and a file
 * that verifies can hold any numbers there (its checksum proves its bytes,
 * not who wrote them): a row count of 5000 made the run write past the
 * array (ember-pagerank died of SIGSEGV on such a checkpoint). */
static int history_sane(const double *h, uint64_t at)
{
    const size_t cols = EMBER_CLI_HISTORY_COLS;
    if (!(h[0] >= 0 && h[0] <= EMBER_CLI_HISTORY_ROWS && h[0] == floor(h[0])) ||
        !(h[1] >= 0 && h[1] <= 0x1p62 && h[1] == floor(h[1])))
        return 0;
    double last = 0;
    for (size_t i = 0; i < (size_t)h[0]; i++) {
        const double *r = h + 2 + i * cols;
        if (!(r[0] > last && r[0] <= (double)at && r[0] == floor(r[0])) ||
            !(r[3] >= 0 && r[3] <= 3 && r[3] == floor(r[3])))
            return 0;
        last = r[0];
    }
    return 1;
}

/* Records iteration `done` (its history row `row`, -1: none) once the
 * loop call after it has returned, marking the row when a checkpoint of it
 * was taken. */
static void record_iteration(report *r, ember_loop *loop, uint64_t done,
                             double seconds, long row, int last)
{
    ember_cli *cli = r->cli;
    int ck = record(r, loop, done, seconds, last);
    if (row >= 0 && ck) /* in the checkpoints after this one */
        cli->history[2 + (size_t)row * EMBER_CLI_HISTORY_COLS + 3] +=
            EMBER_CLI_HIST_CHECKPOINT;
}

/* The loop's checkpoint times into the cli, and the metrics' last line. */
static void end_report(report *r, ember_loop *loop, int rc)
{
    ember_loop_stats st;
    ember_loop_get_stats(loop, &st);
    r->cli->checkpoint_write_seconds = st.checkpoint_seconds;
    r->cli->checkpoint_seconds_lost = st.caller_seconds;
    close_report(r, rc);
}

/* The last iteration, its final checkpoint in the background until
 * ember_cli_iterate_end, or failed already (written at once). */
struct final_wait {
    report r;
    uint64_t done;
    double seconds;
    long row;
    int failed;               /* the final checkpoint's failure, or 0 */
    char msg[EMBER_MSG_SIZE]; /* its message */
};

int ember_cli_iterate(ember_cli *cli, ember_loop *loop, ember_cli_step_fn step,
                      void *arg, char *msg)
{
    report r;
    uint64_t it = 0;
    ember_loop_stats st;
    cli->compute_seconds = 0;
    /* the load is done: it read the files that were fingerprinted (every
     * rank checks; they agree) */
    int rc = ember_cli_inputs_unchanged(cli, msg);
    if (rc)
        return rc;
    rc = ember_loop_next(loop, &it, msg);
    if (rc == EMBER_EMISMATCH)
        explain_mismatch(cli, msg);
    if (rc == EMBER_OK && it > cli->iterations) {
        /* this command's result is an earlier iteration's */
        const char *flag = !(cli->prog->omit & EMBER_CLI_NO_ITERATIONS) ? "--iterations"
                           : cli->prog->count_flag ? cli->prog->count_flag
                                                   : "the count";
        snprintf(msg, EMBER_MSG_SIZE, "%s %" PRIu64 ": the checkpoint in %s is at "
                 "iteration %" PRIu64 ", past it, so this run cannot end where it "
                 "asks; give %s %" PRIu64 " or more, or another --checkpoint-dir", flag,
                 cli->iterations, cli->checkpoint_dir, it, flag, it);
        rc = EMBER_EMISMATCH;
    }
    if (rc == EMBER_OK && !history_sane(cli->history, it)) {
        ember_loop_get_stats(loop, &st);
        snprintf(msg, EMBER_MSG_SIZE, "%.250s: its history (/scalars/history) is "
                 "malformed (a row count, stride, iteration or flag out of range, "
                 "or iterations not rising); "
                 "move it away to resume from an earlier checkpoint, or use another "
                 "--checkpoint-dir",
                 st.last_path[0] ? st.last_path : cli->checkpoint_dir);
        rc = EMBER_ECORRUPT;
    }
    cli->iterations_done = it;
    if (rc == EMBER_OK)
        rc = open_report(&r, cli, loop, msg);
    if (rc)
        return rc;
    r.first_it = it;
    ember_loop_get_stats(loop, &st);
    int resumed = st.restored;
    /* A stop flag restored by force was decided under the other run's
     * parameters (a looser tolerance, another graph): decided again. */
    if (ember_loop_forced(loop, cli->forced, sizeof cli->forced) == 1)
        cli->converged = 0;
    /* --stop-at at or before where the run resumed (the demonstration's
     * rerun, which finishes) stops nothing: said, not silently ignored */
    if (cli->stop_at && cli->stop_at <= it && !cli->converged && it < cli->iterations &&
        !cli->quiet && cli->rank == 0)
        fprintf(stderr, "%s: --stop-at %" PRIu64 ": the run resumed at iteration %" PRIu64
                ", not before it, so it runs on\n", cli->prog->name, cli->stop_at, it);
    size_t rows = (size_t)cli->history[0];
    if (resumed && rows && cli->history[2 + (rows - 1) * EMBER_CLI_HISTORY_COLS] ==
                               (double)st.restored_from) {
        /* the restored iteration was checkpointed, whatever its row said */
        double *flags = &cli->history[2 + (rows - 1) * EMBER_CLI_HISTORY_COLS + 3];
        if (!((int)*flags & (int)EMBER_CLI_HIST_CHECKPOINT))
            *flags += EMBER_CLI_HIST_CHECKPOINT;
    }
    while (rc == EMBER_OK && !cli->converged && it < cli->iterations) {
        double t0 = ember_cli_now(), value = NAN;
        int s = step(it, &value, arg, msg);
        double seconds = ember_cli_now() - t0;
        if (s >= 0 && ember_ctx_ranks(cli->ctx) > 1) {
            /* the slowest rank's: the history is bound state, and a
             * checkpoint of several ranks refuses state that differs */
            int64_t neg = -(int64_t)(seconds * 1e9);
            int r = ember_allreduce_min_i64(cli->ctx, &neg, 1, msg);
            s = r ? r : s;
            seconds = (double)-neg * 1e-9;
        }
        cli->compute_seconds += seconds;
        if (s < 0) {
            rc = s;
            break;
        }
        cli->value = value;
        cli->converged = s == EMBER_DONE;
        uint64_t done = it + 1;
        int last = cli->converged || done >= cli->iterations;
        long row = history_add(cli, done, value, seconds,
                               resumed ? EMBER_CLI_HIST_RESUMED : 0);
        resumed = 0;
        /* --stop-at: the program signals itself, so the loop stops here as
         * for any signal (checkpoint, EMBER_INTERRUPTED), on any machine */
        if (cli->stop_at == done && !last && cli->checkpoint_dir)
            raise(SIGUSR1);
        rc = last ? ember_loop_finish_start(loop, msg) : ember_loop_next(loop, &it, msg);
        cli->iterations_done = done;
        /* The result is complete: the program writes it whatever becomes of
         * the final checkpoint (in flight, or failed already), and
         * ember_cli_iterate_end says. */
        int failed = last && rc != EMBER_OK && rc != EMBER_INTERRUPTED ? rc : 0;
        if (last && (rc == EMBER_OK || failed)) {
            ember_loop_get_stats(loop, &st);
            struct final_wait *f = st.last_was_checkpoint || failed ? malloc(sizeof *f) : NULL;
            if (f) { /* ember_cli_iterate_end records it */
                if (r.live) { /* the program's output starts on a clean line */
                    fputs("\r\033[K", stderr);
                    r.live = 0;
                }
                r.t_stop = ember_cli_now(); /* the rate, without the outputs */
                *f = (struct final_wait){r, done, seconds, row, failed, ""};
                if (failed)
                    snprintf(f->msg, sizeof f->msg, "%s", msg);
                cli->final_wait = f;
                return EMBER_OK;
            }
            if (!failed)
                rc = ember_loop_wait(loop, msg);
        }
        if (rc == EMBER_OK || rc == EMBER_INTERRUPTED)
            record_iteration(&r, loop, done, seconds, row,
                             last || rc == EMBER_INTERRUPTED);
        if (last)
            break;
    }
    end_report(&r, loop, rc);
    return rc;
}

int ember_cli_iterate_end(ember_cli *cli, ember_loop *loop, int rc, char *msg)
{
    struct final_wait *f = cli->final_wait;
    if (!f)
        return rc;
    cli->final_wait = NULL;
    char own[EMBER_MSG_SIZE] = "";
    int wrc = f->failed ? f->failed : ember_loop_wait(loop, rc ? own : msg);
    if (f->failed)
        snprintf(rc ? own : msg, EMBER_MSG_SIZE, "%s", f->msg);
    if (wrc == EMBER_OK)
        record_iteration(&f->r, loop, f->done, f->seconds, f->row, 1);
    else if (rc) /* the program's error is the one it returns */
        fprintf(stderr, "%s: %s\n", cli->prog->name, own);
    else if (wrc != EMBER_INTERRUPTED) { /* the result is out: say so */
        snprintf(own, sizeof own, "%s", msg);
        snprintf(msg, EMBER_MSG_SIZE, "the result is complete and written, but its final "
                 "checkpoint failed (%.320s); the same command would compute again from "
                 "the last checkpoint before it", own); /* the end kept whole */
    }
    end_report(&f->r, loop, wrc); /* "done": the loop's outcome, as ever */
    free(f);
    return rc ? rc : wrc;
}

