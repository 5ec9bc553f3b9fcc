/* test_plot.c: unit tests of the pictures' helper (algorithms/common/
 * plot.c, compiled in here with cli.c and cli_loop.c, as test_cli does): the metrics
 * parser (flat JSON objects, bad lines named by number), the rows a
 * restarted run's metrics make (redone iterations replace, restarts count
 * as resumes), text made safe for a gnuplot string, the script carrying
 * no path, and a missing renderer refused with the package named.
 */
#include "../../algorithms/common/cli.c"
#include "../../algorithms/common/cli_loop.c"
#include "../../algorithms/common/plot.c"

#include "testutil.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_plot_parse_object(void **state)
{
    (void)state;
    pair p[8];
    int n = parse_object("{\"iteration\": 3, \"seconds\": 1.5e-3, \"residual\": null, "
                         "\"checkpoint\": true, \"event\": \"x\\\"y\"}\n", p, 8);
    assert_int_equal(n, 5);
    assert_string_equal(p[0].key, "iteration");
    assert_true(p[0].kind == 'n' && p[0].num == 3);
    assert_true(p[1].kind == 'n' && p[1].num == 1.5e-3);
    assert_true(p[2].kind == '0' && isnan(p[2].num));
    assert_true(p[3].kind == 'b' && p[3].num == 1);
    assert_true(p[4].kind == 's');
    assert_string_equal(p[4].str, "x\"y");
    assert_int_equal(parse_object("{}", p, 8), 0);
    /* not flat objects, or not JSON */
    assert_int_equal(parse_object("{\"a\": {\"b\": 1}}", p, 8), -1);
    assert_int_equal(parse_object("{\"a\": 1} trailing", p, 8), -1);
    assert_int_equal(parse_object("{\"a\": 1", p, 8), -1);
    assert_int_equal(parse_object("{\"a\" 1}", p, 8), -1);
    assert_int_equal(parse_object("[1, 2]", p, 8), -1);
    assert_int_equal(parse_object("{\"a\": nan}", p, 8), -1);
    assert_int_equal(parse_object("{\"a\": 1e999}", p, 8), -1);
    assert_int_equal(parse_object("{\"a\": \"open}", p, 8), -1);
}

static void test_plot_metrics_restart_rows(void **state)
{
    (void)state;
    history h;
    memset(&h, 0, sizeof h);
    /* 1..5, a kill after 5, a resume from 3 (with its line), 4..6; then a
     * restart from 5 written by an older ember (no line): 6 redone */
    write_file("m.jsonl",
               "{\"iteration\": 1, \"seconds\": 0.1, \"inertia\": 8, \"checkpoint\": false}\n"
               "{\"iteration\": 2, \"seconds\": 0.1, \"inertia\": 4, \"checkpoint\": false}\n"
               "{\"iteration\": 3, \"seconds\": 0.1, \"inertia\": 2, \"checkpoint\": true}\n"
               "{\"iteration\": 4, \"seconds\": 0.1, \"inertia\": 1, \"checkpoint\": false}\n"
               "{\"iteration\": 5, \"seconds\": 0.1, \"inertia\": 0.5, \"checkpoint\": true}\n"
               "\n"
               "{\"event\": \"resumed\", \"from_iteration\": 3}\n"
               "{\"iteration\": 4, \"seconds\": 0.2, \"inertia\": 1, \"checkpoint\": false}\n"
               "{\"iteration\": 5, \"seconds\": 0.2, \"inertia\": 0.5, \"checkpoint\": true}\n"
               "{\"iteration\": 6, \"seconds\": 0.2, \"inertia\": 0.25, \"checkpoint\": false}\n"
               "{\"iteration\": 6, \"seconds\": 0.3, \"inertia\": 0.25, \"checkpoint\": false}\n"
               "{\"event\": \"done\", \"iterations\": 6, \"inertia\": 0.25}\n");
    assert_int_equal(from_metrics(&h, "test", "m.jsonl"), 0);
    assert_int_equal(h.n, 6);
    for (size_t i = 0; i < h.n; i++)
        assert_true(h.rows[i].it == (double)(i + 1));
    assert_true(h.rows[3].seconds == 0.2); /* the redone 4 replaced the first */
    assert_true(h.rows[5].seconds == 0.3);
    assert_true(h.rows[2].checkpoint && h.rows[4].checkpoint && !h.rows[5].checkpoint);
    assert_int_equal(h.nres, 2);
    assert_true(h.resumes[0] == 3 && h.resumes[1] == 5);
    assert_string_equal(h.value_name, "inertia");
    assert_non_null(strstr(h.title, "m.jsonl: inertia per iteration"));
    free(h.rows);
    free(h.resumes);
}

/* A run killed while writing its metrics leaves a last line cut short:
 * skipped, the lines before it plotted; the same text ended by a newline
 * (a finished line that is broken) still fails. */
static void test_plot_metrics_unfinished_last_line(void **state)
{
    (void)state;
    history h;
    memset(&h, 0, sizeof h);
    write_file("cut.jsonl",
               "{\"iteration\": 1, \"seconds\": 0.1, \"residual\": 1}\n"
               "{\"iteration\": 2, \"seconds\": 0.1, \"residual\": 0.5}\n"
               "{\"iteration\": 3, \"seco");
    assert_int_equal(from_metrics(&h, "test", "cut.jsonl"), 0);
    assert_int_equal(h.n, 2);
    free(h.rows);
    free(h.resumes);
    memset(&h, 0, sizeof h);
    write_file("cut.jsonl", "{\"iteration\": 1, \"seconds\": 0.1, \"residual\": 1}\n"
                            "{\"iteration\": 3, \"seco\n");
    assert_int_equal(from_metrics(&h, "test", "cut.jsonl"), EMBER_EXIT_USAGE);
    free(h.rows);
    free(h.resumes);
}

static void test_plot_metrics_bad_lines(void **state)
{
    (void)state;
    static const char *bad[] = {
        "{\"iteration\": 1, \"residual\": 1}\n{\"iteration\": 2, \"residual\": oops}\n",
        "{\"iteration\": 1, \"residual\": 1}\n{\"seconds\": 2, \"residual\": 1}\n",
        "{\"iteration\": 1, \"residual\": 1}\n{\"iteration\": 0.5, \"residual\": 1}\n",
        "{\"iteration\": 1, \"residual\": 1}\n{\"iteration\": 2}\n",
        "",
        "{\"event\": \"done\"}\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        history h;
        memset(&h, 0, sizeof h);
        write_file("bad.jsonl", bad[i]);
        assert_int_equal(from_metrics(&h, "test", "bad.jsonl"), EMBER_EXIT_USAGE);
        free(h.rows);
        free(h.resumes);
    }
    history h;
    memset(&h, 0, sizeof h);
    assert_int_equal(from_metrics(&h, "test", "missing.jsonl"), EMBER_EXIT_USAGE);
}

static void test_plot_safe_text(void **state)
{
    (void)state;
    char out[64];
    safe_text(out, sizeof out, "a'b\"c\\d`e$f@g\nh\xc3\xa9");
    assert_string_equal(out, "a_b_c_d_e_f_g_h__");
    safe_text(out, 4, "abcdef");
    assert_string_equal(out, "abc");
}

/* The script holds data and labels only: the output path never enters
 * it (gnuplot writes to its stdout, which the caller made the file). */
static void test_plot_script_has_no_path(void **state)
{
    (void)state;
    history h;
    memset(&h, 0, sizeof h);
    write_file("q'uote\"d.jsonl",
               "{\"iteration\": 1, \"seconds\": 0.1, \"residual\": 0.5, \"checkpoint\": true}\n"
               "{\"iteration\": 2, \"seconds\": 0.1, \"residual\": 0, \"checkpoint\": false}\n");
    assert_int_equal(from_metrics(&h, "test", "q'uote\"d.jsonl"), 0);
    text t = {NULL, 0, 0, 0};
    script(&t, &h);
    assert_false(t.failed);
    assert_non_null(strstr(t.buf, "set terminal svg"));
    assert_null(strstr(t.buf, "set output"));
    assert_null(strstr(t.buf, "q'uote"));
    assert_non_null(strstr(t.buf, "q_uote_d.jsonl"));
    /* a value of 0 cannot go on a log scale: the scale is linear */
    assert_null(strstr(t.buf, "\nset logscale y"));
    assert_non_null(strstr(t.buf, "checkpoint written"));
    assert_null(strstr(t.buf, "resumed"));
    free(t.buf);
    free(h.rows);
    free(h.resumes);
}

static void test_plot_missing_tool(void **state)
{
    (void)state;
    char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", "/nonexistent-ember-dir", 1);
    assert_int_equal(ember_plot_need(NULL, "plot", "gnuplot", "gnuplot-nox"),
                     EMBER_EXIT_USAGE);
    assert_int_equal(ember_plot_dot("test", "digraph { a -> b }", "g.svg"), EMBER_EXIT_USAGE);
    assert_int_not_equal(access("g.svg", F_OK), 0);
    assert_int_not_equal(access("g.svg.tmp", F_OK), 0);
    if (old)
        setenv("PATH", old, 1);
    free(old);
    /* a tool that is there but writes no SVG fails, and leaves nothing */
    char *argv[] = {"true", NULL};
    if (find_tool("true", (char[4096]){0}, 4096) == 0) {
        assert_int_equal(run_tool("test", "true", "coreutils", argv, "x", 1, "t.svg"),
                         EMBER_EXIT_FAILURE);
        assert_int_not_equal(access("t.svg", F_OK), 0);
        assert_int_not_equal(access("t.svg.tmp", F_OK), 0);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot_parse_object),
        cmocka_unit_test(test_plot_metrics_restart_rows),
        cmocka_unit_test(test_plot_metrics_unfinished_last_line),
        cmocka_unit_test(test_plot_metrics_bad_lines),
        cmocka_unit_test(test_plot_safe_text),
        cmocka_unit_test(test_plot_script_has_no_path),
        cmocka_unit_test(test_plot_missing_tool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
