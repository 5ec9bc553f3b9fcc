/* test_text.c: text sources (src/text.c): ember__read_file, ember_read_csv
 * and ember_read_lines.
 *
 * Fixture files go to a fresh mkdtemp directory per case. Records are read
 * straight from the array source (ds->u.array), which is what text.c makes;
 * one case goes through ember_collect_alloc as well. Parallel results are
 * checked bit for bit against simple serial references for several
 * partition and thread counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define assert_msg_has(msg, part)                                              \
    do {                                                                       \
        if (!strstr((msg), (part)))                                            \
            fail_msg("message \"%s\" lacks \"%s\"", (msg), (part));            \
    } while (0)

static const size_t part_counts[] = {1, 2, 7, 64};
static const int thread_counts[] = {1, 2, 4};
#define NPARTS (sizeof part_counts / sizeof part_counts[0])
#define NTHREADS (sizeof thread_counts / sizeof thread_counts[0])

/* ---- fixtures ----------------------------------------------------------- */

#define FX_FILES 16

typedef struct {
    char dir[256];
    char path[FX_FILES][320];
    int n;
} fixture;

static void fx_init(fixture *f)
{
    const char *tmp = getenv("TMPDIR");
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/ember_text_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
}

static const char *fx_write(fixture *f, const char *name, const char *data,
                            size_t len)
{
    assert_true(f->n < FX_FILES);
    char *path = f->path[f->n++], full[sizeof f->path[0]];
    snprintf(full, sizeof full, "%s/%s", f->dir, name);
    memcpy(path, full, sizeof full);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static const char *fx_text(fixture *f, const char *name, const char *text)
{
    return fx_write(f, name, text, strlen(text));
}

static void fx_done(fixture *f)
{
    for (int i = 0; i < f->n; i++)
        unlink(f->path[i]);
    rmdir(f->dir);
}

/* ---- growable text ------------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->len : NULL,
                          b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(w >= 0);
        if (b->s && b->len + (size_t)w < b->cap) {
            b->len += (size_t)w;
            return;
        }
        b->cap = (b->cap + (size_t)w + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
}

/* ---- helpers ------------------------------------------------------------ */

static ember_ctx *new_ctx(int threads)
{
    ember_ctx *ctx = NULL;
    ember_ctx_opts o;
    char msg[EMBER_MSG_SIZE];
    memset(&o, 0, sizeof o);
    o.threads = threads;
    assert_int_equal(ember_ctx_create(&ctx, &o, msg), EMBER_OK);
    return ctx;
}

static int csv(ember_ds **ds, ember_ctx *ctx, const char *path, char delim,
               int header, size_t parts, char *msg)
{
    ember_text_opts o = {delim, header, parts};
    return ember_read_csv(ds, ctx, path, &o, msg);
}

/* Reads path expecting success and the given shape. */
static const double *csv_ok(ember_ds **ds, ember_ctx *ctx, const char *path,
                            char delim, int header, size_t rows, size_t cols)
{
    char msg[EMBER_MSG_SIZE];
    int rc = csv(ds, ctx, path, delim, header, 0, msg);
    if (rc != EMBER_OK)
        fail_msg("ember_read_csv: %s (%s)", ember_strerror(rc), msg);
    assert_string_equal(msg, "");
    assert_int_equal((*ds)->u.array.n, rows);
    assert_int_equal(ember_ds_type(*ds)->size, cols * sizeof(double));
    return (const double *)(*ds)->u.array.data;
}

/* Reads path expecting EMBER_EFORMAT with a message containing want. */
static void csv_fails(ember_ctx *ctx, const char *path, char delim, int header,
                      size_t parts, const char *want)
{
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    int rc = csv(&ds, ctx, path, delim, header, parts, msg);
    if (rc != EMBER_EFORMAT)
        fail_msg("expected EFORMAT with \"%s\", got %s (%s)", want,
                 ember_strerror(rc), msg);
    assert_null(ds);
    assert_msg_has(msg, want);
}

static void assert_values(const double *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(double)) != 0)
            fail_msg("value %zu: got %.17g, want %.17g", i, got[i], want[i]);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- delimiters and headers --------------------------------------------- */

static void test_text_comma(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "data.csv", "1,2,3\n4.5, -6 ,7e2\n");
    const double *v = csv_ok(&ds, ctx, p, 0, 0, 2, 3);
    const double want[] = {1, 2, 3, 4.5, -6, 700};
    assert_values(v, want, 6);
    const ember_type *t = ember_ds_type(ds);
    assert_int_equal(t->cls, EMBER_TYPE_STRUCT);
    assert_int_equal(t->nfields, 3);
    assert_string_equal(t->field[0].name, "c0");
    assert_string_equal(t->field[2].name, "c2");
    assert_int_equal(t->field[1].offset, 8);
    assert_string_equal(ember_ds_name(ds), "data.csv");
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_whitespace(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "w.txt", "  1  2\t3 \n\t4 5   6\n7 8 9");
    const double *v = csv_ok(&ds, ctx, p, 0, 0, 3, 3);
    const double want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_values(v, want, 9);
    ember_ds_free(&ds);
    /* ' ' given explicitly means the same */
    v = csv_ok(&ds, ctx, p, ' ', -1, 3, 3);
    assert_values(v, want, 9);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_tab(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "t.tsv", "a b\tc\n1\t 2\n3 \t4\n");
    const double *v = csv_ok(&ds, ctx, p, '\t', 0, 2, 2);
    const double want[] = {1, 2, 3, 4};
    assert_values(v, want, 4);
    assert_string_equal(ember_ds_type(ds)->field[0].name, "a b");
    assert_string_equal(ember_ds_type(ds)->field[1].name, "c");
    ember_ds_free(&ds);
    const char *q = fx_text(&f, "e.tsv", "1\t2\t3\n4\t\t6\n");
    csv_fails(ctx, q, '\t', 0, 0, "e.tsv:2: column 2 is empty");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_semicolon(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(1);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "s.csv", "x;y\n1;2\n3;4\n");
    const double *v = csv_ok(&ds, ctx, p, ';', 0, 2, 2);
    const double want[] = {1, 2, 3, 4};
    assert_values(v, want, 4);
    assert_string_equal(ember_ds_type(ds)->field[1].name, "y");
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_header_auto(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *with = fx_text(&f, "h.csv", "\xEF\xBB\xBFx,y\n1,2\n3,4\n");
    const char *without = fx_text(&f, "n.csv", "1,2\n3,4\n");
    const double want[] = {1, 2, 3, 4};
    assert_values(csv_ok(&ds, ctx, with, 0, 0, 2, 2), want, 4);
    assert_string_equal(ember_ds_type(ds)->field[0].name, "x");
    assert_string_equal(ember_ds_type(ds)->field[1].name, "y");
    ember_ds_free(&ds);
    assert_values(csv_ok(&ds, ctx, without, 0, 0, 2, 2), want, 4);
    assert_string_equal(ember_ds_type(ds)->field[0].name, "c0");
    ember_ds_free(&ds);
    /* forced: a numeric first line becomes names */
    assert_values(csv_ok(&ds, ctx, without, 0, 1, 1, 2), want + 2, 2);
    assert_string_equal(ember_ds_type(ds)->field[0].name, "1");
    ember_ds_free(&ds);
    /* refused: the names are data and fail */
    csv_fails(ctx, with, 0, -1, 0, "h.csv:1: 'x' is not a number");
    /* a first row holding NaN is bad data, not a header */
    const char *nan_first = fx_text(&f, "nf.csv", "nan,1\n2,3\n");
    csv_fails(ctx, nan_first, 0, 0, 0, "nf.csv:1: 'nan' is not finite");
    /* a first line of numbers and text is neither: an error naming the
     * field, not a header that drops a row with a typo */
    const char *typo = fx_text(&f, "t.csv", "1,2x\n3,4\n5,6\n");
    csv_fails(ctx, typo, 0, 0, 0, "t.csv:1: '2x' is not a number, but other "
              "fields of this first line are");
    const char *ws = fx_text(&f, "t.txt", "# c\nx 1 y\n3 4 5\n");
    csv_fails(ctx, ws, 0, 0, 0, "t.txt:2: 'x' is not a number, but other");
    /* quotes are looked through: quoted numbers are data (and not read) */
    const char *qn = fx_text(&f, "qn.csv", "\"1\",\"2\"\n3,4\n");
    csv_fails(ctx, qn, 0, 0, 0, "qn.csv:1: '\"1\"' is not a number");
    const char *qh = fx_text(&f, "qh.csv", "\"x\",\"y\"\n1,2\n3,4\n");
    assert_values(csv_ok(&ds, ctx, qh, 0, 0, 2, 2), want, 4);
    assert_string_equal(ember_ds_type(ds)->field[1].name, "y");
    ember_ds_free(&ds);
    /* forced either way, no guess is made */
    assert_values(csv_ok(&ds, ctx, typo, 0, 1, 2, 2), (const double[]){3, 4, 5, 6}, 4);
    ember_ds_free(&ds);
    csv_fails(ctx, typo, 0, -1, 0, "t.csv:1: '2x' is not a number");
    /* another delimiter: its first line taken for a one-name header, the
     * second names the delimiter it seems to use; given, it reads */
    const char *semi = fx_text(&f, "semi.csv", "1;2\n3;4\n");
    csv_fails(ctx, semi, 0, 0, 0, "semi.csv:2: '3;4' is not a number: fields are read as "
                                  "separated by blanks, and this file seems to use ';'");
    assert_values(csv_ok(&ds, ctx, semi, ';', 0, 2, 2), want, 4);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_header_names(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(
        &f, "names.csv",
        "\"q\",,a,a,c1,abcdefghijklmnopqrstuvwxyz0123456789\n1,2,3,4,5,6\n");
    csv_ok(&ds, ctx, p, 0, 0, 1, 6);
    const ember_type *t = ember_ds_type(ds);
    assert_string_equal(t->field[0].name, "q");
    assert_string_equal(t->field[1].name, "c1");
    assert_string_equal(t->field[2].name, "a");
    assert_string_equal(t->field[3].name, "c3");
    assert_string_equal(t->field[4].name, "c4"); /* "c1" was taken */
    assert_string_equal(t->field[5].name, "abcdefghijklmnopqrstuvwxyz01234");
    ember_ds_free(&ds);
    /* a cut never splits a UTF-8 character: 15 x "é" is 30 bytes, the 16th
     * would end at byte 32 */
    const char *u = fx_text(&f, "utf8.csv",
                            "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                            "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                            "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9,b\n1,2\n");
    csv_ok(&ds, ctx, u, 0, 0, 1, 2);
    assert_int_equal(strlen(ember_ds_type(ds)->field[0].name), 30);
    ember_ds_free(&ds);
    const char *bad = fx_text(&f, "hm.csv", "# c\na,b,c\n1,2\n");
    csv_fails(ctx, bad, 0, 0, 0,
              "hm.csv:2: header has 3 names but the data has 2 columns");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* ---- line structure ----------------------------------------------------- */

static void test_text_comments(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "c.csv",
                            "# top\n\n# more\nx,y\n\n1,2\n  # indented\n"
                            "\t \n3,4\n#end");
    const double want[] = {1, 2, 3, 4};
    assert_values(csv_ok(&ds, ctx, p, 0, 0, 2, 2), want, 4);
    assert_string_equal(ember_ds_type(ds)->field[1].name, "y");
    ember_ds_free(&ds);
    /* line numbers count comment and blank lines */
    const char *q = fx_text(&f, "cl.csv", "# c\n\n1,2\n# c\n3\n");
    csv_fails(ctx, q, 0, 0, 0, "cl.csv:5: expected 2 columns, found 1");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_crlf(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "w.csv", "a,b\r\n1,2\r\n\r\n3,4\r\n");
    const double want[] = {1, 2, 3, 4};
    assert_values(csv_ok(&ds, ctx, p, 0, 0, 2, 2), want, 4);
    assert_string_equal(ember_ds_type(ds)->field[1].name, "b");
    ember_ds_free(&ds);
    const char *q = fx_text(&f, "ws.txt", "1 2\r\n3 4\r\n");
    assert_values(csv_ok(&ds, ctx, q, 0, 0, 2, 2), want, 4);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* A carriage return that no newline follows (old Mac line ends) would
 * run rows together, '\r' being a blank: it is refused on its line, in the
 * header, in comments, in data, at the end of the text, at any partition
 * count. */
static void test_text_bare_cr(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    static const struct {
        const char *name, *text, *want;
    } cases[] = {
        {"ws.csv", "1 2\r3 4\r5 6\r", "ws.csv:1: carriage return without a newline"},
        {"c.csv", "1,2\r3,4\r5,6\r", "c.csv:1: carriage return without a newline"},
        {"h.csv", "x,y\r1,2\r3,4\r", "h.csv:1: carriage return without a newline"},
        {"hd.csv", "x,y\n1,2\r3,4\r", "hd.csv:2: carriage return without a newline"},
        {"m.csv", "x,y\n1,2\n3,4\r5,6\n7,8\n", "m.csv:3: carriage return"},
        {"k.csv", "# a\rb\n1,2\n", "k.csv:1: carriage return"},
        {"e.csv", "1,2\r\n3,4\r", "e.csv:2: carriage return"},
        {"b.csv", "1,2\n\r\r\n3,4\n", "b.csv:2: carriage return"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = fx_text(&f, cases[i].name, cases[i].text);
        for (size_t k = 0; k < NPARTS; k++)
            csv_fails(ctx, p, 0, 0, part_counts[k], cases[i].want);
    }
    csv_fails(ctx, fx_text(&f, "d.csv", "1;2\r3;4\r"), ';', 0, 0,
              "d.csv:1: carriage return");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* Files the reader would misread say what they are: gzip, a NUL byte (in
 * the first line or a later one), a header split by other delimiters than
 * its data. */
static void test_text_file_kind_errors(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    const char *z = fx_write(&f, "z.csv", "\x1f\x8b\x08\x00\x00\x00", 6);
    csv_fails(ctx, z, 0, 0, 0, "z.csv: gzip-compressed; decompress it first");
    static const struct {
        const char *name, *text;
        size_t len;
        const char *want;
    } cases[] = {
        {"n1.csv", "1 2\0\n3 4\n", 9, "n1.csv:1: a NUL byte in the line"},
        {"n2.csv", "1,2\n3,4\0\n", 9, "n2.csv:2: a NUL byte in the line"},
        {"n3.csv", "x,y\n1,\0\n", 8, "n3.csv:2: a NUL byte in the line"},
        /* a NUL is named before a bare CR in its line, in the first line
         * (the plan) and in a later one (the parallel pass); a comment
         * with a NUL is no text either */
        {"n4.csv", "E\rM\0\n1,2\n", 9, "n4.csv:1: a NUL byte in the line"},
        {"n5.csv", "1,2\n3\r4,\0\n", 10, "n5.csv:2: a NUL byte in the line"},
        {"n6.csv", "1,2\n# c\0\n3,4\n", 13, "n6.csv:2: a NUL byte in the line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        csv_fails(ctx, fx_write(&f, cases[i].name, cases[i].text, cases[i].len),
                  0, 0, 0, cases[i].want);
    const char *md = fx_text(&f, "md.csv", "x,y\n1 2\n3 4\n");
    csv_fails(ctx, md, 0, 0, 0, "md.csv:1: the header is separated by commas "
              "but the data (line 2) by blanks: use one delimiter");
    const char *mb = fx_text(&f, "mb.csv", "# c\nx y\n1,2\n");
    csv_fails(ctx, mb, 0, 0, 0, "mb.csv:2: the header is separated by blanks "
              "but the data (line 3) by commas");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_one_column(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const char *p = fx_text(&f, "one.csv", "value\n1.5\n-2\n3e-3\n");
    const double want[] = {1.5, -2, 3e-3};
    assert_values(csv_ok(&ds, ctx, p, 0, 0, 3, 1), want, 3);
    ember_type scalar = ember_type_scalar(EMBER_F64);
    assert_true(ember_type_equal(ember_ds_type(ds), &scalar));
    assert_int_equal(ember_ds_type(ds)->cls, EMBER_TYPE_SCALAR);
    ember_ds_free(&ds);
    const char *q = fx_text(&f, "two.csv", "1\n2,3\n");
    csv_fails(ctx, q, ',', -1, 0, "two.csv:2: expected 1 column, found 2");
    /* automatic: "1" has no comma, so fields are blank-separated */
    csv_fails(ctx, q, 0, -1, 0, "two.csv:2: '2,3' is not a number");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_forty_columns(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    sbuf b = {0};
    double want[3 * 40];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 40; c++) {
            want[r * 40 + c] = r * 100 + c + 0.25;
            sb_add(&b, "%s%.2f", c ? "," : "", want[r * 40 + c]);
            if (c == 39)
                sb_add(&b, "\n");
        }
    const char *p = fx_write(&f, "wide.csv", b.s, b.len);
    assert_values(csv_ok(&ds, ctx, p, 0, 0, 3, 40), want, 120);
    const ember_type *t = ember_ds_type(ds);
    assert_int_equal(t->cls, EMBER_TYPE_STRUCT);
    assert_int_equal(t->nfields, 1);
    assert_string_equal(t->field[0].name, "x");
    assert_int_equal(t->field[0].kind, EMBER_F64);
    assert_int_equal(t->field[0].count, 40);
    assert_int_equal(t->size, 320);
    ember_ds_free(&ds);
    free(b.s);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* One line of 50,000 columns (about 300 KB) is fine; 70,000 columns are more
 * than one array field may hold. */
static void test_text_huge_line(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(4);
    ember_ds *ds = NULL;
    sbuf b = {0};
    for (int c = 0; c < 50000; c++)
        sb_add(&b, "%s%d", c ? " " : "", c);
    const char *p = fx_write(&f, "long.txt", b.s, b.len);
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(csv(&ds, ctx, p, 0, 0, 64, msg), EMBER_OK);
    assert_int_equal(ds->u.array.n, 1);
    assert_int_equal(ember_ds_type(ds)->field[0].count, 50000);
    const double *v = (const double *)ds->u.array.data;
    assert_true(v[0] == 0 && v[49999] == 49999);
    ember_ds_free(&ds);
    for (int c = 50000; c < 70000; c++)
        sb_add(&b, " %d", c);
    const char *q = fx_write(&f, "wider.txt", b.s, b.len);
    csv_fails(ctx, q, 0, 0, 0, "70000 columns do not fit");
    free(b.s);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* ---- exact parsing, in parallel ----------------------------------------- */

/* A random finite double of any magnitude. */
static double any_double(uint64_t *s)
{
    for (;;) {
        uint64_t bits = rng_next(s);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (isfinite(x))
            return x;
    }
}

/* Writes rows x 5 columns in several styles and the strtod value of each
 * printed field (in the C locale: the test never sets another). */
static void random_csv(sbuf *b, double *ref, size_t rows, char sep)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    char tok[64];
    for (size_t r = 0; r < rows; r++) {
        if (r % 97 == 5)
            sb_add(b, "# comment %zu\n\n", r);
        for (int c = 0; c < 5; c++) {
            double u = (double)(rng_next(&s) >> 11) / 9007199254740992.0;
            switch (c) {
            case 0: snprintf(tok, sizeof tok, "%.17g", any_double(&s)); break;
            case 1: snprintf(tok, sizeof tok, "%.17g", u * 2000 - 1000); break;
            case 2: snprintf(tok, sizeof tok, "%d", (int)(u * 1e6) - 5); break;
            case 3: snprintf(tok, sizeof tok, "%.6e", (u - 0.5) * 1e-5); break;
            default: snprintf(tok, sizeof tok, "%.25f", u); break;
            }
            ref[r * 5 + c] = strtod(tok, NULL);
            sb_add(b, "%s%s", c ? (sep == ',' ? "," : "  ") : "", tok);
        }
        sb_add(b, r % 3 ? "\n" : "\r\n");
    }
}

static void check_random(char sep, const char *name)
{
    fixture f;
    fx_init(&f);
    const size_t rows = 5000;
    double *ref = malloc(rows * 5 * sizeof *ref);
    assert_non_null(ref);
    sbuf b = {0};
    sb_add(&b, "a%cb%cc%cd%ce\n", sep, sep, sep, sep);
    random_csv(&b, ref, rows, sep);
    const char *p = fx_write(&f, name, b.s, b.len);
    for (size_t t = 0; t < NTHREADS; t++) {
        ember_ctx *ctx = new_ctx(thread_counts[t]);
        for (size_t k = 0; k < NPARTS; k++) {
            ember_ds *ds = NULL;
            char msg[EMBER_MSG_SIZE];
            assert_int_equal(csv(&ds, ctx, p, 0, 0, part_counts[k], msg),
                             EMBER_OK);
            assert_int_equal(ds->u.array.n, rows);
            assert_int_equal(ember_ds_partitions(ds), part_counts[k]);
            assert_values((const double *)ds->u.array.data, ref, rows * 5);
            ember_ds_free(&ds);
        }
        ember_ctx_destroy(&ctx);
    }
    free(b.s);
    free(ref);
    fx_done(&f);
}

static void test_text_random_roundtrip(void **state)
{
    (void)state;
    check_random(',', "random.csv");
}

static void test_text_random_roundtrip_whitespace(void **state)
{
    (void)state;
    check_random(' ', "random.txt");
}

/* Values that need the careful paths: long mantissas, extreme exponents,
 * subnormals, halfway cases, signed zeros. */
static void test_text_hard_numbers(void **state)
{
    (void)state;
    static const char *const toks[] = {
        "0", "-0", "+0.0", ".5", "-.5", "5.", "1e0", "1E+2", "1e-2",
        "123456789012345678901234567890", "0.000000000000000000000000000001",
        "1.7976931348623157e308", "2.2250738585072014e-308", "4.9e-324",
        "1e-400", "9007199254740993", "9007199254740992.5000000000000001",
        "2.4703282292062327e-324", "2.4703282292062328e-324",
        "8.1467402225766997475e+24", "295.99517527365659930",
        "1.00000000000000011102230246251565404236316680908203125",
        "00000000000000000000000000001.5", "7.2057594037927933e16",
    };
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    size_t n = sizeof toks / sizeof toks[0];
    double ref[sizeof toks / sizeof toks[0]];
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        ref[i] = strtod(toks[i], NULL);
        sb_add(&b, "%s\n", toks[i]);
    }
    const char *p = fx_write(&f, "hard.csv", b.s, b.len);
    ember_ds *ds = NULL;
    assert_values(csv_ok(&ds, ctx, p, 0, -1, n, 1), ref, n);
    ember_ds_free(&ds);
    free(b.s);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* Digit strings of every length from 1 to 24, with leading zeros, the
 * point anywhere and an exponent or none, against strtod: the digits are
 * read 8 at a time after the first significant one, up to 19 kept. */
static void test_text_digit_runs(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    enum { N = 4000 };
    double *ref = malloc(N * sizeof *ref);
    assert_non_null(ref);
    sbuf b = {0};
    uint64_t seed = 99;
    for (size_t i = 0; i < N; i++) {
        char tok[64];
        size_t len = 1 + i % 24, zeros = rng_next(&seed) % 4, at = 0;
        size_t point = rng_next(&seed) % (len + 2); /* len + 1: none */
        if (i % 5 == 0)
            tok[at++] = '-';
        for (size_t z = 0; z < zeros && z < len; z++)
            tok[at++] = '0';
        for (size_t k = zeros; k < len; k++) {
            if (k == point)
                tok[at++] = '.';
            tok[at++] = (char)('0' + (k == zeros ? 1 + rng_next(&seed) % 9
                                                 : rng_next(&seed) % 10));
        }
        if (i % 3 == 0)
            at += (size_t)snprintf(tok + at, sizeof tok - at, "e%d",
                                   (int)(rng_next(&seed) % 60) - 30);
        tok[at] = '\0';
        ref[i] = strtod(tok, NULL);
        sb_add(&b, "%s\n", tok);
    }
    const char *p = fx_write(&f, "runs.csv", b.s, b.len);
    ember_ds *ds = NULL;
    assert_values(csv_ok(&ds, ctx, p, 0, -1, N, 1), ref, N);
    ember_ds_free(&ds);
    free(b.s);
    free(ref);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* A locale whose decimal point is a comma. An installed one if there is;
 * else one compiled here with localedef (part of glibc, always present)
 * from a definition of LC_NUMERIC alone, loaded through LOCPATH. */
static locale_t comma_locale(const char *dir)
{
    const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                 "de_DE", NULL};
    locale_t comma = (locale_t)0;
    for (int i = 0; names[i] && comma == (locale_t)0; i++)
        comma = newlocale(LC_NUMERIC_MASK, names[i], (locale_t)0);
    if (comma != (locale_t)0)
        return comma;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "printf 'LC_NUMERIC\\ndecimal_point \"<U002C>\"\\n"
             "thousands_sep \"\"\\ngrouping -1\\nEND LC_NUMERIC\\n' > %s/comma.def && "
             "localedef -c -i %s/comma.def %s/xx_XX > /dev/null 2>&1; "
             "test -f %s/xx_XX/LC_NUMERIC", dir, dir, dir, dir);
    if (system(cmd) != 0)
        return (locale_t)0;
    setenv("LOCPATH", dir, 1);
    comma = newlocale(LC_NUMERIC_MASK, "xx_XX", (locale_t)0);
    unsetenv("LOCPATH");
    return comma;
}

/* strtod, used for the hard cases, must not see the caller's locale. The
 * locale is set for this thread only (setlocale leaks under LeakSanitizer)
 * and the team has one thread, which is this one. */
static void test_text_locale_independent(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    locale_t comma = comma_locale(f.dir);
    assert_true(comma != (locale_t)0);
    ember_ctx *ctx = new_ctx(1);
    const char *p = fx_text(&f, "l.csv", "1.2345678901234567890123,2.5\n");
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    locale_t old = uselocale(comma);
    assert_true(strtod("1,5", NULL) == 1.5); /* the locale is in force */
    int rc = csv(&ds, ctx, p, 0, 0, 0, msg);
    uselocale(old);
    freelocale(comma);
    assert_int_equal(rc, EMBER_OK);
    const double want[] = {1.2345678901234567, 2.5};
    assert_values((const double *)ds->u.array.data, want, 2);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    char rm[640];
    snprintf(rm, sizeof rm, "rm -rf %s/comma.def %s/xx_XX", f.dir, f.dir);
    assert_int_equal(system(rm), 0);
    fx_done(&f);
}

/* ---- errors ------------------------------------------------------------- */

/* rows lines of "i,i,i"; the lines named in bad (1-based, ascending, 0
 * ends) have two columns instead. */
static const char *ragged_file(fixture *f, size_t rows, const size_t *bad)
{
    sbuf b = {0};
    for (size_t i = 1; i <= rows; i++) {
        if (*bad == i) {
            sb_add(&b, "%zu,%zu\n", i, i);
            bad++;
        } else {
            sb_add(&b, "%zu,%zu,%zu\n", i, i, i);
        }
    }
    const char *p = fx_write(f, "ragged.csv", b.s, b.len);
    free(b.s);
    return p;
}

static void test_text_ragged_rows(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    /* bad lines deep in the file: later chunks fail first and the smallest
     * line number must still win */
    const size_t bad[] = {15001, 19000, 0};
    const char *p = ragged_file(&f, 20000, bad);
    for (size_t t = 0; t < NTHREADS; t++) {
        ember_ctx *ctx = new_ctx(thread_counts[t]);
        for (size_t k = 0; k < NPARTS; k++)
            csv_fails(ctx, p, 0, 0, part_counts[k],
                      "ragged.csv:15001: expected 3 columns, found 2");
        ember_ctx_destroy(&ctx);
    }
    ember_ctx *ctx = new_ctx(2);
    const char *q = fx_text(&f, "more.csv", "1 2\n3 4 5 6\n");
    csv_fails(ctx, q, 0, 0, 0, "more.csv:2: expected 2 columns, found 4");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_not_a_number(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"1,2\n3,abc\n", "bad.csv:2: 'abc' is not a number"},
        {"1,2\n3,1.5x\n", "bad.csv:2: '1.5x' is not a number"},
        {"1,2\n3,1e\n", "bad.csv:2: '1e' is not a number"},
        {"1,2\n--1,3\n", "bad.csv:2: '--1' is not a number"},
        {"1,2\n0x10,3\n", "bad.csv:2: '0x10' is not a number"},
        {"1,2\n1 2,3\n", "bad.csv:2: '1 2' is not a number"},
        {"1,2\n.,3\n", "bad.csv:2: '.' is not a number"},
        {"1,2\n3,4,\n", "bad.csv:2: expected 2 columns, found 3"},
        {"1,2,\n3,4,5\n", "bad.csv:1: column 3 is empty"},
        {"1,2,3\n4, ,6\n", "bad.csv:2: column 2 is empty"},
        {"1,2\n,4\n", "bad.csv:2: column 1 is empty"},
        {"1 2\n3 nan(1)\n", "bad.csv:2: 'nan(1)' is not a number"},
    };
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = fx_text(&f, "bad.csv", cases[i].text);
        csv_fails(ctx, p, 0, -1, 0, cases[i].want);
        unlink(p);
        f.n--;
    }
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_nan_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"1,2\n3,nan\n", "nan.csv:2: 'nan' is not finite"},
        {"1,2\n3,-NaN\n", "nan.csv:2: '-NaN' is not finite"},
        {"1,2\ninf,3\n", "nan.csv:2: 'inf' is not finite"},
        {"1,2\n3,-Infinity\n", "nan.csv:2: '-Infinity' is not finite"},
        {"1,2\n3,1e999\n", "nan.csv:2: '1e999' is too large for a double"},
    };
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = fx_text(&f, "nan.csv", cases[i].text);
        csv_fails(ctx, p, 0, 0, 0, cases[i].want);
        unlink(p);
        f.n--;
    }
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* A file is mapped, so the byte after it must read as the end of the text:
 * a number that needs strtod (more than 19 digits) ending a file of whole
 * pages, with no newline, is read and stops there. */
static void test_text_number_ends_page(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = 2 * page;
    const char *last = "0.1000000000000000000000000000000000001";
    char *text = malloc(size);
    assert_non_null(text);
    memset(text, '#', size);
    text[0] = '\n'; /* a first line of '#'s is a comment */
    size_t tail = strlen(last);
    text[size - tail - 1] = '\n';
    memcpy(text + size - tail, last, tail);
    /* lines of "#" before it: comments */
    for (size_t i = 64; i < size - tail - 1; i += 64)
        text[i] = '\n';
    const char *path = fx_write(&f, "page.csv", text, size);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL;
    const double *v = csv_ok(&ds, ctx, path, 0, -1, 1, 1);
    assert_true(v[0] == 0.1);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    free(text);
    fx_done(&f);
}

/* Another process rewrites the file while it is read, rows to comments and
 * back: each read gives rows that were in the file, all of them set, or
 * EMBER_EIO "changed while it was read" (the parse may have failed on a
 * line that changed between two looks, or counted other rows than it
 * then found), never a write past its records or a row left unset. */
static void test_text_csv_file_changes(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    size_t lines = 1 << 15; /* two chunks: a row too many in the last one
                               would be written past the records */
    char *a = malloc(4 * lines), *b = malloc(4 * lines);
    assert_true(a && b);
    for (size_t i = 0; i < lines; i++) {
        memcpy(a + 4 * i, "1,2\n", 4);
        memcpy(b + 4 * i, i % 3 ? "3,4\n" : "#c \n", 4);
    }
    const char *path = fx_write(&f, "changes.csv", a, 4 * lines);
    pid_t writer = fork();
    assert_true(writer >= 0);
    if (writer == 0) {
        int fd = open(path, O_WRONLY);
        for (unsigned i = 0; fd >= 0 && getppid() != 1; i++)
            if (pwrite(fd, i % 2 ? a : b, 4 * lines, 0) != (ssize_t)(4 * lines))
                _exit(1);
        _exit(1);
    }
    ember_ctx *ctx = new_ctx(2);
    int changed = 0;
    for (int r = 0; r < 400; r++) {
        ember_ds *ds = NULL;
        char msg[EMBER_MSG_SIZE];
        int rc = csv(&ds, ctx, path, ',', -1, 0, msg);
        if (rc == EMBER_EIO) {
            assert_msg_has(msg, "changed while it was read");
            changed++;
            continue;
        }
        if (rc != EMBER_OK)
            fail_msg("ember_read_csv: %s (%s)", ember_strerror(rc), msg);
        const double *v = (const double *)ds->u.array.data;
        size_t n = ds->u.array.n;
        assert_true(n >= lines * 2 / 3 && n <= lines);
        for (size_t i = 0; i < n; i++)
            if (!((v[2 * i] == 1 && v[2 * i + 1] == 2) ||
                  (v[2 * i] == 3 && v[2 * i + 1] == 4)))
                fail_msg("row %zu of %zu: %g,%g", i, n, v[2 * i], v[2 * i + 1]);
        ember_ds_free(&ds);
    }
    kill(writer, SIGKILL);
    waitpid(writer, NULL, 0);
    printf("    (%d of 400 reads saw the file change)\n", changed);
    ember_ctx_destroy(&ctx);
    free(a);
    free(b);
    fx_done(&f);
}

static void test_text_missing_file(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(1);
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE], path[400], want[450];
    snprintf(path, sizeof path, "%s/nothing.csv", f.dir);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_int_equal(ember_read_csv(&ds, ctx, path, NULL, msg),
                     EMBER_ENOTFOUND);
    assert_string_equal(msg, want);
    assert_null(ds);
    assert_int_equal(ember_read_lines(&ds, ctx, path, NULL, msg),
                     EMBER_ENOTFOUND);
    assert_string_equal(msg, want);
    assert_int_equal(ember_read_csv(&ds, ctx, f.dir, NULL, msg), EMBER_EINVAL);
    assert_msg_has(msg, "is a directory");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_empty_file(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    const char *p = fx_text(&f, "empty.csv", "");
    for (size_t k = 0; k < NPARTS; k++)
        csv_fails(ctx, p, 0, 0, part_counts[k], "empty.csv: no data rows");
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_read_lines(&ds, ctx, p, NULL, msg), EMBER_OK);
    assert_int_equal(ds->u.array.n, 0);
    size_t size = 99;
    const char *text = ember_lines_text(ds, &size);
    assert_non_null(text);
    assert_int_equal(size, 0);
    assert_string_equal(text, "");
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_only_comments(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    const char *p = fx_text(&f, "c.csv", "# one\n\n   \n# two");
    csv_fails(ctx, p, 0, 0, 0, "c.csv: no data rows");
    const char *q = fx_text(&f, "h.csv", "# c\nx,y\n# c\n");
    csv_fails(ctx, q, 0, 0, 0, "h.csv: no data rows");
    csv_fails(ctx, q, 0, 1, 0, "h.csv: no data rows");
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_null_arguments(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(1);
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    const char *p = fx_text(&f, "a.csv", "1\n");
    char *data = NULL;
    size_t size = 0;
    assert_int_equal(ember_read_csv(NULL, ctx, p, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_csv(&ds, NULL, p, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_csv(&ds, ctx, NULL, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_lines(NULL, ctx, p, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_lines(&ds, NULL, p, NULL, msg), EMBER_EINVAL);
    assert_int_equal(ember_read_lines(&ds, ctx, NULL, NULL, NULL),
                     EMBER_EINVAL);
    assert_int_equal(ember__read_file(ctx, NULL, &data, &size, msg),
                     EMBER_EINVAL);
    assert_int_equal(ember__read_file(NULL, p, &data, &size, msg),
                     EMBER_EINVAL);
    assert_null(ember_lines_text(NULL, &size));
    assert_int_equal(csv(&ds, ctx, p, ':', 0, 0, msg), EMBER_EINVAL);
    assert_msg_has(msg, "delimiter");
    assert_null(ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* ---- lines -------------------------------------------------------------- */

static void check_lines(ember_ctx *ctx, const char *path, const char *text,
                        size_t size, size_t parts)
{
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    ember_text_opts o = {0, 0, parts};
    assert_int_equal(ember_read_lines(&ds, ctx, path, &o, msg), EMBER_OK);
    size_t got_size = 0;
    const char *got = ember_lines_text(ds, &got_size);
    assert_int_equal(got_size, size);
    assert_memory_equal(got, text, size);
    const ember_line *l = (const ember_line *)ds->u.array.data;
    size_t n = 0;
    /* serial reference */
    for (size_t start = 0; start < size; n++) {
        size_t end = start;
        while (end < size && text[end] != '\n')
            end++;
        size_t len = end - start;
        if (end < size && len && text[end - 1] == '\r')
            len--;
        assert_true(n < ds->u.array.n);
        if (l[n].offset != start || l[n].length != len)
            fail_msg("line %zu: got {%llu, %llu}, want {%zu, %zu}", n,
                     (unsigned long long)l[n].offset,
                     (unsigned long long)l[n].length, start, len);
        start = end + 1;
    }
    assert_int_equal(ds->u.array.n, n);
    ember_ds_free(&ds);
}

static void test_text_lines_reference(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    uint64_t s = 12345;
    sbuf b = {0};
    for (int i = 0; i < 3000; i++) {
        size_t len = rng_next(&s) % 90;
        if (i == 1500)
            len = 1 << 20; /* one huge line */
        for (size_t k = 0; k < len; k++)
            sb_add(&b, "%c", (char)('a' + rng_next(&s) % 26));
        sb_add(&b, rng_next(&s) % 4 ? "\n" : "\r\n");
    }
    sb_add(&b, "last line, no newline");
    const char *p = fx_write(&f, "lines.txt", b.s, b.len);
    for (size_t t = 0; t < NTHREADS; t++) {
        ember_ctx *ctx = new_ctx(thread_counts[t]);
        for (size_t k = 0; k < NPARTS; k++)
            check_lines(ctx, p, b.s, b.len, part_counts[k]);
        ember_ctx_destroy(&ctx);
    }
    free(b.s);
    fx_done(&f);
}

static void test_text_lines_last_line(void **state)
{
    (void)state;
    static const char *const texts[] = {"a\nb", "a\n", "\n", "\n\n",
                                        "x\r\ny", "only", "a\r", "\r\n"};
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *p = fx_text(&f, "l.txt", texts[i]);
        for (size_t k = 0; k < NPARTS; k++)
            check_lines(ctx, p, texts[i], strlen(texts[i]), part_counts[k]);
        unlink(p);
        f.n--;
    }
    /* two lines for "a\nb", one for "a\n" */
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    const char *p = fx_text(&f, "ab.txt", "a\nbc");
    assert_int_equal(ember_read_lines(&ds, ctx, p, NULL, msg), EMBER_OK);
    assert_int_equal(ds->u.array.n, 2);
    const ember_line *l = (const ember_line *)ds->u.array.data;
    assert_int_equal(l[1].offset, 2);
    assert_int_equal(l[1].length, 2);
    assert_string_equal(ember_ds_name(ds), "ab.txt");
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

static void test_text_lines_type(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    ember_ds *ds = NULL, *other = NULL;
    char msg[EMBER_MSG_SIZE];
    const char *p = fx_text(&f, "t.txt", "1\n2\n");
    assert_int_equal(ember_read_lines(&ds, ctx, p, NULL, msg), EMBER_OK);
    const ember_type *t = ember_ds_type(ds);
    assert_int_equal(t->nfields, 2);
    assert_string_equal(t->field[0].name, "offset");
    assert_string_equal(t->field[1].name, "length");
    assert_int_equal(t->field[0].kind, EMBER_U64);
    assert_int_equal(t->size, sizeof(ember_line));
    assert_int_equal(ember_read_csv(&other, ctx, p, NULL, msg), EMBER_OK);
    assert_null(ember_lines_text(other, NULL));
    ember_ds_free(&other);
    ember_ds_free(&ds);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* ---- the loader --------------------------------------------------------- */

static void test_text_read_file(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(1);
    const char bytes[] = "ab\0cd\n";
    const char *p = fx_write(&f, "bin", bytes, sizeof bytes - 1);
    char *data = NULL, msg[EMBER_MSG_SIZE];
    size_t size = 0;
    assert_int_equal(ember__read_file(ctx, p, &data, &size, msg), EMBER_OK);
    assert_int_equal(size, 6);
    assert_memory_equal(data, bytes, 7); /* NUL-terminated */
    ember__free(ctx, data);
    assert_int_equal(ember__read_file(ctx, f.dir, &data, &size, msg),
                     EMBER_EINVAL);
    assert_null(data);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* A pipe has no size: the loader grows its buffer until end of file. */
static void test_text_read_pipe(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(1);
    char fifo[400];
    snprintf(fifo, sizeof fifo, "%s/fifo", f.dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const size_t total = 300000;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *fp = fopen(fifo, "wb");
        for (size_t i = 0; fp && i < total; i++)
            fputc('0' + (int)(i % 10), fp);
        _exit(fp && fclose(fp) == 0 ? 0 : 1);
    }
    char *data = NULL, msg[EMBER_MSG_SIZE];
    size_t size = 0;
    int rc = ember__read_file(ctx, fifo, &data, &size, msg);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_int_equal(rc, EMBER_OK);
    assert_int_equal(size, total);
    assert_int_equal(data[total], '\0');
    assert_int_equal(data[total - 1], '0' + (int)((total - 1) % 10));
    ember__free(ctx, data);
    unlink(fifo);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

/* ---- allocation failure ------------------------------------------------- */

typedef struct {
    long calls;    /* allocations so far */
    long fail_at;  /* fail this one (0: never) */
    long live;
} oom_state;

static void *oom_malloc(size_t size, void *ud)
{
    oom_state *s = ud;
    long n;
#pragma omp atomic capture
    n = ++s->calls;
    if (n == s->fail_at)
        return NULL;
    void *p = malloc(size);
    if (p) {
#pragma omp atomic
        s->live++;
    }
    return p;
}

static void *oom_realloc(void *ptr, size_t size, void *ud)
{
    oom_state *s = ud;
    long n;
#pragma omp atomic capture
    n = ++s->calls;
    if (n == s->fail_at)
        return NULL;
    void *p = realloc(ptr, size);
    if (p && !ptr) {
#pragma omp atomic
        s->live++;
    }
    return p;
}

static void oom_free(void *ptr, void *ud)
{
    oom_state *s = ud;
    if (ptr) {
#pragma omp atomic
        s->live--;
    }
    free(ptr);
}

typedef int (*reader_fn)(ember_ds **, ember_ctx *, const char *,
                         const ember_text_opts *, char *);

/* Fails allocation 1, 2, ... of one read until it succeeds: every failure
 * is EMBER_ENOMEM and leaves nothing allocated. */
static void fail_each_allocation(reader_fn read, const char *path)
{
    oom_state s = {0, 0, 0};
    ember_allocator a = {oom_malloc, oom_realloc, oom_free, &s};
    ember_ctx_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 2;
    o.allocator = &a;
    ember_ctx *ctx = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember_ctx_create(&ctx, &o, msg), EMBER_OK);
    long base = s.live;
    ember_text_opts t = {0, 0, 3};
    for (long n = 1;; n++) {
        ember_ds *ds = NULL;
        s.calls = 0;
        s.fail_at = n;
        int rc = read(&ds, ctx, path, &t, msg);
        s.fail_at = 0;
        if (rc == EMBER_OK) {
            assert_true(n > 1);
            ember_ds_free(&ds);
            assert_int_equal(s.live, base);
            break;
        }
        if (rc != EMBER_ENOMEM)
            fail_msg("allocation %ld failed: got %s (%s)", n,
                     ember_strerror(rc), msg);
        assert_null(ds);
        assert_int_equal(s.live, base);
        assert_true(n < 100);
    }
    ember_ctx_destroy(&ctx);
    assert_int_equal(s.live, 0);
}

static void test_text_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    const char *p = fx_text(&f, "m.csv", "a,b\n1,2\n3,4\n5,6\n");
    fail_each_allocation(ember_read_csv, p);
    fail_each_allocation(ember_read_lines, p);
    fx_done(&f);
}

/* ---- through the engine ------------------------------------------------- */

static void test_text_collect(void **state)
{
    (void)state;
    fixture f;
    fx_init(&f);
    ember_ctx *ctx = new_ctx(2);
    sbuf b = {0};
    for (int i = 0; i < 1000; i++)
        sb_add(&b, "%d,-%d.5\n", i, i);
    const char *p = fx_write(&f, "c.csv", b.s, b.len);
    ember_ds *ds = NULL;
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(csv(&ds, ctx, p, 0, 0, 7, msg), EMBER_OK);
    double *v = NULL;
    size_t n = 0;
    assert_int_equal(ember_collect_alloc(ds, (void **)&v, &n, msg), EMBER_OK);
    assert_int_equal(n, 1000);
    for (int i = 0; i < 1000; i++)
        assert_true(v[2 * i] == i && v[2 * i + 1] == -i - 0.5);
    ember_free(ctx, v);
    ember_ds_free(&ds);
    free(b.s);
    ember_ctx_destroy(&ctx);
    fx_done(&f);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_comma),
        cmocka_unit_test(test_text_whitespace),
        cmocka_unit_test(test_text_tab),
        cmocka_unit_test(test_text_semicolon),
        cmocka_unit_test(test_text_header_auto),
        cmocka_unit_test(test_text_header_names),
        cmocka_unit_test(test_text_comments),
        cmocka_unit_test(test_text_crlf),
        cmocka_unit_test(test_text_bare_cr),
        cmocka_unit_test(test_text_file_kind_errors),
        cmocka_unit_test(test_text_one_column),
        cmocka_unit_test(test_text_forty_columns),
        cmocka_unit_test(test_text_huge_line),
        cmocka_unit_test(test_text_random_roundtrip),
        cmocka_unit_test(test_text_random_roundtrip_whitespace),
        cmocka_unit_test(test_text_hard_numbers),
        cmocka_unit_test(test_text_digit_runs),
        cmocka_unit_test(test_text_locale_independent),
        cmocka_unit_test(test_text_ragged_rows),
        cmocka_unit_test(test_text_not_a_number),
        cmocka_unit_test(test_text_nan_rejected),
        cmocka_unit_test(test_text_number_ends_page),
        cmocka_unit_test(test_text_csv_file_changes),
        cmocka_unit_test(test_text_missing_file),
        cmocka_unit_test(test_text_empty_file),
        cmocka_unit_test(test_text_only_comments),
        cmocka_unit_test(test_text_null_arguments),
        cmocka_unit_test(test_text_lines_reference),
        cmocka_unit_test(test_text_lines_last_line),
        cmocka_unit_test(test_text_lines_type),
        cmocka_unit_test(test_text_read_file),
        cmocka_unit_test(test_text_read_pipe),
        cmocka_unit_test(test_text_out_of_memory),
        cmocka_unit_test(test_text_collect),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
