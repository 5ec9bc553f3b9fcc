/* fuzz_checkpoint.c: the checkpoint reader (src/ckptfile.c, checkpoint.c)
 * and ember-inspect's API (include/ember/inspect.h, src/inspect.c).
 *
 * Input: a checkpoint file as is (no option byte), so any checkpoint a
 * program writes is a seed and any damaged file a reproducer. The harness
 * inspects it, then reads every dataset it holds with
 * ember_read_checkpoint (and the one picked by name NULL). A file that
 * inspects as verified must read back: a verified file whose dataset then
 * fails to read means inspect vouched for a file the reader rejects.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads one dataset whole; its status. */
static int read_one(ember_ctx *ctx, const char *path, const char *name)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    int rc = ember_read_checkpoint(&ds, ctx, path, name, msg);
    fuzz_check_msg(rc, msg, "ember_read_checkpoint");
    if (rc == EMBER_OK) {
        void *recs = NULL;
        size_t n = 0;
        rc = ember_collect_alloc(ds, &recs, &n, msg);
        fuzz_check_msg(rc, msg, "ember_collect_alloc");
        ember_free(ctx, recs);
    } else if (ds) {
        fuzz_fail("an error left a dataset behind", NULL);
    }
    ember_ds_free(&ds);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[8192];
    snprintf(path, sizeof path, "%s", fuzz_write("ck.h5", data, size));
    ember_ctx *ctx = fuzz_ctx();
    char msg[EMBER_MSG_SIZE];

    ember_checkpoint_info *info = NULL;
    int rc = ember_checkpoint_inspect(&info, ctx, path, msg);
    fuzz_check_msg(rc, msg, "ember_checkpoint_inspect");
    if (rc == EMBER_OK && (!info || !info->readable || !info->verified))
        fuzz_fail("inspect returned EMBER_OK for a file it did not verify", NULL);
    if (info && info->nitems && !info->items)
        fuzz_fail("inspect lists items it does not hold", NULL);
    int verified = rc == EMBER_OK;
    for (size_t i = 0; info && i < info->nitems; i++) {
        if (strcmp(info->items[i].group, "datasets") != 0)
            continue;
        int r = read_one(ctx, path, info->items[i].name);
        if (verified && r != EMBER_OK && r != EMBER_ENOMEM)
            fuzz_fail("a dataset of a verified checkpoint does not read", NULL);
    }
    ember_checkpoint_info_free(ctx, &info);
    fuzz_check_h5();
    read_one(ctx, path, NULL);
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
