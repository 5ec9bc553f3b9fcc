/* test_lineage.c: lineage strings (one line per dataset, storage level and
 * cached counts, indentation where a shuffle ends a stage, datasets reached
 * twice shown once, names and broadcasts), lineage depth, the DOT export
 * (well-formed: "digraph", balanced braces, quoted labels even for names
 * with quotes, one edge per dependency), NULL arguments and allocation
 * failures.
 */
#include "internal.h"
#include "testutil.h"

static int ident(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    memcpy(out, in, n * 16);
    return 0;
}

static int to_pair(const void *in, void *out, size_t n, void *arg)
{
    (void)arg;
    const int64_t *a = in;
    int64_t (*b)[2] = out;
    for (size_t i = 0; i < n; i++) {
        b[i][0] = a[i] % 10;
        b[i][1] = a[i];
    }
    return 0;
}

static int keep_all(const void *in, unsigned char *keep, size_t n, void *arg)
{
    (void)in;
    (void)arg;
    memset(keep, 1, n);
    return 0;
}

/* Returns line i (0-based) of s in buf. */
static const char *line_of(const char *s, size_t i, char *buf, size_t size)
{
    for (; i && s; i--) {
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    assert_non_null(s);
    const char *e = strchr(s, '\n');
    assert_non_null(e);
    size_t len = (size_t)(e - s) < size - 1 ? (size_t)(e - s) : size - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/*   (3) map #5
 *    |  reduce_by_key #4
 *       +-(4) pairs #3 (map) [MEMORY_ONLY, 0/4 cached]
 *        |  filter #2
 *        |  range #1 */
static void test_lineage_string_stages_and_levels(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(2);
    char msg[EMBER_MSG_SIZE];
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ds *r = NULL, *f = NULL, *p = NULL, *red = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 1000, 1, 4, msg), msg);
    TU_OKM(ember_filter(&f, r, keep_all, NULL, 0, msg), msg);
    TU_OKM(ember_map(&p, f, &kv, to_pair, NULL, 0, msg), msg);
    TU_OK(ember_ds_set_name(p, "pairs"));
    TU_OKM(ember_cache(p, msg), msg);
    TU_OKM(ember_reduce_by_key(&red, p, NULL, NULL, 0, 3, msg), msg);
    TU_OKM(ember_map(&m, red, NULL, ident, NULL, 0, msg), msg);
    char *s = NULL, line[256];
    TU_OK(ember_lineage_string(m, &s));
    assert_int_equal(count_lines(s), 5);
    assert_string_equal(line_of(s, 0, line, sizeof line), "(3) map #5");
    assert_string_equal(line_of(s, 1, line, sizeof line), " |  reduce_by_key #4");
    assert_string_equal(line_of(s, 2, line, sizeof line),
                        "    +-(4) pairs #3 (map) [MEMORY_ONLY, 0/4 cached]");
    assert_string_equal(line_of(s, 3, line, sizeof line), "     |  filter #2");
    assert_string_equal(line_of(s, 4, line, sizeof line), "     |  range #1");
    ember_free(ctx, s);

    /* After an action the cached count moves. */
    uint64_t n;
    TU_OKM(ember_count(m, &n, msg), msg);
    TU_OK(ember_lineage_string(m, &s));
    TU_MSG_HAS(s, "pairs #3 (map) [MEMORY_ONLY, 4/4 cached]");
    ember_free(ctx, s);
    TU_OK(ember_unpersist(p));
    TU_OKM(ember_persist(p, EMBER_MEMORY_AND_DISK_SER, msg), msg);
    TU_OK(ember_lineage_string(p, &s));
    assert_string_equal(line_of(s, 0, line, sizeof line),
                        "(4) pairs #3 (map) [MEMORY_AND_DISK_SER, 0/4 cached]");
    ember_free(ctx, s);

    /* Two shuffles: two levels of indentation. */
    ember_ds *srt = NULL;
    TU_OKM(ember_sort_by_key(&srt, m, 0, 2, msg), msg);
    TU_OK(ember_lineage_string(srt, &s));
    assert_string_equal(line_of(s, 0, line, sizeof line), "(2) sort_by_key #6");
    assert_string_equal(line_of(s, 1, line, sizeof line), "    +-(3) map #5");
    assert_string_equal(line_of(s, 3, line, sizeof line),
                        "        +-(4) pairs #3 (map) [MEMORY_AND_DISK_SER, 0/4 cached]");
    ember_free(ctx, s);
    ember_ds *all[] = {r, f, p, red, m, srt};
    for (int i = 0; i < 6; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
}

static void test_lineage_string_shared_parent_once(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *z = NULL, *u = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    TU_OKM(ember_zip(&z, r, r, msg), msg);
    TU_OKM(ember_union(&u, r, r, msg), msg);
    char *s = NULL, line[256];
    TU_OK(ember_lineage_string(z, &s));
    assert_int_equal(count_lines(s), 3);
    assert_string_equal(line_of(s, 0, line, sizeof line), "(2) zip #2");
    assert_string_equal(line_of(s, 1, line, sizeof line), " |  range #1");
    assert_string_equal(line_of(s, 2, line, sizeof line), " |  range #1 (shown above)");
    ember_free(ctx, s);
    TU_OK(ember_lineage_string(u, &s));
    assert_string_equal(line_of(s, 0, line, sizeof line), "(4) union #3");
    TU_MSG_HAS(s, "(shown above)");
    ember_free(ctx, s);
    /* A source alone. */
    TU_OK(ember_lineage_string(r, &s));
    assert_string_equal(s, "(2) range #1\n");
    ember_free(ctx, s);
    ember_ds_free(&u);
    ember_ds_free(&z);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

static void test_lineage_string_shows_broadcasts(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *t = NULL, *r = NULL, *m = NULL;
    TU_OKM(ember_range(&t, ctx, 0, 5, 1, 1, msg), msg);
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    TU_OKM(ember_map(&m, r, &kv, to_pair, NULL, 0, msg), msg);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, t, msg), msg);
    TU_OK(ember_ds_uses(m, bc));
    char *s = NULL;
    TU_OK(ember_lineage_string(m, &s));
    TU_MSG_HAS(s, "map #3 [uses broadcast of #1]");
    ember_free(ctx, s);
    TU_OK(ember_lineage_dot(m, &s));
    TU_MSG_HAS(s, "b1 -> n3 [style=dashed, label=\"broadcast\"];");
    ember_free(ctx, s);
    ember_bcast_free(&bc);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ds_free(&t);
    ember_ctx_destroy(&ctx);
}

static void test_lineage_depth(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ds *r = NULL, *a = NULL, *b = NULL, *c = NULL, *z = NULL, *u = NULL,
             *red = NULL, *j = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 2, msg), msg);
    assert_int_equal(ember_lineage_depth(r), 0);
    TU_OKM(ember_map(&a, r, &kv, to_pair, NULL, 0, msg), msg);
    assert_int_equal(ember_lineage_depth(a), 1);
    TU_OKM(ember_map(&b, a, NULL, ident, NULL, 0, msg), msg);
    TU_OKM(ember_map(&c, b, NULL, ident, NULL, 0, msg), msg);
    assert_int_equal(ember_lineage_depth(c), 3);
    TU_OKM(ember_zip(&z, a, c, msg), msg); /* the longer branch counts */
    assert_int_equal(ember_lineage_depth(z), 4);
    TU_OKM(ember_union(&u, c, a, msg), msg);
    assert_int_equal(ember_lineage_depth(u), 4);
    TU_OKM(ember_reduce_by_key(&red, u, NULL, NULL, 0, 0, msg), msg);
    assert_int_equal(ember_lineage_depth(red), 5);
    TU_OKM(ember_join(&j, red, a, 0, msg), msg);
    assert_int_equal(ember_lineage_depth(j), 6);
    /* Running and caching do not change the structure. */
    TU_OKM(ember_cache(u, msg), msg);
    uint64_t n;
    TU_OKM(ember_count(j, &n, msg), msg);
    assert_int_equal(ember_lineage_depth(j), 6);
    assert_int_equal(ember_lineage_depth(NULL), 0);
    ember_ds *all[] = {r, a, b, c, z, u, red, j};
    for (int i = 0; i < 8; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
}

/* Checks DOT text: "digraph" first, balanced braces outside strings, every
 * string closed on its line and followed by what may follow a value, and
 * returns the number of edges. */
static size_t check_dot(const char *s)
{
    assert_memory_equal(s, "digraph", 7);
    int depth = 0, in_str = 0;
    size_t edges = 0;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"' && !strchr("],; ", p[1]))
                fail_msg("a string ends inside a label: %.40s", p);
            else if (*p == '"')
                in_str = 0;
            else if (*p == '\n')
                fail_msg("string not closed on its line in:\n%s", s);
            continue;
        }
        if (*p == '"')
            in_str = 1;
        else if (*p == '{')
            depth++;
        else if (*p == '}')
            assert_true(--depth >= 0);
        else if (p[0] == '-' && p[1] == '>')
            edges++;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(in_str, 0);
    size_t len = strlen(s);
    assert_true(len >= 2 && s[len - 1] == '\n' && s[len - 2] == '}');
    return edges;
}

static void test_lineage_dot_well_formed(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_ds *r = NULL, *a = NULL, *b = NULL, *z = NULL, *red = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 2, msg), msg);
    TU_OKM(ember_map(&a, r, &kv, to_pair, NULL, 0, msg), msg);
    TU_OKM(ember_map(&b, a, NULL, ident, NULL, 0, msg), msg);
    TU_OKM(ember_zip(&z, a, b, msg), msg);
    TU_OKM(ember_reduce_by_key(&red, b, NULL, NULL, 0, 3, msg), msg);
    TU_OKM(ember_cache(b, msg), msg);
    char *s = NULL;
    TU_OK(ember_lineage_dot(z, &s));
    assert_int_equal(check_dot(s), 4); /* r->a, a->b, a->z, b->z */
    TU_MSG_HAS(s, "n1 -> n2;");
    TU_MSG_HAS(s, "n2 -> n4;");
    TU_MSG_HAS(s, "n3 -> n4;");
    TU_MSG_HAS(s, "fillcolor=lightblue"); /* the persisted one */
    assert_int_equal(strstr(strstr(s, "n2 [label=") + 1, "n2 [label="), NULL);
    ember_free(ctx, s);
    TU_OK(ember_lineage_dot(red, &s));
    assert_int_equal(check_dot(s), 3);
    TU_MSG_HAS(s, "n3 -> n5 [style=bold, label=\"shuffle\"];");
    ember_free(ctx, s);
    TU_OK(ember_lineage_dot(r, &s));
    assert_int_equal(check_dot(s), 0);
    TU_MSG_HAS(s, "n1 [label=");
    ember_free(ctx, s);
    ember_ds *all[] = {r, a, b, z, red};
    for (int i = 0; i < 5; i++)
        ember_ds_free(&all[i]);
    ember_ctx_destroy(&ctx);
}

/* Parses the DOT export line by line: node statements "nID [label=...]"
 * (datasets) and "bID [label=...]" (broadcast copies), and edges
 * "xA -> nB"; fails unless every edge's ends are declared nodes. Returns
 * the edge count. */
static size_t check_dot_edges_declared(const char *s)
{
    unsigned char declared[2][256] = {{0}};
    unsigned long from[64], to[64];
    char kind[64];
    size_t edges = 0;
    for (const char *line = s; line && *line;) {
        unsigned long a, b;
        char k;
        int used = 0;
        if (sscanf(line, " %c%lu -> n%lu%n", &k, &a, &b, &used) == 3 && used &&
            (k == 'n' || k == 'b')) {
            assert_true(edges < 64);
            kind[edges] = k;
            from[edges] = a;
            to[edges++] = b;
        } else if (sscanf(line, " %c%lu [label=%n", &k, &a, &used) == 2 && used &&
                   (k == 'n' || k == 'b')) {
            assert_true(a < 256);
            declared[k == 'b'][a] = 1;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    for (size_t i = 0; i < edges; i++)
        if (from[i] >= 256 || to[i] >= 256 || !declared[kind[i] == 'b'][from[i]] ||
            !declared[0][to[i]])
            fail_msg("edge %c%lu -> n%lu has an undeclared end in:\n%s", kind[i],
                     from[i], to[i], s);
    return edges;
}

/* A dataset that uses a broadcast: the broadcast (a copy: a node of its
 * own, which does not hold its source's lineage) is drawn, so the dashed
 * edge comes from a declared node. */
static void test_lineage_dot_declares_broadcast_nodes(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *t0 = NULL, *t = NULL, *r = NULL, *m = NULL;
    TU_OKM(ember_range(&t0, ctx, 0, 5, 1, 1, msg), msg);            /* #1 */
    TU_OKM(ember_map(&t, t0, NULL, ident, NULL, 0, msg), msg);       /* #2 */
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);            /* #3 */
    ember_type kv = ember_type_pair(EMBER_I64, EMBER_I64);
    ember_bcast *bc = NULL;
    TU_OKM(ember_broadcast(&bc, t, msg), msg);
    TU_OKM(ember_map(&m, r, &kv, to_pair, &bc, sizeof bc, msg), msg); /* #4 */
    ember_bcast_free(&bc); /* m uses it: its copied arg names it */
    ember_ds_free(&t);
    ember_ds_free(&t0);
    char *s = NULL;
    TU_OK(ember_lineage_dot(m, &s));
    assert_int_equal(check_dot(s), 2);
    assert_int_equal(check_dot_edges_declared(s), 2);
    TU_MSG_HAS(s, "b2 [label=\"broadcast copy of #2\\n5 records\", shape=note];");
    TU_MSG_HAS(s, "b2 -> n4 [style=dashed, label=\"broadcast\"];");
    TU_MSG_HAS(s, "n3 -> n4;");
    assert_null(strstr(s, "n1")); /* the copy's source is gone with its handles */
    ember_free(ctx, s);
    /* The older test's shape, with ember_ds_uses: declared as well. */
    ember_ds *u0 = NULL, *u = NULL;
    TU_OKM(ember_range(&u0, ctx, 0, 5, 1, 1, msg), msg);
    TU_OKM(ember_broadcast(&bc, u0, msg), msg);
    TU_OKM(ember_map(&u, m, NULL, ident, NULL, 0, msg), msg);
    TU_OK(ember_ds_uses(u, bc));
    TU_OK(ember_lineage_dot(u, &s));
    assert_int_equal(check_dot_edges_declared(s), 4);
    ember_free(ctx, s);
    ember_bcast_free(&bc);
    ember_ds_free(&u);
    ember_ds_free(&u0);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* Names are the user's: quotes and backslashes in them must not break the
 * DOT syntax. */
static void test_lineage_dot_escapes_names(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL, *m = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 100, 1, 2, msg), msg);
    TU_OKM(ember_map(&m, r, NULL, ident, NULL, 0, msg), msg);
    TU_OK(ember_ds_set_name(r, "say \"hi\""));
    TU_OK(ember_ds_set_name(m, "back\\slash\\"));
    char *s = NULL;
    TU_OK(ember_lineage_dot(m, &s));
    assert_int_equal(check_dot(s), 1);
    TU_MSG_HAS(s, "say \\\"hi\\\"");
    TU_MSG_HAS(s, "back\\\\slash\\\\");
    ember_free(ctx, s);
    TU_OK(ember_lineage_string(m, &s)); /* plain text: as given */
    TU_MSG_HAS(s, "back\\slash\\ #2 (map)");
    TU_MSG_HAS(s, "say \"hi\" #1 (range)");
    ember_free(ctx, s);
    ember_ds_free(&m);
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

static void test_lineage_null_arguments(void **state)
{
    (void)state;
    ember_ctx *ctx = tu_ctx(1);
    char msg[EMBER_MSG_SIZE];
    ember_ds *r = NULL;
    TU_OKM(ember_range(&r, ctx, 0, 10, 1, 2, msg), msg);
    char *s = (char *)msg;
    assert_int_equal(ember_lineage_string(NULL, &s), EMBER_EINVAL);
    assert_int_equal(ember_lineage_string(r, NULL), EMBER_EINVAL);
    assert_int_equal(ember_lineage_dot(NULL, &s), EMBER_EINVAL);
    assert_int_equal(ember_lineage_dot(r, NULL), EMBER_EINVAL);
    assert_ptr_equal(s, msg); /* untouched */
    ember_ds_free(&r);
    ember_ctx_destroy(&ctx);
}

/* Failing allocation N = 1, 2, ... inside the lineage calls: ENOMEM, no
 * string, nothing leaked; depth gives 0 rather than a wrong number. */
static void test_lineage_allocation_failures(void **state)
{
    (void)state;
    tu_counter c;
    ember_ctx *ctx = tu_ctx_counted(&c);
    char msg[EMBER_MSG_SIZE];
    ember_ds *cur = NULL;
    TU_OKM(ember_range(&cur, ctx, 0, 100, 1, 2, msg), msg);
    for (int i = 0; i < 300; i++) { /* long enough to grow every buffer */
        ember_ds *next = NULL;
        TU_OKM(ember_map(&next, cur, NULL, ident, NULL, 0, msg), msg);
        ember_ds_free(&cur);
        cur = next;
    }
    for (int which = 0; which < 3; which++) {
        int done = 0;
        for (long fail = 1; !done; fail++) {
            long base_calls = atomic_load(&c.calls);
            long live = atomic_load(&c.live);
            atomic_store(&c.injected, 0);
            atomic_store(&c.fail_at, base_calls + fail);
            char *s = NULL;
            int rc;
            if (which == 2) {
                size_t d = ember_lineage_depth(cur);
                rc = d == 300 ? EMBER_OK : EMBER_ENOMEM;
                if (rc)
                    assert_int_equal(d, 0);
            } else {
                rc = which ? ember_lineage_dot(cur, &s)
                           : ember_lineage_string(cur, &s);
            }
            atomic_store(&c.fail_at, 0);
            done = atomic_load(&c.injected) == 0;
            if (done) {
                assert_int_equal(rc, EMBER_OK);
            } else if (rc == EMBER_OK) {
                fail_msg("lineage call %d succeeded with allocation %ld failed",
                         which, fail);
            } else {
                assert_int_equal(rc, EMBER_ENOMEM);
                assert_null(s);
            }
            ember_free(ctx, s);
            assert_int_equal(atomic_load(&c.live), live);
        }
    }
    ember_ds_free(&cur);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
}

/* A walk of a short lineage costs memory by the datasets it walks, not by
 * every id the context ever gave: a bitmap of those (and lineage_depth's
 * array of them) was allocated and zeroed on every call, so a loop of
 * small iterations slowed down as it ran (100k iterations a second at
 * first, 2.7k after 3 million; a newcomer's campaign). Counted by the
 * allocator's peak, not timed. */
static void test_lineage_walks_cost_their_own_size(void **state)
{
    (void)state;
    tu_counter c;
    ember_ctx *ctx = tu_ctx_counted(&c);
    char msg[EMBER_MSG_SIZE];
    for (int i = 0; i < 1000000; i++) { /* ids given and gone */
        ember_ds *r = NULL;
        TU_OKM(ember_range(&r, ctx, 0, 10, 1, 1, msg), msg);
        ember_ds_free(&r);
    }
    ember_ds *cur = NULL;
    TU_OKM(ember_range(&cur, ctx, 0, 100, 1, 2, msg), msg);
    for (int i = 0; i < 3; i++) {
        ember_ds *next = NULL;
        TU_OKM(ember_map(&next, cur, NULL, ident, NULL, 0, msg), msg);
        ember_ds_free(&cur);
        cur = next;
    }
    long long base = atomic_load(&c.live_bytes);
    atomic_store(&c.peak_bytes, base);
    assert_int_equal(ember_lineage_depth(cur), 3);
    char *s = NULL, *d = NULL;
    TU_OKM(ember_lineage_string(cur, &s), "string");
    TU_OKM(ember_lineage_dot(cur, &d), "dot");
    assert_true(atomic_load(&c.peak_bytes) - base < 16384); /* 8 MB and 125 KB before */
    ember_free(ctx, s);
    ember_free(ctx, d);
    ember_ds_free(&cur);
    ember_ctx_destroy(&ctx);
    assert_int_equal(atomic_load(&c.live), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lineage_string_stages_and_levels),
        cmocka_unit_test(test_lineage_string_shared_parent_once),
        cmocka_unit_test(test_lineage_string_shows_broadcasts),
        cmocka_unit_test(test_lineage_depth),
        cmocka_unit_test(test_lineage_dot_well_formed),
        cmocka_unit_test(test_lineage_dot_escapes_names),
        cmocka_unit_test(test_lineage_dot_declares_broadcast_nodes),
        cmocka_unit_test(test_lineage_null_arguments),
        cmocka_unit_test(test_lineage_allocation_failures),
        cmocka_unit_test(test_lineage_walks_cost_their_own_size),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
