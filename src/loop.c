/* loop.c: the resumable iteration loop.
 *
 * A loop owns a checkpoint directory, the program state bound to it by name
 * (dataset handles, scalars, arrays, blobs) and the policy that decides when
 * to write "<dir>/ckpt-<iterations done>.h5" (files go through ckptfile.c).
 * The first ember_loop_next restores the newest checkpoint that verifies;
 * each later call counts one iteration done and applies the policy.
 *
 * Invariants:
 * - A file ckpt-N.h5 holds the state after exactly N iterations, bound
 *   datasets with the partition offsets they had, so that a resumed run
 *   computes bit-identical results with any thread count.
 * - Restoring is all or nothing: everything is read and checked before any
 *   bound variable changes; a file that fails on the way is skipped.
 * - Files are deleted (retention) only after a newer one has committed.
 * - The directory is held by one live process, through a lock on
 *   <dir>/ember.lock (dirlock.c); the lock dies with its holder, so it is
 *   never stale.
 * - Nothing is process-wide except the flag the signal handler sets (a
 *   handler can reach nothing else).
 *
 * Counting: ember_loop_next hands out iteration `done`, and the next call,
 * or ember_loop_finish, counts it as done. A program that runs n
 * iterations therefore finishes right after the last one it ran, and the
 * same program restarted after that runs none (tests/programs/
 * ember-loopdemo.c does this):
 *
 *     for (rc = ember_loop_next(loop, &it, msg); rc == EMBER_OK && it < n;
 *          rc = ember_loop_next(loop, &it, msg)) {
 *         step(it);
 *         if (it + 1 == n) {
 *             rc = ember_loop_finish(loop, msg);
 *             break;
 *         }
 *     }
 *
 * Signals: SIGTERM, SIGINT and SIGUSR1 are caught while a loop with a
 * directory lives (one that was ignored when it started stays ignored, as a
 * shell's background job ignores SIGINT); the loop checkpoints after the
 * current iteration and returns EMBER_INTERRUPTED. Without a directory the
 * loop takes no lock, catches no signal, never writes and has no deadline:
 * there would be nothing to save.
 *
 * Programs call this through ember.h. Every call is from the caller's
 * thread; the loop itself never runs in a parallel region.
 *
 * Several ranks (comm.h, docs/mpi.md): every call is collective. Rank 0
 * alone creates the directory, holds the lock, sweeps stray .tmp files,
 * picks and verifies the checkpoint to restore, commits files and retires
 * old ones; every rank writes its own partitions into a checkpoint
 * (ckptpar.c) and reads its own ranges back on restore; each outcome is
 * broadcast, so every rank returns the same status and message. After
 * each iteration one agreement (an OR of integer flags) settles the
 * decision: a signal seen on any rank, the policy due or the deadline near
 * on any rank's clock. Asynchronous
 * checkpoints are refused: their thread would have to run collectives.
 */
#include "internal.h"
#include "comm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#ifdef EMBER_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h> /* the same values, faster (see filesum.c) */
#endif


#define LOCK_NAME "ember.lock"
#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".h5"
#define PATH_SIZE 1024         /* == sizeof stats.last_path */
#define DIR_MAX EMBER_LOOP_DIR_MAX /* room for "/ckpt-<20 digits>.h5.tmp" */
_Static_assert(DIR_MAX + 64 <= PATH_SIZE, "a checkpoint's path fits PATH_SIZE");
#define ITER_TIMES 4           /* iteration-time estimate: max of the last 4 */
#define LINEAGE_CUT 32         /* iterations between looks at deep lineages */
#define LINEAGE_NEAR 8         /* steps a state made from the last one is looked
                                  for within */

static const int loop_signals[3] = {SIGTERM, SIGINT, SIGUSR1};

typedef enum { BIND_DS, BIND_I64, BIND_F64, BIND_ARRAY, BIND_BLOB } bind_kind;

typedef struct {
    char name[EMBER_NAME_SIZE];
    bind_kind kind;
    ember_ds **ds;       /* BIND_DS */
    ember_type type;     /* BIND_DS: the type when bound (checked later) */
    void *data;          /* the other kinds */
    ember_scalar scalar; /* I64, F64, ARRAY */
    size_t n;            /* ARRAY: numbers; BLOB: bytes; scalars: 1 */
    size_t cols;         /* ARRAY: > 0 for a matrix of n / cols rows */
    int note;            /* ARRAY: written for readers, never restored,
                            not in the signature (ember_loop_note_array) */
    uint64_t handed_id;  /* DS: the dataset's id when ember_loop_next
                            returned (ember_loop_checkpoint's check) */
    uint64_t kept_id;    /* DS: the dataset the loop persisted itself
                            (cut_lineages), or 0 */
    size_t cut_depth;    /* DS: the lineage depth the loop's own cuts
                            took off since the last checkpoint (max_depth
                            counts it) */
    char v1_name[EMBER_NAME_SIZE]; /* the name in format 1 files, or "" */
    int v1_absent;       /* bound since format 1: not in those files */
} binding;

typedef struct {
    uint64_t iter;
    char name[64];
} ckpt_entry;

typedef struct async_job async_job;
typedef struct snap_item snap_item;
static void snap_free(struct ember_loop *L);
static int async_join(struct ember_loop *L, char *msg);
static int write_ranks(struct ember_loop *L, const char *name,
                       const char *lineage, char *path, uint64_t *bytes,
                       char *msg);

struct ember_loop {
    ember_ctx *ctx;
    ember_loop_opts o;   /* strings below are the loop's own copies */
    char *dir;           /* NULL: no checkpoints, no lock, no signals */
    char *program;
    char *parameters;
    char *signature;     /* built at the first ember_loop_next */
    uint64_t fingerprint;
    char *signature1;    /* the same as a format 1 file holds them: */
    uint64_t fingerprint1; /* format 1 names, matrices as flat arrays */
    int reading_v1;      /* try_restore: the file is format 1 */
    /* A resume by force: 1 this run's (what differed), 2 an earlier run's
     * that the file restored from carried on; kept in the parameters as
     * "info.forced=" in every later file. try_restore's choice is the
     * candidate until restore takes the file. */
    int forced, forced_cand;
    char forced_note[EMBER_MSG_SIZE], forced_cand_note[EMBER_MSG_SIZE];
    char *recorded;      /* parameters with the "info.forced=" line, or
                            NULL: parameters (see recorded_parameters) */
    int keep;
    int async;           /* policy checkpoints in the background */
    int lock_fd;
    ember__signals sig;

    binding *b;
    size_t nb, capb;

    int started;         /* the first ember_loop_next has run */
    int pending;         /* an iteration was handed out, not yet counted */
    int stopped;         /* returned EMBER_INTERRUPTED or finished */
    int caught;          /* a signal was seen by this loop */
    uint64_t done;       /* iterations done */
    uint64_t passes_handed; /* ctx->passes when ember_loop_next returned:
                               whether the iteration ran an action */
    int have_ckpt;       /* a checkpoint of `ckpt_iter` exists (ours) */
    uint64_t ckpt_iter;
    double last_ckpt_time; /* monotonic; start of the run before the first */
    double last_cost;    /* seconds the last checkpoint took */
    int cost_known;
    double costs[ITER_TIMES]; /* the last few, for the deadline */
    size_t ncosts;
    double iter_start;
    double iter_times[ITER_TIMES];
    size_t niter_times;
    /* Files that were in the directory at start and are newer than the
     * state this run began from (rejected ones, or an earlier run's under
     * RESUME_NEVER). Retention treats them as older than ours. */
    uint64_t *stale;
    size_t nstale;
    int retain_due;      /* retention after a restore, at the first step
                            on: a run refused right after it deletes nothing */

    async_job *job;      /* a checkpoint being written in the background */
    snap_item *snap;     /* the state copied for it: kept, reused by the */
    size_t nsnap;        /* next snapshot (no fresh pages to fault in) */
    ember__ckimg img;    /* the file built in memory (kept likewise) */

    char warn[EMBER_MSG_SIZE];
    ember_loop_stats stats;
};

/* ---- small helpers --------------------------------------------------------- */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A parameter line "info.<key>=..." is information only (an input's
 * path, say): recorded in the file, never compared. */
static int info_line(const char *s, size_t len)
{
    return len >= 5 && memcmp(s, "info.", 5) == 0;
}

/* Fingerprint = FNV-1a 64 of program, parameters (without info lines)
 * and signature, each followed by a NUL so that moving text between them
 * changes it. */
static uint64_t fingerprint(const char *program, const char *parameters,
                            const char *signature)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, program, strlen(program) + 1);
    for (const char *p = parameters; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (!info_line(p, len))
            h = fnv1a(h, p, len);
        p += len;
    }
    h = fnv1a(h, "", 1);
    return fnv1a(h, signature, strlen(signature) + 1);
}

/* Appends a warning to the message the next ember_loop_next returns, and
 * prints it: quiet silences progress, never a warning (a skipped file must
 * be seen). */
static void warn(ember_loop *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warn(ember_loop *L, const char *fmt, ...)
{
    char line[EMBER_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ember__one_line(line);
    fprintf(stderr, "%s\n", line);
    /* Appended piece by piece: the sum may not fit, and is cut. */
    size_t used = strlen(L->warn);
    if (used && used + 2 < sizeof L->warn) {
        memcpy(L->warn + used, "; ", 3);
        used += 2;
    }
    size_t room = sizeof L->warn - used, len = strlen(line);
    if (room > 1) {
        len = len < room - 1 ? len : room - 1;
        memcpy(L->warn + used, line, len);
        L->warn[used + len] = '\0';
    }
}

static int is_root(const ember_loop *L)
{
    return ember__comm_rank(L->ctx) == 0;
}

static int ranks(const ember_loop *L)
{
    return ember__comm_size(L->ctx);
}

/* Rank 0's status and message, on every rank (several ranks only). */
typedef struct {
    int64_t rc;
    uint64_t iter;
    uint64_t bytes;
    int64_t got;
    char path[PATH_SIZE];
    char msg[EMBER_MSG_SIZE];
    uint64_t size;                        /* restore: the file rank 0 chose, */
    unsigned char head[EMBER__FSUM_BLOCK]; /* its size and checksum header */
} root_says;

static int share_root(ember_loop *L, root_says *s, char *msg)
{
    char emsg[EMBER_MSG_SIZE];
    int rc = ember__comm_bcast(L->ctx, s, sizeof *s, emsg);
    if (rc)
        return ember__err(msg, rc, "%s", emsg);
    if (s->rc && msg && !is_root(L))
        snprintf(msg, EMBER_MSG_SIZE, "%s", s->msg);
    return (int)s->rc;
}

static int ckpt_path(const ember_loop *L, const char *name, char *path)
{
    int w = snprintf(path, PATH_SIZE, "%s/%s", L->dir, name);
    return w > 0 && w < PATH_SIZE ? EMBER_OK : EMBER_ERANGE;
}

/* "ckpt-" + 12 or more digits + ".h5" -> the number. */
static int parse_ckpt_name(const char *name, uint64_t *iter)
{
    size_t plen = strlen(CKPT_PREFIX), len = strlen(name);
    if (len <= plen + strlen(CKPT_SUFFIX) ||
        strncmp(name, CKPT_PREFIX, plen) != 0 ||
        strcmp(name + len - strlen(CKPT_SUFFIX), CKPT_SUFFIX) != 0)
        return 0;
    size_t ndig = len - plen - strlen(CKPT_SUFFIX);
    if (ndig < 12 || ndig > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < ndig; i++) {
        char c = name[plen + i];
        if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *iter = v;
    return 1;
}

static int entry_newer_first(const void *a, const void *b)
{
    const ckpt_entry *x = a, *y = b;
    return x->iter < y->iter ? 1 : x->iter > y->iter ? -1 : 0;
}

/* The checkpoint files of the directory, newest first (ctx allocation). */
static int list_ckpts(ember_loop *L, ckpt_entry **out, size_t *n, char *msg)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(L->dir);
    if (!d)
        return ember__err(msg, EMBER_EIO, "cannot list checkpoint dir %s: %s",
                          L->dir, strerror(errno));
    ckpt_entry *e = NULL;
    size_t cap = 0, cnt = 0;
    int rc = EMBER_OK;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        uint64_t it;
        if (!parse_ckpt_name(de->d_name, &it))
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            ckpt_entry *ne = ember__realloc(L->ctx, e, ember__mul(nc, sizeof *e));
            if (!ne) {
                rc = ember__err(msg, EMBER_ENOMEM, "out of memory listing %s",
                                L->dir);
                break;
            }
            e = ne;
            cap = nc;
        }
        e[cnt].iter = it;
        /* a checkpoint's name is at most 28 bytes (parse_ckpt_name) */
        snprintf(e[cnt].name, sizeof e[cnt].name, "%.*s", (int)sizeof e[cnt].name - 1,
                 de->d_name);
        cnt++;
    }
    closedir(d);
    if (rc) {
        ember__free(L->ctx, e);
        return rc;
    }
    if (cnt)
        qsort(e, cnt, sizeof *e, entry_newer_first);
    *out = e;
    *n = cnt;
    return EMBER_OK;
}

/* ---- directory, lock, signals ---------------------------------------------- */

/* The checkpoint directory, made with its parents as the context's is
 * (mkdir -p, mode 0777 less the umask): the loop's used to make one level
 * only, mode 0755. */
static int prepare_dir(const char *dir, char *msg)
{
    char part[PATH_MAX];
    if (ember__mkdir_p(dir, part) == 0)
        return EMBER_OK;
    int err = errno, same = strcmp(part, dir) == 0;
    if (err == ENOTDIR && same)
        return ember__err(msg, EMBER_EINVAL, "checkpoint dir %s is not a directory", dir);
    return ember__err(msg, EMBER_EIO, "checkpoint dir %s: %s%s%s%s", dir, strerror(err),
                      same ? "" : " (at ", same ? "" : part, same ? "" : ")");
}

/* Under an MPI launcher, a context that never joined the job's ranks is
 * one of several serial runs on one directory: the lock refuses all but
 * one, which says in use, not why. */
static int lock_dir(ember_loop *L, char *msg)
{
    int rc = ember__dir_lock(L->dir, LOCK_NAME, "checkpoint dir", &L->lock_fd, msg);
    const char *world = getenv("OMPI_COMM_WORLD_SIZE");
    if (!world)
        world = getenv("PMI_SIZE");
    if (rc == EMBER_EBUSY && ranks(L) == 1 && world && atoi(world) > 1 && msg) {
        size_t used = strlen(msg);
        snprintf(msg + used, EMBER_MSG_SIZE - used, " (this process is one of %d that "
                 "an MPI launcher started, but its context has one rank: for the "
                 "ranks to run one loop, a program is built with EMBER_MPI and "
                 "calls ember_ctx_set_comm, ember/mpi.h)", atoi(world));
    }
    return rc;
}

/* Removes the temporaries of ember's writes that crashed: "ckpt-*.tmp"
 * (the spare among them) and the ranks' probe, which only the lock's
 * holder writes, and dataset checkpoints' "ds-*.tmp" (the loop's
 * directory is by default the context's checkpoint directory), which
 * other contexts and processes write without the lock: those only when
 * no live writer holds them. Other "*.tmp" files are left alone: the
 * directory may be one that other programs write in too. */
static void sweep_tmp(ember_loop *L)
{
    static const char *const ours[] = {CKPT_PREFIX, "ember-shared.", "ds-"};
    char emsg[EMBER_MSG_SIZE];
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
        if ((i < 2 ? ember__dir_sweep : ember__dir_sweep_unheld)(L->dir, ours[i], emsg))
            warn(L, "ember: %s", emsg);
}

/* A signal ignored when the loop starts stays ignored (a shell's
 * background job ignores SIGINT on purpose). */
static int install_signals(ember_loop *L, char *msg)
{
    return ember__signals_catch(&L->sig, loop_signals, 3, msg);
}

/* ---- create / destroy ------------------------------------------------------ */

static int check_opts(const ember_loop_opts *o, char *msg)
{
    if (o->seconds < 0 || o->mtbf < 0 || o->deadline < 0 || o->keep < 0)
        return ember__err(msg, EMBER_EINVAL,
                          "loop options: seconds, mtbf, deadline and keep "
                          "must be >= 0");
    if (o->deflate < 0 || o->deflate > 9)
        return ember__err(msg, EMBER_EINVAL,
                          "loop options: deflate %d is not in 0..9", o->deflate);
    if (o->resume != EMBER_RESUME_AUTO && o->resume != EMBER_RESUME_NEVER &&
        o->resume != EMBER_RESUME_REQUIRE)
        return ember__err(msg, EMBER_EINVAL, "loop options: bad resume %d",
                          (int)o->resume);
    if (o->async && o->sync)
        return ember__err(msg, EMBER_EINVAL,
                          "loop options: async and sync exclude each other");
    /* A checkpoint stores them in fixed-size fields (ember__ck_info). */
    if (o->program && strlen(o->program) >= sizeof ((ember__ck_info *)0)->program)
        return ember__err(msg, EMBER_EINVAL, "loop options: program name too long");
    if (o->parameters &&
        strlen(o->parameters) >= sizeof ((ember__ck_info *)0)->parameters)
        return ember__err(msg, EMBER_EINVAL, "loop options: parameters too long");
    /* name=value lines: a resume refused for other parameters names the
     * ones that differ */
    int line = 1;
    for (const char *p = o->parameters; p && *p; line++) {
        size_t len = strcspn(p, "\n");
        const char *eq = memchr(p, '=', len);
        if (len && !(len == 1 && *p == '\r') && (!eq || eq == p)) /* "\r\n": blank */
            return ember__err(msg, EMBER_EINVAL, "loop options: parameters line %d "
                              "('%.*s') is not name=value", line,
                              (int)(len < 64 ? len : 64), p);
        p += len + (p[len] == '\n');
    }
    return EMBER_OK;
}

static int copy_strings(ember_loop *L, const ember_loop_opts *o,
                        const char *dir)
{
    L->program = ember__strdup(L->ctx, o->program ? o->program : "");
    L->parameters = ember__strdup(L->ctx, o->parameters ? o->parameters : "");
    if (dir)
        L->dir = ember__strdup(L->ctx, dir);
    L->o.dir = L->dir;
    L->o.program = L->program;
    L->o.parameters = L->parameters;
    return L->program && L->parameters && (!dir || L->dir) ? EMBER_OK
                                                           : EMBER_ENOMEM;
}

/* Whether name is one of the files the loop writes in its directory
 * under a temporary name: a checkpoint's NAME.tmp, the spare
 * (EMBER__CK_SPARE), the ranks' probe ember-shared.tmp. */
static int our_tmp(const char *name)
{
    char ck[64];
    size_t len = strlen(name);
    uint64_t it;
    if (len > 4 && len < sizeof ck && strcmp(name + len - 4, ".tmp") == 0) {
        memcpy(ck, name, len - 4);
        ck[len - 4] = '\0';
        if (parse_ckpt_name(ck, &it))
            return 1;
    }
    return strcmp(name, EMBER__CK_SPARE) == 0 || strcmp(name, "ember-shared.tmp") == 0;
}

/* What would fail only at the first checkpoint, found at the start
 * instead, before any iteration's work: a directory the loop cannot
 * create files in, and a directory by a checkpoint's name or one of its
 * temporaries' (ckpt-spare.tmp), which no commit can write or rename a
 * file over (and which every rerun would meet again). */
static int check_dir(ember_loop *L, char *msg)
{
    char probe[PATH_SIZE];
    snprintf(probe, sizeof probe, "%s/.ember-probe.tmp", L->dir);
    int fd = ember__open_new(probe, 0);
    if (fd < 0)
        return ember__err(msg, ember__denied(errno) ? EMBER_EINVAL : EMBER_EIO,
                          "checkpoint dir %s is not writable: cannot create %s: %s",
                          L->dir, probe, strerror(errno));
    close(fd);
    unlink(probe);
    DIR *d = opendir(L->dir);
    struct dirent *de;
    struct stat st;
    uint64_t it;
    int rc = EMBER_OK;
    while (d && !rc && (de = readdir(d)) != NULL)
        if ((parse_ckpt_name(de->d_name, &it) || our_tmp(de->d_name)) &&
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode))
            rc = ember__err(msg, EMBER_EINVAL, "checkpoint dir %s: %s/%s is a directory "
                            "where the loop would write a checkpoint; remove it",
                            L->dir, L->dir, de->d_name);
    if (d)
        closedir(d);
    return rc;
}

static int open_dir(ember_loop *L, char *msg)
{
    if (strlen(L->dir) == 0)
        return ember__err(msg, EMBER_EINVAL, "checkpoint dir: an empty name");
    if (strlen(L->dir) > DIR_MAX)
        return ember__err(msg, EMBER_EINVAL, "checkpoint dir %.60s...: %zu bytes long, "
                          "more than the %d a loop takes", L->dir, strlen(L->dir),
                          DIR_MAX);
    int rc = EMBER_OK;
    struct stat st;
    if (is_root(L) && L->o.resume == EMBER_RESUME_REQUIRE && stat(L->dir, &st) != 0 &&
        errno == ENOENT) /* not made only to be refused */
        rc = ember__err(msg, EMBER_ENOTFOUND, "no usable checkpoint in %s (resume "
                        "required; the directory does not exist)", L->dir);
    else if (is_root(L)) {
        rc = prepare_dir(L->dir, msg);
        if (!rc)
            rc = lock_dir(L, msg);
        if (!rc)
            sweep_tmp(L);
        if (!rc)
            rc = check_dir(L, msg);
    }
    if (ranks(L) > 1) {
        root_says s;
        memset(&s, 0, sizeof s);
        s.rc = rc;
        if (rc && msg)
            snprintf(s.msg, sizeof s.msg, "%s", msg);
        rc = share_root(L, &s, msg);
        if (!rc) /* at the start, not after the first checkpoint's work */
            rc = ember__ckp_check_shared(L->ctx, L->dir, msg);
    }
    if (!rc && !L->o.no_signals)
        rc = install_signals(L, msg);
    return rc;
}

int ember_loop_create(ember_loop **out, ember_ctx *ctx,
                      const ember_loop_opts *opts, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx)
        return ember__err(msg, EMBER_EINVAL, "ember_loop_create: NULL argument");
    *out = NULL;
    ember_loop_opts none;
    memset(&none, 0, sizeof none);
    const ember_loop_opts *o = opts ? opts : &none;
    int rc = check_opts(o, msg);
    if (rc)
        return rc;
    ember_loop *L = ember__calloc(ctx, 1, sizeof *L);
    if (!L)
        return ember__err(msg, EMBER_ENOMEM, "out of memory creating a loop");
    L->ctx = ctx;
    ctx->loops++;
    L->o = *o;
    L->lock_fd = -1;
    L->keep = o->keep ? o->keep : 2;
    if (o->async && ranks(L) > 1) {
        ember_loop_destroy(&L);
        return ember__err(msg, EMBER_EINVAL,
                          "asynchronous checkpoints (--checkpoint-async) are "
                          "not supported with %d MPI ranks: the background "
                          "writer would have to run collectives",
                          ember__comm_size(ctx));
    }
    /* The default: in the background on one process, collective (so on
     * this thread) on several. */
    L->async = o->async || (!o->sync && ranks(L) == 1);
    const char *dir = o->dir ? o->dir : ember_ctx_checkpoint_dir(ctx);
    rc = copy_strings(L, o, dir);
    if (rc)
        ember__err(msg, rc, "out of memory creating a loop");
    else if (L->dir)
        rc = open_dir(L, msg);
    if (rc) {
        ember_loop_destroy(&L);
        return rc;
    }
    *out = L;
    return EMBER_OK;
}

void ember_loop_destroy(ember_loop **pl)
{
    if (!pl || !*pl)
        return;
    ember_loop *L = *pl;
    *pl = NULL;
    ember_ctx *ctx = L->ctx;
    char emsg[EMBER_MSG_SIZE];
    if (async_join(L, emsg) != EMBER_OK)
        fprintf(stderr, "%s\n", emsg); /* nobody is left to return it to */
    ember__signals_restore(&L->sig);
    char spare[PATH_SIZE];
    /* Only while holding the lock: a run refused the directory must not
     * delete the spare of the run that has it. */
    if (L->dir && L->lock_fd >= 0 &&
        !ember__ck_spare(L->dir, spare, sizeof spare))
        unlink(spare); /* under the lock still: nobody else uses it */
    if (L->lock_fd >= 0)
        close(L->lock_fd); /* releases the lock; the file stays */
    snap_free(L);
    ember__ckimg_free(ctx, &L->img);
    ember__free(ctx, L->b);
    ember__free(ctx, L->stale);
    ember__free(ctx, L->dir);
    ember__free(ctx, L->program);
    ember__free(ctx, L->parameters);
    ember__free(ctx, L->recorded);
    ember__free(ctx, L->signature);
    ember__free(ctx, L->signature1);
    ember__free(ctx, L);
    ember__ctx_release(ctx);
}

/* The parameters a checkpoint records. */
static const char *recorded_parameters(const ember_loop *L)
{
    return L->recorded ? L->recorded : L->parameters;
}

/* ---- binding ----------------------------------------------------------------- */

/* Names become HDF5 link names and signature keys: letters, digits, '_',
 * '-' and '.', not starting with '.' or '-'. What is wrong with name, or
 * NULL. */
static const char *name_fault(const ember_loop *L, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0)
        return "a binding needs a name";
    if (len >= EMBER_NAME_SIZE)
        return "a name has at most 31 bytes";
    if (name[0] == '.' || name[0] == '-')
        return "a name must not start with '.' or '-'";
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!ok)
            return "a name holds letters, digits, '_', '-' and '.' only";
    }
    for (size_t i = 0; i < L->nb; i++)
        if (strcmp(L->b[i].name, name) == 0)
            return "the name is bound already";
    return NULL;
}

/* The bind calls take no msg: a refusal says on stderr which name and why,
 * as a caller that only sees EMBER_EINVAL could not tell. */
static int refused(const char *name, int rc, const char *why)
{
    fprintf(stderr, "ember: cannot bind '%.40s': %s\n", name ? name : "(NULL)", why);
    return rc;
}

/* Adds b, bound under name; bad says what is wrong with the caller's data
 * (NULL: nothing). */
static int bind(ember_loop *L, const char *name, binding *b, const char *bad)
{
    if (!L)
        return refused(name, EMBER_EINVAL, "no loop (NULL)");
    if (bad)
        return refused(name, EMBER_EINVAL, bad);
    if (L->started) /* the signature is fixed by then */
        return refused(name, EMBER_ESTATE, "the loop has started: bind before the "
                       "first ember_loop_next");
    const char *fault = name_fault(L, name);
    if (fault)
        return refused(name, EMBER_EINVAL, fault);
    if (L->nb == L->capb) {
        size_t nc = L->capb ? L->capb * 2 : 8;
        binding *nb = ember__realloc(L->ctx, L->b, ember__mul(nc, sizeof *nb));
        if (!nb)
            return refused(name, EMBER_ENOMEM, "out of memory");
        L->b = nb;
        L->capb = nc;
    }
    memcpy(b->name, name, strlen(name) + 1);
    L->b[L->nb++] = *b;
    return EMBER_OK;
}

int ember_loop_bind_ds(ember_loop *loop, const char *name, ember_ds **ds)
{
    binding b = {.kind = BIND_DS, .ds = ds};
    if (ds && *ds)
        b.type = *ember_ds_type(*ds);
    return bind(loop, name, &b, !ds || !*ds ? "no dataset (NULL)" : NULL);
}

int ember_loop_bind_i64(ember_loop *loop, const char *name, int64_t *v)
{
    binding b = {.kind = BIND_I64, .data = v, .scalar = EMBER_I64, .n = 1};
    return bind(loop, name, &b, v ? NULL : "no variable (NULL)");
}

int ember_loop_bind_f64(ember_loop *loop, const char *name, double *v)
{
    binding b = {.kind = BIND_F64, .data = v, .scalar = EMBER_F64, .n = 1};
    return bind(loop, name, &b, v ? NULL : "no variable (NULL)");
}

int ember_loop_bind_array(ember_loop *loop, const char *name,
                          ember_scalar kind, void *data, size_t n)
{
    binding b = {.kind = BIND_ARRAY, .data = data, .scalar = kind, .n = n};
    size_t size = ember_scalar_size(kind);
    return bind(loop, name, &b,
                !data                  ? "no array (NULL)"
                : n == 0               ? "an array of 0 elements"
                : size == 0            ? "an unknown scalar kind"
                : n > SIZE_MAX / size ? "the array's bytes overflow size_t"
                                       : NULL);
}

int ember_loop_bind_matrix(ember_loop *loop, const char *name,
                           ember_scalar kind, void *data, size_t rows,
                           size_t cols)
{
    if (rows == 0 || cols == 0 || rows > SIZE_MAX / cols)
        return refused(name, EMBER_EINVAL, "a matrix of 0 rows or columns, or more "
                       "elements than size_t counts");
    int rc = ember_loop_bind_array(loop, name, kind, data, rows * cols);
    if (!rc)
        loop->b[loop->nb - 1].cols = cols;
    return rc;
}

int ember_loop_note_array(ember_loop *loop, const char *name,
                          ember_scalar kind, const void *data, size_t n)
{
    int rc = ember_loop_bind_array(loop, name, kind, (void *)data, n);
    if (!rc)
        loop->b[loop->nb - 1].note = 1;
    return rc;
}

int ember_loop_format1_name(ember_loop *loop, const char *name,
                            const char *v1_name)
{
    if (!loop || (v1_name && (!v1_name[0] || strlen(v1_name) >= EMBER_NAME_SIZE)))
        return EMBER_EINVAL;
    if (loop->started)
        return EMBER_ESTATE;
    for (size_t i = 0; i < loop->nb; i++)
        if (strcmp(loop->b[i].name, name ? name : "") == 0) {
            if (v1_name)
                memcpy(loop->b[i].v1_name, v1_name, strlen(v1_name) + 1);
            loop->b[i].v1_absent = !v1_name;
            return EMBER_OK;
        }
    return EMBER_ENOTFOUND;
}

int ember_loop_bind_blob(ember_loop *loop, const char *name, void *data,
                         size_t size)
{
    binding b = {.kind = BIND_BLOB, .data = data, .n = size};
    return bind(loop, name, &b, !data ? "no blob (NULL)" : size == 0 ? "a blob of 0 bytes"
                                                                     : NULL);
}

static size_t binding_bytes(const binding *b)
{
    return b->kind == BIND_BLOB ? b->n
                                : ember__mul(b->n, ember_scalar_size(b->scalar));
}

/* "name: type" for the signature; v1: as a format 1 file holds it. */
static void describe_binding(const binding *b, int v1, char *buf, size_t size)
{
    char t[1024];
    const char *name = v1 && b->v1_name[0] ? b->v1_name : b->name;
    switch (b->kind) {
    case BIND_DS:
        ember_type_describe(&b->type, t, sizeof t);
        snprintf(buf, size, "%s: dataset %s", name, t);
        break;
    case BIND_I64:
    case BIND_F64:
        snprintf(buf, size, "%s: %s", name, ember_scalar_name(b->scalar));
        break;
    case BIND_ARRAY:
        if (b->cols && !v1)
            snprintf(buf, size, "%s: %s[%zux%zu]", name,
                     ember_scalar_name(b->scalar), b->n / b->cols, b->cols);
        else
            snprintf(buf, size, "%s: %s[%zu]", name,
                     ember_scalar_name(b->scalar), b->n);
        break;
    case BIND_BLOB:
        snprintf(buf, size, "%s: blob[%zu]", name, b->n);
        break;
    }
}

/* The "name: type" lines of the restored state (notes left out), as this
 * format names them (v1 0) or as format 1 did (v1 1), in *out. */
static int signature_text(ember_loop *L, int v1, char **out, char *msg)
{
    size_t cap = sizeof ((ember__ck_info *)0)->signature, used = 0;
    char *s = ember__malloc(L->ctx, cap);
    if (!s)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    s[0] = '\0';
    for (size_t i = 0; i < L->nb; i++) {
        char line[1200];
        if (L->b[i].note || (v1 && L->b[i].v1_absent))
            continue;
        describe_binding(&L->b[i], v1, line, sizeof line);
        size_t len = strlen(line);
        if (used + len + 2 > cap) {
            ember__free(L->ctx, s);
            return ember__err(msg, EMBER_EINVAL,
                              "loop: too much state bound (signature over "
                              "%zu bytes)", cap - 1);
        }
        memcpy(s + used, line, len);
        s[used + len] = '\n';
        used += len + 1;
        s[used] = '\0';
    }
    *out = s;
    return EMBER_OK;
}

static int build_signature(ember_loop *L, char *msg)
{
    ember__free(L->ctx, L->signature); /* a failed first call is retried */
    ember__free(L->ctx, L->signature1);
    L->signature = L->signature1 = NULL;
    int rc = signature_text(L, 0, &L->signature, msg);
    if (!rc)
        rc = signature_text(L, 1, &L->signature1, msg);
    if (rc)
        return rc;
    L->fingerprint = fingerprint(L->program, L->parameters, L->signature);
    L->fingerprint1 = fingerprint(L->program, L->parameters, L->signature1);
    return EMBER_OK;
}

/* ---- writing a checkpoint ------------------------------------------------------- */

/* The lineage strings of the bound datasets, "name:\n<lineage>" each. */
static char *lineage_text(ember_loop *L)
{
    size_t used = 0, cap = 1;
    char *s = ember__malloc(L->ctx, cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < L->nb; i++) {
        if (L->b[i].kind != BIND_DS)
            continue;
        char *lin = NULL;
        if (ember_lineage_string(*L->b[i].ds, &lin) != EMBER_OK)
            continue; /* lineage is information only */
        size_t need = strlen(L->b[i].name) + strlen(lin) + 4;
        char *ns = ember__realloc(L->ctx, s, cap + need);
        if (!ns) {
            ember_free(L->ctx, lin);
            ember__free(L->ctx, s);
            return NULL;
        }
        s = ns;
        cap += need;
        used += (size_t)snprintf(s + used, cap - used, "%s:\n%s%s",
                                 L->b[i].name, lin,
                                 lin[0] && lin[strlen(lin) - 1] != '\n' ? "\n" : "");
        ember_free(L->ctx, lin);
    }
    return s;
}

static int write_binding(ember__ckw *w, const binding *b, char *msg)
{
    switch (b->kind) {
    case BIND_DS: {
        int rc = ember_local_checkpoint(*b->ds, msg);
        return rc ? rc : ember__ckw_ds(w, b->name, *b->ds, msg);
    }
    case BIND_BLOB:
        return ember__ckw_blob(w, b->name, b->data, b->n, msg);
    default:
        if (b->cols)
            return ember__ckw_matrix(w, b->name, b->scalar, b->data,
                                     b->n / b->cols, b->cols, msg);
        return ember__ckw_scalars(w, b->name, b->scalar, b->data, b->n, msg);
    }
}

/* Bound handles must still be datasets of the type they were bound with. */
static int check_bound_types(const ember_loop *L, char *msg)
{
    for (size_t i = 0; i < L->nb; i++) {
        const binding *b = &L->b[i];
        if (b->kind != BIND_DS)
            continue;
        if (!*b->ds)
            return ember__err(msg, EMBER_EINVAL,
                              "bound dataset %s is NULL", b->name);
        if (!ember_type_equal(ember_ds_type(*b->ds), &b->type)) {
            char was[256], now[256];
            ember_type_describe(&b->type, was, sizeof was);
            ember_type_describe(ember_ds_type(*b->ds), now, sizeof now);
            return ember__err(msg, EMBER_ETYPE,
                              "bound dataset %s changed type from %s to %s",
                              b->name, was, now);
        }
    }
    return EMBER_OK;
}

/* The bytes of the bound state: datasets as their local checkpoint left
 * them (computed: call after it), scalars, arrays, blobs and noted arrays
 * (a file holds them, a snapshot keeps one copy of them). */
static size_t state_bytes(const ember_loop *L)
{
    size_t bytes = 0;
    for (size_t i = 0; i < L->nb; i++) {
        const binding *b = &L->b[i];
        if (b->kind == BIND_DS) {
            const ember_ds *ds = *b->ds;
            size_t n = ds->op == EMBER__RANGE   ? (size_t)ds->u.range.n
                       : ds->op == EMBER__ARRAY ? ds->u.array.n
                                                : ember__store_records(L->ctx, ds->id);
            bytes += ember__mul(n, ds->type.size);
        } else {
            bytes += binding_bytes(b);
        }
    }
    return bytes;
}

/* About the size of the file of the state (and of its snapshot): its
 * bytes, up to 512 more a 1 MiB chunk (a checksum and the alignment of
 * the next chunk, or of the next slot), a padded last chunk (up to 1 MiB)
 * for each item, and the metadata. */
static size_t image_bytes(const ember_loop *L)
{
    size_t state = state_bytes(L);
    return state + state / 2048 + (L->nb + 1) * ((size_t)1 << 20);
}

/* Whether a checkpoint built in memory fits the context's memory budget
 * beside the resident blocks and broadcasts: the snapshot and the file
 * image, each the state with a padded last chunk an item (image_bytes),
 * and the 1 MiB chunk buffer. The bound datasets must be computed. When it
 * does not, the checkpoint is streamed to the file, which holds no copy of
 * the state. */
static int image_fits(const ember_loop *L)
{
    size_t need = 2 * image_bytes(L) + ((size_t)1 << 20);
    return need <= ember__store_room(L->ctx);
}

/* Gives back the snapshot and the image: the checkpoints that follow are
 * streamed until a policy checkpoint builds them again. */
static void drop_image(ember_loop *L)
{
    snap_free(L);
    ember__ckimg_free(L->ctx, &L->img);
}

/* Computes the bound datasets (a local checkpoint each, which cuts their
 * lineage). */
static int compute_bound(ember_loop *L, char *msg)
{
    int rc = EMBER_OK;
    for (size_t i = 0; !rc && i < L->nb; i++)
        if (L->b[i].kind == BIND_DS)
            rc = ember_local_checkpoint(*L->b[i].ds, msg);
    return rc;
}

/* Whether write_all builds its file in the loop's image: in the
 * asynchronous mode, once a policy checkpoint made one, when it still fits
 * the budget and room for this file can be had. Otherwise (before the first
 * background checkpoint, say a signal early in the run) the file is
 * streamed: no whole image allocated on the compute thread at the worst
 * moment. */
static int use_image(ember_loop *L, char *msg)
{
    if (!L->async || !L->img.raw)
        return 0;
    if (compute_bound(L, msg) == EMBER_OK && image_fits(L) &&
        ember__ckimg_reserve(L->ctx, &L->img, image_bytes(L)) == EMBER_OK)
        return 1;
    ember__msg_clear(msg); /* a failure shows again when streamed */
    drop_image(L);
    return 0;
}

static int write_all(ember_loop *L, const char *name, const char *lineage,
                     char *path, uint64_t *bytes, char *msg)
{
    if (!lineage)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    ember__ck_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.kind = "loop";
    meta.program = L->program;
    meta.parameters = recorded_parameters(L);
    meta.signature = L->signature;
    meta.lineage = lineage;
    meta.iteration = L->done;
    meta.fingerprint = L->fingerprint;
    meta.deflate = L->o.deflate;
    ember__ckw *w = NULL;
    /* Synchronous checkpoints stream to the file, chunk by chunk: no copy
     * of the state in memory. In the asynchronous mode, once the file
     * image exists, the ones written here (finish, signal, deadline,
     * ember_loop_checkpoint) are built in it too, and reuse the spare. */
    int rc = use_image(L, msg)
                 ? ember__ckw_begin_image(L->ctx, &w, L->dir, name, &meta,
                                          &L->img, msg)
                 : ember__ckw_begin(L->ctx, &w, L->dir, name, &meta, msg);
    for (size_t i = 0; !rc && i < L->nb; i++)
        rc = write_binding(w, &L->b[i], msg);
    if (rc)
        ember__ckw_abort(&w);
    else
        rc = ember__ckw_commit(&w, bytes, path, msg);
    return rc;
}

static int is_stale(const ember_loop *L, uint64_t iter)
{
    for (size_t i = 0; i < L->nstale; i++)
        if (L->stale[i] == iter)
            return 1;
    return 0;
}

static void unstale(ember_loop *L, uint64_t iter)
{
    for (size_t i = 0; i < L->nstale; i++)
        if (L->stale[i] == iter)
            L->stale[i--] = L->stale[--L->nstale];
}

/* Deletes a checkpoint retention gives up, or in the asynchronous mode
 * (one process) keeps it as the spare that the next file built in memory
 * overwrites (ckptfile.c): renamed, so it is no checkpoint any more the
 * moment it is retired. A spare that is a link (a symbolic or hard link
 * by a checkpoint's name, reaching a file outside the run) or open
 * elsewhere is not written over: its name is replaced by a new file
 * (ckptfile.c, open_image). */
static int retire_file(const ember_loop *L, const char *path)
{
    char spare[PATH_SIZE];
    struct stat st;
    if (L->async && !ember__ck_spare(L->dir, spare, sizeof spare) &&
        lstat(spare, &st) != 0 && errno == ENOENT && rename(path, spare) == 0)
        return 0;
    return unlink(path);
}

/* This rank's check that the directory is still this run's (rank 0 holds
 * the lock; other ranks pass): a lock file only removed is locked again,
 * with a warning. */
static int lock_check(ember_loop *L, char *msg)
{
    int remade = 0, rc = EMBER_OK;
    if (L->dir && L->lock_fd >= 0 &&
        (rc = ember__dir_lock_check(L->dir, LOCK_NAME, "checkpoint dir", &L->lock_fd,
                                    &remade, msg)) == EMBER_OK &&
        remade)
        warn(L, "ember: %s/" LOCK_NAME " was removed or replaced while this run held "
                "the directory; locked again", L->dir);
    return rc;
}

/* Keeps the newest `keep` files: this run's history first, then stale
 * ones. Under RESUME_NEVER the run owns the directory: once one of its own
 * checkpoints has committed, every file of an older run is retired, so a
 * later resume can only find this run's. Otherwise another build's files
 * (early 0.1.0 builds', with no checksum header) are never retired: a run
 * upgraded to this build lost them once it committed. Runs only after a
 * commit, or a
 * resume from the newest file that verified (restore). A failure to
 * delete is a warning. */
static void retain(ember_loop *L)
{
    ckpt_entry *e = NULL;
    size_t n = 0, kept = 0;
    char emsg[EMBER_MSG_SIZE];
    if (!is_root(L)) /* rank 0's directory */
        return;
    /* Only in a directory this run still holds: a run that took it has
     * checkpoints there that are not this run's to retire (this run finds
     * out, and stops, at its next lock check) */
    if (lock_check(L, emsg))
        return;
    if (list_ckpts(L, &e, &n, emsg)) {
        warn(L, "ember: retention: %s", emsg);
        return;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            if (is_stale(L, e[i].iter) != pass)
                continue;
            int retire = pass == 1 && L->o.resume == EMBER_RESUME_NEVER;
            if (!retire && kept < (size_t)L->keep) {
                kept++;
                continue;
            }
            char path[PATH_SIZE]; /* another build's is not this run's to delete */
            if (ckpt_path(L, e[i].name, path) || (!retire && ember__fsum_unsealed_hdf5(path)))
                continue;
            if (retire_file(L, path) != 0 && errno != ENOENT)
                warn(L, "ember: cannot delete old checkpoint %s: %s", path,
                     strerror(errno));
            unstale(L, e[i].iter);
        }
    ember__free(L->ctx, e);
}

/* A checkpoint took the state: max_depth counts from here. */
static void depth_restart(ember_loop *L)
{
    for (size_t i = 0; i < L->nb; i++)
        L->b[i].cut_depth = 0;
}

/* A checkpoint of `iter` iterations committed at `path`: the policy's and
 * the stats' bookkeeping, then retention. */
static void account(ember_loop *L, uint64_t iter, double cost, double at,
                    uint64_t bytes, const char *path)
{
    L->last_cost = cost;
    L->cost_known = 1;
    L->costs[L->ncosts++ % ITER_TIMES] = cost;
    L->last_ckpt_time = at;
    L->have_ckpt = 1;
    L->ckpt_iter = iter;
    unstale(L, iter);
    L->stats.checkpoints++;
    L->stats.last_iteration = iter;
    L->stats.last_bytes = bytes;
    L->stats.total_bytes += bytes;
    L->stats.last_seconds = cost;
    L->stats.checkpoint_seconds += cost;
    snprintf(L->stats.last_path, sizeof L->stats.last_path, "%s", path);
    retain(L);
}

static void ckpt_name(const ember_loop *L, char *name, size_t size)
{
    snprintf(name, size, CKPT_PREFIX "%012llu" CKPT_SUFFIX,
             (unsigned long long)L->done);
}

/* What a run can resume from, for a failure message: "" without a
 * checkpoint of ours. Never "intact" of a file that is gone with its
 * directory, nor of one still there when something removed files of the
 * directory (removing: a file of ours or the lock vanished): `rm -rf`
 * takes one file at a time, and another run that took the directory may
 * retire it. */
static void kept_text(const ember_loop *L, int removing, char *kept, size_t size)
{
    kept[0] = '\0';
    if (!L->have_ckpt)
        return;
    char last[PATH_SIZE];
    struct stat st;
    int there = (size_t)snprintf(last, sizeof last, "%s/" CKPT_PREFIX "%012llu"
                                 CKPT_SUFFIX, L->dir,
                                 (unsigned long long)L->ckpt_iter) < sizeof last &&
                stat(last, &st) == 0;
    unsigned long long it = L->ckpt_iter;
    if (!there)
        snprintf(kept, size, "; the checkpoint of iteration %llu is gone too", it);
    else if (removing)
        snprintf(kept, size, "; the checkpoint of iteration %llu may be gone too "
                 "(something removed files of this directory)", it);
    else
        snprintf(kept, size, "; the checkpoint of iteration %llu is intact, and a "
                 "run resumes from it", it);
}

/* A failure message that names the file, whoever produced it. */
static int write_failed(const ember_loop *L, const char *name, int rc,
                        const char *inner, char *msg)
{
    /* what a run can resume from, for a user whose disk is full */
    char kept[160];
    kept_text(L, strstr(inner, "No such file or directory") != NULL, kept, sizeof kept);
    /* a full disk fails the same write at every rerun: say what frees it */
    char room[128] = "";
    int full = strstr(inner, "No space left") || strstr(inner, "quota") ||
               strstr(inner, "no room") || strstr(inner, "File too large");
    if (full && L->keep > 1 && L->have_ckpt)
        snprintf(room, sizeof room, "; with keep %d the directory holds %d "
                 "checkpoints and the one being written: free space, or keep fewer",
                 L->keep, L->keep);
    else if (full)
        snprintf(room, sizeof room, "; free space there");
    if (strstr(inner, name))
        return ember__err(msg, rc, "%s%s%s", inner, kept, room);
    return ember__err(msg, rc, "checkpoint %s/%s: %s%s%s", L->dir, name, inner, kept,
                      room);
}

/* Writes a checkpoint of the loop now. lineage: the bound datasets'
 * lineage text taken before they were computed for this checkpoint (the
 * computation cuts it), or NULL to take it here; either way every file
 * records the lineage as it was before its own cut, whichever way it is
 * written. */
static int write_checkpoint(ember_loop *L, const char *lineage, char *msg)
{
    char name[64], path[PATH_SIZE], inner[EMBER_MSG_SIZE];
    ckpt_name(L, name, sizeof name);
    path[0] = inner[0] = '\0';
    int rc = check_bound_types(L, msg);
    if (rc)
        return rc;
    /* NULL when out of memory, which write_ranks agrees on with the
     * other ranks */
    char *own = lineage ? NULL : lineage_text(L);
    const char *lin = lineage ? lineage : own;
    double t0 = mono_now();
    uint64_t bytes = 0;
    rc = ranks(L) > 1 ? write_ranks(L, name, lin, path, &bytes, inner)
                      : write_all(L, name, lin, path, &bytes, inner);
    ember__free(L->ctx, own);
    if (rc)
        return write_failed(L, name, rc, inner, msg);
    double t1 = mono_now();
    depth_restart(L);
    account(L, L->done, t1 - t0, t1, bytes, path[0] ? path : name);
    return EMBER_OK;
}

/* ---- asynchronous checkpoints ------------------------------------------------
 *
 * With opts.async, a checkpoint the policy asks for is a snapshot taken on
 * the caller's thread (bound datasets computed and copied, those of an
 * array laid out as the file's chunks; scalars and blobs copied; noted
 * arrays, unchanged for the loop's life, laid out once, at the first) and
 * a file built, sealed, written, fsync'd and committed
 * by a background thread while the next iterations run. One is in flight
 * at a time: the next checkpoint, finish, a signal, the deadline and
 * destroy wait for it, and a failure is reported by the next call that
 * waits. Retention and the stats stay on the caller's thread, so a file is
 * retired only after a newer one committed. The background thread calls
 * only the checkpoint-file layer (HDF5, under its lock) and the allocator.
 *
 * What it costs the compute threads on 2 cores (docs/design.md,
 * "Checkpoints go to the background"): the writer's CPU, not its waits,
 * competes with them. So the snapshot buffers and the file image are kept
 * from one checkpoint to the next (fresh pages cost a fault and a clear
 * each, 10x the copy), the seal hashes the image in memory instead of
 * reading the file back, and the file goes to the device with O_DIRECT,
 * into the spare's blocks (ckptfile.c). */

struct snap_item {
    char name[EMBER_NAME_SIZE];
    bind_kind kind;
    ember_scalar scalar;
    size_t n;
    size_t cols;         /* ARRAY: a matrix */
    ember_type type;     /* BIND_DS */
    ember__buf *parts;   /* BIND_DS: the snapshot, one buffer a partition */
    size_t nparts;
    int chunked;         /* the snapshot is in ch: a BIND_DS of an array
                            (ember__materialize_chunks), or a noted array
                            laid out once, by the writer (note_chunks) */
    ember__chunks ch;
    uint64_t *off;       /* BIND_DS in ch: its partition offsets */
    void *bytes;         /* the other kinds: a copy (room of `room` bytes) */
    size_t room;
    const void *ref;     /* a noted array: its bytes */
};

struct async_job {
    ember_ctx *ctx;
    const char *dir;
    char name[64];
    ember__ck_meta meta;
    char *lineage;
    snap_item *items;       /* the loop's, borrowed (the writer lays out
                               noted arrays' ch) */
    size_t nitems;
    ember__ckimg *img;      /* the loop's, borrowed */
    uint64_t iter;
    double t0, t1;
    pthread_t thread;
    int finished;           /* set (atomically) when the thread is done */
    int rc;
    uint64_t bytes;
    char path[PATH_SIZE];
    char msg[EMBER_MSG_SIZE];
};

static void job_free(async_job *j)
{
    ember__free(j->ctx, j->lineage);
    ember__free(j->ctx, j);
}

static void snap_free(ember_loop *L)
{
    for (size_t i = 0; L->snap && i < L->nsnap; i++) {
        ember__parts_free(L->ctx, L->snap[i].parts, L->snap[i].nparts);
        ember__buf_free(L->ctx, &L->snap[i].ch.mem);
        ember__free(L->ctx, L->snap[i].off);
        ember__free(L->ctx, L->snap[i].bytes);
    }
    ember__free(L->ctx, L->snap);
    L->snap = NULL;
    L->nsnap = 0;
}

static int write_item(ember__ckw *w, snap_item *it, char *msg)
{
    const void *bytes = it->ref ? it->ref : it->bytes;
    ember_type t = it->kind == BIND_DS ? it->type : ember_type_scalar(it->scalar);
    if (it->chunked) /* a noted array has no offsets */
        return ember__ckw_chunks(w, it->name, &t, &it->ch, it->off, it->nparts, msg);
    switch (it->kind) {
    case BIND_DS:
        return ember__ckw_parts(w, it->name, &it->type, it->parts, it->nparts,
                                msg);
    case BIND_BLOB:
        return ember__ckw_blob(w, it->name, bytes, it->n, msg);
    default:
        if (it->cols)
            return ember__ckw_matrix(w, it->name, it->scalar, bytes,
                                     it->n / it->cols, it->cols, msg);
        return ember__ckw_scalars(w, it->name, it->scalar, bytes, it->n, msg);
    }
}

/* A noted array's chunks, laid out and summed at its first checkpoint, on
 * the writer's thread (off the iterations' path), and kept: it never
 * changes. Without memory for them it is written from its array. */
static void note_chunks(ember_ctx *ctx, snap_item *it)
{
    size_t size = ember_scalar_size(it->scalar);
    if (!it->chunked || (it->ch.mem.data && it->ch.n == it->n && it->ch.recsize == size))
        return;
    if (ember__chunks_layout(ctx, &it->ch, size, it->n)) {
        ember__buf_free(ctx, &it->ch.mem);
        it->chunked = 0;
        return;
    }
    for (size_t i = 0; i * it->ch.chunk < it->n; i++)
        ember__chunks_fill(&it->ch, i, (const char *)it->ref + i * it->ch.chunk * size);
}

/* Writes and commits the job's file, on whichever thread calls it. */
static void job_write(async_job *j)
{
    ember__ckw *w = NULL;
    for (size_t i = 0; i < j->nitems; i++)
        if (j->items[i].ref)
            note_chunks(j->ctx, &j->items[i]);
    j->rc = ember__ckw_begin_image(j->ctx, &w, j->dir, j->name, &j->meta,
                                   j->img, j->msg);
    /* the chunks stay as they are until the job ends: the file takes them
     * where they lie */
    for (size_t i = 0; !j->rc && i < j->nitems; i++)
        if (j->items[i].chunked)
            ember__ckw_keep(w, j->items[i].ch.mem.data, j->items[i].ch.mem.cap);
    for (size_t i = 0; !j->rc && i < j->nitems; i++)
        j->rc = write_item(w, &j->items[i], j->msg);
    if (j->rc)
        ember__ckw_abort(&w);
    else
        j->rc = ember__ckw_commit(&w, &j->bytes, j->path, j->msg);
    j->t1 = mono_now();
}

static void *job_run(void *arg)
{
    async_job *j = arg;
    job_write(j);
    ember__h5_thread_done();
    __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Copies a dataset binding into it, into the room of the previous
 * snapshot when there is one: it is computed (a local checkpoint cuts its
 * lineage, as a synchronous checkpoint does) and copied: an array source
 * straight from its array into the file's chunks (the writer puts them in
 * the file as they lie), other datasets a buffer a partition
 * (ember__materialize_into; the writer gathers them into chunks). */
static int snapshot_ds(ember_loop *L, const binding *b, snap_item *it,
                       char *msg)
{
    int rc = ember_local_checkpoint(*b->ds, msg);
    if (rc)
        return rc;
    ember_ds *ds = *b->ds;
    size_t nparts = ember_ds_partitions(ds);
    it->type = *ember_ds_type(ds);
    it->chunked = !L->o.deflate && ember__copyable_array(ds);
    if (!it->chunked) /* the other layout's room goes (ch, or parts below) */
        ember__buf_free(L->ctx, &it->ch.mem);
    if (it->nparts != nparts || (it->chunked ? it->parts != NULL : it->off != NULL)) {
        ember__parts_free(L->ctx, it->parts, it->nparts);
        ember__free(L->ctx, it->off);
        it->parts = NULL;
        it->off = NULL;
        it->nparts = nparts;
    }
    if (it->chunked) {
        if (!it->off && !(it->off = ember__calloc(L->ctx, nparts + 1, sizeof *it->off)))
            return ember__err(msg, EMBER_ENOMEM, "out of memory");
        return ember__materialize_chunks(ds, &it->ch, it->off, msg);
    }
    if (!it->parts &&
        !(it->parts = ember__calloc(L->ctx, nparts ? nparts : 1, sizeof *it->parts)))
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    return ember__materialize_into(ds, it->parts, msg);
}

/* Copies binding b into it (kept from the last snapshot, or zeroed). */
static int snapshot_item(ember_loop *L, const binding *b, snap_item *it,
                         char *msg)
{
    snprintf(it->name, sizeof it->name, "%s", b->name);
    it->kind = b->kind;
    it->scalar = b->scalar;
    it->n = b->n;
    it->cols = b->cols;
    if (b->kind == BIND_DS)
        return snapshot_ds(L, b, it, msg);
    if (b->note) { /* unchanged for the loop's life: laid out once, by the writer */
        it->ref = b->data;
        it->chunked = !L->o.deflate;
        return EMBER_OK;
    }
    size_t size = binding_bytes(b);
    if (it->room < size) {
        ember__free(L->ctx, it->bytes);
        it->room = 0;
        if (!(it->bytes = ember__malloc(L->ctx, size ? size : 1)))
            return ember__err(msg, EMBER_ENOMEM, "out of memory");
        it->room = size;
    }
    ember__copy(it->bytes, b->data, size);
    return EMBER_OK;
}

/* The loop's snapshot, one item per binding, kept across checkpoints. */
static int snapshot(ember_loop *L, char *msg)
{
    if (L->nsnap != L->nb) {
        snap_free(L);
        L->snap = ember__calloc(L->ctx, L->nb + 1, sizeof *L->snap);
        if (!L->snap)
            return ember__err(msg, EMBER_ENOMEM, "out of memory");
        L->nsnap = L->nb;
    }
    int rc = EMBER_OK;
    for (size_t i = 0; !rc && i < L->nb; i++)
        rc = snapshot_item(L, &L->b[i], &L->snap[i], msg);
    if (!rc && ember__ckimg_reserve(L->ctx, &L->img, image_bytes(L)))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    return rc;
}

/* Starts the policy's checkpoint in the background; streams it instead
 * (write_checkpoint) when its snapshot and image do not fit the memory
 * budget or cannot be allocated, or the thread cannot start. The lineage
 * text is taken first, before the computation cuts it, as a synchronous
 * write takes it: the file says the same whichever way it was written. */
static int async_start(ember_loop *L, char *msg)
{
    int rc = check_bound_types(L, msg);
    if (rc)
        return rc;
    async_job *j = ember__calloc(L->ctx, 1, sizeof *j);
    if (!j || !(j->lineage = lineage_text(L))) {
        /* streamed, with the snapshot's and image's memory given back;
         * nothing is computed yet, so its lineage is still uncut */
        ember__free(L->ctx, j);
        drop_image(L);
        return write_checkpoint(L, NULL, msg);
    }
    j->ctx = L->ctx;
    rc = compute_bound(L, msg);
    if (rc) {
        job_free(j);
        return rc;
    }
    if (!image_fits(L))
        rc = EMBER_ENOMEM; /* streamed below */
    else {
        j->dir = L->dir;
        j->iter = L->done;
        j->t0 = mono_now();
        j->img = &L->img;
        ckpt_name(L, j->name, sizeof j->name);
        rc = snapshot(L, msg);
        j->items = L->snap;
        j->nitems = L->nsnap;
        j->meta = (ember__ck_meta){"loop", L->program, recorded_parameters(L),
                                   L->signature, j->lineage, L->done,
                                   L->fingerprint, L->o.deflate};
    }
    if (!rc && pthread_create(&j->thread, NULL, job_run, j) != 0)
        rc = EMBER_ENOMEM;
    if (rc == EMBER_ENOMEM) {
        ember__msg_clear(msg);
        drop_image(L);
        rc = write_checkpoint(L, j->lineage, msg);
    } else if (!rc) {
        L->job = j;
        L->last_ckpt_time = j->t0; /* the state's moment: the policy's clock */
        depth_restart(L);
        return EMBER_OK;
    }
    job_free(j);
    return rc;
}

/* Waits for the checkpoint in flight, if any, and accounts for it. */
static int async_join(ember_loop *L, char *msg)
{
    async_job *j = L->job;
    if (!j)
        return EMBER_OK;
    L->job = NULL;
    pthread_join(j->thread, NULL);
    int rc = j->rc ? write_failed(L, j->name, j->rc, j->msg, msg) : EMBER_OK;
    if (!rc)
        account(L, j->iter, j->t1 - j->t0, j->t0, j->bytes,
                j->path[0] ? j->path : j->name);
    job_free(j);
    return rc;
}

/* Accounts for the checkpoint in flight if it has ended, without waiting:
 * its commit then counts (the policy's cost, retention, a failure) from the
 * next iteration on. */
static int async_reap(ember_loop *L, char *msg)
{
    if (!L->job || !__atomic_load_n(&L->job->finished, __ATOMIC_ACQUIRE))
        return EMBER_OK;
    return async_join(L, msg);
}

/* ---- several ranks -------------------------------------------------------------
 *
 * A checkpoint on several ranks is one file written by all of them
 * together (ckptpar.c): every rank computes the partitions of each bound
 * dataset it owns and writes them as its hyperslab of the dataset; only
 * the per-partition counts move between ranks. Scalars, arrays and blobs
 * are replicated, and written from rank 0's values, as are the root
 * attributes. Rank 0 commits the file; the outcome, size and path are
 * agreed. */

static int write_binding_ranks(ember__ckp *w, const binding *b,
                               const ember__buf *parts, const int *own,
                               char *msg)
{
    switch (b->kind) {
    case BIND_DS:
        return ember__ckp_parts(w, b->name, ember_ds_type(*b->ds), parts,
                                ember_ds_partitions(*b->ds), own, NULL, msg);
    case BIND_BLOB:
        return ember__ckp_blob(w, b->name, b->data, b->n, msg);
    default:
        if (b->cols)
            return ember__ckp_matrix(w, b->name, b->scalar, b->data,
                                     b->n / b->cols, b->cols, msg);
        return ember__ckp_scalars(w, b->name, b->scalar, b->data, b->n, msg);
    }
}

/* The file takes the scalars, arrays and blobs from rank 0, and a restore
 * hands them to every rank: they must be the same on every rank, as a
 * program that follows the rules of ember/mpi.h keeps them. A rank whose
 * differ (an array whose ranges were never all-gathered, a counter kept
 * per rank) would resume with rank 0's: refused, naming the first item
 * that differs. Each rank hashes its own bytes (XXH3, once a checkpoint);
 * rank 0's hashes are broadcast. */
static int check_ranks_hold_same(ember_loop *L, char *msg)
{
    /* this rank's hashes, then rank 0's (0 for datasets and notes) */
    size_t n = L->nb + 1;
    uint64_t *h = ember__calloc(L->ctx, 2 * n, sizeof *h), *root = h ? h + n : NULL;
    int rc = ember__comm_agree_status(
        L->ctx, h ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory"), 0, msg);
    if (rc)
        return rc;
    for (size_t i = 0; i < L->nb; i++) {
        const binding *b = &L->b[i];
        if (b->kind != BIND_DS && !b->note)
            h[i] = root[i] = XXH3_64bits(b->data, binding_bytes(b));
    }
    char emsg[EMBER_MSG_SIZE] = "";
    if ((rc = ember__comm_bcast(L->ctx, root, n * sizeof *root, emsg)))
        rc = ember__err(msg, rc, "%s", emsg);
    for (size_t i = 0; !rc && i < L->nb; i++)
        if (h[i] != root[i])
            rc = ember__err(msg, EMBER_EMISMATCH, "rank %d holds another \"%s\" than "
                            "rank 0 at iteration %llu: a checkpoint takes it from rank "
                            "0 and a resume gives it to every rank, so every rank must "
                            "hold the same (all-gather an array's ranges, keep per-rank "
                            "values unbound)", ember__comm_rank(L->ctx), L->b[i].name,
                            (unsigned long long)L->done);
    rc = ember__comm_agree_status(L->ctx, rc, 0, msg);
    ember__free(L->ctx, h);
    return rc;
}

static int write_ranks(ember_loop *L, const char *name, const char *lineage,
                       char *path, uint64_t *bytes, char *msg)
{
    ember_ctx *ctx = L->ctx;
    size_t nb = L->nb;
    ember__buf **parts = ember__calloc(ctx, nb + 1, sizeof *parts);
    int **own = ember__calloc(ctx, nb + 1, sizeof *own);
    int rc = parts && own && lineage ? EMBER_OK
                                     : ember__err(msg, EMBER_ENOMEM, "out of memory");
    /* agreed first: the computations below are collective, and a rank
     * without its arrays would skip them */
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (!rc)
        rc = check_ranks_hold_same(L, msg);
    int ready = rc == EMBER_OK; /* the same on every rank */
    /* Each bound dataset's own partitions, computed (a local checkpoint cuts
     * the lineage, as on one process). Every item is tried even after a
     * failure here, so that every rank makes the same collective calls;
     * the first failure is kept, then agreed. */
    for (size_t i = 0; ready && i < nb; i++) {
        const binding *b = &L->b[i];
        if (b->kind != BIND_DS)
            continue;
        char emsg[EMBER_MSG_SIZE] = "";
        int r = ember_local_checkpoint(*b->ds, emsg);
        if (!r)
            r = ember__materialize_owned(*b->ds, &parts[i], emsg);
        if (!r)
            r = ember__owners(*b->ds, &own[i], emsg);
        if (r && !rc)
            rc = ember__err(msg, r, "%s", emsg);
    }
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    ember__ck_meta meta = {"loop", L->program, recorded_parameters(L), L->signature,
                           lineage, L->done, L->fingerprint, L->o.deflate};
    ember__ckp *w = NULL;
    if (!rc)
        rc = ember__ckp_begin(ctx, &w, L->dir, name, &meta, msg);
    for (size_t i = 0; !rc && i < nb; i++)
        rc = write_binding_ranks(w, &L->b[i], parts[i], own[i], msg);
    if (w && rc)
        ember__ckp_abort(&w);
    else if (w)
        rc = ember__ckp_commit(&w, bytes, path, msg);
    for (size_t i = 0; parts && own && i < nb; i++) {
        if (parts[i])
            ember__parts_free(ctx, parts[i], ember_ds_partitions(*L->b[i].ds));
        ember__free(ctx, own[i]);
    }
    ember__free(ctx, parts);
    ember__free(ctx, own);
    return rc;
}

/* ---- restoring --------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t used, cap;
    int items; /* in the current group */
} text;

static void text_put(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void text_put(text *t, const char *fmt, ...)
{
    if (t->used + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->buf + t->used, t->cap - t->used, fmt, ap);
    va_end(ap);
    if (w > 0)
        t->used += (size_t)w < t->cap - t->used ? (size_t)w : t->cap - t->used - 1;
}

/* Next non-empty line of *p: start and length (without '\r'). */
static int next_line(const char **p, const char **s, size_t *len)
{
    while (**p) {
        const char *e = strchr(*p, '\n');
        size_t l = e ? (size_t)(e - *p) : strlen(*p);
        *s = *p;
        *p += l + (e ? 1 : 0);
        while (l && (*s)[l - 1] == '\r')
            l--;
        if (l) {
            *len = l;
            return 1;
        }
    }
    return 0;
}

static size_t key_len(const char *s, size_t len, char sep)
{
    const char *k = memchr(s, sep, len);
    return k ? (size_t)(k - s) : len;
}

/* The line of `all` whose key (text before sep) is that of s, or NULL. */
static const char *find_key(const char *all, const char *s, size_t len,
                            char sep, size_t *flen)
{
    size_t k = key_len(s, len, sep);
    const char *p = all, *ls;
    size_t ll;
    while (next_line(&p, &ls, &ll))
        if (key_len(ls, ll, sep) == k && memcmp(ls, s, k) == 0) {
            *flen = ll;
            return ls;
        }
    return NULL;
}

static void diff_item(text *t, const char *what)
{
    text_put(t, t->items ? ", " : "%s%s: ", t->used ? "; " : "", what);
    t->items++;
}

/* Lists, key by key, how two "key<sep>value" line lists differ (info
 * lines aside). */
static void diff_lines(text *t, const char *what, const char *ck,
                       const char *now, char sep, int skip_info)
{
    const char *p = ck, *s, *f;
    size_t len, flen;
    t->items = 0;
    while (next_line(&p, &s, &len)) {
        if (skip_info && info_line(s, len))
            continue;
        f = find_key(now, s, len, sep, &flen);
        if (f && flen == len && memcmp(f, s, len) == 0)
            continue;
        diff_item(t, what);
        if (f)
            text_put(t, "%.*s (checkpoint) vs %.*s (now)", (int)len, s,
                     (int)flen, f);
        else
            text_put(t, "%.*s (checkpoint) vs absent (now)", (int)len, s);
    }
    p = now;
    while (next_line(&p, &s, &len))
        if (!(skip_info && info_line(s, len)) && !find_key(ck, s, len, sep, &flen)) {
            diff_item(t, what);
            text_put(t, "absent (checkpoint) vs %.*s (now)", (int)len, s);
        }
}

/* Cuts the list in d (items joined by ", " or "; ") after its last whole
 * item that leaves room for ", and more" within room bytes. */
static void fit_list(char *d, size_t room)
{
    static const char more[] = ", and more";
    if (strlen(d) <= room || room < sizeof more)
        return;
    size_t end = room - (sizeof more - 1), at = end;
    while (at > 0 && !((d[at] == ',' || d[at] == ';') && d[at + 1] == ' '))
        at--;
    memcpy(d + (at ? at : end), more, sizeof more); /* one long item: cut in it */
}

/* EMBER_OK when the file is from this run (or force_resume allows it),
 * else EMBER_EMISMATCH with what differs, the list cut to leave the
 * message's start and end whole. */
static int check_identity(ember_loop *L, const ember__ck_info *in,
                          const char *path, char *msg)
{
    char d[2048];
    text t = {.buf = d, .cap = sizeof d};
    d[0] = '\0';
    /* A run forced earlier goes on as that run: said, and kept. */
    const char *p = in->parameters, *s;
    size_t len;
    L->forced_cand = 0;
    while (next_line(&p, &s, &len))
        if (len > 12 && memcmp(s, "info.forced=", 12) == 0) {
            L->forced_cand = 2;
            snprintf(L->forced_cand_note, sizeof L->forced_cand_note, "%.*s",
                     (int)(len - 12), s + 12);
        }
    /* ember 0.1.0 does not say whether it records a resume by force (its
     * builds before 2026-12-06 20:11 wrote no "info.forced="): such a
     * file's run may have been forced, and resumed as a clean one it gave
     * another graph's components with exit 0. It goes on as a run that
     * may have been. */
    if (!L->forced_cand && !in->records_forced && strcmp(in->kind, "loop") == 0) {
        L->forced_cand = 3;
        snprintf(L->forced_cand_note, sizeof L->forced_cand_note,
                 "unknown: %.200s, at iteration %llu, was written by ember %.31s, "
                 "which does not record whether its run was resumed by force",
                 path, (unsigned long long)in->iteration, in->ember_version);
    }
    if (strcmp(in->kind, "loop") != 0)
        text_put(&t, "kind differs: %s (checkpoint) vs loop (now)", in->kind);
    if (strcmp(in->program, L->program) != 0)
        text_put(&t, "%sprogram differs: %s (checkpoint) vs %s (now)",
                 t.used ? "; " : "", in->program, L->program);
    /* A format 1 file named some state otherwise: compare it with the
     * state as format 1 named it. */
    int v1 = in->format_version == 1;
    const char *sig = v1 ? L->signature1 : L->signature;
    uint64_t fp = v1 ? L->fingerprint1 : L->fingerprint;
    size_t before = t.used;
    diff_lines(&t, "state differs", in->signature, sig, ':', 0);
    int state_differs = t.used != before || strcmp(in->kind, "loop") != 0;
    diff_lines(&t, "parameters differ", in->parameters, L->parameters, '=', 1);
    /* No line differs, so the file's state is this state, maybe bound in
     * another order; it is restored by name, so the run is the same when
     * the file's fingerprint is that of this program and these parameters
     * (their text, as the fingerprint takes it) with the file's order. */
    if (!t.used && in->fingerprint != fp &&
        in->fingerprint == fingerprint(L->program, L->parameters, in->signature))
        return EMBER_OK;
    if (!t.used && in->fingerprint != fp)
        text_put(&t, "fingerprint differs: %016llx (checkpoint) vs %016llx "
                     "(now)%s", (unsigned long long)in->fingerprint,
                 (unsigned long long)fp,
                 strcmp(in->parameters, L->parameters) != 0
                     ? " (the parameters' texts differ in no line compared: in "
                       "line ends, blank lines or spacing)"
                     : "");
    if (!t.used)
        return EMBER_OK;
    if (L->o.force_resume && !state_differs) {
        warn(L, "ember: resuming from %s although %s (the resume is forced)", path, d);
        L->forced_cand = 1;
        fit_list(d, 300);
        snprintf(L->forced_cand_note, sizeof L->forced_cand_note,
                 "at iteration %llu of a run of %.64s: %.300s",
                 (unsigned long long)in->iteration, in->program, d);
        return EMBER_OK;
    }
    const char *tail = state_differs ? "" : "; force_resume would resume anyway";
    size_t fixed = strlen("checkpoint  is from another run: ") + strlen(path) +
                   strlen(tail);
    fit_list(d, fixed < EMBER_MSG_SIZE - 64 ? EMBER_MSG_SIZE - 1 - fixed : 63);
    return ember__err(msg, EMBER_EMISMATCH, "checkpoint %s is from another run: %s%s",
                      path, d, tail);
}

typedef struct {
    ember_ds *ds;
    void *buf;
    /* Several ranks: the records of ds (its array, which owns them) and its
     * partition offsets, for the all-gather after each rank read its own. */
    void *data;
    const uint64_t *off;
    size_t nparts, elem;
} staged;

static void unstage(ember_loop *L, staged *st)
{
    for (size_t i = 0; i < L->nb; i++) {
        ember_ds_free(&st[i].ds);
        ember__free(L->ctx, st[i].buf);
    }
    ember__free(L->ctx, st);
}

/* The name of b in the file being restored. */
static const char *file_name(const ember_loop *L, const binding *b)
{
    return L->reading_v1 && b->v1_name[0] ? b->v1_name : b->name;
}

static int load_ds(ember_loop *L, ember__ckr *r, const binding *b,
                   ember_ds **out, char *msg)
{
    ember_type t;
    void *data = NULL;
    uint64_t *offsets = NULL;
    size_t n = 0, nparts = 0;
    int rc = ember__ckr_dataset(r, file_name(L, b), &t, &data, &n, &offsets, &nparts,
                                msg);
    if (rc)
        return rc;
    if (!ember_type_equal(&t, &b->type)) {
        ember__free(L->ctx, data);
        ember__free(L->ctx, offsets);
        return ember__err(msg, EMBER_ETYPE,
                          "dataset %s has another record type", b->name);
    }
    /* Same partition boundaries as when written: bit-identical results. */
    return ember__array_source_offsets(out, L->ctx, &t, data, n, offsets,
                                       nparts, ember_ds_name(*b->ds), msg);
}

/* Several ranks: each rank reads only the records of the partitions it
 * owns (the block map of the file's partition count) with one hyperslab
 * read, into an array of the whole length whose other records stay zero
 * until follow_restore all-gathers them. */
static int load_ds_owned(ember_loop *L, ember__ckr *r, const binding *b,
                         staged *sg, char *msg)
{
    ember_type t;
    uint64_t *off = NULL;
    size_t n = 0, nparts = 0, lo = 0, hi = 0;
    int rc = ember__ckr_dataset_shape(r, file_name(L, b), &t, &n, &off, &nparts,
                                      msg);
    if (rc)
        return rc;
    if (!ember_type_equal(&t, &b->type)) {
        ember__free(L->ctx, off);
        return ember__err(msg, EMBER_ETYPE,
                          "dataset %s has another record type", b->name);
    }
    if (!ember__offsets_cover(off, nparts, n)) { /* before they address data */
        ember__free(L->ctx, off);
        return ember__err(msg, EMBER_ECORRUPT, "%s: partition offsets do not "
                          "cover %zu records", b->name, n);
    }
    ember__comm_owned(L->ctx, nparts, &lo, &hi);
    unsigned char *data = n ? ember__calloc(L->ctx, n, t.size) : NULL;
    if (n && !data) {
        ember__free(L->ctx, off);
        return ember__err(msg, EMBER_ENOMEM, "out of memory for %zu records of %s",
                          n, b->name);
    }
    rc = ember__ckr_slice(r, file_name(L, b), &t, off[lo],
                          (size_t)(off[hi] - off[lo]),
                          data ? data + off[lo] * t.size : NULL, msg);
    if (rc) {
        ember__free(L->ctx, data);
        ember__free(L->ctx, off);
        return rc;
    }
    sg->data = data;
    sg->off = off;
    sg->nparts = nparts;
    sg->elem = t.size;
    return ember__array_source_offsets(&sg->ds, L->ctx, &t, data, n, off, nparts,
                                       ember_ds_name(*b->ds), msg);
}

/* Reads every bound item from r into *out, changing nothing bound. */
static int load_state(ember_loop *L, ember__ckr *r, staged **out, char *msg)
{
    staged *st = ember__calloc(L->ctx, L->nb ? L->nb : 1, sizeof *st);
    if (!st)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = EMBER_OK;
    for (size_t i = 0; !rc && i < L->nb; i++) {
        const binding *b = &L->b[i];
        if (b->note)
            continue; /* information for readers, never restored */
        if (b->kind == BIND_DS) {
            rc = ranks(L) > 1 ? load_ds_owned(L, r, b, &st[i], msg)
                              : load_ds(L, r, b, &st[i].ds, msg);
            continue;
        }
        /* State newer than a format 1 file restores as zeros. */
        int absent = L->reading_v1 && b->v1_absent;
        st[i].buf = absent ? ember__calloc(L->ctx, 1, binding_bytes(b))
                           : ember__malloc(L->ctx, binding_bytes(b));
        if (!st[i].buf)
            rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
        else if (absent)
            continue;
        else if (b->kind == BIND_BLOB)
            rc = ember__ckr_blob(r, file_name(L, b), st[i].buf, b->n, msg);
        else
            rc = ember__ckr_scalars(r, file_name(L, b), b->scalar, st[i].buf, b->n,
                                    msg);
    }
    if (rc) {
        unstage(L, st);
        return rc;
    }
    *out = st;
    return EMBER_OK;
}

static void apply_state(ember_loop *L, staged *st)
{
    for (size_t i = 0; i < L->nb; i++) {
        binding *b = &L->b[i];
        if (b->note)
            continue;
        if (b->kind == BIND_DS) {
            ember_ds_free(b->ds);
            *b->ds = st[i].ds;
            st[i].ds = NULL;
        } else {
            ember__copy(b->data, st[i].buf, binding_bytes(b));
        }
    }
    unstage(L, st);
}

/* For ember__ckr_verify_reading: 1 when load_state reads group/name in
 * full (it is bound, under that group). */
static int bound_item(const char *group, const char *name, void *arg)
{
    const ember_loop *L = arg;
    for (size_t i = 0; i < L->nb; i++) {
        const binding *b = &L->b[i];
        const char *g = b->kind == BIND_DS     ? "datasets"
                        : b->kind == BIND_BLOB ? "blobs"
                                               : "scalars";
        if (!b->note && strcmp(file_name(L, b), name) == 0 && strcmp(g, group) == 0)
            return 1;
    }
    return 0;
}

/* 1: restored; 0: the file is bad (warned), try an older one; < 0: error.
 * named: the iteration its name says, which must be the one it holds. */
static int try_restore(ember_loop *L, const char *path, uint64_t named,
                       uint64_t *iter, char *msg)
{
    char emsg[EMBER_MSG_SIZE] = "";
    ember__ckr *r = NULL;
    staged *st = NULL;
    /* Opening checks the whole-file checksum before libhdf5 parses the
     * file; then the same verification ember-inspect runs, except that the
     * data of bound items is read (and its Fletcher32 checked) once, by
     * load_state, into staging that is applied only when all of it
     * loaded. */
    /* Several ranks: rank 0 chooses and verifies here, and every rank then
     * loads its own ranges of the chosen file (follow_restore). */
    int choose_only = ranks(L) > 1;
    int rc = ember__ckr_open(L->ctx, &r, path, emsg);
    L->reading_v1 = !rc && ember__ckr_info(r)->format_version == 1;
    if (!rc) {
        rc = check_identity(L, ember__ckr_info(r), path, msg);
        /* before load_state: a refusal leaves the caller's state as it is */
        if (!rc && L->o.iterations && ember__ckr_info(r)->iteration > L->o.iterations)
            rc = ember__err(msg, EMBER_EMISMATCH, "the checkpoint in %s is at iteration "
                            "%llu, past the %llu iterations this run asks for, so it "
                            "cannot end where it asks (the state is a longer run's): "
                            "ask for %llu or more, or use another checkpoint directory",
                            L->dir, (unsigned long long)ember__ckr_info(r)->iteration,
                            (unsigned long long)L->o.iterations,
                            (unsigned long long)ember__ckr_info(r)->iteration);
        if (rc) {
            ember__ckr_close(&r);
            return rc;
        }
        /* A file renamed (by hand, a copy) would be taken for a newer one
         * than it is, and retention would then delete newer ones for it. */
        if (ember__ckr_info(r)->iteration != named)
            rc = ember__err(emsg, EMBER_ECORRUPT, "its name says iteration %llu, "
                            "it holds iteration %llu (renamed?)",
                            (unsigned long long)named,
                            (unsigned long long)ember__ckr_info(r)->iteration);
        else
            rc = ember__ckr_verify_reading(r, bound_item, L, emsg);
    }
    if (!rc && !choose_only)
        rc = load_state(L, r, &st, emsg);
    if (!rc)
        *iter = ember__ckr_info(r)->iteration;
    ember__ckr_close(&r);
    if (rc == EMBER_ENOMEM)
        return ember__err(msg, rc, "restoring %s: %s", path, emsg);
    /* A file that cannot be read (permissions, an I/O error, a stale
     * handle on a network file system) is not shown damaged: skipped, it
     * would be retired as stale once this run commits. */
    if (rc == EMBER_EIO)
        return ember__err(msg, rc, "cannot read checkpoint %s: this run stops rather "
                          "than start again without it and later delete it; make it "
                          "readable, or move it out of %s to start without it",
                          emsg, L->dir);
    if (rc) {
        warn(L, "ember: skipping checkpoint %s: %s", path, emsg);
        return 0;
    }
    if (!choose_only)
        apply_state(L, st);
    return 1;
}

/* Files newer than `from` (all when from_none) are stale: see struct. */
static int note_stale(ember_loop *L, const ckpt_entry *e, size_t n,
                      int from_none, uint64_t from, char *msg)
{
    ember__free(L->ctx, L->stale);
    L->nstale = 0;
    L->stale = ember__calloc(L->ctx, n ? n : 1, sizeof *L->stale);
    if (!L->stale)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (from_none || e[i].iter > from)
            L->stale[L->nstale++] = e[i].iter;
    return EMBER_OK;
}

/* Several ranks, after rank 0 chose and verified (s): every rank opens the
 * same file. Rank 0 hashed it whole; the others check that their file has
 * its checksum header and size (a directory that is not shared holds
 * another file under that name) and, unless forced, that it is the same
 * run and iteration. Each rank reads only its own partitions' ranges of
 * each dataset (Fletcher32 checked), the scalars, arrays and blobs whole;
 * the ranks agree that all of them have it, and then all-gather the
 * datasets' ranges in memory, so every rank holds the restored state as a
 * serial restore does (the programs read it whole, CC's output after a
 * restore that runs no iteration for one). */
static int follow_restore(ember_loop *L, const root_says *s, char *msg)
{
    if (!s->got)
        return EMBER_OK;
    ember__ckr *r = NULL;
    staged *st = NULL;
    char emsg[EMBER_MSG_SIZE] = "";
    int rc = ember__ckr_open_known(L->ctx, &r, s->path, s->head, s->size, emsg);
    if (rc == EMBER_EMISMATCH)
        rc = ember__err(msg, rc, "rank %d: %s; the checkpoint directory must be "
                        "one that every rank sees", ember__comm_rank(L->ctx),
                        emsg);
    else if (rc)
        rc = ember__err(msg, rc, "%s", emsg);
    const ember__ck_info *in = rc ? NULL : ember__ckr_info(r);
    /* As rank 0 read it: a format 1 file by its format 1 names. */
    L->reading_v1 = in && in->format_version == 1;
    if (!rc && !is_root(L) && !L->o.force_resume)
        rc = check_identity(L, in, s->path, msg);
    if (!rc && in->iteration != s->iter)
        rc = ember__err(msg, EMBER_EMISMATCH,
                        "rank %d: %s holds iteration %llu where rank 0 read "
                        "%llu: the checkpoint directory must be one that every "
                        "rank sees", ember__comm_rank(L->ctx), s->path,
                        (unsigned long long)in->iteration,
                        (unsigned long long)s->iter);
    if (!rc)
        rc = load_state(L, r, &st, msg);
    ember__ckr_close(&r);
    rc = ember__comm_agree_status(L->ctx, rc, 0, msg);
    for (size_t i = 0; !rc && i < L->nb; i++) {
        if (L->b[i].kind != BIND_DS || L->b[i].note || !st[i].off ||
            !st[i].off[st[i].nparts])
            continue;
        rc = ember__comm_allgather_ranges(L->ctx, st[i].data, st[i].elem,
                                          st[i].off, st[i].nparts, msg);
    }
    rc = ember__comm_agree_status(L->ctx, rc, 0, msg);
    if (rc) {
        if (st)
            unstage(L, st);
        return rc;
    }
    apply_state(L, st);
    /* Every rank has written the restored state before any goes on: a
     * replicated array is one array, and a rank that returned first and
     * wrote its own ranges had them overwritten by a slower rank's copy
     * of the checkpoint's (wrong resumed results, 6 times in 7 on 3 ranks). */
    return ember__comm_agree_status(L->ctx, EMBER_OK, 0, msg);
}

/* The restored file was reached by force, now or by the run it carries
 * on: every rank takes rank 0's account, and the parameters every later
 * file records gain an "info.forced=" line (information: never compared,
 * and out of the fingerprint), so a resume of those files says it too. */
static int take_forced(ember_loop *L, char *msg)
{
    struct {
        int kind;
        char note[EMBER_MSG_SIZE];
    } f;
    memset(&f, 0, sizeof f);
    f.kind = L->forced_cand;
    memcpy(f.note, L->forced_cand_note, sizeof f.note);
    int rc = ranks(L) > 1 ? ember__comm_bcast(L->ctx, &f, sizeof f, msg) : EMBER_OK;
    if (rc || !f.kind)
        return rc;
    f.note[sizeof f.note - 1] = '\0';
    if (f.kind == 2 && strncmp(f.note, "unknown: ", 9) == 0)
        f.kind = 3; /* carried on from such a file: still unknown */
    /* the parameters as written; the caller's text, which the fingerprint
     * and the comparisons take, stays as it is (a retried first
     * ember_loop_next restores again) */
    size_t old = strlen(L->parameters), add = strlen(f.note);
    char *p = ember__malloc(L->ctx, old + add + 16);
    if (!p)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    snprintf(p, old + add + 16, "%s%sinfo.forced=%s\n", L->parameters,
             old && L->parameters[old - 1] != '\n' ? "\n" : "", f.note);
    ember__free(L->ctx, L->recorded);
    L->recorded = p;
    L->forced = f.kind;
    memcpy(L->forced_note, f.note, sizeof f.note);
    if (f.kind == 2 && is_root(L))
        warn(L, "ember: this run carries on one resumed by force (%s): its result is "
                "not that of a run started with these parameters", f.note);
    if (f.kind == 3 && is_root(L))
        warn(L, "ember: whether this run was ever resumed by force is %s; if it was, "
                "its result is not that of a run started with these parameters "
                "(start afresh, or verify the result)", f.note);
    return EMBER_OK;
}

int ember_loop_forced(const ember_loop *L, char *note, size_t size)
{
    if (!L)
        return 0;
    if (note && size)
        snprintf(note, size, "%s", L->forced ? L->forced_note : "");
    return L->forced;
}

/* With no usable file, a directory that holds another build's
 * checkpoints (early 0.1.0's, with no checksum header) is that build's
 * run, with its progress: a fresh start here would mix another run with
 * its files (and replace those whose iterations it reaches), and a user
 * who upgraded ember in mid-run would find the run started again.
 * EMBER_EMISMATCH naming the newest, or 0. */
static int keep_foreign(const ember_loop *L, const ckpt_entry *e, size_t n, char *msg)
{
    char path[PATH_SIZE];
    for (size_t i = 0; i < n; i++)
        if (!ckpt_path(L, e[i].name, path) && ember__fsum_unsealed_hdf5(path))
            return ember__err(msg, EMBER_EMISMATCH, "%s: a checkpoint with no ember "
                              "checksum header, as the first builds of ember 0.1.0 "
                              "(until 2026-12-02) wrote them: this build cannot verify "
                              "it, so it cannot resume that run, and will not start "
                              "another among its files; finish the run with the ember "
                              "that wrote it, or move its files out of %s (resume never "
                              "starts afresh and deletes them)", path, L->dir);
    return EMBER_OK;
}

static int restore(ember_loop *L, char *msg)
{
    ckpt_entry *e = NULL;
    size_t n = 0, rejected = 0;
    int rc = EMBER_OK, got = 0;
    uint64_t iter = 0;
    char path[PATH_SIZE] = ""; /* the file restored from, once got */
    if (is_root(L)) { /* rank 0 picks, verifies and loads */
        rc = list_ckpts(L, &e, &n, msg);
        for (size_t i = 0;
             !rc && !got && L->o.resume != EMBER_RESUME_NEVER && i < n; i++) {
            if (ckpt_path(L, e[i].name, path))
                continue;
            int r = try_restore(L, path, e[i].iter, &iter, msg);
            if (r < 0)
                rc = r;
            else if (r == 0)
                rejected++;
            else
                got = 1;
        }
        /* Each rejection was printed as it happened (warn), so the
         * error counts them rather than saying them again. */
        if (!rc && !got && L->o.resume == EMBER_RESUME_REQUIRE)
            rc = ember__err(msg, EMBER_ENOTFOUND,
                            "no usable checkpoint in %s (resume required; %zu "
                            "file%s rejected%s)", L->dir, rejected,
                            rejected == 1 ? "" : "s",
                            rejected ? ", each with its reason above" : "");
        if (!rc && !got && rejected) /* auto: another build's run is not started over */
            rc = keep_foreign(L, e, n, msg);
        if (!rc && !got && rejected) /* not mistaken for a resume */
            warn(L, "ember: no checkpoint in %s is usable (%zu rejected above): "
                 "starting from iteration 0", L->dir, rejected);
        if (!rc)
            rc = note_stale(L, e, n, !got, iter, msg);
        ember__free(L->ctx, e);
    }
    if (ranks(L) > 1) {
        root_says s;
        memset(&s, 0, sizeof s);
        if (is_root(L) && !rc && got)
            rc = ember__ck_head(path, s.head, &s.size, msg);
        s.rc = rc;
        s.got = got;
        s.iter = iter;
        snprintf(s.path, sizeof s.path, "%s", path);
        if (rc && msg)
            snprintf(s.msg, sizeof s.msg, "%s", msg);
        rc = share_root(L, &s, msg);
        if (!rc)
            rc = follow_restore(L, &s, msg);
        got = (int)s.got;
        iter = s.iter;
        snprintf(path, sizeof path, "%s", s.path);
    }
    if (rc || !got)
        return rc;
    if ((rc = take_forced(L, msg)))
        return rc;
    L->done = iter;
    L->have_ckpt = 1;
    L->ckpt_iter = iter;
    L->stats.restored = 1;
    L->stats.restored_from = iter;
    snprintf(L->stats.last_path, sizeof L->stats.last_path, "%s", path);
    /* The file just verified has committed. A run killed between a commit
     * and its retention left one file too many, and a resume at the last
     * iteration writes nothing that would retire it: it is retired once
     * the run goes on (retain_after_restore), not here: the run may still
     * end before it goes on (a stop, or its caller's refusal), and a run
     * that stops there must not have deleted a file under its own --keep. Stale
     * (newer, rejected) files wait for a commit of this run's own. */
    L->retain_due = !L->nstale;
    return EMBER_OK;
}

/* ---- the policy ---------------------------------------------------------------- */

/* The max of the last few: a deadline is better met early than late. */
static double max_of(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n && i < ITER_TIMES; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

/* The depth a bound dataset's lineage would have without the loop's own
 * cuts (cut_lineages), which keep it short whatever the policy: a cached
 * state is cut every iteration, any other every LINEAGE_CUT; counted
 * without them, max_depth never fired. */
static int depth_reached(const ember_loop *L)
{
    for (size_t i = 0; i < L->nb; i++)
        if (L->b[i].kind == BIND_DS && *L->b[i].ds &&
            ember_lineage_depth(*L->b[i].ds) + L->b[i].cut_depth >= L->o.max_depth)
            return 1;
    return 0;
}

static int needs_cost(const ember_loop *L)
{
    return (L->o.mtbf > 0 || L->o.deadline > 0) && !L->cost_known;
}

static int policy_due(const ember_loop *L, double now)
{
    const ember_loop_opts *o = &L->o;
    if (o->every && L->done % o->every == 0)
        return 1;
    if (o->seconds > 0 && now - L->last_ckpt_time >= o->seconds)
        return 1;
    if (o->max_depth && depth_reached(L))
        return 1;
    /* Young's interval sqrt(2 C MTBF), and the deadline, need the cost C
     * of a checkpoint: the first iteration of a run measures it. */
    if (needs_cost(L))
        return 1;
    if (o->mtbf > 0)
        return now - L->last_ckpt_time >= sqrt(2 * L->last_cost * o->mtbf);
    return 0;
}

/* Would one more iteration and a checkpoint after it end past the
 * deadline? (Costs are the max of the last few; until a checkpoint has
 * been timed, one is taken to cost an iteration.) */
static int deadline_near(const ember_loop *L)
{
    if (L->o.deadline <= 0)
        return 0;
    double it = max_of(L->iter_times, L->niter_times);
    double cost = L->cost_known ? max_of(L->costs, L->ncosts) : it;
    return wall_now() + it + 1.5 * cost > L->o.deadline;
}

static int signalled(ember_loop *L)
{
    if (ember__signals_caught(&L->sig))
        L->caught = 1;
    return L->caught;
}

/* Before a checkpoint: the directory is still this run's (rank 0 holds
 * the lock; the ranks agree). */
static int lock_still_held(ember_loop *L, char *msg)
{
    int rc = lock_check(L, msg);
    return ranks(L) > 1 ? ember__comm_agree_status(L->ctx, rc, 0, msg) : rc;
}

/* The directory's lock is lost (its lock file, or the whole directory,
 * removed or replaced): the failure says what a run can resume from, as a
 * failed write's does (write_failed), whichever of the two notices a
 * removed directory first. The write in flight is ours whatever became of
 * the lock, so it is waited for and accounted first: a file it committed
 * is the newest checkpoint (its own failure is not reported: the lock's
 * is). */
static void lock_lost(ember_loop *L, char *msg)
{
    char jmsg[EMBER_MSG_SIZE], kept[160];
    (void)async_join(L, jmsg);
    kept_text(L, 1, kept, sizeof kept);
    if (msg && kept[0]) {
        size_t len = strnlen(msg, EMBER_MSG_SIZE - 1);
        snprintf(msg + len, EMBER_MSG_SIZE - len, "%s", kept);
    }
}

/* A write in the background failed (rc, msg): when the directory's lock
 * was lost meanwhile, the loss is what the run reports, as checkpoint_once
 * reports it. (A run that took the lock swept this run's temporaries as
 * strays, so the write failed for that: "rename failed: No such file"
 * named neither the cause nor the other run.) Background writes are one
 * rank's only, so this rank alone checks. */
static int lock_or_write_failed(ember_loop *L, int rc, char *msg)
{
    char lmsg[EMBER_MSG_SIZE];
    int lrc = lock_still_held(L, lmsg);
    if (!lrc)
        return rc;
    if (msg)
        snprintf(msg, EMBER_MSG_SIZE, "%s", lmsg);
    lock_lost(L, msg);
    return lrc;
}

/* Checkpoints unless this iteration count is already written. */
static int checkpoint_once(ember_loop *L, int async, int *wrote, char *msg)
{
    double t0 = mono_now();
    int rc = lock_still_held(L, msg);
    if (rc)
        lock_lost(L, msg);
    else
        rc = async_join(L, msg);
    if (!rc && !(L->have_ckpt && L->ckpt_iter == L->done)) {
        *wrote = 1;
        rc = async ? async_start(L, msg) : write_checkpoint(L, NULL, msg);
    }
    L->stats.caller_seconds += mono_now() - t0;
    return rc;
}

/* The decision flags of one iteration, agreed by every rank (an OR: a
 * signal on any rank, the policy or the deadline on any rank's clock).
 * One rank: the flags as they are. On failure *flags is left as it was. */
enum { F_STOP = 1, F_DUE = 2, F_NEAR = 4 };

static int agree(ember_loop *L, int64_t *flags, char *msg)
{
    if (ranks(L) == 1)
        return EMBER_OK;
    int64_t f = *flags;
    int rc = ember__comm_agree(L->ctx, &f, 1, EMBER__AGREE_OR, msg);
    if (!rc)
        *flags = f;
    if (!rc && (f & F_STOP))
        L->caught = 1; /* seen on some rank: every rank reports it */
    return rc;
}

/* After an iteration: policy checkpoints, then signals and the deadline.
 * Without a directory nothing is ever written, no signal is caught and
 * the deadline does not apply (there is nothing to save for it). One
 * agreement settles the iteration; a second one follows a policy
 * checkpoint, which took time and may have seen a signal. */
/* The retention a restore deferred, once the run goes on (restore). */
static void retain_after_restore(ember_loop *L)
{
    if (L->retain_due)
        retain(L);
    L->retain_due = 0;
}

/* The dataset whose id is prev if it is a parent of ds, or a parent's
 * parent, up to `steps` steps up; NULL if not. A walk without memory of
 * its own, and only `steps` deep: the whole ancestry (ember__ancestors)
 * would cost more than a small iteration. */
static ember_ds *near_ancestor(ember_ds *ds, uint64_t prev, int steps)
{
    for (int p = 0; steps > 0 && ds->op != EMBER__CHECKPOINT && p < 2; p++) {
        ember_ds *a = ds->parent[p];
        if (a && (a->id == prev || (a = near_ancestor(a, prev, steps - 1))))
            return a;
    }
    return NULL;
}

/* What cut_lineages does with a bound dataset, agreed by the ranks. */
enum {
    CUT = 1,        /* truncate its lineage into the block store */
    KEEP_CUT = 2,   /* the state it was made from, kept by the loop and
                       stored whole: truncate that one's */
    KEEP_DROP = 4,  /* that state, kept but not stored whole: unpersist it */
    KEEP_NEW = 8,   /* persist this one, the loop's own keep */
    CANNOT = 16     /* a rank could not decide (out of memory) */
};

/* A bound dataset that the iteration made from the state it was handed
 * (that state within LINEAGE_NEAR steps up its lineage) and persisted
 * (x = cache(f(x)), the Spark idiom) is truncated into the block store
 * (ember_local_checkpoint) after every iteration, which computes nothing;
 * any bound dataset deeper than LINEAGE_CUT is, every LINEAGE_CUT
 * iterations (stored or not: a chain of maps nobody computes runs fused
 * until then). With a checkpoint directory or without; values do not
 * change. Every action walks its dataset's lineage: a state made from the
 * last one each iteration cost O(iterations) an action and kept every
 * iteration's nodes (ember-sssp's 2,000 rounds on a path: 0.35 s, 0.035 s
 * cut). Cut only every LINEAGE_CUT iterations, a cached state still kept
 * up to 2 x LINEAGE_CUT iterations' blocks: bench/jacobi.c's idiom 154 MB
 * of RSS against 28 for the same loop on arrays (28.7 now), the README's
 * loop 225 MB (83 now).
 *
 * A state made so and not persisted (x = f(x), cache forgotten) in an
 * iteration that ran an action is persisted by the loop (MEMORY_ONLY,
 * ds->loop_kept): the next iteration's action, which computes it on its
 * way, stores it, and the loop then truncates it as above, or unpersists
 * it if no action computed it whole. Each action then computes two
 * iterations' functions, not up to 2 x LINEAGE_CUT (the README's loop on
 * 2M records, uncached, 300 iterations: 22.9 -> 1.5 s). A loop whose
 * iterations run no action (ember-maps: one map each, computed by its
 * checkpoints) keeps nothing, and its maps run fused. Nor is a state
 * marked for a checkpoint file kept. */
static int cut_lineages(ember_loop *L, char *msg)
{
    if (L->nb == 0)
        return EMBER_OK;
    int acted = L->ctx->passes != L->passes_handed;
    /* The ranks agree on what to do (a local checkpoint is collective),
     * and first on whether every rank could decide. */
    int64_t *what = ember__calloc(L->ctx, L->nb + 1, sizeof *what);
    ember_ds **from = ember__calloc(L->ctx, L->nb + 1, sizeof *from);
    int64_t failed = !what || !from;
    for (size_t i = 0; !failed && i < L->nb; i++) {
        ember_ds *ds = L->b[i].kind == BIND_DS ? *L->b[i].ds : NULL;
        ember_ds *h = ds && ds->id != L->b[i].handed_id
                          ? near_ancestor(ds, L->b[i].handed_id, LINEAGE_NEAR)
                          : NULL;
        int whole = h ? ember__stored_whole(ds, NULL) : 0;
        if (h && h->loop_kept && h->id == L->b[i].kept_id) {
            int hw = ember__stored_whole(h, NULL);
            what[i] |= hw < 0 ? CANNOT : hw ? KEEP_CUT : KEEP_DROP;
            from[i] = h;
        }
        what[i] |= whole < 0 ? CANNOT : 0;
        if (whole > 0 || (ds && L->done % LINEAGE_CUT == 0 &&
                          ember_lineage_depth(ds) > LINEAGE_CUT))
            what[i] |= CUT;
        else if (h && acted && ds->level == EMBER_NONE && !ds->ckpt_state)
            what[i] |= KEEP_NEW;
        failed |= (what[i] & CANNOT) != 0;
    }
    int rc = ember__comm_agree(L->ctx, &failed, 1, EMBER__AGREE_OR, msg);
    if (!rc && failed)
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory cutting a bound lineage");
    if (!rc)
        rc = ember__comm_agree(L->ctx, what, L->nb, EMBER__AGREE_OR, msg);
    for (size_t i = 0; !rc && i < L->nb; i++) {
        ember_ds *ds = L->b[i].kind == BIND_DS ? *L->b[i].ds : NULL, *h = from[i];
        size_t before = ds && L->o.max_depth ? ember_lineage_depth(ds) : 0;
        if (h)
            h->refs++; /* cutting ds may let go of the last reference */
        if (what[i] & CUT)
            rc = ember_local_checkpoint(ds, msg);
        /* the kept state: cut, unless the new one was (which no longer
         * needs it) or it is not whole on some rank, and then dropped */
        if (!rc && h && (what[i] & (KEEP_CUT | KEEP_DROP | CUT)) == KEEP_CUT)
            rc = ember_local_checkpoint(h, msg);
        else if (!rc && h)
            ember_unpersist(h);
        if (h) {
            h->loop_kept = 0;
            ember__ds_unref(h);
        }
        if (!rc && (what[i] & KEEP_NEW) && !(rc = ember_cache(ds, msg))) {
            ds->loop_kept = 1;
            L->b[i].kept_id = ds->id;
        }
        size_t after = before ? ember_lineage_depth(ds) : 0;
        L->b[i].cut_depth += before > after ? before - after : 0;
    }
    ember__free(L->ctx, what);
    ember__free(L->ctx, from);
    return rc;
}

static int after_iteration(ember_loop *L, char *msg)
{
    int wrote = 0, rc = cut_lineages(L, msg);
    if (rc || !L->dir)
        return rc;
    retain_after_restore(L);
    /* The policy needs the cost of the first checkpoint in the background:
     * its end is waited for, as a synchronous one would have been. */
    double t0 = mono_now();
    rc = needs_cost(L) ? async_join(L, msg) : async_reap(L, msg);
    L->stats.caller_seconds += mono_now() - t0;
    if (rc)
        return lock_or_write_failed(L, rc, msg);
    int64_t f = (signalled(L) ? F_STOP : 0) |
                (policy_due(L, mono_now()) ? F_DUE : 0) |
                (deadline_near(L) ? F_NEAR : 0);
    rc = agree(L, &f, msg);
    int stop = rc == EMBER_OK && (f & F_STOP);
    if (!rc && !stop && (f & F_DUE)) {
        rc = checkpoint_once(L, L->async, &wrote, msg);
        /* A deadline's first measure of a checkpoint: waited for here, so
         * that the run stops now, on this file, when the next iteration
         * and one more such write would end past the deadline (guessed at
         * an iteration's cost, the second write overshot by its length) */
        if (!rc && L->o.deadline > 0 && !L->cost_known)
            rc = async_join(L, msg);
        f = (signalled(L) ? F_STOP : 0) | (deadline_near(L) ? F_NEAR : 0);
        t0 = mono_now(); /* the second agreement: the checkpoint's too */
        if (!rc)
            rc = agree(L, &f, msg);
        L->stats.caller_seconds += mono_now() - t0;
    }
    if (!rc && !stop)
        stop = (f & (F_STOP | F_NEAR)) != 0;
    if (!rc && stop)
        rc = checkpoint_once(L, 0, &wrote, msg);
    L->stats.last_was_checkpoint = wrote && !rc;
    if (!rc && stop) {
        L->stopped = 1;
        if (msg)
            snprintf(msg, EMBER_MSG_SIZE, "%s after iteration %llu; its checkpoint "
                     "is in %s", L->caught ? "a signal came" : "the deadline is near",
                     (unsigned long long)L->done, L->dir);
        return EMBER_INTERRUPTED;
    }
    return rc;
}

/* ---- public calls ----------------------------------------------------------------- */

/* Several ranks run one loop: the same program, parameters and bound
 * state, so its fingerprint. A rank whose parameters differ (one that
 * hashed a stale copy of an input) would otherwise run a fresh start with
 * the others, its state saved under rank 0's fingerprint, and a resume
 * would take that state as rank 0's run. */
static int check_ranks_agree(ember_loop *L, int rc, char *msg)
{
    /* rc: this rank's signature failed (every rank takes part all the same:
     * a rank whose bound state differs may be the one that failed) */
    rc = ember__comm_agree_status(L->ctx, rc, 0, msg);
    uint64_t fp = L->fingerprint;
    char emsg[EMBER_MSG_SIZE] = "";
    if (!rc && (rc = ember__comm_bcast(L->ctx, &fp, sizeof fp, emsg)))
        return ember__err(msg, rc, "%s", emsg);
    if (rc)
        return rc;
    if (fp != L->fingerprint)
        rc = ember__err(msg, EMBER_EMISMATCH, "rank %d runs another program, other "
                        "parameters or other bound state than rank 0 (fingerprint "
                        "%016llx, rank 0's %016llx): every rank must run the same "
                        "command on the same inputs", ember__comm_rank(L->ctx),
                        (unsigned long long)L->fingerprint, (unsigned long long)fp);
    return ember__comm_agree_status(L->ctx, rc, 0, msg);
}

static int first_next(ember_loop *L, char *msg)
{
    int rc = build_signature(L, msg);
    if (ranks(L) > 1)
        rc = check_ranks_agree(L, rc, msg);
    if (!rc && L->dir)
        rc = restore(L, msg);
    if (rc)
        return rc;
    /* said once the resume is accepted: not before a refusal */
    if (L->stats.restored && !L->o.quiet && is_root(L))
        fprintf(stderr, "ember: resumed from %s (%llu iterations done)\n",
                L->stats.last_path, (unsigned long long)L->done);
    L->started = 1;
    L->last_ckpt_time = mono_now();
    return EMBER_OK;
}

int ember_loop_next(ember_loop *L, uint64_t *iteration, char *msg)
{
    ember__msg_clear(msg);
    if (!L || !iteration)
        return ember__err(msg, EMBER_EINVAL, "ember_loop_next: NULL argument");
    if (L->stopped)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_loop_next: the loop has stopped");
    L->stats.last_was_checkpoint = 0;
    int rc;
    if (!L->started) {
        rc = first_next(L, msg);
        /* Resumed at its last iteration, an accepted run does not go on,
         * and its caller need not call finish (the README's loop does not):
         * the file too many is retired now. */
        if (!rc && L->dir && L->o.iterations && L->done == L->o.iterations)
            retain_after_restore(L);
    } else {
        if (L->pending) {
            L->iter_times[L->niter_times++ % ITER_TIMES] =
                mono_now() - L->iter_start;
            L->done++;
            L->pending = 0;
        }
        rc = after_iteration(L, msg);
    }
    /* Warnings since the last call (the sweep at create, a skipped file,
     * a failed deletion) go to msg unless it holds an error. */
    if (rc >= 0 && L->warn[0] && msg)
        snprintf(msg, EMBER_MSG_SIZE, "%s", L->warn);
    L->warn[0] = '\0';
    if (rc)
        return rc;
    L->pending = 1;
    L->iter_start = mono_now();
    for (size_t i = 0; i < L->nb; i++)
        if (L->b[i].kind == BIND_DS)
            L->b[i].handed_id = *L->b[i].ds ? (*L->b[i].ds)->id : 0;
    L->passes_handed = L->ctx->passes;
    *iteration = L->done;
    return EMBER_OK;
}

/* ember_loop_finish, and with `background` ember_loop_finish_start. */
static int finish(ember_loop *L, int background, const char *name, char *msg)
{
    ember__msg_clear(msg);
    if (!L)
        return ember__err(msg, EMBER_EINVAL, "%s: NULL loop", name);
    if (!L->started)
        return ember__err(msg, EMBER_ESTATE, "%s before ember_loop_next", name);
    if (L->stopped)
        return ember__err(msg, EMBER_ESTATE, "%s: the loop has stopped", name);
    /* An iteration handed out at or past the count the run asks for was
     * not run: a loop that calls finish after `it < n` ended it has done
     * n, not n + 1 (its state would be saved one iteration ahead). */
    if (L->pending && !(L->o.iterations && L->done >= L->o.iterations))
        L->done++;
    L->pending = 0;
    int wrote = 0;
    int rc = L->dir ? checkpoint_once(L, background && L->async, &wrote, msg)
                    : EMBER_OK;
    if (background && !rc)
        L->stats.last_was_checkpoint = L->job != NULL;
    if (!rc) /* after a failed write, finish may be called again */
        L->stopped = 1;
    if (!rc && L->dir)
        retain_after_restore(L);
    return rc;
}

int ember_loop_finish(ember_loop *L, char *msg)
{
    return finish(L, 0, "ember_loop_finish", msg);
}

int ember_loop_finish_start(ember_loop *L, char *msg)
{
    return finish(L, 1, "ember_loop_finish_start", msg);
}

int ember_loop_wait(ember_loop *L, char *msg)
{
    ember__msg_clear(msg);
    if (!L)
        return ember__err(msg, EMBER_EINVAL, "ember_loop_wait: NULL loop");
    double t0 = mono_now();
    int rc = async_join(L, msg);
    L->stats.caller_seconds += mono_now() - t0;
    return rc ? lock_or_write_failed(L, rc, msg) : EMBER_OK;
}

int ember_loop_checkpoint(ember_loop *L, char *msg)
{
    ember__msg_clear(msg);
    if (!L)
        return ember__err(msg, EMBER_EINVAL, "ember_loop_checkpoint: NULL loop");
    if (!L->dir)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_loop_checkpoint: the loop has no checkpoint "
                          "directory");
    if (!L->started)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_loop_checkpoint before ember_loop_next (the "
                          "state is not restored yet)");
    /* The file says L->done iterations: the state must be the one
     * ember_loop_next handed out, before the iteration's step. A bound
     * dataset replaced since then shows the step ran (other state cannot
     * be told apart, hence the rule in loop.h). */
    int64_t changed = 0; /* 1 + the binding; the ranks agree, then all refuse */
    for (size_t i = 0; L->pending && i < L->nb && !changed; i++)
        if (L->b[i].kind == BIND_DS &&
            (*L->b[i].ds ? (*L->b[i].ds)->id : 0) != L->b[i].handed_id)
            changed = (int64_t)i + 1;
    int rc = ember__comm_agree(L->ctx, &changed, 1, EMBER__AGREE_MAX, msg);
    if (rc)
        return rc;
    if (changed)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_loop_checkpoint: the bound dataset \"%s\" "
                          "changed since ember_loop_next handed out iteration "
                          "%llu, so the file would pair %llu iterations with "
                          "the state after %llu: call it before the "
                          "iteration's step", L->b[changed - 1].name,
                          (unsigned long long)L->done, (unsigned long long)L->done,
                          (unsigned long long)L->done + 1);
    double t0 = mono_now();
    rc = lock_still_held(L, msg);
    if (!rc)
        rc = async_join(L, msg);
    if (!rc)
        rc = write_checkpoint(L, NULL, msg);
    L->stats.caller_seconds += mono_now() - t0;
    return rc;
}

void ember_loop_get_stats(const ember_loop *L, ember_loop_stats *out)
{
    if (!out)
        return;
    if (!L) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = L->stats;
}

int ember_loop_signalled(const ember_loop *L)
{
    return L && (L->caught || ember__signals_caught(&L->sig));
}
