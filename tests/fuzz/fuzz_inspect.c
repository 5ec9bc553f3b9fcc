/* fuzz_inspect.c: what ember-inspect does with a file beyond the library's
 * ember_checkpoint_inspect (fuzzed by fuzz_checkpoint.c): the sniffing of
 * a file that does not verify (its first bytes: HDF5, ember's damaged
 * header, text as UTF-8, an edit copy's name), the walk of a sealed ember
 * file that is no checkpoint (HDF5 links and "program" attributes), and
 * the text and --json reports (algorithms/ember-inspect.c).
 *
 * Input: one byte of options, then the file.
 *   bit 0  seal the file first (HDF5's signature put at byte 512 when it
 *          is long enough, then ember's whole-file checksum written), so
 *          that mutations of a sealed file reach the HDF5 walk instead of
 *          ending at the checksum
 *   bit 1  --json
 *   bit 2  name the file as the copy a change works on
 *          ("f.h5.ember-edit-12-3", docs/formats.md)
 *
 * ember-inspect's functions are static in the program, so this file
 * includes its source (its main renamed); stdout and stderr go to memory
 * streams while it runs. What must hold: the status is 0, 1 or 2; --json
 * prints exactly one line, a JSON object whose strings are valid UTF-8
 * (a script reads it: a byte that is not UTF-8 makes a strict parser
 * refuse the whole report); the text report is not empty; no HDF5
 * identifier stays open.
 */
#include <stdio.h>

static FILE *out_stream, *err_stream;
#undef stdout
#undef stderr
#define stdout out_stream
#define stderr err_stream
#define main ember_inspect_main
/* a hang of libhdf5 in ember_file's child is this input's verdict well
 * within libFuzzer's -timeout */
#define INSPECT_HDF5_SECONDS 3

#include "../../algorithms/ember-inspect.c"

#undef main
#undef stdout
#undef stderr

#include "fuzz.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- a strict JSON check (RFC 8259; strings valid UTF-8) --------------------- */

static const char *j_value(const char *p, int depth);

static const char *j_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Length of one valid UTF-8 sequence at p (no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 when invalid. */
static size_t j_utf8(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

static const char *j_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        const unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else {
                return NULL;
            }
            continue;
        }
        size_t n = j_utf8((const unsigned char *)p);
        if (!n)
            return NULL;
        p += n;
    }
    return p + 1;
}

static const char *j_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *j_list(const char *p, char close, int object, int depth)
{
    p = j_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if (!(p = j_string(j_ws(p))))
                return NULL;
            p = j_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if (!(p = j_value(p, depth + 1)))
            return NULL;
        p = j_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *j_value(const char *p, int depth)
{
    p = j_ws(p);
    if (depth > 64)
        return NULL;
    if (*p == '{')
        return j_list(p, '}', 1, depth);
    if (*p == '[')
        return j_list(p, ']', 0, depth);
    if (*p == '"')
        return j_string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return j_number(p);
}

/* ---- the harness -------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int seal = data[0] & 1;
    opt_json = (data[0] & 2) != 0;
    const char *name = (data[0] & 4) ? "f.h5.ember-edit-12-3" : "f.h5";
    size_t n = size - 1;
    unsigned char *buf = malloc(n + 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, data + 1, n);
    if (seal && n >= EMBER__FSUM_BLOCK + 8)
        memcpy(buf + EMBER__FSUM_BLOCK, ember__hdf5_sig, 8);
    char path[8192];
    snprintf(path, sizeof path, "%s", fuzz_write(name, buf, n));
    free(buf);
    char msg[EMBER_MSG_SIZE];
    if (seal && n >= EMBER__FSUM_BLOCK + 8 && ember__fsum_seal(path, msg) != EMBER_OK)
        fuzz_fail("cannot seal the input", msg);

    char *out = NULL, *err = NULL;
    size_t out_len = 0, err_len = 0;
    out_stream = open_memstream(&out, &out_len);
    err_stream = open_memstream(&err, &err_len);
    if (!out_stream || !err_stream)
        fuzz_fail("open_memstream", NULL);
    ember_ctx *ctx = fuzz_ctx();
    int status = inspect_file(ctx, path);
    ember_ctx_destroy(&ctx);
    fclose(out_stream);
    fclose(err_stream);
    out_stream = err_stream = NULL;
    if (getenv("EMBER_FUZZ_VERBOSE"))
        fprintf(stderr, "  inspect_file: %d\n%s%s", status, out, err);

    if (status < 0 || status > 2)
        fuzz_fail("ember-inspect returned no exit status", out);
    if (status != 2 && out_len == 0)
        fuzz_fail("ember-inspect printed no report", err);
    if (opt_json && status != 2) {
        const char *end = out[0] == '{' ? j_value(out, 0) : NULL;
        if (!end || strcmp(end, "\n") != 0)
            fuzz_fail("--json printed something that is not one line of a JSON object",
                      out);
    }
    free(out);
    free(err);
    fuzz_remove(name);
    fuzz_check_h5();
    return 0;
}
