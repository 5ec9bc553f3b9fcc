/* fuzz_h5_write.c: writing into an HDF5 file ember is given by name and
 * did not write itself, or wrote and someone damaged since: the output
 * spec "file.h5:/dataset" of an existing file (ember_h5_write_array,
 * ember_h5_write_attrs; src/h5io.c, h5edit.c, filesum.c). The programs
 * do this with --output FILE.h5:/path when FILE.h5 is there.
 *
 * Input: one byte of options, then the existing file.
 *   bits 0-1  0 an array of 5 i64 to /out
 *             1 a 3 x 2 f64 array to /g/sub/out (groups created)
 *             2 attributes on the root group
 *             3 an array of 5 i64 to /csr/out (an ember graph's group
 *               is never written in part)
 *
 * What must hold: a change is made whole or not at all (h5edit.c). A
 * failed write returns a one-line message and leaves the file byte for
 * byte as it was; a write that succeeds leaves a file whose array reads
 * back as written and that verifies against its checksum when it had one
 * (a file without ember's header, as h5py writes, stays without one). Either
 * way no edit copy (FILE.ember-edit-*) stays beside it and no HDF5
 * identifier stays open.
 */
#include "fuzz.h"

#include "internal.h"

#include <ember/graph.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file's bytes (malloc'd), or NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            unsigned char *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

static void no_edit_copy(void)
{
    DIR *d = opendir(fuzz_dir());
    if (!d)
        fuzz_fail("cannot list the harness's directory", NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".ember-edit-"))
            fuzz_fail("an edit copy stayed beside the file", e->d_name);
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int what = data[0] & 3;
    char path[8192], spec[8300], msg[EMBER_MSG_SIZE];
    snprintf(path, sizeof path, "%s", fuzz_write("w.h5", data + 1, size - 1));
    /* A sealed file stays sealed; a file without ember's header (h5py's)
     * is changed as it is and stays without one (src/h5io.c). */
    int was_sealed = ember__fsum_check(path, msg) == EMBER_OK;

    static const int64_t ints[5] = {1, -2, 3, INT64_MAX, INT64_MIN};
    static const double reals[6] = {0.5, -1e300, 3, 4.25, 1e-300, -0.0};
    ember_h5_attr attrs[3] = {
        {.name = "program", .str = "fuzz_h5_write"},
        {.name = "count", .kind = EMBER_I64, .i = 42},
        {.name = "scale", .kind = EMBER_F64, .f = 0.125}};
    const char *dset = what == 1 ? "/g/sub/out" : what == 3 ? "/csr/out" : "/out";
    int rc;
    if (what == 2) {
        snprintf(spec, sizeof spec, "%s", path);
        rc = ember_h5_write_attrs(spec, attrs, 3, msg);
        fuzz_check_msg(rc, msg, "ember_h5_write_attrs");
    } else {
        snprintf(spec, sizeof spec, "%s:%s", path, dset);
        uint64_t dims[2] = {what == 1 ? 3 : 5, 2};
        rc = ember_h5_write_array(spec, what == 1 ? EMBER_F64 : EMBER_I64,
                                  what == 1 ? (const void *)reals : (const void *)ints,
                                  what == 1 ? 2 : 1, dims, attrs, 3, 0, msg);
        fuzz_check_msg(rc, msg, "ember_h5_write_array");
    }
    fuzz_check_h5();
    no_edit_copy();

    size_t n = 0;
    unsigned char *now = slurp(path, &n);
    if (!now)
        fuzz_fail("the file is gone or unreadable after the write", msg);
    if (rc != EMBER_OK) {
        if (n != size - 1 || memcmp(now, data + 1, n) != 0)
            fuzz_fail("a failed write changed the file", msg);
        free(now);
        return 0;
    }
    free(now);
    char cmsg[EMBER_MSG_SIZE];
    int c = ember__fsum_check(path, cmsg);
    if (c != EMBER_OK && (was_sealed || c != EMBER__FSUM_NONE))
        fuzz_fail("a sealed file written by ember no longer verifies, or a file "
             "without the header got a damaged one", cmsg);
    if (what == 2)
        return 0;
    ember_ctx *ctx = fuzz_ctx();
    ember_ds *ds = NULL;
    rc = ember_read_h5(&ds, ctx, spec, 0, msg);
    fuzz_check_msg(rc, msg, "ember_read_h5");
    if (rc != EMBER_OK && rc != EMBER_ENOMEM)
        fuzz_fail("the array just written does not read back", msg);
    if (rc == EMBER_OK) {
        void *recs = NULL;
        size_t nrec = 0;
        rc = ember_collect_alloc(ds, &recs, &nrec, msg);
        fuzz_check_msg(rc, msg, "ember_collect_alloc");
        size_t want = what == 1 ? sizeof reals : sizeof ints;
        if (rc == EMBER_OK &&
            (nrec * ember_ds_type(ds)->size != want ||
             memcmp(recs, what == 1 ? (const void *)reals : (const void *)ints, want)))
            fuzz_fail("the array reads back other values than were written", NULL);
        ember_free(ctx, recs);
    }
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
