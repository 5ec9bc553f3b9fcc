/* mapfile.c: a read-only mapping of an input file that survives the file
 * shrinking under it.
 *
 * The text graph loader and ember_read_csv parse their files through a
 * mapping (no copy out of the page cache), which is one byte longer than
 * the file and reads 0 there, so a parser can stop at a NUL as in a
 * string. When another process truncates the file meanwhile,
 * touching a mapped page past the new end raises SIGBUS, and the load died
 * of a signal (exit 135) instead of saying what happened. So while a file
 * is mapped here its address range sits in a slot of `guards`, and a
 * SIGBUS handler maps a page of zeros over a faulting page inside such a
 * range (a fault of a nonexistent address, BUS_ADRERR), marks the slot and
 * returns: the faulting read is retried and reads zeros, the parse of
 * those lines goes wrong or not, and the loader, seeing the mark or the
 * file's size below the mapping's (ember__map_shrank: the rest of the last
 * page reads as zeros with no fault), fails the load with its own message.
 * Any other SIGBUS (another address, a memory error, one sent by kill)
 * goes to the handler that was there before, or gets its default action.
 * Whoever replaces the handler meanwhile (cmocka around each test, a host
 * program) is chained to: the next mapping puts it back in front.
 *
 * The handler and the slots are process-wide, the one thing outside a
 * context besides the HDF5 lock: a signal has no context. The handler uses
 * only lock-free atomics, mmap, sigaction and raise (mmap
 * is not on POSIX's list of async-signal-safe functions, but on Linux it
 * is the bare system call, with no lock in the C library).
 */
#define _GNU_SOURCE /* F_SETLEASE, F_GETLEASE; the build's POSIX level is unchanged */
#include "internal.h"

#include <errno.h>
#include <linux/magic.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define GUARD_SLOTS 16

typedef struct {
    atomic_int used;
    _Atomic uintptr_t lo, hi; /* lo 0: not yet (or no longer) a range */
    atomic_int shrank;
} guard;

static guard guards[GUARD_SLOTS];
static struct sigaction prior;
static uintptr_t page_size;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* Zeros over the page at `at` when it lies in a guarded mapping; 1 then. */
static int zero_page(uintptr_t at)
{
    for (int i = 0; i < GUARD_SLOTS; i++) {
        uintptr_t lo = atomic_load(&guards[i].lo);
        if (!lo)
            continue;
        uintptr_t hi = atomic_load(&guards[i].hi);
        if (atomic_load(&guards[i].lo) != lo || at < lo || at >= hi)
            continue; /* (a slot being taken or given back meanwhile) */
        void *page = (void *)(at & ~(page_size - 1));
        if (mmap(page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                 -1, 0) == MAP_FAILED)
            return 0;
        atomic_store(&guards[i].shrank, 1);
        return 1;
    }
    return 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    if (si->si_code == BUS_ADRERR && zero_page((uintptr_t)si->si_addr))
        return;
    if (prior.sa_flags & SA_SIGINFO) {
        prior.sa_sigaction(sig, si, uc);
    } else if (prior.sa_handler == SIG_IGN && si->si_code <= 0) {
        return; /* sent, and ignored as before; a fault cannot be */
    } else if (prior.sa_handler != SIG_DFL && prior.sa_handler != SIG_IGN) {
        prior.sa_handler(sig);
    } else {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGBUS, &dfl, NULL);
        raise(SIGBUS); /* delivered once the handler returns */
    }
}

/* Puts on_sigbus in front of whatever handles SIGBUS now (once, or again
 * after someone replaced it). 0 when it is there. */
static int install(void)
{
    pthread_mutex_lock(&install_lock);
    struct sigaction cur;
    int ok = sigaction(SIGBUS, NULL, &cur) == 0;
    if (ok && (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_sigbus)) {
        page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
        struct sigaction sa = {.sa_sigaction = on_sigbus,
                               .sa_flags = SA_SIGINFO | SA_RESTART};
        sigemptyset(&sa.sa_mask);
        prior = cur;
        ok = sigaction(SIGBUS, &sa, NULL) == 0;
    }
    pthread_mutex_unlock(&install_lock);
    return ok ? 0 : -1;
}

static int guard_add(const void *data, size_t size)
{
    if (install())
        return -1;
    for (int i = 0; i < GUARD_SLOTS; i++) {
        int free_slot = 0;
        if (!atomic_compare_exchange_strong(&guards[i].used, &free_slot, 1))
            continue;
        atomic_store(&guards[i].shrank, 0);
        atomic_store(&guards[i].hi, (uintptr_t)data + size);
        atomic_store(&guards[i].lo, (uintptr_t)data);
        return i;
    }
    return -1; /* mapped unguarded: a truncation kills the process, as before */
}

static int64_t stat_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Where a mapping of a file of 2 MiB or more starts: a multiple of a huge
 * page. GAPBS's scale-20 .el (436 MB, page cached) hashed from a mapping
 * 4 KiB past one: 0.042 s; from one at a multiple: 0.025-0.027 s. */
#define MAP_ALIGN ((size_t)2 << 20)

/* The bytes mapped for a file of `size`: whole pages, at least one byte
 * more, so that data[size] is 0 (the rest of the file's last page, or an
 * anonymous page after it) and text parsers may stop at a NUL as in a
 * string. */
static size_t map_span(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size / page + 1) * page;
}

int ember__map_file(ember__mapped *m, const char *path, char *msg)
{
    *m = (ember__mapped){.slot = -1, .fd = -1};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? ember__err(msg, EMBER_ENOTFOUND, "%s: no such file", path)
                   : ember__err(msg, EMBER_EIO, "%s: %s", path, strerror(errno));
    return ember__map_fd(m, fd, path, msg);
}

int ember__map_fd(ember__mapped *m, int fd, const char *path, char *msg)
{
    *m = (ember__mapped){.slot = -1, .fd = -1};
    struct stat st;
    int rc = EMBER_OK;
    if (fstat(fd, &st) != 0)
        rc = ember__err(msg, EMBER_EIO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = ember__err(msg, EMBER_EFORMAT, "%s: not a regular file", path);
    else if (st.st_size == 0)
        rc = ember__err(msg, EMBER_EEMPTY, "%s: empty file", path);
    if (!rc) {
        /* the file over the start of a zeroed span one byte longer, at a
         * multiple of 2 MiB: the kernel then maps whole 2 MiB folios of
         * the page cache with one entry each (the slack around it is
         * given back) */
        size_t size = (size_t)st.st_size, align = size >= MAP_ALIGN ? MAP_ALIGN : 0;
        char *room = mmap(NULL, map_span(size) + align, PROT_READ,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *span = room;
        if (room != MAP_FAILED && align) {
            span = (char *)(((uintptr_t)room + align - 1) & ~(uintptr_t)(align - 1));
            if (span > room)
                munmap(room, (size_t)(span - room));
            if (room + align > span)
                munmap(span + map_span(size), (size_t)(room + align - span));
        }
        void *p = room == MAP_FAILED
                      ? MAP_FAILED
                      : mmap(span, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
        if (p == MAP_FAILED) {
            rc = ember__err(msg, EMBER_EIO, "%s: cannot map: %s", path, strerror(errno));
            if (room != MAP_FAILED)
                munmap(span, map_span(size));
        } else {
            madvise(p, size, MADV_SEQUENTIAL);
            *m = (ember__mapped){.data = p, .size = size, .slot = guard_add(p, size),
                                 .fd = fd, .mtime_ns = stat_ns(&st.st_mtim),
                                 .ctime_ns = stat_ns(&st.st_ctim)};
            return EMBER_OK;
        }
    }
    close(fd);
    return rc;
}

int ember__map_shrank(const ember__mapped *m)
{
    struct stat st;
    return (m->slot >= 0 && atomic_load(&guards[m->slot].shrank)) ||
           (m->fd >= 0 && fstat(m->fd, &st) == 0 && (uint64_t)st.st_size < m->size);
}

int ember__map_changed(const ember__mapped *m)
{
    struct stat st;
    return ember__map_shrank(m) || m->fd < 0 || fstat(m->fd, &st) != 0 ||
           (uint64_t)st.st_size != m->size || stat_ns(&st.st_mtim) != m->mtime_ns ||
           stat_ns(&st.st_ctim) != m->ctime_ns;
}

static void guard_drop(int slot)
{
    if (slot < 0)
        return;
    guard *g = &guards[slot];
    atomic_store(&g->lo, 0);
    atomic_store(&g->hi, 0);
    atomic_store(&g->used, 0);
}

void ember__unmap_file(ember__mapped *m)
{
    guard_drop(m->slot);
    if (m->data)
        munmap((void *)m->data, map_span(m->size));
    if (m->fd >= 0)
        close(m->fd);
    *m = (ember__mapped){.slot = -1, .fd = -1};
}

/* ---- a range of a file read in place, under a read lease ------------------
 *
 * A copy of a file's bytes stays what was verified whatever happens to the
 * file; a mapping shows the page cache, so the file must not change while
 * it is mapped. A read lease (fcntl F_SETLEASE, F_RDLCK) keeps it so: the
 * kernel grants one only while no one has the file open for writing, and
 * holds off whoever then opens it for writing or truncates it (for up to
 * /proc/sys/fs/lease-break-time seconds) until the holder lets go. The
 * holder polls (ember__lease_poll, between passes over the bytes): while
 * the lease is whole the bytes are those mapped; once a break is pending
 * they still are until that break time has run from the last poll that
 * saw the lease whole, which leaves the holder the time to copy them out
 * and let go. Past it the lease may be gone and the file written. No
 * lease (the file open for writing somewhere, another user's file without
 * CAP_LEASE, a file system not on the list of lease_fs_local, leases
 * disabled, a break time under 3 s): no mapping, and the caller reads
 * instead. The mapping is guarded like ember__map_file's: a file truncated
 * once the lease is gone gives zeros, not SIGBUS, and the poll says it is
 * lost.
 *
 * The clock alone does not decide that the bytes are whole: the break time
 * is the sysctl's when a break begins, which may be lower than it was at
 * the map (a poll reads it again), and a stop of the process outlasts any.
 * So once a break has begun, a poll also compares the file's size,
 * modification and change times with those at the map. A write(2), a
 * truncation, a hole punched, and the first store through a new writable
 * mapping all move the change time before their bytes land, and the file
 * was last changed at least 2 s before the map (ember__fsum_vouched), so
 * a time that has not moved means no bytes have. (While the lease is
 * whole, nobody can have written: a time moved then is a rename, a link
 * or a touch, and changes nothing. During a break it counts as a write.) */

static double boot_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The lease break time in seconds, or 0 when unknown. */
static int lease_break_time(void)
{
    int fd = open("/proc/sys/fs/lease-break-time", O_RDONLY | O_CLOEXEC);
    char buf[32] = "";
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    int secs = n > 0 ? atoi(buf) : 0;
    return secs > 0 ? secs : 0;
}

/* Whether the file open as fd lies on a file system whose every write
 * passes through this kernel, so that a lease holds off every writer, and
 * whose times move at a writable mapping's first store (the fingerprint's
 * memo and the polls count on it): the local ones listed. Not FUSE, NFS,
 * SMB, Ceph, Lustre, GPFS, 9P...: their kernels grant a lease too, but a
 * write made behind the FUSE daemon or on another client breaks none, and
 * the page cache then shows it (on FUSE, once anyone opens the file
 * again). Not tmpfs: a store through a shared mapping there moves no time
 * stamp (review10 changed a leased file's bytes that way, unseen).
 * Unknown ones count as such. */
static int lease_fs_local(int fd)
{
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0)
        return 0;
    switch ((uint32_t)fs.f_type) {
    case EXT4_SUPER_MAGIC: /* ext2, ext3 and ext4 alike */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
        return 1;
    default:
        return 0;
    }
}

int ember__lease_take(int fd)
{
    if (!lease_fs_local(fd))
        return 0;
    /* Taking a lease makes this process the description's owner, whom a
     * break signals (SIGIO, which would end it): no owner once it is held,
     * so no signal, and the holder polls instead; until then the signal a
     * break sends is SIGURG, which is ignored unless handled. */
    if (fcntl(fd, F_SETSIG, SIGURG) != 0)
        return 0;
    if (fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
        return errno == EAGAIN ? -1 : 0;
    if (fcntl(fd, F_SETOWN, 0) == 0)
        return 1;
    (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    return 0;
}

int ember__lease_whole(int fd)
{
    return fcntl(fd, F_GETLEASE) == F_RDLCK;
}

/* The file's size, modification and change times (ns) into stamp. */
static int stamp_of(int fd, int64_t stamp[3])
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    stamp[0] = (int64_t)st.st_size;
    stamp[1] = stat_ns(&st.st_mtim);
    stamp[2] = stat_ns(&st.st_ctim);
    return 0;
}

/* A read lease on path, a regular file, opened read-only on a description
 * of its own (a lease needs one; a caller's may be closed first): 1 with
 * *l holding it (no mapping yet), -1 when the file is open for writing,
 * 0 when there is no lease (*l empty either way but for 1). */
static int lease_open(ember__leased *l, const char *path)
{
    *l = (ember__leased){.fd = -1, .slot = -1};
    int secs = lease_break_time();
    /* O_NONBLOCK: a FIFO named as a file does not wait for a writer */
    int fd = secs >= 3 ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
    struct stat st;
    int got = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ember__lease_take(fd) : 0;
    int64_t stamp[3];
    if (got == 1 && stamp_of(fd, stamp) == 0) {
        *l = (ember__leased){.fd = fd, .slot = -1, .held_at = boot_seconds(),
                             .break_s = secs - 1.0, .stamp = {stamp[0], stamp[1], stamp[2]}};
        return 1;
    }
    if (fd >= 0)
        close(fd); /* lets go of a lease taken */
    return got < 0 ? -1 : 0;
}

/* Lets go of the lease of *l and closes its description. */
static void lease_close(ember__leased *l)
{
    (void)fcntl(l->fd, F_SETLEASE, F_UNLCK);
    close(l->fd);
    *l = (ember__leased){.fd = -1, .slot = -1};
}

int ember__lease_map(ember__leased *l, int fd, uint64_t at, size_t len)
{
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (!len || lease_open(l, self) != 1)
        return 0;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), skip = (size_t)(at % page);
    void *base = mmap(NULL, len + skip, PROT_READ, MAP_SHARED, l->fd, (off_t)(at - skip));
    if (base == MAP_FAILED) {
        lease_close(l);
        return 0;
    }
    l->data = (const char *)base + skip;
    l->base = base;
    l->span = len + skip;
    l->slot = guard_add(base, len + skip);
    return 1;
}

int ember__lease_poll(ember__leased *l, double *left)
{
    double now = boot_seconds();
    int shrank = l->slot >= 0 && atomic_load(&guards[l->slot].shrank);
    if (!shrank && ember__lease_whole(l->fd)) {
        l->held_at = now;
        *left = l->break_s;
        return EMBER__LEASE_HELD;
    }
    int64_t stamp[3];
    int moved = stamp_of(l->fd, stamp) != 0 || memcmp(stamp, l->stamp, sizeof stamp) != 0;
    int secs = lease_break_time(); /* the break began under this, or the map's */
    if (secs - 1.0 < l->break_s)
        l->break_s = secs - 1.0;
    *left = l->held_at + l->break_s - now;
    return !shrank && !moved && *left > 0 ? EMBER__LEASE_BREAKING : EMBER__LEASE_LOST;
}

void ember__lease_unmap(ember__leased *l)
{
    if (!l->base)
        return;
    guard_drop(l->slot);
    munmap(l->base, l->span);
    lease_close(l);
}

/* ---- a whole file held from its fingerprint to its load ------------------ */

/* The caller's ember_file_lease: state[0] 1 while held, the lease after it. */
_Static_assert(sizeof(ember__leased) <= sizeof(((ember_file_lease *)0)->state) - 8,
               "ember_file_lease too small");

static ember__leased *held(ember_file_lease *lease)
{
    return (ember__leased *)(void *)&lease->state[1];
}

int ember_file_lease_begin(ember_file_lease *lease, const char *path, char *msg)
{
    ember__msg_clear(msg);
    memset(lease, 0, sizeof *lease);
    int got = lease_open(held(lease), path);
    lease->state[0] = got == 1;
    if (got < 0)
        return ember__err(msg, EMBER_EBUSY, "%s: open for writing elsewhere (by a writer, "
                          "or through a writable mapping, whose stores can change it "
                          "without a trace): which of its bytes a run would read cannot "
                          "be known; run again once it is closed", path);
    return EMBER_OK;
}

int ember_file_lease_end(ember_file_lease *lease, const char *name, char *msg)
{
    ember__msg_clear(msg);
    if (!lease || lease->state[0] != 1)
        return EMBER_OK;
    double left = 0;
    int state = ember__lease_poll(held(lease), &left);
    lease_close(held(lease));
    memset(lease, 0, sizeof *lease);
    if (state != EMBER__LEASE_LOST)
        return EMBER_OK;
    return ember__err(msg, EMBER_ECORRUPT, "%s: opened for writing or truncated since "
                      "its lease was taken, and not held off until now (longer than the "
                      "lease break time, or its size or times moved): it may have "
                      "changed", name ? name : "the file");
}
