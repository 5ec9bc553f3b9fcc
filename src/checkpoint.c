/* checkpoint.c: dataset checkpoints, which cut a growing lineage.
 *
 * ember_checkpoint marks a dataset. While an action computes it, each task
 * leaves the partition it produced in the node's capture buffers (the
 * pipeline tees it, so nothing is computed twice — Spark computes a
 * checkpointed RDD twice unless it was cached). After the action the
 * executor calls commit_pending (installed as ctx->ckpt_commit): every
 * marked dataset whose partitions are all captured or stored in the block
 * store is written as one checkpoint file, and its node becomes a read of
 * that file.
 * A local checkpoint keeps the partitions in the block store at a _AND_DISK
 * level instead of a file. Blocks already cached are moved to that level
 * as they are, never computed again.
 *
 * Truncation releases memory: a checkpointed node drops its parents, the
 * broadcasts it uses and (file checkpoints) its own shuffle outputs, so
 * everything only the cut part held is freed then: nodes, stored blocks,
 * spill files, shuffle outputs, broadcast copies. A live handle keeps what
 * it holds.
 *
 * On several ranks (comm.h) each rank captures or stores the partitions it
 * owns: a marked dataset is written once every owner has all of its own
 * (agreed), by all ranks together into one file, each its own partitions
 * (ckptpar.c); rank 0 commits the file, the outcome is agreed, and every
 * rank cuts the lineage to the same file, reading its own partitions from
 * it.
 *
 * Floor 5 of the engine (docs/design.md): calls actions, the executor, the
 * nodes, the block store, the communication layer and the file layer, all
 * below it.
 */
#include "internal.h"
#include "comm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static int need_dir(const ember_ds *ds, char *msg)
{
    if (!ds->ctx->checkpoint_dir)
        return ember__err(msg, EMBER_ESTATE,
                          "checkpoint of #%llu: the context has no checkpoint "
                          "directory (ember_ctx_opts.checkpoint_dir or "
                          "ember_ctx_set_checkpoint_dir)",
                          (unsigned long long)ds->id);
    return EMBER_OK;
}

static int commit_pending(ember_ds *ds, char *msg);

int ember_checkpoint(ember_ds *ds, char *msg)
{
    ember__msg_clear(msg);
    if (!ds)
        return ember__err(msg, EMBER_EINVAL, "checkpoint: NULL dataset");
    if (ds->ckpt_state == 2 && !ds->ckpt_path) /* an OK would promise a file */
        return ember__err(msg, EMBER_ESTATE, "checkpoint of #%llu: it is checkpointed "
                          "locally already (its lineage is cut into the block store), "
                          "so no file can be made from it; ask for the file checkpoint "
                          "before the local one", (unsigned long long)ds->id);
    if (ds->ckpt_state)
        return EMBER_OK;
    int rc = need_dir(ds, msg);
    if (rc)
        return rc;
    ds->ckpt_parts = ember__calloc(ds->ctx, ds->nparts + 1, sizeof *ds->ckpt_parts);
    ds->ckpt_have = ember__calloc(ds->ctx, ds->nparts + 1, 1);
    if (!ds->ckpt_parts || !ds->ckpt_have) {
        ember__ds_drop_captured(ds);
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    for (size_t p = 0; p < ds->nparts; p++)
        ds->ckpt_parts[p].size = ds->type.size;
    ds->ckpt_state = 1;
    ds->ctx->ckpt_marked++;
    ds->ctx->ckpt_commit = commit_pending;
    return EMBER_OK;
}

/* Cuts the lineage: ds's partitions now come from the file or the store,
 * and whatever only the cut part held is freed. */
static void truncate_lineage(ember_ds *ds, char *path, uint64_t *offsets,
                             unsigned char *head, uint64_t size)
{
    if (ds->ckpt_state == 1)
        ds->ctx->ckpt_marked--;
    ember__ds_drop_captured(ds);
    ds->ckpt_state = 2;
    ds->ckpt_path = path;
    ds->ckpt_offsets = offsets;
    ds->ckpt_head = head;
    ds->ckpt_size = size;
    ds->ckpt_verified = 0;
    /* A shuffle's outputs share its key; once a file serves its partitions
     * they are dead weight, unless the caller persisted it. */
    if (ds->op == EMBER__SHUFFLE && path && ds->level == EMBER_NONE)
        ember__store_drop(ds->ctx, ds->id);
    if (ds->op != EMBER__RANGE && ds->op != EMBER__ARRAY)
        ds->op = EMBER__CHECKPOINT; /* a source has no lineage to cut */
    ember__ds_cut(ds);
}

/* The partitions of a marked dataset, from captures or the store. Views
 * are held in views[] until released. */
static int gather_parts(ember_ds *ds, ember__buf *parts, ember__view *views,
                        char *msg)
{
    for (size_t q = 0; q < ds->nparts; q++) {
        parts[q].size = ds->type.size;
        if (ds->ckpt_have[q]) {
            parts[q] = ds->ckpt_parts[q];
            continue;
        }
        int rc = ember__store_get(ds->ctx, ds->id, q, &views[q], msg);
        if (rc)
            return rc;
        parts[q].data = (unsigned char *)views[q].data;
        parts[q].n = views[q].n;
    }
    return EMBER_OK;
}

static int all_available(ember_ds *ds)
{
    for (size_t q = 0; q < ds->nparts; q++)
        if (!ds->ckpt_have[q] && !ember__store_has(ds->ctx, ds->id, q))
            return 0;
    return 1;
}

/* "ds-<token>-<id>[-<name>].h5", with path-hostile characters replaced:
 * ids restart at 1 in every context, the token (ctx.c) keeps contexts that
 * share the directory apart, and it comes first so that one context's
 * files list together. */
static void file_name(const ember_ds *ds, char *fname, size_t size)
{
    snprintf(fname, size, "ds-%s-%llu%s%s.h5", ds->ctx->ckpt_token,
             (unsigned long long)ds->id, ds->name[0] ? "-" : "", ds->name);
    for (char *c = fname; *c; c++)
        if (*c == '/' || *c == ' ' || *c == '(' || *c == ')')
            *c = '_';
}

/* The checkpoint directory, made with its parents (mkdir -p, mode 0777
 * less the umask). The first time, the dataset checkpoints' temporaries
 * that killed writers left there are removed (those of live writers,
 * which hold theirs, stay). */
static int make_dir(ember_ctx *ctx, char *msg)
{
    char part[PATH_MAX];
    if (ember__mkdir_p(ctx->checkpoint_dir, part) == 0) {
        if (!ctx->ckpt_dir_swept)
            (void)ember__dir_sweep_unheld(ctx->checkpoint_dir, "ds-", NULL);
        ctx->ckpt_dir_swept = 1;
        return EMBER_OK;
    }
    return ember__err(msg, EMBER_EIO, "cannot create checkpoint dir %s: %s",
                      part, strerror(errno));
}

/* The header and size of the file just committed at path, which every
 * later read of it must find again (exec.c, ember__ckr_open_as). */
static int note_file(ember_ds *ds, const char *path, unsigned char **head,
                     uint64_t *size, char *msg)
{
    *head = ember__malloc(ds->ctx, EMBER__FSUM_BLOCK);
    if (!*head)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    int rc = ember__ck_head(path, *head, size, msg);
    if (rc) {
        ember__free(ds->ctx, *head);
        *head = NULL;
    }
    return rc;
}

/* The file of ds's partitions parts; path gets its name, head and size
 * its checksum header and size. With own (several ranks) it is written by
 * all of them (ckptpar.c), each its own partitions, and off gets the
 * partition offsets; the ranks take rank 0's token, so that the name is
 * one. */
static int write_file(ember_ds *ds, const ember__buf *parts, const int *own,
                      uint64_t *off, char *path, unsigned char **head,
                      uint64_t *size, char *msg)
{
    char fname[128], sig[512], *lineage = NULL;
    ember_ctx *ctx = ds->ctx;
    int rc = own ? ember__comm_bcast(ctx, ctx->ckpt_token, sizeof ctx->ckpt_token, msg)
                 : EMBER_OK;
    if (rc)
        return rc;
    if (!own || ember__comm_rank(ctx) == 0)
        rc = make_dir(ctx, msg);
    if (own) /* ember__ckp_begin names the directory again if a rank lacks it */
        rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (rc)
        return rc;
    file_name(ds, fname, sizeof fname);
    ember_type_describe(&ds->type, sig, sizeof sig);
    ember_lineage_string(ds, &lineage);
    ember__ck_meta meta = {"dataset", "", "", sig, lineage, 0, 0, 0};
    const char *dir = ctx->checkpoint_dir;
    if (own) {
        ember__ckp *w = NULL;
        rc = ember__ckp_begin(ctx, &w, dir, fname, &meta, msg);
        if (!rc)
            rc = ember__ckp_parts(w, "data", &ds->type, parts, ds->nparts, own, off,
                                  msg);
        if (!rc)
            rc = ember__ckp_commit(&w, NULL, path, msg);
        ember__ckp_abort(&w);
    } else {
        ember__ckw *w = NULL;
        rc = ember__ckw_begin(ctx, &w, dir, fname, &meta, msg);
        if (!rc)
            rc = ember__ckw_parts(w, "data", &ds->type, parts, ds->nparts, msg);
        if (!rc)
            rc = ember__ckw_commit(&w, NULL, path, msg);
        ember__ckw_abort(&w);
    }
    ember__free(ctx, lineage);
    if (!rc)
        rc = note_file(ds, path, head, size, msg);
    if (own)
        rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (rc) { /* the file stays marked: a later action writes it again */
        ember__free(ctx, *head);
        *head = NULL;
    }
    return rc;
}

/* Several ranks: see the file comment. Partitions are copied out of the
 * captures and the store into buffers of their own, written by their
 * owner. */
static int write_marked_ranks(ember_ds *ds, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    int *own = NULL, me = ember__comm_rank(ctx);
    int rc = ember__owners(ds, &own, msg);
    int64_t have = 1;
    for (size_t q = 0; !rc && q < ds->nparts; q++)
        if (own[q] == me && !ds->ckpt_have[q] && !ember__store_has(ctx, ds->id, q))
            have = 0;
    if (!rc)
        rc = ember__comm_agree(ctx, &have, 1, EMBER__AGREE_MIN, msg);
    if (rc || !have) { /* !have: a later action computes the rest */
        ember__free(ctx, own);
        return rc;
    }
    ember__buf *parts = ember__calloc(ctx, ds->nparts + 1, sizeof *parts);
    uint64_t *off = ember__calloc(ctx, ds->nparts + 1, sizeof *off);
    char *path = ember__malloc(ctx, 1024);
    rc = parts && off && path ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    for (size_t q = 0; parts && q < ds->nparts; q++)
        parts[q].size = ds->type.size;
    for (size_t q = 0; !rc && q < ds->nparts; q++) {
        if (own[q] != me)
            continue;
        if (ds->ckpt_have[q]) {
            rc = ember__buf_append(ctx, &parts[q], ds->ckpt_parts[q].data,
                                   ds->ckpt_parts[q].n);
            continue;
        }
        ember__view v;
        memset(&v, 0, sizeof v);
        rc = ember__store_get(ctx, ds->id, q, &v, msg);
        if (!rc)
            rc = ember__buf_append(ctx, &parts[q], v.data, v.n);
        if (v.data || v.owned_)
            ember__store_release(ctx, &v);
    }
    if (rc == EMBER_ENOMEM && msg && !msg[0])
        ember__err(msg, rc, "out of memory");
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    unsigned char *head = NULL;
    uint64_t size = 0;
    if (!rc)
        rc = write_file(ds, parts, own, off, path, &head, &size, msg);
    ember__parts_free(ctx, parts, parts ? ds->nparts : 0);
    ember__free(ctx, own);
    if (rc) {
        ember__free(ctx, off);
        ember__free(ctx, path);
        return rc;
    }
    truncate_lineage(ds, path, off, head, size);
    return EMBER_OK;
}

static int write_marked(ember_ds *ds, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    if (ember__comm_size(ctx) > 1)
        return write_marked_ranks(ds, msg);
    if (!all_available(ds))
        return EMBER_OK; /* a later action computes the rest */
    ember__buf *parts = ember__calloc(ctx, ds->nparts + 1, sizeof *parts);
    ember__view *views = ember__calloc(ctx, ds->nparts + 1, sizeof *views);
    uint64_t *off = ember__calloc(ctx, ds->nparts + 1, sizeof *off);
    char *path = ember__malloc(ctx, 1024);
    unsigned char *head = NULL;
    uint64_t size = 0;
    int rc = parts && views && off && path ? gather_parts(ds, parts, views, msg)
                                           : ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (!rc)
        rc = write_file(ds, parts, NULL, NULL, path, &head, &size, msg);
    for (size_t q = 0; views && q < ds->nparts; q++) {
        if (off)
            off[q + 1] = off[q] + (parts ? parts[q].n : 0);
        if (views[q].data || views[q].owned_)
            ember__store_release(ctx, &views[q]);
    }
    ember__free(ctx, parts);
    ember__free(ctx, views);
    if (rc) {
        ember__free(ctx, off);
        ember__free(ctx, path);
        return rc;
    }
    truncate_lineage(ds, path, off, head, size);
    return EMBER_OK;
}

static int commit_pending(ember_ds *ds, char *msg)
{
    if (!ds->ctx->ckpt_marked)
        return EMBER_OK;
    /* Oldest first: a marked parent is cut before its marked child. */
    ember_ds **a = NULL;
    size_t n = 0;
    int rc = ember__ancestors(ds, NULL, &a, &n);
    if (rc)
        return ember__err(msg, rc, "out of memory");
    for (size_t i = 0; !rc && i < n; i++)
        if (a[i]->ckpt_state == 1)
            rc = write_marked(a[i], msg);
    ember__free(ds->ctx, a);
    return rc;
}

int ember_checkpoint_eager(ember_ds *ds, char *msg)
{
    int rc = ember_checkpoint(ds, msg);
    if (rc || ds->ckpt_state == 2)
        return rc;
    uint64_t n;
    rc = ember_count(ds, &n, msg);
    if (!rc && ds->ckpt_state != 2)
        rc = ember__err(msg, EMBER_ESTATE, "checkpoint of #%llu was not written",
                        (unsigned long long)ds->id);
    return rc;
}

static ember_level disk_level(ember_level l)
{
    switch (l) {
    case EMBER_MEMORY_ONLY_SER:
    case EMBER_MEMORY_AND_DISK_SER:
        return EMBER_MEMORY_AND_DISK_SER;
    case EMBER_DISK_ONLY:
        return EMBER_DISK_ONLY;
    default:
        return EMBER_MEMORY_AND_DISK;
    }
}

/* ds at `want`, keeping what is stored: cached blocks move to the level as
 * they are (MEMORY_ONLY -> MEMORY_AND_DISK, _SER -> MEMORY_AND_DISK_SER). */
static int keep_stored(ember_ds *ds, ember_level want, char *msg)
{
    if (ds->level == want)
        return EMBER_OK;
    if (ds->level == EMBER_NONE) /* a shuffle's outputs are kept as well */
        return ember_persist(ds, want, msg);
    if (ember__store_relevel(ds->ctx, ds->id, want) != EMBER_OK)
        return ember__err(msg, EMBER_ESTATE,
                          "local checkpoint of #%llu: cannot move %s blocks "
                          "to %s", (unsigned long long)ds->id,
                          ember_level_name(ds->level), ember_level_name(want));
    ds->level = want;
    return EMBER_OK;
}

/* The partitions of ds this rank holds (all of them serially). */
static int owned_count(ember_ds *ds, size_t *count, char *msg)
{
    *count = ds->nparts;
    if (ember__comm_size(ds->ctx) == 1)
        return EMBER_OK;
    int *own = NULL, me = ember__comm_rank(ds->ctx);
    int rc = ember__owners(ds, &own, msg);
    if (rc)
        return rc;
    *count = 0;
    for (size_t q = 0; q < ds->nparts; q++)
        *count += own[q] == me;
    ember__free(ds->ctx, own);
    return EMBER_OK;
}

int ember__stored_whole(ember_ds *ds, char *msg)
{
    size_t mine = ds->nparts;
    if (ds->level == EMBER_NONE)
        return 0;
    int rc = owned_count(ds, &mine, msg);
    return rc ? rc : ember__store_count(ds->ctx, ds->id) >= mine;
}

int ember_local_checkpoint(ember_ds *ds, char *msg)
{
    ember__msg_clear(msg);
    if (!ds)
        return ember__err(msg, EMBER_EINVAL, "local_checkpoint: NULL dataset");
    if (ds->ckpt_state == 2)
        return EMBER_OK;
    if (ds->ckpt_state == 1) /* marked for a file: cutting the lineage first
                                would drop the file; the file cuts it too */
        return ember_checkpoint_eager(ds, msg);
    if (ds->op == EMBER__RANGE || ds->op == EMBER__ARRAY) {
        truncate_lineage(ds, NULL, NULL, NULL, 0);
        return EMBER_OK;
    }
    /* As Spark does, a local checkpoint needs a level that survives
     * eviction: the blocks are the only copy once the lineage is cut. */
    int rc = keep_stored(ds, disk_level(ds->level), msg);
    uint64_t n;
    size_t mine = ds->nparts;
    if (!rc)
        rc = owned_count(ds, &mine, msg);
    /* Only partitions not stored are computed (those that never got room
     * or were evicted count as recomputes). On several ranks each stores
     * its own, and ember_count is collective: the ranks agree first, also
     * on a failure above, so that all of them stop together. */
    int64_t flags[2] = {!rc && ember__store_count(ds->ctx, ds->id) < mine, rc != 0};
    if (ember__comm_size(ds->ctx) > 1) {
        int r = ember__comm_agree(ds->ctx, flags, 2, EMBER__AGREE_OR, rc ? NULL : msg);
        rc = rc ? rc : r;
        if (!rc && flags[1])
            rc = ember__err(msg, EMBER_EIO, "local checkpoint of #%llu failed on "
                            "another rank", (unsigned long long)ds->id);
    }
    int64_t short_ = flags[0];
    if (!rc && short_)
        rc = ember_count(ds, &n, msg);
    short_ = !rc && ember__store_count(ds->ctx, ds->id) < mine;
    if (!rc && ember__comm_size(ds->ctx) > 1)
        rc = ember__comm_agree(ds->ctx, &short_, 1, EMBER__AGREE_OR, msg);
    if (!rc && short_)
        rc = ember__err(msg, EMBER_EIO,
                        "local checkpoint of #%llu: not every partition could be "
                        "stored", (unsigned long long)ds->id);
    int *own = NULL;
    if (!rc && ember__comm_size(ds->ctx) > 1)
        rc = ember__owners(ds, &own, msg); /* where the blocks are, before the cut */
    if (!rc) {
        truncate_lineage(ds, NULL, NULL, NULL, 0);
        ember__free(ds->ctx, ds->cut_owner);
        ds->cut_owner = own;
    }
    return rc;
}

int ember_is_checkpointed(const ember_ds *ds)
{
    return ds && ds->ckpt_state == 2;
}

const char *ember_checkpoint_path(const ember_ds *ds)
{
    return ds && ds->ckpt_state == 2 ? ds->ckpt_path : NULL;
}

/* Picks the one dataset of a file when no name is given. */
static int only_dataset(ember_ctx *ctx, ember__ckr *r, const char *path,
                        char *name, char *msg)
{
    char *names = NULL;
    size_t n = 0;
    int rc = ember__ckr_list(r, "/datasets", &names, &n, msg);
    if (!rc && n != 1)
        rc = ember__err(msg, EMBER_EINVAL,
                        "%s holds %zu datasets; name the one to read", path, n);
    if (!rc)
        snprintf(name, EMBER_NAME_SIZE, "%s", names);
    ember__free(ctx, names);
    return rc;
}

int ember_read_checkpoint(ember_ds **out, ember_ctx *ctx, const char *path,
                          const char *name, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !path)
        return ember__err(msg, EMBER_EINVAL, "read_checkpoint: NULL argument");
    *out = NULL;
    ember__ckr *r = NULL;
    char which[EMBER_NAME_SIZE];
    ember_type t;
    void *data = NULL;
    size_t n = 0, nparts = 0;
    uint64_t *off = NULL;
    int rc = ember__ckr_open(ctx, &r, path, msg);
    if (!rc)
        rc = name ? (snprintf(which, sizeof which, "%s", name), EMBER_OK)
                  : only_dataset(ctx, r, path, which, msg);
    if (!rc)
        rc = ember__ckr_dataset(r, which, &t, &data, &n, &off, &nparts, msg);
    ember__ckr_close(&r);
    if (!rc)
        rc = ember__array_source_offsets(out, ctx, &t, data, n, off, nparts,
                                         which, msg);
    char *copy = rc ? NULL : ember__strdup(ctx, path);
    if (!rc && !copy) {
        ember_ds_free(out);
        rc = ember__err(msg, EMBER_ENOMEM, "out of memory");
    }
    if (!rc) {
        (*out)->ckpt_state = 2;
        (*out)->ckpt_path = copy;
    }
    return rc;
}
