/* test_stream.c: micro-batch streams (src/stream*.c).
 *
 * The checkpoint location's logs (offsets, commits, metadata) are tested
 * through the internal calls, byte damage included; state snapshots round
 * trip and fail verification when damaged; the merge keeps colliding
 * strings apart (a deliberately weak key makes every string collide); and
 * whole streams run against a word count written here, with flat_map and
 * a key function given by the test, checked against a plain reference
 * count: mode rules, refused restarts, a batch that fails and is re-run
 * with exactly its files, snapshot fallback with replay, retention,
 * available-now, late files, a changed file, stop, and out-of-memory
 * failures at every allocation.
 *
 * Each case works in a fresh mkdtemp directory holding src/, loc/ and out/.
 */
#include "testutil.h"

#include "stream_internal.h"
#include <inttypes.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch directories ------------------------------------------------- */

typedef struct {
    char root[256];
    char src[300], loc[300], out[300];
} tdir;

static void td_init(tdir *t)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(t->root, sizeof t->root, "%s/ember_stream_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->src, sizeof t->src, "%s/src", t->root);
    snprintf(t->loc, sizeof t->loc, "%s/loc", t->root);
    snprintf(t->out, sizeof t->out, "%s/out", t->root);
    assert_int_equal(mkdir(t->src, 0755), 0);
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        rm_tree(p);
    }
    closedir(d);
    rmdir(path);
}

static void td_done(tdir *t)
{
    rm_tree(t->root);
}

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Written as a dot-file, then renamed in: how producers should do it. */
static void put_file(const tdir *t, const char *name, const char *text)
{
    char tmp[600], dst[600];
    snprintf(tmp, sizeof tmp, "%s/.%s.part", t->src, name);
    snprintf(dst, sizeof dst, "%s/%s", t->src, name);
    write_bytes(tmp, text, strlen(text));
    assert_int_equal(rename(tmp, dst), 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t got;
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    fclose(f);
    s[n] = '\0';
    if (len)
        *len = n;
    return s;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The content of the sink file of the highest batch, or NULL. */
static char *newest_output(const tdir *t)
{
    DIR *d = opendir(t->out);
    if (!d)
        return NULL;
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (!strncmp(de->d_name, "batch-", 6) && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    if (!best[0])
        return NULL;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", t->out, best);
    return slurp(p, NULL);
}

static char *batch_output(const tdir *t, uint64_t batch)
{
    char name[64], p[600];
    ember__sink_name(batch, name, sizeof name);
    snprintf(p, sizeof p, "%s/%s", t->out, name);
    return slurp(p, NULL);
}

/* Flips one byte at offset (from the end when negative). */
static void flip_byte(const char *path, long offset)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    off_t at = offset >= 0 ? offset : size + offset;
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

/* Damages a file in its middle third, where the data is. */
static void damage(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (long i = 0; i < 64; i++)
        flip_byte(path, (long)(st.st_size / 3) + i * (long)(st.st_size / 3 / 64 + 1));
}

/* ---- a word count written against the public API ------------------------- */

typedef struct {
    uint64_t key, offset, length;
    int64_t count;
} wrec;

static ember_type wrec_type(void)
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
    assert_int_equal(ember_type_struct(&t, f, 4, NULL), EMBER_OK);
    return t;
}

typedef struct {
    ember_type type;
    uint64_t key_mask;   /* keys are hash & mask: small masks collide */
    const char *text;
    int fail_batch;      /* the batch function fails on this batch id, once */
    int calls;
    int bad_key;         /* 1: keys also hash the batch id, 2: the offset */
    uint64_t batch;
} wq;

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* One (key, word, 1) record per word occurrence. */
static int words_of_lines(const void *in, size_t n, ember_emitter *em, void *arg)
{
    const wq *q = arg;
    const ember_line *l = in;
    for (size_t i = 0; i < n; i++) {
        size_t p = l[i].offset, end = l[i].offset + l[i].length;
        while (p < end) {
            while (p < end && is_ws(q->text[p]))
                p++;
            size_t s = p;
            while (p < end && !is_ws(q->text[p]))
                p++;
            if (p > s) {
                uint64_t k = ember_stream_hash(q->text + s, p - s) & q->key_mask;
                k ^= q->bad_key == 1 ? q->batch * 0x9e3779b97f4a7c15ULL
                     : q->bad_key == 2 ? s : 0;
                wrec r = {k, s, p - s, 1};
                if (ember_emit(em, &r, 1))
                    return 1;
            }
        }
    }
    return 0;
}

static int wc_batch(ember_ds **out, ember_ds *lines, const ember_stream_batch *b,
                    void *arg, char *msg)
{
    wq *q = arg;
    q->calls++;
    q->batch = b->batch;
    if (q->fail_batch >= 0 && (uint64_t)q->fail_batch == b->batch) {
        q->fail_batch = -1;
        snprintf(msg, EMBER_MSG_SIZE, "injected failure");
        return EMBER_EUSER;
    }
    size_t size = 0;
    q->text = ember_lines_text(lines, &size);
    assert_ptr_equal(q->text, b->text);
    assert_int_equal(size, b->text_size);
    return ember_flat_map(out, lines, &q->type, words_of_lines, q, sizeof *q, msg);
}

static void wq_init(wq *q, uint64_t mask)
{
    memset(q, 0, sizeof *q);
    q->type = wrec_type();
    q->key_mask = mask;
    q->fail_batch = -1;
}

static ember_stream_opts wc_opts(const tdir *t, wq *q, ember_output_mode mode)
{
    ember_stream_opts o;
    memset(&o, 0, sizeof o);
    o.source_dir = t->src;
    o.checkpoint_location = t->loc;
    o.sink_dir = t->out;
    o.query = "test=wordcount\n";
    o.batch_fn = wc_batch;
    o.batch_arg = q;
    o.key = EMBER_KEY_TEXT;
    o.record_type = &q->type;
    o.output_mode = mode;
    o.no_signals = 1;
    o.quiet = 1;
    return o;
}

/* ---- the reference count -------------------------------------------------- */

typedef struct {
    char **w;
    size_t n, cap;
} wlist;

static void wl_add(wlist *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->w = realloc(l->w, l->cap * sizeof *l->w);
        assert_non_null(l->w);
    }
    l->w[l->n] = malloc(len + 1);
    assert_non_null(l->w[l->n]);
    memcpy(l->w[l->n], s, len);
    l->w[l->n++][len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void csv_word(char **out, size_t *cap, size_t *len, const char *w)
{
    size_t need = *len + 2 * strlen(w) + 32;
    if (need > *cap) {
        *cap = need * 2;
        *out = realloc(*out, *cap);
        assert_non_null(*out);
    }
    int q = strpbrk(w, ",\"") != NULL;
    if (q)
        (*out)[(*len)++] = '"';
    for (const char *p = w; *p; p++) {
        if (*p == '"')
            (*out)[(*len)++] = '"';
        (*out)[(*len)++] = *p;
    }
    if (q)
        (*out)[(*len)++] = '"';
    (*out)[*len] = '\0';
}

/* The expected complete-mode CSV of a set of texts (no NUL bytes). */
static char *reference(const char *const *texts, size_t n)
{
    wlist l = {0};
    for (size_t i = 0; i < n; i++) {
        const char *p = texts[i];
        while (*p) {
            while (*p && is_ws(*p))
                p++;
            const char *s = p;
            while (*p && !is_ws(*p))
                p++;
            if (p > s)
                wl_add(&l, s, (size_t)(p - s));
        }
    }
    if (l.n)
        qsort(l.w, l.n, sizeof *l.w, cmp_str);
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < l.n;) {
        size_t j = i;
        while (j < l.n && !strcmp(l.w[j], l.w[i]))
            j++;
        csv_word(&out, &cap, &len, l.w[i]);
        len += (size_t)snprintf(out + len, cap - len, ",%zu\n", j - i);
        i = j;
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.w[i]);
    free(l.w);
    return out;
}

/* A deterministic file of words drawn from a small vocabulary with
 * commas, quotes and UTF-8 in it, so words repeat and collide. */
static char *random_text(uint64_t seed, int words)
{
    static const char *vocab[] = {"alpha", "beta", "gamma", "a,b", "\"q\"", "x\"y,z",
                                  "Alpha", "ALPHA", "\xc3\xa9t\xc3\xa9", "-", "0",
                                  "delta", "epsilon", "zeta", "eta", "theta"};
    size_t cap = (size_t)words * 24 + 16, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    uint64_t r = seed;
    for (int i = 0; i < words; i++) {
        uint64_t x = tu_rand(&r);
        const char *w = vocab[x % 16];
        char num[16];
        if ((x >> 8) % 5 == 0) { /* some rare words too */
            snprintf(num, sizeof num, "w%u", (unsigned)((x >> 16) % 200));
            w = num;
        }
        const char *sep = (x >> 32) % 7 == 0 ? "\n" : (x >> 32) % 11 == 0 ? "\t " : " ";
        len += (size_t)snprintf(s + len, cap - len, "%s%s", w, sep);
    }
    return s;
}

/* ---- logs ----------------------------------------------------------------- */

static void test_stream_escape_roundtrip(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember__sb b = {.ctx = ctx};
    char all[255];
    for (int i = 0; i < 255; i++)
        all[i] = (char)(i + 1); /* every byte but NUL */
    ember__sb_escaped(&b, all, sizeof all);
    assert_false(b.oom);
    assert_null(strchr(b.s, ' '));
    assert_null(strchr(b.s, '\n'));
    size_t len = 0;
    assert_int_equal(ember__sl_unescape(b.s, &len), 0);
    assert_int_equal(len, sizeof all);
    assert_memory_equal(b.s, all, sizeof all);
    char bad[] = "abc%4";
    assert_int_equal(ember__sl_unescape(bad, NULL), -1);
    char bad2[] = "%zz";
    assert_int_equal(ember__sl_unescape(bad2, NULL), -1);
    ember__sb_free(&b);
    ember_ctx_destroy(&ctx);
}

static void test_stream_offsets_roundtrip(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    char off[400];
    snprintf(off, sizeof off, "%s/offsets", t.loc);
    assert_int_equal(ember__sl_mkdir(off, msg), EMBER_OK);
    char *names[] = {"a file with spaces", "b%25percent", "c\nnewline\ttab",
                     "d\xc3\xa9t\xc3\xa9"};
    ember__sfile files[4];
    for (int i = 0; i < 4; i++)
        files[i] = (ember__sfile){names[i], (uint64_t)i * 1000 + 7, -1000000001 + i, i != 2};
    ember__soffsets o = {.batch = 42, .files = files, .nfiles = 4};
    memcpy(o.query_id, "0123456789abcdef0123456789abcdef", EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_offsets_write(ctx, t.loc, &o, NULL, msg), msg);
    ember__soffsets r;
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 42, &r, msg), msg);
    assert_int_equal(r.batch, 42);
    assert_string_equal(r.query_id, o.query_id);
    assert_int_equal(r.nfiles, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(r.files[i].name, names[i]);
        assert_int_equal(r.files[i].size, files[i].size);
        assert_int_equal(r.files[i].has_mtime, files[i].has_mtime); /* "-": unknown */
        if (files[i].has_mtime) /* before 1970 too */
            assert_true(r.files[i].mtime_ns == files[i].mtime_ns);
    }
    ember__sl_offsets_free(ctx, &r);
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 43, &r, msg), EMBER_ENOTFOUND);
    /* No stray temporary file after an atomic write. */
    assert_int_equal(count_entries(off), 1);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Writes text plus a valid checksum line to path. */
static void write_checksummed(const char *path, const char *text)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%schecksum %016llx\n", text,
                     (unsigned long long)ember__sl_fnv(text, strlen(text)));
    write_bytes(path, buf, (size_t)n);
}

static void test_stream_offsets_corrupt(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], path[600];
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    snprintf(path, sizeof path, "%s/offsets", t.loc);
    assert_int_equal(ember__sl_mkdir(path, msg), EMBER_OK);
    ember__sfile f = {.name = "x.txt", .size = 12};
    ember__soffsets o = {.batch = 3, .files = &f, .nfiles = 1};
    memcpy(o.query_id, "0123456789abcdef0123456789abcdef", EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_offsets_write(ctx, t.loc, &o, NULL, msg), msg);
    snprintf(path, sizeof path, "%s/offsets/3", t.loc);
    ember__soffsets r;

    flip_byte(path, 30); /* a flipped byte */
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "offsets/3");
    TU_MSG_HAS(msg, "checksum");
    assert_null(r.files);

    size_t len;
    TU_OKM(ember__sl_offsets_write(ctx, t.loc, &o, NULL, msg), msg);
    char *s = slurp(path, &len); /* truncated */
    write_bytes(path, s, len / 2);
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_ECORRUPT);
    free(s);

    write_checksummed(path, "ember-stream-offsets 99\nbatch 3\n"); /* newer */
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_EFORMAT);
    TU_MSG_HAS(msg, "format 99");

    write_checksummed(path, "ember-stream-offsets 1\nbatch 4\nquery "
                            "0123456789abcdef0123456789abcdef\nfiles 1\nfile 1 a\n"
                            "created x\n"); /* another batch's entry */
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_ECORRUPT);

    write_checksummed(path, "ember-stream-offsets 1\nbatch 3\nquery "
                            "0123456789abcdef0123456789abcdef\nfiles 2\nfile 1 b\n"
                            "file 1 a\ncreated x\n"); /* out of order */
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "order");

    write_checksummed(path, "ember-stream-offsets 1\nbatch 3\nquery "
                            "0123456789abcdef0123456789abcdef\nfiles 1\nfile 1 a%2Fb\n"
                            "created x\n"); /* a '/' in a name */
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 3, &r, msg), EMBER_ECORRUPT);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_commits_roundtrip(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], path[600];
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    snprintf(path, sizeof path, "%s/commits", t.loc);
    assert_int_equal(ember__sl_mkdir(path, msg), EMBER_OK);
    /* Leading zeros and all ones survive the round trip. */
    uint64_t hashes[3] = {0x1, UINT64_MAX, 0x00000000deadbeefULL};
    ember__scommit c = {.batch = 9, .has_state = 1, .state_version = 8, .rows = 77,
                        .files = 3, .hashes = hashes};
    memcpy(c.query_id, "ffffffffffffffffffffffffffffffff", EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_commit_write(ctx, t.loc, &c, msg), msg);
    c.batch = 10;
    c.has_state = 0;
    TU_OKM(ember__sl_commit_write(ctx, t.loc, &c, msg), msg);
    ember__scommit r;
    TU_OKM(ember__sl_commit_read(ctx, t.loc, 9, &r, msg), msg);
    assert_int_equal(r.batch, 9);
    assert_int_equal(r.has_state, 1);
    assert_int_equal(r.state_version, 8);
    assert_int_equal(r.rows, 77);
    assert_int_equal(r.files, 3);
    assert_string_equal(r.query_id, c.query_id);
    assert_non_null(r.hashes);
    for (int i = 0; i < 3; i++)
        assert_true(r.hashes[i] == hashes[i]);
    ember__sl_commit_free(ctx, &r);
    TU_OKM(ember__sl_commit_read(ctx, t.loc, 10, &r, msg), msg);
    assert_int_equal(r.has_state, 0);
    ember__sl_commit_free(ctx, &r);

    uint64_t *ids = NULL;
    size_t n = 0;
    TU_OKM(ember__sl_list(ctx, path, "", &ids, &n, msg), msg);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 9);
    assert_int_equal(ids[1], 10);
    ember_free(ctx, ids);

    snprintf(path, sizeof path, "%s/commits/9", t.loc);
    flip_byte(path, -3); /* in the checksum itself */
    assert_int_equal(ember__sl_commit_read(ctx, t.loc, 9, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "commits/9");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_metadata_compare(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    const char *d = "source=/a\noutput_mode=complete\nweird=%20 and \x01\n";
    ember__smeta m = {.fingerprint = ember__sl_fnv(d, strlen(d)), .description = (char *)d};
    memcpy(m.query_id, "00000000000000000000000000000001", EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_meta_write(ctx, t.loc, &m, msg), msg);
    ember__smeta r;
    TU_OKM(ember__sl_meta_read(ctx, t.loc, &r, msg), msg);
    assert_string_equal(r.description, d);
    assert_string_equal(r.query_id, m.query_id);
    assert_int_equal(r.fingerprint, m.fingerprint);
    assert_int_equal(ember__sl_meta_compare(t.loc, r.description, d, msg), EMBER_OK);
    assert_int_equal(ember__sl_meta_compare(t.loc, r.description,
                                            "source=/a\noutput_mode=update\nnew=1\n", msg),
                     EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "output_mode: 'complete' there, 'update' here");
    TU_MSG_HAS(msg, "weird:");
    TU_MSG_HAS(msg, "absent here");
    TU_MSG_HAS(msg, "new: absent there, '1' here");
    ember__sl_meta_free(ctx, &r);
    char path[600];
    snprintf(path, sizeof path, "%s/metadata", t.loc);
    flip_byte(path, 60);
    assert_int_equal(ember__sl_meta_read(ctx, t.loc, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "metadata");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A query line with a bad %-escape, after a long one, in a file whose
 * checksum is valid: refused as corrupt without reading past the line
 * (the length of the previous line used to be copied; ASan saw it). */
static void test_stream_metadata_bad_escape(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], path[600], body[1024];
    char longq[201];
    memset(longq, 'q', 200);
    longq[200] = '\0';
    int n = snprintf(body, sizeof body,
                     "ember-stream-metadata 1\nid 00000000000000000000000000000001\n"
                     "fingerprint 0000000000000000\nquery %s\nquery %%zz\n"
                     "created 2026-01-01T00:00:00Z\n", longq);
    assert_true(n > 0 && (size_t)n < sizeof body - 40);
    snprintf(body + n, sizeof body - (size_t)n, "checksum %016" PRIx64 "\n",
             ember__sl_fnv(body, (size_t)n));
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    snprintf(path, sizeof path, "%s/metadata", t.loc);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    ember__smeta r;
    assert_int_equal(ember__sl_meta_read(ctx, t.loc, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "bad query line");
    assert_null(r.description);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* ---- state ------------------------------------------------------------------ */

/* A batch of wrec records over text, reduced by hand: sorted by key,
 * unique keys (those with equal keys beyond the first go to spills). */
static void make_batch(ember_ctx *ctx, const char *text, uint64_t mask, ember__buf *b,
                       ember__buf *spills)
{
    ember_type t = wrec_type();
    b->size = spills->size = t.size;
    size_t n = strlen(text), p = 0;
    ember__buf all = {NULL, 0, 0, t.size};
    while (p < n) {
        while (p < n && is_ws(text[p]))
            p++;
        size_t s = p;
        while (p < n && !is_ws(text[p]))
            p++;
        if (p > s) {
            wrec r = {ember_stream_hash(text + s, p - s) & mask, s, p - s, 1};
            assert_int_equal(ember__buf_append(ctx, &all, &r, 1), 0);
        }
    }
    wrec *w = (wrec *)all.data;
    for (size_t i = 1; i < all.n; i++) /* insertion sort by key: small inputs */
        for (size_t j = i; j > 0 && w[j - 1].key > w[j].key; j--) {
            wrec x = w[j];
            w[j] = w[j - 1];
            w[j - 1] = x;
        }
    for (size_t i = 0; i < all.n; i++) {
        ember__buf *dst = b->n && ((wrec *)b->data)[b->n - 1].key == w[i].key ? spills : b;
        assert_int_equal(ember__buf_append(ctx, dst, &w[i], 1), 0);
    }
    ember__buf_free(ctx, &all);
}

/* The state as "word,count\n" lines in string order. */
static char *state_csv(ember__sstate *st)
{
    char msg[EMBER_MSG_SIZE];
    TU_OKM(ember__ss_order(st, msg), msg);
    size_t cap = 64 + st->rec.n * 64, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < st->rec.n; i++) {
        const wrec *r = (const wrec *)(st->rec.data + st->order[i] * st->rec.size);
        char w[256];
        assert_true(r->offset + r->length <= st->text.n && r->length < sizeof w);
        memcpy(w, st->text.data + r->offset, r->length);
        w[r->length] = '\0';
        csv_word(&out, &cap, &len, w);
        len += (size_t)snprintf(out + len, cap - len, ",%lld\n", (long long)r->count);
        if (len + 300 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
    }
    return out;
}

/* Merges texts one batch each into st; returns the collisions counted. */
static uint64_t merge_texts(ember_ctx *ctx, ember__sstate *st, const char *const *texts,
                            size_t n, uint64_t mask)
{
    uint64_t total = 0;
    char msg[EMBER_MSG_SIZE];
    for (size_t i = 0; i < n; i++) {
        ember__buf b = {0}, sp = {0};
        make_batch(ctx, texts[i], mask, &b, &sp);
        size_t *changed = NULL, nchanged = 0;
        uint64_t coll = 0;
        TU_OKM(ember__ss_merge(st, &b, &sp, texts[i], strlen(texts[i]), &changed,
                               &nchanged, &coll, NULL, msg), msg);
        total += coll;
        /* The state stays sorted by key with unique keys. */
        for (size_t k = 1; k < st->rec.n; k++)
            assert_true(((wrec *)st->rec.data)[k - 1].key < ((wrec *)st->rec.data)[k].key);
        /* changed rows are in string order, each once */
        for (size_t k = 1; k < nchanged; k++)
            assert_true(changed[k - 1] != changed[k]);
        ember_free(ctx, changed);
        ember__buf_free(ctx, &b);
        ember__buf_free(ctx, &sp);
    }
    return total;
}

static void test_stream_merge_collisions(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = wrec_type();
    char msg[EMBER_MSG_SIZE];
    const uint64_t masks[] = {UINT64_MAX, 0xf, 0x1, 0};
    char *texts[6];
    for (int i = 0; i < 6; i++)
        texts[i] = random_text(100 + (uint64_t)i, 300);
    char *want = reference((const char *const *)texts, 6);
    for (size_t m = 0; m < 4; m++) {
        ember__sstate st;
        TU_OKM(ember__ss_init(&st, ctx, &t, EMBER_KEY_TEXT, NULL, NULL, msg), msg);
        uint64_t coll = merge_texts(ctx, &st, (const char *const *)texts, 6, masks[m]);
        char *got = state_csv(&st);
        assert_string_equal(got, want);
        if (masks[m] != UINT64_MAX)
            assert_true(coll > 0); /* the weak keys did collide */
        /* Every string is stored once in the dictionary. */
        size_t sum = 0;
        for (size_t i = 0; i < st.rec.n; i++)
            sum += ((wrec *)st.rec.data)[i].length;
        assert_int_equal(sum, st.text.n);
        free(got);
        ember__ss_free(&st);
    }
    free(want);
    for (int i = 0; i < 6; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
}

/* The empty string, the only string of the state so far: its dictionary
 * has no bytes, and the "" of the next batch is the same string, not a
 * second row (which the check for strings under two keys then refused,
 * naming a probe's key). */
static void test_stream_merge_empty_string(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = wrec_type();
    char msg[EMBER_MSG_SIZE];
    ember__sstate st;
    TU_OKM(ember__ss_init(&st, ctx, &t, EMBER_KEY_TEXT, NULL, NULL, msg), msg);
    for (int b = 0; b < 3; b++) {
        ember__buf batch = {0};
        batch.size = sizeof(wrec);
        wrec r = {ember_stream_hash("", 0), 0, 0, 1 + b};
        assert_int_equal(ember__buf_append(ctx, &batch, &r, 1), 0);
        size_t *changed = NULL, nchanged = 0;
        uint64_t coll = 0;
        TU_OKM(ember__ss_merge(&st, &batch, NULL, "\n", 1, &changed, &nchanged, &coll, NULL,
                               msg), msg);
        assert_int_equal(nchanged, 1);
        assert_int_equal(st.rec.n, 1);
        assert_int_equal(((wrec *)st.rec.data)[0].count, (b + 1) * (b + 2) / 2);
        ember_free(ctx, changed);
        ember__buf_free(ctx, &batch);
    }
    ember__ss_free(&st);
    ember_ctx_destroy(&ctx);
}

static void test_stream_merge_rollback(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    ember_type t = wrec_type();
    char msg[EMBER_MSG_SIZE];
    ember__sstate st;
    TU_OKM(ember__ss_init(&st, ctx, &t, EMBER_KEY_TEXT, NULL, NULL, msg), msg);
    const char *a = "one two two three";
    merge_texts(ctx, &st, &a, 1, UINT64_MAX);
    char *before = state_csv(&st);
    size_t text_before = st.text.n;
    ember__buf b = {0}, sp = {0};
    const char *c = "two four four";
    make_batch(ctx, c, UINT64_MAX, &b, &sp);
    size_t *changed = NULL, nchanged = 0;
    uint64_t coll = 0;
    ember__ss_undo undo;
    TU_OKM(ember__ss_merge(&st, &b, &sp, c, strlen(c), &changed, &nchanged, &coll, &undo,
                           msg), msg);
    assert_int_equal(nchanged, 2); /* four (new), two (changed) */
    ember__ss_rollback(&st, &undo);
    assert_int_equal(st.text.n, text_before);
    char *after = state_csv(&st);
    assert_string_equal(after, before);
    /* A reference outside the batch text is refused, state untouched. */
    ((wrec *)b.data)[0].offset = 1000;
    ember_free(ctx, changed);
    assert_int_equal(ember__ss_merge(&st, &b, &sp, c, strlen(c), &changed, &nchanged,
                                     &coll, NULL, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "outside the batch text");
    free(after);
    after = state_csv(&st);
    assert_string_equal(after, before);
    free(before);
    free(after);
    ember__buf_free(ctx, &b);
    ember__buf_free(ctx, &sp);
    ember__ss_free(&st);
    ember_ctx_destroy(&ctx);
}

static void test_stream_snapshot_roundtrip(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(2);
    ember_type ty = wrec_type();
    char msg[EMBER_MSG_SIZE];
    ember__sstate st, back;
    TU_OKM(ember__ss_init(&st, ctx, &ty, EMBER_KEY_TEXT, NULL, NULL, msg), msg);
    TU_OKM(ember__ss_init(&back, ctx, &ty, EMBER_KEY_TEXT, NULL, NULL, msg), msg);
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    /* An empty state (no dictionary at all) round-trips too. */
    TU_OKM(ember__ss_save(&st, t.loc, 0, "q=1\n", 77, "id1", msg), msg);
    char path[600];
    snprintf(path, sizeof path, "%s/0.h5", t.loc);
    TU_OKM(ember__ss_load(&back, path, 77, "id1", 0, msg), msg);
    assert_int_equal(back.rec.n, 0);
    char *texts[3] = {random_text(1, 500), random_text(2, 500), random_text(3, 500)};
    merge_texts(ctx, &st, (const char *const *)texts, 3, 0xff);
    TU_OKM(ember__ss_save(&st, t.loc, 5, "q=1\n", 77, "id1", msg), msg);
    snprintf(path, sizeof path, "%s/5.h5", t.loc);
    TU_OKM(ember__ss_load(&back, path, 77, "id1", 5, msg), msg);
    assert_int_equal(back.rec.n, st.rec.n);
    assert_memory_equal(back.rec.data, st.rec.data, st.rec.n * st.rec.size);
    assert_int_equal(back.text.n, st.text.n);
    assert_memory_equal(back.text.data, st.text.data, st.text.n);
    /* Another query's fingerprint, another batch, another type: refused. */
    assert_int_equal(ember__ss_load(&back, path, 78, "id1", 5, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "another query");
    assert_int_equal(ember__ss_load(&back, path, 77, "id1", 6, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "batch 5, not 6");
    /* Another location of the same query (another query id): refused; a
     * prefix of the id is another id too. */
    assert_int_equal(ember__ss_load(&back, path, 77, "id2", 5, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "another checkpoint location of this query (query id id1, this "
                    "location's id2)");
    assert_int_equal(ember__ss_load(&back, path, 77, "id", 5, msg), EMBER_EMISMATCH);
    ember__sstate num;
    ember_type pair = ember_type_pair(EMBER_I64, EMBER_I64);
    TU_OKM(ember__ss_init(&num, ctx, &pair, EMBER_KEY_NUMBER, NULL, NULL, msg), msg);
    assert_int_equal(ember__ss_load(&num, path, 77, "id1", 5, msg), EMBER_EMISMATCH);
    ember__ss_free(&num);
    /* Damage: checksums catch it, and the state is left as it was. */
    damage(path);
    size_t before = back.rec.n;
    int rc = ember__ss_load(&back, path, 77, "id1", 5, msg);
    assert_int_equal(rc, EMBER_ECORRUPT);
    assert_int_equal(back.rec.n, before);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
    ember__ss_free(&st);
    ember__ss_free(&back);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* ---- whole streams ------------------------------------------------------------ */

static void test_stream_mode_rules(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_APPEND);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
    assert_null(s);
    TU_MSG_HAS(msg, "append is not supported for a query with an aggregation");
    assert_int_equal(count_entries(t.loc), -1); /* refused before touching disk */

    ember_type lt = ember_type_scalar(EMBER_I64);
    o.key = EMBER_KEY_NONE;
    o.record_type = &lt;
    o.output_mode = EMBER_OUTPUT_COMPLETE;
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "complete needs an aggregation");

    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    ember_type pair = ember_type_pair(EMBER_I64, EMBER_I64);
    o.record_type = &pair; /* not a text-key layout */
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ETYPE);
    TU_MSG_HAS(msg, "three u64 fields");

    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.trigger = EMBER_TRIGGER_PROCESSING_TIME;
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "interval");

    o = wc_opts(&t, &q, EMBER_OUTPUT_DEFAULT); /* aggregating: update */
    o.source_dir = "/nonexistent/ember/dir";
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "/nonexistent/ember/dir");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_restart_other_query_refused(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL, *s2 = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "f1", "a b\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran = 0;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    /* The location is held while the stream lives. */
    assert_int_equal(ember_stream_create(&s2, ctx, &o, msg), EMBER_EBUSY);
    TU_MSG_HAS(msg, "in use");
    /* So is the sink: a copy of the location (same query id) run beside it
     * would write the same batch files from another plan of batches. */
    char cmd[1200], copy[320];
    snprintf(copy, sizeof copy, "%s.copy", t.loc);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s' && rm -f '%s/lock'", t.loc, copy, copy);
    assert_int_equal(system(cmd), 0);
    ember_stream_opts oc = o;
    oc.checkpoint_location = copy;
    assert_int_equal(ember_stream_create(&s2, ctx, &oc, msg), EMBER_EBUSY);
    TU_MSG_HAS(msg, "sink directory");
    TU_MSG_HAS(msg, "in use");
    ember_stream_destroy(&s);
    assert_null(s);
    TU_OKM(ember_stream_create(&s2, ctx, &oc, msg), msg); /* alone, it may run */
    ember_stream_destroy(&s2);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
    assert_int_equal(system(cmd), 0);

    o.output_mode = EMBER_OUTPUT_UPDATE;
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "output_mode: 'complete' there, 'update' here");
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.query = "test=wordcount-v2\n";
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "test: 'wordcount' there, 'wordcount-v2' here");
    /* The same query again is welcome, and nothing is re-run. It sweeps
     * the location's crashed temporaries (dot-named), not a user's file. */
    char crashed[400], users[400];
    snprintf(crashed, sizeof crashed, "%s/.metadata.tmp", t.loc);
    snprintf(users, sizeof users, "%s/notes.tmp", t.loc);
    write_bytes(crashed, "x", 1);
    write_bytes(users, "x", 1);
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.max_files = 5; /* run options may change */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(access(crashed, F_OK), -1);
    assert_int_equal(access(users, F_OK), 0);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 0);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Runs steps until nothing is left; returns the batches run. */
static int drain(ember_stream *s)
{
    char msg[EMBER_MSG_SIZE];
    int ran = 1, n = 0;
    while (ran) {
        TU_OKM(ember_stream_step(s, &ran, msg), msg);
        n += ran;
    }
    return n;
}

/* Creating a stream with these directories must be refused with
 * EMBER_EINVAL, the message holding `part`, before anything is written. */
static void refused_dirs(ember_ctx *ctx, ember_stream_opts *o, const char *part)
{
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    assert_int_equal(ember_stream_create(&s, ctx, o, msg), EMBER_EINVAL);
    assert_null(s);
    TU_MSG_HAS(msg, part);
}

/* The source, the checkpoint location and the sink are three directories,
 * compared by device and inode: another spelling of one is refused too. A
 * location or sink inside the source is fine (the source skips
 * directories). */
static void test_stream_dirs_must_differ(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], dot[400], link[400], sub[400], subsink[400];
    put_file(&t, "z1", "hello world\n");
    snprintf(dot, sizeof dot, "%s/.", t.src);
    snprintf(link, sizeof link, "%s/link", t.root);
    assert_int_equal(symlink(t.src, link), 0);
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    const char *same[] = {t.src, dot, link};
    for (int i = 0; i < 3; i++) {
        o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
        o.checkpoint_location = same[i];
        refused_dirs(ctx, &o, "is the source directory");
    }
    assert_int_equal(count_entries(t.src), 1); /* no lock, no metadata */
    assert_int_equal(count_entries(t.out), -1);
    for (int i = 0; i < 3; i++) {
        o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
        o.sink_dir = same[i];
        refused_dirs(ctx, &o, "sink directory");
    }
    assert_int_equal(count_entries(t.loc), -1);
    /* The sink is the location: by inode once it exists, by path before. */
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    char loc_slash[400];
    snprintf(loc_slash, sizeof loc_slash, "%s/", t.loc);
    o.sink_dir = loc_slash;
    refused_dirs(ctx, &o, "is the checkpoint location");
    assert_int_equal(count_entries(t.loc), -1);
    /* inside it, neither made yet, spelled with "." and a trailing slash */
    char loc_out[500];
    snprintf(loc_out, sizeof loc_out, "%s/./out/", t.loc);
    o.sink_dir = loc_out;
    refused_dirs(ctx, &o, "is inside the checkpoint location");
    assert_int_equal(count_entries(t.loc), -1);
    assert_int_equal(mkdir(t.loc, 0755), 0);
    o.sink_dir = loc_slash;
    refused_dirs(ctx, &o, "is the checkpoint location");
    /* The source inside the location (its own logs as input): refused. */
    char inner[500];
    snprintf(inner, sizeof inner, "%s/offsets", t.loc);
    assert_int_equal(mkdir(inner, 0755), 0);
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.source_dir = inner;
    refused_dirs(ctx, &o, "is inside the checkpoint location");
    /* A sink inside the location (batch files among its bookkeeping):
     * refused, whether it exists or is still to be made, and not made. */
    char inner_new[600];
    snprintf(inner_new, sizeof inner_new, "%s/out", inner);
    const char *in_loc[] = {inner, inner_new};
    for (int i = 0; i < 2; i++) {
        o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
        o.sink_dir = in_loc[i];
        refused_dirs(ctx, &o, "is inside the checkpoint location");
    }
    assert_int_equal(count_entries(inner), 0);
    assert_int_equal(rmdir(inner), 0);
    /* Subdirectories of the source: fine, and not read as input. */
    snprintf(sub, sizeof sub, "%s/ck", t.src);
    snprintf(subsink, sizeof subsink, "%s/out", t.src);
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.checkpoint_location = sub;
    o.sink_dir = subsink;
    ember_stream *s = NULL;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    char p[500];
    snprintf(p, sizeof p, "%s/batch-000000000000.csv", subsink);
    char *got = slurp(p, NULL);
    assert_string_equal(got, "hello,1\nworld,1\n");
    free(got);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Waits outside 1 ms .. 365 days and an empty sink path are refused. */
static void test_stream_option_ranges(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.trigger = EMBER_TRIGGER_PROCESSING_TIME;
    const double bad[] = {1e-9, 0.0009, 366.0 * 86400, 1e300, 3.6e23, -1, 0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o.interval = bad[i];
        assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "interval must be from");
    }
    o.interval = EMBER_STREAM_MIN_INTERVAL;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_destroy(&s);
    o.interval = EMBER_STREAM_MAX_INTERVAL;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_destroy(&s);
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    for (size_t i = 0; i + 1 < sizeof bad / sizeof *bad; i++) { /* 0: the default */
        o.poll = bad[i];
        assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
        TU_MSG_HAS(msg, "poll must be");
    }
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.sink_dir = "";
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "sink directory is an empty path");
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.source_dir = "";
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EINVAL);
    TU_MSG_HAS(msg, "no source directory");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A directory sink belongs to one query: another query is refused (before
 * it writes its metadata), the same query restarts, also when it was
 * stopped between claiming the sink and its first commit. A sink from
 * before owner files (batch files, no owner) is taken by the query that
 * has run batches, refused to a new one. */
static void test_stream_sink_one_query(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], loc2[400], owner[400], p[600];
    snprintf(loc2, sizeof loc2, "%s/loc2", t.root);
    snprintf(owner, sizeof owner, "%s/%s", t.out, EMBER__SINK_OWNER);
    put_file(&t, "a", "x y\n");
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    ember_stream_opts o2 = o;
    o2.checkpoint_location = loc2;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_destroy(&s); /* claimed, no batch yet: a kill here */
    assert_int_equal(access(owner, F_OK), 0);
    assert_int_equal(ember_stream_create(&s, ctx, &o2, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "belongs to another query");
    TU_MSG_HAS(msg, "checkpoint location /"); /* the owner's, a real path */
    snprintf(p, sizeof p, "%s/metadata", loc2);
    assert_int_equal(access(p, F_OK), -1); /* refused before its metadata */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg); /* the owner restarts */
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    assert_int_equal(ember_stream_create(&s, ctx, &o2, msg), EMBER_EMISMATCH);
    char *b0 = batch_output(&t, 0);
    assert_string_equal(b0, "x,1\ny,1\n");
    free(b0);

    /* An older ember's sink: batch files, no owner file. */
    assert_int_equal(unlink(owner), 0);
    assert_int_equal(ember_stream_create(&s, ctx, &o2, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "holds batch files");
    assert_int_equal(access(p, F_OK), -1);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg); /* its query takes it */
    ember_stream_destroy(&s);
    ember__sowner w;
    TU_OKM(ember__sl_owner_read(ctx, t.out, &w, msg), msg);
    assert_int_equal(ember_stream_create(&s, ctx, &o2, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, w.query_id);

    /* A damaged owner file is named. */
    flip_byte(owner, 20);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, EMBER__SINK_OWNER);

    /* Other files in a new sink do not stop a new query. */
    char out2[400];
    snprintf(out2, sizeof out2, "%s/out2", t.root);
    assert_int_equal(mkdir(out2, 0755), 0);
    snprintf(p, sizeof p, "%s/README", out2);
    write_bytes(p, "notes\n", 6);
    o2.sink_dir = out2;
    TU_OKM(ember_stream_create(&s, ctx, &o2, msg), msg);
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_wordcount_exact(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(2);
    wq q;
    wq_init(&q, 0x3); /* four keys for everything: collisions galore */
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.max_files = 2;
    o.partitions = 3;
    char *texts[7];
    char name[32];
    for (int i = 0; i < 7; i++) {
        texts[i] = random_text(7000 + (uint64_t)i, 200 + 50 * i);
        snprintf(name, sizeof name, "part-%03d.txt", i);
        put_file(&t, name, texts[i]);
    }
    put_file(&t, "zz-no-newline", "tail words");
    texts[6] = realloc(texts[6], strlen(texts[6]) + 16);
    strcat(texts[6], "\ntail words");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 4);
    char *want = reference((const char *const *)texts, 7);
    char *got = newest_output(&t);
    assert_non_null(got);
    assert_string_equal(got, want);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_true(st.collisions > 0);
    assert_int_equal(st.files, 8);
    /* The state dataset holds the same counts. */
    ember_ds *ds = NULL;
    TU_OKM(ember_stream_state(s, &ds, msg), msg);
    size_t n = 0;
    wrec *r = tu_collect(ds, &n);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        assert_non_null(ember_stream_text(s, &r[i], &len));
        assert_int_equal(len, r[i].length);
        total += r[i].count;
    }
    int64_t words = 0;
    for (const char *p = want; (p = strchr(p, '\n')); p++) {
        const char *c = p;
        while (c > want && c[-1] != ',')
            c--;
        words += atoll(c);
    }
    assert_int_equal(total, words);
    free(r);
    ember_ds_free(&ds);
    ember_stream_destroy(&s);
    free(got);
    free(want);
    for (int i = 0; i < 7; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A key that is not a function of the string's bytes alone would count
 * one word as two rows. With keys that also hash the batch id (strings met
 * across batches) or that are the word's offset (met in one batch), over
 * full keys and keys so weak that strings are placed by probing, every run
 * either refuses the word given two keys, by name and with nothing of that
 * batch output, or counts exactly (a probe can find the string's old row). */
static void test_stream_key_not_of_bytes_refused(void **state)
{
    (void)state;
    char msg[EMBER_MSG_SIZE], name[32];
    const uint64_t masks[] = {UINT64_MAX, 0x1, 0};
    int refused = 0;
    char *texts[3];
    for (int i = 0; i < 3; i++)
        texts[i] = random_text(500 + (uint64_t)i, 60);
    char *want = reference((const char *const *)texts, 3);
    for (int mode = 1; mode <= 2; mode++)
        for (size_t m = 0; m < 3; m++) {
            tdir t;
            td_init(&t);
            ember_ctx *ctx = tu_ctx(2);
            wq q;
            wq_init(&q, masks[m]);
            q.bad_key = mode;
            ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
            o.max_files = 1;
            ember_stream *s = NULL;
            for (int i = 0; i < 3; i++) {
                snprintf(name, sizeof name, "part-%d", i);
                put_file(&t, name, texts[i]);
            }
            TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
            int ran = 1, rc = EMBER_OK;
            uint64_t batches = 0;
            while (ran && !(rc = ember_stream_step(s, &ran, msg)))
                batches += (uint64_t)ran;
            if (rc) {
                assert_int_equal(rc, EMBER_EINVAL);
                TU_MSG_HAS(msg, "two keys");
                TU_MSG_HAS(msg, "function of its bytes alone");
                char *out = batch_output(&t, batches);
                assert_null(out);
                refused++;
            } else {
                char *got = newest_output(&t);
                assert_non_null(got);
                assert_string_equal(got, want);
                free(got);
            }
            ember_stream_destroy(&s);
            ember_ctx_destroy(&ctx);
            td_done(&t);
        }
    assert_true(refused >= 2); /* at least the full keys' runs */
    free(want);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
}

static void test_stream_source_listing(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], p[600];
    put_file(&t, "b", "x\n");
    put_file(&t, "a", "x\n");
    put_file(&t, "c.tmp", "x\n");
    put_file(&t, ".hidden", "x\n");
    snprintf(p, sizeof p, "%s/subdir", t.src);
    assert_int_equal(mkdir(p, 0755), 0);
    ember__sfile *f = NULL;
    size_t n = 0;
    char seen[NAME_MAX + 1] = ""; /* no pass yet: the listing makes two */
    TU_OKM(ember__src_list(ctx, t.src, NULL, NULL, seen, &f, &n, msg), msg);
    assert_int_equal(n, 2);
    assert_string_equal(f[0].name, "a");
    assert_string_equal(f[1].name, "b");
    assert_int_equal(f[0].size, 2);
    assert_string_equal(seen, "b");
    ember__sfiles_free(ctx, f, n);
    /* Names up to `after` are listed without a stat (size 0). */
    TU_OKM(ember__src_list(ctx, t.src, "a", NULL, seen, &f, &n, msg), msg);
    assert_int_equal(n, 2);
    assert_int_equal(f[0].size, 0);
    assert_int_equal(f[1].size, 2);
    ember__sfiles_free(ctx, f, n);
    /* Files past the cut (what an earlier pass saw) wait for a pass opened
     * after one that saw them: here the second, made at once. */
    snprintf(seen, sizeof seen, "a");
    TU_OKM(ember__src_list(ctx, t.src, NULL, NULL, seen, &f, &n, msg), msg);
    assert_int_equal(n, 2);
    assert_string_equal(seen, "b");
    ember__sfiles_free(ctx, f, n);
    assert_true(ember__src_ignored(".x"));
    assert_true(ember__src_ignored("y.tmp"));
    assert_false(ember__src_ignored("y.tmpx"));
    assert_false(ember__src_ignored("tmp"));
    /* Reading: exactly the recorded sizes, a '\n' added where missing. */
    put_file(&t, "d", "no end");
    ember__sfile rf[3] = {{.name = "a", .size = 2}, {.name = "d", .size = 6},
                          {.name = "b", .size = 2}};
    char *text = NULL;
    size_t size = 0;
    uint64_t off[4];
    TU_OKM(ember__src_read(ctx, t.src, rf, 3, &text, &size, off, NULL, msg), msg);
    assert_string_equal(text, "x\nno end\nx\n");
    assert_int_equal(off[1], 2);
    assert_int_equal(off[2], 9);
    assert_int_equal(off[3], 11);
    ember_free(ctx, text);
    rf[1].size = 5;
    assert_int_equal(ember__src_read(ctx, t.src, rf, 3, &text, &size, off, NULL, msg),
                     EMBER_EFORMAT);
    TU_MSG_HAS(msg, "/d changed after it arrived");
    rf[1].name = "gone";
    assert_int_equal(ember__src_read(ctx, t.src, rf, 3, &text, &size, off, NULL, msg),
                     EMBER_ENOTFOUND);
    TU_MSG_HAS(msg, "gone");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_max_files_and_late_files(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_UPDATE);
    o.max_files = 2;
    put_file(&t, "f3", "c\n");
    put_file(&t, "f1", "a\n");
    put_file(&t, "f2", "b\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    ember__soffsets e;
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 0, &e, msg), msg);
    assert_int_equal(e.nfiles, 2);
    assert_string_equal(e.files[0].name, "f1");
    assert_string_equal(e.files[1].name, "f2");
    ember__sl_offsets_free(ctx, &e);
    put_file(&t, "f0", "late\n"); /* sorts before the files taken */
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 1, &e, msg), msg);
    assert_int_equal(e.nfiles, 1);
    assert_string_equal(e.files[0].name, "f3");
    ember__sl_offsets_free(ctx, &e);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 0);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.late_files, 1);
    /* Update mode: batch 1's file holds only what it changed. */
    char *b1 = batch_output(&t, 1);
    assert_string_equal(b1, "c,1\n");
    free(b1);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A late file that arrives while no stream runs is reported (warning and
 * count) by the next start; the files taken before are not. */
static void test_stream_late_file_across_restart(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_UPDATE);
    put_file(&t, "f1", "a\n");
    put_file(&t, "f2", "b\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    ember_stream_destroy(&s);
    /* file times have a clock tick's resolution: let one pass, so that the
     * late file is strictly newer than the last offsets entry */
    struct timespec tick = {0, 50 * 1000 * 1000};
    nanosleep(&tick, NULL);
    put_file(&t, "f0", "late\n"); /* sorts before f2, the mark */
    put_file(&t, "f3", "c\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    ember__soffsets e;
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 1, &e, msg), msg);
    assert_int_equal(e.nfiles, 1);
    assert_string_equal(e.files[0].name, "f3");
    ember__sl_offsets_free(ctx, &e);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.late_files, 1); /* f0; not f1, f2 */
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.late_files, 1); /* reported once */
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* ---- listings with gaps -------------------------------------------------- */

/* A listing test hook: pass `hide_pass` (1-based, counted from arming)
 * misses `name`, as readdir may miss an entry renamed in while it runs. */
typedef struct {
    int pass;
    int hide_pass;
    const char *name;
} gap_hook;

static void gap_opened(void *arg)
{
    ((gap_hook *)arg)->pass++;
}

static int gap_hide(void *arg, const char *name)
{
    const gap_hook *g = arg;
    return g->pass == g->hide_pass && strcmp(name, g->name) == 0;
}

static void arm_gap(ember_stream *s, gap_hook *g, int hide_pass, const char *name)
{
    *g = (gap_hook){0, hide_pass, name};
    ember__src_hook h = {gap_opened, gap_hide, g};
    ember__stream_list_hook(s, &h);
}

static void offsets_names(const tdir *t, ember_ctx *ctx, uint64_t batch, const char *want)
{
    char msg[EMBER_MSG_SIZE], got[256] = "";
    ember__soffsets e;
    TU_OKM(ember__sl_offsets_read(ctx, t->loc, batch, &e, msg), msg);
    for (size_t i = 0; i < e.nfiles; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                 e.files[i].name);
    ember__sl_offsets_free(ctx, &e);
    assert_string_equal(got, want);
}

/* f3 then f4 are renamed in while a listing's pass runs, and that pass
 * misses f3 (readdir promises only the entries there when it opened the
 * directory). A stream that moved its mark to f4 lost f3 for good, a
 * "late file". Here the pass takes nothing past f2, the largest name an
 * earlier pass saw; a second pass, opened after the first saw f4, has
 * both: the batch takes f3 and f4. f6, which the first pass of the next
 * listing misses, sorts after f5, which it saw: it waits for the next
 * listing. A listing with nothing new is one pass. */
static void test_stream_listing_gap_loses_nothing(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    const char *texts[6] = {"a\n", "b\n", "c\n", "d\n", "e\n", "f\n"};
    put_file(&t, "f1", texts[0]);
    put_file(&t, "f2", texts[1]);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    offsets_names(&t, ctx, 0, "f1 f2");
    put_file(&t, "f3", texts[2]);
    put_file(&t, "f4", texts[3]);
    gap_hook g;
    arm_gap(s, &g, 1, "f3");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    offsets_names(&t, ctx, 1, "f3 f4");
    assert_int_equal(g.pass, 2);
    put_file(&t, "f5", texts[4]);
    put_file(&t, "f6", texts[5]);
    arm_gap(s, &g, 1, "f6");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    assert_int_equal(g.pass, 2);
    offsets_names(&t, ctx, 2, "f5");
    arm_gap(s, &g, 0, "");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    assert_int_equal(g.pass, 1); /* f6 is no later than the largest name seen */
    offsets_names(&t, ctx, 3, "f6");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 0);
    assert_int_equal(g.pass, 2);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.late_files, 0);
    assert_int_equal(st.files, 6);
    char *want = reference(texts, 6), *got = newest_output(&t);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* ---- changed after its batch ---------------------------------------------- */

typedef struct {
    const tdir *t;
    ember_ctx *ctx;
    wq *q;
    ember_stream_stats st;
} restart_run;

static void restart_and_step(void *arg)
{
    restart_run *r = arg;
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(r->t, r->q, EMBER_OUTPUT_COMPLETE);
    TU_OKM(ember_stream_create(&s, r->ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    ember_stream_get_stats(s, &r->st);
    ember_stream_destroy(&s);
}

/* Files a committed batch took and that were written in place before the
 * stream planned its last batch (so before the offsets entry a time rule
 * would compare with) are named at the next start: f1 grew, f2 kept its
 * size and got another modification time. f3, only chmod'ed, is no
 * change; f4, taken after the changes, neither. Each restart says it again
 * while a retained offsets entry lists the file. */
static void test_stream_changed_before_last_plan_warned(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "f1", "a a\n");
    put_file(&t, "f2", "b b\n");
    put_file(&t, "f3", "c c\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    offsets_names(&t, ctx, 0, "f1 f2 f3");
    snprintf(p, sizeof p, "%s/f1", t.src);
    FILE *f = fopen(p, "a");
    assert_non_null(f);
    fputs("a a a a\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(p, sizeof p, "%s/f2", t.src);
    struct timespec old[2] = {{1000000000, 5}, {1000000000, 5}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    snprintf(p, sizeof p, "%s/f3", t.src);
    assert_int_equal(chmod(p, 0600), 0);
    put_file(&t, "f4", "d\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    offsets_names(&t, ctx, 1, "f4");
    ember_stream_destroy(&s);
    put_file(&t, "f5", "e\n");
    restart_run r = {&t, ctx, &q, {0}};
    for (int run = 0; run < 2; run++) {
        char *err = tu_stderr_of(restart_and_step, &r);
        assert_non_null(strstr(err, "/f1 was modified after batch 0 took it"));
        assert_non_null(strstr(err, "it had 4 bytes modified at "));
        assert_non_null(strstr(err, ", 12 bytes modified at "));
        assert_non_null(strstr(err, "/f2 was modified after batch 0 took it"));
        assert_non_null(strstr(err, "4 bytes modified at 1000000000.000000005 s now"));
        assert_null(strstr(err, "/f3 was modified"));
        assert_null(strstr(err, "/f4 was modified"));
        assert_null(strstr(err, "late file"));
        assert_int_equal(r.st.late_files, 0);
        free(err);
    }
    offsets_names(&t, ctx, 2, "f5");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_failed_batch_rerun_exactly_once(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(2);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "a", "x y\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    put_file(&t, "b", "y z\n");
    q.fail_batch = 1;
    assert_int_equal(ember_stream_step(s, &ran, msg), EMBER_EUSER);
    TU_MSG_HAS(msg, "injected failure");
    /* Planned (offsets/1 lists b) but not committed. */
    char p[600];
    snprintf(p, sizeof p, "%s/commits/1", t.loc);
    assert_int_equal(access(p, F_OK), -1);
    put_file(&t, "c", "z z\n"); /* arrives after batch 1 was planned */
    ember_stream_destroy(&s);

    /* A new run re-runs batch 1 with exactly b, then takes c. */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    char *b1 = batch_output(&t, 1);
    assert_string_equal(b1, "x,1\ny,2\nz,1\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    char *b2 = batch_output(&t, 2);
    assert_string_equal(b2, "x,1\ny,2\nz,3\n");
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.recovered, 1);
    ember_stream_destroy(&s);
    free(b1);
    free(b2);

    /* The same within one stream: a failed step leaves the state as it
     * was, and the next step re-runs the batch. */
    td_done(&t);
    td_init(&t);
    put_file(&t, "a", "x\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    q.fail_batch = -1;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    put_file(&t, "b", "x\n");
    /* Fail after the merge: make the sink directory unwritable. */
    snprintf(p, sizeof p, "%s/batch-000000000001.csv", t.out);
    assert_int_equal(mkdir(p, 0755), 0); /* a directory where the file goes */
    assert_int_not_equal(ember_stream_step(s, &ran, msg), EMBER_OK);
    assert_int_equal(rmdir(p), 0);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    b1 = batch_output(&t, 1);
    assert_string_equal(b1, "x,2\n");
    free(b1);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_changed_file_refused(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "a", "x y\n");
    q.fail_batch = 0;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    assert_int_equal(ember_stream_step(s, &ran, msg), EMBER_EUSER);
    ember_stream_destroy(&s);
    put_file(&t, "a", "x y and more\n"); /* replaced: not allowed */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(ember_stream_step(s, &ran, msg), EMBER_EFORMAT);
    TU_MSG_HAS(msg, "changed after it arrived");
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Runs n batches of one file each into a fresh location. */
static char **run_batches(const tdir *t, ember_ctx *ctx, wq *q, int n, int retain,
                          char **texts)
{
    char msg[EMBER_MSG_SIZE], name[32];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(t, q, EMBER_OUTPUT_COMPLETE);
    o.retain = retain;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    for (int i = 0; i < n; i++) {
        texts[i] = random_text(500 + (uint64_t)i, 100);
        snprintf(name, sizeof name, "f%04d", i);
        put_file(t, name, texts[i]);
        int ran;
        TU_OKM(ember_stream_step(s, &ran, msg), msg);
        assert_int_equal(ran, 1);
    }
    ember_stream_destroy(&s);
    return texts;
}

static void test_stream_snapshot_fallback_replays(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(2);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[6];
    run_batches(&t, ctx, &q, 5, 10, texts);
    char *want = reference((const char *const *)texts, 5);
    snprintf(p, sizeof p, "%s/state/4.h5", t.loc);
    damage(p);
    snprintf(p, sizeof p, "%s/state/3.h5", t.loc);
    unlink(p);

    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    q.calls = 0;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.snapshot_fallbacks, 1);
    assert_int_equal(st.restored_from, 2);
    assert_int_equal(st.replayed, 2); /* batches 3 and 4 */
    assert_int_equal(q.calls, 2);
    /* The rebuilt state continues exactly. */
    texts[5] = random_text(999, 100);
    put_file(&t, "f9999", texts[5]);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    char *got = newest_output(&t);
    free(want);
    want = reference((const char *const *)texts, 6);
    assert_string_equal(got, want);
    free(got);
    ember_stream_destroy(&s);
    /* The rebuilt snapshot of batch 4 was written: no replay now. */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.replayed, 0);
    assert_int_equal(st.restored_from, 5);
    ember_stream_destroy(&s);
    free(want);
    for (int i = 0; i < 6; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Overwrites the start of a source file in place with bytes of the same
 * length: its size stays, its content and time change. */
static void overwrite_in_place(const tdir *t, const char *name, const char *bytes)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", t->src, name);
    struct timespec tick = {0, 20 * 1000 * 1000}; /* a new time stamp, even coarse */
    nanosleep(&tick, NULL);
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, strlen(bytes), 0), (ssize_t)strlen(bytes));
    close(fd);
}

/* A replay of a committed batch reads the bytes it read the first time or
 * stops, naming the file: a same-size change in place is caught by the
 * content hash in the commit entry. A file only touched (same bytes, new
 * time) replays fine. */
static void test_stream_replay_changed_file_refused(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[4];
    run_batches(&t, ctx, &q, 4, 10, texts);
    ember__scommit c;
    TU_OKM(ember__sl_commit_read(ctx, t.loc, 3, &c, msg), msg);
    assert_non_null(c.hashes);
    ember__sl_commit_free(ctx, &c);
    snprintf(p, sizeof p, "%s/state/3.h5", t.loc);
    damage(p);
    snprintf(p, sizeof p, "%s/f0003", t.src);
    struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    assert_int_equal(utimensat(AT_FDCWD, p, now, 0), 0); /* touched only */
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.replayed, 1);
    ember_stream_destroy(&s);

    snprintf(p, sizeof p, "%s/state/3.h5", t.loc);
    damage(p);
    overwrite_in_place(&t, "f0003", "cherry");
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EFORMAT);
    assert_null(s);
    TU_MSG_HAS(msg, "re-running batch 3");
    TU_MSG_HAS(msg, "/f0003 changed after batch 3 read it");
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A batch planned and not committed whose file is written in place at the
 * same size before its re-run: its planning time no longer matches, and
 * the re-run stops naming the file rather than read other bytes. */
static void test_stream_pending_changed_in_place(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "a", "apple banana\n");
    q.fail_batch = 0;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    assert_int_equal(ember_stream_step(s, &ran, msg), EMBER_EUSER);
    ember_stream_destroy(&s);
    ember__soffsets e;
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 0, &e, msg), msg);
    assert_true(e.files[0].has_mtime);
    ember__sl_offsets_free(ctx, &e);
    overwrite_in_place(&t, "a", "cherry");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(ember_stream_step(s, &ran, msg), EMBER_EFORMAT);
    TU_MSG_HAS(msg, "/a changed after it arrived: it was modified at");
    TU_MSG_HAS(msg, "touch -d @"); /* the way out: it is refused on every restart */
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Rewrites offsets/<b> and commits/<b> as format 1 wrote them: no times,
 * no hashes. */
static void downgrade_logs(const tdir *t, ember_ctx *ctx, uint64_t b)
{
    char msg[EMBER_MSG_SIZE], p[600], text[1024];
    ember__soffsets o;
    ember__scommit c;
    TU_OKM(ember__sl_offsets_read(ctx, t->loc, b, &o, msg), msg);
    TU_OKM(ember__sl_commit_read(ctx, t->loc, b, &c, msg), msg);
    assert_int_equal(o.nfiles, 1);
    snprintf(text, sizeof text, "ember-stream-offsets 1\nbatch %" PRIu64 "\nquery %s\n"
             "files 1\nfile %" PRIu64 " %s\ncreated x\n", b, o.query_id, o.files[0].size,
             o.files[0].name);
    snprintf(p, sizeof p, "%s/offsets/%" PRIu64, t->loc, b);
    write_checksummed(p, text);
    snprintf(text, sizeof text, "ember-stream-commit 1\nbatch %" PRIu64 "\nquery %s\n"
             "state %" PRIu64 "\nfiles 1\nrows %" PRIu64 "\ncreated x\n", b, c.query_id,
             c.state_version, c.rows);
    snprintf(p, sizeof p, "%s/commits/%" PRIu64, t->loc, b);
    write_checksummed(p, text);
    ember__sl_offsets_free(ctx, &o);
    ember__sl_commit_free(ctx, &c);
}

/* Logs of format 1 (an older ember's) carry no hashes: their batches are
 * replayed on trust, with the size check only, so that such a location
 * stays usable after a snapshot fallback. */
static void test_stream_replay_format1_logs(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[3];
    run_batches(&t, ctx, &q, 3, 10, texts);
    downgrade_logs(&t, ctx, 2);
    ember__scommit c;
    TU_OKM(ember__sl_commit_read(ctx, t.loc, 2, &c, msg), msg);
    assert_null(c.hashes);
    snprintf(p, sizeof p, "%s/state/2.h5", t.loc);
    damage(p);
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.replayed, 1);
    /* The rebuilt counts are the three batches' counts. */
    char *more[4] = {texts[0], texts[1], texts[2], random_text(777, 100)};
    put_file(&t, "f9999", more[3]);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    char *got = newest_output(&t), *want = reference((const char *const *)more, 4);
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(more[3]);
    ember_stream_destroy(&s);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A commit or offsets entry that the writer never makes is refused as
 * damaged, naming the file. */
static void expect_corrupt_commit(const tdir *t, ember_ctx *ctx, const char *text,
                                  const char *why)
{
    char msg[EMBER_MSG_SIZE], p[600];
    snprintf(p, sizeof p, "%s/commits/4", t->loc);
    write_checksummed(p, text);
    ember__scommit c;
    assert_int_equal(ember__sl_commit_read(ctx, t->loc, 4, &c, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, why);
    ember__sl_commit_free(ctx, &c);
}

static void test_stream_log_bad_hashes_refused(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], p[600];
    snprintf(p, sizeof p, "%s/commits", t.loc);
    TU_OKM(ember__sl_mkdir(t.loc, msg), msg);
    TU_OKM(ember__sl_mkdir(p, msg), msg);
    const char *head = "ember-stream-commit 2\nbatch 4\nquery "
                       "0123456789abcdef0123456789abcdef\nstate none\nfiles 2\nrows 1\n";
    char text[1024];
    snprintf(text, sizeof text, "%screated x\n", head); /* replayed on trust before */
    expect_corrupt_commit(&t, ctx, text, "no hash lines");
    snprintf(text, sizeof text, "%shash 0000000000000001\ncreated x\n", head);
    expect_corrupt_commit(&t, ctx, text, "hash lines do not match");
    snprintf(text, sizeof text, "%shash 0000000000000001\nhash 000000000000000g\n"
             "created x\n", head);
    expect_corrupt_commit(&t, ctx, text, "bad hash line");
    snprintf(text, sizeof text, "%shash 0000000000000001\nhash FFFFFFFFFFFFFFFF\n"
             "created x\n", head); /* the writer's hex is lower case */
    expect_corrupt_commit(&t, ctx, text, "bad hash line");
    snprintf(text, sizeof text, "%shash 0000000000000001\nhash ffffffffffffffff\n"
             "created x\n", head);
    snprintf(p, sizeof p, "%s/commits/4", t.loc);
    write_checksummed(p, text);
    ember__scommit c;
    TU_OKM(ember__sl_commit_read(ctx, t.loc, 4, &c, msg), msg);
    assert_true(c.hashes[0] == 1 && c.hashes[1] == UINT64_MAX);
    ember__sl_commit_free(ctx, &c);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Format 2 offsets lines carry the mtime ("-": unknown) before the name; a
 * line without it, or with one no file system time gives, is damaged. */
static void test_stream_log_offsets_mtime_refused(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], p[600], text[1024];
    snprintf(p, sizeof p, "%s/offsets", t.loc);
    TU_OKM(ember__sl_mkdir(t.loc, msg), msg);
    TU_OKM(ember__sl_mkdir(p, msg), msg);
    snprintf(p, sizeof p, "%s/offsets/0", t.loc);
    const char *lines[] = {"file 12 a", "file 12 -9223372036854775808 a",
                           "file 12 9223372036854775807 a", "file 12 x a"};
    ember__soffsets o;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        snprintf(text, sizeof text, "ember-stream-offsets 2\nbatch 0\nquery "
                 "0123456789abcdef0123456789abcdef\nfiles 1\n%s\ncreated x\n", lines[i]);
        write_checksummed(p, text);
        assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 0, &o, msg), EMBER_ECORRUPT);
        TU_MSG_HAS(msg, "bad file line");
    }
    snprintf(text, sizeof text, "ember-stream-offsets 2\nbatch 0\nquery "
             "0123456789abcdef0123456789abcdef\nfiles 1\nfile 12 -1500000000 a\n"
             "created x\n");
    write_checksummed(p, text);
    TU_OKM(ember__sl_offsets_read(ctx, t.loc, 0, &o, msg), msg);
    assert_true(o.files[0].has_mtime && o.files[0].mtime_ns == -1500000000);
    ember__sl_offsets_free(ctx, &o);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A second claim never replaces the owner file, and leaves no temporary. */
static void test_stream_owner_write_no_replace(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], p[600];
    TU_OKM(ember__sl_mkdir(t.out, msg), msg);
    ember__sowner a = {.location = "/a"}, b = {.location = "/b"}, r;
    memcpy(a.query_id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", EMBER__SQ_ID_SIZE);
    memcpy(b.query_id, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", EMBER__SQ_ID_SIZE);
    int created = 0;
    TU_OKM(ember__sl_owner_write(ctx, t.out, &a, &created, msg), msg);
    assert_int_equal(created, 1);
    snprintf(p, sizeof p, "%s/%s", t.out, EMBER__SINK_OWNER);
    char *before = slurp(p, NULL);
    TU_OKM(ember__sl_owner_write(ctx, t.out, &b, &created, msg), msg);
    assert_int_equal(created, 0);
    char *after = slurp(p, NULL);
    assert_string_equal(before, after);
    TU_OKM(ember__sl_owner_read(ctx, t.out, &r, msg), msg);
    assert_string_equal(r.query_id, a.query_id);
    assert_string_equal(r.location, "/a");
    snprintf(p, sizeof p, "%s/%s.%s.tmp", t.out, EMBER__SINK_OWNER, b.query_id);
    assert_int_equal(access(p, F_OK), -1);
    free(before);
    free(after);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_snapshot_all_bad(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[12];
    /* Logs reach back to batch 0: the state is rebuilt from scratch. */
    run_batches(&t, ctx, &q, 3, 10, texts);
    for (int b = 0; b < 3; b++) {
        snprintf(p, sizeof p, "%s/state/%d.h5", t.loc, b);
        damage(p);
    }
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.retain = 3;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    ember_stream_stats st;
    ember_stream_get_stats(s, &st);
    assert_int_equal(st.snapshot_fallbacks, 3);
    assert_int_equal(st.replayed, 3);
    assert_int_equal(st.restored, 0);
    ember_stream_destroy(&s);
    for (int i = 0; i < 3; i++)
        free(texts[i]);
    td_done(&t);

    /* Retention removed the early logs: a clear failure. */
    td_init(&t);
    run_batches(&t, ctx, &q, 12, 3, texts);
    for (int b = 0; b < 12; b++) {
        snprintf(p, sizeof p, "%s/state/%d.h5", t.loc, b);
        if (access(p, F_OK) == 0)
            damage(p);
    }
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "no state snapshot");
    TU_MSG_HAS(msg, "the state is lost");
    for (int i = 0; i < 12; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A missing log entry is named, not described as a range that "does not
 * fit". */
static void test_stream_missing_log_entry_named(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[6];
    run_batches(&t, ctx, &q, 6, 10, texts);
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    snprintf(p, sizeof p, "%s/offsets/1", t.loc);
    char *keep = slurp(p, NULL);
    unlink(p);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "offsets/1 is missing");
    write_bytes(p, keep, strlen(keep));
    free(keep);
    snprintf(p, sizeof p, "%s/offsets/5", t.loc);
    unlink(p);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "offsets/5 is missing (commits/5 is there");
    snprintf(p, sizeof p, "%s/commits/3", t.loc);
    unlink(p);
    snprintf(p, sizeof p, "%s/commits/4", t.loc);
    unlink(p);
    snprintf(p, sizeof p, "%s/commits/5", t.loc);
    unlink(p);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "commits/3 is missing (offsets/4 is there, the newest commit is "
                    "commits/2)");
    for (int i = 0; i < 6; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_retention(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char p[600];
    char *texts[20];
    run_batches(&t, ctx, &q, 20, 4, texts);
    snprintf(p, sizeof p, "%s/state", t.loc);
    assert_int_equal(count_entries(p), 4);
    snprintf(p, sizeof p, "%s/offsets", t.loc);
    assert_int_equal(count_entries(p), 4);
    snprintf(p, sizeof p, "%s/offsets/16", t.loc);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/commits", t.loc);
    assert_int_equal(count_entries(p), 4);
    assert_int_equal(count_entries(t.out), 20); /* the sink keeps all output */
    char *want = reference((const char *const *)texts, 20), *got = newest_output(&t);
    assert_string_equal(got, want);
    free(got);
    free(want);
    for (int i = 0; i < 20; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Batches that leave the state as it is (empty files, rows a filter
 * drops) still let retention work: the unchanged state is snapshotted
 * again once its snapshot is as old as retention, so the location stays
 * bounded and a start does not replay (and need the files of) every batch
 * since the last change. Before, 30 empty batches kept 31 offsets entries,
 * and removing a committed empty file made the next start fail. */
static void test_stream_unchanged_state_bounded(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], name[32], p[600];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.retain = 4;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    for (int i = 0; i < 31; i++) {
        snprintf(name, sizeof name, "f%04d", i);
        put_file(&t, name, i == 0 ? "hello world\n" : "");
        int ran;
        TU_OKM(ember_stream_step(s, &ran, msg), msg);
        assert_int_equal(ran, 1);
    }
    ember_stream_destroy(&s);
    snprintf(p, sizeof p, "%s/offsets", t.loc);
    assert_true(count_entries(p) <= 8);
    snprintf(p, sizeof p, "%s/commits", t.loc);
    assert_true(count_entries(p) <= 8);
    snprintf(p, sizeof p, "%s/f0015", t.src);
    assert_int_equal(unlink(p), 0);
    put_file(&t, "f0031", "hello again\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    ember_stream_destroy(&s);
    char *got = newest_output(&t);
    assert_non_null(strstr(got, "hello,2"));
    assert_non_null(strstr(got, "world,1"));
    assert_non_null(strstr(got, "again,1"));
    free(got);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A batch run again after a crash between its sink file and its commit
 * writes the same bytes, and the file already there is kept as it is
 * (inode and mtime): a stream that reads this sink as its source had
 * refused to start when a re-run gave the file a new mtime. */
static void test_stream_rerun_keeps_identical_sink_file(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600], out[600];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    put_file(&t, "f0", "a b a\n");
    int ran;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    assert_int_equal(ran, 1);
    ember_stream_destroy(&s);
    snprintf(out, sizeof out, "%s/batch-000000000000.csv", t.out);
    struct stat before, after;
    assert_int_equal(stat(out, &before), 0);
    snprintf(p, sizeof p, "%s/commits/0", t.loc); /* killed before the commit */
    assert_int_equal(unlink(p), 0);
    usleep(20000); /* a rewrite would show a later mtime */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    ember_stream_destroy(&s);
    assert_int_equal(access(p, F_OK), 0); /* batch 0 committed this time */
    assert_int_equal(stat(out, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    assert_int_equal(count_entries(t.out), 1);
    snprintf(p, sizeof p, "%s/.batch-000000000000.csv.tmp", t.out);
    assert_int_not_equal(access(p, F_OK), 0); /* no temporary left */
    char *got = newest_output(&t);
    assert_non_null(strstr(got, "a,2"));
    free(got);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A committed batch's sink file removed (or a sink restored from an older
 * copy) loses its rows for good: the next start says so. */
static void test_stream_sink_missing_batch_warned(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    put_file(&t, "f0", "a\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    put_file(&t, "f1", "b\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    ember_stream_destroy(&s);
    restart_run r = {&t, ctx, &q, {0}};
    put_file(&t, "f2", "c\n");
    char *err = tu_stderr_of(restart_and_step, &r);
    assert_null(strstr(err, "lacks"));
    free(err);
    snprintf(p, sizeof p, "%s/batch-000000000001.csv", t.out);
    assert_int_equal(unlink(p), 0);
    put_file(&t, "f3", "d\n");
    err = tu_stderr_of(restart_and_step, &r);
    assert_non_null(strstr(err, "lacks batch-000000000001.csv, the output of committed "
                                "batch 1"));
    assert_null(strstr(err, "batch-000000000000.csv"));
    free(err);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Progress callback: adds a file during the run, or stops the stream. */
typedef struct {
    const tdir *t;
    ember_stream **s;
    int batches;
    int stop_at;
} prog_arg;

static void on_progress(const ember_stream_progress *p, void *arg)
{
    prog_arg *a = arg;
    a->batches++;
    assert_true(p->seconds >= 0);
    if (p->batch == 0)
        put_file(a->t, "z-late-arrival", "new\n");
    if (a->stop_at >= 0 && (int)p->batch == a->stop_at)
        ember_stream_stop(*a->s);
}

static void test_stream_available_now(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], name[16];
    ember_stream *s = NULL;
    prog_arg pa = {&t, &s, 0, -1};
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.trigger = EMBER_TRIGGER_AVAILABLE_NOW;
    o.max_files = 2;
    o.progress = on_progress;
    o.progress_arg = &pa;
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "f%d", i);
        put_file(&t, name, "w\n");
    }
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_run(s, msg), msg);
    assert_int_equal(pa.batches, 3); /* 2 + 2 + 1, not the late arrival */
    char *got = newest_output(&t);
    assert_string_equal(got, "w,5\n");
    free(got);
    ember_stream_destroy(&s);

    /* ONCE: one batch of everything there is. */
    o.trigger = EMBER_TRIGGER_ONCE;
    pa.batches = 0;
    put_file(&t, "z2", "new\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_run(s, msg), msg);
    assert_int_equal(pa.batches, 1);
    got = newest_output(&t);
    assert_string_equal(got, "new,2\nw,5\n");
    free(got);
    TU_OKM(ember_stream_run(s, msg), msg); /* nothing new: no batch */
    assert_int_equal(pa.batches, 1);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_stop_interrupts(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], name[16];
    ember_stream *s = NULL;
    prog_arg pa = {&t, &s, 0, 1};
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.max_files = 1;
    o.progress = on_progress;
    o.progress_arg = &pa;
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "f%d", i);
        put_file(&t, name, "w\n");
    }
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(ember_stream_run(s, msg), EMBER_INTERRUPTED);
    assert_int_equal(pa.batches, 2); /* batch 1 finished and committed */
    TU_MSG_HAS(msg, "with batch 1 committed in ");
    char p[600];
    snprintf(p, sizeof p, "%s/commits/1", t.loc);
    assert_int_equal(access(p, F_OK), 0);
    ember_stream_destroy(&s);
    /* max_batches ends a default-trigger run too. */
    o.progress = NULL;
    o.max_batches = 2;
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    TU_OKM(ember_stream_run(s, msg), msg);
    char *got = newest_output(&t);
    assert_string_equal(got, "w,4\n");
    free(got);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* ---- other query shapes ---------------------------------------------------------- */

/* Line lengths: (length, 1) pairs, a numeric key. */
static int line_len(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const ember_line *l = in;
    int64_t *o = out;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = (int64_t)l[i].length;
        o[2 * i + 1] = 1;
    }
    return 0;
}

static int lengths_batch(ember_ds **out, ember_ds *lines, const ember_stream_batch *b,
                         void *arg, char *msg)
{
    (void)b;
    return ember_map(out, lines, (const ember_type *)arg, line_len, NULL, 0, msg);
}

/* Keeps the max instead of summing. */
static int keep_max(void *acc, const void *in, size_t n, void *arg)
{
    (void)arg;
    int64_t *a = acc;
    const int64_t *x = in;
    for (size_t i = 0; i < n; i++)
        a[1] = x[2 * i + 1] > a[1] ? x[2 * i + 1] : a[1];
    return 0;
}

static void test_stream_numeric_keys(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_type pair = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_stream_opts o;
    memset(&o, 0, sizeof o);
    o.source_dir = t.src;
    o.checkpoint_location = t.loc;
    o.sink_dir = t.out;
    o.batch_fn = lengths_batch;
    o.batch_arg = &pair;
    o.key = EMBER_KEY_NUMBER;
    o.record_type = &pair;
    o.no_signals = 1;
    ember_stream *s = NULL;
    put_file(&t, "a", "xx\nyyy\nzz\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg); /* default: update */
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    put_file(&t, "b", "abc\r\n\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    char *b0 = batch_output(&t, 0), *b1 = batch_output(&t, 1);
    assert_string_equal(b0, "2,2\n3,1\n");
    assert_string_equal(b1, "0,1\n3,2\n"); /* only the changed keys */
    free(b0);
    free(b1);
    ember_stream_destroy(&s);
    td_done(&t);

    /* A custom merge: max instead of sum. */
    td_init(&t);
    o.source_dir = t.src;
    o.checkpoint_location = t.loc;
    o.sink_dir = t.out;
    o.merge = keep_max;
    o.output_mode = EMBER_OUTPUT_COMPLETE;
    put_file(&t, "a", "xx\nyy\n");
    put_file(&t, "b", "zz\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    b0 = batch_output(&t, 0);
    assert_string_equal(b0, "2,1\n");
    free(b0);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_stateless_append(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_type pair = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_stream_opts o;
    memset(&o, 0, sizeof o);
    o.source_dir = t.src;
    o.checkpoint_location = t.loc;
    o.sink_dir = t.out;
    o.batch_fn = lengths_batch;
    o.batch_arg = &pair;
    o.record_type = &pair; /* EMBER_KEY_NONE: append by default */
    o.no_signals = 1;
    ember_stream *s = NULL;
    put_file(&t, "a", "xx\nyyy\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    int ran;
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    put_file(&t, "b", "q\n");
    TU_OKM(ember_stream_step(s, &ran, msg), msg);
    char *b0 = batch_output(&t, 0), *b1 = batch_output(&t, 1);
    assert_string_equal(b0, "2,1\n3,1\n");
    assert_string_equal(b1, "1,1\n");
    free(b0);
    free(b1);
    assert_int_equal(ember_stream_state(s, NULL, msg), EMBER_EINVAL);
    ember_ds *ds = NULL;
    assert_int_equal(ember_stream_state(s, &ds, msg), EMBER_ESTATE);
    char p[600];
    snprintf(p, sizeof p, "%s/state", t.loc);
    assert_int_equal(count_entries(p), 0);
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

static void test_stream_csv_quoting(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    const char *in[] = {"plain", "a,b", "say \"hi\"", "\"", "", "x\ny", "\xc3\xa9"};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(ember_stream_csv_field(f, in[i], strlen(in[i])), 0);
        fputc('|', f);
    }
    fclose(f);
    assert_string_equal(buf, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"\"\"\"||\"x\ny\"|\xc3\xa9|");
    free(buf);
}

static void test_stream_hash_stable(void **state)
{
    (void)state;
    /* Keys live in snapshots: the function must never change within a
     * format version. */
    assert_true(ember_stream_hash("", 0) == ember_stream_hash("", 0));
    assert_true(ember_stream_hash("hello", 5) != ember_stream_hash("hellp", 5));
    assert_true(ember_stream_hash("ab", 2) != ember_stream_hash("ab\0", 3));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    uint64_t seen[64];
    for (size_t n = 0; n < 64; n++) { /* every length path, all distinct */
        seen[n] = ember_stream_hash(buf, n);
        for (size_t m = 0; m < n; m++)
            assert_true(seen[m] != seen[n]);
    }
    const char *long_text = "a string longer than sixteen bytes, to take the loop";
    assert_true(ember_stream_hash("hello", 5) == UINT64_C(0xd82d73928f595969));
    assert_true(ember_stream_hash(long_text, strlen(long_text)) ==
                UINT64_C(0x2cbddf23d5e5f9b2));
}

/* ---- allocation failures ------------------------------------------------------------- */

static void test_stream_out_of_memory(void **state)
{
    (void)state;
    tu_counter c;
    ember_allocator a = tu_allocator(&c);
    int clean = 0;
    for (long n = 1; n < 5000 && !clean; n++) {
        tdir t;
        td_init(&t);
        put_file(&t, "a", "one two two\n");
        put_file(&t, "b", "three, \"four\"\n");
        tu_counter_reset(&c, n);
        ember_ctx_opts co;
        memset(&co, 0, sizeof co);
        co.threads = 1;
        co.allocator = &a;
        ember_ctx *ctx = NULL;
        char msg[EMBER_MSG_SIZE];
        int rc = ember_ctx_create(&ctx, &co, msg);
        wq q;
        wq_init(&q, 0x1);
        ember_stream *s = NULL;
        ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
        o.max_files = 1;
        if (!rc)
            rc = ember_stream_create(&s, ctx, &o, msg);
        int ran = 1;
        while (!rc && ran)
            rc = ember_stream_step(s, &ran, msg);
        if (rc) /* a failure is an error status, never a crash */
            assert_true(rc < 0);
        ember_stream_destroy(&s);
        ember_ctx_destroy(&ctx);
        assert_int_equal(atomic_load(&c.live), 0);
        clean = atomic_load(&c.injected) == 0;
        if (clean) {
            assert_int_equal(rc, EMBER_OK);
            char *got = newest_output(&t);
            assert_string_equal(got, "\"\"\"four\"\"\",1\none,1\n\"three,\",1\ntwo,2\n");
            free(got);
        }
        td_done(&t);
    }
    assert_true(clean);
}

/* ---- locations that do not match what is beside them ----------------------------------- */

static void rm_id(const char *loc, const char *dir, int id, const char *suffix)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s/%d%s", loc, dir, id, suffix);
    assert_int_equal(unlink(p), 0);
}

/* An entry copied over another's name says which batch it holds. */
static void test_stream_log_entry_other_batch_named(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE], from[600], to[600];
    assert_int_equal(ember__sl_mkdir(t.loc, msg), EMBER_OK);
    const char *dirs[2] = {"offsets", "commits"};
    for (int d = 0; d < 2; d++) {
        snprintf(from, sizeof from, "%s/%s", t.loc, dirs[d]);
        assert_int_equal(ember__sl_mkdir(from, msg), EMBER_OK);
    }
    ember__sfile f = {.name = "x.txt", .size = 12};
    ember__soffsets o = {.batch = 5, .files = &f, .nfiles = 1};
    memcpy(o.query_id, "0123456789abcdef0123456789abcdef", EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_offsets_write(ctx, t.loc, &o, NULL, msg), msg);
    uint64_t h = 7;
    ember__scommit c = {.batch = 5, .files = 1, .hashes = &h};
    memcpy(c.query_id, o.query_id, EMBER__SQ_ID_SIZE);
    TU_OKM(ember__sl_commit_write(ctx, t.loc, &c, msg), msg);
    for (int d = 0; d < 2; d++) { /* cp offsets/5 offsets/6 */
        size_t len;
        snprintf(from, sizeof from, "%s/%s/5", t.loc, dirs[d]);
        snprintf(to, sizeof to, "%s/%s/6", t.loc, dirs[d]);
        char *bytes = slurp(from, &len);
        write_bytes(to, bytes, len);
        free(bytes);
    }
    ember__soffsets r;
    assert_int_equal(ember__sl_offsets_read(ctx, t.loc, 6, &r, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "offsets/6: holds batch 5, not 6");
    ember__scommit rc;
    assert_int_equal(ember__sl_commit_read(ctx, t.loc, 6, &rc, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "commits/6: holds batch 5, not 6");
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* With no commit, the only offsets entry there can be is offsets/0 (the
 * first batch, planned, perhaps with its sink file and snapshot written,
 * not committed: that resumes). A later entry alone, or snapshots of
 * later batches, mean lost commits: refused, never run from an empty
 * state over the sink's files. */
static void test_stream_no_commit_only_batch_0(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    char *texts[4];
    run_batches(&t, ctx, &q, 4, 10, texts);
    char *want3 = batch_output(&t, 3);
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    for (int i = 0; i < 4; i++)
        rm_id(t.loc, "commits", i, "");
    for (int i = 0; i < 3; i++)
        rm_id(t.loc, "offsets", i, "");
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    assert_null(s);
    TU_MSG_HAS(msg, "commits/0 is missing (offsets/3 is there, and no commit");
    TU_MSG_HAS(msg, t.loc);
    char *got = batch_output(&t, 3);
    assert_string_equal(got, want3);
    free(got);
    free(want3);
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    td_done(&t);

    /* offsets/0 alone, but state/1.h5 there: lost logs too. */
    td_init(&t);
    run_batches(&t, ctx, &q, 2, 10, texts);
    rm_id(t.loc, "commits", 0, "");
    rm_id(t.loc, "commits", 1, "");
    rm_id(t.loc, "offsets", 1, "");
    o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_ECORRUPT);
    TU_MSG_HAS(msg, "state/1.h5 is there, but it has committed no batch; batch 0 is "
                    "planned");
    /* without it, the sink still holds batch 1's file */
    rm_id(t.loc, "state", 1, ".h5");
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "holds batch-000000000001.csv");
    TU_MSG_HAS(msg, "it has committed no batch; batch 0 is planned");
    /* without that too: batch 0 killed before its commit, which resumes */
    char p[600];
    snprintf(p, sizeof p, "%s/%s", t.out, "batch-000000000001.csv");
    assert_int_equal(unlink(p), 0);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 2); /* batch 0 again, then f0001 */
    ember_stream_destroy(&s);
    got = newest_output(&t);
    char *ref = reference((const char *const *)texts, 2);
    assert_string_equal(got, ref);
    free(got);
    free(ref);
    for (int i = 0; i < 2; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A location older than its sink (restored from a copy) is refused,
 * naming the newest sink file and the last commit; a sink file of the
 * batch planned after the last commit (a kill between the sink file and
 * the commit) is not: that resumes. */
static void test_stream_sink_newer_than_location(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p[600];
    char *texts[6];
    run_batches(&t, ctx, &q, 6, 10, texts);
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    rm_id(t.loc, "commits", 5, ""); /* killed before commit 5: resumes */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    for (int i = 3; i < 6; i++) { /* a copy taken after batch 2 */
        rm_id(t.loc, "commits", i, "");
        rm_id(t.loc, "offsets", i, "");
        rm_id(t.loc, "state", i, ".h5");
    }
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    assert_null(s);
    TU_MSG_HAS(msg, "holds batch-000000000005.csv");
    TU_MSG_HAS(msg, "its last commit is batch 2 and no batch after it is planned");
    TU_MSG_HAS(msg, "batch files numbered above 2");
    /* each file after batch 2 is named in turn, newest first */
    snprintf(p, sizeof p, "%s/batch-000000000005.csv", t.out);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "holds batch-000000000004.csv");
    snprintf(p, sizeof p, "%s/batch-000000000004.csv", t.out);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(ember_stream_create(&s, ctx, &o, msg), EMBER_EMISMATCH);
    TU_MSG_HAS(msg, "holds batch-000000000003.csv");
    snprintf(p, sizeof p, "%s/batch-000000000003.csv", t.out);
    assert_int_equal(unlink(p), 0);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg); /* files moved away: goes on */
    assert_int_equal(drain(s), 1); /* f0003 .. f0005 in one batch 3 */
    ember_stream_destroy(&s);
    char *got = newest_output(&t), *ref = reference((const char *const *)texts, 6);
    assert_string_equal(got, ref);
    free(got);
    free(ref);
    for (int i = 0; i < 6; i++)
        free(texts[i]);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* A create that succeeds leaves no message behind (the sink's owner file
 * is looked for, and missing, on a first start). */
static void test_stream_create_clears_msg(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_string_equal(msg, "");
    ember_stream_destroy(&s);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Complete mode links a batch that changed nothing to the previous file
 * only when this run wrote that file: a header changed between runs
 * (allowed) is applied to the first such batch of the new run. */
static void test_stream_complete_repeat_new_header(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], p1[48], p2[48];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.header = "old";
    put_file(&t, "a", "x y\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    o.header = "new,header";
    o.max_files = 1;
    put_file(&t, "b", "");
    put_file(&t, "c", "\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 2);
    ember_stream_destroy(&s);
    char *b1 = batch_output(&t, 1), *b2 = batch_output(&t, 2);
    assert_string_equal(b1, "new,header\nx,1\ny,1\n");
    assert_string_equal(b2, b1);
    free(b1);
    free(b2);
    struct stat s1, s2; /* within the run, a copy: its own file */
    ember__sink_name(1, p1, sizeof p1);
    ember__sink_name(2, p2, sizeof p2);
    char f1[700], f2[700];
    snprintf(f1, sizeof f1, "%s/%s", t.out, p1);
    snprintf(f2, sizeof f2, "%s/%s", t.out, p2);
    assert_int_equal(stat(f1, &s1), 0);
    assert_int_equal(stat(f2, &s2), 0);
    assert_true(s1.st_ino != s2.st_ino && s2.st_nlink == 1);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* Complete mode: a batch that changes no count repeats the previous file
 * only while that file is still the one this run committed. A consumer
 * that emptied it (or edited it) meanwhile does not make the next file
 * empty: the rows are written again. (With a hard link the next file was
 * the emptied one, exit 0.) */
static void test_stream_complete_repeat_after_consumer(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE], name[48], path[700];
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.max_files = 1;
    put_file(&t, "a", "x y\n");
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    ember__sink_name(0, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", t.out, name);
    FILE *f = fopen(path, "w"); /* a consumer empties it in place */
    assert_non_null(f);
    fclose(f);
    put_file(&t, "b", "");
    assert_int_equal(drain(s), 1);
    put_file(&t, "c", ""); /* and this one copies batch 1, untouched */
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    char *b1 = batch_output(&t, 1), *b2 = batch_output(&t, 2);
    assert_string_equal(b1, "x,1\ny,1\n");
    assert_string_equal(b2, b1);
    free(b1);
    free(b2);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

/* The progress report's bytes are the files' bytes: not the line end the
 * batch text adds to a file that does not end with one. */
static void on_progress_bytes(const ember_stream_progress *p, void *arg)
{
    *(uint64_t *)arg += p->bytes;
}

static void test_stream_progress_bytes_of_files(void **state)
{
    (void)state;
    tdir t;
    td_init(&t);
    ember_ctx *ctx = tu_ctx(1);
    wq q;
    wq_init(&q, UINT64_MAX);
    char msg[EMBER_MSG_SIZE];
    uint64_t bytes = 0;
    ember_stream *s = NULL;
    ember_stream_opts o = wc_opts(&t, &q, EMBER_OUTPUT_COMPLETE);
    o.progress = on_progress_bytes;
    o.progress_arg = &bytes;
    put_file(&t, "a", "x y");     /* 3 bytes, no line end */
    put_file(&t, "b", "z\r\n"); /* 3 bytes */
    TU_OKM(ember_stream_create(&s, ctx, &o, msg), msg);
    assert_int_equal(drain(s), 1);
    ember_stream_destroy(&s);
    assert_int_equal(bytes, 6);
    ember_ctx_destroy(&ctx);
    td_done(&t);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_escape_roundtrip),
        cmocka_unit_test(test_stream_offsets_roundtrip),
        cmocka_unit_test(test_stream_offsets_corrupt),
        cmocka_unit_test(test_stream_commits_roundtrip),
        cmocka_unit_test(test_stream_log_bad_hashes_refused),
        cmocka_unit_test(test_stream_log_offsets_mtime_refused),
        cmocka_unit_test(test_stream_owner_write_no_replace),
        cmocka_unit_test(test_stream_metadata_compare),
        cmocka_unit_test(test_stream_metadata_bad_escape),
        cmocka_unit_test(test_stream_merge_collisions),
        cmocka_unit_test(test_stream_merge_rollback),
        cmocka_unit_test(test_stream_merge_empty_string),
        cmocka_unit_test(test_stream_snapshot_roundtrip),
        cmocka_unit_test(test_stream_mode_rules),
        cmocka_unit_test(test_stream_dirs_must_differ),
        cmocka_unit_test(test_stream_option_ranges),
        cmocka_unit_test(test_stream_restart_other_query_refused),
        cmocka_unit_test(test_stream_sink_one_query),
        cmocka_unit_test(test_stream_wordcount_exact),
        cmocka_unit_test(test_stream_key_not_of_bytes_refused),
        cmocka_unit_test(test_stream_source_listing),
        cmocka_unit_test(test_stream_max_files_and_late_files),
        cmocka_unit_test(test_stream_late_file_across_restart),
        cmocka_unit_test(test_stream_listing_gap_loses_nothing),
        cmocka_unit_test(test_stream_changed_before_last_plan_warned),
        cmocka_unit_test(test_stream_failed_batch_rerun_exactly_once),
        cmocka_unit_test(test_stream_changed_file_refused),
        cmocka_unit_test(test_stream_snapshot_fallback_replays),
        cmocka_unit_test(test_stream_replay_changed_file_refused),
        cmocka_unit_test(test_stream_pending_changed_in_place),
        cmocka_unit_test(test_stream_replay_format1_logs),
        cmocka_unit_test(test_stream_snapshot_all_bad),
        cmocka_unit_test(test_stream_missing_log_entry_named),
        cmocka_unit_test(test_stream_retention),
        cmocka_unit_test(test_stream_unchanged_state_bounded),
        cmocka_unit_test(test_stream_rerun_keeps_identical_sink_file),
        cmocka_unit_test(test_stream_sink_missing_batch_warned),
        cmocka_unit_test(test_stream_available_now),
        cmocka_unit_test(test_stream_stop_interrupts),
        cmocka_unit_test(test_stream_numeric_keys),
        cmocka_unit_test(test_stream_stateless_append),
        cmocka_unit_test(test_stream_csv_quoting),
        cmocka_unit_test(test_stream_hash_stable),
        cmocka_unit_test(test_stream_out_of_memory),
        cmocka_unit_test(test_stream_log_entry_other_batch_named),
        cmocka_unit_test(test_stream_no_commit_only_batch_0),
        cmocka_unit_test(test_stream_sink_newer_than_location),
        cmocka_unit_test(test_stream_create_clears_msg),
        cmocka_unit_test(test_stream_complete_repeat_new_header),
        cmocka_unit_test(test_stream_complete_repeat_after_consumer),
        cmocka_unit_test(test_stream_progress_bytes_of_files),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
