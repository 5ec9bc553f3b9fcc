/* dirlock.c: the lock that gives one live process a directory (a loop's
 * checkpoint directory, a stream's checkpoint location), and the sweep of
 * stray .tmp files that only the lock's holder may do.
 *
 * An fcntl write lock on DIR/NAME, with our pid written into the file so a
 * refusal can name the holder. Where the system has open-file-description
 * locks (Linux: F_OFD_SETLK) they are used rather than classic POSIX record
 * locks, which belong to the process: with those, two loops in one process
 * would both get the directory, and closing any descriptor of the file
 * would drop the lock. Either kind vanishes with its holder, so a lock
 * left by a killed job never blocks the next one. Closing the descriptor
 * releases it; the file stays.
 */
#define _GNU_SOURCE /* F_OFD_SETLK; the build's POSIX level is unchanged */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef F_OFD_SETLK
#define DIRLOCK_SET F_OFD_SETLK
#define DIRLOCK_GET F_OFD_GETLK
#else
#define DIRLOCK_SET F_SETLK
#define DIRLOCK_GET F_GETLK
#endif

/* The pid of whoever holds fd's lock, or 0 if unknown. An OFD lock does not
 * report one: then it is the pid the holder wrote into the file. */
static long lock_holder(int fd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, DIRLOCK_GET, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
        return (long)fl.l_pid;
    char buf[32];
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    if (got <= 0)
        return 0;
    buf[got] = '\0';
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

static int refused(int fd, int e, const char *path, const char *what,
                   const char *dir, char *msg)
{
    long pid = (e == EACCES || e == EAGAIN) ? lock_holder(fd) : 0;
    close(fd);
    if (e != EACCES && e != EAGAIN)
        return ember__err(msg, EMBER_EIO, "cannot lock %s: %s", path, strerror(e));
    if (pid && pid == (long)getpid()) /* OFD locks: one per open file */
        return ember__err(msg, EMBER_EBUSY, "%s %s is in use by process %ld, this "
                          "one's pid: another loop or stream of this process holds "
                          "the directory until it is destroyed (or a process of that "
                          "pid in another PID namespace)", what, dir, pid);
    if (pid)
        return ember__err(msg, EMBER_EBUSY, "%s %s is in use by process %ld",
                          what, dir, pid);
    return ember__err(msg, EMBER_EBUSY, "%s %s is in use by another process",
                      what, dir);
}

int ember__dir_lock(const char *dir, const char *name, const char *what,
                    int *fd_out, char *msg)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return ember__err(msg, EMBER_EINVAL, "%s %s: path too long", what, dir);
    /* The lock file is written (our pid): never through a link to a file
     * elsewhere, nor into a file that has other names. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    const char *odd = fd < 0 && errno == EISDIR ? "a directory"
                      : fd < 0 && errno == ELOOP ? "a symbolic link" : NULL;
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
        odd = "not a regular file";
    else if (fd >= 0 && st.st_nlink > 1)
        odd = "a file with other names (hard links)";
    if (odd) { /* not writable would name the wrong cause */
        if (fd >= 0)
            close(fd);
        return ember__err(msg, EMBER_EINVAL, "%s %s: %s is %s, not the lock file "
                          "ember keeps there; remove it", what, dir, path, odd);
    }
    if (fd < 0) /* the caller's directory (exit 2), or the disk */
        return ember__err(msg, ember__denied(errno) ? EMBER_EINVAL : EMBER_EIO,
                          "%s %s is not writable: cannot open %s: %s", what, dir, path,
                          strerror(errno));
    struct flock fl;
    memset(&fl, 0, sizeof fl); /* l_pid must be 0 for an OFD lock */
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, DIRLOCK_SET, &fl) != 0)
        return refused(fd, errno, path, what, dir, msg);
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return ember__err(msg, EMBER_EIO, "cannot write %s: %s", path, strerror(e));
    }
    *fd_out = fd;
    return EMBER_OK;
}

int ember__dir_lock_check(const char *dir, const char *name, const char *what,
                          int *fd, int *remade, char *msg)
{
    char path[PATH_MAX];
    struct stat held, now;
    *remade = 0;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return ember__err(msg, EMBER_EINVAL, "%s %s: path too long", what, dir);
    if (fstat(*fd, &held) == 0 && lstat(path, &now) == 0 && held.st_dev == now.st_dev &&
        held.st_ino == now.st_ino)
        return EMBER_OK;
    int nfd = -1;
    int rc = ember__dir_lock(dir, name, what, &nfd, msg);
    if (rc) {
        char was[EMBER_MSG_SIZE];
        snprintf(was, sizeof was, "%s", msg ? msg : "");
        return ember__err(msg, rc, "%s was removed or replaced while this process "
                          "held it, and it cannot be locked again: %s", path, was);
    }
    close(*fd); /* the lock on the file no name leads to */
    *fd = nfd;
    *remade = 1;
    return EMBER_OK;
}

/* 1 when the temporary name in directory dfd is held by a live writer
 * (ember__tmp_hold), or cannot be told to be free. Free, it is left
 * read-locked on *fd, so that its writer (none, or one starting this
 * moment, which then makes a new file: ember__tmp_hold) cannot take it
 * before the caller has removed it. */
static int tmp_held(int dfd, const char *name, int *fd)
{
    *fd = -1;
#ifdef F_OFD_SETLK
    int f = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (f < 0)
        return 1;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    struct stat a, b;
    if (fcntl(f, F_OFD_SETLK, &fl) == 0 && fstat(f, &a) == 0 &&
        fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        *fd = f;
        return 0;
    }
    close(f);
#else
    (void)dfd;
    (void)name;
#endif
    return 1;
}

int ember__tmp_hold(const char *path)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            return -1;
#ifdef F_OFD_SETLK
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        struct stat a, b;
        int locked = fcntl(fd, F_OFD_SETLK, &fl) == 0;
        if (!locked && errno != EAGAIN && errno != EACCES)
            return fd; /* no such locks on this file system: held by nothing,
                          and its sweeps cannot lock it either */
        /* a sweep that found the file free a moment ago removes it: then
         * the name leads to another file, or none */
        if (!locked || fstat(fd, &a) != 0 || lstat(path, &b) != 0 ||
            a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
            close(fd);
            continue;
        }
#endif
        return fd;
    }
    errno = EBUSY;
    return -1;
}

static int sweep(const char *dir, const char *prefix, int unheld, char *msg)
{
    DIR *d = opendir(dir);
    if (!d)
        return EMBER_OK; /* nothing there, nothing left over */
    int rc = EMBER_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        /* Open MPI's I/O layer tests locking beside a file it opens with a
         * NAME.locktest.RANK of its own, left there when the job is killed. */
        int stray = (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) ||
                    strstr(de->d_name, ".tmp.locktest.") != NULL;
        struct stat st; /* a directory by such a name is not a leftover */
        if (!stray || (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            S_ISDIR(st.st_mode))
            continue;
        int locked = -1; /* a free temporary's, until it is removed */
        if (unheld && tmp_held(dirfd(d), de->d_name, &locked))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT && !rc)
            rc = ember__err(msg, EMBER_EIO, "cannot remove stray %s/%s: %s", dir,
                            de->d_name, strerror(errno));
        if (locked >= 0)
            close(locked);
    }
    closedir(d);
    return rc;
}

int ember__dir_sweep(const char *dir, const char *prefix, char *msg)
{
    return sweep(dir, prefix, 0, msg);
}

int ember__dir_sweep_unheld(const char *dir, const char *prefix, char *msg)
{
    return sweep(dir, prefix, 1, msg);
}

int ember__lock_orphan(const char *path)
{
#ifndef F_OFD_SETLK
    /* With classic POSIX locks, closing any descriptor of a file drops this
     * process's lock on it: opening another store's lock file here could
     * free it. No sweep there. */
    (void)path;
    return -1;
#endif
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    /* the holder's pid, written once it held the lock: ours (a classic
     * POSIX lock does not keep out the process that holds it) or a live
     * process's means it is not an orphan, whatever the lock said */
    long pid = fcntl(fd, DIRLOCK_SET, &fl) == 0 ? lock_holder(fd) : -1;
    if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0) {
        close(fd);
        return -1;
    }
    return fd;
}
