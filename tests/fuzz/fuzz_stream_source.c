/* fuzz_stream_source.c: a stream's file source (src/stream_source.c), the
 * text a stream (ember-stream-wordcount) reads: the listing of the source
 * directory (ember__src_list), the read of a batch's files into one text
 * (ember__src_read) and its lines dataset (ember__src_lines).
 *
 * Input: one byte of options, one separator byte, then the files' bytes,
 * split at the separator into the files (the last one takes the rest).
 *   bits 0-1  files - 1 (1..4), named f0, f1, ... (so listed in that order)
 *   bits 2-4  partitions of the lines (0: the reader's choice)
 *   bits 5-6  what happens to the last file between listing and reading:
 *             0 nothing, 1 a byte appended, 2 its last byte cut, 3 removed;
 *             1 to 3 must fail naming it (an empty file cut stays as it was)
 *   bit  7    the directory also holds ".hidden" and "x.tmp", which the
 *             listing must skip
 *
 * What must hold: the listing gives exactly the files, in name order,
 * with their sizes; the text is each file followed by a '\n' where it
 * lacks one, its offsets where each file starts, its hashes the XXH3-64 of
 * each file; the lines are the text cut at each '\n', less one '\r' before
 * it, and the same whatever the partition count.
 *
 * The lines then go through ember-stream-wordcount's batch function
 * (wordcount_batch, count_words: the words of a partition's text, split
 * at ASCII white space, counted in a hash table). Its source is included
 * (its main renamed): every record must name a word of the text (bytes
 * without white space, between white space or the text's ends), its key
 * be ember_stream_hash of those bytes, and the counts add up to the words
 * of the text counted here byte by byte.
 */
#define main wordcount_main
#include "../../algorithms/ember-stream-wordcount.c"
#undef main

#include "fuzz.h"

#include "internal.h"
#include "stream_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Runs the word count's batch function on lines (of text, size bytes). */
static void check_words(ember_ctx *ctx, ember_ds *lines, const char *text, size_t size)
{
    char msg[EMBER_MSG_SIZE];
    wc_query q;
    if (wc_type(&q.type))
        fuzz_fail("cannot make the word count's record type", NULL);
    ember_stream_batch b;
    memset(&b, 0, sizeof b);
    b.text = text;
    b.text_size = size;
    ember_ds *words = NULL;
    int rc = wordcount_batch(&words, lines, &b, &q, msg);
    fuzz_check_msg(rc, msg, "wordcount_batch");
    wc_rec *r = NULL;
    size_t n = 0;
    if (rc == EMBER_OK)
        rc = ember_collect_alloc(words, (void **)&r, &n, msg);
    fuzz_check_msg(rc, msg, "ember_collect_alloc (words)");
    if (rc == EMBER_OK) {
        uint64_t counted = 0, want = 0;
        for (size_t i = 0; i < n; i++) {
            if (r[i].length == 0 || r[i].offset > size || r[i].length > size - r[i].offset)
                fuzz_fail("a word outside the text, or empty", NULL);
            const unsigned char *w = (const unsigned char *)text + r[i].offset;
            for (size_t k = 0; k < r[i].length; k++)
                if (is_space[w[k]])
                    fuzz_fail("a word holds white space", NULL);
            if ((r[i].offset && !is_space[w[-1]]) ||
                (r[i].offset + r[i].length < size && !is_space[w[r[i].length]]))
                fuzz_fail("a word is part of a longer one", NULL);
            if (r[i].key != ember_stream_hash(w, r[i].length))
                fuzz_fail("a word's key is not its hash", NULL);
            if (r[i].count <= 0)
                fuzz_fail("a word counted zero or fewer times", NULL);
            counted += (uint64_t)r[i].count;
        }
        for (size_t k = 0; k < size; k++)
            want += !is_space[(unsigned char)text[k]] &&
                    (k == 0 || is_space[(unsigned char)text[k - 1]]);
        if (counted != want)
            fuzz_fail("the counts do not add up to the words of the text", NULL);
    }
    ember_free(ctx, r);
    ember_ds_free(&words);
}

/* Checks the lines of text (size bytes) in partitions parts; the count. */
static size_t check_lines(ember_ctx *ctx, const char *text, size_t size, size_t parts)
{
    char msg[EMBER_MSG_SIZE];
    char *copy = ember__malloc(ctx, size + 1);
    if (!copy)
        fuzz_fail("out of memory for the text", NULL);
    memcpy(copy, text, size + 1);
    ember_ds *ds = NULL;
    int rc = ember__src_lines(&ds, ctx, copy, size, parts, "lines", msg);
    fuzz_check_msg(rc, msg, "ember__src_lines");
    if (rc)
        return (size_t)-1;
    size_t tsize = 0;
    const char *t = ember_lines_text(ds, &tsize);
    if (tsize != size || memcmp(t, text, size) != 0)
        fuzz_fail("the lines dataset holds another text", NULL);
    ember_line *l = NULL;
    size_t n = 0;
    rc = ember_collect_alloc(ds, (void **)&l, &n, msg);
    fuzz_check_msg(rc, msg, "ember_collect_alloc (lines)");
    size_t at = 0, i = 0;
    for (; rc == EMBER_OK && at < size; i++) {
        const char *nl = memchr(text + at, '\n', size - at);
        size_t end = nl ? (size_t)(nl - text) : size;
        size_t len = end - at;
        if (nl && len && text[end - 1] == '\r')
            len--;
        if (i >= n)
            fuzz_fail("fewer lines than the text has", NULL);
        if (l[i].offset != at || l[i].length != len)
            fuzz_fail("a line is not the text between two line ends", NULL);
        at = end + 1;
    }
    if (rc == EMBER_OK && i != n)
        fuzz_fail("more lines than the text has", NULL);
    ember_free(ctx, l);
    if (rc == EMBER_OK)
        check_words(ctx, ds, text, size);
    ember_ds_free(&ds);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t nfiles = (size_t)(data[0] & 3) + 1;
    size_t parts = (data[0] >> 2) & 7;
    int change = (data[0] >> 5) & 3;
    int ignored = (data[0] & 0x80) != 0;
    uint8_t sep = data[1];
    const uint8_t *body = data + 2;
    size_t left = size - 2;

    fuzz_remove("src");
    char dir[8192];
    snprintf(dir, sizeof dir, "%s", fuzz_path("src"));
    if (mkdir(dir, 0700) != 0)
        fuzz_fail("cannot make the source directory", dir);
    const uint8_t *piece[4];
    size_t len[4];
    for (size_t i = 0; i < nfiles; i++) {
        const uint8_t *cut = i + 1 < nfiles && left ? memchr(body, sep, left) : NULL;
        piece[i] = body;
        len[i] = cut ? (size_t)(cut - body) : left;
        body += cut ? len[i] + 1 : left;
        left -= cut ? len[i] + 1 : left;
        char name[16];
        snprintf(name, sizeof name, "src/f%zu", i);
        fuzz_write(name, piece[i], len[i]);
    }
    if (ignored) {
        fuzz_write("src/.hidden", "a\n", 2);
        fuzz_write("src/x.tmp", "b\n", 2);
    }

    ember_ctx *ctx = fuzz_ctx();
    char msg[EMBER_MSG_SIZE], seen[NAME_MAX + 1] = "";
    ember__sfile *files = NULL;
    size_t n = 0;
    int rc = ember__src_list(ctx, dir, NULL, NULL, seen, &files, &n, msg);
    fuzz_check_msg(rc, msg, "ember__src_list");
    if (rc)
        fuzz_fail("a directory of plain files does not list", msg);
    if (n != nfiles)
        fuzz_fail("the listing does not give exactly the files", NULL);
    for (size_t i = 0; i < n; i++) {
        char want[24];
        snprintf(want, sizeof want, "f%zu", i);
        if (strcmp(files[i].name, want) != 0 || files[i].size != len[i])
            fuzz_fail("a listed file with another name or size", files[i].name);
    }

    char last[8300]; /* the directory and "/f<i>" */
    snprintf(last, sizeof last, "%s/f%zu", dir, nfiles - 1);
    int must_fail = change == 1 || change == 3 || (change == 2 && len[nfiles - 1]);
    if (change == 1) {
        FILE *f = fopen(last, "ab");
        if (!f || fputc('x', f) == EOF || fclose(f) != 0)
            fuzz_fail("cannot append to a source file", last);
    } else if (change == 2 && len[nfiles - 1]) {
        if (truncate(last, (off_t)len[nfiles - 1] - 1) != 0)
            fuzz_fail("cannot cut a source file", last);
    } else if (change == 3) {
        unlink(last);
    }

    char *text = NULL;
    size_t tsize = 0;
    uint64_t off[5], hash[4];
    rc = ember__src_read(ctx, dir, files, n, &text, &tsize, off, hash, msg);
    fuzz_check_msg(rc, msg, "ember__src_read");
    if (must_fail) {
        if (rc == EMBER_OK)
            fuzz_fail("a source file changed after its listing was read as planned", NULL);
        char name[16];
        snprintf(name, sizeof name, "/f%zu", nfiles - 1);
        if (!strstr(msg, name))
            fuzz_fail("a changed source file's error does not name it", msg);
    } else if (rc != EMBER_OK) {
        fuzz_fail("unchanged source files do not read", msg);
    }
    if (rc == EMBER_OK) {
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            if (off[i] != at || memcmp(text + at, piece[i], len[i]) != 0)
                fuzz_fail("a file is not where its offset says in the text", files[i].name);
            if (hash[i] != XXH3_64bits(piece[i], len[i]))
                fuzz_fail("a file's hash is not the XXH3-64 of its bytes", files[i].name);
            at += len[i];
            if (len[i] && piece[i][len[i] - 1] != '\n') {
                if (text[at] != '\n')
                    fuzz_fail("a file without a final line end is not given one", NULL);
                at++;
            }
        }
        if (off[n] != at || tsize != at || text[at] != '\0')
            fuzz_fail("the text is not the files with their line ends", NULL);
        size_t a = check_lines(ctx, text, tsize, parts);
        size_t b = check_lines(ctx, text, tsize, 1);
        if (a != b && a != (size_t)-1 && b != (size_t)-1)
            fuzz_fail("the partition count changes the lines", NULL);
        ember_free(ctx, text);
    }
    ember__sfiles_free(ctx, files, n);
    ember_ctx_destroy(&ctx);
    return 0;
}
