/* comm.c: the communication layer of comm.h, serial and MPI.
 *
 * Every call first asks whether the context has more than one rank. With
 * one (the serial build, or an MPI build never given a communicator) the
 * call is trivial and no MPI function runs, so programs that never call
 * MPI_Init work in either build. The MPI half (EMBER_MPI) moves bytes with
 * collectives only; data moves as contiguous datatypes of one record or
 * item, so counts are records, not bytes.
 *
 * Floor 0 of the engine (docs/design.md).
 */
#include "internal.h"
#include "ember/mpi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <hdf5.h>
#ifdef EMBER_MPI
#include <mpi.h>
#endif

void ember__comm_init(ember__comm *c)
{
    c->rank = 0;
    c->size = 1;
    c->mpi = NULL;
    c->shared = NULL;
}

int ember__comm_rank(const ember_ctx *ctx)
{
    return ctx->comm.rank;
}

int ember__comm_size(const ember_ctx *ctx)
{
    return ctx->comm.size;
}

/* ---- the block map ------------------------------------------------------- */

void ember__comm_owned_of(size_t nparts, int size, int rank, size_t *lo,
                          size_t *hi)
{
    *lo = ember__part_lo(nparts, (size_t)size, (size_t)rank);
    *hi = ember__part_lo(nparts, (size_t)size, (size_t)rank + 1);
}

void ember__comm_owned(const ember_ctx *ctx, size_t nparts, size_t *lo,
                       size_t *hi)
{
    ember__comm_owned_of(nparts, ctx->comm.size, ctx->comm.rank, lo, hi);
}

int ember__comm_owner(const ember_ctx *ctx, size_t nparts, size_t part)
{
    /* The r with part_lo(r) <= part < part_lo(r + 1). */
    size_t R = (size_t)ctx->comm.size;
    return (int)(((unsigned __int128)(part + 1) * R - 1) / nparts);
}

int ember__comm_owns(const ember_ctx *ctx, size_t nparts, size_t part)
{
    size_t lo, hi;
    ember__comm_owned(ctx, nparts, &lo, &hi);
    return part >= lo && part < hi;
}

#ifndef EMBER_MPI

/* ---- serial: one rank, nothing to move ------------------------------------ */

void ember__comm_free(ember_ctx *ctx)
{
    ember__comm_init(&ctx->comm);
}

int ember_replicated_alloc(void **out, ember_ctx *ctx, size_t bytes, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx)
        return ember__err(msg, EMBER_EINVAL, "ember_replicated_alloc: NULL argument");
    *out = ember__malloc(ctx, bytes ? bytes : 1);
    if (!*out)
        return ember__err(msg, EMBER_ENOMEM, "out of memory for a replicated "
                          "array of %zu bytes", bytes);
    return EMBER_OK;
}

void ember_replicated_free(ember_ctx *ctx, void *p)
{
    if (ctx)
        ember__free(ctx, p);
}

int ember__comm_agree(ember_ctx *ctx, int64_t *flags, size_t n,
                      ember__agree_op op, char *msg)
{
    (void)ctx, (void)flags, (void)n, (void)op, (void)msg;
    return EMBER_OK;
}

int ember__comm_agree_status(ember_ctx *ctx, int rc, uint64_t failed_at,
                             char *msg)
{
    (void)ctx, (void)failed_at, (void)msg;
    return rc;
}

int ember__comm_bcast(ember_ctx *ctx, void *data, size_t bytes, char *msg)
{
    (void)ctx, (void)data, (void)bytes, (void)msg;
    return EMBER_OK;
}

int ember__comm_allgather_fixed_map(ember_ctx *ctx, void *data, size_t nparts,
                                    size_t item, const int *owner, char *msg)
{
    (void)ctx, (void)data, (void)nparts, (void)item, (void)owner, (void)msg;
    return EMBER_OK;
}

int ember__comm_allgather_parts_map(ember_ctx *ctx, void *parts, size_t nparts,
                                    size_t recsize, const int *owner,
                                    char *msg)
{
    (void)ctx, (void)parts, (void)nparts, (void)recsize, (void)owner,
        (void)msg;
    return EMBER_OK;
}

int ember__comm_allgather_ranges(ember_ctx *ctx, void *data, size_t elem,
                                 const uint64_t *offsets, size_t nparts,
                                 char *msg)
{
    (void)ctx, (void)data, (void)elem, (void)offsets, (void)nparts, (void)msg;
    return EMBER_OK;
}

int ember__comm_exchange_map(ember_ctx *ctx, void *in, size_t **start,
                             size_t P, size_t Q, size_t recsize,
                             const int *in_owner, char *msg)
{
    (void)ctx, (void)in, (void)start, (void)P, (void)Q, (void)recsize,
        (void)in_owner, (void)msg;
    return EMBER_OK;
}

int64_t ember__comm_h5_fapl(ember_ctx *ctx)
{
    (void)ctx;
    return ember__h5_fapl();
}

int64_t ember__comm_h5_dxpl(ember_ctx *ctx)
{
    (void)ctx;
    return (int64_t)H5Pcreate(H5P_DATASET_XFER);
}

#else /* EMBER_MPI */

/* ---- MPI ------------------------------------------------------------------- */

static MPI_Comm comm_of(const ember_ctx *ctx)
{
    return *(MPI_Comm *)ctx->comm.mpi;
}

static int multi(const ember_ctx *ctx)
{
    return ctx->comm.size > 1 && ctx->comm.mpi;
}

static int mpi_fail(char *msg, int err, const char *what)
{
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(err, s, &len);
    return ember__err(msg, EMBER_EIO, "MPI %s failed: %s", what, s);
}

/* ---- replicated arrays: one shared-memory window per array --------------- */

/* A live window of ember_replicated_alloc: rank 0 allocated all of it,
 * every rank maps it at base (addresses differ between ranks). */
typedef struct shwin {
    MPI_Win win;
    unsigned char *base;
    size_t bytes;
    struct shwin *next;
} shwin;

static shwin *shared_find(const ember_ctx *ctx, const void *p)
{
    const unsigned char *q = p;
    for (shwin *w = ctx->comm.shared; w; w = w->next)
        if (q >= w->base && q < w->base + (w->bytes ? w->bytes : 1))
            return w;
    return NULL;
}

static void shared_release(ember_ctx *ctx, shwin *w)
{
    shwin **pp = (shwin **)&ctx->comm.shared;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        MPI_Win_unlock_all(w->win);
        MPI_Win_free(&w->win);
    }
    ember__free(ctx, w);
}

/* 1 when every rank of ctx shares memory with every other (one node) and
 * EMBER_MPI_SHARED is not 0 on any rank; collective. */
static int shared_possible(ember_ctx *ctx)
{
    const char *env = getenv("EMBER_MPI_SHARED");
    int want = !(env && strcmp(env, "0") == 0), one = 0, all = 0;
    MPI_Comm node;
    if (MPI_Comm_split_type(comm_of(ctx), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                            &node) == MPI_SUCCESS) {
        int n = 0;
        MPI_Comm_size(node, &n);
        one = n == ctx->comm.size;
        MPI_Comm_free(&node);
    }
    int mine = want && one;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm_of(ctx)) != MPI_SUCCESS)
        return 0;
    return all;
}

/* Where Open MPI puts a shared window's backing file: its MCA variable
 * osc_sm_backing_directory (from mpirun --mca, the environment or a
 * parameter file, read through the MPI tool interface), else /dev/shm. */
static void backing_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/dev/shm");
    int provided = 0, idx = 0, count = 0;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS)
        return;
    MPI_T_cvar_handle h;
    if (MPI_T_cvar_get_index("osc_sm_backing_directory", &idx) == MPI_SUCCESS &&
        MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS) {
        char *v = count > 0 ? calloc((size_t)count + 1, 1) : NULL;
        if (v && MPI_T_cvar_read(h, v) == MPI_SUCCESS && v[0])
            snprintf(dir, size, "%s", v);
        free(v);
        MPI_T_cvar_handle_free(&h);
    }
    MPI_T_finalize();
}

/* Whether the backing file system has room for a window of bytes beside
 * the windows made before it: rank 0's check. Open MPI's sm component
 * fails on rank 0 alone when there is none, while the other ranks wait in
 * MPI_Win_allocate_shared for rank 0's word: the job hung (or, with room
 * for the file's creation but not its pages, a rank died of SIGBUS when
 * it first wrote the window). The earlier windows' files are sparse until
 * written, so they count as still to come. EMBER_TEST_SHM_FREE=BYTES
 * stands in for the room (tests only). */
static int backing_room(const ember_ctx *ctx, size_t bytes)
{
    char dir[PATH_MAX];
    struct statvfs sv;
    unsigned long long need = (unsigned long long)bytes + ((size_t)1 << 20), room;
    for (const shwin *o = ctx->comm.shared; o; o = o->next)
        need += o->bytes;
    const char *t = getenv("EMBER_TEST_SHM_FREE");
    if (t && *t)
        room = strtoull(t, NULL, 10);
    else if (backing_dir(dir, sizeof dir), statvfs(dir, &sv) == 0)
        room = (unsigned long long)sv.f_bavail * sv.f_frsize;
    else
        return 1; /* unknown: Open MPI says */
    static int said;
    if (room < need && !said++)
        fprintf(stderr, "ember: warning: %s has %.1f MiB free, too little for a shared "
                "window of %.1f MiB beside the others: every rank keeps its own copy "
                "of such arrays (more memory, and an all-gather where the window "
                "needed none); give it room, or move the windows with mpirun --mca "
                "osc_sm_backing_directory DIR\n", t && *t ? "the window's file system" : dir,
                room / 1048576.0, bytes / 1048576.0);
    return room >= need;
}

/* The window, or NULL (the same outcome on every rank): then the caller
 * uses private memory. */
static void *shared_alloc(ember_ctx *ctx, size_t bytes)
{
    shwin *w = ember__calloc(ctx, 1, sizeof *w);
    int ok = w != NULL && (ctx->comm.rank != 0 || backing_room(ctx, bytes)), all = 0;
    MPI_Aint size = ctx->comm.rank == 0 ? (MPI_Aint)bytes : 0;
    void *mine = NULL;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm_of(ctx)) != MPI_SUCCESS ||
        !all) {
        ember__free(ctx, w);
        return NULL;
    }
    int e = MPI_Win_allocate_shared(size, 1, MPI_INFO_NULL, comm_of(ctx), &mine,
                                    &w->win);
    MPI_Aint got = 0;
    int unit = 0;
    void *base = NULL;
    if (e == MPI_SUCCESS) {
        MPI_Win_set_errhandler(w->win, MPI_ERRORS_RETURN);
        int q = MPI_Win_shared_query(w->win, 0, &got, &unit, &base);
        ok = q == MPI_SUCCESS && (base || bytes == 0) && (size_t)got >= bytes;
    } else {
        ok = 0;
    }
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm_of(ctx)) != MPI_SUCCESS ||
        !all) {
        /* No usable window (Open MPI's one-sided component, its backing
         * file, or a wrapper such as the monitoring component's, which
         * does not answer MPI_Win_shared_query): the caller falls back to
         * private memory. */
        if (e == MPI_SUCCESS)
            MPI_Win_free(&w->win);
        ember__free(ctx, w);
        return NULL;
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, w->win);
    w->base = base;
    w->bytes = bytes;
    w->next = ctx->comm.shared;
    ctx->comm.shared = w;
    return base;
}

int ember_replicated_alloc(void **out, ember_ctx *ctx, size_t bytes, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx)
        return ember__err(msg, EMBER_EINVAL, "ember_replicated_alloc: NULL argument");
    *out = NULL;
    if (multi(ctx) && bytes > 0 && shared_possible(ctx)) {
        *out = shared_alloc(ctx, bytes);
        if (*out)
            return EMBER_OK;
    }
    void *p = ember__malloc(ctx, bytes ? bytes : 1);
    int ok = p != NULL, all = ok;
    if (multi(ctx))
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm_of(ctx));
    if (!all) {
        ember__free(ctx, p);
        return ember__err(msg, EMBER_ENOMEM, "out of memory for a replicated "
                          "array of %zu bytes", bytes);
    }
    *out = p;
    return EMBER_OK;
}

void ember_replicated_free(ember_ctx *ctx, void *p)
{
    if (!ctx || !p)
        return;
    shwin *w = shared_find(ctx, p);
    if (w)
        shared_release(ctx, w);
    else
        ember__free(ctx, p);
}

void ember__comm_free(ember_ctx *ctx)
{
    while (ctx->comm.shared)
        shared_release(ctx, ctx->comm.shared);
    if (ctx->comm.mpi) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin)
            MPI_Comm_free((MPI_Comm *)ctx->comm.mpi);
        ember__free(ctx, ctx->comm.mpi);
    }
    ember__comm_init(&ctx->comm);
}

int ember__comm_agree(ember_ctx *ctx, int64_t *flags, size_t n,
                      ember__agree_op op, char *msg)
{
    if (!multi(ctx) || n == 0)
        return EMBER_OK;
    if (n > INT_MAX)
        return ember__err(msg, EMBER_ERANGE, "agreement on %zu flags: too many",
                          n);
    MPI_Op o = op == EMBER__AGREE_OR ? MPI_BOR
               : op == EMBER__AGREE_MAX ? MPI_MAX : MPI_MIN;
    int e = MPI_Allreduce(MPI_IN_PLACE, flags, (int)n, MPI_INT64_T, o,
                          comm_of(ctx));
    return e == MPI_SUCCESS ? EMBER_OK : mpi_fail(msg, e, "allreduce");
}

int ember__comm_agree_status(ember_ctx *ctx, int rc, uint64_t failed_at,
                             char *msg)
{
    if (!multi(ctx))
        return rc;
    MPI_Comm c = comm_of(ctx);
    uint64_t key = rc ? failed_at : UINT64_MAX;
    int e = MPI_Allreduce(MPI_IN_PLACE, &key, 1, MPI_UINT64_T, MPI_MIN, c);
    if (e != MPI_SUCCESS)
        return mpi_fail(msg, e, "allreduce of a status");
    if (key == UINT64_MAX)
        return EMBER_OK;
    int root = (rc && failed_at == key) ? ctx->comm.rank : INT_MAX;
    e = MPI_Allreduce(MPI_IN_PLACE, &root, 1, MPI_INT, MPI_MIN, c);
    if (e != MPI_SUCCESS)
        return mpi_fail(msg, e, "allreduce of a status");
    struct {
        int rc;
        char msg[EMBER_MSG_SIZE];
    } st;
    memset(&st, 0, sizeof st);
    st.rc = rc;
    if (msg)
        memcpy(st.msg, msg, EMBER_MSG_SIZE);
    e = MPI_Bcast(&st, (int)sizeof st, MPI_BYTE, root, c);
    if (e != MPI_SUCCESS)
        return mpi_fail(msg, e, "broadcast of a status");
    if (msg)
        memcpy(msg, st.msg, EMBER_MSG_SIZE);
    return st.rc;
}

int ember__comm_bcast(ember_ctx *ctx, void *data, size_t bytes, char *msg)
{
    if (!multi(ctx))
        return EMBER_OK;
    unsigned char *p = data;
    for (size_t off = 0; off < bytes; off += INT_MAX) {
        size_t n = bytes - off < INT_MAX ? bytes - off : INT_MAX;
        int e = MPI_Bcast(p + off, (int)n, MPI_BYTE, 0, comm_of(ctx));
        if (e != MPI_SUCCESS)
            return mpi_fail(msg, e, "broadcast");
    }
    return EMBER_OK;
}

/* A contiguous datatype of `bytes` bytes (one record or item). */
static int make_type(size_t bytes, MPI_Datatype *t, char *msg)
{
    if (bytes > INT_MAX)
        return ember__err(msg, EMBER_ERANGE,
                          "MPI: records of %zu bytes are too large", bytes);
    int e = MPI_Type_contiguous((int)bytes, MPI_BYTE, t);
    if (e == MPI_SUCCESS)
        e = MPI_Type_commit(t);
    return e == MPI_SUCCESS ? EMBER_OK : mpi_fail(msg, e, "datatype");
}

/* owner, or the block map of nparts in *tmp (a ctx allocation). */
static const int *owners(ember_ctx *ctx, size_t nparts, const int *owner,
                         int **tmp, char *msg)
{
    *tmp = NULL;
    if (owner)
        return owner;
    *tmp = ember__malloc(ctx, (nparts + 1) * sizeof **tmp);
    if (!*tmp) {
        ember__err(msg, EMBER_ENOMEM, "out of memory");
        return NULL;
    }
    for (int r = 0; r < ctx->comm.size; r++) {
        size_t lo, hi;
        ember__comm_owned_of(nparts, ctx->comm.size, r, &lo, &hi);
        for (size_t p = lo; p < hi; p++)
            (*tmp)[p] = r;
    }
    return *tmp;
}

/* cnt[r] = sum over p owned by r of w[p] (1 when w is NULL), disp[r] the
 * running sum in rank order; ERANGE when the total passes INT_MAX. */
static int rank_counts(const ember_ctx *ctx, const int *own, size_t nparts,
                       const uint64_t *w, int *cnt, int *disp, char *msg)
{
    int R = ctx->comm.size;
    uint64_t *c = ember__calloc((ember_ctx *)ctx, (size_t)R, sizeof *c);
    if (!c)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t p = 0; p < nparts; p++)
        c[own[p]] += w ? w[p] : 1;
    uint64_t total = 0;
    int rc = EMBER_OK;
    for (int r = 0; r < R && !rc; r++) {
        if (total + c[r] > INT_MAX)
            rc = ember__err(msg, EMBER_ERANGE,
                            "MPI all-gather of more than %d records (INT_MAX) "
                            "is not supported: use more partitions or gather "
                            "less at once", INT_MAX);
        cnt[r] = (int)c[r];
        disp[r] = (int)total;
        total += c[r];
    }
    ember__free((ember_ctx *)ctx, c);
    return rc;
}

int ember__comm_allgather_fixed_map(ember_ctx *ctx, void *data, size_t nparts,
                                    size_t item, const int *owner, char *msg)
{
    if (!multi(ctx) || nparts == 0)
        return EMBER_OK;
    int R = ctx->comm.size, me = ctx->comm.rank;
    int *tmp = NULL, *cnt = ember__calloc(ctx, (size_t)R * 2, sizeof *cnt);
    const int *own = owners(ctx, nparts, owner, &tmp, msg);
    unsigned char *all = ember__malloc(ctx, ember__mul(nparts, item));
    unsigned char *d = data;
    MPI_Datatype t = MPI_DATATYPE_NULL;
    int rc = cnt && own && all ? EMBER_OK
                               : ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (!rc)
        rc = rank_counts(ctx, own, nparts, NULL, cnt, cnt + R, msg);
    if (!rc)
        rc = make_type(item, &t, msg);
    if (!rc) {
        /* Rank order in `all`: each rank's items in partition order. */
        size_t k = (size_t)cnt[R + me];
        for (size_t p = 0; p < nparts; p++)
            if (own[p] == me)
                memcpy(all + (k++) * item, d + p * item, item);
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, cnt,
                               cnt + R, t, comm_of(ctx));
        if (e != MPI_SUCCESS)
            rc = mpi_fail(msg, e, "allgather");
    }
    if (!rc) {
        int *cur = cnt; /* reuse: cursor per rank, from its displacement */
        memcpy(cur, cnt + R, (size_t)R * sizeof *cur);
        for (size_t p = 0; p < nparts; p++)
            memcpy(d + p * item, all + (size_t)(cur[own[p]]++) * item, item);
    }
    if (t != MPI_DATATYPE_NULL)
        MPI_Type_free(&t);
    ember__free(ctx, cnt);
    ember__free(ctx, tmp);
    ember__free(ctx, all);
    return rc;
}

/* Copies the gathered records (rank order) into the parts this rank does
 * not hold (its own stay as they are). */
static int scatter_parts(ember_ctx *ctx, ember__buf *parts, size_t nparts,
                         const int *own, const uint64_t *n, const int *disp,
                         const unsigned char *all, size_t recsize)
{
    int R = ctx->comm.size, me = ctx->comm.rank, rc = EMBER_OK;
    size_t *cur = ember__malloc(ctx, (size_t)R * sizeof *cur);
    if (!cur)
        return EMBER_ENOMEM;
    for (int r = 0; r < R; r++)
        cur[r] = (size_t)disp[r];
    for (size_t p = 0; !rc && p < nparts; p++) {
        size_t off = cur[own[p]];
        cur[own[p]] += (size_t)n[p];
        if (own[p] == me)
            continue;
        ember__buf_free(ctx, &parts[p]);
        parts[p].size = recsize;
        rc = ember__buf_append(ctx, &parts[p], all + off * recsize, (size_t)n[p]);
    }
    ember__free(ctx, cur);
    return rc;
}

int ember__comm_allgather_parts_map(ember_ctx *ctx, void *vparts, size_t nparts,
                                    size_t recsize, const int *owner,
                                    char *msg)
{
    if (!multi(ctx) || nparts == 0)
        return EMBER_OK;
    ember__buf *parts = vparts;
    int R = ctx->comm.size, me = ctx->comm.rank;
    int *tmp = NULL;
    const int *own = owners(ctx, nparts, owner, &tmp, msg);
    uint64_t *n = ember__calloc(ctx, nparts, sizeof *n);
    int *cnt = ember__calloc(ctx, (size_t)R * 2, sizeof *cnt);
    unsigned char *mine = NULL, *all = NULL;
    MPI_Datatype t = MPI_DATATYPE_NULL;
    int rc = own && n && cnt ? EMBER_OK
                             : ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t p = 0; !rc && p < nparts; p++)
        if (own[p] == me)
            n[p] = parts[p].n;
    if (!rc)
        rc = ember__comm_allgather_fixed_map(ctx, n, nparts, sizeof *n, own, msg);
    if (!rc)
        rc = rank_counts(ctx, own, nparts, n, cnt, cnt + R, msg);
    if (!rc)
        rc = make_type(recsize, &t, msg);
    size_t total = rc ? 0 : (size_t)cnt[R - 1] + (size_t)cnt[R + R - 1];
    if (!rc) {
        mine = ember__malloc(ctx, ember__mul((size_t)cnt[me] + 1, recsize));
        all = ember__malloc(ctx, ember__mul(total + 1, recsize));
        if (!mine || !all)
            rc = ember__err(msg, EMBER_ENOMEM,
                            "out of memory gathering %zu records", total);
    }
    if (!rc) {
        size_t off = 0;
        for (size_t p = 0; p < nparts; p++) {
            if (own[p] != me)
                continue;
            if (parts[p].n)
                ember__copy(mine + off * recsize, parts[p].data, parts[p].n * recsize);
            off += parts[p].n;
        }
        int e = MPI_Allgatherv(mine, cnt[me], t, all, cnt, cnt + R, t,
                               comm_of(ctx));
        if (e != MPI_SUCCESS)
            rc = mpi_fail(msg, e, "allgather");
    }
    if (!rc && scatter_parts(ctx, parts, nparts, own, n, cnt + R, all, recsize))
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory gathering partitions");
    if (t != MPI_DATATYPE_NULL)
        MPI_Type_free(&t);
    ember__free(ctx, tmp);
    ember__free(ctx, n);
    ember__free(ctx, cnt);
    ember__free(ctx, mine);
    ember__free(ctx, all);
    return rc;
}

int ember__comm_allgather_ranges(ember_ctx *ctx, void *data, size_t elem,
                                 const uint64_t *offsets, size_t nparts,
                                 char *msg)
{
    if (!multi(ctx) || nparts == 0)
        return EMBER_OK;
    shwin *w = shared_find(ctx, data);
    if (w) {
        /* Every rank wrote its ranges into the one array: make the stores
         * visible, wait for every rank's, and see theirs. */
        int e = MPI_Win_sync(w->win);
        if (e == MPI_SUCCESS)
            e = MPI_Barrier(comm_of(ctx));
        if (e == MPI_SUCCESS)
            e = MPI_Win_sync(w->win);
        return e == MPI_SUCCESS ? EMBER_OK : mpi_fail(msg, e, "shared all-gather");
    }
    if (offsets[nparts] >= (uint64_t)INT_MAX)
        return ember__err(msg, EMBER_ERANGE,
                          "MPI all-gather of %llu elements: MPI's int counts "
                          "stop at %d; use fewer elements per array",
                          (unsigned long long)offsets[nparts], INT_MAX);
    int R = ctx->comm.size;
    int *cnt = ember__calloc(ctx, (size_t)R * 2, sizeof *cnt);
    MPI_Datatype t = MPI_DATATYPE_NULL;
    int rc = cnt ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (int r = 0; !rc && r < R; r++) {
        size_t lo, hi;
        ember__comm_owned_of(nparts, R, r, &lo, &hi);
        cnt[r] = (int)(offsets[hi] - offsets[lo]);
        cnt[R + r] = (int)offsets[lo];
    }
    if (!rc)
        rc = make_type(elem, &t, msg);
    if (!rc) {
        int e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, cnt,
                               cnt + R, t, comm_of(ctx));
        if (e != MPI_SUCCESS)
            rc = mpi_fail(msg, e, "allgather of ranges");
    }
    if (t != MPI_DATATYPE_NULL)
        MPI_Type_free(&t);
    ember__free(ctx, cnt);
    return rc;
}

/* ---- the shuffle exchange ------------------------------------------------- */

typedef struct {
    int R, me;
    size_t P, Q, qlo, qhi;           /* my output range */
    const int *own;                  /* owner of each input partition */
    size_t *np;                      /* input partitions per rank */
    int *scnt, *sdisp, *rcnt, *rdisp; /* one of each per rank */
    uint64_t *scounts, *rcounts;     /* bucket sizes sent and received */
    unsigned char *sbuf, *rbuf;
} xchg;

static void xchg_free(ember_ctx *ctx, xchg *x)
{
    ember__free(ctx, x->np);
    ember__free(ctx, x->scnt);
    ember__free(ctx, x->scounts);
    ember__free(ctx, x->rcounts);
    ember__free(ctx, x->sbuf);
    ember__free(ctx, x->rbuf);
}

/* Layout of the bucket-size matrices: to rank d goes, for my p in order,
 * for d's q, one count; from rank s comes, for s's p in order, for my q,
 * one count. Both sides know the shapes from the maps. */
static int xchg_count_layout(xchg *x, char *msg)
{
    uint64_t so = 0, ro = 0;
    for (int r = 0; r < x->R; r++) {
        size_t qlo, qhi;
        ember__comm_owned_of(x->Q, x->R, r, &qlo, &qhi);
        uint64_t s = (uint64_t)x->np[x->me] * (qhi - qlo);
        uint64_t v = (uint64_t)x->np[r] * (x->qhi - x->qlo);
        if (so + s > INT_MAX || ro + v > INT_MAX)
            return ember__err(msg, EMBER_ERANGE,
                              "shuffle exchange: %zu x %zu buckets exceed MPI's "
                              "int counts", x->P, x->Q);
        x->scnt[r] = (int)s;
        x->sdisp[r] = (int)so;
        x->rcnt[r] = (int)v;
        x->rdisp[r] = (int)ro;
        so += s;
        ro += v;
    }
    return EMBER_OK;
}

static size_t xchg_total(const int *cnt, const int *disp, int R)
{
    return (size_t)disp[R - 1] + (size_t)cnt[R - 1];
}

static int xchg_counts(ember_ctx *ctx, xchg *x, size_t *const *start,
                       char *msg)
{
    size_t ns = xchg_total(x->scnt, x->sdisp, x->R);
    size_t nr = xchg_total(x->rcnt, x->rdisp, x->R);
    x->scounts = ember__malloc(ctx, (ns + 1) * sizeof *x->scounts);
    x->rcounts = ember__malloc(ctx, (nr + 1) * sizeof *x->rcounts);
    if (!x->scounts || !x->rcounts)
        return ember__err(msg, EMBER_ENOMEM, "out of memory in shuffle exchange");
    size_t k = 0;
    for (int d = 0; d < x->R; d++) {
        size_t qlo, qhi;
        ember__comm_owned_of(x->Q, x->R, d, &qlo, &qhi);
        for (size_t p = 0; p < x->P; p++)
            if (x->own[p] == x->me)
                for (size_t q = qlo; q < qhi; q++)
                    x->scounts[k++] = start[p][q + 1] - start[p][q];
    }
    int e = MPI_Alltoallv(x->scounts, x->scnt, x->sdisp, MPI_UINT64_T,
                          x->rcounts, x->rcnt, x->rdisp, MPI_UINT64_T,
                          comm_of(ctx));
    return e == MPI_SUCCESS ? EMBER_OK : mpi_fail(msg, e, "alltoallv of counts");
}

/* Records to and from every rank, from the count matrices; ERANGE (on this
 * rank) when they do not fit MPI's int. */
static int xchg_data_layout(xchg *x, char *msg)
{
    uint64_t so = 0, ro = 0;
    size_t ks = 0, kr = 0;
    for (int r = 0; r < x->R; r++) {
        uint64_t s = 0, v = 0;
        for (int i = 0; i < x->scnt[r]; i++)
            s += x->scounts[ks++];
        for (int i = 0; i < x->rcnt[r]; i++)
            v += x->rcounts[kr++];
        if (so + s > INT_MAX || ro + v > INT_MAX)
            return ember__err(msg, EMBER_ERANGE,
                              "shuffle exchange: rank %d would send or receive "
                              "more than %d records (INT_MAX) in one exchange; "
                              "use more ranks or fewer records", x->me, INT_MAX);
        x->scnt[r] = (int)s;
        x->sdisp[r] = (int)so;
        x->rcnt[r] = (int)v;
        x->rdisp[r] = (int)ro;
        so += s;
        ro += v;
    }
    return EMBER_OK;
}

/* Packs, for each rank d, for my p in order, d's buckets of in[p]
 * (contiguous: in[p] is ordered by bucket). */
static int xchg_pack(ember_ctx *ctx, xchg *x, const ember__buf *in,
                     size_t *const *start, size_t recsize, char *msg)
{
    size_t ns = xchg_total(x->scnt, x->sdisp, x->R);
    size_t nr = xchg_total(x->rcnt, x->rdisp, x->R);
    x->sbuf = ember__malloc(ctx, ember__mul(ns + 1, recsize));
    x->rbuf = ember__malloc(ctx, ember__mul(nr + 1, recsize));
    if (!x->sbuf || !x->rbuf)
        return ember__err(msg, EMBER_ENOMEM,
                          "out of memory in shuffle exchange (%zu + %zu records)",
                          ns, nr);
    unsigned char *o = x->sbuf;
    for (int d = 0; d < x->R; d++) {
        size_t qlo, qhi;
        ember__comm_owned_of(x->Q, x->R, d, &qlo, &qhi);
        for (size_t p = 0; p < x->P; p++) {
            if (x->own[p] != x->me)
                continue;
            size_t a = start[p][qlo], b = start[p][qhi];
            if (b > a)
                ember__copy(o, in[p].data + a * recsize, (b - a) * recsize);
            o += (b - a) * recsize;
        }
    }
    return EMBER_OK;
}

/* From rank s come, for s's p in order, my buckets of p: in[p] and
 * start[p] become exactly those, for every p. */
static int xchg_unpack(ember_ctx *ctx, xchg *x, ember__buf *in,
                       size_t **start, size_t recsize, char *msg)
{
    size_t *ck = ember__malloc(ctx, (size_t)x->R * 2 * sizeof *ck);
    if (!ck)
        return ember__err(msg, EMBER_ENOMEM, "out of memory in shuffle");
    size_t *dk = ck + x->R; /* per source: next count, next record */
    size_t acc = 0;
    for (int r = 0; r < x->R; r++) {
        ck[r] = acc; /* the count layout, as xchg_count_layout made it */
        acc += x->np[r] * (x->qhi - x->qlo);
        dk[r] = (size_t)x->rdisp[r];
    }
    int rc = EMBER_OK;
    for (size_t p = 0; !rc && p < x->P; p++) {
        int s = x->own[p];
        size_t *st = start[p] ? start[p]
                              : ember__malloc(ctx, (x->Q + 1) * sizeof *st);
        if (!st) {
            rc = EMBER_ENOMEM;
            break;
        }
        start[p] = st;
        size_t n = 0;
        for (size_t q = 0; q <= x->Q; q++) {
            if (q > x->qlo && q <= x->qhi)
                n += (size_t)x->rcounts[ck[s]++];
            st[q] = n;
        }
        ember__buf_free(ctx, &in[p]);
        in[p].size = recsize;
        rc = ember__buf_append(ctx, &in[p], x->rbuf + dk[s] * recsize, n);
        dk[s] += n;
    }
    ember__free(ctx, ck);
    return rc ? ember__err(msg, rc, "out of memory in shuffle") : EMBER_OK;
}

int ember__comm_exchange_map(ember_ctx *ctx, void *vin, size_t **start,
                             size_t P, size_t Q, size_t recsize,
                             const int *in_owner, char *msg)
{
    if (!multi(ctx) || P == 0 || Q == 0)
        return EMBER_OK;
    ember__buf *in = vin;
    xchg x;
    memset(&x, 0, sizeof x);
    x.R = ctx->comm.size;
    x.me = ctx->comm.rank;
    x.P = P;
    x.Q = Q;
    ember__comm_owned(ctx, Q, &x.qlo, &x.qhi);
    int *tmp = NULL;
    MPI_Datatype t = MPI_DATATYPE_NULL;
    x.own = owners(ctx, P, in_owner, &tmp, msg);
    x.scnt = ember__calloc(ctx, (size_t)x.R * 4, sizeof *x.scnt);
    x.np = ember__calloc(ctx, (size_t)x.R, sizeof *x.np);
    int rc = x.own && x.scnt && x.np
                 ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (!rc) {
        x.sdisp = x.scnt + x.R;
        x.rcnt = x.sdisp + x.R;
        x.rdisp = x.rcnt + x.R;
        for (size_t p = 0; p < P; p++)
            x.np[x.own[p]]++;
        rc = xchg_count_layout(&x, msg);
    }
    /* The shapes are the same on every rank: so is this outcome. */
    if (!rc)
        rc = xchg_counts(ctx, &x, start, msg);
    /* Whether the data fits MPI's int counts is known per rank: agree. */
    if (!rc) {
        rc = xchg_data_layout(&x, msg);
        int64_t too_big = rc != EMBER_OK;
        int a = ember__comm_agree(ctx, &too_big, 1, EMBER__AGREE_OR, msg);
        if (a)
            rc = a;
        else if (too_big && !rc)
            rc = ember__err(msg, EMBER_ERANGE,
                            "shuffle exchange: another rank would move more "
                            "than %d records (INT_MAX) in one exchange", INT_MAX);
    }
    if (!rc)
        rc = make_type(recsize, &t, msg);
    if (!rc)
        rc = xchg_pack(ctx, &x, in, start, recsize, msg);
    if (!rc) {
        int e = MPI_Alltoallv(x.sbuf, x.scnt, x.sdisp, t, x.rbuf, x.rcnt,
                              x.rdisp, t, comm_of(ctx));
        if (e != MPI_SUCCESS)
            rc = mpi_fail(msg, e, "alltoallv");
    }
    if (!rc)
        rc = xchg_unpack(ctx, &x, in, start, recsize, msg);
    if (t != MPI_DATATYPE_NULL)
        MPI_Type_free(&t);
    ember__free(ctx, tmp);
    xchg_free(ctx, &x);
    return rc;
}

int64_t ember__comm_h5_fapl(ember_ctx *ctx)
{
    hid_t fapl = (hid_t)ember__h5_fapl();
    if (fapl >= 0 && multi(ctx) &&
        H5Pset_fapl_mpio(fapl, comm_of(ctx), MPI_INFO_NULL) < 0) {
        H5Pclose(fapl);
        fapl = H5I_INVALID_HID;
    }
    return (int64_t)fapl;
}

int64_t ember__comm_h5_dxpl(ember_ctx *ctx)
{
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl >= 0 && multi(ctx) &&
        H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
        H5Pclose(dxpl);
        dxpl = H5I_INVALID_HID;
    }
    return (int64_t)dxpl;
}

/* ---- the public hook (include/ember/mpi.h) -------------------------------- */

int ember_ctx_set_comm(ember_ctx *ctx, MPI_Comm comm, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx)
        return ember__err(msg, EMBER_EINVAL, "ember_ctx_set_comm: NULL context");
    int init = 0, fin = 0, level = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_ctx_set_comm: MPI is not initialised (the "
                          "program calls MPI_Init_thread first)");
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_FUNNELED)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_ctx_set_comm: MPI was initialised with thread "
                          "level %d; ember needs MPI_THREAD_FUNNELED or higher",
                          level);
    if (ctx->all || ctx->bcasts)
        return ember__err(msg, EMBER_ESTATE,
                          "ember_ctx_set_comm: the context already has datasets; "
                          "set the communicator before making any");
    MPI_Comm *dup = ember__malloc(ctx, sizeof *dup);
    if (!dup)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int e = MPI_Comm_dup(comm, dup);
    if (e != MPI_SUCCESS) {
        ember__free(ctx, dup);
        return mpi_fail(msg, e, "Comm_dup");
    }
    MPI_Comm_set_errhandler(*dup, MPI_ERRORS_RETURN);
    ember__comm_free(ctx);
    ctx->comm.mpi = dup;
    MPI_Comm_rank(*dup, &ctx->comm.rank);
    MPI_Comm_size(*dup, &ctx->comm.size);
    return EMBER_OK;
}

#endif /* EMBER_MPI */

/* ---- both ------------------------------------------------------------------ */

/* The file-access list of every file ember opens: without HDF5's flock,
 * which fails outright on file systems that lack it (NFS, some Lustre
 * mounts), since ember already keeps readers from half-written files by
 * writing a temporary file and renaming; objects created in the 1.8 format or
 * later, which stores attributes of any size (a partition_offsets
 * attribute of many partitions passes 64 KiB). Here, on the floor below
 * the file layer, because the ranks' MPI-IO list starts from it. */
int64_t ember__h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return H5I_INVALID_HID;
    herr_t rc = H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
#if H5_VERSION_GE(1, 10, 7)
    if (rc >= 0)
        rc = H5Pset_file_locking(fapl, 0, 1);
#endif
    if (rc < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return (int64_t)fapl;
}

int ember__comm_allgather_fixed(ember_ctx *ctx, void *data, size_t nparts,
                                size_t item, char *msg)
{
    return ember__comm_allgather_fixed_map(ctx, data, nparts, item, NULL, msg);
}

int ember__comm_allgather_parts(ember_ctx *ctx, void *parts, size_t nparts,
                                size_t recsize, char *msg)
{
    return ember__comm_allgather_parts_map(ctx, parts, nparts, recsize, NULL,
                                           msg);
}

int ember__comm_exchange(ember_ctx *ctx, void *in, size_t **start, size_t P,
                         size_t Q, size_t recsize, char *msg)
{
    return ember__comm_exchange_map(ctx, in, start, P, Q, recsize, NULL, msg);
}

int ember_ctx_rank(const ember_ctx *ctx)
{
    return ctx ? ctx->comm.rank : 0;
}

int ember_ctx_ranks(const ember_ctx *ctx)
{
    return ctx ? ctx->comm.size : 1;
}

/* ---- public all-gathers (include/ember/mpi.h) ------------------------------ */

int ember_allgather_ranges(ember_ctx *ctx, void *data, size_t elem_size,
                           const uint64_t *offsets, size_t nparts, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || (nparts && (!offsets || (!data && offsets[nparts]))) || !elem_size)
        return ember__err(msg, EMBER_EINVAL, "ember_allgather_ranges: NULL or "
                          "zero argument");
    for (size_t p = 0; p < nparts; p++)
        if (offsets[p] > offsets[p + 1])
            return ember__err(msg, EMBER_EINVAL, "ember_allgather_ranges: "
                              "offsets decrease at partition %zu", p);
    return ember__comm_allgather_ranges(ctx, data, elem_size, offsets, nparts,
                                        msg);
}

int ember_allreduce_min_i64(ember_ctx *ctx, int64_t *data, size_t n, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || (n && !data))
        return ember__err(msg, EMBER_EINVAL, "ember_allreduce_min_i64: NULL argument");
    return ember__comm_agree(ctx, data, n, EMBER__AGREE_MIN, msg);
}

int ember_allgather_items(ember_ctx *ctx, void *data, size_t item_size,
                          size_t nparts, char *msg)
{
    ember__msg_clear(msg);
    if (!ctx || (nparts && !data) || !item_size)
        return ember__err(msg, EMBER_EINVAL, "ember_allgather_items: NULL or "
                          "zero argument");
    return ember__comm_allgather_fixed(ctx, data, nparts, item_size, msg);
}
