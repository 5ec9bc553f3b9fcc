/* fuzz_metrics.c: the --metrics JSON-lines file, as `--plot FILE` reads it
 * (from_metrics, algorithms/common/plot.c) and as a resumed run trims its
 * cut last line before appending (drop_cut_line,
 * algorithms/common/cli_loop.c).
 *
 * Input: the metrics file as is (no option byte), so any file a program
 * wrote with --metrics is a seed.
 *
 * Both readers are static in the programs' helper library, so this file
 * includes their sources (test code; the library's copies are not linked
 * in, their symbols being defined here). Their messages go to stderr,
 * which is redirected to a memory stream while they run, so the harness
 * can check what they say:
 *   - the plot reader returns 0, 1 or 2; 2 comes with one message line
 *     that starts "ember-fuzz: --plot <file>" (naming the file, and for a
 *     bad line its number); 0 gives at least one row, iterations whole,
 *     >= 1 and strictly ascending (a restart's redone iterations replace
 *     the earlier ones), and a value name of safe characters only;
 *   - drop_cut_line leaves exactly the bytes up to and including the last
 *     '\n' (nothing when there is none);
 *   - the trimmed file, which ends in a newline, has no "unfinished last
 *     line" for the plot to skip, and a file the plot accepted stays
 *     accepted once trimmed and given one more iteration line, as a
 *     resumed run appends it.
 */
#include <stdio.h>

/* The captured messages: plot.c and cli_loop.c print with
 * fprintf(stderr, ...). */
static FILE *captured;
#undef stderr
#define stderr captured

#include "../../algorithms/common/cli_loop.c"
#include "../../algorithms/common/plot.c"

#undef stderr

#include "fuzz.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs the plot's reader on path with stderr captured; the status, and
 * what it printed in *said (malloc'd, "" when nothing). */
static int plot_read(const char *path, history *h, char **said)
{
    char *buf = NULL;
    size_t len = 0;
    captured = open_memstream(&buf, &len);
    if (!captured)
        fuzz_fail("open_memstream", NULL);
    memset(h, 0, sizeof *h);
    int status = from_metrics(h, "ember-fuzz", path);
    fclose(captured);
    captured = NULL;
    *said = buf;
    if (getenv("EMBER_FUZZ_VERBOSE"))
        fprintf(stderr, "  from_metrics: %d %s", status, buf);
    return status;
}

static void check_plot(const char *path, int status, const history *h,
                       const char *said)
{
    char head[8300];
    snprintf(head, sizeof head, "ember-fuzz: --plot %s", path);
    if (status != 0 && status != EMBER_EXIT_FAILURE && status != EMBER_EXIT_USAGE)
        fuzz_fail("from_metrics returned a status that is no exit status", said);
    if (status == EMBER_EXIT_USAGE) {
        /* one line, and the unfinished-line warning may come before it */
        const char *last = said;
        size_t n = strlen(said);
        if (n == 0 || said[n - 1] != '\n')
            fuzz_fail("a refused metrics file without a message line", said);
        for (const char *p = said; p < said + n - 1; p++)
            if (*p == '\n')
                last = p + 1;
        if (strncmp(last, head, strlen(head)) != 0)
            fuzz_fail("a refusal that does not name the file", said);
    }
    if (status != 0)
        return;
    if (h->n == 0 || !h->rows)
        fuzz_fail("a metrics file read with no rows", said);
    for (size_t i = 0; i < h->n; i++) {
        double it = h->rows[i].it;
        if (!(it >= 1) || it != floor(it))
            fuzz_fail("a row whose iteration is not a whole number >= 1", said);
        if (i && !(it > h->rows[i - 1].it))
            fuzz_fail("rows whose iterations do not ascend", said);
    }
    for (const char *p = h->value_name; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || strchr("\"\\'`$@", *p))
            fuzz_fail("an unsafe character in the value name (goes into gnuplot)", said);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[8192];
    snprintf(path, sizeof path, "%s", fuzz_write("metrics.jsonl", data, size));

    history h;
    char *said = NULL;
    int status = plot_read(path, &h, &said);
    check_plot(path, status, &h, said);
    free(h.rows);
    free(h.resumes);
    free(said);

    /* What a resumed run does to the file before appending to it. */
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fuzz_fail("cannot reopen the input", NULL);
    if (drop_cut_line(fd) != 0)
        fuzz_fail("drop_cut_line failed on a regular file", NULL);
    off_t kept = lseek(fd, 0, SEEK_END);
    size_t want = size;
    while (want > 0 && data[want - 1] != '\n')
        want--;
    if (kept != (off_t)want)
        fuzz_fail("drop_cut_line did not keep exactly the whole lines", NULL);
    /* One more line, as metrics_iteration writes it, past any iteration a
     * file can hold (the plot refuses ERANGE and non-finite numbers). */
    static const char more[] =
        "{\"iteration\": 1e300, \"seconds\": 0.5, \"residual\": 0.25, "
        "\"checkpoint\": false, \"checkpoint_bytes\": 0}\n";
    if (write(fd, more, sizeof more - 1) != (ssize_t)(sizeof more - 1))
        fuzz_fail("cannot append to the input", NULL);
    close(fd);

    int again = plot_read(path, &h, &said);
    check_plot(path, again, &h, said);
    if (strstr(said, "unfinished last line"))
        fuzz_fail("a file ending in a newline has an unfinished last line", said);
    if (status == 0 && again != 0)
        fuzz_fail("a file the plot read is refused once trimmed and appended to", said);
    if (again == 0 && (h.n == 0 || h.rows[h.n - 1].it != 1e300 ||
                       h.rows[h.n - 1].value != 0.25))
        fuzz_fail("the appended line is not the last row", said);
    free(h.rows);
    free(h.resumes);
    free(said);
    return 0;
}
