/* testutil.h: helpers shared by the core engine's unit tests.
 *
 * - A counting allocator that can fail the Nth allocation (malloc or
 *   realloc call), thread-safe with C11 atomics because ember allocates from
 *   every thread of its team. It keeps a small header per block so the
 *   bytes still allocated are known, not only the block count.
 * - A counter-based random generator (splitmix64) so every test input is a
 *   pure function of a fixed seed.
 * - Context and partition-reading helpers that fail the test, with ember's
 *   message, when a call that must succeed does not.
 *
 * Everything is static: each test file is its own program.
 */
#ifndef EMBER_TESTUTIL_H
#define EMBER_TESTUTIL_H

#include "ember.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- counting, failure-injecting allocator ------------------------------ */

typedef struct {
    atomic_long calls;      /* malloc and realloc calls, failed ones too */
    atomic_long live;       /* blocks allocated and not yet freed */
    atomic_llong live_bytes;
    atomic_llong peak_bytes; /* the most live_bytes has been */
    atomic_long fail_at;    /* the call number that fails (1-based); 0 never */
    atomic_long injected;   /* failures handed out */
} tu_counter;

/* The header keeps the block's size; 16 bytes keep max_align_t alignment. */
#define TU_HDR 16

static inline void tu_add_bytes(tu_counter *c, long long delta)
{
    long long now = atomic_fetch_add(&c->live_bytes, delta) + delta;
    long long peak = atomic_load(&c->peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&c->peak_bytes, &peak, now))
        ;
}

static inline void *tu_malloc(size_t size, void *ud)
{
    tu_counter *c = ud;
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (n == atomic_load(&c->fail_at)) {
        atomic_fetch_add(&c->injected, 1);
        return NULL;
    }
    if (size > SIZE_MAX - TU_HDR)
        return NULL;
    unsigned char *p = malloc(size + TU_HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    atomic_fetch_add(&c->live, 1);
    tu_add_bytes(c, (long long)size);
    return p + TU_HDR;
}

static inline void *tu_realloc(void *ptr, size_t size, void *ud)
{
    tu_counter *c = ud;
    if (!ptr)
        return tu_malloc(size, ud);
    long n = atomic_fetch_add(&c->calls, 1) + 1;
    if (n == atomic_load(&c->fail_at)) {
        atomic_fetch_add(&c->injected, 1);
        return NULL;
    }
    if (size > SIZE_MAX - TU_HDR)
        return NULL;
    unsigned char *h = (unsigned char *)ptr - TU_HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    unsigned char *p = realloc(h, size + TU_HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    tu_add_bytes(c, (long long)size - (long long)old);
    return p + TU_HDR;
}

static inline void tu_free(void *ptr, void *ud)
{
    tu_counter *c = ud;
    if (!ptr)
        return;
    unsigned char *h = (unsigned char *)ptr - TU_HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    atomic_fetch_sub(&c->live, 1);
    atomic_fetch_sub(&c->live_bytes, (long long)old);
    free(h);
}

static inline void tu_counter_reset(tu_counter *c, long fail_at)
{
    atomic_store(&c->calls, 0);
    atomic_store(&c->live, 0);
    atomic_store(&c->live_bytes, 0);
    atomic_store(&c->peak_bytes, 0);
    atomic_store(&c->fail_at, fail_at);
    atomic_store(&c->injected, 0);
}

static inline ember_allocator tu_allocator(tu_counter *c)
{
    ember_allocator a = {tu_malloc, tu_realloc, tu_free, c};
    return a;
}

/* ---- random inputs ------------------------------------------------------- */

static inline uint64_t tu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double tu_rand01(uint64_t *s)
{
    return (double)(tu_rand(s) >> 11) * 0x1.0p-53;
}

/* ---- contexts ---------------------------------------------------------------- */

/* A context with `threads` threads (0: default) and otherwise defaults. */
static inline ember_ctx *tu_ctx(int threads)
{
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = threads;
    int rc = ember_ctx_create(&ctx, &o, msg);
    if (rc)
        fail_msg("ember_ctx_create: %s", msg);
    return ctx;
}

static inline ember_ctx *tu_ctx_opts(const ember_ctx_opts *o)
{
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    int rc = ember_ctx_create(&ctx, o, msg);
    if (rc)
        fail_msg("ember_ctx_create: %s", msg);
    return ctx;
}

/* A context on the counting allocator c (reset first), defaults besides. */
static inline ember_ctx *tu_ctx_counted(tu_counter *c)
{
    tu_counter_reset(c, 0);
    ember_allocator al = tu_allocator(c); /* the context keeps a copy */
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.allocator = &al;
    return tu_ctx_opts(&o);
}

/* Fails the test with ember's message unless rc is EMBER_OK. */
#define TU_OK(call)                                                            \
    do {                                                                       \
        int tu_rc_ = (call);                                                   \
        if (tu_rc_ != EMBER_OK)                                                \
            fail_msg("%s returned %d (%s)", #call, tu_rc_,                     \
                     ember_strerror(tu_rc_));                                  \
    } while (0)

/* The same for calls that take a msg argument: pass `msg`. */
#define TU_OKM(call, msg)                                                      \
    do {                                                                       \
        int tu_rc_ = (call);                                                   \
        if (tu_rc_ != EMBER_OK)                                                \
            fail_msg("%s returned %d (%s): %s", #call, tu_rc_,                 \
                     ember_strerror(tu_rc_), (msg));                           \
    } while (0)

/* Asserts that msg holds `part` as a substring. */
#define TU_MSG_HAS(msg, part)                                                  \
    do {                                                                       \
        if (!strstr((msg), (part)))                                            \
            fail_msg("message \"%s\" lacks \"%s\"", (msg), (part));            \
    } while (0)

/* ---- reading datasets back ----------------------------------------------------- */

/* Collects ds into a malloc'd array (the caller frees with free()). */
static inline void *tu_collect(ember_ds *ds, size_t *n)
{
    char msg[EMBER_MSG_SIZE];
    void *data = NULL;
    int rc = ember_collect_alloc(ds, &data, n, msg);
    if (rc)
        fail_msg("collect: %s (%s)", msg, ember_strerror(rc));
    size_t bytes = *n * ember_ds_type(ds)->size;
    void *copy = malloc(bytes ? bytes : 1);
    assert_non_null(copy);
    if (bytes)
        memcpy(copy, data, bytes);
    ember_free(ember_ds_ctx(ds), data);
    return copy;
}

/* Every partition's records, read with foreach (each partition is fed by
 * one task, so the per-partition buffers need no lock). */
typedef struct {
    size_t nparts, size;
    unsigned char **data;
    size_t *n;
} tu_parts;

static inline int tu_parts_fn(const void *in, size_t n, size_t part, void *arg)
{
    tu_parts *p = arg;
    if (part >= p->nparts)
        return 99;
    unsigned char *d = realloc(p->data[part], (p->n[part] + n) * p->size);
    if (!d)
        return 98;
    memcpy(d + p->n[part] * p->size, in, n * p->size);
    p->data[part] = d;
    p->n[part] += n;
    return 0;
}

static inline void tu_parts_read(tu_parts *p, ember_ds *ds)
{
    char msg[EMBER_MSG_SIZE];
    p->nparts = ember_ds_partitions(ds);
    p->size = ember_ds_type(ds)->size;
    p->data = calloc(p->nparts + 1, sizeof *p->data);
    p->n = calloc(p->nparts + 1, sizeof *p->n);
    assert_non_null(p->data);
    assert_non_null(p->n);
    TU_OKM(ember_foreach(ds, tu_parts_fn, p, msg), msg);
}

static inline void tu_parts_free(tu_parts *p)
{
    for (size_t i = 0; i < p->nparts; i++)
        free(p->data[i]);
    free(p->data);
    free(p->n);
    memset(p, 0, sizeof *p);
}

/* The size of partition p of n records split in P, as ember documents it. */
static inline size_t tu_part_len(size_t n, size_t P, size_t p)
{
    return (size_t)(((unsigned __int128)n * (p + 1)) / P -
                    ((unsigned __int128)n * p) / P);
}

/* ---- files: reading, rewriting and damaging them --------------------------- */

/* Removes a file, or a directory and everything in it. */
static inline void tu_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        char p[1024];
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                strlen(path) + strlen(de->d_name) + 2 <= sizeof p) {
                memcpy(p, path, strlen(path));
                p[strlen(path)] = '/';
                memcpy(p + strlen(path) + 1, de->d_name, strlen(de->d_name) + 1);
                tu_rm_rf(p);
            }
        closedir(d);
    }
    remove(path);
}

static inline int tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline size_t tu_file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (size_t)st.st_size;
}

#if defined(__linux__) && !defined(F_SETLEASE)
#define F_SETLEASE 1024 /* fcntl.h names it under _GNU_SOURCE only */
#endif

/* Whether a write lease can be had on a new file in dir: a checkpoint's
 * spare is written over only when one can (ckptfile.c), else a new file
 * is written. */
static inline int tu_leases_work(const char *dir)
{
    int ok = 0;
#ifdef F_SETLEASE
    char p[512];
    snprintf(p, sizeof p, "%s/.tu-lease-probe", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ok = fcntl(fd, F_SETLEASE, F_WRLCK) == 0;
        if (ok)
            fcntl(fd, F_SETLEASE, F_UNLCK);
        close(fd);
    }
    unlink(p);
#else
    (void)dir;
#endif
    return ok;
}

/* The whole file in a malloc'd buffer. */
static inline unsigned char *tu_slurp(const char *path, size_t *size)
{
    *size = tu_file_size(path);
    unsigned char *d = malloc(*size ? *size : 1);
    assert_non_null(d);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(d, 1, *size, f), *size);
    fclose(f);
    return d;
}

/* Runs f with stderr going to a file; returns what was written there, as
 * a malloc'd string. */
static inline char *tu_stderr_of(void (*f)(void *), void *arg)
{
    char path[] = "/tmp/ember_stderr_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    f(arg);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    close(fd);
    size_t n;
    char *text = (char *)tu_slurp(path, &n);
    unlink(path);
    text = realloc(text, n + 1);
    assert_non_null(text);
    text[n] = '\0';
    return text;
}

static inline void tu_spit(const char *path, const void *d, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* Where needle sits in the file; it must occur exactly once. */
static inline size_t tu_find_once(const char *path, const void *needle, size_t len)
{
    size_t size, at = 0, hits = 0;
    unsigned char *d = tu_slurp(path, &size);
    for (size_t i = 0; i + len <= size; i++)
        if (memcmp(d + i, needle, len) == 0) {
            at = i;
            hits++;
        }
    free(d);
    if (hits != 1)
        fail_msg("%s: pattern found %zu times, expected once", path, hits);
    return at;
}

/* XORs one byte of the file with mask (one byte changes a Fletcher32 word
 * by a non-multiple of 65535, so the checksum always notices). */
static inline void tu_flip(const char *path, size_t off, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

#endif /* EMBER_TESTUTIL_H */
