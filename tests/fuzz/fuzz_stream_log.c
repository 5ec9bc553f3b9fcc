/* fuzz_stream_log.c: a stream's metadata, offsets and commits files and a
 * directory sink's owner file (src/stream_log.c), the checksummed text a
 * restarted stream reads, and its state snapshots (ember__ss_load,
 * src/stream_state.c).
 *
 * Input: one byte of options, then the file's lines (or the snapshot).
 *   bits 0-1  which file: 0 metadata, 1 offsets/<batch>, 2 commits/<batch>,
 *             3 a state snapshot of ember-stream-wordcount's record type
 *             (read with the fingerprint and batch its root attributes
 *             give, so that damage past them is reached)
 *   bits 2-4  batch (the number in the file's name)
 *   bit  6    with file 0: the sink owner file .ember-sink instead
 *   bit  7    write the input as is; otherwise the harness appends the
 *             "checksum <hex>" line the reader wants, so mutations reach
 *             the parser instead of dying at the checksum
 * A metadata file that reads must compare equal to its own description
 * and be comparable with another one.
 */
#include "fuzz.h"

#include "stream_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ember-stream-wordcount's state record. */
static ember_type wordcount_type(void)
{
    ember_field f[4];
    memset(f, 0, sizeof f);
    const char *names[4] = {"key", "offset", "length", "count"};
    for (int i = 0; i < 4; i++) {
        snprintf(f[i].name, EMBER_NAME_SIZE, "%s", names[i]);
        f[i].kind = i < 3 ? EMBER_U64 : EMBER_I64;
        f[i].count = 1;
    }
    ember_type t;
    if (ember_type_struct(&t, f, 4, NULL))
        fuzz_fail("cannot make the record type", NULL);
    return t;
}

static void snapshot(ember_ctx *ctx, const uint8_t *data, size_t size)
{
    char path[8192], msg[EMBER_MSG_SIZE];
    snprintf(path, sizeof path, "%s", fuzz_write("snap.h5", data, size));
    ember__ckr *r = NULL;
    uint64_t fp = 0, version = 0;
    int rc = ember__ckr_open(ctx, &r, path, msg);
    fuzz_check_msg(rc, msg, "ember__ckr_open");
    char id[64] = ""; /* the file's own query id, to get past that check */
    if (rc == EMBER_OK) {
        fp = ember__ckr_info(r)->fingerprint;
        version = ember__ckr_info(r)->iteration;
        const char *p = ember__ckr_info(r)->parameters;
        if (!strncmp(p, "query_id=", 9))
            snprintf(id, sizeof id, "%.*s", (int)strcspn(p + 9, "\n"), p + 9);
    }
    ember__ckr_close(&r);
    ember_type t = wordcount_type();
    ember__sstate st;
    rc = ember__ss_init(&st, ctx, &t, EMBER_KEY_TEXT, NULL, NULL, msg);
    if (rc)
        fuzz_fail("ember__ss_init failed", NULL);
    rc = ember__ss_load(&st, path, fp, id, version, msg);
    fuzz_check_msg(rc, msg, "ember__ss_load");
    if (rc == EMBER_OK && (st.rec.n && !st.rec.data))
        fuzz_fail("a loaded state without its records", NULL);
    ember__ss_free(&st);
}

static void write_log(const char *rel, const uint8_t *body, size_t n, int raw)
{
    size_t extra = raw ? 0 : 64;
    char *buf = malloc(n + extra + 1);
    if (n)
        memcpy(buf, body, n);
    size_t len = n;
    if (!raw)
        len += (size_t)snprintf(buf + n, extra, "checksum %016" PRIx64 "\n",
                                ember__sl_fnv(body, n));
    fuzz_write(rel, buf, len);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = data[0] & 3;
    uint64_t batch = (data[0] >> 2) & 7;
    int raw = (data[0] & 0x80) != 0;
    int owner = kind == 0 && (data[0] & 0x40);

    if (kind == 3) {
        ember_ctx *ctx = fuzz_ctx();
        snapshot(ctx, data + 1, size - 1);
        ember_ctx_destroy(&ctx);
        fuzz_check_h5();
        return 0;
    }
    fuzz_remove("loc");
    char loc[8192];
    snprintf(loc, sizeof loc, "%s", fuzz_path("loc"));
    mkdir(loc, 0700);
    mkdir(fuzz_path("loc/offsets"), 0700);
    mkdir(fuzz_path("loc/commits"), 0700);
    char rel[64];
    if (kind == 1)
        snprintf(rel, sizeof rel, "loc/offsets/%" PRIu64, batch);
    else if (kind == 2)
        snprintf(rel, sizeof rel, "loc/commits/%" PRIu64, batch);
    else if (owner)
        snprintf(rel, sizeof rel, "loc/%s", EMBER__SINK_OWNER);
    else
        snprintf(rel, sizeof rel, "loc/metadata");
    /* kind 3 returned above */
    write_log(rel, data + 1, size - 1, raw);

    ember_ctx *ctx = fuzz_ctx();
    char msg[EMBER_MSG_SIZE];
    int rc;
    if (kind == 1) {
        ember__soffsets o;
        rc = ember__sl_offsets_read(ctx, loc, batch, &o, msg);
        fuzz_check_msg(rc, msg, "ember__sl_offsets_read");
        if (rc == EMBER_OK && (o.batch != batch || o.nfiles == 0 || !o.files))
            fuzz_fail("offsets read without its batch or files", NULL);
        for (size_t i = 0; rc == EMBER_OK && i < o.nfiles; i++)
            if (!o.files[i].name)
                fuzz_fail("an offsets entry without a name", NULL);
        ember__sl_offsets_free(ctx, &o);
    } else if (kind == 2) {
        ember__scommit c;
        rc = ember__sl_commit_read(ctx, loc, batch, &c, msg);
        fuzz_check_msg(rc, msg, "ember__sl_commit_read");
        if (rc == EMBER_OK && (c.batch != batch ||
                               (c.has_state && c.state_version > batch)))
            fuzz_fail("a commit read with a wrong batch or state version", NULL);
        ember__sl_commit_free(ctx, &c); /* its hash lines, when it has them */
    } else if (owner) {
        ember__sowner w;
        rc = ember__sl_owner_read(ctx, loc, &w, msg);
        fuzz_check_msg(rc, msg, "ember__sl_owner_read");
        if (rc == EMBER_OK && (strlen(w.query_id) != EMBER__SQ_ID_SIZE - 1 ||
                               !memchr(w.location, '\0', sizeof w.location)))
            fuzz_fail("an owner read with a bad id or location", NULL);
    } else {
        ember__smeta m;
        rc = ember__sl_meta_read(ctx, loc, &m, msg);
        fuzz_check_msg(rc, msg, "ember__sl_meta_read");
        if (rc == EMBER_OK) {
            if (!m.description)
                fuzz_fail("metadata read without a description", NULL);
            if (ember__sl_meta_compare(loc, m.description, m.description, msg))
                fuzz_fail("a description differs from itself", NULL);
            rc = ember__sl_meta_compare(loc, m.description,
                                        "input=/data/in\nmode=append\n", msg);
            fuzz_check_msg(rc, msg, "ember__sl_meta_compare");
        }
        ember__sl_meta_free(ctx, &m);
    }
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
