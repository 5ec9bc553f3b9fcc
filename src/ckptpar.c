/* ckptpar.c: a checkpoint file written by every rank together.
 *
 * The file is the one ckptfile.c writes (docs/checkpoint-format.md: the
 * same groups, datasets, chunking, filters and partition offsets), but
 * with several ranks each rank writes the records of the partitions it
 * owns as one hyperslab (a union of hyperslabs under an owner map that is
 * not the block map) of each dataset, through parallel HDF5's MPI-IO
 * driver and collective transfers. Only the per-partition record counts
 * move between ranks, never the records.
 *
 * HDF5 1.10's parallel filtered writes (Fletcher32, and shuffle + deflate)
 * must be collective: every rank calls every H5Dcreate and H5Dwrite, a
 * rank with nothing to write with an empty selection. So the Fletcher32
 * here is HDF5's filter, not ember's own H5Dwrite_chunk of the serial
 * writer; both give the same chunk bytes and checksum. Metadata
 * (attributes, groups, datasets) is created by every rank with identical
 * values: the root attributes that differ between processes (time, team
 * size) and the meta strings are rank 0's, broadcast.
 *
 * Replicated items (scalars, arrays, matrices, blobs: every rank holds the
 * same values) are not written collectively: each collective step is a
 * synchronisation of every rank, which costs a scheduling round on a
 * loaded or oversubscribed node (0.1-0.2 s each at a load of 14 on 2
 * cores). They are recorded, and after the collective close rank 0 reopens
 * the file with the serial driver, adds them with the serial writer
 * (ckptfile.c, the same layout) and commits it.
 *
 * Before the file exists, rank 0 creates NAME.tmp holding a random token
 * and every other rank opens it by name and compares the token: a rank
 * that does not see it (a checkpoint directory that is not shared) is
 * refused with EMBER_EINVAL naming the directory, on every rank, before
 * anything is written. After the collective close rank 0 alone adds the
 * replicated items, seals the file (the whole-file checksum, filesum.c),
 * fsyncs it, renames it and fsyncs the directory, and broadcasts the
 * outcome.
 *
 * Status: every call ends in an agreement (ember__comm_agree_status), so
 * every rank returns the status of the lowest failing rank with its
 * message. An HDF5 call that fails on one rank only, inside a collective
 * operation, cannot be agreed on by HDF5 itself; failures that matter here
 * (a full disk, a quota, a file system error) are seen by every rank.
 *
 * Floor 1, the file layer: calls comm.c, h5io.c ids, filesum.c and the
 * allocator, never a dataset.
 */
#include "internal.h"
#include "comm.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_BYTES 32

/* A replicated item, written by rank 0 at the commit. */
typedef struct {
    int what;                   /* 0 scalars, 1 matrix, 2 blob */
    char name[EMBER_NAME_SIZE];
    ember_scalar kind;
    const void *data;           /* the caller's, valid until the commit */
    size_t n, cols;             /* numbers (matrix: rows), cols; blob: bytes */
} rep_item;

struct ember__ckp {
    ember_ctx *ctx;
    hid_t fid;
    hid_t dxpl;      /* collective transfers */
    int deflate;
    int root;        /* rank 0 */
    rep_item *items;
    size_t nitems, capitems;
    int failed;      /* a failure of this rank alone, agreed at the commit */
    char why[EMBER_MSG_SIZE];
    char dir[PATH_MAX];
    char name[PATH_MAX];
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    int hold;        /* rank 0: tmp held against sweeps (ember__tmp_hold), or -1 */
};

/* After its file is renamed or removed. */
static void ckp_free(ember__ckp *w)
{
    if (w->hold >= 0)
        close(w->hold);
    ember__free(w->ctx, w->items);
    ember__free(w->ctx, w);
}

/* What rank 0 tells every rank before the file is created. */
typedef struct {
    int64_t rc;
    unsigned char token[TOKEN_BYTES];
    ember__ck_stamp stamp;
    int64_t deflate;
    uint64_t iteration, fingerprint;
    uint64_t len[5]; /* bytes (with the NUL) of kind, program, parameters,
                        signature, lineage */
    char msg[EMBER_MSG_SIZE];
} root_start;

/* Rank 0's outcome of the commit. */
typedef struct {
    int64_t rc;
    uint64_t bytes;
    char msg[EMBER_MSG_SIZE];
} root_done;

static int is_root(const ember_ctx *ctx)
{
    return ember__comm_rank(ctx) == 0;
}

/* A token no other write has: pid, two clocks and a stack address. */
static void make_token(unsigned char *t)
{
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t v[4] = {(uint64_t)getpid(),
                     (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec,
                     (uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec,
                     (uint64_t)(uintptr_t)&a};
    memcpy(t, v, TOKEN_BYTES);
}

/* Rank 0: the probe file at path, a stale one removed first, holding the
 * token. With hold, the file is held (ember__tmp_hold) on *hold, which
 * the caller closes once it is renamed or removed; the token goes through
 * a descriptor of its own, whose close makes it visible to the other
 * ranks on a network file system. */
static int create_probe(const char *path, const unsigned char *token, int *hold,
                        char *msg)
{
    unlink(path);
    int held = hold ? ember__tmp_hold(path) : -1;
    int fd = hold && held < 0 ? -1
             : open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | (hold ? 0 : O_CREAT | O_EXCL),
                    0644);
    if (fd < 0) {
        int err = errno;
        if (held >= 0) {
            unlink(path);
            close(held);
        }
        return ember__err(msg, EMBER_EIO, "cannot create checkpoint %s: %s",
                          path, strerror(err));
    }
    ssize_t k = write(fd, token, TOKEN_BYTES);
    int err = errno;
    if (close(fd) != 0 && k == TOKEN_BYTES) {
        err = errno;
        k = -1;
    }
    if (k != TOKEN_BYTES) {
        unlink(path);
        if (held >= 0)
            close(held);
        return ember__err(msg, EMBER_EIO, "cannot write checkpoint %s: %s",
                          path, strerror(k < 0 ? err : EIO));
    }
    if (hold)
        *hold = held;
    return EMBER_OK;
}

/* Every other rank: the file under that name must hold rank 0's token,
 * and open for writing, as MPI-IO will open the checkpoint: a rank that
 * could only read it (a read-only mount, other permissions) passed, and
 * the first checkpoint hung in every rank's MPI_File_open. root_dir: the
 * directory as rank 0 named it. */
static int check_probe(ember_ctx *ctx, const char *dir, const char *root_dir,
                       const char *path, const unsigned char *token, char *msg)
{
    unsigned char got[TOKEN_BYTES];
    int fd = open(path, O_RDONLY);
    int err = errno;
    ssize_t k = fd < 0 ? -1 : read(fd, got, TOKEN_BYTES);
    if (fd >= 0)
        close(fd);
    int same = k == TOKEN_BYTES && memcmp(got, token, TOKEN_BYTES) == 0;
    int wfd = same ? open(path, O_WRONLY) : -1;
    if (same && wfd < 0)
        return ember__err(msg, EMBER_EINVAL, "checkpoint dir %s: rank %d cannot write "
                          "in it (%s: %s); every rank writes the checkpoint", dir,
                          ember__comm_rank(ctx), path, strerror(errno));
    if (wfd >= 0)
        close(wfd);
    if (same)
        return EMBER_OK;
    const char *what = fd < 0 ? "cannot open" : "sees another file than";
    if (strcmp(dir, root_dir) != 0)
        return ember__err(msg, EMBER_EINVAL,
                          "checkpoint dir %s of rank %d is not rank 0's, %s: rank "
                          "%d %s %s, which rank 0 created as %s/ember-shared.tmp%s%s; "
                          "every rank needs the same directory, one that every rank "
                          "sees", dir, ember__comm_rank(ctx), root_dir,
                          ember__comm_rank(ctx), what, path, root_dir,
                          fd < 0 ? ": " : "", fd < 0 ? strerror(err) : "");
    return ember__err(msg, EMBER_EINVAL,
                      "checkpoint dir %s is not shared by the ranks: rank %d "
                      "%s %s that rank 0 created%s%s; a checkpoint written by "
                      "several ranks needs a directory every rank sees",
                      dir, ember__comm_rank(ctx), what, path, fd < 0 ? ": " : "",
                      fd < 0 ? strerror(err) : "");
}

int ember__ckp_check_shared(ember_ctx *ctx, const char *dir, char *msg)
{
    if (ember__comm_size(ctx) < 2)
        return EMBER_OK;
    char path[PATH_MAX];
    struct {
        int64_t rc;
        unsigned char token[TOKEN_BYTES];
        char msg[EMBER_MSG_SIZE];
        char dir[PATH_MAX]; /* as rank 0 names it */
    } s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", dir);
    if ((size_t)snprintf(path, sizeof path, "%s/ember-shared.tmp", dir) >= sizeof path)
        return ember__err(msg, EMBER_ERANGE, "checkpoint dir %s: path too long", dir);
    if (is_root(ctx)) {
        make_token(s.token);
        s.rc = create_probe(path, s.token, NULL, s.msg); /* under the loop's lock */
    }
    int rc = ember__comm_bcast(ctx, &s, sizeof s, msg);
    if (!rc && s.rc)
        rc = ember__err(msg, (int)s.rc, "%s", s.msg);
    if (!rc)
        rc = ember__comm_agree_status(ctx, is_root(ctx) ? EMBER_OK
                                           : check_probe(ctx, dir, s.dir, path,
                                                         s.token, msg),
                                      0, msg);
    if (is_root(ctx) && !s.rc)
        unlink(path);
    return rc;
}

/* Rank 0's strings, on every rank, in one broadcast: out[i] point into
 * *buf (a ctx allocation). */
static int share_strings(ember_ctx *ctx, const char *const *in,
                         const uint64_t *len, char **buf, char **out, char *msg)
{
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += (size_t)len[i];
    *buf = ember__malloc(ctx, total);
    int rc = ember__comm_agree_status(
        ctx, *buf ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory"), 0,
        msg);
    if (rc)
        return rc;
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        out[i] = *buf + at;
        if (is_root(ctx))
            memcpy(out[i], in[i], (size_t)len[i]);
        at += (size_t)len[i];
    }
    return ember__comm_bcast(ctx, *buf, total, msg);
}

/* Collective create of the file and its root attributes. */
static int create_file(ember__ckp *w, const ember__ck_meta *m,
                       const ember__ck_stamp *st, char *msg)
{
    ember__h5_lock();
    hid_t fapl = (hid_t)ember__comm_h5_fapl(w->ctx);
    hid_t fcpl = (hid_t)ember__h5_fcpl();
    w->fid = fapl >= 0 && fcpl >= 0 ? H5Fcreate(w->tmp, H5F_ACC_TRUNC, fcpl, fapl)
                                    : H5I_INVALID_HID;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    w->dxpl = w->fid >= 0 ? (hid_t)ember__comm_h5_dxpl(w->ctx) : H5I_INVALID_HID;
    int bad = w->fid < 0 || w->dxpl < 0 ||
              ember__ck_write_root((int64_t)w->fid, m, st) != 0;
    ember__h5_unlock();
    int rc = bad ? ember__err(msg, EMBER_EIO,
                              "cannot create checkpoint %s (parallel HDF5)", w->tmp)
                 : EMBER_OK;
    return ember__comm_agree_status(w->ctx, rc, 0, msg);
}

int ember__ckp_begin(ember_ctx *ctx, ember__ckp **out, const char *dir,
                     const char *name, const ember__ck_meta *meta, char *msg)
{
    *out = NULL;
    ember__ckp *w = ember__calloc(ctx, 1, sizeof *w);
    int rc = w ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (w) {
        w->ctx = ctx;
        w->fid = w->dxpl = H5I_INVALID_HID;
        w->hold = -1;
        w->root = is_root(ctx);
        if ((size_t)snprintf(w->dir, sizeof w->dir, "%s", dir) >= sizeof w->dir ||
            (size_t)snprintf(w->name, sizeof w->name, "%s", name) >= sizeof w->name ||
            (size_t)snprintf(w->path, sizeof w->path, "%s/%s", dir, name) >= sizeof w->path ||
            (size_t)snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->path) >= sizeof w->tmp)
            rc = ember__err(msg, EMBER_EINVAL, "checkpoint path too long: %s/%s",
                            dir, name);
    }
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (rc) {
        ember__free(ctx, w);
        return rc;
    }
    const char *in[5] = {meta->kind ? meta->kind : "dataset",
                         meta->program ? meta->program : "",
                         meta->parameters ? meta->parameters : "",
                         meta->signature ? meta->signature : "",
                         meta->lineage ? meta->lineage : ""};
    root_start s;
    memset(&s, 0, sizeof s);
    if (w->root) {
        make_token(s.token);
        ember__ck_stamp_now(ctx, &s.stamp);
        s.deflate = meta->deflate;
        s.iteration = meta->iteration;
        s.fingerprint = meta->fingerprint;
        for (int i = 0; i < 5; i++)
            s.len[i] = strlen(in[i]) + 1;
        s.rc = create_probe(w->tmp, s.token, &w->hold, s.msg);
    }
    rc = ember__comm_bcast(ctx, &s, sizeof s, msg);
    if (!rc && s.rc)
        rc = ember__err(msg, (int)s.rc, "%s", s.msg);
    if (!rc)
        rc = ember__comm_agree_status(ctx, w->root ? EMBER_OK
                                                   : check_probe(ctx, w->dir, w->dir, w->tmp, s.token,
                                                                 msg),
                                      0, msg);
    char *str[5] = {NULL, NULL, NULL, NULL, NULL}, *strbuf = NULL;
    if (!rc)
        rc = share_strings(ctx, in, s.len, &strbuf, str, msg);
    if (!rc) {
        ember__ck_meta m = {str[0], str[1], str[2], str[3], str[4], s.iteration,
                            s.fingerprint, (int)s.deflate};
        w->deflate = (int)s.deflate;
        rc = create_file(w, &m, &s.stamp, msg);
    }
    ember__free(ctx, strbuf);
    if (rc) {
        if (w->fid >= 0 || w->dxpl >= 0) {
            ember__ckp_abort(&w);
        } else {
            if (w->root && !s.rc)
                unlink(w->tmp);
            ckp_free(w);
        }
        return rc;
    }
    *out = w;
    return EMBER_OK;
}

static int check_name(const char *name, char *msg)
{
    if (!name[0] || strchr(name, '/') || strlen(name) >= EMBER_NAME_SIZE)
        return ember__err(msg, EMBER_EINVAL, "bad checkpoint entry name '%s'", name);
    return EMBER_OK;
}

static int owns(const ember__ckp *w, size_t nparts, size_t p, const int *owner)
{
    return owner ? owner[p] == ember__comm_rank(w->ctx)
                 : ember__comm_owns(w->ctx, nparts, p);
}

/* This rank's records in partition order, one buffer (NULL when none). */
static int concat_owned(ember__ckp *w, const ember__buf *parts, size_t nparts,
                        const int *owner, size_t recsize, unsigned char **out,
                        uint64_t *own)
{
    *out = NULL;
    *own = 0;
    for (size_t p = 0; p < nparts; p++)
        if (owns(w, nparts, p, owner))
            *own += parts[p].n;
    if (!*own)
        return EMBER_OK;
    unsigned char *b = ember__malloc(w->ctx, ember__mul((size_t)*own, recsize));
    if (!b)
        return EMBER_ENOMEM;
    size_t at = 0;
    for (size_t p = 0; p < nparts; p++)
        if (owns(w, nparts, p, owner) && parts[p].n) {
            ember__copy(b + at, parts[p].data, parts[p].n * recsize);
            at += parts[p].n * recsize;
        }
    *out = b;
    return EMBER_OK;
}

/* This rank's ranges of the file: its owned partitions, adjacent ones
 * merged; none selected when it owns no record. */
static int select_owned(const ember__ckp *w, hid_t fs, const uint64_t *off,
                        size_t nparts, const int *owner)
{
    int any = 0;
    for (size_t p = 0; p < nparts;) {
        if (!owns(w, nparts, p, owner) || off[p] == off[p + 1]) {
            p++;
            continue;
        }
        size_t q = p + 1;
        while (q < nparts && (owns(w, nparts, q, owner) || off[q] == off[q + 1]))
            q++;
        hsize_t start = off[p], count = off[q] - off[p];
        if (H5Sselect_hyperslab(fs, any ? H5S_SELECT_OR : H5S_SELECT_SET, &start,
                                NULL, &count, NULL) < 0)
            return -1;
        any = 1;
        p = q;
    }
    return any ? 0 : H5Sselect_none(fs) < 0 ? -1 : 0;
}

/* One collective H5Dwrite: this rank's n elements (buf) into the selection
 * of fs (n == 0: an empty selection, as every rank must call). */
static int write_selected(ember__ckp *w, hid_t d, hid_t mt, hid_t fs,
                          const void *buf, hsize_t n)
{
    static const unsigned char none[16];
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, n ? &n : &one, NULL);
    int ok = ms >= 0 && (n || H5Sselect_none(ms) >= 0) &&
             H5Dwrite(d, mt, ms, fs, w->dxpl, n ? buf : none) >= 0;
    if (ms >= 0)
        H5Sclose(ms);
    return ok ? 0 : -1;
}

static int write_offsets(hid_t d, const uint64_t *off, size_t nparts)
{
    hsize_t len = (hsize_t)nparts + 1;
    hid_t s = H5Screate_simple(1, &len, NULL);
    hid_t a = s < 0 ? H5I_INVALID_HID
                    : H5Acreate2(d, "partition_offsets", H5T_STD_U64LE, s,
                                 H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, off) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (s >= 0)
        H5Sclose(s);
    return ok ? 0 : -1;
}

/* Rank 0: whether the checkpoint's file system has room for a dataset of
 * `bytes` (its chunks, allocated whole when HDF5 creates it on several
 * ranks). HDF5 cannot agree on a failure inside its own collective calls:
 * a rank whose share of the allocation found the disk full returned while
 * the others waited in the allocation's barrier, for good. So a full disk
 * is found here, before the creation, and refused on every rank; a file
 * system that reports no sizes is left to HDF5. */
static int room_for(const ember__ckp *w, uint64_t bytes, const char *path, char *msg)
{
    struct statvfs sv;
    if (statvfs(w->dir, &sv) != 0 || sv.f_blocks == 0)
        return EMBER_OK;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t need = bytes + bytes / 64 + ((uint64_t)64 << 10); /* checksums, metadata */
    if (avail >= need)
        return EMBER_OK;
    return ember__err(msg, EMBER_EIO, "%s:%s: no room: about %llu bytes needed, %llu free "
                      "in %s (No space left on device)", w->tmp, path,
                      (unsigned long long)need, (unsigned long long)avail, w->dir);
}

/* Creates /datasets/<name> (N records, the serial writer's chunking and
 * filters) and writes this rank's records into its ranges. Every rank
 * makes the same collective calls whatever failed on it alone: a write
 * that a full disk refused one rank (its own hyperslab), then that rank
 * skipping the attribute and the close the others made, left the ranks
 * in different collectives, hung for good (2 ranks) or crashed in
 * MPI_Finalize (3). A creation that fails fails on every rank (one that
 * failed on one rank alone would leave the others inside HDF5's own
 * collective, which no agreement here reaches: the caller's room check
 * keeps the full disk out of it); the outcome is agreed by the caller. */
static int write_records(ember__ckp *w, const char *path, const ember_type *t,
                         const uint64_t *off, size_t nparts, const int *owner,
                         int none, const unsigned char *buf, uint64_t own)
{
    hsize_t N = off[nparts], unlimited = H5S_UNLIMITED;
    ember__h5_lock();
    hid_t mt = (hid_t)ember__h5_mem_type(t);
    hid_t dcpl = (hid_t)ember__h5_dcpl(t->size, N, w->deflate, 1);
    hid_t space = H5Screate_simple(1, &N, &unlimited), d = -1, fs = -1;
    int ok = mt >= 0 && dcpl >= 0 && space >= 0 &&
             (d = H5Dcreate2(w->fid, path, mt, space, H5P_DEFAULT, dcpl,
                             H5P_DEFAULT)) >= 0;
    if (d >= 0 && N > 0) {
        fs = H5Dget_space(d);
        int chosen = fs >= 0 && (none ? H5Sselect_none(fs) >= 0
                                      : select_owned(w, fs, off, nparts, owner) == 0);
        if (fs >= 0 && !chosen) /* still a part of the collective write */
            H5Sselect_none(fs);
        int wrote = fs >= 0 && write_selected(w, d, mt, fs, buf, chosen ? own : 0) == 0;
        ok = ok && chosen && wrote;
    }
    if (d >= 0) /* collective metadata, as on every rank */
        ok = write_offsets(d, off, nparts) == 0 && ok;
    if (fs >= 0)
        H5Sclose(fs);
    if (d >= 0 && H5Dclose(d) < 0)
        ok = 0;
    if (space >= 0)
        H5Sclose(space);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (mt >= 0)
        H5Tclose(mt);
    ember__h5_unlock();
    return ok ? EMBER_OK : EMBER_EIO;
}

int ember__ckp_parts(ember__ckp *w, const char *name, const ember_type *t,
                     const ember__buf *parts, size_t nparts, const int *owner,
                     uint64_t *offsets, char *msg)
{
    ember_ctx *ctx = w->ctx;
    char path[EMBER_NAME_SIZE + 32];
    int rc = check_name(name, msg);
    snprintf(path, sizeof path, "/datasets/%s", name);
    uint64_t *cnt = ember__calloc(ctx, nparts ? nparts : 1, sizeof *cnt);
    uint64_t *off = ember__calloc(ctx, nparts + 1, sizeof *off);
    if (!rc && (!cnt || !off))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    /* Every step below is collective, so a rank that failed on its own
     * (no memory, a bad name: every rank alike) still takes part, with
     * nothing to contribute, and the status is agreed once at the end. */
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    /* The counts of every partition, from their owners: the only thing
     * about the records that moves between ranks. */
    for (size_t p = 0; !rc && p < nparts; p++)
        cnt[p] = owns(w, nparts, p, owner) ? parts[p].n : 0;
    if (!rc)
        rc = ember__comm_allgather_fixed_map(ctx, cnt, nparts, sizeof *cnt, owner,
                                             msg);
    unsigned char *buf = NULL;
    uint64_t own = 0;
    for (size_t p = 0; !rc && p < nparts; p++)
        off[p + 1] = off[p] + cnt[p];
    if (!rc)
        rc = ember__comm_agree_status(
            ctx, w->root ? room_for(w, off[nparts] * t->size, path, msg) : EMBER_OK, 0, msg);
    if (!rc) {
        int r = concat_owned(w, parts, nparts, owner, t->size, &buf, &own);
        if (r)
            ember__err(msg, r, "out of memory for %llu records of %s",
                       (unsigned long long)own, name);
        int wr = write_records(w, path, t, off, nparts, r ? NULL : owner,
                               r ? -1 : 0, buf, r ? 0 : own);
        if (wr && !r)
            r = ember__err(msg, wr, "%s: cannot write %s (parallel HDF5)", w->tmp,
                           path);
        rc = ember__comm_agree_status(ctx, r, 0, msg);
    }
    if (!rc && offsets)
        memcpy(offsets, off, (nparts + 1) * sizeof *off);
    ember__free(ctx, buf);
    ember__free(ctx, off);
    ember__free(ctx, cnt);
    return rc;
}

/* Records a replicated item for rank 0 to write at the commit. Every rank
 * checks the arguments alike, so a refusal needs no agreement; running out
 * of memory here is this rank's alone, so it is kept and agreed at the
 * commit (an early return on one rank would leave the others waiting in
 * the next collective call). */
static int add_item(ember__ckp *w, const rep_item *it)
{
    if (w->failed)
        return EMBER_OK;
    if (w->nitems == w->capitems) {
        size_t cap = w->capitems ? 2 * w->capitems : 8;
        rep_item *p = ember__realloc(w->ctx, w->items, ember__mul(cap, sizeof *p));
        if (!p) {
            w->failed = ember__err(w->why, EMBER_ENOMEM,
                                   "out of memory recording checkpoint item %s",
                                   it->name);
            return EMBER_OK;
        }
        w->items = p;
        w->capitems = cap;
    }
    w->items[w->nitems++] = *it;
    return EMBER_OK;
}

int ember__ckp_scalars(ember__ckp *w, const char *name, ember_scalar kind,
                       const void *data, size_t n, char *msg)
{
    int rc = check_name(name, msg);
    if (!rc && (!n || !ember_scalar_size(kind) || !data))
        rc = ember__err(msg, EMBER_EINVAL, "bad checkpoint scalars '%s'", name);
    if (rc)
        return rc;
    rep_item it = {.what = 0, .kind = kind, .data = data, .n = n};
    snprintf(it.name, sizeof it.name, "%s", name);
    return add_item(w, &it);
}

int ember__ckp_matrix(ember__ckp *w, const char *name, ember_scalar kind,
                      const void *data, size_t rows, size_t cols, char *msg)
{
    int rc = check_name(name, msg);
    if (!rc && (!rows || !cols || !ember_scalar_size(kind) || !data))
        rc = ember__err(msg, EMBER_EINVAL, "bad checkpoint matrix '%s'", name);
    if (rc)
        return rc;
    rep_item it = {.what = 1, .kind = kind, .data = data, .n = rows, .cols = cols};
    snprintf(it.name, sizeof it.name, "%s", name);
    return add_item(w, &it);
}

int ember__ckp_blob(ember__ckp *w, const char *name, const void *data,
                    size_t size, char *msg)
{
    int rc = check_name(name, msg);
    if (!rc && size && !data)
        rc = ember__err(msg, EMBER_EINVAL, "bad checkpoint blob '%s'", name);
    if (rc)
        return rc;
    rep_item it = {.what = 2, .data = data, .n = size};
    snprintf(it.name, sizeof it.name, "%s", name);
    return add_item(w, &it);
}

/* Rank 0, after the collective close: the replicated items through the
 * serial writer, then its commit sequence (docs/checkpoint-format.md,
 * steps 2 to 6: close, seal, fsync, rename, fsync the directory). */
static int finish_on_root(ember__ckp *w, uint64_t *bytes, char *msg)
{
    ember__ckw *cw = NULL;
    int rc = ember__ckw_reopen(w->ctx, &cw, w->dir, w->name, w->deflate, msg);
    for (size_t i = 0; !rc && i < w->nitems; i++) {
        const rep_item *it = &w->items[i];
        rc = it->what == 0 ? ember__ckw_scalars(cw, it->name, it->kind, it->data,
                                                it->n, msg)
             : it->what == 1 ? ember__ckw_matrix(cw, it->name, it->kind, it->data,
                                                 it->n, it->cols, msg)
                             : ember__ckw_blob(cw, it->name, it->data, it->n, msg);
    }
    if (!rc)
        return ember__ckw_commit(&cw, bytes, NULL, msg);
    ember__ckw_abort(&cw);
    unlink(w->tmp);
    return rc;
}

/* Collective: closes the file and the transfer list. */
static int close_file(ember__ckp *w)
{
    ember__h5_lock();
    int bad = 0;
    if (w->dxpl >= 0)
        H5Pclose(w->dxpl);
    if (w->fid >= 0)
        bad = H5Fclose(w->fid) < 0;
    ember__h5_unlock();
    w->fid = w->dxpl = H5I_INVALID_HID;
    return bad;
}

int ember__ckp_commit(ember__ckp **pw, uint64_t *bytes, char *path_out,
                      char *msg)
{
    ember__ckp *w = *pw;
    ember_ctx *ctx = w->ctx;
    *pw = NULL;
    int rc = close_file(w)
                 ? ember__err(msg, EMBER_EIO, "checkpoint %s: write failed "
                              "(closing the parallel HDF5 file)", w->path)
                 : w->failed ? ember__err(msg, w->failed, "%s", w->why)
                             : EMBER_OK;
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    root_done d;
    memset(&d, 0, sizeof d);
    if (w->root)
        d.rc = rc ? rc : finish_on_root(w, &d.bytes, d.msg);
    if (w->root && rc)
        unlink(w->tmp);
    int brc = ember__comm_bcast(ctx, &d, sizeof d, rc ? NULL : msg);
    if (!rc)
        rc = brc ? brc : d.rc ? ember__err(msg, (int)d.rc, "%s", d.msg) : EMBER_OK;
    if (!rc && bytes)
        *bytes = d.bytes;
    if (!rc && path_out)
        snprintf(path_out, 1024, "%.1023s", w->path);
    ckp_free(w);
    return rc;
}

void ember__ckp_abort(ember__ckp **pw)
{
    if (!pw || !*pw)
        return;
    ember__ckp *w = *pw;
    *pw = NULL;
    close_file(w);
    if (w->root)
        unlink(w->tmp);
    ckp_free(w);
}
