/* fuzz.c: files, contexts and checks shared by the fuzz harnesses (see
 * fuzz.h). Test code: it aborts where library code would return. */
#define _XOPEN_SOURCE 700
#include "fuzz.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[4096];
static char path[8192];

static void remove_dir_at_exit(void);

const char *fuzz_dir(void)
{
    if (dir[0])
        return dir;
    const char *tmp = getenv("TMPDIR");
    /* The pid in the name lets tests/fuzz/run.sh remove the directory of
     * a harness that died (a finding ends the process without atexit). */
    snprintf(dir, sizeof dir, "%s/ember-fuzz-%ld-XXXXXX", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    if (!mkdtemp(dir)) {
        fprintf(stderr, "fuzz: mkdtemp %s: %s\n", dir, strerror(errno));
        abort();
    }
    atexit(remove_dir_at_exit);
    return dir;
}

const char *fuzz_path(const char *name)
{
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    return path;
}

const char *fuzz_write(const char *name, const void *data, size_t size)
{
    const char *p = fuzz_path(name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fuzz: %s: %s\n", p, strerror(errno));
        abort();
    }
    const char *b = data;
    while (size > 0) {
        ssize_t w = write(fd, b, size);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "fuzz: writing %s: %s\n", p, strerror(errno));
            abort();
        }
        b += w;
        size -= (size_t)w;
    }
    close(fd);
    return p;
}

static int remove_one(const char *p, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void fuzz_remove(const char *name)
{
    nftw(fuzz_path(name), remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir_at_exit(void)
{
    if (dir[0])
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the capped allocator ----------------------------------------------- */

static void *cap_malloc(size_t size, void *ud)
{
    (void)ud;
    return size > FUZZ_ALLOC_LIMIT ? NULL : malloc(size);
}

static void *cap_realloc(void *p, size_t size, void *ud)
{
    (void)ud;
    return size > FUZZ_ALLOC_LIMIT ? NULL : realloc(p, size);
}

static void cap_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

ember_ctx *fuzz_ctx(void)
{
    static const ember_allocator a = {cap_malloc, cap_realloc, cap_free, NULL};
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.memory_budget = (size_t)64 << 20;
    o.scratch_dir = fuzz_dir();
    o.allocator = &a;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    if (ember_ctx_create(&ctx, &o, msg) != EMBER_OK) {
        fprintf(stderr, "fuzz: ember_ctx_create: %s\n", msg);
        abort();
    }
    return ctx;
}

/* ---- checks ------------------------------------------------------------- */

void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

void fuzz_check_msg(int rc, const char *msg, const char *call)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("EMBER_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "  %s: %s%s%.*s\n", call, ember_strerror(rc),
                rc ? ": " : "", rc ? EMBER_MSG_SIZE : 0, rc ? msg : "");
    if (rc == EMBER_OK)
        return;
    size_t len = strnlen(msg, EMBER_MSG_SIZE);
    if (len == EMBER_MSG_SIZE) {
        fprintf(stderr, "fuzz: %s returned %s with an unterminated message\n",
                call, ember_strerror(rc));
        abort();
    }
    if (len == 0 || memchr(msg, '\n', len)) {
        fprintf(stderr, "fuzz: %s returned %s with %s message: \"%s\"\n", call,
                ember_strerror(rc), len ? "a multi-line" : "an empty", msg);
        abort();
    }
}

void fuzz_check_h5(void)
{
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        fprintf(stderr, "fuzz: %zd HDF5 identifier(s) left open after the input\n",
                open_ids);
        abort();
    }
}

void fuzz_signals_default(void)
{
    static const int sigs[] = {SIGALRM, SIGINT, SIGTERM, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
}

/* libFuzzer calls it before installing its own handlers. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_signals_default();
    return 0;
}
