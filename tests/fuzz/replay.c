/* replay.c: runs a fuzz harness once on every file named on the command
 * line, or in the directories named there (not recursive, in name order),
 * without libFuzzer. The normal build links each harness with it, so the
 * ctest tests fuzz.<harness> replay tests/fuzz/corpus/<harness> with gcc
 * (and under ASan + UBSan in build-san/). A finding aborts the process, so
 * the test fails naming the input (printed before it runs); so does an
 * input that runs for a minute.
 *
 *   fuzz_<harness>_replay FILE-OR-DIR...
 */
#define _XOPEN_SOURCE 700
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int run_file(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", p, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
            }
            buf = b;
            cap *= 2;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: cannot read %s\n", p);
        free(buf);
        return -1;
    }
    printf("replay: %s (%zu bytes)\n", p, n);
    fflush(stdout);
    /* The exact size, so ASan sees any read past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    /* An input that takes a minute is a hang, as libFuzzer's -timeout
     * says (inputs take well under a second, under the sanitizers too):
     * SIGALRM ends the process, and the test fails naming the input. */
    alarm(60);
    LLVMFuzzerTestOneInput(exact, n);
    alarm(0);
    free(exact);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *d, size_t *count)
{
    DIR *dh = opendir(d);
    if (!dh) {
        fprintf(stderr, "replay: %s: %s\n", d, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(dh);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            rc |= run_file(p);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    fuzz_signals_default(); /* so that the alarm below ends a hang */
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc |= run_dir(argv[i], &count);
        } else {
            rc |= run_file(argv[i]);
            count++;
        }
    }
    if (count == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("replay: %zu input(s), no finding\n", count);
    return rc ? 1 : 0;
}
