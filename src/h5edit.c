/* h5edit.c: changes to an HDF5 file, made whole or not at all.
 *
 * HDF5 keeps no journal, and ember's checksum header (filesum.c) covers
 * the whole file. A save into an existing file that was killed halfway
 * left a file that failed its checksum, every dataset in it refused with
 * it, or one that HDF5 could not open at all. So the writers that change
 * a file they are given by name (ember_save_h5, ember_h5_write_array,
 * ember_h5_write_attrs, ember_graph_save_h5) never write into it. They
 * work on FILE.ember-edit-PID-N beside it: a copy of FILE, or a new file
 * when FILE is missing or is replaced whole. Once complete it gets FILE's
 * permission bits (and owner, where allowed), is fsynced when it replaces
 * a file, renamed over FILE, and the directory fsynced. Killed at any
 * moment, FILE is the old file or the changed one; the copy a kill leaves
 * is deleted by the next change of FILE.
 *
 * Changes of one file wait for each other: an open-file-description lock
 * on FILE (HDF5's own locks are flock()s, another kind), taken before the
 * copy and held until the rename (where the file system has no locks, a
 * change goes on without). A change that finds FILE renamed over
 * while it waited takes the new file. Readers never wait: one that opened
 * FILE before the rename goes on reading the old one. A missing FILE
 * cannot be locked: the new file is renamed into place only if FILE is
 * still missing (RENAME_NOREPLACE, or link(2)), so two processes creating
 * it at once fail one change instead of losing it silently.
 *
 * FILE must be writable by the caller (the lock opens it for writing), as
 * when it was changed in place. A symbolic link is followed: the file it
 * names is replaced, the link stays. Another hard link to FILE keeps the
 * old contents.
 *
 * Scratch files (ember_h5_scratch): a file the caller builds under a name
 * of its own and renames into place itself, as the programs do with their
 * outputs, is changed in place, with no copy, lock or fsync.
 */
#define _GNU_SOURCE /* F_OFD_SETLKW, copy_file_range, renameat2 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EDIT_TAG ".ember-edit-"

#ifdef F_OFD_SETLKW
#define EDIT_LOCK F_OFD_SETLKW
#else
#define EDIT_LOCK F_SETLKW
#endif

/* ---- scratch files ------------------------------------------------------ */

static pthread_mutex_t scratch_mutex = PTHREAD_MUTEX_INITIALIZER;
static char **scratch;
static size_t nscratch, scratch_cap;

static int find_scratch(const char *file)
{
    for (size_t i = 0; i < nscratch; i++)
        if (strcmp(scratch[i], file) == 0)
            return (int)i;
    return -1;
}

int ember_h5_scratch(const char *file, int on)
{
    if (!file || !file[0])
        return EMBER_EINVAL;
    int rc = EMBER_OK;
    pthread_mutex_lock(&scratch_mutex);
    int i = find_scratch(file);
    if (on && i < 0) {
        if (nscratch == scratch_cap) {
            size_t cap = scratch_cap ? 2 * scratch_cap : 4;
            char **more = realloc(scratch, cap * sizeof *more);
            if (more) {
                scratch = more;
                scratch_cap = cap;
            }
        }
        char *copy = nscratch < scratch_cap ? strdup(file) : NULL;
        if (copy)
            scratch[nscratch++] = copy;
        else
            rc = EMBER_ENOMEM;
    } else if (!on && i >= 0) {
        free(scratch[i]);
        scratch[i] = scratch[--nscratch];
    }
    pthread_mutex_unlock(&scratch_mutex);
    return rc;
}

static int is_scratch(const char *file)
{
    pthread_mutex_lock(&scratch_mutex);
    int yes = find_scratch(file) >= 0;
    pthread_mutex_unlock(&scratch_mutex);
    return yes;
}

/* ---- the steps -------------------------------------------------------------- */

/* Follows a symbolic link to the file it names (left as it is otherwise,
 * a missing file included). */
static int resolve(ember__h5_edit *e, const char *file, char *msg)
{
    struct stat st;
    char real[PATH_MAX];
    if (lstat(file, &st) == 0 && S_ISLNK(st.st_mode)) {
        if (!realpath(file, real))
            return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                              "%s: a symbolic link to %s: %s", file,
                              errno == ENOENT ? "a missing file" : "a path that fails",
                              strerror(errno));
        file = real;
    }
    if ((size_t)snprintf(e->file, sizeof e->file, "%s", file) >= sizeof e->file)
        return ember__err(msg, EMBER_EINVAL, "%s: name too long", file);
    return EMBER_OK;
}

/* Opens and locks the file, the one now at its name (another change may
 * have renamed a new one over it while this one waited). e->lock stays -1
 * when there is no file. */
static int lock_file(ember__h5_edit *e, char *msg)
{
    for (int tries = 0; tries < 1000; tries++) {
        int fd = open(e->file, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            if (errno == ENOENT)
                return EMBER_OK;
            if (errno == EISDIR)
                return ember__err(msg, EMBER_EFORMAT, "%s: not a regular file",
                                  e->file);
            return ember__err(msg, ember__denied(errno) ? EMBER_EINVAL : EMBER_EIO,
                              "%s: cannot open for writing: %s", e->file,
                              strerror(errno));
        }
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int r;
        do
            r = fcntl(fd, EDIT_LOCK, &fl);
        while (r < 0 && errno == EINTR);
        /* a file system without locks (Lustre mounted without flock, say):
         * the change goes on, not serialized with others, and sweeps no
         * leftovers (one might be another change's copy) */
        e->unlocked = r < 0 && (errno == ENOLCK || errno == ENOSYS ||
                                errno == EOPNOTSUPP || errno == EINVAL);
        if (e->unlocked)
            r = 0;
        struct stat now;
        if (r < 0 || fstat(fd, &e->st) < 0) {
            int err = errno;
            close(fd);
            return ember__err(msg, EMBER_EIO, "%s: cannot lock for a change: %s",
                              e->file, strerror(err));
        }
        if (!S_ISREG(e->st.st_mode)) {
            close(fd);
            return ember__err(msg, EMBER_EFORMAT, "%s: not a regular file", e->file);
        }
        if (stat(e->file, &now) == 0 && now.st_dev == e->st.st_dev &&
            now.st_ino == e->st.st_ino) {
            e->lock = fd;
            return EMBER_OK;
        }
        close(fd); /* replaced while waiting: lock the new one */
    }
    return ember__err(msg, EMBER_EIO, "%s: replaced again and again while "
                      "waiting to change it", e->file);
}

/* Deletes the copies that killed changes left (under the lock, no change
 * of this file is running). */
static void sweep(const ember__h5_edit *e)
{
    const char *slash = strrchr(e->file, '/');
    const char *base = slash ? slash + 1 : e->file;
    char dir[PATH_MAX], prefix[sizeof e->file + sizeof EDIT_TAG];
    ember__parent_dir(e->file, dir, sizeof dir);
    snprintf(prefix, sizeof prefix, "%s" EDIT_TAG, base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t len = strlen(prefix);
    for (struct dirent *de; (de = readdir(d));)
        if (strncmp(de->d_name, prefix, len) == 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

/* Copies from into to, both at offset 0: in the kernel where it can. */
static int copy_all(int from, int to, uint64_t size)
{
    char buf[1 << 16];
    uint64_t done = 0;
    int plain = 0;
    while (done < size) {
        ssize_t k;
        if (!plain) {
            k = copy_file_range(from, NULL, to, NULL, size - done, 0);
            plain = k < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                              errno == EOPNOTSUPP || errno == EBADF);
            if (plain)
                continue;
        } else {
            long long got = ember__pread_full(from, buf, sizeof buf, done);
            k = got > 0 ? pwrite(to, buf, (size_t)got, (off_t)done) : (ssize_t)got;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1; /* 0: shorter than it was (errno 0) */
        done += (uint64_t)k;
    }
    return 0;
}

/* The new file beside e->file, FILE.ember-edit-PID-N, and FILE's bytes in
 * it when keep. */
static int make_work(ember__h5_edit *e, int keep, char *msg)
{
    static unsigned long count;
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        unsigned long n = __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
        if ((size_t)snprintf(e->work, sizeof e->work, "%s" EDIT_TAG "%ld-%lu",
                             e->file, (long)getpid(), n) >= sizeof e->work)
            return ember__err(msg, EMBER_EINVAL, "%s: name too long for the copy "
                              "a change is made in", e->file);
        /* a copy is the caller's alone until it gets the file's mode */
        fd = open(e->work, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, keep ? 0600 : 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return ember__err(msg, ember__denied(errno) ? EMBER_EINVAL : EMBER_EIO,
                          "%s: cannot create %s to make the change in: %s",
                          e->file, e->work, strerror(errno));
    errno = 0;
    if (keep && copy_all(e->lock, fd, (uint64_t)e->st.st_size) != 0) {
        int err = errno;
        close(fd);
        unlink(e->work);
        return ember__err(msg, EMBER_EIO, "%s: cannot copy it (%lld bytes) to "
                          "make the change in: %s", e->file,
                          (long long)e->st.st_size,
                          err ? strerror(err) : "it got shorter");
    }
    /* the disk starts on the copy while HDF5 changes it; publish's
     * fsync waits for the rest */
    if (keep)
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    e->existing = keep;
    close(fd);
    return EMBER_OK;
}

/* A scratch file, changed in place: this process's own, so never one
 * reached through a symbolic link (another user's, put at a name that was
 * to be this process's), and made here, exclusively, when it is not
 * there. */
static int scratch_begin(ember__h5_edit *e, const char *file, int fresh, char *msg)
{
    if (file != e->file &&
        (size_t)snprintf(e->file, sizeof e->file, "%s", file) >= sizeof e->file)
        return ember__err(msg, EMBER_EINVAL, "%s: name too long", file);
    memcpy(e->work, e->file, sizeof e->file);
    struct stat st;
    if (lstat(file, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return ember__err(msg, EMBER_EINVAL, "%s: a symbolic link where this "
                              "process's own file was to be (put there by another "
                              "process?); nothing written", file);
        e->existing = !fresh && stat(file, &e->st) == 0;
        return EMBER_OK;
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0)
        return ember__err(msg, ember__denied(errno) ? EMBER_EINVAL : EMBER_EIO,
                          "%s: cannot create: %s", file, strerror(errno));
    close(fd);
    e->made = 1;
    return EMBER_OK;
}

int ember__h5_edit_begin(ember__h5_edit *e, const char *file, int fresh,
                         char *msg)
{
    memset(e, 0, sizeof *e);
    e->lock = -1;
    if (is_scratch(file))
        return scratch_begin(e, file, fresh, msg);
    int rc = resolve(e, file, msg);
    if (rc)
        return rc;
    if (is_scratch(e->file))
        return scratch_begin(e, e->file, fresh, msg);
    rc = lock_file(e, msg);
    if (rc)
        return rc;
    if (e->lock >= 0 && !e->unlocked)
        sweep(e);
    rc = make_work(e, !fresh && e->lock >= 0, msg);
    if (rc) {
        if (e->lock >= 0)
            close(e->lock);
        e->lock = -1;
        e->work[0] = '\0';
    }
    return rc;
}

/* Puts e->work at e->file: over the locked file, or where none is. */
static int publish(ember__h5_edit *e, char *msg)
{
    int fd = open(e->work, O_RDWR | O_CLOEXEC);
    int bad = fd < 0;
    if (!bad && e->lock >= 0) {
        /* the file's mode and owner (an owner only root may give fails
         * quietly, as cp -p's does for a user; then the group alone) */
        (void)(fchown(fd, e->st.st_uid, e->st.st_gid) == 0 ||
               fchown(fd, (uid_t)-1, e->st.st_gid) == 0);
        bad = fchmod(fd, e->st.st_mode & 07777) != 0 || fsync(fd) != 0;
    }
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (bad)
        return ember__err(msg, EMBER_EIO, "%s: cannot finish the changed copy: %s",
                          e->file, strerror(err));
    if (e->lock >= 0) {
        if (rename(e->work, e->file) != 0)
            return ember__err(msg, EMBER_EIO, "%s: cannot rename the changed "
                              "copy over it: %s", e->file, strerror(errno));
    } else if (renameat2(AT_FDCWD, e->work, AT_FDCWD, e->file, RENAME_NOREPLACE) != 0) {
        int e2 = errno;
        if (e2 == EINVAL || e2 == ENOSYS || e2 == ENOTSUP) { /* no such flag here */
            if (link(e->work, e->file) == 0) {
                unlink(e->work);
                e2 = 0;
            } else {
                e2 = errno;
            }
        }
        if (e2)
            return ember__err(msg, EMBER_EIO, "%s: %s", e->file,
                              e2 == EEXIST ? "created by another process while "
                              "this change wrote it as a new file; nothing written"
                              : strerror(e2));
    }
    char dir[PATH_MAX];
    ember__parent_dir(e->file, dir, sizeof dir);
    if (e->lock >= 0 && ember__fsync_dir(dir) != 0)
        return ember__err(msg, EMBER_EIO, "%s: changed, but its directory "
                          "cannot be synced: %s", e->file, strerror(errno));
    return EMBER_OK;
}

/* Replaces each mention of from in msg by to (the copy's name by the
 * file's, in what libhdf5 or the checks said of the copy), both as a
 * message shows them (ember__one_line). */
static void rename_in(char *msg, const char *work, const char *file)
{
    char from[sizeof ((ember__h5_edit *)0)->work], to[sizeof from];
    snprintf(from, sizeof from, "%s", work);
    snprintf(to, sizeof to, "%s", file);
    ember__one_line(from);
    ember__one_line(to);
    size_t nf = strlen(from), nt = strlen(to);
    char out[EMBER_MSG_SIZE], *at;
    size_t o = 0;
    const char *p = msg;
    while ((at = strstr(p, from)) && o + (size_t)(at - p) + nt < sizeof out) {
        memcpy(out + o, p, (size_t)(at - p));
        o += (size_t)(at - p);
        memcpy(out + o, to, nt);
        o += nt;
        p = at + nf;
    }
    snprintf(out + o, sizeof out - o, "%s", p);
    memcpy(msg, out, sizeof out);
}

int ember__h5_edit_in_place(const ember__h5_edit *e)
{
    return e->work[0] && strcmp(e->work, e->file) == 0;
}

int ember__h5_edit_end(ember__h5_edit *e, int rc, char *msg)
{
    if (rc && e->made) /* a scratch file this change made: as it was, none */
        unlink(e->work);
    if (!e->work[0] || ember__h5_edit_in_place(e)) /* none, or scratch */
        return rc;
    if (rc == EMBER_OK)
        rc = publish(e, msg);
    if (rc) {
        unlink(e->work);
        if (msg)
            rename_in(msg, e->work, e->file);
    }
    if (e->lock >= 0)
        close(e->lock); /* the lock goes with it */
    e->lock = -1;
    e->work[0] = '\0';
    return rc;
}
