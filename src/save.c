/* save.c: datasets to and from HDF5 files: ember_read_h5, ember_save_h5
 * and the dataset entries of checkpoint files.
 *
 * Floor 5 of the engine (docs/design.md), beside checkpoint.c: it runs
 * datasets through the ordered runner of the actions below it and hands
 * the records, partition by partition, to the file layer (h5io.c,
 * ckptfile.c), which knows records and offsets and never a dataset.
 * Memory stays O(window of partitions), never O(dataset).
 */
#include "internal.h"

#include <stdio.h>

static int append_part(void *state, size_t part, const void *recs, size_t n,
                       char *msg)
{
    (void)part;
    return ember__h5w_append(state, recs, n, msg);
}

/* An array source in one process (a bound rank vector, say): its records
 * are in memory already, partition after partition, so they go to the
 * file straight from the array. Running it through the executor instead
 * copied every partition and synchronised the team once per window of
 * partitions; on a loaded machine those waits made an 8 MB checkpoint
 * cost up to a second. A source marked for checkpointing (its tee) and
 * several ranks (whose partitions are gathered) take the general path. */
static int is_plain_array(const ember_ds *ds)
{
    return ds->op == EMBER__ARRAY && ds->ckpt_state != 1 &&
           ember__comm_size(ds->ctx) == 1;
}

int ember__save_to(ember_ds *ds, ember__h5w *hw, uint64_t *offsets,
                   char *msg)
{
    if (!is_plain_array(ds))
        return ember__run_ordered(ds, append_part, hw, offsets, msg);
    const unsigned char *data = ds->u.array.data;
    int rc = EMBER_OK;
    offsets[0] = 0;
    for (size_t p = 0; !rc && p < ds->nparts; p++) {
        size_t lo, hi;
        ember__array_bounds(ds, p, &lo, &hi);
        rc = ember__h5w_append(hw, hi > lo ? data + lo * ds->type.size : NULL,
                               hi - lo, msg);
        offsets[p + 1] = hi;
    }
    return rc;
}

/* A stored or source dataset is counted cheaply; its size picks the chunk
 * size. Others would have to be computed twice: no hint. */
static uint64_t expected_records(ember_ds *ds)
{
    uint64_t n = 0;
    if (is_plain_array(ds))
        return ds->u.array.n;
    if (!ember__is_root(ds) && ember_cached_partitions(ds) != ds->nparts)
        return 0;
    return ember_count(ds, &n, NULL) == EMBER_OK ? n : 0;
}

/* Runs ds into the open writer *hw (when rc is still 0) and closes it,
 * committing the dataset and its partition offsets only when everything
 * went well: a failed save (a user function's error in partition 7) is
 * discarded, so it never reads back as a complete dataset, and the one it
 * was to replace stays. */
static int save_and_close(ember_ds *ds, ember__h5w **hw, uint64_t *off, int rc,
                          char *msg)
{
    if (!rc)
        rc = ember__save_to(ds, *hw, off, msg);
    if (*hw && rc)
        ember__h5w_discard(hw);
    else if (*hw)
        rc = ember__h5w_close(hw, off, ds->nparts, msg);
    return rc;
}

int ember__ckw_ds(ember__ckw *w, const char *name, ember_ds *ds, char *msg)
{
    ember_ctx *ctx = ds->ctx;
    ember__h5w *hw = NULL;
    uint64_t *off = ember__calloc(ctx, ds->nparts + 1, sizeof *off);
    int rc = off ? ember__ckw_records(w, name, &ds->type, expected_records(ds),
                                      &hw, msg)
                 : ember__err(msg, EMBER_ENOMEM, "out of memory");
    rc = save_and_close(ds, &hw, off, rc, msg);
    ember__free(ctx, off);
    return rc;
}

/* On several ranks one rank writes the file and every rank computes: the
 * ordered runner brings every partition's records to every rank, and rank
 * 0 appends them. Its write errors are kept, not returned at once (the
 * other ranks' collectives would wait for it), and agreed at the end, as
 * the opening's status is before the run. (Every rank writing the one
 * file, as each once did, raced; with the file's change lock, the rank
 * holding it waited in a collective for the ranks waiting on the lock.) */
typedef struct {
    ember__h5w *w; /* rank 0's writer, else NULL */
    int rc;
    char msg[EMBER_MSG_SIZE];
} rank0_sink;

static int append_rank0(void *state, size_t part, const void *recs, size_t n,
                        char *msg)
{
    (void)part;
    (void)msg;
    rank0_sink *s = state;
    if (s->w && !s->rc)
        s->rc = ember__h5w_append(s->w, recs, n, s->msg);
    return EMBER_OK;
}

static int save_on_ranks(ember_ds *ds, const char *file, const char *path,
                         const ember__h5w_opts *wo, uint64_t *offsets, int rc,
                         char *msg)
{
    ember_ctx *ctx = ds->ctx;
    rank0_sink s = {.w = NULL};
    if (!rc && ember__comm_rank(ctx) == 0)
        rc = ember__h5w_open(ctx, &s.w, file, path, &ds->type, wo, msg);
    rc = ember__comm_agree_status(ctx, rc, 0, msg);
    if (!rc)
        rc = ember__run_ordered(ds, append_rank0, &s, offsets, msg);
    if (!rc && s.rc) {
        rc = s.rc;
        memcpy(msg, s.msg, EMBER_MSG_SIZE);
    }
    if (s.w && rc)
        ember__h5w_discard(&s.w);
    else if (s.w)
        rc = ember__h5w_close(&s.w, offsets, ds->nparts, msg);
    return ember__comm_agree_status(ctx, rc, 0, msg);
}

int ember_save_h5(ember_ds *ds, const char *spec, const ember_save_opts *opts,
                  char *msg)
{
    ember__msg_clear(msg);
    if (!ds || !spec)
        return ember__err(msg, EMBER_EINVAL, "save_h5: NULL argument");
    char file[4096], path[1024];
    int rc = ember__h5_split_spec(spec, file, sizeof file, path, sizeof path,
                                  msg);
    if (rc)
        return rc;
    if (!path[0])
        snprintf(path, sizeof path, "/%s", ds->name[0] ? ds->name : "data");
    ember__h5w_opts wo = {.deflate = opts ? opts->deflate : 0,
                          .fletcher32 = 1,
                          .overwrite = opts ? opts->overwrite : 0,
                          .fid = -1};
    uint64_t *offsets = ember__calloc(ds->ctx, ds->nparts + 1, sizeof *offsets);
    rc = offsets ? EMBER_OK : ember__err(msg, EMBER_ENOMEM, "out of memory");
    if (ember__comm_size(ds->ctx) > 1) {
        rc = save_on_ranks(ds, file, path, &wo, offsets, rc, msg);
    } else {
        ember__h5w *w = NULL;
        if (!rc)
            rc = ember__h5w_open(ds->ctx, &w, file, path, &ds->type, &wo, msg);
        rc = save_and_close(ds, &w, offsets, rc, msg);
    }
    ember__free(ds->ctx, offsets);
    return rc;
}

int ember_read_h5(ember_ds **out, ember_ctx *ctx, const char *spec,
                  size_t partitions, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !spec)
        return ember__err(msg, EMBER_EINVAL, "ember_read_h5: NULL argument");
    *out = NULL;
    char file[4096], path[1024];
    ember_type type;
    void *data = NULL;
    size_t n = 0;
    int rc = ember__h5_split_spec(spec, file, sizeof file, path, sizeof path,
                                  msg);
    if (rc == EMBER_OK)
        rc = ember__h5_read_all(ctx, file, path, &type, &data, &n, msg);
    if (rc)
        return rc;
    return ember__array_source(out, ctx, &type, data, n, partitions, NULL, 0,
                               path[0] ? path : file, msg);
}
