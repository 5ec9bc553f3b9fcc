/* inspect.c: ember_checkpoint_inspect, a read-only description of one
 * checkpoint file for tools (ember-inspect).
 *
 * It goes through the checkpoint reader (ckptfile.c) for the whole-file
 * checksum and the root attributes (ember__ckr_open), the group listings
 * and the file-level verdict (ember__ckr_verify, the same function a
 * resume runs), and reads each item back whole to describe it (type,
 * records, partitions, a one-number scalar's value) and to say which item
 * fails. The file is never modified. Every allocation is the context's.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const groups[3] = {"datasets", "scalars", "blobs"};

static void copy_info(ember_checkpoint_info *o, const ember__ck_info *i)
{
    o->format_version = i->format_version;
    snprintf(o->kind, sizeof o->kind, "%s", i->kind);
    snprintf(o->ember_version, sizeof o->ember_version, "%s", i->ember_version);
    snprintf(o->program, sizeof o->program, "%s", i->program);
    snprintf(o->created, sizeof o->created, "%s", i->created);
    snprintf(o->parameters, sizeof o->parameters, "%s", i->parameters);
    snprintf(o->signature, sizeof o->signature, "%s", i->signature);
    snprintf(o->lineage, sizeof o->lineage, "%s", i->lineage);
    o->iteration = i->iteration;
    o->fingerprint = i->fingerprint;
    o->threads = i->threads;
    o->records_forced = i->records_forced;
}

/* The one number of a scalar as text. */
static void value_text(char *buf, size_t size, const ember_type *t,
                       const void *data)
{
    switch (t->field[0].kind) {
    case EMBER_I32: snprintf(buf, size, "%" PRId32, *(const int32_t *)data); break;
    case EMBER_I64: snprintf(buf, size, "%" PRId64, *(const int64_t *)data); break;
    case EMBER_U64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)data); break;
    case EMBER_F32: snprintf(buf, size, "%.9g", (double)*(const float *)data); break;
    case EMBER_F64: snprintf(buf, size, "%.17g", *(const double *)data); break;
    }
}

static int describe_dataset(ember_ctx *ctx, ember__ckr *r,
                            ember_checkpoint_item *it, char *msg)
{
    ember_type t;
    void *data = NULL;
    uint64_t *off = NULL;
    size_t n = 0, parts = 0;
    int rc = ember__ckr_dataset(r, it->name, &t, &data, &n, &off, &parts, msg);
    if (rc == EMBER_OK) {
        ember_type_describe(&t, it->type, sizeof it->type);
        it->records = n;
        it->partitions = parts;
    }
    ember__free(ctx, data);
    ember__free(ctx, off);
    return rc;
}

/* Scalars and blobs: read through the HDF5 layer, whose type mapping
 * gives the kind and the count. */
static int describe_plain(ember_ctx *ctx, ember__ckr *r,
                          ember_checkpoint_item *it, char *msg)
{
    char where[EMBER_NAME_SIZE + 32];
    snprintf(where, sizeof where, "/%s/%s", it->group, it->name);
    ember_type t;
    void *data = NULL;
    size_t n = 0;
    int blob = strcmp(it->group, "blobs") == 0;
    if (blob)
        snprintf(it->type, sizeof it->type, "bytes");
    int rc = ember__ckr_item(r, where, &t, &data, &n, msg);
    if (rc == EMBER_OK) {
        if (!blob)
            ember_type_describe(&t, it->type, sizeof it->type);
        it->records = n;
        if (!blob && t.nfields == 1 && t.field[0].count > 1) {
            /* a matrix (a 2-D dataset), read as rows of one array field:
             * said as the signature says it, in numbers */
            ember_type k = ember_type_scalar(t.field[0].kind);
            char kind[32];
            ember_type_describe(&k, kind, sizeof kind);
            snprintf(it->type, sizeof it->type, "%s[%zux%u]", kind, n,
                     (unsigned)t.field[0].count);
            it->records = (uint64_t)n * t.field[0].count;
        }
        if (!blob && n == 1 && t.nfields == 1 && t.field[0].count <= 1)
            value_text(it->value, sizeof it->value, &t, data);
    }
    ember__free(ctx, data);
    return rc;
}

/* Appends one item per name of a group, each read back. Items that fail
 * are kept, marked unverified; the first failure's message is kept. */
static int add_group(ember_checkpoint_info *o, ember_ctx *ctx, ember__ckr *r,
                     const char *group, char *first_err)
{
    char gpath[32], *names = NULL, why[EMBER_MSG_SIZE];
    size_t n = 0;
    snprintf(gpath, sizeof gpath, "/%s", group);
    int rc = ember__ckr_list(r, gpath, &names, &n, why);
    if (rc == EMBER_ENOMEM)
        return rc;
    if (rc) {
        if (!first_err[0])
            snprintf(first_err, EMBER_MSG_SIZE, "%s", why);
        return EMBER_OK; /* a missing group is a verification failure */
    }
    ember_checkpoint_item *items = ember__realloc(
        ctx, o->items, ember__mul(o->nitems + n + 1, sizeof *items));
    if (!items) {
        ember__free(ctx, names);
        return EMBER_ENOMEM;
    }
    o->items = items;
    for (size_t i = 0; i < n; i++) {
        ember_checkpoint_item *it = &o->items[o->nitems++];
        memset(it, 0, sizeof *it);
        snprintf(it->group, sizeof it->group, "%s", group);
        snprintf(it->name, sizeof it->name, "%s", names + i * EMBER_NAME_SIZE);
        int irc = strcmp(group, "datasets") == 0
                      ? describe_dataset(ctx, r, it, why)
                      : describe_plain(ctx, r, it, why);
        if (irc == EMBER_ENOMEM) {
            ember__free(ctx, names);
            return irc;
        }
        it->verified = irc == EMBER_OK;
        if (irc && !first_err[0])
            snprintf(first_err, EMBER_MSG_SIZE, "%s", why);
    }
    ember__free(ctx, names);
    return EMBER_OK;
}

/* Reads what the file holds; the verdict is the reader's own verify. */
static int inspect_open(ember_checkpoint_info *o, ember_ctx *ctx,
                        ember__ckr *r, char *msg)
{
    char first_err[EMBER_MSG_SIZE] = "";
    o->readable = 1;
    copy_info(o, ember__ckr_info(r));
    for (int g = 0; g < 3; g++) {
        int rc = add_group(o, ctx, r, groups[g], first_err);
        if (rc)
            return ember__err(msg, rc, "%s: out of memory", o->path);
    }
    int rc = ember__ckr_verify(r, o->error);
    if (rc == EMBER_OK && first_err[0]) {
        snprintf(o->error, sizeof o->error, "%s", first_err);
        rc = EMBER_ECORRUPT;
    }
    o->verified = rc == EMBER_OK;
    if (rc == EMBER_ENOMEM)
        return ember__err(msg, rc, "%s: out of memory", o->path);
    if (rc)
        return ember__err(msg, rc == EMBER_EFORMAT ? rc : EMBER_ECORRUPT, "%s",
                          o->error);
    return EMBER_OK;
}

int ember_checkpoint_inspect(ember_checkpoint_info **out, ember_ctx *ctx,
                             const char *path, char *msg)
{
    ember__msg_clear(msg);
    if (!out || !ctx || !path)
        return ember__err(msg, EMBER_EINVAL, "ember_checkpoint_inspect: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return ember__err(msg, errno == ENOENT ? EMBER_ENOTFOUND : EMBER_EIO,
                          "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ember__err(msg, EMBER_EINVAL, "%s: not a regular file", path);
    ember_checkpoint_info *o = ember__calloc(ctx, 1, sizeof *o);
    if (!o)
        return ember__err(msg, EMBER_ENOMEM, "out of memory");
    snprintf(o->path, sizeof o->path, "%s", path);
    o->bytes = (uint64_t)st.st_size;
    ember__ckr *r = NULL;
    int rc = ember__ckr_open(ctx, &r, path, o->error);
    char scratch[EMBER_MSG_SIZE];
    /* opened, or refused after its checksum held (no checkpoint inside) */
    o->sealed = rc == EMBER_OK || ((rc == EMBER_ECORRUPT || rc == EMBER_EFORMAT) &&
                                   ember__fsum_check(path, scratch) == EMBER_OK);
    if (rc == EMBER_OK)
        rc = inspect_open(o, ctx, r, msg);
    else if (rc == EMBER_ECORRUPT || rc == EMBER_EFORMAT)
        ember__err(msg, rc, "%s", o->error);
    ember__ckr_close(&r);
    if (rc == EMBER_OK || rc == EMBER_ECORRUPT || rc == EMBER_EFORMAT) {
        *out = o;
        return rc;
    }
    if (msg && !msg[0])
        ember__err(msg, rc, "%s", o->error);
    ember_checkpoint_info_free(ctx, &o);
    return rc;
}

void ember_checkpoint_info_free(ember_ctx *ctx, ember_checkpoint_info **info)
{
    if (!info || !*info)
        return;
    ember__free(ctx, (*info)->items);
    ember__free(ctx, *info);
    *info = NULL;
}
