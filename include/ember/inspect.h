/* ember/inspect.h: what a checkpoint file holds, for tools such as
 * ember-inspect. Included by ember.h; not meant to be included alone.
 *
 * Reading never changes the file. Calls follow ember.h's conventions and
 * run on the caller's thread (HDF5 is used under the library's lock).
 */
#ifndef EMBER_INSPECT_H
#define EMBER_INSPECT_H

#ifdef __cplusplus
extern "C" {
#endif

/* One HDF5 dataset of a checkpoint: a checkpointed dataset, a scalar or
 * array bound to a loop, or an opaque blob. */
typedef struct {
    char group[16];              /* "datasets", "scalars" or "blobs" */
    char name[EMBER_NAME_SIZE];
    char type[256];              /* ember_type_describe(); "bytes" for blobs;
                                    "f64[RxC]" for a matrix (records: R x C) */
    uint64_t records;            /* records, numbers, or bytes */
    uint64_t partitions;         /* datasets; 0 for scalars and blobs */
    char value[64];              /* a scalar holding one number, as text
                                    ("%.17g" for floats); "" otherwise */
    int verified;                /* 1: read back whole, checksums good */
} ember_checkpoint_item;

typedef struct {
    char path[1024];
    uint64_t bytes;              /* file size */
    int readable;                /* 1: its whole-file checksum verified and
                                    its root attributes were read */
    int verified;                /* 1: the whole-file checksum and every
                                    item verify */
    char error[EMBER_MSG_SIZE];  /* why not, when readable or verified is 0 */
    int sealed;                  /* 1: its whole-file checksum verified,
                                    whether or not it is a checkpoint (an
                                    ember graph or program output) */
    /* Root attributes (docs/checkpoint-format.md); empty when unreadable. */
    int64_t format_version;
    char kind[16];               /* "loop" or "dataset" */
    char ember_version[32];
    char program[256];
    char created[64];            /* ISO 8601, UTC */
    uint64_t iteration;          /* iterations done (loop checkpoints) */
    uint64_t fingerprint;        /* of program, parameters and state types */
    int64_t threads;             /* team size of the writer (information) */
    int records_forced;          /* 1: the writer records a resume by force
                                    ("info.forced=" in parameters); 0 in
                                    files of ember 0.1.0, whose run a
                                    resume takes as maybe forced */
    char parameters[8192];       /* "name=value" lines */
    char signature[8192];        /* "name: type" lines of the state */
    char lineage[16384];         /* as recorded by the writer (may be "") */
    size_t nitems;
    ember_checkpoint_item *items; /* owned by the info */
} ember_checkpoint_info;

/* Checks the checkpoint's whole-file checksum, then reads its root
 * attributes and every dataset, verifying checksums. A file without the
 * checksum header (early ember 0.1.0 builds wrote none) or failing it is never parsed:
 * readable stays 0 and error says what failed. Returns EMBER_OK when the file verifies and
 * EMBER_ECORRUPT (or EMBER_EFORMAT for a newer layout) when it does not;
 * in both cases *out is filled as far as the file allowed, and msg and
 * (*out)->error say what failed. A file that cannot be opened at all
 * (EMBER_ENOTFOUND, EMBER_EIO) or EMBER_ENOMEM leaves *out NULL. Free *out
 * with ember_checkpoint_info_free(). */
int ember_checkpoint_inspect(ember_checkpoint_info **out, ember_ctx *ctx,
                             const char *path, char *msg);
/* Frees an info and sets *info to NULL. Accepts NULL. */
void ember_checkpoint_info_free(ember_ctx *ctx, ember_checkpoint_info **info);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_INSPECT_H */
