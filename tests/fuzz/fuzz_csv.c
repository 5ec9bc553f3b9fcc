/* fuzz_csv.c: numeric CSV (ember_read_csv) and lines (ember_read_lines),
 * src/text.c.
 *
 * Input: one byte of options, then the file.
 *   bits 0-2  delimiter: 0 auto, 1 ',', 2 ';', 3 '\t', 4 ' ', else auto
 *   bits 3-4  header: 0 auto, 1 yes, 2 no, 3 auto
 *   bits 5-7  partitions (0: from the file size)
 * Checks beyond the sanitizers: records do not depend on the partition
 * count (the same file read in one partition gives the same bytes), every
 * value is finite, and every line lies inside the text without its end.
 */
#include "fuzz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the CSV with the given partition count; *recs is an ember_free
 * allocation, NULL on error. */
static int read_csv(ember_ctx *ctx, const char *path, ember_text_opts o,
                    size_t parts, void **recs, size_t *n, ember_type *t)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    o.partitions = parts;
    *recs = NULL;
    *n = 0;
    int rc = ember_read_csv(&ds, ctx, path, &o, msg);
    fuzz_check_msg(rc, msg, "ember_read_csv");
    if (rc == EMBER_OK) {
        *t = *ember_ds_type(ds);
        uint64_t count = 0;
        rc = ember_count(ds, &count, msg);
        fuzz_check_msg(rc, msg, "ember_count");
        if (rc == EMBER_OK) {
            rc = ember_collect_alloc(ds, recs, n, msg);
            fuzz_check_msg(rc, msg, "ember_collect_alloc");
            if (rc == EMBER_OK && *n != count)
                fuzz_fail("count and collect disagree", NULL);
        }
    }
    ember_ds_free(&ds);
    return rc;
}

static void check_values(const void *recs, size_t n, const ember_type *t)
{
    if (t->size % sizeof(double))
        fuzz_fail("record size is not a whole number of doubles", NULL);
    for (uint32_t f = 0; f < t->nfields; f++)
        if (t->field[f].kind != EMBER_F64)
            fuzz_fail("a CSV field is not f64", NULL);
    const double *v = recs;
    for (size_t i = 0; i < n * (t->size / sizeof(double)); i++)
        if (!isfinite(v[i]))
            fuzz_fail("a value is not finite", NULL);
}

static void lines(ember_ctx *ctx, const char *path, const ember_text_opts *o)
{
    char msg[EMBER_MSG_SIZE];
    ember_ds *ds = NULL;
    int rc = ember_read_lines(&ds, ctx, path, o, msg);
    fuzz_check_msg(rc, msg, "ember_read_lines");
    if (rc)
        return;
    size_t size = 0;
    const char *text = ember_lines_text(ds, &size);
    ember_line *l = NULL;
    size_t n = 0;
    rc = ember_collect_alloc(ds, (void **)&l, &n, msg);
    fuzz_check_msg(rc, msg, "ember_collect_alloc (lines)");
    for (size_t i = 0; rc == EMBER_OK && i < n; i++) {
        if (l[i].offset > size || l[i].length > size - l[i].offset)
            fuzz_fail("a line lies outside the text", NULL);
        if (memchr(text + l[i].offset, '\n', l[i].length))
            fuzz_fail("a line holds its line end", NULL);
        if (i && l[i].offset < l[i - 1].offset + l[i - 1].length)
            fuzz_fail("lines overlap", NULL);
    }
    ember_free(ctx, l);
    ember_ds_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char delims[8] = {0, ',', ';', '\t', ' ', 0, 0, 0};
    static const int headers[4] = {0, 1, -1, 0};
    ember_text_opts o;
    memset(&o, 0, sizeof o);
    o.delimiter = delims[data[0] & 7];
    o.header = headers[(data[0] >> 3) & 3];
    size_t parts = data[0] >> 5;
    char path[8192];
    snprintf(path, sizeof path, "%s", fuzz_write("in.csv", data + 1, size - 1));

    ember_ctx *ctx = fuzz_ctx();
    void *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ember_type ta, tb;
    int ra = read_csv(ctx, path, o, parts, &a, &na, &ta);
    int rb = read_csv(ctx, path, o, 1, &b, &nb, &tb);
    if ((ra == EMBER_OK) != (rb == EMBER_OK) && ra != EMBER_ENOMEM && rb != EMBER_ENOMEM)
        fuzz_fail("the partition count changes whether the file parses", NULL);
    if (ra == EMBER_OK && rb == EMBER_OK) {
        if (!ember_type_equal(&ta, &tb) || na != nb ||
            (na && memcmp(a, b, na * ta.size)))
            fuzz_fail("the partition count changes the records", NULL);
        check_values(a, na, &ta);
    }
    ember_free(ctx, a);
    ember_free(ctx, b);
    lines(ctx, path, &o);
    ember_ctx_destroy(&ctx);
    fuzz_check_h5();
    return 0;
}
